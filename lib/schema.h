/* schema.h: a validator for a subset of JSON Schema (draft 2020-12), for the answers people give to
 * an input node (an answer that does not match is refused with HTTP 422 and the job keeps waiting)
 * and for checks of flow documents. A schema is compiled once, when its document is loaded: that
 * checks the schema itself, reporting every problem with its place, and compiles its regexes.
 *
 * A schema is an object, or true (anything matches) or false (nothing does). Keywords:
 *   type                  a type name or an array of distinct ones: null, boolean, object, array,
 *                         number, integer, string. "integer" takes any number without a fractional
 *                         part, 1.0 included; "number" takes integers too.
 *   enum, const           the value must equal one of the array's elements, or the const. Equality is
 *                         JSON equality, except that numbers compare by value (1 equals 1.0).
 *   minimum, maximum      value >= minimum, value <= maximum (numbers only; other types pass)
 *   exclusiveMinimum, exclusiveMaximum   value > x, value < x: numbers, as in 2020-12 (not the
 *                         booleans of draft 4)
 *   multipleOf            a number > 0; exact for integers, else within a relative 1e-9
 *   minLength, maxLength  counted in Unicode code points, not bytes (strings only)
 *   pattern               a regular expression in PCRE2's syntax (lib/re.h: Perl's, close to the
 *                         ECMA 262 of JSON Schema), in UTF mode; it matches anywhere unless anchored
 *                         with ^ and $ ("$" only at the very end). Refused when compiled: what PCRE2
 *                         refuses, and patterns over the compile limits of re.h. When a match meets a
 *                         limit of re.h (match, depth, heap, or the budget of one validation), the
 *                         instance is refused, with a problem that names the limit, and nothing more
 *                         is checked.
 *   minItems, maxItems, uniqueItems, items     arrays only; items is one schema for every element
 *                         (the array form of older drafts is refused)
 *   minProperties, maxProperties, required, properties, additionalProperties (a schema, false
 *                         included, for the members properties does not name)   objects only
 *   allOf, anyOf, oneOf   non-empty arrays of schemas; not: a schema
 * Counts (minItems, ...) are non-negative integers. Ignored annotations: title, description,
 * default, examples, $schema, $id, $comment and format (formats are not checked). Any other keyword
 * ($ref, $defs, prefixItems, patternProperties, dependentRequired, if/then/else, ...) is a problem,
 * "unsupported keyword", so that nobody relies on a check that is not made.
 *
 * Problems with the instance are reported at the JSON Pointer of the value concerned, as
 *     /servings: must be >= 1            /name: is required        /tags: must have at most 5 items
 *     /extra: is not allowed             (additionalProperties false, or any false schema)
 * Inside anyOf, oneOf and not only the verdict is reported ("must match at least one schema in
 * anyOf"); allOf reports the problems of each of its schemas.
 *
 * Hostile input: schemas may nest at most FLOW_SCHEMA_MAX_DEPTH subschemas deep, instances at most
 * FLOW_SCHEMA_MAX_DEPTH arrays and objects deep; patterns are limited as said above; uniqueItems
 * sorts hashes rather than comparing every pair. */
#ifndef FLOW_SCHEMA_H
#define FLOW_SCHEMA_H

#include <jansson.h>

#include "flow/problems.h"
#include "re.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FLOW_SCHEMA_MAX_DEPTH 64      /* nested subschemas; nested arrays and objects of an instance */

typedef struct flow_schema flow_schema_t;

/* Checks schema (borrowed) and compiles it into *out (free with flow_schema_free). *out keeps a
 * reference to schema and reads it, so schema must not be modified afterwards. where (may be NULL:
 * "") is the JSON Pointer of schema in its document, the prefix of the places reported; every problem
 * goes to problems (may be NULL). Returns 0, FLOW_ELOAD when the schema has problems (*out is then
 * NULL), FLOW_EINVAL when schema is NULL, FLOW_ENOMEM. out NULL only checks. */
int flow_schema_compile(json_t *schema, const char *where, flow_schema_t **out, flow_problems_t *problems);
/* The same with the limits of its patterns (NULL: re.h's defaults; copied). */
int flow_schema_compile_with(json_t *schema, const char *where, const flow_re_limits_t *re_limits,
                             flow_schema_t **out, flow_problems_t *problems);

/* Validates instance (borrowed). Returns 0 when it matches; FLOW_EINVAL when it does not, with every
 * problem in problems (may be NULL: then it stops at the first); FLOW_ENOMEM. Places are JSON
 * Pointers into instance ("" for the instance itself). s is only read, so threads may share it. */
int flow_schema_validate(const flow_schema_t *s, json_t *instance, flow_problems_t *problems);

void flow_schema_free(flow_schema_t *s); /* NULL is ignored */

#ifdef __cplusplus
}
#endif
#endif
