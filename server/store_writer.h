/* store_writer.h: the writer of a durable store (store_sqlite.c, store_postgres.c): the queue of
 * typed operations that the loop and the HTTP threads fill, the thread that writes them, batching
 * and group commit, and settling (telling each caller how its operation went). A backend gives
 * what differs between databases: begin, apply one operation, commit, rollback, and optionally a
 * way to recover a lost connection, its own book-keeping after each operation, and periodic work
 * of its own (leases, claims) on the writer's thread.
 *
 * How a batch is written: everything queued while the last batch was being written goes into one
 * transaction (begin, apply each, commit), and only then does each caller hear how it went: a new
 * job's done callback runs after the commit that holds its row, so a 202 means stored. A batch
 * that fails is rolled back; when recover says the connection is back it is tried once more, and
 * then each of its operations alone, so that one bad operation does not take the others down.
 *
 * Several writers may run at once (a store may have several files or connections, each with its
 * writer): a writer keeps the order of what is queued to it, so every operation of one job must go
 * to the same writer. A new kind of operation is a member of flowd_op_kind_t with its struct in
 * flowd_op_t, its constructor here (flowd_writer_*), its free in flowd_op_free, and a case in each
 * backend's apply.
 *
 * Threads: the flowd_writer_* calls run on the loop (checkpoint, event, finish, remove) or on any
 * thread (create, put_flow, answer); the backend's functions all run on the writer's thread. */
#ifndef FLOWD_STORE_WRITER_H
#define FLOWD_STORE_WRITER_H

#include <stdint.h>

#include "jobs.h"
#include "store.h"

typedef enum flowd_op_kind {
    FLOWD_OP_CREATE,     /* a new job's row */
    FLOWD_OP_CHECKPOINT, /* what a job resumes from, with its last step's history entry */
    FLOWD_OP_EVENT,      /* a status event of a job (stores with FLOWD_WRITER_EVENTS) */
    FLOWD_OP_FINISH,     /* a job's end */
    FLOWD_OP_REMOVE,     /* the job table dropped a job: its rows go */
    FLOWD_OP_FLOW,       /* PUT or DELETE /v1/flows/{name} */
    FLOWD_OP_ANSWER,     /* the answer to a command another instance sent (store_cluster.h) */
    FLOWD_OP_SCHEDULE,   /* PUT or DELETE of a schedule, or a run of it that made no job */
    FLOWD_OP_DELIVERY,   /* a delivery of a job's callback: new, or after a try (webhooks.h) */
    FLOWD_OP_SLOT,       /* a limited job asks for its turn over every instance (store_cluster.h) */
    FLOWD_OP_READ,       /* a job's shared store as of a step (store.h: shared_at), read in order
                          * after what was queued before it */
} flowd_op_kind_t;

/* Every string of an operation is malloc'd and the operation's (NULL where there is none);
 * JSON is compact text. */

typedef struct flowd_op_create {
    char *flow;          /* the flow's name */
    char *digest;        /* of the flow's document, NULL for a flow written in C */
    flow_def_t *def;     /* with a digest: a reference, for its document */
    char *document;      /* that document, written once per digest: made by the writer, only */
    int write_document;  /* when it does not know the digest to be stored */
    char *idem_key;
    char *params;        /* NULL: none */
    char *shared;        /* NULL: {} */
    char *tenant;
    char *callback;      /* compact JSON, NULL: none */
    uint64_t created_us, body_hash;
    uint64_t start_at_us;  /* when it may start, 0: at once */
    unsigned priority;
    char *conc_key;        /* NULL: none */
    unsigned conc_limit;
    char *origin;          /* a redrive's job: where it came from (compact JSON), NULL: none */
    char *resume_node;     /* with origin: the node it starts at (NULL: the flow's start) */
    char *traceparent;     /* the W3C trace context of the POST that made it (jobs.h), NULL: none;
                            * kept so that a job resumed after a restart or a takeover calls out
                            * with it still */
    flowd_store_done_cb done; /* with its data: after the commit, once */
    void *data;
    /* a schedule's run (create_run of store.h): its row moves from sched_due to sched_next in the
     * same transaction, or, when it is not at sched_due, the job is not written (rc FLOW_EEXIST) */
    char *sched;
    int64_t sched_due, sched_next, sched_at;
} flowd_op_create_t;

typedef struct flowd_op_checkpoint {
    flow_status_t status;
    char *resume_node;   /* the root flow's node that runs next (NULL: its start) */
    unsigned tries;      /* tries of resume_node already used */
    uint64_t steps, visits, started_us;
    char *shared;        /* NULL: unchanged since the last checkpoint (a store with patches:
                          * no snapshot at this step) */
    uint64_t shared_step; /* with shared: the step it is as of */
    uint64_t base_step;   /* store.h flowd_checkpoint_t */
    char *step;          /* the finished step's history entry, or NULL */
    uint64_t step_seq;
    uint64_t event_id;   /* with step: its event's id (0 without a step) */
    char *waiting_for;
    char *last_action;
    /* FLOWD_WRITER_COALESCE: a later operation of the batch writes the job's row, so this one
     * writes only its step (its shared store, if any, went to the later one) */
    int superseded;
} flowd_op_checkpoint_t;

typedef struct flowd_op_event {
    flow_status_t status;
    uint64_t started_us;
    uint64_t event_id;
    char *data;
    char *waiting_for;
} flowd_op_event_t;

typedef struct flowd_op_finish {
    flow_status_t status;
    uint64_t steps, started_us, finished_us;
    char *shared;
    char *last_action;
    char *error_code;    /* flow_err_name's, or NULL */
    char *error_message, *error_node;
    char *totals;        /* {"steps", "failed", "retries", "dropped"} */
    /* failed or canceled: what a redrive starts from (jobs.h redrive_shared, redrive_node), the
     * row's base_shared and resume_node; base_shared NULL: none kept (resume_node untouched) */
    char *base_shared;
    char *resume_node;
    int at_base_step;    /* a store with patches: base_step instead of base_shared (jobs.h
                          * redrive_step) */
    uint64_t base_step;
    /* FLOWD_WRITER_EVENTS: the job's final event, written in the same transaction (NULL: none) */
    uint64_t event_id;
    char *event;
    int limited;         /* it had a concurrency key or a limited flow: its slot comes free */
} flowd_op_finish_t;

typedef struct flowd_op_flow {
    char *name;
    char *document;      /* NULL: deleted */
    struct flowd_op_wait *wait; /* the caller waits for the commit */
} flowd_op_flow_t;

typedef enum flowd_sched_kind {
    FLOWD_SCHED_PUT = 0, /* the row as it is now (its last run kept) */
    FLOWD_SCHED_DELETE,
    FLOWD_SCHED_SKIP     /* a run that made no job: next moves from due, guarded */
} flowd_sched_kind_t;

typedef struct flowd_op_schedule {
    flowd_sched_kind_t kind;
    char *name;
    char *tenant;        /* PUT */
    char *definition;    /* PUT */
    int64_t due, next;   /* PUT: next; SKIP: from due to next */
    struct flowd_op_wait *wait; /* PUT and DELETE: the caller waits for the commit */
} flowd_op_schedule_t;

typedef struct flowd_op_answer {
    uint64_t token;      /* the command's id */
    unsigned status;
    char *body;
} flowd_op_answer_t;

typedef struct flowd_op_delivery {
    int insert;          /* a new delivery: every field; else only what a try changes */
    char *delivery_id;
    char *tenant, *url, *type, *body; /* insert only */
    uint64_t created_us;
    char *state;
    unsigned attempts;
    uint64_t next_us;
    long last_status;
    char *last_error;
    char *tries;
} flowd_op_delivery_t;

typedef struct flowd_op_slot {
    unsigned conc_limit;  /* the job's key's limit (its key is in its row) */
    unsigned flow_limit;  /* its flow's max_running, 0: none */
    int behind;           /* 0: it asks; FLOWD_SCHED_KEY_FULL or _FLOW_FULL: it only waits for that
                           * group (scheduler.h), which is then the verdict */
    int verdict;          /* set by apply */
    flowd_store_slot_cb done;
    void *data;
} flowd_op_slot_t;
typedef struct flowd_op_read {
    uint64_t step;       /* the store as of after this step */
    json_t **out;        /* the caller's: apply sets a new reference (the caller's once it has
                          * heard 0) */
    uint64_t *oldest;    /* the caller's: the first step whose store is kept */
    struct flowd_op_wait *wait; /* the caller waits for it */
} flowd_op_read_t;

typedef struct flowd_op {
    struct flowd_op *next;   /* the writer's */
    flowd_op_kind_t kind;
    char id[FLOWD_ID_LEN + 1]; /* the job's (not for FLOW and ANSWER) */
    uint64_t seq;            /* the job's place in this instance's table (create to finish) */
    /* Set by apply, for an operation that failed alone while the transaction goes on: its outcome
     * (create: FLOW_EEXIST, the id or Idempotency-Key is taken) */
    int rc;
    /* Set by apply of a shared store: the write was guarded by the job's owner and matched no row
     * (another instance took the job over) */
    int lost;
    union {
        flowd_op_create_t create;
        flowd_op_checkpoint_t checkpoint;
        flowd_op_event_t event;
        flowd_op_finish_t finish;
        flowd_op_flow_t flow;
        flowd_op_answer_t answer;
        flowd_op_schedule_t schedule;
        flowd_op_delivery_t delivery;
        flowd_op_slot_t slot;
        flowd_op_read_t read;
    };
} flowd_op_t;

void flowd_op_free(flowd_op_t *op);

/* The backend's flags. */
enum {
    /* A job's row written several times in one batch is written once: a checkpoint with a later
     * checkpoint or finish of its job in the batch is superseded (the backend writes its step
     * only), and hands its shared store on; a checkpoint still queued gives its shared store up to
     * the job's next one, so that a writer that falls behind holds one store per job, not one per
     * step. */
    FLOWD_WRITER_COALESCE = 1u << 0,
    /* The store keeps events: a finish carries the job's final event. */
    FLOWD_WRITER_EVENTS = 1u << 1,
};

/* What a database gives the writer; data is the backend's, passed to each. Every function runs on
 * the writer's thread. Errors are FLOW_E* codes. */
typedef struct flowd_writer_backend {
    const char *name;    /* for the log */
    unsigned flags;      /* FLOWD_WRITER_* */
    int (*begin)(void *data);
    /* 0 when the transaction can go on (op->rc may hold the operation's own failure), an error when
     * it cannot (the writer rolls back) */
    int (*apply)(void *data, flowd_op_t *op);
    int (*commit)(void *data);
    void (*rollback)(void *data);
    /* Optional, after a failed batch: 0 when the connection was lost and is back, and the batch is
     * worth trying again. */
    int (*recover)(void *data);
    /* Optional: an operation's outcome (0 when committed), before its caller hears it. */
    void (*settled)(void *data, const flowd_op_t *op, int rc);
    /* Optional: periodic work, after each batch and when it is due; returns when it is due next
     * (flow_mono_ms), 0 for not until an operation or flowd_writer_kick comes. */
    uint64_t (*tick)(void *data);
    /* Optional: after the last batch, before the thread ends. */
    void (*stopped)(void *data);
} flowd_writer_backend_t;

typedef struct flowd_writer flowd_writer_t;

/* Starts a writer's thread (be and data borrowed: they outlive it). */
int flowd_writer_new(const flowd_writer_backend_t *be, void *data, flowd_writer_t **out);
/* Writes what is still queued, runs be->stopped, ends the thread and frees w. NULL is ignored. */
void flowd_writer_free(flowd_writer_t *w);
/* Wakes the thread for be->tick (after something changed what it does, e.g. attach). */
void flowd_writer_kick(flowd_writer_t *w);
/* Shutdown (store.h: release): from now on nothing more is written of any job (checkpoint,
 * event, finish, remove are dropped); any thread. */
void flowd_writer_release(flowd_writer_t *w);
int flowd_writer_released(flowd_writer_t *w);
/* Operations queued and not yet written (nor failed); any thread. */
size_t flowd_writer_backlog(flowd_writer_t *w);

/* The calls of store.h, queued: each makes its operation from the job (borrowed) and its
 * arguments. create and put_flow return an error (out of memory) and then queue nothing and call
 * nothing; the others log what they could not queue. */
int flowd_writer_create(flowd_writer_t *w, struct flowd_job *job, json_t *shared, json_t *params,
                        flowd_store_done_cb done, void *data);
void flowd_writer_checkpoint(flowd_writer_t *w, struct flowd_job *job,
                             const flowd_checkpoint_t *cp);
void flowd_writer_event(flowd_writer_t *w, struct flowd_job *job, uint64_t id, const char *data,
                        size_t len);
void flowd_writer_finish(flowd_writer_t *w, struct flowd_job *job);
void flowd_writer_remove(flowd_writer_t *w, const char *id);
/* Waits for the commit; doc borrowed, NULL: deleted. */
int flowd_writer_put_flow(flowd_writer_t *w, const char *name, json_t *doc);
/* create of a schedule's run (store.h: create_run); run borrowed. */
int flowd_writer_create_run(flowd_writer_t *w, struct flowd_job *job, json_t *shared,
                            json_t *params, const flowd_schedule_run_t *run,
                            flowd_store_done_cb done, void *data);
/* Waits for the commit; s borrowed, NULL: deleted. */
int flowd_writer_put_schedule(flowd_writer_t *w, const char *name,
                              const flowd_stored_schedule_t *s);
/* Queued, not waited for. */
void flowd_writer_skip_run(flowd_writer_t *w, const flowd_schedule_run_t *run);
/* d borrowed (copied). */
void flowd_writer_delivery(flowd_writer_t *w, const flowd_stored_delivery_t *d, int insert);
/* A limited job asks for its turn, or with behind only waits (store_cluster.h: acquire); done, if
 * not NULL, runs once, after the commit. 0 or FLOW_ENOMEM (then done will not run). */
int flowd_writer_slot(flowd_writer_t *w, struct flowd_job *job, unsigned flow_limit, int behind,
                      flowd_store_slot_cb done, void *data);
/* store.h's shared_at: waits for the read, made after every operation queued before it (so a
 * running job's last steps are in it). 0 and *out a new reference; FLOW_ENOTFOUND (no such job, or
 * it has not finished that step), FLOW_ESTATE (no longer kept: *oldest is the first step that is),
 * or the backend's error. Never on the loop thread. */
int flowd_writer_read_shared(flowd_writer_t *w, const char *id, uint64_t step, json_t **out,
                             uint64_t *oldest);
/* body stolen (may be NULL). */
void flowd_writer_answer(flowd_writer_t *w, uint64_t token, unsigned status, char *body);

#endif
