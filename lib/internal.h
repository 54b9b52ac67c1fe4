/* internal.h: what the files of libflow share with each other and nobody else. */
#ifndef FLOW_INTERNAL_H
#define FLOW_INTERNAL_H

#include <stdatomic.h>

#include "flow.h"

/* The allocator every file of libflow uses (flow_set_allocator can replace it). */
void *flow__malloc(size_t size);
void *flow__calloc(size_t count, size_t size);
void *flow__realloc(void *p, size_t size);
void flow__free(void *p);
char *flow__strdup(const char *s);
/* Room for one more item in the array items of *cap items of size bytes, n of them in use: items
 * itself while n < *cap; else the array moved into a block twice as large (first items the first
 * time, never more than max when max is not 0), *cap updated. NULL when there is no room (out of
 * memory, or *cap is max already): items is still the caller's, as it was. */
void *flow__grow(void *items, size_t n, size_t *cap, size_t size, size_t first, size_t max);
char *flow__vasprintf(const char *fmt, va_list ap);
char *flow__asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Fills err (may be NULL) with code and a formatted message; returns code. */
int flow__set_error(flow_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int flow__set_verror(flow_error_t *err, int code, const char *fmt, va_list ap);

/* Frees what jansson allocated and handed out (json_dumps' text) with jansson's own free function. */
void flow__json_free(void *p);

typedef struct flow_succ {
    char *action;
    flow_node_t *to;
} flow_succ_t;

struct flow_node {
    flow_def_t *def;
    char *name;
    flow_kind_t kind;
    const flow_node_ops_t *ops; /* never NULL: flow__no_ops when none was given */
    void *data;
    json_t *params;             /* NULL when empty, so runs skip merging */
    unsigned max_retries;
    uint64_t wait_ms;
    double backoff;             /* the wait before try k+1 is wait_ms * backoff^(k-1); 1: constant */
    uint64_t max_wait_ms;       /* 0: no cap (a Retry-After is still capped: FLOW_RETRY_AFTER_MAX_MS) */
    int jitter;                 /* flow_jitter_t */
    uint64_t timeout_ms;
    unsigned limit;
    int threaded;
    flow_node_t *start;
    flow_succ_t *succ;
    size_t nsucc;
    size_t capsucc;
    size_t index; /* in def->nodes */
};

struct flow_def {
    atomic_uint refs;
    atomic_int sealed;
    char *name;
    flow_node_t **nodes;
    size_t nnodes;
    size_t capnodes;
    flow_node_t *root;
    json_t *meta;
};

/* member[f * n + j] = 1 when node j is reachable from the start of flow-kind node f (n = nnodes;
 * member zeroed by the caller, queue has room for n indexes). */
int flow__def_members(const flow_def_t *def, unsigned char *member, size_t *queue);
int flow__is_flow_kind(flow_kind_t kind);

extern const flow_node_ops_t flow__no_ops;
extern const char flow__default_action[]; /* "default" */

/* A node wrote the top-level key of the shared store (len bytes; key NULL: any key, e.g. the whole
 * store), or the member a JSON Pointer's first token names (ptr "" : the whole store). Out of
 * memory marks every key written: a patch too big is right, one too small is not. */
void flow__ctx_touch(flow_ctx_t *c, const char *key, size_t len);
void flow__ctx_touch_pointer(flow_ctx_t *c, const char *ptr);
/* The node's ops report their writes to shared (the built-in ops of documents, nodes.c); a C
 * node's do not, so every key counts as written after its prep and its post. */
int flow__ops_report_writes(const flow_node_ops_t *ops);

#endif
