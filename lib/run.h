/* run.h: the running state of jobs, shared by engine.c (jobs, frames, steps, history) and exec.c
 * (one exec: its tries, timers, thread-pool work and input waits).
 *
 * A job runs frames. A frame is one run of a flow's sub-graph (an "orchestration"): it holds the
 * current node and one step, the run of that node. A step of a flow kind owns child frames. The job's
 * top frame is special: its only step runs the definition's root flow and is not counted as a step;
 * a flat job's (a root flow with no prep, post or params) runs the root flow's sub-graph itself.
 * Frames ready to go on are queued on the job (ready list), jobs with ready frames on the engine
 * (run queue), so that no completion ever calls deeper into the C stack than one step: a loop of a
 * million steps runs in constant stack. */
#ifndef FLOW_RUN_H
#define FLOW_RUN_H

#include "flow/queue.h"
#include "internal.h"
#include "timer.h"

enum ctx_state {
    CTX_IDLE = 0,
    CTX_RUNNING,    /* exec called; the node completes it itself */
    CTX_SLEEPING,   /* in flow_sleep */
    CTX_WAITING,    /* in flow_await_input */
    CTX_THREADED,   /* on the thread pool */
    CTX_RETRY_WAIT, /* a try failed; the next starts when the wait timer fires */
    CTX_DONE,       /* result is set */
    CTX_FAILED,     /* err is set; retries and fallback decide */
    CTX_CANCELED
};

struct step;
struct frame;
struct work;

struct ctx_tmo {
    flow__timer_t timer;
    flow_ctx_t *ctx;
};

struct flow_ctx {
    flow_job_t *job;
    struct step *step;          /* NULL in a thread-pool copy */
    const flow_node_t *node;
    json_t *input;              /* borrowed: prep_res, or the batch item */
    json_t *result;             /* owned; the exec's result (set by flow_sleep before it is due) */
    void *data;
    size_t item;
    unsigned attempt;
    uint8_t state;
    uint8_t in_call;            /* inside ops->exec: a completion is recorded, not acted on */
    uint8_t threaded;           /* this is the copy a pool thread works with */
    uint8_t no_retry;           /* the try failed with flow_fail_final: no other try */
    uint64_t retry_after_ms;    /* this try's flow_retry_after: the least wait before the next */
    flow_error_t err;
    flow__timer_t timer;        /* flow_sleep and the wait between tries */
    struct ctx_tmo *tmo;        /* the node's timeout: made at the first try that has one */
    union {                     /* what only one state needs */
        struct {
            json_t *request;    /* CTX_WAITING: owned */
            flow_queue_t node;  /* in the job's waits; once answered, in its answers to finish */
        } wait;
        struct work *work;      /* CTX_THREADED: the try in flight */
        json_t *params;         /* a thread-pool copy: a reference to the resolved params */
    } u;
};

enum step_phase { PH_START = 0, PH_EXEC, PH_POST };

struct step {
    const flow_node_t *node;
    json_t *prep_res;
    json_t *exec_res;
    uint64_t start_ns;
    uint64_t ordinal;           /* the how-manieth step its frame started: its part of the visit */
    uint8_t phase;
    uint8_t filling;            /* starting items: completions only count, the filler goes on */
    unsigned tries;
    /* prep and post; exec of plain and sequential batch nodes. A frame made by frame_new has one
     * in the same allocation. The top frame, which only runs the root flow (a flow kind: prep and
     * post, never an exec), has none: it is given one on the stack for its prep and its post, and
     * keeps its data in job->more->root_data between the two. A flat job's top frame runs the root
     * sub-graph's nodes instead: its ctx is in the job's allocation (flow_job_start). */
    flow_ctx_t *ctx;
    struct batch *b;            /* batch kinds, from their exec on; NULL otherwise */
    struct frame *child;        /* flow and batch flow: the running sub-graph */
    struct notes *notes;        /* NULL until the step logs a line or a try fails */
};

/* What a step has to say in its history entry besides its outcome; most steps have nothing. */
struct notes {
    json_t *logs;               /* NULL, or the lines logged so far (flow_ctx_log) */
    json_t *retries;            /* NULL, or the failed tries so far: {try, item?, error, wait_ms} */
    unsigned logs_dropped;      /* lines past the caps */
};

/* What only a step of a batch kind needs, allocated when its exec starts: most steps are of plain
 * nodes or flows, and every frame has a step. */
struct batch {
    size_t n, next, running, finished;
    json_t *results;            /* results in input order */
    flow_ctx_t *items;          /* parallel batch: one ctx per started item */
    struct frame **children;    /* parallel batch flow: one slot per param set */
};

/* A frame's param set, and its nodes' own params merged with it (for the last node asked). */
struct fparams {
    json_t *set;                /* an object */
    const flow_node_t *node;    /* whose params merged holds */
    json_t *merged;
};

struct frame {
    flow_job_t *job;
    struct step *owner;         /* the flow step this frame runs for; NULL for the top frame */
    const flow_node_t *cur;     /* node of the current step; NULL once the sub-graph has ended */
    struct fparams *params;     /* params given to this sub-graph; NULL: none */
    json_t *result;             /* the last action, a JSON string, once the sub-graph has ended */
    uint64_t started;           /* steps started in this frame (see flow_ctx_visit) */
    uint32_t index;             /* slot in the owner's children (a batch has fewer items) */
    uint16_t depth;             /* documents nest FLOW_DOC_MAX_NESTING deep; frame_new stops at 65535 */
    uint8_t in_ready;
    flow_queue_t ready_node;    /* in the job's ready frames, while in_ready */
    struct step step;
};

/* A step is always its frame's: the frame is found from it, not kept in it. */
#define STEP_FRAME(s) ((struct frame *)((char *)(s) - offsetof(struct frame, step)))

typedef struct hist_entry {
    flow_step_t pub;
    char *own_action;
    char *own_message;
    json_t *own_logs;
    json_t *own_retries;
} hist_entry_t;

/* A job's history: a ring of entries, allocated with its first step's end and grown to the
 * engine's history_limit. */
struct hist {
    unsigned cap, len, head;
    uint64_t failed, retries, dropped; /* flow_history_totals_t's, over the whole job */
    hist_entry_t e[];
};

/* What some jobs need and most do not: a job has it only once one of these is used (the options
 * that set them, or a wait for input), so that a million plain jobs do not carry it. */
struct job_more {
    flow_job_t *job;
    char *traceparent;          /* NULL, or a valid one (flow_traceparent_valid) */
    uint64_t max_steps;
    uint64_t deadline_ms;
    flow__timer_t deadline;
    flow_queue_t waits;         /* ctxs waiting for input, oldest first (u.wait.node) */
    flow_queue_t defers;        /* answered ctxs whose exec is to finish (u.wait.node) */
    const flow_node_t *resume_node; /* where the root flow's sub-graph starts, once */
    unsigned resume_tries;
    uint64_t resume_visits;     /* root-level steps started before resume_node */
    void *root_data;            /* the root flow's ctx data, from its prep to its post */
    size_t log_bytes;           /* bytes of lines its steps logged and kept */
    flow_error_t error;         /* once it failed or was canceled (job_fail) */
};

struct flow_job {
    flow_engine_t *eng;
    flow_def_t *def;
    json_t *shared;
    char *id;
    struct job_more *more;      /* NULL until needed */
    flow_status_t status;
    unsigned pending;           /* thread-pool work that still points at the job */
    flow_event_cb on_event;
    flow_done_cb on_done;
    void *data;
    struct frame top;
    flow_queue_t ready;         /* frames with a step to run (struct frame's ready_node) */
    flow_queue_t runq_node;     /* in the engine's run queue, while in_runq */
    flow_queue_t jobs_node;     /* in the engine's live jobs */
    /* A flat job (flow_job_start: a root flow that is only its sub-graph): top runs that sub-graph
     * at depth 1, and its step's ctx follows this struct in the job's allocation. */
    uint8_t in_runq;
    uint8_t running;            /* inside job_run */
    uint8_t final;              /* status is final; what is left is finalize */
    uint8_t finalized;          /* on_done has run; memory goes when pending reaches 0 */
    uint64_t started_steps;
    const flow_node_t *current;
    const char *last_action; /* a history entry's, or root_action once the root flow ended */
    char *root_action;       /* what the root flow's post returned */
    struct hist *hist;          /* NULL until a step has ended */
    uint64_t steps;             /* finished steps (the history counts the rest) */
    uint64_t created_us, started_us, finished_us;
    /* The top-level keys of shared that nodes wrote since flow_job_take_touched (an object whose
     * members are true; NULL: none), or touched_all when a node may have written any (a C node,
     * which says nothing of its writes): what a checkpoint's patch is made of (flow.h). */
    json_t *touched;
    uint8_t touched_all;
};

struct flow_engine {
    uv_loop_t *loop;
    uv_idle_t idle;
    flow__timers_t *timers;
    unsigned history_limit;
    unsigned step_budget;
    unsigned budget;            /* steps left in the running job's turn (job_run) */
    uint64_t turn_ns;           /* uv_hrtime() at the first step of that turn; 0 before it */
    unsigned log_lines;
    size_t log_line_bytes;
    size_t log_job_bytes;
    json_t *empty;              /* the params of nodes that have none */
    flow_queue_t runq;          /* jobs with work, in turn (flow_job_t's runq_node) */
    flow_queue_t jobs;          /* live jobs, newest first, for flow_engine_close (jobs_node) */
    size_t njobs;               /* started, on_done not yet run */
    size_t nalloc;              /* not yet freed */
    uint64_t wall0_us;
    uint64_t mono0_ns;
    uint8_t closing;
    uint8_t draining;           /* no step starts any more */
    uint8_t held;               /* no step starts until it is let go (flow_engine_hold) */
    uint8_t idle_closed;
    uint8_t timers_closed;
};

/* exec.c */
void flow__ctx_init(flow_ctx_t *c, flow_job_t *job, struct step *s, json_t *input, size_t item);
/* Runs tries until the exec is in flight (0), has a result in c->result (1), or failed for good (-1,
 * the job has failed). */
int flow__ctx_run(flow_ctx_t *c);
void flow__ctx_cancel(flow_ctx_t *c);  /* stops an exec in flight; nothing of it completes later */
void flow__ctx_release(flow_ctx_t *c); /* cancel, then free what the ctx holds */

/* engine.c */
void flow__exec_finished(flow_ctx_t *c); /* an exec in flight has its result (c->result) */
void flow__exec_failed(flow_ctx_t *c);   /* ... or failed after its retries and fallback */
void flow__job_defer(flow_job_t *job, flow_ctx_t *c); /* finish c on the job's next run */
void flow__job_set_status(flow_job_t *job, flow_status_t status);
void flow__job_unpend(flow_job_t *job);  /* one pending handle or work item is gone */
struct job_more *flow__job_more(flow_job_t *job); /* job->more, made if missing; NULL: no memory */
static inline int flow__job_waits_empty(const flow_job_t *job) {
    return job->more == NULL || flow_queue_empty(&job->more->waits);
}
/* a try failed and another follows after wait_ms: the event, and the step's note of it */
void flow__job_retry(flow_ctx_t *c, uint64_t wait_ms);

#endif
