/* script_node.c: Lua hooks on the nodes of flow documents (PocketFlow's prep, exec, post and
 * exec_fallback, written in Lua), the lua node type, and what the document loader needs to compile
 * them: a Lua state per document (its "code" chunk and the inline hooks of its nodes), checked and
 * frozen when the document loads.
 *
 * Which node may take which hook, and what each is given. params is always the flow's params, what
 * "$params" names (in a map, with item and index).
 *
 * prep(shared, params): on lua and noop nodes its result is prep_res; on http, llm, sleep and flow
 * nodes its result (an object, or nil) goes over the evaluated params.
 *
 * exec(prep_res, params): lua nodes only.
 *
 * post(shared, prep_res, exec_res, params): every type but fail; its action (nil: the type's own,
 * "default" for most) picks the next node.
 *
 * fallback(prep_res, err, params): lua, http, llm, sleep, input; after the last try failed, its
 * result is exec_res; an error in it fails the step.
 *
 * A map takes post on itself (exec_res: the results) and prep, exec, fallback on its "node", per
 * item; a map over a sub-flow takes post only. */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "nodes_int.h"
#include "flow/problems.h"

enum {
    H_PREP = FLOW__HOOK_PREP,
    H_EXEC = FLOW__HOOK_EXEC,
    H_POST = FLOW__HOOK_POST,
    H_FALLBACK = FLOW__HOOK_FALLBACK,
    H_COUNT = FLOW__HOOK_COUNT
};

static const char *const hook_names[H_COUNT] = {"prep", "exec", "post", "fallback"};
static const char *const prep_params[] = {"shared", "params", NULL};
static const char *const exec_params[] = {"prep_res", "params", NULL};
static const char *const post_params[] = {"shared", "prep_res", "exec_res", "params", NULL};
static const char *const fallback_params[] = {"prep_res", "err", "params", NULL};
static const char *const *const hook_args[H_COUNT] = {prep_params, exec_params, post_params,
                                                      fallback_params};

#define ACTION_MAX 256 /* bytes of an action a post hook returns */

struct flow__hooks {
    flow_script_t *script;
    int ref[H_COUNT];
    uint64_t budget; /* 0: the server's */
    int merge;       /* prep's result goes over the evaluated params */
    char action[ACTION_MAX];
};

/* ---- running them ---- */

static int call(flow_ctx_t *ctx, const flow__hooks_t *h, int which, json_t *const *args,
                unsigned nargs, unsigned writable, json_t **result, flow_error_t *err) {
    flow_script_call_t c = {.ref = h->ref[which],
                            .budget = h->budget,
                            .nargs = nargs,
                            .writable = writable,
                            .ctx = ctx,
                            .node = flow_node_name(flow_ctx_node(ctx)),
                            .hook = hook_names[which]};
    if (which == H_POST) { /* the action, straight into the buffer */
        c.text = ((flow__hooks_t *)h)->action;
        c.text_cap = sizeof h->action;
    }
    for (unsigned i = 0; i < nargs; i++)
        c.args[i] = args[i];
    return flow_script_call(h->script, &c, result, err);
}

/* call, with the error recorded on ctx (for prep, post, fallback). */
static int call_recorded(flow_ctx_t *ctx, const flow__hooks_t *h, int which, json_t *const *args,
                         unsigned nargs, unsigned writable, json_t **result) {
    flow_error_t err = {0};
    int rc = call(ctx, h, which, args, nargs, writable, result, &err);
    if (rc < 0)
        rc = flow_error(ctx, rc, "%s", err.message ? err.message : flow_strerror(rc));
    flow_error_clear(&err);
    return rc;
}

int flow__hook_has(const flow__hooks_t *h, enum flow__hook which) {
    return h != NULL && h->ref[which] != FLOW_SCRIPT_NOREF;
}

int flow__hook_merges(const flow__hooks_t *h) {
    return h != NULL && h->merge;
}

json_t *flow__hook_item_params(flow_ctx_t *ctx, json_t *item, size_t index) {
    json_t *p = json_copy(flow_ctx_params(ctx));
    if (p == NULL || json_object_set(p, "item", item ? item : json_null()) < 0 ||
        json_object_set_new(p, "index", json_integer((json_int_t)index)) < 0) {
        json_decref(p);
        return NULL;
    }
    return p;
}

int flow__hook_prep(flow_ctx_t *ctx, const flow__hooks_t *h, json_t *shared, json_t *hook_params,
                    json_t **params, json_t **prep_res) {
    json_t *args[2] = {shared, hook_params ? hook_params : flow_ctx_params(ctx)};
    json_t *r = NULL;
    int rc = call_recorded(ctx, h, H_PREP, args, 2, 1, &r);
    if (rc < 0)
        return rc;
    if (!h->merge) {
        *prep_res = r;
        return 0;
    }
    if (r == NULL)
        return 0;
    if (!json_is_object(r)) {
        json_decref(r);
        return flow_error(ctx, FLOW_ESCRIPT,
                          "node %s, prep: returns an object (it goes over the node's params) or "
                          "nil",
                          flow_node_name(flow_ctx_node(ctx)));
    }
    json_t *merged = *params ? json_copy(*params) : json_object();
    if (merged == NULL || json_object_update(merged, r) < 0) {
        json_decref(merged);
        json_decref(r);
        return flow_error(ctx, FLOW_ENOMEM, "out of memory");
    }
    json_decref(r);
    json_decref(*params);
    *params = merged;
    return 0;
}

int flow__hook_post(flow_ctx_t *ctx, flow__hooks_t *h, json_t *shared, json_t *prep_res,
                    json_t *exec_res, const char **action) {
    json_t *args[4] = {shared, prep_res, exec_res, flow_ctx_params(ctx)};
    int rc = call_recorded(ctx, h, H_POST, args, 4, 1, NULL);
    if (rc == 0 && h->action[0] != '\0') /* nil or "": the type's own action */
        *action = h->action;
    return rc;
}

int flow__hook_fallback(flow_ctx_t *ctx, const flow__hooks_t *h, json_t *prep_res,
                        const flow_error_t *err, json_t **result) {
    json_t *e = json_pack("{s:s, s:s}", "code", flow_err_name(err->code), "message",
                          err->message ? err->message : flow_strerror(err->code));
    if (e == NULL)
        return flow_error(ctx, FLOW_ENOMEM, "out of memory");
    json_t *args[3] = {prep_res, e, flow_ctx_params(ctx)};
    int rc = call_recorded(ctx, h, H_FALLBACK, args, 3, 0, result);
    json_decref(e);
    return rc;
}

void flow__hooks_free(flow__hooks_t *h) {
    if (h == NULL)
        return;
    flow_script_unref(h->script);
    flow__free(h);
}

/* ---- the lua node type: its exec is Lua ---- */

static int lua_compile(const flow_type_args_t *a, void **cfg) {
    *cfg = NULL;
    return 0;
}

static void lua_exec(flow_ctx_t *ctx, const void *cfg, json_t *input) {
    const flow__jnode_t *n = flow_ctx_node_data(ctx);
    if (n->hooks == NULL || n->hooks->ref[H_EXEC] == FLOW_SCRIPT_NOREF) {
        flow_done(ctx, NULL);
        return;
    }
    json_t *args[2] = {input, flow_ctx_params(ctx)};
    json_t *r = NULL;
    flow_error_t err = {0};
    int rc = call(ctx, n->hooks, H_EXEC, args, 2, 0, &r, &err);
    if (rc < 0)
        flow_fail(ctx, rc, "%s", err.message ? err.message : flow_strerror(rc));
    else
        flow_done(ctx, r);
    flow_error_clear(&err);
}

const flow__jtype_t flow__lua_type = {.name = "lua",
                                      .flags = FLOW__JT_ITEMS | FLOW__JT_OUT,
                                      .compile = lua_compile,
                                      .exec = lua_exec};

/* ---- loading: a state per document ---- */

typedef struct doc_script {
    json_t *doc; /* borrowed from the loader */
    flow_script_t *script;
    int chunk_ok; /* its code loaded (or it has none) */
} doc_script_t;

struct flow__scripts {
    const flow_script_limits_t *lim; /* NULL: the registry has no lua type */
    doc_script_t *items;
    size_t n, cap;
    json_t *file_doc; /* the document whose code came from file */
    const char *file;
    flow_problems_t *file_problems;
};

int flow__scripts_new(flow_registry_t *reg, flow__scripts_t **out) {
    flow__scripts_t *sc = flow__calloc(1, sizeof *sc);
    flow_type_factory factory;
    void *data;
    if (sc == NULL)
        return FLOW_ENOMEM;
    if (flow_registry_type(reg, "lua", &factory, &data) == 0 &&
        flow__jtype_of(factory, data) == &flow__lua_type) {
        const flow_nodes_env_t *env = flow__jenv_of(factory, data);
        static const flow_script_limits_t defaults;
        sc->lim = env != NULL ? &env->lua : &defaults;
    }
    *out = sc;
    return 0;
}

void flow__scripts_set_file(flow__scripts_t *sc, json_t *doc, const char *file,
                            flow_problems_t *file_problems) {
    sc->file_doc = doc;
    sc->file = file;
    sc->file_problems = file_problems;
}

void flow__scripts_free(flow__scripts_t *sc) {
    if (sc == NULL)
        return;
    for (size_t i = 0; i < sc->n; i++)
        flow_script_unref(sc->items[i].script);
    flow__free(sc->items);
    flow__free(sc);
}

int flow__scripts_finish(flow__scripts_t *sc, flow_problems_t *problems) {
    int rc = 0;
    for (size_t i = 0; i < sc->n; i++)
        if (flow_script_freeze(sc->items[i].script, "/code", problems) < 0)
            rc = FLOW_ELOAD;
    return rc;
}

/* The document's code as one text (lines joined) in *text; *joined is what to free. 0, FLOW_ELOAD
 * with a problem (not a string or an array of strings), or FLOW_ENOMEM. */
static int code_text(json_t *code, const char **out, size_t *len, char **joined, flow_problems_t *problems) {
    *joined = NULL;
    *out = NULL;
    if (json_is_string(code)) {
        *len = json_string_length(code);
        *out = json_string_value(code);
        return 0;
    }
    size_t i, total = 0;
    json_t *line;
    int ok = json_is_array(code);
    json_array_foreach(code, i, line) {
        ok &= json_is_string(line);
        total += json_string_length(line) + 1;
    }
    if (!ok) {
        flow_problems_add(problems, "/code",
                          "code is Lua: a string, or an array of lines (strings)");
        return FLOW_ELOAD;
    }
    char *text = flow__malloc(total + 1);
    if (text == NULL)
        return FLOW_ENOMEM;
    size_t n = 0;
    json_array_foreach(code, i, line) {
        memcpy(text + n, json_string_value(line), json_string_length(line));
        n += json_string_length(line);
        text[n++] = '\n';
    }
    text[n] = '\0';
    *len = n;
    *joined = text;
    *out = text;
    return 0;
}

/* The state of doc (made, with its code loaded, at the first use). NULL with *rc set on error. */
static doc_script_t *script_of(flow__scripts_t *sc, json_t *doc, flow_problems_t *problems,
                               int *rc) {
    *rc = 0;
    for (size_t i = 0; i < sc->n; i++)
        if (sc->items[i].doc == doc)
            return &sc->items[i];
    doc_script_t *items = flow__grow(sc->items, sc->n, &sc->cap, sizeof *items, 4, 0);
    if (items == NULL) {
        *rc = FLOW_ENOMEM;
        return NULL;
    }
    sc->items = items;
    doc_script_t *d = &sc->items[sc->n];
    memset(d, 0, sizeof *d);
    if ((*rc = flow_script_new(sc->lim, &d->script)) < 0)
        return NULL;
    d->doc = doc;
    d->chunk_ok = 1;
    sc->n++;
    json_t *code = json_object_get(doc, "code");
    if (code == NULL)
        return d;
    size_t len = 0;
    char *joined;
    const char *text;
    int r = code_text(code, &text, &len, &joined, problems);
    if (r < 0) { /* an array of lines with one that is not a string is a problem, not a lack of memory */
        d->chunk_ok = 0;
        *rc = r;
        return r == FLOW_ENOMEM ? NULL : d;
    }
    int from_file = doc == sc->file_doc && sc->file != NULL;
    flow_script_place_t place = from_file             ? FLOW_SCRIPT_AT_FILE
                                : json_is_array(code) ? FLOW_SCRIPT_AT_LINES
                                                      : FLOW_SCRIPT_AT_POINTER;
    r = flow_script_load(d->script, text, len, from_file ? sc->file : "/code",
                             from_file ? sc->file : "/code", place,
                             from_file ? sc->file_problems : problems);
    flow__free(joined);
    if (r < 0) {
        d->chunk_ok = 0;
        *rc = r;
        if (r == FLOW_ENOMEM)
            return NULL;
    }
    return d;
}

int flow__scripts_code(flow__scripts_t *sc, json_t *doc, flow_problems_t *problems) {
    int rc;
    if (json_object_get(doc, "code") == NULL)
        return 0;
    if (sc->lim == NULL) {
        flow_problems_add(problems, "/code",
                          "this server has no Lua (the lua node type is not registered)");
        return FLOW_ELOAD;
    }
    script_of(sc, doc, problems, &rc);
    return rc;
}

/* ---- the hooks of a node ---- */

typedef struct hook_member {
    json_t *spec;
    char where[512];
} hook_member_t;

/* Which hooks a node of this type takes where it stands: bit i for hook i. */
static unsigned allowed(const char *type, int item, int *merge) {
    *merge = 0;
    if (strcmp(type, "lua") == 0)
        return item ? 1u << H_PREP | 1u << H_EXEC | 1u << H_FALLBACK : 0xFu;
    if (strcmp(type, "http") == 0 || strcmp(type, "llm") == 0 || strcmp(type, "sleep") == 0) {
        *merge = 1;
        return item ? 1u << H_PREP | 1u << H_FALLBACK
                    : 1u << H_PREP | 1u << H_POST | 1u << H_FALLBACK;
    }
    if (item)
        return 0;
    if (strcmp(type, "noop") == 0)
        return 1u << H_PREP | 1u << H_POST;
    if (strcmp(type, "input") == 0)
        return 1u << H_POST | 1u << H_FALLBACK;
    if (strcmp(type, "set") == 0 || strcmp(type, "choice") == 0)
        return 1u << H_POST;
    if (strcmp(type, "flow") == 0) {
        *merge = 1;
        return 1u << H_PREP | 1u << H_POST;
    }
    return 0;
}

static const char *refusal(const char *type, int which, int item) {
    if (item && which == H_POST)
        return "post goes on the map itself (it gets the results of every item)";
    if (which == H_EXEC)
        return "only a node of type lua has an exec in Lua";
    if (which == H_FALLBACK)
        return "fallback is for nodes whose exec can fail: lua, http, llm, sleep, input";
    if (strcmp(type, "fail") == 0)
        return "a fail node runs no hook: it fails";
    return "prep is for lua, noop, http, llm, sleep and flow nodes";
}

/* Gathers the hook members of one spec (a node, or a map's "node") into m, checking that they are
 * allowed; returns the bits found. */
static unsigned gather(json_t *spec, const char *where, const char *type, int item,
                       hook_member_t *m, flow_problems_t *problems, int *bad) {
    int merge;
    unsigned ok = allowed(type, item, &merge), found = 0;
    for (int i = 0; i < H_COUNT; i++) {
        json_t *v = json_object_get(spec, hook_names[i]);
        if (v == NULL || (item && i == H_POST)) /* a map's node has no post: the loader says so */
            continue;
        snprintf(m[i].where, sizeof m[i].where, "%s/%s", where, hook_names[i]);
        if (!(ok & (1u << i))) {
            flow_problems_add(problems, m[i].where, "a %s node cannot take a %s hook: %s", type,
                              hook_names[i], refusal(type, i, item));
            *bad = 1;
            continue;
        }
        m[i].spec = v;
        found |= 1u << i;
    }
    return found;
}

/* A lua node's exec gets what prep returns, or else its params: both would leave the params unused.
 */
static int prep_or_params(json_t *spec, const char *type, unsigned found, const char *where,
                          flow_problems_t *problems) {
    char at[600];
    if (!(found & (1u << H_PREP)) || strcmp(type, "lua") != 0 ||
        json_object_get(spec, "params") == NULL)
        return 0;
    snprintf(at, sizeof at, "%s/prep", where);
    flow_problems_add(problems, at,
                      "a lua node takes a prep hook or params, not both (prep's result is "
                      "what exec gets)");
    return 1;
}

int flow__hooks_load(flow__scripts_t *sc, json_t *doc, json_t *spec, const char *where,
                     flow_node_t *node, flow_problems_t *problems) {
    hook_member_t m[H_COUNT];
    memset(m, 0, sizeof m);
    const char *type = json_string_value(json_object_get(spec, "type"));
    json_t *inner = json_object_get(spec, "node");
    json_t *budget = json_object_get(spec, "budget");
    char inner_where[512], at[600];
    int bad = 0, merge = 0;
    unsigned found;
    static const char *const known[] = {"lua", "http",   "llm",  "sleep", "noop", "input",
                                        "set", "choice", "fail", "flow",  "map",  NULL};
    int is_known = 0;
    for (const char *const *k = known; type != NULL && *k != NULL; k++)
        is_known |= strcmp(*k, type) == 0;
    if (type == NULL || (!is_known && node == NULL)) /* the unknown type is the problem */
        return 0;
    if (!is_known) {
        for (int i = 0; i < H_COUNT; i++)
            if (json_object_get(spec, hook_names[i]) != NULL) {
                flow_problems_add(problems, where,
                                  "a node of type %s (written in C) cannot take Lua hooks", type);
                return FLOW_ELOAD;
            }
        return 0;
    }
    if (strcmp(type, "map") == 0) {
        found = json_object_get(spec, "post") != NULL ? 1u << H_POST : 0;
        if (found) {
            m[H_POST].spec = json_object_get(spec, "post");
            snprintf(m[H_POST].where, sizeof m[H_POST].where, "%s/post", where);
        }
        const char *itype = json_string_value(json_object_get(inner, "type"));
        if (json_is_object(inner) && itype != NULL) {
            hook_member_t im[H_COUNT];
            memset(im, 0, sizeof im);
            snprintf(inner_where, sizeof inner_where, "%s/node", where);
            unsigned ifound = gather(inner, inner_where, itype, 1, im, problems, &bad);
            allowed(itype, 1, &merge);
            for (int i = 0; i < H_COUNT; i++)
                if (ifound & (1u << i))
                    m[i] = im[i];
            found |= ifound;
            bad |= prep_or_params(inner, itype, ifound, inner_where, problems);
        }
    } else {
        found = gather(spec, where, type, 0, m, problems, &bad);
        allowed(type, 0, &merge);
        bad |= prep_or_params(spec, type, found, where, problems);
    }
    if (budget != NULL) {
        uint64_t max = sc->lim ? (sc->lim->instructions_max ? sc->lim->instructions_max
                                                            : FLOW_SCRIPT_INSTRUCTIONS_MAX)
                               : FLOW_SCRIPT_INSTRUCTIONS_MAX;
        snprintf(at, sizeof at, "%s/budget", where);
        if (!json_is_integer(budget) || json_integer_value(budget) < 1 ||
            (uint64_t)json_integer_value(budget) > max) {
            flow_problems_add(
                problems, at,
                "budget is the instructions a Lua hook of this node may run, 1 to %llu "
                "(--lua-budget-max)",
                (unsigned long long)max);
            bad = 1;
        } else if (found == 0) {
            flow_problems_add(problems, at, "budget is for the node's Lua hooks, and it has none");
            bad = 1;
        }
    }
    if (found == 0)
        return bad ? FLOW_ELOAD : 0;
    if (sc->lim == NULL) {
        flow_problems_add(problems, where,
                          "this server has no Lua (the lua node type is not registered)");
        return FLOW_ELOAD;
    }
    int rc;
    doc_script_t *d = script_of(sc, doc, problems, &rc);
    if (d == NULL)
        return rc;
    int refs[H_COUNT];
    for (int i = 0; i < H_COUNT; i++) {
        refs[i] = FLOW_SCRIPT_NOREF;
        if (m[i].spec == NULL)
            continue;
        int r = flow_script_hook(d->script, m[i].spec, hook_args[i], m[i].where, d->chunk_ok,
                                 problems, &refs[i]);
        if (r == FLOW_ENOMEM)
            return r;
        if (r < 0)
            bad = 1;
    }
    flow__jnode_t *jn = node ? flow__jnode_of(node) : NULL;
    if (bad || jn == NULL)
        return bad ? FLOW_ELOAD : 0;
    flow__hooks_t *h = flow__calloc(1, sizeof *h);
    if (h == NULL)
        return FLOW_ENOMEM;
    h->script = flow_script_ref(d->script);
    memcpy(h->ref, refs, sizeof refs);
    h->budget = budget ? (uint64_t)json_integer_value(budget) : 0;
    h->merge = merge;
    flow__hooks_free(jn->hooks);
    jn->hooks = h;
    return 0;
}
