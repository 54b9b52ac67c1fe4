/* test_def.c: building definitions and sealing them, the registry of node types and flows, the
 * Mermaid text, and the tables of error codes and statuses. */
#include <string.h>

#include "support/harness.h"

START_TEST(test_every_error_has_a_name_and_a_message) {
    ck_assert_str_eq(flow_err_name(0), "ok");
    ck_assert_str_eq(flow_err_name(FLOW_ENOMEM), "out_of_memory");
    ck_assert_str_eq(flow_strerror(FLOW_ENOMEM), "out of memory");
    ck_assert_str_eq(flow_err_name(FLOW_EDEADLINE), "deadline_exceeded");
    ck_assert_str_eq(flow_err_name(FLOW_EMAXSTEPS), "max_steps_exceeded");
    ck_assert_str_eq(flow_err_name(12345), "unknown_error");
    ck_assert_str_eq(flow_strerror(-1), "unknown error");
    for (int code = FLOW__ERR_FIRST + 1; code < FLOW__ERR_LAST; code++) {
        ck_assert_str_ne(flow_err_name(code), "unknown_error");
        ck_assert_str_ne(flow_strerror(code), "unknown error");
        ck_assert_int_lt(code, 0);
    }
}
END_TEST

START_TEST(test_statuses_have_names_both_ways) {
    flow_status_t st;
    for (int i = FLOW_QUEUED; i <= FLOW_CANCELED; i++) {
        ck_assert_int_eq(flow_status_parse(flow_status_name((flow_status_t)i), &st), 0);
        ck_assert_int_eq(st, i);
    }
    ck_assert_int_eq(flow_status_parse("done", &st), FLOW_EINVAL);
    ck_assert(flow_status_final(FLOW_CANCELED));
    ck_assert(!flow_status_final(FLOW_WAITING));
}
END_TEST

START_TEST(test_a_definition_is_built_and_read_back) {
    flow_def_t *def;
    flow_node_t *root, *a, *b;
    ck_assert_int_eq(flow_def_new("recipe", &def), 0);
    ck_assert_int_eq(flow_node_new(def, "flow", FLOW_FLOW, NULL, NULL, &root), 0);
    ck_assert_int_eq(flow_node_new(def, "a", FLOW_NODE, NULL, NULL, &a), 0);
    ck_assert_int_eq(flow_node_new(def, "b", FLOW_PARALLEL_BATCH, NULL, NULL, &b), 0);
    ck_assert_int_eq(flow_node_new(def, "a", FLOW_NODE, NULL, NULL, &b), FLOW_EEXIST);
    ck_assert_int_eq(flow_node_next(a, "go", b), 0);
    ck_assert_int_eq(flow_node_next(a, NULL, a), 0);
    ck_assert_int_eq(flow_node_set_retry(a, 3, 250), 0);
    ck_assert_int_eq(flow_node_set_timeout(a, 1000), 0);
    ck_assert_int_eq(flow_node_set_limit(b, 8), 0);
    ck_assert_int_eq(flow_node_set_start(root, a), 0);
    ck_assert_int_eq(flow_def_set_root(def, root), 0);
    ck_assert_str_eq(flow_def_name(def), "recipe");
    ck_assert_ptr_eq(flow_def_root(def), root);
    ck_assert_uint_eq(flow_def_node_count(def), 3);
    ck_assert_ptr_eq(flow_def_node_at(def, 1), a);
    ck_assert_ptr_null(flow_def_node_at(def, 3));
    ck_assert_ptr_eq(flow_def_find(def, "b"), b);
    ck_assert_ptr_null(flow_def_find(def, "c"));
    ck_assert_str_eq(flow_kind_name(flow_node_kind(b)), "parallel_batch");
    ck_assert_uint_eq(flow_node_max_retries(a), 3);
    ck_assert_uint_eq(flow_node_wait(a), 250);
    ck_assert_uint_eq(flow_node_timeout(a), 1000);
    ck_assert_uint_eq(flow_node_limit(b), 8);
    ck_assert_ptr_eq(flow_node_start(root), a);
    const char *action;
    flow_node_t *to;
    ck_assert_uint_eq(flow_node_succ_count(a), 2);
    ck_assert_int_eq(flow_node_succ_at(a, 0, &action, &to), 0);
    ck_assert_str_eq(action, "go");
    ck_assert_ptr_eq(to, b);
    ck_assert_int_eq(flow_node_succ_at(a, 1, &action, &to), 0);
    ck_assert_str_eq(action, "default");
    ck_assert_int_eq(flow_node_succ_at(a, 2, &action, &to), FLOW_ENOTFOUND);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_bad_arguments_are_refused) {
    flow_def_t *def, *other;
    flow_node_t *root, *a, *x;
    ck_assert_int_eq(flow_def_new("", &def), FLOW_EINVAL);
    ck_assert_int_eq(flow_def_new(NULL, &def), FLOW_EINVAL);
    def = def_new("d", &root);
    other = def_new("o", &x);
    a = node_new(def, "a", FLOW_NODE, NULL, NULL);
    ck_assert_int_eq(flow_node_new(def, "", FLOW_NODE, NULL, NULL, &x), FLOW_EINVAL);
    ck_assert_int_eq(flow_node_new(def, "k", (flow_kind_t)42, NULL, NULL, &x), FLOW_EINVAL);
    ck_assert_int_eq(flow_node_next(a, "x", x), FLOW_EINVAL); /* another definition's node */
    ck_assert_int_eq(flow_node_next(a, "", a), FLOW_EINVAL);
    ck_assert_int_eq(flow_node_set_retry(a, 0, 0), FLOW_EINVAL);
    ck_assert_int_eq(flow_node_set_start(a, a), FLOW_EINVAL); /* not a flow */
    ck_assert_int_eq(flow_node_set_start(root, root), FLOW_EINVAL);
    ck_assert_int_eq(flow_def_set_root(def, a), FLOW_EINVAL);
    json_t *arr = json_array();
    ck_assert_int_eq(flow_node_set_params(a, arr), FLOW_EINVAL);
    json_decref(arr);
    flow_def_unref(def);
    flow_def_unref(other);
}
END_TEST

START_TEST(test_a_sealed_definition_is_read_only) {
    flow_node_t *root, *a, *b;
    flow_def_t *def = def_new("sealed", &root);
    a = node_new(def, "a", FLOW_NODE, NULL, NULL);
    flow_node_set_start(root, a);
    ck_assert_int_eq(flow_def_seal(def, NULL), 0);
    ck_assert(flow_def_sealed(def));
    ck_assert_int_eq(flow_def_seal(def, NULL), 0);
    ck_assert_int_eq(flow_node_new(def, "b", FLOW_NODE, NULL, NULL, &b), FLOW_ESTATE);
    ck_assert_int_eq(flow_node_next(a, NULL, a), FLOW_ESTATE);
    ck_assert_int_eq(flow_node_set_retry(a, 2, 0), FLOW_ESTATE);
    ck_assert_int_eq(flow_node_set_params(a, NULL), FLOW_ESTATE);
    ck_assert_int_eq(flow_def_set_root(def, root), FLOW_ESTATE);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_seal_finds_what_cannot_run) {
    flow_error_t err = {0};
    flow_def_t *def;
    flow_node_t *root, *inner, *a;
    flow_def_new("no-root", &def);
    ck_assert_int_eq(flow_def_seal(def, &err), FLOW_EINVAL);
    ck_assert_str_eq(err.message, "flow no-root has no root");
    flow_def_unref(def);

    def = def_new("no-start", &root);
    ck_assert_int_eq(flow_def_seal(def, &err), FLOW_EINVAL);
    ck_assert_str_eq(err.message, "flow node flow has no start node");
    flow_def_unref(def);

    /* inner's sub-graph leads back to inner itself: it would contain itself forever */
    def = def_new("self", &root);
    inner = node_new(def, "inner", FLOW_FLOW, NULL, NULL);
    a = node_new(def, "a", FLOW_NODE, NULL, NULL);
    flow_node_set_start(root, inner);
    flow_node_set_start(inner, a);
    flow_node_next(a, "deeper", inner);
    ck_assert_int_eq(flow_def_seal(def, &err), FLOW_EINVAL);
    ck_assert_str_eq(err.message, "flow node inner contains itself");
    ck_assert(!flow_def_sealed(def));
    flow_def_unref(def);
    flow_error_clear(&err);
    ck_assert_ptr_null(err.message);
}
END_TEST

/* ---- the registry ---- */

static int dummy_factory(const flow_type_args_t *args, const flow_node_ops_t **ops, void **data) {
    *ops = NULL;
    *data = args->data;
    return 0;
}

START_TEST(test_the_registry_keeps_node_types_by_name) {
    flow_registry_t *reg;
    flow_type_factory f = NULL;
    void *data = NULL;
    int tag = 1;
    ck_assert_int_eq(flow_registry_new(&reg), 0);
    ck_assert_int_eq(flow_registry_add_type(reg, "http", dummy_factory, &tag, NULL), 0);
    ck_assert_int_eq(flow_registry_add_type(reg, "http", dummy_factory, NULL, NULL), FLOW_EEXIST);
    ck_assert_int_eq(flow_registry_type(reg, "http", &f, &data), 0);
    ck_assert_ptr_eq(f, dummy_factory);
    ck_assert_ptr_eq(data, &tag);
    ck_assert_int_eq(flow_registry_type(reg, "llm", &f, &data), FLOW_ENOTFOUND);
    flow_registry_free(reg);
}
END_TEST

START_TEST(test_the_registry_keeps_flows_and_replaced_ones_live_on) {
    flow_registry_t *reg;
    flow_node_t *root;
    ck_assert_int_eq(flow_registry_new(&reg), 0);
    flow_def_t *v1 = def_new("recipe", &root);
    flow_node_set_start(root, node_new(v1, "a", FLOW_NODE, NULL, NULL));
    flow_def_t *noop = def_new("noop", &root);
    flow_node_set_start(root, node_new(noop, "n", FLOW_NODE, NULL, NULL));
    flow_def_t *broken = def_new("broken", &root);
    ck_assert_int_eq(flow_registry_put_flow(reg, v1, NULL), 0);
    ck_assert(flow_def_sealed(v1));
    ck_assert_int_eq(flow_registry_put_flow(reg, noop, NULL), 0);
    flow_error_t err = {0};
    ck_assert_int_eq(flow_registry_put_flow(reg, broken, &err), FLOW_EINVAL);
    flow_error_clear(&err);

    flow_def_t *running = flow_registry_get_flow(reg, "recipe"); /* a job holds this */
    ck_assert_ptr_eq(running, v1);
    flow_def_t *v2 = def_new("recipe", &root);
    flow_node_set_start(root, node_new(v2, "b", FLOW_NODE, NULL, NULL));
    ck_assert_int_eq(flow_registry_put_flow(reg, v2, NULL), 0);
    flow_def_unref(v1);
    flow_def_t *now = flow_registry_get_flow(reg, "recipe");
    ck_assert_ptr_eq(now, v2);
    ck_assert_ptr_nonnull(flow_def_find(running, "a")); /* the old version is still whole */

    flow_def_t **list;
    size_t count;
    ck_assert_int_eq(flow_registry_list_flows(reg, &list, &count), 0);
    ck_assert_uint_eq(count, 2);
    ck_assert_str_eq(flow_def_name(list[0]), "noop");
    ck_assert_str_eq(flow_def_name(list[1]), "recipe");
    for (size_t i = 0; i < count; i++)
        flow_def_unref(list[i]);
    flow_free(list);

    ck_assert_int_eq(flow_registry_remove_flow(reg, "recipe"), 0);
    ck_assert_int_eq(flow_registry_remove_flow(reg, "recipe"), FLOW_ENOTFOUND);
    ck_assert_ptr_null(flow_registry_get_flow(reg, "recipe"));
    flow_def_unref(running);
    flow_def_unref(now);
    flow_def_unref(v2);
    flow_def_unref(noop);
    flow_def_unref(broken);
    flow_registry_free(reg);
}
END_TEST

/* ---- Mermaid ---- */

START_TEST(test_mermaid_draws_nodes_edges_and_sub_flows) {
    flow_node_t *root;
    flow_def_t *def = def_new("recipe", &root);
    flow_node_t *fetch = node_new(def, "fetch", FLOW_NODE, NULL, NULL);
    flow_node_t *suggest = node_new(def, "suggest \"best\"", FLOW_NODE, NULL, NULL);
    flow_node_t *approve = node_new(def, "approve", FLOW_FLOW, NULL, NULL);
    flow_node_t *ask = node_new(def, "ask", FLOW_NODE, NULL, NULL);
    flow_node_t *pages = node_new(def, "pages", FLOW_PARALLEL_BATCH, NULL, NULL);
    flow_node_set_start(root, fetch);
    flow_node_next(fetch, "suggest", suggest);
    flow_node_next(suggest, NULL, approve);
    flow_node_set_start(approve, ask);
    flow_node_next(approve, "retry", suggest);
    flow_node_next(approve, "accept", pages);
    char *text;
    ck_assert_int_eq(flow_def_mermaid(def, &text), 0);
    ck_assert_str_eq(text, "flowchart TD\n"
                           "    n1[\"fetch\"]\n"
                           "    n2[\"suggest #quot;best#quot;\"]\n"
                           "    subgraph n3 [\"approve\"]\n"
                           "        n4[\"ask\"]\n"
                           "    end\n"
                           "    n5[[\"pages\"]]\n"
                           "    n1 -- \"suggest\" --> n2\n"
                           "    n2 --> n3\n"
                           "    n3 -. start .-> n4\n"
                           "    n3 -- \"retry\" --> n2\n"
                           "    n3 -- \"accept\" --> n5\n");
    flow_free(text);
    flow_def_unref(def);
}
END_TEST

static Suite *def_suite(void) {
    Suite *s = suite_create("def");
    TCase *tc = tcase_create("def");
    tcase_add_test(tc, test_every_error_has_a_name_and_a_message);
    tcase_add_test(tc, test_statuses_have_names_both_ways);
    tcase_add_test(tc, test_a_definition_is_built_and_read_back);
    tcase_add_test(tc, test_bad_arguments_are_refused);
    tcase_add_test(tc, test_a_sealed_definition_is_read_only);
    tcase_add_test(tc, test_seal_finds_what_cannot_run);
    tcase_add_test(tc, test_the_registry_keeps_node_types_by_name);
    tcase_add_test(tc, test_the_registry_keeps_flows_and_replaced_ones_live_on);
    tcase_add_test(tc, test_mermaid_draws_nodes_edges_and_sub_flows);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return harness_main(def_suite());
}
