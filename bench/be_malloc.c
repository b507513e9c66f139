/*
 * be_malloc.c - the malloc peers: glibc, jemalloc, tcmalloc.
 *
 * The same source for the three; which malloc is in the process is decided
 * by the link line (jemalloc and tcmalloc replace malloc for the whole
 * process, hence one executable each).  Pages are aligned_alloc(4096, 4096),
 * blocks aligned_alloc(size, size), the background job aligned_alloc(4096,
 * size); everything is given back with free().
 *
 * BE_MALLOC_KIND: 0 glibc, 1 jemalloc, 2 tcmalloc.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#ifndef BE_MALLOC_KIND
#define BE_MALLOC_KIND 0
#endif

#if BE_MALLOC_KIND == 1
#define BE_NAME  "jemalloc"
#define BE_LABEL "jemalloc aligned_alloc/free"
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
#elif BE_MALLOC_KIND == 2
#define BE_NAME  "tcmalloc"
#define BE_LABEL "tcmalloc_minimal aligned_alloc/free"
const char *tc_version(int *major, int *minor, const char **patch);
#else
#define BE_NAME  "glibc"
#define BE_LABEL "glibc aligned_alloc/free"
#include <gnu/libc-version.h>
#endif

#define BE_SYMBOL    peer_backend
#define BE_WORKLOADS (WL_PAIR | WL_BATCH | WL_HANDOFF | WL_MIX | WL_LATENCY)

#include "be_stateless.h"

static int be_init(char *why, size_t n)
{
#if BE_MALLOC_KIND == 1
    const char *v = NULL;
    size_t len = sizeof(v);
    if (mallctl("version", &v, &len, NULL, 0) != 0) {
        snprintf(why, n, "jemalloc is linked but mallctl(\"version\") failed");
        return -1;
    }
#elif BE_MALLOC_KIND == 2
    if (!tc_version(NULL, NULL, NULL)) {
        snprintf(why, n, "tcmalloc is linked but tc_version failed");
        return -1;
    }
#else
    (void)why;
    (void)n;
#endif
    return 0;
}

static void be_version(char *buf, size_t n)
{
#if BE_MALLOC_KIND == 1
    const char *v = NULL;
    size_t len = sizeof(v);
    if (mallctl("version", &v, &len, NULL, 0) == 0 && v) {
        snprintf(buf, n, "%.*s", (int)strcspn(v, "-"), v);
        return;
    }
    snprintf(buf, n, "?");
#elif BE_MALLOC_KIND == 2
    int maj = 0, min = 0;
    const char *patch = "";
    tc_version(&maj, &min, &patch);
    snprintf(buf, n, "%d.%d%s", maj, min, patch ? patch : "");
#else
    snprintf(buf, n, "%s", gnu_get_libc_version());
#endif
}

static inline void *be_page_alloc(struct be_ctx *c)
{
    (void)c;
    return aligned_alloc(BENCH_PAGE, BENCH_PAGE);
}

static inline void be_page_free(struct be_ctx *c, void *p)
{
    (void)c;
    free(p);
}

static inline void be_page_free_remote(struct be_ctx *c, void *p)
{
    (void)c;
    free(p);
}

static inline void *be_block_alloc(struct be_ctx *c, unsigned order)
{
    (void)c;
    size_t size = (size_t)BENCH_PAGE << order;
    return aligned_alloc(size, size);
}

static inline void be_block_free(struct be_ctx *c, void *p, unsigned order)
{
    (void)c;
    (void)order;
    free(p);
}

static void *be_bg_alloc(struct be_ctx *c, unsigned order)
{
    (void)c;
    return aligned_alloc(BENCH_PAGE, (size_t)BENCH_PAGE << order);
}

static void be_bg_free(struct be_ctx *c, void *p, unsigned order)
{
    (void)c;
    (void)order;
    free(p);
}

#include "workloads.h"
