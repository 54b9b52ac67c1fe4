/* http.c: libmicrohttpd's side of the API (http.h): the daemon, each request read and checked, then
 * dispatched through the route table (http_routes.h) to its handler in http_jobs.c, http_flows.c or
 * http_service.c (http_int.h is what they share). Routing, 404, 405 with Allow, the role a route
 * needs, its query parameters and its body all follow from the table; no route is named here but
 * for --metrics-open. What MHD does not do for a connection (a deadline for a request's line and
 * headers; a lingering close after an answer that came before the body, so that a client that sends
 * its whole body first reads the 413 instead of a reset) is done by conns.c, which MHD tells of
 * every connection; its top comment says how. */
#include "http_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h> /* OPENSSL_hexchar2int, for %XX in paths */

#include "auth.h"
#include "flow/doc.h"
#include "log.h"

#define MAX_LIMIT 1000
#define DEFAULT_LIMIT 50
#define LINGER_BODIES 64 /* a refused body is read and dropped up to this many times --max-body */
#define LINGER_QUIET_MS 5000 /* a lingering socket that sends nothing this long is closed */

static const flowd_route_t routes[] = {
#define FLOWD__ROUTE_ROW(path, method, handler, query, role, body)                                 \
    {FLOWD_P_##path, FLOWD_M_##method, flowd__http_##handler, query, FLOWD_ROLE_##role,            \
     FLOWD_B_##body},
    FLOWD_ROUTE_MAP(FLOWD__ROUTE_ROW)
#undef FLOWD__ROUTE_ROW
};
#define NROUTES (sizeof routes / sizeof routes[0])

static const char *const method_names[] = {"GET", "HEAD", "POST", "PUT", "DELETE"};

/* ---- answering ---- */

/* The Allow header of path's 405: the methods of its rows, in the table's order (GET with HEAD). */
static void allow_of(flowd_path_t path, char *out, size_t size) {
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < NROUTES; i++) {
        if (routes[i].path != path)
            continue;
        n += (size_t)snprintf(out + n, size - n, "%s%s", n ? ", " : "",
                              routes[i].method == FLOWD_M_GET ? "GET, HEAD"
                                                              : method_names[routes[i].method]);
        if (n >= size)
            return;
    }
}

void flowd__http_common_headers(const flowd_req_t *r, struct MHD_Response *res) {
    MHD_add_response_header(res, "X-Request-Id", r->request_id);
}

/* The client's X-Request-Id when it is one we can echo and log as it is (visible ASCII, no more
 * than FLOWD_REQUEST_ID_MAX), else a new id. */
static void take_request_id(flowd_req_t *r, struct MHD_Connection *conn) {
    const char *given = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = 0;
    if (given != NULL) {
        while (n <= FLOWD_REQUEST_ID_MAX && given[n] > 0x20 && given[n] < 0x7f)
            n++;
        if (n > 0 && n <= FLOWD_REQUEST_ID_MAX && given[n] == '\0') {
            memcpy(r->request_id, given, n + 1);
            return;
        }
    }
    if (flowd_new_id(r->request_id) < 0)
        snprintf(r->request_id, sizeof r->request_id, "%016llx",
                 (unsigned long long)r->t0_ns); /* no randomness from the OS: still one a request */
}

/* http_int.h. Shared by the Job's reads and the graphs (http_jobs.c, http_flows.c). */
int flowd__http_if_none_match(struct MHD_Connection *conn, uint64_t version) {
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (v == NULL)
        return 0;
    for (;;) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        if (*v == '\0')
            return 0;
        if (*v == '*')
            return 1;
        if (v[0] == 'W' && v[1] == '/')
            v += 2;
        if (*v == '"' && v[1] >= '0' && v[1] <= '9') {
            char *end;
            unsigned long long n = strtoull(v + 1, &end, 10);
            if (*end == '"' && n == version)
                return 1;
        }
        v = strchr(v, ',');
        if (v == NULL)
            return 0;
    }
}

enum MHD_Result flowd__http_send(flowd_req_t *r, struct MHD_Connection *conn, unsigned status,
                                 char *body, size_t len, const char *type) {
    if (body == NULL) {
        status = 500;
        len = 0;
    }
    struct MHD_Response *res = MHD_create_response_from_buffer(
        len, body ? body : (void *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (res == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    flowd__http_common_headers(r, res);
    if (r->has_etag && status < 400) {
        char etag[32];
        snprintf(etag, sizeof etag, "\"%llu\"", (unsigned long long)r->etag);
        MHD_add_response_header(res, MHD_HTTP_HEADER_ETAG, etag);
    }
    if (r->location && (r->job != NULL || r->remote_id[0] != '\0') &&
        (status == 202 || status == 200)) {
        char location[48];
        memcpy(location, "/v1/jobs/", 9);
        memcpy(location + 9, r->job ? r->job->id : r->remote_id, FLOWD_ID_LEN + 1);
        MHD_add_response_header(res, MHD_HTTP_HEADER_LOCATION, location);
    }
    if (status == 429)
        MHD_add_response_header(res, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 401) /* RFC 6750: a key that is not one of ours is an invalid_token */
        MHD_add_response_header(res, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                r->caller.bad == 2
                                    ? "Bearer realm=\"flowd\", error=\"invalid_token\""
                                    : "Bearer realm=\"flowd\"");
    if (status == 405) {
        char allow[64];
        allow_of(r->path, allow, sizeof allow);
        MHD_add_response_header(res, MHD_HTTP_HEADER_ALLOW, allow);
    }
    enum MHD_Result ret = MHD_queue_response(conn, status, res);
    MHD_destroy_response(res);
    r->status = status;
    r->phase = FLOWD_PH_DONE;
    return ret;
}

enum MHD_Result flowd__http_send_json(flowd_req_t *r, struct MHD_Connection *conn, unsigned status,
                                      char *body, size_t len) {
    return flowd__http_send(r, conn, status, body, len, "application/json");
}

enum MHD_Result flowd__http_send_answer(flowd_req_t *r, struct MHD_Connection *conn,
                                        flowd_answer_t *a) {
    if (a->has_etag) {
        r->etag = a->etag;
        r->has_etag = 1;
    }
    enum MHD_Result ret = flowd__http_send_json(r, conn, a->status, a->body, a->len);
    a->body = NULL;
    return ret;
}

enum MHD_Result flowd__http_send_error(flowd_req_t *r, struct MHD_Connection *conn,
                                       flowd_apierr_t err, const char *fmt, ...) {
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    if (fmt == NULL)
        snprintf(message, sizeof message, "%s", flowd_apierr_message(err));
    else
        vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    size_t len = 0;
    char *body = flowd_render_error(err, &len, "%s", message);
    return flowd__http_send_json(r, conn, flowd_apierr_status(err), body, len);
}

int flowd__http_suspend(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                        int refusable, flowd_handler_fn resume) {
    flowd_http_t *h = srv->http;
    /* Counted before the refuse flag is read, and the flag set before the count is read: either
     * shutdown waits for this request, or this request does not suspend. */
    atomic_fetch_add(&h->suspended, 1);
    if (refusable && atomic_load(&h->refuse)) {
        atomic_fetch_sub(&h->suspended, 1);
        return -1;
    }
    r->counted = 1;
    r->phase = FLOWD_PH_SUSPENDED;
    r->conn = conn;
    r->resume = resume;
    MHD_suspend_connection(conn);
    return 0;
}

/* ---- routing ---- */

static flowd_method_t method_of(const char *m) {
    for (int i = 0; i < FLOWD_M_OTHER; i++)
        if (strcmp(m, method_names[i]) == 0)
            return (flowd_method_t)i;
    return FLOWD_M_OTHER;
}

/* The row of path for method (HEAD: GET's), or NULL: 405. */
static const flowd_route_t *route_for(flowd_path_t path, flowd_method_t method) {
    if (method == FLOWD_M_HEAD)
        method = FLOWD_M_GET;
    for (size_t i = 0; i < NROUTES; i++)
        if (routes[i].path == path && routes[i].method == method)
            return &routes[i];
    return NULL;
}

/* Routes r by url: r->path, r->route and r->args. */
static void route(flowd_req_t *r, const char *url) {
    r->path = flowd_path_match(url, &r->args);
    r->route = r->path == FLOWD_P_OTHER ? NULL : route_for(r->path, (flowd_method_t)r->method);
}

/* 0 when the caller may use r's route; otherwise answers 401 (no key, or one that is not in the key
 * file) or 403 (a role below the one needed) and returns -1. */
static int authorize(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                     enum MHD_Result *ret) {
    flowd_role_t need = r->route->role;
    if (r->path == FLOWD_P_METRICS && srv->cfg.metrics_open)
        need = FLOWD_ROLE_NONE;
    if (r->caller.role >= need)
        return 0;
    if (r->caller.role == FLOWD_ROLE_NONE)
        *ret = flowd__http_send_error(
            r, conn, FLOWD_E_UNAUTHORIZED,
            r->caller.bad == 2 ? "the key is not one of this server's (Authorization: Bearer <key>)"
                               : NULL);
    else
        *ret = flowd__http_send_error(r, conn, FLOWD_E_FORBIDDEN,
                                      "key '%s' has role %s; %s %s needs role %s", r->caller.name,
                                      flowd_role_name(r->caller.role), r->method_name,
                                      flowd_path_pattern(r->path), flowd_role_name(need));
    return -1;
}

const char *flowd__http_scope(const flowd_req_t *r) {
    return r->caller.role == FLOWD_ROLE_ADMIN ? NULL : r->caller.tenant;
}

/* ---- request checks ---- */

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value) {
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
    return MHD_YES;
}

/* application/json, any case, with parameters (charset=utf-8) allowed. */
static int is_json_type(const char *type) {
    if (type == NULL)
        return 0;
    while (*type == ' ' || *type == '\t')
        type++;
    if (strncasecmp(type, "application/json", 16) != 0)
        return 0;
    type += 16;
    while (*type == ' ' || *type == '\t')
        type++;
    return *type == '\0' || *type == ';';
}

/* The query parameters of a request against those its route takes. */
typedef struct query_check {
    const char *allowed;  /* the route's list: names with ", " between them */
    const char *bad;      /* the first unknown name */
    const char *repeated; /* the first name given twice */
    const char *seen[8];
    size_t nseen;
} query_check_t;

/* Whether key is one of the names of list. */
static int listed(const char *list, const char *key) {
    size_t len = strlen(key);
    while (*list != '\0') {
        size_t n = strcspn(list, ",");
        if (n == len && strncmp(list, key, n) == 0)
            return 1;
        list += n;
        list += strspn(list, ", ");
    }
    return 0;
}

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value) {
    query_check_t *q = cls;
    (void)kind;
    (void)value;
    if (!listed(q->allowed, key)) {
        q->bad = key;
        return MHD_NO;
    }
    for (size_t i = 0; i < q->nseen; i++) {
        if (strcmp(q->seen[i], key) == 0) {
            q->repeated = key;
            return MHD_NO;
        }
    }
    if (q->nseen < sizeof q->seen / sizeof q->seen[0])
        q->seen[q->nseen++] = key;
    return MHD_YES;
}

/* The query against the route's; a name it does not take or one given twice: answers 400 and
 * returns -1. */
static int check_query(flowd_req_t *r, struct MHD_Connection *conn, enum MHD_Result *ret) {
    query_check_t q = {.allowed = r->route->query};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, check_arg, &q);
    if (q.bad == NULL && q.repeated == NULL)
        return 0;
    if (q.repeated != NULL)
        *ret = flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST,
                                      "query parameter '%.64s' is given twice", q.repeated);
    else
        *ret = flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST,
                                      "unknown query parameter '%.64s' (this route takes %s)",
                                      q.bad, q.allowed[0] != '\0' ? q.allowed : "none");
    return -1;
}

const char *flowd__http_arg(struct MHD_Connection *conn, const char *name) {
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *flowd__http_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

json_t *flowd_http_body_object(const char *body, size_t len, const char *example,
                               flowd_apierr_t *code, char *msg, size_t msglen) {
    json_error_t err;
    if (len == 0) {
        *code = FLOWD_E_INVALID_JSON;
        snprintf(msg, msglen, "the body is empty; send a JSON object such as %s", example);
        return NULL;
    }
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (v == NULL) {
        *code = FLOWD_E_INVALID_JSON;
        snprintf(msg, msglen, "invalid JSON at line %d, column %d: %s", err.line, err.column,
                 err.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        *code = FLOWD_E_BAD_REQUEST;
        snprintf(msg, msglen, "the body must be a JSON object such as %s, not %s", example,
                 flowd__http_type_name(v));
        json_decref(v);
        return NULL;
    }
    return v;
}

json_t *flowd__http_body_object(flowd_req_t *r, struct MHD_Connection *conn, const char *example,
                                const char *const *fields, const char *takes,
                                enum MHD_Result *ret) {
    flowd_apierr_t code;
    char msg[512];
    json_t *v = flowd_http_body_object(r->body, r->len, example, &code, msg, sizeof msg);
    if (v == NULL) {
        *ret = flowd__http_send_error(r, conn, code, "%s", msg);
        return NULL;
    }
    const char *key;
    json_t *item;
    json_object_foreach(v, key, item) {
        size_t i = 0;
        while (fields[i] != NULL && strcmp(key, fields[i]) != 0)
            i++;
        if (fields[i] == NULL) {
            *ret = flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST,
                                          "unknown field '%.64s' in the body (it takes %s)", key,
                                          takes);
            json_decref(v);
            return NULL;
        }
    }
    return v;
}

int flowd__http_list_limit(flowd_req_t *r, struct MHD_Connection *conn, uint64_t *limit,
                           enum MHD_Result *ret) {
    const char *limit_s = flowd__http_arg(conn, "limit");
    *limit = DEFAULT_LIMIT;
    if (limit_s == NULL)
        return 0;
    char *end;
    unsigned long long v = strtoull(limit_s, &end, 10);
    if (!isdigit((unsigned char)*limit_s) || *end != '\0' || v < 1 || v > MAX_LIMIT) {
        *ret = flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST,
                                      "limit must be a whole number from 1 to %d, not '%.32s'",
                                      MAX_LIMIT, limit_s);
        return -1;
    }
    *limit = v;
    return 0;
}

enum MHD_Result flowd__http_with_page(flowd_server_t *srv, flowd_req_t *r,
                                      struct MHD_Connection *conn, flowd_page_fn fn) {
    enum MHD_Result ret = MHD_YES;
    uint64_t limit;
    if (flowd__http_list_limit(r, conn, &limit, &ret) < 0)
        return ret;
    const char *cursor = flowd__http_arg(conn, "cursor");
    if (cursor != NULL && !flow_doc_name_ok(cursor, strlen(cursor)))
        return flowd__http_send_error(
            r, conn, FLOWD_E_BAD_REQUEST,
            "cursor '%.64s' is not one this server gave (use next_cursor of the previous page)",
            cursor);
    return fn(srv, r, conn, limit, cursor);
}

enum MHD_Result flowd__http_send_page(flowd_req_t *r, struct MHD_Connection *conn, flow_buf_t *b,
                                      const char *what) {
    flowd_answer_t a = {0};
    flowd_answer_take(&a, b, what, FLOWD_LIST_HINT);
    return flowd__http_send_answer(r, conn, &a);
}

enum MHD_Result flowd__http_with_name(flowd_server_t *srv, flowd_req_t *r,
                                      struct MHD_Connection *conn, const char *what,
                                      flowd_apierr_t missing, flowd_named_fn fn) {
    const char *name = r->args.s[0];
    size_t len = r->args.len[0];
    if (!flow_doc_name_ok(name, len)) {
        if (r->method == FLOWD_M_PUT)
            return flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST,
                                          "'%.64s' cannot be a %s's name: a name is "
                                          FLOW_DOC_NAME_RULE,
                                          name, what);
        return flowd__http_send_error(r, conn, missing, "no %s named '%.64s'", what, name);
    }
    char key[65];
    memcpy(key, name, len);
    key[len] = '\0';
    return fn(srv, r, conn, key);
}

enum MHD_Result flowd__http_send_deleted(flowd_req_t *r, struct MHD_Connection *conn,
                                         const char *name) {
    flow_buf_t b;
    flow_buf_init(&b, 0);
    flow_buf_printf(&b, "{\n  \"name\": \"%s\",\n  \"deleted\": true\n}\n", name);
    size_t len = 0;
    char *body = flow_buf_take(&b, &len);
    return flowd__http_send_json(r, conn, 200, body, len);
}

enum MHD_Result flowd__http_bad_field(flowd_req_t *r, struct MHD_Connection *conn, json_t *body,
                                      const char *missing, const char *field, const char *want,
                                      const json_t *v, int quote) {
    enum MHD_Result ret;
    if (missing != NULL)
        ret = flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST, "%s", missing);
    else if (quote && json_is_string(v))
        ret = flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST,
                                     "field '%s' must be %s, not '%.64s'", field, want,
                                     json_string_value(v));
    else
        ret = flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST, "field '%s' must be %s, not %s",
                                     field, want, flowd__http_type_name(v));
    json_decref(body);
    return ret;
}

/* ---- the handler ---- */

/* The most a request's body may be, and the flag that says so: --max-body, or --max-flow-size for a
 * flow document when that is lower. */
static size_t body_cap(const flowd_server_t *srv, const flowd_req_t *r, const char **flag) {
    if (r->route != NULL && r->route->body == FLOWD_B_FLOW &&
        srv->cfg.max_flow_size < srv->cfg.max_body) {
        *flag = "--max-flow-size";
        return srv->cfg.max_flow_size;
    }
    *flag = "--max-body";
    return srv->cfg.max_body;
}

/* First call: the request line and headers are in. Only what must be refused before the body is
 * read is answered here (MHD then closes the connection): headers too large, and a body of the
 * wrong type or too large. Everything else waits for the final call, which keeps the connection
 * alive. */
static enum MHD_Result check_headers(flowd_server_t *srv, flowd_req_t *r,
                                     struct MHD_Connection *conn, const char *url) {
    size_t header_bytes = strlen(url) + strlen(r->method_name) + 12;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &header_bytes);
    if (header_bytes > srv->cfg.max_header)
        return flowd__http_send_error(r, conn, FLOWD_E_HEADER_TOO_LARGE,
                                      "the request line and headers are %zu bytes, over the limit "
                                      "of %zu (--max-header)",
                                      header_bytes, srv->cfg.max_header);
    route(r, url);
    if (r->route == NULL || r->route->body == FLOWD_B_NONE)
        return MHD_YES; /* answered by dispatch, once the request is in */
    enum MHD_Result ret = MHD_YES;
    if (authorize(srv, r, conn, &ret) < 0)
        return ret; /* before the body: nobody without a key gets to send one */
    if (r->route->body == FLOWD_B_JOB && atomic_load(&srv->stopping))
        return flowd__http_send_error(r, conn, FLOWD_E_SHUTTING_DOWN, NULL);
    const char *type =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (r->route->body != FLOWD_B_ANY && !is_json_type(type))
        return flowd__http_send_error(
            r, conn, FLOWD_E_UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON sent as Content-Type: application/json, "
            "not %s%.64s%s",
            type ? "'" : "", type ? type : "none", type ? "'" : "");
    const char *length =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *flag;
    size_t cap = body_cap(srv, r, &flag);
    if (length != NULL) {
        unsigned long long n = strtoull(length, NULL, 10);
        if (n > cap)
            return flowd__http_send_error(r, conn, FLOWD_E_PAYLOAD_TOO_LARGE,
                                          "the body is %llu bytes, over the limit of %zu (%s)", n,
                                          cap, flag);
    }
    r->phase = FLOWD_PH_BODY;
    return MHD_YES;
}

static int has_body(struct MHD_Connection *conn) {
    const char *length =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *coding =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    return (length != NULL && strspn(length, "0") != strlen(length)) || coding != NULL;
}

static enum MHD_Result on_headers(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                                  const char *url) {
    flowd_conn_t *c = flowd_conn_of(conn);
    flowd_conn_request(c);
    enum MHD_Result ret = check_headers(srv, r, conn, url);
    if (r->phase == FLOWD_PH_DONE && has_body(conn))
        flowd_conn_linger(c); /* answered with the body still coming: see conns.h */
    return ret;
}

/* The whole request is in (its body too): the route's checks, then its handler answers or
 * suspends. */
static enum MHD_Result dispatch(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                                const char *url) {
    route(r, url);
    if (r->path == FLOWD_P_OTHER)
        return flowd__http_send_error(r, conn, FLOWD_E_NOT_FOUND,
                                      "no route %.16s %.200s (the API is under /v1/jobs and "
                                      "/v1/flows; see api/openapi.yaml)",
                                      r->method_name, url);
    if (r->route == NULL)
        return flowd__http_send_error(r, conn, FLOWD_E_METHOD_NOT_ALLOWED,
                                      "%s %s: method not allowed here", r->method_name,
                                      flowd_path_pattern(r->path));
    enum MHD_Result ret = MHD_YES;
    if (authorize(srv, r, conn, &ret) < 0)
        return ret;
    if (r->too_big) {
        const char *flag;
        size_t cap = body_cap(srv, r, &flag);
        return flowd__http_send_error(r, conn, FLOWD_E_PAYLOAD_TOO_LARGE,
                                      "the body is over the limit of %zu bytes (%s)", cap, flag);
    }
    if (check_query(r, conn, &ret) < 0)
        return ret;
    return r->route->handler(srv, r, conn);
}

/* A piece of a body: kept for a route that takes one, dropped otherwise. A body past the cap that
 * had no Content-Length (chunked) could not be refused before it came: it is read and dropped,
 * within the lingering close's bounds (conns.h), and refused once it has ended. MHD_NO closes the
 * connection. */
static enum MHD_Result on_data(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                               const char *data, size_t size) {
    const char *flag;
    size_t max = body_cap(srv, r, &flag);
    r->seen += size;
    if (r->phase != FLOWD_PH_BODY || r->too_big || r->len + size > max) {
        if (r->phase == FLOWD_PH_BODY && !r->too_big) {
            r->too_big = 1;
            flowd_conn_drop_body(flowd_conn_of(conn));
        }
        return r->seen > LINGER_BODIES * srv->cfg.max_body ? MHD_NO : MHD_YES;
    }
    if (r->len + size > r->cap) {
        size_t cap = r->cap * 2;
        while (cap < r->len + size)
            cap *= 2;
        if (cap > max)
            cap = max;
        char *body = r->body == r->inline_body ? malloc(cap) : realloc(r->body, cap);
        if (body == NULL)
            return MHD_NO;
        if (r->body == r->inline_body)
            memcpy(body, r->inline_body, r->len);
        r->body = body;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, size);
    r->len += size;
    return MHD_YES;
}

/* A suspended request leaves the count once: when MHD runs it again, or, when its client left
 * meanwhile (MHD then only completes it), when it ends. */
static void uncount(flowd_server_t *srv, flowd_req_t *r) {
    if (r->counted) {
        r->counted = 0;
        atomic_fetch_sub(&srv->http->suspended, 1);
    }
}

/* MHD runs a suspended request again: its loop call, long poll or store answered. */
static enum MHD_Result on_resumed(flowd_server_t *srv, flowd_req_t *r,
                                  struct MHD_Connection *conn) {
    if (!atomic_load_explicit(&r->reply.ready, memory_order_acquire))
        return MHD_YES; /* not for us yet (MHD may call again after a resume of its own) */
    uncount(srv, r);
    flowd_handler_fn resume = r->resume;
    r->resume = NULL; /* it may suspend again, with a resume of its own */
    if (resume != NULL)
        return resume(srv, r, conn);
    return flowd__http_send_answer(r, conn, &r->reply.answer);
}

/* s into out (size bytes), cut to fit. */
static void copy_cut(char *out, size_t size, const char *s) {
    size_t n = strnlen(s, size - 1);
    memcpy(out, s, n);
    out[n] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    flowd_server_t *srv = cls;
    flowd_req_t *r = *con_cls;
    (void)version;
    if (r == NULL) {
        r = malloc(sizeof *r);
        if (r == NULL)
            return MHD_NO;
        memset(r, 0, offsetof(flowd_req_t, inline_body));
        r->t0_ns = uv_hrtime();
        r->method = (uint8_t)method_of(method);
        r->path = FLOWD_P_OTHER;
        r->body = r->inline_body;
        r->cap = FLOWD_HTTP_INLINE_BODY;
        copy_cut(r->method_name, sizeof r->method_name, method);
        copy_cut(r->path_text, sizeof r->path_text, url);
        take_request_id(r, conn);
        const char *tp = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "traceparent");
        if (flow_traceparent_valid(tp))
            memcpy(r->traceparent, tp, sizeof r->traceparent);
        const char *authorization =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        flowd_auth_identify(srv->auth, authorization, &r->caller);
        *con_cls = r;
        return on_headers(srv, r, conn, url);
    }
    if (*upload_size > 0) {
        size_t size = *upload_size;
        *upload_size = 0;
        return on_data(srv, r, conn, upload, size);
    }
    switch (r->phase) {
    case FLOWD_PH_NEW:
    case FLOWD_PH_BODY:
        return dispatch(srv, r, conn, url);
    case FLOWD_PH_SUSPENDED:
        return on_resumed(srv, r, conn);
    default:
        return MHD_YES;
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    flowd_server_t *srv = cls;
    flowd_req_t *r = *con_cls;
    (void)toe;
    flowd_conn_answered(flowd_conn_of(conn)); /* the next request's headers are due */
    if (r == NULL)
        return;
    *con_cls = NULL;
    uint64_t us = (uv_hrtime() - r->t0_ns) / 1000u;
    flowd_metrics_request(srv->metrics, r->path, r->status, us);
    flowd_log_request(r->method_name, r->path_text, r->status, us, r->caller.name, r->request_id,
                      r->traceparent);
    uncount(srv, r);
    if (r->ended != NULL)
        r->ended(srv, r);
    free(r->reply.answer.body); /* a reply never sent: the connection ended first */
    json_decref(r->start_shared);
    json_decref(r->start_params);
    flowd_job_unref(r->job);
    flowd_snapshot_clear(&r->snap);
    if (r->body != r->inline_body)
        free(r->body);
    free(r);
}

/* MHD's unescaping of the path and the query, except that "%00" stays as it is: decoded, the NUL
 * would cut the text short ("PUT /v1/flows/ab%00cd" would name "ab"); kept, it is a '%' that no
 * name, id or pointer of ours takes. */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s) {
    char *w = s;
    const char *p = s;
    (void)cls;
    (void)conn;
    while (*p != '\0') {
        int hi = p[0] == '%' ? OPENSSL_hexchar2int((unsigned char)p[1]) : -1;
        int lo = hi >= 0 ? OPENSSL_hexchar2int((unsigned char)p[2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            *w++ = (char)(hi * 16 + lo);
            p += 3;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    flowd_log(FLOW_LOG_INFO, "libmicrohttpd: %s", msg);
}

/* Once quiesced, every new connection is closed as soon as it is accepted, so that clients learn
 * at once, rather than wait in the backlog for the whole grace period. Not MHD_quiesce_daemon:
 * with a thread pool on epoll, libmicrohttpd 0.9.75 (Debian bookworm's) races a worker that takes
 * the listening socket out of its epoll set at the same moment, and aborts the process ("Failed to
 * remove listen FD from epoll set", seen in test_postgres's shutdowns). */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len) {
    flowd_http_t *h = cls;
    (void)addr;
    (void)len;
    return atomic_load_explicit(&h->closed_door, memory_order_relaxed) ? MHD_NO : MHD_YES;
}

int flowd_http_start(flowd_server_t *srv, flowd_http_t **out, unsigned *port) {
    const flowd_config_t *cfg = &srv->cfg;
    flowd_http_t *h = calloc(1, sizeof *h);
    if (h == NULL)
        return FLOW_ENOMEM;
    h->srv = srv;
    pthread_mutex_init(&h->flows_lock, NULL);
    srv->http = h;
    *out = h; /* before the daemon's threads start: they read srv->http */
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *addr;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    const char *bind = strcmp(cfg->bind, "localhost") == 0 ? "127.0.0.1" : cfg->bind;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, bind, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)cfg->port);
        addr = (struct sockaddr *)&a4;
    } else {
        inet_pton(AF_INET6, bind, &a6.sin6_addr);
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)cfg->port);
        addr = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    }
    /* MHD's per-connection memory holds the request line and headers; well above our cap, so that
     * we, not MHD (whose answers are not JSON), refuse headers that are too large. */
    size_t memory = cfg->max_header * 2;
    if (memory < 32768)
        memory = 32768; /* MHD's default; it zeroes all of it for every request, so not more */
    flowd_conns_opts_t co = {.header_timeout_ms = cfg->header_timeout_ms,
                             .linger_ms = cfg->idle_timeout_ms,
                             .linger_quiet_ms = cfg->idle_timeout_ms < LINGER_QUIET_MS
                                                    ? cfg->idle_timeout_ms
                                                    : LINGER_QUIET_MS,
                             .linger_bytes = LINGER_BODIES * cfg->max_body,
                             .linger_max = cfg->max_conns};
    int rc = flowd_conns_new(&co, &h->conns);
    if (rc < 0) {
        flowd_log(FLOW_LOG_ERROR, "cannot start the connections' thread: %s", flow_strerror(rc));
        pthread_mutex_destroy(&h->flows_lock);
        free(h);
        srv->http = NULL;
        return rc;
    }
    h->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->port, accept_policy, h, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, srv, MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)cfg->http_threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(cfg->idle_timeout_ms / 1000), MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->max_conns, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)cfg->max_conns_per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT, memory,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_NOTIFY_CONNECTION,
        flowd_conns_notify, h->conns, MHD_OPTION_END);
    if (h->daemon == NULL) {
        flowd_log(FLOW_LOG_ERROR, "cannot listen on %s port %u (is the port taken?)", cfg->bind,
                  cfg->port);
        flowd_conns_free(h->conns);
        pthread_mutex_destroy(&h->flows_lock);
        free(h);
        srv->http = NULL;
        return FLOW_EIO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : cfg->port;
    return 0;
}

void flowd_http_quiesce(flowd_http_t *h) {
    atomic_store(&h->closed_door, 1);
}

void flowd_http_refuse_calls(flowd_http_t *h) {
    atomic_store(&h->refuse, 1);
}

size_t flowd_http_suspended(flowd_http_t *h) {
    return atomic_load(&h->suspended);
}

void flowd_http_stop(flowd_http_t *h) {
    if (h == NULL)
        return;
    MHD_stop_daemon(h->daemon);
    flowd_conns_free(h->conns); /* after the daemon: no connection is notified any more */
    pthread_mutex_destroy(&h->flows_lock);
    free(h);
}
