/* flow/problems.h: a list of everything wrong with a document, each problem with its place, so
 * that a check reports all problems at once instead of stopping at the first. The template
 * checker, the schema compiler and validator, and the flow-document loader all fill one.
 *
 * A problem's place (where) is a JSON Pointer (RFC 6901) into the document checked: "" is the
 * whole document, "/nodes/fetch/params/url" a member of it. The list keeps at most
 * FLOW_PROBLEMS_MAX problems and counts those past the cap, so a hostile document cannot make it
 * grow without bound. */
#ifndef FLOW_PROBLEMS_H
#define FLOW_PROBLEMS_H

#include <stdarg.h>
#include <stddef.h>

#include "flow.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FLOW_PROBLEMS_MAX 100         /* problems kept in one list */
#define FLOW_PROBLEM_MESSAGE_MAX 1024 /* bytes of a message, NUL included; longer ones are cut, "..." */

typedef struct flow_problem {
    char *where;   /* a JSON Pointer into the document; owned by the list */
    char *message; /* owned by the list */
} flow_problem_t;

typedef struct flow_problems {
    flow_problem_t *items; /* count problems, in the order found; owned */
    size_t count;
    size_t dropped;        /* problems found past FLOW_PROBLEMS_MAX: counted, not kept */
    size_t alloc;          /* entries allocated at items */
} flow_problems_t;

#define FLOW_PROBLEMS_INIT {NULL, 0, 0, 0}

FLOW_EXPORT void flow_problems_init(flow_problems_t *p);
/* Frees every problem and leaves p empty and ready for use. */
FLOW_EXPORT void flow_problems_clear(flow_problems_t *p);

/* Records a problem: where (borrowed, copied; NULL means "") and a printf-formatted message.
 * p NULL is allowed and records nothing, for callers that only want a yes or no.
 * Returns 0 (also when the problem is only counted, past the cap) or FLOW_ENOMEM. */
FLOW_EXPORT int flow_problems_add(flow_problems_t *p, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
FLOW_EXPORT int flow_problems_addv(flow_problems_t *p, const char *where, const char *fmt,
                                   va_list ap) __attribute__((format(printf, 3, 0)));

/* Every problem found: those kept and those dropped. */
FLOW_EXPORT size_t flow_problems_total(const flow_problems_t *p);

/* One line a problem, "where: message" ("message" alone when where is ""), joined by "\n" without a
 * final one, and "... and N more problems" when some were dropped. *out is a new string, released with
 * free(); "" for an empty list. */
FLOW_EXPORT int flow_problems_text(const flow_problems_t *p, char **out);

#ifdef __cplusplus
}
#endif
#endif
