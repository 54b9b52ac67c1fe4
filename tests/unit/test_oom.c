/* test_oom.c: out of memory at every allocation. The k-th allocation (libflow's and jansson's) fails,
 * for k = 1, 2, ... until a whole run needs no failure: each run must end with an error code or a
 * failed job, never a crash, a hang or a leak (the sanitizer and valgrind builds check the leaks). */
#include <stdlib.h>
#include <string.h>

#include "flow/doc.h"
#include "flow/nodes.h"
#include "support/harness.h"

static long countdown = -1; /* allocations left before one fails; -1: never fail */
static long failures;

static int should_fail(void) {
    if (countdown < 0)
        return 0;
    if (countdown == 0) {
        failures++;
        return 1;
    }
    countdown--;
    return 0;
}

static void *t_malloc(size_t n) {
    return should_fail() ? NULL : malloc(n);
}

static void *t_realloc(void *p, size_t n) {
    return should_fail() ? NULL : realloc(p, n);
}

static void *t_calloc(size_t c, size_t n) {
    return should_fail() ? NULL : calloc(c, n);
}

static void t_free(void *p) {
    free(p);
}

/* A little of everything: a sub-flow, a parallel batch with sleeps, params, a retry. */
static int list_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    *prep_res = json_pack("[iii]", 1, 2, 3);
    return *prep_res ? 0 : flow_error(ctx, FLOW_ENOMEM, "no memory for items");
}

static void nap_exec(flow_ctx_t *ctx, json_t *item) {
    if (flow_ctx_attempt(ctx) == 0 && json_integer_value(item) == 2) {
        flow_fail(ctx, FLOW_EIO, "first try of %d fails", (int)json_integer_value(item));
        return;
    }
    if (flow_sleep(ctx, 1, json_integer(json_integer_value(item) * 10)) < 0)
        flow_fail(ctx, FLOW_ENOMEM, "no memory to sleep");
}

static int sum_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res, const char **action) {
    if (json_object_set_new(shared, "sum", json_integer((json_int_t)json_array_size(exec_res))) < 0)
        return flow_error(ctx, FLOW_ENOMEM, "no memory for the sum");
    return 0;
}

static const flow_node_ops_t list_ops = {.prep = list_prep, .exec = nap_exec, .post = sum_post};

static int build(flow_def_t **out) {
    flow_def_t *def;
    flow_node_t *root, *inner, *batch, *tail;
    int rc = flow_def_new("oom", &def);
    if (rc < 0)
        return rc;
    json_t *params = json_pack("{s:s}", "k", "v");
    if ((rc = flow_node_new(def, "flow", FLOW_FLOW, NULL, NULL, &root)) < 0 ||
        (rc = flow_node_new(def, "inner", FLOW_FLOW, NULL, NULL, &inner)) < 0 ||
        (rc = flow_node_new(def, "batch", FLOW_PARALLEL_BATCH, &list_ops, NULL, &batch)) < 0 ||
        (rc = flow_node_new(def, "tail", FLOW_NODE, NULL, NULL, &tail)) < 0 ||
        (rc = flow_node_set_retry(batch, 2, 1)) < 0 || (rc = flow_node_set_start(inner, batch)) < 0 ||
        (rc = flow_node_next(inner, NULL, tail)) < 0 || (rc = flow_node_set_start(root, inner)) < 0 ||
        (rc = flow_node_set_params(batch, params)) < 0 || (rc = flow_def_set_root(def, root)) < 0) {
        json_decref(params);
        flow_def_unref(def);
        return rc < 0 ? rc : FLOW_ENOMEM;
    }
    json_decref(params);
    *out = def;
    return 0;
}

static void done_cb(flow_job_t *job, void *data) {
    *(flow_status_t *)data = flow_job_status(job);
}

/* One run with the k-th allocation failing; returns 1 when no allocation failed. */
static int run_once(long k) {
    uv_loop_t loop;
    flow_engine_t *eng = NULL;
    flow_def_t *def = NULL;
    flow_status_t status = FLOW_QUEUED;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    failures = 0;
    countdown = k;
    if (flow_engine_new(&loop, NULL, &eng) == 0) {
        if (build(&def) == 0) {
            json_t *shared = json_object();
            flow_job_opts_t opts = {.id = "oom", .on_done = done_cb, .data = &status};
            if (flow_job_start(eng, def, shared, &opts, NULL) == 0) {
                uv_run(&loop, UV_RUN_DEFAULT);
                ck_assert(flow_status_final(status));
                if (failures == 0)
                    ck_assert_int_eq(status, FLOW_SUCCEEDED);
            }
            flow_def_unref(def);
        }
        flow_engine_close(eng);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    countdown = -1;
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    return failures == 0;
}

START_TEST(test_every_allocation_can_fail) {
    flow_set_allocator(t_malloc, t_realloc, t_calloc, t_free);
    json_set_alloc_funcs(t_malloc, t_free);
    long k = 0;
    while (!run_once(k))
        k++;
    ck_assert_int_gt(k, 20); /* the run really allocates, so the loop really covered failures */
    flow_set_allocator(malloc, realloc, calloc, free);
    json_set_alloc_funcs(malloc, free);
}
END_TEST

/* A document with a bit of every part of the loader and of the built-in types. */
static const char *doc_text =
    "{\"name\": \"oomdoc\", \"params\": {\"api\": \"http://127.0.0.1:1\"}, \"start\": \"a\","
    " \"outbound\": {\"allow\": [\"127.0.0.1:1\", \"10.0.0.0/8\", \"[::1]:9\", \"*.example.com:443\"]}, \"nodes\": {"
    " \"a\": {\"type\": \"set\", \"params\": {\"/x\": \"{{$params/api}}/{{$shared/k}}\", \"/y/{{$shared/k}}\": 1},"
    "        \"next\": {\"default\": \"b\"}},"
    " \"b\": {\"type\": \"choice\", \"params\": {\"value\": \"$shared/k\", \"cases\": [{\"matches\": \"^(v|w)+$\", \"action\": \"go\"},"
    "        {\"eq\": \"v\", \"action\": \"go\"}]}, \"next\": {\"go\": \"c\", \"default\": null}},"
    " \"c\": {\"type\": \"map\", \"items\": \"$shared/list\", \"limit\": 2,"
    "        \"node\": {\"type\": \"sleep\", \"params\": {\"seconds\": \"$item\"}}, \"out\": \"/slept\","
    "        \"next\": {\"default\": \"d\"}},"
    " \"d\": {\"type\": \"flow\", \"flow\": \"sub\", \"params\": {\"n\": \"$shared/k\"}, \"next\": {\"default\": \"e\"}},"
    " \"e\": {\"type\": \"input\", \"timeout\": 1, \"params\": {\"prompt\": \"ok {{$shared/k}}?\","
    "        \"schema\": {\"type\": \"string\", \"pattern\": \"^o\"}, \"timeout_action\": \"late\"}, \"next\": {\"late\": null}}},"
    " \"flows\": {\"sub\": {\"start\": \"s\", \"nodes\": {\"s\": {\"type\": \"sleep\", \"params\": {\"seconds\": 0},"
    "        \"out\": \"/sub/{{$params/n}}\"}}}}}";

/* Lua: a chunk, inline hooks, an exec, conversions both ways, a log line. */
static const char lua_text[] =
    "{\"name\": \"oomlua\", \"start\": \"a\", \"code\": [\"local seen = {'x'}\","
    " \"function count(shared) shared.n = (shared.n or 0) + #seen return 'again' end\"],"
    " \"nodes\": {"
    " \"a\": {\"type\": \"noop\", \"prep\": \"return shared.list\", \"post\": \"count\","
    "        \"next\": {\"again\": \"b\"}},"
    " \"b\": {\"type\": \"lua\", \"params\": {\"l\": \"$shared/list\"}, \"out\": \"/out\","
    "        \"exec\": [\"log('sum of', #prep_res.l)\", \"return {total = #prep_res.l, tags = json.array({'a'}),\","
    "                  \" at = json.decode('{\\\"k\\\": [1, 2.5]}')}\"],"
    "        \"fallback\": \"return 'recovered'\"}}}";

/* One load-and-run of the document (text) with the k-th allocation failing; 1 when none failed. */
static int run_text_once(const char *text, long k) {
    uv_loop_t loop;
    flow_engine_t *eng = NULL;
    flow_registry_t *reg = NULL;
    flow_def_t *def = NULL;
    flow_nodes_env_t env = {0};
    flow_status_t status = FLOW_QUEUED;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    failures = 0;
    countdown = k;
    if (flow_registry_new(&reg) == 0 && flow_nodes_register(reg, &env) == 0 &&
        flow_doc_load_text(reg, text, strlen(text), "oom.json", &def, NULL) == 0 &&
        flow_engine_new(&loop, NULL, &eng) == 0) {
        long paused = countdown; /* the test's own input is not under test */
        countdown = -1;
        json_t *shared = json_pack("{s:s, s:[f,f]}", "k", "v", "list", 0.001, 0.002);
        countdown = paused;
        flow_job_opts_t opts = {.id = "oom", .on_done = done_cb, .data = &status};
        if (shared != NULL && flow_job_start(eng, def, shared, &opts, NULL) == 0) {
            uv_run(&loop, UV_RUN_DEFAULT);
            ck_assert_msg(flow_status_final(status), "allocation %ld failed: the job never ended", k);
            if (failures == 0)
                ck_assert_int_eq(status, FLOW_SUCCEEDED);
        }
    }
    if (eng != NULL) {
        flow_engine_close(eng);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    flow_def_unref(def);
    flow_registry_free(reg);
    countdown = -1;
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    return failures == 0;
}

START_TEST(test_loading_and_running_a_document_survives_every_failed_allocation) {
    flow_set_allocator(t_malloc, t_realloc, t_calloc, t_free);
    json_set_alloc_funcs(t_malloc, t_free);
    long k = 0;
    while (!run_text_once(doc_text, k))
        k++;
    ck_assert_int_gt(k, 200);
    flow_set_allocator(malloc, realloc, calloc, free);
    json_set_alloc_funcs(malloc, free);
}
END_TEST

/* The Lua state allocates through libflow's allocator too: a failed allocation anywhere in setting
 * it up, loading the code or a call is a clean error. Under valgrind (FLOW_TEST_SMALL) every 7th. */
START_TEST(test_a_document_with_lua_survives_every_failed_allocation) {
    flow_set_allocator(t_malloc, t_realloc, t_calloc, t_free);
    json_set_alloc_funcs(t_malloc, t_free);
    long k = 0, step = getenv("FLOW_TEST_SMALL") ? 7 : 1;
    while (!run_text_once(lua_text, k))
        k += step;
    ck_assert_int_gt(k, 500);
    flow_set_allocator(malloc, realloc, calloc, free);
    json_set_alloc_funcs(malloc, free);
}
END_TEST

START_TEST(test_the_allocator_hook_wants_all_four) {
    ck_assert_int_eq(flow_set_allocator(malloc, NULL, calloc, free), FLOW_EINVAL);
}
END_TEST

static Suite *oom_suite(void) {
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("oom");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_every_allocation_can_fail);
    tcase_add_test(tc, test_loading_and_running_a_document_survives_every_failed_allocation);
    tcase_add_test(tc, test_a_document_with_lua_survives_every_failed_allocation);
    tcase_add_test(tc, test_the_allocator_hook_wants_all_four);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return harness_main(oom_suite());
}
