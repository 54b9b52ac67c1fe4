/* test_job_limits.c: what one job may take: its steps and its time (--max-steps, --deadline and a
 * flow's own max_steps and deadline, counted from the first start across a restart), its shared
 * store (--max-shared), what one template expands to (--max-template), what an answer made from
 * its store may be (--max-answer); and that a job looping with a large shared store cannot keep
 * flowd from answering, canceling it or stopping. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e/e2e.h"

static e2e_server_t srv;
static char dir[64], store[128];
static const char *const json_ct[] = {"Content-Type: application/json", NULL};
/* a set node looping to itself: a step that costs little but the checkpoint of the store */
static const char spin_doc[] = "{\"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"set\","
                               " \"params\": {\"/n\": 1}, \"next\": {\"default\": \"a\"}}}}";

static void setup(void) {
    e2e_tmpdir(dir, sizeof dir, "flowd-jlimits");
    snprintf(store, sizeof store, "sqlite:%s/flowd.db", dir);
}

static void teardown(void) {
    e2e_rmtree(dir);
}

static const char *str(json_t *obj, const char *key) {
    return json_string_value(json_object_get(obj, key));
}

static void stop(void) {
    ck_assert_int_eq(e2e_stop(&srv, 20000), 0);
    e2e_cleanup(&srv);
}

/* PUT path (/v1/flows/NAME) with doc, which must be taken. */
static void put_doc(e2e_server_t *s, const char *path, const char *doc) {
    e2e_resp_t r;
    e2e_request(s, "PUT", path, json_ct, doc, &r);
    ck_assert_msg(r.status == 201 || r.status == 200, "PUT %s: %ld %s", path, r.status, r.body);
    e2e_resp_free(&r);
}

/* A flow named name whose node a loops to itself, sleeping `seconds` each step; extra: more members
 * of the document ("" or ", \"max_steps\": 5"). */
static void put_loop(e2e_server_t *s, const char *name, const char *seconds, const char *extra) {
    char doc[512], path[128];
    snprintf(doc, sizeof doc,
             "{\"start\": \"a\"%s, \"nodes\": {\"a\": {\"type\": \"sleep\", \"params\": "
             "{\"seconds\": %s},"
             " \"next\": {\"default\": \"a\"}}}}",
             extra, seconds);
    snprintf(path, sizeof path, "/v1/flows/%s", name);
    put_doc(s, path, doc);
}

static json_t *run_to_end(e2e_server_t *s, const char *flow, unsigned timeout_ms) {
    char body[128];
    snprintf(body, sizeof body, "{\"flow\": \"%s\"}", flow);
    json_t *job = e2e_start_job(s, body);
    json_t *end = e2e_wait_status(s, str(job, "id"), NULL, timeout_ms);
    json_decref(job);
    return end;
}

static void assert_failed(json_t *job, const char *code, const char *words, json_int_t steps) {
    json_t *err = json_object_get(job, "error");
    ck_assert_str_eq(str(job, "status"), "failed");
    ck_assert_str_eq(str(err, "code"), code);
    ck_assert_msg(strstr(str(err, "message"), words) != NULL, "%s", str(err, "message"));
    if (steps >= 0)
        ck_assert_int_eq(json_integer_value(json_object_get(job, "steps")), steps);
}

/* Every job has a step limit: the server's, or its flow's when that is lower. */
START_TEST(test_steps_are_limited_by_the_server_and_the_flow) {
    e2e_start(&srv, "--max-steps", "30", NULL);
    put_loop(&srv, "forever", "0", "");
    put_loop(&srv, "short", "0", ", \"max_steps\": 12");
    put_loop(&srv, "greedy", "0", ", \"max_steps\": 1000000");
    json_t *job = run_to_end(&srv, "forever", 10000);
    assert_failed(job, "max_steps_exceeded", "30 steps", 30);
    json_decref(job);
    job = run_to_end(&srv, "short", 10000);
    assert_failed(job, "max_steps_exceeded", "12 steps", 12);
    json_decref(job);
    job = run_to_end(&srv, "greedy", 10000); /* never above the server's */
    assert_failed(job, "max_steps_exceeded", "30 steps", 30);
    json_decref(job);
    stop();
}
END_TEST

/* The default is 10,000 steps: a loop that never ends does. */
START_TEST(test_a_job_stops_at_ten_thousand_steps_by_default) {
    e2e_start(&srv, NULL);
    put_loop(&srv, "forever", "0", "");
    json_t *job = run_to_end(&srv, "forever", 30000);
    assert_failed(job, "max_steps_exceeded", "10000 steps", 10000);
    json_decref(job);
    stop();
}
END_TEST

/* Every job has a deadline: the server's, or its flow's when that is sooner. */
START_TEST(test_time_is_limited_by_the_server_and_the_flow) {
    e2e_start(&srv, "--deadline", "1s", NULL);
    put_loop(&srv, "slow", "0.05", "");
    put_loop(&srv, "hasty", "0.05", ", \"deadline\": 300");
    put_loop(&srv, "patient", "0.05", ", \"deadline\": 3600000");
    json_t *job = run_to_end(&srv, "slow", 10000);
    assert_failed(job, "deadline_exceeded", "1000 ms", -1);
    json_decref(job);
    job = run_to_end(&srv, "hasty", 10000);
    assert_failed(job, "deadline_exceeded", "300 ms", -1);
    json_decref(job);
    job = run_to_end(&srv, "patient", 10000);
    assert_failed(job, "deadline_exceeded", "1000 ms", -1);
    json_decref(job);
    stop();
}
END_TEST

/* A flow's limits are checked when it is loaded. */
START_TEST(test_bad_limits_in_a_document_are_refused) {
    e2e_start(&srv, NULL);
    e2e_resp_t r;
    e2e_request(&srv, "PUT", "/v1/flows/bad", json_ct,
                "{\"start\": \"a\", \"max_steps\": 0, \"deadline\": \"1h\", \"nodes\": {\"a\": "
                "{\"type\": \"noop\"}}}",
                &r);
    ck_assert_int_eq(r.status, 422);
    ck_assert_msg(strstr(r.body, "max_steps is the steps a job may run") != NULL, "%s", r.body);
    ck_assert_msg(strstr(r.body, "deadline is the milliseconds a job may take") != NULL, "%s",
                  r.body);
    e2e_resp_free(&r);
    e2e_request(&srv, "PUT", "/v1/flows/good", json_ct,
                "{\"start\": \"a\", \"max_steps\": 5, \"deadline\": 60000, \"nodes\": {\"a\": "
                "{\"type\": \"noop\"}}}",
                &r);
    ck_assert_int_eq(r.status, 201);
    ck_assert_msg(strstr(r.body, "\"max_steps\": 5") != NULL, "%s", r.body); /* in the document */
    e2e_resp_free(&r);
    stop();
}
END_TEST

static json_t *wait_steps(e2e_server_t *s, const char *id, json_int_t at_least) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    uint64_t deadline = e2e_now_ms() + e2e_ms(20000);
    for (;;) {
        json_t *job = e2e_get_json(s, path);
        if (json_integer_value(json_object_get(job, "steps")) >= at_least)
            return job;
        json_decref(job);
        ck_assert_msg(e2e_now_ms() < deadline, "job %s did not reach %lld steps", id,
                      (long long)at_least);
        usleep(20000);
    }
}

/* Starts a job of a loop flow with these members (put_loop's extra) on SQLite, lets it take `steps`
 * steps, kills flowd with SIGKILL, waits pause_us, and starts it again; the job's id into id. */
static void run_kill_restart(const char *extra, json_int_t steps, useconds_t pause_us,
                             char id[64]) {
    e2e_start(&srv, "--store", store, NULL);
    put_loop(&srv, "looped", "0.05", extra);
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"looped\"}");
    snprintf(id, 64, "%s", str(job, "id"));
    json_decref(job);
    json_decref(wait_steps(&srv, id, steps));
    e2e_kill(&srv);
    e2e_cleanup(&srv);
    usleep(pause_us);
    e2e_start(&srv, "--store", store, NULL);
}

/* A job resumed after a crash goes on counting its steps from where it was, not from zero. */
START_TEST(test_a_resumed_job_keeps_counting_its_steps) {
    char id[64];
    run_kill_restart(", \"max_steps\": 12", 5, 0, id);
    json_t *job = e2e_wait_status(&srv, id, NULL, 20000);
    assert_failed(job, "max_steps_exceeded", "12 steps", 12); /* not 12 more */
    json_decref(job);
    stop();
}
END_TEST

/* A job resumed after its deadline has passed fails at once, without another step: the deadline
 * counts from its first start, not from the restart. */
START_TEST(test_a_resumed_job_keeps_its_deadline) {
    char id[64];
    run_kill_restart(", \"deadline\": 2000", 3, 2500000, id); /* down past the deadline */
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/history", id);
    json_t *before = e2e_get_json(&srv, path);
    json_int_t stored =
        json_integer_value(json_object_get(json_object_get(before, "totals"), "steps"));
    json_decref(before);
    json_t *job = e2e_wait_status(&srv, id, NULL, 20000);
    assert_failed(job, "deadline_exceeded", "2000 ms", stored);
    json_decref(job);
    stop();
}
END_TEST

/* A job that loops for ever with a large shared store, on SQLite (each step's checkpoint writes
 * the store) and in memory: the loop keeps answering calls and running other jobs, a cancel stops
 * it, and SIGTERM stops flowd. The step limit is set far away: it is not what stops the job. */
static void loop_with_a_big_store(const char *store_spec, size_t bytes) {
    char *body = malloc(bytes + 64);
    ck_assert_ptr_nonnull(body);
    int n = snprintf(body, 64, "{\"flow\": \"spin\", \"shared\": {\"blob\": \"");
    memset(body + n, 'x', bytes);
    snprintf(body + n + bytes, 64 - (size_t)n, "\"}}");
    for (int round = 0; round < 2; round++) {
        e2e_start(&srv, "--store", store_spec, "--max-body", "4MiB", "--max-shared", "2MiB",
                  "--max-steps", "1000000000", "--grace", "1s", NULL);
        e2e_resp_t r;
        put_doc(&srv, "/v1/flows/spin", spin_doc);
        json_t *job = e2e_start_job(&srv, body);
        char id[64], path[128];
        snprintf(id, sizeof id, "%s", str(job, "id"));
        json_decref(job);
        json_decref(wait_steps(&srv, id, 3));
        if (round == 1) { /* SIGTERM: the step in flight ends, no other starts, flowd exits */
            ck_assert_int_eq(e2e_stop(&srv, 20000), 0);
            char *log = e2e_log(&srv);
            ck_assert_msg(strstr(log, "flowd: stopped") != NULL, "%s", log);
            free(log);
            e2e_cleanup(&srv);
            break;
        }
        /* a loop call, and another job, get their turn */
        snprintf(path, sizeof path, "/v1/jobs/%s/history", id);
        json_decref(e2e_get_json(&srv, path));
        job = e2e_start_job(&srv, "{\"flow\": \"noop\"}");
        json_decref(e2e_wait_status(&srv, str(job, "id"), "succeeded", 20000));
        json_decref(job);
        /* and a cancel stops it */
        snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
        e2e_request(&srv, "POST", path, NULL, NULL, &r);
        ck_assert_msg(r.status == 202, "%ld %s", r.status, r.body);
        ck_assert_str_eq(str(r.json, "status"), "canceled");
        json_int_t steps = json_integer_value(json_object_get(r.json, "steps"));
        e2e_resp_free(&r);
        snprintf(path, sizeof path, "/v1/jobs/%s", id);
        job = e2e_get_json(&srv, path);
        ck_assert_int_eq(json_integer_value(json_object_get(job, "steps")), steps);
        json_decref(job);
        ck_assert_int_eq(e2e_stop(&srv, 20000), 0);
        e2e_cleanup(&srv);
    }
    free(body);
}

START_TEST(test_a_loop_with_100_kb_stops_on_sqlite) {
    loop_with_a_big_store(store, 100000);
}
END_TEST

START_TEST(test_a_loop_with_1_mib_stops_on_sqlite) {
    loop_with_a_big_store(store, 1000000);
}
END_TEST

START_TEST(test_a_loop_with_a_big_store_stops_in_memory) {
    loop_with_a_big_store("memory:", 100000);
    loop_with_a_big_store("memory:", 1000000);
}
END_TEST

/* The shared store is checked after each step: a job that grows it past --max-shared fails too_big,
 * naming the node, on SQLite (which serializes it for the checkpoint anyway) and in memory (which
 * counts it now and then, and when it is about to cross). A job that would start too big gets 413.
 */
static void shared_store_capped(const char *store_spec) {
    e2e_start(&srv, "--store", store_spec, "--max-shared", "64KiB", NULL);
    e2e_resp_t r;
    put_doc(&srv, "/v1/flows/grow",
            "{\"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"set\","
            " \"params\": {\"/items/-\": \"$shared/chunk\"}, \"next\": {\"default\": \"a\"}}}}");
    char body[1200];
    int n = snprintf(body, sizeof body,
                     "{\"flow\": \"grow\", \"shared\": {\"items\": [], \"chunk\": \"");
    memset(body + n, 'x', 1000);
    snprintf(body + n + 1000, sizeof body - (size_t)n - 1000, "\"}}");
    json_t *job = e2e_start_job(&srv, body);
    json_t *end = e2e_wait_status(&srv, str(job, "id"), NULL, 20000);
    assert_failed(end, "too_big", "(--max-shared) after step", -1);
    ck_assert_str_eq(str(json_object_get(end, "error"), "node"), "a");
    json_int_t steps = json_integer_value(json_object_get(end, "steps"));
    ck_assert_msg(steps >= 60 && steps <= 70, "failed after %lld steps, 64 KiB is about 65 of them",
                  (long long)steps);
    json_decref(end);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?pointer=/items/0", str(job, "id"));
    json_decref(job);
    e2e_request(&srv, "GET", path, NULL, NULL, &r); /* what it grew to can be looked at */
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
    char *big = malloc(80000);
    ck_assert_ptr_nonnull(big);
    n = snprintf(big, 80000, "{\"flow\": \"noop\", \"shared\": {\"blob\": \"");
    memset(big + n, 'y', 70000);
    snprintf(big + n + 70000, 80000 - (size_t)n - 70000, "\"}}");
    e2e_post(&srv, "/v1/jobs", big, &r);
    e2e_assert_error(&r, 413, "payload_too_large", "--max-shared");
    e2e_resp_free(&r);
    free(big);
    stop();
}

START_TEST(test_the_shared_store_is_capped_on_sqlite) {
    shared_store_capped(store);
}
END_TEST

START_TEST(test_the_shared_store_is_capped_in_memory) {
    shared_store_capped("memory:");
}
END_TEST

/* One template of a flow document expands to at most --max-template: past it the step fails. */
START_TEST(test_a_template_is_capped) {
    e2e_start(&srv, "--max-template", "4KiB", NULL);
    put_doc(&srv, "/v1/flows/echo",
            "{\"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"set\","
            " \"params\": {\"/twice\": \"{{$shared/s}}{{$shared/s}}\"}}}}");
    char body[4200];
    for (int round = 0; round < 2; round++) {
        size_t len = round == 0 ? 1500 : 2500; /* twice: 3000 bytes, then 5000 */
        int n = snprintf(body, sizeof body, "{\"flow\": \"echo\", \"shared\": {\"s\": \"");
        memset(body + n, 's', len);
        snprintf(body + n + len, sizeof body - (size_t)n - len, "\"}}");
        json_t *job = e2e_start_job(&srv, body);
        json_t *end = e2e_wait_status(&srv, str(job, "id"), NULL, 10000);
        if (round == 0) {
            ck_assert_str_eq(str(end, "status"), "succeeded");
        } else {
            assert_failed(end, "too_big", "--max-template", -1);
            ck_assert_msg(
                strstr(str(json_object_get(end, "error"), "message"), "gives more than 4096 bytes"),
                "%s", str(json_object_get(end, "error"), "message"));
        }
        json_decref(end);
        json_decref(job);
    }
    stop();
}
END_TEST

/* Answers made from a job's store or from a list are at most --max-answer: past it 422, saying how
 * to ask for less; the smaller answer it suggests works. */
START_TEST(test_answers_are_capped) {
    e2e_start(&srv, "--max-answer", "64KiB", "--history-limit", "1000", "--max-steps", "600", NULL);
    e2e_resp_t r;
    char *body = malloc(100100), path[160];
    ck_assert_ptr_nonnull(body);
    int n =
        snprintf(body, 100100,
                 "{\"flow\": \"sleep\", \"shared\": {\"seconds\": 60, \"small\": 1, \"blob\": \"");
    memset(body + n, 'b', 80000);
    snprintf(body + n + 80000, 100100 - (size_t)n - 80000, "\"}}");
    /* a running job's store (a loop call) and a finished one's (kept as text) */
    json_t *job = e2e_start_job(&srv, body);
    char id[64];
    snprintf(id, sizeof id, "%s", str(job, "id"));
    json_decref(job);
    json_decref(e2e_wait_status(&srv, id, "running", 10000));
    for (int round = 0; round < 2; round++) {
        snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
        e2e_request(&srv, "GET", path, NULL, NULL, &r);
        e2e_assert_error(&r, 422, "answer_too_large", "--max-answer");
        ck_assert_msg(strstr(r.body, "?pointer=") != NULL, "%s", r.body);
        e2e_resp_free(&r);
        snprintf(path, sizeof path, "/v1/jobs/%s/shared?pointer=/small", id);
        e2e_request(&srv, "GET", path, NULL, NULL, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(r.body, "1\n");
        e2e_resp_free(&r);
        if (round == 0) {
            snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
            e2e_request(&srv, "POST", path, NULL, NULL, &r);
            ck_assert_int_eq(r.status, 202);
            e2e_resp_free(&r);
        }
    }
    free(body);
    /* a history of 600 steps, while it runs and once it has ended */
    put_doc(&srv, "/v1/flows/spin", spin_doc);
    job = run_to_end(&srv, "spin", 20000);
    assert_failed(job, "max_steps_exceeded", "600", 600);
    snprintf(path, sizeof path, "/v1/jobs/%s/history", str(job, "id"));
    json_decref(job);
    e2e_request(&srv, "GET", path, NULL, NULL, &r);
    e2e_assert_error(&r, 422, "answer_too_large", "--history-limit");
    e2e_resp_free(&r);
    /* a list of 300 jobs */
    for (int i = 0; i < 300; i++)
        json_decref(e2e_start_job(&srv, "{\"flow\": \"noop\"}"));
    e2e_request(&srv, "GET", "/v1/jobs?limit=1000", NULL, NULL, &r);
    ck_assert_msg(r.status == 422, "%ld, %zu bytes", r.status, r.len);
    e2e_assert_error(&r, 422, "answer_too_large", "?limit=");
    e2e_resp_free(&r);
    json_t *page = e2e_get_json(&srv, "/v1/jobs?limit=20");
    ck_assert_uint_eq(json_array_size(json_object_get(page, "jobs")), 20);
    json_decref(page);
    stop();
}
END_TEST

/* A number of the /metrics text (-1 when it is not there). */
static double metric(e2e_server_t *s, const char *name) {
    e2e_resp_t r;
    e2e_request(s, "GET", "/metrics", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    double v = -1;
    size_t n = strlen(name);
    for (const char *p = r.body; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            v = strtod(p + n + 1, NULL);
    e2e_resp_free(&r);
    return v;
}

/* A job that steps faster than the store writes (a set node looping to itself) waits for it
 * (--store-backlog): what is queued for the store stays near the limit instead of growing with
 * every step, the time held is counted, and every step reaches the file. */
START_TEST(test_a_job_faster_than_the_store_waits_for_it) {
    e2e_start(&srv, "--store", store, "--store-backlog", "100", "--max-steps", "50000", NULL);
    put_doc(&srv, "/v1/flows/spin", spin_doc);
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"spin\"}");
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s", str(job, "id"));
    double most = 0;
    int samples = 0;
    uint64_t deadline = e2e_now_ms() + e2e_ms(60000);
    for (;;) {
        double backlog = metric(&srv, "flowd_store_backlog");
        ck_assert(backlog >= 0);
        most = backlog > most ? backlog : most;
        samples++;
        json_t *now = e2e_get_json(&srv, path);
        int ended = strcmp(str(now, "status"), "running") != 0 && strcmp(str(now, "status"), "queued") != 0;
        json_decref(now);
        if (ended)
            break;
        ck_assert_msg(e2e_now_ms() < deadline, "the job did not end");
    }
    /* past the limit the running step's checkpoint still goes, then no step starts */
    ck_assert_msg(most <= 100 + 16, "%.0f operations queued for the store (--store-backlog 100)", most);
    ck_assert_msg(metric(&srv, "flowd_store_held_seconds_total") > 0, "the engine was never held");
    json_t *end = e2e_wait_status(&srv, str(job, "id"), NULL, 10000);
    assert_failed(end, "max_steps_exceeded", "50000 steps", 50000);
    fprintf(stderr, "test_job_limits: 50,000 steps with --store-backlog 100: at most %.0f queued in %d "
            "samples, held %.3f s\n", most, samples, metric(&srv, "flowd_store_held_seconds_total"));
    json_decref(end);
    json_decref(job);
    stop();
    /* every step reached the file: a restart has them */
    e2e_start(&srv, "--store", store, "--max-steps", "50000", NULL);
    end = e2e_get_json(&srv, path);
    ck_assert_int_eq(json_integer_value(json_object_get(end, "steps")), 50000);
    json_decref(end);
    stop();
}
END_TEST

static Suite *job_limits_suite(void) {
    Suite *s = suite_create("job_limits");
    TCase *tc = tcase_create("job_limits");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_steps_are_limited_by_the_server_and_the_flow);
    tcase_add_test(tc, test_a_job_stops_at_ten_thousand_steps_by_default);
    tcase_add_test(tc, test_time_is_limited_by_the_server_and_the_flow);
    tcase_add_test(tc, test_bad_limits_in_a_document_are_refused);
    tcase_add_test(tc, test_a_resumed_job_keeps_counting_its_steps);
    tcase_add_test(tc, test_a_resumed_job_keeps_its_deadline);
    tcase_add_test(tc, test_the_shared_store_is_capped_on_sqlite);
    tcase_add_test(tc, test_the_shared_store_is_capped_in_memory);
    tcase_add_test(tc, test_a_template_is_capped);
    tcase_add_test(tc, test_answers_are_capped);
    tcase_add_test(tc, test_a_loop_with_100_kb_stops_on_sqlite);
    tcase_add_test(tc, test_a_loop_with_1_mib_stops_on_sqlite);
    tcase_add_test(tc, test_a_loop_with_a_big_store_stops_in_memory);
    tcase_add_test(tc, test_a_job_faster_than_the_store_waits_for_it);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(job_limits_suite());
}
