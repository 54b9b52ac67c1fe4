/* jpath.c: rendering the frame chains of jpath.h as JSON Pointers. */
#include "jpath.h"
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/buf.h"
#include "flow.h"

/* A pointer longer than this means a document far past any cap the server puts on one. */
#define RENDER_MAX ((size_t)1 << 20)

flow__jpath_t flow__jpath_top(const char *prefix) {
    flow__jpath_t p = {NULL, prefix != NULL ? prefix : "", 0};
    return p;
}

flow__jpath_t flow__jpath_key(const flow__jpath_t *up, const char *key) {
    flow__jpath_t p = {up, key, 0};
    return p;
}

flow__jpath_t flow__jpath_index(const flow__jpath_t *up, size_t index) {
    flow__jpath_t p = {up, NULL, index};
    return p;
}

/* Recursion as deep as the chain: callers bound their walks (64 levels or so). */
static int render(flow_buf_t *b, const flow__jpath_t *p) {
    int rc;
    if (p->up == NULL)
        return flow_buf_add(b, p->key, strlen(p->key));
    rc = render(b, p->up);
    if (rc == 0)
        rc = flow_buf_addc(b, '/');
    if (rc != 0)
        return rc;
    if (p->key == NULL) {
        char num[24];
        int n = snprintf(num, sizeof num, "%zu", p->index);
        return flow_buf_add(b, num, (size_t)n);
    }
    for (const char *s = p->key; *s != '\0' && rc == 0; s++) {
        if (*s == '~')
            rc = flow_buf_add(b, "~0", 2);
        else if (*s == '/')
            rc = flow_buf_add(b, "~1", 2);
        else
            rc = flow_buf_addc(b, *s);
    }
    return rc;
}

int flow__jpath_render(const flow__jpath_t *p, char **out) {
    flow_buf_t b;
    flow_buf_init(&b, RENDER_MAX);
    int rc = render(&b, p);
    if (rc == 0) {
        *out = flow_buf_take(&b, NULL);
        rc = *out != NULL ? 0 : b.err;
    }
    flow_buf_free(&b);
    return rc;
}

int flow__jpath_reportv(flow_problems_t *problems, const flow__jpath_t *p, const char *fmt, va_list ap) {
    char *where = NULL;
    int rc = 0;

    if (problems == NULL)
        goto out;
    /* Past the cap the problem is only counted: no need to render its place. */
    if (problems->count < FLOW_PROBLEMS_MAX) {
        rc = flow__jpath_render(p, &where);
        if (rc != 0)
            goto out;
    }
    rc = flow_problems_addv(problems, where, fmt, ap);
out:
    flow__free(where);
    return rc;
}

int flow__jpath_report(flow_problems_t *problems, const flow__jpath_t *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = flow__jpath_reportv(problems, p, fmt, ap);
    va_end(ap);
    return rc;
}

int flow__check_problem(flow__check_t *c, const flow__jpath_t *p, const char *fmt, ...) {
    va_list ap;
    c->found++;
    va_start(ap, fmt);
    int rc = flow__jpath_reportv(c->problems, p, fmt, ap);
    va_end(ap);
    return rc;
}
