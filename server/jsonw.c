/* jsonw.c: the JSON writer of jsonw.h. */
#include "jsonw.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flow.h"
#include "flow/utf8.h"

/* ---- time ---- */

/* Writes the n decimal digits of v (zero-padded) at p. */
static void put_digits(char *p, unsigned v, int n) {
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void flowd_format_time(uint64_t us, char out[32]) {
    /* gmtime_r once a second per thread: request logs and job answers format many times a second */
    static _Thread_local time_t cached_sec = (time_t)-1;
    static _Thread_local char cached[20];
    time_t sec = (time_t)(us / 1000000u);
    if (sec != cached_sec) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        if (strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm) != 19)
            memcpy(cached, "0000-00-00T00:00:00", 20);
        cached_sec = sec;
    }
    memcpy(out, cached, 19);
    out[19] = '.';
    put_digits(out + 20, (unsigned)(us % 1000000u), 6);
    out[26] = 'Z';
    out[27] = '\0';
}

/* n decimal digits at s, or -1. */
static long digits(const char *s, size_t n) {
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar (Howard Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int flowd_parse_time(const char *s, size_t len, uint64_t *us) {
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':')
        return FLOW_EINVAL;
    long y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2), h = digits(s + 11, 2),
         mi = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || (unsigned long)d > mdays[mo - 1] || h < 0 ||
        h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
        return FLOW_EINVAL;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return FLOW_EINVAL;
    size_t i = 19;
    uint64_t frac = 0;
    if (i < len && s[i] == '.') {
        size_t n = 0;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, n++)
            if (n < 6)
                frac = frac * 10 + (uint64_t)(s[i] - '0');
        if (n == 0 || n > 9)
            return FLOW_EINVAL;
        for (; n < 6; n++)
            frac *= 10;
    }
    int64_t offset_s = 0;
    if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        long oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return FLOW_EINVAL;
        offset_s = (s[i] == '-' ? -1 : 1) * (int64_t)(oh * 3600 + om * 60);
        i += 6;
    }
    if (i != len)
        return FLOW_EINVAL;
    int64_t t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec -
                offset_s;
    if (t < 0)
        return FLOW_EINVAL;
    *us = (uint64_t)t * 1000000u + frac;
    return 0;
}

size_t flowd_format_u64(uint64_t v, char *out) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* ---- the writer ---- */

void flowd_jw_init(flowd_jw_t *w, flow_buf_t *b, unsigned indent) {
    memset(w, 0, sizeof *w);
    w->b = b;
    w->indent = indent;
}

static void newline(flow_buf_t *b, unsigned indent, unsigned depth) {
    static const char spaces[] = "                                                                ";
    if (indent == 0)
        return;
    flow_buf_addc(b, '\n');
    size_t n = (size_t)indent * depth;
    while (n > 0) {
        size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        flow_buf_add(b, spaces, k);
        n -= k;
    }
}

/* Before a value or a key: the separator and the new line, unless the value follows its key. */
static void before(flowd_jw_t *w) {
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->depth == 0)
        return;
    uint64_t bit = (uint64_t)1 << (w->depth - 1);
    if (w->nonempty & bit)
        flow_buf_addc(w->b, ',');
    w->nonempty |= bit;
    newline(w->b, w->indent, w->depth);
}

static void open_container(flowd_jw_t *w, char c) {
    before(w);
    flow_buf_addc(w->b, c);
    if (w->depth >= FLOWD_JW_MAX_DEPTH) {
        w->b->err = FLOW_ETOOBIG;
        return;
    }
    w->depth++;
    w->nonempty &= ~((uint64_t)1 << (w->depth - 1));
}

static void close_container(flowd_jw_t *w, char c) {
    if (w->depth == 0) {
        w->b->err = FLOW_EINVAL;
        return;
    }
    uint64_t bit = (uint64_t)1 << (w->depth - 1);
    w->depth--;
    if (w->nonempty & bit)
        newline(w->b, w->indent, w->depth);
    flow_buf_addc(w->b, c);
}

void flowd_jw_obj(flowd_jw_t *w) {
    open_container(w, '{');
}

void flowd_jw_obj_end(flowd_jw_t *w) {
    close_container(w, '}');
}

void flowd_jw_arr(flowd_jw_t *w) {
    open_container(w, '[');
}

void flowd_jw_arr_end(flowd_jw_t *w) {
    close_container(w, ']');
}

/* A JSON string literal; invalid UTF-8 becomes U+FFFD so the answer stays valid JSON. */
static void put_string(flow_buf_t *b, const char *s, size_t len) {
    static const char hex[] = "0123456789ABCDEF"; /* jansson's case */
    const unsigned char *p = (const unsigned char *)s;
    size_t start = 0, i = 0;
    flow_buf_addc(b, '"');
    while (i < len) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++; /* the common case: copied in bulk below */
            continue;
        }
        const char *esc = NULL;
        char u[7];
        size_t n = 1;
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c == '\b')
            esc = "\\b";
        else if (c == '\f')
            esc = "\\f";
        else if (c < 0x20) {
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            u[6] = '\0';
            esc = u;
        } else if (c >= 0x80) {
            n = flow_utf8_len(p + i, len - i);
            if (n == 0) {
                esc = "\xEF\xBF\xBD";
                n = 1;
            }
        }
        if (esc != NULL) {
            flow_buf_add(b, s + start, i - start);
            flow_buf_adds(b, esc);
            start = i + n;
        }
        i += n;
    }
    flow_buf_add(b, s + start, len - start);
    flow_buf_addc(b, '"');
}

void flowd_jw_key(flowd_jw_t *w, const char *key) {
    before(w);
    put_string(w->b, key, strlen(key));
    flow_buf_add(w->b, w->indent ? ": " : ":", w->indent ? 2 : 1);
    w->after_key = 1;
}

void flowd_jw_strn(flowd_jw_t *w, const char *s, size_t len) {
    before(w);
    put_string(w->b, s, len);
}

void flowd_jw_str(flowd_jw_t *w, const char *s) {
    if (s == NULL)
        flowd_jw_null(w);
    else
        flowd_jw_strn(w, s, strlen(s));
}

void flowd_jw_int(flowd_jw_t *w, int64_t v) {
    char text[24];
    size_t n = 0;
    before(w);
    if (v < 0) {
        text[n++] = '-';
        n += flowd_format_u64((uint64_t)0 - (uint64_t)v, text + n);
    } else {
        n = flowd_format_u64((uint64_t)v, text);
    }
    flow_buf_add(w->b, text, n);
}

void flowd_jw_uint(flowd_jw_t *w, uint64_t v) {
    char text[24];
    before(w);
    flow_buf_add(w->b, text, flowd_format_u64(v, text));
}

void flowd_jw_bool(flowd_jw_t *w, int v) {
    before(w);
    flow_buf_adds(w->b, v ? "true" : "false");
}

void flowd_jw_null(flowd_jw_t *w) {
    before(w);
    flow_buf_add(w->b, "null", 4);
}

void flowd_jw_time(flowd_jw_t *w, uint64_t us) {
    char t[32];
    if (us == 0) {
        flowd_jw_null(w);
        return;
    }
    flowd_format_time(us, t);
    before(w); /* no escaping needed */
    t[27] = '"';
    flow_buf_addc(w->b, '"');
    flow_buf_add(w->b, t, 28);
}

void flowd_reindent(flow_buf_t *b, const char *text, size_t len, unsigned indent, unsigned depth) {
    if (indent == 0) {
        flow_buf_add(b, text, len);
        return;
    }
    size_t start = 0;
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
            continue;
        }
        switch (c) {
        case '"':
            in_string = 1;
            break;
        case '{':
        case '[':
            flow_buf_add(b, text + start, i + 1 - start);
            start = i + 1;
            if (i + 1 < len && (text[i + 1] == '}' || text[i + 1] == ']')) {
                flow_buf_addc(b, text[i + 1]);
                start = ++i + 1;
            } else {
                newline(b, indent, ++depth);
            }
            break;
        case '}':
        case ']':
            flow_buf_add(b, text + start, i - start);
            newline(b, indent, --depth);
            flow_buf_addc(b, c);
            start = i + 1;
            break;
        case ',':
            flow_buf_add(b, text + start, i + 1 - start);
            newline(b, indent, depth);
            start = i + 1;
            break;
        case ':':
            flow_buf_add(b, text + start, i + 1 - start);
            flow_buf_addc(b, ' ');
            start = i + 1;
            break;
        default:
            break;
        }
    }
    flow_buf_add(b, text + start, len - start);
}

void flowd_jw_raw(flowd_jw_t *w, const char *text, size_t len) {
    if (text == NULL) {
        flowd_jw_null(w);
        return;
    }
    before(w);
    flowd_reindent(w->b, text, len, w->indent, w->depth);
}

static int dump_capped(const char *text, size_t len, void *data) {
    flow_buf_t *b = data;
    flow_buf_add(b, text, len);
    return b->err ? -1 : 0; /* past the cap: jansson stops the dump */
}

void flowd_json_compact(flow_buf_t *b, const json_t *v) {
    json_dump_callback(v, dump_capped, b, JSON_COMPACT | JSON_ENCODE_ANY);
}

void flowd_jw_json(flowd_jw_t *w, const json_t *v) {
    if (v == NULL) {
        flowd_jw_null(w);
        return;
    }
    /* compact first, capped as w's buffer is: its indented text is longer still */
    flow_buf_t text;
    flow_buf_init(&text, w->b->max);
    flowd_json_compact(&text, v);
    if (text.err) {
        if (!w->b->err)
            w->b->err = text.err;
    } else {
        flowd_jw_raw(w, text.data ? text.data : "", text.len);
    }
    flow_buf_free(&text);
}

typedef struct counter {
    size_t n, cap;
} counter_t;

static int count_bytes(const char *text, size_t len, void *data) {
    counter_t *c = data;
    (void)text;
    c->n += len;
    return c->n > c->cap ? -1 : 0; /* jansson stops the dump */
}

size_t flowd_json_size(const json_t *v, size_t cap) {
    counter_t c = {0, cap};
    json_dump_callback(v, count_bytes, &c, JSON_COMPACT | JSON_ENCODE_ANY);
    return c.n;
}
