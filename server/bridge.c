/* bridge.c: the command queue to the loop, the loop calls, and the engine's callbacks that keep the
 * job records up to date (bridge.h). */
#include "bridge.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "scheduler.h"
#include "store_cluster.h"
#include "webhooks.h"

struct flowd_bridge {
    flowd_server_t *srv;
    pthread_mutex_t lock;
    flowd_cmd_t *head;        /* pushed, newest first */
    flowd_job_t *starts;      /* records to start, newest first (through start_next) */
    int closed;               /* under lock */
    atomic_uint_fast64_t depth;
    uv_async_t async;
    uv_check_t check;         /* refreshes the current node of records whose job ran */
    uv_timer_t backlog;       /* while the engine is held (--store-backlog): polls the store */
    uint64_t held_ns;         /* loop only: since when it is held */
    flowd_sched_t *sched;     /* loop only: when each started record runs (scheduler.h) */
    flowd_job_t *dirty;       /* loop only: records to refresh, each holding a reference */
    int open_handles;
};

flowd_cmd_t *flowd_cmd_new(flowd_cmd_type_t type, flowd_job_t *job) {
    flowd_cmd_t *cmd = calloc(1, sizeof *cmd);
    if (cmd == NULL)
        return NULL;
    cmd->type = type;
    cmd->job = flowd_job_ref(job);
    cmd->seen_version = FLOWD_NO_VERSION;
    return cmd;
}

void flowd_cmd_free(flowd_cmd_t *cmd) {
    if (cmd == NULL)
        return;
    flowd_job_unref(cmd->job);
    json_decref(cmd->value);
    json_decref(cmd->params);
    free(cmd);
}

uint64_t flowd_bridge_depth(flowd_bridge_t *b) {
    return atomic_load_explicit(&b->depth, memory_order_relaxed);
}

int flowd_bridge_start(flowd_bridge_t *b, flowd_job_t *job, json_t *shared, json_t *params) {
    job->run.start_shared = shared;
    job->run.start_params = params;
    flowd_job_ref(job);
    pthread_mutex_lock(&b->lock);
    if (b->closed) {
        pthread_mutex_unlock(&b->lock);
        flowd_job_unref(job); /* the record frees shared and params */
        return FLOW_ESTATE;
    }
    job->run.start_next = b->starts;
    b->starts = job;
    atomic_fetch_add_explicit(&b->depth, 1, memory_order_relaxed);
    uv_async_send(&b->async);
    pthread_mutex_unlock(&b->lock);
    return 0;
}

int flowd_bridge_push(flowd_bridge_t *b, flowd_cmd_t *cmd) {
    pthread_mutex_lock(&b->lock);
    if (b->closed) {
        pthread_mutex_unlock(&b->lock);
        flowd_cmd_free(cmd);
        return FLOW_ESTATE;
    }
    cmd->next = b->head;
    b->head = cmd;
    atomic_fetch_add_explicit(&b->depth, 1, memory_order_relaxed);
    /* Under the lock, so that close cannot come between the check and the send. It costs a
     * syscall only when the loop is not already due to wake. */
    uv_async_send(&b->async);
    pthread_mutex_unlock(&b->lock);
    return 0;
}

static void answer_kept(flowd_cmd_t **list);

/* ---- keeping records up to date (engine callbacks, loop thread) ---- */

/* After each loop iteration: the node a job is at now (a step may have started since its last
 * event), so that GET /v1/jobs/{id} shows where a job waits. */
static void on_check(uv_check_t *h) {
    flowd_bridge_t *b = h->data;
    flowd_job_t *job = b->dirty;
    b->dirty = NULL;
    while (job != NULL) {
        flowd_job_t *next = job->run.dirty_next;
        job->run.dirty = 0;
        job->run.dirty_next = NULL;
        if (job->run.job != NULL) {
            const char *node = flow_job_current_node(job->run.job);
            if (node != job->current_node) {
                flowd_job_lock(job);
                job->current_node = node;
                flowd_job_unlock(job);
            }
        }
        flowd_job_unref(job);
        job = next;
    }
    if (b->dirty == NULL)
        uv_check_stop(h);
}

static void mark_dirty(flowd_bridge_t *b, flowd_job_t *job) {
    if (job->run.dirty || b->closed) /* closed: written by this thread, under the lock */
        return;
    job->run.dirty = 1;
    job->run.dirty_next = b->dirty;
    b->dirty = flowd_job_ref(job);
    if (!uv_is_active((uv_handle_t *)&b->check))
        uv_check_start(&b->check, on_check);
}

/* Record lock held. data: malloc'd (stolen) or static. */
static void push_event(flowd_job_t *job, flow_event_type_t type, int final, uint64_t seq,
                       const char *data, size_t len, int is_static) {
    if (data == NULL || flowd_ring_push(&job->events, type, final, seq, data, len, is_static) < 0)
        flowd_log(FLOW_LOG_WARN, "job %s: an event was lost (out of memory)", job->id);
}

/* A status event's data: static when it has no waiting_for and no error (the common case). */
static const char *status_data(flow_status_t status, const char *waiting, const flow_error_t *err,
                               size_t *len, int *is_static) {
    const char *text = NULL;
    if (waiting == NULL && (err == NULL || err->code == 0))
        text = flowd_event_status_static(status, len);
    *is_static = text != NULL;
    return text ? text : flowd_event_status_json(status, waiting, err && err->code ? err : NULL, len);
}

/* Record lock held. */
static void set_last_action(flowd_job_t *job, const char *action) {
    if (action != NULL && job->last_action != NULL && strcmp(action, job->last_action) == 0)
        return;
    if (job->last_action != job->last_action_buf)
        free(job->last_action);
    job->last_action = NULL;
    if (action == NULL)
        return;
    size_t n = strlen(action);
    if (n < sizeof job->last_action_buf) {
        memcpy(job->last_action_buf, action, n + 1);
        job->last_action = job->last_action_buf;
    } else {
        job->last_action = strdup(action);
    }
}

static int dump_to_buf(const char *text, size_t len, void *data) {
    flow_buf_add(data, text, len);
    return 0;
}

/* Compact JSON of v in one allocation of ours (json_dumps makes several). */
static char *dump_compact(const json_t *v, size_t *len) {
    flow_buf_t b;
    flow_buf_init(&b, 0);
    if (json_dump_callback(v, dump_to_buf, &b, JSON_COMPACT | JSON_ENCODE_ANY) < 0) {
        flow_buf_free(&b);
        return NULL;
    }
    return flow_buf_take(&b, len);
}

static char *strdup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

/* --store-backlog: a job that steps faster than the store writes (a tight loop, thousands of jobs
 * at once) would queue its checkpoints in memory without end. Past the limit no job starts a step
 * (flow_engine_hold) until the writers are down to half of it; the writers' threads have no way to
 * the loop, so the loop looks every 2 ms, and only while it holds. */
static void on_backlog(uv_timer_t *t) {
    flowd_bridge_t *b = t->data;
    flowd_server_t *srv = b->srv;
    if (srv->store->ops->backlog(srv->store) > srv->cfg.store_backlog / 2)
        return;
    uv_timer_stop(t);
    flow_engine_hold(srv->eng, 0);
    flowd_metrics_store_held(srv->metrics, (uv_hrtime() - b->held_ns) / 1000u);
}

static void hold_past_backlog(flowd_server_t *srv) {
    flowd_bridge_t *b = srv->bridge;
    if (srv->store->ops->backlog == NULL || flow_engine_held(srv->eng) ||
        srv->store->ops->backlog(srv->store) < srv->cfg.store_backlog)
        return;
    flow_engine_hold(srv->eng, 1);
    b->held_ns = uv_hrtime();
    uv_timer_start(&b->backlog, on_backlog, 2, 2);
}

/* The steps a done job's history shows (--history-limit, as the engine keeps them): of the ones run
 * here and the ones its store gave back at a restart. Not capped, a restored job showed all that
 * its store gave back (up to --events-limit), and past the ring's room none at all. */
static uint64_t history_shown(const flowd_server_t *srv, uint64_t steps) {
    return steps < srv->cfg.history_limit ? steps : srv->cfg.history_limit;
}

/* What a restart would resume the job from, to the store (which copies what it keeps, and takes
 * shared: compact JSON as of step shared_step, or NULL when it did not change or, in a store with
 * patches, when the step's entry carries what changed). */
static void checkpoint(flowd_server_t *srv, flowd_job_t *job, flow_job_t *fj, char *shared,
                       size_t shared_len, uint64_t shared_step, const char *step, size_t step_len,
                       uint64_t step_seq, uint64_t event_id) {
    if (srv->store->ops->checkpoint == NULL) {
        free(shared);
        return;
    }
    flowd_checkpoint_t cp = {.status = flow_job_status(fj),
                             .resume_node = job->run.resume_node,
                             .tries = job->run.resume_tries,
                             .steps = flow_job_steps(fj),
                             .visits = job->run.visits,
                             .started_us = flow_job_started_us(fj),
                             .shared = shared,
                             .shared_len = shared_len,
                             .shared_step = shared_step,
                             .base_step = job->run.base_step,
                             .step = step,
                             .step_len = step_len,
                             .step_seq = step_seq,
                             .waiting_for = job->waiting_for,
                             .event_id = event_id,
                             .last_action = flow_job_last_action(fj)};
    srv->store->ops->checkpoint(srv->store, job, &cp);
    hold_past_backlog(srv);
}

/* The shared store's size where nothing serializes it (the memory store, and a store with patches
 * between whole stores): counted by a dump that stops past the cap, but not after every step, so
 * that a large store does not cost every step a dump: once COUNT_EVERY d have passed after a count
 * that took d (a count takes at most about a 32nd of the loop's time, which keeps a step on a
 * 1 MiB store within bench/run-patches.sh's 2x of one on 1 KiB; and not sooner than
 * COUNT_FLOOR_NS, which a tiny store would cost every step),
 * or sooner, at the step that would take it past the cap if it went on growing as fast as since
 * the last count. 0 when it is not counted after this step. */
#define COUNT_FLOOR_NS 20000u
#define COUNT_EVERY 32u
static size_t count_shared(json_t *shared, flowd_job_t *job, const flow_step_t *step, size_t max) {
    struct flowd_size_count *c = &job->run.size_count;
    if (step->end_us * 1000u < c->due_ns && step->seq < c->due_seq)
        return 0;
    uint64_t t0 = uv_hrtime();
    size_t size = flowd_json_size(shared, max);
    uint64_t took = uv_hrtime() - t0;
    c->due_ns = step->end_us * 1000u +
                (took < COUNT_FLOOR_NS / COUNT_EVERY ? COUNT_FLOOR_NS : COUNT_EVERY * took);
    c->due_seq = UINT64_MAX;
    if (size > c->bytes && size <= max && step->seq > c->seq) {
        uint64_t per_step = (size - c->bytes + (step->seq - c->seq) - 1) / (step->seq - c->seq);
        uint64_t steps_left = (max - size) / per_step;
        c->due_seq = step->seq + (steps_left > 0 ? steps_left : 1);
    }
    c->bytes = size;
    c->seq = step->seq;
    return size;
}

/* The shared store after a step, checked against --max-shared. A store that keeps it whole at
 * every step gets it as compact JSON, made here once, whose length is the size: nothing is
 * serialized twice; so does a store with patches at a snapshot (whole). Otherwise count_shared
 * counts it now and then (the step that is named is then the one after which it was found). Past
 * the cap the job fails too_big. Returns the text for the checkpoint (taken by it), or NULL. */
static char *shared_after(flowd_server_t *srv, flowd_job_t *job, flow_job_t *fj,
                          const flow_step_t *step, int whole, size_t *len, int *too_big) {
    json_t *shared = flow_job_shared(fj);
    size_t max = srv->cfg.max_shared, size;
    char *text = NULL;
    *len = 0;
    if (whole) {
        text = dump_compact(shared, len); /* NULL: out of memory; the store keeps the last one */
        size = *len;
    } else {
        size = count_shared(shared, job, step, max);
    }
    if (size <= max)
        return text;
    *too_big = 1;
    char message[320];
    snprintf(message, sizeof message,
             "the shared store is over %zu bytes as JSON (--max-shared) after step %llu, of node "
             "%s", max, (unsigned long long)step->seq, step->node);
    flow_job_fail(fj, FLOW_ETOOBIG, step->node, message);
    free(text);
    *len = 0;
    return NULL;
}

/* The step's patch of the shared store (patch.h) into pb, from the keys its nodes wrote: what a
 * store with patches writes, and what its event carries (a client that has the store at one event
 * keeps it current). The cost is that of the keys written, never of the whole store. Returns 1 when
 * the store is to be written whole at this step instead: --snapshot-bytes of patches since the last
 * whole store; or --snapshot-steps steps since, once their patches add up to the store's size as
 * last counted (so that whole stores cost no more than the patches do: a big store that changes a
 * little is written whole seldom, and its recovery replays at most about its size in patches); any
 * key may have changed (a C node); or the patch could not be made. */
static int step_patch(flowd_server_t *srv, flowd_job_t *job, flow_job_t *fj, flow_buf_t *pb) {
    json_t *touched = NULL;
    int all = flow_job_take_touched(fj, &touched);
    int rc = job->run.patcher.keys != NULL
                 ? flowd_patch_make(&job->run.patcher, flow_job_shared(fj), touched, pb)
                 : FLOW_ENOMEM;
    json_decref(touched);
    if (rc < 0) {
        flow_buf_free(pb);
        return 1;
    }
    job->run.snap_steps++;
    job->run.snap_bytes += pb->len;
    return all || job->run.snap_bytes >= srv->cfg.snapshot_bytes ||
           (job->run.snap_steps >= srv->cfg.snapshot_steps &&
            job->run.snap_bytes >= job->run.size_count.bytes);
}

static void on_step(flowd_bridge_t *b, flowd_job_t *job, flow_job_t *fj, const flow_step_t *step) {
    flowd_server_t *srv = b->srv;
    size_t len = 0, shared_len = 0;
    flow_buf_t pb;
    flow_buf_init(&pb, 0);
    int whole = step_patch(srv, job, fj, &pb);
    char *data = flowd_event_step_json(step, pb.err ? NULL : pb.data, pb.len, &len);
    flow_buf_free(&pb);
    const char *action = flow_job_last_action(fj);
    flowd_metrics_steps(srv->metrics, 1);
    flowd_metrics_step_type(srv->metrics, step->type ? step->type : "node",
                            step->end_us > step->start_us ? step->end_us - step->start_us : 0);
    const flowd_store_ops_t *ops = srv->store->ops;
    /* a store without patches keeps the whole store at every step; one with them at a snapshot,
     * or when the step's entry (which carries the patch) could not be made */
    whole = ops->checkpoint != NULL && (!ops->patches || whole || data == NULL);
    int too_big = 0;
    char *shared = shared_after(srv, job, fj, step, whole, &shared_len, &too_big);
    if (shared != NULL) {
        job->run.snap_steps = job->run.snap_bytes = 0;
        job->run.size_count.bytes = shared_len; /* the size step_patch weighs patches against */
        job->run.size_count.seq = step->seq;
    }
    if (step->depth == 0)
        job->run.visits++;
    if (step->depth == 0 && step->error == 0 && !too_big) {
        /* the root flow moved on: a restart starts at its next node, with every try left, and a
         * redrive from this store (a store with patches makes it again from its log: run.base_step) */
        job->run.resume_node = step->next;
        job->run.resume_tries = 0;
        job->run.base_step = step->seq;
        free(job->run.base);
        job->run.base = NULL;
    } else if (step->depth == 0) {
        /* the step failed, or left a store over --max-shared: the job ends failed, and a redrive
         * runs this node again from the store before it (run.base or run.base_step, kept) */
        job->run.resume_node = step->node;
        job->run.resume_tries = 0;
    }
    /* the step's event gets the ring's next id (only this thread pushes): a shared store keeps it
     * with the checkpoint, in the same transaction */
    checkpoint(srv, job, fj, shared, shared_len, step->seq, data, len, step->seq,
               job->events.next_id);
    flowd_job_lock(job);
    job->steps = flow_job_steps(fj);
    job->current_node = flow_job_current_node(fj);
    set_last_action(job, action);
    push_event(job, FLOW_EVENT_STEP, 0, step->seq, data, len, 0);
    flowd_watch_wake_locked(job);
    flowd_job_unlock(job);
    /* the answer has been taken: the step that waited for it is done */
    answer_kept(&job->run.inputs);
    flowd_waiters_wake(job); /* long polls that wait for any change (If-None-Match) */
}

/* A try of a root-flow node failed and another follows: a restart must not grant it all its tries
 * again. (Items of a map are not counted: a restart runs the whole map again.) */
static void on_retry(flowd_bridge_t *b, flowd_job_t *job, flow_job_t *fj, const flow_event_t *ev) {
    if (ev->depth != 0 || ev->item != SIZE_MAX)
        return;
    job->run.resume_tries = ev->attempt + 1;
    checkpoint(b->srv, job, fj, NULL, 0, 0, NULL, 0, 0, 0);
}

/* The record's final state, from the engine's job in its last event. */
static void on_final(flowd_bridge_t *b, flowd_job_t *job, flow_job_t *fj, flow_status_t status) {
    flowd_server_t *srv = b->srv;
    const flow_error_t *err = flow_job_error(fj);
    size_t shared_len = 0, len = 0;
    int is_static;
    char *shared = dump_compact(flow_job_shared(fj), &shared_len);
    const char *data = status_data(status, NULL, err, &len, &is_static);
    char *message = err->code ? strdup_or_null(err->message) : NULL;
    char *node = err->code ? strdup_or_null(err->node) : NULL;
    /* a failed or canceled job keeps what a redrive starts from (with a durable store) */
    char *base = NULL, *base_node = NULL;
    size_t base_len = 0;
    int at_step = 0;
    const flowd_store_ops_t *ops = b->srv->store->ops;
    if ((status == FLOW_FAILED || status == FLOW_CANCELED) &&
        (job->run.base != NULL || (ops->patches && !job->run.store_failed)) &&
        (job->run.resume_node == NULL ||
         (base_node = strdup(job->run.resume_node)) != NULL)) {
        base = job->run.base;
        base_len = job->run.base_len;
        job->run.base = NULL;
        at_step = base == NULL; /* a store with patches makes it again (run.base_step) */
    }
    free(job->run.base);
    job->run.base = NULL;
    if (shared == NULL)
        flowd_log(FLOW_LOG_WARN, "job %s: its final shared store was lost (out of memory)", job->id);
    flowd_job_lock(job);
    flowd_jobs_set_status_locked(job, status);
    job->started_us = flow_job_started_us(fj);
    job->finished_us = flow_job_finished_us(fj);
    if (job->finished_us == 0)
        job->finished_us = flow_wall_us();
    job->steps = flow_job_steps(fj);
    job->current_node = NULL;
    set_last_action(job, flow_job_last_action(fj));
    free(job->waiting_for);
    job->waiting_for = NULL;
    flow_error_clear(&job->error);
    job->error.code = err->code;
    job->error.message = message;
    job->error.node = node;
    job->final_shared = shared;
    job->final_shared_len = shared_len;
    job->redrive_shared = base;
    job->redrive_shared_len = base_len;
    job->redrive_node = base_node;
    job->redrive_at_step = at_step;
    job->redrive_step = job->run.base_step;
    push_event(job, FLOW_EVENT_STATUS, 1, 0, data, len, is_static);
    /* The history is made from the ring's step events when they are all still there (short jobs);
     * otherwise it is kept as text now, while the engine still has it. */
    job->history_count = history_shown(srv, flow_job_history_count(fj) + job->restart.restored_steps);
    flow_job_history_totals(fj, &job->totals);
    if (!flowd_ring_steps(&job->events, job->history_count, NULL)) {
        flow_buf_t hb;
        flow_buf_init(&hb, 0);
        flowd_render_history(&hb, fj, job->id);
        job->final_history = flow_buf_take(&hb, &job->final_history_len);
    }
    job->done = 1;
    flowd_watch_wake_locked(job);
    flowd_job_unlock(job);
    /* a delayed job's queue wait counts from its start_at: the delay was asked for */
    uint64_t due_us = job->start_at_us > job->created_us ? job->start_at_us : job->created_us;
    flowd_metrics_job_finished(srv->metrics, flow_def_name(job->def), status, due_us,
                               job->started_us, job->finished_us);
    /* no longer active before anyone hears that it ended: a POST right after a cancel's answer
     * must find the room it left (--max-jobs) */
    flowd_jobs_ended(srv->jobs, job);
    flowd_waiters_wake(job);
    answer_kept(&job->run.cancels);
    answer_kept(&job->run.inputs);
    flowd_webhooks_job_changed(srv->webhooks, job, status); /* before the finish: webhooks.h */
    if (srv->store->ops->finish != NULL)
        srv->store->ops->finish(srv->store, job);
}

static void on_status(flowd_bridge_t *b, flowd_job_t *job, flow_job_t *fj, flow_status_t status) {
    if (flow_status_final(status)) {
        on_final(b, job, fj, status);
        return;
    }
    char *waiting = NULL;
    if (status == FLOW_WAITING && flow_job_waiting_for(fj) != NULL)
        waiting = dump_compact(flow_job_waiting_for(fj), NULL);
    size_t len = 0;
    int is_static;
    const char *data = status_data(status, waiting, NULL, &len, &is_static);
    flowd_job_lock(job);
    flowd_jobs_set_status_locked(job, status);
    if (job->started_us == 0)
        job->started_us = flow_job_started_us(fj);
    job->current_node = flow_job_current_node(fj);
    free(job->waiting_for);
    job->waiting_for = waiting;
    push_event(job, FLOW_EVENT_STATUS, 0, 0, data, len, is_static);
    uint64_t id = job->events.next_id - 1;
    flowd_watch_wake_locked(job);
    flowd_job_unlock(job);
    flowd_waiters_wake(job);
    /* data stays in the ring: only this thread changes it */
    if (b->srv->store->cluster != NULL && data != NULL)
        b->srv->store->cluster->event(b->srv->store, job, id, data, len);
    if (status == FLOW_WAITING) {
        flowd_webhooks_job_changed(b->srv->webhooks, job, status);
        checkpoint(b->srv, job, fj, NULL, 0, 0, NULL, 0, 0, 0); /* a restart shows what it waits for */
    }
}

static void on_event(flow_job_t *fj, const flow_event_t *ev, void *data) {
    flowd_job_t *job = data;
    if (job->gone)
        return; /* another instance runs it now: nothing here is recorded or stored */
    flowd_server_t *srv = flowd_jobs_data(job->table);
    flowd_bridge_t *b = srv->bridge;
    /* Steps and status changes are what the API shows; a failed try only goes to the store. */
    if (ev->type == FLOW_EVENT_STEP) {
        on_step(b, job, fj, ev->step);
    } else if (ev->type == FLOW_EVENT_STATUS) {
        on_status(b, job, fj, ev->status);
    } else {
        if (ev->type == FLOW_EVENT_RETRY)
            on_retry(b, job, fj, ev);
        return;
    }
    if (!flow_status_final(ev->status))
        mark_dirty(b, job);
}

static void on_done(flow_job_t *fj, void *data) {
    flowd_job_t *job = data;
    (void)fj;
    job->run.job = NULL;
    flowd_patcher_free(&job->run.patcher);
    flowd_sched_done(job); /* its room goes to the next one */
    flowd_job_unref(job); /* the loop's reference, taken at start */
}

/* ---- commands ---- */

/* A loop call is answered: the HTTP thread takes it from here once MHD runs the connection. */
static void reply_done(flowd_cmd_t *c) {
    if (c->done != NULL) { /* sent from another instance: the answer goes back through the store */
        c->done(c);
        return;
    }
    atomic_store_explicit(&c->reply->ready, 1, memory_order_release);
    MHD_resume_connection(c->conn);
}

static void reply_job(flowd_cmd_t *c, unsigned status) {
    c->reply->answer.status = status;
    c->reply->answer.body = flowd_render_job_text(c->job, &c->reply->answer.len, &c->reply->answer.etag);
    c->reply->answer.has_etag = 1;
    c->reply->location = 1;
}

/* The job could not start: it ends failed, with the shared store it was given. */
static void start_failed(flowd_server_t *srv, flowd_job_t *job, json_t *shared, int rc) {
    flowd_log(FLOW_LOG_WARN, "job %s could not start: %s", job->id, flow_strerror(rc));
    const char *message = "the job could not start";
    flow_error_t err = {rc, (char *)message, NULL};
    char *text = shared ? dump_compact(shared, NULL) : strdup("{}");
    size_t len = 0, hlen = 0;
    int is_static;
    const char *data = status_data(FLOW_FAILED, NULL, &err, &len, &is_static);
    flow_buf_t hb;
    flow_buf_init(&hb, 0);
    flowd_render_history_of(&hb, job->id, "[]", 2, &(flow_history_totals_t){0});
    char *history = flow_buf_take(&hb, &hlen);
    flowd_job_lock(job);
    flowd_jobs_set_status_locked(job, FLOW_FAILED);
    job->finished_us = flow_wall_us();
    flow_error_clear(&job->error);
    job->error.code = rc;
    job->error.message = strdup(message);
    job->final_shared = text;
    job->final_shared_len = text ? strlen(text) : 0;
    job->final_history = history;
    job->final_history_len = hlen;
    job->done = 1;
    push_event(job, FLOW_EVENT_STATUS, 1, 0, data, len, is_static);
    flowd_watch_wake_locked(job);
    flowd_job_unlock(job);
    flowd_waiters_wake(job);
    answer_kept(&job->run.cancels);
    flowd_jobs_ended(srv->jobs, job);
    flowd_webhooks_job_changed(srv->webhooks, job, FLOW_FAILED);
}

/* Record lock held: the state of a restored job that had ended. */
static void restore_final(const flowd_server_t *srv, flowd_job_t *job, const flowd_stored_job_t *sj) {
    size_t len = 0;
    int is_static;
    flow_error_t err = {sj->error_code, (char *)sj->error_message, (char *)sj->error_node};
    flowd_jobs_set_status_locked(job, sj->status);
    job->finished_us = sj->finished_us;
    flow_error_clear(&job->error);
    job->error.code = sj->error_code;
    job->error.message = strdup_or_null(sj->error_message);
    job->error.node = strdup_or_null(sj->error_node);
    job->final_shared = dump_compact(sj->shared, &job->final_shared_len);
    if ((sj->base_shared != NULL || sj->at_base_step) &&
        (sj->resume_node == NULL || (job->redrive_node = strdup(sj->resume_node)) != NULL)) {
        if (sj->base_shared != NULL) {
            job->redrive_shared_len = strlen(sj->base_shared);
            job->redrive_shared = strndup(sj->base_shared, job->redrive_shared_len);
        } else {
            job->redrive_at_step = 1; /* a store with patches makes it again from its log */
            job->redrive_step = sj->base_step;
        }
    }
    job->history_count = history_shown(srv, job->restart.restored_steps);
    json_t *t = sj->totals;
    job->totals = (flow_history_totals_t){
        .steps = (uint64_t)json_integer_value(json_object_get(t, "steps")),
        .failed = (uint64_t)json_integer_value(json_object_get(t, "failed")),
        .retries = (uint64_t)json_integer_value(json_object_get(t, "retries")),
        .dropped = (uint64_t)json_integer_value(json_object_get(t, "dropped"))};
    const char *data = status_data(sj->status, NULL, &err, &len, &is_static);
    push_event(job, FLOW_EVENT_STATUS, 1, 0, data, len, is_static);
    job->done = 1;
}

/* The root-level (depth 0) entries of a history: the root-level steps a resumed job had started
 * before the node it resumes at, from which its visits number on (flow_ctx_visit), so that the step
 * it runs again sends the Idempotency-Key it sent before the stop. For a store that does not keep
 * the count (has_visits): SQLite gives the whole history back, PostgreSQL before schema 9 the last
 * --events-limit entries (a count short for a longer job). */
static uint64_t root_steps(json_t *history) {
    uint64_t n = 0;
    size_t i;
    json_t *step;
    json_array_foreach(history, i, step)
        n += json_integer_value(json_object_get(step, "depth")) == 0;
    return n;
}

int flowd_bridge_restore(flowd_bridge_t *b, const flowd_stored_job_t *sj, flow_def_t *def) {
    flowd_server_t *srv = b->srv;
    flowd_job_t *job = NULL;
    flow_def_t *placeholder = NULL;
    if (def == NULL) {
        /* a record needs a definition for its flow's name: one that cannot run */
        if (flow_def_new(sj->flow, &placeholder) < 0)
            return FLOW_ENOMEM;
        def = placeholder;
    }
    const char *tenant =
        flowd_auth_tenant(srv->auth, sj->tenant ? sj->tenant : FLOWD_DEFAULT_TENANT);
    int rc = tenant == NULL ? FLOW_ENOMEM
                            : flowd_jobs_restore(srv->jobs, def, tenant, sj->id, sj->seq,
                                                 sj->created_us, sj->idem_key, sj->body_hash, &job);
    flow_def_unref(placeholder);
    if (rc < 0)
        return rc;
    if (sj->callback != NULL) {
        /* as POST gave it (the store keeps it checked): its deliveries go on after the restart */
        json_t *cb = json_loads(sj->callback, 0, NULL);
        char why[200];
        if (cb == NULL || flowd_callback_parse(cb, &job->callback, &job->callback_url,
                                               &job->callback_events, why, sizeof why) < 0)
            flowd_log(FLOW_LOG_WARN, "job %s: its callback is lost: %s", sj->id,
                      cb ? why : "it is not JSON");
        json_decref(cb);
    }
    size_t i;
    json_t *step;
    /* immutable from now on (jobs.h); lost to a lack of memory, a redrive cannot be made of it */
    job->params_text = sj->params ? dump_compact(sj->params, NULL) : NULL;
    job->origin = strdup_or_null(sj->origin);
    /* what the store gave back is checked as a request's header is (http.c): a row edited by hand
     * is left out rather than sent on; a valid one is 55 characters, the field's size but its NUL */
    if (flow_traceparent_valid(sj->traceparent))
        memcpy(job->traceparent, sj->traceparent, sizeof job->traceparent);
    flowd_job_lock(job);
    job->start_at_us = sj->start_at_us;
    job->priority = sj->priority <= FLOWD_PRIORITY_MAX ? sj->priority : FLOWD_PRIORITY_DEFAULT;
    if (sj->conc_key != NULL && (job->conc_key = strdup(sj->conc_key)) != NULL)
        job->conc_limit = sj->conc_limit > 0 ? sj->conc_limit : 1;
    if (sj->events != NULL) {
        /* the events as they were, with their ids, so that Last-Event-ID goes on from them */
        for (i = 0; i < sj->nevents; i++) {
            const flowd_stored_event_t *ev = &sj->events[i];
            if (ev->id >= job->events.next_id)
                job->events.next_id = ev->id;
            push_event(job, (flow_event_type_t)ev->type, ev->final, ev->seq, strndup(ev->data, ev->len), ev->len, 0);
        }
    } else {
        json_array_foreach(sj->history, i, step) {
            size_t len = 0;
            char *data = dump_compact(step, &len);
            push_event(job, FLOW_EVENT_STEP, 0, (uint64_t)json_integer_value(json_object_get(step, "seq")), data,
                       len, 0);
        }
    }
    job->restart.restored_steps = json_array_size(sj->history);
    job->steps = sj->steps;
    job->started_us = sj->started_us;
    set_last_action(job, sj->last_action);
    int ended = flow_status_final(sj->status);
    /* a job whose root flow had run its last node when flowd stopped: nothing is left to run again */
    int completed = !ended && sj->status != FLOW_QUEUED && sj->steps > 0 && sj->resume_node == NULL;
    if (ended)
        restore_final(srv, job, sj);
    flowd_job_unlock(job);
    if (ended) {
        flowd_jobs_ended(srv->jobs, job);
        flowd_job_unref(job);
        return 0;
    }
    if (placeholder != NULL) {
        job->run.store_failed = 1; /* ends failed when its start runs */
        flowd_log(FLOW_LOG_WARN, "job %s: its flow %s cannot be loaded again; it ends failed", sj->id, sj->flow);
    } else if (completed) {
        job->restart.node = NULL;
    } else if (sj->resume_node != NULL && (sj->status != FLOW_QUEUED || sj->origin != NULL)) {
        /* a job that had started resumes where it was; a redrive's queued job starts at the
         * node it was made at */
        job->restart.node = strdup(sj->resume_node);
        job->restart.tries = sj->tries;
    }
    job->sched.resumed = sj->status != FLOW_QUEUED;
    job->restart.steps = sj->status == FLOW_QUEUED ? 0 : sj->steps;
    job->restart.visits = sj->status == FLOW_QUEUED ? 0
                          : sj->has_visits                ? sj->visits
                                                          : root_steps(sj->history);
    job->restart.done = completed;
    rc = flowd_bridge_start(b, job, json_incref(sj->shared), json_incref(sj->params));
    flowd_job_unref(job);
    return rc;
}

/* A restored job that had run its root flow's last node: it succeeds with its last shared store. */
static void restart_succeeded(flowd_server_t *srv, flowd_job_t *job, json_t *shared) {
    size_t len = 0;
    int is_static;
    const char *data = status_data(FLOW_SUCCEEDED, NULL, NULL, &len, &is_static);
    flowd_job_lock(job);
    flowd_jobs_set_status_locked(job, FLOW_SUCCEEDED);
    job->finished_us = flow_wall_us();
    job->final_shared = dump_compact(shared, &job->final_shared_len);
    job->history_count = history_shown(srv, job->restart.restored_steps);
    job->totals.steps = job->steps;
    push_event(job, FLOW_EVENT_STATUS, 1, 0, data, len, is_static);
    job->done = 1;
    flowd_watch_wake_locked(job);
    flowd_job_unlock(job);
    flowd_webhooks_job_changed(srv->webhooks, job, FLOW_SUCCEEDED); /* before the finish */
    if (srv->store->ops->finish != NULL)
        srv->store->ops->finish(srv->store, job);
    flowd_jobs_ended(srv->jobs, job);
}

/* job: the queue's reference, dropped here. The scheduler calls it once the job's time and room
 * have come. */
static void run_start(void *data, flowd_job_t *job) {
    flowd_bridge_t *b = data;
    flowd_server_t *srv = b->srv;
    json_t *params = job->run.start_params;
    flow_job_opts_t opts = {.id = job->id,
                            .params = params,
                            .on_event = on_event,
                            .on_done = on_done,
                            .data = job,
                            .resume_node = job->restart.node,
                            .resume_tries = job->restart.tries,
                            .resume_steps = job->restart.steps,
                            .resume_visits = job->restart.visits,
                            .resume_started_us = job->started_us, /* 0 unless restored */
                            .traceparent = job->traceparent[0] ? job->traceparent : NULL};
    flowd_config_job_limits(&srv->cfg, job->def, &opts);
    flow_job_t *fj = NULL;
    json_t *shared = job->run.start_shared;
    job->run.start_shared = job->run.start_params = NULL;
    json_t *keep = json_incref(shared); /* for start_failed: flow_job_start steals shared */
    job->run.visits = job->restart.visits;
    if (job->gone) { /* adopted, then taken over by another instance before it started here */
        json_decref(shared);
        json_decref(params);
        json_decref(keep);
        flowd_sched_done(job);
        flowd_job_unref(job);
        return;
    }
    if (job->restart.done) {
        /* restored after its root flow had run its last node: it ends as it would have */
        json_decref(shared);
        json_decref(params);
        restart_succeeded(srv, job, keep);
        json_decref(keep);
        flowd_sched_done(job);
        flowd_job_unref(job);
        return;
    }
    /* the keys the first step's patch starts from (O(keys), once per run); without them (out of
     * memory) every step's store is written whole */
    json_t *empty = shared ? NULL : json_object();
    if (flowd_patcher_init(&job->run.patcher, shared ? shared : empty) < 0)
        job->run.patcher.keys = NULL;
    json_decref(empty);
    /* a job that resumes writes its store whole at its first step (its size is not counted yet:
     * step_patch): the store it was given back may be one a store without patches kept (a file
     * from before them) */
    job->run.snap_steps = job->restart.steps > 0 ? srv->cfg.snapshot_steps : 0;
    job->run.snap_bytes = 0;
    if (srv->store->ops->checkpoint != NULL && !job->run.store_failed) {
        /* a new job's store was serialized by its POST, off the loop (run.base): its size is
         * counted already, and the first count here waits as one that took as long would (a
         * nanosecond a byte, about what a count takes), instead of dumping a large store again
         * after the first step (7 ms on the loop for 1 MiB, a 1,000-step job's time five times) */
        if (job->run.base != NULL && job->restart.steps == 0 && job->run.size_count.seq == 0) {
            struct flowd_size_count *c = &job->run.size_count;
            c->bytes = job->run.base_len;
            c->due_ns = flow_wall_us() * 1000u +
                        (c->bytes < COUNT_FLOOR_NS / COUNT_EVERY ? COUNT_FLOOR_NS : COUNT_EVERY * c->bytes);
            c->due_seq = UINT64_MAX;
        }
        /* the store its first root-level node starts from: a durable store (each keeps patches)
         * makes it again from its log (run.base_step), so the copy its POST made goes */
        job->run.base_step = job->restart.steps;
        free(job->run.base);
        job->run.base = NULL;
    }
    int rc = job->run.store_failed ? (json_decref(shared), FLOW_EIO) : flow_job_start(srv->eng, job->def, shared, &opts, &fj);
    json_decref(params); /* the engine keeps what it needs */
    if (rc < 0) {
        start_failed(srv, job, keep, rc);
        json_decref(keep);
        flowd_sched_done(job);
        flowd_job_unref(job);
        return;
    }
    json_decref(keep);
    job->run.job = fj; /* the queue's reference becomes the loop's, dropped in on_done */
    if (job->restart.node != NULL) {
        flow_node_t *n = flow_def_find(job->def, job->restart.node);
        job->run.resume_node = n ? flow_node_name(n) : NULL;
        job->run.resume_tries = job->restart.tries;
        free(job->restart.node);
        job->restart.node = NULL;
    }
    flowd_metrics_job_started(srv->metrics);
    if (job->run.cancel_pending)
        flow_job_cancel(fj);
}

void flowd_bridge_set_acquire(flowd_bridge_t *b, flowd_sched_acquire_cb acquire, void *data) {
    flowd_sched_set_acquire(b->sched, acquire, data);
}

void flowd_bridge_poke(flowd_bridge_t *b) {
    if (b->sched != NULL)
        flowd_sched_poke(b->sched);
}

void flowd_bridge_forget(flowd_bridge_t *b, flowd_job_t *job) {
    if (job->gone)
        return;
    if (flowd_sched_take(b->sched, job))
        flowd_job_unref(job); /* it had not started here: nothing runs */
    flowd_job_lock(job);
    job->gone = 1;
    flowd_watch_wake_locked(job); /* they end: gone */
    flowd_job_unlock(job);
    if (job->run.job != NULL)
        flow_job_cancel(job->run.job); /* its events are not recorded (on_event), on_done still runs */
    flowd_waiters_wake(job);
    answer_kept(&job->run.inputs); /* taken before it moved: as it is */
    while (job->run.cancels != NULL) { /* it did not end here: the client asks again, and reaches the owner */
        flowd_cmd_t *c = job->run.cancels;
        job->run.cancels = c->next;
        flowd_answer_error(&c->reply->answer, FLOWD_E_UNAVAILABLE, "job %s moved to another instance; try again",
                           job->id);
        reply_done(c);
        flowd_cmd_free(c);
    }
    flowd_jobs_forget(b->srv->jobs, job);
}

void flowd_bridge_cancel(flowd_bridge_t *b, flowd_job_t *job) {
    (void)b;
    if (job->run.job != NULL)
        flow_job_cancel(job->run.job);
    else if (!job->ended)
        job->run.cancel_pending = 1; /* its start command is still on its way */
}

/* Returns 1 when it keeps c: the answer waits until the job has ended (a cancel takes effect on the
 * next loop iteration), so that it shows the job canceled, with its error and end time. */
static int run_cancel(flowd_bridge_t *b, flowd_cmd_t *c) {
    flowd_job_t *job = c->job;
    if (flowd_sched_take(b->sched, job)) {
        /* it waited for its time or its turn: it starts only to end canceled at once (the engine
         * runs no node of a job canceled before its first turn), so that it ends as every job
         * does, events, store and all; it takes no room */
        run_start(b, job);
    }
    if (job->run.job != NULL && flow_job_cancel(job->run.job) == 0) {
        c->next = job->run.cancels;
        job->run.cancels = c;
        return 1;
    }
    if (job->run.job == NULL && !job->ended) {
        job->run.cancel_pending = 1; /* its start command is still on its way */
        reply_job(c, 202);
    } else {
        flowd_answer_error(&c->reply->answer, FLOWD_E_ALREADY_ENDED, "job %s has already ended (%s)",
                           job->id, flow_status_name(flowd_job_status(job)));
    }
    reply_done(c);
    return 0;
}

/* Answers every call kept in list with the job as it is now (202): the cancels once the job has
 * ended (job->run.cancels); the answers the node has taken once the step that waited for them is
 * done, or the job (job->run.inputs), so that the 202 shows where the answer led. */
static void answer_kept(flowd_cmd_t **list) {
    while (*list != NULL) {
        flowd_cmd_t *c = *list;
        *list = c->next;
        reply_job(c, 202);
        reply_done(c);
        flowd_cmd_free(c);
    }
}

/* Returns 1 when it keeps c: an answer the job took is answered once the node has used it (the
 * step ends, or the job does), not with the job as it was before. */
static int run_input(flowd_cmd_t *c) {
    flowd_job_t *job = c->job;
    flow_status_t status = job->run.job ? flow_job_status(job->run.job) : flowd_job_status(job);
    if (job->run.job == NULL || status != FLOW_WAITING) {
        flowd_answer_error(&c->reply->answer, FLOWD_E_NOT_WAITING,
                           "job %s is %s, not waiting for input", job->id, flow_status_name(status));
    } else {
        flow_error_t err = {0};
        int rc = flow_job_input(job->run.job, c->value, &err);
        if (rc == 0) {
            flow_error_clear(&err);
            c->next = job->run.inputs;
            job->run.inputs = c;
            return 1;
        }
        if (rc == FLOW_ESTATE)
            flowd_answer_error(&c->reply->answer, FLOWD_E_NOT_WAITING,
                               "job %s is not waiting for input", job->id);
        else
            flowd_answer_error(&c->reply->answer, FLOWD_E_INVALID_INPUT, "%s",
                               err.message ? err.message : flow_strerror(rc));
        flow_error_clear(&err);
    }
    reply_done(c);
    return 0;
}

static void run_wait(flowd_bridge_t *b, flowd_cmd_t *c) {
    if (flowd_waiter_add(b->srv->waits, c->job, c->seen, c->seen_version, c->wait_ms, c->conn,
                         &c->reply->ready) < 0)
        reply_done(c); /* no memory to wait: answer at once */
}

static void run(flowd_bridge_t *b, flowd_cmd_t *c) {
    switch (c->type) {
    case FLOWD_CMD_CANCEL:
        if (run_cancel(b, c))
            return; /* kept until the job has ended */
        break;
    case FLOWD_CMD_INPUT:
        if (run_input(c))
            return; /* kept until the node has taken the answer */
        break;
    case FLOWD_CMD_CALL:
        c->call(c->job, c->job->run.job, c->call_data);
        reply_done(c);
        break;
    case FLOWD_CMD_WAIT:
        run_wait(b, c);
        break;
    }
    flowd_cmd_free(c);
}

/* Runs every start and command queued, oldest first, starts first. */
static void drain(flowd_bridge_t *b) {
    pthread_mutex_lock(&b->lock);
    flowd_cmd_t *list = b->head;
    flowd_job_t *starts = b->starts;
    b->head = NULL;
    b->starts = NULL;
    pthread_mutex_unlock(&b->lock);
    flowd_job_t *sfifo = NULL;
    flowd_cmd_t *fifo = NULL;
    uint64_t n = 0;
    while (starts != NULL) {
        flowd_job_t *next = starts->run.start_next;
        starts->run.start_next = sfifo;
        sfifo = starts;
        starts = next;
        n++;
    }
    while (list != NULL) {
        flowd_cmd_t *next = list->next;
        list->next = fifo;
        fifo = list;
        list = next;
        n++;
    }
    atomic_fetch_sub_explicit(&b->depth, n, memory_order_relaxed);
    while (sfifo != NULL) {
        flowd_job_t *next = sfifo->run.start_next;
        sfifo->run.start_next = NULL;
        flowd_sched_add(b->sched, sfifo);
        sfifo = next;
    }
    while (fifo != NULL) {
        flowd_cmd_t *next = fifo->next;
        run(b, fifo);
        fifo = next;
    }
}

static void on_async(uv_async_t *h) {
    drain(h->data);
}

void flowd_bridge_run(flowd_bridge_t *b) {
    drain(b);
}

static void on_closed(uv_handle_t *h);

int flowd_bridge_new(flowd_server_t *srv, flowd_bridge_t **out) {
    flowd_bridge_t *b = calloc(1, sizeof *b);
    if (b == NULL)
        return FLOW_ENOMEM;
    b->srv = srv;
    pthread_mutex_init(&b->lock, NULL);
    int rc = uv_async_init(&srv->loop, &b->async, on_async);
    if (rc != 0) {
        pthread_mutex_destroy(&b->lock);
        free(b);
        return FLOW_EIO;
    }
    uv_check_init(&srv->loop, &b->check);
    uv_timer_init(&srv->loop, &b->backlog);
    b->async.data = b;
    b->check.data = b;
    b->backlog.data = b;
    b->open_handles = 3;
    rc = flowd_sched_new(&srv->loop, srv->cfg.max_running, &srv->stopping, run_start, b, &b->sched);
    if (rc < 0) {
        /* b goes with the handles' close callbacks: the server does not start */
        uv_close((uv_handle_t *)&b->async, on_closed);
        uv_close((uv_handle_t *)&b->check, on_closed);
        uv_close((uv_handle_t *)&b->backlog, on_closed);
        return rc;
    }
    *out = b;
    return 0;
}

static void on_closed(uv_handle_t *h) {
    flowd_bridge_t *b = h->data;
    if (--b->open_handles > 0)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b);
}

void flowd_bridge_close(flowd_bridge_t *b) {
    drain(b);
    pthread_mutex_lock(&b->lock);
    b->closed = 1;
    pthread_mutex_unlock(&b->lock);
    flowd_job_t *job = b->dirty;
    while (job != NULL) {
        flowd_job_t *next = job->run.dirty_next;
        job->run.dirty = 0;
        flowd_job_unref(job);
        job = next;
    }
    b->dirty = NULL;
    flowd_sched_close(b->sched); /* what waited to start stays in the store for the next start */
    b->sched = NULL;
    uv_close((uv_handle_t *)&b->async, on_closed);
    uv_close((uv_handle_t *)&b->check, on_closed);
    uv_close((uv_handle_t *)&b->backlog, on_closed);
}
