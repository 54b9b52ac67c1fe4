/* store_memory.c: the memory store of store.h. The job table already holds everything, so each call
 * does nothing; create completes at once, which lets POST /v1/jobs answer without suspending. */
#include <stdlib.h>

#include "store.h"

static int mem_create(flowd_store_t *store, struct flowd_job *job, flowd_store_done_cb done, void *data) {
    (void)store;
    (void)job;
    done(data, 0);
    return 0;
}

static void mem_checkpoint(flowd_store_t *store, struct flowd_job *job, const flow_step_t *step,
                           json_t *shared) {
    (void)store;
    (void)job;
    (void)step;
    (void)shared;
}

static void mem_finish(flowd_store_t *store, struct flowd_job *job) {
    (void)store;
    (void)job;
}

static void mem_remove(flowd_store_t *store, const char *id) {
    (void)store;
    (void)id;
}

static void mem_close(flowd_store_t *store) {
    free(store);
}

static const flowd_store_ops_t memory_ops = {
    .name = "memory",
    .immediate = 1,
    .create = mem_create,
    .checkpoint = mem_checkpoint,
    .finish = mem_finish,
    .remove = mem_remove,
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
