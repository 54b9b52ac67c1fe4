/* store.h: where jobs are kept beyond the in-memory job table (jobs.h): what every store does.
 * Three stores implement it: memory (nothing is kept: --store memory:), SQLite (the default, a file
 * in --data-dir: nothing accepted is lost to a crash), and PostgreSQL (several flowd instances on
 * one database), which also does what store_cluster.h adds for a store several instances share.
 * The durable ones write through one writer each (store_writer.h: a queue, a thread, group
 * commit).
 *
 * A durable store mirrors the job table: what the table drops (retention, --max-finished), the
 * store deletes, so one flowd reads its store only when it starts again (load). The calls:
 *
 *   create      POST /v1/jobs hands over the new job (its record, shared store and params) before
 *               it answers. done(data, 0) says it is stored: a durable store calls it once the
 *               job's row is committed, and only then does the job get its 202 and start. An
 *               `immediate` store calls done before create returns (the memory store), so the hot
 *               path suspends nothing. done runs exactly once, on any thread; an error answers
 *               500. create returning an error means done will not run.
 *   checkpoint  on the loop thread, after every finished step and at the changes of state a restart
 *               needs (a try failed, the job waits for input): what the job would resume from. Not
 *               waited for: the store queues the write; after a crash a job resumes from its last
 *               committed checkpoint, so the node that was running runs again (at least once).
 *   finish      once, on the loop thread, when the job has ended: its final state is in the record.
 *   remove      the table dropped the job (loop thread): the store deletes it.
 *   load        at start, before the HTTP daemon runs: every job the store holds, oldest first, to
 *               each(); a job that was running resumes, one that was queued or waiting starts
 *               again.
 *   put_flow / load_flows
 *               flows registered or removed through the API (PUT/DELETE /v1/flows/{name}) outlive a
 *               restart: put_flow returns once that is stored (any thread); at start load_flows
 *               gives them back, oldest first, doc NULL for a deletion.
 *   put_schedule / load_schedules / create_run / skip_run
 *               schedules (schedules.h) outlive a restart: put_schedule returns once stored (any
 *               thread); load_schedules gives them back at start; create_run is create for a
 *               schedule's run, whose job row and the schedule's move to its next time are one
 *               transaction, guarded by the time the run was for (compare-and-set: done gets
 *               FLOW_EEXIST, and no job is stored, when the schedule's row has moved on: another
 *               instance made this run, or the schedule changed); skip_run moves the row on for a
 *               run that made no job (loop; not waited for). NULL in the memory store, which keeps
 *               nothing beyond the schedules' table. read_schedules (PostgreSQL only) reads them
 *               again, off the loop, for what other instances changed.
 *   release     loop, at shutdown, before the engine cancels what still runs: from now on nothing
 *               is written of any job, so they are not ended canceled: SQLite keeps them for the
 *               next start; PostgreSQL's close gives them to the other instances (which claim them
 *               at once).
 *   close       at shutdown, on the loop thread, after every other call: flush and free.
 *   delivery    loop: a delivery of a job's callback (webhooks.h) is new (insert: queued before the
 *               job's checkpoint or finish of the same change, so that a job stored as ended has
 *               its delivery stored too), or tried (its state after the try). Not waited for. A
 *               delivery whose id is stored already is not inserted again (a job that runs its
 *               last node again after a crash makes the same one). Once it is over (not pending),
 *               a delivery whose job was removed is deleted; remove deletes a job's deliveries
 *               that are over. NULL: nothing is kept (the memory store).
 *   load_deliveries
 *               at start, after load: every delivery kept, oldest first, to each() (SQLite; on
 *               PostgreSQL they are claimed as jobs are, store_cluster.h).
 */
#ifndef FLOWD_STORE_H
#define FLOWD_STORE_H

#include <stdio.h>

#include "flow.h"

struct flowd_job;

typedef struct flowd_store flowd_store_t;

/* err: 0 when the job is durably stored, else a FLOW_E* code. */
typedef void (*flowd_store_done_cb)(void *data, int err);

/* A limited job's turn over every instance (store_cluster.h: acquire), once, on a store thread:
 * verdict as flowd_sched_answer's (0: its turn came, FLOWD_SCHED_KEY_FULL or
 * FLOWD_SCHED_FLOW_FULL: not yet, or a FLOW_E* code). */
typedef void (*flowd_store_slot_cb)(void *data, int verdict);

/* What a job resumes from (everything borrowed for the call, but shared). */
typedef struct flowd_checkpoint {
    flow_status_t status;
    const char *resume_node;   /* the root flow's node that runs next (NULL: its start) */
    unsigned tries;            /* tries of resume_node already used */
    uint64_t steps;            /* steps finished */
    uint64_t visits;           /* root-level steps finished: what a job taken over numbers its
                                * visits on from (flow_job_opts_t resume_visits) */
    uint64_t started_us;
    char *shared;              /* compact JSON of the shared store after the step (malloc'd: the
                                * store takes it, and frees it when it writes nothing), or NULL when
                                * it did not change; in a store with patches (ops->patches), NULL
                                * but at a snapshot: the step's entry carries its patch */
    size_t shared_len;
    uint64_t shared_step;      /* with shared: the step it is as of (the job's steps then) */
    uint64_t base_step;        /* the step a redrive would start from the store of (jobs.h
                                * run.base_step): a store with patches keeps what makes it again */
    const char *step;          /* the finished step's history entry (JSON text), or NULL */
    uint64_t step_seq;
    size_t step_len;
    const char *waiting_for;   /* compact JSON of what the job waits for, or NULL */
    uint64_t event_id;         /* with step: the id its event gets in the job's event ring */
    const char *last_action;   /* the action of the job's last finished step, or NULL */
} flowd_checkpoint_t;

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
    const char *callback;      /* its "callback" as compact JSON (webhooks.h), or NULL */
    uint64_t start_at_us;      /* when it may start (0: at once) */
    unsigned priority;         /* 0 to 9 */
    const char *conc_key;      /* its evaluated concurrency key, or NULL */
    unsigned conc_limit;
    json_t *params;            /* NULL: none */
    json_t *shared;            /* as of its last checkpoint (its final store once it has ended) */
    const char *resume_node;   /* also: a queued job a redrive made starts there (origin) */
    unsigned tries;
    uint64_t steps;
    const char *last_action;
    /* a job that failed or was canceled: its store before the root-level step that failed (or was
     * running), compact JSON, which a redrive starts from at resume_node; NULL: not kept */
    const char *base_shared;
    int at_base_step;          /* a store with patches: base_step is kept instead of base_shared */
    uint64_t base_step;
    const char *origin;        /* a job a redrive made: {"job", "node"} (compact JSON), or NULL */
    const char *traceparent;   /* the W3C trace context of the POST that made it, or NULL (the
                                * store keeps what it was given: the restore checks it) */
    const char *waiting_for;
    int error_code;
    const char *error_message, *error_node;
    json_t *history;           /* array of history entries (Step objects), oldest first */
    int has_visits;            /* a store that keeps a job's root-level steps finished (visits)
                                * apart from its history, which may hold only the last ones */
    uint64_t visits;
    json_t *totals;            /* {"steps", "failed", "retries", "dropped"} of an ended job, or
                                * NULL */
    /* A shared store gives the last events too, with their ids, so that an event stream resumed on
     * another instance (Last-Event-ID) goes on where it was; NULL: the ring is made from
     * history. */
    const flowd_stored_event_t *events;
    size_t nevents;
} flowd_stored_job_t;

/* A schedule as a store gives it back at start (borrowed for the call). */
typedef struct flowd_stored_schedule {
    const char *name;
    const char *tenant;        /* its jobs' (the tenant of the key that PUT it) */
    const char *definition;    /* compact JSON: cron, timezone, flow, shared, params, overlap,
                                * paused */
    int64_t next;              /* its next run, seconds since the epoch (0: none: paused) */
    const char *last_job;      /* the job of its last run, or NULL */
    int64_t last_run;          /* the time that run was for (0: none) */
    int last_job_active;       /* read_schedules: that job has not ended (0 from load_schedules) */
} flowd_stored_schedule_t;

/* A run of a schedule: the schedule's row moves from due to next (seconds since the epoch); at is
 * the time the run is for (due, or for a run made late, the latest time it missed). */
typedef struct flowd_schedule_run {
    const char *name;
    int64_t due, next, at;
} flowd_schedule_run_t;

typedef int (*flowd_store_each_cb)(void *data, const flowd_stored_job_t *job);
typedef int (*flowd_store_schedule_cb)(void *data, const flowd_stored_schedule_t *s);
/* A delivery of a job's callback (webhooks.h) as a store keeps it (borrowed for the call). */
typedef struct flowd_stored_delivery {
    const char *id;            /* the webhook-id: the same at every try, before and after a restart */
    const char *job;           /* the job's id */
    const char *tenant;        /* whose secrets sign it */
    const char *url;
    const char *type;          /* the event: "job.succeeded", "job.waiting", ... */
    const char *body;          /* the JSON sent, the same at every try */
    uint64_t created_us;       /* when its event happened */
    const char *state;         /* "pending", "delivered", "failed" or "gone" */
    unsigned attempts;
    uint64_t next_us;          /* wall clock of the next try; 0: none */
    long last_status;          /* of the last try; 0: no answer */
    const char *last_error;    /* NULL: none */
    const char *tries;         /* compact JSON array of the last tries (webhooks.c) */
} flowd_stored_delivery_t;

typedef int (*flowd_store_each_cb)(void *data, const flowd_stored_job_t *job);
typedef int (*flowd_store_delivery_cb)(void *data, const flowd_stored_delivery_t *d);
typedef int (*flowd_store_flow_cb)(void *data, const char *name, json_t *doc);

/* What every store does; the durable ones write through store_writer.h. */
typedef struct flowd_store_ops {
    const char *name;
    int immediate; /* create always calls done before it returns */
    /* Checkpoints as patches (patch.h): a step's checkpoint carries its history entry with the
     * patch of what it changed in the shared store ("patch"), and the whole store only every
     * --snapshot-steps steps or --snapshot-bytes of patches (shared, shared_step); load gives back
     * the last whole store with the patches after it applied. Every store with checkpoints has
     * them (a redrive's starting store is made again from them: bridge.c keeps no copy); 0 for
     * the memory store, which has no checkpoints. */
    int patches;
    int (*create)(flowd_store_t *store, struct flowd_job *job, json_t *shared, json_t *params,
                  flowd_store_done_cb done, void *data);
    /* NULL: nothing is kept (the memory store) */
    void (*checkpoint)(flowd_store_t *store, struct flowd_job *job, const flowd_checkpoint_t *cp);
    void (*finish)(flowd_store_t *store, struct flowd_job *job);
    void (*remove)(flowd_store_t *store, const char *id);
    int (*load)(flowd_store_t *store, flowd_store_each_cb each, void *data);
    int (*put_flow)(flowd_store_t *store, const char *name, json_t *doc); /* doc NULL: deleted */
    int (*load_flows)(flowd_store_t *store, flowd_store_flow_cb each, void *data);
    void (*release)(flowd_store_t *store); /* NULL: nothing to keep (the memory store) */
    void (*close)(flowd_store_t *store); /* frees the store */
    /* schedules; NULL: nothing is kept (the memory store) */
    int (*put_schedule)(flowd_store_t *store, const char *name,
                        const flowd_stored_schedule_t *s); /* s NULL: deleted */
    int (*load_schedules)(flowd_store_t *store, flowd_store_schedule_cb each, void *data);
    int (*create_run)(flowd_store_t *store, struct flowd_job *job, json_t *shared, json_t *params,
                      const flowd_schedule_run_t *run, flowd_store_done_cb done, void *data);
    void (*skip_run)(flowd_store_t *store, const flowd_schedule_run_t *run);
    /* a store shared by several instances: the schedules as they are now (what the other instances
     * changed and ran), blocking: never on the loop; NULL for a store of one instance */
    int (*read_schedules)(flowd_store_t *store, flowd_store_schedule_cb each, void *data);
    /* NULL: nothing is kept (the memory store); load_deliveries NULL also for PostgreSQL, whose
     * instances claim the deliveries nobody holds (store_cluster.h) */
    void (*delivery)(flowd_store_t *store, const flowd_stored_delivery_t *d, int insert);
    int (*load_deliveries)(flowd_store_t *store, flowd_store_delivery_cb each, void *data);
    /* A store with patches: flowd_store_shared_at's work (below), blocking; NULL: none kept. */
    int (*shared_at)(flowd_store_t *store, const char *id, uint64_t step, json_t **out,
                     uint64_t *oldest);
    /* Operations queued for the store's writers and not yet written, any thread (the bridge holds
     * the engine past --store-backlog); NULL: nothing is queued (the memory store). */
    size_t (*backlog)(flowd_store_t *store);
} flowd_store_ops_t;

struct flowd_store_cluster_ops;

/* What every store starts with; a store's own struct embeds it first. */
struct flowd_store {
    const flowd_store_ops_t *ops;
    /* A store shared by several instances: what only it does (store_cluster.h); NULL for the
     * others. */
    const struct flowd_store_cluster_ops *cluster;
};

/* What the stores are opened with, besides their spec. */
typedef struct flowd_store_opts {
    const char *data_dir;      /* where a relative sqlite:PATH is (made if needed) */
    const char *sync;          /* SQLite: as for flowd_store_sqlite_new */
    unsigned shards;           /* SQLite: as for flowd_store_sqlite_new */
    /* PostgreSQL */
    uint64_t lease_ms;         /* how long a job's owner may go without renewing its lease */
    uint64_t claim_ms;         /* how often an instance looks for jobs to take over */
    uint64_t poll_ms;          /* how often it looks for commands, answers and events it was not
                                * told of */
    uint64_t retention_ms;     /* ended jobs older than this are deleted, whoever ran them */
    unsigned events_limit;     /* events given back with an adopted job */
    unsigned pool;             /* connections for the HTTP threads' reads */
} flowd_store_opts_t;

/* Opens the store spec names: "memory:", "sqlite:PATH", or a "postgresql://..." URI. On error, err
 * (errlen bytes) says why. */
int flowd_store_open(const char *spec, const flowd_store_opts_t *opts, flowd_store_t **out,
                     char *err, size_t errlen);

/* The memory store: jobs live only in the job table. */
int flowd_store_memory_new(flowd_store_t **out);

/* SQLite in WAL mode at path, written by a store thread that commits what comes together in one
 * transaction (group commit); sync is "full" (fsync at each commit: survives power loss) or
 * "normal" (survives a crash of flowd). A new store is made of shards files (1 to
 * FLOWD_SQLITE_MAX_SHARDS; 0 is 1), each with its own store thread, named by
 * flowd_store_sqlite_file; a store made before keeps the count it was made with. */
enum { FLOWD_SQLITE_MAX_SHARDS = 64 }; /* --store-shards's bound (config.c) */
/* How many of a job's last steps load gives back in its history (as an event ring holds:
 * --events-limit; 0: 1000), besides those that make its shared store again. A SQLite store. */
void flowd_store_sqlite_set_history(flowd_store_t *store, unsigned steps);
int flowd_store_sqlite_new(const char *path, const char *sync, unsigned shards,
                           flowd_store_t **out, char *err, size_t errlen);
/* The file of a sqlite:PATH spec (a relative PATH is in data_dir), len bytes at out; FLOW_EINVAL
 * when spec is not sqlite:. */
int flowd_store_sqlite_path(const char *spec, const char *data_dir, char *out, size_t len);
/* flowd backup: copies every file of the SQLite store at path into the directory dest (made if
 * needed; a file already there is not overwritten) with SQLite's online backup, while flowd may be
 * writing them; each copy is a consistent snapshot of its file, and a job's rows are all in one
 * file. Says what it copied on out. 0, or an error with err set. */
int flowd_store_sqlite_backup(const char *path, const char *dest, FILE *out, char *err,
                              size_t errlen);
/* The path of file i of the store at path (len bytes at out): path itself for 0, then data/x.1.db,
 * data/x.2.db, ... for data/x.db (or path.1, ... without the .db). */
void flowd_store_sqlite_file(const char *path, unsigned i, char *out, size_t len);

/* PostgreSQL at uri, for several flowd instances on one database (store_postgres.c). */
int flowd_store_postgres_new(const char *uri, const flowd_store_opts_t *opts, flowd_store_t **out,
                             char *err, size_t errlen);

/* The shared store of the job id as of after its step `step` (before: as of before that step,
 * which is after step - 1; step 0 after is the store it started with), from the store's log: the
 * last whole store at or before it and the patches after (a live job's steps queued for the store
 * are in it: the read is made after them). For GET /v1/jobs/{id}/shared?step=N, redrive and fork.
 *
 * Blocking (a read of the store): any thread but the loop's. Ownership: id borrowed; on 0, *out is
 * a new reference the caller owns (an object; changing it changes nothing kept); otherwise *out is
 * NULL. Errors: FLOW_ENOTFOUND when the store has no such job or the job has not finished that
 * step (for before: step 0 has no before, FLOW_EINVAL); FLOW_ESTATE when that step's store is no
 * longer kept (before the job's last whole store: --snapshot-steps and --snapshot-bytes say how
 * often one is written) or the store keeps none (memory:); *oldest (may be NULL) then
 * gets the first step that is kept (0 when none is). FLOW_ENOMEM, FLOW_EIO. */
int flowd_store_shared_at(flowd_store_t *store, const char *id, uint64_t step, int before,
                          json_t **out, uint64_t *oldest);

/* For the stores that read rows back: the FLOW_E* code of a flow_err_name, FLOW_EFAILED for one
 * this flowd does not know, 0 for NULL. */
int flowd_store_error_code(const char *name);

#endif
