/* store.h: where jobs are kept beyond the in-memory job table (jobs.h): the interface a durable store
 * implements. Today the only store is the memory store (store_memory.c), whose calls do nothing and
 * complete at once; the issue "Durable jobs" adds SQLite (WAL, written by a store thread with group
 * commit) and PostgreSQL (several flowd instances). They slot in behind these calls without touching
 * the routes:
 *
 *   create      POST /v1/jobs hands the new job's record to the store before it answers. The job gets
 *               its 202 only once done runs with 0: a durable store calls it after the job's row is
 *               committed. The route suspends its connection until then, unless the store says
 *               `immediate` (done always runs before create returns, as the memory store's does), so
 *               the hot path of the memory store suspends nothing. done runs exactly once, on any
 *               thread, possibly before create returns; an error given to done answers 500 and the
 *               job is not started. create returning an error means done will not run.
 *   checkpoint  after every finished step, on the loop thread, with the step and the shared store as
 *               of that step (borrowed for the call: serialize what you keep). Not waited for: a
 *               durable store queues the write; after a crash the job resumes from its last committed
 *               checkpoint.
 *   finish      once, on the loop thread, when the job has ended; the record holds the final status,
 *               error, shared store and history (compact JSON). Not waited for.
 *   remove      retention dropped the job (on the loop thread); the store may delete it.
 *   close       at shutdown, on the loop thread, after every other call: flush and free.
 *
 * Threads: create runs on HTTP threads, concurrently; everything else on the loop thread. A store
 * must never call back into the server's job table while the caller holds a lock of it: records are
 * passed so that the store may read their immutable fields (id, flow, created time) and take a
 * reference (flowd_job_ref) if it keeps one past the call. Recovery at start (reloading the jobs a
 * durable store holds) will be a sixth call, `load`, made before the HTTP daemon starts. */
#ifndef FLOWD_STORE_H
#define FLOWD_STORE_H

#include "flow.h"

struct flowd_job;

typedef struct flowd_store flowd_store_t;

/* err: 0 when the job is durably stored, else a FLOW_E* code. */
typedef void (*flowd_store_done_cb)(void *data, int err);

typedef struct flowd_store_ops {
    const char *name;
    int immediate; /* create always calls done before it returns */
    int (*create)(flowd_store_t *store, struct flowd_job *job, flowd_store_done_cb done, void *data);
    void (*checkpoint)(flowd_store_t *store, struct flowd_job *job, const flow_step_t *step,
                       json_t *shared);
    void (*finish)(flowd_store_t *store, struct flowd_job *job);
    void (*remove)(flowd_store_t *store, const char *id);
    void (*close)(flowd_store_t *store); /* frees the store */
} flowd_store_ops_t;

/* What every store starts with; a store's own struct embeds it first. */
struct flowd_store {
    const flowd_store_ops_t *ops;
};

/* The memory store: jobs live only in the job table. */
int flowd_store_memory_new(flowd_store_t **out);

#endif
