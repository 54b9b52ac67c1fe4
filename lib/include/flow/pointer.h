/* flow/pointer.h: JSON Pointer (RFC 6901) on jansson values: checking a pointer, and reading,
 * setting and removing the value it names. The REST API's GET /v1/jobs/{id}/shared?pointer=/a/b
 * and the references of templates ($shared/a/b) use it.
 *
 * A pointer is "" (the whole document) or a sequence of "/token"; in a token "~1" stands for "/"
 * and "~0" for "~", and any other "~" is malformed. On an object a token names a member; on an
 * array it must be an index in canonical decimal ("0", "17": no sign, no leading zero), and "-"
 * names the element after the last one, which never exists: it only serves flow_pointer_set() to
 * append.
 *
 * Errors: FLOW_EINVAL when the pointer is malformed (it does not start with "/", holds a bad
 * escape or is not valid UTF-8) whatever the document; FLOW_ENOTFOUND when it is well-formed but
 * names nothing in this document (a missing member, an index past the end or not canonical, "-", a
 * token below a number). */
#ifndef FLOW_POINTER_H
#define FLOW_POINTER_H

#include <stddef.h>

#include <jansson.h>

#include "flow.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Syntax only: 0 or FLOW_EINVAL. checkn reads len bytes (ptr need not be NUL-terminated) and, when it
 * fails and bad is not NULL, stores in *bad the byte offset where the pointer goes wrong. */
FLOW_EXPORT int flow_pointer_check(const char *ptr);
FLOW_EXPORT int flow_pointer_checkn(const char *ptr, size_t len, size_t *bad);

/* *out receives the value ptr names, borrowed from root (NULL on error). root is borrowed. */
FLOW_EXPORT int flow_pointer_get(json_t *root, const char *ptr, json_t **out);
FLOW_EXPORT int flow_pointer_getn(json_t *root, const char *ptr, size_t len, json_t **out);

/* Puts value (stolen, on error too, like json_object_set_new) where ptr says, replacing what was
 * there. Members missing on the way are created as objects ("/a/b/c" on {} gives
 * {"a":{"b":{"c":value}}}), or as a new array where the token after them is "-" ("/x/-" on {} gives
 * {"x":[value]}); "-" appends to an array, and an array element is never created otherwise.
 * root (borrowed) is not replaced: ptr "" is FLOW_EINVAL. FLOW_EINVAL too when the path goes through
 * a value that is neither an object nor an array, or when value is root; value must not contain root.
 * FLOW_ENOTFOUND when an array index on the way does not exist. On error root is unchanged. */
FLOW_EXPORT int flow_pointer_set(json_t *root, const char *ptr, json_t *value);

/* Removes the member or element ptr names (array elements after it move down). FLOW_EINVAL for "",
 * FLOW_ENOTFOUND when there is nothing there. */
FLOW_EXPORT int flow_pointer_remove(json_t *root, const char *ptr);

#ifdef __cplusplus
}
#endif
#endif
