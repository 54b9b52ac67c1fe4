/* store.c: what belongs to no one store: opening the store a spec names, and the helpers every
 * store's callers or readers share. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "store_cluster.h"

int flowd_store_sqlite_path(const char *spec, const char *data_dir, char *out, size_t len) {
    if (strncmp(spec, "sqlite:", 7) != 0 || spec[7] == '\0')
        return FLOW_EINVAL;
    const char *file = spec + 7;
    if (file[0] == '/')
        snprintf(out, len, "%s", file);
    else
        snprintf(out, len, "%s/%s", data_dir, file);
    return 0;
}

int flowd_store_open(const char *spec, const flowd_store_opts_t *opts, flowd_store_t **out,
                     char *err, size_t errlen) {
    const char *data_dir = opts->data_dir, *sync = opts->sync;
    char path[4096];
    if (strcmp(spec, "memory:") == 0 || strcmp(spec, "memory") == 0)
        return flowd_store_memory_new(out);
    if (flowd_store_sqlite_path(spec, data_dir, path, sizeof path) == 0) {
        /* a relative file lives in the data directory, made if needed */
        if (spec[7] != '/' && mkdir(data_dir, 0750) != 0 && access(data_dir, W_OK) != 0) {
            snprintf(err, errlen, "--data-dir %s cannot be made or written", data_dir);
            return FLOW_EIO;
        }
        int rc = flowd_store_sqlite_new(path, sync, opts->shards, out, err, errlen);
        if (rc == 0)
            flowd_store_sqlite_set_history(*out, opts->events_limit);
        return rc;
    }
    if (strncmp(spec, "postgresql://", 13) == 0 || strncmp(spec, "postgres://", 11) == 0)
        return flowd_store_postgres_new(spec, opts, out, err, errlen);
    snprintf(err, errlen, "'%s' is not a store: memory:, sqlite:PATH or postgresql://...", spec);
    return FLOW_EINVAL;
}

int flowd_store_shared_at(flowd_store_t *store, const char *id, uint64_t step, int before,
                          json_t **out, uint64_t *oldest) {
    uint64_t first = 0;
    int rc;
    *out = NULL;
    if (before && step == 0)
        rc = FLOW_EINVAL;
    else if (store->ops->shared_at == NULL)
        rc = FLOW_ESTATE;
    else
        rc = store->ops->shared_at(store, id, before ? step - 1 : step, out, &first);
    if (oldest != NULL)
        *oldest = first;
    return rc;
}

int flowd_store_error_code(const char *name) {
    if (name == NULL)
        return 0;
    for (int code = FLOW__ERR_FIRST + 1; code < FLOW__ERR_LAST; code++)
        if (strcmp(flow_err_name(code), name) == 0)
            return code;
    return FLOW_EFAILED;
}

void flowd_remote_job_clear(flowd_remote_job_t *j) {
    free(j->tenant);
    free(j->flow);
    free(j->current_node);
    free(j->last_action);
    free(j->waiting_for);
    free(j->error_message);
    free(j->error_node);
    free(j->idem_key);
    free(j->conc_key);
    free(j->shared);
    free(j->history);
    free(j->flow_document);
    free(j->origin);
    free(j->params);
    free(j->callback);
    free(j->base_shared);
    free(j->base_node);
    memset(j, 0, sizeof *j);
}
