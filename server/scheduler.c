/* scheduler.c: the scheduler of queued jobs (scheduler.h): a heap of delayed jobs on one timer, a
 * heap of due jobs, a group per concurrency key and per limited flow with the jobs that wait for
 * it, and (on a shared store) the jobs that asked the store for their turn.
 * Hand-written: Debian's C libraries offer no binary heap with removal by position (GLib's
 * GSequence would do, at a dependency's cost), and the whole is a few arrays. */
#include "scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "flow/doc.h"
#include "log.h"

/* A wall-clock timer would follow clock changes; libuv's is monotonic, so a long wait wakes at
 * least this often to look at the wall clock again (one wake-up a minute costs nothing). */
#define REARM_MAX_MS 60000u

typedef int (*less_fn)(const flowd_job_t *a, const flowd_job_t *b);

struct flowd_heap {
    flowd_job_t **v;
    size_t n, cap;
    less_fn less;
    struct flowd_sched_group *group; /* the group whose waiting jobs these are, or NULL */
};

struct flowd_sched_group {
    struct flowd_sched_group *next; /* bucket chain */
    char *name;                     /* "k" tenant NUL key, or "f" flow: see group_name */
    size_t name_len;
    uint64_t hash;
    unsigned running;
    struct flowd_heap waiting;      /* jobs due that wait for this group's room */
};

typedef struct gtable {
    struct flowd_sched_group **b;
    size_t nb, n;
} gtable_t;

struct flowd_sched {
    uv_timer_t timer;
    unsigned max_running;
    const atomic_int *stopping;
    flowd_sched_start_cb start;
    void *data;
    flowd_sched_acquire_cb acquire; /* a shared store's slots, or NULL */
    void *adata;
    struct flowd_heap delayed; /* by start_at, then seq */
    struct flowd_heap ready;   /* due: by priority, then seq */
    struct flowd_heap asking;  /* counted here, waiting for the store's answer (acquire) */
    gtable_t groups;
    uint64_t running;
    int dispatching;           /* in dispatch: a slot given back meanwhile is used by its loop */
    int closed;
    int timer_closed;
};

/* ---- heaps ---- */

static int by_time(const flowd_job_t *a, const flowd_job_t *b) {
    if (a->start_at_us != b->start_at_us)
        return a->start_at_us < b->start_at_us;
    return a->seq < b->seq;
}

/* Arrival is the creation time, then the id: the order a shared store's turns follow too
 * (store_postgres.c: slot), which every instance sees the same; seq is only this instance's. */
static int by_priority(const flowd_job_t *a, const flowd_job_t *b) {
    if (a->priority != b->priority)
        return a->priority > b->priority;
    if (a->created_us != b->created_us)
        return a->created_us < b->created_us;
    return strcmp(a->id, b->id) < 0;
}

static void heap_set(struct flowd_heap *h, size_t i, flowd_job_t *job) {
    h->v[i] = job;
    job->sched.idx = i;
}

static void sift_up(struct flowd_heap *h, size_t i) {
    flowd_job_t *job = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!h->less(job, h->v[parent]))
            break;
        heap_set(h, i, h->v[parent]);
        i = parent;
    }
    heap_set(h, i, job);
}

static void sift_down(struct flowd_heap *h, size_t i) {
    flowd_job_t *job = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->less(h->v[c + 1], h->v[c]))
            c++;
        if (!h->less(h->v[c], job))
            break;
        heap_set(h, i, h->v[c]);
        i = c;
    }
    heap_set(h, i, job);
}

static int heap_push(struct flowd_heap *h, flowd_job_t *job) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 16;
        flowd_job_t **v = realloc(h->v, cap * sizeof *v);
        if (v == NULL)
            return FLOW_ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    job->sched.heap = h;
    h->n++;
    heap_set(h, h->n - 1, job);
    sift_up(h, h->n - 1);
    return 0;
}

static flowd_job_t *heap_top(const struct flowd_heap *h) {
    return h->n ? h->v[0] : NULL;
}

static void heap_remove(struct flowd_heap *h, size_t i) {
    flowd_job_t *job = h->v[i];
    job->sched.heap = NULL;
    h->n--;
    if (i == h->n)
        return;
    heap_set(h, i, h->v[h->n]);
    sift_down(h, i);
    sift_up(h, h->v[i]->sched.idx);
}

static flowd_job_t *heap_pop(struct flowd_heap *h) {
    flowd_job_t *job = heap_top(h);
    if (job != NULL)
        heap_remove(h, 0);
    return job;
}

/* ---- groups ---- */

/* A key's group is the tenant's (two tenants' "acme" are not the same customer); a flow's is the
 * flow's, over every tenant. The first byte keeps the two kinds apart. */
static char *group_name(const flowd_job_t *job, int key, size_t *len) {
    const char *a = key ? job->tenant : flow_def_name(job->def);
    const char *b = key ? job->conc_key : "";
    size_t la = strlen(a), lb = strlen(b);
    char *name = malloc(la + lb + 3);
    if (name == NULL)
        return NULL;
    name[0] = key ? 'k' : 'f';
    memcpy(name + 1, a, la);
    name[1 + la] = '\0';
    memcpy(name + 2 + la, b, lb);
    name[2 + la + lb] = '\0';
    *len = la + lb + 2;
    return name;
}

static struct flowd_sched_group **group_slot(gtable_t *t, const char *name, size_t len,
                                            uint64_t hash) {
    struct flowd_sched_group **p = &t->b[hash & (t->nb - 1)];
    while (*p != NULL && ((*p)->hash != hash || (*p)->name_len != len ||
                          memcmp((*p)->name, name, len) != 0))
        p = &(*p)->next;
    return p;
}

static int table_grow(gtable_t *t) {
    size_t nb = t->nb ? 2 * t->nb : 64;
    struct flowd_sched_group **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return FLOW_ENOMEM;
    for (size_t i = 0; i < t->nb; i++) {
        struct flowd_sched_group *g = t->b[i];
        while (g != NULL) {
            struct flowd_sched_group *next = g->next;
            g->next = b[g->hash & (nb - 1)];
            b[g->hash & (nb - 1)] = g;
            g = next;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
    return 0;
}

/* The job's group of a kind (key: its concurrency key's; else its flow's), made when missing; NULL
 * when out of memory. */
static struct flowd_sched_group *group_get(flowd_sched_t *s, const flowd_job_t *job, int key) {
    size_t len = 0;
    char *name = group_name(job, key, &len);
    if (name == NULL)
        return NULL;
    uint64_t hash = flowd_hash_bytes(name, len);
    if ((s->groups.n + 1 > s->groups.nb) && table_grow(&s->groups) < 0) {
        free(name);
        return NULL;
    }
    struct flowd_sched_group **p = group_slot(&s->groups, name, len, hash);
    if (*p != NULL) {
        free(name);
        return *p;
    }
    struct flowd_sched_group *g = calloc(1, sizeof *g);
    if (g == NULL) {
        free(name);
        return NULL;
    }
    g->name = name;
    g->name_len = len;
    g->hash = hash;
    g->waiting.less = by_priority;
    g->waiting.group = g;
    *p = g;
    s->groups.n++;
    return g;
}

/* A group nobody runs in or waits for goes (a key per customer must not grow the table forever). */
static void group_release(flowd_sched_t *s, struct flowd_sched_group *g) {
    if (g == NULL || g->running > 0 || g->waiting.n > 0)
        return;
    struct flowd_sched_group **p = group_slot(&s->groups, g->name, g->name_len, g->hash);
    if (*p == g) {
        *p = g->next;
        s->groups.n--;
    }
    free(g->waiting.v);
    free(g->name);
    free(g);
}

/* A flow document's own limit of running jobs (its "max_running"), 0: none. */
static unsigned flow_limit(const flowd_job_t *job) {
    json_t *v = json_object_get(flow_doc_of(job->def), "max_running");
    return json_is_integer(v) && json_integer_value(v) > 0 ? (unsigned)json_integer_value(v) : 0;
}

int flowd_sched_limited(const flowd_job_t *job) {
    return job->conc_key != NULL || flow_limit(job) > 0;
}

/* ---- starting ---- */

/* job holds a slot of this instance (and of its groups) from here until it ends. */
static void count(flowd_sched_t *s, flowd_job_t *job, struct flowd_sched_group *kg,
                  struct flowd_sched_group *fg) {
    job->sched.owner = s;
    job->sched.slot = 1;
    job->sched.key_group = kg;
    job->sched.flow_group = fg;
    if (kg != NULL)
        kg->running++;
    if (fg != NULL)
        fg->running++;
    s->running++;
}

/* The slots job held are given back, without waking anything; its groups are returned for that. */
static void uncount(flowd_sched_t *s, flowd_job_t *job, struct flowd_sched_group **kg,
                    struct flowd_sched_group **fg) {
    *kg = job->sched.key_group;
    *fg = job->sched.flow_group;
    job->sched.slot = 0;
    job->sched.owner = NULL;
    job->sched.key_group = job->sched.flow_group = NULL;
    s->running--;
    if (*kg != NULL)
        (*kg)->running--;
    if (*fg != NULL)
        (*fg)->running--;
}

static void start(flowd_sched_t *s, flowd_job_t *job, struct flowd_sched_group *kg,
                  struct flowd_sched_group *fg) {
    count(s, job, kg, fg);
    s->start(s->data, job);
}

/* Out of memory for a group or a heap: the job starts rather than be lost or wait forever. */
static void start_anyway(flowd_sched_t *s, flowd_job_t *job) {
    flowd_log(FLOW_LOG_WARN, "job %s starts without waiting for its turn (out of memory)", job->id);
    start(s, job, NULL, NULL);
}

/* The first job waiting for g goes back among the due ones. */
static void wake_one(flowd_sched_t *s, struct flowd_sched_group *g) {
    flowd_job_t *job = g ? heap_pop(&g->waiting) : NULL;
    if (job == NULL)
        return;
    job->sched.woken = 1;
    if (heap_push(&s->ready, job) < 0)
        start_anyway(s, job);
}

/* job steps aside into g's waiting jobs. */
static void wait_for(flowd_sched_t *s, flowd_job_t *job, struct flowd_sched_group *g) {
    if (heap_push(&g->waiting, job) < 0)
        start_anyway(s, job);
}

/* On a shared store, a group whose jobs wait was told it is full (or is full here): a job due
 * meanwhile waits behind them instead of asking, or every queued job of the group would ask the
 * store in turn, each to be told the same, and the store's writer would spend its time on them
 * (one at a time over every instance) instead of on the turns that come free. The first of them
 * asks when the group is poked. */
static int behind_waiting(const flowd_sched_t *s, const struct flowd_sched_group *g) {
    return s->acquire != NULL && g->waiting.n > 0;
}

/* job waits behind others in g (its key's group kg, or its flow's): the store records it as
 * waiting, as if it had asked and been told, for the other instances' order. */
static void wait_behind(flowd_sched_t *s, flowd_job_t *job, struct flowd_sched_group *g,
                        struct flowd_sched_group *kg, unsigned flimit) {
    wait_for(s, job, g);
    (void)s->acquire(s->adata, job, flimit, g == kg ? FLOWD_SCHED_KEY_FULL : FLOWD_SCHED_FLOW_FULL);
}

/* A job that has room here asks the shared store for its turn over every instance: counted here
 * meanwhile (so that this instance asks for no more than it has room for), it waits in asking. */
static void ask(flowd_sched_t *s, flowd_job_t *job, struct flowd_sched_group *kg,
                struct flowd_sched_group *fg, unsigned flimit) {
    if (heap_push(&s->asking, job) < 0) {
        start_anyway(s, job);
        return;
    }
    count(s, job, kg, fg);
    if (s->acquire(s->adata, job, flimit, 0) < 0) {
        heap_remove(&s->asking, job->sched.idx);
        flowd_log(FLOW_LOG_WARN, "job %s starts without asking for its turn (out of memory)", job->id);
        s->start(s->data, job);
    }
}

/* Starts the due jobs there is room for, best first. */
static void dispatch(flowd_sched_t *s) {
    if (s->dispatching)
        return;
    s->dispatching = 1;
    while (s->ready.n > 0 && !atomic_load(s->stopping) &&
           (s->max_running == 0 || s->running < s->max_running)) {
        flowd_job_t *job = heap_pop(&s->ready);
        struct flowd_sched_group *kg = NULL, *fg = NULL;
        unsigned flimit = flow_limit(job);
        int woken = job->sched.woken;
        job->sched.woken = 0;
        if (job->conc_key != NULL && (kg = group_get(s, job, 1)) == NULL) {
            start_anyway(s, job);
            continue;
        }
        if (kg != NULL && kg->running >= job->conc_limit) {
            wait_for(s, job, kg);
            continue;
        }
        if (kg != NULL && !woken && behind_waiting(s, kg)) {
            wait_behind(s, job, kg, kg, flimit);
            continue;
        }
        if (flimit > 0 && (fg = group_get(s, job, 0)) == NULL) {
            group_release(s, kg);
            start_anyway(s, job);
            continue;
        }
        if (fg != NULL && (fg->running >= flimit || (!woken && behind_waiting(s, fg)))) {
            if (fg->running >= flimit)
                wait_for(s, job, fg);
            else
                wait_behind(s, job, fg, kg, flimit);
            /* it came from its key's waiting jobs perhaps: the key has room for the next one */
            if (kg != NULL && kg->running < job->conc_limit)
                wake_one(s, kg);
            group_release(s, kg);
            continue;
        }
        if (s->acquire != NULL && (kg != NULL || fg != NULL))
            ask(s, job, kg, fg, flimit);
        else
            start(s, job, kg, fg);
    }
    s->dispatching = 0;
}

static void arm(flowd_sched_t *s);

static void on_timer(uv_timer_t *t) {
    flowd_sched_t *s = t->data;
    uint64_t now = flow_wall_us();
    flowd_job_t *job;
    while ((job = heap_top(&s->delayed)) != NULL && job->start_at_us <= now) {
        heap_remove(&s->delayed, 0);
        if (heap_push(&s->ready, job) < 0)
            start_anyway(s, job);
    }
    dispatch(s);
    arm(s);
}

static void arm(flowd_sched_t *s) {
    flowd_job_t *job = heap_top(&s->delayed);
    if (job == NULL || s->closed) {
        uv_timer_stop(&s->timer);
        return;
    }
    flow_timer_at_wall(&s->timer, on_timer, job->start_at_us, REARM_MAX_MS);
}

/* ---- the calls ---- */

int flowd_sched_new(uv_loop_t *loop, unsigned max_running, const atomic_int *stopping,
                    flowd_sched_start_cb start_cb, void *data, flowd_sched_t **out) {
    flowd_sched_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return FLOW_ENOMEM;
    if (uv_timer_init(loop, &s->timer) != 0) {
        free(s);
        return FLOW_EIO;
    }
    s->timer.data = s;
    s->max_running = max_running;
    s->stopping = stopping;
    s->start = start_cb;
    s->data = data;
    s->delayed.less = by_time;
    s->ready.less = by_priority;
    s->asking.less = by_priority;
    *out = s;
    return 0;
}

void flowd_sched_set_acquire(flowd_sched_t *s, flowd_sched_acquire_cb acquire, void *data) {
    s->acquire = acquire;
    s->adata = data;
}

/* Every group that has jobs waiting lets its first one try again (one per group: a turn given
 * lets the next one try, see flowd_sched_answer). */
void flowd_sched_poke(flowd_sched_t *s) {
    if (s->closed)
        return;
    for (size_t i = 0; i < s->groups.nb; i++)
        for (struct flowd_sched_group *g = s->groups.b[i]; g != NULL; g = g->next)
            if (g->waiting.n > 0)
                wake_one(s, g); /* one that waits for room here only goes back to waiting */
    dispatch(s);
}

void flowd_sched_answer(flowd_job_t *job, int verdict) {
    flowd_sched_t *s = job->sched.owner;
    if (s == NULL || job->sched.heap != &s->asking)
        return; /* taken meanwhile (canceled, or moved to another instance), or dropped at close */
    heap_remove(&s->asking, job->sched.idx);
    if (verdict == 0 && atomic_load(s->stopping)) {
        /* nothing starts any more: it stays queued in the store (its turn goes with the release) */
        struct flowd_sched_group *kg, *fg;
        uncount(s, job, &kg, &fg);
        group_release(s, kg);
        group_release(s, fg);
        if (heap_push(&s->ready, job) < 0)
            flowd_job_unref(job);
        return;
    }
    if (verdict == 0) {
        struct flowd_sched_group *kg = job->sched.key_group, *fg = job->sched.flow_group;
        s->start(s->data, job);
        /* the next ones of its groups may have a turn too */
        wake_one(s, kg);
        wake_one(s, fg);
        dispatch(s);
        return;
    }
    struct flowd_sched_group *kg, *fg;
    uncount(s, job, &kg, &fg);
    if (verdict == FLOWD_SCHED_FLOW_FULL && fg != NULL) {
        wait_for(s, job, fg);
        /* its key has room for the next one (as in dispatch) */
        wake_one(s, kg);
    } else if (kg != NULL) {
        wait_for(s, job, kg); /* the key's turn, or an error: it asks again when poked */
    } else {
        wait_for(s, job, fg);
    }
    group_release(s, kg);
    group_release(s, fg);
    dispatch(s);
}

void flowd_sched_add(flowd_sched_t *s, flowd_job_t *job) {
    if (job->gone || job->run.store_failed || job->restart.done || job->run.cancel_pending) {
        s->start(s->data, job); /* it only ends: it takes no room */
        return;
    }
    if (job->sched.resumed) {
        /* it was running: it goes on at once, counted */
        struct flowd_sched_group *kg = job->conc_key ? group_get(s, job, 1) : NULL;
        struct flowd_sched_group *fg = flow_limit(job) ? group_get(s, job, 0) : NULL;
        start(s, job, kg, fg);
        return;
    }
    if (job->start_at_us > flow_wall_us()) {
        int first = heap_top(&s->delayed) == NULL || by_time(job, heap_top(&s->delayed));
        if (heap_push(&s->delayed, job) < 0) {
            start_anyway(s, job);
        } else if (first) {
            arm(s);
        }
        return;
    }
    if (heap_push(&s->ready, job) < 0) {
        start_anyway(s, job);
        return;
    }
    dispatch(s);
}

/* An asking job leaves: its slots go, and what waited for them may go on. */
static void unask(flowd_sched_t *s, flowd_job_t *job) {
    struct flowd_sched_group *kg, *fg;
    heap_remove(&s->asking, job->sched.idx);
    uncount(s, job, &kg, &fg);
    if (!s->closed) {
        wake_one(s, kg);
        wake_one(s, fg);
    }
    group_release(s, kg);
    group_release(s, fg);
}

int flowd_sched_take(flowd_sched_t *s, flowd_job_t *job) {
    struct flowd_heap *h = job->sched.heap;
    if (h == NULL)
        return 0;
    if (h == &s->asking) {
        unask(s, job);
        dispatch(s);
        return 1;
    }
    int was_first = h == &s->delayed && job->sched.idx == 0;
    heap_remove(h, job->sched.idx);
    if (h->group != NULL)
        group_release(s, h->group);
    if (was_first)
        arm(s);
    return 1;
}

static void sched_free(flowd_sched_t *s) {
    free(s->delayed.v);
    free(s->ready.v);
    free(s->asking.v);
    for (size_t i = 0; i < s->groups.nb; i++) {
        struct flowd_sched_group *g = s->groups.b[i];
        while (g != NULL) {
            struct flowd_sched_group *next = g->next;
            free(g->waiting.v);
            free(g->name);
            free(g);
            g = next;
        }
    }
    free(s->groups.b);
    free(s);
}

void flowd_sched_done(flowd_job_t *job) {
    flowd_sched_t *s = job->sched.owner;
    if (!job->sched.slot || s == NULL)
        return;
    struct flowd_sched_group *kg = job->sched.key_group, *fg = job->sched.flow_group;
    job->sched.slot = 0;
    job->sched.owner = NULL;
    job->sched.key_group = job->sched.flow_group = NULL;
    s->running--;
    if (kg != NULL) {
        kg->running--;
        if (!s->closed)
            wake_one(s, kg);
        group_release(s, kg);
    }
    if (fg != NULL) {
        fg->running--;
        if (!s->closed)
            wake_one(s, fg);
        group_release(s, fg);
    }
    if (s->closed) {
        if (s->running == 0 && s->timer_closed)
            sched_free(s);
        return;
    }
    dispatch(s);
}

static void drop_all(struct flowd_heap *h) {
    flowd_job_t *job;
    while ((job = heap_pop(h)) != NULL)
        flowd_job_unref(job);
}

static void on_closed(uv_handle_t *h) {
    flowd_sched_t *s = h->data;
    s->timer_closed = 1;
    if (s->running == 0)
        sched_free(s);
}

void flowd_sched_close(flowd_sched_t *s) {
    s->closed = 1;
    while (s->asking.n > 0) { /* their answers, if any come, find them gone */
        flowd_job_t *job = s->asking.v[0];
        unask(s, job);
        flowd_job_unref(job);
    }
    drop_all(&s->delayed);
    drop_all(&s->ready);
    for (size_t i = 0; i < s->groups.nb; i++)
        for (struct flowd_sched_group *g = s->groups.b[i]; g != NULL; g = g->next)
            drop_all(&g->waiting);
    uv_close((uv_handle_t *)&s->timer, on_closed);
}
