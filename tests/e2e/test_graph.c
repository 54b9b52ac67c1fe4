/* test_graph.c: GET /v1/flows/{name}/graph.svg and GET /v1/jobs/{id}/graph.svg over HTTP: the
 * recipe flow's graph, the graph of a recipe job waiting for its answer and after a "no", a failed
 * job's graph with the error at its node (markup in the message stays text), sub-flows, ETags and
 * 304, 404s, and the --max-graph bound. */
#include <stdio.h>
#include <string.h>

#include "e2e/e2e.h"

static e2e_server_t srv;
static const char *const json_ct[] = {"Content-Type: application/json", NULL};

static void setup(void) {
    /* recipe: 4 nodes and 4 edges; "big" below: 8 nodes and 7 edges */
    e2e_start(&srv, "--flows", "tests/e2e/flows", "--max-graph", "12", NULL);
}

static void teardown(void) {
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
}

static void has(const e2e_resp_t *r, const char *text) {
    ck_assert_msg(r->body != NULL && strstr(r->body, text) != NULL, "no %s in %s", text,
                  r->body ? r->body : "(none)");
}

static void get_svg(const char *path, const char *if_none_match, e2e_resp_t *r) {
    char h[96];
    snprintf(h, sizeof h, "If-None-Match: %s", if_none_match ? if_none_match : "");
    const char *const headers[] = {h, NULL};
    e2e_request(&srv, "GET", path, if_none_match ? headers : NULL, NULL, r);
    if (r->status == 200) {
        ck_assert_str_eq(r->content_type, "image/svg+xml");
        has(r, "<svg");
        has(r, "</svg>");
    }
}

static void put_flow(const char *name, const char *doc) {
    char path[96];
    snprintf(path, sizeof path, "/v1/flows/%s", name);
    e2e_resp_t r;
    e2e_request(&srv, "PUT", path, json_ct, doc, &r);
    ck_assert_msg(r.status == 201, "PUT %s: %ld %s", name, r.status, r.body);
    e2e_resp_free(&r);
}

/* Starts a job of body, waits until it is `status` and GETs its graph into r (path: its path). */
static void job_graph(const char *body, const char *status, char id[40], char path[96],
                      e2e_resp_t *r) {
    json_t *job = e2e_start_job(&srv, body);
    snprintf(id, 40, "%s", json_string_value(json_object_get(job, "id")));
    json_decref(job);
    json_decref(e2e_wait_status(&srv, id, status, 10000));
    snprintf(path, 96, "/v1/jobs/%s/graph.svg", id);
    get_svg(path, NULL, r);
    ck_assert_int_eq(r->status, 200);
}

START_TEST(test_flow_graph) {
    e2e_resp_t r;
    get_svg("/v1/flows/recipe/graph.svg", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    has(&r, "<g id=\"node&#45;fetch\" class=\"node start\">");
    has(&r, "<g id=\"node&#45;approve\" class=\"node\">");
    has(&r, "<g id=\"edge&#45;approve&#45;retry\" class=\"edge\">");
    has(&r, ">retry</text>");
    has(&r, ">input</text>");
    ck_assert_ptr_null(strstr(r.body, ">default</text>"));
    ck_assert_uint_gt(strlen(r.etag), 2);
    char etag[32];
    snprintf(etag, sizeof etag, "%s", r.etag);
    e2e_resp_free(&r);
    get_svg("/v1/flows/recipe/graph.svg", etag, &r);
    ck_assert_int_eq(r.status, 304);
    ck_assert_str_eq(r.etag, etag);
    e2e_resp_free(&r);

    /* a sub-flow: a dashed edge to its start, its nodes named after the node that runs it */
    put_flow("nested", "{\"start\": \"outer\", \"nodes\": {"
                       "\"outer\": {\"type\": \"flow\", \"flow\": \"inner\", \"next\": {\"default\": \"end\"}},"
                       "\"end\": {\"type\": \"noop\"}},"
                       " \"flows\": {\"inner\": {\"start\": \"a\", \"nodes\": {"
                       "\"a\": {\"type\": \"noop\", \"next\": {\"default\": \"b\"}}, \"b\": {\"type\": \"noop\"}}}}}");
    get_svg("/v1/flows/nested/graph.svg", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    has(&r, "<g id=\"node&#45;outer\" class=\"node start subflow\">");
    has(&r, "<g id=\"start&#45;outer\" class=\"edge start&#45;edge\">");
    has(&r, "<g id=\"node&#45;outer/a\" class=\"node\">");
    has(&r, "<g id=\"edge&#45;outer/a&#45;default\" class=\"edge\">");
    e2e_resp_free(&r);
    /* a new version of the document is another ETag */
    get_svg("/v1/flows/nested/graph.svg", NULL, &r);
    snprintf(etag, sizeof etag, "%s", r.etag);
    e2e_resp_free(&r);
    put_flow("nested2", "{\"start\": \"x\", \"nodes\": {\"x\": {\"type\": \"noop\"}}}");
    get_svg("/v1/flows/nested2/graph.svg", etag, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_ne(r.etag, etag);
    e2e_resp_free(&r);
}
END_TEST

START_TEST(test_not_found) {
    e2e_resp_t r;
    get_svg("/v1/flows/nope/graph.svg", NULL, &r);
    e2e_assert_error(&r, 404, "unknown_flow", "no flow named 'nope'");
    e2e_resp_free(&r);
    get_svg("/v1/flows/a%20b/graph.svg", NULL, &r);
    ck_assert_int_eq(r.status, 404);
    e2e_resp_free(&r);
    get_svg("/v1/jobs/0123456789abcdef0123456789abcdef/graph.svg", NULL, &r);
    e2e_assert_error(&r, 404, "not_found", "no job with id");
    e2e_resp_free(&r);
    get_svg("/v1/jobs/nonsense/graph.svg", NULL, &r);
    e2e_assert_error(&r, 404, "not_found", NULL);
    e2e_resp_free(&r);
    get_svg("/v1/flows/recipe/graph.svg?x=1", NULL, &r);
    e2e_assert_error(&r, 400, "bad_request", "unknown query parameter");
    e2e_resp_free(&r);
    e2e_request(&srv, "DELETE", "/v1/flows/recipe/graph.svg", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 405);
    e2e_resp_free(&r);
}
END_TEST

START_TEST(test_job_graph_of_a_waiting_recipe) {
    char id[40], path[96], etag[32];
    e2e_resp_t r;
    json_t *job;
    job_graph("{\"flow\": \"recipe\", \"shared\": {\"ingredient\": \"tofu\"}, "
              "\"params\": {\"fetch_s\": 0.01, \"suggest_s\": 0.01}}",
              "waiting", id, path, &r);
    has(&r, "<g id=\"node&#45;fetch\" class=\"node visited start\">");
    has(&r, "<g id=\"node&#45;suggest\" class=\"node visited\">");
    has(&r, "<g id=\"node&#45;approve\" class=\"node waiting\">");
    has(&r, "<g id=\"node&#45;finalize\" class=\"node not&#45;reached\">");
    has(&r, ">waiting for input</text>");
    has(&r, ">sleep &#160;· &#160;1 visit</text>");
    /* the graph's version is the job's */
    e2e_resp_t j;
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    e2e_request(&srv, "GET", path, NULL, NULL, &j);
    ck_assert_str_eq(j.etag, r.etag);
    e2e_resp_free(&j);
    snprintf(etag, sizeof etag, "%s", r.etag);
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/graph.svg", id);
    get_svg(path, etag, &r);
    ck_assert_int_eq(r.status, 304);
    e2e_resp_free(&r);

    /* "no": suggest runs again and the job waits again */
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    e2e_post(&srv, path, "{\"value\": \"no\"}", &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    uint64_t deadline = e2e_now_ms() + e2e_ms(10000);
    for (;;) {
        job = e2e_wait_status(&srv, id, "waiting", 10000);
        json_int_t steps = json_integer_value(json_object_get(job, "steps"));
        json_decref(job);
        if (steps >= 4) /* fetch, suggest, approve, suggest */
            break;
        ck_assert_uint_lt(e2e_now_ms(), deadline);
        snprintf(path, sizeof path, "/v1/jobs/%s?wait=1", id);
        json_decref(e2e_get_json(&srv, path));
    }
    snprintf(path, sizeof path, "/v1/jobs/%s/graph.svg", id);
    get_svg(path, etag, &r);
    ck_assert_int_eq(r.status, 200); /* another version */
    has(&r, ">sleep &#160;· &#160;2 visits</text>");
    has(&r, ">input &#160;· &#160;1 visit</text>");
    has(&r, "<g id=\"node&#45;approve\" class=\"node waiting\">");
    e2e_resp_free(&r);

    /* "yes": it ends, and nothing is current */
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    e2e_post(&srv, path, "{\"value\": \"yes\"}", &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    json_decref(e2e_wait_status(&srv, id, "succeeded", 10000));
    snprintf(path, sizeof path, "/v1/jobs/%s/graph.svg", id);
    get_svg(path, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    has(&r, "<g id=\"node&#45;approve\" class=\"node visited\">");
    has(&r, "<g id=\"node&#45;finalize\" class=\"node visited\">");
    ck_assert_ptr_null(strstr(r.body, "waiting"));
    e2e_resp_free(&r);
}
END_TEST

START_TEST(test_failed_job_shows_its_error) {
    put_flow("boom", "{\"start\": \"prepare\", \"nodes\": {"
                     "\"prepare\": {\"type\": \"set\", \"params\": {\"/x\": \"<script>alert(1)</script> & &foo;\"},"
                     "              \"next\": {\"default\": \"explode\"}},"
                     "\"explode\": {\"type\": \"fail\", \"params\": {\"message\": \"broke: {{$shared/x}}\"},"
                     "              \"next\": {\"default\": \"never\"}},"
                     "\"never\": {\"type\": \"noop\"}}}");
    char id[40], path[96];
    e2e_resp_t r;
    job_graph("{\"flow\": \"boom\"}", "failed", id, path, &r);
    has(&r, "<g id=\"node&#45;prepare\" class=\"node visited start\">");
    has(&r, "<g id=\"node&#45;explode\" class=\"node failed\">");
    has(&r, "<g id=\"node&#45;never\" class=\"node not&#45;reached\">");
    has(&r, ">broke: &lt;script&gt;alert(1)&lt;/script&gt; &amp; &amp;foo;</text>");
    ck_assert_ptr_null(strstr(r.body, "<script"));
    ck_assert_ptr_null(strstr(r.body, "&foo;"));
    e2e_resp_free(&r);
}
END_TEST

START_TEST(test_max_graph) {
    put_flow("big", "{\"start\": \"n1\", \"nodes\": {"
                    "\"n1\": {\"type\": \"noop\", \"next\": {\"default\": \"n2\"}},"
                    "\"n2\": {\"type\": \"noop\", \"next\": {\"default\": \"n3\"}},"
                    "\"n3\": {\"type\": \"noop\", \"next\": {\"default\": \"n4\"}},"
                    "\"n4\": {\"type\": \"noop\", \"next\": {\"default\": \"n5\"}},"
                    "\"n5\": {\"type\": \"noop\", \"next\": {\"default\": \"n6\"}},"
                    "\"n6\": {\"type\": \"noop\", \"next\": {\"default\": \"n7\"}},"
                    "\"n7\": {\"type\": \"noop\", \"next\": {\"default\": \"n8\"}},"
                    "\"n8\": {\"type\": \"noop\"}}}");
    e2e_resp_t r;
    get_svg("/v1/flows/big/graph.svg", NULL, &r);
    e2e_assert_error(&r, 422, "graph_too_large", "15 nodes and edges");
    has(&r, "--max-graph 12");
    e2e_resp_free(&r);
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"big\"}");
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s/graph.svg",
             json_string_value(json_object_get(job, "id")));
    json_decref(job);
    get_svg(path, NULL, &r);
    e2e_assert_error(&r, 422, "graph_too_large", "--max-graph");
    e2e_resp_free(&r);
    /* the Mermaid text is still there for such a flow */
    json_t *flow = e2e_get_json(&srv, "/v1/flows/big");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(flow, "mermaid")), "flowchart"));
    json_decref(flow);
}
END_TEST

static Suite *graph_suite(void) {
    Suite *s = suite_create("graph");
    TCase *tc = tcase_create("graph");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_flow_graph);
    tcase_add_test(tc, test_not_found);
    tcase_add_test(tc, test_job_graph_of_a_waiting_recipe);
    tcase_add_test(tc, test_failed_job_shows_its_error);
    tcase_add_test(tc, test_max_graph);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(graph_suite());
}
