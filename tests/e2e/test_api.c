/* test_api.c: every endpoint of api/openapi.yaml answering as the contract says, against a running
 * build/flowd: jobs (start, status, shared store, history, list and its cursor), flows with their
 * Mermaid graph, health, metrics, the request log, Idempotency-Key, input and cancel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e/e2e.h"

static e2e_server_t srv;

/* Jobs that sleep long are still running at the end of a test: they get a second to finish. The
 * flows are the compiled-in noop and sleep, and tests/e2e/flows/recipe.json. */
static void setup(void) {
    e2e_start(&srv, "--grace", "1s", "--flows", "tests/e2e/flows", NULL);
}

static void teardown(void) {
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
}

static const char *str(json_t *obj, const char *key) {
    return json_string_value(json_object_get(obj, key));
}

START_TEST(test_a_noop_job_runs_and_reads_back) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"noop\", \"shared\": {\"n\": 1}}");
    ck_assert_str_eq(str(job, "status"), "queued");
    ck_assert_str_eq(str(job, "flow"), "noop");
    const char *id = str(job, "id");
    ck_assert_uint_eq(strlen(id), 32);
    ck_assert_uint_eq(strspn(id, "0123456789abcdef"), 32);
    ck_assert(json_is_string(json_object_get(job, "created_at")));
    ck_assert(json_is_null(json_object_get(job, "started_at")));

    json_t *done = e2e_wait_status(&srv, id, "succeeded", 5000);
    ck_assert_int_eq(json_integer_value(json_object_get(done, "steps")), 1);
    ck_assert_str_eq(str(done, "last_action"), "default");
    ck_assert(json_is_string(json_object_get(done, "started_at")));
    ck_assert(json_is_string(json_object_get(done, "finished_at")));
    ck_assert(json_is_null(json_object_get(done, "error")));
    ck_assert(json_is_null(json_object_get(done, "waiting_for")));
    /* RFC 3339 UTC with microseconds */
    ck_assert_uint_eq(strlen(str(done, "finished_at")), 27);
    ck_assert_int_eq(str(done, "finished_at")[26], 'Z');

    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *shared = e2e_get_json(&srv, path);
    ck_assert_int_eq(json_integer_value(json_object_get(shared, "n")), 1);
    snprintf(path, sizeof path, "/v1/jobs/%s/history", id);
    json_t *history = e2e_get_json(&srv, path);
    ck_assert_str_eq(str(history, "id"), id);
    json_t *steps = json_object_get(history, "steps");
    ck_assert_uint_eq(json_array_size(steps), 1);
    ck_assert_str_eq(str(json_array_get(steps, 0), "node"), "noop");
    ck_assert_str_eq(str(json_array_get(steps, 0), "action"), "default");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(steps, 0), "seq")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(history, "totals"), "steps")), 1);
    json_decref(history);
    json_decref(shared);
    json_decref(done);
    json_decref(job);
}
END_TEST

START_TEST(test_answers_are_pretty_json_with_a_newline) {
    e2e_resp_t r;
    e2e_request(&srv, "GET", "/healthz", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.content_type, "application/json");
    ck_assert_str_eq(r.body, "{\n  \"status\": \"ok\"\n}\n");
    e2e_resp_free(&r);
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"noop\"}");
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", str(job, "id"));
    e2e_request(&srv, "GET", path, NULL, NULL, &r);
    ck_assert(strncmp(r.body, "{\n  \"id\": \"", 11) == 0);
    ck_assert_int_eq(r.body[r.len - 1], '\n');
    e2e_resp_free(&r);
    json_decref(job);
}
END_TEST

START_TEST(test_shared_pointer_names_one_part) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"noop\", \"shared\": {\"a\": {\"b\": [10, 20]}, \"x/y\": 3}}");
    const char *id = str(job, "id");
    json_decref(e2e_wait_status(&srv, id, "succeeded", 5000));
    char path[160];
    e2e_resp_t r;
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?pointer=/a/b/1", id);
    e2e_request(&srv, "GET", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "20\n");
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?pointer=/x~1y", id);
    e2e_request(&srv, "GET", path, NULL, NULL, &r);
    ck_assert_str_eq(r.body, "3\n");
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?pointer=/a", id);
    e2e_request(&srv, "GET", path, NULL, NULL, &r);
    ck_assert_str_eq(r.body, "{\n  \"b\": [\n    10,\n    20\n  ]\n}\n");
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?pointer=/a/c", id);
    e2e_request(&srv, "GET", path, NULL, NULL, &r);
    e2e_assert_error(&r, 404, "not_found", "/a/c");
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?pointer=a~2", id);
    e2e_request(&srv, "GET", path, NULL, NULL, &r);
    e2e_assert_error(&r, 400, "bad_request", "JSON Pointer");
    e2e_resp_free(&r);
    json_decref(job);
}
END_TEST

START_TEST(test_shared_of_a_running_job_is_a_snapshot) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"sleep\", \"shared\": {\"seconds\": 30, \"k\": \"v\"}}");
    const char *id = str(job, "id");
    json_decref(e2e_wait_status(&srv, id, "running", 5000));
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *shared = e2e_get_json(&srv, path);
    ck_assert_str_eq(str(shared, "k"), "v");
    ck_assert_ptr_null(json_object_get(shared, "slept")); /* the step has not finished */
    snprintf(path, sizeof path, "/v1/jobs/%s/history", id);
    json_t *history = e2e_get_json(&srv, path);
    ck_assert_uint_eq(json_array_size(json_object_get(history, "steps")), 0);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    json_t *now = e2e_get_json(&srv, path);
    ck_assert_str_eq(str(now, "current_node"), "sleep");
    json_decref(now);
    json_decref(history);
    json_decref(shared);
    json_decref(job);
}
END_TEST

START_TEST(test_list_pages_newest_first_with_a_cursor) {
    char ids[5][40];
    for (int i = 0; i < 5; i++) {
        json_t *job = e2e_start_job(&srv, "{\"flow\": \"noop\"}");
        snprintf(ids[i], sizeof ids[i], "%s", str(job, "id"));
        json_decref(job);
    }
    json_t *other = e2e_start_job(&srv, "{\"flow\": \"sleep\", \"shared\": {\"seconds\": 30}}");
    for (int i = 0; i < 5; i++)
        json_decref(e2e_wait_status(&srv, ids[i], "succeeded", 5000));
    char path[200] = "/v1/jobs?flow=noop&status=succeeded&limit=2";
    int seen = 0;
    for (int page = 0; page < 3; page++) {
        json_t *list = e2e_get_json(&srv, path);
        json_t *jobs = json_object_get(list, "jobs");
        json_t *next = json_object_get(list, "next_cursor");
        ck_assert_uint_eq(json_array_size(jobs), page < 2 ? 2 : 1);
        for (size_t k = 0; k < json_array_size(jobs); k++)
            ck_assert_str_eq(str(json_array_get(jobs, k), "id"), ids[4 - seen++]);
        if (page < 2) {
            ck_assert(json_is_string(next));
            snprintf(path, sizeof path, "/v1/jobs?flow=noop&status=succeeded&limit=2&cursor=%s",
                     json_string_value(next));
        } else {
            ck_assert(json_is_null(next));
        }
        json_decref(list);
    }
    ck_assert_int_eq(seen, 5);
    json_t *running = e2e_get_json(&srv, "/v1/jobs?status=running");
    ck_assert_uint_eq(json_array_size(json_object_get(running, "jobs")), 1);
    ck_assert_str_eq(str(json_array_get(json_object_get(running, "jobs"), 0), "id"), str(other, "id"));
    json_t *all = e2e_get_json(&srv, "/v1/jobs");
    ck_assert_uint_eq(json_array_size(json_object_get(all, "jobs")), 6);
    ck_assert_str_eq(str(json_array_get(json_object_get(all, "jobs"), 0), "id"), str(other, "id"));
    json_decref(all);
    json_decref(running);
    json_decref(other);
}
END_TEST

START_TEST(test_flows_are_described_with_mermaid) {
    json_t *flows = e2e_get_json(&srv, "/v1/flows");
    json_t *list = json_object_get(flows, "flows");
    ck_assert_uint_eq(json_array_size(list), 3);
    ck_assert_str_eq(str(json_array_get(list, 0), "name"), "noop");
    ck_assert_str_eq(str(json_array_get(list, 1), "name"), "recipe");
    ck_assert_str_eq(str(json_array_get(list, 2), "name"), "sleep");
    json_t *recipe = e2e_get_json(&srv, "/v1/flows/recipe");
    ck_assert_str_eq(str(recipe, "root"), "recipe");
    ck_assert(strncmp(str(recipe, "mermaid"), "flowchart TD", 12) == 0);
    ck_assert_ptr_nonnull(strstr(str(recipe, "mermaid"), "approve"));
    json_t *nodes = json_object_get(recipe, "nodes");
    json_t *approve = NULL;
    for (size_t i = 0; i < json_array_size(nodes); i++)
        if (strcmp(str(json_array_get(nodes, i), "name"), "approve") == 0)
            approve = json_array_get(nodes, i);
    ck_assert_ptr_nonnull(approve);
    ck_assert_str_eq(str(approve, "kind"), "node");
    json_t *succ = json_object_get(approve, "successors");
    ck_assert_str_eq(str(succ, "accept"), "finalize");
    ck_assert_str_eq(str(succ, "retry"), "suggest");
    ck_assert_str_eq(str(json_array_get(nodes, 0), "start"), "fetch");
    e2e_resp_t r;
    e2e_request(&srv, "GET", "/v1/flows/nope", NULL, NULL, &r);
    e2e_assert_error(&r, 404, "unknown_flow", "noop, recipe, sleep");
    e2e_resp_free(&r);
    json_decref(recipe);
    json_decref(flows);
}
END_TEST

START_TEST(test_idempotency_key_repeats_and_conflicts) {
    static const char *const key[] = {"Content-Type: application/json", "Idempotency-Key: order-17", NULL};
    const char *body = "{\"flow\": \"noop\", \"shared\": {\"n\": 1}}";
    e2e_resp_t first, again, other, fresh;
    e2e_request(&srv, "POST", "/v1/jobs", key, body, &first);
    ck_assert_int_eq(first.status, 202);
    e2e_request(&srv, "POST", "/v1/jobs", key, body, &again);
    ck_assert_int_eq(again.status, 200);
    ck_assert_str_eq(str(again.json, "id"), str(first.json, "id"));
    ck_assert_str_eq(again.location, first.location);
    e2e_request(&srv, "POST", "/v1/jobs", key, "{\"flow\": \"noop\", \"shared\": {\"n\": 2}}", &other);
    e2e_assert_error(&other, 409, "idempotency_conflict", "order-17");
    e2e_post(&srv, "/v1/jobs", body, &fresh); /* without the key: a new job */
    ck_assert_int_eq(fresh.status, 202);
    ck_assert_str_ne(str(fresh.json, "id"), str(first.json, "id"));
    e2e_resp_free(&first);
    e2e_resp_free(&again);
    e2e_resp_free(&other);
    e2e_resp_free(&fresh);
}
END_TEST

START_TEST(test_input_is_refused_unless_waiting) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"sleep\", \"shared\": {\"seconds\": 30}}");
    char path[128];
    e2e_resp_t r;
    snprintf(path, sizeof path, "/v1/jobs/%s/input", str(job, "id"));
    e2e_post(&srv, path, "{\"value\": \"yes\"}", &r);
    e2e_assert_error(&r, 409, "not_waiting", "not waiting");
    e2e_resp_free(&r);
    e2e_post(&srv, path, "{\"answer\": \"yes\"}", &r);
    e2e_assert_error(&r, 400, "bad_request", "value");
    e2e_resp_free(&r);
    e2e_post(&srv, "/v1/jobs/0123456789abcdef0123456789abcdef/input", "{\"value\": 1}", &r);
    e2e_assert_error(&r, 404, "not_found", "0123456789abcdef0123456789abcdef");
    e2e_resp_free(&r);
    json_decref(job);
}
END_TEST

START_TEST(test_cancel_stops_a_job_and_then_refuses) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"sleep\", \"shared\": {\"seconds\": 60}}");
    const char *id = str(job, "id");
    json_decref(e2e_wait_status(&srv, id, "running", 5000));
    char path[128];
    e2e_resp_t r;
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
    uint64_t t0 = e2e_now_ms();
    e2e_request(&srv, "POST", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 202);
    ck_assert_str_eq(str(r.json, "id"), id);
    ck_assert_str_eq(str(r.json, "status"), "canceled"); /* the answer comes once it has stopped */
    ck_assert(json_is_string(json_object_get(r.json, "finished_at")));
    e2e_resp_free(&r);
    json_t *done = e2e_wait_status(&srv, id, "canceled", 3000);
    ck_assert_uint_lt(e2e_now_ms() - t0, e2e_ms(3000));
    json_t *err = json_object_get(done, "error");
    ck_assert_str_eq(str(err, "code"), "canceled");
    ck_assert_str_eq(str(err, "node"), "sleep");
    ck_assert(json_is_string(json_object_get(done, "finished_at")));
    /* it really stopped: no step finished, shared.slept was never set */
    ck_assert_int_eq(json_integer_value(json_object_get(done, "steps")), 0);
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *shared = e2e_get_json(&srv, path);
    ck_assert_ptr_null(json_object_get(shared, "slept"));
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
    e2e_request(&srv, "POST", path, NULL, NULL, &r);
    e2e_assert_error(&r, 409, "already_ended", "canceled");
    e2e_resp_free(&r);
    json_decref(shared);
    json_decref(done);
    json_decref(job);
}
END_TEST

START_TEST(test_a_failing_job_says_why) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"sleep\", \"shared\": {\"seconds\": \"soon\"}}");
    json_t *done = e2e_wait_status(&srv, str(job, "id"), "failed", 5000);
    json_t *err = json_object_get(done, "error");
    ck_assert_str_eq(str(err, "code"), "invalid_argument");
    ck_assert_ptr_nonnull(strstr(str(err, "message"), "shared.seconds"));
    ck_assert_str_eq(str(err, "node"), "sleep");
    json_decref(done);
    json_decref(job);
}
END_TEST

START_TEST(test_metrics_count_jobs_steps_and_requests) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"noop\"}");
    json_decref(e2e_wait_status(&srv, str(job, "id"), "succeeded", 5000));
    e2e_resp_t r;
    e2e_request(&srv, "GET", "/nowhere", NULL, NULL, &r);
    e2e_resp_free(&r);
    e2e_request(&srv, "GET", "/metrics", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(strncmp(r.content_type, "text/plain", 10) == 0);
    static const char *const want[] = {
        "flowd_jobs{status=\"succeeded\"} 1\n",
        "flowd_jobs{status=\"running\"} 0\n",
        "flowd_jobs_started_total 1\n",
        "flowd_steps_total 1\n",
        "flowd_queue_depth 0\n",
        "flowd_http_requests_total{route=\"/v1/jobs\",code=\"202\"} 1\n",
        "flowd_http_requests_total{route=\"other\",code=\"404\"} 1\n",
        "flowd_http_request_duration_seconds_bucket{route=\"/v1/jobs\",le=\"+Inf\"} 1\n",
        "flowd_http_request_duration_seconds_count{route=\"/v1/jobs/{id}\"} ",
        "# TYPE flowd_http_request_duration_seconds histogram\n",
        "flowd_jobs_finished_total{flow=\"noop\",outcome=\"succeeded\"} 1\n",
        "flowd_jobs_finished_total{flow=\"noop\",outcome=\"failed\"} 0\n",
        "flowd_job_duration_seconds_bucket{flow=\"noop\",le=\"+Inf\"} 1\n",
        "flowd_job_duration_seconds_count{flow=\"noop\"} 1\n",
        "flowd_job_queue_wait_seconds_count{flow=\"noop\"} 1\n",
        "# TYPE flowd_job_queue_wait_seconds histogram\n",
        "\nflowd_build_info{version=\"",
        "flowd_step_duration_seconds_count{type=\"node\"} 1\n",
        "# TYPE flowd_step_duration_seconds histogram\n",
        "# TYPE process_cpu_seconds_total counter\n"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(r.body, want[i]) != NULL, "no %s in the metrics", want[i]);
    /* the process figures are read, not made up: memory and descriptors are there */
    const char *rss = strstr(r.body, "\nprocess_resident_memory_bytes ");
    const char *fds = strstr(r.body, "\nprocess_open_fds ");
    ck_assert(rss != NULL && strtoull(rss + 31, NULL, 10) > 1000000);
    ck_assert(fds != NULL && strtoull(fds + 18, NULL, 10) >= 3);
    e2e_resp_free(&r);
    json_decref(job);
}
END_TEST

START_TEST(test_one_log_line_per_request) {
    e2e_resp_t r;
    e2e_request(&srv, "GET", "/healthz", NULL, NULL, &r);
    e2e_resp_free(&r);
    e2e_request(&srv, "DELETE", "/v1/jobs", NULL, NULL, &r);
    e2e_resp_free(&r);
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0); /* flushes the log */
    char *log = e2e_log(&srv);
    ck_assert_msg(strstr(log, " info GET /healthz 200 ") != NULL, "%s", log);
    ck_assert_msg(strstr(log, " info DELETE /v1/jobs 405 ") != NULL, "%s", log);
    const char *line = strstr(log, " info GET /healthz 200 ");
    const char *eol = strchr(line, '\n');
    const char *id = strstr(line, "us id=");
    ck_assert(eol != NULL && id != NULL && id < eol && eol - (id + 6) == 32); /* an id made here */
    free(log);
    e2e_cleanup(&srv);
    e2e_start(&srv, NULL); /* for the teardown */
}
END_TEST

/* X-Request-Id: the client's is echoed and logged; a missing or unusable one is replaced by one
 * made here, which every answer carries too. */
START_TEST(test_request_ids_are_echoed_or_made) {
    static const char *const given[] = {"X-Request-Id: trace-7f3a.b_c:d", NULL};
    char long_id[200] = "X-Request-Id: ";
    memset(long_id + 14, 'x', 129);
    const char *const too_long[] = {long_id, NULL};
    static const char *const spaced[] = {"X-Request-Id: a b", NULL};
    e2e_resp_t r;
    e2e_request(&srv, "GET", "/healthz", given, NULL, &r);
    ck_assert_str_eq(r.request_id, "trace-7f3a.b_c:d");
    e2e_resp_free(&r);
    const char *const *bad[] = {too_long, spaced, NULL};
    for (size_t i = 0; i < 3; i++) {
        e2e_request(&srv, "GET", "/v1/jobs/nosuchjob", bad[i], NULL, &r);
        ck_assert_int_eq(r.status, 404);
        ck_assert_uint_eq(strlen(r.request_id), 32);
        ck_assert_uint_eq(strspn(r.request_id, "0123456789abcdef"), 32);
        e2e_resp_free(&r);
    }
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    char *log = e2e_log(&srv);
    ck_assert_msg(strstr(log, " info GET /healthz 200 ") != NULL && strstr(log, "us id=trace-7f3a.b_c:d\n"),
                  "%s", log);
    free(log);
    e2e_cleanup(&srv);
    e2e_start(&srv, NULL); /* for the teardown */
}
END_TEST

/* --log-format json: every line an object; a request's has its parts, a job's its id and node. */
START_TEST(test_json_log_lines) {
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
    e2e_start(&srv, "--log-format", "json", "--flows", "tests/e2e/flows", NULL);
    static const char *const id[] = {"X-Request-Id: json-1", NULL};
    e2e_resp_t r;
    e2e_request(&srv, "GET", "/v1/flows", id, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
    static const char *const json_ct[] = {"Content-Type: application/json", NULL};
    e2e_request(&srv, "PUT", "/v1/flows/logs", json_ct,
                "{\"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\", \"post\": \"log('hi \\\"there\\\"')\"}}}", &r);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    e2e_resp_free(&r);
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"logs\"}");
    char job_id[40];
    snprintf(job_id, sizeof job_id, "%s", json_string_value(json_object_get(job, "id")));
    json_decref(e2e_wait_status(&srv, job_id, "succeeded", 10000));
    json_decref(job);
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    char *log = e2e_log(&srv);
    int request_seen = 0, job_seen = 0;
    for (char *line = strtok(log, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        json_t *o = json_loads(line, 0, NULL);
        ck_assert_msg(json_is_object(o), "not a JSON object: %s", line);
        ck_assert_ptr_nonnull(json_string_value(json_object_get(o, "time")));
        ck_assert_ptr_nonnull(json_string_value(json_object_get(o, "level")));
        ck_assert_ptr_nonnull(json_string_value(json_object_get(o, "msg")));
        const char *rid = json_string_value(json_object_get(o, "request_id"));
        if (rid != NULL && strcmp(rid, "json-1") == 0) {
            ck_assert_str_eq(json_string_value(json_object_get(o, "method")), "GET");
            ck_assert_str_eq(json_string_value(json_object_get(o, "path")), "/v1/flows");
            ck_assert_int_eq(json_integer_value(json_object_get(o, "status")), 200);
            ck_assert(json_is_integer(json_object_get(o, "us")));
            request_seen = 1;
        }
        const char *jid = json_string_value(json_object_get(o, "job"));
        if (jid != NULL && strcmp(jid, job_id) == 0 && strstr(json_string_value(json_object_get(o, "msg")), "hi \"there\"")) {
            ck_assert_str_eq(json_string_value(json_object_get(o, "node")), "a");
            job_seen = 1;
        }
        json_decref(o);
    }
    ck_assert(request_seen && job_seen);
    free(log);
    e2e_cleanup(&srv);
    e2e_start(&srv, NULL); /* for the teardown */
}
END_TEST

static Suite *api_suite(void) {
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_a_noop_job_runs_and_reads_back);
    tcase_add_test(tc, test_answers_are_pretty_json_with_a_newline);
    tcase_add_test(tc, test_shared_pointer_names_one_part);
    tcase_add_test(tc, test_shared_of_a_running_job_is_a_snapshot);
    tcase_add_test(tc, test_list_pages_newest_first_with_a_cursor);
    tcase_add_test(tc, test_flows_are_described_with_mermaid);
    tcase_add_test(tc, test_idempotency_key_repeats_and_conflicts);
    tcase_add_test(tc, test_input_is_refused_unless_waiting);
    tcase_add_test(tc, test_cancel_stops_a_job_and_then_refuses);
    tcase_add_test(tc, test_a_failing_job_says_why);
    tcase_add_test(tc, test_metrics_count_jobs_steps_and_requests);
    tcase_add_test(tc, test_one_log_line_per_request);
    tcase_add_test(tc, test_request_ids_are_echoed_or_made);
    tcase_add_test(tc, test_json_log_lines);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(api_suite());
}
