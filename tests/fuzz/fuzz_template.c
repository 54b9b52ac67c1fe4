/* fuzz_template.c: references and templates (lib/template.h). The input is a JSON value, a params
 * tree; it is compiled with every root allowed and, when it compiles, evaluated against a fixed
 * scope twice (the result must be the same: evaluation only reads), and the references of every
 * string of it are listed as the loader lists them. */
#include <string.h>

#include "flow.h"
#include "fuzz.h"
#include "template.h"

static json_t *shared, *params, *item;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    shared = json_loads("{\"a\": {\"b\": [1, \"x\", {\"~/\": true, \"\": null}]}, \"s\": \"caf\\u00e9 & co/?\","
                        " \"n\": 5, \"r\": 0.1, \"t\": true, \"list\": [\"u\", 2, [3]], \"a b\": \"sp\"}",
                        0, NULL);
    params = json_loads("{\"model\": \"m\", \"n\": 7, \"deep\": {\"x\": [\"y\"]}}", 0, NULL);
    item = json_loads("{\"url\": \"https://x/y?z=1\", \"id\": 7}", 0, NULL);
    if (shared == NULL || params == NULL || item == NULL)
        abort();
    return 0;
}

static int count_ref(void *data, const char *ref, size_t len) {
    fuzz_assert(len > 0 && ref[0] == '$');
    (*(size_t *)data)++;
    return 0;
}

/* Lists the references of every string in v, keys aside (they are never templates). */
static void walk_refs(json_t *v, unsigned depth) {
    const char *key;
    json_t *m;
    size_t i, n = 0;
    if (depth > 64)
        return;
    if (json_is_string(v))
        fuzz_assert(flow_template_refs(v, count_ref, &n) == 0);
    else if (json_is_object(v))
        json_object_foreach(v, key, m) walk_refs(m, depth + 1);
    else if (json_is_array(v))
        json_array_foreach(v, i, m) walk_refs(m, depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *tmpl = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (tmpl == NULL)
        return 0;
    flow_problems_t problems = FLOW_PROBLEMS_INIT;
    flow_tmpl_t *t = NULL;
    int rc = flow_template_compile(tmpl, "/params", FLOW_SCOPE_ALL, &t, &problems);
    fuzz_assert(rc == 0 || rc == FLOW_ELOAD);
    fuzz_assert((rc == 0) == (t != NULL));
    walk_refs(tmpl, 0);
    if (t != NULL) {
        flow_scope_t scope = {shared, params, item};
        json_t *a = NULL, *b = NULL;
        flow_error_t err = {0};
        int ra = flow_tmpl_eval(t, &scope, &a, &err);
        int rb = flow_tmpl_eval(t, &scope, &b, &err);
        fuzz_assert(ra == rb);
        fuzz_assert(ra == 0 ? json_equal(a, b) : a == NULL && b == NULL && err.message != NULL);
        json_decref(a);
        json_decref(b);
        flow_error_clear(&err);
        /* without an item, $item is not found; with no scope at all, no root is */
        flow_scope_t no_item = {shared, params, NULL};
        rc = flow_tmpl_eval(t, &no_item, &a, NULL);
        fuzz_assert(rc == 0 || rc == FLOW_ENOTFOUND || rc == FLOW_ETOOBIG);
        json_decref(a);
        rc = flow_tmpl_eval(t, NULL, &a, NULL);
        fuzz_assert(rc == 0 || rc == FLOW_ENOTFOUND || rc == FLOW_ETOOBIG);
        fuzz_assert(rc != 0 || (flow_tmpl_roots(t) == 0) || a != NULL);
        json_decref(a);
        flow_tmpl_free(t);
    }
    /* the one-shot form agrees with compile + eval */
    json_t *once = NULL;
    flow_scope_t scope = {shared, params, item};
    rc = flow_template_eval(tmpl, &scope, &once, NULL);
    fuzz_assert(rc == 0 || rc == FLOW_EINVAL || rc == FLOW_ENOTFOUND || rc == FLOW_ETOOBIG);
    json_decref(once);
    flow_problems_clear(&problems);
    json_decref(tmpl);
    return 0;
}
