/* test_http.c: the asynchronous HTTP client (flow/http.h) against the in-process mock server, and
 * its outbound policy (flow/netpolicy.h) on the connections it makes. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "flow/http.h"
#include "support/harness.h"
#include "support/mock.h"

#define MIB ((size_t)1 << 20)

/* ---- fixtures ------------------------------------------------------------------------------- */

typedef struct env {
    uv_loop_t loop;
    mock_t *mock;
    flow_http_t *http;
    flow_netrules_t *allow; /* what the client was given, or NULL */
} env_t;

/* The mock listens on loopback, which the outbound policy refuses: unless opts says otherwise, the
 * client may reach the mock's address and port, as flowd --allow-outbound 127.0.0.1:PORT would let
 * it, and port 1 of loopback, where nothing listens. */
static void env_open(env_t *e, const flow_http_opts_t *opts)
{
    flow_http_opts_t o = opts ? *opts : (flow_http_opts_t){0};
    char list[64];

    ck_assert_int_eq(uv_loop_init(&e->loop), 0);
    ck_assert_int_eq(mock_start(NULL, &e->mock), 0);
    e->allow = NULL;
    if (!o.allow) {
        snprintf(list, sizeof(list), "127.0.0.1:%u, 127.0.0.1:1", (unsigned)mock_port(e->mock));
        o.allow = e->allow = rules_of(list);
    }
    ck_assert_int_eq(flow_http_new(&e->loop, &o, &e->http), 0);
}

/* A handle left open by the client fails uv_loop_close. */
static void env_close(env_t *e)
{
    flow_http_close(e->http);
    ck_assert_int_eq(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&e->loop), 0);
    mock_stop(e->mock);
    flow_netrules_unref(e->allow);
}

static int small(void)
{
    return getenv("FLOW_TEST_SMALL") != NULL; /* valgrind runs */
}

/* What one callback got. */
typedef struct result {
    int calls;
    int err;
    char message[256]; /* "" when NULL */
    long status;
    json_t *headers;
    char *body;
    size_t body_len;
    long new_connections;
} result_t;

static void keep_result(result_t *r, int err, const char *message, const flow_http_response_t *res)
{
    r->calls++;
    r->err = err;
    snprintf(r->message, sizeof(r->message), "%s", message ? message : "");
    r->status = res->status;
    json_decref(r->headers);
    r->headers = json_incref(res->headers);
    free(r->body);
    r->body = malloc(res->body_len + 1);
    ck_assert_ptr_nonnull(r->body);
    memcpy(r->body, res->body, res->body_len + 1);
    r->body_len = res->body_len;
    r->new_connections = res->new_connections;
}

static void on_result(flow_http_req_t *req, int err, const char *message,
                      const flow_http_response_t *res, void *data)
{
    keep_result(data, err, message, res);
}

static void result_clear(result_t *r)
{
    json_decref(r->headers);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static json_t *result_json(const result_t *r)
{
    json_t *v = json_loadb(r->body, r->body_len, 0, NULL);

    ck_assert_msg(v != NULL, "not JSON: %s", r->body);
    return v;
}

static const char *header(const result_t *r, const char *name)
{
    return json_string_value(json_object_get(r->headers, name));
}

/* Sends rq with its url replaced by the mock's path. */
static int send_path(env_t *e, flow_http_request_t rq, const char *path, flow_http_cb cb,
                     void *data, flow_http_req_t **out)
{
    char *url = mock_url(e->mock, path);
    int err;

    ck_assert_ptr_nonnull(url);
    rq.url = url;
    err = flow_http_send(e->http, &rq, cb, data, out);
    free(url);
    return err;
}

/* Sends one request, runs the loop until nothing is left to do, and returns what came back. */
static void fetch(env_t *e, flow_http_request_t rq, const char *path, result_t *out)
{
    memset(out, 0, sizeof(*out));
    ck_assert_int_eq(send_path(e, rq, path, on_result, out, NULL), 0);
    ck_assert_int_eq(out->calls, 0); /* never from inside send */
    ck_assert_uint_eq(flow_http_in_flight(e->http), 1);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(out->calls, 1);
    ck_assert_uint_eq(flow_http_in_flight(e->http), 0);
}

static void get(env_t *e, const char *path, result_t *out)
{
    fetch(e, (flow_http_request_t){0}, path, out);
}

static mock_stats_t idle_stats(env_t *e)
{
    mock_stats_t st;

    ck_assert_int_eq(mock_wait_idle(e->mock, 10000), 0);
    mock_stats(e->mock, &st);
    return st;
}

/* Runs then(w) once the mock has n requests in flight, looking every 2 ms of loop time (the
 * client needs the loop to send them), or gives up after 10 s: fired stays 0. */
typedef struct when {
    uv_timer_t timer;
    env_t *env;
    uint64_t n;
    uint64_t deadline;
    void (*then)(struct when *w);
    void *data;
    int fired;
} when_t;

static void when_tick(uv_timer_t *timer)
{
    when_t *w = timer->data;
    mock_stats_t st;

    mock_stats(w->env->mock, &st);
    if (st.in_flight < w->n && uv_now(timer->loop) < w->deadline)
        return;
    uv_close((uv_handle_t *)timer, NULL);
    if (st.in_flight >= w->n) {
        w->fired = 1;
        w->then(w);
    }
}

static void when_mock_has(env_t *e, when_t *w, uint64_t n, void (*then)(when_t *), void *data)
{
    *w = (when_t){.env = e, .n = n, .then = then, .data = data};
    w->deadline = uv_now(&e->loop) + 10000;
    ck_assert_int_eq(uv_timer_init(&e->loop, &w->timer), 0);
    w->timer.data = w;
    ck_assert_int_eq(uv_timer_start(&w->timer, when_tick, 2, 2), 0);
}

/* ---- answers -------------------------------------------------------------------------------- */

START_TEST(get_returns_the_json_answer_with_its_headers)
{
    env_t e;
    result_t r;
    json_t *v;

    env_open(&e, NULL);
    get(&e, "/recipes?ingredient=tomato", &r);
    ck_assert_int_eq(r.err, 0);
    ck_assert_str_eq(r.message, "");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(header(&r, "content-type"), "application/json");
    ck_assert_str_eq(header(&r, "content-length"), "81");
    ck_assert_uint_eq(r.body_len, 81);
    v = result_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(v, "ingredient")), "tomato");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(v, "recipes"), 0)),
                     "tomato pasta");
    json_decref(v);
    result_clear(&r);
    env_close(&e);
}
END_TEST

START_TEST(post_sends_the_body_and_headers)
{
    static const char *const headers[] = {"Content-Type: application/json", "X-Trace: abc-1",
                                          "Idempotency-Key: job-7", "Accept:", NULL};
    const char *body = "{\"n\":42,\"text\":\"h\\u00e9\"}";
    env_t e;
    result_t r;
    json_t *v, *sent;
    mock_stats_t st;

    env_open(&e, &(flow_http_opts_t){.user_agent = "flowd-test"});
    fetch(&e, (flow_http_request_t){.method = "POST", .headers = headers, .body = body,
                                    .body_len = strlen(body)},
          "/echo?x=1", &r);
    ck_assert_int_eq(r.err, 0);
    ck_assert_int_eq(r.status, 200);
    v = result_json(&r);
    sent = json_object_get(v, "headers");
    ck_assert_str_eq(json_string_value(json_object_get(v, "method")), "POST");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(v, "query"), "x")), "1");
    ck_assert_str_eq(json_string_value(json_object_get(sent, "x-trace")), "abc-1");
    ck_assert_str_eq(json_string_value(json_object_get(sent, "content-type")), "application/json");
    ck_assert_str_eq(json_string_value(json_object_get(sent, "user-agent")), "flowd-test");
    ck_assert_ptr_null(json_object_get(sent, "expect"));
    ck_assert_ptr_null(json_object_get(sent, "accept")); /* "Accept:" removed curl's */
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(v, "body"), "n")), 42);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(v, "body"), "text")), "hé");
    json_decref(v);
    result_clear(&r);
    st = idle_stats(&e);
    ck_assert_str_eq(st.last_idempotency_key, "job-7");
    ck_assert_uint_eq(mock_idempotency_count(e.mock, "job-7"), 1);
    env_close(&e);
}
END_TEST

START_TEST(methods_are_sent_as_given)
{
    static const char *const methods[] = {"PUT", "PATCH", "DELETE", "GET", NULL};
    env_t e;
    result_t r;
    json_t *v;

    env_open(&e, NULL);
    for (size_t i = 0; methods[i]; i++) {
        fetch(&e, (flow_http_request_t){.method = methods[i], .body = i % 2 ? NULL : "a=b",
                                        .body_len = i % 2 ? 0 : 3},
              "/echo", &r);
        ck_assert_int_eq(r.status, 200);
        v = result_json(&r);
        ck_assert_str_eq(json_string_value(json_object_get(v, "method")), methods[i]);
        if (i % 2 == 0)
            ck_assert_str_eq(json_string_value(json_object_get(v, "body")), "a=b");
        else
            ck_assert(json_is_null(json_object_get(v, "body")));
        json_decref(v);
        result_clear(&r);
    }
    fetch(&e, (flow_http_request_t){.method = "HEAD"}, "/page/1", &r);
    ck_assert_int_eq(r.err, 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert_str_eq(header(&r, "content-type"), "text/html; charset=utf-8");
    result_clear(&r);
    env_close(&e);
}
END_TEST

START_TEST(response_headers_are_lowercased_and_repeats_joined)
{
    env_t e;
    result_t r;

    env_open(&e, NULL);
    get(&e, "/headers?X-Multi=one&Set-Cookie=a%3D1&x-multi=two&X-Multi=three", &r);
    ck_assert_int_eq(r.err, 0);
    ck_assert_str_eq(header(&r, "x-multi"), "one, two, three");
    ck_assert_str_eq(header(&r, "set-cookie"), "a=1");
    ck_assert_ptr_null(json_object_get(r.headers, "X-Multi"));
    result_clear(&r);
    env_close(&e);
}
END_TEST

START_TEST(an_error_status_is_an_answer_not_an_error)
{
    env_t e;
    result_t r;
    json_t *v;

    env_open(&e, NULL);
    get(&e, "/status/500", &r);
    ck_assert_int_eq(r.err, 0);
    ck_assert_int_eq(r.status, 500);
    v = result_json(&r);
    ck_assert_int_eq(json_integer_value(json_object_get(v, "status")), 500);
    json_decref(v);
    result_clear(&r);
    get(&e, "/no/such/path", &r);
    ck_assert_int_eq(r.err, 0);
    ck_assert_int_eq(r.status, 404);
    result_clear(&r);
    env_close(&e);
}
END_TEST

START_TEST(a_body_under_the_cap_arrives_whole)
{
    static const char *const paths[] = {"/huge/300000", "/huge/300000?chunked=1", NULL};
    env_t e;
    result_t r;

    env_open(&e, &(flow_http_opts_t){.max_body = 300000});
    for (size_t i = 0; paths[i]; i++) {
        get(&e, paths[i], &r);
        ck_assert_int_eq(r.err, 0);
        ck_assert_uint_eq(r.body_len, 300000);
        ck_assert_uint_eq(strlen(r.body), 300000);
        for (size_t k = 0; k < r.body_len; k++)
            ck_assert_int_eq(r.body[k], 'a' + (int)(k % 26));
        result_clear(&r);
    }
    env_close(&e);
}
END_TEST

/* ---- failures ------------------------------------------------------------------------------- */

START_TEST(a_slow_answer_times_out)
{
    env_t e;
    result_t r;
    mock_stats_t st;

    env_open(&e, NULL);
    fetch(&e, (flow_http_request_t){.timeout_ms = 200}, "/delay/1000", &r);
    ck_assert_int_eq(r.err, FLOW_ETIMEDOUT);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.message, "request timed out");
    result_clear(&r);
    st = idle_stats(&e);
    ck_assert_uint_eq(st.aborted, 1); /* the mock saw the client go */
    ck_assert_uint_eq(st.completed, 0);
    env_close(&e);
}
END_TEST

/* curl itself would fail the queued request only once the first one is done. */
typedef struct order {
    int next;
    int slow, queued; /* their turn in the order the callbacks ran: 1 or 2 */
    int queued_err;
} order_t;

static void on_slow(flow_http_req_t *req, int err, const char *message,
                    const flow_http_response_t *res, void *data)
{
    order_t *o = data;

    ck_assert_int_eq(err, 0);
    o->slow = ++o->next;
}

static void on_queued(flow_http_req_t *req, int err, const char *message,
                      const flow_http_response_t *res, void *data)
{
    order_t *o = data;

    o->queued_err = err;
    o->queued = ++o->next;
}

START_TEST(a_request_queued_for_a_connection_times_out_on_time)
{
    env_t e;
    order_t o = {0};

    env_open(&e, &(flow_http_opts_t){.max_host_connections = 1});
    ck_assert_int_eq(send_path(&e, (flow_http_request_t){0}, "/delay/1000", on_slow, &o, NULL), 0);
    ck_assert_int_eq(
        send_path(&e, (flow_http_request_t){.timeout_ms = 100}, "/page/1", on_queued, &o, NULL), 0);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(o.queued_err, FLOW_ETIMEDOUT);
    ck_assert_int_eq(o.queued, 1);
    ck_assert_int_eq(o.slow, 2);
    ck_assert_uint_eq(idle_stats(&e).requests, 1);
    env_close(&e);
}
END_TEST

/* Odd requests time out before the mock answers, even ones do not: every deadline is kept. */
START_TEST(each_request_keeps_its_own_timeout)
{
    enum { N = 60 };
    static const uint64_t short_ms[] = {120, 40, 90, 10, 70};
    result_t r[N] = {{0}};
    env_t e;

    env_open(&e, NULL);
    for (int i = 0; i < N; i++) {
        uint64_t timeout = i % 2 ? short_ms[i % 5] : 5000 - (uint64_t)i;

        ck_assert_int_eq(send_path(&e, (flow_http_request_t){.timeout_ms = timeout},
                                   "/delay/300", on_result, &r[i], NULL),
                         0);
    }
    uv_run(&e.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(r[i].calls, 1);
        ck_assert_int_eq(r[i].err, i % 2 ? FLOW_ETIMEDOUT : 0);
        result_clear(&r[i]);
    }
    env_close(&e);
}
END_TEST

START_TEST(a_reset_connection_is_an_http_error)
{
    env_t e;
    result_t r;

    env_open(&e, NULL);
    get(&e, "/reset", &r);
    ck_assert_int_eq(r.err, FLOW_EHTTP);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_ne(r.message, "");
    result_clear(&r);
    env_close(&e);
}
END_TEST

START_TEST(a_refused_connection_is_an_http_error)
{
    env_t e;
    result_t r = {0};

    env_open(&e, NULL);
    /* port 1 on loopback: nothing listens there */
    ck_assert_int_eq(flow_http_send(e.http, &(flow_http_request_t){.url = "http://127.0.0.1:1/"},
                                    on_result, &r, NULL),
                     0);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.err, FLOW_EHTTP);
    ck_assert_str_ne(r.message, "");
    result_clear(&r);
    env_close(&e);
}
END_TEST

/* The cap is checked on the Content-Length (curl refuses before the body) and, for a chunked
 * body, in the write callback; either way the transfer stops early. */
START_TEST(a_body_over_the_cap_is_too_big_and_stops_the_transfer)
{
    static const char *const paths[] = {"/huge/67108864", "/huge/67108864?chunked=1", NULL};
    const uint64_t total = 64 * MIB;
    env_t e;
    result_t r;
    mock_stats_t st;

    env_open(&e, NULL);
    for (size_t i = 0; paths[i]; i++) {
        mock_reset_stats(e.mock);
        fetch(&e, (flow_http_request_t){.max_body = MIB}, paths[i], &r);
        ck_assert_int_eq(r.err, FLOW_ETOOBIG);
        ck_assert_int_eq(r.status, 200);
        ck_assert_uint_le(r.body_len, MIB);
        ck_assert_str_ne(r.message, "");
        result_clear(&r);
        st = idle_stats(&e);
        ck_assert_uint_eq(st.aborted, 1);
        ck_assert_msg(st.huge_bytes < total / 4, "%s: the mock made %llu bytes", paths[i],
                      (unsigned long long)st.huge_bytes);
    }
    env_close(&e);
}
END_TEST

START_TEST(a_bad_request_is_refused_at_once)
{
    static const char *const urls[] = {"",
                                       "not a url",
                                       "http://",
                                       "http://exa mple.com/",
                                       "ftp://127.0.0.1/file",
                                       "file:///etc/passwd",
                                       "//127.0.0.1/no-scheme",
                                       NULL};
    static const char *const crlf[] = {"X-Ok: 1", "X-Evil: a\r\nHost: other", NULL};
    static const char *const empty[] = {"", NULL};
    env_t e;
    result_t r = {0};
    flow_http_req_t *req = (flow_http_req_t *)&r;
    char *ok_url;

    env_open(&e, NULL);
    for (size_t i = 0; urls[i]; i++) {
        ck_assert_msg(flow_http_send(e.http, &(flow_http_request_t){.url = urls[i]}, on_result, &r,
                                     &req) == FLOW_EINVAL,
                      "accepted: %s", urls[i]);
        ck_assert_ptr_null(req);
    }
    ck_assert_int_eq(flow_http_send(e.http, &(flow_http_request_t){0}, on_result, &r, NULL),
                     FLOW_EINVAL);
    ok_url = mock_url(e.mock, "/echo");
    ck_assert_int_eq(flow_http_send(e.http, &(flow_http_request_t){.url = ok_url, .method = "GE T"},
                                    on_result, &r, NULL),
                     FLOW_EINVAL);
    ck_assert_int_eq(flow_http_send(e.http, &(flow_http_request_t){.url = ok_url, .method = ""},
                                    on_result, &r, NULL),
                     FLOW_EINVAL);
    ck_assert_int_eq(flow_http_send(e.http, &(flow_http_request_t){.url = ok_url, .headers = crlf},
                                    on_result, &r, NULL),
                     FLOW_EINVAL);
    ck_assert_int_eq(flow_http_send(e.http, &(flow_http_request_t){.url = ok_url, .headers = empty},
                                    on_result, &r, NULL),
                     FLOW_EINVAL);
    ck_assert_int_eq(flow_http_send(e.http, &(flow_http_request_t){.url = ok_url, .body_len = 3},
                                    on_result, &r, NULL),
                     FLOW_EINVAL);
    ck_assert_int_eq(flow_http_send(e.http, &(flow_http_request_t){.url = ok_url}, NULL, &r, NULL),
                     FLOW_EINVAL);
    free(ok_url);
    ck_assert_uint_eq(flow_http_in_flight(e.http), 0);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(r.calls, 0);
    ck_assert_uint_eq(idle_stats(&e).requests, 0);
    env_close(&e);
}
END_TEST

/* ---- abort and close ------------------------------------------------------------------------ */

static void abort_it(when_t *w)
{
    flow_http_abort(w->data);
}

START_TEST(an_aborted_request_never_calls_back_and_its_connection_closes)
{
    env_t e;
    result_t r = {0};
    flow_http_req_t *req;
    when_t w;
    mock_stats_t st;

    env_open(&e, NULL);
    ck_assert_int_eq(send_path(&e, (flow_http_request_t){0}, "/delay/300", on_result, &r, &req), 0);
    ck_assert_ptr_nonnull(req);
    when_mock_has(&e, &w, 1, abort_it, req);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ck_assert(w.fired);
    ck_assert_int_eq(r.calls, 0);
    ck_assert_uint_eq(flow_http_in_flight(e.http), 0);
    st = idle_stats(&e);
    ck_assert_uint_eq(st.requests, 1);
    ck_assert_uint_eq(st.aborted, 1);
    ck_assert_uint_eq(st.completed, 0);
    env_close(&e);
}
END_TEST

static void close_client(when_t *w)
{
    env_t *e = w->env;

    flow_http_close(e->http);
    ck_assert_int_eq(flow_http_send(e->http, &(flow_http_request_t){.url = "http://127.0.0.1/"},
                                    on_result, w->data, NULL),
                     FLOW_ESTATE);
    e->http = NULL;
}

START_TEST(closing_the_client_drops_the_requests_in_flight)
{
    enum { N = 20 };
    env_t e;
    result_t r = {0};
    when_t w;
    mock_stats_t st;

    env_open(&e, NULL);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(send_path(&e, (flow_http_request_t){0}, "/delay/300", on_result, &r, NULL),
                         0);
    when_mock_has(&e, &w, N, close_client, &r);
    ck_assert_int_eq(uv_run(&e.loop, UV_RUN_DEFAULT), 0);
    ck_assert(w.fired);
    ck_assert_int_eq(r.calls, 0);
    st = idle_stats(&e);
    ck_assert_uint_eq(st.aborted, N);
    ck_assert_uint_eq(st.completed, 0);
    env_close(&e);
}
END_TEST

/* A fast request's callback acts on a slow one still in flight. */
typedef struct pair {
    env_t *env;
    result_t fast, slow;
    flow_http_req_t *slow_req;
    int close; /* the fast callback closes the client instead of aborting the slow request */
} pair_t;

static void on_fast(flow_http_req_t *req, int err, const char *message,
                    const flow_http_response_t *res, void *data)
{
    pair_t *p = data;

    keep_result(&p->fast, err, message, res);
    flow_http_abort(req); /* its own: a no-op */
    if (p->close) {
        flow_http_close(p->env->http);
        p->env->http = NULL;
    } else {
        flow_http_abort(p->slow_req);
    }
}

static void send_fast(when_t *w)
{
    pair_t *p = w->data;

    ck_assert_int_eq(send_path(p->env, (flow_http_request_t){0}, "/page/1", on_fast, p, NULL), 0);
}

/* The fast request goes once the mock has the slow one, so the mock sees that one go away. */
static void run_pair(int close)
{
    env_t e;
    pair_t p = {.env = &e, .close = close};
    when_t w;
    mock_stats_t st;

    env_open(&e, NULL);
    ck_assert_int_eq(
        send_path(&e, (flow_http_request_t){0}, "/delay/300", on_result, &p.slow, &p.slow_req), 0);
    when_mock_has(&e, &w, 1, send_fast, &p);
    ck_assert_int_eq(uv_run(&e.loop, UV_RUN_DEFAULT), 0);
    ck_assert(w.fired);
    ck_assert_int_eq(p.fast.calls, 1);
    ck_assert_int_eq(p.fast.status, 200);
    ck_assert_int_eq(p.slow.calls, 0);
    st = idle_stats(&e);
    ck_assert_uint_eq(st.completed, 1);
    ck_assert_uint_eq(st.aborted, 1);
    result_clear(&p.fast);
    env_close(&e);
}

START_TEST(a_callback_may_abort_another_request)
{
    run_pair(0);
}
END_TEST

START_TEST(a_callback_may_close_the_client)
{
    run_pair(1);
}
END_TEST

/* ---- many requests and connections ---------------------------------------------------------- */

typedef struct batch {
    env_t *env;
    size_t n, done, failed;
    result_t *results;
} batch_t;

typedef struct slot {
    batch_t *batch;
    size_t i;
} slot_t;

static void on_batch_item(flow_http_req_t *req, int err, const char *message,
                          const flow_http_response_t *res, void *data)
{
    slot_t *s = data;

    keep_result(&s->batch->results[s->i], err, message, res);
    s->batch->done++;
}

/* Sends n requests at once to path_fmt with the request's index, runs the loop, checks each
 * answer is 200 and reports how many had to open a connection. */
static void run_batch(env_t *e, size_t n, const char *path_fmt, flow_http_request_t rq)
{
    batch_t b = {.env = e, .n = n, .results = calloc(n, sizeof(result_t))};
    slot_t *slots = calloc(n, sizeof(slot_t));
    char path[128];

    ck_assert_ptr_nonnull(b.results);
    ck_assert_ptr_nonnull(slots);
    for (size_t i = 0; i < n; i++) {
        slots[i] = (slot_t){&b, i};
        snprintf(path, sizeof(path), path_fmt, i);
        ck_assert_int_eq(send_path(e, rq, path, on_batch_item, &slots[i], NULL), 0);
    }
    ck_assert_uint_eq(flow_http_in_flight(e->http), n);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    ck_assert_uint_eq(b.done, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(b.results[i].err == 0, "request %zu: %s", i, b.results[i].message);
        ck_assert_int_eq(b.results[i].status, 200);
        snprintf(path, sizeof(path), "Page %zu<", i);
        ck_assert_msg(strstr(b.results[i].body, path), "request %zu got %s", i, b.results[i].body);
        result_clear(&b.results[i]);
    }
    free(b.results);
    free(slots);
}

START_TEST(thousands_of_slow_requests_run_concurrently)
{
    size_t n = small() ? 200 : 2000;
    env_t e;
    mock_stats_t st;

    env_open(&e, NULL);
    run_batch(&e, n, "/delay/100/page/%zu", (flow_http_request_t){.timeout_ms = 60000});
    st = idle_stats(&e);
    ck_assert_uint_eq(st.requests, n);
    ck_assert_uint_eq(st.completed, n);
    ck_assert_uint_eq(st.routes[MOCK_DELAY], n);
    ck_assert_uint_gt(st.max_in_flight, 1);
    env_close(&e);
}
END_TEST

/* /gate/N answers nobody before N requests wait: it passes only if all are in flight at once. */
START_TEST(a_thousand_requests_are_in_flight_at_once)
{
    size_t n = small() ? 100 : 1000;
    char fmt[64];
    env_t e;
    mock_stats_t st;

    env_open(&e, NULL);
    snprintf(fmt, sizeof(fmt), "/gate/%zu/page/%%zu", n);
    run_batch(&e, n, fmt, (flow_http_request_t){.timeout_ms = 30000});
    st = idle_stats(&e);
    ck_assert_uint_eq(st.max_in_flight, n);
    ck_assert_uint_eq(st.connections, n);
    env_close(&e);
}
END_TEST

START_TEST(max_host_connections_bounds_the_requests_in_flight)
{
    env_t e;
    mock_stats_t st;

    env_open(&e, &(flow_http_opts_t){.max_host_connections = 4});
    run_batch(&e, 40, "/delay/20/page/%zu", (flow_http_request_t){0});
    st = idle_stats(&e);
    ck_assert_uint_eq(st.completed, 40);
    ck_assert_uint_le(st.max_in_flight, 4);
    ck_assert_uint_le(st.connections, 4);
    env_close(&e);
}
END_TEST

/* Each callback sends the next request, so they run one after the other on one connection. */
typedef struct chain {
    env_t *env;
    int left;
    long connections; /* summed new_connections */
    int calls;
} chain_t;

static void on_chain(flow_http_req_t *req, int err, const char *message,
                     const flow_http_response_t *res, void *data)
{
    chain_t *ch = data;

    ck_assert_int_eq(err, 0);
    ck_assert_int_eq(res->status, 200);
    ch->calls++;
    ch->connections += res->new_connections;
    if (--ch->left > 0)
        ck_assert_int_eq(
            send_path(ch->env, (flow_http_request_t){0}, "/page/2", on_chain, ch, NULL), 0);
}

START_TEST(sequential_requests_reuse_one_connection)
{
    env_t e;
    chain_t ch = {.env = &e, .left = 10};
    mock_stats_t st;

    env_open(&e, NULL);
    ck_assert_int_eq(send_path(&e, (flow_http_request_t){0}, "/page/1", on_chain, &ch, NULL), 0);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(ch.calls, 10);
    ck_assert_int_eq(ch.connections, 1);
    st = idle_stats(&e);
    ck_assert_uint_eq(st.requests, 10);
    ck_assert_uint_eq(st.connections, 1);
    env_close(&e);
}
END_TEST

/* ---- the mock's scripted answers, which later tests of the http and llm nodes count on ----- */

static json_t *chat(env_t *e, const char *auth, const char *model, long *status)
{
    const char *headers[] = {"Content-Type: application/json", auth, NULL};
    char *body = NULL;
    result_t r;
    json_t *req, *v;

    req = json_pack("{sss[{ssss}{ssss}]}", "model", model, "messages", "role", "system", "content",
                    "be brief", "role", "user", "content", "how to cook rice");
    ck_assert_ptr_nonnull(req);
    body = json_dumps(req, 0);
    fetch(e, (flow_http_request_t){.headers = auth ? headers : NULL, .body = body,
                                   .body_len = strlen(body)},
          "/v1/chat/completions", &r);
    ck_assert_int_eq(r.err, 0);
    *status = r.status;
    v = result_json(&r);
    result_clear(&r);
    free(body);
    json_decref(req);
    return v;
}

START_TEST(the_mock_answers_chat_completions_for_its_key_only)
{
    env_t e = {0};
    mock_stats_t st;
    json_t *v, *choice, *usage;
    long status;
    char list[64];

    ck_assert_int_eq(uv_loop_init(&e.loop), 0);
    ck_assert_int_eq(mock_start(&(mock_opts_t){.api_key = "sk-test"}, &e.mock), 0);
    snprintf(list, sizeof(list), "127.0.0.1:%u", (unsigned)mock_port(e.mock));
    e.allow = rules_of(list);
    ck_assert_int_eq(flow_http_new(&e.loop, &(flow_http_opts_t){.allow = e.allow}, &e.http), 0);
    v = chat(&e, "Authorization: Bearer sk-test", "gpt-mock", &status);
    ck_assert_int_eq(status, 200);
    choice = json_array_get(json_object_get(v, "choices"), 0);
    usage = json_object_get(v, "usage");
    ck_assert_str_eq(json_string_value(json_object_get(v, "model")), "gpt-mock");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(choice, "message"),
                                                       "content")),
                     "mock answer to: how to cook rice");
    ck_assert_str_eq(json_string_value(json_object_get(choice, "finish_reason")), "stop");
    ck_assert_int_eq(json_integer_value(json_object_get(usage, "prompt_tokens")), 6);
    ck_assert_int_eq(json_integer_value(json_object_get(usage, "total_tokens")), 13);
    json_decref(v);
    v = chat(&e, "Authorization: Bearer wrong", "gpt-mock", &status);
    ck_assert_int_eq(status, 401);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(v, "error"), "code")),
                     "invalid_api_key");
    json_decref(v);
    v = chat(&e, NULL, "gpt-mock", &status);
    ck_assert_int_eq(status, 401);
    json_decref(v);
    st = idle_stats(&e);
    ck_assert_str_eq(st.last_authorization, "Bearer wrong");
    ck_assert_uint_eq(st.routes[MOCK_CHAT], 3);
    env_close(&e);
}
END_TEST

START_TEST(the_mock_fails_a_flaky_key_n_times_then_answers)
{
    env_t e;
    result_t r;
    json_t *v;

    env_open(&e, NULL);
    for (int i = 1; i <= 2; i++) {
        get(&e, "/flaky/job-1/2", &r);
        ck_assert_int_eq(r.status, 500);
        result_clear(&r);
    }
    get(&e, "/flaky/job-2/2/recipes?ingredient=egg", &r); /* another key counts apart */
    ck_assert_int_eq(r.status, 500);
    result_clear(&r);
    get(&e, "/flaky/job-1/2", &r);
    ck_assert_int_eq(r.status, 200);
    v = result_json(&r);
    ck_assert_int_eq(json_integer_value(json_object_get(v, "attempts")), 3);
    json_decref(v);
    result_clear(&r);
    get(&e, "/delay/10/flaky/job-2/1/recipes?ingredient=egg", &r);
    ck_assert_int_eq(r.status, 200);
    v = result_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(v, "ingredient")), "egg");
    json_decref(v);
    result_clear(&r);
    mock_reset_stats(e.mock);
    get(&e, "/flaky/job-1/2", &r); /* a reset starts the count over */
    ck_assert_int_eq(r.status, 500);
    result_clear(&r);
    env_close(&e);
}
END_TEST

START_TEST(the_mock_counts_idempotency_keys)
{
    static const char *const k1[] = {"Idempotency-Key: k1", NULL};
    static const char *const k2[] = {"Idempotency-Key: k2", NULL};
    env_t e;
    result_t r;
    mock_stats_t st;

    env_open(&e, NULL);
    for (int i = 0; i < 3; i++) {
        fetch(&e, (flow_http_request_t){.headers = k1}, "/status/503", &r);
        result_clear(&r);
    }
    fetch(&e, (flow_http_request_t){.headers = k2}, "/status/200", &r);
    result_clear(&r);
    get(&e, "/recipes", &r); /* no key, and no ingredient */
    ck_assert_int_eq(r.status, 400);
    result_clear(&r);
    st = idle_stats(&e);
    ck_assert_uint_eq(st.idempotency_keys, 2);
    ck_assert_str_eq(st.last_idempotency_key, "k2");
    ck_assert_uint_eq(mock_idempotency_count(e.mock, "k1"), 3);
    ck_assert_uint_eq(mock_idempotency_count(e.mock, "k3"), 0);
    ck_assert_uint_eq(st.requests, 5);
    ck_assert_uint_eq(st.completed, 5);
    env_close(&e);
}
END_TEST

/* ---- the outbound policy -------------------------------------------------------------------- */

/* A listener on the test's loop that counts the connections it accepts and closes each at once
 * (the client then sees an empty reply): a connection the policy refuses is never counted. It does
 * not keep the loop alive, so that uv_run returns once the client is done. */
typedef struct counter {
    uv_tcp_t tcp;
    unsigned port;
    int accepted;
} counter_t;

static void counter_conn_closed(uv_handle_t *h)
{
    free(h);
}

static void counter_on_connection(uv_stream_t *server, int status)
{
    counter_t *c = server->data;
    uv_tcp_t *conn = malloc(sizeof(*conn));

    ck_assert_ptr_nonnull(conn);
    ck_assert_int_eq(status, 0);
    ck_assert_int_eq(uv_tcp_init(server->loop, conn), 0);
    ck_assert_int_eq(uv_accept(server, (uv_stream_t *)conn), 0);
    c->accepted++;
    uv_close((uv_handle_t *)conn, counter_conn_closed);
}

/* 0, or -1 when the address cannot be bound (no ::1 on this machine). */
static int counter_open(uv_loop_t *loop, counter_t *c, const char *ip)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    memset(c, 0, sizeof(*c));
    if (strchr(ip, ':'))
        ck_assert_int_eq(uv_ip6_addr(ip, 0, (struct sockaddr_in6 *)&ss), 0);
    else
        ck_assert_int_eq(uv_ip4_addr(ip, 0, (struct sockaddr_in *)&ss), 0);
    ck_assert_int_eq(uv_tcp_init(loop, &c->tcp), 0);
    c->tcp.data = c;
    if (uv_tcp_bind(&c->tcp, (struct sockaddr *)&ss, 0) != 0 ||
        uv_listen((uv_stream_t *)&c->tcp, 16, counter_on_connection) != 0) {
        uv_close((uv_handle_t *)&c->tcp, NULL);
        return -1;
    }
    uv_unref((uv_handle_t *)&c->tcp);
    ck_assert_int_eq(uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len), 0);
    c->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static void counter_close(counter_t *c)
{
    uv_close((uv_handle_t *)&c->tcp, NULL);
}

/* A client with exactly these lists (either NULL), beside the mock; PORT in them is the mock's. */
static void env_open_with(env_t *e, const char *allow, const char *deny)
{
    char a[512], d[512];
    flow_netrules_t *deny_rules = NULL;

    ck_assert_int_eq(uv_loop_init(&e->loop), 0);
    ck_assert_int_eq(mock_start(NULL, &e->mock), 0);
    snprintf(a, sizeof(a), "%s", allow ? allow : "");
    snprintf(d, sizeof(d), "%s", deny ? deny : "");
    for (char *p = strstr(a, "PORT"); p; p = strstr(a, "PORT")) {
        char rest[512];

        snprintf(rest, sizeof(rest), "%s", p + 4);
        snprintf(p, sizeof(a) - (size_t)(p - a), "%u%s", (unsigned)mock_port(e->mock), rest);
    }
    e->allow = rules_of(a);
    if (deny)
        deny_rules = rules_of(d);
    ck_assert_int_eq(flow_http_new(&e->loop, &(flow_http_opts_t){.allow = e->allow, .deny = deny_rules},
                                   &e->http),
                     0);
    flow_netrules_unref(deny_rules); /* the client keeps its own reference */
}

/* Sends GET url with the request's own allow list (may be NULL) and runs the loop until the
 * answer (the counters' accepts run meanwhile). */
static void fetch_url(env_t *e, const char *url, flow_netrules_t *allow, result_t *out)
{
    memset(out, 0, sizeof(*out));
    ck_assert_int_eq(flow_http_send(e->http, &(flow_http_request_t){.url = url, .allow = allow},
                                    on_result, out, NULL),
                     0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(out->calls, 1);
}

static void assert_refused(env_t *e, const char *url, const char *message)
{
    result_t r;

    fetch_url(e, url, NULL, &r);
    ck_assert_msg(r.err == FLOW_EOUTBOUND, "%s: %s (%d), not refused", url, r.message, r.err);
    ck_assert_int_eq(r.status, 0);
    if (message)
        ck_assert_str_eq(r.message, message);
    result_clear(&r);
}

static char *printed(const char *fmt, unsigned port)
{
    char *s = NULL;

    ck_assert_int_ge(asprintf(&s, fmt, port, port), 0);
    return s;
}

/* Every spelling of loopback the issue tried (and some more): each is refused with a message that
 * names the address or the name, and neither the mock on 127.0.0.1 nor a listener on ::1 ever
 * sees a connection. */
START_TEST(every_spelling_of_loopback_is_refused_without_a_connection)
{
    static const struct {
        const char *url;
        const char *message; /* %u is the port */
    } cases[] = {
        {"http://127.0.0.1:%u/echo", "127.0.0.1:%u refused: loopback"},
        {"http://127.1:%u/echo", "127.0.0.1:%u refused: loopback"},
        {"http://0x7f000001:%u/echo", "127.0.0.1:%u refused: loopback"},
        {"http://2130706433:%u/echo", "127.0.0.1:%u refused: loopback"},
        {"http://017700000001:%u/echo", "127.0.0.1:%u refused: loopback"},
        {"http://0177.0.0.1:%u/echo", "127.0.0.1:%u refused: loopback"},
        {"http://127.000.000.001:%u/echo", "127.0.0.1:%u refused: loopback"},
        {"http://[::ffff:127.0.0.1]:%u/echo", "127.0.0.1:%u refused: loopback"},
        {"http://[::ffff:7f00:1]:%u/echo", "127.0.0.1:%u refused: loopback"},
        {"http://[::127.0.0.1]:%u/echo", "[::127.0.0.1]:%u refused: loopback inside ::/96"},
        {"http://0.0.0.0:%u/echo", "0.0.0.0:%u refused: unspecified"},
        {"http://0:%u/echo", "0.0.0.0:%u refused: unspecified"},
        {"http://[::]:%u/echo", "[::]:%u refused: unspecified"},
        {"http://localhost:%u/echo", "localhost:%u refused: localhost resolves to a loopback address"},
        {"http://LocalHost:%u/echo", "LocalHost:%u refused: LocalHost resolves to a loopback address"},
        /* a name mapped to 127.0.0.1 without /etc/hosts: curl answers *.localhost itself */
        {"http://svc.localhost:%u/echo",
         "svc.localhost:%u refused: svc.localhost resolves to a loopback address"},
    };
    env_t e;
    counter_t v6;
    int have_v6;
    mock_stats_t st;

    env_open_with(&e, NULL, NULL);
    have_v6 = counter_open(&e.loop, &v6, "::1") == 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned port = mock_port(e.mock);
        char *url = printed(cases[i].url, port);
        char *want = printed(cases[i].message, port);
        result_t r;

        fetch_url(&e, url, NULL, &r);
        ck_assert_msg(r.err == FLOW_EOUTBOUND, "%s: %s, not refused", url, r.message);
        ck_assert_msg(strncmp(r.message, "outbound connection to ", 23) == 0 &&
                          strncmp(r.message + 23, want, strlen(want)) == 0,
                      "%s: %s", url, r.message);
        ck_assert_msg(strstr(r.message, "(allow it with --allow-outbound ") != NULL, "%s", r.message);
        result_clear(&r);
        free(url);
        free(want);
    }
    if (have_v6) {
        char *url = printed("http://[::1]:%u/echo", v6.port);
        char *want = printed("outbound connection to [::1]:%u refused: loopback (allow it with "
                             "--allow-outbound [::1]:%u)",
                             v6.port);

        assert_refused(&e, url, want);
        free(url);
        free(want);
        uv_run(&e.loop, UV_RUN_NOWAIT);
        ck_assert_int_eq(v6.accepted, 0);
        counter_close(&v6);
    }
    mock_stats(e.mock, &st);
    ck_assert_uint_eq(st.connections, 0);
    ck_assert_uint_eq(st.requests, 0);
    env_close(&e);
}
END_TEST

/* Cloud metadata and link-local addresses: refused in the open-socket callback, before a socket
 * exists, so no packet leaves. The first assertion is the guard: a client that connected to
 * loopback would also try these, so the test stops there and sends nothing anywhere else. */
START_TEST(link_local_and_metadata_addresses_are_refused_before_a_socket_exists)
{
    env_t e;
    mock_stats_t st;
    char *url;

    env_open_with(&e, NULL, NULL);
    url = mock_url(e.mock, "/echo");
    assert_refused(&e, url, NULL);
    free(url);
    mock_stats(e.mock, &st);
    ck_assert_uint_eq(st.connections, 0);
    assert_refused(&e, "http://169.254.169.254/latest/meta-data/",
                   "outbound connection to 169.254.169.254:80 refused: link-local (allow it with "
                   "--allow-outbound 169.254.169.254:80)");
    assert_refused(&e, "http://[fe80::1]:8080/",
                   "outbound connection to [fe80::1]:8080 refused: link-local (allow it with "
                   "--allow-outbound [fe80::1]:8080)");
    assert_refused(&e, "http://[fe80::a9fe:a9fe%25lo]/", NULL);
    assert_refused(&e, "http://[::ffff:169.254.169.254]/",
                   "outbound connection to 169.254.169.254:80 refused: link-local (allow it with "
                   "--allow-outbound 169.254.169.254:80)");
    assert_refused(&e, "http://[64:ff9b::169.254.169.254]/",
                   "outbound connection to [64:ff9b::a9fe:a9fe]:80 refused: link-local inside "
                   "64:ff9b::/96 (allow it with --allow-outbound [64:ff9b::a9fe:a9fe]:80)");
    assert_refused(&e, "http://10.0.0.1:9/", NULL);
    assert_refused(&e, "http://192.168.1.1/", NULL);
    assert_refused(&e, "http://[fd00::1]/", NULL);
    env_close(&e);
}
END_TEST

/* An allow entry opens exactly its address and port: another port of the same address, and the
 * same port on ::1, stay refused; a name whose addresses include it gets through on that one (happy
 * eyeballs goes on from the refused ::1 to 127.0.0.1). */
START_TEST(an_allow_entry_lets_exactly_its_address_and_port_through)
{
    env_t e;
    counter_t other, v6;
    int have_v6;
    result_t r;
    char *url;
    mock_stats_t st;

    env_open_with(&e, "127.0.0.1:PORT", NULL);
    ck_assert_int_eq(counter_open(&e.loop, &other, "127.0.0.1"), 0);
    have_v6 = counter_open(&e.loop, &v6, "::1") == 0;
    get(&e, "/echo", &r);
    ck_assert_int_eq(r.err, 0);
    ck_assert_int_eq(r.status, 200);
    result_clear(&r);
    url = printed("http://127.0.0.1:%u/", other.port);
    assert_refused(&e, url, NULL);
    free(url);
    url = printed("http://localhost:%u/echo", mock_port(e.mock));
    fetch_url(&e, url, NULL, &r);
    ck_assert_msg(r.err == 0 && r.status == 200, "%s: %s", url, r.message);
    result_clear(&r);
    free(url);
    if (have_v6) {
        url = printed("http://[::1]:%u/", v6.port);
        assert_refused(&e, url, NULL);
        free(url);
    }
    uv_run(&e.loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(other.accepted, 0);
    if (have_v6) {
        ck_assert_int_eq(v6.accepted, 0);
        counter_close(&v6);
    }
    counter_close(&other);
    st = idle_stats(&e);
    ck_assert_uint_eq(st.requests, 2);
    env_close(&e);
}
END_TEST

/* IPv6, where the machine has ::1: an entry in brackets lets its port through and only it. */
START_TEST(an_ipv6_entry_lets_its_address_and_port_through)
{
    env_t e;
    counter_t v6, v6b;
    result_t r;
    char list[64], *url;
    flow_netrules_t *allow;

    ck_assert_int_eq(uv_loop_init(&e.loop), 0);
    ck_assert_int_eq(mock_start(NULL, &e.mock), 0);
    if (counter_open(&e.loop, &v6, "::1") != 0) {
        fprintf(stderr, "an_ipv6_entry_lets_its_address_and_port_through: no ::1 here, skipped\n");
        uv_run(&e.loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(uv_loop_close(&e.loop), 0);
        mock_stop(e.mock);
        return;
    }
    ck_assert_int_eq(counter_open(&e.loop, &v6b, "::1"), 0);
    snprintf(list, sizeof(list), "[::1]:%u", v6.port);
    e.allow = rules_of(list);
    ck_assert_int_eq(flow_http_new(&e.loop, &(flow_http_opts_t){.allow = e.allow}, &e.http), 0);
    url = printed("http://[::1]:%u/", v6.port);
    fetch_url(&e, url, NULL, &r);
    ck_assert_int_eq(r.err, FLOW_EHTTP); /* it connected: the counter closed it at once */
    result_clear(&r);
    free(url);
    url = printed("http://[::1]:%u/", v6b.port);
    assert_refused(&e, url, NULL);
    free(url);
    allow = rules_of("[::1]"); /* a request's own list: any port of ::1 */
    url = printed("http://[::1]:%u/", v6b.port);
    fetch_url(&e, url, allow, &r);
    ck_assert_int_eq(r.err, FLOW_EHTTP);
    result_clear(&r);
    free(url);
    flow_netrules_unref(allow);
    uv_run(&e.loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(v6.accepted, 1);
    ck_assert_int_eq(v6b.accepted, 1);
    counter_close(&v6);
    counter_close(&v6b);
    env_close(&e);
}
END_TEST

/* A host-name entry allows what that name resolves to, for requests to that name only: the same
 * address by another name or by number stays refused. */
START_TEST(a_host_name_entry_allows_that_name_only)
{
    env_t e;
    result_t r;
    char *url;

    env_open_with(&e, "svc.localhost:PORT", NULL);
    url = printed("http://svc.localhost:%u/echo", mock_port(e.mock));
    fetch_url(&e, url, NULL, &r);
    ck_assert_msg(r.err == 0 && r.status == 200, "%s: %s", url, r.message);
    result_clear(&r);
    free(url);
    url = printed("http://other.localhost:%u/echo", mock_port(e.mock));
    fetch_url(&e, url, NULL, &r);
    ck_assert_int_eq(r.err, FLOW_EOUTBOUND);
    /* the name is named, never the address it resolved to */
    ck_assert_ptr_null(strstr(r.message, "127.0.0.1"));
    ck_assert_ptr_null(strstr(r.message, "::1"));
    ck_assert_ptr_nonnull(strstr(r.message, "other.localhost resolves to a loopback address"));
    result_clear(&r);
    free(url);
    url = mock_url(e.mock, "/echo");
    assert_refused(&e, url, NULL);
    free(url);
    ck_assert_uint_eq(idle_stats(&e).requests, 1);
    env_close(&e);
}
END_TEST

/* A connection one request was allowed to open, kept alive, is checked again for the next
 * request: one without that allow list is refused before anything is sent on it. */
START_TEST(a_kept_alive_connection_is_checked_again_for_each_request)
{
    env_t e;
    result_t r;
    char *url;
    flow_netrules_t *allow;
    mock_stats_t st;

    env_open_with(&e, NULL, NULL);
    url = mock_url(e.mock, "/echo");
    allow = rules_of("127.0.0.0/8");
    fetch_url(&e, url, allow, &r);
    ck_assert_int_eq(r.err, 0);
    ck_assert_int_eq(r.new_connections, 1);
    result_clear(&r);
    fetch_url(&e, url, allow, &r);
    ck_assert_int_eq(r.err, 0);
    ck_assert_int_eq(r.new_connections, 0); /* the same connection */
    result_clear(&r);
    fetch_url(&e, url, NULL, &r);
    ck_assert_int_eq(r.err, FLOW_EOUTBOUND);
    ck_assert_str_ne(r.message, "");
    result_clear(&r);
    st = idle_stats(&e);
    ck_assert_uint_eq(st.connections, 1);
    ck_assert_uint_eq(st.requests, 2);
    flow_netrules_unref(allow);
    free(url);
    env_close(&e);
}
END_TEST

/* The operator's deny list beats a request's own allow list; the operator's allow list beats it. */
START_TEST(the_deny_list_beats_a_requests_allow_list_but_not_the_operators)
{
    env_t e;
    result_t r;
    char *url, *want;
    flow_netrules_t *allow = rules_of("127.0.0.1");

    env_open_with(&e, NULL, "127.0.0.0/8");
    url = mock_url(e.mock, "/echo");
    fetch_url(&e, url, allow, &r);
    ck_assert_int_eq(r.err, FLOW_EOUTBOUND);
    want = printed("outbound connection to 127.0.0.1:%u refused: --deny-outbound 127.0.0.0/8 (allow "
                   "it with --allow-outbound 127.0.0.1:%u)",
                   mock_port(e.mock));
    ck_assert_str_eq(r.message, want);
    result_clear(&r);
    free(want);
    free(url);
    env_close(&e);

    env_open_with(&e, "127.0.0.1:PORT", "127.0.0.0/8");
    get(&e, "/echo", &r);
    ck_assert_int_eq(r.err, 0);
    result_clear(&r);
    env_close(&e);
    flow_netrules_unref(allow);
}
END_TEST

/* http_proxy and its kin are not used: a proxy's address would be the one checked, not the
 * upstream's. The "proxy" here is a listener that would count the connection. */
START_TEST(proxies_from_the_environment_are_not_used)
{
    env_t e;
    counter_t proxy;
    result_t r;
    char *proxy_url;

    env_open_with(&e, "127.0.0.1:PORT", NULL);
    ck_assert_int_eq(counter_open(&e.loop, &proxy, "127.0.0.1"), 0);
    proxy_url = printed("http://127.0.0.1:%u", proxy.port);
    setenv("http_proxy", proxy_url, 1);
    setenv("HTTPS_PROXY", proxy_url, 1);
    setenv("ALL_PROXY", proxy_url, 1);
    get(&e, "/echo", &r);
    unsetenv("http_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("ALL_PROXY");
    ck_assert_int_eq(r.err, 0);
    ck_assert_int_eq(r.status, 200);
    result_clear(&r);
    uv_run(&e.loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(proxy.accepted, 0);
    counter_close(&proxy);
    free(proxy_url);
    env_close(&e);
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *answers = tcase_create("answers");
    TCase *failures = tcase_create("failures");
    TCase *lifecycle = tcase_create("abort and close");
    TCase *load = tcase_create("many requests");
    TCase *mock = tcase_create("the mock");
    TCase *policy = tcase_create("the outbound policy");

    tcase_add_test(answers, get_returns_the_json_answer_with_its_headers);
    tcase_add_test(answers, post_sends_the_body_and_headers);
    tcase_add_test(answers, methods_are_sent_as_given);
    tcase_add_test(answers, response_headers_are_lowercased_and_repeats_joined);
    tcase_add_test(answers, an_error_status_is_an_answer_not_an_error);
    tcase_add_test(answers, a_body_under_the_cap_arrives_whole);
    tcase_add_test(failures, a_slow_answer_times_out);
    tcase_add_test(failures, a_request_queued_for_a_connection_times_out_on_time);
    tcase_add_test(failures, each_request_keeps_its_own_timeout);
    tcase_add_test(failures, a_reset_connection_is_an_http_error);
    tcase_add_test(failures, a_refused_connection_is_an_http_error);
    tcase_add_test(failures, a_body_over_the_cap_is_too_big_and_stops_the_transfer);
    tcase_add_test(failures, a_bad_request_is_refused_at_once);
    tcase_add_test(lifecycle, an_aborted_request_never_calls_back_and_its_connection_closes);
    tcase_add_test(lifecycle, closing_the_client_drops_the_requests_in_flight);
    tcase_add_test(lifecycle, a_callback_may_abort_another_request);
    tcase_add_test(lifecycle, a_callback_may_close_the_client);
    tcase_add_test(load, thousands_of_slow_requests_run_concurrently);
    tcase_add_test(load, a_thousand_requests_are_in_flight_at_once);
    tcase_add_test(load, max_host_connections_bounds_the_requests_in_flight);
    tcase_add_test(load, sequential_requests_reuse_one_connection);
    tcase_add_test(mock, the_mock_answers_chat_completions_for_its_key_only);
    tcase_add_test(mock, the_mock_fails_a_flaky_key_n_times_then_answers);
    tcase_add_test(mock, the_mock_counts_idempotency_keys);
    tcase_add_test(policy, every_spelling_of_loopback_is_refused_without_a_connection);
    tcase_add_test(policy, link_local_and_metadata_addresses_are_refused_before_a_socket_exists);
    tcase_add_test(policy, an_allow_entry_lets_exactly_its_address_and_port_through);
    tcase_add_test(policy, an_ipv6_entry_lets_its_address_and_port_through);
    tcase_add_test(policy, a_host_name_entry_allows_that_name_only);
    tcase_add_test(policy, a_kept_alive_connection_is_checked_again_for_each_request);
    tcase_add_test(policy, the_deny_list_beats_a_requests_allow_list_but_not_the_operators);
    tcase_add_test(policy, proxies_from_the_environment_are_not_used);
    suite_add_tcase(s, answers);
    suite_add_tcase(s, failures);
    suite_add_tcase(s, lifecycle);
    suite_add_tcase(s, load);
    suite_add_tcase(s, mock);
    suite_add_tcase(s, policy);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(http_suite());
    int failed;

    srunner_run_all(sr, CK_ENV); /* CK_VERBOSITY=verbose names every test */
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
