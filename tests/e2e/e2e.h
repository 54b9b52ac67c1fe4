/* e2e.h: what the end-to-end tests share: starting build/flowd (or $FLOWD_BIN) on a free port as a
 * child process, with its log in a file; HTTP requests with libcurl (one at a time on a kept-alive
 * connection, many at once with a multi handle, or an event stream read as it comes); raw TCP
 * connections for what curl will not do; and deadlines instead of sleeps.
 *
 * Every function fails the running Check test (ck_assert) when something is not as it must be, so
 * the tests read like the behaviour they check. A server left running by a failed test is killed
 * with the test's process (PR_SET_PDEATHSIG and an atexit handler). */
#ifndef E2E_H
#define E2E_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>

typedef struct e2e_server {
    pid_t pid;
    unsigned port;
    char log_path[64];
    char base[64];  /* "http://127.0.0.1:PORT" */
    CURL *curl;     /* kept alive between requests */
    char auth[160]; /* "Authorization: Bearer KEY" that every request sends unless its headers have
                     * an Authorization of their own; "" none (e2e_use_key sets it) */
} e2e_server_t;

/* A deadline of ms milliseconds on this run: ms times $E2E_TIME_SCALE when that is a number from 1
 * to 100, else 4 times under $FLOWD_WRAPPER (valgrind runs flowd many times slower, and `make
 * valgrind` runs two such suites on two cores), else ms itself. Every wait below takes it, and so do
 * the tests' own upper bounds on how long something took; lower bounds (it waited at least this
 * long) do not need it. */
unsigned e2e_ms(unsigned ms);

/* Starts flowd ($FLOWD_BIN, default build/flowd; under $FLOWD_WRAPPER when set, e.g. valgrind) with
 * --port 0 and the given flags (a NULL-terminated list), waits for its "listening on" line (10 s at
 * most, a minute with a wrapper) and reads the port from it. */
void e2e_start(e2e_server_t *s, ...) __attribute__((sentinel));
/* Sends SIGTERM and waits up to e2e_ms(timeout_ms) for the exit; returns the exit status, or -1
 * when it did not exit in time (it is killed then) or died of a signal. */
int e2e_stop(e2e_server_t *s, unsigned timeout_ms);
/* Kills it with SIGKILL, as a crash would, and waits for it to be gone. */
void e2e_kill(e2e_server_t *s);
/* Runs flowd with these flags (a NULL-terminated list) to its end (10 s at most); *out (may be
 * NULL) gets what it wrote to stdout and stderr (malloc'd). Returns the exit status. */
int e2e_run(const char *const *args, char **out);
/* The same with input (NULL: the test's own stdin) as flowd's standard input. */
int e2e_run_input(const char *const *args, const char *input, char **out);
/* Removes the log file (after a test that passed; a failed one leaves it for a look). */
void e2e_cleanup(e2e_server_t *s);
/* Everything flowd logged so far (malloc'd). */
char *e2e_log(const e2e_server_t *s);
/* The SQLite store's schema version, and the column of jobs that it added: what a file made by an
 * older flowd and opened by this one must have (the migration tests). */
#define E2E_SQLITE_VERSION "10"
#define E2E_SQLITE_NEWEST_COLUMN "traceparent"
/* Fails the test unless the SQLite file at path (flowd stopped) is of E2E_SQLITE_VERSION and its
 * jobs have E2E_SQLITE_NEWEST_COLUMN. */
void e2e_assert_sqlite_current(const char *path);
/* POST /v1/jobs/{id}/input {"value": value} to s; fails the test unless it is accepted (202). */
void e2e_answer(e2e_server_t *s, const char *id, const char *value);
/* A job made with a W3C trace context, for the tests that it is kept: the flow "traced" (written to
 * flows) waits for input and then calls base's /echo; e2e_post_traced posts it to s with the
 * traceparent header and returns its id (malloc'd); e2e_assert_traced fails the test unless the
 * job's shared store (from /shared) shows that the call carried that trace id (when: for the
 * message, "after the restart"). */
void e2e_write_traced_flow(const char *flows);
char *e2e_post_traced(e2e_server_t *s, unsigned mock_port);
void e2e_assert_traced(json_t *shared, const char *when);
/* Writes text to dir/name (a flow document for --flows, say); fails the test when it cannot. */
void e2e_write_file(const char *dir, const char *name, const char *text);
/* The key file line of key (any text: the file holds its SHA-256), "<sha256 hex> name role
 * tenant\n", into out (at least 256 bytes). */
void e2e_key_line(const char *key, const char *name, const char *role, const char *tenant,
                  char *out, size_t len);
/* The keys of the tests of who may act on a job: tenant a's submit and read keys, tenant b's submit
 * key, and an admin key (tenant ops). e2e_write_tenant_keys writes them to dir/keys and puts its
 * path into path (len bytes), for --keys. */
#define E2E_SUBMIT_A "fk_e2e-submit-a-0123456789"
#define E2E_READ_A "fk_e2e-read-a-0123456789"
#define E2E_SUBMIT_B "fk_e2e-submit-b-0123456789"
#define E2E_ADMIN "fk_e2e-admin-0123456789"
void e2e_write_tenant_keys(const char *dir, char *path, size_t len);
/* From now on s's requests send Authorization: Bearer key (NULL: no Authorization header). */
void e2e_use_key(e2e_server_t *s, const char *key);

typedef struct e2e_resp {
    long status;
    char *body;
    size_t len;
    json_t *json;           /* the body parsed, or NULL */
    char location[256];     /* response headers, "" when absent */
    char retry_after[32];
    char allow[64];
    char content_type[128];
    char connection[32];
    char www_authenticate[128];
    char request_id[160];
    char etag[32];
    uint64_t ms;            /* how long the request took */
} e2e_resp_t;

/* One request on the server's kept-alive connection. headers: NULL or a NULL-terminated list of
 * "Name: value"; body: NULL for none. out is overwritten (free it with e2e_resp_free). */
void e2e_request(e2e_server_t *s, const char *method, const char *path, const char *const *headers,
                 const char *body, e2e_resp_t *out);
void e2e_resp_free(e2e_resp_t *r);

/* POST path with a JSON body (Content-Type: application/json). */
void e2e_post(e2e_server_t *s, const char *path, const char *body, e2e_resp_t *out);
/* POST /v1/jobs, asserting 202 and a Location; returns the Job (new reference). */
json_t *e2e_start_job(e2e_server_t *s, const char *body);
/* The same, returning the new job's id (malloc'd). */
char *e2e_start_job_id(e2e_server_t *s, const char *body);
/* PUT /v1/flows/{name} with the document doc, asserting 200 or 201. */
void e2e_put_flow(e2e_server_t *s, const char *name, const char *doc);
/* GET /v1/jobs/{id}/shared, asserting 200 (new reference). */
json_t *e2e_shared(e2e_server_t *s, const char *id);
/* The nodes of job id's history, in order, a space after each: "b c " (malloc'd). */
char *e2e_history_nodes(e2e_server_t *s, const char *id);
/* GET path, asserting 200 and a JSON body; returns it (new reference). */
json_t *e2e_get_json(e2e_server_t *s, const char *path);
/* GET path on the kept-alive connection: its status only. */
long e2e_get_status(e2e_server_t *s, const char *path);
/* A new directory /tmp/PREFIX-XXXXXX into dir (size bytes); e2e_rmtree removes it and what it
 * holds. */
void e2e_tmpdir(char *dir, size_t size, const char *prefix);
void e2e_rmtree(const char *dir);
/* Long-polls the job until its status is `status` (NULL: any final one), at most timeout_ms;
 * returns the Job (new reference). */
json_t *e2e_wait_status(e2e_server_t *s, const char *id, const char *status, unsigned timeout_ms);
/* The status and the error body {"error": {"code": code, "message": ...}} whose message holds
 * `words` (NULL: anything). */
void e2e_assert_error(const e2e_resp_t *r, long status, const char *code, const char *words);
/* GET /v1/jobs/{id} with s's key answers 200 with a job of this tenant and, unless status is NULL,
 * this status. */
void e2e_assert_job(e2e_server_t *s, const char *id, const char *tenant, const char *status);
/* What s's key gets for `method fmt` (fmt has a %s for the job's id; body JSON or NULL) of job id
 * is a 404 that says, word for word, what it says of a job that does not exist (the ids swapped):
 * the answer for a job of another tenant. */
void e2e_assert_hidden(e2e_server_t *s, const char *method, const char *fmt, const char *body,
                       const char *id);

/* Many requests at once on a multi handle, at most `parallel` connections. */
typedef struct e2e_call {
    const char *method;
    char *path;     /* owned by the caller */
    char *body;     /* JSON, or NULL; owned by the caller */
    long status;    /* filled in */
    char *resp;     /* filled in, malloc'd (e2e_calls_free) */
    size_t resp_len;
} e2e_call_t;
void e2e_calls(e2e_server_t *s, e2e_call_t *calls, size_t n, unsigned parallel);
/* The same, for a server that may die meanwhile: a call that got no answer has status 0. */
void e2e_calls_unchecked(e2e_server_t *s, e2e_call_t *calls, size_t n, unsigned parallel);
void e2e_calls_free(e2e_call_t *calls, size_t n);

/* An event stream read as it comes. */
typedef struct e2e_stream {
    CURLM *multi;
    CURL *curl;
    struct curl_slist *headers;
    char *buf;
    size_t len, cap;
    int done;
    long status;
} e2e_stream_t;
/* Opens GET path (Last-Event-ID: last_id unless NULL). */
void e2e_stream_open(e2e_stream_t *st, e2e_server_t *s, const char *path, const char *last_id);
/* Reads until the text holds needle (1) or timeout_ms passes or the stream ends (0). */
int e2e_stream_wait_for(e2e_stream_t *st, const char *needle, unsigned timeout_ms);
/* Reads until the server ends the stream (1) or timeout_ms passes (0). */
int e2e_stream_wait_end(e2e_stream_t *st, unsigned timeout_ms);
void e2e_stream_close(e2e_stream_t *st);
/* The frames of an event stream text: an array of {"id": N, "event": name, "data": JSON}, and
 * comments as {"comment": text}. New reference. */
json_t *e2e_sse_parse(const char *text);

/* A raw TCP connection to the server; the fd. */
int e2e_connect(const e2e_server_t *s);
/* Whether the peer closes fd (read returns 0 or an error) within timeout_ms; data read meanwhile
 * is dropped. */
int e2e_closed_within(int fd, unsigned timeout_ms);
/* Sends request (len bytes, as they are: for what curl would tidy up) on a new connection and reads
 * until the server closes it or timeout_ms passes; returns what came (malloc'd, NUL-terminated). */
char *e2e_raw(const e2e_server_t *s, const char *request, size_t len, unsigned timeout_ms);

uint64_t e2e_now_ms(void);
/* Runs a suite with CK_FORK as set in the environment; the process exit status. */
int e2e_main(Suite *s);

/* A webhook receiver on 127.0.0.1 (a thread; one request a connection) that checks each delivery as
 * a user's server would: the Standard Webhooks signature recomputed from its secret (OpenSSL's
 * HMAC, not flowd's code); a wrong one gets 401 and counts in bad. It answers good ones with
 * script[0..nscript) in order, then `then` (change them under lock). */
#define E2E_RECEIVER_MAX 64
typedef struct e2e_got {
    char id[128];
    char type[32];
    char job[40];
    char status[16];
    long answered;
} e2e_got_t;

typedef struct e2e_receiver {
    int fd;
    unsigned port;
    unsigned char secret[64];
    size_t secret_len;
    pthread_t thread;
    _Atomic int stop;
    pthread_mutex_t lock;
    long script[8];     /* the answers to good deliveries, in order; then `then` */
    size_t nscript;
    long then;
    e2e_got_t got[E2E_RECEIVER_MAX]; /* good deliveries, in order */
    size_t ngot;
    size_t bad;         /* deliveries whose signature was wrong (answered 401) */
} e2e_receiver_t;

/* Binds a free port (nobody accepts until e2e_receiver_run: its backlog counts connections). */
void e2e_receiver_open(e2e_receiver_t *r, const char *secret);
void e2e_receiver_run(e2e_receiver_t *r);
void e2e_receiver_close(e2e_receiver_t *r);
size_t e2e_receiver_count(e2e_receiver_t *r); /* good deliveries so far */
/* Waits until it has had n good deliveries (fails the test after timeout_ms). */
void e2e_receiver_wait(e2e_receiver_t *r, size_t n, unsigned timeout_ms);
/* The good deliveries of job id, in order, into out; their count. */
size_t e2e_receiver_of(e2e_receiver_t *r, const char *id, e2e_got_t *out, size_t cap);

/* ---- checkpoints as patches (test_patches.c, test_postgres.c) ---- */

/* The flow "ticks": each step n counts, key "k/~<n>" is added, "drop" goes at n == 5, "big" is
 * never written, and it loops until n is shared.limit. */
extern const char e2e_ticks_doc[];
/* Its first shared store (a new reference). */
json_t *e2e_ticks_initial(int limit);
/* got is its store once it ran to limit. */
void e2e_ticks_check(json_t *got, int limit);
/* A client's own applier of what flowd sends: add and remove of top-level members. */
void e2e_patch_apply(json_t *doc, json_t *patch);
/* The job's events (from after last_id, NULL: all) to its end, applied to doc; at (may be NULL)
 * gets a copy of the store after each step, by seq, and ids (may be NULL) each step's event id.
 * Returns the number of step events. */
size_t e2e_follow_steps(e2e_server_t *s, const char *id, const char *last_id, json_t *doc,
                        json_t *at, json_t *ids);

/* The tables of a SQLite store of schema version 3 (before callbacks, schedules and queueing), for
 * tests that migrate a file made by hand: the test adds its meta row and its jobs. */
#define E2E_SQLITE_TABLES_V3 \
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);" \
    "CREATE TABLE jobs (" \
    " seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, flow TEXT NOT NULL, digest TEXT," \
    " status TEXT NOT NULL DEFAULT 'queued', created_us INTEGER NOT NULL, started_us INTEGER NOT NULL DEFAULT 0," \
    " finished_us INTEGER NOT NULL DEFAULT 0, idem_key TEXT, body_hash INTEGER NOT NULL DEFAULT 0," \
    " params TEXT, shared TEXT NOT NULL, resume_node TEXT, tries INTEGER NOT NULL DEFAULT 0," \
    " steps INTEGER NOT NULL DEFAULT 0, last_action TEXT, waiting_for TEXT, error_code TEXT," \
    " error_message TEXT, error_node TEXT, totals TEXT," \
    " tenant TEXT NOT NULL DEFAULT 'default', UNIQUE (tenant, idem_key));" \
    "CREATE TABLE steps (job INTEGER NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL," \
    " PRIMARY KEY (job, seq)) WITHOUT ROWID;" \
    "CREATE TABLE flow_versions (digest TEXT PRIMARY KEY, document TEXT NOT NULL);" \
    "CREATE TABLE flows (name TEXT PRIMARY KEY, document TEXT, updated_us INTEGER NOT NULL);"

#endif
