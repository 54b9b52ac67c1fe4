/* render.h: the JSON bodies of the API that both the HTTP threads and the loop write: the Job
 * object, the Error body and the History object (snapshot.h answers a job's reads with them).
 * Answer bodies are pretty (two spaces) and end with a newline; what the records keep is compact. Bodies are malloc'd: MHD frees them with free() (MHD_RESPMEM_MUST_FREE). */
#ifndef FLOWD_RENDER_H
#define FLOWD_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "apierr.h"
#include "flow.h"
#include "flow/problems.h"
#include "jobs.h"
#include "jsonw.h"

/* A finished answer: status code and body. */
typedef struct flowd_answer {
    unsigned status;
    char *body;   /* malloc'd, or NULL when out of memory (the caller answers 500 without a body) */
    size_t len;
    uint64_t etag; /* with has_etag: the Job's version (its last event's id), sent as its ETag */
    int has_etag;
} flowd_answer_t;

/* {"error": {"code": ..., "message": ...}} of err (apierr.h) with a newline; fmt NULL: err's default
 * message. flowd_answer_error gives it err's status. */
char *flowd_render_error(flowd_apierr_t err, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void flowd_answer_error(flowd_answer_t *a, flowd_apierr_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The 422 invalid_flow body: the Error with every problem of a flow document and its place (a JSON
 * Pointer into the document). NULL when out of memory. */
char *flowd_render_problems(const flow_problems_t *p, size_t *len);

/* What a Job object shows (borrowed): of a record, or of a job that runs on another instance. */
typedef struct flowd_job_view {
    const char *id, *flow;
    const char *tenant;        /* NULL: FLOWD_DEFAULT_TENANT */
    flow_status_t status;
    uint64_t created_us, started_us, finished_us;
    const char *current_node;
    uint64_t steps;
    const char *last_action;
    const char *waiting_for;   /* compact JSON, or NULL */
    int error_code;
    const char *error_message, *error_node;
    uint64_t start_at_us;      /* 0: none */
    unsigned priority;
    const char *conc_key;      /* NULL: none */
    unsigned conc_limit;
    const char *origin;        /* a redrive's or a fork's job: jobs.h origin, or NULL */
} flowd_job_view_t;

void flowd_render_job_view(flowd_jw_t *w, const flowd_job_view_t *v);
/* The Job object of a record into w (takes the record's lock); *version (may be NULL) receives the
 * id of its last event, read under the same lock: what the answer's ETag says. */
void flowd_render_job(flowd_jw_t *w, flowd_job_t *job, uint64_t *version);
/* The Job object alone, pretty, with a newline. NULL when out of memory. */
char *flowd_render_job_text(flowd_job_t *job, size_t *len, uint64_t *version);

/* The Job object of a record just created, which the loop has not seen yet (queued, no times but
 * created, no steps): the same text as flowd_render_job_text, made faster, for the 202 of
 * POST /v1/jobs. */
char *flowd_render_new_job(flowd_job_t *job, size_t *len);

/* The "totals" object of a History into w. */
void flowd_render_totals(flowd_jw_t *w, const flow_history_totals_t *t);
/* The same as compact JSON, for the stores: a new string (free it), or NULL when out of memory. */
char *flowd_render_totals_text(const flow_history_totals_t *t);

/* Loop thread: the History object of a running job, compact, into b. */
void flowd_render_history(flow_buf_t *b, flow_job_t *fj, const char *id);
/* The History object of job id from its parts, compact, into b: steps, the compact JSON text of
 * its array of steps (len bytes), and its totals. */
void flowd_render_history_of(flow_buf_t *b, const char *id, const char *steps, size_t len,
                             const flow_history_totals_t *totals);

/* Answers made from a job's store (its shared store, its history) or from a list are at most this
 * many bytes (--max-answer; set once at start, before the threads): past it they are 422
 * answer_too_large, saying how to ask for less. */
void flowd_render_set_max_answer(size_t bytes);
size_t flowd_render_max_answer(void);
/* The answer of b, whose cap was flowd_render_max_answer(): 200 with its bytes; 422
 * answer_too_large when it went past the cap (what: "the shared store", ...; hint: how to ask for
 * less); 500 without a body when out of memory. b is emptied. */
void flowd_answer_take(flowd_answer_t *a, flow_buf_t *b, const char *what, const char *hint);
#define FLOWD_HISTORY_HINT \
    "a job keeps its last --history-limit steps; the events stream (/events) has them one by one"
#define FLOWD_LIST_HINT "ask for a shorter page with ?limit="

/* A compact JSON text (a History kept by a record, say) as a pretty answer body, into b. */
void flowd_render_pretty(flow_buf_t *b, const char *compact, size_t len);

#endif
