/* http_service.c: the routes about the service itself (http_routes.h): /healthz for probes and
 * /metrics for Prometheus (metrics.h), whose gauges are read here from their owners. */
#include "http_int.h"

#include <stdlib.h>
#include <string.h>

#include "schedules.h"

enum MHD_Result flowd__http_metrics(flowd_server_t *srv, flowd_req_t *r,
                                    struct MHD_Connection *conn) {
    flowd_gauges_t g = {0};
    flowd_jobs_counts(srv->jobs, g.jobs);
    g.queue_depth = flowd_bridge_depth(srv->bridge);
    g.streams = flowd_watchers_count(srv->watchers);
    g.suspended = flowd_http_suspended(srv->http);
    g.store_backlog = srv->store->ops->backlog ? srv->store->ops->backlog(srv->store) : 0;
    flowd_schedules_counts(srv->schedules, &g.schedule_runs[0], &g.schedule_runs[1],
                           &g.schedule_runs[2], &g.schedules);
    flow_buf_t b;
    flow_buf_init(&b, 0);
    flowd_metrics_render(srv->metrics, &g, &b);
    size_t len = 0;
    char *body = flow_buf_take(&b, &len);
    return flowd__http_send(r, conn, 200, body, len, "text/plain; version=0.0.4; charset=utf-8");
}

enum MHD_Result flowd__http_healthz(flowd_server_t *srv, flowd_req_t *r,
                                    struct MHD_Connection *conn) {
    if (atomic_load(&srv->stopping))
        return flowd__http_send_error(r, conn, FLOWD_E_SHUTTING_DOWN, NULL);
    static const char ok[] = "{\n  \"status\": \"ok\"\n}\n";
    return flowd__http_send_json(r, conn, 200, strdup(ok), sizeof ok - 1);
}
