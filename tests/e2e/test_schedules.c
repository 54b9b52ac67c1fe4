/* test_schedules.c: schedules (PUT /v1/schedules/{name} and the rest). Their crons carry the
 * optional seconds field, so that runs come every second or at chosen seconds and a test waits a
 * few seconds, not minutes: the same timer and the same job path as a cron of minutes.
 *
 * Runs start as jobs of the schedule's flow with its shared store (the memory store); a schedule is
 * listed, read with its next runs, replaced and deleted (and then makes no more runs); bad ones are
 * refused with the status and code the contract says (a cron that never runs: 422); overlap skip
 * leaves a waiting job alone and counts the runs it skipped, cancel_previous cancels it, allow
 * lets runs pile up; pause stops the runs and resume starts them again; on SQLite a schedule
 * survives a kill -9, and the runs it missed while flowd was down are made once, for the latest of
 * them; a file of schema version 4 gets the schedules table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "e2e.h"

static char dir[64], flows[96], store[128];

static const char tick_doc[] =
    "{\"name\": \"tick\", \"start\": \"a\", \"nodes\": {"
    " \"a\": {\"type\": \"set\", \"params\": {\"/ran\": true}}}}";

/* Waits for an answer: its jobs stay waiting until they are answered or canceled. */
static const char hold_doc[] =
    "{\"name\": \"%s\", \"start\": \"ask\", \"nodes\": {"
    " \"ask\": {\"type\": \"input\", \"params\": {\"prompt\": \"go?\", \"actions\": {\"yes\": \"go\"}},"
    "   \"next\": {\"go\": \"done\"}},"
    " \"done\": {\"type\": \"set\", \"params\": {\"/done\": true}}}}";

static void setup(void) {
    char doc[1024];
    e2e_tmpdir(dir, sizeof dir, "flowd-schedules");
    snprintf(flows, sizeof flows, "%s/flows", dir);
    ck_assert_int_eq(mkdir(flows, 0755), 0);
    e2e_write_file(flows, "tick.json", tick_doc);
    static const char *const holds[] = {"hold_skip", "hold_cancel", "hold_allow"};
    for (size_t i = 0; i < 3; i++) {
        char name[64];
        snprintf(doc, sizeof doc, hold_doc, holds[i]);
        snprintf(name, sizeof name, "%s.json", holds[i]);
        e2e_write_file(flows, name, doc);
    }
    snprintf(store, sizeof store, "sqlite:%s/flowd.db", dir);
}

static void teardown(void) {
    e2e_rmtree(dir);
}

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

static long put(e2e_server_t *s, const char *name, const char *body, e2e_resp_t *out) {
    char path[160];
    snprintf(path, sizeof path, "/v1/schedules/%s", name);
    e2e_request(s, "PUT", path, json_ct, body, out);
    return out->status;
}

static void put_ok(e2e_server_t *s, const char *name, const char *body, long want) {
    e2e_resp_t r;
    ck_assert_msg(put(s, name, body, &r) == want, "PUT %s %s: %ld %s", name, body, r.status,
                  r.body ? r.body : "");
    e2e_resp_free(&r);
}

static json_t *schedule(e2e_server_t *s, const char *name) {
    char path[160];
    snprintf(path, sizeof path, "/v1/schedules/%s", name);
    return e2e_get_json(s, path);
}

static long long member(json_t *o, const char *key) {
    return (long long)json_integer_value(json_object_get(o, key));
}

/* The jobs of flow on the server (newest first): a new reference. */
static json_t *jobs_of(e2e_server_t *s, const char *flow) {
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs?flow=%s&limit=1000", flow);
    json_t *page = e2e_get_json(s, path);
    json_t *jobs = json_incref(json_object_get(page, "jobs"));
    json_decref(page);
    return jobs;
}

static size_t count_jobs(e2e_server_t *s, const char *flow, const char *status) {
    json_t *jobs = jobs_of(s, flow);
    size_t n = 0, i;
    json_t *j;
    json_array_foreach(jobs, i, j) {
        if (status == NULL || strcmp(json_string_value(json_object_get(j, "status")), status) == 0)
            n++;
    }
    json_decref(jobs);
    return n;
}

/* Waits (at most timeout_ms) until the schedule's member `key` is at least want; returns it. */
static long long wait_member(e2e_server_t *s, const char *name, const char *key, long long want,
                             unsigned timeout_ms) {
    timeout_ms = e2e_ms(timeout_ms);
    uint64_t until = e2e_now_ms() + timeout_ms;
    for (;;) {
        json_t *o = schedule(s, name);
        long long v = member(o, key);
        json_decref(o);
        if (v >= want)
            return v;
        ck_assert_msg(e2e_now_ms() < until, "schedule %s: %s is %lld, not %lld or more, after %u ms",
                      name, key, v, want, timeout_ms);
        usleep(100 * 1000);
    }
}

static size_t wait_jobs(e2e_server_t *s, const char *flow, const char *status, size_t want,
                        unsigned timeout_ms) {
    timeout_ms = e2e_ms(timeout_ms);
    uint64_t until = e2e_now_ms() + timeout_ms;
    for (;;) {
        size_t n = count_jobs(s, flow, status);
        if (n >= want)
            return n;
        ck_assert_msg(e2e_now_ms() < until, "%zu %s jobs of %s, not %zu, after %u ms", n,
                      status ? status : "", flow, want, timeout_ms);
        usleep(100 * 1000);
    }
}

/* Lets at least `seconds` whole seconds of the wall clock go by (runs of an every-second cron). */
static void let_seconds_pass(int seconds) {
    time_t end = time(NULL) + seconds + 1;
    while (time(NULL) < end)
        usleep(100 * 1000);
}

START_TEST(test_runs_start_and_a_schedule_is_listed_read_replaced_and_deleted) {
    e2e_server_t s;
    e2e_start(&s, "--store", "memory:", "--flows", flows, NULL);
    e2e_resp_t r;
    ck_assert_int_eq(put(&s, "every-second", "{\"cron\": \"* * * * * *\", \"timezone\": "
                                              "\"Europe/Paris\", \"flow\": \"tick\", \"shared\": "
                                              "{\"k\": 1}, \"params\": {\"p\": 2}}",
                         &r),
                     201);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "name")), "every-second");
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "overlap")), "skip");
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "tenant")), "default");
    ck_assert(json_is_false(json_object_get(r.json, "paused")));
    json_t *next = json_object_get(r.json, "next_runs");
    ck_assert_uint_eq(json_array_size(next), 5);
    /* one second apart, as RFC 3339 UTC times */
    struct tm a = {0}, b = {0};
    ck_assert_ptr_nonnull(strptime(json_string_value(json_array_get(next, 0)), "%Y-%m-%dT%H:%M:%SZ", &a));
    ck_assert_ptr_nonnull(strptime(json_string_value(json_array_get(next, 4)), "%Y-%m-%dT%H:%M:%SZ", &b));
    ck_assert_int_eq((long)(timegm(&b) - timegm(&a)), 4);
    e2e_resp_free(&r);

    /* runs come as jobs of tick with the schedule's shared store */
    wait_jobs(&s, "tick", "succeeded", 2, 20000);
    json_t *jobs = jobs_of(&s, "tick");
    char path[160];
    const char *id = json_string_value(json_object_get(json_array_get(jobs, 0), "id"));
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *shared = e2e_get_json(&s, path);
    ck_assert_int_eq(json_integer_value(json_object_get(shared, "k")), 1);
    ck_assert(json_is_true(json_object_get(shared, "ran")));
    json_decref(shared);
    json_decref(jobs);
    json_t *o = schedule(&s, "every-second");
    ck_assert_int_ge(member(o, "runs"), 2);
    const char *last = json_string_value(json_object_get(json_object_get(o, "last_run"), "job"));
    ck_assert_ptr_nonnull(last);
    snprintf(path, sizeof path, "/v1/jobs/%s", last);
    json_decref(e2e_get_json(&s, path));
    json_decref(o);

    /* replaced: 200, the same runs counted on */
    put_ok(&s, "every-second", "{\"cron\": \"*/2 * * * * *\", \"flow\": \"tick\"}", 200);
    o = schedule(&s, "every-second");
    ck_assert_str_eq(json_string_value(json_object_get(o, "cron")), "*/2 * * * * *");
    ck_assert_str_eq(json_string_value(json_object_get(o, "timezone")), "UTC");
    ck_assert_int_ge(member(o, "runs"), 2);
    json_decref(o);

    /* the list, a page at a time, by name */
    put_ok(&s, "another", "{\"cron\": \"0 0 1 1 *\", \"flow\": \"tick\"}", 201);
    json_t *page = e2e_get_json(&s, "/v1/schedules?limit=1");
    ck_assert_uint_eq(json_array_size(json_object_get(page, "schedules")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(page, "schedules"), 0), "name")),
                     "another");
    ck_assert_str_eq(json_string_value(json_object_get(page, "next_cursor")), "another");
    json_decref(page);
    page = e2e_get_json(&s, "/v1/schedules?limit=1&cursor=another");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(page, "schedules"), 0), "name")),
                     "every-second");
    ck_assert(json_is_null(json_object_get(page, "next_cursor")));
    json_decref(page);

    e2e_request(&s, "GET", "/metrics", NULL, NULL, &r);
    ck_assert_ptr_nonnull(strstr(r.body, "\nflowd_schedules 2\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "flowd_schedule_runs_total{outcome=\"started\"} "));
    ck_assert_ptr_null(strstr(r.body, "flowd_schedule_runs_total{outcome=\"started\"} 0\n"));
    e2e_resp_free(&r);

    /* deleted: 404 after, and no more runs */
    e2e_request(&s, "DELETE", "/v1/schedules/every-second", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(json_is_true(json_object_get(r.json, "deleted")));
    e2e_resp_free(&r);
    ck_assert_int_eq(e2e_get_status(&s, "/v1/schedules/every-second"), 404);
    size_t n = count_jobs(&s, "tick", NULL);
    let_seconds_pass(3);
    ck_assert_uint_eq(count_jobs(&s, "tick", NULL), n);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

START_TEST(test_bad_schedules_are_refused) {
    e2e_server_t s;
    e2e_start(&s, "--store", "memory:", "--flows", flows, "--max-schedules", "2", NULL);
    static const struct {
        const char *name, *body;
        long status;
        const char *code, *words;
    } cases[] = {
        {"never", "{\"cron\": \"0 0 30 2 *\", \"flow\": \"tick\"}", 422, "invalid_schedule",
         "names no time in the next 10 years"},
        {"bad-minute", "{\"cron\": \"61 * * * *\", \"flow\": \"tick\"}", 422, "invalid_schedule",
         "minute: '61' is outside 0-59"},
        {"four", "{\"cron\": \"* * * *\", \"flow\": \"tick\"}", 422, "invalid_schedule",
         "has 4"},
        {"zone", "{\"cron\": \"* * * * *\", \"timezone\": \"Mars/Olympus\", \"flow\": \"tick\"}",
         422, "invalid_schedule", "not an IANA time zone"},
        {"no-cron", "{\"flow\": \"tick\"}", 400, "bad_request", "missing field 'cron"},
        {"no-flow", "{\"cron\": \"* * * * *\"}", 400, "bad_request", "missing field 'flow"},
        {"cron-number", "{\"cron\": 5, \"flow\": \"tick\"}", 400, "bad_request",
         "field 'cron' must be a string"},
        {"overlap", "{\"cron\": \"* * * * *\", \"flow\": \"tick\", \"overlap\": \"sometimes\"}",
         400, "bad_request", "field 'overlap' must be one of"},
        {"paused", "{\"cron\": \"* * * * *\", \"flow\": \"tick\", \"paused\": 1}", 400,
         "bad_request", "field 'paused' must be a boolean"},
        {"shared", "{\"cron\": \"* * * * *\", \"flow\": \"tick\", \"shared\": []}", 400,
         "bad_request", "field 'shared' must be an object"},
        {"extra", "{\"cron\": \"* * * * *\", \"flow\": \"tick\", \"when\": 1}", 400,
         "bad_request", "unknown field 'when'"},
        {"no-such-flow", "{\"cron\": \"* * * * *\", \"flow\": \"nope\"}", 404, "unknown_flow",
         "no flow named 'nope'"},
        {"-dash", "{\"cron\": \"* * * * *\", \"flow\": \"tick\"}", 400, "bad_request",
         "cannot be a schedule's name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        e2e_resp_t r;
        put(&s, cases[i].name, cases[i].body, &r);
        e2e_assert_error(&r, cases[i].status, cases[i].code, cases[i].words);
        e2e_resp_free(&r);
    }
    e2e_resp_t r;
    e2e_request(&s, "PUT", "/v1/schedules/x", json_ct, "[1]", &r);
    e2e_assert_error(&r, 400, "bad_request", NULL);
    e2e_resp_free(&r);
    e2e_request(&s, "PUT", "/v1/schedules/x", json_ct, "{", &r);
    e2e_assert_error(&r, 400, "invalid_json", NULL);
    e2e_resp_free(&r);
    static const char *const missing[][2] = {{"GET", "/v1/schedules/none"},
                                             {"DELETE", "/v1/schedules/none"},
                                             {"POST", "/v1/schedules/none/pause"},
                                             {"POST", "/v1/schedules/none/resume"}};
    for (size_t i = 0; i < 4; i++) {
        e2e_request(&s, missing[i][0], missing[i][1], NULL, NULL, &r);
        e2e_assert_error(&r, 404, "not_found", "no schedule named 'none'");
        e2e_resp_free(&r);
    }
    e2e_request(&s, "GET", "/v1/schedules?limit=0", NULL, NULL, &r);
    e2e_assert_error(&r, 400, "bad_request", NULL);
    e2e_resp_free(&r);
    /* nothing refused was kept */
    json_t *page = e2e_get_json(&s, "/v1/schedules");
    ck_assert_uint_eq(json_array_size(json_object_get(page, "schedules")), 0);
    json_decref(page);
    /* --max-schedules */
    put_ok(&s, "one", "{\"cron\": \"0 0 1 1 *\", \"flow\": \"tick\"}", 201);
    put_ok(&s, "two", "{\"cron\": \"0 0 1 1 *\", \"flow\": \"tick\"}", 201);
    put(&s, "three", "{\"cron\": \"0 0 1 1 *\", \"flow\": \"tick\"}", &r);
    e2e_assert_error(&r, 409, "too_many_schedules", "--max-schedules");
    e2e_resp_free(&r);
    put_ok(&s, "two", "{\"cron\": \"0 0 2 1 *\", \"flow\": \"tick\"}", 200); /* a replacement fits */
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

START_TEST(test_overlap_skip_cancel_previous_and_allow) {
    e2e_server_t s;
    e2e_start(&s, "--store", store, "--flows", flows, NULL);
    /* skip: the first run waits for input; the next ones are skipped and counted */
    put_ok(&s, "skip", "{\"cron\": \"* * * * * *\", \"flow\": \"hold_skip\"}", 201);
    wait_member(&s, "skip", "skipped", 2, 20000);
    ck_assert_uint_eq(count_jobs(&s, "hold_skip", NULL), 1);
    ck_assert_uint_eq(count_jobs(&s, "hold_skip", "waiting"), 1);
    json_t *o = schedule(&s, "skip");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(o, "last_error")),
                                 "has not ended (overlap skip)"));
    json_decref(o);
    e2e_resp_t r;
    e2e_request(&s, "DELETE", "/v1/schedules/skip", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);

    /* cancel_previous: each run cancels the one before */
    put_ok(&s, "cancel", "{\"cron\": \"* * * * * *\", \"flow\": \"hold_cancel\", "
                         "\"overlap\": \"cancel_previous\"}", 201);
    wait_jobs(&s, "hold_cancel", "canceled", 2, 20000);
    e2e_request(&s, "POST", "/v1/schedules/cancel/pause", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
    ck_assert_uint_le(count_jobs(&s, "hold_cancel", "waiting"), 1);

    /* allow: they pile up */
    put_ok(&s, "allow", "{\"cron\": \"* * * * * *\", \"flow\": \"hold_allow\", "
                        "\"overlap\": \"allow\"}", 201);
    wait_jobs(&s, "hold_allow", "waiting", 3, 20000);
    o = schedule(&s, "allow");
    ck_assert_int_eq(member(o, "skipped"), 0);
    json_decref(o);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

START_TEST(test_pause_and_resume) {
    e2e_server_t s;
    e2e_start(&s, "--store", store, "--flows", flows, NULL);
    put_ok(&s, "beat", "{\"cron\": \"* * * * * *\", \"flow\": \"tick\"}", 201);
    wait_member(&s, "beat", "runs", 1, 20000);
    e2e_resp_t r;
    e2e_request(&s, "POST", "/v1/schedules/beat/pause", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(json_is_true(json_object_get(r.json, "paused")));
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "next_runs")), 0);
    e2e_resp_free(&r);
    let_seconds_pass(1); /* a run under way as the pause came has made its job */
    json_t *o = schedule(&s, "beat");
    long long runs = member(o, "runs");
    json_decref(o);
    size_t jobs = count_jobs(&s, "tick", NULL);
    let_seconds_pass(3);
    o = schedule(&s, "beat");
    ck_assert_int_eq(member(o, "runs"), runs);
    json_decref(o);
    ck_assert_uint_eq(count_jobs(&s, "tick", NULL), jobs);
    /* paused survives a restart paused */
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_start(&s, "--store", store, "--flows", flows, NULL);
    o = schedule(&s, "beat");
    ck_assert(json_is_true(json_object_get(o, "paused")));
    json_decref(o);
    let_seconds_pass(2);
    ck_assert_uint_eq(count_jobs(&s, "tick", NULL), jobs);
    e2e_request(&s, "POST", "/v1/schedules/beat/resume", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(json_is_false(json_object_get(r.json, "paused")));
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "next_runs")), 5);
    e2e_resp_free(&r);
    wait_jobs(&s, "tick", NULL, jobs + 2, 20000);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

/* Two runs at chosen seconds a little ahead; flowd is killed before them and started after them:
 * one run is made, for the later one. */
START_TEST(test_runs_missed_during_a_kill_9_are_made_once_at_start) {
    e2e_server_t s;
    e2e_start(&s, "--store", store, "--flows", flows, NULL);
    time_t first = time(NULL) + 4;
    struct tm tm;
    gmtime_r(&first, &tm);
    if (tm.tm_sec >= 58) { /* both in the same minute */
        first += 3;
        gmtime_r(&first, &tm);
    }
    char body[256], want[32];
    snprintf(body, sizeof body,
             "{\"cron\": \"%d,%d %d %d %d %d *\", \"flow\": \"tick\", \"timezone\": \"UTC\"}",
             tm.tm_sec, tm.tm_sec + 1, tm.tm_min, tm.tm_hour, tm.tm_mday, tm.tm_mon + 1);
    put_ok(&s, "twice", body, 201);
    /* and one deleted, which must stay deleted */
    put_ok(&s, "gone", "{\"cron\": \"* * * * * *\", \"flow\": \"tick\"}", 201);
    e2e_resp_t r;
    e2e_request(&s, "DELETE", "/v1/schedules/gone", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
    size_t before = count_jobs(&s, "tick", NULL);
    e2e_kill(&s);
    e2e_cleanup(&s);
    ck_assert_msg(time(NULL) < first, "the kill came after the first run's time");
    while (time(NULL) <= first + 2)
        usleep(100 * 1000);
    e2e_start(&s, "--store", store, "--flows", flows, NULL);
    wait_jobs(&s, "tick", "succeeded", before + 1, 20000);
    let_seconds_pass(2);
    ck_assert_uint_eq(count_jobs(&s, "tick", NULL), before + 1);
    json_t *o = schedule(&s, "twice");
    ck_assert_int_eq(member(o, "runs"), 1);
    time_t later = first + 1;
    gmtime_r(&later, &tm);
    strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%SZ", &tm);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "last_run"),
                                                       "scheduled_for")),
                     want);
    /* its next run is a year on */
    const char *next = json_string_value(json_array_get(json_object_get(o, "next_runs"), 0));
    ck_assert_int_eq((int)strtol(next, NULL, 10), tm.tm_year + 1900 + 1);
    json_decref(o);
    ck_assert_int_eq(e2e_get_status(&s, "/v1/schedules/gone"), 404);
    char *log = e2e_log(&s);
    ck_assert_ptr_nonnull(strstr(log, "were missed while flowd was down"));
    free(log);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

/* A file of schema version 4 (before schedules) gets the schedules table at start. */
START_TEST(test_a_version_4_file_gets_schedules) {
    e2e_server_t s;
    e2e_start(&s, "--store", store, "--flows", flows, NULL);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    char path[128];
    snprintf(path, sizeof path, "%s/flowd.db", dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    /* what version 4 had: no schedules, and none of version 6's columns (queueing) nor 7's
     * (redrives) */
    ck_assert_int_eq(sqlite3_exec(db, "DROP TABLE schedules; ALTER TABLE jobs DROP COLUMN start_at_us;"
                                      " ALTER TABLE jobs DROP COLUMN origin;"
                                      " ALTER TABLE jobs DROP COLUMN base_shared;"
                                      " ALTER TABLE jobs DROP COLUMN base_step; DROP TABLE stores;"
                                      " ALTER TABLE jobs DROP COLUMN priority;"
                                      " ALTER TABLE jobs DROP COLUMN conc_key;"
                                      " ALTER TABLE jobs DROP COLUMN conc_limit;"
                                      " ALTER TABLE jobs DROP COLUMN visits;"
                                      " ALTER TABLE jobs DROP COLUMN traceparent;"
                                      " UPDATE meta SET value = '4' WHERE key = 'schema_version'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    e2e_start(&s, "--store", store, "--flows", flows, NULL);
    put_ok(&s, "kept", "{\"cron\": \"0 0 1 1 *\", \"flow\": \"tick\"}", 201);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_start(&s, "--store", store, "--flows", flows, NULL);
    json_decref(schedule(&s, "kept"));
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_assert_sqlite_current(path);
}
END_TEST

static Suite *schedules_suite(void) {
    Suite *s = suite_create("schedules");
    TCase *tc = tcase_create("schedules");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_runs_start_and_a_schedule_is_listed_read_replaced_and_deleted);
    tcase_add_test(tc, test_bad_schedules_are_refused);
    tcase_add_test(tc, test_overlap_skip_cancel_previous_and_allow);
    tcase_add_test(tc, test_pause_and_resume);
    tcase_add_test(tc, test_runs_missed_during_a_kill_9_are_made_once_at_start);
    tcase_add_test(tc, test_a_version_4_file_gets_schedules);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(schedules_suite());
}
