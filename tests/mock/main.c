/* flowd-mock: the test HTTP server of tests/support/mock.h as a program, for benchmarks and manual
 * tries. Prints "port=N" once it listens on 127.0.0.1 and runs until SIGTERM or SIGINT. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/mock.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: flowd-mock [--port N] [--api-key KEY] [--threads N]\n"
                 "  --port N       port on 127.0.0.1 (default 0: any free one, printed)\n"
                 "  --api-key KEY  /v1/chat/completions wants \"Authorization: Bearer KEY\"\n"
                 "  --threads N    server threads (default 2)\n");
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, mock_opts_t *opts)
{
    unsigned long v;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(arg, "--port") == 0 && parse_uint(value, 65535, &v) == 0) {
            opts->port = (uint16_t)v;
        } else if (strcmp(arg, "--threads") == 0 && parse_uint(value, 64, &v) == 0) {
            opts->threads = (unsigned)v;
        } else if (strcmp(arg, "--api-key") == 0 && value) {
            opts->api_key = value;
        } else {
            fprintf(stderr, "flowd-mock: bad argument: %s\n", arg);
            return -1;
        }
        i++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    mock_opts_t opts = {0};
    mock_t *mock;
    sigset_t stop;
    int sig;

    if (parse_args(argc, argv, &opts) != 0) {
        usage(stderr);
        return 2;
    }
    /* blocked before the server's threads start, so that they inherit the mask and sigwait gets
     * the signal */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (mock_start(&opts, &mock) != 0)
        return 1;
    printf("port=%u\n", mock_port(mock));
    fflush(stdout);
    sigwait(&stop, &sig);
    mock_stop(mock);
    return 0;
}
