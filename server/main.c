/* main.c: the flowd program: reads its flags and FLOWD_* variables (config.h) and runs the server
 * (server.h), or the command its first argument names (cli.h: flowd check, flowd run; auth.h: flowd
 * key new; store.h: flowd backup). Exit status: 0 after SIGTERM or SIGINT, 1 when it cannot start,
 * 2 for bad flags. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "cli.h"
#include "config.h"
#include "flow.h"
#include "log.h"
#include "server.h"
#include "store.h"

/* flowd backup DIR [FLAG VALUE]...: the SQLite store that --store and --data-dir name, copied into
 * DIR while flowd runs. 0, 1 when it could not be copied, 2 for a bad command line. */
static int backup_command(int argc, char **argv) {
    flowd_config_t cfg;
    char err[600], path[4096];
    if (argc < 2 || strncmp(argv[1], "-", 1) == 0) {
        int help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
        fprintf(help ? stdout : stderr,
                "usage: flowd backup DIR [--store sqlite:PATH] [--data-dir DIR]\n"
                "  Copies every file of the SQLite store (its first file and, for a store made with\n"
                "  --store-shards N, the others) into DIR, while flowd runs; restore by putting them\n"
                "  back in the data directory of a stopped flowd.\n");
        return help ? 0 : 2;
    }
    const char *dest = argv[1];
    argv[1] = argv[0]; /* the flags after DIR, as flowd's own */
    int rc = flowd_config_parse(&cfg, argc - 1, argv + 1, NULL, err, sizeof err);
    if (rc != FLOWD_CONFIG_RUN) {
        fprintf(stderr, "flowd backup: %s\n",
                rc == FLOWD_CONFIG_ERROR ? err : "flowd backup --help says how it is used");
        return 2;
    }
    if (flowd_store_sqlite_path(cfg.store, cfg.data_dir, path, sizeof path) != 0) {
        fprintf(stderr, "flowd backup: --store %s is not sqlite:PATH (PostgreSQL: pg_dump)\n",
                cfg.store);
        return 2;
    }
    if (flowd_store_sqlite_backup(path, dest, stdout, err, sizeof err) < 0) {
        fprintf(stderr, "flowd backup: %s\n", err);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    flowd_config_t cfg;
    char err[512];
    if (argc > 1 && flowd_cli_is_command(argv[1]))
        return flowd_cli_main(argc, argv); /* flowd check, flowd run */
    if (argc > 1 && strcmp(argv[1], "key") == 0)
        return flowd_key_command(argc - 1, argv + 1, stdout, stderr);
    if (argc > 1 && strcmp(argv[1], "backup") == 0)
        return backup_command(argc - 1, argv + 1);
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
