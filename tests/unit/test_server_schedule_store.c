/* test_server_schedule_store.c: the schedules of the SQLite store (server/store.h): a schedule put
 * is loaded back with its next run; a run's job is written only when the schedule's row is still at
 * the run's time (the compare-and-set that keeps a run to one job), and then the row moves on with
 * the job as its last; a run whose row has moved (another instance, a PUT meanwhile) is done with
 * FLOW_EEXIST and no job row; a skipped run moves the row the same way; a deleted schedule is gone
 * and its runs write nothing. The same on a store of four files (--store-shards), where a run's job
 * is in the first file with its schedule wherever its id would place it, and the jobs of all the
 * files load oldest first. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "jobs.h"
#include "store.h"
#include "support/json_util.h"

static flowd_jobs_t *table;
static flow_def_t *noop;
static char dir[64], path[128];
static unsigned shards = 1;

typedef struct done {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int called, err;
} done_t;

static void on_done(void *data, int err) {
    done_t *d = data;
    pthread_mutex_lock(&d->lock);
    d->called++;
    d->err = err;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

/* create_run of a new job (create when due < 0), waited for: its done's error. */
static int run(flowd_store_t *st, int64_t due, int64_t next, char id[FLOWD_ID_LEN + 1]) {
    flowd_job_t *job = NULL;
    int repeat = 0;
    ck_assert_int_eq(flowd_jobs_create(table, noop, "default", NULL, 0, &job, &repeat), 0);
    memcpy(id, job->id, FLOWD_ID_LEN + 1);
    done_t d = {.called = 0};
    pthread_mutex_init(&d.lock, NULL);
    pthread_cond_init(&d.cond, NULL);
    flowd_schedule_run_t r = {.name = "nightly", .due = due, .next = next, .at = due};
    json_t *shared = json_object();
    if (due < 0)
        ck_assert_int_eq(st->ops->create(st, job, shared, NULL, on_done, &d), 0);
    else
        ck_assert_int_eq(st->ops->create_run(st, job, shared, NULL, &r, on_done, &d), 0);
    json_decref(shared);
    pthread_mutex_lock(&d.lock);
    while (!d.called)
        pthread_cond_wait(&d.cond, &d.lock);
    int err = d.err;
    pthread_mutex_unlock(&d.lock);
    pthread_mutex_destroy(&d.lock);
    pthread_cond_destroy(&d.cond);
    ck_assert_int_eq(d.called, 1);
    flowd_jobs_forget(table, job);
    flowd_job_unref(job);
    return err;
}

typedef struct loaded {
    int n;
    char name[65], tenant[65], definition[256], last_job[40];
    int64_t next, last_run;
} loaded_t;

static int keep(void *data, const flowd_stored_schedule_t *s) {
    loaded_t *l = data;
    l->n++;
    snprintf(l->name, sizeof l->name, "%s", s->name);
    snprintf(l->tenant, sizeof l->tenant, "%s", s->tenant);
    snprintf(l->definition, sizeof l->definition, "%s", s->definition);
    snprintf(l->last_job, sizeof l->last_job, "%s", s->last_job ? s->last_job : "");
    l->next = s->next;
    l->last_run = s->last_run;
    return 0;
}

static flowd_store_t *open_store(void) {
    flowd_store_t *st = NULL;
    char err[256] = "";
    ck_assert_msg(flowd_store_sqlite_new(path, "normal", shards, &st, err, sizeof err) == 0, "%s", err);
    return st;
}

static loaded_t reopen_and_load(flowd_store_t **st) {
    (*st)->ops->close(*st); /* writes what is queued */
    *st = open_store();
    loaded_t l = {0};
    ck_assert_int_eq((*st)->ops->load_schedules(*st, keep, &l), 0);
    return l;
}

/* How many job rows have this id. */
static int job_rows(const char *id) {
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM jobs WHERE id = ?", -1, &q, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    int n = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/flowd-schedstore-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/flowd.db", dir);
    flowd_jobs_opts_t o = {.max_jobs = 1000, .max_finished = 1000, .retention_us = 3600000000u,
                           .events_limit = 10};
    ck_assert_int_eq(flowd_jobs_new(&o, &table), 0);
    ck_assert_int_eq(flow_def_new("noop", &noop), 0);
}

static void setup_four(void) {
    setup();
    shards = 4;
}

static void teardown(void) {
    flowd_jobs_free(table);
    flow_def_unref(noop);
    char f[160], file[160];
    static const char *const ends[] = {"", "-wal", "-shm"};
    for (unsigned n = 0; n < 4; n++) {
        flowd_store_sqlite_file(path, n, file, sizeof file);
        for (size_t i = 0; i < 3; i++) {
            snprintf(f, sizeof f, "%s%s", file, ends[i]);
            unlink(f);
        }
    }
    rmdir(dir);
    shards = 1;
}

typedef struct seen {
    int n;
    uint64_t seq[32];
    char id[32][FLOWD_ID_LEN + 1];
} seen_t;

static int see_job(void *data, const flowd_stored_job_t *j) {
    seen_t *s = data;
    ck_assert_int_lt(s->n, 32);
    s->seq[s->n] = j->seq;
    snprintf(s->id[s->n++], FLOWD_ID_LEN + 1, "%s", j->id);
    return 0;
}

/* Four files: the runs' jobs are in the first with their schedule (job_rows reads only that one),
 * the other jobs where their ids place them; every job loads back, oldest first, and a run's job
 * its id would have placed elsewhere is found there again after the reopen, and removed. */
START_TEST(test_four_files_keep_runs_with_their_schedule_and_load_oldest_first) {
    flowd_store_t *st = open_store();
    flowd_stored_schedule_t s = {.name = "nightly", .tenant = "acme",
                                 .definition = "{\"cron\":\"0 3 * * *\",\"flow\":\"noop\"}",
                                 .next = 1000};
    ck_assert_int_eq(st->ops->put_schedule(st, "nightly", &s), 0);
    char runs[8][FLOWD_ID_LEN + 1], other[FLOWD_ID_LEN + 1];
    int elsewhere = -1, in_first = 0;
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(run(st, -1, 0, other), 0);
        in_first += job_rows(other);
        ck_assert_int_eq(run(st, 1000 + 1000 * i, 2000 + 1000 * i, runs[i]), 0);
        ck_assert_int_eq(job_rows(runs[i]), 1);
        if (flowd_hash_bytes(runs[i], FLOWD_ID_LEN) % 4 != 0)
            elsewhere = i;
    }
    ck_assert_int_lt(in_first, 8); /* the others are spread over the files */
    ck_assert_int_ge(elsewhere, 0);
    loaded_t l = reopen_and_load(&st);
    ck_assert_int_eq(l.next, 9000);
    seen_t seen = {0};
    ck_assert_int_eq(st->ops->load(st, see_job, &seen), 0);
    ck_assert_int_eq(seen.n, 16);
    for (int i = 1; i < seen.n; i++)
        ck_assert_uint_lt(seen.seq[i - 1], seen.seq[i]);
    st->ops->remove(st, runs[elsewhere]);
    reopen_and_load(&st);
    ck_assert_int_eq(job_rows(runs[elsewhere]), 0);
    seen.n = 0;
    ck_assert_int_eq(st->ops->load(st, see_job, &seen), 0);
    ck_assert_int_eq(seen.n, 15);
    st->ops->close(st);
}
END_TEST

START_TEST(test_a_run_is_written_only_from_the_time_it_was_for) {
    flowd_store_t *st = open_store();
    static const char def[] = "{\"cron\":\"0 3 * * *\",\"flow\":\"noop\"}";
    flowd_stored_schedule_t s = {.name = "nightly", .tenant = "acme", .definition = def,
                                 .next = 1000};
    ck_assert_int_eq(st->ops->put_schedule(st, "nightly", &s), 0);
    loaded_t l = reopen_and_load(&st);
    ck_assert_int_eq(l.n, 1);
    ck_assert_str_eq(l.name, "nightly");
    ck_assert_str_eq(l.tenant, "acme");
    ck_assert_str_eq(l.definition, def);
    ck_assert_int_eq(l.next, 1000);
    ck_assert_str_eq(l.last_job, "");

    /* the row is at 1000: a run for 999 writes no job */
    char lost[FLOWD_ID_LEN + 1], won[FLOWD_ID_LEN + 1], late[FLOWD_ID_LEN + 1];
    ck_assert_int_eq(run(st, 999, 2000, lost), FLOW_EEXIST);
    /* the run for 1000 does, and moves the row to 2000 with its job */
    ck_assert_int_eq(run(st, 1000, 2000, won), 0);
    /* a second try of the same run (another instance's) writes nothing */
    ck_assert_int_eq(run(st, 1000, 2000, late), FLOW_EEXIST);
    l = reopen_and_load(&st);
    ck_assert_int_eq(l.next, 2000);
    ck_assert_str_eq(l.last_job, won);
    ck_assert_int_eq(l.last_run, 1000);
    ck_assert_int_eq(job_rows(won), 1);
    ck_assert_int_eq(job_rows(lost), 0);
    ck_assert_int_eq(job_rows(late), 0);

    /* a skipped run moves the row on, guarded the same way; its last job stays */
    flowd_schedule_run_t skip = {.name = "nightly", .due = 1500, .next = 9000, .at = 1500};
    st->ops->skip_run(st, &skip); /* not at 1500: nothing */
    skip.due = skip.at = 2000;
    skip.next = 3000;
    st->ops->skip_run(st, &skip);
    l = reopen_and_load(&st);
    ck_assert_int_eq(l.next, 3000);
    ck_assert_str_eq(l.last_job, won);

    /* a PUT keeps the last run; a delete takes the row, and a run of it writes no job */
    flowd_stored_schedule_t again = {.name = "nightly", .tenant = "acme", .definition = def,
                                     .next = 5000};
    ck_assert_int_eq(st->ops->put_schedule(st, "nightly", &again), 0);
    l = reopen_and_load(&st);
    ck_assert_int_eq(l.next, 5000);
    ck_assert_str_eq(l.last_job, won);
    ck_assert_int_eq(st->ops->put_schedule(st, "nightly", NULL), 0);
    ck_assert_int_eq(run(st, 5000, 6000, late), FLOW_EEXIST);
    l = reopen_and_load(&st);
    ck_assert_int_eq(l.n, 0);
    ck_assert_int_eq(job_rows(late), 0);
    st->ops->close(st);
}
END_TEST

static Suite *schedule_store_suite(void) {
    Suite *s = suite_create("server_schedule_store");
    TCase *tc = tcase_create("sqlite");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_a_run_is_written_only_from_the_time_it_was_for);
    suite_add_tcase(s, tc);
    tc = tcase_create("sqlite, four files");
    tcase_add_checked_fixture(tc, setup_four, teardown);
    tcase_add_test(tc, test_a_run_is_written_only_from_the_time_it_was_for);
    tcase_add_test(tc, test_four_files_keep_runs_with_their_schedule_and_load_oldest_first);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(schedule_store_suite());
}
