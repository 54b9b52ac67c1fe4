/* test_webhooks.c: callbacks when jobs change (issue 14, "Callbacks when jobs change"), against a
 * running flowd. A receiver started here on 127.0.0.1 (e2e.h's, --allow-outbound lets flowd reach
 * it) checks every delivery as a user's server would: it recomputes the Standard Webhooks signature
 * from the secret, with OpenSSL in the test and not flowd's code, and answers 401 to a wrong one. It gets each event
 * a job asked for and no other; a receiver that fails first gets tries again (the same webhook-id)
 * until it answers 2xx; 410 stops the tries; a delivery owed when flowd is killed with SIGKILL is
 * made after the restart with the same webhook-id; a callback to an address the outbound policy
 * refuses is never connected; a rotated secret (SIGHUP) signs beside the old one; bad callbacks get
 * 400 or 422, and another tenant's deliveries are hidden. A redrive's job calls back as any job. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "e2e.h"

#define SECRET_A "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" /* 24 bytes each */
#define SECRET_B "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"

static char dir[64];

static const char *flows[][2] = {
    {"ask.json", "{\"name\": \"ask\", \"start\": \"q\", \"nodes\": {\"q\": {\"type\": \"input\","
                 " \"params\": {\"prompt\": \"Go on?\"}, \"out\": \"/answer\"}}}"},
    {"boom.json", "{\"name\": \"boom\", \"start\": \"f\", \"nodes\": {\"f\": {\"type\": \"fail\","
                  " \"params\": {\"message\": \"no\"}}}}"},
};

/* ---- flowd ---- */

static void setup(void) {
    e2e_tmpdir(dir, sizeof dir, "flowd-webhooks");
    for (size_t i = 0; i < sizeof flows / sizeof flows[0]; i++)
        e2e_write_file(dir, flows[i][0], flows[i][1]);
}

static void teardown(void) {
    e2e_rmtree(dir);
}

static void write_secrets(const char *text) {
    e2e_write_file(dir, "secrets", text);
    char path[160];
    snprintf(path, sizeof path, "%s/secrets", dir);
    chmod(path, 0600);
}

/* flowd with the flows, the secrets file, the receiver's address allowed and small waits. */
static void start(e2e_server_t *s, const char *store, unsigned port) {
    char flows_dir[80], secrets[160], allow[48];
    snprintf(flows_dir, sizeof flows_dir, "%s", dir);
    snprintf(secrets, sizeof secrets, "%s/secrets", dir);
    snprintf(allow, sizeof allow, "127.0.0.1:%u", port);
    e2e_start(s, "--flows", flows_dir, "--store", store, "--webhook-secrets", secrets,
              "--allow-outbound", allow, "--webhook-wait", "20ms", "--webhook-max-wait", "100ms",
              NULL);
}

static char *post_job(e2e_server_t *s, const char *flow, unsigned port, const char *events) {
    char body[512];
    snprintf(body, sizeof body,
             "{\"flow\": \"%s\", \"callback\": {\"url\": \"http://127.0.0.1:%u/hook\"%s%s}}", flow,
             port, events ? ", \"events\": " : "", events ? events : "");
    json_t *job = e2e_start_job(s, body);
    char *id = strdup(json_string_value(json_object_get(job, "id")));
    json_decref(job);
    return id;
}

static json_t *deliveries(e2e_server_t *s, const char *id) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/deliveries", id);
    return e2e_get_json(s, path);
}

/* Waits until the job's first delivery is in state (and has had at least `attempts` tries);
 * returns that delivery's object (a new reference). */
static json_t *wait_delivery(e2e_server_t *s, const char *id, const char *state, unsigned attempts,
                             unsigned timeout_ms) {
    uint64_t deadline = e2e_now_ms() + e2e_ms(timeout_ms);
    for (;;) {
        json_t *all = deliveries(s, id);
        json_t *d = json_array_get(json_object_get(all, "deliveries"), 0);
        if (d != NULL && strcmp(json_string_value(json_object_get(d, "state")), state) == 0 &&
            json_integer_value(json_object_get(d, "attempts")) >= (json_int_t)attempts) {
            json_incref(d);
            json_decref(all);
            return d;
        }
        if (e2e_now_ms() >= deadline) {
            char *text = json_dumps(all, JSON_INDENT(2));
            ck_abort_msg("job %s: no delivery %s after %u tries: %s", id, state, attempts, text);
        }
        json_decref(all);
        usleep(20000);
    }
}

static long metric(e2e_server_t *s, const char *outcome) {
    e2e_resp_t r;
    e2e_request(s, "GET", "/metrics", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    char needle[96];
    snprintf(needle, sizeof needle, "flowd_webhook_deliveries_total{outcome=\"%s\"} ", outcome);
    const char *p = strstr(r.body, needle);
    ck_assert_ptr_nonnull(p);
    long v = strtol(p + strlen(needle), NULL, 10);
    e2e_resp_free(&r);
    return v;
}

/* ---- the tests ---- */

START_TEST(test_each_event_asked_for_is_delivered_signed_and_no_other) {
    e2e_receiver_t r;
    e2e_server_t s;
    e2e_receiver_open(&r, SECRET_A);
    e2e_receiver_run(&r);
    write_secrets("# rotation: both sign\ndefault " SECRET_B "\ndefault " SECRET_A "\n");
    start(&s, "memory:", r.port);
    char *ok = post_job(&s, "noop", r.port, NULL);                      /* default events */
    char *failed = post_job(&s, "boom", r.port, NULL);
    char *quiet = post_job(&s, "boom", r.port, "[\"succeeded\"]");     /* fails: nothing */
    char *asks = post_job(&s, "ask", r.port, "[\"waiting\", \"canceled\"]");
    json_decref(e2e_wait_status(&s, asks, "waiting", 10000));
    e2e_receiver_wait(&r, 3, 10000);
    e2e_resp_t resp;
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", asks);
    e2e_request(&s, "POST", path, NULL, NULL, &resp);
    ck_assert_int_eq(resp.status, 202);
    e2e_resp_free(&resp);
    e2e_receiver_wait(&r, 4, 10000);
    json_decref(e2e_wait_status(&s, quiet, "failed", 10000));

    struct {
        const char *job;
        const char *types[2];
        size_t n;
    } want[] = {{ok, {"job.succeeded"}, 1},
                {failed, {"job.failed"}, 1},
                {quiet, {NULL}, 0},
                {asks, {"job.waiting", "job.canceled"}, 2}};
    for (size_t i = 0; i < 4; i++) {
        e2e_got_t got[4];
        size_t n = e2e_receiver_of(&r, want[i].job, got, 4);
        ck_assert_uint_eq(n, want[i].n);
        json_t *all = deliveries(&s, want[i].job);
        json_t *list = json_object_get(all, "deliveries");
        ck_assert_uint_eq(json_array_size(list), n);
        for (size_t k = 0; k < n; k++) {
            ck_assert_str_eq(got[k].type, want[i].types[k]);
            ck_assert_str_eq(got[k].status, want[i].types[k] + 4); /* data: the job as it was */
            /* the list is newest first; its ids are the webhook-ids the receiver saw */
            json_t *d = json_array_get(list, n - 1 - k);
            ck_assert_str_eq(json_string_value(json_object_get(d, "id")), got[k].id);
            ck_assert_str_eq(json_string_value(json_object_get(d, "state")), "delivered");
            ck_assert_int_eq(json_integer_value(json_object_get(d, "last_status")), 200);
        }
        json_decref(all);
    }
    /* nothing more comes: the quiet job's failure was not asked for */
    ck_assert_uint_eq(e2e_receiver_count(&r), 4);
    ck_assert_uint_eq(r.bad, 0);
    ck_assert_int_eq(metric(&s, "delivered"), 4);
    free(ok);
    free(failed);
    free(quiet);
    free(asks);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_receiver_close(&r);
}
END_TEST

START_TEST(test_a_wrong_secret_is_refused_until_a_rotation_signs_with_the_right_one) {
    e2e_receiver_t r;
    e2e_server_t s;
    e2e_receiver_open(&r, SECRET_B); /* the receiver knows only the new secret */
    e2e_receiver_run(&r);
    write_secrets("default " SECRET_A "\n");
    start(&s, "memory:", r.port);
    char *id = post_job(&s, "noop", r.port, NULL);
    json_t *d = wait_delivery(&s, id, "pending", 2, 10000);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "last_status")), 401);
    json_decref(d);
    ck_assert_uint_eq(e2e_receiver_count(&r), 0);
    ck_assert_uint_gt(r.bad, 1);
    /* the rotation: the new secret beside the old one, and SIGHUP */
    write_secrets("default " SECRET_A "\ndefault " SECRET_B "\n");
    kill(s.pid, SIGHUP);
    e2e_receiver_wait(&r, 1, 10000);
    d = wait_delivery(&s, id, "delivered", 3, 10000);
    ck_assert_str_eq(json_string_value(json_object_get(d, "id")), r.got[0].id);
    json_decref(d);
    free(id);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_receiver_close(&r);
}
END_TEST

START_TEST(test_a_failing_receiver_gets_tries_again_with_the_same_id) {
    e2e_receiver_t r;
    e2e_server_t s;
    e2e_receiver_open(&r, SECRET_A);
    r.script[0] = 500;
    r.script[1] = 503;
    r.script[2] = 429;
    r.nscript = 3;
    r.then = 204;
    e2e_receiver_run(&r);
    write_secrets("default " SECRET_A "\n");
    start(&s, "memory:", r.port);
    char *id = post_job(&s, "noop", r.port, NULL);
    e2e_receiver_wait(&r, 4, 10000);
    json_t *d = wait_delivery(&s, id, "delivered", 4, 10000);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "attempts")), 4);
    json_t *tries = json_object_get(d, "tries");
    long statuses[] = {500, 503, 429, 204};
    for (size_t i = 0; i < 4; i++) {
        json_t *t = json_array_get(tries, i);
        ck_assert_int_eq(json_integer_value(json_object_get(t, "status")), statuses[i]);
        ck_assert_int_eq(json_integer_value(json_object_get(t, "attempt")), (json_int_t)i + 1);
    }
    for (size_t i = 1; i < 4; i++)
        ck_assert_str_eq(r.got[i].id, r.got[0].id);
    ck_assert_str_eq(json_string_value(json_object_get(d, "id")), r.got[0].id);
    json_decref(d);
    ck_assert_int_eq(metric(&s, "retried"), 3);
    ck_assert_int_eq(metric(&s, "delivered"), 1);
    free(id);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_receiver_close(&r);
}
END_TEST

START_TEST(test_410_gone_stops_the_tries) {
    e2e_receiver_t r;
    e2e_server_t s;
    e2e_receiver_open(&r, SECRET_A);
    r.then = 410;
    e2e_receiver_run(&r);
    write_secrets("default " SECRET_A "\n");
    start(&s, "memory:", r.port);
    char *id = post_job(&s, "noop", r.port, NULL);
    json_t *d = wait_delivery(&s, id, "gone", 1, 10000);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "attempts")), 1);
    ck_assert(json_is_null(json_object_get(d, "next_try")));
    json_decref(d);
    /* ten times the longest wait (--webhook-max-wait 100ms): a try again would have come */
    usleep(1000000);
    ck_assert_uint_eq(e2e_receiver_count(&r), 1);
    ck_assert_int_eq(metric(&s, "gone"), 1);
    free(id);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_receiver_close(&r);
}
END_TEST

START_TEST(test_a_refused_address_is_never_connected) {
    e2e_receiver_t allowed, refused;
    e2e_server_t s;
    e2e_receiver_open(&allowed, SECRET_A);
    e2e_receiver_open(&refused, SECRET_A); /* never served: its backlog counts connections */
    write_secrets("default " SECRET_A "\n");
    start(&s, "memory:", allowed.port); /* only the other port is allowed */
    char *id = post_job(&s, "noop", refused.port, NULL);
    json_t *d = wait_delivery(&s, id, "pending", 3, 10000);
    const char *error = json_string_value(json_object_get(d, "last_error"));
    ck_assert_msg(error && strstr(error, "refused") && strstr(error, "--allow-outbound"), "%s",
                  error);
    ck_assert(json_is_null(json_object_get(d, "last_status")));
    json_decref(d);
    ck_assert_int_ge(metric(&s, "retried"), 3);
    int c = accept(refused.fd, NULL, NULL);
    ck_assert_int_lt(c, 0); /* no connection ever came */
    ck_assert_int_eq(errno, EAGAIN);
    free(id);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_receiver_close(&allowed);
    e2e_receiver_close(&refused);
}
END_TEST

/* The delivery's row in the SQLite file, with at least `attempts` tries committed. */
static int stored_attempts(const char *db, const char *job) {
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    int n = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(h, "SELECT attempts FROM deliveries WHERE job = ?", -1, &st, NULL) ==
            SQLITE_OK) {
        sqlite3_bind_text(st, 1, job, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

/* A redrive's job keeps the callback of the job it starts again: its events are delivered as any
 * job's, under its own id. */
START_TEST(test_a_redriven_job_calls_back_as_any_job) {
    e2e_receiver_t r;
    e2e_server_t s;
    char store[200];
    snprintf(store, sizeof store, "sqlite:%s/flowd.db", dir);
    e2e_receiver_open(&r, SECRET_A);
    e2e_receiver_run(&r);
    write_secrets("default " SECRET_A "\n");
    start(&s, store, r.port);
    char *id = post_job(&s, "boom", r.port, "[\"failed\"]");
    e2e_receiver_wait(&r, 1, 10000);
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s/redrive", id);
    e2e_resp_t resp;
    e2e_request(&s, "POST", path, NULL, NULL, &resp);
    ck_assert_int_eq(resp.status, 202);
    char *again = strdup(json_string_value(json_object_get(resp.json, "id")));
    e2e_resp_free(&resp);
    e2e_receiver_wait(&r, 2, 10000);
    e2e_got_t got[2];
    ck_assert_uint_eq(e2e_receiver_of(&r, again, got, 2), 1);
    ck_assert_str_eq(got[0].type, "job.failed");
    json_decref(wait_delivery(&s, again, "delivered", 1, 10000));
    ck_assert_uint_eq(r.bad, 0);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_receiver_close(&r);
    free(id);
    free(again);
}
END_TEST

START_TEST(test_a_delivery_owed_at_a_crash_is_made_after_it_with_the_same_id) {
    e2e_receiver_t r;
    e2e_server_t s;
    char store[200], db[160];
    snprintf(db, sizeof db, "%s/flowd.db", dir);
    snprintf(store, sizeof store, "sqlite:%s", db);
    e2e_receiver_open(&r, SECRET_A);
    r.then = 503; /* down for maintenance until the crash */
    e2e_receiver_run(&r);
    write_secrets("default " SECRET_A "\n");
    start(&s, store, r.port);
    char *id = post_job(&s, "noop", r.port, NULL);
    e2e_receiver_wait(&r, 1, 10000);
    uint64_t deadline = e2e_now_ms() + e2e_ms(10000);
    while (stored_attempts(db, id) < 1) {
        ck_assert_msg(e2e_now_ms() < deadline, "the delivery's try is not in the store");
        usleep(10000);
    }
    e2e_kill(&s);
    char first[128];
    snprintf(first, sizeof first, "%s", r.got[0].id);
    size_t before = e2e_receiver_count(&r);
    pthread_mutex_lock(&r.lock);
    r.then = 200;
    pthread_mutex_unlock(&r.lock);
    start(&s, store, r.port);
    e2e_receiver_wait(&r, before + 1, 10000);
    json_t *d = wait_delivery(&s, id, "delivered", 2, 10000);
    pthread_mutex_lock(&r.lock);
    e2e_got_t last = r.got[r.ngot - 1];
    pthread_mutex_unlock(&r.lock);
    ck_assert_str_eq(last.id, first);
    ck_assert_int_eq(last.answered, 200);
    ck_assert_str_eq(json_string_value(json_object_get(d, "id")), first);
    ck_assert_int_ge(json_integer_value(json_object_get(d, "attempts")), 2);
    json_decref(d);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    /* once more: a delivery that was made is not made again */
    size_t made = e2e_receiver_count(&r);
    start(&s, store, r.port);
    d = wait_delivery(&s, id, "delivered", 2, 10000);
    json_decref(d);
    usleep(300000);
    ck_assert_uint_eq(e2e_receiver_count(&r), made);
    free(id);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_receiver_close(&r);
}
END_TEST

/* A file of schema version 3 (before callbacks): migrated at start to version 4; its job is still
 * there, and a new job's callback is kept and made. */
static const char schema_v3[] =
    E2E_SQLITE_TABLES_V3
    "INSERT INTO meta VALUES ('schema_version', '3');"
    "INSERT INTO jobs (seq, id, flow, status, created_us, started_us, finished_us, shared, steps, totals)"
    " VALUES (1, '00000000000000000000000000000003', 'noop', 'succeeded', unixepoch('now') * 1000000,"
    " unixepoch('now') * 1000000, unixepoch('now') * 1000000, '{}', 1,"
    " '{\"steps\": 1, \"failed\": 0, \"retries\": 0, \"dropped\": 0}');";

START_TEST(test_a_version_3_file_is_migrated_and_keeps_callbacks) {
    e2e_receiver_t r;
    e2e_server_t s;
    char store[200], db[160];
    snprintf(db, sizeof db, "%s/flowd.db", dir);
    snprintf(store, sizeof store, "sqlite:%s", db);
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(h, schema_v3, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    e2e_receiver_open(&r, SECRET_A);
    r.then = 503;
    e2e_receiver_run(&r);
    write_secrets("default " SECRET_A "\n");
    start(&s, store, r.port);
    e2e_assert_job(&s, "00000000000000000000000000000003", "default", "succeeded");
    char *id = post_job(&s, "noop", r.port, NULL);
    e2e_receiver_wait(&r, 1, 10000);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    pthread_mutex_lock(&r.lock);
    r.then = 200;
    size_t before = r.ngot;
    pthread_mutex_unlock(&r.lock);
    start(&s, store, r.port); /* the callback and its delivery were kept */
    e2e_receiver_wait(&r, before + 1, 10000);
    json_decref(wait_delivery(&s, id, "delivered", 2, 10000));
    json_t *all = deliveries(&s, id);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(json_object_get(all, "callback"), "events"), 2)),
                     "canceled");
    json_decref(all);
    e2e_assert_job(&s, "00000000000000000000000000000003", "default", "succeeded");
    free(id);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_receiver_close(&r);
    e2e_assert_sqlite_current(db); /* and on through every version since */
}
END_TEST

START_TEST(test_bad_callbacks_are_refused_and_deliveries_are_kept_to_the_tenant) {
    e2e_server_t s;
    char keys[512], line[256], path[160], secrets[160], flows_dir[80];
    e2e_key_line("key-acme", "acme-app", "submit", "acme", line, sizeof line);
    snprintf(keys, sizeof keys, "%s", line);
    e2e_key_line("key-other", "other-app", "submit", "other", line, sizeof line);
    strncat(keys, line, sizeof keys - strlen(keys) - 1);
    e2e_write_file(dir, "keys", keys);
    write_secrets("acme " SECRET_A "\n");
    snprintf(path, sizeof path, "%s/keys", dir);
    snprintf(secrets, sizeof secrets, "%s/secrets", dir);
    snprintf(flows_dir, sizeof flows_dir, "%s", dir);
    e2e_start(&s, "--flows", flows_dir, "--store", "memory:", "--keys", path, "--webhook-secrets",
              secrets, NULL);
    e2e_use_key(&s, "key-acme");
    struct {
        const char *body;
        long status;
        const char *code, *words;
    } cases[] = {
        {"{\"flow\": \"noop\", \"callback\": \"http://x\"}", 400, "bad_request", "must be an object"},
        {"{\"flow\": \"noop\", \"callback\": {}}", 422, "invalid_callback", "'url'"},
        {"{\"flow\": \"noop\", \"callback\": {\"url\": \"ftp://x/\"}}", 422, "invalid_callback",
         "http:// or https://"},
        {"{\"flow\": \"noop\", \"callback\": {\"url\": \"http:///x\"}}", 422, "invalid_callback",
         "host"},
        {"{\"flow\": \"noop\", \"callback\": {\"url\": \"http://x/ y\"}}", 422, "invalid_callback",
         "spaces"},
        {"{\"flow\": \"noop\", \"callback\": {\"url\": \"http://x\", \"events\": []}}", 422,
         "invalid_callback", "non-empty"},
        {"{\"flow\": \"noop\", \"callback\": {\"url\": \"http://x\", \"events\": [\"done\"]}}", 422,
         "invalid_callback", "'done'"},
        {"{\"flow\": \"noop\", \"callback\": {\"url\": \"http://x\", \"secret\": \"s\"}}", 422,
         "invalid_callback", "'secret'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        e2e_resp_t r;
        e2e_post(&s, "/v1/jobs", cases[i].body, &r);
        e2e_assert_error(&r, cases[i].status, cases[i].code, cases[i].words);
        e2e_resp_free(&r);
    }
    /* a tenant without a secret cannot ask for callbacks */
    e2e_use_key(&s, "key-other");
    e2e_resp_t r;
    e2e_post(&s, "/v1/jobs", "{\"flow\": \"noop\", \"callback\": {\"url\": \"http://x\"}}", &r);
    e2e_assert_error(&r, 422, "invalid_callback", "--webhook-secrets");
    e2e_resp_free(&r);
    /* acme's job: its deliveries are acme's; to the other tenant it does not exist */
    e2e_use_key(&s, "key-acme");
    json_t *job = e2e_start_job(&s, "{\"flow\": \"noop\", \"callback\": {\"url\": \"https://example.invalid/h\"}}");
    const char *id = json_string_value(json_object_get(job, "id"));
    json_t *all = deliveries(&s, id);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(all, "callback"), "url")),
                     "https://example.invalid/h");
    json_decref(all);
    e2e_use_key(&s, "key-other");
    e2e_assert_hidden(&s, "GET", "/v1/jobs/%s/deliveries", NULL, id);
    ck_assert_int_eq(e2e_get_status(&s, "/v1/jobs/0123456789abcdef0123456789abcdef/deliveries"), 404);
    json_decref(job);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

START_TEST(test_tries_end_at_max_age_and_past_max_pending_a_delivery_is_dropped) {
    e2e_receiver_t r;
    e2e_server_t s;
    e2e_receiver_open(&r, SECRET_A);
    r.then = 503;
    e2e_receiver_run(&r);
    write_secrets("default " SECRET_A "\n");
    char secrets[160], allow[48];
    snprintf(secrets, sizeof secrets, "%s/secrets", dir);
    snprintf(allow, sizeof allow, "127.0.0.1:%u", r.port);
    e2e_start(&s, "--flows", dir, "--store", "memory:", "--webhook-secrets", secrets,
              "--allow-outbound", allow, "--webhook-wait", "20ms", "--webhook-max-wait", "50ms",
              "--webhook-max-age", "2s", "--webhook-max-pending", "1", NULL);
    char *first = post_job(&s, "noop", r.port, NULL);
    json_decref(e2e_wait_status(&s, first, "succeeded", 10000));
    /* one delivery is owed: the next job's is dropped */
    char *second = post_job(&s, "noop", r.port, NULL);
    json_decref(e2e_wait_status(&s, second, "succeeded", 10000));
    json_t *all = deliveries(&s, second);
    ck_assert_uint_eq(json_array_size(json_object_get(all, "deliveries")), 0);
    json_decref(all);
    ck_assert_int_eq(metric(&s, "dropped"), 1);
    json_t *d = wait_delivery(&s, first, "failed", 2, 10000);
    const char *error = json_string_value(json_object_get(d, "last_error"));
    ck_assert_msg(error && strstr(error, "503") && strstr(error, "--webhook-max-age"), "%s", error);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "last_status")), 503);
    ck_assert(json_is_null(json_object_get(d, "next_try")));
    json_decref(d);
    ck_assert_int_eq(metric(&s, "failed"), 1);
    size_t tries = e2e_receiver_count(&r);
    usleep(300000); /* six of the longest waits: no more tries come */
    ck_assert_uint_eq(e2e_receiver_count(&r), tries);
    free(first);
    free(second);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_receiver_close(&r);
}
END_TEST

START_TEST(test_a_bad_secrets_file_stops_the_start) {
    write_secrets("default whsec_tooshort\n");
    char secrets[160];
    snprintf(secrets, sizeof secrets, "%s/secrets", dir);
    const char *args[] = {"--store", "memory:", "--webhook-secrets", secrets, NULL};
    char *out = NULL;
    ck_assert_int_ne(e2e_run(args, &out), 0);
    ck_assert_msg(strstr(out, "secrets:1:") && strstr(out, "whsec_"), "%s", out);
    free(out);
    const char *waits[] = {"--store", "memory:", "--webhook-wait", "2m", "--webhook-max-wait", "1m", NULL};
    ck_assert_int_ne(e2e_run(waits, &out), 0);
    ck_assert_msg(strstr(out, "--webhook-wait") && strstr(out, "--webhook-max-wait"), "%s", out);
    free(out);
}
END_TEST

static Suite *webhooks_suite(void) {
    Suite *s = suite_create("webhooks");
    TCase *tc = tcase_create("webhooks");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_each_event_asked_for_is_delivered_signed_and_no_other);
    tcase_add_test(tc, test_a_wrong_secret_is_refused_until_a_rotation_signs_with_the_right_one);
    tcase_add_test(tc, test_a_failing_receiver_gets_tries_again_with_the_same_id);
    tcase_add_test(tc, test_410_gone_stops_the_tries);
    tcase_add_test(tc, test_a_refused_address_is_never_connected);
    tcase_add_test(tc, test_a_delivery_owed_at_a_crash_is_made_after_it_with_the_same_id);
    tcase_add_test(tc, test_a_version_3_file_is_migrated_and_keeps_callbacks);
    tcase_add_test(tc, test_bad_callbacks_are_refused_and_deliveries_are_kept_to_the_tenant);
    tcase_add_test(tc, test_tries_end_at_max_age_and_past_max_pending_a_delivery_is_dropped);
    tcase_add_test(tc, test_a_bad_secrets_file_stops_the_start);
    tcase_add_test(tc, test_a_redriven_job_calls_back_as_any_job);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(webhooks_suite());
}
