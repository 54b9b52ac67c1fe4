/* render.c: the API's JSON bodies of render.h. */
#include "render.h"

#define FLOWD_STRINGIFY_(x) #x
#define FLOWD_STRINGIFY(x) FLOWD_STRINGIFY_(x)

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "flow/problems.h"

/* {"error": {"code": ..., "message": message, left open for more members. */
static void error_open(flowd_jw_t *w, flow_buf_t *b, flowd_apierr_t err, const char *message) {
    flow_buf_init(b, 0);
    flowd_jw_init(w, b, 2);
    flowd_jw_obj(w);
    flowd_jw_key(w, "error");
    flowd_jw_obj(w);
    flowd_jw_key(w, "code");
    flowd_jw_str(w, flowd_apierr_code(err));
    flowd_jw_key(w, "message");
    flowd_jw_str(w, message);
}

/* Closes what error_open opened; the body. */
static char *error_close(flowd_jw_t *w, flow_buf_t *b, size_t *len) {
    flowd_jw_obj_end(w);
    flowd_jw_obj_end(w);
    flow_buf_addc(b, '\n');
    return flow_buf_take(b, len);
}

/* err's body with message (NULL: err's default) */
static char *error_body(flowd_apierr_t err, size_t *len, const char *fmt, va_list ap) {
    char message[1024];
    if (fmt == NULL)
        snprintf(message, sizeof message, "%s", flowd_apierr_message(err));
    else
        vsnprintf(message, sizeof message, fmt, ap);
    flow_buf_t b;
    flowd_jw_t w;
    error_open(&w, &b, err, message);
    return error_close(&w, &b, len);
}

char *flowd_render_problems(const flow_problems_t *p, size_t *len) {
    flow_buf_t b;
    flowd_jw_t w;
    size_t total = flow_problems_total(p);
    char message[128];
    snprintf(message, sizeof message, "the flow document has %zu problem%s", total,
             total == 1 ? "" : "s");
    error_open(&w, &b, FLOWD_E_INVALID_FLOW, message);
    flowd_jw_key(&w, "problems");
    flowd_jw_arr(&w);
    for (size_t i = 0; i < p->count; i++) {
        flowd_jw_obj(&w);
        flowd_jw_key(&w, "where");
        flowd_jw_str(&w, p->items[i].where);
        flowd_jw_key(&w, "message");
        flowd_jw_str(&w, p->items[i].message);
        flowd_jw_obj_end(&w);
    }
    flowd_jw_arr_end(&w);
    return error_close(&w, &b, len);
}

char *flowd_render_error(flowd_apierr_t err, size_t *len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *body = error_body(err, len, fmt, ap);
    va_end(ap);
    return body;
}

void flowd_answer_error(flowd_answer_t *a, flowd_apierr_t err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    a->status = flowd_apierr_status(err);
    a->has_etag = 0; /* an error names no version */
    a->body = error_body(err, &a->len, fmt, ap);
    va_end(ap);
}

/* Whether origin (jobs.h) is a fork's, {"job":"<id>","step":N}, rather than a redrive's,
 * {"job":"<id>","node":...}: http_jobs.c writes both compact with "job" first, and an id is
 * FLOWD_ID_LEN hex digits, so the member after it says which. */
static int origin_is_fork(const char *origin) {
    static const char head[] = "{\"job\":\"", step[] = "\",\"step\":";
    size_t at = sizeof head - 1 + FLOWD_ID_LEN;
    return origin != NULL && strlen(origin) > at && strncmp(origin + at, step, sizeof step - 1) == 0;
}

void flowd_render_job_view(flowd_jw_t *w, const flowd_job_view_t *v) {
    flowd_jw_obj(w);
    flowd_jw_key(w, "id");
    flowd_jw_strn(w, v->id, FLOWD_ID_LEN);
    flowd_jw_key(w, "flow");
    flowd_jw_str(w, v->flow);
    flowd_jw_key(w, "tenant");
    flowd_jw_str(w, v->tenant ? v->tenant : FLOWD_DEFAULT_TENANT);
    flowd_jw_key(w, "status");
    flowd_jw_str(w, flow_status_name(v->status));
    flowd_jw_key(w, "created_at");
    flowd_jw_time(w, v->created_us);
    flowd_jw_key(w, "started_at");
    flowd_jw_time(w, v->started_us);
    flowd_jw_key(w, "finished_at");
    flowd_jw_time(w, v->finished_us);
    flowd_jw_key(w, "current_node");
    flowd_jw_str(w, v->current_node);
    flowd_jw_key(w, "steps");
    flowd_jw_uint(w, v->steps);
    flowd_jw_key(w, "last_action");
    flowd_jw_str(w, v->last_action);
    flowd_jw_key(w, "waiting_for");
    flowd_jw_raw(w, v->waiting_for, v->waiting_for ? strlen(v->waiting_for) : 0);
    flowd_jw_key(w, "error");
    if (v->error_code == 0) {
        flowd_jw_null(w);
    } else {
        flowd_jw_obj(w);
        flowd_jw_key(w, "code");
        flowd_jw_str(w, flow_err_name(v->error_code));
        flowd_jw_key(w, "message");
        flowd_jw_str(w, v->error_message ? v->error_message : flow_strerror(v->error_code));
        flowd_jw_key(w, "node");
        flowd_jw_str(w, v->error_node);
        flowd_jw_obj_end(w);
    }
    flowd_jw_key(w, "start_at");
    flowd_jw_time(w, v->start_at_us);
    flowd_jw_key(w, "priority");
    flowd_jw_uint(w, v->priority);
    flowd_jw_key(w, "concurrency");
    if (v->conc_key == NULL) {
        flowd_jw_null(w);
    } else {
        flowd_jw_obj(w);
        flowd_jw_key(w, "key");
        flowd_jw_str(w, v->conc_key);
        flowd_jw_key(w, "limit");
        flowd_jw_uint(w, v->conc_limit);
        flowd_jw_obj_end(w);
    }
    int fork = origin_is_fork(v->origin);
    const char *redrive = fork ? NULL : v->origin;
    flowd_jw_key(w, "redriven_from");
    flowd_jw_raw(w, redrive, redrive ? strlen(redrive) : 0);
    flowd_jw_key(w, "forked_from");
    flowd_jw_raw(w, fork ? v->origin : NULL, fork ? strlen(v->origin) : 0);
    flowd_jw_obj_end(w);
}

void flowd_render_job(flowd_jw_t *w, flowd_job_t *job, uint64_t *version) {
    flowd_job_lock(job);
    if (version != NULL)
        *version = job->events.next_id - 1;
    flowd_job_view_t v = {.id = job->id,
                          .flow = flow_def_name(job->def),
                          .tenant = job->tenant,
                          .status = flowd_job_status(job),
                          .created_us = job->created_us,
                          .started_us = job->started_us,
                          .finished_us = job->finished_us,
                          .current_node = job->current_node,
                          .steps = job->steps,
                          .last_action = job->last_action,
                          .waiting_for = job->waiting_for,
                          .error_code = job->error.code,
                          .error_message = job->error.message,
                          .error_node = job->error.node,
                          .start_at_us = job->start_at_us,
                          .priority = job->priority,
                          .conc_key = job->conc_key,
                          .conc_limit = job->conc_limit,
                          .origin = job->origin};
    flowd_render_job_view(w, &v);
    flowd_job_unlock(job);
}

char *flowd_render_job_text(flowd_job_t *job, size_t *len, uint64_t *version) {
    flow_buf_t b;
    flowd_jw_t w;
    flow_buf_init(&b, 0);
    flowd_jw_init(&w, &b, 2);
    flowd_render_job(&w, job, version);
    flow_buf_addc(&b, '\n');
    return flow_buf_take(&b, len);
}

void flowd_render_totals(flowd_jw_t *w, const flow_history_totals_t *t) {
    flowd_jw_obj(w);
    flowd_jw_key(w, "steps");
    flowd_jw_uint(w, t->steps);
    flowd_jw_key(w, "failed");
    flowd_jw_uint(w, t->failed);
    flowd_jw_key(w, "retries");
    flowd_jw_uint(w, t->retries);
    flowd_jw_key(w, "dropped");
    flowd_jw_uint(w, t->dropped);
    flowd_jw_obj_end(w);
}

char *flowd_render_totals_text(const flow_history_totals_t *t) {
    flow_buf_t b;
    flowd_jw_t w;
    flow_buf_init(&b, 0);
    flowd_jw_init(&w, &b, 0);
    flowd_render_totals(&w, t);
    return flow_buf_take(&b, NULL);
}

char *flowd_render_new_job(flowd_job_t *job, size_t *len) {
    if (job->start_at_us != 0 || job->priority != FLOWD_PRIORITY_DEFAULT || job->conc_key != NULL ||
        job->origin != NULL)
        return flowd_render_job_text(job, len, NULL); /* the fast text has none of these */
    char t[32];
    flow_buf_t b;
    flowd_jw_t w;
    flow_buf_init(&b, 0);
    flowd_jw_init(&w, &b, 2);
    flowd_format_time(job->created_us, t);
    flow_buf_add(&b, "{\n  \"id\": \"", 11);
    flow_buf_add(&b, job->id, FLOWD_ID_LEN);
    flow_buf_add(&b, "\",\n  \"flow\": ", 13);
    w.depth = 1; /* the name may need escaping: the writer does it */
    w.after_key = 1;
    flowd_jw_str(&w, flow_def_name(job->def));
    flow_buf_adds(&b, ",\n  \"tenant\": \"");
    flow_buf_adds(&b, job->tenant); /* A-Z a-z 0-9 . _ -: nothing to escape (auth.h) */
    flow_buf_adds(&b, "\",\n  \"status\": \"queued\",\n  \"created_at\": \"");
    flow_buf_add(&b, t, 27);
    flow_buf_adds(&b, "\",\n  \"started_at\": null,\n  \"finished_at\": null,\n  \"current_node\": null,\n"
                       "  \"steps\": 0,\n  \"last_action\": null,\n  \"waiting_for\": null,\n"
                       "  \"error\": null,\n  \"start_at\": null,\n  \"priority\": "
                       FLOWD_STRINGIFY(FLOWD_PRIORITY_DEFAULT) ",\n  \"concurrency\": null,\n"
                       "  \"redriven_from\": null,\n  \"forked_from\": null\n}\n");
    return flow_buf_take(&b, len);
}

void flowd_render_history(flow_buf_t *b, flow_job_t *fj, const char *id) {
    flowd_jw_t w;
    flow_history_totals_t totals;
    flowd_jw_init(&w, b, 0);
    flowd_jw_obj(&w);
    flowd_jw_key(&w, "id");
    flowd_jw_str(&w, id);
    flowd_jw_key(&w, "steps");
    flowd_jw_arr(&w);
    size_t n = flow_job_history_count(fj);
    for (size_t i = 0; i < n && !b->err; i++)
        flowd_step_write(&w, flow_job_history_at(fj, i));
    flowd_jw_arr_end(&w);
    flow_job_history_totals(fj, &totals);
    flowd_jw_key(&w, "totals");
    flowd_render_totals(&w, &totals);
    flowd_jw_obj_end(&w);
}

void flowd_render_history_of(flow_buf_t *b, const char *id, const char *steps, size_t len,
                             const flow_history_totals_t *totals) {
    flowd_jw_t w;
    flowd_jw_init(&w, b, 0);
    flowd_jw_obj(&w);
    flowd_jw_key(&w, "id");
    flowd_jw_str(&w, id);
    flowd_jw_key(&w, "steps");
    flowd_jw_raw(&w, steps, len);
    flowd_jw_key(&w, "totals");
    flowd_render_totals(&w, totals);
    flowd_jw_obj_end(&w);
}

void flowd_render_pretty(flow_buf_t *b, const char *compact, size_t len) {
    flowd_reindent(b, compact, len, 2, 0);
    flow_buf_addc(b, '\n');
}

static size_t max_answer = (size_t)16 << 20;

void flowd_render_set_max_answer(size_t bytes) {
    max_answer = bytes;
}

size_t flowd_render_max_answer(void) {
    return max_answer;
}

void flowd_answer_take(flowd_answer_t *a, flow_buf_t *b, const char *what, const char *hint) {
    int err = b->err;
    a->body = flow_buf_take(b, &a->len);
    a->status = 200;
    a->has_etag = 0;
    if (a->body != NULL)
        return;
    a->len = 0;
    if (err == FLOW_ETOOBIG)
        flowd_answer_error(a, FLOWD_E_ANSWER_TOO_LARGE,
                           "%s is over %zu bytes, the most one answer holds (--max-answer): %s",
                           what, b->max, hint);
    else
        a->status = 500;
}
