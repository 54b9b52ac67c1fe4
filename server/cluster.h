/* cluster.h: flowd as one of several instances on a shared store (the optional ops of store.h).
 *
 * The loop's side: a job the store claims (its owner's lease ran out, or it was released) becomes a
 * record and resumes from its last checkpoint, as at start (flowd_bridge_restore); a job another
 * instance took over stops here without a trace (flowd_bridge_forget); input and cancels sent to
 * another instance for a job that runs here are run like local ones, and their answers go back
 * through the store. The store's threads hand these over through a queue and a uv_async_t.
 *
 * The HTTP side: the event stream of a job that is not in the local table, read from the store's
 * events, which suspends its connection while there is nothing new until the store's listener
 * wakes it (store.h: watch). Other reads of such a job are snapshot.h's. */
#ifndef FLOWD_CLUSTER_H
#define FLOWD_CLUSTER_H

#include <microhttpd.h>

#include "render.h"
#include "core.h"
#include "store_cluster.h"

typedef struct flowd_cluster flowd_cluster_t;

/* Loop, after the jobs a store gave back at start are records again: attaches a shared store (its
 * claims begin). *out stays NULL, and nothing happens, for a store that is not shared. */
int flowd_cluster_start(flowd_server_t *srv, flowd_cluster_t **out);
/* Loop, at shutdown, after the store is closed (no hook runs any more): closes the handles; the
 * memory goes with the last close callback (run the loop). NULL is ignored. */
void flowd_cluster_close(flowd_cluster_t *c);

/* The response of GET /v1/jobs/{id}/events for a job that runs elsewhere (the store has it), after
 * event last_id. NULL when out of memory. */
struct MHD_Response *flowd_remote_watch_response(flowd_server_t *srv, const char *id, struct MHD_Connection *conn,
                                                 uint64_t last_id);

#endif
