/* config.h: flowd's settings from its flags and FLOWD_* environment variables. A flag wins over its
 * variable, a variable over the default. Every setting, its flag, variable and default is in one
 * table in config.c, which also writes the --help text, so the three cannot drift apart.
 *
 * Values: counts are decimal; sizes take a unit (1048576, 1024k, 1MiB, 1M); durations too (90, 90s,
 * 1500ms, 10m, 24h, 7d; a bare number is seconds). Flags are `--name value` or `--name=value`. */
#ifndef FLOWD_CONFIG_H
#define FLOWD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "flow.h"
#include "flow/nodes.h"

typedef struct flowd_config {
    char bind[64];              /* numeric IPv4 or IPv6 address, or "localhost" */
    unsigned port;              /* 0: any free port */
    unsigned http_threads;
    size_t max_body;            /* bytes of a request body */
    size_t max_header;          /* bytes of the request line and headers */
    unsigned max_jobs;          /* queued, running or waiting at once */
    unsigned max_running;       /* running or waiting for input at once (scheduler.h) */
    uint64_t max_delay_ms;      /* how far from now a job's start_at (or delay) may be */
    unsigned max_finished;      /* finished jobs kept */
    uint64_t retention_ms;      /* how long a finished job is kept */
    uint64_t grace_ms;          /* shutdown: how long running steps may take to finish */
    unsigned history_limit;     /* history entries a job keeps */
    unsigned max_conns;
    unsigned max_conns_per_ip;
    uint64_t idle_timeout_ms;   /* a connection with no traffic this long is closed (whole seconds) */
    uint64_t keepalive_ms;      /* SSE comment lines while nothing happens */
    unsigned events_limit;      /* events a job keeps for /events */
    flow_log_level_t log_level;
    char log_format[8];         /* text or json */
    char flows[1024];           /* a directory of flow documents to load at start; "" none */
    char store[1024];           /* memory:, sqlite:PATH or postgresql://... */
    char data_dir[1024];        /* where a relative sqlite:PATH goes */
    char store_sync[16];        /* full or normal */
    unsigned store_shards;      /* SQLite: files of a new store, each with its own writer */
    unsigned store_backlog;     /* operations queued for the store past which no job starts a step */
    unsigned snapshot_steps;    /* a store that keeps patches: a whole shared store after this many
                                 * steps' patches */
    size_t snapshot_bytes;      /* ... or after this many bytes of them */
    uint64_t lease_ms;          /* PostgreSQL: a job's lease, renewed by its owner every third of it */
    uint64_t claim_ms;          /* PostgreSQL: how often an instance looks for jobs to take over */
    uint64_t poll_ms;           /* PostgreSQL: how often it looks for what it was not notified of */
    char llm_base_url[512];     /* OpenAI-compatible endpoint of llm nodes; "" none */
    char llm_model[128];        /* the model of llm nodes that name none */
    char llm_api_key[512];      /* from FLOWD_LLM_API_KEY only: a flag would show in ps */
    /* regular expressions: flow/limits.h's limits */
    size_t regex_max_length;    /* bytes of a pattern */
    unsigned regex_max_nesting; /* nested parentheses */
    size_t regex_max_compiled;  /* bytes of a compiled pattern */
    unsigned regex_match_limit; /* PCRE2 match limit of one match */
    unsigned regex_depth_limit; /* PCRE2 depth limit of one match */
    size_t regex_heap_limit;    /* bytes of backtracking memory or JIT stack of one match */
    unsigned regex_budget;      /* match-limit units of one check */
    unsigned regex_jit;         /* 0: never JIT-compile */
    unsigned lua_budget;        /* instructions a Lua hook call may run by default */
    unsigned lua_budget_max;    /* the most a node may ask for */
    size_t lua_memory;          /* bytes a flow's Lua state may hold */
    uint64_t lua_time_ms;       /* time a Lua hook call may take */
    unsigned lua_log_lines;     /* log(...) lines a step keeps */
    size_t lua_log_bytes;       /* bytes of a log(...) line */
    size_t lua_log_job_bytes;   /* bytes of log(...) lines a job keeps */
    /* keys and roles (auth.h) */
    char keys_file[1024];       /* the key file; "" none: open, and only on a loopback address */
    int metrics_open;           /* GET /metrics without a key */
    int insecure_no_auth;       /* no key file, and open on any address */
    /* outbound: what http and llm nodes may reach (flow/netpolicy.h) */
    char allow_outbound[4096];  /* entries they may reach besides public addresses; "" none */
    char deny_outbound[4096];   /* entries they may not reach, public ones included; "" none */
    int flow_outbound;          /* 1: a flow document's "outbound" allow list applies to its http
                                 * nodes; 0: such documents do not load */
    /* limits */
    unsigned max_steps;         /* steps a job may run (a flow's max_steps may be lower) */
    uint64_t deadline_ms;       /* how long a job may take from its start (a flow's may be lower) */
    size_t max_shared;          /* bytes of a job's shared store as compact JSON, after each step */
    size_t max_template;        /* bytes one template of a flow document expands to */
    size_t max_answer;          /* bytes of an answer made from a job's store or a list */
    unsigned max_flows;         /* flows a server holds */
    unsigned max_schedules;     /* schedules a server holds */
    size_t max_flow_size;       /* bytes of a flow document */
    unsigned max_graph;         /* nodes and edges a graph.svg draws (layout is CPU work) */
    uint64_t header_timeout_ms; /* a request's line and headers, from the opening or last answer */
    /* webhooks (webhooks.h): the callbacks of jobs */
    char webhook_secrets[1024]; /* the secrets file: tenant and whsec_ secret a line; "" none */
    uint64_t webhook_wait_ms;   /* the first wait before a try again (doubles each time) */
    uint64_t webhook_max_wait_ms; /* the cap of one wait */
    uint64_t webhook_max_age_ms;  /* no try after a delivery is this old: it has failed */
    uint64_t webhook_timeout_ms;  /* of one try */
    unsigned webhook_in_flight;   /* tries at once */
    unsigned webhook_max_pending; /* deliveries not yet made, in all */
} flowd_config_t;

enum {
    FLOWD_CONFIG_RUN = 0,     /* parsed: run the server */
    FLOWD_CONFIG_HELP = 1,    /* --help was given */
    FLOWD_CONFIG_VERSION = 2, /* --version was given */
    FLOWD_CONFIG_ERROR = -1   /* err holds the message */
};

/* Where variables are read from: getenv, or a test's own. */
typedef const char *(*flowd_getenv_fn)(const char *name);

void flowd_config_defaults(flowd_config_t *c);
/* Defaults, then the environment (env NULL: getenv), then argv[1..]. On FLOWD_CONFIG_ERROR, err
 * (errlen bytes) says which flag or variable is wrong and why. */
int flowd_config_parse(flowd_config_t *c, int argc, char **argv, flowd_getenv_fn env, char *err,
                       size_t errlen);
/* The outbound policy the flags make (flow/netpolicy.h): each list a reference, which
 * flowd_outbound_clear drops (the client and nodes take their own). */
typedef struct flowd_outbound {
    flow_netrules_t *allow; /* --allow-outbound */
    flow_netrules_t *deny;  /* --deny-outbound */
    flow_netrules_t *llm;   /* the host and port of --llm-base-url, for llm nodes; NULL: none */
} flowd_outbound_t;

/* 0, or FLOW_EINVAL / FLOW_ENOMEM with why (whylen bytes) saying which flag and why; o is cleared
 * on error. */
int flowd_outbound_init(const flowd_config_t *c, flowd_outbound_t *o, char *why, size_t whylen);
void flowd_outbound_clear(flowd_outbound_t *o);

/* What the node types and the engine take from the settings, for the server and for flowd run:
 * env->http is left as it was; the strings stay c's and the lists o's (both must outlive env). */
void flowd_config_nodes_env(const flowd_config_t *c, const flowd_outbound_t *o, flow_nodes_env_t *env);
void flowd_config_engine_opts(const flowd_config_t *c, flow_engine_opts_t *opts);
/* A job's steps and time (opts->max_steps, opts->deadline_ms): the server's, or its flow document's
 * own where they are lower. */
void flowd_config_job_limits(const flowd_config_t *c, const flow_def_t *def, flow_job_opts_t *opts);
/* The settings that are process-wide in lib/ (what a template expands to, a document's size): once,
 * before any flow is loaded or any thread runs. */
void flowd_config_apply_process(const flowd_config_t *c);

/* The --help text: every flag with its variable and default. */
void flowd_config_usage(FILE *out);

/* The parsers behind the flags, 0 or FLOW_EINVAL (exposed for tests). */
int flowd_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int flowd_parse_size(const char *s, uint64_t *out);
int flowd_parse_duration_ms(const char *s, uint64_t *out);

#endif
