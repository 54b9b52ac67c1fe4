/* test_nodes.c: every built-in node type of flow documents, run as jobs on the engine against the mock
 * HTTP server (tests/support/mock.c) playing the recipe API and an OpenAI-compatible endpoint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/doc.h"
#include "flow/nodes.h"
#include "flow/pointer.h"
#include "support/harness.h"
#include "support/json_util.h"
#include "support/mock.h"

#define API_KEY "sk-test-123"

static harness_t h;
static outcome_t out;
static mock_t *mock;
static flow_http_t *http;
static flow_nodes_env_t env;
static flow_registry_t *reg;
static flow_netrules_t *allow, *llm_allow;
static char base[64];

/* The client may reach the mock (as flowd --allow-outbound 127.0.0.1:PORT would let it), and llm
 * nodes their endpoint (as flowd allows the host and port of --llm-base-url). */
static void setup(void) {
    mock_opts_t mo = {.api_key = API_KEY};
    ck_assert_int_eq(mock_start(&mo, &mock), 0);
    harness_init(&h, NULL);
    snprintf(base, sizeof base, "127.0.0.1:%u", (unsigned)mock_port(mock));
    allow = rules_of(base);
    ck_assert_int_eq(flow_http_new(&h.loop, &(flow_http_opts_t){.allow = allow}, &http), 0);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", (unsigned)mock_port(mock));
    static char llm[96];
    snprintf(llm, sizeof llm, "%s/v1", base);
    llm_allow = rules_of("");
    ck_assert_int_eq(flow_netrules_add_url(llm_allow, llm, NULL, 0), 0);
    env = (flow_nodes_env_t){.http = http, .llm_base_url = llm, .llm_api_key = API_KEY, .llm_model = "mock-model",
                             .llm_allow = llm_allow};
    ck_assert_int_eq(flow_registry_new(&reg), 0);
    ck_assert_int_eq(flow_nodes_register(reg, &env), 0);
}

static void teardown(void) {
    outcome_clear(&out);
    flow_http_close(http);
    harness_close(&h);
    flow_registry_free(reg);
    mock_stop(mock);
    flow_netrules_unref(allow);
    flow_netrules_unref(llm_allow);
}

/* Replaces every BASE in text by the mock's URL. */
static char *with_base(const char *text) {
    size_t cap = strlen(text) * 2 + 256;
    char *s = malloc(cap);
    size_t n = 0;
    for (const char *p = text; *p;) {
        if (strncmp(p, "BASE", 4) == 0) {
            n += (size_t)snprintf(s + n, cap - n, "%s", base);
            p += 4;
        } else {
            s[n++] = *p++;
        }
    }
    s[n] = '\0';
    return s;
}

static flow_def_t *load(const char *text) {
    char *t = with_base(text);
    json_t *doc = tu_json(t);
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    flow_def_t *def = NULL;
    int rc = flow_doc_load(reg, doc, &def, &p);
    char *ptext = NULL;
    flow_problems_text(&p, &ptext);
    ck_assert_msg(rc == 0, "document refused: %s", ptext ? ptext : "");
    flow_free(ptext);
    flow_problems_clear(&p);
    json_decref(doc);
    free(t);
    return def;
}

/* Loads and runs a document; shared may be NULL. */
static void run(const char *text, json_t *shared) {
    flow_def_t *def = load(text);
    harness_run(&h, def, shared, &(flow_job_opts_t){.id = "job42"}, &out);
    flow_def_unref(def);
}

static json_t *at(const char *pointer) {
    json_t *v = NULL;
    flow_pointer_get(out.shared, pointer, &v);
    return v;
}

START_TEST(test_noop_and_set) {
    run("{\"name\": \"s\", \"params\": {\"greeting\": \"Hello\"}, \"start\": \"a\", \"nodes\": {"
        " \"a\": {\"type\": \"noop\", \"next\": {\"default\": \"b\"}},"
        " \"b\": {\"type\": \"set\", \"params\": {\"/text\": \"{{$params/greeting}}, {{$shared/name}}!\","
        "        \"/copy\": \"$shared/list\", \"/deep/n\": 3}}}}",
        json_pack("{s:s, s:[i]}", "name", "Ada", "list", 1));
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    tu_assert_json("set", out.shared,
                   "{\"name\": \"Ada\", \"list\": [1], \"text\": \"Hello, Ada!\", \"copy\": [1], \"deep\": {\"n\": 3}}");
    /* the copy is a copy, not the same array twice */
    ck_assert_ptr_ne(at("/copy"), at("/list"));
}
END_TEST

/* Pointers made from data: each spliced value is one token, escaped ("b/c~d" names one member),
 * in set's keys, in out, and in references ("$shared/order/{{$shared/i}}"); "/x/-" makes a list. */
START_TEST(test_pointers_made_from_data_name_one_member) {
    run("{\"name\": \"p\", \"start\": \"a\", \"nodes\": {"
        " \"a\": {\"type\": \"set\", \"next\": {\"default\": \"b\"}, \"params\": {"
        "   \"/byname/{{$shared/who/name}}\": \"$shared/who/age\", \"/pick\": "
        "\"$shared/order/{{$shared/i}}\","
        "   \"/list/-\": \"$shared/order/{{ $shared/i }}\"}},"
        " \"b\": {\"type\": \"sleep\", \"params\": {\"seconds\": 0}, \"out\": "
        "\"/slept/{{$shared/who/name}}\"}}}",
        tu_json("{\"who\": {\"name\": \"b/c~d\", \"age\": 3}, \"order\": [\"x\", \"y\", \"z\"], "
                "\"i\": 2}"));
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    tu_assert_json("byname", at("/byname"), "{\"b/c~d\": 3}");
    tu_assert_json("pick", at("/pick"), "\"z\"");
    tu_assert_json("list", at("/list"), "[\"z\"]");
    tu_assert_json("slept", at("/slept"), "{\"b/c~d\": 0}");
    outcome_clear(&out);
    /* a reference that finds nothing names the pointer it made */
    run("{\"name\": \"p\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"set\", \"params\": {"
        " \"/pick\": \"$shared/order/{{$shared/i}}\"}}}}",
        tu_json("{\"order\": [\"x\"], \"i\": 7}"));
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_ENOTFOUND);
    ck_assert_str_eq(out.error_message, "$shared/order/7 not found");
}
END_TEST

START_TEST(test_sleep_takes_its_seconds_from_a_reference) {
    run("{\"name\": \"z\", \"start\": \"nap\", \"nodes\": {"
        " \"nap\": {\"type\": \"sleep\", \"params\": {\"seconds\": \"$shared/s\"}, \"out\": \"/slept\"}}}",
        json_pack("{s:f}", "s", 0.02));
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert(json_real_value(at("/slept")) == 0.02);
    ck_assert_uint_ge(out.history[0].end_us - out.history[0].start_us, 20000);
    outcome_clear(&out);
    run("{\"name\": \"z\", \"start\": \"nap\", \"nodes\": {\"nap\": {\"type\": \"sleep\", \"params\": {\"seconds\": \"$shared/s\"}}}}",
        json_pack("{s:s}", "s", "soon"));
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_str_eq(out.error_message, "sleep: seconds must be a number from 0 to 2592000, not \"soon\"");
}
END_TEST

START_TEST(test_choice_picks_the_first_case_that_holds) {
    static const struct {
        const char *value;
        const char *action;
    } cases[] = {
        {"{\"v\": \"yes\"}", "eq"},       {"{\"v\": 12}", "gt"},     {"{\"v\": 3}", "le"},
        {"{\"v\": \"n\"}", "in"},         {"{\"v\": \"abc-9\"}", "matches"},
        {"{}", "missing"},                {"{\"v\": [1]}", "array"}, {"{\"v\": true}", "default-action"},
    };
    const char *doc =
        "{\"name\": \"c\", \"start\": \"pick\", \"nodes\": {\"pick\": {\"type\": \"choice\", \"params\": {"
        "  \"value\": \"$shared/v\", \"default\": \"default-action\", \"cases\": ["
        "   {\"eq\": \"yes\", \"action\": \"eq\"}, {\"gt\": 10, \"action\": \"gt\"}, {\"le\": 3, \"action\": \"le\"},"
        "   {\"in\": [\"n\", \"no\"], \"action\": \"in\"}, {\"matches\": \"^[a-z]+-[0-9]$\", \"action\": \"matches\"},"
        "   {\"exists\": false, \"action\": \"missing\"}, {\"type\": \"array\", \"action\": \"array\"}]}}}}";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run(doc, tu_json(cases[i].value));
        ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
        ck_assert_msg(strcmp(out.last_action, cases[i].action) == 0, "%s: got %s, wanted %s", cases[i].value,
                      out.last_action, cases[i].action);
        outcome_clear(&out);
    }
}
END_TEST

/* issue 11: a pattern that backtracks for ever fails the job at the match limit, with a message
 * naming it, instead of holding the loop; a pattern PCRE2 refuses is refused when loaded; the limits
 * come from the environment (flowd's --regex-* flags). */
START_TEST(test_choice_patterns_are_bounded) {
    const char *doc = "{\"name\": \"c\", \"start\": \"pick\", \"nodes\": {\"pick\": {\"type\": \"choice\", \"params\": {"
                      "  \"value\": \"$shared/v\", \"default\": \"other\", \"cases\": ["
                      "   {\"eq\": \"x\", \"action\": \"x\"}, {\"matches\": \"(a+)+$\", \"action\": \"bomb\"}]}}}}";
    char *bomb = tu_repeat('a', 10000, "!");
    run(doc, json_pack("{s:s}", "v", bomb));
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_ETOOBIG);
    ck_assert_str_eq(out.error_message, "choice: case 1 (matches (a+)+$): the regex match limit (1000000) was reached");
    ck_assert_str_eq(out.error_node, "pick");
    outcome_clear(&out);
    run(doc, json_pack("{s:s}", "v", "aaaa"));
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(out.last_action, "bomb");
    outcome_clear(&out);

    /* the environment's limits */
    flow_nodes_env_t low = env;
    low.re_limits.match_limit = 5000;
    flow_registry_t *reg2 = NULL;
    ck_assert_int_eq(flow_registry_new(&reg2), 0);
    ck_assert_int_eq(flow_nodes_register(reg2, &low), 0);
    json_t *d = tu_json(doc);
    flow_def_t *def = NULL;
    ck_assert_int_eq(flow_doc_load(reg2, d, &def, NULL), 0);
    free(bomb);
    bomb = tu_repeat('a', 30, "!");
    harness_run(&h, def, json_pack("{s:s}", "v", bomb), NULL, &out);
    ck_assert_str_eq(out.error_message, "choice: case 1 (matches (a+)+$): the regex match limit (5000) was reached");
    flow_def_unref(def);
    json_decref(d);

    flow_problems_t p = FLOW_PROBLEMS_INIT;
    d = tu_json("{\"name\": \"c\", \"start\": \"pick\", \"nodes\": {\"pick\": {\"type\": \"choice\", \"params\": {"
                " \"value\": 1, \"cases\": [{\"matches\": \"^a+++++++++++++++++++++$\", \"action\": \"a\"},"
                " {\"matches\": \"((a{100}){100}){100}\", \"action\": \"b\"}, {\"matches\": 5, \"action\": \"c\"}]}}}}");
    ck_assert_int_eq(flow_doc_load(reg2, d, &def, &p), FLOW_ELOAD);
    tu_assert_problems("bad patterns", &p,
                       "/nodes/pick/params/cases/0: matches: not a valid regular expression: quantifier does not "
                       "follow a repeatable item at offset 4\n"
                       "/nodes/pick/params/cases/1: matches: not a valid regular expression: its compiled form would "
                       "be larger than PCRE2 allows\n"
                       "/nodes/pick/params/cases/2: matches needs a regular expression (a string)");
    flow_problems_clear(&p);
    json_decref(d);
    flow_registry_free(reg2);
    free(bomb);
}
END_TEST

/* A case's operand is evaluated as params are: a reference is the value it names, a template its
 * text, "$$" a literal "$". */
START_TEST(test_choice_operands_may_be_references) {
    const char *doc = "{\"name\": \"c\", \"params\": {\"limit\": 10}, \"start\": \"pick\", "
                      "\"nodes\": {\"pick\": {"
                      " \"type\": \"choice\", \"params\": {\"value\": \"$shared/v\", \"default\": "
                      "\"none\", \"cases\": ["
                      "  {\"eq\": \"$shared/b\", \"action\": \"same-as-b\"}, {\"in\": "
                      "\"$shared/list\", \"action\": \"listed\"},"
                      "  {\"gt\": \"$params/limit\", \"action\": \"over\"}, {\"eq\": "
                      "\"{{$shared/b}}-x\", \"action\": \"tmpl\"},"
                      "  {\"eq\": \"$$shared/b\", \"action\": \"literal\"}]}}}}";
    static const struct {
        const char *shared, *action;
    } cases[] = {
        {"{\"v\": {\"k\": [1]}, \"b\": {\"k\": [1]}, \"list\": []}", "same-as-b"},
        {"{\"v\": 3, \"b\": 4, \"list\": [2, 3]}", "listed"},
        {"{\"v\": 11, \"b\": 4, \"list\": []}", "over"},
        {"{\"v\": \"4-x\", \"b\": 4, \"list\": []}", "tmpl"},
        {"{\"v\": \"$shared/b\", \"b\": 4, \"list\": []}", "literal"},
        {"{\"v\": 5, \"b\": 4, \"list\": []}", "none"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run(doc, tu_json(cases[i].shared));
        ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
        ck_assert_msg(strcmp(out.last_action, cases[i].action) == 0, "%s: got %s, wanted %s",
                      cases[i].shared, out.last_action, cases[i].action);
        outcome_clear(&out);
    }
    /* an operand that names nothing fails the node, saying which case */
    run(doc, tu_json("{\"v\": 1}"));
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_str_eq(out.error_message, "choice: case 0: $shared/b not found");
    outcome_clear(&out);
    run(doc, tu_json("{\"v\": 1, \"b\": 2, \"list\": {}}"));
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_str_eq(out.error_message, "choice: case 1: in needs an array of values");
}
END_TEST

START_TEST(test_fail_ends_the_job_with_its_message) {
    run("{\"name\": \"f\", \"start\": \"stop\", \"nodes\": {"
        " \"stop\": {\"type\": \"fail\", \"params\": {\"message\": \"no recipe for {{$shared/i}}\"}}}}",
        json_pack("{s:s}", "i", "tofu"));
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_EFAILED);
    ck_assert_str_eq(out.error_message, "no recipe for tofu");
    ck_assert_str_eq(out.error_node, "stop");
}
END_TEST

/* ---- input ---- */

static int answer(flow_job_t *job, const char *json, char *message, size_t cap) {
    flow_error_t err = {0};
    json_t *v = tu_json(json);
    int rc = flow_job_input(job, v, &err);
    snprintf(message, cap, "%s", err.message ? err.message : "");
    flow_error_clear(&err);
    json_decref(v);
    return rc;
}

static void run_until_waiting(flow_job_t *job) {
    while (!out.done && flow_job_status(job) != FLOW_WAITING)
        uv_run(&h.loop, UV_RUN_ONCE);
}

START_TEST(test_input_waits_refuses_a_bad_answer_and_resumes_with_a_good_one) {
    flow_def_t *def = load(
        "{\"name\": \"order\", \"start\": \"ask\", \"nodes\": {"
        " \"ask\": {\"type\": \"input\", \"params\": {\"prompt\": \"How many servings of {{$shared/dish}}?\","
        "          \"schema\": {\"type\": \"object\", \"required\": [\"servings\"],"
        "                      \"properties\": {\"servings\": {\"type\": \"integer\", \"minimum\": 1}}}},"
        "          \"out\": \"/order\"}}}");
    flow_job_t *job = harness_start(&h, def, json_pack("{s:s}", "dish", "soup"), NULL, &out);
    run_until_waiting(job);
    tu_assert_json("waiting for", flow_job_waiting_for(job),
                   "{\"prompt\": \"How many servings of soup?\", \"schema\": {\"type\": \"object\", \"required\": "
                   "[\"servings\"], \"properties\": {\"servings\": {\"type\": \"integer\", \"minimum\": 1}}}}");
    char msg[256];
    ck_assert_int_eq(answer(job, "{\"servings\": 0}", msg, sizeof msg), FLOW_EINVAL);
    ck_assert_str_eq(msg, "the answer does not meet the schema: /servings: must be >= 1");
    ck_assert_int_eq(flow_job_status(job), FLOW_WAITING);
    ck_assert_int_eq(answer(job, "{\"servings\": 2}", msg, sizeof msg), 0);
    while (!out.done)
        uv_run(&h.loop, UV_RUN_ONCE);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    tu_assert_json("order", at("/order"), "{\"servings\": 2}");
    flow_def_unref(def);
}
END_TEST

/* An answer that a pattern of the schema cannot check within the limits is refused (HTTP 422 in
 * flowd), saying which limit, and the job keeps waiting for a better one. */
START_TEST(test_input_answers_that_meet_a_regex_limit_are_refused) {
    flow_def_t *def = load("{\"name\": \"named\", \"start\": \"ask\", \"nodes\": {"
                           " \"ask\": {\"type\": \"input\", \"params\": {\"prompt\": \"Name?\","
                           "          \"schema\": {\"type\": \"string\", \"pattern\": \"^(\\\\w+\\\\s?)*$\"}},"
                           "          \"out\": \"/name\"}}}");
    flow_job_t *job = harness_start(&h, def, NULL, NULL, &out);
    run_until_waiting(job);
    char msg[256];
    ck_assert_int_eq(answer(job, "\"an answer that goes on and on and on and on and on!\"", msg, sizeof msg),
                     FLOW_EINVAL);
    ck_assert_str_eq(msg, "the answer does not meet the schema: cannot be checked against the pattern "
                          "^(\\w+\\s?)*$: the regex match limit (1000000) was reached");
    ck_assert_int_eq(flow_job_status(job), FLOW_WAITING);
    ck_assert_int_eq(answer(job, "\"Ada Lovelace\"", msg, sizeof msg), 0);
    while (!out.done)
        uv_run(&h.loop, UV_RUN_ONCE);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(json_string_value(at("/name")), "Ada Lovelace");
    flow_def_unref(def);
}
END_TEST

/* The node's timeout, in ms, in a flow whose input node maps answers to actions. */
static flow_def_t *ask_ok(int timeout_ms) {
    char doc[512];
    snprintf(doc, sizeof doc,
             "{\"name\": \"ok\", \"start\": \"ask\", \"nodes\": {"
             " \"ask\": {\"type\": \"input\", \"timeout\": %d, \"params\": {\"prompt\": \"OK?\","
             "   \"actions\": {\"yes\": \"accept\", \"no\": \"retry\"}, \"timeout_action\": \"late\"},"
             "   \"out\": \"/answer\", \"next\": {\"accept\": null, \"retry\": null, \"late\": null}}}}",
             timeout_ms);
    return load(doc);
}

START_TEST(test_input_actions_and_timeout_action) {
    /* a timeout far longer than the test: on a loaded machine a short one fired before the answers
     * (the job ended and was freed under them, ASan said) */
    flow_def_t *def = ask_ok(600000);
    flow_job_t *job = harness_start(&h, def, NULL, NULL, &out);
    run_until_waiting(job);
    char msg[256];
    ck_assert_int_eq(answer(job, "\"maybe\"", msg, sizeof msg), FLOW_EINVAL);
    ck_assert_str_eq(msg, "the answer must be one of \"yes\", \"no\"");
    ck_assert_int_eq(answer(job, "\"no\"", msg, sizeof msg), 0);
    while (!out.done)
        uv_run(&h.loop, UV_RUN_ONCE);
    ck_assert_str_eq(out.last_action, "retry");
    ck_assert_str_eq(json_string_value(at("/answer")), "no");
    outcome_clear(&out);
    flow_def_unref(def);
    /* nobody answers: after the timeout the node gives its timeout action */
    def = ask_ok(30);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(out.last_action, "late");
    ck_assert_ptr_null(at("/answer"));
    flow_def_unref(def);
}
END_TEST

/* ---- http ---- */

START_TEST(test_http_get_parses_json_answers) {
    run("{\"name\": \"get\", \"start\": \"fetch\", \"nodes\": {"
        " \"fetch\": {\"type\": \"http\", \"params\": {\"url\": \"BASE/recipes\", \"query\": {\"ingredient\": \"$shared/i\"}},"
        "            \"out\": \"/fetched\"}}}",
        json_pack("{s:s}", "i", "sweet potato"));
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_int_eq(json_integer_value(at("/fetched/status")), 200);
    ck_assert_str_eq(json_string_value(at("/fetched/headers/content-type")), "application/json");
    tu_assert_json("body", at("/fetched/body"),
                   "{\"ingredient\": \"sweet potato\", \"recipes\": [\"sweet potato pasta\", \"grilled sweet potato\","
                   " \"sweet potato soup\"]}");
}
END_TEST

START_TEST(test_http_post_sends_body_headers_and_an_idempotency_key) {
    run("{\"name\": \"post\", \"start\": \"send\", \"nodes\": {"
        " \"send\": {\"type\": \"http\", \"params\": {\"method\": \"POST\", \"url\": \"BASE/echo\","
        "   \"headers\": {\"X-Trace\": \"t-{{$shared/n}}\"}, \"body\": {\"n\": \"$shared/n\", \"note\": \"hi {{$shared/n}}\"}},"
        "   \"out\": \"/echo\"}}}",
        json_pack("{s:i}", "n", 7));
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(json_string_value(at("/echo/body/method")), "POST");
    tu_assert_json("body", at("/echo/body/body"), "{\"n\": 7, \"note\": \"hi 7\"}");
    ck_assert_str_eq(json_string_value(at("/echo/body/headers/x-trace")), "t-7");
    ck_assert_str_eq(json_string_value(at("/echo/body/headers/content-type")), "application/json");
    ck_assert_str_eq(json_string_value(at("/echo/body/headers/idempotency-key")), "job42:send:1");
}
END_TEST

START_TEST(test_http_retries_a_failing_upstream_until_it_answers) {
    run("{\"name\": \"flaky\", \"start\": \"call\", \"nodes\": {"
        " \"call\": {\"type\": \"http\", \"params\": {\"url\": \"BASE/flaky/k1/2\"}, \"max_retries\": 3, \"wait\": 5,"
        "           \"out\": \"/r\"}}}",
        NULL);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_int_eq(json_integer_value(at("/r/body/attempts")), 3);
    ck_assert_uint_eq(out.history[0].tries, 3);
    /* every try carried the same key, so an upstream that honours it sees one request */
    ck_assert_uint_eq(mock_idempotency_count(mock, "job42:call:1"), 3);
}
END_TEST

/* The Idempotency-Key is <job>:<node>:<visit>[:<item>]: the same on the tries of one visit, new
 * on the next visit (an agent's decide node visited again must not replay the first answer), and
 * made of the steps' ordinals in nested flows and maps, so that it does not depend on the order in
 * which concurrent steps happen to start. */
static const char *key_at(const char *pointer) {
    return json_string_value(at(pointer));
}

START_TEST(test_each_visit_has_its_own_idempotency_key) {
    run("{\"name\": \"visits\", \"start\": \"call\", \"flows\": {"
        "   \"one\": {\"start\": \"ask\", \"nodes\": {\"ask\": {\"type\": \"http\","
        "     \"params\": {\"url\": \"BASE/echo\"}, \"out\": {\"/sub/-\": "
        "\"/body/headers/idempotency-key\"}}}}},"
        " \"nodes\": {"
        "  \"call\": {\"type\": \"http\", \"params\": {\"url\": "
        "\"BASE/flaky/{{$shared/flaky}}/1/echo\"},"
        "    \"max_retries\": 2, \"out\": {\"/keys/-\": \"/body/headers/idempotency-key\"},"
        "    \"next\": {\"default\": \"again\"}},"
        "  \"again\": {\"type\": \"choice\", \"params\": {\"value\": \"$shared/keys/1\", "
        "\"default\": \"loop\","
        "    \"cases\": [{\"exists\": true, \"action\": \"on\"}]}, \"next\": {\"loop\": \"call\", "
        "\"on\": \"each\"}},"
        "  \"each\": {\"type\": \"map\", \"items\": \"$shared/list\", \"node\": {\"type\": "
        "\"http\","
        "    \"params\": {\"url\": \"BASE/echo\"}}, \"out\": {\"/mapped\": \"\"}, \"next\": "
        "{\"default\": \"sub\"}},"
        "  \"sub\": {\"type\": \"flow\", \"flow\": \"one\", \"next\": {\"default\": \"subs\"}},"
        "  \"subs\": {\"type\": \"map\", \"items\": \"$shared/list\", \"flow\": \"one\"}}}",
        json_pack("{s:s, s:[i,i]}", "flaky", "visits-1", "list", 10, 11));
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    tu_assert_json("keys", at("/keys"), "[\"job42:call:1\", \"job42:call:3\"]");
    /* both tries of the first visit carried its key; the second visit sent one of its own */
    ck_assert_uint_eq(mock_idempotency_count(mock, "job42:call:1"), 2);
    ck_assert_uint_eq(mock_idempotency_count(mock, "job42:call:3"), 1);
    ck_assert_str_eq(key_at("/mapped/0/body/headers/idempotency-key"), "job42:each:5:0");
    ck_assert_str_eq(key_at("/mapped/1/body/headers/idempotency-key"), "job42:each:5:1");
    /* inside a flow node: its visit, then the step's; inside a map's runs: the run's index too */
    ck_assert_str_eq(key_at("/sub/0"), "job42:sub/ask:6.1");
    /* the two runs are concurrent: their keys may be stored in either order */
    const char *a = key_at("/sub/1"), *b = key_at("/sub/2");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    const char *run0 = "job42:subs/ask:7.0.1", *run1 = "job42:subs/ask:7.1.1";
    ck_assert_msg((strcmp(a, run0) == 0 && strcmp(b, run1) == 0) ||
                      (strcmp(a, run1) == 0 && strcmp(b, run0) == 0),
                  "%s and %s", a, b);
}
END_TEST

/* A resumed job (flowd after a crash) runs the visit in flight again with the key it had. */
START_TEST(test_a_resumed_job_sends_the_key_of_the_visit_it_reruns) {
    flow_def_t *def = load("{\"name\": \"r\", \"start\": \"a\", \"nodes\": {"
                           " \"a\": {\"type\": \"noop\", \"next\": {\"default\": \"b\"}},"
                           " \"b\": {\"type\": \"noop\", \"next\": {\"default\": \"c\"}},"
                           " \"c\": {\"type\": \"http\", \"params\": {\"url\": \"BASE/echo\"}, "
                           "\"out\": \"/c\"}}}");
    harness_run(&h, def, NULL, &(flow_job_opts_t){.id = "job42"}, &out);
    ck_assert_str_eq(key_at("/c/body/headers/idempotency-key"), "job42:c:3");
    outcome_clear(&out);
    /* resumed at c, with the two root-level steps before it in its history */
    harness_run(&h, def, NULL,
                &(flow_job_opts_t){.id = "job42", .resume_node = "c", .resume_steps = 2,
                                   .resume_visits = 2},
                &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_uint_eq(out.steps, 3);
    ck_assert_str_eq(key_at("/c/body/headers/idempotency-key"), "job42:c:3");
    ck_assert_uint_eq(mock_idempotency_count(mock, "job42:c:3"), 2);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_http_gives_up_after_its_last_try) {
    run("{\"name\": \"down\", \"start\": \"call\", \"nodes\": {"
        " \"call\": {\"type\": \"http\", \"params\": {\"url\": \"BASE/status/503\"}, \"max_retries\": 2}}}",
        NULL);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_EHTTP);
    char want[256];
    snprintf(want, sizeof want, "GET %s/status/503 answered 503: {\"status\":503}", base);
    ck_assert_str_eq(out.error_message, want);
    ck_assert_uint_eq(out.history[0].tries, 2);
    outcome_clear(&out);
    run("{\"name\": \"reset\", \"start\": \"call\", \"nodes\": {"
        " \"call\": {\"type\": \"http\", \"params\": {\"url\": \"BASE/reset\"}, \"max_retries\": 2}}}",
        NULL);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_EHTTP);
}
END_TEST

START_TEST(test_http_answers_over_the_body_cap_fail) {
    run("{\"name\": \"huge\", \"start\": \"call\", \"nodes\": {"
        " \"call\": {\"type\": \"http\", \"params\": {\"url\": \"BASE/huge/20000000\"}}}}", NULL);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_ETOOBIG);
}
END_TEST

START_TEST(test_cancel_aborts_requests_in_flight) {
    flow_def_t *def = load("{\"name\": \"slow\", \"start\": \"all\", \"nodes\": {"
                           " \"all\": {\"type\": \"map\", \"items\": \"$shared/ids\", \"limit\": 5,"
                           "          \"node\": {\"type\": \"http\", \"params\": {\"url\": \"BASE/delay/2000/echo?i={{$item}}\"}}}}}");
    flow_job_t *job = harness_start(&h, def, json_pack("{s:[i,i,i,i,i,i,i]}", "ids", 1, 2, 3, 4, 5, 6, 7), NULL, &out);
    mock_stats_t st;
    do {
        uv_run(&h.loop, UV_RUN_ONCE);
        mock_stats(mock, &st);
    } while (st.in_flight < 5);
    ck_assert_int_eq(flow_job_cancel(job), 0);
    while (!out.done)
        uv_run(&h.loop, UV_RUN_ONCE);
    ck_assert_int_eq(out.status, FLOW_CANCELED);
    ck_assert_int_eq(mock_wait_idle(mock, 10000), 0);
    mock_stats(mock, &st);
    ck_assert_uint_eq(st.aborted, 5);
    ck_assert_uint_eq(st.requests, 5);
    flow_def_unref(def);
}
END_TEST

/* ---- llm ---- */

START_TEST(test_llm_asks_the_model_and_keeps_the_key_out_of_the_job) {
    run("{\"name\": \"ask\", \"start\": \"suggest\", \"nodes\": {"
        " \"suggest\": {\"type\": \"llm\", \"params\": {\"system\": \"You are a chef.\","
        "   \"prompt\": \"Pick one of {{$shared/recipes}}\"}, \"out\": \"/suggestion\"}}}",
        json_pack("{s:[s,s]}", "recipes", "tofu soup", "tofu pasta"));
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(json_string_value(at("/suggestion/text")), "tofu soup");
    ck_assert_str_eq(json_string_value(at("/suggestion/model")), "mock-model");
    ck_assert(json_integer_value(at("/suggestion/usage/total_tokens")) > 0);
    mock_stats_t st;
    mock_stats(mock, &st);
    ck_assert_str_eq(st.last_authorization, "Bearer " API_KEY);
    ck_assert_ptr_null(strstr(dumps(out.shared), API_KEY));
    ck_assert_ptr_null(strstr(dumps(out.events), API_KEY));
}
END_TEST

/* "out" as an object stores parts of the result, each where its pointer (a template here) says. */
START_TEST(test_out_stores_parts_of_the_result) {
    const char *doc = "{\"name\": \"ask\", \"start\": \"s\", \"nodes\": {"
                      " \"s\": {\"type\": \"llm\", \"params\": {\"prompt\": \"hi\"}, \"out\": {"
                      "   \"/answer\": \"/text\", \"/tokens\": \"/usage/total_tokens\", "
                      "\"/again/answer\": \"/text\","
                      "   \"/runs/{{$shared/run}}\": \"\"}}}}";
    run(doc, json_pack("{s:s}", "run", "a/b"));
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(json_string_value(at("/answer")), "mock answer to: hi");
    ck_assert_int_eq(json_integer_value(at("/tokens")),
                     json_integer_value(at("/runs/a~1b/usage/total_tokens")));
    ck_assert_str_eq(json_string_value(at("/runs/a~1b/model")), "mock-model");
    ck_assert_ptr_ne(at("/answer"), at("/again/answer")); /* each part is a value of its own */
    outcome_clear(&out);
    run("{\"name\": \"ask\", \"start\": \"s\", \"nodes\": {"
        " \"s\": {\"type\": \"llm\", \"params\": {\"prompt\": \"hi\"}, \"out\": {\"/x\": "
        "\"/usage/nope\"}}}}",
        NULL);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_ENOTFOUND);
    ck_assert_str_eq(out.error_message, "out: the result has no /usage/nope");
}
END_TEST

/* PocketFlow's agents ask for YAML in a fence: parse strips the fence and decodes the answer. */
START_TEST(test_llm_parses_a_fenced_yaml_answer) {
    const char *answers[] = {"Let me think.\n```yaml\nthinking: |\n  I need facts.\naction: "
                             "search\n"
                             "search_query: nobel 2024\n```\nDone."};
    ck_assert_int_eq(mock_script(mock, answers, 1), 0);
    run("{\"name\": \"decide\", \"start\": \"d\", \"nodes\": {"
        " \"d\": {\"type\": \"llm\", \"params\": {\"prompt\": \"decide\", \"parse\": \"yaml\"},"
        "        \"out\": {\"/decision\": \"/data\"}}}}",
        NULL);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    tu_assert_json("decision", at("/decision"),
                   "{\"thinking\": \"I need facts.\\n\", \"action\": \"search\", \"search_query\": "
                   "\"nobel 2024\"}");
}
END_TEST

/* Structured output: an answer that does not parse or does not fit the schema fails the try, so
 * max_retries asks again; the schema is taken as written (its "$" strings are not references). */
static const char *const decide_doc =
    "{\"name\": \"decide\", \"start\": \"d\", \"nodes\": {"
    " \"d\": {\"type\": \"llm\", \"max_retries\": MAX, \"out\": \"/r\","
    "        \"params\": {\"prompt\": \"decide\", \"parse\": \"json\", \"schema\": {\"type\": "
    "\"object\","
    "          \"required\": [\"action\"], \"properties\": {\"action\": {\"enum\": [\"search\", "
    "\"answer\"]},"
    "          \"cost\": {\"pattern\": \"^\\\\$[0-9]+$\"}}}}}}}";

static void run_decide(const char *max) {
    char doc[1024];
    const char *mark = strstr(decide_doc, "MAX");
    snprintf(doc, sizeof doc, "%.*s%s%s", (int)(mark - decide_doc), decide_doc, max, mark + 3);
    run(doc, NULL);
}

START_TEST(test_llm_asks_again_until_the_answer_fits_its_schema) {
    const char *answers[] = {"I would search.", "```json\n{\"action\": \"fly\"}\n```",
                             "```json\n{\"action\": \"search\", \"cost\": \"$5\"}\n```"};
    ck_assert_int_eq(mock_script(mock, answers, 3), 0);
    mock_reset_stats(mock);
    run_decide("3");
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    tu_assert_json("data", at("/r/data"), "{\"action\": \"search\", \"cost\": \"$5\"}");
    ck_assert_uint_eq(out.history[0].tries, 3);
    mock_stats_t st;
    mock_stats(mock, &st);
    ck_assert_uint_eq(st.routes[MOCK_CHAT], 3);
    outcome_clear(&out);
    /* out of tries: the job fails with the last answer's fault */
    ck_assert_int_eq(mock_script(mock, answers, 2), 0);
    run_decide("2");
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_EINVAL);
    ck_assert_str_eq(out.error_message, "llm mock-model: the answer does not fit the schema: "
                                        "/action: must be one "
                                        "of [\"search\",\"answer\"]");
    outcome_clear(&out);
    ck_assert_int_eq(mock_script(mock, answers, 1), 0);
    run_decide("1");
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_str_eq(out.error_message, "llm mock-model: the answer is not the JSON asked for: "
                                        "line 1, column 1: "
                                        "invalid token near 'I'");
}
END_TEST

START_TEST(test_llm_refused_by_the_endpoint_fails_without_showing_the_key) {
    static flow_nodes_env_t wrong;
    static flow_registry_t *r2;
    wrong = env;
    wrong.llm_api_key = "sk-wrong";
    ck_assert_int_eq(flow_registry_new(&r2), 0);
    ck_assert_int_eq(flow_nodes_register(r2, &wrong), 0);
    json_t *doc = tu_json("{\"name\": \"ask\", \"start\": \"s\", \"nodes\": {"
                          " \"s\": {\"type\": \"llm\", \"params\": {\"prompt\": \"hi\"}}}}");
    flow_def_t *def;
    ck_assert_int_eq(flow_doc_load(r2, doc, &def, NULL), 0);
    harness_run(&h, def, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_EHTTP);
    ck_assert_ptr_nonnull(strstr(out.error_message, "llm mock-model answered 401"));
    ck_assert_ptr_null(strstr(out.error_message, "sk-wrong"));
    flow_def_unref(def);
    json_decref(doc);
    flow_registry_free(r2);
}
END_TEST

/* ---- map and flow ---- */

START_TEST(test_a_map_over_ten_thousand_urls_keeps_to_its_limit) {
    int n = getenv("FLOW_TEST_SMALL") ? 1000 : 10000;
    json_t *urls = json_array();
    /* The first hundred answer after half a second, so that even a slow build (valgrind) has them
     * all started before the first one ends: the limit is then what holds them back. */
    for (int i = 0; i < n; i++)
        json_array_append_new(urls, json_sprintf("%s/delay/%d/echo?i=%d", base, i < 100 ? 500 : 2, i));
    mock_reset_stats(mock);
    run("{\"name\": \"scrape\", \"start\": \"fetch\", \"nodes\": {"
        " \"fetch\": {\"type\": \"map\", \"items\": \"$shared/urls\", \"limit\": 100, \"max_retries\": 2,"
        "            \"node\": {\"type\": \"http\", \"params\": {\"url\": \"$item\"}}, \"out\": \"/pages\"}}}",
        json_pack("{s:o}", "urls", urls));
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    mock_stats_t st;
    mock_stats(mock, &st);
    ck_assert_uint_le(st.max_in_flight, 100);
    ck_assert_uint_ge(st.max_in_flight, 50); /* it did run them concurrently */
    json_t *pages = at("/pages");
    ck_assert_uint_eq(json_array_size(pages), (size_t)n);
    for (int i = 0; i < n; i++) {
        json_t *q = json_object_get(json_object_get(json_object_get(json_array_get(pages, (size_t)i), "body"), "query"), "i");
        ck_assert_int_eq(atoi(json_string_value(q)), i);
    }
}
END_TEST

START_TEST(test_a_map_over_a_sub_flow_runs_it_per_item) {
    run("{\"name\": \"per\", \"start\": \"each\", \"nodes\": {"
        " \"each\": {\"type\": \"map\", \"items\": \"$shared/words\", \"flow\": \"shout\", \"limit\": 2}},"
        " \"flows\": {\"shout\": {\"start\": \"up\", \"nodes\": {"
        "   \"up\": {\"type\": \"set\", \"params\": {\"/loud/{{$params/index}}\": \"{{$params/item}}!\"}}}}}}",
        json_pack("{s:[s,s,s]}", "words", "a", "b", "c"));
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    tu_assert_json("loud", at("/loud"), "{\"0\": \"a!\", \"1\": \"b!\", \"2\": \"c!\"}");
}
END_TEST

START_TEST(test_a_flow_node_runs_another_flow_with_params) {
    flow_def_t *inner = load("{\"name\": \"greet\", \"params\": {\"who\": \"nobody\"}, \"start\": \"say\", \"nodes\": {"
                             " \"say\": {\"type\": \"set\", \"params\": {\"/said\": \"hi {{$params/who}}\"},"
                             "          \"next\": {\"default\": \"decide\"}},"
                             " \"decide\": {\"type\": \"choice\", \"params\": {\"value\": \"$params/who\","
                             "   \"cases\": [{\"eq\": \"Ada\", \"action\": \"known\"}]}}}}");
    ck_assert_int_eq(flow_registry_put_flow(reg, inner, NULL), 0);
    run("{\"name\": \"outer\", \"start\": \"call\", \"nodes\": {"
        " \"call\": {\"type\": \"flow\", \"flow\": \"greet\", \"params\": {\"who\": \"$shared/name\"},"
        "           \"next\": {\"known\": \"after\"}},"
        " \"after\": {\"type\": \"set\", \"params\": {\"/after\": true}}}}",
        json_pack("{s:s}", "name", "Ada"));
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(json_string_value(at("/said")), "hi Ada");
    ck_assert(json_is_true(at("/after")));
    ck_assert_str_eq(out.history_nodes[0], "call/say");
    ck_assert_str_eq(out.history_nodes[2], "call");
    ck_assert_str_eq(out.history_actions[2], "known");
    flow_def_unref(inner);
}
END_TEST

/* ---- the outbound policy ---- */

/* Makes the client a plain one, as flowd without --allow-outbound: the mock on loopback is refused
 * unless a document's own list, or the LLM endpoint's for llm nodes, allows it. */
static void strict(void) {
    flow_http_close(http);
    ck_assert_int_eq(flow_http_new(&h.loop, NULL, &http), 0);
    env.http = http;
}

/* A document naming the mock's address and port in its "outbound" list. */
static char *with_allow(const char *text) {
    char entry[64], *s = with_base(text), *p = strstr(s, "MOCK");
    snprintf(entry, sizeof entry, "127.0.0.1:%u", (unsigned)mock_port(mock));
    ck_assert_ptr_nonnull(p);
    char *doc = NULL;
    ck_assert_int_ge(asprintf(&doc, "%.*s%s%s", (int)(p - s), s, entry, p + 4), 0);
    free(s);
    return doc;
}

START_TEST(test_an_http_node_the_policy_refuses_fails_at_once_without_retries) {
    strict();
    run("{\"name\": \"r\", \"start\": \"call\", \"nodes\": {"
        " \"call\": {\"type\": \"http\", \"params\": {\"url\": \"BASE/echo\"}, \"max_retries\": 3, \"wait\": 60000}}}",
        NULL);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(out.error, FLOW_EOUTBOUND);
    char want[512];
    snprintf(want, sizeof want, "GET %s/echo: outbound connection to 127.0.0.1:%u refused: loopback (allow it with "
             "--allow-outbound 127.0.0.1:%u)", base, (unsigned)mock_port(mock), (unsigned)mock_port(mock));
    ck_assert_str_eq(out.error_message, want);
    ck_assert_uint_eq(out.history[0].tries, 1); /* a refusal is the same on every try */
    ck_assert_uint_eq(out.totals.retries, 0);
    mock_stats_t st;
    mock_stats(mock, &st);
    ck_assert_uint_eq(st.connections, 0);
}
END_TEST

START_TEST(test_a_documents_outbound_list_lets_its_http_nodes_through) {
    strict();
    char *doc = with_allow("{\"name\": \"ok\", \"outbound\": {\"allow\": [\"MOCK\"]}, \"start\": \"one\", \"nodes\": {"
                           " \"one\": {\"type\": \"http\", \"params\": {\"url\": \"BASE/echo\"}, \"out\": \"/one\","
                           "          \"next\": {\"default\": \"all\"}},"
                           " \"all\": {\"type\": \"map\", \"items\": \"$shared/urls\", \"out\": \"/all\","
                           "          \"node\": {\"type\": \"http\", \"params\": {\"url\": \"$item\"}},"
                           "          \"next\": {\"default\": \"sub\"}},"
                           " \"sub\": {\"type\": \"flow\", \"flow\": \"more\"}},"
                           " \"flows\": {\"more\": {\"start\": \"two\", \"nodes\": {"
                           "  \"two\": {\"type\": \"http\", \"params\": {\"url\": \"BASE/page/2\"}, \"out\": \"/two\"}}}}}");
    json_t *urls = json_array();
    json_array_append_new(urls, json_sprintf("%s/page/1", base));
    run(doc, json_pack("{s:o}", "urls", urls));
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_int_eq(json_integer_value(at("/one/status")), 200);
    ck_assert_int_eq(json_integer_value(at("/all/0/status")), 200);
    ck_assert_int_eq(json_integer_value(at("/two/status")), 200);
    free(doc);
}
END_TEST

/* A flow of the server used by a flow node keeps its own document's list, and only it. */
START_TEST(test_a_flow_of_the_server_keeps_its_own_documents_list) {
    strict();
    char *text = with_allow("{\"name\": \"fetcher\", \"outbound\": {\"allow\": [\"MOCK\"]}, \"start\": \"get\","
                            " \"nodes\": {\"get\": {\"type\": \"http\", \"params\": {\"url\": \"BASE/echo\"},"
                            "  \"out\": \"/fetched\"}}}");
    flow_def_t *fetcher = load(text);
    free(text);
    ck_assert_int_eq(flow_registry_put_flow(reg, fetcher, NULL), 0);
    run("{\"name\": \"outer\", \"start\": \"call\", \"nodes\": {"
        " \"call\": {\"type\": \"flow\", \"flow\": \"fetcher\", \"next\": {\"default\": \"own\"}},"
        " \"own\": {\"type\": \"http\", \"params\": {\"url\": \"BASE/page/1\"}}}}",
        NULL);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_int_eq(json_integer_value(at("/fetched/status")), 200); /* fetcher's node got through */
    ck_assert_int_eq(out.error, FLOW_EOUTBOUND);                      /* the outer document's did not */
    ck_assert_str_eq(out.error_node, "own");
    flow_def_unref(fetcher);
}
END_TEST

/* llm nodes reach the endpoint the operator configured; an http node to the same place does not. */
START_TEST(test_llm_nodes_reach_their_endpoint_and_http_nodes_do_not) {
    strict();
    run("{\"name\": \"ask\", \"start\": \"s\", \"nodes\": {"
        " \"s\": {\"type\": \"llm\", \"params\": {\"prompt\": \"hi\"}, \"out\": \"/a\", \"next\": {\"default\": \"h\"}},"
        " \"h\": {\"type\": \"http\", \"params\": {\"method\": \"POST\", \"url\": \"BASE/v1/chat/completions\","
        "        \"body\": {\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}}}}}",
        NULL);
    ck_assert_int_eq(out.status, FLOW_FAILED);
    ck_assert_str_eq(json_string_value(at("/a/text")), "mock answer to: hi");
    ck_assert_int_eq(out.error, FLOW_EOUTBOUND);
    ck_assert_str_eq(out.error_node, "h");
}
END_TEST

static Suite *nodes_suite(void) {
    Suite *s = suite_create("nodes");
    TCase *tc = tcase_create("nodes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_noop_and_set);
    tcase_add_test(tc, test_pointers_made_from_data_name_one_member);
    tcase_add_test(tc, test_sleep_takes_its_seconds_from_a_reference);
    tcase_add_test(tc, test_choice_picks_the_first_case_that_holds);
    tcase_add_test(tc, test_choice_patterns_are_bounded);
    tcase_add_test(tc, test_input_answers_that_meet_a_regex_limit_are_refused);
    tcase_add_test(tc, test_choice_operands_may_be_references);
    tcase_add_test(tc, test_fail_ends_the_job_with_its_message);
    tcase_add_test(tc, test_input_waits_refuses_a_bad_answer_and_resumes_with_a_good_one);
    tcase_add_test(tc, test_input_actions_and_timeout_action);
    tcase_add_test(tc, test_http_get_parses_json_answers);
    tcase_add_test(tc, test_http_post_sends_body_headers_and_an_idempotency_key);
    tcase_add_test(tc, test_http_retries_a_failing_upstream_until_it_answers);
    tcase_add_test(tc, test_each_visit_has_its_own_idempotency_key);
    tcase_add_test(tc, test_a_resumed_job_sends_the_key_of_the_visit_it_reruns);
    tcase_add_test(tc, test_http_gives_up_after_its_last_try);
    tcase_add_test(tc, test_http_answers_over_the_body_cap_fail);
    tcase_add_test(tc, test_cancel_aborts_requests_in_flight);
    tcase_add_test(tc, test_llm_asks_the_model_and_keeps_the_key_out_of_the_job);
    tcase_add_test(tc, test_out_stores_parts_of_the_result);
    tcase_add_test(tc, test_llm_parses_a_fenced_yaml_answer);
    tcase_add_test(tc, test_llm_asks_again_until_the_answer_fits_its_schema);
    tcase_add_test(tc, test_llm_refused_by_the_endpoint_fails_without_showing_the_key);
    tcase_add_test(tc, test_a_map_over_ten_thousand_urls_keeps_to_its_limit);
    tcase_add_test(tc, test_a_map_over_a_sub_flow_runs_it_per_item);
    tcase_add_test(tc, test_a_flow_node_runs_another_flow_with_params);
    tcase_add_test(tc, test_an_http_node_the_policy_refuses_fails_at_once_without_retries);
    tcase_add_test(tc, test_a_documents_outbound_list_lets_its_http_nodes_through);
    tcase_add_test(tc, test_a_flow_of_the_server_keeps_its_own_documents_list);
    tcase_add_test(tc, test_llm_nodes_reach_their_endpoint_and_http_nodes_do_not);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(nodes_suite());
}
