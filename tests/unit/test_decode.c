/* test_decode.c: YAML to JSON (flow_yaml_decode) and the inside of a ``` fence (flow_fence_inner),
 * lib/decode.h: the core schema's types, the styles models write, the errors with their places, and
 * the caps that keep a hostile text bounded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "decode.h"
#include "support/json_util.h"

/* Decodes text and compares with the JSON expected. */
static void decodes_to(const char *text, const char *expected) {
    json_t *out = NULL;
    flow_error_t err = {0};
    int rc = flow_yaml_decode(text, strlen(text), &out, &err);
    ck_assert_msg(rc == 0, "%s: %s", text, err.message ? err.message : "?");
    tu_assert_json(text, out, expected);
    json_decref(out);
    flow_error_clear(&err);
}

/* Decoding text fails with code, and the message starts with (or, with a leading '*', holds) want.
 */
static void fails_with(const char *text, size_t len, int code, const char *want) {
    json_t *out = (json_t *)1;
    flow_error_t err = {0};
    int rc = flow_yaml_decode(text, len, &out, &err);
    ck_assert_msg(rc == code, "%.60s: rc %d, not %d (%s)", text, rc, code,
                  err.message ? err.message : "");
    ck_assert_ptr_null(out);
    ck_assert_int_eq(err.code, code);
    ck_assert_ptr_nonnull(err.message);
    if (want[0] == '*')
        ck_assert_msg(strstr(err.message, want + 1) != NULL, "%s: not in \"%s\"", want + 1,
                      err.message);
    else
        ck_assert_msg(strncmp(err.message, want, strlen(want)) == 0,
                      "\"%s\" does not start with \"%s\"", err.message, want);
    flow_error_clear(&err);
}

static const struct {
    const char *yaml;
    const char *json;
} scalar_cases[] = {
    {"v: null", "{\"v\": null}"},
    {"v: Null", "{\"v\": null}"},
    {"v: NULL", "{\"v\": null}"},
    {"v: ~", "{\"v\": null}"},
    {"v:", "{\"v\": null}"},
    {"v: nULL", "{\"v\": \"nULL\"}"},
    {"v: true", "{\"v\": true}"},
    {"v: True", "{\"v\": true}"},
    {"v: FALSE", "{\"v\": false}"},
    {"v: yes", "{\"v\": \"yes\"}"}, /* YAML 1.1's booleans are strings in 1.2 */
    {"v: on", "{\"v\": \"on\"}"},
    {"v: 42", "{\"v\": 42}"},
    {"v: -17", "{\"v\": -17}"},
    {"v: +8", "{\"v\": 8}"},
    {"v: 0o17", "{\"v\": 15}"},
    {"v: 0x1F", "{\"v\": 31}"},
    {"v: 0x", "{\"v\": \"0x\"}"},
    {"v: 9223372036854775807", "{\"v\": 9223372036854775807}"},
    {"v: 99999999999999999999", "{\"v\": 1e20}"},
    {"v: 1.5", "{\"v\": 1.5}"},
    {"v: -.5", "{\"v\": -0.5}"},
    {"v: 2.", "{\"v\": 2.0}"},
    {"v: 1e3", "{\"v\": 1000.0}"},
    {"v: 6.02E+23", "{\"v\": 6.02e23}"},
    {"v: 1e", "{\"v\": \"1e\"}"},
    {"v: .", "{\"v\": \".\"}"},
    {"v: .inf", "{\"v\": \".inf\"}"},
    {"v: .nan", "{\"v\": \".nan\"}"},
    {"v: 1e999", "{\"v\": \"1e999\"}"},
    {"v: 1_000", "{\"v\": \"1_000\"}"},
    {"v: 12abc", "{\"v\": \"12abc\"}"},
    {"v: \"42\"", "{\"v\": \"42\"}"},
    {"v: 'true'", "{\"v\": \"true\"}"},
    {"v: ''", "{\"v\": \"\"}"},
    {"v: !!str 42", "{\"v\": \"42\"}"},
    {"v: ! 42", "{\"v\": \"42\"}"},
    {"v: !!int \"42\"", "{\"v\": 42}"},
    {"v: \"a\\tb\\u00e9\"", "{\"v\": \"a\\tb\\u00e9\"}"},
    {"v: \"nul\\0in\"", "{\"v\": \"nul\\u0000in\"}"},
    {"v: search the web", "{\"v\": \"search the web\"}"},
    {"1: one\ntrue: yes\nnull: x", "{\"1\": \"one\", \"true\": \"yes\", \"null\": \"x\"}"},
};

START_TEST(scalars_follow_the_core_schema) {
    decodes_to(scalar_cases[_i].yaml, scalar_cases[_i].json);
}
END_TEST

START_TEST(block_and_flow_styles) {
    decodes_to("a: 1\nb:\n  - x\n  - y: 2\n    z: [1, 2, {k: v}]\nc: {d: e, f: [g]}\n",
               "{\"a\": 1, \"b\": [\"x\", {\"y\": 2, \"z\": [1, 2, {\"k\": \"v\"}]}], \"c\": "
               "{\"d\": \"e\", \"f\": [\"g\"]}}");
    decodes_to("- 1\n- - 2\n  - 3\n-\n", "[1, [2, 3], null]");
    decodes_to("[]", "[]");
    decodes_to("{}", "{}");
    decodes_to("just text", "\"just text\"");
    decodes_to("7", "7");
    decodes_to("--- \nk: v\n...\n", "{\"k\": \"v\"}");
    decodes_to("# only a comment\n", "null");
    decodes_to("", "null");
    /* key order is kept */
    decodes_to("z: 1\na: 2\nm: 3", "{\"z\": 1, \"a\": 2, \"m\": 3}");
}
END_TEST

/* The shape of PocketFlow's agent: a literal block, a plain action, a folded block. */
START_TEST(multi_line_scalars) {
    const char *answer = "thinking: |\n"
                         "  The question asks for 2024 news.\n"
                         "  I should search.\n"
                         "action: search\n"
                         "reason: >\n"
                         "  folded lines\n"
                         "  become one\n"
                         "\n"
                         "  paragraph\n"
                         "search_query: \"nobel prize 2024\"\n"
                         "plain: a plain scalar\n"
                         "  over two lines\n"
                         "keep: |+\n"
                         "  kept\n"
                         "\n"
                         "strip: |-\n"
                         "  stripped\n";
    decodes_to(
        answer,
        "{\"thinking\": \"The question asks for 2024 news.\\nI should search.\\n\","
        " \"action\": \"search\", \"reason\": \"folded lines become one\\nparagraph\\n\","
        " \"search_query\": \"nobel prize 2024\", \"plain\": \"a plain scalar over two lines\","
        " \"keep\": \"kept\\n\\n\", \"strip\": \"stripped\"}");
}
END_TEST

START_TEST(aliases_are_copies) {
    decodes_to("base: &b {x: 1, l: [1, 2]}\nother: *b\nname: &n bob\nagain: *n\n",
               "{\"base\": {\"x\": 1, \"l\": [1, 2]}, \"other\": {\"x\": 1, \"l\": [1, 2]}, "
               "\"name\": \"bob\","
               " \"again\": \"bob\"}");
    /* an alias of a scalar may be a key */
    decodes_to("k: &k key\n*k : v\n", "{\"k\": \"key\", \"key\": \"v\"}");
    json_t *out = NULL;
    const char *text = "a: &a [1]\nb: *a\n";
    ck_assert_int_eq(flow_yaml_decode(text, strlen(text), &out, NULL), 0);
    ck_assert_ptr_ne(json_object_get(out, "a"),
                     json_object_get(out, "b")); /* not the same value twice */
    json_decref(out);
}
END_TEST

START_TEST(errors_name_line_and_column) {
    const char *t1 = "a: 1\nb: [1, 2\n";
    fails_with(t1, strlen(t1), FLOW_EINVAL, "line 3, column 1: ");
    const char *t2 = "a: b: c\n";
    fails_with(t2, strlen(t2), FLOW_EINVAL, "line 1, column 5: mapping values are not allowed");
    const char *t3 = "a: 1\na: 2\n";
    fails_with(t3, strlen(t3), FLOW_EINVAL,
               "line 2, column 1: the key \"a\" is already in this mapping");
    const char *t4 = "? [1, 2]\n: v\n";
    fails_with(t4, strlen(t4), FLOW_EINVAL,
               "line 1, column 3: a mapping key must be a scalar, not a sequence");
    const char *t5 = "a: 1\n---\nb: 2\n";
    fails_with(t5, strlen(t5), FLOW_EINVAL,
               "line 2, column 1: a second YAML document: only one is read");
    const char *t6 = "a: *nope\n";
    fails_with(t6, strlen(t6), FLOW_EINVAL,
               "line 1, column 4: no anchor &nope before the alias *nope");
    const char *t7 = "a: &x [1, *x]\n";
    fails_with(t7, strlen(t7), FLOW_EINVAL,
               "line 1, column 11: the alias *x is inside its own anchor");
    const char *t8 = "a: \"\xff\"\n";
    fails_with(t8, strlen(t8), FLOW_EINVAL, "line 1, column 5: ");
    const char *t9 = "\tx: 1\n";
    fails_with(t9, strlen(t9), FLOW_EINVAL, "line 1, column 1: ");
}
END_TEST

START_TEST(nesting_is_capped) {
    char deep[2 * FLOW_YAML_MAX_DEPTH + 8];
    size_t n = 0;
    for (int i = 0; i < FLOW_YAML_MAX_DEPTH; i++)
        deep[n++] = '[';
    for (int i = 0; i < FLOW_YAML_MAX_DEPTH; i++)
        deep[n++] = ']';
    json_t *out = NULL;
    ck_assert_int_eq(flow_yaml_decode(deep, n, &out, NULL), 0); /* exactly the cap: fine */
    json_decref(out);
    char deeper[2 * FLOW_YAML_MAX_DEPTH + 8];
    n = 0;
    for (int i = 0; i <= FLOW_YAML_MAX_DEPTH; i++)
        deeper[n++] = '[';
    for (int i = 0; i <= FLOW_YAML_MAX_DEPTH; i++)
        deeper[n++] = ']';
    fails_with(deeper, n, FLOW_ETOOBIG, "*nested deeper than 64 levels");
    /* an alias cannot take a value past the cap either */
    const char *t = "a: &a [[[[[[[[[[1]]]]]]]]]]\n";
    ck_assert_int_eq(flow_yaml_decode(t, strlen(t), &out, NULL), 0);
    json_decref(out);
    char text[4096];
    n = (size_t)snprintf(text, sizeof text, "a: &a [[[[[[[[[[1]]]]]]]]]]\nb: ");
    for (int i = 0; i < FLOW_YAML_MAX_DEPTH - 6; i++)
        text[n++] = '[';
    n += (size_t)snprintf(text + n, sizeof text - n, "*a");
    for (int i = 0; i < FLOW_YAML_MAX_DEPTH - 6; i++)
        text[n++] = ']';
    fails_with(text, n, FLOW_ETOOBIG, "*nested deeper than 64 levels");
}
END_TEST

/* Nine levels of ten aliases each would be a billion strings: it stops at the node cap. */
START_TEST(billion_laughs_stops_at_the_cap) {
    const char *lol =
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
        "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
        "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
        "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
        "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    fails_with(lol, strlen(lol), FLOW_ETOOBIG,
               "*more than 100000 values (aliases count as copies)");
    /* many small values in a plain list stop at the same cap */
    size_t cap = (size_t)FLOW_YAML_MAX_NODES * 3 + 16;
    char *big = malloc(cap);
    ck_assert_ptr_nonnull(big);
    size_t n = 0;
    big[n++] = '[';
    for (int i = 0; i <= FLOW_YAML_MAX_NODES; i++) {
        big[n++] = '1';
        big[n++] = ',';
    }
    big[n++] = ']';
    fails_with(big, n, FLOW_ETOOBIG, "*more than 100000 values");
    free(big);
}
END_TEST

START_TEST(bytes_are_capped) {
    /* a 1 MiB string used by 20 aliases is 21 MiB of values */
    size_t one = (size_t)1 << 20;
    size_t cap = one + 512;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    size_t n = (size_t)snprintf(text, cap, "a: &a ");
    memset(text + n, 'x', one);
    n += one;
    n += (size_t)snprintf(text + n, cap - n, "\nb: [");
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(text + n, cap - n, "*a,");
    n += (size_t)snprintf(text + n, cap - n, "]\n");
    fails_with(text, n, FLOW_ETOOBIG, "*bytes of values (aliases count as copies)");
    free(text);
    json_t *out = NULL;
    flow_error_t err = {0};
    ck_assert_int_eq(flow_yaml_decode("x", FLOW_YAML_MAX_BYTES + 1, &out, &err), FLOW_ETOOBIG);
    ck_assert_ptr_null(out);
    flow_error_clear(&err);
}
END_TEST

START_TEST(bad_arguments) {
    json_t *out = NULL;
    flow_error_t err = {0};
    ck_assert_int_eq(flow_yaml_decode(NULL, 0, &out, &err), FLOW_EINVAL);
    flow_error_clear(&err);
    ck_assert_int_eq(flow_yaml_decode("a", 1, NULL, NULL), FLOW_EINVAL);
    size_t s, l;
    ck_assert_int_eq(flow_fence_inner(NULL, 0, &s, &l), FLOW_EINVAL);
    ck_assert_int_eq(flow_fence_inner("x", 1, NULL, &l), FLOW_EINVAL);
}
END_TEST

/* Text need not end with a NUL: only len bytes are read. */
START_TEST(reads_only_len_bytes) {
    const char *text = "a: 1\nb: 2";
    json_t *out = NULL;
    ck_assert_int_eq(flow_yaml_decode(text, 4, &out, NULL), 0);
    tu_assert_json("first line", out, "{\"a\": 1}");
    json_decref(out);
}
END_TEST

static const struct {
    const char *text;
    int found;
    const char *inner;
} fence_cases[] = {
    {"```yaml\naction: search\nquery: x\n```", 1, "action: search\nquery: x"},
    {"Sure! Here it is:\n```yaml\na: 1\n```\nAnything else?", 1, "a: 1"},
    {"```\nplain\n```", 1, "plain"},
    {"```json {\"a\": 1}```", 1, "{\"a\": 1}"},
    {"```{\"a\": 1}```", 1, "{\"a\": 1}"},
    {"```hello```", 1, "hello"},
    {"```yaml\r\na: 1\r\n```", 1, "a: 1"},
    {"````md\nhas ``` inside\n````", 1, "has ``` inside"},
    {"```yaml\ncut: short", 1, "cut: short"},
    {"```yaml\n```", 1, ""},
    {"`inline` and ``two``\n```\nx\n```", 1, "x"},
    {"first\n```a\n1\n```\n```b\n2\n```", 1, "1"},
    {"no fence at all", 0, "no fence at all"},
    {"`` not three ``", 0, "`` not three ``"},
    {"", 0, ""},
};

START_TEST(fences) {
    const char *t = fence_cases[_i].text;
    size_t start = 99, len = 99;
    int rc = flow_fence_inner(t, strlen(t), &start, &len);
    ck_assert_int_eq(rc, fence_cases[_i].found);
    ck_assert_uint_le(start + len, strlen(t));
    char got[256];
    snprintf(got, sizeof got, "%.*s", (int)len, t + start);
    ck_assert_str_eq(got, fence_cases[_i].inner);
}
END_TEST

/* The two together, as the llm node's "parse": "yaml" uses them. */
START_TEST(fence_then_yaml) {
    const char *answer =
        "I will search.\n```yaml\nthinking: |\n  need facts\naction: search\n```\n";
    size_t start, len;
    ck_assert_int_eq(flow_fence_inner(answer, strlen(answer), &start, &len), 1);
    json_t *out = NULL;
    ck_assert_int_eq(flow_yaml_decode(answer + start, len, &out, NULL), 0);
    tu_assert_json("decision", out, "{\"thinking\": \"need facts\\n\", \"action\": \"search\"}");
    json_decref(out);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *decode_suite(void) {
    Suite *s = suite_create("decode");
    TCase *tc = tcase_create("yaml");
    tcase_add_loop_test(tc, scalars_follow_the_core_schema, 0, N(scalar_cases));
    tcase_add_test(tc, block_and_flow_styles);
    tcase_add_test(tc, multi_line_scalars);
    tcase_add_test(tc, aliases_are_copies);
    tcase_add_test(tc, errors_name_line_and_column);
    tcase_add_test(tc, nesting_is_capped);
    tcase_add_test(tc, billion_laughs_stops_at_the_cap);
    tcase_add_test(tc, bytes_are_capped);
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, reads_only_len_bytes);
    suite_add_tcase(s, tc);
    tc = tcase_create("fence");
    tcase_add_loop_test(tc, fences, 0, N(fence_cases));
    tcase_add_test(tc, fence_then_yaml);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(decode_suite());
}
