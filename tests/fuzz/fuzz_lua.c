/* fuzz_lua.c: the Lua bridge (lib/script.h): the input is the body of a hook, compiled and called
 * in the sandbox with a shared store to read and change, under small limits so that each run is
 * quick. Whatever the code does, the call ends with a result or an error with a message (never a
 * crash, a hang past the budget, or a leak), and the store it leaves is still JSON that jansson
 * can write and read back. */
#include <string.h>

#include "flow.h"
#include "fuzz.h"
#include "script.h"

static const char store_text[] =
    "{\"n\": 1, \"r\": 2.5, \"s\": \"caf\\u00e9\", \"t\": true, \"z\": null, \"big\": 9007199254740993,"
    " \"list\": [1, \"two\", [3], {\"four\": 4}], \"empty\": [], \"obj\": {}, \"deep\": {\"a\":"
    " {\"b\": {\"c\": [\"d\"]}}}, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* small enough that a loop or a memory bomb stops within milliseconds */
    flow_script_limits_t lim = {.instructions = 200000, .instructions_max = 200000,
                                .memory = (size_t)8 << 20, .time_ms = 1000};
    json_t *store = json_loads(store_text, 0, NULL);
    json_t *out = NULL;
    flow_error_t err = {0};
    char *code = fuzz_exact_copy(data, size);

    fuzz_assert(store != NULL);
    int rc = flow_script_eval(&lim, code, size, store, &out, &err);
    fuzz_assert(rc == 0 || rc == FLOW_ESCRIPT || rc == FLOW_ENOMEM);
    if (rc == 0)
        fuzz_assert(err.message == NULL);
    else
        fuzz_assert(out == NULL && err.message != NULL && err.message[0] != '\0');

    /* what the hook left, and what it returned, are JSON jansson writes and reads back the same */
    json_t *values[2] = {store, out};
    for (size_t i = 0; i < 2; i++) {
        if (values[i] == NULL)
            continue;
        char *text = json_dumps(values[i], JSON_ENCODE_ANY | JSON_COMPACT);
        fuzz_assert(text != NULL);
        /* with JSON_ALLOW_NUL, as flowd's stores and answers read their own JSON: a Lua string may
         * hold a NUL byte (this harness found that the stores once could not read it back) */
        json_t *back = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        fuzz_assert(back != NULL && json_equal(back, values[i]));
        json_decref(back);
        free(text);
    }
    json_decref(out);
    json_decref(store);
    flow_error_clear(&err);
    free(code);
    return 0;
}
