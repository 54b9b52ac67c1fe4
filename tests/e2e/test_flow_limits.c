/* test_flow_limits.c: what the flows of a server may be: names from one alphabet (in PUT paths,
 * however they are escaped, in documents and in --flows files), how many (--max-flows), how large
 * (--max-flow-size), and GET /v1/flows in pages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e/e2e.h"

static e2e_server_t srv;
static char dir[64];
static const char *const json_ct[] = {"Content-Type: application/json", NULL};
static const char noop_doc[] = "{\"start\": \"n\", \"nodes\": {\"n\": {\"type\": \"noop\"}}}";

static void setup(void) {
    e2e_tmpdir(dir, sizeof dir, "flowd-flimits");
}

static void teardown(void) {
    e2e_rmtree(dir);
}

static void stop(void) {
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
}

/* PUT target with body as raw bytes (the path as it is, no client tidying it up); the answer. */
static char *raw_put(const char *target, const char *body) {
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "PUT %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     target, strlen(body), body);
    return e2e_raw(&srv, req, (size_t)n, 5000);
}

static long status_of(const char *answer) {
    long status = 0;
    ck_assert_msg(sscanf(answer, "HTTP/1.1 %ld", &status) == 1, "not an answer: %s", answer);
    return status;
}

/* A NUL does not cut a name short, dots cannot make "." or "..", and whatever is outside the
 * alphabet gets 400 naming it; nothing of it is registered. */
START_TEST(test_flow_names_have_one_alphabet) {
    e2e_start(&srv, NULL);
    static const char *const bad[] = {
        "/v1/flows/ab%00cd",
        "/v1/flows/%2e%2e",
        "/v1/flows/%2E",
        "/v1/flows/..",
        "/v1/flows/-x",
        "/v1/flows/_x",
        "/v1/flows/.hidden",
        "/v1/flows/a%20b",
        "/v1/flows/a%2Fb",
        "/v1/flows/caf%C3%A9",
        "/v1/flows/x1234567890123456789012345678901234567890123456789012345678901234"}; /* 65 */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *answer = raw_put(bad[i], noop_doc);
        long status = status_of(answer);
        /* "/v1/flows/a%2Fb" decodes to a path of two segments: no route (404) */
        ck_assert_msg(status == (strstr(bad[i], "%2F") ? 404 : 400), "%s: %s", bad[i], answer);
        if (status == 400)
            ck_assert_msg(
                strstr(answer, "letters, digits, '.', '_' or '-', the first a letter or a digit"),
                "%s", answer);
        free(answer);
    }
    ck_assert_int_eq(e2e_get_status(&srv, "/v1/flows/ab"), 404);
    json_t *list = e2e_get_json(&srv, "/v1/flows");
    size_t i;
    json_t *flow;
    json_array_foreach(json_object_get(list, "flows"), i, flow) {
        const char *name = json_string_value(json_object_get(flow, "name"));
        ck_assert_msg(strcmp(name, "noop") == 0 || strcmp(name, "sleep") == 0,
                      "%s was registered", name);
    }
    json_decref(list);
    /* the whole alphabet, at its longest */
    char *answer = raw_put(
        "/v1/flows/Az09._-x1234567x1234567x1234567x1234567x1234567x1234567x1234567x", noop_doc);
    ck_assert_msg(status_of(answer) == 201, "%s", answer);
    free(answer);
    /* a document named otherwise than its URL is refused */
    e2e_resp_t r;
    e2e_request(&srv, "PUT", "/v1/flows/x", json_ct,
                "{\"name\": \"..\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}",
                &r);
    e2e_assert_error(&r, 422, "invalid_flow", NULL);
    e2e_resp_free(&r);
    stop();
}
END_TEST

/* A --flows file is NAME.json with a name of the same alphabet; another stops the start. */
START_TEST(test_flow_files_have_the_same_alphabet) {
    char flows[128];
    snprintf(flows, sizeof flows, "%s/flows", dir);
    ck_assert_int_eq(mkdir(flows, 0755), 0);
    e2e_write_file(
        flows, "good.json",
        "{\"name\": \"good\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}");
    e2e_write_file(
        flows, "bad name.json",
        "{\"name\": \"bad\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}");
    char *out = NULL;
    const char *args[] = {"--flows", flows, NULL};
    ck_assert_int_eq(e2e_run(args, &out), 1);
    ck_assert_msg(strstr(out, "bad name.json: a flow file is NAME.json") != NULL, "%s", out);
    free(out);
    /* and so does the name inside */
    char path[192];
    snprintf(path, sizeof path, "%s/bad name.json", flows);
    ck_assert_int_eq(unlink(path), 0);
    e2e_write_file(
        flows, "dots.json",
        "{\"name\": \"..\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}");
    ck_assert_int_eq(e2e_run(args, &out), 1);
    ck_assert_msg(
        strstr(out,
               "/name: name is 1 to 64 letters, digits, '.', '_' or '-', the first a letter") !=
            NULL,
        "%s", out);
    free(out);
}
END_TEST

static void put(const char *name, const char *doc, long status, const char *code) {
    char path[128];
    e2e_resp_t r;
    snprintf(path, sizeof path, "/v1/flows/%s", name);
    e2e_request(&srv, "PUT", path, json_ct, doc, &r);
    if (code != NULL)
        e2e_assert_error(&r, status, code, NULL);
    ck_assert_msg(r.status == status, "PUT %s: %ld %s", name, r.status, r.body);
    e2e_resp_free(&r);
}

/* A server holds --max-flows flows, compiled-in ones counted; a replacement takes no room. */
START_TEST(test_flows_are_counted) {
    e2e_start(&srv, "--max-flows", "4", NULL); /* noop and sleep are two */
    put("a", noop_doc, 201, NULL);
    put("b", noop_doc, 201, NULL);
    e2e_resp_t r;
    e2e_request(&srv, "PUT", "/v1/flows/c", json_ct, noop_doc, &r);
    e2e_assert_error(&r, 409, "too_many_flows", "--max-flows");
    e2e_resp_free(&r);
    put("a", noop_doc, 200, NULL); /* replaced */
    e2e_request(&srv, "DELETE", "/v1/flows/b", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
    put("c", noop_doc, 201, NULL);
    stop();
}
END_TEST

/* A flow document is at most --max-flow-size, from a PUT or from --flows. */
START_TEST(test_flow_documents_are_capped) {
    char doc[4096];
    int n = snprintf(doc, sizeof doc, "{\"start\": \"a\", \"description\": \"");
    memset(doc + n, 'd', 3000);
    snprintf(doc + n + 3000, sizeof doc - (size_t)n - 3000,
             "\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}");
    e2e_start(&srv, "--max-flow-size", "2KiB", NULL);
    e2e_resp_t r;
    e2e_request(&srv, "PUT", "/v1/flows/long", json_ct, doc, &r);
    e2e_assert_error(&r, 413, "payload_too_large", "--max-flow-size");
    e2e_resp_free(&r);
    put("short", noop_doc, 201, NULL);
    stop();
    char flows[128], named[4200];
    snprintf(flows, sizeof flows, "%s/flows", dir);
    ck_assert_int_eq(mkdir(flows, 0755), 0);
    snprintf(named, sizeof named, "{\"name\": \"long\", %s", doc + 1);
    e2e_write_file(flows, "long.json", named);
    char *out = NULL;
    const char *args[] = {"--flows", flows, "--max-flow-size", "2KiB", NULL};
    ck_assert_int_eq(e2e_run(args, &out), 1);
    ck_assert_msg(strstr(out, "a flow document or its code is at most 2048 bytes (--max-flow-size)") != NULL,
                  "%s", out);
    free(out);
}
END_TEST

/* GET /v1/flows comes in pages, by name, as jobs do: limit, cursor, next_cursor. */
START_TEST(test_flows_are_listed_in_pages) {
    e2e_start(&srv, NULL);
    static const char *const names[] = {"f1", "f2", "f3", "f4", "f5", "f6", "f7"};
    for (size_t i = 0; i < 7; i++)
        put(names[i], noop_doc, 201, NULL);
    char path[128] = "/v1/flows?limit=3";
    json_t *seen = json_array();
    for (int pages = 0;; pages++) {
        ck_assert_int_lt(pages, 10);
        json_t *page = e2e_get_json(&srv, path);
        json_t *flows = json_object_get(page, "flows");
        ck_assert_uint_le(json_array_size(flows), 3);
        size_t i;
        json_t *flow;
        json_array_foreach(flows, i, flow) json_array_append(seen, json_object_get(flow, "name"));
        json_t *next = json_object_get(page, "next_cursor");
        ck_assert_msg(next != NULL, "no next_cursor");
        if (json_is_null(next)) {
            json_decref(page);
            break;
        }
        snprintf(path, sizeof path, "/v1/flows?limit=3&cursor=%s", json_string_value(next));
        json_decref(page);
    }
    /* every flow once, in order: f1..f7, noop, sleep */
    static const char *const want[] = {"f1", "f2", "f3", "f4", "f5", "f6", "f7", "noop", "sleep"};
    ck_assert_uint_eq(json_array_size(seen), 9);
    for (size_t i = 0; i < 9; i++)
        ck_assert_str_eq(json_string_value(json_array_get(seen, i)), want[i]);
    json_decref(seen);
    e2e_resp_t r;
    e2e_request(&srv, "GET", "/v1/flows?cursor=..", NULL, NULL, &r);
    e2e_assert_error(&r, 400, "bad_request", "cursor");
    e2e_resp_free(&r);
    e2e_request(&srv, "GET", "/v1/flows?limit=0", NULL, NULL, &r);
    e2e_assert_error(&r, 400, "bad_request", "limit");
    e2e_resp_free(&r);
    stop();
}
END_TEST

static Suite *flow_limits_suite(void) {
    Suite *s = suite_create("flow_limits");
    TCase *tc = tcase_create("flow_limits");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_flow_names_have_one_alphabet);
    tcase_add_test(tc, test_flow_files_have_the_same_alphabet);
    tcase_add_test(tc, test_flows_are_counted);
    tcase_add_test(tc, test_flow_documents_are_capped);
    tcase_add_test(tc, test_flows_are_listed_in_pages);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(flow_limits_suite());
}
