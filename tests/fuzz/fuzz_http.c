/* fuzz_http.c: the request router (server/http_routes.h) and body parsing (server/http.h) of flowd.
 * The input is "METHOD PATH\n" then a body: the path (percent-decoded already, as libmicrohttpd hands
 * it over) is routed, and every argument found must lie inside it; the body is parsed as a POST
 * body is, and is an object exactly when no error is given. */
#include <string.h>

#include "fuzz.h"
#include "http.h" /* server/http.h: the library's HTTP client is flow/http.h */
#include "http_routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    size_t line_len = nl != NULL ? (size_t)(nl - data) : size;
    const uint8_t *sp = memchr(data, ' ', line_len);
    const uint8_t *path = sp != NULL ? sp + 1 : data;
    char *url = fuzz_string(path, line_len - (size_t)(path - data));
    flowd_route_args_t args = {.n = 12345};
    flowd_path_t route = flowd_path_match(url, &args);
    fuzz_assert(route <= FLOWD_P_OTHER && args.n <= FLOWD_ROUTE_ARGS);
    fuzz_assert(route != FLOWD_P_OTHER || args.n == 0);
    size_t url_len = strlen(url);
    for (size_t i = 0; i < args.n; i++)
        fuzz_assert(args.s[i] >= url && args.s[i] + args.len[i] <= url + url_len && args.len[i] > 0);
    free(url);

    const uint8_t *body = nl != NULL ? nl + 1 : data + size;
    size_t body_len = size - (size_t)(body - data);
    char *exact = fuzz_exact_copy(body, body_len);
    flowd_apierr_t code = FLOWD_APIERRS;
    char msg[512];
    json_t *v = flowd_http_body_object(exact, body_len, "{\"flow\": \"noop\"}", &code, msg, sizeof msg);
    if (v != NULL) {
        fuzz_assert(json_is_object(v) && code == FLOWD_APIERRS);
        json_decref(v);
    } else {
        fuzz_assert(flowd_apierr_status(code) == 400 && msg[0] != '\0');
    }
    free(exact);
    return 0;
}
