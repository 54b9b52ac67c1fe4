/* test_engine.c: a node's lifecycle, actions and successors, params, nested flows, loops in constant
 * stack, history and events, and fair turns between jobs. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "support/harness.h"

/* A node that traces its callbacks into shared["trace"] and returns the action in its data. */
typedef struct script {
    const char *action;
    const char *result;
} script_t;

static int s_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    const char *name = flow_node_name(flow_ctx_node(ctx));
    trace(shared, "trace", "%s:prep", name);
    *prep_res = json_sprintf("%s-prep", name);
    return 0;
}

static void s_exec(flow_ctx_t *ctx, json_t *prep_res) {
    script_t *s = flow_ctx_node_data(ctx);
    const char *res = s && s->result ? s->result : json_string_value(prep_res);
    flow_done(ctx, json_sprintf("%s>exec", res));
}

static int s_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res, const char **action) {
    script_t *s = flow_ctx_node_data(ctx);
    trace(shared, "trace", "%s:post(%s,%s)", flow_node_name(flow_ctx_node(ctx)), json_string_value(prep_res),
          json_string_value(exec_res));
    *action = s ? s->action : NULL;
    return 0;
}

static const flow_node_ops_t script_ops = {.prep = s_prep, .exec = s_exec, .post = s_post};

static harness_t h;
static outcome_t out;

static void setup(void) {
    harness_init(&h, NULL);
    log_capture(1);
}

static void teardown(void) {
    outcome_clear(&out);
    harness_close(&h);
    log_capture(0);
}

START_TEST(test_prep_exec_post_in_order) {
    flow_node_t *root;
    flow_def_t *def = def_new("one", &root);
    flow_node_t *a = node_new(def, "a", FLOW_NODE, &script_ops, NULL);
    flow_node_set_start(root, a);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(joined(out.shared, "trace"), "a:prep a:post(a-prep,a-prep>exec)");
    ck_assert_uint_eq(out.steps, 1);
    ck_assert_str_eq(out.last_action, "default");
    flow_def_unref(def);
}
END_TEST

START_TEST(test_action_picks_the_successor) {
    script_t go_right = {.action = "right"};
    flow_node_t *root;
    flow_def_t *def = def_new("branch", &root);
    flow_node_t *a = node_new(def, "a", FLOW_NODE, &script_ops, &go_right);
    flow_node_t *left = node_new(def, "left", FLOW_NODE, &script_ops, NULL);
    flow_node_t *right = node_new(def, "right", FLOW_NODE, &script_ops, NULL);
    flow_node_next(a, "left", left);
    flow_node_next(a, "right", right);
    flow_node_set_start(root, a);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_str_eq(joined(out.shared, "trace"),
                     "a:prep a:post(a-prep,a-prep>exec) right:prep right:post(right-prep,right-prep>exec)");
    ck_assert_str_eq(log_text(), "");
    flow_def_unref(def);
}
END_TEST

START_TEST(test_no_action_means_default) {
    flow_node_t *root;
    flow_def_t *def = def_new("default", &root);
    flow_node_t *a = node_new(def, "a", FLOW_NODE, &script_ops, NULL);
    flow_node_t *b = node_new(def, "b", FLOW_NODE, &script_ops, NULL);
    ck_assert_int_eq(flow_node_next(a, NULL, b), 0);
    flow_node_set_start(root, a);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_uint_eq(out.steps, 2);
    ck_assert_str_eq(out.history_nodes[1], "b");
    flow_def_unref(def);
}
END_TEST

START_TEST(test_unknown_action_ends_the_flow_with_a_warning) {
    script_t say_y = {.action = "y"};
    flow_node_t *root;
    flow_def_t *def = def_new("ends", &root);
    flow_node_t *a = node_new(def, "a", FLOW_NODE, &script_ops, &say_y);
    flow_node_t *b = node_new(def, "b", FLOW_NODE, &script_ops, NULL);
    flow_node_next(a, "x", b);
    flow_node_next(a, "z", b);
    flow_node_set_start(root, a);
    harness_run(&h, def, NULL, &(flow_job_opts_t){.id = "job-1"}, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_uint_eq(out.steps, 1);
    ck_assert_str_eq(out.last_action, "y");
    ck_assert_str_eq(log_text(), "warn: job job-1: flow ends: action 'y' of node a not found in ['x', 'z']\n");
    flow_def_unref(def);
}
END_TEST

START_TEST(test_a_node_without_successors_ends_quietly) {
    script_t say_done = {.action = "done"};
    flow_node_t *root;
    flow_def_t *def = def_new("quiet", &root);
    flow_node_set_start(root, node_new(def, "a", FLOW_NODE, &script_ops, &say_done));
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_str_eq(out.last_action, "done");
    ck_assert_str_eq(log_text(), "");
    flow_def_unref(def);
}
END_TEST

START_TEST(test_a_second_successor_for_an_action_replaces_it_and_warns) {
    flow_node_t *root;
    flow_def_t *def = def_new("twice", &root);
    flow_node_t *a = node_new(def, "a", FLOW_NODE, &script_ops, NULL);
    flow_node_t *b = node_new(def, "b", FLOW_NODE, &script_ops, NULL);
    flow_node_t *c = node_new(def, "c", FLOW_NODE, &script_ops, NULL);
    flow_node_next(a, "go", b);
    ck_assert_str_eq(log_text(), "");
    ck_assert_int_eq(flow_node_next(a, "go", c), 0);
    ck_assert_str_eq(log_text(), "warn: flow twice: node a: overwriting successor for action 'go' (b -> c)\n");
    ck_assert_ptr_eq(flow_node_succ(a, "go"), c);
    ck_assert_uint_eq(flow_node_succ_count(a), 1);
    flow_def_unref(def);
}
END_TEST

/* ---- params ---- */

static int p_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    json_object_set_new(shared, flow_node_name(flow_ctx_node(ctx)), json_deep_copy(flow_ctx_params(ctx)));
    return 0;
}

static const flow_node_ops_t params_ops = {.prep = p_prep};

START_TEST(test_node_params_and_the_flows_params_over_them) {
    flow_node_t *root;
    flow_def_t *def = def_new("params", &root);
    flow_node_t *a = node_new(def, "a", FLOW_NODE, &params_ops, NULL);
    flow_node_t *bare = node_new(def, "bare", FLOW_NODE, &params_ops, NULL);
    flow_node_next(a, NULL, bare);
    json_t *own = json_pack("{s:s, s:s}", "model", "small", "lang", "en");
    json_t *flow_params = json_pack("{s:s}", "model", "large");
    json_t *job_params = json_pack("{s:i}", "n", 3);
    flow_node_set_params(a, own);
    flow_node_set_params(root, flow_params);
    flow_node_set_start(root, a);
    harness_run(&h, def, NULL, &(flow_job_opts_t){.params = job_params}, &out);
    json_t *want_a = json_pack("{s:s, s:s, s:i}", "model", "large", "lang", "en", "n", 3);
    json_t *want_bare = json_pack("{s:s, s:i}", "model", "large", "n", 3);
    ck_assert(json_equal(json_object_get(out.shared, "a"), want_a));
    ck_assert(json_equal(json_object_get(out.shared, "bare"), want_bare));
    json_decref(want_a);
    json_decref(want_bare);
    json_decref(own);
    json_decref(flow_params);
    json_decref(job_params);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_nested_flows_pass_their_params_down) {
    flow_node_t *root;
    flow_def_t *def = def_new("nest-params", &root);
    flow_node_t *inner = node_new(def, "inner", FLOW_FLOW, NULL, NULL);
    flow_node_t *leaf = node_new(def, "leaf", FLOW_NODE, &params_ops, NULL);
    flow_node_set_start(inner, leaf);
    flow_node_set_start(root, inner);
    json_t *inner_own = json_pack("{s:s, s:s}", "who", "inner", "keep", "yes");
    json_t *leaf_own = json_pack("{s:s, s:s}", "who", "leaf", "mine", "x");
    flow_node_set_params(inner, inner_own);
    flow_node_set_params(leaf, leaf_own);
    json_t *job_params = json_pack("{s:s}", "who", "job");
    harness_run(&h, def, NULL, &(flow_job_opts_t){.params = job_params}, &out);
    json_t *want = json_pack("{s:s, s:s, s:s}", "who", "job", "keep", "yes", "mine", "x");
    ck_assert(json_equal(json_object_get(out.shared, "leaf"), want));
    json_decref(want);
    json_decref(inner_own);
    json_decref(leaf_own);
    json_decref(job_params);
    flow_def_unref(def);
}
END_TEST

static int params_from_shared(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    *prep_res = json_pack("{s:O}", "who", json_object_get(shared, "name"));
    return 0;
}

static const flow_node_ops_t params_from_shared_ops = {.prep = params_from_shared};

START_TEST(test_a_flow_prep_object_gives_params_to_its_sub_graph) {
    flow_node_t *root;
    flow_def_t *def = def_new("prep-params", &root);
    flow_node_t *inner = node_new(def, "inner", FLOW_FLOW, &params_from_shared_ops, NULL);
    flow_node_t *leaf = node_new(def, "leaf", FLOW_NODE, &params_ops, NULL);
    flow_node_set_start(inner, leaf);
    flow_node_set_start(root, inner);
    json_t *own = json_pack("{s:s, s:s}", "who", "nobody", "keep", "yes");
    flow_node_set_params(inner, own);
    harness_run(&h, def, json_pack("{s:s}", "name", "ada"), NULL, &out);
    ck_assert_str_eq(dumps(json_object_get(out.shared, "leaf")), "{\"who\":\"ada\",\"keep\":\"yes\"}");
    json_decref(own);
    flow_def_unref(def);
}
END_TEST

/* ---- nested flows ---- */

static int f_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    trace(shared, "trace", "%s:prep", flow_node_name(flow_ctx_node(ctx)));
    return 0;
}

static int f_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res, const char **action) {
    trace(shared, "trace", "%s:post(%s)", flow_node_name(flow_ctx_node(ctx)), json_string_value(exec_res));
    *action = json_string_value(exec_res);
    return 0;
}

static const flow_node_ops_t flow_ops = {.prep = f_prep, .post = f_post};

START_TEST(test_a_flow_is_a_node_and_its_last_action_is_its_action) {
    script_t say_fin = {.action = "fin"};
    flow_node_t *root;
    flow_def_t *def = def_new("nested", &root);
    flow_node_t *inner = node_new(def, "inner", FLOW_FLOW, &flow_ops, NULL);
    flow_node_t *x = node_new(def, "x", FLOW_NODE, &script_ops, NULL);
    flow_node_t *y = node_new(def, "y", FLOW_NODE, &script_ops, &say_fin);
    flow_node_t *after = node_new(def, "after", FLOW_NODE, &script_ops, NULL);
    flow_node_t *other = node_new(def, "other", FLOW_NODE, &script_ops, NULL);
    flow_node_next(x, NULL, y);
    flow_node_set_start(inner, x);
    flow_node_next(inner, "fin", after);
    flow_node_next(inner, NULL, other);
    flow_node_set_start(root, inner);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(joined(out.shared, "trace"),
                     "inner:prep x:prep x:post(x-prep,x-prep>exec) y:prep y:post(y-prep,y-prep>exec) "
                     "inner:post(fin) after:prep after:post(after-prep,after-prep>exec)");
    /* History: the inner nodes at depth 1, the flow node and what follows it at depth 0. */
    ck_assert_uint_eq(out.history_count, 4);
    ck_assert_str_eq(out.history_nodes[0], "x");
    ck_assert_uint_eq(out.history[0].depth, 1);
    ck_assert_str_eq(out.history_nodes[2], "inner");
    ck_assert_str_eq(out.history_actions[2], "fin");
    ck_assert_uint_eq(out.history[2].depth, 0);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_a_flow_without_post_takes_the_last_action) {
    script_t say_fin = {.action = "fin"};
    flow_node_t *root;
    flow_def_t *def = def_new("nested-default", &root);
    flow_node_t *inner = node_new(def, "inner", FLOW_FLOW, NULL, NULL);
    flow_node_t *x = node_new(def, "x", FLOW_NODE, &script_ops, &say_fin);
    flow_node_t *after = node_new(def, "after", FLOW_NODE, &script_ops, NULL);
    flow_node_set_start(inner, x);
    flow_node_next(inner, "fin", after);
    flow_node_set_start(root, inner);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_str_eq(out.history_nodes[out.history_count - 1], "after");
    flow_def_unref(def);
}
END_TEST

/* ---- PocketFlow's semantics, line by line (pocketflow.py) ---- */

/* Flow._run returns self.post(shared, p, o): a root flow whose post says "finished" ends the job
 * with that action, not with its last node's. */
static int root_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                     const char **action) {
    trace(shared, "trace", "root:post(%s)", json_string_value(exec_res));
    *action = "finished";
    return 0;
}

static const flow_node_ops_t root_ops = {.post = root_post};

START_TEST(test_the_root_flows_post_gives_the_jobs_last_action) {
    script_t say_x = {.action = "x"};
    flow_def_t *def;
    flow_node_t *root;
    ck_assert_int_eq(flow_def_new("rooted", &def), 0);
    ck_assert_int_eq(flow_node_new(def, "flow", FLOW_FLOW, &root_ops, NULL, &root), 0);
    flow_def_set_root(def, root);
    flow_node_set_start(root, node_new(def, "a", FLOW_NODE, &script_ops, &say_x));
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(joined(out.shared, "trace"), "a:prep a:post(a-prep,a-prep>exec) root:post(x)");
    ck_assert_str_eq(out.last_action, "finished");
    ck_assert_str_eq(out.history_actions[0], "x"); /* the node's own step keeps its action */
    ck_assert_str_eq(log_text(), "");
    flow_def_unref(def);
}
END_TEST

/* The root flow's ctx data set in its prep is there in its post, as for any node (the top frame
 * gives its step a ctx only for those two calls), and the ctx of its post is a fresh one: no error
 * of its prep's. */
static int keep_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    (void)shared;
    (void)prep_res;
    static const char marker[] = "from prep";
    flow_ctx_set_data(ctx, (void *)marker);
    return 0;
}

static int keep_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                     const char **action) {
    (void)prep_res;
    (void)exec_res;
    const char *data = flow_ctx_data(ctx);
    json_object_set_new(shared, "root_data", data ? json_string(data) : json_null());
    char visit[16];
    int n = flow_ctx_visit(ctx, visit, sizeof visit);
    json_object_set_new(shared, "root_visit", json_integer(n));
    *action = "kept";
    return 0;
}

static const flow_node_ops_t keep_ops = {.prep = keep_prep, .post = keep_post};

START_TEST(test_the_root_flows_ctx_data_goes_from_prep_to_post) {
    flow_def_t *def;
    flow_node_t *root;
    ck_assert_int_eq(flow_def_new("kept", &def), 0);
    ck_assert_int_eq(flow_node_new(def, "flow", FLOW_FLOW, &keep_ops, NULL, &root), 0);
    flow_def_set_root(def, root);
    flow_node_set_start(root, node_new(def, "a", FLOW_NODE, &script_ops, NULL));
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(json_string_value(json_object_get(out.shared, "root_data")), "from prep");
    ck_assert_int_eq(json_integer_value(json_object_get(out.shared, "root_visit")), 1); /* "1" */
    ck_assert_str_eq(out.last_action, "kept");
    flow_def_unref(def);
}
END_TEST

/* BaseNode.run warns "Node won't run successors. Use Flow." and runs none: a job is the run of
 * its root flow, so successors given to the root flow neither run nor count as steps. */
START_TEST(test_the_root_flows_successors_do_not_run) {
    flow_node_t *root;
    flow_def_t *def = def_new("root-next", &root);
    flow_node_t *a = node_new(def, "a", FLOW_NODE, &script_ops, NULL);
    flow_node_t *after = node_new(def, "after", FLOW_NODE, &script_ops, NULL);
    flow_node_set_start(root, a);
    ck_assert_int_eq(flow_node_next(root, NULL, after), 0);
    harness_run(&h, def, NULL, &(flow_job_opts_t){.id = "j7", .max_steps = 1}, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(joined(out.shared, "trace"), "a:prep a:post(a-prep,a-prep>exec)");
    ck_assert_uint_eq(out.steps, 1);
    ck_assert_str_eq(out.last_action, "default");
    ck_assert_str_eq(log_text(),
                     "warn: job j7: the root flow flow has successors; they do not run (a "
                     "job ends with its root flow: put it in another flow to run them)\n");
    flow_def_unref(def);
}
END_TEST

/* get_next_node: curr.successors.get(action or "default"): "" is "default", without a warning. */
START_TEST(test_an_empty_action_is_default) {
    script_t say_empty = {.action = ""};
    flow_node_t *root;
    flow_def_t *def = def_new("empty-action", &root);
    flow_node_t *a = node_new(def, "a", FLOW_NODE, &script_ops, &say_empty);
    flow_node_t *b = node_new(def, "b", FLOW_NODE, &script_ops, NULL);
    flow_node_next(a, NULL, b);
    ck_assert_int_eq(flow_node_next(a, "", b),
                     FLOW_EINVAL); /* a successor for "" could never run */
    flow_node_set_start(root, a);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_uint_eq(out.steps, 2);
    ck_assert_str_eq(out.history_actions[0], "default");
    ck_assert_str_eq(out.history_nodes[1], "b");
    ck_assert_str_eq(log_text(), "");
    flow_def_unref(def);
}
END_TEST

/* A flow node followed by another flow node: the first's last action leads to the second, each runs
 * its own sub-graph, and both are steps at depth 0 with their nodes at depth 1. */
START_TEST(test_a_flow_node_followed_by_another_flow_node) {
    script_t say_on = {.action = "on"};
    flow_node_t *root;
    flow_def_t *def = def_new("two-flows", &root);
    flow_node_t *f1 = node_new(def, "f1", FLOW_FLOW, &flow_ops, NULL);
    flow_node_t *f2 = node_new(def, "f2", FLOW_FLOW, &flow_ops, NULL);
    flow_node_t *x = node_new(def, "x", FLOW_NODE, &script_ops, &say_on);
    flow_node_t *y = node_new(def, "y", FLOW_NODE, &script_ops, NULL);
    flow_node_set_start(f1, x);
    flow_node_set_start(f2, y);
    flow_node_next(f1, "on", f2);
    flow_node_set_start(root, f1);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(joined(out.shared, "trace"),
                     "f1:prep x:prep x:post(x-prep,x-prep>exec) f1:post(on) "
                     "f2:prep y:prep y:post(y-prep,y-prep>exec) f2:post(default)");
    ck_assert_uint_eq(out.history_count, 4);
    const char *nodes[] = {"x", "f1", "y", "f2"};
    const unsigned depths[] = {1, 0, 1, 0};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_str_eq(out.history_nodes[i], nodes[i]);
        ck_assert_uint_eq(out.history[i].depth, depths[i]);
    }
    ck_assert_str_eq(out.last_action, "default");
    flow_def_unref(def);
}
END_TEST

/* ---- loops ---- */

/* The seed's recipe flow: fetch -> suggest -> approve; "retry" goes back to suggest. */
static int approve_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                        const char **action) {
    json_int_t asked = json_integer_value(json_object_get(shared, "asked")) + 1;
    json_object_set_new(shared, "asked", json_integer(asked));
    *action = asked < 3 ? "retry" : "accept";
    return 0;
}

static const flow_node_ops_t approve_ops = {.post = approve_post};

START_TEST(test_a_node_can_send_control_back_to_an_earlier_node) {
    script_t say_suggest = {.action = "suggest"};
    flow_node_t *root;
    flow_def_t *def = def_new("recipe", &root);
    flow_node_t *fetch = node_new(def, "fetch", FLOW_NODE, &script_ops, &say_suggest);
    flow_node_t *suggest = node_new(def, "suggest", FLOW_NODE, NULL, NULL);
    flow_node_t *approve = node_new(def, "approve", FLOW_NODE, &approve_ops, NULL);
    flow_node_t *finalize = node_new(def, "finalize", FLOW_NODE, NULL, NULL);
    flow_node_next(fetch, "suggest", suggest);
    flow_node_next(suggest, NULL, approve);
    flow_node_next(approve, "accept", finalize);
    flow_node_next(approve, "retry", suggest);
    flow_node_set_start(root, fetch);
    harness_run(&h, def, NULL, NULL, &out);
    const char *want[] = {"fetch", "suggest", "approve", "suggest", "approve", "suggest", "approve", "finalize"};
    ck_assert_uint_eq(out.history_count, 8);
    for (size_t i = 0; i < 8; i++)
        ck_assert_str_eq(out.history_nodes[i], want[i]);
    ck_assert_str_eq(out.history_actions[4], "retry");
    ck_assert_str_eq(out.history_actions[6], "accept");
    flow_def_unref(def);
}
END_TEST

/* 1,000,000 steps of a node looping to itself, on a thread whose stack is far too small for any
 * recursion per step: it finishes only if the engine runs the loop in constant stack. */
static unsigned long loop_target;

static int c_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res, const char **action) {
    json_int_t n = json_integer_value(json_object_get(shared, "n")) + 1;
    json_object_set_new(shared, "n", json_integer(n));
    *action = (unsigned long)n < loop_target ? "again" : "done";
    return 0;
}

static const flow_node_ops_t counter_ops = {.post = c_post};

static void *run_long_loop(void *arg) {
    outcome_t *o = arg;
    harness_t th;
    harness_init(&th, NULL);
    flow_node_t *root;
    flow_def_t *def = def_new("loop", &root);
    flow_node_t *count = node_new(def, "count", FLOW_NODE, &counter_ops, NULL);
    flow_node_next(count, "again", count);
    flow_node_set_start(root, count);
    harness_run(&th, def, json_pack("{s:i}", "n", 0), NULL, o);
    flow_def_unref(def);
    harness_close(&th);
    return NULL;
}

START_TEST(test_a_million_steps_run_in_constant_stack) {
    loop_target = getenv("FLOW_TEST_SMALL") ? 100000 : 1000000;
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    /* Sanitizers make frames bigger; either way this is a few hundred frames, not a million. */
    pthread_attr_setstacksize(&attr, 1u << 20);
    ck_assert_int_eq(pthread_create(&t, &attr, run_long_loop, &out), 0);
    pthread_join(t, NULL);
    pthread_attr_destroy(&attr);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_int_eq(json_integer_value(json_object_get(out.shared, "n")), (json_int_t)loop_target);
    ck_assert_uint_eq(out.steps, loop_target);
}
END_TEST

/* ---- history and events ---- */

START_TEST(test_history_keeps_the_last_entries_and_counts_them_all) {
    harness_t small;
    harness_init(&small, &(flow_engine_opts_t){.history_limit = 5});
    loop_target = 20;
    flow_node_t *root;
    flow_def_t *def = def_new("twenty", &root);
    flow_node_t *count = node_new(def, "count", FLOW_NODE, &counter_ops, NULL);
    flow_node_next(count, "again", count);
    flow_node_set_start(root, count);
    harness_run(&small, def, NULL, NULL, &out);
    ck_assert_uint_eq(out.history_count, 5);
    ck_assert_uint_eq(out.totals.steps, 20);
    ck_assert_uint_eq(out.totals.dropped, 15);
    ck_assert_uint_eq(out.totals.failed, 0);
    for (size_t i = 0; i < 5; i++) {
        const flow_step_t *st = &out.history[i];
        ck_assert_uint_eq(st->seq, 16 + i);
        ck_assert_str_eq(st->node, "count");
        ck_assert_str_eq(st->action, i < 4 ? "again" : "done");
        ck_assert_uint_eq(st->tries, 1);
        ck_assert_uint_le(st->start_us, st->end_us);
        if (i > 0)
            ck_assert_uint_le(out.history[i - 1].end_us, st->start_us);
    }
    flow_def_unref(def);
    outcome_clear(&out);
    harness_close(&small);
}
END_TEST

START_TEST(test_events_tell_status_changes_and_steps_in_order) {
    script_t say_next = {.action = "next"};
    flow_node_t *root;
    flow_def_t *def = def_new("events", &root);
    flow_node_t *a = node_new(def, "a", FLOW_NODE, &script_ops, &say_next);
    flow_node_t *b = node_new(def, "b", FLOW_NODE, &script_ops, NULL);
    flow_node_next(a, "next", b);
    flow_node_set_start(root, a);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_str_eq(dumps(out.events),
                     "[\"status:running\",\"step:a:next\",\"step:b:default\",\"status:succeeded\"]");
    flow_def_unref(def);
}
END_TEST

static int bad_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res, const char **action) {
    return flow_error(ctx, FLOW_EINVAL, "no recipe for %s", "tofu");
}

static const flow_node_ops_t bad_post_ops = {.post = bad_post};

START_TEST(test_a_failing_post_fails_the_job_and_is_in_the_history) {
    flow_node_t *root;
    flow_def_t *def = def_new("bad", &root);
    flow_node_t *a = node_new(def, "a", FLOW_NODE, &script_ops, NULL);
    flow_node_t *b = node_new(def, "b", FLOW_NODE, &bad_post_ops, NULL);
    flow_node_t *never = node_new(def, "never", FLOW_NODE, &script_ops, NULL);
    flow_node_next(a, NULL, b);
    flow_node_next(b, NULL, never);
    flow_node_set_start(root, a);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_EINVAL);
    ck_assert_str_eq(out.error_message, "no recipe for tofu");
    ck_assert_str_eq(out.error_node, "b");
    ck_assert_uint_eq(out.history_count, 2);
    ck_assert_int_eq(out.history[1].error, FLOW_EINVAL);
    ck_assert_ptr_null(out.history[1].action);
    ck_assert_uint_eq(out.totals.failed, 1);
    ck_assert_str_eq(dumps(out.events),
                     "[\"status:running\",\"step:a:default\",\"step:b:-\",\"status:failed\"]");
    flow_def_unref(def);
}
END_TEST

START_TEST(test_one_definition_serves_many_jobs_at_once) {
    script_t say_next = {.action = "next"};
    flow_node_t *root;
    flow_def_t *def = def_new("shared-def", &root);
    flow_node_t *a = node_new(def, "a", FLOW_NODE, &script_ops, &say_next);
    flow_node_t *b = node_new(def, "b", FLOW_NODE, &script_ops, NULL);
    flow_node_next(a, "next", b);
    flow_node_set_start(root, a);
    static outcome_t outs[50];
    for (int i = 0; i < 50; i++)
        harness_start(&h, def, json_pack("{s:i}", "i", i), NULL, &outs[i]);
    ck_assert_uint_eq(flow_engine_job_count(h.eng), 50);
    uv_run(&h.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(outs[i].status, FLOW_SUCCEEDED);
        ck_assert_int_eq(json_integer_value(json_object_get(outs[i].shared, "i")), i);
        ck_assert_uint_eq(json_array_size(json_object_get(outs[i].shared, "trace")), 4);
        outcome_clear(&outs[i]);
    }
    ck_assert_uint_eq(flow_engine_job_count(h.eng), 0);
    flow_def_unref(def);
}
END_TEST

/* ---- fair turns ---- */

/* Jobs whose every step takes 3 ms of the loop's time, in post or in the job's event callback (as a
 * checkpoint of a large store does): the engine must give the loop back after each such step, so
 * that timers, I/O, other jobs and commands (a cancel) get their turn. A check handle counts the
 * loop's iterations. */
typedef struct slow_job {
    flow_job_t *job;
    int spin_in_event;
    unsigned steps;
    unsigned step_iteration;    /* the iteration of its latest step */
    unsigned same_iteration;    /* steps that ran in the iteration of the step before */
    int done;
    flow_status_t status;
} slow_job_t;

static unsigned iterations;
static slow_job_t *to_cancel, *bystander;
static unsigned cancel_at, bystander_steps_at_cancel, bystander_steps_at_end;

static void spin_ms(unsigned ms) {
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    while (uv_hrtime() < end) {
    }
}

static int slow_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                     const char **action) {
    slow_job_t *sj = flow_job_data(flow_ctx_job(ctx));
    if (!sj->spin_in_event)
        spin_ms(3);
    return 0;
}

static const flow_node_ops_t slow_ops = {.post = slow_post};

static void slow_event(flow_job_t *job, const flow_event_t *ev, void *data) {
    slow_job_t *sj = data;
    if (ev->type != FLOW_EVENT_STEP)
        return;
    if (sj->steps > 0 && sj->step_iteration == iterations)
        sj->same_iteration++;
    sj->steps++;
    sj->step_iteration = iterations;
    if (sj->spin_in_event)
        spin_ms(3);
}

static void slow_done(flow_job_t *job, void *data) {
    slow_job_t *sj = data;
    sj->done = 1;
    sj->status = flow_job_status(job);
    if (sj == to_cancel && bystander != NULL)
        bystander_steps_at_end = bystander->steps;
}

static void on_iteration(uv_check_t *c) {
    iterations++;
    if (to_cancel != NULL && iterations == cancel_at) {
        bystander_steps_at_cancel = bystander->steps;
        ck_assert_int_eq(flow_job_cancel(to_cancel->job), 0);
    }
    (void)c;
}

static void slow_start(flow_def_t *def, slow_job_t *sj, int spin_in_event) {
    memset(sj, 0, sizeof *sj);
    sj->spin_in_event = spin_in_event;
    flow_job_opts_t o = {.on_event = slow_event, .on_done = slow_done, .data = sj};
    ck_assert_int_eq(flow_job_start(h.eng, def, NULL, &o, &sj->job), 0);
}

static flow_def_t *slow_loop(void) {
    flow_node_t *root;
    flow_def_t *def = def_new("slow", &root);
    flow_node_t *n = node_new(def, "slow", FLOW_NODE, &slow_ops, NULL);
    flow_node_next(n, NULL, n);
    flow_node_set_start(root, n);
    return def;
}

static uv_check_t check; /* closed by the test; gone in the teardown's run */

START_TEST(test_a_slow_step_gives_the_loop_back) {
    slow_job_t a, b;
    flow_def_t *def = slow_loop();
    iterations = 0;
    to_cancel = bystander = NULL;
    uv_check_init(&h.loop, &check);
    uv_check_start(&check, on_iteration);
    slow_start(def, &a, 0);
    slow_start(def, &b, 1);
    while (a.steps < 5 || b.steps < 5)
        uv_run(&h.loop, UV_RUN_ONCE);
    /* each step in a loop iteration of its own, the two jobs taking turns */
    ck_assert_uint_eq(a.same_iteration, 0);
    ck_assert_uint_eq(b.same_iteration, 0);
    ck_assert_uint_le(a.steps, b.steps + 1);
    ck_assert_uint_le(b.steps, a.steps + 1);
    flow_job_cancel(a.job);
    flow_job_cancel(b.job);
    while (!a.done || !b.done)
        uv_run(&h.loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&check, NULL);
    uv_run(&h.loop, UV_RUN_NOWAIT);
    flow_def_unref(def);
}
END_TEST

/* A cancel ends the job before any other job takes another turn: whoever canceled it waits. */
START_TEST(test_a_canceled_job_ends_before_the_others_go_on) {
    slow_job_t a, b;
    flow_def_t *def = slow_loop();
    iterations = 0;
    uv_check_init(&h.loop, &check);
    uv_check_start(&check, on_iteration);
    slow_start(def, &a, 1);
    slow_start(def, &b, 1);
    to_cancel = &a;
    bystander = &b;
    cancel_at = 6;
    unsigned a_steps = 0;
    while (!a.done) {
        uv_run(&h.loop, UV_RUN_ONCE);
        if (iterations < cancel_at)
            a_steps = a.steps;
    }
    ck_assert_int_eq(a.status, FLOW_CANCELED);
    ck_assert_uint_eq(a.steps, a_steps); /* no step after the cancel */
    ck_assert_uint_eq(bystander_steps_at_end, bystander_steps_at_cancel);
    to_cancel = bystander = NULL;
    flow_job_cancel(b.job);
    while (!b.done)
        uv_run(&h.loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&check, NULL);
    uv_run(&h.loop, UV_RUN_NOWAIT);
    flow_def_unref(def);
}
END_TEST

static void count_fire(uv_timer_t *t) {
    (*(int *)t->data)++;
}

/* flow_timer_at_wall: a time far ahead waits at most max_ms (to look at the wall clock again), a
 * near one about its distance, one that has passed fires at once. */
START_TEST(test_a_wall_clock_timer_waits_at_most_its_cap) {
    uv_timer_t t;
    int fired = 0;
    ck_assert_int_eq(uv_timer_init(&h.loop, &t), 0);
    t.data = &fired;
    uv_update_time(&h.loop);
    ck_assert_int_eq(flow_timer_at_wall(&t, count_fire, flow_wall_us() + 600000000u, 60000), 0);
    ck_assert_uint_eq(uv_timer_get_due_in(&t), 60000);
    ck_assert_int_eq(flow_timer_at_wall(&t, count_fire, flow_wall_us() + 30000000u, 60000), 0);
    ck_assert_uint_le(uv_timer_get_due_in(&t), 30000);
    ck_assert_uint_gt(uv_timer_get_due_in(&t), 20000);
    ck_assert_int_eq(flow_timer_at_wall(&t, count_fire, flow_wall_us() - 1000000u, 60000), 0);
    ck_assert_uint_eq(uv_timer_get_due_in(&t), 0);
    uv_run(&h.loop, UV_RUN_ONCE);
    ck_assert_int_eq(fired, 1);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&h.loop, UV_RUN_NOWAIT);
}
END_TEST

static Suite *engine_suite(void) {
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("engine");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_prep_exec_post_in_order);
    tcase_add_test(tc, test_action_picks_the_successor);
    tcase_add_test(tc, test_no_action_means_default);
    tcase_add_test(tc, test_unknown_action_ends_the_flow_with_a_warning);
    tcase_add_test(tc, test_a_node_without_successors_ends_quietly);
    tcase_add_test(tc, test_a_second_successor_for_an_action_replaces_it_and_warns);
    tcase_add_test(tc, test_node_params_and_the_flows_params_over_them);
    tcase_add_test(tc, test_nested_flows_pass_their_params_down);
    tcase_add_test(tc, test_a_flow_prep_object_gives_params_to_its_sub_graph);
    tcase_add_test(tc, test_a_flow_is_a_node_and_its_last_action_is_its_action);
    tcase_add_test(tc, test_a_flow_without_post_takes_the_last_action);
    tcase_add_test(tc, test_the_root_flows_post_gives_the_jobs_last_action);
    tcase_add_test(tc, test_the_root_flows_ctx_data_goes_from_prep_to_post);
    tcase_add_test(tc, test_the_root_flows_successors_do_not_run);
    tcase_add_test(tc, test_an_empty_action_is_default);
    tcase_add_test(tc, test_a_flow_node_followed_by_another_flow_node);
    tcase_add_test(tc, test_a_node_can_send_control_back_to_an_earlier_node);
    tcase_add_test(tc, test_a_million_steps_run_in_constant_stack);
    tcase_add_test(tc, test_history_keeps_the_last_entries_and_counts_them_all);
    tcase_add_test(tc, test_events_tell_status_changes_and_steps_in_order);
    tcase_add_test(tc, test_a_failing_post_fails_the_job_and_is_in_the_history);
    tcase_add_test(tc, test_one_definition_serves_many_jobs_at_once);
    tcase_add_test(tc, test_a_slow_step_gives_the_loop_back);
    tcase_add_test(tc, test_a_canceled_job_ends_before_the_others_go_on);
    tcase_add_test(tc, test_a_wall_clock_timer_waits_at_most_its_cap);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return harness_main(engine_suite());
}
