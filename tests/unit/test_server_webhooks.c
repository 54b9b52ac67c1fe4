/* test_server_webhooks.c: what webhooks.h computes without a loop: the Standard Webhooks signature
 * (the specification's own example, and several secrets during a rotation), the secrets' text, and
 * the checks of a POST's "callback". */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "support/json_util.h"
#include "webhooks.h"

/* The example of the Standard Webhooks specification (its verifying libraries test the same). */
#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS 1614265330
#define SPEC_BODY "{\"test\": 2432232314}"
#define SPEC_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

START_TEST(test_the_specifications_example_signs_the_same) {
    unsigned char key[64];
    size_t len = 0;
    ck_assert_int_eq(flowd_webhook_secret_decode(SPEC_SECRET, key, &len), 0);
    ck_assert_uint_eq(len, 24);
    const unsigned char *keys[] = {key};
    char out[128];
    ck_assert_int_eq(flowd_webhook_sign(keys, &len, 1, SPEC_ID, SPEC_TS, SPEC_BODY,
                                        strlen(SPEC_BODY), out, sizeof out),
                     0);
    ck_assert_str_eq(out, SPEC_SIG);
    /* one byte of the body more, and it is another signature */
    ck_assert_int_eq(flowd_webhook_sign(keys, &len, 1, SPEC_ID, SPEC_TS, SPEC_BODY " ",
                                        strlen(SPEC_BODY) + 1, out, sizeof out),
                     0);
    ck_assert_str_ne(out, SPEC_SIG);
}
END_TEST

START_TEST(test_every_secret_of_a_rotation_signs) {
    unsigned char a[64], b[64];
    size_t lens[2];
    ck_assert_int_eq(flowd_webhook_secret_decode("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", a, &lens[0]), 0);
    ck_assert_int_eq(flowd_webhook_secret_decode(SPEC_SECRET, b, &lens[1]), 0);
    const unsigned char *keys[] = {a, b};
    char out[256];
    ck_assert_int_eq(flowd_webhook_sign(keys, lens, 2, SPEC_ID, SPEC_TS, SPEC_BODY,
                                        strlen(SPEC_BODY), out, sizeof out),
                     0);
    const char *space = strchr(out, ' ');
    ck_assert_ptr_nonnull(space);
    ck_assert_str_eq(space + 1, SPEC_SIG);
    ck_assert_int_eq(strncmp(out, "v1,", 3), 0);
    /* too small a buffer is an error, never a cut signature */
    ck_assert_int_eq(flowd_webhook_sign(keys, lens, 2, SPEC_ID, SPEC_TS, SPEC_BODY,
                                        strlen(SPEC_BODY), out, 100),
                     FLOW_ETOOBIG);
}
END_TEST

START_TEST(test_secrets_that_are_not_secrets_are_refused) {
    static const char *bad[] = {
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",        /* no prefix */
        "whsec_",                                   /* nothing */
        "whsec_c2hvcnQ=",                           /* 5 bytes: too short */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!",   /* not base64 */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwA",  /* not a multiple of 4 */
        "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"
        "QUFBQUFB", /* 69 bytes: too long */
    };
    unsigned char key[64];
    size_t len;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(flowd_webhook_secret_decode(bad[i], key, &len) < 0, "%s", bad[i]);
}
END_TEST

static int parse(const char *json, char **text, unsigned *events, char *why, size_t cap) {
    json_t *v = json_loads(json, JSON_ALLOW_NUL, NULL);
    ck_assert_ptr_nonnull(v);
    char *url = NULL;
    int rc = flowd_callback_parse(v, text, &url, events, why, cap);
    free(url);
    json_decref(v);
    return rc;
}

START_TEST(test_callbacks_are_checked_and_written_in_full) {
    char *text = NULL, why[256];
    unsigned events = 0;
    ck_assert_int_eq(parse("{\"url\": \"https://example.com/h?a=1\"}", &text, &events, why, sizeof why), 0);
    ck_assert_str_eq(text, "{\"url\":\"https://example.com/h?a=1\",\"events\":[\"succeeded\",\"failed\",\"canceled\"]}");
    ck_assert_uint_eq(events, FLOWD_HOOK_DEFAULT);
    free(text);
    ck_assert_int_eq(parse("{\"url\": \"http://x\", \"events\": [\"waiting\", \"waiting\", \"failed\"]}",
                           &text, &events, why, sizeof why), 0);
    ck_assert_str_eq(text, "{\"url\":\"http://x\",\"events\":[\"failed\",\"waiting\"]}");
    ck_assert_uint_eq(events, FLOWD_HOOK_FAILED | FLOWD_HOOK_WAITING);
    free(text);
    static const struct {
        const char *json, *words;
    } bad[] = {
        {"[]", "must be an object"},
        {"{\"url\": 3}", "'url'"},
        {"{\"url\": \"file:///etc/passwd\"}", "http:// or https://"},
        {"{\"url\": \"https://\"}", "host"},
        {"{\"url\": \"http://a\\u0000b\"}", "NUL"},
        {"{\"url\": \"http://a\\nb\"}", "control"},
        {"{\"url\": \"http://a\", \"events\": \"failed\"}", "non-empty array"},
        {"{\"url\": \"http://a\", \"events\": [1]}", "not a string"},
        {"{\"url\": \"http://a\", \"headers\": {}}", "'headers'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        text = NULL;
        why[0] = '\0';
        ck_assert_msg(parse(bad[i].json, &text, &events, why, sizeof why) < 0, "%s", bad[i].json);
        ck_assert_ptr_null(text);
        ck_assert_msg(strstr(why, bad[i].words) != NULL, "%s: %s", bad[i].json, why);
    }
    /* a URL past the cap */
    char *big = malloc(FLOWD_CALLBACK_URL_MAX + 64);
    int n = snprintf(big, 32, "{\"url\": \"http://a/");
    memset(big + n, 'x', FLOWD_CALLBACK_URL_MAX);
    strcpy(big + n + FLOWD_CALLBACK_URL_MAX, "\"}");
    ck_assert_int_lt(parse(big, &text, &events, why, sizeof why), 0);
    ck_assert_ptr_nonnull(strstr(why, "at most"));
    free(big);
}
END_TEST

static Suite *webhooks_suite(void) {
    Suite *s = suite_create("server_webhooks");
    TCase *tc = tcase_create("webhooks");
    tcase_add_test(tc, test_the_specifications_example_signs_the_same);
    tcase_add_test(tc, test_every_secret_of_a_rotation_signs);
    tcase_add_test(tc, test_secrets_that_are_not_secrets_are_refused);
    tcase_add_test(tc, test_callbacks_are_checked_and_written_in_full);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(webhooks_suite());
}
