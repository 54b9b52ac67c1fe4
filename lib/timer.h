/* timer.h: many one-shot timers on few uv_timer_t. The engine's timers (sleeps, waits between tries,
 * node timeouts, job deadlines) are grouped by the loop millisecond they are due in, with one libuv
 * timer per group: a million jobs sleeping one second make about a thousand libuv timers, not a
 * million, and starting or stopping one is O(1) with nothing to close. They fire in the same loop
 * iteration, in the same order, as one uv_timer_t each would. */
#ifndef FLOW_TIMER_H
#define FLOW_TIMER_H

#include <uv.h>

#include "flow/queue.h"

typedef struct flow__timer flow__timer_t;
typedef void (*flow__timer_cb)(flow__timer_t *t);

/* Embedded in what it times; zeroed memory is a stopped timer. */
struct flow__timer {
    flow_queue_t node; /* in its group; NULL pointers when not pending */
    flow__timer_cb cb;
};

typedef struct flow__timers flow__timers_t;

int flow__timers_new(uv_loop_t *loop, flow__timers_t **out);
/* Stops everything; memory goes in close callbacks, after which on_closed(data) is called. */
void flow__timers_close(flow__timers_t *ts, void (*on_closed)(void *data), void *data);

/* Calls cb(t) at least ms milliseconds after now by uv_hrtime() (the clock of the steps' times),
 * in the first loop iteration at or after that millisecond. Restarts a pending t. */
int flow__timer_start(flow__timers_t *ts, flow__timer_t *t, uint64_t ms, flow__timer_cb cb);
void flow__timer_stop(flow__timer_t *t);

static inline int flow__timer_pending(const flow__timer_t *t) {
    return t->node.prev != NULL;
}

#endif
