/* flow/http.h: an asynchronous HTTP client on a libuv loop (libcurl's multi interface), shared by
 * every job of a loop so that connections are reused across requests. The http and llm nodes sit
 * on it.
 *
 * Every connection obeys the outbound policy of flow/netpolicy.h, checked on the address it is made
 * to (each address curl tries, before its socket exists) and on the connection a request is about
 * to use (new or kept alive), so that neither the spelling of a URL nor DNS decides what is reached.
 * Only http:// and https://, no redirects, and no proxy: the proxy variables of the environment
 * (http_proxy, https_proxy, all_proxy, no_proxy) are ignored, since through a proxy the address
 * checked would be the proxy's and not the one the request reaches.
 *
 * Threads: everything here runs on the loop's thread.
 *
 * Errors: functions return 0 or a negative FLOW_E* code (flow.h). When a function that takes a
 * callback returns an error, the callback will never be called; the callback is never called from
 * inside the function that was given it either, only from the loop. */
#ifndef FLOW_HTTP_H
#define FLOW_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "flow/netpolicy.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flow_http flow_http_t;         /* one client: a curl multi driven by one uv loop */
typedef struct flow_http_req flow_http_req_t; /* one request in flight */

typedef struct flow_http_opts {
    size_t max_body;               /* default cap of response bodies; 0: FLOW_HTTP_MAX_BODY */
    long max_host_connections;     /* open connections per host (more requests queue); 0: none */
    long max_total_connections;    /* open connections in all; 0: no limit */
    const char *user_agent;        /* copied; NULL: "flowd/<version>" */
    flow_netrules_t *allow;        /* the operator's allow list, over everything else; NULL: none */
    flow_netrules_t *deny;         /* the operator's deny list; NULL: none. The client keeps a
                                    * reference to each list (netpolicy.h says who wins) */
} flow_http_opts_t;

#define FLOW_HTTP_MAX_BODY ((size_t)10 << 20)
/* The response headers of one request, in all, past which it fails with FLOW_ETOOBIG. */
#define FLOW_HTTP_MAX_HEADER_BYTES ((size_t)256 << 10)

typedef struct flow_http_request {
    const char *method;           /* "GET", "POST", ...; NULL: GET, or POST when there is a body */
    const char *url;              /* http:// or https:// only */
    const char *const *headers;   /* NULL or NULL-terminated "Name: value" strings; borrowed during
                                   * the call (copied); "Name:" removes a header curl would send */
    const char *body;             /* NULL or body_len bytes, borrowed during the call (copied) */
    size_t body_len;
    uint64_t timeout_ms;          /* from the send to the end of the answer, time queued for a
                                   * connection (max_*_connections) included; 0: none */
    size_t max_body;              /* cap of the response body; 0: the client's */
    flow_netrules_t *allow;       /* NULL, or what this request may reach besides the client's
                                   * policy (a flow's own list, the LLM's endpoint): below the
                                   * client's deny list; referenced while the request lives */
} flow_http_request_t;

/* What came back, borrowed for the duration of the callback (json_incref the headers or copy the
 * body to keep them). On error it holds what arrived before the error: status 0 if no response
 * began. */
typedef struct flow_http_response {
    long status;            /* of the last response (after any 1xx); non-2xx is not an error here */
    json_t *headers;        /* object, never NULL: lowercase name -> string value; a repeated
                             * header's values are joined with ", " */
    const char *body;       /* never NULL; NUL-terminated after body_len bytes */
    size_t body_len;
    uint64_t total_us;      /* the transfer's time, from connecting on (CURLINFO_TOTAL_TIME) */
    long new_connections;   /* connections this request had to open: 0 when it reused one */
} flow_http_response_t;

/* err: 0 or FLOW_EHTTP (transport failure), FLOW_ETIMEDOUT, FLOW_ETOOBIG (body or headers over the
 * cap: the transfer was stopped there), FLOW_EOUTBOUND (the outbound policy refused every address
 * tried, or the connection to be used: no byte was sent; the message is flow_netpolicy_message's),
 * FLOW_ENOMEM. message: NULL when err is 0, else what went
 * wrong (curl's text or ours). req, message and res are borrowed until the callback returns; req
 * is freed then, so it must not be aborted from its own callback (that is a no-op). The callback
 * may send new requests, abort others, or close the client. */
typedef void (*flow_http_cb)(flow_http_req_t *req, int err, const char *message,
                             const flow_http_response_t *res, void *data);

/* opts may be NULL. curl_global_init() runs once per process, the first time. On success *out
 * receives the client; free it with flow_http_close(). The client holds two uv_timer_t and a
 * uv_poll_t per socket in use; it keeps the loop alive only while requests are in flight. */
FLOW_EXPORT int flow_http_new(uv_loop_t *loop, const flow_http_opts_t *opts, flow_http_t **out);

/* Starts a request; r and everything it points to are copied or used only during the call. The URL
 * (and the method and headers: no CR or LF) are checked here: FLOW_EINVAL at once when bad, and the
 * callback is never called. FLOW_ESTATE after flow_http_close(). *out (may be NULL) is borrowed: it
 * is valid until the callback returns or the request is aborted. Redirects are not followed (a 3xx
 * is the answer); no proxy is used. */
FLOW_EXPORT int flow_http_send(flow_http_t *c, const flow_http_request_t *r, flow_http_cb cb,
                               void *data, flow_http_req_t **out);

/* Stops a request in flight and frees it (its connection is closed); the callback is never called.
 * NULL is ignored. */
FLOW_EXPORT void flow_http_abort(flow_http_req_t *req);

/* Aborts everything in flight (no callbacks run), drops the cached connections and closes the
 * handles. The memory is freed by close callbacks: run the loop afterwards until it returns. NULL
 * is ignored; may be called from a request's callback. */
FLOW_EXPORT void flow_http_close(flow_http_t *c);

FLOW_EXPORT size_t flow_http_in_flight(const flow_http_t *c); /* requests sent and not yet ended */

#ifdef __cplusplus
}
#endif
#endif
