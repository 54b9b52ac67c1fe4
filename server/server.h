/* server.h: flowd put together: the loop thread with the engine, the job table, the store, the HTTP
 * daemon on its own threads, and the hand-off between them (bridge.h). flowd_server_run() is the
 * whole life of the process after its flags are read: start, serve until SIGTERM or SIGINT, stop.
 *
 * Shutdown, on the loop (uv_signal): stop accepting (MHD_quiesce_daemon); /healthz and new POSTs
 * answer 503 shutting_down; the engine drains (no job starts another step) and we wait until no step
 * is in flight or --grace has passed; then every suspended connection is answered (event streams
 * end, long polls answer with the job as it is), the HTTP daemon stops, the engine closes (jobs
 * still running end canceled), and the loop runs dry. SIGHUP reloads the key file (auth.h) on
 * libuv's pool. */
#ifndef FLOWD_SERVER_H
#define FLOWD_SERVER_H

#include "config.h"

/* Runs flowd with cfg until it is told to stop. Returns the process exit status: 0 after a clean
 * shutdown, 1 when it could not start (the reason is logged). */
int flowd_server_run(const flowd_config_t *cfg);

#endif
