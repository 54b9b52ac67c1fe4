/* ring.h: a job's recent events (the last --events-limit), each with an id that counts up from 1
 * and its `data` already serialized (compact JSON), and the JSON of those events. A record of the
 * job table (jobs.h) holds one, under its lock: the loop appends (bridge.c), HTTP threads read it
 * (event streams, events.h; a done job's history, render.h); the store reads the last event id.
 * Knows nothing of records, so that jobs.h can hold a ring without depending on events.h. */
#ifndef FLOWD_RING_H
#define FLOWD_RING_H

#include <stdint.h>

#include "flow.h"
#include "jsonw.h"

typedef struct flowd_event {
    uint64_t id;
    uint64_t seq;       /* a step event's step (flow_step_t.seq); 0 for status events */
    const char *data;   /* compact JSON: malloc'd, or a static string when is_static */
    uint32_t len;
    uint8_t type;       /* flow_event_type_t */
    uint8_t final;      /* the job's last event */
    uint8_t is_static;
} flowd_event_t;

#define FLOWD_RING_INLINE 4 /* a short job's events need no allocation of their own */

typedef struct flowd_ring {
    flowd_event_t *ev;       /* small, until more are needed */
    uint32_t cap, len, head; /* the oldest is ev[head] */
    uint32_t limit;
    uint64_t next_id;        /* the id the next event gets */
    flowd_event_t small[FLOWD_RING_INLINE];
} flowd_ring_t;

/* The ring must not move once initialized (ev may point into it). */
void flowd_ring_init(flowd_ring_t *r, unsigned limit);
void flowd_ring_free(flowd_ring_t *r);
/* data: malloc'd and stolen (freed on error too), or static (is_static). seq: see flowd_event_t.
 * Drops the oldest event when full. 0 or FLOW_ENOMEM. */
int flowd_ring_push(flowd_ring_t *r, flow_event_type_t type, int final, uint64_t seq, const char *data,
                    size_t len, int is_static);
/* Whether the ring still holds the step events of the last count steps; if so, and b is not NULL,
 * appends their data, oldest first and comma-separated, to b (a History's "steps" without the
 * brackets). */
int flowd_ring_steps(const flowd_ring_t *r, uint64_t count, flow_buf_t *b);
/* Appends to b the SSE frame of one event: "id: N\nevent: step|status\ndata: DATA\n\n". */
void flowd_sse_frame(flow_buf_t *b, uint64_t id, flow_event_type_t type, const char *data,
                     size_t len);
/* Appends to b the frames of the events after id `after`, until b holds at least max bytes, and
 * first a comment when some of those events are no longer kept. Returns the id of the last event
 * appended (after when none); *final is set when that event is the job's last. */
uint64_t flowd_ring_frames(const flowd_ring_t *r, uint64_t after, flow_buf_t *b, size_t max,
                           int *final);
/* The data JSON of a step event and of a status event (compact, malloc'd; NULL when out of memory).
 * patch: the step's JSON Patch of the shared store (patch.h; compact JSON, patch_len bytes), or
 * NULL for none; waiting_for: compact JSON or NULL; err: NULL when none. */
char *flowd_event_step_json(const flow_step_t *step, const char *patch, size_t patch_len,
                            size_t *len);
char *flowd_event_status_json(flow_status_t status, const char *waiting_for, const flow_error_t *err,
                              size_t *len);
/* The data of a status event without waiting_for and error, as a static string; NULL for waiting
 * (which has a waiting_for). */
const char *flowd_event_status_static(flow_status_t status, size_t *len);
/* The Step object of the API into w (the history uses it too). */
void flowd_step_write(flowd_jw_t *w, const flow_step_t *step);
/* ... with the step's patch (NULL: none) as its "patch" member. */
void flowd_step_write_patch(flowd_jw_t *w, const flow_step_t *step, const char *patch,
                            size_t patch_len);

#endif
