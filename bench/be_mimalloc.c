/*
 * be_mimalloc.c - mimalloc through its own API: mi_malloc_aligned(size,
 * alignment) and mi_free, so it does not replace malloc and needs no
 * process of its own (it gets one anyway, like every peer).
 */
#include "bench.h"

#include <mimalloc.h>
#include <stdlib.h>

#define BE_SYMBOL    peer_backend
#define BE_NAME      "mimalloc"
#define BE_LABEL     "mimalloc mi_malloc_aligned/mi_free"
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
    int v = mi_version();
    snprintf(buf, n, "%d.%d.%d", v / 100, v / 10 % 10, v % 10);
}

static inline void *be_page_alloc(struct be_ctx *c)
{
    (void)c;
    return mi_malloc_aligned(BENCH_PAGE, BENCH_PAGE);
}

static inline void be_page_free(struct be_ctx *c, void *p)
{
    (void)c;
    mi_free(p);
}

static inline void be_page_free_remote(struct be_ctx *c, void *p)
{
    (void)c;
    mi_free(p);
}

static inline void *be_block_alloc(struct be_ctx *c, unsigned order)
{
    (void)c;
    size_t size = (size_t)BENCH_PAGE << order;
    return mi_malloc_aligned(size, size);
}

static inline void be_block_free(struct be_ctx *c, void *p, unsigned order)
{
    (void)c;
    (void)order;
    mi_free(p);
}

static void *be_bg_alloc(struct be_ctx *c, unsigned order)
{
    (void)c;
    return mi_malloc_aligned((size_t)BENCH_PAGE << order, BENCH_PAGE);
}

static void be_bg_free(struct be_ctx *c, void *p, unsigned order)
{
    (void)c;
    (void)order;
    mi_free(p);
}

#include "workloads.h"
