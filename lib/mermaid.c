/* mermaid.c: a Mermaid "flowchart TD" text of a flow definition, for GET /v1/flows/{name}. Nodes are
 * named by their index (n0, n1, ...) because node names may hold characters Mermaid reserves; the
 * label carries the name. A sub-flow is a subgraph holding its members. */
#include <string.h>

#include "flow/buf.h"
#include "internal.h"

#define MERMAID_MAX (1u << 20) /* a cap, so a huge definition cannot make an unbounded string */

/* Labels are quoted; a double quote inside becomes #quot; (Mermaid's entity syntax). */
static void put_label(flow_buf_t *b, const char *text) {
    flow_buf_add(b, "\"", 1);
    for (const char *p = text; *p;) {
        size_t run = strcspn(p, "\"");
        flow_buf_add(b, p, run);
        p += run;
        if (*p == '"') {
            flow_buf_add(b, "#quot;", 6);
            p++;
        }
    }
    flow_buf_add(b, "\"", 1);
}

static void put_indent(flow_buf_t *b, unsigned depth) {
    for (unsigned i = 0; i <= depth; i++)
        flow_buf_add(b, "    ", 4);
}

typedef struct layout {
    const flow_def_t *def;
    size_t *parent; /* index of the sub-flow a node is drawn in, or n for the top level */
} layout_t;

static void put_members(flow_buf_t *b, const layout_t *l, size_t flow, unsigned depth) {
    size_t n = l->def->nnodes;
    if (depth > n) { /* only an unsealed definition can nest a flow in itself */
        b->err = FLOW_EINVAL;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (l->parent[i] != flow)
            continue;
        const flow_node_t *node = l->def->nodes[i];
        put_indent(b, depth);
        if (flow__is_flow_kind(node->kind)) {
            flow_buf_printf(b, "subgraph n%zu [", i);
            put_label(b, node->name);
            flow_buf_printf(b, "]\n");
            put_members(b, l, i, depth + 1);
            put_indent(b, depth);
            flow_buf_printf(b, "end\n");
        } else {
            int batch = node->kind == FLOW_BATCH || node->kind == FLOW_PARALLEL_BATCH;
            flow_buf_printf(b, "n%zu%s", i, batch ? "[[" : "[");
            put_label(b, node->name);
            flow_buf_printf(b, "%s\n", batch ? "]]" : "]");
        }
    }
}

static void put_edges(flow_buf_t *b, const flow_def_t *def) {
    for (size_t i = 0; i < def->nnodes; i++) {
        const flow_node_t *node = def->nodes[i];
        if (flow__is_flow_kind(node->kind) && node->start != NULL && node != def->root)
            flow_buf_printf(b, "    n%zu -. start .-> n%zu\n", i, node->start->index);
        for (size_t k = 0; k < node->nsucc; k++) {
            const flow_succ_t *s = &node->succ[k];
            if (s->to == NULL)
                continue; /* an action that ends the flow */
            if (strcmp(s->action, flow__default_action) == 0) {
                flow_buf_printf(b, "    n%zu --> n%zu\n", i, s->to->index);
            } else {
                flow_buf_printf(b, "    n%zu -- ", i);
                put_label(b, s->action);
                flow_buf_printf(b, " --> n%zu\n", s->to->index);
            }
        }
    }
}

int flow_def_mermaid(const flow_def_t *def, char **out) {
    if (def == NULL || out == NULL)
        return FLOW_EINVAL;
    size_t n = def->nnodes;
    flow_buf_t b;
    flow_buf_init(&b, MERMAID_MAX);
    unsigned char *member = flow__calloc(n * n, 1);
    size_t *queue = flow__calloc(n, sizeof *queue);
    size_t *parent = flow__calloc(n, sizeof *parent);
    if (member == NULL || queue == NULL || parent == NULL) {
        b.err = FLOW_ENOMEM;
        goto out;
    }
    flow__def_members(def, member, queue);
    /* A node is drawn in the first sub-flow (not the root) that has it as a member. */
    for (size_t j = 0; j < n; j++) {
        parent[j] = n;
        for (size_t f = 0; f < n; f++) {
            if (member[f * n + j] && def->nodes[f] != def->root && f != j) {
                parent[j] = f;
                break;
            }
        }
    }
    if (def->root != NULL)
        parent[def->root->index] = n + 1; /* the root is the chart itself */
    layout_t l = {def, parent};
    flow_buf_adds(&b, "flowchart TD\n");
    put_members(&b, &l, n, 0);
    put_edges(&b, def);
out:
    flow__free(member);
    flow__free(queue);
    flow__free(parent);
    *out = flow_buf_take(&b, NULL);
    return *out != NULL ? 0 : b.err;
}
