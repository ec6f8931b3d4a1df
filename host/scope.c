/*
 * luahost: what a running callback may touch. A scope gives the handles
 * made in it an epoch of their own and says which vCPU and registers the
 * callback has; the checks below refuse what the scope does not allow,
 * with errors located at the script's line. Also the argument checks
 * shared by the type files.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <stdarg.h>
#include <string.h>

#include "luahost.h"

/*
 * Every entry into Lua takes the lock and opens a scope: a fresh epoch
 * for the handles it is given, and the context that says what it may
 * touch. Scopes nest (a script's call into QEMU may call back on the same
 * thread), and are the calling thread's own: another thread's callbacks
 * may run while this one waits in QEMU with the lock let go.
 */
LhScope lh_enter(int vcpu, enum qemu_plugin_cb_flags regs, const char *what)
{
    lh_lock();
    LhThread *t = lh_thread();
    LhScope saved = { .epoch = t->live_epoch, .ctx = t->ctx };

    t->live_epoch = ++lh.next_epoch;
    t->ctx.vcpu = vcpu;
    t->ctx.regs = regs;
    t->ctx.what = what;
    return saved;
}

void lh_leave(LhScope saved)
{
    LhThread *t = lh_thread();

    t->live_epoch = saved.epoch;
    t->ctx = saved.ctx;
    lh_unlock();
}

/*
 * Pushes "file:line: " of the first Lua frame from level up the stack
 * that is not the embedded runtime (lua/NAME.lua), so that a check made
 * under one of the runtime's wrappers still names the caller's line; ""
 * when there is none.
 */
void lh_push_where(lua_State *L, int level)
{
    lua_Debug ar;

    for (; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        if (ar.currentline > 0 && strncmp(ar.source, "@lua/", 5) != 0) {
            lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
            return;
        }
    }
    lua_pushliteral(L, "");
}

/* Raises an error located at the script's line (lh_push_where). */
int lh_error(lua_State *L, const char *fmt, ...)
{
    va_list ap;

    lh_push_where(L, 1);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    return lua_error(L);
}

/* Environmental refusals: nil and a message, for the script to handle. */
int lh_fail(lua_State *L, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

/* Guest memory and code queries need QEMU's current vCPU. */
void lh_check_vcpu_context(lua_State *L, const char *what)
{
    const LhContext *ctx = &lh_thread()->ctx;

    if (ctx->vcpu == LH_NO_VCPU) {
        lh_error(L, "%s needs a vCPU: call it from a callback that runs on a vCPU "
                   "(translation, execution, memory, syscall or vcpu init), not from %s",
                   what, ctx->what);
    }
}

/* Registers: only where QEMU allows them (docs/api.md, "Registers"). */
void lh_check_regs_context(lua_State *L, bool write)
{
    const LhContext *ctx = &lh_thread()->ctx;
    enum qemu_plugin_cb_flags need = write ? QEMU_PLUGIN_CB_RW_REGS : QEMU_PLUGIN_CB_R_REGS;

    if (ctx->vcpu == LH_NO_VCPU || ctx->regs == QEMU_PLUGIN_CB_NO_REGS) {
        lh_error(L, "cannot %s registers in %s: register it with regs=\"%s\" "
                   "(or use a vcpu init, syscall or discontinuity hook)",
                   write ? "write" : "read", ctx->what, write ? "rw" : "r");
    }
    if (ctx->regs < need) {
        lh_error(L, "cannot write registers in %s: it was registered with regs=\"r\", "
                   "not regs=\"rw\"", ctx->what);
    }
}

const char LH_TB_MT[] = "luahost.tb";
const char LH_INSN_MT[] = "luahost.insn";
const char LH_SCOREBOARD_MT[] = "luahost.scoreboard";
const char LH_MEM_MT[] = "luahost.mem";
const char LH_HWADDR_MT[] = "luahost.hwaddr";
const char LH_CLOCK_MT[] = "luahost.clock";
const char LH_STREAM_MT[] = "luahost.stream";
const char LH_CALLSTACK_MT[] = "luahost.callstack";
const char LH_FPCALLS_MT[] = "luahost.fpcalls";
const char LH_TALLY_MT[] = "luahost.tally";
const char LH_LOCKSTEP_MT[] = "luahost.lockstep";
const char LH_INSN_MIX_MT[] = "luahost.insn_mix";

/*
 * The metatables lh_new_type made, by the address of their name (the
 * LH_*_MT arrays): luaL_checkudata and luaL_getmetatable find the
 * metatable by name in the registry, hashing and comparing the string,
 * on every method call and every handle made.
 */
static struct {
    const char *name;
    const void *mt;
    int ref;
} types[16];
static int n_types;

static void push_metatable(lua_State *L, const char *mt)
{
    for (int i = 0; i < n_types; i++) {
        if (types[i].name == mt) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, types[i].ref);
            return;
        }
    }
    luaL_getmetatable(L, mt);
}

void lh_push_handle(lua_State *L, void *ptr, const char *mt)
{
    LhHandle *h = lua_newuserdata(L, sizeof(*h));

    h->ptr = ptr;
    h->epoch = lh_thread()->live_epoch;
    h->type = mt;
    push_metatable(L, mt);
    lua_setmetatable(L, -2);
}

/*
 * A userdata whose first word is mt's address, or NULL. Handles, boxes
 * and scoreboard entries start with their type's LH_*_MT: no script can
 * write a userdata's bytes, and no other userdata a script can reach
 * starts with an LH_*_MT (the others start with a heap pointer), so the
 * word tells the type where the metatable's fetch and compare cost
 * several times as much, on every method call.
 */
static void *tagged(lua_State *L, int idx, const char *mt)
{
    const char *const *p = lua_touserdata(L, idx);

    if (p != NULL && (size_t)lh_rawlen(L, idx) >= sizeof(*p) && *p == mt) {
        return (void *)p;
    }
    return NULL;
}

/* luaL_testudata, without its lookup by name for a type lh_new_type made. */
static void *by_metatable(lua_State *L, int idx, const char *mt)
{
    void *p = lua_touserdata(L, idx);

    if (p == NULL) {
        return NULL;
    }
    for (int i = 0; i < n_types; i++) {
        if (types[i].name == mt) {
            const void *have = NULL;
            if (lua_getmetatable(L, idx)) {
                have = lua_topointer(L, -1);
                lua_pop(L, 1);
            }
            return have == types[i].mt ? p : NULL;
        }
    }
    return luaL_testudata(L, idx, mt);      /* a type made elsewhere */
}

/* luaL_testudata, by the first word where it can. */
void *lh_test_udata(lua_State *L, int idx, const char *mt)
{
    void *p = tagged(L, idx, mt);

    return p != NULL ? p : by_metatable(L, idx, mt);
}

/* luaL_checkudata, the same way. */
void *lh_check_udata(lua_State *L, int idx, const char *mt)
{
    void *p = lh_test_udata(L, idx, mt);

    return p != NULL ? p : luaL_checkudata(L, idx, mt);     /* the error */
}

/*
 * An object the host keeps (a stream, a tally, ...) as a Lua value: a
 * userdata holding its pointer after its type, so that its methods check
 * it by that word as a handle's are.
 */
typedef struct LhBox {
    const char *type;
    void *ptr;
} LhBox;

void lh_push_box(lua_State *L, void *ptr, const char *mt)
{
    LhBox *b = lua_newuserdata(L, sizeof(*b));

    b->type = mt;
    b->ptr = ptr;
    push_metatable(L, mt);
    lua_setmetatable(L, -2);
}

/* What the box of type mt at idx holds; an error if idx is none. */
void *lh_check_box(lua_State *L, int idx, const char *mt)
{
    return ((LhBox *)lh_check_udata(L, idx, mt))->ptr;
}

/* Handle kinds are named with their article: "a tb", "an insn". */
static void *live_handle(lua_State *L, const LhHandle *h, const char *kind)
{
    if (h->epoch != lh_thread()->live_epoch) {
        lh_error(L, "attempt to use %s handle after the callback that provided it returned", kind);
    }
    return h->ptr;
}

void *lh_check_handle(lua_State *L, int idx, const char *mt, const char *kind)
{
    LhHandle *h = tagged(L, idx, mt);   /* else the metatable's check, and its error */

    return live_handle(L, h != NULL ? h : lh_check_udata(L, idx, mt), kind);
}

/* The same for a handle whose type the host made sure of (a closure's upvalue). */
void *lh_live_handle(lua_State *L, int idx, const char *kind)
{
    return live_handle(L, lua_touserdata(L, idx), kind);
}

/* What a handle of type mt at idx points to (an error if not live), NULL if idx is no such handle. */
void *lh_test_handle(lua_State *L, int idx, const char *mt, const char *kind)
{
    LhHandle *h = tagged(L, idx, mt);

    if (h == NULL) {
        h = by_metatable(L, idx, mt);
    }
    return h != NULL ? live_handle(L, h, kind) : NULL;
}

/* A metatable whose __index is the method table, as liolib's FILE*. */
void lh_new_type(lua_State *L, const char *mt, const luaL_Reg *methods, const luaL_Reg *meta)
{
    luaL_newmetatable(L, mt);
    if (n_types < (int)G_N_ELEMENTS(types)) {
        types[n_types].name = mt;
        types[n_types].mt = lua_topointer(L, -1);
        lua_pushvalue(L, -1);
        types[n_types++].ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    if (meta != NULL) {
        luaL_setfuncs(L, meta, 0);
    }
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

/* Adds fns to the raw table at index raw. */
void lh_set_functions(lua_State *L, int raw, const luaL_Reg *fns)
{
    lua_pushvalue(L, raw);
    luaL_setfuncs(L, fns, 0);
    lua_pop(L, 1);
}

/*
 * The regs argument of exec and memory callbacks: nil, "r", "rw", or
 * "pc" (read and write registers and set the PC: QEMU 11.0, API 6).
 */
enum qemu_plugin_cb_flags lh_check_regs(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx)) {     /* the usual case, and one per instruction */
        return QEMU_PLUGIN_CB_NO_REGS;
    }
    if (lua_type(L, idx) == LUA_TSTRING && strcmp(lua_tostring(L, idx), "pc") == 0) {
#if LH_HAVE_SET_PC
        return QEMU_PLUGIN_CB_RW_REGS_PC;
#else
        luaL_argerror(L, idx, lua_pushfstring(L, "regs=\"pc\" (luahost.set_pc) needs QEMU 11.0 "
                      "(plugin API 6); this luahost was built for API %d", LH_API));
#endif
    }
    static const char *const names[] = { "none", "r", "rw", NULL };
    static const enum qemu_plugin_cb_flags flags[] = {
        QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS,
    };

    return flags[luaL_checkoption(L, idx, "none", names)];
}

enum qemu_plugin_cond lh_check_cond(lua_State *L, int idx)
{
    static const char *const names[] = {
        "never", "always", "eq", "ne", "lt", "le", "gt", "ge", NULL,
    };
    static const enum qemu_plugin_cond conds[] = {
        QEMU_PLUGIN_COND_NEVER, QEMU_PLUGIN_COND_ALWAYS, QEMU_PLUGIN_COND_EQ,
        QEMU_PLUGIN_COND_NE, QEMU_PLUGIN_COND_LT, QEMU_PLUGIN_COND_LE,
        QEMU_PLUGIN_COND_GT, QEMU_PLUGIN_COND_GE,
    };

    return conds[luaL_checkoption(L, idx, NULL, names)];
}

enum qemu_plugin_mem_rw lh_check_rw(lua_State *L, int idx)
{
    static const char *const names[] = { "r", "w", "rw", NULL };
    static const enum qemu_plugin_mem_rw rws[] = {
        QEMU_PLUGIN_MEM_R, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW,
    };

    if (lua_isnoneornil(L, idx)) {
        return QEMU_PLUGIN_MEM_RW;      /* most calls: luaL_checkoption's strcmp for nothing */
    }
    return rws[luaL_checkoption(L, idx, NULL, names)];
}
