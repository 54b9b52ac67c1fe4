/* graph.c: a flow's graph as SVG (graph.h), built with cgraph and drawn by gvc's dot layout and
 * core SVG renderer. Only those two plugins are loaded, from the list below (gvContextPlugins
 * with no demand loading): no config file is read and no text-layout plugin (pango, fontconfig)
 * is used, so labels are measured by Graphviz's built-in font metrics and a drawing is the same
 * on every machine, the runtime image included. The font is Courier: monospace, whose estimate
 * (0.6 em a character) is what browsers' monospace fonts take, so a label fits its box wherever
 * the SVG is shown (Helvetica's estimate ran past boxes in Chromium's sans-serif).
 *
 * Graphviz 2.42/2.43 (Debian bookworm) leaks memory in three places a drawing could reach (seen
 * under ASan with small test programs); each is avoided here, and the unit test runs clean under
 * ASan and valgrind:
 *  - clusters (make_aux_edge, class2's virtual edges): sub-flows are drawn without them. A
 *    sub-flow's node has a dashed "starts" edge to the sub-flow's start node, and the sub-flow's
 *    nodes carry its name ("summarize/ask", as the loader names them);
 *  - reversing edges to break cycles (acyclic's virtual edges): before layout a depth-first walk
 *    from the start node finds every edge that closes a cycle (a retry loop, say) and gives it
 *    constraint=false, so that the graph dot ranks has no cycle and nothing is reversed; those
 *    edges are drawn as they are, only not used for ranking;
 *  - HTML-like labels (htmlparse): labels are plain. In a plain label Graphviz expands \N, \G, \n
 *    and the like, so every backslash of a name or message is doubled; the SVG renderer escapes
 *    <, >, &, quotes and '-' itself, so a node named <script> is text, never markup.
 * Names reach the SVG in ids, escaped by the renderer as well; Graphviz's own names for the nodes
 * are n0, n1, ... (the <title> of each node's group). put_escaped says how '&' is written. */
#include "graph.h"

#include <gvc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/buf.h"

extern gvplugin_library_t gvplugin_dot_layout_LTX_library;
extern gvplugin_library_t gvplugin_core_LTX_library;

static lt_symlist_t builtins[] = {
    {"gvplugin_dot_layout_LTX_library", &gvplugin_dot_layout_LTX_library},
    {"gvplugin_core_LTX_library", &gvplugin_core_LTX_library},
    {NULL, NULL}};

/* Graphviz keeps global state (cgraph's error handler and string discipline, the layout's
 * statics): one drawing at a time. */
static pthread_mutex_t gv_lock = PTHREAD_MUTEX_INITIALIZER;

#define ERROR_SHOWN 80 /* bytes of a failing node's error shown on it */
#define ERROR_LINE 40  /* bytes of one of its lines, where spaces allow */
/* A graph of more nodes and edges than this is drawn with straight edges and fewer passes of dot's
 * crossing minimization and network simplex: spline routing and those passes grow fast with
 * crossings. Measured through flowd on this project's 2-core machine, other work running: random
 * graphs of 100 items (curved) at most 0.12 s, random ones and tangles of 300 at most 0.14 s,
 * random ones of 500 up to 3 s (so
 * --max-graph is 300 by default); a 480-item tangle of 60 nodes took 90 s with the defaults and
 * 0.3 to 1.4 s so. */
#define SPLINES_MAX 100
#define LABEL_MAX 512  /* bytes of one label, escaped: names are at most 64 bytes in documents */

/* A node's state on a job's graph: its class in the SVG and how it is filled. */
typedef enum state { S_NONE = 0, S_NOT_REACHED, S_VISITED, S_CURRENT, S_WAITING, S_FAILED } state_t;

static const struct {
    const char *cls, *fill, *pen, *font, *width;
} looks[] = {
    [S_NONE] = {"", "#ffffff", "#444444", "#111111", "1"},
    [S_NOT_REACHED] = {"not-reached", "#f4f4f4", "#9a9a9a", "#6b6b6b", "1"},
    [S_VISITED] = {"visited", "#d8f0d8", "#2e7d32", "#111111", "1.2"},
    [S_CURRENT] = {"current", "#cfe0ff", "#1a56c4", "#111111", "3"},
    [S_WAITING] = {"waiting", "#ffe9a8", "#b07800", "#111111", "3"},
    [S_FAILED] = {"failed", "#f9d0d0", "#c62828", "#111111", "3"},
};

/* One edge to draw: a successor (action), or a sub-flow's node to its start node (start). */
typedef struct link {
    size_t from, to;
    const char *action; /* borrowed from the definition; NULL for a start edge */
    int back;           /* closes a cycle: not used for ranking */
} link_t;

typedef struct drawing {
    const flow_def_t *def;
    size_t n;             /* nodes of the definition; the root, which is the flow itself, is not drawn */
    size_t root;          /* its index, or n */
    const flow_node_t **sorted; /* the nodes by address, to find a node's index */
    size_t *index_of_sorted;
    link_t *edges;
    size_t nedges;
    size_t *first;        /* edges of node i: first[i] .. first[i + 1] */
    unsigned *visits;
    state_t *state;
} drawing_t;

static const flow_node_t **sort_base;

static int by_address(const void *a, const void *b) {
    const flow_node_t *x = sort_base[*(const size_t *)a], *y = sort_base[*(const size_t *)b];
    return x < y ? -1 : x > y;
}

/* The index of node in the definition, or d->n. */
static size_t index_of(const drawing_t *d, const flow_node_t *node) {
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const flow_node_t *m = d->sorted[mid];
        if (m == node)
            return d->index_of_sorted[mid];
        if (m < node)
            lo = mid + 1;
        else
            hi = mid;
    }
    return d->n;
}

static int is_flow_kind(const flow_node_t *node) {
    flow_kind_t k = flow_node_kind(node);
    return k == FLOW_FLOW || k == FLOW_BATCH_FLOW || k == FLOW_PARALLEL_BATCH_FLOW;
}

/* The nodes by address (for index_of), and the edges, node by node. */
static int collect(drawing_t *d) {
    size_t n = d->n, cap = 0;
    const flow_node_t **nodes = calloc(n ? n : 1, sizeof *nodes);
    d->sorted = calloc(n ? n : 1, sizeof *d->sorted);
    d->index_of_sorted = calloc(n ? n : 1, sizeof *d->index_of_sorted);
    d->first = calloc(n + 1, sizeof *d->first);
    if (nodes == NULL || d->sorted == NULL || d->index_of_sorted == NULL || d->first == NULL) {
        free(nodes);
        return FLOW_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        nodes[i] = flow_def_node_at(d->def, i);
        d->index_of_sorted[i] = i;
        cap += flow_node_succ_count(nodes[i]) + 1;
    }
    /* qsort has no context argument in C11: the base is a static, under gv_lock */
    sort_base = nodes;
    qsort(d->index_of_sorted, n, sizeof *d->index_of_sorted, by_address);
    for (size_t i = 0; i < n; i++)
        d->sorted[i] = nodes[d->index_of_sorted[i]];
    free(nodes);
    d->root = index_of(d, flow_def_root(d->def));
    d->edges = calloc(cap ? cap : 1, sizeof *d->edges);
    if (d->edges == NULL)
        return FLOW_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const flow_node_t *node = flow_def_node_at(d->def, i);
        d->first[i] = d->nedges;
        if (i == d->root)
            continue; /* the flow itself: its start node is marked instead */
        if (is_flow_kind(node) && flow_node_start(node) != NULL)
            d->edges[d->nedges++] = (link_t){i, index_of(d, flow_node_start(node)), NULL, 0};
        for (size_t k = 0; k < flow_node_succ_count(node); k++) {
            const char *action = NULL;
            flow_node_t *to = NULL;
            if (flow_node_succ_at(node, k, &action, &to) < 0 || to == NULL)
                continue; /* an action that ends the flow */
            size_t j = index_of(d, to);
            if (j < n && j != d->root)
                d->edges[d->nedges++] = (link_t){i, j, action, 0};
        }
    }
    d->first[n] = d->nedges;
    return 0;
}

/* Marks the edges that close a cycle (to a node on the walk's path), walking depth-first from the
 * start node, then from any node not reached yet. */
static int mark_back_edges(drawing_t *d) {
    size_t n = d->n;
    unsigned char *color = calloc(n ? n : 1, 1); /* 1: on the path, 2: done */
    size_t *stack = calloc(n ? n : 1, sizeof *stack), *next = calloc(n ? n : 1, sizeof *next);
    int rc = color && stack && next ? 0 : FLOW_ENOMEM;
    const flow_node_t *root = flow_def_root(d->def);
    size_t start = root ? index_of(d, flow_node_start(root)) : n;
    for (size_t k = 0; rc == 0 && k <= n; k++) {
        size_t s = k == 0 ? start : k - 1;
        if (s >= n || s == d->root || color[s] != 0)
            continue;
        size_t top = 0;
        stack[0] = s;
        next[0] = d->first[s];
        color[s] = 1;
        for (;;) {
            size_t u = stack[top];
            if (next[top] == d->first[u + 1]) {
                color[u] = 2;
                if (top-- == 0)
                    break;
                continue;
            }
            link_t *e = &d->edges[next[top]++];
            if (color[e->to] == 1)
                e->back = 1;
            else if (color[e->to] == 0) {
                color[e->to] = 1;
                stack[++top] = e->to;
                next[top] = d->first[e->to];
            }
        }
    }
    free(color);
    free(stack);
    free(next);
    return rc;
}

/* Each node's visits and state from the marks. */
static int apply_marks(drawing_t *d, const flowd_graph_marks_t *m) {
    d->visits = calloc(d->n ? d->n : 1, sizeof *d->visits);
    d->state = calloc(d->n ? d->n : 1, sizeof *d->state);
    if (d->visits == NULL || d->state == NULL)
        return FLOW_ENOMEM;
    if (m == NULL)
        return 0;
    size_t i;
    json_t *step;
    json_array_foreach(m->steps, i, step) {
        const char *name = json_string_value(json_object_get(step, "node"));
        flow_node_t *node = name ? flow_def_find(d->def, name) : NULL;
        size_t k = node ? index_of(d, node) : d->n;
        if (k < d->n)
            d->visits[k]++;
    }
    for (size_t k = 0; k < d->n; k++) {
        const char *name = flow_node_name(flow_def_node_at(d->def, k));
        if (m->failed != NULL && strcmp(name, m->failed) == 0)
            d->state[k] = S_FAILED;
        else if (m->current != NULL && strcmp(name, m->current) == 0)
            d->state[k] = m->waiting ? S_WAITING : S_CURRENT;
        else
            d->state[k] = d->visits[k] > 0 ? S_VISITED : S_NOT_REACHED;
    }
    return 0;
}

static void drawing_free(drawing_t *d) {
    free(d->sorted);
    free(d->index_of_sorted);
    free(d->edges);
    free(d->first);
    free(d->visits);
    free(d->state);
}

/* How a text is written for Graphviz. Its SVG renderer escapes <, >, quotes and '-', but passes
 * "&name;" and "&#n;" through as entities, so "&foo;", which XML does not know, would make the SVG
 * unreadable: an '&' is written "&#38;", an entity it passes on and a reader decodes to '&'. In
 * labels and ids Graphviz expands \N, \G, \n and the like: backslashes are doubled there, not in
 * the graph's name (the <title>). */
typedef enum esc { ESC_TEXT, ESC_TITLE } esc_t;

/* text, cut at max bytes (at a character's start, with "..."), written as esc says, with control
 * characters as spaces; with wrap, a space where the next word would take the line past wrap bytes
 * breaks the line instead (a label's \n). */
static void put_escaped(flow_buf_t *b, const char *text, size_t max, esc_t how, size_t wrap) {
    size_t len = strlen(text), cut = len, line = 0;
    if (len > max) {
        cut = max;
        while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
            cut--;
    }
    for (size_t i = 0; i < cut; i++, line++) {
        char c = text[i];
        size_t word = wrap && c == ' ' ? strcspn(text + i + 1, " ") : 0;
        if (wrap && c == ' ' && line > 0 && line + 1 + word > wrap) {
            flow_buf_adds(b, "\\n");
            line = (size_t)-1; /* 0 after the loop's ++ */
        } else if (c == '\\' && how != ESC_TITLE)
            flow_buf_add(b, "\\\\", 2);
        else if (c == '&')
            flow_buf_adds(b, "&#38;");
        else if ((unsigned char)c < 0x20 || c == 0x7f)
            flow_buf_addc(b, ' ');
        else
            flow_buf_addc(b, c);
    }
    if (cut < len)
        flow_buf_adds(b, "...");
}

/* Sets attribute name of obj to the text in b (then emptied); -1 when b overflowed. */
static int set_text(void *obj, const char *name, flow_buf_t *b) {
    int rc = b->err ? -1 : agsafeset(obj, (char *)name, b->data ? b->data : "", "");
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
    return rc;
}

static int add_node(Agraph_t *g, const drawing_t *d, size_t i, size_t start, int marked,
                    const flowd_graph_marks_t *m, Agnode_t **out) {
    const flow_node_t *node = flow_def_node_at(d->def, i);
    const char *name = flow_node_name(node);
    state_t st = d->state[i];
    int sub = is_flow_kind(node);
    flow_buf_t b;
    char storage[LABEL_MAX + 64];
    int rc = 0;
    char key[32]; /* by index: two names cannot become one, whatever they hold */
    snprintf(key, sizeof key, "n%zu", i);
    Agnode_t *v = agnode(g, key, 1);
    if (v == NULL)
        return FLOW_ENOMEM;
    flow_buf_init_storage(&b, storage, sizeof storage, LABEL_MAX + 32);
    put_escaped(&b, name, LABEL_MAX, ESC_TEXT, 0);
    flow_buf_adds(&b, "\\n");
    put_escaped(&b, flow_node_type(node), 64, ESC_TEXT, 0);
    if (marked && d->visits[i] > 0)
        flow_buf_printf(&b, "  \xc2\xb7  %u visit%s", d->visits[i], d->visits[i] == 1 ? "" : "s");
    if (st == S_WAITING)
        flow_buf_adds(&b, "\\nwaiting for input");
    if (st == S_FAILED && m->error != NULL) {
        flow_buf_adds(&b, "\\n");
        put_escaped(&b, m->error, ERROR_SHOWN, ESC_TEXT, ERROR_LINE);
    }
    rc |= set_text(v, "label", &b);
    flow_buf_adds(&b, "node-");
    put_escaped(&b, name, LABEL_MAX, ESC_TEXT, 0);
    rc |= set_text(v, "id", &b);
    flow_buf_adds(&b, looks[st].cls);
    if (i == start)
        flow_buf_adds(&b, st != S_NONE ? " start" : "start");
    if (sub)
        flow_buf_adds(&b, st != S_NONE || i == start ? " subflow" : "subflow");
    rc |= set_text(v, "class", &b);
    rc |= agsafeset(v, "fillcolor", (char *)looks[st].fill, "");
    rc |= agsafeset(v, "color", (char *)looks[st].pen, "");
    rc |= agsafeset(v, "fontcolor", (char *)looks[st].font, "");
    rc |= agsafeset(v, "penwidth", (char *)looks[st].width, "");
    if (i == start)
        rc |= agsafeset(v, "peripheries", "2", "");
    if (sub)
        rc |= agsafeset(v, "style", "filled,bold", "");
    flow_buf_free(&b);
    *out = v;
    return rc < 0 ? FLOW_ENOMEM : 0;
}

static int add_edge(Agraph_t *g, const drawing_t *d, const link_t *e, Agnode_t **vs) {
    const char *from = flow_node_name(flow_def_node_at(d->def, e->from));
    flow_buf_t b;
    char storage[LABEL_MAX + 64];
    int rc = 0;
    Agedge_t *a = agedge(g, vs[e->from], vs[e->to], NULL, 1);
    if (a == NULL)
        return FLOW_ENOMEM;
    flow_buf_init_storage(&b, storage, sizeof storage, 2 * LABEL_MAX + 32);
    if (e->action == NULL) {
        flow_buf_adds(&b, "start-");
        put_escaped(&b, from, LABEL_MAX, ESC_TEXT, 0);
        rc |= set_text(a, "id", &b);
        rc |= agsafeset(a, "class", "start-edge", "");
        rc |= agsafeset(a, "style", "dashed", "");
        rc |= agsafeset(a, "label", "starts", "");
    } else {
        flow_buf_adds(&b, "edge-");
        put_escaped(&b, from, LABEL_MAX, ESC_TEXT, 0);
        flow_buf_addc(&b, '-');
        put_escaped(&b, e->action, LABEL_MAX, ESC_TEXT, 0);
        rc |= set_text(a, "id", &b);
        if (strcmp(e->action, "default") != 0) {
            put_escaped(&b, e->action, LABEL_MAX, ESC_TEXT, 0);
            rc |= set_text(a, "label", &b);
        }
    }
    if (e->back)
        rc |= agsafeset(a, "constraint", "false", "");
    flow_buf_free(&b);
    return rc < 0 ? FLOW_ENOMEM : 0;
}

/* Graphviz's warnings and errors would go to stderr: a drawing that fails says so by its code. */
static int quiet(char *message) {
    (void)message;
    return 0;
}

/* Builds, lays out and renders d (under gv_lock). */
static int draw(drawing_t *d, const flowd_graph_marks_t *m, size_t items, char **svg,
                size_t *len) {
    int rc = 0;
    char *data = NULL;
    unsigned int size = 0;
    Agnode_t **vs = calloc(d->n ? d->n : 1, sizeof *vs);
    GVC_t *gvc = gvContextPlugins(builtins, 0);
    flow_buf_t title; /* the flow's name, the SVG's <title> */
    flow_buf_init(&title, 2 * LABEL_MAX);
    put_escaped(&title, flow_def_name(d->def), LABEL_MAX, ESC_TITLE, 0);
    Agraph_t *g = gvc && !title.err ? agopen(title.data, Agdirected, NULL) : NULL;
    flow_buf_free(&title);
    if (vs == NULL || g == NULL) {
        rc = FLOW_ENOMEM;
        goto out;
    }
    static const char *const graph_attrs[][2] = {
        {"rankdir", "TB"}, {"nodesep", "0.35"}, {"ranksep", "0.45"}, {"bgcolor", "transparent"},
        {"fontname", "Courier"}, {"id", "flow"}};
    static const char *const node_attrs[][2] = {
        {"shape", "box"},       {"style", "rounded,filled"}, {"fontname", "Courier"},
        {"fontsize", "11"},     {"margin", "0.15,0.06"},     {"label", ""},
        {"id", ""},             {"class", ""},               {"fillcolor", "#ffffff"},
        {"color", "#444444"},   {"fontcolor", "#111111"},    {"penwidth", "1"},
        {"peripheries", "1"}};
    static const char *const edge_attrs[][2] = {
        {"fontname", "Courier"}, {"fontsize", "9"},  {"label", ""},          {"id", ""},
        {"class", ""},             {"style", "solid"}, {"constraint", "true"}, {"color", "#555555"},
        {"arrowsize", "0.7"}};
    static const char *const big_attrs[][2] = {
        {"splines", "line"}, {"mclimit", "0.1"}, {"nslimit", "1"}, {"nslimit1", "1"}};
    for (size_t i = 0; i < sizeof graph_attrs / sizeof *graph_attrs; i++)
        if (agattr(g, AGRAPH, (char *)graph_attrs[i][0], (char *)graph_attrs[i][1]) == NULL)
            rc = FLOW_ENOMEM;
    for (size_t i = 0; items > SPLINES_MAX && i < sizeof big_attrs / sizeof *big_attrs; i++)
        if (agattr(g, AGRAPH, (char *)big_attrs[i][0], (char *)big_attrs[i][1]) == NULL)
            rc = FLOW_ENOMEM;
    for (size_t i = 0; i < sizeof node_attrs / sizeof *node_attrs; i++)
        if (agattr(g, AGNODE, (char *)node_attrs[i][0], (char *)node_attrs[i][1]) == NULL)
            rc = FLOW_ENOMEM;
    for (size_t i = 0; i < sizeof edge_attrs / sizeof *edge_attrs; i++)
        if (agattr(g, AGEDGE, (char *)edge_attrs[i][0], (char *)edge_attrs[i][1]) == NULL)
            rc = FLOW_ENOMEM;
    const flow_node_t *root = flow_def_root(d->def);
    size_t start = root ? index_of(d, flow_node_start(root)) : d->n;
    for (size_t i = 0; rc == 0 && i < d->n; i++)
        if (i != d->root)
            rc = add_node(g, d, i, start, m != NULL, m, &vs[i]);
    for (size_t k = 0; rc == 0 && k < d->nedges; k++)
        rc = add_edge(g, d, &d->edges[k], vs);
    if (rc < 0)
        goto out;
    if (gvLayout(gvc, g, "dot") != 0) {
        rc = FLOW_EIO;
        goto out;
    }
    if (gvRenderData(gvc, g, "svg", &data, &size) != 0 || data == NULL) {
        rc = FLOW_EIO;
    } else if ((*svg = malloc((size_t)size + 1)) == NULL) {
        rc = FLOW_ENOMEM;
    } else {
        memcpy(*svg, data, size);
        (*svg)[size] = '\0';
        *len = size;
    }
    if (data != NULL)
        gvFreeRenderData(data);
    gvFreeLayout(gvc, g);
out:
    if (g != NULL)
        agclose(g);
    if (gvc != NULL)
        gvFreeContext(gvc);
    free(vs);
    return rc;
}

int flowd_graph_svg(const flow_def_t *def, const flowd_graph_marks_t *marks, size_t max_items,
                    char **svg, size_t *len, size_t *items) {
    drawing_t d = {.def = def, .n = flow_def_node_count(def)};
    *svg = NULL;
    *len = 0;
    *items = 0;
    pthread_mutex_lock(&gv_lock);
    int rc = collect(&d);
    if (rc == 0) {
        *items = (d.root < d.n ? d.n - 1 : d.n) + d.nedges;
        if (*items > max_items)
            rc = FLOW_ETOOBIG;
    }
    if (rc == 0)
        rc = mark_back_edges(&d);
    if (rc == 0)
        rc = apply_marks(&d, marks);
    if (rc == 0) {
        agseterrf(quiet);
        rc = draw(&d, marks, *items, svg, len);
    }
    pthread_mutex_unlock(&gv_lock);
    drawing_free(&d);
    return rc;
}
