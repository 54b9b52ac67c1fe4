/* store.h: where jobs are kept beyond the in-memory job table (jobs.h). Three stores implement it:
 * memory (nothing is kept: --store memory:), SQLite (the default, a file in --data-dir: nothing
 * accepted is lost to a crash), and PostgreSQL (several flowd instances on one database).
 *
 * A durable store mirrors the job table: what the table drops (retention, --max-finished), the store
 * deletes, so one flowd reads its store only when it starts again (load). The calls:
 *
 *   create      POST /v1/jobs hands over the new job (its record, shared store and params) before
 *               it answers. done(data, 0) says it is stored: a durable store calls it once the job's
 *               row is committed, and only then does the job get its 202 and start. An `immediate`
 *               store calls done before create returns (the memory store), so the hot path suspends
 *               nothing. done runs exactly once, on any thread; an error answers 500. create
 *               returning an error means done will not run.
 *   checkpoint  on the loop thread, after every finished step and at the changes of state a restart
 *               needs (a try failed, the job waits for input): what the job would resume from. Not
 *               waited for: the store queues the write; after a crash a job resumes from its last
 *               committed checkpoint, so the node that was running runs again (at least once).
 *   finish      once, on the loop thread, when the job has ended: its final state is in the record.
 *   remove      the table dropped the job (loop thread): the store deletes it.
 *   load        at start, before the HTTP daemon runs: every job the store holds, oldest first, to
 *               each(); a job that was running resumes, one that was queued or waiting starts again.
 *   put_flow / delete_flow / load_flows
 *               flows registered or removed through the API (PUT/DELETE /v1/flows/{name}) outlive a
 *               restart: put_flow and delete_flow return once that is stored (any thread); at start
 *               load_flows gives them back, oldest first, doc NULL for a deletion.
 *   close       at shutdown, on the loop thread, after every other call: flush and free.
 */
#ifndef FLOWD_STORE_H
#define FLOWD_STORE_H

#include <pthread.h>

#include "flow.h"

struct flowd_job;

typedef struct flowd_store flowd_store_t;

/* err: 0 when the job is durably stored, else a FLOW_E* code. */
typedef void (*flowd_store_done_cb)(void *data, int err);

/* What a job resumes from (everything borrowed for the call, but shared). */
typedef struct flowd_checkpoint {
    flow_status_t status;
    const char *resume_node;   /* the root flow's node that runs next (NULL: its start) */
    unsigned tries;            /* tries of resume_node already used */
    uint64_t steps;            /* steps finished */
    uint64_t started_us;
    char *shared;              /* compact JSON of the shared store after the step (malloc'd: the
                                * store takes it, and frees it when it writes nothing), or NULL when
                                * it did not change */
    size_t shared_len;
    const char *step;          /* the finished step's history entry (JSON text), or NULL */
    uint64_t step_seq;
    size_t step_len;
    const char *waiting_for;   /* compact JSON of what the job waits for, or NULL */
    uint64_t event_id;         /* with step: the id its event gets in the job's event ring */
    const char *last_action;   /* the action of the job's last finished step, or NULL */
} flowd_checkpoint_t;

/* A job's end as a durable store writes it (finish), copied out of the job's record by
 * flowd_store_end_copy with the job's lock held: every string is new (NULL where the record has
 * none, or when out of memory); flowd_store_end_free frees them. */
typedef struct flowd_store_end {
    flow_status_t status;
    uint64_t steps, started_us, finished_us;
    char *shared;              /* compact JSON */
    char *last_action;
    char *error_code, *error_message, *error_node; /* error_code: flow_err_name's */
    char *totals;              /* {"steps", "failed", "retries", "dropped"} */
} flowd_store_end_t;

void flowd_store_end_copy(struct flowd_job *job, flowd_store_end_t *out);
void flowd_store_end_free(flowd_store_end_t *end);

/* A caller that waits for a store thread (put_flow waits for its commit): init, hand the wait to
 * the thread, which calls flowd_store_wait_done once; flowd_store_wait blocks until then and
 * returns the rc it was given. */
typedef struct flowd_store_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int finished, rc;
} flowd_store_wait_t;

void flowd_store_wait_init(flowd_store_wait_t *w);
void flowd_store_wait_done(flowd_store_wait_t *w, int rc);
int flowd_store_wait(flowd_store_wait_t *w);

/* An event of a job as a shared store gives it back (borrowed for the call). */
typedef struct flowd_stored_event {
    uint64_t id;               /* its id in the job's event stream */
    int type;                  /* flow_event_type_t: FLOW_EVENT_STEP or FLOW_EVENT_STATUS */
    int final;                 /* the job's last event */
    uint64_t seq;              /* a step's seq */
    const char *data;          /* compact JSON */
    size_t len;
} flowd_stored_event_t;

/* A job as a store gives it back at start (borrowed for the call). */
typedef struct flowd_stored_job {
    const char *id;
    uint64_t seq;              /* its place in the order of creation */
    const char *tenant;        /* the tenant of the key that made it; NULL: FLOWD_DEFAULT_TENANT */
    const char *flow;
    const char *flow_document; /* the version of the flow it started with (JSON), or NULL (C) */
    flow_status_t status;
    uint64_t created_us, started_us, finished_us;
    const char *idem_key;
    uint64_t body_hash;
    json_t *params;            /* NULL: none */
    json_t *shared;            /* as of its last checkpoint (its final store once it has ended) */
    const char *resume_node;
    unsigned tries;
    uint64_t steps;
    const char *last_action;
    const char *waiting_for;
    int error_code;
    const char *error_message, *error_node;
    json_t *history;           /* array of history entries (Step objects), oldest first */
    json_t *totals;            /* {"steps", "failed", "retries", "dropped"} of an ended job, or NULL */
    /* A shared store gives the last events too, with their ids, so that an event stream resumed on
     * another instance (Last-Event-ID) goes on where it was; NULL: the ring is made from history. */
    const flowd_stored_event_t *events;
    size_t nevents;
} flowd_stored_job_t;

typedef int (*flowd_store_each_cb)(void *data, const flowd_stored_job_t *job);
typedef int (*flowd_store_flow_cb)(void *data, const char *name, json_t *doc);

/* ---- several instances on one store ----
 *
 * A store shared by several flowd instances (PostgreSQL) has more to do, through the optional ops
 * below (NULL in the memory and SQLite stores, whose one flowd holds every job in its table; the
 * SQLite store has release only):
 *
 *   attach      once, after load, before the HTTP daemon: the store begins to renew the leases of
 *               the jobs this instance runs and to claim others (their owner's lease ran out, or
 *               they were released), which it hands to hooks->adopt; hooks->lost says that another
 *               instance took a job over; hooks->command brings input and cancels sent to other
 *               instances for jobs that run here. The hooks run on the store's threads.
 *   event       loop: a status change the job's event ring got (not its last one, which goes with
 *               finish; a step's event goes with its checkpoint): kept for watchers elsewhere.
 *   answer      any thread: the answer to hooks->command's token (body stolen, may be NULL).
 *   release     loop, at shutdown, before the engine cancels what still runs: from now on nothing
 *               is written for this instance's jobs, so they are not ended canceled: PostgreSQL's
 *               close gives them to the other instances (which claim them at once); SQLite keeps
 *               them for the next start.
 *   read_job, read_jobs, read_events
 *               HTTP threads, blocking: a job, a page of the list (newest first, as
 *               flowd_jobs_list), or the events after an id, as the store has them now (a job that
 *               runs here may be a little ahead in the job table). A tenant (not NULL) leaves out
 *               the jobs of every other tenant: another tenant's job is FLOW_ENOTFOUND.
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
 *               answered now; later ones are refused. */

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
    char *shared;              /* FLOWD_READ_SHARED: compact JSON */
    size_t shared_len;
    char *history;             /* FLOWD_READ_HISTORY: compact JSON array of its last steps */
    size_t history_len;
    flow_history_totals_t totals; /* FLOWD_READ_HISTORY */
} flowd_remote_job_t;

#define FLOWD_READ_SHARED 1u
#define FLOWD_READ_HISTORY 2u

void flowd_remote_job_clear(flowd_remote_job_t *j);

enum { FLOWD_WAKE_EVENTS = 0, FLOWD_WAKE_TIMEOUT, FLOWD_WAKE_STOP };

typedef struct flowd_store_hooks {
    void *data;
    /* A job this instance claimed: it runs here now (sj borrowed for the call). */
    void (*adopt)(void *data, const flowd_stored_job_t *sj);
    /* Another instance took the job over: it must stop here, writing nothing. */
    void (*lost)(void *data, const char *id);
    /* Input (value: borrowed) or a cancel sent elsewhere for a job that runs here; answer(token). */
    void (*command)(void *data, uint64_t token, const char *id, int cancel, json_t *value);
    /* How many more jobs this instance may run (--max-jobs less those it runs). */
    uint64_t (*room)(void *data);
} flowd_store_hooks_t;

typedef void (*flowd_store_wake_cb)(void *data, int why);
typedef void (*flowd_store_sent_cb)(void *data, int rc, unsigned status, char *body, size_t len);
typedef int (*flowd_store_event_cb)(void *data, const flowd_stored_event_t *ev);

typedef struct flowd_store_ops {
    const char *name;
    int immediate; /* create always calls done before it returns */
    int (*create)(flowd_store_t *store, struct flowd_job *job, json_t *shared, json_t *params,
                  flowd_store_done_cb done, void *data);
    /* NULL: nothing is kept (the memory store) */
    void (*checkpoint)(flowd_store_t *store, struct flowd_job *job, const flowd_checkpoint_t *cp);
    void (*finish)(flowd_store_t *store, struct flowd_job *job);
    void (*remove)(flowd_store_t *store, const char *id);
    int (*load)(flowd_store_t *store, flowd_store_each_cb each, void *data);
    int (*put_flow)(flowd_store_t *store, const char *name, json_t *doc); /* doc NULL: deleted */
    int (*load_flows)(flowd_store_t *store, flowd_store_flow_cb each, void *data);
    void (*close)(flowd_store_t *store); /* frees the store */
    /* Several instances on one store: NULL unless the store is shared (see above). */
    int (*attach)(flowd_store_t *store, const flowd_store_hooks_t *hooks);
    void (*event)(flowd_store_t *store, struct flowd_job *job, uint64_t id, const char *data, size_t len);
    void (*answer)(flowd_store_t *store, uint64_t token, unsigned status, char *body, size_t len);
    void (*release)(flowd_store_t *store);
    /* by id, or by idem_key (and a tenant) when id is NULL; FLOW_ENOTFOUND */
    int (*read_job)(flowd_store_t *store, const char *id, const char *idem_key, const char *tenant,
                    unsigned what, flowd_remote_job_t *out);
    int (*read_jobs)(flowd_store_t *store, int status, const char *flow, const char *tenant,
                     uint64_t cursor, size_t limit, flowd_remote_job_t *out, size_t *n,
                     uint64_t *next);
    int (*read_events)(flowd_store_t *store, const char *id, uint64_t after, size_t max,
                       flowd_store_event_cb each, void *data); /* at most max events, oldest first */
    int (*watch)(flowd_store_t *store, const char *id, uint64_t after, uint64_t timeout_ms,
                 flowd_store_wake_cb wake, void *data);
    void (*unwatch)(flowd_store_t *store, void *data);
    int (*send)(flowd_store_t *store, const char *id, int cancel, const char *value, flowd_store_sent_cb done,
                void *data);
    void (*remote_stop)(flowd_store_t *store);
} flowd_store_ops_t;

/* What every store starts with; a store's own struct embeds it first. */
struct flowd_store {
    const flowd_store_ops_t *ops;
};

/* What the stores are opened with, besides their spec. */
typedef struct flowd_store_opts {
    const char *data_dir;      /* where a relative sqlite:PATH is (made if needed) */
    const char *sync;          /* SQLite: as for flowd_store_sqlite_new */
    /* PostgreSQL */
    uint64_t lease_ms;         /* how long a job's owner may go without renewing its lease */
    uint64_t claim_ms;         /* how often an instance looks for jobs to take over */
    uint64_t poll_ms;          /* how often it looks for commands, answers and events it was not told of */
    uint64_t retention_ms;     /* ended jobs older than this are deleted, whoever ran them */
    unsigned events_limit;     /* events given back with an adopted job */
    unsigned pool;             /* connections for the HTTP threads' reads */
} flowd_store_opts_t;

/* Opens the store spec names: "memory:", "sqlite:PATH", or a "postgresql://..." URI. On error, err
 * (errlen bytes) says why. */
int flowd_store_open(const char *spec, const flowd_store_opts_t *opts, flowd_store_t **out, char *err,
                     size_t errlen);

/* The memory store: jobs live only in the job table. */
int flowd_store_memory_new(flowd_store_t **out);

/* SQLite in WAL mode at path, written by a store thread that commits what comes together in one
 * transaction (group commit); sync is "full" (fsync at each commit: survives power loss) or "normal"
 * (survives a crash of flowd). */
int flowd_store_sqlite_new(const char *path, const char *sync, flowd_store_t **out, char *err, size_t errlen);

/* PostgreSQL at uri, for several flowd instances on one database (store_postgres.c). */
int flowd_store_postgres_new(const char *uri, const flowd_store_opts_t *opts, flowd_store_t **out, char *err,
                             size_t errlen);

#endif
