/* server.h: flowd put together: the loop thread with the engine, the job table, the store, the HTTP
 * daemon on its own threads, and the hand-off between them (bridge.h). flowd_server_run() is the
 * whole life of the process after its flags are read: start, serve until SIGTERM or SIGINT, stop.
 *
 * Shutdown, on the loop (uv_signal): stop accepting (MHD_quiesce_daemon); /healthz and new POSTs
 * answer 503 shutting_down; the engine drains (no job starts another step) and we wait until no step
 * is in flight or --grace has passed; then every suspended connection is answered (event streams
 * end, long polls answer with the job as it is), the HTTP daemon stops, the engine closes (jobs
 * still running end canceled), and the loop runs dry. SIGHUP reloads the key file (auth.h) on
 * libuv's pool. */
#ifndef FLOWD_SERVER_H
#define FLOWD_SERVER_H

#include <stdatomic.h>

#include <uv.h>

#include "auth.h"
#include "config.h"
#include "events.h"
#include "flow.h"
#include "jobs.h"
#include "metrics.h"
#include "flow/nodes.h"
#include "store.h"

typedef struct flowd_bridge flowd_bridge_t;
typedef struct flowd_http flowd_http_t;
typedef struct flowd_cluster flowd_cluster_t;

typedef struct flowd_server {
    flowd_config_t cfg;
    uv_loop_t loop;
    flow_engine_t *eng;        /* loop only */
    flow_registry_t *reg;      /* any thread (it has its own lock) */
    flow_http_t *client;       /* loop only: the HTTP client of http and llm nodes */
    flow_nodes_env_t nodes;    /* what the built-in node types use; lives as long as reg */
    flowd_store_t *store;
    flowd_jobs_t *jobs;
    flowd_metrics_t *metrics;
    flowd_watchers_t *watchers;
    flowd_waitset_t *waits;    /* loop only */
    flowd_bridge_t *bridge;
    flowd_http_t *http;
    flowd_cluster_t *cluster;  /* a store shared with other instances: claims, lost jobs, commands */
    flowd_auth_t *auth;        /* keys, roles and tenants: any thread (auth.h) */
    uv_signal_t sighup;        /* reloads the key file */
    uv_work_t reload;          /* the reload, on libuv's pool: it reads a file */
    int reloading;             /* loop only: 1 reload is under way, 2 and a SIGHUP came since */
    atomic_int stopping;       /* shutdown has begun */
    uv_signal_t sigterm, sigint;
    uv_timer_t tick;           /* log flush, retention, keep-alives */
    uv_timer_t drain;          /* shutdown: waits for steps in flight */
    uint64_t drain_deadline;   /* uv_now() */
    uint64_t last_sweep_ms;
    uint64_t last_keepalive_ms;
    int stop_phase;
    /* the outbound policy (flow/netpolicy.h) from the flags; the client and nodes hold references */
    flowd_outbound_t outbound;
} flowd_server_t;

/* Runs flowd with cfg until it is told to stop. Returns the process exit status: 0 after a clean
 * shutdown, 1 when it could not start (the reason is logged). */
int flowd_server_run(const flowd_config_t *cfg);

#endif
