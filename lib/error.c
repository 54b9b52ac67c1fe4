/* error.c: the error table, the logger, the allocator hook, the clocks and the small string helpers
 * of libflow. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

const char flow__default_action[] = "default";

const char *flow_err_name(int err) {
    switch (err) {
    case 0:
        return "ok";
#define XX(sym, name, msg)                                                                         \
    case FLOW_E##sym:                                                                              \
        return name;
        FLOW_ERRNO_MAP(XX)
#undef XX
    default:
        return "unknown_error";
    }
}

const char *flow_strerror(int err) {
    switch (err) {
    case 0:
        return "success";
#define XX(sym, name, msg)                                                                         \
    case FLOW_E##sym:                                                                              \
        return msg;
        FLOW_ERRNO_MAP(XX)
#undef XX
    default:
        return "unknown error";
    }
}

void flow_error_clear(flow_error_t *err) {
    if (err == NULL)
        return;
    flow__free(err->message);
    flow__free(err->node);
    err->code = 0;
    err->message = NULL;
    err->node = NULL;
}

/* ---- allocator ---- */

static struct {
    void *(*malloc_fn)(size_t);
    void *(*realloc_fn)(void *, size_t);
    void *(*calloc_fn)(size_t, size_t);
    void (*free_fn)(void *);
} allocator = {malloc, realloc, calloc, free};

int flow_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                       void *(*calloc_fn)(size_t, size_t), void (*free_fn)(void *)) {
    if (malloc_fn == NULL || realloc_fn == NULL || calloc_fn == NULL || free_fn == NULL)
        return FLOW_EINVAL;
    allocator.malloc_fn = malloc_fn;
    allocator.realloc_fn = realloc_fn;
    allocator.calloc_fn = calloc_fn;
    allocator.free_fn = free_fn;
    return 0;
}

void *flow__malloc(size_t size) {
    return allocator.malloc_fn(size ? size : 1);
}

void *flow__calloc(size_t count, size_t size) {
    return allocator.calloc_fn(count ? count : 1, size ? size : 1);
}

void *flow__realloc(void *p, size_t size) {
    return allocator.realloc_fn(p, size ? size : 1);
}

void *flow__grow(void *items, size_t n, size_t *cap, size_t size, size_t first, size_t max) {
    if (n < *cap)
        return items;
    size_t want = *cap ? *cap * 2 : first;
    if (max != 0 && want > max)
        want = max;
    if (want <= n || want > SIZE_MAX / size)
        return NULL;
    void *grown = flow__realloc(items, want * size);
    if (grown != NULL)
        *cap = want;
    return grown;
}

void flow__free(void *p) {
    if (p != NULL)
        allocator.free_fn(p);
}

void flow_free(void *p) {
    flow__free(p);
}

char *flow__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *copy = flow__malloc(n);
    if (copy != NULL)
        memcpy(copy, s, n);
    return copy;
}

char *flow__vasprintf(const char *fmt, va_list ap) {
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    char *s = NULL;
    if (n >= 0) {
        s = flow__malloc((size_t)n + 1);
        if (s != NULL)
            vsnprintf(s, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    return s;
}

char *flow__asprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = flow__vasprintf(fmt, ap);
    va_end(ap);
    return s;
}

int flow__set_verror(flow_error_t *err, int code, const char *fmt, va_list ap) {
    if (err == NULL)
        return code;
    flow__free(err->message);
    err->code = code;
    err->message = fmt ? flow__vasprintf(fmt, ap) : NULL;
    return code;
}

int flow__set_error(flow_error_t *err, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    flow__set_verror(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void flow__json_free(void *p) {
    json_free_t free_fn = NULL;
    json_get_alloc_funcs(NULL, &free_fn);
    if (p != NULL && free_fn != NULL)
        free_fn(p);
}

/* ---- clocks ---- */

uint64_t flow_wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t flow_mono_ms(void) {
    return uv_hrtime() / 1000000u;
}

int flow_timer_at_wall(uv_timer_t *t, uv_timer_cb cb, uint64_t at_us, uint64_t max_ms) {
    uint64_t now = flow_wall_us();
    /* rounded up: a timer that fired a little early would only start itself again */
    uint64_t ms = at_us > now ? (at_us - now + 999) / 1000 : 0;
    return uv_timer_start(t, cb, ms < max_ms ? ms : max_ms, 0);
}

/* ---- logging ---- */

static void default_logger(flow_log_level_t level, const char *msg, void *data) {
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level < FLOW_LOG_WARN)
        return;
    fprintf(stderr, "flow %s: %s\n", names[level], msg);
}

static flow_log_fn logger = default_logger;
static void *logger_data;

void flow_set_logger(flow_log_fn fn, void *data) {
    logger = fn ? fn : default_logger;
    logger_data = fn ? data : NULL;
}

void flow_log(flow_log_level_t level, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    logger(level, buf, logger_data);
}
