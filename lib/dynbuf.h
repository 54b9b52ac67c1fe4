/* dynbuf.h: a growable byte buffer with a hard cap on its length, internal to lib/ (after curl's
 * dynbuf). It may start in storage the caller provides, a stack array usually, so that short results
 * (most URLs and prompts a template builds) cost no allocation. */
#ifndef FLOW_DYNBUF_H
#define FLOW_DYNBUF_H

#include <stddef.h>

typedef struct flow__dynbuf {
    char *buf;     /* the bytes, always NUL-terminated; owned, unless it is the caller's storage */
    size_t len;    /* bytes used, not counting the NUL */
    size_t size;   /* bytes available at buf */
    size_t max;    /* the cap on len: an add past it fails with FLOW_ETOOBIG */
    char *storage; /* the caller's storage (never freed), or NULL */
    size_t storage_size;
} flow__dynbuf_t;

/* storage (may be NULL) is borrowed and must outlive b; size is its length in bytes. */
void flow__dynbuf_init(flow__dynbuf_t *b, char *storage, size_t size, size_t max);
/* 0, FLOW_ETOOBIG or FLOW_ENOMEM; on error b keeps what it had (free it as usual). */
int flow__dynbuf_add(flow__dynbuf_t *b, const void *mem, size_t len);
int flow__dynbuf_addc(flow__dynbuf_t *b, char c);
/* Moves the bytes into a new malloc'd string (*out, the caller frees it) and empties b. */
int flow__dynbuf_take(flow__dynbuf_t *b, char **out);
void flow__dynbuf_free(flow__dynbuf_t *b); /* idempotent; b may be added to again afterwards */

#endif
