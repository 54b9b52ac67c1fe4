/* metrics.c: the counters of metrics.h and their Prometheus text. */
#include "metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "flow.h"

/* The codes flowd answers with; anything else (MHD's own answers) counts under "other". */
static const unsigned codes[] = {200, 201, 202, 304, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 431, 500, 503};
#define NCODES (sizeof codes / sizeof codes[0] + 1)

/* Upper bounds in microseconds; the last bucket is +Inf. */
static const uint64_t bounds_us[] = {100,   250,    500,    1000,    2500,    5000,    10000,  25000,
                                     50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
#define NBOUNDS (sizeof bounds_us / sizeof bounds_us[0])

/* Upper bounds of job durations and queue waits, in seconds; the last bucket is +Inf. */
static const double job_bounds_s[] = {0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600, 3600, 21600, 86400};
#define NJOB_BOUNDS (sizeof job_bounds_s / sizeof job_bounds_s[0])
#define NOUTCOMES 3 /* succeeded, failed, canceled */

typedef struct job_hist {
    uint64_t buckets[NJOB_BOUNDS + 1]; /* not cumulative */
    double sum_s;
    uint64_t count;
} job_hist_t;

typedef struct flow_figures {
    char *name;
    uint64_t finished[NOUTCOMES];
    job_hist_t duration, queue_wait;
} flow_figures_t;

typedef struct type_figures {
    char *name;
    job_hist_t duration;
} type_figures_t;

struct flowd_metrics {
    pthread_mutex_t flows_lock; /* flows, nflows, types, ntypes and what they hold */
    type_figures_t types[FLOWD_METRICS_TYPES + 1]; /* the last: "other" */
    size_t ntypes;
    flow_figures_t flows[FLOWD_METRICS_FLOWS + 1]; /* the last: "other" */
    size_t nflows;
    uint64_t start_us;
    _Atomic uint64_t requests[FLOWD_PATHS][NCODES];
    _Atomic uint64_t buckets[FLOWD_PATHS][NBOUNDS + 1]; /* not cumulative; summed when rendered */
    _Atomic uint64_t sum_us[FLOWD_PATHS];
    _Atomic uint64_t steps;
    _Atomic uint64_t started;
    _Atomic uint64_t held_us;
    _Atomic uint64_t webhooks[FLOWD_WEBHOOK_OUTCOMES];
};

int flowd_metrics_new(flowd_metrics_t **out) {
    flowd_metrics_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return FLOW_ENOMEM;
    pthread_mutex_init(&m->flows_lock, NULL);
    m->flows[FLOWD_METRICS_FLOWS].name = "other";
    m->types[FLOWD_METRICS_TYPES].name = "other";
    m->start_us = flow_wall_us();
    *out = m;
    return 0;
}

void flowd_metrics_free(flowd_metrics_t *m) {
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nflows; i++)
        free(m->flows[i].name);
    for (size_t i = 0; i < m->ntypes; i++)
        free(m->types[i].name);
    pthread_mutex_destroy(&m->flows_lock);
    free(m);
}

static void hist_add(job_hist_t *h, double s) {
    size_t b = 0;
    while (b < NJOB_BOUNDS && s > job_bounds_s[b])
        b++;
    h->buckets[b]++;
    h->sum_s += s;
    h->count++;
}

/* Under flows_lock: the figures of flow, made on first use; "other" past the cap or without memory. */
static flow_figures_t *figures_of(flowd_metrics_t *m, const char *flow) {
    for (size_t i = 0; i < m->nflows; i++)
        if (strcmp(m->flows[i].name, flow) == 0)
            return &m->flows[i];
    if (m->nflows < FLOWD_METRICS_FLOWS && (m->flows[m->nflows].name = strdup(flow)) != NULL)
        return &m->flows[m->nflows++];
    return &m->flows[FLOWD_METRICS_FLOWS];
}

void flowd_metrics_job_finished(flowd_metrics_t *m, const char *flow, flow_status_t status,
                                uint64_t created_us, uint64_t started_us, uint64_t finished_us) {
    int outcome = status == FLOW_SUCCEEDED ? 0 : status == FLOW_FAILED ? 1 : 2;
    pthread_mutex_lock(&m->flows_lock);
    flow_figures_t *f = figures_of(m, flow ? flow : "");
    f->finished[outcome]++;
    if (started_us != 0) {
        if (started_us >= created_us)
            hist_add(&f->queue_wait, (double)(started_us - created_us) / 1e6);
        if (finished_us >= started_us)
            hist_add(&f->duration, (double)(finished_us - started_us) / 1e6);
    }
    pthread_mutex_unlock(&m->flows_lock);
}

void flowd_metrics_step_type(flowd_metrics_t *m, const char *type, uint64_t us) {
    pthread_mutex_lock(&m->flows_lock);
    type_figures_t *t = NULL;
    for (size_t i = 0; i < m->ntypes && t == NULL; i++)
        if (strcmp(m->types[i].name, type) == 0)
            t = &m->types[i];
    if (t == NULL && m->ntypes < FLOWD_METRICS_TYPES && (m->types[m->ntypes].name = strdup(type)) != NULL)
        t = &m->types[m->ntypes++];
    if (t == NULL)
        t = &m->types[FLOWD_METRICS_TYPES];
    hist_add(&t->duration, (double)us / 1e6);
    pthread_mutex_unlock(&m->flows_lock);
}

/* A label value as the exposition format wants it: \, " and newlines escaped. */
static void put_label(flow_buf_t *b, const char *v) {
    for (; *v != '\0'; v++) {
        if (*v == '\\' || *v == '"')
            flow_buf_addc(b, '\\');
        if (*v == '\n') {
            flow_buf_adds(b, "\\n");
            continue;
        }
        flow_buf_addc(b, *v);
    }
}

/* label: "flow" or "type"; value: its value. */
static void render_hist(flow_buf_t *b, const char *name, const char *label, const char *flow,
                        const job_hist_t *h) {
    uint64_t cum = 0;
    for (size_t i = 0; i <= NJOB_BOUNDS; i++) {
        cum += h->buckets[i];
        flow_buf_printf(b, "%s_bucket{%s=\"", name, label);
        put_label(b, flow);
        if (i < NJOB_BOUNDS)
            flow_buf_printf(b, "\",le=\"%g\"} %llu\n", job_bounds_s[i], (unsigned long long)cum);
        else
            flow_buf_printf(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    flow_buf_printf(b, "%s_sum{%s=\"", name, label);
    put_label(b, flow);
    flow_buf_printf(b, "\"} %.6f\n%s_count{%s=\"", h->sum_s, name, label);
    put_label(b, flow);
    flow_buf_printf(b, "\"} %llu\n", (unsigned long long)h->count);
}

static void render_flows(flowd_metrics_t *m, flow_buf_t *b) {
    static const char *const outcomes[NOUTCOMES] = {"succeeded", "failed", "canceled"};
    pthread_mutex_lock(&m->flows_lock);
    size_t n = m->nflows;
    flow_figures_t *other = &m->flows[FLOWD_METRICS_FLOWS];
    int with_other = other->finished[0] + other->finished[1] + other->finished[2] > 0;
    flow_buf_adds(b, "# HELP flowd_jobs_finished_total Jobs that ended, by flow and outcome.\n"
                     "# TYPE flowd_jobs_finished_total counter\n");
    for (size_t i = 0; i < n + (size_t)with_other; i++) {
        flow_figures_t *f = i < n ? &m->flows[i] : other;
        for (int o = 0; o < NOUTCOMES; o++) {
            flow_buf_adds(b, "flowd_jobs_finished_total{flow=\"");
            put_label(b, f->name);
            flow_buf_printf(b, "\",outcome=\"%s\"} %llu\n", outcomes[o],
                            (unsigned long long)f->finished[o]);
        }
    }
    /* the histograms by flow: each family's samples together, after its HELP and TYPE */
    static const struct {
        const char *name, *help;
        int queue_wait;
    } by_flow[] = {
        {"flowd_job_duration_seconds", "From a job's start to its end, by flow.", 0},
        {"flowd_job_queue_wait_seconds", "From a job's creation to its start, by flow.", 1}};
    for (size_t k = 0; k < sizeof by_flow / sizeof by_flow[0]; k++) {
        flow_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", by_flow[k].name, by_flow[k].help,
                        by_flow[k].name);
        for (size_t i = 0; i < n + (size_t)with_other; i++) {
            flow_figures_t *f = i < n ? &m->flows[i] : other;
            render_hist(b, by_flow[k].name, "flow", f->name,
                        by_flow[k].queue_wait ? &f->queue_wait : &f->duration);
        }
    }
    flow_buf_adds(b, "# HELP flowd_step_duration_seconds Steps finished and how long each took, by "
                     "node type.\n"
                     "# TYPE flowd_step_duration_seconds histogram\n");
    for (size_t i = 0; i <= FLOWD_METRICS_TYPES; i++) {
        type_figures_t *t = &m->types[i];
        if (i < m->ntypes || (i == FLOWD_METRICS_TYPES && t->duration.count > 0))
            render_hist(b, "flowd_step_duration_seconds", "type", t->name, &t->duration);
    }
    pthread_mutex_unlock(&m->flows_lock);
}

/* The process figures Prometheus' client libraries give, from /proc and getrusage. */
static void render_process(flowd_metrics_t *m, flow_buf_t *b) {
    struct rusage ru;
    double cpu = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
              ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    unsigned long long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%llu %llu", &pages, &resident) != 2)
            pages = resident = 0;
        fclose(f);
    }
    long page = sysconf(_SC_PAGESIZE);
    unsigned long long fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            fds += e->d_name[0] != '.';
        closedir(d);
        fds--; /* the one opendir holds */
    }
    struct rlimit lim;
    unsigned long long max_fds = getrlimit(RLIMIT_NOFILE, &lim) == 0 ? (unsigned long long)lim.rlim_cur : 0;
    flow_buf_printf(b,
                    "# HELP process_cpu_seconds_total User and system CPU time spent, in seconds.\n"
                    "# TYPE process_cpu_seconds_total counter\n"
                    "process_cpu_seconds_total %.6f\n"
                    "# HELP process_resident_memory_bytes Resident memory size, in bytes.\n"
                    "# TYPE process_resident_memory_bytes gauge\n"
                    "process_resident_memory_bytes %llu\n"
                    "# HELP process_virtual_memory_bytes Virtual memory size, in bytes.\n"
                    "# TYPE process_virtual_memory_bytes gauge\n"
                    "process_virtual_memory_bytes %llu\n"
                    "# HELP process_open_fds Open file descriptors.\n"
                    "# TYPE process_open_fds gauge\n"
                    "process_open_fds %llu\n"
                    "# HELP process_max_fds The limit on open file descriptors.\n"
                    "# TYPE process_max_fds gauge\n"
                    "process_max_fds %llu\n"
                    "# HELP process_start_time_seconds Start time of the process, in seconds since the "
                    "Unix epoch.\n"
                    "# TYPE process_start_time_seconds gauge\n"
                    "process_start_time_seconds %.6f\n"
                    "# HELP flowd_build_info flowd's version, as a label; the value is always 1.\n"
                    "# TYPE flowd_build_info gauge\n"
                    "flowd_build_info{version=\"%s\"} 1\n",
                    cpu, resident * (unsigned long long)(page > 0 ? page : 4096),
                    pages * (unsigned long long)(page > 0 ? page : 4096), fds, max_fds,
                    (double)m->start_us / 1e6, FLOW_VERSION_STRING);
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

void flowd_metrics_store_held(flowd_metrics_t *m, uint64_t us) {
    atomic_fetch_add_explicit(&m->held_us, us, memory_order_relaxed);
}

static uint64_t get(_Atomic uint64_t *v) {
    return atomic_load_explicit(v, memory_order_relaxed);
}

void flowd_metrics_webhook(flowd_metrics_t *m, flowd_webhook_outcome_t outcome) {
    if ((unsigned)outcome < FLOWD_WEBHOOK_OUTCOMES)
        atomic_fetch_add_explicit(&m->webhooks[outcome], 1, memory_order_relaxed);
}

static void render_webhooks(flowd_metrics_t *m, flow_buf_t *b) {
    static const char *const names[FLOWD_WEBHOOK_OUTCOMES] = {"delivered", "gone", "retried",
                                                              "failed", "dropped"};
    flow_buf_adds(b, "# HELP flowd_webhook_deliveries_total Tries of job callbacks, by outcome: "
                     "delivered (2xx), gone (410: no more tries), retried (failed, tried again "
                     "later), failed (no more tries: --webhook-max-age), dropped (never made: "
                     "--webhook-max-pending).\n"
                     "# TYPE flowd_webhook_deliveries_total counter\n");
    for (int o = 0; o < FLOWD_WEBHOOK_OUTCOMES; o++)
        flow_buf_printf(b, "flowd_webhook_deliveries_total{outcome=\"%s\"} %llu\n", names[o],
                        (unsigned long long)get(&m->webhooks[o]));
}

void flowd_metrics_render(flowd_metrics_t *m, const flowd_gauges_t *g, flow_buf_t *b) {
    render_process(m, b);
    render_flows(m, b);
    render_webhooks(m, b);
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
                     "flowd_suspended_requests %llu\n"
                     "# HELP flowd_store_backlog Operations queued for the store and not yet "
                     "written.\n"
                     "# TYPE flowd_store_backlog gauge\n"
                     "flowd_store_backlog %llu\n"
                     "# HELP flowd_store_held_seconds_total Time no step started because the "
                     "store's backlog had passed --store-backlog.\n"
                     "# TYPE flowd_store_held_seconds_total counter\n"
                     "flowd_store_held_seconds_total %.6f\n",
                     (unsigned long long)get(&m->started), (unsigned long long)get(&m->steps),
                     (unsigned long long)g->queue_depth, (unsigned long long)g->streams,
                     (unsigned long long)g->suspended, (unsigned long long)g->store_backlog,
                     (double)get(&m->held_us) / 1e6);
    flow_buf_printf(b,
                     "# HELP flowd_schedules Schedules the server holds.\n"
                     "# TYPE flowd_schedules gauge\n"
                     "flowd_schedules %llu\n"
                     "# HELP flowd_schedule_runs_total Runs of schedules, by outcome: a job started, "
                     "skipped (the last run's job had not ended), failed (no job could be made).\n"
                     "# TYPE flowd_schedule_runs_total counter\n"
                     "flowd_schedule_runs_total{outcome=\"started\"} %llu\n"
                     "flowd_schedule_runs_total{outcome=\"skipped\"} %llu\n"
                     "flowd_schedule_runs_total{outcome=\"failed\"} %llu\n",
                     (unsigned long long)g->schedules, (unsigned long long)g->schedule_runs[0],
                     (unsigned long long)g->schedule_runs[1], (unsigned long long)g->schedule_runs[2]);
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
