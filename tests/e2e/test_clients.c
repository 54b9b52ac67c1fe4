/* test_clients.c: clients that are slow or send too much: a deadline for a request's line and
 * headers (--header-timeout) that trickling bytes do not restart, and the lingering close after a
 * 413, so that a client that sends its whole body before it reads gets the answer, and one that
 * never stops sending is cut off within bounds. Raw sockets: curl would not misbehave so. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "e2e/e2e.h"

static e2e_server_t srv;

static void stop(void) {
    ck_assert_int_eq(e2e_stop(&srv, 20000), 0);
    e2e_cleanup(&srv);
}

/* Whether the server ends the connection (EOF or reset) within timeout_ms while the client sends
 * one byte of a header every 200 ms. */
static int trickle_until_closed(int fd, unsigned timeout_ms) {
    uint64_t deadline = e2e_now_ms() + e2e_ms(timeout_ms);
    char c;
    while (e2e_now_ms() < deadline) {
        if (send(fd, "X", 1, MSG_NOSIGNAL) != 1)
            return 1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) > 0 && recv(fd, &c, 1, 0) <= 0)
            return 1;
    }
    return 0;
}

/* One header byte at a time keeps MHD's idle timeout from firing, not --header-timeout; a
 * kept-alive connection that sends nothing is closed at it too; others are served meanwhile. */
START_TEST(test_a_client_that_trickles_its_headers_is_dropped) {
    e2e_start(&srv, "--header-timeout", "1s", "--idle-timeout", "60", NULL);
    int fd = e2e_connect(&srv);
    const char *start = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    ck_assert_int_eq(send(fd, start, strlen(start), MSG_NOSIGNAL), (ssize_t)strlen(start));
    ck_assert_int_eq(e2e_get_status(&srv, "/healthz"), 200);
    uint64_t t0 = e2e_now_ms();
    ck_assert_msg(trickle_until_closed(fd, 15000),
                  "a client trickling its headers is still connected after 15 s");
    ck_assert_uint_ge(e2e_now_ms() - t0, 500); /* not at once: at the deadline */
    close(fd);
    /* a connection that answered one request and then waits */
    fd = e2e_connect(&srv);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    ck_assert_int_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    ck_assert_msg(e2e_closed_within(fd, 15000),
                  "an idle kept-alive connection is still open after 15 s");
    close(fd);
    ck_assert_int_eq(e2e_get_status(&srv, "/healthz"), 200);
    char *log = e2e_log(&srv);
    ck_assert_msg(strstr(log, "no complete request line and headers within --header-timeout") !=
                      NULL,
                  "%s", log);
    free(log);
    stop();
}
END_TEST

/* Sends the request line and headers, then body_len bytes of body (chunked: in chunks of 64 KiB)
 * without reading, as Python's urllib and Java's HttpURLConnection do; then reads the answer.
 * Returns the answer (malloc'd); *sent_all says whether every byte could be sent. */
static char *send_then_read(size_t body_len, int chunked, int *sent_all) {
    int fd = e2e_connect(&srv);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char head[256];
    int n =
        chunked
            ? snprintf(
                  head, sizeof head,
                  "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n")
            : snprintf(
                  head, sizeof head,
                  "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\n\r\n",
                  body_len);
    *sent_all = send(fd, head, (size_t)n, MSG_NOSIGNAL) == n;
    static char chunk[65536 + 16];
    size_t sent = 0;
    while (*sent_all && sent < body_len) {
        size_t k = body_len - sent < 65536 ? body_len - sent : 65536;
        size_t off = 0, len = k;
        if (chunked) {
            off = (size_t)snprintf(chunk, 16, "%zx\r\n", k);
            memset(chunk + off, 'x', k);
            memcpy(chunk + off + k, "\r\n", 2);
            len = off + k + 2;
        } else {
            memset(chunk, 'x', k);
        }
        for (size_t done = 0; done < len && *sent_all;) {
            ssize_t w = send(fd, chunk + done, len - done, MSG_NOSIGNAL);
            if (w <= 0)
                *sent_all = 0;
            else
                done += (size_t)w;
        }
        sent += k;
    }
    if (*sent_all && chunked)
        *sent_all = send(fd, "0\r\n\r\n", 5, MSG_NOSIGNAL) == 5;
    char *answer = calloc(1, 4096);
    size_t got = 0;
    for (;;) { /* to the end of the error body, or of the connection */
        ssize_t r = recv(fd, answer + got, 4095 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got >= 4095 || (strstr(answer, "\r\n\r\n{") != NULL && strstr(answer, "}\n") != NULL))
            break;
    }
    close(fd);
    return answer;
}

/* A client that sends its whole body before it reads gets the 413, with Content-Length (answered at
 * once, then the rest read and dropped) and chunked (read and dropped, then answered). */
START_TEST(test_a_client_that_sends_its_whole_body_first_reads_the_413) {
    e2e_start(&srv, "--max-body", "256KiB", NULL);
    for (int chunked = 0; chunked < 2; chunked++) {
        int sent_all;
        char *answer = send_then_read((size_t)8 << 20, chunked, &sent_all);
        ck_assert_msg(sent_all,
                      "%s: the 8 MiB body could not all be sent (the server reset the connection)",
                      chunked ? "chunked" : "Content-Length");
        ck_assert_msg(strncmp(answer, "HTTP/1.1 413", 12) == 0, "%s: %s",
                      chunked ? "chunked" : "Content-Length", answer);
        ck_assert_msg(strstr(answer, "--max-body") != NULL, "%s", answer);
        free(answer);
    }
    ck_assert_int_eq(e2e_get_status(&srv, "/healthz"), 200);
    stop();
}
END_TEST

/* A client that never stops sending (and reads meanwhile) gets the 413 and is then cut off: after
 * 64 times --max-body (16 MiB here), or --idle-timeout. */
START_TEST(test_a_client_that_never_stops_sending_is_cut_off) {
    e2e_start(&srv, "--max-body", "256KiB", "--idle-timeout", "10", NULL);
    for (int chunked = 0; chunked < 2; chunked++) {
        int fd = e2e_connect(&srv);
        fcntl(fd, F_SETFL, O_NONBLOCK);
        const char *head =
            chunked
                ? "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n"
                : "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  "Content-Length: 1073741824\r\n\r\n";
        ck_assert_int_eq(send(fd, head, strlen(head), MSG_NOSIGNAL), (ssize_t)strlen(head));
        static char data[65536 + 16];
        size_t off = chunked ? (size_t)snprintf(data, 16, "%x\r\n", 65536) : 0;
        memset(data + off, 'x', 65536);
        memcpy(data + off + 65536, "\r\n", 2);
        size_t len = chunked ? off + 65538 : 65536, pos = 0, sent = 0;
        char answer[4096] = "";
        size_t got = 0;
        int ended = 0;
        uint64_t deadline = e2e_now_ms() + e2e_ms(40000);
        while (!ended && e2e_now_ms() < deadline) {
            struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
            if (poll(&p, 1, 100) <= 0)
                continue;
            if (p.revents & POLLIN) {
                ssize_t r = recv(fd, answer + got, sizeof answer - 1 - got, 0);
                if (r > 0)
                    got += (size_t)r;
                else if (r == 0 || (errno != EAGAIN && errno != EINTR))
                    ended = 1;
            }
            if (!ended && (p.revents & POLLOUT)) {
                ssize_t w = send(fd, data + pos, len - pos, MSG_NOSIGNAL);
                if (w > 0) {
                    sent += (size_t)w;
                    pos = (pos + (size_t)w) % len;
                } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    ended = 1;
                }
            }
            if (p.revents & (POLLERR | POLLHUP))
                ended = 1;
        }
        close(fd);
        answer[got] = '\0';
        ck_assert_msg(ended, "%s: still sending after 40 s (%zu bytes)",
                      chunked ? "chunked" : "Content-Length", sent);
        ck_assert_msg(sent < ((size_t)48 << 20), "%s: %zu bytes were taken",
                      chunked ? "chunked" : "Content-Length", sent);
        if (!chunked) /* refused at once: the answer came while it was sending */
            ck_assert_msg(strncmp(answer, "HTTP/1.1 413", 12) == 0, "%s", answer);
    }
    ck_assert_int_eq(e2e_get_status(&srv, "/healthz"), 200);
    stop();
}
END_TEST

static Suite *clients_suite(void) {
    Suite *s = suite_create("clients");
    TCase *tc = tcase_create("clients");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_a_client_that_trickles_its_headers_is_dropped);
    tcase_add_test(tc, test_a_client_that_sends_its_whole_body_first_reads_the_413);
    tcase_add_test(tc, test_a_client_that_never_stops_sending_is_cut_off);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(clients_suite());
}
