/* flows.h: the flows this server runs, and their descriptions for GET /v1/flows.
 *
 * Flows live by name in a flow_registry_t (which HTTP threads may read while the loop runs jobs).
 * Two are compiled in and registered first:
 *   noop    one node that does nothing;
 *   sleep   one node that waits shared.seconds (a number from 0 to 86400) on a timer, then sets
 *           shared.slept to it.
 * (The seed's recipe flow is a document, examples/flows/recipe.json: the library's C example of it,
 * examples/recipe_flow.c, is not linked into flowd.)
 * Flow documents (flow/doc.h) come on top: those of --flows DIR at start, and PUT /v1/flows/{name}
 * at run time; a document replaces a flow of the same name, compiled in or not. */
#ifndef FLOWD_FLOWS_H
#define FLOWD_FLOWS_H

#include "flow.h"
#include "jsonw.h"
#include "flow/problems.h"

#define FLOWD_SLEEP_MAX_S 86400

/* Registers the compiled-in flows. 0 or a FLOW_E* code (err, may be NULL, says which). */
int flowd_flows_register(flow_registry_t *reg, flow_error_t *err);

/* What became of one document loaded by the functions below, once every pass is done: def (borrowed
 * for the call) the flow it made and registered, with old the flow of that name it replaced (or
 * NULL); or def NULL and its problems (places file:line:column). */
typedef void (*flowd_flows_report_fn)(void *data, const char *path, flow_def_t *def,
                                      flow_def_t *old, const flow_problems_t *problems);

/* Loads the documents at paths (n of them) into reg, in passes, so that they may name each other in
 * any order, and calls report for each (report NULL: the server's log, a line per flow loaded and
 * every problem of those that did not load). 0, FLOW_ELOAD when some did not load, FLOW_ENOMEM.
 * flowd check and flowd run load their documents with it, as the server does --flows. */
int flowd_flows_load_files(flow_registry_t *reg, const char *const *paths, size_t n,
                           flowd_flows_report_fn report, void *data);

/* The same for every *.json document of dir, reported in the log: 0, or FLOW_ELOAD after logging
 * every problem of the documents that did not load (file:line:column: message), or FLOW_EIO when
 * dir cannot be read. */
int flowd_flows_load_dir(flow_registry_t *reg, const char *dir);

/* The Flow object of the API (name, root, description and version of a document, nodes with kind,
 * start, retries, waits, timeouts, limits and successors, a Mermaid flowchart and, with document,
 * the document itself) into w. */
void flowd_flow_write(flowd_jw_t *w, const flow_def_t *def, int document);

/* "noop, sleep": the names, for messages. Into b. */
void flowd_flow_names(flow_registry_t *reg, flow_buf_t *b);

/* The versions of flows that stored jobs started with (their documents, as texts), each built once:
 * when jobs are restored at start (server.c) and when jobs of another instance are taken over
 * (cluster.c). One thread uses one; a zeroed one is empty. */
typedef struct flowd_flow_versions {
    char **texts;
    flow_def_t **defs; /* NULL where a text did not load */
    size_t n, cap;
} flowd_flow_versions_t;

/* The flow a stored job runs (a new reference), or NULL when it cannot be had here: its document
 * (NULL: a flow written in C, which reg has by the name flow or not) as built before, or built now
 * with reg's node types and flows (not registered) and kept. */
flow_def_t *flowd_flow_version(flowd_flow_versions_t *v, flow_registry_t *reg, const char *flow,
                               const char *document);
void flowd_flow_versions_clear(flowd_flow_versions_t *v);

#endif
