/* main.c: the flowd program: reads its flags and FLOWD_* variables (config.h) and runs the server
 * (server.h), or the command its first argument names (cli.h: flowd check, flowd run; auth.h: flowd
 * key new). Exit status: 0 after SIGTERM or SIGINT, 1 when it cannot start, 2 for bad flags. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "cli.h"
#include "config.h"
#include "flow.h"
#include "log.h"
#include "server.h"

int main(int argc, char **argv) {
    flowd_config_t cfg;
    char err[512];
    if (argc > 1 && flowd_cli_is_command(argv[1]))
        return flowd_cli_main(argc, argv); /* flowd check, flowd run */
    if (argc > 1 && strcmp(argv[1], "key") == 0)
        return flowd_key_command(argc - 1, argv + 1, stdout, stderr);
    switch (flowd_config_parse(&cfg, argc, argv, NULL, err, sizeof err)) {
    case FLOWD_CONFIG_HELP:
        flowd_config_usage(stdout);
        return 0;
    case FLOWD_CONFIG_VERSION:
        printf("flowd %s\n", FLOW_VERSION_STRING);
        return 0;
    case FLOWD_CONFIG_ERROR:
        fprintf(stderr, "flowd: %s\n", err);
        return 2;
    default:
        break;
    }
    signal(SIGPIPE, SIG_IGN); /* a client that hangs up is an error return from send, not a kill */
    signal(SIGHUP, SIG_IGN);  /* reloads the keys once the loop runs (server.c); never a kill */
    flowd_log_init(cfg.log_level, 2, strcmp(cfg.log_format, "json") == 0);
    int status = flowd_server_run(&cfg);
    flowd_log_close();
    return status;
}
