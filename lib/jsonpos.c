/* jsonpos.c: the line and column of the value a JSON Pointer names in a JSON text (see jsonpos.h).
 * A small recursive-descent scanner that only skips values, except along the pointer's path. */
#include <string.h>

#include "internal.h"
#include "flow/jsonpos.h"
#include "flow/pointer.h"

#define MAX_DEPTH 256
#define MAX_TOKEN 1024

typedef struct scan {
    const char *p, *end, *text;
    int bad;
} scan_t;

static void ws(scan_t *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* Reads a JSON string into out (decoded, truncated to cap-1); returns its decoded length or -1. */
static long string(scan_t *s, char *out, size_t cap) {
    size_t n = 0;
    if (s->p >= s->end || *s->p != '"')
        return -1;
    s->p++;
    while (s->p < s->end && *s->p != '"') {
        char c = *s->p++;
        if (c == '\\') {
            if (s->p >= s->end)
                return -1;
            char e = *s->p++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u':
                /* A key with \u escapes compares as if each escape were one '?'; keys of flow
                 * documents are names, so this only matters for oddities. */
                if (s->end - s->p < 4)
                    return -1;
                s->p += 4;
                c = '?';
                break;
            default: c = e; break;
            }
        }
        if (out != NULL && n + 1 < cap)
            out[n] = c;
        n++;
    }
    if (s->p >= s->end)
        return -1;
    s->p++;
    if (out != NULL)
        out[n < cap ? n : cap - 1] = '\0';
    return (long)n;
}

static int skip(scan_t *s, int depth);

static int skip_container(scan_t *s, char close, int depth) {
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    for (;;) {
        ws(s);
        if (close == '}') {
            if (string(s, NULL, 0) < 0)
                return -1;
            ws(s);
            if (s->p >= s->end || *s->p++ != ':')
                return -1;
        }
        if (skip(s, depth + 1) < 0)
            return -1;
        ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return 0;
        }
        return -1;
    }
}

static int skip(scan_t *s, int depth) {
    if (depth > MAX_DEPTH)
        return -1;
    ws(s);
    if (s->p >= s->end)
        return -1;
    switch (*s->p) {
    case '{': return skip_container(s, '}', depth);
    case '[': return skip_container(s, ']', depth);
    case '"': return string(s, NULL, 0) < 0 ? -1 : 0;
    default:
        while (s->p < s->end && strchr(",]} \t\r\n", *s->p) == NULL)
            s->p++;
        return 0;
    }
}

/* The next token of the pointer, unescaped, into tok; advances *ptr. */
static int next_token(const char **ptr, char *tok, size_t cap) {
    const char *p = *ptr;
    size_t n = 0;
    if (*p != '/')
        return -1;
    p++;
    while (*p != '\0' && *p != '/') {
        char c = *p++;
        if (c == '~') {
            c = *p == '0' ? '~' : *p == '1' ? '/' : 0;
            if (c == 0)
                return -1;
            p++;
        }
        if (n + 1 >= cap)
            return -1;
        tok[n++] = c;
    }
    tok[n] = '\0';
    *ptr = p;
    return 0;
}

/* Moves s->p to the start of the member or element tok of the container at s->p; 1 found, 0 not. */
static int enter(scan_t *s, const char *tok) {
    char close = *s->p == '{' ? '}' : ']';
    long index = -1, i = 0;
    char key[MAX_TOKEN];
    if (close == ']') {
        char *endp;
        index = strtol(tok, &endp, 10);
        if (*tok == '\0' || *endp != '\0' || index < 0)
            return 0;
    }
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == close)
        return 0;
    for (;;) {
        ws(s);
        int match;
        if (close == '}') {
            if (string(s, key, sizeof key) < 0)
                return -1;
            ws(s);
            if (s->p >= s->end || *s->p++ != ':')
                return -1;
            match = strcmp(key, tok) == 0;
        } else {
            match = i == index;
        }
        ws(s);
        if (match)
            return 1;
        if (skip(s, 1) < 0)
            return -1;
        ws(s);
        i++;
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        return s->p < s->end && *s->p == close ? 0 : -1;
    }
}

static void position(const scan_t *s, const char *at, int *line, int *col) {
    int l = 1, c = 1;
    for (const char *q = s->text; q < at; q++) {
        if (*q == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

int flow_json_locate(const char *text, size_t len, const char *pointer, int *line, int *col) {
    scan_t s = {text, text + len, text, 0};
    char tok[MAX_TOKEN];
    if (text == NULL || pointer == NULL || flow_pointer_check(pointer) < 0)
        return FLOW_EINVAL;
    ws(&s);
    const char *found = s.p;
    int rc = 0;
    while (*pointer != '\0') {
        if (next_token(&pointer, tok, sizeof tok) < 0)
            return FLOW_EINVAL;
        if (s.p >= s.end || (*s.p != '{' && *s.p != '[')) {
            rc = FLOW_ENOTFOUND;
            break;
        }
        int r = enter(&s, tok);
        if (r < 0)
            return FLOW_EINVAL;
        if (r == 0) {
            rc = FLOW_ENOTFOUND;
            break;
        }
        found = s.p;
    }
    position(&s, found, line, col);
    return rc;
}
