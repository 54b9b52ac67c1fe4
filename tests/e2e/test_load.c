/* test_load.c: ten thousand jobs at once. Each sleeps five seconds on a timer with a shared store of
 * its own; all of them must end succeeded with their own store and slept value, and they must have
 * run together: one at a time would take hours. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e/e2e.h"

#define JOBS 10000
#define SECONDS 5

static const char *str(json_t *obj, const char *key) {
    return json_string_value(json_object_get(obj, key));
}

/* 2026-11-24T17:05:00.123456Z as microseconds since midnight (the runs are minutes long). */
static int64_t time_us(const char *t) {
    int h, m, s, us;
    ck_assert_msg(t != NULL && sscanf(t + 11, "%d:%d:%d.%d", &h, &m, &s, &us) == 4, "bad time %s", t);
    return (((int64_t)h * 60 + m) * 60 + s) * 1000000 + us;
}

START_TEST(test_ten_thousand_concurrent_jobs) {
    e2e_server_t srv;
    e2e_start(&srv, "--max-jobs", "20000", "--log-level", "warn", NULL);
    e2e_call_t *calls = calloc(JOBS, sizeof *calls);
    for (int i = 0; i < JOBS; i++) {
        calls[i].method = "POST";
        calls[i].path = strdup("/v1/jobs");
        calls[i].body = malloc(128);
        snprintf(calls[i].body, 128, "{\"flow\": \"sleep\", \"shared\": {\"seconds\": %d, \"n\": %d, \"tag\": \"job-%d\"}}",
                 SECONDS, i, i);
    }
    uint64_t t0 = e2e_now_ms();
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

    /* All of them end: the list, a thousand at a time, shows ten thousand succeeded. */
    uint64_t deadline = e2e_now_ms() + 60000;
    for (;;) {
        json_t *m = e2e_get_json(&srv, "/v1/jobs?status=succeeded&limit=1");
        json_decref(m);
        e2e_resp_t r;
        e2e_request(&srv, "GET", "/metrics", NULL, NULL, &r);
        int done = strstr(r.body, "flowd_jobs{status=\"succeeded\"} 10000\n") != NULL;
        e2e_resp_free(&r);
        if (done)
            break;
        ck_assert_msg(e2e_now_ms() < deadline, "not all jobs succeeded within 60 s");
        json_decref(e2e_wait_status(&srv, ids[JOBS - 1], NULL, 30000));
    }
    uint64_t wall = e2e_now_ms() - t0;
    ck_assert_msg(wall < 60000, "10000 jobs of %d s took %llu ms", SECONDS, (unsigned long long)wall);

    /* Every store is its own, and every job ran its step; and they overlapped in time. */
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
    int64_t last_start = 0, first_end = INT64_MAX;
    size_t seen = 0;
    char path[128] = "/v1/jobs?status=succeeded&limit=1000";
    for (;;) {
        json_t *page = e2e_get_json(&srv, path);
        json_t *jobs = json_object_get(page, "jobs");
        for (size_t k = 0; k < json_array_size(jobs); k++) {
            json_t *job = json_array_get(jobs, k);
            int64_t start = time_us(str(job, "started_at")), end = time_us(str(job, "finished_at"));
            last_start = start > last_start ? start : last_start;
            first_end = end < first_end ? end : first_end;
            seen++;
        }
        json_t *next = json_object_get(page, "next_cursor");
        if (json_is_null(next)) {
            json_decref(page);
            break;
        }
        snprintf(path, sizeof path, "/v1/jobs?status=succeeded&limit=1000&cursor=%s", json_string_value(next));
        json_decref(page);
    }
    ck_assert_uint_eq(seen, JOBS);
    /* every job had started before the first one ended: all ten thousand ran at once */
    ck_assert_msg(last_start < first_end, "the last job started %lld us after the first ended",
                  (long long)(last_start - first_end));
    free(ids);
    free(calls);
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
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
