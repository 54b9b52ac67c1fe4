/* cron.c: cron expressions and their next times in an IANA zone (cron.h).
 *
 * Hand-written, because no Debian C library does this well: libcronie and the cron daemons do not
 * ship their parsers as libraries, and the C libraries that exist (ccronexpr and the like) are not
 * packaged and either ignore time zones or switch them with setenv("TZ"), which is not thread-safe
 * in a threaded server. The parsing is small; the hard part is the zone, which ICU's ucal does
 * (libicu-dev, the C world's kept calendar library): a UCalendar per call gives the UTC offset of any
 * instant in any zone, from the zone data ICU keeps up to date, with no process-wide state. Glibc has
 * no per-call zone API, and parsing TZif files ourselves would be a second copy of that data and its
 * rules (POSIX TZ footers for the years past the table) to keep right.
 *
 * How a next time is found: the cron's fields name local wall-clock times, so the search runs on
 * "naive" local seconds (days and seconds of a proleptic Gregorian calendar, no zone), from the local
 * time of `after`; each candidate is then turned back into UTC. A local time with no UTC instant (the
 * clocks went forward over it) becomes the instant of the jump; one with two (the clocks went back)
 * its first. Every loop is bounded: the day search by FLOWD_CRON_YEARS, the candidates by
 * MAX_CANDIDATES. */
#include "cron.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/ucal.h>
#include <unicode/ustring.h>

#include "flow.h"

#define DAY 86400
/* Candidates looked at for one next time: enough for an every-second cron over an hour the clocks
 * repeat (3600 of its times have already run at their first occurrence). */
#define MAX_CANDIDATES 8000

/* ---- parsing ---- */

typedef struct field {
    const char *name;
    int min, max;
    const char *const *names; /* 3-letter names from min, or NULL */
} field_t;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const field_t fields[] = {
    {"second", 0, 59, NULL},       {"minute", 0, 59, NULL}, {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL}, {"month", 1, 12, month_names},
    {"day of week", 0, 7, day_names},
};

static const struct {
    const char *name, *expr;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* A number or (for fields with names) a name at *p: 0 and the value, or -1. */
static int value(const field_t *f, const char **p, const char *end, int *out) {
    const char *s = *p;
    if (s < end && isdigit((unsigned char)*s)) {
        int v = 0;
        size_t digits = 0;
        while (s < end && isdigit((unsigned char)*s)) {
            if (++digits > 3)
                return -1;
            v = v * 10 + (*s++ - '0');
        }
        *p = s;
        *out = v;
        return 0;
    }
    if (f->names == NULL || end - s < 3)
        return -1;
    for (int i = 0; f->names[i] != NULL; i++) {
        if (strncasecmp(s, f->names[i], 3) == 0 && (end - s == 3 || !isalpha((unsigned char)s[3]))) {
            *p = s + 3;
            *out = f->min + i;
            return 0;
        }
    }
    return -1;
}

/* One field's text [s, end) into a bit mask. */
static int parse_field(const field_t *f, const char *s, const char *end, uint64_t *mask, char *err,
                       size_t errlen) {
    *mask = 0;
    const char *item = s;
    while (item < end) {
        const char *stop = memchr(item, ',', (size_t)(end - item));
        if (stop == NULL)
            stop = end;
        const char *p = item;
        int lo, hi, step = 1;
        int len = (int)(stop - item);
        if (p == stop) {
            snprintf(err, errlen, "%s: an empty item in '%.*s'", f->name, (int)(end - s), s);
            return FLOW_EINVAL;
        }
        if (*p == '*') {
            lo = f->min;
            hi = f->max;
            p++;
        } else {
            if (value(f, &p, stop, &lo) < 0)
                goto bad;
            hi = lo;
            if (p < stop && *p == '-') {
                p++;
                if (value(f, &p, stop, &hi) < 0)
                    goto bad;
            } else if (p < stop && *p == '/') {
                hi = f->max; /* N/STEP: from N to the end */
            }
        }
        if (p < stop && *p == '/') {
            p++;
            const char *q = p;
            step = 0;
            while (p < stop && isdigit((unsigned char)*p) && p - q < 3)
                step = step * 10 + (*p++ - '0');
            if (p == q || step == 0) {
                snprintf(err, errlen, "%s: '%.*s' needs a step of 1 or more after '/'", f->name, len,
                         item);
                return FLOW_EINVAL;
            }
        }
        if (p != stop)
            goto bad;
        if (lo < f->min || lo > f->max || hi < f->min || hi > f->max) {
            snprintf(err, errlen, "%s: '%.*s' is outside %d-%d", f->name, len, item, f->min, f->max);
            return FLOW_EINVAL;
        }
        if (lo > hi) {
            snprintf(err, errlen, "%s: the range '%.*s' runs backwards (write it as two ranges)",
                     f->name, len, item);
            return FLOW_EINVAL;
        }
        for (int v = lo; v <= hi; v += step)
            *mask |= 1ull << v;
        item = stop < end ? stop + 1 : end;
        if (stop < end && item == end) {
            snprintf(err, errlen, "%s: an empty item in '%.*s'", f->name, (int)(end - s), s);
            return FLOW_EINVAL;
        }
        continue;
    bad:
        snprintf(err, errlen, "%s: '%.*s' is not a value, a range or a step%s", f->name, len, item,
                 f->names == month_names ? " (months: 1-12 or JAN-DEC)"
                 : f->names == day_names ? " (days: 0-7 or SUN-SAT)"
                                         : "");
        return FLOW_EINVAL;
    }
    return 0;
}

int flowd_cron_parse(const char *text, flowd_cron_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (text == NULL || strlen(text) > FLOWD_CRON_MAX) {
        snprintf(err, errlen, "a cron expression is 1 to %d characters", FLOWD_CRON_MAX);
        return FLOW_EINVAL;
    }
    while (*text == ' ' || *text == '\t')
        text++;
    if (*text == '@') {
        size_t n = strcspn(text, " \t");
        if (text[n + strspn(text + n, " \t")] == '\0')
            for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
                if (strlen(macros[i].name) == n && strncasecmp(text, macros[i].name, n) == 0)
                    return flowd_cron_parse(macros[i].expr, out, err, errlen);
        snprintf(err, errlen,
                 "'%.32s' is not a shorthand flowd knows (@yearly, @annually, @monthly, @weekly, "
                 "@daily, @midnight, @hourly)",
                 text);
        return FLOW_EINVAL;
    }
    const char *start[7], *end[7];
    size_t n = 0;
    const char *p = text;
    while (*p != '\0') {
        if (n == 7)
            break;
        start[n] = p;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
        end[n++] = p;
        while (*p == ' ' || *p == '\t')
            p++;
    }
    if (n != 5 && n != 6) {
        snprintf(err, errlen,
                 "a cron expression has 5 fields (minute hour day-of-month month day-of-week), or 6 "
                 "with seconds first; '%.64s' has %s%zu",
                 text, n == 7 ? "more than " : "", n == 7 ? (size_t)6 : n);
        return FLOW_EINVAL;
    }
    uint64_t masks[6];
    size_t first = n == 6 ? 0 : 1;
    masks[0] = 1; /* second 0 without a seconds field */
    for (size_t i = 0; i < n; i++) {
        int rc = parse_field(&fields[first + i], start[i], end[i], &masks[first + i], err, errlen);
        if (rc < 0)
            return rc;
    }
    out->seconds = n == 6;
    out->sec = masks[0];
    out->min = masks[1];
    out->hour = (uint32_t)masks[2];
    out->dom = (uint32_t)masks[3];
    out->mon = (uint16_t)masks[4];
    out->dow = (uint8_t)((masks[5] | (masks[5] >> 7)) & 0x7f); /* 7 is Sunday */
    out->dom_any = *start[n - 3] == '*';
    out->dow_any = *start[n - 1] == '*';
    return 0;
}

/* ---- naive local time: a proleptic Gregorian calendar without zones ---- */

static int64_t floor_div(int64_t a, int64_t b) {
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* Howard Hinnant's days_from_civil and civil_from_days (days since 1970-01-01). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    z += 719468;
    int64_t era = floor_div(z, 146097);
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int day_matches(const flowd_cron_t *c, unsigned d, int64_t days) {
    int dom = (c->dom >> d) & 1;
    int64_t weekday = days + 4 - floor_div(days + 4, 7) * 7; /* 1970-01-01 was a Thursday */
    int dow = (c->dow >> weekday) & 1;
    if (c->dom_any || c->dow_any)
        return dom && dow;
    return dom || dow;
}

/* The first time of the day at or after h:m:s; 0, or -1 when none is left that day. */
static int time_in_day(const flowd_cron_t *c, int *h, int *m, int *s) {
    for (int hh = *h; hh < 24; hh++) {
        if (!((c->hour >> hh) & 1))
            continue;
        for (int mm = hh == *h ? *m : 0; mm < 60; mm++) {
            if (!((c->min >> mm) & 1))
                continue;
            for (int ss = hh == *h && mm == *m ? *s : 0; ss < 60; ss++) {
                if ((c->sec >> ss) & 1) {
                    *h = hh;
                    *m = mm;
                    *s = ss;
                    return 0;
                }
            }
        }
    }
    return -1;
}

/* The first naive local time after l that c names: 0, or -1 when none within FLOWD_CRON_YEARS. */
static int naive_next(const flowd_cron_t *c, int64_t l, int64_t *out) {
    int64_t t = l + 1;
    int64_t day = floor_div(t, DAY);
    int64_t sod = t - day * DAY;
    int h = (int)(sod / 3600), m = (int)(sod / 60 % 60), s = (int)(sod % 60);
    int64_t y0, y;
    unsigned mo, d;
    civil_from_days(day, &y0, &mo, &d);
    for (;;) {
        civil_from_days(day, &y, &mo, &d);
        if (y > y0 + FLOWD_CRON_YEARS)
            return -1;
        if (!((c->mon >> mo) & 1)) {
            day = days_from_civil(mo == 12 ? y + 1 : y, mo == 12 ? 1 : mo + 1, 1);
            h = m = s = 0;
            continue;
        }
        if (day_matches(c, d, day) && time_in_day(c, &h, &m, &s) == 0) {
            *out = day * DAY + h * 3600 + m * 60 + s;
            return 0;
        }
        day++;
        h = m = s = 0;
    }
}

/* ---- zones (ICU) ---- */

static int zone_chars_ok(const char *zone) {
    size_t n = strlen(zone);
    if (n == 0 || n > FLOWD_TZ_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)zone[i]) && strchr("/_+-", zone[i]) == NULL)
            return 0;
    return 1;
}

/* A calendar in zone, or NULL when ICU does not know it (ICU would quietly take GMT: the zone is
 * checked against its list first). */
static UCalendar *open_zone(const char *zone) {
    UChar id[FLOWD_TZ_MAX + 1], canon[128];
    UBool system = 0;
    UErrorCode st = U_ZERO_ERROR;
    if (zone == NULL || !zone_chars_ok(zone))
        return NULL;
    u_uastrcpy(id, zone);
    ucal_getCanonicalTimeZoneID(id, -1, canon, 128, &system, &st);
    if (U_FAILURE(st) || !system)
        return NULL;
    UCalendar *cal = ucal_open(id, -1, "en_US_POSIX", UCAL_GREGORIAN, &st);
    if (U_FAILURE(st)) {
        if (cal != NULL)
            ucal_close(cal);
        return NULL;
    }
    return cal;
}

/* The UTC offset at t, in seconds. */
static int32_t offset_at(UCalendar *cal, int64_t t) {
    UErrorCode st = U_ZERO_ERROR;
    ucal_setMillis(cal, (UDate)t * 1000.0, &st);
    int32_t z = ucal_get(cal, UCAL_ZONE_OFFSET, &st);
    int32_t dst = ucal_get(cal, UCAL_DST_OFFSET, &st);
    return U_FAILURE(st) ? 0 : (z + dst) / 1000;
}

static int64_t local_of(UCalendar *cal, int64_t t) {
    return t + offset_at(cal, t);
}

/* The UTC instants whose local time is l, earliest first: 0, 1 or 2 of them. The offsets in effect
 * around l are those a day before and a day after (zones do not change twice in two days). */
static int instants_of(UCalendar *cal, int64_t l, int64_t out[2]) {
    int32_t before = offset_at(cal, l - DAY), after = offset_at(cal, l + DAY);
    int n = 0;
    int32_t offs[2] = {before, after};
    for (int i = 0; i < 2; i++) {
        int64_t t = l - offs[i];
        if (local_of(cal, t) == l && (n == 0 || out[0] != t))
            out[n++] = t;
    }
    if (n == 2 && out[1] < out[0]) {
        int64_t x = out[0];
        out[0] = out[1];
        out[1] = x;
    }
    return n;
}

/* l has no instant (the clocks jumped over it): the instant of the jump, the first whose local time
 * is past l. */
static int64_t jump_after(UCalendar *cal, int64_t l) {
    int64_t lo = l - DAY, hi = l + DAY; /* local(lo) < l < local(hi) */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (local_of(cal, mid) > l)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

int flowd_tz_check(const char *zone) {
    UCalendar *cal = open_zone(zone);
    if (cal == NULL)
        return FLOW_EINVAL;
    ucal_close(cal);
    return 0;
}

int flowd_tz_offset(const char *zone, int64_t t, int32_t *out) {
    UCalendar *cal = open_zone(zone);
    if (cal == NULL)
        return FLOW_EINVAL;
    *out = offset_at(cal, t);
    ucal_close(cal);
    return 0;
}

int flowd_cron_next(const flowd_cron_t *c, const char *zone, int64_t after, int64_t *out) {
    UCalendar *cal = open_zone(zone);
    if (cal == NULL)
        return FLOW_EINVAL;
    int rc = FLOW_ENOTFOUND;
    int64_t l = local_of(cal, after);
    for (int i = 0; i < MAX_CANDIDATES; i++) {
        int64_t n, at[2];
        if (naive_next(c, l, &n) < 0)
            break;
        int k = instants_of(cal, n, at);
        int64_t t = k == 0 ? jump_after(cal, n) : at[0];
        if (t > after) {
            *out = t;
            rc = 0;
            break;
        }
        l = n; /* its first occurrence has passed: it ran then */
    }
    ucal_close(cal);
    return rc;
}
