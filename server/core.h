/* core.h: flowd_server_t, the state every part of flowd reaches: the loop with the engine, the job
 * table, the store, the HTTP daemon, the bridge between them, the cluster and the keys. A header of
 * its own, apart from server.h (which starts and stops it all), so that the parts it holds can name
 * it without including the module that includes them: bridge, cluster and http include core.h;
 * server.c includes them. Which thread may use each member is said beside it. */
#ifndef FLOWD_CORE_H
#define FLOWD_CORE_H

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
    struct flowd_webhooks *webhooks; /* jobs' callbacks (webhooks.h): the loop sends, any thread
                                      * asks for secrets */
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

#endif
