/* http_ui.c: the dashboard (server/ui/, compiled in by server/embed_ui.sh; ui_assets.h) served at
 * /ui/, with / and /ui sent there. The page is plain files that call the public API with the key
 * the person gives it, so these routes need no key and hold no data.
 *
 * Every file goes out with a Content-Security-Policy that allows only this origin's scripts, styles
 * and calls, no inline script or style, and no framing, so that a job's data (shared stores, flow
 * documents, prompts) shown in the page cannot run as code in it. Browsers revalidate by ETag
 * (Cache-Control: no-cache): a new flowd's page is seen at once, an unchanged one costs a 304. */
#include "http_int.h"

#include <string.h>

#include "auth.h"
#include "jsonw.h"
#include "ui_assets.h"

#define UI_CSP                                                                                     \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "             \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "               \
    "frame-ancestors 'none'"

/* Queues a body that outlives the response (static data) with the page's headers. */
static enum MHD_Result send_static(flowd_req_t *r, struct MHD_Connection *conn, unsigned status,
                                   const flowd_ui_asset_t *a, const char *location) {
    size_t len = a != NULL && status == 200 ? a->len : 0;
    struct MHD_Response *res = MHD_create_response_from_buffer(
        len, len ? (void *)a->data : (void *)"", MHD_RESPMEM_PERSISTENT);
    if (res == NULL)
        return MHD_NO;
    flowd__http_common_headers(r, res);
    if (a != NULL) {
        MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, a->type);
        MHD_add_response_header(res, MHD_HTTP_HEADER_ETAG, a->etag);
        MHD_add_response_header(res, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    }
    if (location != NULL)
        MHD_add_response_header(res, MHD_HTTP_HEADER_LOCATION, location);
    MHD_add_response_header(res, "Content-Security-Policy", UI_CSP);
    MHD_add_response_header(res, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(res, "X-Frame-Options", "DENY");
    MHD_add_response_header(res, "Referrer-Policy", "no-referrer");
    enum MHD_Result ret = MHD_queue_response(conn, status, res);
    MHD_destroy_response(res);
    r->status = status;
    r->phase = FLOWD_PH_DONE;
    return ret;
}

/* Whether an If-None-Match value names etag (a list, or "*"); weak tags compare as strong ones,
 * since a file's bytes are all its tag says. */
static int etag_matches(const char *header, const char *etag) {
    size_t n = strlen(etag);
    const char *p = header;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return 1;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (strncmp(p, etag, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
            return 1;
        p += strcspn(p, ",");
    }
    return 0;
}

enum MHD_Result flowd__http_ui_redirect(flowd_server_t *srv, flowd_req_t *r,
                                        struct MHD_Connection *conn) {
    (void)srv;
    return send_static(r, conn, 302, NULL, "/ui/");
}

enum MHD_Result flowd__http_ui_asset(flowd_server_t *srv, flowd_req_t *r,
                                     struct MHD_Connection *conn) {
    (void)srv;
    const char *name = "index.html";
    size_t len = strlen(name);
    if (r->args.n == 1) {
        name = r->args.s[0];
        len = r->args.len[0];
    }
    const flowd_ui_asset_t *a = NULL;
    for (size_t i = 0; i < flowd_ui_nassets && a == NULL; i++)
        if (strlen(flowd_ui_assets[i].name) == len && memcmp(flowd_ui_assets[i].name, name, len) == 0)
            a = &flowd_ui_assets[i];
    if (a == NULL)
        return flowd__http_send_error(r, conn, FLOWD_E_NOT_FOUND,
                                      "no file %.*s in the dashboard (/ui/)", (int)(len > 100 ? 100 : len),
                                      name);
    const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    return send_static(r, conn, inm != NULL && etag_matches(inm, a->etag) ? 304 : 200, a, NULL);
}

/* GET /v1/key: who the caller is, so that a client (the dashboard) shows only what its key may see
 * and do. Never the key itself: only its name, role and tenant. */
enum MHD_Result flowd__http_key_get(flowd_server_t *srv, flowd_req_t *r,
                                    struct MHD_Connection *conn) {
    flow_buf_t b;
    flow_buf_init(&b, 0);
    flowd_jw_t w;
    flowd_jw_init(&w, &b, 2);
    int open = flowd_auth_open(srv->auth);
    flowd_jw_obj(&w);
    flowd_jw_key(&w, "name");
    flowd_jw_str(&w, open || r->caller.name[0] == '\0' ? NULL : r->caller.name);
    flowd_jw_key(&w, "role");
    flowd_jw_str(&w, flowd_role_name(r->caller.role));
    flowd_jw_key(&w, "tenant");
    flowd_jw_str(&w, r->caller.tenant);
    flowd_jw_key(&w, "auth");
    flowd_jw_str(&w, open ? "open" : "keys");
    flowd_jw_obj_end(&w);
    flow_buf_addc(&b, '\n');
    size_t len = 0;
    char *body = flow_buf_take(&b, &len);
    return flowd__http_send_json(r, conn, 200, body, len);
}
