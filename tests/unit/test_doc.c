/* test_doc.c: loading flow documents: a good one becomes a definition with its nodes, successors and
 * params; a bad one is refused with every problem at once, each with its place (a JSON Pointer, or
 * file:line:column). */
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "flow/doc.h"
#include "nodes_int.h"
#include "support/json_util.h"

static flow_registry_t *reg;
static flow_nodes_env_t env;

static void setup(void) {
    ck_assert_int_eq(flow_registry_new(&reg), 0);
    ck_assert_int_eq(flow_nodes_register(reg, &env), 0);
}

static void teardown(void) {
    flow_registry_free(reg);
}

/* Loads text; returns the problems as text ("" when it loaded) and the definition in *def. */
static const char *load(const char *text, flow_def_t **def) {
    static char buf[8192];
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    json_t *doc = tu_json(text);
    int rc = flow_doc_load(reg, doc, def, &p);
    char *t = NULL;
    flow_problems_text(&p, &t);
    snprintf(buf, sizeof buf, "%s", t ? t : "");
    flow_free(t);
    ck_assert_int_eq(rc, p.count ? FLOW_ELOAD : 0);
    flow_problems_clear(&p);
    json_decref(doc);
    return buf;
}

static void refused(const char *text, const char *problems) {
    flow_def_t *def = NULL;
    const char *got = load(text, &def);
    ck_assert_msg(strcmp(got, problems) == 0, "document:\n%s\nproblems:\n%s\nwanted:\n%s", text, got, problems);
    ck_assert_ptr_null(def);
}

START_TEST(test_a_good_document_becomes_a_definition) {
    flow_def_t *def = NULL;
    const char *text =
        "{\"name\": \"greet\", \"version\": \"2\", \"params\": {\"greeting\": \"Hello\"}, \"start\": \"check\","
        " \"nodes\": {"
        "  \"check\": {\"type\": \"choice\", \"params\": {\"value\": \"$shared/name\","
        "             \"cases\": [{\"exists\": false, \"action\": \"anonymous\"}]},"
        "             \"next\": {\"anonymous\": \"fail\", \"default\": \"say\"}},"
        "  \"say\": {\"type\": \"set\", \"params\": {\"/text\": \"{{$params/greeting}}, {{$shared/name}}\"},"
        "           \"max_retries\": 2, \"wait\": 10, \"timeout\": 500, \"next\": {\"default\": \"nap\"}},"
        "  \"nap\": {\"type\": \"sleep\", \"params\": {\"seconds\": 0}, \"out\": \"/slept\", \"next\": {\"again\": null}},"
        "  \"fail\": {\"type\": \"fail\", \"params\": {\"message\": \"no name\"}}}}";
    ck_assert_str_eq(load(text, &def), "");
    ck_assert_ptr_nonnull(def);
    ck_assert_str_eq(flow_def_name(def), "greet");
    ck_assert(flow_def_sealed(def));
    flow_node_t *root = flow_def_root(def);
    ck_assert_str_eq(flow_node_name(root), "greet");
    ck_assert_str_eq(flow_node_name(flow_node_start(root)), "check");
    tu_assert_json("root params", flow_node_params(root), "{\"greeting\": \"Hello\"}");
    flow_node_t *say = flow_def_find(def, "say");
    ck_assert_uint_eq(flow_node_max_retries(say), 2);
    ck_assert_uint_eq(flow_node_wait(say), 10);
    ck_assert_uint_eq(flow_node_timeout(say), 500);
    ck_assert_ptr_eq(flow_node_succ(flow_def_find(def, "check"), "anonymous"), flow_def_find(def, "fail"));
    ck_assert_ptr_eq(flow_node_succ(say, NULL), flow_def_find(def, "nap"));
    ck_assert_ptr_nonnull(flow_doc_of(def));
    ck_assert_str_eq(json_string_value(json_object_get(flow_doc_of(def), "version")), "2");
    flow_def_unref(def);
}
END_TEST

START_TEST(test_every_problem_is_reported_at_once_with_its_place) {
    refused("{\"name\": \"bad\", \"start\": \"a\", \"nodes\": {"
            " \"a\": {\"type\": \"htp\", \"next\": {\"default\": \"b\"}},"
            " \"b\": {\"type\": \"sleep\", \"params\": {}, \"next\": {\"default\": \"nowhere\"}},"
            " \"c\": {\"type\": \"noop\"}}}",
            "/nodes/a/type: unknown node type \"htp\" (the types are noop, sleep, set, choice, fail, input, "
            "http, llm, lua, map, flow)\n"
            "/nodes/b/params: sleep needs \"seconds\"\n"
            "/nodes/b/next/default: no node \"nowhere\" in this flow\n"
            "/nodes/c: node c is never reached from the start node a");
}
END_TEST

START_TEST(test_the_document_itself_is_checked) {
    refused("[1]", "a flow document is a JSON object");
    refused("{\"name\": \"has space\", \"start\": 1, \"nodes\": {}, \"extra\": true, \"version\": 2}",
            "/extra: unknown member \"extra\" of a flow document\n"
            "/name: name is 1 to 64 letters, digits, '.', '_' or '-', the first a letter or a "
            "digit\n"
            "/version: version is a string\n"
            "/nodes: nodes is a non-empty object of name: node");
    refused("{\"name\": \"x\", \"start\": \"nope\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}",
            "/start: no node \"nope\" to start from");
    refused("{\"name\": \"x\", \"start\": \"x\", \"nodes\": {\"x\": {\"type\": \"noop\"}}}",
            "/nodes/x: a node cannot have the flow's own name");
}
END_TEST

START_TEST(test_nodes_and_their_common_members_are_checked) {
    refused("{\"name\": \"n\", \"start\": \"a\", \"nodes\": {"
            " \"a\": {\"type\": \"noop\", \"max_retries\": 0, \"wait\": -1, \"timeout\": \"1s\", \"retry\": 3,"
            "        \"next\": {\"default\": 5}},"
            " \"b c\": {\"params\": []}}}",
            "/nodes/a/retry: unknown member \"retry\" of a node\n"
            "/nodes/a/max_retries: max_retries is the number of tries, 1 to 100\n"
            "/nodes/a/wait: wait is milliseconds between tries, 0 to 3600000\n"
            "/nodes/a/timeout: timeout is milliseconds per try, 0 to 86400000\n"
            "/nodes/b c: a node name is 1 to 64 letters, digits, '_' or '-'\n"
            "/nodes/b c/type: a node needs a \"type\" (a string)\n"
            "/nodes/a/next/default: a successor is a node name, or null to end the flow\n"
            "/nodes/b c: node b c is never reached from the start node a");
}
END_TEST

START_TEST(test_params_of_each_type_are_checked) {
    refused("{\"name\": \"p\", \"start\": \"a\", \"nodes\": {"
            " \"a\": {\"type\": \"noop\", \"params\": {\"x\": 1}, \"out\": \"/r\", \"next\": {\"default\": \"b\"}},"
            " \"b\": {\"type\": \"sleep\", \"params\": {\"seconds\": -2}, \"next\": {\"default\": \"c\"}},"
            " \"c\": {\"type\": \"set\", \"params\": {\"nopointer\": 1}, \"next\": {\"default\": \"d\"}},"
            " \"d\": {\"type\": \"choice\", \"params\": {\"value\": 1, \"cases\": [{\"eq\": 1}, {\"near\": 2, \"action\": \"x\"}]},"
            "        \"next\": {\"default\": \"e\"}},"
            " \"e\": {\"type\": \"http\", \"params\": {\"url\": \"not a url\", \"method\": \"FETCH\", \"expect\": [99],"
            "        \"x\": 1},"
            "        \"out\": \"relative\", \"next\": {\"default\": \"f\"}},"
            " \"f\": {\"type\": \"llm\", \"params\": {\"temperature\": 3}, \"next\": {\"default\": \"g\"}},"
            " \"g\": {\"type\": \"input\", \"params\": {\"schema\": {\"type\": \"strung\"}, \"timeout_action\": \"late\"}}}}",
            "/nodes/a/out: a node of type noop has no result to store\n"
            "/nodes/a/params/x: unknown param \"x\" for a node of type noop\n"
            "/nodes/b/params/seconds: seconds must be a number from 0 to 2592000, or a reference\n"
            "/nodes/c/params/nopointer: \"nopointer\" is not a JSON Pointer into the shared store (such as \"/greeting\")\n"
            "/nodes/d/params/cases/0: a case needs an \"action\" (a non-empty string)\n"
            "/nodes/d/params/cases/1: unknown test \"near\"; tests are eq, ne, lt, le, gt, ge, in, matches, exists, type\n"
            "/nodes/e/out: out must be a JSON Pointer into the shared store, such as \"/result\", "
            "or an object of "
            "such pointers and the parts of the result to store there\n"
            "/nodes/e/params/x: unknown param \"x\" for a node of type http\n"
            "/nodes/e/params/url: \"not a url\" is not a URL\n"
            "/nodes/e/params/method: method is one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS\n"
            "/nodes/e/params/expect: expect is a list of HTTP status codes, such as [200, 404]\n"
            "/nodes/f/params: llm needs a \"prompt\" (a string) or \"messages\" (a list), one of them\n"
            "/nodes/f/params/temperature: temperature is a number from 0 to 2\n"
            "/nodes/g/params: input needs a \"prompt\" (a string, may be a template)\n"
            "/nodes/g/params/schema/type: unknown type \"strung\": expected null, boolean, object, array, number, "
            "integer or string\n"
            "/nodes/g/params/timeout_action: timeout_action needs the node's \"timeout\" (milliseconds)");
}
END_TEST

START_TEST(test_references_are_checked_against_what_can_exist) {
    refused("{\"name\": \"r\", \"params\": {\"api\": \"http://x\"}, \"start\": \"a\", \"nodes\": {"
            " \"a\": {\"type\": \"http\", \"params\": {\"url\": \"{{$params/api}}/{{$params/path}}\","
            "        \"headers\": {\"X-Item\": \"$item/id\", \"X-Who\": \"$sharde/who\"}}}}}",
            "/nodes/a/params/url: $params/path is not a param this flow declares (its \"params\")\n"
            "/nodes/a/params/headers/X-Item: $item is not available here\n"
            "/nodes/a/params/headers/X-Who: unknown root \"$sharde\": expected $shared, $params or $item (a "
            "literal \"$\" is written \"$$\")");
    /* in the pointer templates of set's keys and of out's members too */
    refused("{\"name\": \"r\", \"start\": \"a\", \"nodes\": {"
            " \"a\": {\"type\": \"set\", \"params\": {\"/p/{{$params/slot}}\": 1},"
            "        \"next\": {\"default\": \"b\"}},"
            " \"b\": {\"type\": \"sleep\", \"params\": {\"seconds\": 0},"
            "        \"out\": {\"/q/{{$params/slot}}\": \"\"}}}}",
            "/nodes/a/params/~1p~1{{$params~1slot}}: $params/slot is not a param this flow "
            "declares "
            "(its \"params\")\n"
            "/nodes/b/out/~1q~1{{$params~1slot}}: $params/slot is not a param this flow declares "
            "(its \"params\")");
}
END_TEST

/* References where a document names something (a test's pattern, an action) would be read as
 * text: they are refused, never taken literally. */
START_TEST(test_references_that_would_be_text_are_refused) {
    refused(
        "{\"name\": \"r\", \"start\": \"a\", \"nodes\": {"
        " \"a\": {\"type\": \"choice\", \"params\": {\"value\": \"$shared/v\", \"default\": "
        "\"$shared/d\","
        "        \"cases\": [{\"matches\": \"$shared/re\", \"action\": \"x\"},"
        "                  {\"eq\": \"$shared/b\", \"action\": \"{{$shared/next}}\"},"
        "                  {\"in\": \"$sharde/list\", \"action\": \"y\"},"
        "                  {\"lt\": {\"a\": 1}, \"action\": \"z\"}]},"
        "        \"next\": {\"x\": \"b\", \"y\": \"b\", \"z\": \"b\"}},"
        " \"b\": {\"type\": \"input\", \"timeout\": 10, \"params\": {\"prompt\": \"?\","
        "        \"actions\": {\"yes\": \"$shared/a\"}, \"timeout_action\": \"$shared/t\"}}}}",
        "/nodes/a/params/cases/0: matches takes a pattern written out: \"$shared/re\" would not be "
        "read as "
        "a reference\n"
        "/nodes/a/params/cases/1: an action is a name written out: \"{{$shared/next}}\" would not "
        "be read "
        "as a reference\n"
        "/nodes/a/params/cases/2/in: unknown root \"$sharde\": expected $shared, $params or $item "
        "(a "
        "literal \"$\" is written \"$$\")\n"
        "/nodes/a/params/cases/3: lt compares with a number or a string\n"
        "/nodes/a/params/default: an action is a name written out: \"$shared/d\" would not be read "
        "as a "
        "reference\n"
        "/nodes/b/params/actions/yes: an action is a name written out: \"$shared/a\" would not be "
        "read as a reference\n"
        "/nodes/b/params/timeout_action: an action is a name written out: \"$shared/t\" would not be "
        "read as a reference");
}
END_TEST

START_TEST(test_out_objects_are_checked) {
    refused("{\"name\": \"o\", \"start\": \"a\", \"nodes\": {"
            " \"a\": {\"type\": \"sleep\", \"params\": {\"seconds\": 0}, \"out\": {},"
            "        \"next\": {\"default\": \"b\"}},"
            " \"b\": {\"type\": \"sleep\", \"params\": {\"seconds\": 0}, \"next\": {\"default\": "
            "\"c\"},"
            "        \"out\": {\"answer\": \"/text\", \"/a~2\": \"\", \"/x/{{$sharde/k}}\": \"\","
            "                \"/ok\": \"$shared/p\", \"/n\": 3, \"/fine\": \"\","
            "                \"/also/{{$shared/k}}\": \"/usage/total_tokens\"}},"
            " \"c\": {\"type\": \"noop\", \"out\": {\"/a\": \"\"}}}}",
            "/nodes/a/out: out as an object maps pointers into the shared store to parts of the "
            "result, "
            "such as {\"/answer\": \"/text\"}: it needs a member\n"
            "/nodes/b/out/answer: \"answer\" is not a JSON Pointer into the shared store (such as "
            "\"/answer\")\n"
            "/nodes/b/out/~1a~02: \"/a~2\" is not a JSON Pointer into the shared store (such as "
            "\"/answer\")\n"
            "/nodes/b/out/~1x~1{{$sharde~1k}}: column 6: unknown root \"$sharde\": expected "
            "$shared, "
            "$params or $item\n"
            "/nodes/b/out/~1ok: a part of the result is a JSON Pointer into it, written out (such "
            "as "
            "\"/text\", or \"\" for the whole result)\n"
            "/nodes/b/out/~1n: a part of the result is a JSON Pointer into it, written out (such "
            "as "
            "\"/text\", or \"\" for the whole result)\n"
            "/nodes/c/out: a node of type noop has no result to store");
}
END_TEST

START_TEST(test_llm_parse_and_schema_are_checked) {
    refused("{\"name\": \"l\", \"start\": \"a\", \"nodes\": {"
            " \"a\": {\"type\": \"llm\", \"params\": {\"prompt\": \"p\", \"parse\": \"xml\"},"
            "        \"next\": {\"default\": \"b\"}},"
            " \"b\": {\"type\": \"llm\", \"params\": {\"prompt\": \"p\", \"schema\": {\"type\": "
            "\"object\"}},"
            "        \"next\": {\"default\": \"c\"}},"
            " \"c\": {\"type\": \"llm\", \"params\": {\"prompt\": \"p\", \"json\": true, "
            "\"parse\": \"yaml\"},"
            "        \"next\": {\"default\": \"d\"}},"
            " \"d\": {\"type\": \"llm\", \"params\": {\"prompt\": \"p\", \"parse\": "
            "\"$params/how\","
            "        \"schema\": {\"type\": \"strung\", \"const\": \"$shared/x\"}}}}}",
            "/nodes/a/params/parse: parse is \"json\" or \"yaml\", written out\n"
            "/nodes/b/params/schema: schema checks the parsed answer: give \"parse\" (\"json\" or "
            "\"yaml\")\n"
            "/nodes/c/params/parse: json true asks the model for JSON: parse it as \"json\"\n"
            "/nodes/d/params/parse: $params/how is not a param this flow declares (its "
            "\"params\")\n"
            "/nodes/d/params/parse: parse is \"json\" or \"yaml\", written out\n"
            "/nodes/d/params/schema/type: unknown type \"strung\": expected null, boolean, object, "
            "array, "
            "number, integer or string");
}
END_TEST

START_TEST(test_map_nodes_are_checked) {
    refused("{\"name\": \"m\", \"start\": \"a\", \"nodes\": {"
            " \"a\": {\"type\": \"map\", \"items\": \"urls\", \"limit\": -1, \"node\": {\"type\": \"http\","
            "        \"params\": {\"url\": \"$item\"}}, \"next\": {\"default\": \"b\"}},"
            " \"b\": {\"type\": \"map\", \"items\": \"$shared/x\", \"node\": {\"type\": \"set\", \"params\": {\"/a\": 1}},"
            "        \"next\": {\"default\": \"c\"}},"
            " \"c\": {\"type\": \"map\", \"items\": \"$shared/x\"}}}",
            "/nodes/a/items: map needs \"items\": a reference to an array, such as \"$shared/urls\"\n"
            "/nodes/a/limit: limit is how many items run at once, 0 (no limit) to 1000000\n"
            "/nodes/b/node/type: a map runs per item a node of type sleep, http, llm or lua, not \"set\"\n"
            "/nodes/c: map needs \"node\" (what runs per item) or \"flow\" (a sub-flow per item), one of them");
}
END_TEST

START_TEST(test_sub_flows_are_checked_and_inlined) {
    flow_def_t *def = NULL;
    const char *text =
        "{\"name\": \"outer\", \"start\": \"all\", \"nodes\": {"
        " \"all\": {\"type\": \"map\", \"items\": \"$shared/urls\", \"flow\": \"one\", \"limit\": 2,"
        "          \"next\": {\"default\": \"again\"}},"
        " \"again\": {\"type\": \"flow\", \"flow\": \"one\", \"params\": {\"item\": \"$shared/first\"}}},"
        " \"flows\": {\"one\": {\"params\": {\"lang\": \"en\"}, \"start\": \"get\", \"nodes\": {"
        "   \"get\": {\"type\": \"http\", \"params\": {\"url\": \"{{$params/item}}?l={{$params/lang}}\"},"
        "            \"out\": \"/pages/{{$params/item}}\"}}}}}";
    ck_assert_str_eq(load(text, &def), "");
    ck_assert_ptr_nonnull(flow_def_find(def, "all/get"));
    ck_assert_ptr_nonnull(flow_def_find(def, "again/get"));
    flow_node_t *all = flow_def_find(def, "all");
    ck_assert_int_eq(flow_node_kind(all), FLOW_PARALLEL_BATCH_FLOW);
    ck_assert_uint_eq(flow_node_limit(all), 2);
    ck_assert_ptr_eq(flow_node_start(all), flow_def_find(def, "all/get"));
    tu_assert_json("sub-flow defaults", flow_node_params(all), "{\"lang\": \"en\"}");
    flow_def_unref(def);

    /* index exists only in a map's runs, so the flow node's use of the sub-flow is refused */
    refused("{\"name\": \"outer\", \"start\": \"all\", \"nodes\": {"
            " \"all\": {\"type\": \"map\", \"items\": \"$shared/urls\", \"flow\": \"one\", \"next\": {\"default\": \"again\"}},"
            " \"again\": {\"type\": \"flow\", \"flow\": \"one\", \"next\": {\"default\": \"third\"}},"
            " \"third\": {\"type\": \"flow\", \"flow\": \"one\", \"next\": {\"x\": \"fourth\"}},"
            " \"fourth\": {\"type\": \"flow\", \"flow\": \"missing\"}},"
            " \"flows\": {\"one\": {\"start\": \"get\", \"nodes\": {"
            "   \"get\": {\"type\": \"sleep\", \"params\": {\"seconds\": 0}, \"out\": \"/p/{{$params/index}}\"}}},"
            "            \"unused\": {\"start\": \"z\", \"nodes\": {\"z\": {\"type\": \"noop\"}}}}}",
            "/flows/one/nodes/get/out: $params/index is not a param this flow declares (its \"params\")\n"
            "/nodes/fourth/flow: no flow \"missing\" in this document's \"flows\" or on this server\n"
            "/flows/unused: flow unused is never used by a flow or map node");
}
END_TEST

START_TEST(test_a_flow_cannot_contain_itself) {
    refused("{\"name\": \"loop\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"flow\", \"flow\": \"s\"}},"
            " \"flows\": {\"s\": {\"start\": \"b\", \"nodes\": {\"b\": {\"type\": \"flow\", \"flow\": \"s\"}}}}}",
            "/flows/s/nodes/b/flow: flow \"s\" would contain itself");
}
END_TEST

START_TEST(test_a_registered_document_can_be_used_as_a_sub_flow) {
    flow_def_t *inner = NULL, *outer = NULL;
    ck_assert_str_eq(load("{\"name\": \"inner\", \"start\": \"x\", \"nodes\": {\"x\": {\"type\": \"noop\"}}}", &inner), "");
    ck_assert_int_eq(flow_registry_put_flow(reg, inner, NULL), 0);
    ck_assert_str_eq(load("{\"name\": \"outer\", \"start\": \"call\", \"nodes\": {\"call\": {\"type\": \"flow\", \"flow\": \"inner\"}}}",
                          &outer), "");
    ck_assert_ptr_nonnull(flow_def_find(outer, "call/x"));
    flow_def_unref(inner);
    flow_def_unref(outer);
}
END_TEST

/* "outbound": {"allow": [...]} is checked whole, each entry with its place; its http nodes (those
 * of maps and of the document's sub-flows too) get the list, and a flow of the server used inside
 * keeps its own document's list. */
START_TEST(test_a_documents_outbound_list_is_checked_and_given_to_its_http_nodes) {
    refused("{\"name\": \"o\", \"outbound\": {\"allow\": [\"127.1\", 8090, \"10.0.0.0/8\", \"[::1\", \"$shared/h\"]},"
            " \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}",
            "/outbound/allow/0: '127.1': write an IPv4 address as four decimal numbers, such as 127.0.0.1\n"
            "/outbound/allow/1: an entry is a string, such as \"api.example.com:443\"\n"
            "/outbound/allow/3: '[::1': a '[' without its ']'\n"
            "/outbound/allow/4: '$shared/h': not a host name, an address or a CIDR block (names are letters, "
            "digits, '-', '_' and dots; '*.' may start one)");
    refused("{\"name\": \"o\", \"outbound\": [\"127.0.0.1\"], \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}",
            "/outbound: outbound is {\"allow\": [...]}, a list of entries such as \"api.example.com:443\", "
            "\"10.0.0.0/8\" or \"[::1]:9000\"");
    refused("{\"name\": \"o\", \"outbound\": {\"allow\": [], \"deny\": []}, \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}",
            "/outbound/deny: unknown member \"deny\" of outbound");
    refused("{\"name\": \"o\", \"outbound\": {}, \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"noop\"}}}",
            "/outbound/allow: outbound is {\"allow\": [...]}, a list of entries such as \"api.example.com:443\", "
            "\"10.0.0.0/8\" or \"[::1]:9000\"");

    flow_def_t *inner = NULL, *def = NULL;
    ck_assert_str_eq(load("{\"name\": \"inner\", \"outbound\": {\"allow\": [\"10.0.0.1:80\"]}, \"start\": \"i\","
                          " \"nodes\": {\"i\": {\"type\": \"http\", \"params\": {\"url\": \"http://10.0.0.1/\"}}}}",
                          &inner),
                     "");
    ck_assert_int_eq(flow_registry_put_flow(reg, inner, NULL), 0);
    ck_assert_str_eq(load("{\"name\": \"o\", \"outbound\": {\"allow\": [\"127.0.0.1:8090\", \"api.example.com\"]},"
                          " \"start\": \"a\", \"nodes\": {"
                          " \"a\": {\"type\": \"http\", \"params\": {\"url\": \"http://x/\"}, \"next\": {\"default\": \"m\"}},"
                          " \"m\": {\"type\": \"map\", \"items\": \"$shared/u\", \"node\": {\"type\": \"http\","
                          "        \"params\": {\"url\": \"$item\"}}, \"next\": {\"default\": \"s\"}},"
                          " \"s\": {\"type\": \"flow\", \"flow\": \"sub\", \"next\": {\"default\": \"r\"}},"
                          " \"r\": {\"type\": \"flow\", \"flow\": \"inner\"}},"
                          " \"flows\": {\"sub\": {\"start\": \"b\", \"nodes\": {"
                          "  \"b\": {\"type\": \"http\", \"params\": {\"url\": \"http://y/\"}}}}}}",
                          &def),
                     "");
    static const struct {
        const char *node;
        const char *first; /* the first entry of its list, NULL: none */
    } nodes[] = {{"a", "127.0.0.1:8090"}, {"m", "127.0.0.1:8090"}, {"s/b", "127.0.0.1:8090"}, {"r/i", "10.0.0.1:80"}};
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
        const flow__jnode_t *n = flow_node_data(flow_def_find(def, nodes[i].node));
        ck_assert_ptr_nonnull(n);
        ck_assert_str_eq(flow_netrules_entry(n->outbound, 0), nodes[i].first);
    }
    flow_def_unref(def);
    /* the same inner flow in a document without a list: still its own */
    ck_assert_str_eq(load("{\"name\": \"p\", \"start\": \"r\", \"nodes\": {\"r\": {\"type\": \"flow\", \"flow\": \"inner\","
                          " \"next\": {\"default\": \"q\"}}, \"q\": {\"type\": \"http\", \"params\": {\"url\": \"http://z/\"}}}}",
                          &def),
                     "");
    ck_assert_str_eq(flow_netrules_entry(((flow__jnode_t *)flow_node_data(flow_def_find(def, "r/i")))->outbound, 0),
                     "10.0.0.1:80");
    ck_assert_ptr_null(((flow__jnode_t *)flow_node_data(flow_def_find(def, "q")))->outbound);
    flow_def_unref(def);
    flow_def_unref(inner);
}
END_TEST

/* A server that does not take a flow's own list (flowd --flow-outbound off) refuses such documents. */
START_TEST(test_a_server_may_refuse_documents_with_their_own_outbound_list) {
    flow_registry_free(reg);
    env.no_flow_outbound = 1;
    setup();
    refused("{\"name\": \"o\", \"outbound\": {\"allow\": [\"127.0.0.1:8090\"]}, \"start\": \"a\","
            " \"nodes\": {\"a\": {\"type\": \"noop\"}}}",
            "/outbound: this server does not take a flow's own outbound allow list (flowd --flow-outbound off): "
            "its operator allows addresses with --allow-outbound");
    env.no_flow_outbound = 0;
}
END_TEST

START_TEST(test_problems_in_a_file_say_file_line_and_column) {
    char path[] = "/tmp/flowdocXXXXXX";
    int fd = mkstemp(path);
    const char *text = "{\n"
                       "  \"name\": \"f\",\n"
                       "  \"start\": \"a\",\n"
                       "  \"nodes\": {\n"
                       "    \"a\": {\"type\": \"htp\"}\n"
                       "  }\n"
                       "}\n";
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    flow_problems_t p = FLOW_PROBLEMS_INIT;
    flow_def_t *def = NULL;
    ck_assert_int_eq(flow_doc_load_file(reg, path, &def, &p), FLOW_ELOAD);
    char want[512];
    snprintf(want, sizeof want, "%s:5:19: /nodes/a/type: unknown node type \"htp\" (the types are noop, sleep, set, "
                                "choice, fail, input, http, llm, lua, map, flow)", path);
    tu_assert_problems("file problems", &p, want);
    flow_problems_clear(&p);

    fd = open(path, O_WRONLY | O_TRUNC);
    const char *broken = "{\n  \"name\": \"f\",\n  \"start\" \"a\"\n}\n";
    ck_assert_int_eq(write(fd, broken, strlen(broken)), (ssize_t)strlen(broken));
    close(fd);
    ck_assert_int_eq(flow_doc_load_file(reg, path, &def, &p), FLOW_ELOAD);
    snprintf(want, sizeof want, "%s:3:13: ':' expected near '\"a\"'", path);
    tu_assert_problems("syntax error", &p, want);
    flow_problems_clear(&p);
    unlink(path);
    ck_assert_int_eq(flow_doc_load_file(reg, path, &def, &p), FLOW_EIO);
    flow_problems_clear(&p);
}
END_TEST

/* The params check reads references exactly as templates do: a "~" at the end of a pointer is a
 * malformed pointer (it used to be read past, echoing heap bytes in the message), literal "{{{{"
 * text holds no reference, a whole-string reference names the member up to the next "/", blanks
 * included, and a NUL inside a string does not hide what follows it. */
START_TEST(test_param_references_are_read_as_templates_read_them) {
    refused("{\"name\": \"t\", \"params\": {\"a\": 1}, \"start\": \"s\", \"nodes\": {"
            " \"s\": {\"type\": \"set\", \"params\": {\"/x\": \"$params/~\", \"/y\": \"{{$params/a~}}\","
            "        \"/z\": \"{{ $params/~2 | url }}\"}}}}",
            "/nodes/s/params/~1x: malformed pointer \"/~\": \"~\" must be followed by \"0\" or \"1\"\n"
            "/nodes/s/params/~1y: column 12: malformed pointer \"/a~\": \"~\" must be followed by \"0\" or \"1\"\n"
            "/nodes/s/params/~1z: column 12: malformed pointer \"/~2\": \"~\" must be followed by \"0\" or \"1\"");
    refused("{\"name\": \"t\", \"params\": {\"a\": 1}, \"start\": \"s\", \"nodes\": {"
            " \"s\": {\"type\": \"set\", \"params\": {\"/x\": \"$params/b c/d\", \"/y\": \"x\\u0000{{$params/nul}}\","
            "        \"/z\": \"{{{{$params/literal}}\", \"/w\": \"$params/a~1b\"}}}}",
            "/nodes/s/params/~1x: $params/b c is not a param this flow declares (its \"params\")\n"
            "/nodes/s/params/~1y: $params/nul is not a param this flow declares (its \"params\")\n"
            "/nodes/s/params/~1w: $params/a~1b is not a param this flow declares (its \"params\")");
    flow_def_t *def = NULL;
    ck_assert_str_eq(load("{\"name\": \"t\", \"params\": {\"b c\": 1, \"a/b\": 2, \"~\": 3}, \"start\": \"s\","
                          " \"nodes\": {\"s\": {\"type\": \"set\", \"params\": {\"/x\": \"$params/b c\","
                          " \"/y\": \"{{ $params/a~1b }}\", \"/z\": \"$params/~0/deeper\", \"/w\": \"{{{{$params/q}}\"}}}}",
                          &def), "");
    flow_def_unref(def);
}
END_TEST

START_TEST(test_flow_names_have_one_alphabet) {
    static const char *const good[] = {"a", "Z", "0", "recipe", "a.b", "v1.2-beta_3", "a..b"};
    static const char *const bad[] = {
        "", ".", "..", ".a", "-a", "_a", "a b", "a/b", "a%00b", "caf\xc3\xa9",
        "a1234567890123456789012345678901234567890123456789012345678901234"}; /* 65 */
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(flow_doc_name_ok(good[i], strlen(good[i])), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!flow_doc_name_ok(bad[i], strlen(bad[i])), "%s", bad[i]);
    ck_assert(!flow_doc_name_ok("ab\0cd", 5)); /* a NUL does not end it early */
    ck_assert(flow_doc_name_ok("ab\0cd", 2));
}
END_TEST

static Suite *doc_suite(void) {
    Suite *s = suite_create("doc");
    TCase *tc = tcase_create("doc");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_a_good_document_becomes_a_definition);
    tcase_add_test(tc, test_every_problem_is_reported_at_once_with_its_place);
    tcase_add_test(tc, test_the_document_itself_is_checked);
    tcase_add_test(tc, test_nodes_and_their_common_members_are_checked);
    tcase_add_test(tc, test_params_of_each_type_are_checked);
    tcase_add_test(tc, test_references_are_checked_against_what_can_exist);
    tcase_add_test(tc, test_references_that_would_be_text_are_refused);
    tcase_add_test(tc, test_out_objects_are_checked);
    tcase_add_test(tc, test_llm_parse_and_schema_are_checked);
    tcase_add_test(tc, test_map_nodes_are_checked);
    tcase_add_test(tc, test_sub_flows_are_checked_and_inlined);
    tcase_add_test(tc, test_a_flow_cannot_contain_itself);
    tcase_add_test(tc, test_a_registered_document_can_be_used_as_a_sub_flow);
    tcase_add_test(tc, test_problems_in_a_file_say_file_line_and_column);
    tcase_add_test(tc, test_param_references_are_read_as_templates_read_them);
    tcase_add_test(tc, test_a_documents_outbound_list_is_checked_and_given_to_its_http_nodes);
    tcase_add_test(tc, test_a_server_may_refuse_documents_with_their_own_outbound_list);
    tcase_add_test(tc, test_flow_names_have_one_alphabet);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(doc_suite());
}
