/*
 * luahost: shared declarations of the C host.
 *
 * The host is mechanism only: it owns the Lua state, the lock around it,
 * the handle types and the trampolines QEMU calls. Everything a script
 * sees is built in lua/ on top of the private raw table made here.
 *
 * Its files form layers; a file calls only its own layer and those
 * below it (tests/unit/layers_spec.lua checks):
 *   1. base: runtime.c (state, lock, reports, listeners), call.c (the
 *      protected call, the error policy, hooks, the dispatcher and the
 *      exec trampoline), scope.c (scopes, handles, located errors,
 *      argument checks), limits.c (memlimit=, hook_timeout=, signals),
 *      tsan.h (what ThreadSanitizer must be told), qemu_api.c (QEMU's
 *      plugin API versions: the one place that knows them)
 *   2. types: tb.c insn.c mem.c scoreboard.c stream.c callstack.c fpcalls.c blocks.c shadow.c
 *      tally.c lockstep.c insnmix.c registers.c guest.c clock.c disas.c, one per Lua type;
 *      modules.c symtab.c maps.c exec.c process.c threadexit.c, the guest's
 *      modules, process and threads as the host follows them
 *   3. hooks.c: hooks on QEMU's global events
 *   4. lifecycle.c: reset, uninstall, exit
 *   5. plugin.c: the entry point
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef LUAHOST_H
#define LUAHOST_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <glib.h>
#include LH_QEMU_HEADER   /* qemu-plugin.h, or our own (meson -Dqemu_header) */

#include "compat.h"
#include "qemu_api.h"
#include "tsan.h"

/*
 * Metatable names, shown in wrong-type errors (scope.c). Arrays, not
 * literals: a handle holds its type by the name's address, which must be
 * the same in every file, and identical literals are not merged across
 * files in every build (ASan's).
 */
extern const char LH_TB_MT[], LH_INSN_MT[], LH_SCOREBOARD_MT[], LH_MEM_MT[], LH_HWADDR_MT[],
    LH_CLOCK_MT[], LH_STREAM_MT[], LH_CALLSTACK_MT[], LH_FPCALLS_MT[], LH_TALLY_MT[],
    LH_LOCKSTEP_MT[], LH_INSN_MIX_MT[];

/*
 * A function definition QEMU calls back, keyed by where it is defined:
 * closures made afresh in every translation share one record, so
 * on_error=disable turns them all off and the error is reported once.
 * A C function, defined nowhere, by where it was registered (call.c).
 */
typedef struct LhFunc {
    char *c_what;           /* a C function's name in messages, or NULL */
    int disabled;           /* also read before taking the lock: atomic */
} LhFunc;

/* One registration: the function and the script value it carries. */
typedef struct LhHook {
    LhFunc *func;
    const char *what;       /* names the hook in error messages */
    int fn_ref;
    int value_ref;          /* LUA_NOREF when the callback carries none;
                             * a number is kept in value (call.c) */
    union {
        lua_Integer i;
        lua_Number n;
    } value;
    int via_ref;            /* else called as via(fn, args...) (streams) */
    enum qemu_plugin_cb_flags regs;     /* register access it asked for */
    unsigned int mask;      /* discontinuity kinds it wants */
} LhHook;

/*
 * What the running callback may touch. QEMU reaches registers and guest
 * memory through its current vCPU, which exists only on a vCPU thread;
 * calling those functions elsewhere trips an assertion inside QEMU, so
 * the host checks the context first and raises a Lua error instead.
 */
enum {
    LH_NO_VCPU = -1,        /* not on a vCPU thread (main chunk, exit) */
    LH_SOME_VCPU = -2,      /* on a vCPU thread, index not given (translation) */
};

typedef struct LhContext {
    int vcpu;               /* the callback's vCPU index, or LH_*_VCPU */
    enum qemu_plugin_cb_flags regs;
    const char *what;       /* the running callback, for error messages */
} LhContext;

/*
 * The one Lua state and what the Lua lock guards (see docs/threading.md).
 * L runs no code of its own after install: each OS thread runs its
 * callbacks on a Lua thread of its own (LhThread).
 */
typedef struct LhRuntime {
    lua_State *L;
    qemu_plugin_id_t id;
    bool abort_on_error;    /* on_error=abort (default) or disable */
    int errors;             /* callback errors so far (on_error=disable) */
    uint64_t next_epoch;
    bool installing;        /* the script's main chunk is running */
    uint64_t uninstall_scope;   /* the epoch of the scope that asked for an uninstall */
    bool uninstalling;      /* QEMU has removed the plugin: registering would crash it */
    bool uninstalled;       /* after luahost.uninstall completed */
    bool reset_pending;     /* from luahost.reset until QEMU has dropped the callbacks */
    bool refused;           /* QEMU refused a -plugin of this plugin: it exits */
    bool exiting;           /* the guest or the script asked to end (exit_group, luahost.exit) */
    bool system_emulation;
    bool stats;             /* stats=on: report costs at exit */
} LhRuntime;

extern LhRuntime lh;

/*
 * One OS thread's side of the runtime: the Lua thread its callbacks run
 * on, and the scope of its innermost callback. Callbacks of two OS threads
 * interleave where one leaves the Lua lock for a call into QEMU, so none
 * of this may be shared. Made when the thread first takes the Lua lock;
 * when the thread ends it goes to the next new thread, Lua thread and
 * all, and is never freed (the watchdog may read one at any time).
 */
typedef struct LhThread {
    lua_State *L;           /* anchored in the registry */
    uint64_t live_epoch;    /* handles of this epoch are alive */
    LhContext ctx;          /* of the innermost running callback */
    GByteArray *buffer;     /* guest memory read or written (guest.c) */
    /* limits.c: written by the thread, read by the watchdog */
    lua_State *volatile running;    /* the innermost call's Lua thread (L, or a coroutine) */
    volatile guint calls;   /* bumped as a call into Lua starts and as it ends */
    volatile int in_lua;    /* calls into Lua in progress, nested */
    volatile gint pending;  /* the limit the hook raises, or 0 */
    bool took_signal;       /* the error just raised was a signal's interruption */
    /* limits.c: the watchdog's own */
    guint seen;
    gint64 still, since_interrupt;
    struct LhThread *next_free;
} LhThread;

/* The calling thread's LhThread: valid once it holds the Lua lock. */
extern __thread LhThread *lh_self __attribute__((tls_model("initial-exec")));

static inline LhThread *lh_thread(void)
{
    return lh_self;
}

/* The thread that holds the Lua lock, or NULL (read by limits.c without it). */
extern LhThread *volatile lh_owner;

/* stats=on: the nanoseconds this thread has waited for the Lua lock. */
extern __thread uint64_t lh_lock_wait_ns __attribute__((tls_model("initial-exec")));

static inline uint64_t lh_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * runtime.c: the lock, reports, stopping, listeners.
 *
 * The Lua lock is recursive. lh_release lets go of it entirely, however
 * deep the calling thread holds it, for a call into QEMU that may wait for
 * one of QEMU's locks (docs/threading.md, "Lock order"), and returns the
 * depth for lh_reacquire; 0, and nothing done, if the thread holds none.
 */
void lh_lock(void);
void lh_unlock(void);
int lh_release(void);
void lh_reacquire(int depth);
void lh_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void lh_open_report_stream(void);
FILE *lh_report_stream(void);
int lh_stderr_restore(void);
void lh_stderr_put_back(int saved);
void lh_stop(int status) G_GNUC_NORETURN;

/*
 * Moments a lower file may act on without calling the events layer:
 * listener(vcpu, data), before the script's hooks of the same event.
 */
typedef enum {
    LH_AT_VCPU_EXIT,        /* the exiting vCPU's index; data NULL */
    LH_AT_EXIT,             /* LH_NO_VCPU; data NULL */
    LH_AT_TRANSLATE,        /* LH_SOME_VCPU; data the struct qemu_plugin_tb */
    LH_AT_SYSCALL,          /* the vCPU; data an LhSyscallEvent */
    LH_AT_SYSCALL_RETURN,   /* the vCPU; data an LhSyscallEvent */
    LH_AT_SYSCALL_HOOKED,   /* as LH_AT_SYSCALL, after the script's hooks of it */
    LH_AT_EXEC,             /* the process execs a program: the exit work runs now; data NULL */
    LH_MOMENTS,
} LhMoment;
typedef void (*LhListener)(int vcpu, const void *data);
void lh_listen(LhMoment moment, LhListener fn);
bool lh_listening(LhMoment moment);
void lh_notify(LhMoment moment, int vcpu, const void *data);

/* runtime.c: the Linux syscalls the host follows; NULL for a target it does not know. */
typedef struct LhSyscalls {
    int mmap, munmap, mremap, mprotect, clone, fork, vfork, clone3, execve, execveat, exit, exit_group;
} LhSyscalls;
const LhSyscalls *lh_syscalls(const char *target);

typedef struct LhSyscallEvent {
    int64_t num;
    const uint64_t *args;   /* its 8 arguments */
    int64_t ret;            /* once returned */
    bool returned;
} LhSyscallEvent;

/* limits.c: memlimit=, hook_timeout=, and a signal during a call that does not end. */
#define LH_DEFAULT_MEMLIMIT ((size_t)1 << 30)
#define LH_DEFAULT_HOOK_TIMEOUT 60
void *lh_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
void lh_limits_enter(LhThread *t, lua_State *L);
void lh_limits_leave(LhThread *t, lua_State *outer);
bool lh_limits_took_signal(void);
const char *lh_limits_memory_note(void);
void lh_limits_signalled(void);
void lh_open_limits(lua_State *L, int raw);

/* call.c: the protected call, hooks and the one dispatcher. */
typedef int (*LhPushArgs)(lua_State *L, const void *args);
int lh_message_handler(lua_State *L);
/* Where lh_message_handler sits on every LhThread's stack, under all else. */
#define LH_HANDLER_INDEX 1
bool lh_pcall(lua_State *L, int nargs, int nresults, const char *what);
bool lh_pcall_nested(lua_State *L, int nargs, int nresults);
LhHook *lh_hook_new(lua_State *L, int fn_idx, int value_idx, const char *what);
LhHook *lh_callback_new(lua_State *L, int fn_idx, int regs_idx, const char *what);
void lh_keep_until_flush(void *record, void (*free_fn)(void *record));
void *lh_new_until_flush(size_t size);
void lh_flush_records(void);
bool lh_hook_disabled(LhHook *hook);
void lh_dispatch(LhHook *hook, int vcpu, LhPushArgs push_args, const void *args);
int lh_push_vcpu_index(lua_State *L, const void *args);
void lh_exec_cb(unsigned int vcpu_index, void *udata);

/*
 * Handle liveness, modelled on liolib's closed files: QEMU's tb, insn and
 * hwaddr pointers are valid only during the callback that provided them.
 * Each callback runs in a fresh epoch; a handle made in another epoch is
 * refused with a Lua error instead of touching a stale pointer. A handle
 * names its type (type: its LH_*_MT, by address): lh_check_handle
 * compares that where the metatable's fetch and compare cost three times
 * as much, on every method call.
 */
typedef struct LhHandle {
    const char *type;   /* first, as every type checked by it (scope.c) */
    void *ptr;
    uint64_t epoch;
} LhHandle;

typedef struct LhScope {
    uint64_t epoch;
    LhContext ctx;
} LhScope;

/* scope.c: scopes, handles, located errors and shared argument checks. */
LhScope lh_enter(int vcpu, enum qemu_plugin_cb_flags regs, const char *what);
void lh_leave(LhScope saved);
void lh_push_where(lua_State *L, int level);
int lh_error(lua_State *L, const char *fmt, ...);
int lh_fail(lua_State *L, const char *msg);
enum qemu_plugin_cb_flags lh_check_regs(lua_State *L, int idx);
enum qemu_plugin_cond lh_check_cond(lua_State *L, int idx);
enum qemu_plugin_mem_rw lh_check_rw(lua_State *L, int idx);
void lh_check_vcpu_context(lua_State *L, const char *what);
void lh_check_regs_context(lua_State *L, bool write);
void lh_push_handle(lua_State *L, void *ptr, const char *mt);
void lh_push_box(lua_State *L, void *ptr, const char *mt);
void *lh_check_box(lua_State *L, int idx, const char *mt);
void *lh_test_udata(lua_State *L, int idx, const char *mt);
void *lh_check_udata(lua_State *L, int idx, const char *mt);
void *lh_check_handle(lua_State *L, int idx, const char *mt, const char *kind);
void *lh_test_handle(lua_State *L, int idx, const char *mt, const char *kind);
void *lh_live_handle(lua_State *L, int idx, const char *kind);
void lh_new_type(lua_State *L, const char *mt, const luaL_Reg *methods, const luaL_Reg *meta);
void lh_set_functions(lua_State *L, int raw, const luaL_Reg *fns);

/* One opener per Lua-visible type; each adds its functions to raw. */
void lh_open_tb(lua_State *L, int raw);
void lh_open_insn(lua_State *L, int raw);
void lh_open_scoreboard(lua_State *L, int raw);
void lh_open_mem(lua_State *L, int raw);
void lh_open_registers(lua_State *L, int raw);
void lh_open_guest(lua_State *L, int raw);
void lh_open_clock(lua_State *L, int raw);
void lh_open_lifecycle(lua_State *L, int raw);
void lh_open_stream(lua_State *L, int raw);

/* callstack.c: shadow call stacks and calling-context trees, per vCPU. */
void lh_open_callstack(lua_State *L, int raw);

/* fpcalls.c: calls and returns followed by the frame pointer, as uftrace records. */
void lh_open_fpcalls(lua_State *L, int raw);
/* blocks.c: every translated block and its executions, counted inline. */
void lh_open_blocks(lua_State *L, int raw);
/* shadow.c: stores mirrored, loads checked against them, per region. */
void lh_open_shadow(lua_State *L, int raw);
/* tally.c: counters keyed by up to three u64s, per vCPU, counted in C. */
void lh_open_tally(lua_State *L, int raw);
/* lockstep.c: two QEMUs compared before every block over a socket, in C. */
void lh_open_lockstep(lua_State *L, int raw);
/* insnmix.c: executed instructions counted by a class chosen per encoding. */
void lh_open_insn_mix(lua_State *L, int raw);

/* stream.c: the number of a device name, as the streams' device column. */
uint16_t lh_device_index(const char *name);

/* stream.c: what the host delivers of streams outside their own callbacks. */
void lh_streams_flush_all(void);

/* symtab.c: one file's symbols and lines, at its own addresses. */
typedef struct LhSymtab LhSymtab;
typedef struct LhSymbol {
    uint64_t addr, size;    /* size 0: unknown */
    const char *name;
} LhSymbol;
LhSymtab *lh_symtab_elf(const char *path, const char *name, int fd);
LhSymtab *lh_symtab_system_map(FILE *f, const char *path, uint64_t *low, uint64_t *high);
void lh_symtab_free(LhSymtab *t);
const LhSymbol *lh_symtab_at(LhSymtab *t, uint64_t addr);
const LhSymbol *lh_symtab_named(LhSymtab *t, const char *name, int max_rank);
bool lh_symtab_line(LhSymtab *t, uint64_t addr, const char **file, int *line);
bool lh_symtab_extent(LhSymtab *t, uint64_t *low, uint64_t *high);
typedef struct LhLineRange {
    uint64_t start, stop;   /* [start, stop): code of file:line */
    const char *file;
    int line;
} LhLineRange;
typedef struct LhFunction {
    const char *name, *file;
    int line;               /* of its declaration */
    uint64_t entry;
} LhFunction;
bool lh_symtab_lines(LhSymtab *t, GArray *ranges, GArray *functions, GStringChunk *strings);

/* exec.c: what an execve will run, as the kernel finds it (user mode). */
typedef struct LhExec {
    char *path;             /* the file, absolute */
    char *given;            /* the path the guest gave (a script's interpreter gets it) */
    char *interp;           /* a "#!" script: its interpreter, absolute, */
    char *interp_given;     /* as the script names it, */
    char *interp_arg;       /* and its one optional argument, or NULL */
    const char *arch;       /* qemu-ARCH of the ELF program that runs; NULL: unknown */
    bool nested;            /* the interpreter is itself a script */
    GPtrArray *argv, *envp; /* read from the guest */
} LhExec;
typedef enum { LH_EXEC_FAILS, LH_EXEC_RUNS, LH_EXEC_UNKNOWN } LhExecFate;
LhExecFate lh_exec_fate(const uint64_t *args, bool at, const char *own, LhExec *x, const char **why);
void lh_exec_clear(LhExec *x);
bool lh_host_runs(const char *arch);

/* process.c: the guest process's signals, forks and execs (user mode). */
void lh_open_process(lua_State *L, int raw, const qemu_info_t *info);
void lh_open_thread_exits(const qemu_info_t *info);

/* maps.c: the ELF files the guest has mapped (user mode). */
typedef struct LhMapped {
    char *path;             /* the host file, or "[vdso]" */
    uint64_t start, end;    /* guest addresses */
    uint64_t bias, inode;
    int fd;                 /* the vDSO's image, or -1 */
} LhMapped;
GPtrArray *lh_maps_scan(uint64_t guest_base);

/* modules.c: the guest's modules and symbols. */
void lh_open_modules(lua_State *L, int raw, const qemu_info_t *info);
bool lh_symbol_name(uint64_t addr, char *buf, size_t size);
void lh_streams_stats(uint64_t *batches, uint64_t *events);

/* interval.c: hooks every N seconds, on a thread of the host's own. */
void lh_open_interval(lua_State *L, int raw);
void lh_interval_start(void);
void lh_interval_stop(void);
void lh_interval_forget(void);
bool lh_on_interval_thread(void);

/* hooks.c: hooks on QEMU's global events. */
void lh_open_hooks(lua_State *L, int raw);
void lh_hooks_start(void);
void lh_hooks_forget(void);

/* Constructors and checkers shared between the type files. */
void lh_push_tb(lua_State *L, struct qemu_plugin_tb *tb);
void lh_push_insn(lua_State *L, struct qemu_plugin_insn *insn);
uint32_t lh_insn_opcode(struct qemu_plugin_insn *insn);
void lh_mem_cb(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata);
void lh_access_cb(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata);
qemu_plugin_u64 lh_check_entry(lua_State *L, int idx);
bool lh_test_entry(lua_State *L, int idx, qemu_plugin_u64 *entry);

typedef struct LhInline {
    enum qemu_plugin_op op;
    qemu_plugin_u64 entry;
    uint64_t imm;
} LhInline;
LhInline lh_check_inline(lua_State *L, int idx);

typedef struct LhCondition {
    qemu_plugin_u64 entry;
    enum qemu_plugin_cond cond;
    uint64_t imm;
    LhHook *hook;
} LhCondition;
LhCondition lh_check_condition(lua_State *L, int idx, const char *what);

/* disas.c: capstone instruction groups for insn:groups(), user-mode insn:disas(). */
void lh_disas_init(lua_State *L, int raw);
int lh_insn_groups(lua_State *L);
enum { LH_MAX_GROUPS = 8 };     /* capstone keeps at most 8 per instruction */
const char *lh_capstone_groups_missing(void);
int lh_insn_group_ids(struct qemu_plugin_insn *insn, uint8_t ids[LH_MAX_GROUPS]);
bool lh_push_disas(lua_State *L, struct qemu_plugin_insn *insn);

/* Embedded Lua sources (generated at build time from lua/). */
typedef struct LhEmbedded {
    const char *name;
    const char *source;
    size_t size;
} LhEmbedded;
extern const LhEmbedded lh_embedded[];

#endif
