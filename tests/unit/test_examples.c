/* test_examples.c: the example flow documents (examples/flows/) load without a problem, and the
 * seed's two examples run against the mock: the recipe recommender loops on "no" and finalizes on
 * "yes", and the scraper fetches its pages concurrently and summarizes them. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/doc.h"
#include "flow/nodes.h"
#include "flow/pointer.h"
#include "support/harness.h"
#include "support/json_util.h"
#include "support/mock.h"

#ifndef EXAMPLES_DIR
#define EXAMPLES_DIR "examples/flows"
#endif

static harness_t h;
static outcome_t out;
static mock_t *mock;
static flow_http_t *http;
static flow_nodes_env_t env;
static flow_registry_t *reg;
static flow_netrules_t *allow;
static char base[64], llm[96];

/* The mock on loopback is allowed as make run allows flowd-mock (--allow-outbound 127.0.0.1:8090). */
static void setup(void) {
    ck_assert_int_eq(mock_start(NULL, &mock), 0);
    harness_init(&h, NULL);
    snprintf(base, sizeof base, "127.0.0.1:%u", (unsigned)mock_port(mock));
    allow = rules_of(base);
    ck_assert_int_eq(flow_http_new(&h.loop, &(flow_http_opts_t){.allow = allow}, &http), 0);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", (unsigned)mock_port(mock));
    snprintf(llm, sizeof llm, "%s/v1", base);
    env = (flow_nodes_env_t){.http = http, .llm_base_url = llm, .llm_model = "mock-model"};
    ck_assert_int_eq(flow_registry_new(&reg), 0);
    ck_assert_int_eq(flow_nodes_register(reg, &env), 0);
}

static void teardown(void) {
    outcome_clear(&out);
    flow_http_close(http);
    harness_close(&h);
    flow_registry_free(reg);
    mock_stop(mock);
    flow_netrules_unref(allow);
}

static flow_def_t *example(const char *name) {
    char path[256];
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    flow_def_t *def = NULL;
    snprintf(path, sizeof path, "%s/%s.json", EXAMPLES_DIR, name);
    int rc = flow_doc_load_file(reg, path, &def, &p);
    char *text = NULL;
    flow_problems_text(&p, &text);
    ck_assert_msg(rc == 0, "%s: %s", path, text ? text : flow_strerror(rc));
    flow_free(text);
    flow_problems_clear(&p);
    return def;
}

static json_t *at(const char *pointer) {
    json_t *v = NULL;
    flow_pointer_get(out.shared, pointer, &v);
    return v;
}

START_TEST(test_every_example_document_loads) {
    DIR *d = opendir(EXAMPLES_DIR);
    struct dirent *e;
    int n = 0;
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(len - 5), e->d_name);
        flow_def_t *def = example(name);
        ck_assert_str_eq(flow_def_name(def), name); /* a file is named after its flow */
        flow_def_unref(def);
        n++;
    }
    closedir(d);
    ck_assert_int_ge(n, 4);
}
END_TEST

static int answer(flow_job_t *job, const char *text) {
    json_t *v = json_string(text);
    int rc = flow_job_input(job, v, NULL);
    json_decref(v);
    return rc;
}

static void until_waiting(flow_job_t *job) {
    while (!out.done && flow_job_status(job) != FLOW_WAITING)
        uv_run(&h.loop, UV_RUN_ONCE);
    ck_assert(!out.done);
}

START_TEST(test_the_recipe_flow_loops_on_no_and_ends_on_yes) {
    flow_def_t *def = example("recipe");
    json_t *params = json_pack("{s:s}", "recipes_api", base);
    flow_job_t *job = harness_start(&h, def, json_pack("{s:s}", "ingredient", "tofu"),
                                    &(flow_job_opts_t){.id = "r1", .params = params}, &out);
    until_waiting(job);
    ck_assert_str_eq(json_string_value(json_object_get(flow_job_waiting_for(job), "prompt")),
                     "How about: tofu pasta? Answer yes or no.");
    ck_assert_int_eq(answer(job, "perhaps"), FLOW_EINVAL);
    ck_assert_int_eq(answer(job, "no"), 0);
    uv_run(&h.loop, UV_RUN_NOWAIT);
    until_waiting(job);
    ck_assert_str_eq(json_string_value(json_object_get(flow_job_waiting_for(job), "prompt")),
                     "How about: grilled tofu? Answer yes or no.");
    ck_assert_int_eq(answer(job, "yes"), 0);
    while (!out.done)
        uv_run(&h.loop, UV_RUN_ONCE);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_str_eq(json_string_value(at("/final")), "grilled tofu");
    tu_assert_json("rejected", at("/rejected"), "[\"tofu pasta\"]");
    const char *want[] = {"init", "fetch", "suggest", "approve", "reject", "suggest", "approve", "finalize"};
    ck_assert_uint_eq(out.history_count, 8);
    for (size_t i = 0; i < 8; i++)
        ck_assert_str_eq(out.history_nodes[i], want[i]);
    json_decref(params);
    flow_def_unref(def);
}
END_TEST

START_TEST(test_the_scraper_fetches_pages_at_once_and_summarizes_them) {
    flow_def_t *def = example("scraper");
    json_t *urls = json_array();
    for (int i = 0; i < 20; i++)
        json_array_append_new(urls, json_sprintf("%s/gate/20/page/%d", base, i));
    /* /gate/20 answers only once 20 requests wait at once: the pages are fetched concurrently */
    harness_run(&h, def, json_pack("{s:o}", "urls", urls), NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert_uint_eq(json_array_size(at("/pages")), 20);
    ck_assert_ptr_nonnull(strstr(json_string_value(at("/pages/7/body")), "Page 7"));
    ck_assert_ptr_nonnull(strstr(json_string_value(at("/summary/text")), "Summarize these pages"));
    flow_def_unref(def);
}
END_TEST

START_TEST(test_noop_and_sleep_examples_run) {
    flow_def_t *noop = example("noop"), *sleep = example("sleep");
    harness_run(&h, noop, NULL, NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    outcome_clear(&out);
    harness_run(&h, sleep, json_pack("{s:f}", "seconds", 0.01), NULL, &out);
    ck_assert_int_eq(out.status, FLOW_SUCCEEDED);
    ck_assert(json_real_value(at("/slept")) == 0.01);
    flow_def_unref(noop);
    flow_def_unref(sleep);
}
END_TEST

static Suite *examples_suite(void) {
    Suite *s = suite_create("examples");
    TCase *tc = tcase_create("examples");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_every_example_document_loads);
    tcase_add_test(tc, test_the_recipe_flow_loops_on_no_and_ends_on_yes);
    tcase_add_test(tc, test_the_scraper_fetches_pages_at_once_and_summarizes_them);
    tcase_add_test(tc, test_noop_and_sleep_examples_run);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(examples_suite());
}
