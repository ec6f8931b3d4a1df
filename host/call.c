/*
 * luahost: the one way into Lua. Every callback QEMU makes reaches its
 * script function through lh_dispatch: take the lock and open a scope,
 * push the function and its arguments, call it protected with a traceback
 * handler, apply the error policy, leave. The hooks it calls are made here
 * too, as is the trampoline of execution callbacks.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "luahost.h"

#define TRACEBACK_MARK "\nstack traceback:\n"

/* lua/args.lua's usage errors: their message alone, without a traceback. */
#define USAGE_ERROR_NAME "luahost.usage_error"

static bool push_usage_message(lua_State *L, int idx)
{
    bool usage = false;

    if (lua_type(L, idx) == LUA_TTABLE && luaL_getmetafield(L, idx, "__name") != 0) {
        usage = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), USAGE_ERROR_NAME) == 0;
        lua_pop(L, 1);
    }
    if (usage) {
        lua_pushliteral(L, "message");
        lua_rawget(L, idx);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            usage = false;
        }
    }
    return usage;
}

/*
 * Pushes what the error value at idx, not a string, says: a number as
 * itself, else what its __tostring gives, else its type (its __name, for
 * a handle). The metamethod is the script's: it is called protected and
 * its result checked, so that describing the error never raises another.
 */
static void push_description(lua_State *L, int idx)
{
    int top = lua_gettop(L);
    const char *type = luaL_typename(L, idx);

    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_pushvalue(L, idx);
        lua_tostring(L, -1);
        return;
    }
    if (luaL_getmetafield(L, idx, "__name") != 0 && lua_type(L, -1) == LUA_TSTRING) {
        type = lua_tostring(L, -1);     /* kept on the stack until the end */
    }
    if (luaL_getmetafield(L, idx, "__tostring") == 0) {
        lua_pushfstring(L, "(error object is a %s value)", type);
    } else {
        lua_pushvalue(L, idx);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
            const char *why = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1);
            lua_pushfstring(L, "(error object is a %s value; its __tostring failed: %s)", type, why);
        } else if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pushfstring(L, "(error object is a %s value; its __tostring returned a %s)",
                            type, luaL_typename(L, -1));
        }
    }
    if (lua_gettop(L) > top + 1) {
        lua_replace(L, top + 1);
        lua_settop(L, top + 1);
    }
}

/*
 * As lua.c's msghandler: a traceback, also for error values that are not
 * strings, which get the location they were raised at. Only the C API:
 * the script may have changed any global (debug.traceback, tostring). A
 * message that already carries a traceback (raised again by
 * lh_pcall_nested's caller) is kept as it is: its traceback starts where
 * the error began. Usage errors (lua/args.lua) are their message alone.
 */
int lh_message_handler(lua_State *L)
{
    const char *msg;

    if (lua_type(L, 1) == LUA_TSTRING) {
        msg = lua_tostring(L, 1);
        if (strstr(msg, TRACEBACK_MARK) != NULL) {
            return 1;
        }
    } else if (push_usage_message(L, 1)) {
        return 1;
    } else {
        lh_push_where(L, 1);
        push_description(L, 1);
        lua_concat(L, 2);
        msg = lua_tostring(L, -1);
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/*
 * Lua runs on a stack big enough for its own limits. QEMU gives guest
 * threads small stacks (linux-user: 256 KiB), and a recursion through C
 * functions (string.gsub with a function that calls gsub, a sort
 * comparator that sorts) ran off them, crashing QEMU, before Lua's limit
 * stopped it: 200 nested C calls in Lua 5.4, about 2.5 KiB each for gsub.
 * LuaJIT has no C-call limit below that of its Lua stack, about 6000
 * levels of gsub of 9 KiB each (its buffer is 8 KiB), more than even a
 * main thread's 8 MiB. A thread with less than LUA_STACK_NEEDED left gets
 * a stack of LUA_STACK_SIZE the first time it calls into Lua (reserved,
 * not committed: pages are used as touched), freed when it ends; a call
 * on it costs about 50 instructions. Hosts other than x86_64 and aarch64,
 * or a failed mmap, run Lua on the thread's stack.
 */
#if LH_LUAJIT
#define LUA_STACK_NEEDED SIZE_MAX
#define LUA_STACK_SIZE ((size_t)128 << 20)
#else
#define LUA_STACK_NEEDED ((size_t)1 << 20)
#define LUA_STACK_SIZE ((size_t)16 << 20)
#endif
#define LUA_STACK_GUARD ((size_t)64 << 10)   /* more than one C frame */

#if defined(__x86_64__) || defined(__aarch64__)
/* call_on_stack(arg, fn, top): fn(arg) with the stack pointer at top. */
void call_on_stack(void *arg, void (*fn)(void *), void *top);
#if defined(__x86_64__)
__asm__(".pushsection .text\n"
        ".globl call_on_stack\n"
        ".hidden call_on_stack\n"
        ".type call_on_stack, @function\n"
        "call_on_stack:\n"
        ".cfi_startproc\n"
        "pushq %rbp\n"
        ".cfi_def_cfa_offset 16\n"
        ".cfi_offset %rbp, -16\n"
        "movq %rsp, %rbp\n"
        ".cfi_def_cfa_register %rbp\n"
        "movq %rdx, %rsp\n"
        "callq *%rsi\n"
        "movq %rbp, %rsp\n"
        "popq %rbp\n"
        ".cfi_def_cfa %rsp, 8\n"
        "ret\n"
        ".cfi_endproc\n"
        ".size call_on_stack, .-call_on_stack\n"
        ".popsection\n");
#else
__asm__(".pushsection .text\n"
        ".globl call_on_stack\n"
        ".hidden call_on_stack\n"
        ".type call_on_stack, %function\n"
        ".p2align 2\n"
        "call_on_stack:\n"
        ".cfi_startproc\n"
        "stp x29, x30, [sp, #-16]!\n"
        ".cfi_def_cfa_offset 16\n"
        ".cfi_offset x29, -16\n"
        ".cfi_offset x30, -8\n"
        "mov x29, sp\n"
        ".cfi_def_cfa_register x29\n"
        "mov sp, x2\n"
        "blr x1\n"
        "mov sp, x29\n"
        ".cfi_def_cfa_register sp\n"
        "ldp x29, x30, [sp], #16\n"
        ".cfi_def_cfa_offset 0\n"
        ".cfi_restore x29\n"
        ".cfi_restore x30\n"
        "ret\n"
        ".cfi_endproc\n"
        ".size call_on_stack, .-call_on_stack\n"
        ".popsection\n");
#endif

/*
 * This thread's stack, above its guard; OWN_STACK when the thread's own
 * is big enough, or none could be made. Initial-exec: every callback
 * reads it, and so without a call.
 */
static __thread char *lua_stack __attribute__((tls_model("initial-exec")));
static char own_stack;
#define OWN_STACK (&own_stack)
static pthread_key_t lua_stack_key;     /* frees it when the thread ends */
static pthread_once_t lua_stack_once = PTHREAD_ONCE_INIT;

static void lua_stack_free(void *stack)
{
    munmap((char *)stack - LUA_STACK_GUARD, LUA_STACK_GUARD + LUA_STACK_SIZE);
}

static void lua_stack_key_new(void)
{
    pthread_key_create(&lua_stack_key, lua_stack_free);
}

/* What is left of the thread's own stack, from here. */
static size_t own_stack_left(void)
{
    pthread_attr_t attr;
    void *low;
    size_t size, left = 0;

    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getstack(&attr, &low, &size) == 0) {
            left = (uintptr_t)__builtin_frame_address(0) - (uintptr_t)low;
        }
        pthread_attr_destroy(&attr);
    }
    return left;
}

static G_GNUC_NO_INLINE void lua_stack_new(void)
{
    char *map;

    lua_stack = OWN_STACK;
    if (LUA_STACK_NEEDED != SIZE_MAX && own_stack_left() >= LUA_STACK_NEEDED) {
        return;
    }
    map = mmap(NULL, LUA_STACK_GUARD + LUA_STACK_SIZE, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED) {
        return;
    }
    if (mprotect(map, LUA_STACK_GUARD, PROT_NONE) != 0) {
        munmap(map, LUA_STACK_GUARD + LUA_STACK_SIZE);
        return;
    }
    lua_stack = map + LUA_STACK_GUARD;
    pthread_once(&lua_stack_once, lua_stack_key_new);
    pthread_setspecific(lua_stack_key, lua_stack);
}

/* The top of this thread's Lua stack; NULL when on it already, or none. */
static char *lua_stack_top(void)
{
    if (G_UNLIKELY(lua_stack == NULL)) {
        lua_stack_new();
    }
    if (lua_stack == OWN_STACK ||
        (uintptr_t)__builtin_frame_address(0) - (uintptr_t)lua_stack < LUA_STACK_SIZE) {
        return NULL;
    }
    return lua_stack + LUA_STACK_SIZE;
}
#endif

typedef struct Pcall {
    lua_State *L;
    int nargs, nresults, errfunc, status;
} Pcall;

static void do_pcall(void *p)
{
    Pcall *c = p;

    c->status = lua_pcall(c->L, c->nargs, c->nresults, c->errfunc);
}

#if defined(__x86_64__) || defined(__aarch64__)
static G_GNUC_NO_INLINE int pcall_on_stack(char *top, lua_State *L, int nargs, int nresults,
                                           int errfunc)
{
    Pcall c = { L, nargs, nresults, errfunc, LUA_OK };

    call_on_stack(&c, do_pcall, top);
    return c.status;
}
#endif

/*
 * x86-64: the upper halves of the vector registers cleared before Lua
 * runs. QEMU's translated code uses AVX and calls back with them dirty,
 * and on Intel cores every legacy-SSE instruction then pays for it: all
 * of LuaJIT's number handling, interpreted or compiled. hotblocks.lua
 * inline=off under LuaJIT took 2.2 times as long; Lua 5.4, whose
 * integers need no SSE, lost nothing. vzeroupper needs AVX.
 */
static inline void clear_upper_vectors(void)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx")) {
        __asm__ volatile("vzeroupper");
    }
#endif
}

/* lua_pcall on this thread's Lua stack. */
static inline int stack_pcall(lua_State *L, int nargs, int nresults, int errfunc)
{
    clear_upper_vectors();
#if defined(__x86_64__) || defined(__aarch64__)
    char *top = lua_stack_top();

    if (top != NULL) {
        return pcall_on_stack(top, L, nargs, nresults, errfunc);
    }
#endif
    return lua_pcall(L, nargs, nresults, errfunc);
}

/* The same, watched by the limits (limits.c): every call into Lua is. */
static inline int stacked_pcall(lua_State *L, int nargs, int nresults, int errfunc)
{
    LhThread *t = lh_thread();
    lua_State *outer = t->running;
    int status;

    lh_limits_enter(t, L);
    status = stack_pcall(L, nargs, nresults, errfunc);
    lh_limits_leave(t, outer);
    return status;
}

/*
 * Calls the function below its nargs arguments with the traceback
 * handler; returns lua_pcall's status, the handler removed.
 */
static int traced_pcall(lua_State *L, int nargs, int nresults)
{
    int base = lua_gettop(L) - nargs;
    int status;

    lua_pushcfunction(L, lh_message_handler);
    lua_insert(L, base);
    status = stacked_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    return status;
}

/*
 * For the host's own calls (boot): on error reports "error in WHAT:
 * message + traceback" and returns false, leaving the stack as it was
 * before the function was pushed.
 */
bool lh_pcall(lua_State *L, int nargs, int nresults, const char *what)
{
    int status = traced_pcall(L, nargs, nresults);

    if (status != LUA_OK) {
        lh_report("error in %s: %s%s", what, lua_tostring(L, -1),
                  status == LUA_ERRMEM ? lh_limits_memory_note() : "");
        lua_pop(L, 1);
        return false;
    }
    return true;
}

/*
 * For C code that Lua called and that calls Lua in turn where an error
 * must not unwind (through QEMU's frames and locks, say): false leaves
 * the error, with its traceback, on the stack, to raise once C is safe.
 */
bool lh_pcall_nested(lua_State *L, int nargs, int nresults)
{
    return traced_pcall(L, nargs, nresults) == LUA_OK;
}

/*
 * Callback functions to their LhFunc: a Lua function by its definition
 * ("source:line"). A C function has none ("=[C]:-1" for all of them): it
 * is one callback per function, kind and script line that registered it,
 * and messages name that line.
 */
static GHashTable *funcs;

/*
 * And a Lua function by its value, in a table with weak keys: one closure
 * registers a hook per instruction, and finding its definition again
 * (lua_getinfo, a formatted key, a hash lookup) cost more than the rest
 * of a registration together.
 */
static int funcs_by_value_ref = LUA_NOREF;

static LhFunc *known_func(lua_State *L, int fn_idx)
{
    LhFunc *func;

    if (funcs_by_value_ref == LUA_NOREF) {
        return NULL;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, funcs_by_value_ref);
    lua_pushvalue(L, fn_idx);
    lua_rawget(L, -2);
    func = lua_touserdata(L, -1);
    lua_pop(L, 2);
    return func;
}

static void remember_func(lua_State *L, int fn_idx, LhFunc *func)
{
    if (funcs_by_value_ref == LUA_NOREF) {
        lua_newtable(L);
        lua_newtable(L);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        funcs_by_value_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, funcs_by_value_ref);
    lua_pushvalue(L, fn_idx);
    lua_pushlightuserdata(L, func);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* The record of the function at fn_idx, an absolute index (hook_make's). */
static LhFunc *func_for(lua_State *L, int fn_idx, const char *what)
{
    lua_Debug ar;
    char *key, *c_what = NULL;
    LhFunc *func;
    bool is_c = lua_iscfunction(L, fn_idx);

    if (!is_c && (func = known_func(L, fn_idx)) != NULL) {
        return func;
    }
    lua_pushvalue(L, fn_idx);
    lua_getinfo(L, ">S", &ar);
    if (strcmp(ar.what, "C") == 0) {
        size_t len;
        const char *where;

        lh_push_where(L, 1);
        where = lua_tolstring(L, -1, &len);
        key = g_strdup_printf("[C] %p %s %s", lua_topointer(L, fn_idx), what, where);
        if (len > 2) {
            c_what = g_strdup_printf("%s (a C function registered at %.*s)", what, (int)len - 2, where);
        }
        lua_pop(L, 1);
    } else {
        key = g_strdup_printf("%s:%d", ar.source, ar.linedefined);
    }
    if (funcs == NULL) {
        funcs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    }
    func = g_hash_table_lookup(funcs, key);
    if (func == NULL) {
        func = g_new0(LhFunc, 1);
        func->c_what = c_what;
        g_hash_table_insert(funcs, key, func);
    } else {
        g_free(key);
        g_free(c_what);
    }
    if (!is_c) {
        remember_func(L, fn_idx, func);
    }
    return func;
}

/*
 * The traceback handler as a value in the registry, for a callback made
 * while Lua runs on the thread (LH_HANDLER_INDEX is then the running C
 * function's first slot): LuaJIT makes a new closure for every
 * lua_pushcfunction. Made with the first hook, where an error is the
 * script's.
 */
static int handler_ref = LUA_NOREF;

/*
 * value_ref of a hook that carries a number, kept in the hook itself: a
 * registry slot (luaL_ref) cost about as much as the rest of a
 * registration, and the value most callbacks carry is an address or a
 * count. Below LUA_REFNIL, so luaL_unref ignores them.
 */
enum { VALUE_INTEGER = -10, VALUE_FLOAT = -11 };

static void keep_value(lua_State *L, int idx, LhHook *hook)
{
    if (lua_type(L, idx) != LUA_TNUMBER) {
        lua_pushvalue(L, idx);
        hook->value_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return;
    }
#if !LH_LUAJIT
    if (lua_isinteger(L, idx)) {
        hook->value_ref = VALUE_INTEGER;
        hook->value.i = lua_tointeger(L, idx);
        return;
    }
#endif
    hook->value_ref = VALUE_FLOAT;
    hook->value.n = lua_tonumber(L, idx);
}

static void push_value(lua_State *L, const LhHook *hook)
{
    if (hook->value_ref == VALUE_INTEGER) {
        lua_pushinteger(L, hook->value.i);
    } else if (hook->value_ref == VALUE_FLOAT) {
        lua_pushnumber(L, hook->value.n);
    } else {
        lua_rawgeti(L, LUA_REGISTRYINDEX, hook->value_ref);
    }
}

/*
 * The registry references of the functions callbacks call: one per
 * function value until QEMU's next flush (then every hook made before it
 * is gone), in a table from function to reference. stoptrigger.lua
 * registers one closure on every instruction, and a reference each (and
 * a record to drop it at the flush) was a tenth of its translation hook.
 */
static int fn_refs_ref = LUA_NOREF;
static struct {
    const void *fn;         /* the last callback's Lua function, or NULL */
    LhFunc *func;
    int ref;
} last_callback;

static int callback_fn_ref(lua_State *L, int fn_idx)
{
    int ref;

    if (fn_refs_ref == LUA_NOREF) {
        lua_newtable(L);
        fn_refs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn_refs_ref);
    lua_pushvalue(L, fn_idx);
    lua_rawget(L, -2);
    if (lua_type(L, -1) == LUA_TNUMBER) {
        ref = (int)lua_tointeger(L, -1);
        lua_pop(L, 2);
        return ref;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, fn_idx);
    ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, fn_idx);
    lua_pushinteger(L, ref);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    return ref;
}

/* At the flush: the references callback_fn_ref took, all dropped. */
static void drop_callback_fn_refs(lua_State *L)
{
    if (fn_refs_ref == LUA_NOREF) {
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn_refs_ref);
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        luaL_unref(L, LUA_REGISTRYINDEX, (int)lua_tointeger(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, fn_refs_ref);
    fn_refs_ref = LUA_NOREF;
    last_callback.fn = NULL;
}

/*
 * A callback's function record and registry reference. The last Lua
 * function's are kept by its address: a script registers one closure on
 * instruction after instruction, and its reference keeps it (and so its
 * address) until the flush, which forgets it here too.
 */
static LhFunc *callback_func(lua_State *L, int fn_idx, const char *what, int *ref)
{
    const void *fn = lua_iscfunction(L, fn_idx) ? NULL : lua_topointer(L, fn_idx);
    LhFunc *func;

    if (fn != NULL && fn == last_callback.fn) {
        *ref = last_callback.ref;
        return last_callback.func;
    }
    func = func_for(L, fn_idx, what);
    *ref = callback_fn_ref(L, fn_idx);
    if (fn != NULL) {
        last_callback.fn = fn;
        last_callback.func = func;
        last_callback.ref = *ref;
    }
    return func;
}

/*
 * A hook of a global event is kept until exit; one that QEMU holds in a
 * translated block until QEMU flushes it (lh_callback_new). Once
 * luahost.uninstall was called, the callback that called it and the
 * completion may register nothing: QEMU ignores a registration, or
 * crashes once it has removed the plugin. (Another vCPU's callback in
 * the meantime may: QEMU ignores it, or its block is flushed.)
 */
static LhHook *hook_make(lua_State *L, int fn_idx, int value_idx, const char *what, bool callback)
{
    LhHook *hook;

    luaL_checktype(L, fn_idx, LUA_TFUNCTION);
    if (lh.uninstalling ||
        (lh.uninstall_scope != 0 && lh.uninstall_scope == lh_thread()->live_epoch)) {
        lh_error(L, "no %s can be registered after luahost.uninstall (the plugin is being unloaded)",
                 what);
    }
    if (handler_ref == LUA_NOREF) {
        lua_pushcfunction(L, lh_message_handler);
        handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    if (fn_idx < 0) {     /* absolute: values are pushed above it */
        fn_idx = lua_gettop(L) + fn_idx + 1;
    }
    if (callback) {
        hook = lh_new_until_flush(sizeof(*hook));
        hook->func = callback_func(L, fn_idx, what, &hook->fn_ref);
    } else {
        hook = g_new0(LhHook, 1);
        hook->func = func_for(L, fn_idx, what);
        lua_pushvalue(L, fn_idx);
        hook->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    hook->what = hook->func->c_what != NULL ? hook->func->c_what : what;
    if (value_idx != 0 && !lua_isnoneornil(L, value_idx)) {
        keep_value(L, value_idx, hook);
    } else {
        hook->value_ref = LUA_NOREF;
    }
    hook->via_ref = LUA_NOREF;
    hook->regs = QEMU_PLUGIN_CB_NO_REGS;
    return hook;
}

LhHook *lh_hook_new(lua_State *L, int fn_idx, int value_idx, const char *what)
{
    return hook_make(L, fn_idx, value_idx, what, false);
}

/*
 * What QEMU holds in the code it translates (the hooks of exec and memory
 * callbacks, the sites of streams, the blocks of callstacks), made at
 * translation: freed when QEMU flushes its code cache, in its flush
 * callback (lh_flush_records). QEMU calls that with no vCPU in translated
 * code (tb_flush runs in an exclusive section, or with a single thread
 * from which no translated code runs then) and frees its own arrays of
 * our pointers there (qemu_plugin_flush_cb), so nothing refers to a
 * record made before it. Blocks QEMU drops one by one (the guest wrote
 * over their code, or unmapped it) may still be running on another vCPU:
 * theirs are kept until the next flush, which comes at the latest when
 * the code cache fills up. Made as translation hooks run, and by the
 * host's translation listeners, which in system mode run on several
 * vCPUs' threads at once: under records_lock.
 */
typedef struct LhRecord {
    void *record;
    void (*free)(void *record);
} LhRecord;
static GArray *records;
static GMutex records_lock;

void lh_keep_until_flush(void *record, void (*free_fn)(void *record))
{
    LhRecord r = { record, free_fn };

    g_mutex_lock(&records_lock);
    if (records == NULL) {
        records = g_array_new(FALSE, FALSE, sizeof(LhRecord));
    }
    g_array_append_val(records, r);
    g_mutex_unlock(&records_lock);
}

/*
 * Memory for what QEMU holds in translated code that needs nothing but
 * freeing (the hooks of callbacks, the sites of streams and tallies, the
 * blocks of callstacks): zeroed, handed out from chunks that the flush
 * frees together, after the records' free functions, which may read it.
 * One is made per registration, most often per instruction: a malloc, a
 * record and a free each were a fifth of a stream registration's cost.
 */
enum { CHUNK_SIZE = 16384, CHUNK_ALIGN = 16 };
static GPtrArray *chunks;
static char *chunk_next;
static size_t chunk_left;

void *lh_new_until_flush(size_t size)
{
    void *p;

    size = (size + CHUNK_ALIGN - 1) & ~(size_t)(CHUNK_ALIGN - 1);
    g_mutex_lock(&records_lock);
    if (chunks == NULL) {
        chunks = g_ptr_array_new_with_free_func(g_free);
    }
    if (size > CHUNK_SIZE / 4) {        /* a chunk of its own */
        p = g_malloc(size);
        g_ptr_array_add(chunks, p);
    } else {
        if (size > chunk_left) {
            chunk_next = g_malloc(CHUNK_SIZE);
            chunk_left = CHUNK_SIZE;
            g_ptr_array_add(chunks, chunk_next);
        }
        p = chunk_next;
        chunk_next += size;
        chunk_left -= size;
    }
    g_mutex_unlock(&records_lock);
    return memset(p, 0, size);
}

void lh_flush_records(void)
{
    g_mutex_lock(&records_lock);    /* uncontended (no vCPU translates), but TSan sees the order */
    lh_tsan_exclusive_begin();
    if (records != NULL) {
        for (guint i = 0; i < records->len; i++) {
            LhRecord *r = &g_array_index(records, LhRecord, i);
            r->free(r->record);
        }
        g_array_set_size(records, 0);
    }
    if (chunks != NULL) {
        g_ptr_array_set_size(chunks, 0);
        chunk_left = 0;
    }
    lh_tsan_exclusive_end();
    g_mutex_unlock(&records_lock);
    drop_callback_fn_refs(lh_thread()->L);
}

/*
 * The value a hook of lh_callback_new's carries in the registry, once
 * QEMU has flushed its code; its function's reference goes with the
 * others (drop_callback_fn_refs).
 */
static void callback_free(void *p)
{
    LhHook *hook = p;

    luaL_unref(lh_thread()->L, LUA_REGISTRYINDEX, hook->value_ref);
}   /* its memory goes with its chunk (lh_new_until_flush), after the flush's records */

/*
 * The hook of an exec, conditional or memory callback: fn at fn_idx, its
 * value after it, and the register access asked for at regs_idx. Made
 * at translation, kept until QEMU flushes the code that calls it.
 */
LhHook *lh_callback_new(lua_State *L, int fn_idx, int regs_idx, const char *what)
{
    enum qemu_plugin_cb_flags regs = lh_check_regs(L, regs_idx);
    LhHook *hook = hook_make(L, fn_idx, fn_idx + 1, what, true);

    hook->regs = regs;
    if (hook->value_ref >= 0) {     /* a reference, not a number kept in the hook */
        lh_keep_until_flush(hook, callback_free);
    }
    lh_tsan_publish(hook);
    return hook;
}

bool lh_hook_disabled(LhHook *hook)
{
    return g_atomic_int_get(&hook->func->disabled);
}

/* A failed call under the error policy: stop, or disable its function. */
static void apply_error_policy(LhHook *hook)
{
    if (lh.abort_on_error) {
        lh_report("stopping emulation (on_error=abort); exit hooks are not run");
        lh_stop(EXIT_FAILURE);
    }
    g_atomic_int_set(&hook->func->disabled, 1);
    lh.errors++;
    lh_report("this %s is disabled (on_error=disable); the exit status will be 1", hook->what);
}

/*
 * Calls hook's function in a scope on vcpu (an index, or LH_*_VCPU) with
 * the arguments push_args pushes (it returns how many; NULL: none), the
 * hook's carried value after them. With no Lua running on the thread,
 * the traceback handler is the one at the bottom of its stack
 * (LH_HANDLER_INDEX), not pushed: a registry lookup less per event.
 * Nested in a call into Lua, stack indices count from the running C
 * function's frame: the handler is pushed under the function.
 */
void lh_dispatch(LhHook *hook, int vcpu, LhPushArgs push_args, const void *args)
{
    /* Unlocked fast path; checked again under the lock. */
    if (lh_hook_disabled(hook)) {
        return;
    }
    LhScope saved = lh_enter(vcpu, hook->regs, hook->what);
    lua_State *L = lh_thread()->L;

    /* Nothing runs after an uninstall (an interval hook that waited for the lock). */
    if (!lh_hook_disabled(hook) && !lh.uninstalled) {
        bool nested = lh_thread()->in_lua > 0;
        int handler = LH_HANDLER_INDEX;
        int nargs = 0;

        if (G_UNLIKELY(nested)) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, handler_ref);
            handler = lua_gettop(L);
        }
        if (hook->via_ref != LUA_NOREF) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, hook->via_ref);
            nargs++;
        }
        lua_rawgeti(L, LUA_REGISTRYINDEX, hook->fn_ref);
        if (push_args != NULL) {
            nargs += push_args(L, args);
        }
        if (hook->value_ref != LUA_NOREF) {
            push_value(L, hook);
            nargs++;
        }
        /* No results: the stack is as it was, or has the error message on top. */
        int status = stacked_pcall(L, nargs, 0, handler);
        if (status != LUA_OK) {
            lh_report("error in %s: %s%s", hook->what, lua_tostring(L, -1),
                      status == LUA_ERRMEM ? lh_limits_memory_note() : "");
            lua_pop(L, 1);
            /* a signal's interruption is not the script's error: the signal ends the run */
            if (!lh_limits_took_signal()) {
                apply_error_policy(hook);
            }
        }
        if (G_UNLIKELY(nested)) {
            lua_pop(L, 1);
        }
    }
    lh_leave(saved);
}

/* LhPushArgs for the callbacks whose one argument is a vCPU index. */
int lh_push_vcpu_index(lua_State *L, const void *args)
{
    lua_pushinteger(L, *(const unsigned int *)args);
    return 1;
}

/* The trampoline of tb and insn execution callbacks: fn(vcpu_index, value). */
void lh_exec_cb(unsigned int vcpu_index, void *udata)
{
    LhHook *hook = udata;

    lh_tsan_received(hook);
    lh_dispatch(hook, (int)vcpu_index, lh_push_vcpu_index, &vcpu_index);
}
