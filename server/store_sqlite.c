/* store_sqlite.c: the SQLite store of store.h. One file in WAL mode, written only by its writer
 * (store_writer.h): callers queue operations (the loop its checkpoints, HTTP threads their new
 * jobs) and the writer's thread commits everything that came together in one transaction, so that
 * a burst of submissions costs a few commits, not one each (group commit). A new job's done
 * callback runs after the commit that holds its row, so a 202 means the job is on disk. The loop
 * thread never waits on the disk. What this file gives the writer is how SQLite begins, applies an
 * operation and commits; what belongs to one file (its connections, statements, checkpointer and
 * writer) is an sq_file_t, apart from the store, which has one.
 *
 * Tables: jobs (a row per job: its state as of its last checkpoint, its final state once ended),
 * steps (the history, appended a row per step: a checkpoint costs the same at the thousandth step
 * as at the first), flow_versions (the document of every version of a flow a job started with, by
 * its digest), flows (what PUT and DELETE /v1/flows did), deliveries (of jobs' callbacks, webhooks.h:
 * a row each, written when it is owed and after each try), schedules (what PUT /v1/schedules made,
 * with each one's next run and last job), meta (the schema's version, and which file of how many
 * this is).
 *
 * Several files (--store-shards N, fixed when the store is made): one writer thread and one
 * SQLite connection commit at most what one core can, so a store of N files has N writers that
 * commit side by side. A job lives in one file with all its rows (steps, stores, deliveries, the
 * documents of its flow's versions), the one its id places it in (a hash of the id), so that
 * every operation of a job goes to one writer in order and a file read alone is whole. Flows and
 * schedules are in the first file, and so are a schedule's runs (their row moves in the same
 * transaction as the job is written): those are the only jobs not where their id places them, and
 * the store keeps their ids (moved). Lists need no merging here: the job table in memory answers
 * them; load merges the files by the jobs' seq, so they come oldest first. */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "auth.h"
#include "jobs.h"
#include "log.h"
#include "patch.h"
#include "store.h"
#include "store_writer.h"

#define SCHEMA_VERSION 10
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/* One database file. */
typedef struct sq_file {
    sqlite3 *db;           /* the writer's connection (and load's, before any operation comes) */
    char *path;
    flowd_writer_t *writer;
    /* statements of the writer's thread (and of load): made and finalized by statements[] */
    sqlite3_stmt *ins_job, *ins_version, *upd_checkpoint, *ins_step, *upd_finish, *del_job,
        *del_steps, *put_flow, *ins_delivery, *upd_delivery, *del_delivery_orphan,
        *del_deliveries, *sched_run, *sched_put, *sched_del, *sched_skip, *put_store, *del_store,
        *prune_stores;
    /* the checkpointer: its own connection copies the log into the file, off the writer's thread */
    sqlite3 *cdb;
    pthread_t cthread;
    int cstarted;
    pthread_mutex_t clock;
    pthread_cond_t ccond;
    int ckpt_wanted;       /* under clock */
    int fresh;             /* the file was made by this open */
    int cclosing;          /* under clock */
} sq_file_t;

typedef struct sqlite_store {
    flowd_store_t base;
    sq_file_t **files;     /* nfiles, the first has the flows and schedules */
    unsigned nfiles;
    /* the jobs in another file than their id places them in: id -> the file's index */
    pthread_mutex_t moved_lock;
    json_t *moved;
    unsigned history;      /* the last steps of a job's history load gives back (0: 1000) */
} sqlite_store_t;

/* ---- the writer's backend ---- */

static int bind_text(sqlite3_stmt *st, int i, const char *text) {
    return text ? sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static int run(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : rc;
}

/* A schedule's run: its row moves from the run's time to the next, or the job is not written. */
static int apply_run(sq_file_t *f, flowd_op_t *op) {
    const flowd_op_create_t *c = &op->create;
    sqlite3_stmt *st = f->sched_run;
    sqlite3_bind_int64(st, 1, c->sched_next);
    sqlite3_bind_text(st, 2, op->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, c->sched_at);
    sqlite3_bind_text(st, 4, c->sched, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, c->sched_due);
    int rc = run(st);
    if (rc == 0 && sqlite3_changes(f->db) == 0)
        op->rc = FLOW_EEXIST;
    return rc;
}

/* The job's last whole shared store, as of step (store.h: patches). */
/* A job's whole store as of a step. The older ones go, but for the newest at or before base (the
 * step a redrive of the job would start from, jobs.h run.base_step): with the patches after it, it
 * makes that store again. So a job keeps at most two. */
static int put_store(sq_file_t *f, uint64_t seq, uint64_t step, const char *shared, uint64_t base) {
    int rc;
    sqlite3_bind_int64(f->put_store, 1, (sqlite3_int64)seq);
    sqlite3_bind_int64(f->put_store, 2, (sqlite3_int64)step);
    sqlite3_bind_text(f->put_store, 3, shared, -1, SQLITE_STATIC);
    if ((rc = run(f->put_store)) != 0 || step == 0)
        return rc; /* a job's first store: nothing older to prune */
    sqlite3_bind_int64(f->prune_stores, 1, (sqlite3_int64)seq);
    sqlite3_bind_int64(f->prune_stores, 2, (sqlite3_int64)(base < step ? base : step));
    sqlite3_bind_int64(f->prune_stores, 3, (sqlite3_int64)step);
    return run(f->prune_stores);
}

static int apply_create(sq_file_t *f, flowd_op_t *op) {
    const flowd_op_create_t *c = &op->create;
    int rc;
    if (c->sched != NULL && ((rc = apply_run(f, op)) != 0 || op->rc != 0))
        return rc;
    if (c->write_document) {
        sqlite3_bind_text(f->ins_version, 1, c->digest, -1, SQLITE_STATIC);
        sqlite3_bind_text(f->ins_version, 2, c->document, -1, SQLITE_STATIC);
        if ((rc = run(f->ins_version)) != 0)
            return rc;
    }
    sqlite3_stmt *st = f->ins_job;
    sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)op->seq);
    bind_text(st, 3, c->flow);
    bind_text(st, 4, c->digest);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)c->created_us);
    bind_text(st, 6, c->idem_key);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)c->body_hash);
    bind_text(st, 8, c->params);
    bind_text(st, 9, "{}"); /* its store is in stores (a big one would make every row write big) */
    bind_text(st, 10, c->tenant);
    bind_text(st, 11, c->callback);
    sqlite3_bind_int64(st, 12, (sqlite3_int64)c->start_at_us);
    sqlite3_bind_int(st, 13, (int)c->priority);
    bind_text(st, 14, c->conc_key);
    sqlite3_bind_int64(st, 15, (sqlite3_int64)c->conc_limit);
    bind_text(st, 16, c->origin);
    bind_text(st, 17, c->resume_node);
    bind_text(st, 18, c->traceparent);
    if ((rc = run(st)) != 0)
        return rc;
    return put_store(f, op->seq, 0, c->shared ? c->shared : "{}", 0);
}

static int apply_checkpoint(sq_file_t *f, const flowd_op_t *op) {
    const flowd_op_checkpoint_t *c = &op->checkpoint;
    sqlite3_stmt *st = f->upd_checkpoint;
    int rc;
    if (!c->superseded) {
        sqlite3_bind_text(st, 1, flow_status_name(c->status), -1, SQLITE_STATIC);
        bind_text(st, 2, c->resume_node);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)c->tries);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)c->steps);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)c->started_us);
        bind_text(st, 6, c->waiting_for);
        sqlite3_bind_int64(st, 7, (sqlite3_int64)c->visits);
        sqlite3_bind_int64(st, 8, (sqlite3_int64)op->seq);
        if ((rc = run(st)) != 0)
            return rc;
        if (c->shared != NULL &&
            (rc = put_store(f, op->seq, c->shared_step, c->shared, c->base_step)) != 0)
            return rc;
    }
    if (c->step == NULL)
        return 0;
    sqlite3_bind_int64(f->ins_step, 1, (sqlite3_int64)op->seq);
    sqlite3_bind_int64(f->ins_step, 2, (sqlite3_int64)c->step_seq);
    sqlite3_bind_text(f->ins_step, 3, c->step, -1, SQLITE_STATIC);
    return run(f->ins_step);
}

static int apply_finish(sq_file_t *f, const flowd_op_t *op) {
    sqlite3_stmt *st = f->upd_finish;
    const flowd_op_finish_t *e = &op->finish;
    sqlite3_bind_text(st, 1, flow_status_name(e->status), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)e->steps);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)e->started_us);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)e->finished_us);
    bind_text(st, 5, e->shared);
    bind_text(st, 6, e->last_action);
    bind_text(st, 7, e->error_code);
    bind_text(st, 8, e->error_message);
    bind_text(st, 9, e->error_node);
    bind_text(st, 10, e->totals);
    bind_text(st, 11, e->resume_node);
    bind_text(st, 12, e->base_shared);
    if (e->at_base_step)
        sqlite3_bind_int64(st, 13, (sqlite3_int64)e->base_step);
    else
        sqlite3_bind_null(st, 13);
    sqlite3_bind_int64(st, 14, (sqlite3_int64)op->seq);
    return run(st);
}

static int apply_remove(sq_file_t *f, const flowd_op_t *op) {
    int rc;
    /* its deliveries that are over; one still owed is made, and goes once it is over */
    sqlite3_bind_text(f->del_deliveries, 1, op->id, -1, SQLITE_STATIC);
    if ((rc = run(f->del_deliveries)) != 0)
        return rc;
    /* the steps and the store first: they find the job's row through its id */
    sqlite3_bind_text(f->del_steps, 1, op->id, -1, SQLITE_STATIC);
    if ((rc = run(f->del_steps)) != 0)
        return rc;
    sqlite3_bind_text(f->del_store, 1, op->id, -1, SQLITE_STATIC);
    if ((rc = run(f->del_store)) != 0)
        return rc;
    sqlite3_bind_text(f->del_job, 1, op->id, -1, SQLITE_STATIC);
    return run(f->del_job);
}

static int apply_flow(sq_file_t *f, const flowd_op_t *op) {
    bind_text(f->put_flow, 1, op->flow.name);
    bind_text(f->put_flow, 2, op->flow.document);
    sqlite3_bind_int64(f->put_flow, 3, (sqlite3_int64)flow_wall_us());
    return run(f->put_flow);
}

static int apply_schedule(sq_file_t *f, const flowd_op_t *op) {
    const flowd_op_schedule_t *o = &op->schedule;
    sqlite3_stmt *st;
    switch (o->kind) {
    case FLOWD_SCHED_PUT:
        st = f->sched_put;
        sqlite3_bind_text(st, 1, o->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, o->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, o->definition, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, o->next);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)flow_wall_us());
        return run(st);
    case FLOWD_SCHED_DELETE:
        sqlite3_bind_text(f->sched_del, 1, o->name, -1, SQLITE_STATIC);
        return run(f->sched_del);
    case FLOWD_SCHED_SKIP:
        st = f->sched_skip;
        sqlite3_bind_int64(st, 1, o->next);
        sqlite3_bind_text(st, 2, o->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, o->due);
        return run(st);
    }
    return 0;
}

static int apply_delivery(sq_file_t *f, const flowd_op_t *op) {
    const flowd_op_delivery_t *d = &op->delivery;
    sqlite3_stmt *st = d->insert ? f->ins_delivery : f->upd_delivery;
    int rc;
    /* the same order of parameters in both; insert has the others after them */
    sqlite3_bind_text(st, 1, d->delivery_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, d->state, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)d->attempts);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)d->next_us);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)d->last_status);
    bind_text(st, 6, d->last_error);
    bind_text(st, 7, d->tries);
    if (d->insert) {
        sqlite3_bind_text(st, 8, op->id, -1, SQLITE_STATIC);
        bind_text(st, 9, d->tenant);
        bind_text(st, 10, d->url);
        bind_text(st, 11, d->type);
        bind_text(st, 12, d->body);
        sqlite3_bind_int64(st, 13, (sqlite3_int64)d->created_us);
    }
    if ((rc = run(st)) != 0 || strcmp(d->state, "pending") == 0)
        return rc;
    sqlite3_bind_text(f->del_delivery_orphan, 1, d->delivery_id, -1, SQLITE_STATIC);
    return run(f->del_delivery_orphan);
}

static const char *col_text(sqlite3_stmt *st, int i);
static json_t *col_json(sqlite3_stmt *st, int i);
static json_t *history_of_bound(sqlite3_stmt *steps);

/* The shared store as of after a step (store.h: shared_at): the last whole store at or before it,
 * and the patches of the steps after that one, read in the writer's transaction (which sees what
 * was queued before). The job's own outcome goes in op->rc; the transaction goes on. */
static int apply_read(sq_file_t *f, flowd_op_t *op) {
    flowd_op_read_t *r = &op->read;
    sqlite3_stmt *st = NULL, *steps = NULL;
    json_t *store = NULL, *history = NULL;
    char why[256];
    op->rc = FLOW_EIO;
    if (sqlite3_prepare_v2(f->db,
                           "SELECT j.id, s.shared, j.shared,"
                           " NOT EXISTS (SELECT 1 FROM stores WHERE job = j.seq), s.step, j.steps,"
                           " j.seq, (SELECT MIN(step) FROM stores WHERE job = j.seq) FROM jobs j"
                           " LEFT JOIN stores s ON s.job = j.seq AND s.step = (SELECT MAX(step)"
                           " FROM stores WHERE job = j.seq AND step <= ?1) WHERE j.id = ?2",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(f->db,
                           "SELECT data FROM steps WHERE job = ? AND seq > ? AND seq <= ?"
                           " ORDER BY seq",
                           -1, &steps, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)r->step);
    sqlite3_bind_text(st, 2, op->id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        op->rc = FLOW_ENOTFOUND;
        goto out;
    }
    /* the newest whole store in stores at or before the step is as of from (a job keeps its last
     * one and the one a redrive needs: put_store); a job from before version 7 has none, and its
     * jobs.shared is as of its last checkpoint */
    int legacy = sqlite3_column_int(st, 3);
    uint64_t last = (uint64_t)sqlite3_column_int64(st, 5);
    uint64_t from = legacy ? last : (uint64_t)sqlite3_column_int64(st, 4);
    *r->oldest = legacy ? last : (uint64_t)sqlite3_column_int64(st, 7);
    if (r->step > last) {
        op->rc = FLOW_ENOTFOUND;
        goto out;
    }
    if (r->step < from || (!legacy && sqlite3_column_type(st, 4) == SQLITE_NULL)) {
        op->rc = FLOW_ESTATE;
        goto out;
    }
    store = col_json(st, legacy ? 2 : 1);
    if (!json_is_object(store))
        goto out;
    sqlite3_bind_int64(steps, 1, sqlite3_column_int64(st, 6));
    sqlite3_bind_int64(steps, 2, (sqlite3_int64)from);
    sqlite3_bind_int64(steps, 3, (sqlite3_int64)r->step);
    history = history_of_bound(steps);
    int rc = history ? flowd_patch_replay(store, history, from, r->step, why, sizeof why)
                     : FLOW_ENOMEM;
    if (rc < 0) {
        flowd_log(FLOW_LOG_WARN, "store: job %s: its store after step %llu: %s", op->id,
                  (unsigned long long)r->step, why);
        op->rc = rc == FLOW_ENOTFOUND ? FLOW_ESTATE : rc;
        goto out;
    }
    json_decref(*r->out);
    *r->out = store;
    store = NULL;
    op->rc = 0;
out:
    json_decref(store);
    json_decref(history);
    sqlite3_finalize(st);
    sqlite3_finalize(steps);
    return 0;
}

static int sq_apply(void *data, flowd_op_t *op) {
    sq_file_t *f = data;
    int rc = 0;
    switch (op->kind) {
    case FLOWD_OP_CREATE: rc = apply_create(f, op); break;
    case FLOWD_OP_CHECKPOINT: rc = apply_checkpoint(f, op); break;
    case FLOWD_OP_FINISH: rc = apply_finish(f, op); break;
    case FLOWD_OP_REMOVE: rc = apply_remove(f, op); break;
    case FLOWD_OP_FLOW: rc = apply_flow(f, op); break;
    case FLOWD_OP_SCHEDULE: rc = apply_schedule(f, op); break;
    case FLOWD_OP_DELIVERY: rc = apply_delivery(f, op); break;
    case FLOWD_OP_READ: rc = apply_read(f, op); break;
    case FLOWD_OP_EVENT: /* events are kept only in the job table */
    case FLOWD_OP_ANSWER:
    case FLOWD_OP_SLOT: break; /* one instance: its scheduler's own counts are every job's */
    }
    if (rc == 0)
        return 0;
    /* A failed statement fails the batch only when it is a create (its job must not get a 202);
     * a checkpoint of a job removed meanwhile changes nothing, which is fine. SQLite's transaction
     * goes on after a failed statement. */
    if (op->kind == FLOWD_OP_CREATE) {
        flowd_log(FLOW_LOG_ERROR, "store: job %s could not be written: %s", op->id,
                  sqlite3_errmsg(f->db));
        return FLOW_EIO;
    }
    if (op->kind == FLOWD_OP_FLOW)
        flowd_log(FLOW_LOG_WARN, "store: flow %s: %s", op->flow.name, sqlite3_errmsg(f->db));
    else if (op->kind == FLOWD_OP_SCHEDULE)
        flowd_log(FLOW_LOG_WARN, "store: schedule %s: %s", op->schedule.name,
                  sqlite3_errmsg(f->db));
    else
        flowd_log(FLOW_LOG_WARN, "store: job %s: %s", op->id, sqlite3_errmsg(f->db));
    op->rc = FLOW_EIO;
    return 0;
}

/* Runs a statement that begins or ends the writer's transaction; what failed goes to the log. */
static int sq_tx(sq_file_t *f, const char *sql, const char *failed) {
    if (sqlite3_exec(f->db, sql, NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    flowd_log(FLOW_LOG_ERROR, "store: %s: %s", failed, sqlite3_errmsg(f->db));
    return FLOW_EIO;
}

static int sq_begin(void *data) {
    return sq_tx(data, "BEGIN IMMEDIATE", "a transaction could not begin");
}

static int sq_commit(void *data) {
    return sq_tx(data, "COMMIT", "a commit failed");
}

static void sq_rollback(void *data) {
    sq_file_t *f = data;
    sqlite3_exec(f->db, "ROLLBACK", NULL, NULL, NULL);
}

static const flowd_writer_backend_t sqlite_backend = {
    .name = "sqlite",
    .flags = FLOWD_WRITER_COALESCE,
    .begin = sq_begin,
    .apply = sq_apply,
    .commit = sq_commit,
    .rollback = sq_rollback,
};

/* ---- checkpoints ---- */

/* SQLite's own automatic checkpoint runs inside the commit that crosses its threshold, on the
 * writer's thread: that commit then copies the whole log into the file and syncs it, and every 202
 * waiting on it waits too (a p99 of tens of milliseconds). Here the writer only asks, and the
 * checkpointer does the copying on its own connection meanwhile; a PASSIVE checkpoint never blocks
 * the writer. Should the checkpointer fall far behind, the writer checkpoints itself, which bounds
 * the log. */
enum { CKPT_PAGES = 1000, CKPT_INLINE_PAGES = 16 * CKPT_PAGES };

static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int pages) {
    sq_file_t *f = arg;
    if (pages >= CKPT_INLINE_PAGES) {
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    } else if (pages >= CKPT_PAGES) {
        pthread_mutex_lock(&f->clock);
        f->ckpt_wanted = 1;
        pthread_cond_signal(&f->ccond);
        pthread_mutex_unlock(&f->clock);
    }
    return SQLITE_OK;
}

static void *checkpoint_main(void *arg) {
    sq_file_t *f = arg;
    pthread_mutex_lock(&f->clock);
    for (;;) {
        while (!f->ckpt_wanted && !f->cclosing)
            pthread_cond_wait(&f->ccond, &f->clock);
        if (f->cclosing)
            break;
        f->ckpt_wanted = 0;
        pthread_mutex_unlock(&f->clock);
        int rc = sqlite3_wal_checkpoint_v2(f->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            flowd_log(FLOW_LOG_WARN, "store: a checkpoint failed: %s", sqlite3_errmsg(f->cdb));
        pthread_mutex_lock(&f->clock);
    }
    pthread_mutex_unlock(&f->clock);
    return NULL;
}

/* ---- the calls ---- */

static sqlite_store_t *store_of(flowd_store_t *store) {
    return (sqlite_store_t *)store;
}

/* The file a job's id places it in. */
static unsigned place(const sqlite_store_t *s, const char *id) {
    return s->nfiles == 1 ? 0 : (unsigned)(flowd_hash_bytes(id, strlen(id)) % s->nfiles);
}

/* The file the job id is in: where its id places it, unless it was moved. */
static sq_file_t *file_of(flowd_store_t *store, const char *id) {
    sqlite_store_t *s = store_of(store);
    unsigned i = place(s, id);
    if (s->nfiles > 1) {
        pthread_mutex_lock(&s->moved_lock);
        json_t *m = json_object_size(s->moved) > 0 ? json_object_get(s->moved, id) : NULL;
        if (m != NULL)
            i = (unsigned)json_integer_value(m);
        pthread_mutex_unlock(&s->moved_lock);
    }
    return s->files[i];
}

/* The job id is kept in file i (or no longer kept anywhere: i < 0), whatever its id says. */
static int set_moved(sqlite_store_t *s, const char *id, int i) {
    int rc = 0;
    if (s->nfiles == 1 || (i >= 0 && place(s, id) == (unsigned)i))
        return 0;
    pthread_mutex_lock(&s->moved_lock);
    if (i < 0)
        json_object_del(s->moved, id);
    else
        rc = json_object_set_new(s->moved, id, json_integer(i)) == 0 ? 0 : FLOW_ENOMEM;
    pthread_mutex_unlock(&s->moved_lock);
    return rc;
}

static sq_file_t *first_file(flowd_store_t *store) {
    return store_of(store)->files[0];
}

static int sq_create(flowd_store_t *store, flowd_job_t *job, json_t *shared, json_t *params,
                     flowd_store_done_cb done, void *data) {
    return flowd_writer_create(file_of(store, job->id)->writer, job, shared, params, done, data);
}

static void sq_checkpoint(flowd_store_t *store, flowd_job_t *job, const flowd_checkpoint_t *cp) {
    flowd_writer_checkpoint(file_of(store, job->id)->writer, job, cp);
}

static void sq_finish(flowd_store_t *store, flowd_job_t *job) {
    flowd_writer_finish(file_of(store, job->id)->writer, job);
}

static void sq_remove(flowd_store_t *store, const char *id) {
    flowd_writer_remove(file_of(store, id)->writer, id);
    set_moved(store_of(store), id, -1);
}

/* A delivery goes with its job, so that a file alone holds a job's deliveries (and remove and the
 * orphans' check find them). */
static void sq_delivery(flowd_store_t *store, const flowd_stored_delivery_t *d, int insert) {
    flowd_writer_delivery(file_of(store, d->job)->writer, d, insert);
}

static int sq_put_flow(flowd_store_t *store, const char *name, json_t *doc) {
    return flowd_writer_put_flow(first_file(store)->writer, name, doc);
}

static int sq_shared_at(flowd_store_t *store, const char *id, uint64_t step, json_t **out,
                        uint64_t *oldest) {
    return flowd_writer_read_shared(file_of(store, id)->writer, id, step, out, oldest);
}

static int sq_put_schedule(flowd_store_t *store, const char *name,
                           const flowd_stored_schedule_t *sched) {
    return flowd_writer_put_schedule(first_file(store)->writer, name, sched);
}

/* A moved run's done: a run that wrote no job (its schedule had moved on) is no longer kept. */
typedef struct run_done {
    sqlite_store_t *s;
    flowd_store_done_cb done;
    void *data;
    char id[FLOWD_ID_LEN + 1];
} run_done_t;

static void moved_run_done(void *data, int err) {
    run_done_t d = *(run_done_t *)data;
    free(data);
    if (err != 0)
        set_moved(d.s, d.id, -1);
    d.done(d.data, err);
}

/* A schedule's run is written in the schedule's file, the first, wherever its id would place it. */
static int sq_create_run(flowd_store_t *store, flowd_job_t *job, json_t *shared, json_t *params,
                         const flowd_schedule_run_t *r, flowd_store_done_cb done, void *data) {
    sqlite_store_t *s = store_of(store);
    run_done_t *d = NULL;
    if (place(s, job->id) != 0) {
        if ((d = malloc(sizeof *d)) == NULL)
            return FLOW_ENOMEM;
        *d = (run_done_t){.s = s, .done = done, .data = data};
        memcpy(d->id, job->id, sizeof d->id);
        done = moved_run_done;
        data = d;
    }
    int rc = set_moved(s, job->id, 0);
    if (rc == 0 &&
        (rc = flowd_writer_create_run(s->files[0]->writer, job, shared, params, r, done, data)) < 0)
        set_moved(s, job->id, -1);
    if (rc < 0)
        free(d); /* done will not run */
    return rc;
}

static void sq_skip_run(flowd_store_t *store, const flowd_schedule_run_t *r) {
    flowd_writer_skip_run(first_file(store)->writer, r);
}

/* At shutdown, before the engine cancels what still runs: those jobs stay in the file as of their
 * last checkpoint (running, waiting or queued), and the next start resumes them, as after a crash;
 * a restart for a deploy is not the end of a job. */
static void sq_release(flowd_store_t *store) {
    sqlite_store_t *s = store_of(store);
    for (unsigned i = 0; i < s->nfiles; i++)
        flowd_writer_release(s->files[i]->writer);
}

static size_t sq_backlog(flowd_store_t *store) {
    sqlite_store_t *s = store_of(store);
    size_t n = 0;
    for (unsigned i = 0; i < s->nfiles; i++)
        n += flowd_writer_backlog(s->files[i]->writer);
    return n;
}

/* ---- load ---- */

static const char *col_text(sqlite3_stmt *st, int i) {
    return (const char *)sqlite3_column_text(st, i);
}

static json_t *col_json(sqlite3_stmt *st, int i) {
    const char *t = col_text(st, i);
    return t ? json_loads(t, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : NULL;
}

/* The history entries a bound statement gives (its rows' first column), and it reset. */
static json_t *history_of_bound(sqlite3_stmt *steps) {
    json_t *all = json_array();
    while (all != NULL && sqlite3_step(steps) == SQLITE_ROW) {
        json_t *step = col_json(steps, 0);
        if (step != NULL)
            json_array_append_new(all, step);
    }
    sqlite3_reset(steps);
    return all;
}

static const char load_jobs_sql[] =
    "SELECT j.id, j.flow, v.document, j.status, j.created_us, j.started_us, j.finished_us, j.idem_key,"
    " j.body_hash, j.params, j.shared, j.resume_node, j.tries, j.steps, j.last_action, j.waiting_for,"
    " j.error_code, j.error_message, j.error_node, j.totals, j.seq, j.tenant, j.callback,"
    " j.start_at_us, j.priority, j.conc_key, j.conc_limit, j.origin, j.base_shared, j.base_step,"
    " s.step, s.shared, j.visits, j.traceparent FROM jobs j LEFT JOIN flow_versions v ON v.digest = j.digest"
    " LEFT JOIN stores s ON s.job = j.seq"
    " AND s.step = (SELECT MAX(step) FROM stores WHERE job = j.seq) ORDER BY j.seq";

/* The statements load reads a file's jobs with. */
typedef struct {
    sqlite3_stmt *jobs;   /* load_jobs_sql */
    sqlite3_stmt *steps;  /* a job's steps after a seq */
    sqlite3_stmt *visits; /* a job's root-level steps, counted (a job from before version 9) */
} sq_load_t;

/* A job's root-level steps finished, counted in the file for a job that has no visits kept (from
 * before version 9): a step whose entry is not JSON is not counted. */
static uint64_t count_visits(sqlite3_stmt *st, uint64_t seq) {
    uint64_t n = 0;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return n;
}

/* The last keep entries of history (a new reference), or history itself when it has no more. */
static json_t *last_entries(json_t *history, size_t keep) {
    size_t n = json_array_size(history);
    if (n <= keep)
        return history;
    json_t *last = json_array();
    for (size_t i = n - keep; last != NULL && i < n; i++)
        json_array_append(last, json_array_get(history, i));
    if (last == NULL)
        return history; /* out of memory: all of it, as before */
    json_decref(history);
    return last;
}

/* Hands the job of the row l->jobs is at (load_jobs_sql's) to each, with the last keep steps of its
 * history, and those after its last whole store, which make its shared store again: a job of
 * millions of steps is not read whole (version 9 keeps its visits apart). */
static int load_row(const sq_load_t *l, size_t keep, flowd_store_each_cb each, void *data) {
    sqlite3_stmt *st = l->jobs;
    flow_status_t status = FLOW_QUEUED;
    flow_status_parse(col_text(st, 3) ? col_text(st, 3) : "queued", &status);
    flowd_stored_job_t j = {
        .id = col_text(st, 0),
        .flow = col_text(st, 1),
        .flow_document = col_text(st, 2),
        .status = status,
        .created_us = (uint64_t)sqlite3_column_int64(st, 4),
        .started_us = (uint64_t)sqlite3_column_int64(st, 5),
        .finished_us = (uint64_t)sqlite3_column_int64(st, 6),
        .idem_key = col_text(st, 7),
        .body_hash = (uint64_t)sqlite3_column_int64(st, 8),
        .params = col_json(st, 9),
        .shared = col_json(st, 10),
        .resume_node = col_text(st, 11),
        .tries = (unsigned)sqlite3_column_int(st, 12),
        .steps = (uint64_t)sqlite3_column_int64(st, 13),
        .last_action = col_text(st, 14),
        .waiting_for = col_text(st, 15),
        .error_code = flowd_store_error_code(col_text(st, 16)),
        .error_message = col_text(st, 17),
        .error_node = col_text(st, 18),
        .totals = col_json(st, 19),
        .seq = (uint64_t)sqlite3_column_int64(st, 20),
        .tenant = col_text(st, 21),
        .callback = col_text(st, 22),
        .start_at_us = (uint64_t)sqlite3_column_int64(st, 23),
        .priority = (unsigned)sqlite3_column_int(st, 24),
        .conc_key = col_text(st, 25),
        .conc_limit = (unsigned)sqlite3_column_int64(st, 26),
        .origin = col_text(st, 27),
        .base_shared = col_text(st, 28),
        .at_base_step = sqlite3_column_type(st, 29) != SQLITE_NULL,
        .base_step = (uint64_t)sqlite3_column_int64(st, 29),
        .has_visits = 1,
        .visits = (uint64_t)sqlite3_column_int64(st, 32),
        .traceparent = col_text(st, 33),
    };
    int active = !flow_status_final(j.status);
    /* a job that has not ended: its last whole store and the patches after it */
    uint64_t shared_step = j.steps;
    if (active && sqlite3_column_type(st, 31) != SQLITE_NULL) {
        json_decref(j.shared);
        j.shared = col_json(st, 31);
        shared_step = (uint64_t)sqlite3_column_int64(st, 30);
    }
    uint64_t from = j.steps > keep ? j.steps - keep : 0;
    if (active && shared_step < from)
        from = shared_step;
    sqlite3_bind_int64(l->steps, 1, (sqlite3_int64)j.seq);
    sqlite3_bind_int64(l->steps, 2, (sqlite3_int64)from);
    j.history = history_of_bound(l->steps);
    if (active && sqlite3_column_type(st, 32) == SQLITE_NULL)
        j.visits = count_visits(l->visits, j.seq);
    if (j.shared == NULL)
        j.shared = json_object();
    char why[256];
    if (!flow_status_final(j.status) && shared_step < j.steps &&
        flowd_patch_replay(j.shared, j.history, shared_step, j.steps, why, sizeof why) < 0) {
        /* the job then resumes from a store that lacks some steps: say so */
        flowd_log(FLOW_LOG_ERROR, "store: job %s: its shared store after step %llu cannot be "
                  "made again (%s)", j.id, (unsigned long long)j.steps, why);
    }
    j.history = last_entries(j.history, keep);
    int rc = each(data, &j);
    json_decref(j.params);
    json_decref(j.shared);
    json_decref(j.history);
    json_decref(j.totals);
    return rc;
}

/* Every file's jobs, merged by their seq (the order they were made in, one count over the files). */
static int sq_load(flowd_store_t *store, flowd_store_each_cb each, void *data) {
    sqlite_store_t *s = store_of(store);
    unsigned n = s->nfiles;
    sq_load_t *l = calloc(n, sizeof *l);
    int *more = calloc(n, sizeof *more);
    size_t keep = s->history ? s->history : 1000;
    int rc = 0;
    if (l == NULL || more == NULL) {
        rc = FLOW_ENOMEM;
        goto out;
    }
    for (unsigned i = 0; i < n; i++) {
        sq_file_t *f = s->files[i];
        /* CASE, not AND: json_extract fails the statement on an entry that is not JSON */
        if (sqlite3_prepare_v2(f->db, load_jobs_sql, -1, &l[i].jobs, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(f->db, "SELECT data FROM steps WHERE job = ? AND seq > ? ORDER BY seq",
                               -1, &l[i].steps, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(f->db, "SELECT count(*) FROM steps WHERE job = ? AND CASE WHEN"
                               " json_valid(data) THEN json_extract(data, '$.depth') END = 0",
                               -1, &l[i].visits, NULL) != SQLITE_OK) {
            flowd_log(FLOW_LOG_ERROR, "store: cannot read the jobs of %s: %s", f->path,
                      sqlite3_errmsg(f->db));
            rc = FLOW_EIO;
            goto out;
        }
        more[i] = sqlite3_step(l[i].jobs) == SQLITE_ROW;
    }
    for (;;) {
        int next = -1;
        for (unsigned i = 0; i < n; i++)
            if (more[i] && (next < 0 || sqlite3_column_int64(l[i].jobs, 20) <
                                            sqlite3_column_int64(l[next].jobs, 20)))
                next = (int)i;
        if (next < 0)
            break;
        if ((rc = set_moved(s, col_text(l[next].jobs, 0), next)) != 0 ||
            (rc = load_row(&l[next], keep, each, data)) != 0)
            goto out;
        more[next] = sqlite3_step(l[next].jobs) == SQLITE_ROW;
    }
out:
    for (unsigned i = 0; l != NULL && i < n; i++) {
        sqlite3_finalize(l[i].jobs);
        sqlite3_finalize(l[i].steps);
        sqlite3_finalize(l[i].visits);
    }
    free(l);
    free(more);
    return rc;
}

/* What a load calls for each row it reads: one of the callbacks, and its data. */
typedef struct {
    flowd_store_delivery_cb delivery;
    flowd_store_flow_cb flow;
    flowd_store_schedule_cb schedule;
    void *data;
} sq_each_t;

/* Reads the rows sql selects, in order, handing each to row until one returns an error (then
 * that); what is named the rows in the log when the query cannot be made. */
static int each_row(sq_file_t *f, const char *sql, const char *what,
                    int (*row)(sqlite3_stmt *st, const sq_each_t *e), const sq_each_t *e) {
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) != SQLITE_OK) {
        flowd_log(FLOW_LOG_ERROR, "store: cannot read the %s: %s", what, sqlite3_errmsg(f->db));
        return FLOW_EIO;
    }
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
        rc = row(st, e);
    sqlite3_finalize(st);
    return rc;
}

static int delivery_row(sqlite3_stmt *st, const sq_each_t *e) {
    flowd_stored_delivery_t d = {
        .id = col_text(st, 0),
        .job = col_text(st, 1),
        .tenant = col_text(st, 2),
        .url = col_text(st, 3),
        .type = col_text(st, 4),
        .body = col_text(st, 5),
        .created_us = (uint64_t)sqlite3_column_int64(st, 6),
        .state = col_text(st, 7),
        .attempts = (unsigned)sqlite3_column_int(st, 8),
        .next_us = (uint64_t)sqlite3_column_int64(st, 9),
        .last_status = (long)sqlite3_column_int64(st, 10),
        .last_error = col_text(st, 11),
        .tries = col_text(st, 12),
    };
    return e->delivery(e->data, &d);
}

/* File by file: a job's deliveries are in its file, in the order they were made. */
static int sq_load_deliveries(flowd_store_t *store, flowd_store_delivery_cb each, void *data) {
    sqlite_store_t *s = store_of(store);
    sq_each_t e = {.delivery = each, .data = data};
    int rc = 0;
    for (unsigned i = 0; rc == 0 && i < s->nfiles; i++)
        rc = each_row(s->files[i],
                      "SELECT id, job, tenant, url, type, body, created_us, state, attempts,"
                      " next_us, last_status, last_error, tries FROM deliveries"
                      " ORDER BY created_us, id",
                      "deliveries", delivery_row, &e);
    return rc;
}

static int flow_row(sqlite3_stmt *st, const sq_each_t *e) {
    json_t *doc = col_json(st, 1);
    int rc = e->flow(e->data, col_text(st, 0), doc);
    json_decref(doc);
    return rc;
}

static int sq_load_flows(flowd_store_t *store, flowd_store_flow_cb each, void *data) {
    sq_each_t e = {.flow = each, .data = data};
    return each_row(first_file(store), "SELECT name, document FROM flows ORDER BY updated_us", "flows",
                    flow_row, &e);
}

static int schedule_row(sqlite3_stmt *st, const sq_each_t *e) {
    flowd_stored_schedule_t sched = {.name = col_text(st, 0),
                                     .tenant = col_text(st, 1),
                                     .definition = col_text(st, 2),
                                     .next = sqlite3_column_int64(st, 3),
                                     .last_job = col_text(st, 4),
                                     .last_run = sqlite3_column_int64(st, 5)};
    return e->schedule(e->data, &sched);
}

static int sq_load_schedules(flowd_store_t *store, flowd_store_schedule_cb each, void *data) {
    sq_each_t e = {.schedule = each, .data = data};
    return each_row(first_file(store),
                    "SELECT name, tenant, definition, next_s, last_job, last_run_s"
                    " FROM schedules ORDER BY name",
                    "schedules", schedule_row, &e);
}

/* ---- opening and closing ---- */

/* The writer's statements, made when the file opens and finalized when it closes: where each is
 * kept in sq_file_t, and its SQL. */
static const struct {
    size_t at;
    const char *sql;
} statements[] = {
    {offsetof(sq_file_t, ins_job),
     "INSERT INTO jobs (id, seq, flow, digest, created_us, idem_key, body_hash,"
     " params, shared, tenant, callback, start_at_us, priority, conc_key, conc_limit,"
     " origin, resume_node, traceparent)"
     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
    {offsetof(sq_file_t, ins_version),
     "INSERT OR IGNORE INTO flow_versions (digest, document) VALUES (?, ?)"},
    {offsetof(sq_file_t, upd_checkpoint),
     "UPDATE jobs SET status = ?, resume_node = ?, tries = ?, steps = ?,"
     " started_us = ?, waiting_for = ?, visits = ? WHERE seq = ?"},
    {offsetof(sq_file_t, ins_step),
     "INSERT OR REPLACE INTO steps (job, seq, data) VALUES (?, ?, ?)"},
    {offsetof(sq_file_t, upd_finish),
     "UPDATE jobs SET status = ?, steps = ?, started_us = ?, finished_us = ?,"
     " shared = COALESCE(?, shared), last_action = ?, error_code = ?,"
     " error_message = ?, error_node = ?, totals = ?, resume_node = ?,"
     " base_shared = ?, base_step = ?, waiting_for = NULL WHERE seq = ?"},
    {offsetof(sq_file_t, del_job), "DELETE FROM jobs WHERE id = ?"},
    {offsetof(sq_file_t, del_steps),
     "DELETE FROM steps WHERE job = (SELECT seq FROM jobs WHERE id = ?)"},
    {offsetof(sq_file_t, put_store),
     "INSERT OR REPLACE INTO stores (job, step, shared) VALUES (?, ?, ?)"},
    {offsetof(sq_file_t, del_store),
     "DELETE FROM stores WHERE job = (SELECT seq FROM jobs WHERE id = ?)"},
    {offsetof(sq_file_t, prune_stores),
     "DELETE FROM stores WHERE job = ?1 AND step <> ?3 AND step <> COALESCE(("
     "SELECT MAX(step) FROM stores WHERE job = ?1 AND step <= ?2), -1)"},
    {offsetof(sq_file_t, put_flow),
     "INSERT OR REPLACE INTO flows (name, document, updated_us) VALUES (?, ?, ?)"},
    {offsetof(sq_file_t, sched_run),
     "UPDATE schedules SET next_s = ?, last_job = ?, last_run_s = ?"
     " WHERE name = ? AND next_s = ?"},
    {offsetof(sq_file_t, sched_put),
     "INSERT INTO schedules (name, tenant, definition, next_s, updated_us)"
     " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET tenant = excluded.tenant,"
     " definition = excluded.definition, next_s = excluded.next_s,"
     " updated_us = excluded.updated_us"},
    {offsetof(sq_file_t, sched_del), "DELETE FROM schedules WHERE name = ?"},
    {offsetof(sq_file_t, sched_skip),
     "UPDATE schedules SET next_s = ?, skipped = skipped + 1"
     " WHERE name = ? AND next_s = ?"},
    /* a delivery already stored stays as it is: the job made it again after a crash */
    {offsetof(sq_file_t, ins_delivery),
     "INSERT OR IGNORE INTO deliveries (id, state, attempts, next_us, last_status,"
     " last_error, tries, job, tenant, url, type, body, created_us)"
     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
    {offsetof(sq_file_t, upd_delivery),
     "UPDATE deliveries SET state = ?2, attempts = ?3, next_us = ?4,"
     " last_status = ?5, last_error = ?6, tries = ?7 WHERE id = ?1"},
    {offsetof(sq_file_t, del_delivery_orphan),
     "DELETE FROM deliveries WHERE id = ? AND NOT EXISTS"
     " (SELECT 1 FROM jobs WHERE jobs.id = deliveries.job)"},
    {offsetof(sq_file_t, del_deliveries),
     "DELETE FROM deliveries WHERE job = ? AND state <> 'pending'"},
};

static sqlite3_stmt **statement_at(sq_file_t *f, size_t i) {
    return (sqlite3_stmt **)((char *)f + statements[i].at);
}

static void file_close(sq_file_t *f) {
    flowd_writer_free(f->writer); /* writes what is still queued */
    if (f->cstarted) {
        pthread_mutex_lock(&f->clock);
        f->cclosing = 1;
        pthread_cond_signal(&f->ccond);
        pthread_mutex_unlock(&f->clock);
        pthread_join(f->cthread, NULL);
    }
    if (f->cdb != NULL)
        sqlite3_close(f->cdb); /* before the writer's: the last connection to close empties the
                                * log */
    for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++)
        sqlite3_finalize(*statement_at(f, i));
    if (f->db != NULL)
        sqlite3_close(f->db);
    pthread_mutex_destroy(&f->clock);
    pthread_cond_destroy(&f->ccond);
    free(f->path);
    free(f);
}

static void sq_close(flowd_store_t *store) {
    sqlite_store_t *s = store_of(store);
    for (unsigned i = 0; s->files != NULL && i < s->nfiles; i++)
        if (s->files[i] != NULL)
            file_close(s->files[i]);
    free(s->files);
    json_decref(s->moved);
    pthread_mutex_destroy(&s->moved_lock);
    free(s);
}

static const flowd_store_ops_t sqlite_ops = {
    .patches = 1,
    .shared_at = sq_shared_at,
    .name = "sqlite",
    .immediate = 0,
    .create = sq_create,
    .checkpoint = sq_checkpoint,
    .finish = sq_finish,
    .remove = sq_remove,
    .load = sq_load,
    .put_flow = sq_put_flow,
    .load_flows = sq_load_flows,
    .release = sq_release,
    .backlog = sq_backlog,
    .close = sq_close,
    .put_schedule = sq_put_schedule,
    .load_schedules = sq_load_schedules,
    .create_run = sq_create_run,
    .skip_run = sq_skip_run,
    .delivery = sq_delivery,
    .load_deliveries = sq_load_deliveries,
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS jobs ("
    " seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, flow TEXT NOT NULL, digest TEXT,"
    " status TEXT NOT NULL DEFAULT 'queued', created_us INTEGER NOT NULL, started_us INTEGER NOT NULL DEFAULT 0,"
    " finished_us INTEGER NOT NULL DEFAULT 0, idem_key TEXT, body_hash INTEGER NOT NULL DEFAULT 0,"
    " params TEXT, shared TEXT NOT NULL, resume_node TEXT, tries INTEGER NOT NULL DEFAULT 0,"
    " steps INTEGER NOT NULL DEFAULT 0, last_action TEXT, waiting_for TEXT, error_code TEXT,"
    " error_message TEXT, error_node TEXT, totals TEXT,"
    " tenant TEXT NOT NULL DEFAULT '" FLOWD_DEFAULT_TENANT "', callback TEXT,"
    " start_at_us INTEGER NOT NULL DEFAULT 0, priority INTEGER NOT NULL DEFAULT 5, conc_key TEXT,"
    " conc_limit INTEGER NOT NULL DEFAULT 0, origin TEXT, base_shared TEXT, base_step INTEGER,"
    " visits INTEGER, traceparent TEXT, UNIQUE (tenant, idem_key));"
    "CREATE TABLE IF NOT EXISTS stores (job INTEGER NOT NULL, step INTEGER NOT NULL,"
    " shared TEXT NOT NULL, PRIMARY KEY (job, step));"
    "CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, job TEXT NOT NULL, tenant TEXT NOT NULL,"
    " url TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL, created_us INTEGER NOT NULL,"
    " state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_us INTEGER NOT NULL DEFAULT 0,"
    " last_status INTEGER NOT NULL DEFAULT 0, last_error TEXT, tries TEXT);"
    "CREATE INDEX IF NOT EXISTS deliveries_job ON deliveries (job);"
    "CREATE TABLE IF NOT EXISTS steps (job INTEGER NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,"
    " PRIMARY KEY (job, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS flow_versions (digest TEXT PRIMARY KEY, document TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS flows (name TEXT PRIMARY KEY, document TEXT, updated_us INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS schedules (name TEXT PRIMARY KEY, tenant TEXT NOT NULL, definition TEXT NOT NULL,"
    " next_s INTEGER NOT NULL, last_job TEXT, last_run_s INTEGER NOT NULL DEFAULT 0,"
    " skipped INTEGER NOT NULL DEFAULT 0, updated_us INTEGER NOT NULL);";

static int prepare(sq_file_t *f, const char *sql, sqlite3_stmt **st) {
    int rc = sqlite3_prepare_v3(f->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Version 1 keyed jobs by their text id and steps by (job_id, seq); version 2 keys both by the job's
 * integer seq, which took the benchmark's accepted jobs/s from about 9 k to 18 k. The copy runs in
 * one transaction, so a crash in the middle leaves a version 1 file. It makes the tables of this
 * version (the schema below), so a version 1 file goes straight to it. */
static const char migrate_1_to_2[] =
    "BEGIN;"
    "ALTER TABLE jobs RENAME TO jobs_v1;"
    "ALTER TABLE steps RENAME TO steps_v1;"
    "DROP INDEX IF EXISTS jobs_seq;"
    "%s"
    "INSERT INTO jobs (seq, id, flow, digest, status, created_us, started_us, finished_us, idem_key, body_hash,"
    " params, shared, resume_node, tries, steps, last_action, waiting_for, error_code, error_message, error_node,"
    " totals) SELECT seq, id, flow, digest, status, created_us, started_us, finished_us, idem_key, body_hash,"
    " params, shared, resume_node, tries, steps, last_action, waiting_for, error_code, error_message, error_node,"
    " totals FROM jobs_v1;"
    "INSERT INTO steps (job, seq, data) SELECT j.seq, s.seq, s.data FROM steps_v1 s JOIN jobs_v1 j ON j.id = s.job_id;"
    "DROP TABLE steps_v1;"
    "DROP TABLE jobs_v1;"
    "UPDATE meta SET value = '" STRINGIFY(SCHEMA_VERSION) "' WHERE key = 'schema_version';"
    "COMMIT;";

/* Version 3 (and so 4: this copies into the tables of this version) adds each job's tenant (the tenant of the key that made it; the jobs from before belong
 * to tenant "default", which is also every caller's when flowd runs without keys), and makes an
 * Idempotency-Key unique per tenant instead of over all jobs. SQLite cannot drop a column's UNIQUE,
 * so the table is copied, in one transaction. */
static const char migrate_2_to_3[] =
    "BEGIN;"
    "ALTER TABLE jobs RENAME TO jobs_v2;"
    "%s"
    "INSERT INTO jobs (seq, id, flow, digest, status, created_us, started_us, finished_us,"
    " idem_key, body_hash, params, shared, resume_node, tries, steps, last_action, waiting_for,"
    " error_code, error_message, error_node, totals)"
    " SELECT seq, id, flow, digest, status, created_us, started_us, finished_us,"
    " idem_key, body_hash, params, shared, resume_node, tries, steps, last_action, waiting_for,"
    " error_code, error_message, error_node, totals FROM jobs_v2;"
    "DROP TABLE jobs_v2;"
    "UPDATE meta SET value = '" STRINGIFY(SCHEMA_VERSION) "' WHERE key = 'schema_version';"
    "COMMIT;";

/* Version 4 adds each job's callback (webhooks.h) and the deliveries of callbacks (the table is
 * made by the schema that runs after). Versions 1 and 2 go straight to this version: their copies
 * make the tables as this version has them. */
static const char migrate_3_to_4[] =
    "BEGIN;"
    "ALTER TABLE jobs ADD COLUMN callback TEXT;"
    "UPDATE meta SET value = '4' WHERE key = 'schema_version';"
    "COMMIT;";

/* Version 5 adds the schedules table, which the schema makes (IF NOT EXISTS) over an older file:
 * nothing is copied, so 4 -> 5 has no SQL of its own. Version 6 adds when a job may start, its priority and its concurrency key (scheduler.h); the
 * jobs from before start at once, at the default priority, with no key. */
static const char migrate_5_to_6[] =
    "BEGIN;"
    "ALTER TABLE jobs ADD COLUMN start_at_us INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 5;"
    "ALTER TABLE jobs ADD COLUMN conc_key TEXT;"
    "ALTER TABLE jobs ADD COLUMN conc_limit INTEGER NOT NULL DEFAULT 0;"
    "UPDATE meta SET value = '6' WHERE key = 'schema_version';"
    "COMMIT;";

/* Version 7 keeps checkpoints as patches (patch.h) and adds the stores table (which the schema
 * makes): a job's last whole shared store and the step it is as of, and the one a redrive starts
 * from when it is older; the steps after them carry their patches in their entries. jobs.shared
 * is then {} until the job ends and its final store after: a store in the job's row would make
 * every checkpoint rewrite it (SQLite writes a row whole). A job from before has no row in
 * stores: its jobs.shared is as of its last checkpoint. It also adds what redrives need (POST
 * /v1/jobs/{id}/redrive): a job's origin (the job a redrive made it from) and, for a job that
 * failed or was canceled, the step its store before the root-level step that failed is as of
 * (base_step, with that step's node in resume_node; base_shared where a whole store was kept
 * instead). The jobs from before have neither: they cannot be redriven. */
static const char migrate_6_to_7[] =
    "BEGIN;"
    "ALTER TABLE jobs ADD COLUMN origin TEXT;"
    "ALTER TABLE jobs ADD COLUMN base_shared TEXT;"
    "ALTER TABLE jobs ADD COLUMN base_step INTEGER;"
    "UPDATE meta SET value = '7' WHERE key = 'schema_version';"
    "COMMIT;";

/* Version 8 says in meta which file of how many a file is (--store-shards); a file from before is
 * the one file of its store, which open writes once the version is 8. No table changes, but an
 * older flowd must not open the first file of several and miss the jobs of the others. */
static const char migrate_7_to_8[] =
    "BEGIN;"
    "UPDATE meta SET value = '8' WHERE key = 'schema_version';"
    "COMMIT;";

/* Version 9 keeps each running job's root-level steps finished (visits: what its visits number on
 * from after a restart, an http node's Idempotency-Key), so that load reads only the last steps of a
 * job (flowd_store_sqlite_set_history) instead of its whole history, which for a job of millions of
 * steps took minutes and gigabytes at every start. A job from before has none until its next
 * checkpoint: load counts its root-level steps in the file (one pass, nothing kept). */
static const char migrate_8_to_9[] =
    "BEGIN;"
    "ALTER TABLE jobs ADD COLUMN visits INTEGER;"
    "UPDATE meta SET value = '9' WHERE key = 'schema_version';"
    "COMMIT;";

/* Version 10 keeps the W3C trace context of the POST that made a job (traceparent), so that a job
 * resumed after a restart calls out in the same trace as before it. A job from before has none:
 * it calls out without one, as it did. */
static const char migrate_9_to_10[] =
    "BEGIN;"
    "ALTER TABLE jobs ADD COLUMN traceparent TEXT;"
    "UPDATE meta SET value = '10' WHERE key = 'schema_version';"
    "COMMIT;";

static int schema_version(sq_file_t *f) {
    sqlite3_stmt *st = NULL;
    int version = 0;
    if (sqlite3_prepare_v2(f->db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = (int)sqlite3_column_int(st, 0); /* the text "1" reads as 1 */
    sqlite3_finalize(st);
    return version;
}

/* Creates the tables of a new file, brings an older file up to this version, or refuses a newer one. */
static int migrate(sq_file_t *f, char *err, size_t errlen) {
    char *msg = NULL, *sql = NULL;
    int rc = FLOW_EIO;
    int version = schema_version(f);
    if (version > SCHEMA_VERSION) {
        snprintf(err, errlen, "the file has schema version %d, newer than this flowd's %d", version, SCHEMA_VERSION);
        return FLOW_EINVAL;
    }
    if (version >= 1 && version < SCHEMA_VERSION) {
        flowd_log(FLOW_LOG_INFO, "store: %s: schema version %d -> %d", f->path, version,
                  SCHEMA_VERSION);
        /* 1 and 2 copy their rows into the tables of this version; from 3 on each version's step
         * to the next, a transaction each, one after the other (4 -> 5 is only the schedules
         * table, which the schema makes) */
        static const char *const steps[SCHEMA_VERSION] = {
            [3] = migrate_3_to_4, [4] = "",           [5] = migrate_5_to_6, [6] = migrate_6_to_7,
            [7] = migrate_7_to_8, [8] = migrate_8_to_9, [9] = migrate_9_to_10};
        if (version <= 2) {
            sql = sqlite3_mprintf(version == 1 ? migrate_1_to_2 : migrate_2_to_3, schema);
        } else {
            sqlite3_str *all = sqlite3_str_new(f->db);
            for (int v = version; v < SCHEMA_VERSION; v++)
                sqlite3_str_appendall(all, steps[v]);
            sql = sqlite3_str_finish(all);
        }
        if (sql == NULL) {
            snprintf(err, errlen, "out of memory");
            return FLOW_ENOMEM;
        }
        if (sqlite3_exec(f->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
            snprintf(err, errlen, "cannot migrate the schema from version %d: %s", version,
                     msg ? msg : "?");
            sqlite3_exec(f->db, "ROLLBACK", NULL, NULL, NULL);
            goto out;
        }
    }
    if (sqlite3_exec(f->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "cannot create the tables: %s", msg ? msg : "?");
        goto out;
    }
    if (sqlite3_exec(f->db, "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', '"
                            STRINGIFY(SCHEMA_VERSION) "')", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot write the schema version: %s", sqlite3_errmsg(f->db));
        goto out;
    }
    rc = 0;
out:
    sqlite3_free(msg);
    sqlite3_free(sql);
    return rc;
}

/* Opens the file at path (made if it is not there) with its writer and checkpointer. */
static int file_open(const char *path, const char *sync, sq_file_t **out, char *err,
                     size_t errlen) {
    sq_file_t *f = calloc(1, sizeof *f);
    char pragmas[160];
    int rc = FLOW_EIO;
    if (f == NULL || (f->path = strdup(path)) == NULL) {
        free(f);
        snprintf(err, errlen, "out of memory");
        return FLOW_ENOMEM;
    }
    pthread_mutex_init(&f->clock, NULL);
    pthread_cond_init(&f->ccond, NULL);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(path, &f->db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path,
                 f->db ? sqlite3_errmsg(f->db) : "out of memory");
        goto fail;
    }
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA busy_timeout=5000;",
             sync != NULL && strcmp(sync, "normal") == 0 ? "NORMAL" : "FULL");
    if (sqlite3_exec(f->db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(f->db));
        goto fail;
    }
    f->fresh = schema_version(f) == 0;
    if ((rc = migrate(f, err, errlen)) < 0)
        goto fail;
    size_t made = 0;
    while (made < sizeof statements / sizeof statements[0] &&
           prepare(f, statements[made].sql, statement_at(f, made)) == 0)
        made++;
    if (made < sizeof statements / sizeof statements[0]) {
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(f->db));
        rc = FLOW_EIO;
        goto fail;
    }
    if (sqlite3_open_v2(path, &f->cdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(f->cdb, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path,
                 f->cdb ? sqlite3_errmsg(f->cdb) : "out of memory");
        rc = FLOW_EIO;
        goto fail;
    }
    sqlite3_wal_hook(f->db, on_wal_commit, f); /* replaces the automatic checkpoint */
    if (pthread_create(&f->cthread, NULL, checkpoint_main, f) != 0) {
        snprintf(err, errlen, "cannot start the checkpoint thread");
        rc = FLOW_ENOMEM;
        goto fail;
    }
    f->cstarted = 1;
    if (flowd_writer_new(&sqlite_backend, f, &f->writer) < 0) {
        snprintf(err, errlen, "cannot start the store thread");
        rc = FLOW_ENOMEM;
        goto fail;
    }
    *out = f;
    return 0;
fail:
    file_close(f);
    return rc;
}

/* A number kept in meta, or dflt when there is none. */
static unsigned meta_uint(sq_file_t *f, const char *key, unsigned dflt) {
    sqlite3_stmt *st = NULL;
    unsigned v = dflt;
    if (sqlite3_prepare_v2(f->db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            v = (unsigned)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

/* Writes which file of how many f is. */
static int meta_place(sq_file_t *f, unsigned shard, unsigned shards, char *err, size_t errlen) {
    char *sql = sqlite3_mprintf("INSERT OR REPLACE INTO meta (key, value) VALUES ('shard', '%u');"
                                "INSERT OR REPLACE INTO meta (key, value) VALUES ('shards', '%u')",
                                shard, shards);
    int ok = sql != NULL && sqlite3_exec(f->db, sql, NULL, NULL, NULL) == SQLITE_OK;
    sqlite3_free(sql);
    if (!ok)
        snprintf(err, errlen, "%s: cannot write meta: %s", f->path, sqlite3_errmsg(f->db));
    return ok ? 0 : FLOW_EIO;
}

void flowd_store_sqlite_file(const char *path, unsigned i, char *out, size_t len) {
    size_t n = strlen(path);
    if (i == 0)
        snprintf(out, len, "%s", path);
    else if (n > 3 && strcmp(path + n - 3, ".db") == 0)
        snprintf(out, len, "%.*s.%u.db", (int)(n - 3), path, i);
    else
        snprintf(out, len, "%s.%u", path, i);
}

/* Opens the files after the first (which says how many there are, nfiles). A store made now makes
 * them; a store made before must have every one of them, each saying it is that file of that
 * store: a missing or misplaced file would lose the jobs it held without a word. */
static int open_others(sqlite_store_t *s, const char *path, const char *sync, char *err,
                       size_t errlen) {
    int fresh = s->files[0]->fresh;
    for (unsigned i = 1; i < s->nfiles; i++) {
        char p[4096];
        flowd_store_sqlite_file(path, i, p, sizeof p);
        int exists = access(p, F_OK) == 0;
        if (!exists && !fresh) {
            snprintf(err, errlen, "%s is missing: the store of %s has %u files (restore all of "
                     "them from one backup)", p, path, s->nfiles);
            return FLOW_EINVAL;
        }
        if (exists && fresh) {
            snprintf(err, errlen, "%s is there but %s is new: it belongs to another store (move "
                     "it away)", p, path);
            return FLOW_EINVAL;
        }
        int rc = file_open(p, sync, &s->files[i], err, errlen);
        if (rc < 0)
            return rc;
        if (fresh) {
            if ((rc = meta_place(s->files[i], i, s->nfiles, err, errlen)) < 0)
                return rc;
        } else if (meta_uint(s->files[i], "shard", 0) != i ||
                   meta_uint(s->files[i], "shards", 0) != s->nfiles) {
            snprintf(err, errlen, "%s says it is file %u of %u, not file %u of %u of %s", p,
                     meta_uint(s->files[i], "shard", 0), meta_uint(s->files[i], "shards", 0), i,
                     s->nfiles, path);
            return FLOW_EINVAL;
        }
    }
    return 0;
}

void flowd_store_sqlite_set_history(flowd_store_t *store, unsigned steps) {
    store_of(store)->history = steps;
}

int flowd_store_sqlite_new(const char *path, const char *sync, unsigned shards,
                           flowd_store_t **out, char *err, size_t errlen) {
    sqlite_store_t *s = calloc(1, sizeof *s);
    sq_file_t *first = NULL;
    int rc = FLOW_ENOMEM;
    if (s == NULL || (s->moved = json_object()) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return FLOW_ENOMEM;
    }
    pthread_mutex_init(&s->moved_lock, NULL);
    s->base.ops = &sqlite_ops;
    s->base.cluster = NULL;
    if (access(path, F_OK) != 0) {
        /* a new store: no file of an old one may be taken for one of its own */
        for (unsigned i = 1; i <= FLOWD_SQLITE_MAX_SHARDS; i++) {
            char p[4096];
            flowd_store_sqlite_file(path, i, p, sizeof p);
            if (access(p, F_OK) == 0) {
                snprintf(err, errlen, "%s is there but %s is not: it belongs to another store "
                         "(move it away)", p, path);
                rc = FLOW_EINVAL;
                goto fail;
            }
        }
    }
    if ((rc = file_open(path, sync, &first, err, errlen)) < 0)
        goto fail;
    /* the count is the store's from when it was made: a job's file is where its id places it */
    unsigned kept = meta_uint(first, "shards", 0);
    if (kept == 0) {
        kept = first->fresh ? (shards > 0 ? shards : 1) : 1;
        if ((rc = meta_place(first, 0, kept, err, errlen)) < 0)
            goto fail;
    }
    if (shards > 0 && kept != shards)
        flowd_log(FLOW_LOG_INFO, "store: %s was made with --store-shards %u, which it keeps "
                  "(--store-shards %u applies to a new store)", path, kept, shards);
    rc = FLOW_ENOMEM;
    if ((s->files = calloc(kept, sizeof *s->files)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    s->nfiles = kept;
    s->files[0] = first;
    first = NULL;
    if ((rc = open_others(s, path, sync, err, errlen)) < 0)
        goto fail;
    *out = &s->base;
    return 0;
fail:
    if (first != NULL)
        file_close(first);
    sq_close(&s->base);
    return rc;
}

/* ---- flowd backup ---- */

/* Copies the file at src to dst (which must not be there) with SQLite's online backup: a read
 * transaction on src that does not hold its writer back (WAL), retried while src is locked. */
static int backup_file(const char *src, const char *dst, int *jobs, char *err, size_t errlen) {
    sqlite3 *from = NULL, *to = NULL;
    sqlite3_backup *b = NULL;
    int rc = FLOW_EIO;
    if (access(dst, F_OK) == 0) {
        snprintf(err, errlen, "%s is there already (back up into a new directory)", dst);
        return FLOW_EEXIST;
    }
    if (sqlite3_open_v2(src, &from, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", src, from ? sqlite3_errmsg(from) : "?");
        goto out;
    }
    sqlite3_busy_timeout(from, 5000);
    if (sqlite3_open_v2(dst, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK ||
        (b = sqlite3_backup_init(to, "main", from, "main")) == NULL) {
        snprintf(err, errlen, "cannot write %s: %s", dst, to ? sqlite3_errmsg(to) : "?");
        goto out;
    }
    int step;
    for (int tries = 0; (step = sqlite3_backup_step(b, -1)) != SQLITE_DONE; tries++) {
        if ((step != SQLITE_BUSY && step != SQLITE_LOCKED) || tries == 100) {
            snprintf(err, errlen, "cannot copy %s: %s", src, sqlite3_errstr(step));
            goto out;
        }
        sqlite3_sleep(50);
    }
    sqlite3_backup_finish(b);
    b = NULL;
    sqlite3_stmt *st = NULL;
    *jobs = -1;
    if (sqlite3_prepare_v2(to, "SELECT count(*) FROM jobs", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        *jobs = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    rc = 0;
out:
    if (b != NULL)
        sqlite3_backup_finish(b);
    sqlite3_close(to);
    sqlite3_close(from);
    if (rc < 0 && to != NULL)
        unlink(dst);
    return rc;
}

int flowd_store_sqlite_backup(const char *path, const char *dest, FILE *out, char *err,
                              size_t errlen) {
    sq_file_t f = {.path = (char *)path};
    unsigned n = 1;
    if (access(path, R_OK) != 0) {
        snprintf(err, errlen, "%s cannot be read: no store there", path);
        return FLOW_ENOTFOUND;
    }
    if (sqlite3_open_v2(path, &f.db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, f.db ? sqlite3_errmsg(f.db) : "?");
        sqlite3_close(f.db);
        return FLOW_EIO;
    }
    n = meta_uint(&f, "shards", 1);
    sqlite3_close(f.db);
    if (n == 0 || n > FLOWD_SQLITE_MAX_SHARDS) {
        snprintf(err, errlen, "%s says its store has %u files", path, n);
        return FLOW_EINVAL;
    }
    if (mkdir(dest, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot make %s: %s", dest, strerror(errno));
        return FLOW_EIO;
    }
    for (unsigned i = 0; i < n; i++) {
        char src[4096], dst[4096 + 256];
        flowd_store_sqlite_file(path, i, src, sizeof src);
        const char *name = strrchr(src, '/');
        snprintf(dst, sizeof dst, "%s/%s", dest, name ? name + 1 : src);
        int jobs = 0, rc = backup_file(src, dst, &jobs, err, errlen);
        if (rc < 0)
            return rc;
        fprintf(out, "%s -> %s (%d jobs)\n", src, dst, jobs);
    }
    return 0;
}
