/*
 * luahost: what ThreadSanitizer must be told, in a -fsanitize=thread
 * build only (tools/setup's lua5.4-tsan; docs/building.md#sanitizers).
 *
 * GLib's GMutex and GCond are futexes inside libglib, which is not
 * instrumented: TSan would see neither the exclusion nor the order a
 * GMutex makes, and report races on everything it guards. Every
 * g_mutex_lock, g_mutex_trylock, g_mutex_unlock and g_cond_wait_until of
 * the host goes through these wrappers, which announce the lock to TSan
 * with its mutex annotations (a wait releases and takes the mutex
 * again). A GRecMutex needs none: GLib builds it on pthread_mutex_t,
 * which TSan intercepts.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef LUAHOST_TSAN_H
#define LUAHOST_TSAN_H

#if defined(__SANITIZE_THREAD__)
#include <glib.h>
#include <sanitizer/tsan_interface.h>

static inline void lh_tsan_mutex_lock(GMutex *m)
{
    __tsan_mutex_pre_lock(m, 0);
    g_mutex_lock(m);
    __tsan_mutex_post_lock(m, 0, 0);
}

static inline void lh_tsan_mutex_unlock(GMutex *m)
{
    __tsan_mutex_pre_unlock(m, 0);
    g_mutex_unlock(m);
    __tsan_mutex_post_unlock(m, 0);
}

static inline gboolean lh_tsan_mutex_trylock(GMutex *m)
{
    gboolean taken;

    __tsan_mutex_pre_lock(m, __tsan_mutex_try_lock);
    taken = g_mutex_trylock(m);
    __tsan_mutex_post_lock(m, taken ? __tsan_mutex_try_lock : __tsan_mutex_try_lock_failed, 0);
    return taken;
}

static inline gboolean lh_tsan_cond_wait_until(GCond *c, GMutex *m, gint64 end_time)
{
    gboolean signalled;

    __tsan_mutex_pre_unlock(m, 0);
    __tsan_mutex_post_unlock(m, 0);
    signalled = g_cond_wait_until(c, m, end_time);
    __tsan_mutex_pre_lock(m, 0);
    __tsan_mutex_post_lock(m, 0, 0);
    return signalled;
}

#define g_mutex_lock(m) lh_tsan_mutex_lock(m)
#define g_mutex_unlock(m) lh_tsan_mutex_unlock(m)
#define g_mutex_trylock(m) lh_tsan_mutex_trylock(m)
#define g_cond_wait_until(c, m, t) lh_tsan_cond_wait_until((c), (m), (t))

/*
 * A record made at translation and handed to QEMU as a callback's udata
 * (a hook, a stream's site, a callstack's block) is read by the callback
 * on the thread of whichever vCPU runs the block. QEMU publishes the
 * block after the translation, with atomics of its own that TSan does not
 * see: the maker publishes the record once it is written, the callback
 * receives it before reading it.
 */
#define lh_tsan_publish(record) __tsan_release((void *)(record))
#define lh_tsan_received(record) __tsan_acquire((void *)(record))

/*
 * Records are freed in QEMU's flush callback, which QEMU runs as safe
 * work: every vCPU has left its blocks and waits (start_exclusive, made of
 * atomics and a condition TSan does not see). No callback reads a record
 * while it is freed, but TSan, not seeing that order, would pair the free
 * with the last read of another vCPU: it ignores the frees.
 */
void AnnotateIgnoreWritesBegin(const char *file, int line);   /* TSan's runtime has them; */
void AnnotateIgnoreWritesEnd(const char *file, int line);     /* GCC 12 declares neither */
#define lh_tsan_exclusive_begin() AnnotateIgnoreWritesBegin(__FILE__, __LINE__)
#define lh_tsan_exclusive_end() AnnotateIgnoreWritesEnd(__FILE__, __LINE__)
#else
#define lh_tsan_publish(record) ((void)0)
#define lh_tsan_received(record) ((void)0)
#define lh_tsan_exclusive_begin() ((void)0)
#define lh_tsan_exclusive_end() ((void)0)
#endif

#endif
