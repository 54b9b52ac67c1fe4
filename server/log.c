/* log.c: the buffered stderr log of log.h. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonw.h"

#define LOG_BUF 65536      /* gathered lines; a line longer than this is cut */
#define LOG_FLUSH_AT 16384 /* write once this much is gathered */
#define LOG_LINE_MAX 4096  /* a message longer than this is cut, with "..." */
#define FLOWD_LOG_ID_LEN 32 /* a job id's hex digits (jobs.h's FLOWD_ID_LEN) */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char buf[LOG_BUF];
static size_t buf_len;
static int log_fd = 2;
static atomic_int min_level = FLOW_LOG_INFO;
static int json_lines; /* set once at start (flowd_log_init) */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int flowd_log_parse_level(const char *name, flow_log_level_t *out) {
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (flow_log_level_t)i;
            return 0;
        }
    }
    if (strcmp(name, "warning") == 0) {
        *out = FLOW_LOG_WARN;
        return 0;
    }
    return FLOW_EINVAL;
}

const char *flowd_log_level_name(flow_log_level_t level) {
    return (unsigned)level < 4 ? level_names[level] : "unknown";
}

/* Under the lock. A failed write is dropped: there is nowhere else to report it. */
static void write_out(void) {
    size_t off = 0;
    while (off < buf_len) {
        ssize_t n = write(log_fd, buf + off, buf_len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    buf_len = 0;
}

static void emit_line(const char *line, size_t len, int flush) {
    pthread_mutex_lock(&lock);
    if (buf_len + len > sizeof buf)
        write_out();
    if (len > sizeof buf)
        len = sizeof buf;
    memcpy(buf + buf_len, line, len);
    buf_len += len;
    if (flush || buf_len >= LOG_FLUSH_AT)
        write_out();
    pthread_mutex_unlock(&lock);
}

/* The id of a job a message is about: "job <32 hex>: " at its start; its length, or 0. */
static size_t job_prefix(const char *msg) {
    if (strncmp(msg, "job ", 4) != 0)
        return 0;
    size_t n = strspn(msg + 4, "0123456789abcdef");
    return n == FLOWD_LOG_ID_LEN && msg[4 + n] == ':' ? n : 0;
}

/* A message as a JSON line (one write, like the text lines): time, level, msg, the job and node it
 * names at its start, and fields of a request (NULL: none). */
typedef struct req_fields {
    const char *method, *path, *key, *request_id, *traceparent;
    unsigned status;
    uint64_t us;
} req_fields_t;

static void json_line(const char *level, const char *msg, size_t len, int flush, const req_fields_t *rq) {
    flow_buf_t b;
    flowd_jw_t w;
    char t[32];
    flow_buf_init(&b, 0);
    flowd_jw_init(&w, &b, 0);
    flowd_format_time(flow_wall_us(), t);
    flowd_jw_obj(&w);
    flowd_jw_key(&w, "time");
    flowd_jw_str(&w, t);
    flowd_jw_key(&w, "level");
    flowd_jw_str(&w, level);
    flowd_jw_key(&w, "msg");
    flowd_jw_strn(&w, msg, len);
    size_t job = job_prefix(msg);
    if (job > 0) {
        flowd_jw_key(&w, "job");
        flowd_jw_strn(&w, msg + 4, job);
        const char *rest = msg + 4 + job + 1;
        while (*rest == ' ')
            rest++;
        const char *end = strncmp(rest, "node ", 5) == 0 ? strstr(rest + 5, ": ") : NULL;
        if (end != NULL) {
            flowd_jw_key(&w, "node");
            flowd_jw_strn(&w, rest + 5, (size_t)(end - rest - 5));
        }
    }
    if (rq != NULL) {
        flowd_jw_key(&w, "method");
        flowd_jw_str(&w, rq->method);
        flowd_jw_key(&w, "path");
        flowd_jw_str(&w, rq->path);
        flowd_jw_key(&w, "status");
        flowd_jw_uint(&w, rq->status);
        flowd_jw_key(&w, "us");
        flowd_jw_uint(&w, rq->us);
        if (rq->key != NULL && *rq->key != '\0') {
            flowd_jw_key(&w, "key");
            flowd_jw_str(&w, rq->key);
        }
        if (rq->request_id != NULL && *rq->request_id != '\0') {
            flowd_jw_key(&w, "request_id");
            flowd_jw_str(&w, rq->request_id);
        }
        if (rq->traceparent != NULL && *rq->traceparent != '\0') {
            flowd_jw_key(&w, "traceparent");
            flowd_jw_str(&w, rq->traceparent);
        }
    }
    flowd_jw_obj_end(&w);
    flow_buf_addc(&b, '\n');
    size_t n = 0;
    char *text = flow_buf_take(&b, &n);
    if (text != NULL)
        emit_line(text, n, flush);
    free(text);
}

static void vlog(const char *level, int flush, const char *fmt, va_list ap) {
    char line[LOG_LINE_MAX];
    if (json_lines) {
        int n = vsnprintf(line, sizeof line, fmt, ap);
        size_t len = n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
        json_line(level, line, len, flush, NULL);
        return;
    }
    char t[32];
    flowd_format_time(flow_wall_us(), t);
    int head = snprintf(line, sizeof line, "%s %s ", t, level);
    int n = vsnprintf(line + head, sizeof line - (size_t)head - 1, fmt, ap);
    size_t len = (size_t)head + (n < 0 ? 0 : (size_t)n);
    if (len > sizeof line - 2) {
        len = sizeof line - 2;
        memcpy(line + len - 3, "...", 3);
    }
    line[len++] = '\n';
    emit_line(line, len, flush);
}

int flowd_log_enabled(flow_log_level_t level) {
    return (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

void flowd_log(flow_log_level_t level, const char *fmt, ...) {
    if (!flowd_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(flowd_log_level_name(level), level >= FLOW_LOG_WARN, fmt, ap);
    va_end(ap);
}

void flowd_log_always(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog("info", 1, fmt, ap);
    va_end(ap);
}

void flowd_log_request(const char *method, const char *path, unsigned status, uint64_t us,
                       const char *key, const char *request_id, const char *traceparent) {
    if (!flowd_log_enabled(FLOW_LOG_INFO))
        return;
    /* Made by hand, not with snprintf: this runs for every request. */
    char line[640];
    size_t n = 0;
    flowd_format_time(flow_wall_us(), line);
    n = 27;
    memcpy(line + n, " info ", 6);
    n += 6;
    for (const char *p = method; *p != '\0' && n < 50; p++)
        line[n++] = *p;
    line[n++] = ' ';
    /* The path is the client's: cut it, and keep control characters out of the log. */
    size_t start = n;
    for (const char *p = path; *p != '\0'; p++) {
        if (n - start >= 250) {
            memcpy(line + n, "...", 3);
            n += 3;
            break;
        }
        line[n++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
    }
    line[n++] = ' ';
    n += flowd_format_u64(status, line + n);
    line[n++] = ' ';
    n += flowd_format_u64(us, line + n);
    memcpy(line + n, "us", 2);
    n += 2;
    if (key != NULL && *key != '\0') { /* a key's name: A-Z a-z 0-9 . _ - (auth.h), 64 at most */
        memcpy(line + n, " key=", 5);
        n += 5;
        for (const char *p = key; *p != '\0' && n < sizeof line - 2; p++)
            line[n++] = *p;
    }
    if (json_lines) { /* the same text as msg, and its parts as fields */
        req_fields_t rq = {method, path, key, request_id, traceparent, status, us};
        json_line("info", line + 33, n - 33, 0, &rq);
        return;
    }
    if (request_id != NULL && *request_id != '\0') { /* checked by http.c: visible ASCII, 128 at most */
        memcpy(line + n, " id=", 4);
        n += 4;
        for (const char *p = request_id; *p != '\0' && n < sizeof line - 2; p++)
            line[n++] = *p;
    }
    if (traceparent != NULL && *traceparent != '\0' && n + 13 + 55 < sizeof line - 2) {
        memcpy(line + n, " traceparent=", 13); /* checked: 55 characters of hex and '-' */
        n += 13;
        memcpy(line + n, traceparent, 55);
        n += 55;
    }
    line[n++] = '\n';
    emit_line(line, n, 0);
}

void flowd_log_flush(void) {
    pthread_mutex_lock(&lock);
    write_out();
    pthread_mutex_unlock(&lock);
}

static void from_libflow(flow_log_level_t level, const char *msg, void *data) {
    (void)data;
    flowd_log(level, "%s", msg);
}

void flowd_log_init(flow_log_level_t level, int fd, int json) {
    atomic_store(&min_level, (int)level);
    json_lines = json;
    log_fd = fd;
    flow_set_logger(from_libflow, NULL);
}

void flowd_log_close(void) {
    flowd_log_flush();
    flow_set_logger(NULL, NULL);
}
