/* log.h: flowd's log, to stderr: one line per message, `TIME LEVEL message`, e.g.
 *   2026-11-24T17:05:00.123456Z info POST /v1/jobs 202 85us id=01a2...
 * or, with --log-format json, one JSON object a line, for log collectors:
 *   {"time":"2026-11-24T17:05:00.123456Z","level":"info","msg":"POST /v1/jobs 202 85us",
 *    "method":"POST","path":"/v1/jobs","status":202,"us":85,"request_id":"01a2..."}
 * where a message is about a job ("job ID: node NAME: ..."), "job" and "node" are fields too.
 * libflow's own messages (flow_set_logger) come here too.
 *
 * Debug and info lines (one per request, tens of thousands a second) are gathered in a buffer and
 * written with one write(2) when it passes 16 KiB or when flowd_log_flush() runs (the server calls
 * it every 100 ms from a loop timer, and at exit); warnings and errors flush at once, after what was
 * gathered, so the order of lines is kept. A line is never split between writes.
 *
 * Any thread. flowd_log_init and flowd_log_close are not thread-safe: call them first and last. */
#ifndef FLOWD_LOG_H
#define FLOWD_LOG_H

#include <stdint.h>

#include "flow.h"

/* "debug", "info", "warn" (or "warning"), "error": 0, or FLOW_EINVAL. */
int flowd_log_parse_level(const char *name, flow_log_level_t *out);
const char *flowd_log_level_name(flow_log_level_t level);

/* Sets the level and routes libflow's log here. fd: where lines go (2 for stderr); json: lines
 * are JSON objects (--log-format json). */
void flowd_log_init(flow_log_level_t level, int fd, int json);
int flowd_log_enabled(flow_log_level_t level);
void flowd_log(flow_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logged whatever the level (the startup line, say), and flushed at once. */
void flowd_log_always(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The request line: "METHOD PATH STATUS Nus" at info, " key=NAME" when a key sent it (its name,
 * never the key; key "" or NULL: none), " id=REQUEST_ID" (X-Request-Id; NULL or "": none), and
 * " traceparent=..." when the request carried a W3C trace context (NULL or "": none). */
void flowd_log_request(const char *method, const char *path, unsigned status, uint64_t us,
                       const char *key, const char *request_id, const char *traceparent);
void flowd_log_flush(void);
/* Flushes and restores libflow's default logger. */
void flowd_log_close(void);

#endif
