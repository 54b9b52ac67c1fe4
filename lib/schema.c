/* schema.c: compiling and applying the JSON Schema subset of schema.h. Compiling checks every keyword
 * through one table and builds a tree of nodes (one a subschema) whose values are borrowed from the
 * schema document, which the compiled schema keeps a reference to. */
#include "schema.h"
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "jpath.h"
#include "re.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))
#define DUMP_MAX 200 /* bytes of a keyword's value quoted in a message */
#define WHY_MAX 200 /* a regex error's message */
#define LIMITED_MAX (WHY_MAX + 120)

enum {
    T_NULL = 1 << 0,
    T_BOOLEAN = 1 << 1,
    T_OBJECT = 1 << 2,
    T_ARRAY = 1 << 3,
    T_NUMBER = 1 << 4,
    T_INTEGER = 1 << 5,
    T_STRING = 1 << 6
};

static const struct {
    const char *name;
    unsigned bit;
    const char *phrase; /* for "must be ..." */
} types[] = {
    {"null", T_NULL, "null"},
    {"boolean", T_BOOLEAN, "a boolean"},
    {"object", T_OBJECT, "an object"},
    {"array", T_ARRAY, "an array"},
    {"number", T_NUMBER, "a number"},
    {"integer", T_INTEGER, "an integer"},
    {"string", T_STRING, "a string"},
};
#define NTYPES (sizeof types / sizeof types[0])

typedef struct snode snode_t;

typedef struct slist {
    snode_t **v;
    size_t n;
} slist_t;

typedef struct prop {
    const char *name; /* borrowed from the schema */
    snode_t *s;
} prop_t;

/* One subschema. json_t pointers are borrowed from the schema document; NULL means absent. */
struct snode {
    int boolean;       /* 1: true, 0: false, -1: an object schema */
    unsigned types;    /* T_* bits; 0: any type */
    json_t *enum_vals; /* an array */
    json_t *const_val;
    json_t *minimum, *maximum, *exclusive_min, *exclusive_max, *multiple_of;
    size_t min_length, max_length, min_items, max_items, min_props, max_props; /* max: SIZE_MAX = none */
    int unique_items;
    json_t *required;  /* an array of strings */
    json_t *props_obj; /* the "properties" object, to tell which members are additional */
    prop_t *props;
    size_t nprops;
    snode_t *additional, *items, *not_;
    slist_t all_of, any_of, one_of;
    flow_re_t *re; /* pattern */
};

struct flow_schema {
    json_t *doc; /* new reference to the schema compiled */
    snode_t *root;
    flow_re_limits_t limits; /* of the patterns' matches */
};

static void node_free(snode_t *n) {
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->nprops; i++)
        node_free(n->props[i].s);
    flow__free(n->props);
    node_free(n->additional);
    node_free(n->items);
    node_free(n->not_);
    slist_t *lists[] = {&n->all_of, &n->any_of, &n->one_of};
    for (size_t l = 0; l < 3; l++) {
        for (size_t i = 0; i < lists[l]->n; i++)
            node_free(lists[l]->v[i]);
        flow__free(lists[l]->v);
    }
    flow_re_free(n->re);
    flow__free(n);
}

/* A value quoted in a message: compact JSON, cut with "..." past DUMP_MAX bytes. */
typedef struct quote {
    char buf[DUMP_MAX + 4];
    size_t len;
} quote_t;

static int quote_cb(const char *s, size_t size, void *data) {
    quote_t *q = data;
    size_t room = DUMP_MAX - q->len;
    size_t n = size < room ? size : room;
    memcpy(q->buf + q->len, s, n);
    q->len += n;
    if (n < size) {
        memcpy(q->buf + q->len, "...", 4);
        return -1; /* enough: stop the dump */
    }
    q->buf[q->len] = '\0';
    return 0;
}

static const char *quote(quote_t *q, json_t *v) {
    q->len = 0;
    q->buf[0] = '\0';
    json_dump_callback(v, quote_cb, q, DUMP_FLAGS);
    return q->buf;
}

/* ---- compiling --------------------------------------------------------------------------------- */

static int compile_node(flow__check_t *c, json_t *s, const flow__jpath_t *at, unsigned depth, snode_t **out);

/* A compilation: the keywords get &check, the first member, and kw_pattern the limits around it. */
typedef struct compiling {
    flow__check_t check;
    const flow_re_limits_t *re_limits;
} compiling_t;

/* A keyword's compiler: v is its value (borrowed), at its place, field where it goes in n. */
typedef int (*keyword_fn)(flow__check_t *c, snode_t *n, json_t *v, const flow__jpath_t *at, unsigned depth,
                          void *field);

static int kw_type(flow__check_t *c, snode_t *n, json_t *v, const flow__jpath_t *at, unsigned depth,
                   void *field) {
    int rc = 0;
    if (json_is_string(v) || (json_is_array(v) && json_array_size(v) > 0)) {
        size_t count = json_is_string(v) ? 1 : json_array_size(v);
        for (size_t i = 0; i < count && rc == 0; i++) {
            json_t *name = json_is_string(v) ? v : json_array_get(v, i);
            flow__jpath_t here = json_is_string(v) ? *at : flow__jpath_index(at, i);
            size_t t = 0;
            while (json_is_string(name) && t < NTYPES && strcmp(json_string_value(name), types[t].name) != 0)
                t++;
            if (!json_is_string(name) || t == NTYPES) {
                quote_t q;
                rc = flow__check_problem(c, &here,
                                         "unknown type %s: expected null, boolean, object, array, number, "
                                         "integer or string",
                                         quote(&q, name));
            } else if (n->types & types[t].bit) {
                rc = flow__check_problem(c, &here, "duplicate type \"%s\"", types[t].name);
            } else {
                n->types |= types[t].bit;
            }
        }
        return rc;
    }
    return flow__check_problem(c, at, "must be a type name or a non-empty array of type names");
}

static int kw_enum(flow__check_t *c, snode_t *n, json_t *v, const flow__jpath_t *at, unsigned depth,
                   void *field) {
    if (!json_is_array(v))
        return flow__check_problem(c, at, "must be an array");
    n->enum_vals = v;
    return 0;
}

static int kw_const(flow__check_t *c, snode_t *n, json_t *v, const flow__jpath_t *at, unsigned depth,
                    void *field) {
    n->const_val = v;
    return 0;
}

static int kw_number(flow__check_t *c, snode_t *n, json_t *v, const flow__jpath_t *at, unsigned depth,
                     void *field) {
    if (!json_is_number(v))
        return flow__check_problem(c, at, "must be a number");
    *(json_t **)field = v;
    return 0;
}

static int kw_multiple_of(flow__check_t *c, snode_t *n, json_t *v, const flow__jpath_t *at, unsigned depth,
                          void *field) {
    if (!json_is_number(v) || json_number_value(v) <= 0)
        return flow__check_problem(c, at, "must be a number greater than 0");
    n->multiple_of = v;
    return 0;
}

static int kw_count(flow__check_t *c, snode_t *n, json_t *v, const flow__jpath_t *at, unsigned depth,
                    void *field) {
    double d = json_number_value(v);
    if (!json_is_number(v) || d < 0 || d != floor(d))
        return flow__check_problem(c, at, "must be a non-negative integer");
    /* Counts past SIZE_MAX cannot be reached anyway. */
    *(size_t *)field = json_is_integer(v)      ? (size_t)json_integer_value(v)
                       : d >= (double)SIZE_MAX ? SIZE_MAX
                                               : (size_t)d;
    return 0;
}

static int kw_unique(flow__check_t *c, snode_t *n, json_t *v, const flow__jpath_t *at, unsigned depth,
                     void *field) {
    if (!json_is_boolean(v))
        return flow__check_problem(c, at, "must be a boolean");
    n->unique_items = json_is_true(v);
    return 0;
}

static int kw_pattern(flow__check_t *c, snode_t *n, json_t *v, const flow__jpath_t *at, unsigned depth,
                      void *field) {
    char why[WHY_MAX];
    if (!json_is_string(v))
        return flow__check_problem(c, at, "must be a string");
    const compiling_t *cc = (const compiling_t *)c;
    int rc = flow_re_compile(json_string_value(v), json_string_length(v), cc->re_limits, &n->re, why, sizeof why);
    if (rc == FLOW_EINVAL)
        return flow__check_problem(c, at, "not a valid regular expression: %s", why);
    return rc;
}

static int kw_required(flow__check_t *c, snode_t *n, json_t *v, const flow__jpath_t *at, unsigned depth,
                       void *field) {
    json_t *seen = NULL; /* the names so far: a hash set, so that a long list costs O(n) */
    int rc = 0;

    if (!json_is_array(v))
        return flow__check_problem(c, at, "must be an array of property names");
    seen = json_object();
    if (seen == NULL)
        return FLOW_ENOMEM;
    for (size_t i = 0; i < json_array_size(v) && rc == 0; i++) {
        json_t *name = json_array_get(v, i);
        flow__jpath_t here = flow__jpath_index(at, i);
        if (!json_is_string(name))
            rc = flow__check_problem(c, &here, "must be a string");
        else if (json_object_get(seen, json_string_value(name)) != NULL)
            rc = flow__check_problem(c, &here, "duplicate \"%s\"", json_string_value(name));
        else if (json_object_set_new(seen, json_string_value(name), json_true()) != 0)
            rc = FLOW_ENOMEM;
    }
    json_decref(seen);
    n->required = v;
    return rc;
}

static int kw_schema(flow__check_t *c, snode_t *n, json_t *v, const flow__jpath_t *at, unsigned depth,
                     void *field) {
    if (json_is_array(v))
        return flow__check_problem(c, at, "must be a schema (the array form of items is not supported)");
    return compile_node(c, v, at, depth + 1, (snode_t **)field);
}

static int kw_schema_list(flow__check_t *c, snode_t *n, json_t *v, const flow__jpath_t *at, unsigned depth,
                          void *field) {
    slist_t *l = field;
    int rc = 0;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return flow__check_problem(c, at, "must be a non-empty array of schemas");
    l->v = flow__calloc(json_array_size(v), sizeof *l->v);
    if (l->v == NULL)
        return FLOW_ENOMEM;
    for (size_t i = 0; i < json_array_size(v) && rc == 0; i++) {
        flow__jpath_t here = flow__jpath_index(at, i);
        rc = compile_node(c, json_array_get(v, i), &here, depth + 1, &l->v[l->n]);
        if (l->v[l->n] != NULL)
            l->n++;
    }
    return rc;
}

static int kw_properties(flow__check_t *c, snode_t *n, json_t *v, const flow__jpath_t *at, unsigned depth,
                         void *field) {
    const char *name;
    json_t *sub;
    int rc = 0;

    if (!json_is_object(v))
        return flow__check_problem(c, at, "must be an object of schemas");
    n->props_obj = v;
    if (json_object_size(v) == 0)
        return 0;
    n->props = flow__calloc(json_object_size(v), sizeof *n->props);
    if (n->props == NULL)
        return FLOW_ENOMEM;
    json_object_foreach(v, name, sub) {
        flow__jpath_t here = flow__jpath_key(at, name);
        prop_t *p = &n->props[n->nprops];
        rc = compile_node(c, sub, &here, depth + 1, &p->s);
        if (p->s != NULL) {
            p->name = name;
            n->nprops++;
        }
        if (rc != 0)
            break;
    }
    return rc;
}

#define FIELD(f) offsetof(snode_t, f)
#define IGNORED SIZE_MAX

static const struct {
    const char *name;
    keyword_fn fn; /* NULL: an annotation, ignored */
    size_t field;  /* offset in snode_t of what fn fills, or IGNORED */
} keywords[] = {
    {"type", kw_type, IGNORED},
    {"enum", kw_enum, IGNORED},
    {"const", kw_const, IGNORED},
    {"minimum", kw_number, FIELD(minimum)},
    {"maximum", kw_number, FIELD(maximum)},
    {"exclusiveMinimum", kw_number, FIELD(exclusive_min)},
    {"exclusiveMaximum", kw_number, FIELD(exclusive_max)},
    {"multipleOf", kw_multiple_of, IGNORED},
    {"minLength", kw_count, FIELD(min_length)},
    {"maxLength", kw_count, FIELD(max_length)},
    {"pattern", kw_pattern, IGNORED},
    {"minItems", kw_count, FIELD(min_items)},
    {"maxItems", kw_count, FIELD(max_items)},
    {"uniqueItems", kw_unique, IGNORED},
    {"items", kw_schema, FIELD(items)},
    {"minProperties", kw_count, FIELD(min_props)},
    {"maxProperties", kw_count, FIELD(max_props)},
    {"required", kw_required, IGNORED},
    {"properties", kw_properties, IGNORED},
    {"additionalProperties", kw_schema, FIELD(additional)},
    {"allOf", kw_schema_list, FIELD(all_of)},
    {"anyOf", kw_schema_list, FIELD(any_of)},
    {"oneOf", kw_schema_list, FIELD(one_of)},
    {"not", kw_schema, FIELD(not_)},
    {"title", NULL, IGNORED},
    {"description", NULL, IGNORED},
    {"default", NULL, IGNORED},
    {"examples", NULL, IGNORED},
    {"$schema", NULL, IGNORED},
    {"$id", NULL, IGNORED},
    {"$comment", NULL, IGNORED},
    {"format", NULL, IGNORED},
};

/* Compiles the schema s (borrowed) into *out; *out stays NULL when s is not a schema at all. */
static int compile_node(flow__check_t *c, json_t *s, const flow__jpath_t *at, unsigned depth, snode_t **out) {
    const char *key;
    json_t *v;
    int rc = 0;

    *out = NULL;
    if (depth > FLOW_SCHEMA_MAX_DEPTH)
        return flow__check_problem(c, at, "subschemas nested deeper than %d levels", FLOW_SCHEMA_MAX_DEPTH);
    if (!json_is_object(s) && !json_is_boolean(s))
        return flow__check_problem(c, at, "a schema must be an object or a boolean");
    snode_t *n = flow__calloc(1, sizeof *n);
    if (n == NULL)
        return FLOW_ENOMEM;
    n->max_length = n->max_items = n->max_props = SIZE_MAX;
    n->boolean = json_is_object(s) ? -1 : json_is_true(s);
    *out = n; /* from here on, the caller frees n, also on error */
    if (!json_is_object(s))
        return 0;
    json_object_foreach(s, key, v) {
        flow__jpath_t here = flow__jpath_key(at, key);
        size_t k = 0;
        while (k < sizeof keywords / sizeof keywords[0] && strcmp(key, keywords[k].name) != 0)
            k++;
        if (k == sizeof keywords / sizeof keywords[0])
            rc = flow__check_problem(c, &here, "unsupported keyword \"%s\"", key);
        else if (keywords[k].fn != NULL)
            rc = keywords[k].fn(c, n, v, &here, depth,
                                keywords[k].field == IGNORED ? NULL : (char *)n + keywords[k].field);
        if (rc != 0)
            break;
    }
    return rc;
}

int flow_schema_compile_with(json_t *schema, const char *where, const flow_re_limits_t *re_limits,
                             flow_schema_t **out, flow_problems_t *problems) {
    compiling_t c = {{problems, 0}, re_limits};
    flow__jpath_t top = flow__jpath_top(where);
    snode_t *root = NULL;
    flow_schema_t *s = NULL;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (schema == NULL) {
        rc = FLOW_EINVAL;
        goto out;
    }
    rc = compile_node(&c.check, schema, &top, 0, &root);
    if (rc == 0 && c.check.found > 0)
        rc = FLOW_ELOAD;
    if (rc != 0 || out == NULL)
        goto out;
    s = flow__calloc(1, sizeof *s);
    if (s == NULL) {
        rc = FLOW_ENOMEM;
        goto out;
    }
    s->doc = json_incref(schema);
    s->root = root;
    if (re_limits != NULL)
        s->limits = *re_limits;
    root = NULL;
    *out = s;
out:
    node_free(root);
    return rc;
}

int flow_schema_compile(json_t *schema, const char *where, flow_schema_t **out, flow_problems_t *problems) {
    return flow_schema_compile_with(schema, where, NULL, out, problems);
}

void flow_schema_free(flow_schema_t *s) {
    if (s == NULL)
        return;
    node_free(s->root);
    json_decref(s->doc);
    flow__free(s);
}

/* ---- comparing values -------------------------------------------------------------------------- */

/* Numbers by value: exactly between integers, else in long double, which holds every int64 and
 * every double exactly on the platforms we build for. */
static int num_cmp(json_t *a, json_t *b) {
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    long double x = json_is_integer(a) ? (long double)json_integer_value(a) : json_real_value(a);
    long double y = json_is_integer(b) ? (long double)json_integer_value(b) : json_real_value(b);
    return x < y ? -1 : x > y;
}

/* JSON equality with numbers by value. Recursion as deep as the shallower of the two, and instances
 * are checked to be at most FLOW_SCHEMA_MAX_DEPTH deep. */
static int equal(json_t *a, json_t *b) {
    if (json_is_number(a) && json_is_number(b))
        return num_cmp(a, b) == 0;
    if (json_typeof(a) != json_typeof(b))
        return 0;
    if (json_is_string(a))
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!equal(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    if (json_is_object(a)) {
        const char *key;
        json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach(a, key, v) {
            json_t *w = json_object_get(b, key);
            if (w == NULL || !equal(v, w))
                return 0;
        }
        return 1;
    }
    return 1; /* true, false, null */
}

static uint64_t mix(uint64_t h) { /* splitmix64's finaliser */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

static uint64_t hash_bytes(const char *s, size_t len) { /* FNV-1a */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return mix(h);
}

/* A hash that agrees with equal(): 1 and 1.0 hash alike, members in any order. */
static uint64_t hash(json_t *v) {
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        return mix((uint64_t)json_integer_value(v));
    case JSON_REAL: {
        double d = json_real_value(v);
        if (d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
            return mix((uint64_t)(int64_t)d);
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        return mix(bits ^ 0x5555555555555555ULL);
    }
    case JSON_STRING:
        return hash_bytes(json_string_value(v), json_string_length(v));
    case JSON_ARRAY: {
        uint64_t h = 0xa5a5a5a5ULL;
        for (size_t i = 0; i < json_array_size(v); i++)
            h = mix(h * 31 + hash(json_array_get(v, i)));
        return h;
    }
    case JSON_OBJECT: {
        uint64_t h = 0x5a5a5a5aULL;
        const char *key;
        json_t *m;
        json_object_foreach(v, key, m) h += mix(hash_bytes(key, strlen(key)) ^ (hash(m) * 3));
        return mix(h);
    }
    case JSON_TRUE:
        return 1;
    case JSON_FALSE:
        return 2;
    case JSON_NULL:
        return 3;
    }
    return 0;
}

typedef struct hashed {
    uint64_t h;
    size_t i;
} hashed_t;

static int hashed_cmp(const void *a, const void *b) {
    const hashed_t *x = a, *y = b;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* The first duplicate of array a: *first < *second, *second as small as can be; *second is SIZE_MAX
 * when the items are unique. Sorting hashes costs O(n log n); only items with equal hashes are
 * compared. */
static int find_duplicate(json_t *a, size_t *first, size_t *second) {
    size_t n = json_array_size(a);
    *second = SIZE_MAX;
    if (n < 2)
        return 0;
    hashed_t *hs = flow__malloc(n * sizeof *hs);
    if (hs == NULL)
        return FLOW_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        hs[i].h = hash(json_array_get(a, i));
        hs[i].i = i;
    }
    qsort(hs, n, sizeof *hs, hashed_cmp);
    for (size_t run = 0, end; run < n; run = end) {
        end = run + 1;
        while (end < n && hs[end].h == hs[run].h)
            end++;
        /* Within a run, indexes ascend: the first item equal to an earlier one is this run's best. */
        int found = 0;
        for (size_t y = run + 1; y < end && !found; y++) {
            for (size_t x = run; x < y && !found; x++) {
                if (equal(json_array_get(a, hs[x].i), json_array_get(a, hs[y].i))) {
                    found = 1;
                    if (hs[y].i < *second) {
                        *first = hs[x].i;
                        *second = hs[y].i;
                    }
                }
            }
        }
    }
    flow__free(hs);
    return 0;
}

/* ---- validating -------------------------------------------------------------------------------- */

typedef struct vctx {
    flow_problems_t *problems; /* NULL: report nothing, and stop at the first problem */
    int invalid;               /* a problem was found */
    int rc;                    /* 0, or the error that stopped the validation (FLOW_ENOMEM) */
    flow_re_run_t *run;        /* the patterns' budget, shared by every check of one validation */
    char *limited;             /* a regex limit stopped the validation: why (LIMITED_MAX bytes), else "" */
} vctx_t;

static void fail(vctx_t *c, const flow__jpath_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(vctx_t *c, const flow__jpath_t *at, const char *fmt, ...) {
    va_list ap;
    c->invalid = 1;
    if (c->rc != 0)
        return;
    va_start(ap, fmt);
    c->rc = flow__jpath_reportv(c->problems, at, fmt, ap);
    va_end(ap);
}

/* Nothing more to learn: an error, a regex limit, or a problem when only a yes or no is wanted. */
static int done(const vctx_t *c) {
    return c->rc != 0 || c->limited[0] != '\0' || (c->invalid && c->problems == NULL);
}

static const char *plural(size_t n, const char *one, const char *many) {
    return n == 1 ? one : many;
}

static int has_type(json_t *v, unsigned wanted) {
    switch (json_typeof(v)) {
    case JSON_NULL:
        return wanted & T_NULL;
    case JSON_TRUE:
    case JSON_FALSE:
        return wanted & T_BOOLEAN;
    case JSON_OBJECT:
        return wanted & T_OBJECT;
    case JSON_ARRAY:
        return wanted & T_ARRAY;
    case JSON_STRING:
        return wanted & T_STRING;
    case JSON_INTEGER:
        return wanted & (T_NUMBER | T_INTEGER);
    case JSON_REAL: {
        double d = json_real_value(v);
        return (wanted & T_NUMBER) || ((wanted & T_INTEGER) && d == floor(d));
    }
    }
    return 0;
}

static void check_type(vctx_t *c, const snode_t *n, json_t *v, const flow__jpath_t *at) {
    char buf[160];
    size_t len = 0, count = 0, seen = 0;

    if (n->types == 0 || has_type(v, n->types))
        return;
    for (size_t t = 0; t < NTYPES; t++)
        count += (n->types & types[t].bit) != 0;
    buf[0] = '\0';
    for (size_t t = 0; t < NTYPES; t++) {
        if (!(n->types & types[t].bit))
            continue;
        seen++;
        const char *sep = seen == 1 ? "" : seen == count ? " or " : ", ";
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", sep, types[t].phrase);
    }
    fail(c, at, "must be %s", buf);
}

static int is_multiple(json_t *v, json_t *m) {
    if (json_is_integer(v) && json_is_integer(m))
        return json_integer_value(v) % json_integer_value(m) == 0; /* m > 0: checked when compiled */
    long double x = json_is_integer(v) ? (long double)json_integer_value(v) : json_real_value(v);
    long double q = x / (long double)json_number_value(m);
    /* Decimal fractions are not exact in binary: 0.3 / 0.1 is 2.9999999999999996. */
    return isfinite(q) && fabsl(q - roundl(q)) <= 1e-9L * fmaxl(1.0L, fabsl(q));
}

static void check_number(vctx_t *c, const snode_t *n, json_t *v, const flow__jpath_t *at) {
    quote_t q;
    if (n->minimum != NULL && num_cmp(v, n->minimum) < 0)
        fail(c, at, "must be >= %s", quote(&q, n->minimum));
    if (n->maximum != NULL && num_cmp(v, n->maximum) > 0)
        fail(c, at, "must be <= %s", quote(&q, n->maximum));
    if (n->exclusive_min != NULL && num_cmp(v, n->exclusive_min) <= 0)
        fail(c, at, "must be > %s", quote(&q, n->exclusive_min));
    if (n->exclusive_max != NULL && num_cmp(v, n->exclusive_max) >= 0)
        fail(c, at, "must be < %s", quote(&q, n->exclusive_max));
    if (n->multiple_of != NULL && !is_multiple(v, n->multiple_of))
        fail(c, at, "must be a multiple of %s", quote(&q, n->multiple_of));
}

static size_t code_points(const char *s, size_t len) {
    size_t count = 0;
    for (size_t i = 0; i < len; i++)
        count += ((unsigned char)s[i] & 0xC0) != 0x80;
    return count;
}

static void check_string(vctx_t *c, const snode_t *n, json_t *v, const flow__jpath_t *at) {
    if (n->min_length > 0 || n->max_length != SIZE_MAX) {
        size_t len = code_points(json_string_value(v), json_string_length(v));
        if (len < n->min_length)
            fail(c, at, "must be at least %zu %s long", n->min_length,
                 plural(n->min_length, "character", "characters"));
        if (len > n->max_length)
            fail(c, at, "must be at most %zu %s long", n->max_length,
                 plural(n->max_length, "character", "characters"));
    }
    if (n->re != NULL && !done(c)) {
        char why[WHY_MAX];
        int rc = flow_re_match(c->run, n->re, json_string_value(v), json_string_length(v), why, sizeof why);
        if (rc == 0) {
            fail(c, at, "must match the pattern %s", flow_re_pattern(n->re));
        } else if (rc == FLOW_ETOOBIG) {
            /* the answer is refused, and nothing more is checked: the budget is spent or nearly */
            snprintf(c->limited, LIMITED_MAX, "cannot be checked against the pattern %.60s: %s", flow_re_pattern(n->re),
                     why);
            fail(c, at, "%s", c->limited);
        } else if (rc == FLOW_EINVAL) {
            fail(c, at, "%s", why);
        } else if (rc < 0) {
            c->rc = rc;
        }
    }
}

static void validate(vctx_t *c, const snode_t *n, json_t *v, const flow__jpath_t *at);

static void check_array(vctx_t *c, const snode_t *n, json_t *v, const flow__jpath_t *at) {
    size_t size = json_array_size(v);

    if (size < n->min_items)
        fail(c, at, "must have at least %zu %s", n->min_items, plural(n->min_items, "item", "items"));
    if (size > n->max_items)
        fail(c, at, "must have at most %zu %s", n->max_items, plural(n->max_items, "item", "items"));
    if (n->unique_items && !done(c)) {
        size_t first = 0, second;
        c->rc = find_duplicate(v, &first, &second);
        if (c->rc == 0 && second != SIZE_MAX)
            fail(c, at, "must not contain duplicates (items %zu and %zu are equal)", first, second);
    }
    for (size_t i = 0; n->items != NULL && i < size && !done(c); i++) {
        flow__jpath_t here = flow__jpath_index(at, i);
        validate(c, n->items, json_array_get(v, i), &here);
    }
}

static void check_object(vctx_t *c, const snode_t *n, json_t *v, const flow__jpath_t *at) {
    size_t size = json_object_size(v);
    const char *key;
    json_t *m;

    if (size < n->min_props)
        fail(c, at, "must have at least %zu %s", n->min_props,
             plural(n->min_props, "property", "properties"));
    if (size > n->max_props)
        fail(c, at, "must have at most %zu %s", n->max_props, plural(n->max_props, "property", "properties"));
    for (size_t i = 0; n->required != NULL && i < json_array_size(n->required) && !done(c); i++) {
        const char *name = json_string_value(json_array_get(n->required, i));
        flow__jpath_t here = flow__jpath_key(at, name);
        if (json_object_get(v, name) == NULL)
            fail(c, &here, "is required");
    }
    for (size_t i = 0; i < n->nprops && !done(c); i++) {
        json_t *pv = json_object_get(v, n->props[i].name);
        flow__jpath_t here = flow__jpath_key(at, n->props[i].name);
        if (pv != NULL)
            validate(c, n->props[i].s, pv, &here);
    }
    if (n->additional == NULL)
        return;
    json_object_foreach(v, key, m) {
        flow__jpath_t here = flow__jpath_key(at, key);
        if (done(c))
            break;
        if (n->props_obj == NULL || json_object_get(n->props_obj, key) == NULL)
            validate(c, n->additional, m, &here);
    }
}

/* Whether v matches s, found without reporting anything (for anyOf, oneOf and not). A regex limit
 * met on the way is no answer either way: it is reported and stops the validation. */
static int matches(vctx_t *c, const snode_t *s, json_t *v, const flow__jpath_t *at) {
    vctx_t quiet = {NULL, 0, 0, c->run, c->limited};
    validate(&quiet, s, v, at);
    if (quiet.rc != 0)
        c->rc = quiet.rc;
    else if (c->limited[0] != '\0')
        fail(c, at, "%s", c->limited);
    return quiet.rc == 0 && c->limited[0] == '\0' && !quiet.invalid;
}

static void check_combinations(vctx_t *c, const snode_t *n, json_t *v, const flow__jpath_t *at) {
    for (size_t i = 0; i < n->all_of.n && !done(c); i++)
        validate(c, n->all_of.v[i], v, at);
    if (n->any_of.n > 0 && !done(c)) {
        size_t i = 0;
        while (i < n->any_of.n && !matches(c, n->any_of.v[i], v, at) && !done(c))
            i++;
        if (i == n->any_of.n)
            fail(c, at, "must match at least one schema in anyOf");
    }
    if (n->one_of.n > 0 && !done(c)) {
        size_t found = 0, first = 0, second = 0;
        for (size_t i = 0; i < n->one_of.n && found < 2 && !done(c); i++) {
            if (matches(c, n->one_of.v[i], v, at)) {
                if (found++ == 0)
                    first = i;
                else
                    second = i;
            }
        }
        if (done(c))
            return;
        if (found == 0)
            fail(c, at, "must match exactly one schema in oneOf (it matches none)");
        else if (found == 2)
            fail(c, at, "must match exactly one schema in oneOf (it matches %zu and %zu)", first, second);
    }
    if (n->not_ != NULL && !done(c) && matches(c, n->not_, v, at))
        fail(c, at, "must not match the schema in not");
}

/* Applies n to v, recording what is wrong in c. Recursion as deep as the schema: at most
 * FLOW_SCHEMA_MAX_DEPTH. */
static void validate(vctx_t *c, const snode_t *n, json_t *v, const flow__jpath_t *at) {
    quote_t q;

    if (n->boolean >= 0) {
        if (!n->boolean)
            fail(c, at, "is not allowed");
        return;
    }
    check_type(c, n, v, at);
    if (n->enum_vals != NULL) {
        size_t i = 0;
        while (i < json_array_size(n->enum_vals) && !equal(v, json_array_get(n->enum_vals, i)))
            i++;
        if (i == json_array_size(n->enum_vals))
            fail(c, at, "must be one of %s", quote(&q, n->enum_vals));
    }
    if (n->const_val != NULL && !equal(v, n->const_val))
        fail(c, at, "must be equal to %s", quote(&q, n->const_val));
    if (done(c))
        return;
    if (json_is_number(v))
        check_number(c, n, v, at);
    else if (json_is_string(v))
        check_string(c, n, v, at);
    else if (json_is_array(v))
        check_array(c, n, v, at);
    else if (json_is_object(v))
        check_object(c, n, v, at);
    if (!done(c))
        check_combinations(c, n, v, at);
}

/* Reports the first array or object nested deeper than the limit, before anything recurses into
 * the instance. */
static void check_depth(vctx_t *c, json_t *v, const flow__jpath_t *at, unsigned depth) {
    if (!json_is_array(v) && !json_is_object(v))
        return;
    if (depth >= FLOW_SCHEMA_MAX_DEPTH) {
        fail(c, at, "nested deeper than %d levels", FLOW_SCHEMA_MAX_DEPTH);
        return;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v) && !c->invalid; i++) {
            flow__jpath_t here = flow__jpath_index(at, i);
            check_depth(c, json_array_get(v, i), &here, depth + 1);
        }
    } else {
        const char *key;
        json_t *m;
        json_object_foreach(v, key, m) {
            flow__jpath_t here = flow__jpath_key(at, key);
            if (c->invalid)
                break;
            check_depth(c, m, &here, depth + 1);
        }
    }
}

int flow_schema_validate(const flow_schema_t *s, json_t *instance, flow_problems_t *problems) {
    char limited[LIMITED_MAX] = "";
    flow_re_run_t run;
    vctx_t c = {problems, 0, 0, &run, limited};
    flow__jpath_t top = flow__jpath_top(NULL);

    if (s == NULL || instance == NULL)
        return FLOW_EINVAL;
    flow_re_run_init(&run, &s->limits);
    check_depth(&c, instance, &top, 0);
    if (!c.invalid)
        validate(&c, s->root, instance, &top);
    flow_re_run_end(&run);
    if (c.rc != 0)
        return c.rc;
    return c.invalid ? FLOW_EINVAL : 0;
}
