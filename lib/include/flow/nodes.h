/* flow/nodes.h: the built-in node types of flow documents: noop, sleep, set, choice, fail, input,
 * http, llm and lua, registered by name in a flow_registry_t (map and flow nodes are made by the
 * document loader, flow/doc.h, from these). What each type takes and does is written in
 * api/flow.schema.json and the README; this header is what a program gives them. */
#ifndef FLOW_NODES_H
#define FLOW_NODES_H

#include <stddef.h>

#include "flow.h"
#include "flow/http.h"
#include "flow/limits.h"
#include "flow/netpolicy.h"

#ifdef __cplusplus
extern "C" {
#endif

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
    flow_re_limits_t re_limits; /* choice "matches" and input "schema" patterns; zeros: the
                                 * defaults */
    flow_script_limits_t lua; /* Lua hooks: budgets, time and memory caps; zeros: the defaults */
    flow_netrules_t *llm_allow; /* what llm nodes may reach besides the client's policy: the host
                               * and port of llm_base_url, allowed because the operator configured
                               * it (flow_netrules_add_url); NULL: nothing more */
    int no_flow_outbound;     /* documents that carry their own "outbound" allow list do not load
                               * (flowd --flow-outbound off); 0: such lists apply to their http
                               * nodes */
} flow_nodes_env_t;

/* Registers the built-in types in reg (lua among them). FLOW_EEXIST when one is taken. */
FLOW_EXPORT int flow_nodes_register(flow_registry_t *reg, const flow_nodes_env_t *env);

#ifdef __cplusplus
}
#endif
#endif
