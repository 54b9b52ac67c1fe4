/* flows.c: the compiled-in flows of flows.h, loading flow documents from a directory, the Flow
 * description of GET /v1/flows/{name}, and the versions of flows that stored jobs started with. */
#include "flows.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/doc.h"
#include "log.h"
#include "flow/problems.h"

/* ---- sleep ---- */

static int sleep_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    json_t *s = json_object_get(shared, "seconds");
    if (s == NULL)
        return flow_error(ctx, FLOW_EINVAL,
                          "shared.seconds is missing: the sleep flow waits that many seconds "
                          "(a number from 0 to %d)", FLOWD_SLEEP_MAX_S);
    double v = json_number_value(s);
    if (!json_is_number(s) || !isfinite(v) || v < 0 || v > FLOWD_SLEEP_MAX_S)
        return flow_error(ctx, FLOW_EINVAL, "shared.seconds must be a number from 0 to %d",
                          FLOWD_SLEEP_MAX_S);
    *prep_res = json_incref(s);
    return 0;
}

static void sleep_exec(flow_ctx_t *ctx, json_t *seconds) {
    uint64_t ms = (uint64_t)llround(json_number_value(seconds) * 1000.0);
    flow_sleep(ctx, ms, json_incref(seconds));
}

static int sleep_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                      const char **action) {
    (void)prep_res;
    (void)action;
    if (json_object_set(shared, "slept", exec_res) < 0)
        return flow_error(ctx, FLOW_ENOMEM, "out of memory");
    return 0;
}

static const flow_node_ops_t sleep_ops = {.prep = sleep_prep, .exec = sleep_exec, .post = sleep_post};

/* A definition whose root flow "flow" runs one node. */
static int one_node_flow(const char *name, const char *node, const flow_node_ops_t *ops,
                         flow_def_t **out) {
    flow_def_t *def;
    flow_node_t *root, *n;
    int rc = flow_def_new(name, &def);
    if (rc < 0)
        return rc;
    if ((rc = flow_node_new(def, "flow", FLOW_FLOW, NULL, NULL, &root)) < 0 ||
        (rc = flow_node_new(def, node, FLOW_NODE, ops, NULL, &n)) < 0 ||
        (rc = flow_node_set_start(root, n)) < 0 || (rc = flow_def_set_root(def, root)) < 0) {
        flow_def_unref(def);
        return rc;
    }
    *out = def;
    return 0;
}

int flowd_flows_register(flow_registry_t *reg, flow_error_t *err) {
    for (int i = 0; i < 2; i++) {
        flow_def_t *def = NULL;
        int rc = i == 0 ? one_node_flow("noop", "noop", NULL, &def)
                        : one_node_flow("sleep", "sleep", &sleep_ops, &def);
        if (rc == 0)
            rc = flow_registry_put_flow(reg, def, err);
        flow_def_unref(def);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- descriptions ---- */

void flowd_flow_write(flowd_jw_t *w, const flow_def_t *def, int document) {
    json_t *doc = flow_doc_of(def);
    flowd_jw_obj(w);
    flowd_jw_key(w, "name");
    flowd_jw_str(w, flow_def_name(def));
    flowd_jw_key(w, "source");
    flowd_jw_str(w, doc ? "document" : "compiled-in");
    flowd_jw_key(w, "description");
    flowd_jw_str(w, json_string_value(json_object_get(doc, "description")));
    flowd_jw_key(w, "version");
    flowd_jw_str(w, json_string_value(json_object_get(doc, "version")));
    flowd_jw_key(w, "root");
    flowd_jw_str(w, flow_def_root(def) ? flow_node_name(flow_def_root(def)) : NULL);
    flowd_jw_key(w, "nodes");
    flowd_jw_arr(w);
    for (size_t i = 0; i < flow_def_node_count(def); i++) {
        flow_node_t *n = flow_def_node_at(def, i);
        flow_kind_t kind = flow_node_kind(n);
        flowd_jw_obj(w);
        flowd_jw_key(w, "name");
        flowd_jw_str(w, flow_node_name(n));
        flowd_jw_key(w, "kind");
        flowd_jw_str(w, flow_kind_name(kind));
        if (kind == FLOW_FLOW || kind == FLOW_BATCH_FLOW || kind == FLOW_PARALLEL_BATCH_FLOW) {
            flowd_jw_key(w, "start");
            flowd_jw_str(w, flow_node_start(n) ? flow_node_name(flow_node_start(n)) : NULL);
        }
        flowd_jw_key(w, "max_retries");
        flowd_jw_uint(w, flow_node_max_retries(n));
        flowd_jw_key(w, "wait_ms");
        flowd_jw_uint(w, flow_node_wait(n));
        flowd_jw_key(w, "timeout_ms");
        flowd_jw_uint(w, flow_node_timeout(n));
        flowd_jw_key(w, "limit");
        flowd_jw_uint(w, flow_node_limit(n));
        flowd_jw_key(w, "successors");
        flowd_jw_obj(w);
        for (size_t k = 0; k < flow_node_succ_count(n); k++) {
            const char *action;
            flow_node_t *to;
            if (flow_node_succ_at(n, k, &action, &to) == 0) {
                flowd_jw_key(w, action);
                flowd_jw_str(w, to ? flow_node_name(to) : NULL); /* null: the action ends the flow */
            }
        }
        flowd_jw_obj_end(w);
        flowd_jw_obj_end(w);
    }
    flowd_jw_arr_end(w);
    flowd_jw_key(w, "mermaid");
    char *mermaid = NULL;
    if (flow_def_mermaid(def, &mermaid) == 0) {
        flowd_jw_str(w, mermaid);
        flow_free(mermaid);
    } else {
        flowd_jw_null(w);
    }
    if (document && doc != NULL) {
        flowd_jw_key(w, "document");
        flowd_jw_json(w, doc);
    }
    flowd_jw_obj_end(w);
}

static int is_json_file(const struct dirent *e) {
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 5 && strcmp(e->d_name + n - 5, ".json") == 0;
}

static void log_problems(const flow_problems_t *p) {
    for (size_t i = 0; i < p->count; i++)
        flowd_log(FLOW_LOG_ERROR, "%s: %s", p->items[i].where, p->items[i].message);
    if (p->dropped > 0)
        flowd_log(FLOW_LOG_ERROR, "... and %zu more problems", p->dropped);
}

/* The server's way: a line in the log for each flow loaded, and the problems of those that did not
 * load at the end. */
static void log_report(void *data, const char *path, flow_def_t *def, flow_def_t *old,
                       const flow_problems_t *problems) {
    (void)data;
    if (def == NULL)
        log_problems(problems);
    else
        flowd_log(FLOW_LOG_INFO, "flow %s from %s%s", flow_def_name(def), path,
                  old && flow_doc_of(old) == NULL ? " (in place of the compiled-in one)" : "");
}

int flowd_flows_load_files(flow_registry_t *reg, const char *const *paths, size_t n,
                           flowd_flows_report_fn report, void *data) {
    flow_problems_t *problems = calloc(n + 1, sizeof *problems);
    flow_def_t **defs = calloc(n + 1, sizeof *defs);
    flow_def_t **olds = calloc(n + 1, sizeof *olds);
    size_t left = n;
    int rc = 0, progress = 1;
    if (report == NULL)
        report = log_report;
    if (problems == NULL || defs == NULL || olds == NULL) {
        rc = FLOW_ENOMEM;
        goto out;
    }
    /* A document may use another as a sub-flow only once that one is registered: pass again while
     * a pass loads something. */
    while (left > 0 && progress) {
        progress = 0;
        for (size_t i = 0; i < n; i++) {
            if (defs[i] != NULL)
                continue;
            flow_def_t *def = NULL;
            flow_problems_clear(&problems[i]);
            int r = flow_doc_load_file(reg, paths[i], &def, &problems[i]);
            if (r == FLOW_ENOMEM) {
                rc = r;
                goto out;
            }
            if (r < 0)
                continue;
            olds[i] = flow_registry_get_flow(reg, flow_def_name(def));
            r = flow_registry_put_flow(reg, def, NULL);
            defs[i] = def;
            if (r < 0) {
                rc = r;
                goto out;
            }
            left--;
            progress = 1;
        }
    }
    for (size_t i = 0; i < n; i++)
        report(data, paths[i], defs[i], olds[i], &problems[i]);
    if (left > 0)
        rc = FLOW_ELOAD;
out:
    for (size_t i = 0; i < n; i++) {
        if (problems != NULL)
            flow_problems_clear(&problems[i]);
        if (defs != NULL)
            flow_def_unref(defs[i]);
        if (olds != NULL)
            flow_def_unref(olds[i]);
    }
    free(problems);
    free(defs);
    free(olds);
    return rc;
}

int flowd_flows_load_dir(flow_registry_t *reg, const char *dir) {
    struct dirent **files = NULL;
    int n = scandir(dir, &files, is_json_file, alphasort);
    if (n < 0) {
        flowd_log(FLOW_LOG_ERROR, "--flows %s: %s", dir, strerror(errno));
        return FLOW_EIO;
    }
    char **paths = calloc((size_t)n + 1, sizeof *paths);
    int rc = paths == NULL ? FLOW_ENOMEM : 0;
    for (int i = 0; i < n && paths != NULL; i++) { /* every bad name, not only the first */
        if (!flow_doc_name_ok(files[i]->d_name, strlen(files[i]->d_name) - 5)) {
            flowd_log(FLOW_LOG_ERROR,
                      "--flows %s/%s: a flow file is NAME.json, and a name is " FLOW_DOC_NAME_RULE,
                      dir, files[i]->d_name);
            rc = FLOW_ELOAD;
        }
    }
    for (int i = 0; i < n && rc == 0; i++) {
        size_t len = strlen(dir) + strlen(files[i]->d_name) + 2;
        paths[i] = malloc(len);
        if (paths[i] == NULL)
            rc = FLOW_ENOMEM;
        else
            snprintf(paths[i], len, "%s/%s", dir, files[i]->d_name);
    }
    if (rc == 0)
        rc = flowd_flows_load_files(reg, (const char *const *)paths, (size_t)n, NULL, NULL);
    for (int i = 0; i < n; i++) {
        if (paths != NULL)
            free(paths[i]);
        free(files[i]);
    }
    free(files);
    free(paths);
    return rc;
}

void flowd_flow_names(flow_registry_t *reg, flow_buf_t *b) {
    flow_def_t **defs = NULL;
    size_t n = 0;
    if (flow_registry_list_flows(reg, &defs, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            flow_buf_adds(b, ", ");
        flow_buf_adds(b, flow_def_name(defs[i]));
        flow_def_unref(defs[i]);
    }
    flow_free(defs);
}

/* ---- versions of stored jobs' flows ---- */

flow_def_t *flowd_flow_version(flowd_flow_versions_t *v, flow_registry_t *reg, const char *flow,
                               const char *document) {
    if (document == NULL) /* written in C: the flow of that name, if this instance has it */
        return flow_registry_get_flow(reg, flow);
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->texts[i], document) == 0)
            return v->defs[i] ? flow_def_ref(v->defs[i]) : NULL;
    json_t *doc = json_loads(document, 0, NULL);
    flow_def_t *def = NULL;
    if (doc == NULL || flow_doc_load(reg, doc, &def, NULL) < 0)
        def = NULL;
    json_decref(doc);
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        char **texts = realloc(v->texts, cap * sizeof *texts);
        if (texts != NULL)
            v->texts = texts;
        flow_def_t **defs = texts ? realloc(v->defs, cap * sizeof *defs) : NULL;
        if (defs == NULL)
            return def; /* not kept: built again next time */
        v->defs = defs;
        v->cap = cap;
    }
    v->texts[v->n] = strdup(document);
    if (v->texts[v->n] == NULL)
        return def;
    v->defs[v->n++] = def ? flow_def_ref(def) : NULL;
    return def;
}

void flowd_flow_versions_clear(flowd_flow_versions_t *v) {
    for (size_t i = 0; i < v->n; i++) {
        free(v->texts[i]);
        flow_def_unref(v->defs[i]);
    }
    free(v->texts);
    free(v->defs);
    *v = (flowd_flow_versions_t){0};
}
