/* harness.c: the engine tests' shared set-up, job runner and log capture (see harness.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/harness.h"

void harness_init(harness_t *h, const flow_engine_opts_t *opts) {
    ck_assert_int_eq(uv_loop_init(&h->loop), 0);
    ck_assert_int_eq(flow_engine_new(&h->loop, opts, &h->eng), 0);
}

void harness_close(harness_t *h) {
    flow_engine_close(h->eng);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&h->loop), 0);
}

static void copy_str(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "");
}

static void on_event(flow_job_t *job, const flow_event_t *ev, void *data) {
    outcome_t *out = data;
    char text[160];
    if (ev->type == FLOW_EVENT_STATUS)
        snprintf(text, sizeof text, "status:%s", flow_status_name(ev->status));
    else if (ev->type == FLOW_EVENT_RETRY)
        return; /* tests that care about retries watch them themselves */
    else
        snprintf(text, sizeof text, "step:%s:%s", ev->step->node, ev->step->action ? ev->step->action : "-");
    json_array_append_new(out->events, json_string(text));
    if (ev->type == FLOW_EVENT_STEP) {
        json_t *keys = NULL;
        int all = flow_job_take_touched(job, &keys);
        json_array_append_new(out->touched, all ? json_string("*") : keys ? keys : json_object());
    }
}

static void on_done(flow_job_t *job, void *data) {
    outcome_t *out = data;
    const flow_error_t *err = flow_job_error(job);
    out->done = 1;
    out->status = flow_job_status(job);
    out->error = err->code;
    copy_str(out->error_message, sizeof out->error_message, err->message);
    copy_str(out->error_node, sizeof out->error_node, err->node);
    out->shared = json_incref(flow_job_shared(job));
    out->steps = flow_job_steps(job);
    copy_str(out->last_action, sizeof out->last_action, flow_job_last_action(job));
    size_t count = flow_job_history_count(job);
    size_t skip = count > 64 ? count - 64 : 0; /* keeps the newest 64 */
    out->history_count = count - skip;
    for (size_t i = 0; i < out->history_count; i++) {
        const flow_step_t *st = flow_job_history_at(job, skip + i);
        out->history[i] = *st;
        copy_str(out->history_nodes[i], sizeof out->history_nodes[i], st->node);
        copy_str(out->history_actions[i], sizeof out->history_actions[i], st->action);
        out->history[i].node = out->history_nodes[i];
        out->history[i].action = st->action ? out->history_actions[i] : NULL;
        out->history[i].message = NULL;
        out->history[i].logs = json_incref(st->logs); /* released by outcome_clear */
    }
    flow_job_history_totals(job, &out->totals);
}

flow_job_t *harness_start(harness_t *h, flow_def_t *def, json_t *shared, const flow_job_opts_t *opts,
                          outcome_t *out) {
    flow_job_opts_t o = opts ? *opts : (flow_job_opts_t){0};
    memset(out, 0, sizeof *out);
    out->events = json_array();
    out->touched = json_array();
    o.on_done = on_done;
    o.on_event = on_event;
    o.data = out;
    flow_job_t *job = NULL;
    ck_assert_int_eq(flow_job_start(h->eng, def, shared, &o, &job), 0);
    return job;
}

void harness_run(harness_t *h, flow_def_t *def, json_t *shared, const flow_job_opts_t *opts, outcome_t *out) {
    harness_start(h, def, shared, opts, out);
    while (!out->done && uv_run(&h->loop, UV_RUN_ONCE)) {
    }
    ck_assert_msg(out->done, "the loop ran dry before the job ended");
}

void outcome_clear(outcome_t *out) {
    json_decref(out->shared);
    json_decref(out->events);
    json_decref(out->touched);
    out->shared = out->events = out->touched = NULL;
    for (size_t i = 0; i < out->history_count; i++) {
        json_decref(out->history[i].logs);
        out->history[i].logs = NULL;
    }
    out->history_count = 0;
}

flow_def_t *def_new(const char *name, flow_node_t **root) {
    flow_def_t *def;
    ck_assert_int_eq(flow_def_new(name, &def), 0);
    ck_assert_int_eq(flow_node_new(def, "flow", FLOW_FLOW, NULL, NULL, root), 0);
    ck_assert_int_eq(flow_def_set_root(def, *root), 0);
    return def;
}

flow_node_t *node_new(flow_def_t *def, const char *name, flow_kind_t kind, const flow_node_ops_t *ops,
                      void *data) {
    flow_node_t *n;
    ck_assert_int_eq(flow_node_new(def, name, kind, ops, data, &n), 0);
    return n;
}

static char logbuf[8192];
static size_t loglen;

static void capture(flow_log_level_t level, const char *msg, void *data) {
    (void)data;
    int n = snprintf(logbuf + loglen, sizeof logbuf - loglen, "%s: %s\n",
                     level >= FLOW_LOG_WARN ? "warn" : "info", msg);
    if (n > 0 && loglen + (size_t)n < sizeof logbuf)
        loglen += (size_t)n;
}

void log_capture(int on) {
    loglen = 0;
    logbuf[0] = '\0';
    flow_set_logger(on ? capture : NULL, NULL);
}

const char *log_text(void) {
    return logbuf;
}

void trace(json_t *shared, const char *key, const char *fmt, ...) {
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    json_t *arr = json_object_get(shared, key);
    if (arr == NULL) {
        arr = json_array();
        json_object_set_new(shared, key, arr);
    }
    json_array_append_new(arr, json_string(text));
}

const char *joined(json_t *shared, const char *key) {
    static char buf[4096];
    size_t len = 0;
    size_t i;
    json_t *v;
    buf[0] = '\0';
    json_array_foreach(json_object_get(shared, key), i, v) {
        int n = snprintf(buf + len, sizeof buf - len, "%s%s", i ? " " : "", json_string_value(v));
        if (n < 0 || len + (size_t)n >= sizeof buf)
            break;
        len += (size_t)n;
    }
    return buf;
}

const char *dumps(const json_t *v) {
    static char buf[4096];
    if (json_dumpb(v, buf, sizeof buf - 1, JSON_COMPACT | JSON_ENCODE_ANY) >= sizeof buf - 1)
        return "(too long)";
    buf[json_dumpb(v, buf, sizeof buf - 1, JSON_COMPACT | JSON_ENCODE_ANY)] = '\0';
    return buf;
}

flow_netrules_t *rules_of(const char *list) {
    flow_netrules_t *r = NULL;
    char why[256] = "";
    ck_assert_int_eq(flow_netrules_new(&r), 0);
    ck_assert_msg(flow_netrules_add_list(r, list, why, sizeof why) == 0, "%s: %s", list, why);
    return r;
}

int harness_main(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
