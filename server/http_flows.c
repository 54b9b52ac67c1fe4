/* http_flows.c: the routes of /v1/flows (http_routes.h): list the flows, read one, draw one
 * (graph.h; the job graph's answer is made here too), and add, replace or delete one from a flow
 * document (flow/doc.h). The registry has a lock of its own; PUTs take
 * one more, so that two cannot both take the last room under --max-flows. */
#include "http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/doc.h"
#include "flow/problems.h"
#include "flows.h"
#include "log.h"

enum MHD_Result flowd__http_unknown_flow(flowd_server_t *srv, flowd_req_t *r,
                                         struct MHD_Connection *conn, const char *name) {
    flow_buf_t names;
    flow_buf_init(&names, 4096);
    flowd_flow_names(srv->reg, &names);
    enum MHD_Result ret = flowd__http_send_error(r, conn, FLOWD_E_UNKNOWN_FLOW,
                                                 "no flow named '%.64s' (this server runs: %s)",
                                                 name, names.data ? names.data : "none");
    flow_buf_free(&names);
    return ret;
}

/* The route's {name} when it can be a flow's name (else 400 for a PUT, which would make one, 404
 * otherwise), to fn. */
static enum MHD_Result with_name(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                                 flowd_named_fn fn) {
    return flowd__http_with_name(srv, r, conn, "flow", FLOWD_E_UNKNOWN_FLOW, fn);
}

/* The flow the URL names (a reference), or NULL after answering 404 into *ret (a GET's says which
 * flows there are). */
static flow_def_t *named_flow(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                              const char *key, enum MHD_Result *ret) {
    flow_def_t *def = flow_registry_get_flow(srv->reg, key);
    if (def == NULL && r->method == FLOWD_M_GET)
        *ret = flowd__http_unknown_flow(srv, r, conn, key);
    else if (def == NULL)
        *ret = flowd__http_send_error(r, conn, FLOWD_E_UNKNOWN_FLOW, "no flow named '%s'", key);
    return def;
}

static enum MHD_Result flow_get(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                                const char *key) {
    enum MHD_Result ret = MHD_YES;
    flow_def_t *def = named_flow(srv, r, conn, key, &ret);
    if (def == NULL)
        return ret;
    flow_buf_t b;
    flowd_jw_t w;
    flowd_answer_t a = {0};
    flow_buf_init(&b, flowd_render_max_answer());
    flowd_jw_init(&w, &b, 2);
    flowd_flow_write(&w, def, 1);
    flow_def_unref(def);
    flow_buf_addc(&b, '\n');
    flowd_answer_take(&a, &b, "the flow", "its document is at most --max-flow-size");
    return flowd__http_send_answer(r, conn, &a);
}

enum MHD_Result flowd__http_flow_get(flowd_server_t *srv, flowd_req_t *r,
                                     struct MHD_Connection *conn) {
    return with_name(srv, r, conn, flow_get);
}

/* A page of the flows, by name; the cursor is the last name of the page before. */
static enum MHD_Result flows_page(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                                  uint64_t limit, const char *cursor) {
    flow_def_t **defs = NULL;
    size_t n = 0, i = 0, shown = 0;
    if (flow_registry_list_flows(srv->reg, &defs, &n) < 0)
        return flowd__http_send_json(r, conn, 500, NULL, 0);
    while (cursor != NULL && i < n && strcmp(flow_def_name(defs[i]), cursor) <= 0)
        i++;
    flow_buf_t b;
    flowd_jw_t w;
    flow_buf_init(&b, flowd_render_max_answer());
    flowd_jw_init(&w, &b, 2);
    flowd_jw_obj(&w);
    flowd_jw_key(&w, "flows");
    flowd_jw_arr(&w);
    for (; i < n && shown < limit && !b.err; i++, shown++)
        flowd_flow_write(&w, defs[i], 0);
    flowd_jw_arr_end(&w);
    flowd_jw_key(&w, "next_cursor");
    flowd_jw_str(&w, i < n ? flow_def_name(defs[i - 1]) : NULL);
    flowd_jw_obj_end(&w);
    flow_buf_addc(&b, '\n');
    for (size_t k = 0; k < n; k++)
        flow_def_unref(defs[k]);
    flow_free(defs);
    return flowd__http_send_page(r, conn, &b, "the page of flows");
}

enum MHD_Result flowd__http_flows_list(flowd_server_t *srv, flowd_req_t *r,
                                       struct MHD_Connection *conn) {
    return flowd__http_with_page(srv, r, conn, flows_page);
}

static enum MHD_Result flow_put(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                                const char *key) {
    enum MHD_Result ret = MHD_YES;
    json_error_t jerr;
    flow_problems_t problems = FLOW_PROBLEMS_INIT;
    flow_def_t *def = NULL;
    json_t *doc = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        return flowd__http_send_error(r, conn, FLOWD_E_INVALID_JSON,
                                      "the body is not JSON: line %d, column %d: %s", jerr.line,
                                      jerr.column, jerr.text);
    /* The URL names the flow: a document without a name takes it, one with another is refused. */
    json_t *doc_name = json_object_get(doc, "name");
    if (json_is_object(doc) && doc_name == NULL)
        json_object_set_new(doc, "name", json_string(key));
    else if (json_is_string(doc_name) && strcmp(json_string_value(doc_name), key) != 0) {
        flow_problems_add(&problems, "/name", "the document is named '%s' but the URL names '%s'",
                          json_string_value(doc_name), key);
        json_object_set_new(doc, "name",
                            json_string(key)); /* so that its other problems show too */
    }
    int rc = flow_doc_load(srv->reg, doc, &def, &problems);
    if (rc == 0 && problems.count > 0) {
        flow_def_unref(def);
        def = NULL;
        rc = FLOW_ELOAD;
    }
    json_decref(doc);
    if (rc == FLOW_ELOAD) {
        size_t len = 0;
        char *body = flowd_render_problems(&problems, &len);
        ret = flowd__http_send_json(r, conn, flowd_apierr_status(FLOWD_E_INVALID_FLOW), body, len);
    } else if (rc < 0) {
        ret = flowd__http_send_json(r, conn, 500, NULL, 0);
    } else {
        /* one PUT at a time from here, so that two cannot both take the last room (--max-flows) */
        pthread_mutex_lock(&srv->http->flows_lock);
        flow_def_t *old = flow_registry_get_flow(srv->reg, key);
        if (old == NULL && flow_registry_flow_count(srv->reg) >= srv->cfg.max_flows) {
            ret = flowd__http_send_error(
                r, conn, FLOWD_E_TOO_MANY_FLOWS,
                "this server holds %u flows, its limit (--max-flows); DELETE one, or "
                "replace one by its name",
                srv->cfg.max_flows);
        } else if ((rc = srv->store->ops->put_flow(srv->store, key, flow_doc_of(def))) < 0) {
            ret = flowd__http_send_error(r, conn, FLOWD_E_INTERNAL, "the flow could not be stored");
        } else if ((rc = flow_registry_put_flow(srv->reg, def, NULL)) < 0) {
            ret = flowd__http_send_json(r, conn, 500, NULL, 0);
        } else {
            flowd_log(FLOW_LOG_INFO, "flow %s %s by PUT", key, old ? "replaced" : "added");
            flow_buf_t b;
            flowd_jw_t w;
            flow_buf_init(&b, 0);
            flowd_jw_init(&w, &b, 2);
            flowd_flow_write(&w, def, 1);
            flow_buf_addc(&b, '\n');
            size_t len = 0;
            char *body = flow_buf_take(&b, &len);
            ret = flowd__http_send_json(r, conn, old ? 200 : 201, body, len);
        }
        pthread_mutex_unlock(&srv->http->flows_lock);
        flow_def_unref(old);
        flow_def_unref(def);
    }
    flow_problems_clear(&problems);
    return ret;
}

enum MHD_Result flowd__http_flow_put(flowd_server_t *srv, flowd_req_t *r,
                                     struct MHD_Connection *conn) {
    return with_name(srv, r, conn, flow_put);
}

static enum MHD_Result flow_delete(flowd_server_t *srv, flowd_req_t *r,
                                   struct MHD_Connection *conn, const char *key) {
    enum MHD_Result ret = MHD_YES;
    flow_def_t *def = named_flow(srv, r, conn, key, &ret);
    if (def == NULL)
        return ret;
    flow_def_unref(def);
    if (srv->store->ops->put_flow(srv->store, key, NULL) < 0)
        return flowd__http_send_error(r, conn, FLOWD_E_INTERNAL,
                                      "the deletion could not be stored");
    if (flow_registry_remove_flow(srv->reg, key) < 0)
        return flowd__http_send_error(r, conn, FLOWD_E_UNKNOWN_FLOW, "no flow named '%s'", key);
    flowd_log(FLOW_LOG_INFO, "flow %s deleted", key);
    return flowd__http_send_deleted(r, conn, key);
}

enum MHD_Result flowd__http_flow_delete(flowd_server_t *srv, flowd_req_t *r,
                                        struct MHD_Connection *conn) {
    return with_name(srv, r, conn, flow_delete);
}

enum MHD_Result flowd__http_send_graph(flowd_server_t *srv, flowd_req_t *r,
                                       struct MHD_Connection *conn, const flow_def_t *def,
                                       const flowd_graph_marks_t *marks, int has_version,
                                       uint64_t version) {
    static const char type[] = "image/svg+xml";
    if (has_version) {
        r->etag = version;
        r->has_etag = 1;
        if (flowd__http_if_none_match(conn, version))
            return flowd__http_send(r, conn, 304, strdup(""), 0, type);
    }
    char *svg = NULL;
    size_t len = 0, items = 0;
    int rc = flowd_graph_svg(def, marks, srv->cfg.max_graph, &svg, &len, &items);
    if (rc == FLOW_ETOOBIG)
        return flowd__http_send_error(r, conn, FLOWD_E_GRAPH_TOO_LARGE,
                                      "flow %.64s has %zu nodes and edges, more than this server "
                                      "draws (--max-graph %u); its document and the Mermaid text "
                                      "of GET /v1/flows/%.64s show it",
                                      flow_def_name(def), items, srv->cfg.max_graph,
                                      flow_def_name(def));
    if (rc < 0) {
        flowd_log(FLOW_LOG_WARN, "the graph of flow %s could not be drawn: %s", flow_def_name(def),
                  flow_strerror(rc));
        return flowd__http_send_error(r, conn, FLOWD_E_INTERNAL, "the graph could not be drawn");
    }
    return flowd__http_send(r, conn, 200, svg, len, type);
}

static enum MHD_Result flow_graph(flowd_server_t *srv, flowd_req_t *r, struct MHD_Connection *conn,
                                  const char *key) {
    enum MHD_Result ret = MHD_YES;
    flow_def_t *def = named_flow(srv, r, conn, key, &ret);
    if (def == NULL)
        return ret;
    /* a document's digest tells its versions apart: the graph's ETag (none for a flow in C) */
    const char *digest = flow_doc_digest(def);
    uint64_t version = digest ? strtoull(digest, NULL, 16) : 0;
    ret = flowd__http_send_graph(srv, r, conn, def, NULL, digest != NULL, version);
    flow_def_unref(def);
    return ret;
}

enum MHD_Result flowd__http_flow_graph(flowd_server_t *srv, flowd_req_t *r,
                                       struct MHD_Connection *conn) {
    return with_name(srv, r, conn, flow_graph);
}
