/* jpath.h: the place of a value while a checker walks a JSON tree, internal to lib/. Each level of
 * the walk keeps a frame on its own stack that points to its parent's; the chain becomes a JSON
 * Pointer only when a problem is reported there, so a walk that finds nothing allocates nothing. */
#ifndef FLOW_JPATH_H
#define FLOW_JPATH_H

#include <stdarg.h>
#include <stddef.h>

#include "flow/problems.h"

typedef struct flow__jpath {
    const struct flow__jpath *up; /* the enclosing value's frame; NULL for the top */
    const char *key;  /* borrowed: a member name; for the top frame, a ready JSON Pointer (the prefix
                       * the caller gave, "" or NULL for none); NULL for an array element */
    size_t index;     /* array index, when key is NULL */
} flow__jpath_t;

/* Frames for the top (prefix may be NULL), a member and an array element. */
flow__jpath_t flow__jpath_top(const char *prefix);
flow__jpath_t flow__jpath_key(const flow__jpath_t *up, const char *key);
flow__jpath_t flow__jpath_index(const flow__jpath_t *up, size_t index);

/* The JSON Pointer of p, escaped as RFC 6901 says: a new string (free() it). */
int flow__jpath_render(const flow__jpath_t *p, char **out);

/* flow_problems_add() at the place p. problems may be NULL. 0 or FLOW_ENOMEM / FLOW_ETOOBIG. */
int flow__jpath_report(flow_problems_t *problems, const flow__jpath_t *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int flow__jpath_reportv(flow_problems_t *problems, const flow__jpath_t *p, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* A check under way: where its problems go (may be NULL) and how many it has found, which tells the
 * checker whether the document is good even when nobody keeps the list. */
typedef struct flow__check {
    flow_problems_t *problems;
    size_t found;
} flow__check_t;

/* Counts a problem and reports it at p; 0 or FLOW_ENOMEM / FLOW_ETOOBIG. */
int flow__check_problem(flow__check_t *c, const flow__jpath_t *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
