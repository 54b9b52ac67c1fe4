/* exec.c: one exec of a node: its tries and the wait between them, its timeout, flow_sleep, waits for
 * input, thread-pool work, and the fallback after the last try. engine.c hears only "finished" (a
 * result) or "failed" (after the fallback declined). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"

/* A try handed to the thread pool. The thread sees only tctx, a copy that owns what it reads, so a
 * job canceled meanwhile can free its frames: the work is then orphaned (owner NULL) and dropped. */
struct work {
    uv_work_t req;
    flow_ctx_t tctx;
    flow_ctx_t *owner;
};

static int resolve(flow_ctx_t *c);
static void try_once(flow_ctx_t *c);

void flow__ctx_init(flow_ctx_t *c, flow_job_t *job, struct step *s, json_t *input, size_t item) {
    c->job = job;
    c->step = s;
    c->node = s->node;
    c->input = input;
    c->item = item;
    c->attempt = 0;
    c->state = CTX_IDLE;
    c->data = NULL;
    json_decref(c->result);
    c->result = NULL;
    if (c->err.code != 0 || c->err.message != NULL)
        flow_error_clear(&c->err);
}

/* ---- timers ---- */

#define CTX_OF(t, member) ((flow_ctx_t *)((char *)(t) - offsetof(flow_ctx_t, member)))

static int start_timer(flow_ctx_t *c, flow__timer_t *t, uint64_t ms, flow__timer_cb cb) {
    return flow__timer_start(c->job->eng->timers, t, ms, cb);
}

static void stop_timeout(flow_ctx_t *c) {
    if (c->tmo != NULL)
        flow__timer_stop(&c->tmo->timer);
}

/* ---- cancel ---- */

/* A ctx is in its job's waits exactly while its state is CTX_WAITING. */
static void unlink_waiter(flow_ctx_t *c) {
    flow_queue_remove(&c->u.wait.node);
}

void flow__ctx_cancel(flow_ctx_t *c) {
    uint8_t state = c->state;
    switch (state) {
    case CTX_THREADED:
        /* uv_cancel succeeds only for work that has not started; its after-callback still runs. */
        c->u.work->owner = NULL;
        uv_cancel((uv_req_t *)&c->u.work->req);
        c->u.work = NULL;
        break;
    case CTX_SLEEPING:
        flow__timer_stop(&c->timer);
        json_decref(c->result);
        c->result = NULL;
        break;
    case CTX_WAITING:
        unlink_waiter(c);
        json_decref(c->u.wait.request);
        c->u.wait.request = NULL;
        break;
    case CTX_RETRY_WAIT:
        flow__timer_stop(&c->timer);
        break;
    default:
        break;
    }
    stop_timeout(c);
    if (state == CTX_RUNNING || state == CTX_SLEEPING || state == CTX_WAITING) {
        c->state = CTX_CANCELED;
        if (c->node->ops->cancel != NULL)
            c->node->ops->cancel(c);
    }
    if (state != CTX_IDLE && state != CTX_DONE && state != CTX_FAILED)
        c->state = CTX_CANCELED;
}

void flow__ctx_release(flow_ctx_t *c) {
    if (c->job == NULL)
        return;
    flow__ctx_cancel(c);
    json_decref(c->result);
    c->result = NULL;
    flow_error_clear(&c->err);
    flow__timer_stop(&c->timer);
    if (c->tmo != NULL) {
        flow__timer_stop(&c->tmo->timer);
        flow__free(c->tmo);
        c->tmo = NULL;
    }
}

/* ---- completion ---- */

/* A completion that came after exec returned: retries and fallback first, then the engine. */
static void settled_later(flow_ctx_t *c) {
    int rc = resolve(c);
    if (rc == 1)
        flow__exec_finished(c);
}

int flow_done(flow_ctx_t *c, json_t *result) {
    if (c == NULL || c->state != CTX_RUNNING) {
        json_decref(result);
        return FLOW_ESTATE;
    }
    c->result = result;
    c->state = CTX_DONE;
    if (c->threaded)
        return 0;
    stop_timeout(c);
    if (!c->in_call)
        settled_later(c);
    return 0;
}

static void fail_with(flow_ctx_t *c, int code, const char *fmt, va_list ap) {
    flow__set_verror(&c->err, code, fmt, ap);
    c->state = CTX_FAILED;
}

static int failv(flow_ctx_t *c, int final, int code, const char *fmt, va_list ap) {
    if (c == NULL || c->state != CTX_RUNNING)
        return FLOW_ESTATE;
    if (code >= 0)
        code = FLOW_EFAILED;
    fail_with(c, code, fmt, ap);
    c->no_retry = (uint8_t)final;
    if (c->threaded)
        return 0;
    stop_timeout(c);
    if (!c->in_call)
        settled_later(c);
    return 0;
}

int flow_fail(flow_ctx_t *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = failv(c, 0, code, fmt, ap);
    va_end(ap);
    return rc;
}

int flow_retry_after(flow_ctx_t *c, uint64_t ms) {
    if (c == NULL || c->state != CTX_RUNNING)
        return FLOW_ESTATE;
    c->retry_after_ms = ms;
    return 0;
}

int flow_fail_final(flow_ctx_t *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = failv(c, 1, code, fmt, ap);
    va_end(ap);
    return rc;
}

int flow_error(flow_ctx_t *c, int code, const char *fmt, ...) {
    if (code >= 0)
        code = FLOW_EFAILED;
    if (c == NULL)
        return code;
    va_list ap;
    va_start(ap, fmt);
    flow__set_verror(&c->err, code, fmt, ap);
    va_end(ap);
    return code;
}

static void on_sleep_done(flow__timer_t *t) {
    flow_ctx_t *c = CTX_OF(t, timer);
    stop_timeout(c);
    c->state = CTX_DONE;
    settled_later(c);
}

/* flow_sleep and flow_await_input could not start: the exec fails with that, so that a caller who
 * ignores the code cannot leave the job waiting forever. */
static int cannot_wait(flow_ctx_t *c, int code, const char *what) {
    flow__set_error(&c->err, code, "%s: %s", what, flow_strerror(code));
    c->state = CTX_FAILED;
    stop_timeout(c);
    if (!c->in_call)
        settled_later(c);
    return code;
}

int flow_sleep(flow_ctx_t *c, uint64_t ms, json_t *result) {
    if (c == NULL || c->threaded || c->state != CTX_RUNNING) {
        json_decref(result);
        return FLOW_ESTATE;
    }
    int rc = start_timer(c, &c->timer, ms, on_sleep_done);
    if (rc < 0) {
        json_decref(result);
        return cannot_wait(c, rc, "cannot start a timer");
    }
    c->result = result;
    c->state = CTX_SLEEPING;
    return 0;
}

int flow_await_input(flow_ctx_t *c, json_t *request) {
    if (c == NULL || c->threaded || c->state != CTX_RUNNING)
        return FLOW_ESTATE;
    flow_job_t *job = c->job;
    json_t *copy = request ? json_deep_copy(request) : json_null();
    if (copy == NULL || flow__job_more(job) == NULL) {
        json_decref(copy);
        return cannot_wait(c, FLOW_ENOMEM, "cannot wait for input");
    }
    c->u.wait.request = copy;
    c->state = CTX_WAITING;
    flow_queue_insert_tail(&job->more->waits, &c->u.wait.node);
    if (job->status == FLOW_RUNNING)
        flow__job_set_status(job, FLOW_WAITING);
    return 0;
}

int flow_job_input(flow_job_t *job, json_t *value, flow_error_t *err) {
    if (job == NULL || value == NULL)
        return FLOW_EINVAL;
    if (flow__job_waits_empty(job) || job->final)
        return FLOW_ESTATE;
    flow_ctx_t *c = FLOW_QUEUE_DATA(flow_queue_head(&job->more->waits), flow_ctx_t, u.wait.node);
    if (c->node->ops->input != NULL) {
        int rc = c->node->ops->input(c, value);
        if (rc != 0) {
            if (rc > 0)
                rc = FLOW_EFAILED;
            if (err != NULL) {
                flow_error_clear(err);
                err->code = rc;
                err->message = c->err.message;
                c->err.message = NULL;
            }
            flow_error_clear(&c->err);
            return rc;
        }
    }
    unlink_waiter(c);
    json_decref(c->u.wait.request);
    c->u.wait.request = NULL;
    stop_timeout(c);
    c->result = json_incref(value);
    c->state = CTX_DONE;
    flow__job_defer(job, c);
    return 0;
}

/* ---- the thread pool ---- */

static void work_run(uv_work_t *req) {
    struct work *w = (struct work *)req;
    w->tctx.node->ops->exec(&w->tctx, w->tctx.input);
}

static void work_done(uv_work_t *req, int status) {
    struct work *w = (struct work *)req;
    flow_job_t *job = w->tctx.job;
    flow_ctx_t *c = w->owner;
    if (c != NULL && status == 0) {
        c->u.work = NULL;
        stop_timeout(c);
        if (w->tctx.state == CTX_DONE) {
            c->result = w->tctx.result;
            w->tctx.result = NULL;
            c->state = CTX_DONE;
        } else if (w->tctx.state == CTX_FAILED) {
            flow_error_clear(&c->err);
            c->err = w->tctx.err;
            memset(&w->tctx.err, 0, sizeof w->tctx.err);
            c->no_retry = w->tctx.no_retry;
            c->retry_after_ms = w->tctx.retry_after_ms;
            c->state = CTX_FAILED;
        } else {
            flow__set_error(&c->err, FLOW_EFAILED, "threaded exec returned without completing");
            c->state = CTX_FAILED;
        }
    }
    json_decref(w->tctx.result);
    json_decref(w->tctx.u.params);
    json_decref(w->tctx.input);
    flow_error_clear(&w->tctx.err);
    flow__free(w);
    if (c != NULL && status == 0)
        settled_later(c);
    flow__job_unpend(job);
}

static void queue_work(flow_ctx_t *c) {
    json_t *params = flow_ctx_params(c);
    struct work *w = flow__calloc(1, sizeof *w);
    if (w == NULL || params == NULL) {
        flow__free(w);
        flow__set_error(&c->err, FLOW_ENOMEM, "out of memory");
        c->state = CTX_FAILED;
        return;
    }
    w->owner = c;
    w->tctx.job = c->job;
    w->tctx.node = c->node;
    w->tctx.input = json_incref(c->input);
    w->tctx.u.params = json_incref(params);
    w->tctx.item = c->item;
    w->tctx.attempt = c->attempt;
    w->tctx.state = CTX_RUNNING;
    w->tctx.threaded = 1;
    int rc = uv_queue_work(c->job->eng->loop, &w->req, work_run, work_done);
    if (rc != 0) {
        json_decref(w->tctx.input);
        json_decref(w->tctx.u.params);
        flow__free(w);
        flow__set_error(&c->err, FLOW_EFAILED, "cannot queue work: %s", uv_strerror(rc));
        c->state = CTX_FAILED;
        return;
    }
    c->u.work = w;
    c->state = CTX_THREADED;
    c->job->pending++;
}

/* ---- tries ---- */

static void on_timeout(flow__timer_t *t) {
    flow_ctx_t *c = ((struct ctx_tmo *)((char *)t - offsetof(struct ctx_tmo, timer)))->ctx;
    flow__ctx_cancel(c);
    flow__set_error(&c->err, FLOW_ETIMEDOUT, "node %s timed out after %llu ms", c->node->name,
                    (unsigned long long)c->node->timeout_ms);
    c->state = CTX_FAILED;
    settled_later(c);
}

/* The timeout's timer is made at the first try that needs one, and kept until the ctx is released:
 * most nodes have no timeout, and a million waiting ctxs need not carry one. */
static int start_timeout(flow_ctx_t *c) {
    if (c->tmo == NULL) {
        c->tmo = flow__calloc(1, sizeof *c->tmo);
        if (c->tmo == NULL)
            return FLOW_ENOMEM;
        c->tmo->ctx = c;
    }
    return start_timer(c, &c->tmo->timer, c->node->timeout_ms, on_timeout);
}

static void try_once(flow_ctx_t *c) {
    const flow_node_t *node = c->node;
    c->state = CTX_RUNNING;
    c->no_retry = 0;
    c->retry_after_ms = 0;
    if (node->ops->exec == NULL) {
        c->result = NULL;
        c->state = CTX_DONE;
        return;
    }
    if (node->timeout_ms > 0 && start_timeout(c) < 0) {
        flow__set_error(&c->err, FLOW_ENOMEM, "out of memory");
        c->state = CTX_FAILED;
        return;
    }
    if (node->threaded) {
        queue_work(c);
        if (c->state == CTX_FAILED)
            stop_timeout(c);
        return;
    }
    c->in_call = 1;
    node->ops->exec(c, c->input);
    c->in_call = 0;
}

static void on_retry(flow__timer_t *t) {
    flow_ctx_t *c = CTX_OF(t, timer);
    try_once(c);
    settled_later(c);
}

/* The last try failed: the fallback may still give a result. The error it is given is a copy, since
 * a fallback that calls flow_error() writes a new message into c->err. */
static int fallback(flow_ctx_t *c) {
    const flow_node_t *node = c->node;
    if (node->ops->exec_fallback == NULL)
        return c->err.code ? c->err.code : FLOW_EFAILED;
    flow_error_t last = c->err;
    memset(&c->err, 0, sizeof c->err);
    json_t *res = NULL;
    int rc = node->ops->exec_fallback(c, c->input, &last, &res);
    if (rc == 0) {
        flow_error_clear(&last);
        c->result = res;
        c->state = CTX_DONE;
        return 0;
    }
    json_decref(res);
    if (rc > 0)
        rc = FLOW_EFAILED;
    if (c->err.message == NULL) {
        flow_error_clear(&c->err);
        c->err = last;
    } else {
        flow_error_clear(&last);
    }
    c->err.code = rc;
    return rc;
}

/* splitmix64's finalizer: spreads a clock reading and an address into a jitter draw; jitter needs
 * spread, not secrecy or a reproducible sequence. */
static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* The wait before the next try, after try c->attempt (from 0) failed: the node's wait grown by its
 * backoff, capped by max_wait, jittered, and then at least the upstream's Retry-After (capped). */
static uint64_t retry_wait(const flow_ctx_t *c) {
    const flow_node_t *node = c->node;
    double w = (double)node->wait_ms * pow(node->backoff, (double)c->attempt);
    uint64_t cap = node->max_wait_ms ? node->max_wait_ms : UINT64_C(1) << 53;
    uint64_t ms = w >= (double)cap ? cap : (uint64_t)w;
    if (node->jitter == FLOW_JITTER_FULL && ms > 0)
        ms = mix64(uv_hrtime() ^ (uint64_t)(uintptr_t)c) % (ms + 1);
    if (c->retry_after_ms > 0) {
        uint64_t ra_cap = node->max_wait_ms ? node->max_wait_ms : FLOW_RETRY_AFTER_MAX_MS;
        uint64_t ra = c->retry_after_ms < ra_cap ? c->retry_after_ms : ra_cap;
        if (ra > ms)
            ms = ra;
    }
    return ms;
}

/* After a try: decides between done (1), in flight (0: the exec, a wait before the next try), the
 * next try at once, and failure (-1, reported to the engine). A loop, not recursion, so a node that
 * fails synchronously a thousand times uses no stack. */
static int resolve(flow_ctx_t *c) {
    for (;;) {
        if (c->state == CTX_DONE)
            return 1;
        if (c->state != CTX_FAILED)
            return 0;
        const flow_node_t *node = c->node;
        if (c->attempt + 1 < node->max_retries && !c->no_retry) {
            uint64_t wait_ms = retry_wait(c);
            flow__job_retry(c, wait_ms);
            c->attempt++;
            if (wait_ms > 0 && start_timer(c, &c->timer, wait_ms, on_retry) == 0) {
                c->state = CTX_RETRY_WAIT;
                return 0;
            }
            try_once(c);
            continue;
        }
        if (fallback(c) == 0)
            return 1;
        flow__exec_failed(c);
        return -1;
    }
}

int flow__ctx_run(flow_ctx_t *c) {
    try_once(c);
    return resolve(c);
}

/* ---- readers ---- */

flow_job_t *flow_ctx_job(const flow_ctx_t *c) {
    return c->job;
}

const flow_node_t *flow_ctx_node(const flow_ctx_t *c) {
    return c->node;
}

void *flow_ctx_node_data(const flow_ctx_t *c) {
    return c->node->data;
}

uv_loop_t *flow_ctx_loop(const flow_ctx_t *c) {
    return c->job->eng->loop;
}

unsigned flow_ctx_attempt(const flow_ctx_t *c) {
    return c->attempt;
}

size_t flow_ctx_item(const flow_ctx_t *c) {
    return c->item;
}

void flow_ctx_set_data(flow_ctx_t *c, void *data) {
    c->data = data;
}

void *flow_ctx_data(const flow_ctx_t *c) {
    return c->data;
}
