/* flow/utf8.h: checking UTF-8, one sequence at a time, for code that walks a text itself (JSON
 * Pointers in lib/pointer.c, flowd's JSON writer). jansson checks UTF-8 but does not export how,
 * and a library for these few lines (libunistring) would be a dependency of its own. */
#ifndef FLOW_UTF8_H
#define FLOW_UTF8_H

#include <stddef.h>

#include "flow.h"

/* The length (1 to 4) of the valid UTF-8 sequence at s, which has n bytes (n >= 1), or 0 when it
 * is not valid: overlong forms, surrogates and code points past U+10FFFF are not. */
FLOW_EXPORT size_t flow_utf8_len(const unsigned char *s, size_t n);

#endif
