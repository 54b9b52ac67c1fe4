/* recipe_flow.c: the seed's recipe recommender (fetch, suggest, approve, finalize) in C. */
#include <string.h>

#include "recipe_flow.h"

static uint64_t param_ms(flow_ctx_t *ctx, const char *key, uint64_t fallback) {
    json_t *v = json_object_get(flow_ctx_params(ctx), key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (uint64_t)json_integer_value(v) : fallback;
}

/* fetch: the recipe API call, simulated by a timer. */
static int fetch_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    json_t *ingredient = json_object_get(shared, "ingredient");
    *prep_res = json_string(json_is_string(ingredient) ? json_string_value(ingredient) : "chicken");
    return *prep_res ? 0 : flow_error(ctx, FLOW_ENOMEM, "out of memory");
}

static void fetch_exec(flow_ctx_t *ctx, json_t *ingredient) {
    const char *i = json_string_value(ingredient);
    json_t *recipes = json_pack("[s+, s+, s+]", i, " pasta", "grilled ", i, i, " soup");
    if (recipes == NULL) {
        flow_fail(ctx, FLOW_ENOMEM, "out of memory");
        return;
    }
    flow_sleep(ctx, param_ms(ctx, "fetch_ms", 2000), recipes);
}

static int fetch_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res, const char **action) {
    if (json_object_set(shared, "recipes", exec_res) < 0)
        return flow_error(ctx, FLOW_ENOMEM, "out of memory");
    *action = "suggest";
    return 0;
}

/* suggest: the LLM call, simulated by a timer; it goes through the recipes in turn, so that a
 * rejected suggestion is followed by another one. */
static int suggest_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    json_t *recipes = json_object_get(shared, "recipes");
    size_t n = json_array_size(recipes);
    if (n == 0)
        return flow_error(ctx, FLOW_EINVAL, "no recipes to suggest from");
    json_int_t count = json_integer_value(json_object_get(shared, "suggestions"));
    *prep_res = json_incref(json_array_get(recipes, (size_t)count % n));
    return 0;
}

static void suggest_exec(flow_ctx_t *ctx, json_t *recipe) {
    flow_sleep(ctx, param_ms(ctx, "suggest_ms", 1500), json_sprintf("How about: %s", json_string_value(recipe)));
}

static int suggest_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                        const char **action) {
    json_int_t count = json_integer_value(json_object_get(shared, "suggestions"));
    if (json_object_set(shared, "suggestion", exec_res) < 0 ||
        json_object_set_new(shared, "suggestions", json_integer(count + 1)) < 0)
        return flow_error(ctx, FLOW_ENOMEM, "out of memory");
    return 0;
}

/* approve: waits for a person; the answer decides between accept and retry. */
static int approve_prep(flow_ctx_t *ctx, json_t *shared, json_t **prep_res) {
    *prep_res = json_incref(json_object_get(shared, "suggestion"));
    return 0;
}

static void approve_exec(flow_ctx_t *ctx, json_t *suggestion) {
    json_t *request = json_pack("{s:s, s:O?}", "prompt", "Accept this recipe? (yes/no)", "suggestion", suggestion);
    int rc = request ? flow_await_input(ctx, request) : FLOW_ENOMEM;
    json_decref(request);
    if (rc < 0)
        flow_fail(ctx, rc, "cannot wait for input: %s", flow_strerror(rc));
}

static int answer_is(json_t *value, int *yes) {
    const char *s = json_string_value(value);
    if (json_is_boolean(value)) {
        *yes = json_is_true(value);
        return 0;
    }
    if (s != NULL && (strcmp(s, "y") == 0 || strcmp(s, "yes") == 0)) {
        *yes = 1;
        return 0;
    }
    if (s != NULL && (strcmp(s, "n") == 0 || strcmp(s, "no") == 0)) {
        *yes = 0;
        return 0;
    }
    return -1;
}

static int approve_input(flow_ctx_t *ctx, json_t *value) {
    int yes;
    if (answer_is(value, &yes) < 0)
        return flow_error(ctx, FLOW_EINVAL, "answer yes or no (or y, n, true, false)");
    return 0;
}

static int approve_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                        const char **action) {
    int yes = 0;
    answer_is(exec_res, &yes);
    if (json_object_set_new(shared, "approved", json_boolean(yes)) < 0)
        return flow_error(ctx, FLOW_ENOMEM, "out of memory");
    *action = yes ? "accept" : "retry";
    return 0;
}

static int finalize_post(flow_ctx_t *ctx, json_t *shared, json_t *prep_res, json_t *exec_res,
                         const char **action) {
    const char *suggestion = json_string_value(json_object_get(shared, "suggestion"));
    const char *prefix = "How about: ";
    if (suggestion != NULL && strncmp(suggestion, prefix, strlen(prefix)) == 0)
        suggestion += strlen(prefix);
    if (json_object_set_new(shared, "final", json_string(suggestion ? suggestion : "")) < 0)
        return flow_error(ctx, FLOW_ENOMEM, "out of memory");
    return 0;
}

static const flow_node_ops_t fetch_ops = {.prep = fetch_prep, .exec = fetch_exec, .post = fetch_post};
static const flow_node_ops_t suggest_ops = {.prep = suggest_prep, .exec = suggest_exec, .post = suggest_post};
static const flow_node_ops_t approve_ops = {
    .prep = approve_prep, .exec = approve_exec, .input = approve_input, .post = approve_post};
static const flow_node_ops_t finalize_ops = {.post = finalize_post};

int recipe_flow_new(const char *name, flow_def_t **out) {
    flow_def_t *def;
    flow_node_t *flow, *fetch, *suggest, *approve, *finalize;
    int rc = flow_def_new(name ? name : "recipe", &def);
    if (rc < 0)
        return rc;
    if ((rc = flow_node_new(def, "recipe", FLOW_FLOW, NULL, NULL, &flow)) < 0 ||
        (rc = flow_node_new(def, "fetch", FLOW_NODE, &fetch_ops, NULL, &fetch)) < 0 ||
        (rc = flow_node_new(def, "suggest", FLOW_NODE, &suggest_ops, NULL, &suggest)) < 0 ||
        (rc = flow_node_new(def, "approve", FLOW_NODE, &approve_ops, NULL, &approve)) < 0 ||
        (rc = flow_node_new(def, "finalize", FLOW_NODE, &finalize_ops, NULL, &finalize)) < 0 ||
        (rc = flow_node_next(fetch, "suggest", suggest)) < 0 || (rc = flow_node_next(suggest, NULL, approve)) < 0 ||
        (rc = flow_node_next(approve, "accept", finalize)) < 0 ||
        (rc = flow_node_next(approve, "retry", suggest)) < 0 || (rc = flow_node_set_start(flow, fetch)) < 0 ||
        (rc = flow_def_set_root(def, flow)) < 0)
        goto fail;
    *out = def;
    return 0;
fail:
    flow_def_unref(def);
    return rc;
}
