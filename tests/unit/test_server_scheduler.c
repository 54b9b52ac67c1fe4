/* test_server_scheduler.c: the scheduler (server/scheduler.h) on a shared store, where a job with a
 * concurrency key asks the store for its turn (acquire) before it starts: a group the store said
 * is full asks no more until it is poked or a slot of its comes free, and then its best job asks,
 * one at a time; a job due meanwhile waits behind, and the store only records it as waiting (for
 * the other instances' order). Before this held, every queued job of a full group asked in turn
 * (each told the same), and on PostgreSQL those asks kept the writer from the turns that came
 * free. */
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "scheduler.h"
#include "support/json_util.h"

#define NJOBS 10

static uv_loop_t loop;
static atomic_int stopping;
static flowd_jobs_t *t;
static flow_def_t *noop;
static flowd_sched_t *sched;
static flowd_job_t *jobs[NJOBS];
static flowd_job_t *asked[64], *started[64], *behind_of[64];
static int nasked, nstarted, nbehind;

static int on_acquire(void *data, flowd_job_t *job, unsigned flow_limit, int behind) {
    (void)data;
    (void)flow_limit;
    if (behind) { /* only recorded as waiting: no answer comes */
        ck_assert_int_eq(behind, FLOWD_SCHED_KEY_FULL);
        ck_assert_int_lt(nbehind, 64);
        behind_of[nbehind++] = job;
        return 0;
    }
    ck_assert_int_lt(nasked, 64);
    asked[nasked++] = job;
    return 0;
}

static void on_start(void *data, flowd_job_t *job) {
    (void)data;
    ck_assert_int_lt(nstarted, 64);
    started[nstarted++] = job; /* the scheduler's reference, given back in teardown */
}

/* NJOBS queued jobs of key "k" (at most 2 at once), given to the scheduler in order. */
static void setup(void) {
    flowd_jobs_opts_t o = {.max_jobs = 100, .max_finished = 100, .retention_us = 3600u * 1000000u,
                           .events_limit = 10};
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(flow_def_new("noop", &noop), 0);
    ck_assert_int_eq(flowd_jobs_new(&o, &t), 0);
    ck_assert_int_eq(flowd_sched_new(&loop, 100, &stopping, on_start, NULL, &sched), 0);
    flowd_sched_set_acquire(sched, on_acquire, NULL);
    nasked = nstarted = nbehind = 0;
    for (int i = 0; i < NJOBS; i++) {
        int repeat;
        ck_assert_int_eq(flowd_jobs_create(t, noop, "default", NULL, 0, &jobs[i], &repeat), 0);
        jobs[i]->conc_key = strdup("k");
        ck_assert_ptr_nonnull(jobs[i]->conc_key);
        jobs[i]->conc_limit = 2;
        jobs[i]->created_us = 1000 + (uint64_t)i; /* arrival: two made in one microsecond would go by id */
    }
}

static void teardown(void) {
    for (int i = 0; i < nstarted; i++) {
        flowd_sched_done(started[i]);
        flowd_job_unref(started[i]);
    }
    flowd_sched_close(sched);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    for (int i = 0; i < NJOBS; i++)
        flowd_job_unref(jobs[i]);
    flowd_jobs_free(t);
    flow_def_unref(noop);
}

/* n jobs asked so far, the last of them job */
static void asked_last(int n, const flowd_job_t *job) {
    ck_assert_int_eq(nasked, n);
    ck_assert_ptr_eq(asked[n - 1], job);
}

static void add_all(void) {
    for (int i = 0; i < NJOBS; i++)
        flowd_sched_add(sched, flowd_job_ref(jobs[i]));
}

START_TEST(test_a_full_group_asks_no_more_until_poked) {
    add_all();
    /* the key has room for two here: two ask */
    ck_assert_int_eq(nasked, 2);
    ck_assert_ptr_eq(asked[0], jobs[0]);
    ck_assert_ptr_eq(asked[1], jobs[1]);
    /* the store says the key is full (its jobs run on another instance): the others wait */
    flowd_sched_answer(jobs[0], FLOWD_SCHED_KEY_FULL);
    ck_assert_int_eq(nasked, 2);
    flowd_sched_answer(jobs[1], FLOWD_SCHED_KEY_FULL);
    ck_assert_int_eq(nasked, 2);
    ck_assert_int_eq(nstarted, 0);
    /* a slot came free somewhere: the group's first job asks, and only it */
    flowd_sched_poke(sched);
    asked_last(3, jobs[0]);
    /* its turn came: it starts, and the next one asks */
    flowd_sched_answer(jobs[0], 0);
    ck_assert_int_eq(nstarted, 1);
    ck_assert_ptr_eq(started[0], jobs[0]);
    asked_last(4, jobs[1]);
    /* told full again: the rest wait for the next poke */
    flowd_sched_answer(jobs[1], FLOWD_SCHED_KEY_FULL);
    ck_assert_int_eq(nasked, 4);
    flowd_sched_poke(sched);
    asked_last(5, jobs[1]);
    flowd_sched_answer(jobs[1], 0);
    ck_assert_int_eq(nstarted, 2);
    /* two run here, the key's limit: the next one waits without asking */
    ck_assert_int_eq(nasked, 5);
    ck_assert_int_eq(nbehind, 0); /* every job came while the key had room here, or was woken */
    /* one of them ends: its slot goes to the next in line, which asks */
    flowd_sched_done(started[0]);
    asked_last(6, jobs[2]);
}
END_TEST

START_TEST(test_a_better_job_due_meanwhile_asks_first) {
    add_all();
    flowd_sched_answer(jobs[0], FLOWD_SCHED_KEY_FULL);
    flowd_sched_answer(jobs[1], FLOWD_SCHED_KEY_FULL);
    /* a job of priority 9 comes while the group waits: it waits too, ahead of the others */
    flowd_job_t *urgent;
    int repeat;
    ck_assert_int_eq(flowd_jobs_create(t, noop, "default", NULL, 0, &urgent, &repeat), 0);
    urgent->conc_key = strdup("k");
    ck_assert_ptr_nonnull(urgent->conc_key);
    urgent->conc_limit = 2;
    urgent->priority = 9;
    urgent->created_us = 2000;
    flowd_sched_add(sched, flowd_job_ref(urgent));
    ck_assert_int_eq(nasked, 2);
    ck_assert_int_eq(nbehind, 1);
    ck_assert_ptr_eq(behind_of[0], urgent);
    flowd_sched_poke(sched);
    asked_last(3, urgent);
    flowd_sched_answer(urgent, 0);
    ck_assert_int_eq(nstarted, 1);
    asked_last(4, jobs[0]);
    flowd_job_unref(urgent); /* started[0] holds the scheduler's */
}
END_TEST

static Suite *sched_suite(void) {
    Suite *s = suite_create("server_scheduler");
    TCase *tc = tcase_create("shared store");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_a_full_group_asks_no_more_until_poked);
    tcase_add_test(tc, test_a_better_job_due_meanwhile_asks_first);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(sched_suite());
}
