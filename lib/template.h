/* template.h: references and templates, how the params of a flow document's nodes take their values
 * from the job: its shared store, the flow's params and, in a batch, the current item. A params tree
 * is compiled once when the document is loaded (which checks it and reports every problem with its
 * place) and then evaluated for each job, cheaply.
 *
 * References. A JSON string that starts with "$" (but not "$$") is a reference: "$shared", "$params"
 * or "$item", alone or followed at once by a JSON Pointer (RFC 6901):
 *     "$shared"   "$shared/ingredient"   "$params/model"   "$item"   "$item/url"   "$shared/list/0"
 * It evaluates to the JSON value found there, of any type. All that follows the root is the pointer,
 * taken as it is: "$shared/a b" names the member "a b", "$shared/a~1b" the member "a/b".
 * A pointer may hold placeholders (below): "$shared/order/{{$shared/i}}" or
 * "$shared/byname/{{$item/name}}". Each placeholder's text is spliced as part of one token, escaped
 * as RFC 6901 says ("~" as "~0", "/" as "~1"), so the name "b/c" names the member "b/c" and never
 * nests; the reference then takes the value at the pointer so made, and a message names that
 * pointer ("$shared/order/3 not found"), not the template.
 *
 * Templates. Any other string that holds "{{" is a template: text with placeholders, as in
 *     "https://api.example/recipes?i={{ $shared/ingredient | url }}&n={{$params/n}}"
 * A placeholder is "{{", a reference, any number of "| filter", then "}}". Blanks (space, tab, CR,
 * LF) around the reference and around each filter name are ignored. The reference ends at the first
 * "|" or "}}", so a pointer inside a placeholder cannot hold "|" or "}}" nor end in a blank (use a
 * whole-string reference for such names). Each placeholder is replaced by its value's text: a string
 * as it is, any other value as compact JSON (null -> null, 2 -> 2, [1,"a"] -> [1,"a"]; reals with 15
 * significant digits, so 0.1 -> 0.1). A template always gives a string: "{{$shared/n}}" gives "5"
 * where "$shared/n" gives the number 5.
 *
 * Filters, applied from left to right to the value before it is spliced:
 *     url   percent-encodes the value's text (as it would be spliced) byte by byte, keeping only the
 *           unreserved characters of RFC 3986 (A-Z a-z 0-9 - . _ ~): "a b/é" -> a%20b%2F%C3%A9
 *     json  the value's compact JSON text, so a string keeps its quotes and escapes: the string
 *           say "hi" splices as "say \"hi\"" (with the outer quotes), null as null
 * e.g. "?filter={{ $shared/filter | json | url }}" puts a JSON value in a query parameter.
 *
 * Escapes, for text that would otherwise be read as the above:
 *     "{{{{"   is a literal "{{" ("{{{{x}}" is the text {{x}}; "}}" alone needs no escape).
 *     "{{{"    is a literal "{" and then a placeholder: "{{{$item}}}" is "{", the item, "}".
 *     "$$"     at the start of a string is a literal "$", and the rest is read as a template:
 *              "$$5 off" -> "$5 off", "$${{$item/price}}" -> "$" followed by the price.
 * A "$" anywhere else is plain text. Object keys are never references or templates. Numbers,
 * booleans, null, and strings without a leading "$" or a "{{" are taken as they are.
 *
 * Load-time problems (each reported with the JSON Pointer of the string, and "column N" (counted in
 * characters from 1) for the problems inside a template): unknown root ("$sharde/x"), a root the
 * caller does not allow here ("$item" outside a batch), a malformed pointer ("$shared/a~2"), an
 * unclosed "{{", an empty placeholder, a placeholder that does not start with a reference, an unknown
 * or missing filter name, more than FLOW_TEMPLATE_MAX_FILTERS filters, and containers nested deeper
 * than FLOW_TEMPLATE_MAX_DEPTH.
 *
 * Names: flow_template_* take a JSON tree, flow_tmpl_* a compiled template. */
#ifndef FLOW_TEMPLATE_H
#define FLOW_TEMPLATE_H

#include <jansson.h>

#include "flow.h"
#include "flow/problems.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FLOW_TEMPLATE_MAX_DEPTH 64               /* nested objects and arrays in a params tree */
#define FLOW_TEMPLATE_MAX_FILTERS 4              /* filters in one placeholder */

/* The bytes one template may evaluate to are a process-wide limit, set with
 * flow_template_set_max_text() of flow/doc.h. The roots a tree may refer to (flow_template_compile's
 * roots) and those it does refer to (flow_tmpl_roots) are FLOW_SCOPE_* of flow.h. */

/* What references read. All borrowed; a NULL member (item outside a batch) makes every reference to
 * that root FLOW_ENOTFOUND. */
typedef struct flow_scope {
    json_t *shared;
    json_t *params;
    json_t *item;
} flow_scope_t;

typedef struct flow_tmpl flow_tmpl_t;

/* Checks tmpl (borrowed) and compiles it into *out (free with flow_tmpl_free). *out keeps a reference
 * to tmpl and shares its strings and untouched parts, so tmpl must not be modified afterwards.
 * where (may be NULL: "") is the JSON Pointer of tmpl in its document, the prefix of the places
 * reported; roots (FLOW_SCOPE_*) says which roots may be used. Every problem goes to problems (may be
 * NULL). Returns 0, FLOW_ELOAD when there were problems (*out is then NULL), FLOW_EINVAL when tmpl is
 * NULL, FLOW_ENOMEM. out NULL only checks: that is flow_template_check(). */
int flow_template_compile(json_t *tmpl, const char *where, unsigned roots, flow_tmpl_t **out,
                          flow_problems_t *problems);
int flow_template_check(json_t *tmpl, const char *where, unsigned roots, flow_problems_t *problems);

/* The same for a string (borrowed) that is a JSON Pointer, such as the keys of a "set" node or a
 * node's "out": a template's placeholders are spliced escaped as pointer tokens, as in a
 * reference's pointer above ("/byname/{{$item/name}}" with the name "b/c" gives "/byname/b~1c").
 * A template must then start with "/" and keep its own "~" escapes whole; a string without
 * placeholders is compiled as flow_template_compile does (a whole reference gives the value it
 * names, which the caller takes as a pointer). FLOW_EINVAL when str is not a string. */
int flow_template_compile_pointer(json_t *str, const char *where, unsigned roots, flow_tmpl_t **out,
                                  flow_problems_t *problems);

/* Evaluates t in scope (may be NULL: nothing is found) into *out, a new reference. A tree without
 * references or templates comes back as itself (incref'd, no allocation); otherwise the objects and
 * arrays on the way to a reference or template are new, and the rest is shared with the source tree
 * and with the scope (a reference gives the scope's own value, incref'd, not a copy). So treat *out
 * as read-only: json_deep_copy() what you modify or store into the shared store, where an alias of
 * another part of the store would change along with it.
 * Errors: FLOW_ENOTFOUND ("$shared/ingredient not found"), FLOW_ETOOBIG (a template longer than
 * flow_template_set_max_text's limit), FLOW_ENOMEM. err (may be NULL; zeroed, or holding an earlier
 * error, whose message is freed) receives the code and a message allocated with malloc(). t may be
 * shared by concurrent evaluations: it is only read. */
int flow_tmpl_eval(const flow_tmpl_t *t, const flow_scope_t *scope, json_t **out, flow_error_t *err);

/* The roots t refers to (FLOW_SCOPE_* bits): 0 means the result does not depend on the scope, and a
 * tree without FLOW_SCOPE_ITEM gives the same result for every item of a batch. */
unsigned flow_tmpl_roots(const flow_tmpl_t *t);

void flow_tmpl_free(flow_tmpl_t *t); /* NULL is ignored */

/* Calls fn(data, ref, len) for each reference in the string str (borrowed), in order, as compiling it
 * would read them: ref points into str at the "$" and is not NUL-terminated ("$params/a~1b" for
 * "{{ $params/a~1b | url }}"). Literal text ("{{{{", "$$") holds none, and a string that does not
 * compile (a problem that flow_template_compile() reports) gives none. A non-zero return of fn stops
 * the walk and is returned; else 0, or FLOW_ENOMEM. */
int flow_template_refs(json_t *str, int (*fn)(void *data, const char *ref, size_t len), void *data);

/* Compiles (any root allowed) and evaluates at once, for trees used once. A malformed tmpl is
 * FLOW_EINVAL, with its first problem in err. */
int flow_template_eval(json_t *tmpl, const flow_scope_t *scope, json_t **out, flow_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
