/* patch.h: a job's shared store as a log of changes: the RFC 6902 JSON Patch of each step, made
 * from the top-level keys the step's nodes wrote (flow_job_take_touched), and applied again to a
 * snapshot to give the store as of any step the log keeps (recovery at start, GET
 * /v1/jobs/{id}/shared?step=N, redrive and fork).
 *
 * Why patches of the top-level keys written, not a diff of the whole store: a step's checkpoint
 * must cost what the step changed, not what the store holds. The engine tracks which top-level
 * members the nodes wrote (the built-in types' "out" and "set", Lua's writes through a proxy,
 * flow.h); a patch holds those members as they are now ("add", which RFC 6902 defines as
 * replacing a member that exists) or their removal. Nothing walks or serializes the members no
 * node wrote, and no second copy of the store is kept to compare with: only the set of top-level
 * keys, to tell a removal from a key that never was.
 *
 * Threads: a flowd_patcher_t belongs to its job's run state (loop thread); the other functions
 * work on what they are given, on any thread. */
#ifndef FLOWD_PATCH_H
#define FLOWD_PATCH_H

#include <stdint.h>

#include "flow.h"
#include "flow/buf.h"

/* The top-level keys the store had after the last patch (owned: an object whose members are
 * true). */
typedef struct flowd_patcher {
    json_t *keys;
} flowd_patcher_t;

/* Starts from the keys of shared (borrowed): O(keys), once per run of a job. FLOW_ENOMEM. */
int flowd_patcher_init(flowd_patcher_t *p, const json_t *shared);
void flowd_patcher_free(flowd_patcher_t *p);

/* Appends to out the patch (a JSON array) from the store as the last call left it to shared
 * (borrowed) now, given touched (borrowed): the top-level keys written since (an object; NULL:
 * any key may have changed, and every key is looked at). Each touched key that shared has gives
 * an "add" of its value; one it no longer has, a "remove" when it had it. Returns the number of
 * operations (0: out gets "[]"), or FLOW_ENOMEM (out's error is set). */
int flowd_patch_make(flowd_patcher_t *p, const json_t *shared, const json_t *touched,
                     flow_buf_t *out);

/* Applies patch (borrowed, an array) to doc (borrowed, an object: changed in place): RFC 6902's
 * six operations ("add", "remove", "replace", "move", "copy", "test") on object members and array
 * items (an index, or "-" to append), with RFC 6901 paths. A small applier written here: Debian
 * packages no C library of RFC 6902 for jansson. flowd's own patches use add and remove; a fork's
 * patch (POST /v1/jobs/{id}/fork) may use any. An unknown operation, a path or "from" that names
 * nothing where it must, or a "test" whose value differs is FLOW_EINVAL and why (whylen bytes) says
 * which operation and what; doc is then partly patched (the caller drops it). FLOW_ENOMEM. */
int flowd_patch_apply(json_t *doc, const json_t *patch, char *why, size_t whylen);

/* Applies to store (borrowed, changed in place) the "patch" members of the history entries
 * (borrowed, an array of Step objects, in seq order) whose seq is in (after, upto]. FLOW_EINVAL
 * (why says which step) when one is bad; FLOW_ENOTFOUND when a step in that range has no patch
 * (written before patches were kept). */
int flowd_patch_replay(json_t *store, const json_t *history, uint64_t after, uint64_t upto,
                       char *why, size_t whylen);

#endif
