/* test_lua_examples.c: the PocketFlow examples of examples/flows written with Lua (agent, chat, resumes)
 * over HTTP, the way the README drives them with curl, against the mock as their search API and
 * model (tests/support/mock_model.h has the mock's rules). Each checks what the Lua computed, not
 * only that the job ended. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e.h"
#include "support/mock.h"

static e2e_server_t srv;
static mock_t *mock;
static char llm_url[128], api_url[64], mock_addr[32];

static void setup(void) {
    ck_assert_int_eq(mock_start(NULL, &mock), 0);
    snprintf(mock_addr, sizeof mock_addr, "127.0.0.1:%u", (unsigned)mock_port(mock));
    snprintf(api_url, sizeof api_url, "http://%s", mock_addr);
    snprintf(llm_url, sizeof llm_url, "%s/v1", api_url);
    e2e_start(&srv, "--flows", "examples/flows", "--llm-base-url", llm_url, "--llm-model", "mock",
              "--allow-outbound", mock_addr, NULL);
}

static void teardown(void) {
    ck_assert_int_eq(e2e_stop(&srv, 10000), 0);
    e2e_cleanup(&srv);
    mock_stop(mock);
    mock = NULL;
}

static const char *str(json_t *obj, const char *key) {
    return json_string_value(json_object_get(obj, key));
}

static json_t *get(const char *fmt, const char *id) {
    char path[160];
    snprintf(path, sizeof path, fmt, id);
    return e2e_get_json(&srv, path);
}

/* The text of a file of the source tree, to free(). */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    ck_assert_int_ge(len, 0);
    rewind(f);
    char *text = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(fread(text, 1, (size_t)len, f), (size_t)len);
    text[len] = '\0';
    fclose(f);
    return text;
}

START_TEST(test_the_agent_searches_then_answers) {
    char body[512];
    snprintf(body, sizeof body,
             "{\"flow\": \"agent\", \"shared\": {\"question\": \"Who won the Nobel Prize in Physics "
             "2024?\"}, \"params\": {\"search_api\": \"%s\"}}", api_url);
    json_t *job = e2e_start_job(&srv, body);
    const char *id = str(job, "id");
    json_decref(e2e_wait_status(&srv, id, "succeeded", 20000));

    json_t *shared = get("/v1/jobs/%s/shared", id);
    const char *answer = str(shared, "answer");
    ck_assert_ptr_nonnull(answer);
    ck_assert_msg(strstr(answer, "John Hopfield and Geoffrey Hinton") != NULL, "answer: %s", answer);
    ck_assert_msg(strstr(answer, "(source: Nobel Prize in Physics 2024)") != NULL, "answer: %s", answer);
    json_t *research = json_object_get(shared, "research");
    ck_assert_uint_eq(json_array_size(research), 1);
    ck_assert_str_eq(str(json_array_get(research, 0), "query"), "Who won the Nobel Prize in Physics 2024?");
    json_t *results = json_object_get(json_array_get(research, 0), "results");
    ck_assert_uint_eq(json_array_size(results), 2); /* the physics and chemistry prizes */
    ck_assert_str_eq(str(json_array_get(results, 0), "title"), "Nobel Prize in Physics 2024");

    /* decide -> search -> decide -> answer, with the Lua's log lines in the steps */
    json_t *history = get("/v1/jobs/%s/history", id);
    json_t *steps = json_object_get(history, "steps");
    static const char *const nodes[] = {"decide", "search", "decide", "answer"};
    static const char *const actions[] = {"search", "decide", "answer", "default"};
    ck_assert_uint_eq(json_array_size(steps), 4);
    for (size_t i = 0; i < 4; i++) {
        ck_assert_str_eq(str(json_array_get(steps, i), "node"), nodes[i]);
        ck_assert_str_eq(str(json_array_get(steps, i), "action"), actions[i]);
    }
    const char *line = json_string_value(json_array_get(json_object_get(json_array_get(steps, 1), "logs"), 0));
    ck_assert_ptr_nonnull(line);
    ck_assert_str_eq(line, "2 results for Who won the Nobel Prize in Physics 2024?");
    /* each visit of decide asked anew: four requests, four Idempotency-Keys */
    mock_stats_t st;
    mock_stats(mock, &st);
    ck_assert_uint_eq(st.idempotency_keys, 4);
    ck_assert_uint_eq(st.routes[MOCK_SEARCH], 1);
    json_decref(history);
    json_decref(shared);
    json_decref(job);
}
END_TEST

START_TEST(test_the_agent_without_a_question_fails_with_its_message) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"agent\", \"shared\": {}}");
    const char *id = str(job, "id");
    json_t *done = e2e_wait_status(&srv, id, "failed", 10000);
    json_t *err = json_object_get(done, "error");
    ck_assert_str_eq(str(err, "code"), "script_error");
    ck_assert_str_eq(str(err, "node"), "decide");
    ck_assert_msg(strstr(str(err, "message"), "the job needs a question") != NULL, "%s", str(err, "message"));
    mock_stats_t st;
    mock_stats(mock, &st);
    ck_assert_uint_eq(st.routes[MOCK_CHAT], 0);
    json_decref(done);
    json_decref(job);
}
END_TEST

START_TEST(test_resumes_map_then_reduce_in_lua) {
    char *body = slurp("examples/jobs/resumes.json");
    json_t *job = e2e_start_job(&srv, body);
    free(body);
    const char *id = str(job, "id");
    json_decref(e2e_wait_status(&srv, id, "succeeded", 20000));

    json_t *summary = get("/v1/jobs/%s/shared?pointer=/summary", id);
    ck_assert_int_eq(json_integer_value(json_object_get(summary, "total")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(summary, "qualified_count")), 3);
    json_t *names = json_object_get(summary, "qualified");
    static const char *const want[] = {"Alice Chen", "Carla Diaz", "Emma Okafor"};
    ck_assert_uint_eq(json_array_size(names), 3);
    for (size_t i = 0; i < 3; i++)
        ck_assert_str_eq(json_string_value(json_array_get(names, i)), want[i]);

    json_t *evaluations = get("/v1/jobs/%s/shared?pointer=/evaluations", id);
    ck_assert_uint_eq(json_array_size(evaluations), 5);
    json_t *dmitri = json_array_get(evaluations, 3);
    ck_assert_str_eq(str(dmitri, "file"), "resume4.txt");
    ck_assert_str_eq(str(dmitri, "candidate_name"), "Dmitri Volkov");
    ck_assert(json_is_false(json_object_get(dmitri, "qualifies")));
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(dmitri, "reasons"), 1)),
                     "names 1 year of experience, fewer than 3");
    mock_stats_t st;
    mock_stats(mock, &st);
    ck_assert_uint_eq(st.routes[MOCK_CHAT], 5);
    json_decref(evaluations);
    json_decref(summary);
    json_decref(job);
}
END_TEST

/* Waits until the chat waits for the person after more than `after` steps; returns the job. */
static json_t *wait_turn(const char *id, json_int_t after) {
    uint64_t deadline = e2e_now_ms() + e2e_ms(10000);
    for (;;) {
        json_t *job = e2e_wait_status(&srv, id, "waiting", 10000);
        if (json_integer_value(json_object_get(job, "steps")) > after)
            return job;
        json_decref(job);
        ck_assert_uint_lt(e2e_now_ms(), deadline);
        json_decref(get("/v1/jobs/%s?wait=1", id));
    }
}

static void say(const char *id, const char *text) {
    char path[128], body[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    snprintf(body, sizeof body, "{\"value\": \"%s\"}", text);
    e2e_resp_t r;
    e2e_post(&srv, path, body, &r);
    ck_assert_msg(r.status == 202, "say %s: %ld %s", text, r.status, r.body);
    e2e_resp_free(&r);
}

START_TEST(test_chat_sends_a_window_of_six_messages_and_keeps_them_all) {
    json_t *job = e2e_start_job(&srv, "{\"flow\": \"chat\"}");
    const char *id = str(job, "id");
    json_int_t steps = 0;
    char text[32], reply[64];

    json_t *turn = wait_turn(id, steps);
    ck_assert_str_eq(str(json_object_get(turn, "waiting_for"), "prompt"),
                     "Hello! What shall we talk about? (say bye to end)");
    for (int k = 1; k <= 5; k++) {
        steps = json_integer_value(json_object_get(turn, "steps"));
        json_decref(turn);
        snprintf(text, sizeof text, "message %d", k);
        say(id, text);
        turn = wait_turn(id, steps);
        snprintf(reply, sizeof reply, "mock answer to: message %d", k);
        ck_assert_str_eq(str(json_object_get(turn, "waiting_for"), "prompt"), reply);
    }
    json_decref(turn);

    /* the fifth request: the system prompt, turns 2 to 4 (six messages), then "message 5" */
    json_t *req = mock_last_chat(mock);
    json_t *messages = json_object_get(req, "messages");
    ck_assert_uint_eq(json_array_size(messages), 8);
    ck_assert_str_eq(str(json_array_get(messages, 0), "role"), "system");
    ck_assert_str_eq(str(json_array_get(messages, 1), "content"), "message 2");
    ck_assert_str_eq(str(json_array_get(messages, 2), "content"), "mock answer to: message 2");
    ck_assert_str_eq(str(json_array_get(messages, 7), "content"), "message 5");
    json_decref(req);

    say(id, " Bye ");
    json_t *done = e2e_wait_status(&srv, id, "succeeded", 10000);
    ck_assert_str_eq(str(done, "last_action"), "bye");
    json_t *kept = get("/v1/jobs/%s/shared?pointer=/messages", id);
    ck_assert_uint_eq(json_array_size(kept), 10);
    ck_assert_str_eq(str(json_array_get(kept, 0), "content"), "message 1");
    ck_assert_str_eq(str(json_array_get(kept, 9), "role"), "assistant");
    json_decref(kept);
    json_decref(done);
    json_decref(job);
}
END_TEST

static Suite *examples_suite(void) {
    Suite *s = suite_create("lua_examples");
    TCase *tc = tcase_create("lua_examples");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_the_agent_searches_then_answers);
    tcase_add_test(tc, test_the_agent_without_a_question_fails_with_its_message);
    tcase_add_test(tc, test_resumes_map_then_reduce_in_lua);
    tcase_add_test(tc, test_chat_sends_a_window_of_six_messages_and_keeps_them_all);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return e2e_main(examples_suite());
}
