/* http_routes.c: the paths of http_routes.h matched against a request's path. Pure: no MHD, no
 * server, so that the metrics, the tests and the fuzzer use it as http.c does. */
#include "http_routes.h"

#include <string.h>

static const char *const patterns[FLOWD_PATHS] = {
#define FLOWD__PATH_PATTERN(sym, pattern) [FLOWD_P_##sym] = pattern,
    FLOWD_PATH_MAP(FLOWD__PATH_PATTERN)
#undef FLOWD__PATH_PATTERN
        [FLOWD_P_OTHER] = "other",
        [FLOWD_P_JOB_WAIT] = "/v1/jobs/{id}?wait",
};

const char *flowd_path_pattern(flowd_path_t path) {
    return (unsigned)path < FLOWD_PATHS ? patterns[path] : patterns[FLOWD_P_OTHER];
}

int flowd_pattern_match(const char *pattern, const char *url, flowd_route_args_t *args) {
    const char *p = pattern, *u = url;
    args->n = 0;
    while (*p != '\0') {
        if (*p != '{') {
            if (*p++ != *u++)
                return 0; /* also where url ends first: its '\0' differs */
            continue;
        }
        const char *close = strchr(p, '}');
        if (close == NULL || args->n == FLOWD_ROUTE_ARGS)
            return 0; /* not a pattern of ours */
        int rest = close - p > 3 && strncmp(close - 3, "...", 3) == 0;
        size_t n = rest ? strlen(u) : strcspn(u, "/");
        if (n == 0)
            return 0;
        args->s[args->n] = u;
        args->len[args->n++] = n;
        u += n;
        p = close + 1;
    }
    return *u == '\0';
}

flowd_path_t flowd_path_match(const char *url, flowd_route_args_t *args) {
    for (int path = 0; path < FLOWD_P_OTHER; path++)
        if (flowd_pattern_match(patterns[path], url, args))
            return (flowd_path_t)path;
    args->n = 0;
    return FLOWD_P_OTHER;
}
