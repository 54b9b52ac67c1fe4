/* test_retry.c: tries, the wait between them on a timer, exec_fallback, and node timeouts. */
#include <string.h>

#include "support/harness.h"

/* exec fails while the try is below fail_tries, either at once or later from a timer. */
typedef struct flaky {
    unsigned fail_tries;
    int later;          /* fail and succeed from a uv_timer instead of inside exec */
    int final;          /* fail with flow_fail_final: no other try */
    unsigned preps, posts;
    json_t *attempts;   /* every attempt number exec saw */
    uv_timer_t timer;
    flow_ctx_t *pending;
} flaky_t;

static void fail_try(flow_ctx_t *ctx, const flaky_t *f) {
    if (f->final)
        flow_fail_final(ctx, FLOW_EIO, "upstream said no (try %u)", flow_ctx_attempt(ctx) + 1);
    else
        flow_fail(ctx, FLOW_EIO, "upstream said no (try %u)", flow_ctx_attempt(ctx) + 1);
}

static void later_cb(uv_timer_t *t) {
    flaky_t *f = t->data;
    flow_ctx_t *ctx = f->pending;
    f->pending = NULL;
    if (flow_ctx_attempt(ctx) < f->fail_tries)
        fail_try(ctx, f);
    else
        flow_done(ctx, json_string("fine"));
}

static int flaky_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    flaky_t *f = flow_ctx_node_data(ctx);
    f->preps++;
    return 0;
}

static void flaky_exec(flow_ctx_t *ctx, json_t *prep_res) {
    flaky_t *f = flow_ctx_node_data(ctx);
    json_array_append_new(f->attempts, json_integer(flow_ctx_attempt(ctx)));
    if (f->later) {
        f->pending = ctx;
        uv_timer_start(&f->timer, later_cb, 1, 0);
    } else if (flow_ctx_attempt(ctx) < f->fail_tries) {
        fail_try(ctx, f);
    } else {
        flow_done(ctx, json_string("fine"));
    }
}

static int flaky_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res, const char **action) {
    flaky_t *f = flow_ctx_node_data(ctx);
    f->posts++;
    json_object_set(shared, "result", exec_res ? exec_res : json_null());
    return 0;
}

static const flow_node_ops_t flaky_ops = {.prep = flaky_prep, .exec = flaky_exec, .post = flaky_post};

static harness_t h;
static outcome_t out;
static flaky_t f;

static void setup(void) {
    harness_init(&h, NULL);
    memset(&f, 0, sizeof f);
    f.attempts = json_array();
    uv_timer_init(&h.loop, &f.timer);
    f.timer.data = &f;
}

static void teardown(void) {
    uv_close((uv_handle_t *)&f.timer, NULL);
    json_decref(f.attempts);
    outcome_clear(&out);
    harness_close(&h);
}

static flow_def_t *one_node(const flow_node_ops_t *ops, void *data, unsigned tries, uint64_t wait,
                            flow_node_t **node) {
    flow_node_t *root;
    flow_def_t *def = def_new("retry", &root);
    *node = node_new(def, "call", FLOW_NODE, ops, data);
    ck_assert_int_eq(flow_node_set_retry(*node, tries, wait), 0);
    flow_node_set_start(root, *node);
    return def;
}

START_TEST(test_exec_is_retried_until_it_succeeds) {
    flow_node_t *n;
    f.fail_tries = 2;
    flow_def_t *def = one_node(&flaky_ops, &f, 3, 0, &n);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(dumps(f.attempts), "[0,1,2]");
    ck_assert_uint_eq(f.preps, 1); /* only exec is retried */
    ck_assert_uint_eq(f.posts, 1);
    ck_assert_str_eq(json_string_value(json_object_get(out.shared, "result")), "fine");
    ck_assert_uint_eq(out.history[0].tries, 3);
    ck_assert_uint_eq(out.totals.retries, 2);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_the_default_is_one_try) {
    flow_node_t *root, *n;
    flow_def_t *def = def_new("once", &root);
    n = node_new(def, "call", FLOW_NODE, &flaky_ops, &f);
    ck_assert_uint_eq(flow_node_max_retries(n), 1);
    flow_node_set_start(root, n);
    f.fail_tries = 1;
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_str_eq(dumps(f.attempts), "[0]");
    flow_def_unref(def);
}
END_TEST

START_TEST(test_after_the_last_try_the_job_fails_with_the_error) {
    flow_node_t *n;
    f.fail_tries = 10;
    flow_def_t *def = one_node(&flaky_ops, &f, 3, 0, &n);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_EIO);
    ck_assert_str_eq(out.error_message, "upstream said no (try 3)");
    ck_assert_str_eq(out.error_node, "call");
    ck_assert_uint_eq(f.posts, 0);
    ck_assert_uint_eq(out.history[0].tries, 3);
    ck_assert_int_eq(out.history[0].error, FLOW_EIO);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_async_failures_are_retried_too) {
    flow_node_t *n;
    f.fail_tries = 2;
    f.later = 1;
    flow_def_t *def = one_node(&flaky_ops, &f, 3, 0, &n);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(dumps(f.attempts), "[0,1,2]");
    flow_def_unref(def);
}
END_TEST

/* The wait is a timer: while the node waits between tries, another job runs to its end. */
static void quick_exec(flow_ctx_t *ctx, json_t *prep_res) {
    flow_done(ctx, NULL);
}

static const flow_node_ops_t quick_ops = {.exec = quick_exec};

START_TEST(test_the_wait_between_tries_is_a_timer_not_a_sleep) {
    flow_node_t *n, *root;
    f.fail_tries = 2;
    flow_def_t *def = one_node(&flaky_ops, &f, 3, 30, &n);
    flow_def_t *other = def_new("other", &root);
    flow_node_set_start(root, node_new(other, "quick", FLOW_NODE, &quick_ops, NULL));
    outcome_t other_out;
    uv_update_time(&h.loop);
    uint64_t t0 = uv_now(&h.loop);
    harness_start(&h, def, NULL, NULL, &out);
    harness_start(&h, other, NULL, NULL, &other_out);
    while (!out.done && uv_run(&h.loop, UV_RUN_ONCE)) {
        if (other_out.done)
            ck_assert_uint_lt(json_array_size(f.attempts), 3); /* it ended while we waited */
    }
    ck_assert(other_out.done);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_uint_ge(uv_now(&h.loop) - t0, 60); /* two waits of 30 ms happened */
    outcome_clear(&other_out);
    flow_def_unref(def);
    flow_def_unref(other);
}
END_TEST

/* ---- fallback ---- */

static int fb_recover(flow_ctx_t *ctx, json_t *prep_res, const flow_error_t *err, json_t **exec_res) {
    *exec_res = json_sprintf("recovered from: %s", err->message);
    return 0;
}

static int fb_refuse(flow_ctx_t *ctx, json_t *prep_res, const flow_error_t *err, json_t **exec_res) {
    return flow_error(ctx, FLOW_EHTTP, "gave up after %u tries: %s", flow_ctx_attempt(ctx) + 1, err->message);
}

static const flow_node_ops_t recover_ops = {.prep = flaky_prep, .exec = flaky_exec, .post = flaky_post,
                                            .exec_fallback = fb_recover};
static const flow_node_ops_t refuse_ops = {.prep = flaky_prep, .exec = flaky_exec, .post = flaky_post,
                                           .exec_fallback = fb_refuse};

START_TEST(test_a_fallback_result_becomes_exec_res) {
    flow_node_t *n;
    f.fail_tries = 10;
    flow_def_t *def = one_node(&recover_ops, &f, 2, 0, &n);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(json_string_value(json_object_get(out.shared, "result")),
                     "recovered from: upstream said no (try 2)");
    ck_assert_uint_eq(f.posts, 1);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_a_fallback_may_fail_with_its_own_error) {
    flow_node_t *n;
    f.fail_tries = 10;
    flow_def_t *def = one_node(&refuse_ops, &f, 2, 0, &n);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_EHTTP);
    ck_assert_str_eq(out.error_message, "gave up after 2 tries: upstream said no (try 2)");
    flow_def_unref(def);
}
END_TEST

/* Node._exec calls exec_fallback only after the last try failed: an exec that succeeds (on its
 * second try here) never reaches it. */
static unsigned fallbacks;

static int fb_count(flow_ctx_t *ctx, json_t *prep_res, const flow_error_t *err, json_t **exec_res) {
    fallbacks++;
    *exec_res = json_string("from the fallback");
    return 0;
}

static const flow_node_ops_t counted_ops = {
    .prep = flaky_prep, .exec = flaky_exec, .post = flaky_post, .exec_fallback = fb_count};

START_TEST(test_a_fallback_is_not_called_when_exec_succeeds) {
    flow_node_t *n;
    fallbacks = 0;
    f.fail_tries = 1;
    flow_def_t *def = one_node(&counted_ops, &f, 3, 0, &n);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_uint_eq(fallbacks, 0);
    ck_assert_str_eq(json_string_value(json_object_get(out.shared, "result")), "fine");
    ck_assert_uint_eq(out.history[0].tries, 2);
    flow_def_unref(def);
}
END_TEST

/* The fallback's result is the exec result: post stores it and the next node reads it. */
static int reader_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    *prep_res = json_incref(json_object_get(shared, "result"));
    return 0;
}

static int reader_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                       const char **action) {
    json_object_set_new(shared, "read",
                        json_sprintf("next node read: %s", json_string_value(prep_res)));
    return 0;
}

static const flow_node_ops_t reader_ops = {.prep = reader_prep, .post = reader_post};

START_TEST(test_the_next_node_reads_what_the_fallback_gave) {
    flow_node_t *n;
    fallbacks = 0;
    f.fail_tries = 10;
    flow_def_t *def = one_node(&counted_ops, &f, 2, 0, &n);
    flow_node_t *reader = node_new(def, "reader", FLOW_NODE, &reader_ops, NULL);
    flow_node_next(n, NULL, reader);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_uint_eq(fallbacks, 1);
    ck_assert_str_eq(json_string_value(json_object_get(out.shared, "read")),
                     "next node read: from the fallback");
    ck_assert_uint_eq(out.steps, 2);
    flow_def_unref(def);
}
END_TEST

/* flow_fail_final: the error would be the same on a retry (an address the outbound policy refuses):
 * no other try, at once or later, on the loop or on the thread pool; the fallback still runs. */
START_TEST(test_a_final_failure_is_not_retried_but_the_fallback_runs) {
    flow_node_t *n;
    f.fail_tries = 10;
    f.final = 1;
    for (int mode = 0; mode < 3; mode++) {
        f.later = mode == 1;
        json_array_clear(f.attempts);
        flow_def_t *def = one_node(&flaky_ops, &f, 3, 1000, &n);
        if (mode == 2)
            ck_assert_int_eq(flow_node_set_threaded(n, 1), 0);
        harness_run(&h, def, NULL, NULL, &out);
        ck_assert_int_eq(out.status, FLOW_FAILED);
        ck_assert_str_eq(out.error_message, "upstream said no (try 1)");
        ck_assert_str_eq(dumps(f.attempts), "[0]");
        ck_assert_uint_eq(out.history[0].tries, 1);
        ck_assert_uint_eq(out.totals.retries, 0);
        outcome_clear(&out);
        flow_def_unref(def);
    }
    f.later = 0;
    json_array_clear(f.attempts);
    flow_def_t *def = one_node(&recover_ops, &f, 3, 0, &n);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(json_string_value(json_object_get(out.shared, "result")),
                     "recovered from: upstream said no (try 1)");
    ck_assert_str_eq(dumps(f.attempts), "[0]");
    flow_def_unref(def);
}
END_TEST

/* ---- node timeouts ---- */

/* An exec that never completes by itself; cancel is how the engine stops it. */
typedef struct stuck {
    unsigned cancels;
    unsigned execs;
} stuck_t;

static void stuck_exec(flow_ctx_t *ctx, json_t *prep_res) {
    stuck_t *s = flow_ctx_node_data(ctx);
    s->execs++;
    flow_ctx_set_data(ctx, s);
}

static void stuck_cancel(flow_ctx_t *ctx) {
    stuck_t *s = flow_ctx_data(ctx);
    s->cancels++;
    ck_assert_int_eq(flow_done(ctx, NULL), FLOW_ESTATE); /* too late to complete */
}

static const flow_node_ops_t stuck_ops = {.exec = stuck_exec, .cancel = stuck_cancel};

START_TEST(test_a_try_that_passes_its_timeout_fails_and_is_retried) {
    stuck_t s = {0};
    flow_node_t *n;
    flow_def_t *def = one_node(&stuck_ops, &s, 3, 0, &n);
    flow_node_set_timeout(n, 10);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_ETIMEDOUT);
    ck_assert_str_eq(out.error_message, "node call timed out after 10 ms");
    ck_assert_uint_eq(s.execs, 3);
    ck_assert_uint_eq(s.cancels, 3);
    flow_def_unref(def);
}
END_TEST

static void slow_sleep_exec(flow_ctx_t *ctx, json_t *prep_res) {
    flow_sleep(ctx, flow_ctx_attempt(ctx) == 0 ? 1000 : 1, json_string("woke"));
}

static const flow_node_ops_t slow_then_fast_ops = {.exec = slow_sleep_exec, .post = flaky_post};

START_TEST(test_a_timed_out_sleep_is_stopped_and_the_next_try_can_succeed) {
    flow_node_t *n;
    flow_def_t *def = one_node(&slow_then_fast_ops, &f, 2, 0, &n);
    flow_node_set_timeout(n, 20);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(json_string_value(json_object_get(out.shared, "result")), "woke");
    ck_assert_uint_eq(out.history[0].tries, 2);
    flow_def_unref(def);
}
END_TEST

static Suite *retry_suite(void) {
    Suite *s = suite_create("retry");
    TCase *tc = tcase_create("retry");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_exec_is_retried_until_it_succeeds);
    tcase_add_test(tc, test_the_default_is_one_try);
    tcase_add_test(tc, test_after_the_last_try_the_job_fails_with_the_error);
    tcase_add_test(tc, test_async_failures_are_retried_too);
    tcase_add_test(tc, test_the_wait_between_tries_is_a_timer_not_a_sleep);
    tcase_add_test(tc, test_a_fallback_result_becomes_exec_res);
    tcase_add_test(tc, test_a_fallback_may_fail_with_its_own_error);
    tcase_add_test(tc, test_a_fallback_is_not_called_when_exec_succeeds);
    tcase_add_test(tc, test_the_next_node_reads_what_the_fallback_gave);
    tcase_add_test(tc, test_a_final_failure_is_not_retried_but_the_fallback_runs);
    tcase_add_test(tc, test_a_try_that_passes_its_timeout_fails_and_is_retried);
    tcase_add_test(tc, test_a_timed_out_sleep_is_stopped_and_the_next_try_can_succeed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return harness_main(retry_suite());
}
