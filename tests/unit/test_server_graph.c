/* test_server_graph.c: flows drawn as SVG (server/graph.h): ids and classes a page relies on, a
 * job's marks (visits, current, waiting, failed with its error), sub-flows, cycles, the size
 * bound, and names and messages that try to inject markup or Graphviz escapes. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/doc.h"
#include "graph.h"
#include "nodes_int.h"
#include "support/json_util.h"

/* A flow built in C (names need not follow a document's rules): root runs nodes[0] first, and
 * node i goes to node to[i] by action actions[i] (to[i] < 0: none). */
static flow_def_t *build(const char *name, const char *const *names, const char *const *actions,
                         const int *to, size_t n) {
    flow_def_t *def = NULL;
    flow_node_t *nodes[16], *root = NULL;
    ck_assert_uint_le(n, 16);
    ck_assert_int_eq(flow_def_new(name, &def), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(flow_node_new(def, names[i], FLOW_NODE, NULL, NULL, &nodes[i]), 0);
    for (size_t i = 0; i < n; i++)
        if (to[i] >= 0)
            ck_assert_int_eq(flow_node_next(nodes[i], actions[i], nodes[to[i]]), 0);
    ck_assert_int_eq(flow_node_new(def, "the-flow", FLOW_FLOW, NULL, NULL, &root), 0);
    ck_assert_int_eq(flow_node_set_start(root, nodes[0]), 0);
    ck_assert_int_eq(flow_def_set_root(def, root), 0);
    return def;
}

static char *draw(const flow_def_t *def, const flowd_graph_marks_t *marks) {
    char *svg = NULL;
    size_t len = 0, items = 0;
    ck_assert_int_eq(flowd_graph_svg(def, marks, 500, &svg, &len, &items), 0);
    ck_assert_ptr_nonnull(svg);
    ck_assert_uint_eq(strlen(svg), len);
    ck_assert_ptr_nonnull(strstr(svg, "<svg"));
    ck_assert_ptr_nonnull(strstr(svg, "</svg>"));
    return svg;
}

/* On a failure the SVG goes to stderr: Check's messages are short. */
static void has(const char *svg, const char *text) {
    if (strstr(svg, text) == NULL)
        fprintf(stderr, "%s\n", svg);
    ck_assert_msg(strstr(svg, text) != NULL, "the SVG has no %s", text);
}

static void lacks(const char *svg, const char *text) {
    if (strstr(svg, text) != NULL)
        fprintf(stderr, "%s\n", svg);
    ck_assert_msg(strstr(svg, text) == NULL, "the SVG has %s", text);
}

/* The node's <g> element's opening tag, for its class. */
static void node_class(const char *svg, const char *id, const char *cls) {
    char want[256];
    snprintf(want, sizeof want, "<g id=\"node&#45;%s\" class=\"%s\">", id, cls);
    has(svg, want);
}

START_TEST(test_flow_ids_classes_and_labels) {
    static const char *const names[] = {"ask", "check", "done"};
    static const char *const actions[] = {"default", "retry", "default"};
    static const int to[] = {1, 0, -1};
    flow_def_t *def = build("loop", names, actions, to, 3);
    /* check -> done by "ok" too */
    ck_assert_int_eq(flow_node_next(flow_def_find(def, "check"), "ok", flow_def_find(def, "done")), 0);
    char *svg = draw(def, NULL);
    node_class(svg, "ask", "node start");
    node_class(svg, "check", "node");
    node_class(svg, "done", "node");
    has(svg, "<g id=\"edge&#45;ask&#45;default\" class=\"edge\">");
    has(svg, "<g id=\"edge&#45;check&#45;retry\" class=\"edge\">");
    has(svg, "<g id=\"edge&#45;check&#45;ok\" class=\"edge\">");
    has(svg, ">retry</text>"); /* actions label their edges ... */
    has(svg, ">ok</text>");
    lacks(svg, ">default</text>"); /* ... but default */
    has(svg, ">ask</text>");
    has(svg, ">node</text>"); /* the type, under the name */
    lacks(svg, "the&#45;flow"); /* the root is the drawing itself */
    lacks(svg, "visit");
    free(svg);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_hostile_names_stay_text) {
    static const char *const names[] = {"<script>alert(1)</script>", "a\"b'c&amp;&foo;",
                                        "x\\N\\G\\n\\l", "]]><!--"};
    static const char *const actions[] = {"<b onclick=\"x\">", "\\E", "default", "default"};
    static const int to[] = {1, 2, 3, -1};
    flow_def_t *def = build("<svg onload=alert(1)> &x;", names, actions, to, 4);
    json_t *steps = tu_json("[{\"node\": \"<script>alert(1)</script>\"}]");
    flowd_graph_marks_t marks = {.current = "x\\N\\G\\n\\l",
                                 .failed = "a\"b'c&amp;&foo;",
                                 .error = "<img src=x onerror=alert(1)> \\N \"quoted\"\nnext &line;",
                                 .steps = steps};
    char *svg = draw(def, &marks);
    lacks(svg, "<script");
    lacks(svg, "<img");
    lacks(svg, "<b ");
    lacks(svg, "<svg onload");
    has(svg, "<title>&lt;svg onload=alert(1)&gt; &#38;x;</title>");
    lacks(svg, "onclick=\"");
    lacks(svg, "<!--\"");
    has(svg, "&lt;script&gt;alert(1)&lt;/script&gt;");
    /* '&' stays an '&' a reader sees, and "&foo;" (not an XML entity) is not passed on as one */
    has(svg, ">a&quot;b&#39;c&amp;amp;&amp;foo;</text>");
    has(svg, "id=\"node&#45;a&quot;b&#39;c&#38;amp;&#38;foo;\"");
    lacks(svg, "&foo;");
    /* backslashes are text: not the node's name (\N), the graph's (\G) nor line breaks (\n, \l) */
    has(svg, ">x\\N\\G\\n\\l</text>");
    has(svg, "id=\"node&#45;x\\N\\G\\n\\l\"");
    has(svg, ">&lt;b onclick=&quot;x&quot;&gt;</text>");
    has(svg, ">\\E</text>");
    /* the error, in lines of at most 40 bytes where its spaces allow */
    has(svg, ">&lt;img src=x onerror=alert(1)&gt; \\N</text>");
    has(svg, ">&quot;quoted&quot; next &amp;line;</text>");
    lacks(svg, "&line;");
    has(svg, "]]&gt;&lt;!&#45;&#45;");
    node_class(svg, "&lt;script&gt;alert(1)&lt;/script&gt;", "node visited start");
    node_class(svg, "a&quot;b&#39;c&#38;amp;&#38;foo;", "node failed");
    node_class(svg, "x\\N\\G\\n\\l", "node current");
    node_class(svg, "]]&gt;&lt;!&#45;&#45;", "node not&#45;reached");
    /* every element the SVG has is one Graphviz writes */
    static const char *const tags[] = {"?xml", "!DOCTYPE", "!--", "svg", "/svg", "g", "/g",
                                       "title", "/title", "path", "polygon", "text", "/text",
                                       "ellipse", "polyline"};
    for (const char *p = strchr(svg, '<'); p != NULL; p = strchr(p + 1, '<')) {
        size_t w = strcspn(p + 1, " >\n");
        int known = 0;
        for (size_t i = 0; i < sizeof tags / sizeof *tags; i++)
            known |= strlen(tags[i]) == w && strncmp(p + 1, tags[i], w) == 0;
        ck_assert_msg(known, "an element Graphviz does not write: %.40s", p);
    }
    free(svg);
    json_decref(steps);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_job_marks) {
    static const char *const names[] = {"a", "b", "c", "d"};
    static const char *const actions[] = {"default", "back", "default", "default"};
    static const int to[] = {1, 0, 3, -1};
    flow_def_t *def = build("marks", names, actions, to, 4);
    ck_assert_int_eq(flow_node_next(flow_def_find(def, "b"), "on", flow_def_find(def, "c")), 0);
    json_t *steps = tu_json("[{\"node\": \"a\"}, {\"node\": \"b\"}, {\"node\": \"a\"}, {\"node\": \"b\"},"
                            " {\"node\": \"gone\"}, {\"action\": \"x\"}]");
    flowd_graph_marks_t running = {.current = "c", .steps = steps};
    char *svg = draw(def, &running);
    node_class(svg, "a", "node visited start");
    node_class(svg, "b", "node visited");
    node_class(svg, "c", "node current");
    node_class(svg, "d", "node not&#45;reached");
    has(svg, ">node &#160;· &#160;2 visits</text>");
    free(svg);

    flowd_graph_marks_t waiting = {.current = "c", .waiting = 1, .steps = steps};
    svg = draw(def, &waiting);
    node_class(svg, "c", "node waiting");
    has(svg, ">waiting for input</text>");
    free(svg);

    char long_error[300];
    memset(long_error, 'e', sizeof long_error - 1);
    long_error[sizeof long_error - 1] = '\0';
    long_error[0] = 'E';
    flowd_graph_marks_t failed = {.failed = "c", .error = long_error, .steps = steps};
    svg = draw(def, &failed);
    node_class(svg, "c", "node failed");
    has(svg, ">Eeeeeeee");
    has(svg, "eee...</text>"); /* cut short; a word longer than a line stays whole */
    lacks(svg, long_error);
    free(svg);
    json_decref(steps);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_size_bound) {
    static const char *const names[] = {"a", "b", "c"};
    static const char *const actions[] = {"default", "default", "default"};
    static const int to[] = {1, 2, 0};
    flow_def_t *def = build("three", names, actions, to, 3);
    char *svg = (char *)1;
    size_t len = 1, items = 0;
    ck_assert_int_eq(flowd_graph_svg(def, NULL, 5, &svg, &len, &items), FLOW_ETOOBIG);
    ck_assert_uint_eq(items, 6); /* 3 nodes and 3 edges */
    ck_assert_ptr_null(svg);
    ck_assert_int_eq(flowd_graph_svg(def, NULL, 6, &svg, &len, &items), 0);
    ck_assert_uint_eq(items, 6);
    free(svg);
    flow_def_unref(def);
}
END_TEST

/* A tangle of 60 nodes with 7 successors each (480 items): past SPLINES_MAX it is drawn with
 * straight edges and fewer layout passes, which take it from a minute and a half to under a
 * second; here it is drawn at all, with every node. */
START_TEST(test_a_tangle_is_drawn) {
    flow_def_t *def = NULL;
    flow_node_t *nodes[60], *root = NULL;
    char name[16], action[16];
    ck_assert_int_eq(flow_def_new("tangle", &def), 0);
    for (int i = 0; i < 60; i++) {
        snprintf(name, sizeof name, "e%d", i);
        ck_assert_int_eq(flow_node_new(def, name, FLOW_NODE, NULL, NULL, &nodes[i]), 0);
    }
    for (int i = 0; i < 60; i++)
        for (int j = 0; j < 7; j++) {
            snprintf(action, sizeof action, "a%d", j);
            ck_assert_int_eq(flow_node_next(nodes[i], action, nodes[(i * 7 + j * 13 + 1) % 60]), 0);
        }
    ck_assert_int_eq(flow_node_new(def, "root", FLOW_FLOW, NULL, NULL, &root), 0);
    ck_assert_int_eq(flow_node_set_start(root, nodes[0]), 0);
    ck_assert_int_eq(flow_def_set_root(def, root), 0);
    char *svg = NULL;
    size_t len = 0, items = 0;
    ck_assert_int_eq(flowd_graph_svg(def, NULL, 500, &svg, &len, &items), 0);
    ck_assert_uint_eq(items, 480);
    for (int i = 0; i < 60; i++) {
        char id[40];
        snprintf(id, sizeof id, "<g id=\"node&#45;e%d\" ", i);
        has(svg, id);
    }
    free(svg);
    flow_def_unref(def);
}
END_TEST

/* A document with a sub-flow used by a flow node and a map, and a retry loop. */
START_TEST(test_document_with_sub_flows) {
    flow_registry_t *reg = NULL;
    flow_nodes_env_t env = {0};
    ck_assert_int_eq(flow_registry_new(&reg), 0);
    ck_assert_int_eq(flow_nodes_register(reg, &env), 0);
    json_t *doc = tu_json(
        "{\"name\": \"outer\", \"start\": \"init\", \"nodes\": {"
        " \"init\": {\"type\": \"set\", \"params\": {\"/l\": [1, 2]}, \"next\": {\"default\": \"sub\"}},"
        " \"sub\": {\"type\": \"flow\", \"flow\": \"inner\", \"next\": {\"default\": \"each\"}},"
        " \"each\": {\"type\": \"map\", \"items\": \"$shared/l\", \"flow\": \"inner\","
        "            \"next\": {\"default\": \"check\"}},"
        " \"check\": {\"type\": \"choice\", \"params\": {\"value\": 1, \"cases\": [{\"eq\": 1, \"action\": \"again\"}],"
        "            \"default\": \"done\"}, \"next\": {\"again\": \"init\", \"done\": null}}},"
        " \"flows\": {\"inner\": {\"start\": \"one\", \"nodes\": {"
        "   \"one\": {\"type\": \"noop\", \"next\": {\"default\": \"two\"}},"
        "   \"two\": {\"type\": \"noop\", \"next\": {\"back\": \"one\", \"default\": null}}}}}}");
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    flow_def_t *def = NULL;
    ck_assert_int_eq(flow_doc_load(reg, doc, &def, &p), 0);
    ck_assert_uint_eq(p.count, 0);
    char *svg = draw(def, NULL);
    node_class(svg, "sub", "node subflow");
    node_class(svg, "each", "node subflow");
    node_class(svg, "sub/one", "node");
    node_class(svg, "each/two", "node");
    has(svg, "<g id=\"start&#45;sub\" class=\"edge start&#45;edge\">");
    has(svg, "<g id=\"start&#45;each\" class=\"edge start&#45;edge\">");
    has(svg, "<g id=\"edge&#45;sub/two&#45;back\" class=\"edge\">");
    has(svg, "<g id=\"edge&#45;check&#45;again\" class=\"edge\">");
    has(svg, ">starts</text>");
    lacks(svg, "cluster"); /* graph.c says why */
    free(svg);
    flow_def_unref(def);
    json_decref(doc);
    flow_registry_free(reg);
}
END_TEST

/* Drawings from several threads at once: one at a time inside, each whole. */
static void *draw_many(void *data) {
    const flow_def_t *def = data;
    for (int i = 0; i < 20; i++) {
        char *svg = NULL;
        size_t len = 0, items = 0;
        if (flowd_graph_svg(def, NULL, 500, &svg, &len, &items) != 0 ||
            strstr(svg, "</svg>") == NULL) {
            free(svg);
            return (void *)1;
        }
        free(svg);
    }
    return NULL;
}

START_TEST(test_threads) {
    static const char *const names[] = {"a", "b", "c"};
    static const char *const actions[] = {"x", "y", "z"};
    static const int to[] = {1, 2, 0};
    flow_def_t *def = build("threads", names, actions, to, 3);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, draw_many, def), 0);
    for (int i = 0; i < 4; i++) {
        void *res = (void *)1;
        ck_assert_int_eq(pthread_join(t[i], &res), 0);
        ck_assert_ptr_null(res);
    }
    flow_def_unref(def);
}
END_TEST

static Suite *graph_suite(void) {
    Suite *s = suite_create("server_graph");
    TCase *tc = tcase_create("graph");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_flow_ids_classes_and_labels);
    tcase_add_test(tc, test_hostile_names_stay_text);
    tcase_add_test(tc, test_job_marks);
    tcase_add_test(tc, test_size_bound);
    tcase_add_test(tc, test_a_tangle_is_drawn);
    tcase_add_test(tc, test_document_with_sub_flows);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(graph_suite());
}
