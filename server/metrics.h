/* metrics.h: counters for GET /metrics (Prometheus text format 0.0.4): HTTP requests by route
 * template and status code, a request latency histogram by route, steps run and jobs started; the
 * gauges (jobs by status, queue depth, streams) are read from their owners when the text is made.
 * Counters are relaxed atomics: any thread counts, any thread reads. */
#ifndef FLOWD_METRICS_H
#define FLOWD_METRICS_H

#include <stdint.h>

#include "jsonw.h"

typedef enum flowd_route {
    FLOWD_R_JOBS = 0,  /* /v1/jobs */
    FLOWD_R_JOB,       /* /v1/jobs/{id} */
    FLOWD_R_SHARED,    /* /v1/jobs/{id}/shared */
    FLOWD_R_HISTORY,   /* /v1/jobs/{id}/history */
    FLOWD_R_EVENTS,    /* /v1/jobs/{id}/events */
    FLOWD_R_INPUT,     /* /v1/jobs/{id}/input */
    FLOWD_R_CANCEL,    /* /v1/jobs/{id}/cancel */
    FLOWD_R_FLOWS,     /* /v1/flows */
    FLOWD_R_FLOW,      /* /v1/flows/{name} */
    FLOWD_R_HEALTHZ,   /* /healthz */
    FLOWD_R_METRICS,   /* /metrics */
    FLOWD_R_OTHER,     /* anything else (404) */
    FLOWD_ROUTES
} flowd_route_t;

const char *flowd_route_template(flowd_route_t route);

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
void flowd_metrics_request(flowd_metrics_t *m, flowd_route_t route, unsigned code, uint64_t us);
void flowd_metrics_steps(flowd_metrics_t *m, uint64_t n);
void flowd_metrics_job_started(flowd_metrics_t *m);
/* The exposition text into b. */
void flowd_metrics_render(flowd_metrics_t *m, const flowd_gauges_t *g, flow_buf_t *b);

#endif
