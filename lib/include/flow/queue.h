/* flow/queue.h: an intrusive circular doubly-linked list, in the shape of libuv's src/queue.h (its
 * 1.47 form, inline functions on a struct): each element holds a flow_queue_t, and a list is a
 * flow_queue_t head whose next and prev are its first and last element, or the head itself when
 * the list is empty. Inserting and removing are O(1) and allocate nothing; FLOW_QUEUE_DATA gives
 * the element that holds a node. The library's lists (run queue, jobs, ready frames, waits, timers,
 * the HTTP client's requests and sockets) are these, and flowd may use them too.
 *
 * A removed node's pointers are left as they were (as in libuv): a user that must tell whether a
 * node is in a list keeps a flag, or sets the pointers to NULL after flow_queue_remove.
 *
 * After libuv's src/queue.h: Copyright (c) 2013, Ben Noordhuis <info@bnoordhuis.nl>
 *
 * Permission to use, copy, modify, and/or distribute this software for any purpose with or without
 * fee is hereby granted, provided that the above copyright notice and this permission notice
 * appear in all copies.
 *
 * THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH REGARD TO THIS
 * SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE
 * AUTHOR BE LIABLE FOR ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
 * WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT,
 * NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF OR IN CONNECTION WITH THE USE OR
 * PERFORMANCE OF THIS SOFTWARE. */
#ifndef FLOW_QUEUE_H
#define FLOW_QUEUE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flow_queue {
    struct flow_queue *next;
    struct flow_queue *prev;
} flow_queue_t;

/* The element of type that holds the node ptr as its member field. */
#define FLOW_QUEUE_DATA(ptr, type, field) ((type *)((char *)(ptr) - offsetof(type, field)))

/* Every node of the list h, in order, as q; the list must not change meanwhile (to remove as you
 * go, take flow_queue_head until the list is empty). */
#define FLOW_QUEUE_FOREACH(q, h) for ((q) = (h)->next; (q) != (h); (q) = (q)->next)

static inline void flow_queue_init(flow_queue_t *q) {
    q->next = q;
    q->prev = q;
}

static inline int flow_queue_empty(const flow_queue_t *q) {
    return q == q->next;
}

/* The first node of the list (the head itself when it is empty). */
static inline flow_queue_t *flow_queue_head(const flow_queue_t *q) {
    return q->next;
}

static inline flow_queue_t *flow_queue_next(const flow_queue_t *q) {
    return q->next;
}

/* Moves every node of n to the end of h; n is left as it was and must be initialized again. */
static inline void flow_queue_add(flow_queue_t *h, flow_queue_t *n) {
    h->prev->next = n->next;
    n->next->prev = h->prev;
    h->prev = n->prev;
    h->prev->next = h;
}

/* Moves the nodes of h from q to the end into n (a head, overwritten). */
static inline void flow_queue_split(flow_queue_t *h, flow_queue_t *q, flow_queue_t *n) {
    n->prev = h->prev;
    n->prev->next = n;
    n->next = q;
    h->prev = q->prev;
    h->prev->next = h;
    q->prev = n;
}

/* Moves every node of h into n (a head, overwritten); h is left empty. */
static inline void flow_queue_move(flow_queue_t *h, flow_queue_t *n) {
    if (flow_queue_empty(h))
        flow_queue_init(n);
    else
        flow_queue_split(h, h->next, n);
}

static inline void flow_queue_insert_head(flow_queue_t *h, flow_queue_t *q) {
    q->next = h->next;
    q->prev = h;
    q->next->prev = q;
    h->next = q;
}

static inline void flow_queue_insert_tail(flow_queue_t *h, flow_queue_t *q) {
    q->next = h;
    q->prev = h->prev;
    q->prev->next = q;
    h->prev = q;
}

static inline void flow_queue_remove(flow_queue_t *q) {
    q->prev->next = q->next;
    q->next->prev = q->prev;
}

#ifdef __cplusplus
}
#endif
#endif
