/* http.c: the HTTP client of http.h. libcurl's multi_socket interface is driven by one uv_poll_t
 * per socket that curl asks us to watch and one uv_timer_t for curl's timeouts, after the pattern
 * of curl's multi-uv.c example. curl does the per-event bookkeeping (socket hash, timer tree), so
 * an event costs the same with ten or ten thousand requests in flight.
 *
 * Request timeouts are ours (a min-heap and a second timer), not CURLOPT_TIMEOUT_MS: curl does not
 * look at the timeout of a request queued behind CURLMOPT_MAX_HOST_CONNECTIONS, which then fails
 * only once a connection frees up.
 *
 * The outbound policy (netpolicy.h) is asked twice. CURLOPT_OPENSOCKETFUNCTION runs for every
 * address curl is about to connect to, after resolution: a refused one gets no socket (so no packet
 * leaves), and curl goes on to the next address, so that every address happy eyeballs tries is
 * checked. CURLOPT_PREREQFUNCTION runs before a request is sent on a connection, a new one or one
 * kept alive: a connection that another request was allowed to open is checked again against this
 * request's policy (its own allow list may be shorter). */
#include "flow/http.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "flow.h"
#include "flow/queue.h"

#define MAX_HEADER_NAME 256 /* longer response header names are dropped: none is that long */
#define NO_DEADLINE SIZE_MAX

typedef struct http_sock http_sock_t;

/* One socket curl asked us to watch. Freed in its close callback only, so a socket that curl
 * removes and a new one on the same fd number each have their own. */
struct http_sock {
    uv_poll_t poll;
    flow_http_t *client;
    curl_socket_t fd;
    flow_queue_t node; /* in client->socks, so that close can stop the ones still watched */
};

struct flow_http_req {
    flow_http_t *client;
    CURL *easy;
    struct curl_slist *header_list; /* the request headers, owned until the easy handle is gone */
    flow_http_cb cb;
    void *data;
    flow_queue_t node;            /* in client->reqs, so that close can abort them */
    json_t *headers;              /* response headers */
    size_t header_bytes;
    char *body;
    size_t body_len, body_cap, max_body;
    int err;            /* set by our curl callbacks: the transfer is stopped with this error */
    const char *errmsg; /* static text for err */
    int doomed;         /* failed in the socket callback: drain() must finish it (curl will not) */
    int done;           /* the callback is running: abort is a no-op */
    uint64_t deadline;  /* loop time (ms) the request times out at */
    size_t dl_index;    /* in client->deadlines, or NO_DEADLINE */
    char *host;         /* the URL's host without brackets, for host-name entries of the policy */
    flow_netrules_t *allow;  /* the request's own allow list (a reference), or NULL */
    unsigned refusals;  /* addresses (or connections) the policy refused */
    unsigned allowed;   /* addresses the policy let through: a failure after is curl's to tell */
    char *refused;      /* the message of the first refusal, or NULL (none, or no memory) */
    char errbuf[CURL_ERROR_SIZE];
};

struct flow_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;          /* curl's timeouts */
    uv_timer_t deadline_timer; /* the earliest request deadline */
    flow_http_req_t **deadlines; /* a min-heap on deadline */
    size_t deadline_count, deadline_cap;
    int handles_open;          /* the timers; c is freed when both are closed */
    flow_queue_t reqs;         /* requests in flight (flow_http_req_t's node), newest first */
    flow_queue_t socks;        /* sockets watched (http_sock_t's node), newest first */
    size_t in_flight;
    size_t doomed;
    size_t max_body;
    char *user_agent;
    flow_netrules_t *allow;    /* the operator's lists (references), or NULL */
    flow_netrules_t *deny;
    int closing;
};

static uv_once_t global_once = UV_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- deadlines ------------------------------------------------------------------------------ */

static void on_deadline(uv_timer_t *timer);

static void deadline_set(flow_http_t *c, size_t i, flow_http_req_t *req)
{
    c->deadlines[i] = req;
    req->dl_index = i;
}

static void deadline_up(flow_http_t *c, size_t i)
{
    flow_http_req_t *req = c->deadlines[i];

    while (i > 0 && c->deadlines[(i - 1) / 2]->deadline > req->deadline) {
        deadline_set(c, i, c->deadlines[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    deadline_set(c, i, req);
}

static void deadline_down(flow_http_t *c, size_t i)
{
    flow_http_req_t *req = c->deadlines[i];

    for (;;) {
        size_t child = 2 * i + 1;

        if (child >= c->deadline_count)
            break;
        if (child + 1 < c->deadline_count &&
            c->deadlines[child + 1]->deadline < c->deadlines[child]->deadline)
            child++;
        if (c->deadlines[child]->deadline >= req->deadline)
            break;
        deadline_set(c, i, c->deadlines[child]);
        i = child;
    }
    deadline_set(c, i, req);
}

/* Room for one more, so that deadline_push cannot fail after the request is in the multi. */
static int deadline_reserve(flow_http_t *c)
{
    flow_http_req_t **p;

    p = flow__grow(c->deadlines, c->deadline_count, &c->deadline_cap, sizeof(*p), 64, 0);
    if (!p)
        return FLOW_ENOMEM;
    c->deadlines = p;
    return 0;
}

static void deadline_arm(flow_http_t *c)
{
    uint64_t now = uv_now(c->loop), at;

    if (c->deadline_count == 0) {
        uv_timer_stop(&c->deadline_timer);
        return;
    }
    at = c->deadlines[0]->deadline;
    uv_timer_start(&c->deadline_timer, on_deadline, at > now ? at - now : 0, 0);
}

static void deadline_push(flow_http_t *c, flow_http_req_t *req)
{
    deadline_set(c, c->deadline_count++, req);
    deadline_up(c, req->dl_index);
    if (req->dl_index == 0)
        deadline_arm(c);
}

static void deadline_remove(flow_http_t *c, flow_http_req_t *req)
{
    size_t i = req->dl_index;
    flow_http_req_t *last;

    if (i == NO_DEADLINE)
        return;
    req->dl_index = NO_DEADLINE;
    last = c->deadlines[--c->deadline_count];
    if (last != req) {
        deadline_set(c, i, last);
        deadline_up(c, i);
        deadline_down(c, last->dl_index);
    }
    if (i == 0 && !c->closing) /* else the timer only keeps the loop alive until it fires */
        deadline_arm(c);
}

/* ---- lists ---------------------------------------------------------------------------------- */

static void req_link(flow_http_t *c, flow_http_req_t *req)
{
    flow_queue_insert_head(&c->reqs, &req->node);
    c->in_flight++;
}

static void req_unlink(flow_http_t *c, flow_http_req_t *req)
{
    flow_queue_remove(&req->node);
    c->in_flight--;
    if (req->doomed)
        c->doomed--;
    deadline_remove(c, req);
}

static void req_free(flow_http_req_t *req)
{
    if (req->easy)
        curl_easy_cleanup(req->easy);
    curl_slist_free_all(req->header_list);
    json_decref(req->headers);
    flow__free(req->body);
    flow__free(req->host);
    flow__free(req->refused);
    flow_netrules_unref(req->allow);
    flow__free(req);
}

/* ---- sockets and the timer ------------------------------------------------------------------ */

static void drain(flow_http_t *c);

static void on_poll(uv_poll_t *poll, int status, int events)
{
    http_sock_t *s = poll->data;
    flow_http_t *c = s->client;
    int flags = 0;
    int running;

    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    /* s may be closed by curl's socket callback in here; its memory lives until the close cb. */
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    drain(c);
}

static void on_sock_closed(uv_handle_t *handle)
{
    flow__free(handle->data);
}

static http_sock_t *sock_open(flow_http_t *c, curl_socket_t fd)
{
    http_sock_t *s = flow__calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
        flow__free(s);
        return NULL;
    }
    s->poll.data = s;
    s->client = c;
    s->fd = fd;
    flow_queue_insert_head(&c->socks, &s->node);
    return s;
}

static void sock_close(flow_http_t *c, http_sock_t *s)
{
    flow_queue_remove(&s->node);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* Fails the request of easy from inside a curl callback, where it cannot be removed from the
 * multi: drain() finishes it once curl has returned. */
static void doom(flow_http_t *c, CURL *easy, int err, const char *msg)
{
    char *p = NULL;
    flow_http_req_t *req;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p);
    req = (flow_http_req_t *)p;
    if (!req || req->doomed)
        return;
    req->err = err;
    req->errmsg = msg;
    req->doomed = 1;
    c->doomed++;
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    flow_http_t *c = userp;
    http_sock_t *s = socketp;
    int events = 0;

    if (what == CURL_POLL_REMOVE) {
        if (s)
            sock_close(c, s);
        return 0;
    }
    if (c->closing)
        return 0;
    if (!s) {
        s = sock_open(c, fd);
        if (!s) {
            doom(c, easy, FLOW_ENOMEM, "cannot watch the socket");
            return 0;
        }
        curl_multi_assign(c->multi, fd, s);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    if (events == 0)
        uv_poll_stop(&s->poll);
    else if (uv_poll_start(&s->poll, events, on_poll) != 0)
        doom(c, easy, FLOW_EHTTP, "cannot watch the socket");
    return 0;
}

static void on_timer(uv_timer_t *timer)
{
    flow_http_t *c = timer->data;
    int running;

    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain(c);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    flow_http_t *c = userp;

    if (c->closing)
        return 0;
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
        return 0;
    }
    /* 0 would rerun on_timer within the same timers phase of libuv 1.44 when curl asks for 0 from
     * inside it, starving I/O; 1 ms lets the loop poll first (as multi-uv.c does). */
    uv_timer_start(&c->timer, on_timer, timeout_ms == 0 ? 1 : (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- response data -------------------------------------------------------------------------- */

static void stop_with(flow_http_req_t *req, int err, const char *msg)
{
    req->err = err;
    req->errmsg = msg;
}

static int body_reserve(flow_http_req_t *req, size_t need)
{
    size_t cap = req->body_cap ? req->body_cap : 4096;
    char *p;

    if (need <= req->body_cap)
        return 0;
    while (cap < need)
        cap *= 2;
    if (cap > req->max_body + 1)
        cap = req->max_body + 1;
    p = flow__realloc(req->body, cap);
    if (!p)
        return FLOW_ENOMEM;
    req->body = p;
    req->body_cap = cap;
    return 0;
}

/* Returning less than n makes curl stop the transfer with CURLE_WRITE_ERROR; req->err says why. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    flow_http_req_t *req = userp;
    size_t n = size * nmemb;

    if (req->err)
        return 0;
    if (n > req->max_body - req->body_len) {
        stop_with(req, FLOW_ETOOBIG, "response body over the size cap");
        return 0;
    }
    if (body_reserve(req, req->body_len + n + 1) != 0) {
        stop_with(req, FLOW_ENOMEM, "out of memory");
        return 0;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len += n;
    req->body[req->body_len] = '\0';
    return n;
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* A failed json string from bytes that are not UTF-8 (obs-text) only means the header is left
 * out; from ASCII it means no memory. */
static int string_failed(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80)
            return 0;
    }
    return FLOW_ENOMEM;
}

/* Appends ", value" to the string a repeated header already has. */
static int header_join(json_t *old, const char *value, size_t len)
{
    size_t old_len = json_string_length(old);
    char *joined = flow__malloc(old_len + 2 + len);
    int err = 0;

    if (!joined)
        return FLOW_ENOMEM;
    memcpy(joined, json_string_value(old), old_len);
    memcpy(joined + old_len, ", ", 2);
    memcpy(joined + old_len + 2, value, len);
    if (json_string_setn(old, joined, old_len + 2 + len) != 0)
        err = string_failed(value, len);
    flow__free(joined);
    return err;
}

static int header_add(json_t *headers, const char *name, size_t name_len, const char *value,
                      size_t value_len)
{
    char key[MAX_HEADER_NAME];
    json_t *old, *str;

    if (name_len == 0 || name_len >= sizeof(key))
        return 0;
    for (size_t i = 0; i < name_len; i++) {
        char ch = name[i];

        if ((unsigned char)ch >= 0x80 || ch == '\0')
            return 0; /* not a token: not a header name */
        key[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    key[name_len] = '\0';
    old = json_object_get(headers, key);
    if (old)
        return header_join(old, value, value_len);
    str = json_stringn(value, value_len);
    if (!str)
        return string_failed(value, value_len);
    return json_object_set_new(headers, key, str) == 0 ? 0 : FLOW_ENOMEM;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *userp)
{
    flow_http_req_t *req = userp;
    size_t n = size * nmemb;
    const char *colon, *value, *end;
    size_t name_len;

    if (req->err)
        return 0;
    req->header_bytes += n;
    if (req->header_bytes > FLOW_HTTP_MAX_HEADER_BYTES) {
        stop_with(req, FLOW_ETOOBIG, "response headers over the size cap");
        return 0;
    }
    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) { /* a new response (after a 1xx): start over */
        json_object_clear(req->headers);
        req->header_bytes = n;
        return n;
    }
    colon = memchr(line, ':', n);
    if (!colon)
        return n;
    name_len = (size_t)(colon - line);
    while (name_len > 0 && is_space(line[name_len - 1]))
        name_len--;
    value = colon + 1;
    end = line + n;
    while (value < end && is_space(*value))
        value++;
    while (end > value && is_space(end[-1]))
        end--;
    if (header_add(req->headers, line, name_len, value, (size_t)(end - value)) != 0) {
        stop_with(req, FLOW_ENOMEM, "out of memory");
        return 0;
    }
    return n;
}

/* ---- finishing ------------------------------------------------------------------------------ */

static int map_curl_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return FLOW_ETIMEDOUT;
    case CURLE_FILESIZE_EXCEEDED:
        return FLOW_ETOOBIG;
    case CURLE_OUT_OF_MEMORY:
        return FLOW_ENOMEM;
    default:
        return FLOW_EHTTP;
    }
}

/* Takes req out of the client, runs its callback and frees it. */
static void finish(flow_http_t *c, flow_http_req_t *req, CURLcode rc)
{
    flow_http_response_t res = {0};
    int err = req->err ? req->err : map_curl_error(rc);
    const char *message = NULL;
    curl_off_t total_us = 0;

    if (req->err) {
        message = req->errmsg;
    } else if (err && req->refusals > 0 && (req->allowed == 0 || rc == CURLE_ABORTED_BY_CALLBACK)) {
        /* every address was refused (none got a socket), or the connection to be used was */
        err = FLOW_EOUTBOUND;
        message = req->refused ? req->refused : "outbound connection refused by the policy";
    } else if (err) {
        message = req->errbuf[0] ? req->errbuf : curl_easy_strerror(rc);
    }
    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &res.status);
    curl_easy_getinfo(req->easy, CURLINFO_NUM_CONNECTS, &res.new_connections);
    curl_easy_getinfo(req->easy, CURLINFO_TOTAL_TIME_T, &total_us);
    res.total_us = total_us > 0 ? (uint64_t)total_us : 0;
    res.headers = req->headers;
    res.body = req->body ? req->body : "";
    res.body_len = req->body_len;

    req_unlink(c, req);
    curl_multi_remove_handle(c->multi, req->easy);
    curl_easy_cleanup(req->easy);
    req->easy = NULL;
    req->done = 1;
    req->cb(req, err, message, &res, req->data);
    req_free(req);
}

/* Rare (a failed allocation in the socket callback), so a scan of the requests is fine here. */
static void finish_doomed(flow_http_t *c)
{
    flow_queue_t *q;
    FLOW_QUEUE_FOREACH(q, &c->reqs) {
        flow_http_req_t *req = FLOW_QUEUE_DATA(q, flow_http_req_t, node);
        if (req->doomed) {
            finish(c, req, CURLE_OK);
            return;
        }
    }
}

/* Runs after every curl_multi_socket_action: the callbacks of finished requests. One may close
 * the client, after which the multi is gone. */
static void drain(flow_http_t *c)
{
    while (!c->closing) {
        int left;
        CURLMsg *msg = curl_multi_info_read(c->multi, &left);
        char *p = NULL;

        if (!msg)
            break;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &p);
        finish(c, (flow_http_req_t *)p, msg->data.result);
    }
    while (!c->closing && c->doomed > 0)
        finish_doomed(c);
}

static void on_deadline(uv_timer_t *timer)
{
    flow_http_t *c = timer->data;
    uint64_t now = uv_now(c->loop);

    while (!c->closing && c->deadline_count > 0 && c->deadlines[0]->deadline <= now) {
        flow_http_req_t *req = c->deadlines[0];

        stop_with(req, FLOW_ETIMEDOUT, "request timed out");
        finish(c, req, CURLE_OK);
    }
    if (!c->closing)
        deadline_arm(c);
}

/* ---- sending -------------------------------------------------------------------------------- */

static int is_token_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int check_method(const char *method)
{
    size_t n = 0;

    if (!method)
        return 0;
    for (; method[n]; n++) {
        if (!is_token_char(method[n]))
            return FLOW_EINVAL;
    }
    return n > 0 && n <= 32 ? 0 : FLOW_EINVAL;
}

/* Checks the URL and gives its host (*host: a new string, brackets of an IPv6 address dropped). */
static int parse_url(const char *url, char **host)
{
    CURLU *u;
    CURLUcode uc;
    char *scheme = NULL, *name = NULL;
    int err = 0;

    *host = NULL;
    if (!url)
        return FLOW_EINVAL;
    u = curl_url();
    if (!u)
        return FLOW_ENOMEM;
    uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_HOST, &name, 0);
    if (uc == CURLUE_OUT_OF_MEMORY)
        err = FLOW_ENOMEM;
    else if (uc != CURLUE_OK)
        err = FLOW_EINVAL;
    else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
        err = FLOW_EINVAL;
    if (err == 0) {
        size_t len = strlen(name);
        int bracketed = len >= 2 && name[0] == '[' && name[len - 1] == ']';

        *host = flow__malloc(len + 1);
        if (*host) {
            memcpy(*host, name + bracketed, len - 2 * (size_t)bracketed);
            (*host)[len - 2 * (size_t)bracketed] = '\0';
        } else {
            err = FLOW_ENOMEM;
        }
    }
    curl_free(scheme);
    curl_free(name);
    curl_url_cleanup(u);
    return err;
}

static int check_request(const flow_http_request_t *r, char **host)
{
    int err = parse_url(r->url, host);

    if (err)
        return err;
    if (check_method(r->method) != 0 || (!r->body && r->body_len > 0))
        return FLOW_EINVAL;
    for (size_t i = 0; r->headers && r->headers[i]; i++) {
        if (r->headers[i][0] == '\0' || strpbrk(r->headers[i], "\r\n"))
            return FLOW_EINVAL;
    }
    return 0;
}

static int is_header(const char *line, const char *name)
{
    size_t n = strlen(name);

    return strncasecmp(line, name, n) == 0 && (line[n] == ':' || line[n] == ';');
}

static int build_header_list(const char *const *headers, struct curl_slist **out)
{
    struct curl_slist *list = NULL, *next;
    int has_expect = 0;

    for (size_t i = 0; headers && headers[i]; i++) {
        has_expect |= is_header(headers[i], "Expect");
        next = curl_slist_append(list, headers[i]);
        if (!next)
            goto nomem;
        list = next;
    }
    /* curl's "Expect: 100-continue" for big bodies costs a round trip, or a second with servers
     * that ignore it. */
    if (!has_expect) {
        next = curl_slist_append(list, "Expect:");
        if (!next)
            goto nomem;
        list = next;
    }
    *out = list;
    return 0;
nomem:
    curl_slist_free_all(list);
    return FLOW_ENOMEM;
}

static CURLcode set_method(CURL *e, const flow_http_request_t *r)
{
    const char *method = r->method ? r->method : (r->body ? "POST" : "GET");
    CURLcode rc = CURLE_OK;

    if (strcmp(method, "HEAD") == 0)
        return curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    if (strcmp(method, "GET") == 0 && !r->body)
        return CURLE_OK;
    if (r->body || strcmp(method, "POST") == 0) {
        rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, r->body ? r->body : "");
    }
    if (rc == CURLE_OK && strcmp(method, "POST") != 0)
        rc = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    return rc;
}

/* ---- the outbound policy ------------------------------------------------------------------- */

/* 1 when req may connect to (or send on a connection to) a. A refusal is counted, logged with the
 * address for the operator, and the first one kept for the request's error. */
static int policy_allows(flow_http_req_t *req, const flow_netaddr_t *a)
{
    flow_http_t *c = req->client;
    flow_netpolicy_t policy = {.allow = c->allow, .deny = c->deny};
    flow_netverdict_t v;
    char addr[64], msg[FLOW_NET_MESSAGE_MAX];

    if (flow_netpolicy_check(&policy, req->allow, a, req->host, &v))
        return 1;
    req->refusals++;
    flow_netaddr_format(a, addr, sizeof(addr));
    if (v.why == FLOW_NET_DENIED)
        flow_log(FLOW_LOG_INFO, "outbound: refused %s (host %s): --deny-outbound %s", addr,
                 req->host, v.rule);
    else
        flow_log(FLOW_LOG_INFO, "outbound: refused %s (host %s): %s %s%s%s", addr, req->host,
                 v.rule, v.range, v.via ? " inside " : "", v.via ? v.via : "");
    if (!req->refused) {
        flow_netpolicy_message(&v, a, req->host, msg, sizeof(msg));
        req->refused = flow__strdup(msg);
    }
    return 0;
}

static void refuse_other(flow_http_req_t *req)
{
    req->refusals++;
    if (!req->refused)
        req->refused = flow__strdup("outbound connection refused: not to an Internet address");
}

static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    flow_http_req_t *req = clientp;
    flow_netaddr_t a;

    if (purpose != CURLSOCKTYPE_IPCXN ||
        flow_netaddr_from_sockaddr(&addr->addr, addr->addrlen, &a) != 0) {
        refuse_other(req);
        return CURL_SOCKET_BAD;
    }
    if (!policy_allows(req, &a))
        return CURL_SOCKET_BAD; /* curl tries the next address, if any */
    req->allowed++;
    return socket(addr->family, addr->socktype, addr->protocol);
}

static int on_prereq(void *clientp, char *primary_ip, char *local_ip, int primary_port,
                     int local_port)
{
    flow_http_req_t *req = clientp;
    flow_netaddr_t a;

    if (primary_port < 0 || flow_netaddr_parse(primary_ip, (unsigned)primary_port, &a) != 0) {
        refuse_other(req);
        return CURL_PREREQFUNC_ABORT;
    }
    return policy_allows(req, &a) ? CURL_PREREQFUNC_OK : CURL_PREREQFUNC_ABORT;
}

static CURLcode setup_policy(CURL *e, flow_http_req_t *req)
{
    CURLcode rc = curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);

    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, (void *)req);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_PREREQDATA, (void *)req);
    if (rc == CURLE_OK) /* "" turns off the proxies of the environment */
        rc = curl_easy_setopt(e, CURLOPT_PROXY, "");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    return rc;
}

static int setup_easy(flow_http_t *c, flow_http_req_t *req, const flow_http_request_t *r)
{
    CURL *e = req->easy;
    CURLcode rc = curl_easy_setopt(e, CURLOPT_URL, r->url);

    if (rc == CURLE_OK)
        rc = setup_policy(e, req);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
    if (rc == CURLE_OK)
        rc = set_method(e, r);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->header_list);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)req);
    if (rc == CURLE_OK) /* no SIGALRM for DNS timeouts: other threads run in this process */
        rc = curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->errbuf);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)req);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)req);
    if (rc == CURLE_OK) /* refuses a too long Content-Length before any body arrives */
        rc = curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_body);
    if (rc == CURLE_OUT_OF_MEMORY)
        return FLOW_ENOMEM;
    return rc == CURLE_OK ? 0 : FLOW_EINVAL;
}

/* A cap above this is no cap, and max_body + 1 (room for the NUL) cannot overflow. */
static size_t clamp_cap(size_t cap)
{
    return cap > SIZE_MAX / 2 ? SIZE_MAX / 2 : cap;
}

int flow_http_send(flow_http_t *c, const flow_http_request_t *r, flow_http_cb cb, void *data,
                   flow_http_req_t **out)
{
    flow_http_req_t *req = NULL;
    char *host = NULL;
    CURLMcode mc;
    int err;

    if (out)
        *out = NULL;
    if (!c || !r || !cb)
        return FLOW_EINVAL;
    if (c->closing)
        return FLOW_ESTATE;
    err = check_request(r, &host);
    if (err) {
        flow__free(host);
        return err;
    }
    req = flow__calloc(1, sizeof(*req));
    if (!req) {
        flow__free(host);
        return FLOW_ENOMEM;
    }
    req->client = c;
    req->host = host;
    req->allow = flow_netrules_ref(r->allow);
    req->dl_index = NO_DEADLINE;
    req->cb = cb;
    req->data = data;
    req->max_body = r->max_body ? clamp_cap(r->max_body) : c->max_body;
    req->headers = json_object();
    req->easy = curl_easy_init();
    if (!req->headers || !req->easy) {
        err = FLOW_ENOMEM;
        goto fail;
    }
    err = build_header_list(r->headers, &req->header_list);
    if (err)
        goto fail;
    err = setup_easy(c, req, r);
    if (err == 0 && r->timeout_ms > 0)
        err = deadline_reserve(c);
    if (err)
        goto fail;
    mc = curl_multi_add_handle(c->multi, req->easy);
    if (mc != CURLM_OK) {
        err = mc == CURLM_OUT_OF_MEMORY ? FLOW_ENOMEM : FLOW_ESTATE;
        goto fail;
    }
    req_link(c, req);
    if (r->timeout_ms > 0) {
        uint64_t now = uv_now(c->loop);

        req->deadline = r->timeout_ms > UINT64_MAX - now ? UINT64_MAX : now + r->timeout_ms;
        deadline_push(c, req);
    }
    if (out)
        *out = req;
    return 0;
fail:
    req_free(req);
    return err;
}

void flow_http_abort(flow_http_req_t *req)
{
    flow_http_t *c;

    if (!req || req->done)
        return;
    c = req->client;
    req_unlink(c, req);
    curl_multi_remove_handle(c->multi, req->easy);
    req_free(req);
}

/* ---- the client ----------------------------------------------------------------------------- */

static void client_free(flow_http_t *c)
{
    if (c->multi)
        curl_multi_cleanup(c->multi);
    flow__free(c->deadlines);
    flow__free(c->user_agent);
    flow_netrules_unref(c->allow);
    flow_netrules_unref(c->deny);
    flow__free(c);
}

static int setup_multi(flow_http_t *c, const flow_http_opts_t *opts)
{
    CURLM *m = c->multi;
    CURLMcode mc = curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_curl_socket);

    if (mc == CURLM_OK)
        mc = curl_multi_setopt(m, CURLMOPT_SOCKETDATA, (void *)c);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(m, CURLMOPT_TIMERDATA, (void *)c);
    if (mc == CURLM_OK && opts && opts->max_host_connections > 0)
        mc = curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, opts->max_host_connections);
    if (mc == CURLM_OK && opts && opts->max_total_connections > 0)
        mc = curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, opts->max_total_connections);
    if (mc == CURLM_OUT_OF_MEMORY)
        return FLOW_ENOMEM;
    return mc == CURLM_OK ? 0 : FLOW_EINVAL;
}

int flow_http_new(uv_loop_t *loop, const flow_http_opts_t *opts, flow_http_t **out)
{
    const char *ua = opts && opts->user_agent ? opts->user_agent : "flowd/" FLOW_VERSION_STRING;
    flow_http_t *c = NULL;
    int err;

    if (!out)
        return FLOW_EINVAL;
    *out = NULL;
    if (!loop)
        return FLOW_EINVAL;
    uv_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return global_rc == CURLE_OUT_OF_MEMORY ? FLOW_ENOMEM : FLOW_EHTTP;
    c = flow__calloc(1, sizeof(*c));
    if (!c)
        return FLOW_ENOMEM;
    c->loop = loop;
    flow_queue_init(&c->reqs);
    flow_queue_init(&c->socks);
    c->max_body = opts && opts->max_body ? clamp_cap(opts->max_body) : FLOW_HTTP_MAX_BODY;
    c->user_agent = flow__strdup(ua);
    c->allow = flow_netrules_ref(opts ? opts->allow : NULL);
    c->deny = flow_netrules_ref(opts ? opts->deny : NULL);
    c->multi = curl_multi_init();
    if (!c->user_agent || !c->multi) {
        err = FLOW_ENOMEM;
        goto fail;
    }
    err = setup_multi(c, opts);
    if (err)
        goto fail;
    /* last: once the timers are initialised, only uv_close can free c. uv_timer_init cannot
     * fail: it only fills in the handle. */
    (void)uv_timer_init(loop, &c->timer);
    (void)uv_timer_init(loop, &c->deadline_timer);
    c->timer.data = c;
    c->deadline_timer.data = c;
    c->handles_open = 2;
    *out = c;
    return 0;
fail:
    client_free(c);
    return err;
}

static void on_client_closed(uv_handle_t *handle)
{
    flow_http_t *c = handle->data;

    if (--c->handles_open == 0)
        client_free(c);
}

void flow_http_close(flow_http_t *c)
{
    if (!c || c->closing)
        return;
    c->closing = 1;
    while (!flow_queue_empty(&c->reqs))
        flow_http_abort(FLOW_QUEUE_DATA(flow_queue_head(&c->reqs), flow_http_req_t, node));
    /* drops the cached connections; curl may still call on_curl_socket to remove sockets */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (!flow_queue_empty(&c->socks))
        sock_close(c, FLOW_QUEUE_DATA(flow_queue_head(&c->socks), http_sock_t, node));
    uv_close((uv_handle_t *)&c->timer, on_client_closed);
    uv_close((uv_handle_t *)&c->deadline_timer, on_client_closed);
}

size_t flow_http_in_flight(const flow_http_t *c)
{
    return c ? c->in_flight : 0;
}
