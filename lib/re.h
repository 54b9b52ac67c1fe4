/* re.h: regular expressions for flow documents (choice "matches", schema "pattern"), on PCRE2, with
 * a limit on everything a hostile pattern or string could make the loop thread do.
 *
 * Syntax: PCRE2's, which is Perl's (and close to ECMAScript's, what JSON Schema names): \d \w \s,
 * lazy and possessive quantifiers, lookaround, back-references, (?i). Options: UTF (the pattern and
 * the strings are UTF-8, "." is a whole character; a string that is not valid UTF-8 never matches
 * but gets an error), "$" only at the very end (as in POSIX and ECMAScript, not before a final
 * newline as in Perl), and no \C. A pattern matches anywhere in the string unless anchored.
 *
 * Limits (flow_re_limits_t of flow/limits.h; 0 takes the default):
 *   at compile time  the pattern's length, its nesting of parentheses, the size of the compiled
 *                    form (PCRE2 10.45 checks it while compiling, older ones after): a pattern over
 *                    one is refused, so that a document holding it does not load;
 *   per match        PCRE2's match limit (backtracking steps), depth limit and heap limit (bytes of
 *                    backtracking memory; also the largest JIT stack);
 *   per evaluation   a budget of match-limit units for all the matches of one evaluation (an input
 *                    answer's whole schema, a choice node's cases), so that many strings or many
 *                    patterns cannot add up: PCRE2 does not say how much of its limit a match used,
 *                    so each match is charged what it was allowed (it is run with 256 units first,
 *                    then 8 times more each time that is not enough, up to the match limit and what
 *                    is left) and one unit per 8 bytes of its string.
 * Patterns are JIT-compiled when PCRE2 has a JIT for this machine (and limits.no_jit is 0); when JIT
 * compiling fails, the interpreter runs them, under the same limits.
 *
 * Threads: a flow_re_t is only read once compiled, so threads may share it; a flow_re_run_t belongs
 * to one evaluation on one thread. */
#ifndef FLOW_RE_H
#define FLOW_RE_H

#include <stddef.h>
#include <stdint.h>

#include "flow/limits.h" /* flow_re_limits_t and its defaults */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flow_re flow_re_t;

/* Compiles the pattern [pattern, pattern+len) (it may hold NUL bytes) under limits (NULL: the
 * defaults; copied). Returns 0 with *out (free with flow_re_free); FLOW_EINVAL when it is not a
 * valid pattern or is over a compile limit, with why (whylen bytes) saying so, e.g. "quantifier
 * does not follow a repeatable item at offset 4" or "longer than 1024 bytes (the regex length
 * limit)"; FLOW_ENOMEM. */
int flow_re_compile(const char *pattern, size_t len, const flow_re_limits_t *limits, flow_re_t **out, char *why,
                    size_t whylen);
void flow_re_free(flow_re_t *re); /* NULL is ignored */
/* The pattern as given (borrowed from re, NUL-terminated) and whether JIT runs it. */
const char *flow_re_pattern(const flow_re_t *re);
int flow_re_jit(const flow_re_t *re);

/* One evaluation: its budget and the scratch memory of its matches, made at the first match. */
typedef struct flow_re_run {
    flow_re_limits_t limits; /* with the defaults filled in */
    uint64_t left;           /* budget units left */
    void *scratch;           /* private */
} flow_re_run_t;

/* Starts an evaluation under limits (NULL: the defaults; copied): its budget and the limits of each
 * of its matches. */
void flow_re_run_init(flow_re_run_t *run, const flow_re_limits_t *limits);
/* Frees the scratch memory; run may be used again after flow_re_run_init. */
void flow_re_run_end(flow_re_run_t *run);

/* Whether re matches the string [s, s+len): 1 or 0. FLOW_ETOOBIG when a limit stopped the match,
 * with why naming it ("the regex match limit (1000000) was reached", "the regex budget of this
 * check (10000000) is spent", ...); FLOW_EINVAL when the string is not valid UTF-8; FLOW_ENOMEM. */
int flow_re_match(flow_re_run_t *run, const flow_re_t *re, const char *s, size_t len, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif
#endif
