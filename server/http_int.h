/* http_int.h: what http.c (libmicrohttpd's side: the daemon, reading requests, the checks every
 * request gets, dispatch through the route table) shares with the handlers of the routes, by
 * resource: http_jobs.c, http_flows.c, http_schedules.c, http_service.c and http_ui.c (the
 * dashboard). Private to those six files.
 *
 * A handler runs on an MHD thread once the whole request is in and has passed the checks of its
 * route (http_routes.h): it answers with one of the flowd__http_send* functions, or suspends the
 * connection (flowd__http_suspend) and is resumed when its loop call, long poll or store answer is
 * ready. It never touches the engine (bridge.h carries what it needs to the loop). */
#ifndef FLOWD_HTTP_INT_H
#define FLOWD_HTTP_INT_H

#include <microhttpd.h>
#include <pthread.h>

#include "apierr.h"
#include "bridge.h"
#include "conns.h"
#include "graph.h"
#include "http.h"
#include "http_routes.h"
#include "render.h"
#include "snapshot.h"

#define FLOWD_HTTP_INLINE_BODY 512 /* bodies this small need no allocation of their own */
#define FLOWD_HTTP_LOG_PATH 200    /* the most of a path the access log shows */

struct flowd_http {
    flowd_server_t *srv;
    struct MHD_Daemon *daemon;
    flowd_conns_t *conns; /* header deadlines and lingering closes */
    atomic_int closed_door;     /* flowd_http_quiesce: new connections are closed as they come */
    atomic_size_t suspended;
    atomic_int refuse;          /* flowd_http_refuse_calls */
    pthread_mutex_t flows_lock; /* PUT /v1/flows/{name}: one at a time (--max-flows) */
};

typedef enum flowd_method {
    FLOWD_M_GET = 0,
    FLOWD_M_HEAD,
    FLOWD_M_POST,
    FLOWD_M_PUT,
    FLOWD_M_DELETE,
    FLOWD_M_OTHER
} flowd_method_t;

/* What a route does with a body: http_routes.h says. */
typedef enum flowd_body {
    FLOWD_B_NONE = 0,
    FLOWD_B_ANY,
    FLOWD_B_JSON,
    FLOWD_B_JOB,
    FLOWD_B_FLOW
} flowd_body_t;

typedef struct flowd_req flowd_req_t;

/* Answers r (or suspends it again); MHD_NO closes the connection. */
typedef enum MHD_Result (*flowd_handler_fn)(flowd_server_t *srv, flowd_req_t *r,
                                            struct MHD_Connection *conn);

/* A row of FLOWD_ROUTE_MAP. */
typedef struct flowd_route {
    flowd_path_t path;
    flowd_method_t method;
    flowd_handler_fn handler;
    const char *query; /* the query parameters it takes, ", " between them */
    flowd_role_t role;
    flowd_body_t body;
} flowd_route_t;

enum flowd_phase {
    FLOWD_PH_NEW = 0,
    FLOWD_PH_BODY,      /* reading the body of a POST or PUT */
    FLOWD_PH_SUSPENDED, /* a loop call, a long poll or the store: r->resume answers once ready */
    FLOWD_PH_DONE       /* answered */
};

/* An X-Request-Id a client sends is kept when it is 1 to this many visible ASCII characters;
 * otherwise (or without one) flowd makes one, as it makes job ids. */
#define FLOWD_REQUEST_ID_MAX 128

/* One request; MHD keeps it as the handler's con_cls. The glue (http.c) owns it and frees what it
 * points to when the request ends: body, job, reply.answer.body, start_shared, start_params,
 * snap. */
struct flowd_req {
    uint64_t t0_ns;
    flowd_path_t path;          /* for the metrics: FLOWD_P_OTHER until routed */
    const flowd_route_t *route; /* NULL until routed, or when the path has no row for the method */
    flowd_route_args_t args;    /* the path's {word}s, pointing into the URL (dispatch) */
    uint8_t method;             /* flowd_method_t */
    uint8_t phase;              /* enum flowd_phase */
    uint8_t too_big;
    uint8_t location;        /* 200 and 202 carry Location: the job's (POST /v1/jobs) */
    uint8_t remote_watching; /* a long poll of a job elsewhere: a watch may still wake us */
    uint8_t counted;         /* suspended and counted in flowd_http_suspended(), not yet uncounted */
    uint8_t has_etag;        /* a Job answer: ETag "<etag>", its version */
    uint8_t by_version;      /* a long poll that waits for a new version, not a new status */
    uint64_t etag;
    unsigned status;         /* what was answered, for the log and the metrics */
    char method_name[12];
    char request_id[FLOWD_REQUEST_ID_MAX + 1]; /* X-Request-Id: the client's, or one made here */
    char traceparent[56];       /* a valid W3C traceparent the request sent, or "" */
    char path_text[FLOWD_HTTP_LOG_PATH + 1];
    char *body; /* inline, or malloc'd when bigger */
    size_t len, cap;
    size_t seen;         /* body bytes received, kept or not */
    flowd_job_t *job;    /* the route's job, a reference */
    flowd_reply_t reply; /* loop calls and the store */
    struct MHD_Connection *conn;
    flowd_handler_fn resume; /* a suspended request, once ready: NULL sends reply.answer */
    /* when it ends, answered or not: also when its client left while it was suspended, so that
     * what the request started is not left half done (a stored job is started) */
    void (*ended)(flowd_server_t *srv, flowd_req_t *r);
    json_t *start_shared; /* POST /v1/jobs waiting for the store: what the job starts with */
    json_t *start_params;
    /* a job that runs on another instance (a shared store) */
    char remote_id[FLOWD_ID_LEN + 1]; /* "" when none; for Location and long polls */
    flow_status_t remote_seen;        /* its long poll: the status it saw */
    uint64_t remote_until_ms;         /* its long poll: when it answers anyway */
    flowd_caller_t caller;            /* who sent it: role, tenant, the key's name (auth.h) */
    flowd_snapshot_t snap;            /* the route's job as read (http_jobs.c: snapshot_read) */
    flowd_handler_fn then;            /* answers with snap once the loop has read it */
    uint64_t wait_ms;                 /* GET /v1/jobs/{id}?wait= */
    uint64_t step;                    /* GET /v1/jobs/{id}/shared?step= */
    char inline_body[FLOWD_HTTP_INLINE_BODY];
};

/* 404 unknown_flow for the flow name, saying which flows this server runs (http_flows.c). */
enum MHD_Result flowd__http_unknown_flow(flowd_server_t *srv, flowd_req_t *r,
                                         struct MHD_Connection *conn, const char *name);

/* A graph.svg answer (http_flows.c): def drawn with marks (graph.h; NULL: the flow alone) as
 * image/svg+xml, with version as its ETag when has_version, or 304 to a client that has that
 * version; 422 graph_too_large past --max-graph, naming it. */
enum MHD_Result flowd__http_send_graph(flowd_server_t *srv, flowd_req_t *r,
                                       struct MHD_Connection *conn, const flow_def_t *def,
                                       const flowd_graph_marks_t *marks, int has_version,
                                       uint64_t version);

/* The headers every answer carries (X-Request-Id), for a response a handler queues itself. */
void flowd__http_common_headers(const flowd_req_t *r, struct MHD_Response *res);

/* The handlers, one a row of FLOWD_ROUTE_MAP. */
#define FLOWD__HANDLER_DECL(path, method, handler, query, role, body)                              \
    enum MHD_Result flowd__http_##handler(flowd_server_t *srv, flowd_req_t *r,                     \
                                          struct MHD_Connection *conn);
FLOWD_ROUTE_MAP(FLOWD__HANDLER_DECL)
#undef FLOWD__HANDLER_DECL

/* ---- answering (http.c) ---- */

/* Queues body (malloc'd, taken over; NULL: out of memory, answered 500 without a body). */
enum MHD_Result flowd__http_send(flowd_req_t *r, struct MHD_Connection *conn, unsigned status,
                                 char *body, size_t len, const char *type);
/* The same as application/json. */
enum MHD_Result flowd__http_send_json(flowd_req_t *r, struct MHD_Connection *conn, unsigned status,
                                      char *body, size_t len);
/* a's status and body (taken over: a->body is NULL after). */
enum MHD_Result flowd__http_send_answer(flowd_req_t *r, struct MHD_Connection *conn,
                                        flowd_answer_t *a);
/* err's answer (apierr.h); fmt NULL: its default message. */
enum MHD_Result flowd__http_send_error(flowd_req_t *r, struct MHD_Connection *conn,
                                       flowd_apierr_t err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Suspends conn until r->reply.ready is set and conn is resumed; then resume (NULL: send
 * r->reply.answer) answers, on an MHD thread. Counted in flowd_http_suspended(). With refusable, a
 * server that refuses calls (shutting down) does not suspend it: -1, and the caller answers now. */
int flowd__http_suspend(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                        int refusable, flowd_handler_fn resume);

/* ---- reading requests (http.c) ---- */

/* If-None-Match names version: the client has the answer as it is ("*", or a list of ETags, weak
 * or not, one of them "<version>"). */
int flowd__http_if_none_match(struct MHD_Connection *conn, uint64_t version);

/* A query parameter (borrowed from MHD), or NULL. */
const char *flowd__http_arg(struct MHD_Connection *conn, const char *name);
/* The body as a JSON object (a new reference) whose members are all among fields (NULL-ended;
 * takes says them in the message, "a, b and c"); otherwise answers 400 into *ret and returns
 * NULL. */
json_t *flowd__http_body_object(flowd_req_t *r, struct MHD_Connection *conn, const char *example,
                                const char *const *fields, const char *takes,
                                enum MHD_Result *ret);
/* "an object", "a string", ... for messages. */
const char *flowd__http_type_name(const json_t *v);
/* The limit of a list (1 to 1000, default 50): 0, or -1 after answering 400 into *ret. */
int flowd__http_list_limit(flowd_req_t *r, struct MHD_Connection *conn, uint64_t *limit,
                           enum MHD_Result *ret);
/* A list by name (flows, schedules): fn answers its page, given the limit (as
 * flowd__http_list_limit) and the cursor, the last name of the page before (NULL for the first
 * page; a name flows and schedules may have). A bad limit or cursor is answered 400 here. */
typedef enum MHD_Result (*flowd_page_fn)(flowd_server_t *srv, flowd_req_t *r,
                                         struct MHD_Connection *conn, uint64_t limit,
                                         const char *cursor);
enum MHD_Result flowd__http_with_page(flowd_server_t *srv, flowd_req_t *r,
                                      struct MHD_Connection *conn, flowd_page_fn fn);
/* A page of a list written into b (cap flowd_render_max_answer(); emptied): 200, or 422
 * answer_too_large naming what ("the page of flows") and ?limit=. */
enum MHD_Result flowd__http_send_page(flowd_req_t *r, struct MHD_Connection *conn, flow_buf_t *b,
                                      const char *what);
/* A route with a {name} (flows, schedules): fn answers, given the name (a NUL-ended copy, valid
 * during the call), when it is a name flows and schedules may have (flow/doc.h); otherwise 400
 * for a PUT (which would make one: the rule in words), else `missing` ("no <what> named ..."). */
typedef enum MHD_Result (*flowd_named_fn)(flowd_server_t *srv, flowd_req_t *r,
                                          struct MHD_Connection *conn, const char *name);
enum MHD_Result flowd__http_with_name(flowd_server_t *srv, flowd_req_t *r,
                                      struct MHD_Connection *conn, const char *what,
                                      flowd_apierr_t missing, flowd_named_fn fn);
/* 200 {"name": name, "deleted": true}: a DELETE of a flow or a schedule done. */
enum MHD_Result flowd__http_send_deleted(flowd_req_t *r, struct MHD_Connection *conn,
                                         const char *name);
/* 400 for a body member that is missing or of the wrong type, and drops body (a reference):
 * missing (the whole message) when not NULL; else "field '<field>' must be <want>, not <v>", v
 * quoted when it is a string and quote is 1 (at most 64 bytes of it), else its type ("a
 * string"). */
enum MHD_Result flowd__http_bad_field(flowd_req_t *r, struct MHD_Connection *conn, json_t *body,
                                      const char *missing, const char *field, const char *want,
                                      const json_t *v, int quote);
/* The tenant whose jobs the caller sees: its own, or NULL for every tenant (admin). */
const char *flowd__http_scope(const flowd_req_t *r);

#endif
