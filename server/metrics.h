/* metrics.h: counters for GET /metrics (Prometheus text format 0.0.4): HTTP requests by path
 * (labelled with its pattern, http_routes.h) and status code, a request latency histogram by path,
 * steps run and jobs started; webhook tries by outcome; jobs finished by flow and outcome, with histograms of their run time
 * and of their wait in the queue by flow; build_info and the process_* figures (memory, CPU, open
 * descriptors, start time) read from /proc when the text is made; the gauges (jobs by status, queue
 * depth, streams) are read from their owners then too.
 * Request and step counters are relaxed atomics: any thread counts, any thread reads. The per-flow
 * figures are under a mutex (a job ends far less often than a request comes), for at most
 * FLOWD_METRICS_FLOWS flow names; later names count under flow="other". */
#ifndef FLOWD_METRICS_H
#define FLOWD_METRICS_H

#include <stdint.h>

#include "flow.h"
#include "http_routes.h"
#include "jsonw.h"

typedef struct flowd_metrics flowd_metrics_t;

/* What the owners of the gauges report when the text is made. */
typedef struct flowd_gauges {
    uint64_t jobs[6];      /* by flow_status_t */
    uint64_t queue_depth;  /* commands waiting for the loop */
    uint64_t streams;      /* open event streams */
    uint64_t suspended;    /* requests whose connection is suspended (long polls, loop calls) */
    uint64_t schedules;    /* schedules held (schedules.h) */
    uint64_t schedule_runs[3]; /* runs started, skipped (overlap), failed (made no job) */
    uint64_t store_backlog; /* operations queued for the store, not yet written */
} flowd_gauges_t;

int flowd_metrics_new(flowd_metrics_t **out);
void flowd_metrics_free(flowd_metrics_t *m);
/* A request answered: its path (http_routes.h; the label is its pattern), status code and time. */
void flowd_metrics_request(flowd_metrics_t *m, flowd_path_t path, unsigned code, uint64_t us);
void flowd_metrics_steps(flowd_metrics_t *m, uint64_t n);
void flowd_metrics_job_started(flowd_metrics_t *m);
/* The engine was held for us microseconds (--store-backlog: no step started meanwhile). */
void flowd_metrics_store_held(flowd_metrics_t *m, uint64_t us);
#define FLOWD_METRICS_FLOWS 256
/* A job ended with status (final), made at created_us, started at started_us (0: it never started),
 * ended at finished_us: wall clock microseconds. flow is copied. */
void flowd_metrics_job_finished(flowd_metrics_t *m, const char *flow, flow_status_t status,
                                uint64_t created_us, uint64_t started_us, uint64_t finished_us);
/* A step of a node of this type (flow_node_type: static, or copied) took us microseconds; at most
 * FLOWD_METRICS_TYPES type names, later ones count under type="other". */
#define FLOWD_METRICS_TYPES 64
void flowd_metrics_step_type(flowd_metrics_t *m, const char *type, uint64_t us);
/* What became of a try of a webhook delivery (webhooks.h), or of a delivery never tried. */
typedef enum flowd_webhook_outcome {
    FLOWD_WEBHOOK_DELIVERED = 0, /* a 2xx answer */
    FLOWD_WEBHOOK_GONE,          /* 410 Gone: no more tries */
    FLOWD_WEBHOOK_RETRIED,       /* it failed, and is tried again later */
    FLOWD_WEBHOOK_FAILED,        /* it failed, and --webhook-max-age is up: no more tries */
    FLOWD_WEBHOOK_DROPPED,       /* never made (--webhook-max-pending, out of memory) */
    FLOWD_WEBHOOK_OUTCOMES
} flowd_webhook_outcome_t;
void flowd_metrics_webhook(flowd_metrics_t *m, flowd_webhook_outcome_t outcome);
/* The exposition text into b. */
void flowd_metrics_render(flowd_metrics_t *m, const flowd_gauges_t *g, flow_buf_t *b);

#endif
