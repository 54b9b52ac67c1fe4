/* test_batch.c: batch nodes (in order, retries per item), parallel batch nodes (a concurrency limit,
 * results in input order, retry state per item), batch flows and parallel batch flows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/harness.h"

/* Items are objects {"id": n, "ms": delay, "fail": tries to fail}. exec fails the first `fail`
 * tries; otherwise it completes with "r<id>" at once (ms 0) or from a timer of its own after ms, so
 * the test knows exactly how many items are in flight. */
static unsigned in_flight, max_in_flight;
static json_t *exec_log;

typedef struct wake {
    uv_timer_t timer;
    flow_ctx_t *ctx;
    json_int_t id;
} wake_t;

static void wake_closed(uv_handle_t *h) {
    free(h->data);
}

static void wake_cb(uv_timer_t *t) {
    wake_t *w = t->data;
    in_flight--;
    uv_close((uv_handle_t *)t, wake_closed);
    flow_done(w->ctx, json_sprintf("r%d", (int)w->id));
}

static int items_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    *prep_res = json_incref(json_object_get(shared, "items"));
    return 0;
}

static void item_exec(flow_ctx_t *ctx, json_t *item) {
    json_int_t id = json_integer_value(json_object_get(item, "id"));
    json_int_t ms = json_integer_value(json_object_get(item, "ms"));
    json_int_t fail = json_integer_value(json_object_get(item, "fail"));
    json_array_append_new(exec_log, json_sprintf("%d#%u", (int)id, flow_ctx_attempt(ctx)));
    if ((json_int_t)flow_ctx_attempt(ctx) < fail) {
        flow_fail(ctx, FLOW_EIO, "item %d failed", (int)id);
        return;
    }
    if (ms == 0) {
        flow_done(ctx, json_sprintf("r%d", (int)id));
        return;
    }
    wake_t *w = calloc(1, sizeof *w);
    w->ctx = ctx;
    w->id = id;
    uv_timer_init(flow_ctx_loop(ctx), &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, wake_cb, (uint64_t)ms, 0);
    flow_ctx_set_data(ctx, w);
    if (++in_flight > max_in_flight)
        max_in_flight = in_flight;
}

static void item_cancel(flow_ctx_t *ctx) {
    wake_t *w = flow_ctx_data(ctx);
    if (w == NULL)
        return;
    in_flight--;
    uv_close((uv_handle_t *)&w->timer, wake_closed);
}

static int results_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                        const char **action) {
    json_object_set(shared, "results", exec_res);
    return 0;
}

static const flow_node_ops_t batch_ops = {.prep = items_prep, .exec = item_exec, .post = results_post,
                                          .cancel = item_cancel};

static harness_t h;
static outcome_t out;

static void setup(void) {
    harness_init(&h, NULL);
    in_flight = max_in_flight = 0;
    exec_log = json_array();
}

static void teardown(void) {
    json_decref(exec_log);
    outcome_clear(&out);
    harness_close(&h);
    ck_assert_uint_eq(in_flight, 0);
}

/* n items; with slow_first, earlier items take longer, so they finish in reverse order. */
static json_t *items(int n, int slow_first) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:i, s:i}", "id", i, "ms", slow_first ? (n - i) * 2 : 0));
    return a;
}

static flow_def_t *batch_def(flow_kind_t kind, unsigned limit, unsigned tries) {
    flow_node_t *root;
    flow_def_t *def = def_new("batch", &root);
    flow_node_t *node = node_new(def, "each", kind, &batch_ops, NULL);
    flow_node_set_limit(node, limit);
    flow_node_set_retry(node, tries, 0);
    flow_node_set_start(root, node);
    return def;
}

static const char *results(void) {
    return dumps(json_object_get(out.shared, "results"));
}

START_TEST(test_a_batch_node_runs_exec_per_item_in_order) {
    flow_def_t *def = batch_def(FLOW_BATCH, 0, 1);
    harness_run(&h, def, json_pack("{s:o}", "items", items(4, 1)), NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(dumps(exec_log), "[\"0#0\",\"1#0\",\"2#0\",\"3#0\"]");
    ck_assert_str_eq(results(), "[\"r0\",\"r1\",\"r2\",\"r3\"]");
    ck_assert_uint_eq(max_in_flight, 1);
    ck_assert_uint_eq(out.steps, 1);
    ck_assert_uint_eq(out.history[0].tries, 4);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_each_batch_item_has_its_own_retries) {
    flow_def_t *def = batch_def(FLOW_BATCH, 0, 3);
    json_t *its = items(3, 0);
    json_object_set_new(json_array_get(its, 1), "fail", json_integer(2));
    harness_run(&h, def, json_pack("{s:o}", "items", its), NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(dumps(exec_log), "[\"0#0\",\"1#0\",\"1#1\",\"1#2\",\"2#0\"]");
    ck_assert_uint_eq(out.history[0].tries, 5);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_no_items_is_an_empty_batch_and_a_non_array_an_error) {
    flow_def_t *def = batch_def(FLOW_BATCH, 0, 1);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(results(), "[]");
    outcome_clear(&out);
    harness_run(&h, def, json_pack("{s:s}", "items", "not a list"), NULL, &out);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_EINVAL);
    ck_assert_str_eq(out.error_message, "prep of a batch node must return an array");
    flow_def_unref(def);
}
END_TEST

START_TEST(test_a_parallel_batch_keeps_to_its_limit_and_to_input_order) {
    flow_def_t *def = batch_def(FLOW_PARALLEL_BATCH, 3, 1);
    harness_run(&h, def, json_pack("{s:o}", "items", items(10, 1)), NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_uint_eq(max_in_flight, 3);
    ck_assert_str_eq(results(), "[\"r0\",\"r1\",\"r2\",\"r3\",\"r4\",\"r5\",\"r6\",\"r7\",\"r8\",\"r9\"]");
    flow_def_unref(def);
}
END_TEST

START_TEST(test_a_parallel_batch_without_limit_starts_every_item_at_once) {
    flow_def_t *def = batch_def(FLOW_PARALLEL_BATCH, 0, 1);
    harness_run(&h, def, json_pack("{s:o}", "items", items(50, 1)), NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_uint_eq(max_in_flight, 50);
    ck_assert_uint_eq(json_array_size(json_object_get(out.shared, "results")), 50);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_parallel_items_keep_their_own_retry_state) {
    flow_def_t *def = batch_def(FLOW_PARALLEL_BATCH, 0, 3);
    json_t *its = items(4, 1);
    json_object_set_new(json_array_get(its, 0), "fail", json_integer(1));
    json_object_set_new(json_array_get(its, 2), "fail", json_integer(2));
    harness_run(&h, def, json_pack("{s:o}", "items", its), NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    /* Each item's attempts count from 0, whatever the others did. */
    ck_assert_str_eq(dumps(exec_log), "[\"0#0\",\"0#1\",\"1#0\",\"2#0\",\"2#1\",\"2#2\",\"3#0\"]");
    ck_assert_uint_eq(out.history[0].tries, 7);
    ck_assert_str_eq(results(), "[\"r0\",\"r1\",\"r2\",\"r3\"]");
    flow_def_unref(def);
}
END_TEST

START_TEST(test_a_failing_item_cancels_the_others_in_flight) {
    flow_def_t *def = batch_def(FLOW_PARALLEL_BATCH, 0, 1);
    json_t *its = items(5, 1);
    json_object_set_new(json_array_get(its, 4), "fail", json_integer(1));
    harness_run(&h, def, json_pack("{s:o}", "items", its), NULL, &out);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_str_eq(out.error_message, "item 4 failed");
    ck_assert_uint_eq(in_flight, 0); /* the four sleeping items were canceled */
    flow_def_unref(def);
}
END_TEST

/* ---- batch flows ---- */

/* The sub-flow's node records the params it was given, and sleeps a little to overlap runs. */
static unsigned flows_in_flight, max_flows_in_flight;

static int record_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    json_array_append_new(json_object_get(shared, "seen"), json_deep_copy(flow_ctx_params(ctx)));
    if (++flows_in_flight > max_flows_in_flight)
        max_flows_in_flight = flows_in_flight;
    return 0;
}

static void record_exec(flow_ctx_t *ctx, json_t *prep_res) {
    json_int_t ms = json_integer_value(json_object_get(flow_ctx_params(ctx), "ms"));
    flow_sleep(ctx, (uint64_t)ms, NULL);
}

static int record_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                       const char **action) {
    flows_in_flight--;
    return 0;
}

static const flow_node_ops_t record_ops = {.prep = record_prep, .exec = record_exec, .post = record_post};

static int sets_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    *prep_res = json_incref(json_object_get(shared, "sets"));
    return 0;
}

static const flow_node_ops_t sets_ops = {.prep = sets_prep};

static flow_def_t *batch_flow_def(flow_kind_t kind, unsigned limit) {
    flow_node_t *root;
    flow_def_t *def = def_new("batch-flow", &root);
    flow_node_t *each = node_new(def, "each", kind, &sets_ops, NULL);
    flow_node_t *leaf = node_new(def, "leaf", FLOW_NODE, &record_ops, NULL);
    flow_node_set_start(each, leaf);
    flow_node_set_limit(each, limit);
    json_t *own = json_pack("{s:s, s:s}", "lang", "en", "size", "small");
    flow_node_set_params(each, own);
    json_decref(own);
    flow_node_set_start(root, each);
    return def;
}

static json_t *param_sets(int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:i, s:i}", "i", i, "ms", (n - i) * 2));
    json_object_set_new(json_array_get(a, 0), "size", json_string("large"));
    return a;
}

START_TEST(test_a_batch_flow_runs_its_sub_flow_once_per_param_set) {
    flows_in_flight = max_flows_in_flight = 0;
    flow_def_t *def = batch_flow_def(FLOW_BATCH_FLOW, 0);
    harness_run(&h, def, json_pack("{s:o, s:[]}", "sets", param_sets(3), "seen"), NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_uint_eq(max_flows_in_flight, 1);
    /* Each set's params over the batch flow's own. */
    ck_assert_str_eq(dumps(json_object_get(out.shared, "seen")),
                     "[{\"lang\":\"en\",\"size\":\"large\",\"i\":0,\"ms\":6},"
                     "{\"lang\":\"en\",\"size\":\"small\",\"i\":1,\"ms\":4},"
                     "{\"lang\":\"en\",\"size\":\"small\",\"i\":2,\"ms\":2}]");
    ck_assert_uint_eq(out.steps, 4); /* three leaves and the batch flow */
    flow_def_unref(def);
}
END_TEST

START_TEST(test_a_parallel_batch_flow_runs_sub_flows_concurrently_within_its_limit) {
    flows_in_flight = max_flows_in_flight = 0;
    flow_def_t *def = batch_flow_def(FLOW_PARALLEL_BATCH_FLOW, 2);
    harness_run(&h, def, json_pack("{s:o, s:[]}", "sets", param_sets(5), "seen"), NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_uint_eq(max_flows_in_flight, 2);
    ck_assert_uint_eq(json_array_size(json_object_get(out.shared, "seen")), 5);
    ck_assert_uint_eq(out.steps, 6);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_batch_flows_want_objects) {
    flow_def_t *def = batch_flow_def(FLOW_BATCH_FLOW, 0);
    harness_run(&h, def, json_pack("{s:[i], s:[]}", "sets", 1, "seen"), NULL, &out);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_str_eq(out.error_message, "prep of a batch flow must return an array of objects");
    flow_def_unref(def);
}
END_TEST

/* ---- PocketFlow's batch tests, against the engine ---- */

START_TEST(test_a_parallel_batch_node_with_no_items) {
    flow_def_t *def = batch_def(FLOW_PARALLEL_BATCH, 2, 1);
    harness_run(&h, def, json_pack("{s:[]}", "items"), NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(results(), "[]"); /* post ran, with an empty list */
    ck_assert_str_eq(dumps(exec_log), "[]");
    outcome_clear(&out);
    harness_run(&h, def, NULL, NULL, &out); /* prep gives nothing: BatchNode's `items or []` */
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(results(), "[]");
    flow_def_unref(def);
}
END_TEST

START_TEST(test_a_batch_flow_whose_prep_gives_no_sets) {
    for (int k = 0; k < 2; k++) {
        flow_def_t *def = batch_flow_def(k ? FLOW_PARALLEL_BATCH_FLOW : FLOW_BATCH_FLOW, 0);
        harness_run(&h, def, json_pack("{s:[], s:[]}", "sets", "seen"), NULL, &out);
        ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
        ck_assert_str_eq(dumps(json_object_get(out.shared, "seen")), "[]");
        ck_assert_uint_eq(out.steps, 1); /* the batch flow itself; its sub-flow never ran */
        outcome_clear(&out);
        harness_run(&h, def, json_pack("{s:[]}", "seen"), NULL, &out); /* `prep(shared) or []` */
        ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
        ck_assert_uint_eq(out.steps, 1);
        outcome_clear(&out);
        flow_def_unref(def);
    }
}
END_TEST

/* A node of a sub-flow: traces "<name><i>" from its params, fails when they say "fail", and sleeps
 * "ms" when given (so parallel runs overlap). */
static int chain_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    json_t *p = flow_ctx_params(ctx);
    trace(shared, "trace", "%s%d", flow_node_name(flow_ctx_node(ctx)),
          (int)json_integer_value(json_object_get(p, "i")));
    if (json_object_get(p, "o") != NULL)
        trace(shared, "pairs", "o%d-i%d", (int)json_integer_value(json_object_get(p, "o")),
              (int)json_integer_value(json_object_get(p, "i")));
    return 0;
}

static void chain_exec(flow_ctx_t *ctx, json_t *prep_res) {
    json_t *p = flow_ctx_params(ctx);
    if (json_is_true(json_object_get(p, "fail"))) {
        flow_fail(ctx, FLOW_EIO, "set %d failed in %s",
                  (int)json_integer_value(json_object_get(p, "i")),
                  flow_node_name(flow_ctx_node(ctx)));
        return;
    }
    json_int_t ms = json_integer_value(json_object_get(p, "ms"));
    if (ms > 0)
        flow_sleep(ctx, (uint64_t)ms, NULL);
    else
        flow_done(ctx, NULL);
}

static int chain_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                      const char **action) {
    trace(shared, "done", "%s%d", flow_node_name(flow_ctx_node(ctx)),
          (int)json_integer_value(json_object_get(flow_ctx_params(ctx), "i")));
    return 0;
}

static const flow_node_ops_t chain_ops = {
    .prep = chain_prep, .exec = chain_exec, .post = chain_post};

/* A batch flow "each" over shared.sets whose sub-flow is a -> b. */
static flow_def_t *chain_def(flow_kind_t kind, flow_node_t **each_out) {
    flow_node_t *root;
    flow_def_t *def = def_new("chain", &root);
    flow_node_t *each = node_new(def, "each", kind, &sets_ops, NULL);
    flow_node_t *a = node_new(def, "a", FLOW_NODE, &chain_ops, NULL);
    flow_node_t *b = node_new(def, "b", FLOW_NODE, &chain_ops, NULL);
    flow_node_next(a, NULL, b);
    flow_node_set_start(each, a);
    flow_node_set_start(root, each);
    if (each_out != NULL)
        *each_out = each;
    return def;
}

START_TEST(test_a_batch_flows_sub_flow_runs_all_its_nodes_per_set) {
    flow_def_t *def = chain_def(FLOW_BATCH_FLOW, NULL);
    harness_run(&h, def, json_pack("{s:[{s:i}, {s:i}, {s:i}]}", "sets", "i", 0, "i", 1, "i", 2),
                NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(joined(out.shared, "trace"), "a0 b0 a1 b1 a2 b2");
    ck_assert_uint_eq(out.steps, 7);
    ck_assert_str_eq(out.history_nodes[6], "each");
    flow_def_unref(def);
}
END_TEST

START_TEST(test_an_error_in_a_batch_flows_sub_flow_fails_the_job) {
    flow_def_t *def = chain_def(FLOW_BATCH_FLOW, NULL);
    harness_run(
        &h, def,
        json_pack("{s:[{s:i}, {s:i, s:b}, {s:i}]}", "sets", "i", 0, "i", 1, "fail", 1, "i", 2),
        NULL, &out);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_EIO);
    ck_assert_str_eq(out.error_message, "set 1 failed in a");
    ck_assert_str_eq(out.error_node, "a");
    ck_assert_str_eq(joined(out.shared, "trace"), "a0 b0 a1"); /* set 2 never ran */
    flow_def_unref(def);
}
END_TEST

START_TEST(test_a_parallel_batch_flows_error_stops_the_other_runs) {
    flow_def_t *def = chain_def(FLOW_PARALLEL_BATCH_FLOW, NULL);
    harness_run(&h, def,
                json_pack("{s:[{s:i, s:i}, {s:i, s:i}, {s:i, s:b}]}", "sets", "i", 0, "ms", 50, "i",
                          1, "ms", 50, "i", 2, "fail", 1),
                NULL, &out);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_str_eq(out.error_message, "set 2 failed in a");
    ck_assert_str_eq(joined(out.shared, "trace"), "a0 a1 a2"); /* all three started at once */
    ck_assert_str_eq(joined(out.shared, "done"),
                     ""); /* the sleeping ones were canceled, no post ran */
    flow_def_unref(def);
}
END_TEST

/* A batch flow inside a batch flow: the inner one's sets come from its prep, merged over the params
 * the outer set gave it, so the leaves see both. */
static int inner_sets_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    *prep_res = json_pack("[{s:i}, {s:i}]", "i", 0, "i", 1);
    return 0;
}

static const flow_node_ops_t inner_sets_ops = {.prep = inner_sets_prep};

static flow_def_t *nested_def(flow_kind_t outer_kind, flow_kind_t inner_kind) {
    flow_node_t *root;
    flow_def_t *def = def_new("nested-batch", &root);
    flow_node_t *outer = node_new(def, "outer", outer_kind, &sets_ops, NULL);
    flow_node_t *inner = node_new(def, "inner", inner_kind, &inner_sets_ops, NULL);
    flow_node_t *leaf = node_new(def, "leaf", FLOW_NODE, &chain_ops, NULL);
    flow_node_set_start(inner, leaf);
    flow_node_set_start(outer, inner);
    flow_node_set_start(root, outer);
    return def;
}

START_TEST(test_a_batch_flow_inside_a_batch_flow) {
    flow_def_t *def = nested_def(FLOW_BATCH_FLOW, FLOW_BATCH_FLOW);
    harness_run(&h, def, json_pack("{s:[{s:i}, {s:i}]}", "sets", "o", 0, "o", 1), NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(joined(out.shared, "pairs"), "o0-i0 o0-i1 o1-i0 o1-i1");
    ck_assert_uint_eq(out.steps, 4 + 2 + 1); /* leaves, inner runs, outer */
    flow_def_unref(def);
}
END_TEST

/* The same nested in parallel: every pair runs once, in some order. */
START_TEST(test_parallel_batch_flows_nest) {
    flow_def_t *def = nested_def(FLOW_PARALLEL_BATCH_FLOW, FLOW_PARALLEL_BATCH_FLOW);
    harness_run(&h, def,
                json_pack("{s:[{s:i, s:i}, {s:i, s:i}, {s:i, s:i}]}", "sets", "o", 0, "ms", 5, "o",
                          1, "ms", 3, "o", 2, "ms", 1),
                NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    json_t *pairs = json_object_get(out.shared, "pairs");
    ck_assert_uint_eq(json_array_size(pairs), 6);
    for (int o = 0; o < 3; o++) {
        for (int i = 0; i < 2; i++) {
            char want[32];
            snprintf(want, sizeof want, "o%d-i%d", o, i);
            int found = 0;
            size_t k;
            json_t *v;
            json_array_foreach(pairs, k, v) found += strcmp(json_string_value(v), want) == 0;
            ck_assert_msg(found == 1, "%s ran %d times", want, found);
        }
    }
    ck_assert_uint_eq(out.steps, 6 + 3 + 1);
    flow_def_unref(def);
}
END_TEST

static Suite *batch_suite(void) {
    Suite *s = suite_create("batch");
    TCase *tc = tcase_create("batch");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_a_batch_node_runs_exec_per_item_in_order);
    tcase_add_test(tc, test_each_batch_item_has_its_own_retries);
    tcase_add_test(tc, test_no_items_is_an_empty_batch_and_a_non_array_an_error);
    tcase_add_test(tc, test_a_parallel_batch_keeps_to_its_limit_and_to_input_order);
    tcase_add_test(tc, test_a_parallel_batch_without_limit_starts_every_item_at_once);
    tcase_add_test(tc, test_parallel_items_keep_their_own_retry_state);
    tcase_add_test(tc, test_a_failing_item_cancels_the_others_in_flight);
    tcase_add_test(tc, test_a_batch_flow_runs_its_sub_flow_once_per_param_set);
    tcase_add_test(tc, test_a_parallel_batch_flow_runs_sub_flows_concurrently_within_its_limit);
    tcase_add_test(tc, test_batch_flows_want_objects);
    tcase_add_test(tc, test_a_parallel_batch_node_with_no_items);
    tcase_add_test(tc, test_a_batch_flow_whose_prep_gives_no_sets);
    tcase_add_test(tc, test_a_batch_flows_sub_flow_runs_all_its_nodes_per_set);
    tcase_add_test(tc, test_an_error_in_a_batch_flows_sub_flow_fails_the_job);
    tcase_add_test(tc, test_a_parallel_batch_flows_error_stops_the_other_runs);
    tcase_add_test(tc, test_a_batch_flow_inside_a_batch_flow);
    tcase_add_test(tc, test_parallel_batch_flows_nest);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return harness_main(batch_suite());
}
