/* json_util.c: the shared test helpers of json_util.h. */
#include "support/json_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

json_t *tu_json(const char *text) {
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    ck_assert_msg(v != NULL, "bad JSON in test: %s: %s", text, e.text);
    return v;
}

void tu_assert_json(const char *what, json_t *got, const char *expected) {
    json_t *want = tu_json(expected);
    char *g = got != NULL ? json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    int same = got != NULL && json_equal(got, want);
    json_decref(want);
    if (!same) {
        /* ck_assert_msg does not return, so copy the text to report into a stack buffer first. */
        char buf[2048];
        snprintf(buf, sizeof buf, "%s", g != NULL ? g : "(NULL)");
        free(g);
        ck_abort_msg("%s: got %s, want %s", what, buf, expected);
    }
    free(g);
}

char *tu_repeat(char c, size_t n, const char *tail) {
    size_t t = strlen(tail);
    char *s = malloc(n + t + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    memcpy(s + n, tail, t + 1);
    return s;
}

void tu_assert_problems(const char *what, const flow_problems_t *p, const char *expected) {
    char *text = NULL;
    ck_assert_int_eq(flow_problems_text(p, &text), 0);
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", text);
    free(text);
    ck_assert_msg(strcmp(buf, expected) == 0, "%s:\ngot:\n%s\nwant:\n%s", what, buf, expected);
}

int tu_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
