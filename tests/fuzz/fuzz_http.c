/* fuzz_http.c: the request router and body parsing of flowd (server/http.h). The input is
 * "METHOD PATH\n" then a body: the path (percent-decoded already, as libmicrohttpd hands it over) is
 * routed, and the {id} or {name} found must lie inside it; the body is parsed as a POST body is, and
 * is an object exactly when no error is given. */
#include <string.h>

#include "fuzz.h"
#include "http.h" /* server/http.h: the library's HTTP client is flow/http.h */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    size_t line_len = nl != NULL ? (size_t)(nl - data) : size;
    const uint8_t *sp = memchr(data, ' ', line_len);
    const uint8_t *path = sp != NULL ? sp + 1 : data;
    char *url = fuzz_string(path, line_len - (size_t)(path - data));
    const char *arg = (const char *)1;
    size_t arg_len = 12345;
    flowd_route_t route = flowd_http_route(url, &arg, &arg_len);
    fuzz_assert(route <= FLOWD_R_OTHER);
    if (arg == NULL) {
        fuzz_assert(arg_len == 0);
    } else {
        size_t url_len = strlen(url);
        fuzz_assert(arg >= url && arg + arg_len <= url + url_len && arg_len > 0);
    }
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
