/* metrics.h: counters for GET /metrics (Prometheus text format 0.0.4): HTTP requests by path
 * (labelled with its pattern, http_routes.h) and status code, a request latency histogram by path,
 * steps run and jobs started; the gauges (jobs by status, queue depth, streams) are read from their owners when the text is made.
 * Counters are relaxed atomics: any thread counts, any thread reads. */
#ifndef FLOWD_METRICS_H
#define FLOWD_METRICS_H

#include <stdint.h>

#include "http_routes.h"
#include "jsonw.h"

typedef struct flowd_metrics flowd_metrics_t;

/* What the owners of the gauges report when the text is made. */
typedef struct flowd_gauges {
    uint64_t jobs[6];      /* by flow_status_t */
    uint64_t queue_depth;  /* commands waiting for the loop */
    uint64_t streams;      /* open event streams */
    uint64_t suspended;    /* requests whose connection is suspended (long polls, loop calls) */
} flowd_gauges_t;

int flowd_metrics_new(flowd_metrics_t **out);
void flowd_metrics_free(flowd_metrics_t *m);
/* A request answered: its path (http_routes.h; the label is its pattern), status code and time. */
void flowd_metrics_request(flowd_metrics_t *m, flowd_path_t path, unsigned code, uint64_t us);
void flowd_metrics_steps(flowd_metrics_t *m, uint64_t n);
void flowd_metrics_job_started(flowd_metrics_t *m);
/* The exposition text into b. */
void flowd_metrics_render(flowd_metrics_t *m, const flowd_gauges_t *g, flow_buf_t *b);

#endif
