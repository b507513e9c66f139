/*
 * workloads.h - the five workloads, instantiated once per backend.
 *
 * A backend file (be_*.c) defines, before including this file:
 *
 *   BE_SYMBOL, BE_NAME, BE_LABEL, BE_WORKLOADS    its struct backend and what it supports
 *   struct be_ctx                                 its state for one workload
 *   be_init, be_version                           once per process
 *   be_open(kind, bp) / be_close(c)               a context for one workload (main thread)
 *   be_thread_enter(c, role) / be_thread_leave    on each thread that uses the context
 *   be_page_alloc(c), be_page_free(c, p)          one page, owner context
 *   be_page_free_remote(c, p)                     a page freed by another thread, with the
 *                                                 peer's one-object call
 *   be_block_alloc(c, order), be_block_free       2^order pages aligned to their size
 *   be_bg_alloc(c, order), be_bg_free             the background job of workload 5
 *   be_bg_attach(c, cache), be_bg_detach          on the background thread
 *   be_extra(c, kind, prefix, sink)               extra numbers before be_close, named
 *                                                 <prefix>.<name>
 *
 * A backend with bulk calls (BE_BULK defined to 1: the floor, Labyrinth,
 * DPDK) also defines, each for up to WL_BULK_N pages:
 *
 *   be_page_alloc_bulk(c, p, n)                   owner context; returns how many it placed
 *   be_page_free_bulk(c, p, n)                    owner context
 *   be_page_free_remote_bulk(c, p, n)             pages freed by another thread
 *
 * and runs the bulk variants of workloads 2, 3 and 5 beside the single-call
 * ones.  The others have no such call, and a loop of single calls would
 * measure nothing new.
 *
 * A backend that can tell which step of its allocation path served a page
 * (BE_STEPS defined to the number of steps: Labyrinth in a tree configured
 * with -DLAB_BENCH_STEPS=ON) also defines
 *
 *   be_alloc_step()                               the step of this thread's last be_page_alloc
 *   be_step_name(k)                               its name in metrics
 *
 * and workload 5 reports its timed allocations by step as well.
 *
 * The page operations are static inline, so each hot loop here calls the
 * allocator directly, as a user's code would.
 */
#ifndef BE_SYMBOL
#error "define the backend before including workloads.h"
#endif

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#ifndef BE_BULK
#define BE_BULK 0
#endif
#ifndef BE_STEPS
#define BE_STEPS 0
#endif

#define WL_NOINLINE __attribute__((noinline))
#define WL_UNLIKELY(x) __builtin_expect(!!(x), 0)

static void wl_error(struct sink *s, const char *wl, const char *why)
{
    char m[64];
    snprintf(m, sizeof(m), "%s.error", wl);
    emit_str(s, m, why);   /* printed in the table in place of the number */
}

/* ---- workload 1: one pair, owner context -------------------------------------- */
static WL_NOINLINE uint64_t wl_pair_loop(struct be_ctx *c, size_t n)
{
    uint64_t fails = 0;
    for (size_t i = 0; i < n; i++) {
        void *p = be_page_alloc(c);
        if (WL_UNLIKELY(!p)) {
            fails++;
            continue;
        }
        touch(p, (unsigned)i);
        be_page_free(c, p);
    }
    return fails;
}

/* ---- workload 2: 64 allocations, then 64 frees --------------------------------- */
#define WL_BATCH_N 64
static WL_NOINLINE uint64_t wl_batch_loop(struct be_ctx *c, size_t n)
{
    void *p[WL_BATCH_N];
    uint64_t fails = 0;
    for (size_t r = 0; r < n; r++) {
        for (unsigned j = 0; j < WL_BATCH_N; j++) {
            p[j] = be_page_alloc(c);
            if (WL_UNLIKELY(!p[j])) {
                fails++;
                continue;
            }
            touch(p[j], j);
        }
        for (unsigned j = 0; j < WL_BATCH_N; j++)
            if (p[j])
                be_page_free(c, p[j]);
    }
    return fails;
}

#if BE_BULK
/* ---- workload 2, bulk: the same 64 pages, WL_BULK_N per call ------------------- */
static WL_NOINLINE uint64_t wl_batch_bulk_loop(struct be_ctx *c, size_t n)
{
    void *p[WL_BATCH_N];
    uint64_t fails = 0;
    for (size_t r = 0; r < n; r++) {
        unsigned have = 0;
        for (unsigned j = 0; j < WL_BATCH_N; j += WL_BULK_N) {
            unsigned got = be_page_alloc_bulk(c, p + have, WL_BULK_N);
            fails += WL_BULK_N - got;
            have += got;
        }
        for (unsigned j = 0; j < have; j++)
            touch(p[j], j);
        for (unsigned j = 0; j < have; j += WL_BULK_N)
            be_page_free_bulk(c, p + j, have - j < WL_BULK_N ? have - j : WL_BULK_N);
    }
    return fails;
}
#endif

struct wl_owner_arg {
    const struct bench_params *bp;
    struct be_ctx *c;
    uint64_t (*loop)(struct be_ctx *, size_t);
    double target_ms;
    double ns_per_unit;
    uint64_t fails;
};

/* Warm up, size the loop to take target_ms, then time it once. */
static void *wl_owner_thread(void *arg)
{
    struct wl_owner_arg *a = arg;
    be_thread_enter(a->c, ROLE_OWNER);
    size_t n = 16;
    double dt;
    for (;;) {
        uint64_t t0 = now_ns();
        a->loop(a->c, n);
        dt = (double)(now_ns() - t0);
        if (dt >= 2e6 || n >= ((size_t)1 << 34))
            break;
        n *= 4;
    }
    double want = a->target_ms * 1e6;
    size_t m = (size_t)((double)n * want / dt);
    if (m < 1)
        m = 1;
    uint64_t t0 = now_ns();
    a->fails = a->loop(a->c, m);
    uint64_t t1 = now_ns();
    a->ns_per_unit = (double)(t1 - t0) / (double)m;
    be_thread_leave(a->c, ROLE_OWNER);
    return NULL;
}

static void wl_owner(const struct bench_params *bp, struct sink *s, const char *wl,
                     uint64_t (*loop)(struct be_ctx *, size_t), double target_ms, double per)
{
    struct be_ctx *c = be_open(BE_OWNER, bp);
    if (!c) {
        wl_error(s, wl, "unavailable: could not set up (see its log)");
        return;
    }
    struct wl_owner_arg a = { bp, c, loop, target_ms, 0, 0 };
    pthread_t t;
    if (thread_start_on(&t, bp->cpu_a, wl_owner_thread, &a) != 0)
        die("pthread_create");
    pthread_join(t, NULL);
    be_extra(c, BE_OWNER, wl, s);
    be_close(c);
    char m[64];
    snprintf(m, sizeof(m), "%s.ns", wl);
    emit(s, m, a.ns_per_unit / per);
    snprintf(m, sizeof(m), "%s.fails", wl);
    emit(s, m, (double)a.fails);
}

/* ---- workloads 3 and 5: producer -> ring -> consumer ------------------------------
 * Consumer styles: "single" frees each page with the peer's one-object call
 * (lab_free_pages, rte_mempool_put, free...), "bulk" gathers WL_BULK_N and
 * frees them with one bulk call (lab_free_pages_bulk, rte_mempool_put_bulk,
 * the floor's batch).  Producer styles (workload 3): one page per call, or
 * WL_BULK_N per call (lab_room_alloc_bulk, rte_mempool_get_bulk), pushed to
 * the ring together. */
#define WL_RING 256

struct wl_ho {
    const struct bench_params *bp;
    struct be_ctx *c;
    struct spsc *ring;
    /* each on its own cache line: the producer reads stop and writes
     * produced, the consumer writes consumed, at every page */
    _Alignas(64) _Atomic int stop;
    _Alignas(64) _Atomic uint64_t produced;
    _Alignas(64) _Atomic uint64_t consumed;
    _Alignas(64) char pad_;
    int alloc_bulk, free_bulk;   /* the styles */
    /* per producer run */
    struct hist *hist;           /* timed allocations (workload 5) */
#if BE_STEPS
    struct hist *step_hist;      /* the same, one per step that served them */
#endif
    struct sc_counter *sc;       /* count this producer's system calls */
    uint64_t fails, allocs;
    long preempted;              /* the producer's involuntary context switches */
    int sc_failed;
    /* Looks that found the ring full (the producer's) or empty (the
     * consumer's, from its first page on): the slower side waits less. */
    uint64_t waits_full, waits_empty;
    /* Page faults of the whole process in the measured window (workload 3:
     * only its producer and consumer run then); a first touch of memory
     * committed lazily costs one, at several microseconds. */
    long window_faults;
};

#if BE_BULK
/* The bulk producer's loop: WL_BULK_N pages a call, pushed to the ring in
 * one publication.  Counts pages asked for and pages not placed. */
static void wl_produce_bulk(struct wl_ho *h, uint64_t *allocs, uint64_t *fails, uint64_t *waits)
{
    struct be_ctx *c = h->c;
    void *b[WL_BULK_N];
    unsigned v = 0;
    while (!atomic_load_explicit(&h->stop, memory_order_relaxed)) {
        unsigned got = be_page_alloc_bulk(c, b, WL_BULK_N);
        *allocs += WL_BULK_N;
        *fails += WL_BULK_N - got;
        if (WL_UNLIKELY(got == 0)) {
            cpu_pause();
            continue;
        }
        for (unsigned i = 0; i < got; i++)
            touch(b[i], v++);
        while (!spsc_push_n(h->ring, b, got)) {
            ++*waits;
            spsc_wait();
        }
        atomic_store_explicit(&h->produced, atomic_load_explicit(&h->produced, memory_order_relaxed) + got,
                              memory_order_relaxed);
    }
}
#endif

static void *wl_producer(void *arg)
{
    struct wl_ho *h = arg;
    struct be_ctx *c = h->c;
    struct hist *hist = h->hist;
#if BE_STEPS
    struct hist *step_hist = h->step_hist;   /* each producer run is a thread of its own */
#endif
    uint64_t fails = 0, allocs = 0, waits = 0;
    unsigned v = 0;
    be_thread_enter(c, ROLE_OWNER);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_THREAD, &ru0);   /* before the counted stretch */
    if (h->sc && sc_install(h->sc) != 0)
        h->sc_failed = 1;
#if BE_BULK
    if (h->alloc_bulk) {
        wl_produce_bulk(h, &allocs, &fails, &waits);
        goto done;
    }
#endif
    /* From here to the marker: the counted (and timed) loop.  No system
     * call of ours in it: spinning only. */
    while (!atomic_load_explicit(&h->stop, memory_order_relaxed)) {
        void *p;
        if (hist) {
            uint64_t t0 = tsc_begin();
            p = be_page_alloc(c);
            uint64_t t1 = tsc_end();
            hist_add(hist, t1 - t0);
#if BE_STEPS
            if (step_hist)
                hist_add(&step_hist[be_alloc_step()], t1 - t0);
#endif
        } else {
            p = be_page_alloc(c);
        }
        allocs++;
        if (WL_UNLIKELY(!p)) {
            fails++;
            cpu_pause();
            continue;
        }
        touch(p, v++);
        while (!spsc_push(h->ring, p)) {
            waits++;
            spsc_wait();
        }
        atomic_store_explicit(&h->produced, atomic_load_explicit(&h->produced, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
#if BE_BULK
done:
#endif
    if (h->sc && !h->sc_failed)
        sc_mark_end();
    getrusage(RUSAGE_THREAD, &ru1);
    h->preempted = ru1.ru_nivcsw - ru0.ru_nivcsw;
    h->fails = fails;
    h->allocs = allocs;
    h->waits_full += waits;
    be_thread_leave(c, ROLE_OWNER);
    return NULL;
}

static void *wl_consumer(void *arg)
{
    struct wl_ho *h = arg;
    struct be_ctx *c = h->c;
    uint64_t n = 0, waits = 0;
    unsigned v = 0;
#if BE_BULK
    void *batch[WL_BULK_N];
    unsigned nb = 0;
#endif
    be_thread_enter(c, ROLE_CONSUMER);
    for (;;) {
        void *p;
        if (!spsc_pop(h->ring, &p)) {
            waits += n != 0;
            spsc_wait();
            continue;
        }
        if (!p)
            break;      /* the sentinel */
        touch(p, v++);
#if BE_BULK
        if (h->free_bulk) {
            batch[nb++] = p;
            if (nb == WL_BULK_N) {
                be_page_free_remote_bulk(c, batch, nb);
                nb = 0;
            }
        } else
#endif
        {
            be_page_free_remote(c, p);
        }
        atomic_store_explicit(&h->consumed, ++n, memory_order_relaxed);
    }
#if BE_BULK
    if (nb)
        be_page_free_remote_bulk(c, batch, nb);
#endif
    h->waits_empty = waits;   /* read after the join */
    be_thread_leave(c, ROLE_CONSUMER);
    return NULL;
}

/* Producer alone, until stop (which the caller sets after `ms`). */
static void wl_run_producer(struct wl_ho *h, double ms, double warm_ms, uint64_t *c1, uint64_t *c2, double *secs)
{
    pthread_t t;
    atomic_store(&h->stop, 0);
    h->fails = h->allocs = 0;
    uint64_t start = atomic_load(&h->produced);
    if (thread_start_on(&t, h->bp->cpu_a, wl_producer, h) != 0)
        die("pthread_create");
    /* wait until pages flow, then leave a little warm-up out of the count */
    uint64_t deadline = now_ns() + 2000000000ull;
    while (atomic_load(&h->produced) == start && now_ns() < deadline)
        sleep_ms(0.2);
    sleep_ms(warm_ms);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t1 = now_ns();
    uint64_t a = atomic_load(&h->consumed);
    sleep_ms(ms);
    uint64_t b = atomic_load(&h->consumed);
    uint64_t t2 = now_ns();
    getrusage(RUSAGE_SELF, &ru1);
    h->window_faults = (ru1.ru_minflt - ru0.ru_minflt) + (ru1.ru_majflt - ru0.ru_majflt);
    atomic_store(&h->stop, 1);
    pthread_join(t, NULL);
    if (c1)
        *c1 = a;
    if (c2)
        *c2 = b;
    if (secs)
        *secs = (double)(t2 - t1) / 1e9;
}

static void wl_stop_consumer(struct wl_ho *h, pthread_t consumer)
{
    /* The producers are joined: this thread may push (one producer at a time). */
    while (!spsc_push(h->ring, NULL))
        cpu_pause();
    pthread_join(consumer, NULL);
}

/* One variant of workload 3, reported as <name>.pps. */
static void wl_handoff(const struct bench_params *bp, struct sink *s, const char *name, int alloc_bulk, int free_bulk)
{
    char m[64];
    struct be_ctx *c = be_open(BE_HANDOFF, bp);
    if (!c) {
        wl_error(s, name, "unavailable: could not set up (see its log)");
        return;
    }
    struct wl_ho h;
    memset(&h, 0, sizeof(h));
    h.bp = bp;
    h.c = c;
    h.ring = spsc_new(WL_RING);
    h.alloc_bulk = alloc_bulk;
    h.free_bulk = free_bulk;
    pthread_t cons;
    if (thread_start_on(&cons, bp->cpu_b, wl_consumer, &h) != 0)
        die("pthread_create");
    uint64_t a, b;
    double secs;
    wl_run_producer(&h, bp->handoff_ms, 20, &a, &b, &secs);
    wl_stop_consumer(&h, cons);
    be_extra(c, BE_HANDOFF, name, s);
    be_close(c);
    spsc_free(h.ring);
    snprintf(m, sizeof(m), "%s.pps", name);
    emit(s, m, (double)(b - a) / secs);
    snprintf(m, sizeof(m), "%s.fails", name);
    emit(s, m, (double)h.fails);
    snprintf(m, sizeof(m), "%s.faults", name);
    emit(s, m, (double)h.window_faults);
    /* per 1000 pages handed over in the whole run */
    uint64_t moved = atomic_load(&h.consumed);
    if (moved) {
        snprintf(m, sizeof(m), "%s.waits_full", name);
        emit(s, m, 1000.0 * (double)h.waits_full / (double)moved);
        snprintf(m, sizeof(m), "%s.waits_empty", name);
        emit(s, m, 1000.0 * (double)h.waits_empty / (double)moved);
    }
}

/* ---- workload 5: timed allocation under pressure ------------------------------------- */
struct wl_bg {
    struct be_ctx *c;
    struct bg_cache *cache;
    _Atomic int stop;
    _Atomic int attached;
    _Atomic uint64_t ops, fails, pages;
};

static void wl_bg_free_cb(void *be, void *p, unsigned order)
{
    be_bg_free((struct be_ctx *)be, p, order);
}

/* Allocate blocks of 4 KiB .. 4 MiB, touch every page, keep them in the
 * cache; the cache (its cap, or the allocator's reclaim through a shrinker)
 * gives the oldest back. */
static void *wl_bg_thread(void *arg)
{
    struct wl_bg *g = arg;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    be_thread_enter(g->c, ROLE_BG);
    be_bg_attach(g->c, g->cache);
    atomic_store(&g->attached, 1);
    while (!atomic_load_explicit(&g->stop, memory_order_relaxed)) {
        unsigned order = (unsigned)(xorshift64(&seed) % 11);
        char *p = be_bg_alloc(g->c, order);
        if (!p) {
            atomic_fetch_add_explicit(&g->fails, 1, memory_order_relaxed);
            bg_cache_shrink(g->cache, (size_t)1 << order);
            continue;
        }
        for (size_t off = 0; off < ((size_t)BENCH_PAGE << order); off += BENCH_PAGE)
            p[off] = (char)off;
        bg_cache_push(g->cache, p, order);
        atomic_fetch_add_explicit(&g->ops, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&g->pages, (uint64_t)1 << order, memory_order_relaxed);
    }
    be_bg_detach(g->c, g->cache);
    be_thread_leave(g->c, ROLE_BG);
    return NULL;
}

/* One consumer style of workload 5 under the running background job: a
 * timed run, then a counted one, reported as <name>.*. */
static void wl_latency_style(const struct bench_params *bp, struct sink *s, struct be_ctx *c, struct wl_bg *g,
                             const char *name, int free_bulk)
{
    char m[64];
    struct wl_ho h;
    memset(&h, 0, sizeof(h));
    h.bp = bp;
    h.c = c;
    h.ring = spsc_new(WL_RING);
    h.free_bulk = free_bulk;
    pthread_t cons;
    if (thread_start_on(&cons, bp->cpu_b, wl_consumer, &h) != 0)
        die("pthread_create");

    /* The timed run. */
    struct hist *hist = calloc(1, sizeof(*hist));
    h.hist = hist;
#if BE_STEPS
    struct hist *steps = calloc(BE_STEPS, sizeof(*steps));
    if (!steps)
        die("out of memory");
    h.step_hist = steps;
#endif
    struct bg_cache *cache = g->cache;
    uint64_t ops0 = atomic_load(&g->ops), pages0 = atomic_load(&g->pages), shr0 = atomic_load(&cache->shrunk_pages);
    uint64_t bgf0 = atomic_load(&g->fails);
    double secs;
    wl_run_producer(&h, bp->lat_ms, 10, NULL, NULL, &secs);
    uint64_t ops1 = atomic_load(&g->ops), pages1 = atomic_load(&g->pages), shr1 = atomic_load(&cache->shrunk_pages);
    uint64_t bgf1 = atomic_load(&g->fails);
    uint64_t lat_allocs = h.allocs, lat_fails = h.fails;
    long preempted = h.preempted;

#if BE_STEPS
    h.step_hist = NULL;   /* the timed run's only: the counted run is a new thread */
#endif

    /* The counted run: the same loop, its system calls counted. */
    struct hist *scratch = calloc(1, sizeof(*scratch));
    struct sc_counter *sc = calloc(1, sizeof(*sc));
    if (!hist || !scratch || !sc)
        die("out of memory");
    h.hist = scratch;
    if (sc_start(sc, bp->cpu_b) != 0)
        die("pthread_create");
    h.sc = sc;
    h.sc_failed = 0;
    wl_run_producer(&h, bp->count_ms, 0, NULL, NULL, NULL);
    sc_finish(sc);
    uint64_t count_allocs = h.allocs;
    wl_stop_consumer(&h, cons);
    spsc_free(h.ring);

    for (int i = 0; i < LAT_POINTS; i++) {
        snprintf(m, sizeof(m), "%s.%s", name, lat_name[i]);
        emit(s, m, hist_quantile(hist, lat_q[i]) / bp->tsc_per_ns);
    }
#if BE_STEPS
    /* <name>.step.<step>.n for every step (a median over the rounds counts
     * the rounds a step served none in), and .<percentile> where it served any */
    for (int k = 0; k < BE_STEPS; k++) {
        const struct hist *sh = &steps[k];
        snprintf(m, sizeof(m), "%s.step.%s.n", name, be_step_name(k));
        emit(s, m, (double)sh->n);
        if (sh->n == 0)
            continue;
        for (int i = 0; i < LAT_POINTS; i++) {
            snprintf(m, sizeof(m), "%s.step.%s.%s", name, be_step_name(k), lat_name[i]);
            emit(s, m, hist_quantile(sh, lat_q[i]) / bp->tsc_per_ns);
        }
    }
    free(steps);
#endif
#define WL_EMIT(suffix, v) (snprintf(m, sizeof(m), "%s." suffix, name), emit(s, m, (double)(v)))
    WL_EMIT("allocs", lat_allocs);
    WL_EMIT("fails", lat_fails);
    WL_EMIT("preempted", preempted);
    WL_EMIT("bg_ops_s", (double)(ops1 - ops0) / secs);
    WL_EMIT("bg_mib_s", (double)(pages1 - pages0) * BENCH_PAGE / 1048576.0 / secs);
    WL_EMIT("bg_fails", bgf1 - bgf0);
    WL_EMIT("shrunk_pages", shr1 - shr0);
    snprintf(m, sizeof(m), "%s.syscall_names", name);
    if (h.sc_failed) {
        char why[96];
        snprintf(why, sizeof(why), "seccomp-unavailable(%s)", strerror(sc->err));
        emit_str(s, m, why);
    } else {
        char names[160];
        sc_describe(sc, names, sizeof(names));
        emit_str(s, m, names);
        WL_EMIT("syscalls", sc->counted);
        WL_EMIT("count_allocs", count_allocs);
    }
#undef WL_EMIT
    free(hist);
    free(scratch);
    free(sc);
}

static void wl_latency(const struct bench_params *bp, struct sink *s)
{
    struct be_ctx *c = be_open(BE_PRESSURE, bp);
    if (!c) {
        wl_error(s, "w5s", "unavailable: could not set up (see its log)");
#if BE_BULK
        wl_error(s, "w5b", "unavailable: could not set up (see its log)");
#endif
        return;
    }
    struct bg_cache cache;
    if (bg_cache_init(&cache, bp->pressure_bytes, c, wl_bg_free_cb) != 0)
        die("out of memory");
    struct wl_bg g;
    memset(&g, 0, sizeof(g));
    g.c = c;
    g.cache = &cache;
    pthread_t bg;
    if (thread_start_on(&bg, bp->cpu_b, wl_bg_thread, &g) != 0)
        die("pthread_create");
    /* Pressure first: the cache fills (most of) the memory. */
    uint64_t deadline = now_ns() + 4000000000ull;
    size_t want = bp->pressure_bytes / BENCH_PAGE * 8 / 10;
    while (now_ns() < deadline && (!atomic_load(&g.attached) || bg_cache_pages(&cache) < want))
        sleep_ms(1);
    emit(s, "w5.fill_pages", (double)bg_cache_pages(&cache));

    /* Both consumer styles under the same background job, one after the
     * other; each producer run is a new thread (and, for Labyrinth, a new
     * room). */
    wl_latency_style(bp, s, c, &g, "w5s", 0);
#if BE_BULK
    wl_latency_style(bp, s, c, &g, "w5b", 1);
#endif

    atomic_store(&g.stop, 1);
    pthread_join(bg, NULL);
    bg_cache_fini(&cache);
    be_extra(c, BE_PRESSURE, "w5", s);
    be_close(c);
}

/* ---- workload 4: random orders 0..9 ------------------------------------------------------ */
#define WL_MIX_SEQ 65536
#define WL_MIX_MAX_ORDER 9

struct wl_mix_arg {
    const struct bench_params *bp;
    struct be_ctx *c;
    uint32_t *seq;     /* slot << 8 | order */
    double ns;
    uint64_t fails, ops;
};

static WL_NOINLINE uint64_t wl_mix_loop(struct be_ctx *c, const uint32_t *seq, size_t *pos, size_t n,
                                        void **slot, unsigned char *ord)
{
    uint64_t fails = 0;
    size_t i = *pos;
    for (size_t k = 0; k < n; k++) {
        uint32_t op = seq[i];
        i = (i + 1) & (WL_MIX_SEQ - 1);
        unsigned sl = op >> 8, o = op & 0xff;
        if (slot[sl]) {
            be_block_free(c, slot[sl], ord[sl]);
            slot[sl] = NULL;
        } else {
            void *p = be_block_alloc(c, o);
            if (WL_UNLIKELY(!p)) {
                fails++;
                continue;
            }
            touch(p, o);
            slot[sl] = p;
            ord[sl] = (unsigned char)o;
        }
    }
    *pos = i;
    return fails;
}

static void *wl_mix_thread(void *arg)
{
    struct wl_mix_arg *a = arg;
    unsigned ns = a->bp->mix_slots;
    void **slot = calloc(ns, sizeof(void *));
    unsigned char *ord = calloc(ns, 1);
    size_t pos = 0;
    be_thread_enter(a->c, ROLE_OWNER);
    /* warm-up: a quarter of the time, or one pass of the sequence */
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(a->bp->mix_ms * 0.25e6);
    size_t done = 0;
    while (done < WL_MIX_SEQ && now_ns() < end) {
        wl_mix_loop(a->c, a->seq, &pos, 256, slot, ord);
        done += 256;
    }
    uint64_t fails = 0, ops = 0;
    t0 = now_ns();
    end = t0 + (uint64_t)(a->bp->mix_ms * 1e6);
    uint64_t t1;
    do {
        fails += wl_mix_loop(a->c, a->seq, &pos, 256, slot, ord);
        ops += 256;
    } while ((t1 = now_ns()) < end);
    for (unsigned i = 0; i < ns; i++)
        if (slot[i])
            be_block_free(a->c, slot[i], ord[i]);
    be_thread_leave(a->c, ROLE_OWNER);
    a->ns = (double)(t1 - t0) / (double)ops;
    a->fails = fails;
    a->ops = ops;
    free(slot);
    free(ord);
    return NULL;
}

static void wl_mix(const struct bench_params *bp, struct sink *s)
{
    struct be_ctx *c = be_open(BE_MIX, bp);
    if (!c) {
        wl_error(s, "w4", "unavailable: could not set up (see its log)");
        return;
    }
    uint32_t *seq = malloc(WL_MIX_SEQ * sizeof(uint32_t));
    uint64_t seed = 0x2545f4914f6cdd1dull;   /* the same sequence for every peer */
    for (unsigned i = 0; i < WL_MIX_SEQ; i++) {
        uint64_t r = xorshift64(&seed);
        unsigned sl = (unsigned)((r >> 8) % bp->mix_slots);
        unsigned o = (unsigned)((r >> 40) % (WL_MIX_MAX_ORDER + 1));
        seq[i] = sl << 8 | o;
    }
    struct wl_mix_arg a = { bp, c, seq, 0, 0, 0 };
    pthread_t t;
    if (thread_start_on(&t, bp->cpu_a, wl_mix_thread, &a) != 0)
        die("pthread_create");
    pthread_join(t, NULL);
    be_extra(c, BE_MIX, "w4", s);
    be_close(c);
    free(seq);
    emit(s, "w4.ns", a.ns);
    emit(s, "w4.fails", (double)a.fails);
    emit(s, "w4.ops", (double)a.ops);
}

/* ---- the backend ---------------------------------------------------------------------------- */
static void be_run(const struct bench_params *bp, struct sink *s)
{
    unsigned w = bp->workloads & (BE_WORKLOADS);
    if (w & WL_PAIR)
        wl_owner(bp, s, "w1", wl_pair_loop, bp->pair_ms, 1);
    if (w & WL_BATCH)
        wl_owner(bp, s, "w2", wl_batch_loop, bp->batch_ms, WL_BATCH_N);
#if BE_BULK
    if (w & WL_BATCH)
        wl_owner(bp, s, "w2b", wl_batch_bulk_loop, bp->batch_ms, WL_BATCH_N);
#endif
    if (w & WL_HANDOFF) {
        wl_handoff(bp, s, "w3s", 0, 0);      /* one page per call on both sides */
#if BE_BULK
        wl_handoff(bp, s, "w3b", 0, 1);      /* bulk frees */
        wl_handoff(bp, s, "w3as", 1, 0);     /* bulk allocations, single frees */
        wl_handoff(bp, s, "w3ab", 1, 1);     /* bulk on both sides */
#endif
    }
    if (w & WL_MIX)
        wl_mix(bp, s);
    if (w & WL_LATENCY)
        wl_latency(bp, s);
}

const struct backend BE_SYMBOL = { BE_NAME, BE_LABEL, BE_WORKLOADS | (BE_BULK ? WL_BULK_CALLS : 0), be_init, be_version,
                                   be_run };
