/* test_cli.c: a user's loop without a server. flowd check prints every problem of the documents it
 * is given, with file, line and column, and exits non-zero on any; flowd run runs one job in the
 * process, prints its steps and its shared store, takes input answers from stdin, and reads the
 * server's flags (here the llm settings, against the mock as the model). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "e2e.h"
#include "support/mock.h"

static char dir[64];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/flowd-cli-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static const char *path_of(const char *name) {
    static char paths[4][160];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 160, "%s/%s", dir, name);
    return p;
}

static void has(const char *out, const char *text) {
    ck_assert_msg(strstr(out, text) != NULL, "no \"%s\" in:\n%s", text, out);
}

static const char good_doc[] =
    "{\"name\": \"good\", \"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"set\", \"params\": {\"/x\": 1}}}}";

/* Four problems on three lines, and a file that is not JSON at all. */
static const char bad_doc[] =
    "{\"name\": \"bad\", \"start\": \"fetch\", \"nodes\": {\n"
    "  \"fetch\": {\"type\": \"htp\", \"next\": {\"default\": \"ask\"}},\n"
    "  \"ask\": {\"type\": \"llm\", \"params\": {\"prompt\": \"{{$params/modle}}\", \"parse\": \"xml\"},\n"
    "          \"next\": {\"retry\": \"sugest\"}}\n"
    "}}\n";

START_TEST(test_check_prints_every_problem_and_fails) {
    e2e_write_file(dir, "good.json", good_doc);
    e2e_write_file(dir, "bad.json", bad_doc);
    e2e_write_file(dir, "broken.json", "{\"name\": \"broken\",\n \"start\": }");
    char *out = NULL;
    const char *args[] = {"check", path_of("good.json"), path_of("bad.json"), path_of("broken.json"),
                          path_of("missing.json"), NULL};
    ck_assert_int_eq(e2e_run(args, &out), 1);
    char line[512];
    snprintf(line, sizeof line, "%s: ok, flow good", path_of("good.json"));
    has(out, line);
    snprintf(line, sizeof line, "%s:2:21: /nodes/fetch/type: unknown node type \"htp\"", path_of("bad.json"));
    has(out, line);
    snprintf(line, sizeof line,
             "%s:3:47: /nodes/ask/params/prompt: $params/modle is not a param this flow declares",
             path_of("bad.json"));
    has(out, line);
    snprintf(line, sizeof line, "%s:3:77: /nodes/ask/params/parse: parse is \"json\" or \"yaml\"",
             path_of("bad.json"));
    has(out, line);
    snprintf(line, sizeof line, "%s:4:29: /nodes/ask/next/retry: no node \"sugest\" in this flow",
             path_of("bad.json"));
    has(out, line);
    snprintf(line, sizeof line, "%s: 4 problems", path_of("bad.json"));
    has(out, line);
    snprintf(line, sizeof line, "%s:2:11: ", path_of("broken.json"));
    has(out, line);
    snprintf(line, sizeof line, "%s: cannot open: No such file or directory", path_of("missing.json"));
    has(out, line);
    has(out, "3 of 4 documents have problems");
    free(out);
    /* all good: 0 */
    const char *ok_args[] = {"check", path_of("good.json"), NULL};
    ck_assert_int_eq(e2e_run(ok_args, &out), 0);
    free(out);
    /* a bad command line: 2, and what is wrong */
    const char *bad_args[] = {"check", NULL};
    ck_assert_int_eq(e2e_run(bad_args, &out), 2);
    has(out, "flowd check: no FILE to check");
    free(out);
    const char *flag_args[] = {"check", path_of("good.json"), "--max-jobs", "zero", NULL};
    ck_assert_int_eq(e2e_run(flag_args, &out), 2);
    has(out, "flowd check: --max-jobs: 'zero' is not valid");
    free(out);
}
END_TEST

/* A person's answers come from stdin, a line each: one refused by the node's schema is asked for
 * again, one refused by its actions too; "Ada" is JSON, x is taken as the string "x". */
static const char ask_doc[] =
    "{\"name\": \"ask\", \"start\": \"name\", \"nodes\": {"
    " \"name\": {\"type\": \"input\", \"params\": {\"prompt\": \"Your name, {{$shared/who}}?\","
    "   \"schema\": {\"type\": \"string\", \"minLength\": 2}}, \"out\": \"/name\", \"next\": {\"default\": \"ok\"}},"
    " \"ok\": {\"type\": \"input\", \"params\": {\"prompt\": \"Go on?\", \"actions\": {\"yes\": \"go\", \"no\": \"stop\"}},"
    "   \"next\": {\"go\": \"done\", \"stop\": null}},"
    " \"done\": {\"type\": \"set\", \"params\": {\"/greeting\": \"Hello, {{$shared/name}}!\"}}}}";

START_TEST(test_run_answers_inputs_from_stdin) {
    e2e_write_file(dir, "ask.json", ask_doc);
    char *out = NULL;
    const char *args[] = {"run", path_of("ask.json"), "--shared", "{\"who\": \"stranger\"}", NULL};
    ck_assert_int_eq(e2e_run_input(args, "x\n\"Ada\"\nmaybe\nyes\n", &out), 0);
    has(out, "input for name: Your name, stranger?");
    has(out, "refused: the answer does not meet the schema: must be at least 2 characters long");
    has(out, "step 1 name -> ok (default, 1 try");
    has(out, "input for ok: Go on? [\"yes\",\"no\"]");
    has(out, "refused: the answer must be one of \"yes\", \"no\"");
    has(out, "step 2 ok -> done (go, 1 try");
    has(out, "step 3 done -> end (default, 1 try");
    has(out, "succeeded after 3 steps");
    has(out, "\"greeting\": \"Hello, Ada!\"");
    free(out);
    /* an answer longer than --max-body, as the API would refuse it */
    char input[256];
    snprintf(input, sizeof input, "%0100d\n\"Ada\"\nyes\n", 0);
    const char *capped[] = {"run",       path_of("ask.json"), "--shared", "{\"who\": \"you\"}",
                            "--max-body", "64",               NULL};
    ck_assert_int_eq(e2e_run_input(capped, input, &out), 0);
    has(out, "refused: an answer is at most 64 bytes (--max-body)");
    has(out, "\"name\": \"Ada\"");
    free(out);
    /* stdin ends while a node waits: the job is canceled and flowd says why */
    ck_assert_int_eq(e2e_run_input(args, "\"Ada\"\n", &out), 1);
    has(out, "flowd run: the job canceled: standard input ended while ok waited for an answer");
    free(out);
}
END_TEST

/* The llm settings are the server's flags; the model (the mock) answers in a YAML fence. A job that
 * fails exits 1 with its error, and still prints its shared store. */
static const char decide_doc[] =
    "{\"name\": \"decide\", \"start\": \"think\", \"nodes\": {"
    " \"think\": {\"type\": \"llm\", \"params\": {\"prompt\": \"What next? {{$shared/q}}\", \"parse\": \"yaml\","
    "   \"schema\": {\"type\": \"object\", \"required\": [\"action\"]}}, \"max_retries\": 2,"
    "   \"out\": {\"/decision\": \"/data\"}, \"next\": {\"default\": \"route\"}},"
    " \"route\": {\"type\": \"choice\", \"params\": {\"value\": \"$shared/decision/action\","
    "   \"cases\": [{\"eq\": \"search\", \"action\": \"search\"}]}, \"next\": {\"search\": \"stop\"}},"
    " \"stop\": {\"type\": \"fail\", \"params\": {\"message\": \"no search here: {{$shared/decision/query}}\"}}}}";

START_TEST(test_run_uses_the_servers_flags_and_fails_with_the_job) {
    mock_t *mock = NULL;
    ck_assert_int_eq(mock_start(NULL, &mock), 0);
    const char *answers[] = {"no YAML mapping here", "```yaml\naction: search\nquery: \"nobel 2024\"\n```"};
    ck_assert_int_eq(mock_script(mock, answers, 2), 0);
    e2e_write_file(dir, "decide.json", decide_doc);
    char base[64], *out = NULL;
    snprintf(base, sizeof base, "http://127.0.0.1:%u/v1", (unsigned)mock_port(mock));
    const char *args[] = {"run", path_of("decide.json"), "--shared", "{\"q\": \"prizes\"}", "--llm-base-url", base,
                          "--llm-model", "mock", NULL};
    ck_assert_int_eq(e2e_run(args, &out), 1);
    has(out, "retry think: try 1 failed (invalid_argument: llm mock: the answer does not fit the schema");
    has(out, "step 1 think -> route (default, 2 tries");
    has(out, "step 2 route -> stop (search, 1 try");
    has(out, "step 3 stop failed (node_failed: no search here: nobel 2024)");
    has(out, "flowd run: the job failed: at stop: no search here: nobel 2024");
    has(out, "\"decision\": {\n    \"action\": \"search\",\n    \"query\": \"nobel 2024\"\n  }");
    free(out);
    /* a --shared that is not an object: 2 */
    const char *bad[] = {"run", path_of("decide.json"), "--shared", "[1]", NULL};
    ck_assert_int_eq(e2e_run(bad, &out), 2);
    has(out, "flowd run: --shared: a JSON object");
    free(out);
    mock_stop(mock);
}
END_TEST

static Suite *cli_suite(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_check_prints_every_problem_and_fails);
    tcase_add_test(tc, test_run_answers_inputs_from_stdin);
    tcase_add_test(tc, test_run_uses_the_servers_flags_and_fails_with_the_job);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(cli_suite());
}
