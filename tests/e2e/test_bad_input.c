/* test_bad_input.c: every kind of bad request gets the right status and a JSON error body that
 * names the problem, and the server goes on serving. One case per row of the table: a request and
 * the answer it must get (status, error code, words the message must hold). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e/e2e.h"

#define JSON "Content-Type: application/json"
#define UNKNOWN_ID "0123456789abcdef0123456789abcdef"

typedef struct bad_case {
    const char *name;
    const char *method;
    const char *path;
    const char *headers[3];
    const char *body;
    long status;
    const char *code;   /* NULL: the answer is not an error */
    const char *words;  /* in the message */
    const char *allow;  /* 405: the Allow header */
} bad_case_t;

static const bad_case_t cases[] = {
    {"malformed JSON", "POST", "/v1/jobs", {JSON}, "{\"flow\": \"noop\",", 400, "invalid_json",
     "invalid JSON at line 1, column", NULL},
    {"empty body", "POST", "/v1/jobs", {JSON}, "", 400, "invalid_json", "empty", NULL},
    {"body not an object", "POST", "/v1/jobs", {JSON}, "[1, 2]", 400, "bad_request",
     "must be a JSON object", NULL},
    {"flow not a string", "POST", "/v1/jobs", {JSON}, "{\"flow\": 7}", 400, "bad_request",
     "field 'flow' must be a string, not a number", NULL},
    {"shared not an object", "POST", "/v1/jobs", {JSON}, "{\"flow\": \"noop\", \"shared\": []}", 400,
     "bad_request", "field 'shared' must be an object, not an array", NULL},
    {"params not an object", "POST", "/v1/jobs", {JSON}, "{\"flow\": \"noop\", \"params\": \"x\"}", 400,
     "bad_request", "field 'params' must be an object, not a string", NULL},
    {"missing flow", "POST", "/v1/jobs", {JSON}, "{\"shared\": {}}", 400, "bad_request",
     "missing field 'flow'", NULL},
    {"unknown field", "POST", "/v1/jobs", {JSON}, "{\"flow\": \"noop\", \"shraed\": {}}", 400,
     "bad_request", "unknown field 'shraed'", NULL},
    {"duplicate key", "POST", "/v1/jobs", {JSON}, "{\"flow\": \"noop\", \"flow\": \"sleep\"}", 400,
     "invalid_json", "duplicate", NULL},
    {"unknown flow", "POST", "/v1/jobs", {JSON}, "{\"flow\": \"nope\"}", 404, "unknown_flow",
     "no flow named 'nope'", NULL},
    {"wrong content type", "POST", "/v1/jobs", {"Content-Type: text/plain"}, "{\"flow\": \"noop\"}", 415,
     "unsupported_media_type", "'text/plain'", NULL},
    {"no content type", "POST", "/v1/jobs", {"Content-Type:"}, "{\"flow\": \"noop\"}", 415,
     "unsupported_media_type", "application/json", NULL},
    {"content type with a charset", "POST", "/v1/jobs", {"Content-Type: application/json; charset=utf-8"},
     "{\"flow\": \"noop\"}", 202, NULL, NULL, NULL},
    {"body over --max-body", "POST", "/v1/jobs", {JSON}, "@big", 413, "payload_too_large", "--max-body", NULL},
    {"chunked body over --max-body", "POST", "/v1/jobs", {JSON, "Transfer-Encoding: chunked"}, "@big", 413,
     "payload_too_large", "--max-body", NULL},
    {"headers over --max-header", "GET", "/healthz", {"@bigheader"}, NULL, 431, "header_too_large",
     "--max-header", NULL},
    {"unknown job", "GET", "/v1/jobs/" UNKNOWN_ID, {NULL}, NULL, 404, "not_found", UNKNOWN_ID, NULL},
    {"malformed job id", "GET", "/v1/jobs/xyz/shared", {NULL}, NULL, 404, "not_found", "'xyz'", NULL},
    {"limit=0", "GET", "/v1/jobs?limit=0", {NULL}, NULL, 400, "bad_request", "limit", NULL},
    {"limit=abc", "GET", "/v1/jobs?limit=abc", {NULL}, NULL, 400, "bad_request", "'abc'", NULL},
    {"limit=1001", "GET", "/v1/jobs?limit=1001", {NULL}, NULL, 400, "bad_request", "1 to 1000", NULL},
    {"status=bogus", "GET", "/v1/jobs?status=bogus", {NULL}, NULL, 400, "bad_request", "'bogus'", NULL},
    {"bad cursor", "GET", "/v1/jobs?cursor=zz", {NULL}, NULL, 400, "bad_request", "cursor", NULL},
    {"unknown query parameter", "GET", "/v1/jobs?limt=5", {NULL}, NULL, 400, "bad_request", "'limt'", NULL},
    {"repeated query parameter", "GET", "/v1/jobs?limit=1&limit=2", {NULL}, NULL, 400, "bad_request",
     "twice", NULL},
    {"wait=-1", "GET", "/v1/jobs/" UNKNOWN_ID "?wait=-1", {NULL}, NULL, 400, "bad_request", "wait", NULL},
    {"wait=301", "GET", "/v1/jobs/" UNKNOWN_ID "?wait=301", {NULL}, NULL, 400, "bad_request", "0 to 300", NULL},
    {"wait=0x10", "GET", "/v1/jobs/" UNKNOWN_ID "?wait=0x10", {NULL}, NULL, 400, "bad_request", "'0x10'", NULL},
    {"deeply nested body", "POST", "/v1/jobs", {JSON}, "@deep", 400, "invalid_json", "depth", NULL},
    {"wait=soon", "GET", "/v1/jobs/" UNKNOWN_ID "?wait=soon", {NULL}, NULL, 400, "bad_request", "'soon'", NULL},
    {"bad Last-Event-ID", "GET", "/v1/jobs/" UNKNOWN_ID "/events", {"Last-Event-ID: x"}, NULL, 400,
     "bad_request", "Last-Event-ID", NULL},
    {"Idempotency-Key too long", "POST", "/v1/jobs", {JSON, "@bigkey"}, "{\"flow\": \"noop\"}", 400,
     "bad_request", "Idempotency-Key", NULL},
    {"input not an object", "POST", "/v1/jobs/" UNKNOWN_ID "/input", {JSON}, "\"yes\"", 400, "bad_request",
     "not a string", NULL},
    {"input malformed", "POST", "/v1/jobs/" UNKNOWN_ID "/input", {JSON}, "{value: yes}", 400,
     "invalid_json", "line 1", NULL},
    {"unknown route", "GET", "/v2/jobs", {NULL}, NULL, 404, "not_found", "no route GET /v2/jobs", NULL},
    {"trailing slash", "GET", "/v1/jobs/", {NULL}, NULL, 404, "not_found", "no route", NULL},
    {"wrong method on /v1/jobs", "DELETE", "/v1/jobs", {NULL}, NULL, 405, "method_not_allowed", "DELETE",
     "GET, HEAD, POST"},
    {"wrong method on cancel", "GET", "/v1/jobs/" UNKNOWN_ID "/cancel", {NULL}, NULL, 405,
     "method_not_allowed", "/v1/jobs/{id}/cancel", "POST"},
    {"wrong method on healthz", "POST", "/healthz", {JSON}, "{}", 405, "method_not_allowed", "POST",
     "GET, HEAD"},
};

#define NCASES (sizeof cases / sizeof cases[0])

static e2e_server_t srv;

static void setup(void) {
    e2e_start(&srv, "--max-body", "64KiB", "--max-header", "4KiB", NULL);
}

static void teardown(void) {
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
}

/* "@big" and friends stand for texts too long to write out. */
static char *expand(const char *s) {
    if (s == NULL)
        return NULL;
    if (strcmp(s, "@big") == 0) { /* over --max-body 64KiB */
        size_t n = 70 * 1024;
        char *b = malloc(n + 1);
        memset(b, ' ', n);
        memcpy(b, "{\"flow\": \"noop\", \"shared\": {}}", 30);
        b[n] = '\0';
        return b;
    }
    if (strcmp(s, "@deep") == 0) { /* deeper than jansson parses (2048) */
        char *b = malloc(20 * 1024 + 64);
        int off = snprintf(b, 64, "{\"flow\": \"noop\", \"shared\": {\"a\": ");
        memset(b + off, '[', 20 * 1024);
        b[off + 20 * 1024] = '\0';
        return b;
    }
    if (strcmp(s, "@bigheader") == 0 || strcmp(s, "@bigkey") == 0) {
        int key = strcmp(s, "@bigkey") == 0;
        size_t n = key ? 300 : 5000;
        char *b = malloc(n + 32);
        int off = snprintf(b, 32, "%s", key ? "Idempotency-Key: " : "X-Big: ");
        memset(b + off, 'k', n);
        b[off + n] = '\0';
        return b;
    }
    return strdup(s);
}

START_TEST(test_bad_request) {
    const bad_case_t *c = &cases[_i];
    char *headers[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 2 && c->headers[k] != NULL; k++)
        headers[k] = expand(c->headers[k]);
    char *body = expand(c->body);
    e2e_resp_t r;
    e2e_request(&srv, c->method, c->path, (const char *const *)headers, body, &r);
    if (c->code != NULL) {
        e2e_assert_error(&r, c->status, c->code, c->words);
    } else {
        ck_assert_msg(r.status == c->status, "%s: want %ld, got %ld: %s", c->name, c->status, r.status,
                      r.body);
    }
    if (c->allow != NULL)
        ck_assert_str_eq(r.allow, c->allow);
    e2e_resp_free(&r);
    /* and the server keeps serving */
    e2e_request(&srv, "GET", "/healthz", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
    free(body);
    for (int k = 0; k < 2; k++)
        free(headers[k]);
}
END_TEST

/* Bytes that are not HTTP, a request cut short, a request line of garbage, all at once: each
 * connection is answered by MHD itself (what is not HTTP gets no JSON) or dropped, at the latest
 * by the idle timeout, and the server goes on. */
START_TEST(test_garbage_does_not_stop_the_server) {
    static const char *const junk[] = {
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS hello */
        "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        "\x00\x01\x02\r\n\r\n",
        "GET /v1/jobs/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{", /* cut short */
    };
    enum { N = sizeof junk / sizeof junk[0] };
    int fds[N];
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
    e2e_start(&srv, "--idle-timeout", "1", NULL);
    for (size_t i = 0; i < N; i++) {
        fds[i] = e2e_connect(&srv);
        size_t len = i == 3 ? 7 : strlen(junk[i]);
        ck_assert_int_eq(write(fds[i], junk[i], len), (ssize_t)len);
    }
    e2e_resp_t r;
    e2e_request(&srv, "GET", "/healthz", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
    for (size_t i = 0; i < N; i++) {
        ck_assert_msg(e2e_closed_within(fds[i], 5000), "junk %zu: the connection stays open", i);
        close(fds[i]);
    }
    e2e_request(&srv, "GET", "/healthz", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
}
END_TEST

static Suite *bad_input_suite(void) {
    Suite *s = suite_create("bad_input");
    TCase *tc = tcase_create("bad_input");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_bad_request, 0, NCASES);
    tcase_add_test(tc, test_garbage_does_not_stop_the_server);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(bad_input_suite());
}
