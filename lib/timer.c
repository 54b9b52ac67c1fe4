/* timer.c: timers grouped by due millisecond, one uv_timer_t per group (see timer.h). */
#include <stddef.h>

#include "internal.h"
#include "timer.h"

#define SPARES_MAX 64 /* idle groups kept for reuse, so steady load does not churn uv handles */

typedef struct group {
    uv_timer_t uv;
    uint64_t due;
    flow_queue_t timers; /* its pending timers, in the order they were started */
    struct group *hnext;
    flow__timers_t *ts;
    int firing;         /* its callbacks are running: it retires when they are done */
} group_t;


struct flow__timers {
    uv_loop_t *loop;
    group_t **table; /* hash of pending groups by due */
    size_t mask;
    size_t count;
    group_t *spares;
    size_t nspares;
    size_t open;     /* uv handles not yet closed */
    int closing;
    void (*on_closed)(void *data);
    void *closed_data;
};

int flow__timers_new(uv_loop_t *loop, flow__timers_t **out) {
    flow__timers_t *ts = flow__calloc(1, sizeof *ts);
    if (ts == NULL)
        return FLOW_ENOMEM;
    ts->mask = 63;
    ts->table = flow__calloc(ts->mask + 1, sizeof *ts->table);
    if (ts->table == NULL) {
        flow__free(ts);
        return FLOW_ENOMEM;
    }
    ts->loop = loop;
    *out = ts;
    return 0;
}

static size_t slot_of(const flow__timers_t *ts, uint64_t due) {
    return (size_t)((due * 0x9E3779B97F4A7C15ull) >> 32) & ts->mask;
}

static void unhash(flow__timers_t *ts, group_t *g) {
    group_t **p = &ts->table[slot_of(ts, g->due)];
    while (*p != NULL && *p != g)
        p = &(*p)->hnext;
    if (*p != NULL) {
        *p = g->hnext;
        ts->count--;
    }
    g->hnext = NULL;
}

static void grow(flow__timers_t *ts) {
    size_t cap = (ts->mask + 1) * 2;
    group_t **table = flow__calloc(cap, sizeof *table);
    if (table == NULL)
        return; /* longer chains, still correct */
    size_t old = ts->mask + 1;
    group_t **prev = ts->table;
    ts->table = table;
    ts->mask = cap - 1;
    for (size_t i = 0; i < old; i++) {
        group_t *g = prev[i];
        while (g != NULL) {
            group_t *next = g->hnext;
            size_t s = slot_of(ts, g->due);
            g->hnext = table[s];
            table[s] = g;
            g = next;
        }
    }
    flow__free(prev);
}

static void on_group_closed(uv_handle_t *h) {
    group_t *g = h->data;
    flow__timers_t *ts = g->ts;
    flow__free(g);
    if (--ts->open == 0 && ts->closing) {
        void (*cb)(void *) = ts->on_closed;
        void *data = ts->closed_data;
        flow__free(ts->table);
        flow__free(ts);
        if (cb != NULL)
            cb(data);
    }
}

static void retire(flow__timers_t *ts, group_t *g) {
    if (!ts->closing && ts->nspares < SPARES_MAX) {
        g->hnext = ts->spares;
        ts->spares = g;
        ts->nspares++;
        return;
    }
    uv_close((uv_handle_t *)&g->uv, on_group_closed);
}

/* The group is taken out of the hash before any callback runs, so a timer started by a callback
 * for the same millisecond goes into a new group; the list is re-read after each callback because
 * callbacks may stop timers of this group. */
static void on_group_due(uv_timer_t *uv) {
    group_t *g = uv->data;
    flow__timers_t *ts = g->ts;
    unhash(ts, g);
    g->firing = 1;
    while (!flow_queue_empty(&g->timers)) {
        flow__timer_t *t = FLOW_QUEUE_DATA(flow_queue_head(&g->timers), flow__timer_t, node);
        flow__timer_stop(t);
        t->cb(t);
    }
    g->firing = 0;
    retire(ts, g);
}

static group_t *group_for(flow__timers_t *ts, uint64_t due) {
    size_t s = slot_of(ts, due);
    for (group_t *g = ts->table[s]; g != NULL; g = g->hnext)
        if (g->due == due)
            return g;
    group_t *g = ts->spares;
    if (g != NULL) {
        ts->spares = g->hnext;
        ts->nspares--;
    } else {
        g = flow__calloc(1, sizeof *g);
        if (g == NULL)
            return NULL;
        uv_timer_init(ts->loop, &g->uv);
        g->uv.data = g;
        g->ts = ts;
        ts->open++;
    }
    g->due = due;
    g->firing = 0;
    flow_queue_init(&g->timers);
    g->hnext = ts->table[s];
    ts->table[s] = g;
    ts->count++;
    uint64_t now = uv_now(ts->loop);
    uv_timer_start(&g->uv, on_group_due, due > now ? due - now : 0, 0);
    if (ts->count > (ts->mask + 1) * 2)
        grow(ts);
    return g;
}

int flow__timer_start(flow__timers_t *ts, flow__timer_t *t, uint64_t ms, flow__timer_cb cb) {
    if (ts->closing)
        return FLOW_ESTATE;
    flow__timer_stop(t);
    /* Due on uv_hrtime's clock, rounded up to the millisecond: the clock the engine times steps
     * with. libuv fires a timer once the loop's clock (uv_now: the same monotonic clock, but cached
     * at the start of an iteration, cut to whole milliseconds, and coarse where the kernel's coarse
     * clock is fine enough) reaches the due time, and the loop's clock is never ahead of uv_hrtime,
     * so cb runs at least ms after now on both clocks. Due from uv_now instead, a busy loop could
     * fire a millisecond or more early by uv_hrtime. */
    uint64_t now_ms = (uv_hrtime() + 999999) / 1000000;
    group_t *g = group_for(ts, now_ms + ms);
    if (g == NULL)
        return FLOW_ENOMEM;
    t->cb = cb;
    flow_queue_insert_tail(&g->timers, &t->node);
    return 0;
}

/* A group whose last timer is stopped stops its uv timer too, or it would keep the loop alive. The
 * node before the removed timer is its group's head exactly when that list is now empty. */
void flow__timer_stop(flow__timer_t *t) {
    if (t->node.prev == NULL)
        return;
    flow_queue_t *prev = t->node.prev;
    flow_queue_remove(&t->node);
    t->node.next = t->node.prev = NULL;
    if (!flow_queue_empty(prev))
        return;
    group_t *g = FLOW_QUEUE_DATA(prev, group_t, timers);
    if (g->firing || g->ts->closing)
        return;
    uv_timer_stop(&g->uv);
    unhash(g->ts, g);
    retire(g->ts, g);
}

void flow__timers_close(flow__timers_t *ts, void (*on_closed)(void *data), void *data) {
    ts->closing = 1;
    ts->on_closed = on_closed;
    ts->closed_data = data;
    for (size_t i = 0; i <= ts->mask; i++) {
        group_t *g = ts->table[i];
        while (g != NULL) {
            group_t *next = g->hnext;
            while (!flow_queue_empty(&g->timers))
                flow__timer_stop(FLOW_QUEUE_DATA(flow_queue_head(&g->timers), flow__timer_t, node));
            uv_close((uv_handle_t *)&g->uv, on_group_closed);
            g = next;
        }
        ts->table[i] = NULL;
    }
    while (ts->spares != NULL) {
        group_t *g = ts->spares;
        ts->spares = g->hnext;
        uv_close((uv_handle_t *)&g->uv, on_group_closed);
    }
    ts->nspares = 0;
    if (ts->open == 0) {
        flow__free(ts->table);
        flow__free(ts);
        if (on_closed != NULL)
            on_closed(data);
    }
}
