/* jsonw.h: JSON text written straight into a growable, capped buffer. The server renders its answers
 * (jobs, steps, errors) with it instead of building jansson trees, because that is the hot path of
 * POST /v1/jobs; the output matches jansson's: compact like JSON_COMPACT, or pretty like
 * JSON_INDENT(2) (`{` newline, two spaces a level, `"key": value`, `{}` and `[]` when empty), and
 * strings escaped as jansson escapes them (no ASCII-only or slash escaping).
 *
 * Errors stick: once an add fails (out of memory, or past the cap) the buffer stays failed and every
 * later add is a no-op, so a writer checks once, at the end (flowd_buf_take). Any thread; one buffer
 * is used by one thread at a time. */
#ifndef FLOWD_JSONW_H
#define FLOWD_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct flowd_buf {
    char *data;   /* malloc'd, NUL-terminated while len > 0; NULL until the first add */
    size_t len;
    size_t cap;
    size_t max;   /* len never exceeds it: an add past it fails the buffer with FLOW_ETOOBIG */
    int err;      /* 0, FLOW_ENOMEM or FLOW_ETOOBIG */
} flowd_buf_t;

void flowd_buf_init(flowd_buf_t *b, size_t max); /* max 0: SIZE_MAX / 2 */
void flowd_buf_add(flowd_buf_t *b, const void *mem, size_t len);
void flowd_buf_addc(flowd_buf_t *b, char c);
void flowd_buf_adds(flowd_buf_t *b, const char *s);
void flowd_buf_printf(flowd_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands over the bytes (malloc'd, NUL-terminated; free() them) and empties b; *len (may be NULL)
 * gets their count. NULL only when b failed (b is freed then too); an empty buffer gives "". */
char *flowd_buf_take(flowd_buf_t *b, size_t *len);
void flowd_buf_free(flowd_buf_t *b); /* idempotent */

/* RFC 3339 UTC with microseconds ("2026-11-24T17:05:00.123456Z", 27 bytes and a NUL) into out. */
void flowd_format_time(uint64_t us, char out[32]);
/* Decimal text of v into out (room for 20 bytes; no NUL); returns its length. */
size_t flowd_format_u64(uint64_t v, char *out);
/* Wall clock, microseconds since the Unix epoch. */
uint64_t flowd_now_us(void);

#define FLOWD_JW_MAX_DEPTH 60

typedef struct flowd_jw {
    flowd_buf_t *b;
    unsigned indent;   /* 0: compact; else spaces per level */
    unsigned depth;
    uint64_t nonempty; /* bit d: the container at depth d has an element */
    int after_key;     /* the next value follows a key: no separator before it */
} flowd_jw_t;

void flowd_jw_init(flowd_jw_t *w, flowd_buf_t *b, unsigned indent);
void flowd_jw_obj(flowd_jw_t *w);
void flowd_jw_obj_end(flowd_jw_t *w);
void flowd_jw_arr(flowd_jw_t *w);
void flowd_jw_arr_end(flowd_jw_t *w);
void flowd_jw_key(flowd_jw_t *w, const char *key);
void flowd_jw_str(flowd_jw_t *w, const char *s); /* NULL writes null */
void flowd_jw_strn(flowd_jw_t *w, const char *s, size_t len);
void flowd_jw_int(flowd_jw_t *w, int64_t v);
void flowd_jw_uint(flowd_jw_t *w, uint64_t v);
void flowd_jw_bool(flowd_jw_t *w, int v);
void flowd_jw_null(flowd_jw_t *w);
void flowd_jw_time(flowd_jw_t *w, uint64_t us); /* 0 writes null */
/* A value given as compact JSON text (as json_dumps(JSON_COMPACT) makes it), re-indented to fit;
 * text NULL writes null. The text must be valid JSON: it is copied, not checked. */
void flowd_jw_raw(flowd_jw_t *w, const char *text, size_t len);
/* A jansson value (borrowed); NULL writes null. */
void flowd_jw_json(flowd_jw_t *w, const json_t *v);

/* The bytes of v as compact JSON (as the stores write it), counted by a dump that stops once past
 * cap: the size when it is at most cap, else some number above cap. Any thread; v is only read. */
size_t flowd_json_size(const json_t *v, size_t cap);

/* Appends compact JSON text to b re-indented like JSON_INDENT(indent), its nested lines starting at
 * depth levels. */
void flowd_reindent(flowd_buf_t *b, const char *text, size_t len, unsigned indent, unsigned depth);

#endif
