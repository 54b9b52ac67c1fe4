/* schedules.h: schedules, flows started on a cron (cron.h) in a time zone, as jobs of the tenant of
 * the key that PUT them: the table of schedules, its timer on the loop, and what the routes of
 * /v1/schedules (http_schedules.c) do with it.
 *
 * A run is a job made the way POST /v1/jobs makes one (flowd_jobs_create: --max-jobs and the
 * tenant; the store's create: stored before it starts; flowd_bridge_start), by the loop when the
 * schedule's next time comes. With a durable store the job's row and the schedule's move to its
 * next time are one transaction, guarded by the time the run was for (a compare-and-set on the
 * schedule's row): on PostgreSQL, when two instances hold the same schedule, only one of them
 * makes each run; the other drops its record. A run missed while flowd was down is made once at
 * start (only the latest of them). overlap says what a run does while the previous run's job has not
 * ended: skip (it is skipped, and counted), allow, or cancel_previous.
 *
 * With a store shared by several instances (PostgreSQL) each instance reads the schedules again
 * every --poll-interval, off the loop (libuv's pool), and takes what the others changed: added,
 * replaced, paused, deleted, and the runs they made (their next times and last jobs, and whether
 * those jobs still run, for overlap).
 *
 * Threads. The table is under a mutex: HTTP threads read and change it (one change at a time, each
 * stored first: PUT, DELETE, pause and resume wait for the store's commit without holding the
 * table's lock), the loop reads it to start runs and writes what they did. The loop's timer is set
 * for the earliest next time (at most a minute ahead, so that a wall clock that jumps is seen);
 * HTTP threads wake the loop (uv_async) after a change. */
#ifndef FLOWD_SCHEDULES_H
#define FLOWD_SCHEDULES_H

#include <stdint.h>

#include "cron.h"
#include "flow/buf.h"

struct flowd_server;
typedef struct flowd_schedules flowd_schedules_t;

typedef enum flowd_overlap {
    FLOWD_OVERLAP_SKIP = 0,
    FLOWD_OVERLAP_ALLOW,
    FLOWD_OVERLAP_CANCEL_PREVIOUS
} flowd_overlap_t;

#define FLOWD_SCHEDULE_NEXT_RUNS 5 /* next times a schedule's GET shows */

/* What a PUT asks for (strings borrowed for the call; shared and params compact JSON, params
 * NULL for none). */
typedef struct flowd_schedule_spec {
    const char *name;
    const char *cron;
    const char *timezone;
    const char *flow;
    const char *shared;
    const char *params;
    flowd_overlap_t overlap;
    int paused;
    const char *tenant;        /* interned (auth.h) */
} flowd_schedule_spec_t;

/* Loop, at start, after the jobs are back (recover) and before the HTTP daemon: the table, with the
 * schedules the store keeps; a run missed while flowd was down starts at the loop's first turn. 0,
 * or a FLOW_E* code after logging. */
int flowd_schedules_new(struct flowd_server *srv, flowd_schedules_t **out);
/* Loop, at shutdown, before the store is closed: no refresh reads the store from now on (one under
 * way is waited for: it is a read of the database). NULL is ignored. */
void flowd_schedules_quiesce(flowd_schedules_t *s);
/* Loop, at shutdown, after the store is closed: no run starts any more; the memory goes with the
 * handles' close callbacks and the refresh under way, if any (run the loop). NULL is ignored. */
void flowd_schedules_close(flowd_schedules_t *s);

/* HTTP threads. The answers are JSON text (the Schedule of api/openapi.yaml) into b.
 *   put      adds (*created 1) or replaces the schedule: 0; FLOW_EINVAL with why in err (422: the
 *            cron, its zone, or a cron that never runs); FLOW_EBUSY past --max-schedules; FLOW_EIO
 *            when the store did not take it.
 *   get      FLOW_ENOTFOUND.
 *   list     a page by name after cursor (NULL: from the first); *more when there are more.
 *   remove   FLOW_ENOTFOUND, FLOW_EIO.
 *   pause    paused 1 pauses, 0 resumes (from now: the runs missed while paused are not made);
 *            FLOW_ENOTFOUND, FLOW_EIO. */
int flowd_schedules_put(flowd_schedules_t *s, const flowd_schedule_spec_t *spec, int *created,
                        flow_buf_t *b, char *err, size_t errlen);
int flowd_schedules_get(flowd_schedules_t *s, const char *name, flow_buf_t *b);
int flowd_schedules_list(flowd_schedules_t *s, const char *cursor, size_t limit, flow_buf_t *b);
int flowd_schedules_remove(flowd_schedules_t *s, const char *name);
int flowd_schedules_pause(flowd_schedules_t *s, const char *name, int paused, flow_buf_t *b);

/* The overlap policy's name, and back: 0 or FLOW_EINVAL. */
const char *flowd_overlap_name(flowd_overlap_t o);
int flowd_overlap_parse(const char *name, flowd_overlap_t *out);

/* Counters for /metrics: runs started, skipped (overlap) and failed (no flow, --max-jobs, the
 * store), and the schedules held. Any thread. */
void flowd_schedules_counts(flowd_schedules_t *s, uint64_t *started, uint64_t *skipped,
                            uint64_t *failed, uint64_t *held);

#endif
