/* test_pointer.c: JSON Pointer (flow/pointer.h), starting from RFC 6901's own examples. */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "flow.h"
#include "flow/pointer.h"
#include "support/json_util.h"

/* RFC 6901, section 5. */
static const char *RFC_DOC = "{\"foo\": [\"bar\", \"baz\"], \"\": 0, \"a/b\": 1, \"c%d\": 2, \"e^f\": 3,"
                             " \"g|h\": 4, \"i\\\\j\": 5, \"k\\\"l\": 6, \" \": 7, \"m~n\": 8}";

static const struct {
    const char *ptr;
    const char *want;
} rfc_cases[] = {
    {"/foo", "[\"bar\", \"baz\"]"},
    {"/foo/0", "\"bar\""},
    {"/", "0"},
    {"/a~1b", "1"},
    {"/c%d", "2"},
    {"/e^f", "3"},
    {"/g|h", "4"},
    {"/i\\j", "5"},
    {"/k\"l", "6"},
    {"/ ", "7"},
    {"/m~0n", "8"},
    {"/foo/1", "\"baz\""},
};

START_TEST(get_rfc_examples) {
    json_t *doc = tu_json(RFC_DOC);
    json_t *v = NULL;
    ck_assert_int_eq(flow_pointer_get(doc, rfc_cases[_i].ptr, &v), 0);
    tu_assert_json(rfc_cases[_i].ptr, v, rfc_cases[_i].want);
    json_decref(doc);
}
END_TEST

START_TEST(get_empty_pointer_is_the_whole_document) {
    json_t *doc = tu_json(RFC_DOC);
    json_t *v = NULL;
    ck_assert_int_eq(flow_pointer_get(doc, "", &v), 0);
    ck_assert_ptr_eq(v, doc);
    json_decref(doc);
}
END_TEST

START_TEST(get_result_is_borrowed) {
    json_t *doc = tu_json("{\"a\": {\"b\": [1]}}");
    json_t *v = NULL;
    ck_assert_int_eq(flow_pointer_get(doc, "/a/b", &v), 0);
    ck_assert_ptr_eq(v, json_object_get(json_object_get(doc, "a"), "b"));
    ck_assert_int_eq(v->refcount, 1);
    json_decref(doc);
}
END_TEST

/* Well-formed pointers that name nothing in RFC_DOC. */
static const char *not_found_cases[] = {
    "/foo/2",     /* past the end */
    "/foo/-",     /* the element after the last never exists */
    "/foo/01",    /* leading zero: not an index */
    "/foo/00",
    "/foo/+1",
    "/foo/-1",
    "/foo/1e0",
    "/foo/x",
    "/foo/",      /* an empty token on an array */
    "/foo/18446744073709551616", /* past SIZE_MAX */
    "/nope",
    "/FOO",       /* names are case-sensitive */
    "/foo/0/x",   /* below a string */
    "/a~1b/c",    /* below a number */
    "/a/b",       /* "~1" is "/", a plain "/" separates: there is no member "a" */
    "//",
};

START_TEST(get_not_found) {
    json_t *doc = tu_json(RFC_DOC);
    json_t *v = doc;
    ck_assert_int_eq(flow_pointer_get(doc, not_found_cases[_i], &v), FLOW_ENOTFOUND);
    ck_assert_ptr_null(v);
    json_decref(doc);
}
END_TEST

/* Malformed whatever the document: the pointer and the offset checkn blames. */
static const struct {
    const char *ptr;
    size_t bad;
} malformed_cases[] = {
    {"foo", 0},            /* must start with "/" */
    {"#/foo", 0},          /* URI fragments are not supported */
    {" /foo", 0},
    {"/~", 1},             /* "~" must be followed by 0 or 1 */
    {"/~2", 1},
    {"/m~n", 2},
    {"/foo/bar~", 8},
    {"/a~01~x", 5},
    {"/\xff", 1},          /* not UTF-8 */
    {"/ok/\xc0\xaf", 4},   /* an overlong "/" */
    {"/\xed\xa0\x80", 1},  /* a UTF-16 surrogate */
    {"/\xf4\x90\x80\x80", 1}, /* past U+10FFFF */
    {"/\xe2\x82", 1},      /* cut short */
};

START_TEST(malformed_pointers) {
    const char *ptr = malformed_cases[_i].ptr;
    json_t *doc = tu_json(RFC_DOC);
    json_t *v = doc;
    size_t bad = 999;

    ck_assert_int_eq(flow_pointer_check(ptr), FLOW_EINVAL);
    ck_assert_int_eq(flow_pointer_checkn(ptr, strlen(ptr), &bad), FLOW_EINVAL);
    ck_assert_uint_eq(bad, malformed_cases[_i].bad);
    ck_assert_int_eq(flow_pointer_get(doc, ptr, &v), FLOW_EINVAL);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(flow_pointer_set(doc, ptr, json_true()), FLOW_EINVAL);
    ck_assert_int_eq(flow_pointer_remove(doc, ptr), FLOW_EINVAL);
    tu_assert_json("unchanged", doc, RFC_DOC);
    json_decref(doc);
}
END_TEST

START_TEST(wellformed_pointers_check) {
    ck_assert_int_eq(flow_pointer_check(""), 0);
    ck_assert_int_eq(flow_pointer_check("/"), 0);
    ck_assert_int_eq(flow_pointer_check("/a~0~1b/0/-"), 0);
    ck_assert_int_eq(flow_pointer_check("/caf\xc3\xa9/\xf0\x9f\x8d\xb2"), 0);
    ck_assert_int_eq(flow_pointer_check(NULL), FLOW_EINVAL);
}
END_TEST

START_TEST(getn_reads_only_len_bytes) {
    json_t *doc = tu_json(RFC_DOC);
    json_t *v = NULL;
    ck_assert_int_eq(flow_pointer_getn(doc, "/foo/1/xyz", 6, &v), 0);
    tu_assert_json("/foo/1", v, "\"baz\"");
    ck_assert_int_eq(flow_pointer_getn(doc, "/m~0n~", 5, &v), 0);
    tu_assert_json("/m~0n", v, "8");
    json_decref(doc);
}
END_TEST

START_TEST(get_bad_arguments) {
    json_t *v = NULL;
    ck_assert_int_eq(flow_pointer_get(NULL, "", &v), FLOW_EINVAL);
    json_t *doc = tu_json("{}");
    ck_assert_int_eq(flow_pointer_get(doc, "", NULL), FLOW_EINVAL);
    json_decref(doc);
}
END_TEST

/* flow_pointer_set: the document before, the pointer, the value, then the code and the document after
 * (unchanged on error). */
static const struct {
    const char *before, *ptr, *value;
    int rc;
    const char *after;
} set_cases[] = {
    {"{}", "/a", "1", 0, "{\"a\": 1}"},
    {"{\"a\": 1}", "/a", "[2]", 0, "{\"a\": [2]}"},
    {"{}", "/a/b/c", "true", 0, "{\"a\": {\"b\": {\"c\": true}}}"},
    {"{\"a\": {\"x\": 0}}", "/a/b/c", "1", 0, "{\"a\": {\"x\": 0, \"b\": {\"c\": 1}}}"},
    {"{}", "/a~1b/m~0n", "1", 0, "{\"a/b\": {\"m~n\": 1}}"},
    {"{}", "/", "null", 0, "{\"\": null}"},
    {"{\"a\": {}}", "/a/0", "1", 0, "{\"a\": {\"0\": 1}}"},
    {"{}", "/x/-", "1", 0, "{\"x\": [1]}"}, /* "-" under a new member: a new array */
    {"{}", "/x/-/y", "1", 0, "{\"x\": [{\"y\": 1}]}"},
    {"{}", "/x/y/-", "1", 0, "{\"x\": {\"y\": [1]}}"},
    {"{\"x\": {}}", "/x/-", "1", 0, "{\"x\": {\"-\": 1}}"}, /* an object's member "-" */
    {"{\"a\": [1, 2]}", "/a/-", "3", 0, "{\"a\": [1, 2, 3]}"},
    {"{\"a\": [1, 2]}", "/a/0", "9", 0, "{\"a\": [9, 2]}"},
    {"{\"a\": [1, 2]}", "/a/-/b", "3", 0, "{\"a\": [1, 2, {\"b\": 3}]}"},
    {"{\"a\": [{}]}", "/a/0/b/c", "3", 0, "{\"a\": [{\"b\": {\"c\": 3}}]}"},
    {"{\"a\": [1, 2]}", "/a/2", "3", FLOW_ENOTFOUND, NULL}, /* elements are only appended */
    {"{\"a\": [1, 2]}", "/a/01", "3", FLOW_ENOTFOUND, NULL},
    {"{\"a\": []}", "/a/0/b", "1", FLOW_ENOTFOUND, NULL},
    {"{\"a\": []}", "/a/x/b", "1", FLOW_ENOTFOUND, NULL},
    {"{\"a\": 5}", "/a/b", "1", FLOW_EINVAL, NULL}, /* a number has no members */
    {"{\"a\": \"s\"}", "/a/b/c", "1", FLOW_EINVAL, NULL},
    {"{}", "", "1", FLOW_EINVAL, NULL}, /* the root is the caller's */
    {"{}", "a", "1", FLOW_EINVAL, NULL},
    {"{}", "/a/b~2/c", "1", FLOW_EINVAL, NULL}, /* nothing created before the error */
};

START_TEST(set_cases_table) {
    json_t *doc = tu_json(set_cases[_i].before);
    json_t *value = tu_json(set_cases[_i].value);
    ck_assert_int_eq(flow_pointer_set(doc, set_cases[_i].ptr, value), set_cases[_i].rc);
    tu_assert_json(set_cases[_i].ptr, doc,
                   set_cases[_i].after != NULL ? set_cases[_i].after : set_cases[_i].before);
    json_decref(doc); /* value was stolen: the leak checkers fail this test if it was not released */
}
END_TEST

START_TEST(set_steals_the_value) {
    json_t *doc = tu_json("{}");
    json_t *value = tu_json("{\"k\": 1}");
    json_incref(value);
    ck_assert_int_eq(flow_pointer_set(doc, "/v", value), 0);
    ck_assert_ptr_eq(json_object_get(doc, "v"), value);
    ck_assert_int_eq(value->refcount, 2); /* ours and doc's */
    json_incref(value);
    ck_assert_int_eq(flow_pointer_set(doc, "/v/k/x", value), FLOW_EINVAL);
    ck_assert_int_eq(value->refcount, 2); /* stolen on error too */
    json_decref(value);
    json_decref(doc);
}
END_TEST

START_TEST(set_refuses_root_inside_itself) {
    json_t *doc = tu_json("{\"a\": {}}");
    json_t *a = json_object_get(doc, "a");
    ck_assert_int_eq(flow_pointer_set(doc, "/b", json_incref(doc)), FLOW_EINVAL);
    ck_assert_int_eq(flow_pointer_set(a, "/a", json_incref(a)), FLOW_EINVAL);
    ck_assert_int_eq(doc->refcount, 1);
    ck_assert_int_eq(a->refcount, 1);
    ck_assert_int_eq(flow_pointer_set(doc, "/a", NULL), FLOW_EINVAL);
    ck_assert_int_eq(flow_pointer_set(NULL, "/a", json_true()), FLOW_EINVAL);
    tu_assert_json("unchanged", doc, "{\"a\": {}}");
    json_decref(doc);
}
END_TEST

/* A token whose unescaped form does not fit the stack buffer goes through the heap. */
START_TEST(long_escaped_keys) {
    char ptr[1 + 2 * 300 + 1];
    char key[300 + 1];
    ptr[0] = '/';
    for (int i = 0; i < 300; i++) {
        memcpy(ptr + 1 + 2 * i, i % 2 ? "~1" : "~0", 2);
        key[i] = i % 2 ? '/' : '~';
    }
    ptr[sizeof ptr - 1] = '\0';
    key[300] = '\0';

    json_t *doc = tu_json("{}");
    json_t *v = NULL;
    ck_assert_int_eq(flow_pointer_set(doc, ptr, json_integer(7)), 0);
    ck_assert_ptr_nonnull(json_object_get(doc, key));
    ck_assert_int_eq(flow_pointer_get(doc, ptr, &v), 0);
    tu_assert_json("long key", v, "7");
    ck_assert_int_eq(flow_pointer_remove(doc, ptr), 0);
    ck_assert_uint_eq(json_object_size(doc), 0);
    json_decref(doc);
}
END_TEST

static const struct {
    const char *before, *ptr;
    int rc;
    const char *after;
} remove_cases[] = {
    {"{\"a\": 1, \"b\": 2}", "/a", 0, "{\"b\": 2}"},
    {"{\"a/b\": 1, \"b\": 2}", "/a~1b", 0, "{\"b\": 2}"},
    {"{\"a\": [1, 2, 3]}", "/a/1", 0, "{\"a\": [1, 3]}"},
    {"{\"a\": {\"b\": {\"c\": 1}}}", "/a/b/c", 0, "{\"a\": {\"b\": {}}}"},
    {"{\"a\": [1, 2, 3]}", "/a/3", FLOW_ENOTFOUND, NULL},
    {"{\"a\": [1, 2, 3]}", "/a/-", FLOW_ENOTFOUND, NULL},
    {"{\"a\": [1, 2, 3]}", "/a/01", FLOW_ENOTFOUND, NULL},
    {"{\"a\": 1}", "/x", FLOW_ENOTFOUND, NULL},
    {"{\"a\": 1}", "/x/y", FLOW_ENOTFOUND, NULL},
    {"{\"a\": 1}", "/a/y", FLOW_ENOTFOUND, NULL},
    {"{\"a\": 1}", "", FLOW_EINVAL, NULL},
    {"{\"a\": 1}", "/~", FLOW_EINVAL, NULL},
};

START_TEST(remove_cases_table) {
    json_t *doc = tu_json(remove_cases[_i].before);
    ck_assert_int_eq(flow_pointer_remove(doc, remove_cases[_i].ptr), remove_cases[_i].rc);
    tu_assert_json(remove_cases[_i].ptr, doc,
                   remove_cases[_i].after != NULL ? remove_cases[_i].after : remove_cases[_i].before);
    json_decref(doc);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *pointer_suite(void) {
    Suite *s = suite_create("pointer");
    TCase *tc = tcase_create("get");
    tcase_add_loop_test(tc, get_rfc_examples, 0, N(rfc_cases));
    tcase_add_test(tc, get_empty_pointer_is_the_whole_document);
    tcase_add_test(tc, get_result_is_borrowed);
    tcase_add_loop_test(tc, get_not_found, 0, N(not_found_cases));
    tcase_add_loop_test(tc, malformed_pointers, 0, N(malformed_cases));
    tcase_add_test(tc, wellformed_pointers_check);
    tcase_add_test(tc, getn_reads_only_len_bytes);
    tcase_add_test(tc, get_bad_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("set");
    tcase_add_loop_test(tc, set_cases_table, 0, N(set_cases));
    tcase_add_test(tc, set_steals_the_value);
    tcase_add_test(tc, set_refuses_root_inside_itself);
    tcase_add_test(tc, long_escaped_keys);
    suite_add_tcase(s, tc);

    tc = tcase_create("remove");
    tcase_add_loop_test(tc, remove_cases_table, 0, N(remove_cases));
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(pointer_suite());
}
