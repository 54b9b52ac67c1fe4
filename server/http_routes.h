/* http_routes.h: every route of the API in one table. http.c routes a request by it, answers 405
 * with Allow from it, checks query parameters, roles and bodies by it; metrics.c labels requests by
 * its paths. A new route is a row here and its handler in http_<resource>.c (plus api/openapi.yaml
 * and a test); the handler's prototype follows from the row (http_int.h). */
#ifndef FLOWD_HTTP_ROUTES_H
#define FLOWD_HTTP_ROUTES_H

#include <stddef.h>

/* The paths: X(symbol, pattern). In a pattern, {word} matches one segment of a path (not empty, no
 * '/') and {word...} the rest of it (not empty); what they match are the route's arguments, in
 * order (at most FLOWD_ROUTE_ARGS). The pattern is also the path's label in the metrics. The first
 * pattern that matches wins: JOB_COUNTS comes before JOB, whose {id} would match "counts" (no job
 * has that id: ids are 32 hex digits). */
#define FLOWD_PATH_MAP(X)                                                                          \
    X(JOBS, "/v1/jobs")                                                                            \
    X(JOB_COUNTS, "/v1/jobs/counts")                                                               \
    X(JOB, "/v1/jobs/{id}")                                                                        \
    X(SHARED, "/v1/jobs/{id}/shared")                                                              \
    X(HISTORY, "/v1/jobs/{id}/history")                                                            \
    X(EVENTS, "/v1/jobs/{id}/events")                                                              \
    X(INPUT, "/v1/jobs/{id}/input")                                                                \
    X(CANCEL, "/v1/jobs/{id}/cancel")                                                              \
    X(REDRIVE, "/v1/jobs/{id}/redrive")                                                            \
    X(FORK, "/v1/jobs/{id}/fork")                                                                  \
    X(DELIVERIES, "/v1/jobs/{id}/deliveries")                                                      \
    X(JOB_GRAPH, "/v1/jobs/{id}/graph.svg")                                                        \
    X(FLOWS, "/v1/flows")                                                                          \
    X(FLOW, "/v1/flows/{name}")                                                                    \
    X(FLOW_GRAPH, "/v1/flows/{name}/graph.svg")                                                    \
    X(SCHEDULES, "/v1/schedules")                                                                  \
    X(SCHEDULE, "/v1/schedules/{name}")                                                            \
    X(SCHEDULE_PAUSE, "/v1/schedules/{name}/pause")                                                \
    X(SCHEDULE_RESUME, "/v1/schedules/{name}/resume")                                              \
    X(KEY, "/v1/key")                                                                              \
    X(HEALTHZ, "/healthz")                                                                         \
    X(METRICS, "/metrics")                                                                         \
    X(ROOT, "/")                                                                                   \
    X(UI, "/ui")                                                                                   \
    X(UI_INDEX, "/ui/")                                                                            \
    X(UI_ASSET, "/ui/{file}")

/* The routes: X(path, method, handler, query parameters, role, body). HEAD is answered as GET;
 * another method of a path that has no row for it is 405 (before any key is looked at).
 *   handler  flowd__http_<handler> (http_int.h) answers, or suspends the request.
 *   query    the parameters it takes, ", " between them ("" for none); another is 400, so that a
 *            typo is not ignored.
 *   role     what the caller's key needs (auth.h; a role may do what the ones below it may);
 *            api/openapi.yaml's security says the same. METRICS needs none with --metrics-open.
 *            The dashboard's files (ROOT, UI*: http_ui.c) need none: they hold no data, and the
 *            page asks for a key before it calls the API.
 *   body     NONE: none is read (one that is sent is dropped); ANY: read up to --max-body and
 *            ignored; JSON: application/json up to --max-body; JOB: the same, and refused (503)
 *            before it is read while shutting down; FLOW: a flow document, application/json up to
 *            --max-flow-size (when that is lower than --max-body). */
#define FLOWD_ROUTE_MAP(X)                                                                         \
    X(JOBS, GET, jobs_list, "status, flow, tenant, limit, cursor", READ, NONE)                     \
    X(JOBS, POST, jobs_post, "", SUBMIT, JOB)                                                      \
    X(JOB_COUNTS, GET, jobs_counts, "flow, tenant", READ, NONE)                                    \
    X(JOB, GET, job_get, "wait", READ, NONE)                                                       \
    X(SHARED, GET, job_shared, "pointer, step", READ, NONE)                                        \
    X(HISTORY, GET, job_history, "", READ, NONE)                                                   \
    X(EVENTS, GET, job_events, "", READ, NONE)                                                     \
    X(INPUT, POST, job_input, "", SUBMIT, JSON)                                                    \
    X(CANCEL, POST, job_cancel, "", SUBMIT, ANY)                                                   \
    X(REDRIVE, POST, job_redrive, "", SUBMIT, ANY)                                                 \
    X(FORK, POST, job_fork, "", SUBMIT, JOB)                                                       \
    X(DELIVERIES, GET, job_deliveries, "", READ, NONE)                                             \
    X(JOB_GRAPH, GET, job_graph, "", READ, NONE)                                                   \
    X(FLOWS, GET, flows_list, "limit, cursor", READ, NONE)                                         \
    X(FLOW, GET, flow_get, "", READ, NONE)                                                         \
    X(FLOW, PUT, flow_put, "", ADMIN, FLOW)                                                        \
    X(FLOW, DELETE, flow_delete, "", ADMIN, NONE)                                                  \
    X(FLOW_GRAPH, GET, flow_graph, "", READ, NONE)                                                 \
    X(SCHEDULES, GET, schedules_list, "limit, cursor", ADMIN, NONE)                                \
    X(SCHEDULE, GET, schedule_get, "", ADMIN, NONE)                                                \
    X(SCHEDULE, PUT, schedule_put, "", ADMIN, JSON)                                                \
    X(SCHEDULE, DELETE, schedule_delete, "", ADMIN, NONE)                                          \
    X(SCHEDULE_PAUSE, POST, schedule_pause, "", ADMIN, ANY)                                        \
    X(SCHEDULE_RESUME, POST, schedule_resume, "", ADMIN, ANY)                                      \
    X(KEY, GET, key_get, "", READ, NONE)                                                           \
    X(HEALTHZ, GET, healthz, "", NONE, NONE)                                                       \
    X(METRICS, GET, metrics, "", ADMIN, NONE)                                                      \
    X(ROOT, GET, ui_redirect, "", NONE, NONE)                                                      \
    X(UI, GET, ui_redirect, "", NONE, NONE)                                                        \
    X(UI_INDEX, GET, ui_asset, "", NONE, NONE)                                                     \
    X(UI_ASSET, GET, ui_asset, "", NONE, NONE)

typedef enum flowd_path {
#define FLOWD__PATH_ENUM(sym, pattern) FLOWD_P_##sym,
    FLOWD_PATH_MAP(FLOWD__PATH_ENUM)
#undef FLOWD__PATH_ENUM
    FLOWD_P_OTHER,    /* no path of the API (404); labelled "other" */
    FLOWD_P_JOB_WAIT, /* a GET /v1/jobs/{id} that held as a long poll: labelled
                       * "/v1/jobs/{id}?wait", so that its seconds stay out of the route's latency */
    FLOWD_PATHS
} flowd_path_t;

#define FLOWD_ROUTE_ARGS 4

/* What a path's {word}s matched, pointing into the path (borrowed from it). */
typedef struct flowd_route_args {
    size_t n;
    const char *s[FLOWD_ROUTE_ARGS];
    size_t len[FLOWD_ROUTE_ARGS];
} flowd_route_args_t;

/* The pattern of path, which is also its metrics label; "other" for FLOWD_P_OTHER (static). */
const char *flowd_path_pattern(flowd_path_t path);
/* The first path of FLOWD_PATH_MAP that url (percent-decoded already, without the query) matches,
 * or FLOWD_P_OTHER (args->n 0); args gets what its {word}s matched. */
flowd_path_t flowd_path_match(const char *url, flowd_route_args_t *args);
/* 1 when url matches pattern (args gets what its {word}s matched), else 0. */
int flowd_pattern_match(const char *pattern, const char *url, flowd_route_args_t *args);

#endif
