/* script_int.h: what script.c (the state, the sandbox, calls) and script_json.c (JSON proxies and
 * conversions, the json/yaml/fence/log functions) share. */
#ifndef FLOW_SCRIPT_INT_H
#define FLOW_SCRIPT_INT_H

#include <lauxlib.h>
#include <lua.h>

#include "internal.h"
#include "script.h"

/* The work units the budget charges besides instructions: an instruction per this many bytes a C
 * function scans or the allocator hands out (and per table element moved or sorted). */
#define FLOW__SCRIPT_BYTES_PER_UNIT 32

/* Something a call may change that is put back after it: an upvalue of a function (a local of the
 * chunk), or a metamethod field kept in a frozen table. Refs are in the registry. */
typedef struct restore_rec {
    int field; /* 0: owner is a function and slot its upvalue; 1: owner is a table and slot a key's
                  ref */
    int owner;
    int slot;
    int val; /* the value it had when frozen */
} restore_rec_t;

struct flow_script {
    lua_State *L;
    unsigned refs;
    flow_script_limits_t lim;
    size_t used;          /* bytes the state holds (its allocator counts them) */
    size_t base_used;     /* what it held once frozen: calls that grow it much are collected */
    int env;              /* registry ref of the sandbox's globals */
    int mt_obj, mt_arr;   /* registry refs: metatables of object and array proxies */
    int mt_jarr, mt_jobj; /* registry refs: the marks json.array() and json.object() set */
    int argpool[8];       /* registry refs: the proxies calls pass their arguments in, reused */
    int hooks;            /* registry ref of the list of hooks (functions), for freezing */
    int anchor; /* registry ref of the first function loaded: every chunk shares its _ENV */
    int frozen;
    int broken; /* freezing failed: no call may run */
    /* the call in progress */
    int in_call;
    int64_t remaining; /* instructions left */
    uint64_t budget;
    uint64_t deadline_ns; /* uv_hrtime() past which the call stops; 0 until the hook first runs */
    int grain;            /* instructions between two runs of the count hook */
    int stopped;          /* 0, or why the hook stops the call: STOP_BUDGET, STOP_TIME */
    int over;             /* an allocation was refused for the memory cap */
    char stop_at[160];    /* where the hook stopped it: "code:12" */
    uint32_t gen;         /* proxies made by an earlier call are stale */
    json_t **arena;       /* the references this call's proxies hold */
    size_t narena, arena_cap;
    int64_t json_bytes;  /* JSON this call added (estimated), against lim.memory */
    flow_ctx_t *ctx;     /* for log(...) */
    restore_rec_t *recs; /* what a call may change and is put back after it */
    size_t nrecs, recs_cap;
    int nfields; /* recs with field set */
};

enum { STOP_BUDGET = 1, STOP_TIME = 2 };

/* The script of a state (kept in its extra space). */
static inline flow_script_t *flow__script_of(lua_State *L) {
    return *(flow_script_t **)lua_getextraspace(L);
}

/* script.c: charges n units of work to the call's budget, and stops it (a Lua error) when it ran
 * out. */
void flow__script_charge(lua_State *L, flow_script_t *s, uint64_t units);

/* script.c: the raw table behind a frozen table at idx, pushed (1), or nothing pushed (0) when the
 * value is not one. */
int flow__script_frozen_raw(lua_State *L, int idx);

/* script_json.c */
/* Adds the json, yaml, fence and log globals to the table at the top of the stack and makes the
 * proxies' metatables. Raises on memory errors (call it protected). */
void flow__script_open_json(lua_State *L, flow_script_t *s);
/* Pushes v (borrowed) as a Lua value: scalars as values (null as json.null), containers as proxies,
 * read-only when ro. With hold, the call's arena keeps a reference (values reached inside the call,
 * which the hook may delete from the store while it holds them); without, the caller keeps v alive
 * for the call. Raises on memory errors. */
void flow__script_push(lua_State *L, flow_script_t *s, json_t *v, int ro, int hold);
/* The same for the slot-th argument of a call: a container's proxy is reused from call to call (a
 * call cannot keep one past its end, so no one sees it change). */
void flow__script_push_arg(lua_State *L, flow_script_t *s, json_t *v, int ro, unsigned slot);
/* The Lua value at idx as JSON, a new reference; replacing (may be NULL) is what it will replace,
 * which decides what an empty unmarked table becomes. Raises when it is not JSON. */
json_t *flow__script_to_json(lua_State *L, flow_script_t *s, int idx, json_t *replacing);
/* table.insert (remove 0) and table.remove (remove 1) on an array proxy at 1, done on the JSON
 * array itself (no copies); returns their results' count, or -1 when the table is not a proxy. */
int flow__script_array_op(lua_State *L, flow_script_t *s, int remove);
/* Drops the arena's references and makes this call's proxies stale. */
void flow__script_release(flow_script_t *s);
/* The error value at idx as text for a message (strings as they are; JSON as JSON). Raises. */
const char *flow__script_error_text(lua_State *L, int idx);

#endif
