/* test_server_auth.c: the key file (server/auth.h) in both forms, with a message naming the file
 * and the line (and column, for JSON) of every kind of mistake; callers identified by their key, a
 * wrong one and none; loopback addresses; when flowd may start without keys; the flags of keys and
 * roles. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "auth.h"
#include "config.h"
#include "support/json_util.h"

/* "<sha256 of key in hex>" */
static void hash_hex(const char *key, char out[65]) {
    unsigned char md[32];
    unsigned int n = 0;
    ck_assert(EVP_Digest(key, strlen(key), md, &n, EVP_sha256(), NULL) == 1);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int check(const char *text, size_t *n, char *err, size_t errlen) {
    err[0] = '\0';
    return flowd_auth_check_text("keys.txt", text, strlen(text), n, err, errlen);
}

START_TEST(test_a_key_file_of_lines) {
    char h1[65], h2[65], text[512], err[512];
    size_t n = 0;
    hash_hex("fk_one", h1);
    hash_hex("fk_two", h2);
    snprintf(text, sizeof text,
             "# keys of the test\n"
             "\n"
             "%s ci admin default   # the first\n"
             "  %s\treader read acme\r\n",
             h1, h2);
    ck_assert_int_eq(check(text, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(check("", &n, err, sizeof err), 0); /* no key at all: every request gets 401 */
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_a_key_file_in_json) {
    char h1[65], text[512], err[512];
    size_t n = 0;
    hash_hex("fk_one", h1);
    snprintf(
        text, sizeof text,
        "{\"keys\": [\n  {\"name\": \"ci\", \"role\": \"submit\", \"tenant\": \"acme\","
        " \"sha256\": \"%s\"}\n]}\n",
        h1);
    ck_assert_int_eq(check(text, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 1);
}
END_TEST

START_TEST(test_every_mistake_names_its_line) {
    char h1[65], h2[65], err[512];
    size_t n;
    hash_hex("fk_one", h1);
    hash_hex("fk_two", h2);
    char text[1024];
    const struct {
        const char *fmt;
        const char *want;
    } cases[] = {
        {"%s ci admin\n", "keys.txt:1: 3 fields"},
        {"# c\n%s ci admin default extra\n", "keys.txt:2: more than 4 fields"},
        {"%s ci root default\n", "keys.txt:1: the role 'root' is not admin, submit or read"},
        {"%s c/i admin default\n", "keys.txt:1: the name 'c/i' is not 1 to 64"},
        {"%s ci admin ten ant\n", "more than 4 fields"},
        {"%s ci admin t:x\n", "keys.txt:1: the tenant 't:x'"},
        {"abc ci admin default\n", "keys.txt:1: 'abc' is not a SHA-256 in hex"},
        {"fk_abcdefghijklmnopqrstuvwxyz ci admin default\n",
         "keys.txt:1: this is a key, not its hash"},
        {"0000000000000000000000000000000000000000000000000000000000000000 ci admin default\n",
         "all zeros"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, cases[i].fmt, h1);
        ck_assert_int_eq(check(text, &n, err, sizeof err), FLOW_EINVAL);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "case %zu: %s", i, err);
    }
    snprintf(text, sizeof text, "%s ci admin default\n\n%s ci read default\n", h1, h2);
    ck_assert_int_eq(check(text, &n, err, sizeof err), FLOW_EINVAL);
    ck_assert_str_eq(err, "keys.txt:3: the name 'ci' is taken by line 1");
    snprintf(text, sizeof text, "%s ci admin default\n%s other read default\n", h1, h1);
    ck_assert_int_eq(check(text, &n, err, sizeof err), FLOW_EINVAL);
    ck_assert_str_eq(err, "keys.txt:2: the same key as line 1");
    /* JSON: line and column of the key, and its pointer */
    snprintf(
        text, sizeof text,
        "{\"keys\": [\n  {\"name\": \"ci\", \"role\": \"admin\", \"tenant\": \"a\","
        " \"sha256\": \"%s\"},\n"
        "  {\"name\": \"x\", \"role\": \"boss\", \"tenant\": \"a\", \"sha256\": \"%s\"}\n]}",
        h1, h2);
    ck_assert_int_eq(check(text, &n, err, sizeof err), FLOW_EINVAL);
    ck_assert_msg(strstr(err, "keys.txt:3:3: /keys/1: the role 'boss'") != NULL, "%s", err);
    ck_assert_int_eq(check("{\"keys\": [{\"name\": \"x\", \"role\": \"read\", \"tenant\": \"a\"}]}",
                           &n, err, sizeof err),
                     FLOW_EINVAL);
    ck_assert_msg(strstr(err, "keys.txt:1:11: /keys/0: \"sha256\" is missing") != NULL, "%s", err);
    ck_assert_int_eq(check("{\"keys\": [], \"more\": 1}", &n, err, sizeof err), FLOW_EINVAL);
    ck_assert_msg(strstr(err, "/more: unknown member") != NULL, "%s", err);
    ck_assert_int_eq(check("{\"keys\": [\n{\"nam\": 1}]}", &n, err, sizeof err), FLOW_EINVAL);
    ck_assert_msg(strstr(err, "keys.txt:2:9: /keys/0/nam: unknown member") != NULL, "%s", err);
    ck_assert_int_eq(check("{\"keys\": [\n", &n, err, sizeof err), FLOW_EINVAL);
    ck_assert_msg(strstr(err, "keys.txt:2:") != NULL && strstr(err, "invalid JSON") != NULL, "%s",
                  err);
    ck_assert_int_eq(check("{\"keys\": {}}", &n, err, sizeof err), FLOW_EINVAL);
    ck_assert_msg(strstr(err, "keys.txt:1:1: /: the file must be") != NULL, "%s", err);
}
END_TEST

START_TEST(test_loopback_addresses) {
    static const char *const yes[] = {"127.0.0.1", "127.1.2.3", "::1", "localhost",
                                      "::ffff:127.0.0.1"};
    static const char *const no[] = {"0.0.0.0",         "::",      "10.0.0.1",    "128.0.0.1",
                                     "::ffff:10.0.0.1", "fe80::1", "192.168.1.1", "::2"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        ck_assert_msg(flowd_auth_loopback(yes[i]), "%s", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        ck_assert_msg(!flowd_auth_loopback(no[i]), "%s", no[i]);
}
END_TEST

static void config(flowd_config_t *c, const char *bind, const char *keys, int insecure) {
    flowd_config_defaults(c);
    snprintf(c->bind, sizeof c->bind, "%s", bind);
    snprintf(c->keys_file, sizeof c->keys_file, "%s", keys ? keys : "");
    c->insecure_no_auth = insecure;
}

START_TEST(test_open_only_on_loopback_or_when_told) {
    flowd_config_t c;
    flowd_auth_t *a = NULL;
    char err[1024];
    flowd_caller_t who;
    config(&c, "127.0.0.1", NULL, 0);
    ck_assert_int_eq(flowd_auth_new(&c, &a, err, sizeof err), 0);
    ck_assert(flowd_auth_open(a));
    flowd_auth_identify(a, NULL, &who);
    ck_assert_int_eq(who.role, FLOWD_ROLE_ADMIN);
    ck_assert_str_eq(who.tenant, "default");
    ck_assert_ptr_eq(who.tenant, flowd_auth_tenant(a, "default"));
    ck_assert_int_eq(flowd_auth_reload(a), 0); /* nothing to reload */
    flowd_auth_free(a);
    static const char *const binds[] = {"0.0.0.0", "::", "10.1.2.3"};
    for (size_t i = 0; i < 3; i++) {
        config(&c, binds[i], NULL, 0);
        ck_assert_int_eq(flowd_auth_new(&c, &a, err, sizeof err), FLOW_EINVAL);
        ck_assert_ptr_null(a);
        ck_assert_msg(strstr(err, binds[i]) && strstr(err, "flowd key new") &&
                          strstr(err, "--keys FILE") && strstr(err, "--insecure-no-auth"),
                      "%s", err);
        config(&c, binds[i], NULL, 1);
        ck_assert_int_eq(flowd_auth_new(&c, &a, err, sizeof err), 0);
        ck_assert(flowd_auth_open(a));
        flowd_auth_free(a);
    }
    config(&c, "0.0.0.0", "/nonexistent/keys", 0);
    ck_assert_int_eq(flowd_auth_new(&c, &a, err, sizeof err), FLOW_EIO);
    ck_assert_msg(strstr(err, "cannot read the key file /nonexistent/keys") != NULL, "%s", err);
}
END_TEST

START_TEST(test_callers_by_their_keys) {
    char dir[] = "/tmp/flowd-auth-XXXXXX", path[64], h1[65], h2[65], err[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/keys", dir);
    hash_hex("fk_admin", h1);
    hash_hex("fk_reader", h2);
    FILE *f = fopen(path, "w");
    fprintf(f, "%s root admin ops\n%s reader read acme\n", h1, h2);
    fclose(f);
    flowd_config_t c;
    flowd_auth_t *a = NULL;
    config(&c, "0.0.0.0", path, 0);
    ck_assert_int_eq(flowd_auth_new(&c, &a, err, sizeof err), 0);
    ck_assert(!flowd_auth_open(a));
    flowd_caller_t who;
    flowd_auth_identify(a, "Bearer fk_admin", &who);
    ck_assert_int_eq(who.role, FLOWD_ROLE_ADMIN);
    ck_assert_str_eq(who.name, "root");
    ck_assert_ptr_eq(who.tenant, flowd_auth_find_tenant(a, "ops"));
    flowd_auth_identify(a, "  bearer   fk_reader  ", &who); /* the scheme's case, and spaces */
    ck_assert_int_eq(who.role, FLOWD_ROLE_READ);
    ck_assert_str_eq(who.tenant, "acme");
    flowd_auth_identify(a, "Bearer fk_reader2", &who);
    ck_assert_int_eq(who.role, FLOWD_ROLE_NONE);
    ck_assert_int_eq(who.bad, 2);
    ck_assert_str_eq(who.name, "");
    flowd_auth_identify(a, NULL, &who);
    ck_assert_int_eq(who.bad, 1);
    flowd_auth_identify(a, "Basic Zm9vOmJhcg==", &who);
    ck_assert_int_eq(who.bad, 1);
    flowd_auth_identify(a, "Bearer ", &who);
    ck_assert_int_eq(who.bad, 1);
    flowd_auth_identify(a, "Bearerfk_admin", &who);
    ck_assert_int_eq(who.role, FLOWD_ROLE_NONE);
    ck_assert_ptr_null(flowd_auth_find_tenant(a, "nobody"));
    /* a reload that fails keeps the keys; one that works replaces them */
    f = fopen(path, "w");
    fprintf(f, "%s root admin\n", h1);
    fclose(f);
    ck_assert_int_eq(flowd_auth_reload(a), FLOW_EINVAL);
    flowd_auth_identify(a, "Bearer fk_reader", &who);
    ck_assert_int_eq(who.role, FLOWD_ROLE_READ);
    f = fopen(path, "w");
    fprintf(f, "%s root admin ops\n", h1);
    fclose(f);
    ck_assert_int_eq(flowd_auth_reload(a), 0);
    flowd_auth_identify(a, "Bearer fk_reader", &who);
    ck_assert_int_eq(who.role, FLOWD_ROLE_NONE);
    flowd_auth_identify(a, "Bearer fk_admin", &who);
    ck_assert_int_eq(who.role, FLOWD_ROLE_ADMIN);
    flowd_auth_free(a);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* Many keys: each is found as itself, wherever it is in the file, and nothing else is. */
START_TEST(test_every_key_of_many_is_itself) {
    char dir[] = "/tmp/flowd-auth-XXXXXX", path[64], hash[65], key[32], err[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/keys", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "fk_many-%d", i);
        hash_hex(key, hash);
        fprintf(f, "%s k%d %s t%d\n", hash, i, i % 3 ? "read" : "submit", i % 7);
    }
    fclose(f);
    flowd_config_t c;
    flowd_auth_t *a = NULL;
    config(&c, "127.0.0.1", path, 0);
    ck_assert_int_eq(flowd_auth_new(&c, &a, err, sizeof err), 0);
    for (int i = 0; i < 300; i++) {
        char header[64], name[16], tenant[16];
        flowd_caller_t who;
        snprintf(header, sizeof header, "Bearer fk_many-%d", i);
        flowd_auth_identify(a, header, &who);
        snprintf(name, sizeof name, "k%d", i);
        snprintf(tenant, sizeof tenant, "t%d", i % 7);
        ck_assert_str_eq(who.name, name);
        ck_assert_str_eq(who.tenant, tenant);
        ck_assert_int_eq(who.role, i % 3 ? FLOWD_ROLE_READ : FLOWD_ROLE_SUBMIT);
        snprintf(header, sizeof header, "Bearer fk_many-%d ", i + 300); /* and a trailing space */
        flowd_auth_identify(a, header, &who);
        ck_assert_int_eq(who.role, FLOWD_ROLE_NONE);
        ck_assert_int_eq(who.bad, 2);
    }
    flowd_auth_free(a);
    unlink(path);
    rmdir(dir);
}
END_TEST

static const char *const *test_env;

static const char *fake_getenv(const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; test_env != NULL && test_env[i] != NULL; i++)
        if (strncmp(test_env[i], name, n) == 0 && test_env[i][n] == '=')
            return test_env[i] + n + 1;
    return NULL;
}

START_TEST(test_the_flags_of_keys) {
    flowd_config_t c;
    char err[256];
    char *argv[] = {"flowd", "--metrics-open", "--keys", "/etc/flowd/keys", NULL};
    ck_assert_int_eq(flowd_config_parse(&c, 4, argv, fake_getenv, err, sizeof err),
                     FLOWD_CONFIG_RUN);
    ck_assert_int_eq(c.metrics_open, 1);
    ck_assert_str_eq(c.keys_file, "/etc/flowd/keys");
    ck_assert_int_eq(c.insecure_no_auth, 0);
    char *off[] = {"flowd", "--metrics-open=false", NULL};
    static const char *const env[] = {"FLOWD_METRICS_OPEN=1", "FLOWD_INSECURE_NO_AUTH=true", NULL};
    test_env = env;
    ck_assert_int_eq(flowd_config_parse(&c, 2, off, fake_getenv, err, sizeof err),
                     FLOWD_CONFIG_RUN);
    ck_assert_int_eq(c.metrics_open, 0);
    ck_assert_int_eq(c.insecure_no_auth, 1);
    char *both[] = {"flowd", "--keys=k", NULL};
    ck_assert_int_eq(flowd_config_parse(&c, 2, both, fake_getenv, err, sizeof err),
                     FLOWD_CONFIG_ERROR);
    ck_assert_msg(strstr(err, "--insecure-no-auth and --keys") != NULL, "%s", err);
    static const char *const bad[] = {"FLOWD_METRICS_OPEN=maybe", NULL};
    test_env = bad;
    ck_assert_int_eq(flowd_config_parse(&c, 1, argv, fake_getenv, err, sizeof err),
                     FLOWD_CONFIG_ERROR);
    ck_assert_msg(strstr(err, "FLOWD_METRICS_OPEN: 'maybe' is not valid: expected true or false") !=
                      NULL,
                  "%s", err);
    test_env = NULL;
}
END_TEST

static Suite *auth_suite(void) {
    Suite *s = suite_create("server_auth");
    TCase *tc = tcase_create("auth");
    tcase_add_test(tc, test_a_key_file_of_lines);
    tcase_add_test(tc, test_a_key_file_in_json);
    tcase_add_test(tc, test_every_mistake_names_its_line);
    tcase_add_test(tc, test_loopback_addresses);
    tcase_add_test(tc, test_open_only_on_loopback_or_when_told);
    tcase_add_test(tc, test_callers_by_their_keys);
    tcase_add_test(tc, test_every_key_of_many_is_itself);
    tcase_add_test(tc, test_the_flags_of_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(auth_suite());
}
