/* buf.c: the capped growable buffer of flow/buf.h, shared by the library and flowd. */
#include "flow/buf.h"
#include "internal.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define FIRST_SIZE 512 /* the first allocation: a Job object of flowd's fits */

static void reset(flow_buf_t *b) {
    b->len = 0;
    b->err = 0;
    if (b->storage != NULL) {
        b->data = b->storage;
        b->size = b->storage_size;
        b->storage[0] = '\0';
    } else {
        b->data = NULL;
        b->size = 0;
    }
}

void flow_buf_init_storage(flow_buf_t *b, char *storage, size_t size, size_t max) {
    b->max = max ? max : SIZE_MAX / 2;
    b->storage = size > 0 ? storage : NULL;
    b->storage_size = size;
    reset(b);
}

void flow_buf_init(flow_buf_t *b, size_t max) {
    flow_buf_init_storage(b, NULL, 0, max);
}

static int fail(flow_buf_t *b, int code) {
    if (b->err == 0)
        b->err = code;
    return b->err;
}

/* Room for extra more bytes and the NUL. Doubling keeps appends amortised O(1); the cap bounds the
 * size, so it cannot overflow. */
static int grow(flow_buf_t *b, size_t extra) {
    if (b->err)
        return b->err;
    if (extra > b->max - b->len)
        return fail(b, FLOW_ETOOBIG);
    size_t need = b->len + extra + 1;
    if (need <= b->size)
        return 0;
    size_t size = b->size < FIRST_SIZE ? FIRST_SIZE : b->size;
    while (size < need)
        size = size > SIZE_MAX / 2 ? need : size * 2;
    if (size > b->max + 1)
        size = b->max + 1;
    char *p;
    if (b->data == b->storage) { /* NULL too: nothing to carry over then */
        p = flow__malloc(size);
        if (p != NULL && b->len > 0)
            memcpy(p, b->data, b->len);
    } else {
        p = flow__realloc(b->data, size);
    }
    if (p == NULL)
        return fail(b, FLOW_ENOMEM);
    b->data = p;
    b->size = size;
    return 0;
}

int flow_buf_add(flow_buf_t *b, const void *mem, size_t len) {
    int rc = grow(b, len);
    if (rc < 0)
        return rc;
    if (len > 0)
        memcpy(b->data + b->len, mem, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int flow_buf_adds(flow_buf_t *b, const char *s) {
    return flow_buf_add(b, s, strlen(s));
}

int flow_buf_printf(flow_buf_t *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return fail(b, FLOW_EINVAL);
    if ((size_t)n < sizeof small)
        return flow_buf_add(b, small, (size_t)n);
    int rc = grow(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *flow_buf_take(flow_buf_t *b, size_t *len) {
    char *out = NULL;
    int err = b->err;
    if (err == 0 && b->data != NULL && b->data != b->storage) {
        out = b->data;
        b->data = NULL; /* now the caller's */
    } else if (err == 0) {
        out = flow__malloc(b->len + 1);
        if (out == NULL) {
            err = FLOW_ENOMEM;
        } else {
            if (b->len > 0)
                memcpy(out, b->data, b->len);
            out[b->len] = '\0';
        }
    }
    if (out != NULL && len != NULL)
        *len = b->len;
    flow_buf_free(b);
    b->err = err;
    return out;
}

void flow_buf_free(flow_buf_t *b) {
    if (b->data != b->storage)
        flow__free(b->data);
    reset(b);
}
