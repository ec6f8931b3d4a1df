/*
 * luahost: the guest as QEMU's current vCPU sees it — its memory, by
 * virtual or physical address, and where the user-mode binary lives.
 *
 * All of these go through QEMU's current vCPU, so they need a callback
 * that runs on one (checked first). Failures the guest causes (an
 * unmapped address) return nil and a message; a script's mistakes (a bad
 * length, the wrong place) raise.
 *
 * Reading and writing take QEMU's locks (user mode: mmap_lock, which a
 * translating thread holds while it waits for the Lua lock; system mode:
 * the BQL for device memory): the Lua lock is let go meanwhile, and the
 * bytes go through the calling thread's own buffer.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "luahost.h"

/* A sane bound on one read: larger dumps are loops in the script. */
#define LH_MAX_READ (1 << 20)

/* Past this, a thread's buffer is freed after use instead of kept. */
#define LH_KEPT_BUFFER (64 << 10)

static void buffer_done(GByteArray *buffer)
{
    if (buffer->len > LH_KEPT_BUFFER) {
        g_byte_array_free(buffer, TRUE);
        lh_thread()->buffer = g_byte_array_new();
    }
}

static size_t check_length(lua_State *L, int idx)
{
    lua_Integer len = luaL_checkinteger(L, idx);

    luaL_argcheck(L, len >= 1 && len <= LH_MAX_READ, idx,
                  "length must be from 1 to 1048576 bytes");
    return (size_t)len;
}

/* raw.read_memory(vaddr, len): the bytes, or nil and a message. */
static int read_memory(lua_State *L)
{
    uint64_t vaddr = lh_check_u64(L, 1);
    size_t len = check_length(L, 2);

    GByteArray *buffer = lh_thread()->buffer;
    bool ok;

    lh_check_vcpu_context(L, "luahost.read_memory");
    g_byte_array_set_size(buffer, 0);
    int depth = lh_release();
    ok = qemu_plugin_read_memory_vaddr(vaddr, buffer, len);
    lh_reacquire(depth);
    if (!ok) {
        char msg[80];
        buffer_done(buffer);
        snprintf(msg, sizeof(msg), "cannot read %zu bytes of guest memory at 0x%" PRIx64,
                 len, vaddr);
        return lh_fail(L, msg);
    }
    lua_pushlstring(L, (const char *)buffer->data, buffer->len);
    buffer_done(buffer);
    return 1;
}

#if LH_HAVE_API5
static const char *hwaddr_result(enum qemu_plugin_hwaddr_operation_result r)
{
    switch (r) {
    case QEMU_PLUGIN_HWADDR_OPERATION_OK:
        return "ok";
    case QEMU_PLUGIN_HWADDR_OPERATION_DEVICE_ERROR:
        return "device error";
    case QEMU_PLUGIN_HWADDR_OPERATION_ACCESS_DENIED:
        return "access denied";
    case QEMU_PLUGIN_HWADDR_OPERATION_INVALID_ADDRESS:
        return "invalid address";
    case QEMU_PLUGIN_HWADDR_OPERATION_INVALID_ADDRESS_SPACE:
        return "invalid address space";
    default:
        return "error (user mode has no physical memory)";
    }
}

/* The string at idx in the thread's buffer. */
static GByteArray *fill_buffer(lua_State *L, int idx)
{
    GByteArray *buffer = lh_thread()->buffer;
    size_t len;
    const char *data = luaL_checklstring(L, idx, &len);

    luaL_argcheck(L, len >= 1 && len <= LH_MAX_READ, idx,
                  "data must be from 1 to 1048576 bytes");
    g_byte_array_set_size(buffer, 0);
    g_byte_array_append(buffer, (const guint8 *)data, (guint)len);
    return buffer;
}

/* raw.write_memory(vaddr, data): true, or nil and a message. */
static int write_memory(lua_State *L)
{
    uint64_t vaddr = lh_check_u64(L, 1);
    GByteArray *buffer = fill_buffer(L, 2);
    bool ok;

    lh_check_vcpu_context(L, "luahost.write_memory");
    int depth = lh_release();
    ok = qemu_plugin_write_memory_vaddr(vaddr, buffer);
    lh_reacquire(depth);
    buffer_done(buffer);
    if (!ok) {
        return lh_fail(L, "cannot write guest memory there");
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* raw.read_memory_hwaddr(paddr, len): the bytes, or nil and a message. */
static int read_memory_hwaddr(lua_State *L)
{
    uint64_t paddr = lh_check_u64(L, 1);
    size_t len = check_length(L, 2);
    GByteArray *buffer = lh_thread()->buffer;
    enum qemu_plugin_hwaddr_operation_result r;

    lh_check_vcpu_context(L, "luahost.read_memory_hwaddr");
    g_byte_array_set_size(buffer, 0);
    int depth = lh_release();
    r = qemu_plugin_read_memory_hwaddr(paddr, buffer, len);
    lh_reacquire(depth);
    if (r != QEMU_PLUGIN_HWADDR_OPERATION_OK) {
        buffer_done(buffer);
        return lh_fail(L, hwaddr_result(r));
    }
    lua_pushlstring(L, (const char *)buffer->data, buffer->len);
    buffer_done(buffer);
    return 1;
}

/* raw.write_memory_hwaddr(paddr, data): true, or nil and a message. */
static int write_memory_hwaddr(lua_State *L)
{
    uint64_t paddr = lh_check_u64(L, 1);
    GByteArray *buffer = fill_buffer(L, 2);
    enum qemu_plugin_hwaddr_operation_result r;

    lh_check_vcpu_context(L, "luahost.write_memory_hwaddr");
    int depth = lh_release();
    r = qemu_plugin_write_memory_hwaddr(paddr, buffer);
    lh_reacquire(depth);
    buffer_done(buffer);
    if (r != QEMU_PLUGIN_HWADDR_OPERATION_OK) {
        return lh_fail(L, hwaddr_result(r));
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* raw.translate_vaddr(vaddr): the physical address, or nil and a message. */
static int translate_vaddr(lua_State *L)
{
    uint64_t vaddr = lh_check_u64(L, 1);
    uint64_t paddr;
    bool ok;

    lh_check_vcpu_context(L, "luahost.translate_vaddr");
    int depth = lh_release();   /* it walks the guest's page tables */
    ok = qemu_plugin_translate_vaddr(vaddr, &paddr);
    lh_reacquire(depth);
    if (!ok) {
        return lh_fail(L, "no translation (unmapped, or user mode)");
    }
    lh_push_u64(L, paddr);
    return 1;
}
#endif

/*
 * The user-mode binary: its path and where its code is. QEMU keeps these
 * per task, so they need a vCPU; system emulation has none (nil).
 *
 * Looked up at run time: QEMU 10.0 never compiles their user-mode
 * definitions and 10.2 as usually built drops them at link time, and a
 * plugin that links to a missing symbol cannot load at all.
 */
static const char *(*path_to_binary_fn)(void);
static uint64_t (*start_code_fn)(void);
static uint64_t (*end_code_fn)(void);
static uint64_t (*entry_code_fn)(void);

static void check_layout(lua_State *L, const void *fn, const char *what)
{
    lh_check_vcpu_context(L, what);
    if (fn == NULL) {
        lh_error(L, "%s: this QEMU binary does not export it (QEMU 10.0 never builds "
                 "it; see luahost.has(\"code_layout\") and docs/qemu-api.md)", what);
    }
}

static int path_to_binary(lua_State *L)
{
    const char *path;

    check_layout(L, path_to_binary_fn, "luahost.path_to_binary");
    path = path_to_binary_fn();
    if (path == NULL) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, path);
    g_free((char *)path);
    return 1;
}

static int push_code_address(lua_State *L, uint64_t addr)
{
    if (addr == 0) {
        lua_pushnil(L);
    } else {
        lh_push_u64(L, addr);
    }
    return 1;
}

static int start_code(lua_State *L)
{
    check_layout(L, start_code_fn, "luahost.start_code");
    return push_code_address(L, start_code_fn());
}

static int end_code(lua_State *L)
{
    check_layout(L, end_code_fn, "luahost.end_code");
    return push_code_address(L, end_code_fn());
}

static int entry_code(lua_State *L)
{
    check_layout(L, entry_code_fn, "luahost.entry_code");
    return push_code_address(L, entry_code_fn());
}

static void find_layout_functions(void)
{
    path_to_binary_fn = dlsym(RTLD_DEFAULT, "qemu_plugin_path_to_binary");
    start_code_fn = dlsym(RTLD_DEFAULT, "qemu_plugin_start_code");
    end_code_fn = dlsym(RTLD_DEFAULT, "qemu_plugin_end_code");
    entry_code_fn = dlsym(RTLD_DEFAULT, "qemu_plugin_entry_code");
}

static const luaL_Reg guest_functions[] = {
    { "read_memory", read_memory },
#if LH_HAVE_API5
    { "write_memory", write_memory },
    { "read_memory_hwaddr", read_memory_hwaddr },
    { "write_memory_hwaddr", write_memory_hwaddr },
    { "translate_vaddr", translate_vaddr },
#endif
    { "path_to_binary", path_to_binary },
    { "start_code", start_code },
    { "end_code", end_code },
    { "entry_code", entry_code },
    { NULL, NULL },
};

void lh_open_guest(lua_State *L, int raw)
{
    find_layout_functions();
    lua_pushboolean(L, entry_code_fn != NULL);
    lua_setfield(L, raw, "have_code_layout");
    lh_set_functions(L, raw, guest_functions);
}
