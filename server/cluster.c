/* cluster.c: flowd as one of several instances on a shared store: the loop's side of claims, lost
 * jobs and commands from other instances, and the HTTP side's event streams of jobs that run
 * elsewhere (cluster.h). */
#include "cluster.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "flow/doc.h"
#include "flows.h"
#include "log.h"
#include "scheduler.h"
#include "webhooks.h"

#define RETRY_MS 100        /* a command whose job is not a record yet (being adopted) is tried again */
#define RETRY_TIMES 100     /* for ten seconds */
#define EVENTS_AT_ONCE 64   /* events an event stream reads from the store at a time */

enum item_kind { IT_ADOPT, IT_LOST, IT_COMMAND, IT_DELIVERY, IT_SLOT, IT_POKE };

/* What a store thread hands to the loop; everything in it is its own (copied on the store thread). */
typedef struct item {
    struct item *next;
    enum item_kind kind;
    char id[FLOWD_ID_LEN + 1];
    /* IT_ADOPT: sj's strings, JSON values and events are the item's */
    flowd_stored_job_t sj;
    flowd_stored_event_t *events;
    /* IT_COMMAND */
    uint64_t token;
    int cancel;
    json_t *value;
    unsigned tries;
    /* IT_DELIVERY: d's strings are the item's */
    flowd_stored_delivery_t d;
    /* IT_SLOT: the store's answer for job (the item's reference) */
    flowd_job_t *job;
    int verdict;
    struct flowd_cluster *c;
} item_t;

struct flowd_cluster {
    flowd_server_t *srv;
    uv_async_t async;
    uv_timer_t retry_timer;
    pthread_mutex_t lock;
    item_t *head, *tail;     /* under lock: from the store's threads, oldest first */
    int closed;              /* under lock */
    item_t *retry;           /* loop only: commands to try again */
    flowd_flow_versions_t versions; /* loop only: of the flows the adopted jobs started with */
    int open_handles;
};

/* A command from another instance, run by the loop; its answer goes back through the store. */
typedef struct remote_cmd {
    flowd_cluster_t *c;
    uint64_t token;
    flowd_reply_t reply;
} remote_cmd_t;

static void item_free(item_t *it) {
    flowd_stored_job_t *sj = &it->sj;
    free((char *)sj->tenant);
    free((char *)sj->flow);
    free((char *)sj->flow_document);
    free((char *)sj->idem_key);
    free((char *)sj->resume_node);
    free((char *)sj->last_action);
    free((char *)sj->waiting_for);
    free((char *)sj->error_message);
    free((char *)sj->error_node);
    free((char *)sj->callback);
    free((char *)sj->conc_key);
    free((char *)sj->origin);
    free((char *)sj->traceparent);
    flowd_stored_delivery_t *d = &it->d;
    free((char *)d->id);
    free((char *)d->job);
    free((char *)d->tenant);
    free((char *)d->url);
    free((char *)d->type);
    free((char *)d->body);
    free((char *)d->state);
    free((char *)d->last_error);
    free((char *)d->tries);
    json_decref(sj->params);
    json_decref(sj->shared);
    json_decref(sj->history);
    json_decref(sj->totals);
    for (size_t i = 0; it->events != NULL && i < sj->nevents; i++)
        free((char *)it->events[i].data);
    free(it->events);
    json_decref(it->value);
    flowd_job_unref(it->job);
    free(it);
}

static void push(flowd_cluster_t *c, item_t *it) {
    it->next = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->closed) {
        pthread_mutex_unlock(&c->lock);
        item_free(it);
        return;
    }
    if (c->tail != NULL)
        c->tail->next = it;
    else
        c->head = it;
    c->tail = it;
    uv_async_send(&c->async);
    pthread_mutex_unlock(&c->lock);
}

/* ---- the store's hooks (store threads) ---- */

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

static json_t *copy_or_null(json_t *v) {
    return v ? json_deep_copy(v) : NULL; /* a copy: jansson's counts are not for two threads */
}

static void hook_adopt(void *data, const flowd_stored_job_t *sj) {
    flowd_cluster_t *c = data;
    item_t *it = calloc(1, sizeof *it);
    if (it == NULL)
        goto oom;
    it->kind = IT_ADOPT;
    snprintf(it->id, sizeof it->id, "%s", sj->id);
    it->sj = *sj;
    it->sj.id = it->id;
    it->sj.tenant = dup_or_null(sj->tenant);
    it->sj.flow = dup_or_null(sj->flow);
    it->sj.flow_document = dup_or_null(sj->flow_document);
    it->sj.idem_key = dup_or_null(sj->idem_key);
    it->sj.resume_node = dup_or_null(sj->resume_node);
    it->sj.last_action = dup_or_null(sj->last_action);
    it->sj.waiting_for = dup_or_null(sj->waiting_for);
    it->sj.error_message = dup_or_null(sj->error_message);
    it->sj.error_node = dup_or_null(sj->error_node);
    it->sj.callback = dup_or_null(sj->callback);
    it->sj.conc_key = dup_or_null(sj->conc_key);
    it->sj.origin = dup_or_null(sj->origin);
    it->sj.traceparent = dup_or_null(sj->traceparent);
    it->sj.params = copy_or_null(sj->params);
    it->sj.shared = copy_or_null(sj->shared);
    it->sj.history = copy_or_null(sj->history);
    it->sj.totals = copy_or_null(sj->totals);
    it->sj.events = NULL;
    it->sj.nevents = 0;
    if (sj->events != NULL) {
        it->events = calloc(sj->nevents ? sj->nevents : 1, sizeof *it->events);
        if (it->events == NULL)
            goto oom;
        for (size_t i = 0; i < sj->nevents; i++) {
            it->events[i] = sj->events[i];
            it->events[i].data = strndup(sj->events[i].data, sj->events[i].len);
            if (it->events[i].data == NULL)
                goto oom;
            it->sj.nevents = i + 1;
        }
        it->sj.events = it->events;
    }
    if (it->sj.flow == NULL || it->sj.shared == NULL || it->sj.history == NULL ||
        (sj->flow_document && it->sj.flow_document == NULL) || (sj->conc_key && it->sj.conc_key == NULL) ||
        (sj->origin && it->sj.origin == NULL) || (sj->traceparent && it->sj.traceparent == NULL))
        goto oom;
    push(c, it);
    return;
oom:
    /* it stays ours (our renewals cover every job we own) without running until this instance
     * stops and releases it: say so loudly */
    flowd_log(FLOW_LOG_ERROR, "job %s was claimed but cannot be run here (out of memory)", sj->id);
    if (it != NULL)
        item_free(it);
}

static void hook_adopt_delivery(void *data, const flowd_stored_delivery_t *d) {
    flowd_cluster_t *c = data;
    item_t *it = calloc(1, sizeof *it);
    if (it == NULL)
        goto oom;
    it->kind = IT_DELIVERY;
    it->d = *d;
    it->d.id = dup_or_null(d->id);
    it->d.job = dup_or_null(d->job);
    it->d.tenant = dup_or_null(d->tenant);
    it->d.url = dup_or_null(d->url);
    it->d.type = dup_or_null(d->type);
    it->d.body = dup_or_null(d->body);
    it->d.state = dup_or_null(d->state);
    it->d.last_error = dup_or_null(d->last_error);
    it->d.tries = dup_or_null(d->tries);
    if (it->d.id == NULL || it->d.job == NULL || it->d.tenant == NULL || it->d.url == NULL ||
        it->d.type == NULL || it->d.body == NULL || it->d.state == NULL)
        goto oom;
    push(c, it);
    return;
oom:
    /* it stays ours in the store until our lease of it runs out; then it is claimed again */
    flowd_log(FLOW_LOG_ERROR, "webhook delivery %s was claimed but cannot be tried here (out of memory)",
              d->id);
    if (it != NULL)
        item_free(it);
}

static uint64_t hook_delivery_room(void *data) {
    flowd_cluster_t *c = data;
    return flowd_webhooks_room(c->srv->webhooks);
}

static void hook_lost(void *data, const char *id) {
    flowd_cluster_t *c = data;
    item_t *it = calloc(1, sizeof *it);
    if (it == NULL)
        return;
    it->kind = IT_LOST;
    snprintf(it->id, sizeof it->id, "%s", id);
    push(c, it);
}

static void hook_command(void *data, uint64_t token, const char *id, int cancel, json_t *value) {
    flowd_cluster_t *c = data;
    item_t *it = calloc(1, sizeof *it);
    if (it == NULL)
        return; /* the sender times out */
    it->kind = IT_COMMAND;
    snprintf(it->id, sizeof it->id, "%s", id);
    it->token = token;
    it->cancel = cancel;
    it->value = copy_or_null(value);
    push(c, it);
}

static void hook_poke(void *data) {
    flowd_cluster_t *c = data;
    item_t *it = calloc(1, sizeof *it);
    if (it == NULL)
        return; /* the next claim interval pokes again */
    it->kind = IT_POKE;
    push(c, it);
}

/* The store decided a job's turn (store thread): the loop hears it. */
static void slot_done(void *data, int verdict) {
    item_t *it = data;
    it->verdict = verdict;
    push(it->c, it);
}

/* The scheduler's acquire (loop). A job that waits behind others only has that recorded: nothing
 * is answered. */
static int acquire(void *data, flowd_job_t *job, unsigned flow_limit, int behind) {
    flowd_cluster_t *c = data;
    if (behind)
        return c->srv->store->cluster->acquire(c->srv->store, job, flow_limit, behind, NULL, NULL);
    item_t *it = calloc(1, sizeof *it);
    if (it == NULL)
        return FLOW_ENOMEM;
    it->kind = IT_SLOT;
    it->c = c;
    it->job = flowd_job_ref(job);
    int rc = c->srv->store->cluster->acquire(c->srv->store, job, flow_limit, 0, slot_done, it);
    if (rc < 0)
        item_free(it);
    return rc;
}

static uint64_t hook_room(void *data) {
    flowd_cluster_t *c = data;
    uint64_t active = flowd_jobs_active(c->srv->jobs), max = c->srv->cfg.max_jobs;
    return active < max ? max - active : 0;
}

/* ---- the loop's side ---- */

static void adopt(flowd_cluster_t *c, item_t *it) {
    flowd_job_t *here = flowd_jobs_get(c->srv->jobs, it->id, FLOWD_ID_LEN);
    if (here != NULL) {
        /* a record of an earlier run here (ended, or lost and not yet forgotten): the store's is newer */
        flowd_bridge_forget(c->srv->bridge, here);
        flowd_job_unref(here);
    }
    flow_def_t *def = flowd_flow_version(&c->versions, c->srv->reg, it->sj.flow, it->sj.flow_document);
    if (flowd_bridge_restore(c->srv->bridge, &it->sj, def) < 0)
        flowd_log(FLOW_LOG_ERROR, "job %s was claimed but cannot be run here (out of memory)", it->id);
    flow_def_unref(def);
}

static void lose(flowd_cluster_t *c, item_t *it) {
    flowd_job_t *job = flowd_jobs_get(c->srv->jobs, it->id, FLOWD_ID_LEN);
    if (job == NULL)
        return;
    flowd_bridge_forget(c->srv->bridge, job);
    flowd_job_unref(job);
}

/* The loop answered a command from another instance: back through the store. */
static void remote_cmd_done(flowd_cmd_t *cmd) {
    remote_cmd_t *rc = cmd->done_data;
    flowd_store_t *store = rc->c->srv->store;
    flowd_answer_t *a = &rc->reply.answer;
    store->cluster->answer(store, rc->token, a->status, a->body, a->len);
    a->body = NULL;
    free(rc);
}

static void answer_now(flowd_cluster_t *c, uint64_t token, flowd_apierr_t err, const char *message) {
    size_t len = 0;
    char *body = flowd_render_error(err, &len, "%s", message);
    c->srv->store->cluster->answer(c->srv->store, token, flowd_apierr_status(err), body, len);
}

/* Returns 1 when the item is kept to be tried again. */
static int command(flowd_cluster_t *c, item_t *it) {
    flowd_job_t *job = flowd_jobs_get(c->srv->jobs, it->id, FLOWD_ID_LEN);
    if (job == NULL) {
        if (++it->tries < RETRY_TIMES)
            return 1; /* claimed, and on its way to the table */
        answer_now(c, it->token, FLOWD_E_UNAVAILABLE, "the job's instance could not run the command; try again");
        return 0;
    }
    remote_cmd_t *rc = calloc(1, sizeof *rc);
    flowd_cmd_t *cmd = rc ? flowd_cmd_new(it->cancel ? FLOWD_CMD_CANCEL : FLOWD_CMD_INPUT, job) : NULL;
    flowd_job_unref(job);
    if (cmd == NULL) {
        free(rc);
        answer_now(c, it->token, FLOWD_E_INTERNAL, "out of memory");
        return 0;
    }
    rc->c = c;
    rc->token = it->token;
    cmd->reply = &rc->reply;
    cmd->done = remote_cmd_done;
    cmd->done_data = rc;
    cmd->value = it->value ? it->value : json_null();
    it->value = NULL;
    if (flowd_bridge_push(c->srv->bridge, cmd) < 0) { /* shutting down: cmd is freed */
        free(rc);
        answer_now(c, it->token, FLOWD_E_SHUTTING_DOWN, "the job's instance is shutting down; try again");
    }
    return 0;
}

static void run_items(flowd_cluster_t *c, item_t *list) {
    while (list != NULL) {
        item_t *it = list;
        list = it->next;
        int keep = 0;
        switch (it->kind) {
        case IT_ADOPT: adopt(c, it); break;
        case IT_LOST: lose(c, it); break;
        case IT_COMMAND: keep = command(c, it); break;
        case IT_DELIVERY: flowd_webhooks_adopt(c->srv->webhooks, &it->d); break;
        case IT_SLOT: flowd_sched_answer(it->job, it->verdict); break;
        case IT_POKE: flowd_bridge_poke(c->srv->bridge); break;
        }
        if (keep) {
            it->next = c->retry;
            c->retry = it;
        } else {
            item_free(it);
        }
    }
}

static void on_retry(uv_timer_t *t);

static void arm_retry(flowd_cluster_t *c) {
    if (c->retry != NULL && !uv_is_active((uv_handle_t *)&c->retry_timer))
        uv_timer_start(&c->retry_timer, on_retry, RETRY_MS, 0);
}

static void on_retry(uv_timer_t *t) {
    flowd_cluster_t *c = t->data;
    item_t *list = c->retry;
    c->retry = NULL;
    run_items(c, list);
    arm_retry(c);
}

static void on_async(uv_async_t *h) {
    flowd_cluster_t *c = h->data;
    pthread_mutex_lock(&c->lock);
    item_t *list = c->head;
    c->head = c->tail = NULL;
    pthread_mutex_unlock(&c->lock);
    run_items(c, list);
    arm_retry(c);
}

int flowd_cluster_start(flowd_server_t *srv, flowd_cluster_t **out) {
    *out = NULL;
    if (srv->store->cluster == NULL)
        return 0;
    flowd_cluster_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return FLOW_ENOMEM;
    c->srv = srv;
    pthread_mutex_init(&c->lock, NULL);
    if (uv_async_init(&srv->loop, &c->async, on_async) != 0) {
        pthread_mutex_destroy(&c->lock);
        free(c);
        return FLOW_EIO;
    }
    uv_timer_init(&srv->loop, &c->retry_timer);
    c->async.data = c->retry_timer.data = c;
    c->open_handles = 2;
    *out = c;
    flowd_store_hooks_t hooks = {.data = c, .adopt = hook_adopt, .lost = hook_lost, .command = hook_command,
                                 .room = hook_room, .adopt_delivery = hook_adopt_delivery,
                                 .delivery_room = hook_delivery_room, .poke = hook_poke};
    /* a flow's max_running and a concurrency key hold over every instance (scheduler.h) */
    flowd_bridge_set_acquire(srv->bridge, acquire, c);
    return srv->store->cluster->attach(srv->store, &hooks);
}

static void on_closed(uv_handle_t *h) {
    flowd_cluster_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    flowd_flow_versions_clear(&c->versions);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void flowd_cluster_close(flowd_cluster_t *c) {
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    c->closed = 1;
    item_t *list = c->head;
    c->head = c->tail = NULL;
    pthread_mutex_unlock(&c->lock);
    /* what came too late is dropped: the jobs were released, the senders time out */
    while (list != NULL) {
        item_t *it = list;
        list = it->next;
        item_free(it);
    }
    while (c->retry != NULL) {
        item_t *it = c->retry;
        c->retry = it->next;
        item_free(it);
    }
    uv_close((uv_handle_t *)&c->async, on_closed);
    uv_close((uv_handle_t *)&c->retry_timer, on_closed);
}

/* ---- the HTTP side ---- */

/* An event stream of a job that runs elsewhere. The reader runs on an HTTP thread; wake on the
 * store's listener thread. */
typedef struct rwatch {
    flowd_server_t *srv;
    char id[FLOWD_ID_LEN + 1];
    struct MHD_Connection *conn;
    uint64_t last_id;   /* reader only */
    flow_buf_t pend;   /* reader only: frames not yet sent */
    size_t pend_off;
    int ended;          /* reader only: the final event is in pend */
    _Atomic int why;    /* the last wake's reason, or -1 */
} rwatch_t;

static int add_frame(void *data, const flowd_stored_event_t *ev) {
    rwatch_t *w = data;
    if (w->ended)
        return 1;
    flowd_sse_frame(&w->pend, ev->id, ev->type, ev->data, ev->len);
    w->last_id = ev->id;
    w->ended = ev->final;
    return 0;
}

static void rwatch_wake(void *data, int why) {
    rwatch_t *w = data;
    atomic_store(&w->why, why);
    MHD_resume_connection(w->conn);
}

static ssize_t rwatch_read(void *cls, uint64_t pos, char *buf, size_t max) {
    rwatch_t *w = cls;
    flowd_store_t *store = w->srv->store;
    (void)pos;
    if (flowd_sse_drained(&w->pend, &w->pend_off)) {
        if (w->ended)
            return MHD_CONTENT_READER_END_OF_STREAM;
        int why = atomic_exchange(&w->why, -1);
        if (why == FLOWD_WAKE_STOP || atomic_load(&w->srv->stopping))
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (store->cluster->read_events(store, w->id, w->last_id, EVENTS_AT_ONCE, add_frame, w) < 0 || w->pend.err)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (w->pend.len == 0 && why == FLOWD_WAKE_EVENTS) {
            /* woken for news but none: the job may be gone (retention) */
            flowd_remote_job_t j;
            int rc = store->cluster->read_job(store, w->id, NULL, NULL, 0, &j);
            flowd_remote_job_clear(&j);
            if (rc == FLOW_ENOTFOUND)
                return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (w->pend.len == 0 && why == FLOWD_WAKE_TIMEOUT)
            flow_buf_adds(&w->pend, ": keep-alive\n\n");
        if (w->pend.len == 0) {
            /* nothing new: sleep until the listener sees news (or a keep-alive is due) */
            MHD_suspend_connection(w->conn);
            if (store->cluster->watch(store, w->id, w->last_id, w->srv->cfg.keepalive_ms, rwatch_wake, w) < 0)
                rwatch_wake(w, FLOWD_WAKE_STOP);
            return 0;
        }
    }
    return flowd_sse_give(&w->pend, &w->pend_off, buf, max);
}

static void rwatch_free(void *cls) {
    rwatch_t *w = cls;
    w->srv->store->cluster->unwatch(w->srv->store, w);
    flow_buf_free(&w->pend);
    free(w);
}

struct MHD_Response *flowd_remote_watch_response(flowd_server_t *srv, const char *id, struct MHD_Connection *conn,
                                                 uint64_t last_id) {
    rwatch_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->srv = srv;
    snprintf(w->id, sizeof w->id, "%s", id);
    w->conn = conn;
    w->last_id = last_id;
    atomic_init(&w->why, -1);
    flow_buf_init(&w->pend, 0);
    struct MHD_Response *res = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, rwatch_read, w, rwatch_free);
    if (res == NULL)
        free(w);
    return res;
}
