/* test_redrive.c: POST /v1/jobs/{id}/redrive on the SQLite store. A Lua node that fails on a shared
 * flag, its flow fixed with PUT /v1/flows, and the job redriven: a new job that starts at the node
 * that failed, from the store as it was before that step (the counters each node's prep keeps in
 * the store show that no earlier step ran again, and that what the failed step's prep wrote is not
 * there), with the flow's new version. The same for a failure inside a sub-flow (the flow node runs
 * again from the store before it), for a job canceled while it waited for input, and across a
 * restart (a failed job redriven after it, and a redriven job still queued at a kill -9 that starts
 * after it at the node it was made at). 409 for a job that succeeded or still runs, and with the
 * memory store, which keeps nothing to start again from; 404; Idempotency-Key; another tenant's
 * job is not found; a file of schema version 6 migrated. The same on PostgreSQL is in
 * test_postgres.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "e2e.h"

static char dir[128];

/* a counts its visits in /a, b's prep counts in /b_prep before b's exec fails on /broken (v1),
 * c counts in /c. */
static const char rd_v1[] =
    "{\"name\": \"rd\", \"start\": \"a\", \"nodes\": {"
    " \"a\": {\"type\": \"noop\", \"prep\": \"shared.a = (shared.a or 0) + 1\","
    "        \"next\": {\"default\": \"b\"}},"
    " \"b\": {\"type\": \"lua\", \"max_retries\": 2,"
    "        \"prep\": [\"shared.b_prep = (shared.b_prep or 0) + 1\", \"return shared.broken\"],"
    "        \"exec\": \"if prep_res then error('broken') end return 'ok'\","
    "        \"next\": {\"default\": \"c\"}},"
    " \"c\": {\"type\": \"noop\", \"prep\": \"shared.c = (shared.c or 0) + 1\"}}}";
static const char rd_v2[] =
    "{\"name\": \"rd\", \"start\": \"a\", \"nodes\": {"
    " \"a\": {\"type\": \"noop\", \"prep\": \"shared.a = (shared.a or 0) + 1\","
    "        \"next\": {\"default\": \"b\"}},"
    " \"b\": {\"type\": \"lua\", \"max_retries\": 2,"
    "        \"prep\": [\"shared.b_prep = (shared.b_prep or 0) + 1\", \"return shared.broken\"],"
    "        \"exec\": \"return 'fixed'\", \"out\": \"/b\","
    "        \"next\": {\"default\": \"c\"}},"
    " \"c\": {\"type\": \"noop\", \"prep\": \"shared.c = (shared.c or 0) + 1\"}}}";

/* The sub-flow's x counts its visits in /x, then y fails on /broken (v1). */
static const char outer_fmt[] =
    "{\"name\": \"outer\", \"start\": \"a\", \"nodes\": {"
    " \"a\": {\"type\": \"noop\", \"prep\": \"shared.a = (shared.a or 0) + 1\","
    "        \"next\": {\"default\": \"sub\"}},"
    " \"sub\": {\"type\": \"flow\", \"flow\": \"inner\", \"next\": {\"default\": \"c\"}},"
    " \"c\": {\"type\": \"noop\", \"prep\": \"shared.c = (shared.c or 0) + 1\"}},"
    " \"flows\": {\"inner\": {\"start\": \"x\", \"nodes\": {"
    "   \"x\": {\"type\": \"noop\", \"prep\": \"shared.x = (shared.x or 0) + 1\","
    "          \"next\": {\"default\": \"y\"}},"
    "   \"y\": {\"type\": \"lua\", \"prep\": \"return shared.broken\", \"exec\": \"%s\"}}}}}";

static const char ask_doc[] =
    "{\"name\": \"ask\", \"start\": \"first\", \"nodes\": {"
    " \"first\": {\"type\": \"noop\", \"prep\": \"shared.first = (shared.first or 0) + 1\","
    "            \"next\": {\"default\": \"question\"}},"
    " \"question\": {\"type\": \"input\", \"params\": {\"prompt\": \"OK?\","
    "   \"actions\": {\"yes\": \"go\", \"no\": \"stop\"}}, \"out\": \"/answer\","
    "   \"next\": {\"go\": \"done\", \"stop\": null}},"
    " \"done\": {\"type\": \"set\", \"params\": {\"/done\": true}}}}";

static void setup(void) {
    e2e_tmpdir(dir, sizeof dir, "flowd-redrive");
}

static void teardown(void) {
    e2e_rmtree(dir);
}

static void start(e2e_server_t *s, const char *max_running) {
    e2e_start(s, "--store", "sqlite:flowd.db", "--data-dir", dir, "--max-running", max_running,
              NULL);
}

static void put_outer(e2e_server_t *s, int broken) {
    char doc[2048];
    snprintf(doc, sizeof doc, outer_fmt,
             broken ? "if prep_res then error('inner broken') end return 1" : "return 1");
    e2e_put_flow(s, "outer", doc);
}

/* POST /v1/jobs/{id}/redrive (idem: its Idempotency-Key, or NULL) into r. */
static void redrive(e2e_server_t *s, const char *id, const char *idem, e2e_resp_t *r) {
    char path[96], ik[128];
    const char *h[] = {ik, NULL};
    snprintf(path, sizeof path, "/v1/jobs/%s/redrive", id);
    snprintf(ik, sizeof ik, "Idempotency-Key: %s", idem ? idem : "");
    e2e_request(s, "POST", path, idem ? h : NULL, NULL, r);
}

/* Redrives id, asserting 202 with a queued Job that says where it came from; its id (malloc'd). */
static char *redrive_ok(e2e_server_t *s, const char *id, const char *node) {
    e2e_resp_t r;
    redrive(s, id, NULL, &r);
    ck_assert_msg(r.status == 202, "redrive %s: %ld %s", id, r.status, r.body);
    ck_assert_ptr_nonnull(r.json);
    const char *nid = json_string_value(json_object_get(r.json, "id"));
    ck_assert_str_ne(nid, id);
    ck_assert_ptr_nonnull(strstr(r.location, nid));
    json_t *from = json_object_get(r.json, "redriven_from");
    ck_assert_str_eq(json_string_value(json_object_get(from, "job")), id);
    if (node != NULL)
        ck_assert_str_eq(json_string_value(json_object_get(from, "node")), node);
    else
        ck_assert(json_is_null(json_object_get(from, "node")));
    char *out = strdup(nid);
    e2e_resp_free(&r);
    return out;
}

static long long num(json_t *o, const char *key) {
    return (long long)json_integer_value(json_object_get(o, key));
}

/* The job ended failed at node b, its store as b's prep left it. */
static void assert_failed_at_b(e2e_server_t *s, const char *id) {
    json_t *job = e2e_wait_status(s, id, "failed", 20000);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(job, "error"), "node")), "b");
    json_decref(job);
    json_t *sh = e2e_shared(s, id);
    ck_assert_int_eq(num(sh, "a"), 1);
    ck_assert_int_eq(num(sh, "b_prep"), 1);
    json_decref(sh);
    /* both its tries failed (max_retries 2): a redrive gives it both again */
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s/history", id);
    json_t *h = e2e_get_json(s, path);
    json_t *steps = json_object_get(h, "steps");
    json_t *last = json_array_get(steps, json_array_size(steps) - 1);
    ck_assert_str_eq(json_string_value(json_object_get(last, "node")), "b");
    ck_assert_int_eq(num(last, "tries"), 2);
    json_decref(h);
}

/* A job redriven from b after the fix ran b (once, with its tries all there) and c, and a never
 * again: /a is 1, and /b_prep 1 (the failed try's prep write is not in the store it started from). */
static void assert_fixed_from_b(e2e_server_t *s, const char *id) {
    json_decref(e2e_wait_status(s, id, "succeeded", 20000));
    json_t *sh = e2e_shared(s, id);
    ck_assert_int_eq(num(sh, "a"), 1);
    ck_assert_int_eq(num(sh, "b_prep"), 1);
    ck_assert_int_eq(num(sh, "c"), 1);
    ck_assert_str_eq(json_string_value(json_object_get(sh, "b")), "fixed");
    ck_assert(json_is_true(json_object_get(sh, "broken")));
    json_decref(sh);
    char *nodes = e2e_history_nodes(s, id);
    ck_assert_str_eq(nodes, "b c ");
    free(nodes);
}

START_TEST(test_a_fixed_flow_redriven_goes_on_from_the_failed_step) {
    e2e_server_t s;
    e2e_resp_t r;
    start(&s, "100");
    e2e_put_flow(&s, "rd", rd_v1);
    char *j = e2e_start_job_id(&s, "{\"flow\": \"rd\", \"shared\": {\"broken\": true}, \"params\": {\"p\": 1}}");
    assert_failed_at_b(&s, j);
    /* not fixed yet: the redriven job fails at b again, from the same store */
    char *again = redrive_ok(&s, j, "b");
    assert_failed_at_b(&s, again);
    char *nodes = e2e_history_nodes(&s, again);
    ck_assert_str_eq(nodes, "b ");
    free(nodes);
    /* fixed: it goes on from b with the new version */
    e2e_put_flow(&s, "rd", rd_v2);
    char *fixed = redrive_ok(&s, j, "b");
    assert_fixed_from_b(&s, fixed);
    /* the failed job is as it was */
    e2e_assert_job(&s, j, "default", "failed");
    /* a redrive's job that failed is redriven as any other */
    char *third = redrive_ok(&s, again, "b");
    assert_fixed_from_b(&s, third);
    /* 409: it succeeded */
    redrive(&s, fixed, NULL, &r);
    e2e_assert_error(&r, 409, "not_redrivable", "succeeded");
    e2e_resp_free(&r);
    /* 404 */
    redrive(&s, "0123456789abcdef0123456789abcdef", NULL, &r);
    e2e_assert_error(&r, 404, "not_found", "0123456789abcdef0123456789abcdef");
    e2e_resp_free(&r);
    redrive(&s, "nope", NULL, &r);
    e2e_assert_error(&r, 404, "not_found", NULL);
    e2e_resp_free(&r);
    /* GET is not a route of it */
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s/redrive", j);
    e2e_request(&s, "GET", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 405);
    ck_assert_str_eq(r.allow, "POST");
    e2e_resp_free(&r);
    /* Idempotency-Key: the same key again is the same job; with another job, a conflict */
    redrive(&s, j, "rd-key-1", &r);
    ck_assert_int_eq(r.status, 202);
    char *k1 = strdup(json_string_value(json_object_get(r.json, "id")));
    e2e_resp_free(&r);
    redrive(&s, j, "rd-key-1", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "id")), k1);
    e2e_resp_free(&r);
    redrive(&s, again, "rd-key-1", &r);
    e2e_assert_error(&r, 409, "idempotency_conflict", NULL);
    e2e_resp_free(&r);
    assert_fixed_from_b(&s, k1);
    /* a flow whose document lost the node: 409 */
    e2e_put_flow(&s, "rd", "{\"name\": \"rd\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}");
    redrive(&s, j, NULL, &r);
    e2e_assert_error(&r, 409, "node_gone", "'b'");
    e2e_resp_free(&r);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    free(j);
    free(again);
    free(fixed);
    free(third);
    free(k1);
}
END_TEST

/* The flow fixed (put with broken 0), j redriven at its flow node sub: the new job succeeds with
 * /a 1, /x as the sub-flow's one run left it, /c 1; its id (malloc'd). */
static char *redrive_fixed_sub(e2e_server_t *s, const char *j, void (*put)(e2e_server_t *, int),
                               long long x) {
    put(s, 0);
    char *n = redrive_ok(s, j, "sub");
    json_decref(e2e_wait_status(s, n, "succeeded", 20000));
    json_t *sh = e2e_shared(s, n);
    ck_assert_int_eq(num(sh, "a"), 1);
    ck_assert_int_eq(num(sh, "x"), x);
    ck_assert_int_eq(num(sh, "c"), 1);
    json_decref(sh);
    return n;
}

/* y fails inside the sub-flow: the job fails at the flow node sub, and a redrive runs sub again
 * from the store before it, without what x wrote (/x is 1 at the end, not 2). */
START_TEST(test_a_failure_inside_a_sub_flow_redrives_its_flow_node) {
    e2e_server_t s;
    start(&s, "100");
    put_outer(&s, 1);
    char *j = e2e_start_job_id(&s, "{\"flow\": \"outer\", \"shared\": {\"broken\": true}}");
    json_t *job = e2e_wait_status(&s, j, "failed", 20000);
    json_decref(job);
    json_t *sh = e2e_shared(&s, j);
    ck_assert_int_eq(num(sh, "x"), 1); /* x ran before y failed */
    json_decref(sh);
    char *n = redrive_fixed_sub(&s, j, put_outer, 1);
    char *nodes = e2e_history_nodes(&s, n);
    ck_assert_str_eq(nodes, "sub/x sub/y sub c ");
    free(nodes);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    free(j);
    free(n);
}
END_TEST

/* A sub-flow whose x loops six times before y fails on /broken (v1): every step's store is written
 * whole (--snapshot-bytes 1; x sleeps, so that its steps are not all in one group commit, where
 * only the last op of a job writes its store), so the file's newest store is long past the one
 * before the flow node. */
static const char looping_fmt[] =
    "{\"name\": \"looping\", \"start\": \"a\", \"nodes\": {"
    " \"a\": {\"type\": \"noop\", \"prep\": \"shared.a = (shared.a or 0) + 1\","
    "        \"next\": {\"default\": \"sub\"}},"
    " \"sub\": {\"type\": \"flow\", \"flow\": \"inner\", \"next\": {\"default\": \"c\"}},"
    " \"c\": {\"type\": \"noop\", \"prep\": \"shared.c = (shared.c or 0) + 1\"}},"
    " \"flows\": {\"inner\": {\"start\": \"x\", \"nodes\": {"
    "   \"x\": {\"type\": \"sleep\", \"params\": {\"seconds\": 0.05},"
    "          \"prep\": \"shared.x = (shared.x or 0) + 1\","
    "          \"post\": \"if shared.x %% 6 ~= 0 then return 'again' end\","
    "          \"next\": {\"again\": \"x\", \"default\": \"y\"}},"
    "   \"y\": {\"type\": \"lua\", \"prep\": \"return shared.broken\", \"exec\": \"%s\"}}}}}";

static void put_looping(e2e_server_t *s, int broken) {
    char doc[2048];
    snprintf(doc, sizeof doc, looping_fmt,
             broken ? "if prep_res then error('inner broken') end return 1" : "return 1");
    e2e_put_flow(s, "looping", doc);
}

static void start_whole(e2e_server_t *s) {
    e2e_start(s, "--store", "sqlite:flowd.db", "--data-dir", dir, "--snapshot-bytes", "1", NULL);
}

/* The store a redrive starts from is made again from the file's whole store at or before it and
 * the patches after (the file keeps it besides the newest), exactly, before and after a restart:
 * /x is 6 at the end (the sub-flow's earlier six visits are not in it), /a 1. */
START_TEST(test_the_store_before_a_long_sub_flow_is_kept_for_a_redrive) {
    e2e_server_t s;
    start_whole(&s);
    put_looping(&s, 1);
    char *j = e2e_start_job_id(&s, "{\"flow\": \"looping\", \"shared\": {\"broken\": true}}");
    json_decref(e2e_wait_status(&s, j, "failed", 20000));
    json_t *sh = e2e_shared(&s, j);
    ck_assert_int_eq(num(sh, "x"), 6);
    json_decref(sh);
    char *n = redrive_fixed_sub(&s, j, put_looping, 6);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    /* after a restart the failed job's record comes from the file: the same store again */
    start_whole(&s);
    char *m = redrive_fixed_sub(&s, j, put_looping, 6);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    /* the file kept two whole stores of the failed job: one inside the sub-flow, and the one after
     * step 1 (a's), which the redrive started from */
    char path[192];
    snprintf(path, sizeof path, "%s/flowd.db", dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*), min(s.step), max(s.step) FROM stores s"
                                            " JOIN jobs j ON j.seq = s.job WHERE j.id = ?",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, j, -1, SQLITE_STATIC);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 2);
    ck_assert_int_eq(sqlite3_column_int(st, 1), 1);
    ck_assert_int_ge(sqlite3_column_int(st, 2), 3);
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(j);
    free(n);
    free(m);
}
END_TEST

/* A job that waits for input cannot be redriven (409); canceled, it can: the new job waits at the
 * same input node, without running first again, and goes on with the answer. A job canceled while
 * queued starts from its flow's start. */
START_TEST(test_a_canceled_waiting_job_redriven_waits_again) {
    e2e_server_t s;
    e2e_resp_t r;
    char path[96];
    start(&s, "1");
    e2e_put_flow(&s, "ask", ask_doc);
    char *w = e2e_start_job_id(&s, "{\"flow\": \"ask\", \"shared\": {\"who\": \"me\"}}");
    json_decref(e2e_wait_status(&s, w, "waiting", 20000));
    redrive(&s, w, NULL, &r);
    e2e_assert_error(&r, 409, "not_redrivable", "waiting");
    e2e_resp_free(&r);
    /* queued behind it (--max-running 1), then canceled: 409 while queued, then redriven */
    char *q = e2e_start_job_id(&s, "{\"flow\": \"ask\", \"shared\": {\"who\": \"queued\"}}");
    redrive(&s, q, NULL, &r);
    e2e_assert_error(&r, 409, "not_redrivable", "queued");
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", q);
    e2e_post(&s, path, "{}", &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", w);
    e2e_post(&s, path, "{}", &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    json_decref(e2e_wait_status(&s, w, "canceled", 20000));
    char *n = redrive_ok(&s, w, "question");
    json_t *job = e2e_wait_status(&s, n, "waiting", 20000);
    ck_assert_str_eq(json_string_value(json_object_get(job, "current_node")), "question");
    json_decref(job);
    snprintf(path, sizeof path, "/v1/jobs/%s/input", n);
    e2e_post(&s, path, "{\"value\": \"yes\"}", &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    json_decref(e2e_wait_status(&s, n, "succeeded", 20000));
    json_t *sh = e2e_shared(&s, n);
    ck_assert_int_eq(num(sh, "first"), 1);
    ck_assert_str_eq(json_string_value(json_object_get(sh, "answer")), "yes");
    ck_assert(json_is_true(json_object_get(sh, "done")));
    json_decref(sh);
    /* the one canceled before it ran starts at the flow's start */
    char *nq = redrive_ok(&s, q, NULL);
    json_decref(e2e_wait_status(&s, nq, "waiting", 20000));
    sh = e2e_shared(&s, nq);
    ck_assert_int_eq(num(sh, "first"), 1);
    ck_assert_str_eq(json_string_value(json_object_get(sh, "who")), "queued");
    json_decref(sh);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    free(w);
    free(q);
    free(n);
    free(nq);
}
END_TEST

/* A failed job is redriven after a restart from what the store kept; a redriven job still queued
 * (--max-running 1, the slot held by a waiting job) when flowd is killed starts after the restart
 * at the node it was made at. */
START_TEST(test_redrives_outlive_a_restart) {
    e2e_server_t s;
    start(&s, "1");
    e2e_put_flow(&s, "rd", rd_v1);
    e2e_put_flow(&s, "ask", ask_doc);
    char *j = e2e_start_job_id(&s, "{\"flow\": \"rd\", \"shared\": {\"broken\": true}}");
    assert_failed_at_b(&s, j);
    char *w = e2e_start_job_id(&s, "{\"flow\": \"ask\", \"shared\": {}}");
    json_decref(e2e_wait_status(&s, w, "waiting", 20000));
    e2e_put_flow(&s, "rd", rd_v2);
    char *queued = redrive_ok(&s, j, "b");
    e2e_assert_job(&s, queued, "default", "queued");
    e2e_kill(&s);
    e2e_cleanup(&s);
    start(&s, "100");
    json_t *job = e2e_wait_status(&s, queued, "succeeded", 20000);
    json_t *from = json_object_get(job, "redriven_from");
    ck_assert_str_eq(json_string_value(json_object_get(from, "job")), j);
    json_decref(job);
    assert_fixed_from_b(&s, queued);
    char *after = redrive_ok(&s, j, "b");
    assert_fixed_from_b(&s, after);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    /* and once more, with both ended */
    start(&s, "100");
    e2e_assert_job(&s, after, "default", "succeeded");
    job = e2e_get_json(&s, "/v1/jobs?limit=10");
    json_decref(job);
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s", after);
    job = e2e_get_json(&s, path);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(job, "redriven_from"), "job")), j);
    json_decref(job);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    free(j);
    free(w);
    free(queued);
    free(after);
}
END_TEST

/* A file of schema version 6 (before redrives) is migrated: its failed job cannot be redriven (409
 * not_kept: nothing says what it would start from), one that fails after the migration can. */
START_TEST(test_a_version_6_file_is_migrated) {
    e2e_server_t s;
    e2e_resp_t r;
    start(&s, "100");
    e2e_put_flow(&s, "rd", rd_v1);
    char *old = e2e_start_job_id(&s, "{\"flow\": \"rd\", \"shared\": {\"broken\": true}}");
    assert_failed_at_b(&s, old);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    char path[192];
    snprintf(path, sizeof path, "%s/flowd.db", dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "ALTER TABLE jobs DROP COLUMN origin;"
                                      " ALTER TABLE jobs DROP COLUMN base_shared;"
                                      " ALTER TABLE jobs DROP COLUMN base_step; DROP TABLE stores;"
                                      " ALTER TABLE jobs DROP COLUMN visits;"
                                      " ALTER TABLE jobs DROP COLUMN traceparent;"
                                      " UPDATE meta SET value = '6' WHERE key = 'schema_version'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    start(&s, "100");
    e2e_assert_job(&s, old, "default", "failed");
    redrive(&s, old, NULL, &r);
    e2e_assert_error(&r, 409, "not_kept", "ended before");
    e2e_resp_free(&r);
    char *j = e2e_start_job_id(&s, "{\"flow\": \"rd\", \"shared\": {\"broken\": true}}");
    assert_failed_at_b(&s, j);
    e2e_put_flow(&s, "rd", rd_v2);
    char *n = redrive_ok(&s, j, "b");
    assert_fixed_from_b(&s, n);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_assert_sqlite_current(path);
    free(old);
    free(j);
    free(n);
}
END_TEST

/* The memory store keeps no checkpoints: nothing to start again from. */
START_TEST(test_the_memory_store_cannot_redrive) {
    e2e_server_t s;
    e2e_resp_t r;
    e2e_start(&s, "--store", "memory:", NULL);
    e2e_put_flow(&s, "rd", rd_v1);
    char *j = e2e_start_job_id(&s, "{\"flow\": \"rd\", \"shared\": {\"broken\": true}}");
    json_decref(e2e_wait_status(&s, j, "failed", 20000));
    redrive(&s, j, NULL, &r);
    e2e_assert_error(&r, 409, "not_kept", "--store memory:");
    e2e_resp_free(&r);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    free(j);
}
END_TEST

/* Another tenant's key is told the job does not exist, word for word; a read key may not. */
START_TEST(test_another_tenants_job_is_not_found) {
    e2e_server_t s;
    e2e_resp_t r;
    char path[160];
    e2e_write_tenant_keys(dir, path, sizeof path);
    e2e_start(&s, "--store", "sqlite:flowd.db", "--data-dir", dir, "--keys", path, NULL);
    e2e_use_key(&s, E2E_ADMIN);
    e2e_put_flow(&s, "rd", rd_v1);
    e2e_use_key(&s, E2E_SUBMIT_A);
    char *j = e2e_start_job_id(&s, "{\"flow\": \"rd\", \"shared\": {\"broken\": true}}");
    json_decref(e2e_wait_status(&s, j, "failed", 20000));
    e2e_use_key(&s, E2E_SUBMIT_B);
    e2e_assert_hidden(&s, "POST", "/v1/jobs/%s/redrive", NULL, j);
    e2e_use_key(&s, E2E_READ_A);
    redrive(&s, j, NULL, &r);
    e2e_assert_error(&r, 403, "forbidden", NULL);
    e2e_resp_free(&r);
    e2e_use_key(&s, E2E_SUBMIT_A);
    char *n = redrive_ok(&s, j, "b");
    e2e_assert_job(&s, n, "a", NULL);
    e2e_use_key(&s, E2E_ADMIN);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    free(j);
    free(n);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("redrive");
    TCase *tc = tcase_create("redrive");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_a_fixed_flow_redriven_goes_on_from_the_failed_step);
    tcase_add_test(tc, test_a_failure_inside_a_sub_flow_redrives_its_flow_node);
    tcase_add_test(tc, test_the_store_before_a_long_sub_flow_is_kept_for_a_redrive);
    tcase_add_test(tc, test_a_canceled_waiting_job_redriven_waits_again);
    tcase_add_test(tc, test_redrives_outlive_a_restart);
    tcase_add_test(tc, test_the_memory_store_cannot_redrive);
    tcase_add_test(tc, test_a_version_6_file_is_migrated);
    tcase_add_test(tc, test_another_tenants_job_is_not_found);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(suite());
}
