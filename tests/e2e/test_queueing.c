/* test_queueing.c: jobs that start later, in order, and not too many at once (server/scheduler.h).
 * A delayed job (start_at, delay) is stored at once, shows queued with its start_at, starts after
 * it and not before, survives SIGKILL and a restart, and can be canceled while it waits; with
 * --max-running 1 queued jobs start highest priority first, then oldest first; a concurrency key
 * holds its limit per key while other keys run; a flow's max_running holds too; bad values are
 * refused with the field and the flag named.
 *
 * No assert is on a duration: jobs wait at an input node, so that what runs and what waits is
 * seen at rest, and order is what is checked (a job that started shows "waiting"; one held back
 * stays "queued" while jobs sent after it have started). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "e2e/e2e.h"

static e2e_server_t srv;
static char dir[64], flows[96], store[128];

/* Waits at its input node until answered: a job that started and holds its slot. */
static const char gate_doc[] =
    "{\"name\": \"gate\", \"start\": \"ask\", \"nodes\": {"
    " \"ask\": {\"type\": \"input\", \"params\": {\"prompt\": \"go?\"}, \"out\": \"/answer\"}}}";
/* The same, at most two running per customer. */
static const char percust_doc[] =
    "{\"name\": \"percust\", \"concurrency\": {\"key\": \"$shared/customer\", \"limit\": 2},"
    " \"start\": \"ask\", \"nodes\": {"
    " \"ask\": {\"type\": \"input\", \"params\": {\"prompt\": \"go?\"}, \"out\": \"/answer\"}}}";
/* The same, one running at a time. */
static const char single_doc[] =
    "{\"name\": \"single\", \"max_running\": 1, \"start\": \"ask\", \"nodes\": {"
    " \"ask\": {\"type\": \"input\", \"params\": {\"prompt\": \"go?\"}, \"out\": \"/answer\"}}}";

static void setup(void) {
    e2e_tmpdir(dir, sizeof dir, "flowd-queueing");
    snprintf(flows, sizeof flows, "%s/flows", dir);
    ck_assert_int_eq(mkdir(flows, 0755), 0);
    e2e_write_file(flows, "gate.json", gate_doc);
    e2e_write_file(flows, "percust.json", percust_doc);
    e2e_write_file(flows, "single.json", single_doc);
    snprintf(store, sizeof store, "sqlite:%s/flowd.db", dir);
}

static void teardown(void) {
    e2e_rmtree(dir);
}

static void stop(void) {
    ck_assert_int_eq(e2e_stop(&srv, 20000), 0);
    e2e_cleanup(&srv);
}

static const char *str(json_t *obj, const char *key) {
    return json_string_value(json_object_get(obj, key));
}

/* POSTs body, asserting 202; the new job's id (malloc'd). */
static char *submit(const char *body) {
    json_t *job = e2e_start_job(&srv, body);
    char *id = strdup(str(job, "id"));
    json_decref(job);
    return id;
}

static json_t *get_job(const char *id) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    return e2e_get_json(&srv, path);
}

static void assert_status(const char *id, const char *status) {
    json_t *job = get_job(id);
    ck_assert_msg(strcmp(str(job, "status"), status) == 0, "job %s is %s, not %s", id,
                  str(job, "status"), status);
    json_decref(job);
}

static void answer(const char *id) {
    char path[128];
    e2e_resp_t r;
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    e2e_post(&srv, path, "{\"value\": \"go\"}", &r);
    ck_assert_msg(r.status == 202, "input to %s: %ld %s", id, r.status, r.body);
    e2e_resp_free(&r);
    json_decref(e2e_wait_status(&srv, id, "succeeded", 20000));
}

/* The job started (it waits at its input node), and its started_at is not before its start_at. */
static void assert_started_in_time(const char *id) {
    json_t *job = e2e_wait_status(&srv, id, "waiting", 30000);
    const char *start_at = str(job, "start_at"), *started = str(job, "started_at");
    ck_assert_ptr_nonnull(start_at);
    ck_assert_ptr_nonnull(started);
    /* both are UTC with six digits of fraction: their text sorts as their time */
    ck_assert_msg(strcmp(started, start_at) >= 0, "job %s started at %s, before its start_at %s",
                  id, started, start_at);
    json_decref(job);
}

/* Now plus off seconds as RFC 3339 with the given ending ("Z", "+00:00"), into out (32 bytes). */
static void rfc3339(char *out, long off, const char *end) {
    time_t t = time(NULL) + off;
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, "%s", end);
}

/* Until the job's row in the SQLite file says status: its end is committed (the end of a job is
 * written after its answer, not before: a SIGKILL sooner would bring it back as it was). */
static void wait_committed(const char *id, const char *status) {
    char path[160];
    snprintf(path, sizeof path, "%s/flowd.db", dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT status FROM jobs WHERE id = ?", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int found = 0;
    for (int tries = 0; !found && tries < 600; tries++) {
        if (sqlite3_step(st) == SQLITE_ROW &&
            strcmp((const char *)sqlite3_column_text(st, 0), status) == 0)
            found = 1;
        else
            usleep(50000);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    ck_assert_msg(found, "job %s is not stored %s after 30 s", id, status);
}

static void post_expect(const char *body, long status, const char *code, const char *words) {
    e2e_resp_t r;
    e2e_post(&srv, "/v1/jobs", body, &r);
    e2e_assert_error(&r, status, code, words);
    e2e_resp_free(&r);
}

/* A delayed job is queued with its start_at, and starts after it: jobs sent later without a delay
 * start first. */
START_TEST(test_a_delayed_job_starts_later_and_not_before) {
    e2e_start(&srv, "--store", "memory:", "--flows", flows, NULL);
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"gate\", \"delay\": \"3s\"}");
    char *late = strdup(str(job, "id"));
    ck_assert_str_eq(str(job, "status"), "queued");
    ck_assert_ptr_nonnull(str(job, "start_at"));
    ck_assert_msg(strcmp(str(job, "start_at"), str(job, "created_at")) > 0, "start_at %s",
                  str(job, "start_at"));
    json_decref(job);
    /* seconds as a number too, and a start_at in the past: at once */
    char *soon = submit("{\"flow\": \"gate\", \"delay\": 0}");
    char t[32], body[128];
    rfc3339(t, -60, "Z");
    snprintf(body, sizeof body, "{\"flow\": \"gate\", \"start_at\": \"%s\"}", t);
    char *past = submit(body);
    /* further in the past than --max-delay (30 days): a mistake, refused */
    post_expect("{\"flow\": \"gate\", \"start_at\": \"2000-01-01T00:00:00Z\"}", 400, "bad_request",
                "--max-delay");
    json_decref(e2e_wait_status(&srv, soon, "waiting", 20000));
    json_decref(e2e_wait_status(&srv, past, "waiting", 20000));
    /* the two sent after it have started; it has not, unless its time has come meanwhile (a slow
     * run): then it started no sooner than its start_at */
    json_t *now = get_job(late);
    if (strcmp(str(now, "status"), "queued") != 0)
        ck_assert_msg(strcmp(str(now, "started_at"), str(now, "start_at")) >= 0,
                      "started at %s, before its start_at %s", str(now, "started_at"),
                      str(now, "start_at"));
    ck_assert(json_is_null(json_object_get(now, "started_at")) ==
              (strcmp(str(now, "status"), "queued") == 0));
    json_decref(now);
    assert_started_in_time(late);
    answer(soon);
    answer(past);
    answer(late);
    free(late);
    free(soon);
    free(past);
    stop();
}
END_TEST

/* A delayed job is stored at once: after SIGKILL it is still queued with the same start_at, one
 * whose time passed while flowd was down starts at once, and a cancel while it waits ends it. */
START_TEST(test_delayed_jobs_survive_sigkill_and_cancel) {
    e2e_start(&srv, "--store", store, "--flows", flows, NULL);
    char *soon = submit("{\"flow\": \"gate\", \"delay\": 1.5, \"priority\": 2}");
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"percust\", \"delay\": \"1h\", \"priority\": 8,"
                                      " \"shared\": {\"customer\": \"acme\"}}");
    char *later = strdup(str(job, "id"));
    char *start_at = strdup(str(job, "start_at"));
    json_decref(job);
    e2e_kill(&srv); /* a 202 means stored */
    sleep(2);       /* past the first job's start_at while nothing runs */
    e2e_start(&srv, "--store", store, "--flows", flows, NULL);
    assert_started_in_time(soon);
    job = get_job(later);
    ck_assert_str_eq(str(job, "status"), "queued");
    ck_assert_str_eq(str(job, "start_at"), start_at);
    ck_assert_int_eq(json_integer_value(json_object_get(job, "priority")), 8);
    ck_assert_str_eq(str(json_object_get(job, "concurrency"), "key"), "acme");
    json_t *conc = json_object_get(job, "concurrency");
    ck_assert_int_eq(json_integer_value(json_object_get(conc, "limit")), 2);
    json_decref(job);
    job = get_job(soon);
    ck_assert_int_eq(json_integer_value(json_object_get(job, "priority")), 2);
    json_decref(job);

    char path[128];
    e2e_resp_t r;
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", later);
    e2e_post(&srv, path, NULL, &r);
    ck_assert_msg(r.status == 202, "cancel: %ld %s", r.status, r.body);
    ck_assert_str_eq(str(r.json, "status"), "canceled");
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "steps")), 0);
    e2e_resp_free(&r);
    e2e_post(&srv, path, NULL, &r);
    e2e_assert_error(&r, 409, "already_ended", NULL);
    e2e_resp_free(&r);

    wait_committed(later, "canceled");
    e2e_kill(&srv);
    e2e_start(&srv, "--store", store, "--flows", flows, NULL);
    assert_status(later, "canceled");
    json_decref(e2e_wait_status(&srv, soon, "waiting", 20000)); /* it resumes at its input node */
    answer(soon);
    free(soon);
    free(later);
    free(start_at);
    stop();
}
END_TEST

/* With --max-running 1, queued jobs start highest priority first, then in order of arrival. */
START_TEST(test_priority_orders_the_queue) {
    e2e_start(&srv, "--store", "memory:", "--flows", flows, "--max-running", "1", NULL);
    char *first = submit("{\"flow\": \"gate\"}");
    json_decref(e2e_wait_status(&srv, first, "waiting", 20000));
    static const char *const bodies[] = {
        "{\"flow\": \"gate\", \"priority\": 1}", "{\"flow\": \"gate\", \"priority\": 9}",
        "{\"flow\": \"gate\"}",                  "{\"flow\": \"gate\", \"priority\": 9}",
        "{\"flow\": \"gate\", \"priority\": 0}", "{\"flow\": \"gate\", \"priority\": 5}"};
    enum { N = sizeof bodies / sizeof bodies[0] };
    static const int order[N] = {1, 3, 2, 5, 0, 4}; /* 9, 9, 5 (default), 5, 1, 0 */
    char *ids[N];
    for (int i = 0; i < N; i++) {
        ids[i] = submit(bodies[i]);
        assert_status(ids[i], "queued");
    }
    answer(first);
    for (int k = 0; k < N; k++) {
        const char *next = ids[order[k]];
        json_decref(e2e_wait_status(&srv, next, "waiting", 20000));
        for (int j = k + 1; j < N; j++) /* the one running holds the only slot */
            assert_status(ids[order[j]], "queued");
        answer(next);
    }
    for (int i = 0; i < N; i++)
        free(ids[i]);
    free(first);
    stop();
}
END_TEST

/* A flow's concurrency key: at most two jobs of one customer run at once; the others stay queued
 * while other customers' jobs run, and start as the ones before them end. A submission may say a
 * key of its own for a flow that has none. */
START_TEST(test_a_concurrency_key_holds_its_limit_per_key) {
    e2e_start(&srv, "--store", store, "--flows", flows, NULL);
    char *a[4], *b[2];
    for (int i = 0; i < 4; i++)
        a[i] = submit("{\"flow\": \"percust\", \"shared\": {\"customer\": \"acme\"}}");
    for (int i = 0; i < 2; i++)
        b[i] = submit("{\"flow\": \"percust\", \"shared\": {\"customer\": \"bolt\"}}");
    /* bolt's jobs came after acme's third and fourth, and run: those two are held by their key */
    for (int i = 0; i < 2; i++) {
        json_decref(e2e_wait_status(&srv, b[i], "waiting", 20000));
        json_decref(e2e_wait_status(&srv, a[i], "waiting", 20000));
    }
    assert_status(a[2], "queued");
    assert_status(a[3], "queued");
    json_t *job = get_job(a[2]);
    ck_assert_str_eq(str(json_object_get(job, "concurrency"), "key"), "acme");
    json_decref(job);
    answer(a[0]);
    json_decref(e2e_wait_status(&srv, a[2], "waiting", 20000));
    assert_status(a[3], "queued");
    answer(b[0]); /* another key's room is not acme's */
    assert_status(a[3], "queued");
    answer(a[1]);
    json_decref(e2e_wait_status(&srv, a[3], "waiting", 20000));
    answer(a[2]);
    answer(a[3]);
    answer(b[1]);

    /* a key of the submission's own, here a literal: one at a time */
    char *k1 = submit("{\"flow\": \"gate\", \"concurrency\": {\"key\": \"gpu\", \"limit\": 1}}");
    char *k2 = submit("{\"flow\": \"gate\", \"concurrency\": {\"key\": \"gpu\", \"limit\": 1}}");
    char *free_one = submit("{\"flow\": \"gate\"}");
    json_decref(e2e_wait_status(&srv, k1, "waiting", 20000));
    json_decref(e2e_wait_status(&srv, free_one, "waiting", 20000));
    assert_status(k2, "queued");
    answer(k1);
    json_decref(e2e_wait_status(&srv, k2, "waiting", 20000));
    answer(k2);
    answer(free_one);
    /* a key the job does not have is refused when it is sent */
    post_expect("{\"flow\": \"percust\", \"shared\": {}}", 400, "bad_request", "$shared/customer");
    post_expect("{\"flow\": \"percust\", \"shared\": {\"customer\": {\"a\": 1}}}", 400,
                "bad_request", "$shared/customer");
    post_expect("{\"flow\": \"percust\", \"shared\": {\"customer\": \"x\"},"
                " \"concurrency\": {\"key\": \"k\", \"limit\": 1}}",
                400, "bad_request", "sets its own concurrency");
    for (int i = 0; i < 4; i++)
        free(a[i]);
    free(b[0]);
    free(b[1]);
    free(k1);
    free(k2);
    free(free_one);
    stop();
}
END_TEST

/* A flow's max_running: one of its jobs at a time, while other flows run. A canceled queued job
 * gives its turn up. */
START_TEST(test_a_flow_limit_holds) {
    e2e_start(&srv, "--store", "memory:", "--flows", flows, NULL);
    char *s1 = submit("{\"flow\": \"single\"}");
    char *s2 = submit("{\"flow\": \"single\"}");
    char *s3 = submit("{\"flow\": \"single\"}");
    char *other = submit("{\"flow\": \"gate\"}");
    json_decref(e2e_wait_status(&srv, s1, "waiting", 20000));
    json_decref(e2e_wait_status(&srv, other, "waiting", 20000));
    assert_status(s2, "queued");
    assert_status(s3, "queued");
    char path[128];
    e2e_resp_t r;
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", s2);
    e2e_post(&srv, path, NULL, &r);
    ck_assert_msg(r.status == 202, "cancel: %ld %s", r.status, r.body);
    ck_assert_str_eq(str(r.json, "status"), "canceled");
    e2e_resp_free(&r);
    assert_status(s3, "queued");
    answer(s1);
    json_decref(e2e_wait_status(&srv, s3, "waiting", 20000));
    answer(s3);
    answer(other);
    free(s1);
    free(s2);
    free(s3);
    free(other);
    stop();
}
END_TEST

/* Bad values are refused with the field named (and the flag of a limit); so are documents. */
START_TEST(test_bad_values_are_refused) {
    e2e_start(&srv, "--store", "memory:", "--flows", flows, "--max-delay", "1h", NULL);
    static const struct {
        const char *body, *words;
    } bad[] = {
        {"{\"flow\": \"gate\", \"start_at\": \"tomorrow\"}", "RFC 3339"},
        {"{\"flow\": \"gate\", \"start_at\": \"2026-02-30T00:00:00Z\"}", "RFC 3339"},
        {"{\"flow\": \"gate\", \"start_at\": \"2026-01-01T00:00:00\"}", "RFC 3339"},
        {"{\"flow\": \"gate\", \"start_at\": 1700000000}", "RFC 3339"},
        {"{\"flow\": \"gate\", \"start_at\": \"2999-01-01T00:00:00Z\"}", "--max-delay"},
        {"{\"flow\": \"gate\", \"start_at\": \"2001-01-01T00:00:00+02:00\"}", "--max-delay"},
        {"{\"flow\": \"gate\", \"delay\": \"2h\"}", "--max-delay"},
        {"{\"flow\": \"gate\", \"delay\": 7201}", "--max-delay"},
        {"{\"flow\": \"gate\", \"delay\": -1}", "'delay'"},
        {"{\"flow\": \"gate\", \"delay\": \"soon\"}", "'delay'"},
        {"{\"flow\": \"gate\", \"delay\": 1, \"start_at\": \"2026-01-01T00:00:00Z\"}", "not both"},
        {"{\"flow\": \"gate\", \"priority\": 10}", "0 to 9"},
        {"{\"flow\": \"gate\", \"priority\": -1}", "0 to 9"},
        {"{\"flow\": \"gate\", \"priority\": \"high\"}", "0 to 9"},
        {"{\"flow\": \"gate\", \"priority\": 1.5}", "0 to 9"},
        {"{\"flow\": \"gate\", \"concurrency\": \"acme\"}", "an object"},
        {"{\"flow\": \"gate\", \"concurrency\": {\"key\": \"a\"}}", "limit"},
        {"{\"flow\": \"gate\", \"concurrency\": {\"key\": \"a\", \"limit\": 0}}", "limit"},
        {"{\"flow\": \"gate\", \"concurrency\": {\"key\": \"a\", \"limit\": 1, \"x\": 1}}", "\"x\""},
        {"{\"flow\": \"gate\", \"concurrency\": {\"key\": \"\", \"limit\": 1}}", "key"},
        {"{\"flow\": \"gate\", \"concurrency\": {\"key\": \"$env/x\", \"limit\": 1}}", "$shared"},
        {"{\"flow\": \"gate\", \"concurrency\": {\"key\": \"$params/x\", \"limit\": 1}}", "params"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        post_expect(bad[i].body, 400, "bad_request", bad[i].words);
    /* a start_at with an offset or a fraction, within the limit, is taken */
    char t[32], body[128];
    rfc3339(t, 1800, ".25+00:00");
    snprintf(body, sizeof body, "{\"flow\": \"gate\", \"start_at\": \"%s\"}", t);
    json_t *later = e2e_start_job(&srv, body);
    ck_assert_str_eq(str(later, "status"), "queued");
    ck_assert_msg(strstr(str(later, "start_at"), ".250000Z") != NULL, "%s", str(later, "start_at"));
    json_decref(later);
    static const struct {
        const char *doc, *where;
    } docs[] = {
        {"{\"max_running\": 0, \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}", "/max_running"},
        {"{\"max_running\": \"2\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}", "/max_running"},
        {"{\"concurrency\": {\"key\": \"$params/who\", \"limit\": 1}, \"start\": \"a\","
         " \"nodes\": {\"a\": {\"type\": \"noop\"}}}", "/concurrency/key"},
        {"{\"concurrency\": {\"key\": \"$shared/who\", \"limit\": 1.5}, \"start\": \"a\","
         " \"nodes\": {\"a\": {\"type\": \"noop\"}}}", "/concurrency"},
        {"{\"concurrency\": {\"limit\": 1}, \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}",
         "/concurrency"},
    };
    const char *const ct[] = {"Content-Type: application/json", NULL};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        e2e_resp_t r;
        e2e_request(&srv, "PUT", "/v1/flows/badq", ct, docs[i].doc, &r);
        e2e_assert_error(&r, 422, "invalid_flow", NULL);
        ck_assert_msg(strstr(r.body, docs[i].where) != NULL, "%s: %s", docs[i].doc, r.body);
        e2e_resp_free(&r);
    }
    /* a $params key of a declared param, from the job's params or the default */
    e2e_resp_t r;
    e2e_request(&srv, "PUT", "/v1/flows/byparam", ct,
                "{\"params\": {\"who\": \"anyone\"}, \"concurrency\": {\"key\": \"$params/who\","
                " \"limit\": 3}, \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}",
                &r);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    e2e_resp_free(&r);
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"byparam\", \"params\": {\"who\": 42}}");
    ck_assert_str_eq(str(json_object_get(job, "concurrency"), "key"), "42");
    json_decref(job);
    job = e2e_start_job(&srv, "{\"flow\": \"byparam\"}");
    ck_assert_str_eq(str(json_object_get(job, "concurrency"), "key"), "anyone");
    json_decref(job);
    stop();
}
END_TEST

/* A file of schema version 3 (before callbacks, start_at, priority and keys), and one of version 4
 * (with callbacks): its queued job runs at once at the default priority, and new jobs keep what
 * they ask for across a restart. */
static const char schema_v3[] =
    E2E_SQLITE_TABLES_V3
    "INSERT INTO meta VALUES ('schema_version', '3');"
    "INSERT INTO jobs (seq, id, flow, created_us, shared)"
    " VALUES (1, '00000000000000000000000000000003', 'gate', unixepoch('now') * 1000000, '{}');";

/* What version 4 added to it (callbacks). */
static const char v3_to_v4[] =
    "ALTER TABLE jobs ADD COLUMN callback TEXT;"
    "UPDATE meta SET value = '4' WHERE key = 'schema_version';";

static void migrated(const char *extra) {
    char path[160];
    snprintf(path, sizeof path, "%s/flowd.db", dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, schema_v3, NULL, NULL, NULL), SQLITE_OK);
    if (extra != NULL)
        ck_assert_int_eq(sqlite3_exec(db, extra, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    const char *old = "00000000000000000000000000000003";
    e2e_start(&srv, "--store", store, "--flows", flows, NULL);
    json_t *job = e2e_wait_status(&srv, old, "waiting", 20000);
    ck_assert_int_eq(json_integer_value(json_object_get(job, "priority")), 5);
    ck_assert(json_is_null(json_object_get(job, "start_at")));
    ck_assert(json_is_null(json_object_get(job, "concurrency")));
    json_decref(job);
    char *later = submit("{\"flow\": \"gate\", \"delay\": \"1h\", \"priority\": 3}");
    stop();
    e2e_start(&srv, "--store", store, "--flows", flows, NULL);
    job = get_job(later);
    ck_assert_str_eq(str(job, "status"), "queued");
    ck_assert_int_eq(json_integer_value(json_object_get(job, "priority")), 3);
    ck_assert_ptr_nonnull(str(job, "start_at"));
    json_decref(job);
    answer(old);
    free(later);
    stop();
    e2e_assert_sqlite_current(path); /* and on through every version since */
}

START_TEST(test_a_version_3_file_is_migrated) {
    migrated(NULL);
}
END_TEST

START_TEST(test_a_version_4_file_is_migrated) {
    migrated(v3_to_v4);
}
END_TEST

/* What version 5 added (schedules), over version 4. */
static const char v3_to_v5[] =
    "ALTER TABLE jobs ADD COLUMN callback TEXT;"
    "CREATE TABLE schedules (name TEXT PRIMARY KEY, tenant TEXT NOT NULL, definition TEXT NOT NULL,"
    " next_s INTEGER NOT NULL, last_job TEXT, last_run_s INTEGER NOT NULL DEFAULT 0,"
    " skipped INTEGER NOT NULL DEFAULT 0, updated_us INTEGER NOT NULL);"
    "UPDATE meta SET value = '5' WHERE key = 'schema_version';";

START_TEST(test_a_version_5_file_is_migrated) {
    migrated(v3_to_v5);
}
END_TEST

static Suite *queueing_suite(void) {
    Suite *s = suite_create("queueing");
    TCase *tc = tcase_create("queueing");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_a_delayed_job_starts_later_and_not_before);
    tcase_add_test(tc, test_delayed_jobs_survive_sigkill_and_cancel);
    tcase_add_test(tc, test_priority_orders_the_queue);
    tcase_add_test(tc, test_a_concurrency_key_holds_its_limit_per_key);
    tcase_add_test(tc, test_a_flow_limit_holds);
    tcase_add_test(tc, test_bad_values_are_refused);
    tcase_add_test(tc, test_a_version_3_file_is_migrated);
    tcase_add_test(tc, test_a_version_4_file_is_migrated);
    tcase_add_test(tc, test_a_version_5_file_is_migrated);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(queueing_suite());
}
