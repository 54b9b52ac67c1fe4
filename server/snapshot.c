/* snapshot.c: one way to read a job (snapshot.h): a job id to a snapshot of the job, from its
 * record, through the loop, or from a shared store's row, and the snapshot's answers. */
#include "snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "flow/pointer.h"
#include "flows.h"

void flowd_snapshot_clear(flowd_snapshot_t *s) {
    free(s->pointer);
    free(s->strings);
    free(s->own_shared);
    free(s->own_history);
    flowd_job_unref(s->record);
    flowd_remote_job_clear(&s->row);
    flow_def_unref(s->def);
    memset(s, 0, sizeof *s);
}

/* ---- the parts, from whichever source ---- */

/* The shared store (compact text, or the live value on the loop: exactly one of them) or the part
 * s->pointer names, into s. compact is borrowed for as long as s lives. */
static void take_shared(flowd_snapshot_t *s, const char *compact, size_t len, json_t *live) {
    const char *pointer = s->pointer;
    if ((pointer == NULL || *pointer == '\0') && compact != NULL) {
        s->shared = compact;
        s->shared_len = len;
        return;
    }
    json_t *parsed = NULL;
    json_t *value = live;
    if (compact != NULL)
        value = parsed = json_loadb(compact, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (value == NULL) {
        s->shared_rc = FLOW_EIO;
        return;
    }
    if (pointer != NULL && *pointer != '\0' && flow_pointer_get(value, pointer, &value) < 0) {
        json_decref(parsed);
        s->shared_rc = FLOW_ENOTFOUND;
        return;
    }
    /* its indented text is longer: past the cap here is past it there */
    flow_buf_t b;
    flow_buf_init(&b, flowd_render_max_answer());
    flowd_json_compact(&b, value);
    json_decref(parsed);
    s->shared_rc = b.err;
    s->own_shared = flow_buf_take(&b, &s->shared_len);
    s->shared = s->own_shared;
}

void flowd_snapshot_set_shared(flowd_snapshot_t *s, json_t *value) {
    free(s->own_shared);
    s->own_shared = NULL;
    s->shared = NULL;
    s->shared_len = 0;
    s->shared_rc = 0;
    take_shared(s, NULL, 0, value);
}

/* The History {"id", "steps" (compact text of the array), "totals"} into s. */
static void make_history(flowd_snapshot_t *s, const char *steps, size_t len,
                         const flow_history_totals_t *totals) {
    flow_buf_t b;
    flow_buf_init(&b, flowd_render_max_answer());
    flowd_render_history_of(&b, s->id, steps, len, totals);
    s->history_rc = b.err;
    s->own_history = flow_buf_take(&b, &s->history_len);
    s->history = s->own_history;
}

/* A done record's history (under its lock): kept as text, or made from the steps in its ring. */
static void done_history_locked(flowd_snapshot_t *s, flowd_job_t *job) {
    if (job->final_history != NULL) {
        s->history = job->final_history; /* set once, never changed: s->record keeps it */
        s->history_len = job->final_history_len;
        return;
    }
    flow_buf_t steps;
    flow_buf_init(&steps, flowd_render_max_answer());
    flow_buf_add(&steps, "[", 1);
    flowd_ring_steps(&job->events, job->history_count, &steps);
    flow_buf_add(&steps, "]", 1);
    if (steps.err)
        s->history_rc = steps.err;
    else
        make_history(s, steps.data, steps.len, &job->totals);
    flow_buf_free(&steps);
}

/* The Job fields of a record (under its lock), copied into one block of s: the loop replaces them
 * once the lock is let go. */
static void view_locked(flowd_snapshot_t *s, flowd_job_t *job) {
    const char *text[] = {flow_def_name(job->def), job->current_node, job->last_action,
                          job->waiting_for,        job->error.message, job->error.node,
                          job->conc_key,           job->origin};
    const char **field[] = {&s->job.flow,        &s->job.current_node,  &s->job.last_action,
                            &s->job.waiting_for, &s->job.error_message, &s->job.error_node,
                            &s->job.conc_key,        &s->job.origin};
    size_t n = sizeof text / sizeof *text, total = 0;
    for (size_t i = 0; i < n; i++)
        total += text[i] ? strlen(text[i]) + 1 : 0;
    s->strings = malloc(total ? total : 1);
    s->job = (flowd_job_view_t){.id = s->id,
                                .tenant = job->tenant, /* interned for the table's life */
                                .status = flowd_job_status(job),
                                .created_us = job->created_us,
                                .started_us = job->started_us,
                                .finished_us = job->finished_us,
                                .steps = job->steps,
                                .error_code = job->error.code,
                                .start_at_us = job->start_at_us,
                                .priority = job->priority,
                                .conc_limit = job->conc_limit};
    s->last_event = job->events.next_id - 1; /* under the same lock: the version of these fields */
    char *at = s->strings;
    for (size_t i = 0; i < n && at != NULL; i++) {
        if (text[i] == NULL)
            continue;
        size_t len = strlen(text[i]) + 1;
        memcpy(at, text[i], len);
        *field[i] = at;
        at += len;
    }
}

void flowd_snapshot_row_view(const flowd_remote_job_t *j, flowd_job_view_t *v) {
    *v = (flowd_job_view_t){.id = j->id,
                            .flow = j->flow,
                            .tenant = j->tenant,
                            .status = j->status,
                            .created_us = j->created_us,
                            .started_us = j->started_us,
                            .finished_us = j->finished_us,
                            .current_node = j->current_node,
                            .steps = j->steps,
                            .last_action = j->last_action,
                            .waiting_for = j->waiting_for,
                            .error_code = j->error_code,
                            .error_message = j->error_message,
                            .error_node = j->error_node,
                            .start_at_us = j->start_at_us,
                            .priority = j->priority,
                            .conc_key = j->conc_key,
                            .conc_limit = j->conc_limit,
                            .origin = j->origin};
}

void flowd_snapshot_of_row(flowd_snapshot_t *s, flowd_remote_job_t *row) {
    s->remote = 1;
    s->row = *row;
    memset(row, 0, sizeof *row);
    memcpy(s->id, s->row.id, FLOWD_ID_LEN + 1);
    flowd_snapshot_row_view(&s->row, &s->job);
    s->job.id = s->id;
    s->last_event = s->row.last_event;
    if (s->want & FLOWD_SNAP_SHARED)
        take_shared(s, s->row.shared ? s->row.shared : "{}", s->row.shared ? s->row.shared_len : 2,
                    NULL);
    if (s->want & FLOWD_SNAP_HISTORY)
        make_history(s, s->row.history ? s->row.history : "[]",
                     s->row.history ? s->row.history_len : 2, &s->row.totals);
}

int flowd_snapshot_of_record(flowd_snapshot_t *s, flowd_job_t *job) {
    int later = 0;
    memcpy(s->id, job->id, FLOWD_ID_LEN + 1);
    s->record = flowd_job_ref(job);
    if (s->want & FLOWD_SNAP_FLOW)
        s->def = flow_def_ref(job->def); /* immutable */
    flowd_job_lock(job);
    if (s->want & FLOWD_SNAP_JOB)
        view_locked(s, job);
    if (s->want & FLOWD_SNAP_SHARED) {
        if (job->done && job->final_shared != NULL)
            take_shared(s, job->final_shared, job->final_shared_len, NULL);
        else
            later = 1;
    }
    if (s->want & FLOWD_SNAP_HISTORY) {
        if (job->done)
            done_history_locked(s, job);
        else
            later = 1;
    }
    flowd_job_unlock(job);
    return later;
}

void flowd_snapshot_of_engine(flowd_job_t *job, flow_job_t *fj, void *data) {
    flowd_snapshot_t *s = data;
    if (s->want & FLOWD_SNAP_SHARED) {
        if (fj != NULL)
            take_shared(s, NULL, 0, flow_job_shared(fj));
        else if (job->done && job->final_shared != NULL) /* set once, by this thread */
            take_shared(s, job->final_shared, job->final_shared_len, NULL);
        else
            s->shared_rc = FLOW_ESTATE;
    }
    if (s->want & FLOWD_SNAP_HISTORY) {
        if (fj != NULL) {
            flow_buf_t b;
            flow_buf_init(&b, flowd_render_max_answer());
            flowd_render_history(&b, fj, job->id);
            s->history_rc = b.err;
            s->own_history = flow_buf_take(&b, &s->history_len);
            s->history = s->own_history;
        } else if (job->done) {
            flowd_job_lock(job);
            done_history_locked(s, job);
            flowd_job_unlock(job);
        } else {
            s->history_rc = FLOW_ESTATE;
        }
    }
}

/* ---- answers ---- */

char *flowd_snapshot_job_text(const flowd_snapshot_t *s, size_t *len) {
    if (!s->remote && s->strings == NULL)
        return NULL; /* out of memory when its fields were copied */
    flow_buf_t b;
    flowd_jw_t w;
    flow_buf_init(&b, 0);
    flowd_jw_init(&w, &b, 2);
    flowd_render_job_view(&w, &s->job);
    flow_buf_addc(&b, '\n');
    return flow_buf_take(&b, len);
}

/* 200 with text pretty; rc (snapshot.h) otherwise, as flowd_answer_take says it. */
static void answer_part(flowd_answer_t *a, const char *text, size_t len, int rc, const char *what,
                        const char *hint) {
    flow_buf_t b;
    flow_buf_init(&b, flowd_render_max_answer());
    if (rc == 0)
        flowd_render_pretty(&b, text, len);
    else
        b.err = rc;
    flowd_answer_take(a, &b, what, hint);
}

void flowd_snapshot_shared_answer(flowd_answer_t *a, const flowd_snapshot_t *s) {
    static const char hint[] = "ask for a part of it with ?pointer=, such as ?pointer=/key";
    const char *pointer = s->pointer;
    int part = pointer != NULL && *pointer != '\0';
    if (s->shared_rc == FLOW_ENOTFOUND)
        flowd_answer_error(a, FLOWD_E_NOT_FOUND, "nothing at pointer '%.200s' in the shared store",
                           pointer);
    else if (s->shared_rc == FLOW_ESTATE)
        flowd_answer_error(a, FLOWD_E_INTERNAL, "job %s has no shared store", s->id);
    else if (s->shared_rc == FLOW_EIO)
        flowd_answer_error(a, FLOWD_E_INTERNAL, "the shared store could not be read");
    else
        answer_part(a, s->shared, s->shared_len, s->shared_rc,
                    part ? "the part of the shared store at that pointer" : "the shared store",
                    hint);
}

void flowd_snapshot_history_answer(flowd_answer_t *a, const flowd_snapshot_t *s) {
    if (s->history_rc == FLOW_ESTATE)
        flowd_answer_error(a, FLOWD_E_INTERNAL, "job %s has no history", s->id);
    else
        answer_part(a, s->history, s->history_len, s->history_rc, "the history",
                    FLOWD_HISTORY_HINT);
}

/* ---- where a job is ---- */

static int is_id(const char *id, size_t len) {
    if (len != FLOWD_ID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return 0;
    return 1;
}

/* A job not in the local table, as a shared store has it, into s: 1, FLOW_ENOTFOUND (also when
 * the store is not shared), or the store's error. */
static int find_remote(flowd_server_t *srv, const char *id, size_t len, const char *scope,
                       flowd_snapshot_t *s) {
    char key[FLOWD_ID_LEN + 1];
    flowd_remote_job_t row;
    int rc = FLOW_ENOTFOUND;
    memset(&row, 0, sizeof row);
    if (srv->store->cluster != NULL && is_id(id, len)) {
        memcpy(key, id, FLOWD_ID_LEN);
        key[FLOWD_ID_LEN] = '\0';
        rc = srv->store->cluster->read_job(srv->store, key, NULL, scope,
                                           s->want & (FLOWD_READ_SHARED | FLOWD_READ_HISTORY |
                                                      FLOWD_READ_DOCUMENT | FLOWD_READ_REDRIVE),
                                           &row);
    }
    if (rc == 0) {
        flowd_snapshot_of_row(s, &row);
        if (s->want & FLOWD_SNAP_FLOW) {
            /* built for this read only: versions are kept by the thread that runs jobs */
            flowd_flow_versions_t versions = {0};
            s->def = flowd_flow_version(&versions, srv->reg, s->row.flow, s->row.flow_document);
            flowd_flow_versions_clear(&versions);
        }
        return 1;
    }
    flowd_remote_job_clear(&row);
    return rc;
}

int flowd_snapshot_locate(flowd_server_t *srv, const char *id, size_t len, const char *scope,
                          flowd_snapshot_t *s, flowd_job_t **record) {
    flowd_job_t *job = *record ? *record : flowd_jobs_get(srv->jobs, id, len);
    /* with a shared store, a job not in the local table runs elsewhere; a store of one instance
     * has every job in its table */
    if (job == NULL && srv->store->cluster != NULL)
        return find_remote(srv, id, len, scope, s);
    if (job != NULL && scope != NULL && job->tenant != scope) {
        flowd_job_unref(job);
        job = NULL;
    }
    *record = job;
    return job != NULL ? 0 : FLOW_ENOTFOUND;
}
