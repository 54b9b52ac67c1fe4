/* store.c: what the durable stores (store_sqlite.c, store_postgres.c) share: the copy of a job's end
 * they write when it finishes. */
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "render.h"
#include "store.h"

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

void flowd_store_end_copy(struct flowd_job *job, flowd_store_end_t *out) {
    *out = (flowd_store_end_t){
        .status = flowd_job_status(job),
        .steps = job->steps,
        .started_us = job->started_us,
        .finished_us = job->finished_us,
        .shared = job->final_shared ? strndup(job->final_shared, job->final_shared_len) : NULL,
        .last_action = dup_or_null(job->last_action),
        .error_code = job->error.code ? strdup(flow_err_name(job->error.code)) : NULL,
        .error_message = dup_or_null(job->error.message),
        .error_node = dup_or_null(job->error.node),
        .totals = flowd_render_totals_text(&job->totals),
    };
}

void flowd_store_end_free(flowd_store_end_t *end) {
    free(end->shared);
    free(end->last_action);
    free(end->error_code);
    free(end->error_message);
    free(end->error_node);
    free(end->totals);
    memset(end, 0, sizeof *end);
}
