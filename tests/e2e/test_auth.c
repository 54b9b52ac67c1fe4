/* test_auth.c: who may do what (server/auth.h), against a running flowd with a key file: every role
 * (and no key, and a wrong one) on every route, as a table; tenants: another tenant's job is 404
 * with the very body of a job that does not exist, on every route of a job, lists show the caller's
 * tenant, Idempotency-Keys are per tenant, and all of it after a restart on SQLite and after the
 * migration of a schema-2 file; keys added, removed and broken on SIGHUP; the refusal to run open
 * on an address that is not loopback; --insecure-no-auth, --metrics-open; and `flowd key new`. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "e2e.h"

#define ADMIN "fk_test-admin-0123456789"
#define SUBMIT_A "fk_test-submit-a-0123456789"
#define READ_A "fk_test-read-a-0123456789"
#define SUBMIT_B "fk_test-submit-b-0123456789"
#define READ_B "fk_test-read-b-0123456789"
#define SUBMIT_D "fk_test-submit-default-0123456789"
#define READ_D "fk_test-read-default-0123456789"
#define WRONG "fk_test-not-a-key-0123456789"

/* key, name, role, tenant */
static const char *const all_keys[] = {
    ADMIN,  "root",           "admin", "ops",     SUBMIT_A, "submit-a",       "submit", "a",
    READ_A, "reader-a",       "read",  "a",       SUBMIT_B, "submit-b",       "submit", "b",
    READ_B, "reader-b",       "read",  "b",       SUBMIT_D, "submit-default", "submit", "default",
    READ_D, "reader-default", "read",  "default", NULL};

static char dir[64], keys[128], store[128];

static void write_keys(const char *const *entries) {
    char text[4096] = "# written by test_auth\n", line[256];
    for (size_t i = 0; entries[i] != NULL; i += 4) {
        e2e_key_line(entries[i], entries[i + 1], entries[i + 2], entries[i + 3], line, sizeof line);
        strncat(text, line, sizeof text - strlen(text) - 1);
    }
    e2e_write_file(dir, "keys", text);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/flowd-auth-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(keys, sizeof keys, "%s/keys", dir);
    snprintf(store, sizeof store, "sqlite:%s/flowd.db", dir);
    write_keys(all_keys);
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* One request as key (NULL: no Authorization), with a JSON body when body is not NULL. */
static void call(e2e_server_t *s, const char *key, const char *method, const char *path,
                 const char *body, const char *idem, e2e_resp_t *r) {
    const char *h[3];
    char ik[300];
    int n = 0;
    if (body != NULL)
        h[n++] = "Content-Type: application/json";
    if (idem != NULL) {
        snprintf(ik, sizeof ik, "Idempotency-Key: %s", idem);
        h[n++] = ik;
    }
    h[n] = NULL;
    e2e_use_key(s, key);
    e2e_request(s, method, path, h, body, r);
}

static char *new_job(e2e_server_t *s, const char *key, const char *body) {
    e2e_use_key(s, key);
    json_t *job = e2e_start_job(s, body);
    char *id = strdup(json_string_value(json_object_get(job, "id")));
    json_decref(job);
    return id;
}

static void wait_for(e2e_server_t *s, const char *id, const char *status) {
    e2e_use_key(s, ADMIN);
    json_decref(e2e_wait_status(s, id, status, 10000));
}

/* A job that waits for an answer: the offline recipe flow of tests/e2e/flows, which the servers
 * that post it load with --flows. */
static const char waiting_body[] =
    "{\"flow\": \"recipe\", \"shared\": {\"ingredient\": \"tofu\"},"
    " \"params\": {\"fetch_s\": 0, \"suggest_s\": 0}}";
static const char running_body[] = "{\"flow\": \"sleep\", \"shared\": {\"seconds\": 60}}";

static const char *status_of(e2e_server_t *s, const char *id) {
    static char status[32];
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    e2e_use_key(s, ADMIN);
    json_t *job = e2e_get_json(s, path);
    snprintf(status, sizeof status, "%s", json_string_value(json_object_get(job, "status")));
    json_decref(job);
    return status;
}

/* Whether some line of log holds both a and b. */
static int log_line_has(const char *log, const char *a, const char *b) {
    for (const char *p = strstr(log, a); p != NULL; p = strstr(p + 1, a)) {
        const char *start = p, *end = strchr(p, '\n');
        while (start > log && start[-1] != '\n')
            start--;
        const char *q = strstr(start, b);
        if (q != NULL && (end == NULL || q < end))
            return 1;
    }
    return 0;
}

/* ---- every role on every route ---- */

enum res { R_NONE, R_DONE, R_WAITING, R_RUNNING, R_NEW_FLOW, R_OLD_FLOW };

START_TEST(test_each_role_on_each_route) {
    e2e_server_t s;
    e2e_start(&s, "--keys", keys, "--grace", "1s", "--flows", "tests/e2e/flows", NULL);
    char *done = new_job(&s, SUBMIT_A, "{\"flow\": \"noop\"}");
    wait_for(&s, done, "succeeded");
    static const char *const callers[] = {NULL, WRONG, READ_A, SUBMIT_A, ADMIN};
    static const char *const caller_names[] = {"no key", "a wrong key", "read", "submit", "admin"};
    static const struct {
        const char *method, *path, *body;
        enum res res;
        long want[5]; /* no key, wrong key, read, submit, admin */
    } rows[] = {
        {"GET", "/healthz", NULL, R_NONE, {200, 200, 200, 200, 200}},
        {"GET", "/metrics", NULL, R_NONE, {401, 401, 403, 403, 200}},
        {"GET", "/v1/flows", NULL, R_NONE, {401, 401, 200, 200, 200}},
        {"GET", "/v1/flows/noop", NULL, R_NONE, {401, 401, 200, 200, 200}},
        {"PUT",
         "/v1/flows/%s",
         "{\"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}",
         R_NEW_FLOW,
         {401, 401, 403, 403, 201}},
        {"DELETE", "/v1/flows/%s", NULL, R_OLD_FLOW, {401, 401, 403, 403, 200}},
        {"POST", "/v1/jobs", "{\"flow\": \"noop\"}", R_NONE, {401, 401, 403, 202, 202}},
        {"GET", "/v1/jobs", NULL, R_NONE, {401, 401, 200, 200, 200}},
        {"GET", "/v1/jobs/counts", NULL, R_NONE, {401, 401, 200, 200, 200}},
        {"GET", "/v1/jobs/%s", NULL, R_DONE, {401, 401, 200, 200, 200}},
        {"HEAD", "/v1/jobs/%s", NULL, R_DONE, {401, 401, 200, 200, 200}},
        {"GET", "/v1/jobs/%s/shared", NULL, R_DONE, {401, 401, 200, 200, 200}},
        {"GET", "/v1/jobs/%s/history", NULL, R_DONE, {401, 401, 200, 200, 200}},
        {"GET", "/v1/jobs/%s/events", NULL, R_DONE, {401, 401, 200, 200, 200}},
        {"POST", "/v1/jobs/%s/input", "{\"value\": \"yes\"}", R_WAITING, {401, 401, 403, 202, 202}},
        {"POST", "/v1/jobs/%s/cancel", NULL, R_RUNNING, {401, 401, 403, 202, 202}},
    };
    int flows = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        for (size_t c = 0; c < 5; c++) {
            char arg[64] = "", path[128];
            switch (rows[i].res) {
            case R_DONE:
                snprintf(arg, sizeof arg, "%s", done);
                break;
            case R_WAITING:
            case R_RUNNING: {
                char *id =
                    new_job(&s, SUBMIT_A, rows[i].res == R_WAITING ? waiting_body : running_body);
                wait_for(&s, id, rows[i].res == R_WAITING ? "waiting" : "running");
                snprintf(arg, sizeof arg, "%s", id);
                free(id);
                break;
            }
            case R_NEW_FLOW:
                snprintf(arg, sizeof arg, "made-%d", ++flows);
                break;
            case R_OLD_FLOW: {
                e2e_resp_t put;
                snprintf(arg, sizeof arg, "doomed-%d", ++flows);
                snprintf(path, sizeof path, "/v1/flows/%s", arg);
                call(&s, ADMIN, "PUT", path,
                     "{\"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}", NULL, &put);
                ck_assert_int_eq(put.status, 201);
                e2e_resp_free(&put);
                break;
            }
            case R_NONE:
                break;
            }
            snprintf(path, sizeof path, rows[i].path, arg);
            e2e_resp_t r;
            call(&s, callers[c], rows[i].method, path, rows[i].body, NULL, &r);
            long want = rows[i].want[c];
            ck_assert_msg(r.status == want, "%s %s with %s: %ld, not %ld: %s", rows[i].method, path,
                          caller_names[c], r.status, want, r.body);
            if (want == 401 && strcmp(rows[i].method, "HEAD") != 0) {
                e2e_assert_error(&r, 401, "unauthorized", NULL);
                ck_assert_str_eq(r.www_authenticate,
                                 c == 0 ? "Bearer realm=\"flowd\""
                                        : "Bearer realm=\"flowd\", error=\"invalid_token\"");
            } else if (want == 403) {
                e2e_assert_error(&r, 403, "forbidden", caller_names[c]);
            }
            e2e_resp_free(&r);
            /* what was refused did not happen */
            if (want == 401 || want == 403) {
                if (rows[i].res == R_WAITING)
                    ck_assert_str_eq(status_of(&s, arg), "waiting");
                if (rows[i].res == R_RUNNING)
                    ck_assert_str_eq(status_of(&s, arg), "running");
                if (rows[i].res == R_NEW_FLOW || rows[i].res == R_OLD_FLOW) {
                    snprintf(path, sizeof path, "/v1/flows/%s", arg);
                    call(&s, READ_A, "GET", path, NULL, NULL, &r);
                    ck_assert_int_eq(r.status, rows[i].res == R_NEW_FLOW ? 404 : 200);
                    e2e_resp_free(&r);
                }
            }
        }
    }
    /* the log names the key that sent a request, never the key itself (request lines are written
     * every 100 ms: wait for the last one) */
    char *log = NULL;
    uint64_t deadline = e2e_now_ms() + e2e_ms(10000);
    do {
        free(log);
        usleep(20000);
        log = e2e_log(&s);
    } while (!(log_line_has(log, "info GET /v1/jobs 200 ", "us key=reader-a id=") &&
               log_line_has(log, "info PUT /v1/flows/made-", "us key=root id=") &&
               log_line_has(log, "info GET /v1/jobs 401 ", "us id=")) &&
             e2e_now_ms() < deadline);
    ck_assert_msg(log_line_has(log, "info GET /v1/jobs 200 ", "us key=reader-a id="), "%s", log);
    ck_assert_msg(log_line_has(log, "info PUT /v1/flows/made-", " 201 "), "%s", log);
    ck_assert_msg(log_line_has(log, "info PUT /v1/flows/made-", "us key=root id="), "%s", log);
    ck_assert_msg(log_line_has(log, "info GET /v1/jobs 401 ", "us id="), "%s", log);
    for (size_t k = 0; all_keys[k] != NULL; k += 4)
        ck_assert_msg(strstr(log, all_keys[k] + 3) == NULL, "the log shows a key: %s", log);
    free(log);
    free(done);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

/* ---- tenants ---- */

static void assert_hidden(e2e_server_t *s, const char *key, const char *method, const char *fmt,
                          const char *body, const char *id) {
    e2e_use_key(s, key);
    e2e_assert_hidden(s, method, fmt, body, id);
}

START_TEST(test_another_tenants_job_is_not_found) {
    e2e_server_t s;
    e2e_start(&s, "--keys", keys, "--grace", "1s", "--flows", "tests/e2e/flows", NULL);
    char *waiting = new_job(&s, SUBMIT_A, waiting_body);
    char *running = new_job(&s, SUBMIT_A, running_body);
    wait_for(&s, waiting, "waiting");
    wait_for(&s, running, "running");
    static const struct {
        const char *method, *fmt, *body;
    } routes[] = {
        {"GET", "/v1/jobs/%s", NULL},
        {"GET", "/v1/jobs/%s?wait=5", NULL},
        {"GET", "/v1/jobs/%s/shared", NULL},
        {"GET", "/v1/jobs/%s/shared?pointer=/ingredient", NULL},
        {"GET", "/v1/jobs/%s/history", NULL},
        {"GET", "/v1/jobs/%s/events", NULL},
        {"GET", "/v1/jobs/%s/graph.svg", NULL},
        {"POST", "/v1/jobs/%s/input", "{\"value\": \"yes\"}"},
        {"POST", "/v1/jobs/%s/cancel", NULL},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        int post = strcmp(routes[i].method, "POST") == 0;
        const char *others[] = {SUBMIT_B, post ? SUBMIT_D : READ_B, post ? SUBMIT_B : READ_D};
        for (size_t k = 0; k < 3; k++) {
            assert_hidden(&s, others[k], routes[i].method, routes[i].fmt, routes[i].body, waiting);
            assert_hidden(&s, others[k], routes[i].method, routes[i].fmt, routes[i].body, running);
        }
    }
    /* nothing of it took effect, and its own tenant and an admin see it */
    ck_assert_str_eq(status_of(&s, waiting), "waiting");
    ck_assert_str_eq(status_of(&s, running), "running");
    char path[128];
    e2e_use_key(&s, READ_A);
    e2e_assert_job(&s, waiting, "a", "waiting");
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?pointer=/ingredient", waiting);
    e2e_resp_t r;
    call(&s, READ_A, "GET", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "\"tofu\"\n");
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/input", waiting);
    call(&s, SUBMIT_A, "POST", path, "{\"value\": \"yes\"}", NULL, &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", running);
    call(&s, ADMIN, "POST", path, NULL, NULL, &r); /* an admin may cancel any tenant's job */
    ck_assert_int_eq(r.status, 202);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "canceled");
    e2e_resp_free(&r);
    free(waiting);
    free(running);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

/* The ids of a list page (as key), in its order, joined with spaces; *next its cursor or "". */
static void list_ids(e2e_server_t *s, const char *key, const char *query, char *out, size_t len,
                     char *next) {
    char path[256];
    snprintf(path, sizeof path, "/v1/jobs%s", query);
    e2e_use_key(s, key);
    json_t *page = e2e_get_json(s, path);
    size_t i;
    json_t *job;
    out[0] = '\0';
    json_array_foreach(json_object_get(page, "jobs"), i, job) {
        strncat(out, json_string_value(json_object_get(job, "id")), len - strlen(out) - 2);
        strncat(out, " ", len - strlen(out) - 1);
    }
    const char *c = json_string_value(json_object_get(page, "next_cursor"));
    if (next != NULL)
        snprintf(next, 32, "%s", c ? c : "");
    json_decref(page);
}

/* The first page of the list as key is exactly want (ids, each followed by a space). */
static void assert_list(e2e_server_t *s, const char *key, const char *query, const char *want) {
    char got[1024];
    list_ids(s, key, query, got, sizeof got, NULL);
    ck_assert_msg(strcmp(got, want) == 0, "GET /v1/jobs%s as %s: '%s', not '%s'", query, key, got,
                  want);
}

START_TEST(test_lists_show_the_callers_tenant) {
    e2e_server_t s;
    e2e_start(&s, "--keys", keys, NULL);
    char *a1 = new_job(&s, SUBMIT_A, "{\"flow\": \"noop\"}");
    char *b1 = new_job(&s, SUBMIT_B, "{\"flow\": \"noop\"}");
    char *a2 = new_job(&s, SUBMIT_A, "{\"flow\": \"noop\"}");
    char want[256], got[512], next[32];
    snprintf(want, sizeof want, "%s %s ", a2, a1);
    assert_list(&s, READ_A, "", want);
    assert_list(&s, SUBMIT_A, "?tenant=a", want);
    snprintf(want, sizeof want, "%s ", b1);
    assert_list(&s, READ_B, "?flow=noop", want);
    assert_list(&s, READ_D, "", "");
    /* a page at a time: the cursor walks the tenant's jobs only */
    list_ids(&s, READ_A, "?limit=1", got, sizeof got, next);
    snprintf(want, sizeof want, "%s ", a2);
    ck_assert_str_eq(got, want);
    char query[64];
    snprintf(query, sizeof query, "?limit=1&cursor=%s", next);
    list_ids(&s, READ_A, query, got, sizeof got, next);
    snprintf(want, sizeof want, "%s ", a1);
    ck_assert_str_eq(got, want);
    ck_assert_str_eq(next, "");
    /* an admin: every tenant, or one */
    snprintf(want, sizeof want, "%s %s %s ", a2, b1, a1);
    assert_list(&s, ADMIN, "", want);
    snprintf(want, sizeof want, "%s ", b1);
    assert_list(&s, ADMIN, "?tenant=b", want);
    assert_list(&s, ADMIN, "?tenant=nobody", "");
    e2e_resp_t r;
    call(&s, READ_A, "GET", "/v1/jobs?tenant=b", NULL, NULL, &r);
    e2e_assert_error(&r, 403, "forbidden", "tenant 'a'");
    e2e_resp_free(&r);
    call(&s, READ_A, "GET", "/v1/jobs?tenant=nobody", NULL, NULL, &r);
    e2e_assert_error(&r, 403, "forbidden", NULL);
    e2e_resp_free(&r);
    free(a1);
    free(a2);
    free(b1);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

/* GET /v1/jobs/counts as key (query after it) is exactly want: "queued running waiting succeeded
 * failed canceled". */
static void assert_counts(e2e_server_t *s, const char *key, const char *query, const char *want) {
    static const char *const names[] = {"queued",    "running", "waiting",
                                        "succeeded", "failed",  "canceled"};
    char path[128], got[128] = "";
    snprintf(path, sizeof path, "/v1/jobs/counts%s", query);
    e2e_use_key(s, key);
    json_t *body = e2e_get_json(s, path);
    json_t *c = json_object_get(body, "counts");
    ck_assert_uint_eq(json_object_size(c), 6);
    for (size_t i = 0; i < 6; i++) {
        json_t *v = json_object_get(c, names[i]);
        ck_assert_msg(json_is_integer(v), "%s: no %s", path, names[i]);
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? " " : "",
                 (long long)json_integer_value(v));
    }
    json_decref(body);
    ck_assert_msg(strcmp(got, want) == 0, "GET %s as %s: '%s', not '%s'", path, key, got, want);
}

/* The count by status is the list's: the caller's tenant, an admin's every tenant or one, by flow;
 * it follows a job's status, and a job that leaves the table (--max-finished) leaves the count. */
START_TEST(test_counts_show_the_callers_tenant) {
    e2e_server_t s;
    e2e_start(&s, "--keys", keys, "--max-finished", "3", NULL);
    char *a1 = new_job(&s, SUBMIT_A, "{\"flow\": \"noop\"}");
    char *b1 = new_job(&s, SUBMIT_B, "{\"flow\": \"noop\"}");
    char *a2 = new_job(&s, SUBMIT_A, running_body);
    wait_for(&s, a1, "succeeded");
    wait_for(&s, b1, "succeeded");
    wait_for(&s, a2, "running");
    assert_counts(&s, READ_A, "", "0 1 0 1 0 0");
    assert_counts(&s, SUBMIT_A, "?tenant=a&flow=noop", "0 0 0 1 0 0");
    assert_counts(&s, READ_A, "?flow=sleep", "0 1 0 0 0 0");
    assert_counts(&s, READ_A, "?flow=nothing", "0 0 0 0 0 0");
    assert_counts(&s, READ_B, "", "0 0 0 1 0 0");
    assert_counts(&s, READ_D, "", "0 0 0 0 0 0");
    assert_counts(&s, ADMIN, "", "0 1 0 2 0 0");
    assert_counts(&s, ADMIN, "?flow=noop", "0 0 0 2 0 0");
    assert_counts(&s, ADMIN, "?tenant=b", "0 0 0 1 0 0");
    assert_counts(&s, ADMIN, "?tenant=nobody", "0 0 0 0 0 0");
    e2e_resp_t r;
    call(&s, READ_A, "GET", "/v1/jobs/counts?tenant=b", NULL, NULL, &r);
    e2e_assert_error(&r, 403, "forbidden", "tenant 'a'");
    e2e_resp_free(&r);
    call(&s, READ_A, "GET", "/v1/jobs/counts?status=failed", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 400); /* the list's status filter is not one of its parameters */
    e2e_resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", a2);
    call(&s, SUBMIT_A, "POST", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    assert_counts(&s, READ_A, "", "0 0 0 1 0 1");
    /* two more finished jobs of tenant a: the oldest finished one (a1) leaves the table */
    for (int i = 0; i < 2; i++) {
        char *id = new_job(&s, SUBMIT_A, "{\"flow\": \"noop\"}");
        wait_for(&s, id, "succeeded");
        free(id);
    }
    char want[256];
    list_ids(&s, ADMIN, "?flow=noop", want, sizeof want, NULL);
    ck_assert_ptr_null(strstr(want, a1));
    ck_assert_ptr_null(strstr(want, b1));
    assert_counts(&s, ADMIN, "", "0 0 0 2 0 1");
    assert_counts(&s, READ_A, "?flow=noop", "0 0 0 2 0 0");
    assert_counts(&s, READ_B, "", "0 0 0 0 0 0");
    free(a1);
    free(a2);
    free(b1);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

static char *post_idem(e2e_server_t *s, const char *key, const char *idem, const char *body,
                       long want) {
    e2e_resp_t r;
    call(s, key, "POST", "/v1/jobs", body, idem, &r);
    ck_assert_msg(r.status == want, "POST %s as %s: %ld, not %ld: %s", idem, key, r.status, want,
                  r.body);
    char *id = r.status < 300 ? strdup(json_string_value(json_object_get(r.json, "id"))) : NULL;
    e2e_resp_free(&r);
    return id;
}

/* A repeat of POST /v1/jobs with this Idempotency-Key and body, as key: 200 and job id. */
static void assert_repeat(e2e_server_t *s, const char *key, const char *idem, const char *body,
                          const char *id) {
    char *again = post_idem(s, key, idem, body, 200);
    ck_assert_str_eq(again, id);
    free(again);
}

static const char body_x[] = "{\"flow\": \"noop\", \"shared\": {\"x\": 1}}";
static const char body_y[] = "{\"flow\": \"noop\", \"shared\": {\"y\": 2}}";

START_TEST(test_idempotency_keys_are_per_tenant) {
    e2e_server_t s;
    e2e_start(&s, "--keys", keys, NULL);
    char *a = post_idem(&s, SUBMIT_A, "order-1", body_x, 202);
    char *b =
        post_idem(&s, SUBMIT_B, "order-1", body_y, 202); /* another tenant's key of the same name */
    ck_assert_str_ne(a, b);
    assert_repeat(&s, SUBMIT_B, "order-1", body_y, b);
    assert_repeat(&s, SUBMIT_A, "order-1", body_x, a);
    post_idem(&s, SUBMIT_A, "order-1", body_y, 409);
    char *admin = post_idem(&s, ADMIN, "order-1", body_x, 202); /* the admin's own tenant, ops */
    ck_assert_str_ne(admin, a);
    free(admin);
    free(a);
    free(b);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

/* ---- reload ---- */

static int count(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* SIGHUP, then waits until the log has `needle` `times` times. */
static void hup_and_wait(e2e_server_t *s, const char *needle, int times) {
    ck_assert_int_eq(kill(s->pid, SIGHUP), 0);
    uint64_t deadline = e2e_now_ms() + e2e_ms(10000);
    for (;;) {
        char *log = e2e_log(s);
        int n = count(log, needle);
        if (n >= times) {
            free(log);
            return;
        }
        ck_assert_msg(e2e_now_ms() < deadline, "no '%s' (%d times) in the log after SIGHUP:\n%s",
                      needle, times, log);
        free(log);
        usleep(20000);
    }
}

static long status_as(e2e_server_t *s, const char *key, const char *method, const char *path,
                      const char *body) {
    e2e_resp_t r;
    call(s, key, method, path, body, NULL, &r);
    long st = r.status;
    e2e_resp_free(&r);
    return st;
}

START_TEST(test_keys_are_reloaded_on_sighup) {
    static const char *const admin_only[] = {ADMIN, "root", "admin", "ops", NULL};
    static const char *const with_new[] = {
        ADMIN,      "root",   "admin", "ops", "fk_the-new-one-0123456789",
        "newcomer", "submit", "c",     NULL};
    write_keys(admin_only);
    e2e_server_t s;
    e2e_start(&s, "--keys", keys, NULL);
    const char *newkey = "fk_the-new-one-0123456789";
    ck_assert_int_eq(status_as(&s, newkey, "GET", "/v1/jobs", NULL), 401);
    write_keys(with_new);
    hup_and_wait(&s, "keys: reloaded", 1);
    e2e_resp_t r;
    call(&s, newkey, "POST", "/v1/jobs", "{\"flow\": \"noop\"}", NULL, &r);
    ck_assert_int_eq(r.status, 202);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "tenant")), "c");
    e2e_resp_free(&r);
    /* removed: it stops working at once */
    write_keys(admin_only);
    hup_and_wait(&s, "keys: reloaded", 2);
    call(&s, newkey, "GET", "/v1/jobs", NULL, NULL, &r);
    e2e_assert_error(&r, 401, "unauthorized", NULL);
    ck_assert_str_eq(r.www_authenticate, "Bearer realm=\"flowd\", error=\"invalid_token\"");
    e2e_resp_free(&r);
    /* a broken file, or none: the keys from before stay, and the log says why, with the line */
    char text[256], line[512];
    e2e_key_line(ADMIN, "root", "admin", "ops", line, sizeof line);
    e2e_key_line(newkey, "newcomer", "superuser", "c", text, sizeof text);
    strncat(line, text, sizeof line - strlen(line) - 1);
    e2e_write_file(dir, "keys", line);
    char want[256];
    snprintf(want, sizeof want,
             "keys: not reloaded: %s:2: the role 'superuser' is not admin, submit or read", keys);
    hup_and_wait(&s, want, 1);
    ck_assert_int_eq(status_as(&s, ADMIN, "GET", "/v1/jobs", NULL), 200);
    ck_assert_int_eq(status_as(&s, newkey, "GET", "/v1/jobs", NULL), 401);
    ck_assert_int_eq(unlink(keys), 0);
    snprintf(want, sizeof want, "keys: not reloaded: cannot read the key file %s", keys);
    hup_and_wait(&s, want, 1);
    ck_assert_int_eq(status_as(&s, ADMIN, "GET", "/v1/jobs", NULL), 200);
    char *log = e2e_log(&s);
    ck_assert_msg(strstr(log, "the 1 key (1 admin, 0 submit, 0 read) from before stay") != NULL,
                  "%s", log);
    free(log);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

/* ---- running open ---- */

START_TEST(test_no_keys_is_open_only_on_loopback) {
    static const char *const binds[] = {"0.0.0.0", "::"};
    for (size_t i = 0; i < 2; i++) {
        /* refused before anything listens (or a store is opened) */
        const char *args[] = {"--bind", binds[i], "--port", "0", NULL};
        char *out = NULL;
        ck_assert_int_eq(e2e_run(args, &out), 1);
        char want[64];
        snprintf(want, sizeof want, "refusing to listen on %s without keys", binds[i]);
        ck_assert_msg(
            strstr(out, want) != NULL && strstr(out, "flowd key new --role admin") != NULL &&
                strstr(out, "--keys FILE (FLOWD_KEYS_FILE)") != NULL &&
                strstr(out, "--insecure-no-auth") != NULL && strstr(out, "listening on") == NULL,
            "%s", out);
        free(out);
    }
    const char *both[] = {"--insecure-no-auth", "--keys", keys, NULL};
    char *out = NULL;
    ck_assert_int_eq(e2e_run(both, &out), 2);
    ck_assert_msg(strstr(out, "--insecure-no-auth and --keys") != NULL, "%s", out);
    free(out);
    /* on a loopback address, open: it says so, and anyone may do anything, as tenant "default" */
    e2e_server_t s;
    e2e_start(&s, NULL);
    char *log = e2e_log(&s);
    ck_assert_msg(strstr(log, "keys: none (no --keys): open") != NULL &&
                      strstr(log, "only because 127.0.0.1 is a loopback address") != NULL,
                  "%s", log);
    free(log);
    ck_assert_int_eq(status_as(&s, NULL, "GET", "/metrics", NULL), 200);
    ck_assert_int_eq(status_as(&s, NULL, "PUT", "/v1/flows/open",
                               "{\"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}"),
                     201);
    e2e_resp_t r;
    call(&s, WRONG, "POST", "/v1/jobs", "{\"flow\": \"open\"}", NULL,
         &r); /* a key means nothing here */
    ck_assert_int_eq(r.status, 202);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "tenant")), "default");
    e2e_resp_free(&r);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_start(&s, "--insecure-no-auth", NULL);
    ck_assert_int_eq(status_as(&s, NULL, "GET", "/v1/jobs", NULL), 200);
    kill(s.pid, SIGHUP); /* nothing to reload: it says so and goes on */
    ck_assert_int_eq(status_as(&s, NULL, "GET", "/v1/jobs", NULL), 200);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    log = e2e_log(&s);
    ck_assert_msg(strstr(log, "SIGHUP: no key file (--keys) to reload") != NULL, "%s", log);
    free(log);
    e2e_cleanup(&s);
}
END_TEST

START_TEST(test_metrics_open) {
    e2e_server_t s;
    e2e_start(&s, "--keys", keys, "--metrics-open", NULL);
    e2e_resp_t r;
    call(&s, NULL, "GET", "/metrics", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "flowd_http_requests_total"));
    e2e_resp_free(&r);
    ck_assert_int_eq(status_as(&s, NULL, "GET", "/v1/jobs", NULL), 401);
    ck_assert_int_eq(status_as(&s, READ_A, "GET", "/metrics", NULL), 200);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_start(&s, "--keys", keys, NULL);
    ck_assert_int_eq(status_as(&s, NULL, "GET", "/metrics", NULL), 401);
    ck_assert_int_eq(status_as(&s, NULL, "GET", "/healthz", NULL), 200);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
}
END_TEST

/* ---- flowd key new ---- */

/* Runs flowd with args; its stdout and stderr (malloc'd) apart. The exit status. */
static int run_flowd(const char *const *args, char **out, char **err) {
    const char *argv[16];
    int argc = 0;
    const char *bin = getenv("FLOWD_BIN");
    argv[argc++] = bin && *bin ? bin : "build/flowd";
    for (size_t i = 0; args[i] != NULL && argc < 15; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    char paths[2][32] = {"/tmp/flowd-out-XXXXXX", "/tmp/flowd-err-XXXXXX"};
    int fds[2];
    for (int i = 0; i < 2; i++) {
        fds[i] = mkstemp(paths[i]);
        ck_assert_int_ge(fds[i], 0);
    }
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[0], 1);
        dup2(fds[1], 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    char **texts[2] = {out, err};
    for (int i = 0; i < 2; i++) {
        off_t size = lseek(fds[i], 0, SEEK_END);
        ck_assert_int_ge(size, 0);
        *texts[i] = calloc(1, (size_t)size + 1);
        ck_assert_int_eq(pread(fds[i], *texts[i], (size_t)size, 0), size);
        close(fds[i]);
        unlink(paths[i]);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_flowd_key_new) {
    const char *args[] = {"key", "new", "--name", "ci", "--role", "submit", "--tenant=t1", NULL};
    char *out, *err;
    ck_assert_int_eq(run_flowd(args, &out, &err), 0);
    char key[128], line[512], want[256];
    ck_assert_int_eq(sscanf(out, "%127s", key), 1);
    ck_assert_uint_eq(strlen(key), 46);
    ck_assert_msg(
        strncmp(key, "fk_", 3) == 0 &&
            strspn(key + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
                43,
        "%s", key);
    e2e_key_line(key, "ci", "submit", "t1", want, sizeof want);
    snprintf(line, sizeof line, "%s\n%s", key, want);
    ck_assert_str_eq(out, line); /* the key, then its line for the key file: nothing else */
    ck_assert_msg(strstr(err, "cannot be shown again") != NULL && strstr(err, "SIGHUP") != NULL,
                  "%s", err);
    free(err);
    /* the line works in a key file, and the key with it */
    e2e_write_file(dir, "keys", want);
    e2e_server_t s;
    e2e_start(&s, "--keys", keys, NULL);
    e2e_resp_t r;
    call(&s, key, "POST", "/v1/jobs", "{\"flow\": \"noop\"}", NULL, &r);
    ck_assert_int_eq(r.status, 202);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "tenant")), "t1");
    e2e_resp_free(&r);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    char *log = e2e_log(&s);
    ck_assert_msg(log_line_has(log, "POST /v1/jobs 202 ", " key=ci id="), "%s", log);
    ck_assert_msg(strstr(log, key) == NULL, "the log shows the key: %s", log);
    free(log);
    e2e_cleanup(&s);
    /* another key every time; defaults: read, tenant default, a name from the hash */
    const char *plain[] = {"key", "new", NULL};
    char *out2;
    ck_assert_int_eq(run_flowd(plain, &out2, &err), 0);
    ck_assert_str_ne(out, out2);
    char *second = strchr(out2, '\n') + 1;
    char hash[65], name[64], role[16], tenant[64];
    ck_assert_int_eq(sscanf(second, "%64s %63s %15s %63s", hash, name, role, tenant), 4);
    ck_assert_str_eq(role, "read");
    ck_assert_str_eq(tenant, "default");
    ck_assert(strncmp(name, "key-", 4) == 0 && strncmp(name + 4, hash, 8) == 0);
    free(out);
    free(out2);
    free(err);
    static const char *const bad[][6] = {{"key", "new", "--role", "root", NULL},
                                         {"key", "new", "--tenant", "a b", NULL},
                                         {"key", "new", "--bogus", NULL},
                                         {"key", "new", "--name", NULL},
                                         {"key", "old", NULL},
                                         {"key", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(run_flowd(bad[i], &out, &err), 2);
        ck_assert_str_eq(out, "");
        ck_assert_msg(strstr(err, "flowd key") != NULL, "%s", err);
        free(out);
        free(err);
    }
}
END_TEST

/* ---- tenants in the SQLite store ---- */

START_TEST(test_tenants_are_kept_across_a_restart) {
    e2e_server_t s;
    e2e_start(&s, "--keys", keys, "--store", store, "--flows", "tests/e2e/flows", NULL);
    char *a = new_job(&s, SUBMIT_A, waiting_body);
    wait_for(&s, a, "waiting");
    char *ai = post_idem(&s, SUBMIT_A, "order-1", body_x, 202);
    char *bi = post_idem(&s, SUBMIT_B, "order-1", body_y, 202);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    e2e_start(&s, "--keys", keys, "--store", store, "--flows", "tests/e2e/flows", NULL);
    assert_hidden(&s, READ_B, "GET", "/v1/jobs/%s", NULL, a);
    assert_hidden(&s, SUBMIT_B, "POST", "/v1/jobs/%s/input", "{\"value\": \"yes\"}", a);
    assert_hidden(&s, READ_B, "GET", "/v1/jobs/%s", NULL, ai);
    char path[96], want[256];
    e2e_use_key(&s, READ_A);
    e2e_assert_job(&s, a, "a", "waiting");
    snprintf(want, sizeof want, "%s ", bi);
    assert_list(&s, READ_B, "", want);
    assert_repeat(&s, SUBMIT_A, "order-1", body_x, ai);
    assert_repeat(&s, SUBMIT_B, "order-1", body_y, bi);
    snprintf(path, sizeof path, "/v1/jobs/%s/input", a);
    ck_assert_int_eq(status_as(&s, SUBMIT_A, "POST", path, "{\"value\": \"yes\"}"), 202);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    free(a);
    free(ai);
    free(bi);
}
END_TEST

/* A file of schema version 2 (before tenants): its jobs become tenant "default"'s, and so does an
 * Idempotency-Key it remembers. */
#define NOW_US "unixepoch('now') * 1000000"
static const char schema_v2[] =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "INSERT INTO meta VALUES ('schema_version', '2');"
    "CREATE TABLE jobs ("
    " seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, flow TEXT NOT NULL, digest TEXT,"
    " status TEXT NOT NULL DEFAULT 'queued', created_us INTEGER NOT NULL,"
    " started_us INTEGER NOT NULL DEFAULT 0, finished_us INTEGER NOT NULL DEFAULT 0,"
    " idem_key TEXT UNIQUE, body_hash INTEGER NOT NULL DEFAULT 0,"
    " params TEXT, shared TEXT NOT NULL, resume_node TEXT, tries INTEGER NOT NULL DEFAULT 0,"
    " steps INTEGER NOT NULL DEFAULT 0, last_action TEXT, waiting_for TEXT, error_code TEXT,"
    " error_message TEXT, error_node TEXT, totals TEXT);"
    "CREATE TABLE steps (job INTEGER NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,"
    " PRIMARY KEY (job, seq)) WITHOUT ROWID;"
    "CREATE TABLE flow_versions (digest TEXT PRIMARY KEY, document TEXT NOT NULL);"
    "CREATE TABLE flows (name TEXT PRIMARY KEY, document TEXT, updated_us INTEGER NOT NULL);"
    "INSERT INTO jobs (seq, id, flow, status, created_us, started_us, finished_us, idem_key,"
    " body_hash, shared, steps, last_action, totals)"
    " VALUES (1, '00000000000000000000000000000001', 'noop', 'succeeded', " NOW_US
    ","
    " " NOW_US ", " NOW_US ", 'old-key', ?, '{\"x\": 1}', 1, 'default',"
    " '{\"steps\": 1, \"failed\": 0, \"retries\": 0, \"dropped\": 0}');"
    "INSERT INTO steps VALUES (1, 1, '{\"node\": \"noop\", \"action\": \"default\"}');";

/* flowd_hash_bytes: 64-bit FNV-1a of a request body, which a remembered Idempotency-Key keeps. */
static uint64_t fnv1a(const char *s) {
    uint64_t h = 14695981039346656037u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

START_TEST(test_a_version_2_file_is_migrated_to_tenants) {
    char path[160];
    snprintf(path, sizeof path, "%s/flowd.db", dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    const char *sql = schema_v2;
    while (*sql != '\0') { /* statement by statement: one of them binds the body's hash */
        sqlite3_stmt *st = NULL;
        const char *tail = NULL;
        ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, &tail) == SQLITE_OK, "%s",
                      sqlite3_errmsg(db));
        if (st != NULL && sqlite3_bind_parameter_count(st) == 1)
            sqlite3_bind_int64(st, 1, (sqlite3_int64)fnv1a(body_x));
        ck_assert_msg(st == NULL || sqlite3_step(st) == SQLITE_DONE, "%s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        sql = tail;
    }
    sqlite3_close(db);
    e2e_server_t s;
    e2e_start(&s, "--keys", keys, "--store", store, NULL);
    const char *old = "00000000000000000000000000000001";
    assert_hidden(&s, READ_A, "GET", "/v1/jobs/%s", NULL, old);
    e2e_use_key(&s, READ_D);
    e2e_assert_job(&s, old, "default", "succeeded");
    assert_list(&s, ADMIN, "?tenant=default", "00000000000000000000000000000001 ");
    /* the key it remembers is tenant default's: a repeat there is the old job, elsewhere new */
    assert_repeat(&s, SUBMIT_D, "old-key", body_x, old);
    post_idem(&s, SUBMIT_D, "old-key", body_y, 409);
    char *fresh = post_idem(&s, SUBMIT_A, "old-key", body_x, 202);
    ck_assert_str_ne(fresh, old);
    free(fresh);
    ck_assert_int_eq(e2e_stop(&s, 10000), 0);
    e2e_cleanup(&s);
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(
        sqlite3_prepare_v2(db,
                           "SELECT (SELECT count(*) FROM jobs WHERE tenant = 'default'),"
                           " (SELECT count(*) FROM jobs WHERE tenant = 'a'),"
                           " (SELECT count(*) FROM schedules)",
                           -1, &st, NULL),
        SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 2), 0);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 1);
    ck_assert_int_eq(sqlite3_column_int(st, 1), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* and on to callbacks (4), schedules (5), queueing (6), stores and redrives (7), files (8),
     * visits (9), traceparents (10) */
    e2e_assert_sqlite_current(path);
}
END_TEST

static Suite *auth_suite(void) {
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("auth");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_each_role_on_each_route);
    tcase_add_test(tc, test_another_tenants_job_is_not_found);
    tcase_add_test(tc, test_lists_show_the_callers_tenant);
    tcase_add_test(tc, test_counts_show_the_callers_tenant);
    tcase_add_test(tc, test_idempotency_keys_are_per_tenant);
    tcase_add_test(tc, test_keys_are_reloaded_on_sighup);
    tcase_add_test(tc, test_no_keys_is_open_only_on_loopback);
    tcase_add_test(tc, test_metrics_open);
    tcase_add_test(tc, test_flowd_key_new);
    tcase_add_test(tc, test_tenants_are_kept_across_a_restart);
    tcase_add_test(tc, test_a_version_2_file_is_migrated_to_tenants);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(auth_suite());
}
