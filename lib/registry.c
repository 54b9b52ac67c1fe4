/* registry.c: node types and flows by name. It has a lock of its own because the server's HTTP
 * threads look flows up while the loop thread runs jobs and flows are replaced at run time. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct type_entry {
    char *name;
    flow_type_factory factory;
    void *data;
    void (*free_data)(void *);
} type_entry_t;

struct flow_registry {
    uv_rwlock_t lock;
    type_entry_t *types;
    size_t ntypes;
    size_t captypes;
    flow_def_t **flows; /* sorted by name */
    size_t nflows;
    size_t capflows;
};

int flow_registry_new(flow_registry_t **out) {
    if (out == NULL)
        return FLOW_EINVAL;
    flow_registry_t *reg = flow__calloc(1, sizeof *reg);
    if (reg == NULL)
        return FLOW_ENOMEM;
    if (uv_rwlock_init(&reg->lock) != 0) {
        flow__free(reg);
        return FLOW_ENOMEM;
    }
    *out = reg;
    return 0;
}

void flow_registry_free(flow_registry_t *reg) {
    if (reg == NULL)
        return;
    for (size_t i = 0; i < reg->ntypes; i++) {
        if (reg->types[i].free_data != NULL)
            reg->types[i].free_data(reg->types[i].data);
        flow__free(reg->types[i].name);
    }
    flow__free(reg->types);
    for (size_t i = 0; i < reg->nflows; i++)
        flow_def_unref(reg->flows[i]);
    flow__free(reg->flows);
    uv_rwlock_destroy(&reg->lock);
    flow__free(reg);
}

static type_entry_t *find_type(flow_registry_t *reg, const char *name) {
    for (size_t i = 0; i < reg->ntypes; i++)
        if (strcmp(reg->types[i].name, name) == 0)
            return &reg->types[i];
    return NULL;
}

int flow_registry_add_type(flow_registry_t *reg, const char *name, flow_type_factory factory, void *data,
                           void (*free_data)(void *)) {
    if (reg == NULL || name == NULL || *name == '\0' || factory == NULL)
        return FLOW_EINVAL;
    int rc = 0;
    uv_rwlock_wrlock(&reg->lock);
    if (find_type(reg, name) != NULL) {
        rc = FLOW_EEXIST;
        goto out;
    }
    type_entry_t *types = flow__grow(reg->types, reg->ntypes, &reg->captypes, sizeof *types, 16, 0);
    if (types == NULL) {
        rc = FLOW_ENOMEM;
        goto out;
    }
    reg->types = types;
    char *copy = flow__strdup(name);
    if (copy == NULL) {
        rc = FLOW_ENOMEM;
        goto out;
    }
    reg->types[reg->ntypes++] = (type_entry_t){copy, factory, data, free_data};
out:
    uv_rwlock_wrunlock(&reg->lock);
    return rc;
}

int flow_registry_type(flow_registry_t *reg, const char *name, flow_type_factory *factory, void **data) {
    if (reg == NULL || name == NULL)
        return FLOW_EINVAL;
    int rc = FLOW_ENOTFOUND;
    uv_rwlock_rdlock(&reg->lock);
    type_entry_t *t = find_type(reg, name);
    if (t != NULL) {
        if (factory != NULL)
            *factory = t->factory;
        if (data != NULL)
            *data = t->data;
        rc = 0;
    }
    uv_rwlock_rdunlock(&reg->lock);
    return rc;
}

/* Index of the first flow whose name is >= name. */
static size_t flow_slot(const flow_registry_t *reg, const char *name) {
    size_t lo = 0, hi = reg->nflows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(reg->flows[mid]->name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int flow_at(const flow_registry_t *reg, size_t slot, const char *name) {
    return slot < reg->nflows && strcmp(reg->flows[slot]->name, name) == 0;
}

int flow_registry_put_flow(flow_registry_t *reg, flow_def_t *def, flow_error_t *err) {
    if (reg == NULL || def == NULL)
        return FLOW_EINVAL;
    int rc = flow_def_seal(def, err);
    if (rc < 0)
        return rc;
    uv_rwlock_wrlock(&reg->lock);
    size_t slot = flow_slot(reg, def->name);
    if (flow_at(reg, slot, def->name)) {
        flow_def_t *old = reg->flows[slot];
        reg->flows[slot] = flow_def_ref(def);
        uv_rwlock_wrunlock(&reg->lock);
        flow_def_unref(old);
        return 0;
    }
    flow_def_t **flows = flow__grow(reg->flows, reg->nflows, &reg->capflows, sizeof *flows, 8, 0);
    if (flows == NULL) {
        uv_rwlock_wrunlock(&reg->lock);
        return FLOW_ENOMEM;
    }
    reg->flows = flows;
    memmove(&reg->flows[slot + 1], &reg->flows[slot], (reg->nflows - slot) * sizeof *reg->flows);
    reg->flows[slot] = flow_def_ref(def);
    reg->nflows++;
    uv_rwlock_wrunlock(&reg->lock);
    return 0;
}

flow_def_t *flow_registry_get_flow(flow_registry_t *reg, const char *name) {
    if (reg == NULL || name == NULL)
        return NULL;
    flow_def_t *def = NULL;
    uv_rwlock_rdlock(&reg->lock);
    size_t slot = flow_slot(reg, name);
    if (flow_at(reg, slot, name))
        def = flow_def_ref(reg->flows[slot]);
    uv_rwlock_rdunlock(&reg->lock);
    return def;
}

int flow_registry_remove_flow(flow_registry_t *reg, const char *name) {
    if (reg == NULL || name == NULL)
        return FLOW_EINVAL;
    flow_def_t *old = NULL;
    uv_rwlock_wrlock(&reg->lock);
    size_t slot = flow_slot(reg, name);
    if (flow_at(reg, slot, name)) {
        old = reg->flows[slot];
        memmove(&reg->flows[slot], &reg->flows[slot + 1], (reg->nflows - slot - 1) * sizeof *reg->flows);
        reg->nflows--;
    }
    uv_rwlock_wrunlock(&reg->lock);
    if (old == NULL)
        return FLOW_ENOTFOUND;
    flow_def_unref(old);
    return 0;
}

int flow_registry_list_flows(flow_registry_t *reg, flow_def_t ***out, size_t *count) {
    if (reg == NULL || out == NULL || count == NULL)
        return FLOW_EINVAL;
    uv_rwlock_rdlock(&reg->lock);
    flow_def_t **list = flow__calloc(reg->nflows ? reg->nflows : 1, sizeof *list);
    if (list == NULL) {
        uv_rwlock_rdunlock(&reg->lock);
        return FLOW_ENOMEM;
    }
    for (size_t i = 0; i < reg->nflows; i++)
        list[i] = flow_def_ref(reg->flows[i]);
    *count = reg->nflows;
    uv_rwlock_rdunlock(&reg->lock);
    *out = list;
    return 0;
}

size_t flow_registry_flow_count(flow_registry_t *reg) {
    uv_rwlock_rdlock(&reg->lock);
    size_t n = reg->nflows;
    uv_rwlock_rdunlock(&reg->lock);
    return n;
}
