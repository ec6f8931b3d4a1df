/*
 * luahost: the trampolines between QEMU's plugin API versions and the
 * host's one set of callback signatures (qemu_api.h). Each event has one
 * function slot, set before QEMU is asked to call it; QEMU calls the
 * trampoline of its version, which calls the slot.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "luahost.h"

static LhQemuFn atexit_fn, flush_fn, reset_fn, uninstall_fn;
static LhQemuVcpuFn vcpu_init_fn, vcpu_exit_fn, vcpu_idle_fn, vcpu_resume_fn;
static LhQemuTbFn tb_trans_fn;
static LhQemuSyscallFn syscall_fn;
static LhQemuSyscallRetFn syscall_ret_fn;
#if LH_HAVE_SYSCALL_FILTER
static LhQemuSyscallFilterFn syscall_filter_fn;
#endif
#if LH_HAVE_DISCON
static LhQemuDisconFn discon_fn;
#endif
/*
 * A slot is set again at each registration, after a reset too, while other
 * vCPUs' callbacks read it: atomic, though the function is always the same.
 */
#define SET_SLOT(slot, fn) __atomic_store_n(&(slot), (fn), __ATOMIC_RELAXED)
#define SLOT(slot) __atomic_load_n(&(slot), __ATOMIC_RELAXED)

/* vcpu_for_each nests (a script may call it from its own fn): per thread. */
static __thread LhQemuVcpuFn for_each_fn;

#if LH_API >= 7
/* API 7: no plugin id; userdata last (unused: the slots say it all). */
#define LH_CB(...) (__VA_ARGS__, void *userdata)
#define LH_CB0 (void *userdata)
#define LH_USERDATA , NULL       /* the last argument of a registration */
#else
/* API 4 to 6: the plugin id first. */
#define LH_CB(...) (qemu_plugin_id_t id, __VA_ARGS__)
#define LH_CB0 (qemu_plugin_id_t id)
#define LH_USERDATA
#endif

/* atexit took userdata before API 7 too */
#if LH_API >= 7
static void at_atexit(void *userdata)
#else
static void at_atexit(qemu_plugin_id_t id, void *userdata)
#endif
{
    SLOT(atexit_fn)();
}

static void at_flush LH_CB0
{
    SLOT(flush_fn)();
}

static void at_reset LH_CB0
{
    SLOT(reset_fn)();
}

static void at_uninstall LH_CB0
{
    SLOT(uninstall_fn)();
}

static void at_vcpu_init LH_CB(unsigned int vcpu_index)
{
    SLOT(vcpu_init_fn)(vcpu_index);
}

static void at_vcpu_exit LH_CB(unsigned int vcpu_index)
{
    SLOT(vcpu_exit_fn)(vcpu_index);
}

static void at_vcpu_idle LH_CB(unsigned int vcpu_index)
{
    SLOT(vcpu_idle_fn)(vcpu_index);
}

static void at_vcpu_resume LH_CB(unsigned int vcpu_index)
{
    SLOT(vcpu_resume_fn)(vcpu_index);
}

static void at_for_each LH_CB(unsigned int vcpu_index)
{
    for_each_fn(vcpu_index);
}

static void at_tb_trans LH_CB(struct qemu_plugin_tb *tb)
{
    SLOT(tb_trans_fn)(tb);
}

static void at_syscall LH_CB(unsigned int vcpu_index, int64_t num,
                             uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                             uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    const uint64_t args[8] = { a1, a2, a3, a4, a5, a6, a7, a8 };

    SLOT(syscall_fn)(vcpu_index, num, args);
}

static void at_syscall_ret LH_CB(unsigned int vcpu_index, int64_t num, int64_t ret)
{
    SLOT(syscall_ret_fn)(vcpu_index, num, ret);
}

#if LH_HAVE_SYSCALL_FILTER
#if LH_API >= 7
typedef int64_t LhSysret;       /* documented for 11.1 */
#else
typedef uint64_t LhSysret;      /* as 11.0 added it */
#endif
static bool at_syscall_filter LH_CB(unsigned int vcpu_index, int64_t num,
                                    uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                                    uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8,
                                    LhSysret *sysret)
{
    const uint64_t args[8] = { a1, a2, a3, a4, a5, a6, a7, a8 };
    int64_t ret = 0;

    if (!SLOT(syscall_filter_fn)(vcpu_index, num, args, &ret)) {
        return false;
    }
    *sysret = (LhSysret)ret;
    return true;
}
#endif

#if LH_HAVE_DISCON
static void at_discon LH_CB(unsigned int vcpu_index, enum qemu_plugin_discon_type type,
                            uint64_t from_pc, uint64_t to_pc)
{
    SLOT(discon_fn)(vcpu_index, (int)type, from_pc, to_pc);
}
#endif

void lh_qemu_on_atexit(qemu_plugin_id_t id, LhQemuFn fn)
{
    SET_SLOT(atexit_fn, fn);
    qemu_plugin_register_atexit_cb(id, at_atexit, NULL);
}

void lh_qemu_on_vcpu_init(qemu_plugin_id_t id, LhQemuVcpuFn fn)
{
    SET_SLOT(vcpu_init_fn, fn);
    qemu_plugin_register_vcpu_init_cb(id, at_vcpu_init LH_USERDATA);
}

void lh_qemu_on_vcpu_exit(qemu_plugin_id_t id, LhQemuVcpuFn fn)
{
    SET_SLOT(vcpu_exit_fn, fn);
    qemu_plugin_register_vcpu_exit_cb(id, at_vcpu_exit LH_USERDATA);
}

void lh_qemu_on_vcpu_idle(qemu_plugin_id_t id, LhQemuVcpuFn fn)
{
    SET_SLOT(vcpu_idle_fn, fn);
    qemu_plugin_register_vcpu_idle_cb(id, at_vcpu_idle LH_USERDATA);
}

void lh_qemu_on_vcpu_resume(qemu_plugin_id_t id, LhQemuVcpuFn fn)
{
    SET_SLOT(vcpu_resume_fn, fn);
    qemu_plugin_register_vcpu_resume_cb(id, at_vcpu_resume LH_USERDATA);
}

void lh_qemu_on_tb_trans(qemu_plugin_id_t id, LhQemuTbFn fn)
{
    SET_SLOT(tb_trans_fn, fn);
    qemu_plugin_register_vcpu_tb_trans_cb(id, at_tb_trans LH_USERDATA);
}

void lh_qemu_on_flush(qemu_plugin_id_t id, LhQemuFn fn)
{
    SET_SLOT(flush_fn, fn);
    qemu_plugin_register_flush_cb(id, at_flush LH_USERDATA);
}

void lh_qemu_on_syscall(qemu_plugin_id_t id, LhQemuSyscallFn fn)
{
    SET_SLOT(syscall_fn, fn);
    qemu_plugin_register_vcpu_syscall_cb(id, at_syscall LH_USERDATA);
}

void lh_qemu_on_syscall_ret(qemu_plugin_id_t id, LhQemuSyscallRetFn fn)
{
    SET_SLOT(syscall_ret_fn, fn);
    qemu_plugin_register_vcpu_syscall_ret_cb(id, at_syscall_ret LH_USERDATA);
}

void lh_qemu_on_syscall_filter(qemu_plugin_id_t id, LhQemuSyscallFilterFn fn)
{
#if LH_HAVE_SYSCALL_FILTER
    SET_SLOT(syscall_filter_fn, fn);
    qemu_plugin_register_vcpu_syscall_filter_cb(id, at_syscall_filter LH_USERDATA);
#else
    g_assert_not_reached();     /* callers check LH_HAVE_SYSCALL_FILTER */
#endif
}

void lh_qemu_on_discon(qemu_plugin_id_t id, LhQemuDisconFn fn)
{
#if LH_HAVE_DISCON
    SET_SLOT(discon_fn, fn);
    qemu_plugin_register_vcpu_discon_cb(id, QEMU_PLUGIN_DISCON_ALL, at_discon LH_USERDATA);
#else
    g_assert_not_reached();     /* callers check LH_HAVE_DISCON */
#endif
}

void lh_qemu_reset(qemu_plugin_id_t id, LhQemuFn done)
{
    SET_SLOT(reset_fn, done);
    qemu_plugin_reset(id, at_reset LH_USERDATA);
}

void lh_qemu_uninstall(qemu_plugin_id_t id, LhQemuFn done)
{
    SET_SLOT(uninstall_fn, done);
    qemu_plugin_uninstall(id, at_uninstall LH_USERDATA);
}

void lh_qemu_vcpu_for_each(qemu_plugin_id_t id, LhQemuVcpuFn fn)
{
    LhQemuVcpuFn outer = for_each_fn;

    for_each_fn = fn;
    qemu_plugin_vcpu_for_each(id, at_for_each LH_USERDATA);
    for_each_fn = outer;
}

int lh_qemu_read_register(struct qemu_plugin_register *reg, GByteArray *buf)
{
#if LH_API >= 6
    return qemu_plugin_read_register(reg, buf) ? (int)buf->len : 0;
#else
    int n = qemu_plugin_read_register(reg, buf);
    return n > 0 ? n : 0;
#endif
}

bool lh_qemu_write_register(struct qemu_plugin_register *reg, GByteArray *buf)
{
#if LH_API >= 6
    return qemu_plugin_write_register(reg, buf);
#elif LH_HAVE_API5
    return qemu_plugin_write_register(reg, buf) > 0;
#else
    g_assert_not_reached();     /* callers check LH_HAVE_API5 */
#endif
}

bool lh_qemu_register_is_readonly(const qemu_plugin_reg_descriptor *d)
{
#if LH_HAVE_READONLY_REGS
    return d->is_readonly;
#else
    return false;
#endif
}

/* A request of this vCPU thread's running callback. */
static __thread bool pc_requested;
static __thread uint64_t pc_target;

void lh_qemu_request_pc(uint64_t pc)
{
    pc_requested = true;
    pc_target = pc;
}

#if LH_HAVE_SET_PC
/* lh_exec_cb has returned: Lua is done and the lock let go. */
static void exec_then_set_pc(unsigned int vcpu_index, void *udata)
{
    lh_exec_cb(vcpu_index, udata);
    if (pc_requested) {
        pc_requested = false;
        qemu_plugin_set_pc(pc_target);     /* does not return */
    }
}
#endif

LhQemuExecFn lh_qemu_exec_cb(enum qemu_plugin_cb_flags regs)
{
#if LH_HAVE_SET_PC
    if (regs == QEMU_PLUGIN_CB_RW_REGS_PC) {
        return exec_then_set_pc;
    }
#endif
    return lh_exec_cb;
}
