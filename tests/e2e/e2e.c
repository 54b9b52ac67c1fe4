/* e2e.c: the end-to-end test helpers of e2e.h. */
#include "e2e.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sqlite3.h>

#define MAX_SERVERS 8

static pid_t live[MAX_SERVERS];
static int atexit_set;

uint64_t e2e_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

unsigned e2e_ms(unsigned ms) {
    /* read each time: once per wait, and no cached state for a test's threads to share */
    const char *env = getenv("E2E_TIME_SCALE"), *wrap = getenv("FLOWD_WRAPPER");
    char *end = NULL;
    long v = env != NULL ? strtol(env, &end, 10) : 0;
    unsigned scale = env != NULL && end != env && *end == '\0' && v >= 1 && v <= 100 ? (unsigned)v
                     : wrap != NULL && *wrap != '\0'                                  ? 4u
                                                                                       : 1u;
    return ms > UINT32_MAX / scale ? UINT32_MAX : ms * scale;
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A failed test exits its process: take the servers it started along. */
static void kill_live(void) {
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (live[i] > 0) {
            kill(live[i], SIGKILL);
            waitpid(live[i], NULL, 0);
            live[i] = 0;
        }
    }
}

static void track(pid_t pid, int add) {
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (add && live[i] == 0) {
            live[i] = pid;
            return;
        }
        if (!add && live[i] == pid) {
            live[i] = 0;
            return;
        }
    }
}

char *e2e_log(const e2e_server_t *s) {
    FILE *f = fopen(s->log_path, "r");
    ck_assert_msg(f != NULL, "cannot read the log %s", s->log_path);
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    size_t n;
    while ((n = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            text = realloc(text, cap);
        }
    }
    text[len] = '\0';
    fclose(f);
    return text;
}

void e2e_start(e2e_server_t *s, ...) {
    const char *argv[64];
    int argc = 0;
    /* FLOWD_WRAPPER: a command line to run flowd under ("valgrind -q --error-exitcode=99"), words
     * split at spaces */
    static char wrapper[512];
    const char *wrap = getenv("FLOWD_WRAPPER");
    if (wrap != NULL && *wrap != '\0') {
        snprintf(wrapper, sizeof wrapper, "%s", wrap);
        for (char *w = strtok(wrapper, " "); w != NULL && argc < 16; w = strtok(NULL, " "))
            argv[argc++] = w;
    }
    const char *bin = getenv("FLOWD_BIN");
    argv[argc++] = bin && *bin ? bin : "build/flowd";
    argv[argc++] = "--port";
    argv[argc++] = "0";
    va_list ap;
    va_start(ap, s);
    const char *a;
    int has_store = 0;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 60) {
        has_store |= strcmp(a, "--store") == 0;
        argv[argc++] = a;
    }
    va_end(ap);
    if (!has_store) { /* tests of the API keep nothing: a durable store is asked for by name */
        argv[argc++] = "--store";
        argv[argc++] = "memory:";
    }
    argv[argc] = NULL;

    memset(s, 0, sizeof *s);
    snprintf(s->log_path, sizeof s->log_path, "/tmp/flowd-e2e-XXXXXX");
    int logfd = mkstemp(s->log_path);
    ck_assert_msg(logfd >= 0, "mkstemp: %s", strerror(errno));
    if (!atexit_set) {
        atexit(kill_live);
        atexit_set = 1;
        curl_global_init(CURL_GLOBAL_DEFAULT);
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(logfd, 2);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 1);
        dup2(devnull, 0);
        /* Only the flags a test gives: no FLOWD_* variable of the environment the tests run in. */
        for (size_t i = 0; environ[i] != NULL;) {
            const char *eq = strchr(environ[i], '=');
            char name[128];
            if (strncmp(environ[i], "FLOWD_", 6) != 0 || eq == NULL ||
                (size_t)(eq - environ[i]) >= sizeof name) {
                i++;
                continue;
            }
            memcpy(name, environ[i], (size_t)(eq - environ[i]));
            name[eq - environ[i]] = '\0';
            unsetenv(name); /* environ shrinks: the same slot holds the next one */
        }
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(logfd);
    s->pid = pid;
    track(pid, 1);
    uint64_t deadline = e2e_now_ms() + (argc > 3 && argv[0] != bin ? 60000 : 10000);
    for (;;) {
        char *log = e2e_log(s);
        const char *line = strstr(log, "listening on http://");
        if (line != NULL) {
            const char *end = strchr(line, '\n');
            if (end != NULL) {
                const char *colon = end;
                while (colon > line && *colon != ':')
                    colon--;
                s->port = (unsigned)strtoul(colon + 1, NULL, 10);
                free(log);
                break;
            }
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            track(pid, 0);
            ck_abort_msg("flowd exited before listening (status %d); its log:\n%s", status, log);
        }
        free(log);
        ck_assert_msg(e2e_now_ms() < deadline, "flowd did not say where it listens within 10 s");
        sleep_ms(10);
    }
    ck_assert_uint_gt(s->port, 0);
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%u", s->port);
    s->curl = curl_easy_init();
    ck_assert_ptr_nonnull(s->curl);
}

int e2e_run(const char *const *args, char **out) {
    return e2e_run_input(args, NULL, out);
}

int e2e_run_input(const char *const *args, const char *input, char **out) {
    const char *argv[32];
    int argc = 0;
    const char *bin = getenv("FLOWD_BIN");
    int has_store = 0;
    argv[argc++] = bin && *bin ? bin : "build/flowd";
    for (size_t i = 0; args[i] != NULL && argc < 29; i++) {
        has_store |= strcmp(args[i], "--store") == 0;
        argv[argc++] = args[i];
    }
    if (!has_store) {
        argv[argc++] = "--store";
        argv[argc++] = "memory:";
    }
    argv[argc] = NULL;
    char path[] = "/tmp/flowd-run-XXXXXX", in_path[] = "/tmp/flowd-in-XXXXXX";
    int fd = mkstemp(path), in = -1;
    ck_assert_int_ge(fd, 0);
    if (input != NULL) {
        in = mkstemp(in_path);
        ck_assert_int_ge(in, 0);
        ck_assert_int_eq(write(in, input, strlen(input)), (ssize_t)strlen(input));
        ck_assert_int_eq(lseek(in, 0, SEEK_SET), 0);
        unlink(in_path);
    }
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (in >= 0)
            dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fd);
    if (in >= 0)
        close(in);
    track(pid, 1);
    int status = 0;
    uint64_t deadline = e2e_now_ms() + e2e_ms(10000);
    while (waitpid(pid, &status, WNOHANG) != pid) {
        ck_assert_msg(e2e_now_ms() < deadline, "flowd did not exit within %u ms", e2e_ms(10000));
        sleep_ms(5);
    }
    track(pid, 0);
    if (out != NULL) {
        e2e_server_t tmp;
        memset(&tmp, 0, sizeof tmp);
        snprintf(tmp.log_path, sizeof tmp.log_path, "%s", path);
        *out = e2e_log(&tmp);
    }
    unlink(path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void e2e_kill(e2e_server_t *s) {
    if (s->curl != NULL) {
        curl_easy_cleanup(s->curl);
        s->curl = NULL;
    }
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    track(s->pid, 0);
    s->pid = 0;
}

int e2e_stop(e2e_server_t *s, unsigned timeout_ms) {
    int result = -1;
    if (s->curl != NULL) {
        curl_easy_cleanup(s->curl);
        s->curl = NULL;
    }
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    uint64_t deadline = e2e_now_ms() + e2e_ms(timeout_ms);
    for (;;) {
        int status;
        pid_t got = waitpid(s->pid, &status, WNOHANG);
        if (got == s->pid) {
            result = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            if (result != 0) {
                char *log = e2e_log(s);
                fprintf(stderr, "flowd exited with %d%s; the end of its log:\n%s\n", status,
                        WIFSIGNALED(status) ? " (a signal)" : "",
                        strlen(log) > 4000 ? log + strlen(log) - 4000 : log);
                free(log);
            }
            break;
        }
        if (e2e_now_ms() >= deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            break;
        }
        sleep_ms(5);
    }
    track(s->pid, 0);
    s->pid = 0;
    return result;
}

void e2e_write_file(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_int_ge(fputs(text, f), 0);
    ck_assert_int_eq(fclose(f), 0);
}

void e2e_answer(e2e_server_t *s, const char *id, const char *value) {
    char path[96], body[160];
    e2e_resp_t r;
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    snprintf(body, sizeof body, "{\"value\": \"%s\"}", value);
    e2e_post(s, path, body, &r);
    ck_assert_msg(r.status == 202, "input %s: %ld %s", id, r.status, r.body ? r.body : "");
    e2e_resp_free(&r);
}

#define TRACE_ID "4bf92f3577b34da6a50d0e02b8f0fe36"

void e2e_write_traced_flow(const char *flows) {
    e2e_write_file(flows, "traced.json",
                   "{\"name\": \"traced\", \"params\": {\"base\": \"\"},"
                   " \"outbound\": {\"allow\": [\"127.0.0.1\"]}, \"start\": \"ask\", \"nodes\": {"
                   " \"ask\": {\"type\": \"input\", \"params\": {\"prompt\": \"go?\","
                   "  \"actions\": {\"yes\": \"go\"}}, \"out\": \"/answer\", \"next\": {\"go\": \"call\"}},"
                   " \"call\": {\"type\": \"http\", \"params\": {\"url\": \"{{$params/base}}/echo\"},"
                   "  \"out\": {\"/headers\": \"/body/headers\"}}}}");
}

char *e2e_post_traced(e2e_server_t *s, unsigned mock_port) {
    static const char *const headers[] = {"Content-Type: application/json",
                                          "traceparent: 00-" TRACE_ID "-00f067aa0ba902b7-01", NULL};
    char body[200];
    snprintf(body, sizeof body, "{\"flow\": \"traced\", \"params\": {\"base\": \"http://127.0.0.1:%u\"}}",
             mock_port);
    e2e_resp_t r;
    e2e_request(s, "POST", "/v1/jobs", headers, body, &r);
    ck_assert_msg(r.status == 202, "%ld %s", r.status, r.body ? r.body : "");
    char *id = strdup(json_string_value(json_object_get(r.json, "id")));
    e2e_resp_free(&r);
    ck_assert_ptr_nonnull(id);
    return id;
}

void e2e_assert_traced(json_t *shared, const char *when) {
    json_t *got = json_object_get(shared, "headers"); /* what the mock's /echo received */
    ck_assert_msg(json_is_object(got), "the call %s was not made", when);
    const char *sent = json_string_value(json_object_get(got, "traceparent"));
    ck_assert_msg(sent != NULL, "the call %s carried no traceparent", when);
    ck_assert_msg(strlen(sent) == 55 && strncmp(sent, "00-" TRACE_ID "-", 36) == 0,
                  "the call %s carried %s, not trace " TRACE_ID, when, sent);
}

void e2e_assert_sqlite_current(const char *path) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT value FROM meta WHERE key = 'schema_version'),"
                                        " (SELECT count(*) FROM pragma_table_info('jobs') WHERE name = ?)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, E2E_SQLITE_NEWEST_COLUMN, -1, SQLITE_STATIC);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), E2E_SQLITE_VERSION);
    ck_assert_msg(sqlite3_column_int(st, 1) == 1, "%s: jobs has no column %s", path,
                  E2E_SQLITE_NEWEST_COLUMN);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

void e2e_key_line(const char *key, const char *name, const char *role, const char *tenant,
                  char *out, size_t len) {
    unsigned char md[32];
    unsigned int n = 0;
    char hex[65];
    ck_assert(EVP_Digest(key, strlen(key), md, &n, EVP_sha256(), NULL) == 1 && n == 32);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(out, len, "%s %s %s %s\n", hex, name, role, tenant);
}

void e2e_write_tenant_keys(const char *dir, char *path, size_t len) {
    static const char *const keys[] = {E2E_SUBMIT_A, "sa", "submit", "a", E2E_READ_A, "ra", "read",
                                       "a", E2E_SUBMIT_B, "sb", "submit", "b", E2E_ADMIN, "ad",
                                       "admin", "ops", NULL};
    char text[1024] = "", line[256];
    for (size_t i = 0; keys[i] != NULL; i += 4) {
        e2e_key_line(keys[i], keys[i + 1], keys[i + 2], keys[i + 3], line, sizeof line);
        ck_assert(strlen(text) + strlen(line) < sizeof text);
        strncat(text, line, sizeof text - strlen(text) - 1);
    }
    e2e_write_file(dir, "keys", text);
    snprintf(path, len, "%s/keys", dir);
}

void e2e_use_key(e2e_server_t *s, const char *key) {
    if (key == NULL)
        s->auth[0] = '\0';
    else
        snprintf(s->auth, sizeof s->auth, "Authorization: Bearer %s", key);
}

/* Adds s's Authorization header unless headers (NULL-terminated, may be NULL) have one. */
static struct curl_slist *add_auth(const e2e_server_t *s, const char *const *headers,
                                   struct curl_slist *list) {
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        if (strncasecmp(headers[i], "Authorization:", 14) == 0)
            return list;
    return s->auth[0] ? curl_slist_append(list, s->auth) : list;
}

void e2e_cleanup(e2e_server_t *s) {
    if (s->log_path[0] != '\0')
        unlink(s->log_path);
    s->log_path[0] = '\0';
}

/* ---- single requests ---- */

typedef struct sink {
    char *buf;
    size_t len, cap;
} sink_t;

static size_t on_body(char *data, size_t size, size_t n, void *userdata) {
    sink_t *k = userdata;
    size_t add = size * n;
    if (k->len + add + 1 > k->cap) {
        size_t cap = k->cap ? k->cap : 1024;
        while (cap < k->len + add + 1)
            cap *= 2;
        k->buf = realloc(k->buf, cap);
        k->cap = cap;
    }
    memcpy(k->buf + k->len, data, add);
    k->len += add;
    k->buf[k->len] = '\0';
    return add;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t outlen) {
    size_t n = strlen(name);
    if (len <= n + 1 || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return;
    const char *v = line + n + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    snprintf(out, outlen, "%.*s", (int)(end - v), v);
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata) {
    e2e_resp_t *r = userdata;
    size_t len = size * n;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) { /* a new response (after a 100 Continue) */
        r->location[0] = r->retry_after[0] = r->allow[0] = r->content_type[0] = r->connection[0] = '\0';
        r->www_authenticate[0] = r->request_id[0] = r->etag[0] = '\0';
    }
    header_value(data, len, "WWW-Authenticate", r->www_authenticate, sizeof r->www_authenticate);
    header_value(data, len, "Location", r->location, sizeof r->location);
    header_value(data, len, "Retry-After", r->retry_after, sizeof r->retry_after);
    header_value(data, len, "Allow", r->allow, sizeof r->allow);
    header_value(data, len, "X-Request-Id", r->request_id, sizeof r->request_id);
    header_value(data, len, "ETag", r->etag, sizeof r->etag);
    header_value(data, len, "Content-Type", r->content_type, sizeof r->content_type);
    header_value(data, len, "Connection", r->connection, sizeof r->connection);
    return len;
}

void e2e_request(e2e_server_t *s, const char *method, const char *path, const char *const *headers,
                 const char *body, e2e_resp_t *out) {
    char url[4096];
    struct curl_slist *list = NULL;
    sink_t k = {0};
    memset(out, 0, sizeof *out);
    snprintf(url, sizeof url, "%s%s", s->base, path);
    CURL *c = s->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        list = curl_slist_append(list, headers[i]);
    list = add_auth(s, headers, list);
    list = curl_slist_append(list, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &k);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    uint64_t t0 = e2e_now_ms();
    CURLcode rc = curl_easy_perform(c);
    out->ms = e2e_now_ms() - t0;
    curl_slist_free_all(list);
    ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    out->body = k.buf ? k.buf : calloc(1, 1);
    out->len = k.len;
    out->json = json_loadb(out->body, out->len, JSON_ALLOW_NUL, NULL);
}

void e2e_resp_free(e2e_resp_t *r) {
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

void e2e_post(e2e_server_t *s, const char *path, const char *body, e2e_resp_t *out) {
    static const char *const json[] = {"Content-Type: application/json", NULL};
    e2e_request(s, "POST", path, json, body, out);
}

json_t *e2e_start_job(e2e_server_t *s, const char *body) {
    e2e_resp_t r;
    e2e_post(s, "/v1/jobs", body, &r);
    ck_assert_msg(r.status == 202, "POST /v1/jobs %s: %ld %s", body, r.status, r.body);
    ck_assert_ptr_nonnull(r.json);
    const char *id = json_string_value(json_object_get(r.json, "id"));
    ck_assert_ptr_nonnull(id);
    char want[64];
    snprintf(want, sizeof want, "/v1/jobs/%s", id);
    ck_assert_str_eq(r.location, want);
    json_t *job = json_incref(r.json);
    e2e_resp_free(&r);
    return job;
}

char *e2e_start_job_id(e2e_server_t *s, const char *body) {
    json_t *job = e2e_start_job(s, body);
    char *id = strdup(json_string_value(json_object_get(job, "id")));
    ck_assert_ptr_nonnull(id);
    json_decref(job);
    return id;
}

void e2e_put_flow(e2e_server_t *s, const char *name, const char *doc) {
    static const char *const json_ct[] = {"Content-Type: application/json", NULL};
    char path[160];
    e2e_resp_t r;
    snprintf(path, sizeof path, "/v1/flows/%s", name);
    e2e_request(s, "PUT", path, json_ct, doc, &r);
    ck_assert_msg(r.status == 201 || r.status == 200, "PUT %s: %ld %s", name, r.status, r.body);
    e2e_resp_free(&r);
}

json_t *e2e_shared(e2e_server_t *s, const char *id) {
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    return e2e_get_json(s, path);
}

char *e2e_history_nodes(e2e_server_t *s, const char *id) {
    char path[96], *out = calloc(1, 1024);
    ck_assert_ptr_nonnull(out);
    snprintf(path, sizeof path, "/v1/jobs/%s/history", id);
    json_t *h = e2e_get_json(s, path), *step;
    size_t i;
    json_array_foreach(json_object_get(h, "steps"), i, step) {
        const char *node = json_string_value(json_object_get(step, "node"));
        ck_assert(strlen(out) + strlen(node) + 2 < 1024);
        strncat(out, node, 1022 - strlen(out));
        strncat(out, " ", 1023 - strlen(out));
    }
    json_decref(h);
    return out;
}

json_t *e2e_get_json(e2e_server_t *s, const char *path) {
    e2e_resp_t r;
    e2e_request(s, "GET", path, NULL, NULL, &r);
    ck_assert_msg(r.status == 200, "GET %s: %ld %s", path, r.status, r.body);
    ck_assert_msg(r.json != NULL, "GET %s: not JSON: %s", path, r.body);
    json_t *v = json_incref(r.json);
    e2e_resp_free(&r);
    return v;
}

long e2e_get_status(e2e_server_t *s, const char *path) {
    e2e_resp_t r;
    e2e_request(s, "GET", path, NULL, NULL, &r);
    long status = r.status;
    e2e_resp_free(&r);
    return status;
}

void e2e_tmpdir(char *dir, size_t size, const char *prefix) {
    snprintf(dir, size, "/tmp/%s-XXXXXX", prefix);
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp %s: %s", dir, strerror(errno));
}

void e2e_rmtree(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static int is_final(const char *status) {
    return strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
           strcmp(status, "canceled") == 0;
}

json_t *e2e_wait_status(e2e_server_t *s, const char *id, const char *status, unsigned timeout_ms) {
    timeout_ms = e2e_ms(timeout_ms);
    uint64_t deadline = e2e_now_ms() + timeout_ms;
    char path[128];
    /* A long poll answers the next change after the status the server sees when it comes, which
     * may already be past the one asked for (queued, then running before the poll arrives, then
     * succeeded): a status that does not last is looked for by polling. */
    int poll_only = status != NULL && !is_final(status);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    for (;;) {
        json_t *job = e2e_get_json(s, path);
        const char *now = json_string_value(json_object_get(job, "status"));
        ck_assert_ptr_nonnull(now);
        if (status ? strcmp(now, status) == 0 : is_final(now))
            return job;
        uint64_t now_ms = e2e_now_ms();
        ck_assert_msg(now_ms < deadline, "job %s is %s, not %s, after %u ms", id, now,
                      status ? status : "ended", timeout_ms);
        json_decref(job);
        uint64_t left = deadline - now_ms;
        if (poll_only)
            sleep_ms(5);
        else
            snprintf(path, sizeof path, "/v1/jobs/%s?wait=%.3f", id,
                     left > 2000 ? 2.0 : (double)left / 1000);
    }
}

void e2e_assert_error(const e2e_resp_t *r, long status, const char *code, const char *words) {
    ck_assert_msg(r->status == status, "want %ld, got %ld: %s", status, r->status, r->body);
    ck_assert_msg(r->json != NULL, "the error body is not JSON: %s", r->body);
    ck_assert_msg(strncmp(r->content_type, "application/json", 16) == 0, "Content-Type %s",
                  r->content_type);
    json_t *err = json_object_get(r->json, "error");
    ck_assert_msg(json_is_object(err) && json_object_size(r->json) == 1, "not an error body: %s",
                  r->body);
    const char *got = json_string_value(json_object_get(err, "code"));
    const char *message = json_string_value(json_object_get(err, "message"));
    ck_assert_msg(got != NULL && strcmp(got, code) == 0, "want code %s: %s", code, r->body);
    ck_assert_msg(message != NULL && *message != '\0', "no message: %s", r->body);
    if (words != NULL)
        ck_assert_msg(strstr(message, words) != NULL, "the message does not say '%s': %s", words, message);
    ck_assert_msg(r->len > 0 && r->body[r->len - 1] == '\n', "the body does not end with a newline");
}

void e2e_assert_job(e2e_server_t *s, const char *id, const char *tenant, const char *status) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    json_t *job = e2e_get_json(s, path);
    ck_assert_str_eq(json_string_value(json_object_get(job, "id")), id);
    ck_assert_str_eq(json_string_value(json_object_get(job, "tenant")), tenant);
    if (status != NULL)
        ck_assert_str_eq(json_string_value(json_object_get(job, "status")), status);
    json_decref(job);
}

void e2e_assert_hidden(e2e_server_t *s, const char *method, const char *fmt, const char *body,
                       const char *id) {
    static const char missing_id[] = "0123456789abcdef0123456789abcdef"; /* no job has it */
    static const char *const json[] = {"Content-Type: application/json", NULL};
    char path[256], missing[256];
    e2e_resp_t r, m;
    snprintf(path, sizeof path, fmt, id);
    snprintf(missing, sizeof missing, fmt, missing_id);
    e2e_request(s, method, path, body ? json : NULL, body, &r);
    e2e_request(s, method, missing, body ? json : NULL, body, &m);
    e2e_assert_error(&m, 404, "not_found", missing_id);
    ck_assert_msg(r.status == 404, "%s %s of another tenant: %ld %s", method, path, r.status,
                  r.body);
    char *swapped = strdup(r.body);
    size_t n = strlen(id);
    ck_assert_uint_eq(n, strlen(missing_id));
    for (char *p = strstr(swapped, id); p != NULL; p = strstr(p + n, id))
        memcpy(p, missing_id, n);
    ck_assert_msg(strcmp(swapped, m.body) == 0, "%s %s: another tenant's job:\n%s\nno job:\n%s",
                  method, fmt, r.body, m.body);
    ck_assert_str_eq(r.content_type, m.content_type);
    free(swapped);
    e2e_resp_free(&r);
    e2e_resp_free(&m);
}

/* ---- many requests at once ---- */

static void run_calls(e2e_server_t *s, e2e_call_t *calls, size_t n, unsigned parallel, bool strict) {
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)parallel);
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)parallel);
    struct curl_slist *json = curl_slist_append(NULL, "Content-Type: application/json");
    json = curl_slist_append(json, "Expect:");
    json = add_auth(s, NULL, json);
    struct curl_slist *auth = add_auth(s, NULL, NULL);
    sink_t *sinks = calloc(n, sizeof *sinks);
    CURL **handles = calloc(n, sizeof *handles);
    size_t next = 0, running = 0, done = 0;
    /* Added a window at a time: curl queues what it cannot send yet, but a window keeps the
     * queue (and the memory of ten thousand handles) small. */
    while (done < n) {
        while (next < n && running < parallel * 4) {
            char url[512];
            CURL *c = curl_easy_init();
            snprintf(url, sizeof url, "%s%s", s->base, calls[next].path);
            curl_easy_setopt(c, CURLOPT_URL, url);
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, calls[next].method);
            if (calls[next].body != NULL) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, calls[next].body);
                curl_easy_setopt(c, CURLOPT_HTTPHEADER, json);
            } else if (auth != NULL) {
                curl_easy_setopt(c, CURLOPT_HTTPHEADER, auth);
            }
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
            curl_easy_setopt(c, CURLOPT_WRITEDATA, &sinks[next]);
            curl_easy_setopt(c, CURLOPT_PRIVATE, (void *)next);
            curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 120000L);
            handles[next] = c;
            curl_multi_add_handle(m, c);
            next++;
            running++;
        }
        int still;
        curl_multi_perform(m, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            void *priv;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            size_t i = (size_t)priv;
            if (strict)
                ck_assert_msg(msg->data.result == CURLE_OK, "%s %s: %s", calls[i].method, calls[i].path,
                              curl_easy_strerror(msg->data.result));
            calls[i].status = 0;
            if (msg->data.result == CURLE_OK)
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &calls[i].status);
            calls[i].resp = sinks[i].buf ? sinks[i].buf : calloc(1, 1);
            calls[i].resp_len = sinks[i].len;
            curl_multi_remove_handle(m, msg->easy_handle);
            curl_easy_cleanup(msg->easy_handle);
            handles[i] = NULL;
            running--;
            done++;
        }
        if (done < n)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    curl_slist_free_all(json);
    curl_slist_free_all(auth);
    free(sinks);
    free(handles);
    curl_multi_cleanup(m);
}

void e2e_calls(e2e_server_t *s, e2e_call_t *calls, size_t n, unsigned parallel) {
    run_calls(s, calls, n, parallel, true);
}

void e2e_calls_unchecked(e2e_server_t *s, e2e_call_t *calls, size_t n, unsigned parallel) {
    run_calls(s, calls, n, parallel, false);
}

void e2e_calls_free(e2e_call_t *calls, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(calls[i].resp);
        calls[i].resp = NULL;
    }
}

/* ---- event streams ---- */

static size_t on_stream(char *data, size_t size, size_t n, void *userdata) {
    e2e_stream_t *st = userdata;
    sink_t k = {st->buf, st->len, st->cap};
    size_t got = on_body(data, size, n, &k);
    st->buf = k.buf;
    st->len = k.len;
    st->cap = k.cap;
    return got;
}

void e2e_stream_open(e2e_stream_t *st, e2e_server_t *s, const char *path, const char *last_id) {
    char url[512];
    memset(st, 0, sizeof *st);
    snprintf(url, sizeof url, "%s%s", s->base, path);
    st->multi = curl_multi_init();
    st->curl = curl_easy_init();
    curl_easy_setopt(st->curl, CURLOPT_URL, url);
    if (last_id != NULL) {
        char h[64];
        snprintf(h, sizeof h, "Last-Event-ID: %s", last_id);
        st->headers = curl_slist_append(NULL, h);
    }
    st->headers = add_auth(s, NULL, st->headers);
    if (st->headers != NULL)
        curl_easy_setopt(st->curl, CURLOPT_HTTPHEADER, st->headers);
    curl_easy_setopt(st->curl, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(st->curl, CURLOPT_WRITEDATA, st);
    curl_multi_add_handle(st->multi, st->curl);
}

/* Pumps the stream for at most ms (less when something arrives). */
static void stream_pump(e2e_stream_t *st, unsigned ms) {
    int still;
    curl_multi_perform(st->multi, &still);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(st->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE) {
            ck_assert_msg(msg->data.result == CURLE_OK, "event stream: %s",
                          curl_easy_strerror(msg->data.result));
            curl_easy_getinfo(st->curl, CURLINFO_RESPONSE_CODE, &st->status);
            st->done = 1;
        }
    }
    if (!st->done)
        curl_multi_poll(st->multi, NULL, 0, (int)ms, NULL);
}

int e2e_stream_wait_for(e2e_stream_t *st, const char *needle, unsigned timeout_ms) {
    uint64_t deadline = e2e_now_ms() + e2e_ms(timeout_ms);
    for (;;) {
        if (st->buf != NULL && strstr(st->buf, needle) != NULL)
            return 1;
        if (st->done || e2e_now_ms() >= deadline)
            return 0;
        stream_pump(st, 50);
    }
}

int e2e_stream_wait_end(e2e_stream_t *st, unsigned timeout_ms) {
    uint64_t deadline = e2e_now_ms() + e2e_ms(timeout_ms);
    while (!st->done && e2e_now_ms() < deadline)
        stream_pump(st, 50);
    return st->done;
}

void e2e_stream_close(e2e_stream_t *st) {
    if (st->multi != NULL) {
        curl_multi_remove_handle(st->multi, st->curl);
        curl_easy_cleanup(st->curl);
        curl_multi_cleanup(st->multi);
    }
    curl_slist_free_all(st->headers);
    free(st->buf);
    memset(st, 0, sizeof *st);
}

json_t *e2e_sse_parse(const char *text) {
    json_t *frames = json_array();
    json_t *frame = NULL;
    const char *p = text ? text : "";
    while (*p != '\0') {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len == 0) { /* a blank line ends a frame */
            if (frame != NULL)
                json_array_append_new(frames, frame);
            frame = NULL;
        } else if (p[0] == ':') {
            json_array_append_new(frames, json_pack("{s:s#}", "comment", p + 1, (int)len - 1));
        } else {
            if (frame == NULL)
                frame = json_object();
            const char *colon = memchr(p, ':', len);
            ck_assert_msg(colon != NULL, "not an SSE field: %.*s", (int)len, p);
            size_t klen = (size_t)(colon - p);
            const char *v = colon + 1;
            if (*v == ' ')
                v++;
            size_t vlen = len - (size_t)(v - p);
            if (klen == 2 && strncmp(p, "id", 2) == 0) {
                json_object_set_new(frame, "id", json_integer(strtoll(v, NULL, 10)));
            } else if (klen == 5 && strncmp(p, "event", 5) == 0) {
                json_object_set_new(frame, "event", json_stringn(v, vlen));
            } else if (klen == 4 && strncmp(p, "data", 4) == 0) {
                json_t *data = json_loadb(v, vlen, 0, NULL);
                ck_assert_msg(data != NULL, "data is not JSON: %.*s", (int)vlen, v);
                json_object_set_new(frame, "data", data);
            }
        }
        if (eol == NULL)
            break;
        p = eol + 1;
    }
    json_decref(frame); /* an unfinished frame */
    return frames;
}

/* ---- raw TCP ---- */

int e2e_connect(const e2e_server_t *s) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s", strerror(errno));
    return fd;
}

int e2e_closed_within(int fd, unsigned timeout_ms) {
    uint64_t deadline = e2e_now_ms() + e2e_ms(timeout_ms);
    char buf[4096];
    for (;;) {
        uint64_t now = e2e_now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)(deadline - now));
        if (n <= 0)
            continue;
        ssize_t got = recv(fd, buf, sizeof buf, 0);
        if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN))
            return 1;
    }
}

char *e2e_raw(const e2e_server_t *s, const char *request, size_t len, unsigned timeout_ms) {
    int fd = e2e_connect(s);
    size_t sent = 0, got = 0, cap = 4096;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    while (sent < len) {
        ssize_t n = send(fd, request + sent, len - sent, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may answer and close before it has read everything */
        sent += (size_t)n;
    }
    uint64_t deadline = e2e_now_ms() + e2e_ms(timeout_ms);
    for (;;) {
        uint64_t now = e2e_now_ms();
        if (now >= deadline)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - now)) <= 0)
            continue;
        if (cap - got < 2048) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        ssize_t n = recv(fd, buf + got, cap - got - 1, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    close(fd);
    return buf;
}

int e2e_main(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ---- a webhook receiver ---- */

static void decode_secret(const char *text, unsigned char *out, size_t *len) {
    const char *b64 = text + 6; /* after whsec_ */
    size_t n = strlen(b64);
    int got = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
    ck_assert_int_gt(got, 0);
    *len = (size_t)got - (b64[n - 1] == '=') - (b64[n - 2] == '=');
}

static const char *text_of(json_t *v) {
    return json_string_value(v) ? json_string_value(v) : "";
}

/* The value of header name (lowercase) in head, copied into out; "" when absent. */
static void header(const char *head, const char *name, char *out, size_t cap) {
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r");
            snprintf(out, cap, "%.*s", (int)len, v);
            return;
        }
    }
}

/* As a user's server checks a delivery: HMAC-SHA256 of "id.timestamp.body" with the secret, in
 * base64, equal to one of the "v1,<base64>" signatures of the header. */
static int signature_ok(const e2e_receiver_t *r, const char *id, const char *ts, const char *body,
                        size_t len, const char *sigs) {
    size_t cap = strlen(id) + strlen(ts) + len + 3;
    char *msg = malloc(cap);
    ck_assert_ptr_nonnull(msg);
    size_t n = (size_t)snprintf(msg, cap, "%s.%s.", id, ts);
    memcpy(msg + n, body, len);
    unsigned char mac[32];
    unsigned maclen = 0;
    HMAC(EVP_sha256(), r->secret, (int)r->secret_len, (unsigned char *)msg, n + len, mac, &maclen);
    free(msg);
    char want[64];
    EVP_EncodeBlock((unsigned char *)want, mac, (int)maclen);
    char copy[2048];
    snprintf(copy, sizeof copy, "%s", sigs);
    char *save = NULL;
    for (char *s = strtok_r(copy, " ", &save); s != NULL; s = strtok_r(NULL, " ", &save))
        if (strncmp(s, "v1,", 3) == 0 && strcmp(s + 3, want) == 0)
            return 1;
    return 0;
}

/* The request on c: 0, or -1 when the connection ended first. */
static int serve_request(e2e_receiver_t *r, int c) {
    char buf[65536];
    size_t n = 0;
    char *end = NULL;
    while ((end = n >= 4 ? memmem(buf, n, "\r\n\r\n", 4) : NULL) == NULL) {
        struct pollfd q = {.fd = c, .events = POLLIN};
        if (r->stop || n == sizeof buf)
            return -1;
        if (poll(&q, 1, 50) <= 0)
            continue;
        ssize_t got = read(c, buf + n, sizeof buf - n);
        if (got <= 0)
            return -1;
        n += (size_t)got;
    }
    *end = '\0';
    char clen[32], id[128], ts[32], sig[2048];
    header(buf, "content-length", clen, sizeof clen);
    header(buf, "webhook-id", id, sizeof id);
    header(buf, "webhook-timestamp", ts, sizeof ts);
    header(buf, "webhook-signature", sig, sizeof sig);
    size_t want = (size_t)strtoul(clen, NULL, 10), head = (size_t)(end + 4 - buf);
    while (n < head + want && n < sizeof buf) {
        ssize_t got = read(c, buf + n, sizeof buf - n);
        if (got <= 0)
            return -1;
        n += (size_t)got;
    }
    const char *body = buf + head;
    long status;
    pthread_mutex_lock(&r->lock);
    if (!signature_ok(r, id, ts, body, want, sig)) {
        r->bad++;
        status = 401;
    } else {
        status = r->ngot < r->nscript ? r->script[r->ngot] : r->then;
        if (r->ngot < E2E_RECEIVER_MAX) {
            e2e_got_t *g = &r->got[r->ngot++];
            json_t *event = json_loadb(body, want, 0, NULL);
            snprintf(g->id, sizeof g->id, "%s", id);
            json_t *data = json_object_get(event, "data");
            snprintf(g->type, sizeof g->type, "%s", text_of(json_object_get(event, "type")));
            snprintf(g->job, sizeof g->job, "%s", text_of(json_object_get(data, "id")));
            snprintf(g->status, sizeof g->status, "%s", text_of(json_object_get(data, "status")));
            g->answered = status;
            json_decref(event);
        }
    }
    pthread_mutex_unlock(&r->lock);
    char answer[160];
    /* one request a connection: the receiver serves one connection at a time */
    int len = snprintf(answer, sizeof answer,
                       "HTTP/1.1 %ld Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                       status);
    return write(c, answer, (size_t)len) == len ? 0 : -1;
}

static void *receiver_main(void *arg) {
    e2e_receiver_t *r = arg;
    while (!r->stop) {
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept4(r->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        serve_request(r, c);
        close(c);
    }
    return NULL;
}

/* A socket on 127.0.0.1 and a free port; nobody accepts on it until e2e_receiver_run. */
void e2e_receiver_open(e2e_receiver_t *r, const char *secret) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    r->then = 200;
    decode_secret(secret, r->secret, &r->secret_len);
    r->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(r->fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(r->fd, 64), 0);
    ck_assert_int_eq(getsockname(r->fd, (struct sockaddr *)&a, &len), 0);
    r->port = ntohs(a.sin_port);
}

void e2e_receiver_run(e2e_receiver_t *r) {
    ck_assert_int_eq(pthread_create(&r->thread, NULL, receiver_main, r), 0);
}

void e2e_receiver_close(e2e_receiver_t *r) {
    if (r->thread) {
        r->stop = 1;
        pthread_join(r->thread, NULL);
    }
    close(r->fd);
    pthread_mutex_destroy(&r->lock);
}

size_t e2e_receiver_count(e2e_receiver_t *r) {
    pthread_mutex_lock(&r->lock);
    size_t n = r->ngot;
    pthread_mutex_unlock(&r->lock);
    return n;
}

void e2e_receiver_wait(e2e_receiver_t *r, size_t n, unsigned timeout_ms) {
    uint64_t deadline = e2e_now_ms() + e2e_ms(timeout_ms);
    while (e2e_receiver_count(r) < n) {
        ck_assert_msg(e2e_now_ms() < deadline, "the receiver got %zu deliveries, not %zu",
                      e2e_receiver_count(r), n);
        usleep(10000);
    }
}

/* The good deliveries of job id, in order, into out; their count. */
size_t e2e_receiver_of(e2e_receiver_t *r, const char *id, e2e_got_t *out, size_t cap) {
    size_t n = 0;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->ngot; i++)
        if (strcmp(r->got[i].job, id) == 0 && n < cap)
            out[n++] = r->got[i];
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* ---- checkpoints as patches ---- */

const char e2e_ticks_doc[] =
    "{\"name\": \"ticks\", \"start\": \"tick\", \"nodes\": {"
    " \"tick\": {\"type\": \"sleep\", \"params\": {\"seconds\": 0.01},"
    "  \"post\": [\"shared.n = shared.n + 1\", \"shared['k/~' .. shared.n] = shared.n\","
    "   \"if shared.n == 5 then shared.drop = nil end\","
    "   \"if shared.n < shared.limit then return 'again' end\"],"
    "  \"next\": {\"again\": \"tick\"}}}}";

json_t *e2e_ticks_initial(int limit) {
    return json_pack("{s:i, s:i, s:b, s:s}", "n", 0, "limit", limit, "drop", 1, "big",
                     "a value no step writes");
}

void e2e_ticks_check(json_t *got, int limit) {
    ck_assert_int_eq(json_integer_value(json_object_get(got, "n")), limit);
    ck_assert_ptr_null(json_object_get(got, "drop"));
    ck_assert_str_eq(json_string_value(json_object_get(got, "big")), "a value no step writes");
    for (int k = 1; k <= limit; k++) {
        char key[32];
        snprintf(key, sizeof key, "k/~%d", k);
        ck_assert_int_eq(json_integer_value(json_object_get(got, key)), k);
    }
    ck_assert_uint_eq(json_object_size(got), (size_t)limit + 3);
}

void e2e_patch_apply(json_t *doc, json_t *patch) {
    size_t i;
    json_t *op;
    ck_assert(json_is_array(patch));
    json_array_foreach(patch, i, op) {
        const char *path = json_string_value(json_object_get(op, "path"));
        const char *name = json_string_value(json_object_get(op, "op"));
        ck_assert(path != NULL && path[0] == '/' && strchr(path + 1, '/') == NULL);
        char key[256];
        size_t n = 0;
        for (const char *p = path + 1; *p && n + 1 < sizeof key; p++) {
            if (*p == '~') {
                p++;
                key[n++] = *p == '0' ? '~' : '/';
            } else {
                key[n++] = *p;
            }
        }
        key[n] = '\0';
        if (strcmp(name, "remove") == 0) {
            ck_assert_int_eq(json_object_del(doc, key), 0);
        } else {
            ck_assert_str_eq(name, "add");
            json_object_set(doc, key, json_object_get(op, "value"));
        }
    }
}

size_t e2e_follow_steps(e2e_server_t *s, const char *id, const char *last_id, json_t *doc,
                        json_t *at, json_t *ids) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    e2e_stream_t st;
    e2e_stream_open(&st, s, path, last_id);
    ck_assert(e2e_stream_wait_end(&st, 20000));
    json_t *frames = e2e_sse_parse(st.buf);
    size_t i, steps = 0;
    json_t *f;
    json_array_foreach(frames, i, f) {
        const char *ev = json_string_value(json_object_get(f, "event"));
        if (ev == NULL || strcmp(ev, "step") != 0)
            continue;
        json_t *data = json_object_get(f, "data");
        e2e_patch_apply(doc, json_object_get(data, "patch"));
        char seq[32];
        snprintf(seq, sizeof seq, "%lld", json_integer_value(json_object_get(data, "seq")));
        if (at != NULL)
            json_object_set_new(at, seq, json_deep_copy(doc));
        if (ids != NULL)
            json_object_set(ids, seq, json_object_get(f, "id"));
        steps++;
    }
    json_decref(frames);
    e2e_stream_close(&st);
    return steps;
}
