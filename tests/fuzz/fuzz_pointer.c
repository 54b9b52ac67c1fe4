/* fuzz_pointer.c: JSON Pointers (flow/pointer.h) and their places in a text (flow/jsonpos.h). The
 * input is a pointer, a newline, then a JSON text. The pointer is checked from a buffer of exactly
 * its length (a read past it shows under ASan); when it has no NUL it is read, set and removed on
 * the document, and located in the text, as the loader locates the places of problems. */
#include <string.h>

#include "flow.h"
#include "fuzz.h"
#include "flow/jsonpos.h"
#include "flow/pointer.h"

/* Whether a token of ptr is "-": set appends there, and get never finds it. */
static int has_dash(const char *ptr) {
    for (const char *p = strstr(ptr, "/-"); p != NULL; p = strstr(p + 1, "/-"))
        if (p[2] == '\0' || p[2] == '/')
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    size_t plen = nl != NULL ? (size_t)(nl - data) : size;
    const uint8_t *text = nl != NULL ? nl + 1 : data + size;
    size_t tlen = size - plen - (nl != NULL);

    char *exact = fuzz_exact_copy(data, plen);
    size_t bad = (size_t)-1;
    int checked = flow_pointer_checkn(exact, plen, &bad);
    fuzz_assert(checked == 0 || (checked == FLOW_EINVAL && bad <= plen));
    json_t *doc = json_loadb((const char *)text, tlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_t *v = NULL;
    if (doc != NULL) {
        int rc = flow_pointer_getn(doc, exact, plen, &v);
        fuzz_assert(checked != 0 ? rc == FLOW_EINVAL : rc == 0 || rc == FLOW_ENOTFOUND);
        fuzz_assert((rc == 0) == (v != NULL));
    }
    free(exact);
    if (memchr(data, '\0', plen) == NULL) {
        char *ptr = fuzz_string(data, plen);
        int line = 0, col = 0;
        char *text0 = fuzz_exact_copy(text, tlen);
        int rc = flow_json_locate(text0, tlen, ptr, &line, &col);
        fuzz_assert(rc == 0 || rc == FLOW_ENOTFOUND || rc == FLOW_EINVAL);
        fuzz_assert(rc == FLOW_EINVAL || (line >= 1 && col >= 1));
        free(text0);
        if (doc != NULL) {
            json_t *got = NULL;
            int rc_get = flow_pointer_get(doc, ptr, &got);
            fuzz_assert(checked != 0 ? rc_get == FLOW_EINVAL : rc_get == (got != NULL ? 0 : FLOW_ENOTFOUND));
            fuzz_assert(got == v);
            /* set a new value there, read it back, and remove it, on a copy */
            json_t *copy = json_deep_copy(doc);
            json_t *mark = json_string("fuzz-mark");
            if (copy != NULL && mark != NULL) {
                rc = flow_pointer_set(copy, ptr, json_incref(mark));
                fuzz_assert(rc == 0 || rc == FLOW_EINVAL || rc == FLOW_ENOTFOUND);
                if (rc == 0 && !has_dash(ptr)) {
                    fuzz_assert(flow_pointer_get(copy, ptr, &got) == 0 && json_equal(got, mark));
                    fuzz_assert(flow_pointer_remove(copy, ptr) == 0);
                } else {
                    rc = flow_pointer_remove(copy, ptr);
                    fuzz_assert(rc == 0 || rc == FLOW_EINVAL || rc == FLOW_ENOTFOUND);
                }
            }
            json_decref(mark);
            json_decref(copy);
        }
        free(ptr);
    }
    json_decref(doc);
    return 0;
}
