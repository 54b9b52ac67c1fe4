/* events.c: event streams (SSE) of a job's ring that suspend while there is nothing to send, and
 * long polls; events.h has the design. */
#include "events.h"

#include <stdlib.h>
#include <string.h>

#define FRAME_BATCH 16384 /* bytes of frames a stream takes from the ring at a time */

/* ---- event streams ---- */

struct flowd_watch {
    flowd_watchers_t *ws;
    flowd_job_t *job;
    struct MHD_Connection *conn;
    uint64_t last_id;              /* reader only */
    flow_buf_t pend;              /* reader only: frames taken from the ring, not yet sent */
    size_t pend_off;
    int ended;                     /* reader only: the final event is in pend */
    _Atomic uint64_t last_send_ms; /* written by the reader, read by the keep-alive tick */
    int sleeping;                  /* record lock: suspended, linked in job->sleepers */
    int keepalive_due;             /* record lock */
    int closing;                   /* record lock: shutdown, end the stream */
    flowd_watch_t *sprev, *snext;  /* record lock: job->sleepers */
    flowd_watch_t *wprev, *wnext;  /* watch list lock: every stream */
};

struct flowd_watchers {
    pthread_mutex_t lock;
    flowd_watch_t *head;
    size_t count;
    uint64_t keepalive_ms;
    int closing;
};

int flowd_watchers_new(uint64_t keepalive_ms, flowd_watchers_t **out) {
    flowd_watchers_t *ws = calloc(1, sizeof *ws);
    if (ws == NULL)
        return FLOW_ENOMEM;
    pthread_mutex_init(&ws->lock, NULL);
    ws->keepalive_ms = keepalive_ms;
    *out = ws;
    return 0;
}

void flowd_watchers_free(flowd_watchers_t *ws) {
    if (ws == NULL)
        return;
    pthread_mutex_destroy(&ws->lock);
    free(ws);
}

/* Record lock held. */
static void sleeper_unlink(flowd_watch_t *w) {
    if (w->sprev != NULL)
        w->sprev->snext = w->snext;
    else
        w->job->sleepers = w->snext;
    if (w->snext != NULL)
        w->snext->sprev = w->sprev;
    w->sprev = w->snext = NULL;
    w->sleeping = 0;
}

/* Record lock held: wakes a sleeping stream. */
static void sleeper_resume(flowd_watch_t *w) {
    sleeper_unlink(w);
    MHD_resume_connection(w->conn);
}

int flowd_sse_drained(flow_buf_t *pend, size_t *off) {
    if (*off != pend->len)
        return 0;
    pend->len = 0;
    *off = 0;
    return 1;
}

ssize_t flowd_sse_give(flow_buf_t *pend, size_t *off, char *buf, size_t max) {
    size_t n = pend->len - *off;
    if (n > max)
        n = max;
    memcpy(buf, pend->data + *off, n);
    *off += n;
    return (ssize_t)n;
}

static ssize_t watch_read(void *cls, uint64_t pos, char *buf, size_t max) {
    flowd_watch_t *w = cls;
    (void)pos;
    if (flowd_sse_drained(&w->pend, &w->pend_off)) {
        if (w->ended)
            return MHD_CONTENT_READER_END_OF_STREAM;
        flowd_job_t *job = w->job;
        int final = 0;
        flowd_job_lock(job);
        w->last_id = flowd_ring_frames(&job->events, w->last_id, &w->pend, FRAME_BATCH, &final);
        w->ended = final;
        if (w->pend.len == 0 && !w->pend.err) {
            if (w->closing || job->gone) { /* gone: the client reconnects and finds the job elsewhere */
                flowd_job_unlock(job);
                return MHD_CONTENT_READER_END_OF_STREAM;
            }
            if (w->keepalive_due) {
                flow_buf_adds(&w->pend, ": keep-alive\n\n");
            } else {
                /* Nothing to send: sleep until the loop appends an event (or a keep-alive is due).
                 * Suspending under the record lock means the loop cannot miss us. */
                w->sleeping = 1;
                w->sprev = NULL;
                w->snext = job->sleepers;
                if (job->sleepers != NULL)
                    job->sleepers->sprev = w;
                job->sleepers = w;
                MHD_suspend_connection(w->conn);
                flowd_job_unlock(job);
                return 0;
            }
        }
        w->keepalive_due = 0;
        flowd_job_unlock(job);
        if (w->pend.err)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    atomic_store_explicit(&w->last_send_ms, flow_mono_ms(), memory_order_relaxed);
    return flowd_sse_give(&w->pend, &w->pend_off, buf, max);
}

static void watch_free(void *cls) {
    flowd_watch_t *w = cls;
    flowd_watchers_t *ws = w->ws;
    pthread_mutex_lock(&ws->lock);
    if (w->wprev != NULL)
        w->wprev->wnext = w->wnext;
    else
        ws->head = w->wnext;
    if (w->wnext != NULL)
        w->wnext->wprev = w->wprev;
    ws->count--;
    pthread_mutex_unlock(&ws->lock);
    flowd_job_lock(w->job);
    if (w->sleeping) /* not expected: MHD frees a response only once its connection runs again */
        sleeper_unlink(w);
    flowd_job_unlock(w->job);
    flowd_job_unref(w->job);
    flow_buf_free(&w->pend);
    free(w);
}

struct MHD_Response *flowd_watch_response(flowd_watchers_t *ws, flowd_job_t *job,
                                          struct MHD_Connection *conn, uint64_t last_id) {
    flowd_watch_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->ws = ws;
    w->job = flowd_job_ref(job);
    w->conn = conn;
    w->last_id = last_id;
    flow_buf_init(&w->pend, 0);
    atomic_init(&w->last_send_ms, flow_mono_ms());
    struct MHD_Response *res =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, FRAME_BATCH, watch_read, w, watch_free);
    if (res == NULL) {
        flowd_job_unref(job);
        free(w);
        return NULL;
    }
    pthread_mutex_lock(&ws->lock);
    w->wnext = ws->head;
    if (ws->head != NULL)
        ws->head->wprev = w;
    ws->head = w;
    ws->count++;
    if (ws->closing) {
        flowd_job_lock(job);
        w->closing = 1;
        flowd_job_unlock(job);
    }
    pthread_mutex_unlock(&ws->lock);
    return res;
}

void flowd_watch_wake_locked(flowd_job_t *job) {
    while (job->sleepers != NULL)
        sleeper_resume(job->sleepers);
}

void flowd_watchers_tick(flowd_watchers_t *ws) {
    uint64_t now = flow_mono_ms();
    pthread_mutex_lock(&ws->lock);
    for (flowd_watch_t *w = ws->head; w != NULL; w = w->wnext) {
        if (now - atomic_load_explicit(&w->last_send_ms, memory_order_relaxed) < ws->keepalive_ms)
            continue;
        flowd_job_lock(w->job);
        if (w->sleeping) {
            w->keepalive_due = 1;
            sleeper_resume(w);
        }
        flowd_job_unlock(w->job);
    }
    pthread_mutex_unlock(&ws->lock);
}

void flowd_watchers_close_all(flowd_watchers_t *ws) {
    pthread_mutex_lock(&ws->lock);
    ws->closing = 1;
    for (flowd_watch_t *w = ws->head; w != NULL; w = w->wnext) {
        flowd_job_lock(w->job);
        w->closing = 1;
        if (w->sleeping)
            sleeper_resume(w);
        flowd_job_unlock(w->job);
    }
    pthread_mutex_unlock(&ws->lock);
}

size_t flowd_watchers_count(flowd_watchers_t *ws) {
    pthread_mutex_lock(&ws->lock);
    size_t n = ws->count;
    pthread_mutex_unlock(&ws->lock);
    return n;
}

/* ---- long polls ---- */

struct flowd_waiter {
    uv_timer_t timer;
    flowd_waitset_t *set;
    flowd_job_t *job;
    struct MHD_Connection *conn;
    _Atomic int *done;
    flow_status_t seen;
    uint64_t version;              /* FLOWD_NO_VERSION: waits for another status only */
    flowd_waiter_t *jprev, *jnext; /* job->waiters */
    flowd_waiter_t *aprev, *anext; /* set->all */
};

struct flowd_waitset {
    uv_loop_t *loop;
    flowd_waiter_t *all;
    size_t count;   /* waiting */
    size_t alive;   /* not yet freed (timers closing) */
    int stopping;   /* shutdown: new waits end at once */
    int closed;     /* flowd_waitset_close ran: free once alive is 0 */
};

int flowd_waitset_new(uv_loop_t *loop, flowd_waitset_t **out) {
    flowd_waitset_t *set = calloc(1, sizeof *set);
    if (set == NULL)
        return FLOW_ENOMEM;
    set->loop = loop;
    *out = set;
    return 0;
}

static void waitset_maybe_free(flowd_waitset_t *set) {
    if (set->closed && set->alive == 0)
        free(set);
}

static void waiter_closed(uv_handle_t *h) {
    flowd_waiter_t *wt = h->data;
    flowd_waitset_t *set = wt->set;
    flowd_job_unref(wt->job);
    free(wt);
    set->alive--;
    waitset_maybe_free(set);
}

/* Ends the wait: the HTTP thread answers once MHD runs the connection again. */
static void waiter_resolve(flowd_waiter_t *wt) {
    flowd_waitset_t *set = wt->set;
    if (wt->jprev != NULL)
        wt->jprev->jnext = wt->jnext;
    else
        wt->job->waiters = wt->jnext;
    if (wt->jnext != NULL)
        wt->jnext->jprev = wt->jprev;
    if (wt->aprev != NULL)
        wt->aprev->anext = wt->anext;
    else
        set->all = wt->anext;
    if (wt->anext != NULL)
        wt->anext->aprev = wt->aprev;
    set->count--;
    atomic_store_explicit(wt->done, 1, memory_order_release);
    MHD_resume_connection(wt->conn);
    uv_close((uv_handle_t *)&wt->timer, waiter_closed);
}

static void waiter_timeout(uv_timer_t *t) {
    waiter_resolve(t->data);
}

/* Loop thread: only it pushes events, so next_id is read without the record's lock. */
static int waiter_saw_other(const flowd_waiter_t *wt, flowd_job_t *job) {
    return flowd_job_status(job) != wt->seen ||
           (wt->version != FLOWD_NO_VERSION && job->events.next_id - 1 != wt->version);
}

int flowd_waiter_add(flowd_waitset_t *set, flowd_job_t *job, flow_status_t seen, uint64_t version,
                     uint64_t wait_ms, struct MHD_Connection *conn, _Atomic int *done) {
    flowd_waiter_t *wt = calloc(1, sizeof *wt);
    if (wt == NULL)
        return FLOW_ENOMEM;
    wt->set = set;
    wt->job = flowd_job_ref(job);
    wt->conn = conn;
    wt->done = done;
    wt->seen = seen;
    wt->version = version;
    uv_timer_init(set->loop, &wt->timer);
    wt->timer.data = wt;
    wt->jnext = job->waiters;
    if (job->waiters != NULL)
        job->waiters->jprev = wt;
    job->waiters = wt;
    wt->anext = set->all;
    if (set->all != NULL)
        set->all->aprev = wt;
    set->all = wt;
    set->count++;
    set->alive++;
    if (set->stopping || waiter_saw_other(wt, job))
        waiter_resolve(wt);
    else
        uv_timer_start(&wt->timer, waiter_timeout, wait_ms, 0);
    return 0;
}

void flowd_waiters_wake(flowd_job_t *job) {
    flowd_waiter_t *wt = job->waiters;
    while (wt != NULL) {
        flowd_waiter_t *next = wt->jnext;
        if (waiter_saw_other(wt, job) || job->gone)
            waiter_resolve(wt);
        wt = next;
    }
}

void flowd_waitset_wake_all(flowd_waitset_t *set) {
    set->stopping = 1;
    while (set->all != NULL)
        waiter_resolve(set->all);
}

void flowd_waitset_close(flowd_waitset_t *set) {
    if (set == NULL)
        return;
    flowd_waitset_wake_all(set);
    set->closed = 1;
    waitset_maybe_free(set);
}

size_t flowd_waitset_count(const flowd_waitset_t *set) {
    return set->count;
}
