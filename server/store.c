/* store.c: what the durable stores (store_sqlite.c, store_postgres.c) share: the copy of a job's end
 * they write when it finishes, and the wait of a caller for their thread. */
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

void flowd_store_wait_init(flowd_store_wait_t *w) {
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->finished = 0;
    w->rc = 0;
}

void flowd_store_wait_done(flowd_store_wait_t *w, int rc) {
    pthread_mutex_lock(&w->lock);
    w->rc = rc;
    w->finished = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int flowd_store_wait(flowd_store_wait_t *w) {
    pthread_mutex_lock(&w->lock);
    while (!w->finished)
        pthread_cond_wait(&w->cond, &w->lock);
    int rc = w->rc;
    pthread_mutex_unlock(&w->lock);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    return rc;
}
