/* test_schema.c: the JSON Schema subset (lib/schema.h): every keyword passing and failing, problems
 * reported at their places in the instance, bad schemas reported at their places in the schema, and
 * the limits that guard against hostile schemas and instances. */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "flow.h"
#include "flow/problems.h"
#include "schema.h"
#include "support/json_util.h"

/* A schema, an instance, and every problem expected ("" when the instance matches). */
static const struct {
    const char *schema, *instance, *problems;
} cases[] = {
    /* type */
    {"{\"type\": \"string\"}", "\"x\"", ""},
    {"{\"type\": \"string\"}", "1", "must be a string"},
    {"{\"type\": \"integer\"}", "1.0", ""},
    {"{\"type\": \"integer\"}", "-7", ""},
    {"{\"type\": \"integer\"}", "1.5", "must be an integer"},
    {"{\"type\": \"number\"}", "1", ""},
    {"{\"type\": \"number\"}", "\"1\"", "must be a number"},
    {"{\"type\": \"boolean\"}", "false", ""},
    {"{\"type\": \"boolean\"}", "0", "must be a boolean"},
    {"{\"type\": \"object\"}", "[]", "must be an object"},
    {"{\"type\": \"array\"}", "{}", "must be an array"},
    {"{\"type\": \"null\"}", "null", ""},
    {"{\"type\": \"null\"}", "0", "must be null"},
    {"{\"type\": [\"string\", \"null\"]}", "null", ""},
    {"{\"type\": [\"string\", \"null\"]}", "1", "must be null or a string"},
    {"{\"type\": [\"string\", \"integer\", \"null\"]}", "true", "must be null, an integer or a string"},
    /* enum and const: JSON equality, numbers by value */
    {"{\"enum\": [\"a\", 1, null]}", "\"a\"", ""},
    {"{\"enum\": [\"a\", 1, null]}", "1.0", ""},
    {"{\"enum\": [\"a\", 1, null]}", "\"b\"", "must be one of [\"a\",1,null]"},
    {"{\"enum\": [\"a\", 1, null]}", "\"A\"", "must be one of [\"a\",1,null]"},
    {"{\"enum\": [{\"a\": [1, 2]}]}", "{\"a\": [1, 2.0]}", ""},
    {"{\"enum\": [{\"a\": [1, 2]}]}", "{\"a\": [2, 1]}", "must be one of [{\"a\":[1,2]}]"},
    {"{\"enum\": [{\"a\": 1}]}", "{\"a\": 1, \"b\": 2}", "must be one of [{\"a\":1}]"},
    {"{\"const\": {\"k\": 1}}", "{\"k\": 1}", ""},
    {"{\"const\": {\"k\": 1}}", "{\"k\": 2}", "must be equal to {\"k\":1}"},
    {"{\"const\": null}", "null", ""},
    {"{\"const\": null}", "0", "must be equal to null"},
    {"{\"const\": \"a\\u0000b\"}", "\"a\\u0000c\"", "must be equal to \"a\\u0000b\""},
    /* numbers; other types pass */
    {"{\"minimum\": 1}", "1", ""},
    {"{\"minimum\": 1}", "0.5", "must be >= 1"},
    {"{\"minimum\": 1}", "\"x\"", ""},
    {"{\"maximum\": 10}", "10", ""},
    {"{\"maximum\": 10}", "10.5", "must be <= 10"},
    {"{\"maximum\": 9007199254740992}", "9007199254740993", "must be <= 9007199254740992"},
    {"{\"exclusiveMinimum\": 0}", "0.001", ""},
    {"{\"exclusiveMinimum\": 0}", "0", "must be > 0"},
    {"{\"exclusiveMaximum\": 1.5}", "1", ""},
    {"{\"exclusiveMaximum\": 1.5}", "1.5", "must be < 1.5"},
    {"{\"multipleOf\": 3}", "9", ""},
    {"{\"multipleOf\": 3}", "-9", ""},
    {"{\"multipleOf\": 3}", "10", "must be a multiple of 3"},
    {"{\"multipleOf\": 0.1}", "0.3", ""},
    {"{\"multipleOf\": 0.1}", "0.35", "must be a multiple of 0.1"},
    {"{\"multipleOf\": 0.5}", "2", ""},
    {"{\"multipleOf\": 2}", "4.0", ""},
    {"{\"minimum\": 1, \"maximum\": 0, \"multipleOf\": 2}", "0.5", "must be >= 1\nmust be <= 0\nmust be a multiple of 2"},
    /* strings: lengths in code points */
    {"{\"minLength\": 2}", "\"\xc3\xa9\xc3\xa9\"", ""},
    {"{\"minLength\": 2}", "\"\xc3\xa9\"", "must be at least 2 characters long"},
    {"{\"minLength\": 1}", "\"\"", "must be at least 1 character long"},
    {"{\"maxLength\": 2}", "\"\xc3\xa9\xf0\x9f\x8d\xb2\"", ""},
    {"{\"maxLength\": 2}", "\"abc\"", "must be at most 2 characters long"},
    {"{\"minLength\": 5}", "5", ""},
    {"{\"pattern\": \"^[a-z]+$\"}", "\"abc\"", ""},
    {"{\"pattern\": \"^[a-z]+$\"}", "\"abC\"", "must match the pattern ^[a-z]+$"},
    {"{\"pattern\": \"b\"}", "\"abc\"", ""},
    {"{\"pattern\": \"^(ab|cd){2}$\"}", "\"abcd\"", ""},
    {"{\"pattern\": \"^(ab|cd){2}$\"}", "\"abab!\"", "must match the pattern ^(ab|cd){2}$"},
    {"{\"pattern\": \"\\\\\\\\1\"}", "\"a\\\\1\"", ""},
    {"{\"pattern\": \"^[[:alpha:]]{2}\\\\d$\"}", "\"ab1\"", ""},
    {"{\"pattern\": \"^[[:alpha:]]{2}[\\\\d]$\"}", "\"ab\\\\\"", "must match the pattern ^[[:alpha:]]{2}[\\d]$"},
    {"{\"pattern\": \"^(a)\\\\1$\"}", "\"aa\"", ""},
    {"{\"pattern\": \"^x{3}a{10001}\"}", "\"xxxa\"", "must match the pattern ^x{3}a{10001}"},
    {"{\"pattern\": \"(b|(a{20,}){600})\"}", "\"b\"", ""},
    {"{\"pattern\": \"a\\u0000b$\"}", "\"xa\\u0000b\"", ""},
    {"{\"pattern\": \"^\\\\w+$\"}", "\"abc\\n\"", "must match the pattern ^\\w+$"},
    {"{\"pattern\": \"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$\"}",
     "\"123e4567-e89b-12d3-a456-426614174000\"", ""},
    {"{\"pattern\": \"^(ab{2}){3}$\"}", "\"abbabbabb\"", ""},
    /* arrays */
    {"{\"items\": {\"type\": \"integer\"}}", "[1, 2]", ""},
    {"{\"items\": {\"type\": \"integer\"}}", "[1, 2, \"x\", true]", "/2: must be an integer\n/3: must be an integer"},
    {"{\"minItems\": 2}", "[1]", "must have at least 2 items"},
    {"{\"minItems\": 2.0}", "[1, 2]", ""},
    {"{\"maxItems\": 1}", "[1, 2]", "must have at most 1 item"},
    {"{\"maxItems\": 1}", "[]", ""},
    {"{\"uniqueItems\": true}", "[1, 2, 3, \"1\", [1], {\"1\": 1}]", ""},
    {"{\"uniqueItems\": true}", "[1, \"a\", {\"x\": [1]}, 1.0]",
     "must not contain duplicates (items 0 and 3 are equal)"},
    {"{\"uniqueItems\": true}", "[{\"a\": 1, \"b\": [null]}, {\"b\": [null], \"a\": 1}]",
     "must not contain duplicates (items 0 and 1 are equal)"},
    {"{\"uniqueItems\": true}", "[5, 3, 3, 5]", "must not contain duplicates (items 1 and 2 are equal)"},
    {"{\"uniqueItems\": false}", "[1, 1]", ""},
    {"{\"items\": false}", "[]", ""},
    {"{\"items\": false}", "[1]", "/0: is not allowed"},
    /* objects */
    {"{\"required\": [\"name\", \"servings\"]}", "{\"name\": \"x\", \"servings\": 2}", ""},
    {"{\"required\": [\"name\", \"servings\"]}", "{\"name\": \"x\"}", "/servings: is required"},
    {"{\"required\": [\"a/b\"]}", "{}", "/a~1b: is required"},
    {"{\"properties\": {\"servings\": {\"type\": \"integer\", \"minimum\": 1}}}", "{\"servings\": 2}", ""},
    {"{\"properties\": {\"servings\": {\"type\": \"integer\", \"minimum\": 1}}}", "{\"servings\": 0}",
     "/servings: must be >= 1"},
    {"{\"properties\": {\"servings\": {\"type\": \"integer\"}}}", "{\"other\": \"x\"}", ""},
    {"{\"properties\": {\"a\": {}}, \"additionalProperties\": false}", "{\"a\": 1}", ""},
    {"{\"properties\": {\"a\": {}}, \"additionalProperties\": false}", "{\"a\": 1, \"b\": 2, \"c/d\": 3}",
     "/b: is not allowed\n/c~1d: is not allowed"},
    {"{\"additionalProperties\": {\"type\": \"number\"}}", "{\"x\": 1, \"y\": \"s\"}", "/y: must be a number"},
    {"{\"properties\": {\"x\": false}}", "{\"x\": 1}", "/x: is not allowed"},
    {"{\"minProperties\": 1}", "{}", "must have at least 1 property"},
    {"{\"maxProperties\": 1}", "{\"a\": 1}", ""},
    {"{\"maxProperties\": 1}", "{\"a\": 1, \"b\": 2}", "must have at most 1 property"},
    {"{\"minProperties\": 3}", "{\"a\": 1}", "must have at least 3 properties"},
    {"{\"required\": [\"a\"]}", "[]", ""},
    /* combinations */
    {"{\"allOf\": [{\"type\": \"integer\"}, {\"minimum\": 3}]}", "4", ""},
    {"{\"allOf\": [{\"type\": \"integer\"}, {\"minimum\": 3}]}", "2.5", "must be an integer\nmust be >= 3"},
    {"{\"anyOf\": [{\"type\": \"string\"}, {\"type\": \"integer\"}]}", "1", ""},
    {"{\"anyOf\": [{\"type\": \"string\"}, {\"type\": \"integer\"}]}", "true",
     "must match at least one schema in anyOf"},
    {"{\"oneOf\": [{\"type\": \"integer\"}, {\"minimum\": 0}]}", "-1", ""},
    {"{\"oneOf\": [{\"type\": \"integer\"}, {\"minimum\": 0}]}", "1",
     "must match exactly one schema in oneOf (it matches 0 and 1)"},
    {"{\"oneOf\": [{\"type\": \"integer\"}, {\"minimum\": 0}]}", "-1.5",
     "must match exactly one schema in oneOf (it matches none)"},
    {"{\"not\": {\"type\": \"null\"}}", "1", ""},
    {"{\"not\": {\"type\": \"null\"}}", "null", "must not match the schema in not"},
    /* boolean schemas */
    {"true", "{\"anything\": [1]}", ""},
    {"{}", "null", ""},
    {"false", "null", "is not allowed"},
    /* annotations are ignored, formats not checked */
    {"{\"title\": \"t\", \"description\": \"d\", \"default\": 1, \"examples\": [1], \"$comment\": \"c\","
     " \"$schema\": \"https://json-schema.org/draft/2020-12/schema\", \"$id\": \"x\", \"format\": \"email\","
     " \"type\": \"string\"}",
     "\"not an email\"", ""},
    /* an input node's schema, and an answer with several problems at once */
    {"{\"type\": \"object\", \"required\": [\"dish\", \"servings\"], \"additionalProperties\": false,"
     " \"properties\": {\"dish\": {\"type\": \"string\", \"minLength\": 1},"
     " \"servings\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 12},"
     " \"tags\": {\"type\": \"array\", \"items\": {\"enum\": [\"vegan\", \"quick\"]}, \"uniqueItems\": true}}}",
     "{\"servings\": 0, \"tags\": [\"vegan\", \"slow\", \"vegan\"], \"note\": \"x\"}",
     "/dish: is required\n/servings: must be >= 1\n"
     "/tags: must not contain duplicates (items 0 and 2 are equal)\n"
     "/tags/1: must be one of [\"vegan\",\"quick\"]\n/note: is not allowed"},
    {"{\"properties\": {\"a/b\": {\"items\": {\"properties\": {\"m~n\": {\"type\": \"string\"}}}}}}",
     "{\"a/b\": [{\"m~n\": \"ok\"}, {\"m~n\": 1}]}", "/a~1b/1/m~0n: must be a string"},
};

START_TEST(validate_cases) {
    json_t *schema = tu_json(cases[_i].schema);
    json_t *instance = tu_json(cases[_i].instance);
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    flow_schema_t *s = NULL;
    int want = cases[_i].problems[0] == '\0' ? 0 : FLOW_EINVAL;

    ck_assert_int_eq(flow_schema_compile(schema, "", &s, &p), 0);
    ck_assert_uint_eq(p.count, 0);
    ck_assert_int_eq(flow_schema_validate(s, instance, &p), want);
    tu_assert_problems(cases[_i].instance, &p, cases[_i].problems);
    /* without a list, only the verdict */
    ck_assert_int_eq(flow_schema_validate(s, instance, NULL), want);
    flow_problems_clear(&p);
    flow_schema_free(s);
    json_decref(instance);
    json_decref(schema);
}
END_TEST

/* Schemas that are wrong, where they sit, and every problem expected. */
static const struct {
    const char *schema, *problems;
} bad_cases[] = {
    {"\"string\"", "a schema must be an object or a boolean"},
    {"{\"type\": \"strin\"}",
     "/type: unknown type \"strin\": expected null, boolean, object, array, number, integer or string"},
    {"{\"type\": [\"string\", 5, \"string\"]}",
     "/type/1: unknown type 5: expected null, boolean, object, array, number, integer or string\n"
     "/type/2: duplicate type \"string\""},
    {"{\"type\": []}", "/type: must be a type name or a non-empty array of type names"},
    {"{\"enum\": 1}", "/enum: must be an array"},
    {"{\"minimum\": \"1\", \"exclusiveMinimum\": true}",
     "/minimum: must be a number\n/exclusiveMinimum: must be a number"},
    {"{\"multipleOf\": 0}", "/multipleOf: must be a number greater than 0"},
    {"{\"multipleOf\": -2}", "/multipleOf: must be a number greater than 0"},
    {"{\"minLength\": -1, \"maxItems\": 1.5, \"minProperties\": \"1\"}",
     "/minLength: must be a non-negative integer\n/maxItems: must be a non-negative integer\n"
     "/minProperties: must be a non-negative integer"},
    {"{\"uniqueItems\": 1}", "/uniqueItems: must be a boolean"},
    {"{\"pattern\": 5}", "/pattern: must be a string"},
    {"{\"pattern\": \"(a\"}", "/pattern: not a valid regular expression: missing closing parenthesis at offset 2"},
    {"{\"pattern\": \"^a+++++++++++++++++++++$\"}",
     "/pattern: not a valid regular expression: quantifier does not follow a repeatable item at offset 4"},
    {"{\"pattern\": \"((a{255}){255}){255}\"}",
     "/pattern: not a valid regular expression: its compiled form would be larger than PCRE2 allows"},
    {"{\"pattern\": \"((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
     "a)))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))\"}",
     "/pattern: not a valid regular expression: parentheses nested deeper than 32 (the regex nesting limit)"},
    {"{\"required\": \"name\"}", "/required: must be an array of property names"},
    {"{\"required\": [\"a\", 1, \"a\"]}", "/required/1: must be a string\n/required/2: duplicate \"a\""},
    {"{\"properties\": []}", "/properties: must be an object of schemas"},
    {"{\"properties\": {\"a\": 1, \"b/c\": {\"type\": \"x\"}}}",
     "/properties/a: a schema must be an object or a boolean\n"
     "/properties/b~1c/type: unknown type \"x\": expected null, boolean, object, array, number, integer or"
     " string"},
    {"{\"items\": [{}]}", "/items: must be a schema (the array form of items is not supported)"},
    {"{\"additionalProperties\": \"no\"}", "/additionalProperties: a schema must be an object or a boolean"},
    {"{\"allOf\": []}", "/allOf: must be a non-empty array of schemas"},
    {"{\"anyOf\": {}}", "/anyOf: must be a non-empty array of schemas"},
    {"{\"oneOf\": [{}, 3, {\"minimum\": null}]}",
     "/oneOf/1: a schema must be an object or a boolean\n/oneOf/2/minimum: must be a number"},
    {"{\"not\": null}", "/not: a schema must be an object or a boolean"},
    {"{\"$ref\": \"#/$defs/x\", \"$defs\": {\"x\": {}}}",
     "/$ref: unsupported keyword \"$ref\"\n/$defs: unsupported keyword \"$defs\""},
    {"{\"patternProperties\": {}, \"if\": {}, \"then\": {}, \"prefixItems\": [], \"exclusiveminimum\": 1}",
     "/patternProperties: unsupported keyword \"patternProperties\"\n/if: unsupported keyword \"if\"\n"
     "/then: unsupported keyword \"then\"\n/prefixItems: unsupported keyword \"prefixItems\"\n"
     "/exclusiveminimum: unsupported keyword \"exclusiveminimum\""},
};

START_TEST(bad_schemas) {
    json_t *schema = tu_json(bad_cases[_i].schema);
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    flow_schema_t *s = (flow_schema_t *)&p; /* must be reset to NULL */

    ck_assert_int_eq(flow_schema_compile(schema, NULL, &s, &p), FLOW_ELOAD);
    ck_assert_ptr_null(s);
    tu_assert_problems(bad_cases[_i].schema, &p, bad_cases[_i].problems);
    flow_problems_clear(&p);
    ck_assert_int_eq(flow_schema_compile(schema, NULL, NULL, NULL), FLOW_ELOAD);
    json_decref(schema);
}
END_TEST

START_TEST(bad_schema_places_have_the_documents_prefix) {
    json_t *schema = tu_json("{\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"integr\", \"minimum\": \"0\"}},"
                             " \"required\": [\"n\"], \"$defs\": {}}");
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    ck_assert_int_eq(flow_schema_compile(schema, "/nodes/ask/schema", NULL, &p), FLOW_ELOAD);
    tu_assert_problems("prefixed", &p,
                       "/nodes/ask/schema/properties/n/type: unknown type \"integr\": expected null, boolean,"
                       " object, array, number, integer or string\n"
                       "/nodes/ask/schema/properties/n/minimum: must be a number\n"
                       "/nodes/ask/schema/$defs: unsupported keyword \"$defs\"");
    flow_problems_clear(&p);
    json_decref(schema);
}
END_TEST

/* n schemas nested in one another through "not", around true. */
static json_t *nested_schema(int n) {
    json_t *s = json_true();
    for (int i = 0; i < n; i++)
        s = json_pack("{s:o}", "not", s);
    return s;
}

START_TEST(schema_depth_limit) {
    json_t *ok = nested_schema(FLOW_SCHEMA_MAX_DEPTH);
    json_t *deep = nested_schema(FLOW_SCHEMA_MAX_DEPTH + 1);
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    flow_schema_t *s = NULL;
    json_t *one = json_integer(1);

    ck_assert_int_eq(flow_schema_compile(ok, NULL, &s, &p), 0);
    /* 64 "not" around true: an even number, so everything matches */
    ck_assert_int_eq(flow_schema_validate(s, one, NULL), 0);
    ck_assert_int_eq(flow_schema_compile(deep, NULL, NULL, &p), FLOW_ELOAD);
    ck_assert_uint_eq(p.count, 1);
    ck_assert_str_eq(p.items[0].message, "subschemas nested deeper than 64 levels");
    ck_assert_uint_eq(strlen(p.items[0].where), strlen("/not") * (FLOW_SCHEMA_MAX_DEPTH + 1));
    flow_problems_clear(&p);
    flow_schema_free(s);
    json_decref(one);
    json_decref(ok);
    json_decref(deep);
}
END_TEST

static json_t *nested_arrays(int n) {
    json_t *v = json_integer(0);
    for (int i = 0; i < n; i++)
        v = json_pack("[o]", v);
    return v;
}

START_TEST(instance_depth_limit) {
    json_t *schema = tu_json("true");
    json_t *ok = nested_arrays(FLOW_SCHEMA_MAX_DEPTH);
    json_t *deep = nested_arrays(FLOW_SCHEMA_MAX_DEPTH + 1);
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    flow_schema_t *s = NULL;

    ck_assert_int_eq(flow_schema_compile(schema, NULL, &s, NULL), 0);
    ck_assert_int_eq(flow_schema_validate(s, ok, &p), 0);
    ck_assert_int_eq(flow_schema_validate(s, deep, &p), FLOW_EINVAL);
    ck_assert_uint_eq(p.count, 1);
    ck_assert_str_eq(p.items[0].message, "nested deeper than 64 levels");
    ck_assert_uint_eq(strlen(p.items[0].where), strlen("/0") * FLOW_SCHEMA_MAX_DEPTH);
    flow_problems_clear(&p);
    flow_schema_free(s);
    json_decref(schema);
    json_decref(ok);
    json_decref(deep);
}
END_TEST

/* Sorting hashes: a long array is checked quickly, and the duplicate found is the earliest. */
START_TEST(unique_items_on_a_long_array) {
    const size_t n = 50000;
    json_t *schema = tu_json("{\"uniqueItems\": true}");
    json_t *a = json_array();
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    flow_schema_t *s = NULL;

    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(json_array_append_new(a, json_pack("{s:[I]}", "k", (json_int_t)i)), 0);
    ck_assert_int_eq(flow_schema_compile(schema, NULL, &s, NULL), 0);
    ck_assert_int_eq(flow_schema_validate(s, a, NULL), 0);
    ck_assert_int_eq(json_array_append_new(a, json_pack("{s:[f]}", "k", 777.0)), 0);
    ck_assert_int_eq(json_array_append_new(a, json_pack("{s:[I]}", "k", (json_int_t)5)), 0);
    ck_assert_int_eq(flow_schema_validate(s, a, &p), FLOW_EINVAL);
    tu_assert_problems("duplicates", &p, "must not contain duplicates (items 777 and 50000 are equal)");
    flow_problems_clear(&p);
    flow_schema_free(s);
    json_decref(a);
    json_decref(schema);
}
END_TEST

START_TEST(long_values_are_cut_in_messages) {
    json_t *schema = json_pack("{s:[]}", "enum");
    for (int i = 0; i < 100; i++)
        json_array_append_new(json_object_get(schema, "enum"), json_string("abcdefghij"));
    json_t *instance = json_string("x");
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    flow_schema_t *s = NULL;

    ck_assert_int_eq(flow_schema_compile(schema, NULL, &s, NULL), 0);
    ck_assert_int_eq(flow_schema_validate(s, instance, &p), FLOW_EINVAL);
    const char *m = p.items[0].message;
    ck_assert_uint_eq(strlen(m), strlen("must be one of ") + 200 + 3);
    ck_assert_str_eq(m + strlen(m) - 3, "...");
    flow_problems_clear(&p);
    flow_schema_free(s);
    json_decref(instance);
    json_decref(schema);
}
END_TEST

/* A string made of n copies of c and then tail, as a JSON string (new reference). */
static json_t *run_of(char c, size_t n, const char *tail) {
    char *b = tu_repeat(c, n, tail);
    json_t *v = json_string(b);
    free(b);
    return v;
}

/* A regex limit refuses the instance with one problem that names it, wherever the pattern is: the
 * catastrophic pattern alone, under not (where "no answer" must not pass), under anyOf; and many
 * strings that each stay under the match limit spend the budget of the validation. */
START_TEST(regex_limits_refuse_the_instance) {
    static const struct {
        const char *schema;
        const char *where;
    } bombs[] = {
        {"{\"pattern\": \"(a+)+$\"}", ""},
        {"{\"not\": {\"pattern\": \"(a+)+$\"}}", ""},
        {"{\"anyOf\": [{\"pattern\": \"(a+)+$\"}, {\"type\": \"number\"}]}", ""},
        {"{\"properties\": {\"x\": {\"pattern\": \"(a+)+$\"}}}", "/x"},
    };
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    json_t *bomb = run_of('a', 10000, "!");
    for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
        json_t *schema = tu_json(bombs[i].schema);
        json_t *instance = bombs[i].where[0] ? json_pack("{s:O}", "x", bomb) : json_incref(bomb);
        flow_schema_t *s = NULL;
        ck_assert_int_eq(flow_schema_compile(schema, NULL, &s, NULL), 0);
        ck_assert_int_eq(flow_schema_validate(s, instance, &p), FLOW_EINVAL);
        ck_assert_uint_eq(p.count, 1);
        ck_assert_str_eq(p.items[0].where, bombs[i].where);
        ck_assert_str_eq(p.items[0].message,
                         "cannot be checked against the pattern (a+)+$: the regex match limit (1000000) was reached");
        flow_problems_clear(&p);
        ck_assert_int_eq(flow_schema_validate(s, instance, NULL), FLOW_EINVAL);
        flow_schema_free(s);
        json_decref(instance);
        json_decref(schema);
    }
    json_decref(bomb);

    /* a thousand strings each well under the match limit: the budget stops them, once */
    flow_re_limits_t lim = {.budget = 20000000};
    json_t *schema = tu_json("{\"items\": {\"pattern\": \"(a|aa)*c\"}}");
    json_t *many = json_array();
    for (int i = 0; i < 1000; i++)
        json_array_append_new(many, run_of('a', 22, "bc"));
    flow_schema_t *s = NULL;
    ck_assert_int_eq(flow_schema_compile_with(schema, NULL, &lim, &s, NULL), 0);
    ck_assert_int_eq(flow_schema_validate(s, many, &p), FLOW_EINVAL);
    ck_assert_uint_eq(p.count, 1);
    ck_assert_str_eq(p.items[0].message,
                     "cannot be checked against the pattern (a|aa)*c: the regex budget of this check (20000000) "
                     "is spent");
    flow_problems_clear(&p);
    /* each validation has a budget of its own: a few such strings pass */
    json_t *few = json_pack("[o, o]", run_of('a', 22, "bc"), run_of('a', 22, "bc"));
    ck_assert_int_eq(flow_schema_validate(s, few, &p), 0);
    flow_schema_free(s);
    json_decref(few);
    json_decref(many);
    json_decref(schema);

    /* a string that is not UTF-8 (a template can make one) is refused, not matched */
    schema = tu_json("{\"pattern\": \"^.*$\"}");
    ck_assert_int_eq(flow_schema_compile(schema, NULL, &s, NULL), 0);
    json_t *bad = json_stringn_nocheck("a\xff", 2);
    ck_assert_int_eq(flow_schema_validate(s, bad, &p), FLOW_EINVAL);
    ck_assert_msg(strstr(p.items[0].message, "not valid UTF-8") != NULL, "%s", p.items[0].message);
    flow_problems_clear(&p);
    json_decref(bad);
    flow_schema_free(s);
    json_decref(schema);
}
END_TEST

START_TEST(bad_arguments) {
    flow_schema_t *s = NULL;
    json_t *v = json_true();
    ck_assert_int_eq(flow_schema_compile(NULL, NULL, &s, NULL), FLOW_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(flow_schema_validate(NULL, v, NULL), FLOW_EINVAL);
    ck_assert_int_eq(flow_schema_compile(v, NULL, &s, NULL), 0);
    ck_assert_int_eq(flow_schema_validate(s, NULL, NULL), FLOW_EINVAL);
    flow_schema_free(s);
    flow_schema_free(NULL);
    json_decref(v);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *schema_suite(void) {
    Suite *s = suite_create("schema");
    TCase *tc = tcase_create("validate");
    tcase_add_loop_test(tc, validate_cases, 0, N(cases));
    tcase_add_test(tc, instance_depth_limit);
    tcase_add_test(tc, unique_items_on_a_long_array);
    tcase_add_test(tc, long_values_are_cut_in_messages);
    tcase_add_test(tc, regex_limits_refuse_the_instance);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("compile");
    tcase_add_loop_test(tc, bad_schemas, 0, N(bad_cases));
    tcase_add_test(tc, bad_schema_places_have_the_documents_prefix);
    tcase_add_test(tc, schema_depth_limit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(schema_suite());
}
