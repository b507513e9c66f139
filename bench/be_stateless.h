/*
 * be_stateless.h - the backend hooks of a peer that keeps no state of its own
 * (glibc, jemalloc, tcmalloc, mimalloc, mmap): a context that only remembers
 * the workload kind, and nothing to do per thread, for the background cache
 * or as extra output.  Included by those backends before workloads.h.
 */
#ifndef BE_STATELESS_H
#define BE_STATELESS_H

struct be_ctx {
    int kind;
};

static struct be_ctx *be_open(int kind, const struct bench_params *bp)
{
    (void)bp;
    struct be_ctx *c = calloc(1, sizeof(*c));
    if (c)
        c->kind = kind;
    return c;
}

static void be_close(struct be_ctx *c)
{
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

#endif
