/* log.c: the buffered stderr log of log.h. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "jsonw.h"

#define LOG_BUF 65536      /* gathered lines; a line longer than this is cut */
#define LOG_FLUSH_AT 16384 /* write once this much is gathered */
#define LOG_LINE_MAX 4096  /* a message longer than this is cut, with "..." */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char buf[LOG_BUF];
static size_t buf_len;
static int log_fd = 2;
static atomic_int min_level = FLOW_LOG_INFO;

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

static void vlog(const char *level, int flush, const char *fmt, va_list ap) {
    char line[LOG_LINE_MAX];
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
                       const char *key) {
    if (!flowd_log_enabled(FLOW_LOG_INFO))
        return;
    /* Made by hand, not with snprintf: this runs for every request. */
    char line[512];
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

void flowd_log_init(flow_log_level_t level, int fd) {
    atomic_store(&min_level, (int)level);
    log_fd = fd;
    flow_set_logger(from_libflow, NULL);
}

void flowd_log_close(void) {
    flowd_log_flush();
    flow_set_logger(NULL, NULL);
}
