/* config.c: the table of settings behind config.h, their parsers and the --help text. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "flow/doc.h"
#include "log.h"
#include "flow/netpolicy.h"

enum kind { K_UINT, K_SIZE, K_MS, K_SECONDS, K_ADDR, K_LEVEL, K_TEXT, K_BOOL, K_NETRULES, K_ONOFF };

typedef struct setting {
    const char *flag;  /* without the leading "--" */
    const char *env;
    enum kind kind;
    size_t offset;     /* in flowd_config_t */
    uint64_t min, max; /* K_UINT: the value; K_SIZE: bytes; K_MS and K_SECONDS: milliseconds; K_TEXT:
                        * max is the size of the field */
    const char *def;   /* the default, as text: parsed like a value, and shown by --help */
    const char *arg;   /* the placeholder --help shows ("" for K_BOOL: the flag alone says yes) */
    const char *help;
} setting_t;

#define OFF(field) offsetof(flowd_config_t, field)
#define GIB ((uint64_t)1 << 30)
#define DAY_MS ((uint64_t)86400000)

static const setting_t settings[] = {
    {"bind", "FLOWD_BIND", K_ADDR, OFF(bind), 0, 0, "127.0.0.1", "ADDR",
     "address to listen on: IPv4, IPv6 or localhost"},
    {"port", "FLOWD_PORT", K_UINT, OFF(port), 0, 65535, "8080", "N",
     "TCP port; 0 picks a free one (the log line \"listening on\" names it)"},
    {"http-threads", "FLOWD_HTTP_THREADS", K_UINT, OFF(http_threads), 1, 256, "2", "N",
     "threads serving HTTP (libmicrohttpd's pool; the engine has a thread of its own)"},
    {"max-body", "FLOWD_MAX_BODY", K_SIZE, OFF(max_body), 64, GIB, "1MiB", "SIZE",
     "largest request body; larger ones get 413"},
    {"max-header", "FLOWD_MAX_HEADER", K_SIZE, OFF(max_header), 1024, 1u << 20, "16KiB", "SIZE",
     "largest request line and headers together; larger ones get 431"},
    {"max-jobs", "FLOWD_MAX_JOBS", K_UINT, OFF(max_jobs), 1, 100000000, "100000", "N",
     "jobs queued, running or waiting at once; past it POST /v1/jobs gets 429"},
    {"max-running", "FLOWD_MAX_RUNNING", K_UINT, OFF(max_running), 1, 100000000, "10000", "N",
     "jobs running or waiting for input at once on this instance; the others stay queued, "
     "highest priority first"},
    {"max-delay", "FLOWD_MAX_DELAY", K_MS, OFF(max_delay_ms), 1000, 3650 * DAY_MS, "30d",
     "DURATION",
     "how far from now a job's start_at or delay may be (POST /v1/jobs); past it 400"},
    {"max-finished", "FLOWD_MAX_FINISHED", K_UINT, OFF(max_finished), 1, 100000000, "100000", "N",
     "finished jobs kept, in memory and in the store; the oldest go first (--retention too)"},
    {"retention", "FLOWD_RETENTION", K_MS, OFF(retention_ms), 1000, 3650 * DAY_MS, "24h", "DURATION",
     "how long a finished job is kept"},
    {"grace", "FLOWD_GRACE", K_MS, OFF(grace_ms), 0, DAY_MS, "10s", "DURATION",
     "on SIGTERM or SIGINT, how long running steps may take to finish"},
    {"history-limit", "FLOWD_HISTORY_LIMIT", K_UINT, OFF(history_limit), 1, 1000000, "100", "N",
     "steps of history a job keeps (the totals count them all)"},
    {"events-limit", "FLOWD_EVENTS_LIMIT", K_UINT, OFF(events_limit), 1, 1000000, "1000", "N",
     "events a job keeps for GET /v1/jobs/{id}/events"},
    {"max-conns", "FLOWD_MAX_CONNS", K_UINT, OFF(max_conns), 1, 1000000, "10000", "N",
     "open connections at once"},
    {"max-conns-per-ip", "FLOWD_MAX_CONNS_PER_IP", K_UINT, OFF(max_conns_per_ip), 1, 1000000, "256",
     "N", "open connections from one client address"},
    {"idle-timeout", "FLOWD_IDLE_TIMEOUT", K_SECONDS, OFF(idle_timeout_ms), 1000, DAY_MS, "30s",
     "DURATION", "close a connection that sends or reads nothing this long (whole seconds)"},
    {"keepalive", "FLOWD_KEEPALIVE", K_MS, OFF(keepalive_ms), 100, DAY_MS, "15s", "DURATION",
     "comment line sent on an idle event stream this often"},
    {"log-level", "FLOWD_LOG_LEVEL", K_LEVEL, OFF(log_level), 0, 0, "info", "LEVEL",
     "debug, info (a line per request), warn or error"},
    {"log-format", "FLOWD_LOG_FORMAT", K_TEXT, OFF(log_format), 0, sizeof(((flowd_config_t *)0)->log_format),
     "text", "FORMAT",
     "text (TIME LEVEL message) or json (one object a line: time, level, msg, and request_id, job, node "
     "where a line has them)"},
    {"flows", "FLOWD_FLOWS", K_TEXT, OFF(flows), 0, sizeof(((flowd_config_t *)0)->flows), "", "DIR",
     "load every *.json flow document in DIR at start (one that does not load stops the start)"},
    {"store", "FLOWD_STORE", K_TEXT, OFF(store), 0, sizeof(((flowd_config_t *)0)->store), "sqlite:flowd.db",
     "STORE", "where jobs are kept: sqlite:PATH (a relative PATH is in --data-dir), postgresql://... (several "
     "instances on one database), or memory: (lost at exit)"},
    {"data-dir", "FLOWD_DATA_DIR", K_TEXT, OFF(data_dir), 0, sizeof(((flowd_config_t *)0)->data_dir), "./data",
     "DIR", "the directory of the SQLite store (made if needed)"},
    {"store-sync", "FLOWD_STORE_SYNC", K_TEXT, OFF(store_sync), 0, sizeof(((flowd_config_t *)0)->store_sync),
     "full", "MODE", "SQLite: full (each commit reaches the disk: survives power loss) or normal (survives a "
     "crash of flowd, faster)"},
    {"store-shards", "FLOWD_STORE_SHARDS", K_UINT, OFF(store_shards), 1, 64, "1", "N",
     "SQLite: files a new store is made of, each written by its own thread (a job's rows are all in "
     "the file its id picks): more accepted jobs per second where cores are spare; a store keeps the "
     "count it was made with"},
    {"store-backlog", "FLOWD_STORE_BACKLOG", K_UINT, OFF(store_backlog), 100, 100000000, "100000", "N",
     "SQLite, PostgreSQL: operations (a job's create, steps, end) queued for the store and not yet "
     "written past which running jobs start no step until the queue is down to half: jobs that step "
     "faster than the disk writes wait instead of filling memory"},
    {"snapshot-steps", "FLOWD_SNAPSHOT_STEPS", K_UINT, OFF(snapshot_steps), 1, 1000000000, "100", "N",
     "SQLite, PostgreSQL: a step's checkpoint writes what it changed in the shared store (a JSON Patch); the "
     "whole store is written again after this many steps, once their patches add up to its size; "
     "the store as of a step before the last whole one is no longer kept (?step=N gets 410)"},
    {"snapshot-bytes", "FLOWD_SNAPSHOT_BYTES", K_SIZE, OFF(snapshot_bytes), 1, GIB, "1MiB", "SIZE",
     "SQLite, PostgreSQL: ... or once the patches since the last whole store add up to this many bytes"},
    {"lease", "FLOWD_LEASE", K_MS, OFF(lease_ms), 300, DAY_MS, "10s", "DURATION",
     "PostgreSQL: how long an instance holds the jobs it runs without renewing (every third of it); "
     "once it has run out, another instance takes them over"},
    {"claim-interval", "FLOWD_CLAIM_INTERVAL", K_MS, OFF(claim_ms), 50, DAY_MS, "1s", "DURATION",
     "PostgreSQL: how often an instance looks for jobs to take over (queued, or whose lease ran out),"
     " and its limited jobs ask for their turn again"},
    {"poll-interval", "FLOWD_POLL_INTERVAL", K_MS, OFF(poll_ms), 10, DAY_MS, "1s", "DURATION",
     "PostgreSQL: how often an instance looks for commands, answers and events it was not notified of "
     "(LISTEN/NOTIFY tells it at once), and reads the schedules for what other instances changed"},
    {"llm-base-url", "FLOWD_LLM_BASE_URL", K_TEXT, OFF(llm_base_url), 0,
     sizeof(((flowd_config_t *)0)->llm_base_url), "", "URL",
     "OpenAI-compatible API of llm nodes, e.g. https://api.openai.com/v1 (the key: FLOWD_LLM_API_KEY)"},
    {"llm-model", "FLOWD_LLM_MODEL", K_TEXT, OFF(llm_model), 0, sizeof(((flowd_config_t *)0)->llm_model), "",
     "NAME", "the model of llm nodes that name none"},
    /* issue 11, regular expressions (lib/re.h): choice "matches" and input schema "pattern" */
    {"regex-max-length", "FLOWD_REGEX_MAX_LENGTH", K_SIZE, OFF(regex_max_length), 16, 1u << 20, "1KiB", "SIZE",
     "longest pattern; a document with a longer one is refused"},
    {"regex-max-nesting", "FLOWD_REGEX_MAX_NESTING", K_UINT, OFF(regex_max_nesting), 1, 250, "32", "N",
     "deepest nesting of parentheses in a pattern"},
    {"regex-max-compiled", "FLOWD_REGEX_MAX_COMPILED", K_SIZE, OFF(regex_max_compiled), 1024, 1u << 24, "64KiB",
     "SIZE", "largest compiled pattern"},
    {"regex-match-limit", "FLOWD_REGEX_MATCH_LIMIT", K_UINT, OFF(regex_match_limit), 1000, 4000000000u, "1000000",
     "N", "PCRE2 match limit of one match (backtracking steps); past it the match fails, naming the limit"},
    {"regex-depth-limit", "FLOWD_REGEX_DEPTH_LIMIT", K_UINT, OFF(regex_depth_limit), 100, 4000000000u, "100000",
     "N", "PCRE2 depth limit of one match (nested backtracking, without JIT)"},
    {"regex-heap-limit", "FLOWD_REGEX_HEAP_LIMIT", K_SIZE, OFF(regex_heap_limit), 64u << 10, 1u << 30, "4MiB",
     "SIZE", "backtracking memory (or JIT stack) of one match"},
    {"regex-budget", "FLOWD_REGEX_BUDGET", K_UINT, OFF(regex_budget), 1000, 4000000000u, "5000000", "N",
     "match-limit units all the matches of one check may use together (an input answer, a choice node)"},
    {"regex-jit", "FLOWD_REGEX_JIT", K_UINT, OFF(regex_jit), 0, 1, "1", "0|1",
     "1: compile patterns with PCRE2's JIT where it has one (the interpreter otherwise); 0: never"},
    /* Lua hooks (issue 12): a call's budget, its time and memory, and what log(...) keeps */
    {"lua-budget", "FLOWD_LUA_BUDGET", K_UINT, OFF(lua_budget), 1000, 4000000000u, "10000000", "N",
     "instructions one Lua hook call may run, unless its node's \"budget\" asks for its own"},
    {"lua-budget-max", "FLOWD_LUA_BUDGET_MAX", K_UINT, OFF(lua_budget_max), 1000, 4000000000u, "100000000", "N",
     "the most instructions a node's \"budget\" may ask for (at least --lua-budget)"},
    {"lua-memory", "FLOWD_LUA_MEMORY", K_SIZE, OFF(lua_memory), 1u << 20, 4 * GIB, "64MiB", "SIZE",
     "bytes the Lua state of one flow may hold, and JSON one hook call may add to the store"},
    {"lua-time", "FLOWD_LUA_TIME", K_MS, OFF(lua_time_ms), 10, 3600000, "2s", "DURATION",
     "time one Lua hook call may take: a backstop for work the budget does not count"},
    {"lua-log-lines", "FLOWD_LUA_LOG_LINES", K_UINT, OFF(lua_log_lines), 1, 100000, "20", "N",
     "lines of log(...) a step keeps in the job's history"},
    {"lua-log-bytes", "FLOWD_LUA_LOG_BYTES", K_SIZE, OFF(lua_log_bytes), 64, 1u << 20, "1KiB", "SIZE",
     "bytes of one log(...) line; longer ones are cut"},
    {"lua-log-job-bytes", "FLOWD_LUA_LOG_JOB_BYTES", K_SIZE, OFF(lua_log_job_bytes), 1024, GIB, "1MiB", "SIZE",
     "bytes of log(...) lines a job keeps over all its steps"},
    /* keys and roles (auth.h) */
    {"keys", "FLOWD_KEYS_FILE", K_TEXT, OFF(keys_file), 0, sizeof(((flowd_config_t *)0)->keys_file),
     "", "FILE",
     "API keys (their SHA-256 hashes), names, roles and tenants; reloaded on SIGHUP (make a key: "
     "flowd key new). Without it flowd is open, and only on a loopback address"},
    {"metrics-open", "FLOWD_METRICS_OPEN", K_BOOL, OFF(metrics_open), 0, 0, "false", "",
     "GET /metrics without a key (with keys it needs an admin key)"},
    {"insecure-no-auth", "FLOWD_INSECURE_NO_AUTH", K_BOOL, OFF(insecure_no_auth), 0, 0, "false", "",
     "no key file and yet listen on an address that is not loopback: anyone who reaches it may do "
     "anything"},
    /* outbound: what http and llm nodes may reach (flow/netpolicy.h) */
    {"allow-outbound", "FLOWD_ALLOW_OUTBOUND", K_NETRULES, OFF(allow_outbound), 0,
     sizeof(((flowd_config_t *)0)->allow_outbound), "", "LIST",
     "what http and llm nodes may reach besides public addresses, comma-separated: 127.0.0.1:8090, "
     "10.0.0.0/8, [::1]:9000, api.example.com, api.example.com:443, *.example.com"},
    {"deny-outbound", "FLOWD_DENY_OUTBOUND", K_NETRULES, OFF(deny_outbound), 0,
     sizeof(((flowd_config_t *)0)->deny_outbound), "", "LIST",
     "what they may not reach, public addresses included (the same entries; --allow-outbound wins; "
     "0.0.0.0/0,::/0 is everything)"},
    {"flow-outbound", "FLOWD_FLOW_OUTBOUND", K_ONOFF, OFF(flow_outbound), 0, 0, "on", "on|off",
     "on: a flow document's \"outbound\": {\"allow\": [...]} lets its http nodes reach those "
     "too; off: such documents do not load"},
    /* limits: what one job, one answer, one flow or one slow client may take */
    {"max-steps", "FLOWD_MAX_STEPS", K_UINT, OFF(max_steps), 1, 1000000000, "10000", "N",
     "steps a job may run (a flow's max_steps may ask for fewer); then it fails "
     "max_steps_exceeded"},
    {"deadline", "FLOWD_DEADLINE", K_MS, OFF(deadline_ms), 1000, 3650 * DAY_MS, "24h", "DURATION",
     "how long a job may take from its start (a flow's deadline may ask for less); then it fails "
     "deadline_exceeded"},
    {"max-shared", "FLOWD_MAX_SHARED", K_SIZE, OFF(max_shared), 1024, GIB, "1MiB", "SIZE",
     "largest shared store of a job, as compact JSON, checked after each step; past it the job "
     "fails too_big (and POST /v1/jobs gets 413)"},
    {"max-template", "FLOWD_MAX_TEMPLATE", K_SIZE, OFF(max_template), 64, GIB, "1MiB", "SIZE",
     "largest text one template of a flow document expands to; past it the step fails too_big"},
    {"max-answer", "FLOWD_MAX_ANSWER", K_SIZE, OFF(max_answer), 4096, 16 * GIB, "8MiB", "SIZE",
     "largest answer made from a job's store (shared, history) or a list; past it 422 "
     "answer_too_large (ask with ?pointer= or ?limit=)"},
    {"max-flows", "FLOWD_MAX_FLOWS", K_UINT, OFF(max_flows), 1, 1000000, "1000", "N",
     "flows a server holds (compiled-in, --flows and PUT); past it a PUT of a new one gets 409"},
    {"max-schedules", "FLOWD_MAX_SCHEDULES", K_UINT, OFF(max_schedules), 1, 1000000, "1000", "N",
     "schedules a server holds (PUT /v1/schedules/{name}); past it a PUT of a new one gets 409"},
    {"max-flow-size", "FLOWD_MAX_FLOW_SIZE", K_SIZE, OFF(max_flow_size), 1024, GIB, "1MiB", "SIZE",
     "largest flow document (a PUT body, within --max-body, or a --flows file)"},
    {"max-graph", "FLOWD_MAX_GRAPH", K_UINT, OFF(max_graph), 1, 100000, "300", "N",
     "nodes and edges a graph.svg draws (its layout is CPU work on an HTTP thread); a larger "
     "flow's graph gets 422 graph_too_large"},
    {"header-timeout", "FLOWD_HEADER_TIMEOUT", K_MS, OFF(header_timeout_ms), 100, DAY_MS, "10s",
     "DURATION", "close a connection whose request line and headers are not all in this long after "
     "it opened or after its last answer (a client that trickles them), whatever --idle-timeout "
     "says"},
    /* webhooks: a job's "callback" (webhooks.h) */
    {"webhook-secrets", "FLOWD_WEBHOOK_SECRETS", K_TEXT, OFF(webhook_secrets), 0,
     sizeof(((flowd_config_t *)0)->webhook_secrets), "", "FILE",
     "the secrets that sign callbacks: a line per secret, `<tenant> whsec_<base64>` (several of a "
     "tenant all sign: rotation); reloaded on SIGHUP. Without it POST /v1/jobs takes no callback"},
    {"webhook-wait", "FLOWD_WEBHOOK_WAIT", K_MS, OFF(webhook_wait_ms), 1, DAY_MS, "5s", "DURATION",
     "a callback that failed is tried again after a random wait up to this, doubled at each try "
     "(full jitter)"},
    {"webhook-max-wait", "FLOWD_WEBHOOK_MAX_WAIT", K_MS, OFF(webhook_max_wait_ms), 1, DAY_MS, "1h",
     "DURATION", "the most the doubled wait between two tries of a callback reaches"},
    {"webhook-max-age", "FLOWD_WEBHOOK_MAX_AGE", K_MS, OFF(webhook_max_age_ms), 1, 30 * DAY_MS,
     "24h", "DURATION", "a callback is tried for this long after its event; then it has failed"},
    {"webhook-timeout", "FLOWD_WEBHOOK_TIMEOUT", K_MS, OFF(webhook_timeout_ms), 100, 3600000, "10s",
     "DURATION", "how long one try of a callback may take (connecting included)"},
    {"webhook-in-flight", "FLOWD_WEBHOOK_IN_FLIGHT", K_UINT, OFF(webhook_in_flight), 1, 10000, "64",
     "N", "tries of callbacks at once; the others wait their turn"},
    {"webhook-max-pending", "FLOWD_WEBHOOK_MAX_PENDING", K_UINT, OFF(webhook_max_pending), 1,
     100000000, "100000", "N",
     "callbacks owed and not yet made; past it a new one is dropped (logged, and counted in "
     "flowd_webhook_deliveries_total{outcome=\"dropped\"})"},
};

/* Read from the environment only, never a flag: flags show in ps. */
#define LLM_API_KEY_ENV "FLOWD_LLM_API_KEY"

#define NSETTINGS (sizeof settings / sizeof settings[0])

int flowd_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
    if (s == NULL || *s < '0' || *s > '9')
        return FLOW_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return FLOW_EINVAL;
    *out = v;
    return 0;
}

/* A unit a number may be followed by, and what the number is then multiplied by. */
typedef struct unit {
    const char *unit;
    double mul;
} unit_t;

/* A decimal number (digits, a fraction allowed; no sign, exponent or hex) followed by one of the n
 * units (compared ignoring case with casefold), times the unit's multiplier, into *scaled: 0, or
 * FLOW_EINVAL (another text, an unknown unit, or more than 9e15). */
static int number_unit(const char *s, const unit_t *units, size_t n_units, int casefold,
                       double *scaled) {
    char digits[64];
    size_t n = 0, dots = 0, seen_digit = 0;
    if (s == NULL)
        return FLOW_EINVAL;
    for (; (isdigit((unsigned char)s[n]) || s[n] == '.') && n < sizeof digits - 1; n++) {
        dots += s[n] == '.';
        seen_digit |= s[n] != '.';
    }
    if (!seen_digit || dots > 1 || n == sizeof digits - 1)
        return FLOW_EINVAL;
    memcpy(digits, s, n);
    digits[n] = '\0';
    const char *unit = s + n;
    for (size_t i = 0; i < n_units; i++) {
        if ((casefold ? strcasecmp(unit, units[i].unit) : strcmp(unit, units[i].unit)) == 0) {
            *scaled = strtod(digits, NULL) * units[i].mul;
            return *scaled > 9.0e15 ? FLOW_EINVAL : 0;
        }
    }
    return FLOW_EINVAL;
}

int flowd_parse_size(const char *s, uint64_t *out) {
    static const unit_t units[] = {
        {"", 1},           {"b", 1},           {"k", 1024},       {"kb", 1024},
        {"kib", 1024},     {"m", 1048576},     {"mb", 1048576},   {"mib", 1048576},
        {"g", 1073741824}, {"gb", 1073741824}, {"gib", 1073741824}};
    double bytes;
    if (number_unit(s, units, sizeof units / sizeof units[0], 1, &bytes) < 0 ||
        bytes != (double)(uint64_t)bytes)
        return FLOW_EINVAL; /* not a size, too big, or a fraction of a byte */
    *out = (uint64_t)bytes;
    return 0;
}

int flowd_parse_duration_ms(const char *s, uint64_t *out) {
    static const unit_t units[] = {{"", 1000},   {"ms", 1},        {"s", 1000},
                                   {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    double ms;
    if (number_unit(s, units, sizeof units / sizeof units[0], 0, &ms) < 0)
        return FLOW_EINVAL;
    *out = (uint64_t)(ms + 0.5);
    return 0;
}

static int valid_addr(const char *s) {
    unsigned char addr[16];
    return strcmp(s, "localhost") == 0 || inet_pton(AF_INET, s, addr) == 1 ||
           inet_pton(AF_INET6, s, addr) == 1;
}

/* Sets one setting from text; on error writes why into err. */
static int apply(flowd_config_t *c, const setting_t *st, const char *value, char *err, size_t errlen) {
    char *field = (char *)c + st->offset;
    uint64_t v = 0;
    const char *why = NULL;
    switch (st->kind) {
    case K_UINT:
        if (flowd_parse_uint(value, st->min, st->max, &v) < 0)
            why = "a whole number";
        else
            *(unsigned *)field = (unsigned)v;
        break;
    case K_SIZE:
        if (flowd_parse_size(value, &v) < 0 || v < st->min || v > st->max)
            why = "a size such as 65536, 64KiB or 1MiB";
        else
            *(size_t *)field = (size_t)v;
        break;
    case K_MS:
    case K_SECONDS:
        if (flowd_parse_duration_ms(value, &v) < 0 || v < st->min || v > st->max ||
            (st->kind == K_SECONDS && v % 1000 != 0))
            why = st->kind == K_SECONDS ? "whole seconds such as 30 or 30s" : "a duration such as 1500ms, 10s, 5m or 24h";
        else
            *(uint64_t *)field = v;
        break;
    case K_ADDR:
        if (strlen(value) >= sizeof c->bind || !valid_addr(value))
            why = "an IPv4 or IPv6 address, or localhost";
        else
            snprintf(c->bind, sizeof c->bind, "%s", value);
        break;
    case K_TEXT:
        if (strlen(value) >= st->max)
            why = "a shorter text";
        else if (st->offset == OFF(store_sync) && strcmp(value, "full") != 0 && strcmp(value, "normal") != 0)
            why = "full or normal";
        else if (st->offset == OFF(log_format) && strcmp(value, "text") != 0 && strcmp(value, "json") != 0)
            why = "text or json";
        else
            snprintf(field, st->max, "%s", value);
        break;
    case K_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0 || strcmp(value, "yes") == 0)
            *(int *)field = 1;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0 ||
                 strcmp(value, "no") == 0 || *value == '\0')
            *(int *)field = 0;
        else
            why = "true or false (1 or 0)";
        break;
    case K_NETRULES: {
        flow_netrules_t *rules = NULL;
        char bad[200]; /* the caller's err is 256 bytes */
        int rc = flow_netrules_new(&rules);
        if (rc == 0)
            rc = flow_netrules_add_list(rules, value, bad, sizeof bad);
        flow_netrules_unref(rules);
        if (strlen(value) >= st->max) {
            why = "a shorter list";
        } else if (rc < 0) {
            snprintf(err, errlen, "%s", rc == FLOW_ENOMEM ? "out of memory" : bad);
            return FLOW_EINVAL;
        } else {
            snprintf(field, st->max, "%s", value);
        }
        break;
    }
    case K_ONOFF:
        if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
            why = "on or off";
        else
            *(int *)field = strcmp(value, "on") == 0;
        break;
    case K_LEVEL: {
        flow_log_level_t level;
        if (flowd_log_parse_level(value, &level) < 0)
            why = "debug, info, warn or error";
        else
            c->log_level = level;
        break;
    }
    }
    if (why == NULL)
        return 0;
    if (st->kind == K_UINT || st->kind == K_SIZE || st->kind == K_MS || st->kind == K_SECONDS) {
        char range[96] = "";
        if (st->kind == K_UINT)
            snprintf(range, sizeof range, " from %llu to %llu", (unsigned long long)st->min,
                     (unsigned long long)st->max);
        snprintf(err, errlen, "'%s' is not valid: expected %s%s", value, why, range);
    } else {
        snprintf(err, errlen, "'%s' is not valid: expected %s", value, why);
    }
    return FLOW_EINVAL;
}

void flowd_config_defaults(flowd_config_t *c) {
    char err[8];
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NSETTINGS; i++)
        apply(c, &settings[i], settings[i].def, err, sizeof err);
}

static const char *real_getenv(const char *name) {
    return getenv(name);
}

static const setting_t *find_flag(const char *name, size_t len) {
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strlen(settings[i].flag) == len && strncmp(settings[i].flag, name, len) == 0)
            return &settings[i];
    return NULL;
}

int flowd_config_parse(flowd_config_t *c, int argc, char **argv, flowd_getenv_fn env, char *err,
                       size_t errlen) {
    char why[256];
    flowd_config_defaults(c);
    if (env == NULL)
        env = real_getenv;
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *value = env(settings[i].env);
        if (value != NULL && apply(c, &settings[i], value, why, sizeof why) < 0) {
            snprintf(err, errlen, "%s: %s", settings[i].env, why);
            return FLOWD_CONFIG_ERROR;
        }
    }
    const char *key = env(LLM_API_KEY_ENV);
    if (key != NULL) {
        if (strlen(key) >= sizeof c->llm_api_key) {
            snprintf(err, errlen, "%s: too long", LLM_API_KEY_ENV);
            return FLOWD_CONFIG_ERROR;
        }
        snprintf(c->llm_api_key, sizeof c->llm_api_key, "%s", key);
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return FLOWD_CONFIG_HELP;
        if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0)
            return FLOWD_CONFIG_VERSION;
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (flowd takes only flags; see --help)", arg);
            return FLOWD_CONFIG_ERROR;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const setting_t *st = find_flag(name, len);
        if (st == NULL) {
            snprintf(err, errlen, "unknown flag '--%.*s' (see --help)", (int)len, name);
            return FLOWD_CONFIG_ERROR;
        }
        /* a yes-or-no flag alone says yes; --flag=false says no */
        const char *value = eq                   ? eq + 1
                            : st->kind == K_BOOL ? "true"
                                                 : (i + 1 < argc ? argv[++i] : NULL);
        if (value == NULL) {
            snprintf(err, errlen, "--%s needs a value (%s)", st->flag, st->arg);
            return FLOWD_CONFIG_ERROR;
        }
        if (apply(c, st, value, why, sizeof why) < 0) {
            snprintf(err, errlen, "--%s: %s", st->flag, why);
            return FLOWD_CONFIG_ERROR;
        }
    }
    if (c->lua_budget > c->lua_budget_max) {
        snprintf(err, errlen, "--lua-budget (%u) is more than --lua-budget-max (%u)", c->lua_budget,
                 c->lua_budget_max);
        return FLOWD_CONFIG_ERROR;
    }
    if (c->insecure_no_auth && c->keys_file[0] != '\0') {
        snprintf(err, errlen,
                 "--insecure-no-auth and --keys (FLOWD_KEYS_FILE) exclude each other: with a key "
                 "file flowd is not open; give only one");
        return FLOWD_CONFIG_ERROR;
    }
    if (c->webhook_wait_ms > c->webhook_max_wait_ms) {
        snprintf(err, errlen, "--webhook-wait (%llu ms) is more than --webhook-max-wait (%llu ms)",
                 (unsigned long long)c->webhook_wait_ms, (unsigned long long)c->webhook_max_wait_ms);
        return FLOWD_CONFIG_ERROR;
    }
    return FLOWD_CONFIG_RUN;
}

void flowd_config_usage(FILE *out) {
    fprintf(out, "usage: flowd [FLAG VALUE]...\n"
                 "       flowd check FILE... [FLAG VALUE]...\n"
                 "       flowd run FILE [--shared JSON] [--params JSON] [FLAG VALUE]...\n"
                 "       flowd backup DIR [--store sqlite:PATH] [--data-dir DIR]\n"
                 "       flowd key new [--name NAME] [--role admin|submit|read] [--tenant TENANT]\n"
                 "Runs PocketFlow-style flows as jobs behind a REST API (api/openapi.yaml).\n"
                 "flowd check prints every problem of flow documents; flowd run runs one job of "
                 "one in\n"
                 "this process (its steps to stderr, its shared store to stdout, input answers "
                 "from\n"
                 "stdin); flowd check --help and flowd run --help say more. Both take the flags "
                 "below.\n"
                 "flowd backup copies the SQLite store, every file of it, into DIR while flowd "
                 "runs.\n"
                 "Every flag has an environment variable; the flag wins over the variable.\n\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *st = &settings[i];
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", st->flag, st->arg[0] ? " " : "", st->arg);
        fprintf(out, "  %-30s %s\n  %-30s   env %s, default %s\n", left, st->help, "", st->env,
                st->kind == K_BOOL ? "off (env: 1 or true for on)" : st->def[0] ? st->def : "none");
    }
    fprintf(out, "  %-30s %s\n", "(no flag)", "env " LLM_API_KEY_ENV ": the API key of llm nodes, sent as a "
                                                "Bearer token; never shown");
    fprintf(out, "  %-30s %s\n  %-30s %s\n\n", "--help", "print this and exit", "--version",
            "print the version and exit");
    fprintf(out, "Sizes: 65536, 64k, 64KiB, 1MiB. Durations: 90 (seconds), 1500ms, 10s, 5m, 24h, 7d.\n"
                 "Exit status: 0 after SIGTERM or SIGINT, 1 when the server cannot start, 2 for bad "
                 "flags.\n");
}

int flowd_outbound_init(const flowd_config_t *c, flowd_outbound_t *o, char *why, size_t whylen) {
    char bad[FLOW_NETRULE_MAX_LEN + 160] = "out of memory";
    const char *flag = "--allow-outbound";
    *o = (flowd_outbound_t){0};
    int rc = flow_netrules_new(&o->allow);
    if (rc == 0)
        rc = flow_netrules_new(&o->deny);
    if (rc == 0)
        rc = flow_netrules_add_list(o->allow, c->allow_outbound, bad, sizeof bad);
    if (rc == 0) {
        flag = "--deny-outbound";
        rc = flow_netrules_add_list(o->deny, c->deny_outbound, bad, sizeof bad);
    }
    if (rc == 0 && c->llm_base_url[0] != '\0') {
        flag = "--llm-base-url";
        rc = flow_netrules_new(&o->llm);
        if (rc == 0)
            rc = flow_netrules_add_url(o->llm, c->llm_base_url, bad, sizeof bad);
    }
    if (rc < 0) {
        snprintf(why, whylen, "%s: %s", flag, bad);
        flowd_outbound_clear(o);
    }
    return rc;
}

void flowd_outbound_clear(flowd_outbound_t *o) {
    flow_netrules_unref(o->allow);
    flow_netrules_unref(o->deny);
    flow_netrules_unref(o->llm);
    *o = (flowd_outbound_t){0};
}

void flowd_config_nodes_env(const flowd_config_t *c, const flowd_outbound_t *o, flow_nodes_env_t *env) {
    *env = (flow_nodes_env_t){.http = env->http,
                              .llm_base_url = c->llm_base_url,
                              .llm_api_key = c->llm_api_key,
                              .llm_model = c->llm_model,
                              .llm_allow = o->llm,
                              .no_flow_outbound = !c->flow_outbound,
                              .lua = {.instructions = c->lua_budget,
                                      .instructions_max = c->lua_budget_max,
                                      .memory = c->lua_memory,
                                      .time_ms = c->lua_time_ms},
                              .re_limits = {.max_length = c->regex_max_length,
                                            .max_nesting = c->regex_max_nesting,
                                            .max_compiled = c->regex_max_compiled,
                                            .match_limit = c->regex_match_limit,
                                            .depth_limit = c->regex_depth_limit,
                                            .heap_limit = c->regex_heap_limit,
                                            .budget = c->regex_budget,
                                            .no_jit = !c->regex_jit}};
}

void flowd_config_engine_opts(const flowd_config_t *c, flow_engine_opts_t *opts) {
    *opts = (flow_engine_opts_t){.history_limit = c->history_limit,
                                 .log_lines = c->lua_log_lines,
                                 .log_line_bytes = c->lua_log_bytes,
                                 .log_job_bytes = c->lua_log_job_bytes};
}

void flowd_config_job_limits(const flowd_config_t *c, const flow_def_t *def, flow_job_opts_t *opts) {
    json_t *doc = flow_doc_of(def);
    json_t *steps = json_object_get(doc, "max_steps"), *deadline = json_object_get(doc, "deadline");
    opts->max_steps = c->max_steps;
    opts->deadline_ms = c->deadline_ms;
    if (json_is_integer(steps) && json_integer_value(steps) > 0 &&
        (uint64_t)json_integer_value(steps) < opts->max_steps)
        opts->max_steps = (uint64_t)json_integer_value(steps);
    if (json_is_integer(deadline) && json_integer_value(deadline) > 0 &&
        (uint64_t)json_integer_value(deadline) < opts->deadline_ms)
        opts->deadline_ms = (uint64_t)json_integer_value(deadline);
}

void flowd_config_apply_process(const flowd_config_t *c) {
    flow_template_set_max_text(c->max_template, "--max-template");
    flow_doc_set_max_bytes(c->max_flow_size, "--max-flow-size");
}
