/* store_memory.c: the memory store of store.h. The job table already holds everything, so each
 * call of the memory store does nothing; create completes at once, which lets POST /v1/jobs answer
 * without suspending. */
#include <stdlib.h>

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
    store->cluster = NULL;
    *out = store;
    return 0;
}
