/* schedules.c: the table of schedules, its timer on the loop, and their runs (schedules.h). */
#include "schedules.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "bridge.h"
#include "core.h"
#include "grow.h"
#include "log.h"

#define MAX_SLEEP_MS 60000 /* the timer looks again at least this often: the wall clock may jump */
#define NAME_MAX_LEN 64
/* A run made late (flowd was down) is for the latest time it missed, found by walking the times
 * from the first it missed: at most this many (past them, the run is for the last one walked). */
#define MAX_MISSED 1000

typedef struct sched {
    char name[NAME_MAX_LEN + 1];
    const char *tenant;              /* interned */
    char cron_text[FLOWD_CRON_MAX + 1];
    char zone[FLOWD_TZ_MAX + 1];
    char flow[NAME_MAX_LEN + 1];
    char *shared;                    /* compact JSON */
    char *params;                    /* compact JSON, or NULL */
    flowd_cron_t cron;
    flowd_overlap_t overlap;
    int paused;
    int64_t next;                    /* its next run (0: none: paused) */
    char last_job[FLOWD_ID_LEN + 1]; /* "" before its first run */
    int64_t last_run;                /* the time that run was for */
    uint64_t runs, skipped, failed;  /* since this flowd started */
    char last_error[256];            /* why its last run made no job ("" when it made one) */
    char *def_text;                  /* its definition as stored (definition_text), or NULL */
    int remote_active;               /* a shared store said its last job runs (elsewhere) */
    int seen;                        /* refresh: the store has it */
} sched_t;

/* A schedule's row as a refresh read it (its strings malloc'd). */
typedef struct row {
    char *name, *tenant, *definition, *last_job;
    int64_t next, last_run;
    int last_job_active;
} row_t;

/* A run handed to the store; back on the loop (failed) when the store did not keep its job. */
typedef struct run {
    struct run *next;
    flowd_schedules_t *s;
    flowd_job_t *job;                /* a reference */
    json_t *shared, *params;
    char name[NAME_MAX_LEN + 1];
    int err;
} run_t;

struct flowd_schedules {
    flowd_server_t *srv;
    pthread_mutex_t lock;            /* the table */
    pthread_mutex_t change;          /* HTTP threads: one change at a time, stored first */
    sched_t **items;                 /* by name */
    size_t n, cap;
    uv_timer_t timer;                /* loop only */
    uv_async_t async;                /* a change (HTTP threads) or a failed run (the store) */
    pthread_mutex_t rlock;
    run_t *failed;                   /* under rlock: runs the store did not keep */
    int closed;                      /* under rlock: shutdown: the store is not read any more, and
                                      * runs it gives back are dropped */
    int reading;                     /* under rlock: a refresh reads the store */
    pthread_cond_t rcond;            /* reading went to 0 */
    int open_handles;                /* handles not closed yet, and a refresh under way: the last
                                      * to end frees the table */
    /* a shared store: what other instances changed is read again every --poll-interval */
    uv_timer_t refresh;
    uv_work_t work;
    int refreshing;                  /* loop only */
    uint64_t gen;                    /* under lock: changes made here; a refresh that read before
                                      * one is not applied */
    int changing;                    /* under lock: a change is between its store's write and its
                                      * table's, and a refresh would read it as another
                                      * instance's (a PUT that made a schedule said 200) */
    uint64_t refresh_gen;            /* loop: gen when the refresh began */
    struct row *rows;                /* the refresh's rows (its work, then the loop) */
    size_t nrows, caprows;
    int read_rc;
    atomic_uint_fast64_t started, skipped, failures;
};

static const char *const overlap_names[] = {"skip", "allow", "cancel_previous"};

const char *flowd_overlap_name(flowd_overlap_t o) {
    return (unsigned)o < 3 ? overlap_names[o] : "skip";
}

int flowd_overlap_parse(const char *name, flowd_overlap_t *out) {
    for (int i = 0; i < 3; i++)
        if (strcmp(name, overlap_names[i]) == 0) {
            *out = (flowd_overlap_t)i;
            return 0;
        }
    return FLOW_EINVAL;
}

static int64_t now_s(void) {
    return (int64_t)(flow_wall_us() / 1000000u);
}

static void rfc3339(int64_t t, char buf[32]) {
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void sched_free(sched_t *it) {
    if (it == NULL)
        return;
    free(it->def_text);
    free(it->shared);
    free(it->params);
    free(it);
}

static char *definition_text(const sched_t *it);

/* A schedule from what a PUT (or the store) says; next is not set. FLOW_EINVAL with why. */
static int sched_new(const flowd_schedule_spec_t *spec, sched_t **out, char *err, size_t errlen) {
    sched_t *it = calloc(1, sizeof *it);
    if (it == NULL)
        return FLOW_ENOMEM;
    const char *zone = spec->timezone ? spec->timezone : "UTC";
    int rc = flowd_cron_parse(spec->cron, &it->cron, err, errlen);
    if (rc == 0 && flowd_tz_check(zone) < 0) {
        snprintf(err, errlen,
                 "timezone '%.64s' is not an IANA time zone this server knows (e.g. UTC, "
                 "Europe/Paris, America/New_York)",
                 zone);
        rc = FLOW_EINVAL;
    }
    if (rc < 0) {
        free(it);
        return rc;
    }
    snprintf(it->name, sizeof it->name, "%s", spec->name);
    snprintf(it->cron_text, sizeof it->cron_text, "%s", spec->cron);
    snprintf(it->zone, sizeof it->zone, "%s", zone);
    snprintf(it->flow, sizeof it->flow, "%s", spec->flow);
    it->tenant = spec->tenant;
    it->overlap = spec->overlap;
    it->paused = spec->paused;
    it->shared = strdup(spec->shared ? spec->shared : "{}");
    it->params = spec->params ? strdup(spec->params) : NULL;
    if (it->shared == NULL || (spec->params && it->params == NULL) ||
        (it->def_text = definition_text(it)) == NULL) {
        sched_free(it);
        return FLOW_ENOMEM;
    }
    *out = it;
    return 0;
}

/* The definition the store keeps (compact JSON, malloc'd), or NULL when out of memory. */
static char *definition_text(const sched_t *it) {
    json_t *o = json_object();
    json_object_set_new(o, "cron", json_string(it->cron_text));
    json_object_set_new(o, "timezone", json_string(it->zone));
    json_object_set_new(o, "flow", json_string(it->flow));
    json_object_set_new(o, "shared", json_loads(it->shared, 0, NULL));
    if (it->params != NULL)
        json_object_set_new(o, "params", json_loads(it->params, 0, NULL));
    json_object_set_new(o, "overlap", json_string(flowd_overlap_name(it->overlap)));
    json_object_set_new(o, "paused", json_boolean(it->paused));
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

/* The Schedule of api/openapi.yaml, with up to nnext next times (with the lock held). */
static json_t *render(const sched_t *it, int nnext) {
    char buf[32];
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(it->name));
    json_object_set_new(o, "cron", json_string(it->cron_text));
    json_object_set_new(o, "timezone", json_string(it->zone));
    json_object_set_new(o, "flow", json_string(it->flow));
    json_object_set_new(o, "shared", json_loads(it->shared, 0, NULL));
    json_object_set_new(o, "params", it->params ? json_loads(it->params, 0, NULL) : json_null());
    json_object_set_new(o, "overlap", json_string(flowd_overlap_name(it->overlap)));
    json_object_set_new(o, "paused", json_boolean(it->paused));
    json_object_set_new(o, "tenant", json_string(it->tenant));
    json_t *next = json_array();
    int64_t t = it->next;
    for (int i = 0; i < nnext && t != 0 && !it->paused; i++) {
        rfc3339(t, buf);
        json_array_append_new(next, json_string(buf));
        if (i + 1 < nnext && flowd_cron_next(&it->cron, it->zone, t, &t) < 0)
            break; /* (the list shows one: it costs no zone lookup) */
    }
    json_object_set_new(o, "next_runs", next);
    if (it->last_job[0] != '\0') {
        rfc3339(it->last_run, buf);
        json_object_set_new(o, "last_run",
                            json_pack("{s:s, s:s}", "job", it->last_job, "scheduled_for", buf));
    } else {
        json_object_set_new(o, "last_run", json_null());
    }
    json_object_set_new(o, "runs", json_integer((json_int_t)it->runs));
    json_object_set_new(o, "skipped", json_integer((json_int_t)it->skipped));
    json_object_set_new(o, "failed", json_integer((json_int_t)it->failed));
    json_object_set_new(o, "last_error",
                        it->last_error[0] ? json_string(it->last_error) : json_null());
    return o;
}

static void render_into(const sched_t *it, int nnext, flow_buf_t *b) {
    json_t *o = render(it, nnext);
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (text == NULL) {
        b->err = FLOW_ENOMEM;
        return;
    }
    flow_buf_adds(b, text);
    flow_buf_addc(b, '\n');
    free(text);
}

/* ---- the table (with the lock held) ---- */

/* The index of name, or where it would go (*found 0). */
static size_t find(const flowd_schedules_t *s, const char *name, int *found) {
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->items[mid]->name, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static sched_t *lookup(const flowd_schedules_t *s, const char *name) {
    int found;
    size_t i = find(s, name, &found);
    return found ? s->items[i] : NULL;
}

/* Puts it in the table in the place of the schedule of its name (which it returns, out of the
 * table), or adds it. */
static int insert(flowd_schedules_t *s, sched_t *it, sched_t **old) {
    int found;
    size_t i = find(s, it->name, &found);
    *old = NULL;
    if (found) {
        *old = s->items[i];
        s->items[i] = it;
        return 0;
    }
    sched_t **items = flowd_grow(s->items, s->n, &s->cap, sizeof *items, 16);
    if (items == NULL)
        return FLOW_ENOMEM;
    s->items = items;
    memmove(s->items + i + 1, s->items + i, (s->n - i) * sizeof *s->items);
    s->items[i] = it;
    s->n++;
    return 0;
}

/* ---- runs (loop) ---- */

/* What a due schedule's run needs, copied out of the table. */
typedef struct due {
    char name[NAME_MAX_LEN + 1];
    char flow[NAME_MAX_LEN + 1];
    const char *tenant;
    char *shared, *params;
    flowd_overlap_t overlap;
    char last_job[FLOWD_ID_LEN + 1];
    int remote_active; /* a shared store says last_job runs elsewhere */
    int64_t due, next; /* the schedule's row moves from due to next */
    int64_t at;        /* the time the run is for: due, or the latest time it missed */
} due_t;

static void note(flowd_schedules_t *s, const char *name, int skipped, const char *why) {
    pthread_mutex_lock(&s->lock);
    sched_t *it = lookup(s, name);
    if (it != NULL) {
        if (skipped)
            it->skipped++;
        else
            it->failed++;
        snprintf(it->last_error, sizeof it->last_error, "%s", why);
    }
    pthread_mutex_unlock(&s->lock);
}

/* A run that made no job: counted, and the store's row moves on all the same. */
static void no_job(flowd_schedules_t *s, const due_t *d, int skipped, const char *why) {
    flowd_store_t *store = s->srv->store;
    flowd_schedule_run_t run = {.name = d->name, .due = d->due, .next = d->next, .at = d->at};
    char at[32];
    rfc3339(d->at, at);
    note(s, d->name, skipped, why);
    atomic_fetch_add(skipped ? &s->skipped : &s->failures, 1);
    flowd_log(skipped ? FLOW_LOG_INFO : FLOW_LOG_WARN, "schedule %s: the run of %s %s: %s",
              d->name, at, skipped ? "is skipped" : "made no job", why);
    if (store->ops->skip_run != NULL)
        store->ops->skip_run(store, &run);
}

/* The store's answer (any thread): a stored job starts; one it did not keep goes back to the loop. */
static void run_done(void *data, int err) {
    run_t *r = data;
    flowd_schedules_t *s = r->s;
    if (err == 0) {
        flowd_bridge_start(s->srv->bridge, r->job, r->shared, r->params);
        flowd_job_unref(r->job);
        free(r);
        return;
    }
    r->err = err;
    pthread_mutex_lock(&s->rlock);
    if (s->closed) { /* shutting down: the record stays queued, as a job that was never made */
        pthread_mutex_unlock(&s->rlock);
        json_decref(r->shared);
        json_decref(r->params);
        flowd_job_unref(r->job);
        free(r);
        return;
    }
    r->next = s->failed;
    s->failed = r;
    uv_async_send(&s->async);
    pthread_mutex_unlock(&s->rlock);
}

/* Loop: the runs the store did not keep. Another instance made the run (or the schedule changed
 * meanwhile): the record goes without a trace. Otherwise it ends failed, as a POST's would. */
static void failed_runs(flowd_schedules_t *s) {
    pthread_mutex_lock(&s->rlock);
    run_t *r = s->failed;
    s->failed = NULL;
    pthread_mutex_unlock(&s->rlock);
    while (r != NULL) {
        run_t *next = r->next;
        flowd_job_t *job = r->job;
        pthread_mutex_lock(&s->lock);
        sched_t *it = lookup(s, r->name);
        if (it != NULL && strcmp(it->last_job, job->id) == 0) {
            it->last_job[0] = '\0'; /* another instance's job, which this one does not know */
            it->runs--;
        }
        pthread_mutex_unlock(&s->lock);
        if (r->err == FLOW_EEXIST) {
            atomic_fetch_sub(&s->started, 1);
            flowd_log(FLOW_LOG_INFO,
                      "schedule %s: its run was made by another instance (or the schedule "
                      "changed meanwhile); job %s is dropped",
                      r->name, job->id);
            json_decref(r->shared);
            json_decref(r->params);
            flowd_jobs_forget(s->srv->jobs, job);
        } else {
            note(s, r->name, 0, "the job could not be stored");
            atomic_fetch_sub(&s->started, 1);
            atomic_fetch_add(&s->failures, 1);
            job->run.store_failed = 1;
            flowd_bridge_start(s->srv->bridge, job, r->shared, r->params);
        }
        flowd_job_unref(job);
        free(r);
        r = next;
    }
}

/* Makes d's run: the overlap policy, then the job as POST /v1/jobs makes one. */
static void fire(flowd_schedules_t *s, const due_t *d) {
    flowd_server_t *srv = s->srv;
    char why[200];
    if (d->last_job[0] != '\0' && d->overlap != FLOWD_OVERLAP_ALLOW) {
        flowd_job_t *prev = flowd_jobs_get(srv->jobs, d->last_job, FLOWD_ID_LEN);
        /* not here: with a shared store it may run on another instance, as its last read said */
        int active = prev ? !flow_status_final(flowd_job_status(prev)) : d->remote_active;
        if (active) {
            if (d->overlap == FLOWD_OVERLAP_SKIP) {
                snprintf(why, sizeof why, "the last run's job %s has not ended (overlap skip)",
                         d->last_job);
                flowd_job_unref(prev);
                no_job(s, d, 1, why);
                return;
            }
            if (prev != NULL) {
                flowd_log(FLOW_LOG_INFO,
                          "schedule %s: job %s is canceled (overlap cancel_previous)", d->name,
                          d->last_job);
                flowd_bridge_cancel(srv->bridge, prev);
            } else {
                flowd_log(FLOW_LOG_WARN,
                          "schedule %s: job %s runs on another instance: it is not canceled from "
                          "here (overlap cancel_previous); the run goes ahead",
                          d->name, d->last_job);
            }
        }
        flowd_job_unref(prev);
    }
    flow_def_t *def = flow_registry_get_flow(srv->reg, d->flow);
    if (def == NULL) {
        snprintf(why, sizeof why, "no flow named '%s'", d->flow);
        no_job(s, d, 0, why);
        return;
    }
    flowd_job_t *job = NULL;
    int repeat = 0;
    int rc = flowd_jobs_create(srv->jobs, def, d->tenant, NULL, 0, &job, &repeat);
    flow_def_unref(def);
    if (rc < 0) {
        if (rc == FLOW_EBUSY)
            snprintf(why, sizeof why, "%u jobs are queued, running or waiting (--max-jobs)",
                     srv->cfg.max_jobs);
        else
            snprintf(why, sizeof why, "the job could not be made: %s", flow_strerror(rc));
        no_job(s, d, 0, why);
        return;
    }
    run_t *r = calloc(1, sizeof *r);
    json_t *shared = json_loads(d->shared, 0, NULL);
    json_t *params = d->params ? json_loads(d->params, 0, NULL) : NULL;
    if (r == NULL || shared == NULL || (d->params != NULL && params == NULL)) {
        free(r);
        json_decref(shared);
        json_decref(params);
        flowd_jobs_forget(srv->jobs, job);
        flowd_job_unref(job);
        no_job(s, d, 0, "out of memory");
        return;
    }
    r->s = s;
    r->job = job;
    r->shared = shared;
    r->params = params;
    snprintf(r->name, sizeof r->name, "%s", d->name);
    pthread_mutex_lock(&s->lock);
    sched_t *it = lookup(s, d->name);
    if (it != NULL) {
        memcpy(it->last_job, job->id, sizeof it->last_job);
        it->remote_active = 0; /* its job is here */
        it->last_run = d->at;
        it->runs++;
        it->last_error[0] = '\0';
    }
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_add(&s->started, 1);
    char at[32];
    rfc3339(d->at, at);
    flowd_log(FLOW_LOG_INFO, "schedule %s: the run of %s is job %s%s", d->name, at, job->id,
              d->at + 1 < now_s() ? " (late: it was due while flowd was down or busy)" : "");
    const flowd_store_ops_t *ops = srv->store->ops;
    flowd_schedule_run_t run = {.name = d->name, .due = d->due, .next = d->next, .at = d->at};
    rc = ops->create_run != NULL
             ? ops->create_run(srv->store, job, shared, params, &run, run_done, r)
             : ops->create(srv->store, job, shared, params, run_done, r);
    if (rc < 0)
        run_done(r, FLOW_EIO);
}

static void arm(flowd_schedules_t *s);

/* At close: the runs that came back after the loop stopped looking. */
static void failed_runs_drop(flowd_schedules_t *s) {
    run_t *r = s->failed;
    s->failed = NULL;
    while (r != NULL) {
        run_t *next = r->next;
        json_decref(r->shared);
        json_decref(r->params);
        flowd_job_unref(r->job);
        free(r);
        r = next;
    }
}

/* Loop: every schedule whose time has come runs once (a schedule that missed several times, while
 * flowd was down, runs once for all of them), and moves on to its first time after now. */
static void fire_due(flowd_schedules_t *s) {
    if (atomic_load(&s->srv->stopping))
        return;
    int64_t now = now_s();
    for (;;) {
        due_t d = {0};
        int found = 0, lost = 0;
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->n; i++) {
            sched_t *it = s->items[i];
            if (it->paused || it->next == 0 || it->next > now)
                continue;
            memcpy(d.name, it->name, sizeof d.name);
            memcpy(d.flow, it->flow, sizeof d.flow);
            d.tenant = it->tenant;
            d.shared = strdup(it->shared);
            d.params = it->params ? strdup(it->params) : NULL;
            lost = d.shared == NULL || (it->params != NULL && d.params == NULL);
            d.overlap = it->overlap;
            memcpy(d.last_job, it->last_job, sizeof d.last_job);
            d.remote_active = it->remote_active;
            d.due = d.at = it->next;
            /* a run made late stands for the latest time it missed (of the next MAX_MISSED) */
            int64_t t;
            for (int k = 0; k < MAX_MISSED && d.at < now &&
                            flowd_cron_next(&it->cron, it->zone, d.at, &t) == 0 && t <= now;
                 k++)
                d.at = t;
            if (flowd_cron_next(&it->cron, it->zone, now, &d.next) < 0) {
                d.next = 0;
                snprintf(it->last_error, sizeof it->last_error,
                         "its cron names no time in the next %d years: it runs no more",
                         FLOWD_CRON_YEARS);
            }
            it->next = d.next;
            found = 1;
            break;
        }
        pthread_mutex_unlock(&s->lock);
        if (!found)
            break;
        if (lost)
            no_job(s, &d, 0, "out of memory");
        else
            fire(s, &d);
        free(d.shared);
        free(d.params);
    }
}

static void on_timer(uv_timer_t *t) {
    flowd_schedules_t *s = t->data;
    fire_due(s);
    arm(s);
}

/* Loop: the timer for the earliest next time, at most MAX_SLEEP_MS ahead. */
static void arm(flowd_schedules_t *s) {
    int64_t earliest = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n; i++) {
        const sched_t *it = s->items[i];
        if (!it->paused && it->next != 0 && (earliest == 0 || it->next < earliest))
            earliest = it->next;
    }
    pthread_mutex_unlock(&s->lock);
    if (earliest == 0 || atomic_load(&s->srv->stopping)) {
        uv_timer_stop(&s->timer);
        return;
    }
    flow_timer_at_wall(&s->timer, on_timer, (uint64_t)earliest * 1000000u, MAX_SLEEP_MS);
}

static void on_async(uv_async_t *h) {
    flowd_schedules_t *s = h->data;
    failed_runs(s);
    arm(s);
}

/* ---- a shared store: what the other instances changed ---- */

static void rows_free(flowd_schedules_t *s) {
    for (size_t i = 0; i < s->nrows; i++) {
        free(s->rows[i].name);
        free(s->rows[i].tenant);
        free(s->rows[i].definition);
        free(s->rows[i].last_job);
    }
    free(s->rows);
    s->rows = NULL;
    s->nrows = s->caprows = 0;
}

/* The refresh's work thread: a row read, copied. */
static int keep_row(void *data, const flowd_stored_schedule_t *ss) {
    flowd_schedules_t *s = data;
    row_t *rows = flowd_grow(s->rows, s->nrows, &s->caprows, sizeof *rows, 16);
    if (rows == NULL)
        return FLOW_ENOMEM;
    s->rows = rows;
    row_t *r = &s->rows[s->nrows];
    r->name = strdup(ss->name ? ss->name : "");
    r->tenant = strdup(ss->tenant ? ss->tenant : FLOWD_DEFAULT_TENANT);
    r->definition = strdup(ss->definition ? ss->definition : "");
    r->last_job = ss->last_job ? strdup(ss->last_job) : NULL;
    r->next = ss->next;
    r->last_run = ss->last_run;
    r->last_job_active = ss->last_job_active;
    s->nrows++;
    if (r->name == NULL || r->tenant == NULL || r->definition == NULL ||
        (ss->last_job && r->last_job == NULL))
        return FLOW_ENOMEM;
    return 0;
}

/* libuv's pool: reads the store (blocking), unless shutdown has begun. */
static void refresh_work(uv_work_t *w) {
    flowd_schedules_t *s = w->data;
    pthread_mutex_lock(&s->rlock);
    int closed = s->closed;
    s->reading = !closed;
    pthread_mutex_unlock(&s->rlock);
    s->read_rc = FLOW_ESTATE;
    if (!closed)
        s->read_rc = s->srv->store->ops->read_schedules(s->srv->store, keep_row, s);
    pthread_mutex_lock(&s->rlock);
    s->reading = 0;
    pthread_cond_broadcast(&s->rcond);
    pthread_mutex_unlock(&s->rlock);
}

static void on_closed(uv_handle_t *h);
static int from_stored(flowd_schedules_t *s, const flowd_stored_schedule_t *ss, sched_t **out);

/* Loop, with the lock held: the table as the store has it. A schedule changed or added elsewhere
 * is taken as stored (its runs counted here go on); one deleted elsewhere goes; one whose next run
 * the store has later than here was run by another instance, whose last job it takes. */
static void reconcile(flowd_schedules_t *s) {
    for (size_t i = 0; i < s->n; i++)
        s->items[i]->seen = 0;
    for (size_t k = 0; k < s->nrows; k++) {
        const row_t *r = &s->rows[k];
        sched_t *it = lookup(s, r->name);
        if (it != NULL && it->def_text != NULL && strcmp(it->def_text, r->definition) == 0 &&
            strcmp(it->tenant, r->tenant) == 0) {
            it->seen = 1;
            if (!it->paused && it->next != 0 && r->next > it->next)
                it->next = r->next;
            if (r->last_job != NULL && strlen(r->last_job) == FLOWD_ID_LEN &&
                r->last_run >= it->last_run) {
                memcpy(it->last_job, r->last_job, FLOWD_ID_LEN + 1);
                it->last_run = r->last_run;
                it->remote_active = r->last_job_active;
            }
            continue;
        }
        flowd_stored_schedule_t ss = {.name = r->name,
                                      .tenant = r->tenant,
                                      .definition = r->definition,
                                      .next = r->next,
                                      .last_job = r->last_job,
                                      .last_run = r->last_run,
                                      .last_job_active = r->last_job_active};
        sched_t *fresh = NULL, *old = NULL;
        if (from_stored(s, &ss, &fresh) < 0)
            continue; /* logged; what this instance has of it stays */
        if (fresh->next == 0 && !fresh->paused &&
            flowd_cron_next(&fresh->cron, fresh->zone, now_s(), &fresh->next) < 0)
            fresh->next = 0;
        if (it != NULL) {
            fresh->runs = it->runs;
            fresh->skipped = it->skipped;
            fresh->failed = it->failed;
            memcpy(fresh->last_error, it->last_error, sizeof fresh->last_error);
        }
        fresh->seen = 1;
        if (insert(s, fresh, &old) < 0) {
            sched_free(fresh);
            continue;
        }
        flowd_log(FLOW_LOG_INFO, "schedule %s %s on another instance", r->name,
                  old ? "changed" : "added");
        sched_free(old);
    }
    size_t kept = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->items[i]->seen) {
            s->items[kept++] = s->items[i];
        } else {
            flowd_log(FLOW_LOG_INFO, "schedule %s deleted on another instance", s->items[i]->name);
            sched_free(s->items[i]);
        }
    }
    s->n = kept;
}

static void refresh_done(uv_work_t *w, int status) {
    flowd_schedules_t *s = w->data;
    s->refreshing = 0;
    pthread_mutex_lock(&s->rlock);
    int closed = s->closed;
    pthread_mutex_unlock(&s->rlock);
    if (!closed && status == 0 && s->read_rc == 0) {
        pthread_mutex_lock(&s->lock);
        if (s->gen == s->refresh_gen && !s->changing) /* no change here since the read began */
            reconcile(s);
        pthread_mutex_unlock(&s->lock);
        arm(s);
    } else if (!closed && s->read_rc != FLOW_ESTATE) {
        flowd_log(FLOW_LOG_WARN, "schedules: the store could not be read (%s); tried again in %llu ms",
                  flow_strerror(s->read_rc), (unsigned long long)s->srv->cfg.poll_ms);
    }
    rows_free(s);
    on_closed((uv_handle_t *)&s->refresh); /* the work counted as a handle */
}

static void on_refresh(uv_timer_t *t) {
    flowd_schedules_t *s = t->data;
    if (s->refreshing || atomic_load(&s->srv->stopping))
        return;
    pthread_mutex_lock(&s->lock);
    s->refresh_gen = s->gen;
    pthread_mutex_unlock(&s->lock);
    s->work.data = s;
    if (uv_queue_work(&s->srv->loop, &s->work, refresh_work, refresh_done) == 0) {
        s->refreshing = 1;
        s->open_handles++;
    }
}

/* ---- start and stop ---- */

/* A schedule from the store's row; FLOW_EINVAL (logged) when it does not load now. */
static int from_stored(flowd_schedules_t *s, const flowd_stored_schedule_t *ss, sched_t **out) {
    json_error_t jerr;
    json_t *def = json_loads(ss->definition, 0, &jerr);
    char err[256] = "";
    int rc = FLOW_EINVAL;
    sched_t *it = NULL;
    const char *overlap = json_string_value(json_object_get(def, "overlap"));
    json_t *shared = json_object_get(def, "shared"), *params = json_object_get(def, "params");
    char *shared_text = shared ? json_dumps(shared, JSON_COMPACT) : NULL;
    char *params_text = params ? json_dumps(params, JSON_COMPACT) : NULL;
    flowd_schedule_spec_t spec = {
        .name = ss->name,
        .cron = json_string_value(json_object_get(def, "cron")),
        .timezone = json_string_value(json_object_get(def, "timezone")),
        .flow = json_string_value(json_object_get(def, "flow")),
        .shared = shared_text,
        .params = params_text,
        .paused = json_is_true(json_object_get(def, "paused")),
        .tenant = flowd_auth_tenant(s->srv->auth, ss->tenant ? ss->tenant : FLOWD_DEFAULT_TENANT)};
    if (def == NULL || spec.cron == NULL || spec.flow == NULL || spec.tenant == NULL ||
        overlap == NULL || flowd_overlap_parse(overlap, &spec.overlap) < 0 ||
        strlen(ss->name) > NAME_MAX_LEN || strlen(spec.flow) > NAME_MAX_LEN) {
        snprintf(err, sizeof err, "its stored definition does not read");
    } else {
        rc = sched_new(&spec, &it, err, sizeof err);
    }
    free(shared_text);
    free(params_text);
    json_decref(def);
    if (rc == FLOW_EINVAL)
        flowd_log(FLOW_LOG_WARN, "schedule %s does not load now (%s); it is left out", ss->name,
                  err);
    if (rc < 0)
        return rc;
    it->next = it->paused ? 0 : ss->next;
    if (!it->paused && it->next == 0 && flowd_cron_next(&it->cron, it->zone, now_s(), &it->next) < 0)
        it->next = 0;
    it->last_run = ss->last_run;
    if (ss->last_job != NULL && strlen(ss->last_job) == FLOWD_ID_LEN)
        memcpy(it->last_job, ss->last_job, FLOWD_ID_LEN + 1);
    it->remote_active = ss->last_job_active;
    *out = it;
    return 0;
}

/* A schedule the store gives back at start. One that does not load now (its zone went from the
 * system's data, say) is logged and left out; the store keeps it. */
static int restore(void *data, const flowd_stored_schedule_t *ss) {
    flowd_schedules_t *s = data;
    sched_t *it = NULL, *old = NULL;
    int rc = from_stored(s, ss, &it);
    if (rc < 0)
        return rc == FLOW_ENOMEM ? rc : 0;
    if (!it->paused && it->next != 0 && it->next <= now_s()) {
        char at[32];
        rfc3339(it->next, at);
        flowd_log(FLOW_LOG_INFO, "schedule %s: its runs from %s on were missed while flowd was "
                  "down: it runs now, once, for the latest of them", it->name, at);
    }
    if (insert(s, it, &old) < 0) {
        sched_free(it);
        return FLOW_ENOMEM;
    }
    sched_free(old);
    return 0;
}

int flowd_schedules_new(flowd_server_t *srv, flowd_schedules_t **out) {
    flowd_schedules_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return FLOW_ENOMEM;
    s->srv = srv;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->change, NULL);
    pthread_mutex_init(&s->rlock, NULL);
    if (uv_async_init(&srv->loop, &s->async, on_async) != 0) {
        pthread_mutex_destroy(&s->lock);
        pthread_mutex_destroy(&s->change);
        pthread_mutex_destroy(&s->rlock);
        free(s);
        return FLOW_EIO;
    }
    uv_timer_init(&srv->loop, &s->timer);
    uv_timer_init(&srv->loop, &s->refresh);
    pthread_cond_init(&s->rcond, NULL);
    s->async.data = s->timer.data = s->refresh.data = s;
    s->open_handles = 3;
    *out = s; /* closed by flowd_schedules_close from here on, whatever load says */
    int rc = 0;
    if (srv->store->ops->load_schedules != NULL &&
        (rc = srv->store->ops->load_schedules(srv->store, restore, s)) < 0) {
        flowd_log(FLOW_LOG_ERROR, "the schedules kept by the store did not load: %s",
                  flow_strerror(rc));
        return rc;
    }
    if (s->n > 0)
        flowd_log(FLOW_LOG_INFO, "store %s: %zu schedules back", srv->store->ops->name, s->n);
    if (srv->store->ops->read_schedules != NULL)
        uv_timer_start(&s->refresh, on_refresh, srv->cfg.poll_ms, srv->cfg.poll_ms);
    arm(s);
    return 0;
}

static void on_closed(uv_handle_t *h) {
    flowd_schedules_t *s = h->data;
    if (--s->open_handles > 0)
        return;
    failed_runs_drop(s);
    pthread_cond_destroy(&s->rcond);
    for (size_t i = 0; i < s->n; i++)
        sched_free(s->items[i]);
    free(s->items);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->change);
    pthread_mutex_destroy(&s->rlock);
    free(s);
}

void flowd_schedules_quiesce(flowd_schedules_t *s) {
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->rlock);
    s->closed = 1;
    while (s->reading)
        pthread_cond_wait(&s->rcond, &s->rlock);
    pthread_mutex_unlock(&s->rlock);
}

void flowd_schedules_close(flowd_schedules_t *s) {
    if (s == NULL)
        return;
    flowd_schedules_quiesce(s);
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_closed);
    uv_close((uv_handle_t *)&s->refresh, on_closed);
    uv_close((uv_handle_t *)&s->async, on_closed);
}

/* ---- the routes' side (HTTP threads) ---- */

/* Stores it (or deletes name, it NULL), without the table's lock: 0 or FLOW_EIO. */
static int store_put(flowd_schedules_t *s, const char *name, const sched_t *it) {
    flowd_store_t *store = s->srv->store;
    if (store->ops->put_schedule == NULL)
        return 0;
    if (it == NULL)
        return store->ops->put_schedule(store, name, NULL) < 0 ? FLOW_EIO : 0;
    char *def = definition_text(it);
    if (def == NULL)
        return FLOW_ENOMEM;
    char last_job[FLOWD_ID_LEN + 1];
    memcpy(last_job, it->last_job, sizeof last_job);
    flowd_stored_schedule_t ss = {.name = name,
                                  .tenant = it->tenant,
                                  .definition = def,
                                  .next = it->next,
                                  .last_job = last_job[0] ? last_job : NULL,
                                  .last_run = it->last_run};
    int rc = store->ops->put_schedule(store, name, &ss);
    free(def);
    return rc < 0 ? FLOW_EIO : 0;
}

/* Begins a change (HTTP threads, one at a time): returns with s->change and s->lock held, and no
 * refresh applied until change_end. */
static void change_begin(flowd_schedules_t *s) {
    pthread_mutex_lock(&s->change);
    pthread_mutex_lock(&s->lock);
    s->changing = 1;
}

/* Ends a change (s->change held, s->lock not): counts it (gen: a refresh that read before it is not
 * applied), lets the next one in and, when it was made (rc 0), wakes the loop to plan the runs
 * anew; returns rc. */
static int change_end(flowd_schedules_t *s, int rc) {
    pthread_mutex_lock(&s->lock);
    s->changing = 0;
    s->gen++;
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&s->change);
    if (rc == 0)
        uv_async_send(&s->async);
    return rc;
}

int flowd_schedules_put(flowd_schedules_t *s, const flowd_schedule_spec_t *spec, int *created,
                        flow_buf_t *b, char *err, size_t errlen) {
    sched_t *it = NULL, *old = NULL;
    int rc = sched_new(spec, &it, err, errlen);
    if (rc < 0)
        return rc;
    if (!it->paused && flowd_cron_next(&it->cron, it->zone, now_s(), &it->next) < 0) {
        snprintf(err, errlen,
                 "cron '%s' names no time in the next %d years (a day that no month has?)",
                 it->cron_text, FLOWD_CRON_YEARS);
        sched_free(it);
        return FLOW_EINVAL;
    }
    change_begin(s);
    int exists = lookup(s, it->name) != NULL;
    size_t n = s->n;
    pthread_mutex_unlock(&s->lock);
    if (!exists && n >= s->srv->cfg.max_schedules) {
        sched_free(it);
        return change_end(s, FLOW_EBUSY);
    }
    rc = store_put(s, it->name, it);
    if (rc == 0) {
        pthread_mutex_lock(&s->lock);
        rc = insert(s, it, &old);
        if (rc == 0 && old != NULL) { /* a new definition, the same schedule: its runs go on */
            memcpy(it->last_job, old->last_job, sizeof it->last_job);
            it->last_run = old->last_run;
            it->runs = old->runs;
            it->skipped = old->skipped;
            it->failed = old->failed;
        }
        if (rc == 0)
            render_into(it, FLOWD_SCHEDULE_NEXT_RUNS, b);
        pthread_mutex_unlock(&s->lock);
    }
    if (change_end(s, rc) < 0) {
        sched_free(it);
        return rc;
    }
    *created = old == NULL;
    sched_free(old);
    return 0;
}

int flowd_schedules_get(flowd_schedules_t *s, const char *name, flow_buf_t *b) {
    pthread_mutex_lock(&s->lock);
    sched_t *it = lookup(s, name);
    if (it != NULL)
        render_into(it, FLOWD_SCHEDULE_NEXT_RUNS, b);
    pthread_mutex_unlock(&s->lock);
    return it ? 0 : FLOW_ENOTFOUND;
}

int flowd_schedules_list(flowd_schedules_t *s, const char *cursor, size_t limit, flow_buf_t *b) {
    json_t *page = json_object(), *list = json_array();
    const char *last = NULL;
    pthread_mutex_lock(&s->lock);
    int found = 0;
    size_t i = cursor ? find(s, cursor, &found) : 0;
    if (found)
        i++;
    size_t shown = 0;
    for (; i < s->n && shown < limit; i++, shown++) {
        json_array_append_new(list, render(s->items[i], 1));
        last = s->items[i]->name;
    }
    json_object_set_new(page, "schedules", list);
    json_object_set_new(page, "next_cursor", i < s->n && last ? json_string(last) : json_null());
    pthread_mutex_unlock(&s->lock);
    char *text = json_dumps(page, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(page);
    if (text == NULL)
        return FLOW_ENOMEM;
    flow_buf_adds(b, text);
    flow_buf_addc(b, '\n');
    free(text);
    return 0;
}

int flowd_schedules_remove(flowd_schedules_t *s, const char *name) {
    int rc = FLOW_ENOTFOUND;
    change_begin(s);
    int exists = lookup(s, name) != NULL;
    pthread_mutex_unlock(&s->lock);
    if (exists && (rc = store_put(s, name, NULL)) == 0) {
        pthread_mutex_lock(&s->lock);
        int found;
        size_t i = find(s, name, &found);
        if (found) {
            sched_free(s->items[i]);
            memmove(s->items + i, s->items + i + 1, (s->n - i - 1) * sizeof *s->items);
            s->n--;
        }
        pthread_mutex_unlock(&s->lock);
    }
    return change_end(s, rc);
}

int flowd_schedules_pause(flowd_schedules_t *s, const char *name, int paused, flow_buf_t *b) {
    int rc = FLOW_ENOTFOUND;
    change_begin(s);
    sched_t *it = lookup(s, name);
    sched_t copy;
    if (it != NULL) {
        /* a copy with strings of its own: a refresh (PostgreSQL) may replace it meanwhile */
        copy = *it;
        copy.def_text = NULL;
        copy.shared = strdup(it->shared);
        copy.params = it->params ? strdup(it->params) : NULL;
        copy.paused = paused;
        if (paused)
            copy.next = 0;
        else if (it->paused && flowd_cron_next(&it->cron, it->zone, now_s(), &copy.next) < 0)
            copy.next = 0; /* resumed from now: what it missed while paused is not made */
        rc = copy.shared == NULL || (it->params && copy.params == NULL) ? FLOW_ENOMEM : 0;
    }
    pthread_mutex_unlock(&s->lock);
    if (it != NULL && rc == 0)
        rc = store_put(s, name, &copy);
    if (it != NULL) {
        free(copy.shared);
        free(copy.params);
    }
    if (rc == 0) {
        pthread_mutex_lock(&s->lock);
        it = lookup(s, name);
        if (it != NULL) {
            it->paused = paused;
            it->next = copy.next;
            free(it->def_text);
            it->def_text = definition_text(it);
            render_into(it, FLOWD_SCHEDULE_NEXT_RUNS, b);
        }
        pthread_mutex_unlock(&s->lock);
    }
    return change_end(s, rc);
}

void flowd_schedules_counts(flowd_schedules_t *s, uint64_t *started, uint64_t *skipped,
                            uint64_t *failed, uint64_t *held) {
    *started = atomic_load(&s->started);
    *skipped = atomic_load(&s->skipped);
    *failed = atomic_load(&s->failures);
    pthread_mutex_lock(&s->lock);
    *held = s->n;
    pthread_mutex_unlock(&s->lock);
}
