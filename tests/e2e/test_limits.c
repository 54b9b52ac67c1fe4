/* test_limits.c: what keeps flowd bounded and stoppable: --max-jobs, retention and --max-finished,
 * idle and slow clients, connections per client address, the shutdown on SIGTERM, and the flags
 * (help, version, exit statuses). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e/e2e.h"

static e2e_server_t srv;

static const char *str(json_t *obj, const char *key) {
    return json_string_value(json_object_get(obj, key));
}

static void stop(void) {
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
}

START_TEST(test_max_jobs_refuses_with_retry_after) {
    e2e_start(&srv, "--max-jobs", "2", "--grace", "0", NULL);
    json_t *a = e2e_start_job(&srv, "{\"flow\": \"sleep\", \"shared\": {\"seconds\": 60}}");
    json_t *b = e2e_start_job(&srv, "{\"flow\": \"sleep\", \"shared\": {\"seconds\": 60}}");
    e2e_resp_t r;
    e2e_post(&srv, "/v1/jobs", "{\"flow\": \"noop\"}", &r);
    e2e_assert_error(&r, 429, "too_many_jobs", "--max-jobs");
    ck_assert_str_eq(r.retry_after, "1");
    e2e_resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", str(a, "id"));
    e2e_request(&srv, "POST", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    json_decref(e2e_wait_status(&srv, str(a, "id"), "canceled", 5000));
    json_decref(e2e_start_job(&srv, "{\"flow\": \"noop\"}")); /* room again */
    json_decref(a);
    json_decref(b);
    stop();
}
END_TEST

START_TEST(test_finished_jobs_go_after_the_retention) {
    e2e_start(&srv, "--retention", "1s", NULL);
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"noop\"}");
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", str(job, "id"));
    json_decref(e2e_wait_status(&srv, str(job, "id"), "succeeded", 5000));
    uint64_t deadline = e2e_now_ms() + e2e_ms(5000);
    while (e2e_get_status(&srv, path) == 200) {
        ck_assert_msg(e2e_now_ms() < deadline, "the job is still there 5 s after it ended");
        usleep(20000); /* polled: the sweep runs once a second */
    }
    ck_assert_int_eq(e2e_get_status(&srv, path), 404);
    json_decref(job);
    stop();
}
END_TEST

START_TEST(test_max_finished_keeps_the_newest) {
    e2e_start(&srv, "--max-finished", "2", NULL);
    char ids[3][40];
    for (int i = 0; i < 3; i++) {
        json_t *job = e2e_start_job(&srv, "{\"flow\": \"noop\"}");
        snprintf(ids[i], sizeof ids[i], "%s", str(job, "id"));
        json_decref(e2e_wait_status(&srv, ids[i], "succeeded", 5000));
        json_decref(job);
    }
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", ids[0]);
    ck_assert_int_eq(e2e_get_status(&srv, path), 404);
    for (int i = 1; i < 3; i++) {
        snprintf(path, sizeof path, "/v1/jobs/%s", ids[i]);
        ck_assert_int_eq(e2e_get_status(&srv, path), 200);
    }
    json_t *list = e2e_get_json(&srv, "/v1/jobs");
    ck_assert_uint_eq(json_array_size(json_object_get(list, "jobs")), 2);
    json_decref(list);
    stop();
}
END_TEST

START_TEST(test_a_stalled_client_is_dropped_and_others_are_served) {
    e2e_start(&srv, "--idle-timeout", "1", NULL);
    int fd = e2e_connect(&srv);
    const char *half = "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: applica";
    ck_assert_int_eq(write(fd, half, strlen(half)), (ssize_t)strlen(half));
    ck_assert_int_eq(e2e_get_status(&srv, "/healthz"), 200);
    uint64_t t0 = e2e_now_ms();
    ck_assert_msg(e2e_closed_within(fd, 5000), "the stalled connection is still open after 5 s");
    ck_assert_uint_ge(e2e_now_ms() - t0, 500);
    close(fd);
    ck_assert_int_eq(e2e_get_status(&srv, "/healthz"), 200);
    stop();
}
END_TEST

START_TEST(test_connections_per_address_are_capped) {
    e2e_start(&srv, "--max-conns-per-ip", "3", NULL);
    ck_assert_int_eq(e2e_get_status(&srv, "/healthz"), 200); /* curl's kept-alive connection: 1 */
    int a = e2e_connect(&srv), b = e2e_connect(&srv); /* 2 and 3 */
    ck_assert_int_eq(e2e_get_status(&srv, "/healthz"), 200);
    int c = e2e_connect(&srv); /* 4: over the cap, closed at once */
    ck_assert_msg(e2e_closed_within(c, 3000), "a fourth connection was kept");
    close(c);
    ck_assert(!e2e_closed_within(a, 200)); /* the others stay */
    close(a);
    close(b);
    ck_assert_int_eq(e2e_get_status(&srv, "/healthz"), 200);
    stop();
}
END_TEST

/* SIGTERM while a step runs longer than --grace: flowd stops accepting, answers 503 on open
 * connections, ends event streams and long polls, and exits 0 once the grace has passed. */
START_TEST(test_sigterm_with_a_long_step_exits_after_the_grace) {
    e2e_start(&srv, "--grace", "1s", NULL);
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"sleep\", \"shared\": {\"seconds\": 60}}");
    const char *id = str(job, "id");
    json_decref(e2e_wait_status(&srv, id, "running", 5000));
    char path[128];
    uint64_t deadline;
    e2e_stream_t events, poll;
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    e2e_stream_open(&events, &srv, path, NULL);
    ck_assert(e2e_stream_wait_for(&events, "\"status\":\"running\"", 3000));
    snprintf(path, sizeof path, "/v1/jobs/%s?wait=60", id);
    e2e_stream_open(&poll, &srv, path, NULL);
    deadline = e2e_now_ms() + e2e_ms(5000);
    for (;;) { /* until the server holds the long poll */
        e2e_stream_wait_for(&poll, "-", 10);
        e2e_resp_t m;
        e2e_request(&srv, "GET", "/metrics", NULL, NULL, &m);
        int held = strstr(m.body, "flowd_suspended_requests 1\n") != NULL;
        e2e_resp_free(&m);
        if (held)
            break;
        ck_assert_msg(e2e_now_ms() < deadline, "the long poll never reached the server");
    }

    uint64_t t0 = e2e_now_ms();
    kill(srv.pid, SIGTERM);
    deadline = e2e_now_ms() + e2e_ms(5000);
    /* the kept-alive connection still gets answers */
    while (e2e_get_status(&srv, "/healthz") != 503)
        ck_assert_uint_lt(e2e_now_ms(), deadline);
    e2e_resp_t r;
    e2e_post(&srv, "/v1/jobs", "{\"flow\": \"noop\"}", &r);
    e2e_assert_error(&r, 503, "shutting_down", "shutting down");
    e2e_resp_free(&r);
    /* new connections are refused, not left waiting */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert(connect(fd, (struct sockaddr *)&a, sizeof a) < 0 || e2e_closed_within(fd, 1000));
    close(fd);
    ck_assert(e2e_stream_wait_end(&poll, 5000));
    ck_assert_int_eq(poll.status, 200);
    ck_assert(e2e_stream_wait_end(&events, 5000));
    ck_assert_uint_ge(e2e_now_ms() - t0, 900); /* the grace was given */
    e2e_stream_close(&poll);
    e2e_stream_close(&events);
    ck_assert_int_eq(e2e_stop(&srv, 5000), 0);
    ck_assert_uint_lt(e2e_now_ms() - t0, e2e_ms(5000));
    char *log = e2e_log(&srv);
    ck_assert_msg(strstr(log, "still running after --grace") != NULL, "%s", log);
    free(log);
    e2e_cleanup(&srv);
    json_decref(job);
}
END_TEST

/* SIGTERM while a short step runs: it finishes, and flowd exits without waiting out the grace. */
START_TEST(test_sigterm_lets_the_current_step_finish) {
    e2e_start(&srv, "--grace", "20s", NULL);
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"sleep\", \"shared\": {\"seconds\": 0.5}}");
    json_decref(e2e_wait_status(&srv, str(job, "id"), "running", 5000));
    uint64_t t0 = e2e_now_ms();
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    ck_assert_uint_lt(e2e_now_ms() - t0, e2e_ms(5000));
    char *log = e2e_log(&srv);
    ck_assert_msg(strstr(log, "still running after --grace") == NULL, "%s", log);
    ck_assert_msg(strstr(log, "flowd: stopped") != NULL, "%s", log);
    free(log);
    e2e_cleanup(&srv);
    json_decref(job);
}
END_TEST

START_TEST(test_flags_help_version_and_exit_statuses) {
    char *out;
    static const char *const help[] = {"--help", NULL};
    ck_assert_int_eq(e2e_run(help, &out), 0);
    static const char *const flags[] = {"--bind", "FLOWD_BIND", "--port", "FLOWD_PORT", "--http-threads",
                                        "--max-body", "--max-header", "--max-jobs", "--max-finished",
                                        "--retention", "--grace", "--history-limit", "--events-limit",
                                        "--max-conns", "--max-conns-per-ip", "--idle-timeout",
                                        "--keepalive", "--log-level", "FLOWD_LOG_LEVEL", "--version",
                                        "default 24h", "default 1MiB", "--max-steps",
                                        "FLOWD_MAX_STEPS", "default 10000", "--deadline",
                                        "--max-shared", "--max-template", "--max-answer",
                                        "default 8MiB", "--max-flows", "--max-flow-size",
                                        "--header-timeout", "FLOWD_HEADER_TIMEOUT", "default 10s"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        ck_assert_msg(strstr(out, flags[i]) != NULL, "--help does not mention %s", flags[i]);
    free(out);
    static const char *const version[] = {"--version", NULL};
    ck_assert_int_eq(e2e_run(version, &out), 0);
    ck_assert_str_eq(out, "flowd 0.1.0\n");
    free(out);
    static const char *const unknown[] = {"--prot", "80", NULL};
    ck_assert_int_eq(e2e_run(unknown, &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "unknown flag '--prot'"));
    free(out);
    static const char *const bad[] = {"--max-body", "lots", NULL};
    ck_assert_int_eq(e2e_run(bad, &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "--max-body: 'lots' is not valid"));
    free(out);
    /* a port that is taken: it cannot start */
    e2e_start(&srv, NULL);
    char port[16];
    snprintf(port, sizeof port, "%u", srv.port);
    const char *taken[] = {"--port", port, NULL};
    ck_assert_int_eq(e2e_run(taken, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "cannot listen"));
    free(out);
    stop();
}
END_TEST

static Suite *limits_suite(void) {
    Suite *s = suite_create("limits");
    TCase *tc = tcase_create("limits");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_max_jobs_refuses_with_retry_after);
    tcase_add_test(tc, test_finished_jobs_go_after_the_retention);
    tcase_add_test(tc, test_max_finished_keeps_the_newest);
    tcase_add_test(tc, test_a_stalled_client_is_dropped_and_others_are_served);
    tcase_add_test(tc, test_connections_per_address_are_capped);
    tcase_add_test(tc, test_sigterm_with_a_long_step_exits_after_the_grace);
    tcase_add_test(tc, test_sigterm_lets_the_current_step_finish);
    tcase_add_test(tc, test_flags_help_version_and_exit_statuses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(limits_suite());
}
