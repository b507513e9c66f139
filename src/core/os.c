/*
 * os.c - the platform as the core calls it.  Every primitive that can fail
 * passes its fault point first (fault.c), so a test can make the machine
 * refuse at exactly that call; the rest of the core calls these, never the
 * failing primitives themselves.
 */
#include "fault.h"

#define ENOMEM_VALUE 12   /* what an injected mlock refusal reports (ENOMEM on Linux) */

void *os_map(size_t bytes, bool prefault)
{
    return fault_point(FP_MMAP) ? NULL : plat_map(bytes, prefault);
}

void *os_map_huge(size_t bytes, bool prefault, int *mode)
{
    return fault_point(FP_MMAP) ? NULL : plat_map_huge(bytes, prefault, mode);
}

int os_mlock(void *p, size_t bytes, char *why, size_t why_len)
{
    if (fault_point(FP_MLOCK)) {
        if (why_len)
            why[0] = 0;
        return ENOMEM_VALUE;
    }
    return plat_mlock(p, bytes, why, why_len);
}

bool os_decommit(void *p, size_t bytes, bool lazy)
{
    return !fault_point(FP_DECOMMIT) && plat_decommit(p, bytes, lazy);
}

/* A port that cannot pre-commit (or an injected refusal) gets its pages
 * touched here, so that no page fault follows the hand-out: false then.
 * The touch writes a zero at each page's start, which MADV_FREE memory
 * the kernel left in place keeps beside its old contents (page_hook_recommit
 * mends that where it matters). */
bool os_recommit(void *p, size_t bytes)
{
    if (!fault_point(FP_RECOMMIT) && plat_recommit(p, bytes))
        return true;
    for (size_t off = 0; off < bytes; off += LAB_PAGE_SIZE)
        ((volatile char *)p)[off] = 0;
    return false;
}

/* Every page of [p, p + bytes) resident: one byte of each read and
 * written back unchanged, so only where no one else writes meanwhile
 * (memory not yet handed to anyone).  The last byte when it lies on a page
 * the steps from p missed (p not at a page's start). */
void os_touch(void *p, size_t bytes)
{
    volatile char *c = p;
    if (c == NULL || bytes == 0)
        return;
    size_t off = 0;
    for (; off < bytes; off += LAB_PAGE_SIZE)
        c[off] = c[off];
    off -= LAB_PAGE_SIZE;   /* the last byte the loop touched */
    if (((uintptr_t)c + off) / LAB_PAGE_SIZE != ((uintptr_t)c + bytes - 1) / LAB_PAGE_SIZE)
        c[bytes - 1] = c[bytes - 1];
}

bool os_protect(void *p, size_t bytes, bool accessible)
{
    return !fault_point(FP_MPROTECT) && plat_protect(p, bytes, accessible);
}

/* An injected failure is a spurious wake-up: the caller re-checks. */
void os_wait(_Atomic uint32_t *word, uint32_t expected, unsigned timeout_ms)
{
    if (!fault_point(FP_FUTEX_WAIT))
        plat_wait(word, expected, timeout_ms);
}

void *meta_alloc(size_t bytes)
{
    return fault_point(FP_META_ALLOC) ? NULL : plat_meta_alloc(bytes);
}

void meta_free(void *p, size_t bytes)
{
    if (p)
        plat_meta_free(p, bytes);
}

struct plat_worker *os_worker_start(void (*fn)(void *), void *arg)
{
    return fault_point(FP_THREAD_START) ? NULL : plat_worker_start(fn, arg);
}
