/* webhooks.c: the callbacks of webhooks.h. HMAC-SHA256 and base64 are OpenSSL's libcrypto, the
 * requests lib's HTTP client (flow/http.h, libcurl on the loop, under the outbound policy), the
 * JSON jansson's and jsonw's. Written here: the secrets file's line format (no library knows it),
 * the backoff (a few lines) and the book-keeping of deliveries.
 *
 * A delivery is held by the module while it is owed (its timer, its try in flight) and by its job's
 * record (for GET /v1/jobs/{id}/deliveries); it is freed when both have let it go. While it is owed
 * it holds a reference to its record, so that its state can be written under the record's lock. */
#include "webhooks.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <uv.h>

#include "auth.h"
#include "core.h"
#include "flow/http.h"
#include "flow/queue.h"
#include "log.h"
#include "render.h"

#define SECRETS_FILE_MAX ((size_t)1 << 20) /* bytes of the secrets file */
#define SECRET_MIN 24                      /* bytes of a secret, as the specification says */
#define SECRET_MAX 64
#define SECRET_PREFIX "whsec_"
#define ANSWER_MAX 4096   /* bytes of a receiver's answer read (only its status matters) */
#define ERROR_MAX 240     /* bytes of a try's error kept */
#define SIG_PER_SECRET 64 /* "v1," and 44 of base64, a space: with room */

enum { D_PENDING = 0, D_DELIVERED, D_FAILED, D_GONE };
static const char *const state_names[] = {"pending", "delivered", "failed", "gone"};

static const struct {
    const char *name;
    unsigned bit;
    flow_status_t status;
} events[] = {
    {"succeeded", FLOWD_HOOK_SUCCEEDED, FLOW_SUCCEEDED},
    {"failed", FLOWD_HOOK_FAILED, FLOW_FAILED},
    {"canceled", FLOWD_HOOK_CANCELED, FLOW_CANCELED},
    {"waiting", FLOWD_HOOK_WAITING, FLOW_WAITING},
};
#define NEVENTS (sizeof events / sizeof events[0])

typedef struct secret {
    char tenant[FLOWD_NAME_MAX + 1];
    unsigned char key[SECRET_MAX];
    size_t len;
} secret_t;

typedef struct secretset {
    secret_t *s;
    size_t n;
} secretset_t;

typedef struct try_rec {
    uint64_t at_us;
    long status;        /* 0: no answer */
    uint64_t ms;        /* how long it took */
    char error[ERROR_MAX]; /* "": none */
} try_rec_t;

struct flowd_delivery {
    atomic_uint refs;
    flowd_delivery_t *next;        /* in its record's list (under the record's lock) */
    /* Immutable once made. */
    char id[FLOWD_ID_LEN + 64];
    char job_id[FLOWD_ID_LEN + 1];
    char tenant[FLOWD_NAME_MAX + 1];
    char type[24];
    char *url, *body;
    size_t body_len;
    uint64_t created_us;
    /* Under the record's lock (loop only without one): written by the loop, read by GET. */
    int state;
    unsigned attempts;
    uint64_t next_us;
    long last_status;
    try_rec_t tries[FLOWD_WEBHOOK_TRIES_KEPT]; /* a ring: the try n is at (n - 1) % KEPT */
    /* Loop only. */
    flowd_webhooks_t *w;
    flowd_job_t *job;              /* a reference while owed; NULL without a record */
    flow_queue_t all;              /* in w->all while owed */
    flow_queue_t wait;             /* in w->queue while due and waiting for a slot */
    int queued;
    uv_timer_t timer;
    int timer_open;
    flow_http_req_t *req;          /* the try in flight */
    uint64_t sent_ms;
};

struct flowd_webhooks {
    flowd_server_t *srv;
    char *path;                    /* the secrets file; NULL: none */
    pthread_rwlock_t lock;         /* over secrets */
    secretset_t *secrets;
    /* loop only */
    flow_queue_t all;              /* deliveries owed */
    flow_queue_t queue;            /* due, waiting for one of --webhook-in-flight */
    _Atomic size_t pending;        /* written by the loop, read by a store's thread (room) */
    size_t in_flight;
    _Atomic int stopped;           /* loop writes; a store thread reads (room) */
};

/* ---- secrets ---- */

static void secretset_free(secretset_t *ss) {
    if (ss == NULL)
        return;
    OPENSSL_cleanse(ss->s, ss->n * sizeof *ss->s);
    free(ss->s);
    free(ss);
}

int flowd_webhook_secret_decode(const char *text, unsigned char out[64], size_t *len) {
    size_t plen = strlen(SECRET_PREFIX);
    if (strncmp(text, SECRET_PREFIX, plen) != 0)
        return -1;
    const char *b64 = text + plen;
    size_t n = strlen(b64);
    /* base64 of 24 to 64 bytes: 32 to 88 characters, a multiple of 4 */
    if (n < 32 || n > 88 || n % 4 != 0)
        return -1;
    unsigned char buf[66];
    int got = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)n);
    if (got < 0)
        return -1;
    size_t pad = (b64[n - 1] == '=') + (b64[n - 2] == '=');
    size_t bytes = (size_t)got - pad;
    if (bytes < SECRET_MIN || bytes > SECRET_MAX)
        return -1;
    memcpy(out, buf, bytes);
    OPENSSL_cleanse(buf, sizeof buf);
    *len = bytes;
    return 0;
}

static int valid_tenant(const char *s) {
    size_t n = strlen(s);
    return n > 0 && n <= FLOWD_NAME_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* The secrets of the file's text: 0, or FLOW_EINVAL with "path:line: why". */
static int parse_secrets(const char *path, char *text, secretset_t **out, char *err,
                         size_t errlen) {
    secretset_t *ss = calloc(1, sizeof *ss);
    size_t cap = 0;
    unsigned line = 0;
    int rc = FLOW_ENOMEM;
    if (ss == NULL)
        goto fail;
    for (char *p = text, *next; p != NULL && *p != '\0'; p = next) {
        line++;
        next = strchr(p, '\n');
        if (next != NULL)
            *next++ = '\0';
        char *hash = strchr(p, '#');
        if (hash != NULL)
            *hash = '\0';
        char *save = NULL;
        char *tenant = strtok_r(p, " \t\r", &save);
        if (tenant == NULL)
            continue;
        char *secret = strtok_r(NULL, " \t\r", &save);
        char *extra = secret ? strtok_r(NULL, " \t\r", &save) : NULL;
        rc = FLOW_EINVAL;
        if (secret == NULL || extra != NULL) {
            snprintf(err, errlen, "%s:%u: a line is `<tenant> whsec_<base64>`", path, line);
            goto fail;
        }
        if (!valid_tenant(tenant)) {
            snprintf(err, errlen, "%s:%u: a tenant is 1 to %d of A-Z a-z 0-9 . _ -", path, line,
                     FLOWD_NAME_MAX);
            goto fail;
        }
        if (ss->n == FLOWD_WEBHOOK_SECRETS_MAX) {
            snprintf(err, errlen, "%s:%u: more than %d secrets", path, line,
                     FLOWD_WEBHOOK_SECRETS_MAX);
            goto fail;
        }
        if (ss->n == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            secret_t *s = realloc(ss->s, ncap * sizeof *s);
            if (s == NULL) {
                rc = FLOW_ENOMEM;
                goto fail;
            }
            ss->s = s;
            cap = ncap;
        }
        secret_t *s = &ss->s[ss->n];
        if (flowd_webhook_secret_decode(secret, s->key, &s->len) < 0) {
            snprintf(err, errlen,
                     "%s:%u: a secret is whsec_ and the base64 of %d to %d random bytes (make one: "
                     "echo whsec_$(openssl rand -base64 32))",
                     path, line, SECRET_MIN, SECRET_MAX);
            goto fail;
        }
        snprintf(s->tenant, sizeof s->tenant, "%s", tenant);
        ss->n++;
    }
    *out = ss;
    return 0;
fail:
    if (rc == FLOW_ENOMEM)
        snprintf(err, errlen, "out of memory");
    secretset_free(ss);
    return rc;
}

static int read_secrets(const char *path, secretset_t **out, char *err, size_t errlen) {
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return FLOW_EIO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0)
        flowd_log(FLOW_LOG_WARN, "%s: others than its owner may read it (chmod 600 %s)", path, path);
    char *text = malloc(SECRETS_FILE_MAX + 1);
    if (text == NULL) {
        fclose(f);
        snprintf(err, errlen, "out of memory");
        return FLOW_ENOMEM;
    }
    size_t n = fread(text, 1, SECRETS_FILE_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    int rc;
    if (bad) {
        snprintf(err, errlen, "cannot read %s", path);
        rc = FLOW_EIO;
    } else if (n > SECRETS_FILE_MAX) {
        snprintf(err, errlen, "%s is over %zu bytes", path, SECRETS_FILE_MAX);
        rc = FLOW_EINVAL;
    } else {
        text[n] = '\0';
        rc = parse_secrets(path, text, out, err, errlen);
    }
    OPENSSL_cleanse(text, n);
    free(text);
    return rc;
}

int flowd_webhooks_new(flowd_server_t *srv, flowd_webhooks_t **out, char *err, size_t errlen) {
    flowd_webhooks_t *w = calloc(1, sizeof *w);
    if (w == NULL) {
        snprintf(err, errlen, "out of memory");
        return FLOW_ENOMEM;
    }
    w->srv = srv;
    pthread_rwlock_init(&w->lock, NULL);
    flow_queue_init(&w->all);
    flow_queue_init(&w->queue);
    const char *path = srv->cfg.webhook_secrets;
    if (path[0] != '\0') {
        int rc;
        if ((w->path = strdup(path)) == NULL) {
            snprintf(err, errlen, "out of memory");
            rc = FLOW_ENOMEM;
        } else {
            rc = read_secrets(path, &w->secrets, err, errlen);
        }
        if (rc < 0) {
            flowd_webhooks_free(w);
            return rc;
        }
        flowd_log(FLOW_LOG_INFO, "webhooks: %zu secrets from %s", w->secrets->n, path);
    }
    *out = w;
    return 0;
}

void flowd_webhooks_free(flowd_webhooks_t *w) {
    if (w == NULL)
        return;
    secretset_free(w->secrets);
    pthread_rwlock_destroy(&w->lock);
    free(w->path);
    free(w);
}

int flowd_webhooks_reload(flowd_webhooks_t *w) {
    if (w->path == NULL)
        return 0;
    secretset_t *ss = NULL;
    char err[512];
    int rc = read_secrets(w->path, &ss, err, sizeof err);
    if (rc < 0) {
        flowd_log(FLOW_LOG_ERROR, "webhooks: the secrets stay as they were: %s", err);
        return rc;
    }
    pthread_rwlock_wrlock(&w->lock);
    secretset_t *old = w->secrets;
    w->secrets = ss;
    pthread_rwlock_unlock(&w->lock);
    secretset_free(old);
    flowd_log(FLOW_LOG_INFO, "webhooks: %zu secrets from %s", ss->n, w->path);
    return 0;
}

int flowd_webhooks_has_secret(flowd_webhooks_t *w, const char *tenant) {
    int found = 0;
    pthread_rwlock_rdlock(&w->lock);
    for (size_t i = 0; w->secrets != NULL && i < w->secrets->n && !found; i++)
        found = strcmp(w->secrets->s[i].tenant, tenant) == 0;
    pthread_rwlock_unlock(&w->lock);
    return found;
}

/* ---- signing ---- */

int flowd_webhook_sign(const unsigned char *const *secrets, const size_t *lens, size_t n,
                       const char *id, uint64_t timestamp, const char *body, size_t len, char *out,
                       size_t cap) {
    char ts[24];
    int tslen = snprintf(ts, sizeof ts, "%" PRIu64, timestamp);
    size_t idlen = strlen(id), total = idlen + 1 + (size_t)tslen + 1 + len;
    if (cap < n * SIG_PER_SECRET + 1)
        return FLOW_ETOOBIG;
    /* what is signed is "id.timestamp.body": one buffer, as HMAC() takes it */
    unsigned char *msg = malloc(total);
    if (msg == NULL)
        return FLOW_ENOMEM;
    memcpy(msg, id, idlen);
    msg[idlen] = '.';
    memcpy(msg + idlen + 1, ts, (size_t)tslen);
    msg[idlen + 1 + (size_t)tslen] = '.';
    memcpy(msg + idlen + 2 + (size_t)tslen, body, len);
    size_t at = 0;
    int rc = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned maclen = 0;
        if (HMAC(EVP_sha256(), secrets[i], (int)lens[i], msg, total, mac, &maclen) == NULL) {
            rc = FLOW_EIO;
            break;
        }
        if (i > 0)
            out[at++] = ' ';
        memcpy(out + at, "v1,", 3);
        at += 3;
        at += (size_t)EVP_EncodeBlock((unsigned char *)out + at, mac, (int)maclen);
        out[at] = '\0';
    }
    free(msg);
    return rc;
}

/* The signature of a try by every secret of tenant, into out; 0 when it has none. */
static size_t sign_for(flowd_webhooks_t *w, const flowd_delivery_t *d, uint64_t ts, char *out,
                       size_t cap) {
    const unsigned char *keys[FLOWD_WEBHOOK_SECRETS_MAX];
    size_t lens[FLOWD_WEBHOOK_SECRETS_MAX], n = 0;
    pthread_rwlock_rdlock(&w->lock);
    for (size_t i = 0; w->secrets != NULL && i < w->secrets->n; i++) {
        if (strcmp(w->secrets->s[i].tenant, d->tenant) == 0 && (n + 1) * SIG_PER_SECRET < cap) {
            keys[n] = w->secrets->s[i].key;
            lens[n++] = w->secrets->s[i].len;
        }
    }
    int rc = n > 0 ? flowd_webhook_sign(keys, lens, n, d->id, ts, d->body, d->body_len, out, cap)
                   : 0;
    pthread_rwlock_unlock(&w->lock);
    return rc < 0 ? 0 : n;
}

/* ---- callbacks as POST gives them ---- */

int flowd_callback_parse(const json_t *cb, char **text, char **url, unsigned *events_out,
                         char *why, size_t cap) {
    *text = *url = NULL;
    if (!json_is_object(cb)) {
        snprintf(why, cap, "field 'callback' must be an object: {\"url\": ..., \"events\": [...]}");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)cb, key, v) {
        if (strcmp(key, "url") != 0 && strcmp(key, "events") != 0) {
            snprintf(why, cap, "unknown field '%.64s' in 'callback' (it takes url and events)", key);
            return -1;
        }
    }
    json_t *u = json_object_get(cb, "url"), *ev = json_object_get(cb, "events");
    const char *s = json_string_value(u);
    if (s == NULL) {
        snprintf(why, cap, "'callback' needs 'url', a string: the http:// or https:// URL to POST to");
        return -1;
    }
    size_t n = json_string_length(u);
    int https = strncmp(s, "https://", 8) == 0;
    if (!https && strncmp(s, "http://", 7) != 0) {
        snprintf(why, cap, "callback url must start with http:// or https://");
        return -1;
    }
    if (n > FLOWD_CALLBACK_URL_MAX || strlen(s) != n) {
        snprintf(why, cap, "callback url must be at most %d bytes, without NUL",
                 FLOWD_CALLBACK_URL_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f) {
            snprintf(why, cap, "callback url must not hold spaces or control characters");
            return -1;
        }
    }
    const char *host = s + (https ? 8 : 7);
    if (*host == '\0' || *host == '/' || *host == '?' || *host == '#' || *host == ':') {
        snprintf(why, cap, "callback url needs a host");
        return -1;
    }
    unsigned mask = 0;
    if (ev == NULL) {
        mask = FLOWD_HOOK_DEFAULT;
    } else if (!json_is_array(ev) || json_array_size(ev) == 0) {
        snprintf(why, cap, "callback events must be a non-empty array of succeeded, failed, "
                           "canceled, waiting");
        return -1;
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(ev, i, e) {
            size_t k = 0;
            while (k < NEVENTS && !(json_is_string(e) && strcmp(json_string_value(e), events[k].name) == 0))
                k++;
            if (k == NEVENTS) {
                snprintf(why, cap, "callback events: unknown event '%.32s' (it takes succeeded, "
                                   "failed, canceled, waiting)",
                         json_is_string(e) ? json_string_value(e) : "(not a string)");
                return -1;
            }
            mask |= events[k].bit;
        }
    }
    json_t *norm = json_object(), *list = json_array();
    for (size_t k = 0; k < NEVENTS; k++)
        if (mask & events[k].bit)
            json_array_append_new(list, json_string(events[k].name));
    json_object_set_new(norm, "url", json_stringn(s, n));
    json_object_set_new(norm, "events", list);
    *text = json_dumps(norm, JSON_COMPACT);
    json_decref(norm);
    *url = strndup(s, n);
    *events_out = mask;
    if (*text == NULL || *url == NULL) {
        free(*text);
        free(*url);
        *text = *url = NULL;
        snprintf(why, cap, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- deliveries ---- */

static void delivery_unref(flowd_delivery_t *d) {
    if (d != NULL && atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1) {
        free(d->url);
        free(d->body);
        free(d);
    }
}

/* A record's list, as the record is freed (jobs.h: deliveries_free). */
static void deliveries_release(flowd_delivery_t *list) {
    while (list != NULL) {
        flowd_delivery_t *next = list->next;
        delivery_unref(list);
        list = next;
    }
}

/* d goes first in its record's list, which holds a reference to it (the record's lock held). */
static void record_holds(flowd_job_t *job, flowd_delivery_t *d) {
    atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
    d->next = job->deliveries;
    job->deliveries = d;
    job->deliveries_free = deliveries_release;
}

static void lock(flowd_delivery_t *d) {
    if (d->job != NULL)
        flowd_job_lock(d->job);
}

static void unlock(flowd_delivery_t *d) {
    if (d->job != NULL)
        flowd_job_unlock(d->job);
}

static char *tries_json(const flowd_delivery_t *d) {
    json_t *a = json_array();
    unsigned first = d->attempts > FLOWD_WEBHOOK_TRIES_KEPT ? d->attempts - FLOWD_WEBHOOK_TRIES_KEPT : 0;
    for (unsigned n = first + 1; n <= d->attempts; n++) {
        const try_rec_t *t = &d->tries[(n - 1) % FLOWD_WEBHOOK_TRIES_KEPT];
        json_array_append_new(a, json_pack("{sIsIsIss?}", "at_us", (json_int_t)t->at_us,
                                           "status", (json_int_t)t->status, "ms", (json_int_t)t->ms,
                                           "error", t->error[0] ? t->error : NULL));
    }
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return text;
}

static void tries_from(flowd_delivery_t *d, const char *text) {
    json_t *a = text ? json_loads(text, 0, NULL) : NULL;
    size_t n = json_array_size(a);
    /* the last ones, numbered as they were: the try attempts is the array's last */
    for (size_t i = 0; i < n && i < d->attempts; i++) {
        json_t *t = json_array_get(a, i);
        unsigned num = d->attempts - (unsigned)(n - 1 - i);
        try_rec_t *r = &d->tries[(num - 1) % FLOWD_WEBHOOK_TRIES_KEPT];
        r->at_us = (uint64_t)json_integer_value(json_object_get(t, "at_us"));
        r->status = (long)json_integer_value(json_object_get(t, "status"));
        r->ms = (uint64_t)json_integer_value(json_object_get(t, "ms"));
        snprintf(r->error, sizeof r->error, "%s",
                 json_string_value(json_object_get(t, "error")) ? json_string_value(json_object_get(t, "error")) : "");
    }
    json_decref(a);
}

/* To the store: a new delivery (insert), or its state after a try. */
static void store_write(flowd_webhooks_t *w, flowd_delivery_t *d, int insert) {
    flowd_store_t *store = w->srv->store;
    if (store == NULL || store->ops->delivery == NULL)
        return;
    char *tries = tries_json(d);
    const try_rec_t *last = d->attempts ? &d->tries[(d->attempts - 1) % FLOWD_WEBHOOK_TRIES_KEPT] : NULL;
    flowd_stored_delivery_t s = {.id = d->id,
                                 .job = d->job_id,
                                 .tenant = d->tenant,
                                 .url = d->url,
                                 .type = d->type,
                                 .body = d->body,
                                 .created_us = d->created_us,
                                 .state = state_names[d->state],
                                 .attempts = d->attempts,
                                 .next_us = d->next_us,
                                 .last_status = d->last_status,
                                 .last_error = last && last->error[0] ? last->error : NULL,
                                 .tries = tries};
    store->ops->delivery(store, &s, insert);
    free(tries);
}

static void send_try(flowd_delivery_t *d);

static void on_timer(uv_timer_t *t) {
    send_try(t->data);
}

static void on_timer_closed(uv_handle_t *h) {
    delivery_unref(h->data); /* the module's reference */
}

/* Loop: the delivery is over (state written): the module lets it go. */
static void over(flowd_delivery_t *d) {
    flowd_webhooks_t *w = d->w;
    flow_queue_remove(&d->all);
    if (d->queued) {
        flow_queue_remove(&d->wait);
        d->queued = 0;
    }
    w->pending--;
    flowd_job_unref(d->job); /* the record keeps the delivery in its list */
    d->job = NULL;
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

/* Full jitter: a random wait between 0 and the first wait doubled for each try before, capped. */
static uint64_t backoff_ms(const flowd_config_t *cfg, unsigned attempts) {
    uint64_t base = cfg->webhook_wait_ms;
    for (unsigned i = 1; i < attempts && base < cfg->webhook_max_wait_ms; i++)
        base *= 2;
    if (base > cfg->webhook_max_wait_ms)
        base = cfg->webhook_max_wait_ms;
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = uv_hrtime() * 0x9E3779B97F4A7C15ull; /* no randomness yet: the clock still spreads */
    return r % (base + 1);
}

/* Loop: a try ended with status (0: none) and error ("" none): what comes next. */
static void tried(flowd_delivery_t *d, long status, const char *error) {
    flowd_webhooks_t *w = d->w;
    const flowd_config_t *cfg = &w->srv->cfg;
    uint64_t now_us = flow_wall_us(), ms = uv_now(&w->srv->loop) - d->sent_ms;
    uint64_t wait = 0;
    int state;
    flowd_webhook_outcome_t outcome;
    if (status >= 200 && status < 300) {
        state = D_DELIVERED;
        outcome = FLOWD_WEBHOOK_DELIVERED;
    } else if (status == 410) {
        state = D_GONE;
        outcome = FLOWD_WEBHOOK_GONE;
    } else {
        wait = backoff_ms(cfg, d->attempts + 1);
        if (now_us + wait * 1000 > d->created_us + cfg->webhook_max_age_ms * 1000) {
            state = D_FAILED;
            outcome = FLOWD_WEBHOOK_FAILED;
        } else {
            state = D_PENDING;
            outcome = FLOWD_WEBHOOK_RETRIED;
        }
    }
    lock(d);
    d->attempts++;
    try_rec_t *t = &d->tries[(d->attempts - 1) % FLOWD_WEBHOOK_TRIES_KEPT];
    t->at_us = now_us;
    t->status = status;
    t->ms = ms;
    snprintf(t->error, sizeof t->error, "%s", error);
    if (status == 0 || state == D_PENDING || state == D_FAILED) {
        if (error[0] == '\0')
            snprintf(t->error, sizeof t->error, "the receiver answered %ld", status);
        if (state == D_FAILED) {
            size_t l = strlen(t->error);
            snprintf(t->error + l, sizeof t->error - l, "; no more tries (--webhook-max-age)");
        }
    }
    d->last_status = status;
    d->state = state;
    d->next_us = state == D_PENDING ? now_us + wait * 1000 : 0;
    unlock(d);
    flowd_metrics_webhook(w->srv->metrics, outcome);
    store_write(w, d, 0);
    if (state == D_PENDING) {
        uv_timer_start(&d->timer, on_timer, wait, 0);
        return;
    }
    if (state != D_DELIVERED)
        flowd_log(FLOW_LOG_WARN, "webhook %s of job %s: %s after %u tries: %s", d->id, d->job_id,
                  state_names[state], d->attempts, t->error);
    over(d);
}

/* Loop: the next due delivery that waited for a slot goes. */
static void next_queued(flowd_webhooks_t *w) {
    while (!w->stopped && w->in_flight < w->srv->cfg.webhook_in_flight && !flow_queue_empty(&w->queue)) {
        flow_queue_t *q = flow_queue_head(&w->queue);
        flowd_delivery_t *d = FLOW_QUEUE_DATA(q, flowd_delivery_t, wait);
        flow_queue_remove(q);
        d->queued = 0;
        send_try(d);
    }
}

static void on_answer(flow_http_req_t *req, int err, const char *message,
                      const flow_http_response_t *res, void *data) {
    flowd_delivery_t *d = data;
    flowd_webhooks_t *w = d->w;
    (void)req;
    d->req = NULL;
    w->in_flight--;
    long status = res ? res->status : 0;
    /* an answer too long to read still said its status */
    if (err != 0 && !(err == FLOW_ETOOBIG && status != 0))
        status = 0;
    char error[ERROR_MAX] = "";
    if (status == 0)
        snprintf(error, sizeof error, "%s", message ? message : flow_strerror(err));
    tried(d, status, error);
    next_queued(w);
}

static void send_try(flowd_delivery_t *d) {
    flowd_webhooks_t *w = d->w;
    if (w->stopped)
        return;
    if (w->in_flight >= w->srv->cfg.webhook_in_flight) {
        if (!d->queued) {
            flow_queue_insert_tail(&w->queue, &d->wait);
            d->queued = 1;
        }
        return;
    }
    d->sent_ms = uv_now(&w->srv->loop);
    uint64_t ts = flow_wall_us() / 1000000;
    char sig[FLOWD_WEBHOOK_SECRETS_MAX * SIG_PER_SECRET / 10 + 1];
    if (sign_for(w, d, ts, sig, sizeof sig) == 0) {
        char why[ERROR_MAX];
        snprintf(why, sizeof why, "no secret for tenant '%s' to sign with (--webhook-secrets)",
                 d->tenant);
        tried(d, 0, why);
        return;
    }
    size_t sig_cap = strlen(sig) + 24;
    char h_id[sizeof d->id + 16], h_ts[48], *h_sig = malloc(sig_cap);
    if (h_sig == NULL) {
        tried(d, 0, "out of memory");
        return;
    }
    snprintf(h_id, sizeof h_id, "webhook-id: %s", d->id);
    snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %" PRIu64, ts);
    snprintf(h_sig, sig_cap, "webhook-signature: %s", sig);
    /* no "Expect: 100-continue": a receiver that does not know it would make every try wait */
    const char *headers[] = {"Content-Type: application/json", h_id, h_ts, h_sig, "Expect:", NULL};
    flow_http_request_t r = {.method = "POST",
                             .url = d->url,
                             .headers = headers,
                             .body = d->body,
                             .body_len = d->body_len,
                             .timeout_ms = w->srv->cfg.webhook_timeout_ms,
                             .max_body = ANSWER_MAX};
    int rc = flow_http_send(w->srv->client, &r, on_answer, d, &d->req);
    free(h_sig);
    if (rc < 0) {
        char why[ERROR_MAX];
        snprintf(why, sizeof why, "the request could not be sent: %s", flow_strerror(rc));
        d->req = NULL;
        tried(d, 0, why);
        return;
    }
    w->in_flight++;
}

/* A new delivery with one reference (the module's); NULL when out of memory. */
static flowd_delivery_t *delivery_new(flowd_webhooks_t *w, const char *id, const char *job_id,
                                      const char *tenant, const char *type, const char *url,
                                      char *body, size_t body_len, uint64_t created_us) {
    flowd_delivery_t *d = calloc(1, sizeof *d);
    if (d == NULL || (d->url = strdup(url)) == NULL) {
        free(d);
        free(body);
        return NULL;
    }
    atomic_init(&d->refs, 1);
    snprintf(d->id, sizeof d->id, "%s", id);
    snprintf(d->job_id, sizeof d->job_id, "%s", job_id);
    snprintf(d->tenant, sizeof d->tenant, "%s", tenant);
    snprintf(d->type, sizeof d->type, "%s", type);
    d->body = body;
    d->body_len = body_len;
    d->created_us = created_us;
    d->w = w;
    flow_queue_init(&d->all);
    flow_queue_init(&d->wait);
    uv_timer_init(&w->srv->loop, &d->timer);
    d->timer.data = d;
    return d;
}

/* Under the record's lock: whether its list holds a delivery of this id. */
static int known_locked(flowd_job_t *job, const char *id) {
    for (flowd_delivery_t *d = job->deliveries; d != NULL; d = d->next)
        if (strcmp(d->id, id) == 0)
            return 1;
    return 0;
}

/* The event's body: {"type", "timestamp", "data": the Job object}, compact. */
static char *event_body(flowd_job_t *job, const char *type, uint64_t at_us, size_t *len) {
    flow_buf_t b;
    flowd_jw_t jw;
    char when[32];
    flow_buf_init(&b, 0);
    flowd_jw_init(&jw, &b, 0);
    flowd_format_time(at_us, when);
    flowd_jw_obj(&jw);
    flowd_jw_key(&jw, "type");
    flowd_jw_str(&jw, type);
    flowd_jw_key(&jw, "timestamp");
    flowd_jw_str(&jw, when);
    flowd_jw_key(&jw, "data");
    flowd_render_job(&jw, job, NULL);
    flowd_jw_obj_end(&jw);
    return flow_buf_take(&b, len);
}

void flowd_webhooks_job_changed(flowd_webhooks_t *w, flowd_job_t *job, flow_status_t status) {
    if (w == NULL || w->stopped || job->callback_url == NULL)
        return;
    size_t k = 0;
    while (k < NEVENTS && events[k].status != status)
        k++;
    if (k == NEVENTS || !(job->callback_events & events[k].bit))
        return;
    char type[24], id[FLOWD_ID_LEN + 64];
    snprintf(type, sizeof type, "job.%s", events[k].name);
    flowd_job_lock(job);
    /* the same job, step count and event make the same id: after a crash, the job that runs its
     * last node again makes the delivery it had made before */
    snprintf(id, sizeof id, "msg_%s_%" PRIu64 "_%s", job->id, job->steps, events[k].name);
    int known = known_locked(job, id);
    flowd_job_unlock(job);
    if (known)
        return;
    if (w->pending >= w->srv->cfg.webhook_max_pending) {
        flowd_log(FLOW_LOG_WARN, "webhook %s of job %s dropped: %zu deliveries are owed "
                  "(--webhook-max-pending)", id, job->id, w->pending);
        flowd_metrics_webhook(w->srv->metrics, FLOWD_WEBHOOK_DROPPED);
        return;
    }
    uint64_t now = flow_wall_us();
    size_t len = 0;
    char *body = event_body(job, type, now, &len);
    flowd_delivery_t *d = body ? delivery_new(w, id, job->id, job->tenant, type, job->callback_url,
                                              body, len, now)
                               : NULL;
    if (d == NULL) {
        flowd_log(FLOW_LOG_WARN, "webhook %s of job %s dropped: out of memory", id, job->id);
        flowd_metrics_webhook(w->srv->metrics, FLOWD_WEBHOOK_DROPPED);
        return;
    }
    d->job = flowd_job_ref(job);
    flowd_job_lock(job);
    record_holds(job, d);
    flowd_job_unlock(job);
    flow_queue_insert_tail(&w->all, &d->all);
    w->pending++;
    store_write(w, d, 1); /* before the job's own write of this change: see webhooks.h */
    send_try(d);
}

/* ---- at start ---- */

static int state_of(const char *name) {
    for (int i = 0; i < 4; i++)
        if (name != NULL && strcmp(name, state_names[i]) == 0)
            return i;
    return D_FAILED;
}

static int load_one(void *data, const flowd_stored_delivery_t *s) {
    flowd_webhooks_t *w = data;
    int state = state_of(s->state);
    flowd_job_t *job = flowd_jobs_get(w->srv->jobs, s->job, strlen(s->job));
    if (job == NULL && state != D_PENDING)
        return 0; /* over, and its job is gone: nothing shows it */
    char *body = strdup(s->body ? s->body : "{}");
    flowd_delivery_t *d = body ? delivery_new(w, s->id, s->job, s->tenant ? s->tenant : FLOWD_DEFAULT_TENANT,
                                              s->type ? s->type : "", s->url ? s->url : "", body,
                                              strlen(body), s->created_us)
                               : NULL;
    if (d == NULL) {
        flowd_job_unref(job);
        return FLOW_ENOMEM;
    }
    d->state = state;
    d->attempts = s->attempts;
    d->next_us = s->next_us;
    d->last_status = s->last_status;
    tries_from(d, s->tries);
    if (job != NULL) {
        flowd_job_lock(job);
        if (!known_locked(job, d->id))
            record_holds(job, d);
        flowd_job_unlock(job);
    }
    if (state != D_PENDING) {
        flowd_job_unref(job);
        uv_close((uv_handle_t *)&d->timer, on_timer_closed);
        return 0;
    }
    d->job = job; /* the reference from flowd_jobs_get */
    flow_queue_insert_tail(&w->all, &d->all);
    w->pending++;
    uint64_t now = flow_wall_us();
    uv_timer_start(&d->timer, on_timer, d->next_us > now ? (d->next_us - now) / 1000 : 0, 0);
    return 0;
}

int flowd_webhooks_adopt(flowd_webhooks_t *w, const flowd_stored_delivery_t *d) {
    if (w == NULL || w->stopped)
        return 0; /* ours in the store until shutdown releases it */
    flow_queue_t *q;
    FLOW_QUEUE_FOREACH(q, &w->all) {
        if (strcmp(FLOW_QUEUE_DATA(q, flowd_delivery_t, all)->id, d->id) == 0)
            return 0; /* still owed here: our lease of it ran out while we held it */
    }
    return load_one(w, d);
}

uint64_t flowd_webhooks_room(flowd_webhooks_t *w) {
    size_t pending = atomic_load(&w->pending), max = w->srv->cfg.webhook_max_pending;
    return w->stopped || pending >= max ? 0 : max - pending;
}

int flowd_webhooks_load(flowd_webhooks_t *w) {
    flowd_store_t *store = w->srv->store;
    if (store->ops->load_deliveries == NULL)
        return 0;
    int rc = store->ops->load_deliveries(store, load_one, w);
    if (rc == 0 && w->pending > 0)
        flowd_log(FLOW_LOG_INFO, "webhooks: %zu deliveries still owed", w->pending);
    return rc;
}

void flowd_webhooks_stop(flowd_webhooks_t *w) {
    if (w == NULL || w->stopped)
        return;
    w->stopped = 1;
    while (!flow_queue_empty(&w->all)) {
        flowd_delivery_t *d = FLOW_QUEUE_DATA(flow_queue_head(&w->all), flowd_delivery_t, all);
        if (d->req != NULL) {
            flow_http_abort(d->req); /* its callback never runs: the store keeps it owed */
            d->req = NULL;
            w->in_flight--;
        }
        over(d);
    }
}

/* ---- GET /v1/jobs/{id}/deliveries ---- */

/* One Delivery object (under its record's lock). */
static void render_one(flowd_jw_t *jw, const flowd_delivery_t *d) {
    flowd_jw_obj(jw);
    flowd_jw_key(jw, "id");
    flowd_jw_str(jw, d->id);
    flowd_jw_key(jw, "type");
    flowd_jw_str(jw, d->type);
    flowd_jw_key(jw, "state");
    flowd_jw_str(jw, state_names[d->state]);
    flowd_jw_key(jw, "created");
    flowd_jw_time(jw, d->created_us);
    flowd_jw_key(jw, "attempts");
    flowd_jw_uint(jw, d->attempts);
    flowd_jw_key(jw, "next_try");
    flowd_jw_time(jw, d->state == D_PENDING ? (d->next_us ? d->next_us : d->created_us) : 0);
    flowd_jw_key(jw, "last_status");
    if (d->attempts > 0 && d->last_status != 0)
        flowd_jw_int(jw, d->last_status);
    else
        flowd_jw_null(jw);
    const try_rec_t *last =
        d->attempts ? &d->tries[(d->attempts - 1) % FLOWD_WEBHOOK_TRIES_KEPT] : NULL;
    flowd_jw_key(jw, "last_error");
    flowd_jw_str(jw, last && last->error[0] ? last->error : NULL);
    flowd_jw_key(jw, "tries");
    flowd_jw_arr(jw);
    unsigned first = d->attempts > FLOWD_WEBHOOK_TRIES_KEPT ? d->attempts - FLOWD_WEBHOOK_TRIES_KEPT : 0;
    for (unsigned n = first + 1; n <= d->attempts; n++) {
        const try_rec_t *t = &d->tries[(n - 1) % FLOWD_WEBHOOK_TRIES_KEPT];
        flowd_jw_obj(jw);
        flowd_jw_key(jw, "attempt");
        flowd_jw_uint(jw, n);
        flowd_jw_key(jw, "at");
        flowd_jw_time(jw, t->at_us);
        flowd_jw_key(jw, "status");
        if (t->status != 0)
            flowd_jw_int(jw, t->status);
        else
            flowd_jw_null(jw);
        flowd_jw_key(jw, "duration_ms");
        flowd_jw_uint(jw, t->ms);
        flowd_jw_key(jw, "error");
        flowd_jw_str(jw, t->error[0] ? t->error : NULL);
        flowd_jw_obj_end(jw);
    }
    flowd_jw_arr_end(jw);
    flowd_jw_obj_end(jw);
}

void flowd_webhooks_render_begin(flowd_jw_t *jw, const char *job_id, const char *callback) {
    flowd_jw_obj(jw);
    flowd_jw_key(jw, "job");
    flowd_jw_str(jw, job_id);
    flowd_jw_key(jw, "callback");
    flowd_jw_raw(jw, callback, callback ? strlen(callback) : 0);
    flowd_jw_key(jw, "deliveries");
    flowd_jw_arr(jw);
}

void flowd_webhooks_render_end(flowd_jw_t *jw) {
    flowd_jw_arr_end(jw);
    flowd_jw_obj_end(jw);
}

void flowd_webhooks_render(flowd_jw_t *jw, flowd_job_t *job) {
    flowd_webhooks_render_begin(jw, job->id, job->callback);
    flowd_job_lock(job);
    for (flowd_delivery_t *d = job->deliveries; d != NULL; d = d->next)
        render_one(jw, d);
    flowd_job_unlock(job);
    flowd_webhooks_render_end(jw);
}

void flowd_webhooks_render_stored(flowd_jw_t *jw, const flowd_stored_delivery_t *s) {
    flowd_delivery_t *d = calloc(1, sizeof *d); /* a view: only what render_one reads */
    if (d == NULL)
        return;
    snprintf(d->id, sizeof d->id, "%s", s->id);
    snprintf(d->type, sizeof d->type, "%s", s->type);
    d->state = state_of(s->state);
    d->created_us = s->created_us;
    d->attempts = s->attempts;
    d->next_us = s->next_us;
    d->last_status = s->last_status;
    tries_from(d, s->tries);
    render_one(jw, d);
    free(d);
}
