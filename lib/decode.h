/* decode.h: reading what a model answers. Most PocketFlow examples ask the model for YAML inside a
 * ``` fence ("```yaml\nthinking: |\n  ...\naction: search\n```"); these turn such an answer into
 * JSON. The llm node's "parse" and the Lua helpers yaml.decode and fence() are built on them.
 *
 * Both only read the text given (borrowed; it need not be NUL-terminated) and may run on any
 * thread. */
#ifndef FLOW_DECODE_H
#define FLOW_DECODE_H

#include <stddef.h>

#include <jansson.h>

#include "flow.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The caps of flow_yaml_decode, so that an answer (or a hostile text) of any shape costs bounded
 * time and memory on the loop thread. MAX_DEPTH: sequences and mappings nested in each other;
 * MAX_NODES: values made, every alias counted as a full copy; MAX_BYTES: bytes of text read, and
 * bytes of scalars and keys made (aliases counted again at each use). */
#define FLOW_YAML_MAX_DEPTH 64
#define FLOW_YAML_MAX_NODES 100000
#define FLOW_YAML_MAX_BYTES ((size_t)16 << 20)

/* Decodes YAML (libyaml) into JSON: *out receives a new reference (NULL on error).
 *
 * Scalars are typed as YAML 1.2's core schema does, for plain (unquoted) scalars without a tag:
 * null, Null, NULL, ~ and the empty scalar are null; true/True/TRUE and false/False/FALSE are
 * booleans; [-+]?[0-9]+, 0o[0-7]+ and 0x[0-9a-fA-F]+ are integers (one that does not fit 64 bits
 * becomes a real); [-+]?(.[0-9]+|[0-9]+(.[0-9]*)?)([eE][-+]?[0-9]+)? are reals; everything else is
 * a string. Quoted scalars, literal (|) and folded (>) blocks, and scalars tagged !!str or ! are
 * always strings. .inf, .nan and reals beyond a double, which JSON cannot hold, stay the strings
 * written. Block and flow styles both work.
 *
 * Mapping keys must be scalars and are kept as written ("1: a" gives {"1": "a"}); a key that
 * repeats in one mapping is an error. Aliases (*name) are copied where they are used, each copy
 * counted against the caps above, so that a "billion laughs" stops at FLOW_YAML_MAX_NODES instead
 * of growing; an alias to an unknown anchor, or inside its own anchor, is an error.
 *
 * One document only: an empty text (or only comments) gives JSON null, and a second document
 * ("---" after the first one) is an error rather than being dropped unread.
 *
 * Errors: FLOW_EINVAL (not YAML, a non-scalar key, a repeated key, a second document, a bad alias),
 * FLOW_ETOOBIG (past one of the caps), FLOW_ENOMEM. err (may be NULL) receives the code and a
 * message that starts with the place, counted from 1: "line 3, column 7: mapping values are not
 * allowed in this context". */
int flow_yaml_decode(const char *text, size_t len, json_t **out, flow_error_t *err);

/* Finds the inside of the first ``` fenced block of text: *start is its offset and *inner_len its
 * length. The opening fence is the first run of three or more backticks; a language tag right after
 * it ("```yaml", "```json") is skipped with the rest of that line's blanks, and the block ends at
 * the next run of as many backticks (the line break before it is not part of the inside) or, when
 * there is none (an answer cut short), at the end of the text. Returns 1 when a fence was found, 0
 * when there is none (then the whole text: *start 0, *inner_len len), FLOW_EINVAL when an argument
 * is NULL. */
int flow_fence_inner(const char *text, size_t len, size_t *start, size_t *inner_len);

#ifdef __cplusplus
}
#endif
#endif
