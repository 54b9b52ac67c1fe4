/* http_schedules.c: the routes of /v1/schedules (http_routes.h): add or replace a schedule (PUT),
 * list them, read one with its next runs, delete one, pause and resume one. The table and the runs
 * are schedules.c's; this file reads the requests and answers. A schedule's jobs belong to the
 * tenant of the key that PUT it. */
#include "http_int.h"

#include <stdio.h>
#include <string.h>

#include "flow/doc.h"
#include "log.h"
#include "schedules.h"

#define SCHEDULE_HINT "a schedule's shared store and params are at most --max-body"

/* The route's {name} when it can be a schedule's name (else 400 for a PUT, which would make one,
 * 404 otherwise), to fn. */
static enum MHD_Result with_name(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                                 flowd_named_fn fn) {
    return flowd__http_with_name(srv, r, conn, "schedule", FLOWD_E_NOT_FOUND, fn);
}

static enum MHD_Result no_schedule(flowd_req_t *r, struct MHD_Connection *conn, const char *key) {
    return flowd__http_send_error(r, conn, FLOWD_E_NOT_FOUND, "no schedule named '%s'", key);
}

static enum MHD_Result send_buf(flowd_req_t *r, struct MHD_Connection *conn, unsigned status,
                                flow_buf_t *b) {
    if (b->err) {
        flowd_answer_t a = {0};
        flowd_answer_take(&a, b, "the schedule", SCHEDULE_HINT);
        return flowd__http_send_answer(r, conn, &a);
    }
    size_t len = 0;
    char *body = flow_buf_take(b, &len);
    return flowd__http_send_json(r, conn, status, body, len);
}

static enum MHD_Result schedule_put(flowd_server_t *srv, flowd_req_t *r,
                                    struct MHD_Connection *conn, const char *key) {
    static const char example[] =
        "{\"cron\": \"*/5 * * * *\", \"timezone\": \"Europe/Paris\", \"flow\": \"noop\"}";
    enum MHD_Result ret = MHD_YES;
    static const char *const fields[] = {"cron",   "timezone", "flow",   "shared",
                                         "params", "overlap",  "paused", NULL};
    json_t *body = flowd__http_body_object(
        r, conn, example, fields, "cron, timezone, flow, shared, params, overlap and paused", &ret);
    if (body == NULL)
        return ret;
    const char *member;
    json_t *v = NULL;
    (void)member;
    json_t *cron = json_object_get(body, "cron"), *zone = json_object_get(body, "timezone");
    json_t *flow = json_object_get(body, "flow"), *shared = json_object_get(body, "shared");
    json_t *params = json_object_get(body, "params"), *overlap = json_object_get(body, "overlap");
    json_t *paused = json_object_get(body, "paused");
    const char *missing = NULL, *field = NULL, *want = NULL;
    flowd_overlap_t ov = FLOWD_OVERLAP_SKIP;
    if (cron == NULL)
        missing = "missing field 'cron': when it runs, e.g. \"*/5 * * * *\" (minute hour day-of-month month "
                  "day-of-week, with an optional seconds field first)";
    else if (flow == NULL)
        missing = "missing field 'flow': the name of a flow this server runs (GET /v1/flows)";
    else if (!json_is_string(cron))
        field = "cron", want = "a string", v = cron;
    else if (!json_is_string(flow))
        field = "flow", want = "a string", v = flow;
    else if (zone != NULL && !json_is_string(zone))
        field = "timezone", want = "a string (an IANA zone such as Europe/Paris)", v = zone;
    else if (shared != NULL && !json_is_object(shared))
        field = "shared", want = "an object", v = shared;
    else if (params != NULL && !json_is_object(params))
        field = "params", want = "an object", v = params;
    else if (paused != NULL && !json_is_boolean(paused))
        field = "paused", want = "a boolean", v = paused;
    else if (overlap != NULL &&
             (!json_is_string(overlap) || flowd_overlap_parse(json_string_value(overlap), &ov) < 0))
        field = "overlap", want = "one of \"skip\", \"allow\", \"cancel_previous\"", v = overlap;
    if (missing != NULL || field != NULL)
        return flowd__http_bad_field(r, conn, body, missing, field, want, v, 1);
    /* the shared store is checked as POST /v1/jobs checks it, once here rather than at each run */
    if (shared != NULL && flowd_json_size(shared, srv->cfg.max_shared) > srv->cfg.max_shared) {
        json_decref(body);
        return flowd__http_send_error(
            r, conn, FLOWD_E_PAYLOAD_TOO_LARGE,
            "the shared store is over %zu bytes as JSON, the limit of a job's store (--max-shared)",
            srv->cfg.max_shared);
    }
    flow_def_t *def = flow_registry_get_flow(srv->reg, json_string_value(flow));
    if (def == NULL) {
        ret = flowd__http_unknown_flow(srv, r, conn, json_string_value(flow));
        json_decref(body);
        return ret;
    }
    flow_def_unref(def);
    char *shared_text = shared ? json_dumps(shared, JSON_COMPACT) : NULL;
    char *params_text = params ? json_dumps(params, JSON_COMPACT) : NULL;
    flowd_schedule_spec_t spec = {.name = key,
                                  .cron = json_string_value(cron),
                                  .timezone = zone ? json_string_value(zone) : "UTC",
                                  .flow = json_string_value(flow),
                                  .shared = shared_text,
                                  .params = params_text,
                                  .overlap = ov,
                                  .paused = json_is_true(paused),
                                  .tenant = r->caller.tenant};
    char err[512] = "";
    int created = 0;
    flow_buf_t b;
    flow_buf_init(&b, flowd_render_max_answer());
    int rc = (shared && !shared_text) || (params && !params_text)
                 ? FLOW_ENOMEM
                 : flowd_schedules_put(srv->schedules, &spec, &created, &b, err, sizeof err);
    free(shared_text);
    free(params_text);
    json_decref(body);
    if (rc == 0) {
        flowd_log(FLOW_LOG_INFO, "schedule %s %s by PUT", key, created ? "added" : "replaced");
        return send_buf(r, conn, created ? 201 : 200, &b);
    }
    flow_buf_free(&b);
    if (rc == FLOW_EINVAL)
        return flowd__http_send_error(r, conn, FLOWD_E_INVALID_SCHEDULE, "%s", err);
    if (rc == FLOW_EBUSY)
        return flowd__http_send_error(r, conn, FLOWD_E_TOO_MANY_SCHEDULES,
                                      "this server holds %u schedules, its limit "
                                      "(--max-schedules); DELETE one, or replace one by its name",
                                      srv->cfg.max_schedules);
    return flowd__http_send_error(r, conn, FLOWD_E_INTERNAL, "the schedule could not be stored");
}

enum MHD_Result flowd__http_schedule_put(flowd_server_t *srv, flowd_req_t *r,
                                         struct MHD_Connection *conn) {
    return with_name(srv, r, conn, schedule_put);
}

static enum MHD_Result schedule_get(flowd_server_t *srv, flowd_req_t *r,
                                    struct MHD_Connection *conn, const char *key) {
    flow_buf_t b;
    flow_buf_init(&b, flowd_render_max_answer());
    if (flowd_schedules_get(srv->schedules, key, &b) < 0) {
        flow_buf_free(&b);
        return no_schedule(r, conn, key);
    }
    return send_buf(r, conn, 200, &b);
}

enum MHD_Result flowd__http_schedule_get(flowd_server_t *srv, flowd_req_t *r,
                                         struct MHD_Connection *conn) {
    return with_name(srv, r, conn, schedule_get);
}

/* A page of the schedules, by name; the cursor is the last name of the page before. */
static enum MHD_Result schedules_page(flowd_server_t *srv, flowd_req_t *r,
                                      struct MHD_Connection *conn, uint64_t limit,
                                      const char *cursor) {
    flow_buf_t b;
    flow_buf_init(&b, flowd_render_max_answer());
    if (flowd_schedules_list(srv->schedules, cursor, (size_t)limit, &b) < 0) {
        flow_buf_free(&b);
        return flowd__http_send_json(r, conn, 500, NULL, 0);
    }
    return flowd__http_send_page(r, conn, &b, "the page of schedules");
}

enum MHD_Result flowd__http_schedules_list(flowd_server_t *srv, flowd_req_t *r,
                                           struct MHD_Connection *conn) {
    return flowd__http_with_page(srv, r, conn, schedules_page);
}

static enum MHD_Result schedule_delete(flowd_server_t *srv, flowd_req_t *r,
                                       struct MHD_Connection *conn, const char *key) {
    int rc = flowd_schedules_remove(srv->schedules, key);
    if (rc == FLOW_ENOTFOUND)
        return no_schedule(r, conn, key);
    if (rc < 0)
        return flowd__http_send_error(r, conn, FLOWD_E_INTERNAL,
                                      "the deletion could not be stored");
    flowd_log(FLOW_LOG_INFO, "schedule %s deleted", key);
    return flowd__http_send_deleted(r, conn, key);
}

enum MHD_Result flowd__http_schedule_delete(flowd_server_t *srv, flowd_req_t *r,
                                            struct MHD_Connection *conn) {
    return with_name(srv, r, conn, schedule_delete);
}

/* POST .../pause and .../resume: the route's path says which. */
static enum MHD_Result pause_resume(flowd_server_t *srv, flowd_req_t *r,
                                    struct MHD_Connection *conn, const char *key) {
    int paused = r->path == FLOWD_P_SCHEDULE_PAUSE;
    flow_buf_t b;
    flow_buf_init(&b, flowd_render_max_answer());
    int rc = flowd_schedules_pause(srv->schedules, key, paused, &b);
    if (rc < 0) {
        flow_buf_free(&b);
        if (rc == FLOW_ENOTFOUND)
            return no_schedule(r, conn, key);
        return flowd__http_send_error(r, conn, FLOWD_E_INTERNAL, "the change could not be stored");
    }
    flowd_log(FLOW_LOG_INFO, "schedule %s %s", key, paused ? "paused" : "resumed");
    return send_buf(r, conn, 200, &b);
}

enum MHD_Result flowd__http_schedule_pause(flowd_server_t *srv, flowd_req_t *r,
                                           struct MHD_Connection *conn) {
    return with_name(srv, r, conn, pause_resume);
}

enum MHD_Result flowd__http_schedule_resume(flowd_server_t *srv, flowd_req_t *r,
                                            struct MHD_Connection *conn) {
    return with_name(srv, r, conn, pause_resume);
}
