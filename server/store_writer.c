/* store_writer.c: the writer of a durable store (store_writer.h): its queue, its thread, group
 * commit and settling, and the operations made from the calls of store.h. */
#include "store_writer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flow/doc.h"
#include "log.h"
#include "render.h"
#include "scheduler.h"

/* A caller that waits for the commit of its operation (put_flow). */
struct flowd_op_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int finished, rc;
};

struct flowd_writer {
    const flowd_writer_backend_t *be;
    void *data;
    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t cond;       /* on CLOCK_MONOTONIC, for tick's deadlines */
    flowd_op_t *head, *tail;   /* under lock: the queue, oldest first */
    int closing;               /* under lock */
    int kicked;                /* under lock */
    uint64_t takes;            /* under lock: batches the thread took (FLOWD_WRITER_COALESCE) */
    atomic_size_t pending;     /* operations queued and not yet settled (flowd_writer_backlog) */
    atomic_int released;
    json_t *documents;         /* the thread's: digests of flow documents known to be stored */
};

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

static char *dump(const json_t *v) {
    return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

void flowd_op_free(flowd_op_t *op) {
    switch (op->kind) {
    case FLOWD_OP_CREATE:
        free(op->create.flow);
        free(op->create.digest);
        flow_def_unref(op->create.def);
        free(op->create.document);
        free(op->create.idem_key);
        free(op->create.params);
        free(op->create.shared);
        free(op->create.tenant);
        free(op->create.sched);
        free(op->create.conc_key);
        free(op->create.callback);
        free(op->create.origin);
        free(op->create.resume_node);
        free(op->create.traceparent);
        break;
    case FLOWD_OP_CHECKPOINT:
        free(op->checkpoint.resume_node);
        free(op->checkpoint.shared);
        free(op->checkpoint.step);
        free(op->checkpoint.waiting_for);
        free(op->checkpoint.last_action);
        break;
    case FLOWD_OP_EVENT:
        free(op->event.data);
        free(op->event.waiting_for);
        break;
    case FLOWD_OP_FINISH:
        free(op->finish.shared);
        free(op->finish.last_action);
        free(op->finish.error_code);
        free(op->finish.error_message);
        free(op->finish.error_node);
        free(op->finish.totals);
        free(op->finish.event);
        free(op->finish.base_shared);
        free(op->finish.resume_node);
        break;
    case FLOWD_OP_FLOW:
        free(op->flow.name);
        free(op->flow.document);
        break;
    case FLOWD_OP_ANSWER:
        free(op->answer.body);
        break;
    case FLOWD_OP_SCHEDULE:
        free(op->schedule.name);
        free(op->schedule.tenant);
        free(op->schedule.definition);
        break;
    case FLOWD_OP_DELIVERY:
        free(op->delivery.delivery_id);
        free(op->delivery.tenant);
        free(op->delivery.url);
        free(op->delivery.type);
        free(op->delivery.body);
        free(op->delivery.state);
        free(op->delivery.last_error);
        free(op->delivery.tries);
        break;
    case FLOWD_OP_REMOVE:
    case FLOWD_OP_SLOT:
    case FLOWD_OP_READ:
        break;
    }
    free(op);
}

static flowd_op_t *op_new(flowd_op_kind_t kind, const char *id, uint64_t seq) {
    flowd_op_t *op = calloc(1, sizeof *op);
    if (op == NULL)
        return NULL;
    op->kind = kind;
    if (id != NULL)
        memcpy(op->id, id, sizeof op->id);
    op->seq = seq;
    return op;
}

/* ---- the queue ---- */

/* With the lock held. */
static void enqueue_locked(flowd_writer_t *w, flowd_op_t *op) {
    atomic_fetch_add_explicit(&w->pending, 1, memory_order_relaxed);
    op->next = NULL;
    if (w->tail != NULL)
        w->tail->next = op;
    else
        w->head = op;
    w->tail = op;
    pthread_cond_signal(&w->cond);
}

static void enqueue(flowd_writer_t *w, flowd_op_t *op) {
    pthread_mutex_lock(&w->lock);
    enqueue_locked(w, op);
    pthread_mutex_unlock(&w->lock);
}

static void wait_init(struct flowd_op_wait *wt) {
    pthread_mutex_init(&wt->lock, NULL);
    pthread_cond_init(&wt->cond, NULL);
    wt->finished = 0;
    wt->rc = 0;
}

static void wait_done(struct flowd_op_wait *wt, int rc) {
    pthread_mutex_lock(&wt->lock);
    wt->rc = rc;
    wt->finished = 1;
    pthread_cond_broadcast(&wt->cond);
    pthread_mutex_unlock(&wt->lock);
}

static int wait_for(struct flowd_op_wait *wt) {
    pthread_mutex_lock(&wt->lock);
    while (!wt->finished)
        pthread_cond_wait(&wt->cond, &wt->lock);
    int rc = wt->rc;
    pthread_mutex_unlock(&wt->lock);
    pthread_cond_destroy(&wt->cond);
    pthread_mutex_destroy(&wt->lock);
    return rc;
}

/* ---- the thread ---- */

/* The shared store an operation writes into the job's row (NULL: unchanged), or NULL for an
 * operation that writes none. */
static char **shared_text(flowd_op_t *op) {
    return op->kind == FLOWD_OP_CHECKPOINT ? &op->checkpoint.shared
           : op->kind == FLOWD_OP_FINISH   ? &op->finish.shared
                                           : NULL;
}

/* FLOWD_WRITER_COALESCE: a job that takes several steps between two commits need not have its row
 * rewritten for each: only its last checkpoint or its finish matters, as long as the newest shared
 * store goes with it. Every step's history entry is still written. Walking the batch newest first,
 * a table keyed by the job's seq holds the job's last operation. */
static void supersede(flowd_op_t *batch) {
    size_t n = 0, cap = 16;
    for (flowd_op_t *op = batch; op != NULL; op = op->next)
        n++;
    while (cap < 2 * n)
        cap *= 2;
    flowd_op_t **ops = malloc(n * sizeof *ops), **last = calloc(cap, sizeof *last);
    if (ops == NULL || last == NULL)
        goto out; /* every row is written: slower, still right */
    n = 0;
    for (flowd_op_t *op = batch; op != NULL; op = op->next)
        ops[n++] = op;
    while (n-- > 0) {
        flowd_op_t *op = ops[n];
        if (shared_text(op) == NULL)
            continue;
        size_t h = (size_t)(op->seq * 0x9E3779B97F4A7C15ull) & (cap - 1);
        while (last[h] != NULL && last[h]->seq != op->seq)
            h = (h + 1) & (cap - 1);
        if (last[h] == NULL) {
            last[h] = op;
            continue;
        }
        if (op->kind != FLOWD_OP_CHECKPOINT)
            continue; /* a finish followed by more (a restart of a job) keeps its row write */
        op->checkpoint.superseded = 1;
        char **mine = shared_text(op), **theirs = shared_text(last[h]);
        if (*theirs == NULL && *mine != NULL) {
            *theirs = *mine;
            *mine = NULL;
            if (last[h]->kind == FLOWD_OP_CHECKPOINT) /* the step it is as of goes with it */
                last[h]->checkpoint.shared_step = op->checkpoint.shared_step;
        }
    }
out:
    free(ops);
    free(last);
}

/* A flow's document goes with every new job; it is written once per digest (the backend's insert
 * ignores one it has, should the writer not know of it: after a restart, or a failed batch). */
/* The writer's thread: a create of a flow version it does not know to be stored writes its
 * document, serialized here, once, rather than by every submission's HTTP thread (a document is
 * never changed once loaded). A document that cannot be serialized (out of memory) is NULL, which
 * fails its create. */
static void mark_documents(flowd_writer_t *w, flowd_op_t *batch) {
    for (flowd_op_t *op = batch; op != NULL; op = op->next) {
        flowd_op_create_t *c = &op->create;
        if (op->kind != FLOWD_OP_CREATE || c->digest == NULL ||
            json_object_get(w->documents, c->digest) != NULL)
            continue;
        c->write_document = 1;
        if (c->document == NULL)
            c->document = dump(flow_doc_of(c->def));
    }
}

/* One transaction for the operations from batch on (its next links). */
static int commit_batch(flowd_writer_t *w, flowd_op_t *batch) {
    const flowd_writer_backend_t *be = w->be;
    int rc = be->begin(w->data);
    for (flowd_op_t *op = batch; op != NULL && rc == 0; op = op->next) {
        op->rc = 0;
        op->lost = 0;
        rc = be->apply(w->data, op);
    }
    if (rc == 0)
        rc = be->commit(w->data);
    if (rc != 0)
        be->rollback(w->data);
    return rc;
}

/* After a batch (or an operation alone): tells each caller how its operation went, and frees it. */
static void settle(flowd_writer_t *w, flowd_op_t *batch, int err) {
    while (batch != NULL) {
        flowd_op_t *op = batch;
        batch = op->next;
        int rc = err ? err : op->rc;
        if (w->be->settled != NULL)
            w->be->settled(w->data, op, rc);
        if (op->kind == FLOWD_OP_CREATE) {
            if (rc == 0 && op->create.digest != NULL)
                json_object_set_new(w->documents, op->create.digest, json_true());
            if (op->create.done != NULL)
                op->create.done(op->create.data, rc);
        } else if (op->kind == FLOWD_OP_FLOW) {
            wait_done(op->flow.wait, rc);
        } else if (op->kind == FLOWD_OP_SCHEDULE && op->schedule.wait != NULL) {
            wait_done(op->schedule.wait, rc);
        } else if (op->kind == FLOWD_OP_SLOT && op->slot.done != NULL) {
            op->slot.done(op->slot.data, rc ? rc : op->slot.verdict);
        } else if (op->kind == FLOWD_OP_READ) {
            if (rc != 0) {
                json_decref(*op->read.out);
                *op->read.out = NULL;
            }
            wait_done(op->read.wait, rc);
        }
        flowd_op_free(op);
        atomic_fetch_sub_explicit(&w->pending, 1, memory_order_relaxed);
    }
}

static void write_batch(flowd_writer_t *w, flowd_op_t *batch) {
    if (w->be->flags & FLOWD_WRITER_COALESCE)
        supersede(batch);
    mark_documents(w, batch);
    int rc = commit_batch(w, batch);
    if (rc != 0 && w->be->recover != NULL && w->be->recover(w->data) == 0)
        rc = commit_batch(w, batch); /* once more on a new connection */
    if (rc != 0 && batch->next != NULL) {
        /* one bad operation must not take the others down: each alone */
        flowd_log(FLOW_LOG_WARN, "store %s: a batch failed; its operations are written one by one",
                  w->be->name);
        while (batch != NULL) {
            flowd_op_t *op = batch;
            batch = op->next;
            op->next = NULL;
            int r = commit_batch(w, op);
            if (r != 0)
                flowd_log(FLOW_LOG_ERROR, "store %s: job %s: an operation was lost", w->be->name,
                          op->id);
            settle(w, op, r);
        }
        return;
    }
    if (rc != 0)
        flowd_log(FLOW_LOG_ERROR, "store %s: a commit failed", w->be->name);
    settle(w, batch, rc);
}

static void wait_until(flowd_writer_t *w, uint64_t due_ms) {
    struct timespec ts = {.tv_sec = (time_t)(due_ms / 1000u),
                          .tv_nsec = (long)(due_ms % 1000u) * 1000000L};
    pthread_cond_timedwait(&w->cond, &w->lock, &ts);
}

static void *writer_main(void *arg) {
    flowd_writer_t *w = arg;
    uint64_t due = w->be->tick != NULL ? w->be->tick(w->data) : 0;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (w->head == NULL && !w->closing && !w->kicked) {
            if (due == 0)
                pthread_cond_wait(&w->cond, &w->lock);
            else if (flow_mono_ms() >= due)
                break;
            else
                wait_until(w, due);
        }
        flowd_op_t *batch = w->head;
        int closing = w->closing;
        w->head = w->tail = NULL;
        w->kicked = 0;
        w->takes++;
        pthread_mutex_unlock(&w->lock);
        if (batch != NULL)
            write_batch(w, batch);
        else if (closing)
            break; /* closing, and nothing left */
        if (w->be->tick != NULL)
            due = w->be->tick(w->data);
    }
    if (w->be->stopped != NULL)
        w->be->stopped(w->data);
    return NULL;
}

int flowd_writer_new(const flowd_writer_backend_t *be, void *data, flowd_writer_t **out) {
    flowd_writer_t *w = calloc(1, sizeof *w);
    pthread_condattr_t attr;
    if (w == NULL || (w->documents = json_object()) == NULL) {
        free(w);
        return FLOW_ENOMEM;
    }
    w->be = be;
    w->data = data;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        flowd_writer_free(w);
        return FLOW_ENOMEM;
    }
    w->started = 1;
    *out = w;
    return 0;
}

void flowd_writer_free(flowd_writer_t *w) {
    if (w == NULL)
        return;
    if (w->started) {
        pthread_mutex_lock(&w->lock);
        w->closing = 1;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
    }
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    json_decref(w->documents);
    free(w);
}

void flowd_writer_kick(flowd_writer_t *w) {
    pthread_mutex_lock(&w->lock);
    w->kicked = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void flowd_writer_release(flowd_writer_t *w) {
    atomic_store(&w->released, 1);
}

int flowd_writer_released(flowd_writer_t *w) {
    return atomic_load(&w->released);
}

size_t flowd_writer_backlog(flowd_writer_t *w) {
    return atomic_load_explicit(&w->pending, memory_order_relaxed);
}

/* ---- the operations ---- */

/* A create's members from the job; frees op and returns FLOW_ENOMEM when out of memory. */
static int fill_create(flowd_op_t *op, flowd_job_t *job, json_t *shared, json_t *params,
                       flowd_store_done_cb done, void *data) {
    flowd_op_create_t *c = &op->create;
    const char *digest = flow_doc_digest(job->def);
    c->flow = strdup(flow_def_name(job->def));
    c->digest = dup_or_null(digest);
    c->def = digest ? flow_def_ref(job->def) : NULL;
    c->idem_key = dup_or_null(job->idem_key);
    c->params = dump(params);
    /* a submission's store is dumped once, by its HTTP thread (jobs.h run.base) */
    c->shared = job->run.base ? strndup(job->run.base, job->run.base_len) : dump(shared);
    c->tenant = strdup(job->tenant);
    c->callback = dup_or_null(job->callback);
    c->created_us = job->created_us;
    c->body_hash = job->body_hash;
    c->start_at_us = job->start_at_us;
    c->priority = job->priority;
    c->conc_key = dup_or_null(job->conc_key);
    c->conc_limit = job->conc_limit;
    /* a redrive's job: its HTTP thread set these before the store and the loop had it */
    c->origin = dup_or_null(job->origin);
    c->resume_node = job->origin ? dup_or_null(job->restart.node) : NULL;
    c->traceparent = job->traceparent[0] ? strdup(job->traceparent) : NULL;
    c->done = done;
    c->data = data;
    if (c->flow == NULL || (digest && c->digest == NULL) ||
        (job->idem_key && c->idem_key == NULL) || (params && c->params == NULL) ||
        (shared && c->shared == NULL) || c->tenant == NULL ||
        (job->conc_key && c->conc_key == NULL) || (job->callback && c->callback == NULL) ||
        (job->origin && c->origin == NULL) || (c->origin && job->restart.node && !c->resume_node) ||
        (job->traceparent[0] && c->traceparent == NULL)) {
        flowd_op_free(op);
        return FLOW_ENOMEM;
    }
    return 0;
}

int flowd_writer_create(flowd_writer_t *w, flowd_job_t *job, json_t *shared, json_t *params,
                        flowd_store_done_cb done, void *data) {
    flowd_op_t *op = op_new(FLOWD_OP_CREATE, job->id, job->seq);
    if (op == NULL)
        return FLOW_ENOMEM;
    int rc = fill_create(op, job, shared, params, done, data);
    if (rc < 0)
        return rc;
    enqueue(w, op);
    return 0;
}

void flowd_writer_checkpoint(flowd_writer_t *w, flowd_job_t *job, const flowd_checkpoint_t *cp) {
    if (flowd_writer_released(w)) {
        free(cp->shared);
        return;
    }
    flowd_op_t *op = op_new(FLOWD_OP_CHECKPOINT, job->id, job->seq);
    if (op == NULL) {
        free(cp->shared);
        flowd_log(FLOW_LOG_WARN, "store: job %s: a checkpoint was lost (out of memory)", job->id);
        return;
    }
    flowd_op_checkpoint_t *c = &op->checkpoint;
    c->status = cp->status;
    c->resume_node = dup_or_null(cp->resume_node);
    c->tries = cp->tries;
    c->steps = cp->steps;
    c->visits = cp->visits;
    c->started_us = cp->started_us;
    c->shared = cp->shared;
    c->shared_step = cp->shared_step;
    c->base_step = cp->base_step;
    c->step = cp->step ? strndup(cp->step, cp->step_len) : NULL;
    c->step_seq = cp->step_seq;
    c->event_id = cp->step ? cp->event_id : 0;
    c->waiting_for = dup_or_null(cp->waiting_for);
    c->last_action = dup_or_null(cp->last_action);
    pthread_mutex_lock(&w->lock);
    if ((w->be->flags & FLOWD_WRITER_COALESCE) && c->shared != NULL) {
        /* the older one goes in the same batch, superseded: its store need not be kept */
        flowd_op_t *older = job->queued.checkpoint;
        if (older != NULL && job->queued.take == w->takes) {
            free(older->checkpoint.shared);
            older->checkpoint.shared = NULL;
        }
        job->queued.checkpoint = op;
        job->queued.take = w->takes;
    }
    enqueue_locked(w, op);
    pthread_mutex_unlock(&w->lock);
}

void flowd_writer_event(flowd_writer_t *w, flowd_job_t *job, uint64_t id, const char *data,
                        size_t len) {
    if (flowd_writer_released(w))
        return;
    flowd_op_t *op = op_new(FLOWD_OP_EVENT, job->id, job->seq);
    if (op == NULL || (op->event.data = strndup(data, len)) == NULL) {
        free(op);
        flowd_log(FLOW_LOG_WARN, "store: job %s: an event was lost (out of memory)", job->id);
        return;
    }
    op->event.status = flowd_job_status(job);
    op->event.started_us = job->started_us; /* written by this thread (the loop) */
    op->event.event_id = id;
    op->event.waiting_for = dup_or_null(job->waiting_for);
    enqueue(w, op);
}

void flowd_writer_finish(flowd_writer_t *w, flowd_job_t *job) {
    if (flowd_writer_released(w))
        return; /* ended by our shutdown: it runs on after the restart, or on another instance */
    flowd_op_t *op = op_new(FLOWD_OP_FINISH, job->id, job->seq);
    if (op == NULL) {
        flowd_log(FLOW_LOG_WARN, "store: job %s: its end was not stored (out of memory)", job->id);
        return;
    }
    flowd_op_finish_t *f = &op->finish;
    flowd_job_lock(job);
    f->status = flowd_job_status(job);
    f->steps = job->steps;
    f->started_us = job->started_us;
    f->finished_us = job->finished_us;
    f->shared = job->final_shared ? strndup(job->final_shared, job->final_shared_len) : NULL;
    f->last_action = dup_or_null(job->last_action);
    f->error_code = job->error.code ? strdup(flow_err_name(job->error.code)) : NULL;
    f->error_message = dup_or_null(job->error.message);
    f->error_node = dup_or_null(job->error.node);
    f->totals = flowd_render_totals_text(&job->totals);
    if (job->redrive_shared != NULL) {
        f->base_shared = strndup(job->redrive_shared, job->redrive_shared_len);
        f->resume_node = dup_or_null(job->redrive_node);
        if (f->base_shared == NULL || (job->redrive_node && f->resume_node == NULL)) {
            free(f->base_shared); /* a redrive of it will not be possible after a restart */
            f->base_shared = NULL;
        }
    } else if (job->redrive_at_step) {
        f->resume_node = dup_or_null(job->redrive_node);
        f->at_base_step = job->redrive_node == NULL || f->resume_node != NULL;
        f->base_step = job->redrive_step;
    }
    const flowd_ring_t *r = &job->events;
    if ((w->be->flags & FLOWD_WRITER_EVENTS) && r->len > 0) {
        /* its last event, just pushed: it goes with the end, in the same transaction */
        const flowd_event_t *e = &r->ev[(r->head + r->len - 1) % r->cap];
        if (e->final) {
            f->event_id = e->id;
            f->event = strndup(e->data, e->len);
        }
    }
    flowd_job_unlock(job);
    f->limited = flowd_sched_limited(job);
    enqueue(w, op);
}

int flowd_writer_slot(flowd_writer_t *w, flowd_job_t *job, unsigned flow_limit, int behind,
                      flowd_store_slot_cb done, void *data) {
    flowd_op_t *op = op_new(FLOWD_OP_SLOT, job->id, job->seq);
    if (op == NULL)
        return FLOW_ENOMEM;
    op->slot.conc_limit = job->conc_key ? job->conc_limit : 0;
    op->slot.flow_limit = flow_limit;
    op->slot.behind = behind;
    op->slot.done = done;
    op->slot.data = data;
    enqueue(w, op);
    return 0;
}

void flowd_writer_remove(flowd_writer_t *w, const char *id) {
    if (flowd_writer_released(w))
        return; /* a job our shutdown ended may be dropped from the table, but it runs on; the
                 * next start drops again what is still due */
    flowd_op_t *op = op_new(FLOWD_OP_REMOVE, NULL, 0);
    if (op == NULL)
        return;
    snprintf(op->id, sizeof op->id, "%s", id);
    enqueue(w, op);
}

int flowd_writer_put_flow(flowd_writer_t *w, const char *name, json_t *doc) {
    struct flowd_op_wait wait;
    flowd_op_t *op = op_new(FLOWD_OP_FLOW, NULL, 0);
    if (op == NULL || (op->flow.name = strdup(name)) == NULL ||
        (doc != NULL && (op->flow.document = dump(doc)) == NULL)) {
        if (op != NULL)
            flowd_op_free(op);
        return FLOW_ENOMEM;
    }
    wait_init(&wait);
    op->flow.wait = &wait;
    enqueue(w, op);
    return wait_for(&wait);
}

int flowd_writer_read_shared(flowd_writer_t *w, const char *id, uint64_t step, json_t **out,
                             uint64_t *oldest) {
    struct flowd_op_wait wait;
    *out = NULL;
    *oldest = 0;
    if (strlen(id) != FLOWD_ID_LEN)
        return FLOW_ENOTFOUND; /* and op_new copies FLOWD_ID_LEN + 1 bytes */
    flowd_op_t *op = op_new(FLOWD_OP_READ, id, 0);
    if (op == NULL)
        return FLOW_ENOMEM;
    wait_init(&wait);
    op->read = (flowd_op_read_t){.step = step, .out = out, .oldest = oldest, .wait = &wait};
    enqueue(w, op);
    return wait_for(&wait);
}

int flowd_writer_create_run(flowd_writer_t *w, flowd_job_t *job, json_t *shared, json_t *params,
                            const flowd_schedule_run_t *run, flowd_store_done_cb done,
                            void *data) {
    char *name = strdup(run->name);
    if (name == NULL)
        return FLOW_ENOMEM;
    flowd_op_t *op = op_new(FLOWD_OP_CREATE, job->id, job->seq);
    if (op == NULL) {
        free(name);
        return FLOW_ENOMEM;
    }
    int rc = fill_create(op, job, shared, params, done, data);
    if (rc < 0) {
        free(name);
        return rc;
    }
    op->create.sched = name;
    op->create.sched_due = run->due;
    op->create.sched_next = run->next;
    op->create.sched_at = run->at;
    enqueue(w, op);
    return 0;
}

int flowd_writer_put_schedule(flowd_writer_t *w, const char *name,
                              const flowd_stored_schedule_t *s) {
    struct flowd_op_wait wait;
    flowd_op_t *op = op_new(FLOWD_OP_SCHEDULE, NULL, 0);
    if (op == NULL)
        return FLOW_ENOMEM;
    flowd_op_schedule_t *o = &op->schedule;
    o->kind = s ? FLOWD_SCHED_PUT : FLOWD_SCHED_DELETE;
    o->name = strdup(name);
    if (s != NULL) {
        o->tenant = strdup(s->tenant);
        o->definition = strdup(s->definition);
        o->next = s->next;
    }
    if (o->name == NULL || (s != NULL && (o->tenant == NULL || o->definition == NULL))) {
        flowd_op_free(op);
        return FLOW_ENOMEM;
    }
    wait_init(&wait);
    o->wait = &wait;
    enqueue(w, op);
    return wait_for(&wait);
}

void flowd_writer_skip_run(flowd_writer_t *w, const flowd_schedule_run_t *run) {
    flowd_op_t *op = op_new(FLOWD_OP_SCHEDULE, NULL, 0);
    if (op == NULL || (op->schedule.name = strdup(run->name)) == NULL) {
        free(op);
        flowd_log(FLOW_LOG_WARN, "store: schedule %s: a skipped run was not stored (out of memory)",
                  run->name);
        return;
    }
    op->schedule.kind = FLOWD_SCHED_SKIP;
    op->schedule.due = run->due;
    op->schedule.next = run->next;
    enqueue(w, op);
}

void flowd_writer_answer(flowd_writer_t *w, uint64_t token, unsigned status, char *body) {
    flowd_op_t *op = op_new(FLOWD_OP_ANSWER, NULL, 0);
    if (op == NULL) {
        free(body);
        return; /* the asker times out */
    }
    op->answer.token = token;
    op->answer.status = status;
    op->answer.body = body;
    enqueue(w, op);
}

void flowd_writer_delivery(flowd_writer_t *w, const flowd_stored_delivery_t *d, int insert) {
    if (flowd_writer_released(w))
        return; /* shutdown: the row keeps the state of its last try, and the next start tries again */
    flowd_op_t *op = op_new(FLOWD_OP_DELIVERY, d->job, 0);
    if (op == NULL)
        goto lost;
    flowd_op_delivery_t *c = &op->delivery;
    c->insert = insert;
    c->delivery_id = strdup(d->id);
    c->state = strdup(d->state);
    c->attempts = d->attempts;
    c->next_us = d->next_us;
    c->last_status = d->last_status;
    c->last_error = dup_or_null(d->last_error);
    c->tries = dup_or_null(d->tries);
    c->created_us = d->created_us;
    if (insert) {
        c->tenant = strdup(d->tenant);
        c->url = strdup(d->url);
        c->type = strdup(d->type);
        c->body = strdup(d->body);
    }
    if (c->delivery_id == NULL || c->state == NULL || (d->last_error && c->last_error == NULL) ||
        (d->tries && c->tries == NULL) ||
        (insert && (c->tenant == NULL || c->url == NULL || c->type == NULL || c->body == NULL))) {
        flowd_op_free(op);
        goto lost;
    }
    enqueue(w, op);
    return;
lost:
    flowd_log(FLOW_LOG_WARN, "store: delivery %s of job %s could not be written (out of memory)",
              d->id, d->job);
}
