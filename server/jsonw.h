/* jsonw.h: JSON text written straight into a growable, capped buffer (flow_buf_t of flow/buf.h).
 * The server renders its answers (jobs, steps, errors) with it instead of building jansson trees,
 * because that is the hot path of POST /v1/jobs; the output matches jansson's: compact like
 * JSON_COMPACT, or pretty like JSON_INDENT(2) (`{` newline, two spaces a level, `"key": value`, `{}`
 * and `[]` when empty), and strings escaped as jansson escapes them (no ASCII-only or slash
 * escaping).
 *
 * The buffer's errors stick, so a writer checks once, at the end (flow_buf_take). flowd keeps
 * libflow's default allocator, so what flow_buf_take hands over is free()'d, by libmicrohttpd too.
 * Any thread; one buffer is used by one thread at a time. */
#ifndef FLOWD_JSONW_H
#define FLOWD_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "flow/buf.h"

/* RFC 3339 UTC with microseconds ("2026-11-24T17:05:00.123456Z", 27 bytes and a NUL) into out. */
void flowd_format_time(uint64_t us, char out[32]);
/* An RFC 3339 date-time ("2026-12-05T14:00:00Z", "...T15:00:00.5+01:00"; 'T' or 't' or ' ', 'Z' or
 * 'z' or an offset; up to 9 digits of fraction, read to the microsecond) as microseconds since
 * 1970 UTC. 0, or FLOW_EINVAL for anything else, or a time before 1970. Hand-written: strptime
 * reads neither offsets with a colon nor fractions, and timegm is not C11. */
int flowd_parse_time(const char *s, size_t len, uint64_t *us);
/* Decimal text of v into out (room for 20 bytes; no NUL); returns its length. */
size_t flowd_format_u64(uint64_t v, char *out);

#define FLOWD_JW_MAX_DEPTH 60

typedef struct flowd_jw {
    flow_buf_t *b;
    unsigned indent;   /* 0: compact; else spaces per level */
    unsigned depth;
    uint64_t nonempty; /* bit d: the container at depth d has an element */
    int after_key;     /* the next value follows a key: no separator before it */
} flowd_jw_t;

void flowd_jw_init(flowd_jw_t *w, flow_buf_t *b, unsigned indent);
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
/* Appends v (borrowed) to b as compact JSON (JSON_COMPACT | JSON_ENCODE_ANY); the dump stops once
 * past b's cap (b->err says so). */
void flowd_json_compact(flow_buf_t *b, const json_t *v);
/* A jansson value (borrowed); NULL writes null. */
void flowd_jw_json(flowd_jw_t *w, const json_t *v);

/* The bytes of v as compact JSON (as the stores write it), counted by a dump that stops once past
 * cap: the size when it is at most cap, else some number above cap. Any thread; v is only read. */
size_t flowd_json_size(const json_t *v, size_t cap);

/* Appends compact JSON text to b re-indented like JSON_INDENT(indent), its nested lines starting at
 * depth levels. */
void flowd_reindent(flow_buf_t *b, const char *text, size_t len, unsigned indent, unsigned depth);

#endif
