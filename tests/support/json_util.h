/* json_util.h: small helpers the unit tests share: JSON fixtures and comparisons, and a runner. */
#ifndef TESTS_JSON_UTIL_H
#define TESTS_JSON_UTIL_H

#include <check.h>
#include <jansson.h>

#include "flow/problems.h"

/* Parses text (any JSON value; \u0000 allowed) and fails the test when it is not JSON.
 * Returns a new reference. */
json_t *tu_json(const char *text);

/* Fails the test, naming what, unless got (borrowed; NULL allowed) equals the JSON in expected. */
void tu_assert_json(const char *what, json_t *got, const char *expected);

/* Fails the test, naming what, unless flow_problems_text(p) is exactly expected. */
void tu_assert_problems(const char *what, const flow_problems_t *p, const char *expected);

/* n copies of c and then tail, NUL-terminated (free it): long inputs for limits. */
char *tu_repeat(char c, size_t n, const char *tail);

/* Runs every test of s (and frees it); returns the process exit code. */
int tu_run(Suite *s);

#endif
