/* recipe_flow.h: the seed's recipe recommender as a flow written in C against libflow:
 * fetch -> suggest -> approve; "retry" goes back to suggest, "accept" to finalize. The slow calls are
 * timers (params fetch_ms and suggest_ms, default 2000 and 1500 as in the seed); approve waits for a
 * person's answer through flow_await_input (yes/no, y/n or true/false). Shared store in:
 * {"ingredient": "chicken"}; out: recipes, suggestion, suggestions (count), approved, final. */
#ifndef FLOW_EXAMPLE_RECIPE_H
#define FLOW_EXAMPLE_RECIPE_H

#include "flow.h"

/* A new definition named name ("recipe" when NULL); *out receives its first reference. */
int recipe_flow_new(const char *name, flow_def_t **out);

#endif
