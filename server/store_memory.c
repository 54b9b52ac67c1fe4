/* store_memory.c: the memory store of store.h, and flowd_store_open, which picks a store by its
 * spec. The job table already holds everything, so each call of the memory store does nothing;
 * create completes at once, which lets POST /v1/jobs answer without suspending. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

static int mem_create(flowd_store_t *store, struct flowd_job *job, json_t *shared, json_t *params,
                      flowd_store_done_cb done, void *data) {
    (void)store;
    (void)job;
    (void)shared;
    (void)params;
    done(data, 0);
    return 0;
}

static void mem_finish(flowd_store_t *store, struct flowd_job *job) {
    (void)store;
    (void)job;
}

static void mem_remove(flowd_store_t *store, const char *id) {
    (void)store;
    (void)id;
}

static int mem_load(flowd_store_t *store, flowd_store_each_cb each, void *data) {
    (void)store;
    (void)each;
    (void)data;
    return 0;
}

static int mem_put_flow(flowd_store_t *store, const char *name, json_t *doc) {
    (void)store;
    (void)name;
    (void)doc;
    return 0;
}

static int mem_load_flows(flowd_store_t *store, flowd_store_flow_cb each, void *data) {
    (void)store;
    (void)each;
    (void)data;
    return 0;
}

static void mem_close(flowd_store_t *store) {
    free(store);
}

static const flowd_store_ops_t memory_ops = {
    .name = "memory",
    .immediate = 1,
    .create = mem_create,
    .finish = mem_finish,
    .remove = mem_remove,
    .load = mem_load,
    .put_flow = mem_put_flow,
    .load_flows = mem_load_flows,
    .close = mem_close,
};

int flowd_store_memory_new(flowd_store_t **out) {
    flowd_store_t *store = malloc(sizeof *store);
    if (store == NULL)
        return FLOW_ENOMEM;
    store->ops = &memory_ops;
    *out = store;
    return 0;
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
    free(j->shared);
    free(j->history);
    memset(j, 0, sizeof *j);
}

int flowd_store_open(const char *spec, const flowd_store_opts_t *opts, flowd_store_t **out, char *err,
                     size_t errlen) {
    const char *data_dir = opts->data_dir, *sync = opts->sync;
    if (strcmp(spec, "memory:") == 0 || strcmp(spec, "memory") == 0)
        return flowd_store_memory_new(out);
    if (strncmp(spec, "sqlite:", 7) == 0 && spec[7] != '\0') {
        const char *file = spec + 7;
        char path[4096];
        if (file[0] == '/') {
            snprintf(path, sizeof path, "%s", file);
        } else {
            /* a relative file lives in the data directory, made if needed */
            if (mkdir(data_dir, 0750) != 0 && access(data_dir, W_OK) != 0) {
                snprintf(err, errlen, "--data-dir %s cannot be made or written", data_dir);
                return FLOW_EIO;
            }
            snprintf(path, sizeof path, "%s/%s", data_dir, file);
        }
        return flowd_store_sqlite_new(path, sync, out, err, errlen);
    }
    if (strncmp(spec, "postgresql://", 13) == 0 || strncmp(spec, "postgres://", 11) == 0)
        return flowd_store_postgres_new(spec, opts, out, err, errlen);
    snprintf(err, errlen, "'%s' is not a store: memory:, sqlite:PATH or postgresql://...", spec);
    return FLOW_EINVAL;
}
