/* flow/doc.h: flows declared as JSON documents (api/flow.schema.json), built into definitions from
 * the node types of a registry (flow/nodes.h registers the built-in ones). A document is checked
 * whole before anything runs, and every problem is reported at once with its place: a JSON Pointer
 * into the document, or file:line:column when it came from a file. */
#ifndef FLOW_DOC_H
#define FLOW_DOC_H

#include "flow.h"
#include "flow/problems.h"

#define FLOW_DOC_MAX_BYTES ((size_t)4 << 20) /* a document file or body, by default */
#define FLOW_DOC_MAX_NODES 1000              /* nodes of a document, sub-flows included */
#define FLOW_DOC_MAX_NESTING 8               /* flows inside flows */
#define FLOW_DOC_MAX_STEPS 1000000000000ll   /* a document's max_steps */
#define FLOW_DOC_MAX_DEADLINE_MS 315360000000ll /* a document's deadline: ten years */

/* A flow's name: 1 to 64 of [A-Za-z0-9._-], the first a letter or a digit (so never "." or "..").
 * The same rule holds for a document's "name", the {name} of /v1/flows/{name} and the files of
 * flowd --flows; FLOW_DOC_NAME_RULE says it in words. name is len bytes (a NUL among them
 * fails). */
#define FLOW_DOC_NAME_RULE "1 to 64 letters, digits, '.', '_' or '-', the first a letter or a digit"
FLOW_EXPORT int flow_doc_name_ok(const char *name, size_t len);

/* Process-wide (call before documents are loaded; not thread-safe): the bytes of a document's text
 * or file (0: FLOW_DOC_MAX_BYTES), and what the problem's message calls that limit (static, may be
 * NULL), such as a flag's name. */
FLOW_EXPORT void flow_doc_set_max_bytes(size_t bytes, const char *name);

/* The bytes one template of a document (a params string with "{{ }}" placeholders) may evaluate
 * to: past it the step fails with FLOW_ETOOBIG. Process-wide, like flow_doc_set_max_bytes: the
 * limit (0: FLOW_TEMPLATE_MAX_TEXT) and what the error message calls it (static, may be NULL). */
#define FLOW_TEMPLATE_MAX_TEXT ((size_t)16 << 20)
FLOW_EXPORT void flow_template_set_max_text(size_t bytes, const char *name);

/* Builds doc (borrowed; the definition keeps a reference in its meta, {"document": doc, "digest"}) into *out,
 * a new definition named after the document, using reg for node types and for the flows that
 * "flow" and "map" nodes name. Returns 0, FLOW_ELOAD with every problem in problems (where: a JSON
 * Pointer), FLOW_ENOMEM. */
FLOW_EXPORT int flow_doc_load(flow_registry_t *reg, json_t *doc, flow_def_t **out,
                              flow_problems_t *problems);

/* The same from JSON text; source names it in places: problems then have where "source:line:column"
 * and the JSON Pointer at the start of the message. */
FLOW_EXPORT int flow_doc_load_text(flow_registry_t *reg, const char *text, size_t len,
                                   const char *source, flow_def_t **out, flow_problems_t *problems);

/* The same from a file (at most flow_doc_set_max_bytes's limit); FLOW_EIO when it cannot be
 * read. */
FLOW_EXPORT int flow_doc_load_file(flow_registry_t *reg, const char *path, flow_def_t **out,
                                   flow_problems_t *problems);

/* Queueing members of a document (also a POST /v1/jobs body's "concurrency"):
 * "concurrency": {"key": K, "limit": N}: at most N jobs whose key K evaluates the same run at once.
 * K is 1 to FLOW_CONC_KEY_MAX bytes: a reference, "$shared/<JSON Pointer>" or
 * "$params/<JSON Pointer>", read from the job's store or params when it is submitted, or a literal
 * that does not start with '$' (every job of the flow then shares it). N is 1 to
 * FLOW_DOC_MAX_RUNNING. "max_running": N, jobs of the flow running at once. */
#define FLOW_DOC_MAX_RUNNING 1000000
#define FLOW_CONC_KEY_MAX 256
/* 0 when conc (borrowed) is such an object, else FLOW_EINVAL with why (whylen bytes) saying what is
 * wrong, starting with the member's name ("key ...", "limit ..."). */
FLOW_EXPORT int flow_doc_concurrency_check(json_t *conc, char *why, size_t whylen);
/* The key of a checked conc for a job with this shared store and params (each borrowed, may be
 * NULL; a $params reference that params lacks is read from defaults, a document's "params"), into
 * out (outlen bytes, at least FLOW_CONC_KEY_MAX + 1): a string as it is, an integer in decimal.
 * 0, or FLOW_ENOTFOUND (nothing there) or FLOW_EINVAL (not a string or an integer, or longer than
 * FLOW_CONC_KEY_MAX) with why saying so. */
FLOW_EXPORT int flow_doc_concurrency_key(json_t *conc, json_t *shared, json_t *params,
                                         json_t *defaults, char *out, size_t outlen, char *why,
                                         size_t whylen);

/* The document a definition was built from (borrowed), or NULL for flows written in C. */
FLOW_EXPORT json_t *flow_doc_of(const flow_def_t *def);
/* 16 hex digits that tell versions of a document apart (borrowed), or NULL for flows written in C. */
FLOW_EXPORT const char *flow_doc_digest(const flow_def_t *def);

#endif
