/* patch.c: making and applying the JSON Patches of a job's shared store (patch.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "flow/pointer.h"
#include "patch.h"

int flowd_patcher_init(flowd_patcher_t *p, const json_t *shared) {
    p->keys = json_object();
    if (p->keys == NULL)
        return FLOW_ENOMEM;
    const char *k;
    json_t *v;
    size_t n;
    json_object_keylen_foreach((json_t *)shared, k, n, v) {
        if (json_object_setn_new_nocheck(p->keys, k, n, json_true()) < 0) {
            flowd_patcher_free(p);
            return FLOW_ENOMEM;
        }
    }
    return 0;
}

void flowd_patcher_free(flowd_patcher_t *p) {
    json_decref(p->keys);
    p->keys = NULL;
}

/* "/" and the key as a reference token: "~" is written "~0" and "/" "~1" (RFC 6901). */
static void write_path(flowd_jw_t *w, flow_buf_t *tmp, const char *k, size_t n) {
    tmp->len = 0;
    flow_buf_add(tmp, "/", 1);
    for (size_t i = 0; i < n; i++) {
        if (k[i] == '~')
            flow_buf_add(tmp, "~0", 2);
        else if (k[i] == '/')
            flow_buf_add(tmp, "~1", 2);
        else
            flow_buf_add(tmp, k + i, 1);
    }
    flowd_jw_strn(w, tmp->data, tmp->len);
}

/* One operation on the key k (n bytes): its value in shared now, or its removal. Returns 1 when
 * it wrote one. */
static int op_for(flowd_patcher_t *p, const json_t *shared, const char *k, size_t n,
                  flowd_jw_t *w, flow_buf_t *tmp) {
    json_t *v = json_object_getn(shared, k, n);
    int had = json_object_getn(p->keys, k, n) != NULL;
    if (v == NULL && !had)
        return 0; /* written and removed within the step, or never there */
    flowd_jw_obj(w);
    flowd_jw_key(w, "op");
    flowd_jw_str(w, v ? "add" : "remove");
    flowd_jw_key(w, "path");
    write_path(w, tmp, k, n);
    if (v != NULL) {
        flowd_jw_key(w, "value");
        flowd_jw_json(w, v);
        if (!had)
            json_object_setn_new_nocheck(p->keys, k, n, json_true());
    } else {
        json_object_deln(p->keys, k, n);
    }
    flowd_jw_obj_end(w);
    return 1;
}

int flowd_patch_make(flowd_patcher_t *p, const json_t *shared, const json_t *touched,
                     flow_buf_t *out) {
    flowd_jw_t w;
    flow_buf_t tmp;
    int nops = 0;
    const char *k;
    size_t n;
    json_t *v;
    flow_buf_init(&tmp, 0);
    flowd_jw_init(&w, out, 0);
    flowd_jw_arr(&w);
    if (touched != NULL) {
        json_object_keylen_foreach((json_t *)touched, k, n, v)
            nops += op_for(p, shared, k, n, &w, &tmp);
    } else {
        /* any key: the removed ones first (from a copy of the keys: op_for changes them), then
         * every one shared has */
        json_t *had = json_copy(p->keys);
        if (had == NULL) {
            out->err = FLOW_ENOMEM;
        } else {
            json_object_keylen_foreach(had, k, n, v) {
                if (json_object_getn(shared, k, n) == NULL)
                    nops += op_for(p, shared, k, n, &w, &tmp);
            }
            json_decref(had);
        }
        json_object_keylen_foreach((json_t *)shared, k, n, v)
            nops += op_for(p, shared, k, n, &w, &tmp);
    }
    flowd_jw_arr_end(&w);
    int err = out->err || tmp.err;
    flow_buf_free(&tmp);
    return err ? FLOW_ENOMEM : nops;
}

/* The parent of path's last token in doc (borrowed) and that token, unescaped, in tok (malloc'd:
 * the caller frees it). */
static int split_path(json_t *doc, const char *path, json_t **parent, char **tok) {
    const char *last = strrchr(path, '/');
    if (last == NULL)
        return FLOW_EINVAL;
    char *head = strndup(path, (size_t)(last - path));
    if (head == NULL)
        return FLOW_ENOMEM;
    int rc = flow_pointer_get(doc, head, parent);
    free(head);
    if (rc < 0)
        return rc;
    size_t n = strlen(last + 1), len = 0;
    char *t = malloc(n + 1);
    if (t == NULL)
        return FLOW_ENOMEM;
    for (size_t i = 1; i <= n; i++) {
        char ch = last[i];
        if (ch == '~') {
            if (last[i + 1] != '0' && last[i + 1] != '1') {
                free(t);
                return FLOW_EINVAL;
            }
            ch = last[++i] == '0' ? '~' : '/';
        }
        t[len++] = ch;
    }
    t[len] = '\0';
    *tok = t;
    return 0;
}

/* An array index token: canonical decimal below size (insert: up to size), or -1. */
static long index_of(const char *tok, size_t size, int insert) {
    if (strcmp(tok, "-") == 0)
        return insert ? (long)size : -1;
    if (tok[0] == '\0' || (tok[0] == '0' && tok[1] != '\0') || strspn(tok, "0123456789") != strlen(tok) ||
        strlen(tok) > 9)
        return -1;
    long i = strtol(tok, NULL, 10);
    return i < (long)size + (insert ? 1 : 0) ? i : -1;
}

/* Adds value (stolen, on error too) at path in doc, or with replace puts it in place of what path
 * names (which must be there). Path "" is the whole document: only an object can be the store. */
static int put_at(json_t *doc, const char *path, json_t *value, int replace) {
    if (value == NULL)
        return FLOW_ENOMEM;
    if (path[0] == '\0') {
        int rc = !json_is_object(value) ? FLOW_EINVAL
                 : (json_object_clear(doc), json_object_update(doc, value) < 0) ? FLOW_ENOMEM
                                                                                : 0;
        json_decref(value);
        return rc;
    }
    json_t *parent = NULL;
    char *tok = NULL;
    int rc = split_path(doc, path, &parent, &tok);
    if (rc < 0) {
        json_decref(value);
        return rc;
    }
    if (json_is_object(parent)) {
        if (replace && json_object_get(parent, tok) == NULL) {
            json_decref(value);
            rc = FLOW_ENOTFOUND;
        } else {
            rc = json_object_set_new(parent, tok, value) < 0 ? FLOW_ENOMEM : 0;
        }
    } else if (json_is_array(parent)) {
        long i = index_of(tok, json_array_size(parent), !replace);
        if (i < 0) {
            json_decref(value);
            rc = FLOW_ENOTFOUND;
        } else if (replace) {
            rc = json_array_set_new(parent, (size_t)i, value) < 0 ? FLOW_ENOMEM : 0;
        } else {
            rc = json_array_insert_new(parent, (size_t)i, value) < 0 ? FLOW_ENOMEM : 0;
        }
    } else {
        json_decref(value);
        rc = FLOW_EINVAL;
    }
    free(tok);
    return rc;
}

/* Removes what path names in doc (not the whole document). */
static int remove_at(json_t *doc, const char *path) {
    if (path[0] == '\0')
        return FLOW_EINVAL;
    json_t *parent = NULL;
    char *tok = NULL;
    int rc = split_path(doc, path, &parent, &tok);
    if (rc < 0)
        return rc;
    if (json_is_object(parent)) {
        rc = json_object_del(parent, tok) < 0 ? FLOW_ENOTFOUND : 0;
    } else if (json_is_array(parent)) {
        long i = index_of(tok, json_array_size(parent), 0);
        rc = i < 0 ? FLOW_ENOTFOUND : json_array_remove(parent, (size_t)i) < 0 ? FLOW_EINVAL : 0;
    } else {
        rc = FLOW_EINVAL;
    }
    free(tok);
    return rc;
}

/* What path names in doc (borrowed), or NULL. */
static json_t *value_at(json_t *doc, const char *path) {
    json_t *v = NULL;
    return flow_pointer_get(doc, path, &v) == 0 ? v : NULL;
}

/* One operation of a patch; on error why (whylen bytes) says what is wrong with it. */
static int apply_op(json_t *doc, const json_t *op, char *why, size_t whylen) {
    const char *name = json_string_value(json_object_get(op, "op"));
    const char *path = json_string_value(json_object_get(op, "path"));
    const char *from = json_string_value(json_object_get(op, "from"));
    json_t *value = json_object_get(op, "value");
    if (!json_is_object(op) || name == NULL || path == NULL) {
        snprintf(why, whylen, "an operation is an object with \"op\" and \"path\" strings");
        return FLOW_EINVAL;
    }
    int add = strcmp(name, "add") == 0, replace = strcmp(name, "replace") == 0;
    int remove = strcmp(name, "remove") == 0, test = strcmp(name, "test") == 0;
    int move = strcmp(name, "move") == 0, copy = strcmp(name, "copy") == 0;
    if (!(add || replace || remove || test || move || copy)) {
        snprintf(why, whylen, "\"op\" must be add, remove, replace, move, copy or test");
        return FLOW_EINVAL;
    }
    if ((add || replace || test) && value == NULL) {
        snprintf(why, whylen, "%s needs a \"value\"", name);
        return FLOW_EINVAL;
    }
    if ((move || copy) && from == NULL) {
        snprintf(why, whylen, "%s needs a \"from\" string", name);
        return FLOW_EINVAL;
    }
    int rc;
    if (add || replace) {
        rc = put_at(doc, path, json_deep_copy(value), replace);
    } else if (remove) {
        rc = remove_at(doc, path);
    } else if (test) {
        json_t *cur = value_at(doc, path);
        rc = cur == NULL ? FLOW_ENOTFOUND : 0;
        if (cur != NULL && !json_equal(cur, value)) {
            snprintf(why, whylen, "the value at its path is not the one it tests for");
            return FLOW_EINVAL;
        }
    } else {
        json_t *src = value_at(doc, from);
        size_t flen = strlen(from);
        if (src == NULL) {
            snprintf(why, whylen, "its \"from\" names nothing");
            return FLOW_EINVAL;
        }
        if (move && strncmp(path, from, flen) == 0 && (path[flen] == '\0' || path[flen] == '/')) {
            if (path[flen] == '\0')
                return 0; /* to where it is */
            snprintf(why, whylen, "a value cannot be moved into itself");
            return FLOW_EINVAL;
        }
        /* a move takes the value out first: its path may name a place the removal shifts */
        json_t *v = move ? json_incref(src) : json_deep_copy(src);
        rc = move ? remove_at(doc, from) : 0;
        if (rc < 0)
            json_decref(v);
        else
            rc = put_at(doc, path, v, 0);
    }
    if (rc == FLOW_ENOTFOUND)
        snprintf(why, whylen, "its path names nothing");
    else if (rc == FLOW_EINVAL)
        snprintf(why, whylen, "its path is not a JSON Pointer to a place it can be applied");
    else if (rc < 0)
        snprintf(why, whylen, "%s", flow_strerror(rc));
    return rc;
}

int flowd_patch_apply(json_t *doc, const json_t *patch, char *why, size_t whylen) {
    if (!json_is_array(patch) || !json_is_object(doc)) {
        snprintf(why, whylen, "a patch is an array of operations, applied to an object");
        return FLOW_EINVAL;
    }
    size_t i;
    json_t *op;
    json_array_foreach(patch, i, op) {
        char sub[160];
        int rc = apply_op(doc, op, sub, sizeof sub);
        if (rc < 0) {
            const char *path = json_string_value(json_object_get(op, "path"));
            const char *name = json_string_value(json_object_get(op, "op"));
            snprintf(why, whylen, "operation %zu (%.16s %.200s): %s", i, name ? name : "?",
                     path ? path : "?", sub);
            return rc == FLOW_ENOMEM ? rc : FLOW_EINVAL;
        }
    }
    return 0;
}

int flowd_patch_replay(json_t *store, const json_t *history, uint64_t after, uint64_t upto,
                       char *why, size_t whylen) {
    size_t i;
    json_t *step;
    uint64_t next = after + 1;
    json_array_foreach((json_t *)history, i, step) {
        uint64_t seq = (uint64_t)json_integer_value(json_object_get(step, "seq"));
        if (seq <= after || seq > upto)
            continue;
        json_t *patch = json_object_get(step, "patch");
        if (patch == NULL || seq != next) {
            snprintf(why, whylen, "step %llu has no patch kept",
                     (unsigned long long)(seq != next ? next : seq));
            return FLOW_ENOTFOUND;
        }
        char sub[200];
        int rc = flowd_patch_apply(store, patch, sub, sizeof sub);
        if (rc < 0) {
            snprintf(why, whylen, "step %llu: %s", (unsigned long long)seq, sub);
            return rc;
        }
        next++;
    }
    if (next <= upto) {
        snprintf(why, whylen, "step %llu has no patch kept", (unsigned long long)next);
        return FLOW_ENOTFOUND;
    }
    return 0;
}
