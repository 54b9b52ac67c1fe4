/* cron.h: cron expressions and the times they name in an IANA time zone, for schedules
 * (schedules.h). Pure functions: any thread.
 *
 * An expression has the 5 standard fields, minute hour day-of-month month day-of-week, or 6 with
 * a seconds field first (as Spring's and Quartz's crons have it; flowd's tests run schedules every
 * few seconds with it). Each field is a comma list of `*`, `N`, `N-M`, each optionally `/STEP`
 * (`N/STEP` is `N-max/STEP`); months take JAN-DEC and days SUN-SAT (any case); day-of-week 7 is
 * Sunday too. Day of month and day of week follow Vixie cron's rule: when both are restricted (neither
 * starts with `*`) a day matches either; otherwise it must match both. @yearly, @annually,
 * @monthly, @weekly, @daily, @midnight and @hourly are the usual shorthands.
 *
 * Times are whole seconds since the epoch (UTC). A local time that a zone skips (the hour lost when
 * the clocks go forward) is moved to the moment the clocks jump, once; a local time that a zone has
 * twice (the hour repeated when they go back) runs once, at its first occurrence. */
#ifndef FLOWD_CRON_H
#define FLOWD_CRON_H

#include <stddef.h>
#include <stdint.h>

#define FLOWD_CRON_MAX 256   /* the longest expression taken */
#define FLOWD_TZ_MAX 64      /* the longest zone name taken */
#define FLOWD_CRON_YEARS 10  /* how far ahead a next time is looked for */

typedef struct flowd_cron {
    uint64_t sec;   /* bit n: second n (0-59) */
    uint64_t min;   /* bit n: minute n (0-59) */
    uint32_t hour;  /* bit n: hour n (0-23) */
    uint32_t dom;   /* bit n: day n of the month (1-31) */
    uint16_t mon;   /* bit n: month n (1-12) */
    uint8_t dow;    /* bit n: day n of the week (0-6, Sunday 0) */
    uint8_t dom_any, dow_any; /* the field started with '*' (the day-of-month/day-of-week rule) */
    uint8_t seconds; /* it had a seconds field */
} flowd_cron_t;

/* Parses text into *out: 0, or FLOW_EINVAL with why (naming the field) in err. */
int flowd_cron_parse(const char *text, flowd_cron_t *out, char *err, size_t errlen);

/* Whether zone is an IANA zone name this system knows ("UTC" included): 0, or FLOW_EINVAL. */
int flowd_tz_check(const char *zone);

/* The first time after `after` (strictly) that c names in zone: 0, FLOW_ENOTFOUND when there is
 * none in the next FLOWD_CRON_YEARS years (e.g. "0 0 30 2 *"), FLOW_EINVAL for an unknown zone. */
int flowd_cron_next(const flowd_cron_t *c, const char *zone, int64_t after, int64_t *out);

/* The UTC offset of zone at t, in seconds (for tests and answers); 0 or FLOW_EINVAL. */
int flowd_tz_offset(const char *zone, int64_t t, int32_t *out);

#endif
