/* test_server_patch.c: the JSON Patches of a job's shared store (server/patch.h): made from the keys
 * a step wrote, applied again, with keys that need RFC 6901 escaping and removals. */
#include <stdlib.h>
#include <string.h>

#include "patch.h"
#include "support/json_util.h"

static json_t *parse(const char *text) {
    json_t *v = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(v);
    return v;
}

/* The patch from before to after given the keys written, checked to turn before into after. */
static char *patch_of(const char *before, const char *after, const char *touched) {
    json_t *b = parse(before), *a = parse(after), *t = touched ? parse(touched) : NULL;
    flowd_patcher_t p;
    flow_buf_t out;
    ck_assert_int_eq(flowd_patcher_init(&p, b), 0);
    flow_buf_init(&out, 0);
    ck_assert_int_ge(flowd_patch_make(&p, a, t, &out), 0);
    char *text = flow_buf_take(&out, NULL);
    json_t *patch = parse(text);
    char why[200];
    ck_assert_int_eq(flowd_patch_apply(b, patch, why, sizeof why), 0);
    ck_assert_msg(json_equal(a, b), "%s did not give %s", text, after);
    json_decref(patch);
    json_decref(a);
    json_decref(b);
    json_decref(t);
    flowd_patcher_free(&p);
    return text;
}

START_TEST(test_only_the_keys_written) {
    char *t = patch_of("{\"big\":[1,2,3],\"n\":1}", "{\"big\":[1,2,3],\"n\":2}", "{\"n\":true}");
    ck_assert_str_eq(t, "[{\"op\":\"add\",\"path\":\"/n\",\"value\":2}]");
    free(t);
    t = patch_of("{\"a\":1}", "{\"a\":1}", "{}");
    ck_assert_str_eq(t, "[]");
    free(t);
}
END_TEST

START_TEST(test_escaped_keys_and_removals) {
    char *t = patch_of("{\"a/b\":1,\"x\":0}", "{\"m~n\":{\"k\":[true]},\"x\":0}",
                       "{\"a/b\":true,\"m~n\":true,\"never\":true}");
    ck_assert_str_eq(t, "[{\"op\":\"remove\",\"path\":\"/a~1b\"},"
                        "{\"op\":\"add\",\"path\":\"/m~0n\",\"value\":{\"k\":[true]}}]");
    free(t);
    /* any key (a C node): removals and every key */
    t = patch_of("{\"gone\":1,\"kept\":2}", "{\"kept\":3,\"new\":4}", NULL);
    ck_assert_str_eq(t, "[{\"op\":\"remove\",\"path\":\"/gone\"},"
                        "{\"op\":\"add\",\"path\":\"/kept\",\"value\":3},"
                        "{\"op\":\"add\",\"path\":\"/new\",\"value\":4}]");
    free(t);
}
END_TEST

START_TEST(test_the_keys_are_remembered_between_patches) {
    json_t *s = parse("{}");
    flowd_patcher_t p;
    flow_buf_t out;
    ck_assert_int_eq(flowd_patcher_init(&p, s), 0);
    json_t *t = parse("{\"k\":true}");
    json_object_set_new(s, "k", json_integer(1));
    flow_buf_init(&out, 0);
    ck_assert_int_eq(flowd_patch_make(&p, s, t, &out), 1);
    flow_buf_free(&out);
    json_object_del(s, "k");
    flow_buf_init(&out, 0);
    ck_assert_int_eq(flowd_patch_make(&p, s, t, &out), 1);
    char *text = flow_buf_take(&out, NULL);
    ck_assert_str_eq(text, "[{\"op\":\"remove\",\"path\":\"/k\"}]");
    free(text);
    flow_buf_init(&out, 0);
    ck_assert_int_eq(flowd_patch_make(&p, s, t, &out), 0); /* gone already: nothing */
    flow_buf_free(&out);
    flowd_patcher_free(&p);
    json_decref(t);
    json_decref(s);
}
END_TEST

START_TEST(test_apply_rfc6902_examples) {
    json_t *doc = parse("{\"foo\":[\"bar\",\"baz\"],\"a~b\":{\"c/d\":1}}");
    json_t *patch = parse("[{\"op\":\"add\",\"path\":\"/foo/1\",\"value\":\"qux\"},"
                          "{\"op\":\"replace\",\"path\":\"/a~0b/c~1d\",\"value\":2},"
                          "{\"op\":\"add\",\"path\":\"/foo/-\",\"value\":\"end\"},"
                          "{\"op\":\"remove\",\"path\":\"/foo/0\"}]");
    char why[200];
    ck_assert_int_eq(flowd_patch_apply(doc, patch, why, sizeof why), 0);
    json_t *want = parse("{\"foo\":[\"qux\",\"baz\",\"end\"],\"a~b\":{\"c/d\":2}}");
    ck_assert(json_equal(doc, want));
    json_decref(patch);
    /* what it does not do, or cannot find */
    const char *bad[] = {"[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/b\"}]",
                         "[{\"op\":\"move\",\"from\":\"/foo\",\"path\":\"/foo/0\"}]",
                         "[{\"op\":\"copy\",\"path\":\"/b\"}]",
                         "[{\"op\":\"test\",\"path\":\"/foo/0\",\"value\":\"bar\"}]",
                         "[{\"op\":\"test\",\"path\":\"/zzz\",\"value\":1}]",
                         "[{\"op\":\"jump\",\"path\":\"/foo\"}]", "[1]",
                         "[{\"op\":\"remove\",\"path\":\"/nothing\"}]",
                         "[{\"op\":\"replace\",\"path\":\"/foo/7\",\"value\":1}]",
                         "[{\"op\":\"add\",\"path\":\"/no/such\",\"value\":1}]",
                         "[{\"op\":\"add\",\"path\":\"/x~2\",\"value\":1}]", "{}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        patch = parse(bad[i]);
        ck_assert_int_eq(flowd_patch_apply(doc, patch, why, sizeof why), FLOW_EINVAL);
        ck_assert(why[0] != '\0');
        json_decref(patch);
    }
    json_decref(want);
    json_decref(doc);
}
END_TEST

/* RFC 6902's move, copy and test (its appendix A examples), and whole documents. */
START_TEST(test_apply_move_copy_and_test) {
    json_t *doc = parse("{\"foo\":{\"bar\":\"baz\",\"waldo\":\"fred\"},"
                        "\"qux\":{\"corge\":\"grault\"},\"arr\":[\"all\",\"grass\",\"cows\",\"eat\"]}");
    json_t *patch = parse("[{\"op\":\"move\",\"from\":\"/foo/waldo\",\"path\":\"/qux/thud\"},"
                          "{\"op\":\"move\",\"from\":\"/arr/1\",\"path\":\"/arr/3\"},"
                          "{\"op\":\"copy\",\"from\":\"/qux\",\"path\":\"/copy\"},"
                          "{\"op\":\"add\",\"path\":\"/copy/x\",\"value\":1},"
                          "{\"op\":\"move\",\"from\":\"/foo\",\"path\":\"/foo\"},"
                          "{\"op\":\"test\",\"path\":\"/arr\",\"value\":[\"all\",\"cows\",\"eat\",\"grass\"]},"
                          "{\"op\":\"test\",\"path\":\"/qux/thud\",\"value\":\"fred\"}]");
    char why[200];
    ck_assert_msg(flowd_patch_apply(doc, patch, why, sizeof why) == 0, "%s", why);
    json_t *want = parse("{\"foo\":{\"bar\":\"baz\"},\"qux\":{\"corge\":\"grault\",\"thud\":\"fred\"},"
                         "\"arr\":[\"all\",\"cows\",\"eat\",\"grass\"],"
                         "\"copy\":{\"corge\":\"grault\",\"thud\":\"fred\",\"x\":1}}");
    ck_assert(json_equal(doc, want));
    json_decref(patch);
    json_decref(want);
    /* a failed test names the operation and says why */
    patch = parse("[{\"op\":\"add\",\"path\":\"/n\",\"value\":1},"
                  "{\"op\":\"test\",\"path\":\"/n\",\"value\":2}]");
    ck_assert_int_eq(flowd_patch_apply(doc, patch, why, sizeof why), FLOW_EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "operation 1 (test /n)"));
    ck_assert_ptr_nonnull(strstr(why, "not the one it tests for"));
    json_decref(patch);
    /* the whole store replaced: by an object only */
    patch = parse("[{\"op\":\"replace\",\"path\":\"\",\"value\":{\"only\":true}}]");
    ck_assert_int_eq(flowd_patch_apply(doc, patch, why, sizeof why), 0);
    ck_assert_uint_eq(json_object_size(doc), 1);
    json_decref(patch);
    patch = parse("[{\"op\":\"add\",\"path\":\"\",\"value\":[]}]");
    ck_assert_int_eq(flowd_patch_apply(doc, patch, why, sizeof why), FLOW_EINVAL);
    json_decref(patch);
    json_decref(doc);
}
END_TEST

START_TEST(test_replay_a_range_of_steps) {
    json_t *hist = parse("[{\"seq\":1,\"patch\":[{\"op\":\"add\",\"path\":\"/n\",\"value\":1}]},"
                         "{\"seq\":2,\"patch\":[{\"op\":\"add\",\"path\":\"/n\",\"value\":2}]},"
                         "{\"seq\":3,\"patch\":[{\"op\":\"remove\",\"path\":\"/n\"}]},"
                         "{\"seq\":4}]");
    json_t *s = parse("{}");
    char why[200];
    ck_assert_int_eq(flowd_patch_replay(s, hist, 0, 2, why, sizeof why), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(s, "n")), 2);
    ck_assert_int_eq(flowd_patch_replay(s, hist, 2, 3, why, sizeof why), 0);
    ck_assert_uint_eq(json_object_size(s), 0);
    ck_assert_int_eq(flowd_patch_replay(s, hist, 3, 4, why, sizeof why), FLOW_ENOTFOUND);
    ck_assert_int_eq(flowd_patch_replay(s, hist, 3, 9, why, sizeof why), FLOW_ENOTFOUND);
    json_decref(s);
    json_decref(hist);
}
END_TEST

static Suite *patch_suite(void) {
    Suite *s = suite_create("server_patch");
    TCase *tc = tcase_create("patch");
    tcase_add_test(tc, test_only_the_keys_written);
    tcase_add_test(tc, test_escaped_keys_and_removals);
    tcase_add_test(tc, test_the_keys_are_remembered_between_patches);
    tcase_add_test(tc, test_apply_rfc6902_examples);
    tcase_add_test(tc, test_apply_move_copy_and_test);
    tcase_add_test(tc, test_replay_a_range_of_steps);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(patch_suite());
}
