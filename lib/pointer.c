/* pointer.c: RFC 6901 JSON Pointer on jansson values (see pointer.h). Tokens are read in place from
 * the pointer text; only a token holding a "~" escape is copied, and a short one into a stack buffer,
 * so evaluating a reference on a hot path usually allocates nothing. */
#include "flow/pointer.h"
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "flow/utf8.h"

#define KEY_STACK 128 /* unescaped tokens up to this long are built on the stack */

int flow_pointer_checkn(const char *ptr, size_t len, size_t *bad) {
    size_t i = 0;
    int rc = 0;

    if (ptr == NULL) {
        rc = FLOW_EINVAL;
        goto out;
    }
    if (len > 0 && ptr[0] != '/') {
        rc = FLOW_EINVAL;
        goto out;
    }
    while (i < len) {
        if (ptr[i] == '~') {
            if (i + 1 >= len || (ptr[i + 1] != '0' && ptr[i + 1] != '1')) {
                rc = FLOW_EINVAL;
                goto out;
            }
            i += 2;
            continue;
        }
        size_t n = flow_utf8_len((const unsigned char *)ptr + i, len - i);
        if (n == 0) {
            rc = FLOW_EINVAL;
            goto out;
        }
        i += n;
    }
out:
    if (rc != 0 && bad != NULL)
        *bad = i;
    return rc;
}

int flow_pointer_check(const char *ptr) {
    return flow_pointer_checkn(ptr, ptr != NULL ? strlen(ptr) : 0, NULL);
}

/* A token as an array index: canonical decimal that fits in a size_t. */
static int token_index(const char *s, size_t len, size_t *out) {
    size_t v = 0;
    if (len == 0 || (s[0] == '0' && len > 1))
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        size_t d = (size_t)(s[i] - '0');
        if (v > (SIZE_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

static int is_dash(const char *s, size_t len) {
    return len == 1 && s[0] == '-';
}

/* A token as a member name: *key points into the pointer when the token has no escape, else into buf
 * (KEY_STACK bytes) or into *heap, which the caller frees. */
static int token_key(const char *s, size_t len, char *buf, char **heap, const char **key, size_t *klen) {
    if (memchr(s, '~', len) == NULL) {
        *key = s;
        *klen = len;
        return 0;
    }
    char *d = buf;
    if (len > KEY_STACK) {
        d = flow__malloc(len);
        if (d == NULL)
            return FLOW_ENOMEM;
        *heap = d;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '~') {
            d[n++] = s[i + 1] == '0' ? '~' : '/'; /* checked: "~" is followed by 0 or 1 */
            i++;
        } else {
            d[n++] = s[i];
        }
    }
    *key = d;
    *klen = n;
    return 0;
}

/* *out: the member or element the token [s, s+len) names in v (borrowed), or NULL when none. */
static int child(json_t *v, const char *s, size_t len, json_t **out) {
    char buf[KEY_STACK];
    char *heap = NULL;
    const char *key;
    size_t klen, idx;
    int rc = 0;

    *out = NULL;
    if (json_is_object(v)) {
        rc = token_key(s, len, buf, &heap, &key, &klen);
        if (rc == 0)
            *out = json_object_getn(v, key, klen);
    } else if (json_is_array(v)) {
        if (token_index(s, len, &idx))
            *out = json_array_get(v, idx); /* NULL past the end */
    }
    flow__free(heap);
    return rc;
}

/* Follows the well-formed pointer [ptr, ptr+len) from root as far as it goes: *cur receives the last
 * value reached (borrowed) and *stop the offset of the first token that names nothing (len when the
 * whole pointer resolved). */
static int walk(json_t *root, const char *ptr, size_t len, json_t **cur, size_t *stop) {
    json_t *v = root;
    size_t pos = 0;
    int rc = 0;

    while (pos < len) {
        size_t start = pos + 1, end = start;
        while (end < len && ptr[end] != '/')
            end++;
        json_t *c;
        rc = child(v, ptr + start, end - start, &c);
        if (rc != 0 || c == NULL)
            break;
        v = c;
        pos = end;
    }
    *cur = v;
    *stop = pos;
    return rc;
}

/* The offset of the last "/" of a non-empty well-formed pointer. */
static size_t last_slash(const char *ptr, size_t len) {
    size_t i = len;
    while (i > 0 && ptr[i - 1] != '/')
        i--;
    return i - 1;
}

int flow_pointer_getn(json_t *root, const char *ptr, size_t len, json_t **out) {
    json_t *cur = NULL;
    size_t stop;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (root == NULL || out == NULL || flow_pointer_checkn(ptr, len, NULL) != 0) {
        rc = FLOW_EINVAL;
        goto out;
    }
    rc = walk(root, ptr, len, &cur, &stop);
    if (rc == 0 && stop < len)
        rc = FLOW_ENOTFOUND;
    if (rc == 0)
        *out = cur;
out:
    return rc;
}

int flow_pointer_get(json_t *root, const char *ptr, json_t **out) {
    return flow_pointer_getn(root, ptr, ptr != NULL ? strlen(ptr) : 0, out);
}

/* Wraps *chain (owned) in one object a token of rest ("/b/c" gives {"b":{"c":*chain}}), innermost
 * first; a token "-" makes an array instead, as appending to an array that is not there yet
 * ("/b/-" gives {"b":[*chain]}). On error *chain has been released and is NULL. */
static int build_chain(const char *rest, size_t len, json_t **chain) {
    char buf[KEY_STACK];
    int rc = 0;

    while (len > 0) {
        size_t slash = last_slash(rest, len);
        char *heap = NULL;
        const char *key;
        size_t klen;
        json_t *obj = NULL;

        if (is_dash(rest + slash + 1, len - slash - 1)) {
            obj = json_array();
            /* json_array_append_new takes *chain even when it fails */
            rc = obj == NULL || json_array_append_new(obj, *chain) != 0 ? FLOW_ENOMEM : 0;
            if (obj == NULL)
                json_decref(*chain);
            *chain = NULL;
            if (rc != 0) {
                json_decref(obj);
                return rc;
            }
            *chain = obj;
            len = slash;
            continue;
        }
        rc = token_key(rest + slash + 1, len - slash - 1, buf, &heap, &key, &klen);
        if (rc == 0) {
            obj = json_object();
            if (obj == NULL) {
                rc = FLOW_ENOMEM;
            } else {
                /* json_object_setn_new takes *chain even when it fails */
                if (json_object_setn_new(obj, key, klen, *chain) != 0)
                    rc = FLOW_ENOMEM;
                *chain = NULL;
            }
        }
        flow__free(heap);
        if (rc != 0) {
            json_decref(obj);
            json_decref(*chain);
            *chain = NULL;
            return rc;
        }
        *chain = obj;
        len = slash;
    }
    return 0;
}

/* Puts value (stolen) at the token [s, s+len) of container v: a member, a replaced element, or an
 * appended one for "-". */
static int attach(json_t *v, const char *s, size_t len, json_t *value) {
    char buf[KEY_STACK];
    char *heap = NULL;
    const char *key;
    size_t klen, idx;
    int rc = 0;

    if (value == v) {
        rc = FLOW_EINVAL; /* jansson refuses a value inside itself, and we must not call that ENOMEM */
    } else if (json_is_object(v)) {
        rc = token_key(s, len, buf, &heap, &key, &klen);
        if (rc == 0) {
            rc = json_object_setn_new(v, key, klen, value) == 0 ? 0 : FLOW_ENOMEM;
            value = NULL;
        }
    } else if (json_is_array(v)) {
        if (is_dash(s, len)) {
            rc = json_array_append_new(v, value) == 0 ? 0 : FLOW_ENOMEM;
            value = NULL;
        } else if (token_index(s, len, &idx) && idx < json_array_size(v)) {
            rc = json_array_set_new(v, idx, value) == 0 ? 0 : FLOW_ENOMEM;
            value = NULL;
        } else {
            rc = FLOW_ENOTFOUND;
        }
    } else {
        rc = FLOW_EINVAL;
    }
    json_decref(value);
    flow__free(heap);
    return rc;
}

/* set and remove: checks ptr (non-empty), then walks root towards the parent of its last token:
 * *cur is the deepest value reached, *stop where its token begins (== *last: the parent exists). */
static int walk_to_parent(json_t *root, const char *ptr, size_t *len, size_t *last, json_t **cur,
                          size_t *stop) {
    *len = strlen(ptr);
    if (*len == 0 || flow_pointer_checkn(ptr, *len, NULL) != 0)
        return FLOW_EINVAL;
    *last = last_slash(ptr, *len);
    return walk(root, ptr, *last, cur, stop);
}

int flow_pointer_set(json_t *root, const char *ptr, json_t *value) {
    json_t *cur;
    size_t len, last, stop;
    int rc;

    if (root == NULL || ptr == NULL || value == NULL || value == root) {
        rc = FLOW_EINVAL;
        goto out;
    }
    rc = walk_to_parent(root, ptr, &len, &last, &cur, &stop);
    if (rc != 0)
        goto out;
    if (stop == last) {
        /* The parent exists: the last token is the member or element to set. */
        rc = attach(cur, ptr + last + 1, len - last - 1, value);
        value = NULL;
        goto out;
    }
    /* The token at stop is missing from cur: build what goes below it detached, then attach the
     * whole chain in one step, so that a failure leaves root as it was. */
    size_t end = stop + 1;
    while (ptr[end] != '/')
        end++; /* stop < last, so a "/" follows */
    if (!json_is_object(cur) && !json_is_array(cur)) {
        rc = FLOW_EINVAL;
        goto out;
    }
    rc = build_chain(ptr + end, len - end, &value);
    if (rc != 0)
        goto out; /* value was released */
    rc = attach(cur, ptr + stop + 1, end - stop - 1, value);
    value = NULL;
out:
    json_decref(value);
    return rc;
}

int flow_pointer_remove(json_t *root, const char *ptr) {
    char buf[KEY_STACK];
    char *heap = NULL;
    const char *key;
    json_t *cur;
    size_t len, last, stop, klen, idx;
    int rc;

    if (root == NULL || ptr == NULL) {
        rc = FLOW_EINVAL;
        goto out;
    }
    rc = walk_to_parent(root, ptr, &len, &last, &cur, &stop);
    if (rc != 0)
        goto out;
    rc = FLOW_ENOTFOUND;
    if (stop < last)
        goto out;
    const char *s = ptr + last + 1;
    size_t n = len - last - 1;
    if (json_is_object(cur)) {
        rc = token_key(s, n, buf, &heap, &key, &klen);
        if (rc == 0)
            rc = json_object_deln(cur, key, klen) == 0 ? 0 : FLOW_ENOTFOUND;
    } else if (json_is_array(cur) && token_index(s, n, &idx) && idx < json_array_size(cur)) {
        rc = json_array_remove(cur, idx) == 0 ? 0 : FLOW_ENOMEM;
    }
out:
    flow__free(heap);
    return rc;
}
