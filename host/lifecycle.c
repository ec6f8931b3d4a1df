/*
 * luahost: the plugin's own lifecycle — reset (drop every callback, keep
 * running), uninstall (QEMU unloads the plugin), exit (end the process) —
 * and visiting every vCPU.
 *
 * QEMU completes a reset or an uninstall later, at a point where no vCPU
 * runs translated code, and then calls the completion callback.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "luahost.h"

static LhHook *reset_done;          /* the script's completion callbacks */
static LhHook *uninstall_done;
static bool resetting;              /* from the request until its completion returned */

/* Takes the pending completion callback, if any, under the lock. */
static LhHook *take(LhHook **pending)
{
    LhHook *hook = *pending;

    *pending = NULL;
    return hook;
}

static void call_completion(LhHook *hook)
{
    if (hook != NULL) {
        lh_dispatch(hook, LH_NO_VCPU, NULL, NULL);
    }
}

/*
 * QEMU ignores a reset asked for in the completion (its own is still
 * running): one asked for there is refused as pending.
 */
static void on_reset_done(void)
{
    lh_lock();
    lh_streams_flush_all();     /* QEMU dropped the sites: nothing more comes */
    lh_hooks_forget();          /* except those registered since the request */
    lh_interval_forget();
    lh.reset_pending = false;   /* before registering them: that lets go of the lock */
    lh_hooks_start();
    /*
     * The lock is held from the completion's start to the end of the
     * reset, as the script sees it: another thread that asked as soon as
     * the completion returned was refused as pending.
     */
    call_completion(take(&reset_done));
    resetting = false;
    lh_unlock();
}

/*
 * After this returns QEMU unloads the plugin: no exit hooks will run, so
 * what the script wrote must reach its files now.
 */
static void on_uninstall_done(void)
{
    lh_interval_stop();
    lh_lock();
    lh.uninstalling = true;
    lh_streams_flush_all();
    call_completion(take(&uninstall_done));
    lh.uninstalled = true;
    if (lh.errors > 0) {
        /* no exit work runs after an uninstall: say it now */
        lh_report("%d callback error(s) before the uninstall (on_error=disable); luahost is "
                  "unloaded, so the exit status is the guest's", lh.errors);
    }
    fflush(NULL);
    lh_unlock();
}

static LhHook *check_request(lua_State *L, const char *name, const char *what)
{
    if (lh.installing) {
        lh_error(L, "luahost.%s cannot be called while the script loads "
                   "(call it from a hook; to refuse to run, raise an error)", name);
    }
    if (lh.uninstall_scope != 0) {
        lh_error(L, "luahost.%s: the plugin is already being uninstalled", name);
    }
    if (lh_on_interval_thread()) {
        lh_error(L, "luahost.%s cannot be called from an interval hook: QEMU completes it "
                   "on a vCPU (call it from a callback that runs on one)", name);
    }
    if (lua_isnoneornil(L, 1)) {
        return NULL;
    }
    return lh_hook_new(L, 1, 0, what);
}

/* raw.reset([fn]): drop every callback; fn() runs once QEMU has. */
static int reset(lua_State *L)
{
    LhHook *hook = check_request(L, "reset", "reset completion callback");

    if (resetting) {
        return lh_error(L, "luahost.reset: a reset is already pending");
    }
    resetting = true;
    lh.reset_pending = true;
    reset_done = hook;
    int depth = lh_release();   /* QEMU's plugin lock; it may complete at once, here */
    lh_qemu_reset(lh.id, on_reset_done);
    lh_reacquire(depth);
    return 0;
}

/*
 * dlclose leaves the plugin mapped from now on (RTLD_NODELETE): QEMU
 * unloads it as the uninstall completes, which may be while its code is
 * still running: at once, inside the very hook that asked, when QEMU has
 * no current vCPU (system mode exit hooks), or later on the interval
 * thread, waiting for the lock.
 */
static void keep_loaded(void)
{
    Dl_info self;

    if (dladdr((void *)keep_loaded, &self) != 0 && self.dli_fname != NULL) {
        void *handle = dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
        if (handle != NULL) {
            dlclose(handle);
        }
    }
}

/*
 * raw.uninstall([fn]): unload the plugin; fn() runs just before. Not
 * while a reset is pending: QEMU would assert when the reset completes
 * (its completion may ask for it).
 */
static int uninstall(lua_State *L)
{
    if (lh.reset_pending) {
        return lh_error(L, "luahost.uninstall: a reset is pending (call it from the reset's "
                           "completion function)");
    }
    LhHook *hook = check_request(L, "uninstall", "uninstall completion callback");

    lh.uninstall_scope = lh_thread()->live_epoch;
    uninstall_done = hook;
    keep_loaded();
    int depth = lh_release();   /* as for a reset */
    lh_qemu_uninstall(lh.id, on_uninstall_done);
    lh_reacquire(depth);
    return 0;
}

/*
 * raw.vcpu_for_each(fn): fn(vcpu_index) for every vCPU, now. QEMU holds
 * its plugin lock around the loop, so the Lua lock is let go before it
 * and taken again for each call, after it (docs/threading.md, "Lock
 * order"); a Lua error must not unwind through QEMU: the first error is
 * kept and raised once QEMU has returned. The loop's state is the
 * calling thread's: QEMU calls back on it.
 */
typedef struct ForEach {
    lua_State *L;
    int depth;              /* of the Lua lock, let go */
    bool failed;
} ForEach;
static __thread ForEach *for_each;

static void for_each_cb(unsigned int vcpu_index)
{
    ForEach *f = for_each;

    if (f == NULL || f->failed) {
        return;
    }
    lh_reacquire(f->depth);
    lua_pushvalue(f->L, 1);
    lua_pushinteger(f->L, vcpu_index);
    if (!lh_pcall_nested(f->L, 1, 0)) {
        f->failed = true;           /* the error, traced, stays on the stack */
    }
    lh_release();
}

static int vcpu_for_each(lua_State *L)
{
    ForEach f = { .L = L }, *outer = for_each;  /* fn may itself call vcpu_for_each */

    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    if (lh.uninstalled) {
        return 0;                   /* QEMU has forgotten the plugin */
    }
    for_each = &f;
    f.depth = lh_release();
    lh_qemu_vcpu_for_each(lh.id, for_each_cb);
    lh_reacquire(f.depth);
    for_each = outer;
    if (f.failed) {
        return lua_error(L);
    }
    return 0;
}

/*
 * raw.exit(status): the script's own request to end the process, the way
 * a C plugin calls exit(): QEMU's atexit handler then runs every plugin's
 * exit callbacks (the script's exit hooks included, on this thread: the
 * host lock is recursive) and the process ends with status.
 */
static int exit_process(lua_State *L)
{
    lua_Integer status = luaL_checkinteger(L, 1);

    if (lh.installing) {
        return lh_error(L, "luahost.exit cannot be called while the script loads "
                           "(to refuse to run, raise an error)");
    }
    luaL_argcheck(L, status >= 0 && status <= 255, 1, "exit status must be 0 to 255");
    fflush(NULL);
    lh.exiting = true;
    exit((int)status);
}

static const luaL_Reg lifecycle_functions[] = {
    { "exit", exit_process },
    { "reset", reset },
    { "uninstall", uninstall },
    { "vcpu_for_each", vcpu_for_each },
    { NULL, NULL },
};

void lh_open_lifecycle(lua_State *L, int raw)
{
    lh_set_functions(L, raw, lifecycle_functions);
}
