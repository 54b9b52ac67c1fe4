/* test_utf8.c: one UTF-8 sequence checked (flow/utf8.h), as JSON Pointers and flowd's JSON writer
 * use it: every length, and each way a sequence can be wrong (RFC 3629's table). */
#include <string.h>

#include <check.h>

#include "flow.h"
#include "flow/utf8.h"
#include "support/json_util.h"

static const struct {
    const char *bytes;
    size_t n;      /* bytes available */
    size_t want;   /* its length, or 0: not valid */
} cases[] = {
    {"a", 1, 1},
    {"\x7f", 1, 1},
    {"\xc2\x80", 2, 2},                /* U+0080, the first of two bytes */
    {"\xdf\xbf", 2, 2},
    {"\xe0\xa0\x80", 3, 3},            /* U+0800 */
    {"\xef\xbf\xbf", 3, 3},
    {"\xf0\x90\x80\x80", 4, 4},        /* U+10000 */
    {"\xf4\x8f\xbf\xbf", 4, 4},        /* U+10FFFF, the last */
    {"\xc3\xa9xyz", 5, 2},             /* what follows is not its business */
    {"\xc0\x80", 2, 0},                /* overlong NUL */
    {"\xc1\xbf", 2, 0},
    {"\xe0\x9f\xbf", 3, 0},            /* overlong, three bytes */
    {"\xf0\x8f\xbf\xbf", 4, 0},        /* overlong, four bytes */
    {"\xed\xa0\x80", 3, 0},            /* a surrogate */
    {"\xed\xbf\xbf", 3, 0},
    {"\xf4\x90\x80\x80", 4, 0},        /* past U+10FFFF */
    {"\xf5\x80\x80\x80", 4, 0},
    {"\xff", 1, 0},
    {"\x80", 1, 0},                    /* a continuation byte alone */
    {"\xc3(", 2, 0},                   /* a continuation that is not one */
    {"\xe2\x82", 2, 0},                /* cut short */
    {"\xe2\x82\xac", 2, 0},            /* cut short by n, not by the bytes */
};

START_TEST(test_each_sequence) {
    ck_assert_msg(flow_utf8_len((const unsigned char *)cases[_i].bytes, cases[_i].n) ==
                      cases[_i].want,
                  "case %d: %zu, not %zu", _i,
                  flow_utf8_len((const unsigned char *)cases[_i].bytes, cases[_i].n),
                  cases[_i].want);
}
END_TEST

static Suite *utf8_suite(void) {
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("utf8");
    tcase_add_loop_test(tc, test_each_sequence, 0, (int)(sizeof cases / sizeof cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(utf8_suite());
}
