/* fuzz_doc.c: the flow-document loader, flow_doc_load_text, on any bytes: a document is loaded or
 * refused with problems, never more; a loaded one renders as Mermaid, and its problems (when
 * refused) as text. The registry holds the built-in types and a flow from a document, so that
 * "flow" and "map" nodes can name a flow on the server as well as one of their document. */
#include <string.h>

#include "flow/doc.h"
#include "flow.h"
#include "fuzz.h"
#include "flow/nodes.h"

static flow_registry_t *reg;
static flow_nodes_env_t env;

static const char inner_doc[] = "{\"name\": \"inner\", \"params\": {\"n\": 1}, \"start\": \"s\", \"nodes\": {"
                                "\"s\": {\"type\": \"set\", \"params\": {\"/x\": \"{{$params/n}}\"}}}}";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    flow_def_t *def = NULL;
    (void)argc;
    (void)argv;
    env.re_limits.no_jit = 1; /* the interpreter: JIT compiling costs more than this harness's work */
    if (flow_registry_new(&reg) < 0 || flow_nodes_register(reg, &env) < 0 ||
        flow_doc_load_text(reg, inner_doc, strlen(inner_doc), "inner.json", &def, NULL) < 0 ||
        flow_registry_put_flow(reg, def, NULL) < 0)
        abort();
    flow_def_unref(def);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    flow_problems_t problems = FLOW_PROBLEMS_INIT;
    flow_def_t *def = NULL;
    char *text = fuzz_exact_copy(data, size);
    int rc = flow_doc_load_text(reg, text, size, "fuzz.json", &def, &problems);
    fuzz_assert(rc == 0 || rc == FLOW_ELOAD);
    fuzz_assert((rc == 0) == (def != NULL));
    fuzz_assert(rc == 0 ? problems.count == 0 : flow_problems_total(&problems) > 0);
    if (def != NULL) {
        char *mermaid = NULL;
        fuzz_assert(flow_def_mermaid(def, &mermaid) == 0);
        flow_free(mermaid);
        fuzz_assert(flow_doc_of(def) != NULL && strlen(flow_doc_digest(def)) == 16);
        flow_def_unref(def);
    } else {
        char *out = NULL;
        fuzz_assert(flow_problems_text(&problems, &out) == 0);
        flow_free(out);
    }
    flow_problems_clear(&problems);
    free(text);
    return 0;
}
