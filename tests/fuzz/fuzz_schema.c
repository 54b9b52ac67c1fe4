/* fuzz_schema.c: the JSON Schema checker (lib/schema.h) and its patterns (lib/re.h). The input is a
 * JSON array [schema, instance]: the schema is compiled and, when it compiles, the instance is
 * validated twice, with the list of problems and without (the verdict must be the same). The regex
 * limits are lower than flowd's defaults, so that a catastrophic pattern costs this harness
 * milliseconds, not tens of them; they are limits all the same. */
#include "flow.h"
#include "fuzz.h"
#include "schema.h"

static const flow_re_limits_t limits = {.match_limit = 100000, .budget = 400000, .heap_limit = 1 << 20};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *pair = json_loadb((const char *)data, size, JSON_ALLOW_NUL, NULL);
    if (!json_is_array(pair) || json_array_size(pair) != 2) {
        json_decref(pair);
        return 0;
    }
    flow_problems_t problems = FLOW_PROBLEMS_INIT;
    flow_schema_t *s = NULL;
    int rc = flow_schema_compile_with(json_array_get(pair, 0), "/schema", &limits, &s, &problems);
    fuzz_assert(rc == 0 || rc == FLOW_ELOAD);
    fuzz_assert((rc == 0) == (s != NULL));
    fuzz_assert(rc == 0 ? problems.count == 0 : flow_problems_total(&problems) > 0);
    flow_problems_clear(&problems);
    if (s != NULL) {
        json_t *instance = json_array_get(pair, 1);
        int with = flow_schema_validate(s, instance, &problems);
        int without = flow_schema_validate(s, instance, NULL);
        fuzz_assert(with == 0 || with == FLOW_EINVAL);
        fuzz_assert(with == without);
        fuzz_assert(with == 0 ? problems.count == 0 : flow_problems_total(&problems) > 0);
        char *text = NULL;
        fuzz_assert(flow_problems_text(&problems, &text) == 0);
        flow_free(text);
        flow_problems_clear(&problems);
        flow_schema_free(s);
    }
    json_decref(pair);
    return 0;
}
