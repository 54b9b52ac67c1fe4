/* server.c: starting flowd, its timers, and the shutdown of server.h. */
#include "server.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "cluster.h"
#include "flow/doc.h"
#include "flow/problems.h"
#include "render.h"
#include "flows.h"
#include "http.h"
#include "log.h"
#include "schedules.h"
#include "webhooks.h"

#define TICK_MS 100          /* log flush */
#define SWEEP_MS 1000        /* retention */
#define DRAIN_POLL_MS 10     /* shutdown: how often we look whether steps are done */
#define ANSWER_WAIT_MS 2000  /* shutdown: how long suspended requests get to be answered */

enum { RUNNING = 0, DRAINING, ANSWERING, STOPPED };

static void on_evict(flowd_job_t *job, void *data) {
    flowd_server_t *srv = data;
    if (srv->store->ops->remove != NULL)
        srv->store->ops->remove(srv->store, job->id);
}

static void on_tick(uv_timer_t *t) {
    flowd_server_t *srv = t->data;
    uint64_t now = uv_now(&srv->loop);
    flowd_log_flush();
    if (now - srv->last_sweep_ms >= SWEEP_MS) {
        srv->last_sweep_ms = now;
        flowd_jobs_sweep(srv->jobs, flow_wall_us());
    }
    uint64_t every = srv->cfg.keepalive_ms / 4;
    if (every > 1000)
        every = 1000;
    if (now - srv->last_keepalive_ms >= every) {
        srv->last_keepalive_ms = now;
        flowd_watchers_tick(srv->watchers);
    }
}

static void closed_nothing(uv_handle_t *h) {
    (void)h;
}

/* The last phase: everything is answered or out of time. Stops HTTP, then the engine. */
static void stop_all(flowd_server_t *srv) {
    srv->stop_phase = STOPPED;
    uv_timer_stop(&srv->drain);
    /* Loop calls still queued (only when ANSWER_WAIT_MS ran out) are answered while their
     * connections exist; no new ones come (flowd_http_refuse_calls). */
    flowd_bridge_run(srv->bridge);
    flowd_http_stop(srv->http); /* joins MHD's threads: no handler runs after this */
    srv->http = NULL;
    flowd_bridge_close(srv->bridge);
    flowd_schedules_quiesce(srv->schedules); /* no read of the store from now on */
    if (srv->store->ops->release != NULL)
        srv->store->ops->release(srv->store); /* a durable store keeps what still runs: not canceled */
    /* tries in flight are dropped before the client closes; the store keeps them owed */
    flowd_webhooks_stop(srv->webhooks);
    flow_engine_close(srv->eng); /* jobs still running end canceled, their records updated */
    srv->eng = NULL;
    flow_http_close(srv->client); /* after the engine: canceled http nodes abort their requests first */
    srv->client = NULL;
    flowd_waitset_close(srv->waits);
    srv->waits = NULL;
    srv->store->ops->close(srv->store);
    srv->store = NULL;
    flowd_schedules_close(srv->schedules); /* after the store: no run comes back from it */
    srv->schedules = NULL;
    flowd_cluster_close(srv->cluster); /* after the store: its hooks no longer run */
    srv->cluster = NULL;
    uv_close((uv_handle_t *)&srv->drain, closed_nothing);
    uv_close((uv_handle_t *)&srv->tick, closed_nothing);
    uv_close((uv_handle_t *)&srv->sigterm, closed_nothing);
    uv_close((uv_handle_t *)&srv->sigint, closed_nothing);
    uv_close((uv_handle_t *)&srv->sighup, closed_nothing);
    /* uv_run returns once these close callbacks (and the engine's and bridge's) have run, and a
     * reload of the keys under way has ended */
}

static void on_drain(uv_timer_t *t) {
    flowd_server_t *srv = t->data;
    uint64_t now = uv_now(&srv->loop);
    if (srv->stop_phase == DRAINING) {
        size_t busy = flow_engine_busy(srv->eng);
        if (busy > 0 && now < srv->drain_deadline)
            return;
        if (busy > 0)
            flowd_log(FLOW_LOG_WARN, "shutdown: %zu steps still running after --grace; they are canceled",
                      busy);
        /* End event streams and long polls; loop calls from now on are refused. */
        srv->stop_phase = ANSWERING;
        srv->drain_deadline = now + ANSWER_WAIT_MS;
        flowd_http_refuse_calls(srv->http);
        flowd_watchers_close_all(srv->watchers);
        flowd_waitset_wake_all(srv->waits);
        if (srv->store->cluster != NULL) /* streams, long polls and sends of remote jobs */
            srv->store->cluster->remote_stop(srv->store);
        return;
    }
    if (srv->stop_phase == ANSWERING) {
        if ((flowd_http_suspended(srv->http) > 0 || flowd_watchers_count(srv->watchers) > 0) &&
            now < srv->drain_deadline)
            return;
        stop_all(srv);
    }
}

static void on_signal(uv_signal_t *sig, int signum) {
    flowd_server_t *srv = sig->data;
    if (srv->stop_phase != RUNNING) {
        flowd_log(FLOW_LOG_INFO, "flowd: %s: already shutting down", strsignal(signum));
        return;
    }
    flowd_log(FLOW_LOG_INFO, "flowd: %s: shutting down; running steps get up to %llu ms to finish",
              strsignal(signum), (unsigned long long)srv->cfg.grace_ms);
    srv->stop_phase = DRAINING;
    atomic_store(&srv->stopping, 1);
    flowd_http_quiesce(srv->http);
    flow_engine_drain(srv->eng);
    srv->drain_deadline = uv_now(&srv->loop) + srv->cfg.grace_ms;
    uv_timer_start(&srv->drain, on_drain, 0, DRAIN_POLL_MS);
}

/* A reload of the key file runs on libuv's pool: reading a file may block; the loop must not. */
static void reload_work(uv_work_t *req) {
    flowd_server_t *srv = req->data;
    if (!flowd_auth_open(srv->auth))
        flowd_auth_reload(srv->auth);
    flowd_webhooks_reload(srv->webhooks);
}

static void reload_done(uv_work_t *req, int status) {
    flowd_server_t *srv = req->data;
    int again = srv->reloading == 2;
    srv->reloading = 0;
    /* a SIGHUP came while the file was read: it may have been for a newer file */
    if (again && status == 0 &&
        uv_queue_work(&srv->loop, &srv->reload, reload_work, reload_done) == 0)
        srv->reloading = 1;
}

static void on_sighup(uv_signal_t *sig, int signum) {
    flowd_server_t *srv = sig->data;
    (void)signum;
    if (flowd_auth_open(srv->auth) && srv->cfg.webhook_secrets[0] == '\0') {
        flowd_log(FLOW_LOG_WARN, "flowd: SIGHUP: no key file (--keys) to reload, nor "
                  "--webhook-secrets; flowd stays open");
        return;
    }
    if (srv->reloading) {
        srv->reloading = 2;
        return;
    }
    srv->reload.data = srv;
    int rc = uv_queue_work(&srv->loop, &srv->reload, reload_work, reload_done);
    if (rc != 0)
        flowd_log(FLOW_LOG_ERROR, "flowd: SIGHUP: the keys cannot be reloaded: %s",
                  uv_strerror(rc));
    else
        srv->reloading = 1;
}

/* Frees what is left once the loop has run dry. */
static void server_free(flowd_server_t *srv) {
    flowd_jobs_free(srv->jobs);
    flowd_watchers_free(srv->watchers);
    flowd_metrics_free(srv->metrics);
    if (srv->reg != NULL)
        flow_registry_free(srv->reg);
    flowd_auth_free(srv->auth); /* after the records, which borrow their tenants from it */
    flowd_webhooks_free(srv->webhooks); /* after the records, which hold deliveries */
    flowd_outbound_clear(&srv->outbound);
    int rc = uv_loop_close(&srv->loop);
    if (rc != 0)
        flowd_log(FLOW_LOG_WARN, "the loop still had handles at exit: %s", uv_strerror(rc));
    free(srv);
}

/* A flow that PUT or DELETE left in the store: applied over the compiled-in ones and --flows. */
static int restore_flow(void *data, const char *name, json_t *doc) {
    flowd_server_t *srv = data;
    if (doc == NULL) {
        if (flow_registry_remove_flow(srv->reg, name) == 0)
            flowd_log(FLOW_LOG_INFO, "flow %s: deleted through the API before", name);
        return 0;
    }
    flow_problems_t problems = FLOW_PROBLEMS_INIT;
    flow_def_t *def = NULL;
    int rc = flow_doc_load(srv->reg, doc, &def, &problems);
    if (rc == 0 && (rc = flow_registry_put_flow(srv->reg, def, NULL)) == 0)
        flowd_log(FLOW_LOG_INFO, "flow %s: as registered through the API before", name);
    else
        flowd_log(FLOW_LOG_WARN, "flow %s, registered through the API before, does not load now (%s); the other "
                  "version stays", name, problems.count ? "its problems follow" : flow_strerror(rc));
    for (size_t i = 0; i < problems.count; i++) /* every problem, as a PUT would have listed them */
        flowd_log(FLOW_LOG_WARN, "flow %s: %s: %s", name, problems.items[i].where, problems.items[i].message);
    flow_def_unref(def);
    flow_problems_clear(&problems);
    return rc == FLOW_ENOMEM ? rc : 0;
}

/* What recovery has restored so far. */
typedef struct restored {
    flowd_server_t *srv;
    flowd_flow_versions_t versions; /* of the flows the restored jobs started with */
    size_t restored, resumed;
} restored_t;

static int restore_job(void *data, const flowd_stored_job_t *sj) {
    restored_t *v = data;
    flow_def_t *def = flowd_flow_version(&v->versions, v->srv->reg, sj->flow, sj->flow_document);
    int rc = flowd_bridge_restore(v->srv->bridge, sj, def);
    flow_def_unref(def);
    v->restored++;
    v->resumed += !flow_status_final(sj->status);
    return rc;
}

/* Every job the store holds becomes a record again; those that had not ended run on. */
static int recover(flowd_server_t *srv) {
    restored_t v = {.srv = srv};
    int rc = srv->store->ops->load(srv->store, restore_job, &v);
    flowd_flow_versions_clear(&v.versions);
    if (rc == 0 && v.restored > 0)
        flowd_log(FLOW_LOG_INFO, "store %s: %zu jobs back, %zu of them to run on", srv->store->ops->name, v.restored,
                  v.resumed);
    return rc;
}

/* The outbound policy from the flags (checked when they were read): the operator's lists for the
 * client, and for llm nodes the host and port of --llm-base-url, allowed because the operator
 * configured it. 0 or a FLOW_E* code after logging. */
static int outbound_init(flowd_server_t *srv) {
    const flowd_config_t *cfg = &srv->cfg;
    char why[FLOW_NETRULE_MAX_LEN + 200];
    int rc = flowd_outbound_init(cfg, &srv->outbound, why, sizeof why);
    if (rc < 0) {
        flowd_log(FLOW_LOG_ERROR, "cannot start the outbound policy: %s", why);
        return rc;
    }
    char allow[sizeof cfg->allow_outbound + 32] = "", deny[sizeof cfg->deny_outbound + 32] = "";
    if (cfg->allow_outbound[0] != '\0')
        snprintf(allow, sizeof allow, " and %s (--allow-outbound)", cfg->allow_outbound);
    if (cfg->deny_outbound[0] != '\0')
        snprintf(deny, sizeof deny, ", not %s (--deny-outbound)", cfg->deny_outbound);
    flowd_log(FLOW_LOG_INFO, "outbound: http and llm nodes may reach public addresses%s%s; llm "
              "nodes also %s; a flow's own \"outbound\" allow list is %s (--flow-outbound)", allow,
              deny, srv->outbound.llm ? flow_netrules_entry(srv->outbound.llm, 0) : "nothing",
              cfg->flow_outbound ? "honoured" : "refused");
    return 0;
}

/* Starts what the HTTP daemon needs; 0 or a FLOW_E* code after logging. */
static int server_init(flowd_server_t *srv) {
    flow_error_t err = {0};
    const flowd_config_t *cfg = &srv->cfg;
    /* process-wide, before any flow is loaded or any thread runs */
    flowd_config_apply_process(cfg);
    flowd_render_set_max_answer(cfg->max_answer);
    flow_engine_opts_t eo;
    flowd_jobs_opts_t jo = {.max_jobs = cfg->max_jobs,
                            .max_finished = cfg->max_finished,
                            .retention_us = cfg->retention_ms * 1000,
                            .events_limit = cfg->events_limit,
                            .on_evict = on_evict,
                            .data = srv};
    int rc;
    flowd_config_engine_opts(cfg, &eo);
    if ((rc = flow_registry_new(&srv->reg)) < 0 || (rc = flowd_flows_register(srv->reg, &err)) < 0) {
        flowd_log(FLOW_LOG_ERROR, "cannot register the flows: %s%s%s", flow_strerror(rc),
                  err.message ? ": " : "", err.message ? err.message : "");
        flow_error_clear(&err);
        return rc;
    }
    rc = outbound_init(srv);
    if (rc < 0)
        return rc;
    flowd_config_nodes_env(cfg, &srv->outbound, &srv->nodes);
    flow_http_opts_t ho = {.allow = srv->outbound.allow, .deny = srv->outbound.deny};
    if ((rc = flow_http_new(&srv->loop, &ho, &srv->client)) < 0 ||
        (srv->nodes.http = srv->client, rc = flow_nodes_register(srv->reg, &srv->nodes)) < 0) {
        flowd_log(FLOW_LOG_ERROR, "cannot start the node types: %s", flow_strerror(rc));
        return rc;
    }
    if (cfg->flows[0] != '\0' && (rc = flowd_flows_load_dir(srv->reg, cfg->flows)) < 0) {
        flowd_log(FLOW_LOG_ERROR, "the flows of %s did not load (above); flowd does not start", cfg->flows);
        return rc;
    }
    char why[512] = "";
    flowd_store_opts_t so = {.data_dir = cfg->data_dir,
                             .sync = cfg->store_sync,
                             .shards = cfg->store_shards,
                             .lease_ms = cfg->lease_ms,
                             .claim_ms = cfg->claim_ms,
                             .poll_ms = cfg->poll_ms,
                             .retention_ms = cfg->retention_ms,
                             .events_limit = cfg->events_limit,
                             .pool = cfg->http_threads};
    if ((rc = flowd_store_open(cfg->store, &so, &srv->store, why, sizeof why)) < 0) {
        flowd_log(FLOW_LOG_ERROR, "--store %s: %s", cfg->store, why);
        return rc;
    }
    if ((rc = srv->store->ops->load_flows(srv->store, restore_flow, srv)) < 0) {
        flowd_log(FLOW_LOG_ERROR, "the flows kept by the store did not load: %s", flow_strerror(rc));
        return rc;
    }
    if ((rc = flow_engine_new(&srv->loop, &eo, &srv->eng)) < 0 || (rc = flowd_metrics_new(&srv->metrics)) < 0 ||
        (rc = flowd_jobs_new(&jo, &srv->jobs)) < 0 ||
        (rc = flowd_watchers_new(cfg->keepalive_ms, &srv->watchers)) < 0 ||
        (rc = flowd_waitset_new(&srv->loop, &srv->waits)) < 0 ||
        (rc = flowd_bridge_new(srv, &srv->bridge)) < 0) {
        flowd_log(FLOW_LOG_ERROR, "cannot start: %s", flow_strerror(rc));
        return rc;
    }
    if ((rc = recover(srv)) < 0) {
        flowd_log(FLOW_LOG_ERROR, "the jobs kept by the store did not load: %s", flow_strerror(rc));
        return rc;
    }
    /* after the jobs: a schedule's overlap looks at its last run's job */
    if ((rc = flowd_schedules_new(srv, &srv->schedules)) < 0)
        return rc;
    if ((rc = flowd_webhooks_load(srv->webhooks)) < 0) {
        flowd_log(FLOW_LOG_ERROR, "the webhook deliveries kept by the store did not load: %s",
                  flow_strerror(rc));
        return rc;
    }
    if ((rc = flowd_cluster_start(srv, &srv->cluster)) < 0) {
        flowd_log(FLOW_LOG_ERROR, "cannot start: %s", flow_strerror(rc));
        return rc;
    }
    uv_timer_init(&srv->loop, &srv->tick);
    uv_timer_init(&srv->loop, &srv->drain);
    uv_signal_init(&srv->loop, &srv->sigterm);
    uv_signal_init(&srv->loop, &srv->sigint);
    uv_signal_init(&srv->loop, &srv->sighup);
    srv->tick.data = srv->drain.data = srv->sigterm.data = srv->sigint.data = srv;
    srv->sighup.data = srv;
    return 0;
}

/* Undoes server_init when the daemon could not start: closes the handles and runs the loop dry. */
static void server_abort(flowd_server_t *srv) {
    flowd_webhooks_stop(srv->webhooks);
    if (srv->bridge != NULL)
        flowd_bridge_close(srv->bridge);
    if (srv->eng != NULL)
        flow_engine_close(srv->eng);
    flow_http_close(srv->client);
    srv->client = NULL;
    if (srv->waits != NULL)
        flowd_waitset_close(srv->waits);
    flowd_schedules_quiesce(srv->schedules);
    if (srv->store != NULL)
        srv->store->ops->close(srv->store);
    flowd_schedules_close(srv->schedules);
    srv->schedules = NULL;
    flowd_cluster_close(srv->cluster);
    srv->cluster = NULL;
    if (srv->tick.data != NULL) { /* server_init got as far as the handles */
        uv_close((uv_handle_t *)&srv->tick, closed_nothing);
        uv_close((uv_handle_t *)&srv->drain, closed_nothing);
        uv_close((uv_handle_t *)&srv->sigterm, closed_nothing);
        uv_close((uv_handle_t *)&srv->sigint, closed_nothing);
        uv_close((uv_handle_t *)&srv->sighup, closed_nothing);
    }
    uv_run(&srv->loop, UV_RUN_DEFAULT);
}

int flowd_server_run(const flowd_config_t *cfg) {
    flowd_server_t *srv = calloc(1, sizeof *srv);
    if (srv == NULL || uv_loop_init(&srv->loop) != 0) {
        flowd_log(FLOW_LOG_ERROR, "cannot start: out of memory");
        free(srv);
        return 1;
    }
    srv->cfg = *cfg;
    unsigned port = 0;
    char why[1024];
    /* Keys first: a flow document or a store need not be read by a flowd that may not run. */
    if (flowd_auth_new(cfg, &srv->auth, why, sizeof why) < 0) {
        flowd_log(FLOW_LOG_ERROR, "flowd: %s", why);
        server_free(srv);
        return 1;
    }
    if (flowd_webhooks_new(srv, &srv->webhooks, why, sizeof why) < 0) {
        flowd_log(FLOW_LOG_ERROR, "flowd: --webhook-secrets: %s", why);
        server_free(srv);
        return 1;
    }
    if (server_init(srv) < 0 || flowd_http_start(srv, &srv->http, &port) < 0) {
        server_abort(srv);
        server_free(srv);
        return 1;
    }
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    uv_signal_start(&srv->sighup, on_sighup, SIGHUP);
    uv_timer_start(&srv->tick, on_tick, TICK_MS, TICK_MS);
    int v6 = strchr(cfg->bind, ':') != NULL;
    flowd_log_always("flowd: listening on http://%s%s%s:%u", v6 ? "[" : "", cfg->bind, v6 ? "]" : "", port);
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    flowd_log(FLOW_LOG_INFO, "flowd: stopped");
    server_free(srv);
    return 0;
}
