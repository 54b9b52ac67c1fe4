/* test_re.c: regular expressions on PCRE2 (lib/re.h). The patterns of issue 11 and the classic
 * catastrophic ones are each refused when compiled or stopped by a limit that the error names; the
 * budget stops many matches that each stay under the match limit; and every test runs twice, with
 * PCRE2's JIT and with its interpreter only (_i: 0 JIT, 1 interpreter). */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "flow.h"
#include "re.h"
#include "support/json_util.h"

static flow_re_limits_t limits_of(int no_jit) {
    flow_re_limits_t lim = {0};
    lim.no_jit = no_jit;
    return lim;
}

/* Compiling fails, and why holds words. */
static void refused(const char *pattern, const flow_re_limits_t *lim, const char *words) {
    char why[256] = "";
    flow_re_t *re = (flow_re_t *)&why; /* must be reset to NULL */
    ck_assert_int_eq(flow_re_compile(pattern, strlen(pattern), lim, &re, why, sizeof why), FLOW_EINVAL);
    ck_assert_ptr_null(re);
    ck_assert_msg(strstr(why, words) != NULL, "%s: \"%s\" does not say \"%s\"", pattern, why, words);
}

static flow_re_t *compiled(const char *pattern, const flow_re_limits_t *lim) {
    char why[256] = "";
    flow_re_t *re = NULL;
    ck_assert_msg(flow_re_compile(pattern, strlen(pattern), lim, &re, why, sizeof why) == 0, "%s: %s", pattern,
                  why);
    return re;
}

/* The answer of one match in a run of its own; why gets the message. */
static int match_once(const flow_re_t *re, const flow_re_limits_t *lim, const char *s, size_t len, char *why,
                      size_t whylen) {
    flow_re_run_t run;
    flow_re_run_init(&run, lim);
    int rc = flow_re_match(&run, re, s, len, why, whylen);
    flow_re_run_end(&run);
    return rc;
}

/* The pattern stops on s with FLOW_ETOOBIG and a message holding words. */
static void stopped(const char *pattern, const char *s, const flow_re_limits_t *lim, const char *words) {
    char why[256] = "";
    flow_re_t *re = compiled(pattern, lim);
    ck_assert_int_eq(match_once(re, lim, s, strlen(s), why, sizeof why), FLOW_ETOOBIG);
    ck_assert_msg(strstr(why, words) != NULL, "%s: \"%s\" does not say \"%s\"", pattern, why, words);
    flow_re_free(re);
}

START_TEST(issue_patterns_are_refused_when_compiled) {
    flow_re_limits_t lim = limits_of(_i);
    /* a possessive "a++" cannot be repeated again */
    refused("^a+++++++++++++++++++++$", &lim, "quantifier does not follow a repeatable item at offset 4");
    /* a million copies of "a": PCRE2 works out the size before it builds anything */
    refused("((a{100}){100}){100}", &lim, "larger than PCRE2 allows");
    char *longer = tu_repeat('a', FLOW_RE_MAX_LENGTH + 1, "");
    refused(longer, &lim, "longer than 1024 bytes (the regex length limit)");
    free(longer);
    char *nested = tu_repeat('(', 40, "a");
    size_t n = strlen(nested);
    nested = realloc(nested, n + 41);
    memset(nested + n, ')', 40);
    nested[n + 40] = '\0';
    refused(nested, &lim, "parentheses nested deeper than 32 (the regex nesting limit)");
    free(nested);
    flow_re_limits_t small = lim;
    small.max_compiled = 1000;
    refused("^((a{100}){100})$", &small, "(the regex compiled size limit)");
    refused("[[.a.]]", &lim, "POSIX collating elements are not supported");
    refused("a\\C", &lim, "using \\C is disabled");
}
END_TEST

START_TEST(catastrophic_backtracking_stops_at_the_match_limit) {
    flow_re_limits_t lim = limits_of(_i);
    char *a = tu_repeat('a', 10000, "!");
    stopped("(a+)+$", a, &lim, "the regex match limit (1000000) was reached");
    free(a);
    /* the back-references of issue 11, over 80 bytes */
    a = tu_repeat('a', 81, "b");
    stopped("^(a*)*\\1$", a, &lim, "the regex match limit (1000000) was reached");
    stopped("^(.*)(.*)(.*)(.*)(.*)\\5\\4\\3\\2\\1$", a, &lim, "the regex match limit (1000000) was reached");
    free(a);
    /* (a|aa)*c: with a "c" in the string PCRE2 has to try every way to split the "a"s */
    a = tu_repeat('a', 30, "bc");
    stopped("(a|aa)*c", a, &lim, "the regex match limit (1000000) was reached");
    free(a);
    /* with a long run, the match limit or the backtracking memory runs out, whichever comes first */
    a = tu_repeat('a', 10000, "bc");
    stopped("(a|aa)*c", a, &lim, " limit (");
    free(a);
    /* without any "c", PCRE2 knows at once that it cannot match */
    a = tu_repeat('a', 10000, "");
    char why[256];
    flow_re_t *re = compiled("(a|aa)*c", &lim);
    ck_assert_int_eq(match_once(re, &lim, a, strlen(a), why, sizeof why), 0);
    flow_re_free(re);
    free(a);
}
END_TEST

START_TEST(lower_limits_are_named) {
    flow_re_limits_t lim = limits_of(_i);
    lim.match_limit = 5000;
    char *a = tu_repeat('a', 30, "bc");
    stopped("(a|aa)*c", a, &lim, "the regex match limit (5000) was reached");
    free(a);
    if (_i == 1) { /* the depth limit is the interpreter's: JIT has its stack (the heap limit) */
        lim = limits_of(1);
        lim.depth_limit = 100;
        a = tu_repeat('a', 1000, "!");
        stopped("^(a|b)*$", a, &lim, "the regex depth limit (100) was reached");
        free(a);
    }
}
END_TEST

/* Many matches that each stay under the match limit add up to the budget of the run. */
START_TEST(the_budget_stops_many_matches) {
    flow_re_limits_t lim = limits_of(_i);
    lim.budget = 20000000;
    char *a = tu_repeat('a', 22, "bc"); /* well under a million steps each */
    char why[256] = "";
    flow_re_t *re = compiled("(a|aa)*c", &lim);
    flow_re_run_t run;
    flow_re_run_init(&run, &lim);
    int rc, n = 0;
    do {
        rc = flow_re_match(&run, re, a, strlen(a), why, sizeof why);
        n++;
    } while (rc == 1 && n < 100000);
    ck_assert_int_eq(rc, FLOW_ETOOBIG);
    ck_assert_str_eq(why, "the regex budget of this check (20000000) is spent");
    ck_assert_int_gt(n, 3);
    ck_assert_int_lt(n, 1000);
    flow_re_run_end(&run);
    /* a new run has a new budget */
    flow_re_run_init(&run, &lim);
    ck_assert_int_eq(flow_re_match(&run, re, a, strlen(a), why, sizeof why), 1);
    flow_re_run_end(&run);
    flow_re_free(re);
    free(a);

    /* cheap matches cost little: thousands fit in the default budget, and long strings cost by length */
    re = compiled("^[a-z]+@[a-z]+\\.[a-z]{2,}$", NULL);
    flow_re_run_init(&run, NULL);
    for (int i = 0; i < 10000; i++)
        ck_assert_int_eq(flow_re_match(&run, re, "who@example.org", 15, why, sizeof why), 1);
    flow_re_run_end(&run);
    lim = limits_of(_i);
    lim.budget = 1000;
    a = tu_repeat('x', 8000, "");
    flow_re_run_init(&run, &lim);
    ck_assert_int_eq(flow_re_match(&run, re, a, strlen(a), why, sizeof why), FLOW_ETOOBIG);
    ck_assert_str_eq(why, "the regex budget of this check (1000) is spent");
    flow_re_run_end(&run);
    free(a);
    flow_re_free(re);
}
END_TEST

START_TEST(syntax_and_options) {
    flow_re_limits_t lim = limits_of(_i);
    static const struct {
        const char *pattern;
        const char *s;
        size_t len; /* 0: strlen */
        int want;
    } cases[] = {
        {"^\\d{3}-\\d{4}$", "555-1234", 0, 1},
        {"^\\d+$", "12a", 0, 0},
        {"^[a-z]+$", "abc\n", 0, 0},           /* "$" is the very end, not before a final newline */
        {"^.$", "\xc3\xa9", 0, 1},            /* "." is one character: é is two bytes */
        {"^\\w+$", "caf\xc3\xa9", 0, 0},       /* \w is ASCII, as in ECMAScript */
        {"(?i)^HELLO$", "hello", 0, 1},
        {"^(?=.*\\d)(?=.*[a-z]).{8,}$", "passw0rdx", 0, 1},
        {"^(ab)\\1$", "abab", 0, 1},           /* back-references are allowed, and bounded */
        {"a\\x00b", "xa\0b", 4, 1},           /* the whole string counts, NUL bytes too */
        {"b$", "a\0b", 3, 1},
        {"colou?r", "the colour red", 0, 1},   /* anywhere unless anchored */
        {"a{,3}", "a{,3}", 0, 1},              /* not a bound in PCRE2 10.42: literal text */
        {"[\\d]", "5", 0, 1},                  /* a backslash escapes inside brackets too */
        {"[[:alpha:]]+", "abc", 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[256] = "";
        flow_re_t *re = compiled(cases[i].pattern, &lim);
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].s);
        ck_assert_msg(match_once(re, &lim, cases[i].s, len, why, sizeof why) == cases[i].want, "%s on \"%s\": %s",
                      cases[i].pattern, cases[i].s, why);
        ck_assert_str_eq(flow_re_pattern(re), cases[i].pattern);
        flow_re_free(re);
    }
}
END_TEST

START_TEST(invalid_input) {
    flow_re_limits_t lim = limits_of(_i);
    char why[256] = "";
    flow_re_t *re = compiled("^.+$", &lim);
    ck_assert_int_eq(match_once(re, &lim, "a\xff", 2, why, sizeof why), FLOW_EINVAL);
    ck_assert_msg(strstr(why, "not valid UTF-8") != NULL, "%s", why);
    flow_re_free(re);
    refused("\xff", &lim, "UTF-8 error");
    refused("a(b", &lim, "missing closing parenthesis at offset 3");
    ck_assert_int_eq(flow_re_compile(NULL, 0, &lim, &re, why, sizeof why), FLOW_EINVAL);
    flow_re_free(NULL);
}
END_TEST

START_TEST(jit_is_used_unless_turned_off) {
    flow_re_limits_t lim = limits_of(_i);
    flow_re_t *re = compiled("^a+$", &lim);
    if (_i == 1)
        ck_assert_int_eq(flow_re_jit(re), 0);
    /* with JIT on, whether it is used depends on this machine's PCRE2 (x86-64 and arm64 have it) */
    flow_re_free(re);
}
END_TEST

static Suite *re_suite(void) {
    Suite *s = suite_create("re");
    TCase *tc = tcase_create("re");
    tcase_add_loop_test(tc, issue_patterns_are_refused_when_compiled, 0, 2);
    tcase_add_loop_test(tc, catastrophic_backtracking_stops_at_the_match_limit, 0, 2);
    tcase_add_loop_test(tc, lower_limits_are_named, 0, 2);
    tcase_add_loop_test(tc, the_budget_stops_many_matches, 0, 2);
    tcase_add_loop_test(tc, syntax_and_options, 0, 2);
    tcase_add_loop_test(tc, invalid_input, 0, 2);
    tcase_add_loop_test(tc, jit_is_used_unless_turned_off, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(re_suite());
}
