/* healthcheck.c: flowd-healthcheck, the probe behind the image's HEALTHCHECK. It asks the flowd in
 * its own container for GET /healthz and exits 0 on a 200 answer, 1 on anything else, so that the
 * image needs no curl or wget and no shell.
 *
 * It reads the address from the variables flowd itself reads: FLOWD_PORT (default 8080) and
 * FLOWD_BIND (default 127.0.0.1), where the wildcards 0.0.0.0 and :: mean this host's loopback.
 * The first line of the answer, or why there was none, goes to stdout: Docker keeps it in the
 * container's health log (`docker inspect`). */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define TIMEOUT_S 3 /* for connect, send and each read; HEALTHCHECK --timeout also bounds us */

static const char *env_or(const char *name, const char *def) {
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : def;
}

/* A connected socket to host:port, or -1 with why in err. */
static int dial(const char *host, const char *port, char *err, size_t errlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s:%s: %s", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    snprintf(err, errlen, "%s:%s: no address", host, port);
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        /* On Linux SO_SNDTIMEO bounds connect() too. */
        struct timeval tv = {.tv_sec = TIMEOUT_S};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        snprintf(err, errlen, "connect %s:%s: %s", host, port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

int main(int argc, char **argv) {
    if (argc > 1) {
        fprintf(stderr, "usage: %s (no arguments: it reads FLOWD_BIND and FLOWD_PORT)\n", argv[0]);
        return 2;
    }
    const char *host = env_or("FLOWD_BIND", "127.0.0.1");
    const char *port = env_or("FLOWD_PORT", "8080");
    if (strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";

    char err[256];
    int fd = dial(host, port, err, sizeof err);
    if (fd < 0) {
        printf("unhealthy: %s\n", err);
        return 1;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /healthz HTTP/1.0\r\nHost: %s\r\nUser-Agent: flowd-healthcheck\r\n\r\n",
                     host);
    if (n < 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        printf("unhealthy: sending the request: %s\n", strerror(errno));
        close(fd);
        return 1;
    }
    /* Only the status line matters: read until its end or until 255 bytes have come. */
    char buf[256];
    size_t len = 0;
    while (len < sizeof buf - 1 && memchr(buf, '\n', len) == NULL) {
        ssize_t got = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (got <= 0) {
            if (got < 0) {
                printf("unhealthy: reading the answer: %s\n", strerror(errno));
                close(fd);
                return 1;
            }
            break;
        }
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    /* "HTTP/1.1 200 OK": the code is the second word. */
    const char *code = strchr(buf, ' ');
    int ok = strncmp(buf, "HTTP/", 5) == 0 && code != NULL && strncmp(code + 1, "200", 3) == 0 &&
             (code[4] == ' ' || code[4] == '\0');
    printf("%s: %s\n", ok ? "healthy" : "unhealthy", len > 0 ? buf : "empty answer");
    return ok ? 0 : 1;
}
