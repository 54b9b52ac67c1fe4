/* events.h: what GET /v1/jobs/{id}/events and the long poll GET /v1/jobs/{id}?wait= are made of.
 *
 * Each job record keeps a ring of its recent events (ring.h) under the record's lock: the loop
 * appends, HTTP threads read; a record also heads the lists of the streams asleep on it and the
 * long polls waiting on it, which are this module's (jobs.h names them only as pointers).
 *
 * An event stream (flowd_watch_t) is an MHD response whose content reader hands out the frames
 * `id: N\nevent: step|status\ndata: {...}\n\n` after the last one it sent. When there is nothing to
 * send it suspends its connection (in the reader, as microhttpd.h allows) and registers as a sleeper
 * on the record; the loop resumes every sleeper when it appends an event, the keep-alive timer when a
 * stream has been quiet for --keepalive (it then sends `: keep-alive`), and shutdown to end them all.
 * A stream ends after the job's final status event. No thread is held by a waiting stream.
 *
 * A long poll (flowd_waiter_t) is loop-side: the HTTP thread suspends its connection and hands the
 * loop the status it saw; the loop resumes the connection when the job's status changes or the wait
 * times out (a uv_timer per waiter), and the HTTP thread then answers with the job as it is.
 *
 * Lock order everywhere: the watch list lock, then a record's lock, then MHD's own. */
#ifndef FLOWD_EVENTS_H
#define FLOWD_EVENTS_H

#include <stdint.h>

#include <microhttpd.h>
#include <uv.h>

#include "flow.h"
#include "jobs.h"
#include "ring.h"

struct flowd_job;
struct flowd_server;

/* ---- event streams (SSE) ---- */

/* An event stream's content reader hands MHD the frames it has made (pend), *off bytes of which it
 * has handed already; cluster.c's streams of jobs elsewhere read the same way. */
/* 1 when all of pend has been handed (it is emptied, for the next frames), else 0. */
int flowd_sse_drained(flow_buf_t *pend, size_t *off);
/* Hands up to max bytes of what is left into buf: what the content reader returns. */
ssize_t flowd_sse_give(flow_buf_t *pend, size_t *off, char *buf, size_t max);

typedef struct flowd_watch flowd_watch_t;
typedef struct flowd_watchers flowd_watchers_t;

int flowd_watchers_new(uint64_t keepalive_ms, flowd_watchers_t **out);
void flowd_watchers_free(flowd_watchers_t *ws); /* after the HTTP daemon stopped */

/* The response of GET /v1/jobs/{id}/events for job (a reference is taken), starting after event
 * last_id (0: from the oldest kept). NULL when out of memory. */
struct MHD_Response *flowd_watch_response(flowd_watchers_t *ws, struct flowd_job *job,
                                          struct MHD_Connection *conn, uint64_t last_id);
/* The loop appended an event to job: wakes its sleeping streams. Call with the record's lock held. */
void flowd_watch_wake_locked(struct flowd_job *job);
/* Loop timer: sends keep-alives on streams quiet for keepalive_ms. */
void flowd_watchers_tick(flowd_watchers_t *ws);
/* Shutdown: every stream ends (after what it has buffered) and no new one waits. */
void flowd_watchers_close_all(flowd_watchers_t *ws);
size_t flowd_watchers_count(flowd_watchers_t *ws); /* streams open */

/* ---- long polls (loop thread only) ---- */

typedef struct flowd_waiter flowd_waiter_t;
typedef struct flowd_waitset flowd_waitset_t;

int flowd_waitset_new(uv_loop_t *loop, flowd_waitset_t **out);
/* Resumes every waiter still waiting and frees the set once their timers have closed (run the loop
 * afterwards). */
void flowd_waitset_close(flowd_waitset_t *set);
/* Waits on job (a reference is taken) until its status is no longer `seen` (or, with a version
 * other than FLOWD_NO_VERSION, until its last event is no longer that one: any change) or wait_ms
 * passes; then sets *done (release order) and resumes conn, which the caller has suspended. 0 or
 * FLOW_ENOMEM. Loop thread. */
#define FLOWD_NO_VERSION UINT64_MAX
int flowd_waiter_add(flowd_waitset_t *set, struct flowd_job *job, flow_status_t seen, uint64_t version,
                     uint64_t wait_ms, struct MHD_Connection *conn, _Atomic int *done);
/* The job changed (a status, a step): resumes its waiters that saw something else (all, once it
 * is gone). */
void flowd_waiters_wake(struct flowd_job *job);
/* Shutdown: resumes every waiter. */
void flowd_waitset_wake_all(flowd_waitset_t *set);
size_t flowd_waitset_count(const flowd_waitset_t *set);

#endif
