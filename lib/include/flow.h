/* flow.h: the public API of libflow, PocketFlow-style flows run as jobs on one libuv loop. The rest
 * of it is in lib/include/flow/: documents (doc.h, with problems.h, pointer.h and jsonpos.h), the
 * built-in node types (nodes.h, with limits.h), the HTTP client and its outbound policy (http.h,
 * netpolicy.h), a capped growable buffer (buf.h) and intrusive lists (queue.h). Everything else
 * in lib/ is private to the library.
 *
 * A flow *definition* (flow_def_t) is a graph of nodes built once and then shared, read-only, by any
 * number of concurrent *jobs* (flow_job_t) run by an *engine* (flow_engine_t) on one uv_loop_t.
 *
 * Threads: everything here runs on the engine's loop thread, except where a function says otherwise
 * (the error table, the logger, definitions being built, the registry, and exec of a node marked
 * threaded, which runs on libuv's thread pool).
 *
 * Errors: functions return 0 or a negative FLOW_E* code; flow_strerror() and flow_err_name() describe it.
 * When a function that takes a callback returns an error, the callback will never be called.
 *
 * Ownership of json_t, in jansson's words: "borrowed" means the caller keeps its reference and the
 * callee increfs if it keeps the value; "new reference" means the receiver must json_decref() it;
 * "stolen" means the callee takes over the caller's reference, on error too, like json_object_set_new().
 */
#ifndef FLOW_H
#define FLOW_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FLOW_VERSION_STRING "0.1.0"

/* The library is built with -fvisibility=hidden: what it exports is what the headers of
 * lib/include declare with FLOW_EXPORT, and nothing else of it can be linked against. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define FLOW_EXPORT __attribute__((visibility("default")))
#else
#define FLOW_EXPORT
#endif

/* ---- errors --------------------------------------------------------------------------------- */

/* XX(symbol, name, message): name is what the REST API shows as an error code. */
#define FLOW_ERRNO_MAP(XX)                                                                         \
    XX(NOMEM, "out_of_memory", "out of memory")                                                    \
    XX(INVAL, "invalid_argument", "invalid argument")                                              \
    XX(NOTFOUND, "not_found", "not found")                                                         \
    XX(EXIST, "already_exists", "already exists")                                                  \
    XX(STATE, "wrong_state", "not allowed in the current state")                                   \
    XX(BUSY, "busy", "resource busy")                                                              \
    XX(CANCELED, "canceled", "canceled")                                                           \
    XX(TIMEDOUT, "timed_out", "timed out")                                                         \
    XX(DEADLINE, "deadline_exceeded", "job deadline exceeded")                                     \
    XX(MAXSTEPS, "max_steps_exceeded", "job step limit reached")                                   \
    XX(FAILED, "node_failed", "node failed")                                                       \
    XX(TOOBIG, "too_big", "value too big")                                                         \
    XX(IO, "io_error", "input/output error")                                                       \
    XX(HTTP, "http_error", "HTTP request failed")                                                  \
    XX(LOAD, "invalid_flow", "invalid flow document")                                              \
    XX(SCRIPT, "script_error", "a Lua hook failed")                                                \
    XX(OUTBOUND, "outbound_refused", "outbound connection refused by the policy")

typedef enum flow_errno {
    FLOW_OK = 0,
#define FLOW__ERR_ENUM(sym, name, msg) FLOW_E##sym,
    FLOW__ERR_FIRST = -1000,
    FLOW_ERRNO_MAP(FLOW__ERR_ENUM)
#undef FLOW__ERR_ENUM
    FLOW__ERR_LAST
} flow_errno_t;

/* Static strings; "unknown_error" for a code outside the table. Any thread. */
FLOW_EXPORT const char *flow_err_name(int err);
FLOW_EXPORT const char *flow_strerror(int err);

/* An error with its text and the node it happened in. Strings are owned by whoever holds the struct. */
typedef struct flow_error {
    int code;        /* FLOW_E* */
    char *message;   /* NULL or a human-readable text */
    char *node;      /* NULL or the name of the node that failed */
} flow_error_t;

/* Frees message and node and zeroes the struct. */
FLOW_EXPORT void flow_error_clear(flow_error_t *err);

/* ---- process-wide settings (call before any other flow_ function, not thread-safe) ---------- */

typedef enum flow_log_level {
    FLOW_LOG_DEBUG = 0,
    FLOW_LOG_INFO = 1,
    FLOW_LOG_WARN = 2,
    FLOW_LOG_ERROR = 3
} flow_log_level_t;

/* msg is borrowed for the duration of the call. The default logger writes WARN and ERROR to stderr. */
typedef void (*flow_log_fn)(flow_log_level_t level, const char *msg, void *data);
FLOW_EXPORT void flow_set_logger(flow_log_fn fn, void *data); /* fn NULL restores the default */
FLOW_EXPORT void flow_log(flow_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Every allocation of libflow goes through these (uv_replace_allocator's contract: all four or none).
 * jansson has its own hook, json_set_alloc_funcs(). Returns FLOW_EINVAL when one is NULL. */
FLOW_EXPORT int flow_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                                   void *(*calloc_fn)(size_t, size_t), void (*free_fn)(void *));

/* ---- clocks (any thread) -------------------------------------------------------------------- */

/* The wall clock, microseconds since the Unix epoch: the times of jobs and their steps. */
FLOW_EXPORT uint64_t flow_wall_us(void);
/* The monotonic clock in milliseconds (uv_hrtime's, which times steps and sleeps): for deadlines
 * and timeouts, never for dates. */
FLOW_EXPORT uint64_t flow_mono_ms(void);
/* Loop thread of t: starts t, one shot, to call cb at the wall-clock time at_us (flow_wall_us's;
 * now or at once when it has passed), rounded up to the millisecond. libuv's timers follow the
 * monotonic clock, so a wait longer than max_ms fires after max_ms instead: cb looks at the wall
 * clock again (it may have been set) and starts t anew. uv_timer_start's result. */
FLOW_EXPORT int flow_timer_at_wall(uv_timer_t *t, uv_timer_cb cb, uint64_t at_us, uint64_t max_ms);

/* ---- flow definitions ----------------------------------------------------------------------- */

typedef struct flow_def flow_def_t;
typedef struct flow_node flow_node_t;
typedef struct flow_ctx flow_ctx_t;
typedef struct flow_job flow_job_t;
typedef struct flow_engine flow_engine_t;

typedef enum flow_kind {
    FLOW_NODE = 0,            /* prep -> exec -> post */
    FLOW_BATCH,               /* prep returns an array; exec runs once per item, in order */
    FLOW_PARALLEL_BATCH,      /* the same, items run concurrently (see flow_node_set_limit) */
    FLOW_FLOW,                /* prep -> run the sub-graph from its start node -> post */
    FLOW_BATCH_FLOW,          /* prep returns an array of param objects; the sub-graph runs once per set */
    FLOW_PARALLEL_BATCH_FLOW  /* the same, the runs concurrent */
} flow_kind_t;

/* What a node does. Every member may be NULL; the defaults are PocketFlow's:
 *   prep          -> prep_res NULL (JSON null)
 *   exec          -> exec_res NULL, completed at once
 *   exec_fallback -> the step fails with the last error
 *   post          -> action "default"; for the flow kinds, the last action of the sub-graph
 *
 * Return values of prep, post and exec_fallback: 0, or a negative FLOW_E* code (best built with
 * flow_error()), which fails the job. Only exec is retried.
 *
 * prep:  *prep_res receives a new reference (or NULL). For FLOW_BATCH and FLOW_PARALLEL_BATCH it must
 *        be an array of items; for the batch flow kinds an array of param objects.
 * exec:  prep_res is borrowed (for batch kinds: the item). Completes exactly once, now or later, with
 *        flow_done() or flow_fail() (or through flow_sleep()/flow_await_input()). For batch kinds it is
 *        called once per item. Not called for the flow kinds: their exec is running the sub-graph.
 * exec_fallback: after the last try failed. Return 0 with *exec_res set (new reference or NULL) to
 *        recover, or an error code to fail. err is borrowed.
 *        For FLOW_FLOW, an object returned by prep is a param set for the sub-graph, merged over the
 *        flow node's own params as a batch flow merges each of its sets (unlike PocketFlow, where a
 *        flow's prep_res only goes to its post; it still does).
 * post:  shared, prep_res and exec_res are borrowed (exec_res: for batch kinds the array of results in
 *        input order; for the flow kinds a JSON string, the sub-graph's last action, or NULL for batch
 *        flows). *action: NULL or "" means "default" (PocketFlow's `action or "default"`); any
 *        other string must stay valid until post returns and the next callback of this job is
 *        made; the engine copies it if it needs it for longer.
 * cancel: the exec in flight must stop (a node timeout fired, the job was canceled or failed): release
 *        what it holds and never complete. Any exec that completes later than it returns must have one,
 *        unless it waits only through flow_sleep()/flow_await_input(), which the engine cancels itself
 *        (cancel is called for those too, after the engine stopped its timer or wait).
 * input: validates an answer given to flow_job_input() while this exec waits in flow_await_input().
 *        Return 0 to accept it (value is borrowed; the exec completes with it), or an error code and
 *        a message through flow_error() to reject it; the exec keeps waiting.
 * free:  frees the node's data when its definition is freed.
 */
typedef struct flow_node_ops {
    int (*prep)(flow_ctx_t *ctx, json_t *shared, json_t **prep_res);
    void (*exec)(flow_ctx_t *ctx, json_t *prep_res);
    int (*exec_fallback)(flow_ctx_t *ctx, json_t *prep_res, const flow_error_t *err, json_t **exec_res);
    int (*post)(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res, const char **action);
    void (*cancel)(flow_ctx_t *ctx);
    int (*input)(flow_ctx_t *ctx, json_t *value);
    void (*free)(void *data);
} flow_node_ops_t;

/* A definition owns its nodes. It is reference-counted (atomically: refs may be taken and dropped on
 * any thread) and becomes read-only once sealed; jobs seal it and hold a reference while they run.
 * name is copied. *out receives the first reference. */
FLOW_EXPORT int flow_def_new(const char *name, flow_def_t **out);
FLOW_EXPORT flow_def_t *flow_def_ref(flow_def_t *def); /* returns def */
FLOW_EXPORT void flow_def_unref(flow_def_t *def); /* NULL is ignored; the last unref frees */

/* Checks the graph (a root is set, every flow kind has a start node, no flow contains itself) and
 * makes the definition read-only. Idempotent. On error, err (may be NULL) says what is wrong. */
FLOW_EXPORT int flow_def_seal(flow_def_t *def, flow_error_t *err);

/* Creates a node in def. name is copied and must be unique in def. ops is borrowed and must outlive
 * def (a static struct usually); ops NULL means all defaults. On success def owns data and gives it
 * to ops->free when freed; on error data stays the caller's. *out is borrowed from def. */
FLOW_EXPORT int flow_node_new(flow_def_t *def, const char *name, flow_kind_t kind,
                              const flow_node_ops_t *ops, void *data, flow_node_t **out);

/* Setters of an unsealed definition's nodes; FLOW_ESTATE once sealed. */
/* borrowed, copied shallowly; an object */
FLOW_EXPORT int flow_node_set_params(flow_node_t *node, json_t *params);
/* tries >= 1 */
FLOW_EXPORT int flow_node_set_retry(flow_node_t *node, unsigned max_retries, uint64_t wait_ms);
/* How the wait between tries grows (Step Functions' retriers): before try k+1 the node waits
 * wait_ms * multiplier^(k-1) (multiplier >= 1; 1, the default, keeps it constant), at most
 * max_wait_ms (0: no cap), and with FLOW_JITTER_FULL a uniformly random part of that, from 0 (AWS's
 * "full jitter", so that many jobs failing together do not retry together). An exec that learns
 * when to come back (an HTTP 429 or 503 with Retry-After) says so with flow_retry_after; the wait
 * is then at least that, capped by max_wait_ms or, without one, by FLOW_RETRY_AFTER_MAX_MS.
 * FLOW_EINVAL for a multiplier under 1 or over 1000, or an unknown jitter. */
typedef enum flow_jitter { FLOW_JITTER_NONE = 0, FLOW_JITTER_FULL = 1 } flow_jitter_t;
#define FLOW_RETRY_AFTER_MAX_MS 300000u
FLOW_EXPORT int flow_node_set_backoff(flow_node_t *node, double multiplier, uint64_t max_wait_ms,
                                      flow_jitter_t jitter);
/* per try; 0: none */
FLOW_EXPORT int flow_node_set_timeout(flow_node_t *node, uint64_t timeout_ms);
/* parallel kinds: at most this many at once; 0 (default): no limit */
FLOW_EXPORT int flow_node_set_limit(flow_node_t *node, unsigned limit);
FLOW_EXPORT int flow_node_set_threaded(flow_node_t *node, int threaded); /* see flow_ctx below */

/* Successor of from for action (NULL means "default"); both nodes must be in one definition. A second
 * successor for the same action replaces the first and logs a warning, as PocketFlow does. to NULL
 * says that the action ends the flow, on purpose: no warning when it does. */
FLOW_EXPORT int flow_node_next(flow_node_t *from, const char *action, flow_node_t *to);

/* The start node of a flow-kind node. */
FLOW_EXPORT int flow_node_set_start(flow_node_t *flow, flow_node_t *start);

/* Metadata kept with the definition (its source document, say): stolen; replaces what was there. */
FLOW_EXPORT int flow_def_set_meta(flow_def_t *def, json_t *meta);
FLOW_EXPORT json_t *flow_def_meta(const flow_def_t *def); /* borrowed; NULL when none */

/* The flow-kind node that jobs of this definition run. A job ends when it does: successors given to
 * it never run (the job logs a warning, as PocketFlow's Flow.run does). */
FLOW_EXPORT int flow_def_set_root(flow_def_t *def, flow_node_t *root);

/* Readers. Strings and nodes are borrowed from def and live as long as it. */
FLOW_EXPORT const char *flow_def_name(const flow_def_t *def);
FLOW_EXPORT flow_node_t *flow_def_root(const flow_def_t *def);
FLOW_EXPORT size_t flow_def_node_count(const flow_def_t *def);
FLOW_EXPORT flow_node_t *flow_def_node_at(const flow_def_t *def, size_t i); /* in creation order */
FLOW_EXPORT flow_node_t *flow_def_find(const flow_def_t *def, const char *name);
FLOW_EXPORT int flow_def_sealed(const flow_def_t *def);

FLOW_EXPORT const char *flow_node_name(const flow_node_t *node);
/* What the node is, for metrics and logs (static): a document node's type ("http", "llm", "map",
 * ...), else its kind ("node", "batch", "parallel_batch", "flow", "batch_flow",
 * "parallel_batch_flow"). */
FLOW_EXPORT const char *flow_node_type(const flow_node_t *node);
FLOW_EXPORT flow_kind_t flow_node_kind(const flow_node_t *node);
FLOW_EXPORT const char *flow_kind_name(flow_kind_t kind);
FLOW_EXPORT void *flow_node_data(const flow_node_t *node);
FLOW_EXPORT json_t *flow_node_params(const flow_node_t *node); /* borrowed, read-only */
FLOW_EXPORT unsigned flow_node_max_retries(const flow_node_t *node);
FLOW_EXPORT uint64_t flow_node_wait(const flow_node_t *node);
FLOW_EXPORT uint64_t flow_node_timeout(const flow_node_t *node);
FLOW_EXPORT unsigned flow_node_limit(const flow_node_t *node);
FLOW_EXPORT flow_node_t *flow_node_start(const flow_node_t *flow);
FLOW_EXPORT size_t flow_node_succ_count(const flow_node_t *node);
/* The i-th successor, in the order they were first added: its action and node (both borrowed). */
FLOW_EXPORT int flow_node_succ_at(const flow_node_t *node, size_t i, const char **action,
                                  flow_node_t **to);
/* NULL: none */
FLOW_EXPORT flow_node_t *flow_node_succ(const flow_node_t *node, const char *action);

/* A Mermaid "flowchart TD" text of the graph; new string, free with flow_free(). */
FLOW_EXPORT int flow_def_mermaid(const flow_def_t *def, char **out);

/* Frees memory that libflow returned to the caller. */
FLOW_EXPORT void flow_free(void *p);

/* ---- the registry: node types and flows by name --------------------------------------------- */

/* Thread-safe: it takes a lock of its own, so HTTP threads may look flows up while the loop runs. */
typedef struct flow_registry flow_registry_t;

/* A list of problems found when loading a flow document, each with its place (flow/problems.h). */
typedef struct flow_problems flow_problems_t;

/* The roots of the references ("$shared/...", "$params/...", "$item/...") a node's params may use
 * (flow_type_args_t.roots). */
#define FLOW_SCOPE_SHARED 1u
#define FLOW_SCOPE_PARAMS 2u
#define FLOW_SCOPE_ITEM 4u
#define FLOW_SCOPE_ALL (FLOW_SCOPE_SHARED | FLOW_SCOPE_PARAMS | FLOW_SCOPE_ITEM)

/* What a node type gets to make a node of a flow document (all borrowed for the call). */
typedef struct flow_type_args {
    const char *name;           /* the node's name */
    json_t *node;               /* the node's whole description in the document */
    json_t *params;             /* its "params" (an object, never NULL) */
    const char *where;          /* JSON Pointer of the node in the document, e.g. "/nodes/fetch" */
    unsigned roots;             /* which references the node may use (FLOW_SCOPE_*) */
    json_t *declared;           /* object: the params the flow declares, for "$params/..." checks */
    flow_problems_t *problems;  /* where to add every problem found, with its place */
    void *data;                 /* what was given to flow_registry_add_type */
} flow_type_args_t;

/* Makes what a node of this type runs: *ops (static, must outlive every definition) and *data (the
 * definition will own it and give it to ops->free). Returns 0, or FLOW_ELOAD after adding problems
 * (or another code, such as FLOW_ENOMEM). The caller creates the node with the kind it needs. */
typedef int (*flow_type_factory)(const flow_type_args_t *args, const flow_node_ops_t **ops, void **data);

FLOW_EXPORT int flow_registry_new(flow_registry_t **out);
FLOW_EXPORT void flow_registry_free(flow_registry_t *reg); /* drops its references to the flows */

/* Node types: name copied; FLOW_EEXIST when taken. free_data (may be NULL) is called with data when
 * the registry is freed; on error data stays the caller's. */
FLOW_EXPORT int flow_registry_add_type(flow_registry_t *reg, const char *name,
                                       flow_type_factory factory, void *data,
                                       void (*free_data)(void *));
FLOW_EXPORT int flow_registry_type(flow_registry_t *reg, const char *name,
                                   flow_type_factory *factory, void **data);

/* Flows, by the definition's name. put adds or replaces (taking a new reference; replaced ones keep
 * running in the jobs that hold them) and seals def. get returns a new reference, or NULL. */
FLOW_EXPORT int flow_registry_put_flow(flow_registry_t *reg, flow_def_t *def, flow_error_t *err);
FLOW_EXPORT flow_def_t *flow_registry_get_flow(flow_registry_t *reg, const char *name);
/* FLOW_ENOTFOUND */
FLOW_EXPORT int flow_registry_remove_flow(flow_registry_t *reg, const char *name);
/* A new reference to every flow, sorted by name, in *out (array freed with flow_free(), each def with
 * flow_def_unref()). */
FLOW_EXPORT int flow_registry_list_flows(flow_registry_t *reg, flow_def_t ***out, size_t *count);
FLOW_EXPORT size_t flow_registry_flow_count(flow_registry_t *reg);

/* ---- the engine ----------------------------------------------------------------------------- */

typedef struct flow_engine_opts {
    unsigned history_limit; /* history entries a job keeps (older ones only count); 0: 100 */
    unsigned step_budget;   /* steps a job runs before it lets other jobs run (or fewer: a turn also
                             * ends at the first step boundary past 1 ms); 0: 256 */
    /* Caps of the lines nodes log (flow_ctx_log), so that a job's history stays bounded: */
    unsigned log_lines;     /* lines a step keeps; 0: 20 */
    size_t log_line_bytes;  /* bytes of a line (longer ones are cut); 0: 1024 */
    size_t log_job_bytes;   /* bytes of lines a job keeps over all its steps; 0: 1 MiB */
} flow_engine_opts_t;

/* opts may be NULL. The engine holds one uv_idle_t on loop (unreferenced while there is no work). */
FLOW_EXPORT int flow_engine_new(uv_loop_t *loop, const flow_engine_opts_t *opts,
                                flow_engine_t **out);
/* Cancels every job still running (their on_done runs first) and closes the engine's handles; the
 * memory is freed by a close callback, so run the loop afterwards until it returns. */
FLOW_EXPORT void flow_engine_close(flow_engine_t *eng);
FLOW_EXPORT uv_loop_t *flow_engine_loop(const flow_engine_t *eng);
/* For a graceful stop: from now on no job starts another step (steps in flight finish, and their
 * posts run). There is no undo; close the engine afterwards. */
FLOW_EXPORT void flow_engine_drain(flow_engine_t *eng);
/* Holds (hold 1) or lets go (hold 0) of every job's next step: while held, no job starts a step
 * (steps in flight finish and their posts run, a job canceled or failed still ends); the steps
 * wait and start once it is let go. For a caller that writes each step's event and cannot keep up:
 * it holds the engine until it has caught up (flowd: --store-backlog). */
FLOW_EXPORT void flow_engine_hold(flow_engine_t *eng, int hold);
FLOW_EXPORT int flow_engine_held(const flow_engine_t *eng);
/* Steps in flight that are not merely waiting for input: drained when 0. Walks every job. */
FLOW_EXPORT size_t flow_engine_busy(const flow_engine_t *eng);
/* jobs started and not yet done */
FLOW_EXPORT size_t flow_engine_job_count(const flow_engine_t *eng);

/* ---- jobs ----------------------------------------------------------------------------------- */

typedef enum flow_status {
    FLOW_QUEUED = 0,
    FLOW_RUNNING,
    FLOW_WAITING,   /* an exec waits in flow_await_input() */
    FLOW_SUCCEEDED,
    FLOW_FAILED,
    FLOW_CANCELED
} flow_status_t;

FLOW_EXPORT const char *flow_status_name(flow_status_t status); /* "queued", "running", ... */
FLOW_EXPORT int flow_status_parse(const char *name, flow_status_t *out);
FLOW_EXPORT int flow_status_final(flow_status_t status); /* succeeded, failed or canceled */

/* One finished node run. Strings are borrowed from the job and live until the entry leaves the
 * history (flow_job_history_at) or the job ends. */
typedef struct flow_step {
    uint64_t seq;          /* 1 for the job's first finished step */
    const char *node;      /* node name */
    const char *action;    /* what post returned; NULL when the step failed */
    unsigned tries;        /* exec tries, summed over items for batches */
    uint64_t start_us;     /* wall clock, microseconds since the Unix epoch */
    uint64_t end_us;
    int error;             /* 0, or the FLOW_E* code the step failed with */
    const char *message;   /* NULL, or the error's text */
    unsigned depth;        /* 0 for nodes of the root flow, 1 inside a sub-flow, ... */
    const char *next;      /* the node that runs next at this depth; NULL when the (sub-)flow ends
                            * or the step failed. With depth 0, where a resumed job would start. */
    json_t *logs;          /* NULL, or an array of strings: the lines the step logged (flow_ctx_log),
                            * borrowed like the strings */
    const char *type;      /* flow_node_type() of the node (static) */
    json_t *retries;       /* NULL, or an array of the step's failed tries that another try followed
                            * (its first FLOW_STEP_RETRIES_KEPT): {"try": n from 1, "item": index
                            * (batches only), "error": {"code", "message"}, "wait_ms": the wait
                            * before the next try}; borrowed like logs */
} flow_step_t;

#define FLOW_STEP_RETRIES_KEPT 32

typedef enum flow_event_type {
    FLOW_EVENT_STATUS = 0, /* the job's status changed (to running, waiting, or a final status) */
    FLOW_EVENT_STEP,       /* a step finished; see step */
    FLOW_EVENT_RETRY       /* a try of exec failed and another will follow; see node, attempt, error */
} flow_event_type_t;

typedef struct flow_event {
    flow_event_type_t type;
    flow_status_t status;     /* the job's status after the event */
    const flow_step_t *step;  /* FLOW_EVENT_STEP: borrowed for the duration of the callback */
    const char *node;         /* FLOW_EVENT_RETRY: the node (borrowed) */
    unsigned depth;           /* FLOW_EVENT_RETRY: as in flow_step_t */
    size_t item;              /* FLOW_EVENT_RETRY: the batch item, or SIZE_MAX */
    unsigned attempt;         /* FLOW_EVENT_RETRY: the try that failed, from 0 */
    const flow_error_t *error;/* FLOW_EVENT_RETRY: why (borrowed) */
    uint64_t wait_ms;         /* FLOW_EVENT_RETRY: the wait before the next try (backoff, jitter,
                               * Retry-After) */
} flow_event_t;

/* Callbacks run on the loop thread, never from inside flow_job_start, flow_job_cancel or
 * flow_job_input, so they may call those functions. on_done runs once, after the last event; the job
 * is freed when it returns, so copy (or json_incref) what you need. */
typedef void (*flow_event_cb)(flow_job_t *job, const flow_event_t *ev, void *data);
typedef void (*flow_done_cb)(flow_job_t *job, void *data);

typedef struct flow_job_opts {
    const char *id;        /* copied; shown in logs, and given to nodes (e.g. for idempotency keys) */
    json_t *params;        /* borrowed; merged over the root flow's own params (these win) */
    uint64_t deadline_ms;  /* fail with FLOW_EDEADLINE this long after start; 0: none */
    uint64_t max_steps;    /* fail with FLOW_EMAXSTEPS instead of running more steps; 0: no limit */
    flow_event_cb on_event;
    flow_done_cb on_done;
    void *data;            /* given to the callbacks */
    /* Resuming a job that stopped (a restart after a crash): start at this node of the root flow
     * (copied; NULL: at its start), as if resume_tries tries of it had already failed, and count
     * steps on from resume_steps, and root-level visits (flow_ctx_visit) on from resume_visits: the
     * root-level steps that had started before it, which are the history's depth-0 entries. The
     * root flow's prep runs again. resume_started_us (wall clock, 0: none) is when the job first
     * started: flow_job_started_us() gives it, and deadline_ms counts from it (a deadline already
     * past fails the job before it runs a step). */
    const char *resume_node;
    unsigned resume_tries;
    uint64_t resume_steps;
    uint64_t resume_visits;
    uint64_t resume_started_us;
    /* A W3C trace context (a traceparent header's value, "00-<32 hex>-<16 hex>-<2 hex>"; copied;
     * NULL or not that form: none). The job's http and llm requests carry it on, each with a span
     * id of its own, so that the calls a job makes join the trace of the request that made it. */
    const char *traceparent;
} flow_job_opts_t;

/* Starts a job of def (which gets sealed and referenced) on shared (stolen, on error too; NULL means
 * an empty object; must be an object). The job starts queued and runs from the next loop iteration.
 * *out (may be NULL) is borrowed until on_done returns. FLOW_ENOTFOUND when resume_node names no
 * node of the root flow's graph. */
FLOW_EXPORT int flow_job_start(flow_engine_t *eng, flow_def_t *def, json_t *shared,
                               const flow_job_opts_t *opts, flow_job_t **out);
/* 1 when s is a W3C traceparent flowd takes: version 00, a trace id and a parent id of lowercase hex
 * that are not all zeros, and flags. */
FLOW_EXPORT int flow_traceparent_valid(const char *s);
/* The job's trace context (flow_job_opts_t's traceparent), or NULL: borrowed from the job. */
FLOW_EXPORT const char *flow_job_traceparent(const flow_job_t *job);

/* Stops the job: timers and in-flight execs are canceled (thread-pool work that already started is
 * abandoned: it finishes on its own and its result is dropped). The job ends with FLOW_CANCELED, and
 * on_done runs on a later loop iteration. FLOW_ESTATE when the job has already ended. */
FLOW_EXPORT int flow_job_cancel(flow_job_t *job);

/* Ends the job failed with code (a FLOW_E* code, not FLOW_ECANCELED), message (copied; NULL: the
 * code's) and node (copied, may be NULL), the way flow_job_cancel ends it canceled: for limits its
 * owner keeps, such as the size of its shared store. FLOW_ESTATE when the job has already ended. */
FLOW_EXPORT int flow_job_fail(flow_job_t *job, int code, const char *node, const char *message);

/* Answers the oldest flow_await_input() of the job with value (borrowed). FLOW_ESTATE when nothing
 * waits. When the node's input op rejects it, returns that code and fills err (may be NULL); the job
 * keeps waiting. */
FLOW_EXPORT int flow_job_input(flow_job_t *job, json_t *value, flow_error_t *err);

/* Readers, on the loop thread. Returned pointers are borrowed from the job. */
FLOW_EXPORT const char *flow_job_id(const flow_job_t *job);
FLOW_EXPORT flow_def_t *flow_job_def(const flow_job_t *job);
FLOW_EXPORT flow_status_t flow_job_status(const flow_job_t *job);
FLOW_EXPORT json_t *flow_job_shared(const flow_job_t *job); /* borrowed; the live store */
/* What nodes changed in the shared store since the last call (first call: since the start), for a
 * checkpoint that writes only that: *keys receives the top-level keys written (a new reference
 * to an object whose members are true, or NULL when none were) and the call returns 0; or it
 * returns 1 (*keys NULL) when any key may have changed: a node registered through the C API (its
 * prep and post get the store itself and say nothing of what they write), or memory ran out. The
 * built-in node types and Lua hooks report every write (a write through a nested value counts as
 * its top-level key). A key listed need not have changed; one changed is always listed. */
FLOW_EXPORT int flow_job_take_touched(flow_job_t *job, json_t **keys);
FLOW_EXPORT uint64_t flow_job_steps(const flow_job_t *job); /* finished steps */
/* node of the latest step started, or NULL */
FLOW_EXPORT const char *flow_job_current_node(const flow_job_t *job);
/* The action of the latest finished step, or NULL; once the root flow has ended, the action its
 * post returned (without a post, the last action of its sub-graph). */
FLOW_EXPORT const char *flow_job_last_action(const flow_job_t *job);
/* code 0 unless failed or canceled */
FLOW_EXPORT const flow_error_t *flow_job_error(const flow_job_t *job);
/* borrowed request of the oldest input wait */
FLOW_EXPORT json_t *flow_job_waiting_for(const flow_job_t *job);
FLOW_EXPORT void *flow_job_data(const flow_job_t *job);
FLOW_EXPORT uint64_t flow_job_created_us(const flow_job_t *job);
/* 0 while queued (but resume_started_us) */
FLOW_EXPORT uint64_t flow_job_started_us(const flow_job_t *job);
FLOW_EXPORT uint64_t flow_job_finished_us(const flow_job_t *job); /* 0 until done */

/* History: the last history_limit entries, oldest first, and totals over the whole job. */
FLOW_EXPORT size_t flow_job_history_count(const flow_job_t *job);
FLOW_EXPORT const flow_step_t *flow_job_history_at(const flow_job_t *job, size_t i);
typedef struct flow_history_totals {
    uint64_t steps;   /* all finished steps, kept or not */
    uint64_t failed;  /* steps that ended with an error */
    uint64_t retries; /* tries beyond the first, over all steps */
    uint64_t dropped; /* entries no longer kept */
} flow_history_totals_t;
FLOW_EXPORT void flow_job_history_totals(const flow_job_t *job, flow_history_totals_t *out);

/* ---- inside a node: the context of one prep, exec or post ----------------------------------- */

/* A ctx is valid during a callback, and for exec until it completes. Readers: */
FLOW_EXPORT flow_job_t *flow_ctx_job(const flow_ctx_t *ctx);
FLOW_EXPORT const flow_node_t *flow_ctx_node(const flow_ctx_t *ctx);
FLOW_EXPORT void *flow_ctx_node_data(const flow_ctx_t *ctx);
FLOW_EXPORT uv_loop_t *flow_ctx_loop(const flow_ctx_t *ctx);
/* The node's params: its own, with the enclosing flows' params (and a batch flow's item) over them.
 * Borrowed and read-only. NULL only when out of memory. */
FLOW_EXPORT json_t *flow_ctx_params(flow_ctx_t *ctx);
/* 0 on the first try of exec, 1 on the second... */
FLOW_EXPORT unsigned flow_ctx_attempt(const flow_ctx_t *ctx);
/* Which visit of its node this step is, as text into buf (cap bytes, NUL-terminated, cut to fit):
 * the step's ordinal in the run of its (sub-)flow, the 1st, 2nd, ... step started there, after the
 * visit of the flow node that runs that sub-flow and a dot, and a batch flow's run index and a dot:
 * "4" is the 4th root-level step, "4.2" the 2nd step inside it, "4.3.1" the 1st step of its run for
 * set 3. The same on every try of one step, different on each visit of a node, and the same again
 * when a resumed job (resume_visits) reruns a step. Returns the visit's length (as snprintf does:
 * more than cap - 1 when cut), or FLOW_EINVAL (a thread-pool copy of a ctx has no visit). */
FLOW_EXPORT int flow_ctx_visit(const flow_ctx_t *ctx, char *buf, size_t cap);
FLOW_EXPORT size_t flow_ctx_item(const flow_ctx_t *ctx); /* batch item index, or SIZE_MAX */
/* A pointer for the node's own use during one exec (what cancel must release, say). */
FLOW_EXPORT void flow_ctx_set_data(flow_ctx_t *ctx, void *data);
FLOW_EXPORT void *flow_ctx_data(const flow_ctx_t *ctx);

/* Completing an exec (each returns FLOW_ESTATE if the exec has already completed or was canceled;
 * when flow_sleep or flow_await_input cannot start, they return the error and the exec fails with it,
 * as if flow_fail had been called):
 * flow_done: with result (stolen; NULL is fine).
 * flow_fail: with an error; this try failed and the retries and fallback take over.
 * flow_fail_final: the same, but no other try is made (the error would not change on a retry, such
 *     as an address the outbound policy refuses); the fallback still runs.
 * flow_sleep: with result (stolen), at least ms milliseconds from now (by uv_hrtime(), the clock of
 *     the history's times; a timer on the loop).
 * flow_await_input: the job shows status waiting with request (borrowed, copied) until
 *     flow_job_input() answers; the answer (as checked by ops->input) is the result. */
FLOW_EXPORT int flow_done(flow_ctx_t *ctx, json_t *result);
FLOW_EXPORT int flow_fail(flow_ctx_t *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
FLOW_EXPORT int flow_fail_final(flow_ctx_t *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
FLOW_EXPORT int flow_sleep(flow_ctx_t *ctx, uint64_t ms, json_t *result);
/* Before flow_fail in the same try: the next try should not start sooner than ms from now (an
 * upstream's Retry-After); the node's max_wait, or FLOW_RETRY_AFTER_MAX_MS, caps it. FLOW_ESTATE
 * outside a running try. */
FLOW_EXPORT int flow_retry_after(flow_ctx_t *ctx, uint64_t ms);
FLOW_EXPORT int flow_await_input(flow_ctx_t *ctx, json_t *request);

/* For prep, post, exec_fallback and input: records the message for the job's error and returns code,
 * so that `return flow_error(ctx, FLOW_EINVAL, "no %s", what);` reads naturally. */
FLOW_EXPORT int flow_error(flow_ctx_t *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* For prep, exec (not on the thread pool), exec_fallback and post: a line of text (len bytes of
 * UTF-8; text is borrowed) for the step's history entry (flow_step_t.logs) and the library's logger
 * (INFO). A step keeps log_lines lines of at most log_line_bytes (a longer one is cut at a character
 * boundary, with "..."), and a job log_job_bytes over all its steps (flow_engine_opts_t); lines past
 * those caps are counted, and the step's last line says how many were not kept. Returns 0 (also
 * for a line only counted), FLOW_EINVAL when text is not UTF-8, FLOW_ESTATE on the thread pool,
 * FLOW_ENOMEM. */
FLOW_EXPORT int flow_ctx_log(flow_ctx_t *ctx, const char *text, size_t len);

/* Threaded nodes (flow_node_set_threaded): exec runs on libuv's thread pool and must complete with
 * flow_done() or flow_fail() before it returns; flow_sleep() and flow_await_input() are refused. It may
 * read ctx, its params and prep_res, and must change nothing else: prep_res may be part of the shared
 * store, so copy in prep what concurrent steps might modify. A timeout or cancel abandons the work: the
 * thread finishes on its own and the engine drops its result. */

#ifdef __cplusplus
}
#endif
#endif
