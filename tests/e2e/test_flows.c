/* test_flows.c: flows as JSON documents in flowd: --flows DIR at start (and a broken document that
 * stops the start), PUT and DELETE /v1/flows/{name} with every problem listed, running jobs that keep
 * the version they started with, and the seed's recipe and scraper examples over HTTP against the
 * mock (tests/support/mock.c) as the recipe API and the model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e.h"
#include "support/mock.h"

static e2e_server_t srv;
static mock_t *mock;
static char llm_url[128], api_url[64], mock_addr[32];

/* The mock plays the recipe API and the model on loopback; flowd is told to allow it the way make
 * run allows flowd-mock: --allow-outbound 127.0.0.1:PORT (mock_addr). */
static void start_mock(void) {
    ck_assert_int_eq(mock_start(NULL, &mock), 0);
    snprintf(mock_addr, sizeof mock_addr, "127.0.0.1:%u", (unsigned)mock_port(mock));
    snprintf(api_url, sizeof api_url, "http://%s", mock_addr);
    snprintf(llm_url, sizeof llm_url, "%s/v1", api_url);
}

static void stop_all(void) {
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
    mock_stop(mock);
    mock = NULL;
}

/* GET path: a 200 whose body is any JSON value (a part of a shared store may be a string). */
static json_t *get_value(const char *path) {
    e2e_resp_t r;
    e2e_request(&srv, "GET", path, NULL, NULL, &r);
    ck_assert_msg(r.status == 200, "GET %s: %ld", path, r.status);
    json_t *v = json_loadb(r.body, r.len, JSON_DECODE_ANY, NULL);
    ck_assert_msg(v != NULL, "GET %s: not JSON: %s", path, r.body);
    e2e_resp_free(&r);
    return v;
}

static const char *str(json_t *v, const char *pointer) {
    json_t *at = v;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", pointer);
    for (char *tok = strtok(buf, "/"); tok != NULL && at != NULL; tok = strtok(NULL, "/"))
        at = json_is_array(at) ? json_array_get(at, (size_t)atoi(tok)) : json_object_get(at, tok);
    return json_string_value(at);
}

START_TEST(test_the_examples_load_at_start_and_replace_the_compiled_in_flows) {
    start_mock();
    e2e_start(&srv, "--flows", "examples/flows", "--llm-base-url", llm_url, "--llm-model", "mock",
              "--allow-outbound", mock_addr, NULL);
    json_t *flows = e2e_get_json(&srv, "/v1/flows");
    const char *names[] = {"agent", "chat", "noop", "recipe", "resumes", "scraper", "sleep"};
    ck_assert_uint_eq(json_array_size(json_object_get(flows, "flows")), 7);
    for (size_t i = 0; i < 7; i++) {
        json_t *flow = json_array_get(json_object_get(flows, "flows"), i);
        ck_assert_str_eq(json_string_value(json_object_get(flow, "name")), names[i]);
        ck_assert_str_eq(json_string_value(json_object_get(flow, "source")), "document");
    }
    json_decref(flows);
    json_t *recipe = e2e_get_json(&srv, "/v1/flows/recipe");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(recipe, "document"), "start")), "init");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(recipe, "mermaid")), "flowchart TD"));
    json_decref(recipe);
    char *log = e2e_log(&srv);
    ck_assert_ptr_nonnull(strstr(log, "flow noop from examples/flows/noop.json (in place of the compiled-in one)"));
    ck_assert_ptr_nonnull(strstr(log, "flow recipe from examples/flows/recipe.json\n")); /* none compiled in */
    free(log);
    stop_all();
}
END_TEST

START_TEST(test_a_broken_document_stops_the_start_with_its_places) {
    char dir[] = "/tmp/flowsXXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/bad.json", dir);
    e2e_write_file(dir, "bad.json", "{\n  \"name\": \"bad\",\n  \"start\": \"a\",\n  \"nodes\": {\n    \"a\": {\"type\": \"htp\", \"next\": {\"default\": \"b\"}}\n  }\n}\n");
    const char *args[] = {"--port", "0", "--flows", dir, NULL};
    char *out = NULL;
    ck_assert_int_eq(e2e_run(args, &out), 1);
    char want[256];
    snprintf(want, sizeof want, "%s:5:19: /nodes/a/type: unknown node type \"htp\"", path);
    ck_assert_msg(strstr(out, want) != NULL, "flowd said:\n%s", out);
    snprintf(want, sizeof want, "%s:5:46: /nodes/a/next/default: no node \"b\" in this flow", path);
    ck_assert_msg(strstr(out, want) != NULL, "flowd said:\n%s", out);
    ck_assert_ptr_nonnull(strstr(out, "does not start"));
    free(out);
    unlink(path);
    rmdir(dir);
}
END_TEST

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

START_TEST(test_put_get_replace_and_delete_a_flow) {
    e2e_start(&srv, NULL);
    e2e_resp_t r;
    const char *v1 = "{\"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"set\", \"params\": {\"/hi\": \"hello {{$shared/name}}\"}}}}";
    e2e_request(&srv, "PUT", "/v1/flows/greet", json_ct, v1, &r);
    ck_assert_int_eq(r.status, 201);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "name")), "greet");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "document"), "name")), "greet");
    e2e_resp_free(&r);
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"greet\", \"shared\": {\"name\": \"Ada\"}}");
    json_t *done = e2e_wait_status(&srv, json_string_value(json_object_get(job, "id")), "succeeded", 5000);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", json_string_value(json_object_get(job, "id")));
    json_t *shared = e2e_get_json(&srv, path);
    ck_assert_str_eq(json_string_value(json_object_get(shared, "hi")), "hello Ada");
    json_decref(shared);
    json_decref(done);
    json_decref(job);
    const char *v2 = "{\"name\": \"greet\", \"version\": \"2\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}";
    e2e_request(&srv, "PUT", "/v1/flows/greet", json_ct, v2, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "version")), "2");
    e2e_resp_free(&r);
    e2e_request(&srv, "DELETE", "/v1/flows/greet", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
    e2e_request(&srv, "GET", "/v1/flows/greet", NULL, NULL, &r);
    e2e_assert_error(&r, 404, "unknown_flow", "greet");
    e2e_resp_free(&r);
    e2e_request(&srv, "DELETE", "/v1/flows/greet", NULL, NULL, &r);
    e2e_assert_error(&r, 404, "unknown_flow", "greet");
    e2e_resp_free(&r);
    e2e_request(&srv, "PATCH", "/v1/flows/greet", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 405);
    ck_assert_str_eq(r.allow, "GET, HEAD, PUT, DELETE");
    e2e_resp_free(&r);
    e2e_post(&srv, "/v1/jobs", "{\"flow\": \"greet\"}", &r);
    e2e_assert_error(&r, 404, "unknown_flow", "greet");
    e2e_resp_free(&r);
    stop_all();
}
END_TEST

START_TEST(test_a_bad_document_is_refused_with_every_problem) {
    e2e_start(&srv, NULL);
    e2e_resp_t r;
    e2e_request(&srv, "PUT", "/v1/flows/x", json_ct,
                "{\"name\": \"y\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"htp\", \"next\": {\"default\": \"zz\"}},"
                " \"b\": {\"type\": \"sleep\", \"params\": {\"seconds\": \"$item\"}}}}",
                &r);
    e2e_assert_error(&r, 422, "invalid_flow", "5 problems");
    json_t *problems = json_object_get(json_object_get(r.json, "error"), "problems");
    ck_assert_uint_eq(json_array_size(problems), 5);
    ck_assert_str_eq(str(problems, "0/where"), "/name");
    ck_assert_str_eq(str(problems, "1/where"), "/nodes/a/type");
    ck_assert_str_eq(str(problems, "2/where"), "/nodes/b/params/seconds");
    ck_assert_str_eq(str(problems, "3/where"), "/nodes/a/next/default");
    ck_assert_str_eq(str(problems, "4/where"), "/nodes/b");
    ck_assert_str_eq(str(problems, "4/message"), "node b is never reached from the start node a");
    e2e_resp_free(&r);
    e2e_request(&srv, "PUT", "/v1/flows/x", json_ct, "{\"start\": ", &r);
    e2e_assert_error(&r, 400, "invalid_json", "line 1");
    e2e_resp_free(&r);
    e2e_request(&srv, "PUT", "/v1/flows/x", (const char *const[]){"Content-Type: text/plain", NULL}, "{}", &r);
    ck_assert_int_eq(r.status, 415);
    e2e_resp_free(&r);
    stop_all();
}
END_TEST

/* issue 11: a param "$params/~" made the loader read past the end of the string and quote heap bytes
 * in the 422; now it is one malformed pointer, quoted exactly. */
START_TEST(test_a_pointer_that_ends_in_a_tilde_is_one_problem) {
    e2e_start(&srv, NULL);
    e2e_resp_t r;
    e2e_request(&srv, "PUT", "/v1/flows/t", json_ct,
                "{\"name\": \"t\", \"params\": {\"a\": 1}, \"start\": \"s\", \"nodes\": {\"s\": {\"type\": \"set\","
                " \"params\": {\"/x\": \"$params/~\", \"/y\": \"{{$params/~}}\"}}}}",
                &r);
    e2e_assert_error(&r, 422, "invalid_flow", "2 problems");
    json_t *problems = json_object_get(json_object_get(r.json, "error"), "problems");
    ck_assert_uint_eq(json_array_size(problems), 2);
    ck_assert_str_eq(str(problems, "0/message"), "malformed pointer \"/~\": \"~\" must be followed by \"0\" or \"1\"");
    ck_assert_str_eq(str(problems, "1/message"),
                     "column 11: malformed pointer \"/~\": \"~\" must be followed by \"0\" or \"1\"");
    e2e_resp_free(&r);
    stop_all();
}
END_TEST

/* A job keeps the version of its flow that it started with, whatever PUT does meanwhile. */
START_TEST(test_running_jobs_keep_the_version_they_started_with) {
    e2e_start(&srv, NULL);
    e2e_resp_t r;
    const char *v = "{\"start\": \"ask\", \"nodes\": {"
                    " \"ask\": {\"type\": \"input\", \"params\": {\"prompt\": \"go?\"}, \"next\": {\"default\": \"mark\"}},"
                    " \"mark\": {\"type\": \"set\", \"params\": {\"/version\": %d}}}}";
    char doc[512];
    snprintf(doc, sizeof doc, v, 1);
    e2e_request(&srv, "PUT", "/v1/flows/ver", json_ct, doc, &r);
    ck_assert_int_eq(r.status, 201);
    e2e_resp_free(&r);
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"ver\"}");
    const char *id = json_string_value(json_object_get(job, "id"));
    json_decref(e2e_wait_status(&srv, id, "waiting", 5000));
    snprintf(doc, sizeof doc, v, 2);
    e2e_request(&srv, "PUT", "/v1/flows/ver", json_ct, doc, &r);
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    e2e_post(&srv, path, "{\"value\": \"yes\"}", &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    json_decref(e2e_wait_status(&srv, id, "succeeded", 5000));
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?pointer=/version", id);
    json_t *ver = get_value(path);
    ck_assert_int_eq(json_integer_value(ver), 1);
    json_decref(ver);
    json_decref(job);
    stop_all();
}
END_TEST

START_TEST(test_the_recipe_example_over_http) {
    start_mock();
    e2e_start(&srv, "--flows", "examples/flows", "--llm-base-url", llm_url, "--llm-model", "mock",
              "--allow-outbound", mock_addr, NULL);
    char body[256];
    snprintf(body, sizeof body, "{\"flow\": \"recipe\", \"shared\": {\"ingredient\": \"tofu\"}, \"params\": {\"recipes_api\": \"%s\"}}",
             api_url);
    json_t *job = e2e_start_job(&srv, body);
    const char *id = json_string_value(json_object_get(job, "id"));
    json_t *w = e2e_wait_status(&srv, id, "waiting", 5000);
    ck_assert_str_eq(str(w, "waiting_for/prompt"), "How about: tofu pasta? Answer yes or no.");
    json_decref(w);
    char path[128];
    e2e_resp_t r;
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    e2e_post(&srv, path, "{\"value\": \"maybe\"}", &r);
    e2e_assert_error(&r, 422, "invalid_input", "one of");
    e2e_resp_free(&r);
    e2e_post(&srv, path, "{\"value\": \"no\"}", &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    /* the job runs suggest again and asks about another recipe */
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    for (int i = 0; i < 500; i++) {
        json_t *j = e2e_get_json(&srv, path);
        const char *prompt = str(j, "waiting_for/prompt");
        int again = prompt != NULL && strstr(prompt, "grilled tofu") != NULL;
        json_decref(j);
        if (again)
            break;
        usleep(10000);
    }
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    e2e_post(&srv, path, "{\"value\": \"yes\"}", &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    json_decref(e2e_wait_status(&srv, id, "succeeded", 5000));
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?pointer=/final", id);
    json_t *final = get_value(path);
    ck_assert_str_eq(json_string_value(final), "grilled tofu");
    json_decref(final);
    json_decref(job);
    stop_all();
}
END_TEST

START_TEST(test_the_scraper_example_over_http) {
    start_mock();
    e2e_start(&srv, "--flows", "examples/flows", "--llm-base-url", llm_url, "--llm-model", "mock",
              "--allow-outbound", mock_addr, NULL);
    json_t *urls = json_array();
    for (int i = 0; i < 30; i++)
        json_array_append_new(urls, json_sprintf("%s/gate/30/page/%d", api_url, i));
    json_t *req = json_pack("{s:s, s:{s:o}}", "flow", "scraper", "shared", "urls", urls);
    char *body = json_dumps(req, JSON_COMPACT);
    json_t *job = e2e_start_job(&srv, body);
    const char *id = json_string_value(json_object_get(job, "id"));
    json_decref(e2e_wait_status(&srv, id, "succeeded", 10000));
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?pointer=/pages/29/body", id);
    json_t *page = get_value(path);
    ck_assert_ptr_nonnull(strstr(json_string_value(page), "Page 29"));
    json_decref(page);
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?pointer=/summary/model", id);
    json_t *model = get_value(path);
    ck_assert_str_eq(json_string_value(model), "mock");
    json_decref(model);
    free(body);
    json_decref(req);
    json_decref(job);
    stop_all();
}
END_TEST

/* Retries as Step Functions has them: the wait grows by the node's backoff up to its max_wait, and
 * an upstream's 429 with Retry-After is waited out; the step's history shows each failed try and
 * the wait after it. */
START_TEST(test_retries_back_off_and_honour_retry_after) {
    start_mock();
    e2e_start(&srv, "--llm-base-url", llm_url, "--llm-model", "mock", "--allow-outbound", mock_addr, NULL);
    char doc[1024];
    snprintf(doc, sizeof doc,
             "{\"start\": \"slow\", \"nodes\": {"
             "\"slow\": {\"type\": \"http\", \"params\": {\"url\": \"%s/flaky/busy/2?status=429&retry_after=1\"},"
             "  \"max_retries\": 4, \"wait\": 10, \"backoff\": 3, \"max_wait\": 1500, \"out\": \"/busy\","
             "  \"next\": {\"default\": \"grow\"}},"
             "\"grow\": {\"type\": \"http\", \"params\": {\"url\": \"%s/flaky/grow/3\"},"
             "  \"max_retries\": 4, \"wait\": 20, \"backoff\": 4, \"max_wait\": 100, \"out\": \"/grow\"}}}",
             api_url, api_url);
    e2e_resp_t r;
    e2e_request(&srv, "PUT", "/v1/flows/retrying", json_ct, doc, &r);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    e2e_resp_free(&r);
    uint64_t t0 = e2e_now_ms();
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"retrying\"}");
    const char *id = json_string_value(json_object_get(job, "id"));
    json_decref(e2e_wait_status(&srv, id, "succeeded", 20000));
    /* two Retry-After waits of a second, then 20 + 80 + 100 (320 capped) */
    ck_assert_uint_ge(e2e_now_ms() - t0, 2000 + 200);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/history", id);
    json_t *history = e2e_get_json(&srv, path);
    json_t *steps = json_object_get(history, "steps");
    ck_assert_uint_eq(json_array_size(steps), 2);
    json_t *busy = json_object_get(json_array_get(steps, 0), "retries");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(steps, 0), "tries")), 3);
    ck_assert_uint_eq(json_array_size(busy), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *t = json_array_get(busy, i);
        ck_assert_int_eq(json_integer_value(json_object_get(t, "try")), (json_int_t)i + 1);
        ck_assert_int_eq(json_integer_value(json_object_get(t, "wait_ms")), 1000);
        ck_assert_str_eq(str(t, "error/code"), "http_error");
        ck_assert_ptr_nonnull(strstr(str(t, "error/message"), "answered 429"));
    }
    json_t *grow = json_object_get(json_array_get(steps, 1), "retries");
    static const json_int_t waits[] = {20, 80, 100};
    ck_assert_uint_eq(json_array_size(grow), 3);
    for (size_t i = 0; i < 3; i++)
        ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(grow, i), "wait_ms")), waits[i]);
    json_decref(history);
    json_decref(job);
    /* a backoff under 1 and an unknown jitter are refused, with their places */
    e2e_request(&srv, "PUT", "/v1/flows/bad-retry", json_ct,
                "{\"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\", \"backoff\": 0.5, "
                "\"jitter\": \"some\", \"max_wait\": 0}}}", &r);
    ck_assert_int_eq(r.status, 422);
    ck_assert_ptr_nonnull(strstr(r.body, "/nodes/a/backoff"));
    ck_assert_ptr_nonnull(strstr(r.body, "/nodes/a/jitter"));
    ck_assert_ptr_nonnull(strstr(r.body, "/nodes/a/max_wait"));
    e2e_resp_free(&r);
    stop_all();
}
END_TEST

/* W3C trace context: a POST that carries a traceparent makes a job whose http calls carry it on,
 * with the same trace id and a span id of their own; the request's log line names it. One that is
 * not a valid traceparent is not passed on. */
START_TEST(test_a_traceparent_is_carried_to_the_calls_a_job_makes) {
    start_mock();
    e2e_start(&srv, "--allow-outbound", mock_addr, NULL);
    char doc[512];
    snprintf(doc, sizeof doc,
             "{\"start\": \"call\", \"nodes\": {\"call\": {\"type\": \"http\", "
             "\"params\": {\"url\": \"%s/echo\"}, \"out\": \"/echo\"}}}", api_url);
    e2e_resp_t r;
    e2e_request(&srv, "PUT", "/v1/flows/traced", json_ct, doc, &r);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    e2e_resp_free(&r);
    static const char tp[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const char *const traced[] = {"Content-Type: application/json",
                                  "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                  NULL};
    static const char *const bad[] = {"Content-Type: application/json",
                                      "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                                      NULL};
    const char *const *with[] = {traced, bad};
    for (int i = 0; i < 2; i++) {
        e2e_request(&srv, "POST", "/v1/jobs", with[i], "{\"flow\": \"traced\"}", &r);
        ck_assert_int_eq(r.status, 202);
        char id[40], path[128];
        snprintf(id, sizeof id, "%s", json_string_value(json_object_get(r.json, "id")));
        e2e_resp_free(&r);
        json_decref(e2e_wait_status(&srv, id, "succeeded", 10000));
        snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
        json_t *shared = e2e_get_json(&srv, path);
        const char *sent = str(shared, "echo/body/headers/traceparent");
        if (i == 1) {
            ck_assert_ptr_null(sent); /* an all-zero trace id is no trace context */
        } else {
            ck_assert_ptr_nonnull(sent);
            ck_assert_uint_eq(strlen(sent), 55);
            ck_assert_int_eq(strncmp(sent, tp, 36), 0);          /* the same trace */
            ck_assert_int_ne(strncmp(sent + 36, tp + 36, 16), 0); /* a span of its own */
            ck_assert_str_eq(sent + 52, "-01");
        }
        json_decref(shared);
    }
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    char *log = e2e_log(&srv);
    ck_assert_msg(strstr(log, " traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n") != NULL,
                  "%s", log);
    free(log);
    e2e_cleanup(&srv);
    mock_stop(mock);
    mock = NULL;
}
END_TEST

static Suite *flows_suite(void) {
    Suite *s = suite_create("flows");
    TCase *tc = tcase_create("flows");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_the_examples_load_at_start_and_replace_the_compiled_in_flows);
    tcase_add_test(tc, test_a_broken_document_stops_the_start_with_its_places);
    tcase_add_test(tc, test_put_get_replace_and_delete_a_flow);
    tcase_add_test(tc, test_a_bad_document_is_refused_with_every_problem);
    tcase_add_test(tc, test_a_pointer_that_ends_in_a_tilde_is_one_problem);
    tcase_add_test(tc, test_running_jobs_keep_the_version_they_started_with);
    tcase_add_test(tc, test_the_recipe_example_over_http);
    tcase_add_test(tc, test_the_scraper_example_over_http);
    tcase_add_test(tc, test_retries_back_off_and_honour_retry_after);
    tcase_add_test(tc, test_a_traceparent_is_carried_to_the_calls_a_job_makes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(flows_suite());
}
