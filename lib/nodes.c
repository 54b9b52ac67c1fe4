/* nodes.c: the built-in node types of flow documents that need no network (noop, sleep, set, choice,
 * fail, input), the node ops every built-in type shares (params evaluated in prep, the result
 * stored in post where "out" says), and the ops of map and flow nodes. http and llm are in
 * nodes_net.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "jpath.h"
#include "nodes_int.h"
#include "flow/pointer.h"
#include "flow/problems.h"
#include "re.h"
#include "schema.h"

extern const flow__jtype_t flow__http_type;
extern const flow__jtype_t flow__llm_type;

#define FLOW__JT_OWN_PARAMS 4u /* the type evaluates its params itself (prepare gets them NULL) */
#define MAX_SLEEP_S (30.0 * 24 * 3600)

/* ---- helpers (nodes_net.c uses these three too: nodes_int.h) ---- */

int flow__jbad(const flow_type_args_t *a, const char *sub, const char *fmt, ...) {
    char where[512];
    char msg[512];
    va_list ap;
    snprintf(where, sizeof where, "%s%s", a->where, sub);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    flow_problems_add(a->problems, where, "%s", msg);
    return FLOW_ELOAD;
}

int flow__jknown(const flow_type_args_t *a, const char *const *names) {
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(a->params, key, v) {
        int ok = 0;
        for (const char *const *n = names; *n != NULL && !ok; n++)
            ok = strcmp(*n, key) == 0;
        if (!ok) {
            char sub[300];
            snprintf(sub, sizeof sub, "/params/%s", key);
            rc = flow__jbad(a, sub, "unknown param \"%s\" for a node of type %s", key,
                            a->node ? json_string_value(json_object_get(a->node, "type")) : "?");
        }
    }
    return rc;
}

/* The limits of the regular expressions of a node being compiled (args->data: its env; NULL: the
 * defaults). */
static const flow_re_limits_t *re_limits_of(const flow_type_args_t *a) {
    const flow_nodes_env_t *env = a->data;
    return env != NULL ? &env->re_limits : NULL;
}

int flow__jdynamic(json_t *v) {
    const char *s = json_string_value(v);
    return s != NULL && ((s[0] == '$' && s[1] != '$') || strstr(s, "{{") != NULL);
}

static flow_scope_t scope_of(flow_ctx_t *ctx, json_t *shared, json_t *item) {
    flow_scope_t sc = {shared, flow_ctx_params(ctx), item};
    return sc;
}

/* Evaluates t and returns 0, or records the error on ctx and returns its code. */
static int eval(flow_ctx_t *ctx, const flow_tmpl_t *t, const flow_scope_t *sc, json_t **out) {
    flow_error_t err = {0};
    int rc = flow_tmpl_eval(t, sc, out, &err);
    if (rc < 0) {
        flow_error(ctx, rc, "%s", err.message ? err.message : flow_strerror(rc));
        flow_error_clear(&err);
    }
    return rc;
}

/* Writes value (stolen) at the pointer t evaluates to. */
static int store_at(flow_ctx_t *ctx, const flow_tmpl_t *t, const flow_scope_t *sc, json_t *shared,
                    json_t *value) {
    json_t *where = NULL;
    int rc = eval(ctx, t, sc, &where);
    if (rc < 0) {
        json_decref(value);
        return rc;
    }
    const char *ptr = json_string_value(where);
    if (ptr == NULL || flow_pointer_check(ptr) < 0 || ptr[0] == '\0') {
        rc = flow_error(ctx, FLOW_EINVAL, "out is not a JSON Pointer into the shared store: %s",
                        ptr ? ptr : "(not a string)");
        json_decref(value);
    } else {
        flow__ctx_touch_pointer(ctx, ptr);
        rc = flow_pointer_set(shared, ptr, value ? value : json_null());
        if (rc < 0)
            rc = flow_error(ctx, rc, "cannot store the result at %s: %s", ptr, flow_strerror(rc));
    }
    json_decref(where);
    return rc;
}

int flow__jnode_store(flow_ctx_t *ctx, const flow__jnode_t *n, json_t *shared, json_t *params,
                      json_t *value) {
    flow_scope_t sc = {shared, params, NULL};
    int rc = 0;
    if (n->out != NULL)
        return store_at(ctx, n->out, &sc, shared, value);
    for (size_t i = 0; i < n->nouts && rc == 0; i++) {
        json_t *part = NULL;
        if (flow_pointer_get(value ? value : json_null(), n->outs[i].from, &part) < 0) {
            rc = flow_error(ctx, FLOW_ENOTFOUND, "out: the result has no %s", n->outs[i].from);
            break;
        }
        /* a copy: two members may store the same part, and the store must not hold it twice */
        json_t *copy = json_deep_copy(part);
        rc = copy != NULL ? store_at(ctx, n->outs[i].to, &sc, shared, copy)
                          : flow_error(ctx, FLOW_ENOMEM, "out of memory");
    }
    json_decref(value);
    return rc;
}

/* ---- the ops every built-in node shares ---- */

static int j_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    const flow__jnode_t *n = flow_ctx_node_data(ctx);
    flow_scope_t sc = scope_of(ctx, shared, NULL);
    json_t *params = NULL;
    int rc = 0;
    if (!(n->type->flags & FLOW__JT_OWN_PARAMS) && (rc = eval(ctx, n->params, &sc, &params)) < 0)
        return rc;
    if (flow__hook_has(n->hooks, FLOW__HOOK_PREP)) {
        json_t *res = NULL;
        if ((rc = flow__hook_prep(ctx, n->hooks, shared, NULL, &params, &res)) < 0) {
            json_decref(params);
            return rc;
        }
        if (!flow__hook_merges(n->hooks)) { /* what prep returns is what exec gets */
            json_decref(params);
            *prep_res = res;
            return 0;
        }
    }
    if (n->type->prepare == NULL) {
        *prep_res = params;
        return 0;
    }
    rc = n->type->prepare(ctx, n->cfg, shared, params, prep_res);
    json_decref(params);
    return rc;
}

static void j_exec(flow_ctx_t *ctx, json_t *input) {
    const flow__jnode_t *n = flow_ctx_node_data(ctx);
    if (n->type->exec != NULL)
        n->type->exec(ctx, n->cfg, input);
    else
        flow_done(ctx, NULL);
}

static void j_cancel(flow_ctx_t *ctx) {
    const flow__jnode_t *n = flow_ctx_node_data(ctx);
    if (n->type->cancel != NULL)
        n->type->cancel(ctx);
}

static int j_input(flow_ctx_t *ctx, json_t *value) {
    const flow__jnode_t *n = flow_ctx_node_data(ctx);
    return n->type->input != NULL ? n->type->input(ctx, n->cfg, value) : 0;
}

static int j_fallback(flow_ctx_t *ctx, json_t *input, const flow_error_t *err, json_t **result) {
    const flow__jnode_t *n = flow_ctx_node_data(ctx);
    if (flow__hook_has(n->hooks, FLOW__HOOK_FALLBACK))
        return flow__hook_fallback(ctx, n->hooks, input, err, result);
    if (n->type->fallback != NULL)
        return n->type->fallback(ctx, n->cfg, err, result);
    return flow_error(ctx, err->code, "%s", err->message ? err->message : flow_strerror(err->code));
}

static int j_post(flow_ctx_t *ctx, json_t *shared, json_t *input, json_t *result, const char **action) {
    const flow__jnode_t *n = flow_ctx_node_data(ctx);
    int rc;
    if (n->type->finish != NULL)
        rc = n->type->finish(ctx, n->cfg, shared, input, result, action);
    else /* exec results belong to this step alone, so storing a reference (not a copy) is safe */
        rc = flow__jnode_store(ctx, n, shared, flow_ctx_params(ctx), json_incref(result));
    if (rc == 0 && flow__hook_has(n->hooks, FLOW__HOOK_POST))
        rc = flow__hook_post(ctx, n->hooks, shared, input, result, action);
    return rc;
}

static const flow_node_ops_t j_ops = {.prep = j_prep, .exec = j_exec, .exec_fallback = j_fallback,
                                      .post = j_post, .cancel = j_cancel, .input = j_input,
                                      .free = flow__jnode_free};

/* ---- map: one exec per item ---- */

/* The items a map goes over (its "items" evaluated): an array, or the step fails. */
static int map_items(flow_ctx_t *ctx, const flow__jnode_t *n, flow_scope_t *sc, json_t **items) {
    int rc = eval(ctx, n->items, sc, items);
    if (rc == 0 && !json_is_array(*items))
        rc = flow_error(ctx, FLOW_EINVAL, "map: items is not an array");
    return rc;
}

/* The end of a map's prep: the array it made (taken) goes to *prep_res when all went well (rc 0),
 * else it is dropped; returns rc. */
static int prep_done(int rc, json_t *made, json_t **prep_res) {
    if (rc < 0) {
        json_decref(made);
        return rc;
    }
    *prep_res = made;
    return 0;
}

/* Appends v (taken) to the array a prep makes; v NULL (it could not be made) or no room for it
 * fails the step as out of memory. */
static int append_item(flow_ctx_t *ctx, json_t *arr, json_t *v) {
    if (v == NULL || json_array_append_new(arr, v) < 0)
        return flow_error(ctx, FLOW_ENOMEM, "out of memory");
    return 0;
}

static int map_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    const flow__jnode_t *n = flow_ctx_node_data(ctx);
    flow_scope_t sc = scope_of(ctx, shared, NULL);
    json_t *items = NULL, *inputs = NULL;
    int rc = map_items(ctx, n, &sc, &items);
    if (rc < 0)
        goto out;
    inputs = json_array();
    if (inputs == NULL) {
        rc = flow_error(ctx, FLOW_ENOMEM, "out of memory");
        goto out;
    }
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item) {
        json_t *params = NULL, *input = NULL;
        int made = 0;
        sc.item = item;
        if ((rc = eval(ctx, n->params, &sc, &params)) < 0)
            goto out;
        if (flow__hook_has(n->hooks, FLOW__HOOK_PREP)) { /* per item, which its params show */
            json_t *hp = flow__hook_item_params(ctx, item, i);
            rc = hp ? flow__hook_prep(ctx, n->hooks, shared, hp, &params, &input)
                    : flow_error(ctx, FLOW_ENOMEM, "out of memory");
            json_decref(hp);
            if (rc < 0) {
                json_decref(params);
                goto out;
            }
            made = !flow__hook_merges(n->hooks);
        }
        if (made) { /* prep made exec's input itself */
            json_decref(params);
        } else if (n->type->prepare != NULL) {
            rc = n->type->prepare(ctx, n->cfg, shared, params, &input);
            json_decref(params);
            if (rc < 0)
                goto out;
        } else {
            input = params;
        }
        rc = append_item(ctx, inputs, input ? input : json_null());
        if (rc < 0)
            goto out;
    }
out:
    json_decref(items);
    return prep_done(rc, inputs, prep_res);
}

static int map_post(flow_ctx_t *ctx, json_t *shared, json_t *inputs, json_t *results, const char **action) {
    const flow__jnode_t *n = flow_ctx_node_data(ctx);
    int rc = flow__jnode_store(ctx, n, shared, flow_ctx_params(ctx), json_incref(results));
    if (rc == 0 && flow__hook_has(n->hooks, FLOW__HOOK_POST))
        rc = flow__hook_post(ctx, n->hooks, shared, inputs, results, action);
    return rc;
}

static const flow_node_ops_t map_ops = {.prep = map_prep, .exec = j_exec, .exec_fallback = j_fallback,
                                        .post = map_post, .cancel = j_cancel, .free = flow__jnode_free};

/* ---- flow nodes and maps over a sub-flow: prep gives the sub-graph its params ---- */

static int flow_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    const flow__jnode_t *n = flow_ctx_node_data(ctx);
    flow_scope_t sc = scope_of(ctx, shared, NULL);
    json_t *params = NULL;
    int rc = eval(ctx, n->params, &sc, &params);
    if (rc < 0)
        return rc;
    if (n->items == NULL && flow__hook_has(n->hooks, FLOW__HOOK_PREP) &&
        (rc = flow__hook_prep(ctx, n->hooks, shared, NULL, &params, NULL)) < 0) {
        json_decref(params);
        return rc;
    }
    if (n->items == NULL) { /* a flow node: one param set */
        *prep_res = params;
        return 0;
    }
    json_t *items = NULL, *sets = json_array();
    rc = sets ? map_items(ctx, n, &sc, &items) : flow_error(ctx, FLOW_ENOMEM, "out of memory");
    if (rc < 0)
        goto out;
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item) {
        json_t *set = json_copy(params);
        if (set != NULL && (json_object_set(set, "item", item) < 0 ||
                            json_object_set_new(set, "index", json_integer((json_int_t)i)) < 0)) {
            json_decref(set);
            set = NULL;
        }
        rc = append_item(ctx, sets, set);
        if (rc < 0)
            goto out;
    }
out:
    json_decref(params);
    json_decref(items);
    return prep_done(rc, sets, prep_res);
}

/* The sub-flow's last action (a batch flow's: none), unless a post hook picks another. */
static int flow_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res, const char **action) {
    const flow__jnode_t *n = flow_ctx_node_data(ctx);
    *action = json_string_value(exec_res);
    if (flow__hook_has(n->hooks, FLOW__HOOK_POST))
        return flow__hook_post(ctx, n->hooks, shared, prep_res, exec_res, action);
    return 0;
}

const flow_node_ops_t flow__flow_ops = {.prep = flow_prep, .post = flow_post, .free = flow__jnode_free};

int flow__ops_report_writes(const flow_node_ops_t *ops) {
    return ops == &j_ops || ops == &map_ops || ops == &flow__flow_ops;
}

/* ---- making the node data ---- */

void flow__jnode_free(void *p) {
    flow__jnode_t *n = p;
    if (n == NULL)
        return;
    if (n->type != NULL && n->type->free != NULL)
        n->type->free(n->cfg);
    flow__hooks_free(n->hooks);
    flow_tmpl_free(n->params);
    flow_tmpl_free(n->out);
    for (size_t i = 0; i < n->nouts; i++)
        flow_tmpl_free(n->outs[i].to);
    flow__free(n->outs);
    json_decref(n->out_spec);
    flow_tmpl_free(n->items);
    flow_netrules_unref(n->outbound);
    flow__free(n);
}

void flow__jnode_set_outbound(flow__jnode_t *n, flow_netrules_t *rules) {
    flow_netrules_unref(n->outbound);
    n->outbound = flow_netrules_ref(rules);
}

/* "out": {"/answer": "/text", "/tokens": "/usage/total_tokens"}: where each part of the result
 * goes (a pointer, may be a template) and which part (a pointer written out, "" the whole). */
static int compile_out_parts(const flow_type_args_t *a, json_t *out, const char *where,
                             flow__jnode_t *n) {
    const char *key;
    json_t *from;
    int rc = 0;
    if (json_object_size(out) == 0) {
        flow_problems_add(a->problems, where,
                          "out as an object maps pointers into the shared store to parts "
                          "of the result, such as {\"/answer\": \"/text\"}: it needs a member");
        return FLOW_ELOAD;
    }
    n->outs = flow__calloc(json_object_size(out), sizeof *n->outs);
    if (n->outs == NULL)
        return FLOW_ENOMEM;
    n->out_spec = json_incref(out);
    json_object_foreach(out, key, from) {
        char at[600];
        json_t *to = json_string(key);
        flow__jpath_t top = flow__jpath_top(where);
        flow__jpath_t here = flow__jpath_key(&top, key);
        char *place = NULL; /* where/key, escaped */
        snprintf(at, sizeof at, "%s", flow__jpath_render(&here, &place) == 0 ? place : where);
        flow__free(place);
        const char *f = json_string_value(from);
        if (to == NULL) {
            rc = FLOW_ENOMEM;
        } else if (key[0] != '/' || (strstr(key, "{{") == NULL && flow_pointer_check(key) < 0)) {
            flow_problems_add(a->problems, at,
                              "\"%s\" is not a JSON Pointer into the shared store (such as "
                              "\"/answer\")",
                              key);
            rc = FLOW_ELOAD;
        } else if (f == NULL || flow__jdynamic(from) || flow_pointer_check(f) < 0) {
            flow_problems_add(a->problems, at,
                              "a part of the result is a JSON Pointer into it, written out "
                              "(such as \"/text\", or \"\" for the whole result)");
            rc = FLOW_ELOAD;
        } else if (flow_template_compile_pointer(to, at, a->roots & ~FLOW_SCOPE_ITEM,
                                                 &n->outs[n->nouts].to, a->problems) < 0) {
            rc = FLOW_ELOAD;
        } else {
            n->outs[n->nouts++].from = f;
        }
        json_decref(to);
        if (rc == FLOW_ENOMEM)
            return rc;
    }
    return rc;
}

static int compile_out(const flow_type_args_t *a, json_t *out, const char *where, flow__jnode_t *n) {
    if (out == NULL)
        return 0;
    if (json_is_object(out))
        return compile_out_parts(a, out, where, n);
    const char *s = json_string_value(out);
    if (s == NULL || (!flow__jdynamic(out) && (s[0] == '\0' || flow_pointer_check(s) < 0))) {
        flow_problems_add(
            a->problems, where,
            "out must be a JSON Pointer into the shared store, such as \"/result\", "
            "or an object of such pointers and the parts of the result to store there");
        return FLOW_ELOAD;
    }
    return flow_template_compile_pointer(out, where, a->roots & ~FLOW_SCOPE_ITEM, &n->out,
                                         a->problems);
}

int flow__jnode_make(const flow__jtype_t *t, const flow_nodes_env_t *env, const flow_type_args_t *a,
                     json_t *outer, const char *outer_where, json_t *items, int map,
                     const flow_node_ops_t **ops, flow__jnode_t **out) {
    char where[512];
    int rc = 0, r;
    flow__jnode_t *n = flow__calloc(1, sizeof *n);
    if (n == NULL)
        return FLOW_ENOMEM;
    n->type = t;
    n->env = env;
    snprintf(where, sizeof where, "%s/params", a->where);
    json_t *evaluated = t->literal != NULL ? json_copy(a->params) : json_incref(a->params);
    if (evaluated == NULL) {
        flow__free(n);
        return FLOW_ENOMEM;
    }
    for (const char *const *name = t->literal; name != NULL && *name != NULL; name++)
        json_object_del(evaluated, *name);
    r = t->flags & FLOW__JT_OWN_PARAMS
            ? 0
            : flow_template_compile(evaluated, where, a->roots, &n->params, a->problems);
    if (r < 0)
        rc = r;
    json_decref(evaluated);
    json_t *out_spec = json_object_get(outer, "out");
    snprintf(where, sizeof where, "%s/out", outer_where);
    if (out_spec != NULL && !(t->flags & FLOW__JT_OUT) && !map) {
        flow_problems_add(a->problems, where, "a node of type %s has no result to store", t->name);
        rc = FLOW_ELOAD;
    } else if ((r = compile_out(a, out_spec, where, n)) < 0) {
        rc = r;
    }
    if (items != NULL) {
        snprintf(where, sizeof where, "%s/items", outer_where);
        if ((r = flow_template_compile(items, where, a->roots & ~FLOW_SCOPE_ITEM, &n->items, a->problems)) < 0)
            rc = r;
    }
    if (t->compile != NULL) {
        flow_type_args_t with_env = *a;
        with_env.data = (void *)env;
        r = t->compile(&with_env, &n->cfg);
        if (r < 0)
            rc = r;
    }
    if (rc < 0) {
        flow__jnode_free(n);
        return rc;
    }
    *ops = map ? &map_ops : &j_ops;
    *out = n;
    return 0;
}

int flow__flow_params_make(const flow_type_args_t *a, flow__jnode_t **out) {
    char where[512];
    flow__jnode_t *n = flow__calloc(1, sizeof *n);
    if (n == NULL)
        return FLOW_ENOMEM;
    snprintf(where, sizeof where, "%s/params", a->where);
    int rc = flow_template_compile(a->params, where, a->roots & ~FLOW_SCOPE_ITEM, &n->params, a->problems);
    if (rc < 0) {
        flow__free(n);
        return rc;
    }
    *out = n;
    return 0;
}

/* ---- noop ---- */

static int noop_compile(const flow_type_args_t *a, void **cfg) {
    static const char *const none[] = {NULL};
    return flow__jknown(a, none);
}

/* ---- sleep: {"seconds": number} ---- */

static int sleep_compile(const flow_type_args_t *a, void **cfg) {
    static const char *const names[] = {"seconds", NULL};
    int rc = flow__jknown(a, names);
    json_t *s = json_object_get(a->params, "seconds");
    if (s == NULL)
        rc = flow__jbad(a, "/params", "sleep needs \"seconds\"");
    else if (!flow__jdynamic(s) && (!json_is_number(s) || json_number_value(s) < 0 ||
                                              json_number_value(s) > MAX_SLEEP_S))
        rc = flow__jbad(a, "/params/seconds",
                        "seconds must be a number from 0 to %.0f, or a reference", MAX_SLEEP_S);
    return rc;
}

static void sleep_exec(flow_ctx_t *ctx, const void *cfg, json_t *input) {
    json_t *s = json_object_get(input, "seconds");
    if (json_is_string(s)) { /* a template gives text: "1.5" */
        char *end;
        double v = strtod(json_string_value(s), &end);
        s = *end == '\0' && end != json_string_value(s) ? json_real(v) : json_incref(s);
    } else {
        json_incref(s);
    }
    double seconds = json_number_value(s);
    if (!json_is_number(s) || !isfinite(seconds) || seconds < 0 || seconds > MAX_SLEEP_S) {
        char *text = s ? json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        flow_fail(ctx, FLOW_EINVAL, "sleep: seconds must be a number from 0 to %.0f, not %s", MAX_SLEEP_S,
                  text ? text : "nothing");
        flow__json_free(text);
        json_decref(s);
        return;
    }
    flow_sleep(ctx, (uint64_t)llround(seconds * 1000.0), s);
}

/* ---- set: {"/pointer": value, ...}; a pointer may be a template ("/pages/{{$params/index}}") ---- */

typedef struct set_cfg {
    json_t *keys; /* raw key -> its compiled template, for the keys that are templates */
    flow_tmpl_t **tmpls;
    size_t ntmpls;
} set_cfg_t;

/* The end of a type's compile: on success (rc 0) hands the config c to *cfgp, else frees it with
 * free_fn; returns rc. One place, so that no compile can leak a config or hand out a half one. */
static int compiled(int rc, void *c, void (*free_fn)(void *), void **cfgp) {
    if (rc < 0) {
        free_fn(c);
        return rc;
    }
    *cfgp = c;
    return 0;
}

static void set_free(void *p) {
    set_cfg_t *c = p;
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->ntmpls; i++)
        flow_tmpl_free(c->tmpls[i]);
    flow__free(c->tmpls);
    json_decref(c->keys);
    flow__free(c);
}

static int set_compile(const flow_type_args_t *a, void **cfgp) {
    const char *key;
    json_t *v;
    int rc = 0;
    set_cfg_t *c = flow__calloc(1, sizeof *c);
    if (c == NULL || (c->keys = json_object()) == NULL ||
        (c->tmpls = flow__calloc(json_object_size(a->params) + 1, sizeof *c->tmpls)) == NULL) {
        set_free(c);
        return FLOW_ENOMEM;
    }
    if (json_object_size(a->params) == 0)
        rc = flow__jbad(a, "/params", "set needs at least one \"/pointer\": value member");
    json_object_foreach(a->params, key, v) {
        char sub[300], where[600];
        snprintf(sub, sizeof sub, "/params/%s", key);
        if (strstr(key, "{{") != NULL) {
            json_t *k = json_string(key);
            snprintf(where, sizeof where, "%s%s", a->where, sub);
            if (k == NULL || flow_template_compile_pointer(k, where, a->roots, &c->tmpls[c->ntmpls],
                                                           a->problems) < 0) {
                rc = FLOW_ELOAD;
            } else {
                json_object_set_new(c->keys, key, json_integer((json_int_t)c->ntmpls));
                c->ntmpls++;
            }
            json_decref(k);
        } else if (key[0] == '\0' || flow_pointer_check(key) < 0) {
            rc = flow__jbad(a, sub,
                            "\"%s\" is not a JSON Pointer into the shared store (such as \"/greeting\")", key);
        }
    }
    return compiled(rc, c, set_free, cfgp);
}

static int set_finish(flow_ctx_t *ctx, const void *cfg, json_t *shared, json_t *values, json_t *result,
                      const char **action) {
    const set_cfg_t *c = cfg;
    flow_scope_t sc = scope_of(ctx, shared, NULL);
    const char *key;
    json_t *v;
    json_object_foreach(values, key, v) {
        json_t *where = NULL;
        json_t *tmpl = json_object_get(c->keys, key);
        if (tmpl != NULL) {
            int rc = eval(ctx, c->tmpls[json_integer_value(tmpl)], &sc, &where);
            if (rc < 0)
                return rc;
            if (!json_is_string(where) || flow_pointer_check(json_string_value(where)) < 0 ||
                json_string_length(where) == 0) {
                rc = flow_error(
                    ctx, FLOW_EINVAL, "set: %s (from %s) is not a JSON Pointer",
                    json_is_string(where) ? json_string_value(where) : "a value not a string", key);
                json_decref(where);
                return rc;
            }
        }
        const char *ptr = where ? json_string_value(where) : key;
        /* evaluated values may be parts of the store itself: copy, or the two places would alias */
        flow__ctx_touch_pointer(ctx, ptr);
        int rc = flow_pointer_set(shared, ptr, json_deep_copy(v));
        if (rc < 0)
            rc = flow_error(ctx, rc, "set: cannot write %s: %s", ptr, flow_strerror(rc));
        json_decref(where);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- choice: {"value": ..., "cases": [{"eq": x, "action": "a"}, ...], "default": "b"} ---- */

typedef enum { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_MATCHES, OP_EXISTS, OP_TYPE } op_t;

static const char *const op_names[] = {"eq", "ne", "lt", "le", "gt", "ge", "in", "matches", "exists", "type", NULL};

typedef struct choice_case {
    op_t op;
    json_t *operand;
    flow_tmpl_t *tmpl; /* eq .. in: the operand, which may be a reference or hold templates */
    flow_re_t *re;     /* matches */
    const char *action;
} choice_case_t;

typedef struct choice {
    flow_tmpl_t *value;
    choice_case_t *cases;
    size_t ncases;
    const char *otherwise;
    json_t *params; /* keeps the strings the cases point to */
    const flow_re_limits_t *re_limits; /* the env's */
} choice_t;

static void choice_free(void *p) {
    choice_t *c = p;
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->ncases; i++) {
        flow_re_free(c->cases[i].re);
        flow_tmpl_free(c->cases[i].tmpl);
    }
    flow__free(c->cases);
    flow_tmpl_free(c->value);
    json_decref(c->params);
    flow__free(c);
}

static const char *const json_types[] = {"null", "boolean", "number", "integer", "string", "array", "object", NULL};

/* An action a node's params name (a choice's case or default, an input's answers and timeout):
 * a non-empty string written out, since a reference or a template there would be taken as text.
 * 0, or FLOW_ELOAD with the problem at sub. */
static int check_action(const flow_type_args_t *a, const char *sub, json_t *v) {
    if (!json_is_string(v) || json_string_length(v) == 0)
        return flow__jbad(a, sub, "an action is a non-empty string, such as \"retry\"");
    if (flow__jdynamic(v))
        return flow__jbad(a, sub, "an action is a name written out: \"%s\" would not be read as a reference",
                          json_string_value(v));
    return 0;
}

static int compile_case(const flow_type_args_t *a, const flow_re_limits_t *re_limits, size_t i, json_t *spec,
                        choice_case_t *out) {
    char sub[96], why[200];
    snprintf(sub, sizeof sub, "/params/cases/%zu", i);
    if (!json_is_object(spec))
        return flow__jbad(a, sub,
                          "a case is an object such as {\"eq\": \"yes\", \"action\": \"accept\"}");
    const char *action = json_string_value(json_object_get(spec, "action"));
    int found = -1, rc = 0;
    const char *key;
    json_t *v;
    json_object_foreach(spec, key, v) {
        if (strcmp(key, "action") == 0)
            continue;
        int op = -1;
        for (int k = 0; op_names[k] != NULL; k++)
            if (strcmp(op_names[k], key) == 0)
                op = k;
        if (op < 0)
            rc = flow__jbad(a, sub,
                            "unknown test \"%s\"; tests are eq, ne, lt, le, gt, ge, in, matches, exists, type", key);
        else if (found >= 0)
            rc = flow__jbad(a, sub, "a case has one test");
        else
            found = op;
    }
    if (action == NULL || action[0] == '\0')
        rc = flow__jbad(a, sub, "a case needs an \"action\" (a non-empty string)");
    else if (check_action(a, sub, json_object_get(spec, "action")) < 0)
        rc = FLOW_ELOAD;
    if (found < 0 && rc == 0)
        rc = flow__jbad(a, sub,
                        "a case needs a test: eq, ne, lt, le, gt, ge, in, matches, exists or type");
    if (rc < 0)
        return rc;
    out->op = (op_t)found;
    out->operand = json_object_get(spec, op_names[found]);
    out->action = action;
    int dynamic = flow__jdynamic(out->operand);
    switch (out->op) {
    case OP_LT: case OP_LE: case OP_GT: case OP_GE:
        if (!dynamic && !json_is_number(out->operand) && !json_is_string(out->operand))
            return flow__jbad(a, sub, "%s compares with a number or a string", op_names[found]);
        break;
    case OP_IN:
        if (!dynamic && !json_is_array(out->operand))
            return flow__jbad(a, sub, "in needs an array of values, or a reference to one");
        break;
    case OP_EXISTS:
        if (!json_is_boolean(out->operand))
            return flow__jbad(a, sub, "exists is true or false");
        break;
    case OP_TYPE: {
        const char *t = json_string_value(out->operand);
        int ok = 0;
        for (int k = 0; t != NULL && json_types[k] != NULL; k++)
            ok |= strcmp(json_types[k], t) == 0;
        if (!ok)
            return flow__jbad(a, sub,
                              "type is one of null, boolean, number, integer, string, array, object");
        break;
    }
    case OP_MATCHES: {
        if (dynamic)
            return flow__jbad(a, sub,
                              "matches takes a pattern written out: \"%s\" would not be read as a reference",
                       json_string_value(out->operand));
        if (!json_is_string(out->operand))
            return flow__jbad(a, sub, "matches needs a regular expression (a string)");
        int r = flow_re_compile(json_string_value(out->operand), json_string_length(out->operand), re_limits,
                                &out->re, why, sizeof why);
        if (r == FLOW_EINVAL)
            return flow__jbad(a, sub, "matches: not a valid regular expression: %s", why);
        if (r < 0)
            return r;
        break;
    }
    default:
        break;
    }
    if (out->op <= OP_IN) { /* evaluated as params are: "$shared/b" is b's value */
        char where[512];
        snprintf(where, sizeof where, "%s%s/%s", a->where, sub, op_names[found]);
        if (flow_template_compile(out->operand, where, a->roots, &out->tmpl, a->problems) < 0)
            return FLOW_ELOAD;
    }
    return 0;
}

static int choice_compile(const flow_type_args_t *a, void **cfgp) {
    static const char *const names[] = {"value", "cases", "default", NULL};
    int rc = flow__jknown(a, names);
    choice_t *c = flow__calloc(1, sizeof *c);
    if (c == NULL)
        return FLOW_ENOMEM;
    c->params = json_incref(a->params);
    c->re_limits = re_limits_of(a);
    json_t *value = json_object_get(a->params, "value");
    json_t *cases = json_object_get(a->params, "cases");
    json_t *otherwise = json_object_get(a->params, "default");
    char where[512];
    snprintf(where, sizeof where, "%s/params/value", a->where);
    if (value == NULL)
        rc = flow__jbad(a, "/params", "choice needs a \"value\" to test");
    else if (flow_template_compile(value, where, a->roots, &c->value, a->problems) < 0)
        rc = FLOW_ELOAD;
    if (!json_is_array(cases) || json_array_size(cases) == 0) {
        rc = flow__jbad(a, "/params", "choice needs \"cases\": a non-empty array");
    } else {
        c->cases = flow__calloc(json_array_size(cases), sizeof *c->cases);
        if (c->cases == NULL) {
            choice_free(c);
            return FLOW_ENOMEM;
        }
        for (size_t i = 0; i < json_array_size(cases) && rc != FLOW_ENOMEM; i++) {
            int r = compile_case(a, re_limits_of(a), i, json_array_get(cases, i), &c->cases[c->ncases]);
            if (r < 0)
                rc = r;
            else
                c->ncases++;
        }
    }
    if (otherwise != NULL && check_action(a, "/params/default", otherwise) < 0)
        rc = FLOW_ELOAD;
    c->otherwise = json_string_value(otherwise);
    return compiled(rc, c, choice_free, cfgp);
}

/* The value to test, or NULL when it does not exist (what "exists": false tests). */
static int choice_prepare(flow_ctx_t *ctx, const void *cfg, json_t *shared, json_t *params, json_t **input) {
    const choice_t *c = cfg;
    flow_scope_t sc = scope_of(ctx, shared, NULL);
    flow_error_t err = {0};
    json_t *v = NULL;
    int rc = flow_tmpl_eval(c->value, &sc, &v, &err);
    flow_error_clear(&err);
    if (rc == FLOW_ENOTFOUND)
        v = NULL;
    else if (rc < 0)
        return flow_error(ctx, rc, "choice: %s", flow_strerror(rc));
    /* a value that does not exist is left out, so that "exists": false can tell it from null */
    *input = json_object();
    if (*input == NULL) {
        json_decref(v);
        return flow_error(ctx, FLOW_ENOMEM, "out of memory");
    }
    if (v != NULL && json_object_set_new(*input, "value", v) < 0)
        return flow_error(ctx, FLOW_ENOMEM, "out of memory");
    return 0;
}

static int compare(json_t *v, json_t *w, int *cmp) {
    if (json_is_number(v) && json_is_number(w)) {
        double x = json_number_value(v), y = json_number_value(w);
        *cmp = x < y ? -1 : x > y;
        return 0;
    }
    if (json_is_string(v) && json_is_string(w)) {
        *cmp = strcmp(json_string_value(v), json_string_value(w));
        return 0;
    }
    return -1;
}

static int type_is(json_t *v, const char *t) {
    switch (json_typeof(v)) {
    case JSON_NULL: return strcmp(t, "null") == 0;
    case JSON_TRUE: case JSON_FALSE: return strcmp(t, "boolean") == 0;
    case JSON_INTEGER: return strcmp(t, "integer") == 0 || strcmp(t, "number") == 0;
    case JSON_REAL: return strcmp(t, "number") == 0 || (strcmp(t, "integer") == 0 && floor(json_real_value(v)) == json_real_value(v));
    case JSON_STRING: return strcmp(t, "string") == 0;
    case JSON_ARRAY: return strcmp(t, "array") == 0;
    case JSON_OBJECT: return strcmp(t, "object") == 0;
    }
    return 0;
}

/* 1 when v passes the case, 0 when not, or an error of flow_re_match (why says it). w: the operand
 * as evaluated (eq .. in). */
static int passes(flow_re_run_t *run, const choice_case_t *k, json_t *v, json_t *w, char *why,
                  size_t whylen) {
    int cmp;
    if (k->op == OP_EXISTS)
        return (v != NULL) == json_is_true(k->operand);
    if (v == NULL)
        return 0;
    switch (k->op) {
    case OP_EQ: return json_equal(v, w);
    case OP_NE: return !json_equal(v, w);
    case OP_LT: return compare(v, w, &cmp) == 0 && cmp < 0;
    case OP_LE: return compare(v, w, &cmp) == 0 && cmp <= 0;
    case OP_GT: return compare(v, w, &cmp) == 0 && cmp > 0;
    case OP_GE: return compare(v, w, &cmp) == 0 && cmp >= 0;
    case OP_IN: {
        size_t i;
        json_t *x;
        json_array_foreach(w, i, x)
            if (json_equal(v, x))
                return 1;
        return 0;
    }
    case OP_MATCHES:
        if (!json_is_string(v))
            return 0;
        return flow_re_match(run, k->re, json_string_value(v), json_string_length(v), why, whylen);
    case OP_TYPE: return type_is(v, json_string_value(k->operand));
    default: return 0;
    }
}

/* The first case that passes picks the action. A regular expression that meets a limit fails the
 * node: neither its case nor the next ones can be trusted to be the one the flow meant. */
static int choice_finish(flow_ctx_t *ctx, const void *cfg, json_t *shared, json_t *input, json_t *result,
                         const char **action) {
    const choice_t *c = cfg;
    json_t *v = json_object_get(input, "value");
    flow_scope_t sc = scope_of(ctx, shared, NULL);
    flow_re_run_t run;
    char why[200] = "";
    int rc = 0;
    size_t i;
    flow_re_run_init(&run, c->re_limits);
    for (i = 0; i < c->ncases && rc == 0; i++) {
        const choice_case_t *k = &c->cases[i];
        json_t *w = NULL;
        if (k->tmpl != NULL) {
            flow_error_t err = {0};
            rc = flow_tmpl_eval(k->tmpl, &sc, &w, &err);
            if (rc < 0) {
                flow_re_run_end(&run);
                rc = flow_error(ctx, rc, "choice: case %zu: %s", i,
                                err.message ? err.message : flow_strerror(rc));
                flow_error_clear(&err);
                return rc;
            }
            if (k->op == OP_IN && !json_is_array(w)) {
                json_decref(w);
                flow_re_run_end(&run);
                return flow_error(ctx, FLOW_EINVAL, "choice: case %zu: in needs an array of values",
                                  i);
            }
        }
        rc = passes(&run, k, v, w, why, sizeof why);
        json_decref(w);
    }
    flow_re_run_end(&run);
    if (rc > 0) {
        *action = c->cases[i - 1].action;
        return 0;
    }
    if (rc < 0)
        return flow_error(ctx, rc, "choice: case %zu (matches %.60s): %s", i - 1,
                          flow_re_pattern(c->cases[i - 1].re), rc == FLOW_ENOMEM ? "out of memory" : why);
    *action = c->otherwise;
    return 0;
}

/* ---- fail: {"message": "..."} ---- */

static int fail_compile(const flow_type_args_t *a, void **cfg) {
    static const char *const names[] = {"message", NULL};
    int rc = flow__jknown(a, names);
    if (!json_is_string(json_object_get(a->params, "message")))
        rc = flow__jbad(a, "/params", "fail needs a \"message\" (a string)");
    return rc;
}

static int fail_prepare(flow_ctx_t *ctx, const void *cfg, json_t *shared, json_t *params, json_t **input) {
    const char *message = json_string_value(json_object_get(params, "message"));
    return flow_error(ctx, FLOW_EFAILED, "%s", message ? message : "failed");
}

/* ---- input: {"prompt": "...", "schema": {...}, "actions": {"yes": "accept"}, "timeout_action": "a"} ---- */

typedef struct input_cfg {
    flow_tmpl_t *prompt;
    flow_schema_t *schema;
    json_t *schema_json;
    json_t *actions;
    const char *timeout_action;
    json_t *params;
} input_cfg_t;

static int timed_out_marker; /* ctx data after a timed-out wait: post sees it in the same step */

static void input_free(void *p) {
    input_cfg_t *c = p;
    if (c == NULL)
        return;
    flow_tmpl_free(c->prompt);
    flow_schema_free(c->schema);
    json_decref(c->schema_json);
    json_decref(c->actions);
    json_decref(c->params);
    flow__free(c);
}

static int input_compile(const flow_type_args_t *a, void **cfgp) {
    static const char *const names[] = {"prompt", "schema", "actions", "timeout_action", NULL};
    int rc = flow__jknown(a, names);
    input_cfg_t *c = flow__calloc(1, sizeof *c);
    char where[512];
    if (c == NULL)
        return FLOW_ENOMEM;
    c->params = json_incref(a->params);
    json_t *prompt = json_object_get(a->params, "prompt");
    json_t *schema = json_object_get(a->params, "schema");
    json_t *actions = json_object_get(a->params, "actions");
    json_t *timeout_action = json_object_get(a->params, "timeout_action");
    snprintf(where, sizeof where, "%s/params/prompt", a->where);
    if (!json_is_string(prompt))
        rc = flow__jbad(a, "/params", "input needs a \"prompt\" (a string, may be a template)");
    else if (flow_template_compile(prompt, where, a->roots, &c->prompt, a->problems) < 0)
        rc = FLOW_ELOAD;
    snprintf(where, sizeof where, "%s/params/schema", a->where);
    if (schema != NULL) {
        int r = flow_schema_compile_with(schema, where, re_limits_of(a), &c->schema, a->problems);
        if (r < 0)
            rc = r == FLOW_ENOMEM ? r : FLOW_ELOAD;
    }
    c->schema_json = json_incref(schema);
    if (actions != NULL) {
        const char *key;
        json_t *v;
        if (!json_is_object(actions) || json_object_size(actions) == 0)
            rc = flow__jbad(a, "/params/actions",
                            "actions maps answers to actions, such as {\"yes\": \"accept\", \"no\": \"retry\"}");
        json_object_foreach(actions, key, v) {
            char sub[300];
            snprintf(sub, sizeof sub, "/params/actions/%s", key);
            if (check_action(a, sub, v) < 0)
                rc = FLOW_ELOAD;
        }
        c->actions = json_incref(actions);
    }
    if (timeout_action != NULL) {
        if (check_action(a, "/params/timeout_action", timeout_action) < 0)
            rc = FLOW_ELOAD;
        else if (json_integer_value(json_object_get(a->node, "timeout")) <= 0)
            rc = flow__jbad(a, "/params/timeout_action",
                            "timeout_action needs the node's \"timeout\" (milliseconds)");
        c->timeout_action = json_string_value(timeout_action);
    }
    return compiled(rc, c, input_free, cfgp);
}

static int input_prepare(flow_ctx_t *ctx, const void *cfg, json_t *shared, json_t *params, json_t **req) {
    const input_cfg_t *c = cfg;
    flow_scope_t sc = scope_of(ctx, shared, NULL);
    json_t *prompt = NULL;
    int rc = eval(ctx, c->prompt, &sc, &prompt);
    if (rc < 0)
        return rc;
    json_t *choices = NULL;
    if (c->actions != NULL) {
        const char *key;
        json_t *v;
        choices = json_array();
        json_object_foreach(c->actions, key, v)
            json_array_append_new(choices, json_string(key));
    }
    *req = json_pack("{s:o, s:O*, s:o*}", "prompt", prompt, "schema", c->schema_json, "choices", choices);
    return *req ? 0 : flow_error(ctx, FLOW_ENOMEM, "out of memory");
}

static void input_exec(flow_ctx_t *ctx, const void *cfg, json_t *req) {
    int rc = flow_await_input(ctx, req);
    if (rc < 0)
        flow_fail(ctx, rc, "cannot wait for input: %s", flow_strerror(rc));
}

static int input_check(flow_ctx_t *ctx, const void *cfg, json_t *value) {
    const input_cfg_t *c = cfg;
    if (c->schema != NULL) {
        flow_problems_t problems = FLOW_PROBLEMS_INIT;
        int rc = flow_schema_validate(c->schema, value, &problems);
        if (rc < 0) {
            char *text = NULL;
            flow_problems_text(&problems, &text);
            flow_problems_clear(&problems);
            rc = flow_error(ctx, FLOW_EINVAL, "the answer does not meet the schema: %s", text ? text : "invalid");
            flow__free(text);
            return rc;
        }
        flow_problems_clear(&problems);
    }
    if (c->actions != NULL) {
        const char *s = json_string_value(value);
        if (s == NULL || json_object_get(c->actions, s) == NULL) {
            char list[256] = "";
            size_t len = 0;
            const char *key;
            json_t *v;
            json_object_foreach(c->actions, key, v) {
                int n = snprintf(list + len, sizeof list - len, "%s\"%s\"", len ? ", " : "", key);
                if (n < 0 || len + (size_t)n >= sizeof list)
                    break;
                len += (size_t)n;
            }
            return flow_error(ctx, FLOW_EINVAL, "the answer must be one of %s", list);
        }
    }
    return 0;
}

static int input_fallback(flow_ctx_t *ctx, const void *cfg, const flow_error_t *err, json_t **result) {
    const input_cfg_t *c = cfg;
    if (err->code == FLOW_ETIMEDOUT && c->timeout_action != NULL) {
        flow_ctx_set_data(ctx, &timed_out_marker);
        *result = NULL;
        return 0;
    }
    return flow_error(ctx, err->code, "%s", err->message ? err->message : flow_strerror(err->code));
}

static int input_finish(flow_ctx_t *ctx, const void *cfg, json_t *shared, json_t *req, json_t *answer,
                        const char **action) {
    const input_cfg_t *c = cfg;
    if (flow_ctx_data(ctx) == &timed_out_marker) {
        *action = c->timeout_action;
        return 0;
    }
    if (c->actions != NULL && json_is_string(answer))
        *action = json_string_value(json_object_get(c->actions, json_string_value(answer)));
    return flow__jnode_store(ctx, flow_ctx_node_data(ctx), shared, flow_ctx_params(ctx), json_incref(answer));
}

/* ---- the table ---- */

static const flow__jtype_t noop_type = {.name = "noop", .compile = noop_compile};
static const flow__jtype_t sleep_type = {.name = "sleep", .flags = FLOW__JT_ITEMS | FLOW__JT_OUT,
                                         .compile = sleep_compile, .exec = sleep_exec};
static const flow__jtype_t set_type = {.name = "set", .compile = set_compile, .free = set_free,
                                       .finish = set_finish};
static const flow__jtype_t choice_type = {.name = "choice", .flags = FLOW__JT_OWN_PARAMS,
                                          .compile = choice_compile, .free = choice_free,
                                          .prepare = choice_prepare, .finish = choice_finish};
static const flow__jtype_t fail_type = {.name = "fail", .compile = fail_compile, .prepare = fail_prepare};
static const flow__jtype_t input_type = {
    .name = "input", .flags = FLOW__JT_OWN_PARAMS | FLOW__JT_OUT, .compile = input_compile, .free = input_free,
    .prepare = input_prepare, .exec = input_exec, .input = input_check, .fallback = input_fallback,
    .finish = input_finish};

static const flow__jtype_t *const builtin_types[] = {&noop_type, &sleep_type, &set_type, &choice_type,
                                                     &fail_type, &input_type, &flow__http_type,
                                                     &flow__llm_type, &flow__lua_type};

/* The registry's data for a built-in type: the type and the environment. */
typedef struct builtin {
    const flow__jtype_t *type;
    const flow_nodes_env_t *env;
} builtin_t;

static int builtin_factory(const flow_type_args_t *a, const flow_node_ops_t **ops, void **data) {
    const builtin_t *b = a->data;
    flow__jnode_t *n;
    int rc = flow__jnode_make(b->type, b->env, a, a->node, a->where, NULL, 0, ops, &n);
    if (rc == 0)
        *data = n;
    return rc;
}

const char *flow_node_type(const flow_node_t *node) {
    static const char *const kinds[] = {"node", "batch", "parallel_batch", "flow", "batch_flow",
                                        "parallel_batch_flow"};
    const flow__jnode_t *n = flow__jnode_of(node);
    if (n != NULL && n->type != NULL)
        return n->type->name;
    if (node->ops == &flow__flow_ops) /* a document's flow node, or its map over a sub-flow */
        return node->kind == FLOW_FLOW ? "flow" : "map";
    return (unsigned)node->kind < sizeof kinds / sizeof kinds[0] ? kinds[node->kind] : "node";
}

flow__jnode_t *flow__jnode_of(const flow_node_t *node) {
    const flow_node_ops_t *ops = node->ops;
    return ops == &j_ops || ops == &map_ops || ops == &flow__flow_ops ? node->data : NULL;
}

const flow__jtype_t *flow__jtype_of(flow_type_factory factory, void *data) {
    return factory == builtin_factory ? ((const builtin_t *)data)->type : NULL;
}

const flow_nodes_env_t *flow__jenv_of(flow_type_factory factory, void *data) {
    return factory == builtin_factory ? ((const builtin_t *)data)->env : NULL;
}

int flow_nodes_register(flow_registry_t *reg, const flow_nodes_env_t *env) {
    /* One block of builtin_t for all the types; the registry frees it with the first type, the
     * others point into it. */
    enum { NTYPES = sizeof builtin_types / sizeof builtin_types[0] };
    builtin_t *all = flow__calloc(NTYPES, sizeof *all);
    if (all == NULL)
        return FLOW_ENOMEM;
    for (size_t i = 0; i < NTYPES; i++) {
        all[i].type = builtin_types[i];
        all[i].env = env;
        int rc = flow_registry_add_type(reg, builtin_types[i]->name, builtin_factory, &all[i],
                                        i == 0 ? flow__free : NULL);
        if (rc < 0) {
            if (i == 0)
                flow__free(all);
            return rc; /* the types added so far keep pointing into all, which the registry frees */
        }
    }
    return 0;
}
