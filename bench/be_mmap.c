/*
 * be_mmap.c - no allocator: mmap and munmap for every page and block.
 *
 * Blocks are aligned to their size as the others are: map size + size - 4096
 * and unmap the parts before and after the aligned block.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>

#define BE_SYMBOL    peer_backend
#define BE_NAME      "mmap"
#define BE_LABEL     "mmap/munmap per page (the kernel)"
#define BE_WORKLOADS (WL_PAIR | WL_BATCH | WL_HANDOFF | WL_MIX | WL_LATENCY)

#include "be_stateless.h"

static int be_init(char *why, size_t n)
{
    (void)why;
    (void)n;
    return 0;
}

static void be_version(char *buf, size_t n)
{
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(buf, n, "%.*s", (int)strcspn(u.release, "-"), u.release);
    else
        snprintf(buf, n, "?");
}

static inline void *map_bytes(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static inline void *be_page_alloc(struct be_ctx *c)
{
    (void)c;
    return map_bytes(BENCH_PAGE);
}

static inline void be_page_free(struct be_ctx *c, void *p)
{
    (void)c;
    munmap(p, BENCH_PAGE);
}

static inline void be_page_free_remote(struct be_ctx *c, void *p)
{
    (void)c;
    munmap(p, BENCH_PAGE);
}

static inline void *be_block_alloc(struct be_ctx *c, unsigned order)
{
    (void)c;
    size_t size = (size_t)BENCH_PAGE << order;
    if (order == 0)
        return map_bytes(size);
    size_t span = size + size - BENCH_PAGE;
    char *p = map_bytes(span);
    if (!p)
        return NULL;
    char *a = (char *)(((uintptr_t)p + size - 1) & ~(uintptr_t)(size - 1));
    if (a > p)
        munmap(p, (size_t)(a - p));
    if (a + size < p + span)
        munmap(a + size, (size_t)(p + span - (a + size)));
    return a;
}

static inline void be_block_free(struct be_ctx *c, void *p, unsigned order)
{
    (void)c;
    munmap(p, (size_t)BENCH_PAGE << order);
}

static void *be_bg_alloc(struct be_ctx *c, unsigned order)
{
    (void)c;
    return map_bytes((size_t)BENCH_PAGE << order);
}

static void be_bg_free(struct be_ctx *c, void *p, unsigned order)
{
    (void)c;
    munmap(p, (size_t)BENCH_PAGE << order);
}

#include "workloads.h"
