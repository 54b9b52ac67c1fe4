/* test_problems.c: the capped problem list (flow/problems.h) and the JSON Pointers of places that the
 * checkers report (lib/jpath.h). */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "flow.h"
#include "jpath.h"
#include "flow/problems.h"
#include "support/json_util.h"

START_TEST(problems_keep_order_and_format) {
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    ck_assert_int_eq(flow_problems_add(&p, "/nodes/a", "unknown type \"%s\"", "htp"), 0);
    ck_assert_int_eq(flow_problems_add(&p, NULL, "must be an object"), 0);
    ck_assert_int_eq(flow_problems_add(&p, "/x", "n=%d", 3), 0);
    ck_assert_uint_eq(p.count, 3);
    ck_assert_str_eq(p.items[1].where, "");
    tu_assert_problems("text", &p, "/nodes/a: unknown type \"htp\"\nmust be an object\n/x: n=3");
    flow_problems_clear(&p);
    ck_assert_uint_eq(flow_problems_total(&p), 0);
    tu_assert_problems("cleared", &p, "");
    flow_problems_clear(&p);
}
END_TEST

START_TEST(problems_past_the_cap_are_counted) {
    flow_problems_t p;
    flow_problems_init(&p);
    for (int i = 0; i < FLOW_PROBLEMS_MAX + 3; i++)
        ck_assert_int_eq(flow_problems_add(&p, "/a", "problem %d", i), 0);
    ck_assert_uint_eq(p.count, FLOW_PROBLEMS_MAX);
    ck_assert_uint_eq(p.dropped, 3);
    ck_assert_uint_eq(flow_problems_total(&p), FLOW_PROBLEMS_MAX + 3);
    ck_assert_str_eq(p.items[FLOW_PROBLEMS_MAX - 1].message, "problem 99");
    char *text = NULL;
    ck_assert_int_eq(flow_problems_text(&p, &text), 0);
    const char *tail = "/a: problem 99\n... and 3 more problems";
    ck_assert_str_eq(text + strlen(text) - strlen(tail), tail);
    free(text);
    flow_problems_clear(&p);
}
END_TEST

START_TEST(problems_long_messages_are_cut_on_a_character) {
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    char big[3000];
    /* "é" is two bytes: a cut at an odd offset would split one */
    for (size_t i = 0; i + 2 < sizeof big; i += 2)
        memcpy(big + i, "\xc3\xa9", 2);
    big[sizeof big - 2] = '\0';
    ck_assert_int_eq(flow_problems_add(&p, "", "%s", big), 0);
    const char *m = p.items[0].message;
    size_t n = strlen(m);
    ck_assert_uint_le(n, FLOW_PROBLEM_MESSAGE_MAX - 1);
    ck_assert_str_eq(m + n - 3, "...");
    ck_assert_uint_eq((n - 3) % 2, 0);
    flow_problems_clear(&p);
}
END_TEST

START_TEST(problems_null_list_records_nothing) {
    ck_assert_int_eq(flow_problems_add(NULL, "/a", "ignored"), 0);
}
END_TEST

START_TEST(jpath_renders_escaped_pointers) {
    flow__jpath_t top = flow__jpath_top("/nodes/fetch/params");
    flow__jpath_t a = flow__jpath_key(&top, "a/b");
    flow__jpath_t b = flow__jpath_index(&a, 12);
    flow__jpath_t c = flow__jpath_key(&b, "m~n");
    flow__jpath_t d = flow__jpath_key(&c, "");
    char *s = NULL;
    ck_assert_int_eq(flow__jpath_render(&d, &s), 0);
    ck_assert_str_eq(s, "/nodes/fetch/params/a~1b/12/m~0n/");
    free(s);

    flow__jpath_t none = flow__jpath_top(NULL);
    ck_assert_int_eq(flow__jpath_render(&none, &s), 0);
    ck_assert_str_eq(s, "");
    free(s);

    flow_problems_t p = FLOW_PROBLEMS_INIT;
    ck_assert_int_eq(flow__jpath_report(&p, &b, "bad %s", "thing"), 0);
    tu_assert_problems("report", &p, "/nodes/fetch/params/a~1b/12: bad thing");
    flow_problems_clear(&p);
}
END_TEST

static Suite *problems_suite(void) {
    Suite *s = suite_create("problems");
    TCase *tc = tcase_create("problems");
    tcase_add_test(tc, problems_keep_order_and_format);
    tcase_add_test(tc, problems_past_the_cap_are_counted);
    tcase_add_test(tc, problems_long_messages_are_cut_on_a_character);
    tcase_add_test(tc, problems_null_list_records_nothing);
    tcase_add_test(tc, jpath_renders_escaped_pointers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(problems_suite());
}
