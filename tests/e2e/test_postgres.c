/* test_postgres.c: several flowd instances on one PostgreSQL database. The test starts its own
 * PostgreSQL: installed with apt-get when missing (as root), initdb into a temporary folder as the
 * postgres user, the server on 127.0.0.1 with a free port and its socket in that folder, a database
 * per test; everything is stopped and removed at the end, also when a test fails.
 *
 * Two flowd instances share 2,000 jobs and one is killed with SIGKILL in the middle: the other takes
 * its jobs over once their leases run out, and every job ends succeeded, finished exactly once, each
 * step of its history once. An instance paused past its lease writes nothing over the work of the
 * instance that took its jobs over. Any instance answers for any job: GET, the list, an event stream
 * to the end (Last-Event-ID included), input, cancel and Idempotency-Keys, with the answers the
 * instance that runs the job gives. With keys, every instance keeps a job to its tenant (404 to the
 * others, lists, Idempotency-Keys), and a database of schema version 1 gets tenants (and the
 * schedules table of version 3). Two instances holding the same schedule make each of its runs
 * once. A concurrency key and a flow's max_running hold over two instances (never more running
 * than the limit, in priority then arrival order), and an instance killed while its jobs hold a
 * key's turns gives them up once they have been taken over and ended. A job that failed on one
 * instance is redriven on another, and after a restart. An instance's lease is one row: renewing it
 * writes none of its jobs. A statement that fails in the writer's pipeline fails its own job only.
 *
 * Without PostgreSQL and without root to install it, the suite says so and runs nothing, except under
 * CI (the CI variable set), where that fails. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "e2e.h"
#include "support/mock.h"

/* ---- the PostgreSQL server of the suite ---- */

static char pg_bin[256];   /* the folder of initdb and postgres */
static char pg_dir[64];    /* the temporary folder: data/, the socket, the log */
static unsigned pg_port;
static pid_t pg_pid;
static pid_t pg_owner;     /* the suite's process: forked tests inherit its atexit handler */
static uid_t pg_uid;
static gid_t pg_gid;
static int as_root;

static int find_bin(void) {
    DIR *d = opendir("/usr/lib/postgresql");
    int best = -1;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[600];
        int v = (int)strtol(e->d_name, NULL, 10);
        snprintf(path, sizeof path, "/usr/lib/postgresql/%s/bin/postgres", e->d_name);
        if (v > best && access(path, X_OK) == 0) {
            best = v;
            snprintf(pg_bin, sizeof pg_bin, "/usr/lib/postgresql/%.200s/bin", e->d_name);
        }
    }
    if (d != NULL)
        closedir(d);
    return best >= 0 ? 0 : -1;
}

/* Runs argv as the postgres user (when we are root) with its output in pg_dir/name.log; the exit
 * status. */
static int run_pg(const char *const *argv, const char *name) {
    char log[128];
    snprintf(log, sizeof log, "%s/%s.log", pg_dir, name);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (as_root && (setgroups(0, NULL) != 0 || setgid(pg_gid) != 0 || setuid(pg_uid) != 0))
            _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static unsigned free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static void pg_conninfo(char *out, size_t size, const char *db) {
    snprintf(out, size, "postgresql://postgres@127.0.0.1:%u/%s?connect_timeout=5", pg_port, db);
}

static void pg_stop(void) {
    if (getpid() != pg_owner)
        return;
    if (pg_pid > 0) {
        kill(pg_pid, SIGINT); /* a fast shutdown */
        for (int i = 0; i < 500 && waitpid(pg_pid, NULL, WNOHANG) == 0; i++)
            usleep(10000);
        kill(pg_pid, SIGKILL);
        waitpid(pg_pid, NULL, 0);
        pg_pid = 0;
    }
    if (pg_dir[0] != '\0' && getenv("FLOWD_PG_KEEP") == NULL) { /* set: kept for a look */
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", pg_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "test_postgres: could not remove %s\n", pg_dir);
        pg_dir[0] = '\0';
    }
}

static void on_signal(int sig) {
    pg_stop();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Installs (when it can), initializes and starts PostgreSQL. 0, 1 when it is not to be had here
 * (reason in why), -1 when it failed. */
static int pg_start(char *why, size_t whylen) {
    as_root = geteuid() == 0;
    pg_owner = getpid();
    if (find_bin() < 0) {
        if (!as_root) {
            snprintf(why, whylen, "PostgreSQL is not installed, and installing it needs root (apt-get install postgresql)");
            return 1;
        }
        fprintf(stderr, "test_postgres: installing PostgreSQL with apt-get ...\n");
        if (system("DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
                   "apt-get install -y -qq --no-install-recommends postgresql >/dev/null") != 0 ||
            find_bin() < 0) {
            snprintf(why, whylen, "apt-get install postgresql failed");
            return -1;
        }
    }
    if (as_root) {
        struct passwd *pw = getpwnam("postgres");
        if (pw == NULL) {
            snprintf(why, whylen, "there is no postgres user to run PostgreSQL as");
            return -1;
        }
        pg_uid = pw->pw_uid;
        pg_gid = pw->pw_gid;
    }
    snprintf(pg_dir, sizeof pg_dir, "/tmp/flowd-pg-XXXXXX");
    if (mkdtemp(pg_dir) == NULL || (as_root && chown(pg_dir, pg_uid, pg_gid) != 0)) {
        snprintf(why, whylen, "cannot make %s: %s", pg_dir, strerror(errno));
        return -1;
    }
    atexit(pg_stop);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    char initdb[300], postgres[300], data[96], port[16], sock[96];
    snprintf(initdb, sizeof initdb, "%s/initdb", pg_bin);
    snprintf(postgres, sizeof postgres, "%s/postgres", pg_bin);
    snprintf(data, sizeof data, "%s/data", pg_dir);
    const char *init_argv[] = {initdb, "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", NULL};
    if (run_pg(init_argv, "initdb") != 0) {
        snprintf(why, whylen, "initdb failed (its log: %s/initdb.log)", pg_dir);
        return -1;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        pg_port = free_port();
        snprintf(port, sizeof port, "%u", pg_port);
        snprintf(sock, sizeof sock, "%s", pg_dir);
        pid_t parent = getpid();
        pg_pid = fork();
        if (pg_pid == 0) {
            char log[128];
            snprintf(log, sizeof log, "%s/postgres.log", pg_dir);
            int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
            if (as_root && (setgroups(0, NULL) != 0 || setgid(pg_gid) != 0 || setuid(pg_uid) != 0))
                _exit(126);
            prctl(PR_SET_PDEATHSIG, SIGQUIT); /* after setuid, which clears it: dies with the suite */
            if (getppid() != parent)
                _exit(0);
            const char *argv[] = {postgres, "-D", data, "-p", port, "-k", sock, "-c", "listen_addresses=127.0.0.1",
                                  "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                                  "-c", "max_connections=200", NULL};
            execv(argv[0], (char *const *)argv);
            _exit(127);
        }
        char info[160];
        pg_conninfo(info, sizeof info, "postgres");
        for (int i = 0; i < 1000; i++) {
            if (PQping(info) == PQPING_OK)
                return 0;
            if (waitpid(pg_pid, NULL, WNOHANG) == pg_pid) { /* the port was taken meanwhile: another */
                pg_pid = 0;
                break;
            }
            usleep(10000);
        }
        if (pg_pid > 0)
            break;
    }
    snprintf(why, whylen, "postgres did not start (its log: %s/postgres.log)", pg_dir);
    return -1;
}

/* ---- helpers ---- */

static int ntest;
static char db_uri[160], flows[96], dir[64];

static PGconn *db(void) {
    PGconn *c = PQconnectdb(db_uri);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    return c;
}

/* The one number a query gives. */
static long long db_number(const char *sql) {
    PGconn *c = db();
    PGresult *res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1, "%s: %s", sql,
                  PQresultErrorMessage(res));
    long long v = PQgetisnull(res, 0, 0) ? 0 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    PQfinish(c);
    return v;
}

/* Runs a statement that returns no rows; fails the test unless it succeeds. */
static void db_exec(const char *sql) {
    PGconn *c = db();
    PGresult *res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(c);
}

/* Six steps: sleeps of shared.pause seconds, each followed by a set of shared.i, so that a job's
 * store shows that it ran to its end on the right input. */
static const char steps_doc[] =
    "{\"name\": \"steps\", \"start\": \"a\", \"nodes\": {"
    " \"a\": {\"type\": \"sleep\", \"params\": {\"seconds\": \"$shared/pause\"}, \"next\": {\"default\": \"b\"}},"
    " \"b\": {\"type\": \"set\", \"params\": {\"/b\": \"$shared/i\"}, \"next\": {\"default\": \"c\"}},"
    " \"c\": {\"type\": \"sleep\", \"params\": {\"seconds\": \"$shared/pause\"}, \"next\": {\"default\": \"d\"}},"
    " \"d\": {\"type\": \"set\", \"params\": {\"/d\": \"$shared/i\"}, \"next\": {\"default\": \"e\"}},"
    " \"e\": {\"type\": \"sleep\", \"params\": {\"seconds\": \"$shared/pause\"}, \"next\": {\"default\": \"f\"}},"
    " \"f\": {\"type\": \"set\", \"params\": {\"/f\": \"$shared/i\"}}}}";

static const char ask_doc[] =
    "{\"name\": \"ask\", \"start\": \"first\", \"nodes\": {"
    " \"first\": {\"type\": \"set\", \"params\": {\"/asked\": true}, \"next\": {\"default\": \"question\"}},"
    " \"question\": {\"type\": \"input\", \"params\": {\"prompt\": \"OK for {{$shared/who}}?\","
    "   \"actions\": {\"yes\": \"go\", \"no\": \"stop\"}}, \"out\": \"/answer\", \"next\": {\"go\": \"done\", \"stop\": null}},"
    " \"done\": {\"type\": \"set\", \"params\": {\"/done\": true}}}}";

/* A database and a flows folder of the test's own. */
static void setup(void) {
    char admin[160], sql[64];
    snprintf(dir, sizeof dir, "/tmp/flowd-pgt-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(flows, sizeof flows, "%s/flows", dir);
    ck_assert_int_eq(mkdir(flows, 0755), 0);
    e2e_write_file(flows, "steps.json", steps_doc);
    e2e_write_file(flows, "ask.json", ask_doc);
    pg_conninfo(admin, sizeof admin, "postgres");
    PGconn *c = PQconnectdb(admin);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    snprintf(sql, sizeof sql, "CREATE DATABASE t%d_%d", (int)getpid(), ++ntest);
    PGresult *res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(c);
    char name[32];
    snprintf(name, sizeof name, "t%d_%d", (int)getpid(), ntest);
    pg_conninfo(db_uri, sizeof db_uri, name);
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* Under valgrind everything is slower: fewer jobs, longer leases. */
static int slow(void) {
    const char *w = getenv("FLOWD_WRAPPER");
    return w != NULL && *w != '\0';
}

static void start(e2e_server_t *s, const char *lease) {
    e2e_start(s, "--store", db_uri, "--flows", flows, "--lease", lease, "--claim-interval", "200ms",
              "--poll-interval", "200ms", "--max-jobs", "100000", "--log-level", "warn", "--http-threads", "4", NULL);
}

/* ---- keys and tenants ---- */

#define ADMIN "fk_pg-admin-0123456789"
#define SUBMIT_A "fk_pg-submit-a-0123456789"
#define READ_A "fk_pg-read-a-0123456789"
#define SUBMIT_B "fk_pg-submit-b-0123456789"
#define READ_B "fk_pg-read-b-0123456789"
#define SUBMIT_D "fk_pg-submit-default-0123456789"
#define READ_D "fk_pg-read-default-0123456789"

/* An instance with a key file of the keys above. */
static void start_with_keys(e2e_server_t *s) {
    static const char *const keys[] = {
        ADMIN,  "root",     "admin", "ops",     SUBMIT_A, "submit-a", "submit", "a",
        READ_A, "reader-a", "read",  "a",       SUBMIT_B, "submit-b", "submit", "b",
        READ_B, "reader-b", "read",  "b",       SUBMIT_D, "submit-d", "submit", "default",
        READ_D, "reader-d", "read",  "default", NULL};
    char text[2048] = "", line[256], path[128];
    for (size_t i = 0; keys[i] != NULL; i += 4) {
        e2e_key_line(keys[i], keys[i + 1], keys[i + 2], keys[i + 3], line, sizeof line);
        strncat(text, line, sizeof text - strlen(text) - 1);
    }
    e2e_write_file(dir, "keys", text);
    snprintf(path, sizeof path, "%s/keys", dir);
    e2e_start(s, "--store", db_uri, "--flows", flows, "--lease", "10s", "--claim-interval", "200ms",
              "--poll-interval", "200ms", "--log-level", "warn", "--keys", path, NULL);
}

/* A request as key; its status (and the answer in *r unless r is NULL: the caller frees it). */
static long as(e2e_server_t *s, const char *key, const char *method, const char *path,
               const char *body, const char *idem, e2e_resp_t *r) {
    char ik[300];
    const char *h[] = {"Content-Type: application/json", ik, NULL};
    snprintf(ik, sizeof ik, "Idempotency-Key: %s", idem ? idem : "");
    if (idem == NULL)
        h[1] = NULL;
    e2e_resp_t mine;
    e2e_use_key(s, key);
    e2e_request(s, method, path, body ? h : NULL, body, r ? r : &mine);
    long status = r ? r->status : mine.status;
    if (r == NULL)
        e2e_resp_free(&mine);
    return status;
}

static json_t *get_value(e2e_server_t *s, const char *path) {
    e2e_resp_t r;
    e2e_request(s, "GET", path, NULL, NULL, &r);
    ck_assert_msg(r.status == 200, "GET %s: %ld %s", path, r.status, r.body ? r.body : "");
    json_t *v = json_loadb(r.body, r.len, JSON_DECODE_ANY, NULL);
    e2e_resp_free(&r);
    return v;
}

/* Posts n jobs of the steps flow to s, shared.i from first on; their ids go to ids[i]. */
static void submit(e2e_server_t *s, size_t first, size_t n, double pause, char (*ids)[40]) {
    e2e_call_t *calls = calloc(n, sizeof *calls);
    for (size_t k = 0; k < n; k++) {
        calls[k].method = "POST";
        calls[k].path = strdup("/v1/jobs");
        char body[128];
        snprintf(body, sizeof body, "{\"flow\": \"steps\", \"shared\": {\"i\": %zu, \"pause\": %.2f}}", first + k, pause);
        calls[k].body = strdup(body);
    }
    e2e_calls(s, calls, n, 32);
    for (size_t k = 0; k < n; k++) {
        ck_assert_msg(calls[k].status == 202, "POST %zu: %ld %s", k, calls[k].status, calls[k].resp ? calls[k].resp : "");
        json_t *job = json_loads(calls[k].resp, 0, NULL);
        snprintf(ids[first + k], sizeof ids[0], "%s", json_string_value(json_object_get(job, "id")));
        json_decref(job);
        free(calls[k].path);
        free(calls[k].body);
    }
    e2e_calls_free(calls, n);
    free(calls);
}

static void wait_db(const char *sql, long long want, unsigned timeout_ms) {
    timeout_ms = e2e_ms(timeout_ms);
    uint64_t deadline = e2e_now_ms() + timeout_ms;
    long long got;
    while ((got = db_number(sql)) != want && e2e_now_ms() < deadline)
        usleep(100000);
    ck_assert_msg(got == want, "%s: %lld, not %lld after %u ms", sql, got, want, timeout_ms);
}

/* Every job of ids ended succeeded exactly once, with the store of its own input, and a history of
 * its six steps, each once: asked of s, which ran only some of them. */
static void check_jobs(e2e_server_t *s, char (*ids)[40], size_t n) {
    ck_assert_int_eq(db_number("SELECT count(*) FROM jobs WHERE status <> 'succeeded'"), 0);
    ck_assert_int_eq(db_number("SELECT count(*) FROM jobs WHERE finishes <> 1"), 0);
    ck_assert_int_eq(db_number("SELECT count(*) FROM (SELECT job_id FROM steps GROUP BY job_id"
                               " HAVING count(*) <> 6 OR count(DISTINCT seq) <> 6 OR min(seq) <> 1 OR max(seq) <> 6) x"), 0);
    e2e_call_t *calls = calloc(2 * n, sizeof *calls);
    for (size_t i = 0; i < n; i++) {
        char path[96];
        snprintf(path, sizeof path, "/v1/jobs/%s/shared", ids[i]);
        calls[2 * i] = (e2e_call_t){.method = "GET", .path = strdup(path)};
        snprintf(path, sizeof path, "/v1/jobs/%s/history", ids[i]);
        calls[2 * i + 1] = (e2e_call_t){.method = "GET", .path = strdup(path)};
    }
    e2e_calls(s, calls, 2 * n, 16);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(calls[2 * i].status == 200 && calls[2 * i + 1].status == 200, "job %s: %ld %ld", ids[i],
                      calls[2 * i].status, calls[2 * i + 1].status);
        json_t *shared = json_loads(calls[2 * i].resp, 0, NULL);
        json_int_t want = (json_int_t)i;
        ck_assert_msg(json_integer_value(json_object_get(shared, "b")) == want &&
                          json_integer_value(json_object_get(shared, "d")) == want &&
                          json_integer_value(json_object_get(shared, "f")) == want,
                      "job %s: shared %s", ids[i], calls[2 * i].resp);
        json_decref(shared);
        json_t *history = json_loads(calls[2 * i + 1].resp, 0, NULL);
        json_t *steps = json_object_get(history, "steps");
        ck_assert_msg(json_array_size(steps) == 6, "job %s: %zu steps in its history: %s", ids[i],
                      json_array_size(steps), calls[2 * i + 1].resp);
        for (size_t k = 0; k < 6; k++)
            ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(steps, k), "seq")), (json_int_t)k + 1);
        json_decref(history);
        free(calls[2 * i].path);
        free(calls[2 * i + 1].path);
    }
    e2e_calls_free(calls, 2 * n);
    free(calls);
}

/* ---- the tests ---- */

START_TEST(test_two_instances_share_2000_jobs_and_one_is_killed) {
    size_t n = slow() ? 200 : 2000;
    char(*ids)[40] = calloc(n, sizeof *ids);
    e2e_server_t a, b;
    const char *lease = slow() ? "6s" : "2s";
    start(&a, lease);
    start(&b, lease);
    uint64_t t0 = e2e_now_ms();
    /* b's first, so that a's are all still running when it is killed, however slow the build */
    submit(&b, n / 2, n - n / 2, 0.7, ids);
    submit(&a, 0, n / 2, 0.7, ids);
    uint64_t t1 = e2e_now_ms();
    /* mid-run: a's jobs are between their steps */
    usleep(600000);
    long long a_done = db_number("SELECT count(*) FROM jobs WHERE status = 'succeeded'");
    e2e_kill(&a);
    wait_db("SELECT count(*) FROM jobs WHERE status = 'succeeded'", (long long)n, slow() ? 120000 : 30000);
    uint64_t t2 = e2e_now_ms();
    long long taken = db_number("SELECT count(*) FROM jobs WHERE claims > 0");
    fprintf(stderr, "test_postgres: %zu jobs posted to two instances in %llu ms; one killed with %lld done and the "
                    "other took %lld over; all succeeded %llu ms after the kill\n",
            n, (unsigned long long)(t1 - t0), a_done, taken, (unsigned long long)(t2 - t1 - 600));
    ck_assert_msg(taken > 0, "no job was taken over");
    check_jobs(&b, ids, n);
    ck_assert_int_eq(e2e_stop(&b, slow() ? 60000 : 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
    free(ids);
}
END_TEST

START_TEST(test_an_instance_paused_past_its_lease_overwrites_nothing) {
    size_t n = 100;
    char(*ids)[40] = calloc(n, sizeof *ids);
    e2e_server_t a, b;
    start(&a, slow() ? "4s" : "1s");
    start(&b, slow() ? "4s" : "1s");
    submit(&a, 0, n, 0.4, ids);
    usleep(300000);
    kill(a.pid, SIGSTOP); /* as a long GC pause or a frozen VM would */
    /* b takes the jobs over and ends them while a sleeps (a's session, perhaps in the middle of a
     * transaction that holds some of their rows, is ended by the server after a lease) */
    wait_db("SELECT count(*) FROM jobs WHERE status = 'succeeded'", (long long)n, slow() ? 120000 : 30000);
    kill(a.pid, SIGCONT);
    /* a wakes up with steps half done: its writes find another owner, so it drops the jobs */
    uint64_t deadline = e2e_now_ms() + e2e_ms((slow() ? 60000 : 10000));
    char *log = NULL;
    while (e2e_now_ms() < deadline) {
        free(log);
        log = e2e_log(&a);
        if (strstr(log, "was taken over by another instance") != NULL)
            break;
        usleep(100000);
    }
    ck_assert_msg(strstr(log, "was taken over by another instance") != NULL, "a did not notice: %s", log);
    free(log);
    usleep(1500000); /* what a still had in flight has run into the guard by now */
    check_jobs(&b, ids, n);
    /* and a answers for them as they are now: from the database */
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s", ids[0]);
    json_t *job = e2e_get_json(&a, path);
    ck_assert_str_eq(json_string_value(json_object_get(job, "status")), "succeeded");
    json_decref(job);
    ck_assert_int_eq(e2e_stop(&a, slow() ? 60000 : 15000), 0);
    ck_assert_int_eq(e2e_stop(&b, slow() ? 60000 : 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
    free(ids);
}
END_TEST

static char *job_id(json_t *job) {
    return strdup(json_string_value(json_object_get(job, "id")));
}

START_TEST(test_any_instance_answers_for_any_job) {
    e2e_server_t a, b;
    e2e_resp_t r;
    char path[128];
    start(&a, "10s");
    start(&b, "10s");
    /* a job that runs on a, watched and answered through b */
    json_t *job = e2e_start_job(&a, "{\"flow\": \"ask\", \"shared\": {\"who\": \"Ada\"}}");
    char *id = job_id(job);
    json_decref(job);
    job = e2e_wait_status(&b, id, "waiting", 10000); /* a long poll on b */
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(job, "waiting_for"), "prompt")), "OK for Ada?");
    ck_assert_str_eq(json_string_value(json_object_get(job, "current_node")), "question");
    json_decref(job);
    e2e_stream_t st;
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    e2e_stream_open(&st, &b, path, NULL);
    ck_assert(e2e_stream_wait_for(&st, "\"status\":\"waiting\"", 10000));
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    e2e_post(&b, path, "{\"value\": \"perhaps\"}", &r);
    e2e_assert_error(&r, 422, "invalid_input", "\"yes\", \"no\"");
    e2e_resp_free(&r);
    e2e_post(&b, path, "{\"value\": \"yes\"}", &r);
    ck_assert_int_eq(r.status, 202);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "id")), id);
    e2e_resp_free(&r);
    ck_assert_msg(e2e_stream_wait_end(&st, 10000), "the stream on b did not end: %s", st.buf);
    json_t *frames = e2e_sse_parse(st.buf);
    json_t *last = json_array_get(frames, json_array_size(frames) - 1);
    ck_assert_str_eq(json_string_value(json_object_get(last, "event")), "status");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(last, "data"), "status")), "succeeded");
    size_t i;
    json_t *f;
    json_int_t prev = 0;
    json_array_foreach(frames, i, f) {
        ck_assert_int_eq(json_integer_value(json_object_get(f, "id")), prev + 1);
        prev++;
    }
    json_decref(frames);
    e2e_stream_close(&st);
    /* the same stream from a and from b after Last-Event-ID 2 */
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    e2e_stream_t sa, sb;
    e2e_stream_open(&sa, &a, path, "2");
    e2e_stream_open(&sb, &b, path, "2");
    ck_assert(e2e_stream_wait_end(&sa, 10000));
    ck_assert(e2e_stream_wait_end(&sb, 10000));
    ck_assert_msg(strcmp(sa.buf, sb.buf) == 0, "a:\n%s\nb:\n%s", sa.buf, sb.buf);
    ck_assert_ptr_null(strstr(sa.buf, "id: 2\n"));
    ck_assert_ptr_nonnull(strstr(sa.buf, "id: 3\n"));
    e2e_stream_close(&sa);
    e2e_stream_close(&sb);
    /* its store, history and place in the list, from b */
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *shared = get_value(&b, path);
    ck_assert_str_eq(json_string_value(json_object_get(shared, "answer")), "yes");
    ck_assert(json_is_true(json_object_get(shared, "done")));
    json_decref(shared);
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?pointer=/who", id);
    json_t *who = get_value(&b, path);
    ck_assert_str_eq(json_string_value(who), "Ada");
    json_decref(who);
    snprintf(path, sizeof path, "/v1/jobs/%s/history", id);
    json_t *history = get_value(&b, path);
    ck_assert_uint_eq(json_array_size(json_object_get(history, "steps")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(history, "totals"), "steps")), 3);
    json_decref(history);
    json_t *list = e2e_get_json(&b, "/v1/jobs?flow=ask&status=succeeded");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(list, "jobs"), 0), "id")), id);
    json_decref(list);
    /* input and cancel of jobs that have ended, or do not wait */
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    e2e_post(&b, path, "{\"value\": \"yes\"}", &r);
    e2e_assert_error(&r, 409, "not_waiting", NULL);
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
    e2e_post(&b, path, "{}", &r);
    e2e_assert_error(&r, 409, "already_ended", NULL);
    e2e_resp_free(&r);
    free(id);
    job = e2e_start_job(&a, "{\"flow\": \"steps\", \"shared\": {\"i\": 1, \"pause\": 5}}");
    id = job_id(job);
    json_decref(job);
    json_decref(e2e_wait_status(&b, id, "running", 10000));
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    e2e_post(&b, path, "{\"value\": 1}", &r);
    e2e_assert_error(&r, 409, "not_waiting", "running");
    e2e_resp_free(&r);
    /* a cancel through b: answered once the job has stopped on a */
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
    e2e_post(&b, path, "{}", &r);
    ck_assert_int_eq(r.status, 202);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "canceled");
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    job = e2e_get_json(&a, path);
    ck_assert_str_eq(json_string_value(json_object_get(job, "status")), "canceled");
    json_decref(job);
    free(id);
    /* Idempotency-Keys: b knows the key a took */
    const char *key[] = {"Idempotency-Key: order-7", "Content-Type: application/json", NULL};
    const char *body = "{\"flow\": \"steps\", \"shared\": {\"i\": 7, \"pause\": 0}}";
    e2e_request(&a, "POST", "/v1/jobs", key, body, &r);
    ck_assert_int_eq(r.status, 202);
    id = job_id(r.json);
    e2e_resp_free(&r);
    e2e_request(&b, "POST", "/v1/jobs", key, body, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "id")), id);
    ck_assert_ptr_nonnull(strstr(r.location, id));
    e2e_resp_free(&r);
    e2e_request(&b, "POST", "/v1/jobs", key, "{\"flow\": \"steps\", \"shared\": {\"i\": 8, \"pause\": 0}}", &r);
    e2e_assert_error(&r, 409, "idempotency_conflict", NULL);
    e2e_resp_free(&r);
    free(id);
    /* an id no instance has */
    e2e_request(&b, "GET", "/v1/jobs/0123456789abcdef0123456789abcdef", NULL, NULL, &r);
    e2e_assert_error(&r, 404, "not_found", NULL);
    e2e_resp_free(&r);
    ck_assert_int_eq(e2e_stop(&a, slow() ? 60000 : 15000), 0);
    ck_assert_int_eq(e2e_stop(&b, slow() ? 60000 : 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
}
END_TEST

/* A job that runs on another instance has versions as one here: its Job's ETag is the id of the
 * last event the store has, a 304 names that version again (it named "0"), a long poll with
 * If-None-Match holds until there is something new, and the store and history name none. */
START_TEST(test_a_job_elsewhere_has_a_version_as_here) {
    e2e_server_t a, b;
    e2e_resp_t r;
    char path[128], inm[64];
    start(&a, "10s");
    start(&b, "10s");
    json_t *job = e2e_start_job(&a, "{\"flow\": \"ask\", \"shared\": {\"who\": \"Ada\"}}");
    char *id = job_id(job);
    json_decref(job);
    json_decref(e2e_wait_status(&b, id, "waiting", 10000));
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    e2e_request(&b, "GET", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(r.etag[0] == '"');
    ck_assert_str_ne(r.etag, "\"0\"");
    snprintf(inm, sizeof inm, "If-None-Match: %s", r.etag);
    const char *version = inm + strlen("If-None-Match: ");
    e2e_resp_free(&r);
    const char *const same[] = {inm, NULL};
    e2e_request(&b, "GET", path, same, NULL, &r);
    ck_assert_int_eq(r.status, 304);
    ck_assert_str_eq(r.etag, version);
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s?wait=1", id);
    e2e_request(&b, "GET", path, same, NULL, &r);
    ck_assert_int_eq(r.status, 304);
    ck_assert_uint_ge(r.ms, 900);
    ck_assert_str_eq(r.etag, version);
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    e2e_request(&b, "GET", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.etag, "");
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/history", id);
    e2e_request(&b, "GET", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.etag, "");
    e2e_resp_free(&r);
    /* its graph from b: the job's version, and the flow as the job started it, whatever the flow
     * has become since (b replaces it) */
    const char *const json_ct[] = {"Content-Type: application/json", NULL};
    e2e_request(&b, "PUT", "/v1/flows/ask", json_ct,
                "{\"start\": \"other\", \"nodes\": {\"other\": {\"type\": \"noop\"}}}", &r);
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/graph.svg", id);
    e2e_request(&b, "GET", path, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.content_type, "image/svg+xml");
    ck_assert_str_eq(r.etag, version);
    ck_assert_ptr_nonnull(strstr(r.body, "<g id=\"node&#45;first\" class=\"node visited start\">"));
    ck_assert_ptr_nonnull(strstr(r.body, "<g id=\"node&#45;question\" class=\"node waiting\">"));
    ck_assert_ptr_nonnull(strstr(r.body, "<g id=\"node&#45;done\" class=\"node not&#45;reached\">"));
    ck_assert_ptr_null(strstr(r.body, "node&#45;other"));
    e2e_resp_free(&r);
    e2e_request(&b, "GET", path, same, NULL, &r);
    ck_assert_int_eq(r.status, 304);
    e2e_resp_free(&r);
    /* an answer given on a is something new for a long poll on b */
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    e2e_post(&a, path, "{\"value\": \"yes\"}", &r);
    ck_assert_int_eq(r.status, 202);
    e2e_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s?wait=30", id);
    e2e_request(&b, "GET", path, same, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(r.etag[0] == '"');
    ck_assert_str_ne(r.etag, version);
    e2e_resp_free(&r);
    free(id);
    ck_assert_int_eq(e2e_stop(&a, slow() ? 60000 : 15000), 0);
    ck_assert_int_eq(e2e_stop(&b, slow() ? 60000 : 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
}
END_TEST

START_TEST(test_a_stopped_instance_hands_its_jobs_over_at_once) {
    e2e_server_t a, b;
    start(&a, "30s"); /* a lease this long: only a release lets b have them soon */
    start(&b, "30s");
    size_t n = 50;
    char(*ids)[40] = calloc(n, sizeof *ids);
    submit(&a, 0, n, 0.3, ids);
    usleep(200000);
    ck_assert_int_eq(e2e_stop(&a, slow() ? 60000 : 15000), 0); /* SIGTERM: the steps in flight end, the rest goes to b */
    wait_db("SELECT count(*) FROM jobs WHERE status = 'succeeded'", (long long)n, slow() ? 120000 : 15000);
    check_jobs(&b, ids, n);
    ck_assert_int_eq(e2e_stop(&b, slow() ? 60000 : 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
    free(ids);
}
END_TEST

/* A flow PUT through the API on one instance is committed before the answer, and an instance that
 * starts later reads it from the database and runs it. */
START_TEST(test_a_flow_put_to_one_instance_runs_on_the_next_to_start) {
    e2e_server_t a, c;
    start(&a, "10s");
    const char *const json_ct[] = {"Content-Type: application/json", NULL};
    e2e_resp_t r;
    e2e_request(&a, "PUT", "/v1/flows/greet", json_ct,
                "{\"start\": \"a\", \"nodes\": {\"a\": {\"type\": \"set\", \"params\": {\"/hi\": 1}}}}", &r);
    ck_assert_int_eq(r.status, 201);
    e2e_resp_free(&r);
    start(&c, "10s");
    json_t *greet = e2e_get_json(&c, "/v1/flows/greet");
    ck_assert_str_eq(json_string_value(json_object_get(greet, "source")), "document");
    json_decref(greet);
    json_t *job = e2e_start_job(&c, "{\"flow\": \"greet\"}");
    char id[40];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(job, "id")));
    json_decref(job);
    json_decref(e2e_wait_status(&c, id, "succeeded", slow() ? 60000 : 10000));
    ck_assert_int_eq(e2e_stop(&a, slow() ? 60000 : 15000), 0);
    ck_assert_int_eq(e2e_stop(&c, slow() ? 60000 : 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&c);
}
END_TEST

/* A job runs on a; b answers for it to its own tenant only, and word for word as for no job to the
 * others. */
START_TEST(test_every_instance_keeps_a_job_to_its_tenant) {
    e2e_server_t a, b;
    e2e_resp_t r;
    char path[128];
    start_with_keys(&a);
    start_with_keys(&b);
    e2e_use_key(&a, SUBMIT_A);
    json_t *job = e2e_start_job(&a, "{\"flow\": \"ask\", \"shared\": {\"who\": \"Ada\"}}");
    char *id = job_id(job);
    json_decref(job);
    e2e_use_key(&b, READ_A);
    job = e2e_wait_status(&b, id, "waiting", 10000); /* b reads it from the database */
    ck_assert_str_eq(json_string_value(json_object_get(job, "tenant")), "a");
    json_decref(job);
    static const struct {
        const char *method, *fmt, *body;
    } routes[] = {
        {"GET", "/v1/jobs/%s", NULL},         {"GET", "/v1/jobs/%s?wait=5", NULL},
        {"GET", "/v1/jobs/%s/shared", NULL},  {"GET", "/v1/jobs/%s/history", NULL},
        {"GET", "/v1/jobs/%s/events", NULL},  {"POST", "/v1/jobs/%s/input", "{\"value\": \"yes\"}"},
        {"POST", "/v1/jobs/%s/cancel", "{}"}, {"GET", "/v1/jobs/%s/graph.svg", NULL},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const char *other = strcmp(routes[i].method, "POST") == 0 ? SUBMIT_B : READ_B;
        e2e_use_key(&b, other);
        e2e_assert_hidden(&b, routes[i].method, routes[i].fmt, routes[i].body, id);
        e2e_use_key(&a, other);
        e2e_assert_hidden(&a, routes[i].method, routes[i].fmt, routes[i].body, id);
    }
    /* lists, from the database */
    e2e_use_key(&b, READ_B);
    json_t *list = e2e_get_json(&b, "/v1/jobs");
    ck_assert_uint_eq(json_array_size(json_object_get(list, "jobs")), 0);
    json_decref(list);
    e2e_use_key(&b, READ_A);
    list = e2e_get_json(&b, "/v1/jobs");
    ck_assert_uint_eq(json_array_size(json_object_get(list, "jobs")), 1);
    json_decref(list);
    e2e_use_key(&b, ADMIN);
    list = e2e_get_json(&b, "/v1/jobs?tenant=a");
    ck_assert_uint_eq(json_array_size(json_object_get(list, "jobs")), 1);
    json_decref(list);
    list = e2e_get_json(&b, "/v1/jobs?tenant=b");
    ck_assert_uint_eq(json_array_size(json_object_get(list, "jobs")), 0);
    json_decref(list);
    ck_assert_int_eq(as(&b, READ_A, "GET", "/v1/jobs?tenant=b", NULL, NULL, NULL), 403);
    /* counts, from the database: b counts the job a runs, for its tenant only */
    static const struct {
        const char *key, *query;
        json_int_t waiting;
    } counts[] = {{READ_A, "", 1},         {READ_B, "", 0},      {ADMIN, "", 1},
                  {ADMIN, "?tenant=b", 0}, {READ_A, "?flow=nope", 0}};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        char q[64];
        snprintf(q, sizeof q, "/v1/jobs/counts%s", counts[i].query);
        e2e_use_key(&b, counts[i].key);
        list = e2e_get_json(&b, q);
        json_t *c = json_object_get(list, "counts");
        ck_assert_msg(json_integer_value(json_object_get(c, "waiting")) == counts[i].waiting &&
                          json_integer_value(json_object_get(c, "queued")) == 0 &&
                          json_object_size(c) == 6,
                      "GET %s as %zu", q, i);
        json_decref(list);
    }
    ck_assert_int_eq(as(&b, READ_A, "GET", "/v1/jobs/counts?tenant=b", NULL, NULL, NULL), 403);
    /* still waiting: the other tenant's input and cancel did nothing; its own goes through b */
    snprintf(path, sizeof path, "/v1/jobs/%s/input", id);
    ck_assert_int_eq(as(&b, SUBMIT_A, "POST", path, "{\"value\": \"yes\"}", NULL, NULL), 202);
    e2e_use_key(&a, READ_A);
    job = e2e_wait_status(&a, id, "succeeded", 10000);
    json_decref(job);
    free(id);
    /* Idempotency-Keys per tenant, over both instances */
    const char *body = "{\"flow\": \"steps\", \"shared\": {\"i\": 7, \"pause\": 0}}";
    ck_assert_int_eq(as(&a, SUBMIT_A, "POST", "/v1/jobs", body, "order-7", &r), 202);
    id = job_id(r.json);
    e2e_resp_free(&r);
    ck_assert_int_eq(as(&b, SUBMIT_B, "POST", "/v1/jobs",
                        "{\"flow\": \"steps\", \"shared\": {\"pause\": 0}}", "order-7", &r),
                     202);
    ck_assert_str_ne(json_string_value(json_object_get(r.json, "id")), id);
    e2e_resp_free(&r);
    ck_assert_int_eq(as(&b, SUBMIT_A, "POST", "/v1/jobs", body, "order-7", &r), 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "id")), id);
    e2e_resp_free(&r);
    free(id);
    ck_assert_int_eq(e2e_stop(&a, slow() ? 60000 : 15000), 0);
    ck_assert_int_eq(e2e_stop(&b, slow() ? 60000 : 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
}
END_TEST

/* The jobs table of schema version 1, before tenants, as flowd made it, with a job that ended. */
static const char schema_v1[] =
    "CREATE TABLE flowd_meta (key text PRIMARY KEY, value text NOT NULL);"
    "INSERT INTO flowd_meta VALUES ('schema_version', '1');"
    "CREATE TABLE jobs ("
    " id text PRIMARY KEY, seq bigserial NOT NULL, flow text NOT NULL, digest text,"
    " status text NOT NULL DEFAULT 'queued', created_us bigint NOT NULL,"
    " started_us bigint NOT NULL DEFAULT 0, finished_us bigint NOT NULL DEFAULT 0,"
    " idem_key text UNIQUE, body_hash bigint NOT NULL DEFAULT 0,"
    " params text, shared text NOT NULL, resume_node text, tries integer NOT NULL DEFAULT 0,"
    " steps bigint NOT NULL DEFAULT 0, last_action text, waiting_for text, error_code text,"
    " error_message text, error_node text, totals text,"
    " owner text, lease_until timestamptz NOT NULL DEFAULT '-infinity',"
    " last_event bigint NOT NULL DEFAULT 0,"
    " claims integer NOT NULL DEFAULT 0, finishes integer NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_seq ON jobs (seq);"
    "INSERT INTO jobs (id, flow, status, created_us, started_us, finished_us, idem_key, body_hash,"
    " shared, steps, last_action, totals, finishes)"
    " VALUES ('00000000000000000000000000000001', 'steps', 'succeeded',"
    " (extract(epoch from now()) * 1000000)::bigint, (extract(epoch from now()) * 1000000)::bigint,"
    " (extract(epoch from now()) * 1000000)::bigint, 'old-key', $1::bigint, '{\"f\": 1}', 6,"
    " 'default',"
    " '{\"steps\": 6, \"failed\": 0, \"retries\": 0, \"dropped\": 0}', 1);";

START_TEST(test_a_version_1_database_gets_tenants) {
    const char *body = "{\"flow\": \"steps\", \"shared\": {\"i\": 1, \"pause\": 0}}";
    uint64_t h = 14695981039346656037u; /* flowd_hash_bytes: FNV-1a of the body that made the job */
    for (const char *p = body; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    char hash[32];
    snprintf(hash, sizeof hash, "%lld", (long long)h);
    PGconn *c = db();
    const char *statements = schema_v1;
    while (*statements != '\0') { /* one at a time: the last one takes the hash as a parameter */
        const char *end = strchr(statements, ';');
        char *one = strndup(statements, (size_t)(end - statements));
        const char *p[] = {hash};
        int n = strstr(one, "$1") != NULL;
        PGresult *res = PQexecParams(c, one, n, NULL, n ? p : NULL, NULL, NULL, 0);
        ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", one,
                      PQresultErrorMessage(res));
        PQclear(res);
        free(one);
        statements = end + 1;
    }
    PQfinish(c);
    e2e_server_t a;
    start_with_keys(&a);
    const char *old = "00000000000000000000000000000001";
    ck_assert_int_eq(db_number("SELECT value::int FROM flowd_meta WHERE key = 'schema_version'"),
                     11); /* 1 -> 2 (tenants) -> 3 (callbacks) -> 4 (schedules) -> 5 (queueing) -> 6 (turns)
                           * -> 7 (redrives) -> 8 (stores) -> 9 (visits) -> 10 (instances)
                           * -> 11 (traceparents) */
    ck_assert_int_eq(db_number("SELECT count(*) FROM information_schema.columns WHERE table_name = 'jobs'"
                               " AND column_name = 'traceparent'"), 1);
    /* version 5: it starts at once, at the default priority, with no key; version 6: no turn held */
    ck_assert_int_eq(db_number("SELECT count(*) FROM jobs WHERE start_at_us = 0 AND priority = 5"
                               " AND conc_key IS NULL AND NOT slot AND waits IS NULL"), 1);
    ck_assert_int_eq(db_number("SELECT count(*) FROM jobs WHERE tenant = 'default'"), 1);
    ck_assert_int_eq(db_number("SELECT count(*) FROM schedules"), 0); /* version 3's table */
    e2e_use_key(&a, READ_A);
    e2e_assert_hidden(&a, "GET", "/v1/jobs/%s", NULL, old);
    e2e_use_key(&a, READ_D);
    e2e_assert_job(&a, old, "default", "succeeded");
    /* the key it remembers is tenant default's now, and another tenant may have one of that name */
    e2e_resp_t r;
    ck_assert_int_eq(as(&a, SUBMIT_D, "POST", "/v1/jobs", body, "old-key", &r), 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "id")), old);
    e2e_resp_free(&r);
    ck_assert_int_eq(as(&a, SUBMIT_A, "POST", "/v1/jobs", body, "old-key", &r), 202);
    ck_assert_str_ne(json_string_value(json_object_get(r.json, "id")), old);
    e2e_resp_free(&r);
    ck_assert_int_eq(as(&a, SUBMIT_A, "POST", "/v1/jobs", body, "old-key", NULL), 200);
    ck_assert_int_eq(db_number("SELECT count(*) FROM jobs WHERE idem_key = 'old-key'"), 2);
    ck_assert_int_eq(e2e_stop(&a, slow() ? 60000 : 15000), 0);
    e2e_cleanup(&a);
}
END_TEST

/* Clients that hang up while their POST waits for its commit: every job the database took runs
 * (test_durable does the same on SQLite). */
static char *post_id(e2e_server_t *s, const char *body) {
    json_t *job = e2e_start_job(s, body);
    char *id = strdup(json_string_value(json_object_get(job, "id")));
    json_decref(job);
    return id;
}

static long long job_number(const char *fmt, const char *id) {
    char sql[256];
    snprintf(sql, sizeof sql, fmt, id);
    return db_number(sql);
}

/* Jobs released by a stopped instance are claimed highest priority first, and a delayed one only
 * once its time has come: b, room for one job at a time (--max-jobs 1), takes the priority-9 job
 * before the priority-1 one, and passes over a priority-9 job whose start_at is an hour away until
 * that time is moved to the past. Order is what is checked: each claim shows in the database. */
START_TEST(test_claims_take_priority_first_and_delayed_jobs_when_due) {
    e2e_server_t a, b;
    start(&a, "30s");
    char *low = post_id(&a, "{\"flow\": \"ask\", \"priority\": 1, \"shared\": {\"who\": \"low\"}}");
    char *high = post_id(&a, "{\"flow\": \"ask\", \"priority\": 9, \"shared\": {\"who\": \"high\"}}");
    char *later = post_id(&a, "{\"flow\": \"ask\", \"priority\": 9, \"delay\": \"1h\","
                              " \"shared\": {\"who\": \"later\"}}");
    json_decref(e2e_wait_status(&a, low, "waiting", 20000));
    json_decref(e2e_wait_status(&a, high, "waiting", 20000));
    ck_assert_int_eq(e2e_stop(&a, slow() ? 60000 : 15000), 0); /* all three released */
    ck_assert_int_eq(db_number("SELECT count(*) FROM jobs WHERE owner IS NOT NULL"), 0);
    e2e_start(&b, "--store", db_uri, "--flows", flows, "--lease", "30s", "--claim-interval", "200ms",
              "--poll-interval", "200ms", "--max-jobs", "1", "--log-level", "warn", NULL);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE id = '%s' AND owner IS NOT NULL", high);
    wait_db(sql, 1, slow() ? 60000 : 15000);
    ck_assert_int_eq(job_number("SELECT count(*) FROM jobs WHERE id = '%s' AND owner IS NULL", low), 1);
    ck_assert_int_eq(job_number("SELECT count(*) FROM jobs WHERE id = '%s' AND owner IS NULL", later), 1);
    /* b answers for the one it does not hold from the database, as it was posted */
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s", later);
    json_t *job = e2e_get_json(&b, path);
    ck_assert_str_eq(json_string_value(json_object_get(job, "status")), "queued");
    ck_assert_int_eq(json_integer_value(json_object_get(job, "priority")), 9);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(job, "start_at")));
    json_decref(job);
    json_decref(e2e_wait_status(&b, high, "waiting", 20000));
    e2e_answer(&b, high, "yes");
    json_decref(e2e_wait_status(&b, high, "succeeded", 20000));
    /* room for one again: the delayed job has the higher priority, but its time has not come */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE id = '%s' AND owner IS NOT NULL", low);
    wait_db(sql, 1, slow() ? 60000 : 15000);
    ck_assert_int_eq(job_number("SELECT claims FROM jobs WHERE id = '%s'", later), 0);
    json_decref(e2e_wait_status(&b, low, "waiting", 20000));
    e2e_answer(&b, low, "yes");
    json_decref(e2e_wait_status(&b, low, "succeeded", 20000));
    /* its time comes */
    snprintf(sql, sizeof sql, "UPDATE jobs SET start_at_us = start_at_us - 7200000000 WHERE id = '%s'", later);
    db_exec(sql);
    json_decref(e2e_wait_status(&b, later, "waiting", slow() ? 60000 : 20000));
    e2e_answer(&b, later, "yes");
    json_decref(e2e_wait_status(&b, later, "succeeded", 20000));
    ck_assert_int_eq(e2e_stop(&b, slow() ? 60000 : 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
    free(low);
    free(high);
    free(later);
}
END_TEST

START_TEST(test_a_job_stored_after_its_client_left_still_runs) {
    e2e_server_t s;
    start(&s, "5s");
    static const char body[] = "{\"flow\": \"steps\", \"shared\": {\"pause\": 0, \"i\": 1}}";
    char req[256];
    int len = snprintf(req, sizeof req,
                       "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\n\r\n%s", sizeof body - 1, body);
    for (int i = 0; i < 200; i++) {
        int fd = e2e_connect(&s);
        ck_assert_int_eq(write(fd, req, (size_t)len), len);
        close(fd);
    }
    usleep(500 * 1000); /* the last commits */
    long long stored = db_number("SELECT count(*) FROM jobs");
    wait_db("SELECT count(*) FROM jobs WHERE status <> 'succeeded'", 0, slow() ? 120000 : 30000);
    e2e_resp_t r;
    e2e_request(&s, "GET", "/metrics", NULL, NULL, &r);
    ck_assert_ptr_nonnull(strstr(r.body, "\nflowd_suspended_requests 0\n"));
    e2e_resp_free(&r);
    ck_assert_int_eq(e2e_stop(&s, 30000), 0);
    e2e_cleanup(&s);
    fprintf(stderr, "test_postgres: %lld of 200 jobs whose clients left were stored, and all ran\n", stored);
}
END_TEST

/* Waits until GET path on s answers status. */
static void wait_status(e2e_server_t *s, const char *path, long status, unsigned timeout_ms) {
    timeout_ms = e2e_ms(timeout_ms);
    uint64_t until = e2e_now_ms() + timeout_ms;
    long got;
    while ((got = e2e_get_status(s, path)) != status) {
        ck_assert_msg(e2e_now_ms() < until, "GET %s: %ld, not %ld, after %u ms", path, got, status,
                      timeout_ms);
        usleep(100 * 1000);
    }
}

static void start_info(e2e_server_t *s) {
    e2e_start(s, "--store", db_uri, "--flows", flows, "--lease", "10s", "--claim-interval", "200ms",
              "--poll-interval", "200ms", "--log-level", "info", NULL);
}

/* Two instances hold the same schedule (an every-second cron), PUT to one and read by the other
 * from the database: both try each run, and each run is one job in the database; a pause and a
 * deletion on one reach the other. Every "the run of T is job X" line either instance logged names a time
 * T that has exactly one job in the database; the instance that lost a run logged that it dropped
 * its job. */
START_TEST(test_each_run_of_a_schedule_starts_once_across_two_instances) {
    e2e_server_t a, b;
    start_info(&a);
    start_info(&b);
    const char *const json_ct[] = {"Content-Type: application/json", NULL};
    e2e_resp_t r;
    /* PUT to a: b reads it from the database within --poll-interval */
    e2e_request(&a, "PUT", "/v1/schedules/beat", json_ct,
                "{\"cron\": \"* * * * * *\", \"flow\": \"noop\"}", &r);
    ck_assert_int_eq(r.status, 201);
    e2e_resp_free(&r);
    wait_status(&b, "/v1/schedules/beat", 200, slow() ? 60000 : 10000);
    wait_db("SELECT least(count(*), 8) FROM jobs WHERE flow = 'noop'", 8, slow() ? 120000 : 30000);
    /* paused on a: b sees it, and neither makes runs */
    e2e_request(&a, "POST", "/v1/schedules/beat/pause", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
    uint64_t until = e2e_now_ms() + e2e_ms((slow() ? 60000 : 10000));
    for (;;) {
        json_t *o = e2e_get_json(&b, "/v1/schedules/beat");
        int paused = json_is_true(json_object_get(o, "paused"));
        json_decref(o);
        if (paused)
            break;
        ck_assert_msg(e2e_now_ms() < until, "b did not see the pause");
        usleep(100 * 1000);
    }
    usleep(1500 * 1000); /* a run under way as the pause came has made its job */
    long long made = db_number("SELECT count(*) FROM jobs WHERE flow = 'noop'");
    usleep(2500 * 1000);
    ck_assert_int_eq(db_number("SELECT count(*) FROM jobs WHERE flow = 'noop'"), made);
    /* deleted on a: gone from b */
    e2e_request(&a, "DELETE", "/v1/schedules/beat", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
    wait_status(&b, "/v1/schedules/beat", 404, slow() ? 60000 : 10000);
    ck_assert_int_eq(e2e_stop(&a, slow() ? 60000 : 15000), 0);
    ck_assert_int_eq(e2e_stop(&b, slow() ? 60000 : 15000), 0);
    char *logs[2] = {e2e_log(&a), e2e_log(&b)};
    size_t tried = 0, dropped = 0;
    for (int i = 0; i < 2; i++)
        for (const char *p = logs[i]; (p = strstr(p, "was made by another instance")) != NULL; p++)
            dropped++;
    /* each run's job is in the database once: as many jobs as distinct times tried */
    json_t *times = json_object();
    for (int i = 0; i < 2; i++) {
        const char *p = logs[i];
        while ((p = strstr(p, "schedule beat: the run of ")) != NULL) {
            char at[32] = "", id[40] = "";
            p += strlen("schedule beat: the run of ");
            ck_assert_int_eq(sscanf(p, "%31s is job %39s", at, id), 2);
            char sql[256];
            snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE id = '%.32s'", id);
            long long n = db_number(sql);
            json_t *have = json_object_get(times, at);
            long long before = have ? (long long)json_integer_value(have) : 0;
            json_object_set_new(times, at, json_integer(before + n));
            tried++;
        }
    }
    const char *at;
    json_t *n;
    json_object_foreach(times, at, n) {
        ck_assert_msg(json_integer_value(n) == 1, "the run of %s has %lld jobs", at,
                      (long long)json_integer_value(n));
    }
    long long jobs = db_number("SELECT count(*) FROM jobs WHERE flow = 'noop'");
    ck_assert_int_eq(jobs, (long long)json_object_size(times));
    ck_assert_msg(dropped > 0, "no run was tried by both instances (%zu tries)", tried);
    fprintf(stderr, "test_postgres: %lld runs of a schedule held by two instances, %zu tries, %zu "
            "dropped by the instance that lost\n", jobs, tried, dropped);
    json_decref(times);
    free(logs[0]);
    free(logs[1]);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
}
END_TEST

/* ---- callbacks ---- */

#define WH_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static void start_hooks(e2e_server_t *s, unsigned port) {
    char secrets[128], allow[48];
    snprintf(secrets, sizeof secrets, "%s/secrets", dir);
    snprintf(allow, sizeof allow, "127.0.0.1:%u", port);
    e2e_start(s, "--store", db_uri, "--flows", flows, "--lease", "1s", "--claim-interval", "200ms",
              "--poll-interval", "200ms", "--log-level", "warn", "--webhook-secrets", secrets,
              "--allow-outbound", allow, "--webhook-wait", "20ms", "--webhook-max-wait", "100ms",
              NULL);
}

/* A delivery is made by one instance at a time: the one that made it tries it, and when that one
 * is killed with deliveries owed, another claims them once its lease has run out, and makes them
 * with the same webhook-id. Any instance shows a job's deliveries. */
START_TEST(test_a_delivery_owed_by_a_killed_instance_is_made_by_another) {
    e2e_receiver_t r;
    e2e_server_t a, b;
    e2e_receiver_open(&r, WH_SECRET);
    r.then = 503; /* down until the kill */
    e2e_receiver_run(&r);
    e2e_write_file(dir, "secrets", "default " WH_SECRET "\n");
    start_hooks(&a, r.port);
    start_hooks(&b, r.port);
    char body[256], sql[160], path[96];
    snprintf(body, sizeof body,
             "{\"flow\": \"noop\", \"callback\": {\"url\": \"http://127.0.0.1:%u/hook\"}}", r.port);
    json_t *job = e2e_start_job(&a, body);
    char id[40];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(job, "id")));
    json_decref(job);
    e2e_receiver_wait(&r, 2, 10000); /* a tries, and tries again */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM deliveries WHERE job_id = '%s' AND attempts > 0", id);
    wait_db(sql, 1, 10000);
    /* b never tried it: every try so far came while a held it */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM deliveries WHERE job_id = '%s' AND owner IS NOT NULL", id);
    ck_assert_int_eq(db_number(sql), 1);
    e2e_kill(&a);
    pthread_mutex_lock(&r.lock);
    char first[128];
    snprintf(first, sizeof first, "%s", r.got[0].id);
    r.then = 200;
    pthread_mutex_unlock(&r.lock);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM deliveries WHERE job_id = '%s' AND state = 'delivered'", id);
    wait_db(sql, 1, slow() ? 60000 : 15000);
    pthread_mutex_lock(&r.lock);
    e2e_got_t last = r.got[r.ngot - 1];
    for (size_t i = 0; i < r.ngot; i++)
        ck_assert_str_eq(r.got[i].id, first);
    pthread_mutex_unlock(&r.lock);
    ck_assert_int_eq(last.answered, 200);
    ck_assert_uint_eq(r.bad, 0);
    snprintf(path, sizeof path, "/v1/jobs/%s/deliveries", id);
    json_t *all = e2e_get_json(&b, path);
    json_t *d = json_array_get(json_object_get(all, "deliveries"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(d, "id")), first);
    ck_assert_str_eq(json_string_value(json_object_get(d, "state")), "delivered");
    ck_assert_int_ge(json_integer_value(json_object_get(d, "attempts")), 3);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook", r.port);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(all, "callback"), "url")), url);
    json_decref(all);
    ck_assert_int_eq(e2e_stop(&b, 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
    e2e_receiver_close(&r);
}
END_TEST

/* ---- limits over every instance ---- */

/* A customer's jobs, at most two running at once over every instance (the flow's key), each
 * sleeping shared.pause seconds. */
static const char keyed_doc[] =
    "{\"name\": \"keyed\", \"concurrency\": {\"key\": \"$shared/customer\", \"limit\": 2},"
    " \"start\": \"a\", \"nodes\": {"
    " \"a\": {\"type\": \"sleep\", \"params\": {\"seconds\": \"$shared/pause\"}}}}";

/* The jobs of the keyed flow, as the database has them, by when they started. */
typedef struct ran {
    char id[40];
    long long started, finished, priority, seq;
} ran_t;

static size_t ran_jobs(ran_t *out, size_t cap) {
    PGconn *c = db();
    PGresult *res = PQexec(c, "SELECT id, started_us, finished_us, priority, seq FROM jobs"
                              " WHERE flow = 'keyed' ORDER BY started_us, seq");
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    size_t n = (size_t)PQntuples(res);
    ck_assert_uint_le(n, cap);
    for (size_t i = 0; i < n; i++) {
        snprintf(out[i].id, sizeof out[i].id, "%s", PQgetvalue(res, (int)i, 0));
        out[i].started = strtoll(PQgetvalue(res, (int)i, 1), NULL, 10);
        out[i].finished = strtoll(PQgetvalue(res, (int)i, 2), NULL, 10);
        out[i].priority = strtoll(PQgetvalue(res, (int)i, 3), NULL, 10);
        out[i].seq = strtoll(PQgetvalue(res, (int)i, 4), NULL, 10);
    }
    PQclear(res);
    PQfinish(c);
    return n;
}

/* At no moment did more than limit of them run: at each start, the jobs that had started and not
 * yet finished (a job's successor starts only after its end was committed). */
static void assert_never_more_than(const ran_t *r, size_t n, size_t limit) {
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(r[i].started > 0 && r[i].finished >= r[i].started, "job %s did not run", r[i].id);
        size_t at_once = 0;
        for (size_t k = 0; k < n; k++)
            at_once += r[k].started <= r[i].started && r[k].finished > r[i].started;
        ck_assert_msg(at_once <= limit, "%zu jobs ran at once when job %s started", at_once, r[i].id);
    }
}

/* Running jobs of the keyed flow as the two instances' lists show them (in turn), and its jobs
 * holding a turn in the database (of one customer, when customer is not NULL), sampled until none
 * is queued or running; the most seen at once of each. */
static void sample_running(e2e_server_t *a, e2e_server_t *b, const char *customer, long long *listed,
                           long long *held) {
    char sql[320];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE flow = 'keyed' AND status IN"
             " ('queued', 'running', 'waiting') AND (slot OR status <> 'queued')%s%s%s",
             customer ? " AND conc_key = '" : "", customer ? customer : "", customer ? "'" : "");
    *listed = *held = 0;
    uint64_t deadline = e2e_now_ms() + e2e_ms(30000);
    for (unsigned round = 0; e2e_now_ms() < deadline; round++) {
        long long h = db_number(sql);
        json_t *list = get_value(round % 2 ? a : b, "/v1/jobs?status=running&flow=keyed&limit=100");
        long long l = (long long)json_array_size(json_object_get(list, "jobs"));
        json_decref(list);
        *held = h > *held ? h : *held;
        *listed = l > *listed ? l : *listed;
        if (db_number("SELECT count(*) FROM jobs WHERE flow = 'keyed' AND status IN ('queued', 'running')") == 0)
            break;
        usleep(20000);
    }
}

/* Two instances with the keyed flow, and two jobs of acme that sleep pause seconds posted to the
 * second instance (or the first), both running: they hold the key's two turns. */
static void two_holding(e2e_server_t *a, e2e_server_t *b, e2e_server_t *to_second, const char *pause,
                        char **first, char **second) {
    char body[128];
    e2e_write_file(flows, "keyed.json", keyed_doc);
    start(a, "2s");
    start(b, "2s");
    snprintf(body, sizeof body, "{\"flow\": \"keyed\", \"shared\": {\"customer\": \"acme\", \"pause\": %s}}", pause);
    *first = post_id(a, body);
    *second = post_id(to_second, body);
    wait_db("SELECT count(*) FROM jobs WHERE flow = 'keyed' AND status = 'running'", 2, 10000);
}

/* A concurrency key holds over two instances: two long jobs take the key's two turns, then 16 more
 * of mixed priorities are sent to both instances in turn; never more than two run at once (sampled
 * from both instances' lists and the database while they run, and from when each started and
 * ended), all succeed, and they start highest priority first, then in the order they came (within
 * the one place a turn given at the same moment as the next may swap their starts). */
START_TEST(test_a_concurrency_key_holds_over_two_instances) {
    e2e_server_t a, b;
    char *first, *second;
    two_holding(&a, &b, &b, "3", &first, &second);
    size_t n = 16;
    for (size_t i = 0; i < n; i++) {
        char body[160];
        snprintf(body, sizeof body, "{\"flow\": \"keyed\", \"priority\": %zu, \"shared\": {\"customer\": \"acme\","
                 " \"pause\": 0.2}}", (i * 7) % 4 * 3);
        free(post_id(i % 2 ? &b : &a, body));
    }
    /* another customer is not held back by acme's key */
    char *other = post_id(&b, "{\"flow\": \"keyed\", \"shared\": {\"customer\": \"zeta\", \"pause\": 0.1}}");
    ck_assert_int_eq(db_number("SELECT count(*) FROM jobs WHERE flow = 'keyed' AND status = 'running'"
                               " AND conc_key = 'acme'"), 2);
    ck_assert_int_eq(db_number("SELECT count(*) FROM jobs WHERE flow = 'keyed' AND status = 'queued'"
                               " AND conc_key = 'acme'"), (long long)n);
    long long listed, held;
    sample_running(&a, &b, "acme", &listed, &held);
    wait_db("SELECT count(*) FROM jobs WHERE flow = 'keyed' AND status = 'succeeded'", (long long)n + 3, 20000);
    fprintf(stderr, "test_postgres: a key of limit 2 over two instances: at most %lld held turns, %lld listed running\n",
            held, listed);
    ck_assert_msg(held == 2, "%lld jobs of the key held turns at once", held);
    ck_assert_msg(listed <= 3, "%lld jobs listed running at once", listed); /* 2, and zeta's */
    ran_t r[32];
    size_t got = ran_jobs(r, 32);
    ck_assert_uint_eq(got, n + 3);
    /* acme's alone (zeta's runs beside them) */
    ran_t acme[32];
    size_t na = 0;
    for (size_t i = 0; i < got; i++)
        if (strcmp(r[i].id, other) != 0)
            acme[na++] = r[i];
    assert_never_more_than(acme, na, 2);
    ck_assert_msg(job_number("SELECT started_us FROM jobs WHERE id = '%s'", other) <
                      job_number("SELECT finished_us FROM jobs WHERE id = '%s'", first),
                  "another customer's job waited for acme's");
    ck_assert_msg(strcmp(acme[0].id, first) == 0 || strcmp(acme[1].id, first) == 0, "the first job did not start first");
    ck_assert_msg(strcmp(acme[0].id, second) == 0 || strcmp(acme[1].id, second) == 0, "the second job did not start first");
    /* the 16 that waited: by priority, then by arrival; a pair given turns together may swap */
    ran_t *w = acme + 2;
    for (size_t i = 0; i < n; i++)
        for (size_t k = i + 2; k < n; k++)
            ck_assert_msg(w[i].priority > w[k].priority || (w[i].priority == w[k].priority && w[i].seq < w[k].seq),
                          "job %s (priority %lld, seq %lld) started before job %s (priority %lld, seq %lld)", w[i].id,
                          w[i].priority, w[i].seq, w[k].id, w[k].priority, w[k].seq);
    ck_assert_int_eq(db_number("SELECT count(DISTINCT owner) FROM jobs WHERE flow = 'keyed'"), 2); /* both ran some */
    free(first);
    free(second);
    free(other);
    ck_assert_int_eq(e2e_stop(&a, 15000), 0);
    ck_assert_int_eq(e2e_stop(&b, 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
}
END_TEST

/* A flow's max_running holds over two instances too, over every customer. */
START_TEST(test_a_flow_limit_holds_over_two_instances) {
    e2e_write_file(flows, "keyed.json",
                   "{\"name\": \"keyed\", \"max_running\": 1, \"start\": \"a\", \"nodes\": {"
                   " \"a\": {\"type\": \"sleep\", \"params\": {\"seconds\": \"$shared/pause\"}}}}");
    e2e_server_t a, b;
    start(&a, "2s");
    start(&b, "2s");
    size_t n = 8;
    for (size_t i = 0; i < n; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"flow\": \"keyed\", \"shared\": {\"customer\": \"c%zu\", \"pause\": 0.2}}", i);
        free(post_id(i % 2 ? &b : &a, body));
    }
    long long listed, held;
    sample_running(&a, &b, NULL, &listed, &held);
    wait_db("SELECT count(*) FROM jobs WHERE flow = 'keyed' AND status = 'succeeded'", (long long)n, 20000);
    ck_assert_msg(held == 1 && listed <= 1, "%lld jobs of the flow held turns at once, %lld listed running", held,
                  listed);
    ran_t r[16];
    size_t got = ran_jobs(r, 16);
    assert_never_more_than(r, got, 1);
    ck_assert_int_eq(e2e_stop(&a, 15000), 0);
    ck_assert_int_eq(e2e_stop(&b, 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
}
END_TEST

/* An instance killed while two jobs of a key run there: the other instance's jobs of the key wait
 * (the two still count), it takes the two over once their lease has run out, and once they have
 * ended, its own run two at a time: the dead instance's turns came free, none was lost. */
START_TEST(test_a_killed_instances_turns_come_free_after_takeover) {
    e2e_server_t a, b;
    char *k1, *k2;
    two_holding(&a, &b, &a, "1", &k1, &k2);
    size_t n = 6;
    for (size_t i = 0; i < n; i++)
        free(post_id(&b, "{\"flow\": \"keyed\", \"shared\": {\"customer\": \"acme\", \"pause\": 0.3}}"));
    e2e_kill(&a);
    usleep(500000);
    ck_assert_int_eq(db_number("SELECT count(*) FROM jobs WHERE flow = 'keyed' AND status = 'queued'"), (long long)n);
    wait_db("SELECT count(*) FROM jobs WHERE flow = 'keyed' AND status = 'succeeded'", (long long)n + 2, 30000);
    ck_assert_int_eq(job_number("SELECT claims FROM jobs WHERE id = '%s'", k1), 1);
    ck_assert_int_eq(job_number("SELECT claims FROM jobs WHERE id = '%s'", k2), 1);
    ran_t r[16];
    size_t got = ran_jobs(r, 16);
    ck_assert_uint_eq(got, n + 2);
    assert_never_more_than(r, got, 2);
    free(k1);
    free(k2);
    ck_assert_int_eq(e2e_stop(&b, 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
}
END_TEST

/* ---- redrive ---- */

/* a counts its visits in /a; b's prep counts in /b_prep, then b fails on /broken until fixed */
static const char rd_fmt[] =
    "{\"name\": \"rd\", \"start\": \"a\", \"nodes\": {"
    " \"a\": {\"type\": \"noop\", \"prep\": \"shared.a = (shared.a or 0) + 1\","
    "        \"next\": {\"default\": \"b\"}},"
    " \"b\": {\"type\": \"lua\","
    "        \"prep\": [\"shared.b_prep = (shared.b_prep or 0) + 1\", \"return shared.broken\"],"
    "        \"exec\": \"%s\", \"next\": {\"default\": \"c\"}},"
    " \"c\": {\"type\": \"noop\", \"prep\": \"shared.c = (shared.c or 0) + 1\"}}}";

static char *redrive_on(e2e_server_t *s, const char *id, long want) {
    char path[96];
    e2e_resp_t r;
    snprintf(path, sizeof path, "/v1/jobs/%s/redrive", id);
    e2e_request(s, "POST", path, NULL, NULL, &r);
    ck_assert_msg(r.status == want, "redrive %s: %ld %s", id, r.status, r.body);
    char *nid = NULL;
    if (want == 202) {
        json_t *from = json_object_get(r.json, "redriven_from");
        ck_assert_str_eq(json_string_value(json_object_get(from, "job")), id);
        ck_assert_str_eq(json_string_value(json_object_get(from, "node")), "b");
        nid = strdup(json_string_value(json_object_get(r.json, "id")));
    } else {
        e2e_assert_error(&r, 409, "not_redrivable", "succeeded");
    }
    e2e_resp_free(&r);
    return nid;
}

/* It went on from b, after the fix, and a never ran again. */
static void assert_redriven(e2e_server_t *s, const char *id) {
    char path[96];
    json_decref(e2e_wait_status(s, id, "succeeded", 30000));
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *sh = get_value(s, path);
    ck_assert_int_eq(json_integer_value(json_object_get(sh, "a")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(sh, "b_prep")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(sh, "c")), 1);
    json_decref(sh);
    snprintf(path, sizeof path, "/v1/jobs/%s/history", id);
    json_t *h = get_value(s, path);
    json_t *steps = json_object_get(h, "steps");
    ck_assert_uint_eq(json_array_size(steps), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(steps, 0), "node")), "b");
    json_decref(h);
}

/* A job that failed on a is redriven on b (which reads what to start from in the database) and on
 * a, and again on a after a restart; every instance shows where a redriven job came from. */
START_TEST(test_a_failed_job_is_redriven_on_any_instance) {
    e2e_server_t a, b;
    char doc[2048], path[96];
    e2e_resp_t r;
    snprintf(doc, sizeof doc, rd_fmt, "if prep_res then error('broken') end return 1");
    e2e_write_file(flows, "rd.json", doc);
    start(&a, "10s");
    start(&b, "10s");
    char *j = post_id(&a, "{\"flow\": \"rd\", \"shared\": {\"broken\": true}}");
    json_decref(e2e_wait_status(&a, j, "failed", 20000));
    snprintf(doc, sizeof doc, rd_fmt, "return 1");
    const char *const ct[] = {"Content-Type: application/json", NULL};
    e2e_request(&a, "PUT", "/v1/flows/rd", ct, doc, &r);
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
    e2e_request(&b, "PUT", "/v1/flows/rd", ct, doc, &r);
    ck_assert_int_eq(r.status, 200);
    e2e_resp_free(&r);
    /* a store with patches keeps the step the redrive starts from the store of, not that store */
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE id = '%s' AND base_shared IS NULL"
             " AND base_step = 1 AND resume_node = 'b'", j);
    wait_db(sql, 1, 15000);
    char *on_b = redrive_on(&b, j, 202);
    assert_redriven(&b, on_b);
    char *on_a = redrive_on(&a, j, 202);
    assert_redriven(&a, on_a);
    /* a answers for b's from the database, redriven_from and all */
    snprintf(path, sizeof path, "/v1/jobs/%s", on_b);
    json_t *job = get_value(&a, path);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(job, "redriven_from"), "job")), j);
    json_decref(job);
    /* b's end reaches the database with b's next commit */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE id = '%s' AND status = 'succeeded'", on_b);
    wait_db(sql, 1, 15000);
    free(redrive_on(&a, on_b, 409));
    ck_assert_int_eq(e2e_stop(&a, 15000), 0);
    start(&a, "10s");
    char *after = redrive_on(&a, j, 202);
    assert_redriven(&a, after);
    ck_assert_int_eq(job_number("SELECT count(*) FROM jobs WHERE origin LIKE '%%%s%%'", j), 3);
    ck_assert_int_eq(e2e_stop(&a, 15000), 0);
    ck_assert_int_eq(e2e_stop(&b, 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
    free(j);
    free(on_a);
    free(on_b);
    free(after);
}
END_TEST

/* A job that succeeded on one instance is forked on the other, after its first step and with a
 * patch: the store of step 1 is made again from the database (its whole store and the patches
 * after), and the new job runs b and c only. */
START_TEST(test_a_job_is_forked_on_another_instance) {
    e2e_server_t a, b;
    char doc[2048], path[96], sql[160];
    e2e_resp_t r;
    snprintf(doc, sizeof doc, rd_fmt, "return 1");
    e2e_write_file(flows, "rd.json", doc);
    start(&a, "10s");
    start(&b, "10s");
    char *j = post_id(&a, "{\"flow\": \"rd\", \"shared\": {\"broken\": true}}");
    json_decref(e2e_wait_status(&a, j, "succeeded", 20000));
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE id = '%s' AND status = 'succeeded'", j);
    wait_db(sql, 1, 15000);
    snprintf(path, sizeof path, "/v1/jobs/%s/fork", j);
    const char *const ct[] = {"Content-Type: application/json", NULL};
    e2e_request(&b, "POST", path, ct,
                "{\"step\": 1, \"shared\": [{\"op\": \"add\", \"path\": \"/patched\", \"value\": true}]}",
                &r);
    ck_assert_msg(r.status == 202, "fork on b: %ld %s", r.status, r.body);
    json_t *from = json_object_get(r.json, "forked_from");
    ck_assert_str_eq(json_string_value(json_object_get(from, "job")), j);
    ck_assert_int_eq(json_integer_value(json_object_get(from, "step")), 1);
    char *f = strdup(json_string_value(json_object_get(r.json, "id")));
    e2e_resp_free(&r);
    json_decref(e2e_wait_status(&b, f, "succeeded", 20000));
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", f);
    json_t *sh = get_value(&b, path);
    ck_assert_int_eq(json_integer_value(json_object_get(sh, "a")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(sh, "b_prep")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(sh, "c")), 1);
    ck_assert(json_is_true(json_object_get(sh, "patched")));
    json_decref(sh);
    snprintf(path, sizeof path, "/v1/jobs/%s/history", f);
    json_t *h = get_value(&b, path);
    ck_assert_uint_eq(json_array_size(json_object_get(h, "steps")), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(h, "steps"), 0),
                                                       "node")), "b");
    json_decref(h);
    /* a step past the job's end is unknown, from either instance */
    snprintf(path, sizeof path, "/v1/jobs/%s/fork", j);
    e2e_request(&a, "POST", path, ct, "{\"step\": 99}", &r);
    e2e_assert_error(&r, 404, "unknown_step", NULL);
    e2e_resp_free(&r);
    ck_assert_int_eq(e2e_stop(&a, 15000), 0);
    ck_assert_int_eq(e2e_stop(&b, 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
    free(j);
    free(f);
}
END_TEST

/* ---- checkpoints as patches ---- */

/* An instance whose jobs write their whole store every 10 steps at most (--snapshot-steps). */
static void start_ticks(e2e_server_t *s, const char *lease) {
    e2e_write_file(flows, "ticks.json", e2e_ticks_doc);
    e2e_start(s, "--store", db_uri, "--flows", flows, "--lease", lease, "--claim-interval", "200ms",
              "--poll-interval", "200ms", "--log-level", "warn", "--snapshot-steps", "10", NULL);
}

static char *post_ticks(e2e_server_t *s, int limit) {
    json_t *body = json_pack("{s:s, s:o}", "flow", "ticks", "shared", e2e_ticks_initial(limit));
    char *text = json_dumps(body, JSON_COMPACT);
    char *id = post_id(s, text);
    free(text);
    json_decref(body);
    return id;
}

/* A job's steps and how many of them are after its last whole store, as the database has them. */
static void stored_steps(const char *id, long long *steps, long long *after) {
    *steps = job_number("SELECT steps FROM jobs WHERE id = '%s'", id);
    *after = *steps - job_number("SELECT COALESCE(max(step), 0) FROM stores WHERE job_id = '%s'", id);
}

/* GET /v1/jobs/{id}/shared?step=N on PostgreSQL, from the instance that ran the job and from the
 * other one, gives the store the step events' patches make, as of each step the log keeps; 410
 * before that, 404 beyond. The running job's row holds {} (a store in it would be rewritten at
 * every step), and a job keeps at most two whole stores. */
START_TEST(test_step_reads_on_postgres_match_the_patches) {
    enum { LIMIT = 45 }; /* not a multiple of 10: steps after the last whole store */
    e2e_server_t a, b;
    start_ticks(&a, "10s");
    start_ticks(&b, "10s");
    char *id = post_ticks(&a, LIMIT);
    json_t *doc = e2e_ticks_initial(LIMIT), *at = json_object();
    ck_assert_uint_eq(e2e_follow_steps(&a, id, NULL, doc, at, NULL), LIMIT);
    e2e_ticks_check(doc, LIMIT);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE id = '%s' AND status = 'succeeded'", id);
    wait_db(sql, 1, 15000);
    ck_assert_int_le(job_number("SELECT count(*) FROM stores WHERE job_id = '%s'", id), 2);
    ck_assert_int_eq(job_number("SELECT count(*) FROM steps WHERE job_id = '%s' AND data::jsonb ? 'patch'", id),
                     LIMIT);
    e2e_server_t *both[] = {&a, &b};
    char path[160];
    for (size_t i = 0; i < 2; i++) {
        int kept = 0, gone = 0;
        for (int n = LIMIT; n >= 0; n--) {
            e2e_resp_t r;
            snprintf(path, sizeof path, "/v1/jobs/%s/shared?step=%d", id, n);
            e2e_request(both[i], "GET", path, NULL, NULL, &r);
            char seq[32];
            snprintf(seq, sizeof seq, "%d", n);
            if (r.status == 200) {
                ck_assert_msg(!gone, "step %d kept after an older one was not", n);
                ck_assert_msg(json_equal(r.json, json_object_get(at, seq)), "on %zu, step %d: %s", i, n,
                              r.body);
                kept++;
            } else {
                e2e_assert_error(&r, 410, "step_not_kept", "--snapshot-steps");
                gone++;
            }
            e2e_resp_free(&r);
        }
        ck_assert_int_ge(kept, 2); /* the last whole store and a patch at least */
        ck_assert_int_ge(gone, 1); /* step 0's whole store went with a later one */
        e2e_resp_t r;
        snprintf(path, sizeof path, "/v1/jobs/%s/shared?step=%d", id, LIMIT + 1);
        e2e_request(both[i], "GET", path, NULL, NULL, &r);
        e2e_assert_error(&r, 404, "unknown_step", "has not finished step");
        e2e_resp_free(&r);
        snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
        json_t *final = e2e_get_json(both[i], path);
        ck_assert(json_equal(final, doc));
        json_decref(final);
    }
    ck_assert_int_eq(e2e_stop(&a, slow() ? 60000 : 15000), 0);
    ck_assert_int_eq(e2e_stop(&b, slow() ? 60000 : 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
    json_decref(doc);
    json_decref(at);
    free(id);
}
END_TEST

/* A looping job on a, read from b while it runs (b makes its store from the database's last whole
 * store and the patches after), then a is killed (kill -9) with steps after its last whole store:
 * b takes the job over and resumes it from that store and those patches, to the right end. */
START_TEST(test_a_looping_job_killed_mid_run_resumes_on_the_other_instance) {
    enum { LIMIT = 600 }; /* 6 s at least: still running when a is killed, however slow the machine */
    e2e_server_t a, b;
    start_ticks(&a, "2s");
    start_ticks(&b, "2s");
    char *id = post_ticks(&a, LIMIT);
    char path[160];
    long long steps = 0, after = 0;
    uint64_t deadline = e2e_now_ms() + e2e_ms(30000);
    int reads = 0;
    while (steps < 30 || after < 3 || reads < 3) {
        ck_assert_msg(e2e_now_ms() < deadline, "%lld steps, %lld after the last whole store", steps, after);
        stored_steps(id, &steps, &after);
        if (steps >= 3 && after >= 1) {
            /* its row holds {} while it runs: b's store comes from stores and steps */
            ck_assert_int_eq(job_number("SELECT count(*) FROM jobs WHERE id = '%s' AND shared <> '{}'"
                                        " AND status IN ('queued', 'running')", id), 0);
            snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
            json_t *got = e2e_get_json(&b, path);
            json_int_t n = json_integer_value(json_object_get(got, "n"));
            ck_assert_int_ge(n, steps);
            ck_assert_int_le(n, LIMIT);
            ck_assert_uint_eq(json_object_size(got), (size_t)n + (n >= 5 ? 3 : 4));
            for (json_int_t k = 1; k <= n; k++) {
                char key[32];
                snprintf(key, sizeof key, "k/~%lld", (long long)k);
                ck_assert_int_eq(json_integer_value(json_object_get(got, key)), k);
            }
            json_decref(got);
            reads++;
        }
        usleep(5000);
    }
    e2e_kill(&a);
    stored_steps(id, &steps, &after);
    ck_assert_msg(steps < LIMIT, "the job ended before a was killed");
    json_decref(e2e_wait_status(&b, id, "succeeded", slow() ? 60000 : 30000));
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *final = e2e_get_json(&b, path);
    e2e_ticks_check(final, LIMIT); /* a step lost or run on a stale store would show */
    json_t *doc = e2e_ticks_initial(LIMIT);
    ck_assert_uint_eq(e2e_follow_steps(&b, id, NULL, doc, NULL, NULL), LIMIT);
    ck_assert(json_equal(doc, final));
    ck_assert_int_eq(job_number("SELECT claims FROM jobs WHERE id = '%s'", id), 1);
    ck_assert_int_le(job_number("SELECT count(*) FROM stores WHERE job_id = '%s'", id), 2);
    json_decref(doc);
    json_decref(final);
    ck_assert_int_eq(e2e_stop(&b, slow() ? 60000 : 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
    free(id);
}
END_TEST

/* An http node's Idempotency-Key numbers its visit among the job's root-level steps
 * (<job>:<node>:<visit>), and an instance that takes a job over numbers on from the steps it had,
 * not from the last --events-limit of them that a claim reads: a job of seven ticks killed while its
 * eighth step's request waits at the mock sends that request again, from b, with the key it had
 * (":call:8"; counting the three steps b read would have given ":call:4", the key of another visit,
 * whose answer an upstream that honours keys would give back). */
static const char visits_doc[] =
    "{\"name\": \"pgvisits\", \"params\": {\"base\": \"\"}, \"outbound\": {\"allow\": [\"127.0.0.1\"]},"
    " \"start\": \"tick\", \"nodes\": {"
    " \"tick\": {\"type\": \"sleep\", \"params\": {\"seconds\": 0.01},"
    "  \"post\": [\"shared.n = (shared.n or 0) + 1\", \"if shared.n < 7 then return 'again' end\"],"
    "  \"next\": {\"again\": \"tick\", \"default\": \"call\"}},"
    " \"call\": {\"type\": \"http\", \"params\": {\"url\": \"{{$params/base}}/delay/3000/echo\"},"
    "  \"out\": {\"/key\": \"/body/headers/idempotency-key\"}}}}";

static void start_visits(e2e_server_t *s) {
    e2e_write_file(flows, "pgvisits.json", visits_doc);
    e2e_start(s, "--store", db_uri, "--flows", flows, "--lease", "2s", "--claim-interval", "200ms",
              "--poll-interval", "200ms", "--log-level", "warn", "--events-limit", "3", NULL);
}

START_TEST(test_a_job_taken_over_numbers_its_visits_on) {
    mock_t *mock = NULL;
    ck_assert_int_eq(mock_start(NULL, &mock), 0);
    e2e_server_t a, b;
    start_visits(&a);
    start_visits(&b);
    char body[200], key[128], path[160];
    snprintf(body, sizeof body, "{\"flow\": \"pgvisits\", \"params\": {\"base\": \"http://127.0.0.1:%u\"}}",
             (unsigned)mock_port(mock));
    char *id = post_id(&a, body);
    snprintf(key, sizeof key, "%s:call:8", id);
    uint64_t deadline = e2e_now_ms() + e2e_ms(30000);
    while (mock_idempotency_count(mock, key) == 0) {
        ck_assert_msg(e2e_now_ms() < deadline, "the eighth step's request never came");
        usleep(5000);
    }
    ck_assert_int_eq(job_number("SELECT steps FROM jobs WHERE id = '%s'", id), 7);
    e2e_kill(&a);
    json_decref(e2e_wait_status(&b, id, "succeeded", slow() ? 60000 : 30000));
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *shared = e2e_get_json(&b, path);
    ck_assert_str_eq(json_string_value(json_object_get(shared, "key")), key);
    ck_assert_uint_eq(mock_idempotency_count(mock, key), 2); /* before the kill, and from b */
    ck_assert_int_eq(job_number("SELECT claims FROM jobs WHERE id = '%s'", id), 1);
    json_decref(shared);
    ck_assert_int_eq(e2e_stop(&b, slow() ? 60000 : 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
    mock_stop(mock);
    free(id);
}
END_TEST

/* A job keeps the W3C trace context of the POST that made it when another instance takes it over:
 * made on a with a traceparent, it waits for input, a is killed, b claims it, and the http call it
 * makes after the answer carries the same trace id (it was kept in a's memory only, and b called
 * out with none). */
START_TEST(test_a_job_taken_over_keeps_its_traceparent) {
    mock_t *mock = NULL;
    ck_assert_int_eq(mock_start(NULL, &mock), 0);
    e2e_write_traced_flow(flows);
    e2e_server_t a, b;
    start(&a, "2s");
    start(&b, "2s");
    char path[160], sql[160];
    char *id = e2e_post_traced(&a, (unsigned)mock_port(mock));
    json_decref(e2e_wait_status(&a, id, "waiting", 20000));
    e2e_kill(&a);
    snprintf(sql, sizeof sql, "SELECT claims FROM jobs WHERE id = '%s'", id);
    wait_db(sql, 1, slow() ? 60000 : 20000);
    json_decref(e2e_wait_status(&b, id, "waiting", 20000));
    e2e_answer(&b, id, "yes");
    json_decref(e2e_wait_status(&b, id, "succeeded", slow() ? 60000 : 30000));
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *shared = e2e_get_json(&b, path);
    e2e_assert_traced(shared, "after the takeover");
    json_decref(shared);
    ck_assert_int_eq(e2e_stop(&b, slow() ? 60000 : 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
    mock_stop(mock);
    free(id);
}
END_TEST

/* A statement that fails in a batch (a trigger here; a full disk or a constraint in life) fails its
 * own job's POST with 500 and nothing else: the writer reads the batch's results past it, rolls
 * back, writes what came with it one by one, and the batches after it are written as before. */
START_TEST(test_a_failed_statement_fails_its_job_only) {
    e2e_server_t a;
    start(&a, "10s"); /* its tables first */
    db_exec("CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN IF NEW.shared LIKE '%boom%' THEN"
            " RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql");
    db_exec("CREATE TRIGGER boom BEFORE INSERT ON stores FOR EACH ROW EXECUTE FUNCTION boom()");
    for (int round = 0; round < 3; round++) {
        e2e_resp_t r;
        e2e_post(&a, "/v1/jobs", "{\"flow\": \"steps\", \"shared\": {\"i\": 1, \"pause\": 0, \"boom\": true}}", &r);
        e2e_assert_error(&r, 500, "internal", "could not be stored");
        e2e_resp_free(&r);
        char *id = post_id(&a, "{\"flow\": \"steps\", \"shared\": {\"i\": 2, \"pause\": 0}}");
        json_decref(e2e_wait_status(&a, id, "succeeded", 20000));
        free(id);
    }
    ck_assert_int_eq(db_number("SELECT count(*) FROM jobs"), 3);
    ck_assert_int_eq(db_number("SELECT count(*) FROM jobs WHERE status = 'succeeded'"), 3);
    ck_assert_int_eq(e2e_stop(&a, slow() ? 60000 : 15000), 0);
    e2e_cleanup(&a);
}
END_TEST

/* Posts n jobs of ask for Ada to s and waits until all wait for input in the database; their ids
 * go to ids (malloc'd) unless it is NULL. */
static void post_waiting(e2e_server_t *s, size_t n, char **ids) {
    for (size_t i = 0; i < n; i++) {
        char *id = post_id(s, "{\"flow\": \"ask\", \"shared\": {\"who\": \"Ada\"}}");
        if (ids != NULL)
            ids[i] = id;
        else
            free(id);
    }
    wait_db("SELECT count(*) FROM jobs WHERE status = 'waiting'", (long long)n, slow() ? 60000 : 15000);
}

/* A claim reads what it takes over (flows, last steps, events, whole stores and the patches after
 * them, five statements for all the jobs) in its own transaction: when a read fails, nothing is
 * taken, and the jobs are taken once the reads work again. Here b's reads fail while the events
 * table has another name. A flowd of before committed the claim first: jobs whose events it could
 * not read stayed with b, alive, which never ran them. */
START_TEST(test_a_claim_that_cannot_read_its_jobs_takes_none) {
    e2e_server_t a, b;
    start(&a, "1s");
    size_t n = 40;
    char *ids[40];
    post_waiting(&a, n, ids);
    start(&b, "1s"); /* before the rename: a start makes the tables it does not find */
    db_exec("ALTER TABLE events RENAME TO events_away");
    e2e_kill(&a);
    /* a's lease runs out after a second; b tries to claim every 200 ms */
    wait_db("SELECT count(*) FROM instances WHERE lease_until < now()", 1, slow() ? 60000 : 15000);
    usleep(e2e_ms(1500) * 1000u);
    ck_assert_int_eq(db_number("SELECT count(*) FROM jobs WHERE claims > 0 OR owner <> (SELECT id FROM"
                               " instances WHERE lease_until < now())"),
                     0);
    db_exec("ALTER TABLE events_away RENAME TO events");
    wait_db("SELECT count(*) FROM jobs j JOIN instances i ON i.id = j.owner WHERE i.lease_until > now()"
            " AND j.claims = 1",
            (long long)n, slow() ? 60000 : 15000);
    /* b runs them: their stores came back whole (the set's patch after the first store) */
    for (size_t i = 0; i < n; i++) {
        e2e_answer(&b, ids[i], "yes");
        json_t *job = e2e_wait_status(&b, ids[i], "succeeded", slow() ? 60000 : 15000);
        json_decref(job);
        char path[96];
        snprintf(path, sizeof path, "/v1/jobs/%s/shared", ids[i]);
        json_t *shared = e2e_get_json(&b, path);
        ck_assert(json_is_true(json_object_get(shared, "asked")));
        ck_assert(json_is_true(json_object_get(shared, "done")));
        ck_assert_str_eq(json_string_value(json_object_get(shared, "who")), "Ada");
        ck_assert_str_eq(json_string_value(json_object_get(shared, "answer")), "yes");
        json_decref(shared);
        free(ids[i]);
    }
    ck_assert_int_eq(e2e_stop(&b, slow() ? 60000 : 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
}
END_TEST

/* An instance renews one lease, its row in instances, not one per job: its jobs' rows are not
 * written again while they wait for input (their xmin stays), however many it holds. A version 9 flowd
 * rewrote every row it held every third of the lease (1.7 s for 100,000 queued jobs). Once the
 * instance is gone, the other takes its jobs over on that one lease. */
START_TEST(test_an_instance_renews_one_lease_not_its_jobs) {
    e2e_server_t a, b;
    start(&a, "1s");
    size_t n = 50;
    post_waiting(&a, n, NULL);
    wait_db("SELECT count(*) FROM jobs WHERE status = 'waiting' AND lease_until = 'infinity'", (long long)n,
            slow() ? 60000 : 15000);
    long long before = db_number("SELECT sum(xmin::text::bigint) FROM jobs");
    long long lease0 = db_number("SELECT (extract(epoch FROM lease_until) * 1000)::bigint FROM instances");
    usleep(1500000); /* four renewals of a 1 s lease */
    long long lease1 = db_number("SELECT (extract(epoch FROM lease_until) * 1000)::bigint FROM instances");
    ck_assert_msg(lease1 > lease0, "the instance's lease was not renewed (%lld, then %lld)", lease0, lease1);
    ck_assert_msg(db_number("SELECT sum(xmin::text::bigint) FROM jobs") == before,
                  "the renewals wrote the jobs' rows");
    /* a dies; b takes its jobs over once a's lease has run out */
    e2e_kill(&a);
    start(&b, "1s");
    wait_db("SELECT count(*) FROM jobs j JOIN instances i ON i.id = j.owner WHERE i.lease_until > now()"
            " AND j.claims = 1", (long long)n, slow() ? 60000 : 15000);
    ck_assert_int_eq(db_number("SELECT count(DISTINCT owner) FROM jobs"), 1);
    ck_assert_int_eq(e2e_stop(&b, slow() ? 60000 : 15000), 0);
    /* a stop hands its jobs back and its row goes */
    ck_assert_int_eq(db_number("SELECT count(*) FROM jobs WHERE owner IS NULL AND lease_until = '-infinity'"),
                     (long long)n);
    ck_assert_int_eq(db_number("SELECT count(*) FROM instances i WHERE i.lease_until > now()"), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
}
END_TEST

/* A version 7 database (before stores) with a job that waits for input, its store in its row as
 * version 7 kept it: the next flowd makes it version 11 (8: stores, 9: visits, 10: instances,
 * 11: traceparents), takes the job over from its row (no visits kept: counted in its steps, as
 * before), and it ends with the store it had and what came after. */
START_TEST(test_a_version_7_database_gets_stores) {
    e2e_server_t a, b;
    start(&a, "10s");
    char *id = post_id(&a, "{\"flow\": \"ask\", \"shared\": {\"who\": \"Ada\"}}");
    json_decref(e2e_wait_status(&a, id, "waiting", 20000));
    ck_assert_int_eq(e2e_stop(&a, slow() ? 60000 : 15000), 0); /* released */
    /* as version 7 had it: the store as of the last checkpoint in the row, no stores table */
    char sql[256];
    static const char *const to_7[] = {"DROP TABLE stores", "DROP TABLE instances", "ALTER TABLE jobs DROP COLUMN base_step",
                                       "ALTER TABLE jobs DROP COLUMN visits",
                                       "ALTER TABLE jobs DROP COLUMN traceparent",
                                       "UPDATE flowd_meta SET value = '7' WHERE key = 'schema_version'", NULL};
    for (const char *const *q = to_7; *q != NULL; q++)
        db_exec(*q);
    snprintf(sql, sizeof sql, "UPDATE jobs SET shared = '{\"who\": \"Ada\", \"asked\": true, \"old\": 7}'"
             " WHERE id = '%s'", id);
    db_exec(sql);
    start(&b, "10s");
    ck_assert_int_eq(db_number("SELECT value::int FROM flowd_meta WHERE key = 'schema_version'"), 11);
    ck_assert_int_eq(db_number("SELECT count(*) FROM information_schema.columns WHERE table_name = 'jobs'"
                               " AND column_name IN ('base_step', 'visits', 'traceparent')"), 3);
    ck_assert_int_eq(db_number("SELECT count(*) FROM instances"), 1); /* b's */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE id = '%s' AND owner IS NOT NULL", id);
    wait_db(sql, 1, slow() ? 60000 : 15000);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    json_t *sh = get_value(&b, path);
    ck_assert_int_eq(json_integer_value(json_object_get(sh, "old")), 7);
    json_decref(sh);
    /* only its last checkpoint's store is kept: step 1's (the row's), not step 0's */
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?step=1", id);
    sh = get_value(&b, path);
    ck_assert_int_eq(json_integer_value(json_object_get(sh, "old")), 7);
    json_decref(sh);
    e2e_resp_t r;
    snprintf(path, sizeof path, "/v1/jobs/%s/shared?step=0", id);
    e2e_request(&b, "GET", path, NULL, NULL, &r);
    e2e_assert_error(&r, 410, "step_not_kept", "step 1");
    e2e_resp_free(&r);
    e2e_answer(&b, id, "yes");
    json_decref(e2e_wait_status(&b, id, "succeeded", 20000));
    snprintf(path, sizeof path, "/v1/jobs/%s/shared", id);
    sh = get_value(&b, path);
    ck_assert_int_eq(json_integer_value(json_object_get(sh, "old")), 7);
    ck_assert(json_is_true(json_object_get(sh, "done")));
    ck_assert_str_eq(json_string_value(json_object_get(sh, "answer")), "yes");
    json_decref(sh);
    ck_assert_int_eq(e2e_stop(&b, slow() ? 60000 : 15000), 0);
    e2e_cleanup(&a);
    e2e_cleanup(&b);
    free(id);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("postgres");
    TCase *tc = tcase_create("instances");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, slow() ? 600 : 120);
    tcase_add_test(tc, test_any_instance_answers_for_any_job);
    tcase_add_test(tc, test_a_job_elsewhere_has_a_version_as_here);
    tcase_add_test(tc, test_a_stopped_instance_hands_its_jobs_over_at_once);
    tcase_add_test(tc, test_an_instance_paused_past_its_lease_overwrites_nothing);
    tcase_add_test(tc, test_two_instances_share_2000_jobs_and_one_is_killed);
    tcase_add_test(tc, test_a_flow_put_to_one_instance_runs_on_the_next_to_start);
    tcase_add_test(tc, test_every_instance_keeps_a_job_to_its_tenant);
    tcase_add_test(tc, test_a_version_1_database_gets_tenants);
    tcase_add_test(tc, test_a_job_stored_after_its_client_left_still_runs);
    tcase_add_test(tc, test_each_run_of_a_schedule_starts_once_across_two_instances);
    tcase_add_test(tc, test_claims_take_priority_first_and_delayed_jobs_when_due);
    tcase_add_test(tc, test_a_delivery_owed_by_a_killed_instance_is_made_by_another);
    tcase_add_test(tc, test_a_concurrency_key_holds_over_two_instances);
    tcase_add_test(tc, test_a_flow_limit_holds_over_two_instances);
    tcase_add_test(tc, test_a_killed_instances_turns_come_free_after_takeover);
    tcase_add_test(tc, test_a_failed_job_is_redriven_on_any_instance);
    tcase_add_test(tc, test_a_job_is_forked_on_another_instance);
    tcase_add_test(tc, test_step_reads_on_postgres_match_the_patches);
    tcase_add_test(tc, test_a_looping_job_killed_mid_run_resumes_on_the_other_instance);
    tcase_add_test(tc, test_an_instance_renews_one_lease_not_its_jobs);
    tcase_add_test(tc, test_a_failed_statement_fails_its_job_only);
    tcase_add_test(tc, test_a_version_7_database_gets_stores);
    tcase_add_test(tc, test_a_job_taken_over_numbers_its_visits_on);
    tcase_add_test(tc, test_a_job_taken_over_keeps_its_traceparent);
    tcase_add_test(tc, test_a_claim_that_cannot_read_its_jobs_takes_none);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    char why[256] = "";
    int rc = pg_start(why, sizeof why);
    if (rc == 1 && getenv("CI") == NULL) {
        fprintf(stderr, "test_postgres: SKIPPED: %s\n", why);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "test_postgres: FAILED: PostgreSQL could not be started: %s\n", why);
        return 1;
    }
    int status = e2e_main(suite());
    pg_stop();
    return status;
}
