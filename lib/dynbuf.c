/* dynbuf.c: the capped growable buffer of dynbuf.h. */
#include "dynbuf.h"
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"

static void reset(flow__dynbuf_t *b) {
    b->len = 0;
    if (b->storage != NULL) {
        b->buf = b->storage;
        b->size = b->storage_size;
        b->storage[0] = '\0';
    } else {
        b->buf = NULL;
        b->size = 0;
    }
}

void flow__dynbuf_init(flow__dynbuf_t *b, char *storage, size_t size, size_t max) {
    b->max = max;
    b->storage = size > 0 ? storage : NULL;
    b->storage_size = size;
    reset(b);
}

int flow__dynbuf_add(flow__dynbuf_t *b, const void *mem, size_t len) {
    if (len > b->max - b->len)
        return FLOW_ETOOBIG;
    size_t need = b->len + len + 1;
    if (need > b->size) {
        /* Doubling keeps appends amortised O(1); the cap bounds it, so this cannot overflow. */
        size_t size = b->size < 64 ? 64 : b->size;
        while (size < need)
            size = size > SIZE_MAX / 2 ? need : size * 2;
        if (b->max < SIZE_MAX && size > b->max + 1)
            size = b->max + 1;
        char *p;
        if (b->buf == b->storage) {
            p = flow__malloc(size);
            if (p != NULL && b->len > 0)
                memcpy(p, b->buf, b->len);
        } else {
            p = flow__realloc(b->buf, size);
        }
        if (p == NULL)
            return FLOW_ENOMEM;
        b->buf = p;
        b->size = size;
    }
    if (len > 0)
        memcpy(b->buf + b->len, mem, len);
    b->len += len;
    b->buf[b->len] = '\0';
    return 0;
}

int flow__dynbuf_addc(flow__dynbuf_t *b, char c) {
    return flow__dynbuf_add(b, &c, 1);
}

int flow__dynbuf_take(flow__dynbuf_t *b, char **out) {
    char *s;
    if (b->buf != NULL && b->buf != b->storage) {
        s = b->buf;
    } else {
        s = flow__malloc(b->len + 1);
        if (s == NULL)
            return FLOW_ENOMEM;
        if (b->len > 0)
            memcpy(s, b->buf, b->len);
        s[b->len] = '\0';
    }
    *out = s;
    reset(b);
    return 0;
}

void flow__dynbuf_free(flow__dynbuf_t *b) {
    if (b->buf != b->storage)
        flow__free(b->buf);
    reset(b);
}
