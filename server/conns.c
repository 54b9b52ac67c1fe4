/* conns.c: the deadlines and the lingering close of conns.h, on a thread of their own.
 * Hand-written: libmicrohttpd (0.9.75) has an idle timeout only, and closes a socket with unread
 * data at once. */
#include "conns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "flow.h"
#include "flow/queue.h"
#include "log.h"

#define TICK_MS 100      /* how late a deadline may be met */
#define DROP_CHUNK 65536 /* bytes read at a time from a lingering socket */

struct flowd_conn {
    flow_queue_t node; /* in the list of open connections, under the lock */
    flowd_conns_t *cs;
    MHD_socket fd;
    char addr[INET6_ADDRSTRLEN];
    atomic_uint_fast64_t close_at_ms; /* 0: no deadline */
    _Atomic(const char *) why;        /* of the deadline, for the log */
    atomic_int linger;
};

static const char headers_late[] = "no complete request line and headers within --header-timeout";
static const char body_late[] = "a refused body still coming after --idle-timeout";

typedef struct lingering {
    int fd;                  /* our dup of the socket */
    uint64_t until_ms;       /* closed then, whatever comes */
    uint64_t quiet_until_ms; /* closed then unless data comes */
    size_t left;             /* bytes still dropped */
} lingering_t;

struct flowd_conns {
    flowd_conns_opts_t o;
    pthread_mutex_t lock;
    flow_queue_t conns;   /* the open connections (flowd_conn_t's node), under lock */
    lingering_t *pending; /* handed over by NOTIFY_CLOSED, under lock */
    size_t npending;
    int stopping; /* under lock */
    int wake;     /* an eventfd: something is pending, or stop */
    pthread_t thread;
    /* the thread's own */
    lingering_t *linger;
    size_t nlinger;
};

/* ---- the MHD threads ---- */

void flowd_conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe) {
    flowd_conns_t *cs = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        flowd_conn_t *c = calloc(1, sizeof *c);
        *socket_context = c;
        if (c == NULL || fd == NULL)
            return; /* no deadline for this one: MHD's idle timeout still holds */
        c->cs = cs;
        c->fd = fd->connect_fd;
        atomic_store(&c->why, headers_late);
        const struct sockaddr *sa = ci ? ci->client_addr : NULL;
        if (sa != NULL && sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->addr,
                      sizeof c->addr);
        else if (sa != NULL && sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->addr,
                      sizeof c->addr);
        atomic_store(&c->close_at_ms, flow_mono_ms() + cs->o.header_timeout_ms);
        pthread_mutex_lock(&cs->lock);
        flow_queue_insert_head(&cs->conns, &c->node);
        pthread_mutex_unlock(&cs->lock);
        return;
    }
    flowd_conn_t *c = *socket_context;
    *socket_context = NULL;
    if (c == NULL)
        return;
    int lingers = 0;
    pthread_mutex_lock(&cs->lock);
    flow_queue_remove(&c->node);
    if (atomic_load(&c->linger) && !cs->stopping && cs->npending < cs->o.linger_max) {
        /* MHD closes its descriptor after this: ours keeps the socket open */
        int fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
        if (fd >= 0) {
            uint64_t now = flow_mono_ms();
            cs->pending[cs->npending++] =
                (lingering_t){.fd = fd,
                              .until_ms = now + cs->o.linger_ms,
                              .quiet_until_ms = now + cs->o.linger_quiet_ms,
                              .left = cs->o.linger_bytes};
            lingers = 1;
        }
    }
    pthread_mutex_unlock(&cs->lock);
    if (lingers) {
        uint64_t one = 1;
        if (write(cs->wake, &one, sizeof one) < 0)
            flowd_log(FLOW_LOG_DEBUG, "conns: cannot wake the thread: %s", strerror(errno));
    }
    free(c);
}

flowd_conn_t *flowd_conn_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

void flowd_conn_request(flowd_conn_t *c) {
    if (c != NULL)
        atomic_store(&c->close_at_ms, 0);
}

void flowd_conn_answered(flowd_conn_t *c) {
    if (c == NULL)
        return;
    atomic_store(&c->why, headers_late);
    atomic_store(&c->close_at_ms, flow_mono_ms() + c->cs->o.header_timeout_ms);
}

void flowd_conn_drop_body(flowd_conn_t *c) {
    if (c == NULL || atomic_load(&c->close_at_ms) != 0)
        return;
    atomic_store(&c->why, body_late);
    atomic_store(&c->close_at_ms, flow_mono_ms() + c->cs->o.linger_ms);
}

void flowd_conn_linger(flowd_conn_t *c) {
    if (c != NULL)
        atomic_store(&c->linger, 1);
}

/* ---- the thread ---- */

/* Connections past their deadline: MHD sees the end of the stream and closes them. */
static void enforce_deadlines(flowd_conns_t *cs, uint64_t now) {
    flow_queue_t *q;
    FLOW_QUEUE_FOREACH(q, &cs->conns) {
        flowd_conn_t *c = FLOW_QUEUE_DATA(q, flowd_conn_t, node);
        uint64_t at = atomic_load(&c->close_at_ms);
        if (at == 0 || now < at)
            continue;
        atomic_store(&c->close_at_ms, 0);
        shutdown(c->fd, SHUT_RDWR);
        flowd_log(FLOW_LOG_INFO, "closed a connection from %s: %s", c->addr[0] ? c->addr : "?",
                  atomic_load(&c->why));
    }
}

/* Reads and drops what a lingering socket has; 1 when it is done with (closed). */
static int drain(lingering_t *l, char *buf) {
    for (;;) {
        ssize_t n = recv(l->fd, buf, DROP_CHUNK < l->left ? DROP_CHUNK : l->left, MSG_DONTWAIT);
        if (n > 0) {
            l->left -= (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && l->left > 0)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        break; /* the client's end, an error, or enough */
    }
    close(l->fd);
    return 1;
}

static void *conns_main(void *arg) {
    flowd_conns_t *cs = arg;
    char *buf = malloc(DROP_CHUNK);
    struct pollfd *fds = calloc(cs->o.linger_max + 1, sizeof *fds);
    if (buf == NULL || fds == NULL)
        flowd_log(FLOW_LOG_ERROR, "conns: out of memory: lingering sockets are closed at once");
    for (;;) {
        uint64_t now = flow_mono_ms();
        pthread_mutex_lock(&cs->lock);
        if (cs->stopping) {
            pthread_mutex_unlock(&cs->lock);
            break;
        }
        enforce_deadlines(cs, now);
        for (size_t i = 0; i < cs->npending; i++) {
            if (cs->nlinger < cs->o.linger_max && fds != NULL && buf != NULL)
                cs->linger[cs->nlinger++] = cs->pending[i];
            else
                close(cs->pending[i].fd);
        }
        cs->npending = 0;
        pthread_mutex_unlock(&cs->lock);
        /* what lingers past its time goes; the others are polled */
        size_t n = 0;
        for (size_t i = 0; i < cs->nlinger; i++) {
            lingering_t *l = &cs->linger[i];
            if (now >= l->until_ms || now >= l->quiet_until_ms) {
                close(l->fd);
                continue;
            }
            cs->linger[n++] = *l;
        }
        cs->nlinger = n;
        if (fds == NULL) {
            struct pollfd w = {.fd = cs->wake, .events = POLLIN};
            poll(&w, 1, TICK_MS);
            continue;
        }
        fds[0] = (struct pollfd){.fd = cs->wake, .events = POLLIN};
        for (size_t i = 0; i < n; i++)
            fds[i + 1] = (struct pollfd){.fd = cs->linger[i].fd, .events = POLLIN};
        if (poll(fds, n + 1, TICK_MS) <= 0)
            continue;
        if (fds[0].revents != 0) {
            uint64_t v;
            if (read(cs->wake, &v, sizeof v) < 0 && errno != EAGAIN)
                flowd_log(FLOW_LOG_DEBUG, "conns: %s", strerror(errno));
        }
        now = flow_mono_ms();
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            lingering_t *l = &cs->linger[i];
            if (fds[i + 1].revents != 0) {
                l->quiet_until_ms = now + cs->o.linger_quiet_ms;
                if (drain(l, buf))
                    continue;
            }
            cs->linger[kept++] = *l;
        }
        cs->nlinger = kept;
    }
    for (size_t i = 0; i < cs->nlinger; i++)
        close(cs->linger[i].fd);
    cs->nlinger = 0;
    free(buf);
    free(fds);
    return NULL;
}

int flowd_conns_new(const flowd_conns_opts_t *opts, flowd_conns_t **out) {
    flowd_conns_t *cs = calloc(1, sizeof *cs);
    if (cs == NULL)
        return FLOW_ENOMEM;
    flow_queue_init(&cs->conns);
    cs->o = *opts;
    if (cs->o.linger_max == 0)
        cs->o.linger_max = 1;
    cs->pending = calloc(cs->o.linger_max, sizeof *cs->pending);
    cs->linger = calloc(cs->o.linger_max, sizeof *cs->linger);
    cs->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (cs->pending == NULL || cs->linger == NULL || cs->wake < 0) {
        int rc = cs->wake < 0 ? FLOW_EIO : FLOW_ENOMEM;
        if (cs->wake >= 0)
            close(cs->wake);
        free(cs->pending);
        free(cs->linger);
        free(cs);
        return rc;
    }
    pthread_mutex_init(&cs->lock, NULL);
    if (pthread_create(&cs->thread, NULL, conns_main, cs) != 0) {
        pthread_mutex_destroy(&cs->lock);
        close(cs->wake);
        free(cs->pending);
        free(cs->linger);
        free(cs);
        return FLOW_ENOMEM;
    }
    *out = cs;
    return 0;
}

void flowd_conns_free(flowd_conns_t *cs) {
    if (cs == NULL)
        return;
    pthread_mutex_lock(&cs->lock);
    cs->stopping = 1;
    pthread_mutex_unlock(&cs->lock);
    uint64_t one = 1;
    if (write(cs->wake, &one, sizeof one) < 0)
        flowd_log(FLOW_LOG_DEBUG, "conns: cannot wake the thread: %s", strerror(errno));
    pthread_join(cs->thread, NULL);
    for (size_t i = 0; i < cs->npending; i++)
        close(cs->pending[i].fd);
    /* connections MHD never closed (it has stopped: none) are freed with their memory */
    while (!flow_queue_empty(&cs->conns)) {
        flow_queue_t *q = flow_queue_head(&cs->conns);
        flow_queue_remove(q);
        free(FLOW_QUEUE_DATA(q, flowd_conn_t, node));
    }
    close(cs->wake);
    pthread_mutex_destroy(&cs->lock);
    free(cs->pending);
    free(cs->linger);
    free(cs);
}
