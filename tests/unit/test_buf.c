/* test_buf.c: the capped growable buffer of flow/buf.h, which the library's templates, problem
 * lists and Mermaid charts and flowd's JSON answers all build their text in: the cap, errors that
 * stick, the caller's storage and the move out of it, what take hands over, and running out of
 * memory; and the library's growing arrays (flow__grow). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "flow.h"
#include "flow/buf.h"
#include "internal.h" /* flow__grow, the library's growing arrays */
#include "support/json_util.h"

START_TEST(test_adds_grow_and_stay_terminated) {
    flow_buf_t b;
    flow_buf_init(&b, 0);
    ck_assert_ptr_null(b.data); /* nothing allocated before the first add */
    for (int i = 0; i < 10000; i++)
        ck_assert_int_eq(flow_buf_addc(&b, (char)('a' + i % 26)), 0);
    ck_assert_uint_eq(b.len, 10000);
    ck_assert_uint_eq(strlen(b.data), 10000);
    ck_assert_int_eq(flow_buf_adds(&b, "|end"), 0);
    ck_assert_int_eq(flow_buf_printf(&b, "|%d|%s", 42, "x"), 0);
    ck_assert_str_eq(b.data + 10000, "|end|42|x");
    b.len = 3; /* a writer may drop a tail */
    ck_assert_int_eq(flow_buf_add(&b, "!", 1), 0);
    ck_assert_str_eq(b.data, "abc!");
    flow_buf_free(&b);
    flow_buf_free(&b); /* idempotent */
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
}
END_TEST

/* A format longer than printf's first try (256 bytes) is written in place. */
START_TEST(test_printf_of_a_long_text) {
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    flow_buf_t b;
    flow_buf_init(&b, 0);
    ck_assert_int_eq(flow_buf_printf(&b, "<%s>", big), 0);
    ck_assert_uint_eq(b.len, 1001);
    ck_assert_int_eq(b.data[0], '<');
    ck_assert_int_eq(b.data[1000], '>');
    ck_assert_int_eq(b.data[1001], '\0');
    flow_buf_free(&b);
}
END_TEST

/* The cap is exact, and the first error sticks: later adds add nothing, take gives NULL. */
START_TEST(test_the_cap_fails_and_the_failure_sticks) {
    flow_buf_t b;
    flow_buf_init(&b, 8);
    ck_assert_int_eq(flow_buf_adds(&b, "12345678"), 0);
    ck_assert_int_eq(flow_buf_addc(&b, '9'), FLOW_ETOOBIG);
    ck_assert_int_eq(flow_buf_add(&b, "", 0), FLOW_ETOOBIG);
    ck_assert_int_eq(flow_buf_printf(&b, "%d", 1), FLOW_ETOOBIG);
    ck_assert_uint_eq(b.len, 8);
    ck_assert_str_eq(b.data, "12345678"); /* what it had */
    size_t len = 99;
    ck_assert_ptr_null(flow_buf_take(&b, &len));
    ck_assert_int_eq(b.err, FLOW_ETOOBIG); /* take says why it gave nothing */
    ck_assert_uint_eq(len, 99);
    flow_buf_free(&b); /* and free starts afresh */
    ck_assert_int_eq(b.err, 0);
    ck_assert_int_eq(flow_buf_adds(&b, "ok"), 0);
    ck_assert_str_eq(b.data, "ok");
    flow_buf_free(&b);
}
END_TEST

START_TEST(test_take_hands_over_the_bytes) {
    flow_buf_t b;
    size_t len = 99;
    flow_buf_init(&b, 0);
    char *empty = flow_buf_take(&b, &len); /* never added to: "" */
    ck_assert_str_eq(empty, "");
    ck_assert_uint_eq(len, 0);
    flow_free(empty);
    flow_buf_adds(&b, "hello");
    char *s = flow_buf_take(&b, &len);
    ck_assert_str_eq(s, "hello");
    ck_assert_uint_eq(len, 5);
    ck_assert_ptr_null(b.data); /* b is empty and usable */
    ck_assert_uint_eq(b.len, 0);
    flow_buf_adds(&b, "again");
    ck_assert_str_eq(b.data, "again");
    flow_free(s);
    flow_buf_free(&b);
}
END_TEST

/* Short text stays in the caller's storage; longer text moves to the heap with what was there; take
 * copies out of the storage, which is never freed. */
START_TEST(test_the_callers_storage_then_the_heap) {
    char stack[16];
    flow_buf_t b;
    flow_buf_init_storage(&b, stack, sizeof stack, 0);
    ck_assert_ptr_eq(b.data, stack);
    ck_assert_str_eq(b.data, "");
    flow_buf_adds(&b, "0123456789abcde"); /* 15 bytes and the NUL: it fits */
    ck_assert_ptr_eq(b.data, stack);
    char *copy = flow_buf_take(&b, NULL);
    ck_assert_ptr_ne(copy, stack);
    ck_assert_str_eq(copy, "0123456789abcde");
    flow_free(copy);
    ck_assert_ptr_eq(b.data, stack); /* take left b in its storage, empty */
    ck_assert_uint_eq(b.len, 0);
    flow_buf_adds(&b, "0123456789abcdef"); /* one more: the heap */
    ck_assert_ptr_ne(b.data, stack);
    ck_assert_str_eq(b.data, "0123456789abcdef");
    flow_buf_free(&b);
    ck_assert_ptr_eq(b.data, stack);
}
END_TEST

/* Running out of memory fails the add (and sticks) without losing what was there. */
static int fail_next;

static void *t_malloc(size_t n) {
    return fail_next ? NULL : malloc(n);
}

static void *t_realloc(void *p, size_t n) {
    return fail_next ? NULL : realloc(p, n);
}

static void *t_calloc(size_t c, size_t n) {
    return fail_next ? NULL : calloc(c, n);
}

START_TEST(test_out_of_memory_sticks_and_keeps_the_bytes) {
    ck_assert_int_eq(flow_set_allocator(t_malloc, t_realloc, t_calloc, free), 0);
    flow_buf_t b;
    flow_buf_init(&b, 0);
    flow_buf_adds(&b, "kept");
    fail_next = 1;
    char big[1024] = {0};
    ck_assert_int_eq(flow_buf_add(&b, big, sizeof big), FLOW_ENOMEM);
    fail_next = 0;
    ck_assert_int_eq(flow_buf_adds(&b, "x"), FLOW_ENOMEM);
    ck_assert_str_eq(b.data, "kept");
    ck_assert_ptr_null(flow_buf_take(&b, NULL));
    ck_assert_int_eq(b.err, FLOW_ENOMEM);
    /* a copy out of the caller's storage can fail too */
    char stack[8];
    flow_buf_init_storage(&b, stack, sizeof stack, 0);
    flow_buf_adds(&b, "abc");
    fail_next = 1;
    ck_assert_ptr_null(flow_buf_take(&b, NULL));
    fail_next = 0;
    ck_assert_int_eq(b.err, FLOW_ENOMEM);
    flow_buf_free(&b);
    flow_set_allocator(malloc, realloc, calloc, free);
}
END_TEST

/* The arrays of the library grow by flow__grow: from a first size, doubling, never past a cap; at
 * the cap or out of memory the array stays the caller's as it was. */
START_TEST(test_arrays_grow_double_and_stop_at_their_cap) {
    ck_assert_int_eq(flow_set_allocator(t_malloc, t_realloc, t_calloc, free), 0);
    int *items = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < 20; i++) {
        int *grown = flow__grow(items, n, &cap, sizeof *items, 4, 12);
        if (i < 12) {
            ck_assert_ptr_nonnull(grown);
            items = grown;
            items[n++] = i;
        } else {
            ck_assert_ptr_null(grown); /* at the cap */
        }
        ck_assert_uint_eq(cap, i < 4 ? 4 : i < 8 ? 8 : 12);
    }
    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(items[i], i);
    int *same = flow__grow(items, 3, &cap, sizeof *items, 4, 0); /* room already */
    ck_assert_ptr_eq(same, items);
    size_t before = cap;
    fail_next = 1;
    ck_assert_ptr_null(flow__grow(items, cap, &cap, sizeof *items, 4, 0));
    fail_next = 0;
    ck_assert_uint_eq(cap, before);
    ck_assert_int_eq(items[11], 11);
    size_t huge = SIZE_MAX / 2 + 1;
    ck_assert_ptr_null(flow__grow(items, huge, &huge, 2, 4, 0)); /* its size would overflow */
    flow_free(items);
    flow_set_allocator(malloc, realloc, calloc, free);
}
END_TEST

static Suite *buf_suite(void) {
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("buf");
    tcase_add_test(tc, test_adds_grow_and_stay_terminated);
    tcase_add_test(tc, test_printf_of_a_long_text);
    tcase_add_test(tc, test_the_cap_fails_and_the_failure_sticks);
    tcase_add_test(tc, test_take_hands_over_the_bytes);
    tcase_add_test(tc, test_the_callers_storage_then_the_heap);
    tcase_add_test(tc, test_out_of_memory_sticks_and_keeps_the_bytes);
    tcase_add_test(tc, test_arrays_grow_double_and_stop_at_their_cap);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(buf_suite());
}
