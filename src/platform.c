/*
 * platform.c - the only file that talks to the OS: address space, futexes,
 * clocks.  A freestanding port replaces this file.
 */
#include "internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* MAP_NORESERVE: the kernel commits memory as it is touched, so a 64 GiB
 * arena on a 24 GiB machine costs nothing until used. */
void *plat_map(size_t bytes, bool prefault)
{
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    if (prefault)
        flags |= MAP_POPULATE;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void plat_unmap(void *p, size_t bytes)
{
    if (p)
        munmap(p, bytes);
}

int plat_mlock(void *p, size_t bytes)
{
    return mlock(p, bytes) == 0 ? 0 : errno;
}

void plat_futex_wait(_Atomic uint32_t *word, uint32_t expected, unsigned timeout_ms)
{
    struct timespec ts = { .tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000L };
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, &ts, NULL, 0);
}

void plat_futex_wake_all(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

uint64_t plat_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void plat_yield(void)
{
    sched_yield();
}

/* write(2) is async-signal-safe; stdio is not. */
void plat_write_stderr(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}
