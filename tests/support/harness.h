/* harness.h: what the engine's Check tests share: a loop and an engine per test, running a job to its
 * end and keeping what it left behind (the job itself is freed after on_done), and captured logs. */
#ifndef FLOW_TEST_HARNESS_H
#define FLOW_TEST_HARNESS_H

#include <check.h>

#include "flow.h"
#include "flow/netpolicy.h"

typedef struct harness {
    uv_loop_t loop;
    flow_engine_t *eng;
} harness_t;

/* What a job left behind when it ended. */
typedef struct outcome {
    int done;
    flow_status_t status;
    int error;
    char error_message[256];
    char error_node[64];
    json_t *shared;         /* a reference taken in on_done */
    uint64_t steps;
    char last_action[64];
    size_t history_count;
    flow_step_t history[64]; /* the newest 64; strings copied into the arrays below, logs referenced */
    char history_nodes[64][32];
    char history_actions[64][32];
    flow_history_totals_t totals;
    json_t *events;         /* array of strings: "status:running", "step:fetch:suggest", ... */
    json_t *touched;        /* per step, the top-level keys of shared it wrote (flow_job_take_touched)
                             * as an object, or "*" for any */
} outcome_t;

void harness_init(harness_t *h, const flow_engine_opts_t *opts);
/* Closes the engine, runs the loop dry and checks uv_loop_close() == 0, so a leaked handle fails. */
void harness_close(harness_t *h);

/* Starts a job that records into out (zeroed here), without running the loop. */
flow_job_t *harness_start(harness_t *h, flow_def_t *def, json_t *shared, const flow_job_opts_t *opts,
                          outcome_t *out);
/* Starts a job and runs the loop until it has ended. */
void harness_run(harness_t *h, flow_def_t *def, json_t *shared, const flow_job_opts_t *opts, outcome_t *out);
void outcome_clear(outcome_t *out);

/* A definition whose root flow "flow" starts at the node named start (created by the caller). */
flow_def_t *def_new(const char *name, flow_node_t **root);
flow_node_t *node_new(flow_def_t *def, const char *name, flow_kind_t kind, const flow_node_ops_t *ops,
                      void *data);

/* Log lines are captured while capture is on; log_text() is everything since the last reset. */
void log_capture(int on);
const char *log_text(void);

/* Appends a string to the array shared[key], creating it. */
void trace(json_t *shared, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The array shared[key] joined with spaces, in a static buffer. */
const char *joined(json_t *shared, const char *key);

/* Compact JSON text of v, in a static buffer. */
const char *dumps(const json_t *v);

/* An outbound allow or deny list from comma-separated entries (flow/netpolicy.h), as flowd's
 * --allow-outbound takes them; fails the test when one is bad. Release it with flow_netrules_unref. */
flow_netrules_t *rules_of(const char *list);

/* Runs a suite with CK_FORK as set in the environment; exits non-zero on failure. */
int harness_main(Suite *s);

#endif
