/*
 * luahost: lockstep ("luahost.lockstep"), two QEMUs comparing where they
 * are before every block over a stream socket, with Lua called only when
 * they differ.
 *
 * A Lua exchange per block (build a message, send, receive, compare) cost
 * lockstep.lua 1.5x liblockstep.so. Here C does it, in lockstep.c's wire
 * format (two u64s, host order: the block's address and the instructions
 * run before it), so either peer may be the C plugin, and keeps the count
 * of blocks and instructions and the last few blocks for the report; the
 * script decides what a divergence means and what a broken socket does.
 * Every block is instrumented from translation without Lua, as blocks.c
 * does. One vCPU, as lockstep.c: the state has no lock.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "luahost.h"

enum { RECENT = 5 };            /* blocks kept for the report: lockstep.c prints five */

/* What each side sends before a block: lockstep.c's ExecState. */
typedef struct Position {
    uint64_t pc;
    uint64_t insn_count;
} Position;

typedef struct Block {
    uint64_t pc;
    uint64_t insns;
} Block;

typedef struct Recent {
    uint64_t pc, insns;
    uint64_t insn_count;    /* after it ran */
} Recent;

typedef struct LhLockstep {
    int fd;                 /* our own duplicate; -1 once closed */
    LhHook *on_diverge, *on_error;
    uint64_t blocks, insn_count;
    Recent recent[RECENT];  /* block n at n % RECENT */
} LhLockstep;

/* The one lockstep of the run: its translation listener has no data. */
static LhLockstep *the_lockstep;

typedef struct Divergence {
    Position us, them;
    uint64_t blocks;
} Divergence;

static int push_divergence(lua_State *L, const void *args)
{
    const Divergence *d = args;

    lh_push_u64(L, d->us.pc);
    lh_push_i64(L, (int64_t)d->us.insn_count);
    lh_push_u64(L, d->them.pc);
    lh_push_i64(L, (int64_t)d->them.insn_count);
    lh_push_u64(L, d->blocks);
    return 5;
}

typedef struct Failure {
    const char *what;       /* "write" or "read" */
    int err;                /* errno, or 0: the peer closed, or took less */
} Failure;

static int push_failure(lua_State *L, const void *args)
{
    const Failure *f = args;

    lua_pushstring(L, f->what);
    if (f->err != 0) {
        lua_pushstring(L, g_strerror(f->err));
    } else {
        lua_pushnil(L);
    }
    return 2;
}

/*
 * All of n bytes: -1, else the errno (0 for end of file or a short
 * write). write, not send with MSG_NOSIGNAL: a peer gone raises SIGPIPE
 * as in lockstep.c (qemu-system ignores it, a user-mode guest gets it).
 */
static int transfer(int fd, void *buf, size_t n, bool writing)
{
    size_t done = 0;

    while (done < n) {
        ssize_t r = writing ? write(fd, (char *)buf + done, n - done)
                            : read(fd, (char *)buf + done, n - done);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return r < 0 ? errno : 0;
        }
        done += (size_t)r;
    }
    return -1;
}

static void on_exec(unsigned int vcpu, void *udata)
{
    LhLockstep *ls = the_lockstep;
    Block *block = udata;
    Position us = { block->pc, ls->insn_count }, them;
    int err;

    lh_tsan_received(ls);
    if (ls->fd < 0) {
        return;
    }
    err = transfer(ls->fd, &us, sizeof(us), true);
    if (err < 0) {
        err = transfer(ls->fd, &them, sizeof(them), false);
        if (err >= 0) {
            Failure f = { "read", err };
            lh_dispatch(ls->on_error, (int)vcpu, push_failure, &f);
            return;
        }
    } else {
        Failure f = { "write", err };
        lh_dispatch(ls->on_error, (int)vcpu, push_failure, &f);
        return;
    }
    if (us.pc != them.pc) {
        Divergence d = { us, them, ls->blocks };
        lh_dispatch(ls->on_diverge, (int)vcpu, push_divergence, &d);
    }
    /* as lockstep.c: the block counts as run in full, even after a divergence */
    ls->insn_count += block->insns;
    ls->blocks++;
    ls->recent[ls->blocks % RECENT] = (Recent){ block->pc, block->insns, ls->insn_count };
}

static void on_translate(int vcpu, const void *data)
{
    struct qemu_plugin_tb *tb = (struct qemu_plugin_tb *)data;
    Block *block = lh_new_until_flush(sizeof(*block));  /* QEMU holds it in the TB */

    block->pc = qemu_plugin_tb_vaddr(tb);
    block->insns = qemu_plugin_tb_n_insns(tb);
    lh_tsan_publish(block);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, QEMU_PLUGIN_CB_NO_REGS, block);
}

static LhLockstep *check_lockstep(lua_State *L)
{
    return lh_check_box(L, 1, LH_LOCKSTEP_MT);
}

/* lockstep:counts(): the blocks and instructions run so far. */
static int lockstep_counts(lua_State *L)
{
    LhLockstep *ls = check_lockstep(L);

    lh_push_u64(L, ls->blocks);
    lh_push_u64(L, ls->insn_count);
    return 2;
}

/*
 * lockstep:recent(): the latest blocks run, newest first, at most five:
 * columns { pc, insns, insn_count } (instructions run after each) and n.
 */
static int lockstep_recent(lua_State *L)
{
    LhLockstep *ls = check_lockstep(L);
    int n = ls->blocks < RECENT ? (int)ls->blocks : RECENT;
    const char *names[] = { "pc", "insns", "insn_count" };

    lua_createtable(L, 0, 4);
    for (int column = 0; column < 3; column++) {
        lua_createtable(L, n, 0);
        for (int i = 0; i < n; i++) {
            Recent *r = &ls->recent[(ls->blocks - (uint64_t)i) % RECENT];
            lh_push_u64(L, column == 0 ? r->pc : column == 1 ? r->insns : r->insn_count);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, names[column]);
    }
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
    return 1;
}

/* lockstep:close(): no more exchanges; our descriptor is closed. */
static int lockstep_close(lua_State *L)
{
    LhLockstep *ls = check_lockstep(L);

    if (ls->fd >= 0) {
        close(ls->fd);
        ls->fd = -1;
    }
    return 0;
}

static int lockstep_tostring(lua_State *L)
{
    LhLockstep *ls = check_lockstep(L);

    lua_pushstring(L, ls->fd < 0 ? "lockstep (closed)" : "lockstep");
    return 1;
}

/*
 * raw.lockstep_new(fd, on_diverge, on_error): compare with the peer on
 * the connected stream socket fd before every block from now on. The
 * host takes a duplicate of fd and makes it blocking (the caller's copy
 * shares that). In the main chunk only, once: it instruments translation.
 */
static int lockstep_new(lua_State *L)
{
    lua_Integer fd = luaL_checkinteger(L, 1);
    int type = 0;
    socklen_t len = sizeof(type);

    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    if (!lh.installing) {
        return lh_error(L, "luahost.lockstep must be called in the script's main chunk");
    }
    if (the_lockstep != NULL) {
        return lh_error(L, "luahost.lockstep: only one per run (it compares every block)");
    }
    if (fd < 0 || fd > INT32_MAX) {
        return lh_error(L, "luahost.lockstep: fd is out of range");
    }
    if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
        return lh_error(L, "luahost.lockstep: fd %d: %s", (int)fd, g_strerror(errno));
    }
    if (type != SOCK_STREAM) {
        return lh_error(L, "luahost.lockstep: fd %d is not a stream socket", (int)fd);
    }
    int own = fcntl((int)fd, F_DUPFD_CLOEXEC, 0);
    int flags = own < 0 ? -1 : fcntl(own, F_GETFL);
    if (flags < 0 || fcntl(own, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        int err = errno;
        if (own >= 0) {
            close(own);
        }
        return lh_error(L, "luahost.lockstep: fd %d: %s", (int)fd, g_strerror(err));
    }
    LhLockstep *ls = g_new0(LhLockstep, 1);
    ls->fd = own;
    ls->on_diverge = lh_hook_new(L, 2, 0, "lockstep on_diverge");
    ls->on_error = lh_hook_new(L, 3, 0, "lockstep on_error");
    lh_tsan_publish(ls);
    the_lockstep = ls;      /* lives as long as the plugin: QEMU's TBs reach it */
    lh_listen(LH_AT_TRANSLATE, on_translate);
    lh_push_box(L, ls, LH_LOCKSTEP_MT);
    return 1;
}

static const luaL_Reg lockstep_methods[] = {
    { "counts", lockstep_counts },
    { "recent", lockstep_recent },
    { "close", lockstep_close },
    { NULL, NULL },
};

static const luaL_Reg lockstep_meta[] = {
    { "__tostring", lockstep_tostring },
    { NULL, NULL },
};

static const luaL_Reg lockstep_functions[] = {
    { "lockstep_new", lockstep_new },
    { NULL, NULL },
};

void lh_open_lockstep(lua_State *L, int raw)
{
    lh_new_type(L, LH_LOCKSTEP_MT, lockstep_methods, lockstep_meta);
    lh_set_functions(L, raw, lockstep_functions);
}
