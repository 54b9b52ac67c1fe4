/* apierr.h: the error codes of the API (api/openapi.yaml, the Error schema's code), each with its
 * HTTP status and a default message, in one table as lib's FLOW_ERRNO_MAP is: an answer names
 * its error by the enum, and the status and the code's text follow from it. A new code is a row
 * here and in the Error schema's enum (tests/unit/test_server_apierr.c holds the two together). */
#ifndef FLOWD_APIERR_H
#define FLOWD_APIERR_H

/* X(symbol, status, code, default message) */
#define FLOWD_APIERR_MAP(X)                                                                        \
    X(BAD_REQUEST, 400, "bad_request", "the request is not one this route takes")                 \
    X(INVALID_JSON, 400, "invalid_json", "the body is not JSON")                                   \
    X(UNAUTHORIZED, 401, "unauthorized", "this needs a key: send Authorization: Bearer <key>")     \
    X(FORBIDDEN, 403, "forbidden", "the key's role may not do this")                               \
    X(NOT_FOUND, 404, "not_found", "not found")                                                    \
    X(UNKNOWN_FLOW, 404, "unknown_flow", "no such flow")                                           \
    X(UNKNOWN_STEP, 404, "unknown_step", "the job has not finished that step")                     \
    X(METHOD_NOT_ALLOWED, 405, "method_not_allowed", "method not allowed here")                    \
    X(IDEMPOTENCY_CONFLICT, 409, "idempotency_conflict", "the key was used with another body") \
    X(NOT_WAITING, 409, "not_waiting", "the job is not waiting for input")                         \
    X(ALREADY_ENDED, 409, "already_ended", "the job has already ended")                            \
    X(NOT_REDRIVABLE, 409, "not_redrivable", "only a failed or canceled job can be redriven")       \
    X(NOT_KEPT, 409, "not_kept", "the shared store the job would start again from was not kept")  \
    X(NODE_GONE, 409, "node_gone", "the node the job stopped at is no longer in its flow")         \
    X(NOT_FORKABLE, 409, "not_forkable", "no root-level node follows that step")                   \
    X(TOO_MANY_FLOWS, 409, "too_many_flows", "too many flows (--max-flows)") \
    X(TOO_MANY_SCHEDULES, 409, "too_many_schedules", "too many schedules (--max-schedules)")       \
    X(STEP_NOT_KEPT, 410, "step_not_kept",                                                         \
      "the shared store as of that step is no longer kept (--snapshot-steps, --snapshot-bytes)")   \
    X(PAYLOAD_TOO_LARGE, 413, "payload_too_large", "the body is too large")                        \
    X(UNSUPPORTED_MEDIA_TYPE, 415, "unsupported_media_type", "the body must be application/json") \
    X(INVALID_INPUT, 422, "invalid_input", "the node refused the answer")                          \
    X(INVALID_FLOW, 422, "invalid_flow", "the flow document has problems")                         \
    X(INVALID_SCHEDULE, 422, "invalid_schedule", "the schedule's cron or time zone is not one flowd runs") \
    X(INVALID_PATCH, 422, "invalid_patch", "the JSON Patch cannot be applied to the shared store")  \
    X(INVALID_CALLBACK, 422, "invalid_callback", "the callback cannot be delivered")          \
    X(ANSWER_TOO_LARGE, 422, "answer_too_large", "the answer is over --max-answer")                \
    X(GRAPH_TOO_LARGE, 422, "graph_too_large", "the graph has more nodes and edges than --max-graph") \
    X(TOO_MANY_JOBS, 429, "too_many_jobs", "too many jobs (--max-jobs); try again later")          \
    X(HEADER_TOO_LARGE, 431, "header_too_large", "the request line and headers are too large")     \
    X(INTERNAL, 500, "internal", "internal error")                                                 \
    X(UNAVAILABLE, 503, "unavailable", "not available now; try again")                             \
    X(SHUTTING_DOWN, 503, "shutting_down", "the server is shutting down")

typedef enum flowd_apierr {
#define FLOWD__APIERR_ENUM(sym, status, code, message) FLOWD_E_##sym,
    FLOWD_APIERR_MAP(FLOWD__APIERR_ENUM)
#undef FLOWD__APIERR_ENUM
    FLOWD_APIERRS
} flowd_apierr_t;

/* The HTTP status, the code's text and the default message of err (static strings; any thread). An
 * err outside the table is taken as FLOWD_E_INTERNAL. */
unsigned flowd_apierr_status(flowd_apierr_t err);
const char *flowd_apierr_code(flowd_apierr_t err);
const char *flowd_apierr_message(flowd_apierr_t err);

#endif
