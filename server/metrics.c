/* metrics.c: the counters of metrics.h and their Prometheus text. */
#include "metrics.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "flow.h"

/* The codes flowd answers with; anything else (MHD's own answers) counts under "other". */
static const unsigned codes[] = {200, 202, 400, 404, 405, 409, 413, 415, 422, 429, 431, 500, 503};
#define NCODES (sizeof codes / sizeof codes[0] + 1)

/* Upper bounds in microseconds; the last bucket is +Inf. */
static const uint64_t bounds_us[] = {100,   250,    500,    1000,    2500,    5000,    10000,  25000,
                                     50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
#define NBOUNDS (sizeof bounds_us / sizeof bounds_us[0])

struct flowd_metrics {
    _Atomic uint64_t requests[FLOWD_PATHS][NCODES];
    _Atomic uint64_t buckets[FLOWD_PATHS][NBOUNDS + 1]; /* not cumulative; summed when rendered */
    _Atomic uint64_t sum_us[FLOWD_PATHS];
    _Atomic uint64_t steps;
    _Atomic uint64_t started;
};

int flowd_metrics_new(flowd_metrics_t **out) {
    flowd_metrics_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return FLOW_ENOMEM;
    *out = m;
    return 0;
}

void flowd_metrics_free(flowd_metrics_t *m) {
    free(m);
}

void flowd_metrics_request(flowd_metrics_t *m, flowd_path_t path, unsigned code, uint64_t us) {
    size_t c = NCODES - 1;
    for (size_t i = 0; i < NCODES - 1; i++) {
        if (codes[i] == code) {
            c = i;
            break;
        }
    }
    size_t b = 0;
    while (b < NBOUNDS && us > bounds_us[b])
        b++;
    if ((unsigned)path >= FLOWD_PATHS)
        path = FLOWD_P_OTHER;
    atomic_fetch_add_explicit(&m->requests[path][c], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->buckets[path][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_us[path], us, memory_order_relaxed);
}

void flowd_metrics_steps(flowd_metrics_t *m, uint64_t n) {
    atomic_fetch_add_explicit(&m->steps, n, memory_order_relaxed);
}

void flowd_metrics_job_started(flowd_metrics_t *m) {
    atomic_fetch_add_explicit(&m->started, 1, memory_order_relaxed);
}

static uint64_t get(_Atomic uint64_t *v) {
    return atomic_load_explicit(v, memory_order_relaxed);
}

void flowd_metrics_render(flowd_metrics_t *m, const flowd_gauges_t *g, flow_buf_t *b) {
    flow_buf_adds(b, "# HELP flowd_jobs Jobs the server holds, by status.\n"
                      "# TYPE flowd_jobs gauge\n");
    for (int s = 0; s < 6; s++)
        flow_buf_printf(b, "flowd_jobs{status=\"%s\"} %llu\n", flow_status_name((flow_status_t)s),
                         (unsigned long long)g->jobs[s]);
    flow_buf_printf(b,
                     "# HELP flowd_jobs_started_total Jobs the engine started.\n"
                     "# TYPE flowd_jobs_started_total counter\n"
                     "flowd_jobs_started_total %llu\n"
                     "# HELP flowd_steps_total Steps (node runs) finished.\n"
                     "# TYPE flowd_steps_total counter\n"
                     "flowd_steps_total %llu\n"
                     "# HELP flowd_queue_depth Commands waiting for the engine's loop.\n"
                     "# TYPE flowd_queue_depth gauge\n"
                     "flowd_queue_depth %llu\n"
                     "# HELP flowd_event_streams Open GET /v1/jobs/{id}/events streams.\n"
                     "# TYPE flowd_event_streams gauge\n"
                     "flowd_event_streams %llu\n"
                     "# HELP flowd_suspended_requests Requests waiting without a thread: long polls "
                     "and calls to the loop.\n"
                     "# TYPE flowd_suspended_requests gauge\n"
                     "flowd_suspended_requests %llu\n",
                     (unsigned long long)get(&m->started), (unsigned long long)get(&m->steps),
                     (unsigned long long)g->queue_depth, (unsigned long long)g->streams,
                     (unsigned long long)g->suspended);
    flow_buf_adds(b, "# HELP flowd_http_requests_total HTTP requests answered, by route and code.\n"
                      "# TYPE flowd_http_requests_total counter\n");
    for (int r = 0; r < FLOWD_PATHS; r++) {
        for (size_t c = 0; c < NCODES; c++) {
            uint64_t n = get(&m->requests[r][c]);
            if (n == 0)
                continue;
            if (c == NCODES - 1)
                flow_buf_printf(b, "flowd_http_requests_total{route=\"%s\",code=\"other\"} %llu\n",
                                 flowd_path_pattern((flowd_path_t)r), (unsigned long long)n);
            else
                flow_buf_printf(b, "flowd_http_requests_total{route=\"%s\",code=\"%u\"} %llu\n",
                                 flowd_path_pattern((flowd_path_t)r), codes[c], (unsigned long long)n);
        }
    }
    flow_buf_adds(b, "# HELP flowd_http_request_duration_seconds Time from a request's headers to "
                      "the end of its answer, by route.\n"
                      "# TYPE flowd_http_request_duration_seconds histogram\n");
    for (int r = 0; r < FLOWD_PATHS; r++) {
        uint64_t counts[NBOUNDS + 1], total = 0;
        for (size_t i = 0; i <= NBOUNDS; i++)
            total += counts[i] = get(&m->buckets[r][i]);
        if (total == 0)
            continue;
        uint64_t cum = 0;
        for (size_t i = 0; i <= NBOUNDS; i++) {
            cum += counts[i];
            if (i < NBOUNDS)
                flow_buf_printf(b, "flowd_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                                 flowd_path_pattern((flowd_path_t)r), (double)bounds_us[i] / 1e6, (unsigned long long)cum);
            else
                flow_buf_printf(b, "flowd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                                 flowd_path_pattern((flowd_path_t)r), (unsigned long long)cum);
        }
        flow_buf_printf(b, "flowd_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
                         flowd_path_pattern((flowd_path_t)r), (double)get(&m->sum_us[r]) / 1e6);
        flow_buf_printf(b, "flowd_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                         flowd_path_pattern((flowd_path_t)r), (unsigned long long)total);
    }
}
