/* mock.c: the scripted test HTTP server of mock.h, on libmicrohttpd's own threads (epoll, a small
 * pool). Slow answers suspend their connection and a delay thread resumes it, so a thousand slow
 * requests hold no thread. One mutex guards all the mock's state; no MHD function is called while
 * it is held, so MHD's locks and ours never nest. */
#include "support/mock.h"
#include "support/mock_model.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#define MAX_REQUEST_BODY ((size_t)1 << 20)
#define MAX_HELD ((size_t)1 << 20)      /* requests waiting in delays or gates at once */
#define MAX_COUNTED_KEYS ((size_t)1 << 20) /* distinct /flaky and Idempotency-Key keys */
#define MAX_KEY 128                      /* /flaky/KEY length */
#define MAX_DELAY_MS 600000u
#define MAX_GATE 100000u
#define HUGE_BLOCK 16384                 /* within MHD's per-connection memory (32 KiB) */
#define STOP_WAIT_MS 5000

/* ---- a string -> count map (open addressing), for /flaky and Idempotency-Key ---------------- */

typedef struct count_slot {
    char *key; /* NULL: empty */
    uint64_t count;
} count_slot_t;

typedef struct count_map {
    count_slot_t *slots;
    size_t cap, len; /* cap is 0 or a power of two */
} count_map_t;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 14695981039346656037u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static count_slot_t *map_slot(count_slot_t *slots, size_t cap, const char *key)
{
    size_t i = (size_t)hash_str(key) & (cap - 1);

    while (slots[i].key && strcmp(slots[i].key, key) != 0)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int map_grow(count_map_t *map)
{
    size_t cap = map->cap ? map->cap * 2 : 64;
    count_slot_t *slots = calloc(cap, sizeof(*slots));

    if (!slots)
        return -1;
    for (size_t i = 0; i < map->cap; i++) {
        if (map->slots[i].key)
            *map_slot(slots, cap, map->slots[i].key) = map->slots[i];
    }
    free(map->slots);
    map->slots = slots;
    map->cap = cap;
    return 0;
}

/* The key's count after adding one, or 0 when it cannot be counted (no memory, map full). */
static uint64_t map_incr(count_map_t *map, const char *key)
{
    count_slot_t *slot;

    if ((map->len + 1) * 2 > map->cap && (map->len >= MAX_COUNTED_KEYS || map_grow(map) != 0))
        return 0;
    slot = map_slot(map->slots, map->cap, key);
    if (!slot->key) {
        slot->key = strdup(key);
        if (!slot->key)
            return 0;
        map->len++;
    }
    return ++slot->count;
}

static uint64_t map_get(const count_map_t *map, const char *key)
{
    return map->cap ? map_slot(map->slots, map->cap, key)->count : 0;
}

static void map_clear(count_map_t *map)
{
    for (size_t i = 0; i < map->cap; i++)
        free(map->slots[i].key);
    free(map->slots);
    memset(map, 0, sizeof(*map));
}

/* ---- the mock ------------------------------------------------------------------------------- */

typedef struct held {
    uint64_t deadline_ns;
    struct MHD_Connection *conn;
} held_t;

struct mock {
    struct MHD_Daemon *daemon;
    uint16_t port;
    char *api_key;
    pthread_t delay_thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;    /* for the delay thread: an earlier deadline, or stopping */
    pthread_cond_t changed; /* for waiters: in_flight or held went down */
    int stopping;
    uint64_t held;          /* suspended, or about to be, and not yet back in on_request */
    held_t *heap;           /* delays, a min-heap on deadline_ns */
    size_t heap_len, heap_cap;
    struct MHD_Connection **gate;
    size_t gate_len, gate_cap;
    mock_stats_t stats;
    count_map_t idempotency, flaky;
    json_t *script;         /* scripted chat answers (mock_script), used from script_next on */
    size_t script_next;
    json_t *last_chat;      /* the last chat request's body (mock_last_chat) */
};

typedef struct mock_req {
    char *body;
    size_t body_len, body_cap;
    int too_big;
    int held;        /* suspended: on_request will be called again */
    int refused;     /* could not be held: answer 503 */
    size_t rest_off; /* where in the URL to go on after being held */
} mock_req_t;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct timespec to_timespec(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};

    return ts;
}

static void copy_header(char *dst, const char *value)
{
    snprintf(dst, MOCK_HEADER_MAX, "%s", value ? value : "");
}

static void count_route(mock_t *m, mock_route_t route)
{
    pthread_mutex_lock(&m->lock);
    m->stats.routes[route]++;
    pthread_mutex_unlock(&m->lock);
}

/* ---- answers -------------------------------------------------------------------------------- */

/* text: malloc'ed, taken over (freed on error too). */
/* header, value: one more response header, or NULL. */
static enum MHD_Result answer_with(struct MHD_Connection *conn, unsigned status, char *text, size_t len,
                                   const char *type, const char *header, const char *value)
{
    struct MHD_Response *res = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    if (!res) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (header && value)
        MHD_add_response_header(res, header, value);
    ret = MHD_queue_response(conn, status, res);
    MHD_destroy_response(res);
    return ret;
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, char *text, size_t len,
                              const char *type)
{
    return answer_with(conn, status, text, len, type, NULL, NULL);
}

/* body: stolen. Dumped into our own malloc'ed text, whatever allocator jansson was given. */
static enum MHD_Result answer_json_with(struct MHD_Connection *conn, unsigned status, json_t *body,
                                        const char *header, const char *value)
{
    size_t len = body ? json_dumpb(body, NULL, 0, JSON_COMPACT) : 0;
    char *text = len ? malloc(len) : NULL;

    if (text && json_dumpb(body, text, len, JSON_COMPACT) != len) {
        free(text);
        text = NULL;
    }
    json_decref(body);
    if (!text)
        return MHD_NO;
    return answer_with(conn, status, text, len, "application/json", header, value);
}

static enum MHD_Result answer_json(struct MHD_Connection *conn, unsigned status, json_t *body)
{
    return answer_json_with(conn, status, body, NULL, NULL);
}

static enum MHD_Result answer_error(struct MHD_Connection *conn, unsigned status, const char *msg)
{
    return answer_json(conn, status, json_pack("{ss}", "error", msg));
}

/* ---- holding requests: /delay and /gate ----------------------------------------------------- */

static void heap_swap(held_t *a, held_t *b)
{
    held_t t = *a;

    *a = *b;
    *b = t;
}

/* Under the lock. 0, or -1 when full. */
static int heap_push(mock_t *m, uint64_t deadline_ns, struct MHD_Connection *conn)
{
    size_t i;

    if (m->heap_len == m->heap_cap) {
        size_t cap = m->heap_cap ? m->heap_cap * 2 : 64;
        held_t *heap = cap <= MAX_HELD ? realloc(m->heap, cap * sizeof(*heap)) : NULL;

        if (!heap)
            return -1;
        m->heap = heap;
        m->heap_cap = cap;
    }
    i = m->heap_len++;
    m->heap[i] = (held_t){deadline_ns, conn};
    while (i > 0 && m->heap[(i - 1) / 2].deadline_ns > m->heap[i].deadline_ns) {
        heap_swap(&m->heap[(i - 1) / 2], &m->heap[i]);
        i = (i - 1) / 2;
    }
    if (i == 0)
        pthread_cond_signal(&m->wake);
    return 0;
}

static struct MHD_Connection *heap_pop(mock_t *m)
{
    struct MHD_Connection *conn = m->heap[0].conn;
    size_t i = 0;

    m->heap[0] = m->heap[--m->heap_len];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, min = i;

        if (l < m->heap_len && m->heap[l].deadline_ns < m->heap[min].deadline_ns)
            min = l;
        if (r < m->heap_len && m->heap[r].deadline_ns < m->heap[min].deadline_ns)
            min = r;
        if (min == i)
            break;
        heap_swap(&m->heap[i], &m->heap[min]);
        i = min;
    }
    return conn;
}

static void *delay_main(void *arg)
{
    mock_t *m = arg;

    pthread_mutex_lock(&m->lock);
    while (!m->stopping) {
        if (m->heap_len == 0) {
            pthread_cond_wait(&m->wake, &m->lock);
        } else if (m->heap[0].deadline_ns > now_ns()) {
            struct timespec until = to_timespec(m->heap[0].deadline_ns);

            pthread_cond_timedwait(&m->wake, &m->lock, &until);
        } else {
            struct MHD_Connection *conn = heap_pop(m);

            pthread_mutex_unlock(&m->lock);
            MHD_resume_connection(conn);
            pthread_mutex_lock(&m->lock);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* Under the lock. When n wait, hands them all (the array) to *release. 0, or -1 when full. */
static int gate_push(mock_t *m, struct MHD_Connection *conn, size_t n,
                     struct MHD_Connection ***release, size_t *count)
{
    if (m->gate_len == m->gate_cap) {
        size_t cap = m->gate_cap ? m->gate_cap * 2 : 64;
        struct MHD_Connection **gate =
            cap <= MAX_HELD ? realloc(m->gate, cap * sizeof(*gate)) : NULL;

        if (!gate)
            return -1;
        m->gate = gate;
        m->gate_cap = cap;
    }
    m->gate[m->gate_len++] = conn;
    if (m->gate_len >= n) {
        *release = m->gate;
        *count = m->gate_len;
        m->gate = NULL;
        m->gate_len = m->gate_cap = 0;
    }
    return 0;
}

/* Suspends conn until deadline_ns (gate_n 0) or until gate_n requests wait at gates. The held
 * count goes up before the suspension, so mock_stop can wait for every suspended connection. */
static enum MHD_Result hold(mock_t *m, struct MHD_Connection *conn, mock_req_t *r,
                            uint64_t deadline_ns, size_t gate_n)
{
    struct MHD_Connection **release = NULL;
    size_t count = 0;
    int ok;

    pthread_mutex_lock(&m->lock);
    ok = !m->stopping;
    if (ok)
        m->held++;
    pthread_mutex_unlock(&m->lock);
    if (!ok)
        return answer_error(conn, 503, "the mock is stopping");
    r->held = 1;
    MHD_suspend_connection(conn);
    pthread_mutex_lock(&m->lock);
    if (m->stopping)
        ok = 0;
    else if (gate_n > 0)
        ok = gate_push(m, conn, gate_n, &release, &count) == 0;
    else
        ok = heap_push(m, deadline_ns, conn) == 0;
    pthread_mutex_unlock(&m->lock);
    if (!ok) {
        r->refused = 1;
        MHD_resume_connection(conn);
    }
    for (size_t i = 0; i < count; i++)
        MHD_resume_connection(release[i]);
    free(release);
    return MHD_YES;
}

/* Back in on_request after a hold: returns whether the mock is stopping. */
static int unhold(mock_t *m, mock_req_t *r)
{
    int stopping;

    r->held = 0;
    pthread_mutex_lock(&m->lock);
    m->held--;
    stopping = m->stopping;
    pthread_cond_broadcast(&m->changed);
    pthread_mutex_unlock(&m->lock);
    return stopping;
}

/* A suspended connection is not watched by MHD: look whether its client closed it meanwhile. */
static int peer_gone(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    char byte;
    ssize_t n;

    if (!ci)
        return 0;
    n = recv(ci->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* ---- routes --------------------------------------------------------------------------------- */

static int has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A decimal number from s up to the next '/' or the end, at most max; *end: after it. */
static int parse_segment_uint(const char *s, uint64_t max, uint64_t *out, const char **end)
{
    char *e;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &e, 10);
    if (errno != 0 || v > max || (*e != '\0' && *e != '/'))
        return -1;
    *out = v;
    *end = e;
    return 0;
}

static enum MHD_Result route(mock_t *m, struct MHD_Connection *conn, mock_req_t *r, const char *url,
                             const char *path, const char *method);

static enum MHD_Result route_delay(mock_t *m, struct MHD_Connection *conn, mock_req_t *r,
                                   const char *url, const char *path)
{
    uint64_t ms;
    const char *rest;

    count_route(m, MOCK_DELAY);
    if (parse_segment_uint(path + strlen("/delay/"), MAX_DELAY_MS, &ms, &rest) != 0)
        return answer_error(conn, 400, "bad delay");
    r->rest_off = (size_t)(rest - url);
    return hold(m, conn, r, now_ns() + ms * 1000000u, 0);
}

static enum MHD_Result route_gate(mock_t *m, struct MHD_Connection *conn, mock_req_t *r,
                                  const char *url, const char *path)
{
    uint64_t n;
    const char *rest;

    count_route(m, MOCK_GATE);
    if (parse_segment_uint(path + strlen("/gate/"), MAX_GATE, &n, &rest) != 0 || n == 0)
        return answer_error(conn, 400, "bad gate");
    r->rest_off = (size_t)(rest - url);
    return hold(m, conn, r, 0, (size_t)n);
}

static enum MHD_Result route_flaky(mock_t *m, struct MHD_Connection *conn, mock_req_t *r,
                                   const char *url, const char *path, const char *method)
{
    const char *key = path + strlen("/flaky/");
    const char *slash = strchr(key, '/');
    char name[MAX_KEY + 1];
    uint64_t fails, attempt;
    const char *rest;

    count_route(m, MOCK_FLAKY);
    if (!slash || slash == key || (size_t)(slash - key) > MAX_KEY ||
        parse_segment_uint(slash + 1, UINT32_MAX, &fails, &rest) != 0)
        return answer_error(conn, 400, "bad flaky path: /flaky/KEY/N");
    memcpy(name, key, (size_t)(slash - key));
    name[slash - key] = '\0';
    pthread_mutex_lock(&m->lock);
    attempt = map_incr(&m->flaky, name);
    pthread_mutex_unlock(&m->lock);
    if (attempt == 0)
        return answer_error(conn, 503, "the mock cannot count more keys");
    if (attempt <= fails) {
        const char *status = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "status");
        unsigned long code = status ? strtoul(status, NULL, 10) : 500;

        return answer_json_with(conn, code >= 400 && code <= 599 ? (unsigned)code : 500,
                                json_pack("{ssss%sI}", "error", "flaky", "key", name,
                                          (size_t)(slash - key), "attempt", (json_int_t)attempt),
                                "Retry-After",
                                MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
                                                            "retry_after"));
    }
    if (*rest != '\0')
        return route(m, conn, r, url, rest, method);
    return answer_json(conn, 200, json_pack("{ss%sI}", "key", name, (size_t)(slash - key),
                                            "attempts", (json_int_t)attempt));
}

static enum MHD_Result route_recipes(mock_t *m, struct MHD_Connection *conn)
{
    const char *x = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "ingredient");

    count_route(m, MOCK_RECIPES);
    if (!x || !*x)
        return answer_error(conn, 400, "missing ingredient");
    return answer_json(conn, 200, json_pack("{sss[ooo]}", "ingredient", x, "recipes",
                                            json_sprintf("%s pasta", x),
                                            json_sprintf("grilled %s", x),
                                            json_sprintf("%s soup", x)));
}

static enum MHD_Result route_search(mock_t *m, struct MHD_Connection *conn)
{
    const char *q = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "q");
    json_t *found;

    count_route(m, MOCK_SEARCH);
    if (!q || !*q)
        return answer_error(conn, 400, "missing q");
    found = mock_search(q);
    if (!found)
        return answer_error(conn, 400, "q is not UTF-8");
    return answer_json(conn, 200, found);
}

static json_int_t count_words(const char *s)
{
    json_int_t n = 0;
    int in_word = 0;

    for (; s && *s; s++) {
        int space = *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r';

        if (!space && !in_word)
            n++;
        in_word = !space;
    }
    return n;
}

/* A message's text: a string content, or the first text part of an array of parts. */
static const char *message_text(json_t *msg)
{
    json_t *content = json_object_get(msg, "content");

    if (json_is_array(content))
        content = json_object_get(json_array_get(content, 0), "text");
    return json_is_string(content) ? json_string_value(content) : "";
}

static int authorized(mock_t *m, struct MHD_Connection *conn)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");

    if (!m->api_key)
        return 1;
    return auth && has_prefix(auth, "Bearer ") && strcmp(auth + 7, m->api_key) == 0;
}

/* The first string of the first JSON array of strings in text that does not appear again after the
 * array: a stand-in for a model asked to pick one of a list, not the ones named after it. */
static json_t *pick_from_list(const char *text)
{
    const char *open = strchr(text, '[');
    json_error_t jerr;
    json_t *list, *v, *pick = NULL;
    size_t i;

    if (!open)
        return NULL;
    list = json_loads(open, JSON_DISABLE_EOF_CHECK, &jerr);
    if (!json_is_array(list) || json_array_size(list) == 0) {
        json_decref(list);
        return NULL;
    }
    json_array_foreach(list, i, v) {
        if (!json_is_string(v)) {
            json_decref(list);
            return NULL;
        }
    }
    json_array_foreach(list, i, v) {
        if (!strstr(open + jerr.position, json_string_value(v))) {
            pick = json_incref(v);
            break;
        }
    }
    json_decref(list);
    return pick;
}

/* The next scripted answer (a new reference), or NULL when none is left. */
static json_t *next_scripted(mock_t *m)
{
    json_t *content = NULL;

    pthread_mutex_lock(&m->lock);
    if (m->script_next < json_array_size(m->script))
        content = json_incref(json_array_get(m->script, m->script_next++));
    pthread_mutex_unlock(&m->lock);
    return content;
}

/* scripted: the answer's content (stolen), or NULL for the mock's own. */
static json_t *chat_answer(json_t *req, json_t *scripted)
{
    json_t *model = json_object_get(req, "model");
    json_t *messages = json_object_get(req, "messages");
    const char *question = "";
    json_int_t prompt = 0, completion;
    json_t *content, *msg;
    size_t i;

    json_array_foreach(messages, i, msg) {
        prompt += count_words(message_text(msg));
        if (json_is_string(json_object_get(msg, "role")) &&
            strcmp(json_string_value(json_object_get(msg, "role")), "user") == 0)
            question = message_text(msg);
    }
    content = scripted ? scripted : mock_model_answer(question);
    if (!content)
        content = pick_from_list(question);
    if (!content)
        content = json_sprintf("mock answer to: %s", question);
    completion = count_words(json_string_value(content));
    return json_pack("{sssssO s[{sis{ssso}ss}] s{sIsIsI}}", "id", "mock-1", "object",
                     "chat.completion", "model", model, "choices", "index", 0, "message", "role",
                     "assistant", "content", content, "finish_reason", "stop", "usage",
                     "prompt_tokens", prompt, "completion_tokens", completion, "total_tokens",
                     prompt + completion);
}

static enum MHD_Result route_chat(mock_t *m, struct MHD_Connection *conn, mock_req_t *r,
                                  const char *method)
{
    json_t *req;
    enum MHD_Result ret;

    count_route(m, MOCK_CHAT);
    if (strcmp(method, "POST") != 0)
        return answer_error(conn, 405, "use POST");
    if (!authorized(m, conn))
        return answer_json(conn, 401, json_pack("{s{ssssss}}", "error", "message",
                                                "Incorrect API key provided", "type",
                                                "invalid_request_error", "code",
                                                "invalid_api_key"));
    req = r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    if (req) {
        json_t *old;

        /* a copy of its own: jansson's json_decref reads the count outside its atomic
         * decrement, so a value whose count two threads change is a data race (TSan) */
        json_t *copy = json_deep_copy(req);

        pthread_mutex_lock(&m->lock);
        old = m->last_chat;
        m->last_chat = copy;
        pthread_mutex_unlock(&m->lock);
        json_decref(old);
    }
    if (!json_is_string(json_object_get(req, "model")) ||
        json_array_size(json_object_get(req, "messages")) == 0)
        ret = answer_error(conn, 400, "a chat request needs a model and messages");
    else
        ret = answer_json(conn, 200, chat_answer(req, next_scripted(m)));
    json_decref(req);
    return ret;
}

static enum MHD_Result route_status(mock_t *m, struct MHD_Connection *conn, const char *path)
{
    uint64_t code;
    const char *end;

    count_route(m, MOCK_STATUS);
    if (parse_segment_uint(path + strlen("/status/"), 599, &code, &end) != 0 || code < 200 ||
        *end != '\0')
        return answer_error(conn, 400, "bad status: 200..599");
    if (code == 204 || code == 304) /* no body allowed */
        return answer(conn, (unsigned)code, NULL, 0, "application/json");
    return answer_json(conn, (unsigned)code, json_pack("{sI}", "status", (json_int_t)code));
}

typedef struct huge {
    mock_t *mock;
    uint64_t total;
} huge_t;

static ssize_t huge_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    huge_t *h = cls;
    size_t n;

    if (pos >= h->total)
        return MHD_CONTENT_READER_END_OF_STREAM;
    n = h->total - pos < max ? (size_t)(h->total - pos) : max;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)('a' + (pos + i) % 26);
    pthread_mutex_lock(&h->mock->lock);
    h->mock->stats.huge_bytes += n;
    pthread_mutex_unlock(&h->mock->lock);
    return (ssize_t)n;
}

static enum MHD_Result route_huge(mock_t *m, struct MHD_Connection *conn, const char *path)
{
    const char *chunked = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "chunked");
    struct MHD_Response *res;
    enum MHD_Result ret;
    const char *end;
    huge_t *h;
    uint64_t total;

    count_route(m, MOCK_HUGE);
    if (parse_segment_uint(path + strlen("/huge/"), UINT64_MAX / 2, &total, &end) != 0 ||
        *end != '\0')
        return answer_error(conn, 400, "bad size");
    h = malloc(sizeof(*h));
    if (!h)
        return MHD_NO;
    h->mock = m;
    h->total = total;
    res = MHD_create_response_from_callback(chunked && strcmp(chunked, "1") == 0 ? MHD_SIZE_UNKNOWN
                                                                                 : total,
                                            HUGE_BLOCK, huge_read, h, free);
    if (!res) {
        free(h);
        return MHD_NO;
    }
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
    ret = MHD_queue_response(conn, 200, res);
    MHD_destroy_response(res);
    return ret;
}

static json_t *maybe_string(const char *s)
{
    return s ? json_string(s) : json_null();
}

static enum MHD_Result add_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    json_object_set_new(cls, key, maybe_string(value));
    return MHD_YES;
}

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    char name[256];
    size_t n = 0;

    for (; key[n] && n + 1 < sizeof(name); n++)
        name[n] = (key[n] >= 'A' && key[n] <= 'Z') ? (char)(key[n] - 'A' + 'a') : key[n];
    name[n] = '\0';
    json_object_set_new(cls, name, maybe_string(value));
    return MHD_YES;
}

static json_t *body_value(const mock_req_t *r)
{
    json_t *v;

    if (r->body_len == 0)
        return json_null();
    v = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, NULL);
    if (!v)
        v = json_stringn(r->body, r->body_len);
    return v ? v : json_null();
}

static enum MHD_Result route_echo(mock_t *m, struct MHD_Connection *conn, mock_req_t *r,
                                  const char *url, const char *method)
{
    json_t *query = json_object(), *headers = json_object();

    count_route(m, MOCK_ECHO);
    if (query)
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_query, query);
    if (headers)
        MHD_get_connection_values(conn, MHD_HEADER_KIND, add_header, headers);
    return answer_json(conn, 200, json_pack("{ssssso?so?so?}", "method", method, "path", url,
                                            "query", query, "headers", headers, "body",
                                            body_value(r)));
}

static enum MHD_Result add_response_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                           const char *value)
{
    MHD_add_response_header(cls, key, value ? value : ""); /* MHD refuses empty values: skipped */
    return MHD_YES;
}

static enum MHD_Result route_headers(mock_t *m, struct MHD_Connection *conn)
{
    struct MHD_Response *res;
    enum MHD_Result ret;
    char *text = strdup("{}");

    count_route(m, MOCK_OTHER);
    res = text ? MHD_create_response_from_buffer(2, text, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!res) {
        free(text);
        return MHD_NO;
    }
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_response_header, res);
    ret = MHD_queue_response(conn, 200, res);
    MHD_destroy_response(res);
    return ret;
}

static enum MHD_Result route_page(mock_t *m, struct MHD_Connection *conn, const char *path)
{
    uint64_t n;
    const char *end;
    char *html;
    int len;

    count_route(m, MOCK_PAGE);
    if (parse_segment_uint(path + strlen("/page/"), UINT64_MAX, &n, &end) != 0 || *end != '\0')
        return answer_error(conn, 400, "bad page number");
    html = malloc(256);
    if (!html)
        return MHD_NO;
    len = snprintf(html, 256,
                   "<html><head><title>Page %llu</title></head><body><h1>Page %llu</h1>"
                   "<p>This is page %llu.</p></body></html>",
                   (unsigned long long)n, (unsigned long long)n, (unsigned long long)n);
    return answer(conn, 200, html, (size_t)len, "text/html; charset=utf-8");
}

/* path: what is left of url to answer (after /delay/MS, /gate/N or /flaky/KEY/N). */
static enum MHD_Result route(mock_t *m, struct MHD_Connection *conn, mock_req_t *r, const char *url,
                             const char *path, const char *method)
{
    if (has_prefix(path, "/delay/"))
        return route_delay(m, conn, r, url, path);
    if (has_prefix(path, "/gate/"))
        return route_gate(m, conn, r, url, path);
    if (has_prefix(path, "/flaky/"))
        return route_flaky(m, conn, r, url, path, method);
    if (strcmp(path, "/recipes") == 0)
        return route_recipes(m, conn);
    if (strcmp(path, "/search") == 0)
        return route_search(m, conn);
    if (strcmp(path, "/v1/chat/completions") == 0)
        return route_chat(m, conn, r, method);
    if (has_prefix(path, "/status/"))
        return route_status(m, conn, path);
    if (strcmp(path, "/reset") == 0) {
        count_route(m, MOCK_RESET);
        return MHD_NO;
    }
    if (has_prefix(path, "/huge/"))
        return route_huge(m, conn, path);
    if (strcmp(path, "/echo") == 0)
        return route_echo(m, conn, r, url, method);
    if (has_prefix(path, "/page/"))
        return route_page(m, conn, path);
    if (strcmp(path, "/headers") == 0)
        return route_headers(m, conn);
    if (*path == '\0') /* the end of /delay/MS or /gate/N */
        return answer_json(conn, 200, json_pack("{sbss}", "ok", 1, "path", url));
    count_route(m, MOCK_OTHER);
    return answer_error(conn, 404, "no such path in the mock");
}

/* ---- MHD callbacks -------------------------------------------------------------------------- */

static void body_append(mock_req_t *r, const char *data, size_t n)
{
    if (r->too_big || n > MAX_REQUEST_BODY - r->body_len) {
        r->too_big = 1;
        return;
    }
    if (r->body_len + n + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 1024;
        char *body;

        while (cap < r->body_len + n + 1)
            cap *= 2;
        body = realloc(r->body, cap);
        if (!body) {
            r->too_big = 1;
            return;
        }
        r->body = body;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
}

/* The first call for a request: count it and record its headers. */
static enum MHD_Result begin(mock_t *m, struct MHD_Connection *conn, void **req_cls)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    mock_req_t *r = calloc(1, sizeof(*r));

    if (!r)
        return MHD_NO;
    *req_cls = r;
    pthread_mutex_lock(&m->lock);
    m->stats.requests++;
    m->stats.in_flight++;
    if (m->stats.in_flight > m->stats.max_in_flight)
        m->stats.max_in_flight = m->stats.in_flight;
    if (auth)
        copy_header(m->stats.last_authorization, auth);
    if (key) {
        copy_header(m->stats.last_idempotency_key, key);
        if (map_incr(&m->idempotency, key) == 1)
            m->stats.idempotency_keys++;
    }
    pthread_mutex_unlock(&m->lock);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **req_cls)
{
    mock_t *m = cls;
    mock_req_t *r = *req_cls;

    if (!r)
        return begin(m, conn, req_cls);
    if (*upload_size > 0) {
        body_append(r, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->held) {
        int stopping = unhold(m, r);

        if (stopping || peer_gone(conn))
            return MHD_NO;
        if (r->refused)
            return answer_error(conn, 503, "the mock cannot hold more requests");
    }
    if (r->too_big)
        return answer_error(conn, 413, "request body over 1 MiB");
    return route(m, conn, r, url, url + r->rest_off, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode code)
{
    mock_t *m = cls;
    mock_req_t *r = *req_cls;

    if (!r)
        return;
    if (r->held) /* closed while suspended: only when MHD stops */
        unhold(m, r);
    pthread_mutex_lock(&m->lock);
    m->stats.in_flight--;
    if (code == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        m->stats.completed++;
    else
        m->stats.aborted++;
    pthread_cond_broadcast(&m->changed);
    pthread_mutex_unlock(&m->lock);
    free(r->body);
    free(r);
    *req_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    mock_t *m = cls;

    pthread_mutex_lock(&m->lock);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        m->stats.connections++;
        m->stats.open_connections++;
    } else {
        m->stats.open_connections--;
    }
    pthread_mutex_unlock(&m->lock);
}

/* ---- the API -------------------------------------------------------------------------------- */

static void mock_free(mock_t *m)
{
    map_clear(&m->idempotency);
    map_clear(&m->flaky);
    json_decref(m->script);
    json_decref(m->last_chat);
    free(m->heap);
    free(m->gate);
    free(m->api_key);
    pthread_cond_destroy(&m->wake);
    pthread_cond_destroy(&m->changed);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static int init_sync(mock_t *m)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);

    if (rc == 0)
        rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_mutex_init(&m->lock, NULL);
    if (rc == 0)
        rc = pthread_cond_init(&m->wake, &attr);
    if (rc == 0)
        rc = pthread_cond_init(&m->changed, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

static struct MHD_Daemon *start_daemon(mock_t *m, uint16_t port, unsigned threads)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, port, NULL,
        NULL, on_request, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT, 16000u,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, m, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, m, MHD_OPTION_END);
}

int mock_start(const mock_opts_t *opts, mock_t **out)
{
    mock_t *m = calloc(1, sizeof(*m));
    const union MHD_DaemonInfo *info;

    *out = NULL;
    if (!m || init_sync(m) != 0) {
        free(m);
        fprintf(stderr, "mock: out of memory\n");
        return -1;
    }
    if (opts && opts->api_key) {
        m->api_key = strdup(opts->api_key);
        if (!m->api_key)
            goto fail;
    }
    if (pthread_create(&m->delay_thread, NULL, delay_main, m) != 0)
        goto fail;
    m->daemon = start_daemon(m, opts ? opts->port : 0, opts && opts->threads ? opts->threads : 2);
    info = m->daemon ? MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!info) {
        fprintf(stderr, "mock: cannot listen on 127.0.0.1:%u\n", opts ? opts->port : 0);
        mock_stop(m);
        return -1;
    }
    m->port = info->port;
    *out = m;
    return 0;
fail:
    fprintf(stderr, "mock: cannot start\n");
    mock_free(m);
    return -1;
}

uint16_t mock_port(const mock_t *m)
{
    return m->port;
}

char *mock_url(const mock_t *m, const char *path)
{
    size_t len = strlen(path) + 32;
    char *url = malloc(len);

    if (url)
        snprintf(url, len, "http://127.0.0.1:%u%s", m->port, path);
    return url;
}

void mock_stats(mock_t *m, mock_stats_t *out)
{
    pthread_mutex_lock(&m->lock);
    *out = m->stats;
    pthread_mutex_unlock(&m->lock);
}

void mock_reset_stats(mock_t *m)
{
    pthread_mutex_lock(&m->lock);
    m->stats = (mock_stats_t){
        .in_flight = m->stats.in_flight,
        .max_in_flight = m->stats.in_flight,
        .open_connections = m->stats.open_connections,
    };
    map_clear(&m->idempotency);
    map_clear(&m->flaky);
    pthread_mutex_unlock(&m->lock);
}

int mock_script(mock_t *m, const char *const *answers, size_t n)
{
    json_t *script = json_array();

    for (size_t i = 0; script && i < n; i++) {
        if (json_array_append_new(script, json_string(answers[i])) != 0) {
            json_decref(script);
            script = NULL;
        }
    }
    if (!script) {
        fprintf(stderr, "mock: cannot keep the script (out of memory or not UTF-8)\n");
        return -1;
    }
    pthread_mutex_lock(&m->lock);
    json_decref(m->script);
    m->script = script;
    m->script_next = 0;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

json_t *mock_last_chat(mock_t *m)
{
    json_t *req;

    pthread_mutex_lock(&m->lock);
    req = json_deep_copy(m->last_chat); /* the caller's alone (see route_chat) */
    pthread_mutex_unlock(&m->lock);
    return req;
}

uint64_t mock_idempotency_count(mock_t *m, const char *key)
{
    uint64_t n;

    pthread_mutex_lock(&m->lock);
    n = map_get(&m->idempotency, key);
    pthread_mutex_unlock(&m->lock);
    return n;
}

/* Under the lock: waits on m->changed until done(m) or the deadline; returns done(m). */
static int wait_until(mock_t *m, int (*done)(const mock_t *), unsigned timeout_ms)
{
    struct timespec until = to_timespec(now_ns() + (uint64_t)timeout_ms * 1000000u);

    while (!done(m)) {
        if (pthread_cond_timedwait(&m->changed, &m->lock, &until) == ETIMEDOUT)
            break;
    }
    return done(m);
}

static int is_idle(const mock_t *m)
{
    return m->stats.in_flight == 0;
}

static int nothing_held(const mock_t *m)
{
    return m->held == 0;
}

int mock_wait_idle(mock_t *m, unsigned timeout_ms)
{
    int idle;

    pthread_mutex_lock(&m->lock);
    idle = wait_until(m, is_idle, timeout_ms);
    pthread_mutex_unlock(&m->lock);
    return idle ? 0 : -1;
}

/* MHD must not stop with suspended connections: resume them all, and wait until each is back in
 * on_request, which closes it. */
static void release_all(mock_t *m)
{
    held_t *heap;
    struct MHD_Connection **gate;
    size_t heap_len, gate_len;

    pthread_mutex_lock(&m->lock);
    heap = m->heap;
    heap_len = m->heap_len;
    gate = m->gate;
    gate_len = m->gate_len;
    m->heap = NULL;
    m->gate = NULL;
    m->heap_len = m->heap_cap = m->gate_len = m->gate_cap = 0;
    pthread_mutex_unlock(&m->lock);
    for (size_t i = 0; i < heap_len; i++)
        MHD_resume_connection(heap[i].conn);
    for (size_t i = 0; i < gate_len; i++)
        MHD_resume_connection(gate[i]);
    free(heap);
    free(gate);
    pthread_mutex_lock(&m->lock);
    if (!wait_until(m, nothing_held, STOP_WAIT_MS))
        fprintf(stderr, "mock: %llu requests still suspended at stop\n",
                (unsigned long long)m->held);
    pthread_mutex_unlock(&m->lock);
}

void mock_stop(mock_t *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->stopping = 1;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->delay_thread, NULL);
    if (m->daemon) {
        release_all(m);
        MHD_stop_daemon(m->daemon);
    }
    mock_free(m);
}
