/*
 * be_dpdk.c - DPDK: an rte_mempool of 4 KiB objects with a per-lcore cache
 * of 512 (pages), and the rte_malloc heap (blocks, background job).
 *
 * The EAL starts here without huge pages, devices or root-only files
 * (PEERS.md): --no-huge --no-pci --no-shconf -l <cpu_a>-<cpu_b> -m 256
 * --log-level=1.  A mempool cache is used only from an EAL lcore or a
 * registered thread, so every thread that touches the pool registers itself
 * (rte_thread_register) and gets its own lcore id, hence its own cache.
 *
 * Bulk calls: rte_mempool_get_bulk and rte_mempool_put_bulk (all or
 * nothing: a get either places the n objects or none).
 *
 * Objects of a mempool are 64-byte aligned, not page aligned: DPDK has no
 * page-aligned object layout for a plain mempool.  Blocks from rte_malloc
 * are aligned to their size like everyone else's.
 *
 * By default the pool pads each object to 4160 bytes (65 lines, so that
 * successive objects start on different memory channels), which also
 * spreads their first lines over every cache set; a page-aligned page's
 * first line always falls in the same few.  A tree configured with
 * -DLAB_BENCH_DPDK_PAGE_STRIDE=ON gives the pool 4032-byte objects without
 * the padding (RTE_MEMPOOL_F_NO_SPREAD): header and object make 4096
 * bytes, so every object's first line sits at the same offset of a page,
 * aliased as Labyrinth's and the floor's are.  A diagnostic, never the
 * published figures.
 */
#include "bench.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mempool.h>
#include <rte_version.h>
#include <stdlib.h>

#define BE_SYMBOL    peer_backend
#define BE_NAME      "dpdk"
#define BE_LABEL     "DPDK rte_mempool, lcore cache 512 / rte_malloc"
#define BE_WORKLOADS (WL_PAIR | WL_BATCH | WL_HANDOFF | WL_MIX | WL_LATENCY)
#define BE_BULK      1

#define DPDK_POOL_OBJS  8191      /* 2^n - 1: the ring under the pool is 2^n */
#define DPDK_POOL_CACHE 512
#ifdef LAB_BENCH_DPDK_PAGE_STRIDE
#define DPDK_OBJ_SIZE   (BENCH_PAGE - RTE_CACHE_LINE_SIZE)
#define DPDK_POOL_FLAGS RTE_MEMPOOL_F_NO_SPREAD
#else
#define DPDK_OBJ_SIZE   BENCH_PAGE
#define DPDK_POOL_FLAGS 0
#endif

struct be_ctx {
    int kind;
    struct rte_mempool *mp;
};

static int be_init(char *why, size_t n)
{
    int a, b;
    pick_cpus(&a, &b);
    char lcores[32];
    if (a == b)
        snprintf(lcores, sizeof(lcores), "%d", a);
    else if (b == a + 1)
        snprintf(lcores, sizeof(lcores), "%d-%d", a, b);
    else
        snprintf(lcores, sizeof(lcores), "%d,%d", a, b);
    char *argv[] = { "bench-peer-dpdk", "--no-huge", "--no-pci", "--no-shconf", "-l", lcores,
                     "-m", "256", "--log-level=1", NULL };
    int argc = (int)(sizeof(argv) / sizeof(argv[0])) - 1;
    if (rte_eal_init(argc, argv) < 0) {
        snprintf(why, n, "rte_eal_init failed: %s", rte_strerror(rte_errno));
        return -1;
    }
    return 0;
}

static void be_version(char *buf, size_t n)
{
    const char *v = rte_version();
    if (strncmp(v, "DPDK ", 5) == 0)
        v += 5;
    snprintf(buf, n, "%s", v);
}

static struct be_ctx *be_open(int kind, const struct bench_params *bp)
{
    (void)bp;
    static unsigned seq;
    struct be_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->kind = kind;
    if (kind != BE_MIX) {
        char name[32];
        snprintf(name, sizeof(name), "bench%u", seq++);
        c->mp = rte_mempool_create(name, DPDK_POOL_OBJS, DPDK_OBJ_SIZE, DPDK_POOL_CACHE, 0, NULL, NULL, NULL, NULL,
                                   SOCKET_ID_ANY, DPDK_POOL_FLAGS);
        if (!c->mp) {
            fprintf(stderr, "dpdk: rte_mempool_create: %s\n", rte_strerror(rte_errno));
            free(c);
            return NULL;
        }
#ifdef LAB_BENCH_DPDK_PAGE_STRIDE
        size_t stride = (size_t)c->mp->header_size + c->mp->elt_size + c->mp->trailer_size;
        if (stride != BENCH_PAGE) {
            fprintf(stderr, "dpdk: objects %zu bytes apart, not %u\n", stride, BENCH_PAGE);
            rte_mempool_free(c->mp);
            free(c);
            return NULL;
        }
#endif
    }
    return c;
}

static void be_close(struct be_ctx *c)
{
    if (c->mp)
        rte_mempool_free(c->mp);
    free(c);
}

static void be_thread_enter(struct be_ctx *c, int role)
{
    (void)c;
    (void)role;
    if (rte_thread_register() != 0)
        fprintf(stderr, "dpdk: rte_thread_register: %s\n", rte_strerror(rte_errno));
}

static void be_thread_leave(struct be_ctx *c, int role)
{
    (void)c;
    (void)role;
    rte_thread_unregister();
}

static inline void *be_page_alloc(struct be_ctx *c)
{
    void *obj;
    if (rte_mempool_get(c->mp, &obj) < 0)
        return NULL;
    return obj;
}

static inline void be_page_free(struct be_ctx *c, void *p)
{
    rte_mempool_put(c->mp, p);
}

static inline void be_page_free_remote(struct be_ctx *c, void *p)
{
    rte_mempool_put(c->mp, p);
}

static inline unsigned be_page_alloc_bulk(struct be_ctx *c, void **p, unsigned n)
{
    return rte_mempool_get_bulk(c->mp, p, n) < 0 ? 0 : n;
}

static inline void be_page_free_bulk(struct be_ctx *c, void **p, unsigned n)
{
    rte_mempool_put_bulk(c->mp, p, n);
}

static inline void be_page_free_remote_bulk(struct be_ctx *c, void **p, unsigned n)
{
    rte_mempool_put_bulk(c->mp, p, n);
}

static inline void *be_block_alloc(struct be_ctx *c, unsigned order)
{
    (void)c;
    size_t size = (size_t)BENCH_PAGE << order;
    return rte_malloc(NULL, size, (unsigned)size);
}

static inline void be_block_free(struct be_ctx *c, void *p, unsigned order)
{
    (void)c;
    (void)order;
    rte_free(p);
}

static void *be_bg_alloc(struct be_ctx *c, unsigned order)
{
    (void)c;
    return rte_malloc(NULL, (size_t)BENCH_PAGE << order, BENCH_PAGE);
}

static void be_bg_free(struct be_ctx *c, void *p, unsigned order)
{
    (void)c;
    (void)order;
    rte_free(p);
}

static void be_bg_attach(struct be_ctx *c, struct bg_cache *cache)
{
    (void)c;
    (void)cache;
}

static void be_bg_detach(struct be_ctx *c, struct bg_cache *cache)
{
    (void)c;
    (void)cache;
}

static void be_extra(struct be_ctx *c, int kind, const char *prefix, struct sink *s)
{
    (void)c;
    (void)kind;
    (void)prefix;
    (void)s;
}

#include "workloads.h"
