/* test_server_routes.c: the paths of the route table (server/http_routes.h) matched against
 * request paths: each pattern routes to itself, the arguments point into the path, empty and extra
 * segments match nothing, and a pattern with several arguments (one of them the rest of the path)
 * hands over each. */
#include <string.h>

#include "http_routes.h"
#include "support/json_util.h"

/* url routes to path with the one argument arg (NULL: none). */
static void routes_to(const char *url, flowd_path_t path, const char *arg) {
    flowd_route_args_t args;
    ck_assert_msg(flowd_path_match(url, &args) == path, "%s: not %s", url,
                  flowd_path_pattern(path));
    ck_assert_uint_eq(args.n, arg != NULL);
    if (arg != NULL) {
        ck_assert_uint_eq(args.len[0], strlen(arg));
        ck_assert_int_eq(strncmp(args.s[0], arg, args.len[0]), 0);
        ck_assert(args.s[0] >= url && args.s[0] + args.len[0] <= url + strlen(url));
    }
}

START_TEST(test_each_pattern_routes_to_itself) {
    for (int p = 0; p < FLOWD_P_OTHER; p++) {
        flowd_route_args_t args;
        const char *pattern = flowd_path_pattern((flowd_path_t)p);
        ck_assert_int_eq(flowd_path_match(pattern, &args), p);
    }
    ck_assert_str_eq(flowd_path_pattern(FLOWD_P_OTHER), "other");
    ck_assert_str_eq(flowd_path_pattern(FLOWD_PATHS), "other");
}
END_TEST

START_TEST(test_paths) {
    routes_to("/v1/jobs", FLOWD_P_JOBS, NULL);
    routes_to("/v1/jobs/0123abcd", FLOWD_P_JOB, "0123abcd");
    routes_to("/v1/jobs/x/shared", FLOWD_P_SHARED, "x");
    routes_to("/v1/jobs/x/history", FLOWD_P_HISTORY, "x");
    routes_to("/v1/jobs/x/events", FLOWD_P_EVENTS, "x");
    routes_to("/v1/jobs/x/input", FLOWD_P_INPUT, "x");
    routes_to("/v1/jobs/x/cancel", FLOWD_P_CANCEL, "x");
    routes_to("/v1/flows", FLOWD_P_FLOWS, NULL);
    routes_to("/v1/flows/recipe", FLOWD_P_FLOW, "recipe");
    routes_to("/healthz", FLOWD_P_HEALTHZ, NULL);
    routes_to("/metrics", FLOWD_P_METRICS, NULL);
    routes_to("/v1/key", FLOWD_P_KEY, NULL);
    routes_to("/", FLOWD_P_ROOT, NULL); /* the dashboard's: redirected to /ui/ */
    routes_to("/ui", FLOWD_P_UI, NULL);
    routes_to("/ui/", FLOWD_P_UI_INDEX, NULL);
    routes_to("/ui/app.js", FLOWD_P_UI_ASSET, "app.js");
    static const char *const none[] = {"",
                                       "//",
                                       "/ui//",
                                       "/ui/a/b",
                                       "/v1/key/",
                                       "/v1",
                                       "/v1/jobs/",
                                       "/v1/jobs//shared",
                                       "/v1/jobs/x/",
                                       "/v1/jobs/x/y",
                                       "/v1/jobs/x/shared/a",
                                       "/v1/flows/",
                                       "/v1/flows/a/b",
                                       "/v1/jobsx",
                                       "/healthz/",
                                       "/metricsx",
                                       "/v1/jobs/x/cancelx"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        routes_to(none[i], FLOWD_P_OTHER, NULL);
}
END_TEST

START_TEST(test_several_arguments) {
    static const char pattern[] = "/v1/jobs/{id}/steps/{n}/shared/{pointer...}";
    flowd_route_args_t args;
    ck_assert_int_eq(flowd_pattern_match(pattern, "/v1/jobs/ab/steps/7/shared/a/b/c", &args), 1);
    ck_assert_uint_eq(args.n, 3);
    ck_assert_int_eq(strncmp(args.s[0], "ab", args.len[0]), 0);
    ck_assert_uint_eq(args.len[0], 2);
    ck_assert_int_eq(strncmp(args.s[1], "7", args.len[1]), 0);
    ck_assert_uint_eq(args.len[1], 1);
    ck_assert_str_eq(args.s[2], "a/b/c");
    ck_assert_uint_eq(args.len[2], 5);
    ck_assert_int_eq(flowd_pattern_match(pattern, "/v1/jobs/ab/steps/7/shared/", &args), 0);
    ck_assert_int_eq(flowd_pattern_match(pattern, "/v1/jobs/ab/steps//shared/a", &args), 0);
    ck_assert_int_eq(flowd_pattern_match(pattern, "/v1/jobs/ab/steps/7", &args), 0);
    ck_assert_int_eq(flowd_pattern_match("/a/{x}/{y}", "/a/1/2", &args), 1);
    ck_assert_uint_eq(args.n, 2);
    ck_assert_int_eq(flowd_pattern_match("/a/{x}/{y}", "/a/1/2/3", &args), 0);
    ck_assert_int_eq(flowd_pattern_match("/a/{x", "/a/1", &args), 0); /* not a pattern */
}
END_TEST

static Suite *routes_suite(void) {
    Suite *s = suite_create("server_routes");
    TCase *tc = tcase_create("routes");
    tcase_add_test(tc, test_each_pattern_routes_to_itself);
    tcase_add_test(tc, test_paths);
    tcase_add_test(tc, test_several_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(routes_suite());
}
