/* flow-bench.c: engine benchmarks, each printing one line of key=value.
 *   flow-bench steps N         one job whose node loops to itself N times
 *   flow-bench sleepers N S    N concurrent one-node jobs, each waiting S seconds on a timer
 *   flow-bench fanout N S      one job, one parallel batch node over N items each waiting S seconds
 *   flow-bench scraper BASE N MS LIMIT   one job of a flow document mapping an http node over N URLs of
 *                              a flowd-mock at BASE that each answer after MS ms, LIMIT at once
 *   flow-bench netpolicy N     N outbound-policy verdicts (flow/netpolicy.h), what the HTTP client asks
 *                              for every address it connects to and every request it sends
 * and their baselines, the same work on bare libuv and jansson with no engine, so that bench/run.sh
 * can print what the engine costs over them, measured in the same run:
 *   flow-bench bare-steps N    the same prep/exec/post calls in a plain loop
 *   flow-bench bare-sleepers N S   N uv_timer_t, each with a shared-store object, freed when due
 *   flow-bench bare-fanout N S     N uv_timer_t and an N-item array of results
 * and, apart from the engine:
 *   flow-bench regex JIT N     the patterns of issue 11 under the default limits (lib/re.h), each
 *                              matched N times (JIT 1: PCRE2's JIT, 0: its interpreter): a line per
 *                              pattern with the time of one match, and one schema check of 1,000
 *                              strings that spends the budget
 * and Lua hooks (bench/run-lua.sh compares them with PocketFlow's Python, bench/pocketflow_loop.py):
 *   flow-bench lua-steps N K   one job of a flow document whose noop node loops N times with its
 *                              prep and post in Lua (read the counter, add one, write it back,
 *                              "again"), on a shared store of the counter and K other keys
 *   flow-bench lua-calls N     N calls of an empty hook through the sandbox, and N lua_pcall of
 *                              the same function on a bare Lua state: what the sandbox adds */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "flow/doc.h"
#include "flow.h"
#include "flow/nodes.h"
#include "re.h"
#include "schema.h"
#include "script.h"

static double now_s(void) {
    return (double)uv_hrtime() / 1e9;
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static void quiet(flow_log_level_t level, const char *msg, void *data) {
    (void)level;
    (void)msg;
    (void)data;
}

static int parse_count(const char *s, unsigned long *out) {
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v == 0)
        return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* ---- steps: prep reads the counter, exec adds one, post writes it back ---- */

static unsigned long steps_target;

static int count_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    (void)ctx;
    *prep_res = json_incref(json_object_get(shared, "n"));
    return 0;
}

static void count_exec(flow_ctx_t *ctx, json_t *prep_res) {
    flow_done(ctx, json_integer(json_integer_value(prep_res) + 1));
}

static int count_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                      const char **action) {
    (void)ctx;
    (void)prep_res;
    json_object_set(shared, "n", exec_res);
    *action = (unsigned long)json_integer_value(exec_res) < steps_target ? "again" : "done";
    return 0;
}

static const flow_node_ops_t count_ops = {.prep = count_prep, .exec = count_exec, .post = count_post};

static int bench_steps(uv_loop_t *loop, flow_engine_t *eng, unsigned long n) {
    flow_def_t *def;
    flow_node_t *flow, *count;
    steps_target = n;
    if (flow_def_new("steps", &def) < 0 || flow_node_new(def, "flow", FLOW_FLOW, NULL, NULL, &flow) < 0 ||
        flow_node_new(def, "count", FLOW_NODE, &count_ops, NULL, &count) < 0 ||
        flow_node_next(count, "again", count) < 0 || flow_node_set_start(flow, count) < 0 ||
        flow_def_set_root(def, flow) < 0)
        return 1;
    json_t *shared = json_pack("{s:i}", "n", 0);
    flow_job_t *job;
    double t0 = now_s();
    if (flow_job_start(eng, def, shared, NULL, &job) < 0)
        return 1;
    uv_run(loop, UV_RUN_DEFAULT);
    double wall = now_s() - t0;
    printf("steps=%lu wall_s=%.3f steps_per_s=%.0f\n", n, wall, (double)n / wall);
    flow_def_unref(def);
    return 0;
}

/* ---- sleepers and fanout: exec waits on a timer ---- */

static uint64_t sleep_ms;
static unsigned long jobs_done;

static void sleep_exec(flow_ctx_t *ctx, json_t *prep_res) {
    (void)prep_res;
    flow_sleep(ctx, sleep_ms, NULL);
}

static const flow_node_ops_t sleep_ops = {.exec = sleep_exec};

static void count_done(flow_job_t *job, void *data) {
    (void)data;
    if (flow_job_status(job) == FLOW_SUCCEEDED)
        jobs_done++;
}

static flow_def_t *one_node_flow(const char *name, flow_kind_t kind, const flow_node_ops_t *ops) {
    flow_def_t *def;
    flow_node_t *flow, *node;
    if (flow_def_new(name, &def) < 0)
        return NULL;
    if (flow_node_new(def, "flow", FLOW_FLOW, NULL, NULL, &flow) < 0 ||
        flow_node_new(def, "node", kind, ops, NULL, &node) < 0 || flow_node_set_start(flow, node) < 0 ||
        flow_def_set_root(def, flow) < 0) {
        flow_def_unref(def);
        return NULL;
    }
    return def;
}

static int bench_sleepers(uv_loop_t *loop, flow_engine_t *eng, unsigned long n, double s) {
    flow_def_t *def = one_node_flow("sleepers", FLOW_NODE, &sleep_ops);
    if (def == NULL)
        return 1;
    sleep_ms = (uint64_t)(s * 1000.0);
    flow_job_opts_t opts = {.on_done = count_done};
    double t0 = now_s();
    for (unsigned long i = 0; i < n; i++)
        if (flow_job_start(eng, def, NULL, &opts, NULL) < 0)
            return 1;
    uv_run(loop, UV_RUN_DEFAULT);
    double wall = now_s() - t0;
    printf("jobs=%lu wait_s=%g wall_s=%.3f overhead_s=%.3f peak_rss_mib=%.0f ok=%lu\n", n, s, wall,
           wall - s, peak_rss_mib(), jobs_done);
    flow_def_unref(def);
    return jobs_done == n ? 0 : 1;
}

static unsigned long fanout_items;

static int fanout_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    (void)ctx;
    (void)shared;
    json_t *items = json_array();
    for (unsigned long i = 0; i < fanout_items; i++)
        if (json_array_append_new(items, json_integer((json_int_t)i)) < 0)
            return flow_error(ctx, FLOW_ENOMEM, "cannot build the item list");
    *prep_res = items;
    return 0;
}

static int fanout_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                       const char **action) {
    (void)ctx;
    (void)prep_res;
    json_object_set_new(shared, "results", json_integer((json_int_t)json_array_size(exec_res)));
    return 0;
}

static const flow_node_ops_t fanout_ops = {.prep = fanout_prep, .exec = sleep_exec, .post = fanout_post};

static int bench_fanout(uv_loop_t *loop, flow_engine_t *eng, unsigned long n, double s) {
    flow_def_t *def = one_node_flow("fanout", FLOW_PARALLEL_BATCH, &fanout_ops);
    if (def == NULL)
        return 1;
    fanout_items = n;
    sleep_ms = (uint64_t)(s * 1000.0);
    flow_job_opts_t opts = {.on_done = count_done};
    double t0 = now_s();
    if (flow_job_start(eng, def, NULL, &opts, NULL) < 0)
        return 1;
    uv_run(loop, UV_RUN_DEFAULT);
    double wall = now_s() - t0;
    printf("items=%lu wait_s=%g wall_s=%.3f peak_rss_mib=%.0f ok=%lu\n", n, s, wall, peak_rss_mib(),
           jobs_done);
    flow_def_unref(def);
    return jobs_done == 1 ? 0 : 1;
}

/* ---- scraper: the seed's web scraper shape through a flow document ---- */

static int bench_scraper(uv_loop_t *loop, flow_engine_t *eng, const char *base, unsigned long n, unsigned long ms,
                         unsigned long limit) {
    flow_http_t *http;
    flow_registry_t *reg;
    flow_def_t *def;
    flow_netrules_t *allow = NULL; /* the mock on loopback, as flowd --allow-outbound allows it */
    if (flow_netrules_new(&allow) < 0 || flow_netrules_add_url(allow, base, NULL, 0) < 0 ||
        flow_http_new(loop, &(flow_http_opts_t){.allow = allow}, &http) < 0 ||
        flow_registry_new(&reg) < 0)
        return 1;
    flow_netrules_unref(allow); /* the client keeps its own reference */
    flow_nodes_env_t env = {.http = http};
    if (flow_nodes_register(reg, &env) < 0)
        return 1;
    json_t *doc = json_pack("{s:s, s:s, s:{s:{s:s, s:s, s:I, s:{s:s, s:{s:s}}, s:s}}}", "name", "scrape", "start",
                            "fetch", "nodes", "fetch", "type", "map", "items", "$shared/urls", "limit",
                            (json_int_t)limit, "node", "type", "http", "params", "url", "$item", "out", "/pages");
    flow_problems_t problems = FLOW_PROBLEMS_INIT;
    if (flow_doc_load(reg, doc, &def, &problems) < 0) {
        fprintf(stderr, "scraper: the document was refused\n");
        return 1;
    }
    json_t *urls = json_array();
    for (unsigned long i = 0; i < n; i++)
        json_array_append_new(urls, json_sprintf("%s/delay/%lu/page/%lu", base, ms, i));
    flow_job_opts_t opts = {.id = "scrape", .on_done = count_done};
    double t0 = now_s();
    if (flow_job_start(eng, def, json_pack("{s:o}", "urls", urls), &opts, NULL) < 0)
        return 1;
    uv_run(loop, UV_RUN_DEFAULT);
    double wall = now_s() - t0;
    double ideal = (double)((n + limit - 1) / limit) * (double)ms / 1000.0;
    printf("items=%lu delay_ms=%lu limit=%lu wall_s=%.3f ideal_s=%.3f vs_ideal=%.2f peak_rss_mib=%.0f ok=%lu\n", n, ms,
           limit, wall, ideal, wall / ideal, peak_rss_mib(), jobs_done);
    flow_http_close(http);
    uv_run(loop, UV_RUN_DEFAULT);
    flow_def_unref(def);
    flow_registry_free(reg);
    json_decref(doc);
    return jobs_done == 1 ? 0 : 1;
}

/* ---- the outbound policy: one verdict per connection attempt and per request sent ---- */

static int bench_netpolicy(unsigned long n) {
    static const char *const ips[] = {"93.184.216.34", "10.1.2.3", "127.0.0.1", "2606:2800:220:1::1",
                                      "::ffff:169.254.169.254", "64:ff9b::a00:1", "172.20.0.9", "8.8.4.4"};
    enum { NIPS = sizeof ips / sizeof ips[0] };
    flow_netaddr_t addrs[NIPS];
    flow_netrules_t *allow = NULL, *deny = NULL, *extra = NULL;
    if (flow_netrules_new(&allow) < 0 || flow_netrules_new(&deny) < 0 || flow_netrules_new(&extra) < 0 ||
        flow_netrules_add_list(allow, "127.0.0.1:8090, 10.0.0.0/8:443, api.internal", NULL, 0) < 0 ||
        flow_netrules_add_list(deny, "203.0.113.0/24", NULL, 0) < 0 ||
        flow_netrules_add_list(extra, "[fd00::/8]:443, *.svc.local", NULL, 0) < 0)
        return 1;
    for (size_t i = 0; i < NIPS; i++)
        if (flow_netaddr_parse(ips[i], 443, &addrs[i]) < 0)
            return 1;
    flow_netpolicy_t policy = {.allow = allow, .deny = deny};
    unsigned long allowed = 0;
    double t0 = now_s();
    for (unsigned long i = 0; i < n; i++)
        allowed += (unsigned long)flow_netpolicy_check(&policy, extra, &addrs[i % NIPS], "example.com", NULL);
    double wall = now_s() - t0;
    printf("checks=%lu allowed=%lu wall_s=%.3f ns_per_check=%.1f\n", n, allowed, wall, wall * 1e9 / (double)n);
    flow_netrules_unref(allow);
    flow_netrules_unref(deny);
    flow_netrules_unref(extra);
    return 0;
}

/* ---- baselines ---- */

static int bare_steps(unsigned long n) {
    steps_target = n;
    json_t *shared = json_pack("{s:i}", "n", 0);
    double t0 = now_s();
    for (;;) {
        json_t *prep_res = NULL, *exec_res = NULL;
        const char *action = NULL;
        count_prep(NULL, shared, &prep_res);
        exec_res = json_integer(json_integer_value(prep_res) + 1);
        count_post(NULL, shared, prep_res, exec_res, &action);
        json_decref(prep_res);
        json_decref(exec_res);
        if (strcmp(action, "again") != 0)
            break;
    }
    double wall = now_s() - t0;
    json_decref(shared);
    printf("bare_steps=%lu wall_s=%.3f steps_per_s=%.0f\n", n, wall, (double)n / wall);
    return 0;
}

typedef struct bare_job {
    uv_timer_t timer;
    json_t *shared;
} bare_job_t;

static void bare_closed(uv_handle_t *h) {
    bare_job_t *j = h->data;
    json_decref(j->shared);
    free(j);
    jobs_done++;
}

static void bare_due(uv_timer_t *t) {
    uv_close((uv_handle_t *)t, bare_closed);
}

static int bare_sleepers(uv_loop_t *loop, unsigned long n, double s) {
    double t0 = now_s();
    for (unsigned long i = 0; i < n; i++) {
        bare_job_t *j = calloc(1, sizeof *j);
        if (j == NULL || (j->shared = json_object()) == NULL)
            return 1;
        uv_timer_init(loop, &j->timer);
        j->timer.data = j;
        uv_timer_start(&j->timer, bare_due, (uint64_t)(s * 1000.0), 0);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    double wall = now_s() - t0;
    printf("bare_jobs=%lu wait_s=%g wall_s=%.3f overhead_s=%.3f peak_rss_mib=%.0f ok=%lu\n", n, s, wall, wall - s,
           peak_rss_mib(), jobs_done);
    return jobs_done == n ? 0 : 1;
}

typedef struct bare_item {
    uv_timer_t timer;
    json_t *results;
    size_t index;
} bare_item_t;

static void bare_item_due(uv_timer_t *t) {
    bare_item_t *it = t->data;
    json_array_set_new(it->results, it->index, json_integer((json_int_t)it->index));
    jobs_done++;
    uv_close((uv_handle_t *)t, NULL);
}

static int bare_fanout(uv_loop_t *loop, unsigned long n, double s) {
    double t0 = now_s();
    json_t *items = json_array(), *results = json_array();
    bare_item_t *all = calloc(n, sizeof *all);
    if (items == NULL || results == NULL || all == NULL)
        return 1;
    for (unsigned long i = 0; i < n; i++) {
        json_array_append_new(items, json_integer((json_int_t)i));
        json_array_append(results, json_null());
    }
    for (unsigned long i = 0; i < n; i++) {
        all[i].results = results;
        all[i].index = i;
        uv_timer_init(loop, &all[i].timer);
        all[i].timer.data = &all[i];
        uv_timer_start(&all[i].timer, bare_item_due, (uint64_t)(s * 1000.0), 0);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    double wall = now_s() - t0;
    free(all);
    json_decref(items);
    json_decref(results);
    printf("bare_items=%lu wait_s=%g wall_s=%.3f peak_rss_mib=%.0f ok=%lu\n", n, s, wall, peak_rss_mib(), jobs_done);
    return jobs_done == n ? 0 : 1;
}

/* ---- regular expressions ---- */

static char *run_of(char c, size_t n, const char *tail) {
    size_t t = strlen(tail);
    char *s = malloc(n + t + 1);
    if (s != NULL) {
        memset(s, c, n);
        memcpy(s + n, tail, t + 1);
    }
    return s;
}

static int bench_regex(int jit, unsigned long n) {
    static const struct {
        const char *name, *pattern;
        char c;
        size_t count;
        const char *tail;
    } cases[] = {
        {"nested_plus", "(a+)+$", 'a', 10000, "!"},
        {"backref", "^(a*)*\\1$", 'a', 81, "b"},
        {"alternation", "(a|aa)*c", 'a', 30, "bc"},
        {"email_ok", "^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$", 'a', 20, "@example.org"},
    };
    flow_re_limits_t lim = {.no_jit = !jit};
    char why[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        flow_re_t *re = NULL;
        char *s = run_of(cases[i].c, cases[i].count, cases[i].tail);
        if (s == NULL || flow_re_compile(cases[i].pattern, strlen(cases[i].pattern), &lim, &re, why, sizeof why) < 0) {
            fprintf(stderr, "regex %s: %s\n", cases[i].name, s ? why : "out of memory");
            free(s);
            return 1;
        }
        int rc = 0;
        double t0 = now_s();
        for (unsigned long k = 0; k < n; k++) {
            flow_re_run_t run;
            flow_re_run_init(&run, &lim);
            rc = flow_re_match(&run, re, s, strlen(s), why, sizeof why);
            flow_re_run_end(&run);
        }
        double wall = now_s() - t0;
        printf("regex=%s jit=%d matches=%lu wall_s=%.3f ms_per_match=%.3f result=%s\n", cases[i].name,
               flow_re_jit(re), n, wall, wall * 1000.0 / (double)n,
               rc == 1 ? "match" : rc == 0 ? "no_match" : rc == FLOW_ETOOBIG ? "limit" : "error");
        flow_re_free(re);
        free(s);
    }
    /* one answer of 1,000 strings, each far under the match limit: the budget stops the check */
    json_t *schema = json_pack("{s:{s:s}}", "items", "pattern", "(a|aa)*c");
    json_t *answer = json_array();
    char *s = run_of('a', 22, "bc");
    for (int i = 0; i < 1000 && s != NULL; i++)
        json_array_append_new(answer, json_string(s));
    free(s);
    flow_schema_t *sc = NULL;
    if (flow_schema_compile_with(schema, NULL, &lim, &sc, NULL) < 0) {
        json_decref(schema);
        json_decref(answer);
        return 1;
    }
    int rc = 0;
    double t0 = now_s();
    for (unsigned long k = 0; k < n; k++)
        rc = flow_schema_validate(sc, answer, NULL);
    double wall = now_s() - t0;
    printf("regex=budget_1000_strings jit=%d checks=%lu wall_s=%.3f ms_per_check=%.3f result=%s\n", jit, n, wall,
           wall * 1000.0 / (double)n, rc == FLOW_EINVAL ? "refused" : "accepted");
    flow_schema_free(sc);
    json_decref(schema);
    json_decref(answer);
    return 0;
}

/* ---- Lua hooks ---- */

static const char lua_loop_doc[] =
    "{\"name\": \"lua-steps\", \"start\": \"count\", \"nodes\": {"
    " \"count\": {\"type\": \"noop\", \"prep\": \"return shared.n\","
    "  \"post\": [\"shared.n = prep_res + 1\","
    "            \"if shared.n < shared.limit then return 'again' end\", \"return 'done'\"],"
    "  \"next\": {\"again\": \"count\", \"done\": null}}}}";

static int bench_lua_steps(uv_loop_t *loop, flow_engine_t *eng, unsigned long n,
                           unsigned long keys) {
    flow_registry_t *reg;
    flow_nodes_env_t env = {0};
    flow_def_t *def = NULL;
    flow_problems_t problems = FLOW_PROBLEMS_INIT;
    int rc = 1;
    if (flow_registry_new(&reg) < 0 || flow_nodes_register(reg, &env) < 0)
        return 1;
    if (flow_doc_load_text(reg, lua_loop_doc, sizeof lua_loop_doc - 1, "lua-steps", &def,
                           &problems) < 0) {
        fprintf(stderr, "lua-steps: the document did not load\n");
        goto out;
    }
    json_t *shared = json_pack("{s:i, s:I}", "n", 0, "limit", (json_int_t)n);
    for (unsigned long i = 0; i < keys; i++) { /* the others: small objects, as stores hold */
        char key[32];
        snprintf(key, sizeof key, "key%05lu", i);
        json_t *v = json_pack("{s:I, s:s, s:[i,i]}", "id", (json_int_t)i, "text", "a text", "pair", 1, 2);
        json_object_set_new(shared, key, v);
    }
    flow_job_t *job;
    double t0 = now_s();
    if (flow_job_start(eng, def, shared, NULL, &job) < 0)
        goto out;
    uv_run(loop, UV_RUN_DEFAULT);
    double wall = now_s() - t0;
    printf("lua_steps=%lu keys=%lu wall_s=%.3f steps_per_s=%.0f ns_per_step=%.0f\n", n, keys + 2,
           wall, (double)n / wall, wall * 1e9 / (double)n);
    rc = 0;
out:
    flow_problems_clear(&problems);
    flow_def_unref(def);
    flow_registry_free(reg);
    return rc;
}

static int bench_lua_calls(unsigned long n) {
    static const char *const params[] = {"shared", NULL};
    flow_script_t *s;
    flow_problems_t problems = FLOW_PROBLEMS_INIT;
    json_t *code = json_string("");
    json_t *shared = json_pack("{s:i}", "n", 0);
    int ref;
    if (flow_script_new(NULL, &s) < 0 ||
        flow_script_hook(s, code, params, "bench", 1, &problems, &ref) < 0 ||
        flow_script_freeze(s, "bench", &problems) < 0)
        return 1;
    flow_script_call_t c = {
        .ref = ref, .args = {shared}, .nargs = 1, .writable = 1, .hook = "bench"};
    double t0 = now_s();
    for (unsigned long i = 0; i < n; i++)
        if (flow_script_call(s, &c, NULL, NULL) < 0)
            return 1;
    double sandboxed = now_s() - t0;
    flow_script_unref(s);
    /* the same function on a bare state: no budget, no proxies, no putting back */
    lua_State *L = luaL_newstate();
    if (L == NULL || luaL_loadstring(L, "local shared = ...; ") != LUA_OK)
        return 1;
    lua_newtable(L);
    t0 = now_s();
    for (unsigned long i = 0; i < n; i++) {
        lua_pushvalue(L, 1);
        lua_pushvalue(L, 2);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK)
            return 1;
        lua_pop(L, 1);
    }
    double bare = now_s() - t0;
    lua_close(L);
    json_decref(code);
    json_decref(shared);
    flow_problems_clear(&problems);
    printf("lua_calls=%lu wall_s=%.3f empty_hook_ns=%.0f bare_pcall_ns=%.0f sandbox_ns=%.0f\n", n,
           sandboxed + bare, sandboxed * 1e9 / (double)n, bare * 1e9 / (double)n,
           (sandboxed - bare) * 1e9 / (double)n);
    return 0;
}

static int usage(void) {
    fprintf(stderr, "usage: flow-bench steps N | sleepers N S | fanout N S | scraper BASE N MS LIMIT |"
                    " bare-steps N | bare-sleepers N S | bare-fanout N S | regex JIT N | lua-steps N K |"
                    " lua-calls N | netpolicy N\n");
    return 2;
}

int main(int argc, char **argv) {
    unsigned long n;
    double s = 0;
    if (argc == 6 && strcmp(argv[1], "scraper") == 0) {
        unsigned long ms, limit;
        if (parse_count(argv[3], &n) < 0 || parse_count(argv[4], &ms) < 0 || parse_count(argv[5], &limit) < 0)
            return usage();
        flow_set_logger(quiet, NULL);
        uv_loop_t loop;
        flow_engine_t *eng;
        if (uv_loop_init(&loop) != 0 || flow_engine_new(&loop, NULL, &eng) < 0)
            return 1;
        int rc = bench_scraper(&loop, eng, argv[2], n, ms, limit);
        flow_engine_close(eng);
        uv_run(&loop, UV_RUN_DEFAULT);
        return uv_loop_close(&loop) == 0 ? rc : 1;
    }
    if (argc == 4 && strcmp(argv[1], "regex") == 0) {
        if (parse_count(argv[3], &n) < 0 || n == 0 || (strcmp(argv[2], "0") != 0 && strcmp(argv[2], "1") != 0))
            return usage();
        return bench_regex(argv[2][0] == '1', n);
    }
    if (argc < 3 || parse_count(argv[2], &n) < 0)
        return usage();
    if (argc == 3 && strcmp(argv[1], "netpolicy") == 0)
        return bench_netpolicy(n);
    if (strcmp(argv[1], "lua-steps") == 0 || strcmp(argv[1], "lua-calls") == 0) {
        unsigned long keys = 0;
        char *end;
        if (argc == 4)
            keys = strtoul(argv[3], &end, 10);
        if (argc > 4 || (argc == 4 && *end != '\0'))
            return usage();
        flow_set_logger(quiet, NULL);
        if (strcmp(argv[1], "lua-calls") == 0)
            return bench_lua_calls(n);
        uv_loop_t loop;
        flow_engine_t *eng;
        if (uv_loop_init(&loop) != 0 || flow_engine_new(&loop, NULL, &eng) < 0)
            return 1;
        int rc = bench_lua_steps(&loop, eng, n, keys);
        flow_engine_close(eng);
        uv_run(&loop, UV_RUN_DEFAULT);
        return uv_loop_close(&loop) == 0 ? rc : 1;
    }
    int timed = strstr(argv[1], "sleepers") != NULL || strstr(argv[1], "fanout") != NULL;
    if (timed && (argc != 4 || parse_seconds(argv[3], &s) < 0))
        return usage();
    if (!timed && argc != 3)
        return usage();
    flow_set_logger(quiet, NULL);
    uv_loop_t loop;
    flow_engine_t *eng;
    if (uv_loop_init(&loop) != 0 || flow_engine_new(&loop, NULL, &eng) < 0)
        return 1;
    int rc;
    if (strcmp(argv[1], "steps") == 0)
        rc = bench_steps(&loop, eng, n);
    else if (strcmp(argv[1], "sleepers") == 0)
        rc = bench_sleepers(&loop, eng, n, s);
    else if (strcmp(argv[1], "fanout") == 0)
        rc = bench_fanout(&loop, eng, n, s);
    else if (strcmp(argv[1], "bare-steps") == 0)
        rc = bare_steps(n);
    else if (strcmp(argv[1], "bare-sleepers") == 0)
        rc = bare_sleepers(&loop, n, s);
    else if (strcmp(argv[1], "bare-fanout") == 0)
        rc = bare_fanout(&loop, n, s);
    else
        return usage();
    flow_engine_close(eng);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        rc = 1;
    return rc;
}
