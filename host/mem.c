/*
 * luahost: memory accesses ("luahost.mem") and their physical addresses
 * ("luahost.hwaddr"), handed to insn:on_mem callbacks.
 *
 * Both are valid only during the memory callback that received them:
 * QEMU reads the accessed value from the current vCPU, and keeps the
 * hwaddr record in a per-thread buffer that the next access overwrites.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "luahost.h"

typedef struct LhMem {
    LhHandle h;             /* first: lh_check_handle sees an LhHandle */
    qemu_plugin_meminfo_t info;
    uint64_t vaddr;
} LhMem;

static LhMem *check_mem(lua_State *L)
{
    lh_check_handle(L, 1, LH_MEM_MT, "a mem");
    return lua_touserdata(L, 1);
}

static struct qemu_plugin_hwaddr *check_hwaddr(lua_State *L)
{
    return lh_check_handle(L, 1, LH_HWADDR_MT, "a hwaddr");
}

/* The mem metatable, by reference: one is set on every access's handle. */
static int mem_mt_ref = LUA_NOREF;

static void push_mem(lua_State *L, qemu_plugin_meminfo_t info, uint64_t vaddr)
{
    LhMem *m = lua_newuserdata(L, sizeof(*m));

    m->h.ptr = NULL;
    m->h.epoch = lh_thread()->live_epoch;
    m->h.type = LH_MEM_MT;
    m->info = info;
    m->vaddr = vaddr;
    lua_rawgeti(L, LUA_REGISTRYINDEX, mem_mt_ref);
    lua_setmetatable(L, -2);
}

typedef struct LhAccess {
    unsigned int vcpu_index;
    qemu_plugin_meminfo_t info;
    uint64_t vaddr;
} LhAccess;

static int push_access(lua_State *L, const void *args)
{
    const LhAccess *a = args;

    lua_pushinteger(L, a->vcpu_index);
    push_mem(L, a->info, a->vaddr);
    lh_push_u64(L, a->vaddr);
    return 3;
}

/* The trampoline of memory callbacks: fn(vcpu_index, mem, vaddr, value). */
void lh_mem_cb(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    LhAccess a = { vcpu_index, info, vaddr };

    lh_tsan_received(udata);
    lh_dispatch(udata, (int)vcpu_index, push_access, &a);
}

static int push_access_values(lua_State *L, const void *args)
{
    const LhAccess *a = args;

    lua_pushinteger(L, a->vcpu_index);
    lh_push_u64(L, a->vaddr);
    lua_pushinteger(L, 1 << qemu_plugin_mem_size_shift(a->info));
    lua_pushboolean(L, qemu_plugin_mem_is_store(a->info));
    return 4;
}

/*
 * The trampoline of insn:on_access: fn(vcpu_index, vaddr, size, is_store,
 * value), plain values where on_mem makes a mem handle per access.
 */
void lh_access_cb(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    LhAccess a = { vcpu_index, info, vaddr };

    lh_tsan_received(udata);
    lh_dispatch(udata, (int)vcpu_index, push_access_values, &a);
}

static int mem_vaddr(lua_State *L)
{
    lh_push_u64(L, check_mem(L)->vaddr);
    return 1;
}

/* The access size in bytes (1, 2, 4, 8 or 16). */
static int mem_size(lua_State *L)
{
    lua_pushinteger(L, 1 << qemu_plugin_mem_size_shift(check_mem(L)->info));
    return 1;
}

static int mem_size_shift(lua_State *L)
{
    lua_pushinteger(L, qemu_plugin_mem_size_shift(check_mem(L)->info));
    return 1;
}

static int mem_is_store(lua_State *L)
{
    lua_pushboolean(L, qemu_plugin_mem_is_store(check_mem(L)->info));
    return 1;
}

static int mem_is_sign_extended(lua_State *L)
{
    lua_pushboolean(L, qemu_plugin_mem_is_sign_extended(check_mem(L)->info));
    return 1;
}

static int mem_is_big_endian(lua_State *L)
{
    lua_pushboolean(L, qemu_plugin_mem_is_big_endian(check_mem(L)->info));
    return 1;
}

/*
 * The value loaded or stored, zero-extended to u64 as the guest saw it
 * in memory (before any sign extension into a register). A 16-byte
 * access returns two u64: low, high.
 */
static int mem_value(lua_State *L)
{
    qemu_plugin_mem_value v = qemu_plugin_mem_get_value(check_mem(L)->info);

    switch (v.type) {
    case QEMU_PLUGIN_MEM_VALUE_U8:
        lh_push_u64(L, v.data.u8);
        return 1;
    case QEMU_PLUGIN_MEM_VALUE_U16:
        lh_push_u64(L, v.data.u16);
        return 1;
    case QEMU_PLUGIN_MEM_VALUE_U32:
        lh_push_u64(L, v.data.u32);
        return 1;
    case QEMU_PLUGIN_MEM_VALUE_U64:
        lh_push_u64(L, v.data.u64);
        return 1;
    case QEMU_PLUGIN_MEM_VALUE_U128:
        lh_push_u64(L, v.data.u128.low);
        lh_push_u64(L, v.data.u128.high);
        return 2;
    default:
        return lh_error(L, "unknown memory value type %d", (int)v.type);
    }
}

/* The physical side of the access (system mode), or nil (user mode). */
static int mem_hwaddr(lua_State *L)
{
    LhMem *m = check_mem(L);
    struct qemu_plugin_hwaddr *hw;

    if (lh_thread()->ctx.vcpu == LH_NO_VCPU) {
        return lh_error(L, "mem:hwaddr() needs the vCPU of its memory callback");
    }
    hw = qemu_plugin_get_hwaddr(m->info, m->vaddr);
    if (hw == NULL) {
        lua_pushnil(L);
    } else {
        lh_push_handle(L, hw, LH_HWADDR_MT);
    }
    return 1;
}

static int mem_tostring(lua_State *L)
{
    LhMem *m = lh_check_udata(L, 1, LH_MEM_MT);

    if (m->h.epoch != lh_thread()->live_epoch) {
        lua_pushliteral(L, "mem (expired)");
    } else {
        lua_pushfstring(L, "mem (%s of %d bytes)",
                        qemu_plugin_mem_is_store(m->info) ? "store" : "load",
                        1 << qemu_plugin_mem_size_shift(m->info));
    }
    return 1;
}

static int hwaddr_phys_addr(lua_State *L)
{
    lh_push_u64(L, qemu_plugin_hwaddr_phys_addr(check_hwaddr(L)));
    return 1;
}

static int hwaddr_is_io(lua_State *L)
{
    lua_pushboolean(L, qemu_plugin_hwaddr_is_io(check_hwaddr(L)));
    return 1;
}

/* "RAM", or the memory region's name for device (I/O) accesses. */
static int hwaddr_device_name(lua_State *L)
{
    lua_pushstring(L, qemu_plugin_hwaddr_device_name(check_hwaddr(L)));
    return 1;
}

static const luaL_Reg mem_methods[] = {
    { "vaddr", mem_vaddr },
    { "size", mem_size },
    { "size_shift", mem_size_shift },
    { "is_store", mem_is_store },
    { "is_sign_extended", mem_is_sign_extended },
    { "is_big_endian", mem_is_big_endian },
    { "value", mem_value },
    { "hwaddr", mem_hwaddr },
    { NULL, NULL },
};

static const luaL_Reg mem_meta[] = {
    { "__tostring", mem_tostring },
    { NULL, NULL },
};

static const luaL_Reg hwaddr_methods[] = {
    { "phys_addr", hwaddr_phys_addr },
    { "is_io", hwaddr_is_io },
    { "device_name", hwaddr_device_name },
    { NULL, NULL },
};

void lh_open_mem(lua_State *L, int raw)
{
    (void)raw;
    lh_new_type(L, LH_MEM_MT, mem_methods, mem_meta);
    luaL_getmetatable(L, LH_MEM_MT);
    mem_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lh_new_type(L, LH_HWADDR_MT, hwaddr_methods, NULL);
}
