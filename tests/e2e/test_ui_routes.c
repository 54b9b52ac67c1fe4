/* test_ui_routes.c: the dashboard's routes over HTTP (server/http_ui.c): / and /ui redirect to
 * /ui/; the page and its files with their Content-Type, the Content-Security-Policy and an ETag
 * that a revalidation answers 304; an unknown file 404; no key needed for them, while GET /v1/key
 * needs one and says who it is (never the key), and says "open" without a key file. The page in a
 * browser: tests/ui/test_ui.py (make ui). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e/e2e.h"

#define ADMIN "fk_test-ui-admin-0123456789abcdef"
#define READ "fk_test-ui-read-0123456789abcdef"

static e2e_server_t srv;

/* The raw answer (status line and headers) of GET path with extra headers (may be ""). */
static char *raw_get(const char *path, const char *extra) {
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n",
                     path, extra);
    char *out = e2e_raw(&srv, req, (size_t)n, 5000);
    ck_assert_ptr_nonnull(out);
    return out;
}

static void assert_has(const char *text, const char *needle) {
    ck_assert_msg(strstr(text, needle) != NULL, "no '%s' in:\n%s", needle, text);
}

START_TEST(test_redirects_and_files) {
    e2e_start(&srv, "--store", "memory:", NULL);
    static const char *const redirected[] = {"/", "/ui"};
    for (size_t i = 0; i < 2; i++) {
        char *a = raw_get(redirected[i], "");
        ck_assert_msg(strncmp(a, "HTTP/1.1 302", 12) == 0, "%s: %s", redirected[i], a);
        assert_has(a, "Location: /ui/\r\n");
        free(a);
    }
    static const char *const files[][2] = {
        {"/ui/", "text/html; charset=utf-8"},
        {"/ui/index.html", "text/html; charset=utf-8"},
        {"/ui/app.js", "text/javascript; charset=utf-8"},
        {"/ui/style.css", "text/css; charset=utf-8"},
        {"/ui/favicon.svg", "image/svg+xml"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *a = raw_get(files[i][0], "");
        ck_assert_msg(strncmp(a, "HTTP/1.1 200", 12) == 0, "%s: %s", files[i][0], a);
        char type[160];
        snprintf(type, sizeof type, "Content-Type: %s\r\n", files[i][1]);
        assert_has(a, type);
        assert_has(a, "Content-Security-Policy: default-src 'self'; script-src 'self'; "
                      "style-src 'self';");
        assert_has(a, "frame-ancestors 'none'");
        assert_has(a, "X-Content-Type-Options: nosniff\r\n");
        assert_has(a, "Cache-Control: no-cache\r\n");
        /* revalidation by the ETag: 304, no body */
        const char *tag = strstr(a, "ETag: ");
        ck_assert_ptr_nonnull(tag);
        char inm[96];
        int n = (int)strcspn(tag + 6, "\r");
        snprintf(inm, sizeof inm, "If-None-Match: W/\"x\", %.*s\r\n", n, tag + 6);
        char *again = raw_get(files[i][0], inm);
        ck_assert_msg(strncmp(again, "HTTP/1.1 304", 12) == 0, "%s: %s", files[i][0], again);
        free(again);
        free(a);
    }
    /* the page names its script and style by path: no inline ones for the CSP to refuse */
    e2e_resp_t r;
    e2e_request(&srv, "GET", "/ui/", NULL, NULL, &r);
    assert_has(r.body, "<script src=\"/ui/app.js\" defer></script>");
    ck_assert_ptr_null(strstr(r.body, "<script>"));
    ck_assert_ptr_null(strstr(r.body, "style="));
    e2e_resp_free(&r);

    static const char *const missing[] = {"/ui/nope.js", "/ui/app.js.bak", "/ui/..%2fMakefile",
                                          "/ui/a/b"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        e2e_request(&srv, "GET", missing[i], NULL, NULL, &r);
        e2e_assert_error(&r, 404, "not_found", "");
        e2e_resp_free(&r);
    }
    e2e_request(&srv, "POST", "/ui/app.js", NULL, "{}", &r);
    e2e_assert_error(&r, 405, "method_not_allowed", "");
    e2e_resp_free(&r);

    /* open: GET /v1/key says so, admin of tenant default, no name */
    json_t *me = e2e_get_json(&srv, "/v1/key");
    ck_assert_str_eq(json_string_value(json_object_get(me, "auth")), "open");
    ck_assert_str_eq(json_string_value(json_object_get(me, "role")), "admin");
    ck_assert_str_eq(json_string_value(json_object_get(me, "tenant")), "default");
    ck_assert(json_is_null(json_object_get(me, "name")));
    json_decref(me);
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
}
END_TEST

START_TEST(test_key_with_keys) {
    char dir[64], keys[128], text[600], line[256];
    e2e_tmpdir(dir, sizeof dir, "flowd-ui");
    e2e_key_line(ADMIN, "ui-root", "admin", "ops", text, sizeof text);
    e2e_key_line(READ, "ui-reader", "read", "team-a", line, sizeof line);
    strncat(text, line, sizeof text - strlen(text) - 1);
    e2e_write_file(dir, "keys", text);
    snprintf(keys, sizeof keys, "%s/keys", dir);
    e2e_start(&srv, "--store", "memory:", "--keys", keys, NULL);

    /* the page needs no key; the API does */
    ck_assert_int_eq(e2e_get_status(&srv, "/ui/"), 200);
    ck_assert_int_eq(e2e_get_status(&srv, "/ui/app.js"), 200);
    e2e_resp_t r;
    e2e_request(&srv, "GET", "/v1/key", NULL, NULL, &r);
    e2e_assert_error(&r, 401, "unauthorized", "");
    e2e_resp_free(&r);
    e2e_use_key(&srv, "fk_test-not-a-key-0123456789");
    e2e_request(&srv, "GET", "/v1/key", NULL, NULL, &r);
    e2e_assert_error(&r, 401, "unauthorized", "not one of this server's");
    e2e_resp_free(&r);

    e2e_use_key(&srv, READ);
    e2e_request(&srv, "GET", "/v1/key", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "name")), "ui-reader");
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "role")), "read");
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "tenant")), "team-a");
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "auth")), "keys");
    ck_assert_ptr_null(strstr(r.body, READ)); /* never the key */
    ck_assert_ptr_null(strstr(r.body, READ + 3));
    e2e_resp_free(&r);

    e2e_use_key(&srv, ADMIN);
    json_t *me = e2e_get_json(&srv, "/v1/key");
    ck_assert_str_eq(json_string_value(json_object_get(me, "role")), "admin");
    ck_assert_str_eq(json_string_value(json_object_get(me, "tenant")), "ops");
    json_decref(me);
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
    e2e_rmtree(dir);
}
END_TEST

static Suite *ui_suite(void) {
    Suite *s = suite_create("ui_routes");
    TCase *tc = tcase_create("ui_routes");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_redirects_and_files);
    tcase_add_test(tc, test_key_with_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(ui_suite());
}
