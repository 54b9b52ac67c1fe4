/* test_durable.c: nothing accepted is lost. flowd on the SQLite store is killed with SIGKILL in the
 * middle of its work, at random moments, during bursts of submissions and with a torn last write in
 * its log, and started again on the same file: every job that got a 202 is there once, ends with the
 * right shared store, and its history shows where it resumed. A job waiting for a person waits
 * again; Idempotency-Keys and flows registered through the API come back too, and an http node
 * killed mid-request sends its request again with the Idempotency-Key it had. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "e2e.h"
#include "support/mock.h"

static char dir[64], flows[96], store[128];
/* --store-shards: the "three files" case runs the same tests on a store of three files */
static const char *shards = "1";

/* Six steps: three sleeps of shared.pause seconds, each followed by a set that appends to
 * shared.done, so a step run twice on the same store would show. */
static const char steps_doc[] =
    "{\"name\": \"steps\", \"start\": \"a\", \"nodes\": {"
    " \"a\": {\"type\": \"sleep\", \"params\": {\"seconds\": \"$shared/pause\"}, \"next\": {\"default\": \"b\"}},"
    " \"b\": {\"type\": \"set\", \"params\": {\"/done/-\": \"b\"}, \"next\": {\"default\": \"c\"}},"
    " \"c\": {\"type\": \"sleep\", \"params\": {\"seconds\": \"$shared/pause\"}, \"next\": {\"default\": \"d\"}},"
    " \"d\": {\"type\": \"set\", \"params\": {\"/done/-\": \"d\"}, \"next\": {\"default\": \"e\"}},"
    " \"e\": {\"type\": \"sleep\", \"params\": {\"seconds\": \"$shared/pause\"}, \"next\": {\"default\": \"f\"}},"
    " \"f\": {\"type\": \"set\", \"params\": {\"/done/-\": \"f\"}}}}";

static const char ask_doc[] =
    "{\"name\": \"approval\", \"start\": \"first\", \"nodes\": {"
    " \"first\": {\"type\": \"set\", \"params\": {\"/asked\": true}, \"next\": {\"default\": \"ask\"}},"
    " \"ask\": {\"type\": \"input\", \"params\": {\"prompt\": \"OK for {{$shared/who}}?\","
    "   \"actions\": {\"yes\": \"go\", \"no\": \"stop\"}}, \"out\": \"/answer\", \"next\": {\"go\": \"done\", \"stop\": null}},"
    " \"done\": {\"type\": \"set\", \"params\": {\"/done\": true}}}}";

/* Ends failed at its second node, after a first one that changed the shared store. */
static const char fails_doc[] =
    "{\"name\": \"fails\", \"start\": \"first\", \"nodes\": {"
    " \"first\": {\"type\": \"set\", \"params\": {\"/x\": 7}, \"next\": {\"default\": \"stop\"}},"
    " \"stop\": {\"type\": \"fail\", \"params\": {\"message\": \"no {{$shared/x}}\"}}}}";

static void setup(void) {
    e2e_tmpdir(dir, sizeof dir, "flowd-durable");
    snprintf(flows, sizeof flows, "%s/flows", dir);
    ck_assert_int_eq(mkdir(flows, 0755), 0);
    e2e_write_file(flows, "steps.json", steps_doc);
    e2e_write_file(flows, "approval.json", ask_doc);
    e2e_write_file(flows, "fails.json", fails_doc);
    snprintf(store, sizeof store, "sqlite:%s/flowd.db", dir);
}

static void teardown(void) {
    e2e_rmtree(dir);
    shards = "1";
}

static void setup_three_files(void) {
    setup();
    shards = "3";
}

static void start(e2e_server_t *s) {
    e2e_start(s, "--store", store, "--flows", flows, "--max-jobs", "100000", "--store-shards",
              shards, NULL);
}

/* The jobs in the file at path. */
static int jobs_in(const char *path) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int n = -1;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM jobs", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static json_t *get_value(e2e_server_t *s, const char *path) {
    e2e_resp_t r;
    e2e_request(s, "GET", path, NULL, NULL, &r);
    ck_assert_msg(r.status == 200, "GET %s: %ld %s", path, r.status, r.body ? r.body : "");
    json_t *v = json_loadb(r.body, r.len, JSON_DECODE_ANY, NULL);
    e2e_resp_free(&r);
    return v;
}

/* Every job on the server, newest first, through the list's pages. */
static json_t *all_jobs(e2e_server_t *s) {
    json_t *ids = json_array();
    char path[128] = "/v1/jobs?limit=1000";
    for (;;) {
        json_t *page = e2e_get_json(s, path);
        size_t i;
        json_t *job;
        json_array_foreach(json_object_get(page, "jobs"), i, job)
            json_array_append(ids, json_object_get(job, "id"));
        const char *next = json_string_value(json_object_get(page, "next_cursor"));
        if (next == NULL) {
            json_decref(page);
            return ids;
        }
        snprintf(path, sizeof path, "/v1/jobs?limit=1000&cursor=%s", next);
        json_decref(page);
    }
}

static size_t count_with_status(e2e_server_t *s, const char *status) {
    char path[128];
    size_t n = 0;
    snprintf(path, sizeof path, "/v1/jobs?limit=1000&status=%s", status);
    for (;;) {
        json_t *page = e2e_get_json(s, path);
        n += json_array_size(json_object_get(page, "jobs"));
        const char *next = json_string_value(json_object_get(page, "next_cursor"));
        if (next == NULL) {
            json_decref(page);
            return n;
        }
        snprintf(path, sizeof path, "/v1/jobs?limit=1000&status=%s&cursor=%s", status, next);
        json_decref(page);
    }
}

/* Jobs running now that have finished between 1 and `most` of their steps. */
static size_t count_part_way(e2e_server_t *s, json_int_t most) {
    json_t *page = e2e_get_json(s, "/v1/jobs?limit=1000&status=running");
    size_t i, n = 0;
    json_t *job;
    json_array_foreach(json_object_get(page, "jobs"), i, job) {
        json_int_t steps = json_integer_value(json_object_get(job, "steps"));
        n += steps >= 1 && steps <= most;
    }
    json_decref(page);
    return n;
}

/* Posts n jobs of the steps flow (shared.i = 0..n-1, shared.pause = pause), parallel at a time;
 * every one must get 202. Their ids, in the order of i. */
static json_t *post_steps(e2e_server_t *s, int n, double pause, unsigned parallel) {
    e2e_call_t *calls = calloc((size_t)n, sizeof *calls);
    ck_assert_ptr_nonnull(calls);
    for (int i = 0; i < n; i++) {
        calls[i].method = "POST";
        calls[i].path = strdup("/v1/jobs");
        calls[i].body = malloc(128);
        snprintf(calls[i].body, 128, "{\"flow\": \"steps\", \"shared\": {\"i\": %d, \"pause\": %g, \"done\": []}}", i,
                 pause);
    }
    e2e_calls(s, calls, (size_t)n, parallel);
    json_t *ids = json_array();
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(calls[i].status, 202);
        json_t *job = json_loadb(calls[i].resp, calls[i].resp_len, 0, NULL);
        json_array_append(ids, json_object_get(job, "id"));
        json_decref(job);
        free(calls[i].path);
        free(calls[i].body);
    }
    e2e_calls_free(calls, (size_t)n);
    free(calls);
    return ids;
}

static void wait_succeeded(e2e_server_t *s, size_t n, unsigned timeout_ms) {
    timeout_ms = e2e_ms(timeout_ms);
    uint64_t deadline = e2e_now_ms() + timeout_ms;
    size_t done = 0;
    while ((done = count_with_status(s, "succeeded")) < n && e2e_now_ms() < deadline)
        usleep(50000);
    ck_assert_msg(done >= n, "%zu of %zu jobs succeeded in %u ms", done, n, timeout_ms);
}

static uint64_t time_of(const char *rfc3339) {
    struct tm tm = {0};
    unsigned us = 0;
    ck_assert_ptr_nonnull(strptime(rfc3339, "%Y-%m-%dT%H:%M:%S", &tm));
    sscanf(rfc3339 + 20, "%6u", &us);
    return (uint64_t)timegm(&tm) * 1000000u + us;
}

/* A job of the steps flow ended right: its store has each set once, in order, and its history has
 * each of its six steps once. Returns how many of its steps finished before `before_us`. */
static int check_steps_job(e2e_server_t *s, const char *id, json_int_t i, uint64_t before_us) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *shared = get_value(s, path);
    ck_assert_int_eq(json_integer_value(json_object_get(shared, "i")), i);
    json_t *done = json_object_get(shared, "done");
    ck_assert_msg(json_array_size(done) == 3 && strcmp(json_string_value(json_array_get(done, 0)), "b") == 0 &&
                      strcmp(json_string_value(json_array_get(done, 1)), "d") == 0 &&
                      strcmp(json_string_value(json_array_get(done, 2)), "f") == 0,
                  "job %s: done is not [b, d, f]", id);
    json_decref(shared);
    snprintf(path, sizeof path, "/v1/jobs/%s/history", id);
    json_t *history = get_value(s, path);
    json_t *steps = json_object_get(history, "steps");
    ck_assert_msg(json_array_size(steps) == 6, "job %s: %zu steps in its history", id, json_array_size(steps));
    int before = 0;
    for (size_t k = 0; k < 6; k++) {
        json_t *step = json_array_get(steps, k);
        ck_assert_int_eq(json_integer_value(json_object_get(step, "seq")), (json_int_t)k + 1);
        before += time_of(json_string_value(json_object_get(step, "finished_at"))) < before_us;
    }
    json_decref(history);
    return before;
}

START_TEST(test_a_thousand_jobs_survive_kill_9_and_resume_where_they_were) {
    e2e_server_t s;
    start(&s);
    enum { N = 1000 };
    /* Under valgrind the thousand take seconds to post: longer pauses keep most of them mid-flow. */
    double pause = getenv("FLOWD_WRAPPER") != NULL ? 2.0 : 0.5;
    json_t *ids = post_steps(&s, N, pause, 32);
    /* Kill it while the jobs are between their steps: once a third of them have finished one to four
     * of their six steps (a step is `pause` long, so none of those can finish the sixth meanwhile),
     * whatever the speed of the machine; a few of those steps may not be committed yet, hence the
     * margin of the check after the restart. */
    uint64_t deadline = e2e_now_ms() + e2e_ms(60000);
    size_t part_way;
    while ((part_way = count_part_way(&s, 4)) < N / 3) {
        ck_assert_msg(e2e_now_ms() < deadline, "only %zu jobs were ever part-way", part_way);
        usleep(20000);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t killed_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    ck_assert_int_lt(count_with_status(&s, "succeeded"), N);
    e2e_kill(&s);

    start(&s);
    wait_succeeded(&s, N, 30000);
    json_t *listed = all_jobs(&s);
    ck_assert_uint_eq(json_array_size(listed), N); /* none missing, none twice */
    json_t *seen = json_object();
    size_t k;
    json_t *id;
    json_array_foreach(listed, k, id) {
        ck_assert_ptr_null(json_object_get(seen, json_string_value(id)));
        json_object_set_new(seen, json_string_value(id), json_true());
    }
    int resumed = 0, restarted_from_zero = 0;
    json_array_foreach(ids, k, id) {
        ck_assert_ptr_nonnull(json_object_get(seen, json_string_value(id)));
        int before = check_steps_job(&s, json_string_value(id), (json_int_t)k, killed_us);
        resumed += before > 0 && before < 6;
        restarted_from_zero += before == 0;
    }
    /* The step counts show where they resumed: many had done some of their steps before the kill
     * and did only the rest after it. */
    fprintf(stderr, "kill -9: %d of %d jobs resumed part-way, %d from their start\n", resumed, N, restarted_from_zero);
    ck_assert_msg(resumed > N / 4, "only %d jobs resumed part-way (%d had done nothing)", resumed, restarted_from_zero);
    json_decref(seen);
    json_decref(listed);
    json_decref(ids);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

/* A child process posts a burst and writes the ids of the jobs that got a 202 into a file, while the
 * parent kills flowd at a random moment. */
static pid_t post_burst(e2e_server_t *s, int round, int n, const char *out_path) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid > 0)
        return pid;
    e2e_call_t *calls = calloc((size_t)n, sizeof *calls);
    for (int i = 0; i < n; i++) {
        calls[i].method = "POST";
        calls[i].path = strdup("/v1/jobs");
        calls[i].body = malloc(160);
        snprintf(calls[i].body, 160,
                 "{\"flow\": \"steps\", \"shared\": {\"i\": %d, \"pause\": 0.02, \"done\": []}}", round * 100000 + i);
    }
    e2e_calls_unchecked(s, calls, (size_t)n, 16);
    FILE *f = fopen(out_path, "w");
    for (int i = 0; i < n && f != NULL; i++) {
        if (calls[i].status != 202)
            continue;
        json_t *job = json_loadb(calls[i].resp, calls[i].resp_len, 0, NULL);
        fprintf(f, "%s %d\n", json_string_value(json_object_get(job, "id")), round * 100000 + i);
        json_decref(job);
    }
    if (f != NULL)
        fclose(f);
    _exit(0); /* not exit: the parent's atexit handlers must not run here */
}

START_TEST(test_every_accepted_job_survives_kills_at_random_moments) {
    unsigned seed = (unsigned)time(NULL);
    srand(seed);
    fprintf(stderr, "random kills: seed %u\n", seed);
    json_t *accepted = json_object(); /* id -> i */
    e2e_server_t s;
    for (int round = 0; round < 10; round++) {
        start(&s);
        char out[128];
        snprintf(out, sizeof out, "%s/accepted-%d", dir, round);
        pid_t child = post_burst(&s, round, 300, out);
        usleep((useconds_t)(rand() % 400000)); /* sometimes mid-burst, sometimes after it */
        e2e_kill(&s);
        int status;
        waitpid(child, &status, 0);
        FILE *f = fopen(out, "r");
        ck_assert_ptr_nonnull(f);
        char id[64];
        int i;
        while (fscanf(f, "%63s %d", id, &i) == 2)
            json_object_set_new(accepted, id, json_integer(i));
        fclose(f);
    }
    ck_assert_uint_gt(json_object_size(accepted), 0);
    start(&s);
    /* every job that got a 202 exists and ends right, whenever the kill came */
    uint64_t deadline = e2e_now_ms() + e2e_ms(60000);
    const char *id;
    json_t *iv;
    json_object_foreach(accepted, id, iv) {
        char path[128];
        snprintf(path, sizeof path, "/v1/jobs/%s", id);
        json_t *job = NULL;
        for (;;) {
            job = get_value(&s, path);
            const char *st = json_string_value(json_object_get(job, "status"));
            if (strcmp(st, "succeeded") == 0)
                break;
            ck_assert_msg(strcmp(st, "failed") != 0 && strcmp(st, "canceled") != 0, "job %s ended %s", id, st);
            ck_assert_msg(e2e_now_ms() < deadline, "job %s is still %s", id, st);
            json_decref(job);
            usleep(20000);
        }
        json_decref(job);
        check_steps_job(&s, id, json_integer_value(iv), 0);
    }
    fprintf(stderr, "random kills: %zu accepted jobs, all back\n", json_object_size(accepted));
    json_decref(accepted);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

START_TEST(test_a_waiting_job_waits_again_after_a_restart) {
    e2e_server_t s;
    start(&s);
    json_t *job = e2e_start_job(&s, "{\"flow\": \"approval\", \"shared\": {\"who\": \"Ada\"}}");
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(job, "id")));
    json_decref(job);
    json_decref(e2e_wait_status(&s, id, "waiting", 5000));
    e2e_kill(&s);
    start(&s);
    json_t *again = e2e_wait_status(&s, id, "waiting", 5000);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(again, "waiting_for"), "prompt")), "OK for Ada?");
    json_decref(again);
    char path[128];
    e2e_answer(&s, id, "yes");
    json_decref(e2e_wait_status(&s, id, "succeeded", 5000));
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *shared = get_value(&s, path);
    ck_assert(json_is_true(json_object_get(shared, "done")));
    ck_assert_str_eq(json_string_value(json_object_get(shared, "answer")), "yes");
    json_decref(shared);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

START_TEST(test_idempotency_keys_and_flows_from_the_api_survive_a_restart) {
    e2e_server_t s;
    start(&s);
    const char *const key[] = {"Content-Type: application/json", "Idempotency-Key: order-17", NULL};
    const char *body = "{\"flow\": \"steps\", \"shared\": {\"i\": 1, \"pause\": 0, \"done\": []}}";
    e2e_resp_t r;
    e2e_request(&s, "POST", "/v1/jobs", key, body, &r);
    ck_assert_int_eq(r.status, 202);
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(r.json, "id")));
    e2e_resp_free(&r);
    const char *const json_ct[] = {"Content-Type: application/json", NULL};
    e2e_request(&s, "PUT", "/v1/flows/greet", json_ct,
                "{\"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"set\", \"params\": {\"/hi\": 1}}}}", &r);
    ck_assert_int_eq(r.status, 201);
    e2e_resp_free(&r);
    e2e_request(&s, "DELETE", "/v1/flows/sleep", NULL, NULL, &r); /* a compiled-in one */
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
    e2e_kill(&s);

    start(&s);
    e2e_request(&s, "POST", "/v1/jobs", key, body, &r);
    ck_assert_int_eq(r.status, 200); /* the same job, not a new one */
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "id")), id);
    e2e_resp_free(&r);
    e2e_request(&s, "POST", "/v1/jobs", key, "{\"flow\": \"steps\"}", &r);
    e2e_assert_error(&r, 409, "idempotency_conflict", NULL);
    e2e_resp_free(&r);
    json_t *greet = e2e_get_json(&s, "/v1/flows/greet");
    ck_assert_str_eq(json_string_value(json_object_get(greet, "source")), "document");
    json_decref(greet);
    e2e_request(&s, "GET", "/v1/flows/sleep", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 404);
    e2e_resp_free(&r);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

/* The write a crash cut short: the log ends in half a transaction. SQLite checks each frame of its
 * write-ahead log, so the torn one is ignored and every committed job is there. */
START_TEST(test_a_torn_last_write_is_survived) {
    e2e_server_t s;
    start(&s);
    enum { N = 200 };
    json_t *ids = post_steps(&s, N, 0.2, 16);
    usleep(100000);
    e2e_kill(&s);
    char wal[160];
    snprintf(wal, sizeof wal, "%s/flowd.db-wal", dir);
    struct stat st;
    ck_assert_int_eq(stat(wal, &st), 0);
    ck_assert_int_gt(st.st_size, 0);
    int fd = open(wal, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    unsigned char junk[6000];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(rand() & 0xff);
    ck_assert_int_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);

    start(&s);
    wait_succeeded(&s, N, 20000);
    size_t k;
    json_t *id;
    json_array_foreach(ids, k, id)
        check_steps_job(&s, json_string_value(id), (json_int_t)k, 0);
    json_decref(ids);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

/* A file written by an older flowd (schema version 1: jobs keyed by their text id) is migrated at
 * start: a finished job keeps its result and history, a running one resumes where it was. */
/* finished jobs are kept for --retention after they ended: these ended just now */
#define NOW_US "unixepoch('now') * 1000000"
static const char schema_v1[] =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "INSERT INTO meta VALUES ('schema_version', '1');"
    "CREATE TABLE jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, flow TEXT NOT NULL, digest TEXT,"
    " status TEXT NOT NULL DEFAULT 'queued', created_us INTEGER NOT NULL, started_us INTEGER NOT NULL DEFAULT 0,"
    " finished_us INTEGER NOT NULL DEFAULT 0, idem_key TEXT UNIQUE, body_hash INTEGER NOT NULL DEFAULT 0,"
    " params TEXT, shared TEXT NOT NULL, resume_node TEXT, tries INTEGER NOT NULL DEFAULT 0,"
    " steps INTEGER NOT NULL DEFAULT 0, last_action TEXT, waiting_for TEXT, error_code TEXT,"
    " error_message TEXT, error_node TEXT, totals TEXT);"
    "CREATE INDEX jobs_seq ON jobs (seq);"
    "CREATE TABLE steps (job_id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,"
    " PRIMARY KEY (job_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE flow_versions (digest TEXT PRIMARY KEY, document TEXT NOT NULL);"
    "CREATE TABLE flows (name TEXT PRIMARY KEY, document TEXT, updated_us INTEGER NOT NULL);"
    "INSERT INTO jobs (id, seq, flow, status, created_us, started_us, finished_us, shared, steps, last_action, totals)"
    " VALUES ('00000000000000000000000000000001', 1, 'steps', 'succeeded', " NOW_US ", " NOW_US ", " NOW_US ", '{\"done\": [\"old\"]}', 6,"
    " 'default', '{\"steps\": 6, \"failed\": 0, \"retries\": 0, \"dropped\": 0}');"
    "INSERT INTO jobs (id, seq, flow, status, created_us, started_us, shared, resume_node, steps)"
    " VALUES ('00000000000000000000000000000002', 2, 'steps', 'running', " NOW_US ", " NOW_US ","
    " '{\"pause\": 0.05, \"done\": [\"b\"]}', 'c', 2);"
    "INSERT INTO steps VALUES ('00000000000000000000000000000001', 1, '{\"node\": \"a\", \"action\": \"default\"}');"
    "INSERT INTO steps VALUES ('00000000000000000000000000000001', 2, '{\"node\": \"f\", \"action\": \"default\"}');"
    "INSERT INTO steps VALUES ('00000000000000000000000000000002', 1, '{\"node\": \"a\", \"action\": \"default\"}');"
    "INSERT INTO steps VALUES ('00000000000000000000000000000002', 2, '{\"node\": \"b\", \"action\": \"default\"}');";

static const char *history_node(e2e_server_t *s, const char *id, size_t i, size_t *count) {
    static char node[32];
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s/history", id);
    json_t *h = e2e_get_json(s, path);
    json_t *steps = json_object_get(h, "steps");
    *count = json_array_size(steps);
    snprintf(node, sizeof node, "%s", json_string_value(json_object_get(json_array_get(steps, i), "node")) ? json_string_value(json_object_get(json_array_get(steps, i), "node")) : "");
    json_decref(h);
    return node;
}

START_TEST(test_a_version_1_file_is_migrated) {
    char path[160];
    snprintf(path, sizeof path, "%s/flowd.db", dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, schema_v1, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    e2e_server_t s;
    start(&s);
    const char *old = "00000000000000000000000000000001", *running = "00000000000000000000000000000002";
    json_t *job = e2e_wait_status(&s, running, "succeeded", 10000);
    ck_assert_int_eq(json_integer_value(json_object_get(job, "steps")), 6);
    json_decref(job);
    json_t *done = get_value(&s, "/v1/jobs/00000000000000000000000000000002/shared?pointer=/done");
    char *text = json_dumps(done, JSON_COMPACT);
    ck_assert_str_eq(text, "[\"b\",\"d\",\"f\"]");
    free(text);
    json_decref(done);
    size_t n;
    ck_assert_str_eq(history_node(&s, running, 1, &n), "b");
    ck_assert_str_eq(history_node(&s, running, 2, &n), "c");
    ck_assert_int_eq(n, 6);

    job = e2e_get_json(&s, "/v1/jobs/00000000000000000000000000000001");
    ck_assert_str_eq(json_string_value(json_object_get(job, "status")), "succeeded");
    json_decref(job);
    ck_assert_str_eq(history_node(&s, old, 1, &n), "f");
    ck_assert_int_eq(n, 2);

    /* new jobs follow the migrated ones, and all of it is still there after another start */
    job = e2e_start_job(&s, "{\"flow\": \"steps\", \"shared\": {\"pause\": 0, \"done\": []}}");
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(job, "id")));
    json_decref(job);
    json_decref(e2e_wait_status(&s, id, "succeeded", 10000));
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    start(&s);
    json_t *ids = all_jobs(&s);
    ck_assert_int_eq(json_array_size(ids), 3);
    ck_assert_str_eq(json_string_value(json_array_get(ids, 0)), id);
    ck_assert_str_eq(json_string_value(json_array_get(ids, 2)), old);
    json_decref(ids);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_assert_sqlite_current(path);
}
END_TEST

/* Until the job's row in the file says status: its end is committed (a reader beside flowd's
 * writer, as WAL allows). */
static void wait_committed(const char *id, const char *status) {
    char path[160];
    snprintf(path, sizeof path, "%s/flowd.db", dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT status FROM jobs WHERE id = ?", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int found = 0;
    for (int tries = 0; !found && tries < 600; tries++) {
        if (sqlite3_step(st) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), status) == 0)
            found = 1;
        else
            usleep(50000);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    ck_assert_msg(found, "job %s is not stored %s after 30 s", id, status);
}

/* The text of GET path. */
static char *get_text(e2e_server_t *s, const char *path) {
    e2e_resp_t r;
    e2e_request(s, "GET", path, NULL, NULL, &r);
    ck_assert_msg(r.status == 200, "GET %s: %ld", path, r.status);
    char *text = strndup(r.body, r.len);
    e2e_resp_free(&r);
    return text;
}

/* A finished job reads the same after a restart, SIGKILL or not: its status, times, error, last
 * action and step count, its shared store and its history with the totals. */
/* A set node that loops to itself until its flow's max_steps: longer than the --history-limit (100)
 * a history shows and the --events-limit (1000) a restart gives back. */
static const char spin_doc[] = "{\"name\": \"spin\", \"max_steps\": 1500, \"start\": \"a\", \"nodes\":"
                               " {\"a\": {\"type\": \"set\", \"params\": {\"/n\": 1},"
                               " \"next\": {\"default\": \"a\"}}}}";

START_TEST(test_finished_jobs_read_the_same_after_a_restart) {
    e2e_server_t s;
    e2e_write_file(flows, "spin.json", spin_doc);
    start(&s);
    /* the third ends failed after 1,500 steps: its history showed none after a restart, and a
     * job of 300 showed 300, not the last 100 */
    const char *bodies[] = {"{\"flow\": \"fails\", \"shared\": {\"a\": 1}}",
                            "{\"flow\": \"steps\", \"shared\": {\"pause\": 0, \"done\": []}}",
                            "{\"flow\": \"spin\"}"};
    const char *ends[] = {"failed", "succeeded", "failed"};
    enum { N = 3 };
    char ids[N][40], *before[N][3];
    for (int i = 0; i < N; i++) {
        json_t *job = e2e_start_job(&s, bodies[i]);
        snprintf(ids[i], sizeof ids[i], "%s", json_string_value(json_object_get(job, "id")));
        json_decref(job);
        json_decref(e2e_wait_status(&s, ids[i], ends[i], 10000));
    }
    json_t *failed = e2e_get_json(&s, "/v1/jobs?status=failed&flow=fails");
    json_t *err = json_object_get(json_object_get(json_array_get(json_object_get(failed, "jobs"), 0), "error"), "message");
    ck_assert_str_eq(json_string_value(err), "no 7");
    json_decref(failed);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            char path[160];
            const char *parts[] = {"", "/shared", "/history"};
            for (int p = 0; p < 3; p++) {
                snprintf(path, sizeof path, "/v1/jobs/%s%s", ids[i], parts[p]);
                char *now = get_text(&s, path);
                if (round == 0)
                    before[i][p] = now;
                else {
                    ck_assert_str_eq(now, before[i][p]);
                    free(now);
                    free(before[i][p]);
                }
            }
        }
        if (round == 0) {
            char path[128];
            snprintf(path, sizeof path, "/v1/jobs/%s/history", ids[2]);
            json_t *h = e2e_get_json(&s, path);
            ck_assert_uint_eq(json_array_size(json_object_get(h, "steps")), 100);
            json_decref(h);
            for (int i = 0; i < N; i++)
                wait_committed(ids[i], ends[i]);
            e2e_kill(&s);
            start(&s);
        }
    }
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

/* A restart for a deploy (SIGTERM) is not the end of a job: what still runs when the grace is over
 * is left in the store as of its last checkpoint and resumes at the next start, and a job waiting
 * for a person waits again. */
START_TEST(test_jobs_still_running_at_sigterm_resume_at_the_next_start) {
    e2e_server_t s;
    e2e_start(&s, "--store", store, "--flows", flows, "--grace", "200ms", NULL);
    json_t *job = e2e_start_job(&s, "{\"flow\": \"steps\", \"shared\": {\"pause\": 1, \"done\": []}}");
    char running[40], waiting[40];
    snprintf(running, sizeof running, "%s", json_string_value(json_object_get(job, "id")));
    json_decref(job);
    job = e2e_start_job(&s, "{\"flow\": \"approval\", \"shared\": {\"who\": \"Ada\"}}");
    snprintf(waiting, sizeof waiting, "%s", json_string_value(json_object_get(job, "id")));
    json_decref(job);
    json_decref(e2e_wait_status(&s, running, "running", 5000));
    json_decref(e2e_wait_status(&s, waiting, "waiting", 5000));
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);

    start(&s);
    json_decref(e2e_wait_status(&s, waiting, "waiting", 5000));
    json_t *done = e2e_wait_status(&s, running, "succeeded", 15000);
    ck_assert_int_eq(json_integer_value(json_object_get(done, "steps")), 6);
    json_decref(done);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?pointer=/done", running);
    json_t *list = get_value(&s, path);
    char *text = json_dumps(list, JSON_COMPACT);
    ck_assert_str_eq(text, "[\"b\",\"d\",\"f\"]");
    free(text);
    json_decref(list);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

/* An http node's Idempotency-Key is <job>:<node>:<visit>: a visit in flight when flowd is killed
 * runs again after the restart with the key it had, so an upstream that honours keys does its
 * work once. The second node's request is held by the mock for seconds; flowd dies meanwhile. The
 * document's own outbound list lets its nodes reach the mock on loopback. */
static const char visits_doc[] =
    "{\"name\": \"visits\", \"params\": {\"base\": \"\"}, \"outbound\": {\"allow\": [\"127.0.0.1\"]},"
    " \"start\": \"first\", \"nodes\": {"
    " \"first\": {\"type\": \"http\", \"params\": {\"url\": \"{{$params/base}}/echo\"},"
    "   \"out\": {\"/first\": \"/body/headers/idempotency-key\"}, \"next\": {\"default\": "
    "\"second\"}},"
    " \"second\": {\"type\": \"http\", \"params\": {\"url\": \"{{$params/base}}/delay/4000/echo\"},"
    "   \"out\": {\"/second\": \"/body/headers/idempotency-key\"}}}}";

/* The steps the SQLite file holds for the job: what a restart resumes from. */
static int stored_steps(const char *id) {
    char path[160];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int steps = -1;
    snprintf(path, sizeof path, "%s/flowd.db", dir);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT steps FROM jobs WHERE id = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            steps = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return steps;
}

/* Until a request with this Idempotency-Key is at the mock and the job's first steps are on the
 * disk (30 s at most): the moment to kill flowd with that visit in flight. */
static void wait_in_flight(mock_t *mock, const char *key, const char *id, int steps) {
    uint64_t deadline = e2e_now_ms() + e2e_ms(30000);
    while (mock_idempotency_count(mock, key) == 0 || stored_steps(id) < steps) {
        ck_assert_msg(e2e_now_ms() < deadline, "no request with key %s came after %d steps were stored",
                      key, steps);
        usleep(5000);
    }
}

START_TEST(test_a_visit_in_flight_at_a_kill_sends_its_key_again) {
    mock_t *mock = NULL;
    ck_assert_int_eq(mock_start(NULL, &mock), 0);
    e2e_write_file(flows, "visits.json", visits_doc);
    e2e_server_t s;
    start(&s);
    char body[256], first[128], second[128];
    snprintf(body, sizeof body, "{\"flow\": \"visits\", \"params\": {\"base\": "
                                "\"http://127.0.0.1:%u\"}}",
             (unsigned)mock_port(mock));
    json_t *job = e2e_start_job(&s, body);
    const char *id = json_string_value(json_object_get(job, "id"));
    snprintf(first, sizeof first, "%s:first:1", id);
    snprintf(second, sizeof second, "%s:second:2", id);
    /* the second visit's request is at the mock, and the first visit is on the disk */
    wait_in_flight(mock, second, id, 1);
    e2e_kill(&s);
    ck_assert_uint_eq(mock_idempotency_count(mock, second), 1);
    start(&s);
    char path[160];
    json_decref(e2e_wait_status(&s, id, "succeeded", 30000));
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *shared = get_value(&s, path);
    ck_assert_str_eq(json_string_value(json_object_get(shared, "first")), first);
    ck_assert_str_eq(json_string_value(json_object_get(shared, "second")), second);
    /* the first visit ran once; the second one twice (before and after the kill), with one key */
    ck_assert_uint_eq(mock_idempotency_count(mock, first), 1);
    ck_assert_uint_eq(mock_idempotency_count(mock, second), 2);
    json_decref(shared);
    json_decref(job);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    mock_stop(mock);
}
END_TEST

/* A restart reads only a job's last --events-limit steps (and those after its last whole store),
 * not its whole history, which for a job of millions of steps took minutes and gigabytes at every
 * start; its visits come from jobs.visits (version 9), or, in a file from before, are counted in
 * the file. Either way the eighth step of a job of seven ticks, an http node killed while its
 * request waits at the mock, sends its request again with the key it had (":call:8": counting the
 * three steps read would give ":call:4", an earlier visit's key). from_8: the file is made version
 * 8 again (no jobs.visits) between the kill and the restart. */
static const char ticks_call_doc[] =
    "{\"name\": \"tickcall\", \"params\": {\"base\": \"\"}, \"outbound\": {\"allow\": [\"127.0.0.1\"]},"
    " \"start\": \"tick\", \"nodes\": {"
    " \"tick\": {\"type\": \"noop\","
    "  \"post\": [\"shared.n = (shared.n or 0) + 1\", \"if shared.n < 7 then return 'again' end\"],"
    "  \"next\": {\"again\": \"tick\", \"default\": \"call\"}},"
    " \"call\": {\"type\": \"http\", \"params\": {\"url\": \"{{$params/base}}/delay/3000/echo\"},"
    "  \"out\": {\"/key\": \"/body/headers/idempotency-key\"}}}}";

static void restart_reads_last_steps(int from_8) {
    mock_t *mock = NULL;
    ck_assert_int_eq(mock_start(NULL, &mock), 0);
    e2e_write_file(flows, "tickcall.json", ticks_call_doc);
    e2e_server_t s;
    e2e_start(&s, "--store", store, "--flows", flows, "--events-limit", "3", NULL);
    char body[200], key[128], path[160];
    snprintf(body, sizeof body, "{\"flow\": \"tickcall\", \"params\": {\"base\": \"http://127.0.0.1:%u\"}}",
             (unsigned)mock_port(mock));
    json_t *job = e2e_start_job(&s, body);
    const char *id = json_string_value(json_object_get(job, "id"));
    snprintf(key, sizeof key, "%s:call:8", id);
    wait_in_flight(mock, key, id, 7);
    e2e_kill(&s);
    if (from_8) {
        char file[160], *err = NULL;
        sqlite3 *db = NULL;
        snprintf(file, sizeof file, "%s/flowd.db", dir);
        ck_assert_int_eq(sqlite3_open(file, &db), SQLITE_OK);
        ck_assert_msg(sqlite3_exec(db, "ALTER TABLE jobs DROP COLUMN visits;"
                                       "ALTER TABLE jobs DROP COLUMN traceparent;"
                                       "UPDATE meta SET value = '8' WHERE key = 'schema_version'",
                                   NULL, NULL, &err) == SQLITE_OK, "%s", err ? err : "");
        sqlite3_close(db);
    }
    e2e_start(&s, "--store", store, "--flows", flows, "--events-limit", "3", NULL);
    json_decref(e2e_wait_status(&s, id, "succeeded", 30000));
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *shared = get_value(&s, path);
    ck_assert_str_eq(json_string_value(json_object_get(shared, "key")), key);
    ck_assert_int_eq(json_integer_value(json_object_get(shared, "n")), 7);
    ck_assert_uint_eq(mock_idempotency_count(mock, key), 2); /* before the kill, and after */
    json_decref(shared);
    json_decref(job);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    mock_stop(mock);
    snprintf(path, sizeof path, "%s/flowd.db", dir);
    e2e_assert_sqlite_current(path); /* from_8: 8 -> 9 -> 10 */
}

START_TEST(test_a_restart_reads_a_jobs_last_steps_and_its_visits) {
    restart_reads_last_steps(0);
}
END_TEST

START_TEST(test_a_version_8_file_counts_a_jobs_visits) {
    restart_reads_last_steps(1);
}
END_TEST

/* Clients that hang up while their POST waits for its group commit: a job the store took runs
 * anyway (it used to stay queued for good, its request counted as suspended for ever, which also
 * held a shutdown for its whole grace period). */
/* Until flowd answers a request on a new connection again (timeout_ms at most): the connections
 * of clients that left count against --max-conns-per-ip until their commits are made, and a
 * connection past the limit is closed unanswered, which a loaded machine makes last a while. */
static void wait_accepting(e2e_server_t *s, unsigned timeout_ms) {
    static const char get[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    timeout_ms = e2e_ms(timeout_ms);
    uint64_t deadline = e2e_now_ms() + timeout_ms;
    for (;;) {
        int fd = e2e_connect(s);
        char buf[64] = {0};
        ssize_t got = 0;
        if (write(fd, get, sizeof get - 1) == (ssize_t)(sizeof get - 1)) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, 2000) == 1)
                got = recv(fd, buf, sizeof buf - 1, 0);
        }
        close(fd);
        if (got > 0 && strncmp(buf, "HTTP/1.1 200", 12) == 0)
            return;
        ck_assert_msg(e2e_now_ms() < deadline, "flowd accepted no request for %u ms", timeout_ms);
        usleep(50 * 1000);
    }
}

START_TEST(test_a_job_stored_after_its_client_left_still_runs) {
    e2e_server_t s;
    start(&s);
    static const char body[] = "{\"flow\": \"steps\", \"shared\": {\"pause\": 0}}";
    char req[256];
    int len = snprintf(req, sizeof req,
                       "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\n\r\n%s", sizeof body - 1, body);
    for (int i = 0; i < 300; i++) {
        int fd = e2e_connect(&s);
        ck_assert_int_eq(write(fd, req, (size_t)len), len);
        close(fd); /* before the 202: the commit takes longer than this */
    }
    wait_accepting(&s, 30000);
    /* every job the store took ends (steps.json succeeds), none stays queued or running */
    uint64_t deadline = e2e_now_ms() + e2e_ms(30000);
    size_t queued, running;
    while ((queued = count_with_status(&s, "queued")) + (running = count_with_status(&s, "running")) > 0 &&
           e2e_now_ms() < deadline)
        usleep(100 * 1000);
    ck_assert_msg(queued == 0 && running == 0, "%zu jobs still queued, %zu running", queued, running);
    json_t *ids = all_jobs(&s);
    size_t stored = json_array_size(ids);
    ck_assert_uint_eq(count_with_status(&s, "succeeded"), stored);
    json_decref(ids);
    e2e_resp_t r;
    e2e_request(&s, "GET", "/metrics", NULL, NULL, &r);
    ck_assert_ptr_nonnull(strstr(r.body, "\nflowd_suspended_requests 0\n"));
    e2e_resp_free(&r);
    uint64_t t0 = e2e_now_ms();
    ck_assert_int_eq(e2e_stop(&s, 30000), 0);
    ck_assert_uint_lt(e2e_now_ms() - t0, e2e_ms(10000)); /* not held for a grace period by a lost count */
    e2e_cleanup(&s);
    fprintf(stderr, "test_durable: %zu of 300 jobs whose clients left were stored, and all ran\n", stored);
}
END_TEST

/* A store of three files: each has some of the jobs, and it keeps its three files when flowd
 * starts again with another --store-shards. flowd backup copies the three while flowd runs, and a
 * flowd started on the copies has every job. A missing file, or one left from another store, stops
 * the start with a message that names it, instead of losing the jobs it held. */
START_TEST(test_a_store_of_three_files_keeps_them_whole) {
    e2e_server_t s;
    start(&s);
    e2e_call_t calls[60];
    memset(calls, 0, sizeof calls);
    for (int i = 0; i < 60; i++) {
        calls[i].method = "POST";
        calls[i].path = strdup("/v1/jobs");
        calls[i].body = malloc(96);
        snprintf(calls[i].body, 96, "{\"flow\": \"steps\", \"shared\": {\"i\": %d, \"pause\": 0, \"done\": []}}", i);
    }
    e2e_calls(&s, calls, 60, 8);
    e2e_calls_free(calls, 60);
    for (int i = 0; i < 60; i++) {
        free(calls[i].path);
        free(calls[i].body);
    }
    wait_succeeded(&s, 60, 20000);
    char backup[96], *out = NULL;
    snprintf(backup, sizeof backup, "%s/backup", dir);
    const char *const backup_args[] = {"backup", backup, "--store", "sqlite:flowd.db", "--data-dir",
                                       dir, NULL};
    ck_assert_int_eq(e2e_run(backup_args, &out), 0); /* while flowd runs */
    ck_assert_msg(strstr(out, "flowd.2.db (") != NULL, "%s", out);
    free(out);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    char path[3][128];
    int total = 0;
    for (int i = 0; i < 3; i++) {
        if (i == 0)
            snprintf(path[i], sizeof path[i], "%s/flowd.db", dir);
        else
            snprintf(path[i], sizeof path[i], "%s/flowd.%d.db", dir, i);
        int n = jobs_in(path[i]);
        ck_assert_msg(n > 0, "%s holds %d jobs", path[i], n);
        total += n;
    }
    ck_assert_int_eq(total, 60);

    shards = "1"; /* the store keeps its three files */
    start(&s);
    wait_succeeded(&s, 60, 5000);
    json_t *listed = all_jobs(&s);
    ck_assert_uint_eq(json_array_size(listed), 60);
    json_decref(listed);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);

    char backup_store[128];
    snprintf(backup_store, sizeof backup_store, "sqlite:%s/flowd.db", backup);
    e2e_start(&s, "--store", backup_store, "--flows", flows, NULL);
    wait_succeeded(&s, 60, 5000);
    listed = all_jobs(&s);
    ck_assert_uint_eq(json_array_size(listed), 60);
    json_decref(listed);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);

    char moved[160];
    snprintf(moved, sizeof moved, "%s.away", path[2]);
    ck_assert_int_eq(rename(path[2], moved), 0);
    const char *const args[] = {"--store", store, "--flows", flows, "--port", "0", NULL};
    ck_assert_int_eq(e2e_run(args, &out), 1);
    ck_assert_msg(strstr(out, "flowd.2.db is missing") != NULL, "%s", out);
    free(out);
    ck_assert_int_eq(rename(moved, path[2]), 0);
    /* a new first file beside the files of the old store */
    snprintf(moved, sizeof moved, "%s.away", path[0]);
    ck_assert_int_eq(rename(path[0], moved), 0);
    ck_assert_int_eq(e2e_run(args, &out), 1);
    ck_assert_msg(strstr(out, "belongs to another store") != NULL, "%s", out);
    free(out);
}
END_TEST

/* A job keeps the W3C trace context of the POST that made it across a restart: made with a
 * traceparent, it waits for input, flowd is killed and started again on the same file, and the http
 * call it makes after the answer carries the same trace id (it used to be kept in memory only, and
 * a resumed job called out with none). */
START_TEST(test_a_jobs_traceparent_survives_a_restart) {
    mock_t *mock = NULL;
    ck_assert_int_eq(mock_start(NULL, &mock), 0);
    e2e_write_traced_flow(flows);
    e2e_server_t s;
    start(&s);
    char path[160];
    char *id = e2e_post_traced(&s, (unsigned)mock_port(mock));
    json_decref(e2e_wait_status(&s, id, "waiting", 10000));
    e2e_kill(&s);
    start(&s);
    json_decref(e2e_wait_status(&s, id, "waiting", 10000));
    e2e_answer(&s, id, "yes");
    json_decref(e2e_wait_status(&s, id, "succeeded", 30000));
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *shared = get_value(&s, path);
    e2e_assert_traced(shared, "after the restart");
    json_decref(shared);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    mock_stop(mock);
    free(id);
}
END_TEST

static Suite *durable_suite(void) {
    Suite *s = suite_create("durable");
    TCase *tc = tcase_create("durable");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_a_thousand_jobs_survive_kill_9_and_resume_where_they_were);
    tcase_add_test(tc, test_every_accepted_job_survives_kills_at_random_moments);
    tcase_add_test(tc, test_a_waiting_job_waits_again_after_a_restart);
    tcase_add_test(tc, test_idempotency_keys_and_flows_from_the_api_survive_a_restart);
    tcase_add_test(tc, test_a_torn_last_write_is_survived);
    tcase_add_test(tc, test_a_version_1_file_is_migrated);
    tcase_add_test(tc, test_finished_jobs_read_the_same_after_a_restart);
    tcase_add_test(tc, test_jobs_still_running_at_sigterm_resume_at_the_next_start);
    tcase_add_test(tc, test_a_visit_in_flight_at_a_kill_sends_its_key_again);
    tcase_add_test(tc, test_a_restart_reads_a_jobs_last_steps_and_its_visits);
    tcase_add_test(tc, test_a_version_8_file_counts_a_jobs_visits);
    tcase_add_test(tc, test_a_job_stored_after_its_client_left_still_runs);
    tcase_add_test(tc, test_a_jobs_traceparent_survives_a_restart);
    suite_add_tcase(s, tc);
    /* the same on a store of three files (--store-shards 3), each with its own writer */
    tc = tcase_create("three files");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup_three_files, teardown);
    tcase_add_test(tc, test_a_waiting_job_waits_again_after_a_restart);
    tcase_add_test(tc, test_idempotency_keys_and_flows_from_the_api_survive_a_restart);
    tcase_add_test(tc, test_a_store_of_three_files_keeps_them_whole);
    suite_add_tcase(s, tc);
    /* the kills again on three files; make valgrind leaves this case out (CK_EXCLUDE_CASE): under
     * valgrind the durable case's kills take minutes already, and the case above has every path
     * of several files */
    tc = tcase_create("three files, kills");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup_three_files, teardown);
    tcase_add_test(tc, test_a_thousand_jobs_survive_kill_9_and_resume_where_they_were);
    tcase_add_test(tc, test_every_accepted_job_survives_kills_at_random_moments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(durable_suite());
}
