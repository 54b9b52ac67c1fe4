/* jobs.h: the job table: a record per job the server holds, found by id, listed newest first, with
 * Idempotency-Key lookups, bounded by retention.
 *
 * Threads. HTTP threads create records (POST /v1/jobs) and read them; the loop thread, which runs the
 * engine, writes their state as the jobs run and evicts finished ones. The table is sharded by id,
 * with a mutex per shard; a record's mutable state is guarded by the lock of its shard
 * (flowd_job_lock). Records are reference-counted (atomically): whoever holds a reference may read
 * the immutable fields without a lock; eviction only takes the table's reference away.
 *
 * Bounds. At most max_jobs records are active (queued, running or waiting): past it create refuses
 * with FLOW_EBUSY. Finished records are kept for `retention` (flowd_jobs_sweep, from a loop timer)
 * and at most max_finished of them: when one more finishes, the oldest finished one goes. */
#ifndef FLOWD_JOBS_H
#define FLOWD_JOBS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "flow.h"
#include "flow/queue.h"
#include "patch.h"
#include "ring.h"

#define FLOWD_ID_LEN 32 /* lowercase hex of 16 bytes: 6 of time, 10 random */
#define FLOWD_PRIORITY_DEFAULT 5 /* a job's priority when its POST names none (0 to 9, 9 first) */
#define FLOWD_PRIORITY_MAX 9
#define FLOWD_CONC_KEY_MAX 256 /* bytes of an evaluated concurrency key */

typedef struct flowd_jobs flowd_jobs_t;
typedef struct flowd_job flowd_job_t;

struct flowd_job {
    /* Immutable once created. */
    char id[FLOWD_ID_LEN + 1];
    uint64_t hash;               /* from the id: shard and bucket */
    uint64_t seq;                /* creation order, for the list and its cursors */
    uint64_t created_us;
    flow_def_t *def;             /* a reference; flow_def_name() is the flow's name */
    const char *tenant;          /* the tenant of the key that made it: interned (auth.h), borrowed
                                  * for as long as the table lives; compared by pointer */
    char *idem_key;              /* the Idempotency-Key that made it, or NULL (one per tenant) */
    uint64_t body_hash;          /* of the request body, with idem_key */
    /* Its "callback" (webhooks.h), set before its start is queued (or at restore), then immutable:
     * the compact JSON kept by the store, the URL and the events asked for (a mask of
     * FLOWD_HOOK_*); all NULL or 0 without one. */
    char *callback;
    char *callback_url;
    unsigned callback_events;
    /* Set by the HTTP thread that made it before its start is queued (origin under the record's
     * lock, as the list may render it; a restored one's by the store's load), then immutable: its
     * params as compact JSON (NULL: none), which a redrive or a fork starts its new job with; and,
     * for a job a redrive made, where it came from: compact JSON {"job": id, "node": the node it
     * started at (null: the flow's start)}; for one a fork made, {"job": id, "step": N} (its start
     * node is restart.node, stored as jobs.resume_node); NULL: a submission. Both are written by
     * http_jobs.c in this form exactly, "job" first (render.c tells them apart by it). */
    char *params_text;
    char *origin;
    char traceparent[56];        /* the W3C trace context of the POST that made it, or "" (set
                                  * before its start is queued; stored with the job, so that it
                                  * calls out with it after a restart or a takeover too) */
    flowd_jobs_t *table;
    atomic_uint refs;
    /* When and in what order it starts (scheduler.h): set under the record's lock by the HTTP
     * thread that made it before its start is queued (a restored one's by the store's load), then
     * never changed. */
    uint64_t start_at_us;        /* wall clock; 0: as soon as there is room */
    unsigned priority;           /* 0 to 9: higher starts first (FLOWD_PRIORITY_DEFAULT) */
    char *conc_key;              /* its evaluated concurrency key (malloc'd), or NULL */
    unsigned conc_limit;         /* with conc_key: jobs of that key (and tenant) running at once */

    /* Under the record's lock: written by the loop, read by HTTP threads. status is atomic too so
     * that the list can filter without taking every record's lock. */
    _Atomic int status;          /* flow_status_t */
    uint64_t started_us, finished_us;
    const char *current_node;    /* borrowed from def, or NULL */
    uint64_t steps;
    char *last_action;           /* NULL, last_action_buf, or malloc'd when longer */
    char *waiting_for;           /* compact JSON, or NULL */
    flow_error_t error;          /* code 0: none */
    uint8_t done;                /* the final state below is written; it never changes again */
    uint8_t gone;                /* another instance took the job over: streams end, nothing is written */
    char *final_shared;          /* compact JSON, once done */
    size_t final_shared_len;
    char *final_history;         /* compact JSON of the History object, once done; NULL when the
                                  * event ring still holds its steps (flowd_render_kept_history) */
    size_t final_history_len;
    uint64_t history_count;      /* once done: steps the history kept */
    flow_history_totals_t totals; /* once done */
    /* Once done, of a job that failed or was canceled with a durable store: what a redrive starts
     * from: the shared store as it was before the root-level step that failed (or was running),
     * compact JSON, and that step's node (NULL: the flow's start). A store with patches keeps
     * the step that store is as of instead (redrive_step when redrive_at_step, read back with
     * flowd_store_shared_at). redrive_shared NULL and redrive_at_step 0: not kept (the memory
     * store keeps no checkpoints, or the job never started). */
    char *redrive_shared;
    size_t redrive_shared_len;
    uint64_t redrive_step;
    int redrive_at_step;
    char *redrive_node;
    char last_action_buf[24];
    flowd_ring_t events;
    /* events.c's lists (events.h): event streams suspended until the next event (under the
     * record's lock), and long polls (loop only). */
    struct flowd_watch *sleepers;
    struct flowd_waiter *waiters;
    /* webhooks.c's: the deliveries of its callback, newest first (under the record's lock; the
     * record holds a reference to each, dropped when it is freed, by deliveries_free: webhooks.c
     * sets it with the first, so that this module needs nothing of webhooks.h) */
    struct flowd_delivery *deliveries;
    void (*deliveries_free)(struct flowd_delivery *list);

    /* The table's own links. */
    flowd_job_t *hnext;          /* bucket chain (shard lock) */
    flowd_job_t *inext;          /* Idempotency-Key chain (idempotency lock) */
    flow_queue_t finished;       /* in the table's finished records, oldest first, once ended (loop only) */
    uint8_t in_table;            /* shard lock */
    uint8_t ended;               /* loop only: flowd_jobs_ended ran */
    struct flowd_tally *tally;   /* its (tenant, flow)'s counts by status: set when it is made,
                                  * NULL once it left the table (loop only then) */

    /* bridge.c's (bridge.h): how the loop runs the job. */
    struct flowd_job_run {
        /* The start hand-off: set by the HTTP thread before the push, taken by the loop. */
        json_t *start_shared, *start_params;
        flowd_job_t *start_next;
        uint8_t store_failed;        /* the store refused it: it ends failed */
        /* Loop only. */
        flow_job_t *job;             /* while the engine runs it */
        struct flowd_cmd *cancels;   /* cancel calls answered once the job has ended */
        struct flowd_cmd *inputs;    /* answers given, answered once the node has taken them */
        flowd_job_t *dirty_next;     /* records whose current node may have moved */
        uint8_t dirty;
        uint8_t cancel_pending;      /* canceled before its start command reached the loop */
        /* where a restart would resume it: the root flow's next node (borrowed from def) and the
         * tries it used; the stores write them with each checkpoint */
        const char *resume_node;
        unsigned resume_tries;
        uint64_t visits;             /* root-level steps finished, from restart.visits on */
        /* with a durable store: the shared store as the root flow's resume_node starts from it
         * (after the last root-level step that succeeded, or the job's first store), compact
         * JSON: not the store after a step inside a sub-flow, nor after a step that failed (a
         * Lua prep may have written it): what a redrive starts from (redrive_shared). NULL: not
         * kept (out of memory, or the memory store). Made by the HTTP thread that submits the job
         * before its start is queued (the text the store's create writes too), else by its
         * start on the loop. */
        char *base;
        size_t base_len;
        /* the step run.base is as of (0: the job's first store); a store with patches keeps no
         * run.base but makes it again from this (store.h: shared_at) */
        uint64_t base_step;
        /* where a step's checkpoint does not serialize the whole store (the memory store, and a
         * store with patches between whole stores): when the shared store's size is counted next
         * (a time, or a step), and what the last count (or whole store) found after which step */
        struct flowd_size_count {
            uint64_t due_ns, due_seq, bytes, seq;
        } size_count;
        /* the top-level keys of the shared store as the last step's patch left them (patch.h),
         * and the steps and bytes of patches since the store was last written whole */
        flowd_patcher_t patcher;
        uint64_t snap_steps, snap_bytes;
    } run;

    /* bridge.c's, loop only: for a job a store gave back at start, where its run picks up. */
    struct flowd_job_restart {
        char *node;
        unsigned tries;
        uint64_t steps;
        uint64_t visits;             /* root-level steps it had finished: its visits number on */
        uint64_t restored_steps;     /* history entries given back by the store, in the ring */
        uint8_t done;                /* given back with nothing left to run: it only has to end */
    } restart;

    /* scheduler.c's, loop only: which of its heaps holds the record, and where; the groups whose
     * slots it holds while it runs. */
    struct flowd_job_sched {
        struct flowd_sched *owner;   /* while it holds a slot */
        struct flowd_heap *heap;     /* NULL: in none */
        size_t idx;
        struct flowd_sched_group *key_group, *flow_group;
        uint8_t slot;                /* it holds a running slot (sched counts it until it ends) */
        uint8_t resumed;             /* it had started before a restart or a takeover: it starts
                                      * again at once, without waiting for room */
        uint8_t woken;               /* taken from a group's waiting jobs to try again: on a
                                      * shared store it asks even while others wait */
    } sched;

    /* store_writer.c's, under its queue's lock (a durable store): the job's last checkpoint with a
     * shared store that is still queued (the store's take count was take), whose store a newer
     * checkpoint then takes the place of: a store that falls behind holds one shared store per
     * job, not one per step. */
    struct flowd_job_queued {
        void *checkpoint;
        uint64_t take;
    } queued;
};

typedef struct flowd_jobs_opts {
    unsigned max_jobs;
    unsigned max_finished;
    uint64_t retention_us;
    unsigned events_limit;
    /* Called on the loop thread for every record retention drops, before the table lets it go. */
    void (*on_evict)(flowd_job_t *job, void *data);
    void *data;
} flowd_jobs_opts_t;

int flowd_jobs_new(const flowd_jobs_opts_t *opts, flowd_jobs_t **out);
/* opts->data, for the engine's callbacks that only have a record at hand. */
void *flowd_jobs_data(flowd_jobs_t *t);
/* Drops every record (no on_evict). Nothing may use the table any more. */
void flowd_jobs_free(flowd_jobs_t *t);

/* A new queued record of def (a reference is taken) for tenant (interned, borrowed), inserted, with
 * a new reference in *out. With key (NULL: none): when a record of this tenant made with this key
 * exists, *out is it (a new reference) and *repeat is set if body_hash matches, or FLOW_EEXIST when
 * it does not; the key is copied. FLOW_EBUSY when max_jobs records are active; FLOW_ENOMEM. Any
 * thread. */
int flowd_jobs_create(flowd_jobs_t *t, flow_def_t *def, const char *tenant, const char *key,
                      uint64_t body_hash, flowd_job_t **out, int *repeat);
/* At start, before the HTTP daemon: a record a store gives back, with its tenant (interned), id,
 * seq (records come oldest first), creation time and Idempotency-Key; queued, not held to
 * max_jobs. A new reference in *out; FLOW_ENOMEM. */
int flowd_jobs_restore(flowd_jobs_t *t, flow_def_t *def, const char *tenant, const char *id,
                       uint64_t seq, uint64_t created_us, const char *key, uint64_t body_hash,
                       flowd_job_t **out);

/* The record with this id (len bytes, need not be NUL-terminated), a new reference; NULL when none. */
flowd_job_t *flowd_jobs_get(flowd_jobs_t *t, const char *id, size_t len);

flowd_job_t *flowd_job_ref(flowd_job_t *job);
void flowd_job_unref(flowd_job_t *job); /* NULL is ignored; the last frees */
void flowd_job_lock(flowd_job_t *job);
void flowd_job_unlock(flowd_job_t *job);
flow_status_t flowd_job_status(const flowd_job_t *job); /* no lock needed */

/* Loop, with the record's lock held: moves the record to status (the table counts by status). */
void flowd_jobs_set_status_locked(flowd_job_t *job, flow_status_t status);
/* Loop, without the lock, once the record's final state is written: it no longer counts as active,
 * and max_finished may evict the oldest finished record. Idempotent. */
void flowd_jobs_ended(flowd_jobs_t *t, flowd_job_t *job);
/* Loop: takes a record out of the table without on_evict, whatever its state (another instance took
 * its job over, and the store keeps that one). The table's reference goes. Idempotent. */
void flowd_jobs_forget(flowd_jobs_t *t, flowd_job_t *job);
/* Loop: evicts finished records older than retention at now_us. Returns how many went. */
size_t flowd_jobs_sweep(flowd_jobs_t *t, uint64_t now_us);

/* A page of the list, newest first: records older than cursor (a seq; 0: from the newest) that
 * have status (-1: any), flow (NULL: any) and tenant (interned; NULL: any). Up to limit new
 * references go to out (limit slots); *next is the cursor of the next page, or 0 on the last page.
 * 0 or FLOW_ENOMEM. Any thread. */
int flowd_jobs_list(flowd_jobs_t *t, int status, const char *flow, const char *tenant,
                    uint64_t cursor, size_t limit, flowd_job_t **out, size_t *n, uint64_t *next);

/* Counts, any thread. */
void flowd_jobs_counts(flowd_jobs_t *t, uint64_t by_status[6]);
/* The records in the table by status that have flow (NULL: any) and tenant (interned; NULL: any),
 * as flowd_jobs_list would list them: from counts kept per (tenant, flow) as records are made,
 * move and go, so the cost is one pass over those pairs, never over the records. */
void flowd_jobs_counts_of(flowd_jobs_t *t, const char *flow, const char *tenant,
                          uint64_t by_status[6]);
uint64_t flowd_jobs_active(flowd_jobs_t *t);
uint64_t flowd_jobs_size(flowd_jobs_t *t); /* records in the table */

/* 32 lowercase hex digits and a NUL: the time in milliseconds (12 digits, so ids sort by when they
 * were made) and 10 random bytes (read from the OS a few KiB at a time per thread). 0, or a negative uv error when the OS gave no randomness. */
int flowd_new_id(char out[FLOWD_ID_LEN + 1]);
/* 64-bit FNV-1a of len bytes, for Idempotency-Key bodies. */
uint64_t flowd_hash_bytes(const void *p, size_t len);

#endif
