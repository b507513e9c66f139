/*
 * platform.c - the contract of platform.h on Linux: mmap and madvise,
 * futexes, pthreads, the monotonic clock, stderr, the environment.
 * Memory checkers are in checker.c.
 */
#include "../platform.h"
#include "labyrinth.h"

#include <linux/membarrier.h>

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CACHELINE 64

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

/* Back a mapping with huge pages: explicit ones (MAP_HUGETLB) when the OS
 * has them reserved, else transparent huge pages.  The region must be 2 MiB
 * aligned for either; the caller over-maps and aligns. */
#define HUGE_2M (2u << 20)
void *plat_map_huge(size_t bytes, bool prefault, int *mode)
{
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    if (prefault)
        flags |= MAP_POPULATE;
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
    if (lazy && madvise(p, bytes, MADV_FREE) == 0)
        return true;
    return madvise(p, bytes, MADV_DONTNEED) == 0;
}

/* MADV_POPULATE_WRITE is from Linux 5.14; before it the core touches the
 * pages itself. */
bool plat_recommit(void *p, size_t bytes)
{
    return madvise(p, bytes, MADV_POPULATE_WRITE) == 0;
}

bool plat_protect(void *p, size_t bytes, bool accessible)
{
    return mprotect(p, bytes, accessible ? PROT_READ | PROT_WRITE : PROT_NONE) == 0;
}

int plat_advise_huge(void *p, size_t bytes)
{
    return madvise(p, bytes, MADV_HUGEPAGE) == 0 ? LAB_HUGE_TRANSPARENT : LAB_HUGE_REFUSED;
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

/* The usual refusal is RLIMIT_MEMLOCK: say so with the numbers, since the
 * fix (ulimit -l, or CAP_IPC_LOCK) is the user's. */
int plat_mlock(void *p, size_t bytes, char *why, size_t why_len)
{
    if (mlock(p, bytes) == 0)
        return 0;
    int err = errno;
    struct rlimit rl;
    if (why_len == 0)
        return err;
    if (err == ENOMEM || err == EPERM) {
        if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
            snprintf(why, why_len, "RLIMIT_MEMLOCK is %llu bytes; raise it (ulimit -l) or grant CAP_IPC_LOCK",
                     (unsigned long long)rl.rlim_cur);
        else
            snprintf(why, why_len, "the kernel refused to lock the memory");
    } else {
        snprintf(why, why_len, "%s", strerror(err));
    }
    return err;
}

void plat_wait(_Atomic uint32_t *word, uint32_t expected, unsigned timeout_ms)
{
    int saved = errno;
    struct timespec ts = { .tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000L };
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, &ts, NULL, 0);
    errno = saved;
}

/* Wakes may come from a signal handler: errno is the interrupted code's. */
void plat_wake_all(_Atomic uint32_t *word)
{
    int saved = errno;
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
    errno = saved;
}

void plat_wake_one(_Atomic uint32_t *word)
{
    int saved = errno;
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
}

uint64_t plat_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The coarse clock is the tick's timestamp, which the vDSO reads whatever
 * the clock source (the fine one falls back to a system call when the
 * source is not one user space can read). */
uint64_t plat_now_coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
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
 * ordered against the caller (the asymmetric fences of handoff.c: reclaim's steal, a destroy closing the lanes).
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

/* Large metadata (a room's lanes, 256 KiB) is mapped: zero without a
 * memset, and a page is committed only once it is written, so a lane that
 * no thread claims, or that never fills, costs address space only.
 *
 * It starts META_COLOUR bytes into its first page, not at the page's
 * start: the lines at page offset 0 share their cache sets with the first
 * line of every page the allocator hands out, the line a packet's headers
 * are in, which its users touch all the time.  A lane's hot lines there
 * were evicted by every few pages a core touched: the hand-off lost a fifth
 * of its pages per second (docs/DESIGN.md). */
#define META_MAP_MIN ((size_t)64 << 10)
#define META_COLOUR  ((size_t)1 << 10)

void *plat_meta_alloc(size_t bytes)
{
    if (bytes >= META_MAP_MIN) {
        char *p = mmap(NULL, bytes + META_COLOUR, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p + META_COLOUR;
    }
    void *p = aligned_alloc(CACHELINE, (bytes + CACHELINE - 1) & ~(size_t)(CACHELINE - 1));
    if (p)
        memset(p, 0, bytes);
    return p;
}

void plat_meta_free(void *p, size_t bytes)
{
    if (bytes >= META_MAP_MIN)
        munmap((char *)p - META_COLOUR, bytes + META_COLOUR);
    else
        free(p);
}

/* write(2) is async-signal-safe; stdio is not. */
void plat_log(const char *s, size_t n)
{
    int saved = errno;
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
    errno = saved;
}

const char *plat_getenv(const char *name)
{
    return getenv(name);
}

void plat_abort(void)
{
    abort();
}

/* Initial-exec TLS (the library is built with -ftls-model=initial-exec):
 * no allocation on first use, so a signal handler may ask first. */
_Thread_local unsigned char plat_thread_area[PLAT_THREAD_AREA] __attribute__((aligned(64)));

unsigned char *(plat_thread_self)(void)
{
    return plat_thread_area;
}

/* Threads run on other processors, and are preempted: a holder always
 * gets to run (a signal handler's interrupted holder the core recognises
 * by its thread's area). */
bool (plat_spin_futile)(void)
{
    return false;
}

struct plat_worker {
    pthread_t thread;
    void (*fn)(void *);
    void *arg;
};

static void *worker_main(void *w)
{
    struct plat_worker *pw = w;
    pthread_setname_np(pthread_self(), "lab-reclaim");
    pw->fn(pw->arg);
    return NULL;
}

struct plat_worker *plat_worker_start(void (*fn)(void *), void *arg)
{
    struct plat_worker *w = malloc(sizeof(*w));
    if (!w)
        return NULL;
    w->fn = fn;
    w->arg = arg;
    /* Born with every signal blocked but the faults: a signal sent to the
     * process is the program's, for its own threads (whose handlers may use
     * their rooms), never the library's thread.  The creator's mask is its
     * own again at once. */
    sigset_t all, old;
    sigfillset(&all);
    /* Not the faults: the thread runs the program's code too (shrinkers,
     * log hooks), whose SIGSEGV handler (a lazily mapped cache, a
     * sanitizer) must run there; blocked, the kernel kills the process. */
    static const int faults[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS };
    for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
        sigdelset(&all, faults[i]);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&w->thread, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        free(w);
        return NULL;
    }
    return w;
}

bool plat_workers(void) { return true; }

void plat_worker_join(struct plat_worker *w)
{
    pthread_join(w->thread, NULL);
    free(w);
}
