/* store_postgres.c: the PostgreSQL store of store.h, for several flowd instances on one database.
 *
 * The data model is the SQLite store's (jobs: a row per job as of its last checkpoint; steps: the
 * history, appended, each entry with its step's patch of the shared store; stores: a job's last
 * whole shared store and the one a redrive needs, so that a checkpoint writes what its step changed,
 * patch.h; flow_versions by digest; flows for PUT and DELETE; flowd_meta: the schema's version),
 * with what sharing needs on top: each jobs row has an owner (an instance's random id), whose
 * lease is its row in instances (OWNER_ALIVE); events keeps every job's events for watchers on other
 * instances; commands carries input and cancels from the instance that got them to the owner;
 * deliveries keeps the deliveries of jobs' callbacks (webhooks.h), each with an owner and a lease of
 * its own: the instance that made it tries it, renewing its lease with its jobs'; once that lease
 * runs out (the instance died) another claims it as it claims jobs, so that one instance at a time
 * makes a delivery, and one owed is made after its maker died.
 *
 * Threads and connections (blocking libpq on each):
 *   the writer   its own connection; the loop and the HTTP threads queue operations, and it commits
 *                what came together in one transaction (group commit), a new job's done after the
 *                commit that holds it (store_writer.h; this file gives it begin, apply, commit and
 *                what PostgreSQL adds); a transaction's statements go down one pipeline
 *                (pipe_send). Every write of a running job is guarded by owner = me, so an
 *                instance that lost a job writes nothing more of it (and hears so through
 *                hooks->lost). Every third of the lease it renews its lease (one row); every
 *                --claim-interval it claims jobs whose lease ran out (SELECT ... FOR UPDATE
 *                SKIP LOCKED, then UPDATE owner, and reads what it needs of them, in one
 *                transaction: two instances never claim the same job) and hands them to
 *                hooks->adopt; now and then it deletes ended jobs older than the retention,
 *                whoever ran them. A limited job's turn (a flow's
 *                max_running, a concurrency key: over every instance) is asked for and given in
 *                the writer's transactions too (apply_slot).
 *   the listener its own connection, LISTENing on channel flowd (payload c: a new command, a: an
 *                answer, e: new events), and waking every --poll-interval anyway. It takes the
 *                commands for jobs this instance owns (hooks->command), inserts the commands sent
 *                from here and waits for their answers, and wakes the watches (event streams and
 *                long polls of jobs that run elsewhere) whose job has news.
 *   a pool       connections the HTTP threads borrow to read jobs that run elsewhere.
 *                A NOTIFY 's' (a turn given, or a limited job's end) pokes the loop's scheduler.
 * The loop thread never waits on the database. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "auth.h"
#include "grow.h"
#include "jobs.h"
#include "log.h"
#include "patch.h"
#include "scheduler.h"
#include "store.h"
#include "store_cluster.h"
#include "store_writer.h"

#define SCHEMA_VERSION 11
#define CLAIM_BATCH 500       /* jobs claimed at most in one go */
#define SWEEP_MS 60000        /* how often ended jobs past the retention are deleted */
#define POOL_MAX 64
#define ACTIVE "('queued', 'running', 'waiting')"
/* a job that counts against its key's and its flow's limits: it runs (waiting for input too), or
 * its turn was given (apply_slot); written the same in the indexes and in the statement that uses
 * them, for the planner to match them */
#define HOLDS_SLOT "(status IN ('running', 'waiting') OR (status = 'queued' AND slot))"
/* the owner of job t holds it: a job's lease_until is 'infinity' while its owner's row in instances
 * is renewed (then that row's lease counts), or a time of its own (a job written by a flowd from
 * before version 10, which renewed each of its jobs); a released job's is '-infinity' */
#define OWNER_ALIVE(t) "(" t ".lease_until > now() AND (" t ".lease_until <> 'infinity' OR EXISTS" \
    " (SELECT 1 FROM instances i WHERE i.id = " t ".owner AND i.lease_until > now())))"
/* job x goes before job me: its priority, then its creation time, then its id, as every
 * instance's scheduler orders its own jobs (scheduler.c: by_priority) */
#define BEFORE_ME "(x.priority > me.priority OR (x.priority = me.priority AND (x.created_us < me.created_us" \
    " OR (x.created_us = me.created_us AND x.id COLLATE \"C\" < me.id))))"
#define MIGRATE_LOCK "7201534829"  /* pg_advisory_lock key: one instance creates the tables at a time */
#define SLOT_LOCK "7201534830"     /* pg_advisory_xact_lock key: one turn given at a time (apply_slot) */

/* ---- what the listener keeps ---- */

typedef struct watch {
    struct watch *next;
    char id[FLOWD_ID_LEN + 1];
    uint64_t after;
    uint64_t deadline_ms;
    flowd_store_wake_cb wake;
    void *data;
} watch_t;

typedef struct send {
    struct send *next;
    char id[FLOWD_ID_LEN + 1];
    int cancel;
    char *value;
    flowd_store_sent_cb done;
    void *data;
    long long cmd_id;              /* once inserted */
    uint64_t deadline_ms;
} send_t;

typedef struct pg_store {
    flowd_store_t base;
    char *uri;
    char me[FLOWD_ID_LEN + 1];     /* this instance */
    flowd_store_opts_t o;
    flowd_store_hooks_t hooks;
    atomic_int attached;

    /* the writer */
    flowd_writer_t *writer;
    PGconn *wconn;                 /* the writer's thread's (and load_flows', before it attaches) */
    json_t *owned;                 /* writer only: ids of the jobs it holds leases of, as a set */
    int notify_events, notify_answers, notify_slots; /* writer only: what the transaction holds */
    flowd_op_t **asks;             /* writer only: the batch's turns asked for, decided at its end */
    size_t nasks, asks_cap;
    struct pending *pend;          /* writer only: the statements sent down the pipeline, whose
                                    * results have not been read yet (pipe_send) */
    size_t npend, pend_cap;
    int piped;                     /* wconn is in pipeline mode */
    int asked;                     /* the batch asked for a turn (decide_slot) */
    int broken;                    /* a pipeline's results could not be read: the connection is made
                                    * again before it is used (pg_rollback, pg_recover) */
    uint64_t next_renew, next_claim, next_sweep; /* writer only */

    /* the listener */
    PGconn *lconn;
    pthread_t lthread;
    int lstarted;
    int efd;                       /* eventfd: wakes the listener */
    pthread_mutex_t rlock;         /* watches, new sends, stopped */
    watch_t *watches;
    send_t *new_sends;
    int stopped;                   /* remote_stop ran */
    int new_watch;                 /* a watch came since the listener last looked */
    int lclosing;

    /* the pool */
    pthread_mutex_t plock;
    pthread_cond_t pcond;
    PGconn *pool[POOL_MAX];
    size_t pfree, ptotal, pmax;
} pg_store_t;

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

static void wake_listener(pg_store_t *s) {
    uint64_t one = 1;
    if (write(s->efd, &one, sizeof one) < 0 && errno != EAGAIN)
        flowd_log(FLOW_LOG_WARN, "store: cannot wake the listener: %s", strerror(errno));
}

/* ---- libpq helpers ---- */

/* A statement with text parameters (NULL: SQL NULL). The result, or NULL after logging when it
 * failed. */
static PGresult *run(PGconn *c, const char *sql, int n, const char *const *params, ExecStatusType want) {
    PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    if (res != NULL && PQresultStatus(res) == want)
        return res;
    flowd_log(FLOW_LOG_WARN, "store: %s", res ? PQresultErrorMessage(res) : PQerrorMessage(c));
    PQclear(res);
    return NULL;
}

static int run_cmd(PGconn *c, const char *sql, int n, const char *const *params) {
    PGresult *res = run(c, sql, n, params, PGRES_COMMAND_OK);
    PQclear(res);
    return res ? 0 : FLOW_EIO;
}

static PGresult *run_prepared(PGconn *c, const char *name, int n, const char *const *params, ExecStatusType want) {
    PGresult *res = PQexecPrepared(c, name, n, params, NULL, NULL, 0);
    if (res != NULL && PQresultStatus(res) == want)
        return res;
    flowd_log(FLOW_LOG_WARN, "store: %s: %s", name, res ? PQresultErrorMessage(res) : PQerrorMessage(c));
    PQclear(res);
    return NULL;
}

static const char *col(PGresult *res, int row, int i) {
    return PQgetisnull(res, row, i) ? NULL : PQgetvalue(res, row, i);
}

static uint64_t col_u64(PGresult *res, int row, int i) {
    const char *v = col(res, row, i);
    return v ? strtoull(v, NULL, 10) : 0;
}

static void u64(char *buf, size_t size, uint64_t v) {
    snprintf(buf, size, "%" PRIu64, v);
}

static flow_status_t status_of(const char *name) {
    flow_status_t st = FLOW_QUEUED;
    if (name != NULL)
        flow_status_parse(name, &st);
    return st;
}

/* ---- the schema ---- */

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS flowd_meta (key text PRIMARY KEY, value text NOT NULL);"
    "CREATE TABLE IF NOT EXISTS jobs ("
    " id text PRIMARY KEY, seq bigserial NOT NULL, flow text NOT NULL, digest text,"
    " status text NOT NULL DEFAULT 'queued', created_us bigint NOT NULL, started_us bigint NOT NULL DEFAULT 0,"
    " finished_us bigint NOT NULL DEFAULT 0, idem_key text, body_hash bigint NOT NULL DEFAULT 0,"
    " params text, shared text NOT NULL, resume_node text, tries integer NOT NULL DEFAULT 0,"
    " steps bigint NOT NULL DEFAULT 0, last_action text, waiting_for text, error_code text,"
    " error_message text, error_node text, totals text,"
    " owner text, lease_until timestamptz NOT NULL DEFAULT '-infinity', last_event bigint NOT NULL DEFAULT 0,"
    " claims integer NOT NULL DEFAULT 0, finishes integer NOT NULL DEFAULT 0,"
    " tenant text NOT NULL DEFAULT '" FLOWD_DEFAULT_TENANT "', callback text,"
    " start_at_us bigint NOT NULL DEFAULT 0, priority smallint NOT NULL DEFAULT 5, conc_key text,"
    " conc_limit integer NOT NULL DEFAULT 0, slot boolean NOT NULL DEFAULT false, waits text,"
    " origin text, base_shared text, base_step bigint, visits bigint, traceparent text);"
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_tenant_idem ON jobs (tenant, idem_key);"
    "CREATE INDEX IF NOT EXISTS jobs_key_active ON jobs (tenant, conc_key) WHERE conc_key IS NOT NULL"
    " AND status IN " ACTIVE ";"
    "CREATE INDEX IF NOT EXISTS jobs_flow_active ON jobs (flow) WHERE status IN " ACTIVE ";"
    /* what apply_slot counts and looks for, without reading a group's queued jobs: those that hold
     * a turn, and those that asked and wait (a start makes them on a database from before) */
    "CREATE INDEX IF NOT EXISTS jobs_key_slots ON jobs (tenant, conc_key) WHERE conc_key IS NOT NULL"
    " AND " HOLDS_SLOT ";"
    "CREATE INDEX IF NOT EXISTS jobs_flow_slots ON jobs (flow) WHERE " HOLDS_SLOT ";"
    "CREATE INDEX IF NOT EXISTS jobs_key_waits ON jobs (tenant, conc_key) WHERE status = 'queued'"
    " AND waits = 'k';"
    "CREATE INDEX IF NOT EXISTS jobs_flow_waits ON jobs (flow) WHERE status = 'queued' AND waits = 'f';"
    "CREATE INDEX IF NOT EXISTS jobs_tenant_seq ON jobs (tenant, seq);"
    "CREATE INDEX IF NOT EXISTS jobs_seq ON jobs (seq);"
    "CREATE INDEX IF NOT EXISTS jobs_status_seq ON jobs (status, seq);"
    "CREATE INDEX IF NOT EXISTS jobs_claimable ON jobs (lease_until) WHERE status IN " ACTIVE ";"
    "CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner) WHERE status IN " ACTIVE ";"
    "CREATE INDEX IF NOT EXISTS jobs_ended ON jobs (finished_us) WHERE status NOT IN " ACTIVE ";"
    "CREATE TABLE IF NOT EXISTS instances (id text PRIMARY KEY, lease_until timestamptz NOT NULL);"
    "CREATE TABLE IF NOT EXISTS steps (job_id text NOT NULL, seq bigint NOT NULL, data text NOT NULL,"
    " PRIMARY KEY (job_id, seq));"
    "CREATE TABLE IF NOT EXISTS stores (job_id text NOT NULL, step bigint NOT NULL, shared text NOT NULL,"
    " PRIMARY KEY (job_id, step));"
    /* a step's event has no data of its own: it is the steps row of its seq */
    "CREATE TABLE IF NOT EXISTS events (job_id text NOT NULL, id bigint NOT NULL, type smallint NOT NULL,"
    " final boolean NOT NULL DEFAULT false, seq bigint NOT NULL DEFAULT 0, data text, PRIMARY KEY (job_id, id));"
    "CREATE TABLE IF NOT EXISTS flow_versions (digest text PRIMARY KEY, document text NOT NULL);"
    "CREATE TABLE IF NOT EXISTS flows (name text PRIMARY KEY, document text, updated_us bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS commands (id bigserial PRIMARY KEY, job_id text NOT NULL, kind text NOT NULL,"
    " value text, state text NOT NULL DEFAULT 'new', taken_by text, status integer, body text,"
    " created_us bigint NOT NULL);"
    "CREATE INDEX IF NOT EXISTS commands_new ON commands (job_id) WHERE state = 'new';"
    "CREATE TABLE IF NOT EXISTS schedules (name text PRIMARY KEY, tenant text NOT NULL, definition text NOT NULL,"
    " next_s bigint NOT NULL, last_job text, last_run_s bigint NOT NULL DEFAULT 0,"
    " skipped bigint NOT NULL DEFAULT 0, updated_us bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS deliveries (id text PRIMARY KEY, job_id text NOT NULL, tenant text NOT NULL,"
    " url text NOT NULL, type text NOT NULL, body text NOT NULL, created_us bigint NOT NULL, state text NOT NULL,"
    " attempts integer NOT NULL DEFAULT 0, next_us bigint NOT NULL DEFAULT 0,"
    " last_status integer NOT NULL DEFAULT 0, last_error text, tries text, owner text,"
    " lease_until timestamptz NOT NULL DEFAULT '-infinity');"
    "CREATE INDEX IF NOT EXISTS deliveries_job ON deliveries (job_id);"
    "CREATE INDEX IF NOT EXISTS deliveries_owed ON deliveries (lease_until) WHERE state = 'pending';";

/* Version 2 adds each job's tenant (the tenant of the key that made it; the jobs from before belong
 * to tenant "default", which is also every caller's when flowd runs without keys), and makes an
 * Idempotency-Key unique per tenant instead of over all jobs. One transaction: a crash in the
 * middle leaves version 1. */
static const char migrate_1_to_2[] =
    "BEGIN;"
    "ALTER TABLE jobs ADD COLUMN tenant text NOT NULL DEFAULT '" FLOWD_DEFAULT_TENANT "';"
    "ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_idem_key_key;"
    "CREATE UNIQUE INDEX jobs_tenant_idem ON jobs (tenant, idem_key);"
    "UPDATE flowd_meta SET value = '2' WHERE key = 'schema_version';"
    "COMMIT;";

/* Version 3 adds each job's callback (webhooks.h); the deliveries table is made by the schema that
 * runs after. */
static const char migrate_2_to_3[] =
    "BEGIN;"
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS callback text;"
    "UPDATE flowd_meta SET value = '3' WHERE key = 'schema_version';"
    "COMMIT;";

/* Version 4 adds the schedules table, which the schema makes (IF NOT EXISTS) over a version 3
 * database: no SQL of its own. */
/* Version 5 adds when a job may start, its priority and its concurrency key (scheduler.h): a queued
 * job is claimed only once its time has come, the highest priority first. The jobs from before
 * start at once, at the default priority, with no key. */
static const char migrate_4_to_5[] =
    "BEGIN;"
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS start_at_us bigint NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS priority smallint NOT NULL DEFAULT 5;"
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS conc_key text;"
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS conc_limit integer NOT NULL DEFAULT 0;"
    "UPDATE flowd_meta SET value = '5' WHERE key = 'schema_version';"
    "COMMIT;";

/* Version 6 makes a flow's max_running and a concurrency key hold over every instance (apply_slot):
 * a queued job's slot (its turn was given: it counts as running until it has ended) and waits (the
 * group it asked for and waits for: 'k' its key, 'f' its flow), and the indexes that count a
 * key's and a flow's jobs. The jobs from before hold no slot; those that run count by their
 * status. */
static const char migrate_5_to_6[] =
    "BEGIN;"
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS slot boolean NOT NULL DEFAULT false;"
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS waits text;"
    "UPDATE flowd_meta SET value = '6' WHERE key = 'schema_version';"
    "COMMIT;";

/* Version 7 adds what redrives need (POST /v1/jobs/{id}/redrive): a job's origin (the job a redrive
 * made it from) and, for a job that failed or was canceled, its store before the root-level step
 * that failed (base_shared, with that step's node in resume_node). The jobs from before have
 * neither: they cannot be redriven. */
static const char migrate_6_to_7[] =
    "BEGIN;"
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS origin text;"
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS base_shared text;"
    "UPDATE flowd_meta SET value = '7' WHERE key = 'schema_version';"
    "COMMIT;";

/* Version 8 keeps checkpoints as patches (patch.h), as SQLite's version 7 does: the stores table
 * holds a job's last whole shared store and the step it is as of, and the one a redrive starts
 * from when it is older (put_store); the steps after them carry their patches in their entries.
 * jobs.shared is then {} until the job ends and its final store after: a store in the job's row
 * would make every checkpoint rewrite it (PostgreSQL writes a new version of the whole row). A job
 * from before has no row in stores: its jobs.shared is as of its last checkpoint. A job that
 * failed or was canceled keeps the step a redrive starts from the store of (base_step) instead of
 * that store (base_shared, which the jobs from before keep). */
static const char migrate_7_to_8[] =
    "BEGIN;"
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS base_step bigint;"
    "CREATE TABLE IF NOT EXISTS stores (job_id text NOT NULL, step bigint NOT NULL, shared text NOT NULL,"
    " PRIMARY KEY (job_id, step));"
    "UPDATE flowd_meta SET value = '8' WHERE key = 'schema_version';"
    "COMMIT;";

/* Version 9 keeps each running job's root-level steps finished (visits), which an instance that
 * takes the job over numbers its visits on from (an http node's Idempotency-Key): a claim reads
 * only the last --events-limit steps, which counted them short for a longer job. A job from before
 * has none until its next checkpoint, and a claim counts its visits in what it reads, as before. */
static const char migrate_8_to_9[] =
    "BEGIN;"
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS visits bigint;"
    "UPDATE flowd_meta SET value = '9' WHERE key = 'schema_version';"
    "COMMIT;";

/* Version 10 gives each instance one lease, its row in instances, instead of one per job: renewing
 * every job's lease rewrote every row an instance held every third of --lease (1.7 s for 100,000
 * queued jobs, and the writer waited meanwhile). A job of an instance of this version has
 * lease_until 'infinity' (OWNER_ALIVE); the jobs from before keep their own leases until they are
 * claimed. */
static const char migrate_9_to_10[] =
    "BEGIN;"
    "CREATE TABLE IF NOT EXISTS instances (id text PRIMARY KEY, lease_until timestamptz NOT NULL);"
    "UPDATE flowd_meta SET value = '10' WHERE key = 'schema_version';"
    "COMMIT;";

/* Version 11 keeps the W3C trace context of the POST that made a job (traceparent), so that a job
 * an instance takes over calls out in the same trace as before. A job from before has none: it
 * calls out without one, as it did. */
static const char migrate_10_to_11[] =
    "BEGIN;"
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS traceparent text;"
    "UPDATE flowd_meta SET value = '11' WHERE key = 'schema_version';"
    "COMMIT;";

/* Creates the tables, brings an older database up to this version, or refuses a newer one.
 * Instances that start together take turns (an advisory lock). */
static int migrate(PGconn *c, char *err, size_t errlen) {
    int rc = 0;
    PGresult *res = run(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", 0, NULL, PGRES_TUPLES_OK);
    if (res == NULL) {
        snprintf(err, errlen, "%s", PQerrorMessage(c));
        return FLOW_EIO;
    }
    PQclear(res);
    static const char meta[] =
        "CREATE TABLE IF NOT EXISTS flowd_meta (key text PRIMARY KEY, value text NOT NULL)";
    if (run_cmd(c, meta, 0, NULL) < 0) {
        snprintf(err, errlen, "cannot create the tables: %s", PQerrorMessage(c));
        rc = FLOW_EIO;
    }
    int version = 0;
    if (rc == 0 && (res = run(c, "SELECT value FROM flowd_meta WHERE key = 'schema_version'", 0, NULL,
                              PGRES_TUPLES_OK)) != NULL) {
        if (PQntuples(res) > 0)
            version = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
    }
    if (rc == 0 && version > SCHEMA_VERSION) {
        snprintf(err, errlen, "the database has schema version %d, newer than this flowd's %d", version,
                 SCHEMA_VERSION);
        rc = FLOW_EINVAL;
    }
    /* each step moves an older database one version on, in a transaction of its own; 3 -> 4 is
     * only a table the schema makes, so 3 goes on with 4's step */
    static const struct {
        int from;
        const char *sql;
    } steps[] = {{1, migrate_1_to_2}, {2, migrate_2_to_3}, {3, migrate_4_to_5},
                 {4, migrate_4_to_5}, {5, migrate_5_to_6}, {6, migrate_6_to_7},
                 {7, migrate_7_to_8}, {8, migrate_8_to_9}, {9, migrate_9_to_10},
                 {10, migrate_10_to_11}};
    for (size_t i = 0; rc == 0 && i < sizeof steps / sizeof steps[0]; i++) {
        if (version != steps[i].from)
            continue;
        int to = steps[i].sql == migrate_4_to_5 ? 5 : version + 1;
        flowd_log(FLOW_LOG_INFO, "store: schema version %d -> %d", version, to);
        res = PQexec(c, steps[i].sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            snprintf(err, errlen, "cannot migrate the schema from version %d: %s", version,
                     PQresultErrorMessage(res));
            PQclear(PQexec(c, "ROLLBACK"));
            rc = FLOW_EIO;
        } else {
            version = to;
        }
        PQclear(res);
    }
    /* version 0 is a new database, whose tables are made here as this version has them; a table
     * never analyzed is guessed at hundreds of rows, and the claim would read every active job
     * instead of the dead instances' (autovacuum analyzes it from then on) */
    if (rc == 0) {
        res = PQexec(c, schema);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            snprintf(err, errlen, "cannot create the tables: %s", PQresultErrorMessage(res));
            rc = FLOW_EIO;
        }
        PQclear(res);
        if (rc == 0)
            PQclear(PQexec(c, "ANALYZE instances")); /* a guess is what it was without */
    }
    char v[16];
    snprintf(v, sizeof v, "%d", SCHEMA_VERSION);
    const char *p[] = {v};
    if (rc == 0 && run_cmd(c, "INSERT INTO flowd_meta (key, value) VALUES ('schema_version', $1)"
                              " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", 1, p) < 0) {
        snprintf(err, errlen, "cannot write the schema version: %s", PQerrorMessage(c));
        rc = FLOW_EIO;
    }
    PQclear(run(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")", 0, NULL, PGRES_TUPLES_OK));
    return rc;
}

/* The writer's statements, prepared on its connection (again after a reset). */
static const struct {
    const char *name, *sql;
} wstmts[] = {
    {"ins_version", "INSERT INTO flow_versions (digest, document) VALUES ($1, $2) ON CONFLICT DO NOTHING"},
    /* its store is in stores, as of step 0 (no row: its id or Idempotency-Key was taken) */
    {"ins_job", "WITH j AS (INSERT INTO jobs (id, flow, digest, created_us, idem_key, body_hash, params,"
                " shared, owner, lease_until, tenant, callback, start_at_us, priority, conc_key, conc_limit,"
                " origin, resume_node, traceparent) VALUES ($1, $2, $3, $4::bigint, $5, $6::bigint, $7, '{}', $9,"
                " 'infinity', $10, $11, $12::bigint, $13::smallint,"
                " $14, $15::integer, $16, $17, $18) ON CONFLICT DO NOTHING RETURNING id)"
                " INSERT INTO stores (job_id, step, shared) SELECT id, 0, $8 FROM j"},
    {"checkpoint",
     "WITH u AS (UPDATE jobs SET status = $2, resume_node = $3, tries = $4::integer, steps = $5::bigint,"
     " started_us = $6::bigint, waiting_for = $8,"
     " last_action = COALESCE($9::text, last_action), last_event = GREATEST(last_event, $10::bigint),"
     " visits = $15::bigint WHERE id = $1 AND owner = $13 RETURNING id),"
     /* a whole store (put_store: at a snapshot; otherwise the step's entry carries its patch) */
     " w AS (INSERT INTO stores (job_id, step, shared) SELECT id, $14::bigint, $7::text FROM u"
     " WHERE $7::text IS NOT NULL ON CONFLICT (job_id, step) DO UPDATE SET shared = EXCLUDED.shared),"
     " s AS (INSERT INTO steps (job_id, seq, data) SELECT id, $11::bigint, $12::text FROM u"
     " WHERE $12::text IS NOT NULL ON CONFLICT DO NOTHING),"
     " e AS (INSERT INTO events (job_id, id, type, seq) SELECT id, $10::bigint, 1, $11::bigint FROM u"
     " WHERE $12::text IS NOT NULL ON CONFLICT DO NOTHING)"
     " SELECT count(*) FROM u"},
    {"event",
     "WITH u AS (UPDATE jobs SET status = $2, started_us = CASE WHEN started_us = 0 THEN $3::bigint ELSE started_us END,"
     " waiting_for = $4, last_event = GREATEST(last_event, $5::bigint) WHERE id = $1 AND owner = $7 RETURNING id),"
     " e AS (INSERT INTO events (job_id, id, type, data) SELECT id, $5::bigint, 0, $6::text FROM u"
     " ON CONFLICT DO NOTHING)"
     " SELECT count(*) FROM u"},
    {"finish",
     "WITH u AS (UPDATE jobs SET status = $2, steps = $3::bigint, started_us = $4::bigint, finished_us = $5::bigint,"
     " shared = COALESCE($6::text, shared), last_action = $7, error_code = $8, error_message = $9, error_node = $10,"
     " totals = $11, resume_node = $15, base_shared = $16, base_step = $17::bigint, waiting_for = NULL,"
     " finishes = finishes + 1,"
     " last_event = GREATEST(last_event, $12::bigint) WHERE id = $1 AND owner = $14 RETURNING id),"
     " e AS (INSERT INTO events (job_id, id, type, final, data) SELECT id, $12::bigint, 0, true, $13::text FROM u"
     " WHERE $13::text IS NOT NULL ON CONFLICT DO NOTHING)"
     " SELECT count(*) FROM u"},
    /* put_store: the older whole stores go, but for the newest at or before the step a redrive of
     * the job would start from ($3, jobs.h run.base_step): with the patches after it, it makes that
     * store again. So a job keeps at most two. */
    {"prune_stores", "DELETE FROM stores WHERE job_id = $1 AND step <> $2::bigint AND step <> COALESCE(("
                     "SELECT MAX(step) FROM stores WHERE job_id = $1 AND step <= LEAST($3::bigint, $2::bigint)),"
                     " -1) AND EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND owner = $4)"},
    {"remove", "WITH s AS (DELETE FROM steps WHERE job_id = $1), e AS (DELETE FROM events WHERE job_id = $1),"
               " w AS (DELETE FROM stores WHERE job_id = $1),"
               " c AS (DELETE FROM commands WHERE job_id = $1),"
               " d AS (DELETE FROM deliveries WHERE job_id = $1 AND state <> 'pending')"
               " DELETE FROM jobs WHERE id = $1"},
    /* a delivery already stored stays as it is: the job made it again after a crash */
    {"ins_delivery", "INSERT INTO deliveries (id, state, attempts, next_us, last_status, last_error, tries,"
                     " job_id, tenant, url, type, body, created_us, owner, lease_until) VALUES ($1, $2,"
                     " $3::integer, $4::bigint, $5::integer, $6, $7, $8, $9, $10, $11, $12, $13::bigint, $14,"
                     " now() + $15::bigint * interval '1 millisecond') ON CONFLICT DO NOTHING"},
    /* guarded by its owner; once over it has none, and goes if its job went */
    {"upd_delivery", "UPDATE deliveries SET state = $2, attempts = $3::integer, next_us = $4::bigint,"
                     " last_status = $5::integer, last_error = $6, tries = $7,"
                     " owner = CASE WHEN $2 = 'pending' THEN owner END WHERE id = $1 AND owner = $8"},
    {"del_delivery", "DELETE FROM deliveries d WHERE id = $1 AND state <> 'pending'"
                     " AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = d.job_id)"},
    {"renew_deliveries", "UPDATE deliveries SET lease_until = now() + $2::bigint * interval '1 millisecond'"
                         " WHERE owner = $1 AND state = 'pending'"},
    {"claim_deliveries",
     "WITH c AS (SELECT id FROM deliveries WHERE state = 'pending' AND lease_until < now() ORDER BY created_us"
     " LIMIT $2::integer FOR UPDATE SKIP LOCKED)"
     " UPDATE deliveries d SET owner = $1, lease_until = now() + $3::bigint * interval '1 millisecond'"
     " FROM c WHERE d.id = c.id RETURNING d.id, d.job_id, d.tenant, d.url, d.type, d.body, d.created_us,"
     " d.state, d.attempts, d.next_us, d.last_status, d.last_error, d.tries"}, /* DELIVERY_COLUMNS */
    {"release_deliveries", "UPDATE deliveries SET owner = NULL, lease_until = '-infinity'"
                           " WHERE owner = $1 AND state = 'pending'"},
    {"put_flow", "INSERT INTO flows (name, document, updated_us) VALUES ($1, $2, $3::bigint)"
                 " ON CONFLICT (name) DO UPDATE SET document = EXCLUDED.document, updated_us = EXCLUDED.updated_us"},
    /* a schedule's run: the compare-and-set on its row that goes with its job's insert */
    {"sched_run", "UPDATE schedules SET next_s = $1::bigint, last_job = $2, last_run_s = $5::bigint"
                  " WHERE name = $4 AND next_s = $3::bigint"},
    {"sched_put", "INSERT INTO schedules (name, tenant, definition, next_s, updated_us) VALUES ($1, $2, $3,"
                  " $4::bigint, $5::bigint) ON CONFLICT (name) DO UPDATE SET tenant = EXCLUDED.tenant,"
                  " definition = EXCLUDED.definition, next_s = EXCLUDED.next_s, updated_us = EXCLUDED.updated_us"},
    {"sched_del", "DELETE FROM schedules WHERE name = $1"},
    {"sched_skip", "UPDATE schedules SET next_s = $1::bigint, skipped = skipped + 1 WHERE name = $2"
                   " AND next_s = $3::bigint"},
    {"answer", "UPDATE commands SET state = 'answered', status = $2::integer, body = $3 WHERE id = $1::bigint"},
    {"renew", "INSERT INTO instances (id, lease_until) VALUES ($1, now() + $2::bigint * interval '1 millisecond')"
              " ON CONFLICT (id) DO UPDATE SET lease_until = EXCLUDED.lease_until"},
    {"owned_count", "SELECT count(*) FROM jobs WHERE owner = $1 AND status IN " ACTIVE},
    {"owned", "SELECT id FROM jobs WHERE owner = $1 AND status IN " ACTIVE},
    {"unregister", "DELETE FROM instances WHERE id = $1"},
    /* the rows of instances gone for an hour that hold no job any more */
    {"forget_instances", "DELETE FROM instances i WHERE i.lease_until < now() - interval '1 hour'"
                         " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.owner = i.id AND j.status IN " ACTIVE ")"},
    {"claim",
     /* a queued job only once its time has come; the highest priority, then the oldest, first.
      * Those whose own lease ran out (released, or written by a flowd from before version 10),
      * and those of instances whose lease ran out, each along its index (one condition with OR
      * read every active job); a job another instance claimed meanwhile is seen as it is now
      * (its new owner's lease runs) and skipped. */
     "WITH c1 AS (SELECT id, priority, seq FROM jobs WHERE status IN " ACTIVE " AND lease_until < now()"
     " AND (status <> 'queued' OR start_at_us <= (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)"
     " ORDER BY priority DESC, seq LIMIT $2::integer FOR UPDATE SKIP LOCKED),"
     " c2 AS (SELECT j.id, j.priority, j.seq FROM instances i JOIN jobs j ON j.owner = i.id"
     " WHERE i.lease_until < now() AND j.status IN " ACTIVE " AND j.lease_until = 'infinity'"
     " AND (j.status <> 'queued' OR j.start_at_us <= (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)"
     " ORDER BY j.priority DESC, j.seq LIMIT $2::integer FOR UPDATE OF j SKIP LOCKED),"
     " c AS (SELECT id FROM (SELECT * FROM c1 UNION ALL SELECT * FROM c2) x ORDER BY priority DESC, seq"
     " LIMIT $2::integer),"
     /* a queued job's turn went with its owner: it asks again here */
     " u AS (UPDATE jobs j SET owner = $1, slot = j.slot AND j.status <> 'queued',"
     " lease_until = 'infinity', claims = claims + 1"
     " FROM c WHERE j.id = c.id RETURNING j.id, j.seq, j.flow, j.digest, j.status, j.created_us,"
     " j.started_us, j.idem_key, j.body_hash, j.params, j.resume_node, j.tries, j.steps,"
     " j.last_action, j.waiting_for, j.last_event, j.tenant, j.callback, j.start_at_us, j.priority,"
     " j.conc_key, j.conc_limit, j.origin, j.visits, j.traceparent)"
     /* in the order of claimed_steps and claimed_events, which claim walks along */
     " SELECT * FROM u ORDER BY id"},
    {"claimed_docs", "SELECT digest, document FROM flow_versions WHERE digest = ANY($1::text[])"},
    /* each job's newest whole store (as store_at reads one job's), and the steps after it */
    {"claimed_stores", "SELECT j.id, j.steps, s.step, s.shared, j.shared,"
                       " NOT EXISTS (SELECT 1 FROM stores WHERE job_id = j.id)"
                       " FROM unnest($1::text[]) AS u(id) JOIN jobs j ON j.id = u.id"
                       " LEFT JOIN LATERAL (SELECT step, shared FROM stores WHERE job_id = j.id"
                       " AND step <= j.steps ORDER BY step DESC LIMIT 1) s ON true ORDER BY j.id"},
    {"claimed_patches", "SELECT j.id, st.data FROM unnest($1::text[]) AS u(id) JOIN jobs j ON j.id = u.id"
                        " CROSS JOIN LATERAL (SELECT step FROM stores WHERE job_id = j.id"
                        " AND step <= j.steps ORDER BY step DESC LIMIT 1) s"
                        " JOIN steps st ON st.job_id = j.id AND st.seq > s.step AND st.seq <= j.steps"
                        " ORDER BY j.id, st.seq"},
    /* each job's last $2 rows, walked back along its primary key (LATERAL ... LIMIT): a window
     * over all of them read every step of a long job, 8 s for one of 2 million */
    {"claimed_steps", "SELECT x.job_id, x.data FROM unnest($1::text[]) AS j(id) CROSS JOIN LATERAL"
                      " (SELECT job_id, seq, data FROM steps WHERE job_id = j.id ORDER BY seq DESC"
                      " LIMIT $2::bigint) x ORDER BY x.job_id, x.seq"},
    {"claimed_events", "SELECT x.job_id, x.id, x.type, x.final, x.seq, x.data FROM unnest($1::text[]) AS j(id)"
                       " CROSS JOIN LATERAL (SELECT e.job_id, e.id, e.type, e.final, e.seq,"
                       " COALESCE(e.data, s.data) AS data FROM events e LEFT JOIN steps s ON e.type = 1"
                       " AND s.job_id = e.job_id AND s.seq = e.seq WHERE e.job_id = j.id ORDER BY e.id DESC"
                       " LIMIT $2::bigint) x WHERE x.data IS NOT NULL ORDER BY x.job_id, x.id"},
    {"sweep", "WITH d AS (DELETE FROM jobs WHERE status NOT IN " ACTIVE " AND finished_us < $1::bigint RETURNING id),"
              " s AS (DELETE FROM steps WHERE job_id IN (SELECT id FROM d)),"
              " w AS (DELETE FROM stores WHERE job_id IN (SELECT id FROM d)),"
              " e AS (DELETE FROM events WHERE job_id IN (SELECT id FROM d)),"
              " c AS (DELETE FROM commands WHERE job_id IN (SELECT id FROM d) OR created_us < $2::bigint),"
              " x AS (DELETE FROM deliveries WHERE job_id IN (SELECT id FROM d) AND state <> 'pending')"
              " SELECT count(*) FROM d"},
    {"release", "UPDATE jobs SET owner = NULL, lease_until = '-infinity', slot = slot AND status <> 'queued'"
                " WHERE owner = $1 AND status IN " ACTIVE},
    {"release_one", "UPDATE jobs SET owner = NULL, lease_until = '-infinity', slot = slot AND status <> 'queued'"
                    " WHERE id = $1 AND owner = $2"},
    /* A limited job's turn (apply_slot), under SLOT_LOCK: its key's jobs that hold a slot or run
     * (anywhere, waiting for input included) are fewer than its limit ($3), and no job of the key
     * on another instance that asked and waits for the key is before it (BEFORE_ME), its owner
     * alive; then the same for its flow's ($4, 0: none). An instance's own jobs take their turns
     * in the order of its scheduler: one of them that asks while a better one of its own is
     * asking too is not held back by it. It answers '' (its turn: slot), 'k' or 'f' (it
     * waits for that group: waits), or no row (not a queued job of ours). */
    {"slot",
     "WITH me AS MATERIALIZED (SELECT id, created_us, priority, tenant, conc_key, flow, owner, status FROM jobs"
     " WHERE id = $1),"
     " v AS MATERIALIZED (SELECT me.id, CASE WHEN me.conc_key IS NOT NULL AND ((SELECT count(*) FROM jobs x"
     " WHERE x.tenant = me.tenant AND x.conc_key = me.conc_key AND x.conc_key IS NOT NULL"
     " AND " HOLDS_SLOT ") >= $3::integer OR EXISTS (SELECT 1 FROM jobs x"
     " WHERE x.tenant = me.tenant AND x.conc_key = me.conc_key AND x.status = 'queued' AND x.waits = 'k' AND x.owner <> $2"
     " AND NOT x.slot AND " OWNER_ALIVE("x")
     " AND " BEFORE_ME ")) THEN 'k'"
     " WHEN $4::integer > 0 AND ((SELECT count(*) FROM jobs x WHERE x.flow = me.flow"
     " AND " HOLDS_SLOT ") >= $4::integer OR EXISTS (SELECT 1 FROM jobs x"
     " WHERE x.flow = me.flow AND x.status = 'queued' AND x.waits = 'f' AND x.owner <> $2 AND NOT x.slot"
     " AND " OWNER_ALIVE("x")
     " AND " BEFORE_ME ")) THEN 'f'"
     " ELSE '' END AS v FROM me WHERE me.owner = $2 AND me.status = 'queued'),"
     " u AS (UPDATE jobs j SET slot = (v.v = ''), waits = NULLIF(v.v, '') FROM v WHERE j.id = v.id"
     " RETURNING v.v)"
     " SELECT v FROM u"},
    /* A job that waits behind others of its group without asking (apply_slot): as if told so. */
    {"slot_behind", "UPDATE jobs SET waits = $3 WHERE id = $1 AND owner = $2 AND status = 'queued' AND NOT slot"},
};

static void session_settings(PGconn *c, uint64_t lease_ms) {
    /* A frozen instance (SIGSTOP, a VM pause) in the middle of a transaction would hold its rows'
     * locks, and FOR UPDATE SKIP LOCKED would skip them for as long: the server ends such a session
     * after a lease. What a job's JSON holds is UTF-8; nothing of ours needs more than 30 s. */
    char sql[256];
    snprintf(sql, sizeof sql,
             "SET client_encoding = 'UTF8'; SET statement_timeout = '30s'; SET client_min_messages = warning;"
             " SET idle_in_transaction_session_timeout = '%" PRIu64 "ms'",
             lease_ms ? lease_ms : 10000);
    PQclear(PQexec(c, sql));
}

static PGconn *connect_db(const char *uri, uint64_t lease_ms, char *err, size_t errlen) {
    PGconn *c = PQconnectdb(uri);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect: %s", c ? PQerrorMessage(c) : "out of memory");
        /* libpq's messages end with a newline */
        size_t n = strlen(err);
        while (n > 0 && err[n - 1] == '\n')
            err[--n] = '\0';
        PQfinish(c);
        return NULL;
    }
    session_settings(c, lease_ms);
    return c;
}

static int prepare_writer(PGconn *c) {
    for (size_t i = 0; i < sizeof wstmts / sizeof wstmts[0]; i++) {
        PGresult *res = PQprepare(c, wstmts[i].name, wstmts[i].sql, 0, NULL);
        int ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            flowd_log(FLOW_LOG_ERROR, "store: cannot prepare %s: %s", wstmts[i].name,
                      res ? PQresultErrorMessage(res) : PQerrorMessage(c));
        PQclear(res);
        if (!ok)
            return FLOW_EIO;
    }
    return 0;
}

/* After a lost connection: connect again and prepare again. */
static int writer_reset(pg_store_t *s) {
    PQreset(s->wconn); /* which leaves pipeline mode too */
    s->piped = s->broken = 0;
    s->npend = 0;
    if (PQstatus(s->wconn) != CONNECTION_OK) {
        flowd_log(FLOW_LOG_ERROR, "store: the database is unreachable: %s", PQerrorMessage(s->wconn));
        return FLOW_EIO;
    }
    session_settings(s->wconn, s->o.lease_ms);
    return prepare_writer(s->wconn);
}

/* ---- a job's shared store, made again from its log ---- */

/* The shared store of job id as of after step (latest: as of its last checkpoint, jobs.steps), read
 * on c: the newest whole store in stores at or before it (a job keeps its last one and the one a
 * redrive needs: prune_stores) and the patches of the steps after it. A job from before version 8
 * has no row in stores: its jobs.shared is as of its last checkpoint, and no other step's is kept.
 * The first statement reads the row and its store together, and the second reads only steps up to
 * what the first saw, so a job that moves on meanwhile (another instance runs it) gives a store
 * that was.
 *
 * On 0, *out is a new reference (an object). partial: a patch that cannot be applied (a step
 * written without one) is logged, and the store is what could be made (what a job taken over
 * resumes from, as SQLite's load does); otherwise it is FLOW_ESTATE, like a store no longer kept.
 * FLOW_ENOTFOUND: no such job, or it has not finished that step; FLOW_ESTATE: not kept (*oldest,
 * may be NULL: the first step that is); FLOW_EIO: a statement failed (in a transaction, it is
 * aborted); FLOW_ENOMEM. */
static int replay_store(const char *id, const char *text, uint64_t from, uint64_t upto,
                        json_t *history, int partial, json_t **out);

static int store_at(PGconn *c, const char *id, uint64_t step, int latest, int partial, json_t **out,
                    uint64_t *oldest) {
    char at[24], from_s[24], upto_s[24];
    json_t *history = NULL;
    PGresult *steps = NULL;
    int rc = FLOW_EIO;
    *out = NULL;
    u64(at, sizeof at, step);
    const char *p[] = {id, latest ? NULL : at};
    PGresult *res = run(c, "SELECT j.steps, s.step, s.shared, j.shared,"
                           " NOT EXISTS (SELECT 1 FROM stores WHERE job_id = j.id),"
                           " (SELECT MIN(step) FROM stores WHERE job_id = j.id) FROM jobs j"
                           " LEFT JOIN stores s ON s.job_id = j.id AND s.step = (SELECT MAX(step) FROM stores"
                           " WHERE job_id = j.id AND step <= COALESCE($2::bigint, j.steps)) WHERE j.id = $1",
                        2, p, PGRES_TUPLES_OK);
    if (res == NULL)
        goto out;
    if (PQntuples(res) == 0) {
        rc = FLOW_ENOTFOUND;
        goto out;
    }
    int legacy = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
    uint64_t last = col_u64(res, 0, 0), upto = latest ? last : step;
    uint64_t from = legacy ? last : col_u64(res, 0, 1);
    if (oldest != NULL)
        *oldest = legacy ? last : col_u64(res, 0, 5);
    if (upto > last) {
        rc = FLOW_ENOTFOUND;
        goto out;
    }
    if (upto < from || (!legacy && PQgetisnull(res, 0, 1))) {
        rc = FLOW_ESTATE;
        goto out;
    }
    if (from < upto) {
        u64(from_s, sizeof from_s, from);
        u64(upto_s, sizeof upto_s, upto);
        const char *ps[] = {id, from_s, upto_s};
        steps = run(c, "SELECT data FROM steps WHERE job_id = $1 AND seq > $2::bigint AND seq <= $3::bigint"
                       " ORDER BY seq",
                    3, ps, PGRES_TUPLES_OK);
        if (steps == NULL)
            goto out;
        if ((history = json_array()) == NULL) {
            rc = FLOW_ENOMEM;
            goto out;
        }
        for (int i = 0; i < PQntuples(steps); i++) {
            json_t *entry = json_loads(PQgetvalue(steps, i, 0), JSON_ALLOW_NUL, NULL);
            if (entry != NULL && json_array_append_new(history, entry) < 0) {
                rc = FLOW_ENOMEM;
                goto out;
            }
        }
    }
    rc = replay_store(id, col(res, 0, legacy ? 3 : 2), from, upto, history, partial, out);
out:
    json_decref(history);
    PQclear(steps);
    PQclear(res);
    return rc;
}

/* The store of job id after step upto, from text (its whole store as of step from) and history (the
 * steps after from, in order, up to upto; NULL when from == upto): *out and the codes as store_at
 * says. store_at reads one job's; a claim reads those of all it claimed at once. */
static int replay_store(const char *id, const char *text, uint64_t from, uint64_t upto,
                        json_t *history, int partial, json_t **out) {
    char why[256];
    json_t *store = text ? json_loads(text, JSON_ALLOW_NUL, NULL) : NULL;
    if (!json_is_object(store)) {
        flowd_log(FLOW_LOG_WARN, "store: job %s: its shared store as of step %" PRIu64 " cannot be read",
                  id, from);
        json_decref(store);
        return FLOW_EIO;
    }
    int rc = from < upto ? flowd_patch_replay(store, history, from, upto, why, sizeof why) : 0;
    if (rc < 0 && rc != FLOW_ENOMEM)
        flowd_log(partial ? FLOW_LOG_ERROR : FLOW_LOG_WARN,
                  "store: job %s: its shared store after step %" PRIu64 " cannot be made again (%s)",
                  id, upto, why);
    if (rc == FLOW_ENOMEM || (rc < 0 && !partial)) {
        json_decref(store);
        return rc == FLOW_ENOMEM ? rc : FLOW_ESTATE;
    }
    *out = store;
    return 0;
}

/* ---- the writer's backend: applying operations ---- */

/* A guarded statement's count: 1 when the job is still ours. */
static int guarded(PGresult *res) {
    return res != NULL && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "0") != 0;
}

/* A batch's statements go down one pipeline (libpq's pipeline mode): they are sent without waiting
 * for each other's results, which are read at the batch's end (drain), so that a batch of n
 * operations costs the database's work and one round trip instead of n round trips (about 190 us
 * each here). What an operation learns from its result (a create's row taken, a guarded write's
 * job lost, a turn's verdict) is set on it then, before the writer settles it. An operation that
 * must see a result before its next statement (a schedule's run, a read) drains first and runs
 * alone. */
enum { R_CMD, R_TUPLES, R_CREATE, R_GUARDED, R_SLOT };

struct pending {
    flowd_op_t *op;   /* NULL: none */
    const char *name; /* the statement's name or text, for the log */
    int kind;         /* R_*: what its result must be, and what it sets on op */
};

/* At most this many statements are sent before their results are read: the server stops reading
 * while the results it has written wait in full socket buffers, and the writer would wait for it
 * to read. */
#define PIPE_MAX 256

static int drain(pg_store_t *s);

/* Sends a prepared statement (name) or a statement's text (sql) down the pipeline. */
static int pipe_send(pg_store_t *s, const char *name, const char *sql, int n, const char *const *p, int kind,
                     flowd_op_t *op) {
    if (s->broken)
        return FLOW_EIO;
    if (!s->piped) {
        if (PQenterPipelineMode(s->wconn) != 1) {
            flowd_log(FLOW_LOG_WARN, "store: cannot enter pipeline mode: %s", PQerrorMessage(s->wconn));
            return FLOW_EIO;
        }
        s->piped = 1;
    }
    if (s->npend == PIPE_MAX) {
        int rc = drain(s);
        if (rc < 0)
            return rc;
    }
    struct pending *pend = flowd_grow(s->pend, s->npend, &s->pend_cap, sizeof *pend, 64);
    if (pend == NULL)
        return FLOW_ENOMEM;
    s->pend = pend;
    int sent = name ? PQsendQueryPrepared(s->wconn, name, n, p, NULL, NULL, 0)
                    : PQsendQueryParams(s->wconn, sql, n, NULL, p, NULL, NULL, 0);
    if (!sent) {
        flowd_log(FLOW_LOG_WARN, "store: %s: %s", name ? name : sql, PQerrorMessage(s->wconn));
        s->broken = 1;
        return FLOW_EIO;
    }
    s->pend[s->npend++] = (struct pending){op, name ? name : sql, kind};
    return 0;
}

/* What one statement's result sets: 0, or FLOW_EIO when it is not what the statement gives. */
static int take_result(pg_store_t *s, const struct pending *q, PGresult *res) {
    ExecStatusType st = PQresultStatus(res);
    int ok = st == (q->kind == R_CMD || q->kind == R_CREATE ? PGRES_COMMAND_OK : PGRES_TUPLES_OK);
    if (!ok) {
        if (st != PGRES_PIPELINE_ABORTED) /* the statement that failed says why; those after it do not */
            flowd_log(FLOW_LOG_WARN, "store: %s: %s", q->name, PQresultErrorMessage(res));
        return FLOW_EIO;
    }
    if (q->kind == R_CREATE) {
        /* no row: its id or Idempotency-Key is taken (another instance got the same key meanwhile) */
        q->op->rc = strcmp(PQcmdTuples(res), "1") == 0 ? 0 : FLOW_EEXIST;
    } else if (q->kind == R_GUARDED) {
        q->op->lost = !guarded(res);
    } else if (q->kind == R_SLOT) {
        flowd_op_slot_t *sl = &q->op->slot;
        const char *v = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : NULL;
        sl->verdict = v == NULL ? FLOW_ENOTFOUND : v[0] == 'k' ? FLOWD_SCHED_KEY_FULL
                    : v[0] == 'f' ? FLOWD_SCHED_FLOW_FULL : 0;
        s->notify_slots |= sl->verdict == 0;
    }
    return 0;
}

/* Reads the results of what was sent, in order, up to a sync point. 0, or FLOW_EIO when a
 * statement failed (the transaction is then aborted) or the results could not be read (broken: the
 * connection is made again before it is used). The connection stays in pipeline mode. */
static int drain(pg_store_t *s) {
    int rc = 0;
    if (!s->piped)
        return 0;
    if (PQpipelineSync(s->wconn) != 1)
        goto broken;
    for (size_t i = 0; i < s->npend; i++) {
        PGresult *res = PQgetResult(s->wconn);
        if (res == NULL)
            goto broken;
        if (take_result(s, &s->pend[i], res) < 0)
            rc = FLOW_EIO;
        PQclear(res);
        if ((res = PQgetResult(s->wconn)) != NULL) { /* each statement's results end with NULL */
            PQclear(res);
            goto broken;
        }
    }
    s->npend = 0;
    PGresult *res = PQgetResult(s->wconn);
    int synced = res != NULL && PQresultStatus(res) == PGRES_PIPELINE_SYNC;
    PQclear(res);
    if (!synced)
        goto broken;
    return rc;
broken:
    flowd_log(FLOW_LOG_WARN, "store: the results of a batch could not be read: %s", PQerrorMessage(s->wconn));
    s->npend = 0;
    s->broken = 1;
    return FLOW_EIO;
}

/* Reads what is pending and leaves pipeline mode: for a statement whose result the next one needs,
 * and for the writer's work between batches. */
static int unpipe(pg_store_t *s) {
    int rc = drain(s);
    if (s->piped && !s->broken) {
        if (PQexitPipelineMode(s->wconn) != 1) {
            flowd_log(FLOW_LOG_WARN, "store: cannot leave pipeline mode: %s", PQerrorMessage(s->wconn));
            s->broken = 1;
            rc = FLOW_EIO;
        } else {
            s->piped = 0;
        }
    }
    return rc;
}

/* A schedule's run: its row moves from the run's time to the next one, in the transaction of the
 * job's insert; when another instance moved it first (its transaction holds the row until it
 * commits, and then this one finds next_s changed), no job is written: FLOW_EEXIST. */
static int apply_run(pg_store_t *s, flowd_op_t *op) {
    const flowd_op_create_t *c = &op->create;
    char next[24], due[24], at[24];
    int rc = unpipe(s); /* its result decides whether the job is written */
    if (rc < 0)
        return rc;
    snprintf(next, sizeof next, "%" PRId64, c->sched_next);
    snprintf(due, sizeof due, "%" PRId64, c->sched_due);
    snprintf(at, sizeof at, "%" PRId64, c->sched_at);
    const char *p[] = {next, op->id, due, c->sched, at};
    PGresult *res = run_prepared(s->wconn, "sched_run", 5, p, PGRES_COMMAND_OK);
    if (res == NULL)
        return FLOW_EIO;
    if (strcmp(PQcmdTuples(res), "1") != 0)
        op->rc = FLOW_EEXIST;
    PQclear(res);
    return 0;
}

static int apply_command(pg_store_t *s, const char *name, int n, const char *const *p);

static int apply_schedule(pg_store_t *s, flowd_op_t *op) {
    const flowd_op_schedule_t *o = &op->schedule;
    char next[24], due[24], now[24];
    snprintf(next, sizeof next, "%" PRId64, o->next);
    snprintf(due, sizeof due, "%" PRId64, o->due);
    u64(now, sizeof now, flow_wall_us());
    if (o->kind == FLOWD_SCHED_PUT) {
        const char *p[] = {o->name, o->tenant, o->definition, next, now};
        return apply_command(s, "sched_put", 5, p);
    }
    if (o->kind == FLOWD_SCHED_DELETE) {
        const char *p[] = {o->name};
        return apply_command(s, "sched_del", 1, p);
    }
    const char *p[] = {next, o->name, due};
    return apply_command(s, "sched_skip", 3, p);
}

static int apply_create(pg_store_t *s, flowd_op_t *op) {
    const flowd_op_create_t *c = &op->create;
    char created[24], hash[24];
    if (c->sched != NULL) {
        int rc = apply_run(s, op);
        if (rc != 0 || op->rc != 0)
            return rc;
    }
    if (c->write_document) {
        const char *p[] = {c->digest, c->document};
        int rc = pipe_send(s, "ins_version", NULL, 2, p, R_CMD, NULL);
        if (rc < 0)
            return rc;
    }
    u64(created, sizeof created, c->created_us);
    snprintf(hash, sizeof hash, "%" PRId64, (int64_t)c->body_hash);
    char start_at[24], priority[24], limit[24];
    u64(start_at, sizeof start_at, c->start_at_us);
    u64(priority, sizeof priority, c->priority);
    u64(limit, sizeof limit, c->conc_limit);
    const char *p[] = {op->id, c->flow, c->digest, created, c->idem_key, hash, c->params,
                       c->shared ? c->shared : "{}", s->me, c->tenant, c->callback, start_at,
                       priority, c->conc_key, limit, c->origin, c->resume_node, c->traceparent};
    return pipe_send(s, "ins_job", NULL, 18, p, R_CREATE, op);
}

/* A statement guarded by owner = me, which returns how many rows it changed. */
static int apply_guarded(pg_store_t *s, flowd_op_t *op, const char *name, int n,
                         const char *const *p) {
    return pipe_send(s, name, NULL, n, p, R_GUARDED, op);
}

/* A checkpoint: the job's row, its step (whose entry carries the step's patch) and, at a snapshot,
 * its whole store, which makes the older ones go (prune_stores). */
static int apply_checkpoint(pg_store_t *s, flowd_op_t *op) {
    const flowd_op_checkpoint_t *c = &op->checkpoint;
    char tries[24], steps[24], started[24], event[24], seq[24], at[24], base[24], visits[24];
    u64(tries, sizeof tries, c->tries);
    u64(visits, sizeof visits, c->visits);
    u64(steps, sizeof steps, c->steps);
    u64(started, sizeof started, c->started_us);
    u64(event, sizeof event, c->event_id);
    u64(seq, sizeof seq, c->step_seq);
    u64(at, sizeof at, c->shared_step);
    u64(base, sizeof base, c->base_step);
    const char *p[] = {op->id, flow_status_name(c->status), c->resume_node, tries, steps, started,
                       c->shared, c->waiting_for, c->last_action, event, seq, c->step, s->me, at,
                       visits};
    s->notify_events |= c->step != NULL;
    int rc = apply_guarded(s, op, "checkpoint", 15, p);
    if (rc != 0 || c->shared == NULL)
        return rc;
    /* guarded too: it is sent before the checkpoint's result is read */
    const char *pp[] = {op->id, at, base, s->me};
    return apply_command(s, "prune_stores", 4, pp);
}

static int apply_event(pg_store_t *s, flowd_op_t *op) {
    const flowd_op_event_t *e = &op->event;
    char started[24], event[24];
    u64(started, sizeof started, e->started_us);
    u64(event, sizeof event, e->event_id);
    const char *p[] = {op->id, flow_status_name(e->status), started, e->waiting_for, event, e->data,
                       s->me};
    s->notify_events = 1;
    return apply_guarded(s, op, "event", 7, p);
}

/* A limited job asks for its turn over every instance: one asks at a time (an advisory lock held
 * to the commit, so that two instances never both see the last free slot), and the answer goes to
 * the caller after the commit (store_writer.c: settle). A turn given, like a slot given back by a
 * finish, is told to every instance (NOTIFY 's'): the next job may have its turn. */
static int decide_slot(pg_store_t *s, flowd_op_t *op) {
    flowd_op_slot_t *sl = &op->slot;
    char klimit[24], flimit[24];
    u64(klimit, sizeof klimit, sl->conc_limit);
    u64(flimit, sizeof flimit, sl->flow_limit);
    int rc = pipe_send(s, NULL, "SELECT pg_advisory_xact_lock(" SLOT_LOCK ")", 0, NULL, R_TUPLES, NULL);
    if (rc < 0)
        return rc;
    const char *p[] = {op->id, s->me, klimit, flimit};
    s->asked = 1;
    return pipe_send(s, "slot", NULL, 4, p, R_SLOT, op); /* its verdict: take_result */
}

/* The lock is held from the first turn decided to the commit, and the other instances' writers
 * wait for it meanwhile: a batch decides its turns at its end (pg_commit), where they still see
 * everything queued before them, and the lock is held for them and the commit only instead of for
 * every statement of the batch after the first ask. A job that only waits takes no lock. */
static int apply_slot(pg_store_t *s, flowd_op_t *op) {
    flowd_op_slot_t *sl = &op->slot;
    if (sl->behind) {
        const char *p[] = {op->id, s->me, sl->behind == FLOWD_SCHED_KEY_FULL ? "k" : "f"};
        sl->verdict = sl->behind;
        return apply_command(s, "slot_behind", 3, p);
    }
    flowd_op_t **asks = flowd_grow(s->asks, s->nasks, &s->asks_cap, sizeof *asks, 16);
    if (asks == NULL)
        return decide_slot(s, op); /* now, then */
    s->asks = asks;
    s->asks[s->nasks++] = op;
    return 0;
}

static int apply_finish(pg_store_t *s, flowd_op_t *op) {
    const flowd_op_finish_t *e = &op->finish;
    char steps[24], started[24], finished[24], event[24], base[24];
    u64(steps, sizeof steps, e->steps);
    u64(base, sizeof base, e->base_step);
    u64(started, sizeof started, e->started_us);
    u64(finished, sizeof finished, e->finished_us);
    u64(event, sizeof event, e->event_id);
    const char *p[] = {op->id, flow_status_name(e->status), steps, started, finished, e->shared,
                       e->last_action, e->error_code, e->error_message, e->error_node, e->totals, event,
                       e->event, s->me, e->resume_node, e->base_shared,
                       e->at_base_step ? base : NULL};
    s->notify_events = 1;
    s->notify_slots |= e->limited;
    return apply_guarded(s, op, "finish", 17, p);
}

/* A statement with no rows to look at. */
static int apply_command(pg_store_t *s, const char *name, int n, const char *const *p) {
    return pipe_send(s, name, NULL, n, p, R_CMD, NULL);
}

static int apply_flow(pg_store_t *s, flowd_op_t *op) {
    char now[24];
    u64(now, sizeof now, flow_wall_us());
    const char *p[] = {op->flow.name, op->flow.document, now};
    return apply_command(s, "put_flow", 3, p);
}

static int apply_answer(pg_store_t *s, flowd_op_t *op) {
    char id[24], status[24];
    u64(id, sizeof id, op->answer.token);
    u64(status, sizeof status, op->answer.status);
    const char *p[] = {id, status, op->answer.body};
    s->notify_answers = 1;
    return apply_command(s, "answer", 3, p);
}

/* A delivery that another instance claimed meanwhile (this one stalled past its lease) is not
 * written over: the update finds no row of ours. */
static int apply_delivery(pg_store_t *s, flowd_op_t *op) {
    const flowd_op_delivery_t *d = &op->delivery;
    char attempts[24], next[24], status[24], created[24], lease[24];
    u64(attempts, sizeof attempts, d->attempts);
    u64(next, sizeof next, d->next_us);
    snprintf(status, sizeof status, "%ld", d->last_status);
    u64(created, sizeof created, d->created_us);
    u64(lease, sizeof lease, s->o.lease_ms);
    if (d->insert) {
        const char *p[] = {d->delivery_id, d->state, attempts, next, status, d->last_error, d->tries,
                           op->id, d->tenant, d->url, d->type, d->body, created, s->me, lease};
        return apply_command(s, "ins_delivery", 15, p);
    }
    const char *p[] = {d->delivery_id, d->state, attempts, next, status, d->last_error, d->tries,
                       s->me};
    int rc = apply_command(s, "upd_delivery", 8, p);
    if (rc == 0 && strcmp(d->state, "pending") != 0)
        rc = apply_command(s, "del_delivery", 1, p);
    return rc;
}

/* store.h's shared_at, in the writer's transaction: it sees what was queued before it (a running
 * job's last steps here) and what the other instances committed. The job's own outcome goes in
 * op->rc; a failed statement, which aborts the transaction, fails the batch (the writer tries its
 * operations again, one by one). */
static int apply_read(pg_store_t *s, flowd_op_t *op) {
    flowd_op_read_t *r = &op->read;
    json_t *store = NULL;
    int rc = unpipe(s); /* it reads, one statement after the other */
    if (rc < 0)
        return rc;
    op->rc = store_at(s->wconn, op->id, r->step, 0, 0, &store, r->oldest);
    if (op->rc == 0) {
        json_decref(*r->out);
        *r->out = store;
    }
    return PQtransactionStatus(s->wconn) == PQTRANS_INERROR ? FLOW_EIO : 0;
}

static int pg_apply(void *data, flowd_op_t *op) {
    pg_store_t *s = data;
    const char *id[] = {op->id};
    switch (op->kind) {
    case FLOWD_OP_CREATE: return apply_create(s, op);
    case FLOWD_OP_CHECKPOINT: return apply_checkpoint(s, op);
    case FLOWD_OP_EVENT: return apply_event(s, op);
    case FLOWD_OP_FINISH: return apply_finish(s, op);
    case FLOWD_OP_REMOVE: return apply_command(s, "remove", 1, id);
    case FLOWD_OP_FLOW: return apply_flow(s, op);
    case FLOWD_OP_ANSWER: return apply_answer(s, op);
    case FLOWD_OP_SCHEDULE: return apply_schedule(s, op);
    case FLOWD_OP_DELIVERY: return apply_delivery(s, op);
    case FLOWD_OP_SLOT: return apply_slot(s, op);
    case FLOWD_OP_READ: return apply_read(s, op);
    }
    return 0;
}

static int pg_begin(void *data) {
    pg_store_t *s = data;
    s->notify_events = s->notify_answers = s->notify_slots = 0;
    s->nasks = 0;
    s->asked = 0;
    return pipe_send(s, NULL, "BEGIN", 0, NULL, R_CMD, NULL);
}

/* NOTIFY tells the listeners what the transaction holds. */
static int pg_commit(void *data) {
    pg_store_t *s = data;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->nasks; i++)
        rc = decide_slot(s, s->asks[i]);
    /* a turn given is told to every instance: the verdicts first */
    if (rc == 0 && s->asked)
        rc = drain(s);
    s->nasks = 0;
    if (rc == 0 && s->notify_events)
        rc = pipe_send(s, NULL, "NOTIFY flowd, 'e'", 0, NULL, R_CMD, NULL);
    if (rc == 0 && s->notify_answers)
        rc = pipe_send(s, NULL, "NOTIFY flowd, 'a'", 0, NULL, R_CMD, NULL);
    if (rc == 0 && s->notify_slots)
        rc = pipe_send(s, NULL, "NOTIFY flowd, 's'", 0, NULL, R_CMD, NULL);
    if (rc == 0)
        rc = pipe_send(s, NULL, "COMMIT", 0, NULL, R_CMD, NULL);
    if (rc == 0)
        rc = unpipe(s);
    if (rc != 0)
        flowd_log(FLOW_LOG_ERROR, "store: a commit failed: %s", PQerrorMessage(s->wconn));
    return rc;
}

static void pg_rollback(void *data) {
    pg_store_t *s = data;
    (void)unpipe(s);
    if (s->broken)
        return; /* made again by pg_recover: the server ends its transaction with the connection */
    PQclear(PQexec(s->wconn, "ROLLBACK"));
}

/* After a failed batch: a lost connection is made again (the batch is then tried once more). */
static int pg_recover(void *data) {
    pg_store_t *s = data;
    return PQstatus(s->wconn) != CONNECTION_OK || s->broken ? writer_reset(s) : FLOW_EIO;
}

/* The job is no longer ours: the loop forgets it. */
static void lost(pg_store_t *s, const char *id) {
    if (json_object_get(s->owned, id) == NULL)
        return;
    json_object_del(s->owned, id);
    flowd_log(FLOW_LOG_WARN, "store: job %s was taken over by another instance (this one's lease ran out); "
              "it stops here", id);
    if (s->hooks.lost != NULL)
        s->hooks.lost(s->hooks.data, id);
}

/* After each operation: keeps the set of the jobs whose leases we hold. */
static void pg_settled(void *data, const flowd_op_t *op, int rc) {
    pg_store_t *s = data;
    if (rc != 0 || op->kind == FLOWD_OP_FLOW || op->kind == FLOWD_OP_ANSWER ||
        op->kind == FLOWD_OP_SCHEDULE || op->kind == FLOWD_OP_DELIVERY || op->kind == FLOWD_OP_SLOT ||
        op->kind == FLOWD_OP_READ)
        return;
    if (op->kind == FLOWD_OP_CREATE)
        json_object_set_new(s->owned, op->id, json_true());
    else if (op->lost)
        lost(s, op->id);
    else if (op->kind == FLOWD_OP_FINISH || op->kind == FLOWD_OP_REMOVE)
        json_object_del(s->owned, op->id);
}

/* ---- the writer: leases, claims, retention ---- */

/* This instance's lease, its row in instances (its jobs' leases are that one), written or moved on:
 * at start, before its first job, and then with every renewal. 0 or FLOW_EIO. */
static int renew_lease(pg_store_t *s) {
    char lease[24];
    u64(lease, sizeof lease, s->o.lease_ms);
    const char *p[] = {s->me, lease};
    PGresult *res = run_prepared(s->wconn, "renew", 2, p, PGRES_COMMAND_OK);
    PQclear(res);
    return res != NULL ? 0 : FLOW_EIO;
}

/* Renews this instance's lease and its deliveries'; when it holds fewer jobs than it thinks, finds
 * out which are gone (another instance took them over while it could not renew). */
static void renew(pg_store_t *s) {
    char lease[24];
    u64(lease, sizeof lease, s->o.lease_ms);
    const char *p[] = {s->me, lease};
    PQclear(run_prepared(s->wconn, "renew_deliveries", 2, p, PGRES_COMMAND_OK));
    PGresult *res = renew_lease(s) == 0 ? run_prepared(s->wconn, "owned_count", 1, p, PGRES_TUPLES_OK) : NULL;
    if (res == NULL) {
        if (PQstatus(s->wconn) != CONNECTION_OK)
            writer_reset(s);
        return;
    }
    size_t held = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (held >= json_object_size(s->owned))
        return;
    res = run_prepared(s->wconn, "owned", 1, p, PGRES_TUPLES_OK);
    if (res == NULL)
        return;
    json_t *still = json_object();
    for (int i = 0; i < PQntuples(res); i++)
        json_object_set_new(still, PQgetvalue(res, i, 0), json_true());
    PQclear(res);
    const char *id;
    json_t *v;
    void *tmp;
    json_t *gone = json_array();
    json_object_foreach_safe(s->owned, tmp, id, v) {
        if (json_object_get(still, id) == NULL)
            json_array_append_new(gone, json_string(id));
    }
    size_t i;
    json_array_foreach(gone, i, v) lost(s, json_string_value(v));
    json_decref(gone);
    json_decref(still);
}

/* An array literal ({a,b,c}) of a column's values but NULLs: ids and digests are hex, nothing to
 * quote. */
static char *id_array(PGresult *res, int column) {
    size_t n = (size_t)PQntuples(res);
    char *text = malloc(n * (FLOWD_ID_LEN + 1) + 3);
    if (text == NULL)
        return NULL;
    size_t len = 0;
    text[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (PQgetisnull(res, (int)i, column))
            continue;
        if (len > 1)
            text[len++] = ',';
        const char *v = PQgetvalue(res, (int)i, column);
        size_t l = strlen(v);
        if (l > FLOWD_ID_LEN)
            l = FLOWD_ID_LEN;
        memcpy(text + len, v, l);
        len += l;
    }
    text[len++] = '}';
    text[len] = '\0';
    return text;
}

/* Claims jobs nobody holds (their owner's lease ran out, or they were released) and hands them to the
 * loop, each with its history, its last events, the version of its flow it started with, and its
 * shared store made again from its last whole store and the patches after (store_at). */
/* The rows of res that are id's, for a walk along res (sorted by its column 0, ids in order): *row
 * moves on to the first of them (or past where it would be); they end before the row returned. */
static int rows_of(PGresult *res, int *row, const char *id) {
    int n = PQntuples(res), end;
    while (*row < n && strcmp(PQgetvalue(res, *row, 0), id) < 0)
        (*row)++;
    for (end = *row; end < n && strcmp(PQgetvalue(res, end, 0), id) == 0; end++)
        ;
    return end;
}

/* Rows of res from *row on that are id's (rows_of): their column as JSON, added to into (one that
 * does not parse is left out); *row goes past them. */
static int take_rows(PGresult *res, int *row, const char *id, int column, json_t *into) {
    for (int end = rows_of(res, row, id); *row < end; (*row)++) {
        json_t *v = json_loads(PQgetvalue(res, *row, column), JSON_ALLOW_NUL, NULL);
        if (v != NULL && json_array_append_new(into, v) < 0)
            return FLOW_ENOMEM;
    }
    return 0;
}

/* A claimed job's store (its row of claimed_stores, r, or -1 when it has none; patches: the steps
 * after it), as store_at(latest, partial) makes it. */
static int claimed_store(PGresult *stores, int r, const char *id, json_t *patches, json_t **out) {
    *out = NULL;
    if (r < 0)
        return FLOW_ENOTFOUND;
    int legacy = strcmp(PQgetvalue(stores, r, 5), "t") == 0;
    if (!legacy && PQgetisnull(stores, r, 2))
        return FLOW_ESTATE;
    uint64_t last = col_u64(stores, r, 1), from = legacy ? last : col_u64(stores, r, 2);
    return replay_store(id, col(stores, r, legacy ? 4 : 3), from, last, patches, 1, out);
}

/* The claimed job of row r of jobs, for adopt (borrowing from the results). */
static flowd_stored_job_t claimed_job(PGresult *jobs, int r, PGresult *docs, json_t *shared,
                                      json_t *history) {
    const char *digest = col(jobs, r, 3), *document = NULL, *params = col(jobs, r, 9);
    for (int d = 0; digest != NULL && d < PQntuples(docs); d++)
        if (strcmp(PQgetvalue(docs, d, 0), digest) == 0)
            document = PQgetvalue(docs, d, 1);
    return (flowd_stored_job_t){
        .id = PQgetvalue(jobs, r, 0),
        .seq = 0, /* a fresh place in this instance's table */
        .flow = PQgetvalue(jobs, r, 2),
        .flow_document = document,
        .status = status_of(PQgetvalue(jobs, r, 4)),
        .created_us = col_u64(jobs, r, 5),
        .started_us = col_u64(jobs, r, 6),
        .idem_key = col(jobs, r, 7),
        .body_hash = (uint64_t)strtoll(PQgetvalue(jobs, r, 8), NULL, 10),
        .params = params ? json_loads(params, JSON_ALLOW_NUL, NULL) : NULL,
        .shared = shared,
        .resume_node = col(jobs, r, 10),
        .tries = (unsigned)col_u64(jobs, r, 11),
        .steps = col_u64(jobs, r, 12),
        .last_action = col(jobs, r, 13),
        .waiting_for = col(jobs, r, 14),
        .tenant = col(jobs, r, 16),
        .callback = col(jobs, r, 17),
        .start_at_us = col_u64(jobs, r, 18),
        .priority = (unsigned)col_u64(jobs, r, 19),
        .conc_key = col(jobs, r, 20),
        .conc_limit = (unsigned)col_u64(jobs, r, 21),
        .origin = col(jobs, r, 22),
        .has_visits = !PQgetisnull(jobs, r, 23),
        .visits = col_u64(jobs, r, 23),
        .traceparent = col(jobs, r, 24),
        .history = history,
    };
}

/* Takes over jobs nobody holds, at most CLAIM_BATCH; how many it took. Their flows' documents,
 * last steps, events, whole stores and patches are read in the claim's transaction, five
 * statements for all of them: should one fail, the claim is rolled back and the jobs stay where
 * they were. They are adopted once it is committed. A job whose store cannot be made again goes
 * back (release_one), and is claimed again later. */
static int claim(pg_store_t *s) {
    uint64_t room = s->hooks.room ? s->hooks.room(s->hooks.data) : CLAIM_BATCH;
    if (room == 0 || flowd_writer_released(s->writer))
        return 0;
    if (room > CLAIM_BATCH)
        room = CLAIM_BATCH;
    char limit[24], keep[24];
    u64(limit, sizeof limit, room);
    u64(keep, sizeof keep, s->o.events_limit ? s->o.events_limit : 1000);
    const char *p[] = {s->me, limit};
    PGresult *jobs = NULL, *docs = NULL, *steps = NULL, *events = NULL, *stores = NULL,
             *patches = NULL;
    json_t **shared = NULL, **history = NULL;
    flowd_stored_event_t *evs = NULL;
    char *ids = NULL, *digests = NULL;
    int n = 0, adopted = 0;
    if (run_cmd(s->wconn, "BEGIN", 0, NULL) < 0 ||
        (jobs = run_prepared(s->wconn, "claim", 2, p, PGRES_TUPLES_OK)) == NULL)
        goto fail;
    if ((n = PQntuples(jobs)) == 0) {
        if (run_cmd(s->wconn, "COMMIT", 0, NULL) < 0)
            goto fail;
        goto out;
    }
    ids = id_array(jobs, 0);
    digests = id_array(jobs, 3);
    const char *pi[] = {ids, keep};
    const char *pd[] = {digests};
    shared = calloc((size_t)n, sizeof *shared);
    history = calloc((size_t)n, sizeof *history);
    if (ids == NULL || digests == NULL || shared == NULL || history == NULL ||
        (docs = run_prepared(s->wconn, "claimed_docs", 1, pd, PGRES_TUPLES_OK)) == NULL ||
        (steps = run_prepared(s->wconn, "claimed_steps", 2, pi, PGRES_TUPLES_OK)) == NULL ||
        (events = run_prepared(s->wconn, "claimed_events", 2, pi, PGRES_TUPLES_OK)) == NULL ||
        (stores = run_prepared(s->wconn, "claimed_stores", 1, pi, PGRES_TUPLES_OK)) == NULL ||
        (patches = run_prepared(s->wconn, "claimed_patches", 1, pi, PGRES_TUPLES_OK)) == NULL)
        goto fail;
    /* the claimed jobs and what was read of them all come sorted by job id: walk them along */
    int si = 0, ci = 0, pj = 0;
    for (int r = 0; r < n; r++) {
        const char *id = PQgetvalue(jobs, r, 0);
        json_t *after = json_array();
        int last = rows_of(stores, &ci, id), row = ci < last ? ci : -1;
        if ((history[r] = json_array()) == NULL || after == NULL ||
            take_rows(steps, &si, id, 1, history[r]) < 0 || take_rows(patches, &pj, id, 1, after) < 0) {
            json_decref(after);
            goto fail;
        }
        int rc = claimed_store(stores, row, id, after, &shared[r]);
        json_decref(after);
        if (rc == FLOW_ENOMEM)
            goto fail;
        if (rc < 0) {
            flowd_log(FLOW_LOG_ERROR, "store: job %s: its shared store cannot be read; it is taken again later",
                      id);
            const char *pr[] = {id, s->me};
            PGresult *res = run_prepared(s->wconn, "release_one", 2, pr, PGRES_COMMAND_OK);
            if (res == NULL)
                goto fail;
            PQclear(res);
        }
    }
    if (run_cmd(s->wconn, "COMMIT", 0, NULL) < 0)
        goto fail;
    /* they are ours from here */
    int ei = 0, ne = PQntuples(events);
    evs = malloc(sizeof *evs * (size_t)(ne ? ne : 1));
    for (int r = 0; r < n; r++) {
        const char *id = PQgetvalue(jobs, r, 0);
        if (shared[r] == NULL)
            continue; /* gone back */
        size_t nev = 0;
        for (int end = rows_of(events, &ei, id); ei < end; ei++) {
            if (evs == NULL)
                continue; /* out of memory: it resumes without its events */
            evs[nev++] = (flowd_stored_event_t){.id = col_u64(events, ei, 1),
                                                .type = (int)col_u64(events, ei, 2),
                                                .final = strcmp(PQgetvalue(events, ei, 3), "t") == 0,
                                                .seq = col_u64(events, ei, 4),
                                                .data = PQgetvalue(events, ei, 5),
                                                .len = (size_t)PQgetlength(events, ei, 5)};
        }
        flowd_stored_job_t sj = claimed_job(jobs, r, docs, shared[r], history[r]);
        sj.events = evs;
        sj.nevents = nev;
        json_object_set_new(s->owned, id, json_true());
        if (s->hooks.adopt != NULL)
            s->hooks.adopt(s->hooks.data, &sj);
        adopted++;
        json_decref(sj.params);
    }
    flowd_log(FLOW_LOG_INFO, "store: took over %d jobs (their owner's lease ran out, or they were released)",
              adopted);
    goto out;
fail:
    /* nothing was claimed: the jobs are where they were, and are looked for again later */
    flowd_log(FLOW_LOG_ERROR, "store: jobs to take over could not be read (above); they are taken later");
    PQclear(PQexec(s->wconn, "ROLLBACK"));
    if (PQstatus(s->wconn) != CONNECTION_OK)
        writer_reset(s);
out:
    for (int r = 0; shared != NULL && r < n; r++) {
        json_decref(shared[r]);
        json_decref(history[r]);
    }
    free(shared);
    free(history);
    free(evs);
    free(ids);
    free(digests);
    PQclear(docs);
    PQclear(steps);
    PQclear(events);
    PQclear(stores);
    PQclear(patches);
    PQclear(jobs);
    return adopted;
}

#define DELIVERY_COLUMNS                                                                           \
    "id, job_id, tenant, url, type, body, created_us, state, attempts, next_us, last_status,"      \
    " last_error, tries"

/* A row of DELIVERY_COLUMNS (borrowed from res). */
static flowd_stored_delivery_t delivery_of_row(PGresult *res, int r) {
    return (flowd_stored_delivery_t){.id = PQgetvalue(res, r, 0),
                                     .job = PQgetvalue(res, r, 1),
                                     .tenant = PQgetvalue(res, r, 2),
                                     .url = PQgetvalue(res, r, 3),
                                     .type = PQgetvalue(res, r, 4),
                                     .body = PQgetvalue(res, r, 5),
                                     .created_us = col_u64(res, r, 6),
                                     .state = PQgetvalue(res, r, 7),
                                     .attempts = (unsigned)col_u64(res, r, 8),
                                     .next_us = col_u64(res, r, 9),
                                     .last_status = (long)col_u64(res, r, 10),
                                     .last_error = col(res, r, 11),
                                     .tries = col(res, r, 12)};
}

/* Claims deliveries whose owner's lease ran out (it died, or released them at shutdown), as many as
 * the loop has room for, and hands them to it. */
static void claim_deliveries(pg_store_t *s) {
    uint64_t room = s->hooks.delivery_room ? s->hooks.delivery_room(s->hooks.data) : 0;
    if (room == 0 || s->hooks.adopt_delivery == NULL || flowd_writer_released(s->writer))
        return;
    if (room > CLAIM_BATCH)
        room = CLAIM_BATCH;
    char limit[24], lease[24];
    u64(limit, sizeof limit, room);
    u64(lease, sizeof lease, s->o.lease_ms);
    const char *p[] = {s->me, limit, lease};
    PGresult *res = run_prepared(s->wconn, "claim_deliveries", 3, p, PGRES_TUPLES_OK);
    if (res == NULL) {
        if (PQstatus(s->wconn) != CONNECTION_OK)
            writer_reset(s);
        return;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        flowd_stored_delivery_t d = delivery_of_row(res, r);
        s->hooks.adopt_delivery(s->hooks.data, &d);
    }
    if (PQntuples(res) > 0)
        flowd_log(FLOW_LOG_INFO, "store: took over %d webhook deliveries (their owner's lease ran out)",
                  PQntuples(res));
    PQclear(res);
}

static void sweep(pg_store_t *s) {
    char cutoff[24], old[24];
    uint64_t now = flow_wall_us(), keep = s->o.retention_ms * 1000;
    u64(cutoff, sizeof cutoff, now > keep ? now - keep : 0);
    u64(old, sizeof old, now > 3600000000u ? now - 3600000000u : 0); /* commands nobody answered for an hour */
    const char *p[] = {cutoff, old};
    PGresult *res = run_prepared(s->wconn, "sweep", 2, p, PGRES_TUPLES_OK);
    if (res != NULL && strcmp(PQgetvalue(res, 0, 0), "0") != 0)
        flowd_log(FLOW_LOG_INFO, "store: %s ended jobs past the retention deleted", PQgetvalue(res, 0, 0));
    PQclear(res);
    PQclear(run_prepared(s->wconn, "forget_instances", 0, NULL, PGRES_COMMAND_OK));
}

static void release_all(pg_store_t *s) {
    const char *p[] = {s->me};
    PQclear(run_prepared(s->wconn, "release_deliveries", 1, p, PGRES_COMMAND_OK));
    PGresult *res = run_prepared(s->wconn, "release", 1, p, PGRES_COMMAND_OK);
    if (res != NULL && strcmp(PQcmdTuples(res), "0") != 0)
        flowd_log(FLOW_LOG_INFO, "store: %s unfinished jobs released to the other instances", PQcmdTuples(res));
    PQclear(res);
    if (res != NULL)
        PQclear(run_prepared(s->wconn, "unregister", 1, p, PGRES_COMMAND_OK));
}

/* The writer's periodic work once attached: renewals, claims, retention; when it is due next. */
static uint64_t pg_tick(void *data) {
    pg_store_t *s = data;
    if (!atomic_load(&s->attached))
        return 0;
    uint64_t renew_every = s->o.lease_ms / 3 ? s->o.lease_ms / 3 : 1;
    uint64_t now = flow_mono_ms();
    if (now >= s->next_renew) {
        renew(s);
        s->next_renew = now + renew_every;
    }
    if (now >= s->next_claim) {
        /* a full batch: there may be more, taken after the batch of operations that waits (not
         * when some went back: they would be claimed again at once) */
        int full = claim(s) == CLAIM_BATCH;
        claim_deliveries(s);
        /* what no notification told (a turn that went with a dead owner's queued job): ask again */
        if (s->hooks.poke != NULL)
            s->hooks.poke(s->hooks.data);
        s->next_claim = full ? now : flow_mono_ms() + s->o.claim_ms;
    }
    if (now >= s->next_sweep) {
        sweep(s);
        s->next_sweep = now + SWEEP_MS;
    }
    return s->next_renew < s->next_claim ? s->next_renew : s->next_claim;
}

/* After the last batch: what still runs here is not ended by our shutdown: the others take it over
 * at once. */
static void pg_stopped(void *data) {
    release_all(data);
}

static const flowd_writer_backend_t postgres_backend = {
    .name = "postgresql",
    .flags = FLOWD_WRITER_EVENTS,
    .begin = pg_begin,
    .apply = pg_apply,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .recover = pg_recover,
    .settled = pg_settled,
    .tick = pg_tick,
    .stopped = pg_stopped,
};

/* ---- the calls of the loop and the HTTP threads ---- */

static flowd_writer_t *writer_of(flowd_store_t *store) {
    return ((pg_store_t *)store)->writer;
}

static int pg_create(flowd_store_t *store, flowd_job_t *job, json_t *shared, json_t *params,
                     flowd_store_done_cb done, void *data) {
    return flowd_writer_create(writer_of(store), job, shared, params, done, data);
}

static void pg_checkpoint(flowd_store_t *store, flowd_job_t *job, const flowd_checkpoint_t *cp) {
    flowd_writer_checkpoint(writer_of(store), job, cp);
}

static void pg_event(flowd_store_t *store, flowd_job_t *job, uint64_t id, const char *data, size_t len) {
    flowd_writer_event(writer_of(store), job, id, data, len);
}

static void pg_finish(flowd_store_t *store, flowd_job_t *job) {
    flowd_writer_finish(writer_of(store), job);
}

static void pg_remove(flowd_store_t *store, const char *id) {
    flowd_writer_remove(writer_of(store), id);
}

static int pg_put_flow(flowd_store_t *store, const char *name, json_t *doc) {
    return flowd_writer_put_flow(writer_of(store), name, doc);
}

static int pg_acquire(flowd_store_t *store, struct flowd_job *job, unsigned flow_limit, int behind,
                      flowd_store_slot_cb done, void *data) {
    return flowd_writer_slot(writer_of(store), job, flow_limit, behind, done, data);
}

static void pg_answer(flowd_store_t *store, uint64_t token, unsigned status, char *body, size_t len) {
    (void)len;
    flowd_writer_answer(writer_of(store), token, status, body);
}

static void pg_release(flowd_store_t *store) {
    flowd_writer_release(writer_of(store));
}

static size_t pg_backlog(flowd_store_t *store) {
    return flowd_writer_backlog(writer_of(store));
}

static void pg_delivery(flowd_store_t *store, const flowd_stored_delivery_t *d, int insert) {
    flowd_writer_delivery(((pg_store_t *)store)->writer, d, insert);
}

/* At start the jobs are not loaded: each instance claims what nobody holds (see claim). */
static int pg_load(flowd_store_t *store, flowd_store_each_cb each, void *data) {
    (void)store;
    (void)each;
    (void)data;
    return 0;
}

static int pg_load_flows(flowd_store_t *store, flowd_store_flow_cb each, void *data) {
    pg_store_t *s = (pg_store_t *)store;
    PGresult *res = run(s->wconn, "SELECT name, document FROM flows ORDER BY updated_us", 0, NULL, PGRES_TUPLES_OK);
    int rc = 0;
    if (res == NULL)
        return FLOW_EIO;
    for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
        const char *text = col(res, i, 1);
        json_t *doc = text ? json_loads(text, 0, NULL) : NULL;
        rc = each(data, PQgetvalue(res, i, 0), doc);
        json_decref(doc);
    }
    PQclear(res);
    return rc;
}

#define SCHEDULE_COLUMNS "s.name, s.tenant, s.definition, s.next_s, s.last_job, s.last_run_s"

/* Each row of a SELECT SCHEDULE_COLUMNS [, whether the last job is active] to each. */
static int each_schedule(PGresult *res, flowd_store_schedule_cb each, void *data) {
    int rc = 0;
    for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
        flowd_stored_schedule_t sched = {.name = col(res, i, 0),
                                         .tenant = col(res, i, 1),
                                         .definition = col(res, i, 2),
                                         .next = (int64_t)col_u64(res, i, 3),
                                         .last_job = col(res, i, 4),
                                         .last_run = (int64_t)col_u64(res, i, 5)};
        if (PQnfields(res) > 6)
            sched.last_job_active = strcmp(PQgetvalue(res, i, 6), "t") == 0;
        rc = each(data, &sched);
    }
    return rc;
}

static int pg_load_schedules(flowd_store_t *store, flowd_store_schedule_cb each, void *data) {
    pg_store_t *s = (pg_store_t *)store;
    PGresult *res = run(s->wconn, "SELECT " SCHEDULE_COLUMNS " FROM schedules s ORDER BY s.name", 0, NULL,
                        PGRES_TUPLES_OK);
    if (res == NULL)
        return FLOW_EIO;
    int rc = each_schedule(res, each, data);
    PQclear(res);
    return rc;
}

static int pg_put_schedule(flowd_store_t *store, const char *name, const flowd_stored_schedule_t *sched) {
    return flowd_writer_put_schedule(writer_of(store), name, sched);
}

static int pg_create_run(flowd_store_t *store, flowd_job_t *job, json_t *shared, json_t *params,
                         const flowd_schedule_run_t *r, flowd_store_done_cb done, void *data) {
    return flowd_writer_create_run(writer_of(store), job, shared, params, r, done, data);
}

static void pg_skip_run(flowd_store_t *store, const flowd_schedule_run_t *r) {
    flowd_writer_skip_run(writer_of(store), r);
}

static PGconn *pool_get(pg_store_t *s);
static void pool_put(pg_store_t *s, PGconn *c);

/* On a pooled connection (the writer's is the writer thread's), with whether each schedule's last
 * job is still active, wherever it runs. */
static int pg_read_schedules(flowd_store_t *store, flowd_store_schedule_cb each, void *data) {
    pg_store_t *s = (pg_store_t *)store;
    PGconn *c = pool_get(s);
    if (c == NULL)
        return FLOW_EIO;
    PGresult *res = run(c, "SELECT " SCHEDULE_COLUMNS ", COALESCE(j.status IN " ACTIVE ", false)"
                        " FROM schedules s LEFT JOIN jobs j ON j.id = s.last_job ORDER BY s.name", 0, NULL,
                        PGRES_TUPLES_OK);
    int rc = res ? each_schedule(res, each, data) : FLOW_EIO;
    PQclear(res);
    pool_put(s, c);
    return rc;
}

/* ---- the pool: reads for the HTTP threads ---- */

static PGconn *pool_get(pg_store_t *s) {
    pthread_mutex_lock(&s->plock);
    while (s->pfree == 0 && s->ptotal >= s->pmax)
        pthread_cond_wait(&s->pcond, &s->plock);
    if (s->pfree > 0) {
        PGconn *c = s->pool[--s->pfree];
        pthread_mutex_unlock(&s->plock);
        return c;
    }
    s->ptotal++;
    pthread_mutex_unlock(&s->plock);
    char err[256];
    PGconn *c = connect_db(s->uri, s->o.lease_ms, err, sizeof err);
    if (c == NULL) {
        flowd_log(FLOW_LOG_WARN, "store: %s", err);
        pthread_mutex_lock(&s->plock);
        s->ptotal--;
        pthread_cond_signal(&s->pcond);
        pthread_mutex_unlock(&s->plock);
    }
    return c;
}

static void pool_put(pg_store_t *s, PGconn *c) {
    pthread_mutex_lock(&s->plock);
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE) {
        s->pool[s->pfree++] = c;
    } else {
        PQfinish(c); /* a broken one is made anew when needed */
        s->ptotal--;
    }
    pthread_cond_signal(&s->pcond);
    pthread_mutex_unlock(&s->plock);
}

#define JOB_COLUMNS                                                                                          \
    "id, seq, flow, status, created_us, started_us, finished_us, resume_node, steps, last_action, waiting_for," \
    " error_code, error_message, error_node, idem_key, body_hash, last_event, tenant, start_at_us," \
    " priority, conc_key, conc_limit, origin"

static char *col_dup(PGresult *res, int row, int i) {
    return dup_or_null(col(res, row, i));
}

static void remote_from_row(PGresult *res, int r, flowd_remote_job_t *j) {
    memset(j, 0, sizeof *j);
    snprintf(j->id, sizeof j->id, "%s", PQgetvalue(res, r, 0));
    j->seq = col_u64(res, r, 1);
    j->flow = col_dup(res, r, 2);
    j->status = status_of(PQgetvalue(res, r, 3));
    j->created_us = col_u64(res, r, 4);
    j->started_us = col_u64(res, r, 5);
    j->finished_us = col_u64(res, r, 6);
    if (!flow_status_final(j->status) && j->status != FLOW_QUEUED)
        j->current_node = col_dup(res, r, 7); /* where its checkpoint resumes: the node it is in */
    j->steps = col_u64(res, r, 8);
    j->last_action = col_dup(res, r, 9);
    if (j->status == FLOW_WAITING)
        j->waiting_for = col_dup(res, r, 10);
    j->error_code = flowd_store_error_code(col(res, r, 11));
    j->error_message = col_dup(res, r, 12);
    j->error_node = col_dup(res, r, 13);
    j->idem_key = col_dup(res, r, 14);
    j->body_hash = (uint64_t)strtoll(PQgetvalue(res, r, 15), NULL, 10);
    j->last_event = col_u64(res, r, 16);
    j->tenant = col_dup(res, r, 17);
    j->start_at_us = col_u64(res, r, 18);
    j->priority = (unsigned)col_u64(res, r, 19);
    j->conc_key = col_dup(res, r, 20);
    j->conc_limit = (unsigned)col_u64(res, r, 21);
    j->origin = col_dup(res, r, 22);
}

/* The last steps of a job as a compact JSON array, and its totals. */
static int read_history(PGconn *c, const char *id, flowd_remote_job_t *out) {
    const char *p[] = {id, "1000"};
    PGresult *res = run(c, "SELECT data, (SELECT totals FROM jobs WHERE id = $1),"
                           " (SELECT count(*) FROM steps WHERE job_id = $1)"
                           " FROM (SELECT seq, data FROM steps WHERE job_id = $1 ORDER BY seq DESC LIMIT $2::bigint) x"
                           " ORDER BY seq",
                        2, p, PGRES_TUPLES_OK);
    if (res == NULL)
        return FLOW_EIO;
    size_t cap = 2, len = 0;
    int n = PQntuples(res);
    for (int i = 0; i < n; i++)
        cap += (size_t)PQgetlength(res, i, 0) + 1;
    char *text = malloc(cap + 1);
    if (text == NULL) {
        PQclear(res);
        return FLOW_ENOMEM;
    }
    text[len++] = '[';
    for (int i = 0; i < n; i++) {
        if (i > 0)
            text[len++] = ',';
        size_t l = (size_t)PQgetlength(res, i, 0);
        memcpy(text + len, PQgetvalue(res, i, 0), l);
        len += l;
    }
    text[len++] = ']';
    text[len] = '\0';
    out->history = text;
    out->history_len = len;
    json_t *totals = n > 0 && col(res, 0, 1) ? json_loads(col(res, 0, 1), 0, NULL) : NULL;
    if (totals != NULL) {
        out->totals = (flow_history_totals_t){
            .steps = (uint64_t)json_integer_value(json_object_get(totals, "steps")),
            .failed = (uint64_t)json_integer_value(json_object_get(totals, "failed")),
            .retries = (uint64_t)json_integer_value(json_object_get(totals, "retries")),
            .dropped = (uint64_t)json_integer_value(json_object_get(totals, "dropped"))};
        json_decref(totals);
    } else {
        /* still running: what the steps kept say */
        uint64_t all = n > 0 ? col_u64(res, 0, 2) : 0;
        out->totals = (flow_history_totals_t){.steps = all, .dropped = all - (uint64_t)n};
        for (int i = 0; i < n; i++) {
            json_t *step = json_loads(PQgetvalue(res, i, 0), JSON_ALLOW_NUL, NULL);
            json_int_t tries = json_integer_value(json_object_get(step, "tries"));
            out->totals.failed += !json_is_null(json_object_get(step, "error"));
            out->totals.retries += tries > 1 ? (uint64_t)(tries - 1) : 0;
            json_decref(step);
        }
    }
    PQclear(res);
    return 0;
}

/* The document of the flow version a job started with (none for a flow written in C). */
static int read_document(PGconn *c, const char *id, flowd_remote_job_t *out) {
    const char *p[] = {id};
    PGresult *res = run(c, "SELECT v.document FROM jobs j JOIN flow_versions v ON v.digest = j.digest"
                           " WHERE j.id = $1",
                        1, p, PGRES_TUPLES_OK);
    if (res == NULL)
        return FLOW_EIO;
    int rc = 0;
    if (PQntuples(res) > 0 && (out->flow_document = col_dup(res, 0, 0)) == NULL)
        rc = FLOW_ENOMEM;
    PQclear(res);
    return rc;
}

/* The shared store of the job read into out: an ended job's is its row's (final, row: its text);
 * one that has not ended has {} there, and its store is made from its last whole store and the
 * patches after (store_at), as of a step at least as late as the row's. */
static int read_shared(PGconn *c, flowd_remote_job_t *out, const char *row) {
    json_t *store = NULL;
    int rc = 0;
    if (flow_status_final(out->status)) {
        if (row != NULL && (out->shared = strdup(row)) == NULL)
            return FLOW_ENOMEM;
    } else if ((rc = store_at(c, out->id, 0, 1, 0, &store, NULL)) == 0) {
        out->shared = json_dumps(store, JSON_COMPACT);
        rc = out->shared ? 0 : FLOW_ENOMEM;
    } else if (rc == FLOW_ENOTFOUND) {
        rc = 0; /* removed since the row was read: no store, as for a job that has none */
    } else if (rc == FLOW_ESTATE) {
        rc = FLOW_EIO; /* its log is broken (logged): a 500, not a store that is not its own */
    }
    json_decref(store);
    out->shared_len = out->shared ? strlen(out->shared) : 0;
    return rc;
}

static int pg_read_job(flowd_store_t *store, const char *id, const char *idem_key,
                       const char *tenant, unsigned what, flowd_remote_job_t *out) {
    pg_store_t *s = (pg_store_t *)store;
    memset(out, 0, sizeof *out);
    PGconn *c = pool_get(s);
    if (c == NULL)
        return FLOW_EIO;
    const char *p[] = {id ? id : idem_key, tenant};
    PGresult *res = run(c,
                        id ? "SELECT " JOB_COLUMNS ", shared, params, callback, base_shared, base_step"
                             " FROM jobs WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)"
                           : "SELECT " JOB_COLUMNS ", shared, params, callback, base_shared, base_step"
                             " FROM jobs WHERE idem_key = $1"
                             " AND tenant = $2",
                        2, p, PGRES_TUPLES_OK);
    int rc = res == NULL ? FLOW_EIO : PQntuples(res) == 0 ? FLOW_ENOTFOUND : 0;
    if (rc == 0) {
        remote_from_row(res, 0, out);
        if (what & FLOWD_READ_SHARED)
            rc = read_shared(c, out, col(res, 0, 23));
        if (what & FLOWD_READ_REDRIVE) {
            out->params = col_dup(res, 0, 24);
            out->callback = col_dup(res, 0, 25);
            out->base_shared = col_dup(res, 0, 26);
            /* a store with patches keeps the step a redrive starts from the store of (store_at) */
            out->base_at_step = out->base_shared == NULL && !PQgetisnull(res, 0, 27);
            out->base_step = col_u64(res, 0, 27);
            out->base_node = col_dup(res, 0, 7);
            if (out->base_shared == NULL && !out->base_at_step)
                out->base_node = (free(out->base_node), NULL);
        }
        if (rc == 0 && (what & FLOWD_READ_HISTORY))
            rc = read_history(c, out->id, out);
        if (rc == 0 && (what & FLOWD_READ_DOCUMENT))
            rc = read_document(c, out->id, out);
        if (rc < 0)
            flowd_remote_job_clear(out);
    }
    PQclear(res);
    pool_put(s, c);
    return rc;
}

static int pg_read_deliveries(flowd_store_t *store, const char *id, const char *tenant,
                              char **callback, flowd_store_delivery_cb each, void *data) {
    pg_store_t *s = (pg_store_t *)store;
    *callback = NULL;
    PGconn *c = pool_get(s);
    if (c == NULL)
        return FLOW_EIO;
    const char *p[] = {id, tenant};
    PGresult *job = run(c, "SELECT callback FROM jobs WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)",
                        2, p, PGRES_TUPLES_OK);
    PGresult *res = NULL;
    int rc = job == NULL ? FLOW_EIO : PQntuples(job) == 0 ? FLOW_ENOTFOUND : 0;
    if (rc == 0 && !PQgetisnull(job, 0, 0) && (*callback = strdup(PQgetvalue(job, 0, 0))) == NULL)
        rc = FLOW_ENOMEM;
    if (rc == 0 &&
        (res = run(c, "SELECT " DELIVERY_COLUMNS " FROM deliveries WHERE job_id = $1"
                      " ORDER BY created_us DESC, id DESC", 1, p, PGRES_TUPLES_OK)) == NULL)
        rc = FLOW_EIO;
    for (int r = 0; rc == 0 && r < PQntuples(res); r++) {
        flowd_stored_delivery_t d = delivery_of_row(res, r);
        rc = each(data, &d);
    }
    if (rc < 0) {
        free(*callback);
        *callback = NULL;
    }
    PQclear(job);
    PQclear(res);
    pool_put(s, c);
    return rc;
}

static int pg_read_jobs(flowd_store_t *store, int status, const char *flow, const char *tenant,
                        uint64_t cursor, size_t limit, flowd_remote_job_t *out, size_t *n,
                        uint64_t *next) {
    pg_store_t *s = (pg_store_t *)store;
    *n = 0;
    *next = 0;
    PGconn *c = pool_get(s);
    if (c == NULL)
        return FLOW_EIO;
    char cur[24], lim[24];
    u64(cur, sizeof cur, cursor);
    u64(lim, sizeof lim, limit + 1); /* one more: is there a next page? */
    const char *st = status >= 0 ? flow_status_name((flow_status_t)status) : NULL;
    const char *p[] = {st, flow, cur, lim, tenant};
    PGresult *res = run(c,
                        "SELECT " JOB_COLUMNS " FROM jobs WHERE ($1::text IS NULL OR status = $1)"
                        " AND ($2::text IS NULL OR flow = $2) AND ($3::bigint = 0 OR seq < $3::bigint)"
                        " AND ($5::text IS NULL OR tenant = $5) ORDER BY seq DESC LIMIT $4::bigint",
                        5, p, PGRES_TUPLES_OK);
    int rc = res ? 0 : FLOW_EIO;
    for (int i = 0; res != NULL && i < PQntuples(res); i++) {
        if ((size_t)i == limit) {
            *next = out[i - 1].seq;
            break;
        }
        remote_from_row(res, i, &out[i]);
        (*n)++;
    }
    PQclear(res);
    pool_put(s, c);
    return rc;
}

/* One GROUP BY over the jobs of flow and tenant: it reads every one of them (through
 * jobs_tenant_seq with a tenant), so its cost grows with the jobs the database keeps. */
static int pg_count_jobs(flowd_store_t *store, const char *flow, const char *tenant,
                         uint64_t by_status[6]) {
    pg_store_t *s = (pg_store_t *)store;
    for (int i = 0; i < 6; i++)
        by_status[i] = 0;
    PGconn *c = pool_get(s);
    if (c == NULL)
        return FLOW_EIO;
    const char *p[] = {flow, tenant};
    PGresult *res = run(c,
                        "SELECT status, count(*) FROM jobs WHERE ($1::text IS NULL OR flow = $1)"
                        " AND ($2::text IS NULL OR tenant = $2) GROUP BY status",
                        2, p, PGRES_TUPLES_OK);
    int rc = res ? 0 : FLOW_EIO;
    for (int i = 0; res != NULL && i < PQntuples(res); i++) {
        flow_status_t st;
        if (flow_status_parse(PQgetvalue(res, i, 0), &st) == 0)
            by_status[st] = col_u64(res, i, 1);
    }
    PQclear(res);
    pool_put(s, c);
    return rc;
}

static int pg_read_events(flowd_store_t *store, const char *id, uint64_t after, size_t max,
                          flowd_store_event_cb each, void *data) {
    pg_store_t *s = (pg_store_t *)store;
    PGconn *c = pool_get(s);
    if (c == NULL)
        return FLOW_EIO;
    char aft[24], lim[24];
    u64(aft, sizeof aft, after);
    u64(lim, sizeof lim, max);
    const char *p[] = {id, aft, lim};
    PGresult *res = run(c,
                        "SELECT e.id, e.type, e.final, e.seq, COALESCE(e.data, s.data) FROM events e"
                        " LEFT JOIN steps s ON e.type = 1 AND s.job_id = e.job_id AND s.seq = e.seq"
                        " WHERE e.job_id = $1 AND e.id > $2::bigint ORDER BY e.id LIMIT $3::bigint",
                        3, p, PGRES_TUPLES_OK);
    int rc = res ? 0 : FLOW_EIO;
    for (int i = 0; res != NULL && i < PQntuples(res) && rc == 0; i++) {
        if (PQgetisnull(res, i, 4))
            continue;
        flowd_stored_event_t ev = {.id = col_u64(res, i, 0),
                                   .type = (int)col_u64(res, i, 1),
                                   .final = strcmp(PQgetvalue(res, i, 2), "t") == 0,
                                   .seq = col_u64(res, i, 3),
                                   .data = PQgetvalue(res, i, 4),
                                   .len = (size_t)PQgetlength(res, i, 4)};
        rc = each(data, &ev);
    }
    PQclear(res);
    pool_put(s, c);
    return rc;
}

/* ---- watches and sends (the listener) ---- */

static int pg_watch(flowd_store_t *store, const char *id, uint64_t after, uint64_t timeout_ms,
                    flowd_store_wake_cb wake, void *data) {
    pg_store_t *s = (pg_store_t *)store;
    watch_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return FLOW_ENOMEM;
    snprintf(w->id, sizeof w->id, "%s", id);
    w->after = after;
    w->deadline_ms = flow_mono_ms() + timeout_ms;
    w->wake = wake;
    w->data = data;
    pthread_mutex_lock(&s->rlock);
    if (s->stopped) {
        pthread_mutex_unlock(&s->rlock);
        free(w);
        return FLOW_ESTATE;
    }
    w->next = s->watches;
    s->watches = w;
    s->new_watch = 1;
    pthread_mutex_unlock(&s->rlock);
    wake_listener(s); /* it looks at once: the event may be there already */
    return 0;
}

static void pg_unwatch(flowd_store_t *store, void *data) {
    pg_store_t *s = (pg_store_t *)store;
    pthread_mutex_lock(&s->rlock);
    for (watch_t **p = &s->watches; *p != NULL; p = &(*p)->next) {
        if ((*p)->data == data) {
            watch_t *w = *p;
            *p = w->next;
            free(w);
            break;
        }
    }
    pthread_mutex_unlock(&s->rlock);
}

static int pg_send(flowd_store_t *store, const char *id, int cancel, const char *value, flowd_store_sent_cb done,
                   void *data) {
    pg_store_t *s = (pg_store_t *)store;
    send_t *m = calloc(1, sizeof *m);
    if (m == NULL || (value != NULL && (m->value = strdup(value)) == NULL)) {
        free(m);
        return FLOW_ENOMEM;
    }
    snprintf(m->id, sizeof m->id, "%s", id);
    m->cancel = cancel;
    m->done = done;
    m->data = data;
    /* long enough for a takeover: the owner may have died, and its lease must run out first */
    m->deadline_ms = flow_mono_ms() + 2 * s->o.lease_ms + s->o.claim_ms + 5000;
    pthread_mutex_lock(&s->rlock);
    if (s->stopped) {
        pthread_mutex_unlock(&s->rlock);
        free(m->value);
        free(m);
        return FLOW_ESTATE;
    }
    m->next = s->new_sends;
    s->new_sends = m;
    pthread_mutex_unlock(&s->rlock);
    wake_listener(s);
    return 0;
}

static void pg_remote_stop(flowd_store_t *store) {
    pg_store_t *s = (pg_store_t *)store;
    pthread_mutex_lock(&s->rlock);
    s->stopped = 1;
    while (s->watches != NULL) {
        watch_t *w = s->watches;
        s->watches = w->next;
        w->wake(w->data, FLOWD_WAKE_STOP);
        free(w);
    }
    pthread_mutex_unlock(&s->rlock);
    wake_listener(s); /* it answers the sends */
}

static void send_done(send_t *m, int rc, unsigned status, char *body, size_t len) {
    m->done(m->data, rc, status, body, len);
    free(m->value);
    free(m);
}

/* Inserts the commands sent from here; those for jobs that do not exist are answered at once. */
static void insert_sends(pg_store_t *s, send_t **pending, send_t *fresh) {
    while (fresh != NULL) {
        send_t *m = fresh;
        fresh = m->next;
        char now[24];
        u64(now, sizeof now, flow_wall_us());
        const char *p[] = {m->id, m->cancel ? "cancel" : "input", m->value, now};
        PGresult *res = run(s->lconn,
                            "WITH i AS (INSERT INTO commands (job_id, kind, value, created_us) SELECT $1, $2, $3,"
                            " $4::bigint WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1) RETURNING id)"
                            " SELECT id, pg_notify('flowd', 'c') FROM i",
                            4, p, PGRES_TUPLES_OK);
        if (res == NULL) {
            send_done(m, FLOW_EIO, 0, NULL, 0);
        } else if (PQntuples(res) == 0) {
            send_done(m, FLOW_ENOTFOUND, 0, NULL, 0);
        } else {
            m->cmd_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
            m->next = *pending;
            *pending = m;
        }
        PQclear(res);
    }
}

/* Collects the answers to our commands, and gives up on those past their time. */
static void collect_answers(pg_store_t *s, send_t **pending, int stopping) {
    if (*pending == NULL)
        return;
    char ids[4096];
    size_t len = 0;
    ids[len++] = '{';
    for (send_t *m = *pending; m != NULL && len < sizeof ids - 24; m = m->next)
        len += (size_t)snprintf(ids + len, sizeof ids - len, "%s%lld", len > 1 ? "," : "", m->cmd_id);
    ids[len++] = '}';
    ids[len] = '\0';
    const char *p[] = {ids};
    PGresult *res = run(s->lconn, "DELETE FROM commands WHERE id = ANY($1::bigint[]) AND state = 'answered'"
                                  " RETURNING id, status, body", 1, p, PGRES_TUPLES_OK);
    uint64_t now = flow_mono_ms();
    for (send_t **pm = pending; *pm != NULL;) {
        send_t *m = *pm;
        int found = -1;
        for (int i = 0; res != NULL && i < PQntuples(res); i++)
            if (strtoll(PQgetvalue(res, i, 0), NULL, 10) == m->cmd_id)
                found = i;
        if (found >= 0) {
            *pm = m->next;
            const char *body = col(res, found, 2);
            size_t blen = body ? strlen(body) : 0;
            send_done(m, 0, (unsigned)col_u64(res, found, 1), body ? strdup(body) : NULL, blen);
            continue;
        }
        if (now >= m->deadline_ms || stopping) {
            /* nobody answered in time: take the command back; if nobody took it, it never acts */
            char id[24];
            snprintf(id, sizeof id, "%lld", m->cmd_id);
            const char *pd[] = {id};
            PGresult *d = run(s->lconn, "DELETE FROM commands WHERE id = $1::bigint RETURNING state, status, body", 1,
                              pd, PGRES_TUPLES_OK);
            const char *state = d && PQntuples(d) > 0 ? PQgetvalue(d, 0, 0) : "new";
            *pm = m->next;
            if (strcmp(state, "answered") == 0) {
                const char *body = col(d, 0, 2);
                send_done(m, 0, (unsigned)col_u64(d, 0, 1), body ? strdup(body) : NULL, body ? strlen(body) : 0);
            } else {
                send_done(m, stopping ? FLOW_ESTATE : strcmp(state, "new") == 0 ? FLOW_ETIMEDOUT : FLOW_EBUSY, 0,
                          NULL, 0);
            }
            PQclear(d);
            continue;
        }
        pm = &m->next;
    }
    PQclear(res);
}

/* Takes the commands for jobs this instance owns and hands them to the loop. */
static void take_commands(pg_store_t *s) {
    if (s->hooks.command == NULL)
        return;
    const char *p[] = {s->me};
    PGresult *res = run(s->lconn, "UPDATE commands c SET state = 'taken', taken_by = $1 FROM jobs j"
                                  " WHERE c.job_id = j.id AND j.owner = $1 AND c.state = 'new'"
                                  " RETURNING c.id, c.job_id, c.kind, c.value", 1, p, PGRES_TUPLES_OK);
    for (int i = 0; res != NULL && i < PQntuples(res); i++) {
        const char *value = col(res, i, 3);
        json_t *v = value ? json_loads(value, JSON_DECODE_ANY, NULL) : NULL;
        s->hooks.command(s->hooks.data, col_u64(res, i, 0), PQgetvalue(res, i, 1),
                         strcmp(PQgetvalue(res, i, 2), "cancel") == 0, v);
        json_decref(v);
    }
    PQclear(res);
}

/* Wakes the watches whose job has events after theirs (or is gone), or whose time is up. */
static void check_watches(pg_store_t *s, int look) {
    char *ids = NULL;
    size_t len = 0, cap = 0;
    pthread_mutex_lock(&s->rlock);
    look |= s->new_watch; /* its events may have come before it did */
    s->new_watch = 0;
    for (watch_t *w = s->watches; w != NULL && look; w = w->next) {
        if (len + FLOWD_ID_LEN + 3 > cap) {
            cap = cap ? cap * 2 : 4096;
            char *grown = realloc(ids, cap);
            if (grown == NULL)
                break;
            ids = grown;
        }
        ids[len] = len == 0 ? '{' : ',';
        len++;
        memcpy(ids + len, w->id, FLOWD_ID_LEN);
        len += FLOWD_ID_LEN;
    }
    pthread_mutex_unlock(&s->rlock);
    PGresult *res = NULL;
    if (ids != NULL && len > 0) {
        ids[len++] = '}';
        ids[len] = '\0';
        const char *p[] = {ids};
        res = run(s->lconn, "SELECT id, last_event FROM jobs WHERE id = ANY($1::text[])", 1, p, PGRES_TUPLES_OK);
    }
    free(ids);
    json_t *last = json_object();
    for (int i = 0; res != NULL && i < PQntuples(res); i++)
        json_object_set_new(last, PQgetvalue(res, i, 0), json_integer((json_int_t)col_u64(res, i, 1)));
    uint64_t now = flow_mono_ms();
    pthread_mutex_lock(&s->rlock);
    for (watch_t **p = &s->watches; *p != NULL;) {
        watch_t *w = *p;
        json_t *seen = json_object_get(last, w->id);
        int why = -1;
        if (res != NULL && (seen == NULL || (uint64_t)json_integer_value(seen) > w->after))
            why = FLOWD_WAKE_EVENTS; /* news, or the job is gone (the reader finds out) */
        else if (now >= w->deadline_ms)
            why = FLOWD_WAKE_TIMEOUT;
        if (why < 0) {
            p = &w->next;
            continue;
        }
        *p = w->next;
        w->wake(w->data, why);
        free(w);
    }
    pthread_mutex_unlock(&s->rlock);
    json_decref(last);
    PQclear(res);
}

static void *listener_main(void *arg) {
    pg_store_t *s = arg;
    send_t *pending = NULL;
    uint64_t next_poll = 0;
    PQclear(PQexec(s->lconn, "LISTEN flowd"));
    for (;;) {
        int news_c = 0, news_e = 0, news_s = 0; /* a: answers are looked for every round while any wait */
        uint64_t now = flow_mono_ms();
        int timeout = next_poll > now ? (int)(next_poll - now) : 0;
        /* watches and sends have deadlines of their own: look at least every 100 ms while any wait */
        pthread_mutex_lock(&s->rlock);
        if ((s->watches != NULL || pending != NULL) && timeout > 100)
            timeout = 100;
        pthread_mutex_unlock(&s->rlock);
        /* without a connection PQsocket is -1, which poll ignores */
        struct pollfd fds[2] = {{.fd = PQsocket(s->lconn), .events = POLLIN}, {.fd = s->efd, .events = POLLIN}};
        int got = poll(fds, 2, timeout);
        if (got > 0 && (fds[1].revents & POLLIN)) {
            uint64_t v;
            if (read(s->efd, &v, sizeof v) < 0 && errno != EAGAIN)
                flowd_log(FLOW_LOG_WARN, "store: listener: %s", strerror(errno));
        }
        if (PQconsumeInput(s->lconn) == 0 || PQstatus(s->lconn) != CONNECTION_OK) {
            PQreset(s->lconn);
            if (PQstatus(s->lconn) == CONNECTION_OK) {
                session_settings(s->lconn, s->o.lease_ms);
                PQclear(PQexec(s->lconn, "LISTEN flowd"));
            }
            news_c = news_e = 1;
        }
        PGnotify *n;
        while ((n = PQnotifies(s->lconn)) != NULL) {
            news_c |= n->extra[0] == 'c';
            news_e |= n->extra[0] == 'e';
            news_s |= n->extra[0] == 's';
            PQfreemem(n);
        }
        now = flow_mono_ms();
        if (now >= next_poll) { /* what a notification may have missed */
            news_c = news_e = 1;
            next_poll = now + s->o.poll_ms;
        }
        pthread_mutex_lock(&s->rlock);
        send_t *fresh = s->new_sends;
        s->new_sends = NULL;
        int stopping = s->stopped, closing = s->lclosing;
        pthread_mutex_unlock(&s->rlock);
        if (stopping) {
            while (fresh != NULL) {
                send_t *m = fresh;
                fresh = m->next;
                send_done(m, FLOW_ESTATE, 0, NULL, 0);
            }
        }
        insert_sends(s, &pending, fresh);
        if (atomic_load(&s->attached) && news_c)
            take_commands(s);
        if (atomic_load(&s->attached) && news_s && s->hooks.poke != NULL)
            s->hooks.poke(s->hooks.data);
        if (pending != NULL) /* deadlines too, so every round while any waits */
            collect_answers(s, &pending, stopping);
        check_watches(s, news_e);
        if (closing && pending == NULL)
            break;
    }
    return NULL;
}

/* ---- attaching, opening and closing ---- */

static int pg_attach(flowd_store_t *store, const flowd_store_hooks_t *hooks) {
    pg_store_t *s = (pg_store_t *)store;
    s->hooks = *hooks;
    atomic_store(&s->attached, 1);
    flowd_writer_kick(s->writer); /* it starts renewing and claiming */
    wake_listener(s);
    return 0;
}

static void pg_close(flowd_store_t *store) {
    pg_store_t *s = (pg_store_t *)store;
    if (s->lstarted) {
        pthread_mutex_lock(&s->rlock);
        s->stopped = 1;
        s->lclosing = 1;
        pthread_mutex_unlock(&s->rlock);
        pg_remote_stop(store);
        pthread_join(s->lthread, NULL);
    }
    flowd_writer_free(s->writer); /* writes what is queued, then releases our jobs */
    for (size_t i = 0; i < s->pfree; i++)
        PQfinish(s->pool[i]);
    PQfinish(s->wconn);
    PQfinish(s->lconn);
    if (s->efd >= 0)
        close(s->efd);
    pthread_mutex_destroy(&s->rlock);
    pthread_mutex_destroy(&s->plock);
    pthread_cond_destroy(&s->pcond);
    json_decref(s->owned);
    free(s->asks);
    free(s->pend);
    free(s->uri);
    free(s);
}

/* A read in the writer's order (apply_read): a job that runs here has its last steps in it. */
static int pg_shared_at(flowd_store_t *store, const char *id, uint64_t step, json_t **out,
                        uint64_t *oldest) {
    return flowd_writer_read_shared(writer_of(store), id, step, out, oldest);
}

static const flowd_store_ops_t postgres_ops = {
    .name = "postgresql",
    .immediate = 0,
    .patches = 1,
    .shared_at = pg_shared_at,
    .create = pg_create,
    .checkpoint = pg_checkpoint,
    .finish = pg_finish,
    .remove = pg_remove,
    .load = pg_load,
    .delivery = pg_delivery,
    .put_flow = pg_put_flow,
    .load_flows = pg_load_flows,
    .put_schedule = pg_put_schedule,
    .load_schedules = pg_load_schedules,
    .create_run = pg_create_run,
    .skip_run = pg_skip_run,
    .read_schedules = pg_read_schedules,
    .release = pg_release,
    .backlog = pg_backlog,
    .close = pg_close,
};

static const flowd_store_cluster_ops_t postgres_cluster_ops = {
    .attach = pg_attach,
    .event = pg_event,
    .answer = pg_answer,
    .acquire = pg_acquire,
    .read_job = pg_read_job,
    .read_jobs = pg_read_jobs,
    .count_jobs = pg_count_jobs,
    .read_deliveries = pg_read_deliveries,
    .read_events = pg_read_events,
    .watch = pg_watch,
    .unwatch = pg_unwatch,
    .send = pg_send,
    .remote_stop = pg_remote_stop,
};

int flowd_store_postgres_new(const char *uri, const flowd_store_opts_t *opts, flowd_store_t **out, char *err,
                             size_t errlen) {
    pg_store_t *s = calloc(1, sizeof *s);
    int rc = FLOW_EIO;
    if (s == NULL || (s->uri = strdup(uri)) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return FLOW_ENOMEM;
    }
    s->base.ops = &postgres_ops;
    s->base.cluster = &postgres_cluster_ops;
    s->o = *opts;
    s->efd = -1;
    s->pmax = opts->pool ? opts->pool : 2;
    if (s->pmax > POOL_MAX)
        s->pmax = POOL_MAX;
    pthread_mutex_init(&s->rlock, NULL);
    pthread_mutex_init(&s->plock, NULL);
    pthread_cond_init(&s->pcond, NULL);
    s->owned = json_object();
    /* the instance's id: random, so that a restarted flowd is a new owner (its old jobs are taken
     * over, perhaps by itself, once their leases run out) */
    char id[FLOWD_ID_LEN + 1];
    if (flowd_new_id(id) != 0) {
        snprintf(err, errlen, "no randomness for the instance id");
        goto fail;
    }
    snprintf(s->me, sizeof s->me, "%.16s", id + FLOWD_ID_LEN - 16); /* the random part: ids begin with the time */
    if (s->owned == NULL || (s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        snprintf(err, errlen, "out of memory");
        rc = FLOW_ENOMEM;
        goto fail;
    }
    if ((s->wconn = connect_db(uri, opts->lease_ms, err, errlen)) == NULL ||
        (s->lconn = connect_db(uri, opts->lease_ms, err, errlen)) == NULL)
        goto fail;
    if ((rc = migrate(s->wconn, err, errlen)) < 0)
        goto fail;
    if (prepare_writer(s->wconn) < 0) {
        snprintf(err, errlen, "cannot prepare the statements: %s", PQerrorMessage(s->wconn));
        rc = FLOW_EIO;
        goto fail;
    }
    /* its lease, before the first job it writes: that job's lease is this one */
    if (renew_lease(s) < 0) {
        snprintf(err, errlen, "cannot write the instance's lease: %s", PQerrorMessage(s->wconn));
        rc = FLOW_EIO;
        goto fail;
    }
    uint64_t now = flow_mono_ms();
    s->next_renew = now + (s->o.lease_ms / 3 ? s->o.lease_ms / 3 : 1);
    s->next_claim = now;
    s->next_sweep = now + 1000;
    if (flowd_writer_new(&postgres_backend, s, &s->writer) < 0) {
        snprintf(err, errlen, "cannot start the store thread");
        rc = FLOW_ENOMEM;
        goto fail;
    }
    if (pthread_create(&s->lthread, NULL, listener_main, s) != 0) {
        snprintf(err, errlen, "cannot start the listener thread");
        rc = FLOW_ENOMEM;
        goto fail;
    }
    s->lstarted = 1;
    flowd_log(FLOW_LOG_INFO, "store postgresql: instance %s, lease %" PRIu64 " ms, claims every %" PRIu64 " ms",
              s->me, s->o.lease_ms, s->o.claim_ms);
    *out = &s->base;
    return 0;
fail:
    pg_close(&s->base);
    return rc;
}
