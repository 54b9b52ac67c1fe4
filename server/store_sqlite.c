/* store_sqlite.c: the SQLite store of store.h. One file in WAL mode, written only by a store thread:
 * callers queue operations (the loop its checkpoints, HTTP threads their new jobs) and the thread
 * commits everything that came together in one transaction, so that a burst of submissions costs a
 * few commits, not one each (group commit). A new job's done callback runs after the commit that
 * holds its row, so a 202 means the job is on disk. The loop thread never waits on the disk.
 *
 * Tables: jobs (a row per job: its state as of its last checkpoint, its final state once ended),
 * steps (the history, appended a row per step: a checkpoint costs the same at the thousandth step as
 * at the first), flow_versions (the document of every version of a flow a job started with, by its
 * digest), flows (what PUT and DELETE /v1/flows did), meta (the schema's version). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "auth.h"
#include "flow/doc.h"
#include "jobs.h"
#include "log.h"
#include "render.h"
#include "store.h"

#define SCHEMA_VERSION 3
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

enum op_kind { OP_CREATE, OP_CHECKPOINT, OP_FINISH, OP_REMOVE, OP_FLOW };

typedef struct op {
    struct op *next;
    enum op_kind kind;
    char id[FLOWD_ID_LEN + 1];
    int status;
    uint64_t seq;              /* the job's row */
    uint64_t a, b, c, d;       /* create: -, created_us, body_hash; checkpoint: steps, started_us,
                                * step_seq, tries */
    char *text1, *text2, *text3, *text4, *text5, *text6, *text7;
    flowd_store_end_t end;     /* finish */
    int superseded;            /* checkpoint: a later op of this batch rewrites the job's row */
    flowd_store_done_cb done;  /* create */
    void *data;
    flowd_store_wait_t *wait;  /* put_flow: the caller waits for the commit */
} op_t;

typedef struct sqlite_store {
    flowd_store_t base;
    sqlite3 *db;
    char *path;
    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    op_t *head, *tail;
    int closing;
    uint64_t takes;        /* under lock: batches the store thread took */
    int released;          /* loop thread: shutdown; what still runs is left as it was stored */
    /* the checkpointer: its own connection copies the log into the file, off the store thread */
    sqlite3 *cdb;
    pthread_t cthread;
    int cstarted;
    int ckpt_wanted;       /* under lock */
    pthread_cond_t ccond;
    /* statements, used by the store thread only (and by load, before it starts) */
    sqlite3_stmt *ins_job, *ins_version, *upd_checkpoint, *ins_step, *upd_finish, *del_job, *del_steps,
        *put_flow;
    /* digests of flow versions known to be in the file (store thread) */
    char (*digests)[17];
    size_t ndigests, capdigests;
} sqlite_store_t;

static void op_free(op_t *op) {
    free(op->text1);
    free(op->text2);
    free(op->text3);
    free(op->text4);
    free(op->text5);
    free(op->text6);
    free(op->text7);
    flowd_store_end_free(&op->end);
    free(op);
}

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

static char *dump(const json_t *v) {
    return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

/* With the lock held. */
static void enqueue_locked(sqlite_store_t *s, op_t *op) {
    op->next = NULL;
    if (s->tail != NULL)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    pthread_cond_signal(&s->cond);
}

static void enqueue(sqlite_store_t *s, op_t *op) {
    pthread_mutex_lock(&s->lock);
    enqueue_locked(s, op);
    pthread_mutex_unlock(&s->lock);
}

/* ---- the store thread ---- */

static int bind_text(sqlite3_stmt *st, int i, const char *text) {
    return text ? sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static int run(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : rc;
}

static int known_digest(sqlite_store_t *s, const char *digest) {
    for (size_t i = 0; i < s->ndigests; i++)
        if (strcmp(s->digests[i], digest) == 0)
            return 1;
    return 0;
}

static void remember_digest(sqlite_store_t *s, const char *digest) {
    if (s->ndigests == s->capdigests) {
        size_t cap = s->capdigests ? s->capdigests * 2 : 16;
        char(*d)[17] = realloc(s->digests, cap * sizeof *d);
        if (d == NULL)
            return; /* it will be written again: INSERT OR IGNORE */
        s->digests = d;
        s->capdigests = cap;
    }
    snprintf(s->digests[s->ndigests++], 17, "%s", digest);
}

/* text1 flow, text2 digest, text3 document (or NULL when known), text4 idem key, text5 params,
 * text6 shared, text7 tenant */
static int apply_create(sqlite_store_t *s, op_t *op) {
    int rc;
    if (op->text2 != NULL && op->text3 != NULL && !known_digest(s, op->text2)) {
        sqlite3_bind_text(s->ins_version, 1, op->text2, -1, SQLITE_STATIC);
        sqlite3_bind_text(s->ins_version, 2, op->text3, -1, SQLITE_STATIC);
        if ((rc = run(s->ins_version)) != 0)
            return rc;
        remember_digest(s, op->text2);
    }
    sqlite3_stmt *st = s->ins_job;
    sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)op->seq);
    bind_text(st, 3, op->text1);
    bind_text(st, 4, op->text2);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)op->b);
    bind_text(st, 6, op->text4);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)op->c);
    bind_text(st, 8, op->text5);
    bind_text(st, 9, op->text6 ? op->text6 : "{}");
    bind_text(st, 10, op->text7);
    return run(st);
}

/* text1 resume node, text2 shared (NULL: unchanged), text3 step entry, text4 waiting_for */
static int apply_checkpoint(sqlite_store_t *s, op_t *op) {
    sqlite3_stmt *st = s->upd_checkpoint;
    int rc;
    sqlite3_bind_text(st, 1, flow_status_name((flow_status_t)op->status), -1, SQLITE_STATIC);
    bind_text(st, 2, op->text1);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)op->d);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)op->a);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)op->b);
    bind_text(st, 6, op->text2);
    bind_text(st, 7, op->text4);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)op->seq);
    if (!op->superseded && (rc = run(st)) != 0)
        return rc;
    if (op->text3 == NULL)
        return 0;
    sqlite3_bind_int64(s->ins_step, 1, (sqlite3_int64)op->seq);
    sqlite3_bind_int64(s->ins_step, 2, (sqlite3_int64)op->c);
    sqlite3_bind_text(s->ins_step, 3, op->text3, -1, SQLITE_STATIC);
    return run(s->ins_step);
}

static int apply_finish(sqlite_store_t *s, op_t *op) {
    sqlite3_stmt *st = s->upd_finish;
    const flowd_store_end_t *e = &op->end;
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
    sqlite3_bind_int64(st, 11, (sqlite3_int64)op->seq);
    return run(st);
}

static int apply_remove(sqlite_store_t *s, op_t *op) {
    int rc;
    /* the steps first: they find the job's row through its id */
    sqlite3_bind_text(s->del_steps, 1, op->id, -1, SQLITE_STATIC);
    if ((rc = run(s->del_steps)) != 0)
        return rc;
    sqlite3_bind_text(s->del_job, 1, op->id, -1, SQLITE_STATIC);
    return run(s->del_job);
}

/* text1 name, text2 document (NULL: deleted) */
static int apply_flow(sqlite_store_t *s, op_t *op) {
    bind_text(s->put_flow, 1, op->text1);
    bind_text(s->put_flow, 2, op->text2);
    sqlite3_bind_int64(s->put_flow, 3, (sqlite3_int64)flow_wall_us());
    return run(s->put_flow);
}

static int apply(sqlite_store_t *s, op_t *op) {
    switch (op->kind) {
    case OP_CREATE: return apply_create(s, op);
    case OP_CHECKPOINT: return apply_checkpoint(s, op);
    case OP_FINISH: return apply_finish(s, op);
    case OP_REMOVE: return apply_remove(s, op);
    case OP_FLOW: return apply_flow(s, op);
    }
    return 0;
}

/* Tells everyone who waits on this batch how it went, and frees it. */
static void settle(op_t *batch, int err) {
    while (batch != NULL) {
        op_t *op = batch;
        batch = op->next;
        if (op->kind == OP_CREATE && op->done != NULL)
            op->done(op->data, err);
        if (op->kind == OP_FLOW && op->wait != NULL)
            flowd_store_wait_done(op->wait, err);
        op_free(op);
    }
}

/* ---- checkpoints ---- */

/* SQLite's own automatic checkpoint runs inside the commit that crosses its threshold, on the store
 * thread: that commit then copies the whole log into the file and syncs it, and every 202 waiting
 * on it waits too (a p99 of tens of milliseconds). Here the store thread only asks, and the
 * checkpointer does the copying on its own connection meanwhile; a PASSIVE checkpoint never blocks
 * the writer. Should the checkpointer fall far behind, the store thread checkpoints itself, which
 * bounds the log. */
enum { CKPT_PAGES = 1000, CKPT_INLINE_PAGES = 16 * CKPT_PAGES };

static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int pages) {
    sqlite_store_t *s = arg;
    if (pages >= CKPT_INLINE_PAGES) {
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    } else if (pages >= CKPT_PAGES) {
        pthread_mutex_lock(&s->lock);
        s->ckpt_wanted = 1;
        pthread_cond_signal(&s->ccond);
        pthread_mutex_unlock(&s->lock);
    }
    return SQLITE_OK;
}

static void *checkpoint_main(void *arg) {
    sqlite_store_t *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->ckpt_wanted && !s->closing)
            pthread_cond_wait(&s->ccond, &s->lock);
        if (s->closing)
            break;
        s->ckpt_wanted = 0;
        pthread_mutex_unlock(&s->lock);
        int rc = sqlite3_wal_checkpoint_v2(s->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            flowd_log(FLOW_LOG_WARN, "store: a checkpoint failed: %s", sqlite3_errmsg(s->cdb));
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* The shared store an op writes into the job's row (NULL: unchanged), or NULL for other ops. */
static char **shared_text(op_t *op) {
    return op->kind == OP_CHECKPOINT ? &op->text2 : op->kind == OP_FINISH ? &op->end.shared : NULL;
}

/* A job that takes several steps between two commits need not have its row rewritten for each:
 * only its last checkpoint or its finish matters, as long as the newest shared store goes with it.
 * Every step's history entry is still written. Walking the batch newest first, a table keyed by the
 * job's seq holds the job's last op. */
static void supersede(op_t *batch) {
    size_t n = 0, cap = 16;
    for (op_t *op = batch; op != NULL; op = op->next)
        n++;
    while (cap < 2 * n)
        cap *= 2;
    op_t **ops = malloc(n * sizeof *ops), **last = calloc(cap, sizeof *last);
    if (ops == NULL || last == NULL)
        goto out; /* every row is written: slower, still right */
    n = 0;
    for (op_t *op = batch; op != NULL; op = op->next)
        ops[n++] = op;
    while (n-- > 0) {
        op_t *op = ops[n];
        if (shared_text(op) == NULL)
            continue;
        size_t h = (size_t)(op->seq * 0x9E3779B97F4A7C15ull) & (cap - 1);
        while (last[h] != NULL && last[h]->seq != op->seq)
            h = (h + 1) & (cap - 1);
        if (last[h] == NULL) {
            last[h] = op;
            continue;
        }
        if (op->kind != OP_CHECKPOINT)
            continue; /* a finish followed by more (a restart of a job) keeps its row write */
        op->superseded = 1;
        char **mine = shared_text(op), **theirs = shared_text(last[h]);
        if (*theirs == NULL && *mine != NULL) {
            *theirs = *mine;
            *mine = NULL;
        }
    }
out:
    free(ops);
    free(last);
}

static void *store_main(void *arg) {
    sqlite_store_t *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (s->head == NULL && !s->closing)
            pthread_cond_wait(&s->cond, &s->lock);
        op_t *batch = s->head;
        s->head = s->tail = NULL;
        s->takes++;
        pthread_mutex_unlock(&s->lock);
        if (batch == NULL)
            break; /* closing, and nothing left */
        supersede(batch);
        int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        for (op_t *op = batch; op != NULL && rc == SQLITE_OK; op = op->next) {
            int r = apply(s, op);
            /* a failed statement fails its own operation only when it is a create (its job is
             * refused); a checkpoint of a job removed meanwhile changes nothing, which is fine */
            if (r != 0 && op->kind == OP_CREATE) {
                flowd_log(FLOW_LOG_ERROR, "store: job %s could not be written: %s", op->id, sqlite3_errmsg(s->db));
                rc = r;
            } else if (r != 0) {
                flowd_log(FLOW_LOG_WARN, "store: job %s: %s", op->id, sqlite3_errmsg(s->db));
            }
        }
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            flowd_log(FLOW_LOG_ERROR, "store: a commit failed: %s", sqlite3_errmsg(s->db));
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        }
        settle(batch, rc == SQLITE_OK ? 0 : FLOW_EIO);
    }
    return NULL;
}

/* ---- the calls ---- */

static int sq_create(flowd_store_t *store, flowd_job_t *job, json_t *shared, json_t *params,
                     flowd_store_done_cb done, void *data) {
    sqlite_store_t *s = (sqlite_store_t *)store;
    op_t *op = calloc(1, sizeof *op);
    if (op == NULL)
        return FLOW_ENOMEM;
    const char *digest = flow_doc_digest(job->def);
    op->kind = OP_CREATE;
    memcpy(op->id, job->id, sizeof op->id);
    op->seq = job->seq;
    op->b = job->created_us;
    op->c = job->body_hash;
    op->text1 = strdup(flow_def_name(job->def));
    op->text2 = dup_or_null(digest);
    /* the document goes with every new job; the store thread writes it once per digest */
    op->text3 = digest ? dump(flow_doc_of(job->def)) : NULL;
    op->text4 = dup_or_null(job->idem_key);
    op->text5 = dump(params);
    op->text6 = dump(shared);
    op->text7 = strdup(job->tenant);
    op->done = done;
    op->data = data;
    if (op->text1 == NULL || (digest && (op->text2 == NULL || op->text3 == NULL)) ||
        (shared && op->text6 == NULL) || op->text7 == NULL) {
        op_free(op);
        return FLOW_ENOMEM;
    }
    enqueue(s, op);
    return 0;
}

static void sq_checkpoint(flowd_store_t *store, flowd_job_t *job, const flowd_checkpoint_t *cp) {
    sqlite_store_t *s = (sqlite_store_t *)store;
    if (s->released) {
        free(cp->shared);
        return;
    }
    op_t *op = calloc(1, sizeof *op);
    if (op == NULL) {
        free(cp->shared);
        flowd_log(FLOW_LOG_WARN, "store: job %s: a checkpoint was lost (out of memory)", job->id);
        return;
    }
    op->kind = OP_CHECKPOINT;
    memcpy(op->id, job->id, sizeof op->id);
    op->seq = job->seq;
    op->status = cp->status;
    op->a = cp->steps;
    op->b = cp->started_us;
    op->c = cp->step_seq;
    op->d = cp->tries;
    op->text1 = dup_or_null(cp->resume_node);
    op->text2 = cp->shared;
    op->text3 = cp->step ? strndup(cp->step, cp->step_len) : NULL;
    op->text4 = dup_or_null(cp->waiting_for);
    pthread_mutex_lock(&s->lock);
    if (op->text2 != NULL) {
        /* the older one goes in the same batch, superseded: its store need not be kept */
        op_t *older = job->queued_checkpoint;
        if (older != NULL && job->queued_take == s->takes) {
            free(older->text2);
            older->text2 = NULL;
        }
        job->queued_checkpoint = op;
        job->queued_take = s->takes;
    }
    enqueue_locked(s, op);
    pthread_mutex_unlock(&s->lock);
}

static void sq_finish(flowd_store_t *store, flowd_job_t *job) {
    sqlite_store_t *s = (sqlite_store_t *)store;
    if (s->released)
        return; /* canceled by the shutdown: it resumes at the next start */
    op_t *op = calloc(1, sizeof *op);
    if (op == NULL) {
        flowd_log(FLOW_LOG_WARN, "store: job %s: its end was not stored (out of memory)", job->id);
        return;
    }
    op->kind = OP_FINISH;
    memcpy(op->id, job->id, sizeof op->id);
    op->seq = job->seq;
    flowd_job_lock(job);
    flowd_store_end_copy(job, &op->end);
    flowd_job_unlock(job);
    enqueue(s, op);
}

static void sq_remove(flowd_store_t *store, const char *id) {
    sqlite_store_t *s = (sqlite_store_t *)store;
    if (s->released)
        return; /* the next start drops it again if it is still due */
    op_t *op = calloc(1, sizeof *op);
    if (op == NULL)
        return;
    op->kind = OP_REMOVE;
    snprintf(op->id, sizeof op->id, "%s", id);
    enqueue(s, op);
}

static int sq_put_flow(flowd_store_t *store, const char *name, json_t *doc) {
    sqlite_store_t *s = (sqlite_store_t *)store;
    flowd_store_wait_t wait;
    op_t *op = calloc(1, sizeof *op);
    if (op == NULL || (op->text1 = strdup(name)) == NULL || (doc != NULL && (op->text2 = dump(doc)) == NULL)) {
        if (op != NULL)
            op_free(op);
        return FLOW_ENOMEM;
    }
    op->kind = OP_FLOW;
    flowd_store_wait_init(&wait);
    op->wait = &wait;
    enqueue(s, op);
    return flowd_store_wait(&wait);
}

/* ---- load ---- */

static const char *col_text(sqlite3_stmt *st, int i) {
    return (const char *)sqlite3_column_text(st, i);
}

static json_t *col_json(sqlite3_stmt *st, int i) {
    const char *t = col_text(st, i);
    return t ? json_loads(t, JSON_DECODE_ANY, NULL) : NULL;
}

static int error_code_of(const char *name) {
    if (name == NULL)
        return 0;
    for (int code = FLOW__ERR_FIRST + 1; code < FLOW__ERR_LAST; code++)
        if (strcmp(flow_err_name(code), name) == 0)
            return code;
    return FLOW_EFAILED;
}

static json_t *history_of(sqlite3_stmt *steps, uint64_t seq) {
    json_t *all = json_array();
    sqlite3_bind_int64(steps, 1, (sqlite3_int64)seq);
    while (all != NULL && sqlite3_step(steps) == SQLITE_ROW) {
        json_t *step = col_json(steps, 0);
        if (step != NULL)
            json_array_append_new(all, step);
    }
    sqlite3_reset(steps);
    return all;
}

static int sq_load(flowd_store_t *store, flowd_store_each_cb each, void *data) {
    sqlite_store_t *s = (sqlite_store_t *)store;
    static const char q[] =
        "SELECT j.id, j.flow, v.document, j.status, j.created_us, j.started_us, j.finished_us, j.idem_key,"
        " j.body_hash, j.params, j.shared, j.resume_node, j.tries, j.steps, j.last_action, j.waiting_for,"
        " j.error_code, j.error_message, j.error_node, j.totals, j.seq, j.tenant"
        " FROM jobs j LEFT JOIN flow_versions v ON v.digest = j.digest ORDER BY j.seq";
    sqlite3_stmt *st = NULL, *steps = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(s->db, q, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT data FROM steps WHERE job = ? ORDER BY seq", -1, &steps, NULL) != SQLITE_OK) {
        flowd_log(FLOW_LOG_ERROR, "store: cannot read the jobs: %s", sqlite3_errmsg(s->db));
        rc = FLOW_EIO;
        goto out;
    }
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
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
            .error_code = error_code_of(col_text(st, 16)),
            .error_message = col_text(st, 17),
            .error_node = col_text(st, 18),
            .totals = col_json(st, 19),
            .seq = (uint64_t)sqlite3_column_int64(st, 20),
            .tenant = col_text(st, 21),
        };
        j.history = history_of(steps, j.seq);
        if (j.shared == NULL)
            j.shared = json_object();
        rc = each(data, &j);
        json_decref(j.params);
        json_decref(j.shared);
        json_decref(j.history);
        json_decref(j.totals);
    }
out:
    sqlite3_finalize(st);
    sqlite3_finalize(steps);
    return rc;
}

static int sq_load_flows(flowd_store_t *store, flowd_store_flow_cb each, void *data) {
    sqlite_store_t *s = (sqlite_store_t *)store;
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT name, document FROM flows ORDER BY updated_us", -1, &st, NULL) != SQLITE_OK)
        return FLOW_EIO;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        json_t *doc = col_json(st, 1);
        rc = each(data, col_text(st, 0), doc);
        json_decref(doc);
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- opening and closing ---- */

static void sq_close(flowd_store_t *store) {
    sqlite_store_t *s = (sqlite_store_t *)store;
    pthread_mutex_lock(&s->lock);
    s->closing = 1;
    pthread_cond_signal(&s->cond);
    pthread_cond_signal(&s->ccond);
    pthread_mutex_unlock(&s->lock);
    if (s->started)
        pthread_join(s->thread, NULL);
    if (s->cstarted)
        pthread_join(s->cthread, NULL);
    if (s->cdb != NULL)
        sqlite3_close(s->cdb); /* before the writer's: the last connection to close empties the log */
    sqlite3_stmt *stmts[] = {s->ins_job, s->ins_version, s->upd_checkpoint, s->ins_step, s->upd_finish,
                             s->del_job, s->del_steps, s->put_flow};
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
        sqlite3_finalize(stmts[i]);
    if (s->db != NULL)
        sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->ccond);
    free(s->digests);
    free(s->path);
    free(s);
}

/* At shutdown, before the engine cancels what still runs: those jobs stay in the file as of their
 * last checkpoint (running, waiting or queued), and the next start resumes them, as after a crash;
 * a restart for a deploy is not the end of a job. */
static void sq_release(flowd_store_t *store) {
    sqlite_store_t *s = (sqlite_store_t *)store;
    s->released = 1;
}

static const flowd_store_ops_t sqlite_ops = {
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
    .close = sq_close,
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
    " tenant TEXT NOT NULL DEFAULT '" FLOWD_DEFAULT_TENANT "', UNIQUE (tenant, idem_key));"
    "CREATE TABLE IF NOT EXISTS steps (job INTEGER NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,"
    " PRIMARY KEY (job, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS flow_versions (digest TEXT PRIMARY KEY, document TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS flows (name TEXT PRIMARY KEY, document TEXT, updated_us INTEGER NOT NULL);";

static int prepare(sqlite_store_t *s, const char *sql, sqlite3_stmt **st) {
    return sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK ? 0 : -1;
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

/* Version 3 adds each job's tenant (the tenant of the key that made it; the jobs from before belong
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
    "UPDATE meta SET value = '3' WHERE key = 'schema_version';"
    "COMMIT;";

static int schema_version(sqlite_store_t *s) {
    sqlite3_stmt *st = NULL;
    int version = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = (int)sqlite3_column_int(st, 0); /* the text "1" reads as 1 */
    sqlite3_finalize(st);
    return version;
}

/* Creates the tables of a new file, brings an older file up to this version, or refuses a newer one. */
static int migrate(sqlite_store_t *s, char *err, size_t errlen) {
    char *msg = NULL, *sql = NULL;
    int rc = FLOW_EIO;
    int version = schema_version(s);
    if (version > SCHEMA_VERSION) {
        snprintf(err, errlen, "the file has schema version %d, newer than this flowd's %d", version, SCHEMA_VERSION);
        return FLOW_EINVAL;
    }
    if (version == 1 || version == 2) {
        flowd_log(FLOW_LOG_INFO, "store: %s: schema version %d -> %d", s->path, version,
                  SCHEMA_VERSION);
        sql = sqlite3_mprintf(version == 1 ? migrate_1_to_2 : migrate_2_to_3, schema);
        if (sql == NULL) {
            snprintf(err, errlen, "out of memory");
            return FLOW_ENOMEM;
        }
        if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
            snprintf(err, errlen, "cannot migrate the schema from version %d: %s", version,
                     msg ? msg : "?");
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            goto out;
        }
    }
    if (sqlite3_exec(s->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "cannot create the tables: %s", msg ? msg : "?");
        goto out;
    }
    if (sqlite3_exec(s->db, "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', '"
                            STRINGIFY(SCHEMA_VERSION) "')", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot write the schema version: %s", sqlite3_errmsg(s->db));
        goto out;
    }
    rc = 0;
out:
    sqlite3_free(msg);
    sqlite3_free(sql);
    return rc;
}

int flowd_store_sqlite_new(const char *path, const char *sync, flowd_store_t **out, char *err, size_t errlen) {
    sqlite_store_t *s = calloc(1, sizeof *s);
    char pragmas[160];
    int rc = FLOW_EIO;
    if (s == NULL || (s->path = strdup(path)) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return FLOW_ENOMEM;
    }
    s->base.ops = &sqlite_ops;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_cond_init(&s->ccond, NULL);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    snprintf(pragmas, sizeof pragmas, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA busy_timeout=5000;",
             sync != NULL && strcmp(sync, "normal") == 0 ? "NORMAL" : "FULL");
    if (sqlite3_exec(s->db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
        goto fail;
    }
    if ((rc = migrate(s, err, errlen)) < 0)
        goto fail;
    if (prepare(s, "INSERT INTO jobs (id, seq, flow, digest, created_us, idem_key, body_hash,"
                   " params, shared, tenant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &s->ins_job) < 0 ||
        prepare(s, "INSERT OR IGNORE INTO flow_versions (digest, document) VALUES (?, ?)", &s->ins_version) < 0 ||
        prepare(s, "UPDATE jobs SET status = ?, resume_node = ?, tries = ?, steps = ?, started_us = ?,"
                    " shared = COALESCE(?, shared), waiting_for = ? WHERE seq = ?", &s->upd_checkpoint) < 0 ||
        prepare(s, "INSERT OR REPLACE INTO steps (job, seq, data) VALUES (?, ?, ?)", &s->ins_step) < 0 ||
        prepare(s, "UPDATE jobs SET status = ?, steps = ?, started_us = ?, finished_us = ?, shared = COALESCE(?, shared),"
                   " last_action = ?, error_code = ?, error_message = ?, error_node = ?, totals = ?,"
                   " resume_node = NULL, waiting_for = NULL WHERE seq = ?", &s->upd_finish) < 0 ||
        prepare(s, "DELETE FROM jobs WHERE id = ?", &s->del_job) < 0 ||
        prepare(s, "DELETE FROM steps WHERE job = (SELECT seq FROM jobs WHERE id = ?)", &s->del_steps) < 0 ||
        prepare(s, "INSERT OR REPLACE INTO flows (name, document, updated_us) VALUES (?, ?, ?)", &s->put_flow) < 0) {
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
        rc = FLOW_EIO;
        goto fail;
    }
    if (sqlite3_open_v2(path, &s->cdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK ||
        sqlite3_exec(s->cdb, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, s->cdb ? sqlite3_errmsg(s->cdb) : "out of memory");
        rc = FLOW_EIO;
        goto fail;
    }
    sqlite3_wal_hook(s->db, on_wal_commit, s); /* replaces the automatic checkpoint */
    if (pthread_create(&s->cthread, NULL, checkpoint_main, s) != 0) {
        snprintf(err, errlen, "cannot start the checkpoint thread");
        rc = FLOW_ENOMEM;
        goto fail;
    }
    s->cstarted = 1;
    if (pthread_create(&s->thread, NULL, store_main, s) != 0) {
        snprintf(err, errlen, "cannot start the store thread");
        rc = FLOW_ENOMEM;
        goto fail;
    }
    s->started = 1;
    *out = &s->base;
    return 0;
fail:
    sq_close(&s->base);
    return rc;
}
