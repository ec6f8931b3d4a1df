/*
 * luahost: QEMU's plugin API versions, in one place.
 *
 * The host builds against plugin API 4 (QEMU 10.0), 5 (10.1, 10.2),
 * 6 (11.0) and 7 (11.1), whichever the header it is configured with
 * declares (its QEMU_PLUGIN_VERSION). QEMU's global callbacks changed
 * shape across them: up to API 6 they get the plugin id first; from
 * API 7 they get no id and a userdata pointer last. API 6 also made
 * register reads and writes return bool. The rest of the host registers
 * its callbacks here, with one signature whatever the version, and reads
 * and writes registers through here; qemu_api.c is the only file that
 * knows the difference.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef LUAHOST_QEMU_API_H
#define LUAHOST_QEMU_API_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#define LH_API QEMU_PLUGIN_VERSION

/* What a script can ask for only on a QEMU that new (luahost.has()). */
#define LH_HAVE_SET_PC (LH_API >= 6)          /* qemu_plugin_set_pc */
#define LH_HAVE_READONLY_REGS (LH_API >= 6)   /* reg_descriptor.is_readonly */
#define LH_HAVE_SYSCALL_FILTER (LH_API >= 6)  /* skip a syscall, give its result */

typedef void (*LhQemuFn)(void);
typedef void (*LhQemuVcpuFn)(unsigned int vcpu_index);
typedef void (*LhQemuTbFn)(struct qemu_plugin_tb *tb);
typedef void (*LhQemuSyscallFn)(unsigned int vcpu_index, int64_t num, const uint64_t args[8]);
typedef void (*LhQemuSyscallRetFn)(unsigned int vcpu_index, int64_t num, int64_t ret);
/* true: the syscall is not run and *ret is its result */
typedef bool (*LhQemuSyscallFilterFn)(unsigned int vcpu_index, int64_t num,
                                      const uint64_t args[8], int64_t *ret);
typedef void (*LhQemuDisconFn)(unsigned int vcpu_index, int type, uint64_t from_pc,
                               uint64_t to_pc);

/* One callback per event: registering again replaces the function. */
void lh_qemu_on_atexit(qemu_plugin_id_t id, LhQemuFn fn);
void lh_qemu_on_vcpu_init(qemu_plugin_id_t id, LhQemuVcpuFn fn);
void lh_qemu_on_vcpu_exit(qemu_plugin_id_t id, LhQemuVcpuFn fn);
void lh_qemu_on_vcpu_idle(qemu_plugin_id_t id, LhQemuVcpuFn fn);
void lh_qemu_on_vcpu_resume(qemu_plugin_id_t id, LhQemuVcpuFn fn);
void lh_qemu_on_tb_trans(qemu_plugin_id_t id, LhQemuTbFn fn);
void lh_qemu_on_flush(qemu_plugin_id_t id, LhQemuFn fn);
void lh_qemu_on_syscall(qemu_plugin_id_t id, LhQemuSyscallFn fn);
void lh_qemu_on_syscall_ret(qemu_plugin_id_t id, LhQemuSyscallRetFn fn);
void lh_qemu_on_syscall_filter(qemu_plugin_id_t id, LhQemuSyscallFilterFn fn);
void lh_qemu_on_discon(qemu_plugin_id_t id, LhQemuDisconFn fn);
void lh_qemu_reset(qemu_plugin_id_t id, LhQemuFn done);
void lh_qemu_uninstall(qemu_plugin_id_t id, LhQemuFn done);
void lh_qemu_vcpu_for_each(qemu_plugin_id_t id, LhQemuVcpuFn fn);

/* The register's size in bytes, read into buf; 0 when QEMU cannot read it. */
int lh_qemu_read_register(struct qemu_plugin_register *reg, GByteArray *buf);
/* false when QEMU refuses the write. */
bool lh_qemu_write_register(struct qemu_plugin_register *reg, GByteArray *buf);
/* false where QEMU does not say (API 4 and 5). */
bool lh_qemu_register_is_readonly(const qemu_plugin_reg_descriptor *d);
/*
 * luahost.set_pc: the request is noted while Lua runs; QEMU is asked only
 * once the callback's Lua call has returned and the lock is let go, as
 * qemu_plugin_set_pc never returns (it leaves through QEMU's own exit
 * from the vCPU loop, which must not cross lua_pcall).
 */
void lh_qemu_request_pc(uint64_t pc);
/* The exec trampoline for a hook's regs: regs="pc" gets one that applies it. */
typedef void (*LhQemuExecFn)(unsigned int vcpu_index, void *udata);
LhQemuExecFn lh_qemu_exec_cb(enum qemu_plugin_cb_flags regs);

#endif
