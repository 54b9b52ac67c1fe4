/* auth.c: API keys, roles and tenants (auth.h). SHA-256 and the base64 of new keys are OpenSSL's
 * libcrypto; the key file's JSON is jansson's (and its positions flow/jsonpos.h's); the tenants are
 * interned in a jansson object used as a hash set. Written here: the key file's line format and the
 * checks of its fields, which no library knows, and the constant-time comparison of hashes, a fold
 * of 64-bit words: CRYPTO_memcmp does the same a byte at a time, 17 times slower (see
 * flowd_auth_identify). */
#include "auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "flow/jsonpos.h"
#include "log.h"

#define HASH_LEN 32
#define KEY_FILE_MAX ((size_t)4 << 20) /* bytes of a key file: tens of thousands of keys */
#define KEY_RANDOM 32                  /* random bytes in a new key: 256 bits */
#define KEY_PREFIX "fk_"

typedef struct key {
    unsigned char hash[HASH_LEN];
    flowd_role_t role;
    const char *tenant_id; /* interned when the set is put in place */
    char name[FLOWD_NAME_MAX + 1];
    char tenant[FLOWD_NAME_MAX + 1];
} api_key_t;

typedef struct keyset {
    api_key_t *keys;
    size_t n, cap;
    uint64_t (*hashes)[HASH_LEN / 8]; /* keys[i].hash again, side by side for the scan (resolve) */
} keyset_t;

struct flowd_auth {
    char *path;            /* the key file; NULL: open */
    pthread_rwlock_t lock; /* over keys: HTTP threads read, a reload swaps */
    keyset_t *keys;
    pthread_mutex_t tlock; /* over tenants */
    json_t *tenants;       /* name -> json string of it, whose text is the interned pointer */
    const char *default_tenant;
    EVP_MD *sha256;        /* fetched once: EVP_sha256() is fetched again at every digest (0.4
                            * against 1.1 microseconds a key here) */
};

static const char *const role_names[] = {"none", "read", "submit", "admin"};

const char *flowd_role_name(flowd_role_t role) {
    return (unsigned)role < 4 ? role_names[role] : "none";
}

static int role_parse(const char *s, flowd_role_t *out) {
    for (int i = FLOWD_ROLE_READ; i <= FLOWD_ROLE_ADMIN; i++) {
        if (strcmp(s, role_names[i]) == 0) {
            *out = (flowd_role_t)i;
            return 0;
        }
    }
    return -1;
}

/* A key's name or a tenant: 1 to 64 of A-Z a-z 0-9 . _ - (they go into log lines and SQL
 * parameters, and a tenant into the Job object). */
static int valid_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > FLOWD_NAME_MAX)
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* md: a fetched SHA-256, or NULL for OpenSSL's own (slower: it is fetched for the call). */
static void sha256(const EVP_MD *md, const void *data, size_t len, unsigned char out[HASH_LEN]) {
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, md ? md : EVP_sha256(), NULL) != 1 || n != HASH_LEN)
        memset(out, 0, HASH_LEN); /* matches no key: the file's hashes are checked not to be zero */
}

static void hex_of(const unsigned char *b, size_t n, char *out) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ---- the key file ---- */

static void keyset_free(keyset_t *ks) {
    if (ks == NULL)
        return;
    OPENSSL_cleanse(ks->keys, ks->cap * sizeof *ks->keys);
    free(ks->keys);
    free(ks->hashes);
    free(ks);
}

/* Checks one key's fields into a new slot of ks; NULL, or why not. seen_hashes and seen_names map
 * what came before to where it was (for the message about a duplicate). */
static const char *add_key(keyset_t *ks, const char *hash_hex, const char *name, const char *role,
                           const char *tenant, const char *where, json_t *seen_hashes,
                           json_t *seen_names, char *why, size_t whylen) {
    api_key_t k;
    memset(&k, 0, sizeof k);
    if (strncmp(hash_hex, KEY_PREFIX, strlen(KEY_PREFIX)) == 0)
        return "this is a key, not its hash: the file holds only the SHA-256 of each key "
               "(flowd key new prints the line to add)";
    int zero = 1;
    for (size_t i = 0; i < HASH_LEN; i++) {
        int hi = hash_hex[2 * i] ? OPENSSL_hexchar2int((unsigned char)hash_hex[2 * i]) : -1;
        int lo = hi >= 0 && hash_hex[2 * i + 1]
                     ? OPENSSL_hexchar2int((unsigned char)hash_hex[2 * i + 1])
                     : -1;
        if (hi < 0 || lo < 0) {
            zero = -1;
            break;
        }
        k.hash[i] = (unsigned char)(hi << 4 | lo);
        zero &= k.hash[i] == 0;
    }
    if (zero < 0 || strlen(hash_hex) != 2 * HASH_LEN) {
        snprintf(why, whylen,
                 "'%.70s' is not a SHA-256 in hex (64 of 0-9 a-f); flowd key new prints the line "
                 "to add",
                 hash_hex);
        return why;
    }
    if (zero)
        return "a hash of all zeros is no key's";
    if (!valid_name(name)) {
        snprintf(why, whylen, "the name '%.70s' is not 1 to %d of A-Z a-z 0-9 . _ -", name,
                 FLOWD_NAME_MAX);
        return why;
    }
    if (role_parse(role, &k.role) < 0) {
        snprintf(why, whylen, "the role '%.70s' is not admin, submit or read", role);
        return why;
    }
    if (!valid_name(tenant)) {
        snprintf(why, whylen, "the tenant '%.70s' is not 1 to %d of A-Z a-z 0-9 . _ -", tenant,
                 FLOWD_NAME_MAX);
        return why;
    }
    char lower[2 * HASH_LEN + 1];
    hex_of(k.hash, HASH_LEN, lower);
    json_t *dup = json_object_get(seen_hashes, lower);
    if (dup != NULL) {
        snprintf(why, whylen, "the same key as %s", json_string_value(dup));
        return why;
    }
    dup = json_object_get(seen_names, name);
    if (dup != NULL) {
        snprintf(why, whylen, "the name '%s' is taken by %s", name, json_string_value(dup));
        return why;
    }
    if (ks->n == ks->cap) {
        size_t cap = ks->cap ? ks->cap * 2 : 16;
        api_key_t *keys = calloc(cap, sizeof *keys);
        if (keys == NULL)
            return "out of memory";
        if (ks->n > 0)
            memcpy(keys, ks->keys, ks->n * sizeof *keys);
        OPENSSL_cleanse(ks->keys, ks->cap * sizeof *ks->keys);
        free(ks->keys);
        ks->keys = keys;
        ks->cap = cap;
    }
    if (json_object_set_new(seen_hashes, lower, json_string(where)) < 0 ||
        json_object_set_new(seen_names, name, json_string(where)) < 0)
        return "out of memory";
    memcpy(k.name, name, strlen(name) + 1);
    memcpy(k.tenant, tenant, strlen(tenant) + 1);
    ks->keys[ks->n++] = k;
    return NULL;
}

/* `<sha256 hex> <name> <role> <tenant>` a line; # starts a comment. */
static int parse_lines(const char *path, const char *text, size_t len, keyset_t *ks, json_t *hashes,
                       json_t *names, char *err, size_t errlen) {
    char line[1024], why[256], where[32];
    size_t at = 0;
    for (int lineno = 1; at < len; lineno++) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
        if (n >= sizeof line) {
            snprintf(err, errlen, "%s:%d: the line is over %zu bytes", path, lineno,
                     sizeof line - 1);
            return FLOW_EINVAL;
        }
        memcpy(line, text + at, n);
        line[n] = '\0';
        at += n + 1;
        if (memchr(line, '\0', n) != NULL) {
            snprintf(err, errlen, "%s:%d: a NUL byte: this is not a key file", path, lineno);
            return FLOW_EINVAL;
        }
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        char *fields[5] = {NULL};
        int nf = 0;
        char *save = NULL;
        for (char *f = strtok_r(line, " \t\r", &save); f != NULL && nf < 5;
             f = strtok_r(NULL, " \t\r", &save))
            fields[nf++] = f;
        if (nf == 0)
            continue;
        if (nf != 4) {
            snprintf(err, errlen,
                     "%s:%d: %s fields: a key's line is <sha256 hex> <name> <role> <tenant>", path,
                     lineno,
                     nf > 4    ? "more than 4"
                     : nf == 1 ? "1"
                     : nf == 2 ? "2"
                               : "3");
            return FLOW_EINVAL;
        }
        snprintf(where, sizeof where, "line %d", lineno);
        const char *bad = add_key(ks, fields[0], fields[1], fields[2], fields[3], where, hashes,
                                  names, why, sizeof why);
        if (bad != NULL) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, bad);
            return FLOW_EINVAL;
        }
    }
    return 0;
}

/* "path:line:column: pointer: why" for a place in a JSON key file. */
static int json_problem(const char *path, const char *text, size_t len, const char *pointer,
                        const char *why, char *err, size_t errlen) {
    int line = 0, col = 0;
    flow_json_locate(text, len, pointer, &line, &col);
    snprintf(err, errlen, "%s:%d:%d: %s: %s", path, line, col, pointer[0] ? pointer : "/", why);
    return FLOW_EINVAL;
}

/* {"keys": [{"name", "role", "tenant", "sha256"}]} */
static int parse_json(const char *path, const char *text, size_t len, keyset_t *ks, json_t *hashes,
                      json_t *names, char *err, size_t errlen) {
    json_error_t jerr;
    char pointer[64], why[256];
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column,
                 jerr.text);
        return FLOW_EINVAL;
    }
    int rc = 0;
    json_t *keys = json_object_get(doc, "keys");
    const char *member;
    json_t *v;
    if (!json_is_object(doc) || !json_is_array(keys)) {
        rc = json_problem(path, text, len, "",
                          "the file must be {\"keys\": [{\"name\", \"role\", \"tenant\", "
                          "\"sha256\"}, ...]}",
                          err, errlen);
        goto out;
    }
    json_object_foreach(doc, member, v) {
        if (strcmp(member, "keys") != 0) {
            snprintf(pointer, sizeof pointer, "/%.40s", member);
            rc = json_problem(path, text, len, pointer,
                              "unknown member (the file has only \"keys\")", err, errlen);
            goto out;
        }
    }
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        static const char *const fields[] = {"sha256", "name", "role", "tenant"};
        const char *values[4];
        snprintf(pointer, sizeof pointer, "/keys/%zu", i);
        if (!json_is_object(k)) {
            rc = json_problem(path, text, len, pointer,
                              "a key is {\"name\", \"role\", \"tenant\", \"sha256\"}", err, errlen);
            goto out;
        }
        json_object_foreach(k, member, v) {
            int known = 0;
            for (size_t f = 0; f < 4; f++)
                known |= strcmp(member, fields[f]) == 0;
            if (!known) {
                snprintf(pointer, sizeof pointer, "/keys/%zu/%.30s", i, member);
                rc = json_problem(path, text, len, pointer,
                                  "unknown member (a key has name, role, tenant and "
                                  "sha256)",
                                  err, errlen);
                goto out;
            }
        }
        for (size_t f = 0; f < 4; f++) {
            values[f] = json_string_value(json_object_get(k, fields[f]));
            if (values[f] == NULL) {
                snprintf(pointer, sizeof pointer, "/keys/%zu", i);
                snprintf(why, sizeof why, "\"%s\" is missing or not a string", fields[f]);
                rc = json_problem(path, text, len, pointer, why, err, errlen);
                goto out;
            }
        }
        const char *bad = add_key(ks, values[0], values[1], values[2], values[3], pointer, hashes,
                                  names, why, sizeof why);
        if (bad != NULL) {
            rc = json_problem(path, text, len, pointer, bad, err, errlen);
            goto out;
        }
    }
out:
    json_decref(doc);
    return rc;
}

/* The keys of a key file's text: JSON when it starts with {, else lines. */
static int parse_text(const char *path, const char *text, size_t len, keyset_t **out, char *err,
                      size_t errlen) {
    keyset_t *ks = calloc(1, sizeof *ks);
    json_t *hashes = json_object(), *names = json_object();
    int rc = FLOW_ENOMEM;
    if (ks == NULL || hashes == NULL || names == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    size_t skip = strspn(text, " \t\r\n");
    if (skip < len && text[skip] == '{')
        rc = parse_json(path, text, len, ks, hashes, names, err, errlen);
    else
        rc = parse_lines(path, text, len, ks, hashes, names, err, errlen);
out:
    json_decref(hashes);
    json_decref(names);
    if (rc < 0) {
        keyset_free(ks);
        return rc;
    }
    *out = ks;
    return 0;
}

int flowd_auth_check_text(const char *path, const char *text, size_t len, size_t *n, char *err,
                          size_t errlen) {
    keyset_t *ks = NULL;
    int rc = parse_text(path, text, len, &ks, err, errlen);
    if (rc == 0)
        *n = ks->n;
    keyset_free(ks);
    return rc;
}

/* Reads and checks the key file. FLOW_EIO (cannot read it) or FLOW_EINVAL, with why in err. */
static int read_keys(const char *path, keyset_t **out, char *err, size_t errlen) {
    struct stat st;
    char *text = NULL;
    int rc = FLOW_EIO;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot read the key file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > KEY_FILE_MAX) {
        snprintf(err, errlen, "the key file %s is %s", path,
                 S_ISREG(st.st_mode) ? "over 4 MiB: that is no key file" : "not a regular file");
        rc = FLOW_EINVAL;
        goto out;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        flowd_log(FLOW_LOG_WARN,
                  "keys: %s may be written by others than its owner, who could give themselves "
                  "a key (chmod go-w)",
                  path);
    size_t len = 0, size = (size_t)st.st_size;
    text = malloc(size + 1);
    if (text == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = FLOW_ENOMEM;
        goto out;
    }
    while (len < size) {
        ssize_t got = read(fd, text + len, size - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(err, errlen, "cannot read the key file %s: %s", path, strerror(errno));
            goto out;
        }
        if (got == 0)
            break; /* it shrank meanwhile: what was read */
        len += (size_t)got;
    }
    text[len] = '\0';
    rc = parse_text(path, text, len, out, err, errlen);
out:
    if (fd >= 0)
        close(fd);
    free(text);
    return rc;
}

/* ---- tenants ---- */

static const char *intern(flowd_auth_t *a, const char *name, int add) {
    const char *t = NULL;
    pthread_mutex_lock(&a->tlock);
    json_t *v = json_object_get(a->tenants, name);
    if (v == NULL && add) {
        v = json_string(name);
        if (v != NULL && json_object_set_new(a->tenants, name, v) < 0)
            v = NULL; /* set_new took it and let it go */
    }
    t = json_string_value(v); /* the object keeps v, and so its text, as long as a lives */
    pthread_mutex_unlock(&a->tlock);
    return t;
}

const char *flowd_auth_tenant(flowd_auth_t *a, const char *name) {
    return intern(a, name, 1);
}

const char *flowd_auth_find_tenant(flowd_auth_t *a, const char *name) {
    return intern(a, name, 0);
}

/* Interns the tenants of ks. */
static int resolve(flowd_auth_t *a, keyset_t *ks) {
    ks->hashes = malloc((ks->n ? ks->n : 1) * sizeof *ks->hashes);
    if (ks->hashes == NULL)
        return FLOW_ENOMEM;
    for (size_t i = 0; i < ks->n; i++) {
        memcpy(ks->hashes[i], ks->keys[i].hash, HASH_LEN);
        ks->keys[i].tenant_id = flowd_auth_tenant(a, ks->keys[i].tenant);
        if (ks->keys[i].tenant_id == NULL)
            return FLOW_ENOMEM;
    }
    return 0;
}

/* "3 keys (1 admin, 1 submit, 1 read)" */
static void describe(const keyset_t *ks, char *out, size_t len) {
    size_t by[4] = {0};
    for (size_t i = 0; i < ks->n; i++)
        by[ks->keys[i].role]++;
    snprintf(out, len, "%zu key%s (%zu admin, %zu submit, %zu read)", ks->n, ks->n == 1 ? "" : "s",
             by[FLOWD_ROLE_ADMIN], by[FLOWD_ROLE_SUBMIT], by[FLOWD_ROLE_READ]);
}

/* ---- the life of it ---- */

int flowd_auth_loopback(const char *bind) {
    unsigned char a[16];
    if (strcmp(bind, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, bind, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, bind, a) != 1)
        return 0;
    static const unsigned char loop6[16] = {[15] = 1};
    static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
    return memcmp(a, loop6, 16) == 0 || (memcmp(a, mapped, 12) == 0 && a[12] == 127);
}

void flowd_auth_free(flowd_auth_t *a) {
    if (a == NULL)
        return;
    keyset_free(a->keys);
    json_decref(a->tenants);
    EVP_MD_free(a->sha256);
    pthread_rwlock_destroy(&a->lock);
    pthread_mutex_destroy(&a->tlock);
    free(a->path);
    free(a);
}

int flowd_auth_new(const flowd_config_t *cfg, flowd_auth_t **out, char *err, size_t errlen) {
    flowd_auth_t *a = calloc(1, sizeof *a);
    int rc = FLOW_ENOMEM;
    *out = NULL;
    if (a != NULL)
        a->tenants = json_object();
    if (a == NULL || a->tenants == NULL) {
        free(a);
        snprintf(err, errlen, "out of memory");
        return FLOW_ENOMEM;
    }
    pthread_rwlock_init(&a->lock, NULL);
    pthread_mutex_init(&a->tlock, NULL);
    a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL); /* NULL: sha256() asks for it every time */
    a->default_tenant = flowd_auth_tenant(a, FLOWD_DEFAULT_TENANT);
    if (a->default_tenant == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->keys_file[0] == '\0') {
        if (flowd_auth_loopback(cfg->bind)) {
            flowd_log_always(
                "keys: none (no --keys): open, every client may do anything as tenant \"%s\"; only "
                "because %s is a loopback address",
                FLOWD_DEFAULT_TENANT, cfg->bind);
        } else if (cfg->insecure_no_auth) {
            flowd_log(FLOW_LOG_WARN,
                      "keys: none, and --insecure-no-auth: anyone who reaches %s may read every "
                      "job, cancel it and replace every flow",
                      cfg->bind);
        } else {
            snprintf(
                err, errlen,
                "refusing to listen on %s without keys: anyone who reaches it could read every "
                "job, cancel it and replace every flow. Make a key with `flowd key new --role "
                "admin --name NAME`, add the line it prints to a file and start flowd with --keys "
                "FILE (FLOWD_KEYS_FILE); or listen on a loopback address (--bind 127.0.0.1); or, "
                "to be open to everyone on purpose, "
                "--insecure-no-auth",
                cfg->bind);
            rc = FLOW_EINVAL;
            goto fail;
        }
        *out = a;
        return 0;
    }
    a->path = strdup(cfg->keys_file);
    if (a->path == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    rc = read_keys(a->path, &a->keys, err, errlen);
    if (rc < 0) {
        size_t n = strlen(err);
        if (rc == FLOW_EIO && n < errlen) /* most likely none was made yet */
            snprintf(err + n, errlen - n,
                     ". Make a key with `flowd key new --role admin --name NAME` and put the "
                     "line it prints in %s (the key itself stays with you)",
                     a->path);
        goto fail;
    }
    rc = resolve(a, a->keys);
    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    char what[128];
    describe(a->keys, what, sizeof what);
    flowd_log_always("keys: %s from %s: every request but GET /healthz%s needs one", what, a->path,
                     cfg->metrics_open ? " and GET /metrics" : "");
    if (a->keys->n == 0)
        flowd_log(FLOW_LOG_WARN, "keys: %s holds no key: every request but GET /healthz gets 401",
                  a->path);
    *out = a;
    return 0;
fail:
    flowd_auth_free(a);
    return rc;
}

int flowd_auth_open(const flowd_auth_t *a) {
    return a->path == NULL;
}

const char *flowd_auth_file(const flowd_auth_t *a) {
    return a->path;
}

int flowd_auth_reload(flowd_auth_t *a) {
    char err[512], before[128], after[128];
    keyset_t *ks = NULL;
    if (a->path == NULL)
        return 0;
    int rc = read_keys(a->path, &ks, err, sizeof err);
    if (rc == 0)
        rc = resolve(a, ks);
    if (rc == FLOW_ENOMEM)
        snprintf(err, sizeof err, "out of memory");
    pthread_rwlock_wrlock(&a->lock);
    keyset_t *old = a->keys;
    if (rc == 0)
        a->keys = ks;
    pthread_rwlock_unlock(&a->lock);
    describe(old, before, sizeof before);
    if (rc < 0) {
        keyset_free(ks);
        flowd_log(FLOW_LOG_ERROR, "keys: not reloaded: %s; the %s from before stay", err, before);
        return rc;
    }
    describe(ks, after, sizeof after);
    keyset_free(old);
    flowd_log_always("keys: reloaded %s: %s (before: %s)", a->path, after, before);
    return 0;
}

void flowd_auth_identify(flowd_auth_t *a, const char *authorization, flowd_caller_t *out) {
    unsigned char hash[HASH_LEN];
    out->name[0] = '\0';
    if (a->path == NULL) {
        out->role = FLOWD_ROLE_ADMIN;
        out->tenant = a->default_tenant;
        out->bad = 0;
        return;
    }
    out->role = FLOWD_ROLE_NONE;
    out->tenant = NULL;
    out->bad = 1;
    const char *p = authorization;
    if (p == NULL)
        return;
    p += strspn(p, " \t");
    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
        return; /* no bearer token: as if there were no key */
    p += 6;
    p += strspn(p, " \t");
    size_t len = strlen(p);
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    if (len == 0)
        return;
    out->bad = 2;
    if (len > FLOWD_KEY_MAX)
        return;
    sha256(a->sha256, p, len, hash);
    uint64_t h[HASH_LEN / 8];
    memcpy(h, hash, HASH_LEN);
    pthread_rwlock_rdlock(&a->lock);
    /* Every key is compared, whether one matched before or not, and each in constant time: the
     * XORs of its four words folded with OR, and the result turned into 0 or 1 by arithmetic, with
     * no branch on the data (what CRYPTO_memcmp does a byte at a time, at 41 ns a key here against
     * 2.4: a file of a hundred keys would cost each request 4 microseconds). */
    size_t found = 0, at = 0;
    for (size_t i = 0; i < a->keys->n; i++) {
        const uint64_t *k = a->keys->hashes[i];
        uint64_t d = (h[0] ^ k[0]) | (h[1] ^ k[1]) | (h[2] ^ k[2]) | (h[3] ^ k[3]);
        size_t same = (size_t)(((d | (0 - d)) >> 63) ^ 1); /* 1 when d is 0 */
        size_t mask = (size_t)0 - same;
        at = (at & ~mask) | (i & mask);
        found |= same;
    }
    if (found) {
        const api_key_t *k = &a->keys->keys[at];
        out->role = k->role;
        out->tenant = k->tenant_id;
        out->bad = 0;
        memcpy(out->name, k->name, sizeof out->name);
    }
    pthread_rwlock_unlock(&a->lock);
    OPENSSL_cleanse(hash, sizeof hash);
    OPENSSL_cleanse(h, sizeof h);
}

/* ---- flowd key new ---- */

static int key_usage(FILE *msg, int status) {
    fprintf(
        msg,
        "usage: flowd key new [--name NAME] [--role admin|submit|read] [--tenant TENANT]\n"
        "Makes an API key: prints it (once: flowd keeps only its hash) and its line for the\n"
        "key file (--keys FILE). Defaults: the name key-<the hash's first 8 digits>, role\n"
        "read, tenant %s.\n",
        FLOWD_DEFAULT_TENANT);
    return status;
}

int flowd_key_command(int argc, char **argv, FILE *out, FILE *msg) {
    const char *name = NULL, *role = "read", *tenant = FLOWD_DEFAULT_TENANT;
    flowd_role_t r;
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)
        return key_usage(argc < 2 ? msg : out, argc < 2 ? 2 : 0);
    if (strcmp(argv[1], "new") != 0) {
        fprintf(msg, "flowd key: unknown command '%s'\n", argv[1]);
        return key_usage(msg, 2);
    }
    for (int i = 2; i < argc; i++) {
        static const char *const opts[] = {"--name", "--role", "--tenant"};
        const char **slots[] = {&name, &role, &tenant};
        int matched = 0;
        for (size_t o = 0; o < 3 && !matched; o++) {
            size_t n = strlen(opts[o]);
            if (strncmp(argv[i], opts[o], n) != 0 || (argv[i][n] != '\0' && argv[i][n] != '='))
                continue;
            matched = 1;
            if (argv[i][n] == '=') {
                *slots[o] = argv[i] + n + 1;
            } else if (i + 1 < argc) {
                *slots[o] = argv[++i];
            } else {
                fprintf(msg, "flowd key new: %s needs a value\n", opts[o]);
                return 2;
            }
        }
        if (!matched) {
            fprintf(msg, "flowd key new: unknown argument '%s'\n", argv[i]);
            return key_usage(msg, 2);
        }
    }
    if (role_parse(role, &r) < 0) {
        fprintf(msg, "flowd key new: the role '%s' is not admin, submit or read\n", role);
        return 2;
    }
    if ((name != NULL && !valid_name(name)) || !valid_name(tenant)) {
        fprintf(msg, "flowd key new: the %s '%s' is not 1 to %d of A-Z a-z 0-9 . _ -\n",
                name != NULL && !valid_name(name) ? "name" : "tenant",
                name != NULL && !valid_name(name) ? name : tenant, FLOWD_NAME_MAX);
        return 2;
    }
    unsigned char raw[KEY_RANDOM], hash[HASH_LEN];
    unsigned char b64[4 * ((KEY_RANDOM + 2) / 3) + 1];
    char key[sizeof KEY_PREFIX + sizeof b64], hex[2 * HASH_LEN + 1], auto_name[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(msg, "flowd key new: the system gives no random bytes: %s\n", strerror(errno));
            return 1;
        }
        got += (size_t)n;
    }
    /* base64url without padding: 43 characters that need no quoting in a header or a shell */
    int n = EVP_EncodeBlock(b64, raw, (int)sizeof raw);
    while (n > 0 && b64[n - 1] == '=')
        n--;
    for (int i = 0; i < n; i++)
        b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    snprintf(key, sizeof key, "%s%.*s", KEY_PREFIX, n, (const char *)b64);
    sha256(NULL, key, strlen(key), hash);
    hex_of(hash, HASH_LEN, hex);
    if (name == NULL) {
        snprintf(auto_name, sizeof auto_name, "key-%.8s", hex);
        name = auto_name;
    }
    fprintf(out, "%s\n%s %s %s %s\n", key, hex, name, role, tenant);
    fprintf(
        msg,
        "flowd: a new key named %s, role %s, tenant %s.\n"
        "  The first line is the key: give it to its user now, who sends it as\n"
        "  `Authorization: Bearer <key>`. flowd keeps only its SHA-256: it cannot be shown again.\n"
        "  The second line is for the key file (--keys FILE): add it, then start flowd or send\n"
        "  it SIGHUP.\n",
        name, role, tenant);
    OPENSSL_cleanse(raw, sizeof raw);
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(b64, sizeof b64);
    return fflush(out) == 0 ? 0 : 1;
}
