/* flow/jsonpos.h: where in a JSON text the value a JSON Pointer names begins, as a line and a
 * column, so that problems found in a parsed document can be reported as file:line:column. jansson
 * keeps no positions, so this walks the text itself. */
#ifndef FLOW_JSONPOS_H
#define FLOW_JSONPOS_H

#include <stddef.h>

#include "flow.h"

/* Lines and columns count from 1; columns in bytes. Returns 0, FLOW_ENOTFOUND when the pointer
 * names nothing in the text (then *line and *col are where the deepest existing part begins), or
 * FLOW_EINVAL for a malformed text or pointer. */
FLOW_EXPORT int flow_json_locate(const char *text, size_t len, const char *pointer, int *line,
                                 int *col);

#endif
