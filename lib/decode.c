/* decode.c: YAML to JSON on libyaml's event parser, and finding a ``` fence (decode.h).
 *
 * libyaml's document loader (yaml_parser_load) is not used: it expands nothing but keeps every
 * alias as a node graph, with no cap on nesting or size, and it cannot say where an answer stops
 * fitting our caps. Reading events lets us type scalars by YAML 1.2's core schema (libyaml gives
 * only text), copy aliases under the caps, and stop at the first node past them. The fence finder
 * is hand-written: no library of ours reads Markdown, and it is a few lines. */
#include "decode.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "internal.h"

#define TAG_STR "tag:yaml.org,2002:str"
#define TAG_NULL "tag:yaml.org,2002:null"
#define TAG_BOOL "tag:yaml.org,2002:bool"
#define TAG_INT "tag:yaml.org,2002:int"
#define TAG_FLOAT "tag:yaml.org,2002:float"

/* An open sequence or mapping. */
typedef struct frame {
    json_t *value;       /* the container being filled (owned by the frame until closed) */
    char *key;           /* mapping: the key waiting for its value, or NULL */
    char *anchor;        /* the anchor of this container, or NULL */
    size_t nodes_before; /* the decoder's counts when it opened: its size is the difference */
    size_t bytes_before;
    unsigned height;  /* the most levels of containers in one of its members so far */
    yaml_mark_t mark; /* where it starts, for messages */
} frame_t;

typedef struct decoder {
    const char *text;
    size_t len;
    frame_t stack[FLOW_YAML_MAX_DEPTH];
    unsigned depth;
    size_t nodes, bytes;
    json_t *anchors; /* name -> [value, nodes, bytes, height] of completed anchored nodes */
    json_t *root;
    int have_root;
    flow_error_t *err;
} decoder_t;

static int fail(decoder_t *d, int code, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(decoder_t *d, int code, yaml_mark_t mark, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return flow__set_error(d->err, code, "line %zu, column %zu: %s", mark.line + 1, mark.column + 1,
                           msg);
}

/* The place of a byte offset, for reader errors (libyaml gives only the offset for those). */
static yaml_mark_t mark_at(const char *text, size_t len, size_t offset) {
    yaml_mark_t m = {0, 0, 0};
    for (size_t i = 0; i < offset && i < len; i++) {
        if (text[i] == '\n') {
            m.line++;
            m.column = 0;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            m.column++;
        }
    }
    m.index = offset;
    return m;
}

static int parser_error(decoder_t *d, const yaml_parser_t *p) {
    yaml_mark_t mark = p->problem_mark;
    const char *problem = p->problem ? p->problem : "not YAML";
    if (p->error == YAML_MEMORY_ERROR)
        return flow__set_error(d->err, FLOW_ENOMEM, "out of memory");
    if (p->error == YAML_READER_ERROR)
        return fail(d, FLOW_EINVAL, mark_at(d->text, d->len, p->problem_offset), "%s", problem);
    if (p->context != NULL)
        return fail(d, FLOW_EINVAL, mark, "%s %s", problem, p->context);
    return fail(d, FLOW_EINVAL, mark, "%s", problem);
}

/* ---- scalars: the core schema ---- */

static int is_one_of(const char *s, const char *const *names) {
    for (; *names != NULL; names++)
        if (strcmp(s, *names) == 0)
            return 1;
    return 0;
}

static const char *const null_names[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const true_names[] = {"true", "True", "TRUE", NULL};
static const char *const false_names[] = {"false", "False", "FALSE", NULL};

static int all_digits(const char *s, int base) {
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++) {
        int ok = base == 16  ? ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') ||
                               (*s >= 'A' && *s <= 'F'))
                 : base == 8 ? (*s >= '0' && *s <= '7')
                             : (*s >= '0' && *s <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

/* An integer of the core schema, or NULL when s is none. Past 64 bits it becomes a real. */
static json_t *core_int(const char *s) {
    const char *digits = s;
    int base = 10;
    if (s[0] == '0' && s[1] == 'o') {
        base = 8;
        digits = s + 2;
    } else if (s[0] == '0' && s[1] == 'x') {
        base = 16;
        digits = s + 2;
    } else if (s[0] == '-' || s[0] == '+') {
        digits = s + 1;
    }
    if (!all_digits(digits, base))
        return NULL;
    errno = 0;
    if (base == 10) {
        long long v = strtoll(s, NULL, 10);
        if (errno == 0)
            return json_integer((json_int_t)v);
        return json_real(strtod(s, NULL));
    }
    unsigned long long v = strtoull(digits, NULL, base);
    if (errno == 0 && v <= (unsigned long long)LLONG_MAX)
        return json_integer((json_int_t)v);
    double big = 0;
    for (const char *p = digits; *p != '\0'; p++)
        big = big * base + (double)(*p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10);
    return json_real(big);
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int is_core_float(const char *s) {
    const char *p = s;
    size_t before = 0, after = 0;
    if (*p == '-' || *p == '+')
        p++;
    while (*p >= '0' && *p <= '9') {
        p++;
        before++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
            after++;
        }
        if (before == 0 && after == 0)
            return 0;
    } else if (before == 0) {
        return 0;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

/* What a plain scalar (or one tagged with a core type) is, as JSON; the string written when it is
 * nothing else, or when JSON cannot hold it (.inf, .nan, 1e999). NULL only when out of memory. */
static json_t *core_scalar(const char *s, size_t len) {
    if (strlen(s) == len) { /* a NUL inside is a string's, never a number's */
        if (is_one_of(s, null_names))
            return json_null();
        if (is_one_of(s, true_names))
            return json_true();
        if (is_one_of(s, false_names))
            return json_false();
        json_t *v = core_int(s);
        if (v != NULL)
            return v;
        if (is_core_float(s)) {
            double x = strtod(s, NULL);
            if (isfinite(x))
                return json_real(x);
        }
    }
    return json_stringn(s, len);
}

/* ---- building the tree ---- */

static int charge(decoder_t *d, yaml_mark_t mark, size_t nodes, size_t bytes) {
    d->nodes += nodes;
    d->bytes += bytes;
    if (d->nodes > FLOW_YAML_MAX_NODES)
        return fail(d, FLOW_ETOOBIG, mark, "more than %d values (aliases count as copies)",
                    FLOW_YAML_MAX_NODES);
    if (d->bytes > FLOW_YAML_MAX_BYTES)
        return fail(d, FLOW_ETOOBIG, mark,
                    "more than %zu bytes of values (aliases count as copies)", FLOW_YAML_MAX_BYTES);
    return 0;
}

/* Keeps value (borrowed) under its anchor, with what a copy of it costs. */
static int remember(decoder_t *d, const char *anchor, json_t *value, size_t nodes, size_t bytes,
                    unsigned height) {
    json_t *entry =
        json_pack("[O, I, I, I]", value, (json_int_t)nodes, (json_int_t)bytes, (json_int_t)height);
    if (entry == NULL || json_object_set_new(d->anchors, anchor, entry) < 0)
        return flow__set_error(d->err, FLOW_ENOMEM, "out of memory");
    return 0;
}

/* Puts value (stolen) where it goes: the root, the next element of a sequence, a mapping's key or
 * the value of its pending key. raw is the scalar's text as written, for keys (NULL for
 * containers); height the levels of containers value is (0 for a scalar). */
static int place(decoder_t *d, yaml_mark_t mark, json_t *value, const char *raw, unsigned height) {
    int rc = 0;
    if (d->depth == 0) {
        d->root = value;
        d->have_root = 1;
        return 0;
    }
    frame_t *f = &d->stack[d->depth - 1];
    if (height > f->height)
        f->height = height;
    if (json_is_array(f->value)) {
        if (json_array_append_new(f->value, value) < 0)
            return flow__set_error(d->err, FLOW_ENOMEM, "out of memory");
        return 0;
    }
    if (f->key == NULL) {
        if (raw == NULL) {
            rc = fail(d, FLOW_EINVAL, mark, "a mapping key must be a scalar, not a %s",
                      json_is_array(value) ? "sequence" : "mapping");
        } else if (json_object_get(f->value, raw) != NULL) {
            rc = fail(d, FLOW_EINVAL, mark, "the key \"%.200s\" is already in this mapping", raw);
        } else {
            f->key = flow__strdup(raw);
            if (f->key == NULL)
                rc = flow__set_error(d->err, FLOW_ENOMEM, "out of memory");
        }
        json_decref(value);
        return rc;
    }
    rc = json_object_set_new(f->value, f->key, value);
    flow__free(f->key);
    f->key = NULL;
    return rc < 0 ? flow__set_error(d->err, FLOW_ENOMEM, "out of memory") : 0;
}

static int on_scalar(decoder_t *d, const yaml_event_t *ev) {
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    json_t *v;
    int rc = charge(d, ev->start_mark, 1, len);
    if (rc < 0)
        return rc;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    int core_tag = tag != NULL && (strcmp(tag, TAG_NULL) == 0 || strcmp(tag, TAG_BOOL) == 0 ||
                                   strcmp(tag, TAG_INT) == 0 || strcmp(tag, TAG_FLOAT) == 0);
    if ((plain && tag == NULL) || core_tag)
        v = core_scalar(s, len);
    else
        v = json_stringn(s, len); /* quoted, a block, !!str, !, or a tag of an application's own */
    if (v == NULL)
        return fail(d, FLOW_EINVAL, ev->start_mark, "a scalar that is not valid UTF-8 text");
    const char *anchor = (const char *)ev->data.scalar.anchor;
    if (anchor != NULL) {
        rc = remember(d, anchor, v, 1, len, 0);
        if (rc < 0) {
            json_decref(v);
            return rc;
        }
    }
    /* a key is kept as written; JSON keys hold no NUL */
    if (strlen(s) != len && d->depth > 0 && json_is_object(d->stack[d->depth - 1].value) &&
        d->stack[d->depth - 1].key == NULL) {
        json_decref(v);
        return fail(d, FLOW_EINVAL, ev->start_mark, "a mapping key holds a NUL character");
    }
    return place(d, ev->start_mark, v, s, 0);
}

static int on_alias(decoder_t *d, const yaml_event_t *ev) {
    const char *name = (const char *)ev->data.alias.anchor;
    json_t *entry = json_object_get(d->anchors, name);
    int rc;
    if (entry == NULL) {
        for (unsigned i = 0; i < d->depth; i++)
            if (d->stack[i].anchor != NULL && strcmp(d->stack[i].anchor, name) == 0)
                return fail(d, FLOW_EINVAL, ev->start_mark,
                            "the alias *%.100s is inside its own anchor", name);
        return fail(d, FLOW_EINVAL, ev->start_mark, "no anchor &%.100s before the alias *%.100s",
                    name, name);
    }
    json_t *value = json_array_get(entry, 0);
    size_t nodes = (size_t)json_integer_value(json_array_get(entry, 1));
    size_t bytes = (size_t)json_integer_value(json_array_get(entry, 2));
    unsigned height = (unsigned)json_integer_value(json_array_get(entry, 3));
    if (d->depth + height > FLOW_YAML_MAX_DEPTH)
        return fail(d, FLOW_ETOOBIG, ev->start_mark, "nested deeper than %d levels",
                    FLOW_YAML_MAX_DEPTH);
    rc = charge(d, ev->start_mark, nodes, bytes);
    if (rc < 0)
        return rc;
    /* A copy: the shared store must not hold one value in two places, where changing one would
     * change the other. Charged above, so the copy is bounded by the caps. */
    json_t *copy = json_deep_copy(value);
    if (copy == NULL)
        return flow__set_error(d->err, FLOW_ENOMEM, "out of memory");
    /* a scalar may serve as a key: its text, or its JSON text when it is not a string */
    int container = json_is_object(copy) || json_is_array(copy);
    int dumped = !container && !json_is_string(copy);
    char *raw = NULL;
    if (!container) {
        raw = dumped ? json_dumps(copy, JSON_ENCODE_ANY | JSON_COMPACT)
                     : flow__strdup(json_string_value(copy));
        if (raw == NULL) {
            json_decref(copy);
            return flow__set_error(d->err, FLOW_ENOMEM, "out of memory");
        }
    }
    rc = place(d, ev->start_mark, copy, raw, height);
    if (dumped)
        flow__json_free(raw);
    else
        flow__free(raw);
    return rc;
}

static int on_open(decoder_t *d, const yaml_event_t *ev, int mapping) {
    const yaml_char_t *anchor =
        mapping ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    int rc = charge(d, ev->start_mark, 1, 0);
    if (rc < 0)
        return rc;
    if (d->depth == FLOW_YAML_MAX_DEPTH)
        return fail(d, FLOW_ETOOBIG, ev->start_mark, "nested deeper than %d levels",
                    FLOW_YAML_MAX_DEPTH);
    frame_t *f = &d->stack[d->depth];
    memset(f, 0, sizeof *f);
    f->value = mapping ? json_object() : json_array();
    if (f->value == NULL)
        return flow__set_error(d->err, FLOW_ENOMEM, "out of memory");
    if (anchor != NULL)
        f->anchor = flow__strdup((const char *)anchor);
    if (anchor != NULL && f->anchor == NULL) {
        json_decref(f->value);
        return flow__set_error(d->err, FLOW_ENOMEM, "out of memory");
    }
    f->mark = ev->start_mark;
    f->nodes_before = d->nodes - 1;
    f->bytes_before = d->bytes;
    d->depth++;
    return 0;
}

static int on_close(decoder_t *d) {
    frame_t f = d->stack[--d->depth];
    unsigned height = f.height + 1;
    int rc = 0;
    if (f.anchor != NULL)
        rc = remember(d, f.anchor, f.value, d->nodes - f.nodes_before, d->bytes - f.bytes_before,
                      height);
    flow__free(f.anchor);
    flow__free(f.key); /* libyaml never closes a mapping between a key and its value */
    if (rc < 0) {
        json_decref(f.value);
        return rc;
    }
    return place(d, f.mark, f.value, NULL, height);
}

int flow_yaml_decode(const char *text, size_t len, json_t **out, flow_error_t *err) {
    yaml_parser_t parser;
    yaml_event_t ev;
    decoder_t d = {.text = text, .len = len, .err = err};
    int rc = 0, documents = 0, done = 0;

    if (out != NULL)
        *out = NULL;
    if (text == NULL || out == NULL)
        return flow__set_error(err, FLOW_EINVAL, "no text to decode");
    if (len > FLOW_YAML_MAX_BYTES)
        return flow__set_error(err, FLOW_ETOOBIG, "the text is longer than %zu bytes",
                               FLOW_YAML_MAX_BYTES);
    if (!yaml_parser_initialize(&parser))
        return flow__set_error(err, FLOW_ENOMEM, "out of memory");
    d.anchors = json_object();
    if (d.anchors == NULL) {
        rc = flow__set_error(err, FLOW_ENOMEM, "out of memory");
        goto out;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (!done && rc == 0) {
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_error(&d, &parser);
            break;
        }
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++documents > 1)
                rc = fail(&d, FLOW_EINVAL, ev.start_mark,
                          "a second YAML document: only one is read");
            break;
        case YAML_SCALAR_EVENT:
            rc = on_scalar(&d, &ev);
            break;
        case YAML_ALIAS_EVENT:
            rc = on_alias(&d, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            rc = on_open(&d, &ev, ev.type == YAML_MAPPING_START_EVENT);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            rc = on_close(&d);
            break;
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    if (rc == 0) {
        *out = d.have_root ? d.root : json_null();
        d.root = NULL;
    }
out:
    while (d.depth > 0) {
        frame_t *f = &d.stack[--d.depth];
        json_decref(f->value);
        flow__free(f->key);
        flow__free(f->anchor);
    }
    json_decref(d.root);
    json_decref(d.anchors);
    yaml_parser_delete(&parser);
    return rc;
}

/* ---- fences ---- */

static size_t backticks(const char *s, size_t len, size_t i) {
    size_t n = 0;
    while (i + n < len && s[i + n] == '`')
        n++;
    return n;
}

static int is_tag_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '+' || c == '.' || c == '#';
}

int flow_fence_inner(const char *text, size_t len, size_t *start, size_t *inner_len) {
    if (text == NULL || start == NULL || inner_len == NULL)
        return FLOW_EINVAL;
    *start = 0;
    *inner_len = len;
    size_t open = 0, n = 0;
    for (; open < len; open++) {
        n = backticks(text, len, open);
        if (n >= 3)
            break;
        open += n;
    }
    if (open >= len)
        return 0;
    size_t i = open + n;
    while (i < len && (text[i] == ' ' || text[i] == '\t'))
        i++;
    size_t tag = i;
    while (i < len && is_tag_char(text[i]))
        i++;
    size_t after_tag = i;
    while (i < len && (text[i] == ' ' || text[i] == '\t'))
        i++;
    if (i < len && text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
        i += 2;
    else if (i < len && text[i] == '\n')
        i++;
    else if (after_tag == tag || i == after_tag)
        i = tag; /* no tag, or a word that runs on into the text ("```hello```"): content */
    size_t begin = i, end = len;
    for (size_t k = begin; k < len; k++) {
        size_t m = backticks(text, len, k);
        if (m >= n) {
            end = k;
            break;
        }
        k += m;
    }
    if (end < len) { /* the line break before the closing fence is not part of the inside */
        if (end > begin && text[end - 1] == '\n')
            end--;
        if (end > begin && text[end - 1] == '\r')
            end--;
    }
    *start = begin;
    *inner_len = end - begin;
    return 1;
}
