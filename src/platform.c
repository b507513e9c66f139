/*
 * platform.c - the only file that talks to the OS: address space, futexes,
 * clocks.  A freestanding port replaces this file.
 */
#include "internal.h"

#include <linux/membarrier.h>

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
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
    if (fault_point(FP_MMAP))
        return NULL;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void plat_unmap(void *p, size_t bytes)
{
    if (p)
        munmap(p, bytes);
}

/* Back a mapping with huge pages: explicit ones (MAP_HUGETLB) when the OS
 * has them reserved, else transparent huge pages.  The region must be 2 MiB
 * aligned for either; the caller over-maps and aligns. */
#define HUGE_2M (2u << 20)
void *plat_map_huge(size_t bytes, bool prefault, int *mode)
{
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    if (prefault)
        flags |= MAP_POPULATE;
    if (fault_point(FP_MMAP))
        return NULL;
    if (bytes % HUGE_2M == 0) {
        /* Not MAP_NORESERVE: without the reservation the mapping succeeds
         * even when the pool has no huge pages, and the first touch dies
         * with SIGBUS; with it, mmap fails and THP is used instead. */
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, (flags & ~MAP_NORESERVE) | MAP_HUGETLB, -1, 0);
        if (p != MAP_FAILED) {
            *mode = LAB_HUGE_EXPLICIT;
            return p;
        }
    }
    size_t span = bytes + HUGE_2M;
    char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, flags & ~MAP_POPULATE, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    char *p = (char *)(((uintptr_t)raw + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1));
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    if (p + bytes < raw + span)
        munmap(p + bytes, (size_t)(raw + span - (p + bytes)));
    *mode = madvise(p, bytes, MADV_HUGEPAGE) == 0 ? LAB_HUGE_TRANSPARENT : LAB_HUGE_REFUSED;
    if (prefault)
        madvise(p, bytes, MADV_POPULATE_WRITE);
    return p;
}

bool plat_decommit(void *p, size_t bytes, bool lazy)
{
    /* MADV_FREE lets the kernel take the pages when it needs them (cheaper
     * when memory is not short); DONTNEED gives them back now. */
    if (fault_point(FP_DECOMMIT))
        return false;
    if (lazy && madvise(p, bytes, MADV_FREE) == 0)
        return true;
    return madvise(p, bytes, MADV_DONTNEED) == 0;
}

void plat_recommit(void *p, size_t bytes)
{
    if (!fault_point(FP_RECOMMIT) && madvise(p, bytes, MADV_POPULATE_WRITE) == 0)
        return;
    for (size_t off = 0; off < bytes; off += LAB_PAGE_SIZE)   /* kernels before 5.14 */
        ((volatile char *)p)[off] = 0;
}

void plat_protect(void *p, size_t bytes, bool accessible)
{
    if (fault_point(FP_MPROTECT))
        return;
    mprotect(p, bytes, accessible ? PROT_READ | PROT_WRITE : PROT_NONE);
}

/* Resident bytes of a range, by mincore in 16 MiB steps. */
size_t plat_resident(const void *p, size_t bytes)
{
    unsigned char vec[4096];
    size_t resident = 0;
    for (size_t off = 0; off < bytes; off += sizeof(vec) * LAB_PAGE_SIZE) {
        size_t len = bytes - off < sizeof(vec) * LAB_PAGE_SIZE ? bytes - off : sizeof(vec) * LAB_PAGE_SIZE;
        if (mincore((char *)p + off, len, vec) != 0)
            return resident;
        for (size_t i = 0; i < (len + LAB_PAGE_SIZE - 1) / LAB_PAGE_SIZE; i++)
            resident += (vec[i] & 1) ? LAB_PAGE_SIZE : 0;
    }
    return resident;
}

int plat_mlock(void *p, size_t bytes)
{
    if (fault_point(FP_MLOCK))
        return ENOMEM;
    return mlock(p, bytes) == 0 ? 0 : errno;
}

void plat_futex_wait(_Atomic uint32_t *word, uint32_t expected, unsigned timeout_ms)
{
    if (fault_point(FP_FUTEX_WAIT))
        return;
    struct timespec ts = { .tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000L };
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, &ts, NULL, 0);
}

void plat_futex_wake_all(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

void plat_futex_wake_one(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

uint64_t plat_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void plat_sleep_ms(unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A full memory barrier on every running thread of the process, so that a
 * context that only orders its own stores with a compiler fence is still
 * ordered against the caller (the asymmetric fence of room.c's steal).
 * False where the kernel cannot (then the caller does without). */
bool plat_membarrier(void)
{
    static _Atomic int registered;   /* 0 unknown, 1 yes, -1 unsupported */
    int r = atomic_load(&registered);
    if (r == 0) {
        r = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 ? 1 : -1;
        atomic_store(&registered, r);
    }
    return r > 0 && syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
}

void plat_yield(void)
{
    sched_yield();
}

void *plat_meta_alloc(size_t bytes)
{
    if (fault_point(FP_META_ALLOC))
        return NULL;
    void *p = aligned_alloc(CACHELINE, (bytes + CACHELINE - 1) & ~(size_t)(CACHELINE - 1));
    if (p)
        memset(p, 0, bytes);
    return p;
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
