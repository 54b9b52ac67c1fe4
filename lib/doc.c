/* doc.c: the flow-document loader. It checks a whole document, reporting every problem with its place,
 * and builds the definition: each node from its type's factory, map nodes as parallel batches over
 * an item node or a sub-flow, flow nodes with the named flow inlined under the node's name
 * ("summarize/ask"), successors, the start node, and the params the flow declares. A document's
 * "outbound" allow list goes to the http nodes it holds, those of its sub-flows included; a flow
 * of the server inlined by a "flow" or "map" node keeps its own document's list. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "flow/doc.h"
#include "internal.h"
#include "flow/jsonpos.h"
#include "nodes_int.h"
#include "flow/pointer.h"
#include "template.h"

#define NAME_MAX_LEN 64

typedef struct loader {
    flow_registry_t *reg;
    flow_def_t *def;
    flow_problems_t *problems;
    flow_problems_t scratch;     /* problems of graphs already checked once, dropped */
    const char *chain[FLOW_DOC_MAX_NESTING + 2];
    int depth;
    size_t nodes;
    json_t *checked;             /* sub-flows of the document already checked: "name" -> true */
    flow__scripts_t *scripts;    /* the Lua states of the documents met (script_node.c) */
    flow_netrules_t *outbound;   /* the document's "outbound" allow list (owned), or NULL */
    int failed;                  /* a problem or an error was met */
} loader_t;

/* One graph: the top of a document or a sub-flow, built into the sub-graph of a flow-kind node. */
typedef struct graph {
    json_t *doc;       /* the document the graph is part of */
    json_t *g;         /* {"params", "start", "nodes"} */
    const char *where; /* JSON Pointer of g in the document being loaded */
    const char *prefix;
    json_t *declared;  /* object: the names of the params nodes may refer to */
    flow_node_t *flow;
    int quiet;         /* checked elsewhere already: its problems go to scratch */
    flow_netrules_t *outbound; /* the allow list of doc for its http nodes (borrowed), or NULL */
} graph_t;

static int problem(loader_t *L, const graph_t *gr, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int problem(loader_t *L, const graph_t *gr, const char *where, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    flow_problems_addv(gr && gr->quiet ? &L->scratch : L->problems, where, fmt, ap);
    va_end(ap);
    L->failed = 1;
    return FLOW_ELOAD;
}

static flow_problems_t *problems_of(loader_t *L, const graph_t *gr) {
    return gr->quiet ? &L->scratch : L->problems;
}

/* where + "/" + the escaped token, into buf. */
static const char *join(char *buf, size_t cap, const char *where, const char *token) {
    size_t n = (size_t)snprintf(buf, cap, "%s/", where);
    for (const char *p = token; *p != '\0' && n + 3 < cap; p++) {
        if (*p == '~' || *p == '/') {
            buf[n++] = '~';
            buf[n++] = *p == '~' ? '0' : '1';
        } else {
            buf[n++] = *p;
        }
    }
    buf[n < cap ? n : cap - 1] = '\0';
    return buf;
}

int flow_doc_name_ok(const char *name, size_t len) {
    if (len == 0 || len > NAME_MAX_LEN || !((name[0] >= 'a' && name[0] <= 'z') ||
                                             (name[0] >= 'A' && name[0] <= 'Z') ||
                                             (name[0] >= '0' && name[0] <= '9')))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static size_t max_bytes = FLOW_DOC_MAX_BYTES;
static const char *max_bytes_name;

void flow_doc_set_max_bytes(size_t bytes, const char *name) {
    max_bytes = bytes ? bytes : FLOW_DOC_MAX_BYTES;
    max_bytes_name = name;
}

/* A node's or a sub-flow's name. */
static int valid_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-'))
            return 0;
    return 1;
}

static int only_keys(loader_t *L, const graph_t *gr, json_t *obj, const char *where, const char *const *names,
                     const char *what) {
    const char *key;
    json_t *v;
    char at[512];
    int rc = 0;
    json_object_foreach(obj, key, v) {
        int ok = 0;
        for (const char *const *n = names; *n != NULL; n++)
            ok |= strcmp(*n, key) == 0;
        if (!ok)
            rc = problem(L, gr, join(at, sizeof at, where, key), "unknown member \"%s\" of %s", key, what);
    }
    return rc;
}

/* ---- "$params/name" references must name a declared param ---- */

typedef struct param_check {
    loader_t *L;
    const graph_t *gr;
    const char *where;
} param_check_t;

/* A reference as the template module reads it (so its pointer is well-formed): the first token after
 * "$params" must be a declared param. Only that token is looked up, with its "/" in front, as a
 * pointer into the declared params. */
static int check_param_ref(void *data, const char *ref, size_t len) {
    const param_check_t *pc = data;
    json_t *found;
    size_t end = 8;
    if (len < 8 || memcmp(ref, "$params/", 8) != 0)
        return 0;
    while (end < len && ref[end] != '/')
        end++;
    if (flow_pointer_getn(pc->gr->declared, ref + 7, end - 7, &found) == FLOW_ENOTFOUND)
        problem(pc->L, pc->gr, pc->where, "%.*s is not a param this flow declares (its \"params\")",
                (int)(end < 200 ? end : 200), ref);
    return 0;
}

/* The pointer templates of set and out are object keys: their references are checked too. */
static int check_key_refs(loader_t *L, const graph_t *gr, const char *key, const char *where) {
    param_check_t pc = {L, gr, where};
    json_t *k;
    int rc;
    if (strstr(key, "{{") == NULL)
        return 0;
    k = json_string(key);
    if (k == NULL)
        return FLOW_ENOMEM;
    rc = flow_template_refs(k, check_param_ref, &pc);
    json_decref(k);
    return rc;
}

static int check_params_used(loader_t *L, const graph_t *gr, json_t *v, const char *where) {
    char at[512];
    const char *key;
    json_t *m;
    size_t i;
    int rc = 0;
    if (v == NULL)
        return 0;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        json_object_foreach(v, key, m) {
            join(at, sizeof at, where, key);
            rc = check_params_used(L, gr, m, at);
            if (rc == 0)
                rc = check_key_refs(L, gr, key, at);
            if (rc < 0)
                break;
        }
        break;
    case JSON_ARRAY:
        json_array_foreach(v, i, m) {
            snprintf(at, sizeof at, "%s/%zu", where, i);
            rc = check_params_used(L, gr, m, at);
            if (rc < 0)
                break;
        }
        break;
    case JSON_STRING: {
        param_check_t pc = {L, gr, where};
        rc = flow_template_refs(v, check_param_ref, &pc);
        break;
    }
    default:
        break;
    }
    return rc;
}

/* ---- "outbound": what the document's http nodes may reach besides the server's policy ---- */

static const char *const outbound_members[] = {"allow", NULL};

/* The http type's environment, which says whether this server takes a flow's own list. */
static const flow_nodes_env_t *net_env(flow_registry_t *reg) {
    flow_type_factory factory;
    void *data;
    if (flow_registry_type(reg, "http", &factory, &data) < 0)
        return NULL;
    return flow__jenv_of(factory, data);
}

/* Compiles doc's "outbound" into *out (a new list; NULL when the document has none). Its entries
 * are text, never references: whoever registered the flow fixed what it may reach, not a job. */
static int load_outbound(loader_t *L, const graph_t *gr, json_t *doc, flow_netrules_t **out) {
    char at[64], why[FLOW_NETRULE_MAX_LEN + 160];
    json_t *outbound = json_object_get(doc, "outbound");
    json_t *allow = json_object_get(outbound, "allow");
    const flow_nodes_env_t *env = net_env(L->reg);
    size_t i;
    json_t *v;
    *out = NULL;
    if (outbound == NULL)
        return 0;
    if (!json_is_object(outbound) || !json_is_array(allow))
        return problem(L, gr, !json_is_object(outbound) ? "/outbound" : "/outbound/allow",
                       "outbound is {\"allow\": [...]}, a list of entries such as "
                       "\"api.example.com:443\", \"10.0.0.0/8\" or \"[::1]:9000\"");
    if (only_keys(L, gr, outbound, "/outbound", outbound_members, "outbound") < 0)
        return FLOW_ELOAD;
    if (env != NULL && env->no_flow_outbound)
        return problem(L, gr, "/outbound",
                       "this server does not take a flow's own outbound allow list (flowd "
                       "--flow-outbound off): its operator allows addresses with --allow-outbound");
    if (json_array_size(allow) > FLOW_NETRULES_MAX)
        return problem(L, gr, "/outbound/allow", "at most %d entries", FLOW_NETRULES_MAX);
    int rc = flow_netrules_new(out);
    if (rc < 0)
        return rc;
    json_array_foreach(allow, i, v) {
        snprintf(at, sizeof at, "/outbound/allow/%zu", i);
        if (!json_is_string(v)) {
            problem(L, gr, at, "an entry is a string, such as \"api.example.com:443\"");
            continue;
        }
        rc = flow_netrules_add(*out, json_string_value(v), json_string_length(v), why, sizeof why);
        if (rc == FLOW_ENOMEM)
            return rc;
        if (rc < 0)
            problem(L, gr, at, "%s", why);
    }
    return 0;
}

/* ---- sub-flows ---- */

/* Finds the flow a "flow" or "map" node names: a sub-flow of this document, or a flow registered
 * from a document. On success *def_ref holds the registered definition (to release) or NULL, and
 * sub->outbound the allow list of the flow's document (a new reference: release it too). */
static int resolve(loader_t *L, const graph_t *gr, const char *name, const char *where, graph_t *sub,
                   flow_def_t **def_ref, char *key, size_t keycap) {
    json_t *flows = json_object_get(gr->doc, "flows");
    json_t *local = json_object_get(flows, name);
    *def_ref = NULL;
    if (json_is_object(local)) {
        sub->doc = gr->doc;
        sub->g = local;
        sub->outbound = flow_netrules_ref(gr->outbound);
        snprintf(key, keycap, "%s/%s", json_string_value(json_object_get(gr->doc, "name")), name);
        return 0;
    }
    flow_def_t *def = flow_registry_get_flow(L->reg, name);
    json_t *doc = def ? flow_doc_of(def) : NULL;
    if (doc == NULL) {
        flow_def_unref(def);
        return problem(L, gr, where, def ? "flow \"%s\" is written in C and cannot be used inside another flow"
                                         : "no flow \"%s\" in this document's \"flows\" or on this server", name);
    }
    sub->doc = doc;
    sub->g = doc;
    sub->quiet = 1; /* it was checked when it was registered */
    int rc = load_outbound(L, sub, doc, &sub->outbound);
    if (rc == FLOW_ENOMEM) {
        flow_netrules_unref(sub->outbound);
        sub->outbound = NULL;
        flow_def_unref(def);
        return rc;
    }
    snprintf(key, keycap, "%s", name);
    *def_ref = def;
    return 0;
}

static int load_graph(loader_t *L, graph_t *gr);

/* Builds the flow named by spec[member] into node's sub-graph. */
static int inline_flow(loader_t *L, const graph_t *gr, json_t *spec, const char *where, flow_node_t *node,
                       const char *fullname, int map) {
    char at[512], key[300], prefix[300], sub_where[512];
    const char *name = json_string_value(json_object_get(spec, "flow"));
    graph_t sub = {0};
    flow_def_t *held = NULL;
    int rc;
    join(at, sizeof at, where, "flow");
    if (name == NULL)
        return problem(L, gr, at, "\"flow\" names a flow: a string");
    if ((rc = resolve(L, gr, name, at, &sub, &held, key, sizeof key)) < 0)
        return rc;
    for (int i = 0; i < L->depth; i++)
        if (strcmp(L->chain[i], key) == 0) {
            flow_def_unref(held);
            flow_netrules_unref(sub.outbound);
            return problem(L, gr, at, "flow \"%s\" would contain itself", name);
        }
    if (L->depth >= FLOW_DOC_MAX_NESTING) {
        flow_def_unref(held);
        flow_netrules_unref(sub.outbound);
        return problem(L, gr, at, "flows nest deeper than %d", FLOW_DOC_MAX_NESTING);
    }
    if (!sub.quiet) {
        /* checked at every use, since the params it may use differ; the same problem twice is
         * reported once (see dedupe) */
        join(sub_where, sizeof sub_where, "/flows", name);
        sub.quiet = gr->quiet;
        json_object_set_new(L->checked, name, json_true());
    } else {
        snprintf(sub_where, sizeof sub_where, "%s", at);
    }
    json_t *declared = json_copy(gr->declared);
    json_t *defaults = json_object_get(sub.g, "params");
    if (declared == NULL) {
        flow_def_unref(held);
        flow_netrules_unref(sub.outbound);
        return FLOW_ENOMEM;
    }
    json_object_update(declared, defaults);
    json_object_update(declared, json_object_get(spec, "params"));
    if (map) {
        json_object_set_new(declared, "item", json_true());
        json_object_set_new(declared, "index", json_true());
    }
    if (json_is_object(defaults) && (rc = flow_node_set_params(node, defaults)) < 0) {
        json_decref(declared);
        flow_def_unref(held);
        flow_netrules_unref(sub.outbound);
        return rc;
    }
    snprintf(prefix, sizeof prefix, "%s/", fullname);
    sub.where = sub_where;
    sub.prefix = prefix;
    sub.declared = declared;
    sub.flow = node;
    L->chain[L->depth++] = key;
    rc = load_graph(L, &sub);
    L->depth--;
    json_decref(declared);
    flow_def_unref(held);
    flow_netrules_unref(sub.outbound);
    return rc;
}

/* ---- nodes ---- */

static int number_in(json_t *v, json_int_t lo, json_int_t hi) {
    return json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi;
}

static int node_settings(loader_t *L, const graph_t *gr, json_t *spec, const char *where, flow_node_t *node) {
    char at[512];
    json_t *tries = json_object_get(spec, "max_retries");
    json_t *wait = json_object_get(spec, "wait");
    json_t *timeout = json_object_get(spec, "timeout");
    json_t *backoff = json_object_get(spec, "backoff");
    json_t *max_wait = json_object_get(spec, "max_wait");
    json_t *jitter = json_object_get(spec, "jitter");
    const char *jitter_name = json_string_value(jitter);
    int rc = 0;
    if (backoff != NULL && !(json_is_number(backoff) && json_number_value(backoff) >= 1.0 &&
                             json_number_value(backoff) <= 1000.0))
        rc = problem(L, gr, join(at, sizeof at, where, "backoff"),
                     "backoff multiplies the wait after each failed try: a number from 1 to 1000");
    if (max_wait != NULL && !number_in(max_wait, 1, 86400000))
        rc = problem(L, gr, join(at, sizeof at, where, "max_wait"),
                     "max_wait is the longest wait between tries, milliseconds from 1 to 86400000");
    if (jitter != NULL && (jitter_name == NULL || (strcmp(jitter_name, "none") != 0 &&
                                                   strcmp(jitter_name, "full") != 0)))
        rc = problem(L, gr, join(at, sizeof at, where, "jitter"),
                     "jitter is \"none\" or \"full\" (each wait a random part of itself)");
    if (tries != NULL && !number_in(tries, 1, 100))
        rc = problem(L, gr, join(at, sizeof at, where, "max_retries"), "max_retries is the number of tries, 1 to 100");
    if (wait != NULL && !number_in(wait, 0, 3600000))
        rc = problem(L, gr, join(at, sizeof at, where, "wait"), "wait is milliseconds between tries, 0 to 3600000");
    if (timeout != NULL && !number_in(timeout, 0, 86400000))
        rc = problem(L, gr, join(at, sizeof at, where, "timeout"), "timeout is milliseconds per try, 0 to 86400000");
    if (rc < 0 || node == NULL)
        return rc;
    if (tries != NULL || wait != NULL)
        flow_node_set_retry(node, tries ? (unsigned)json_integer_value(tries) : 1,
                            wait ? (uint64_t)json_integer_value(wait) : 0);
    if (timeout != NULL)
        flow_node_set_timeout(node, (uint64_t)json_integer_value(timeout));
    if (backoff != NULL || max_wait != NULL || jitter != NULL)
        flow_node_set_backoff(node, backoff ? json_number_value(backoff) : 1.0,
                              max_wait ? (uint64_t)json_integer_value(max_wait) : 0,
                              jitter_name && strcmp(jitter_name, "full") == 0 ? FLOW_JITTER_FULL
                                                                              : FLOW_JITTER_NONE);
    return 0;
}

static void type_args(flow_type_args_t *a, const graph_t *gr, loader_t *L, const char *name, json_t *spec,
                      json_t *params, const char *where, unsigned roots) {
    a->name = name;
    a->node = spec;
    a->params = params;
    a->where = where;
    a->roots = roots;
    a->declared = gr->declared;
    a->problems = problems_of(L, gr);
}

static const char *const node_members[] = {"type", "description", "params", "out", "max_retries", "wait",
                                           "backoff", "max_wait", "jitter", "timeout", "next", "prep", "exec",
                                           "post", "fallback", "budget", NULL};
static const char *const map_members[] = {"type", "description", "params", "out", "max_retries", "wait",
                                          "backoff", "max_wait", "jitter", "timeout", "next", "items", "limit",
                                          "node", "flow", "post", "budget", NULL};
static const char *const flow_members[] = {"type", "description", "params", "next", "flow", "prep", "post",
                                           "budget", NULL};

static int make_map(loader_t *L, const graph_t *gr, const char *name, const char *fullname, json_t *spec,
                    json_t *params, const char *where, flow_node_t **out) {
    char at[512];
    json_t *items = json_object_get(spec, "items");
    json_t *limit = json_object_get(spec, "limit");
    json_t *inner = json_object_get(spec, "node");
    json_t *sub = json_object_get(spec, "flow");
    int rc = 0;
    if (!json_is_string(items) || json_string_value(items)[0] != '$')
        rc = problem(L, gr, join(at, sizeof at, where, "items"), "map needs \"items\": a reference to an array, such as \"$shared/urls\"");
    if (limit != NULL && !number_in(limit, 0, 1000000))
        rc = problem(L, gr, join(at, sizeof at, where, "limit"), "limit is how many items run at once, 0 (no limit) to 1000000");
    if ((inner == NULL) == (sub == NULL))
        return problem(L, gr, where, "map needs \"node\" (what runs per item) or \"flow\" (a sub-flow per item), one of them");
    if (sub != NULL) {
        if (json_object_get(spec, "out") != NULL)
            rc = problem(L, gr, join(at, sizeof at, where, "out"), "a map over a sub-flow has no results to store: its nodes write them");
        flow_type_args_t a = {0};
        flow__jnode_t *jn = NULL;
        type_args(&a, gr, L, name, spec, params, where, FLOW_SCOPE_SHARED | FLOW_SCOPE_PARAMS);
        if (rc < 0 || (rc = flow__flow_params_make(&a, &jn)) < 0)
            return rc;
        char items_where[512];
        join(items_where, sizeof items_where, where, "items");
        if ((rc = flow_template_compile(items, items_where, FLOW_SCOPE_SHARED | FLOW_SCOPE_PARAMS, &jn->items,
                                        problems_of(L, gr))) < 0 ||
            (rc = flow_node_new(L->def, fullname, FLOW_PARALLEL_BATCH_FLOW, &flow__flow_ops, jn, out)) < 0) {
            flow__jnode_free(jn);
            return rc == FLOW_ELOAD ? (L->failed = 1, rc) : rc;
        }
        flow_node_set_limit(*out, limit ? (unsigned)json_integer_value(limit) : 0);
        return inline_flow(L, gr, spec, where, *out, fullname, 1);
    }
    /* a node per item */
    char inner_where[512];
    join(inner_where, sizeof inner_where, where, "node");
    static const char *const inner_members[] = {"type", "description", "params", "prep", "exec", "fallback", NULL};
    if (!json_is_object(inner))
        return problem(L, gr, inner_where, "node is what runs per item: {\"type\": ..., \"params\": {...}}");
    if (only_keys(L, gr, inner, inner_where, inner_members, "a map's node (retries, timeout and out go on the map)") < 0)
        rc = FLOW_ELOAD;
    const char *tname = json_string_value(json_object_get(inner, "type"));
    flow_type_factory factory;
    void *tdata;
    const flow__jtype_t *jt = NULL;
    if (tname == NULL || flow_registry_type(L->reg, tname, &factory, &tdata) < 0 ||
        (jt = flow__jtype_of(factory, tdata)) == NULL || !(jt->flags & FLOW__JT_ITEMS))
        return problem(L, gr, join(at, sizeof at, inner_where, "type"),
                       "a map runs per item a node of type sleep, http, llm or lua, not \"%s\"", tname ? tname : "");
    json_t *inner_params = json_object_get(inner, "params");
    json_t *empty = NULL;
    if (inner_params == NULL)
        inner_params = empty = json_object();
    else if (!json_is_object(inner_params))
        return problem(L, gr, join(at, sizeof at, inner_where, "params"), "params is an object");
    flow_type_args_t a = {0};
    type_args(&a, gr, L, name, inner, inner_params, inner_where, FLOW_SCOPE_ALL);
    const flow_node_ops_t *ops;
    flow__jnode_t *jn = NULL;
    int r = flow__jnode_make(jt, flow__jenv_of(factory, tdata), &a, spec, where, items, 1, &ops, &jn);
    json_decref(empty);
    if (r < 0)
        return r == FLOW_ELOAD ? (L->failed = 1, r) : r;
    flow__jnode_set_outbound(jn, gr->outbound);
    if (rc < 0) {
        flow__jnode_free(jn);
        return rc;
    }
    if ((rc = flow_node_new(L->def, fullname, FLOW_PARALLEL_BATCH, ops, jn, out)) < 0) {
        flow__jnode_free(jn);
        return rc;
    }
    flow_node_set_limit(*out, limit ? (unsigned)json_integer_value(limit) : 0);
    return 0;
}

static int make_plain(loader_t *L, const graph_t *gr, const char *name, const char *fullname, const char *tname,
                      json_t *spec, json_t *params, const char *where, flow_node_t **out) {
    char at[512];
    flow_type_factory factory;
    void *tdata;
    if (flow_registry_type(L->reg, tname, &factory, &tdata) < 0)
        return problem(L, gr, join(at, sizeof at, where, "type"),
                       "unknown node type \"%s\" (the types are noop, sleep, set, choice, fail, input, http, llm, lua, map, flow)",
                       tname);
    if (only_keys(L, gr, spec, where, node_members, "a node") < 0)
        return FLOW_ELOAD;
    flow_type_args_t a = {0};
    type_args(&a, gr, L, name, spec, params, where, FLOW_SCOPE_SHARED | FLOW_SCOPE_PARAMS);
    a.data = tdata;
    const flow_node_ops_t *ops = NULL;
    void *data = NULL;
    int rc = factory(&a, &ops, &data);
    if (rc < 0) {
        L->failed = 1;
        return rc;
    }
    if (flow__jtype_of(factory, tdata) != NULL)
        flow__jnode_set_outbound(data, gr->outbound);
    rc = flow_node_new(L->def, fullname, FLOW_NODE, ops, data, out);
    if (rc < 0 && ops != NULL && ops->free != NULL)
        ops->free(data);
    return rc;
}

static int make_flow(loader_t *L, const graph_t *gr, const char *name, const char *fullname, json_t *spec,
                     json_t *params, const char *where, flow_node_t **out) {
    flow_type_args_t a = {0};
    flow__jnode_t *jn = NULL;
    int rc;
    if (only_keys(L, gr, spec, where, flow_members, "a flow node") < 0)
        return FLOW_ELOAD;
    type_args(&a, gr, L, name, spec, params, where, FLOW_SCOPE_SHARED | FLOW_SCOPE_PARAMS);
    if ((rc = flow__flow_params_make(&a, &jn)) < 0)
        return rc == FLOW_ELOAD ? (L->failed = 1, rc) : rc;
    if ((rc = flow_node_new(L->def, fullname, FLOW_FLOW, &flow__flow_ops, jn, out)) < 0) {
        flow__jnode_free(jn);
        return rc;
    }
    return inline_flow(L, gr, spec, where, *out, fullname, 0);
}

/* Creates the node; *out stays NULL when it could not be made (its problems are recorded). */
static int load_node(loader_t *L, const graph_t *gr, const char *name, json_t *spec, flow_node_t **out) {
    char where[512], at[512], fullname[320];
    join(at, sizeof at, gr->where, "nodes");
    join(where, sizeof where, at, name);
    *out = NULL;
    if (!valid_name(name))
        problem(L, gr, where, "a node name is 1 to %d letters, digits, '_' or '-'", NAME_MAX_LEN);
    if (!json_is_object(spec))
        return problem(L, gr, where, "a node is an object with a \"type\"");
    if (++L->nodes > FLOW_DOC_MAX_NODES)
        return problem(L, gr, where, "a document has at most %d nodes, sub-flows included", FLOW_DOC_MAX_NODES);
    const char *type = json_string_value(json_object_get(spec, "type"));
    json_t *params = json_object_get(spec, "params");
    json_t *empty = NULL;
    int rc;
    if (type == NULL)
        return problem(L, gr, join(at, sizeof at, where, "type"), "a node needs a \"type\" (a string)");
    if (params != NULL && !json_is_object(params))
        return problem(L, gr, join(at, sizeof at, where, "params"), "params is an object");
    if (json_object_get(spec, "description") != NULL && !json_is_string(json_object_get(spec, "description")))
        problem(L, gr, join(at, sizeof at, where, "description"), "description is a string");
    if (params == NULL)
        params = empty = json_object();
    snprintf(fullname, sizeof fullname, "%s%s", gr->prefix, name);
    join(at, sizeof at, where, "params");
    rc = check_params_used(L, gr, params, at);
    if (rc == 0)
        rc = check_params_used(L, gr, json_object_get(spec, "out"), join(at, sizeof at, where, "out"));
    if (rc == 0)
        rc = check_params_used(L, gr, json_object_get(spec, "items"), join(at, sizeof at, where, "items"));
    if (rc == 0 && json_object_get(spec, "node") != NULL)
        rc = check_params_used(L, gr, json_object_get(json_object_get(spec, "node"), "params"),
                               join(at, sizeof at, where, "node"));
    if (rc == FLOW_ENOMEM) {
        json_decref(empty);
        return rc;
    }
    if (strcmp(type, "map") == 0) {
        rc = only_keys(L, gr, spec, where, map_members, "a map node");
        if (rc == 0)
            rc = make_map(L, gr, name, fullname, spec, params, where, out);
    } else if (strcmp(type, "flow") == 0) {
        rc = make_flow(L, gr, name, fullname, spec, params, where, out);
    } else {
        rc = make_plain(L, gr, name, fullname, type, spec, params, where, out);
    }
    json_decref(empty);
    if (rc == FLOW_EEXIST && strcmp(fullname, flow_def_name(L->def)) != 0) /* that clash is reported */
        rc = problem(L, gr, where, "two nodes are named %s", fullname);
    if (rc == FLOW_ENOMEM)
        return rc;
    node_settings(L, gr, spec, where, *out);
    int hooked = flow__hooks_load(L->scripts, gr->doc, spec, where, *out, problems_of(L, gr));
    if (hooked == FLOW_ENOMEM)
        return hooked;
    if (hooked < 0)
        L->failed = 1;
    return 0;
}

/* ---- graphs ---- */

static flow_node_t *node_in(loader_t *L, const graph_t *gr, const char *name) {
    char full[320];
    snprintf(full, sizeof full, "%s%s", gr->prefix, name);
    return flow_def_find(L->def, full);
}

static int link_successors(loader_t *L, const graph_t *gr, const char *name, json_t *spec) {
    char where[512], at[512];
    json_t *next = json_object_get(spec, "next");
    const char *action;
    json_t *target;
    join(at, sizeof at, gr->where, "nodes");
    join(where, sizeof where, at, name);
    snprintf(at, sizeof at, "%s", where);
    join(where, sizeof where, at, "next");
    if (next == NULL)
        return 0;
    if (!json_is_object(next))
        return problem(L, gr, where, "next maps actions to node names, such as {\"default\": \"suggest\"}");
    flow_node_t *from = node_in(L, gr, name);
    json_object_foreach(next, action, target) {
        join(at, sizeof at, where, action);
        const char *to_name = json_string_value(target);
        flow_node_t *to = to_name ? node_in(L, gr, to_name) : NULL;
        if (action[0] == '\0')
            problem(L, gr, at, "an action is a non-empty string");
        else if (!json_is_null(target) && to_name == NULL)
            problem(L, gr, at, "a successor is a node name, or null to end the flow");
        else if (to_name != NULL && json_object_get(json_object_get(gr->g, "nodes"), to_name) == NULL)
            problem(L, gr, at, "no node \"%s\" in this flow", to_name);
        else if (from != NULL && (to != NULL || json_is_null(target))) {
            int rc = flow_node_next(from, action, to);
            if (rc == FLOW_ENOMEM)
                return rc;
        }
    }
    return 0;
}

/* Nodes no path from start reaches are almost always a mistake in the document. */
static void check_reachable(loader_t *L, const graph_t *gr, json_t *nodes, const char *start) {
    json_t *seen = json_object();
    json_t *todo = json_array();
    if (seen == NULL || todo == NULL)
        goto out;
    json_array_append_new(todo, json_string(start));
    json_object_set_new(seen, start, json_true());
    while (json_array_size(todo) > 0) {
        const char *name = json_string_value(json_array_get(todo, json_array_size(todo) - 1));
        json_t *next = json_object_get(json_object_get(nodes, name), "next");
        json_t *keep = json_incref(json_array_get(todo, json_array_size(todo) - 1));
        json_array_remove(todo, json_array_size(todo) - 1);
        const char *action;
        json_t *target;
        json_object_foreach(next, action, target) {
            const char *t = json_string_value(target);
            if (t != NULL && json_object_get(nodes, t) != NULL && json_object_get(seen, t) == NULL) {
                json_object_set_new(seen, t, json_true());
                json_array_append_new(todo, json_string(t));
            }
        }
        json_decref(keep);
    }
    const char *name;
    json_t *spec;
    char where[512], at[512];
    json_object_foreach(nodes, name, spec) {
        if (json_object_get(seen, name) == NULL) {
            join(at, sizeof at, gr->where, "nodes");
            problem(L, gr, join(where, sizeof where, at, name), "node %s is never reached from the start node %s", name, start);
        }
    }
out:
    json_decref(seen);
    json_decref(todo);
}

static int load_graph(loader_t *L, graph_t *gr) {
    char at[512];
    json_t *nodes = json_object_get(gr->g, "nodes");
    json_t *start = json_object_get(gr->g, "start");
    json_t *params = json_object_get(gr->g, "params");
    const char *name;
    json_t *spec;
    int rc;
    if (params != NULL && !json_is_object(params))
        problem(L, gr, join(at, sizeof at, gr->where, "params"), "params is an object of names and default values");
    if (!json_is_object(nodes) || json_object_size(nodes) == 0)
        return problem(L, gr, join(at, sizeof at, gr->where, "nodes"), "nodes is a non-empty object of name: node");
    if (!json_is_string(start))
        return problem(L, gr, join(at, sizeof at, gr->where, "start"), "start names the first node: a string");
    if (json_object_get(nodes, json_string_value(start)) == NULL)
        problem(L, gr, join(at, sizeof at, gr->where, "start"), "no node \"%s\" to start from", json_string_value(start));
    json_object_foreach(nodes, name, spec) {
        flow_node_t *node;
        if ((rc = load_node(L, gr, name, spec, &node)) == FLOW_ENOMEM)
            return rc;
    }
    json_object_foreach(nodes, name, spec)
        if ((rc = link_successors(L, gr, name, spec)) == FLOW_ENOMEM)
            return rc;
    if (json_object_get(nodes, json_string_value(start)) != NULL) {
        check_reachable(L, gr, nodes, json_string_value(start));
        flow_node_t *first = node_in(L, gr, json_string_value(start));
        if (first != NULL)
            flow_node_set_start(gr->flow, first);
    }
    return 0;
}

static const char *const doc_members[] = {"$schema", "name", "version", "description", "params", "start", "nodes",
                                          "flows", "code", "outbound", "max_steps", "deadline",
                                          "max_running", "concurrency", NULL};
static const char *const subflow_members[] = {"description", "params", "start", "nodes", NULL};

static int check_document(loader_t *L, json_t *doc) {
    char at[512];
    const char *name = json_string_value(json_object_get(doc, "name"));
    only_keys(L, NULL, doc, "", doc_members, "a flow document");
    if (name == NULL || !flow_doc_name_ok(name, json_string_length(json_object_get(doc, "name"))))
        problem(L, NULL, "/name", "name is " FLOW_DOC_NAME_RULE);
    if (json_object_get(doc, "max_steps") != NULL &&
        !number_in(json_object_get(doc, "max_steps"), 1, FLOW_DOC_MAX_STEPS))
        problem(L, NULL, "/max_steps",
                "max_steps is the steps a job may run, 1 to %lld (and at most the server's "
                "maximum)", FLOW_DOC_MAX_STEPS);
    if (json_object_get(doc, "deadline") != NULL &&
        !number_in(json_object_get(doc, "deadline"), 1, FLOW_DOC_MAX_DEADLINE_MS))
        problem(L, NULL, "/deadline",
                "deadline is the milliseconds a job may take from its start, 1 to %lld (and at "
                "most the server's maximum)", FLOW_DOC_MAX_DEADLINE_MS);
    if (json_object_get(doc, "max_running") != NULL &&
        !number_in(json_object_get(doc, "max_running"), 1, FLOW_DOC_MAX_RUNNING))
        problem(L, NULL, "/max_running",
                "max_running is the jobs of this flow that may run at once, 1 to %d",
                FLOW_DOC_MAX_RUNNING);
    json_t *conc = json_object_get(doc, "concurrency");
    char why[256];
    if (conc != NULL && flow_doc_concurrency_check(conc, why, sizeof why) < 0)
        problem(L, NULL, "/concurrency", "concurrency: %s", why);
    if (conc != NULL && json_is_object(conc)) {
        /* a $params key must name a param the flow declares, as templates must */
        const char *key = json_string_value(json_object_get(conc, "key"));
        json_t *declared = json_object_get(doc, "params");
        if (key != NULL && strncmp(key, "$params/", 8) == 0) {
            const char *tok = key + 8, *end = strchr(tok, '/');
            size_t n = end ? (size_t)(end - tok) : strlen(tok);
            int found = 0;
            const char *pname;
            json_t *pv;
            json_object_foreach(declared, pname, pv)
                found |= strlen(pname) == n && strncmp(pname, tok, n) == 0;
            if (!found)
                problem(L, NULL, "/concurrency/key",
                        "%.*s is not a param this flow declares (its \"params\")", (int)(n + 8),
                        key);
        }
    }
    if (json_object_get(doc, "version") != NULL && !json_is_string(json_object_get(doc, "version")))
        problem(L, NULL, "/version", "version is a string");
    if (json_object_get(doc, "description") != NULL && !json_is_string(json_object_get(doc, "description")))
        problem(L, NULL, "/description", "description is a string");
    if (name != NULL && json_object_get(json_object_get(doc, "nodes"), name) != NULL)
        problem(L, NULL, join(at, sizeof at, "/nodes", name), "a node cannot have the flow's own name");
    json_t *flows = json_object_get(doc, "flows");
    if (flows != NULL && !json_is_object(flows))
        return problem(L, NULL, "/flows", "flows is an object of name: sub-flow");
    const char *sub;
    json_t *g;
    json_object_foreach(flows, sub, g) {
        join(at, sizeof at, "/flows", sub);
        if (!valid_name(sub))
            problem(L, NULL, at, "a flow name is 1 to %d letters, digits, '_' or '-'", NAME_MAX_LEN);
        if (!json_is_object(g))
            problem(L, NULL, at, "a sub-flow is an object with \"start\" and \"nodes\"");
        else
            only_keys(L, NULL, g, at, subflow_members, "a sub-flow");
    }
    int rc = load_outbound(L, NULL, doc, &L->outbound);
    if (rc == FLOW_ENOMEM)
        return rc;
    return L->failed ? FLOW_ELOAD : 0;
}

/* The reference part of a key: "$shared/..." or "$params/..." (*root says which), or NULL for a
 * literal. */
static const char *key_pointer(const char *key, int *params) {
    if (strncmp(key, "$shared/", 8) == 0) {
        *params = 0;
        return key + 7;
    }
    if (strncmp(key, "$params/", 8) == 0) {
        *params = 1;
        return key + 7;
    }
    return NULL;
}

int flow_doc_concurrency_check(json_t *conc, char *why, size_t whylen) {
    const char *member;
    json_t *v;
    if (!json_is_object(conc)) {
        snprintf(why, whylen, "it is an object: {\"key\": \"$shared/customer\", \"limit\": 2}");
        return FLOW_EINVAL;
    }
    json_object_foreach(conc, member, v) {
        if (strcmp(member, "key") != 0 && strcmp(member, "limit") != 0) {
            snprintf(why, whylen, "unknown member \"%.64s\" (it takes key and limit)", member);
            return FLOW_EINVAL;
        }
    }
    json_t *key = json_object_get(conc, "key"), *limit = json_object_get(conc, "limit");
    const char *k = json_string_value(key);
    int params;
    if (k == NULL || json_string_length(key) == 0 || json_string_length(key) > FLOW_CONC_KEY_MAX ||
        strlen(k) != json_string_length(key)) {
        snprintf(why, whylen, "key is a string of 1 to %d bytes: \"$shared/<pointer>\", "
                 "\"$params/<pointer>\" or a literal", FLOW_CONC_KEY_MAX);
        return FLOW_EINVAL;
    }
    const char *ptr = k[0] == '$' ? key_pointer(k, &params) : NULL;
    if (k[0] == '$' && (ptr == NULL || flow_pointer_check(ptr) < 0)) {
        snprintf(why, whylen, "key %.80s is neither $shared/<JSON Pointer> nor "
                 "$params/<JSON Pointer> (a literal key does not start with '$')", k);
        return FLOW_EINVAL;
    }
    if (!number_in(limit, 1, FLOW_DOC_MAX_RUNNING)) {
        snprintf(why, whylen, "limit is the jobs with the same key that may run at once, 1 to %d",
                 FLOW_DOC_MAX_RUNNING);
        return FLOW_EINVAL;
    }
    return 0;
}

int flow_doc_concurrency_key(json_t *conc, json_t *shared, json_t *params,
                             json_t *defaults, char *out, size_t outlen, char *why,
                             size_t whylen) {
    const char *k = json_string_value(json_object_get(conc, "key"));
    int from_params = 0;
    const char *ptr = k ? key_pointer(k, &from_params) : NULL;
    json_t *v = NULL;
    if (k == NULL || outlen < FLOW_CONC_KEY_MAX + 1)
        return FLOW_EINVAL;
    if (ptr == NULL) {
        snprintf(out, outlen, "%s", k);
        return 0;
    }
    if (flow_pointer_get(from_params ? params : shared, ptr, &v) < 0 && from_params)
        flow_pointer_get(defaults, ptr, &v);
    if (v == NULL) {
        snprintf(why, whylen, "the concurrency key %.80s names nothing in the job's %s", k,
                 from_params ? "params (nor the flow's defaults)" : "shared store");
        return FLOW_ENOTFOUND;
    }
    if (json_is_integer(v)) {
        snprintf(out, outlen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) > FLOW_CONC_KEY_MAX ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        snprintf(why, whylen, "the concurrency key %.80s must be a string of 1 to %d bytes or an "
                 "integer in the job, not %s", k, FLOW_CONC_KEY_MAX,
                 json_is_string(v) ? "that string" : json_is_object(v) ? "an object" :
                 json_is_array(v) ? "an array" : "that value");
        return FLOW_EINVAL;
    }
    snprintf(out, outlen, "%s", json_string_value(v));
    return 0;
}

/* A sub-flow used by two nodes is checked twice: its problems are kept once. */
static void dedupe(flow_problems_t *p) {
    size_t kept = 0;
    for (size_t i = 0; i < p->count; i++) {
        int dup = 0;
        for (size_t k = 0; k < kept && !dup; k++)
            dup = strcmp(p->items[k].where, p->items[i].where) == 0 &&
                  strcmp(p->items[k].message, p->items[i].message) == 0;
        if (dup) {
            flow__free(p->items[i].where);
            flow__free(p->items[i].message);
        } else {
            p->items[kept++] = p->items[i];
        }
    }
    p->count = kept;
}

/* {"document": doc, "digest": 16 hex digits}: the digest (FNV-1a of the compact text, keys sorted)
 * tells versions of a flow apart, so that a durable store can keep the version a job started with. */
static json_t *meta_of(json_t *doc) {
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL)
        return NULL;
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    flow__json_free(text);
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    return json_pack("{s:O, s:s}", "document", doc, "digest", hex);
}

/* code_file (may be NULL): the file doc's "code" was read from (NAME.lua), whose problems go to
 * file_problems as "file:LINE". */
static int load_doc(flow_registry_t *reg, json_t *doc, const char *code_file, flow_problems_t *file_problems,
                    flow_def_t **out, flow_problems_t *problems) {
    loader_t L = {.reg = reg, .problems = problems, .scratch = FLOW_PROBLEMS_INIT};
    flow_node_t *root = NULL;
    int rc;
    if (reg == NULL || doc == NULL || out == NULL)
        return FLOW_EINVAL;
    if (!json_is_object(doc)) {
        flow_problems_add(problems, "", "a flow document is a JSON object");
        return FLOW_ELOAD;
    }
    L.checked = json_object();
    if (L.checked == NULL || flow__scripts_new(reg, &L.scripts) < 0) {
        json_decref(L.checked);
        return FLOW_ENOMEM;
    }
    if (code_file != NULL)
        flow__scripts_set_file(L.scripts, doc, code_file, file_problems);
    if (check_document(&L, doc) == FLOW_ENOMEM) {
        rc = FLOW_ENOMEM;
        goto out;
    }
    if ((rc = flow__scripts_code(L.scripts, doc, problems)) == FLOW_ENOMEM)
        goto out;
    if (rc < 0)
        L.failed = 1;
    const char *name = json_string_value(json_object_get(doc, "name"));
    int named = name != NULL && flow_doc_name_ok(name, strlen(name));
    if ((rc = flow_def_new(named ? name : "unnamed", &L.def)) < 0)
        goto out;
    if ((rc = flow_node_new(L.def, flow_def_name(L.def), FLOW_FLOW, NULL, NULL, &root)) < 0 ||
        (rc = flow_def_set_root(L.def, root)) < 0)
        goto out;
    json_t *declared = json_object();
    json_t *defaults = json_object_get(doc, "params");
    if (declared == NULL) {
        rc = FLOW_ENOMEM;
        goto out;
    }
    if (json_is_object(defaults)) {
        json_object_update(declared, defaults);
        flow_node_set_params(root, defaults);
    }
    graph_t top = {.doc = doc, .g = doc, .where = "", .prefix = "", .declared = declared,
                   .flow = root, .outbound = L.outbound};
    L.chain[L.depth++] = name ? name : "";
    rc = load_graph(&L, &top);
    json_decref(declared);
    if (rc < 0 && rc != FLOW_ELOAD)
        goto out;
    /* every sub-flow is checked, used or not */
    const char *sub;
    json_t *g;
    json_object_foreach(json_object_get(doc, "flows"), sub, g) {
        if (json_object_get(L.checked, sub) == NULL && json_is_object(g)) {
            char at[512];
            flow_problems_add(problems, join(at, sizeof at, "/flows", sub), "flow %s is never used by a flow or map node", sub);
            L.failed = 1;
        }
    }
    if (!L.failed && flow__scripts_finish(L.scripts, problems) < 0)
        L.failed = 1;
    if (L.failed) {
        if (problems != NULL)
            dedupe(problems);
        rc = FLOW_ELOAD;
        goto out;
    }
    if ((rc = flow_def_set_meta(L.def, meta_of(doc))) < 0)
        goto out;
    flow_error_t err = {0};
    if ((rc = flow_def_seal(L.def, &err)) < 0) {
        flow_problems_add(problems, "", "%s", err.message ? err.message : flow_strerror(rc));
        flow_error_clear(&err);
        rc = FLOW_ELOAD;
        goto out;
    }
    *out = L.def;
    L.def = NULL;
out:
    flow_def_unref(L.def);
    flow_netrules_unref(L.outbound);
    json_decref(L.checked);
    flow__scripts_free(L.scripts);
    flow_problems_clear(&L.scratch);
    return rc;
}

int flow_doc_load(flow_registry_t *reg, json_t *doc, flow_def_t **out, flow_problems_t *problems) {
    return load_doc(reg, doc, NULL, NULL, out, problems);
}

json_t *flow_doc_of(const flow_def_t *def) {
    return json_object_get(flow_def_meta(def), "document");
}

const char *flow_doc_digest(const flow_def_t *def) {
    return json_string_value(json_object_get(flow_def_meta(def), "digest"));
}

/* ---- text and files: places become source:line:column ---- */

static int relocate(const char *text, size_t len, const char *source, flow_problems_t *from, flow_problems_t *to) {
    for (size_t i = 0; i < from->count; i++) {
        const char *where = from->items[i].where;
        int line = 1, col = 1;
        char place[600];
        flow_json_locate(text, len, where, &line, &col);
        snprintf(place, sizeof place, "%s:%d:%d", source, line, col);
        if (flow_problems_add(to, place, "%s: %s", where[0] ? where : "/", from->items[i].message) == FLOW_ENOMEM)
            return FLOW_ENOMEM;
    }
    return 0;
}

/* The JSON text of a document, and the Lua text of the file beside it (lua_path; lua NULL: none),
 * which becomes its "code". */
static int load_text(flow_registry_t *reg, const char *text, size_t len, const char *source, const char *lua,
                     size_t lua_len, const char *lua_path, flow_def_t **out, flow_problems_t *problems) {
    json_error_t jerr;
    char place[600];
    if (len > max_bytes) {
        flow_problems_add(problems, source, "a flow document is at most %zu bytes%s%s%s", max_bytes,
                          max_bytes_name ? " (" : "", max_bytes_name ? max_bytes_name : "",
                          max_bytes_name ? ")" : "");
        return FLOW_ELOAD;
    }
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        snprintf(place, sizeof place, "%s:%d:%d", source, jerr.line, jerr.column);
        flow_problems_add(problems, place, "%s", jerr.text);
        return FLOW_ELOAD;
    }
    if (lua != NULL) {
        json_t *code = json_stringn(lua, lua_len);
        const char *why = !json_is_object(doc) ? NULL
                          : json_object_get(doc, "code") != NULL ? "the document has a \"code\" member too: keep one"
                          : code == NULL ? "it is not UTF-8 text" : NULL;
        if (why != NULL) {
            flow_problems_add(problems, lua_path, "%s", why);
            json_decref(code);
            json_decref(doc);
            return FLOW_ELOAD;
        }
        if (code != NULL && json_object_set_new(doc, "code", code) < 0) {
            json_decref(doc);
            return FLOW_ENOMEM;
        }
    }
    flow_problems_t found = FLOW_PROBLEMS_INIT;
    int rc = load_doc(reg, doc, lua ? lua_path : NULL, problems, out, &found);
    if (rc == FLOW_ELOAD && relocate(text, len, source, &found, problems) < 0)
        rc = FLOW_ENOMEM;
    flow_problems_clear(&found);
    json_decref(doc);
    return rc;
}

int flow_doc_load_text(flow_registry_t *reg, const char *text, size_t len, const char *source, flow_def_t **out,
                       flow_problems_t *problems) {
    return load_text(reg, text, len, source, NULL, 0, NULL, out, problems);
}

/* Reads at most the document-size cap (max_bytes) of path into *text (allocated; *len bytes). FLOW_EIO with a
 * problem when it cannot be read; with optional, a file that does not exist is *text NULL and 0. */
static int read_file(const char *path, int optional, char **text, size_t *len, flow_problems_t *problems) {
    FILE *f = fopen(path, "rb");
    *text = NULL;
    *len = 0;
    if (f == NULL) {
        if (optional && errno == ENOENT)
            return 0;
        flow_problems_add(problems, path, "cannot open: %s", strerror(errno));
        return FLOW_EIO;
    }
    *text = flow__malloc(max_bytes + 1);
    if (*text == NULL) {
        fclose(f);
        return FLOW_ENOMEM;
    }
    *len = fread(*text, 1, max_bytes + 1, f);
    int rc = 0;
    if (ferror(f)) {
        flow_problems_add(problems, path, "cannot read: %s", strerror(errno));
        rc = FLOW_EIO;
    } else if (*len > max_bytes) {
        flow_problems_add(problems, path, "a flow document or its code is at most %zu bytes%s%s%s",
                          max_bytes, max_bytes_name ? " (" : "", max_bytes_name ? max_bytes_name : "",
                          max_bytes_name ? ")" : "");
        rc = FLOW_ELOAD;
    }
    fclose(f);
    if (rc < 0) {
        flow__free(*text);
        *text = NULL;
    }
    return rc;
}

int flow_doc_load_file(flow_registry_t *reg, const char *path, flow_def_t **out, flow_problems_t *problems) {
    char *text = NULL, *lua = NULL, lua_path[4096];
    size_t len = 0, lua_len = 0, n = strlen(path);
    int rc = read_file(path, 0, &text, &len, problems);
    /* NAME.lua beside NAME.json is the document's code */
    if (rc == 0 && n > 5 && n < sizeof lua_path && strcmp(path + n - 5, ".json") == 0) {
        snprintf(lua_path, sizeof lua_path, "%.*s.lua", (int)(n - 5), path);
        rc = read_file(lua_path, 1, &lua, &lua_len, problems);
    }
    if (rc == 0)
        rc = load_text(reg, text, len, path, lua, lua_len, lua_path, out, problems);
    flow__free(text);
    flow__free(lua);
    return rc;
}
