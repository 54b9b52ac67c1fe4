/* http.h: the REST API (api/openapi.yaml) on libmicrohttpd: its daemon, on threads of its own (epoll,
 * a pool of --http-threads), the routes, and what every request is checked for before it reaches a
 * route. Limits trip in this order, each with a JSON error body:
 *   431 header_too_large   the request line and headers are over --max-header (counted on the first
 *                          call; MHD's own per-connection memory is set well above it, so that MHD's
 *                          own non-JSON 431 only comes for headers several times the cap);
 *   404 not_found          no such route; 405 method_not_allowed (with Allow) for another method
 *                          (the routes, their methods, roles, query parameters and bodies are one
 *                          table: http_routes.h);
 *   401 unauthorized       with a key file (auth.h): no key, or one that is not in it (with
 *                          WWW-Authenticate); 403 forbidden: the key's role may not (the route's
 *                          role); a route that takes a body gets these before its body is read;
 *   415 unsupported_media_type  a JSON body that is not application/json;
 *   413 payload_too_large  a Content-Length over --max-body, before reading; or a chunked body that
 *                          grows past it (read and dropped up to twice the cap, then the connection
 *                          is closed without an answer);
 *   400 bad_request / invalid_json  bad query values, bodies that are not JSON, wrong types.
 * Idle and slow connections are closed after --idle-timeout; --max-conns-per-ip and --max-conns cap
 * connections (MHD closes the ones over the caps without an answer).
 *
 * Handlers run on MHD's threads and never touch the engine: they read job records (jobs.h) and hand
 * everything else to the loop (bridge.h). */
#ifndef FLOWD_HTTP_H
#define FLOWD_HTTP_H

#include "apierr.h"
#include "core.h"

/* Starts the daemon (srv->cfg says where and how); *port gets the port it listens on. 0, or
 * FLOW_EIO after logging why. */
int flowd_http_start(flowd_server_t *srv, flowd_http_t **out, unsigned *port);
/* Stops accepting connections; those open go on. */
void flowd_http_quiesce(flowd_http_t *h);
/* Shutdown: from now on requests that would suspend (loop calls) are answered at once, 503 (a long
 * poll with the job as it is), so that flowd_http_suspended() can only go down. */
void flowd_http_refuse_calls(flowd_http_t *h);
/* Requests whose connection is suspended (loop calls, long polls) and not yet answered. */
size_t flowd_http_suspended(flowd_http_t *h);
/* Stops the daemon and its threads and frees h. Every suspended connection must have been resumed. */
void flowd_http_stop(flowd_http_t *h);

/* ---- for tests and fuzzing: the pure parts of the request checks (routing a path is
 * flowd_path_match, http_routes.h) ---- */

/* The body [body, body+len) as a JSON object (a new reference), or NULL with the answer to give:
 * *code FLOWD_E_INVALID_JSON or FLOWD_E_BAD_REQUEST and the message in msg (msglen bytes; example
 * is the object it suggests). */
json_t *flowd_http_body_object(const char *body, size_t len, const char *example, flowd_apierr_t *code,
                               char *msg, size_t msglen);

#endif
