/* fuzz_patch.c: the JSON Patch applier (server/patch.h), which a fork's body feeds (POST
 * /v1/jobs/{id}/fork "shared"), and the patches flowd makes of a step. The input is a JSON text
 * (the store; not an object: it is wrapped as {"v": ...}), a newline, and a patch. Whatever they
 * are, applying gives 0 or FLOW_EINVAL with a reason, the store stays an object, and when it
 * applied, the patch flowd makes from the store before to the store after (every key looked at)
 * gives the same store again when applied to the store before, and so does replaying it as a
 * step of a history. */
#include <string.h>

#include "flow.h"
#include "flow/buf.h"
#include "fuzz.h"
#include "patch.h"

/* The patch flowd makes from before to after applies to a copy of before and gives after. */
static void check_made(const json_t *before, const json_t *after) {
    flowd_patcher_t p;
    if (flowd_patcher_init(&p, before) < 0)
        return;
    flow_buf_t out;
    flow_buf_init(&out, 0);
    int n = flowd_patch_make(&p, after, NULL, &out);
    fuzz_assert(n >= 0 || n == FLOW_ENOMEM);
    if (n >= 0 && !out.err) {
        json_error_t e;
        json_t *made = json_loadb(out.data, out.len, 0, &e);
        fuzz_assert(json_is_array(made));
        fuzz_assert(json_array_size(made) == (size_t)n);
        json_t *again = json_deep_copy(before);
        char why[256] = "";
        if (again != NULL) {
            fuzz_assert(flowd_patch_apply(again, made, why, sizeof why) == 0);
            fuzz_assert(json_equal(again, after));
            json_decref(again);
        }
        /* the same patch as step 1 of a history, replayed */
        json_t *history = json_pack("[{s:I, s:O}]", "seq", (json_int_t)1, "patch", made);
        json_t *replayed = json_deep_copy(before);
        if (history != NULL && replayed != NULL) {
            fuzz_assert(flowd_patch_replay(replayed, history, 0, 1, why, sizeof why) == 0);
            fuzz_assert(json_equal(replayed, after));
        }
        json_decref(history);
        json_decref(replayed);
        json_decref(made);
    }
    flow_buf_free(&out);
    flowd_patcher_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    if (nl == NULL)
        return 0;
    size_t dlen = (size_t)(nl - data);
    json_t *doc = json_loadb((const char *)data, dlen, JSON_DECODE_ANY, NULL);
    json_t *patch = json_loadb((const char *)nl + 1, size - dlen - 1, JSON_DECODE_ANY, NULL);
    if (doc != NULL && !json_is_object(doc)) {
        json_t *wrapped = json_pack("{s:o}", "v", doc);
        doc = wrapped;
    }
    if (doc != NULL && patch != NULL) {
        json_t *before = json_deep_copy(doc);
        char why[256] = "";
        int rc = json_is_array(patch) ? flowd_patch_apply(doc, patch, why, sizeof why)
                                       : FLOW_EINVAL;
        fuzz_assert(rc == 0 || rc == FLOW_EINVAL || rc == FLOW_ENOMEM);
        fuzz_assert(rc != FLOW_EINVAL || !json_is_array(patch) || why[0] != '\0');
        fuzz_assert(json_is_object(doc));
        if (rc == 0 && before != NULL)
            check_made(before, doc);
        json_decref(before);
    }
    json_decref(doc);
    json_decref(patch);
    return 0;
}
