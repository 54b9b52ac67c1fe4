/* test_server_apierr.c: the API's error table (server/apierr.h) and the contract agree: every code
 * of the table is in api/openapi.yaml's Error enum once, and the enum has no other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apierr.h"
#include "support/json_util.h"

/* The names of the Error schema's code enum ("enum: [a, b,\n c]") of api/openapi.yaml. */
static size_t contract_codes(char names[][32], size_t max) {
    FILE *f = fopen("api/openapi.yaml", "r");
    ck_assert_ptr_nonnull(f);
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    const char *p = strstr(text, "enum: [bad_request");
    ck_assert_ptr_nonnull(p);
    p += strlen("enum: [");
    size_t n = 0;
    while (*p != ']' && *p != '\0') {
        p += strspn(p, " ,\n");
        size_t w = strcspn(p, " ,\n]");
        ck_assert_uint_lt(w, 32);
        ck_assert_uint_lt(n, max);
        memcpy(names[n], p, w);
        names[n++][w] = '\0';
        p += w;
        p += strspn(p, " ,\n");
    }
    return n;
}

START_TEST(test_table_is_the_contract) {
    char names[64][32];
    size_t n = contract_codes(names, 64);
    ck_assert_uint_eq(n, FLOWD_APIERRS);
    for (int e = 0; e < FLOWD_APIERRS; e++) {
        const char *code = flowd_apierr_code((flowd_apierr_t)e);
        int found = 0;
        for (size_t i = 0; i < n; i++)
            found += strcmp(names[i], code) == 0;
        ck_assert_msg(found == 1, "code %s is %d times in api/openapi.yaml", code, found);
        unsigned status = flowd_apierr_status((flowd_apierr_t)e);
        ck_assert_msg(status >= 400 && status < 600, "code %s has status %u", code, status);
        ck_assert_ptr_nonnull(flowd_apierr_message((flowd_apierr_t)e));
    }
    ck_assert_str_eq(flowd_apierr_code(FLOWD_APIERRS), "internal");
}
END_TEST

static Suite *apierr_suite(void) {
    Suite *s = suite_create("server_apierr");
    TCase *tc = tcase_create("apierr");
    tcase_add_test(tc, test_table_is_the_contract);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(apierr_suite());
}
