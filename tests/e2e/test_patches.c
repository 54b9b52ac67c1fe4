/* test_patches.c: checkpoints as patches on the SQLite store. A looping job whose Lua post hook
 * changes a few keys of its shared store each step (one with a "/" and a "~" in its name, one
 * removed): its step events carry JSON Patches that rebuild the final store from the one it
 * started with (also after a restart, when its events come back from the store, and from a
 * Last-Event-ID); GET /v1/jobs/{id}/shared?step=N gives the store as of each step the log keeps,
 * 410 before that and 404 beyond; and after a kill -9 mid-run the job resumes from its last whole
 * store plus the patches after it, and ends with the right store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e.h"

static char dir[128], flows[160], store[192];

static void setup(void) {
    e2e_tmpdir(dir, sizeof dir, "flowd-patches");
    snprintf(flows, sizeof flows, "%s/flows", dir);
    ck_assert_int_eq(mkdir(flows, 0755), 0);
    e2e_write_file(flows, "ticks.json", e2e_ticks_doc);
    snprintf(store, sizeof store, "sqlite:%s/flowd.db", dir);
}

static void teardown(void) {
    e2e_rmtree(dir);
}

static void start(e2e_server_t *s) {
    e2e_start(s, "--store", store, "--flows", flows, "--snapshot-steps", "10", NULL);
}

static char *post(e2e_server_t *s, int limit) {
    json_t *body = json_pack("{s:s, s:o}", "flow", "ticks", "shared", e2e_ticks_initial(limit));
    char *text = json_dumps(body, JSON_COMPACT);
    json_t *job = e2e_start_job(s, text);
    char *id = strdup(json_string_value(json_object_get(job, "id")));
    free(text);
    json_decref(body);
    json_decref(job);
    return id;
}

START_TEST(test_the_patch_stream_and_step_reads_give_the_store) {
    enum { LIMIT = 40 };
    e2e_server_t s;
    start(&s);
    char *id = post(&s, LIMIT);
    json_t *doc = e2e_ticks_initial(LIMIT), *at = json_object();
    ck_assert_uint_eq(e2e_follow_steps(&s, id, NULL, doc, at, NULL), LIMIT);
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *final = e2e_get_json(&s, path);
    ck_assert(json_equal(final, doc));
    e2e_ticks_check(doc, LIMIT);

    /* the store as of each step the log keeps, as the patches made it; 410 before that */
    int kept = 0, gone = 0;
    for (int n = LIMIT; n >= 1; n--) {
        e2e_resp_t r;
        snprintf(path, sizeof path, "/v1/jobs/%s/shared?step=%d", id, n);
        e2e_request(&s, "GET", path, NULL, NULL, &r);
        char seq[32];
        snprintf(seq, sizeof seq, "%d", n);
        if (r.status == 200) {
            ck_assert_msg(!gone, "step %d kept after an older one was not", n);
            ck_assert_msg(json_equal(r.json, json_object_get(at, seq)), "step %d: %s", n, r.body);
            kept++;
        } else {
            e2e_assert_error(&r, 410, "step_not_kept", "--snapshot-steps");
            gone++;
        }
        e2e_resp_free(&r);
    }
    ck_assert_int_ge(kept, 1);
    ck_assert_int_ge(gone, 1); /* whole stores were written every 10 steps: step 1 is gone */
    e2e_resp_t r;
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?step=%d&pointer=/n", id, LIMIT);
    e2e_request(&s, "GET", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(atoi(r.body), LIMIT);
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?step=%d", id, LIMIT + 1);
    e2e_request(&s, "GET", path, NULL, NULL, &r);
    e2e_assert_error(&r, 404, "unknown_step", "has not finished step");
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?step=-1", id);
    e2e_request(&s, "GET", path, NULL, NULL, &r);
    e2e_assert_error(&r, 400, "bad_request", "step");
    e2e_resp_free(&r);

    json_decref(final);
    json_decref(doc);
    json_decref(at);
    free(id);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

START_TEST(test_kill_9_mid_run_resumes_from_snapshot_and_patches) {
    enum { LIMIT = 80 };
    e2e_server_t s;
    start(&s);
    char *id = post(&s, LIMIT);
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    uint64_t deadline = e2e_now_ms() + e2e_ms(20000);
    for (;;) { /* past a whole store or two, and some patches after it */
        json_t *job = e2e_get_json(&s, path);
        json_int_t steps = json_integer_value(json_object_get(job, "steps"));
        json_decref(job);
        if (steps >= 25)
            break;
        ck_assert(e2e_now_ms() < deadline);
        usleep(5000);
    }
    e2e_kill(&s);
    start(&s);
    json_decref(e2e_wait_status(&s, id, "succeeded", 20000));
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *final = e2e_get_json(&s, path);
    e2e_ticks_check(final, LIMIT); /* a step lost or run on a stale store would show */

    /* its events, from the store after the restart, still rebuild it ... */
    json_t *doc = e2e_ticks_initial(LIMIT), *ids = json_object();
    ck_assert_uint_eq(e2e_follow_steps(&s, id, NULL, doc, NULL, ids), LIMIT);
    ck_assert(json_equal(doc, final));
    json_decref(doc);
    /* ... and so do those after a Last-Event-ID, from the store as of that event's step (the
     * oldest step the log keeps) */
    int n = LIMIT;
    for (;; n--) {
        e2e_resp_t r;
        snprintf(path, sizeof path, "/v1/jobs/%s/shared?step=%d", id, n - 1);
        e2e_request(&s, "GET", path, NULL, NULL, &r);
        long status = r.status;
        e2e_resp_free(&r);
        if (status != 200)
            break;
    }
    ck_assert_int_lt(n, LIMIT);
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?step=%d", id, n);
    doc = e2e_get_json(&s, path);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "n")), n);
    char seq[32], last[32];
    snprintf(seq, sizeof seq, "%d", n);
    snprintf(last, sizeof last, "%lld", json_integer_value(json_object_get(ids, seq)));
    json_decref(ids);
    ck_assert_uint_eq(e2e_follow_steps(&s, id, last, doc, NULL, NULL), (size_t)(LIMIT - n));
    ck_assert(json_equal(doc, final));
    json_decref(doc);
    json_decref(final);
    free(id);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

static Suite *patches_suite(void) {
    Suite *s = suite_create("patches");
    TCase *tc = tcase_create("patches");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_the_patch_stream_and_step_reads_give_the_store);
    tcase_add_test(tc, test_kill_9_mid_run_resumes_from_snapshot_and_patches);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(patches_suite());
}
