/* nodes_int.h: what the built-in node types (nodes.c, nodes_net.c, script_node.c) share with each
 * other and with the document loader (doc.c), inside the library. A program registers them with
 * flow/nodes.h. */
#ifndef FLOW_NODES_INT_H
#define FLOW_NODES_INT_H

#include "flow.h"
#include "flow/nodes.h"
#include "flow/problems.h"
#include "re.h"
#include "script.h"
#include "template.h"

/* ---- what the built-in types share (nodes.c) ---- */

/* Adds a problem at a->where followed by sub (a JSON Pointer suffix, "/params/url"), with a
 * printf-formatted message; returns FLOW_ELOAD. */
int flow__jbad(const flow_type_args_t *a, const char *sub, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A problem for each member of a->params not in names (NULL-terminated): 0 or FLOW_ELOAD. */
int flow__jknown(const flow_type_args_t *a, const char *const *names);
/* 1 when v is a string that is a reference or a template ("$..." but not "$$...", or with "{{"),
 * whose value is only known when the node runs. */
int flow__jdynamic(json_t *v);

/* ---- for doc.c ---- */

/* A built-in type. prepare (in the node's prep) turns the evaluated params into exec's input; exec
 * does the work; finish (in post) writes the result and picks the action. */
typedef struct flow__jtype {
    const char *name;
    unsigned flags;
    const char *const *literal; /* params taken as written, never evaluated (NULL-terminated; may
                                 * be NULL): compile reads them from its args, prepare never sees
                                 * them */
    int (*compile)(const flow_type_args_t *a, void **cfg); /* a->data: the flow_nodes_env_t */
    void (*free)(void *cfg);
    int (*prepare)(flow_ctx_t *ctx, const void *cfg, json_t *shared, json_t *params, json_t **input);
    void (*exec)(flow_ctx_t *ctx, const void *cfg, json_t *input);
    void (*cancel)(flow_ctx_t *ctx);
    int (*input)(flow_ctx_t *ctx, const void *cfg, json_t *value);
    int (*fallback)(flow_ctx_t *ctx, const void *cfg, const flow_error_t *err, json_t **result);
    int (*finish)(flow_ctx_t *ctx, const void *cfg, json_t *shared, json_t *input, json_t *result,
                  const char **action);
} flow__jtype_t;

#define FLOW__JT_ITEMS 1u  /* may run per item inside a map */
#define FLOW__JT_OUT 2u    /* has a result that "out" can store */

/* One member of an "out" object: the part of the result at from goes where to says. */
typedef struct flow__jout {
    flow_tmpl_t *to;  /* evaluates to a JSON Pointer into shared */
    const char *from; /* a JSON Pointer into the result ("" the whole of it); borrowed
                                 * from the node's description */
} flow__jout_t;

/* The node data of a document node of a built-in type (and of a map over one). */
typedef struct flow__jnode {
    const flow__jtype_t *type;
    void *cfg;
    flow_tmpl_t *params;        /* the node's params, evaluated in prep */
    flow_tmpl_t *out;           /* evaluates to a JSON Pointer into shared; NULL: not stored */
    flow__jout_t *outs;         /* or "out" as an object: nouts parts stored, in its order */
    size_t nouts;
    json_t *out_spec;           /* that object: keeps the from strings */
    flow_tmpl_t *items;         /* map: the reference to the array it maps over */
    const flow_nodes_env_t *env;
    struct flow__hooks *hooks;  /* its Lua hooks (script_node.c), or NULL */
    flow_netrules_t *outbound;  /* http: the "outbound" allow list of the document that holds the
                                 * node (a reference), or NULL */
} flow__jnode_t;

/* The built-in type of that name, NULL if reg's factory for it is not a built-in one. */
const flow__jtype_t *flow__jtype_of(flow_type_factory factory, void *data);

/* Makes the node data of a node of type t from args (its params), with "out" taken from outer (the
 * node's description; for a map, the map node's, whose JSON Pointer is outer_where), and the ops:
 * single for a plain node, map ones (items: the reference to map over) to run t once per item. */
int flow__jnode_make(const flow__jtype_t *t, const flow_nodes_env_t *env, const flow_type_args_t *a,
                     json_t *outer, const char *outer_where, json_t *items, int map,
                     const flow_node_ops_t **ops, flow__jnode_t **out);
const flow_nodes_env_t *flow__jenv_of(flow_type_factory factory, void *data);
void flow__jnode_free(void *jnode);
/* Gives a node the allow list of its document (a new reference; NULL for none). */
void flow__jnode_set_outbound(flow__jnode_t *n, flow_netrules_t *rules);

/* Writes value (stolen) in shared where the "out" of a node says (or its parts, where an "out"
 * object says); with no out, drops it. */
int flow__jnode_store(flow_ctx_t *ctx, const flow__jnode_t *n, json_t *shared, json_t *params, json_t *value);

extern const flow_node_ops_t flow__flow_ops; /* the "flow" node: its prep gives the params */
int flow__flow_params_make(const flow_type_args_t *a, flow__jnode_t **out);

/* The node data of a document node made by these types (plain, map or flow), or NULL. */
flow__jnode_t *flow__jnode_of(const flow_node_t *node);

/* ---- Lua hooks (script_node.c) ---- */

typedef struct flow__hooks flow__hooks_t;
extern const flow__jtype_t flow__lua_type;

enum flow__hook { FLOW__HOOK_PREP, FLOW__HOOK_EXEC, FLOW__HOOK_POST, FLOW__HOOK_FALLBACK, FLOW__HOOK_COUNT };

/* prep: the hook's result for prep_res (new reference). With merge, the result (an object, or nil)
 * goes over *params (replaced by a new reference); without, it is prep_res itself (*prep_res; *params
 * untouched). Returns 0 or an error code recorded on ctx. */
int flow__hook_prep(flow_ctx_t *ctx, const flow__hooks_t *h, json_t *shared, json_t *hook_params, json_t **params,
                    json_t **prep_res);
int flow__hook_has(const flow__hooks_t *h, enum flow__hook which);
int flow__hook_merges(const flow__hooks_t *h);                 /* prep's result goes over the params */
/* post: *action becomes the hook's action when it returns one (kept valid until the next call). */
int flow__hook_post(flow_ctx_t *ctx, flow__hooks_t *h, json_t *shared, json_t *prep_res, json_t *exec_res,
                    const char **action);
int flow__hook_fallback(flow_ctx_t *ctx, const flow__hooks_t *h, json_t *prep_res, const flow_error_t *err,
                        json_t **result);
void flow__hooks_free(flow__hooks_t *h);
/* The flow's params with item and index, for hooks inside a map (new reference). */
json_t *flow__hook_item_params(flow_ctx_t *ctx, json_t *item, size_t index);

/* For the document loader: the Lua states of the documents one load meets (the one loaded, and those
 * of flows it uses), made at their first use. */
typedef struct flow__scripts flow__scripts_t;
int flow__scripts_new(flow_registry_t *reg, flow__scripts_t **out);
/* doc's code came from file (NAME.lua): its problems go to file_problems as "file:LINE". */
void flow__scripts_set_file(flow__scripts_t *sc, json_t *doc, const char *file, flow_problems_t *file_problems);
/* Checks (loads) doc's "code", if it has one. 0, FLOW_ELOAD (problems say why), FLOW_ENOMEM. */
int flow__scripts_code(flow__scripts_t *sc, json_t *doc, flow_problems_t *problems);
/* The hooks of the node spec (at where, in doc) onto node (NULL: only check them). */
int flow__hooks_load(flow__scripts_t *sc, json_t *doc, json_t *spec, const char *where, flow_node_t *node,
                     flow_problems_t *problems);
/* Freezes every state: after it, only calls. */
int flow__scripts_finish(flow__scripts_t *sc, flow_problems_t *problems);
void flow__scripts_free(flow__scripts_t *sc); /* the nodes keep the states they use */

#endif
