/* test_server_config.c: flowd's flags and FLOWD_* variables (server/config.h): defaults, the
 * variable over the default and the flag over the variable, units of sizes and durations, and a
 * message naming the flag for every bad value. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "jsonw.h"
#include "support/json_util.h"

/* The environment a test gives: NAME=VALUE pairs. */
static const char *const *test_env;

static const char *fake_getenv(const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; test_env != NULL && test_env[i] != NULL; i++)
        if (strncmp(test_env[i], name, n) == 0 && test_env[i][n] == '=')
            return test_env[i] + n + 1;
    return NULL;
}

static int parse(flowd_config_t *c, const char *const *env, char *err, size_t errlen, ...) {
    char *argv[32] = {"flowd"};
    int argc = 1;
    va_list ap;
    va_start(ap, errlen);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL)
        argv[argc++] = (char *)a;
    va_end(ap);
    test_env = env;
    err[0] = '\0';
    return flowd_config_parse(c, argc, argv, fake_getenv, err, errlen);
}

START_TEST(test_defaults) {
    flowd_config_t c;
    char err[256];
    ck_assert_int_eq(parse(&c, NULL, err, sizeof err, NULL), FLOWD_CONFIG_RUN);
    ck_assert_str_eq(c.bind, "127.0.0.1");
    ck_assert_uint_eq(c.port, 8080);
    ck_assert_uint_eq(c.http_threads, 2);
    ck_assert_uint_eq(c.max_body, 1u << 20);
    ck_assert_uint_eq(c.max_header, 16384);
    ck_assert_uint_eq(c.max_jobs, 100000);
    ck_assert_uint_eq(c.max_finished, 100000);
    ck_assert_uint_eq(c.max_running, 10000);
    ck_assert_uint_eq(c.max_delay_ms, 30ull * 86400 * 1000);
    ck_assert_uint_eq(c.retention_ms, 24ull * 3600 * 1000);
    ck_assert_uint_eq(c.grace_ms, 10000);
    ck_assert_uint_eq(c.history_limit, 100);
    ck_assert_uint_eq(c.events_limit, 1000);
    ck_assert_uint_eq(c.max_conns_per_ip, 256);
    ck_assert_uint_eq(c.idle_timeout_ms, 30000);
    ck_assert_uint_eq(c.keepalive_ms, 15000);
    ck_assert_int_eq(c.log_level, FLOW_LOG_INFO);
    ck_assert_uint_eq(c.lua_budget, 10000000);
    ck_assert_uint_eq(c.lua_budget_max, 100000000);
    ck_assert_uint_eq(c.lua_memory, 64u << 20);
    ck_assert_uint_eq(c.lua_time_ms, 2000);
    ck_assert_uint_eq(c.lua_log_lines, 20);
    ck_assert_uint_eq(c.lua_log_bytes, 1024);
    ck_assert_uint_eq(c.lua_log_job_bytes, 1u << 20);
}
END_TEST

START_TEST(test_flag_wins_over_variable_over_default) {
    flowd_config_t c;
    char err[256];
    static const char *const env[] = {"FLOWD_PORT=9000", "FLOWD_LOG_LEVEL=debug", "FLOWD_MAX_BODY=64KiB",
                                      NULL};
    ck_assert_int_eq(parse(&c, env, err, sizeof err, NULL), FLOWD_CONFIG_RUN);
    ck_assert_uint_eq(c.port, 9000);
    ck_assert_int_eq(c.log_level, FLOW_LOG_DEBUG);
    ck_assert_uint_eq(c.max_body, 65536);
    ck_assert_int_eq(parse(&c, env, err, sizeof err, "--port", "9100", "--log-level=warn", NULL),
                     FLOWD_CONFIG_RUN);
    ck_assert_uint_eq(c.port, 9100);
    ck_assert_int_eq(c.log_level, FLOW_LOG_WARN);
    ck_assert_uint_eq(c.max_body, 65536);
    ck_assert_int_eq(parse(&c, env, err, sizeof err, "--port", "0", "--bind", "::1", NULL),
                     FLOWD_CONFIG_RUN);
    ck_assert_uint_eq(c.port, 0);
    ck_assert_str_eq(c.bind, "::1");
}
END_TEST

/* The regex flags reach lib/re.h's limits as they are; a bad one names its flag. */
START_TEST(test_regex_limits) {
    flowd_config_t c;
    char err[256];
    ck_assert_int_eq(parse(&c, NULL, err, sizeof err, NULL), FLOWD_CONFIG_RUN);
    ck_assert_uint_eq(c.regex_max_length, 1024);
    ck_assert_uint_eq(c.regex_max_nesting, 32);
    ck_assert_uint_eq(c.regex_max_compiled, 65536);
    ck_assert_uint_eq(c.regex_match_limit, 1000000);
    ck_assert_uint_eq(c.regex_depth_limit, 100000);
    ck_assert_uint_eq(c.regex_heap_limit, 4u << 20);
    ck_assert_uint_eq(c.regex_budget, 5000000);
    ck_assert_uint_eq(c.regex_jit, 1);
    static const char *const env[] = {"FLOWD_REGEX_MATCH_LIMIT=20000", "FLOWD_REGEX_JIT=0", NULL};
    ck_assert_int_eq(parse(&c, env, err, sizeof err, "--regex-heap-limit", "1MiB", "--regex-max-length=2KiB",
                           NULL),
                     FLOWD_CONFIG_RUN);
    ck_assert_uint_eq(c.regex_match_limit, 20000);
    ck_assert_uint_eq(c.regex_jit, 0);
    ck_assert_uint_eq(c.regex_heap_limit, 1u << 20);
    ck_assert_uint_eq(c.regex_max_length, 2048);
    ck_assert_int_eq(parse(&c, NULL, err, sizeof err, "--regex-jit", "2", NULL), FLOWD_CONFIG_ERROR);
    ck_assert_str_eq(err, "--regex-jit: '2' is not valid: expected a whole number from 0 to 1");
    ck_assert_int_eq(parse(&c, NULL, err, sizeof err, "--regex-match-limit", "10", NULL), FLOWD_CONFIG_ERROR);
    ck_assert_str_eq(err, "--regex-match-limit: '10' is not valid: expected a whole number from 1000 to 4000000000");
}
END_TEST

START_TEST(test_sizes_and_durations) {
    uint64_t v;
    static const struct {
        const char *text;
        uint64_t bytes;
    } sizes[] = {{"1048576", 1048576}, {"64k", 65536},   {"64KiB", 65536}, {"1MiB", 1048576},
                 {"1.5KiB", 1536},     {"2M", 2097152}, {"1gib", 1073741824}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ck_assert_msg(flowd_parse_size(sizes[i].text, &v) == 0, "%s", sizes[i].text);
        ck_assert_uint_eq(v, sizes[i].bytes);
    }
    static const char *const bad_sizes[] = {"", "k", "-1", "1.5", "12 MiB", "1TiB", "lots", "0x10"};
    for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++)
        ck_assert_msg(flowd_parse_size(bad_sizes[i], &v) < 0, "'%s' was taken", bad_sizes[i]);
    static const struct {
        const char *text;
        uint64_t ms;
    } times[] = {{"90", 90000}, {"90s", 90000}, {"1500ms", 1500}, {"10m", 600000},
                 {"24h", 86400000}, {"7d", 604800000}, {"0.5", 500}, {"0", 0}};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        ck_assert_msg(flowd_parse_duration_ms(times[i].text, &v) == 0, "%s", times[i].text);
        ck_assert_uint_eq(v, times[i].ms);
    }
    static const char *const bad_times[] = {"", "s", "-1", "10 s", "10sec", "1e400", "nan"};
    for (size_t i = 0; i < sizeof bad_times / sizeof bad_times[0]; i++)
        ck_assert_msg(flowd_parse_duration_ms(bad_times[i], &v) < 0, "'%s' was taken", bad_times[i]);
}
END_TEST

START_TEST(test_errors_name_the_flag) {
    flowd_config_t c;
    char err[256];
    static const struct {
        const char *flag, *value, *words;
    } cases[] = {
        {"--port", "70000", "--port: '70000' is not valid: expected a whole number from 0 to 65535"},
        {"--max-body", "lots", "--max-body: 'lots' is not valid"},
        {"--http-threads", "0", "from 1 to 256"},
        {"--retention", "500ms", "--retention"},
        {"--idle-timeout", "1500ms", "whole seconds"},
        {"--log-level", "loud", "debug, info, warn or error"},
        {"--bind", "example.org", "an IPv4 or IPv6 address"},
        {"--lua-budget", "999000000000", "--lua-budget: '999000000000' is not valid"},
        {"--lua-memory", "1k", "--lua-memory"},
        {"--lua-budget", "200000000", "--lua-budget (200000000) is more than --lua-budget-max (100000000)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(parse(&c, NULL, err, sizeof err, cases[i].flag, cases[i].value, NULL),
                         FLOWD_CONFIG_ERROR);
        ck_assert_msg(strstr(err, cases[i].words) != NULL, "%s %s: %s", cases[i].flag, cases[i].value, err);
    }
    ck_assert_int_eq(parse(&c, NULL, err, sizeof err, "--prot", "1", NULL), FLOWD_CONFIG_ERROR);
    ck_assert_str_eq(err, "unknown flag '--prot' (see --help)");
    ck_assert_int_eq(parse(&c, NULL, err, sizeof err, "--port", NULL), FLOWD_CONFIG_ERROR);
    ck_assert_str_eq(err, "--port needs a value (N)");
    ck_assert_int_eq(parse(&c, NULL, err, sizeof err, "8080", NULL), FLOWD_CONFIG_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "unexpected argument '8080'"));
    static const char *const env[] = {"FLOWD_GRACE=forever", NULL};
    ck_assert_int_eq(parse(&c, env, err, sizeof err, NULL), FLOWD_CONFIG_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "FLOWD_GRACE: 'forever' is not valid"));
}
END_TEST

START_TEST(test_help_and_version) {
    flowd_config_t c;
    char err[256];
    ck_assert_int_eq(parse(&c, NULL, err, sizeof err, "--port", "1", "--help", NULL), FLOWD_CONFIG_HELP);
    ck_assert_int_eq(parse(&c, NULL, err, sizeof err, "--version", NULL), FLOWD_CONFIG_VERSION);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    flowd_config_usage(f);
    fclose(f);
    static const char *const want[] = {"--bind ADDR", "env FLOWD_BIND, default 127.0.0.1", "--port N",
                                       "--max-jobs N", "env FLOWD_RETENTION, default 24h",
                                       "--grace DURATION", "--max-conns-per-ip N", "--help", "--version"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(text, want[i]) != NULL, "no '%s' in the usage", want[i]);
    free(text);
}
END_TEST

/* --allow-outbound, --deny-outbound (entries checked when read) and --flow-outbound. */
START_TEST(test_outbound_flags) {
    flowd_config_t c;
    char err[256];
    ck_assert_int_eq(parse(&c, NULL, err, sizeof err, NULL), FLOWD_CONFIG_RUN);
    ck_assert_str_eq(c.allow_outbound, "");
    ck_assert_str_eq(c.deny_outbound, "");
    ck_assert_int_eq(c.flow_outbound, 1);
    static const char *const env[] = {"FLOWD_ALLOW_OUTBOUND=10.0.0.0/8", "FLOWD_FLOW_OUTBOUND=off", NULL};
    ck_assert_int_eq(parse(&c, env, err, sizeof err, "--deny-outbound=0.0.0.0/0,::/0", NULL), FLOWD_CONFIG_RUN);
    ck_assert_str_eq(c.allow_outbound, "10.0.0.0/8");
    ck_assert_str_eq(c.deny_outbound, "0.0.0.0/0,::/0");
    ck_assert_int_eq(c.flow_outbound, 0);
    ck_assert_int_eq(parse(&c, env, err, sizeof err, "--allow-outbound", "127.0.0.1:8090, [::1]:9000, api.example.com",
                           "--flow-outbound", "on", NULL),
                     FLOWD_CONFIG_RUN);
    ck_assert_str_eq(c.allow_outbound, "127.0.0.1:8090, [::1]:9000, api.example.com");
    ck_assert_int_eq(c.flow_outbound, 1);
    ck_assert_int_eq(parse(&c, NULL, err, sizeof err, "--allow-outbound", "10.0.0.0/8,0x7f000001", NULL),
                     FLOWD_CONFIG_ERROR);
    ck_assert_str_eq(err, "--allow-outbound: '0x7f000001': write an IPv4 address as four decimal numbers, such as "
                          "127.0.0.1");
    static const char *const bad_env[] = {"FLOWD_DENY_OUTBOUND=[::1]:0", NULL};
    ck_assert_int_eq(parse(&c, bad_env, err, sizeof err, NULL), FLOWD_CONFIG_ERROR);
    ck_assert_str_eq(err, "FLOWD_DENY_OUTBOUND: '[::1]:0': the port after ':' is 1 to 65535");
    ck_assert_int_eq(parse(&c, NULL, err, sizeof err, "--flow-outbound", "yes", NULL), FLOWD_CONFIG_ERROR);
    ck_assert_str_eq(err, "--flow-outbound: 'yes' is not valid: expected on or off");
}
END_TEST

/* start_at of POST /v1/jobs: RFC 3339 with any offset, read to the microsecond. */
START_TEST(test_rfc3339_times) {
    static const struct {
        const char *text;
        uint64_t us;
    } good[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2026-12-05T14:00:00Z", 1796479200000000ull},
        {"2026-12-05t14:00:00z", 1796479200000000ull},
        {"2026-12-05 14:00:00Z", 1796479200000000ull},
        {"2026-12-05T15:00:00+01:00", 1796479200000000ull},
        {"2026-12-05T09:30:00-04:30", 1796479200000000ull},
        {"2026-12-05T14:00:00.5Z", 1796479200500000ull},
        {"2026-12-05T14:00:00.123456789Z", 1796479200123456ull},
        {"2024-02-29T00:00:00Z", 1709164800000000ull},
        {"2000-03-01T00:00:00Z", 951868800000000ull},
    };
    static const char *const bad[] = {
        "", "2026-12-05", "2026-12-05T14:00:00", "2026-12-05T14:00Z", "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-12-05T24:00:00Z",
        "2026-12-05T14:60:00Z", "2026-12-05T14:00:00.Z", "2026-12-05T14:00:00.1234567890Z",
        "2026-12-05T14:00:00+0100", "2026-12-05T14:00:00+24:00", "2026-12-05T14:00:00ZZ",
        "1969-12-31T23:59:59Z", "1970-01-01T00:30:00+01:00", "2026-12-05X14:00:00Z",
        "20x6-12-05T14:00:00Z", "2026-12-05T14:00:00 Z"};
    uint64_t us = 0;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ck_assert_msg(flowd_parse_time(good[i].text, strlen(good[i].text), &us) == 0, "%s",
                      good[i].text);
        ck_assert_msg(us == good[i].us, "%s: %llu", good[i].text, (unsigned long long)us);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(flowd_parse_time(bad[i], strlen(bad[i]), &us) < 0, "'%s' was taken", bad[i]);
    /* what the server writes, it reads */
    char t[32];
    flowd_format_time(1796479200123456ull, t);
    ck_assert_int_eq(flowd_parse_time(t, strlen(t), &us), 0);
    ck_assert_uint_eq(us, 1796479200123456ull);
}
END_TEST

static Suite *config_suite(void) {
    Suite *s = suite_create("server_config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_flag_wins_over_variable_over_default);
    tcase_add_test(tc, test_regex_limits);
    tcase_add_test(tc, test_sizes_and_durations);
    tcase_add_test(tc, test_errors_name_the_flag);
    tcase_add_test(tc, test_help_and_version);
    tcase_add_test(tc, test_outbound_flags);
    tcase_add_test(tc, test_rfc3339_times);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(config_suite());
}
