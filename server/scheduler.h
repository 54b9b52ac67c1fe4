/* scheduler.h: when queued jobs start, on the loop thread. Between a job's start command
 * (bridge.h) and its engine job sits this scheduler: a job with a start_at in the future waits on
 * one libuv timer (the earliest of them: nothing polls), and a job that is due starts as soon as
 * there is room:
 *
 *   --max-running   jobs running (or waiting for input) on this instance at once;
 *   a flow's max_running   jobs of that flow running at once;
 *   a concurrency key      jobs of the same tenant with the same evaluated key (conc_key) running
 *                          at once, at most each job's conc_limit.
 *
 * Jobs that are due wait in priority order (9 first), then in order of arrival (their creation
 * time, then their id: an order every instance on a shared store sees the same). One
 * that cannot start for its key or its flow steps aside (into that group's own heap) so that the
 * ones behind it of other keys start; when a job of the group ends, the group's first job comes
 * back. Every move is O(log n): no scan over the waiting jobs.
 *
 * On a store several instances share (PostgreSQL), a flow's max_running and a concurrency key hold
 * over all of them, --max-running stays this instance's own: a job of a limited flow or with a key
 * that has room here asks the store for its turn (acquire, answered on the loop by
 * flowd_sched_answer), counted here meanwhile. The store gives it when the jobs of its key (and of
 * its flow) that run on any instance are fewer than the limit and no job of the key that asked
 * before is better (priority, then arrival); otherwise the job waits in its group until poked
 * (flowd_sched_poke: the store saw a slot given back or given somewhere, or its claim interval
 * passed), when each group's first job asks again. A job due while its group waits so does not
 * ask: it waits behind (acquire with behind, which only records it in the store).
 *
 * A job holds its slot from its start until it ends, waiting for input included. A job that had
 * started before a restart (or that another instance ran before this one took it over) starts again
 * at once, counted, even past a limit: the jobs behind it wait until the count is below the limit
 * again. Nothing starts once the server is stopping (the store keeps the jobs for the next start).
 *
 * Ownership: the scheduler holds a reference to every record it keeps (given by add, given back by
 * take or to the start callback). All calls are loop-only. */
#ifndef FLOWD_SCHEDULER_H
#define FLOWD_SCHEDULER_H

#include <stdatomic.h>

#include <uv.h>

#include "jobs.h"

typedef struct flowd_sched flowd_sched_t;

/* Starts job (the scheduler's reference goes with it): the bridge's run_start. */
typedef void (*flowd_sched_start_cb)(void *data, flowd_job_t *job);

/* Asks a shared store for job's turn (job borrowed: the callee keeps its own reference until it
 * calls flowd_sched_answer); flow_limit: its flow's max_running (0: none). 0, or FLOW_ENOMEM:
 * then the job starts without asking. With behind (FLOWD_SCHED_KEY_FULL or FLOWD_SCHED_FLOW_FULL)
 * it does not ask: the job waits here behind others of that group that were told it is full, and
 * the store only records it as waiting, so that the other instances let it go first when it is
 * better (priority, then arrival); no answer comes, and the return value is not looked at. */
typedef int (*flowd_sched_acquire_cb)(void *data, flowd_job_t *job, unsigned flow_limit, int behind);

/* What the store answered: 0 its turn came, FLOWD_SCHED_KEY_FULL or FLOWD_SCHED_FLOW_FULL: not yet,
 * for its key or its flow; a FLOW_E* code: not asked (it asks again when poked). */
enum { FLOWD_SCHED_KEY_FULL = 1, FLOWD_SCHED_FLOW_FULL = 2 };

/* max_running: --max-running. stopping: read before each start (nothing starts once it is set).
 * 0 or FLOW_ENOMEM / FLOW_EIO. */
int flowd_sched_new(uv_loop_t *loop, unsigned max_running, const atomic_int *stopping,
                    flowd_sched_start_cb start, void *data, flowd_sched_t **out);

/* From now on, limited jobs ask acquire(data, ...) for their turn before they start (cluster.c,
 * once attached to a shared store). */
void flowd_sched_set_acquire(flowd_sched_t *s, flowd_sched_acquire_cb acquire, void *data);

/* The store's answer to acquire for job (loop). Nothing when the job left meanwhile. */
void flowd_sched_answer(flowd_job_t *job, int verdict);

/* Slots may have come free on some instance: the first job waiting in each group tries again. */
void flowd_sched_poke(flowd_sched_t *s);

/* 1 when job has a concurrency key or its flow a max_running. */
int flowd_sched_limited(const flowd_job_t *job);

/* A job's start command reached the loop: it waits for its time and its room, or starts now (one
 * that resumes, or must only end). Takes the caller's reference. */
void flowd_sched_add(flowd_sched_t *s, flowd_job_t *job);

/* A job the scheduler still holds (not started): taken out, and the scheduler's reference given to
 * the caller. Returns 1, or 0 when it does not hold job. */
int flowd_sched_take(flowd_sched_t *s, flowd_job_t *job);

/* The job's engine job is done (or it ended without one): its slots are free again, and what
 * waited for them starts. Nothing for a job that held none. It may come after flowd_sched_close
 * (the engine closes after the bridge): the scheduler is freed once the last slot is given back. */
void flowd_sched_done(flowd_job_t *job);

/* Drops every record it holds and closes its timer; the memory goes with the close callback (run
 * the loop). */
void flowd_sched_close(flowd_sched_t *s);

#endif
