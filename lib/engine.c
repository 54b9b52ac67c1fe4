/* engine.c: the engine and its jobs: scheduling on the libuv loop, frames (runs of a sub-graph),
 * steps (runs of one node: prep, exec of one or many items or sub-graphs, post), the choice of the
 * next node, history, events, and the end of a job. run.h explains the structures. */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "run.h"

/* Fair turns. A job's turn ends at the first step boundary past TURN_NS of loop time (or past the
 * engine's step_budget), and the job goes to the back of the run queue; the queue gets turns for
 * IDLE_SLICE_NS per loop iteration, then the loop polls. So I/O, timers, other jobs and the
 * commands of other threads (a cancel, a shutdown) wait at most that long plus one step, however
 * expensive each step of a job is (a node's work, or its callbacks: a checkpoint of a large
 * store). */
#define TURN_NS 1000000u
#define IDLE_SLICE_NS 2000000u

static void job_run(flow_job_t *job);
static void job_maybe_free(flow_job_t *job);
static void job_fail(flow_job_t *job, int code, const char *message, const char *node);
static void frame_free(struct frame *f);
static void frame_cancel(struct frame *f);

/* ---- the engine ---- */

static void on_idle(uv_idle_t *idle);

static void runq_unlink(flow_job_t *job) {
    flow_queue_remove(&job->runq_node);
    job->in_runq = 0;
}

static flow_job_t *runq_first(flow_engine_t *eng) {
    if (flow_queue_empty(&eng->runq))
        return NULL;
    return FLOW_QUEUE_DATA(flow_queue_head(&eng->runq), flow_job_t, runq_node);
}

/* To the back of the run queue; a job that has ended goes to the front (ending is quick, and
 * whoever canceled it waits for it). */
static void runq_push(flow_job_t *job) {
    flow_engine_t *eng = job->eng;
    if (job->in_runq) {
        if (!job->final || runq_first(eng) == job)
            return;
        runq_unlink(job);
    }
    job->in_runq = 1;
    if (job->final)
        flow_queue_insert_head(&eng->runq, &job->runq_node);
    else
        flow_queue_insert_tail(&eng->runq, &job->runq_node);
    if (!uv_is_active((uv_handle_t *)&eng->idle) && !eng->closing && (!eng->held || job->final))
        uv_idle_start(&eng->idle, on_idle);
}

/* While the engine is held, only the jobs that are ending run (they are at the front). */
static int runq_runnable(flow_engine_t *eng) {
    flow_job_t *job = runq_first(eng);
    return job != NULL && (!eng->held || job->final || job->finalized);
}

static void on_idle(uv_idle_t *idle) {
    flow_engine_t *eng = idle->data;
    uint64_t t0 = uv_hrtime();
    while (runq_runnable(eng)) {
        flow_job_t *job = runq_first(eng);
        runq_unlink(job);
        if (job->finalized)
            job_maybe_free(job);
        else
            job_run(job); /* a job that yields goes to the back of the queue */
        if (uv_hrtime() - t0 >= IDLE_SLICE_NS)
            break;
    }
    if (!runq_runnable(eng))
        uv_idle_stop(idle);
}

void flow_engine_hold(flow_engine_t *eng, int hold) {
    eng->held = hold != 0;
    if (!eng->held && !eng->closing && !flow_queue_empty(&eng->runq) &&
        !uv_is_active((uv_handle_t *)&eng->idle))
        uv_idle_start(&eng->idle, on_idle);
}

int flow_engine_held(const flow_engine_t *eng) {
    return eng->held;
}

int flow_engine_new(uv_loop_t *loop, const flow_engine_opts_t *opts, flow_engine_t **out) {
    if (loop == NULL || out == NULL)
        return FLOW_EINVAL;
    flow_engine_t *eng = flow__calloc(1, sizeof *eng);
    if (eng == NULL)
        return FLOW_ENOMEM;
    eng->empty = json_object();
    if (eng->empty == NULL || flow__timers_new(loop, &eng->timers) < 0) {
        json_decref(eng->empty);
        flow__free(eng);
        return FLOW_ENOMEM;
    }
    eng->loop = loop;
    flow_queue_init(&eng->runq);
    flow_queue_init(&eng->jobs);
    eng->history_limit = opts && opts->history_limit ? opts->history_limit : 100;
    eng->step_budget = opts && opts->step_budget ? opts->step_budget : 256;
    eng->log_lines = opts && opts->log_lines ? opts->log_lines : 20;
    eng->log_line_bytes = opts && opts->log_line_bytes ? opts->log_line_bytes : 1024;
    eng->log_job_bytes = opts && opts->log_job_bytes ? opts->log_job_bytes : (size_t)1 << 20;
    eng->wall0_us = flow_wall_us();
    eng->mono0_ns = uv_hrtime();
    uv_idle_init(loop, &eng->idle); /* started only while jobs are queued */
    eng->idle.data = eng;
    *out = eng;
    return 0;
}

static void engine_maybe_free(flow_engine_t *eng) {
    if (eng->closing && eng->idle_closed && eng->timers_closed && eng->nalloc == 0) {
        json_decref(eng->empty);
        flow__free(eng);
    }
}

static void on_timers_closed(void *data) {
    flow_engine_t *eng = data;
    eng->timers_closed = 1;
    engine_maybe_free(eng);
}

static void on_idle_closed(uv_handle_t *h) {
    flow_engine_t *eng = h->data;
    eng->idle_closed = 1;
    engine_maybe_free(eng);
}

void flow_engine_close(flow_engine_t *eng) {
    if (eng == NULL || eng->closing)
        return;
    while (!flow_queue_empty(&eng->jobs)) {
        flow_job_t *job = FLOW_QUEUE_DATA(flow_queue_head(&eng->jobs), flow_job_t, jobs_node);
        job_fail(job, FLOW_ECANCELED, "the engine was closed", NULL);
        if (!job->running)
            job_run(job); /* finalizes it and takes it off the list */
        else
            break; /* closed from inside a callback of this job: it finalizes when that returns */
    }
    eng->closing = 1;
    /* The idle handle will not run again: free the finalized jobs still queued on it. */
    for (flow_job_t *job = runq_first(eng); job != NULL; job = runq_first(eng)) {
        runq_unlink(job);
        job_maybe_free(job);
    }
    uv_close((uv_handle_t *)&eng->idle, on_idle_closed);
    flow__timers_close(eng->timers, on_timers_closed, eng);
}

uv_loop_t *flow_engine_loop(const flow_engine_t *eng) {
    return eng->loop;
}

void flow_engine_drain(flow_engine_t *eng) {
    eng->draining = 1;
}

static int ctx_busy(const flow_ctx_t *c) {
    return c->state == CTX_RUNNING || c->state == CTX_SLEEPING || c->state == CTX_THREADED ||
           c->state == CTX_RETRY_WAIT;
}

static size_t frame_busy(const struct frame *f) {
    const struct step *s = &f->step;
    size_t busy = 0;
    if (s->phase == PH_POST)
        return 1;
    if (s->phase != PH_EXEC || s->node == NULL)
        return 0;
    switch (s->node->kind) {
    case FLOW_NODE:
    case FLOW_BATCH:
        return ctx_busy(s->ctx) ? 1 : 0;
    case FLOW_PARALLEL_BATCH:
        for (size_t i = 0; s->b != NULL && i < s->b->next; i++)
            if (ctx_busy(&s->b->items[i]))
                return 1;
        return 0;
    default:
        if (s->child != NULL)
            busy += frame_busy(s->child);
        if (s->b != NULL && s->b->children != NULL)
            for (size_t i = 0; i < s->b->n; i++)
                if (s->b->children[i] != NULL)
                    busy += frame_busy(s->b->children[i]);
        return busy;
    }
}

size_t flow_engine_busy(const flow_engine_t *eng) {
    size_t busy = 0;
    const flow_queue_t *q;
    FLOW_QUEUE_FOREACH(q, &eng->jobs) {
        const flow_job_t *job = FLOW_QUEUE_DATA(q, flow_job_t, jobs_node);
        if (!job->final)
            busy += frame_busy(&job->top) +
                    (job->more != NULL && !flow_queue_empty(&job->more->defers));
    }
    return busy;
}

size_t flow_engine_job_count(const flow_engine_t *eng) {
    return eng->njobs;
}

static uint64_t wall_of(const flow_engine_t *eng, uint64_t ns) {
    return eng->wall0_us + (ns - eng->mono0_ns) / 1000u;
}

/* ---- events and history ---- */

static void emit(flow_job_t *job, flow_event_type_t type, const flow_step_t *step) {
    if (job->on_event == NULL)
        return;
    flow_event_t ev = {.type = type, .status = job->status, .step = step};
    job->on_event(job, &ev, job->data);
}

/* s->notes, made if missing; NULL when out of memory. */
static struct notes *step_notes(struct step *s) {
    if (s->notes == NULL)
        s->notes = flow__calloc(1, sizeof *s->notes);
    return s->notes;
}

/* The step keeps its first FLOW_STEP_RETRIES_KEPT failed tries for its history entry (its tries
 * count them all): a map of many items that each retry stays a bounded entry. */
static void note_retry(struct step *s, const flow_ctx_t *c, uint64_t wait_ms) {
    if (s->notes != NULL && json_array_size(s->notes->retries) >= FLOW_STEP_RETRIES_KEPT)
        return;
    struct notes *nt = step_notes(s);
    if (nt == NULL || (nt->retries == NULL && (nt->retries = json_array()) == NULL))
        return;
    json_t *note = json_pack("{sI s{ss ss} sI}", "try", (json_int_t)c->attempt + 1, "error", "code",
                             flow_err_name(c->err.code), "message",
                             c->err.message ? c->err.message : flow_strerror(c->err.code),
                             "wait_ms", (json_int_t)wait_ms);
    if (note != NULL && c->item != SIZE_MAX)
        json_object_set_new(note, "item", json_integer((json_int_t)c->item));
    /* NULL (no memory, or a message not UTF-8): not kept */
    json_array_append_new(nt->retries, note);
}

void flow__job_retry(flow_ctx_t *c, uint64_t wait_ms) {
    flow_job_t *job = c->job;
    if (c->step == NULL)
        return;
    note_retry(c->step, c, wait_ms);
    if (job->on_event == NULL)
        return;
    flow_event_t ev = {.type = FLOW_EVENT_RETRY, .status = job->status, .node = c->node->name,
                       .depth = STEP_FRAME(c->step)->depth - 1, .item = c->item,
                       .attempt = c->attempt,
                       .error = &c->err, .wait_ms = wait_ms};
    job->on_event(job, &ev, job->data);
}

void flow__job_set_status(flow_job_t *job, flow_status_t status) {
    if (job->status == status)
        return;
    job->status = status;
    emit(job, FLOW_EVENT_STATUS, NULL);
}

/* The next history slot: grows while under the limit, then reuses the oldest entry. NULL only when
 * the very first slot cannot be allocated; the totals still count the step (but not its retries or
 * its failure: those counts are kept with the entries). */
static hist_entry_t *hist_next(flow_job_t *job) {
    unsigned limit = job->eng->history_limit;
    struct hist *h = job->hist;
    if (h == NULL || (h->len == h->cap && h->cap < limit)) {
        unsigned cap = h ? h->cap * 2 : 2;
        if (cap > limit)
            cap = limit;
        struct hist *grown = flow__realloc(h, sizeof *grown + cap * sizeof grown->e[0]);
        if (grown != NULL) {
            if (h == NULL) {
                grown->len = grown->head = 0;
                grown->failed = grown->retries = grown->dropped = 0;
            }
            grown->cap = cap;
            job->hist = h = grown;
        }
    }
    if (h == NULL)
        return NULL;
    hist_entry_t *e;
    if (h->len < h->cap) {
        unsigned i = h->head + h->len; /* no modulo: this runs once per step */
        e = &h->e[i < h->cap ? i : i - h->cap];
        h->len++;
    } else {
        e = &h->e[h->head];
        flow__free(e->own_action);
        flow__free(e->own_message);
        json_decref(e->own_logs);
        json_decref(e->own_retries);
        if (++h->head == h->cap)
            h->head = 0;
        h->dropped++;
    }
    memset(e, 0, sizeof *e);
    return e;
}

/* action is borrowed from the definition when own is 0, else copied; next is the node that runs next
 * at this depth, or NULL. */
static void record_step(flow_job_t *job, struct step *s, const char *action, int own, int err,
                        const char *message, uint64_t end_ns, const flow_node_t *next) {
    job->steps++;
    hist_entry_t *e = hist_next(job);
    if (job->hist != NULL) {
        if (s->tries > 1)
            job->hist->retries += s->tries - 1;
        if (err != 0)
            job->hist->failed++;
    }
    flow_step_t tmp;
    flow_step_t *pub = e ? &e->pub : &tmp;
    memset(pub, 0, sizeof *pub);
    if (e != NULL && own && action != NULL && action != flow__default_action) {
        e->own_action = flow__strdup(action);
        action = e->own_action;
    }
    if (e != NULL && message != NULL) {
        e->own_message = flow__strdup(message);
        message = e->own_message;
    }
    pub->seq = job->steps;
    pub->node = s->node->name;
    pub->type = flow_node_type(s->node);
    pub->action = err ? NULL : action;
    pub->tries = s->tries;
    pub->start_us = wall_of(job->eng, s->start_ns);
    pub->end_us = wall_of(job->eng, end_ns);
    pub->error = err;
    pub->message = message;
    pub->depth = STEP_FRAME(s)->depth - 1;
    pub->next = next ? next->name : NULL;
    const struct notes *nt = s->notes;
    if (nt != NULL && nt->logs_dropped > 0 && nt->logs != NULL) {
        char note[160];
        snprintf(note, sizeof note, "(%u more lines were not kept: a step keeps %u lines, a job %zu bytes of them)",
                 nt->logs_dropped, job->eng->log_lines, job->eng->log_job_bytes);
        json_array_append_new(nt->logs, json_string(note));
    }
    pub->logs = nt ? nt->logs : NULL;
    pub->retries = nt ? nt->retries : NULL;
    if (e != NULL) {
        e->own_logs = json_incref(pub->logs);
        e->own_retries = json_incref(pub->retries);
    }
    if (e != NULL)
        job->last_action = pub->action;
    emit(job, FLOW_EVENT_STEP, pub);
    if (e == NULL)
        job->last_action = NULL;
}

/* ---- scheduling ---- */

static void ready_push(flow_job_t *job, struct frame *f) {
    if (f->in_ready)
        return;
    f->in_ready = 1;
    flow_queue_insert_tail(&job->ready, &f->ready_node);
}

static struct frame *ready_pop(flow_job_t *job) {
    if (flow_queue_empty(&job->ready))
        return NULL;
    flow_queue_t *q = flow_queue_head(&job->ready);
    flow_queue_remove(q);
    struct frame *f = FLOW_QUEUE_DATA(q, struct frame, ready_node);
    f->in_ready = 0;
    return f;
}

/* Something finished outside of job_run (a timer, an HTTP answer): run the job now, unless it is
 * already running further up the stack, in which case it picks the frame up from its ready list. */
static void frame_ready(struct frame *f) {
    flow_job_t *job = f->job;
    ready_push(job, f);
    if (!job->running)
        job_run(job);
}

void flow__job_defer(flow_job_t *job, flow_ctx_t *c) {
    flow_queue_insert_tail(&job->more->defers, &c->u.wait.node); /* c waited: job->more is there */
    runq_push(job);
}

/* ---- visits ---- */

/* Appends to buf as snprintf would at offset n; returns the length the whole would have. */
static size_t put(char *buf, size_t cap, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t put(char *buf, size_t cap, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(n < cap ? buf + n : NULL, n < cap ? cap - n : 0, fmt, ap);
    va_end(ap);
    return n + (k > 0 ? (size_t)k : 0);
}

/* f is the top frame running the root flow's own step (its prep, its sub-graph as its exec, its
 * post), not counted as a step. A flat job's top frame (see flow_job_start) runs the root flow's
 * sub-graph itself, at depth 1, as any root sub-graph frame does. */
static int root_step_frame(const struct frame *f) {
    return f == &f->job->top && f->depth == 0;
}

/* The ordinals of s and the steps around it, outermost first; a batch flow's run adds its index.
 * Recursion as deep as the flows nest. */
static size_t visit_of(const struct step *s, char *buf, size_t cap) {
    const struct frame *f = STEP_FRAME(s);
    const struct step *up = f->owner;
    size_t n = 0;
    if (up != NULL && !root_step_frame(STEP_FRAME(up))) {
        n = visit_of(up, buf, cap);
        if (up->node->kind == FLOW_BATCH_FLOW || up->node->kind == FLOW_PARALLEL_BATCH_FLOW)
            n = put(buf, cap, n, ".%" PRIu32, f->index);
        n = put(buf, cap, n, ".");
    }
    return put(buf, cap, n, "%" PRIu64, s->ordinal);
}

int flow_ctx_visit(const flow_ctx_t *ctx, char *buf, size_t cap) {
    if (ctx == NULL || ctx->step == NULL || (buf == NULL && cap > 0))
        return FLOW_EINVAL;
    if (cap > 0)
        buf[0] = '\0';
    size_t n = visit_of(ctx->step, buf, cap);
    return n > INT32_MAX ? FLOW_ETOOBIG : (int)n;
}

/* ---- params ---- */

/* The params of s's node in its frame (borrowed); NULL when out of memory. It needs no ctx: a batch
 * flow at the top starts its runs after its prep, when the top step has none (see struct step). */
static json_t *step_params(struct step *s) {
    struct frame *f = STEP_FRAME(s);
    struct fparams *p = f->params;
    const flow_node_t *node = s->node;
    if (node->params == NULL)
        return p ? p->set : f->job->eng->empty;
    if (p == NULL || json_object_size(p->set) == 0)
        return node->params;
    if (p->node == node)
        return p->merged;
    json_t *merged = json_copy(node->params);
    if (merged == NULL || json_object_update(merged, p->set) < 0) {
        json_decref(merged);
        return NULL;
    }
    json_decref(p->merged);
    p->merged = merged;
    p->node = node;
    return merged;
}

/* Gives f the param set params (a reference, taken in all cases). A run's empty set is as none,
 * and takes no memory; the top frame keeps the caller's object as it is. */
static int frame_set_params(struct frame *f, json_t *params, int keep_empty) {
    if (params == NULL || (!keep_empty && json_object_size(params) == 0)) {
        json_decref(params);
        return 0;
    }
    f->params = flow__calloc(1, sizeof *f->params);
    if (f->params == NULL) {
        json_decref(params);
        return FLOW_ENOMEM;
    }
    f->params->set = params;
    return 0;
}

static void frame_params_free(struct frame *f) {
    if (f->params == NULL)
        return;
    json_decref(f->params->set);
    json_decref(f->params->merged);
    flow__free(f->params);
    f->params = NULL;
}

json_t *flow_ctx_params(flow_ctx_t *c) {
    if (c->threaded)
        return c->u.params;
    return step_params(c->step);
}

/* ---- what nodes log ---- */

/* The length of at most max bytes of text that ends on a character boundary. */
static size_t utf8_cut(const char *text, size_t len, size_t max) {
    if (len <= max)
        return len;
    while (max > 0 && ((unsigned char)text[max] & 0xC0) == 0x80)
        max--;
    return max;
}

int flow_ctx_log(flow_ctx_t *c, const char *text, size_t len) {
    if (c == NULL || (text == NULL && len > 0))
        return FLOW_EINVAL;
    if (c->threaded || c->step == NULL)
        return FLOW_ESTATE;
    flow_job_t *job = c->job;
    flow_engine_t *eng = job->eng;
    struct step *s = c->step;
    size_t keep = utf8_cut(text, len, eng->log_line_bytes);
    json_t *line = json_stringn(text, keep); /* NULL: not UTF-8 (or out of memory) */
    if (line == NULL)
        return FLOW_EINVAL;
    if (keep < len) {
        char *cut = flow__asprintf("%s...", json_string_value(line));
        json_decref(line);
        line = cut ? json_string(cut) : NULL;
        flow__free(cut);
        if (line == NULL)
            return FLOW_ENOMEM;
    }
    /* one line in the library's log: control characters become blanks there */
    char shown[512];
    size_t n = 0;
    for (const char *p = json_string_value(line); *p != '\0' && n + 1 < sizeof shown; p++)
        shown[n++] = (unsigned char)*p < 0x20 ? ' ' : *p;
    shown[n] = '\0';
    flow_log(FLOW_LOG_INFO, "job %s: node %s: log: %s%s", job->id ? job->id : "-", c->node->name, shown,
             json_string_length(line) >= sizeof shown ? "..." : "");
    size_t bytes = json_string_length(line);
    struct notes *nt = step_notes(s);
    if (nt == NULL) {
        json_decref(line);
        return FLOW_ENOMEM;
    }
    struct job_more *more = flow__job_more(job);
    if (more == NULL) {
        json_decref(line);
        return FLOW_ENOMEM;
    }
    if (json_array_size(nt->logs) >= eng->log_lines ||
        more->log_bytes + bytes > eng->log_job_bytes) {
        nt->logs_dropped++;
        json_decref(line);
        return 0;
    }
    if (nt->logs == NULL && (nt->logs = json_array()) == NULL) {
        json_decref(line);
        return FLOW_ENOMEM;
    }
    if (json_array_append_new(nt->logs, line) < 0)
        return FLOW_ENOMEM;
    more->log_bytes += bytes;
    return 0;
}

/* ---- steps ---- */

static void step_clear(struct step *s) {
    json_decref(s->prep_res);
    json_decref(s->exec_res);
    s->prep_res = s->exec_res = NULL;
    if (s->notes != NULL) {
        json_decref(s->notes->logs);
        json_decref(s->notes->retries);
        flow__free(s->notes);
        s->notes = NULL;
    }
    s->tries = 0;
    s->phase = PH_START;
    if (s->node == NULL || s->node->kind == FLOW_NODE)
        return; /* the common case: nothing else was used */
    if (s->child != NULL) {
        frame_free(s->child);
        s->child = NULL;
    }
    struct batch *b = s->b;
    if (b == NULL)
        return;
    json_decref(b->results);
    if (b->items != NULL) {
        for (size_t i = 0; i < b->next; i++)
            flow__ctx_release(&b->items[i]);
        flow__free(b->items);
    }
    if (b->children != NULL) {
        for (size_t i = 0; i < b->n; i++)
            if (b->children[i] != NULL)
                frame_free(b->children[i]);
        flow__free(b->children);
    }
    flow__free(b);
    s->b = NULL;
}

static void step_cancel(struct step *s) {
    if (s->ctx != NULL)
        flow__ctx_cancel(s->ctx);
    if (s->child != NULL)
        frame_cancel(s->child);
    if (s->b == NULL)
        return;
    if (s->b->items != NULL)
        for (size_t i = 0; i < s->b->next; i++)
            flow__ctx_cancel(&s->b->items[i]);
    if (s->b->children != NULL)
        for (size_t i = 0; i < s->b->n; i++)
            if (s->b->children[i] != NULL)
                frame_cancel(s->b->children[i]);
}

/* The step failed for good: a history entry with the error, and the job fails. */
static void step_failed(struct step *s, int code, const char *message) {
    flow_job_t *job = STEP_FRAME(s)->job;
    if (code >= 0)
        code = FLOW_EFAILED;
    if (message == NULL)
        message = flow_strerror(code);
    if (!root_step_frame(STEP_FRAME(s)))
        record_step(job, s, NULL, 0, code, message, uv_hrtime(), NULL);
    job_fail(job, code, message, s->node->name);
}

void flow__exec_failed(flow_ctx_t *c) {
    struct step *s = c->step;
    s->tries += c->attempt + 1;
    step_failed(s, c->err.code, c->err.message);
}

static void store_result(struct step *s, flow_ctx_t *c) {
    json_t *r = c->result ? c->result : json_null();
    c->result = NULL;
    json_array_set_new(s->b->results, c->item, r);
    s->tries += c->attempt + 1;
}

static void exec_done(struct step *s) {
    s->exec_res = s->b->results;
    s->b->results = NULL;
    s->phase = PH_POST;
}

/* Sequential batch: one ctx, item after item. 1: all done; 0: an item is in flight; -1: failed. */
static int batch_fill(struct step *s) {
    flow_job_t *job = STEP_FRAME(s)->job;
    s->filling = 1;
    while (s->b->next < s->b->n && !job->final) {
        size_t i = s->b->next++;
        flow__ctx_init(s->ctx, job, s, json_array_get(s->prep_res, i), i);
        int rc = flow__ctx_run(s->ctx);
        if (rc <= 0) {
            s->filling = 0;
            return rc;
        }
        store_result(s, s->ctx);
    }
    s->filling = 0;
    if (job->final)
        return -1;
    exec_done(s);
    return 1;
}

/* Parallel batch: starts items while the limit allows. Items that complete while others are being
 * started only count (filling); the loop sees them. 1: all done; 0: items in flight; -1: failed. */
static int pbatch_fill(struct step *s) {
    flow_job_t *job = STEP_FRAME(s)->job;
    unsigned limit = s->node->limit;
    s->filling = 1;
    while (s->b->next < s->b->n && (limit == 0 || s->b->running < limit) && !job->final) {
        size_t i = s->b->next++;
        flow_ctx_t *c = &s->b->items[i];
        flow__ctx_init(c, job, s, json_array_get(s->prep_res, i), i);
        s->b->running++;
        int rc = flow__ctx_run(c);
        if (rc < 0)
            break;
        if (rc == 1) {
            store_result(s, c);
            flow__ctx_release(c);
            s->b->running--;
            s->b->finished++;
        }
    }
    s->filling = 0;
    if (job->final)
        return -1;
    if (s->b->finished < s->b->n)
        return 0;
    exec_done(s);
    return 1;
}

void flow__exec_finished(flow_ctx_t *c) {
    struct step *s = c->step;
    switch (s->node->kind) {
    case FLOW_NODE:
        s->exec_res = c->result;
        c->result = NULL;
        s->tries += c->attempt + 1;
        s->phase = PH_POST;
        frame_ready(STEP_FRAME(s));
        break;
    case FLOW_BATCH:
        store_result(s, c);
        if (!s->filling && batch_fill(s) == 1)
            frame_ready(STEP_FRAME(s));
        break;
    case FLOW_PARALLEL_BATCH:
        store_result(s, c);
        flow__ctx_release(c);
        s->b->running--;
        s->b->finished++;
        if (!s->filling && pbatch_fill(s) == 1)
            frame_ready(STEP_FRAME(s));
        break;
    default:
        break;
    }
}

/* A frame and its step's ctx, in one allocation. */
struct frame_block {
    struct frame f;
    flow_ctx_t ctx;
};

static struct frame *frame_new(struct step *owner, json_t *params, uint32_t index) {
    if (STEP_FRAME(owner)->depth == UINT16_MAX) { /* only a C definition nests so deep */
        json_decref(params);
        return NULL;
    }
    struct frame_block *b = flow__calloc(1, sizeof *b);
    if (b == NULL) {
        json_decref(params);
        return NULL;
    }
    struct frame *f = &b->f;
    if (frame_set_params(f, params, 0) < 0) {
        flow__free(b);
        return NULL;
    }
    f->step.ctx = &b->ctx;
    f->job = STEP_FRAME(owner)->job;
    f->owner = owner;
    f->cur = owner->node->start;
    struct job_more *more = f->job->more;
    if (root_step_frame(STEP_FRAME(owner)) && more != NULL) {
        if (more->resume_node != NULL)
            f->cur = more->resume_node;
        f->started = more->resume_visits; /* a resumed job numbers its visits on */
        more->resume_node = NULL;
        more->resume_visits = 0;
    }
    f->index = index;
    f->depth = STEP_FRAME(owner)->depth + 1;
    return f;
}

/* The params of a sub-graph run: the flow node's params with the run's param set over them (the
 * index-th item of a batch flow's prep_res; a flow's prep_res if it is an object). */
static json_t *item_params(struct step *s, size_t index) {
    json_t *base = step_params(s);
    json_t *item = s->node->kind == FLOW_FLOW ? s->prep_res : json_array_get(s->prep_res, index);
    if (base == NULL)
        return NULL;
    if (!json_is_object(item) || json_object_size(item) == 0)
        return json_incref(base);
    json_t *merged = json_copy(base);
    if (merged == NULL || json_object_update(merged, item) < 0) {
        json_decref(merged);
        return NULL;
    }
    return merged;
}

static int spawn_child(struct step *s, size_t index) {
    flow_job_t *job = STEP_FRAME(s)->job;
    json_t *params = item_params(s, index);
    struct frame *f = params ? frame_new(s, params, (uint32_t)index) : NULL;
    if (f == NULL) {
        step_failed(s, FLOW_ENOMEM, NULL);
        return -1;
    }
    if (s->b != NULL && s->b->children != NULL)
        s->b->children[index] = f;
    else
        s->child = f;
    ready_push(job, f);
    return 0;
}

static int pflow_fill(struct step *s) {
    unsigned limit = s->node->limit;
    while (s->b->next < s->b->n && (limit == 0 || s->b->running < limit)) {
        if (spawn_child(s, s->b->next) < 0)
            return -1;
        s->b->next++;
        s->b->running++;
    }
    return 0;
}

/* Checks what prep returned to a batch kind: an array (NULL is an empty one) of objects for the
 * batch flows; and gives the step its batch state. */
static int check_items(struct step *s) {
    json_t *items = s->prep_res;
    s->b = flow__calloc(1, sizeof *s->b);
    if (s->b == NULL) {
        step_failed(s, FLOW_ENOMEM, NULL);
        return -1;
    }
    if (items == NULL) {
        s->b->n = 0;
        return 0;
    }
    if (!json_is_array(items)) {
        step_failed(s, FLOW_EINVAL, "prep of a batch node must return an array");
        return -1;
    }
    s->b->n = json_array_size(items);
    if (s->node->kind == FLOW_BATCH_FLOW || s->node->kind == FLOW_PARALLEL_BATCH_FLOW) {
        for (size_t i = 0; i < s->b->n; i++) {
            if (!json_is_object(json_array_get(items, i))) {
                step_failed(s, FLOW_EINVAL, "prep of a batch flow must return an array of objects");
                return -1;
            }
        }
    }
    return 0;
}

static int make_results(struct step *s) {
    s->b->results = json_array();
    if (s->b->results == NULL)
        return FLOW_ENOMEM;
    for (size_t i = 0; i < s->b->n; i++)
        if (json_array_append(s->b->results, json_null()) < 0)
            return FLOW_ENOMEM;
    return 0;
}

/* The exec part of a step. 1: done, post is next; 0: in flight; -1: the job failed. */
static int step_exec(struct step *s) {
    flow_job_t *job = STEP_FRAME(s)->job;
    s->phase = PH_EXEC;
    switch (s->node->kind) {
    case FLOW_NODE: {
        s->ctx->input = s->prep_res;
        int rc = flow__ctx_run(s->ctx);
        if (rc == 1) {
            s->exec_res = s->ctx->result;
            s->ctx->result = NULL;
            s->tries = s->ctx->attempt + 1;
            s->phase = PH_POST;
        }
        return rc;
    }
    case FLOW_BATCH:
    case FLOW_PARALLEL_BATCH:
        if (check_items(s) < 0)
            return -1;
        if (make_results(s) < 0) {
            step_failed(s, FLOW_ENOMEM, NULL);
            return -1;
        }
        if (s->node->kind == FLOW_BATCH)
            return batch_fill(s);
        s->b->items = flow__calloc(s->b->n ? s->b->n : 1, sizeof *s->b->items);
        if (s->b->items == NULL) {
            step_failed(s, FLOW_ENOMEM, NULL);
            return -1;
        }
        return pbatch_fill(s);
    case FLOW_FLOW:
        return spawn_child(s, 0) < 0 ? -1 : 0;
    case FLOW_BATCH_FLOW:
    case FLOW_PARALLEL_BATCH_FLOW:
        if (check_items(s) < 0)
            return -1;
        if (s->b->n == 0) {
            s->phase = PH_POST;
            return 1;
        }
        if (s->node->kind == FLOW_BATCH_FLOW)
            return spawn_child(s, 0) < 0 ? -1 : 0;
        s->b->children = flow__calloc(s->b->n, sizeof *s->b->children);
        if (s->b->children == NULL) {
            step_failed(s, FLOW_ENOMEM, NULL);
            return -1;
        }
        return pflow_fill(s);
    }
    (void)job;
    return -1;
}

static void warn_root_successors(const flow_job_t *job, const flow_node_t *root) {
    if (root->nsucc > 0)
        flow_log(FLOW_LOG_WARN,
                 "job %s: the root flow %s has successors; they do not run (a job ends "
                 "with its root flow: put it in another flow to run them)",
                 job->id ? job->id : "-", root->name);
}

/* Starts the step of f->cur: prep, then exec. 1: post is next; 0: waiting; -1: the job failed. */
static int step_start(struct frame *f, uint64_t now_ns) {
    flow_job_t *job = f->job;
    struct step *s = &f->step;
    const flow_node_t *node = f->cur;
    s->node = node;
    s->start_ns = now_ns ? now_ns : uv_hrtime();
    s->ordinal = ++f->started;
    if (job->eng->turn_ns == 0)
        job->eng->turn_ns = s->start_ns;
    if (!root_step_frame(f)) {
        uint64_t max_steps = job->more ? job->more->max_steps : 0;
        if (max_steps != 0 && job->started_steps >= max_steps) {
            char msg[96];
            snprintf(msg, sizeof msg, "job stopped after %" PRIu64 " steps (max_steps)", max_steps);
            job_fail(job, FLOW_EMAXSTEPS, msg, node->name);
            return -1;
        }
        job->started_steps++;
        job->current = node;
    } else {
        warn_root_successors(job, node);
    }
    flow__ctx_init(s->ctx, job, s, NULL, SIZE_MAX);
    struct job_more *more = job->more;
    if (more != NULL && more->resume_tries > 0 && f->depth == 1) {
        /* the tries a resumed node had used before the stop still count */
        if (node->kind == FLOW_NODE)
            s->ctx->attempt = more->resume_tries < node->max_retries ? more->resume_tries
                                                                     : node->max_retries - 1;
        more->resume_tries = 0;
    }
    if (node->ops->prep != NULL) {
        if (!flow__ops_report_writes(node->ops))
            job->touched_all = 1;
        int rc = node->ops->prep(s->ctx, job->shared, &s->prep_res);
        if (rc != 0) {
            step_failed(s, rc, s->ctx->err.message);
            return -1;
        }
        if (job->final)
            return -1;
    }
    return step_exec(s);
}

/* The top frame's step gets a ctx for its prep (see struct step); the exec of a flow kind starts
 * its runs and needs none. */
static int step_begin(struct frame *f, uint64_t now_ns) {
    flow_job_t *job = f->job;
    if (!root_step_frame(f))
        return step_start(f, now_ns);
    flow_ctx_t c;
    memset(&c, 0, sizeof c);
    f->step.ctx = &c;
    int rc = step_start(f, now_ns);
    f->step.ctx = NULL;
    flow__ctx_release(&c);
    if (c.data != NULL && !job->final) {
        if (flow__job_more(job) == NULL) {
            job_fail(job, FLOW_ENOMEM, NULL, f->step.node->name);
            return -1;
        }
        job->more->root_data = c.data;
    }
    return rc;
}

static void warn_no_successor(flow_job_t *job, const flow_node_t *node, const char *action) {
    char list[256];
    size_t len = 0;
    list[0] = '\0';
    for (size_t i = 0; i < node->nsucc && len < sizeof list; i++) {
        int n = snprintf(list + len, sizeof list - len, "%s'%s'", i ? ", " : "", node->succ[i].action);
        if (n < 0)
            break;
        len += (size_t)n;
    }
    flow_log(FLOW_LOG_WARN, "job %s: flow ends: action '%s' of node %s not found in [%s]",
             job->id ? job->id : "-", action, node->name, list);
}

/* The root flow's post has run: its action is the job's last action, and the job ends there. Its
 * successors, if the C API gave it any, never run: as PocketFlow's Flow.run, which warns (at the
 * job's start, see step_begin), they belong to a flow around it, and a job has none. */
static int root_action(flow_job_t *job, const char *action) {
    char *copy = flow__strdup(action);
    if (copy == NULL) {
        job_fail(job, FLOW_ENOMEM, NULL, job->def->root->name);
        return -1;
    }
    flow__free(job->root_action);
    job->root_action = copy;
    job->last_action = copy;
    return 0;
}

static uint64_t root_end(struct frame *f, const char *action) {
    if (root_action(f->job, action) < 0)
        return 0;
    step_clear(&f->step);
    f->cur = NULL;
    return uv_hrtime();
}

/* post, then the history entry and the choice of the next node. Returns the time it ended, or 0
 * when the job failed. */
static uint64_t step_finish(struct frame *f) {
    flow_job_t *job = f->job;
    struct step *s = &f->step;
    const flow_node_t *node = s->node;
    const char *action = NULL;
    int rc = 0;
    if (node->ops->post != NULL) {
        if (!flow__ops_report_writes(node->ops))
            job->touched_all = 1;
        rc = node->ops->post(s->ctx, job->shared, s->prep_res, s->exec_res, &action);
    }
    else if (node->kind == FLOW_FLOW)
        action = json_string_value(s->exec_res);
    if (rc != 0) {
        step_failed(s, rc, s->ctx->err.message);
        return 0;
    }
    if (action == NULL || action[0] == '\0')
        action = flow__default_action; /* PocketFlow: successors.get(action or "default") */
    if (root_step_frame(f))
        return root_end(f, action);
    const flow_succ_t *succ = NULL;
    for (size_t i = 0; i < node->nsucc; i++) {
        if (strcmp(node->succ[i].action, action) == 0) {
            succ = &node->succ[i];
            break;
        }
    }
    uint64_t end = uv_hrtime();
    record_step(job, s, succ ? succ->action : action, succ == NULL, 0, NULL, end,
                succ ? succ->to : NULL);
    if (job->on_event != NULL)
        end = uv_hrtime(); /* after the callbacks (a checkpoint, say): the turn counts them */
    if (succ == NULL || succ->to == NULL) {
        if (succ == NULL && node->nsucc > 0)
            warn_no_successor(job, node, action);
        json_decref(f->result);
        f->result = json_string(action);
        if (f->result == NULL) {
            job_fail(job, FLOW_ENOMEM, NULL, node->name);
            return 0;
        }
    }
    step_clear(s);
    f->cur = succ ? succ->to : NULL;
    return end;
}

/* ... and one for its post, with the data its prep left. */
static uint64_t step_end(struct frame *f) {
    flow_job_t *job = f->job;
    if (!root_step_frame(f))
        return step_finish(f);
    flow_ctx_t c;
    memset(&c, 0, sizeof c);
    flow__ctx_init(&c, job, &f->step, NULL, SIZE_MAX);
    c.data = job->more ? job->more->root_data : NULL;
    f->step.ctx = &c;
    uint64_t end = step_finish(f);
    f->step.ctx = NULL;
    flow__ctx_release(&c);
    return end;
}

/* ---- frames ---- */

static void frame_cancel(struct frame *f) {
    step_cancel(&f->step);
}

static void frame_free(struct frame *f) {
    step_clear(&f->step);
    if (f->step.ctx != NULL)
        flow__ctx_release(f->step.ctx);
    frame_params_free(f);
    json_decref(f->result);
    f->result = NULL;
    if (f != &f->job->top)
        flow__free(f);
}

static void job_succeed(flow_job_t *job) {
    job->final = 1;
    job->status = FLOW_SUCCEEDED;
}

/* The sub-graph of f has ended: the owner step takes its result and goes on. */
static void frame_finished(struct frame *f) {
    flow_job_t *job = f->job;
    if (f == &job->top) {
        /* a flat job: its root flow's action is its sub-graph's last, as a flow's without a post */
        const char *action = f->result ? json_string_value(f->result) : NULL;
        if (f->depth == 1 && root_action(job, action && action[0] ? action : flow__default_action) < 0)
            return;
        job_succeed(job);
        return;
    }
    struct step *s = f->owner;
    switch (s->node->kind) {
    case FLOW_FLOW:
        s->exec_res = f->result;
        f->result = NULL;
        s->child = NULL;
        frame_free(f);
        s->phase = PH_POST;
        ready_push(job, STEP_FRAME(s));
        break;
    case FLOW_BATCH_FLOW:
        s->child = NULL;
        frame_free(f);
        if (++s->b->next < s->b->n) {
            spawn_child(s, s->b->next);
        } else {
            s->phase = PH_POST;
            ready_push(job, STEP_FRAME(s));
        }
        break;
    default: /* FLOW_PARALLEL_BATCH_FLOW */
        s->b->children[f->index] = NULL;
        frame_free(f);
        s->b->running--;
        s->b->finished++;
        if (pflow_fill(s) < 0)
            return;
        if (s->b->finished == s->b->n) {
            s->phase = PH_POST;
            ready_push(job, STEP_FRAME(s));
        }
        break;
    }
}

/* Runs the steps of f for as long as they complete at once; a loop, so that a flow going round a
 * million times uses no more stack than going round once. */
static void frame_run(struct frame *f) {
    flow_job_t *job = f->job;
    struct step *s = &f->step;
    uint64_t t = 0;
    while (!job->final) {
        if (s->phase == PH_START) {
            if (f->cur == NULL) {
                frame_finished(f);
                return;
            }
            if (job->eng->draining)
                return; /* parked at a step boundary; freed with the job */
            flow_engine_t *eng = job->eng;
            if (eng->budget == 0 || eng->held ||
                (t != 0 && eng->turn_ns != 0 && t - eng->turn_ns >= TURN_NS)) {
                eng->budget = 0; /* job_run queues the job again */
                ready_push(job, f);
                return;
            }
            eng->budget--;
            if (step_begin(f, t) <= 0)
                return;
        } else if (s->phase == PH_POST) {
            t = step_end(f);
        } else {
            return;
        }
    }
}

/* ---- jobs ---- */

static void job_cancel_all(flow_job_t *job) {
    frame_cancel(&job->top);
    if (job->more != NULL)
        flow__timer_stop(&job->more->deadline);
}

static void job_fail(flow_job_t *job, int code, const char *message, const char *node) {
    if (job->final)
        return;
    job->final = 1;
    job->status = code == FLOW_ECANCELED ? FLOW_CANCELED : FLOW_FAILED;
    struct job_more *more = flow__job_more(job); /* NULL: flow_job_error says FLOW_ENOMEM */
    if (more != NULL) {
        flow_error_clear(&more->error);
        more->error.code = code;
        more->error.message = flow__strdup(message ? message : flow_strerror(code));
        more->error.node = node ? flow__strdup(node) : NULL;
    }
    job_cancel_all(job);
    if (!job->running)
        runq_push(job);
}

struct job_more *flow__job_more(flow_job_t *job) {
    if (job->more != NULL)
        return job->more;
    struct job_more *more = flow__calloc(1, sizeof *more);
    if (more == NULL)
        return NULL;
    more->job = job;
    flow_queue_init(&more->waits);
    flow_queue_init(&more->defers);
    job->more = more;
    return more;
}

static void more_free(struct job_more *more) {
    if (more == NULL)
        return;
    flow__free(more->traceparent);
    flow_error_clear(&more->error);
    flow__free(more);
}

static void job_free(flow_job_t *job) {
    flow_engine_t *eng = job->eng;
    for (unsigned i = 0; job->hist != NULL && i < job->hist->len; i++) {
        hist_entry_t *e = &job->hist->e[(job->hist->head + i) % job->hist->cap];
        flow__free(e->own_action);
        flow__free(e->own_message);
        json_decref(e->own_logs);
        json_decref(e->own_retries);
    }
    flow__free(job->hist);
    flow__free(job->root_action);
    json_decref(job->shared);
    json_decref(job->touched);
    flow_def_unref(job->def);
    flow__free(job->id);
    more_free(job->more);
    flow__free(job);
    eng->nalloc--;
    engine_maybe_free(eng);
}

/* A finalized job still has its memory while timers close, pool work returns, or it sits on the
 * run queue. */
static void job_maybe_free(flow_job_t *job) {
    if (job->finalized && job->pending == 0 && !job->in_runq)
        job_free(job);
}

void flow__job_unpend(flow_job_t *job) {
    job->pending--;
    job_maybe_free(job);
}

static void job_finalize(flow_job_t *job) {
    flow_engine_t *eng = job->eng;
    job->finalized = 1;
    job_cancel_all(job);
    while (ready_pop(job) != NULL) {
    }
    if (job->more != NULL)
        flow_queue_init(&job->more->defers); /* their ctxs go with the frames */
    frame_free(&job->top);
    job->current = NULL;
    job->finished_us = flow_wall_us();
    emit(job, FLOW_EVENT_STATUS, NULL);
    if (job->on_done != NULL)
        job->on_done(job, job->data);
    flow_queue_remove(&job->jobs_node);
    eng->njobs--;
    job_maybe_free(job);
}

static void job_run(flow_job_t *job) {
    if (job->running || job->finalized)
        return;
    job->running = 1;
    /* the turn is the engine's (one job runs at a time), kept for a job_run this one calls */
    flow_engine_t *eng = job->eng;
    unsigned outer_budget = eng->budget;
    uint64_t outer_turn_ns = eng->turn_ns;
    eng->budget = eng->step_budget;
    eng->turn_ns = 0;
    if (!job->final) {
        if (job->status == FLOW_QUEUED) {
            if (job->started_us == 0) /* else it resumes: it keeps its first start */
                job->started_us = flow_wall_us();
            flow__job_set_status(job, FLOW_RUNNING);
        } else if (job->status == FLOW_WAITING && flow__job_waits_empty(job)) {
            flow__job_set_status(job, FLOW_RUNNING);
        }
    }
    while (job->more != NULL && !flow_queue_empty(&job->more->defers) && !job->final) {
        flow_queue_t *q = flow_queue_head(&job->more->defers);
        flow_queue_remove(q);
        flow__exec_finished(FLOW_QUEUE_DATA(q, flow_ctx_t, u.wait.node));
    }
    while (!job->final) {
        struct frame *f = ready_pop(job);
        if (f == NULL)
            break;
        frame_run(f);
        if (eng->budget == 0 && !flow_queue_empty(&job->ready) && !job->final) {
            runq_push(job);
            break;
        }
    }
    eng->budget = outer_budget;
    eng->turn_ns = outer_turn_ns;
    job->running = 0;
    if (job->final)
        job_finalize(job);
}

static void on_deadline(flow__timer_t *t) {
    struct job_more *more = (struct job_more *)((char *)t - offsetof(struct job_more, deadline));
    flow_job_t *job = more->job;
    char msg[96];
    snprintf(msg, sizeof msg, "job exceeded its deadline of %" PRIu64 " ms", more->deadline_ms);
    job_fail(job, FLOW_EDEADLINE, msg, job->current ? job->current->name : NULL);
}

int flow_job_start(flow_engine_t *eng, flow_def_t *def, json_t *shared, const flow_job_opts_t *opts,
                   flow_job_t **out) {
    static const flow_job_opts_t no_opts;
    flow_job_t *job = NULL;
    int rc = 0;
    if (opts == NULL)
        opts = &no_opts;
    if (eng == NULL || def == NULL || (shared != NULL && !json_is_object(shared))) {
        rc = FLOW_EINVAL;
        goto fail;
    }
    if (eng->closing) {
        rc = FLOW_ESTATE;
        goto fail;
    }
    if (opts->params != NULL && !json_is_object(opts->params)) {
        rc = FLOW_EINVAL;
        goto fail;
    }
    rc = flow_def_seal(def, NULL);
    if (rc < 0)
        goto fail;
    if (shared == NULL && (shared = json_object()) == NULL) {
        rc = FLOW_ENOMEM;
        goto fail;
    }
    /* A root flow that is only its sub-graph (no prep, no post, no params of its own: every flow
     * document's) needs no step of its own: the job's top frame runs the sub-graph itself, with
     * the ctx of its steps in the job's allocation, and no frame is allocated for it. */
    const flow_node_t *root = def->root;
    int flat = root->kind == FLOW_FLOW && root->ops->prep == NULL && root->ops->post == NULL &&
               root->params == NULL;
    job = flow__calloc(1, sizeof *job + (flat ? sizeof(flow_ctx_t) : 0));
    if (job == NULL) {
        rc = FLOW_ENOMEM;
        goto fail;
    }
    if (opts->id != NULL && (job->id = flow__strdup(opts->id)) == NULL) {
        rc = FLOW_ENOMEM;
        goto fail;
    }
    int traced = flow_traceparent_valid(opts->traceparent);
    if ((traced || opts->resume_node != NULL || opts->deadline_ms > 0 || opts->max_steps > 0) &&
        flow__job_more(job) == NULL) {
        rc = FLOW_ENOMEM;
        goto fail;
    }
    if (traced && (job->more->traceparent = flow__strdup(opts->traceparent)) == NULL) {
        rc = FLOW_ENOMEM;
        goto fail;
    }
    if (opts->resume_node != NULL) {
        job->more->resume_node = flow_def_find(def, opts->resume_node);
        if (job->more->resume_node == NULL || job->more->resume_node == def->root) {
            rc = FLOW_ENOTFOUND;
            goto fail;
        }
        job->more->resume_tries = opts->resume_tries;
        job->more->resume_visits = opts->resume_visits;
    }
    if (frame_set_params(&job->top, json_incref(opts->params), !flat) < 0) {
        rc = FLOW_ENOMEM;
        goto fail;
    }
    job->started_steps = job->steps = opts->resume_steps;
    job->started_us = opts->resume_started_us;
    if (opts->deadline_ms > 0) {
        uint64_t left = opts->deadline_ms, now_us = flow_wall_us();
        if (job->started_us != 0 && now_us > job->started_us) {
            uint64_t ran_ms = (now_us - job->started_us) / 1000u;
            left = ran_ms < left ? left - ran_ms : 0;
        }
        if (flow__timer_start(eng->timers, &job->more->deadline, left, on_deadline) < 0) {
            rc = FLOW_ENOMEM;
            goto fail;
        }
    }
    job->eng = eng;
    job->def = flow_def_ref(def);
    job->shared = shared;
    job->status = FLOW_QUEUED;
    job->on_event = opts->on_event;
    job->on_done = opts->on_done;
    job->data = opts->data;
    if (job->more != NULL) {
        job->more->max_steps = opts->max_steps;
        job->more->deadline_ms = opts->deadline_ms;
    }
    job->created_us = flow_wall_us();
    job->top.job = job;
    job->top.cur = def->root;
    if (flat) {
        job->top.step.ctx = (flow_ctx_t *)(job + 1);
        job->top.depth = 1;
        job->top.cur = root->start;
        if (job->more != NULL && job->more->resume_node != NULL) {
            job->top.cur = job->more->resume_node;
            job->top.started = job->more->resume_visits; /* a resumed job numbers its visits on */
            job->more->resume_node = NULL;
            job->more->resume_visits = 0;
        }
        warn_root_successors(job, root);
    }
    flow_queue_init(&job->ready);
    flow_queue_insert_head(&eng->jobs, &job->jobs_node);
    eng->njobs++;
    eng->nalloc++;
    ready_push(job, &job->top);
    runq_push(job);
    if (out != NULL)
        *out = job;
    return 0;
fail:
    json_decref(shared);
    if (job != NULL) {
        frame_params_free(&job->top);
        flow__free(job->id);
        more_free(job->more);
        flow__free(job);
    }
    return rc;
}

int flow_job_cancel(flow_job_t *job) {
    if (job == NULL)
        return FLOW_EINVAL;
    if (job->final)
        return FLOW_ESTATE;
    job_fail(job, FLOW_ECANCELED, "canceled", job->current ? job->current->name : NULL);
    runq_push(job);
    return 0;
}

int flow_job_fail(flow_job_t *job, int code, const char *node, const char *message) {
    if (job == NULL || code >= 0 || code == FLOW_ECANCELED)
        return FLOW_EINVAL;
    if (job->final)
        return FLOW_ESTATE;
    job_fail(job, code, message, node);
    runq_push(job);
    return 0;
}

/* ---- readers ---- */

int flow_traceparent_valid(const char *s) {
    static const size_t parts[] = {2, 32, 16, 2}; /* version, trace id, parent id, flags */
    if (s == NULL || strlen(s) != 55 || strncmp(s, "00-", 3) != 0)
        return 0;
    const char *p = s;
    for (size_t i = 0; i < 4; i++) {
        int nonzero = 0;
        for (size_t k = 0; k < parts[i]; k++, p++) {
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                return 0;
            nonzero |= *p != '0';
        }
        if ((i == 1 || i == 2) && !nonzero)
            return 0;
        if (i < 3 && *p++ != '-')
            return 0;
    }
    return 1;
}

const char *flow_job_traceparent(const flow_job_t *job) {
    return job->more ? job->more->traceparent : NULL;
}

const char *flow_job_id(const flow_job_t *job) {
    return job->id ? job->id : "";
}

flow_def_t *flow_job_def(const flow_job_t *job) {
    return job->def;
}

flow_status_t flow_job_status(const flow_job_t *job) {
    return job->status;
}

json_t *flow_job_shared(const flow_job_t *job) {
    return job->shared;
}

int flow_job_take_touched(flow_job_t *job, json_t **keys) {
    int all = job->touched_all;
    *keys = all ? NULL : job->touched;
    if (all)
        json_decref(job->touched);
    job->touched = NULL;
    job->touched_all = 0;
    return all;
}

void flow__ctx_touch(flow_ctx_t *c, const char *key, size_t len) {
    flow_job_t *job = c ? c->job : NULL;
    if (job == NULL || job->touched_all)
        return;
    if (key == NULL) {
        job->touched_all = 1;
        return;
    }
    if (job->touched == NULL)
        job->touched = json_object();
    if (job->touched == NULL || json_object_setn_new(job->touched, key, len, json_true()) < 0)
        job->touched_all = 1;
}

void flow__ctx_touch_pointer(flow_ctx_t *c, const char *ptr) {
    if (ptr == NULL || ptr[0] != '/') {
        flow__ctx_touch(c, NULL, 0);
        return;
    }
    /* the first reference token, unescaped (RFC 6901: ~1 is "/", ~0 is "~") */
    const char *end = strchr(ptr + 1, '/');
    size_t n = end ? (size_t)(end - ptr - 1) : strlen(ptr + 1), len = 0;
    char small[128] = "", *key = n < sizeof small ? small : flow__malloc(n + 1);
    if (key == NULL) {
        flow__ctx_touch(c, NULL, 0);
        return;
    }
    for (size_t i = 1; i <= n; i++) {
        char ch = ptr[i];
        if (ch == '~' && i < n && (ptr[i + 1] == '0' || ptr[i + 1] == '1'))
            ch = ptr[++i] == '0' ? '~' : '/';
        key[len++] = ch;
    }
    flow__ctx_touch(c, key, len);
    if (key != small)
        flow__free(key);
}

uint64_t flow_job_steps(const flow_job_t *job) {
    return job->steps;
}

const char *flow_job_current_node(const flow_job_t *job) {
    return job->current ? job->current->name : NULL;
}

const char *flow_job_last_action(const flow_job_t *job) {
    return job->last_action;
}

/* A job's error is kept with what few jobs need (struct job_more): a job that failed without the
 * memory for it failed for want of memory. */
const flow_error_t *flow_job_error(const flow_job_t *job) {
    static const flow_error_t none, no_memory = {.code = FLOW_ENOMEM};
    if (job->more != NULL)
        return &job->more->error;
    return job->final && job->status != FLOW_SUCCEEDED ? &no_memory : &none;
}

json_t *flow_job_waiting_for(const flow_job_t *job) {
    if (flow__job_waits_empty(job))
        return NULL;
    const flow_ctx_t *c = FLOW_QUEUE_DATA(flow_queue_head(&job->more->waits), flow_ctx_t, u.wait.node);
    return c->u.wait.request;
}

void *flow_job_data(const flow_job_t *job) {
    return job->data;
}

uint64_t flow_job_created_us(const flow_job_t *job) {
    return job->created_us;
}

uint64_t flow_job_started_us(const flow_job_t *job) {
    return job->started_us;
}

uint64_t flow_job_finished_us(const flow_job_t *job) {
    return job->finished_us;
}

size_t flow_job_history_count(const flow_job_t *job) {
    return job->hist ? job->hist->len : 0;
}

const flow_step_t *flow_job_history_at(const flow_job_t *job, size_t i) {
    if (i >= flow_job_history_count(job))
        return NULL;
    return &job->hist->e[(job->hist->head + i) % job->hist->cap].pub;
}

void flow_job_history_totals(const flow_job_t *job, flow_history_totals_t *out) {
    const struct hist *h = job->hist;
    out->steps = job->steps;
    out->failed = h ? h->failed : 0;
    out->retries = h ? h->retries : 0;
    out->dropped = h ? h->dropped : 0;
}

/* ---- status names ---- */

static const char *const status_names[] = {"queued", "running", "waiting", "succeeded", "failed",
                                           "canceled"};

const char *flow_status_name(flow_status_t status) {
    if ((unsigned)status >= sizeof status_names / sizeof status_names[0])
        return "unknown";
    return status_names[status];
}

int flow_status_parse(const char *name, flow_status_t *out) {
    for (unsigned i = 0; i < sizeof status_names / sizeof status_names[0]; i++) {
        if (strcmp(status_names[i], name) == 0) {
            *out = (flow_status_t)i;
            return 0;
        }
    }
    return FLOW_EINVAL;
}

int flow_status_final(flow_status_t status) {
    return status == FLOW_SUCCEEDED || status == FLOW_FAILED || status == FLOW_CANCELED;
}
