/*
 * bench.h - what the benchmark driver and every peer executable share.
 *
 * The benchmark compares Labyrinth with the allocators a user would pick
 * instead (PEERS.md), side by side in one run.  Each allocator is a
 * "backend": a small file (be_*.c) that defines the handful of operations the
 * workloads need as static inline functions, then includes workloads.h, which
 * instantiates the workloads against them.  So every hot loop is compiled
 * with direct (inlinable) calls to the allocator under test: no function
 * pointer sits between a workload and the allocator.
 *
 * jemalloc and tcmalloc replace malloc for the whole process, and DPDK wants
 * its own EAL, so each peer runs in its own small executable
 * (bench-peer-<name>) that the driver (labyrinth-bench) starts once per
 * round and reads results from, one "RESULT" line per number.  The floor and
 * Labyrinth run inside the driver itself.
 */
#ifndef LAB_BENCH_H
#define LAB_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <x86intrin.h>

#define BENCH_PAGE 4096u

/* ---- workloads ----------------------------------------------------------- */
enum {
    WL_PAIR = 1u << 0,   /* 1: one page alloc + touch + free, owner context */
    WL_BATCH = 1u << 1,  /* 2: 64 allocs (touch each), then 64 frees */
    WL_HANDOFF = 1u << 2,/* 3: producer -> ring -> consumer that frees */
    WL_MIX = 1u << 3,    /* 4: random orders 0..9 against the arena / heap */
    WL_LATENCY = 1u << 4,/* 5: timed allocation under background pressure */
    WL_GROWTH = 1u << 5, /* 6: Labyrinth only, done by the driver */
    WL_ALL = 0x3f,
    /* not a workload: in struct backend.workloads, the backend has bulk
     * calls and runs the bulk variants of workloads 2, 3 and 5 */
    WL_BULK_CALLS = 1u << 8
};
/* Pages per bulk call (allocation or free) in the bulk variants. */
#define WL_BULK_N 32

/* What a backend context is opened for, and the roles of the threads that
 * use it. */
enum be_kind { BE_OWNER, BE_HANDOFF, BE_MIX, BE_PRESSURE };
enum be_role { ROLE_OWNER, ROLE_CONSUMER, ROLE_BG };

/* Everything a workload needs to know, passed from the driver to the peers
 * on their command line. */
struct bench_params {
    double   pair_ms, batch_ms, handoff_ms, mix_ms;   /* measured time per round */
    double   lat_ms, count_ms;     /* workload 5: latency run, syscall-count run */
    size_t   arena_bytes;          /* Labyrinth arenas of workloads 1-4 (0 = defaults) */
    size_t   pressure_bytes;       /* workload 5: Labyrinth arena, peers' cache cap */
    unsigned mix_slots;            /* workload 4: live slots */
    double   tsc_per_ns;           /* TSC ticks per ns, calibrated once by the driver */
    int      cpu_a, cpu_b;         /* producer / owner CPU, consumer / background CPU */
    unsigned workloads;            /* WL_* mask */
    int      verbose;
};
void bench_params_default(struct bench_params *bp);
/* "--pair-ms 50 ..." form, for the peer command line. */
int  bench_params_to_argv(const struct bench_params *bp, char **argv, int max, char *buf, size_t buflen);
int  bench_params_parse(struct bench_params *bp, int argc, char **argv);

/* ---- where results go ------------------------------------------------------
 * A workload reports each number with a metric name (see METRICS in
 * bench_common.c); peers print them, the driver stores them. */
struct sink {
    void (*num)(struct sink *s, const char *metric, double v);
    void (*str)(struct sink *s, const char *metric, const char *v);
    void *ctx;
};
static inline void emit(struct sink *s, const char *m, double v) { s->num(s, m, v); }
static inline void emit_str(struct sink *s, const char *m, const char *v) { if (s->str) s->str(s, m, v); }
extern struct sink stdout_sink;   /* "RESULT metric value" lines */

/* ---- a backend, as workloads.h exports it --------------------------------- */
struct backend {
    const char *name;     /* short id: "labyrinth", "glibc", ... */
    const char *label;    /* what is measured, for the table */
    unsigned    workloads;/* which WL_* it supports */
    /* once per process, before any workload; 0 or nonzero with *why filled */
    int  (*init)(char *why, size_t whylen);
    void (*version)(char *buf, size_t len);
    void (*run)(const struct bench_params *bp, struct sink *s);
};

/* ---- clocks ------------------------------------------------------------- */
uint64_t now_ns(void);
double   tsc_calibrate(unsigned ms);   /* ticks per ns */
static inline uint64_t tsc_begin(void) { _mm_lfence(); return __rdtsc(); }
static inline uint64_t tsc_end(void) { unsigned aux; uint64_t t = __rdtscp(&aux); _mm_lfence(); return t; }
void sleep_ms(double ms);

/* ---- threads and CPUs ------------------------------------------------------ */
void pick_cpus(int *a, int *b);   /* the first two CPUs we may run on (the same one if only one) */
int  thread_start_on(pthread_t *t, int cpu, void *(*fn)(void *), void *arg);
static inline void cpu_pause(void) { _mm_pause(); }
/* The byte a workload touches: the block's first, or, in a tree configured
 * with -DLAB_BENCH_TOUCH_SPREAD=ON, the first of a line that the block's
 * address bits 12-17 choose.  Page-aligned blocks put every first line in
 * the same few cache sets; the spread shows what that costs (docs/DESIGN.md,
 * the hand-off).  A build option, not a run-time one: a load in every touch
 * would cost every peer's W1. */
#ifdef LAB_BENCH_TOUCH_SPREAD
#define BENCH_TOUCH_OFFSET(p) (((uintptr_t)(p) >> 6) & 0xfc0)
#else
#define BENCH_TOUCH_OFFSET(p) 0
#endif
static inline void touch(void *p, unsigned v) { ((volatile char *)p)[BENCH_TOUCH_OFFSET(p)] = (char)v; }

/* A spin barrier: no system call (workload 5 counts them). */
struct spin_barrier { _Atomic unsigned arrived; unsigned n; };
void spin_barrier_wait(struct spin_barrier *b);

/* ---- single-producer single-consumer ring ----------------------------------
 * Lamport's ring with cached copies of the other side's index, so a push or
 * pop touches the shared line only when its cached view runs out.  Capacity
 * is a power of two; the same ring is used for every peer.
 *
 * A side that finds the ring full (or empty) waits SPSC_LOOK_PAUSES pauses
 * between its looks at the other side's index (spsc_wait).  Each look takes
 * that index's line from the other core, whose next store must take it
 * back: looking after every pause made the waiting side slow down the side
 * it waited for, so that an allocator whose producer got faster moved fewer
 * pages (bench/README.md, the hand-off). */
#define SPSC_LOOK_PAUSES 8
static inline void spsc_wait(void)
{
    for (int i = 0; i < SPSC_LOOK_PAUSES; i++)
        cpu_pause();
}
#define SPSC_CAP_MAX 8192
struct spsc {
    _Alignas(64) _Atomic size_t tail;  /* producer writes */
    size_t head_cache;
    _Alignas(64) _Atomic size_t head;  /* consumer writes */
    size_t tail_cache;
    size_t mask;
    _Alignas(64) void *slot[];
};
struct spsc *spsc_new(size_t cap);
void spsc_free(struct spsc *r);
static inline bool spsc_push(struct spsc *r, void *p)
{
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (t - r->head_cache > r->mask) {
        r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        if (t - r->head_cache > r->mask)
            return false;
    }
    r->slot[t & r->mask] = p;
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    return true;
}
static inline bool spsc_pop(struct spsc *r, void **out)
{
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (h == r->tail_cache) {
        r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (h == r->tail_cache)
            return false;
    }
    *out = r->slot[h & r->mask];
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    return true;
}
/* Push n at once (one index publication), or nothing. */
static inline bool spsc_push_n(struct spsc *r, void *const *p, size_t n)
{
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (t + n - r->head_cache > r->mask + 1) {
        r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        if (t + n - r->head_cache > r->mask + 1)
            return false;
    }
    for (size_t i = 0; i < n; i++)
        r->slot[(t + i) & r->mask] = p[i];
    atomic_store_explicit(&r->tail, t + n, memory_order_release);
    return true;
}
/* Pop up to n at once (one index publication). */
static inline size_t spsc_pop_n(struct spsc *r, void **out, size_t n)
{
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t have = r->tail_cache - h;
    if (have < n) {
        r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        have = r->tail_cache - h;
    }
    if (have > n)
        have = n;
    for (size_t i = 0; i < have; i++)
        out[i] = r->slot[(h + i) & r->mask];
    if (have)
        atomic_store_explicit(&r->head, h + have, memory_order_release);
    return have;
}

/* ---- latency histogram --------------------------------------------------------
 * Log-linear buckets of TSC ticks: exact below 128, then 64 buckets per power
 * of two (1.6% resolution).  Written by one thread; the maximum is exact. */
#define HIST_BUCKETS (128 + 42 * 64)
struct hist {
    uint64_t n, max;
    uint64_t b[HIST_BUCKETS];
};
static inline unsigned hist_bucket(uint64_t v)
{
    if (v < 128)
        return (unsigned)v;
    unsigned e = 63 - (unsigned)__builtin_clzll(v);
    unsigned i = 128 + (e - 7) * 64 + (unsigned)((v >> (e - 6)) & 63);
    return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}
static inline void hist_add(struct hist *h, uint64_t v)
{
    h->b[hist_bucket(v)]++;
    h->n++;
    if (v > h->max)
        h->max = v;
}
double hist_quantile(const struct hist *h, double q);   /* in ticks */

/* The percentiles workload 5 reports, as metric suffixes. */
#define LAT_POINTS 7
extern const double lat_q[LAT_POINTS];          /* 0.5 ... 0.99999, then 1 = max */
extern const char *const lat_name[LAT_POINTS];  /* "p50" ... "max" */

/* ---- counting one thread's system calls ------------------------------------
 * A seccomp filter that returns SECCOMP_RET_USER_NOTIF, installed by the
 * thread to be counted (so it applies to that thread alone), and a
 * supervisor thread that counts each notification and lets the call go on
 * (SECCOMP_USER_NOTIF_FLAG_CONTINUE).  Needs no privilege once
 * PR_SET_NO_NEW_PRIVS is set.  The counted thread ends its counted stretch
 * with a marker call (getpid with a magic argument); calls after it (thread
 * exit) are answered, not counted. */
struct sc_counter {
    pthread_t thr;
    _Atomic int fd;        /* listener; -1 until installed, -2 if installing failed */
    _Atomic int stop;
    _Atomic int marked;
    uint64_t counted;      /* system calls before the marker */
    uint32_t by_nr[512];
    int      err;          /* errno of a failed install */
};
int  sc_start(struct sc_counter *s, int cpu);   /* the supervisor */
int  sc_install(struct sc_counter *s);          /* on the counted thread */
/* The same, but the calls numbered in allowed[] (at most SC_MAX_ALLOWED) run
 * unnoticed: a program's own system calls, which it counts itself. */
#define SC_MAX_ALLOWED 8
int  sc_install_except(struct sc_counter *s, const int *allowed, unsigned n);
void sc_mark_end(void);                         /* on the counted thread */
void sc_finish(struct sc_counter *s);           /* after the counted thread is joined */
void sc_describe(const struct sc_counter *s, char *buf, size_t len);  /* "futex:3,mmap:1" */

/* ---- the background pressure cache of workload 5 -------------------------------
 * Blocks of 4 KiB..4 MiB kept in FIFO order.  Peers: evicted (freed) when the
 * cache holds more than cap bytes.  Labyrinth: a shrinker gives them back
 * when reclaim asks (and the cap is the arena size). */
struct bg_entry { void *p; unsigned order; };
struct bg_cache {
    pthread_mutex_t lock;
    struct bg_entry *e;
    size_t cap_entries, head, n;
    size_t bytes, cap_bytes;
    _Atomic uint64_t shrunk_pages;
    void *be;                       /* the backend's context */
    void (*free_fn)(void *be, void *p, unsigned order);
};
int    bg_cache_init(struct bg_cache *c, size_t cap_bytes, void *be, void (*free_fn)(void *, void *, unsigned));
void   bg_cache_fini(struct bg_cache *c);
void   bg_cache_push(struct bg_cache *c, void *p, unsigned order);
size_t bg_cache_shrink(struct bg_cache *c, size_t pages);   /* frees oldest until >= pages pages */
size_t bg_cache_pages(struct bg_cache *c);

/* ---- small helpers -------------------------------------------------------------- */
static inline uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}
size_t rss_bytes(void);         /* /proc/self/statm resident */
void   die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#endif
