/* http_jobs.c: the routes of /v1/jobs (http_routes.h): submit, list, read (the job, its shared
 * store, its history, its events) and talk to (input, cancel) a job. A read asks snapshot.h for the
 * job as it is, wherever it runs, and renders that. Input and cancels go to the loop (bridge.h)
 * for a job in the local table or, with a shared store, through the store (store_cluster.h) to the
 * instance that runs it. */
#include "http_int.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "flow/doc.h"
#include "flow/pointer.h"
#include "jsonw.h"
#include "patch.h"
#include "webhooks.h"

#define MAX_WAIT_S 300
#define MAX_IDEM_KEY 255

/* ---- answering with a job ---- */

static enum MHD_Result send_job(flowd_req_t *r, struct MHD_Connection *conn, unsigned status,
                                flowd_job_t *job) {
    size_t len = 0;
    char *body = flowd_render_job_text(job, &len, &r->etag);
    r->has_etag = 1;
    return flowd__http_send_json(r, conn, status, body, len);
}

/* The Job object of r->snap, with its version as the ETag. */
static enum MHD_Result send_snapshot(flowd_server_t *srv, flowd_req_t *r,
                                     struct MHD_Connection *conn) {
    (void)srv;
    size_t len = 0;
    char *body = flowd_snapshot_job_text(&r->snap, &len);
    r->etag = r->snap.last_event;
    r->has_etag = 1;
    return flowd__http_send_json(r, conn, 200, body, len);
}

/* 304: the client's Job is the current one; its ETag again, no body. */
static enum MHD_Result not_modified(flowd_req_t *r, struct MHD_Connection *conn, uint64_t version) {
    r->etag = version;
    r->has_etag = 1;
    return flowd__http_send_json(r, conn, 304, strdup(""), 0);
}

/* A long poll's answer once it has read the job again (r->snap): 304 when it waited for another
 * version (If-None-Match) and none came in time, else the job as it is. */
static enum MHD_Result send_polled(flowd_server_t *srv, flowd_req_t *r,
                                   struct MHD_Connection *conn) {
    if (r->by_version && r->snap.last_event == r->etag)
        return not_modified(r, conn, r->etag);
    return send_snapshot(srv, r, conn);
}

/* Suspends conn and hands cmd (taken over) to the loop; once it replies, resume answers (NULL:
 * r->reply.answer). When the loop's queue is closed, r->reply.answer is a 503 and resume still
 * runs. -1 when the server refuses calls (shutting down): cmd is freed, nothing is suspended, and
 * the caller answers now. */
static int push_call(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                     flowd_cmd_t *cmd, flowd_handler_fn resume) {
    cmd->conn = conn;
    cmd->reply = &r->reply;
    if (flowd__http_suspend(srv, r, conn, 1, resume) < 0) {
        flowd_cmd_free(cmd);
        return -1;
    }
    if (flowd_bridge_push(srv->bridge, cmd) < 0) {
        /* the loop has closed its queue: shutting down; answer when MHD runs us again */
        flowd_answer_error(&r->reply.answer, FLOWD_E_SHUTTING_DOWN, NULL);
        atomic_store(&r->reply.ready, 1);
        MHD_resume_connection(conn);
    }
    return 0;
}

/* Suspends the connection and hands cmd (taken over) to the loop; its reply is the answer. */
static enum MHD_Result loop_call(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                                 flowd_cmd_t *cmd) {
    if (push_call(srv, r, conn, cmd, NULL) < 0)
        return flowd__http_send_error(r, conn, FLOWD_E_SHUTTING_DOWN, NULL);
    return MHD_YES;
}

/* ---- reading a job (snapshot.h) ---- */

/* Where job id is for r's caller, now (r->snap.want set): 0, here (r->job, a reference); 1, on
 * another instance (r->snap holds the store's row, r->remote_id its id); -1 after answering 404
 * (no such job for the caller: another tenant's job is answered as one that does not exist, word
 * for word) or 503 (the store cannot be read) into *ret. */
static int locate(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn, const char *id,
                  size_t len, enum MHD_Result *ret) {
    int rc = flowd_snapshot_locate(srv, id, len, flowd__http_scope(r), &r->snap, &r->job);
    if (rc == 1)
        memcpy(r->remote_id, r->snap.id, FLOWD_ID_LEN + 1);
    if (rc >= 0)
        return rc;
    if (rc == FLOW_ENOTFOUND)
        *ret = flowd__http_send_error(r, conn, FLOWD_E_NOT_FOUND, "no job with id '%.*s'",
                                      (int)(len > 64 ? 64 : len), id);
    else
        *ret =
            flowd__http_send_error(r, conn, FLOWD_E_UNAVAILABLE,
                                   "the job's database cannot be read now: %s", flow_strerror(rc));
    return -1;
}

/* Where job id is, with nothing read but what the store's row has. */
static int locate_only(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                       const char *id, size_t len, enum MHD_Result *ret) {
    flowd_snapshot_clear(&r->snap);
    return locate(srv, r, conn, id, len, ret);
}

/* The loop has read the running job into r->snap (or could not be asked: r->reply.answer). */
static enum MHD_Result read_by_loop(flowd_server_t *srv, flowd_req_t *r,
                                    struct MHD_Connection *conn) {
    if (r->reply.answer.status != 0)
        return flowd__http_send_answer(r, conn, &r->reply.answer);
    return r->then(srv, r, conn);
}

/* Reads job id for r's caller into r->snap with what want asks (snapshot.h; pointer: a checked
 * JSON Pointer for the shared store, or NULL), then then() answers with it: at once, or once the
 * loop has read a job that runs here (the connection is suspended meanwhile). Answers 404, 503
 * and 500 itself. */
static enum MHD_Result snapshot_read(flowd_server_t *srv, flowd_req_t *r,
                                     struct MHD_Connection *conn, const char *id, size_t len,
                                     unsigned want, const char *pointer, flowd_handler_fn then) {
    enum MHD_Result ret = MHD_YES;
    flowd_snapshot_clear(&r->snap);
    r->snap.want = want;
    if (pointer != NULL && (r->snap.pointer = strdup(pointer)) == NULL)
        return flowd__http_send_json(r, conn, 500, NULL, 0);
    int where = locate(srv, r, conn, id, len, &ret);
    if (where < 0)
        return ret;
    if (where == 1 || !flowd_snapshot_of_record(&r->snap, r->job))
        return then(srv, r, conn);
    flowd_cmd_t *cmd = flowd_cmd_new(FLOWD_CMD_CALL, r->job);
    if (cmd == NULL)
        return flowd__http_send_json(r, conn, 500, NULL, 0);
    cmd->call = flowd_snapshot_of_engine;
    cmd->call_data = &r->snap;
    r->then = then;
    r->reply.answer.status = 0;
    if (push_call(srv, r, conn, cmd, read_by_loop) < 0)
        return flowd__http_send_error(r, conn, FLOWD_E_SHUTTING_DOWN, NULL);
    return MHD_YES;
}

/* ---- long polls ---- */

/* A long poll of a job here has its answer: the job as it is now (or 304). */
static enum MHD_Result resume_wait(flowd_server_t *srv, flowd_req_t *r,
                                   struct MHD_Connection *conn) {
    return snapshot_read(srv, r, conn, r->job->id, FLOWD_ID_LEN, FLOWD_SNAP_JOB, NULL,
                                send_polled);
}

/* The store's listener: the long poll's job has news, or its time is up. */
static void remote_wake(void *data, int why) {
    flowd_req_t *r = data;
    r->reply.answer.status = (unsigned)why;
    atomic_store_explicit(&r->reply.ready, 1, memory_order_release);
    MHD_resume_connection(r->conn);
}

static enum MHD_Result remote_poll_again(flowd_server_t *srv, flowd_req_t *r,
                                         struct MHD_Connection *conn);

/* The request ends: a long poll that still waits must not be woken. */
static void remote_ended(flowd_server_t *srv, flowd_req_t *r) {
    if (r->remote_watching)
        srv->store->cluster->unwatch(srv->store, r);
}

/* A long poll of a job that runs elsewhere (r->snap): suspended until the store sees events of the
 * job after the last one it has, then looked at again (remote_poll_again). */
static enum MHD_Result remote_poll(flowd_server_t *srv, flowd_req_t *r,
                                   struct MHD_Connection *conn) {
    uint64_t now = flow_mono_ms();
    atomic_store(&r->reply.ready, 0);
    if (now >= r->remote_until_ms || flowd__http_suspend(srv, r, conn, 1, remote_poll_again) < 0)
        return send_polled(srv, r, conn);
    r->remote_seen = r->snap.job.status;
    r->remote_watching = 1;
    r->ended = remote_ended;
    if (srv->store->cluster->watch(srv->store, r->remote_id, r->snap.last_event,
                                   r->remote_until_ms - now, remote_wake, r) < 0)
        remote_wake(r, FLOWD_WAKE_STOP);
    return MHD_YES;
}

static enum MHD_Result job_read(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn);

/* The job elsewhere as it is after a wake (r->snap): answered, or waited for again. */
static enum MHD_Result remote_poll_seen(flowd_server_t *srv, flowd_req_t *r,
                                        struct MHD_Connection *conn) {
    int why = (int)r->reply.answer.status;
    r->reply.answer.status = 0;
    if (!r->snap.remote) { /* this instance took the job over meanwhile: the loop waits on */
        uint64_t now = flow_mono_ms();
        r->wait_ms = r->remote_until_ms > now ? r->remote_until_ms - now : 0;
        return job_read(srv, r, conn);
    }
    if (why == FLOWD_WAKE_EVENTS && r->snap.job.status == r->remote_seen &&
        !flow_status_final(r->snap.job.status) && !r->by_version && !atomic_load(&srv->stopping))
        return remote_poll(srv, r, conn); /* events, but the same status: wait on */
    return send_polled(srv, r, conn); /* 304 when its time ran out with nothing new */
}

static enum MHD_Result remote_poll_again(flowd_server_t *srv, flowd_req_t *r,
                                         struct MHD_Connection *conn) {
    r->remote_watching = 0;
    return snapshot_read(srv, r, conn, r->remote_id, FLOWD_ID_LEN, FLOWD_SNAP_JOB, NULL,
                                remote_poll_seen);
}

/* GET /v1/jobs/{id} has read the job (r->snap): answers (200, or 304 to a client that has this
 * version), or waits (?wait=) for its status to change (for any change, with If-None-Match):
 * through the loop for a job here, through the store's watch for one elsewhere. */
static enum MHD_Result job_read(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn) {
    flow_status_t seen = r->snap.job.status;
    uint64_t version = r->snap.last_event;
    int by_version = flowd__http_if_none_match(conn, version);
    if (by_version) { /* the client has this version: 304 now, or once there is another */
        if (r->wait_ms == 0 || flow_status_final(seen) || atomic_load(&srv->stopping))
            return not_modified(r, conn, version);
    } else if (r->wait_ms == 0 || flow_status_final(seen) || seen == FLOW_WAITING ||
               atomic_load(&srv->stopping)) {
        /* a job waiting for input waits for the caller: the long poll answers at once */
        return send_snapshot(srv, r, conn);
    }
    r->by_version = (uint8_t)by_version;
    r->etag = version; /* what the client has */
    if (r->snap.remote) {
        r->remote_until_ms = flow_mono_ms() + r->wait_ms;
        r->path = FLOWD_P_JOB_WAIT;
        return remote_poll(srv, r, conn);
    }
    flowd_cmd_t *cmd = flowd_cmd_new(FLOWD_CMD_WAIT, r->job);
    if (cmd == NULL)
        return send_snapshot(srv, r, conn);
    r->path = FLOWD_P_JOB_WAIT;
    cmd->seen = seen;
    cmd->seen_version = by_version ? version : FLOWD_NO_VERSION;
    cmd->wait_ms = r->wait_ms;
    if (push_call(srv, r, conn, cmd, resume_wait) < 0)
        return send_snapshot(srv, r, conn);
    return MHD_YES;
}

/* ---- talking to a job that runs on another instance (a shared store) ---- */

/* The store's listener: the owner's answer to input or a cancel sent from here. */
static void remote_sent(void *data, int rc, unsigned status, char *body, size_t len) {
    flowd_req_t *r = data;
    flowd_answer_t *a = &r->reply.answer;
    if (rc == 0 && body != NULL) {
        a->status = status;
        a->body = body;
        a->len = len;
    } else {
        free(body);
        if (rc == 0 || rc == FLOW_EIO)
            flowd_answer_error(a, FLOWD_E_INTERNAL, "the job's instance could not be asked");
        else if (rc == FLOW_ENOTFOUND)
            flowd_answer_error(a, FLOWD_E_NOT_FOUND, "no job with id '%s'", r->remote_id);
        else if (rc == FLOW_ETIMEDOUT)
            flowd_answer_error(a, FLOWD_E_UNAVAILABLE,
                               "the instance that runs job %s did not take the request in "
                               "time; it did not take effect: try again",
                               r->remote_id);
        else if (rc == FLOW_EBUSY)
            flowd_answer_error(a, FLOWD_E_UNAVAILABLE,
                               "the instance that runs job %s took the request but did "
                               "not answer in time; it may have taken effect",
                               r->remote_id);
        else
            flowd_answer_error(a, FLOWD_E_SHUTTING_DOWN, NULL);
    }
    atomic_store_explicit(&r->reply.ready, 1, memory_order_release);
    MHD_resume_connection(r->conn);
}

/* Input (value: JSON text) or a cancel for a job that runs elsewhere (r->snap): the store carries
 * it to the job's instance and its answer back, as if the job ran here. */
static enum MHD_Result remote_command(flowd_server_t *srv, flowd_req_t *r,
                                      struct MHD_Connection *conn, int cancel, const char *value) {
    flow_status_t st = r->snap.job.status;
    if (flow_status_final(st)) {
        if (cancel)
            return flowd__http_send_error(r, conn, FLOWD_E_ALREADY_ENDED,
                                          "job %s has already ended (%s)", r->remote_id,
                                          flow_status_name(st));
        return flowd__http_send_error(r, conn, FLOWD_E_NOT_WAITING,
                                      "job %s is %s, not waiting for input", r->remote_id,
                                      flow_status_name(st));
    }
    if (flowd__http_suspend(srv, r, conn, 1, NULL) < 0)
        return flowd__http_send_error(r, conn, FLOWD_E_SHUTTING_DOWN, NULL);
    if (srv->store->cluster->send(srv->store, r->remote_id, cancel, value, remote_sent, r) < 0)
        remote_sent(r, FLOW_ESTATE, 0, NULL, 0);
    return MHD_YES;
}

/* ---- reading a job ---- */

enum MHD_Result flowd__http_job_get(flowd_server_t *srv, flowd_req_t *r,
                                    struct MHD_Connection *conn) {
    const char *wait = flowd__http_arg(conn, "wait");
    double seconds = 0;
    if (wait != NULL) {
        /* digits with an optional fraction: strtod alone would take hex, exponents, inf */
        size_t digits = strspn(wait, "0123456789.");
        const char *dot = strchr(wait, '.');
        if (digits == 0 || wait[digits] != '\0' || (dot != NULL && strchr(dot + 1, '.') != NULL) ||
            strcmp(wait, ".") == 0 || (seconds = strtod(wait, NULL)) > MAX_WAIT_S)
            return flowd__http_send_error(
                r, conn, FLOWD_E_BAD_REQUEST,
                "wait must be a number of seconds from 0 to %d, not '%.32s'", MAX_WAIT_S, wait);
    }
    r->wait_ms = (uint64_t)llround(seconds * 1000.0);
    return snapshot_read(srv, r, conn, r->args.s[0], r->args.len[0], FLOWD_SNAP_JOB, NULL,
                                job_read);
}

/* The answer of /shared or /history: the part of r->snap the route asked for. */
static enum MHD_Result send_part(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn) {
    (void)srv;
    flowd_answer_t a = {0};
    if (r->snap.want & FLOWD_SNAP_SHARED)
        flowd_snapshot_shared_answer(&a, &r->snap);
    else
        flowd_snapshot_history_answer(&a, &r->snap);
    return flowd__http_send_answer(r, conn, &a);
}

/* ?step=N: the job is there and the caller may read it (r->snap); its store as of after step N
 * is read from the store's log (a blocking read, on this HTTP thread: never the loop's). */
static enum MHD_Result send_step(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn) {
    json_t *store = NULL;
    uint64_t oldest = 0;
    int rc = flowd_store_shared_at(srv->store, r->snap.id, r->step, 0, &store, &oldest);
    if (rc == FLOW_ENOTFOUND)
        return flowd__http_send_error(r, conn, FLOWD_E_UNKNOWN_STEP,
                                      "job %s has not finished step %llu", r->snap.id,
                                      (unsigned long long)r->step);
    if (rc == FLOW_ESTATE && srv->store->ops->shared_at == NULL)
        return flowd__http_send_error(r, conn, FLOWD_E_STEP_NOT_KEPT,
                                      "the %s store keeps no shared store of past steps "
                                      "(--store sqlite:PATH does)",
                                      srv->store->ops->name);
    if (rc == FLOW_ESTATE)
        return flowd__http_send_error(r, conn, FLOWD_E_STEP_NOT_KEPT,
                                      "the shared store of job %s as of step %llu is no longer "
                                      "kept: the oldest kept is as of step %llu "
                                      "(--snapshot-steps, --snapshot-bytes)",
                                      r->snap.id, (unsigned long long)r->step,
                                      (unsigned long long)oldest);
    if (rc < 0)
        return flowd__http_send_error(r, conn, FLOWD_E_INTERNAL,
                                      "the shared store as of step %llu could not be read: %s",
                                      (unsigned long long)r->step, flow_strerror(rc));
    flowd_snapshot_set_shared(&r->snap, store);
    json_decref(store);
    r->snap.want |= FLOWD_SNAP_SHARED;
    return send_part(srv, r, conn);
}

enum MHD_Result flowd__http_job_shared(flowd_server_t *srv, flowd_req_t *r,
                                       struct MHD_Connection *conn) {
    const char *pointer = flowd__http_arg(conn, "pointer");
    const char *step = flowd__http_arg(conn, "step");
    size_t bad = 0;
    if (step != NULL) {
        size_t digits = strspn(step, "0123456789");
        if (digits == 0 || digits > 18 || step[digits] != '\0')
            return flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST,
                                          "step must be a step's number (0: the store the job "
                                          "started with), not '%.32s'",
                                          step);
        r->step = strtoull(step, NULL, 10);
    }
    if (pointer != NULL && flow_pointer_checkn(pointer, strlen(pointer), &bad) < 0)
        return flowd__http_send_error(
            r, conn, FLOWD_E_BAD_REQUEST,
            "pointer '%.200s' is not a JSON Pointer (RFC 6901: \"\" or \"/a/0/b\", "
            "with ~0 for ~ and ~1 for /): wrong at byte %zu",
            pointer, bad);
    if (step != NULL)
        return snapshot_read(srv, r, conn, r->args.s[0], r->args.len[0], FLOWD_SNAP_JOB, pointer,
                             send_step);
    return snapshot_read(srv, r, conn, r->args.s[0], r->args.len[0], FLOWD_SNAP_SHARED,
                                pointer, send_part);
}

enum MHD_Result flowd__http_job_history(flowd_server_t *srv, flowd_req_t *r,
                                        struct MHD_Connection *conn) {
    return snapshot_read(srv, r, conn, r->args.s[0], r->args.len[0], FLOWD_SNAP_HISTORY,
                                NULL, send_part);
}

/* GET /v1/jobs/{id}/graph.svg has read the job (r->snap): the graph of the flow version it
 * started with, with the job's marks. */
static enum MHD_Result send_job_graph(flowd_server_t *srv, flowd_req_t *r,
                                      struct MHD_Connection *conn) {
    const flowd_job_view_t *v = &r->snap.job;
    const flow_def_t *def = r->snap.def;
    if (def == NULL)
        return flowd__http_send_error(r, conn, FLOWD_E_UNKNOWN_FLOW,
                                      "job %s runs a version of flow '%.64s' that this server "
                                      "cannot build (its node types or flows are not here)",
                                      r->snap.id, v->flow ? v->flow : "");
    json_t *history = NULL;
    if (r->snap.history_rc == 0 && r->snap.history != NULL)
        history = json_loadb(r->snap.history, r->snap.history_len, 0, NULL);
    int live = v->status == FLOW_RUNNING || v->status == FLOW_WAITING;
    flowd_graph_marks_t marks = {
        .current = live ? v->current_node : NULL,
        .waiting = v->status == FLOW_WAITING,
        .failed = v->status == FLOW_FAILED ? v->error_node : NULL,
        .error = v->error_message,
        .steps = json_object_get(history, "steps")};
    enum MHD_Result ret = flowd__http_send_graph(srv, r, conn, def, &marks, 1, r->snap.last_event);
    json_decref(history);
    return ret;
}

enum MHD_Result flowd__http_job_graph(flowd_server_t *srv, flowd_req_t *r,
                                      struct MHD_Connection *conn) {
    return snapshot_read(srv, r, conn, r->args.s[0], r->args.len[0],
                         FLOWD_SNAP_JOB | FLOWD_SNAP_HISTORY | FLOWD_SNAP_FLOW, NULL,
                         send_job_graph);
}

enum MHD_Result flowd__http_job_events(flowd_server_t *srv, flowd_req_t *r,
                                       struct MHD_Connection *conn) {
    enum MHD_Result ret = MHD_YES;
    const char *last = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
    uint64_t last_id = 0;
    if (last != NULL && *last != '\0') {
        char *end;
        unsigned long long v = strtoull(last, &end, 10);
        if (!isdigit((unsigned char)*last) || *end != '\0' || v == ULLONG_MAX)
            return flowd__http_send_error(
                r, conn, FLOWD_E_BAD_REQUEST,
                "Last-Event-ID must be the id of an event (a whole number), not '%.32s'", last);
        last_id = v;
    }
    int where = locate_only(srv, r, conn, r->args.s[0], r->args.len[0], &ret);
    if (where < 0)
        return ret;
    struct MHD_Response *res = where == 1
                                   ? flowd_remote_watch_response(srv, r->remote_id, conn, last_id)
                                   : flowd_watch_response(srv->watchers, r->job, conn, last_id);
    if (res == NULL)
        return flowd__http_send_json(r, conn, 500, NULL, 0);
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(res, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    flowd__http_common_headers(r, res);
    ret = MHD_queue_response(conn, 200, res);
    MHD_destroy_response(res);
    r->status = 200;
    r->phase = FLOWD_PH_DONE;
    return ret;
}

/* A page of the list: {"jobs": [, then the caller writes its jobs into w, then page_send. */
static void page_open(flow_buf_t *b, flowd_jw_t *w) {
    flow_buf_init(b, flowd_render_max_answer());
    flowd_jw_init(w, b, 2);
    flowd_jw_obj(w);
    flowd_jw_key(w, "jobs");
    flowd_jw_arr(w);
}

/* ], "next_cursor": the opaque cursor of the list (the seq of the last job of the page, as 16 hex
 * digits), or null on the last page; then the answer. */
static enum MHD_Result page_send(flowd_req_t *r, struct MHD_Connection *conn, flow_buf_t *b,
                                 flowd_jw_t *w, uint64_t next) {
    flowd_jw_arr_end(w);
    flowd_jw_key(w, "next_cursor");
    if (next != 0) {
        char c[17];
        snprintf(c, sizeof c, "%016llx", (unsigned long long)next);
        flowd_jw_str(w, c);
    } else {
        flowd_jw_null(w);
    }
    flowd_jw_obj_end(w);
    flow_buf_addc(b, '\n');
    flowd_answer_t a = {0};
    flowd_answer_take(&a, b, "the page of jobs", FLOWD_LIST_HINT);
    return flowd__http_send_answer(r, conn, &a);
}

static int cursor_parse(const char *s, uint64_t *seq) {
    if (strlen(s) != 16)
        return -1;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = (v << 4) | (uint64_t)d;
    }
    if (v == 0)
        return -1;
    *seq = v;
    return 0;
}

/* The list of a shared store: from the database, which has every instance's jobs (its seq is the
 * order of creation over all of them, and the cursor); a job that runs here is shown as the local
 * table has it, which may be a little ahead. */
static enum MHD_Result list_shared(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                                   int status, const char *flow, const char *tenant,
                                   uint64_t cursor, size_t limit) {
    flowd_remote_job_t *jobs = calloc(limit, sizeof *jobs);
    size_t n = 0;
    uint64_t next = 0;
    int rc = jobs ? srv->store->cluster->read_jobs(srv->store, status, flow, tenant, cursor, limit,
                                                   jobs, &n, &next)
                  : FLOW_ENOMEM;
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            flowd_remote_job_clear(&jobs[i]);
        free(jobs);
        return flowd__http_send_error(r, conn, FLOWD_E_UNAVAILABLE,
                                      "the jobs' database cannot be read now: %s",
                                      flow_strerror(rc));
    }
    flow_buf_t b;
    flowd_jw_t w;
    page_open(&b, &w);
    for (size_t i = 0; i < n; i++) {
        flowd_job_t *local = flowd_jobs_get(srv->jobs, jobs[i].id, FLOWD_ID_LEN);
        if (local != NULL)
            flowd_render_job(&w, local, NULL);
        else {
            flowd_job_view_t v;
            flowd_snapshot_row_view(&jobs[i], &v);
            flowd_render_job_view(&w, &v);
        }
        flowd_job_unref(local);
        flowd_remote_job_clear(&jobs[i]);
    }
    free(jobs);
    return page_send(r, conn, &b, &w, next);
}

/* The tenant a list or a count is of: an admin sees every tenant's jobs (*tenant NULL) or the one
 * it names (*named); another key its own tenant's only (*tenant, interned), and naming another is
 * 403. -1 when that was answered (*ret). */
static int list_scope(flowd_req_t *r, struct MHD_Connection *conn, const char **named,
                      const char **tenant, enum MHD_Result *ret) {
    *named = flowd__http_arg(conn, "tenant");
    *tenant = flowd__http_scope(r);
    if (*named != NULL && *tenant != NULL && strcmp(*named, *tenant) != 0) {
        *ret = flowd__http_send_error(r, conn, FLOWD_E_FORBIDDEN,
                                      "key '%s' (role %s) sees only the jobs of its tenant '%s'",
                                      r->caller.name, flowd_role_name(r->caller.role), *tenant);
        return -1;
    }
    if (*named != NULL && strlen(*named) > FLOWD_NAME_MAX) {
        *ret = flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST,
                                      "tenant must be at most %d characters", FLOWD_NAME_MAX);
        return -1;
    }
    return 0;
}

enum MHD_Result flowd__http_jobs_list(flowd_server_t *srv, flowd_req_t *r,
                                      struct MHD_Connection *conn) {
    enum MHD_Result ret = MHD_YES;
    const char *status_s = flowd__http_arg(conn, "status");
    const char *flow = flowd__http_arg(conn, "flow");
    const char *tenant_s, *tenant;
    if (list_scope(r, conn, &tenant_s, &tenant, &ret) < 0)
        return ret;
    const char *cursor_s = flowd__http_arg(conn, "cursor");
    flow_status_t status = FLOW_QUEUED;
    if (status_s != NULL && flow_status_parse(status_s, &status) < 0)
        return flowd__http_send_error(
            r, conn, FLOWD_E_BAD_REQUEST,
            "status must be one of queued, running, waiting, succeeded, failed, canceled; not "
            "'%.32s'",
            status_s);
    uint64_t limit;
    if (flowd__http_list_limit(r, conn, &limit, &ret) < 0)
        return ret;
    uint64_t cursor = 0;
    if (cursor_s != NULL && cursor_parse(cursor_s, &cursor) < 0)
        return flowd__http_send_error(
            r, conn, FLOWD_E_BAD_REQUEST,
            "cursor '%.40s' is not one this server gave (use next_cursor of the previous page)",
            cursor_s);
    if (srv->store->cluster != NULL) /* the database knows every instance's tenants */
        return list_shared(srv, r, conn, status_s ? (int)status : -1, flow,
                           tenant_s ? tenant_s : tenant, cursor, (size_t)limit);
    if (tenant_s != NULL) {
        tenant = flowd_auth_find_tenant(srv->auth, tenant_s);
        if (tenant == NULL)
            limit = 0; /* a tenant that no key and no job has named has no jobs */
    }
    flowd_job_t **jobs = malloc((limit ? limit : 1) * sizeof *jobs);
    size_t n = 0;
    uint64_t next = 0;
    if (jobs == NULL ||
        (limit > 0 && flowd_jobs_list(srv->jobs, status_s ? (int)status : -1, flow, tenant, cursor,
                                      (size_t)limit, jobs, &n, &next) < 0)) {
        free(jobs);
        return flowd__http_send_json(r, conn, 500, NULL, 0);
    }
    flow_buf_t b;
    flowd_jw_t w;
    page_open(&b, &w);
    for (size_t i = 0; i < n; i++) {
        flowd_render_job(&w, jobs[i], NULL);
        flowd_job_unref(jobs[i]);
    }
    free(jobs);
    return page_send(r, conn, &b, &w, next);
}

/* GET /v1/jobs/counts: how many jobs there are by status, of the jobs GET /v1/jobs would list
 * with the same flow and tenant. With the job table, from its counts per (tenant, flow)
 * (flowd_jobs_counts_of: no pass over the jobs); with a shared store, one GROUP BY of its jobs
 * (store_cluster.h count_jobs), on this HTTP thread as the list's page is. */
enum MHD_Result flowd__http_jobs_counts(flowd_server_t *srv, flowd_req_t *r,
                                        struct MHD_Connection *conn) {
    enum MHD_Result ret = MHD_YES;
    const char *flow = flowd__http_arg(conn, "flow");
    const char *tenant_s, *tenant;
    if (list_scope(r, conn, &tenant_s, &tenant, &ret) < 0)
        return ret;
    uint64_t counts[6] = {0};
    if (srv->store->cluster != NULL) {
        int rc = srv->store->cluster->count_jobs(srv->store, flow, tenant_s ? tenant_s : tenant,
                                                 counts);
        if (rc < 0)
            return flowd__http_send_error(r, conn, FLOWD_E_UNAVAILABLE,
                                          "the jobs' database cannot be read now: %s",
                                          flow_strerror(rc));
    } else {
        if (tenant_s != NULL)
            tenant = flowd_auth_find_tenant(srv->auth, tenant_s);
        /* a tenant that no key and no job has named has no jobs */
        if (tenant_s == NULL || tenant != NULL)
            flowd_jobs_counts_of(srv->jobs, flow, tenant, counts);
    }
    flow_buf_t b;
    flow_buf_init(&b, 0);
    flowd_jw_t w;
    flowd_jw_init(&w, &b, 2);
    flowd_jw_obj(&w);
    flowd_jw_key(&w, "counts");
    flowd_jw_obj(&w);
    for (int i = 0; i < 6; i++) {
        flowd_jw_key(&w, flow_status_name((flow_status_t)i));
        flowd_jw_uint(&w, counts[i]);
    }
    flowd_jw_obj_end(&w);
    flowd_jw_obj_end(&w);
    flow_buf_addc(&b, '\n');
    size_t len = 0;
    char *body = flow_buf_take(&b, &len);
    return flowd__http_send_json(r, conn, 200, body, len);
}

/* ---- POST bodies ---- */

/* The store's answer to create; for a store that is not immediate, the connection is suspended
 * and resumed here (stored answers). */
static void store_done(void *data, int err) {
    flowd_req_t *r = data;
    r->reply.answer.status = err == 0 ? 202 : err == FLOW_EEXIST ? 409 : 500;
    atomic_store_explicit(&r->reply.ready, 1, memory_order_release);
    if (r->phase == FLOWD_PH_SUSPENDED)
        MHD_resume_connection(r->conn);
}

/* The store has answered a new job's create: the job starts. One the store could not keep was never
 * accepted: its record starts only to end failed rather than wait forever. Runs once: from stored,
 * or, when the client left before it could be answered, from the request's end (a job the store
 * holds runs whether or not anyone reads its 202). MHD completes a suspended request only once it
 * is resumed, which store_done does after the answer is in. */
static void start_stored(flowd_server_t *srv, flowd_req_t *r) {
    json_t *shared = r->start_shared, *params = r->start_params;
    r->start_shared = r->start_params = NULL;
    r->ended = NULL;
    if (r->reply.answer.status != 202)
        r->job->run.store_failed = 1;
    flowd_bridge_start(srv->bridge, r->job, shared, params);
}

static void stored_unanswered(flowd_server_t *srv, flowd_req_t *r) {
    if (atomic_load_explicit(&r->reply.ready, memory_order_acquire))
        start_stored(srv, r);
}

/* The store answered for a new job (a store that is not immediate): it starts, or ends failed. */
static enum MHD_Result stored(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn) {
    if (r->reply.answer.status != 202) {
        unsigned status = r->reply.answer.status;
        start_stored(srv, r);
        if (status == 409) /* a shared store: another instance took the key at the same moment */
            return flowd__http_send_error(r, conn, FLOWD_E_IDEMPOTENCY_CONFLICT,
                                          "Idempotency-Key was used at the same moment on another "
                                          "instance; send it again");
        return flowd__http_send_error(r, conn, FLOWD_E_INTERNAL, "the job could not be stored");
    }
    size_t len = 0;
    char *text = flowd_render_new_job(r->job, &len); /* before the loop can run it: queued */
    start_stored(srv, r);
    return flowd__http_send_json(r, conn, 202, text, len);
}

#define MAX_DELAY_S 86400000000ll

/* When and in what order a submission starts (scheduler.h), from its body and its flow's
 * document. */
typedef struct submit_sched {
    uint64_t start_at_us;
    unsigned priority;
    unsigned conc_limit;
    int has_key;
    char key[FLOW_CONC_KEY_MAX + 1];
} submit_sched_t;

static const char *const post_fields[] = {"flow",     "shared", "params",   "callback",
                                          "start_at", "delay",  "priority", "concurrency", NULL};

/* 0, or -1 with why (a 400's message) naming the field and, for a limit, its flag. */
static int parse_sched(flowd_server_t *srv, json_t *body, flow_def_t *def, json_t *shared,
                       json_t *params, submit_sched_t *out, char *why, size_t whylen) {
    json_t *start_at = json_object_get(body, "start_at"), *delay = json_object_get(body, "delay");
    json_t *priority = json_object_get(body, "priority");
    json_t *conc = json_object_get(body, "concurrency");
    json_t *doc = flow_doc_of(def), *flow_conc = json_object_get(doc, "concurrency");
    uint64_t now = flow_wall_us(), max_us = srv->cfg.max_delay_ms * 1000u, t = 0, ms = 0;
    char detail[320];
    memset(out, 0, sizeof *out);
    out->priority = FLOWD_PRIORITY_DEFAULT;
    if (start_at != NULL && delay != NULL) {
        snprintf(why, whylen, "give start_at or delay, not both");
        return -1;
    }
    if (start_at != NULL) {
        if (!json_is_string(start_at) ||
            flowd_parse_time(json_string_value(start_at), json_string_length(start_at), &t) < 0) {
            snprintf(why, whylen, "field 'start_at' must be an RFC 3339 date-time, e.g. "
                     "\"2026-12-05T14:00:00Z\" or \"2026-12-05T15:00:00+01:00\"");
            return -1;
        }
        if ((t > now ? t - now : now - t) > max_us) {
            snprintf(why, whylen, "field 'start_at' is more than %llu s from now (--max-delay)",
                     (unsigned long long)(srv->cfg.max_delay_ms / 1000u));
            return -1;
        }
        out->start_at_us = t;
    }
    if (delay != NULL) {
        int ok = 0;
        /* past a million days it is past any --max-delay, and its milliseconds still fit */
        if (json_is_integer(delay) && json_integer_value(delay) >= 0) {
            json_int_t v = json_integer_value(delay);
            ms = v > MAX_DELAY_S ? UINT64_MAX : (uint64_t)v * 1000u;
            ok = 1;
        } else if (json_is_real(delay) && json_real_value(delay) >= 0) {
            double v = json_real_value(delay);
            ms = v > MAX_DELAY_S ? UINT64_MAX : (uint64_t)(v * 1000.0 + 0.5);
            ok = 1;
        } else if (json_is_string(delay)) {
            ok = flowd_parse_duration_ms(json_string_value(delay), &ms) == 0;
        }
        if (!ok) {
            snprintf(why, whylen, "field 'delay' must be seconds (a number, 0 or more) or a "
                     "duration such as \"90s\", \"10m\" or \"1500ms\"");
            return -1;
        }
        if (ms > srv->cfg.max_delay_ms) {
            snprintf(why, whylen, "field 'delay' is more than %llu s (--max-delay)",
                     (unsigned long long)(srv->cfg.max_delay_ms / 1000u));
            return -1;
        }
        out->start_at_us = ms > 0 ? now + ms * 1000u : 0;
    }
    if (priority != NULL) {
        if (!json_is_integer(priority) || json_integer_value(priority) < 0 ||
            json_integer_value(priority) > FLOWD_PRIORITY_MAX) {
            snprintf(why, whylen, "field 'priority' must be an integer from 0 to %d (%d first; "
                     "%d when not given)", FLOWD_PRIORITY_MAX, FLOWD_PRIORITY_MAX,
                     FLOWD_PRIORITY_DEFAULT);
            return -1;
        }
        out->priority = (unsigned)json_integer_value(priority);
    }
    if (conc != NULL && flow_conc != NULL) {
        snprintf(why, whylen, "field 'concurrency': flow %.64s sets its own concurrency (its "
                 "document's \"concurrency\"); a submission cannot replace it", flow_def_name(def));
        return -1;
    }
    if (conc != NULL && flow_doc_concurrency_check(conc, detail, sizeof detail) < 0) {
        snprintf(why, whylen, "field 'concurrency': %s", detail);
        return -1;
    }
    if (conc == NULL)
        conc = flow_conc;
    if (conc != NULL) {
        if (flow_doc_concurrency_key(conc, shared, params, json_object_get(doc, "params"), out->key,
                                     sizeof out->key, detail, sizeof detail) < 0) {
            snprintf(why, whylen, "%s%s", detail,
                     conc == flow_conc ? " (the flow's \"concurrency\" needs it)" : "");
            return -1;
        }
        out->has_key = 1;
        out->conc_limit = (unsigned)json_integer_value(json_object_get(conc, "limit"));
    }
    return 0;
}

/* A POST's "callback" (webhooks.h): 0 with what the job keeps of it, or -1 after answering (in
 * *ret): 400 for a shape the API does not take, 422 for one that could not be delivered. */
static int check_callback(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                          const json_t *cb, char **text, char **url, unsigned *events,
                          enum MHD_Result *ret) {
    char why[256];
    if (!json_is_object(cb)) {
        *ret = flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST,
                                      "field 'callback' must be an object, not %s",
                                      flowd__http_type_name(cb));
        return -1;
    }
    if (flowd_callback_parse(cb, text, url, events, why, sizeof why) < 0) {
        *ret = flowd__http_send_error(r, conn, FLOWD_E_INVALID_CALLBACK, "%s", why);
        return -1;
    }
    if (!flowd_webhooks_has_secret(srv->webhooks, r->caller.tenant)) {
        free(*text);
        free(*url);
        *text = *url = NULL;
        *ret = flowd__http_send_error(r, conn, FLOWD_E_INVALID_CALLBACK,
                                      "no webhook secret signs the callbacks of tenant '%s': add a "
                                      "line for it to --webhook-secrets",
                                      r->caller.tenant);
        return -1;
    }
    return 0;
}

/* With a shared store and an Idempotency-Key (idem): another instance may have made the job of
 * this key, which the store knows. 1 after answering into *ret (that job, or 409 when the key went
 * with another body_hash); 0 when the local table answers (submit). */
static int idem_elsewhere(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                          const char *idem, uint64_t body_hash, enum MHD_Result *ret) {
    if (srv->store->cluster == NULL)
        return 0;
    flowd_remote_job_t j;
    flowd_job_t *here = NULL;
    if (srv->store->cluster->read_job(srv->store, NULL, idem, r->caller.tenant, 0, &j) == 0 &&
        (here = flowd_jobs_get(srv->jobs, j.id, FLOWD_ID_LEN)) == NULL) {
        memcpy(r->remote_id, j.id, FLOWD_ID_LEN + 1);
        if (j.body_hash != body_hash) {
            flowd_remote_job_clear(&j);
            *ret = flowd__http_send_error(r, conn, FLOWD_E_IDEMPOTENCY_CONFLICT,
                                          "Idempotency-Key '%.64s' was used with another body",
                                          idem);
            return 1;
        }
        flowd_snapshot_of_row(&r->snap, &j);
        *ret = send_snapshot(srv, r, conn);
        return 1;
    }
    flowd_job_unref(here); /* here: the table answers */
    flowd_remote_job_clear(&j);
    return 0;
}

/* A new job, checked and ready: what POST /v1/jobs and a redrive hand to submit. */
typedef struct submission {
    flow_def_t *def;           /* borrowed */
    json_t *shared, *params;   /* taken by submit (params NULL: none) */
    const char *idem;          /* its Idempotency-Key, or NULL */
    uint64_t body_hash;        /* with idem: what the key must come with again */
    const submit_sched_t *sched;
    char *cb_text, *cb_url;    /* its callback (check_callback), taken; NULL: none */
    unsigned cb_events;
    char *origin;              /* a redrive's: where it came from (compact JSON), taken; or NULL */
    const char *start_node;    /* with origin: the root node it starts at (NULL: the start) */
} submission_t;

/* Makes the job of sub in the table and the store, and answers: 202 once it is stored (and its
 * start is queued: the scheduler starts it like any other), 200 with the job an Idempotency-Key
 * made before, or the error. */
static enum MHD_Result submit(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                              submission_t *sub) {
    const submit_sched_t *sched = sub->sched;
    json_t *shared = sub->shared, *params = sub->params;
    char *ckey = sched->has_key ? strdup(sched->key) : NULL;
    /* what a redrive of it would start with (a store that keeps no checkpoints keeps none) */
    char *ptext = params && srv->store->ops->checkpoint != NULL
                      ? json_dumps(params, JSON_COMPACT)
                      : NULL;
    char *start = sub->start_node ? strdup(sub->start_node) : NULL;
    flowd_job_t *job = NULL;
    int repeat = 0, rc = FLOW_ENOMEM;
    if ((!sched->has_key || ckey != NULL) && (!sub->start_node || start != NULL) &&
        (!params || srv->store->ops->checkpoint == NULL || ptext != NULL))
        rc = flowd_jobs_create(srv->jobs, sub->def, r->caller.tenant, sub->idem, sub->body_hash,
                               &job, &repeat);
    if (rc < 0 || repeat) {
        json_decref(shared);
        json_decref(params);
        free(ckey);
        free(ptext);
        free(start);
        free(sub->cb_text);
        free(sub->cb_url);
        free(sub->origin);
    } else {
        /* before the store has it and before its start is queued: immutable from then on */
        job->callback = sub->cb_text;
        job->callback_url = sub->cb_url;
        job->callback_events = sub->cb_events;
        job->params_text = ptext;
        job->restart.node = start; /* the loop's once its start is queued */
    }
    if (rc == FLOW_EBUSY)
        return flowd__http_send_error(
            r, conn, FLOWD_E_TOO_MANY_JOBS,
            "%u jobs are queued, running or waiting (--max-jobs); try again later",
            srv->cfg.max_jobs);
    if (rc == FLOW_EEXIST)
        return flowd__http_send_error(r, conn, FLOWD_E_IDEMPOTENCY_CONFLICT,
                                      "Idempotency-Key '%.64s' was used with another body",
                                      sub->idem);
    if (rc < 0)
        return flowd__http_send_error(r, conn, FLOWD_E_INTERNAL, "the job could not be created: %s",
                                      flow_strerror(rc));
    r->job = job;
    if (repeat)
        return send_job(r, conn, 200, job);
    memcpy(job->traceparent, r->traceparent, sizeof job->traceparent); /* before its start is queued */
    flowd_job_lock(job); /* GET may read the record already */
    job->start_at_us = sched->start_at_us;
    job->priority = sched->priority;
    job->conc_key = ckey;
    job->conc_limit = sched->conc_limit;
    job->origin = sub->origin; /* a list may render it already */
    flowd_job_unlock(job);
    if (srv->store->ops->checkpoint != NULL) {
        /* the store its first root-level node starts from, made here rather than on the loop;
         * the store's create writes the same text (NULL: the loop makes it) */
        job->run.base = json_dumps(shared, JSON_COMPACT);
        job->run.base_len = job->run.base ? strlen(job->run.base) : 0;
    }
    const flowd_store_ops_t *ops = srv->store->ops;
    if (!ops->immediate) {
        /* A durable store answers later: the connection waits, and the job starts once stored. */
        r->start_shared = shared;
        r->start_params = params;
        r->ended = stored_unanswered;
        flowd__http_suspend(srv, r, conn, 0, stored);
        if (ops->create(srv->store, job, shared, params, store_done, r) < 0)
            store_done(r, FLOW_EIO);
        return MHD_YES; /* stored answers */
    }
    if (ops->create(srv->store, job, shared, params, store_done, r) < 0 ||
        r->reply.answer.status != 202) {
        json_decref(shared);
        json_decref(params);
        return flowd__http_send_error(r, conn, FLOWD_E_INTERNAL, "the job could not be stored");
    }
    /* Render before the loop can run the job, so the answer says queued. */
    size_t len = 0;
    char *text = flowd_render_new_job(job, &len);
    flowd_bridge_start(srv->bridge, job, shared, params);
    return flowd__http_send_json(r, conn, 202, text, len);
}

enum MHD_Result flowd__http_jobs_post(flowd_server_t *srv, flowd_req_t *r,
                                      struct MHD_Connection *conn) {
    static const char example[] = "{\"flow\": \"noop\", \"shared\": {}}";
    enum MHD_Result ret = MHD_YES;
    r->location = 1;
    json_t *body = flowd__http_body_object(r, conn, example, post_fields,
                                           "flow, shared, params, callback, start_at, delay, "
                                           "priority and concurrency", &ret);
    if (body == NULL)
        return ret;
    json_t *flow = json_object_get(body, "flow");
    json_t *shared = json_object_get(body, "shared");
    json_t *params = json_object_get(body, "params");
    const char *problem = NULL, *field = NULL, *want = NULL;
    json_t *v = NULL; /* the value of field */
    if (flow == NULL)
        problem = "missing field 'flow': the name of a flow this server runs (GET /v1/flows)";
    else if (!json_is_string(flow))
        field = "flow", want = "a string", v = flow;
    else if (shared != NULL && !json_is_object(shared))
        field = "shared", want = "an object", v = shared;
    else if (params != NULL && !json_is_object(params))
        field = "params", want = "an object", v = params;
    if (problem != NULL || field != NULL)
        return flowd__http_bad_field(r, conn, body, problem, field, want, v, 0);
    /* the store is counted after each step; one too big from the start is refused now (a body
     * this short cannot hold one: a compact dump is about as long as its text, or shorter) */
    if (shared != NULL && r->len > srv->cfg.max_shared / 2 &&
        flowd_json_size(shared, srv->cfg.max_shared) > srv->cfg.max_shared) {
        json_decref(body);
        return flowd__http_send_error(
            r, conn, FLOWD_E_PAYLOAD_TOO_LARGE,
            "the shared store is over %zu bytes as JSON, the limit of a job's store "
            "(--max-shared)",
            srv->cfg.max_shared);
    }
    const char *idem = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (idem != NULL && (*idem == '\0' || strlen(idem) > MAX_IDEM_KEY)) {
        json_decref(body);
        return flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST,
                                      "Idempotency-Key must be 1 to %d characters", MAX_IDEM_KEY);
    }
    flow_def_t *def = flow_registry_get_flow(srv->reg, json_string_value(flow));
    if (def == NULL) {
        ret = flowd__http_unknown_flow(srv, r, conn, json_string_value(flow));
        json_decref(body);
        return ret;
    }
    submit_sched_t sched;
    char why[512];
    if (parse_sched(srv, body, def, shared, params, &sched, why, sizeof why) < 0) {
        flow_def_unref(def);
        json_decref(body);
        return flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST, "%s", why);
    }
    if (atomic_load(&srv->stopping)) {
        flow_def_unref(def);
        json_decref(body);
        return flowd__http_send_error(r, conn, FLOWD_E_SHUTTING_DOWN, NULL);
    }
    if (idem != NULL &&
        idem_elsewhere(srv, r, conn, idem, flowd_hash_bytes(r->body, r->len), &ret)) {
        flow_def_unref(def);
        json_decref(body);
        return ret;
    }
    submission_t sub = {.def = def,
                        .idem = idem,
                        .body_hash = idem ? flowd_hash_bytes(r->body, r->len) : 0,
                        .sched = &sched};
    json_t *cb = json_object_get(body, "callback");
    if (cb != NULL &&
        check_callback(srv, r, conn, cb, &sub.cb_text, &sub.cb_url, &sub.cb_events, &ret) < 0) {
        flow_def_unref(def);
        json_decref(body);
        return ret;
    }
    /* The loop gets the shared store and params as values of its own: no jansson value is shared
     * between threads (their reference counts would be). */
    sub.shared = shared ? json_incref(shared) : json_object();
    sub.params = json_incref(params);
    json_decref(body);
    ret = submit(srv, r, conn, &sub);
    flow_def_unref(def);
    return ret;
}

enum MHD_Result flowd__http_job_input(flowd_server_t *srv, flowd_req_t *r,
                                      struct MHD_Connection *conn) {
    static const char example[] = "{\"value\": \"yes\"}";
    static const char *const fields[] = {"value", NULL};
    enum MHD_Result ret = MHD_YES;
    json_t *body = flowd__http_body_object(r, conn, example, fields, "only value", &ret);
    if (body == NULL)
        return ret;
    json_t *value = json_incref(json_object_get(body, "value"));
    json_decref(body);
    if (value == NULL)
        return flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST,
                                      "missing field 'value': the answer, any JSON value, e.g. %s",
                                      example);
    int where = locate_only(srv, r, conn, r->args.s[0], r->args.len[0], &ret);
    if (where == 1) {
        char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(value);
        if (text == NULL)
            return flowd__http_send_json(r, conn, 500, NULL, 0);
        ret = remote_command(srv, r, conn, 0, text);
        free(text);
        return ret;
    }
    flowd_cmd_t *cmd = where == 0 ? flowd_cmd_new(FLOWD_CMD_INPUT, r->job) : NULL;
    if (cmd == NULL) {
        json_decref(value);
        return where == 0 ? flowd__http_send_json(r, conn, 500, NULL, 0) : ret;
    }
    cmd->value = value;
    return loop_call(srv, r, conn, cmd);
}

enum MHD_Result flowd__http_job_cancel(flowd_server_t *srv, flowd_req_t *r,
                                       struct MHD_Connection *conn) {
    enum MHD_Result ret = MHD_YES;
    int where = locate_only(srv, r, conn, r->args.s[0], r->args.len[0], &ret);
    if (where < 0)
        return ret;
    if (where == 1)
        return remote_command(srv, r, conn, 1, NULL);
    flowd_cmd_t *cmd = flowd_cmd_new(FLOWD_CMD_CANCEL, r->job);
    if (cmd == NULL)
        return flowd__http_send_json(r, conn, 500, NULL, 0);
    return loop_call(srv, r, conn, cmd);
}

/* ---- redrive ---- */

/* What a redrive takes from the job it starts again (all malloc'd, redrive_src_clear): from the
 * local record, or from the shared store's row of a job that ended on another instance. */
typedef struct redrive_src {
    char id[FLOWD_ID_LEN + 1];
    char *flow;
    flow_status_t status;
    int ended;                 /* its final state is written */
    char *base, *node;         /* jobs.h redrive_shared, redrive_node; base NULL: not kept */
    int at_step;               /* base NULL: a store with patches makes it again (redrive_step) */
    uint64_t step;
    char *params, *callback;   /* compact JSON, or NULL */
    unsigned priority;
    char *conc_key;
    unsigned conc_limit;
} redrive_src_t;

static void redrive_src_clear(redrive_src_t *src) {
    free(src->flow);
    free(src->base);
    free(src->node);
    free(src->params);
    free(src->callback);
    free(src->conc_key);
}

static char *dup_opt(const char *s, int *oom) {
    char *d = s ? strdup(s) : NULL;
    *oom |= s != NULL && d == NULL;
    return d;
}

/* 0, or FLOW_ENOMEM. */
static int redrive_of_record(redrive_src_t *src, flowd_job_t *job) {
    int oom = 0;
    memcpy(src->id, job->id, sizeof src->id);
    src->flow = dup_opt(flow_def_name(job->def), &oom);
    src->params = dup_opt(job->params_text, &oom);       /* immutable */
    src->callback = dup_opt(job->callback, &oom);        /* immutable */
    flowd_job_lock(job);
    src->status = flowd_job_status(job);
    src->ended = job->done;
    if (job->done && (job->redrive_shared != NULL || job->redrive_at_step)) { /* fixed once done */
        if (job->redrive_shared != NULL) {
            src->base = strndup(job->redrive_shared, job->redrive_shared_len);
            oom |= src->base == NULL;
        }
        src->at_step = src->base == NULL;
        src->step = job->redrive_step;
        src->node = dup_opt(job->redrive_node, &oom);
    }
    src->priority = job->priority;
    src->conc_key = dup_opt(job->conc_key, &oom);
    src->conc_limit = job->conc_limit;
    flowd_job_unlock(job);
    return oom ? FLOW_ENOMEM : 0;
}

/* Takes the row's strings. */
static void redrive_of_row(redrive_src_t *src, flowd_remote_job_t *row) {
    memcpy(src->id, row->id, sizeof src->id);
    src->status = row->status;
    src->ended = flow_status_final(row->status);
    src->flow = row->flow;
    src->base = row->base_shared;
    src->at_step = row->base_at_step;
    src->step = row->base_step;
    src->node = row->base_node;
    src->params = row->params;
    src->callback = row->callback;
    src->priority = row->priority;
    src->conc_key = row->conc_key;
    src->conc_limit = row->conc_limit;
    row->flow = row->base_shared = row->base_node = row->params = row->callback = NULL;
    row->conc_key = NULL;
}

/* {"job": id, "node": node or null}, compact; NULL when out of memory. */
static char *redrive_origin(const redrive_src_t *src) {
    json_t *o = json_pack("{s:s, s:s?}", "job", src->id, "node", src->node);
    if (o != NULL && src->node == NULL)
        json_object_set_new(o, "node", json_null());
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

/* The checks a redrive and a fork make first: their Idempotency-Key (*idem, borrowed from conn;
 * NULL: none) is 1 to MAX_IDEM_KEY characters, and the server is not shutting down. 0, or -1
 * after answering 400 or 503 into *ret. */
static int resubmit_prologue(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                             const char **idem, enum MHD_Result *ret) {
    *idem = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (*idem != NULL && (**idem == '\0' || strlen(*idem) > MAX_IDEM_KEY))
        *ret = flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST,
                                      "Idempotency-Key must be 1 to %d characters", MAX_IDEM_KEY);
    else if (atomic_load(&srv->stopping))
        *ret = flowd__http_send_error(r, conn, FLOWD_E_SHUTTING_DOWN, NULL);
    else
        return 0;
    return -1;
}

/* What a redrive and a fork have in common: src's job made again as a new submission of def
 * (borrowed), from shared (taken), with src's params, priority, concurrency key (as def's
 * concurrency evaluates it now, or as its POST gave it) and callback, starting at the root-level
 * node start (NULL: def's start; borrowed), and saying where it came from: origin (compact JSON,
 * taken; NULL: out of memory, answered 500). The answer is submit's. */
static enum MHD_Result resubmit(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                                const redrive_src_t *src, flow_def_t *def, json_t *shared,
                                char *origin, const char *start, const char *idem, uint64_t hash) {
    enum MHD_Result ret;
    json_t *params = src->params ? json_loads(src->params, 0, NULL) : NULL, *cbv = NULL;
    submission_t sub = {0};
    submit_sched_t sched;
    char why[512];
    if (origin == NULL) {
        ret = flowd__http_send_json(r, conn, 500, NULL, 0);
        goto out;
    }
    if (src->params != NULL && params == NULL) {
        ret = flowd__http_send_error(r, conn, FLOWD_E_INTERNAL, "job %s's stored state is not JSON",
                                     src->id);
        goto out;
    }
    /* its priority, and its concurrency key as its flow says now (or as its POST gave it) */
    json_t *body = json_pack("{s:i}", "priority", (json_int_t)src->priority);
    int rc = body ? parse_sched(srv, body, def, shared, params, &sched, why, sizeof why) : -1;
    json_decref(body);
    if (rc < 0) {
        ret = body ? flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST, "%s", why)
                   : flowd__http_send_json(r, conn, 500, NULL, 0);
        goto out;
    }
    if (!sched.has_key && src->conc_key != NULL) {
        snprintf(sched.key, sizeof sched.key, "%s", src->conc_key);
        sched.has_key = 1;
        sched.conc_limit = src->conc_limit;
    }
    if (src->callback != NULL) {
        cbv = json_loads(src->callback, 0, NULL);
        if (cbv == NULL) {
            ret = flowd__http_send_json(r, conn, 500, NULL, 0);
            goto out;
        }
        if (check_callback(srv, r, conn, cbv, &sub.cb_text, &sub.cb_url, &sub.cb_events, &ret) < 0)
            goto out;
    }
    sub.origin = origin;
    sub.def = def;
    sub.shared = shared;
    sub.params = params;
    shared = params = NULL; /* submit takes them and origin */
    origin = NULL;
    sub.idem = idem;
    sub.body_hash = hash;
    sub.sched = &sched;
    sub.start_node = start;
    r->location = 1;
    ret = submit(srv, r, conn, &sub);
out:
    free(origin);
    json_decref(shared);
    json_decref(params);
    json_decref(cbv);
    return ret;
}

/* POST /v1/jobs/{id}/redrive: a job that failed or was canceled starts again as a new job, from
 * the root-level step that failed (or was running), with the shared store as it was before that
 * step, its params, callback and priority, and its flow as it is now (a fixed document takes
 * effect). */
enum MHD_Result flowd__http_job_redrive(flowd_server_t *srv, flowd_req_t *r,
                                        struct MHD_Connection *conn) {
    enum MHD_Result ret = MHD_YES;
    redrive_src_t src = {0};
    json_t *shared = NULL;
    flow_def_t *def = NULL;
    const char *idem = NULL;
    if (resubmit_prologue(srv, r, conn, &idem, &ret) < 0)
        return ret;
    /* the key goes with the job it redrives, as a POST's goes with its body */
    char what[FLOWD_ID_LEN + 16];
    int wlen = snprintf(what, sizeof what, "redrive %.*s",
                        (int)(r->args.len[0] > FLOWD_ID_LEN ? FLOWD_ID_LEN : r->args.len[0]),
                        r->args.s[0]);
    uint64_t hash = flowd_hash_bytes(what, (size_t)wlen);
    if (idem != NULL && idem_elsewhere(srv, r, conn, idem, hash, &ret))
        return ret;
    flowd_snapshot_clear(&r->snap);
    r->snap.want = FLOWD_SNAP_REDRIVE;
    int where = locate(srv, r, conn, r->args.s[0], r->args.len[0], &ret);
    if (where < 0)
        return ret;
    int rc = 0;
    if (where == 0) {
        rc = redrive_of_record(&src, r->job);
        flowd_job_unref(r->job); /* r->job becomes the new job */
        r->job = NULL;
    } else {
        redrive_of_row(&src, &r->snap.row);
    }
    if (rc < 0) {
        ret = flowd__http_send_json(r, conn, 500, NULL, 0);
        goto out;
    }
    if (!src.ended || (src.status != FLOW_FAILED && src.status != FLOW_CANCELED)) {
        ret = flowd__http_send_error(r, conn, FLOWD_E_NOT_REDRIVABLE,
                                     "job %s has status %s: only a job that failed or was "
                                     "canceled can be redriven",
                                     src.id, flow_status_name(src.status));
        goto out;
    }
    if (src.base == NULL && src.at_step) {
        /* a store with patches makes it again from its last whole store at or before that step
         * and the patches after (blocking: this is an HTTP thread) */
        rc = flowd_store_shared_at(srv->store, src.id, src.step, 0, &shared, NULL);
        if (rc == FLOW_ESTATE || rc == FLOW_ENOTFOUND) {
            ret = flowd__http_send_error(r, conn, FLOWD_E_NOT_KEPT,
                                         "job %s cannot be redriven: the shared store after its "
                                         "step %llu, which it would start again from, is no "
                                         "longer kept",
                                         src.id, (unsigned long long)src.step);
            goto out;
        }
        if (rc < 0) {
            ret = flowd__http_send_error(r, conn, FLOWD_E_UNAVAILABLE,
                                         "job %s's shared store could not be read: %s", src.id,
                                         flow_strerror(rc));
            goto out;
        }
    } else if (src.base == NULL) {
        ret = flowd__http_send_error(r, conn, FLOWD_E_NOT_KEPT,
                                     "job %s cannot be redriven: the shared store it would start "
                                     "again from was not kept (%s)",
                                     src.id, srv->store->ops->checkpoint == NULL
                                                 ? "--store memory: keeps no checkpoints"
                                                 : "it never ran a step, or ended before this "
                                                   "flowd kept them");
        goto out;
    }
    def = flow_registry_get_flow(srv->reg, src.flow);
    if (def == NULL) {
        ret = flowd__http_unknown_flow(srv, r, conn, src.flow);
        goto out;
    }
    if (src.node != NULL && flow_def_find(def, src.node) == NULL) {
        ret = flowd__http_send_error(r, conn, FLOWD_E_NODE_GONE,
                                     "job %s stopped at node '%.64s', which the flow %.64s has no "
                                     "more (its document changed): it cannot be redriven",
                                     src.id, src.node, src.flow);
        goto out;
    }
    if (shared == NULL)
        shared = json_loads(src.base, 0, NULL);
    if (shared == NULL) {
        ret = flowd__http_send_error(r, conn, FLOWD_E_INTERNAL, "job %s's stored state is not JSON",
                                     src.id);
        goto out;
    }
    char *origin = redrive_origin(&src);
    ret = resubmit(srv, r, conn, &src, def, shared, origin, src.node, idem, hash);
    shared = NULL; /* resubmit took it */
out:
    json_decref(shared);
    flow_def_unref(def);
    redrive_src_clear(&src);
    return ret;
}

/* ---- fork ---- */

/* What an Idempotency-Key of a fork goes with: the job it forks and the body, as a POST's goes
 * with its body. */
static uint64_t fork_hash(const flowd_req_t *r) {
    char what[FLOWD_ID_LEN + 32];
    int wlen = snprintf(what, sizeof what, "fork %.*s %016llx",
                        (int)(r->args.len[0] > FLOWD_ID_LEN ? FLOWD_ID_LEN : r->args.len[0]),
                        r->args.s[0], (unsigned long long)flowd_hash_bytes(r->body, r->len));
    return flowd_hash_bytes(what, (size_t)wlen);
}

/* The seq and node of the last root-level step of steps before seq `seq` (dir -1) or the first
 * after it (dir 1), into "step 4 ('b')"; "none" when there is none. */
static void root_step_near(const json_t *steps, uint64_t seq, int dir, char *out, size_t len) {
    size_t n = json_array_size(steps);
    snprintf(out, len, "none");
    for (size_t k = 0; k < n; k++) {
        json_t *st = json_array_get(steps, dir < 0 ? n - 1 - k : k);
        uint64_t at = (uint64_t)json_integer_value(json_object_get(st, "seq"));
        if ((dir < 0 ? at < seq : at > seq) &&
            json_integer_value(json_object_get(st, "depth")) == 0) {
            snprintf(out, len, "step %llu ('%.64s')", (unsigned long long)at,
                     json_string_value(json_object_get(st, "node")));
            return;
        }
    }
}

/* The node a fork after step n continues at, in the flow's current version def: the root-level
 * node that follows step n's node for its action (*start, borrowed from def; NULL for step 0: the
 * flow's start). 0, or -1 after answering into *ret: 404 unknown_step, 410 step_not_kept (the
 * history no longer has it), 409 not_forkable (inside a sub-flow, a step that failed, one after
 * which the flow ends), 409 node_gone. */
static int fork_start(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                      const char *id, const json_t *hist, const flow_def_t *def, uint64_t n,
                      const char **start, enum MHD_Result *ret) {
    (void)srv;
    const json_t *steps = json_object_get(hist, "steps");
    uint64_t total = (uint64_t)json_integer_value(
        json_object_get(json_object_get(hist, "totals"), "steps"));
    json_t *st = NULL, *at;
    size_t i;
    *start = NULL;
    if (n > total) {
        *ret = flowd__http_send_error(r, conn, FLOWD_E_UNKNOWN_STEP,
                                      "job %s has not finished step %llu (it has finished %llu)",
                                      id, (unsigned long long)n, (unsigned long long)total);
        return -1;
    }
    if (n == 0)
        return 0;
    json_array_foreach(steps, i, at) {
        if ((uint64_t)json_integer_value(json_object_get(at, "seq")) == n)
            st = at;
    }
    if (st == NULL) {
        json_t *first = json_array_get(steps, 0);
        *ret = flowd__http_send_error(
            r, conn, FLOWD_E_STEP_NOT_KEPT,
            "the history of job %s no longer has step %llu, which says the node a fork goes on "
            "after: it keeps the last steps (--history-limit), from step %llu",
            id, (unsigned long long)n,
            (unsigned long long)json_integer_value(json_object_get(first, "seq")));
        return -1;
    }
    const char *node = json_string_value(json_object_get(st, "node"));
    const char *action = json_string_value(json_object_get(st, "action"));
    if (node == NULL)
        node = "";
    if (json_integer_value(json_object_get(st, "depth")) > 0) {
        char before[96], after[96];
        root_step_near(steps, n, -1, before, sizeof before);
        root_step_near(steps, n, 1, after, sizeof after);
        *ret = flowd__http_send_error(
            r, conn, FLOWD_E_NOT_FORKABLE,
            "step %llu of job %s ran '%.64s' inside a sub-flow: a fork goes on after a root-level "
            "step (the root-level steps around it: before, %s; after, %s)",
            (unsigned long long)n, id, node, before, after);
        return -1;
    }
    if (action == NULL) {
        char before[96];
        root_step_near(steps, n, -1, before, sizeof before);
        *ret = flowd__http_send_error(
            r, conn, FLOWD_E_NOT_FORKABLE,
            "step %llu of job %s failed at '%.64s': nothing follows it (fork after the root-level "
            "step before it, %s, to run '%.64s' again)",
            (unsigned long long)n, id, node, before, node);
        return -1;
    }
    const flow_node_t *from = flow_def_find(def, node);
    if (from == NULL) {
        *ret = flowd__http_send_error(r, conn, FLOWD_E_NODE_GONE,
                                      "step %llu of job %s ran node '%.64s', which the flow %.64s "
                                      "has no more (its document changed): it cannot be forked "
                                      "there",
                                      (unsigned long long)n, id, node, flow_def_name(def));
        return -1;
    }
    const flow_node_t *next = flow_node_succ(from, action);
    if (next == NULL) {
        *ret = flowd__http_send_error(
            r, conn, FLOWD_E_NOT_FORKABLE,
            "after step %llu of job %s ('%.64s', action '%.64s') the flow %.64s ends: no node "
            "follows it to run",
            (unsigned long long)n, id, node, action, flow_def_name(def));
        return -1;
    }
    *start = flow_node_name(next);
    return 0;
}

/* POST /v1/jobs/{id}/fork has read the job (r->snap: its history, and what a redrive takes): a new
 * job from its store as of after step r->step, patched with r->fork_patch, at the node after
 * that step. On this HTTP thread: the store's read blocks. */
static enum MHD_Result fork_read(flowd_server_t *srv, flowd_req_t *r,
                                 struct MHD_Connection *conn) {
    enum MHD_Result ret = MHD_YES;
    redrive_src_t src = {0};
    json_t *hist = NULL, *shared = NULL;
    flow_def_t *def = NULL;
    const char *start = NULL;
    uint64_t n = r->step, oldest = 0;
    char why[512];
    int rc = 0;
    if (r->snap.remote) {
        redrive_of_row(&src, &r->snap.row);
    } else {
        rc = redrive_of_record(&src, r->job);
        flowd_job_unref(r->job); /* r->job becomes the new job */
        r->job = NULL;
    }
    if (rc < 0) {
        ret = flowd__http_send_json(r, conn, 500, NULL, 0);
        goto out;
    }
    if (srv->store->ops->shared_at == NULL) {
        ret = flowd__http_send_error(r, conn, FLOWD_E_NOT_KEPT,
                                     "job %s cannot be forked: the %s store keeps no shared store "
                                     "of past steps (%s)",
                                     src.id, srv->store->ops->name,
                                     srv->store->ops->checkpoint == NULL
                                         ? "--store memory: keeps no checkpoints"
                                         : "--store sqlite:PATH does");
        goto out;
    }
    if (r->snap.history_rc == 0)
        hist = json_loadb(r->snap.history, r->snap.history_len, 0, NULL);
    if (hist == NULL) {
        ret = flowd__http_send_error(r, conn, FLOWD_E_INTERNAL,
                                     "the history of job %s could not be read: %s", src.id,
                                     flow_strerror(r->snap.history_rc ? r->snap.history_rc
                                                                      : FLOW_ENOMEM));
        goto out;
    }
    def = flow_registry_get_flow(srv->reg, src.flow);
    if (def == NULL) {
        ret = flowd__http_unknown_flow(srv, r, conn, src.flow);
        goto out;
    }
    if (fork_start(srv, r, conn, src.id, hist, def, n, &start, &ret) < 0)
        goto out;
    /* blocking: this is an HTTP thread */
    rc = flowd_store_shared_at(srv->store, src.id, n, 0, &shared, &oldest);
    if (rc == FLOW_ENOTFOUND) {
        ret = flowd__http_send_error(r, conn, FLOWD_E_UNKNOWN_STEP,
                                     "job %s has not finished step %llu", src.id,
                                     (unsigned long long)n);
        goto out;
    }
    if (rc == FLOW_ESTATE) {
        ret = flowd__http_send_error(r, conn, FLOWD_E_STEP_NOT_KEPT,
                                     "the shared store of job %s as of step %llu is no longer "
                                     "kept: the oldest kept is as of step %llu "
                                     "(--snapshot-steps, --snapshot-bytes)",
                                     src.id, (unsigned long long)n, (unsigned long long)oldest);
        goto out;
    }
    if (rc < 0) {
        ret = flowd__http_send_error(r, conn, FLOWD_E_INTERNAL,
                                     "the shared store of job %s as of step %llu could not be "
                                     "read: %s",
                                     src.id, (unsigned long long)n, flow_strerror(rc));
        goto out;
    }
    if (r->fork_patch != NULL) {
        rc = flowd_patch_apply(shared, r->fork_patch, why, sizeof why);
        if (rc < 0) {
            ret = rc == FLOW_ENOMEM
                      ? flowd__http_send_json(r, conn, 500, NULL, 0)
                      : flowd__http_send_error(r, conn, FLOWD_E_INVALID_PATCH,
                                               "field 'shared' cannot be applied to the store of "
                                               "job %s as of step %llu: %s",
                                               src.id, (unsigned long long)n, why);
            goto out;
        }
    }
    if (flowd_json_size(shared, srv->cfg.max_shared) > srv->cfg.max_shared) {
        ret = flowd__http_send_error(r, conn, FLOWD_E_PAYLOAD_TOO_LARGE,
                                     "the shared store the fork would start from is over %zu "
                                     "bytes as JSON, the limit of a job's store (--max-shared)",
                                     srv->cfg.max_shared);
        goto out;
    }
    json_t *o = json_pack("{s:s, s:I}", "job", src.id, "step", (json_int_t)n);
    char *origin = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    const char *idem = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    ret = resubmit(srv, r, conn, &src, def, shared, origin, start, idem, idem ? fork_hash(r) : 0);
    shared = NULL; /* resubmit took it */
out:
    json_decref(hist);
    json_decref(shared);
    flow_def_unref(def);
    redrive_src_clear(&src);
    return ret;
}

/* POST /v1/jobs/{id}/fork {"step": N, "shared": patch}: Temporal's reset. A new job from the
 * job's shared store as of after its step N (0: the store it started with), the patch applied,
 * that goes on at the root-level node after that step in the flow's current version, with the
 * job's params, callback, priority and concurrency key. Any job whose step N has finished may be
 * forked, running ones too. */
enum MHD_Result flowd__http_job_fork(flowd_server_t *srv, flowd_req_t *r,
                                     struct MHD_Connection *conn) {
    static const char example[] =
        "{\"step\": 2, \"shared\": [{\"op\": \"replace\", \"path\": \"/n\", \"value\": 1}]}";
    static const char *const fields[] = {"step", "shared", NULL};
    enum MHD_Result ret = MHD_YES;
    json_t *body = flowd__http_body_object(r, conn, example, fields, "step and shared", &ret);
    if (body == NULL)
        return ret;
    json_t *step = json_object_get(body, "step");
    json_t *patch = json_object_get(body, "shared");
    if (step == NULL || !json_is_integer(step) || json_integer_value(step) < 0) {
        ret = flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST,
                                     step == NULL
                                         ? "missing field 'step': the number (seq) of the step "
                                           "the new job goes on after, 0 for the store the job "
                                           "started with; e.g. %s"
                                         : "field 'step' must be a step's number (seq), 0 or "
                                           "more; e.g. %s",
                                     example);
        json_decref(body);
        return ret;
    }
    if (patch != NULL && !json_is_array(patch)) {
        ret = flowd__http_send_error(r, conn, FLOWD_E_BAD_REQUEST,
                                     "field 'shared' must be an RFC 6902 JSON Patch (an array of "
                                     "operations), not %s",
                                     flowd__http_type_name(patch));
        json_decref(body);
        return ret;
    }
    r->step = (uint64_t)json_integer_value(step);
    r->fork_patch = json_incref(patch);
    json_decref(body);
    const char *idem = NULL;
    if (resubmit_prologue(srv, r, conn, &idem, &ret) < 0)
        return ret;
    if (idem != NULL && idem_elsewhere(srv, r, conn, idem, fork_hash(r), &ret))
        return ret;
    return snapshot_read(srv, r, conn, r->args.s[0], r->args.len[0],
                         FLOWD_SNAP_HISTORY | FLOWD_SNAP_REDRIVE, NULL, fork_read);
}

/* The Deliveries object from a shared store's rows: begun at the first, once the callback is read. */
typedef struct stored_render {
    flowd_jw_t *jw;
    const char *id;
    char *callback;
    int begun;
} stored_render_t;

static int render_stored(void *data, const flowd_stored_delivery_t *d) {
    stored_render_t *sr = data;
    if (!sr->begun) {
        flowd_webhooks_render_begin(sr->jw, sr->id, sr->callback);
        sr->begun = 1;
    }
    flowd_webhooks_render_stored(sr->jw, d);
    return 0;
}

enum MHD_Result flowd__http_job_deliveries(flowd_server_t *srv, flowd_req_t *r,
                                           struct MHD_Connection *conn) {
    enum MHD_Result ret = MHD_YES;
    flow_buf_t b;
    flowd_jw_t jw;
    flowd_answer_t a = {0};
    flow_buf_init(&b, flowd_render_max_answer());
    flowd_jw_init(&jw, &b, 2);
    if (srv->store->cluster != NULL) {
        /* whichever instance runs the job or makes its deliveries: the database has them all */
        const char *id = r->args.s[0];
        size_t len = r->args.len[0];
        char key[FLOWD_ID_LEN + 1];
        snprintf(key, sizeof key, "%.*s", (int)(len < FLOWD_ID_LEN ? len : FLOWD_ID_LEN), id);
        stored_render_t sr = {.jw = &jw, .id = key};
        int rc = len == FLOWD_ID_LEN ? srv->store->cluster->read_deliveries(
                                           srv->store, key, flowd__http_scope(r), &sr.callback,
                                           render_stored, &sr)
                                     : FLOW_ENOTFOUND;
        if (rc < 0) {
            free(sr.callback);
            flow_buf_free(&b);
            if (rc == FLOW_ENOTFOUND)
                return flowd__http_send_error(r, conn, FLOWD_E_NOT_FOUND, "no job with id '%.*s'",
                                              (int)(len > 64 ? 64 : len), id);
            return flowd__http_send_error(r, conn, FLOWD_E_UNAVAILABLE, NULL);
        }
        if (!sr.begun) /* no delivery yet */
            flowd_webhooks_render_begin(&jw, key, sr.callback);
        flowd_webhooks_render_end(&jw);
        free(sr.callback);
    } else {
        /* one instance: its table has every job (locate is 0 or answered 404) */
        if (locate_only(srv, r, conn, r->args.s[0], r->args.len[0], &ret) != 0) {
            flow_buf_free(&b);
            return ret;
        }
        flowd_webhooks_render(&jw, r->job);
    }
    flow_buf_adds(&b, "\n");
    flowd_answer_take(&a, &b, "the deliveries", "a job that waits for input this often has a delivery each time");
    return flowd__http_send_answer(r, conn, &a);
}
