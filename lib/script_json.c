/* script_json.c: JSON in Lua hooks, and the functions the sandbox adds (json, yaml, fence, log).
 *
 * The shared store stays jansson. Lua sees a JSON object or array as a proxy, a userdata that reads
 * through to the jansson value: `shared.n` converts that one member, so a hook that reads one key
 * of a store of a thousand costs what it costs on a store of one. Proxies index like tables
 * (objects by string keys, arrays from 1), and #, pairs, ipairs, table.insert, table.remove,
 * table.concat and table.sort work on them. Writes go through to the store, converted: nil deletes
 * a member (an array's last item only: table.remove shifts the others); booleans, strings (UTF-8
 * checked), integers stay integers and floats reals (NaN and infinities are refused), json.null is
 * null; a table is an array when it is a sequence (keys 1..n) or marked with json.array(), an
 * object when its keys are strings or it is marked with json.object(); an empty unmarked table
 * becomes [] where it replaces an array and {} anywhere else; object keys are sorted, so that the
 * result does not depend on Lua's hash order (jansson's order is kept for objects read from the
 * store); a proxy is copied (JSON has no shared parts). Only the shared store is writable: params,
 * prep_res, exec_res and err are read-only views. A proxy is valid for the call that made it; every
 * reference it needs is held by the call's arena, so that deleting a member the hook still reads
 * frees nothing until the call ends.
 *
 * Memory: the JSON a call adds (converted from Lua, copied, decoded) is estimated and charged
 * against the memory cap, net of what it replaces, so a hook cannot grow the store past
 * --lua-memory in one call. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "script_int.h"

#define CONVERT_DEPTH 200   /* tables nested in a value written from Lua */
#define LOG_BUILD_MAX 65536 /* bytes of a log line built before the engine cuts it */

typedef struct proxy {
    json_t *v;
    /* A writable proxy inside the shared store: the top-level key it is under (a JSON string the
     * call's arena holds), so that a write through it is reported as that key's
     * (flow__ctx_touch: checkpoints write what changed); NULL for the store itself. */
    json_t *top;
    uint32_t gen;
    uint8_t ro;
    uint8_t array; /* which metatable it has (v may be gone once the call that made it ended) */
} proxy_t;

/* ---- the call's arena and the JSON it adds ---- */

static void charge_json(lua_State *L, flow_script_t *s, int64_t bytes) {
    s->json_bytes += bytes;
    if (bytes > 0 && s->json_bytes > (int64_t)s->lim.memory)
        luaL_error(L, "out of memory: the JSON one call adds is at most %I bytes (--lua-memory)",
                   (lua_Integer)s->lim.memory);
}

/* The arena takes v's reference (stolen). */
static void arena_take(lua_State *L, flow_script_t *s, json_t *v) {
    json_t **a = flow__grow(s->arena, s->narena, &s->arena_cap, sizeof *a, 64, 0);
    if (a == NULL) {
        json_decref(v);
        luaL_error(L, "not enough memory");
    }
    s->arena = a;
    s->arena[s->narena++] = v;
    charge_json(L, s, (int64_t)sizeof v);
}

static void arena_hold(lua_State *L, flow_script_t *s, json_t *v) {
    if (s->narena > 0 && s->arena[s->narena - 1] == v)
        return; /* a loop reading the same member */
    arena_take(L, s, json_incref(v));
}

void flow__script_release(flow_script_t *s) {
    for (size_t i = 0; i < s->narena; i++)
        json_decref(s->arena[i]);
    s->narena = 0;
    if (s->arena_cap > 4096) { /* a call that read much gives its memory back */
        flow__free(s->arena);
        s->arena = NULL;
        s->arena_cap = 0;
    }
    s->gen++;
}

/* Bytes v takes in jansson, roughly; the values walked are charged to the budget. */
static uint64_t estimate(lua_State *L, flow_script_t *s, json_t *v) {
    uint64_t n = 0, values = 0;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *m;
        n += 64;
        json_object_foreach(v, key, m) {
            n += 48 + strlen(key) + estimate(L, s, m);
            values++;
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *m;
        n += 48;
        json_array_foreach(v, i, m) {
            n += 16 + estimate(L, s, m);
            values++;
        }
        break;
    }
    case JSON_STRING: n += 48 + json_string_length(v); break;
    default: n += 32; break;
    }
    if (values > 0)
        flow__script_charge(L, s, values);
    return n;
}

/* What replacing old gives back: its bytes, when nothing else holds it. */
static void uncharge(lua_State *L, flow_script_t *s, json_t *old) {
    if (old != NULL && old->refcount == 1)
        s->json_bytes -= (int64_t)estimate(L, s, old);
}

/* ---- Lua to JSON ---- */

static json_t *to_json(lua_State *L, flow_script_t *s, int idx, json_t *replacing, int depth);

static int is_mark(lua_State *L, int idx, int ref) {
    if (!lua_getmetatable(L, idx))
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

typedef struct keyent {
    const char *k;
    size_t n;
} keyent_t;

static int keycmp(const void *a, const void *b) {
    const keyent_t *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->k, y->k, n);
    return c != 0 ? c : (x->n > y->n) - (x->n < y->n);
}

/* A container made here is held by the arena (its only reference), so that an error raised while
 * its members convert frees it when the call ends; members are added with a reference of their own.
 */
static json_t *new_container(lua_State *L, flow_script_t *s, int array) {
    json_t *c = array ? json_array() : json_object();
    if (c == NULL)
        luaL_error(L, "not enough memory");
    arena_take(L, s, c);
    return c;
}

/* Raises a Lua error (with the place, as luaL_error does); typed for the converters' returns. */
static json_t *fail(lua_State *L, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    luaL_where(L, 1);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    lua_error(L);
    return NULL;
}

static json_t *bad_table(lua_State *L, const char *why) {
    return fail(
        L, "a table with %s is not JSON (an array has the keys 1..n, an object string keys)", why);
}

static json_t *table_to_json(lua_State *L, flow_script_t *s, int t, json_t *replacing, int depth) {
    int marked_arr = is_mark(L, t, s->mt_jarr), marked_obj = is_mark(L, t, s->mt_jobj);
    lua_Integer count = 0, max = 0;
    int strings = 0, others = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        count++;
        if (lua_type(L, -1) == LUA_TSTRING) {
            strings = 1;
        } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            if (lua_tointeger(L, -1) > max)
                max = lua_tointeger(L, -1);
        } else {
            others = 1;
        }
    }
    int array;
    if (marked_arr)
        array = 1;
    else if (marked_obj)
        array = 0;
    else if (count == 0)
        array = json_is_array(replacing);
    else if (!strings && !others && max == count)
        array = 1;
    else if (strings && !others && max == 0)
        array = 0;
    else if (others)
        return bad_table(L, "keys that are neither strings nor integers from 1");
    else if (strings)
        return bad_table(L,
                         "both string keys and keys 1..n (json.object() makes the numbers keys)");
    else
        return bad_table(L, "holes in its keys 1..n");
    flow__script_charge(L, s, (uint64_t)count);
    json_t *out = new_container(L, s, array);
    charge_json(L, s, array ? 48 + 16 * (int64_t)count : 64 + 48 * (int64_t)count);
    if (array) {
        if (marked_arr && (strings || others || max != count))
            return fail(L, "a table marked json.array() has keys other than 1..n");
        for (lua_Integer i = 1; i <= count; i++) {
            lua_rawgeti(L, t, i);
            if (lua_isnil(L, -1))
                return fail(L, "a table marked json.array() has a hole at %d", (int)i);
            json_t *m = to_json(L, s, -1, NULL, depth + 1);
            if (json_array_append_new(out, m) < 0)
                return fail(L, "not enough memory");
            lua_pop(L, 1);
        }
        return out;
    }
    if (others)
        return fail(L, "an object's keys are strings (or integers, with json.object())");
    /* keys sorted, in a block Lua owns (an error frees it) */
    keyent_t *keys = lua_newuserdatauv(L, (size_t)count * sizeof *keys + 1, 0);
    int kidx = lua_gettop(L);
    lua_newtable(L); /* integer keys as strings, kept alive here */
    int strs = lua_gettop(L);
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            keys[n].k = lua_tolstring(L, -1, &keys[n].n);
        } else { /* an integer key of a json.object(): its decimal text, kept alive in strs */
            lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, -1));
            keys[n].k = lua_tolstring(L, -1, &keys[n].n);
            lua_rawseti(L, strs, (lua_Integer)n + 1);
        }
        n++;
    }
    qsort(keys, n, sizeof *keys, keycmp);
    for (size_t i = 0; i < n; i++) {
        lua_pushlstring(L, keys[i].k, keys[i].n);
        if (lua_rawget(L, t) == LUA_TNIL) { /* an integer key: read it as one */
            lua_pop(L, 1);
            lua_stringtonumber(L, keys[i].k);
            lua_rawget(L, t);
        }
        json_t *m = to_json(L, s, -1, NULL, depth + 1);
        charge_json(L, s, (int64_t)keys[i].n);
        if (json_object_setn_new(out, keys[i].k, keys[i].n, m) < 0)
            return fail(L, "an object key is not UTF-8");
        lua_pop(L, 1);
    }
    lua_settop(L, kidx - 1);
    return out;
}

static json_t *to_json(lua_State *L, flow_script_t *s, int idx, json_t *replacing, int depth) {
    idx = lua_absindex(L, idx);
    if (depth > CONVERT_DEPTH)
        return fail(L, "tables nest deeper than %d (or a table contains itself): not JSON",
                    CONVERT_DEPTH);
    luaL_checkstack(L, 10, "converting to JSON");
    json_t *v = NULL;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: v = json_null(); break;
    case LUA_TBOOLEAN: v = json_boolean(lua_toboolean(L, idx)); break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            v = json_integer((json_int_t)lua_tointeger(L, idx));
        } else {
            double d = lua_tonumber(L, idx);
            if (!isfinite(d))
                return fail(L, "%s is not a JSON number", isnan(d) ? "nan" : "an infinity");
            v = json_real(d);
        }
        charge_json(L, s, 32);
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *str = lua_tolstring(L, idx, &n);
        charge_json(L, s, 48 + (int64_t)n);
        v = json_stringn(str, n);
        if (v == NULL)
            return fail(L, "a string that is not UTF-8 cannot be JSON");
        break;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) != NULL)
            return fail(L, "a light userdata is not JSON");
        v = json_null();
        break;
    case LUA_TUSERDATA: {
        proxy_t *p = lua_touserdata(L, idx);
        if (!is_mark(L, idx, s->mt_obj) && !is_mark(L, idx, s->mt_arr))
            return fail(L, "a userdata is not JSON");
        if (p->gen != s->gen)
            return fail(L, "a JSON value was kept past the call that read it");
        charge_json(L, s, (int64_t)estimate(L, s, p->v));
        v = json_deep_copy(p->v);
        break;
    }
    case LUA_TTABLE: {
        int raw = flow__script_frozen_raw(L, idx);
        json_t *t = table_to_json(L, s, raw ? lua_gettop(L) : idx, replacing, depth);
        if (raw)
            lua_pop(L, 1);
        return json_incref(t); /* the arena keeps its own */
    }
    default: return fail(L, "a %s is not JSON", luaL_typename(L, idx));
    }
    if (v == NULL)
        return fail(L, "not enough memory");
    return v;
}

json_t *flow__script_to_json(lua_State *L, flow_script_t *s, int idx, json_t *replacing) {
    return to_json(L, s, idx, replacing, 0);
}

/* ---- JSON to Lua ---- */

void flow__script_push(lua_State *L, flow_script_t *s, json_t *v, int ro, int hold) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
    case JSON_ARRAY: {
        proxy_t *p = lua_newuserdatauv(L, sizeof *p, 0);
        p->v = v;
        p->top = NULL;
        p->gen = s->gen;
        p->ro = (uint8_t)ro;
        p->array = json_is_array(v);
        lua_rawgeti(L, LUA_REGISTRYINDEX, json_is_object(v) ? s->mt_obj : s->mt_arr);
        lua_setmetatable(L, -2);
        if (hold)
            arena_hold(L, s, v);
        break;
    }
    case JSON_STRING: lua_pushlstring(L, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(v)); break;
    case JSON_REAL: lua_pushnumber(L, json_real_value(v)); break;
    case JSON_TRUE: lua_pushboolean(L, 1); break;
    case JSON_FALSE: lua_pushboolean(L, 0); break;
    default:
        lua_pushlightuserdata(L, NULL); /* json.null */
        break;
    }
}

void flow__script_push_arg(lua_State *L, flow_script_t *s, json_t *v, int ro, unsigned slot) {
    if (!json_is_object(v) && !json_is_array(v)) {
        flow__script_push(L, s, v, ro, 0);
        return;
    }
    proxy_t *p;
    if (s->argpool[slot] == LUA_NOREF) {
        flow__script_push(L, s, v, ro, 0);
        lua_pushvalue(L, -1);
        s->argpool[slot] = luaL_ref(L, LUA_REGISTRYINDEX);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->argpool[slot]);
    p = lua_touserdata(L, -1);
    p->v = v;
    p->top = NULL;
    p->gen = s->gen;
    p->ro = (uint8_t)ro;
    if (p->array != json_is_array(v)) {
        p->array = json_is_array(v);
        lua_rawgeti(L, LUA_REGISTRYINDEX, json_is_object(v) ? s->mt_obj : s->mt_arr);
        lua_setmetatable(L, -2);
    }
}

/* ---- proxies ---- */

/* The proxy at idx, checked to be one (for functions a hook may call with anything). */
static proxy_t *to_proxy(lua_State *L, flow_script_t *s, int idx, int *array) {
    if (lua_type(L, idx) != LUA_TUSERDATA)
        return NULL;
    int arr = is_mark(L, idx, s->mt_arr);
    if (!arr && !is_mark(L, idx, s->mt_obj))
        return NULL;
    proxy_t *p = lua_touserdata(L, idx);
    if (p->gen != s->gen)
        luaL_error(L, "a JSON value was kept past the call that read it");
    if (array != NULL)
        *array = arr;
    return p;
}

/* Metamethods get their proxy as argument 1 (their metatables are out of reach). */
static proxy_t *self(lua_State *L, flow_script_t *s) {
    proxy_t *p = lua_touserdata(L, 1);
    if (p->gen != s->gen)
        luaL_error(L, "a JSON value was kept past the call that read it");
    return p;
}

static void writable(lua_State *L, const proxy_t *p) {
    if (p->ro)
        luaL_error(
            L,
            "this value is read-only: only shared can be changed (params, prep_res, exec_res and "
            "err are copies to read)");
}

/* Pushes v, p's member k (n bytes; NULL for an item of an array), as a proxy that knows the
 * top-level key of the shared store it is under (proxy_t's top). */
static void push_under(lua_State *L, flow_script_t *s, const proxy_t *p, json_t *v, const char *k,
                       size_t n) {
    flow__script_push(L, s, v, p->ro, 1);
    if (p->ro || !(json_is_object(v) || json_is_array(v)))
        return;
    proxy_t *c = lua_touserdata(L, -1);
    if (p->top != NULL || k == NULL) {
        c->top = p->top;
        return;
    }
    json_t *key = json_stringn_nocheck(k, n);
    if (key == NULL)
        luaL_error(L, "not enough memory");
    arena_take(L, s, key);
    c->top = key;
}

/* A write through p to its member k (n bytes; NULL: an item of an array), reported as the
 * top-level key of the shared store it changes. */
static void touch(flow_script_t *s, const proxy_t *p, const char *k, size_t n) {
    if (p->top != NULL)
        flow__ctx_touch(s->ctx, json_string_value(p->top), json_string_length(p->top));
    else
        flow__ctx_touch(s->ctx, k, k ? n : 0); /* the store itself (an item: any key) */
}

/* An __index's answer: the member k or item v of p (as a proxy), or nil when there is none. */
static int push_child(lua_State *L, flow_script_t *s, const proxy_t *p, json_t *v, const char *k,
                      size_t n) {
    if (v == NULL)
        lua_pushnil(L);
    else
        push_under(L, s, p, v, k, n);
    return 1;
}

static int obj_index(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    proxy_t *p = self(L, s);
    size_t n;
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &n) : NULL;
    return push_child(L, s, p, k ? json_object_getn(p->v, k, n) : NULL, k, k ? n : 0);
}

static int obj_newindex(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    proxy_t *p = self(L, s);
    writable(L, p);
    size_t n;
    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_error(L, "a key of a JSON object is a string, not a %s", luaL_typename(L, 2));
    const char *k = lua_tolstring(L, 2, &n);
    json_t *old = json_object_getn(p->v, k, n);
    touch(s, p, k, n);
    if (lua_isnil(L, 3)) {
        uncharge(L, s, old);
        json_object_deln(p->v, k, n);
        return 0;
    }
    json_t *v = to_json(L, s, 3, old, 0);
    uncharge(L, s, old);
    if (json_object_setn_new(p->v, k, n, v) < 0)
        return luaL_error(L, "a key that is not UTF-8 cannot be JSON");
    return 0;
}

static int arr_index(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    proxy_t *p = self(L, s);
    int isint;
    lua_Integer i = lua_tointegerx(L, 2, &isint);
    return push_child(L, s, p, isint && i >= 1 ? json_array_get(p->v, (size_t)(i - 1)) : NULL,
                      NULL, 0);
}

static int arr_newindex(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    proxy_t *p = self(L, s);
    writable(L, p);
    int isint;
    lua_Integer i = lua_tointegerx(L, 2, &isint);
    lua_Integer n = (lua_Integer)json_array_size(p->v);
    if (!isint || i < 1 || i > n + 1)
        return luaL_error(L, "an array of %d items has no index %s (set 1..n, or n+1 to append)",
                          (int)n, luaL_tolstring(L, 2, NULL));
    json_t *old = json_array_get(p->v, (size_t)(i - 1));
    touch(s, p, NULL, 0);
    if (lua_isnil(L, 3)) {
        if (i == n + 1)
            return 0;
        if (i != n)
            return luaL_error(
                L, "only the last item of an array can be set to nil (table.remove takes any)");
        uncharge(L, s, old);
        json_array_remove(p->v, (size_t)(i - 1));
        return 0;
    }
    json_t *v = to_json(L, s, 3, old, 0);
    uncharge(L, s, old);
    int rc =
        i == n + 1 ? json_array_append_new(p->v, v) : json_array_set_new(p->v, (size_t)(i - 1), v);
    if (rc < 0)
        return luaL_error(L, "not enough memory");
    return 0;
}

static int proxy_len(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    proxy_t *p = self(L, s);
    lua_pushinteger(L, json_is_array(p->v) ? (lua_Integer)json_array_size(p->v)
                                           : (lua_Integer)json_object_size(p->v));
    return 1;
}

/* What an iterator goes over (its argument 1): an array's proxy when array is 1, an object's when
 * 0; anything else raises a Lua error (a script may call the iterator pairs() returned itself). */
static proxy_t *iterated(lua_State *L, flow_script_t *s, int array) {
    proxy_t *p = to_proxy(L, s, 1, NULL);
    if (p == NULL || (array ? !json_is_array(p->v) : !json_is_object(p->v)))
        luaL_error(L, "bad argument to an %s iterator", array ? "array" : "object");
    return p;
}

static int arr_next(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    proxy_t *p = iterated(L, s, 1);
    lua_Integer i = luaL_optinteger(L, 2, 0) + 1;
    json_t *v = i >= 1 ? json_array_get(p->v, (size_t)(i - 1)) : NULL;
    if (v == NULL) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, i);
    push_under(L, s, p, v, NULL, 0);
    return 2;
}

/* An object's iterator goes over the keys it had when pairs() began (upvalue 1), in jansson's
 * order, skipping those deleted since, so that a loop may clear members as it goes. */
static int obj_next(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    proxy_t *p = iterated(L, s, 0);
    lua_Integer pos = lua_tointeger(L, lua_upvalueindex(2));
    for (;;) {
        pos++;
        if (lua_rawgeti(L, lua_upvalueindex(1), pos) == LUA_TNIL) {
            lua_pushinteger(L, pos);
            lua_replace(L, lua_upvalueindex(2));
            return 1;
        }
        size_t n;
        const char *k = lua_tolstring(L, -1, &n);
        json_t *v = json_object_getn(p->v, k, n);
        if (v != NULL) {
            lua_pushinteger(L, pos);
            lua_replace(L, lua_upvalueindex(2));
            push_under(L, s, p, v, k, n);
            return 2;
        }
        lua_pop(L, 1);
    }
}

static int proxy_pairs(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    proxy_t *p = self(L, s);
    if (json_is_array(p->v)) {
        lua_pushcfunction(L, arr_next);
        lua_pushvalue(L, 1);
        lua_pushinteger(L, 0);
        return 3;
    }
    flow__script_charge(L, s, json_object_size(p->v));
    lua_createtable(L, (int)json_object_size(p->v), 0);
    const char *key;
    json_t *v;
    lua_Integer i = 0;
    json_object_foreach(p->v, key, v) {
        lua_pushstring(L, key);
        lua_rawseti(L, -2, ++i);
    }
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, obj_next, 2);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int proxy_eq(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    proxy_t *a = to_proxy(L, s, 1, NULL), *b = to_proxy(L, s, 2, NULL);
    lua_pushboolean(L, a != NULL && b != NULL && a->v == b->v);
    return 1;
}

/* Compact JSON of v pushed as a Lua string: measured first, then written into a block Lua owns, so
 * that nothing leaks if pushing raises. */
static void push_dump(lua_State *L, flow_script_t *s, json_t *v, size_t flags) {
    flags |= JSON_ENCODE_ANY | (flags & JSON_INDENT(31) ? 0 : JSON_COMPACT);
    size_t n = json_dumpb(v, NULL, 0, flags);
    if (n == 0)
        luaL_error(L, "json.encode: cannot encode this value");
    flow__script_charge(L, s, n / FLOW__SCRIPT_BYTES_PER_UNIT);
    char *buf = lua_newuserdatauv(L, n, 0);
    json_dumpb(v, buf, n, flags);
    lua_pushlstring(L, buf, n);
    lua_remove(L, -2);
}

static int proxy_tostring(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    push_dump(L, s, self(L, s)->v, 0);
    return 1;
}

int flow__script_array_op(lua_State *L, flow_script_t *s, int remove) {
    int array;
    proxy_t *p = to_proxy(L, s, 1, &array);
    if (p == NULL || !array)
        return -1;
    writable(L, p);
    touch(s, p, NULL, 0);
    lua_Integer n = (lua_Integer)json_array_size(p->v);
    int nargs = lua_gettop(L);
    flow__script_charge(L, s, (uint64_t)n / FLOW__SCRIPT_BYTES_PER_UNIT);
    if (remove) {
        lua_Integer pos = luaL_optinteger(L, 2, n);
        if (nargs >= 2 && pos != n && (pos < 1 || pos > n + 1))
            return luaL_argerror(L, 2, "position out of bounds");
        json_t *v = pos >= 1 && pos <= n ? json_array_get(p->v, (size_t)(pos - 1)) : NULL;
        if (v == NULL) {
            lua_pushnil(L);
            return 1;
        }
        push_under(L, s, p, v, NULL, 0); /* the arena keeps it alive past the removal */
        json_array_remove(p->v, (size_t)(pos - 1));
        return 1;
    }
    lua_Integer pos = n + 1;
    int val = 2;
    if (nargs == 3) {
        pos = luaL_checkinteger(L, 2);
        if (pos < 1 || pos > n + 1)
            return luaL_argerror(L, 2, "position out of bounds");
        val = 3;
    } else if (nargs != 2) {
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    json_t *v = to_json(L, s, val, NULL, 0);
    if (json_array_insert_new(p->v, (size_t)(pos - 1), v) < 0)
        return luaL_error(L, "not enough memory");
    return 0;
}

/* ---- json, yaml, fence, log ---- */

static void check_text_size(lua_State *L, flow_script_t *s, size_t n, const char *what) {
    if (n > s->lim.memory / 8)
        luaL_error(L, "%s: the text is %I bytes, over an eighth of --lua-memory (%I)", what,
                   (lua_Integer)n, (lua_Integer)(s->lim.memory / 8));
}

/* The decoded value (stolen) to Lua: the arena holds it, and its size is charged. */
static int push_decoded(lua_State *L, flow_script_t *s, json_t *v) {
    arena_take(L, s, v);
    charge_json(L, s, (int64_t)estimate(L, s, v));
    flow__script_push(L, s, v, 0, 0);
    return 1;
}

static int l_json_decode(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    size_t n;
    const char *text = luaL_checklstring(L, 1, &n);
    json_error_t err;
    check_text_size(L, s, n, "json.decode");
    flow__script_charge(L, s, n / FLOW__SCRIPT_BYTES_PER_UNIT);
    json_t *v = json_loadb(text, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (v == NULL)
        return luaL_error(L, "json.decode: line %d, column %d: %s", err.line, err.column, err.text);
    return push_decoded(L, s, v);
}

static int l_json_encode(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    lua_Integer indent = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, indent >= 0 && indent <= 16, 2, "indent is 0 to 16");
    proxy_t *p = to_proxy(L, s, 1, NULL);
    json_t *v = p ? p->v : NULL;
    if (v == NULL) {
        v = to_json(L, s, 1, NULL, 0);
        arena_take(L, s, v);
    }
    push_dump(L, s, v, indent > 0 ? JSON_INDENT(indent) : 0);
    return 1;
}

static int mark(lua_State *L, int array) {
    flow_script_t *s = flow__script_of(L);
    int arr;
    proxy_t *p = to_proxy(L, s, 1, &arr);
    if (p != NULL) {
        if (arr != array)
            return luaL_error(L, "json.%s: this is a JSON %s", array ? "array" : "object",
                              arr ? "array" : "object");
        lua_settop(L, 1);
        return 1;
    }
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if (flow__script_frozen_raw(L, 1))
        return luaL_error(L, "json.%s: this table is read-only", array ? "array" : "object");
    lua_rawgeti(L, LUA_REGISTRYINDEX, array ? s->mt_jarr : s->mt_jobj);
    lua_setmetatable(L, 1);
    return 1;
}

static int l_json_array(lua_State *L) {
    return mark(L, 1);
}

static int l_json_object(lua_State *L) {
    return mark(L, 0);
}

static int l_json_type(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    int arr;
    proxy_t *p = to_proxy(L, s, 1, &arr);
    const char *t = NULL;
    if (p != NULL) {
        t = arr ? "array" : "object";
    } else {
        switch (lua_type(L, 1)) {
        case LUA_TBOOLEAN: t = "boolean"; break;
        case LUA_TNUMBER: t = "number"; break;
        case LUA_TSTRING: t = "string"; break;
        case LUA_TLIGHTUSERDATA: t = lua_touserdata(L, 1) == NULL ? "null" : NULL; break;
        case LUA_TTABLE: {
            lua_settop(L, 1);
            json_t *v = to_json(L, s, 1, NULL, 0);
            t = json_is_array(v) ? "array" : "object";
            json_decref(v);
            break;
        }
        default: break;
        }
    }
    if (t == NULL)
        lua_pushnil(L);
    else
        lua_pushstring(L, t);
    return 1;
}

static int l_yaml_decode(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    size_t n;
    const char *text = luaL_checklstring(L, 1, &n);
    check_text_size(L, s, n, "yaml.decode");
    flow__script_charge(L, s, n / FLOW__SCRIPT_BYTES_PER_UNIT);
    flow_error_t err = {0};
    json_t *v = NULL;
    if (flow_yaml_decode(text, n, &v, &err) < 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", err.message ? err.message : "not YAML");
        flow_error_clear(&err);
        return luaL_error(L, "yaml.decode: %s", msg);
    }
    return push_decoded(L, s, v);
}

static int l_fence(lua_State *L) {
    size_t n, start, len;
    const char *text = luaL_checklstring(L, 1, &n);
    flow__script_charge(L, flow__script_of(L), n / FLOW__SCRIPT_BYTES_PER_UNIT);
    flow_fence_inner(text, n, &start, &len);
    lua_pushlstring(L, text + start, len);
    return 1;
}

static int encode_for_log(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    json_t *v = to_json(L, s, 1, NULL, 0);
    arena_take(L, s, v);
    push_dump(L, s, v, 0);
    return 1;
}

/* log(...): the arguments as print shows them (tables as JSON when they are), separated by blanks,
 * one line into the step's history (the engine caps it) and flowd's log. */
static int l_log(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n && luaL_bufflen(&b) < LOG_BUILD_MAX; i++) {
        if (i > 1)
            luaL_addchar(&b, ' ');
        if (lua_type(L, i) == LUA_TTABLE) {
            lua_pushcfunction(L, encode_for_log);
            lua_pushvalue(L, i);
            if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
                lua_pop(L, 1);
                luaL_tolstring(L, i, NULL);
            }
        } else if (lua_type(L, i) == LUA_TLIGHTUSERDATA && lua_touserdata(L, i) == NULL) {
            lua_pushliteral(L, "null");
        } else {
            luaL_tolstring(L, i, NULL);
        }
        /* the piece is on the stack above the buffer: only luaL_addvalue may find it so (a buffer
         * that grows in luaL_addlstring resizes what is on top, not its box: a use after free) */
        size_t len;
        const char *piece = lua_tolstring(L, -1, &len);
        size_t room = LOG_BUILD_MAX - luaL_bufflen(&b);
        if (len > room) {
            lua_pushlstring(L, piece, room);
            lua_replace(L, -2);
        }
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    size_t len;
    char *line = (char *)lua_tolstring(L, -1, &len);
    if (s->ctx == NULL) {
        flow_log(FLOW_LOG_INFO, "lua: log: %.*s", (int)(len < 1024 ? len : 1024), line);
        return 0;
    }
    if (flow_ctx_log(s->ctx, line, len) == FLOW_EINVAL) {
        /* not UTF-8: its bytes past ASCII become '?' in a copy Lua owns */
        char *copy = lua_newuserdatauv(L, len + 1, 0);
        for (size_t i = 0; i < len; i++)
            copy[i] = (unsigned char)line[i] < 0x80 ? line[i] : '?';
        flow_ctx_log(s->ctx, copy, len);
    }
    return 0;
}

/* A table of functions (and values) frozen like a library: read-only, its contents in a raw table.
 */
static void add_table(lua_State *L, int env, const char *name, const luaL_Reg *fns) {
    lua_newtable(L);
    luaL_setfuncs(L, fns, 0);
    lua_setfield(L, env, name);
}

/* A new metatable, kept in the registry (its reference returned): the metamethods fns (NULL for
 * none), the __name name (NULL for none) that error messages show, and __metatable protect, which
 * getmetatable() answers instead of the table, so that a script cannot change it. */
static int metatable_ref(lua_State *L, const luaL_Reg *fns, const char *name, const char *protect) {
    lua_newtable(L);
    if (fns != NULL)
        luaL_setfuncs(L, fns, 0);
    if (name != NULL) {
        lua_pushstring(L, name);
        lua_setfield(L, -2, "__name");
    }
    lua_pushstring(L, protect);
    lua_setfield(L, -2, "__metatable");
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

void flow__script_open_json(lua_State *L, flow_script_t *s) {
    int env = lua_gettop(L);
    static const luaL_Reg obj_mt[] = {{"__index", obj_index},
                                      {"__newindex", obj_newindex},
                                      {"__len", proxy_len},
                                      {"__pairs", proxy_pairs},
                                      {"__eq", proxy_eq},
                                      {"__tostring", proxy_tostring},
                                      {NULL, NULL}};
    static const luaL_Reg arr_mt[] = {{"__index", arr_index},
                                      {"__newindex", arr_newindex},
                                      {"__len", proxy_len},
                                      {"__pairs", proxy_pairs},
                                      {"__eq", proxy_eq},
                                      {"__tostring", proxy_tostring},
                                      {NULL, NULL}};
    s->mt_obj = metatable_ref(L, obj_mt, "json object", "json");
    s->mt_arr = metatable_ref(L, arr_mt, "json array", "json");
    /* the marks: protected, so that a hook cannot change them for the others */
    s->mt_jarr = metatable_ref(L, NULL, NULL, "json.array");
    s->mt_jobj = metatable_ref(L, NULL, NULL, "json.object");

    static const luaL_Reg json_fns[] = {{"encode", l_json_encode}, {"decode", l_json_decode},
                                        {"array", l_json_array},   {"object", l_json_object},
                                        {"type", l_json_type},     {NULL, NULL}};
    static const luaL_Reg yaml_fns[] = {{"decode", l_yaml_decode}, {NULL, NULL}};
    static const luaL_Reg env_fns[] = {
        {"fence", l_fence}, {"log", l_log}, {"print", l_log}, {NULL, NULL}};
    add_table(L, env, "json", json_fns);
    lua_getfield(L, env, "json");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_pop(L, 1);
    add_table(L, env, "yaml", yaml_fns);
    lua_pushvalue(L, env);
    luaL_setfuncs(L, env_fns, 0);
    lua_pop(L, 1);
}

const char *flow__script_error_text(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TSTRING)
        return lua_tostring(L, idx);
    if (lua_isnil(L, idx))
        return "error (nil)";
    if (lua_type(L, idx) == LUA_TTABLE) { /* error({...}): its JSON, when it is JSON */
        lua_pushcfunction(L, encode_for_log);
        lua_pushvalue(L, idx);
        if (lua_pcall(L, 1, 1, 0) == LUA_OK)
            return lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    return luaL_tolstring(L, idx, NULL);
}
