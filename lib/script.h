/* script.h: Lua 5.4 for the node logic of flow documents: hooks (prep, exec, post, fallback)
 * written in Lua, run in a sandbox on the loop thread.
 *
 * A flow_script_t is one Lua state: a document's chunk (its "code", or NAME.lua beside NAME.json)
 * and the hooks of its nodes, compiled once when the document is loaded. The chunk runs once then,
 * to define its functions; after the hooks are compiled the state is frozen: globals and every
 * table the chunk made are read-only, and the chunk's local variables are put back after every
 * call, so that one call (one job) can leave nothing behind for the next.
 *
 * The sandbox: text chunks only (never bytecode); no io, os, debug, package, require, load, dofile,
 * loadfile, string.dump, collectgarbage, rawset, math.randomseed, coroutine or warn; a metatable
 * with __gc is refused. There are string, table, math, utf8, json (encode, decode, null, array,
 * object, type), yaml.decode, fence(text) and log(...) (print is log). Every call has
 *   - an instruction budget (a count hook), charged also for the work C functions do on long
 *     strings and tables and for every byte allocated, so that a loop of big string operations
 *     stops too;
 *   - a time limit, checked by the same hook, as a backstop for what instructions do not measure;
 *   - a memory cap: the bytes the state may hold (its allocator counts them), and the JSON one call
 *     may add (values written to the store, returned or decoded).
 * Past any of them the call fails with a message that names the limit. What none of them stops:
 * the time spent inside one C function, such as a backtracking pattern (string.find with
 * "a*a*a*b" on a long subject); the memory cap bounds the subject.
 *
 * JSON: Lua sees JSON containers as proxies (userdata) that convert only what is read, so reading
 * one key of a large store costs the same as of a small one; script_json.c has the rules.
 *
 * Threads: a script is used by one thread at a time: loaded with its document (any thread), then
 * called on the loop thread. A script is reference-counted (not atomically: the nodes of one
 * definition hold and drop it together). */
#ifndef FLOW_SCRIPT_H
#define FLOW_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "flow.h"
#include "flow/limits.h" /* flow_script_limits_t and its defaults */
#include "flow/problems.h"

#define FLOW_SCRIPT_NOREF (-2)                    /* no hook (LUA_NOREF) */

typedef struct flow_script flow_script_t;

/* A new state with the sandbox's globals; lim (may be NULL: the defaults) is copied. FLOW_ENOMEM.
 */
int flow_script_new(const flow_script_limits_t *lim, flow_script_t **out);
flow_script_t *flow_script_ref(flow_script_t *s); /* returns s */
void flow_script_unref(flow_script_t *s);         /* NULL is ignored; the last closes the state */
const flow_script_limits_t *flow_script_limits(const flow_script_t *s);

/* Where the problems of code are placed. */
typedef enum flow_script_place {
    FLOW_SCRIPT_AT_POINTER, /* where is the JSON Pointer of a string; messages start "line N: " */
    FLOW_SCRIPT_AT_LINES,   /* where is an array of lines: the problem is at where/(N-1) */
    FLOW_SCRIPT_AT_FILE     /* where is a file name: the problem is at "where:N" */
} flow_script_place_t;

/* Compiles the document's chunk (code, len bytes, borrowed) and runs it, so that it defines its
 * functions. name is what messages at run time call it ("/code", or "agent.lua"). A problem (it
 * does not compile, or running it fails) goes to problems, placed as place says. Returns 0,
 * FLOW_ELOAD, FLOW_ENOMEM. */
int flow_script_load(flow_script_t *s, const char *code, size_t len, const char *name,
                     const char *where, flow_script_place_t place, flow_problems_t *problems);

/* The hook a node member gives (spec, borrowed): the name of a function the chunk defined (a Lua
 * name, dots allowed: "decide_post", "agent.post"), or code, a string or an array of lines: the
 * body of a function whose parameters are params (a NULL-terminated list of Lua names). where is
 * the member's JSON Pointer; a line of an array is where/INDEX. *ref receives the hook. Problems:
 * the code does not compile ("line N: ..."), no such function (chunk_ok 0 skips that check: the
 * chunk did not load). Returns 0, FLOW_ELOAD, FLOW_ENOMEM. */
int flow_script_hook(flow_script_t *s, json_t *spec, const char *const *params, const char *where,
                     int chunk_ok, flow_problems_t *problems, int *ref);

/* 1 when spec is a function's name rather than code. */
int flow_script_is_name(json_t *spec);

/* Makes the state read-only (see above); after it, only calls. 0, or FLOW_ENOMEM (the state is then
 * unusable: problems says so at where). Idempotent. */
int flow_script_freeze(flow_script_t *s, const char *where, flow_problems_t *problems);

/* One call of a hook. */
typedef struct flow_script_call {
    int ref;         /* from flow_script_hook */
    uint64_t budget; /* instructions; 0: the limits' default */
    json_t *args[6]; /* borrowed; NULL is nil */
    unsigned nargs;
    unsigned
        writable; /* bit i: args[i] may be changed (the shared store); the others are read-only */
    flow_ctx_t *ctx;  /* where log(...) writes (flow_ctx_log); NULL: only flow_log */
    const char *node; /* for messages: "node decide, post: ..." (node may be NULL) */
    const char *hook;
    char *text;      /* NULL, or where a hook that returns a string (a post's action) puts it,
                      * NUL-terminated, instead of *result; nil leaves "" */
    size_t text_cap; /* its size: a longer string fails the call */
} flow_script_call_t;

/* Calls the hook: *result receives what it returned as JSON (new reference; NULL for nil). On
 * error, FLOW_ESCRIPT with err's message naming the node and the hook, the Lua place and line, or
 * the limit that stopped it; FLOW_ENOMEM. */
int flow_script_call(flow_script_t *s, const flow_script_call_t *c, json_t **result,
                     flow_error_t *err);

/* For tests and fuzzing, without a document or a server: compiles code (len bytes) as the body of
 * function(value) in a new frozen state with lim (may be NULL), calls it with value (borrowed,
 * writable like the shared store; NULL: nil), and gives what it returns in *out (new reference,
 * NULL for nil). Compile errors are FLOW_ESCRIPT too. */
int flow_script_eval(const flow_script_limits_t *lim, const char *code, size_t len, json_t *value,
                     json_t **out, flow_error_t *err);

#endif
