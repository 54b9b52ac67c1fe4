/* test_recipe_flow.c: the seed's recipe flow over HTTP, as a person would drive it with curl: a "no"
 * sends it back to suggest another recipe, an answer it does not understand is refused while it
 * keeps waiting, and a "yes" ends it with the recipe in shared.final. The flow is the offline one
 * of tests/e2e/flows/recipe.json (timers for the API and the model), the document that took the
 * place of the C flow flowd compiled in; test_flows runs examples/flows/recipe.json against the
 * mock. */
#include <stdio.h>
#include <string.h>

#include "e2e/e2e.h"

static e2e_server_t srv;

static void setup(void) {
    e2e_start(&srv, "--flows", "tests/e2e/flows", NULL);
}

static void teardown(void) {
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
}

static const char *str(json_t *obj, const char *key) {
    return json_string_value(json_object_get(obj, key));
}

/* Waits until the job waits for an answer after more than `after` steps; returns its suggestion. */
static json_t *wait_for_question(const char *id, json_int_t after) {
    uint64_t deadline = e2e_now_ms() + e2e_ms(10000);
    for (;;) {
        json_t *job = e2e_wait_status(&srv, id, "waiting", 10000);
        if (json_integer_value(json_object_get(job, "steps")) > after)
            return job;
        json_decref(job);
        ck_assert_uint_lt(e2e_now_ms(), deadline);
        /* still the earlier question: the answer has not been taken up yet */
        char path[128];
        snprintf(path, sizeof path, "/v1/jobs/%s?wait=1", id);
        json_decref(e2e_get_json(&srv, path));
    }
}

static void answer(const char *id, const char *value, long status) {
    char path[128], body[64];
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    snprintf(body, sizeof body, "{\"value\": %s}", value);
    e2e_resp_t r;
    e2e_post(&srv, path, body, &r);
    if (status == 422)
        e2e_assert_error(&r, 422, "invalid_input", "one of \"yes\", \"no\"");
    else
        ck_assert_msg(r.status == status, "answer %s: %ld %s", value, r.status, r.body);
    e2e_resp_free(&r);
}

START_TEST(test_no_suggests_again_and_yes_finishes) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"recipe\", \"shared\": {\"ingredient\": \"tofu\"}, "
                                      "\"params\": {\"fetch_s\": 0.02, \"suggest_s\": 0.02}}");
    const char *id = str(job, "id");

    json_t *q1 = wait_for_question(id, 0);
    ck_assert_str_eq(str(q1, "current_node"), "approve");
    json_t *asked = json_object_get(q1, "waiting_for");
    ck_assert_str_eq(str(asked, "prompt"), "How about: tofu pasta? Answer yes or no.");

    answer(id, "\"perhaps\"", 422);
    json_t *still = e2e_get_json(&srv, "/v1/jobs?status=waiting");
    ck_assert_uint_eq(json_array_size(json_object_get(still, "jobs")), 1);
    json_decref(still);

    /* the 202 comes once the node has taken the answer, and shows where it led */
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    e2e_resp_t taken;
    e2e_post(&srv, path, "{\"value\": \"no\"}", &taken);
    ck_assert_int_eq(taken.status, 202);
    ck_assert_str_eq(str(taken.json, "last_action"), "retry");
    ck_assert_str_ne(str(taken.json, "status"), "waiting");
    ck_assert_int_gt(json_integer_value(json_object_get(taken.json, "steps")),
                     json_integer_value(json_object_get(q1, "steps")));
    e2e_resp_free(&taken);
    json_t *q2 = wait_for_question(id, json_integer_value(json_object_get(q1, "steps")));
    ck_assert_str_eq(str(json_object_get(q2, "waiting_for"), "prompt"),
                     "How about: grilled tofu? Answer yes or no.");
    ck_assert_str_eq(str(q2, "last_action"), "default"); /* suggest ran again */

    answer(id, "\"yes\"", 202);
    json_t *done = e2e_wait_status(&srv, id, "succeeded", 10000);
    ck_assert(json_is_null(json_object_get(done, "waiting_for")));


    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *shared = e2e_get_json(&srv, path);
    ck_assert_str_eq(str(shared, "final"), "grilled tofu");
    ck_assert_int_eq(json_integer_value(json_object_get(shared, "suggestions")), 2);
    ck_assert(json_is_true(json_object_get(shared, "approved")));

    snprintf(path, sizeof path, "/v1/jobs/%s/history", id);
    json_t *history = e2e_get_json(&srv, path);
    json_t *steps = json_object_get(history, "steps");
    static const char *const nodes[] = {"fetch", "suggest", "approve", "suggest", "approve", "finalize"};
    static const char *const actions[] = {"suggest", "default", "retry", "default", "accept", "default"};
    ck_assert_uint_eq(json_array_size(steps), 6);
    for (size_t i = 0; i < 6; i++) {
        ck_assert_str_eq(str(json_array_get(steps, i), "node"), nodes[i]);
        ck_assert_str_eq(str(json_array_get(steps, i), "action"), actions[i]);
    }
    json_decref(history);
    json_decref(shared);
    json_decref(done);
    json_decref(q2);
    json_decref(q1);
    json_decref(job);
}
END_TEST

START_TEST(test_a_waiting_job_can_be_canceled) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"recipe\", \"params\": {\"fetch_s\": 0.001, \"suggest_s\": 0.001}}");
    const char *id = str(job, "id");
    json_decref(wait_for_question(id, 0));
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
    e2e_resp_t r;
    e2e_request(&srv, "POST", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    json_t *done = e2e_wait_status(&srv, id, "canceled", 5000);
    ck_assert_str_eq(str(json_object_get(done, "error"), "node"), "approve");
    answer(id, "\"yes\"", 409);
    json_decref(done);
    json_decref(job);
}
END_TEST

/* Reading a job's state as the README's walk-through does: a long poll of a job that waits for its
 * person answers at once (it used to hold for the whole wait); every Job answer has an ETag, and
 * If-None-Match makes a GET answer 304, or, with wait, hold until there is something new. */
START_TEST(test_long_polls_are_honest_and_etags_hold_until_a_change) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"recipe\", \"params\": {\"fetch_s\": 0.01, \"suggest_s\": 0.01}}");
    const char *id = str(job, "id");
    json_decref(wait_for_question(id, 0));
    char path[160], inm[64];
    e2e_resp_t r;
    snprintf(path, sizeof path, "/v1/jobs/%s?wait=30", id);
    e2e_request(&srv, "GET", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(str(r.json, "status"), "waiting");
    ck_assert_uint_lt(r.ms, e2e_ms(10000)); /* at once, not after the 30 s */
    ck_assert(r.etag[0] == '"');
    snprintf(inm, sizeof inm, "If-None-Match: %s", r.etag);
    e2e_resp_free(&r);
    const char *const same[] = {inm, NULL};
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    e2e_request(&srv, "GET", path, same, NULL, &r);
    ck_assert_int_eq(r.status, 304);
    ck_assert_uint_eq(r.len, 0);
    e2e_resp_free(&r);
    static const char *const other[] = {"If-None-Match: W/\"0\", \"1\"", NULL};
    e2e_request(&srv, "GET", path, other, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
    /* with wait: nothing new within a second is a 304 after it */
    snprintf(path, sizeof path, "/v1/jobs/%s?wait=1", id);
    e2e_request(&srv, "GET", path, same, NULL, &r);
    ck_assert_int_eq(r.status, 304);
    ck_assert_uint_ge(r.ms, 900);
    e2e_resp_free(&r);
    /* a cancel is something new: the same long poll, made while the job waits, ends with it */
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
    e2e_request(&srv, "POST", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s?wait=30", id);
    e2e_request(&srv, "GET", path, same, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(str(r.json, "status"), "canceled");
    ck_assert_str_ne(r.etag, inm + strlen("If-None-Match: "));
    e2e_resp_free(&r);
    /* a poll that held is counted under a label of its own, apart from the route's latency */
    e2e_request(&srv, "GET", "/metrics", NULL, NULL, &r);
    ck_assert_ptr_nonnull(strstr(r.body, "flowd_http_requests_total{route=\"/v1/jobs/{id}?wait\",code=\"304\"} 1\n"));
    e2e_resp_free(&r);
    json_decref(job);
}
END_TEST

static Suite *recipe_suite(void) {
    Suite *s = suite_create("recipe_flow");
    TCase *tc = tcase_create("recipe_flow");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_no_suggests_again_and_yes_finishes);
    tcase_add_test(tc, test_a_waiting_job_can_be_canceled);
    tcase_add_test(tc, test_long_polls_are_honest_and_etags_hold_until_a_change);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(recipe_suite());
}
