/* test_regex.c: regular expressions in flowd (issue 11), on PCRE2 with limits. A PUT with a pattern
 * that used to freeze the engine gets 422 with the limit named; an input answer that a pattern
 * cannot check within the limits gets 422 while another job keeps running; a choice whose pattern
 * meets a limit fails its job; and a stored flow whose pattern is over the limits of a restart is
 * refused with its problems, without stopping the start. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e.h"

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

static const char *str_at(json_t *v, const char *key, size_t i, const char *member) {
    return json_string_value(json_object_get(json_array_get(json_object_get(v, key), i), member));
}

START_TEST(test_a_put_with_bomb_patterns_is_refused) {
    e2e_server_t srv;
    e2e_start(&srv, NULL);
    e2e_resp_t r;
    e2e_request(&srv, "PUT", "/v1/flows/bombs", json_ct,
                "{\"name\": \"bombs\", \"start\": \"pick\", \"nodes\": {"
                " \"pick\": {\"type\": \"choice\", \"params\": {\"value\": \"$shared/v\", \"cases\": ["
                "   {\"matches\": \"^a+++++++++++++++++++++$\", \"action\": \"a\"},"
                "   {\"matches\": \"((a{100}){100}){100}\", \"action\": \"b\"}]}, \"next\": {\"default\": \"ask\"}},"
                " \"ask\": {\"type\": \"input\", \"params\": {\"prompt\": \"?\", \"schema\": {\"pattern\":"
                "   \"((((((((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))))))))))\"}}}}}",
                &r);
    e2e_assert_error(&r, 422, "invalid_flow", "3 problems");
    json_t *err = json_object_get(r.json, "error");
    ck_assert_str_eq(str_at(err, "problems", 0, "where"), "/nodes/pick/params/cases/0");
    ck_assert_str_eq(str_at(err, "problems", 0, "message"),
                     "matches: not a valid regular expression: quantifier does not follow a repeatable item at "
                     "offset 4");
    ck_assert_str_eq(str_at(err, "problems", 1, "message"),
                     "matches: not a valid regular expression: its compiled form would be larger than PCRE2 allows");
    ck_assert_str_eq(str_at(err, "problems", 2, "where"), "/nodes/ask/params/schema/pattern");
    ck_assert_str_eq(str_at(err, "problems", 2, "message"),
                     "not a valid regular expression: parentheses nested deeper than 32 (the regex nesting limit)");
    e2e_resp_free(&r);
    e2e_request(&srv, "GET", "/v1/flows/bombs", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 404);
    e2e_resp_free(&r);
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
}
END_TEST

/* The pattern takes millions of backtracking steps on any long answer that ends badly. */
static const char ask_doc[] =
    "{\"name\": \"ask\", \"start\": \"q\", \"nodes\": {"
    " \"q\": {\"type\": \"input\", \"params\": {\"prompt\": \"Name?\","
    "   \"schema\": {\"type\": \"string\", \"pattern\": \"^(\\\\w+\\\\s?)*$\"}}, \"out\": \"/name\"}}}";

START_TEST(test_a_bomb_answer_is_refused_while_other_jobs_run) {
    e2e_server_t srv;
    e2e_start(&srv, NULL);
    e2e_resp_t r;
    e2e_request(&srv, "PUT", "/v1/flows/ask", json_ct, ask_doc, &r);
    ck_assert_int_eq(r.status, 201);
    e2e_resp_free(&r);
    json_t *asking = e2e_start_job(&srv, "{\"flow\": \"ask\"}");
    const char *id = json_string_value(json_object_get(asking, "id"));
    json_decref(e2e_wait_status(&srv, id, "waiting", 10000));
    /* a job that goes on meanwhile: it must end while the bombs are answered */
    json_t *sleeper = e2e_start_job(&srv, "{\"flow\": \"sleep\", \"shared\": {\"seconds\": 0.3}}");
    const char *sid = json_string_value(json_object_get(sleeper, "id"));
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    for (int i = 0; i < 20; i++) {
        e2e_post(&srv, path, "{\"value\": \"an answer that goes on and on and on and on and on and on!\"}", &r);
        e2e_assert_error(&r, 422, "invalid_input",
                         "cannot be checked against the pattern ^(\\w+\\s?)*$: the regex match limit (1000000) was "
                         "reached");
        e2e_resp_free(&r);
    }
    json_t *slept = e2e_wait_status(&srv, sid, "succeeded", 10000);
    json_decref(slept);
    /* the asking job still waits, and a good answer ends it */
    e2e_post(&srv, path, "{\"value\": \"Ada Lovelace\"}", &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    json_t *done = e2e_wait_status(&srv, id, "succeeded", 10000);
    json_decref(done);
    json_decref(sleeper);
    json_decref(asking);
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
}
END_TEST

START_TEST(test_a_choice_that_meets_a_limit_fails_its_job) {
    e2e_server_t srv;
    e2e_start(&srv, "--regex-match-limit", "20000", NULL);
    e2e_resp_t r;
    e2e_request(&srv, "PUT", "/v1/flows/pick", json_ct,
                "{\"name\": \"pick\", \"start\": \"p\", \"nodes\": {\"p\": {\"type\": \"choice\", \"params\": {"
                " \"value\": \"$shared/v\", \"cases\": [{\"matches\": \"(a+)+$\", \"action\": \"x\"}]}}}}",
                &r);
    ck_assert_int_eq(r.status, 201);
    e2e_resp_free(&r);
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"pick\", \"shared\": {\"v\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\"}}");
    json_t *end = e2e_wait_status(&srv, json_string_value(json_object_get(job, "id")), "failed", 10000);
    json_t *error = json_object_get(end, "error");
    ck_assert_str_eq(json_string_value(json_object_get(error, "code")), "too_big");
    ck_assert_str_eq(json_string_value(json_object_get(error, "message")),
                     "choice: case 0 (matches (a+)+$): the regex match limit (20000) was reached");
    json_decref(end);
    json_decref(job);
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
}
END_TEST

/* A flow stored with a pattern that a restart's limits refuse: flowd starts, logs the flow's
 * problems, does not register it, and the job that waited in it ends failed, at every start. */
START_TEST(test_a_stored_flow_over_the_limits_does_not_stop_a_restart) {
    char dir[] = "/tmp/flowd-regex-XXXXXX", store[128], cmd[160];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(store, sizeof store, "sqlite:%s/flowd.db", dir);
    e2e_server_t srv;
    e2e_start(&srv, "--store", store, "--regex-max-length", "4KiB", NULL);
    /* a pattern of 2000 bytes: fine under 4KiB, over the default 1KiB */
    size_t n = 2000;
    char *doc = malloc(n + 512);
    int off = snprintf(doc, 512, "{\"name\": \"long\", \"start\": \"q\", \"nodes\": {\"q\": {\"type\": \"input\","
                                 " \"params\": {\"prompt\": \"?\", \"schema\": {\"pattern\": \"^");
    memset(doc + off, 'x', n);
    snprintf(doc + off + n, 512, "$\"}}}}}");
    e2e_resp_t r;
    e2e_request(&srv, "PUT", "/v1/flows/long", json_ct, doc, &r);
    ck_assert_int_eq(r.status, 201);
    e2e_resp_free(&r);
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"long\"}");
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(job, "id")));
    json_decref(job);
    json_decref(e2e_wait_status(&srv, id, "waiting", 10000));
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);

    for (int round = 0; round < 2; round++) {
        e2e_start(&srv, "--store", store, NULL);
        char *log = e2e_log(&srv);
        ck_assert_msg(strstr(log, "flow long, registered through the API before, does not load now") != NULL, "%s",
                      log);
        ck_assert_msg(strstr(log, "flow long: /nodes/q/params/schema/pattern: not a valid regular expression: "
                                  "longer than 1024 bytes (the regex length limit)") != NULL,
                      "%s", log);
        free(log);
        e2e_request(&srv, "GET", "/v1/flows/long", NULL, NULL, &r);
        ck_assert_int_eq(r.status, 404);
        e2e_resp_free(&r);
        json_t *end = e2e_wait_status(&srv, id, "failed", 10000);
        json_decref(end);
        ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
        e2e_cleanup(&srv);
    }
    free(doc);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}
END_TEST

static Suite *regex_suite(void) {
    Suite *s = suite_create("regex");
    TCase *tc = tcase_create("regex");
    tcase_add_test(tc, test_a_put_with_bomb_patterns_is_refused);
    tcase_add_test(tc, test_a_bomb_answer_is_refused_while_other_jobs_run);
    tcase_add_test(tc, test_a_choice_that_meets_a_limit_fails_its_job);
    tcase_add_test(tc, test_a_stored_flow_over_the_limits_does_not_stop_a_restart);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(regex_suite());
}
