/* flows.h: the flows this server runs, and their descriptions for GET /v1/flows.
 *
 * Until flows can be loaded from JSON documents, they are compiled in and registered here, in one
 * place, by name in a flow_registry_t (which HTTP threads may read while the loop runs jobs):
 *   noop    one node that does nothing;
 *   sleep   one node that waits shared.seconds (a number from 0 to 86400) on a timer, then sets
 *           shared.slept to it;
 *   recipe  the seed's recipe recommender (examples/recipe_flow.c): fetch and suggest are timers
 *           (params fetch_ms and suggest_ms), approve waits for a person's "yes" or "no".
 * The later issue that loads documents (--flows DIR, PUT/DELETE /v1/flows/{name}) adds to the same
 * registry. */
#ifndef FLOWD_FLOWS_H
#define FLOWD_FLOWS_H

#include "flow.h"
#include "jsonw.h"

#define FLOWD_SLEEP_MAX_S 86400

/* Registers the compiled-in flows. 0 or a FLOW_E* code (err, may be NULL, says which). */
int flowd_flows_register(flow_registry_t *reg, flow_error_t *err);

/* The Flow object of the API (name, root, nodes with kind, start, retries, waits, timeouts,
 * limits and successors, and a Mermaid flowchart) into w. */
void flowd_flow_write(flowd_jw_t *w, const flow_def_t *def);

/* "noop, recipe, sleep": the names, for messages. Into b. */
void flowd_flow_names(flow_registry_t *reg, flowd_buf_t *b);

#endif
