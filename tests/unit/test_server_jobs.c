/* test_server_jobs.c: the job table (server/jobs.h) alone: ids, lookups across shards, the list
 * newest first with filters and cursors, Idempotency-Key repeats and conflicts, --max-jobs, the
 * bounds on finished jobs (--max-finished, retention) with their eviction callback, and the counts
 * by (tenant, flow) against the list. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "render.h"
#include "support/json_util.h"

static flowd_jobs_t *t;
static flow_def_t *noop, *other;
static char evicted[16][FLOWD_ID_LEN + 1];
static int nevicted;

static void on_evict(flowd_job_t *job, void *data) {
    (void)data;
    if (nevicted < 16)
        memcpy(evicted[nevicted], job->id, FLOWD_ID_LEN + 1);
    nevicted++;
}

static void open_table(unsigned max_jobs, unsigned max_finished, uint64_t retention_us) {
    flowd_jobs_opts_t o = {.max_jobs = max_jobs,
                           .max_finished = max_finished,
                           .retention_us = retention_us,
                           .events_limit = 10,
                           .on_evict = on_evict};
    ck_assert_int_eq(flowd_jobs_new(&o, &t), 0);
}

static void setup(void) {
    ck_assert_int_eq(flow_def_new("noop", &noop), 0);
    ck_assert_int_eq(flow_def_new("other", &other), 0);
    nevicted = 0;
    open_table(1000, 1000, 3600u * 1000000u);
}

static void teardown(void) {
    flowd_jobs_free(t);
    flow_def_unref(noop);
    flow_def_unref(other);
}

static flowd_job_t *create(flow_def_t *def) {
    flowd_job_t *job = NULL;
    int repeat = -1;
    ck_assert_int_eq(flowd_jobs_create(t, def, "default", NULL, 0, &job, &repeat), 0);
    ck_assert_int_eq(repeat, 0);
    return job;
}

/* What the loop does when a job ends: its final status, then ended. */
static void end(flowd_job_t *job, flow_status_t status, uint64_t finished_us) {
    flowd_job_lock(job);
    flowd_jobs_set_status_locked(job, status);
    job->finished_us = finished_us;
    flowd_job_unlock(job);
    flowd_jobs_ended(t, job);
}

START_TEST(test_ids_are_random_lowercase_hex) {
    char a[FLOWD_ID_LEN + 1], b[FLOWD_ID_LEN + 1];
    ck_assert_int_eq(flowd_new_id(a), 0);
    for (int i = 0; i < 10000; i++) {
        ck_assert_int_eq(flowd_new_id(b), 0);
        ck_assert_uint_eq(strlen(b), 32);
        ck_assert_uint_eq(strspn(b, "0123456789abcdef"), 32);
        ck_assert_str_ne(a, b);
    }
}
END_TEST

START_TEST(test_records_are_found_by_id) {
    flowd_job_t *jobs[200];
    for (int i = 0; i < 200; i++)
        jobs[i] = create(noop);
    for (int i = 0; i < 200; i++) {
        flowd_job_t *got = flowd_jobs_get(t, jobs[i]->id, FLOWD_ID_LEN);
        ck_assert_ptr_eq(got, jobs[i]);
        ck_assert_int_eq(flowd_job_status(got), FLOW_QUEUED);
        flowd_job_unref(got);
    }
    char id[FLOWD_ID_LEN + 1];
    memcpy(id, jobs[0]->id, sizeof id);
    id[0] = id[0] == 'a' ? 'b' : 'a';
    ck_assert_ptr_null(flowd_jobs_get(t, id, FLOWD_ID_LEN));
    ck_assert_ptr_null(flowd_jobs_get(t, jobs[0]->id, FLOWD_ID_LEN - 1));
    for (char *p = id; *p; p++)
        *p = (char)(*p >= 'a' ? *p - 'a' + 'A' : *p);
    ck_assert_ptr_null(flowd_jobs_get(t, id, FLOWD_ID_LEN));
    ck_assert_ptr_null(flowd_jobs_get(t, "not an id", 9));
    uint64_t counts[6];
    flowd_jobs_counts(t, counts);
    ck_assert_uint_eq(counts[FLOW_QUEUED], 200);
    ck_assert_uint_eq(flowd_jobs_size(t), 200);
    ck_assert_uint_eq(flowd_jobs_active(t), 200);
    for (int i = 0; i < 200; i++)
        flowd_job_unref(jobs[i]);
}
END_TEST

START_TEST(test_list_newest_first_with_filters_and_cursors) {
    flowd_job_t *jobs[7];
    for (int i = 0; i < 7; i++)
        jobs[i] = create(i % 2 ? other : noop); /* noop: 0, 2, 4, 6 */
    end(jobs[2], FLOW_SUCCEEDED, 1);
    end(jobs[4], FLOW_FAILED, 1);
    flowd_job_t *page[3];
    size_t n;
    uint64_t next;
    ck_assert_int_eq(flowd_jobs_list(t, -1, NULL, NULL, 0, 3, page, &n, &next), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_ptr_eq(page[0], jobs[6]);
    ck_assert_ptr_eq(page[2], jobs[4]);
    ck_assert_uint_eq(next, jobs[4]->seq);
    for (size_t i = 0; i < n; i++)
        flowd_job_unref(page[i]);
    ck_assert_int_eq(flowd_jobs_list(t, -1, NULL, NULL, next, 3, page, &n, &next), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_ptr_eq(page[0], jobs[3]);
    for (size_t i = 0; i < n; i++)
        flowd_job_unref(page[i]);
    ck_assert_int_eq(flowd_jobs_list(t, -1, NULL, NULL, next, 3, page, &n, &next), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_ptr_eq(page[0], jobs[0]);
    ck_assert_uint_eq(next, 0); /* the last page */
    flowd_job_unref(page[0]);

    ck_assert_int_eq(flowd_jobs_list(t, FLOW_QUEUED, "noop", NULL, 0, 3, page, &n, &next), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_ptr_eq(page[0], jobs[6]);
    ck_assert_ptr_eq(page[1], jobs[0]);
    ck_assert_uint_eq(next, 0);
    for (size_t i = 0; i < n; i++)
        flowd_job_unref(page[i]);
    ck_assert_int_eq(flowd_jobs_list(t, FLOW_SUCCEEDED, NULL, NULL, 0, 3, page, &n, &next), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_ptr_eq(page[0], jobs[2]);
    flowd_job_unref(page[0]);
    ck_assert_int_eq(flowd_jobs_list(t, -1, "nope", NULL, 0, 3, page, &n, &next), 0);
    ck_assert_uint_eq(n, 0);
    /* exactly a page full: no next page */
    ck_assert_int_eq(flowd_jobs_list(t, -1, "other", NULL, 0, 3, page, &n, &next), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(next, 0);
    for (size_t i = 0; i < n; i++)
        flowd_job_unref(page[i]);
    for (int i = 0; i < 7; i++)
        flowd_job_unref(jobs[i]);
}
END_TEST

START_TEST(test_idempotency_key_repeats_and_conflicts) {
    flowd_job_t *a, *b = NULL;
    int repeat;
    ck_assert_int_eq(flowd_jobs_create(t, noop, "default", "key-1", 42, &a, &repeat), 0);
    ck_assert_int_eq(repeat, 0);
    ck_assert_int_eq(flowd_jobs_create(t, noop, "default", "key-1", 42, &b, &repeat), 0);
    ck_assert_int_eq(repeat, 1);
    ck_assert_ptr_eq(a, b);
    flowd_job_unref(b);
    b = NULL;
    ck_assert_int_eq(flowd_jobs_create(t, noop, "default", "key-1", 43, &b, &repeat), FLOW_EEXIST);
    ck_assert_ptr_null(b);
    ck_assert_int_eq(flowd_jobs_create(t, noop, "default", "key-2", 42, &b, &repeat), 0);
    ck_assert_ptr_ne(a, b);
    ck_assert_uint_eq(flowd_jobs_active(t), 2); /* the repeat made no job */
    flowd_job_unref(b);
    /* once the job is gone, its key is free */
    flowd_jobs_free(t);
    open_table(1000, 1, 3600u * 1000000u);
    flowd_job_unref(a);
    ck_assert_int_eq(flowd_jobs_create(t, noop, "default", "key-1", 42, &a, &repeat), 0);
    end(a, FLOW_SUCCEEDED, 1);
    ck_assert_int_eq(flowd_jobs_create(t, noop, "default", "other", 1, &b, &repeat), 0);
    end(b, FLOW_SUCCEEDED, 2); /* evicts a */
    flowd_job_t *c;
    ck_assert_int_eq(flowd_jobs_create(t, noop, "default", "key-1", 7, &c, &repeat), 0);
    ck_assert_int_eq(repeat, 0);
    ck_assert_ptr_ne(c, a);
    flowd_job_unref(a);
    flowd_job_unref(b);
    flowd_job_unref(c);
}
END_TEST

START_TEST(test_max_jobs_counts_only_active_ones) {
    flowd_jobs_free(t);
    open_table(2, 100, 3600u * 1000000u);
    flowd_job_t *a = create(noop), *b = create(noop), *c = NULL;
    int repeat;
    ck_assert_int_eq(flowd_jobs_create(t, noop, "default", NULL, 0, &c, &repeat), FLOW_EBUSY);
    ck_assert_ptr_null(c);
    end(a, FLOW_SUCCEEDED, 1);
    end(a, FLOW_SUCCEEDED, 1); /* idempotent */
    c = create(noop);
    ck_assert_uint_eq(flowd_jobs_active(t), 2);
    ck_assert_uint_eq(flowd_jobs_size(t), 3);
    flowd_job_unref(a);
    flowd_job_unref(b);
    flowd_job_unref(c);
}
END_TEST

START_TEST(test_max_finished_evicts_the_oldest_finished) {
    flowd_jobs_free(t);
    open_table(100, 2, 3600u * 1000000u);
    flowd_job_t *jobs[4];
    for (int i = 0; i < 4; i++)
        jobs[i] = create(noop);
    end(jobs[1], FLOW_SUCCEEDED, 10);
    end(jobs[0], FLOW_FAILED, 11);
    ck_assert_int_eq(nevicted, 0);
    end(jobs[3], FLOW_CANCELED, 12); /* three finished: jobs[1] ended first, and goes */
    ck_assert_int_eq(nevicted, 1);
    ck_assert_str_eq(evicted[0], jobs[1]->id);
    ck_assert_ptr_null(flowd_jobs_get(t, jobs[1]->id, FLOWD_ID_LEN));
    flowd_job_t *still = flowd_jobs_get(t, jobs[2]->id, FLOWD_ID_LEN); /* active: never evicted */
    ck_assert_ptr_eq(still, jobs[2]);
    flowd_job_unref(still);
    uint64_t counts[6];
    flowd_jobs_counts(t, counts);
    ck_assert_uint_eq(counts[FLOW_SUCCEEDED], 0);
    ck_assert_uint_eq(counts[FLOW_FAILED], 1);
    ck_assert_uint_eq(counts[FLOW_CANCELED], 1);
    ck_assert_uint_eq(counts[FLOW_QUEUED], 1);
    flowd_job_t *page[4];
    size_t n;
    uint64_t next;
    ck_assert_int_eq(flowd_jobs_list(t, -1, NULL, NULL, 0, 4, page, &n, &next), 0);
    ck_assert_uint_eq(n, 3);
    for (size_t i = 0; i < n; i++)
        flowd_job_unref(page[i]);
    /* jobs[1] still lives for whoever holds a reference */
    ck_assert_str_eq(flow_def_name(jobs[1]->def), "noop");
    for (int i = 0; i < 4; i++)
        flowd_job_unref(jobs[i]);
}
END_TEST

START_TEST(test_retention_sweeps_jobs_finished_long_enough_ago) {
    flowd_jobs_free(t);
    open_table(100, 100, 1000000); /* one second */
    flowd_job_t *a = create(noop), *b = create(noop);
    end(a, FLOW_SUCCEEDED, 5000000);
    end(b, FLOW_SUCCEEDED, 5500000);
    ck_assert_uint_eq(flowd_jobs_sweep(t, 5900000), 0);
    ck_assert_uint_eq(flowd_jobs_sweep(t, 6000000), 1);
    ck_assert_str_eq(evicted[0], a->id);
    ck_assert_ptr_null(flowd_jobs_get(t, a->id, FLOWD_ID_LEN));
    ck_assert_uint_eq(flowd_jobs_sweep(t, 7000000), 1);
    ck_assert_uint_eq(flowd_jobs_size(t), 0);
    flowd_job_unref(a);
    flowd_job_unref(b);
}
END_TEST

START_TEST(test_the_list_survives_many_evictions) {
    /* creates and evicts far more than the list's first array holds: its slots get compacted */
    flowd_jobs_free(t);
    open_table(100, 10, 3600u * 1000000u);
    flowd_job_t *keep = create(other); /* old and active: stays at the front of the list */
    for (int i = 0; i < 5000; i++) {
        flowd_job_t *job = create(noop);
        end(job, FLOW_SUCCEEDED, (uint64_t)i + 1);
        flowd_job_unref(job);
    }
    flowd_job_t *page[20];
    size_t n;
    uint64_t next;
    ck_assert_int_eq(flowd_jobs_list(t, -1, NULL, NULL, 0, 20, page, &n, &next), 0);
    ck_assert_uint_eq(n, 11);
    ck_assert_ptr_eq(page[10], keep);
    for (size_t i = 1; i < 10; i++)
        ck_assert_uint_gt(page[i - 1]->seq, page[i]->seq);
    for (size_t i = 0; i < n; i++)
        flowd_job_unref(page[i]);
    ck_assert_int_eq(nevicted, 4990);
    flowd_job_unref(keep);
}
END_TEST

/* flowd_jobs_counts_of against a count of flowd_jobs_list's page with the same filters. */
static void assert_counts_as_listed(const char *flow, const char *tenant) {
    uint64_t got[6], want[6] = {0};
    flowd_jobs_counts_of(t, flow, tenant, got);
    flowd_job_t *page[300];
    size_t n;
    uint64_t next;
    ck_assert_int_eq(flowd_jobs_list(t, -1, flow, tenant, 0, 300, page, &n, &next), 0);
    ck_assert_uint_eq(next, 0);
    for (size_t i = 0; i < n; i++) {
        want[flowd_job_status(page[i])]++;
        flowd_job_unref(page[i]);
    }
    for (int i = 0; i < 6; i++)
        ck_assert_msg(got[i] == want[i], "%s of flow %s, tenant %s: %llu, listed %llu",
                      flow_status_name((flow_status_t)i), flow ? flow : "any",
                      tenant ? tenant : "any", (unsigned long long)got[i],
                      (unsigned long long)want[i]);
}

START_TEST(test_counts_by_tenant_and_flow_are_the_lists) {
    /* jobs of two tenants and two flows made, moved, ended, evicted (--max-finished) and
     * forgotten in a fixed pseudo-random order: every count by (flow, tenant) stays the list's */
    static const char *const tenants[] = {"ten-a", "ten-b"};
    flowd_jobs_free(t);
    open_table(1000, 40, 3600u * 1000000u);
    flowd_job_t *live[200];
    size_t nlive = 0;
    unsigned seed = 7;
    for (int i = 0; i < 600; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = (seed >> 16) % 10;
        if (r < 4 || nlive == 0) {
            if (nlive == sizeof live / sizeof live[0])
                continue;
            flowd_job_t *job = NULL;
            int repeat;
            ck_assert_int_eq(flowd_jobs_create(t, (seed >> 20) & 1 ? noop : other,
                                               tenants[(seed >> 21) & 1], NULL, 0, &job, &repeat),
                             0);
            live[nlive++] = job;
        } else {
            size_t k = (seed >> 8) % nlive;
            flowd_job_t *job = live[k];
            if (r < 6) {
                flowd_job_lock(job);
                flowd_jobs_set_status_locked(job, r == 4 ? FLOW_RUNNING : FLOW_WAITING);
                flowd_job_unlock(job);
                continue;
            }
            if (r < 9)
                end(job, r == 6 ? FLOW_SUCCEEDED : r == 7 ? FLOW_FAILED : FLOW_CANCELED,
                    (uint64_t)i + 1);
            else
                flowd_jobs_forget(t, job);
            flowd_job_unref(job);
            live[k] = live[--nlive];
        }
        if (i % 50 == 49) {
            for (int f = 0; f < 3; f++)
                for (int te = 0; te < 3; te++)
                    assert_counts_as_listed(f == 0 ? NULL : f == 1 ? "noop" : "other",
                                            te == 2 ? NULL : tenants[te]);
        }
    }
    ck_assert_int_gt(nevicted, 0);
    for (size_t i = 0; i < nlive; i++)
        flowd_job_unref(live[i]);
}
END_TEST

START_TEST(test_the_new_job_text_is_the_job_text) {
    flowd_job_t *job = create(noop);
    size_t a_len, b_len;
    char *a = flowd_render_new_job(job, &a_len);
    char *b = flowd_render_job_text(job, &b_len, NULL);
    ck_assert_str_eq(a, b);
    ck_assert_uint_eq(a_len, b_len);
    json_t *v = json_loads(a, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(v, "status")), "queued");
    json_decref(v);
    free(a);
    free(b);
    flowd_job_unref(job);
}
END_TEST

static Suite *jobs_suite(void) {
    Suite *s = suite_create("server_jobs");
    TCase *tc = tcase_create("jobs");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_ids_are_random_lowercase_hex);
    tcase_add_test(tc, test_records_are_found_by_id);
    tcase_add_test(tc, test_list_newest_first_with_filters_and_cursors);
    tcase_add_test(tc, test_idempotency_key_repeats_and_conflicts);
    tcase_add_test(tc, test_max_jobs_counts_only_active_ones);
    tcase_add_test(tc, test_max_finished_evicts_the_oldest_finished);
    tcase_add_test(tc, test_retention_sweeps_jobs_finished_long_enough_ago);
    tcase_add_test(tc, test_the_list_survives_many_evictions);
    tcase_add_test(tc, test_counts_by_tenant_and_flow_are_the_lists);
    tcase_add_test(tc, test_the_new_job_text_is_the_job_text);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(jobs_suite());
}
