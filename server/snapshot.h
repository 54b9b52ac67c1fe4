/* snapshot.h: one way to read a job. A job id (for a caller: another tenant's job is not found,
 * as one that does not exist) resolves to a snapshot of the job: from its record when it is local
 * and finished, through the loop when it is local and still running, or from the shared store's
 * row when it runs on another instance. The handlers of http_jobs.c ask for what they need (the
 * Job object, the shared store or the part of it a JSON Pointer names, the History) and render the
 * one snapshot type, whichever way it was read; a new read route needs no loop command and no
 * change to cluster.c or the stores.
 *
 * It knows nothing of HTTP: http_jobs.c turns where a job is into 404 or 503 and suspends a
 * request while the loop reads a running job (bridge.h FLOWD_CMD_CALL with
 * flowd_snapshot_of_engine). */
#ifndef FLOWD_SNAPSHOT_H
#define FLOWD_SNAPSHOT_H

#include <stddef.h>

#include "core.h"
#include "render.h"
#include "store_cluster.h"

/* What a snapshot holds besides where the job is (want, or'ed). A job elsewhere always has its Job
 * fields (they come with the store's row). */
#define FLOWD_SNAP_JOB 4u                   /* the Job object's fields */
#define FLOWD_SNAP_SHARED FLOWD_READ_SHARED /* the shared store, or the part pointer names */
#define FLOWD_SNAP_HISTORY FLOWD_READ_HISTORY
#define FLOWD_SNAP_FLOW FLOWD_READ_DOCUMENT /* the flow version the job started with (def) */
/* a job elsewhere: what a redrive of it takes (store_cluster.h FLOWD_READ_REDRIVE) */
#define FLOWD_SNAP_REDRIVE FLOWD_READ_REDRIVE

/* A job as read once. Everything is the snapshot's (flowd_snapshot_clear); a zeroed one is empty. */
typedef struct flowd_snapshot {
    unsigned want;
    int remote;               /* the job runs on another instance: read from the store's row */
    char id[FLOWD_ID_LEN + 1];
    flowd_job_view_t job;     /* FLOWD_SNAP_JOB, or remote; its strings are the snapshot's */
    uint64_t last_event;      /* FLOWD_SNAP_JOB, or remote: the id of its last event, the Job's
                               * version (its ETag; a long poll waits for a later one) */
    char *pointer;            /* FLOWD_SNAP_SHARED: the JSON Pointer asked for (checked), or NULL */
    /* FLOWD_SNAP_SHARED: the store or its part, compact JSON. rc: 0; FLOW_ENOTFOUND, nothing at
     * the pointer; FLOW_ETOOBIG, over --max-answer; FLOW_ESTATE, the job has none; another, it
     * could not be read. */
    const char *shared;
    size_t shared_len;
    int shared_rc;
    /* FLOWD_SNAP_HISTORY: the History object, compact JSON; rc as for shared */
    const char *history;
    size_t history_len;
    int history_rc;
    /* FLOWD_SNAP_FLOW: the flow version the job started with (a reference): the record's, or built
     * from the document the shared store kept (a flow in C: the one this server has by its name);
     * NULL when this server cannot build it */
    flow_def_t *def;
    /* what the above point into */
    char *strings;            /* the Job fields of a local job */
    char *own_shared, *own_history;
    flowd_job_t *record;      /* a reference: a finished record's final texts are borrowed */
    flowd_remote_job_t row;   /* remote: the store's row */
} flowd_snapshot_t;

void flowd_snapshot_clear(flowd_snapshot_t *s);

/* Any thread but the loop's: where job id is for a caller that sees the jobs of tenant scope (NULL:
 * every tenant's), with s->want set and the rest of s empty. *record is, on entry, a reference to
 * the job's record the caller holds already, or NULL; it is set to the record (a reference the
 * caller owns) or NULL. 0: the job is here (*record); 1: on another instance (s holds the store's
 * row, with what want asks); FLOW_ENOTFOUND: no such job for the caller; another code: the shared
 * store could not be read. */
int flowd_snapshot_locate(flowd_server_t *srv, const char *id, size_t len, const char *scope,
                          flowd_snapshot_t *s, flowd_job_t **record);
/* Any thread but the loop's: what job's record gives of what s->want asks (s->pointer set before,
 * when it asks for the shared store), without the loop. 1 when the rest needs the loop (the job
 * has not ended: its store and history are the engine's): flowd_snapshot_of_engine on the loop
 * reads it, then. s keeps a reference to the record. */
int flowd_snapshot_of_record(flowd_snapshot_t *s, flowd_job_t *job);
/* Loop thread (a FLOWD_CMD_CALL's call, data: the snapshot): the parts of a job that runs, from its
 * engine job fj (NULL once it has ended). */
void flowd_snapshot_of_engine(flowd_job_t *job, flow_job_t *fj, void *data);

/* Any thread: s takes over row (its strings; row is emptied) as a snapshot of a job elsewhere. */
void flowd_snapshot_of_row(flowd_snapshot_t *s, flowd_remote_job_t *row);
/* The Job fields of a store's row (borrowed from it), as the list shows them. */
void flowd_snapshot_row_view(const flowd_remote_job_t *row, flowd_job_view_t *v);

/* Rendering, any thread. The Job object, pretty, with a newline (NULL when out of memory). */
char *flowd_snapshot_job_text(const flowd_snapshot_t *s, size_t *len);
/* The answer of GET /v1/jobs/{id}/shared: 200 with the store or its part; 404 when the pointer
 * names nothing; 422 over --max-answer; 500. */
void flowd_snapshot_shared_answer(flowd_answer_t *a, const flowd_snapshot_t *s);
/* The shared store as some other source gives it (value borrowed; the snapshot keeps its text):
 * the store as of a step (store.h: flowd_store_shared_at), then answered as above. */
void flowd_snapshot_set_shared(flowd_snapshot_t *s, json_t *value);
/* The answer of GET /v1/jobs/{id}/history: 200 with the History; 422 over --max-answer; 500. */
void flowd_snapshot_history_answer(flowd_answer_t *a, const flowd_snapshot_t *s);

#endif
