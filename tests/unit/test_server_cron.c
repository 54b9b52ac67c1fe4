/* test_server_cron.c: cron expressions (server/cron.h): what parses and what is refused with which
 * message, and the next times in UTC and in zones that change their clocks (the hour skipped in
 * spring, the hour repeated in autumn), month ends, leap days and the day-of-month/day-of-week
 * rule. Times are written as UTC dates and compared as UTC dates, so a failure reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "flow.h"
#include "support/json_util.h"

/* "YYYY-MM-DDTHH:MM:SSZ" to seconds since the epoch. */
static int64_t at(const char *iso) {
    struct tm tm = {0};
    ck_assert_msg(sscanf(iso, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                         &tm.tm_hour, &tm.tm_min, &tm.tm_sec) == 6,
                  "bad date %s", iso);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

static const char *iso(int64_t t, char buf[32]) {
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static flowd_cron_t parse_ok(const char *text) {
    flowd_cron_t c;
    char err[256] = "";
    int rc = flowd_cron_parse(text, &c, err, sizeof err);
    ck_assert_msg(rc == 0, "'%s' was refused: %s", text, err);
    return c;
}

/* The next time after `after` (both UTC dates) is `want`. */
static void next_is(const char *expr, const char *zone, const char *after, const char *want) {
    flowd_cron_t c = parse_ok(expr);
    int64_t got = 0;
    char buf[32];
    int rc = flowd_cron_next(&c, zone, at(after), &got);
    ck_assert_msg(rc == 0, "'%s' in %s after %s: %s", expr, zone, after, flow_strerror(rc));
    ck_assert_msg(got == at(want), "'%s' in %s after %s: %s, not %s", expr, zone, after,
                  iso(got, buf), want);
}

/* The times one after the other from `after`: a NULL-terminated list. */
static void runs_are(const char *expr, const char *zone, const char *after, const char *const *want) {
    flowd_cron_t c = parse_ok(expr);
    int64_t t = at(after);
    char buf[32];
    for (size_t i = 0; want[i] != NULL; i++) {
        int64_t got = 0;
        ck_assert_int_eq(flowd_cron_next(&c, zone, t, &got), 0);
        ck_assert_msg(got == at(want[i]), "'%s' in %s, run %zu: %s, not %s", expr, zone, i,
                      iso(got, buf), want[i]);
        t = got;
    }
}

START_TEST(test_refused) {
    static const struct {
        const char *expr, *msg;
    } cases[] = {
        {"", "has 0"},
        {"* * * *", "has 4"},
        {"* * * * * * *", "more than 6"},
        {"60 * * * *", "minute: '60' is outside 0-59"},
        {"* 24 * * *", "hour: '24' is outside 0-23"},
        {"* * 0 * *", "day of month: '0' is outside 1-31"},
        {"* * 32 * *", "day of month: '32' is outside 1-31"},
        {"* * * 13 *", "month: '13' is outside 1-12"},
        {"* * * * 8", "day of week: '8' is outside 0-7"},
        {"60 * * * * *", "second: '60' is outside 0-59"},
        {"5-1 * * * *", "runs backwards"},
        {"*/0 * * * *", "needs a step of 1 or more"},
        {"*/ * * * *", "needs a step of 1 or more"},
        {"a * * * *", "minute: 'a' is not a value"},
        {"* * * foo *", "(months: 1-12 or JAN-DEC)"},
        {"* * * * funday", "(days: 0-7 or SUN-SAT)"},
        {"* * * jan *x", "day of week: '*x'"},
        {"1,,2 * * * *", "empty item"},
        {"1, * * * *", "empty item"},
        {",1 * * * *", "empty item"},
        {"1-2-3 * * * *", "not a value"},
        {"1000 * * * *", "not a value"},
        {"-1 * * * *", "not a value"},
        {"@reboot", "not a shorthand"},
        {"@daily x", "not a shorthand"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        flowd_cron_t c;
        char err[256] = "";
        ck_assert_msg(flowd_cron_parse(cases[i].expr, &c, err, sizeof err) == FLOW_EINVAL,
                      "'%s' was taken", cases[i].expr);
        ck_assert_msg(strstr(err, cases[i].msg) != NULL, "'%s': '%s' does not say '%s'",
                      cases[i].expr, err, cases[i].msg);
    }
    char *long_expr = tu_repeat('1', FLOWD_CRON_MAX + 1, "");
    flowd_cron_t c;
    char err[256];
    ck_assert_int_eq(flowd_cron_parse(long_expr, &c, err, sizeof err), FLOW_EINVAL);
    free(long_expr);
}
END_TEST

START_TEST(test_fields) {
    flowd_cron_t c = parse_ok("*/15 * * * *");
    ck_assert_uint_eq(c.min, (1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45));
    ck_assert_uint_eq(c.sec, 1);
    ck_assert_int_eq(c.seconds, 0);
    c = parse_ok("1-10/3 5 * * *");
    ck_assert_uint_eq(c.min, (1ull << 1) | (1ull << 4) | (1ull << 7) | (1ull << 10));
    ck_assert_uint_eq(c.hour, 1u << 5);
    c = parse_ok("0 5/6 * * *");
    ck_assert_uint_eq(c.hour, (1u << 5) | (1u << 11) | (1u << 17) | (1u << 23));
    c = parse_ok("0 0 * Jan,MAR-may mon-FRI");
    ck_assert_uint_eq(c.mon, (1u << 1) | (1u << 3) | (1u << 4) | (1u << 5));
    ck_assert_uint_eq(c.dow, 0x3e);
    ck_assert_int_eq(c.dom_any, 1);
    ck_assert_int_eq(c.dow_any, 0);
    c = parse_ok("0 0 * * 7");
    ck_assert_uint_eq(c.dow, 1); /* 7 is Sunday */
    c = parse_ok("0 0 * * 5-7");
    ck_assert_uint_eq(c.dow, 1u | (1u << 5) | (1u << 6));
    c = parse_ok("  */10   1   *  *  *  * ");
    ck_assert_int_eq(c.seconds, 1);
    ck_assert_uint_eq(c.sec, (1ull << 0) | (1ull << 10) | (1ull << 20) | (1ull << 30) |
                                 (1ull << 40) | (1ull << 50));
    ck_assert_uint_eq(c.min, 1ull << 1);
    c = parse_ok("@hourly");
    ck_assert_uint_eq(c.min, 1);
    ck_assert_uint_eq(c.hour, 0xffffff);
    c = parse_ok("@WEEKLY");
    ck_assert_uint_eq(c.dow, 1);
}
END_TEST

START_TEST(test_next_utc) {
    next_is("*/5 * * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z");
    next_is("*/5 * * * *", "UTC", "2026-01-01T00:04:59Z", "2026-01-01T00:05:00Z");
    next_is("*/5 * * * *", "UTC", "2026-01-01T23:55:00Z", "2026-01-02T00:00:00Z");
    next_is("0 0 1 1 *", "UTC", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z");
    next_is("0 0 1 1 *", "UTC", "2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z");
    next_is("59 23 31 * *", "UTC", "2026-02-01T00:00:00Z", "2026-03-31T23:59:00Z");
    next_is("0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z");
    next_is("0 0 29 2 *", "UTC", "2097-03-01T00:00:00Z", "2104-02-29T00:00:00Z"); /* 2100 is not */
    next_is("*/10 * * * * *", "UTC", "2026-06-01T10:00:01Z", "2026-06-01T10:00:10Z");
    next_is("* * * * * *", "UTC", "2026-06-01T10:00:59Z", "2026-06-01T10:01:00Z");
    next_is("30 * * * * *", "UTC", "2026-06-01T10:00:30Z", "2026-06-01T10:01:30Z");
    /* day of month and day of week: both restricted, either matches (2026-01-01 is a Thursday) */
    next_is("0 0 13 * 5", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
    next_is("0 0 13 * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-13T00:00:00Z");
    next_is("0 0 * * fri", "UTC", "2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z");
    /* one starts with '*': both must match (an odd day that is a Friday) */
    next_is("0 0 */2 * 5", "UTC", "2026-01-01T00:00:00Z", "2026-01-09T00:00:00Z");
    next_is("0 12 * * 0", "UTC", "2026-01-01T00:00:00Z", "2026-01-04T12:00:00Z");
    next_is("0 9 * * *", "Asia/Kolkata", "2026-01-01T00:00:00Z", "2026-01-01T03:30:00Z");
    next_is("0 0 * * *", "Pacific/Kiritimati", "2026-01-01T00:00:00Z", "2026-01-01T10:00:00Z");
}
END_TEST

START_TEST(test_never) {
    static const char *const never[] = {"0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 2 *"};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
        flowd_cron_t c = parse_ok(never[i]);
        int64_t got = 0;
        ck_assert_msg(flowd_cron_next(&c, "Europe/Paris", at("2026-01-01T00:00:00Z"), &got) ==
                          FLOW_ENOTFOUND,
                      "'%s' found a time", never[i]);
    }
}
END_TEST

/* Paris, 2026-03-29: at 01:00 UTC the clocks go from 02:00 to 03:00 (CET to CEST). */
START_TEST(test_spring_forward) {
    /* a time that does not exist that day runs at the jump, once */
    runs_are("30 2 * * *", "Europe/Paris", "2026-03-28T12:00:00Z",
             (const char *const[]){"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z", NULL});
    /* every quarter hour: 01:45 CET, then the jump (3:00 CEST), then 3:15 CEST */
    runs_are("*/15 * * * *", "Europe/Paris", "2026-03-29T00:30:00Z",
             (const char *const[]){"2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z",
                                   "2026-03-29T01:15:00Z", NULL});
    /* New York, 2026-03-08 at 07:00 UTC: 02:00 EST to 03:00 EDT */
    next_is("0 2 * * *", "America/New_York", "2026-03-08T00:00:00Z", "2026-03-08T07:00:00Z");
    next_is("0 2 * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z");
    /* Lord Howe moves its clocks by half an hour (2026-10-04: 02:00 to 02:30, at 15:30 UTC the day
     * before) */
    runs_are("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00Z",
             (const char *const[]){"2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z", NULL});
}
END_TEST

/* Paris, 2026-10-25: at 01:00 UTC the clocks go from 03:00 back to 02:00 (CEST to CET). */
START_TEST(test_fall_back) {
    /* 02:30 happens twice (00:30 and 01:30 UTC): it runs once, at the first */
    runs_are("30 2 * * *", "Europe/Paris", "2026-10-24T12:00:00Z",
             (const char *const[]){"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", NULL});
    runs_are("*/30 * * * *", "Europe/Paris", "2026-10-24T23:45:00Z",
             (const char *const[]){"2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z",
                                   "2026-10-25T02:00:00Z", "2026-10-25T02:30:00Z", NULL});
    /* from inside the repeated hour: its times ran at their first occurrence */
    next_is("*/15 * * * *", "Europe/Paris", "2026-10-25T01:10:00Z", "2026-10-25T02:00:00Z");
    /* every second: the repeated hour does not run again (bounded: 3600 candidates looked at) */
    next_is("* * * * * *", "Europe/Paris", "2026-10-25T00:59:59Z", "2026-10-25T02:00:00Z");
    next_is("* * * * * *", "Europe/Paris", "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z");
    /* an hourly cron in UTC is not moved by any of this */
    next_is("0 * * * *", "UTC", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z");
}
END_TEST

START_TEST(test_zones) {
    ck_assert_int_eq(flowd_tz_check("Europe/Paris"), 0);
    ck_assert_int_eq(flowd_tz_check("UTC"), 0);
    ck_assert_int_eq(flowd_tz_check("America/Argentina/Buenos_Aires"), 0);
    ck_assert_int_eq(flowd_tz_check("Mars/Olympus_Mons"), FLOW_EINVAL);
    ck_assert_int_eq(flowd_tz_check(""), FLOW_EINVAL);
    ck_assert_int_eq(flowd_tz_check("../../etc/passwd"), FLOW_EINVAL);
    ck_assert_int_eq(flowd_tz_check("Europe/Paris\n"), FLOW_EINVAL);
    char *long_zone = tu_repeat('A', FLOWD_TZ_MAX + 1, "");
    ck_assert_int_eq(flowd_tz_check(long_zone), FLOW_EINVAL);
    free(long_zone);
    int32_t off = 0;
    ck_assert_int_eq(flowd_tz_offset("Europe/Paris", at("2026-01-15T00:00:00Z"), &off), 0);
    ck_assert_int_eq(off, 3600);
    ck_assert_int_eq(flowd_tz_offset("Europe/Paris", at("2026-07-15T00:00:00Z"), &off), 0);
    ck_assert_int_eq(off, 7200);
    flowd_cron_t c = parse_ok("* * * * *");
    int64_t got;
    ck_assert_int_eq(flowd_cron_next(&c, "Nowhere/Town", 0, &got), FLOW_EINVAL);
}
END_TEST

static Suite *cron_suite(void) {
    Suite *s = suite_create("server_cron");
    TCase *tc = tcase_create("cron");
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_fields);
    tcase_add_test(tc, test_next_utc);
    tcase_add_test(tc, test_never);
    tcase_add_test(tc, test_spring_forward);
    tcase_add_test(tc, test_fall_back);
    tcase_add_test(tc, test_zones);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(cron_suite());
}
