/* test_events.c: watching jobs without holding a thread: the long poll GET /v1/jobs/{id}?wait= and
 * the event stream GET /v1/jobs/{id}/events (ids, order, Last-Event-ID, several watchers,
 * keep-alive comments). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e/e2e.h"

static e2e_server_t srv;

static void setup(void) {
    e2e_start(&srv, "--grace", "1s", "--keepalive", "300ms", "--flows", "tests/e2e/flows", NULL);
}

static void teardown(void) {
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
}

static const char *str(json_t *obj, const char *key) {
    return json_string_value(json_object_get(obj, key));
}

/* The frames of a stream without its comments. */
static json_t *frames_of(const char *text) {
    json_t *all = e2e_sse_parse(text);
    json_t *frames = json_array();
    for (size_t i = 0; i < json_array_size(all); i++)
        if (json_object_get(json_array_get(all, i), "id") != NULL)
            json_array_append(frames, json_array_get(all, i));
    json_decref(all);
    return frames;
}

START_TEST(test_long_poll_answers_when_the_status_changes) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"sleep\", \"shared\": {\"seconds\": 0.4}}");
    json_decref(e2e_wait_status(&srv, str(job, "id"), "running", 5000));
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s?wait=20", str(job, "id"));
    e2e_resp_t r;
    e2e_request(&srv, "GET", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(str(r.json, "status"), "succeeded");
    ck_assert_uint_lt(r.ms, e2e_ms(5000)); /* the change, not the 20 s, ended the wait */
    e2e_resp_free(&r);
    /* a job that has ended answers at once */
    e2e_request(&srv, "GET", path, NULL, NULL, &r);
    ck_assert_str_eq(str(r.json, "status"), "succeeded");
    ck_assert_uint_lt(r.ms, e2e_ms(1000));
    e2e_resp_free(&r);
    json_decref(job);
}
END_TEST

START_TEST(test_long_poll_answers_when_the_time_is_up) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"sleep\", \"shared\": {\"seconds\": 60}}");
    json_decref(e2e_wait_status(&srv, str(job, "id"), "running", 5000));
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s?wait=0.5", str(job, "id"));
    e2e_resp_t r;
    e2e_request(&srv, "GET", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(str(r.json, "status"), "running");
    ck_assert_uint_ge(r.ms, 450);
    ck_assert_uint_lt(r.ms, e2e_ms(3000));
    e2e_resp_free(&r);
    json_decref(job);
}
END_TEST

START_TEST(test_events_of_an_ended_job_are_replayed_then_the_stream_ends) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"noop\"}");
    json_decref(e2e_wait_status(&srv, str(job, "id"), "succeeded", 5000));
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", str(job, "id"));
    e2e_resp_t r;
    e2e_request(&srv, "GET", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.content_type, "text/event-stream");
    static const char head[] = "id: 1\nevent: status\ndata: {\"status\":\"running\",\"waiting_for\":null,"
                               "\"error\":null}\n\nid: 2\nevent: step\ndata: {\"seq\":1,\"node\":\"noop\",";
    ck_assert_msg(strncmp(r.body, head, sizeof head - 1) == 0, "%s", r.body);
    json_t *frames = frames_of(r.body);
    ck_assert_uint_eq(json_array_size(frames), 3);
    json_t *last = json_array_get(frames, 2);
    ck_assert_int_eq(json_integer_value(json_object_get(last, "id")), 3);
    ck_assert_str_eq(str(last, "event"), "status");
    ck_assert_str_eq(str(json_object_get(last, "data"), "status"), "succeeded");
    json_decref(frames);
    e2e_resp_free(&r);
    json_decref(job);
}
END_TEST

START_TEST(test_events_arrive_live_in_order_and_a_reconnect_misses_nothing) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"recipe\", \"shared\": {\"ingredient\": \"leek\"}, "
                                      "\"params\": {\"fetch_s\": 0.2, \"suggest_s\": 0.01}}");
    const char *id = str(job, "id");
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    e2e_stream_t st;
    e2e_stream_open(&st, &srv, path, NULL);
    ck_assert_msg(e2e_stream_wait_for(&st, "\"status\":\"waiting\"", 5000), "no waiting event: %s", st.buf);
    ck_assert(!st.done); /* the job waits, and so does the stream */
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    e2e_resp_t r;
    e2e_post(&srv, path, "{\"value\": \"yes\"}", &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    ck_assert(e2e_stream_wait_end(&st, 5000));
    ck_assert_int_eq(st.status, 200);
    json_t *frames = frames_of(st.buf);
    /* running, fetch, suggest, waiting, running, approve, finalize, succeeded */
    static const char *const want[] = {"status:running", "step:fetch",   "step:suggest", "status:waiting",
                                       "status:running", "step:approve", "step:finalize", "status:succeeded"};
    ck_assert_uint_eq(json_array_size(frames), 8);
    for (size_t i = 0; i < 8; i++) {
        json_t *f = json_array_get(frames, i);
        json_t *data = json_object_get(f, "data");
        char got[64];
        snprintf(got, sizeof got, "%s:%s", str(f, "event"),
                 strcmp(str(f, "event"), "step") == 0 ? str(data, "node") : str(data, "status"));
        ck_assert_str_eq(got, want[i]);
        ck_assert_int_eq(json_integer_value(json_object_get(f, "id")), (json_int_t)i + 1);
    }
    json_t *waiting = json_object_get(json_array_get(frames, 3), "data");
    ck_assert_str_eq(str(json_object_get(waiting, "waiting_for"), "prompt"),
                     "How about: leek pasta? Answer yes or no.");
    e2e_stream_close(&st);

    /* reconnecting after event 3 gets 4 to 8, the same as the first time */
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    e2e_stream_open(&st, &srv, path, "3");
    ck_assert(e2e_stream_wait_end(&st, 5000));
    json_t *rest = frames_of(st.buf);
    ck_assert_uint_eq(json_array_size(rest), 5);
    for (size_t i = 0; i < 5; i++)
        ck_assert(json_equal(json_array_get(rest, i), json_array_get(frames, i + 3)));
    e2e_stream_close(&st);
    json_decref(rest);
    json_decref(frames);
    json_decref(job);
}
END_TEST

START_TEST(test_two_watchers_see_the_same_events) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"sleep\", \"shared\": {\"seconds\": 0.5}}");
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", str(job, "id"));
    e2e_stream_t a, b;
    e2e_stream_open(&a, &srv, path, NULL);
    e2e_stream_open(&b, &srv, path, NULL);
    ck_assert(e2e_stream_wait_for(&a, "event: status", 3000));
    ck_assert(e2e_stream_wait_for(&b, "event: status", 3000));
    ck_assert(e2e_stream_wait_end(&a, 5000));
    ck_assert(e2e_stream_wait_end(&b, 5000));
    json_t *fa = frames_of(a.buf), *fb = frames_of(b.buf);
    ck_assert_uint_eq(json_array_size(fa), 3);
    ck_assert(json_equal(fa, fb));
    ck_assert_str_eq(str(json_object_get(json_array_get(fa, 2), "data"), "status"), "succeeded");
    json_decref(fa);
    json_decref(fb);
    e2e_stream_close(&a);
    e2e_stream_close(&b);
    json_decref(job);
}
END_TEST

START_TEST(test_a_quiet_stream_gets_keep_alive_comments) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"sleep\", \"shared\": {\"seconds\": 60}}");
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", str(job, "id"));
    e2e_stream_t st;
    e2e_stream_open(&st, &srv, path, NULL);
    ck_assert(e2e_stream_wait_for(&st, "\"status\":\"running\"", 3000));
    uint64_t t0 = e2e_now_ms();
    ck_assert_msg(e2e_stream_wait_for(&st, ": keep-alive\n\n", 3000), "no keep-alive: %s", st.buf);
    ck_assert_uint_ge(e2e_now_ms() - t0, 100); /* --keepalive 300ms after the last event */
    e2e_stream_close(&st);
    json_decref(job);
}
END_TEST

/* With --events-limit 4 the ring keeps only the last events: the history still has every step, and
 * a stream from the start says how many events it lost. */
START_TEST(test_history_outlives_a_small_event_ring) {
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
    e2e_start(&srv, "--events-limit", "4", "--flows", "tests/e2e/flows", NULL);
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"recipe\", \"params\": {\"fetch_s\": 0.001, \"suggest_s\": 0.001}}");
    const char *id = str(job, "id");
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    for (int i = 0; i < 3; i++) {
        json_decref(e2e_wait_status(&srv, id, "waiting", 5000));
        e2e_resp_t r;
        e2e_post(&srv, path, i < 2 ? "{\"value\": \"no\"}" : "{\"value\": \"yes\"}", &r);
        ck_assert_int_eq(r.status, 202);
        e2e_resp_free(&r);
        /* the answer is taken up before the next wait: the job leaves the waiting status */
        snprintf(path, sizeof path, "/v1/jobs/%s?wait=5", id);
        json_decref(e2e_get_json(&srv, path));
        snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    }
    json_decref(e2e_wait_status(&srv, id, "succeeded", 5000));
    snprintf(path, sizeof path, "/v1/jobs/%s/history", id);
    json_t *history = e2e_get_json(&srv, path);
    ck_assert_uint_eq(json_array_size(json_object_get(history, "steps")), 8);
    ck_assert_str_eq(str(json_array_get(json_object_get(history, "steps"), 0), "node"), "fetch");
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    e2e_resp_t r;
    e2e_request(&srv, "GET", path, NULL, NULL, &r);
    ck_assert_msg(strncmp(r.body, ": ", 2) == 0 && strstr(r.body, "earlier events are no longer kept\n\n"),
                  "%s", r.body);
    json_t *frames = frames_of(r.body);
    ck_assert_uint_eq(json_array_size(frames), 4);
    ck_assert_str_eq(str(json_object_get(json_array_get(frames, 3), "data"), "status"), "succeeded");
    json_decref(frames);
    e2e_resp_free(&r);
    json_decref(history);
    json_decref(job);
}
END_TEST

static Suite *events_suite(void) {
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("events");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_long_poll_answers_when_the_status_changes);
    tcase_add_test(tc, test_long_poll_answers_when_the_time_is_up);
    tcase_add_test(tc, test_events_of_an_ended_job_are_replayed_then_the_stream_ends);
    tcase_add_test(tc, test_events_arrive_live_in_order_and_a_reconnect_misses_nothing);
    tcase_add_test(tc, test_two_watchers_see_the_same_events);
    tcase_add_test(tc, test_a_quiet_stream_gets_keep_alive_comments);
    tcase_add_test(tc, test_history_outlives_a_small_event_ring);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(events_suite());
}
