/* flow/limits.h: the limits a program sets on what flow documents may make the library do with
 * regular expressions (choice "matches", input "schema" patterns) and Lua hooks. The built-in node
 * types take them (flow/nodes.h). A member left 0 takes the default below.
 *
 * Regular expressions (PCRE2): a pattern longer, more nested or larger compiled than the compile
 * limits is refused, so that a document holding it does not load; each match runs under PCRE2's
 * match, depth and heap limits; and all the matches of one evaluation (an answer's whole schema,
 * a choice node's cases) share a budget of match-limit units, each match charged what it was
 * allowed and one unit per 8 bytes of its string. Past a limit the evaluation fails with
 * FLOW_ETOOBIG, naming it.
 *
 * Lua hooks: every call has an instruction budget (a node may ask for its own, up to
 * instructions_max), a time limit, and a cap on the memory its state holds and on the JSON one call
 * may add; past any of them the call fails with a message that names the limit. */
#ifndef FLOW_LIMITS_H
#define FLOW_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FLOW_RE_MAX_LENGTH 1024               /* bytes of a pattern */
#define FLOW_RE_MAX_NESTING 32                /* nested parentheses */
#define FLOW_RE_MAX_COMPILED ((size_t)64 << 10) /* bytes of a compiled pattern */
#define FLOW_RE_MATCH_LIMIT 1000000           /* PCRE2 match limit of one match */
#define FLOW_RE_DEPTH_LIMIT 100000            /* PCRE2 depth limit of one match */
#define FLOW_RE_HEAP_LIMIT ((size_t)4 << 20)  /* bytes of backtracking memory or JIT stack */
#define FLOW_RE_BUDGET 5000000                /* match-limit units of one evaluation */

typedef struct flow_re_limits {
    size_t max_length;
    unsigned max_nesting;
    size_t max_compiled;
    uint32_t match_limit;
    uint32_t depth_limit;
    size_t heap_limit;
    uint64_t budget;
    int no_jit; /* 1: never JIT-compile (the interpreter runs every pattern) */
} flow_re_limits_t;

#define FLOW_SCRIPT_INSTRUCTIONS 10000000ull      /* a call's budget by default */
#define FLOW_SCRIPT_INSTRUCTIONS_MAX 100000000ull /* the most a node may ask for, by default */
#define FLOW_SCRIPT_MEMORY ((size_t)64 << 20)     /* bytes a state may hold, by default */
#define FLOW_SCRIPT_TIME_MS 2000u                 /* milliseconds a call may take, by default */

typedef struct flow_script_limits {
    uint64_t instructions;     /* a call's budget when its node asks for none; 0: default */
    uint64_t instructions_max; /* the most a node may ask for; 0: default */
    size_t memory;    /* bytes the Lua state may hold, and JSON one call may add; 0: default */
    uint64_t time_ms; /* milliseconds one call may take; 0: default */
} flow_script_limits_t;

#ifdef __cplusplus
}
#endif
#endif
