// The C audio clock lives in csrc/ with the rest of the runtime's C; cgo only
// compiles files in the package directory, hence this one-line shim.
#include "../../csrc/us_clock.c"

/* Locks the top `bytes` of the clock thread's stack (glibc keeps the
 * thread's descriptor and TLS there, and the thread's frames grow down from
 * it), so the real-time thread never faults on its own stack. Returns the
 * bytes locked, 0 on failure, and where in *at: glibc caches a joined
 * thread's stack for reuse, so the caller unlocks it after the join. */
#include <sys/mman.h>
size_t us_clock_lock_stack(us_clock *c, size_t bytes, uintptr_t *at) {
    pthread_attr_t a;
    void *addr;
    size_t size;
    if (pthread_getattr_np(c->thread, &a) != 0) return 0;
    int err = pthread_attr_getstack(&a, &addr, &size);
    pthread_attr_destroy(&a);
    if (err != 0) return 0;
    uintptr_t top = ((uintptr_t)addr + size) & ~(uintptr_t)4095;
    uintptr_t bottom = top - bytes < (uintptr_t)addr ? (uintptr_t)addr : top - bytes;
    if (mlock((void *)bottom, top - bottom) != 0) return 0;
    *at = bottom;
    return top - bottom;
}

void us_clock_unlock_stack(uintptr_t at, size_t bytes) { munlock((void *)at, bytes); }
