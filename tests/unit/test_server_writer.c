/* test_server_writer.c: the writer of the durable stores (server/store_writer.h) alone, on a
 * backend of this file that keeps no data but records what it was asked, can hold a commit back and
 * can fail: a new job is done only after the commit that holds it; what is queued while a commit
 * runs goes into the next transaction; a failed batch is written again one operation at a time,
 * and after a recovered connection once more whole; an operation's own failure leaves the others;
 * a job's checkpoints in one batch write its row once, with the newest shared store; release drops
 * every write of a job; put_flow waits for its commit; the periodic work runs when it is due and
 * when kicked; two writers run at once, one not waiting for the other; and freeing a writer writes
 * what is still queued. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs.h"
#include "store_writer.h"
#include "support/json_util.h"

#define MAX_TX 64
#define MAX_CKPT 16
#define DEADLINE_MS 10000

/* The backend: what it was asked, under lock. */
typedef struct fake {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int hold;                  /* commit waits while it is set */
    int in_commit;             /* a commit is waiting */
    int fail_commits;          /* so many commits fail */
    int fail_size;             /* the next commit of a transaction of so many operations fails */
    int recovers;              /* recover says "back" so many times */
    char fail_id[FLOWD_ID_LEN + 1];  /* applying an operation of this job breaks the transaction */
    char exist_id[FLOWD_ID_LEN + 1]; /* a create of this job fails alone: FLOW_EEXIST */
    int begins, commits, rollbacks, recovered;
    int applied;               /* in the transaction under way */
    int ntx;                   /* committed transactions, and how many operations each held */
    int tx_sizes[MAX_TX];
    int nckpt;                 /* checkpoints applied */
    struct {
        int superseded, step;
        char shared[16];
    } ckpt[MAX_CKPT];
    int settled, settled_failed;
    int attached, ticks, stopped, ops_after_stop;
    uint64_t tick_every_ms;
} fake_t;

static fake_t fakes[2];
static flowd_jobs_t *table;
static flow_def_t *noop;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int fake_begin(void *data) {
    fake_t *f = data;
    pthread_mutex_lock(&f->lock);
    f->begins++;
    f->applied = 0;
    f->ops_after_stop += f->stopped;
    pthread_mutex_unlock(&f->lock);
    return 0;
}

static int fake_apply(void *data, flowd_op_t *op) {
    fake_t *f = data;
    int rc = 0;
    pthread_mutex_lock(&f->lock);
    f->applied++;
    if (f->fail_id[0] != '\0' && strcmp(op->id, f->fail_id) == 0)
        rc = FLOW_EIO;
    else if (op->kind == FLOWD_OP_CREATE && strcmp(op->id, f->exist_id) == 0)
        op->rc = FLOW_EEXIST;
    if (op->kind == FLOWD_OP_CHECKPOINT && f->nckpt < MAX_CKPT) {
        f->ckpt[f->nckpt].superseded = op->checkpoint.superseded;
        f->ckpt[f->nckpt].step = op->checkpoint.step != NULL;
        snprintf(f->ckpt[f->nckpt].shared, sizeof f->ckpt[0].shared, "%s",
                 op->checkpoint.shared ? op->checkpoint.shared : "-");
        f->nckpt++;
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static int fake_commit(void *data) {
    fake_t *f = data;
    pthread_mutex_lock(&f->lock);
    f->in_commit = 1;
    pthread_cond_broadcast(&f->cond);
    while (f->hold)
        pthread_cond_wait(&f->cond, &f->lock);
    f->in_commit = 0;
    int rc = 0;
    if (f->fail_commits > 0) {
        f->fail_commits--;
        rc = FLOW_EIO;
    } else if (f->fail_size > 0 && f->applied == f->fail_size) {
        f->fail_size = 0;
        rc = FLOW_EIO;
    } else {
        if (f->ntx < MAX_TX)
            f->tx_sizes[f->ntx] = f->applied;
        f->ntx++;
        f->commits++;
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static void fake_rollback(void *data) {
    fake_t *f = data;
    pthread_mutex_lock(&f->lock);
    f->rollbacks++;
    pthread_mutex_unlock(&f->lock);
}

static int fake_recover(void *data) {
    fake_t *f = data;
    pthread_mutex_lock(&f->lock);
    int back = f->recovers > 0;
    if (back) {
        f->recovers--;
        f->recovered++;
    }
    pthread_mutex_unlock(&f->lock);
    return back ? 0 : FLOW_EIO;
}

static void fake_settled(void *data, const flowd_op_t *op, int rc) {
    fake_t *f = data;
    (void)op;
    pthread_mutex_lock(&f->lock);
    f->settled++;
    f->settled_failed += rc != 0;
    pthread_mutex_unlock(&f->lock);
}

static uint64_t fake_tick(void *data) {
    fake_t *f = data;
    pthread_mutex_lock(&f->lock);
    uint64_t due = 0;
    if (f->attached) {
        f->ticks++;
        due = now_ms() + f->tick_every_ms;
    }
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return due;
}

static void fake_stopped(void *data) {
    fake_t *f = data;
    pthread_mutex_lock(&f->lock);
    f->stopped = 1;
    pthread_mutex_unlock(&f->lock);
}

static const flowd_writer_backend_t fake_backend = {
    .name = "fake",
    .flags = FLOWD_WRITER_COALESCE,
    .begin = fake_begin,
    .apply = fake_apply,
    .commit = fake_commit,
    .rollback = fake_rollback,
    .recover = fake_recover,
    .settled = fake_settled,
    .tick = fake_tick,
    .stopped = fake_stopped,
};

/* Waits (with a deadline) until *v, read under f's lock, is at least want. */
static void wait_at_least(fake_t *f, int *v, int want, const char *what) {
    uint64_t deadline = now_ms() + DEADLINE_MS;
    pthread_mutex_lock(&f->lock);
    while (*v < want && now_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&f->cond, &f->lock, &ts);
    }
    int got = *v;
    pthread_mutex_unlock(&f->lock);
    ck_assert_msg(got >= want, "%s: %d, not %d, after %d ms", what, got, want, DEADLINE_MS);
}

static void hold(fake_t *f, int on) {
    pthread_mutex_lock(&f->lock);
    f->hold = on;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

static int read_int(fake_t *f, const int *v) {
    pthread_mutex_lock(&f->lock);
    int got = *v;
    pthread_mutex_unlock(&f->lock);
    return got;
}

/* What a create's done callback was told: its slot in results, and when (commits by then). */
typedef struct done_slot {
    fake_t *f;
    int called, rc, commits_then;
} done_slot_t;

static void on_done(void *data, int err) {
    done_slot_t *d = data;
    pthread_mutex_lock(&d->f->lock);
    d->called++;
    d->rc = err;
    d->commits_then = d->f->commits;
    pthread_cond_broadcast(&d->f->cond);
    pthread_mutex_unlock(&d->f->lock);
}

static flowd_job_t *new_job(void) {
    flowd_job_t *job = NULL;
    int repeat = 0;
    ck_assert_int_eq(flowd_jobs_create(table, noop, "default", NULL, 0, &job, &repeat), 0);
    return job;
}

static void setup(void) {
    for (int i = 0; i < 2; i++) {
        memset(&fakes[i], 0, sizeof fakes[i]);
        pthread_mutex_init(&fakes[i].lock, NULL);
        pthread_cond_init(&fakes[i].cond, NULL);
    }
    flowd_jobs_opts_t o = {.max_jobs = 1000, .max_finished = 1000, .retention_us = 3600000000u,
                           .events_limit = 10};
    ck_assert_int_eq(flowd_jobs_new(&o, &table), 0);
    ck_assert_int_eq(flow_def_new("noop", &noop), 0);
}

static void teardown(void) {
    flowd_jobs_free(table);
    flow_def_unref(noop);
    for (int i = 0; i < 2; i++) {
        pthread_mutex_destroy(&fakes[i].lock);
        pthread_cond_destroy(&fakes[i].cond);
    }
}

START_TEST(test_a_new_job_is_done_only_after_its_commit) {
    fake_t *f = &fakes[0];
    flowd_writer_t *w = NULL;
    ck_assert_int_eq(flowd_writer_new(&fake_backend, f, &w), 0);
    hold(f, 1);
    flowd_job_t *job = new_job();
    done_slot_t d = {.f = f};
    json_t *shared = tu_json("{\"a\": 1}");
    ck_assert_int_eq(flowd_writer_create(w, job, shared, NULL, on_done, &d), 0);
    wait_at_least(f, &f->in_commit, 1, "commits under way");
    ck_assert_int_eq(read_int(f, &d.called), 0); /* applied, not committed: no answer yet */
    hold(f, 0);
    wait_at_least(f, &d.called, 1, "done callbacks");
    ck_assert_int_eq(d.rc, 0);
    ck_assert_int_eq(d.commits_then, 1);
    flowd_writer_free(w);
    ck_assert_int_eq(d.called, 1);
    json_decref(shared);
    flowd_job_unref(job);
}
END_TEST

/* A writer whose first job's commit is held, and n jobs more to queue behind it. */
typedef struct batch {
    fake_t *f;
    flowd_writer_t *w;
    flowd_job_t *first, *jobs[50];
    done_slot_t d0, d[50];
    int n;
} batch_t;

static void behind_a_commit(batch_t *b, int n) {
    b->f = &fakes[0];
    b->n = n;
    ck_assert_int_eq(flowd_writer_new(&fake_backend, b->f, &b->w), 0);
    hold(b->f, 1);
    b->first = new_job();
    b->d0 = (done_slot_t){.f = b->f};
    ck_assert_int_eq(flowd_writer_create(b->w, b->first, NULL, NULL, on_done, &b->d0), 0);
    wait_at_least(b->f, &b->f->in_commit, 1, "commits under way");
    for (int i = 0; i < n; i++) {
        b->jobs[i] = new_job();
        b->d[i] = (done_slot_t){.f = b->f};
    }
}

/* Queues the n jobs, lets the commit go, and waits until every job has its answer. */
static void queue_and_let_go(batch_t *b) {
    for (int i = 0; i < b->n; i++)
        ck_assert_int_eq(flowd_writer_create(b->w, b->jobs[i], NULL, NULL, on_done, &b->d[i]), 0);
    hold(b->f, 0);
    for (int i = 0; i < b->n; i++)
        wait_at_least(b->f, &b->d[i].called, 1, "done callbacks");
    wait_at_least(b->f, &b->d0.called, 1, "done callbacks");
}

static void batch_free(batch_t *b) {
    flowd_writer_free(b->w);
    for (int i = 0; i < b->n; i++)
        flowd_job_unref(b->jobs[i]);
    flowd_job_unref(b->first);
}

START_TEST(test_what_comes_during_a_commit_goes_in_the_next_one) {
    batch_t b;
    behind_a_commit(&b, 50);
    queue_and_let_go(&b);
    ck_assert_int_eq(b.f->ntx, 2);
    ck_assert_int_eq(b.f->tx_sizes[0], 1);
    ck_assert_int_eq(b.f->tx_sizes[1], 50); /* group commit: one transaction for the fifty */
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(b.d[i].rc, 0);
        ck_assert_int_eq(b.d[i].commits_then, 2);
    }
    batch_free(&b);
}
END_TEST

START_TEST(test_a_failed_batch_is_written_one_by_one) {
    batch_t b;
    behind_a_commit(&b, 5);
    memcpy(b.f->fail_id, b.jobs[2]->id, sizeof b.f->fail_id); /* the writer is in the commit */
    queue_and_let_go(&b);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(b.d[i].rc, i == 2 ? FLOW_EIO : 0);
    /* the first alone, then the batch of five (rolled back), then each alone (the third rolled
     * back again) */
    ck_assert_int_eq(b.f->begins, 1 + 1 + 5);
    ck_assert_int_eq(b.f->rollbacks, 2);
    ck_assert_int_eq(b.f->commits, 1 + 4);
    ck_assert_int_eq(b.f->settled_failed, 1);
    batch_free(&b);
}
END_TEST

START_TEST(test_a_batch_is_tried_again_whole_once_the_connection_is_back) {
    batch_t b;
    behind_a_commit(&b, 5);
    b.f->fail_size = 5; /* the batch's first try */
    b.f->recovers = 1;
    queue_and_let_go(&b);
    ck_assert_int_eq(b.d0.rc, 0);
    ck_assert_int_eq(b.f->recovered, 1);
    ck_assert_int_eq(b.f->rollbacks, 1);
    ck_assert_int_eq(b.f->ntx, 2);
    ck_assert_int_eq(b.f->tx_sizes[1], 5); /* written whole */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(b.d[i].rc, 0);
    batch_free(&b);
}
END_TEST

START_TEST(test_an_operation_that_fails_alone_leaves_the_others) {
    batch_t b;
    behind_a_commit(&b, 3);
    memcpy(b.f->exist_id, b.jobs[1]->id, sizeof b.f->exist_id);
    queue_and_let_go(&b);
    ck_assert_int_eq(b.d[0].rc, 0);
    ck_assert_int_eq(b.d[1].rc, FLOW_EEXIST);
    ck_assert_int_eq(b.d[2].rc, 0);
    ck_assert_int_eq(b.f->ntx, 2); /* one transaction for the three */
    ck_assert_int_eq(b.f->rollbacks, 0);
    batch_free(&b);
}
END_TEST

static void checkpoint(flowd_writer_t *w, flowd_job_t *job, const char *shared, uint64_t seq) {
    flowd_checkpoint_t cp = {.status = FLOW_RUNNING,
                             .steps = seq,
                             .shared = shared ? strdup(shared) : NULL,
                             .step = "{\"step\": 1}",
                             .step_len = 11,
                             .step_seq = seq};
    flowd_writer_checkpoint(w, job, &cp);
}

START_TEST(test_a_jobs_checkpoints_in_one_batch_write_its_row_once) {
    fake_t *f = &fakes[0];
    flowd_writer_t *w = NULL;
    ck_assert_int_eq(flowd_writer_new(&fake_backend, f, &w), 0);
    flowd_job_t *job = new_job(), *other = new_job();
    done_slot_t d0 = {.f = f};
    hold(f, 1);
    ck_assert_int_eq(flowd_writer_create(w, other, NULL, NULL, on_done, &d0), 0);
    wait_at_least(f, &f->in_commit, 1, "commits under way");
    checkpoint(w, job, "{\"n\":1}", 1);
    checkpoint(w, job, "{\"n\":2}", 2);
    checkpoint(w, job, NULL, 3); /* the store did not change in step 3 */
    hold(f, 0);
    wait_at_least(f, &f->nckpt, 3, "checkpoints applied");
    /* every step is written; only the last checkpoint writes the row, with the newest store; the
     * first gave its store up when the second was queued */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(f->ckpt[i].step, 1);
    ck_assert_int_eq(f->ckpt[0].superseded, 1);
    ck_assert_str_eq(f->ckpt[0].shared, "-");
    ck_assert_int_eq(f->ckpt[1].superseded, 1);
    ck_assert_str_eq(f->ckpt[1].shared, "-");
    ck_assert_int_eq(f->ckpt[2].superseded, 0);
    ck_assert_str_eq(f->ckpt[2].shared, "{\"n\":2}");
    flowd_writer_free(w);
    flowd_job_unref(job);
    flowd_job_unref(other);
}
END_TEST

START_TEST(test_release_drops_every_write_of_a_job) {
    fake_t *f = &fakes[0];
    flowd_writer_t *w = NULL;
    ck_assert_int_eq(flowd_writer_new(&fake_backend, f, &w), 0);
    flowd_job_t *job = new_job();
    done_slot_t d = {.f = f};
    flowd_writer_release(w);
    ck_assert_int_eq(flowd_writer_released(w), 1);
    checkpoint(w, job, "{\"n\":1}", 1); /* its store is freed, not leaked */
    flowd_writer_finish(w, job);
    flowd_writer_remove(w, job->id);
    /* a new job and a flow are not a running job's: they are still written */
    ck_assert_int_eq(flowd_writer_create(w, job, NULL, NULL, on_done, &d), 0);
    json_t *doc = tu_json("{\"nodes\": {}}");
    ck_assert_int_eq(flowd_writer_put_flow(w, "f", doc), 0);
    json_decref(doc);
    flowd_writer_free(w);
    ck_assert_int_eq(d.called, 1);
    ck_assert_int_eq(f->nckpt, 0);
    ck_assert_int_eq(f->settled, 2);
    flowd_job_unref(job);
}
END_TEST

typedef struct put_call {
    flowd_writer_t *w;
    int rc;
} put_call_t;

static void *put_main(void *arg) {
    put_call_t *c = arg;
    c->rc = flowd_writer_put_flow(c->w, "f", NULL);
    return NULL;
}

START_TEST(test_put_flow_returns_once_its_commit_is_done) {
    fake_t *f = &fakes[0];
    flowd_writer_t *w = NULL;
    ck_assert_int_eq(flowd_writer_new(&fake_backend, f, &w), 0);
    hold(f, 1);
    put_call_t c = {.w = w, .rc = 1};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, put_main, &c), 0);
    wait_at_least(f, &f->in_commit, 1, "commits under way");
    ck_assert_int_eq(read_int(f, &f->commits), 0);
    pthread_mutex_lock(&f->lock);
    f->fail_commits = 1; /* and it hears that it failed */
    f->hold = 0;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    pthread_join(t, NULL);
    ck_assert_int_eq(c.rc, FLOW_EIO);
    flowd_writer_free(w);
}
END_TEST

START_TEST(test_periodic_work_runs_when_kicked_and_when_due) {
    fake_t *f = &fakes[0];
    flowd_writer_t *w = NULL;
    f->tick_every_ms = 5;
    ck_assert_int_eq(flowd_writer_new(&fake_backend, f, &w), 0);
    ck_assert_int_eq(read_int(f, &f->ticks), 0); /* nothing to do until attached */
    pthread_mutex_lock(&f->lock);
    f->attached = 1;
    pthread_mutex_unlock(&f->lock);
    flowd_writer_kick(w);
    wait_at_least(f, &f->ticks, 5, "ticks"); /* the first from the kick, the others when due */
    flowd_writer_free(w);
    ck_assert_int_eq(f->stopped, 1);
}
END_TEST

START_TEST(test_two_writers_run_at_once) {
    fake_t *a = &fakes[0], *b = &fakes[1];
    flowd_writer_t *wa = NULL, *wb = NULL;
    ck_assert_int_eq(flowd_writer_new(&fake_backend, a, &wa), 0);
    ck_assert_int_eq(flowd_writer_new(&fake_backend, b, &wb), 0);
    flowd_job_t *ja = new_job(), *jb = new_job();
    done_slot_t da = {.f = a}, db = {.f = b};
    hold(a, 1);
    ck_assert_int_eq(flowd_writer_create(wa, ja, NULL, NULL, on_done, &da), 0);
    wait_at_least(a, &a->in_commit, 1, "commits under way");
    ck_assert_int_eq(flowd_writer_create(wb, jb, NULL, NULL, on_done, &db), 0);
    wait_at_least(b, &db.called, 1, "done callbacks of the second writer");
    ck_assert_int_eq(read_int(a, &da.called), 0); /* the first is still in its commit */
    hold(a, 0);
    wait_at_least(a, &da.called, 1, "done callbacks of the first writer");
    flowd_writer_free(wa);
    flowd_writer_free(wb);
    flowd_job_unref(ja);
    flowd_job_unref(jb);
}
END_TEST

START_TEST(test_freeing_a_writer_writes_what_is_queued_first) {
    fake_t *f = &fakes[0];
    flowd_writer_t *w = NULL;
    ck_assert_int_eq(flowd_writer_new(&fake_backend, f, &w), 0);
    hold(f, 1);
    flowd_job_t *jobs[20];
    done_slot_t d[20];
    for (int i = 0; i < 20; i++) {
        jobs[i] = new_job();
        d[i] = (done_slot_t){.f = f};
        ck_assert_int_eq(flowd_writer_create(w, jobs[i], NULL, NULL, on_done, &d[i]), 0);
        checkpoint(w, jobs[i], "{}", 1);
        flowd_writer_finish(w, jobs[i]);
    }
    wait_at_least(f, &f->in_commit, 1, "commits under way");
    hold(f, 0);
    flowd_writer_free(w); /* returns once all of it is written */
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(d[i].called, 1);
        ck_assert_int_eq(d[i].rc, 0);
        flowd_job_unref(jobs[i]);
    }
    ck_assert_int_eq(f->settled, 60);
    ck_assert_int_eq(f->stopped, 1);
    ck_assert_int_eq(f->ops_after_stop, 0);
}
END_TEST

static Suite *writer_suite(void) {
    Suite *s = suite_create("server_writer");
    TCase *tc = tcase_create("writer");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_a_new_job_is_done_only_after_its_commit);
    tcase_add_test(tc, test_what_comes_during_a_commit_goes_in_the_next_one);
    tcase_add_test(tc, test_a_failed_batch_is_written_one_by_one);
    tcase_add_test(tc, test_a_batch_is_tried_again_whole_once_the_connection_is_back);
    tcase_add_test(tc, test_an_operation_that_fails_alone_leaves_the_others);
    tcase_add_test(tc, test_a_jobs_checkpoints_in_one_batch_write_its_row_once);
    tcase_add_test(tc, test_release_drops_every_write_of_a_job);
    tcase_add_test(tc, test_put_flow_returns_once_its_commit_is_done);
    tcase_add_test(tc, test_periodic_work_runs_when_kicked_and_when_due);
    tcase_add_test(tc, test_two_writers_run_at_once);
    tcase_add_test(tc, test_freeing_a_writer_writes_what_is_queued_first);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(writer_suite());
}
