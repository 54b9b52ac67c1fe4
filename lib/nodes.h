/* nodes.h: the built-in node types of flow documents: noop, sleep, set, choice, fail, input, http
 * and llm, registered by name in a flow_registry_t. (map and flow are made by the document loader,
 * doc.c, from these.) What each type takes and does is written in api/flow.schema.json and the
 * README; this header is the C side. */
#ifndef FLOW_NODES_H
#define FLOW_NODES_H

#include "flow.h"
#include "http.h"
#include "netpolicy.h"
#include "template.h"

/* What the types need from the program that runs them. Borrowed: it must outlive every definition
 * made from the registry. */
typedef struct flow_nodes_env {
    flow_http_t *http;        /* client on the engine's loop for http and llm nodes; NULL: such
                               * nodes fail when they run, saying so */
    const char *llm_base_url; /* OpenAI-compatible API, e.g. "https://api.openai.com/v1" */
    const char *llm_api_key;  /* sent as a Bearer token; never written to a job's store, history or
                               * logs */
    const char *llm_model;    /* the model when a node names none */
    size_t max_body;          /* response bodies of http and llm nodes; 0: 10 MiB */
    flow_netrules_t *llm_allow; /* what llm nodes may reach besides the client's policy: the host
                               * and port of llm_base_url, allowed because the operator configured
                               * it (flow_netrules_add_url); NULL: nothing more */
    int no_flow_outbound;     /* documents that carry their own "outbound" allow list do not load
                               * (flowd --flow-outbound off); 0: such lists apply to their http
                               * nodes */
} flow_nodes_env_t;

/* Registers the built-in types in reg. FLOW_EEXIST when one is taken. */
int flow_nodes_register(flow_registry_t *reg, const flow_nodes_env_t *env);

/* ---- for doc.c ---- */

/* A built-in type. prepare (in the node's prep) turns the evaluated params into exec's input; exec
 * does the work; finish (in post) writes the result and picks the action. */
typedef struct flow__jtype {
    const char *name;
    unsigned flags;
    int (*compile)(const flow_type_args_t *a, void **cfg);
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

/* The node data of a document node of a built-in type (and of a map over one). */
typedef struct flow__jnode {
    const flow__jtype_t *type;
    void *cfg;
    flow_tmpl_t *params;        /* the node's params, evaluated in prep */
    flow_tmpl_t *out;           /* evaluates to a JSON Pointer into shared; NULL: not stored */
    flow_tmpl_t *items;         /* map: the reference to the array it maps over */
    const flow_nodes_env_t *env;
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

/* Writes value (stolen) in shared where the "out" of a node says; with out NULL, drops it. */
int flow__jnode_store(flow_ctx_t *ctx, const flow__jnode_t *n, json_t *shared, json_t *params, json_t *value);

extern const flow_node_ops_t flow__flow_ops; /* the "flow" node: its prep gives the params */
int flow__flow_params_make(const flow_type_args_t *a, flow__jnode_t **out);

#endif
