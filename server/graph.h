/* graph.h: a flow's graph drawn as SVG by Graphviz (cgraph to build it, gvc's dot layout and its
 * core SVG renderer), for GET /v1/flows/{name}/graph.svg and, with a job's marks on its nodes,
 * GET /v1/jobs/{id}/graph.svg. It knows nothing of HTTP.
 *
 * What a page may rely on (api/openapi.yaml says the same): each node of the flow is an SVG group
 * <g id="node-<name>" class="node <classes>">, where <classes> are, space-separated, the node's
 * state on a job's graph (not-reached, visited, current, waiting, failed), "start" for the flow's
 * start node and "subflow" for a node that runs a sub-flow; each successor is
 * <g id="edge-<from>-<action>" class="edge">, and the dashed edge from a sub-flow's node to the
 * sub-flow's start node is <g id="start-<flow>" class="edge start-edge">. (In the SVG text a '-' of
 * an id is written &#45;, which a browser reads as '-'.)
 *
 * Layout is CPU work: callers run it on an HTTP thread, never on the loop, and bound it by the
 * number of nodes and edges (--max-graph). Graphviz is not thread-safe, so one drawing runs at a
 * time (a lock inside). */
#ifndef FLOWD_GRAPH_H
#define FLOWD_GRAPH_H

#include <jansson.h>
#include <stddef.h>

#include "flow.h"

/* A job's marks on its flow's graph; every member may be NULL (borrowed for the call). */
typedef struct flowd_graph_marks {
    const char *current; /* the node the job runs or waits in */
    int waiting;         /* current waits for input */
    const char *failed;  /* the node the job failed at */
    const char *error;   /* why it failed: shown on that node, cut short */
    const json_t *steps; /* the steps of its History (an array): each node's visits are counted
                          * from their "node" members */
} flowd_graph_marks_t;

/* The SVG of def's graph (marks NULL: the flow alone) into *svg (malloc'd, *len bytes, the
 * caller frees it) and the count of its nodes and edges into *items. 0; FLOW_ETOOBIG when that
 * count is over max_items (nothing drawn); FLOW_ENOMEM; FLOW_EIO when Graphviz failed. */
int flowd_graph_svg(const flow_def_t *def, const flowd_graph_marks_t *marks, size_t max_items,
                    char **svg, size_t *len, size_t *items);

#endif
