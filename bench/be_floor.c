/*
 * be_floor.c - the floor: what the workloads cost with no allocator at all.
 *
 * A bare array stack of pre-touched pages, popped and pushed in the same
 * process, with the same touch of one byte.  Nothing can be cheaper, so a
 * ratio to the floor says how much of a cost is the allocator's.
 *
 *   pages      pop / push on an array; for the hand-off the consumer returns
 *              pages to the producer through a second ring, one at a time
 *              (single) or in batches of 32 (bulk); bulk calls pop and push
 *              runs of the array
 *   blocks     one stack per order of blocks aligned to their size
 *   pressure   the background job touches the pages of a pre-touched region
 *              of the same size as the others' caches
 *
 * Compiled twice: as "floor", with the page operations inlined into the
 * loops (workload 1 is then about 15 instructions a pair), and, with
 * FLOOR_CALLED, as "floor-call", whose page operations are real calls that
 * cannot be inlined, like any library's (workloads 1 and 2 only).
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifdef FLOOR_CALLED
#define BE_SYMBOL    backend_floor_call
#define BE_NAME      "floor-call"
#define BE_LABEL     "floor, page ops as calls (bare stack)"
#define BE_WORKLOADS (WL_PAIR | WL_BATCH)
#if defined(__clang__)
#define FLOOR_OP     static __attribute__((noinline))
#else
#define FLOOR_OP     static __attribute__((noipa))   /* not inlined, not cloned */
#endif
#else
#define BE_SYMBOL    backend_floor
#define BE_NAME      "floor"
#define BE_LABEL     "floor: bare stack of pre-touched pages"
#define BE_WORKLOADS (WL_PAIR | WL_BATCH | WL_HANDOFF | WL_MIX | WL_LATENCY)
#define BE_BULK      1
#define FLOOR_OP     static inline
#endif

#define FLOOR_PAGES    4096      /* pages in the stock (hand-off: all in flight at most) */
#define FLOOR_BATCH    32
#define FLOOR_ORDERS   10

struct be_ctx {
    int kind;
    char *mem;
    size_t mem_bytes;
    struct spsc *ret;            /* consumer -> producer */
    _Alignas(64) void **stk;     /* producer / owner side */
    size_t top;
    void **ostk[FLOOR_ORDERS];   /* blocks */
    size_t otop[FLOOR_ORDERS];
    size_t bg_off;               /* pressure */
};

static int be_init(char *why, size_t n)
{
    (void)why;
    (void)n;
    return 0;
}

static void be_version(char *buf, size_t n)
{
    snprintf(buf, n, "-");
}

static char *floor_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static struct be_ctx *be_open(int kind, const struct bench_params *bp)
{
    struct be_ctx *c = aligned_alloc(64, (sizeof(*c) + 63) & ~(size_t)63);   /* over-aligned */
    if (!c)
        return NULL;
    memset(c, 0, sizeof(*c));
    c->kind = kind;
    if (kind == BE_MIX) {
        /* For each order, mix_slots blocks aligned to their size: lay them
         * out largest first from a base aligned to the largest. */
        size_t largest = (size_t)BENCH_PAGE << (FLOOR_ORDERS - 1);
        size_t total = 0;
        for (unsigned o = 0; o < FLOOR_ORDERS; o++)
            total += ((size_t)BENCH_PAGE << o) * bp->mix_slots;
        c->mem_bytes = total + largest;
        c->mem = floor_map(c->mem_bytes);
        if (!c->mem) {
            free(c);
            return NULL;
        }
        char *p = (char *)(((uintptr_t)c->mem + largest - 1) & ~(uintptr_t)(largest - 1));
        for (int o = FLOOR_ORDERS - 1; o >= 0; o--) {
            c->ostk[o] = malloc(bp->mix_slots * sizeof(void *));
            for (unsigned i = 0; i < bp->mix_slots; i++) {
                p[0] = 1;   /* pre-touched: the workload touches the first byte */
                c->ostk[o][c->otop[o]++] = p;
                p += (size_t)BENCH_PAGE << o;
            }
        }
        return c;
    }
    size_t pages = kind == BE_OWNER ? 256 : FLOOR_PAGES;
    size_t extra = kind == BE_PRESSURE ? bp->pressure_bytes : 0;
    c->mem_bytes = pages * BENCH_PAGE + extra;
    c->mem = floor_map(c->mem_bytes);
    c->stk = malloc(pages * sizeof(void *));
    if (!c->mem || !c->stk) {
        free(c->stk);
        free(c);
        return NULL;
    }
    memset(c->mem, 1, c->mem_bytes);   /* pre-touched, the pressure region too */
    for (size_t i = 0; i < pages; i++)
        c->stk[c->top++] = c->mem + i * BENCH_PAGE;
    if (kind != BE_OWNER)
        c->ret = spsc_new(pages);
    return c;
}

static void be_close(struct be_ctx *c)
{
    for (unsigned o = 0; o < FLOOR_ORDERS; o++)
        free(c->ostk[o]);
    free(c->stk);
    if (c->ret)
        spsc_free(c->ret);
    munmap(c->mem, c->mem_bytes);
    free(c);
}

static void be_thread_enter(struct be_ctx *c, int role)
{
    (void)c;
    (void)role;
}

static void be_thread_leave(struct be_ctx *c, int role)
{
    (void)c;
    (void)role;
}

/* The stock ran dry: take back what the consumer returned. */
static __attribute__((noinline)) void *floor_refill(struct be_ctx *c)
{
    if (!c->ret)
        return NULL;
    size_t n = spsc_pop_n(c->ret, c->stk, FLOOR_BATCH);
    if (n == 0)
        return NULL;
    c->top = n - 1;
    return c->stk[n - 1];
}

FLOOR_OP void *be_page_alloc(struct be_ctx *c)
{
    if (__builtin_expect(c->top != 0, 1))
        return c->stk[--c->top];
    return floor_refill(c);
}

FLOOR_OP void be_page_free(struct be_ctx *c, void *p)
{
    c->stk[c->top++] = p;
}

static inline void be_page_free_remote(struct be_ctx *c, void *p)
{
    while (!spsc_push(c->ret, p))
        cpu_pause();
}

#ifndef FLOOR_CALLED
static inline unsigned be_page_alloc_bulk(struct be_ctx *c, void **p, unsigned n)
{
    unsigned got = 0;
    while (got < n) {
        if (__builtin_expect(c->top == 0, 0)) {
            void *q = floor_refill(c);
            if (!q)
                break;
            p[got++] = q;
            continue;
        }
        size_t k = c->top < n - got ? c->top : n - got;
        memcpy(p + got, c->stk + c->top - k, k * sizeof(void *));
        c->top -= k;
        got += (unsigned)k;
    }
    return got;
}

static inline void be_page_free_bulk(struct be_ctx *c, void **p, unsigned n)
{
    memcpy(c->stk + c->top, p, n * sizeof(void *));
    c->top += n;
}

static inline void be_page_free_remote_bulk(struct be_ctx *c, void **p, unsigned n)
{
    while (!spsc_push_n(c->ret, p, n))
        cpu_pause();
}
#endif

static inline void *be_block_alloc(struct be_ctx *c, unsigned order)
{
    if (__builtin_expect(c->otop[order] == 0, 0))
        return NULL;
    return c->ostk[order][--c->otop[order]];
}

static inline void be_block_free(struct be_ctx *c, void *p, unsigned order)
{
    c->ostk[order][c->otop[order]++] = p;
}

/* The background job's blocks come round-robin from the pressure region. */
static void *be_bg_alloc(struct be_ctx *c, unsigned order)
{
    size_t region = c->mem_bytes - FLOOR_PAGES * BENCH_PAGE;
    size_t size = (size_t)BENCH_PAGE << order;
    if (size > region)
        return NULL;
    if (c->bg_off + size > region)
        c->bg_off = 0;
    void *p = c->mem + FLOOR_PAGES * BENCH_PAGE + c->bg_off;
    c->bg_off += size;
    return p;
}

static void be_bg_free(struct be_ctx *c, void *p, unsigned order)
{
    (void)c;
    (void)p;
    (void)order;
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
