/* http.c: the MHD daemon, the request checks and the routes of http.h. What MHD does not do for a
 * connection (a deadline for a request's line and headers; a lingering close after an answer that
 * came before the body, so that a client that sends its whole body first reads the 413 instead of a
 * reset) is done by conns.c, which MHD tells of every connection; its top comment says how. */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <limits.h>
#include <unistd.h>

#include "auth.h"
#include "bridge.h"
#include "cluster.h"
#include "conns.h"
#include "flows.h"
#include "log.h"
#include "flow/pointer.h"
#include "flow/problems.h"
#include "flow/doc.h"
#include "render.h"

#define MAX_WAIT_S 300
#define MAX_LIMIT 1000
#define DEFAULT_LIMIT 50
#define MAX_IDEM_KEY 255
#define INLINE_BODY 512  /* bodies this small need no allocation of their own */
#define LOG_PATH_MAX 200
#define LINGER_BODIES 64 /* a refused body is read and dropped up to this many times --max-body */
#define LINGER_QUIET_MS 5000 /* a lingering socket that sends nothing this long is closed */

struct flowd_http {
    flowd_server_t *srv;
    struct MHD_Daemon *daemon;
    flowd_conns_t *conns;  /* header deadlines and lingering closes */
    MHD_socket listen_fd; /* after quiesce: ours to close, once the daemon has stopped */
    atomic_size_t suspended;
    atomic_int refuse;    /* flowd_http_refuse_calls */
    pthread_mutex_t flows_lock; /* PUT /v1/flows/{name}: one at a time (--max-flows) */
};

enum method { M_GET = 0, M_HEAD, M_POST, M_PUT, M_DELETE, M_OTHER };

enum phase {
    PH_NEW = 0,
    PH_BODY,   /* reading the body of a POST */
    PH_CALL,   /* suspended: a loop call is under way */
    PH_WAIT,   /* suspended: a long poll */
    PH_STORE,  /* suspended: the store has not confirmed the new job yet */
    PH_RWAIT,  /* suspended: a long poll of a job that runs on another instance */
    PH_DONE    /* answered */
};

/* One request; MHD keeps it as the handler's con_cls. */
typedef struct req {
    uint64_t t0_ns;
    flowd_route_t route;
    uint8_t method;
    uint8_t phase;
    uint8_t too_big;
    unsigned status;            /* what was answered, for the log and the metrics */
    char method_name[12];
    char path[LOG_PATH_MAX + 1];
    char *body;                 /* inline, or malloc'd when bigger */
    size_t len, cap;
    size_t seen;                /* body bytes received, kept or not */
    flowd_job_t *job;           /* the route's job, a reference */
    flowd_reply_t reply;        /* loop calls and the store */
    struct MHD_Connection *conn;
    json_t *start_shared;       /* PH_STORE: what the job starts with once the store confirms */
    json_t *start_params;
    /* a job that runs on another instance (a shared store) */
    char remote_id[FLOWD_ID_LEN + 1]; /* "" when none; for Location and long polls */
    flow_status_t remote_seen;  /* PH_RWAIT: the status the long poll saw */
    uint64_t remote_until_ms;   /* PH_RWAIT: when it answers anyway */
    uint8_t remote_watching;    /* PH_RWAIT: a watch of the store may still wake us */
    flowd_caller_t caller;      /* who sent it: role, tenant, the key's name (auth.h) */
    char inline_body[INLINE_BODY];
} req_t;

/* ---- answering ---- */

/* Queues body (malloc'd, taken over; NULL: out of memory, answered 500 without a body). */
static enum MHD_Result send_body(req_t *r, struct MHD_Connection *conn, unsigned status, char *body,
                                 size_t len, const char *type) {
    if (body == NULL) {
        status = 500;
        len = 0;
    }
    struct MHD_Response *res = MHD_create_response_from_buffer(len, body ? body : (void *)"",
                                                               body ? MHD_RESPMEM_MUST_FREE
                                                                    : MHD_RESPMEM_PERSISTENT);
    if (res == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if ((r->job != NULL || r->remote_id[0] != '\0') && r->route == FLOWD_R_JOBS && (status == 202 || status == 200)) {
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
        const char *allow = r->route == FLOWD_R_JOBS                                  ? "GET, HEAD, POST"
                            : r->route == FLOWD_R_INPUT || r->route == FLOWD_R_CANCEL ? "POST"
                            : r->route == FLOWD_R_FLOW                                ? "GET, HEAD, PUT, DELETE"
                                                                                      : "GET, HEAD";
        MHD_add_response_header(res, MHD_HTTP_HEADER_ALLOW, allow);
    }
    enum MHD_Result ret = MHD_queue_response(conn, status, res);
    MHD_destroy_response(res);
    r->status = status;
    r->phase = PH_DONE;
    return ret;
}

static enum MHD_Result send_json(req_t *r, struct MHD_Connection *conn, unsigned status, char *body,
                                 size_t len) {
    return send_body(r, conn, status, body, len, "application/json");
}

static enum MHD_Result send_answer(req_t *r, struct MHD_Connection *conn, flowd_answer_t *a) {
    enum MHD_Result ret = send_json(r, conn, a->status, a->body, a->len);
    a->body = NULL;
    return ret;
}

/* err's answer (apierr.h); fmt NULL: its default message. */
static enum MHD_Result send_error(req_t *r, struct MHD_Connection *conn, flowd_apierr_t err,
                                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum MHD_Result send_error(req_t *r, struct MHD_Connection *conn, flowd_apierr_t err,
                                  const char *fmt, ...) {
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
    return send_json(r, conn, flowd_apierr_status(err), body, len);
}

static enum MHD_Result send_job(req_t *r, struct MHD_Connection *conn, unsigned status,
                                flowd_job_t *job) {
    size_t len = 0;
    char *body = flowd_render_job_text(job, &len);
    return send_json(r, conn, status, body, len);
}

/* ---- routing ---- */

static enum method method_of(const char *m) {
    if (strcmp(m, "GET") == 0)
        return M_GET;
    if (strcmp(m, "POST") == 0)
        return M_POST;
    if (strcmp(m, "HEAD") == 0)
        return M_HEAD;
    if (strcmp(m, "PUT") == 0)
        return M_PUT;
    if (strcmp(m, "DELETE") == 0)
        return M_DELETE;
    return M_OTHER;
}

/* The route of url; *arg and *arg_len: the {id} or {name} in it. */
static flowd_route_t route_of(const char *url, const char **arg, size_t *arg_len) {
    *arg = NULL;
    *arg_len = 0;
    if (strcmp(url, "/v1/jobs") == 0)
        return FLOWD_R_JOBS;
    if (strncmp(url, "/v1/jobs/", 9) == 0) {
        const char *id = url + 9;
        const char *slash = strchr(id, '/');
        size_t n = slash ? (size_t)(slash - id) : strlen(id);
        if (n == 0)
            return FLOWD_R_OTHER;
        *arg = id;
        *arg_len = n;
        if (slash == NULL)
            return FLOWD_R_JOB;
        static const struct {
            const char *name;
            flowd_route_t route;
        } subs[] = {{"shared", FLOWD_R_SHARED}, {"history", FLOWD_R_HISTORY}, {"events", FLOWD_R_EVENTS},
                    {"input", FLOWD_R_INPUT},   {"cancel", FLOWD_R_CANCEL}};
        for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
            if (strcmp(slash + 1, subs[i].name) == 0)
                return subs[i].route;
        return FLOWD_R_OTHER;
    }
    if (strcmp(url, "/v1/flows") == 0)
        return FLOWD_R_FLOWS;
    if (strncmp(url, "/v1/flows/", 10) == 0 && url[10] != '\0' && strchr(url + 10, '/') == NULL) {
        *arg = url + 10;
        *arg_len = strlen(url + 10);
        return FLOWD_R_FLOW;
    }
    if (strcmp(url, "/healthz") == 0)
        return FLOWD_R_HEALTHZ;
    if (strcmp(url, "/metrics") == 0)
        return FLOWD_R_METRICS;
    return FLOWD_R_OTHER;
}

flowd_route_t flowd_http_route(const char *url, const char **arg, size_t *arg_len) {
    return route_of(url, arg, arg_len);
}

static int method_allowed(flowd_route_t route, enum method m) {
    switch (route) {
    case FLOWD_R_JOBS:
        return m == M_GET || m == M_HEAD || m == M_POST;
    case FLOWD_R_INPUT:
    case FLOWD_R_CANCEL:
        return m == M_POST;
    case FLOWD_R_FLOW:
        return m == M_GET || m == M_HEAD || m == M_PUT || m == M_DELETE;
    default:
        return m == M_GET || m == M_HEAD;
    }
}

/* The role each route and method needs (auth.h); api/openapi.yaml's security says the same. A
 * role may do what the ones below it may. Reading methods are GET and HEAD; writing ones the rest
 * (a method a route does not take is 405 before any key is looked at, so the writing role of a
 * route that takes none is never asked for). */
static const struct {
    flowd_role_t read, write;
} route_roles[FLOWD_ROUTES] = {
    [FLOWD_R_JOBS] = {FLOWD_ROLE_READ, FLOWD_ROLE_SUBMIT},     /* the list; POST a job */
    [FLOWD_R_JOB] = {FLOWD_ROLE_READ, FLOWD_ROLE_ADMIN},
    [FLOWD_R_SHARED] = {FLOWD_ROLE_READ, FLOWD_ROLE_ADMIN},
    [FLOWD_R_HISTORY] = {FLOWD_ROLE_READ, FLOWD_ROLE_ADMIN},
    [FLOWD_R_EVENTS] = {FLOWD_ROLE_READ, FLOWD_ROLE_ADMIN},
    [FLOWD_R_INPUT] = {FLOWD_ROLE_SUBMIT, FLOWD_ROLE_SUBMIT},
    [FLOWD_R_CANCEL] = {FLOWD_ROLE_SUBMIT, FLOWD_ROLE_SUBMIT},
    [FLOWD_R_FLOWS] = {FLOWD_ROLE_READ, FLOWD_ROLE_ADMIN},     /* every key reads the flows */
    [FLOWD_R_FLOW] = {FLOWD_ROLE_READ, FLOWD_ROLE_ADMIN},      /* PUT and DELETE: admin */
    [FLOWD_R_HEALTHZ] = {FLOWD_ROLE_NONE, FLOWD_ROLE_NONE},    /* open, for probes */
    [FLOWD_R_METRICS] = {FLOWD_ROLE_ADMIN, FLOWD_ROLE_ADMIN},  /* none with --metrics-open */
    [FLOWD_R_OTHER] = {FLOWD_ROLE_NONE, FLOWD_ROLE_NONE},      /* 404 for anyone */
};

static flowd_role_t role_needed(const flowd_server_t *srv, flowd_route_t route, enum method m) {
    if (route == FLOWD_R_METRICS && srv->cfg.metrics_open)
        return FLOWD_ROLE_NONE;
    return m == M_GET || m == M_HEAD ? route_roles[route].read : route_roles[route].write;
}

/* 0 when the caller may use this route with this method; otherwise answers 401 (no key, or one that
 * is not in the key file) or 403 (a role below the one needed) and returns -1. */
static int authorize(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn,
                     enum MHD_Result *ret) {
    flowd_role_t need = role_needed(srv, r->route, (enum method)r->method);
    if (r->caller.role >= need)
        return 0;
    if (r->caller.role == FLOWD_ROLE_NONE)
        *ret = send_error(r, conn, FLOWD_E_UNAUTHORIZED,
                          r->caller.bad == 2
                              ? "the key is not one of this server's (Authorization: Bearer <key>)"
                              : "this needs a key: send Authorization: Bearer <key>");
    else
        *ret = send_error(r, conn, FLOWD_E_FORBIDDEN, "key '%s' has role %s; %s %s needs role %s",
                          r->caller.name, flowd_role_name(r->caller.role), r->method_name,
                          flowd_route_template(r->route), flowd_role_name(need));
    return -1;
}

/* The tenant whose jobs the caller sees: its own, or NULL for every tenant (admin). */
static const char *scope(const req_t *r) {
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

/* The query parameters a route takes; any other is refused, so that a typo is not ignored. */
typedef struct query_check {
    const char *const *allowed;
    const char *bad;      /* the first unknown name */
    const char *repeated; /* the first name given twice */
    const char *seen[8];
    size_t nseen;
} query_check_t;

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    query_check_t *q = cls;
    (void)kind;
    (void)value;
    int known = 0;
    for (size_t i = 0; q->allowed[i] != NULL; i++)
        if (strcmp(q->allowed[i], key) == 0)
            known = 1;
    if (!known) {
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

/* 0, or answers 400 and returns -1. */
static int check_query(req_t *r, struct MHD_Connection *conn, const char *const *allowed,
                       enum MHD_Result *ret) {
    query_check_t q = {.allowed = allowed};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, check_arg, &q);
    if (q.bad == NULL && q.repeated == NULL)
        return 0;
    char names[128] = "";
    size_t n = 0;
    for (size_t i = 0; allowed[i] != NULL && n < sizeof names; i++)
        n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "", allowed[i]);
    if (q.repeated != NULL)
        *ret = send_error(r, conn, FLOWD_E_BAD_REQUEST, "query parameter '%.64s' is given twice",
                          q.repeated);
    else if (allowed[0] == NULL)
        *ret = send_error(r, conn, FLOWD_E_BAD_REQUEST,
                          "unknown query parameter '%.64s' (this route takes none)", q.bad);
    else
        *ret = send_error(r, conn, FLOWD_E_BAD_REQUEST,
                          "unknown query parameter '%.64s' (this route takes %s)", q.bad, names);
    return -1;
}

static const char *arg(struct MHD_Connection *conn, const char *name) {
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
}

/* A JSON type name for messages. */
static const char *type_name(const json_t *v) {
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

json_t *flowd_http_body_object(const char *body, size_t len, const char *example, flowd_apierr_t *code,
                               char *msg, size_t msglen) {
    json_error_t err;
    if (len == 0) {
        *code = FLOWD_E_INVALID_JSON;
        snprintf(msg, msglen, "the body is empty; send a JSON object such as %s", example);
        return NULL;
    }
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (v == NULL) {
        *code = FLOWD_E_INVALID_JSON;
        snprintf(msg, msglen, "invalid JSON at line %d, column %d: %s", err.line, err.column, err.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        *code = FLOWD_E_BAD_REQUEST;
        snprintf(msg, msglen, "the body must be a JSON object such as %s, not %s", example, type_name(v));
        json_decref(v);
        return NULL;
    }
    return v;
}

/* Parses the body as a JSON object; otherwise answers 400 and returns NULL. */
static json_t *body_object(req_t *r, struct MHD_Connection *conn, const char *example,
                           enum MHD_Result *ret) {
    flowd_apierr_t code;
    char msg[512];
    json_t *v = flowd_http_body_object(r->body, r->len, example, &code, msg, sizeof msg);
    if (v == NULL)
        *ret = send_error(r, conn, code, "%s", msg);
    return v;
}

/* ---- routes ---- */

/* The job in the local table (r->job when looked up already), or NULL after answering 404. Another
 * tenant's job is answered as one that does not exist, word for word: a caller learns nothing of
 * the jobs it may not see. */
static flowd_job_t *find_job(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn,
                             const char *id, size_t len, enum MHD_Result *ret) {
    flowd_job_t *job = r->job ? r->job : flowd_jobs_get(srv->jobs, id, len);
    if (job != NULL && scope(r) != NULL && job->tenant != scope(r)) {
        flowd_job_unref(job);
        job = r->job = NULL;
    }
    if (job == NULL) {
        *ret = send_error(r, conn, FLOWD_E_NOT_FOUND, "no job with id '%.*s'", (int)(len > 64 ? 64 : len), id);
        return NULL;
    }
    r->job = job;
    return job;
}

/* With a shared store, whether the job runs elsewhere: not in the local table (r->job is set when it
 * is). Always 0 with a store of one instance, whose table has every job. */
static int elsewhere(flowd_server_t *srv, req_t *r, const char *id, size_t len) {
    if (srv->store->cluster == NULL)
        return 0;
    if (r->job == NULL)
        r->job = flowd_jobs_get(srv->jobs, id, len);
    return r->job == NULL;
}

/* Suspends the connection and hands cmd (taken over) to the loop. */
static enum MHD_Result loop_call(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn,
                                 flowd_cmd_t *cmd, enum phase phase) {
    flowd_http_t *h = srv->http;
    cmd->conn = conn;
    cmd->reply = &r->reply;
    /* Counted before the refuse flag is read, and the flag set before the count is read: either
     * shutdown waits for this request, or this request does not suspend. */
    atomic_fetch_add(&h->suspended, 1);
    if (atomic_load(&h->refuse)) {
        atomic_fetch_sub(&h->suspended, 1);
        flowd_cmd_free(cmd);
        if (phase == PH_WAIT)
            return send_job(r, conn, 200, r->job);
        return send_error(r, conn, FLOWD_E_SHUTTING_DOWN, NULL);
    }
    r->phase = (uint8_t)phase;
    MHD_suspend_connection(conn);
    if (flowd_bridge_push(srv->bridge, cmd) < 0) {
        /* the loop has closed its queue: shutting down; answer when MHD runs us again */
        flowd_answer_error(&r->reply.answer, FLOWD_E_SHUTTING_DOWN, NULL);
        atomic_store(&r->reply.ready, 1);
        MHD_resume_connection(conn);
    }
    return MHD_YES;
}

/* ---- jobs that run on another instance (a shared store) ---- */

static int is_id(const char *id, size_t len) {
    if (len != FLOWD_ID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return 0;
    return 1;
}

/* A job that is not in the local table, as a shared store has it: 0, or -1 after answering (404
 * when there is no such job, or the store is not shared). */
static int find_remote(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn, const char *id, size_t len,
                       unsigned what, flowd_remote_job_t *out, enum MHD_Result *ret) {
    char key[FLOWD_ID_LEN + 1];
    int rc = FLOW_ENOTFOUND;
    memset(out, 0, sizeof *out);
    if (srv->store->cluster != NULL && is_id(id, len)) {
        memcpy(key, id, FLOWD_ID_LEN);
        key[FLOWD_ID_LEN] = '\0';
        rc = srv->store->cluster->read_job(srv->store, key, NULL, scope(r), what, out);
    }
    if (rc == 0) {
        memcpy(r->remote_id, out->id, FLOWD_ID_LEN + 1);
        return 0;
    }
    if (rc == FLOW_ENOTFOUND)
        *ret = send_error(r, conn, FLOWD_E_NOT_FOUND, "no job with id '%.*s'", (int)(len > 64 ? 64 : len), id);
    else
        *ret = send_error(r, conn, FLOWD_E_UNAVAILABLE, "the job's database cannot be read now: %s", flow_strerror(rc));
    return -1;
}

static enum MHD_Result send_remote_job(req_t *r, struct MHD_Connection *conn, unsigned status,
                                       flowd_remote_job_t *j) {
    size_t len = 0;
    char *body = flowd_remote_job_text(j, &len);
    flowd_remote_job_clear(j);
    return send_json(r, conn, status, body, len);
}

/* The store's listener: the long poll's job has news, or its time is up. */
static void remote_wake(void *data, int why) {
    req_t *r = data;
    r->reply.answer.status = (unsigned)why;
    atomic_store_explicit(&r->reply.ready, 1, memory_order_release);
    MHD_resume_connection(r->conn);
}

/* A long poll of a job that runs elsewhere: suspended until the store sees events of the job after
 * `after`, then looked at again (remote_poll_again). */
static enum MHD_Result remote_poll(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn, flowd_remote_job_t *j) {
    uint64_t now = flow_mono_ms();
    flowd_http_t *h = srv->http;
    atomic_fetch_add(&h->suspended, 1);
    if (atomic_load(&h->refuse) || now >= r->remote_until_ms) {
        atomic_fetch_sub(&h->suspended, 1);
        return send_remote_job(r, conn, 200, j);
    }
    r->phase = PH_RWAIT;
    r->conn = conn;
    r->remote_seen = j->status;
    atomic_store(&r->reply.ready, 0);
    MHD_suspend_connection(conn);
    r->remote_watching = 1;
    if (srv->store->cluster->watch(srv->store, r->remote_id, j->last_event, r->remote_until_ms - now, remote_wake, r) < 0)
        remote_wake(r, FLOWD_WAKE_STOP);
    flowd_remote_job_clear(j);
    return MHD_YES;
}

static enum MHD_Result remote_poll_again(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn) {
    int why = (int)r->reply.answer.status;
    r->remote_watching = 0;
    r->reply.answer.status = 0;
    enum MHD_Result ret = MHD_YES;
    flowd_remote_job_t j;
    if (find_remote(srv, r, conn, r->remote_id, FLOWD_ID_LEN, 0, &j, &ret) < 0)
        return ret;
    if (why == FLOWD_WAKE_EVENTS && j.status == r->remote_seen && !flow_status_final(j.status) &&
        !atomic_load(&srv->stopping))
        return remote_poll(srv, r, conn, &j); /* events, but the same status: wait on */
    return send_remote_job(r, conn, 200, &j);
}

static enum MHD_Result get_remote_job(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn, const char *id,
                                      size_t id_len, uint64_t wait_ms) {
    enum MHD_Result ret = MHD_YES;
    flowd_remote_job_t j;
    if (find_remote(srv, r, conn, id, id_len, 0, &j, &ret) < 0)
        return ret;
    if (wait_ms == 0 || flow_status_final(j.status) || atomic_load(&srv->stopping))
        return send_remote_job(r, conn, 200, &j);
    r->remote_until_ms = flow_mono_ms() + wait_ms;
    return remote_poll(srv, r, conn, &j);
}

/* The store's listener: the owner's answer to input or a cancel sent from here. */
static void remote_sent(void *data, int rc, unsigned status, char *body, size_t len) {
    req_t *r = data;
    flowd_answer_t *a = &r->reply.answer;
    if (rc == 0 && body != NULL) {
        a->status = status;
        a->body = body;
        a->len = len;
    } else {
        free(body);
        if (rc == 0 || rc == FLOW_EIO)
            flowd_answer_error(a, FLOWD_E_INTERNAL, "the job's instance could not be asked");
        else if (rc == FLOW_ENOTFOUND)
            flowd_answer_error(a, FLOWD_E_NOT_FOUND, "no job with id '%s'", r->remote_id);
        else if (rc == FLOW_ETIMEDOUT)
            flowd_answer_error(a, FLOWD_E_UNAVAILABLE, "the instance that runs job %s did not take the request in "
                               "time; it did not take effect: try again", r->remote_id);
        else if (rc == FLOW_EBUSY)
            flowd_answer_error(a, FLOWD_E_UNAVAILABLE, "the instance that runs job %s took the request but did "
                               "not answer in time; it may have taken effect", r->remote_id);
        else
            flowd_answer_error(a, FLOWD_E_SHUTTING_DOWN, NULL);
    }
    atomic_store_explicit(&r->reply.ready, 1, memory_order_release);
    MHD_resume_connection(r->conn);
}

/* Input (value: JSON text) or a cancel for a job that runs elsewhere: the store carries it to the
 * job's instance and its answer back, as if the job ran here. */
static enum MHD_Result remote_command(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn, const char *id,
                                      size_t id_len, int cancel, const char *value) {
    enum MHD_Result ret = MHD_YES;
    flowd_remote_job_t j;
    if (find_remote(srv, r, conn, id, id_len, 0, &j, &ret) < 0)
        return ret;
    if (flow_status_final(j.status)) {
        flow_status_t st = j.status;
        flowd_remote_job_clear(&j);
        if (cancel)
            return send_error(r, conn, FLOWD_E_ALREADY_ENDED, "job %s has already ended (%s)", r->remote_id,
                              flow_status_name(st));
        return send_error(r, conn, FLOWD_E_NOT_WAITING, "job %s is %s, not waiting for input", r->remote_id,
                          flow_status_name(st));
    }
    flowd_remote_job_clear(&j);
    flowd_http_t *h = srv->http;
    atomic_fetch_add(&h->suspended, 1);
    if (atomic_load(&h->refuse)) {
        atomic_fetch_sub(&h->suspended, 1);
        return send_error(r, conn, FLOWD_E_SHUTTING_DOWN, NULL);
    }
    r->phase = PH_CALL;
    r->conn = conn;
    MHD_suspend_connection(conn);
    if (srv->store->cluster->send(srv->store, r->remote_id, cancel, value, remote_sent, r) < 0)
        remote_sent(r, FLOW_ESTATE, 0, NULL, 0);
    return MHD_YES;
}

static enum MHD_Result get_job(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn,
                               const char *id, size_t id_len) {
    static const char *const allowed[] = {"wait", NULL};
    enum MHD_Result ret = MHD_YES;
    if (check_query(r, conn, allowed, &ret) < 0)
        return ret;
    const char *wait = arg(conn, "wait");
    double seconds = 0;
    if (wait != NULL) {
        /* digits with an optional fraction: strtod alone would take hex, exponents, inf */
        size_t digits = strspn(wait, "0123456789.");
        const char *dot = strchr(wait, '.');
        if (digits == 0 || wait[digits] != '\0' || (dot != NULL && strchr(dot + 1, '.') != NULL) ||
            strcmp(wait, ".") == 0 || (seconds = strtod(wait, NULL)) > MAX_WAIT_S)
            return send_error(r, conn, FLOWD_E_BAD_REQUEST,
                              "wait must be a number of seconds from 0 to %d, not '%.32s'", MAX_WAIT_S,
                              wait);
    }
    uint64_t wait_ms = (uint64_t)llround(seconds * 1000.0);
    if (elsewhere(srv, r, id, id_len))
        return get_remote_job(srv, r, conn, id, id_len, wait_ms);
    flowd_job_t *job = find_job(srv, r, conn, id, id_len, &ret);
    if (job == NULL)
        return ret;
    flow_status_t seen = flowd_job_status(job);
    if (wait_ms == 0 || flow_status_final(seen) || atomic_load(&srv->stopping))
        return send_job(r, conn, 200, job);
    flowd_cmd_t *cmd = flowd_cmd_new(FLOWD_CMD_WAIT, job);
    if (cmd == NULL)
        return send_job(r, conn, 200, job);
    cmd->seen = seen;
    cmd->wait_ms = wait_ms;
    return loop_call(srv, r, conn, cmd, PH_WAIT);
}

static enum MHD_Result get_shared(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn,
                                  const char *id, size_t id_len) {
    static const char *const allowed[] = {"pointer", NULL};
    enum MHD_Result ret = MHD_YES;
    if (check_query(r, conn, allowed, &ret) < 0)
        return ret;
    const char *pointer = arg(conn, "pointer");
    size_t bad = 0;
    if (pointer != NULL && flow_pointer_checkn(pointer, strlen(pointer), &bad) < 0)
        return send_error(r, conn, FLOWD_E_BAD_REQUEST,
                          "pointer '%.200s' is not a JSON Pointer (RFC 6901: \"\" or \"/a/0/b\", "
                          "with ~0 for ~ and ~1 for /): wrong at byte %zu",
                          pointer, bad);
    if (elsewhere(srv, r, id, id_len)) {
        flowd_remote_job_t j;
        if (find_remote(srv, r, conn, id, id_len, FLOWD_READ_SHARED, &j, &ret) < 0)
            return ret;
        flowd_answer_t a;
        flowd_render_shared(&a, j.shared ? j.shared : "{}", j.shared ? j.shared_len : 2, NULL, pointer);
        flowd_remote_job_clear(&j);
        return send_answer(r, conn, &a);
    }
    flowd_job_t *job = find_job(srv, r, conn, id, id_len, &ret);
    if (job == NULL)
        return ret;
    flowd_job_lock(job);
    int done = job->done;
    const char *final = job->final_shared; /* set once, never changed: usable after unlocking */
    size_t final_len = job->final_shared_len;
    flowd_job_unlock(job);
    if (done && final != NULL) {
        flowd_answer_t a;
        flowd_render_shared(&a, final, final_len, NULL, pointer);
        return send_answer(r, conn, &a);
    }
    flowd_cmd_t *cmd = flowd_cmd_new(FLOWD_CMD_SHARED, job);
    if (cmd == NULL || (pointer != NULL && (cmd->pointer = strdup(pointer)) == NULL)) {
        flowd_cmd_free(cmd);
        return send_json(r, conn, 500, NULL, 0);
    }
    return loop_call(srv, r, conn, cmd, PH_CALL);
}

static enum MHD_Result get_history(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn,
                                   const char *id, size_t id_len) {
    static const char *const allowed[] = {NULL};
    enum MHD_Result ret = MHD_YES;
    if (check_query(r, conn, allowed, &ret) < 0)
        return ret;
    flow_buf_t b;
    flowd_answer_t a;
    flow_buf_init(&b, flowd_render_max_answer());
    if (elsewhere(srv, r, id, id_len)) {
        flowd_remote_job_t j;
        if (find_remote(srv, r, conn, id, id_len, FLOWD_READ_HISTORY, &j, &ret) < 0)
            return ret;
        flowd_remote_history(&b, &j);
        flowd_remote_job_clear(&j);
        flowd_answer_take(&a, &b, "the history", FLOWD_HISTORY_HINT);
        return send_answer(r, conn, &a);
    }
    flowd_job_t *job = find_job(srv, r, conn, id, id_len, &ret);
    if (job == NULL)
        return ret;
    flowd_job_lock(job);
    int done = job->done;
    flowd_job_unlock(job);
    if (done) {
        flowd_render_done_history(&b, job);
        flowd_answer_take(&a, &b, "the history", FLOWD_HISTORY_HINT);
        return send_answer(r, conn, &a);
    }
    flowd_cmd_t *cmd = flowd_cmd_new(FLOWD_CMD_HISTORY, job);
    if (cmd == NULL)
        return send_json(r, conn, 500, NULL, 0);
    return loop_call(srv, r, conn, cmd, PH_CALL);
}

static enum MHD_Result get_events(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn,
                                  const char *id, size_t id_len) {
    static const char *const allowed[] = {NULL};
    enum MHD_Result ret = MHD_YES;
    if (check_query(r, conn, allowed, &ret) < 0)
        return ret;
    const char *last = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
    uint64_t last_id = 0;
    if (last != NULL && *last != '\0') {
        char *end;
        unsigned long long v = strtoull(last, &end, 10);
        if (!isdigit((unsigned char)*last) || *end != '\0' || v == ULLONG_MAX)
            return send_error(r, conn, FLOWD_E_BAD_REQUEST,
                              "Last-Event-ID must be the id of an event (a whole number), not '%.32s'",
                              last);
        last_id = v;
    }
    struct MHD_Response *res = NULL;
    if (elsewhere(srv, r, id, id_len)) {
        flowd_remote_job_t j;
        if (find_remote(srv, r, conn, id, id_len, 0, &j, &ret) < 0)
            return ret;
        flowd_remote_job_clear(&j);
        res = flowd_remote_watch_response(srv, r->remote_id, conn, last_id);
    } else {
        flowd_job_t *job = find_job(srv, r, conn, id, id_len, &ret);
        if (job == NULL)
            return ret;
        res = flowd_watch_response(srv->watchers, job, conn, last_id);
    }
    if (res == NULL)
        return send_json(r, conn, 500, NULL, 0);
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(res, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    ret = MHD_queue_response(conn, 200, res);
    MHD_destroy_response(res);
    r->status = 200;
    r->phase = PH_DONE;
    return ret;
}

/* The opaque cursor of the list: the seq of the last job of a page, as 16 hex digits. */
static void cursor_format(uint64_t seq, char out[17]) {
    snprintf(out, 17, "%016llx", (unsigned long long)seq);
}

static int cursor_parse(const char *s, uint64_t *seq) {
    if (strlen(s) != 16)
        return -1;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = (v << 4) | (uint64_t)d;
    }
    if (v == 0)
        return -1;
    *seq = v;
    return 0;
}

/* The list of a shared store: from the database, which has every instance's jobs (its seq is the
 * order of creation over all of them, and the cursor); a job that runs here is shown as the local
 * table has it, which may be a little ahead. */
static enum MHD_Result list_shared(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn,
                                   int status, const char *flow, const char *tenant,
                                   uint64_t cursor, size_t limit) {
    flowd_remote_job_t *jobs = calloc(limit, sizeof *jobs);
    size_t n = 0;
    uint64_t next = 0;
    int rc = jobs ? srv->store->cluster->read_jobs(srv->store, status, flow, tenant, cursor, limit,
                                                   jobs, &n, &next)
                  : FLOW_ENOMEM;
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            flowd_remote_job_clear(&jobs[i]);
        free(jobs);
        return send_error(r, conn, FLOWD_E_UNAVAILABLE, "the jobs' database cannot be read now: %s", flow_strerror(rc));
    }
    flow_buf_t b;
    flowd_jw_t w;
    flow_buf_init(&b, flowd_render_max_answer());
    flowd_jw_init(&w, &b, 2);
    flowd_jw_obj(&w);
    flowd_jw_key(&w, "jobs");
    flowd_jw_arr(&w);
    for (size_t i = 0; i < n; i++) {
        flowd_job_t *local = flowd_jobs_get(srv->jobs, jobs[i].id, FLOWD_ID_LEN);
        if (local != NULL)
            flowd_render_job(&w, local);
        else
            flowd_remote_job_write(&w, &jobs[i]);
        flowd_job_unref(local);
        flowd_remote_job_clear(&jobs[i]);
    }
    free(jobs);
    flowd_jw_arr_end(&w);
    flowd_jw_key(&w, "next_cursor");
    if (next != 0) {
        char c[17];
        cursor_format(next, c);
        flowd_jw_str(&w, c);
    } else {
        flowd_jw_null(&w);
    }
    flowd_jw_obj_end(&w);
    flow_buf_addc(&b, '\n');
    flowd_answer_t a;
    flowd_answer_take(&a, &b, "the page of jobs", FLOWD_LIST_HINT);
    return send_answer(r, conn, &a);
}

/* The limit of a list (1 to MAX_LIMIT, default DEFAULT_LIMIT): 0, or -1 after answering 400. */
static int list_limit(req_t *r, struct MHD_Connection *conn, uint64_t *limit,
                      enum MHD_Result *ret) {
    const char *limit_s = arg(conn, "limit");
    *limit = DEFAULT_LIMIT;
    if (limit_s == NULL)
        return 0;
    char *end;
    unsigned long long v = strtoull(limit_s, &end, 10);
    if (!isdigit((unsigned char)*limit_s) || *end != '\0' || v < 1 || v > MAX_LIMIT) {
        *ret = send_error(r, conn, FLOWD_E_BAD_REQUEST,
                          "limit must be a whole number from 1 to %d, not '%.32s'", MAX_LIMIT,
                          limit_s);
        return -1;
    }
    *limit = v;
    return 0;
}

static enum MHD_Result list_jobs(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn) {
    static const char *const allowed[] = {"status", "flow", "tenant", "limit", "cursor", NULL};
    enum MHD_Result ret = MHD_YES;
    if (check_query(r, conn, allowed, &ret) < 0)
        return ret;
    const char *status_s = arg(conn, "status");
    const char *flow = arg(conn, "flow");
    /* An admin sees every tenant's jobs, or the one tenant it names; other keys their own only. */
    const char *tenant_s = arg(conn, "tenant");
    const char *tenant = scope(r);
    if (tenant_s != NULL && tenant != NULL && strcmp(tenant_s, tenant) != 0)
        return send_error(r, conn, FLOWD_E_FORBIDDEN,
                          "key '%s' (role %s) sees only the jobs of its tenant '%s'",
                          r->caller.name, flowd_role_name(r->caller.role), tenant);
    if (tenant_s != NULL && strlen(tenant_s) > FLOWD_NAME_MAX)
        return send_error(r, conn, FLOWD_E_BAD_REQUEST, "tenant must be at most %d characters",
                          FLOWD_NAME_MAX);
    const char *cursor_s = arg(conn, "cursor");
    flow_status_t status = FLOW_QUEUED;
    if (status_s != NULL && flow_status_parse(status_s, &status) < 0)
        return send_error(r, conn, FLOWD_E_BAD_REQUEST,
                          "status must be one of queued, running, waiting, succeeded, failed, "
                          "canceled; not '%.32s'",
                          status_s);
    uint64_t limit;
    if (list_limit(r, conn, &limit, &ret) < 0)
        return ret;
    uint64_t cursor = 0;
    if (cursor_s != NULL && cursor_parse(cursor_s, &cursor) < 0)
        return send_error(r, conn, FLOWD_E_BAD_REQUEST,
                          "cursor '%.40s' is not one this server gave (use next_cursor of the "
                          "previous page)",
                          cursor_s);
    if (srv->store->cluster != NULL) /* the database knows every instance's tenants */
        return list_shared(srv, r, conn, status_s ? (int)status : -1, flow,
                           tenant_s ? tenant_s : tenant, cursor, (size_t)limit);
    if (tenant_s != NULL) {
        tenant = flowd_auth_find_tenant(srv->auth, tenant_s);
        if (tenant == NULL)
            limit = 0; /* a tenant that no key and no job has named has no jobs */
    }
    flowd_job_t **jobs = malloc((limit ? limit : 1) * sizeof *jobs);
    size_t n = 0;
    uint64_t next = 0;
    if (jobs == NULL ||
        (limit > 0 && flowd_jobs_list(srv->jobs, status_s ? (int)status : -1, flow, tenant, cursor,
                                      (size_t)limit, jobs, &n, &next) < 0)) {
        free(jobs);
        return send_json(r, conn, 500, NULL, 0);
    }
    flow_buf_t b;
    flowd_jw_t w;
    flow_buf_init(&b, flowd_render_max_answer());
    flowd_jw_init(&w, &b, 2);
    flowd_jw_obj(&w);
    flowd_jw_key(&w, "jobs");
    flowd_jw_arr(&w);
    for (size_t i = 0; i < n; i++) {
        flowd_render_job(&w, jobs[i]);
        flowd_job_unref(jobs[i]);
    }
    free(jobs);
    flowd_jw_arr_end(&w);
    flowd_jw_key(&w, "next_cursor");
    if (next != 0) {
        char c[17];
        cursor_format(next, c);
        flowd_jw_str(&w, c);
    } else {
        flowd_jw_null(&w);
    }
    flowd_jw_obj_end(&w);
    flow_buf_addc(&b, '\n');
    flowd_answer_t a;
    flowd_answer_take(&a, &b, "the page of jobs", FLOWD_LIST_HINT);
    return send_answer(r, conn, &a);
}

static int flow_key(req_t *r, struct MHD_Connection *conn, const char *name, size_t len,
                    char key[65], enum MHD_Result *ret);

static enum MHD_Result get_flow(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn,
                               const char *name, size_t name_len) {
    static const char *const allowed[] = {NULL};
    enum MHD_Result ret = MHD_YES;
    char key[65];
    if (check_query(r, conn, allowed, &ret) < 0 || flow_key(r, conn, name, name_len, key, &ret) < 0)
        return ret;
    flow_def_t *def = flow_registry_get_flow(srv->reg, key);
    if (def == NULL) {
        flow_buf_t names;
        flow_buf_init(&names, 4096);
        flowd_flow_names(srv->reg, &names);
        ret = send_error(r, conn, FLOWD_E_UNKNOWN_FLOW,
                         "no flow named '%.64s' (this server runs: %s)", key,
                         names.data ? names.data : "none");
        flow_buf_free(&names);
        return ret;
    }
    flow_buf_t b;
    flowd_jw_t w;
    flowd_answer_t a;
    flow_buf_init(&b, flowd_render_max_answer());
    flowd_jw_init(&w, &b, 2);
    flowd_flow_write(&w, def, 1);
    flow_def_unref(def);
    flow_buf_addc(&b, '\n');
    flowd_answer_take(&a, &b, "the flow", "its document is at most --max-flow-size");
    return send_answer(r, conn, &a);
}

/* A page of the flows, by name; the cursor is the last name of the page before. */
static enum MHD_Result list_flows(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn) {
    static const char *const allowed[] = {"limit", "cursor", NULL};
    enum MHD_Result ret = MHD_YES;
    uint64_t limit;
    if (check_query(r, conn, allowed, &ret) < 0 || list_limit(r, conn, &limit, &ret) < 0)
        return ret;
    const char *cursor = arg(conn, "cursor");
    if (cursor != NULL && !flow_doc_name_ok(cursor, strlen(cursor)))
        return send_error(r, conn, FLOWD_E_BAD_REQUEST,
                          "cursor '%.64s' is not one this server gave (use next_cursor of the "
                          "previous page)",
                          cursor);
    flow_def_t **defs = NULL;
    size_t n = 0, i = 0, shown = 0;
    if (flow_registry_list_flows(srv->reg, &defs, &n) < 0)
        return send_json(r, conn, 500, NULL, 0);
    while (cursor != NULL && i < n && strcmp(flow_def_name(defs[i]), cursor) <= 0)
        i++;
    flow_buf_t b;
    flowd_jw_t w;
    flowd_answer_t a;
    flow_buf_init(&b, flowd_render_max_answer());
    flowd_jw_init(&w, &b, 2);
    flowd_jw_obj(&w);
    flowd_jw_key(&w, "flows");
    flowd_jw_arr(&w);
    for (; i < n && shown < limit && !b.err; i++, shown++)
        flowd_flow_write(&w, defs[i], 0);
    flowd_jw_arr_end(&w);
    flowd_jw_key(&w, "next_cursor");
    flowd_jw_str(&w, i < n ? flow_def_name(defs[i - 1]) : NULL);
    flowd_jw_obj_end(&w);
    flow_buf_addc(&b, '\n');
    for (size_t k = 0; k < n; k++)
        flow_def_unref(defs[k]);
    flow_free(defs);
    flowd_answer_take(&a, &b, "the page of flows", FLOWD_LIST_HINT);
    return send_answer(r, conn, &a);
}

static enum MHD_Result get_metrics(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn) {
    static const char *const allowed[] = {NULL};
    enum MHD_Result ret = MHD_YES;
    if (check_query(r, conn, allowed, &ret) < 0)
        return ret;
    flowd_gauges_t g = {0};
    flowd_jobs_counts(srv->jobs, g.jobs);
    g.queue_depth = flowd_bridge_depth(srv->bridge);
    g.streams = flowd_watchers_count(srv->watchers);
    g.suspended = atomic_load(&srv->http->suspended);
    flow_buf_t b;
    flow_buf_init(&b, 0);
    flowd_metrics_render(srv->metrics, &g, &b);
    size_t len = 0;
    char *body = flow_buf_take(&b, &len);
    return send_body(r, conn, 200, body, len, "text/plain; version=0.0.4; charset=utf-8");
}

static enum MHD_Result healthz(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn) {
    static const char *const allowed[] = {NULL};
    enum MHD_Result ret = MHD_YES;
    if (check_query(r, conn, allowed, &ret) < 0)
        return ret;
    if (atomic_load(&srv->stopping))
        return send_error(r, conn, FLOWD_E_SHUTTING_DOWN, NULL);
    static const char ok[] = "{\n  \"status\": \"ok\"\n}\n";
    return send_json(r, conn, 200, strdup(ok), sizeof ok - 1);
}

/* ---- POST bodies ---- */

/* The store's answer to create; for a store that is not immediate, the connection is suspended
 * (PH_STORE) and resumed here. */
static void store_done(void *data, int err) {
    req_t *r = data;
    r->reply.answer.status = err == 0 ? 202 : err == FLOW_EEXIST ? 409 : 500;
    atomic_store_explicit(&r->reply.ready, 1, memory_order_release);
    if (r->phase == PH_STORE)
        MHD_resume_connection(r->conn);
}

static enum MHD_Result post_job(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn) {
    static const char example[] = "{\"flow\": \"noop\", \"shared\": {}}";
    enum MHD_Result ret = MHD_YES;
    json_t *body = body_object(r, conn, example, &ret);
    if (body == NULL)
        return ret;
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "flow") != 0 && strcmp(key, "shared") != 0 && strcmp(key, "params") != 0) {
            ret = send_error(r, conn, FLOWD_E_BAD_REQUEST,
                             "unknown field '%.64s' in the body (it takes flow, shared and params)", key);
            json_decref(body);
            return ret;
        }
    }
    json_t *flow = json_object_get(body, "flow");
    json_t *shared = json_object_get(body, "shared");
    json_t *params = json_object_get(body, "params");
    const char *problem = NULL, *field = NULL, *want = NULL;
    if (flow == NULL)
        problem = "missing field 'flow': the name of a flow this server runs (GET /v1/flows)";
    else if (!json_is_string(flow))
        field = "flow", want = "a string", v = flow;
    else if (shared != NULL && !json_is_object(shared))
        field = "shared", want = "an object", v = shared;
    else if (params != NULL && !json_is_object(params))
        field = "params", want = "an object", v = params;
    if (problem != NULL || field != NULL) {
        if (problem != NULL)
            ret = send_error(r, conn, FLOWD_E_BAD_REQUEST, "%s", problem);
        else
            ret = send_error(r, conn, FLOWD_E_BAD_REQUEST, "field '%s' must be %s, not %s", field, want,
                             type_name(v));
        json_decref(body);
        return ret;
    }
    /* the store is counted after each step; one too big from the start is refused now (a body
     * this short cannot hold one: a compact dump is about as long as its text, or shorter) */
    if (shared != NULL && r->len > srv->cfg.max_shared / 2 &&
        flowd_json_size(shared, srv->cfg.max_shared) > srv->cfg.max_shared) {
        json_decref(body);
        return send_error(r, conn, FLOWD_E_PAYLOAD_TOO_LARGE,
                          "the shared store is over %zu bytes as JSON, the limit of a job's store "
                          "(--max-shared)",
                          srv->cfg.max_shared);
    }
    const char *idem = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (idem != NULL && (*idem == '\0' || strlen(idem) > MAX_IDEM_KEY)) {
        json_decref(body);
        return send_error(r, conn, FLOWD_E_BAD_REQUEST, "Idempotency-Key must be 1 to %d characters",
                          MAX_IDEM_KEY);
    }
    flow_def_t *def = flow_registry_get_flow(srv->reg, json_string_value(flow));
    if (def == NULL) {
        flow_buf_t names;
        flow_buf_init(&names, 4096);
        flowd_flow_names(srv->reg, &names);
        ret = send_error(r, conn, FLOWD_E_UNKNOWN_FLOW, "no flow named '%.64s' (this server runs: %s)",
                         json_string_value(flow), names.data ? names.data : "none");
        flow_buf_free(&names);
        json_decref(body);
        return ret;
    }
    if (atomic_load(&srv->stopping)) {
        flow_def_unref(def);
        json_decref(body);
        return send_error(r, conn, FLOWD_E_SHUTTING_DOWN, NULL);
    }
    if (idem != NULL && srv->store->cluster != NULL) {
        /* another instance may have made the job of this key: the store knows */
        flowd_remote_job_t j;
        flowd_job_t *here = NULL;
        if (srv->store->cluster->read_job(srv->store, NULL, idem, r->caller.tenant, 0, &j) == 0 &&
            (here = flowd_jobs_get(srv->jobs, j.id, FLOWD_ID_LEN)) == NULL) {
            flow_def_unref(def);
            json_decref(body);
            memcpy(r->remote_id, j.id, FLOWD_ID_LEN + 1);
            if (j.body_hash != flowd_hash_bytes(r->body, r->len)) {
                flowd_remote_job_clear(&j);
                return send_error(r, conn, FLOWD_E_IDEMPOTENCY_CONFLICT,
                                  "Idempotency-Key '%.64s' was used with another body", idem);
            }
            return send_remote_job(r, conn, 200, &j);
        }
        flowd_job_unref(here); /* here: the table answers below */
        flowd_remote_job_clear(&j);
    }
    /* The loop gets the shared store and params as values of its own: no jansson value is shared
     * between threads (their reference counts would be). */
    shared = shared ? json_incref(shared) : json_object();
    params = json_incref(params);
    json_decref(body);
    flowd_job_t *job = NULL;
    int repeat = 0;
    int rc = flowd_jobs_create(srv->jobs, def, r->caller.tenant, idem,
                               idem ? flowd_hash_bytes(r->body, r->len) : 0, &job, &repeat);
    flow_def_unref(def);
    if (rc < 0 || repeat) {
        json_decref(shared);
        json_decref(params);
    }
    if (rc == FLOW_EBUSY)
        return send_error(r, conn, FLOWD_E_TOO_MANY_JOBS,
                          "%u jobs are queued, running or waiting (--max-jobs); try again later",
                          srv->cfg.max_jobs);
    if (rc == FLOW_EEXIST)
        return send_error(r, conn, FLOWD_E_IDEMPOTENCY_CONFLICT,
                          "Idempotency-Key '%.64s' was used with another body", idem);
    if (rc < 0)
        return send_error(r, conn, FLOWD_E_INTERNAL, "the job could not be created: %s", flow_strerror(rc));
    r->job = job;
    if (repeat)
        return send_job(r, conn, 200, job);
    const flowd_store_ops_t *ops = srv->store->ops;
    if (!ops->immediate) {
        /* A durable store answers later: the connection waits, and the job starts once stored. */
        r->phase = PH_STORE;
        r->conn = conn;
        r->start_shared = shared;
        r->start_params = params;
        atomic_fetch_add(&srv->http->suspended, 1);
        MHD_suspend_connection(conn);
        if (ops->create(srv->store, job, shared, params, store_done, r) < 0)
            store_done(r, FLOW_EIO);
        return MHD_YES; /* on_resumed answers */
    }
    if (ops->create(srv->store, job, shared, params, store_done, r) < 0 || r->reply.answer.status != 202) {
        json_decref(shared);
        json_decref(params);
        return send_error(r, conn, FLOWD_E_INTERNAL, "the job could not be stored");
    }
    /* Render before the loop can run the job, so the answer says queued. */
    size_t len = 0;
    char *text = flowd_render_new_job(job, &len);
    flowd_bridge_start(srv->bridge, job, shared, params);
    return send_json(r, conn, 202, text, len);
}

static enum MHD_Result post_input(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn,
                                  const char *id, size_t id_len) {
    static const char example[] = "{\"value\": \"yes\"}";
    enum MHD_Result ret = MHD_YES;
    json_t *body = body_object(r, conn, example, &ret);
    if (body == NULL)
        return ret;
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "value") != 0) {
            ret = send_error(r, conn, FLOWD_E_BAD_REQUEST,
                             "unknown field '%.64s' in the body (it takes only value)", key);
            json_decref(body);
            return ret;
        }
    }
    json_t *value = json_incref(json_object_get(body, "value"));
    json_decref(body);
    if (value == NULL)
        return send_error(r, conn, FLOWD_E_BAD_REQUEST,
                          "missing field 'value': the answer, any JSON value, e.g. %s", example);
    if (elsewhere(srv, r, id, id_len)) {
        char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(value);
        if (text == NULL)
            return send_json(r, conn, 500, NULL, 0);
        ret = remote_command(srv, r, conn, id, id_len, 0, text);
        free(text);
        return ret;
    }
    flowd_job_t *job = find_job(srv, r, conn, id, id_len, &ret);
    flowd_cmd_t *cmd = job ? flowd_cmd_new(FLOWD_CMD_INPUT, job) : NULL;
    if (cmd == NULL) {
        json_decref(value);
        return job ? send_json(r, conn, 500, NULL, 0) : ret;
    }
    cmd->value = value;
    return loop_call(srv, r, conn, cmd, PH_CALL);
}

static enum MHD_Result post_cancel(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn,
                                   const char *id, size_t id_len) {
    enum MHD_Result ret = MHD_YES;
    if (elsewhere(srv, r, id, id_len))
        return remote_command(srv, r, conn, id, id_len, 1, NULL);
    flowd_job_t *job = find_job(srv, r, conn, id, id_len, &ret);
    if (job == NULL)
        return ret;
    flowd_cmd_t *cmd = flowd_cmd_new(FLOWD_CMD_CANCEL, job);
    if (cmd == NULL)
        return send_json(r, conn, 500, NULL, 0);
    return loop_call(srv, r, conn, cmd, PH_CALL);
}

/* ---- flows from documents ---- */

/* 422 invalid_flow, with every problem and its place (a JSON Pointer into the document). */
static enum MHD_Result send_problems(req_t *r, struct MHD_Connection *conn, const flow_problems_t *p) {
    flow_buf_t b;
    flowd_jw_t w;
    size_t total = flow_problems_total(p);
    char message[128];
    snprintf(message, sizeof message, "the flow document has %zu problem%s", total, total == 1 ? "" : "s");
    flow_buf_init(&b, 0);
    flowd_jw_init(&w, &b, 2);
    flowd_jw_obj(&w);
    flowd_jw_key(&w, "error");
    flowd_jw_obj(&w);
    flowd_jw_key(&w, "code");
    flowd_jw_str(&w, flowd_apierr_code(FLOWD_E_INVALID_FLOW));
    flowd_jw_key(&w, "message");
    flowd_jw_str(&w, message);
    flowd_jw_key(&w, "problems");
    flowd_jw_arr(&w);
    for (size_t i = 0; i < p->count; i++) {
        flowd_jw_obj(&w);
        flowd_jw_key(&w, "where");
        flowd_jw_str(&w, p->items[i].where);
        flowd_jw_key(&w, "message");
        flowd_jw_str(&w, p->items[i].message);
        flowd_jw_obj_end(&w);
    }
    flowd_jw_arr_end(&w);
    flowd_jw_obj_end(&w);
    flowd_jw_obj_end(&w);
    flow_buf_addc(&b, '\n');
    size_t len = 0;
    char *body = flow_buf_take(&b, &len);
    return send_json(r, conn, flowd_apierr_status(FLOWD_E_INVALID_FLOW), body, len);
}

/* The {name} of the URL into key; -1 after answering when it cannot be a flow's name: 400 for a
 * PUT, which would make one, 404 otherwise. */
static int flow_key(req_t *r, struct MHD_Connection *conn, const char *name, size_t len, char key[65],
                    enum MHD_Result *ret) {
    if (!flow_doc_name_ok(name, len)) {
        if (r->method == M_PUT)
            *ret = send_error(r, conn, FLOWD_E_BAD_REQUEST,
                              "'%.64s' cannot be a flow's name: a name is " FLOW_DOC_NAME_RULE,
                              name);
        else
            *ret = send_error(r, conn, FLOWD_E_UNKNOWN_FLOW, "no flow named '%.64s'", name);
        return -1;
    }
    memcpy(key, name, len);
    key[len] = '\0';
    return 0;
}

static enum MHD_Result put_flow(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn, const char *name,
                                size_t name_len) {
    enum MHD_Result ret = MHD_YES;
    char key[65];
    json_error_t jerr;
    flow_problems_t problems = FLOW_PROBLEMS_INIT;
    flow_def_t *def = NULL;
    if (flow_key(r, conn, name, name_len, key, &ret) < 0)
        return ret;
    json_t *doc = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        return send_error(r, conn, FLOWD_E_INVALID_JSON, "the body is not JSON: line %d, column %d: %s",
                          jerr.line, jerr.column, jerr.text);
    /* The URL names the flow: a document without a name takes it, one with another is refused. */
    json_t *doc_name = json_object_get(doc, "name");
    if (json_is_object(doc) && doc_name == NULL)
        json_object_set_new(doc, "name", json_string(key));
    else if (json_is_string(doc_name) && strcmp(json_string_value(doc_name), key) != 0) {
        flow_problems_add(&problems, "/name", "the document is named '%s' but the URL names '%s'",
                          json_string_value(doc_name), key);
        json_object_set_new(doc, "name", json_string(key)); /* so that its other problems show too */
    }
    int rc = flow_doc_load(srv->reg, doc, &def, &problems);
    if (rc == 0 && problems.count > 0) {
        flow_def_unref(def);
        def = NULL;
        rc = FLOW_ELOAD;
    }
    json_decref(doc);
    if (rc == FLOW_ELOAD) {
        ret = send_problems(r, conn, &problems);
    } else if (rc < 0) {
        ret = send_json(r, conn, 500, NULL, 0);
    } else {
        /* one PUT at a time from here, so that two cannot both take the last room (--max-flows) */
        pthread_mutex_lock(&srv->http->flows_lock);
        flow_def_t *old = flow_registry_get_flow(srv->reg, key);
        if (old == NULL && flow_registry_flow_count(srv->reg) >= srv->cfg.max_flows) {
            ret = send_error(r, conn, FLOWD_E_TOO_MANY_FLOWS,
                             "this server holds %u flows, its limit (--max-flows); DELETE one, or "
                             "replace one by its name",
                             srv->cfg.max_flows);
        } else if ((rc = srv->store->ops->put_flow(srv->store, key, flow_doc_of(def))) < 0) {
            ret = send_error(r, conn, FLOWD_E_INTERNAL, "the flow could not be stored");
        } else if ((rc = flow_registry_put_flow(srv->reg, def, NULL)) < 0) {
            ret = send_json(r, conn, 500, NULL, 0);
        } else {
            flowd_log(FLOW_LOG_INFO, "flow %s %s by PUT", key, old ? "replaced" : "added");
            flow_buf_t b;
            flowd_jw_t w;
            flow_buf_init(&b, 0);
            flowd_jw_init(&w, &b, 2);
            flowd_flow_write(&w, def, 1);
            flow_buf_addc(&b, '\n');
            size_t len = 0;
            char *body = flow_buf_take(&b, &len);
            ret = send_json(r, conn, old ? 200 : 201, body, len);
        }
        pthread_mutex_unlock(&srv->http->flows_lock);
        flow_def_unref(old);
        flow_def_unref(def);
    }
    flow_problems_clear(&problems);
    return ret;
}

static enum MHD_Result delete_flow(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn,
                                   const char *name, size_t name_len) {
    enum MHD_Result ret = MHD_YES;
    char key[65];
    if (flow_key(r, conn, name, name_len, key, &ret) < 0)
        return ret;
    flow_def_t *def = flow_registry_get_flow(srv->reg, key);
    if (def == NULL)
        return send_error(r, conn, FLOWD_E_UNKNOWN_FLOW, "no flow named '%s'", key);
    flow_def_unref(def);
    if (srv->store->ops->put_flow(srv->store, key, NULL) < 0)
        return send_error(r, conn, FLOWD_E_INTERNAL, "the deletion could not be stored");
    if (flow_registry_remove_flow(srv->reg, key) < 0)
        return send_error(r, conn, FLOWD_E_UNKNOWN_FLOW, "no flow named '%s'", key);
    flowd_log(FLOW_LOG_INFO, "flow %s deleted", key);
    size_t len = 0;
    char *body = NULL;
    flow_buf_t b;
    flow_buf_init(&b, 0);
    flow_buf_printf(&b, "{\n  \"name\": \"%s\",\n  \"deleted\": true\n}\n", key);
    body = flow_buf_take(&b, &len);
    return send_json(r, conn, 200, body, len);
}

/* ---- the handler ---- */

/* The most a request's body may be, and the flag that says so: --max-body, or --max-flow-size for a
 * flow document when that is lower. */
static size_t body_cap(const flowd_server_t *srv, const req_t *r, const char **flag) {
    if (r->route == FLOWD_R_FLOW && srv->cfg.max_flow_size < srv->cfg.max_body) {
        *flag = "--max-flow-size";
        return srv->cfg.max_flow_size;
    }
    *flag = "--max-body";
    return srv->cfg.max_body;
}

/* First call: the request line and headers are in. Only what must be refused before the body is
 * read is answered here (MHD then closes the connection): headers too large, and a POST body of the
 * wrong type or too large. Everything else waits for the final call, which keeps the connection
 * alive. */
static enum MHD_Result check_headers(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn,
                                     const char *url) {
    size_t header_bytes = strlen(url) + strlen(r->method_name) + 12;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &header_bytes);
    if (header_bytes > srv->cfg.max_header)
        return send_error(r, conn, FLOWD_E_HEADER_TOO_LARGE,
                          "the request line and headers are %zu bytes, over the limit of %zu "
                          "(--max-header)",
                          header_bytes, srv->cfg.max_header);
    const char *id;
    size_t id_len;
    r->route = route_of(url, &id, &id_len);
    if (r->route == FLOWD_R_OTHER || !method_allowed(r->route, r->method) ||
        (r->method != M_POST && r->method != M_PUT))
        return MHD_YES; /* answered by dispatch, once the request is in */
    enum MHD_Result ret = MHD_YES;
    if (authorize(srv, r, conn, &ret) < 0)
        return ret; /* before the body: nobody without a key gets to send one */
    if (r->route == FLOWD_R_JOBS && atomic_load(&srv->stopping))
        return send_error(r, conn, FLOWD_E_SHUTTING_DOWN, NULL);
    const char *type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (r->route != FLOWD_R_CANCEL && !is_json_type(type))
        return send_error(r, conn, FLOWD_E_UNSUPPORTED_MEDIA_TYPE,
                          "the body must be JSON sent as Content-Type: application/json, not %s%.64s%s",
                          type ? "'" : "", type ? type : "none", type ? "'" : "");
    const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *flag;
    size_t cap = body_cap(srv, r, &flag);
    if (length != NULL) {
        unsigned long long n = strtoull(length, NULL, 10);
        if (n > cap)
            return send_error(r, conn, FLOWD_E_PAYLOAD_TOO_LARGE,
                              "the body is %llu bytes, over the limit of %zu (%s)", n, cap, flag);
    }
    r->phase = PH_BODY;
    return MHD_YES;
}

static int has_body(struct MHD_Connection *conn) {
    const char *length =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *coding =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    return (length != NULL && strspn(length, "0") != strlen(length)) || coding != NULL;
}

static enum MHD_Result on_headers(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn,
                                  const char *url) {
    flowd_conn_t *c = flowd_conn_of(conn);
    flowd_conn_request(c);
    enum MHD_Result ret = check_headers(srv, r, conn, url);
    if (r->phase == PH_DONE && has_body(conn))
        flowd_conn_linger(c); /* answered with the body still coming: see conns.h */
    return ret;
}

/* The whole request is in (a POST's body too): the route answers, or hands over to the loop. */
static enum MHD_Result dispatch(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn,
                                const char *url) {
    const char *id;
    size_t id_len;
    r->route = route_of(url, &id, &id_len);
    if (r->route == FLOWD_R_OTHER)
        return send_error(r, conn, FLOWD_E_NOT_FOUND,
                          "no route %.16s %.200s (the API is under /v1/jobs and /v1/flows; see "
                          "api/openapi.yaml)",
                          r->method_name, url);
    if (!method_allowed(r->route, r->method))
        return send_error(r, conn, FLOWD_E_METHOD_NOT_ALLOWED, "%s %s: method not allowed here",
                          r->method_name, flowd_route_template(r->route));
    enum MHD_Result ret = MHD_YES;
    if (authorize(srv, r, conn, &ret) < 0)
        return ret;
    if (r->method == M_POST || r->method == M_PUT || r->method == M_DELETE) {
        static const char *const none[] = {NULL};
        const char *flag;
        size_t cap = body_cap(srv, r, &flag);
        if (r->too_big)
            return send_error(r, conn, FLOWD_E_PAYLOAD_TOO_LARGE,
                              "the body is over the limit of %zu bytes (%s)", cap, flag);
        if (check_query(r, conn, none, &ret) < 0)
            return ret;
    }
    switch (r->route) {
    case FLOWD_R_JOBS:
        return r->method == M_POST ? post_job(srv, r, conn) : list_jobs(srv, r, conn);
    case FLOWD_R_JOB:
        return get_job(srv, r, conn, id, id_len);
    case FLOWD_R_SHARED:
        return get_shared(srv, r, conn, id, id_len);
    case FLOWD_R_HISTORY:
        return get_history(srv, r, conn, id, id_len);
    case FLOWD_R_EVENTS:
        return get_events(srv, r, conn, id, id_len);
    case FLOWD_R_INPUT:
        return post_input(srv, r, conn, id, id_len);
    case FLOWD_R_CANCEL:
        return post_cancel(srv, r, conn, id, id_len);
    case FLOWD_R_FLOWS:
        return list_flows(srv, r, conn);
    case FLOWD_R_FLOW:
        if (r->method == M_PUT)
            return put_flow(srv, r, conn, id, id_len);
        if (r->method == M_DELETE)
            return delete_flow(srv, r, conn, id, id_len);
        return get_flow(srv, r, conn, id, id_len);
    case FLOWD_R_HEALTHZ:
        return healthz(srv, r, conn);
    case FLOWD_R_METRICS:
        return get_metrics(srv, r, conn);
    default:
        return send_error(r, conn, FLOWD_E_NOT_FOUND, "no route %.200s", url);
    }
}

/* A piece of a body: kept for a POST route, dropped otherwise. A body past the cap that had no
 * Content-Length (chunked) could not be refused before it came: it is read and dropped, within the
 * lingering close's bounds (conns.h), and refused once it has ended. MHD_NO closes the
 * connection. */
static enum MHD_Result on_data(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn,
                               const char *data, size_t size) {
    const char *flag;
    size_t max = body_cap(srv, r, &flag);
    r->seen += size;
    if (r->phase != PH_BODY || r->too_big || r->len + size > max) {
        if (r->phase == PH_BODY && !r->too_big) {
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

/* MHD runs a suspended request again: its loop call, long poll or store answered. */
static enum MHD_Result on_resumed(flowd_server_t *srv, req_t *r, struct MHD_Connection *conn) {
    if (!atomic_load_explicit(&r->reply.ready, memory_order_acquire))
        return MHD_YES; /* not for us yet (MHD may call again after a resume of its own) */
    atomic_fetch_sub(&srv->http->suspended, 1);
    switch (r->phase) {
    case PH_WAIT:
        return send_job(r, conn, 200, r->job);
    case PH_RWAIT:
        return remote_poll_again(srv, r, conn);
    case PH_STORE: {
        json_t *shared = r->start_shared, *params = r->start_params;
        r->start_shared = r->start_params = NULL;
        if (r->reply.answer.status != 202) {
            /* never stored, so never accepted: the record ends failed rather than wait forever */
            unsigned status = r->reply.answer.status;
            r->job->store_failed = 1;
            flowd_bridge_start(srv->bridge, r->job, shared, params);
            if (status == 409) /* a shared store: another instance took the key at the same moment */
                return send_error(r, conn, FLOWD_E_IDEMPOTENCY_CONFLICT,
                                  "Idempotency-Key was used at the same moment on another instance; send it again");
            return send_error(r, conn, FLOWD_E_INTERNAL, "the job could not be stored");
        }
        size_t len = 0;
        char *text = flowd_render_new_job(r->job, &len);
        flowd_bridge_start(srv->bridge, r->job, shared, params);
        return send_json(r, conn, 202, text, len);
    }
    default:
        return send_answer(r, conn, &r->reply.answer);
    }
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
    req_t *r = *con_cls;
    (void)version;
    if (r == NULL) {
        r = malloc(sizeof *r);
        if (r == NULL)
            return MHD_NO;
        memset(r, 0, offsetof(req_t, inline_body));
        r->t0_ns = uv_hrtime();
        r->method = (uint8_t)method_of(method);
        r->route = FLOWD_R_OTHER;
        r->body = r->inline_body;
        r->cap = INLINE_BODY;
        copy_cut(r->method_name, sizeof r->method_name, method);
        copy_cut(r->path, sizeof r->path, url);
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
    case PH_NEW:
    case PH_BODY:
        return dispatch(srv, r, conn, url);
    case PH_CALL:
    case PH_WAIT:
    case PH_RWAIT:
    case PH_STORE:
        return on_resumed(srv, r, conn);
    default:
        return MHD_YES;
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    flowd_server_t *srv = cls;
    req_t *r = *con_cls;
    (void)toe;
    flowd_conn_answered(flowd_conn_of(conn)); /* the next request's headers are due */
    if (r == NULL)
        return;
    *con_cls = NULL;
    uint64_t us = (uv_hrtime() - r->t0_ns) / 1000u;
    flowd_metrics_request(srv->metrics, r->route, r->status, us);
    flowd_log_request(r->method_name, r->path, r->status, us, r->caller.name);
    if (r->remote_watching) /* ended while a long poll waited: the store must not wake it */
        srv->store->cluster->unwatch(srv->store, r);
    free(r->reply.answer.body); /* a reply never sent: the connection ended first */
    json_decref(r->start_shared);
    json_decref(r->start_params);
    flowd_job_unref(r->job);
    if (r->body != r->inline_body)
        free(r->body);
    free(r);
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
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
        int hi = p[0] == '%' ? hex_digit(p[1]) : -1;
        int lo = hi >= 0 ? hex_digit(p[2]) : -1;
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

int flowd_http_start(flowd_server_t *srv, flowd_http_t **out, unsigned *port) {
    const flowd_config_t *cfg = &srv->cfg;
    flowd_http_t *h = calloc(1, sizeof *h);
    if (h == NULL)
        return FLOW_ENOMEM;
    h->srv = srv;
    h->listen_fd = MHD_INVALID_SOCKET;
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
        flags, (uint16_t)cfg->port, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        srv, MHD_OPTION_SOCK_ADDR, addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(cfg->idle_timeout_ms / 1000), MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_conns,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_conns_per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, memory, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, flowd_conns_notify, h->conns,
        MHD_OPTION_END);
    if (h->daemon == NULL) {
        flowd_log(FLOW_LOG_ERROR, "cannot listen on %s port %u (is the port taken?)", cfg->bind, cfg->port);
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
    if (h->listen_fd != MHD_INVALID_SOCKET)
        return;
    h->listen_fd = MHD_quiesce_daemon(h->daemon);
    /* The socket is ours now but may not be closed before MHD stops. Without a shutdown, new
     * clients would wait in its backlog for the whole grace period; with it they are refused. */
    if (h->listen_fd != MHD_INVALID_SOCKET)
        shutdown(h->listen_fd, SHUT_RDWR);
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
    if (h->listen_fd != MHD_INVALID_SOCKET)
        close(h->listen_fd); /* microhttpd.h: ours after quiesce, closed only after the stop */
    pthread_mutex_destroy(&h->flows_lock);
    free(h);
}
