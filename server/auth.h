/* auth.h: who may do what. API keys sent as bearer tokens (Authorization: Bearer <key>), each with
 * a name, a role and a tenant, read from a key file that holds only the keys' SHA-256 hashes; the
 * tenants (a job belongs to the tenant of the key that made it); and whether flowd may run open,
 * without keys (only on a loopback address, or with --insecure-no-auth).
 *
 * Roles, each allowed what the ones below it are:
 *   read    read its tenant's jobs (GET a job, its shared store, history, events, the list), and
 *           the flows (every key may: flows are not per tenant);
 *   submit  also POST jobs, and answer input and cancel its tenant's jobs;
 *   admin   also PUT and DELETE flows, every tenant's jobs, and GET /metrics.
 * What each route needs is written beside the routes (http.c: role_needed).
 *
 * The key file is JSON, {"keys": [{"name", "role", "tenant", "sha256"}]}, or text, a key a line:
 * `<sha256 hex> <name> <role> <tenant>`, `#` starting a comment. Names and tenants are 1 to 64 of
 * A-Z a-z 0-9 . _ -. `flowd key new` makes a key (flowd_key_command). The file is read at start
 * and again on SIGHUP (flowd_auth_reload); a file that does not read keeps the keys before it.
 *
 * A presented key is hashed and compared with every hash of the file, each in constant time (as
 * CRYPTO_memcmp would), so the time a check takes says nothing about which key, or which part of
 * one, was close.
 *
 * Threads: HTTP threads identify callers (a read lock over the keys); a reload runs on a thread of
 * its own (libuv's pool: reading a file is not for the loop) and swaps the keys under the write
 * lock. Tenants are interned: the same name is always the same pointer, which lives as long as the
 * flowd_auth_t, so that a job's tenant is compared by pointer. */
#ifndef FLOWD_AUTH_H
#define FLOWD_AUTH_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"

#define FLOWD_DEFAULT_TENANT                                                                       \
    "default"             /* jobs from before tenants, and every caller of an open flowd */
#define FLOWD_NAME_MAX 64 /* of a key's name and of a tenant */
#define FLOWD_KEY_MAX 512 /* a longer presented key is wrong without being hashed */

typedef enum flowd_role {
    FLOWD_ROLE_NONE = 0, /* no key, or a wrong one: only what needs none (/healthz) */
    FLOWD_ROLE_READ,
    FLOWD_ROLE_SUBMIT,
    FLOWD_ROLE_ADMIN
} flowd_role_t;

const char *flowd_role_name(flowd_role_t role);

/* Who sent a request. */
typedef struct flowd_caller {
    flowd_role_t role;
    const char *tenant;            /* interned (flowd_auth_tenant); NULL for ROLE_NONE */
    char name[FLOWD_NAME_MAX + 1]; /* the key's name, for the log; "" when open or unknown */
    int bad; /* ROLE_NONE: 1 no key was sent, 2 a key that is not in the file */
} flowd_caller_t;

typedef struct flowd_auth flowd_auth_t;

/* Reads cfg->keys_file (when set), or decides that flowd runs open: only when cfg->bind is a
 * loopback address, or with cfg->insecure_no_auth. Logs which. FLOW_EINVAL with the reason in err
 * (a refusal to start open on another address says how to add a key; a bad key file names its file
 * and line), FLOW_EIO when the file cannot be read, FLOW_ENOMEM. Before the HTTP daemon starts. */
int flowd_auth_new(const flowd_config_t *cfg, flowd_auth_t **out, char *err, size_t errlen);
/* Nothing may use a, its callers' tenants or the records that borrow them any more. NULL is
 * ignored. */
void flowd_auth_free(flowd_auth_t *a);
/* Whether flowd runs without keys (every caller is admin of tenant "default"). */
int flowd_auth_open(const flowd_auth_t *a);
/* The key file, or NULL when open. */
const char *flowd_auth_file(const flowd_auth_t *a);

/* Reads the key file again and, when it reads, puts its keys in place of the old ones; otherwise
 * logs why (file and line) and keeps the old ones. Blocks on the file: never on the loop thread.
 * 0 or the error. */
int flowd_auth_reload(flowd_auth_t *a);

/* HTTP threads: who sends authorization (the Authorization header's value, NULL when none). */
void flowd_auth_identify(flowd_auth_t *a, const char *authorization, flowd_caller_t *out);

/* The tenant of this name, interned: the same pointer for the same name, as long as a lives; NULL
 * when out of memory. Any thread. */
const char *flowd_auth_tenant(flowd_auth_t *a, const char *name);
/* The same, without adding it: NULL when no key and no job has named this tenant yet. */
const char *flowd_auth_find_tenant(flowd_auth_t *a, const char *name);

/* Whether bind (as --bind takes it) is a loopback address: 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104
 * or localhost. */
int flowd_auth_loopback(const char *bind);

/* The keys of a key file's text (path only names it in messages): 0 and their count in *n, or
 * FLOW_EINVAL with "path:line: why" (a JSON file: "path:line:column: /keys/2/role: why") in err.
 * Exposed for tests; the keys are dropped. */
int flowd_auth_check_text(const char *path, const char *text, size_t len, size_t *n, char *err,
                          size_t errlen);

/* `flowd key new [--name N] [--role R] [--tenant T]`: argv[0] is "key". Prints the new key and the
 * key file's line for it to out, and what to do with them to msg. The exit status. */
int flowd_key_command(int argc, char **argv, FILE *out, FILE *msg);

#endif
