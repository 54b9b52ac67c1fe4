/* test_lua.c: Lua node logic through flowd: a flow whose hooks are Lua, PUT with its code inline
 * and shown by GET; NAME.lua beside NAME.json in --flows DIR (and a broken one stopping the start
 * at its line); log lines in the history and the event stream; an endless loop and a memory bomb
 * stopped by their limits while another job runs on; runtime errors that name the node, the hook
 * and the line; a document with Lua problems refused with every one of them; a flow's code back
 * from the store after kill -9. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e.h"
#include "support/mock.h"

static const char *const json_ct[] = {"Content-Type: application/json", NULL};
static e2e_server_t srv;
static mock_t *mock;
static char llm_url[128];

/* flowd with the mock as its model, and limits small enough for a slow build (valgrind) to reach
 * the budget well before the time limit. */
static void start(const char *flows_dir) {
    ck_assert_int_eq(mock_start(NULL, &mock), 0);
    snprintf(llm_url, sizeof llm_url, "http://127.0.0.1:%u/v1", (unsigned)mock_port(mock));
    if (flows_dir != NULL)
        e2e_start(&srv, "--llm-base-url", llm_url, "--llm-model", "mock", "--lua-budget", "2000000",
                  "--lua-time", "10m", "--lua-memory", "8MiB", "--max-shared", "64MiB", "--flows", flows_dir,
                  NULL);
    else
        e2e_start(&srv, "--llm-base-url", llm_url, "--llm-model", "mock", "--lua-budget", "2000000",
                  "--lua-time", "10m", "--lua-memory", "8MiB", "--max-shared", "64MiB", NULL);
}

static void stop_all(void) {
    ck_assert_int_eq(e2e_stop(&srv, 30000), 0);
    e2e_cleanup(&srv);
    mock_stop(mock);
    mock = NULL;
}

static void put_flow(const char *name, const char *doc) {
    char path[128];
    e2e_resp_t r;
    snprintf(path, sizeof path, "/v1/flows/%s", name);
    e2e_request(&srv, "PUT", path, json_ct, doc, &r);
    ck_assert_msg(r.status == 201 || r.status == 200, "PUT %s: %ld %s", name, r.status, r.body);
    e2e_resp_free(&r);
}

/* Starts a job; its id (static buffer, one at a time per slot). */
static const char *start_job(const char *body, int slot) {
    static char ids[4][64];
    json_t *job = e2e_start_job(&srv, body);
    snprintf(ids[slot], sizeof ids[slot], "%s", json_string_value(json_object_get(job, "id")));
    json_decref(job);
    return ids[slot];
}

static json_t *get(const char *fmt, const char *id) {
    char path[256];
    snprintf(path, sizeof path, fmt, id);
    return e2e_get_json(&srv, path);
}

/* The chat of PocketFlow's cookbook: the last messages as context, the answer remembered. */
static const char *chat_doc =
    "{\"name\": \"chat\", \"start\": \"reply\", \"code\": ["
    "  \"local WINDOW = 4\","
    "  \"function ask(shared, params)\","
    "  \"  local messages = {{role = 'system', content = 'You are brief.'}}\","
    "  \"  local history = shared.history\","
    "  \"  for i = math.max(1, #history - WINDOW + 1), #history do messages[#messages + 1] = "
    "history[i] end\","
    "  \"  messages[#messages + 1] = {role = 'user', content = shared.question}\","
    "  \"  return {messages = messages}\","
    "  \"end\","
    "  \"function remember(shared, prep_res, exec_res, params)\","
    "  \"  table.insert(shared.history, {role = 'user', content = shared.question})\","
    "  \"  table.insert(shared.history, {role = 'assistant', content = exec_res.text})\","
    "  \"  shared.context = #prep_res.messages\","
    "  \"  log('history holds', #shared.history, 'messages')\","
    "  \"end\"],"
    " \"nodes\": {\"reply\": {\"type\": \"llm\", \"prep\": \"ask\", \"post\": \"remember\"}}}";

START_TEST(test_a_flow_with_lua_hooks_over_http) {
    start(NULL);
    put_flow("chat", chat_doc);
    const char *id = start_job(
        "{\"flow\": \"chat\", \"shared\": {\"question\": \"and now?\", \"history\": ["
        "{\"role\": \"user\", \"content\": \"one\"}, {\"role\": \"assistant\", \"content\": \"1\"},"
        "{\"role\": \"user\", \"content\": \"two\"}, {\"role\": \"assistant\", \"content\": \"2\"},"
        "{\"role\": \"user\", \"content\": \"three\"}, {\"role\": \"assistant\", \"content\": "
        "\"3\"}]}}",
        0);
    json_decref(e2e_wait_status(&srv, id, "succeeded", 30000));
    json_t *shared = get("/v1/jobs/%s/shared", id);
    json_t *history = json_object_get(shared, "history");
    ck_assert_uint_eq(json_array_size(history), 8);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(history, 7), "content")),
                     "mock answer to: and now?");
    ck_assert_int_eq(json_integer_value(json_object_get(shared, "context")),
                     6); /* system, 4, question */
    json_decref(shared);
    /* log(...) in the history, and in the step's event */
    json_t *hist = get("/v1/jobs/%s/history", id);
    json_t *logs = json_object_get(json_array_get(json_object_get(hist, "steps"), 0), "logs");
    ck_assert_str_eq(json_string_value(json_array_get(logs, 0)), "history holds 8 messages");
    json_decref(hist);
    e2e_stream_t st;
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    e2e_stream_open(&st, &srv, path, NULL);
    ck_assert(e2e_stream_wait_for(&st, "history holds 8 messages", 10000));
    e2e_stream_close(&st);
    /* GET shows the document with its code */
    json_t *flow = e2e_get_json(&srv, "/v1/flows/chat");
    json_t *code = json_object_get(json_object_get(flow, "document"), "code");
    ck_assert_str_eq(json_string_value(json_array_get(code, 1)), "function ask(shared, params)");
    json_decref(flow);
    /* and flowd's log has the line (written out at the latest when it stops) */
    ck_assert_int_eq(e2e_stop(&srv, 30000), 0);
    char *log = e2e_log(&srv);
    ck_assert_ptr_nonnull(strstr(log, ": node reply: log: history holds 8 messages"));
    free(log);
    e2e_cleanup(&srv);
    mock_stop(mock);
    mock = NULL;
}
END_TEST

START_TEST(test_code_beside_the_document_in_the_flows_directory) {
    char dir[] = "/tmp/luaflowsXXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    e2e_write_file(
        dir, "count.json",
        "{\"name\": \"count\", \"start\": \"step\",\n"
        " \"nodes\": {\"step\": {\"type\": \"noop\", \"prep\": \"read\", \"post\": \"write\",\n"
        "                      \"next\": {\"again\": \"step\"}}}}\n");
    e2e_write_file(dir, "count.lua",
                   "-- a counter, the way PocketFlow's loop reads it\n"
                   "function read(shared) return shared.n end\n"
                   "function write(shared, prep_res)\n"
                   "  shared.n = prep_res + 1\n"
                   "  if shared.n < shared.limit then return 'again' end\n"
                   "end\n");
    start(dir);
    const char *id = start_job("{\"flow\": \"count\", \"shared\": {\"n\": 0, \"limit\": 100}}", 0);
    json_decref(e2e_wait_status(&srv, id, "succeeded", 30000));
    json_t *shared = get("/v1/jobs/%s/shared", id);
    ck_assert_int_eq(json_integer_value(json_object_get(shared, "n")), 100);
    json_decref(shared);
    json_t *flow = e2e_get_json(&srv, "/v1/flows/count");
    ck_assert_ptr_nonnull(
        strstr(json_string_value(json_object_get(json_object_get(flow, "document"), "code")),
               "function write(shared, prep_res)"));
    json_decref(flow);
    stop_all();
    /* a broken one stops the start, at its line */
    e2e_write_file(dir, "count.lua", "function read(shared)\n  return shared.n +\nend\n");
    char want[256], *out = NULL;
    const char *args[] = {"--port", "0", "--flows", dir, NULL};
    ck_assert_int_eq(e2e_run(args, &out), 1);
    snprintf(want, sizeof want, "%s/count.lua:3: unexpected symbol near 'end'", dir);
    ck_assert_msg(strstr(out, want) != NULL, "%s", out);
    free(out);
    char path[256];
    snprintf(path, sizeof path, "%s/count.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/count.lua", dir);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* A job that ticks on a timer, counting in Lua. */
static const char *ticker_doc = "{\"name\": \"ticker\", \"start\": \"tick\", \"nodes\": {"
                                " \"tick\": {\"type\": \"sleep\", \"params\": {\"seconds\": 0.05},"
                                "          \"post\": \"shared.ticks = (shared.ticks or 0) + 1 if "
                                "shared.ticks < 40 then return 'again' end\","
                                "          \"next\": {\"again\": \"tick\"}}}}";

START_TEST(test_an_endless_loop_is_stopped_while_another_job_runs_on) {
    start(NULL);
    put_flow("ticker", ticker_doc);
    put_flow("spin",
             "{\"name\": \"spin\", \"start\": \"think\", \"nodes\": {\"think\": {\"type\": \"lua\","
             " \"exec\": [\"local n = 0\", \"while true do\", \"  n = n + 1\", \"end\"]}}}");
    const char *ticker = start_job("{\"flow\": \"ticker\"}", 0);
    /* wait until it has ticked, so that the loops below run while it does */
    uint64_t deadline = e2e_now_ms() + e2e_ms(30000);
    for (;;) {
        json_t *job = get("/v1/jobs/%s", ticker);
        json_int_t steps = json_integer_value(json_object_get(job, "steps"));
        json_decref(job);
        if (steps >= 1)
            break;
        ck_assert_msg(e2e_now_ms() < deadline, "the ticker did not tick");
        usleep(10000);
    }
    for (int i = 0; i < 3; i++) {
        const char *spin = start_job("{\"flow\": \"spin\"}", 1);
        json_t *job = e2e_wait_status(&srv, spin, "failed", 60000);
        json_t *err = json_object_get(job, "error");
        ck_assert_str_eq(json_string_value(json_object_get(err, "code")), "script_error");
        ck_assert_str_eq(json_string_value(json_object_get(err, "node")), "think");
        const char *msg = json_string_value(json_object_get(err, "message"));
        ck_assert_msg(strstr(msg, "node think, exec: stopped at /nodes/think/exec:") != NULL &&
                          strstr(msg, "after its budget of 2000000 instructions") != NULL,
                      "%s", msg);
        json_decref(job);
    }
    json_t *job = e2e_wait_status(&srv, ticker, "succeeded", 60000);
    ck_assert_int_eq(json_integer_value(json_object_get(job, "steps")), 40);
    json_decref(job);
    json_decref(e2e_get_json(&srv, "/healthz"));
    stop_all();
}
END_TEST

START_TEST(test_a_memory_bomb_is_stopped_by_the_cap) {
    start(NULL);
    put_flow("ticker", ticker_doc);
    put_flow("bomb",
             "{\"name\": \"bomb\", \"start\": \"grow\", \"nodes\": {\"grow\": {\"type\": \"noop\","
             " \"post\": [\"local t = {}\", \"for i = 1, 1e9 do\", \"  t[i] = string.rep('x', "
             "1e5)\", \"end\"]}}}");
    put_flow(
        "store_bomb",
        "{\"name\": \"store_bomb\", \"start\": \"grow\", \"nodes\": {\"grow\": {\"type\": \"noop\","
        " \"post\": [\"local s = string.rep('x', 1e5)\", \"for i = 1, 1e9 do shared['k' .. i] = s "
        "end\"]}}}");
    const char *ticker = start_job("{\"flow\": \"ticker\"}", 0);
    const char *bomb = start_job("{\"flow\": \"bomb\"}", 1);
    json_t *job = e2e_wait_status(&srv, bomb, "failed", 60000);
    const char *msg = json_string_value(json_object_get(json_object_get(job, "error"), "message"));
    ck_assert_msg(
        strstr(msg, "node grow, post: out of memory: a flow's Lua state may hold 8388608 bytes "
                    "(--lua-memory)") != NULL,
        "%s", msg);
    json_decref(job);
    /* the same flow's state serves the next job after the bomb */
    const char *again = start_job("{\"flow\": \"bomb\"}", 2);
    json_decref(e2e_wait_status(&srv, again, "failed", 60000));
    const char *store = start_job("{\"flow\": \"store_bomb\"}", 3);
    job = e2e_wait_status(&srv, store, "failed", 60000);
    msg = json_string_value(json_object_get(json_object_get(job, "error"), "message"));
    ck_assert_msg(strstr(msg, "the JSON one call adds is at most 8388608 bytes (--lua-memory)") !=
                      NULL,
                  "%s", msg);
    json_decref(job);
    json_decref(e2e_wait_status(&srv, ticker, "succeeded", 60000));
    stop_all();
}
END_TEST

START_TEST(test_runtime_errors_name_node_hook_and_line) {
    start(NULL);
    put_flow("oops",
             "{\"name\": \"oops\", \"start\": \"first\", \"code\": \"function check(shared)\\n"
             "  if shared.x == nil then\\n    error('x is missing')\\n  end\\nend\\n\","
             " \"nodes\": {\"first\": {\"type\": \"noop\", \"prep\": \"check\"}}}");
    const char *id = start_job("{\"flow\": \"oops\"}", 0);
    json_t *job = e2e_wait_status(&srv, id, "failed", 30000);
    json_t *err = json_object_get(job, "error");
    ck_assert_str_eq(json_string_value(json_object_get(err, "message")),
                     "node first, prep: /code:3: x is missing");
    ck_assert_str_eq(json_string_value(json_object_get(err, "node")), "first");
    json_decref(job);
    stop_all();
}
END_TEST

START_TEST(test_lua_problems_are_refused_at_put) {
    start(NULL);
    e2e_resp_t r;
    e2e_request(
        &srv, "PUT", "/v1/flows/bad", json_ct,
        "{\"start\": \"a\", \"code\": [\"function f()\", \"  return 1 +\", \"end\"],"
        " \"nodes\": {\"a\": {\"type\": \"set\", \"params\": {\"/x\": 1}, \"prep\": \"return 1\","
        "  \"post\": \"g\", \"next\": {\"default\": \"b\"}},"
        " \"b\": {\"type\": \"lua\", \"exec\": [\"local x = 1\", \"return x +* 2\"]}}}",
        &r);
    e2e_assert_error(&r, 422, "invalid_flow", "3 problems");
    json_t *problems = json_object_get(json_object_get(r.json, "error"), "problems");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(problems, 0), "where")),
                     "/code/2");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(problems, 0), "message")),
                     "line 3: unexpected symbol near 'end'");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(problems, 1), "where")),
                     "/nodes/a/prep");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(problems, 2), "where")),
                     "/nodes/b/exec/1");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(problems, 2), "message")),
                     "line 2: unexpected symbol near '*'");
    e2e_resp_free(&r);
    stop_all();
}
END_TEST

/* A flow PUT with its code comes back from the store after a crash, code and all: a job waiting for
 * input across a kill -9 runs its Lua after the restart (and the hook that ran before the
 * checkpoint does not run again); a string with a NUL byte in its store comes back too. */
START_TEST(test_lua_flows_come_back_after_a_crash) {
    char dir[] = "/tmp/luastoreXXXXXX", store[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(store, sizeof store, "sqlite:%s/flowd.db", dir);
    e2e_start(&srv, "--store", store, NULL);
    put_flow("ask", "{\"name\": \"ask\", \"start\": \"before\", \"code\": \"function times(x) return x * 10 end\","
                    " \"nodes\": {"
                    "  \"before\": {\"type\": \"noop\", \"post\": \"shared.before = (shared.before or 0) + 1;"
                    " shared.nul = 'a\\\\0b'\","
                    "              \"next\": {\"default\": \"wait\"}},"
                    "  \"wait\": {\"type\": \"input\", \"params\": {\"prompt\": \"n?\"}, \"out\": \"/n\","
                    "            \"next\": {\"default\": \"after\"}},"
                    "  \"after\": {\"type\": \"lua\", \"params\": {\"n\": \"$shared/n\"}, \"out\": \"/after\","
                    "             \"exec\": \"return times(prep_res.n)\"}}}");
    const char *id = start_job("{\"flow\": \"ask\"}", 0);
    json_decref(e2e_wait_status(&srv, id, "waiting", 30000));
    e2e_kill(&srv);
    e2e_cleanup(&srv);
    e2e_start(&srv, "--store", store, NULL);
    json_decref(e2e_wait_status(&srv, id, "waiting", 30000));
    char path[128];
    e2e_resp_t r;
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    e2e_post(&srv, path, "{\"value\": 4}", &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    json_decref(e2e_wait_status(&srv, id, "succeeded", 30000));
    json_t *shared = get("/v1/jobs/%s/shared", id);
    ck_assert_int_eq(json_integer_value(json_object_get(shared, "before")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(shared, "after")), 40);
    json_decref(shared);
    /* a string with a NUL byte, which Lua may make, is stored, loaded and read back whole (found by
     * fuzz_lua: the stores and the pointer read of a finished job once refused to parse it) */
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?pointer=/nul", id);
    e2e_request(&srv, "GET", path, NULL, NULL, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    json_t *nul = json_loadb(r.body, r.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    e2e_resp_free(&r);
    ck_assert_uint_eq(json_string_length(nul), 3);
    ck_assert_int_eq(memcmp(json_string_value(nul), "a\0b", 3), 0);
    json_decref(nul);
    ck_assert_int_eq(e2e_stop(&srv, 30000), 0);
    e2e_cleanup(&srv);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *lua_suite(void) {
    Suite *s = suite_create("lua");
    TCase *tc = tcase_create("lua");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_a_flow_with_lua_hooks_over_http);
    tcase_add_test(tc, test_code_beside_the_document_in_the_flows_directory);
    tcase_add_test(tc, test_an_endless_loop_is_stopped_while_another_job_runs_on);
    tcase_add_test(tc, test_a_memory_bomb_is_stopped_by_the_cap);
    tcase_add_test(tc, test_runtime_errors_name_node_hook_and_line);
    tcase_add_test(tc, test_lua_problems_are_refused_at_put);
    tcase_add_test(tc, test_lua_flows_come_back_after_a_crash);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(lua_suite());
}
