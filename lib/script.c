/* script.c: the Lua state of a flow document: the sandbox's globals, loading the chunk and the
 * hooks, freezing the state once loaded, and calls with their budget, time limit and memory cap
 * (script.h says what the sandbox is). Lua 5.4 from Debian does the language; what is here is what
 * an embedder must add: the allocator that counts, the count hook, the allow-list of globals, the
 * metering of C functions whose work instructions do not show, and read-only tables (stock Lua has
 * none, so a frozen table is emptied and reads through its metatable). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lualib.h>

#include "script_int.h"

#define GRAIN 256        /* instructions between runs of the count hook */
#define FREEZE_DEPTH 200 /* tables nested in the code's tables */
#define RECORDS_MAX 4096 /* what is put back after a call */

/* ---- memory ---- */

static void *script_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    flow_script_t *s = ud;
    size_t old = ptr != NULL ? osize : 0; /* with ptr NULL, osize is a type, not a size */
    if (nsize == 0) {
        flow__free(ptr);
        s->used -= old;
        return NULL;
    }
    if (nsize > old && s->used - old + nsize > s->lim.memory) {
        s->over = 1;
        return NULL;
    }
    void *p = flow__realloc(ptr, nsize);
    if (p == NULL) {
        if (nsize <= old) { /* Lua counts on shrinking never failing: keep the larger block */
            s->used = s->used - old + nsize;
            return ptr;
        }
        return NULL;
    }
    s->used = s->used - old + nsize;
    if (nsize > old && s->in_call)
        s->remaining -= (int64_t)((nsize - old) / FLOW__SCRIPT_BYTES_PER_UNIT);
    return p;
}

/* ---- the budget and the time limit ---- */

static void stop(lua_State *L, flow_script_t *s, int why, lua_Debug *ar) {
    lua_Debug caller;
    if (ar == NULL && lua_getstack(L, 1, &caller)) /* a C function charged: where its caller is */
        ar = &caller;
    if (!s->stopped) {
        s->stopped = why;
        s->stop_at[0] = '\0';
        if (ar != NULL && lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
            snprintf(s->stop_at, sizeof s->stop_at, "%s:%d", ar->short_src, ar->currentline);
        /* from now on the hook stops every instruction, so that a pcall in the hook's code cannot
         * catch the stop and go on */
        lua_sethook(L, lua_gethook(L), LUA_MASKCOUNT, 1);
    }
    luaL_error(L, "%s", why == STOP_TIME ? "time limit reached" : "instruction budget used up");
}

static void count_hook(lua_State *L, lua_Debug *ar) {
    flow_script_t *s = flow__script_of(L);
    s->remaining -= s->grain;
    if (s->stopped)
        stop(L, s, s->stopped, ar);
    if (s->remaining <= 0)
        stop(L, s, STOP_BUDGET, ar);
    /* the clock starts at the hook's first run: short calls never read it */
    uint64_t now = uv_hrtime();
    if (s->deadline_ns == 0)
        s->deadline_ns = now + s->lim.time_ms * 1000000u;
    else if (now > s->deadline_ns)
        stop(L, s, STOP_TIME, ar);
}

void flow__script_charge(lua_State *L, flow_script_t *s, uint64_t units) {
    if (!s->in_call)
        return;
    s->remaining -= units > INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)units;
    if (s->remaining <= 0)
        stop(L, s, STOP_BUDGET, NULL);
}

/* ---- metered C functions: the work they do on long strings and tables is charged ---- */

/* What each metered function is charged for:
 *   M_FIND     string.find, after it ran: what it scanned (to the match, or to the end)
 *   M_SCAN     match, gmatch, gsub: the subject from init, unless the pattern is anchored ("^")
 *   M_BYTES    s[i..j], j defaulting to i (string.byte, utf8.codepoint)
 *   M_LEN      s[i..j], j defaulting to the end (utf8.len)
 *   M_SUBJECT  its first argument (utf8.offset); M_SECOND its second (string.unpack)
 *   M_REP      string.rep: the allocator charges what it makes; copies of "" cost their count
 *   M_TABLE    #t elements (table.concat); M_INSERT, M_REMOVE what follows the position
 *   M_MOVE     e - f + 1 elements; M_SORT n log n comparisons; M_UNPACK j - i + 1 values */
enum meter {
    M_FIND,
    M_SCAN,
    M_BYTES,
    M_LEN,
    M_SUBJECT,
    M_SECOND,
    M_REP,
    M_TABLE,
    M_INSERT,
    M_REMOVE,
    M_MOVE,
    M_SORT,
    M_UNPACK
};

static uint64_t len_of(lua_State *L, int idx) {
    if (lua_type(L, idx) == LUA_TSTRING)
        return lua_rawlen(L, idx);
    if (lua_type(L, idx) == LUA_TTABLE || lua_type(L, idx) == LUA_TUSERDATA) {
        lua_len(L, idx);
        lua_Integer n = lua_tointeger(L, -1);
        lua_pop(L, 1);
        return n > 0 ? (uint64_t)n : 0;
    }
    return 0;
}

static uint64_t span(lua_Integer from, lua_Integer to) {
    return to >= from ? (uint64_t)to - (uint64_t)from + 1 : 0;
}

/* A Lua string position (negative from the end) as 1..len+1. */
static lua_Integer position(lua_Integer pos, uint64_t len) {
    if (pos < 0)
        pos = (lua_Integer)len + pos + 1;
    return pos < 1 ? 1 : pos > (lua_Integer)len + 1 ? (lua_Integer)len + 1 : pos;
}

static uint64_t bytes_units(uint64_t bytes) {
    return bytes / FLOW__SCRIPT_BYTES_PER_UNIT;
}

static int metered(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    lua_CFunction f = lua_tocfunction(L, lua_upvalueindex(1));
    enum meter m = (enum meter)lua_tointeger(L, lua_upvalueindex(2));
    uint64_t units = 0, len = len_of(L, 1);
    switch (m) {
    case M_FIND: {
        lua_Integer init = position(luaL_optinteger(L, 3, 1), len);
        int n = f(L);
        lua_Integer end = lua_isinteger(L, -n + 1) ? lua_tointeger(L, -n + 1) : (lua_Integer)len;
        flow__script_charge(L, s, bytes_units(span(init, end)));
        return n;
    }
    case M_SCAN: {
        const char *pat = lua_tostring(L, 2);
        if (pat == NULL || pat[0] != '^')
            units = bytes_units(span(position(luaL_optinteger(L, 3, 1), len), (lua_Integer)len));
        break;
    }
    case M_BYTES:
    case M_LEN: {
        lua_Integer i = position(luaL_optinteger(L, 2, 1), len);
        units = span(i, position(luaL_optinteger(L, 3, m == M_LEN ? -1 : i), len));
        break;
    }
    case M_SUBJECT: units = bytes_units(len); break;
    case M_SECOND: units = bytes_units(len_of(L, 2)); break;
    case M_REP: { /* the allocator charges the bytes; copies of "" cost only their count */
        lua_Integer n = lua_tointeger(L, 2);
        if (n > 0 && len + len_of(L, 3) == 0)
            units = bytes_units((uint64_t)n);
        break;
    }
    case M_TABLE: units = len; break;
    case M_INSERT:
    case M_REMOVE: {
        int n = flow__script_array_op(L, s, m == M_REMOVE);
        if (n >= 0)
            return n;
        if (lua_gettop(L) >= (m == M_INSERT ? 3 : 2))
            units = len;
        break;
    }
    case M_MOVE: units = span(lua_tointeger(L, 2), lua_tointeger(L, 3)); break;
    case M_SORT: {
        uint64_t bits = 1;
        while ((len >> bits) != 0 && bits < 63)
            bits++;
        units = len * bits;
        break;
    }
    case M_UNPACK: {
        lua_Integer i = luaL_optinteger(L, 2, 1);
        lua_Integer j = lua_isnoneornil(L, 3) ? (lua_Integer)len : lua_tointeger(L, 3);
        units = span(i, j);
        break;
    }
    }
    flow__script_charge(L, s, units);
    return f(L);
}

typedef struct meter_spec {
    const char *lib, *name;
    enum meter m;
} meter_spec_t;

static const meter_spec_t meters[] = {
    {"string", "find", M_FIND},     {"string", "match", M_SCAN},  {"string", "gmatch", M_SCAN},
    {"string", "gsub", M_SCAN},     {"string", "byte", M_BYTES},  {"string", "rep", M_REP},
    {"string", "unpack", M_SECOND}, {"utf8", "len", M_LEN},       {"utf8", "codepoint", M_BYTES},
    {"utf8", "offset", M_SUBJECT},  {"table", "concat", M_TABLE}, {"table", "insert", M_INSERT},
    {"table", "remove", M_REMOVE},  {"table", "move", M_MOVE},    {"table", "sort", M_SORT},
    {"table", "unpack", M_UNPACK},
};

/* ---- read-only tables ---- */

static int frozen_newindex(lua_State *L);

/* The raw table behind the frozen table at idx (pushed), or nothing pushed and 0 when it is not
 * one. */
static int frozen_raw(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx))
        return 0;
    lua_getfield(L, -1, "__newindex");
    int frozen = lua_tocfunction(L, -1) == frozen_newindex;
    lua_pop(L, 1);
    if (!frozen) {
        lua_pop(L, 1);
        return 0;
    }
    lua_getfield(L, -1, "__index");
    lua_remove(L, -2);
    return 1;
}

int flow__script_frozen_raw(lua_State *L, int idx) {
    return frozen_raw(L, lua_absindex(L, idx));
}

static int frozen_newindex(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->env);
    if (lua_rawequal(L, 1, -1))
        return luaL_error(
            L,
            "cannot set the global '%s': globals are read-only once the flow is loaded "
            "(keep what a job learns in shared)",
            lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?");
    return luaL_error(L,
                      "this table is read-only: the code's tables cannot change once the flow is "
                      "loaded (copy it into a new table, or keep what a job learns in shared)");
}

static int frozen_len(lua_State *L) {
    if (!frozen_raw(L, 1))
        return luaL_error(L, "not a frozen table");
    lua_len(L, -1);
    return 1;
}

static int frozen_next(lua_State *L) {
    lua_settop(L, 2);
    if (!frozen_raw(L, 1))
        return luaL_error(L, "not a frozen table");
    lua_pushvalue(L, 2);
    if (lua_next(L, -2))
        return 2;
    lua_pushnil(L);
    return 1;
}

static int frozen_pairs(lua_State *L) {
    lua_pushcfunction(L, frozen_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int is_meta_key(lua_State *L, int idx) {
    size_t n;
    const char *k = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &n) : NULL;
    return k != NULL && n >= 2 && k[0] == '_' && k[1] == '_';
}

static void record(lua_State *L, flow_script_t *s, int field, int owner, int slot, int key,
                   int val);

/* Freezes the table at t (absolute) in place: its contents move to a raw table its metatable reads
 * through, so writes reach __newindex. Metamethod fields ("__index", ...) stay in it too, because
 * Lua reads metatables raw (a class table must keep them): those are recorded, to be put back after
 * every call. Pushes the raw table. */
static void freeze_table(lua_State *L, flow_script_t *s, int t) {
    lua_newtable(L);
    int raw = lua_gettop(L);
    lua_newtable(L);
    int mt = lua_gettop(L);
    if (lua_getmetatable(L, t)) {
        int old = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, old)) { /* metamethods other than ours carry over (__tostring, __call) */
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, mt);
        }
        lua_setmetatable(L, raw); /* and lookups in raw go on through it (a class's __index) */
    }
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, raw);
    }
    lua_pushnil(L);
    while (lua_next(L, raw)) {
        if (is_meta_key(L, -2)) {
            record(L, s, 1, t, 0, lua_gettop(L) - 1, lua_gettop(L));
            lua_pop(L, 1);
            continue;
        }
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, t);
    }
    static const luaL_Reg frozen_mt[] = {{"__newindex", frozen_newindex},
                                         {"__len", frozen_len},
                                         {"__pairs", frozen_pairs},
                                         {NULL, NULL}};
    lua_pushvalue(L, raw);
    lua_setfield(L, mt, "__index");
    luaL_setfuncs(L, frozen_mt, 0); /* mt is on top */
    lua_pushboolean(L, 0);
    lua_setfield(L, mt, "__metatable");
    lua_pushnil(L);
    lua_setfield(L, mt, "__gc");
    lua_setmetatable(L, t); /* pops mt */
}

/* ---- what a call may change and is put back after it ---- */

/* Records the value at val: of the slot-th upvalue of the function at owner, or of the key at key
 * of the table at owner (field). */
static void record(lua_State *L, flow_script_t *s, int field, int owner, int slot, int key,
                   int val) {
    if (s->nrecs >= RECORDS_MAX) /* each costs every call a little: keep that bounded */
        luaL_error(L, "the code keeps more than %d local variables and metamethod fields that a hook "
                      "could change",
                   RECORDS_MAX);
    restore_rec_t *recs = flow__grow(s->recs, s->nrecs, &s->recs_cap, sizeof *recs, 16, 0);
    if (recs == NULL)
        luaL_error(L, "not enough memory");
    s->recs = recs;
    restore_rec_t *r = &s->recs[s->nrecs];
    r->field = field;
    lua_pushvalue(L, owner);
    r->owner = luaL_ref(L, LUA_REGISTRYINDEX);
    if (field) {
        lua_pushvalue(L, key);
        r->slot = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        r->slot = slot;
    }
    lua_pushvalue(L, val);
    r->val = luaL_ref(L, LUA_REGISTRYINDEX);
    s->nrecs++;
    s->nfields += field;
}

/* Upvalues: no allocation, so this runs unprotected. */
static void restore_upvalues(lua_State *L, flow_script_t *s) {
    for (size_t i = 0; i < s->nrecs; i++) {
        const restore_rec_t *r = &s->recs[i];
        if (r->field)
            continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->owner);
        lua_getupvalue(L, -1, r->slot);
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->val);
        if (!lua_rawequal(L, -1, -2)) {
            lua_setupvalue(L, -3, r->slot);
            lua_pop(L, 2);
        } else {
            lua_pop(L, 3);
        }
    }
}

/* Fields may need a new slot (a field set to nil and back): protected. */
static int restore_fields(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    for (size_t i = 0; i < s->nrecs; i++) {
        const restore_rec_t *r = &s->recs[i];
        if (!r->field)
            continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->owner);
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->slot);
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->val);
        lua_rawset(L, -3);
        lua_pop(L, 1);
    }
    return 0;
}

/* ---- freezing: every table and function the globals and the hooks reach ---- */

static void walk(lua_State *L, flow_script_t *s, int idx, int seen, int depth);

static int seen_before(lua_State *L, int seen, int idx) {
    lua_pushvalue(L, idx);
    if (lua_rawget(L, seen) != LUA_TNIL) {
        lua_pop(L, 1);
        return 1;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, seen);
    return 0;
}

static void walk_function(lua_State *L, flow_script_t *s, int f, int seen, int depth) {
    for (int i = 1;; i++) {
        const char *name = lua_getupvalue(L, f, i);
        if (name == NULL)
            break;
        int v = lua_gettop(L);
        lua_pushlightuserdata(L, lua_upvalueid(L, f, i));
        if (lua_rawget(L, seen) == LUA_TNIL) {
            lua_pushlightuserdata(L, lua_upvalueid(L, f, i));
            lua_pushboolean(L, 1);
            lua_rawset(L, seen);
            walk(L, s, v, seen, depth + 1);
            record(L, s, 0, f, i, 0, v);
        }
        lua_settop(L, v - 1);
    }
}

static void walk(lua_State *L, flow_script_t *s, int idx, int seen, int depth) {
    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 8, "freezing");
    if (depth > FREEZE_DEPTH)
        luaL_error(L, "the code's tables and functions nest deeper than %d", FREEZE_DEPTH);
    int type = lua_type(L, idx);
    if (type == LUA_TFUNCTION && !lua_iscfunction(L, idx)) {
        if (!seen_before(L, seen, idx))
            walk_function(L, s, idx, seen, depth);
        return;
    }
    if (type != LUA_TTABLE || seen_before(L, seen, idx))
        return;
    /* the json marks are ours and protected already */
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->mt_jarr);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->mt_jobj);
    int ours = lua_rawequal(L, idx, -1) || lua_rawequal(L, idx, -2);
    lua_pop(L, 2);
    if (ours)
        return;
    if (frozen_raw(L, idx)) { /* a library table, frozen at set-up: its functions are C */
        lua_pop(L, 1);
        return;
    }
    freeze_table(L, s, idx);
    int raw = lua_gettop(L);
    if (lua_getmetatable(
            L, raw)) { /* a class: its methods and fields, not frozen (Lua reads it raw) */
        int mt = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, mt)) {
            walk(L, s, -1, seen, depth + 1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    while (lua_next(L, raw)) {
        walk(L, s, -2, seen, depth + 1);
        walk(L, s, -1, seen, depth + 1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static int freeze_protected(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    lua_newtable(L);
    int seen = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->env);
    walk(L, s, -1, seen, 0);
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX,
                s->hooks); /* and the hooks the globals do not hold (inline code) */
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        walk(L, s, -1, seen, 0);
        lua_pop(L, 1);
    }
    return 0;
}

/* ---- the sandbox's globals ---- */

static int safe_setmetatable(lua_State *L) {
    if (lua_type(L, 2) == LUA_TTABLE && lua_getfield(L, 2, "__gc") != LUA_TNIL)
        return luaL_error(L,
                          "setmetatable: __gc is not allowed in flowd's Lua (finalizers would run "
                          "outside the hook that made them)");
    lua_settop(L, 2);
    lua_CFunction f = lua_tocfunction(L, lua_upvalueindex(1));
    return f(L);
}

static const char *const base_allowed[] = {
    "assert",   "error",  "ipairs",   "next",     "pairs", "pcall",
    "xpcall",   "select", "tonumber", "tostring", "type",  "getmetatable",
    "rawequal", "rawlen", "rawget",   "_VERSION", NULL};
static const char *const removed[] = {"string.dump", "math.randomseed", NULL};

/* A copy of the library table at lib (a global of the state), without what removed lists, with
 * metered functions wrapped, frozen, into env[name]. */
static void add_library(lua_State *L, flow_script_t *s, int env, const char *name) {
    lua_getglobal(L, name);
    int lib = lua_gettop(L);
    lua_newtable(L);
    int copy = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, lib)) {
        const char *key = lua_tostring(L, -2);
        char full[64];
        snprintf(full, sizeof full, "%s.%s", name, key ? key : "");
        int drop = 0;
        for (const char *const *r = removed; *r != NULL; r++)
            drop |= strcmp(*r, full) == 0;
        for (size_t i = 0; i < sizeof meters / sizeof meters[0] && !drop; i++) {
            if (strcmp(meters[i].lib, name) == 0 && strcmp(meters[i].name, key) == 0) {
                lua_CFunction f = lua_tocfunction(L, -1);
                lua_pop(L, 1);
                lua_pushcfunction(L, f);
                lua_pushinteger(L, meters[i].m);
                lua_pushcclosure(L, metered, 2);
            }
        }
        if (drop) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, copy);
    }
    freeze_table(L, s, copy); /* a library has no metamethod fields: nothing to put back */
    lua_pop(L, 1);
    lua_setfield(L, env, name);
    lua_pop(L, 1);
}

static int setup(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
                                    {LUA_STRLIBNAME, luaopen_string},
                                    {LUA_TABLIBNAME, luaopen_table},
                                    {LUA_MATHLIBNAME, luaopen_math},
                                    {LUA_UTF8LIBNAME, luaopen_utf8}};
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        luaL_requiref(L, libs[i].name, libs[i].func, 1);
        lua_pop(L, 1);
    }
    lua_newtable(L);
    int env = lua_gettop(L);
    for (const char *const *n = base_allowed; *n != NULL; n++) {
        lua_getglobal(L, *n);
        lua_setfield(L, env, *n);
    }
    lua_getglobal(L, "setmetatable");
    lua_pushcclosure(L, safe_setmetatable, 1);
    lua_setfield(L, env, "setmetatable");
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
    add_library(L, s, env, LUA_STRLIBNAME);
    add_library(L, s, env, LUA_TABLIBNAME);
    add_library(L, s, env, LUA_MATHLIBNAME);
    add_library(L, s, env, LUA_UTF8LIBNAME);
    flow__script_open_json(L, s);
    /* Strings index the sandbox's string table, and their metatable cannot be reached: through it a
     * job could change string methods for every other job. */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_getfield(L, env, LUA_STRLIBNAME);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    lua_pushvalue(L, env);
    s->env = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    s->hooks = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

int flow_script_new(const flow_script_limits_t *lim, flow_script_t **out) {
    flow_script_t *s = flow__calloc(1, sizeof *s);
    if (s == NULL)
        return FLOW_ENOMEM;
    if (lim != NULL)
        s->lim = *lim;
    if (s->lim.instructions == 0)
        s->lim.instructions = FLOW_SCRIPT_INSTRUCTIONS;
    if (s->lim.instructions_max == 0)
        s->lim.instructions_max = FLOW_SCRIPT_INSTRUCTIONS_MAX;
    if (s->lim.instructions_max < s->lim.instructions)
        s->lim.instructions_max = s->lim.instructions;
    if (s->lim.memory == 0)
        s->lim.memory = FLOW_SCRIPT_MEMORY;
    if (s->lim.time_ms == 0)
        s->lim.time_ms = FLOW_SCRIPT_TIME_MS;
    s->refs = 1;
    s->env = s->mt_obj = s->mt_arr = s->mt_jarr = s->mt_jobj = s->hooks = s->anchor = LUA_NOREF;
    for (size_t i = 0; i < sizeof s->argpool / sizeof s->argpool[0]; i++)
        s->argpool[i] = LUA_NOREF;
    s->L = lua_newstate(script_alloc, s);
    if (s->L == NULL) {
        flow__free(s);
        return FLOW_ENOMEM;
    }
    *(flow_script_t **)lua_getextraspace(s->L) = s;
    lua_gc(s->L, LUA_GCGEN, 0, 0); /* most of what a call makes dies with it */
    lua_pushcfunction(s->L, setup);
    if (lua_pcall(s->L, 0, 0, 0) != LUA_OK) {
        flow_script_unref(s);
        return FLOW_ENOMEM;
    }
    *out = s;
    return 0;
}

flow_script_t *flow_script_ref(flow_script_t *s) {
    s->refs++;
    return s;
}

void flow_script_unref(flow_script_t *s) {
    if (s == NULL || --s->refs > 0)
        return;
    flow__script_release(s);
    lua_close(s->L);
    flow__free(s->arena);
    flow__free(s->recs);
    flow__free(s);
}

const flow_script_limits_t *flow_script_limits(const flow_script_t *s) {
    return &s->lim;
}

/* ---- calls ---- */

typedef struct call_state {
    flow_script_t *s;
    const flow_script_call_t *c;
    json_t *result;
    int chunk;      /* the function to call is on the stack (a chunk being loaded) */
    int converting; /* the hook has returned: an error now is about its result */
} call_state_t;

static int message_handler(lua_State *L) {
    lua_pushstring(L, flow__script_error_text(L, 1));
    return 1;
}

/* The hook's result (at the top of the stack) into c->text or cs->result. Raises (protected). */
static int take_result(lua_State *L, call_state_t *cs) {
    const flow_script_call_t *c = cs->c;
    cs->converting = 1;
    if (c->text != NULL) {
        size_t n = 0;
        const char *t = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
        if ((t == NULL && !lua_isnil(L, -1)) || n >= c->text_cap)
            return luaL_error(L, "returns a string of at most %d bytes, or nil; not %s",
                              (int)c->text_cap - 1,
                              t != NULL ? "a longer one" : luaL_typename(L, -1));
        memcpy(c->text, t ? t : "", n);
        c->text[n] = '\0';
    } else if (!lua_isnil(L, -1)) {
        cs->result = flow__script_to_json(L, cs->s, -1, NULL);
    }
    return 0;
}

static int convert_result(lua_State *L) {
    call_state_t *cs = lua_touserdata(L, 1);
    lua_settop(L, 2);
    return take_result(L, cs);
}

static void push_args(lua_State *L, flow_script_t *s, const flow_script_call_t *c) {
    for (unsigned i = 0; i < c->nargs; i++) {
        if (c->args[i] == NULL)
            lua_pushnil(L);
        else
            flow__script_push_arg(L, s, c->args[i], !(c->writable & (1u << i)), i);
    }
}

/* The slow way into a call: pushing the arguments may allocate, so it is done protected. */
static int trampoline(lua_State *L) {
    call_state_t *cs = lua_touserdata(L, 1);
    flow_script_t *s = cs->s;
    const flow_script_call_t *c = cs->c;
    luaL_checkstack(L, (int)c->nargs + 8, "call");
    if (cs->chunk)
        lua_pushvalue(L, 2);
    else
        lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    push_args(L, s, c);
    lua_call(L, (int)c->nargs, 1);
    return take_result(L, cs);
}

/* Whether the arguments can be pushed without allocating (so without a protected call): containers
 * whose proxy is made already, and scalars but strings. */
static int args_direct(const flow_script_t *s, const flow_script_call_t *c) {
    for (unsigned i = 0; i < c->nargs; i++) {
        json_t *v = c->args[i];
        if (v == NULL || json_is_number(v) || json_is_boolean(v) || json_is_null(v))
            continue;
        if (json_is_string(v) || i >= sizeof s->argpool / sizeof s->argpool[0] ||
            s->argpool[i] == LUA_NOREF)
            return 0;
    }
    return 1;
}

/* The fast way: the arguments pushed as they are and the hook called at once; a result that is a
 * scalar but a string converts here, the rest in a protected call. */
static int call_direct(flow_script_t *s, call_state_t *cs, int msgh) {
    lua_State *L = s->L;
    const flow_script_call_t *c = cs->c;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    push_args(L, s, c);
    int status = lua_pcall(L, (int)c->nargs, 1, msgh);
    if (status != LUA_OK)
        return status;
    int t = lua_type(L, -1);
    size_t n = 0;
    if (c->text != NULL && (t == LUA_TNIL || t == LUA_TSTRING)) {
        const char *text = t == LUA_TSTRING ? lua_tolstring(L, -1, &n) : "";
        if (n < c->text_cap) { /* else the protected way says why it is refused */
            memcpy(c->text, text, n + 1);
            lua_pop(L, 1);
            return LUA_OK;
        }
    }
    if (c->text == NULL && (t == LUA_TNIL || t == LUA_TBOOLEAN || lua_isinteger(L, -1))) {
        cs->result = t == LUA_TNIL       ? NULL
                     : t == LUA_TBOOLEAN ? json_boolean(lua_toboolean(L, -1))
                                         : json_integer((json_int_t)lua_tointeger(L, -1));
        if (t != LUA_TNIL && cs->result == NULL) {
            lua_pushliteral(L, "not enough memory");
            return LUA_ERRRUN;
        }
        lua_pop(L, 1);
        return LUA_OK;
    }
    lua_pushcfunction(L, convert_result);
    lua_insert(L, -2);
    lua_pushlightuserdata(L, cs);
    lua_insert(L, -2);
    return lua_pcall(L, 2, 0, msgh);
}

/* The message of a failed call into err. */
static int call_error(flow_script_t *s, const call_state_t *cs, int status, flow_error_t *err) {
    const flow_script_call_t *c = cs->c;
    lua_State *L = s->L;
    char what[300];
    if (c->node != NULL)
        snprintf(what, sizeof what, "node %s, %s", c->node, c->hook ? c->hook : "lua");
    else
        snprintf(what, sizeof what, "%s", c->hook ? c->hook : "lua");
    const char *at = s->stop_at[0] ? s->stop_at : "?";
    if (s->stopped == STOP_BUDGET)
        return flow__set_error(
            err, FLOW_ESCRIPT,
            "%s: stopped at %s after its budget of %llu instructions (a node's \"budget\", "
            "--lua-budget)",
            what, at, (unsigned long long)s->budget);
    if (s->stopped == STOP_TIME)
        return flow__set_error(err, FLOW_ESCRIPT,
                               "%s: stopped at %s after %llu ms, its time limit (--lua-time)", what,
                               at, (unsigned long long)s->lim.time_ms);
    if (status == LUA_ERRMEM)
        return flow__set_error(
            err, FLOW_ESCRIPT,
            "%s: out of memory: a flow's Lua state may hold %zu bytes (--lua-memory)%s", what,
            s->lim.memory, s->over ? "" : " (or the machine is out of memory)");
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error";
    return flow__set_error(err, FLOW_ESCRIPT, "%s: %s%s", what,
                           cs->converting ? "what it returned: " : "", msg);
}

/* Runs the call (the chunk at the top of the stack when chunk is set). */
static int run(flow_script_t *s, const flow_script_call_t *c, int chunk, json_t **result,
               flow_error_t *err) {
    lua_State *L = s->L;
    call_state_t cs = {.s = s, .c = c, .chunk = chunk};
    uint64_t budget = c->budget ? c->budget : s->lim.instructions;
    int rc = 0;
    if (s->broken) {
        if (chunk)
            lua_pop(L, 1);
        return flow__set_error(err, FLOW_ESCRIPT, "%s: this flow's Lua state could not be set up",
                               c->hook ? c->hook : "lua");
    }
    if (!lua_checkstack(L, (int)c->nargs + 8)) {
        if (chunk)
            lua_pop(L, 1);
        return flow__set_error(err, FLOW_ENOMEM, "out of memory");
    }
    int base = lua_gettop(L) - (chunk ? 1 : 0);
    s->in_call = 1;
    s->budget = budget;
    s->remaining = budget > INT64_MAX ? INT64_MAX : (int64_t)budget;
    s->grain = budget < GRAIN ? (int)budget : GRAIN;
    s->deadline_ns = 0;
    s->stopped = 0;
    s->over = 0;
    s->json_bytes = 0;
    s->ctx = c->ctx;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, s->grain); /* also resets its count; it stays set
                                                          * between calls, when no Lua runs */
    lua_pushcfunction(L, message_handler);
    int msgh = lua_gettop(L);
    int status;
    if (!chunk && args_direct(s, c)) {
        status = call_direct(s, &cs, msgh);
    } else {
        lua_pushcfunction(L, trampoline);
        lua_pushlightuserdata(L, &cs);
        if (chunk)
            lua_pushvalue(L, base + 1);
        status = lua_pcall(L, chunk ? 2 : 1, 0, msgh);
    }
    s->in_call = 0;
    if (status != LUA_OK) {
        rc = call_error(s, &cs, status, err);
        json_decref(cs.result);
        cs.result = NULL;
    }
    s->ctx = NULL;
    flow__script_release(s);
    restore_upvalues(L, s);
    if (s->nfields > 0) {
        lua_pushcfunction(L, restore_fields);
        if (lua_pcall(L, 0, 0, 0) != LUA_OK)
            s->broken = 1;
    }
    lua_settop(L, base);
    /* garbage of a call that made much goes at once (most calls make little, and the collector
     * keeps up) */
    if (status == LUA_ERRMEM || s->used > s->base_used + s->lim.memory / 4)
        lua_gc(L, LUA_GCCOLLECT);
    if (result != NULL)
        *result = cs.result;
    else
        json_decref(cs.result);
    return rc;
}

int flow_script_call(flow_script_t *s, const flow_script_call_t *c, json_t **result,
                     flow_error_t *err) {
    if (s == NULL || c == NULL || c->nargs > sizeof c->args / sizeof c->args[0])
        return FLOW_EINVAL;
    if (result != NULL)
        *result = NULL;
    return run(s, c, 0, result, err);
}

/* ---- loading ---- */

/* "NAME:LINE: message" (what Lua writes with chunk name "=NAME") into the line and the message. */
static const char *split_place(const char *msg, const char *name, int *line) {
    size_t n = strlen(name);
    *line = 0;
    if (strncmp(msg, name, n) != 0 || msg[n] != ':')
        return msg;
    const char *p = msg + n + 1;
    int v = 0;
    while (*p >= '0' && *p <= '9' && v < 100000000)
        v = v * 10 + (*p++ - '0');
    if (p == msg + n + 1 || *p != ':')
        return msg;
    *line = v;
    return p[1] == ' ' ? p + 2 : p + 1;
}

static void add_problem(flow_problems_t *problems, const char *where, flow_script_place_t at,
                        int line, const char *msg) {
    char place[600];
    if (at == FLOW_SCRIPT_AT_FILE) {
        snprintf(place, sizeof place, "%s:%d", where, line > 0 ? line : 1);
        flow_problems_add(problems, place, "%s", msg);
    } else if (at == FLOW_SCRIPT_AT_LINES && line > 0) {
        snprintf(place, sizeof place, "%s/%d", where, line - 1);
        flow_problems_add(problems, place, "line %d: %s", line, msg);
    } else if (line > 0) {
        flow_problems_add(problems, where, "line %d: %s", line, msg);
    } else {
        flow_problems_add(problems, where, "%s", msg);
    }
}

typedef struct adopt_arg {
    int ref; /* out: a registry ref of the function (when asked) */
    int want_ref;
    const char *name; /* lookup: the dotted name */
    int found;
} adopt_arg_t;

/* Sets the _ENV of the chunk (argument 1) to the sandbox's globals: every chunk shares the first
 * one's, so that one record puts _ENV back after a call that assigned it. Protected: it allocates.
 */
static int set_env(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    adopt_arg_t *a = lua_touserdata(L, 2);
    if (s->anchor == LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->env);
        lua_setupvalue(L, 1, 1);
        lua_pushvalue(L, 1);
        s->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->anchor);
        lua_upvaluejoin(L, 1, 1, -1, 1);
        lua_pop(L, 1);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->hooks);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    if (a->want_ref) {
        lua_pushvalue(L, 1);
        a->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return 0;
}

/* set_env on the chunk at the top of the stack (which stays there). */
static int adopt(lua_State *L, int *ref) {
    adopt_arg_t a = {.ref = LUA_NOREF, .want_ref = ref != NULL};
    lua_pushcfunction(L, set_env);
    lua_pushvalue(L, -2);
    lua_pushlightuserdata(L, &a);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        lua_pop(L, 1);
        return FLOW_ENOMEM;
    }
    if (ref != NULL)
        *ref = a.ref;
    return 0;
}

/* Looks the dotted name up in the globals (raw: not frozen yet) and refs the function it names. */
static int lookup_protected(lua_State *L) {
    flow_script_t *s = flow__script_of(L);
    adopt_arg_t *a = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->env);
    const char *p = a->name;
    while (*p != '\0') {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (lua_type(L, -1) != LUA_TTABLE)
            return 0;
        lua_pushlstring(L, p, n);
        lua_rawget(L, -2);
        lua_remove(L, -2);
        p += n + (dot != NULL);
    }
    if (lua_type(L, -1) != LUA_TFUNCTION)
        return 0;
    a->found = 1;
    a->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

int flow_script_load(flow_script_t *s, const char *code, size_t len, const char *name,
                     const char *where, flow_script_place_t file, flow_problems_t *problems) {
    lua_State *L = s->L;
    char chunkname[300];
    int line;
    if (s->frozen)
        return FLOW_ESTATE;
    snprintf(chunkname, sizeof chunkname, "=%s", name);
    int status = luaL_loadbufferx(L, code, len, chunkname, "t");
    if (status != LUA_OK) {
        if (status == LUA_ERRMEM) {
            lua_pop(L, 1);
            add_problem(problems, where, FLOW_SCRIPT_AT_POINTER, 0,
                        "out of memory compiling the code (--lua-memory)");
            return FLOW_ELOAD;
        }
        const char *msg = split_place(lua_tostring(L, -1), name, &line);
        add_problem(problems, where, file, line, msg);
        lua_pop(L, 1);
        return FLOW_ELOAD;
    }
    if (adopt(L, NULL) < 0) {
        lua_pop(L, 1);
        return FLOW_ENOMEM;
    }
    flow_error_t err = {0};
    flow_script_call_t c = {.hook = "running the code"};
    if (run(s, &c, 1, NULL, &err) < 0) {
        const char *msg = err.message ? err.message : "failed";
        const char *rest = strncmp(msg, "running the code: ", 18) == 0 ? msg + 18 : msg;
        rest = split_place(rest, name, &line);
        char text[FLOW_PROBLEM_MESSAGE_MAX];
        snprintf(text, sizeof text, "running the code failed: %s", rest);
        add_problem(problems, where, file, line, text);
        flow_error_clear(&err);
        return FLOW_ELOAD;
    }
    return 0;
}

static const char *const keywords[] = {"and",   "break", "do",       "else",  "elseif", "end",
                                       "false", "for",   "function", "goto",  "if",     "in",
                                       "local", "nil",   "not",      "or",    "repeat", "return",
                                       "then",  "true",  "until",    "while", NULL};

int flow_script_is_name(json_t *spec) {
    const char *p = json_string_value(spec);
    if (p == NULL || *p == '\0')
        return 0;
    while (*p != '\0') {
        const char *start = p;
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
            return 0;
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
               *p == '_')
            p++;
        for (const char *const *k = keywords; *k != NULL; k++)
            if (strlen(*k) == (size_t)(p - start) && strncmp(*k, start, (size_t)(p - start)) == 0)
                return 0;
        if (*p == '.')
            p++;
        else if (*p != '\0')
            return 0;
        if (*p == '\0' && p[-1] == '.')
            return 0;
    }
    return 1;
}

typedef struct hook_src {
    const char *text;
    size_t len;
    const char *const *params;
    const char *chunkname;
    int status;
} hook_src_t;

/* Compiles "local a, b = ...; BODY" as a chunk of its own, so that its lines are the body's lines
 * and nothing of it runs before the hook is called. Protected (it allocates). */
static int compile_hook(lua_State *L) {
    hook_src_t *h = lua_touserdata(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (h->params[0] != NULL) {
        luaL_addstring(&b, "local ");
        for (const char *const *p = h->params; *p != NULL; p++) {
            if (p != h->params)
                luaL_addstring(&b, ", ");
            luaL_addstring(&b, *p);
        }
        luaL_addstring(&b, " = ...; ");
    }
    luaL_addlstring(&b, h->text, h->len);
    luaL_pushresult(&b);
    size_t n;
    const char *all = lua_tolstring(L, -1, &n);
    h->status = luaL_loadbufferx(L, all, n, h->chunkname, "t");
    return 1;
}

int flow_script_hook(flow_script_t *s, json_t *spec, const char *const *params, const char *where,
                     int chunk_ok, flow_problems_t *problems, int *ref) {
    lua_State *L = s->L;
    *ref = LUA_NOREF;
    if (s->frozen)
        return FLOW_ESTATE;
    if (flow_script_is_name(spec)) {
        if (!chunk_ok)
            return FLOW_ELOAD; /* the chunk's own problem says why */
        adopt_arg_t a = {.ref = LUA_NOREF, .name = json_string_value(spec)};
        lua_pushcfunction(L, lookup_protected);
        lua_pushlightuserdata(L, &a);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            lua_pop(L, 1);
            return FLOW_ENOMEM;
        }
        if (!a.found) {
            flow_problems_add(problems, where, "the code defines no function %s",
                              json_string_value(spec));
            return FLOW_ELOAD;
        }
        *ref = a.ref;
        return 0;
    }
    char *joined = NULL;
    const char *text = json_string_value(spec);
    size_t len = json_string_length(spec);
    if (json_is_array(spec)) {
        size_t i, total = 0;
        json_t *line;
        json_array_foreach(spec, i, line) {
            if (!json_is_string(line)) {
                flow_problems_add(problems, where,
                                  "Lua code is a string or an array of lines (strings)");
                return FLOW_ELOAD;
            }
            total += json_string_length(line) + 1;
        }
        joined = flow__malloc(total + 1);
        if (joined == NULL)
            return FLOW_ENOMEM;
        len = 0;
        json_array_foreach(spec, i, line) {
            memcpy(joined + len, json_string_value(line), json_string_length(line));
            len += json_string_length(line);
            joined[len++] = '\n';
        }
        joined[len] = '\0';
        text = joined;
    }
    if (text == NULL) {
        flow_problems_add(
            problems, where,
            "a hook is a function's name, or Lua code: a string or an array of lines");
        return FLOW_ELOAD;
    }
    char chunkname[600];
    snprintf(chunkname, sizeof chunkname, "=%s", where);
    hook_src_t h = {.text = text, .len = len, .params = params, .chunkname = chunkname};
    lua_pushcfunction(L, compile_hook);
    lua_pushlightuserdata(L, &h);
    int status = lua_pcall(L, 1, 1, 0);
    flow__free(joined);
    if (status != LUA_OK || h.status == LUA_ERRMEM) {
        lua_pop(L, 1);
        flow_problems_add(problems, where, "out of memory compiling the code (--lua-memory)");
        return FLOW_ELOAD;
    }
    if (h.status != LUA_OK) {
        int line;
        const char *msg = split_place(lua_tostring(L, -1), where, &line);
        char at[600];
        if (json_is_array(spec) && line > 0) {
            size_t k = (size_t)line - 1 < json_array_size(spec) ? (size_t)line - 1
                                                                : json_array_size(spec) - 1;
            snprintf(at, sizeof at, "%s/%zu", where, k);
        } else {
            snprintf(at, sizeof at, "%s", where);
        }
        add_problem(problems, at, FLOW_SCRIPT_AT_POINTER, line, msg);
        lua_pop(L, 1);
        return FLOW_ELOAD;
    }
    int rc = adopt(L, ref);
    lua_pop(L, 1);
    return rc;
}

int flow_script_freeze(flow_script_t *s, const char *where, flow_problems_t *problems) {
    if (s->frozen)
        return 0;
    s->frozen = 1;
    lua_pushcfunction(s->L, freeze_protected);
    if (lua_pcall(s->L, 0, 0, 0) != LUA_OK) {
        s->broken = 1;
        flow_problems_add(problems, where, "cannot freeze the Lua state: %s",
                          lua_type(s->L, -1) == LUA_TSTRING ? lua_tostring(s->L, -1)
                                                            : "out of memory");
        lua_pop(s->L, 1);
        return FLOW_ELOAD;
    }
    lua_gc(s->L, LUA_GCCOLLECT);
    s->base_used = s->used;
    return 0;
}

/* ---- without a document ---- */

int flow_script_eval(const flow_script_limits_t *lim, const char *code, size_t len, json_t *value,
                     json_t **out, flow_error_t *err) {
    static const char *const params[] = {"value", NULL};
    flow_script_t *s = NULL;
    flow_problems_t problems = FLOW_PROBLEMS_INIT;
    json_t *spec = json_stringn_nocheck(code, len);
    int ref, rc;
    *out = NULL;
    if (spec == NULL)
        return FLOW_ENOMEM;
    if ((rc = flow_script_new(lim, &s)) < 0)
        goto done;
    rc = flow_script_hook(s, spec, params, "code", 1, &problems, &ref);
    if (rc == 0)
        rc = flow_script_freeze(s, "code", &problems);
    if (rc == FLOW_ELOAD) {
        rc = flow__set_error(err, FLOW_ESCRIPT, "%s: %s",
                             problems.count ? problems.items[0].where : "code",
                             problems.count ? problems.items[0].message : "does not compile");
        goto done;
    }
    if (rc < 0)
        goto done;
    flow_script_call_t c = {.ref = ref, .args = {value}, .nargs = 1, .writable = 1, .hook = "eval"};
    rc = flow_script_call(s, &c, out, err);
done:
    flow_problems_clear(&problems);
    json_decref(spec);
    flow_script_unref(s);
    return rc;
}
