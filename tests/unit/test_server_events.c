/* test_server_events.c: the event ring of a job (server/events.h) and the JSON writer every answer
 * is made with (server/jsonw.h), which must write what jansson writes. */
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "jsonw.h"
#include "support/json_util.h"

static char *dup_text(const char *s) {
    return strdup(s);
}

START_TEST(test_frames_after_an_id) {
    flowd_ring_t r;
    flow_buf_t b;
    int final;
    flowd_ring_init(&r, 10);
    flow_buf_init(&b, 0);
    ck_assert_int_eq(flowd_ring_push(&r, FLOW_EVENT_STATUS, 0, 0, "{\"status\":\"running\"}", 20, 1), 0);
    ck_assert_int_eq(flowd_ring_push(&r, FLOW_EVENT_STEP, 0, 1, dup_text("{\"seq\":1}"), 9, 0), 0);
    ck_assert_int_eq(flowd_ring_push(&r, FLOW_EVENT_STATUS, 1, 0, dup_text("{\"status\":\"succeeded\"}"), 22, 0), 0);
    ck_assert_uint_eq(flowd_ring_frames(&r, 0, &b, 1 << 20, &final), 3);
    ck_assert_int_eq(final, 1);
    ck_assert_str_eq(b.data, "id: 1\nevent: status\ndata: {\"status\":\"running\"}\n\n"
                             "id: 2\nevent: step\ndata: {\"seq\":1}\n\n"
                             "id: 3\nevent: status\ndata: {\"status\":\"succeeded\"}\n\n");
    b.len = 0;
    ck_assert_uint_eq(flowd_ring_frames(&r, 1, &b, 1 << 20, &final), 3);
    ck_assert(strncmp(b.data, "id: 2\n", 6) == 0);
    b.len = 0;
    ck_assert_uint_eq(flowd_ring_frames(&r, 1, &b, 1, &final), 2); /* up to max bytes, whole frames */
    ck_assert_int_eq(final, 0);
    b.len = 0;
    ck_assert_uint_eq(flowd_ring_frames(&r, 3, &b, 1 << 20, &final), 3); /* nothing new */
    ck_assert_uint_eq(b.len, 0);
    flow_buf_free(&b);
    flowd_ring_free(&r);
}
END_TEST

START_TEST(test_a_full_ring_drops_the_oldest_and_says_so) {
    flowd_ring_t r;
    flow_buf_t b;
    int final;
    flowd_ring_init(&r, 3);
    flow_buf_init(&b, 0);
    for (int i = 1; i <= 5; i++) {
        char data[32];
        snprintf(data, sizeof data, "{\"n\":%d}", i);
        ck_assert_int_eq(flowd_ring_push(&r, FLOW_EVENT_STEP, 0, (uint64_t)i, dup_text(data), strlen(data), 0), 0);
    }
    ck_assert_uint_eq(r.len, 3);
    ck_assert_uint_eq(flowd_ring_frames(&r, 0, &b, 1 << 20, &final), 5);
    ck_assert(strncmp(b.data, ": 2 earlier events are no longer kept\n\nid: 3\n", 45) == 0);
    b.len = 0;
    ck_assert_uint_eq(flowd_ring_frames(&r, 2, &b, 1 << 20, &final), 5); /* nothing missed */
    ck_assert(strncmp(b.data, "id: 3\n", 6) == 0);
    /* the history's steps: the last 3 are kept, the last 4 are not */
    flow_buf_t steps;
    flow_buf_init(&steps, 0);
    ck_assert_int_eq(flowd_ring_steps(&r, 3, &steps), 1);
    ck_assert_str_eq(steps.data, "{\"n\":3},{\"n\":4},{\"n\":5}");
    ck_assert_int_eq(flowd_ring_steps(&r, 4, NULL), 0);
    ck_assert_int_eq(flowd_ring_steps(&r, 0, NULL), 1);
    flow_buf_free(&steps);
    flow_buf_free(&b);
    flowd_ring_free(&r);
}
END_TEST

START_TEST(test_the_ring_grows_beyond_its_inline_slots) {
    flowd_ring_t r;
    flowd_ring_init(&r, 1000);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(flowd_ring_push(&r, FLOW_EVENT_STEP, 0, (uint64_t)i + 1, dup_text("{}"), 2, 0), 0);
    ck_assert_uint_eq(r.len, 100);
    ck_assert_uint_eq(r.next_id, 101);
    flowd_ring_free(&r);
}
END_TEST

/* The writer's pretty output is jansson's JSON_INDENT(2), its compact output JSON_COMPACT. */
static void assert_like_jansson(const char *text) {
    json_t *v = tu_json(text);
    char *compact = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    char *pretty = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    flow_buf_t b;
    flow_buf_init(&b, 0);
    flowd_reindent(&b, compact, strlen(compact), 2, 0);
    ck_assert_str_eq(b.data ? b.data : "", pretty);
    b.len = 0;
    flowd_jw_t w;
    flowd_jw_init(&w, &b, 0);
    flowd_jw_json(&w, v);
    ck_assert_str_eq(b.data, compact);
    flow_buf_free(&b);
    free(compact);
    free(pretty);
    json_decref(v);
}

START_TEST(test_reindent_is_jansson_indent_2) {
    assert_like_jansson("{\"a\": 1, \"b\": [1, 2, {\"c\": null}], \"d\": {}, \"e\": [], \"f\": [[]]}");
    assert_like_jansson("[{\"k\": \"with , and : and { in a string\"}, \"quote \\\" and \\\\\"]");
    assert_like_jansson("{\"nested\": {\"deeper\": {\"deepest\": [true, false, 1.5, -3]}}}");
    assert_like_jansson("\"just a string\"");
    assert_like_jansson("42");
    assert_like_jansson("{}");
}
END_TEST

START_TEST(test_strings_are_escaped_like_jansson) {
    static const char *const texts[] = {"plain", "tab\there", "nl\nand\rcr", "ctl\x01\x1f",
                                        "quote\" back\\slash /", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_t *s = json_string(texts[i]);
        char *want = json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT);
        flow_buf_t b;
        flowd_jw_t w;
        flow_buf_init(&b, 0);
        flowd_jw_init(&w, &b, 0);
        flowd_jw_str(&w, texts[i]);
        ck_assert_str_eq(b.data, want);
        flow_buf_free(&b);
        free(want);
        json_decref(s);
    }
    /* invalid UTF-8 (a node's error message, say) still makes valid JSON */
    flow_buf_t b;
    flowd_jw_t w;
    flow_buf_init(&b, 0);
    flowd_jw_init(&w, &b, 0);
    flowd_jw_str(&w, "bad \xff\xc3 end");
    ck_assert_str_eq(b.data, "\"bad \xef\xbf\xbd\xef\xbf\xbd end\"");
    json_t *v = json_loads(b.data, JSON_DECODE_ANY, NULL);
    ck_assert_ptr_nonnull(v);
    json_decref(v);
    flow_buf_free(&b);
}
END_TEST

START_TEST(test_objects_pretty_and_compact) {
    flow_buf_t b;
    flowd_jw_t w;
    flow_buf_init(&b, 0);
    flowd_jw_init(&w, &b, 2);
    flowd_jw_obj(&w);
    flowd_jw_key(&w, "n");
    flowd_jw_int(&w, -12);
    flowd_jw_key(&w, "u");
    flowd_jw_uint(&w, UINT64_MAX);
    flowd_jw_key(&w, "t");
    flowd_jw_time(&w, 1795539900123456ull);
    flowd_jw_key(&w, "none");
    flowd_jw_time(&w, 0);
    flowd_jw_key(&w, "raw");
    flowd_jw_raw(&w, "{\"a\":[1]}", 9);
    flowd_jw_key(&w, "empty");
    flowd_jw_arr(&w);
    flowd_jw_arr_end(&w);
    flowd_jw_key(&w, "ok");
    flowd_jw_bool(&w, 1);
    flowd_jw_obj_end(&w);
    ck_assert_str_eq(b.data, "{\n  \"n\": -12,\n  \"u\": 18446744073709551615,\n"
                             "  \"t\": \"2026-11-24T17:05:00.123456Z\",\n  \"none\": null,\n"
                             "  \"raw\": {\n    \"a\": [\n      1\n    ]\n  },\n  \"empty\": [],\n"
                             "  \"ok\": true\n}");
    ck_assert_int_eq(b.err, 0);
    flow_buf_free(&b);
}
END_TEST

START_TEST(test_a_capped_buffer_fails_and_stays_failed) {
    flow_buf_t b;
    flow_buf_init(&b, 8);
    flow_buf_adds(&b, "12345678");
    ck_assert_int_eq(b.err, 0);
    flow_buf_addc(&b, '9');
    ck_assert_int_eq(b.err, FLOW_ETOOBIG);
    flow_buf_adds(&b, "more");
    ck_assert_uint_eq(b.len, 8);
    size_t len;
    ck_assert_ptr_null(flow_buf_take(&b, &len));
    flow_buf_init(&b, 0);
    char *empty = flow_buf_take(&b, &len);
    ck_assert_str_eq(empty, "");
    ck_assert_uint_eq(len, 0);
    free(empty);
}
END_TEST

static Suite *events_suite(void) {
    Suite *s = suite_create("server_events");
    TCase *tc = tcase_create("events");
    tcase_add_test(tc, test_frames_after_an_id);
    tcase_add_test(tc, test_a_full_ring_drops_the_oldest_and_says_so);
    tcase_add_test(tc, test_the_ring_grows_beyond_its_inline_slots);
    tcase_add_test(tc, test_reindent_is_jansson_indent_2);
    tcase_add_test(tc, test_strings_are_escaped_like_jansson);
    tcase_add_test(tc, test_objects_pretty_and_compact);
    tcase_add_test(tc, test_a_capped_buffer_fails_and_stays_failed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(events_suite());
}
