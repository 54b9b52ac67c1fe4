/* bridge.h: the hand-off from HTTP threads to the loop thread, and the loop's side of every job.
 *
 * HTTP threads never touch the engine. They push commands on a queue (a mutex and a list) and wake
 * the loop with uv_async_send, which coalesces: one wake-up drains every command queued meanwhile.
 *
 * Starting a job needs no answer from the loop (POST /v1/jobs answers 202 at once). The other
 * commands are "loop calls": the HTTP thread suspends its connection (MHD_suspend_connection) before
 * it pushes the command, the loop does the work, fills the command's reply (status and body), sets
 * reply->ready and resumes the connection; MHD then calls the handler again, which queues the reply.
 * A long poll is a loop call whose reply the HTTP thread writes itself once resumed.
 *
 * On the loop, the engine's callbacks keep each job's record (jobs.h) up to date under its lock:
 * status, times, current node, steps, last action, what it waits for, its error, its events (for
 * event streams, which are woken), and once it ends its final shared store and history as compact
 * JSON; long polls are woken on status changes; the store gets its checkpoints. */
#ifndef FLOWD_BRIDGE_H
#define FLOWD_BRIDGE_H

#include <stdatomic.h>

#include <microhttpd.h>

#include "render.h"
#include "core.h"
#include "scheduler.h"
#include "store.h"

typedef enum flowd_cmd_type {
    FLOWD_CMD_CANCEL = 0,
    FLOWD_CMD_INPUT,     /* value: the answer (stolen) */
    FLOWD_CMD_CALL,      /* call(job, its engine job or NULL, call_data): a read of a job that
                          * runs (snapshot.h); the reply is ready once it returns */
    FLOWD_CMD_WAIT       /* seen, wait_ms: a long poll */
} flowd_cmd_type_t;

/* Where a loop call's answer goes; part of the request, which lives while its connection is
 * suspended. ready is set (release) before the connection is resumed. */
typedef struct flowd_reply {
    atomic_int ready;
    flowd_answer_t answer;
    int location; /* add a Location header for the job */
} flowd_reply_t;

typedef struct flowd_cmd {
    struct flowd_cmd *next;
    flowd_cmd_type_t type;
    flowd_job_t *job;              /* a reference, which the command owns */
    struct MHD_Connection *conn;   /* loop calls: suspended by the pusher */
    flowd_reply_t *reply;          /* loop calls */
    json_t *value;
    json_t *params;
    void (*call)(flowd_job_t *job, flow_job_t *fj, void *data);
    void *call_data;
    flow_status_t seen;
    uint64_t seen_version;         /* FLOWD_CMD_WAIT: FLOWD_NO_VERSION, or the version to wait past */
    uint64_t wait_ms;
    /* A command from another instance (conn NULL): done runs instead of resuming a connection, once
     * reply is filled in; the command is freed after it. */
    void (*done)(struct flowd_cmd *cmd);
    void *done_data;
} flowd_cmd_t;

int flowd_bridge_new(flowd_server_t *srv, flowd_bridge_t **out);

/* Any thread. A new command of type for job (a reference is taken); NULL when out of memory. */
flowd_cmd_t *flowd_cmd_new(flowd_cmd_type_t type, flowd_job_t *job);
void flowd_cmd_free(flowd_cmd_t *cmd);
/* Any thread: queues the start of job (a reference is taken) with its shared store and params
 * (both stolen; params may be NULL). Starts are the hot path: the record itself is the queue's
 * node, so nothing is allocated. Within one drain, starts run before commands; on the loop a start
 * goes to the scheduler (scheduler.h), which runs the job once its time and its turn have come.
 * 0, or FLOW_ESTATE once the bridge is closed. */
int flowd_bridge_start(flowd_bridge_t *b, flowd_job_t *job, json_t *shared, json_t *params);
/* At start, before the HTTP daemon runs, or on the loop when a shared store hands over a job it
 * claimed (its seq 0: it gets a fresh place in the table's order): a job a store gave back becomes a
 * record again (def: the
 * version of its flow it started with, a reference is taken; NULL when that flow cannot be had any
 * more: the job ends failed, saying so). A job that had ended keeps its final state; one that was
 * queued waits for its time and its turn again (scheduler.h); one that was running or waiting
 * resumes at its checkpoint, so that the node it was in runs again. 0 or FLOW_ENOMEM. */
int flowd_bridge_restore(flowd_bridge_t *b, const flowd_stored_job_t *sj, flow_def_t *def);

/* Loop: a job another instance took over (hooks->lost of store.h) stops here without a trace: its
 * engine job is canceled with nothing recorded or stored, its long polls are answered and its event
 * streams end (their clients find the job on the new owner), and the record leaves the table. */
void flowd_bridge_forget(flowd_bridge_t *b, flowd_job_t *job);

/* A shared store's turns for limited jobs (scheduler.h: flowd_sched_set_acquire, flowd_sched_poke);
 * loop. */
void flowd_bridge_set_acquire(flowd_bridge_t *b, flowd_sched_acquire_cb acquire, void *data);
void flowd_bridge_poke(flowd_bridge_t *b);

/* Loop: cancels job as POST /v1/jobs/{id}/cancel does, with no one to answer (a schedule's
 * overlap cancel_previous); one that has ended is left as it is. */
void flowd_bridge_cancel(flowd_bridge_t *b, flowd_job_t *job);

/* Any thread: queues cmd (taken over) for the loop. FLOW_ESTATE once the bridge is closed: the
 * command is freed and, for a loop call, the caller must resume and answer itself. */
int flowd_bridge_push(flowd_bridge_t *b, flowd_cmd_t *cmd);
uint64_t flowd_bridge_depth(flowd_bridge_t *b); /* commands queued */

/* Loop: runs what is queued now (shutdown does, before it stops the HTTP daemon, so that every loop
 * call still finds its connection). */
void flowd_bridge_run(flowd_bridge_t *b);
/* Loop, after the HTTP daemon stopped: runs what is left, refuses what comes later, closes the
 * handles; the memory goes with the last close callback (run the loop). */
void flowd_bridge_close(flowd_bridge_t *b);

#endif
