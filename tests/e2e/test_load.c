/* test_load.c: ten thousand jobs at once. Each waits for a person's answer and then sleeps on a
 * timer, with a shared store of its own: all ten thousand wait at the same moment (the status counts
 * say so, whatever the speed of the machine), then every one is answered and all of them must end
 * succeeded with their own store and slept value. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e/e2e.h"

#define JOBS 10000
#define SECONDS 1

static const char wait_sleep_doc[] =
    "{\"name\": \"wait-sleep\", \"start\": \"wait\", \"nodes\": {"
    " \"wait\": {\"type\": \"input\", \"params\": {\"prompt\": \"go?\"}, \"next\": {\"default\": \"nap\"}},"
    " \"nap\": {\"type\": \"sleep\", \"params\": {\"seconds\": \"$shared/seconds\"}, \"out\": \"/slept\"}}}";

/* The count of jobs with this status in /metrics, or -1 when it is not there. */
static long metric_jobs(e2e_server_t *srv, const char *status) {
    char needle[64];
    e2e_resp_t r;
    long n = -1;
    snprintf(needle, sizeof needle, "flowd_jobs{status=\"%s\"} ", status);
    e2e_request(srv, "GET", "/metrics", NULL, NULL, &r);
    const char *p = r.body != NULL ? strstr(r.body, needle) : NULL;
    if (p != NULL)
        n = strtol(p + strlen(needle), NULL, 10);
    e2e_resp_free(&r);
    return n;
}

static void wait_metric(e2e_server_t *srv, const char *status, long want, unsigned timeout_ms) {
    timeout_ms = e2e_ms(timeout_ms);
    uint64_t deadline = e2e_now_ms() + timeout_ms;
    long n;
    while ((n = metric_jobs(srv, status)) != want) {
        ck_assert_msg(e2e_now_ms() < deadline, "%ld jobs %s after %u ms, not %ld", n, status,
                      timeout_ms, want);
        usleep(50000);
    }
}

static const char *str(json_t *obj, const char *key) {
    return json_string_value(json_object_get(obj, key));
}

START_TEST(test_ten_thousand_concurrent_jobs) {
    e2e_server_t srv;
    char dir[] = "/tmp/flowd-load-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    e2e_write_file(dir, "wait-sleep.json", wait_sleep_doc);
    e2e_start(&srv, "--max-jobs", "20000", "--log-level", "warn", "--flows", dir, NULL);
    e2e_call_t *calls = calloc(JOBS, sizeof *calls);
    for (int i = 0; i < JOBS; i++) {
        calls[i].method = "POST";
        calls[i].path = strdup("/v1/jobs");
        calls[i].body = malloc(128);
        snprintf(calls[i].body, 128,
                 "{\"flow\": \"wait-sleep\", \"shared\": {\"seconds\": %d, \"n\": %d, \"tag\": \"job-%d\"}}",
                 SECONDS, i, i);
    }
    e2e_calls(&srv, calls, JOBS, 32);
    char (*ids)[40] = calloc(JOBS, sizeof *ids);
    for (int i = 0; i < JOBS; i++) {
        ck_assert_msg(calls[i].status == 202, "job %d: %ld %s", i, calls[i].status, calls[i].resp);
        json_t *job = json_loads(calls[i].resp, 0, NULL);
        snprintf(ids[i], sizeof ids[i], "%s", str(job, "id"));
        json_decref(job);
        free(calls[i].path);
        free(calls[i].body);
    }
    e2e_calls_free(calls, JOBS);

    /* All ten thousand are alive at once, each waiting for its answer. */
    wait_metric(&srv, "waiting", JOBS, 60000);

    /* Answered, they all sleep on their timers and end. */
    for (int i = 0; i < JOBS; i++) {
        calls[i].method = "POST";
        calls[i].path = malloc(80);
        snprintf(calls[i].path, 80, "/v1/jobs/%s/input", ids[i]);
        calls[i].body = strdup("{\"value\": \"go\"}");
    }
    e2e_calls(&srv, calls, JOBS, 32);
    for (int i = 0; i < JOBS; i++) {
        ck_assert_msg(calls[i].status == 202, "input %d: %ld %s", i, calls[i].status, calls[i].resp);
        free(calls[i].path);
        free(calls[i].body);
    }
    e2e_calls_free(calls, JOBS);
    wait_metric(&srv, "succeeded", JOBS, 60000);

    /* Every store is its own, and every job ran its steps. */
    for (int i = 0; i < JOBS; i++) {
        calls[i].method = "GET";
        calls[i].path = malloc(64);
        snprintf(calls[i].path, 64, "/v1/jobs/%s/shared", ids[i]);
        calls[i].body = NULL;
    }
    e2e_calls(&srv, calls, JOBS, 32);
    for (int i = 0; i < JOBS; i++) {
        ck_assert_msg(calls[i].status == 200, "shared %d: %ld", i, calls[i].status);
        json_t *shared = json_loads(calls[i].resp, 0, NULL);
        char tag[32];
        snprintf(tag, sizeof tag, "job-%d", i);
        ck_assert_int_eq(json_integer_value(json_object_get(shared, "n")), i);
        ck_assert_str_eq(str(shared, "tag"), tag);
        ck_assert_int_eq(json_integer_value(json_object_get(shared, "slept")), SECONDS);
        json_decref(shared);
        free(calls[i].path);
    }
    e2e_calls_free(calls, JOBS);
    free(ids);
    free(calls);
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
    char path[64];
    snprintf(path, sizeof path, "%s/wait-sleep.json", dir);
    unlink(path);
    rmdir(dir);
}
END_TEST

static Suite *load_suite(void) {
    Suite *s = suite_create("load");
    TCase *tc = tcase_create("load");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ten_thousand_concurrent_jobs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(load_suite());
}
