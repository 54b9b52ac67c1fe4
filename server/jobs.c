/* jobs.c: the job table of jobs.h: 64 shards of chained hash buckets by id, an array of
 * (seq, record) in creation order for the list (binary search by cursor; evicted slots are emptied
 * and compacted away later), an Idempotency-Key hash, and the loop's list of finished records,
 * oldest first, for retention. */
#include "jobs.h"

#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "grow.h"
#include "jsonw.h"

#define NSHARDS 64
#define MIN_BUCKETS 64

typedef struct shard {
    pthread_mutex_t lock;
    flowd_job_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
} __attribute__((aligned(64))) shard_t; /* a cache line each: HTTP threads lock different shards */

typedef struct slot {
    uint64_t seq;
    flowd_job_t *job; /* NULL once evicted */
} slot_t;

struct flowd_jobs {
    shard_t shards[NSHARDS];
    flowd_jobs_opts_t o;

    /* Each group on cache lines of its own: HTTP threads and the loop write them all. */
    _Alignas(64) pthread_mutex_t list_lock;
    slot_t *list;       /* live and emptied slots in [start, end), seq ascending */
    size_t start, end, cap;
    size_t empty;       /* emptied slots in [start, end) */
    uint64_t next_seq;

    _Alignas(64) pthread_mutex_t idem_lock;
    flowd_job_t **idem; /* buckets by key */
    size_t idem_nb, idem_count;

    _Alignas(64) _Atomic uint64_t counts[6];
    _Atomic uint64_t active;

    /* Loop only. */
    _Alignas(64) flow_queue_t finished; /* records ended, oldest first (flowd_job_t's finished) */
    size_t nfinished;
};

uint64_t flowd_hash_bytes(const void *p, size_t len) {
    const unsigned char *s = p;
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 1099511628211u;
    return h;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The hash of an id is its last 16 hex digits, as a number: they are random (the first ones are a
 * time). -1 when id is not 32 lowercase hex digits (no job has such an id). */
static int id_hash(const char *id, size_t len, uint64_t *out) {
    uint64_t h = 0;
    if (len != FLOWD_ID_LEN)
        return -1;
    for (size_t i = 0; i < FLOWD_ID_LEN; i++) {
        int v = hexval(id[i]);
        if (v < 0)
            return -1;
        if (i >= 16)
            h = (h << 4) | (uint64_t)v;
    }
    *out = h;
    return 0;
}

static shard_t *shard_of(flowd_jobs_t *t, uint64_t hash) {
    return &t->shards[hash >> 58]; /* the top 6 bits: NSHARDS is 64 */
}

int flowd_new_id(char out[FLOWD_ID_LEN + 1]) {
    /* One getrandom(2) per 256 ids and thread, not one per job. */
    static _Thread_local unsigned char pool[4096];
    static _Thread_local size_t left;
    static const char hex[] = "0123456789abcdef";
    if (left < 16) {
        int rc = uv_random(NULL, NULL, pool, sizeof pool, 0, NULL);
        if (rc != 0)
            return rc;
        left = sizeof pool;
    }
    unsigned char *b = pool + sizeof pool - left;
    left -= 16;
    /* The first 6 bytes are the time in milliseconds, as in UUIDv7: new ids then sort after the
     * old ones, so a store's index on them grows at its end instead of rewriting a random page
     * for every job (a quarter of the bytes SQLite wrote per job). 10 random bytes remain. */
    uint64_t ms = flow_wall_us() / 1000;
    for (int i = 5; i >= 0; i--, ms >>= 8)
        b[i] = (unsigned char)(ms & 0xff);
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[FLOWD_ID_LEN] = '\0';
    memset(b, 0, 16); /* an id is not left lying around for a later one to reuse */
    return 0;
}

int flowd_jobs_new(const flowd_jobs_opts_t *opts, flowd_jobs_t **out) {
    flowd_jobs_t *t = aligned_alloc(64, (sizeof *t + 63) / 64 * 64);
    if (t == NULL)
        return FLOW_ENOMEM;
    memset(t, 0, sizeof *t);
    t->o = *opts;
    for (int i = 0; i < NSHARDS; i++) {
        pthread_mutex_init(&t->shards[i].lock, NULL);
        t->shards[i].buckets = calloc(MIN_BUCKETS, sizeof(flowd_job_t *));
        t->shards[i].nbuckets = MIN_BUCKETS;
        if (t->shards[i].buckets == NULL) {
            flowd_jobs_free(t);
            return FLOW_ENOMEM;
        }
    }
    pthread_mutex_init(&t->list_lock, NULL);
    pthread_mutex_init(&t->idem_lock, NULL);
    flow_queue_init(&t->finished);
    *out = t;
    return 0;
}

void *flowd_jobs_data(flowd_jobs_t *t) {
    return t->o.data;
}

static void job_free(flowd_job_t *job) {
    json_decref(job->run.start_shared); /* never started: the server stopped first */
    flowd_patcher_free(&job->run.patcher);
    json_decref(job->run.start_params);
    flow_def_unref(job->def);
    free(job->idem_key);
    free(job->conc_key);
    if (job->last_action != job->last_action_buf)
        free(job->last_action);
    free(job->waiting_for);
    flow_error_clear(&job->error);
    free(job->final_shared);
    free(job->final_history);
    free(job->restart.node);
    free(job->callback);
    free(job->callback_url);
    free(job->params_text);
    free(job->origin);
    free(job->redrive_shared);
    free(job->redrive_node);
    free(job->run.base);
    if (job->deliveries != NULL)
        job->deliveries_free(job->deliveries);
    flowd_ring_free(&job->events);
    free(job);
}

flowd_job_t *flowd_job_ref(flowd_job_t *job) {
    atomic_fetch_add_explicit(&job->refs, 1, memory_order_relaxed);
    return job;
}

void flowd_job_unref(flowd_job_t *job) {
    if (job != NULL && atomic_fetch_sub_explicit(&job->refs, 1, memory_order_acq_rel) == 1)
        job_free(job);
}

void flowd_job_lock(flowd_job_t *job) {
    pthread_mutex_lock(&shard_of(job->table, job->hash)->lock);
}

void flowd_job_unlock(flowd_job_t *job) {
    pthread_mutex_unlock(&shard_of(job->table, job->hash)->lock);
}

flow_status_t flowd_job_status(const flowd_job_t *job) {
    return (flow_status_t)atomic_load_explicit(&job->status, memory_order_acquire);
}

void flowd_jobs_free(flowd_jobs_t *t) {
    if (t == NULL)
        return;
    for (int i = 0; i < NSHARDS; i++) {
        shard_t *s = &t->shards[i];
        for (size_t b = 0; s->buckets != NULL && b < s->nbuckets; b++) {
            flowd_job_t *job = s->buckets[b];
            while (job != NULL) {
                flowd_job_t *next = job->hnext;
                flowd_job_unref(job);
                job = next;
            }
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(t->list);
    free(t->idem);
    pthread_mutex_destroy(&t->list_lock);
    pthread_mutex_destroy(&t->idem_lock);
    free(t);
}

/* ---- shards ---- */

/* The records chained in the n buckets of old, chained again into the nb (a power of two) of
 * buckets: by id (hnext, a shard's) or, with idem, by Idempotency-Key (inext). */
static void rechain(flowd_job_t **old, size_t n, flowd_job_t **buckets, size_t nb, int idem) {
    for (size_t b = 0; b < n; b++) {
        flowd_job_t *job = old[b];
        while (job != NULL) {
            flowd_job_t **link = idem ? &job->inext : &job->hnext;
            flowd_job_t *next = *link;
            uint64_t hash =
                idem ? flowd_hash_bytes(job->idem_key, strlen(job->idem_key)) : job->hash;
            size_t i = hash & (nb - 1);
            *link = buckets[i];
            buckets[i] = job;
            job = next;
        }
    }
}

/* Under the shard lock: doubles the buckets when they hold more than one record each on average
 * (no harm done when that fails: chains just get longer). */
static void shard_grow(shard_t *s) {
    size_t nb = s->nbuckets * 2;
    flowd_job_t **buckets = calloc(nb, sizeof *buckets);
    if (buckets == NULL)
        return;
    rechain(s->buckets, s->nbuckets, buckets, nb, 0);
    free(s->buckets);
    s->buckets = buckets;
    s->nbuckets = nb;
}

/* Inserts job. Ids are 128 random bits, so no two jobs get the same one in practice, and checking
 * would cost a walk of the bucket's chain: cache misses on cold records, on the hot path. */
static void shard_insert(flowd_jobs_t *t, flowd_job_t *job) {
    shard_t *s = shard_of(t, job->hash);
    pthread_mutex_lock(&s->lock);
    size_t i = job->hash & (s->nbuckets - 1);
    job->hnext = s->buckets[i];
    s->buckets[i] = job;
    job->in_table = 1;
    if (++s->count > s->nbuckets)
        shard_grow(s);
    pthread_mutex_unlock(&s->lock);
}

static void shard_remove(flowd_jobs_t *t, flowd_job_t *job) {
    shard_t *s = shard_of(t, job->hash);
    pthread_mutex_lock(&s->lock);
    flowd_job_t **p = &s->buckets[job->hash & (s->nbuckets - 1)];
    while (*p != NULL && *p != job)
        p = &(*p)->hnext;
    if (*p == job) {
        *p = job->hnext;
        job->hnext = NULL;
        job->in_table = 0;
        s->count--;
    }
    pthread_mutex_unlock(&s->lock);
}

flowd_job_t *flowd_jobs_get(flowd_jobs_t *t, const char *id, size_t len) {
    uint64_t hash;
    if (id_hash(id, len, &hash) < 0)
        return NULL;
    shard_t *s = shard_of(t, hash);
    flowd_job_t *found = NULL;
    pthread_mutex_lock(&s->lock);
    for (flowd_job_t *j = s->buckets[hash & (s->nbuckets - 1)]; j != NULL; j = j->hnext) {
        if (j->hash == hash && memcmp(j->id, id, FLOWD_ID_LEN) == 0) {
            found = flowd_job_ref(j);
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

/* ---- the list in creation order ---- */

/* Under the list lock: room for one more slot at the end. */
static int list_room(flowd_jobs_t *t) {
    if (t->end < t->cap)
        return 0;
    if (t->empty > 0 || t->start > 0) {
        /* compact when at least a quarter is dead space, so this is amortized O(1) */
        size_t dead = t->start + t->empty;
        if (dead * 4 >= t->cap) {
            size_t k = 0;
            for (size_t i = t->start; i < t->end; i++)
                if (t->list[i].job != NULL)
                    t->list[k++] = t->list[i];
            t->start = 0;
            t->end = k;
            t->empty = 0;
            return 0;
        }
    }
    slot_t *list = flowd_grow(t->list, t->end, &t->cap, sizeof *list, 1024);
    if (list == NULL)
        return FLOW_ENOMEM;
    t->list = list;
    return 0;
}

/* Under the list lock: the first slot index in [start, end) whose seq is >= seq. */
static size_t list_lower_bound(const flowd_jobs_t *t, uint64_t seq) {
    size_t lo = t->start, hi = t->end;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->list[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void list_remove(flowd_jobs_t *t, flowd_job_t *job) {
    pthread_mutex_lock(&t->list_lock);
    size_t i = list_lower_bound(t, job->seq);
    if (i < t->end && t->list[i].job == job) {
        t->list[i].job = NULL;
        t->empty++;
        while (t->start < t->end && t->list[t->start].job == NULL) {
            t->start++;
            t->empty--;
        }
        if (t->start == t->end)
            t->start = t->end = 0;
    }
    pthread_mutex_unlock(&t->list_lock);
}

int flowd_jobs_list(flowd_jobs_t *t, int status, const char *flow, const char *tenant,
                    uint64_t cursor, size_t limit, flowd_job_t **out, size_t *n, uint64_t *next) {
    size_t got = 0;
    *next = 0;
    pthread_mutex_lock(&t->list_lock);
    size_t i = cursor ? list_lower_bound(t, cursor) : t->end;
    while (i > t->start) {
        flowd_job_t *job = t->list[--i].job;
        if (job == NULL)
            continue;
        if (status >= 0 && atomic_load_explicit(&job->status, memory_order_relaxed) != status)
            continue;
        if (flow != NULL && strcmp(flow_def_name(job->def), flow) != 0)
            continue;
        if (tenant != NULL && job->tenant != tenant)
            continue;
        if (got == limit) { /* one more matches: there is a next page */
            *next = out[got - 1]->seq;
            break;
        }
        out[got++] = flowd_job_ref(job);
    }
    pthread_mutex_unlock(&t->list_lock);
    *n = got;
    return 0;
}

/* ---- Idempotency-Key ---- */

/* Under the idempotency lock. A key is one tenant's: the same key of two tenants is two keys (in
 * one bucket: the hash is the key's alone). */
static flowd_job_t **idem_slot(flowd_jobs_t *t, const char *tenant, const char *key) {
    flowd_job_t **p = &t->idem[flowd_hash_bytes(key, strlen(key)) & (t->idem_nb - 1)];
    while (*p != NULL && ((*p)->tenant != tenant || strcmp((*p)->idem_key, key) != 0))
        p = &(*p)->inext;
    return p;
}

static int idem_insert(flowd_jobs_t *t, flowd_job_t *job) {
    if (t->idem_count + 1 > t->idem_nb) {
        size_t nb = t->idem_nb ? t->idem_nb * 2 : 64;
        flowd_job_t **buckets = calloc(nb, sizeof *buckets);
        if (buckets == NULL)
            return FLOW_ENOMEM;
        rechain(t->idem, t->idem_nb, buckets, nb, 1);
        free(t->idem);
        t->idem = buckets;
        t->idem_nb = nb;
    }
    flowd_job_t **p = idem_slot(t, job->tenant, job->idem_key);
    job->inext = NULL;
    *p = job;
    t->idem_count++;
    return 0;
}

static void idem_remove(flowd_jobs_t *t, flowd_job_t *job) {
    pthread_mutex_lock(&t->idem_lock);
    if (t->idem_nb > 0) {
        flowd_job_t **p = idem_slot(t, job->tenant, job->idem_key);
        if (*p == job) {
            *p = job->inext;
            t->idem_count--;
        }
    }
    pthread_mutex_unlock(&t->idem_lock);
}

/* ---- creating ---- */

/* A new record, or (with id) one given back by a store at start, which keeps its id, creation time
 * and place in the order (seq) and is not held to max_jobs: it was accepted before. */
static int create(flowd_jobs_t *t, flow_def_t *def, const char *tenant, const char *key,
                  uint64_t body_hash, const char *id, uint64_t created_us, uint64_t seq,
                  flowd_job_t **out) {
    if (atomic_fetch_add(&t->active, 1) >= t->o.max_jobs && id == NULL) {
        atomic_fetch_sub(&t->active, 1);
        return FLOW_EBUSY;
    }
    int rc = FLOW_ENOMEM;
    flowd_job_t *job = calloc(1, sizeof *job);
    if (job == NULL || (key != NULL && (job->idem_key = strdup(key)) == NULL))
        goto fail;
    job->table = t;
    job->tenant = tenant;
    job->def = flow_def_ref(def);
    job->body_hash = body_hash;
    job->created_us = id ? created_us : flow_wall_us();
    job->priority = FLOWD_PRIORITY_DEFAULT;
    atomic_init(&job->status, FLOW_QUEUED);
    atomic_init(&job->refs, 2); /* the table's and the caller's */
    flowd_ring_init(&job->events, t->o.events_limit);
    if (id != NULL) {
        snprintf(job->id, sizeof job->id, "%s", id);
    } else if (flowd_new_id(job->id) != 0) {
        rc = FLOW_EIO;
        goto fail;
    }
    id_hash(job->id, FLOWD_ID_LEN, &job->hash);
    shard_insert(t, job);
    pthread_mutex_lock(&t->list_lock);
    rc = list_room(t);
    if (rc == 0) {
        /* a restored record keeps its seq (they come oldest first); new ones follow them */
        if (id != NULL && seq > t->next_seq)
            t->next_seq = seq;
        else
            ++t->next_seq;
        job->seq = t->next_seq;
        t->list[t->end++] = (slot_t){job->seq, job};
    }
    pthread_mutex_unlock(&t->list_lock);
    if (rc < 0) {
        shard_remove(t, job);
        goto fail;
    }
    atomic_fetch_add(&t->counts[FLOW_QUEUED], 1);
    *out = job;
    return 0;
fail:
    if (job != NULL) {
        if (job->def == NULL)
            free(job);
        else
            job_free(job);
    }
    atomic_fetch_sub(&t->active, 1);
    return rc;
}

int flowd_jobs_create(flowd_jobs_t *t, flow_def_t *def, const char *tenant, const char *key,
                      uint64_t body_hash, flowd_job_t **out, int *repeat) {
    *repeat = 0;
    if (key == NULL)
        return create(t, def, tenant, NULL, body_hash, NULL, 0, 0, out);
    pthread_mutex_lock(&t->idem_lock);
    flowd_job_t *seen = t->idem_nb ? *idem_slot(t, tenant, key) : NULL;
    int rc;
    if (seen != NULL) {
        rc = seen->body_hash == body_hash ? 0 : FLOW_EEXIST;
        *out = flowd_job_ref(seen);
        *repeat = rc == 0;
    } else {
        rc = create(t, def, tenant, key, body_hash, NULL, 0, 0, out);
        if (rc == 0 && idem_insert(t, *out) < 0) {
            /* keep the job, forget the key: a repeat will make a second job, which is still
             * better than refusing the first request after its job started */
            free((*out)->idem_key);
            (*out)->idem_key = NULL;
        }
    }
    pthread_mutex_unlock(&t->idem_lock);
    if (rc == FLOW_EEXIST) {
        flowd_job_unref(*out);
        *out = NULL;
    }
    return rc;
}

int flowd_jobs_restore(flowd_jobs_t *t, flow_def_t *def, const char *tenant, const char *id,
                       uint64_t seq, uint64_t created_us, const char *key, uint64_t body_hash,
                       flowd_job_t **out) {
    pthread_mutex_lock(&t->idem_lock);
    int rc = create(t, def, tenant, key, body_hash, id, created_us, seq, out);
    if (rc == 0 && key != NULL && idem_insert(t, *out) < 0) {
        free((*out)->idem_key);
        (*out)->idem_key = NULL;
    }
    pthread_mutex_unlock(&t->idem_lock);
    return rc;
}

/* ---- the loop's side ---- */

void flowd_jobs_set_status_locked(flowd_job_t *job, flow_status_t status) {
    int old = atomic_load_explicit(&job->status, memory_order_relaxed);
    if (old == (int)status)
        return;
    atomic_store_explicit(&job->status, (int)status, memory_order_release);
    if (job->in_table) {
        atomic_fetch_sub(&job->table->counts[old], 1);
        atomic_fetch_add(&job->table->counts[status], 1);
    }
}

static flowd_job_t *oldest_finished(const flowd_jobs_t *t) {
    if (flow_queue_empty(&t->finished))
        return NULL;
    return FLOW_QUEUE_DATA(flow_queue_head(&t->finished), flowd_job_t, finished);
}

static void evict(flowd_jobs_t *t, flowd_job_t *job) {
    flow_queue_remove(&job->finished);
    t->nfinished--;
    shard_remove(t, job);
    list_remove(t, job);
    if (job->idem_key != NULL)
        idem_remove(t, job);
    if (t->o.on_evict != NULL)
        t->o.on_evict(job, t->o.data);
    atomic_fetch_sub(&t->counts[atomic_load(&job->status)], 1);
    flowd_job_unref(job);
}

void flowd_jobs_ended(flowd_jobs_t *t, flowd_job_t *job) {
    if (job->ended)
        return;
    job->ended = 1;
    atomic_fetch_sub(&t->active, 1);
    flow_queue_insert_tail(&t->finished, &job->finished);
    t->nfinished++;
    while (t->nfinished > t->o.max_finished)
        evict(t, oldest_finished(t));
}

void flowd_jobs_forget(flowd_jobs_t *t, flowd_job_t *job) {
    if (!job->in_table)
        return;
    if (job->ended) {
        flow_queue_remove(&job->finished);
        t->nfinished--;
    } else {
        job->ended = 1; /* it no longer counts as active here */
        atomic_fetch_sub(&t->active, 1);
    }
    shard_remove(t, job);
    list_remove(t, job);
    if (job->idem_key != NULL)
        idem_remove(t, job);
    atomic_fetch_sub(&t->counts[atomic_load(&job->status)], 1);
    flowd_job_unref(job);
}

size_t flowd_jobs_sweep(flowd_jobs_t *t, uint64_t now_us) {
    size_t n = 0;
    flowd_job_t *job;
    while ((job = oldest_finished(t)) != NULL && job->finished_us + t->o.retention_us <= now_us) {
        evict(t, job);
        n++;
    }
    return n;
}

void flowd_jobs_counts(flowd_jobs_t *t, uint64_t by_status[6]) {
    for (int i = 0; i < 6; i++)
        by_status[i] = atomic_load_explicit(&t->counts[i], memory_order_relaxed);
}

uint64_t flowd_jobs_active(flowd_jobs_t *t) {
    return atomic_load_explicit(&t->active, memory_order_relaxed);
}

uint64_t flowd_jobs_size(flowd_jobs_t *t) {
    uint64_t n = 0;
    for (int i = 0; i < 6; i++)
        n += atomic_load_explicit(&t->counts[i], memory_order_relaxed);
    return n;
}
