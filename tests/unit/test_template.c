/* test_template.c: references and templates (lib/template.h): evaluation of every root, filter and
 * escape, missing values, and the load-time checker reporting every problem with its place. */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "flow.h"
#include "flow/problems.h"
#include "support/json_util.h"
#include "flow/doc.h" /* flow_template_set_max_text */
#include "template.h"

static const char *SHARED =
    "{\"ingredient\": \"tomato sauce\", \"n\": 5, \"price\": 0.1, \"flag\": true,"
    " \"none\": null, \"list\": [1, \"a\", {\"b\": 2}],"
    " \"obj\": {\"a/b\": 1, \"m~n\": 2, \"q\": \"a b/\xc3\xa9&=?\"},"
    " \"quote\": \"say \\\"hi\\\"\", \"empty\": \"\", \"\": \"empty key\","
    " \"nul\": \"a\\u0000b\", \"unreserved\": \"AZaz09-._~\","
    " \"k\": {\"slash\": \"a/b\", \"tilde\": \"m~n\", \"i\": 2}}";
static const char *PARAMS = "{\"model\": \"gpt\", \"temperature\": 0.7}";
static const char *ITEM = "{\"url\": \"https://x/y?z=1\", \"id\": 7}";

typedef struct fixture {
    json_t *shared, *params, *item;
    flow_scope_t scope;
} fixture_t;

static void fixture_init(fixture_t *f, int with_item) {
    f->shared = tu_json(SHARED);
    f->params = tu_json(PARAMS);
    f->item = with_item ? tu_json(ITEM) : NULL;
    f->scope.shared = f->shared;
    f->scope.params = f->params;
    f->scope.item = f->item;
}

static void fixture_free(fixture_t *f) {
    json_decref(f->shared);
    json_decref(f->params);
    json_decref(f->item);
}

/* A template (JSON text) and what it evaluates to (JSON text). */
static const struct {
    const char *tmpl, *want;
} eval_cases[] = {
    /* references of every root, any type, with pointers and their escapes */
    {"\"$shared/ingredient\"", "\"tomato sauce\""},
    {"\"$shared/n\"", "5"},
    {"\"$shared/price\"", "0.1"},
    {"\"$shared/flag\"", "true"},
    {"\"$shared/none\"", "null"},
    {"\"$shared/list\"", "[1, \"a\", {\"b\": 2}]"},
    {"\"$shared/list/2/b\"", "2"},
    {"\"$shared/obj/a~1b\"", "1"},
    {"\"$shared/obj/m~0n\"", "2"},
    {"\"$shared/\"", "\"empty key\""},
    {"\"$params/model\"", "\"gpt\""},
    {"\"$params\"", "{\"model\": \"gpt\", \"temperature\": 0.7}"},
    {"\"$item\"", "{\"url\": \"https://x/y?z=1\", \"id\": 7}"},
    {"\"$item/id\"", "7"},
    /* plain strings and other values are taken as they are */
    {"\"plain text\"", "\"plain text\""},
    {"\"costs $5\"", "\"costs $5\""},
    {"\"{ {$shared/n} }\"", "\"{ {$shared/n} }\""},
    {"\"}} alone\"", "\"}} alone\""},
    {"42", "42"},
    {"null", "null"},
    /* "$$" escapes the leading "$"; the rest is a template */
    {"\"$$5 off\"", "\"$5 off\""},
    {"\"$$\"", "\"$\""},
    {"\"$$shared/n\"", "\"$shared/n\""},
    {"\"$${{$shared/n}}\"", "\"$5\""},
    /* templates: strings as they are, the rest as compact JSON */
    {"\"i={{$shared/ingredient}}\"", "\"i=tomato sauce\""},
    {"\"{{ $shared/n }}\"", "\"5\""},
    {"\"{{\\t$shared/n\\n}}\"", "\"5\""},
    {"\"{{$shared/price}} {{$params/temperature}}\"", "\"0.1 0.7\""},
    {"\"{{$shared/flag}}/{{$shared/none}}\"", "\"true/null\""},
    {"\"{{$shared/list}}\"", "\"[1,\\\"a\\\",{\\\"b\\\":2}]\""},
    {"\"[{{$shared/empty}}]\"", "\"[]\""},
    {"\"{{$item/url}}&{{$item/url}}\"", "\"https://x/y?z=1&https://x/y?z=1\""},
    {"\"\xc3\xa9 {{$params/model}} \xc3\xbc\"", "\"\xc3\xa9 gpt \xc3\xbc\""},
    {"\"{{$shared/nul}}\"", "\"a\\u0000b\""},
    /* filters */
    {"\"q={{ $shared/obj/q | url }}\"", "\"q=a%20b%2F%C3%A9%26%3D%3F\""},
    {"\"{{$shared/ingredient|url}}\"", "\"tomato%20sauce\""},
    {"\"{{$shared/nul|url}}\"", "\"a%00b\""},
    {"\"{{$item/url | url}}\"", "\"https%3A%2F%2Fx%2Fy%3Fz%3D1\""},
    {"\"{{$shared/n | url}}\"", "\"5\""},
    {"\"{{$shared/unreserved | url}}\"", "\"AZaz09-._~\""},
    {"\"{{ $shared/quote | json }}\"", "\"\\\"say \\\\\\\"hi\\\\\\\"\\\"\""},
    {"\"{{$shared/n|json}}\"", "\"5\""},
    {"\"{{$shared/none|json}}\"", "\"null\""},
    {"\"{{$shared/list | json | url}}\"", "\"%5B1%2C%22a%22%2C%7B%22b%22%3A2%7D%5D\""},
    {"\"{{$shared/ingredient | url | json}}\"", "\"\\\"tomato%20sauce\\\"\""},
    {"\"{{$shared/ingredient | url | url}}\"", "\"tomato%2520sauce\""},
    {"\"{{$shared/ingredient | json | json}}\"", "\"\\\"\\\\\\\"tomato sauce\\\\\\\"\\\"\""},
    /* escapes of braces */
    {"\"{{{{x}}\"", "\"{{x}}\""},
    {"\"a {{{{ b }} c\"", "\"a {{ b }} c\""},
    {"\"{{{$item/id}}}\"", "\"{7}\""},
    {"\"{{{{{{$item/id}}\"", "\"{{7\""},
    {"\"{\\\"id\\\": {{$item/id}}, \\\"url\\\": {{$item/url|json}}}\"",
     "\"{\\\"id\\\": 7, \\\"url\\\": \\\"https://x/y?z=1\\\"}\""},
    /* trees: every string in them, at any depth */
    {"{\"url\": \"https://api/{{$item/id}}\", \"model\": \"$params/model\", \"static\": {\"a\": "
     "[1, 2]},"
     " \"list\": [\"$shared/n\", \"x\", {\"k\": \"$item/id\"}], \"n\": 3, \"$shared/n\": \"key\"}",
     "{\"url\": \"https://api/7\", \"model\": \"gpt\", \"static\": {\"a\": [1, 2]},"
     " \"list\": [5, \"x\", {\"k\": 7}], \"n\": 3, \"$shared/n\": \"key\"}"},
    {"[[[\"$$\"]], \"{{{{\"]", "[[[\"$\"]], \"{{\"]"},
    /* references whose pointer is a template: each value spliced as one token, escaped */
    {"\"$shared/obj/{{$shared/k/slash}}\"", "1"},
    {"\"$shared/obj/{{ $shared/k/tilde }}\"", "2"},
    {"\"$shared/list/{{$shared/k/i}}/b\"", "2"},
};

START_TEST(eval_cases_table) {
    fixture_t f;
    fixture_init(&f, 1);
    json_t *tmpl = tu_json(eval_cases[_i].tmpl);
    flow_error_t err = {0, NULL, NULL};
    flow_tmpl_t *t = NULL;
    json_t *out = NULL;

    ck_assert_int_eq(flow_template_compile(tmpl, "", FLOW_SCOPE_ALL, &t, NULL), 0);
    ck_assert_int_eq(flow_tmpl_eval(t, &f.scope, &out, &err), 0);
    tu_assert_json(eval_cases[_i].tmpl, out, eval_cases[_i].want);
    json_decref(out);
    /* the one-shot form agrees */
    ck_assert_int_eq(flow_template_eval(tmpl, &f.scope, &out, &err), 0);
    tu_assert_json(eval_cases[_i].tmpl, out, eval_cases[_i].want);
    json_decref(out);
    ck_assert_ptr_null(err.message);
    tu_assert_json("the template is unchanged", tmpl, eval_cases[_i].tmpl);
    flow_tmpl_free(t);
    json_decref(tmpl);
    fixture_free(&f);
}
END_TEST

/* References to nothing: the node fails with FLOW_ENOTFOUND and a message naming the reference. */
static const struct {
    const char *tmpl, *message;
} missing_cases[] = {
    {"\"$shared/missing\"", "$shared/missing not found"},
    {"\"$shared/list/3\"", "$shared/list/3 not found"},
    {"\"$shared/list/01\"", "$shared/list/01 not found"},
    {"\"$shared/n/x\"", "$shared/n/x not found"},
    {"\"$params/Model\"", "$params/Model not found"},
    {"\"$item\"", "$item not found"}, /* no item outside a batch */
    {"\"$item/id\"", "$item/id not found"},
    {"\"x={{ $shared/missing | url }}\"", "$shared/missing not found"},
    {"{\"a\": [1, {\"b\": \"{{$shared/n}} {{$shared/nope}}\"}]}", "$shared/nope not found"},
    /* the message shows the pointer as evaluated, not the template */
    {"\"$shared/order/{{$shared/n}}\"", "$shared/order/5 not found"},
    {"\"$shared/obj/{{$shared/k/slash}}x\"", "$shared/obj/a~1bx not found"},
    {"\"$shared/x/{{$shared/missing}}\"", "$shared/missing not found"},
};

START_TEST(eval_missing_values) {
    fixture_t f;
    fixture_init(&f, 0);
    json_t *tmpl = tu_json(missing_cases[_i].tmpl);
    flow_error_t err = {0, NULL, NULL};
    flow_tmpl_t *t = NULL;
    json_t *out = tmpl;

    ck_assert_int_eq(flow_template_compile(tmpl, "", FLOW_SCOPE_ALL, &t, NULL), 0);
    ck_assert_int_eq(flow_tmpl_eval(t, &f.scope, &out, &err), FLOW_ENOTFOUND);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(err.code, FLOW_ENOTFOUND);
    ck_assert_str_eq(err.message, missing_cases[_i].message);
    /* an error held in err is replaced, not leaked */
    ck_assert_int_eq(flow_tmpl_eval(t, &f.scope, &out, &err), FLOW_ENOTFOUND);
    ck_assert_str_eq(err.message, missing_cases[_i].message);
    free(err.message);
    flow_tmpl_free(t);
    json_decref(tmpl);
    fixture_free(&f);
}
END_TEST

START_TEST(eval_without_err_still_fails) {
    json_t *tmpl = tu_json("\"$shared/x\"");
    json_t *out = NULL;
    ck_assert_int_eq(flow_template_eval(tmpl, NULL, &out, NULL), FLOW_ENOTFOUND);
    ck_assert_ptr_null(out);
    json_decref(tmpl);
}
END_TEST

START_TEST(one_shot_eval_reports_the_first_problem) {
    json_t *tmpl = tu_json("{\"a\": {\"b\": \"{{ $x }}\", \"c\": \"$y\"}}");
    flow_error_t err = {0, NULL, NULL};
    json_t *out = NULL;
    ck_assert_int_eq(flow_template_eval(tmpl, NULL, &out, &err), FLOW_EINVAL);
    ck_assert_ptr_null(out);
    ck_assert_str_eq(err.message,
                     "/a/b: column 4: unknown root \"$x\": expected $shared, $params or $item");
    free(err.message);
    json_decref(tmpl);
}
END_TEST

/* Nothing to evaluate: the tree itself comes back, without a copy. */
START_TEST(static_trees_come_back_as_they_are) {
    json_t *tmpl = tu_json("{\"a\": [1, \"x\", {\"b\": null}], \"c\": \"plain {text} $5 }}\"}");
    flow_tmpl_t *t = NULL;
    json_t *out = NULL;
    ck_assert_int_eq(flow_template_compile(tmpl, NULL, FLOW_SCOPE_ALL, &t, NULL), 0);
    ck_assert_uint_eq(flow_tmpl_roots(t), 0);
    ck_assert_int_eq(flow_tmpl_eval(t, NULL, &out, NULL), 0);
    ck_assert_ptr_eq(out, tmpl);
    json_decref(out);
    flow_tmpl_free(t);
    json_decref(tmpl);
}
END_TEST

/* Escapes alone: the result is new, and the same whatever the scope. */
START_TEST(escapes_need_no_scope) {
    json_t *tmpl = tu_json("{\"price\": \"$$5\", \"n\": 1}");
    flow_tmpl_t *t = NULL;
    json_t *out = NULL;
    ck_assert_int_eq(flow_template_compile(tmpl, NULL, 0, &t, NULL), 0);
    ck_assert_uint_eq(flow_tmpl_roots(t), 0);
    ck_assert_int_eq(flow_tmpl_eval(t, NULL, &out, NULL), 0);
    tu_assert_json("escaped", out, "{\"price\": \"$5\", \"n\": 1}");
    json_decref(out);
    flow_tmpl_free(t);
    json_decref(tmpl);
}
END_TEST

/* Evaluation copies only the way to what changes; the rest, and referenced values, are shared. */
START_TEST(eval_shares_untouched_parts) {
    fixture_t f;
    fixture_init(&f, 1);
    json_t *tmpl = tu_json("{\"static\": {\"deep\": [1, 2]}, \"dyn\": {\"x\": \"$shared/list\", \"y\": 1}}");
    flow_tmpl_t *t = NULL;
    json_t *out = NULL;
    ck_assert_int_eq(flow_template_compile(tmpl, NULL, FLOW_SCOPE_SHARED, &t, NULL), 0);
    ck_assert_uint_eq(flow_tmpl_roots(t), FLOW_SCOPE_SHARED);
    ck_assert_int_eq(flow_tmpl_eval(t, &f.scope, &out, NULL), 0);
    ck_assert_ptr_ne(out, tmpl);
    ck_assert_ptr_eq(json_object_get(out, "static"), json_object_get(tmpl, "static"));
    ck_assert_ptr_ne(json_object_get(out, "dyn"), json_object_get(tmpl, "dyn"));
    ck_assert_ptr_eq(json_object_get(json_object_get(out, "dyn"), "x"), json_object_get(f.shared, "list"));
    json_decref(out);
    flow_tmpl_free(t);
    json_decref(tmpl);
    fixture_free(&f);
}
END_TEST

/* One compiled template, evaluated for many items, as a batch does. */
START_TEST(compile_once_eval_per_item) {
    json_t *tmpl = tu_json("{\"url\": \"https://api/r/{{$item/id}}?m={{$params/m | url}}\", \"id\": \"$item/id\"}");
    json_t *params = tu_json("{\"m\": \"a&b\"}");
    flow_tmpl_t *t = NULL;
    ck_assert_int_eq(flow_template_compile(tmpl, "/nodes/get/params", FLOW_SCOPE_ALL, &t, NULL), 0);
    ck_assert_uint_eq(flow_tmpl_roots(t), FLOW_SCOPE_ITEM | FLOW_SCOPE_PARAMS);
    for (int i = 0; i < 3; i++) {
        json_t *item = json_pack("{s:i}", "id", i);
        flow_scope_t scope = {NULL, params, item};
        json_t *out = NULL;
        char want[128];
        snprintf(want, sizeof want, "{\"url\": \"https://api/r/%d?m=a%%26b\", \"id\": %d}", i, i);
        ck_assert_int_eq(flow_tmpl_eval(t, &scope, &out, NULL), 0);
        tu_assert_json("per item", out, want);
        json_decref(out);
        json_decref(item);
    }
    flow_tmpl_free(t);
    json_decref(params);
    json_decref(tmpl);
}
END_TEST

/* Results longer than the stack buffer move to the heap; past FLOW_TEMPLATE_MAX_TEXT they fail. */
START_TEST(long_results) {
    size_t big = FLOW_TEMPLATE_MAX_TEXT / 2 + 1;
    char *s = malloc(big + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, 'x', big);
    s[big] = '\0';
    json_t *shared = json_pack("{s:s#,s:s}", "big", s, (int)big, "mid", "0123456789012345678901234567890123456789");
    flow_scope_t scope = {shared, NULL, NULL};
    json_t *out = NULL;
    flow_error_t err = {0, NULL, NULL};

    json_t *tmpl = tu_json("\"{{$shared/mid}}{{$shared/mid}}{{$shared/mid}}{{$shared/mid}}{{$shared/mid}}"
                           "{{$shared/mid}}{{$shared/mid}}{{$shared/mid}}|{{$shared/mid | json}}\"");
    ck_assert_int_eq(flow_template_eval(tmpl, &scope, &out, &err), 0);
    ck_assert_uint_eq(json_string_length(out), 8 * 40 + 1 + 42);
    ck_assert_str_eq(json_string_value(out) + 8 * 40, "|\"0123456789012345678901234567890123456789\"");
    json_decref(out);
    json_decref(tmpl);

    tmpl = tu_json("\"{{$shared/big}}{{$shared/big}}\"");
    ck_assert_int_eq(flow_template_eval(tmpl, &scope, &out, &err), FLOW_ETOOBIG);
    ck_assert_ptr_null(out);
    ck_assert_str_eq(err.message, "template {{$shared/big}}{{$shared/big}} gives more than 16777216 bytes");
    free(err.message);
    json_decref(tmpl);
    json_decref(shared);
    free(s);
}
END_TEST

/* The load-time checker: a document (JSON text), where it sits, the roots allowed, and every problem
 * it must report, in order, with its exact place. */
static const struct {
    const char *tmpl, *where;
    unsigned roots;
    const char *problems;
} check_cases[] = {
    {"{\"url\": \"https://api/{{$sharde/x}}?q={{ $shared/q | urll }}\","
     " \"body\": {\"text\": \"{{ }}\", \"items\": [\"ok\", \"$item/x\", \"{{ $shared/a~2 }}\"]},"
     " \"model\": \"$param/model\", \"k\": \"{{ $shared/x\", \"m\": \"{{ shared/x }}\","
     " \"f\": \"{{ $shared/x | }}\", \"g\": \"{{$shared/x|url json}}\", \"h\": \"$shared/a~3b\","
     " \"fine\": \"{{{{not a placeholder}}\"}",
     "/nodes/fetch/params", FLOW_SCOPE_SHARED | FLOW_SCOPE_PARAMS,
     "/nodes/fetch/params/url: column 15: unknown root \"$sharde\": expected $shared, $params or "
     "$item\n"
     "/nodes/fetch/params/url: column 44: unknown filter \"urll\": expected url or json\n"
     "/nodes/fetch/params/body/text: column 1: empty placeholder\n"
     "/nodes/fetch/params/body/items/1: $item is not available here\n"
     "/nodes/fetch/params/body/items/2: column 13: malformed pointer \"/a~2\": \"~\" must be "
     "followed by"
     " \"0\" or \"1\"\n"
     "/nodes/fetch/params/model: unknown root \"$param\": expected $shared, $params or $item"
     " (a literal \"$\" is written \"$$\")\n"
     "/nodes/fetch/params/k: column 1: unclosed \"{{\"\n"
     "/nodes/fetch/params/m: column 4: a placeholder must hold a reference ($shared, $params or "
     "$item)\n"
     "/nodes/fetch/params/f: column 14: missing filter name after \"|\"\n"
     "/nodes/fetch/params/g: column 17: unexpected \"json\" after filter \"url\"\n"
     "/nodes/fetch/params/h: malformed pointer \"/a~3b\": \"~\" must be followed by \"0\" or "
     "\"1\""},
    /* places escape "~" and "/" in keys, and count array elements */
    {"{\"a/b\": {\"m~n\": [0, \"$nope\"]}}", "", FLOW_SCOPE_ALL,
     "/a~1b/m~0n/1: unknown root \"$nope\": expected $shared, $params or $item"
     " (a literal \"$\" is written \"$$\")"},
    {"\"$\"", NULL, FLOW_SCOPE_ALL,
     "unknown root \"$\": expected $shared, $params or $item (a literal \"$\" is written \"$$\")"},
    {"\"$shared x\"", NULL, FLOW_SCOPE_ALL,
     "unknown root \"$shared x\": expected $shared, $params or $item (a literal \"$\" is written "
     "\"$$\")"},
    {"\"$sharedx/y\"", NULL, FLOW_SCOPE_ALL,
     "unknown root \"$sharedx\": expected $shared, $params or $item (a literal \"$\" is written "
     "\"$$\")"},
    /* columns count characters, not bytes */
    {"\"\xc3\xa9\xc3\xa9{{ }}\"", "/p", FLOW_SCOPE_ALL, "/p: column 3: empty placeholder"},
    /* several problems in one string, and the text after a bad placeholder still checked */
    {"\"{{$a}} {{$b | url}} {{$item | jsn}}\"", "/s", FLOW_SCOPE_ALL,
     "/s: column 3: unknown root \"$a\": expected $shared, $params or $item\n"
     "/s: column 10: unknown root \"$b\": expected $shared, $params or $item\n"
     "/s: column 31: unknown filter \"jsn\": expected url or json"},
    {"\"{{ | url }}\"", "/s", FLOW_SCOPE_ALL,
     "/s: column 4: a placeholder must hold a reference ($shared, $params or $item)"},
    {"\"{{ $$x }}\"", "/s", FLOW_SCOPE_ALL,
     "/s: column 4: unknown root \"$$x\": expected $shared, $params or $item"},
    {"\"{{$shared/x|url|url|url|url|json}}\"", "/s", FLOW_SCOPE_ALL,
     "/s: column 29: more than 4 filters"},
    {"\"{{ $shared/x | url  json  |json }}\"", "/s", FLOW_SCOPE_ALL,
     "/s: column 21: unexpected \"json  |json\" after filter \"url\""},
    {"\"{{$item}} and {{ $params }}\"", "/s", FLOW_SCOPE_SHARED,
     "/s: column 3: $item is not available here\n/s: column 18: $params is not available here"},
    {"[\"$shared\", \"$params\", \"$item\"]", "/s", 0,
     "/s/0: $shared is not available here\n/s/1: $params is not available here\n"
     "/s/2: $item is not available here"},
    /* references whose pointer is a template */
    {"\"$shared/a~2/{{$shared/n}}\"", "/s", FLOW_SCOPE_ALL,
     "/s: column 10: malformed pointer: \"~\" must be followed by \"0\" or \"1\""},
    {"\"$sharde/{{$shared/n}}\"", "/s", FLOW_SCOPE_ALL,
     "/s: unknown root \"$sharde\": expected $shared, $params or $item (a literal \"$\" is written "
     "\"$$\")"},
    {"\"$shared/{{$nope}}\"", "/s", FLOW_SCOPE_ALL,
     "/s: column 11: unknown root \"$nope\": expected $shared, $params or $item"},
    {"\"$shared/{{$item/x}}\"", "/s", FLOW_SCOPE_SHARED,
     "/s: column 11: $item is not available here"},
    /* an unclosed "{{" ends the string's checks; "}}" alone is text */
    {"\"}} {{$shared}} {{ $x\"", "/s", FLOW_SCOPE_ALL, "/s: column 16: unclosed \"{{\""},
};

START_TEST(check_reports_every_problem) {
    json_t *tmpl = tu_json(check_cases[_i].tmpl);
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    flow_tmpl_t *t = (flow_tmpl_t *)&p; /* must be reset to NULL */

    ck_assert_int_eq(flow_template_check(tmpl, check_cases[_i].where, check_cases[_i].roots, &p), FLOW_ELOAD);
    tu_assert_problems(check_cases[_i].tmpl, &p, check_cases[_i].problems);
    flow_problems_clear(&p);
    ck_assert_int_eq(flow_template_compile(tmpl, check_cases[_i].where, check_cases[_i].roots, &t, &p),
                     FLOW_ELOAD);
    ck_assert_ptr_null(t);
    tu_assert_problems("compile reports the same", &p, check_cases[_i].problems);
    flow_problems_clear(&p);
    /* without a list, the answer is still no */
    ck_assert_int_eq(flow_template_check(tmpl, NULL, check_cases[_i].roots, NULL), FLOW_ELOAD);
    json_decref(tmpl);
}
END_TEST

START_TEST(check_appends_to_earlier_problems) {
    json_t *good = tu_json("{\"u\": \"{{$shared/x}}\"}");
    json_t *bad = tu_json("{\"u\": \"{{$shared/x}\"}");
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    ck_assert_int_eq(flow_problems_add(&p, "/nodes", "earlier"), 0);
    ck_assert_int_eq(flow_template_check(good, "/nodes/a/params", FLOW_SCOPE_ALL, &p), 0);
    ck_assert_int_eq(flow_template_check(bad, "/nodes/b/params", FLOW_SCOPE_ALL, &p), FLOW_ELOAD);
    tu_assert_problems("list", &p, "/nodes: earlier\n/nodes/b/params/u: column 1: unclosed \"{{\"");
    flow_problems_clear(&p);
    json_decref(good);
    json_decref(bad);
}
END_TEST

/* Builds n arrays nested in one another around "$shared". */
static json_t *nested(int n) {
    json_t *v = json_string("$shared");
    for (int i = 0; i < n; i++) {
        json_t *a = json_array();
        ck_assert_int_eq(json_array_append_new(a, v), 0);
        v = a;
    }
    return v;
}

START_TEST(depth_limit) {
    json_t *ok = nested(FLOW_TEMPLATE_MAX_DEPTH);
    json_t *deep = nested(FLOW_TEMPLATE_MAX_DEPTH + 1);
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    ck_assert_int_eq(flow_template_check(ok, "", FLOW_SCOPE_ALL, &p), 0);
    ck_assert_int_eq(flow_template_check(deep, "/d", FLOW_SCOPE_ALL, &p), FLOW_ELOAD);
    ck_assert_uint_eq(p.count, 1);
    ck_assert_str_eq(p.items[0].message, "nested deeper than 64 levels");
    ck_assert_uint_eq(strlen(p.items[0].where), strlen("/d") + 2 * FLOW_TEMPLATE_MAX_DEPTH);
    flow_problems_clear(&p);
    json_decref(ok);
    json_decref(deep);
}
END_TEST

START_TEST(many_problems_are_capped) {
    json_t *tmpl = json_array();
    for (int i = 0; i < FLOW_PROBLEMS_MAX + 50; i++)
        ck_assert_int_eq(json_array_append_new(tmpl, json_string("$bad")), 0);
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    ck_assert_int_eq(flow_template_check(tmpl, "", FLOW_SCOPE_ALL, &p), FLOW_ELOAD);
    ck_assert_uint_eq(p.count, FLOW_PROBLEMS_MAX);
    ck_assert_uint_eq(p.dropped, 50);
    ck_assert_str_eq(p.items[FLOW_PROBLEMS_MAX - 1].where, "/99");
    flow_problems_clear(&p);
    json_decref(tmpl);
}
END_TEST

/* Pointer templates (set's keys, out): values spliced as tokens, whatever they hold. */
static const struct {
    const char *tmpl, *want;
} pointer_cases[] = {
    {"\"/byname/{{$shared/k/slash}}\"", "\"/byname/a~1b\""},
    {"\"/byname/{{$shared/k/tilde}}\"", "\"/byname/m~0n\""},
    {"\"/n/{{$shared/n}}/x\"", "\"/n/5/x\""},
    {"\"/{{$shared/k/slash}}{{$shared/k/tilde}}\"", "\"/a~1bm~0n\""},
    {"\"/u/{{$shared/unreserved | url}}\"", "\"/u/AZaz09-._~0\""},
    {"\"/a~1b/{{$item/id}}\"", "\"/a~1b/7\""},
    {"\"/plain\"", "\"/plain\""},
    {"\"$shared/obj/q\"", "\"a b/\xc3\xa9&=?\""}, /* a whole reference gives its value as it is */
};

START_TEST(pointer_templates) {
    fixture_t f;
    fixture_init(&f, 1);
    json_t *tmpl = tu_json(pointer_cases[_i].tmpl);
    flow_tmpl_t *t = NULL;
    json_t *out = NULL;
    ck_assert_int_eq(flow_template_compile_pointer(tmpl, "", FLOW_SCOPE_ALL, &t, NULL), 0);
    ck_assert_int_eq(flow_tmpl_eval(t, &f.scope, &out, NULL), 0);
    tu_assert_json(pointer_cases[_i].tmpl, out, pointer_cases[_i].want);
    json_decref(out);
    flow_tmpl_free(t);
    json_decref(tmpl);
    fixture_free(&f);
}
END_TEST

START_TEST(pointer_template_problems) {
    static const struct {
        const char *tmpl, *problems;
    } cases[] = {
        {"\"{{$shared/n}}/x\"", "/out: a JSON Pointer starts with \"/\""},
        {"\"/a~/{{$shared/n}}\"",
         "/out: column 3: malformed pointer: \"~\" must be followed by \"0\" or \"1\""},
        {"\"/a/{{$shared/n}}~\"",
         "/out: column 17: malformed pointer: \"~\" must be followed by \"0\" or \"1\""},
        {"\"/a/{{ $sharde }}\"",
         "/out: column 7: unknown root \"$sharde\": expected $shared, $params or $item"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *tmpl = tu_json(cases[i].tmpl);
        flow_problems_t p = FLOW_PROBLEMS_INIT;
        flow_tmpl_t *t = NULL;
        ck_assert_int_eq(flow_template_compile_pointer(tmpl, "/out", FLOW_SCOPE_ALL, &t, &p),
                         FLOW_ELOAD);
        ck_assert_ptr_null(t);
        tu_assert_problems(cases[i].tmpl, &p, cases[i].problems);
        flow_problems_clear(&p);
        json_decref(tmpl);
    }
    flow_tmpl_t *t = NULL;
    json_t *n = json_integer(1);
    ck_assert_int_eq(flow_template_compile_pointer(n, "", FLOW_SCOPE_ALL, &t, NULL), FLOW_EINVAL);
    json_decref(n);
}
END_TEST

START_TEST(bad_arguments) {
    flow_tmpl_t *t = NULL;
    json_t *out = NULL;
    ck_assert_int_eq(flow_template_compile(NULL, "", FLOW_SCOPE_ALL, &t, NULL), FLOW_EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(flow_template_eval(NULL, NULL, &out, NULL), FLOW_EINVAL);
    ck_assert_int_eq(flow_tmpl_eval(NULL, NULL, &out, NULL), FLOW_EINVAL);
    flow_tmpl_free(NULL);
}
END_TEST

/* The references of a string, as compiling reads them: the loader checks $params against them. */
static int collect_ref(void *data, const char *ref, size_t len) {
    json_array_append_new(data, json_stringn(ref, len));
    return json_array_size(data) == 3 ? 7 : 0; /* a non-zero answer stops the walk */
}

static const struct {
    const char *text; /* a JSON string */
    const char *refs; /* a JSON array */
} refs_cases[] = {
    {"\"$params/a b/c\"", "[\"$params/a b/c\"]"},
    {"\"{{ $params/a~1b | url }}-{{$shared/x}}\"", "[\"$params/a~1b\", \"$shared/x\"]"},
    {"\"{{{{$params/literal}} $$ {{{$item}}}\"", "[\"$item\"]"},
    {"\"x\\u0000{{$params/after_nul}}\"", "[\"$params/after_nul\"]"},
    {"\"$$params/x\"", "[]"},
    {"\"$params/~\"", "[]"},        /* malformed: the compiler reports it, so no reference */
    {"\"{{$params/~}}\"", "[]"},
    {"\"{{$params/a}} {{\"", "[]"}, /* unclosed */
    {"\"plain\"", "[]"},
    {"5", "[]"},
    /* a reference whose pointer is a template: its first token when written out whole, then the
     * placeholders */
    {"\"$params/a/{{$shared/i}}\"", "[\"$params/a/\", \"$shared/i\"]"},
    {"\"$params/{{$shared/k}}/x\"", "[\"$shared/k\"]"},
};

START_TEST(refs_are_read_as_compiling_reads_them) {
    json_t *str = tu_json(refs_cases[_i].text);
    json_t *got = json_array();
    ck_assert_int_eq(flow_template_refs(str, collect_ref, got), 0);
    tu_assert_json(refs_cases[_i].text, got, refs_cases[_i].refs);
    json_decref(got);
    json_decref(str);
}
END_TEST

START_TEST(refs_walk_stops_when_asked) {
    json_t *str = json_string("{{$shared/a}}{{$shared/b}}{{$shared/c}}{{$shared/d}}");
    json_t *got = json_array();
    ck_assert_int_eq(flow_template_refs(str, collect_ref, got), 7);
    ck_assert_uint_eq(json_array_size(got), 3);
    json_decref(got);
    json_decref(str);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *template_suite(void) {
    Suite *s = suite_create("template");
    TCase *tc = tcase_create("eval");
    tcase_add_loop_test(tc, eval_cases_table, 0, N(eval_cases));
    tcase_add_loop_test(tc, eval_missing_values, 0, N(missing_cases));
    tcase_add_test(tc, eval_without_err_still_fails);
    tcase_add_test(tc, one_shot_eval_reports_the_first_problem);
    tcase_add_test(tc, static_trees_come_back_as_they_are);
    tcase_add_test(tc, escapes_need_no_scope);
    tcase_add_test(tc, eval_shares_untouched_parts);
    tcase_add_test(tc, compile_once_eval_per_item);
    tcase_add_test(tc, long_results);
    tcase_add_test(tc, bad_arguments);
    tcase_add_loop_test(tc, pointer_templates, 0, N(pointer_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("check");
    tcase_add_loop_test(tc, check_reports_every_problem, 0, N(check_cases));
    tcase_add_test(tc, check_appends_to_earlier_problems);
    tcase_add_test(tc, depth_limit);
    tcase_add_test(tc, many_problems_are_capped);
    tcase_add_loop_test(tc, refs_are_read_as_compiling_reads_them, 0, N(refs_cases));
    tcase_add_test(tc, refs_walk_stops_when_asked);
    tcase_add_test(tc, pointer_template_problems);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(template_suite());
}
