/* template.c: compiling params trees with references and templates, and evaluating them (the syntax
 * is in template.h). Compiling turns each string that needs work into a node (a reference, or text
 * segments and placeholders) and each object or array holding such strings into a node that lists
 * only those members; everything else is left to the source tree, which evaluation shares. */
#include "template.h"
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/buf.h"
#include "flow/doc.h" /* flow_template_set_max_text */
#include "flow/pointer.h"
#include "jpath.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))
#define TEXT_STACK 256  /* templates that evaluate to fewer bytes need no buffer on the heap */
#define MESSAGE_MAX 512 /* an eval error's message, cut beyond */

static size_t max_text = FLOW_TEMPLATE_MAX_TEXT;
static const char *max_text_name;

void flow_template_set_max_text(size_t bytes, const char *name) {
    max_text = bytes ? bytes : FLOW_TEMPLATE_MAX_TEXT;
    max_text_name = name;
}

static const struct {
    const char *name; /* after the "$" */
    size_t len;
    unsigned flag;
} roots[] = {
    {"shared", 6, FLOW_SCOPE_SHARED},
    {"params", 6, FLOW_SCOPE_PARAMS},
    {"item", 4, FLOW_SCOPE_ITEM},
};

enum filter { FILTER_URL, FILTER_JSON };

static const struct {
    const char *name;
    size_t len;
} filters[] = {{"url", 3}, {"json", 4}};

typedef struct ref {
    const char *text; /* "$shared/a/b", borrowed from the source tree */
    size_t len;
    unsigned root; /* index in roots[] */
    size_t ptr;    /* offset of the pointer in text */
} ref_t;

typedef struct seg {
    const char *lit; /* literal text (borrowed), or NULL for a placeholder */
    size_t lit_len;
    ref_t ref;
    unsigned char filter[FLOW_TEMPLATE_MAX_FILTERS];
    unsigned char nfilters;
} seg_t;

/* KIND_DYNREF: a reference whose pointer is a template ("$shared/order/{{$shared/i}}"): ref.root
 * and the pointer's segments, spliced escaped. */
typedef enum kind { KIND_CONST, KIND_REF, KIND_DYNREF, KIND_TEXT, KIND_OBJECT, KIND_ARRAY } kind_t;

typedef struct tnode tnode_t;

typedef struct member {
    const char *key; /* KIND_OBJECT: borrowed from the source object */
    size_t index;    /* KIND_ARRAY */
    tnode_t *node;
} member_t;

struct tnode {
    kind_t kind;
    json_t *src;   /* borrowed: the value this node compiles */
    json_t *value; /* KIND_CONST: new reference, a text whose escapes were resolved */
    ref_t ref;     /* KIND_REF; KIND_DYNREF: its root only */
    seg_t *segs;   /* KIND_TEXT, KIND_DYNREF */
    size_t nsegs;
    int pointer;       /* KIND_TEXT, KIND_DYNREF: splice values as JSON Pointer tokens (~0, ~1) */
    member_t *members; /* KIND_OBJECT, KIND_ARRAY: the members that need evaluating */
    size_t nmembers;
};

struct flow_tmpl {
    json_t *src;    /* new reference to the tree compiled */
    tnode_t *node;  /* NULL when nothing in it needs evaluating */
    unsigned roots; /* FLOW_SCOPE_* bits used */
};

/* ---- compiling --------------------------------------------------------------------------------- */

typedef struct cctx {
    flow__check_t check;
    unsigned allowed; /* FLOW_SCOPE_* bits the caller allows */
    unsigned used;
    int pointer; /* flow_template_compile_pointer: a template is a JSON Pointer's */
} cctx_t;

static void node_free(tnode_t *n) {
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->nmembers; i++)
        node_free(n->members[i].node);
    flow__free(n->members);
    flow__free(n->segs);
    json_decref(n->value);
    flow__free(n);
}

static tnode_t *node_new(kind_t kind, json_t *src) {
    tnode_t *n = flow__calloc(1, sizeof *n);
    if (n != NULL) {
        n->kind = kind;
        n->src = src;
    }
    return n;
}

static int is_blank(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* The column of byte offset off in s, counted in characters from 1. */
static size_t column(const char *s, size_t off) {
    size_t col = 1;
    for (size_t i = 0; i < off; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            col++;
    return col;
}

/* The "column N: " that starts a problem inside a template, or "" for a whole-string reference. */
static const char *col_prefix(char *buf, size_t size, const char *s, size_t off, int in_template) {
    if (!in_template)
        return "";
    snprintf(buf, size, "column %zu: ", column(s, off));
    return buf;
}

/* Reads the reference [s+off, s+off+len) (it starts with "$") into *r; a problem, reported, leaves
 * *ok 0. */
static int parse_ref(cctx_t *c, const flow__jpath_t *at, const char *s, size_t off, size_t len,
                     int in_template, ref_t *r, int *ok) {
    const char *text = s + off;
    char col[48];
    size_t root_len = 1;
    size_t bad;
    unsigned i;

    *ok = 0;
    while (root_len < len && text[root_len] != '/')
        root_len++;
    for (i = 0; i < sizeof roots / sizeof roots[0]; i++)
        if (root_len - 1 == roots[i].len && memcmp(text + 1, roots[i].name, roots[i].len) == 0)
            break;
    if (i == sizeof roots / sizeof roots[0])
        return flow__check_problem(&c->check, at,
                                   "%sunknown root \"%.*s\": expected $shared, $params or $item%s",
                                   col_prefix(col, sizeof col, s, off, in_template), (int)root_len, text,
                                   in_template ? "" : " (a literal \"$\" is written \"$$\")");
    if (!(c->allowed & roots[i].flag))
        return flow__check_problem(&c->check, at, "%s$%s is not available here",
                                   col_prefix(col, sizeof col, s, off, in_template), roots[i].name);
    if (flow_pointer_checkn(text + root_len, len - root_len, &bad) != 0)
        return flow__check_problem(&c->check, at,
                                   "%smalformed pointer \"%.*s\": \"~\" must be followed by \"0\" or \"1\"",
                                   col_prefix(col, sizeof col, s, off + root_len + bad, in_template),
                                   (int)(len - root_len), text + root_len);
    c->used |= roots[i].flag;
    r->text = text;
    r->len = len;
    r->root = i;
    r->ptr = root_len;
    *ok = 1;
    return 0;
}

/* Appends a segment to *segs (grown as needed; a string has fewer segments than bytes). */
static int add_seg(seg_t **segs, size_t *n, size_t *alloc, const seg_t *seg) {
    if (*n == *alloc) {
        size_t a = *alloc == 0 ? 4 : *alloc * 2;
        seg_t *p = flow__realloc(*segs, a * sizeof *p);
        if (p == NULL)
            return FLOW_ENOMEM;
        *segs = p;
        *alloc = a;
    }
    (*segs)[(*n)++] = *seg;
    return 0;
}

static int add_lit(seg_t **segs, size_t *n, size_t *alloc, const char *lit, size_t len) {
    if (len == 0)
        return 0;
    seg_t seg;
    memset(&seg, 0, sizeof seg);
    seg.lit = lit;
    seg.lit_len = len;
    return add_seg(segs, n, alloc, &seg);
}

/* Reads the placeholder whose content is [s+k, s+e) ("{{" at j) into *seg; *ok 0 when a problem
 * was reported. */
static int parse_placeholder(cctx_t *c, const flow__jpath_t *at, const char *s, size_t j, size_t k, size_t e,
                             seg_t *seg, int *ok) {
    size_t p = k;
    int rc, ref_ok;

    *ok = 0;
    memset(seg, 0, sizeof *seg);
    while (p < e && is_blank(s[p]))
        p++;
    if (p == e)
        return flow__check_problem(&c->check, at, "column %zu: empty placeholder", column(s, j));
    size_t ref_end = p;
    while (ref_end < e && s[ref_end] != '|')
        ref_end++;
    size_t q = ref_end;
    while (q > p && is_blank(s[q - 1]))
        q--;
    if (q == p || s[p] != '$')
        return flow__check_problem(
            &c->check, at, "column %zu: a placeholder must hold a reference ($shared, $params or $item)",
            column(s, p));
    rc = parse_ref(c, at, s, p, q - p, 1, &seg->ref, &ref_ok);
    if (rc != 0)
        return rc;
    int all_ok = ref_ok;
    /* Each "| name" after the reference. */
    for (size_t bar = ref_end; bar < e;) {
        size_t f = bar + 1, f_end;
        while (f < e && is_blank(s[f]))
            f++;
        f_end = f;
        while (f_end < e && s[f_end] != '|' && !is_blank(s[f_end]))
            f_end++;
        size_t next = f_end;
        while (next < e && is_blank(s[next]))
            next++;
        unsigned i;
        for (i = 0; i < sizeof filters / sizeof filters[0]; i++)
            if (f_end - f == filters[i].len && memcmp(s + f, filters[i].name, filters[i].len) == 0)
                break;
        if (f == f_end) {
            rc = flow__check_problem(&c->check, at, "column %zu: missing filter name after \"|\"",
                                     column(s, bar));
            all_ok = 0;
        } else if (next < e && s[next] != '|') {
            size_t end = e;
            while (is_blank(s[end - 1]))
                end--;
            rc = flow__check_problem(&c->check, at, "column %zu: unexpected \"%.*s\" after filter \"%.*s\"",
                                     column(s, next), (int)(end - next), s + next, (int)(f_end - f), s + f);
            all_ok = 0;
            next = e;
        } else if (i == sizeof filters / sizeof filters[0]) {
            rc = flow__check_problem(&c->check, at,
                                     "column %zu: unknown filter \"%.*s\": expected url or json",
                                     column(s, f), (int)(f_end - f), s + f);
            all_ok = 0;
        } else if (seg->nfilters == FLOW_TEMPLATE_MAX_FILTERS) {
            rc = flow__check_problem(&c->check, at, "column %zu: more than %d filters", column(s, f),
                                     FLOW_TEMPLATE_MAX_FILTERS);
            all_ok = 0;
        } else {
            seg->filter[seg->nfilters++] = (unsigned char)i;
        }
        if (rc != 0)
            return rc;
        bar = next;
    }
    *ok = all_ok;
    return 0;
}

/* A constant string from literal segments (a template whose escapes were all there was to it). */
static int const_text(const seg_t *segs, size_t n, json_t **out) {
    flow_buf_t b;
    int rc = 0;

    flow_buf_init(&b, max_text);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = flow_buf_add(&b, segs[i].lit, segs[i].lit_len);
    if (rc == 0) {
        *out = json_stringn_nocheck(b.data != NULL ? b.data : "", b.len);
        if (*out == NULL)
            rc = FLOW_ENOMEM;
    }
    flow_buf_free(&b);
    return rc;
}

/* Literal text of a JSON Pointer template: every "~" is an escape ("~0" or "~1") within it. 1 when
 * it is, else 0 with *bad the offset of the "~" that is not. */
static int pointer_literal_ok(const char *lit, size_t len, size_t *bad) {
    for (size_t i = 0; i < len; i++) {
        if (lit[i] != '~')
            continue;
        if (i + 1 >= len || (lit[i + 1] != '0' && lit[i + 1] != '1')) {
            *bad = i;
            return 0;
        }
        i++;
    }
    return 1;
}

/* Reads [s+from, s+len) as text with placeholders into *segs (*nsegs; the caller frees *segs).
 * *placeholders counts them; *bad is set when a problem was reported. */
static int parse_segments(cctx_t *c, const flow__jpath_t *at, const char *s, size_t from,
                          size_t len, seg_t **segs, size_t *nsegs, int *placeholders, int *bad) {
    size_t alloc = 0, lit = from, i = from;
    seg_t seg;
    int rc = 0, ok;

    while (i < len) {
        const char *open = memmem(s + i, len - i, "{{", 2);
        if (open == NULL)
            break;
        size_t j = (size_t)(open - s);
        if (j + 3 < len && s[j + 2] == '{' && s[j + 3] == '{') {
            /* "{{{{" is a literal "{{": keep the first two braces, skip the others */
            rc = add_lit(segs, nsegs, &alloc, s + lit, j + 2 - lit);
            if (rc != 0)
                return rc;
            lit = i = j + 4;
            continue;
        }
        if (j + 2 < len && s[j + 2] == '{') {
            i = j + 1; /* "{{{": the first brace is text, a placeholder may open at the next */
            continue;
        }
        const char *close = memmem(s + j + 2, len - j - 2, "}}", 2);
        if (close == NULL) {
            *bad = 1;
            return flow__check_problem(&c->check, at, "column %zu: unclosed \"{{\"", column(s, j));
        }
        size_t e = (size_t)(close - s);
        rc = parse_placeholder(c, at, s, j, j + 2, e, &seg, &ok);
        if (rc != 0)
            return rc;
        if (!ok) {
            *bad = 1;
        } else {
            rc = add_lit(segs, nsegs, &alloc, s + lit, j - lit);
            if (rc == 0)
                rc = add_seg(segs, nsegs, &alloc, &seg);
            if (rc != 0)
                return rc;
            (*placeholders)++;
        }
        lit = i = e + 2;
    }
    return add_lit(segs, nsegs, &alloc, s + lit, len - lit);
}

/* The literal parts of a pointer template must keep its escapes whole (a placeholder's value is
 * escaped when spliced, so it cannot complete a "~"). */
static int check_pointer_segments(cctx_t *c, const flow__jpath_t *at, const char *s,
                                  const seg_t *segs, size_t nsegs, int *bad) {
    for (size_t i = 0; i < nsegs; i++) {
        size_t off;
        if (segs[i].lit == NULL || pointer_literal_ok(segs[i].lit, segs[i].lit_len, &off))
            continue;
        *bad = 1;
        return flow__check_problem(
            &c->check, at,
            "column %zu: malformed pointer: \"~\" must be followed by \"0\" or \"1\"",
            column(s, (size_t)(segs[i].lit - s) + off));
    }
    return 0;
}

/* A reference whose pointer holds placeholders: the root, then the pointer as a template whose
 * values are spliced as pointer tokens. */
static int compile_dynref(cctx_t *c, json_t *str, const flow__jpath_t *at, tnode_t **out) {
    const char *s = json_string_value(str);
    size_t len = json_string_length(str), root_len = 1;
    seg_t *segs = NULL;
    size_t nsegs = 0;
    int rc, ok, placeholders = 0, bad = 0;
    ref_t r;

    while (root_len < len && s[root_len] != '/')
        root_len++;
    rc = parse_ref(c, at, s, 0, root_len, 0, &r, &ok);
    if (rc != 0 || !ok)
        return rc;
    rc = parse_segments(c, at, s, root_len, len, &segs, &nsegs, &placeholders, &bad);
    if (rc == 0 && !bad)
        rc = check_pointer_segments(c, at, s, segs, nsegs, &bad);
    if (rc == 0 && !bad) {
        *out = node_new(KIND_DYNREF, str);
        if (*out == NULL) {
            rc = FLOW_ENOMEM;
        } else {
            (*out)->ref = r;
            (*out)->segs = segs;
            (*out)->nsegs = nsegs;
            (*out)->pointer = 1;
            segs = NULL;
        }
    }
    flow__free(segs);
    return rc;
}

/* A string: nothing (*out NULL), a reference, or a template (see template.h for the rules). */
static int compile_string(cctx_t *c, json_t *str, const flow__jpath_t *at, tnode_t **out) {
    const char *s = json_string_value(str);
    size_t len = json_string_length(str);
    seg_t *segs = NULL;
    size_t nsegs = 0, start = 0;
    int rc = 0, ok, placeholders = 0, bad = 0;
    tnode_t *n = NULL;

    *out = NULL;
    if (len > 0 && s[0] == '$' && (len == 1 || s[1] != '$')) {
        if (memmem(s, len, "{{", 2) != NULL)
            return compile_dynref(c, str, at, out);
        ref_t r;
        rc = parse_ref(c, at, s, 0, len, 0, &r, &ok);
        if (rc != 0 || !ok)
            return rc;
        n = node_new(KIND_REF, str);
        if (n == NULL)
            return FLOW_ENOMEM;
        n->ref = r;
        *out = n;
        return 0;
    }
    if (len >= 2 && s[0] == '$')
        start = 1; /* "$$": the first "$" is dropped */
    if (start == 0 && memmem(s, len, "{{", 2) == NULL)
        return 0; /* the common case: plain text, nothing to do at run time */
    rc = parse_segments(c, at, s, start, len, &segs, &nsegs, &placeholders, &bad);
    if (rc == 0 && !bad && c->pointer && placeholders > 0) {
        if (s[start] != '/') {
            bad = 1;
            rc = flow__check_problem(&c->check, at, "a JSON Pointer starts with \"/\"");
        } else {
            rc = check_pointer_segments(c, at, s, segs, nsegs, &bad);
        }
    }
    if (rc != 0 || bad)
        goto out;
    n = node_new(placeholders > 0 ? KIND_TEXT : KIND_CONST, str);
    if (n == NULL) {
        rc = FLOW_ENOMEM;
        goto out;
    }
    if (placeholders == 0) {
        rc = const_text(segs, nsegs, &n->value);
    } else {
        n->segs = segs;
        n->nsegs = nsegs;
        n->pointer = c->pointer;
        segs = NULL;
    }
out:
    flow__free(segs);
    if (rc != 0) {
        node_free(n);
        n = NULL;
    }
    *out = n;
    return rc;
}

static int add_member(tnode_t *n, size_t max, const char *key, size_t index, tnode_t *child) {
    if (n->members == NULL) {
        n->members = flow__malloc(max * sizeof *n->members);
        if (n->members == NULL)
            return FLOW_ENOMEM;
    }
    n->members[n->nmembers].key = key;
    n->members[n->nmembers].index = index;
    n->members[n->nmembers].node = child;
    n->nmembers++;
    return 0;
}

/* Compiles v (borrowed) at depth (0 for the top) into *out: NULL when v needs no evaluation. */
static int compile_value(cctx_t *c, json_t *v, const flow__jpath_t *at, unsigned depth, tnode_t **out) {
    tnode_t *n = NULL, *child = NULL;
    int rc = 0;

    *out = NULL;
    if (json_is_string(v))
        return compile_string(c, v, at, out);
    if (!json_is_object(v) && !json_is_array(v))
        return 0;
    if (depth >= FLOW_TEMPLATE_MAX_DEPTH)
        return flow__check_problem(&c->check, at, "nested deeper than %d levels", FLOW_TEMPLATE_MAX_DEPTH);
    n = node_new(json_is_object(v) ? KIND_OBJECT : KIND_ARRAY, v);
    if (n == NULL)
        return FLOW_ENOMEM;
    if (json_is_object(v)) {
        const char *key;
        json_t *m;
        json_object_foreach(v, key, m) {
            flow__jpath_t here = flow__jpath_key(at, key);
            rc = compile_value(c, m, &here, depth + 1, &child);
            if (rc == 0 && child != NULL)
                rc = add_member(n, json_object_size(v), key, 0, child);
            if (rc != 0)
                goto out;
            child = NULL;
        }
    } else {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) {
            flow__jpath_t here = flow__jpath_index(at, i);
            rc = compile_value(c, m, &here, depth + 1, &child);
            if (rc == 0 && child != NULL)
                rc = add_member(n, json_array_size(v), NULL, i, child);
            if (rc != 0)
                goto out;
            child = NULL;
        }
    }
out:
    node_free(child);
    if (rc != 0 || n->nmembers == 0) {
        node_free(n);
        n = NULL;
    }
    *out = n;
    return rc;
}

/* Compiles tmpl; on return *node is NULL unless it succeeded and tmpl needs evaluation. */
static int compile(json_t *tmpl, const char *where, unsigned allowed, int pointer,
                   flow_problems_t *problems, tnode_t **node, unsigned *used) {
    cctx_t c = {{problems, 0}, allowed, 0, pointer};
    flow__jpath_t top = flow__jpath_top(where);

    *node = NULL;
    if (tmpl == NULL)
        return FLOW_EINVAL;
    int rc = compile_value(&c, tmpl, &top, 0, node);
    if (rc == 0 && c.check.found > 0)
        rc = FLOW_ELOAD;
    if (rc != 0) {
        node_free(*node);
        *node = NULL;
    }
    *used = c.used;
    return rc;
}

static int compile_tmpl(json_t *tmpl, const char *where, unsigned roots_allowed, int pointer,
                        flow_tmpl_t **out, flow_problems_t *problems) {
    tnode_t *node = NULL;
    flow_tmpl_t *t = NULL;
    unsigned used;

    if (out != NULL)
        *out = NULL;
    int rc = compile(tmpl, where, roots_allowed, pointer, problems, &node, &used);
    if (rc != 0 || out == NULL)
        goto out;
    t = flow__malloc(sizeof *t);
    if (t == NULL) {
        rc = FLOW_ENOMEM;
        goto out;
    }
    t->src = json_incref(tmpl);
    t->node = node;
    t->roots = used;
    node = NULL;
    *out = t;
out:
    node_free(node);
    return rc;
}

int flow_template_refs(json_t *str, int (*fn)(void *data, const char *ref, size_t len), void *data) {
    cctx_t c = {{NULL, 0}, FLOW_SCOPE_ALL, 0, 0};
    flow__jpath_t top = flow__jpath_top(NULL);
    tnode_t *n = NULL;

    if (!json_is_string(str))
        return 0;
    int rc = compile_string(&c, str, &top, &n);
    if (rc == 0 && n != NULL && n->kind == KIND_REF)
        rc = fn(data, n->ref.text, n->ref.len);
    /* A reference whose pointer is a template: its root and the pointer's first token when that
     * token is written out whole (it ends at a "/" before any placeholder). */
    if (rc == 0 && n != NULL && n->kind == KIND_DYNREF && n->nsegs > 0 && n->segs[0].lit != NULL) {
        const seg_t *s0 = &n->segs[0];
        if (n->nsegs == 1 || (s0->lit_len > 1 && memchr(s0->lit + 1, '/', s0->lit_len - 1) != NULL))
            rc = fn(data, n->ref.text, (size_t)(s0->lit - n->ref.text) + s0->lit_len);
    }
    for (size_t i = 0; rc == 0 && n != NULL && (n->kind == KIND_TEXT || n->kind == KIND_DYNREF) &&
                       i < n->nsegs; i++)
        if (n->segs[i].lit == NULL)
            rc = fn(data, n->segs[i].ref.text, n->segs[i].ref.len);
    node_free(n);
    return rc;
}

int flow_template_compile(json_t *tmpl, const char *where, unsigned roots_allowed,
                          flow_tmpl_t **out, flow_problems_t *problems) {
    return compile_tmpl(tmpl, where, roots_allowed, 0, out, problems);
}

int flow_template_compile_pointer(json_t *str, const char *where, unsigned roots_allowed,
                                  flow_tmpl_t **out, flow_problems_t *problems) {
    if (out != NULL)
        *out = NULL;
    if (!json_is_string(str))
        return FLOW_EINVAL;
    return compile_tmpl(str, where, roots_allowed, 1, out, problems);
}

int flow_template_check(json_t *tmpl, const char *where, unsigned roots_allowed, flow_problems_t *problems) {
    return flow_template_compile(tmpl, where, roots_allowed, NULL, problems);
}

void flow_tmpl_free(flow_tmpl_t *t) {
    if (t == NULL)
        return;
    node_free(t->node);
    json_decref(t->src);
    flow__free(t);
}

unsigned flow_tmpl_roots(const flow_tmpl_t *t) {
    return t->roots;
}

/* ---- evaluating -------------------------------------------------------------------------------- */

static int set_error(flow_error_t *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int set_error(flow_error_t *err, int code, const char *fmt, ...) {
    char msg[MESSAGE_MAX];
    va_list ap;

    if (err == NULL)
        return code;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof msg ? sizeof msg - 1 : (size_t)n;
    flow__free(err->message);
    err->code = code;
    err->message = flow__malloc(len + 1);
    if (err->message != NULL) {
        memcpy(err->message, msg, len);
        err->message[len] = '\0';
    }
    return code;
}

static int resolve(const ref_t *r, const flow_scope_t *scope, json_t **v, flow_error_t *err) {
    json_t *root = NULL;
    if (scope != NULL)
        root = r->root == 0 ? scope->shared : r->root == 1 ? scope->params : scope->item;
    if (root == NULL || flow_pointer_getn(root, r->text + r->ptr, r->len - r->ptr, v) != 0)
        return set_error(err, FLOW_ENOTFOUND, "%.*s not found", (int)r->len, r->text);
    return 0;
}

/* Where spliced text goes: into b, percent-encoded or not. rc keeps the error of a dump callback. */
typedef struct sink {
    flow_buf_t *b;
    int url;
    int rc;
} sink_t;

static int is_unreserved(unsigned char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
           ch == '.' || ch == '_' || ch == '~';
}

static int sink_write(sink_t *k, const char *s, size_t len) {
    static const char hex[] = "0123456789ABCDEF";
    if (!k->url)
        return flow_buf_add(k->b, s, len);
    size_t run = 0; /* unreserved bytes not yet written */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (is_unreserved(ch)) {
            run++;
            continue;
        }
        char esc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
        int rc = flow_buf_add(k->b, s + i - run, run);
        if (rc == 0)
            rc = flow_buf_add(k->b, esc, 3);
        if (rc != 0)
            return rc;
        run = 0;
    }
    return flow_buf_add(k->b, s + len - run, run);
}

static int dump_cb(const char *buffer, size_t size, void *data) {
    sink_t *k = data;
    k->rc = sink_write(k, buffer, size);
    return k->rc == 0 ? 0 : -1;
}

/* v's JSON text, or its text as spliced without filters (as_json 0: a string is its bytes). */
static int write_value(sink_t *k, json_t *v, int as_json) {
    if (!as_json && json_is_string(v))
        return sink_write(k, json_string_value(v), json_string_length(v));
    k->rc = 0;
    if (json_dump_callback(v, dump_cb, k, DUMP_FLAGS) != 0)
        return k->rc != 0 ? k->rc : FLOW_ENOMEM;
    return 0;
}

/* Applies one filter to v, writing the result into b. */
static int apply_filter(flow_buf_t *b, json_t *v, unsigned filter) {
    sink_t k = {b, filter == FILTER_URL, 0};
    return write_value(&k, v, filter == FILTER_JSON);
}

/* Splices v (borrowed) into b through the segment's filters. All but the last filter make an
 * intermediate string; the last one writes into b directly, so one filter costs no allocation. */
static int splice_value(flow_buf_t *b, json_t *v, const seg_t *seg) {
    json_t *tmp = NULL;
    int rc = 0;

    for (unsigned i = 0; i + 1 < seg->nfilters && rc == 0; i++) {
        flow_buf_t t;
        flow_buf_init(&t, max_text);
        rc = apply_filter(&t, v, seg->filter[i]);
        if (rc == 0) {
            json_t *s = json_stringn_nocheck(t.data != NULL ? t.data : "", t.len);
            if (s == NULL)
                rc = FLOW_ENOMEM;
            json_decref(tmp);
            tmp = s;
            v = s;
        }
        flow_buf_free(&t);
    }
    if (rc == 0) {
        if (seg->nfilters > 0) {
            rc = apply_filter(b, v, seg->filter[seg->nfilters - 1]);
        } else {
            sink_t k = {b, 0, 0};
            rc = write_value(&k, v, 0);
        }
    }
    json_decref(tmp);
    return rc;
}

/* Splices v as a JSON Pointer token: spliced as text (filters applied), then "~" as "~0" and "/" as
 * "~1", so that a value holding either names one member. */
static int splice_token(flow_buf_t *b, json_t *v, const seg_t *seg) {
    char stack[TEXT_STACK];
    flow_buf_t t;
    flow_buf_init_storage(&t, stack, sizeof stack, max_text);
    int rc = splice_value(&t, v, seg);
    size_t run = 0;
    for (size_t i = 0; rc == 0 && i < t.len; i++) {
        char ch = t.data[i];
        if (ch != '~' && ch != '/') {
            run++;
            continue;
        }
        rc = flow_buf_add(b, t.data + i - run, run);
        if (rc == 0)
            rc = flow_buf_add(b, ch == '~' ? "~0" : "~1", 2);
        run = 0;
    }
    if (rc == 0)
        rc = flow_buf_add(b, t.data + t.len - run, run);
    flow_buf_free(&t);
    return rc;
}

/* The text of n's segments into b; on error err is set. */
static int eval_segs(const tnode_t *n, const flow_scope_t *scope, flow_buf_t *b,
                     flow_error_t *err) {
    int rc = 0;
    for (size_t i = 0; i < n->nsegs && rc == 0; i++) {
        const seg_t *seg = &n->segs[i];
        json_t *v;
        if (seg->lit != NULL) {
            rc = flow_buf_add(b, seg->lit, seg->lit_len);
        } else {
            rc = resolve(&seg->ref, scope, &v, err);
            if (rc != 0)
                return rc; /* err is set */
            rc = n->pointer ? splice_token(b, v, seg) : splice_value(b, v, seg);
        }
    }
    if (rc == FLOW_ETOOBIG)
        set_error(err, rc, "template %.*s gives more than %zu bytes%s%s%s", 200,
                  json_string_value(n->src), max_text, max_text_name ? " (" : "",
                  max_text_name ? max_text_name : "",
                  max_text_name ? ")" : "");
    else if (rc != 0)
        set_error(err, rc, "out of memory");
    return rc;
}

static int eval_text(const tnode_t *n, const flow_scope_t *scope, json_t **out, flow_error_t *err) {
    char stack[TEXT_STACK];
    flow_buf_t b;

    flow_buf_init_storage(&b, stack, sizeof stack, max_text);
    int rc = eval_segs(n, scope, &b, err);
    if (rc == 0) {
        /* Every piece is valid UTF-8 cut at ASCII boundaries, so the whole is too. */
        *out = json_stringn_nocheck(b.data, b.len);
        if (*out == NULL)
            rc = set_error(err, FLOW_ENOMEM, "out of memory");
    }
    flow_buf_free(&b);
    return rc;
}

/* A reference whose pointer is a template: the pointer is evaluated first, and messages show it
 * evaluated ("$shared/order/3 not found"). */
static int eval_dynref(const tnode_t *n, const flow_scope_t *scope, json_t **out,
                       flow_error_t *err) {
    char stack[TEXT_STACK];
    flow_buf_t b;
    json_t *v = NULL, *root = NULL;

    flow_buf_init_storage(&b, stack, sizeof stack, max_text);
    int rc = eval_segs(n, scope, &b, err);
    if (rc == 0) {
        if (scope != NULL)
            root = n->ref.root == 0   ? scope->shared
                   : n->ref.root == 1 ? scope->params
                                      : scope->item;
        if (root == NULL || flow_pointer_getn(root, b.len ? b.data : "", b.len, &v) != 0)
            rc = set_error(err, FLOW_ENOTFOUND, "$%s%.*s not found", roots[n->ref.root].name,
                           (int)(b.len < 400 ? b.len : 400), b.len ? b.data : "");
        else
            *out = json_incref(v);
    }
    flow_buf_free(&b);
    return rc;
}

/* Recursion as deep as the compiled tree: FLOW_TEMPLATE_MAX_DEPTH at most. */
static int eval_node(const tnode_t *n, const flow_scope_t *scope, json_t **out, flow_error_t *err) {
    json_t *v = NULL, *res = NULL;
    int rc = 0;

    *out = NULL;
    switch (n->kind) {
    case KIND_CONST:
        *out = json_incref(n->value);
        return 0;
    case KIND_REF:
        rc = resolve(&n->ref, scope, &v, err);
        if (rc == 0)
            *out = json_incref(v);
        return rc;
    case KIND_DYNREF:
        return eval_dynref(n, scope, out, err);
    case KIND_TEXT:
        return eval_text(n, scope, out, err);
    case KIND_OBJECT:
    case KIND_ARRAY:
        break;
    }
    res = json_copy(n->src); /* shallow: the members that need no evaluation are shared */
    if (res == NULL) {
        rc = set_error(err, FLOW_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n->nmembers; i++) {
        const member_t *m = &n->members[i];
        rc = eval_node(m->node, scope, &v, err);
        if (rc != 0)
            goto out;
        int failed = n->kind == KIND_OBJECT ? json_object_set_new(res, m->key, v)
                                            : json_array_set_new(res, m->index, v);
        if (failed) {
            rc = set_error(err, FLOW_ENOMEM, "out of memory");
            goto out;
        }
    }
    *out = res;
    res = NULL;
out:
    json_decref(res);
    return rc;
}

int flow_tmpl_eval(const flow_tmpl_t *t, const flow_scope_t *scope, json_t **out, flow_error_t *err) {
    if (out == NULL)
        return FLOW_EINVAL;
    *out = NULL;
    if (t == NULL)
        return set_error(err, FLOW_EINVAL, "no template");
    if (t->node == NULL) {
        *out = json_incref(t->src);
        return 0;
    }
    return eval_node(t->node, scope, out, err);
}

int flow_template_eval(json_t *tmpl, const flow_scope_t *scope, json_t **out, flow_error_t *err) {
    flow_problems_t problems = FLOW_PROBLEMS_INIT;
    tnode_t *node = NULL;
    unsigned used;
    int rc;

    if (out == NULL)
        return FLOW_EINVAL;
    *out = NULL;
    rc = compile(tmpl, NULL, FLOW_SCOPE_ALL, 0, &problems, &node, &used);
    if (rc == FLOW_ELOAD) {
        /* FLOW_ELOAD means a problem was found, and the first one is always kept. */
        const flow_problem_t *p = &problems.items[0];
        rc = set_error(err, FLOW_EINVAL, "%s%s%s", p->where, p->where[0] != '\0' ? ": " : "", p->message);
    } else if (rc != 0) {
        rc = set_error(err, rc, rc == FLOW_EINVAL ? "no template" : "out of memory");
    } else if (node == NULL) {
        *out = json_incref(tmpl);
    } else {
        rc = eval_node(node, scope, out, err);
    }
    node_free(node);
    flow_problems_clear(&problems);
    return rc;
}
