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

/* Each step: n counts, key "k/~<n>" is added, "drop" goes at n == 5, "big" is never written. */
static const char ticks_doc[] =
    "{\"name\": \"ticks\", \"start\": \"tick\", \"nodes\": {"
    " \"tick\": {\"type\": \"sleep\", \"params\": {\"seconds\": 0.01},"
    "  \"post\": [\"shared.n = shared.n + 1\", \"shared['k/~' .. shared.n] = shared.n\","
    "   \"if shared.n == 5 then shared.drop = nil end\","
    "   \"if shared.n < shared.limit then return 'again' end\"],"
    "  \"next\": {\"again\": \"tick\"}}}}";

static void setup(void) {
    e2e_tmpdir(dir, sizeof dir, "flowd-patches");
    snprintf(flows, sizeof flows, "%s/flows", dir);
    ck_assert_int_eq(mkdir(flows, 0755), 0);
    e2e_write_file(flows, "ticks.json", ticks_doc);
    snprintf(store, sizeof store, "sqlite:%s/flowd.db", dir);
}

static void teardown(void) {
    e2e_rmtree(dir);
}

static void start(e2e_server_t *s) {
    e2e_start(s, "--store", store, "--flows", flows, "--snapshot-steps", "10", NULL);
}

static json_t *initial(int limit) {
    return json_pack("{s:i, s:i, s:b, s:s}", "n", 0, "limit", limit, "drop", 1, "big",
                     "a value no step writes");
}

/* A client's own applier of what flowd sends: add and remove of top-level members. */
static void apply(json_t *doc, json_t *patch) {
    size_t i;
    json_t *op;
    ck_assert(json_is_array(patch));
    json_array_foreach(patch, i, op) {
        const char *path = json_string_value(json_object_get(op, "path"));
        const char *name = json_string_value(json_object_get(op, "op"));
        ck_assert(path != NULL && path[0] == '/' && strchr(path + 1, '/') == NULL);
        char key[256];
        size_t n = 0;
        for (const char *p = path + 1; *p && n + 1 < sizeof key; p++) {
            if (*p == '~') {
                p++;
                key[n++] = *p == '0' ? '~' : '/';
            } else {
                key[n++] = *p;
            }
        }
        key[n] = '\0';
        if (strcmp(name, "remove") == 0) {
            ck_assert_int_eq(json_object_del(doc, key), 0);
        } else {
            ck_assert_str_eq(name, "add");
            json_object_set(doc, key, json_object_get(op, "value"));
        }
    }
}

/* The job's events (from after last_id, NULL: all) to its end, applied to doc; at (may be NULL)
 * gets a copy of the store after each step, by seq, and ids (may be NULL) each step's event id.
 * Returns the number of step events. */
static size_t follow(e2e_server_t *s, const char *id, const char *last_id, json_t *doc,
                     json_t *at, json_t *ids) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    e2e_stream_t st;
    e2e_stream_open(&st, s, path, last_id);
    ck_assert(e2e_stream_wait_end(&st, 20000));
    json_t *frames = e2e_sse_parse(st.buf);
    size_t i, steps = 0;
    json_t *f;
    json_array_foreach(frames, i, f) {
        const char *ev = json_string_value(json_object_get(f, "event"));
        if (ev == NULL || strcmp(ev, "step") != 0)
            continue;
        json_t *data = json_object_get(f, "data");
        apply(doc, json_object_get(data, "patch"));
        char seq[32];
        snprintf(seq, sizeof seq, "%lld", json_integer_value(json_object_get(data, "seq")));
        if (at != NULL)
            json_object_set_new(at, seq, json_deep_copy(doc));
        if (ids != NULL)
            json_object_set(ids, seq, json_object_get(f, "id"));
        steps++;
    }
    json_decref(frames);
    e2e_stream_close(&st);
    return steps;
}

static void check_final(json_t *got, int limit) {
    ck_assert_int_eq(json_integer_value(json_object_get(got, "n")), limit);
    ck_assert_ptr_null(json_object_get(got, "drop"));
    ck_assert_str_eq(json_string_value(json_object_get(got, "big")), "a value no step writes");
    for (int k = 1; k <= limit; k++) {
        char key[32];
        snprintf(key, sizeof key, "k/~%d", k);
        ck_assert_int_eq(json_integer_value(json_object_get(got, key)), k);
    }
    ck_assert_uint_eq(json_object_size(got), (size_t)limit + 3);
}

static char *post(e2e_server_t *s, int limit) {
    json_t *body = json_pack("{s:s, s:o}", "flow", "ticks", "shared", initial(limit));
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
    json_t *doc = initial(LIMIT), *at = json_object();
    ck_assert_uint_eq(follow(&s, id, NULL, doc, at, NULL), LIMIT);
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *final = e2e_get_json(&s, path);
    ck_assert(json_equal(final, doc));
    check_final(doc, LIMIT);

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
    uint64_t deadline = e2e_now_ms() + 20000;
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
    check_final(final, LIMIT); /* a step lost or run on a stale store would show */

    /* its events, from the store after the restart, still rebuild it ... */
    json_t *doc = initial(LIMIT), *ids = json_object();
    ck_assert_uint_eq(follow(&s, id, NULL, doc, NULL, ids), LIMIT);
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
    ck_assert_uint_eq(follow(&s, id, last, doc, NULL, NULL), (size_t)(LIMIT - n));
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
