/*
 * luahost: scoreboard entries ("luahost.scoreboard").
 *
 * A scoreboard is QEMU's per-vCPU array of structs; an entry is one u64
 * field of it, one value per vCPU. Inline ops write entries without ever
 * entering Lua. QEMU may write an entry for as long as any translated
 * block refers to it, so scoreboards are never freed before exit: every
 * entry stays anchored in the registry.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "luahost.h"

enum { CACHE_LINE = 64 };   /* bytes; x86_64 and aarch64 hosts */

typedef struct Entry {
    const char *type;   /* LH_SCOREBOARD_MT: checked by it (scope.c) */
    struct qemu_plugin_scoreboard *score;
    size_t offset;
} Entry;

static int anchors_ref = LUA_NOREF;

qemu_plugin_u64 lh_check_entry(lua_State *L, int idx)
{
    Entry *e = lh_check_udata(L, idx, LH_SCOREBOARD_MT);
    qemu_plugin_u64 entry = { .score = e->score, .offset = e->offset };

    return entry;
}

/* Whether idx is an entry, and which: for arguments that may be one. */
bool lh_test_entry(lua_State *L, int idx, qemu_plugin_u64 *entry)
{
    Entry *e = lh_test_udata(L, idx, LH_SCOREBOARD_MT);

    if (e == NULL) {
        return false;
    }
    entry->score = e->score;
    entry->offset = e->offset;
    return true;
}

/* The arguments of every :inline(op, entry, imm) method, from idx on. */
LhInline lh_check_inline(lua_State *L, int idx)
{
    static const char *const names[] = { "add", "store", NULL };
    static const enum qemu_plugin_op ops[] = {
        QEMU_PLUGIN_INLINE_ADD_U64, QEMU_PLUGIN_INLINE_STORE_U64,
    };
    LhInline in;

    in.op = ops[luaL_checkoption(L, idx, NULL, names)];
    in.entry = lh_check_entry(L, idx + 1);
    in.imm = lh_check_u64(L, idx + 2);
    return in;
}

/*
 * The arguments of every :on_exec_if(entry, cond, imm, fn [, value [,
 * regs]]) method, from idx on: the condition and the callback's hook.
 */
LhCondition lh_check_condition(lua_State *L, int idx, const char *what)
{
    LhCondition c;

    c.entry = lh_check_entry(L, idx);
    c.cond = lh_check_cond(L, idx + 1);
    c.imm = lh_check_u64(L, idx + 2);
    c.hook = lh_callback_new(L, idx + 3, idx + 5, what);
    return c;
}

static unsigned int check_vcpu(lua_State *L, int idx)
{
    lua_Integer vcpu = luaL_checkinteger(L, idx);
    int n = qemu_plugin_num_vcpus();

    if (vcpu < 0 || vcpu >= n) {
        lh_error(L, "vCPU index %d out of range (%d vCPUs)", (int)vcpu, n);
    }
    return (unsigned int)vcpu;
}

/*
 * Each vCPU's fields are padded to whole cache lines. Packed, the same
 * field of two vCPUs would share a line, and their inline adds, one per
 * block, would take it from each other on every block (false sharing):
 * ips.lua with 2 vCPUs ran 1.2x ips.c that way.
 */
static size_t vcpu_stride(size_t size)
{
    return (size + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
}

/* raw.scoreboard_new(n): a scoreboard of n u64 fields; returns n entries. */
static int scoreboard_new(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    struct qemu_plugin_scoreboard *score;

    luaL_argcheck(L, n >= 1 && n <= 64, 1, "a scoreboard has 1 to 64 fields");
    int depth = lh_release();   /* QEMU's plugin lock (docs/threading.md) */
    score = qemu_plugin_scoreboard_new(vcpu_stride((size_t)n * sizeof(uint64_t)));
    lh_reacquire(depth);
    if (anchors_ref == LUA_NOREF) {
        lua_newtable(L);
        anchors_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    luaL_checkstack(L, (int)n + 3, "too many scoreboard fields");
    lua_rawgeti(L, LUA_REGISTRYINDEX, anchors_ref);
    int anchors = lua_gettop(L);
    lua_Integer anchored = (lua_Integer)lh_rawlen(L, anchors);
    luaL_getmetatable(L, LH_SCOREBOARD_MT);
    int mt = lua_gettop(L);
    for (lua_Integer i = 0; i < n; i++) {
        Entry *e = lua_newuserdata(L, sizeof(*e));
        e->type = LH_SCOREBOARD_MT;
        e->score = score;
        e->offset = (size_t)i * sizeof(uint64_t);
        lua_pushvalue(L, mt);
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_rawseti(L, anchors, (int)(anchored + i + 1));
    }
    lua_remove(L, mt);
    lua_remove(L, anchors);
    return (int)n;
}

static int entry_get(lua_State *L)
{
    qemu_plugin_u64 entry = lh_check_entry(L, 1);

    lh_push_u64(L, qemu_plugin_u64_get(entry, check_vcpu(L, 2)));
    return 1;
}

static int entry_set(lua_State *L)
{
    qemu_plugin_u64 entry = lh_check_entry(L, 1);

    qemu_plugin_u64_set(entry, check_vcpu(L, 2), lh_check_u64(L, 3));
    return 0;
}

static int entry_add(lua_State *L)
{
    qemu_plugin_u64 entry = lh_check_entry(L, 1);

    qemu_plugin_u64_add(entry, check_vcpu(L, 2), lh_check_u64(L, 3));
    return 0;
}

/* The sum over all vCPUs, wrapping modulo 2^64 as QEMU's does. */
static int entry_sum(lua_State *L)
{
    lh_push_u64(L, qemu_plugin_u64_sum(lh_check_entry(L, 1)));
    return 1;
}

static const luaL_Reg entry_methods[] = {
    { "get", entry_get },
    { "set", entry_set },
    { "add", entry_add },
    { "sum", entry_sum },
    { NULL, NULL },
};

static const luaL_Reg scoreboard_functions[] = {
    { "scoreboard_new", scoreboard_new },
    { NULL, NULL },
};

void lh_open_scoreboard(lua_State *L, int raw)
{
    lh_new_type(L, LH_SCOREBOARD_MT, entry_methods, NULL);
    lh_set_functions(L, raw, scoreboard_functions);
}
