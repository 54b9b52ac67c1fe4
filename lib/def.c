/* def.c: flow definitions: the graph of nodes that any number of jobs run, read-only once sealed. */
#include <string.h>

#include "internal.h"

const flow_node_ops_t flow__no_ops;

static const char *const kind_names[] = {"node", "batch", "parallel_batch", "flow", "batch_flow",
                                         "parallel_batch_flow"};

const char *flow_kind_name(flow_kind_t kind) {
    if ((unsigned)kind >= sizeof kind_names / sizeof kind_names[0])
        return "unknown";
    return kind_names[kind];
}

int flow__is_flow_kind(flow_kind_t kind) {
    return kind == FLOW_FLOW || kind == FLOW_BATCH_FLOW || kind == FLOW_PARALLEL_BATCH_FLOW;
}

int flow_def_new(const char *name, flow_def_t **out) {
    if (name == NULL || *name == '\0' || out == NULL)
        return FLOW_EINVAL;
    flow_def_t *def = flow__calloc(1, sizeof *def);
    if (def == NULL)
        return FLOW_ENOMEM;
    def->name = flow__strdup(name);
    if (def->name == NULL) {
        flow__free(def);
        return FLOW_ENOMEM;
    }
    atomic_init(&def->refs, 1);
    atomic_init(&def->sealed, 0);
    *out = def;
    return 0;
}

flow_def_t *flow_def_ref(flow_def_t *def) {
    atomic_fetch_add_explicit(&def->refs, 1, memory_order_relaxed);
    return def;
}

static void node_free(flow_node_t *node) {
    if (node->ops->free != NULL && node->data != NULL)
        node->ops->free(node->data);
    for (size_t i = 0; i < node->nsucc; i++)
        flow__free(node->succ[i].action);
    flow__free(node->succ);
    json_decref(node->params);
    flow__free(node->name);
    flow__free(node);
}

void flow_def_unref(flow_def_t *def) {
    if (def == NULL)
        return;
    if (atomic_fetch_sub_explicit(&def->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < def->nnodes; i++)
        node_free(def->nodes[i]);
    flow__free(def->nodes);
    flow__free(def->name);
    json_decref(def->meta);
    flow__free(def);
}

int flow_def_sealed(const flow_def_t *def) {
    return atomic_load(&def->sealed);
}

/* The members of a flow are the nodes reachable from its start. A flow that is among its own members,
 * or among the members of a flow among them, would need infinite nesting: seal refuses that.
 * member[i * n + j] says whether node j is a member of flow i. */
int flow__def_members(const flow_def_t *def, unsigned char *member, size_t *queue) {
    size_t n = def->nnodes;
    for (size_t f = 0; f < n; f++) {
        const flow_node_t *flow = def->nodes[f];
        if (!flow__is_flow_kind(flow->kind) || flow->start == NULL)
            continue;
        unsigned char *row = member + f * n;
        size_t head = 0, tail = 0;
        queue[tail++] = flow->start->index;
        row[flow->start->index] = 1;
        while (head < tail) {
            const flow_node_t *node = def->nodes[queue[head++]];
            for (size_t i = 0; i < node->nsucc; i++) {
                if (node->succ[i].to == NULL)
                    continue;
                size_t j = node->succ[i].to->index;
                if (!row[j]) {
                    row[j] = 1;
                    queue[tail++] = j;
                }
            }
        }
    }
    return 0;
}

/* Depth-first search over "flow f has member flow g"; color 1 is on the path, 2 is done. */
static const flow_node_t *containment_cycle(const flow_def_t *def, const unsigned char *member,
                                            unsigned char *color, size_t *stack, size_t *next) {
    size_t n = def->nnodes;
    for (size_t root = 0; root < n; root++) {
        if (color[root] != 0 || !flow__is_flow_kind(def->nodes[root]->kind))
            continue;
        size_t top = 0;
        stack[top] = root;
        next[top] = 0;
        color[root] = 1;
        while (1) {
            size_t f = stack[top];
            size_t g = next[top];
            while (g < n && !(member[f * n + g] && flow__is_flow_kind(def->nodes[g]->kind)))
                g++;
            if (g == n) {
                color[f] = 2;
                if (top == 0)
                    break;
                top--;
                continue;
            }
            next[top] = g + 1;
            if (color[g] == 1)
                return def->nodes[g];
            if (color[g] == 0) {
                color[g] = 1;
                top++;
                stack[top] = g;
                next[top] = 0;
            }
        }
    }
    return NULL;
}

static int check_nesting(const flow_def_t *def, flow_error_t *err) {
    size_t n = def->nnodes;
    int rc = 0;
    unsigned char *member = flow__calloc(n * n, 1);
    unsigned char *color = flow__calloc(n, 1);
    size_t *queue = flow__calloc(n, sizeof *queue);
    size_t *stack = flow__calloc(n, sizeof *stack);
    size_t *next = flow__calloc(n, sizeof *next);
    if (member == NULL || color == NULL || queue == NULL || stack == NULL || next == NULL) {
        rc = FLOW_ENOMEM;
        goto out;
    }
    flow__def_members(def, member, queue);
    const flow_node_t *cycle = containment_cycle(def, member, color, stack, next);
    if (cycle != NULL)
        rc = flow__set_error(err, FLOW_EINVAL, "flow node %s contains itself", cycle->name);
out:
    flow__free(member);
    flow__free(color);
    flow__free(queue);
    flow__free(stack);
    flow__free(next);
    return rc;
}

int flow_def_seal(flow_def_t *def, flow_error_t *err) {
    if (def == NULL)
        return FLOW_EINVAL;
    if (atomic_load(&def->sealed))
        return 0;
    if (def->root == NULL)
        return flow__set_error(err, FLOW_EINVAL, "flow %s has no root", def->name);
    for (size_t i = 0; i < def->nnodes; i++) {
        flow_node_t *n = def->nodes[i];
        if (flow__is_flow_kind(n->kind) && n->start == NULL)
            return flow__set_error(err, FLOW_EINVAL, "flow node %s has no start node", n->name);
    }
    int rc = check_nesting(def, err);
    if (rc < 0)
        return rc;
    atomic_store(&def->sealed, 1);
    return 0;
}

int flow_node_new(flow_def_t *def, const char *name, flow_kind_t kind, const flow_node_ops_t *ops,
                  void *data, flow_node_t **out) {
    if (def == NULL || name == NULL || *name == '\0' || out == NULL ||
        (unsigned)kind > FLOW_PARALLEL_BATCH_FLOW)
        return FLOW_EINVAL;
    if (atomic_load(&def->sealed))
        return FLOW_ESTATE;
    if (flow_def_find(def, name) != NULL)
        return FLOW_EEXIST;
    flow_node_t **nodes = flow__grow(def->nodes, def->nnodes, &def->capnodes, sizeof *nodes, 8, 0);
    if (nodes == NULL)
        return FLOW_ENOMEM;
    def->nodes = nodes;
    flow_node_t *node = flow__calloc(1, sizeof *node);
    if (node == NULL)
        return FLOW_ENOMEM;
    node->name = flow__strdup(name);
    if (node->name == NULL) {
        flow__free(node);
        return FLOW_ENOMEM;
    }
    node->def = def;
    node->kind = kind;
    node->ops = ops ? ops : &flow__no_ops;
    node->data = data;
    node->max_retries = 1;
    node->backoff = 1.0;
    node->index = def->nnodes;
    def->nodes[def->nnodes++] = node;
    *out = node;
    return 0;
}

static int settable(const flow_node_t *node) {
    if (node == NULL)
        return FLOW_EINVAL;
    return atomic_load(&node->def->sealed) ? FLOW_ESTATE : 0;
}

int flow_node_set_params(flow_node_t *node, json_t *params) {
    int rc = settable(node);
    if (rc < 0)
        return rc;
    if (params != NULL && !json_is_object(params))
        return FLOW_EINVAL;
    json_t *copy = NULL;
    if (params != NULL && json_object_size(params) > 0) {
        copy = json_copy(params);
        if (copy == NULL)
            return FLOW_ENOMEM;
    }
    json_decref(node->params);
    node->params = copy;
    return 0;
}

int flow_node_set_retry(flow_node_t *node, unsigned max_retries, uint64_t wait_ms) {
    int rc = settable(node);
    if (rc < 0)
        return rc;
    if (max_retries < 1)
        return FLOW_EINVAL;
    node->max_retries = max_retries;
    node->wait_ms = wait_ms;
    return 0;
}

int flow_node_set_backoff(flow_node_t *node, double multiplier, uint64_t max_wait_ms,
                          flow_jitter_t jitter) {
    int rc = settable(node);
    if (rc < 0)
        return rc;
    if (!(multiplier >= 1.0 && multiplier <= 1000.0) ||
        (jitter != FLOW_JITTER_NONE && jitter != FLOW_JITTER_FULL))
        return FLOW_EINVAL;
    node->backoff = multiplier;
    node->max_wait_ms = max_wait_ms;
    node->jitter = jitter;
    return 0;
}

int flow_node_set_timeout(flow_node_t *node, uint64_t timeout_ms) {
    int rc = settable(node);
    if (rc < 0)
        return rc;
    node->timeout_ms = timeout_ms;
    return 0;
}

int flow_node_set_limit(flow_node_t *node, unsigned limit) {
    int rc = settable(node);
    if (rc < 0)
        return rc;
    node->limit = limit;
    return 0;
}

int flow_node_set_threaded(flow_node_t *node, int threaded) {
    int rc = settable(node);
    if (rc < 0)
        return rc;
    node->threaded = threaded != 0;
    return 0;
}

int flow_node_next(flow_node_t *from, const char *action, flow_node_t *to) {
    int rc = settable(from);
    if (rc < 0)
        return rc;
    if (to != NULL && to->def != from->def)
        return FLOW_EINVAL;
    if (action == NULL)
        action = flow__default_action;
    if (*action == '\0')
        return FLOW_EINVAL;
    for (size_t i = 0; i < from->nsucc; i++) {
        if (strcmp(from->succ[i].action, action) == 0) {
            flow_log(FLOW_LOG_WARN, "flow %s: node %s: overwriting successor for action '%s' (%s -> %s)",
                     from->def->name, from->name, action,
                     from->succ[i].to ? from->succ[i].to->name : "(end)", to ? to->name : "(end)");
            from->succ[i].to = to;
            return 0;
        }
    }
    flow_succ_t *succ = flow__grow(from->succ, from->nsucc, &from->capsucc, sizeof *succ, 2, 0);
    if (succ == NULL)
        return FLOW_ENOMEM;
    from->succ = succ;
    char *copy = flow__strdup(action);
    if (copy == NULL)
        return FLOW_ENOMEM;
    from->succ[from->nsucc].action = copy;
    from->succ[from->nsucc].to = to;
    from->nsucc++;
    return 0;
}

int flow_node_set_start(flow_node_t *flow, flow_node_t *start) {
    int rc = settable(flow);
    if (rc < 0)
        return rc;
    if (!flow__is_flow_kind(flow->kind) || start == NULL || start->def != flow->def || start == flow)
        return FLOW_EINVAL;
    flow->start = start;
    return 0;
}

int flow_def_set_root(flow_def_t *def, flow_node_t *root) {
    if (def == NULL || root == NULL || root->def != def || !flow__is_flow_kind(root->kind))
        return FLOW_EINVAL;
    if (atomic_load(&def->sealed))
        return FLOW_ESTATE;
    def->root = root;
    return 0;
}

int flow_def_set_meta(flow_def_t *def, json_t *meta) {
    if (def == NULL) {
        json_decref(meta);
        return FLOW_EINVAL;
    }
    if (atomic_load(&def->sealed)) {
        json_decref(meta);
        return FLOW_ESTATE;
    }
    json_decref(def->meta);
    def->meta = meta;
    return 0;
}

json_t *flow_def_meta(const flow_def_t *def) {
    return def->meta;
}

const char *flow_def_name(const flow_def_t *def) {
    return def->name;
}

flow_node_t *flow_def_root(const flow_def_t *def) {
    return def->root;
}

size_t flow_def_node_count(const flow_def_t *def) {
    return def->nnodes;
}

flow_node_t *flow_def_node_at(const flow_def_t *def, size_t i) {
    return i < def->nnodes ? def->nodes[i] : NULL;
}

flow_node_t *flow_def_find(const flow_def_t *def, const char *name) {
    for (size_t i = 0; i < def->nnodes; i++)
        if (strcmp(def->nodes[i]->name, name) == 0)
            return def->nodes[i];
    return NULL;
}

const char *flow_node_name(const flow_node_t *node) {
    return node->name;
}

flow_kind_t flow_node_kind(const flow_node_t *node) {
    return node->kind;
}

void *flow_node_data(const flow_node_t *node) {
    return node->data;
}

json_t *flow_node_params(const flow_node_t *node) {
    return node->params;
}

unsigned flow_node_max_retries(const flow_node_t *node) {
    return node->max_retries;
}

uint64_t flow_node_wait(const flow_node_t *node) {
    return node->wait_ms;
}

uint64_t flow_node_timeout(const flow_node_t *node) {
    return node->timeout_ms;
}

unsigned flow_node_limit(const flow_node_t *node) {
    return node->limit;
}

flow_node_t *flow_node_start(const flow_node_t *flow) {
    return flow->start;
}

size_t flow_node_succ_count(const flow_node_t *node) {
    return node->nsucc;
}

int flow_node_succ_at(const flow_node_t *node, size_t i, const char **action, flow_node_t **to) {
    if (i >= node->nsucc)
        return FLOW_ENOTFOUND;
    if (action != NULL)
        *action = node->succ[i].action;
    if (to != NULL)
        *to = node->succ[i].to;
    return 0;
}

flow_node_t *flow_node_succ(const flow_node_t *node, const char *action) {
    if (action == NULL)
        action = flow__default_action;
    for (size_t i = 0; i < node->nsucc; i++)
        if (strcmp(node->succ[i].action, action) == 0)
            return node->succ[i].to;
    return NULL;
}
