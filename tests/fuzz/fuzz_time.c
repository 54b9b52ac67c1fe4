/* fuzz_time.c: the parsers of times that a caller sends: cron expressions (server/cron.h, PUT
 * /v1/schedules), RFC 3339 date-times (flowd_parse_time, a job's start_at) and durations
 * (flowd_parse_duration_ms, a job's delay and the flags). The input is a cron expression, a newline,
 * then a date-time; the date-time is read from a buffer of exactly its length (a read past it shows
 * under ASan) and, when it parses, must print and parse back to the same instant; the cron, when it
 * parses, must give a next time after a fixed instant that is later and that it names again. */
#include <string.h>

#include "config.h"
#include "cron.h"
#include "flow.h"
#include "fuzz.h"
#include "jsonw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    size_t clen = nl != NULL ? (size_t)(nl - data) : size;
    const uint8_t *text = nl != NULL ? nl + 1 : data + size;
    size_t tlen = size - clen - (nl != NULL);

    char *cron = fuzz_string(data, clen);
    flowd_cron_t c;
    char err[256] = "";
    int rc = flowd_cron_parse(cron, &c, err, sizeof err);
    fuzz_assert(rc == 0 || (rc == FLOW_EINVAL && err[0] != '\0'));
    if (rc == 0) {
        const int64_t after = 1796000000; /* 2026-11-29 */
        int64_t next = 0, again = 0;
        rc = flowd_cron_next(&c, "UTC", after, &next);
        fuzz_assert(rc == 0 || rc == FLOW_ENOTFOUND);
        if (rc == 0) {
            fuzz_assert(next > after);
            /* the time just before next names next again */
            fuzz_assert(flowd_cron_next(&c, "UTC", next - 1, &again) == 0 && again == next);
        }
    }
    uint64_t ms = 0;
    (void)flowd_parse_duration_ms(cron, &ms);
    free(cron);

    char *exact = fuzz_exact_copy(text, tlen);
    uint64_t us = 0, back = 0;
    /* round trip within 4-digit years: 9999-12-31T23:59:60Z is year 10000's first second, which
     * prints with 5 digits (no start_at comes near: --max-delay) */
    if (flowd_parse_time(exact, tlen, &us) == 0 && us < 253402300800000000u) {
        char out[32];
        flowd_format_time(us, out);
        fuzz_assert(flowd_parse_time(out, strlen(out), &back) == 0);
        /* a leap second (":60") reads as the next minute's first */
        fuzz_assert(back == us);
    }
    free(exact);
    return 0;
}
