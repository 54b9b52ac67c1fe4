/* flow/buf.h: a growable byte buffer with a hard cap on its length (after curl's dynbuf), for text
 * built piece by piece: template results, problem lists and Mermaid charts in the library, JSON
 * answers in flowd. It may start in storage the caller provides, a stack array usually, so that
 * short results (most URLs and prompts a template builds) cost no allocation.
 *
 * Errors stick: once an add fails (FLOW_ENOMEM, or FLOW_ETOOBIG past the cap) the buffer keeps
 * what it had, every later add returns the same code and adds nothing, and flow_buf_take gives
 * NULL; so a writer may check every add, or only once at the end.
 *
 * Memory comes from libflow's allocator (flow_set_allocator): what flow_buf_take hands over is
 * freed with flow_free(), which is free() while the default allocator is in place.
 *
 * Threads: any; one buffer is used by one thread at a time. */
#ifndef FLOW_BUF_H
#define FLOW_BUF_H

#include <stddef.h>

#include "flow.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flow_buf {
    char *data;    /* the bytes, NUL-terminated; NULL until the first add (unless storage) */
    size_t len;    /* bytes used, not counting the NUL; a writer may lower it to drop a tail */
    size_t size;   /* bytes available at data */
    size_t max;    /* the cap on len: an add past it fails with FLOW_ETOOBIG */
    int err;       /* 0, or the code of the first add that failed */
    char *storage; /* the caller's storage (never freed), or NULL */
    size_t storage_size;
} flow_buf_t;

/* max 0: SIZE_MAX / 2, no cap in practice. */
FLOW_EXPORT void flow_buf_init(flow_buf_t *b, size_t max);
/* The same, starting in storage (borrowed; size bytes; it must outlive b). */
FLOW_EXPORT void flow_buf_init_storage(flow_buf_t *b, char *storage, size_t size, size_t max);

/* Each returns 0, or b->err: FLOW_ETOOBIG, FLOW_ENOMEM (or FLOW_EINVAL for a format vsnprintf
 * refuses). */
FLOW_EXPORT int flow_buf_add(flow_buf_t *b, const void *mem, size_t len);
FLOW_EXPORT int flow_buf_adds(flow_buf_t *b, const char *s);
FLOW_EXPORT int flow_buf_printf(flow_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* One byte; inline, since JSON writers add bytes one at a time. */
static inline int flow_buf_addc(flow_buf_t *b, char c) {
    if (b->err == 0 && b->size - b->len > 1 && b->len < b->max) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return 0;
    }
    return flow_buf_add(b, &c, 1);
}

/* Hands over the bytes (NUL-terminated; free them with flow_free) and empties b; *len (may be
 * NULL) gets their count. An empty buffer gives "". NULL when b failed (or no memory is left for a
 * copy out of the caller's storage): the bytes are freed then too, and b->err says why. */
FLOW_EXPORT char *flow_buf_take(flow_buf_t *b, size_t *len);
/* Frees the bytes and empties b, errors included; b may be added to again. Idempotent. */
FLOW_EXPORT void flow_buf_free(flow_buf_t *b);

#ifdef __cplusplus
}
#endif
#endif
