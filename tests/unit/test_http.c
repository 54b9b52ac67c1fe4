/* test_http.c: the asynchronous HTTP client (lib/http.h) against the in-process mock server. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "http.h"
#include "support/mock.h"

#define MIB ((size_t)1 << 20)

/* ---- fixtures ------------------------------------------------------------------------------- */

typedef struct env {
    uv_loop_t loop;
    mock_t *mock;
    flow_http_t *http;
} env_t;

static void env_open(env_t *e, const flow_http_opts_t *opts)
{
    ck_assert_int_eq(uv_loop_init(&e->loop), 0);
    ck_assert_int_eq(mock_start(NULL, &e->mock), 0);
    ck_assert_int_eq(flow_http_new(&e->loop, opts, &e->http), 0);
}

/* A handle left open by the client fails uv_loop_close. */
static void env_close(env_t *e)
{
    flow_http_close(e->http);
    ck_assert_int_eq(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&e->loop), 0);
    mock_stop(e->mock);
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

    ck_assert_int_eq(uv_loop_init(&e.loop), 0);
    ck_assert_int_eq(mock_start(&(mock_opts_t){.api_key = "sk-test"}, &e.mock), 0);
    ck_assert_int_eq(flow_http_new(&e.loop, NULL, &e.http), 0);
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

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *answers = tcase_create("answers");
    TCase *failures = tcase_create("failures");
    TCase *lifecycle = tcase_create("abort and close");
    TCase *load = tcase_create("many requests");
    TCase *mock = tcase_create("the mock");

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
    suite_add_tcase(s, answers);
    suite_add_tcase(s, failures);
    suite_add_tcase(s, lifecycle);
    suite_add_tcase(s, load);
    suite_add_tcase(s, mock);
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
