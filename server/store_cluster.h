/* store_cluster.h: what a store shared by several flowd instances (PostgreSQL) does besides what
 * every store does (store.h), through store->cluster (NULL for the memory and SQLite stores, whose
 * one flowd holds every job in its table). cluster.c is the loop's and the HTTP threads' side.
 *
 *   attach      once, after load, before the HTTP daemon: the store begins to renew the leases of
 *               the jobs this instance runs and to claim others (their owner's lease ran out, or
 *               they were released), which it hands to hooks->adopt (and deliveries of callbacks
 *               whose owner's lease ran out, to hooks->adopt_delivery); hooks->lost says that another
 *               instance took a job over; hooks->command brings input and cancels sent to other
 *               instances for jobs that run here. The hooks run on the store's threads.
 *   event       loop: a status change the job's event ring got (not its last one, which goes with
 *               finish; a step's event goes with its checkpoint): kept for watchers elsewhere.
 *   answer      any thread: the answer to hooks->command's token (body stolen, may be NULL).
 *   acquire     loop: a job of a limited flow or with a concurrency key asks for its turn over every
 *               instance (scheduler.h); done(data, verdict) runs once on a store thread after the
 *               store decided (flowd_store_slot_cb). With behind (FLOWD_SCHED_KEY_FULL or
 *               FLOWD_SCHED_FLOW_FULL, scheduler.h) it only records that the job waits for that
 *               group, and done (which may be NULL) is told that verdict. hooks->poke runs (store
 *               threads) when a turn may have come free somewhere: a turn was given or a limited
 *               job ended on some instance, or a claim interval passed.
 *   read_job, read_jobs, read_events
 *               HTTP threads, blocking: a job, a page of the list (newest first, as
 *               flowd_jobs_list), or the events after an id, as the store has them now (a job that
 *               runs here may be a little ahead in the job table). A tenant (not NULL) leaves out
 *               the jobs of every other tenant: another tenant's job is FLOW_ENOTFOUND.
 *   count_jobs  HTTP threads, blocking: how many jobs of flow (NULL: any) and tenant (NULL: any)
 *               the store has, by status (indexed by flow_status_t), as read_jobs would list them.
 *   watch       HTTP threads: wake(data, why) runs once, on a store thread, when the job has events
 *               after `after` (FLOWD_WAKE_EVENTS), timeout_ms has passed (FLOWD_WAKE_TIMEOUT), or
 *               remote_stop ran (FLOWD_WAKE_STOP); data is the watch's key for unwatch, after which
 *               wake does not run. FLOW_ESTATE after remote_stop.
 *   send        HTTP threads: input (value: JSON text) or a cancel for a job that runs elsewhere;
 *               done(data, rc, status, body, len) runs once on a store thread with the owner's
 *               answer (rc 0), or rc FLOW_ENOTFOUND (no such job), FLOW_ETIMEDOUT (nobody took it:
 *               it never takes effect), FLOW_EBUSY (taken but not answered in time: it may have
 *               taken effect), FLOW_ESTATE (shutting down), FLOW_EIO. body is malloc'd, the
 *               callee's to free.
 *   remote_stop at shutdown, before the HTTP daemon stops: every watch wakes and every send is
 *               answered now; later ones are refused.
 *   read_deliveries
 *               HTTP threads, blocking: a job's callback and the deliveries of it, as the store
 *               has them now, whichever instance made them. */
#ifndef FLOWD_STORE_CLUSTER_H
#define FLOWD_STORE_CLUSTER_H

#include "store.h"

/* A job as the store has it (read_job, read_jobs). Strings malloc'd: flowd_remote_job_clear. */
typedef struct flowd_remote_job {
    char id[33];
    uint64_t seq;              /* its place in the order of creation, over every instance */
    char *tenant;
    char *flow;
    flow_status_t status;
    uint64_t created_us, started_us, finished_us;
    char *current_node;        /* a job not ended: the root flow's node it runs or waits in */
    uint64_t steps;
    char *last_action;
    char *waiting_for;         /* compact JSON, or NULL */
    int error_code;
    char *error_message, *error_node;
    char *idem_key;
    uint64_t body_hash;
    uint64_t last_event;       /* the id of its last event so far (0: none) */
    uint64_t start_at_us;      /* when it may start (0: at once) */
    unsigned priority;
    char *conc_key;            /* NULL: none */
    unsigned conc_limit;
    char *shared;              /* FLOWD_READ_SHARED: compact JSON */
    size_t shared_len;
    char *origin;              /* a redrive's job: where it came from (compact JSON), or NULL */
    /* FLOWD_READ_REDRIVE: its params and callback (compact JSON, or NULL), and what a redrive
     * starts from (jobs.h redrive_shared, redrive_node; base_shared NULL: not kept, unless
     * base_at_step: a store with patches makes it again as of base_step, jobs.h redrive_step) */
    char *params, *callback, *base_shared, *base_node;
    int base_at_step;
    uint64_t base_step;
    char *history;             /* FLOWD_READ_HISTORY: compact JSON array of its last steps */
    size_t history_len;
    flow_history_totals_t totals; /* FLOWD_READ_HISTORY */
    char *flow_document;       /* FLOWD_READ_DOCUMENT: the document of the flow version it started
                                * with (JSON), or NULL (a flow written in C) */
} flowd_remote_job_t;

#define FLOWD_READ_SHARED 1u
#define FLOWD_READ_HISTORY 2u
#define FLOWD_READ_DOCUMENT 8u
#define FLOWD_READ_REDRIVE 16u /* not 4: FLOWD_SNAP_JOB */

void flowd_remote_job_clear(flowd_remote_job_t *j);

enum { FLOWD_WAKE_EVENTS = 0, FLOWD_WAKE_TIMEOUT, FLOWD_WAKE_STOP };

typedef struct flowd_store_hooks {
    void *data;
    /* A job this instance claimed: it runs here now (sj borrowed for the call). */
    void (*adopt)(void *data, const flowd_stored_job_t *sj);
    /* Another instance took the job over: it must stop here, writing nothing. */
    void (*lost)(void *data, const char *id);
    /* Input (value: borrowed) or a cancel sent elsewhere for a job that runs here;
     * answer(token). */
    void (*command)(void *data, uint64_t token, const char *id, int cancel, json_t *value);
    /* How many more jobs this instance may run (--max-jobs less those it runs). */
    uint64_t (*room)(void *data);
    /* A delivery of a callback this instance claimed: it tries it now (d borrowed for the call). */
    void (*adopt_delivery)(void *data, const flowd_stored_delivery_t *d);
    /* How many more deliveries it may take (--webhook-max-pending less those it owes). */
    uint64_t (*delivery_room)(void *data);
    /* A limited job's slot may have come free on some instance: the jobs that wait ask again. */
    void (*poke)(void *data);
} flowd_store_hooks_t;

typedef void (*flowd_store_wake_cb)(void *data, int why);
typedef void (*flowd_store_sent_cb)(void *data, int rc, unsigned status, char *body, size_t len);
typedef int (*flowd_store_event_cb)(void *data, const flowd_stored_event_t *ev);

typedef struct flowd_store_cluster_ops {
    int (*attach)(flowd_store_t *store, const flowd_store_hooks_t *hooks);
    void (*event)(flowd_store_t *store, struct flowd_job *job, uint64_t id, const char *data,
                  size_t len);
    void (*answer)(flowd_store_t *store, uint64_t token, unsigned status, char *body, size_t len);
    /* job borrowed; 0 or FLOW_ENOMEM (then done will not run) */
    int (*acquire)(flowd_store_t *store, struct flowd_job *job, unsigned flow_limit, int behind,
                   flowd_store_slot_cb done, void *data);
    /* by id, or by idem_key (and a tenant) when id is NULL; FLOW_ENOTFOUND */
    int (*read_job)(flowd_store_t *store, const char *id, const char *idem_key, const char *tenant,
                    unsigned what, flowd_remote_job_t *out);
    int (*read_jobs)(flowd_store_t *store, int status, const char *flow, const char *tenant,
                     uint64_t cursor, size_t limit, flowd_remote_job_t *out, size_t *n,
                     uint64_t *next);
    int (*count_jobs)(flowd_store_t *store, const char *flow, const char *tenant,
                      uint64_t by_status[6]);
    /* at most max events, oldest first */
    int (*read_events)(flowd_store_t *store, const char *id, uint64_t after, size_t max,
                       flowd_store_event_cb each, void *data);
    int (*watch)(flowd_store_t *store, const char *id, uint64_t after, uint64_t timeout_ms,
                 flowd_store_wake_cb wake, void *data);
    void (*unwatch)(flowd_store_t *store, void *data);
    int (*send)(flowd_store_t *store, const char *id, int cancel, const char *value,
                flowd_store_sent_cb done, void *data);
    void (*remote_stop)(flowd_store_t *store);
    /* The job's callback (compact JSON, or NULL: *callback malloc'd) and its deliveries, newest
     * first, to each (borrowed for the call); FLOW_ENOTFOUND without the job (or of another
     * tenant, when tenant is not NULL). */
    int (*read_deliveries)(flowd_store_t *store, const char *id, const char *tenant,
                           char **callback, flowd_store_delivery_cb each, void *data);
} flowd_store_cluster_ops_t;

#endif
