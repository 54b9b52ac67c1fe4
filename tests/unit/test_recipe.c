/* test_recipe.c: the seed's recipe flow (examples/recipe_flow.c): "no" loops back to suggest another
 * recipe, "yes" finalizes, and a bad answer is refused while the job keeps waiting. */
#include "recipe_flow.h"
#include "support/harness.h"

static harness_t h;
static outcome_t out;

static void setup(void) {
    harness_init(&h, NULL);
}

static void teardown(void) {
    outcome_clear(&out);
    harness_close(&h);
}

/* Runs the loop until the job waits for input (or ends). */
static void run_until_waiting(flow_job_t *job) {
    while (!out.done && flow_job_status(job) != FLOW_WAITING)
        uv_run(&h.loop, UV_RUN_ONCE);
}

static int answer(flow_job_t *job, const char *text) {
    json_t *v = json_string(text);
    int rc = flow_job_input(job, v, NULL);
    json_decref(v);
    return rc;
}

START_TEST(test_no_loops_back_and_yes_finalizes) {
    flow_def_t *def;
    ck_assert_int_eq(recipe_flow_new(NULL, &def), 0);
    json_t *params = json_pack("{s:i, s:i}", "fetch_ms", 5, "suggest_ms", 5);
    flow_job_t *job = harness_start(&h, def, json_pack("{s:s}", "ingredient", "tofu"),
                                    &(flow_job_opts_t){.params = params}, &out);
    run_until_waiting(job);
    ck_assert_str_eq(json_string_value(json_object_get(flow_job_waiting_for(job), "suggestion")),
                     "How about: tofu pasta");
    ck_assert_int_eq(answer(job, "perhaps"), FLOW_EINVAL);
    ck_assert_int_eq(answer(job, "no"), 0);
    uv_run(&h.loop, UV_RUN_NOWAIT);
    run_until_waiting(job);
    ck_assert_str_eq(json_string_value(json_object_get(flow_job_waiting_for(job), "suggestion")),
                     "How about: grilled tofu");
    ck_assert_int_eq(answer(job, "yes"), 0);
    while (!out.done)
        uv_run(&h.loop, UV_RUN_ONCE);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(json_string_value(json_object_get(out.shared, "final")), "grilled tofu");
    ck_assert_int_eq(json_integer_value(json_object_get(out.shared, "suggestions")), 2);
    const char *want[] = {"fetch", "suggest", "approve", "suggest", "approve", "finalize"};
    ck_assert_uint_eq(out.history_count, 6);
    for (size_t i = 0; i < 6; i++)
        ck_assert_str_eq(out.history_nodes[i], want[i]);
    ck_assert_str_eq(out.history_actions[2], "retry");
    ck_assert_str_eq(out.history_actions[4], "accept");
    json_decref(params);
    flow_def_unref(def);
}
END_TEST

static Suite *recipe_suite(void) {
    Suite *s = suite_create("recipe");
    TCase *tc = tcase_create("recipe");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_no_loops_back_and_yes_finalizes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return harness_main(recipe_suite());
}
