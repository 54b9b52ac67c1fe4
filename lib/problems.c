/* problems.c: the capped list of document problems of problems.h. */
#include "flow/problems.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/buf.h"
#include "flow.h"

#define TEXT_MAX ((size_t)1 << 20) /* flow_problems_text: 100 capped messages fit many times over */

void flow_problems_init(flow_problems_t *p) {
    p->items = NULL;
    p->count = 0;
    p->dropped = 0;
    p->alloc = 0;
}

void flow_problems_clear(flow_problems_t *p) {
    for (size_t i = 0; i < p->count; i++) {
        flow__free(p->items[i].where);
        flow__free(p->items[i].message);
    }
    flow__free(p->items);
    flow_problems_init(p);
}

size_t flow_problems_total(const flow_problems_t *p) {
    return p->count + p->dropped;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = flow__malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/* Cuts a message that vsnprintf truncated so that it ends in "..." on a UTF-8 character boundary. */
static void mark_cut(char *msg, size_t size) {
    size_t end = size - 4; /* room for "..." and the NUL */
    while (end > 0 && ((unsigned char)msg[end] & 0xC0) == 0x80)
        end--;
    memcpy(msg + end, "...", 4);
}

int flow_problems_addv(flow_problems_t *p, const char *where, const char *fmt, va_list ap) {
    char msg[FLOW_PROBLEM_MESSAGE_MAX];
    char *w = NULL, *m = NULL;
    int rc = 0;

    if (p == NULL)
        goto out;
    if (p->count >= FLOW_PROBLEMS_MAX) {
        p->dropped++;
        goto out;
    }
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0)
        msg[0] = '\0';
    else if ((size_t)n >= sizeof msg)
        mark_cut(msg, sizeof msg);
    flow_problem_t *items =
        flow__grow(p->items, p->count, &p->alloc, sizeof *items, 8, FLOW_PROBLEMS_MAX);
    if (items == NULL) {
        rc = FLOW_ENOMEM;
        goto out;
    }
    p->items = items;
    w = dup_str(where != NULL ? where : "");
    m = dup_str(msg);
    if (w == NULL || m == NULL) {
        rc = FLOW_ENOMEM;
        goto out;
    }
    p->items[p->count].where = w;
    p->items[p->count].message = m;
    p->count++;
    w = NULL;
    m = NULL;
out:
    flow__free(w);
    flow__free(m);
    return rc;
}

int flow_problems_add(flow_problems_t *p, const char *where, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = flow_problems_addv(p, where, fmt, ap);
    va_end(ap);
    return rc;
}

int flow_problems_text(const flow_problems_t *p, char **out) {
    flow_buf_t b;
    int rc = 0;

    flow_buf_init(&b, TEXT_MAX);
    for (size_t i = 0; i < p->count && rc == 0; i++) {
        const flow_problem_t *pr = &p->items[i];
        if (i > 0)
            rc = flow_buf_addc(&b, '\n');
        if (rc == 0 && pr->where[0] != '\0') {
            rc = flow_buf_add(&b, pr->where, strlen(pr->where));
            if (rc == 0)
                rc = flow_buf_add(&b, ": ", 2);
        }
        if (rc == 0)
            rc = flow_buf_add(&b, pr->message, strlen(pr->message));
    }
    if (rc == 0 && p->dropped > 0) {
        char more[64];
        int n = snprintf(more, sizeof more, "%s... and %zu more problem%s", p->count > 0 ? "\n" : "",
                         p->dropped, p->dropped == 1 ? "" : "s");
        rc = flow_buf_add(&b, more, (size_t)n);
    }
    if (rc == 0) {
        *out = flow_buf_take(&b, NULL);
        rc = *out != NULL ? 0 : b.err;
    }
    flow_buf_free(&b);
    return rc;
}
