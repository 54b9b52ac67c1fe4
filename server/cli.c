/* cli.c: flowd check and flowd run (cli.h). They read the server's flags through config.c, load
 * documents through flows.c as the server does, and run a job on the engine and libcurl client the
 * server would use, on a loop of their own; no HTTP server, no store.
 *
 * flowd run reads answers from stdin on a thread of its own: the loop must go on (other branches of
 * a flow may be waiting on HTTP meanwhile), and a terminal, a pipe and a file all work with a
 * blocking read, which libuv's stream handles cannot do for a file. The thread reads a line only
 * when the job waits for one; at the end it is joined, unless it is still blocked in that read (the
 * job ended otherwise): then it is detached and left to the exit, which is why its state is
 * static. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "flow/doc.h"
#include "flows.h"
#include "jobs.h"
#include "log.h"
#include "flow/nodes.h"

#define MAX_ARGS 256 /* files and flags on one command line */

typedef struct cli {
    const char *command;
    const char *files[MAX_ARGS];
    size_t nfiles;
    const char *shared;
    const char *params;
    flowd_config_t cfg;
    flowd_outbound_t outbound; /* the policy of the flags, as the server would have it */
} cli_t;

static void usage(FILE *out, const char *command) {
    if (command == NULL || strcmp(command, "check") == 0)
        fprintf(out, "usage: flowd check FILE... [FLAG VALUE]...\n"
                     "  Loads the flow documents as the server's --flows would and prints every\n"
                     "  problem (FILE:LINE:COLUMN: /pointer: message). Exit status 0 when all load, 1\n"
                     "  when one does not, 2 for a bad command line.\n");
    if (command == NULL || strcmp(command, "run") == 0)
        fprintf(out, "usage: flowd run FILE [--shared JSON] [--params JSON] [FLAG VALUE]...\n"
                     "  Runs one job of the flow in this process, kept in memory only: its steps go to\n"
                     "  stderr as they happen, its final shared store (JSON) to stdout. An input\n"
                     "  node's answer is read from stdin, a line each (JSON when it parses, else a\n"
                     "  string). Exit status 0 when the job succeeded, 1 when it did not, 2 for a bad\n"
                     "  command line.\n");
    fprintf(out, "  The server's flags and FLOWD_* variables apply (flowd --help): the llm settings,\n"
                 "  --history-limit, --log-level, and --flows DIR, loaded first.\n");
}

/* Splits the command line: files, --shared and --params are ours, every other flag (with its
 * value) goes to config.c. 0, 1 for --help, or -1 with err set. */
static int parse(cli_t *c, int argc, char **argv, char *err, size_t errlen) {
    char *flags[2 * MAX_ARGS + 2];
    int nflags = 0;
    c->command = argv[1];
    flags[nflags++] = argv[0];
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        const char **ours = NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return 1;
        if (strncmp(arg, "--shared", 8) == 0 && (arg[8] == '\0' || arg[8] == '='))
            ours = &c->shared;
        else if (strncmp(arg, "--params", 8) == 0 && (arg[8] == '\0' || arg[8] == '='))
            ours = &c->params;
        if (ours != NULL && strcmp(c->command, "run") != 0) {
            snprintf(err, errlen, "%.8s is for flowd run", arg);
            return -1;
        }
        if (ours != NULL && arg[8] == '=') {
            *ours = arg + 9;
        } else if (ours != NULL) {
            if (i + 1 == argc) {
                snprintf(err, errlen, "%s needs a value (JSON)", arg);
                return -1;
            }
            *ours = argv[++i];
        } else if (strncmp(arg, "--", 2) == 0) {
            if (nflags + 2 >= (int)(sizeof flags / sizeof flags[0])) {
                snprintf(err, errlen, "too many arguments");
                return -1;
            }
            flags[nflags++] = argv[i];
            if (strchr(arg, '=') == NULL && i + 1 < argc)
                flags[nflags++] = argv[++i]; /* every flag of the server takes a value */
        } else if (c->nfiles == MAX_ARGS) {
            snprintf(err, errlen, "more than %d files", MAX_ARGS);
            return -1;
        } else {
            c->files[c->nfiles++] = arg;
        }
    }
    if (c->nfiles == 0 || (strcmp(c->command, "run") == 0 && c->nfiles > 1)) {
        snprintf(err, errlen, "%s", strcmp(c->command, "check") == 0 ? "no FILE to check"
                                    : c->nfiles == 0                   ? "no FILE to run"
                                                                       : "one FILE at a time");
        return -1;
    }
    char why[512];
    int rc = flowd_config_parse(&c->cfg, nflags, flags, NULL, why, sizeof why);
    if (rc == FLOWD_CONFIG_ERROR) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    if (rc != FLOWD_CONFIG_RUN)
        return 1; /* --version among the flags: the usage says what to do */
    if (flowd_outbound_init(&c->cfg, &c->outbound, err, errlen) < 0)
        return -1;
    return 0;
}

/* The registry the server would have: node types with the llm settings, compiled-in flows, and the
 * documents of --flows. env is borrowed by the registry. */
static int make_registry(const cli_t *c, flow_nodes_env_t *env, flow_registry_t **out) {
    flow_registry_t *reg = NULL;
    flow_error_t err = {0};
    flowd_config_nodes_env(&c->cfg, &c->outbound, env);
    int rc = flow_registry_new(&reg);
    if (rc == 0)
        rc = flowd_flows_register(reg, &err);
    if (rc == 0)
        rc = flow_nodes_register(reg, env);
    if (rc < 0) {
        fprintf(stderr, "flowd %s: cannot start: %s%s%s\n", c->command, flow_strerror(rc),
                err.message ? ": " : "", err.message ? err.message : "");
        flow_error_clear(&err);
        flow_registry_free(reg);
        return rc;
    }
    if (c->cfg.flows[0] != '\0')
        rc = flowd_flows_load_dir(reg, c->cfg.flows);
    if (rc < 0) {
        fprintf(stderr, "flowd %s: the flows of --flows %s did not load (above)\n", c->command, c->cfg.flows);
        flow_registry_free(reg);
        return rc;
    }
    *out = reg;
    return 0;
}

/* ---- check ---- */

typedef struct check_tally {
    FILE *out;       /* where problems go */
    size_t ok, bad;
    flow_def_t *def; /* the first flow made (a new reference): run's */
} check_tally_t;

static void print_report(void *data, const char *path, flow_def_t *def, flow_def_t *old,
                         const flow_problems_t *problems) {
    check_tally_t *t = data;
    FILE *out = t->out;
    (void)old;
    if (def != NULL) {
        t->ok++;
        if (t->def == NULL)
            t->def = flow_def_ref(def);
        return;
    }
    t->bad++;
    for (size_t i = 0; i < problems->count; i++)
        fprintf(out, "%s: %s\n", problems->items[i].where, problems->items[i].message);
    if (problems->dropped > 0)
        fprintf(out, "%s: ... and %zu more problems\n", path, problems->dropped);
    fprintf(out, "%s: %zu problem%s\n", path, flow_problems_total(problems),
            flow_problems_total(problems) == 1 ? "" : "s");
}

static void check_report(void *data, const char *path, flow_def_t *def, flow_def_t *old,
                         const flow_problems_t *problems) {
    check_tally_t *t = data;
    if (def == NULL) {
        print_report(data, path, def, old, problems);
        return;
    }
    t->ok++;
    printf("%s: ok, flow %s\n", path, flow_def_name(def));
}

static int check(cli_t *c) {
    flow_nodes_env_t env = {0};
    flow_registry_t *reg = NULL;
    check_tally_t tally = {.out = stdout};
    if (make_registry(c, &env, &reg) < 0)
        return 1;
    int rc = flowd_flows_load_files(reg, c->files, c->nfiles, check_report, &tally);
    flow_registry_free(reg);
    if (rc == FLOW_ENOMEM) {
        fprintf(stderr, "flowd check: out of memory\n");
        return 1;
    }
    if (tally.bad > 0)
        printf("%zu of %zu documents have problems\n", tally.bad, c->nfiles);
    return tally.bad > 0 ? 1 : 0;
}

/* ---- run: answers from stdin ---- */

static struct reader {
    uv_async_t async;         /* the loop's: a line (or the end) came */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int started;
    int want;                 /* under lock: the loop waits for a line */
    int ready;                /* under lock: line (or eof) is there */
    int eof;
    int closed;               /* under lock: the async handle is closed, the thread may end */
    int reading;              /* under lock: the thread is in a read (it cannot be joined) */
    pthread_t thread;
    int cut;                  /* under lock: the line was longer than --max-body */
    char *line;               /* under lock until taken */
} reader = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* One line of stdin without its line break, at most max bytes of it (the rest is read and
 * dropped, and *cut set); NULL at the end of input or when out of memory. */
static char *read_line(size_t max, int *cut) {
    char chunk[4096];
    char *line = NULL;
    size_t len = 0;
    *cut = 0;
    while (fgets(chunk, sizeof chunk, stdin) != NULL) {
        size_t n = strlen(chunk);
        int end = n > 0 && chunk[n - 1] == '\n';
        size_t keep = len + n > max ? (len < max ? max - len : 0) : n;
        *cut |= keep < n;
        char *grown = keep > 0 || line == NULL ? realloc(line, len + keep + 1) : line;
        if (grown == NULL) {
            free(line);
            return NULL;
        }
        line = grown;
        memcpy(line + len, chunk, keep);
        len += keep;
        line[len] = '\0';
        if (end)
            break;
    }
    while (line != NULL && len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    return line;
}

static void *read_lines(void *arg) {
    size_t max = *(const size_t *)arg;
    for (;;) {
        pthread_mutex_lock(&reader.lock);
        while (!reader.want && !reader.closed)
            pthread_cond_wait(&reader.cond, &reader.lock);
        reader.want = 0;
        int go_on = !reader.closed;
        reader.reading = go_on;
        pthread_mutex_unlock(&reader.lock);
        if (!go_on)
            return NULL; /* the run is over */
        int cut = 0;
        char *line = read_line(max, &cut);
        ssize_t n = line == NULL ? -1 : (ssize_t)strlen(line);
        pthread_mutex_lock(&reader.lock);
        reader.reading = 0;
        reader.ready = 1;
        reader.eof = n < 0;
        reader.cut = cut;
        reader.line = n < 0 ? NULL : line;
        if (!reader.closed) /* the handle is gone once the run is over */
            uv_async_send(&reader.async);
        pthread_mutex_unlock(&reader.lock);
        if (n < 0) {
            free(line);
            return NULL;
        }
    }
}

/* ---- run ---- */

typedef struct run {
    const cli_t *cli;
    uv_loop_t loop;
    uv_signal_t sigint;
    flow_engine_t *eng;
    flow_http_t *http;
    flow_job_t *job;
    int asking;                /* a line is asked for */
    int done;
    flow_status_t status;
    json_t *shared;            /* the final store */
    char error[1024];
} run_t;

static run_t *the_run; /* for the reader's async callback */

static void on_line(uv_async_t *a);

static void ask(run_t *r) {
    json_t *req = flow_job_waiting_for(r->job);
    const char *prompt = json_string_value(json_object_get(req, "prompt"));
    json_t *choices = json_object_get(req, "choices");
    fprintf(stderr, "input for %s: %s", flow_job_current_node(r->job) ? flow_job_current_node(r->job) : "?",
            prompt ? prompt : "");
    if (json_array_size(choices) > 0) {
        char *text = json_dumps(choices, JSON_COMPACT);
        fprintf(stderr, " %s", text ? text : "");
        free(text);
    }
    fprintf(stderr, "\n> ");
    fflush(stderr);
    if (!reader.started) {
        if (uv_async_init(&r->loop, &reader.async, on_line) == 0 &&
            pthread_create(&reader.thread, NULL, read_lines, (void *)&r->cli->cfg.max_body) == 0) {
            reader.started = 1;
        } else {
            snprintf(r->error, sizeof r->error, "cannot read standard input");
            flow_job_cancel(r->job);
            return;
        }
    }
    r->asking = 1;
    uv_ref((uv_handle_t *)&reader.async); /* the loop waits for the answer */
    pthread_mutex_lock(&reader.lock);
    reader.want = 1;
    pthread_cond_signal(&reader.cond);
    pthread_mutex_unlock(&reader.lock);
}

static void on_line(uv_async_t *a) {
    run_t *r = the_run;
    pthread_mutex_lock(&reader.lock);
    int ready = reader.ready, eof = reader.eof, cut = reader.cut;
    char *line = reader.line;
    reader.ready = 0;
    reader.line = NULL;
    pthread_mutex_unlock(&reader.lock);
    if (!ready)
        return;
    uv_unref((uv_handle_t *)a);
    r->asking = 0;
    if (r->done || flow_job_status(r->job) != FLOW_WAITING) {
        free(line);
        return;
    }
    if (eof) {
        fprintf(stderr, "(end of input)\n");
        snprintf(r->error, sizeof r->error, "standard input ended while %s waited for an answer",
                 flow_job_current_node(r->job) ? flow_job_current_node(r->job) : "a node");
        flow_job_cancel(r->job);
        return;
    }
    if (!isatty(0))
        fprintf(stderr, "%s%s\n", line, cut ? "..." : ""); /* what a terminal would have echoed */
    if (cut) {
        fprintf(stderr, "refused: an answer is at most %zu bytes "
                        "(--max-body)\n", r->cli->cfg.max_body);
        free(line);
        ask(r);
        return;
    }
    json_t *value = json_loads(line, JSON_DECODE_ANY, NULL);
    if (value == NULL)
        value = json_string(line);
    free(line);
    if (value == NULL) { /* not UTF-8 */
        fprintf(stderr, "refused: the answer is not UTF-8 text\n");
        ask(r);
        return;
    }
    flow_error_t err = {0};
    int rc = flow_job_input(r->job, value, &err);
    json_decref(value);
    if (rc < 0) {
        fprintf(stderr, "refused: %s\n", err.message ? err.message : flow_strerror(rc));
        flow_error_clear(&err);
    }
    /* refused, or another node waits too (its status stays waiting: no event says so) */
    if (flow_job_waiting_for(r->job) != NULL)
        ask(r);
}

static void print_step(const flow_step_t *st) {
    double ms = (double)(st->end_us - st->start_us) / 1000.0;
    fprintf(stderr, "%*sstep %" PRIu64 " %s", (int)st->depth * 2, "", st->seq, st->node);
    if (st->error != 0) {
        fprintf(stderr, " failed (%s: %s), %.1f ms\n", flow_err_name(st->error), st->message ? st->message : "",
                ms);
        return;
    }
    fprintf(stderr, " -> %s (%s, %u %s, %.1f ms)\n", st->next ? st->next : "end", st->action ? st->action : "",
            st->tries, st->tries == 1 ? "try" : "tries", ms);
}

static void on_event(flow_job_t *job, const flow_event_t *ev, void *data) {
    run_t *r = data;
    switch (ev->type) {
    case FLOW_EVENT_STEP:
        print_step(ev->step);
        break;
    case FLOW_EVENT_RETRY:
        fprintf(stderr, "%*sretry %s: try %u failed (%s: %s), next in %llu ms\n", (int)ev->depth * 2, "",
                ev->node, ev->attempt + 1, flow_err_name(ev->error->code),
                ev->error->message ? ev->error->message : "", (unsigned long long)ev->wait_ms);
        break;
    case FLOW_EVENT_STATUS:
        if (ev->status == FLOW_WAITING && !r->asking)
            ask(r);
        break;
    }
    (void)job;
}

static void on_done(flow_job_t *job, void *data) {
    run_t *r = data;
    const flow_error_t *err = flow_job_error(job);
    r->done = 1;
    r->status = flow_job_status(job);
    r->shared = json_incref(flow_job_shared(job));
    if (r->error[0] == '\0' && err->code != 0)
        snprintf(r->error, sizeof r->error, "%s%s%s: %s", err->node ? "at " : "", err->node ? err->node : "",
                 err->node ? "" : "error", err->message ? err->message : flow_strerror(err->code));
    if (r->error[0] == '\0' && err->code != 0)
        snprintf(r->error, sizeof r->error, "%s", flow_err_name(err->code));
    fprintf(stderr, "%s after %" PRIu64 " steps, last action %s\n", flow_status_name(r->status),
            flow_job_steps(job), flow_job_last_action(job) ? flow_job_last_action(job) : "none");
    uv_signal_stop(&r->sigint);
    if (reader.started && !r->asking)
        uv_unref((uv_handle_t *)&reader.async);
}

static void on_sigint(uv_signal_t *sig, int signum) {
    run_t *r = sig->data;
    (void)signum;
    if (!r->done) {
        snprintf(r->error, sizeof r->error, "interrupted");
        flow_job_cancel(r->job);
    }
}

/* JSON text of an object, or an error in err. */
static json_t *object_arg(const char *name, const char *text, char *err, size_t errlen) {
    json_error_t jerr;
    json_t *v = json_loads(text, 0, &jerr);
    if (v == NULL)
        snprintf(err, errlen, "--%s: not JSON: line %d, column %d: %s", name, jerr.line, jerr.column, jerr.text);
    else if (!json_is_object(v))
        snprintf(err, errlen, "--%s: a JSON object, such as {\"q\": \"tofu\"}", name);
    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

static void closed_nothing(uv_handle_t *h) {
    (void)h;
}

static int run(cli_t *c) {
    static run_t r;
    flow_nodes_env_t env = {0};
    flow_registry_t *reg = NULL;
    check_tally_t tally = {.out = stderr};
    char err[600] = "", id[FLOWD_ID_LEN + 1];
    int status = 1;
    json_t *shared = NULL, *params = NULL;
    if (c->shared != NULL)
        shared = object_arg("shared", c->shared, err, sizeof err);
    if (c->params != NULL && err[0] == '\0')
        params = object_arg("params", c->params, err, sizeof err);
    if (err[0] != '\0') {
        fprintf(stderr, "flowd run: %s\n", err);
        json_decref(shared);
        return 2;
    }
    r.cli = c;
    the_run = &r;
    flow_http_opts_t ho = {.allow = c->outbound.allow, .deny = c->outbound.deny};
    if (uv_loop_init(&r.loop) != 0 || flow_http_new(&r.loop, &ho, &r.http) < 0) {
        fprintf(stderr, "flowd run: cannot start the loop\n");
        goto out_early;
    }
    env.http = r.http;
    if (make_registry(c, &env, &reg) < 0)
        goto out;
    if (flowd_flows_load_files(reg, c->files, 1, print_report, &tally) < 0 || tally.def == NULL)
        goto out;
    flow_engine_opts_t eo;
    flowd_config_engine_opts(&c->cfg, &eo);
    if (flow_engine_new(&r.loop, &eo, &r.eng) < 0 || flowd_new_id(id) < 0) {
        fprintf(stderr, "flowd run: cannot start the engine\n");
        goto out;
    }
    uv_signal_init(&r.loop, &r.sigint);
    r.sigint.data = &r;
    uv_signal_start(&r.sigint, on_sigint, SIGINT);
    uv_unref((uv_handle_t *)&r.sigint);
    flow_job_opts_t opts = {.id = id, .params = params, .on_event = on_event, .on_done = on_done, .data = &r};
    flowd_config_job_limits(&c->cfg, tally.def, &opts);
    fprintf(stderr, "flowd run: flow %s from %s, job %s\n", flow_def_name(tally.def), c->files[0], id);
    int rc = flow_job_start(r.eng, tally.def, shared, &opts, &r.job);
    shared = NULL; /* taken */
    if (rc < 0) {
        fprintf(stderr, "flowd run: cannot start the job: %s\n", flow_strerror(rc));
        goto out;
    }
    while (!r.done && uv_run(&r.loop, UV_RUN_ONCE)) {
    }
    if (r.done) {
        char *text = json_dumps(r.shared, JSON_INDENT(2));
        printf("%s\n", text ? text : "{}");
        free(text);
        if (r.status == FLOW_SUCCEEDED)
            status = 0;
        else
            fprintf(stderr, "flowd run: the job %s: %s\n", flow_status_name(r.status), r.error);
    } else {
        fprintf(stderr, "flowd run: the loop ran dry before the job ended\n");
    }
out:
    if (r.eng != NULL)
        flow_engine_close(r.eng);
    if (r.http != NULL)
        flow_http_close(r.http);
    if (r.sigint.data != NULL) /* initialized */
        uv_close((uv_handle_t *)&r.sigint, closed_nothing);
    if (reader.started) {
        /* the thread ends now, unless it is blocked reading stdin: then it is left to the exit */
        pthread_mutex_lock(&reader.lock);
        reader.closed = 1;
        free(reader.line);
        reader.line = NULL;
        int reading = reader.reading;
        pthread_cond_signal(&reader.cond);
        pthread_mutex_unlock(&reader.lock);
        if (reading)
            pthread_detach(reader.thread);
        else
            pthread_join(reader.thread, NULL);
        uv_close((uv_handle_t *)&reader.async, closed_nothing);
    }
    uv_run(&r.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&r.loop) != 0)
        fprintf(stderr, "flowd run: the loop still had handles at exit\n");
out_early:
    json_decref(r.shared);
    json_decref(shared);
    json_decref(params);
    flow_def_unref(tally.def);
    flow_registry_free(reg);
    return status;
}

int flowd_cli_is_command(const char *arg) {
    return arg != NULL && (strcmp(arg, "check") == 0 || strcmp(arg, "run") == 0);
}

int flowd_cli_main(int argc, char **argv) {
    static cli_t c; /* big (the config), and the reader's thread may outlive main's frame */
    char err[600];
    int rc = parse(&c, argc, argv, err, sizeof err);
    if (rc == 1) {
        usage(stdout, c.command);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "flowd %s: %s\n", c.command, err);
        usage(stderr, c.command);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    flowd_config_apply_process(&c.cfg);
    flowd_log_init(c.cfg.log_level, 2);
    int status = strcmp(c.command, "check") == 0 ? check(&c) : run(&c);
    flowd_outbound_clear(&c.outbound);
    flowd_log_close();
    return status;
}
