/* conns.h: what libmicrohttpd does not do for flowd's connections, done from a thread of our own:
 *
 * - A deadline for a request's line and headers (--header-timeout), apart from the idle timeout
 *   (--idle-timeout, MHD's, which any byte restarts: a client that sends one byte a second would
 *   hold a connection for ever). The clock starts when the connection opens and again when a
 *   request has been answered: a kept-alive connection gets that long for its next request too.
 *   Routes may set other deadlines (a body being read and dropped).
 * - A lingering close, as nginx does it: when a request is answered before its body was read (413,
 *   415, ...), MHD closes the socket with the body still arriving, and the kernel answers the rest
 *   with a reset that can reach the client before it has read the answer (clients such as Python's
 *   urllib send the whole body first). So the socket is kept (a dup of it, taken when MHD lets it
 *   go) and what still comes is read and dropped, for a bounded time and size, before it is closed.
 *
 * MHD tells us of every connection (MHD_OPTION_NOTIFY_CONNECTION) and we keep them in a list under
 * a lock. The thread wakes every 100 ms: a connection past its deadline gets shutdown(SHUT_RDWR)
 * on its socket, which MHD sees as the client's end and closes like any other. MHD calls
 * NOTIFY_CLOSED before it closes the socket, and the connection leaves the list under the same
 * lock, so the thread never touches a descriptor that MHD has closed (and that the kernel may have
 * given to another connection). Any thread; the MHD threads call the flowd_conn_* functions. */
#ifndef FLOWD_CONNS_H
#define FLOWD_CONNS_H

#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

typedef struct flowd_conns flowd_conns_t;
typedef struct flowd_conn flowd_conn_t;

typedef struct flowd_conns_opts {
    uint64_t header_timeout_ms; /* for a request's line and headers */
    uint64_t linger_ms;         /* a lingering socket is closed after this long in all, */
    uint64_t linger_quiet_ms;   /* or this long without data, */
    size_t linger_bytes;        /* or once this much was dropped */
    unsigned linger_max;        /* sockets lingering at once; more are closed at once */
} flowd_conns_opts_t;

/* Starts the thread. FLOW_ENOMEM, FLOW_EIO. */
int flowd_conns_new(const flowd_conns_opts_t *opts, flowd_conns_t **out);
/* After the MHD daemon has stopped: stops the thread and closes what still lingers. NULL is
 * ignored. */
void flowd_conns_free(flowd_conns_t *cs);

/* MHD_OPTION_NOTIFY_CONNECTION's callback; cls is the flowd_conns_t. */
void flowd_conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe);

/* The connection of an MHD connection (its socket context), or NULL. */
flowd_conn_t *flowd_conn_of(struct MHD_Connection *conn);
/* A request's line and headers are in: no deadline until it is answered. */
void flowd_conn_request(flowd_conn_t *c);
/* A request was answered: the next one's line and headers have header_timeout_ms. */
void flowd_conn_answered(flowd_conn_t *c);
/* A body too large is being read and dropped (chunked: it could not be refused before): the
 * connection is closed if it is still coming linger_ms from now. */
void flowd_conn_drop_body(flowd_conn_t *c);
/* A body was refused before it was all read: when MHD closes the connection, linger. */
void flowd_conn_linger(flowd_conn_t *c);

#endif
