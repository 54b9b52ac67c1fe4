/* test_script.c: Lua node logic. The bridge on its own (flow_script_eval): JSON round trips through
 * Lua, the sandbox refusing every escape, budgets, memory and time caps, and errors with their
 * place; then hooks on the nodes of flow documents run as jobs: prep, exec, post and fallback with
 * PocketFlow's meaning, inside maps and flow nodes, log lines in the history, one job leaving
 * nothing for the next, and every load-time problem at once with its place. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flow/doc.h"
#include "flow/nodes.h"
#include "script.h"
#include "support/harness.h"
#include "support/json_util.h"
#include "support/mock.h"

/* ---- the bridge on its own ---- */

typedef struct evald {
    int rc;
    json_t *out;
    json_t *value; /* the value given, after the call */
    char err[1024];
} evald_t;

static evald_t ev;

static void ev_clear(void) {
    json_decref(ev.out);
    json_decref(ev.value);
    memset(&ev, 0, sizeof ev);
}

/* Runs code as function(value) on value (JSON text or NULL), with lim (NULL: defaults). */
static evald_t *eval_with(const flow_script_limits_t *lim, const char *code, const char *value) {
    ev_clear();
    flow_error_t err = {0};
    ev.value = value ? tu_json(value) : NULL;
    ev.rc = flow_script_eval(lim, code, strlen(code), ev.value, &ev.out, &err);
    snprintf(ev.err, sizeof ev.err, "%s", err.message ? err.message : "");
    flow_error_clear(&err);
    return &ev;
}

/* The default limits but time, which a slow build (valgrind) could reach before the budget. */
static evald_t *eval(const char *code, const char *value) {
    static const flow_script_limits_t lim = {.time_ms = 600000};
    return eval_with(&lim, code, value);
}

static void ok(const char *code, const char *value, const char *want) {
    eval(code, value);
    ck_assert_msg(ev.rc == 0, "%s: failed: %s", code, ev.err);
    tu_assert_json(code, ev.out, want ? want : "null");
}

/* code fails with a message holding words. */
static void refused(const char *code, const char *words) {
    eval(code, NULL);
    ck_assert_msg(ev.rc == FLOW_ESCRIPT, "%s: rc %d, not refused", code, ev.rc);
    ck_assert_msg(strstr(ev.err, words) != NULL, "%s: the message \"%s\" lacks \"%s\"", code,
                  ev.err, words);
}

static void teardown_eval(void) {
    ev_clear();
}

START_TEST(test_values_round_trip_unchanged) {
    const char *store =
        "{\"empty_array\": [], \"empty_object\": {}, \"null\": null, \"big\": 9223372036854775807,"
        " \"small\": -9223372036854775808, \"real\": 0.1, \"whole_real\": 3.0, \"huge\": 1e300,"
        " \"text\": \"caf\\u00e9 \\u65e5\\u672c \\ud83d\\ude00\", \"yes\": true, \"no\": false,"
        " \"nested\": [[], {}, [1, [2, {\"a\": null}]]], \"z\": 1, \"a\": 2, \"m\": 3}";
    ok("return value", store, store);
    /* read in Lua and written back member by member: the same store, in the same key order */
    ok("local copy = json.object() for k, v in pairs(value) do copy[k] = v end "
       "for k in pairs(value) do value[k] = nil end "
       "for k, v in pairs(copy) do value[k] = v end return value",
       store, store);
    eval("for k, v in pairs(value) do value[k] = v end return json.encode(value)", store);
    ck_assert_int_eq(ev.rc, 0);
    ck_assert_str_eq(
        json_string_value(ev.out),
        "{\"empty_array\":[],\"empty_object\":{},\"null\":null,\"big\":9223372036854775807,"
        "\"small\":-9223372036854775808,\"real\":0.10000000000000001,\"whole_real\":3.0,"
        "\"huge\":1.0000000000000001e300,\"text\":\"café 日本 😀\",\"yes\":true,\"no\":false,"
        "\"nested\":[[],{},[1,[2,{\"a\":null}]]],\"z\":1,\"a\":2,\"m\":3}");
    /* integers stay integers, reals reals */
    ok("return {math.type(value.big), math.type(value.real), math.type(value.whole_real)}", store,
       "[\"integer\", \"float\", \"float\"]");
    ok("value.i = 7 value.f = 7.0 value.d = 7 / 2 value.n = 2^63 return value", "{}",
       "{\"i\": 7, \"f\": 7.0, \"d\": 3.5, \"n\": 9223372036854775808.0}");
    ok("return value.null == json.null, value.missing == nil, json.type(value.null)", store,
       "true");
    ok("return json.type(value.null)", store, "\"null\"");
    ok("value.x = json.null return value", "{}", "{\"x\": null}");
    ok("return #value.text", store, "17");
    ok("return utf8.len(value.text)", store, "9");
}
END_TEST

START_TEST(test_empty_tables_arrays_and_objects) {
    /* an empty table takes the kind of what it replaces; a new one is an object; marks say it */
    ok("value.a = {} value.o = {} value.n = {} return value", "{\"a\": [1], \"o\": {\"k\": 1}}",
       "{\"a\": [], \"o\": {}, \"n\": {}}");
    ok("value.a = json.array() value.o = json.object({}) return value", "{}",
       "{\"a\": [], \"o\": {}}");
    ok("return json.array({})", NULL, "[]");
    ok("return {json.array(), json.object(), {}}", NULL, "[[], {}, {}]");
    /* arrays read from the store stay arrays when emptied */
    ok("while #value.a > 0 do table.remove(value.a) end table.insert(value.b, 'x') "
       "table.remove(value.b) "
       "return value",
       "{\"a\": [1, 2, 3], \"b\": []}", "{\"a\": [], \"b\": []}");
    ok("return {1, 2, {x = {}}}", NULL, "[1, 2, {\"x\": {}}]");
    ok("return json.object({[1] = 'a', [2] = 'b'})", NULL, "{\"1\": \"a\", \"2\": \"b\"}");
    ok("return {b = 1, a = 2, c = {z = 1, y = 2}}", NULL,
       "{\"a\": 2, \"b\": 1, \"c\": {\"y\": 2, \"z\": 1}}");
    ok("return json.decode('{\"b\": [], \"a\": {}}')", NULL, "{\"b\": [], \"a\": {}}");
    ok("return json.encode(json.decode('{\"b\": [], \"a\": {}, \"n\": 1.5}'))", NULL,
       "\"{\\\"b\\\":[],\\\"a\\\":{},\\\"n\\\":1.5}\"");
    ok("return yaml.decode('answer: search\\nitems: []\\nn: 3\\nr: 0.5')", NULL,
       "{\"answer\": \"search\", \"items\": [], \"n\": 3, \"r\": 0.5}");
    ok("return fence('Sure:\\n```yaml\\naction: answer\\n```\\nbye')", NULL, "\"action: answer\"");
    ok("return yaml.decode(fence('```yaml\\naction: answer\\n```')).action", NULL, "\"answer\"");
}
END_TEST

START_TEST(test_what_is_not_json_is_refused) {
    refused("return {1, nil, 3}", "holes");
    refused("return {1, x = 2}", "both string keys and keys 1..n");
    refused("return {[0.5] = 1}", "neither strings nor integers");
    refused("return 0/0", "nan is not a JSON number");
    refused("return 1/0", "infinity");
    refused("return '\\xff\\xfe'", "not UTF-8");
    refused("return print", "function is not JSON");
    refused("local t = {} t.t = t return t", "nest deeper");
    refused("leaked = nil", "cannot set the global 'leaked'");
    refused("return json.decode('{\"a\": ')", "json.decode: line 1");
    refused("return yaml.decode('a: [1, 2')", "yaml.decode");
    eval("value.list[5] = 1", "{\"list\": [1]}");
    ck_assert_int_eq(ev.rc, FLOW_ESCRIPT);
    ck_assert_ptr_nonnull(strstr(ev.err, "an array of 1 items has no index 5"));
    eval("value.list[1] = nil", "{\"list\": [1, 2]}");
    ck_assert_ptr_nonnull(strstr(ev.err, "only the last item"));
    eval("value[1] = 2", "{}");
    ck_assert_ptr_nonnull(strstr(ev.err, "a key of a JSON object is a string"));
}
END_TEST

START_TEST(test_every_escape_is_refused) {
    refused("return io.open('/etc/passwd')", "global 'io'");
    refused("return os.execute('true')", "global 'os'");
    refused("return require('os')", "global 'require'");
    refused("return load('return 1')", "global 'load'");
    refused("return loadstring('return 1')", "global 'loadstring'");
    refused("return dofile('/etc/passwd')", "global 'dofile'");
    refused("return loadfile('/etc/passwd')", "global 'loadfile'");
    refused("return string.dump(function() end)", "field 'dump'");
    refused("return debug.getinfo(1)", "global 'debug'");
    refused("return package.loaded", "global 'package'");
    refused("return collectgarbage('count')", "global 'collectgarbage'");
    refused("return coroutine.create(print)", "global 'coroutine'");
    refused("rawset(_G, 'x', 1)", "global 'rawset'");
    refused("math.randomseed(1)", "field 'randomseed'");
    refused("warn('x')", "global 'warn'");
    /* the string library's metatable: out of reach, so nobody changes string methods for the rest
     */
    refused("return getmetatable('').__index", "index a boolean value");
    refused("setmetatable(getmetatable(''), {__index = _G})", "table expected");
    refused("string.upper = nil", "read-only");
    refused("local s = string s.len = print", "read-only");
    refused("_G.io = {}", "read-only");
    refused("x = 1", "cannot set the global 'x'");
    refused("setmetatable({}, {__gc = print})", "__gc is not allowed");
    ok("return getmetatable(value).__index == nil", "{}",
       "true"); /* proxies' metatable: out of reach */
    /* a hook's code is text: a binary chunk's bytes are a syntax error (documents: see below) */
    refused("\x1bLuaT", "unexpected symbol");
    ok("return string.format('%d-%s', 4, ('ab'):upper()), table.concat({1, 2}, ','), "
       "math.floor(2.5),"
       " utf8.char(233)",
       NULL, "\"4-AB\"");
    ok("return type(getmetatable(value))", "{}", "\"string\"");
}
END_TEST

START_TEST(test_budget_memory_and_time_stop_a_call) {
    refused("while true do end", "stopped at code:1 after its budget of 10000000 instructions");
    refused("local n = 0\nwhile true do\n n = n + 1\nend", "stopped at code:");
    /* pcall cannot catch the stop */
    refused("while true do pcall(function() while true do end end) end", "budget");
    refused("local ok = pcall(function() while true do end end) return ok", "budget");
    /* C functions charge their work: "" copied 1e18 times, or a scan of a big string in a loop */
    refused("return string.rep('', 1e18)", "budget");
    refused("local s = string.rep('a', 1e6) for i = 1, 1e6 do s:find('b', 1, true) end", "budget");
    /* memory: the state's cap, then the JSON one call may add */
    refused("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1e6) end", "out of memory");
    refused("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1e6) end", "--lua-memory");
    refused("local s = 'x' while true do s = s .. s end", "out of memory");
    refused("return string.rep('x', 1e9)", "out of memory");
    flow_script_limits_t lim = {.memory = 4 << 20, .time_ms = 600000};
    eval_with(&lim, "local s = string.rep('x', 100000) for i = 1, 1000 do value['k' .. i] = s end",
              "{}");
    ck_assert_int_eq(ev.rc, FLOW_ESCRIPT);
    ck_assert_msg(strstr(ev.err, "the JSON one call adds is at most 4194304 bytes") != NULL, "%s",
                  ev.err);
    /* ... net of what it replaces: writing the same member again and again is fine */
    eval_with(
        &lim,
        "local s = string.rep('x', 100000) for i = 1, 1000 do value.k = s .. i end return #value.k",
        "{}");
    ck_assert_msg(ev.rc == 0, "%s", ev.err);
    /* a budget of its own */
    flow_script_limits_t small = {
        .instructions = 1000, .instructions_max = 1000, .time_ms = 600000};
    eval_with(&small, "for i = 1, 10000 do end", NULL);
    ck_assert_msg(strstr(ev.err, "budget of 1000 instructions") != NULL, "%s", ev.err);
    /* time: a backstop when the budget is huge */
    flow_script_limits_t slow = {
        .instructions = 4000000000u, .instructions_max = 4000000000u, .time_ms = 50};
    eval_with(&slow, "while true do end", NULL);
    ck_assert_msg(strstr(ev.err, "after 50 ms, its time limit (--lua-time)") != NULL, "%s", ev.err);
    /* and a call after a stopped one runs with its whole budget */
    ok("local n = 0 for i = 1, 1000 do n = n + i end return n", NULL, "500500");
}
END_TEST

START_TEST(test_errors_name_their_line) {
    refused("local x = nil\nreturn x.y", "eval: code:2: attempt to index a nil value (local 'x')");
    refused("error('boom')", "code:1: boom");
    refused("error({reason = 'bad'})", "\"reason\"");
    refused("error()", "error (nil)");
    refused("return 1 +", "line 1: unexpected symbol near <eof>");
    refused("if true then", "line 1: 'end' expected near <eof>");
}
END_TEST

START_TEST(test_proxies_work_with_the_table_library) {
    ok("table.sort(value.l) return value.l", "{\"l\": [3, 1, 2]}", "[1, 2, 3]");
    ok("table.insert(value.l, 1, 0) table.insert(value.l, 9) return value.l", "{\"l\": [1]}",
       "[0, 1, 9]");
    ok("return table.remove(value.l, 1), value.l", "{\"l\": [{\"a\": 1}, 2]}", "{\"a\": 1}");
    ok("return table.concat(value.l, '+')", "{\"l\": [1, \"b\", 3]}", "\"1+b+3\"");
    ok("local n = 0 for i, v in ipairs(value.l) do n = n + i * v end return n",
       "{\"l\": [1, 2, 3]}", "14");
    ok("local keys = {} for k in pairs(value) do keys[#keys + 1] = k end return keys",
       "{\"z\": 1, \"a\": 2, \"m\": 3}", "[\"z\", \"a\", \"m\"]");
    ok("return #value, #value.l", "{\"a\": 1, \"l\": [1, 2]}", "2");
    ok("local a = value.o value.o = nil return a.x", "{\"o\": {\"x\": 5}}", "5");
    ok("value.c = value.o value.c.x = 2 return value", "{\"o\": {\"x\": 1}}",
       "{\"o\": {\"x\": 1}, \"c\": {\"x\": 2}}");
    ok("return tostring(value.o)", "{\"o\": {\"x\": [1]}}", "\"{\\\"x\\\":[1]}\"");
    ok("return value.o == value.o, value.o == value.p", "{\"o\": {}, \"p\": {}}", "true");
    ok("return json.type(value.o), json.type(value.l), json.type({}), json.type({1})",
       "{\"o\": {}, \"l\": []}", "\"object\"");
    ok("return {json.type(value.l), json.type({1}), json.type(1), json.type('s'), json.type(true)}",
       "{\"l\": []}", "[\"array\", \"array\", \"number\", \"string\", \"boolean\"]");
}
END_TEST

/* ---- hooks on the nodes of documents ---- */

static harness_t h;
static outcome_t out;
static flow_registry_t *reg;
static flow_nodes_env_t env;
static mock_t *mock;
static flow_http_t *http;
static flow_netrules_t *allow;
static char base[64];

static void setup_docs(void) {
    ck_assert_int_eq(mock_start(NULL, &mock), 0);
    flow_engine_opts_t eo = {.log_lines = 3, .log_job_bytes = 64};
    harness_init(&h, &eo);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", (unsigned)mock_port(mock));
    allow = rules_of(base + strlen("http://")); /* as flowd --allow-outbound 127.0.0.1:PORT does */
    ck_assert_int_eq(flow_http_new(&h.loop, &(flow_http_opts_t){.allow = allow}, &http), 0);
    env = (flow_nodes_env_t){
        .http = http,
        .lua = {.instructions = 1000000, .instructions_max = 5000000, .time_ms = 600000}};
    ck_assert_int_eq(flow_registry_new(&reg), 0);
    ck_assert_int_eq(flow_nodes_register(reg, &env), 0);
}

static void teardown_docs(void) {
    outcome_clear(&out);
    flow_http_close(http);
    harness_close(&h);
    flow_registry_free(reg);
    flow_netrules_unref(allow);
    mock_stop(mock);
}

/* Replaces every BASE in text by the mock's URL; the result is static. */
static const char *with_base(const char *text) {
    static char s[16384];
    size_t n = 0;
    for (const char *p = text; *p && n + 80 < sizeof s;) {
        if (strncmp(p, "BASE", 4) == 0) {
            n += (size_t)snprintf(s + n, sizeof s - n, "%s", base);
            p += 4;
        } else {
            s[n++] = *p++;
        }
    }
    s[n] = '\0';
    return s;
}

/* Loads text; the problems as text ("" when it loaded), the definition in *def. */
static const char *load(const char *text, flow_def_t **def) {
    static char buf[8192];
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    json_t *doc = tu_json(with_base(text));
    *def = NULL;
    int rc = flow_doc_load(reg, doc, def, &p);
    char *t = NULL;
    flow_problems_text(&p, &t);
    snprintf(buf, sizeof buf, "%s", t ? t : "");
    flow_free(t);
    ck_assert_int_eq(rc, p.count ? FLOW_ELOAD : 0);
    flow_problems_clear(&p);
    json_decref(doc);
    return buf;
}

static void run(const char *text, const char *shared) {
    flow_def_t *def;
    const char *problems = load(text, &def);
    ck_assert_msg(def != NULL, "refused: %s", problems);
    outcome_clear(&out);
    flow_job_opts_t o = {.id = "job1"};
    harness_run(&h, def, shared ? tu_json(shared) : NULL, &o, &out);
    flow_def_unref(def);
}

static void succeeded(const char *shared) {
    ck_assert_msg(out.status == FLOW_SUCCEEDED, "status %s: %s", flow_status_name(out.status),
                  out.error_message);
    tu_assert_json("shared", out.shared, shared);
}

static void failed_with(const char *node, const char *words) {
    ck_assert_msg(out.status == FLOW_FAILED, "status %s", flow_status_name(out.status));
    ck_assert_str_eq(out.error_node, node);
    ck_assert_msg(strstr(out.error_message, words) != NULL, "\"%s\" lacks \"%s\"",
                  out.error_message, words);
}

START_TEST(test_prep_and_post_loop_like_pocketflow) {
    run("{\"name\": \"loop\", \"start\": \"count\", \"nodes\": {"
        " \"count\": {\"type\": \"noop\", \"prep\": \"return shared.n\","
        "  \"post\": [\"shared.n = prep_res + 1\", \"if shared.n < shared.limit then return "
        "'again' end\"],"
        "  \"next\": {\"again\": \"count\", \"default\": \"done\"}},"
        " \"done\": {\"type\": \"set\", \"params\": {\"/finished\": true}}}}",
        "{\"n\": 0, \"limit\": 5}");
    succeeded("{\"n\": 5, \"limit\": 5, \"finished\": true}");
    ck_assert_uint_eq(out.steps, 6);
    ck_assert_str_eq(out.history_actions[0], "again");
    ck_assert_str_eq(out.history_actions[4], "default");
}
END_TEST

/* What checkpoints as patches rest on: each step reports the top-level keys of shared it wrote,
 * from Lua (however deep the write, table.insert included) and from set and out. */
START_TEST(test_steps_report_the_keys_they_write) {
    run("{\"name\": \"w\", \"start\": \"a\", \"nodes\": {"
        " \"a\": {\"type\": \"noop\", \"post\": [\"shared.deep.x.y = 1\","
        "  \"table.insert(shared.list, 3)\", \"local r = shared.ro.v\"],"
        "  \"next\": {\"default\": \"b\"}},"
        " \"b\": {\"type\": \"set\", \"params\": {\"/a~1b/c\": 1, \"/new\": 2},"
        "  \"next\": {\"default\": \"c\"}},"
        " \"c\": {\"type\": \"noop\", \"post\": [\"shared.new = nil\", \"for k, v in pairs(shared) do"
        " if k == 'deep' then v.z = 0 end end\"]}}}",
        "{\"deep\": {\"x\": {}}, \"list\": [], \"ro\": {\"v\": 1}}");
    succeeded("{\"deep\": {\"x\": {\"y\": 1}, \"z\": 0}, \"list\": [3], \"ro\": {\"v\": 1},"
              " \"a/b\": {\"c\": 1}}");
    ck_assert_str_eq(dumps(out.touched),
                     "[{\"deep\":true,\"list\":true},{\"a/b\":true,\"new\":true},"
                     "{\"new\":true,\"deep\":true}]");
}
END_TEST

START_TEST(test_code_chunk_functions_named_by_nodes) {
    run("{\"name\": \"agent\", \"start\": \"decide\", \"code\": ["
        "  \"local MAX = 3\","
        "  \"local function clamp(n) return math.min(n, MAX) end\","
        "  \"function decide_post(shared, prep_res, exec_res, params)\","
        "  \"  shared.turns = clamp((shared.turns or 0) + 1)\","
        "  \"  if shared.turns < MAX then return 'search' end\","
        "  \"  return 'answer'\","
        "  \"end\","
        "  \"agent = {}\","
        "  \"function agent.answer(shared) shared.answer = 'after ' .. shared.turns end\"],"
        " \"nodes\": {"
        "  \"decide\": {\"type\": \"noop\", \"post\": \"decide_post\", \"next\": {\"search\": "
        "\"decide\","
        "              \"answer\": \"answer\"}},"
        "  \"answer\": {\"type\": \"noop\", \"post\": \"agent.answer\"}}}",
        NULL);
    succeeded("{\"turns\": 3, \"answer\": \"after 3\"}");
}
END_TEST

START_TEST(test_lua_exec_computes_into_out) {
    run("{\"name\": \"calc\", \"start\": \"sum\", \"nodes\": {"
        " \"sum\": {\"type\": \"lua\", \"params\": {\"xs\": \"$shared/xs\"}, \"out\": \"/total\","
        "  \"exec\": [\"local t = 0\", \"for _, x in ipairs(prep_res.xs) do t = t + x end\", "
        "\"return t\"]}}}",
        "{\"xs\": [1, 2, 3.5]}");
    succeeded("{\"xs\": [1, 2, 3.5], \"total\": 6.5}");
}
END_TEST

START_TEST(test_fallback_is_called_only_when_exec_fails) {
    run("{\"name\": \"fb\", \"start\": \"try\", \"nodes\": {"
        " \"try\": {\"type\": \"lua\", \"max_retries\": 3, \"out\": \"/got\","
        "  \"exec\": \"error('no luck')\","
        "  \"fallback\": \"return {recovered = err.message, code = err.code}\","
        "  \"next\": {\"default\": \"read\"}},"
        " \"read\": {\"type\": \"lua\", \"params\": {\"got\": \"$shared/got\"}, \"out\": \"/read\","
        "  \"exec\": \"return prep_res.got.code\"}}}",
        NULL);
    succeeded("{\"got\": {\"code\": \"script_error\", \"recovered\": \"node try, exec: "
              "/nodes/try/exec:1: no luck\"},"
              " \"read\": \"script_error\"}");
    ck_assert_uint_eq(out.history[0].tries, 3);
    run("{\"name\": \"fb\", \"start\": \"try\", \"nodes\": {"
        " \"try\": {\"type\": \"lua\", \"out\": \"/got\", \"exec\": \"return 1\","
        "  \"fallback\": \"shared_was_called = true\"}}}",
        NULL);
    succeeded("{\"got\": 1}");
    /* a fallback that fails fails the step */
    run("{\"name\": \"fb\", \"start\": \"try\", \"nodes\": {"
        " \"try\": {\"type\": \"lua\", \"exec\": \"error('one')\", \"fallback\": "
        "\"error('two')\"}}}",
        NULL);
    failed_with("try", "node try, fallback: /nodes/try/fallback:1: two");
}
END_TEST

START_TEST(test_prep_merges_over_http_params_and_post_reads_the_answer) {
    run("{\"name\": \"call\", \"start\": \"ask\", \"nodes\": {"
        " \"ask\": {\"type\": \"http\", \"params\": {\"url\": \"BASE/nowhere\", \"method\": "
        "\"POST\"},"
        "  \"prep\": \"return {url = 'BASE/echo', body = {question = shared.q, n = "
        "#shared.history}}\","
        "  \"post\": [\"shared.echoed = exec_res.body.body\","
        "            \"table.insert(shared.history, exec_res.status)\","
        "            \"if exec_res.status == 200 then return 'ok' end\"],"
        "  \"next\": {\"ok\": \"done\"}},"
        " \"done\": {\"type\": \"noop\"}}}",
        "{\"q\": \"why?\", \"history\": []}");
    succeeded(
        "{\"q\": \"why?\", \"history\": [200], \"echoed\": {\"question\": \"why?\", \"n\": 0}}");
    ck_assert_str_eq(out.history_actions[0], "ok");
}
END_TEST

START_TEST(test_hooks_in_a_map_see_the_item_and_its_index) {
    run("{\"name\": \"m\", \"start\": \"each\", \"nodes\": {"
        " \"each\": {\"type\": \"map\", \"items\": \"$shared/words\", \"out\": \"/lens\","
        "  \"node\": {\"type\": \"lua\", \"prep\": \"return {w = params.item, i = params.index}\","
        "           \"exec\": \"return prep_res.i .. ':' .. #prep_res.w\"},"
        "  \"post\": \"shared.count = #exec_res return 'done'\", \"next\": {\"done\": null}}}}",
        "{\"words\": [\"a\", \"bb\", \"ccc\"]}");
    succeeded("{\"words\": [\"a\", \"bb\", \"ccc\"], \"lens\": [\"0:1\", \"1:2\", \"2:3\"], "
              "\"count\": 3}");
    /* a sub-flow per item: its nodes' hooks read the item in params */
    run("{\"name\": \"m\", \"start\": \"each\", \"flows\": {\"one\": {\"start\": \"a\", \"nodes\": "
        "{"
        "  \"a\": {\"type\": \"noop\", \"post\": \"shared.seen[params.index + 1] = params.item * "
        "10\"}}}},"
        " \"nodes\": {\"each\": {\"type\": \"map\", \"items\": \"$shared/xs\", \"flow\": \"one\", "
        "\"limit\": 1,"
        "  \"post\": \"shared.done = true\"}}}",
        "{\"xs\": [1, 2], \"seen\": []}");
    succeeded("{\"xs\": [1, 2], \"seen\": [10, 20], \"done\": true}");
}
END_TEST

START_TEST(test_a_flow_node_takes_prep_and_post) {
    run("{\"name\": \"outer\", \"start\": \"sub\", \"params\": {\"who\": \"x\"},"
        " \"flows\": {\"inner\": {\"start\": \"greet\", \"nodes\": {"
        "  \"greet\": {\"type\": \"set\", \"params\": {\"/greeting\": \"hi {{$params/who}}\"}}}}},"
        " \"nodes\": {\"sub\": {\"type\": \"flow\", \"flow\": \"inner\", \"prep\": \"return {who = "
        "shared.name}\","
        "  \"post\": \"shared.last = exec_res return 'after'\", \"next\": {\"after\": \"end\"}},"
        "  \"end\": {\"type\": \"noop\"}}}",
        "{\"name\": \"ana\"}");
    succeeded("{\"name\": \"ana\", \"greeting\": \"hi ana\", \"last\": \"default\"}");
}
END_TEST

START_TEST(test_runtime_errors_name_node_hook_and_line) {
    run("{\"name\": \"e\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\","
        " \"post\": [\"local x = 1\", \"return shared.missing.field\"]}}}",
        NULL);
    failed_with("a",
                "node a, post: /nodes/a/post:2: attempt to index a nil value (field 'missing')");
    run("{\"name\": \"e\", \"start\": \"a\", \"code\": \"function p(shared)\\n  return nil + "
        "1\\nend\","
        " \"nodes\": {\"a\": {\"type\": \"noop\", \"prep\": \"p\"}}}",
        NULL);
    failed_with("a", "node a, prep: /code:2: attempt to perform arithmetic on a nil value");
    run("{\"name\": \"e\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\", \"post\": "
        "\"return 5\"}}}",
        NULL);
    failed_with("a", "node a, post: what it returned: returns a string of at most 255 bytes, or "
                     "nil; not number");
    run("{\"name\": \"e\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"http\", \"params\": "
        "{\"url\": \"BASE/x\"},"
        " \"prep\": \"return 'not an object'\"}}}",
        NULL);
    failed_with("a", "node a, prep: returns an object");
    run("{\"name\": \"e\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\", \"budget\": "
        "1000,"
        " \"post\": \"while true do end\"}}}",
        NULL);
    failed_with("a",
                "node a, post: stopped at /nodes/a/post:1 after its budget of 1000 instructions");
    ck_assert_int_eq(out.error, FLOW_ESCRIPT);
    run("{\"name\": \"e\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\","
        " \"post\": \"params.x = 1\"}}}",
        NULL);
    failed_with("a", "read-only");
}
END_TEST

START_TEST(test_one_job_leaves_nothing_for_the_next) {
    const char *doc =
        "{\"name\": \"iso\", \"start\": \"a\", \"code\": ["
        "  \"local count = 0\","
        "  \"local seen = {}\","
        "  \"Stack = {}\","
        "  \"Stack.__index = Stack\","
        "  \"function Stack.new() return setmetatable({items = {}}, Stack) end\","
        "  \"function Stack:push(x) self.items[#self.items + 1] = x return self end\","
        "  \"function bump(shared)\","
        "  \"  count = count + 1\","
        "  \"  shared.count = count\","
        "  \"  shared.pushed = #Stack.new():push(1):push(2).items\","
        "  \"  shared.tries = {}\","
        "  \"  shared.tries.seen = pcall(function() seen.x = 1 end)\","
        "  \"  shared.tries.global = pcall(function() leaked = 1 end)\","
        "  \"  shared.tries.class = pcall(function() Stack.extra = 1 end)\","
        "  \"  Stack.__index = {}\","
        "  \"  _ENV = {}\","
        "  \"end\"],"
        " \"nodes\": {\"a\": {\"type\": \"noop\", \"post\": \"bump\"}}}";
    flow_def_t *def;
    const char *problems = load(doc, &def);
    ck_assert_msg(def != NULL, "%s", problems);
    for (int i = 0; i < 3; i++) {
        outcome_clear(&out);
        harness_run(&h, def, NULL, NULL, &out);
        succeeded("{\"count\": 1, \"pushed\": 2, \"tries\": {\"seen\": false, \"global\": false, "
                  "\"class\": false}}");
    }
    flow_def_unref(def);
}
END_TEST

START_TEST(test_log_lines_go_to_the_step_capped) {
    /* this harness keeps 3 lines a step and 64 bytes a job */
    run("{\"name\": \"l\", \"start\": \"a\", \"nodes\": {"
        " \"a\": {\"type\": \"noop\", \"post\": \"log('one', 1, {k = true}, json.null) "
        "print('two')\","
        "        \"next\": {\"default\": \"b\"}},"
        " \"b\": {\"type\": \"noop\", \"post\": \"for i = 1, 10 do log('line', i) end\"}}}",
        NULL);
    succeeded("{}");
    tu_assert_json("a's logs", out.history[0].logs, "[\"one 1 {\\\"k\\\":true} null\", \"two\"]");
    ck_assert_uint_eq(json_array_size(out.history[1].logs), 4);
    ck_assert_str_eq(json_string_value(json_array_get(out.history[1].logs, 3)),
                     "(7 more lines were not kept: a step keeps 3 lines, a job 64 bytes of them)");
}
END_TEST

/* ---- load-time checks ---- */

static void load_refused(const char *text, const char *want) {
    flow_def_t *def;
    const char *got = load(text, &def);
    ck_assert_msg(strcmp(got, want) == 0, "problems:\n%s\nwanted:\n%s", got, want);
    ck_assert_ptr_null(def);
}

START_TEST(test_every_lua_problem_is_reported_at_load) {
    load_refused(
        "{\"name\": \"bad\", \"start\": \"a\", \"code\": \"function f()\\n  return 1 +\\nend\","
        " \"nodes\": {"
        "  \"a\": {\"type\": \"noop\", \"prep\": \"return (\", \"post\": \"no_such\", \"next\": "
        "{\"default\": \"b\"}},"
        "  \"b\": {\"type\": \"http\", \"params\": {\"url\": \"BASE\"}, \"exec\": \"return 1\","
        "         \"post\": [\"local x = 1\", \"x = = 2\"], \"next\": {\"default\": \"c\"}},"
        "  \"c\": {\"type\": \"fail\", \"params\": {\"message\": \"m\"}, \"post\": \"return 'x'\","
        "         \"next\": {\"default\": \"d\"}},"
        "  \"d\": {\"type\": \"lua\", \"params\": {\"x\": 1}, \"prep\": \"return 1\", \"budget\": "
        "0,"
        "         \"next\": {\"default\": \"e\"}},"
        "  \"e\": {\"type\": \"set\", \"params\": {\"/x\": 1}, \"prep\": \"return {}\", "
        "\"fallback\": \"return 1\"}}}",
        "/code: line 3: unexpected symbol near 'end'\n"
        "/nodes/a/prep: line 1: unexpected symbol near <eof>\n"
        "/nodes/b/exec: a http node cannot take a exec hook: only a node of type lua has an exec "
        "in Lua\n"
        "/nodes/b/post/1: line 2: unexpected symbol near '='\n"
        "/nodes/c/post: a fail node cannot take a post hook: a fail node runs no hook: it fails\n"
        "/nodes/d/prep: a lua node takes a prep hook or params, not both (prep's result is what "
        "exec gets)\n"
        "/nodes/d/budget: budget is the instructions a Lua hook of this node may run, 1 to 5000000 "
        "(--lua-budget-max)\n"
        "/nodes/e/prep: a set node cannot take a prep hook: prep is for lua, noop, http, llm, "
        "sleep and flow nodes\n"
        "/nodes/e/fallback: a set node cannot take a fallback hook: fallback is for nodes whose "
        "exec can fail: lua, "
        "http, llm, sleep, input");
    load_refused("{\"name\": \"bad\", \"start\": \"a\", \"code\": \"function f() end\","
                 " \"nodes\": {\"a\": {\"type\": \"noop\", \"post\": \"g\"}}}",
                 "/nodes/a/post: the code defines no function g");
    load_refused("{\"name\": \"bad\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\", "
                 "\"post\": \"g\"}}}",
                 "/nodes/a/post: the code defines no function g");
    load_refused(
        "{\"name\": \"bad\", \"start\": \"a\", \"code\": [\"x = 1\", \"error('at load')\"],"
        " \"nodes\": {\"a\": {\"type\": \"noop\"}}}",
        "/code/1: line 2: running the code failed: at load");
    load_refused("{\"name\": \"bad\", \"start\": \"a\", \"code\": \"while true do end\","
                 " \"nodes\": {\"a\": {\"type\": \"noop\"}}}",
                 "/code: running the code failed: stopped at /code:1 after its budget of 1000000 "
                 "instructions "
                 "(a node's \"budget\", --lua-budget)");
    load_refused("{\"name\": \"bad\", \"start\": \"a\", \"code\": \"\\u001bLuaT\\u0000\","
                 " \"nodes\": {\"a\": {\"type\": \"noop\"}}}",
                 "/code: attempt to load a binary chunk (mode is 't')");
    load_refused("{\"name\": \"bad\", \"start\": \"a\", \"code\": 5, \"nodes\": {\"a\": {\"type\": "
                 "\"noop\"}}}",
                 "/code: code is Lua: a string, or an array of lines (strings)");
    /* an array of lines with a number in it was answered "out of memory" (500 to a PUT) */
    load_refused("{\"name\": \"bad\", \"start\": \"a\", \"code\": [\"x = 1\", 2], \"nodes\": "
                 "{\"a\": {\"type\": \"noop\"}}}",
                 "/code: code is Lua: a string, or an array of lines (strings)");
    load_refused("{\"name\": \"bad\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\", "
                 "\"budget\": 5}}}",
                 "/nodes/a/budget: budget is for the node's Lua hooks, and it has none");
    load_refused("{\"name\": \"bad\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"map\", "
                 "\"items\": \"$shared/x\","
                 " \"node\": {\"type\": \"lua\", \"post\": \"return 1\"}}}}",
                 "/nodes/a/node/post: unknown member \"post\" of a map's node (retries, timeout "
                 "and out go on the map)");
}
END_TEST

/* What a call may change is put back after it, every call: a chunk may keep only so much of it. */
START_TEST(test_a_chunk_with_too_many_locals_to_put_back_is_refused) {
    size_t cap = 5000 * 64 + 256, n = 0;
    char *doc = malloc(cap);
    n += (size_t)snprintf(doc + n, cap - n, "{\"name\": \"many\", \"start\": \"a\", \"code\": [");
    for (int i = 0; i < 5000; i++)
        n += (size_t)snprintf(doc + n, cap - n, "%s\"do local x%d function F%d() x%d = 1 end end\"",
                              i ? ", " : "", i, i, i);
    snprintf(doc + n, cap - n, "], \"nodes\": {\"a\": {\"type\": \"noop\"}}}");
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    flow_def_t *def = NULL;
    ck_assert_int_eq(flow_doc_load_text(reg, doc, strlen(doc), "many.json", &def, &p), FLOW_ELOAD);
    ck_assert_uint_eq(p.count, 1);
    ck_assert_str_eq(p.items[0].message, "/code: cannot freeze the Lua state: the code keeps more than 4096 "
                                         "local variables and metamethod fields that a hook could change");
    flow_problems_clear(&p);
    free(doc);
}
END_TEST

START_TEST(test_code_beside_the_document_in_a_file) {
    char dir[] = "/tmp/luadocXXXXXX", json_path[128], lua_path[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(json_path, sizeof json_path, "%s/agent.json", dir);
    snprintf(lua_path, sizeof lua_path, "%s/agent.lua", dir);
    FILE *f = fopen(json_path, "w");
    fputs("{\"name\": \"agent\", \"start\": \"a\",\n \"nodes\": {\"a\": {\"type\": \"noop\", "
          "\"post\": \"go\"}}}\n",
          f);
    fclose(f);
    f = fopen(lua_path, "w");
    fputs("-- the agent's logic\nfunction go(shared)\n  shared.went = true\nend\n", f);
    fclose(f);
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    flow_def_t *def = NULL;
    ck_assert_int_eq(flow_doc_load_file(reg, json_path, &def, &p), 0);
    /* the code is part of the document, as GET /v1/flows shows it and stores keep it */
    ck_assert_ptr_nonnull(
        strstr(json_string_value(json_object_get(flow_doc_of(def), "code")), "shared.went"));
    outcome_clear(&out);
    harness_run(&h, def, NULL, NULL, &out);
    succeeded("{\"went\": true}");
    flow_def_unref(def);
    /* a problem in it is placed file:line */
    f = fopen(lua_path, "w");
    fputs("function go(shared)\n  shared.went = = true\nend\n", f);
    fclose(f);
    ck_assert_int_eq(flow_doc_load_file(reg, json_path, &def, &p), FLOW_ELOAD);
    char want[512];
    snprintf(want, sizeof want, "%s:2: unexpected symbol near '='", lua_path);
    tu_assert_problems("file", &p, want);
    flow_problems_clear(&p);
    /* a runtime error names the file too */
    f = fopen(lua_path, "w");
    fputs("function go(shared)\n  error('oops')\nend\n", f);
    fclose(f);
    ck_assert_int_eq(flow_doc_load_file(reg, json_path, &def, &p), 0);
    outcome_clear(&out);
    harness_run(&h, def, NULL, NULL, &out);
    snprintf(want, sizeof want, "node a, post: %s:2: oops", lua_path);
    failed_with("a", want);
    flow_def_unref(def);
    /* a document with code of its own and a file beside it: keep one */
    f = fopen(json_path, "w");
    fputs("{\"name\": \"agent\", \"start\": \"a\", \"code\": \"\", \"nodes\": {\"a\": {\"type\": "
          "\"noop\"}}}\n",
          f);
    fclose(f);
    ck_assert_int_eq(flow_doc_load_file(reg, json_path, &def, &p), FLOW_ELOAD);
    snprintf(want, sizeof want, "%s: the document has a \"code\" member too: keep one", lua_path);
    tu_assert_problems("both", &p, want);
    flow_problems_clear(&p);
    unlink(json_path);
    unlink(lua_path);
    rmdir(dir);
}
END_TEST

static Suite *script_suite(void) {
    Suite *s = suite_create("script");
    TCase *tc = tcase_create("bridge");
    tcase_add_checked_fixture(tc, NULL, teardown_eval);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_values_round_trip_unchanged);
    tcase_add_test(tc, test_empty_tables_arrays_and_objects);
    tcase_add_test(tc, test_what_is_not_json_is_refused);
    tcase_add_test(tc, test_every_escape_is_refused);
    tcase_add_test(tc, test_budget_memory_and_time_stop_a_call);
    tcase_add_test(tc, test_errors_name_their_line);
    tcase_add_test(tc, test_proxies_work_with_the_table_library);
    suite_add_tcase(s, tc);
    tc = tcase_create("hooks");
    tcase_add_checked_fixture(tc, setup_docs, teardown_docs);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_prep_and_post_loop_like_pocketflow);
    tcase_add_test(tc, test_code_chunk_functions_named_by_nodes);
    tcase_add_test(tc, test_steps_report_the_keys_they_write);
    tcase_add_test(tc, test_lua_exec_computes_into_out);
    tcase_add_test(tc, test_fallback_is_called_only_when_exec_fails);
    tcase_add_test(tc, test_prep_merges_over_http_params_and_post_reads_the_answer);
    tcase_add_test(tc, test_hooks_in_a_map_see_the_item_and_its_index);
    tcase_add_test(tc, test_a_flow_node_takes_prep_and_post);
    tcase_add_test(tc, test_runtime_errors_name_node_hook_and_line);
    tcase_add_test(tc, test_one_job_leaves_nothing_for_the_next);
    tcase_add_test(tc, test_log_lines_go_to_the_step_capped);
    tcase_add_test(tc, test_every_lua_problem_is_reported_at_load);
    tcase_add_test(tc, test_a_chunk_with_too_many_locals_to_put_back_is_refused);
    tcase_add_test(tc, test_code_beside_the_document_in_a_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return harness_main(script_suite());
}
