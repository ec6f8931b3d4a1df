/*
 * luahost: the lock around the Lua state, the one protected-call path
 * every entry into Lua takes, and the error policy.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "luahost.h"

LhRuntime lh;
int lh_u64_new_ref = LUA_NOREF;
int lh_u64_parts_ref = LUA_NOREF;

/*
 * Recursive, because a script may call into QEMU from a callback and QEMU
 * may call back synchronously on the same thread (vcpu_for_each, reset).
 */
void lh_lock(void)
{
    g_rec_mutex_lock(&lh.lock);
}

void lh_unlock(void)
{
    g_rec_mutex_unlock(&lh.lock);
}

/*
 * Errors always reach stderr: QEMU's log is off unless -d plugin is given.
 * A copy of it, taken at install: in user mode the guest shares QEMU's
 * file descriptors, and programs such as xz close their stderr before
 * exiting, which would lose what the host reports at exit.
 */
static FILE *report_stream;

void lh_open_report_stream(void)
{
    int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);

    report_stream = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (report_stream == NULL) {
        report_stream = stderr;
    }
}

FILE *lh_report_stream(void)
{
    return report_stream != NULL ? report_stream : stderr;
}

void lh_report(const char *fmt, ...)
{
    FILE *out = lh_report_stream();
    va_list ap;

    fputs("luahost: ", out);
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
    fflush(out);
}

/* As lua.c's msghandler: a traceback, also for non-string error objects. */
static int message_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);

    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
            return 1;
        }
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/*
 * Calls the function below its nargs arguments with a traceback handler.
 * On error reports "error in WHAT: message + traceback" and returns false,
 * leaving the stack as it was before the function was pushed.
 */
bool lh_pcall(lua_State *L, int nargs, int nresults, const char *what)
{
    int base = lua_gettop(L) - nargs;
    int status;

    lua_pushcfunction(L, message_handler);
    lua_insert(L, base);
    status = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    if (status != LUA_OK) {
        lh_report("error in %s: %s", what, lua_tostring(L, -1));
        lua_pop(L, 1);
        return false;
    }
    return true;
}

/*
 * The documented exit path when emulation must stop (a callback failed
 * under on_error=abort, or a script asked to stop): flush what was written
 * and end the process without running exit hooks on half-counted data.
 */
void lh_stop(int status)
{
    fflush(NULL);
    _exit(status);
}

/* Function definitions ("source:line") to their LhFunc. */
static GHashTable *funcs;

static LhFunc *func_for(lua_State *L, int fn_idx, const char *what)
{
    lua_Debug ar;
    char *key;
    LhFunc *func;

    lua_pushvalue(L, fn_idx);
    lua_getinfo(L, ">S", &ar);
    key = g_strdup_printf("%s:%d", ar.source, ar.linedefined);
    if (funcs == NULL) {
        funcs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    }
    func = g_hash_table_lookup(funcs, key);
    if (func == NULL) {
        func = g_new0(LhFunc, 1);
        func->what = what;
        g_hash_table_insert(funcs, key, func);
    } else {
        g_free(key);
    }
    return func;
}

/* The hooks are kept until exit: QEMU holds their pointers in its TBs. */
LhHook *lh_hook_new(lua_State *L, int fn_idx, int value_idx, const char *what)
{
    LhHook *hook;

    luaL_checktype(L, fn_idx, LUA_TFUNCTION);
    hook = g_new0(LhHook, 1);
    hook->func = func_for(L, fn_idx, what);
    lua_pushvalue(L, fn_idx);
    hook->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (value_idx != 0 && !lua_isnoneornil(L, value_idx)) {
        lua_pushvalue(L, value_idx);
        hook->value_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        hook->value_ref = LUA_NOREF;
    }
    hook->regs = QEMU_PLUGIN_CB_NO_REGS;
    return hook;
}

/*
 * The hook of an exec, conditional or memory callback: fn at fn_idx, its
 * value after it, and the register access asked for at regs_idx.
 */
LhHook *lh_callback_new(lua_State *L, int fn_idx, int regs_idx, const char *what)
{
    enum qemu_plugin_cb_flags regs = lh_check_regs(L, regs_idx);
    LhHook *hook = lh_hook_new(L, fn_idx, fn_idx + 1, what);

    hook->regs = regs;
    return hook;
}

bool lh_hook_disabled(LhHook *hook)
{
    return g_atomic_int_get(&hook->func->disabled);
}

/* Pushes the hook's function; false (nothing pushed) once it is disabled. */
bool lh_hook_push(lua_State *L, LhHook *hook)
{
    if (lh_hook_disabled(hook)) {
        return false;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, hook->fn_ref);
    return true;
}

/*
 * Calls a pushed hook with nargs arguments (its carried value, if any,
 * is appended) and applies the error policy.
 */
void lh_hook_call(LhHook *hook, int nargs)
{
    lua_State *L = lh.L;
    LhFunc *func = hook->func;

    if (hook->value_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, hook->value_ref);
        nargs++;
    }
    if (lh_pcall(L, nargs, 0, func->what)) {
        return;
    }
    if (lh.abort_on_error) {
        lh_report("stopping emulation (on_error=abort); exit hooks are not run");
        lh_stop(EXIT_FAILURE);
    }
    g_atomic_int_set(&func->disabled, 1);
    lh.errors++;
    lh_report("this %s is disabled (on_error=disable); the exit status will be 1", func->what);
}

/*
 * Every entry into Lua takes the lock and opens a scope: a fresh epoch
 * for the handles it is given, and the context that says what it may
 * touch. Scopes nest (a script's call into QEMU may call back on the same
 * thread).
 */
LhScope lh_enter(int vcpu, enum qemu_plugin_cb_flags regs, const char *what)
{
    lh_lock();
    LhScope saved = { .epoch = lh.live_epoch, .ctx = lh.ctx };

    lh.live_epoch = ++lh.next_epoch;
    lh.ctx.vcpu = vcpu;
    lh.ctx.regs = regs;
    lh.ctx.what = what;
    return saved;
}

void lh_leave(LhScope saved)
{
    lh.live_epoch = saved.epoch;
    lh.ctx = saved.ctx;
    lh_unlock();
}

/*
 * Raises an error located at the script's line: the first Lua frame up
 * the stack that is not the embedded runtime (lua/NAME.lua), so a check made
 * under one of the runtime's wrappers still names the caller's file:line.
 */
int lh_error(lua_State *L, const char *fmt, ...)
{
    lua_Debug ar;
    va_list ap;
    bool located = false;

    for (int level = 1; !located && lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        if (ar.currentline > 0 && strncmp(ar.source, "@lua/", 5) != 0) {
            lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
            located = true;
        }
    }
    if (!located) {
        lua_pushliteral(L, "");
    }
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    return lua_error(L);
}

/* Guest memory and code queries need QEMU's current vCPU. */
void lh_check_vcpu_context(lua_State *L, const char *what)
{
    if (lh.ctx.vcpu == LH_NO_VCPU) {
        lh_error(L, "%s needs a vCPU: call it from a callback that runs on a vCPU "
                   "(translation, execution, memory, syscall or vcpu init), not from %s",
                   what, lh.ctx.what);
    }
}

/* Registers: only where QEMU allows them (docs/api.md, "Registers"). */
void lh_check_regs_context(lua_State *L, bool write)
{
    enum qemu_plugin_cb_flags need = write ? QEMU_PLUGIN_CB_RW_REGS : QEMU_PLUGIN_CB_R_REGS;

    if (lh.ctx.vcpu == LH_NO_VCPU || lh.ctx.regs == QEMU_PLUGIN_CB_NO_REGS) {
        lh_error(L, "cannot %s registers in %s: register it with regs=\"%s\" "
                   "(or use a vcpu init, syscall or discontinuity hook)",
                   write ? "write" : "read", lh.ctx.what, write ? "rw" : "r");
    }
    if (lh.ctx.regs < need) {
        lh_error(L, "cannot write registers in %s: it was registered with regs=\"r\", "
                   "not regs=\"rw\"", lh.ctx.what);
    }
}

/* Handle kinds are named with their article: "a tb", "an insn". */
void lh_push_handle(lua_State *L, void *ptr, const char *mt)
{
    LhHandle *h = lua_newuserdata(L, sizeof(*h));

    h->ptr = ptr;
    h->epoch = lh.live_epoch;
    luaL_getmetatable(L, mt);
    lua_setmetatable(L, -2);
}

void *lh_check_handle(lua_State *L, int idx, const char *mt, const char *kind)
{
    LhHandle *h = luaL_checkudata(L, idx, mt);

    if (h->epoch != lh.live_epoch) {
        lh_error(L, "attempt to use %s handle after the callback that provided it returned", kind);
    }
    return h->ptr;
}

/* A metatable whose __index is the method table, as liolib's FILE*. */
void lh_new_type(lua_State *L, const char *mt, const luaL_Reg *methods, const luaL_Reg *meta)
{
    luaL_newmetatable(L, mt);
    if (meta != NULL) {
        luaL_setfuncs(L, meta, 0);
    }
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
