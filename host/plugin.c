/*
 * luahost: the plugin entry point.
 *
 * qemu_plugin_install makes the Lua state, fills the private raw table
 * with the host's mechanisms and hands it, with the plugin arguments, to
 * the embedded boot chunk (lua/boot.lua), which builds the public API and
 * loads the script. If that fails, QEMU refuses the plugin.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "luahost.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

/* raw.load_embedded(name): the compiled chunk "@lua/NAME.lua". */
static int load_embedded(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);

    for (const LhEmbedded *e = lh_embedded; e->name != NULL; e++) {
        if (strcmp(e->name, name) == 0) {
            const char *chunkname = lua_pushfstring(L, "@lua/%s.lua", name);
            if (luaL_loadbuffer(L, e->source, e->size, chunkname) != LUA_OK) {
                return lua_error(L);
            }
            return 1;
        }
    }
    return lh_error(L, "no embedded module '%s'", name);
}

/*
 * QEMU's log goes to fd 2 unless -D names a file; a guest that closed or
 * moved its stderr (ls, sort and xz close it before exiting) would take
 * the script's output with it, so fd 2 is QEMU's own stderr again while
 * QEMU writes.
 */
static int outs(lua_State *L)
{
    const char *text = luaL_checkstring(L, 1);
    int guest_fd2 = lh_stderr_restore();

    qemu_plugin_outs(text);
    lh_stderr_put_back(guest_fd2);
    return 0;
}

/* raw.warn(text): one line on stderr (the host's copy of it), "luahost: warning: text". */
static int warn(lua_State *L)
{
    lh_report("warning: %s", luaL_checkstring(L, 1));
    return 0;
}

static int set_error_policy(lua_State *L)
{
    static const char *const policies[] = { "abort", "disable", NULL };

    lh.abort_on_error = luaL_checkoption(L, 1, NULL, policies) == 0;
    return 0;
}

/* Under LuaJIT: the converters compat.h uses for values above 2^53. */
static int set_u64_converters(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 1);
    lh_u64_new_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 2);
    lh_u64_parts_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/*
 * raw.file_kind(path): "file", "directory", "fifo", "socket", "device"
 * or "other", or nil and why. Boot asks before opening a script: opening
 * a FIFO would block until something writes to it.
 */
static int file_kind(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;

    if (stat(path, &st) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        return 2;
    }
    if (S_ISREG(st.st_mode)) {
        lua_pushliteral(L, "file");
    } else if (S_ISDIR(st.st_mode)) {
        lua_pushliteral(L, "directory");
    } else if (S_ISFIFO(st.st_mode)) {
        lua_pushliteral(L, "fifo");
    } else if (S_ISSOCK(st.st_mode)) {
        lua_pushliteral(L, "socket");
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        lua_pushliteral(L, "device");
    } else {
        lua_pushliteral(L, "other");
    }
    return 1;
}

/* raw.getpid(): the process's id, which changes in a forked child. */
static int get_pid(lua_State *L)
{
    lua_pushinteger(L, getpid());
    return 1;
}

static int num_vcpus(lua_State *L)
{
    lua_pushinteger(L, qemu_plugin_num_vcpus());
    return 1;
}

static void set_string(lua_State *L, int t, const char *key, const char *value)
{
    if (value != NULL) {
        lua_pushstring(L, value);
        lua_setfield(L, t, key);
    }
}

static void set_integer(lua_State *L, int t, const char *key, lua_Integer value)
{
    lua_pushinteger(L, value);
    lua_setfield(L, t, key);
}

/* What QEMU told us, and where the plugin and its Lua files live. */
static void push_info(lua_State *L, const qemu_info_t *info)
{
    Dl_info self;
    int t;

    lua_newtable(L);
    t = lua_gettop(L);
    set_string(L, t, "target_name", info->target_name);
    set_integer(L, t, "version_min", info->version.min);
    set_integer(L, t, "version_cur", info->version.cur);
    set_integer(L, t, "plugin_version", QEMU_PLUGIN_VERSION);
    lua_pushboolean(L, info->system_emulation);
    lua_setfield(L, t, "system_emulation");
    if (info->system_emulation) {
        set_integer(L, t, "smp_vcpus", info->system.smp_vcpus);
        set_integer(L, t, "max_vcpus", info->system.max_vcpus);
    }
    set_string(L, t, "lua_flavour", LH_LUAJIT ? "luajit" : "lua5.4");
    /* dladdr gives the path as QEMU passed it to dlopen, maybe relative. */
    if (dladdr((void *)qemu_plugin_install, &self) != 0) {
        char *path = realpath(self.dli_fname, NULL);
        set_string(L, t, "plugin_path", path != NULL ? path : self.dli_fname);
        free(path);
    }
    char *cwd = g_get_current_dir();
    set_string(L, t, "cwd", cwd);
    g_free(cwd);
    set_string(L, t, "source_root", LH_SOURCE_ROOT);
    /* resolved as plugin_path is, so a symlinked build tree compares equal */
    char *build_root = realpath(LH_BUILD_ROOT, NULL);
    set_string(L, t, "build_root", build_root != NULL ? build_root : LH_BUILD_ROOT);
    free(build_root);
    set_string(L, t, "datadir", LH_DATADIR);
}

/*
 * What this build can do beyond QEMU 10.0: set from the header it was
 * built against (meson.build), which is also the oldest QEMU it loads in.
 */
static void push_features(lua_State *L)
{
    static const char *const api5[] = {
        "write_register", "write_memory", "read_memory_hwaddr",
        "write_memory_hwaddr", "translate_vaddr", NULL,
    };

    lua_newtable(L);
    for (int i = 0; api5[i] != NULL; i++) {
        lua_pushboolean(L, LH_HAVE_API5);
        lua_setfield(L, -2, api5[i]);
    }
    lua_pushboolean(L, LH_HAVE_DISCON);
    lua_setfield(L, -2, "discontinuity");
    lua_pushboolean(L, LH_HAVE_SET_PC);
    lua_setfield(L, -2, "set_pc");
    lua_pushboolean(L, LH_HAVE_READONLY_REGS);
    lua_setfield(L, -2, "readonly_registers");
    lua_pushboolean(L, LH_HAVE_SYSCALL_FILTER);
    lua_setfield(L, -2, "syscall_filter");
}

static const luaL_Reg raw_functions[] = {
    { "load_embedded", load_embedded },
    { "outs", outs },
    { "warn", warn },
    { "set_error_policy", set_error_policy },
    { "set_u64_converters", set_u64_converters },
    { "num_vcpus", num_vcpus },
    { "getpid", get_pid },
    { "file_kind", file_kind },
    { "message_handler", lh_message_handler },
    { NULL, NULL },
};

static void push_raw(lua_State *L, const qemu_info_t *info, int argc, char **argv)
{
    int raw;

    lua_newtable(L);
    raw = lua_gettop(L);
    luaL_setfuncs(L, raw_functions, 0);
    push_info(L, info);
    lua_setfield(L, raw, "info");
    lua_newtable(L);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, raw, "argv");
    lh_open_hooks(L, raw);
    lh_open_interval(L, raw);
    lh_open_tb(L, raw);
    lh_open_insn(L, raw);
    lh_open_scoreboard(L, raw);
    lh_open_mem(L, raw);
    lh_open_registers(L, raw);
    lh_open_guest(L, raw);
    lh_open_clock(L, raw);
    lh_open_lifecycle(L, raw);
    lh_open_limits(L, raw);
    lh_open_stream(L, raw);
    lh_open_callstack(L, raw);
    lh_open_fpcalls(L, raw);
    lh_open_blocks(L, raw);
    lh_open_shadow(L, raw);
    lh_open_tally(L, raw);
    lh_open_lockstep(L, raw);
    lh_open_insn_mix(L, raw);
    lh_open_modules(L, raw, info);
    lh_open_process(L, raw, info);
    lh_open_thread_exits(info);
    push_features(L);
    lua_setfield(L, raw, "features");
}

/*
 * The function that loads the scripts of one -plugin: boot returns it
 * after loading the first plugin's, and a later -plugin of this same
 * plugin (QEMU dlopens the library once and installs it again) runs it
 * with its arguments. Its scripts share the Lua state, the lock and the
 * QEMU callbacks of the first install.
 */
static int start_scripts_ref = LUA_NOREF;

/*
 * Calls the boot chunk's result or start_scripts with what is on the
 * stack: they return true, or nil and a message for the user's mistakes
 * (missing script, syntax error, bad argument); a runtime error while a
 * script loads comes with its traceback.
 */
static bool started(lua_State *L)
{
    if (!lh_pcall(L, 1, 2, "the embedded runtime")) {
        return false;
    }
    if (!lua_toboolean(L, -2)) {
        lh_report("%s", lua_tostring(L, -1));
        lua_pop(L, 2);
        return false;
    }
    if (lua_isfunction(L, -1)) {
        start_scripts_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return true;
}

static bool boot(lua_State *L, const qemu_info_t *info, int argc, char **argv)
{
    lua_pushcfunction(L, load_embedded);
    lua_pushliteral(L, "boot");
    if (!lh_pcall(L, 1, 1, "the embedded runtime")) {
        return false;
    }
    push_raw(L, info, argc, argv);
    return started(L);
}

static bool start_more(lua_State *L, int argc, char **argv)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, start_scripts_ref);
    lua_createtable(L, argc, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return started(L);
}

/* An error outside any protected call: a bug of the host's; say so and stop. */
static int panic(lua_State *L)
{
    lh_report("Lua error outside a protected call (a bug in luahost): %s",
              lua_isstring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
    abort();
}

/*
 * QEMU loads plugins with local symbols, so Lua's C API is not visible
 * to C modules a script requires (lua-cjson, lfs): they would fail with
 * "undefined symbol: lua_gettop". Promote the already-loaded Lua library
 * to global scope.
 */
static void export_lua_symbols(void)
{
    Dl_info lib;

    if (dladdr((void *)lua_gettop, &lib) != 0 && lib.dli_fname != NULL) {
        void *handle = dlopen(lib.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
        if (handle != NULL) {
            dlclose(handle);    /* drops the reference NOLOAD took; the library stays */
        }
    }
}

/*
 * Loads the scripts of install; true if all loaded. A plugin that QEMU
 * refuses leaves nothing behind to run: its registrations wait for a
 * successful load (hooks.c), and after a later -plugin is refused, QEMU
 * exits without running the guest and the host's exit work is skipped.
 */
static bool load_scripts(bool first, const qemu_info_t *info, int argc, char **argv)
{
    bool ok;

    LhScope saved = lh_enter(LH_NO_VCPU, QEMU_PLUGIN_CB_NO_REGS, "the main chunk");
    lua_State *L = lh_thread()->L;

    lh.installing = true;
    ok = first ? boot(L, info, argc, argv) : start_more(L, argc, argv);
    lh.installing = false;
    if (ok) {
        lh_hooks_start();
        lh_interval_start();
    } else {
        lh.refused = true;
    }
    lh_leave(saved);
    return ok;
}

QEMU_PLUGIN_EXPORT
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    if (lh.L != NULL) {
        /* this plugin again (another -plugin naming it): more scripts */
        return !lh.refused && load_scripts(false, info, argc, argv) ? 0 : -1;
    }
    lh_open_report_stream();
    export_lua_symbols();
    lh.id = id;
    lh.abort_on_error = true;
    lh.system_emulation = info->system_emulation;
    lh.L = lua_newstate(lh_alloc, NULL);    /* counted for memlimit= (limits.c) */
    if (lh.L == NULL) {
        lh_report("cannot create a Lua state (out of memory)");
        return -1;
    }
    lua_atpanic(lh.L, panic);
    luaL_openlibs(lh.L);
    /*
     * On failure the state is left for the process to reclaim: QEMU
     * exits, and callbacks the script registered before failing may
     * still point into it.
     */
    return load_scripts(true, info, argc, argv) ? 0 : -1;
}
