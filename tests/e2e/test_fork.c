/* test_fork.c: POST /v1/jobs/{id}/fork on the SQLite store (Temporal's reset). A looping flow whose
 * nodes count their visits in the shared store: a fork of a succeeded job at a middle step is a
 * new job that runs only the nodes after that step (its history and the counters say so) from the
 * store as of that step, with a JSON Patch applied first when the body has one. Steps 0, the last
 * one, one inside a sub-flow, one that failed, one not finished; a step whose store is no longer
 * kept (--snapshot-steps), or whose history entry is not (--history-limit); a waiting job forked
 * while it waits; the memory store (409); another tenant's job (404); Idempotency-Key; a fork
 * still queued at a kill -9 runs after the restart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e.h"

static const char *const json_ct[] = {"Content-Type: application/json", NULL};
static char dir[128];

/* a counts in /a; loop counts in /l and goes again until /l is 4; c counts in /c; every node
 * counts in /v. Its steps: 1 a, 2-5 loop (/l 1 to 4), 6 c. */
static const char loop_doc[] =
    "{\"name\": \"lp\", \"start\": \"a\", \"nodes\": {"
    " \"a\": {\"type\": \"noop\", \"prep\": \"shared.a = (shared.a or 0) + 1;"
    "          shared.v = (shared.v or 0) + 1\", \"next\": {\"default\": \"loop\"}},"
    " \"loop\": {\"type\": \"noop\", \"prep\": \"shared.l = (shared.l or 0) + 1;"
    "             shared.v = (shared.v or 0) + 1\","
    "          \"post\": \"if shared.l < 4 then return 'again' end\","
    "          \"next\": {\"again\": \"loop\", \"default\": \"c\"}},"
    " \"c\": {\"type\": \"noop\", \"prep\": \"shared.c = (shared.c or 0) + 1;"
    "          shared.v = (shared.v or 0) + 1\"}}}";

/* Steps: 1 a, 2 sub/x, 3 sub/y (inside the sub-flow), 4 sub, 5 c. */
static const char outer_doc[] =
    "{\"name\": \"outer\", \"start\": \"a\", \"nodes\": {"
    " \"a\": {\"type\": \"noop\", \"prep\": \"shared.a = (shared.a or 0) + 1\","
    "        \"next\": {\"default\": \"sub\"}},"
    " \"sub\": {\"type\": \"flow\", \"flow\": \"inner\", \"next\": {\"default\": \"c\"}},"
    " \"c\": {\"type\": \"noop\", \"prep\": \"shared.c = (shared.c or 0) + 1\"}},"
    " \"flows\": {\"inner\": {\"start\": \"x\", \"nodes\": {"
    "   \"x\": {\"type\": \"noop\", \"prep\": \"shared.x = (shared.x or 0) + 1\","
    "          \"next\": {\"default\": \"y\"}},"
    "   \"y\": {\"type\": \"noop\", \"prep\": \"shared.y = (shared.y or 0) + 1\"}}}}}";

/* b fails on /broken: steps 1 a, 2 b (failed). */
static const char fail_doc[] =
    "{\"name\": \"fl\", \"start\": \"a\", \"nodes\": {"
    " \"a\": {\"type\": \"noop\", \"prep\": \"shared.a = (shared.a or 0) + 1\","
    "        \"next\": {\"default\": \"b\"}},"
    " \"b\": {\"type\": \"lua\", \"prep\": \"return shared.broken\","
    "        \"exec\": \"if prep_res then error('broken') end return 1\"}}}";

/* first counts in /first, then the job waits at question for any answer: steps 1 first. */
static const char ask_doc[] =
    "{\"name\": \"ask\", \"start\": \"first\", \"nodes\": {"
    " \"first\": {\"type\": \"noop\", \"prep\": \"shared.first = (shared.first or 0) + 1\","
    "   \"next\": {\"default\": \"question\"}},"
    " \"question\": {\"type\": \"input\", \"params\": {\"prompt\": \"Go on?\"}, \"out\": \"/go\"}}}";

static void setup(void) {
    e2e_tmpdir(dir, sizeof dir, "flowd-fork");
}

static void teardown(void) {
    e2e_rmtree(dir);
}

static void start(e2e_server_t *s, const char *max_running) {
    e2e_start(s, "--store", "sqlite:flowd.db", "--data-dir", dir, "--max-running", max_running,
              NULL);
}

/* POST /v1/jobs/{id}/fork with body (idem: its Idempotency-Key, or NULL) into r. */
static void fork_req(e2e_server_t *s, const char *id, const char *body, const char *idem,
                     e2e_resp_t *r) {
    char path[96], ik[128];
    const char *h[] = {json_ct[0], ik, NULL};
    snprintf(path, sizeof path, "/v1/jobs/%s/fork", id);
    snprintf(ik, sizeof ik, "Idempotency-Key: %s", idem ? idem : "");
    e2e_request(s, "POST", path, idem ? h : json_ct, body, r);
}

/* Forks id with body, asserting 202 with a queued Job that says it was forked from id at step;
 * its id (malloc'd). */
static char *fork_ok(e2e_server_t *s, const char *id, const char *body, long long step) {
    e2e_resp_t r;
    fork_req(s, id, body, NULL, &r);
    ck_assert_msg(r.status == 202, "fork %s %s: %ld %s", id, body, r.status, r.body);
    ck_assert_ptr_nonnull(r.json);
    const char *nid = json_string_value(json_object_get(r.json, "id"));
    ck_assert_str_ne(nid, id);
    ck_assert_ptr_nonnull(strstr(r.location, nid));
    json_t *from = json_object_get(r.json, "forked_from");
    ck_assert_str_eq(json_string_value(json_object_get(from, "job")), id);
    ck_assert_int_eq(json_integer_value(json_object_get(from, "step")), step);
    ck_assert_uint_eq(json_object_size(from), 2);
    ck_assert(json_is_null(json_object_get(r.json, "redriven_from")));
    char *out = strdup(nid);
    e2e_resp_free(&r);
    return out;
}

static long long num(json_t *o, const char *key) {
    return (long long)json_integer_value(json_object_get(o, key));
}

/* The job succeeded with these counters and ran these nodes. */
static void assert_ran(e2e_server_t *s, const char *id, long long a, long long l, long long c,
                       long long v, const char *nodes) {
    json_decref(e2e_wait_status(s, id, "succeeded", 20000));
    json_t *sh = e2e_shared(s, id);
    ck_assert_int_eq(num(sh, "a"), a);
    ck_assert_int_eq(num(sh, "l"), l);
    ck_assert_int_eq(num(sh, "c"), c);
    ck_assert_int_eq(num(sh, "v"), v);
    json_decref(sh);
    char *ran = e2e_history_nodes(s, id);
    ck_assert_str_eq(ran, nodes);
    free(ran);
}

START_TEST(test_a_fork_runs_only_the_nodes_after_its_step) {
    e2e_server_t s;
    e2e_resp_t r;
    start(&s, "100");
    e2e_put_flow(&s, "lp", loop_doc);
    char *j = e2e_start_job_id(&s, "{\"flow\": \"lp\", \"shared\": {\"who\": \"me\"}, \"params\": {\"p\": 1}}");
    assert_ran(&s, j, 1, 4, 1, 6, "a loop loop loop loop c ");
    /* after step 3 (loop, /l 2, /v 3): loop twice more and c; a never again */
    char *f3 = fork_ok(&s, j, "{\"step\": 3}", 3);
    assert_ran(&s, f3, 1, 4, 1, 6, "loop loop c ");
    json_t *sh = e2e_shared(&s, f3);
    ck_assert_str_eq(json_string_value(json_object_get(sh, "who")), "me");
    json_decref(sh);
    /* after step 1 (a): the loop from its first visit */
    char *f1 = fork_ok(&s, j, "{\"step\": 1}", 1);
    assert_ran(&s, f1, 1, 4, 1, 6, "loop loop loop loop c ");
    /* step 0: the store it started with, from the flow's start */
    char *f0 = fork_ok(&s, j, "{\"step\": 0, \"shared\": []}", 0);
    assert_ran(&s, f0, 1, 4, 1, 6, "a loop loop loop loop c ");
    /* a patch: /l set to 3 after step 3 leaves one loop to run; test, copy, move and remove too */
    char *fp = fork_ok(&s, j,
                       "{\"step\": 3, \"shared\": ["
                       "{\"op\": \"test\", \"path\": \"/l\", \"value\": 2},"
                       "{\"op\": \"replace\", \"path\": \"/l\", \"value\": 3},"
                       "{\"op\": \"copy\", \"from\": \"/who\", \"path\": \"/copied\"},"
                       "{\"op\": \"move\", \"from\": \"/who\", \"path\": \"/moved\"},"
                       "{\"op\": \"add\", \"path\": \"/list\", \"value\": [1, 2]},"
                       "{\"op\": \"remove\", \"path\": \"/list/0\"}]}",
                       3);
    assert_ran(&s, fp, 1, 4, 1, 5, "loop c ");
    sh = e2e_shared(&s, fp);
    ck_assert_str_eq(json_string_value(json_object_get(sh, "copied")), "me");
    ck_assert_str_eq(json_string_value(json_object_get(sh, "moved")), "me");
    ck_assert_ptr_null(json_object_get(sh, "who"));
    ck_assert_int_eq(json_array_size(json_object_get(sh, "list")), 1);
    json_decref(sh);
    /* the job forked is as it was, and a fork is forked as any job (its own steps) */
    e2e_assert_job(&s, j, "default", "succeeded");
    char *ff = fork_ok(&s, f3, "{\"step\": 1}", 1); /* f3's step 1: a loop, /l 3 */
    assert_ran(&s, ff, 1, 4, 1, 6, "loop c ");
    /* the Job of a submission says null */
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s", j);
    json_t *job = e2e_get_json(&s, path);
    ck_assert(json_is_null(json_object_get(job, "forked_from")));
    json_decref(job);
    /* a patch that cannot be applied: 422, naming the operation */
    fork_req(&s, j, "{\"step\": 3, \"shared\": [{\"op\": \"test\", \"path\": \"/l\", \"value\": 9}]}",
             NULL, &r);
    e2e_assert_error(&r, 422, "invalid_patch", "operation 0 (test /l)");
    e2e_resp_free(&r);
    fork_req(&s, j, "{\"step\": 3, \"shared\": [{\"op\": \"remove\", \"path\": \"/nothing\"}]}",
             NULL, &r);
    e2e_assert_error(&r, 422, "invalid_patch", "names nothing");
    e2e_resp_free(&r);
    fork_req(&s, j, "{\"step\": 3, \"shared\": [{\"op\": \"jump\", \"path\": \"/l\"}]}", NULL, &r);
    e2e_assert_error(&r, 422, "invalid_patch", "move, copy or test");
    e2e_resp_free(&r);
    fork_req(&s, j, "{\"step\": 3, \"shared\": [{\"op\": \"add\", \"path\": \"\", \"value\": 1}]}",
             NULL, &r);
    e2e_assert_error(&r, 422, "invalid_patch", NULL);
    e2e_resp_free(&r);
    /* bodies that are not a fork's: 400 */
    static const char *const bad[] = {"{}", "{\"step\": -1}", "{\"step\": \"3\"}",
                                      "{\"step\": 3, \"shared\": {\"l\": 1}}",
                                      "{\"step\": 3, \"other\": 1}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fork_req(&s, j, bad[i], NULL, &r);
        e2e_assert_error(&r, 400, "bad_request", NULL);
        e2e_resp_free(&r);
    }
    /* step 7 has not run: 404; step 6 (c) ends the flow: nothing follows it */
    fork_req(&s, j, "{\"step\": 7}", NULL, &r);
    e2e_assert_error(&r, 404, "unknown_step", "finished 6");
    e2e_resp_free(&r);
    fork_req(&s, j, "{\"step\": 6}", NULL, &r);
    e2e_assert_error(&r, 409, "not_forkable", "ends");
    e2e_resp_free(&r);
    /* no such job: 404 */
    fork_req(&s, "0123456789abcdef0123456789abcdef", "{\"step\": 1}", NULL, &r);
    e2e_assert_error(&r, 404, "not_found", "0123456789abcdef0123456789abcdef");
    e2e_resp_free(&r);
    /* the flow's current version: a node it lost is 409, a new edge is taken */
    e2e_put_flow(&s, "lp", "{\"name\": \"lp\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\","
                       " \"next\": {\"default\": \"z\"}}, \"z\": {\"type\": \"set\","
                       " \"params\": {\"/z\": true}}}}");
    fork_req(&s, j, "{\"step\": 3}", NULL, &r);
    e2e_assert_error(&r, 409, "node_gone", "'loop'");
    e2e_resp_free(&r);
    char *fz = fork_ok(&s, j, "{\"step\": 1}", 1);
    json_decref(e2e_wait_status(&s, fz, "succeeded", 20000));
    sh = e2e_shared(&s, fz);
    ck_assert(json_is_true(json_object_get(sh, "z")));
    ck_assert_int_eq(num(sh, "l"), 0);
    json_decref(sh);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    free(j);
    free(f3);
    free(f1);
    free(f0);
    free(fp);
    free(ff);
    free(fz);
}
END_TEST

/* A step inside a sub-flow is refused, naming the root-level steps around it; the flow node's own
 * step goes on after the sub-flow. A step that failed is refused, naming the one before it. */
START_TEST(test_sub_flow_and_failed_steps) {
    e2e_server_t s;
    e2e_resp_t r;
    start(&s, "100");
    e2e_put_flow(&s, "outer", outer_doc);
    e2e_put_flow(&s, "fl", fail_doc);
    char *j = e2e_start_job_id(&s, "{\"flow\": \"outer\", \"shared\": {}}");
    json_decref(e2e_wait_status(&s, j, "succeeded", 20000));
    char *nodes = e2e_history_nodes(&s, j);
    ck_assert_str_eq(nodes, "a sub/x sub/y sub c ");
    free(nodes);
    fork_req(&s, j, "{\"step\": 3}", NULL, &r);
    e2e_assert_error(&r, 409, "not_forkable", "inside a sub-flow");
    ck_assert_ptr_nonnull(strstr(r.body, "before, step 1 ('a'); after, step 4 ('sub')"));
    e2e_resp_free(&r);
    char *f = fork_ok(&s, j, "{\"step\": 4}", 4);
    json_decref(e2e_wait_status(&s, f, "succeeded", 20000));
    json_t *sh = e2e_shared(&s, f);
    ck_assert_int_eq(num(sh, "x"), 1);
    ck_assert_int_eq(num(sh, "c"), 1);
    json_decref(sh);
    nodes = e2e_history_nodes(&s, f);
    ck_assert_str_eq(nodes, "c ");
    free(nodes);
    char *b = e2e_start_job_id(&s, "{\"flow\": \"fl\", \"shared\": {\"broken\": true}}");
    json_decref(e2e_wait_status(&s, b, "failed", 20000));
    fork_req(&s, b, "{\"step\": 2}", NULL, &r);
    e2e_assert_error(&r, 409, "not_forkable", "step 1 ('a')");
    e2e_resp_free(&r);
    /* after step 1, with the flag patched away, the failed job's b succeeds */
    char *fb = fork_ok(&s, b, "{\"step\": 1, \"shared\": [{\"op\": \"remove\", \"path\": \"/broken\"}]}", 1);
    json_decref(e2e_wait_status(&s, fb, "succeeded", 20000));
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    free(j);
    free(f);
    free(b);
    free(fb);
}
END_TEST

/* A job waiting for input is forked while it waits (the step before the input node has finished):
 * the fork waits at the same node without running first again. */
START_TEST(test_a_waiting_job_is_forked) {
    e2e_server_t s;
    e2e_resp_t r;
    start(&s, "100");
    e2e_put_flow(&s, "ask", ask_doc);
    char *w = e2e_start_job_id(&s, "{\"flow\": \"ask\", \"shared\": {\"who\": \"me\"}}");
    json_decref(e2e_wait_status(&s, w, "waiting", 20000));
    fork_req(&s, w, "{\"step\": 2}", NULL, &r);
    e2e_assert_error(&r, 404, "unknown_step", NULL);
    e2e_resp_free(&r);
    char *f = fork_ok(&s, w, "{\"step\": 1}", 1);
    json_t *job = e2e_wait_status(&s, f, "waiting", 20000);
    ck_assert_str_eq(json_string_value(json_object_get(job, "current_node")), "question");
    json_decref(job);
    json_t *sh = e2e_shared(&s, f);
    ck_assert_int_eq(num(sh, "first"), 1);
    json_decref(sh);
    e2e_assert_job(&s, w, "default", "waiting");
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    free(w);
    free(f);
}
END_TEST

/* tick sleeps (so that its steps are not all in one group commit, where only a job's last op
 * writes its store) and counts in /n until 12, then the job waits at ask: steps 1-12 tick, each
 * with a node after it (a job that ended could have its newest whole store at its last step,
 * after which nothing is left to run). */
static const char ticks_doc[] =
    "{\"name\": \"ticks\", \"start\": \"tick\", \"nodes\": {"
    " \"tick\": {\"type\": \"sleep\", \"params\": {\"seconds\": 0.01},"
    "  \"post\": [\"shared.n = (shared.n or 0) + 1\", \"if shared.n < 12 then return 'again' end\"],"
    "  \"next\": {\"again\": \"tick\", \"default\": \"ask\"}},"
    " \"ask\": {\"type\": \"input\", \"params\": {\"prompt\": \"more?\"}}}}";

/* With a whole store every 2 steps, the file keeps the patches from the job's last whole store
 * on: an earlier step's store is gone (410, naming the oldest kept, as GET ?step= does), a kept
 * one forks. */
START_TEST(test_a_step_no_longer_kept) {
    e2e_server_t s;
    e2e_resp_t r;
    char path[128], msg[64];
    e2e_start(&s, "--store", "sqlite:flowd.db", "--data-dir", dir, "--snapshot-steps", "2",
              "--snapshot-bytes", "1", NULL);
    e2e_put_flow(&s, "ticks", ticks_doc);
    char *j = e2e_start_job_id(&s, "{\"flow\": \"ticks\", \"shared\": {}}");
    json_decref(e2e_wait_status(&s, j, "waiting", 20000));
    int oldest = 1;
    for (; oldest <= 12; oldest++) {
        snprintf(path, sizeof path, "/v1/jobs/%s/shared?step=%d", j, oldest);
        if (e2e_get_status(&s, path) == 200)
            break;
    }
    ck_assert_int_gt(oldest, 1);  /* step 1 is gone */
    ck_assert_int_le(oldest, 12); /* and a tick is kept */
    fork_req(&s, j, "{\"step\": 1}", NULL, &r);
    snprintf(msg, sizeof msg, "the oldest kept is as of step %d", oldest);
    e2e_assert_error(&r, 410, "step_not_kept", msg);
    e2e_resp_free(&r);
    char body[64];
    snprintf(body, sizeof body, "{\"step\": %d}", oldest);
    char *f = fork_ok(&s, j, body, oldest);
    json_decref(e2e_wait_status(&s, f, "waiting", 20000));
    json_t *sh = e2e_shared(&s, f);
    ck_assert_int_eq(num(sh, "n"), 12);
    json_decref(sh);
    snprintf(path, sizeof path, "/v1/jobs/%s/history", f);
    json_t *h = e2e_get_json(&s, path);
    ck_assert_int_eq(json_array_size(json_object_get(h, "steps")), 12 - oldest);
    json_decref(h);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    free(j);
    free(f);
}
END_TEST

/* The history keeps the last --history-limit steps: a step whose entry is gone has no node to go
 * on after (410, naming the flag), though its store is kept. */
START_TEST(test_a_step_the_history_no_longer_has) {
    e2e_server_t s;
    e2e_resp_t r;
    e2e_start(&s, "--store", "sqlite:flowd.db", "--data-dir", dir, "--history-limit", "3", NULL);
    e2e_put_flow(&s, "lp", loop_doc);
    char *j = e2e_start_job_id(&s, "{\"flow\": \"lp\", \"shared\": {}}");
    json_decref(e2e_wait_status(&s, j, "succeeded", 20000));
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?step=1", j);
    ck_assert_int_eq(e2e_get_status(&s, path), 200);
    fork_req(&s, j, "{\"step\": 1}", NULL, &r);
    e2e_assert_error(&r, 410, "step_not_kept", "--history-limit");
    e2e_resp_free(&r);
    char *f = fork_ok(&s, j, "{\"step\": 4}", 4);
    assert_ran(&s, f, 1, 4, 1, 6, "loop c ");
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    free(j);
    free(f);
}
END_TEST

/* The memory store keeps no store of past steps: nothing to fork from. */
START_TEST(test_the_memory_store_cannot_fork) {
    e2e_server_t s;
    e2e_resp_t r;
    e2e_start(&s, "--store", "memory:", NULL);
    e2e_put_flow(&s, "lp", loop_doc);
    char *j = e2e_start_job_id(&s, "{\"flow\": \"lp\", \"shared\": {}}");
    json_decref(e2e_wait_status(&s, j, "succeeded", 20000));
    fork_req(&s, j, "{\"step\": 1}", NULL, &r);
    e2e_assert_error(&r, 409, "not_kept", "--store memory:");
    e2e_resp_free(&r);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    free(j);
}
END_TEST

/* Idempotency-Key: the same key with the same job and body is the same fork (200); with another
 * body, 409. A fork still queued at a kill -9 (--max-running 1, the slot held by a waiting job)
 * runs after the restart from its step, and still says where it came from. */
START_TEST(test_idempotency_and_a_restart) {
    e2e_server_t s;
    e2e_resp_t r;
    start(&s, "1");
    e2e_put_flow(&s, "lp", loop_doc);
    e2e_put_flow(&s, "ask", ask_doc);
    char *j = e2e_start_job_id(&s, "{\"flow\": \"lp\", \"shared\": {}}");
    json_decref(e2e_wait_status(&s, j, "succeeded", 20000));
    char *w = e2e_start_job_id(&s, "{\"flow\": \"ask\", \"shared\": {}}");
    json_decref(e2e_wait_status(&s, w, "waiting", 20000));
    fork_req(&s, j, "{\"step\": 3}", "fork-key-1", &r);
    ck_assert_msg(r.status == 202, "%ld %s", r.status, r.body);
    char *k = strdup(json_string_value(json_object_get(r.json, "id")));
    e2e_resp_free(&r);
    fork_req(&s, j, "{\"step\": 3}", "fork-key-1", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "id")), k);
    e2e_resp_free(&r);
    fork_req(&s, j, "{\"step\": 4}", "fork-key-1", &r);
    e2e_assert_error(&r, 409, "idempotency_conflict", NULL);
    e2e_resp_free(&r);
    e2e_assert_job(&s, k, "default", "queued");
    e2e_kill(&s);
    e2e_cleanup(&s);
    start(&s, "100");
    assert_ran(&s, k, 1, 4, 1, 6, "loop loop c ");
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s", k);
    json_t *job = e2e_get_json(&s, path);
    json_t *from = json_object_get(job, "forked_from");
    ck_assert_str_eq(json_string_value(json_object_get(from, "job")), j);
    ck_assert_int_eq(json_integer_value(json_object_get(from, "step")), 3);
    ck_assert(json_is_null(json_object_get(job, "redriven_from")));
    json_decref(job);
    /* the key still names the same fork after the restart */
    fork_req(&s, j, "{\"step\": 3}", "fork-key-1", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "id")), k);
    e2e_resp_free(&r);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    free(j);
    free(w);
    free(k);
}
END_TEST

/* Another tenant's key is told the job does not exist, word for word; a read key may not fork. */
START_TEST(test_another_tenants_job_is_not_found) {
    e2e_server_t s;
    e2e_resp_t r;
    char path[160];
    e2e_write_tenant_keys(dir, path, sizeof path);
    e2e_start(&s, "--store", "sqlite:flowd.db", "--data-dir", dir, "--keys", path, NULL);
    e2e_use_key(&s, E2E_ADMIN);
    e2e_put_flow(&s, "lp", loop_doc);
    e2e_use_key(&s, E2E_SUBMIT_A);
    char *j = e2e_start_job_id(&s, "{\"flow\": \"lp\", \"shared\": {}}");
    json_decref(e2e_wait_status(&s, j, "succeeded", 20000));
    e2e_use_key(&s, E2E_SUBMIT_B);
    e2e_assert_hidden(&s, "POST", "/v1/jobs/%s/fork", "{\"step\": 1}", j);
    e2e_use_key(&s, E2E_READ_A);
    fork_req(&s, j, "{\"step\": 1}", NULL, &r);
    e2e_assert_error(&r, 403, "forbidden", NULL);
    e2e_resp_free(&r);
    e2e_use_key(&s, E2E_SUBMIT_A);
    char *n = fork_ok(&s, j, "{\"step\": 1}", 1);
    e2e_assert_job(&s, n, "a", NULL);
    e2e_use_key(&s, E2E_ADMIN);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    free(j);
    free(n);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("fork");
    TCase *tc = tcase_create("fork");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_a_fork_runs_only_the_nodes_after_its_step);
    tcase_add_test(tc, test_sub_flow_and_failed_steps);
    tcase_add_test(tc, test_a_waiting_job_is_forked);
    tcase_add_test(tc, test_a_step_no_longer_kept);
    tcase_add_test(tc, test_a_step_the_history_no_longer_has);
    tcase_add_test(tc, test_the_memory_store_cannot_fork);
    tcase_add_test(tc, test_idempotency_and_a_restart);
    tcase_add_test(tc, test_another_tenants_job_is_not_found);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(suite());
}
