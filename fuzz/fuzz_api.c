/*
 * fuzz_api.c - a libFuzzer harness that reads its input as one arena
 * configuration and then a sequence of API calls, and checks every result
 * against a reference model of which pages are handed out.
 *
 * Build and run: fuzz/run.sh [seconds]   (or `make fuzz FUZZ_SECONDS=N`).
 *
 * ---- Input format ---------------------------------------------------------
 * Bytes are read in order; a read past the end yields 0.  Integers are little
 * endian.
 *
 *   header (12 bytes)
 *     [0]     mode: (mode & 0xE0) == 0xE0 makes it a configuration-error
 *             test: kind = (mode & 0x1F) % 11 breaks exactly one field of an
 *             otherwise valid config, lab_arena_create must return that
 *             field's code and leave *out NULL, and the input ends there.
 *             Otherwise bit0 LAB_ARENA_MLOCK (if the OS refuses, LAB_EMLOCK
 *             is counted and the arena is made without it), bit1
 *             LAB_ARENA_HUGEPAGES (huge_mode counted: explicit, transparent or
 *             refused), bit2 LAB_FAIL_PAGE_ALLOC set for lab_arena_create from
 *             five bytes after the header: probability (mod 128: above 100 is
 *             refused), interval (mod 8), times (int8), min_order (mod 8),
 *             ignore_blocking (bit 0).  The counts are printed at exit.
 *     [1..2]  pages - 1 (mod 4096): the arena has 1..4096 pages
 *     [3]     max_order (mod 13)
 *     [4]     flags: bit0 POISON, bit1 GUARD, bit2 PREFAULT (<= 1024 pages),
 *             bit3 MADV_FREE, bit4 PROTECT_FREE (<= 1024 pages), bit5 the
 *             caller supplies the memory, bit6 trim_delay_ms = 1 (the
 *             background reclaimer trims idle memory asynchronously),
 *             bit7 kswapd_poll_ms = 1 (else 60000: it only runs when woken);
 *             LAB_ARENA_STRICT_FREE unless [5] bit 2 (see setup())
 *     [5]     watermarks (mod 4): 0 derived, 1 min only, 2 min <= low <=
 *             high < pages, 3 low = high = min (nothing between min and low);
 *             bit 2: the default (not strict) free mode
 *     [6..11] three u16 used for the watermarks
 *   [12..16]  with mode bit 2 only: LAB_FAIL_PAGE_ALLOC (above)
 *   then operations until the input ends, each an opcode byte (mod 16) and
 *   its argument bytes (see the OP_* list below and the main loop).
 *
 * The library is fuzzed in two builds (run.sh): "debug" (ASan + UBSan +
 * LAB_DEBUG: internal assertions, poisoning everywhere) and "release"
 * (UBSan only, no LAB_DEBUG).  Only the release build runs the owner fast
 * paths of rooms: they are compiled out with LAB_DEBUG and skipped whenever
 * a debug page hook is on, which ASan always turns on.
 *
 * Every arena gets wait_timeout_ms = 1, and the harness never lets a
 * request sleep long: a blocking (DIRECT_RECLAIM) request gets NORETRY
 * added unless its control byte allows a wait (bits 1-3 all set) and the
 * input's wait budget (1) is left; NOFAIL with DIRECT_RECLAIM is passed only
 * when the model proves the request succeeds at once (else NORETRY is
 * added: NOFAIL would wait forever in a single thread); room requests never
 * keep NOFAIL with DIRECT_RECLAIM (a room at its quota waits for remote
 * frees forever).
 *
 * ---- What is checked --------------------------------------------------------
 * The model marks, page by page, which pages are handed out (a guarded block
 * -- order k >= 1 below max_order, asked by a request that may block --
 * occupies 2^(k+2) pages: the caller's 2^k and the guard half).  Stamps (first and last word of each page) are
 * written at allocation and verified at free.  After every operation:
 *   - lab_check() == 0;
 *   - lab_stats: allocated_pages == the model's handed-out pages (so free +
 *     rooms + reserves + deferred + void + model == total), the free blocks
 *     per order add up to free_pages, the watermarks are what was set, the
 *     number of live rooms matches, room_pages and the room part of
 *     reserve_pages equal the sums of lab_room_stats_get, and every live
 *     room holds + hands out at most its quota and has handed out at least
 *     what the model says, and its stock never exceeds high + batch;
 *   - highatomic_pages equals the model's reserved blocks;
 *   - the misuse handler was called exactly as often as expected, with the
 *     expected code, and lab_stats.misuse counts the same calls.
 * At creation huge_mode and trim_off say what was asked (HUGEPAGES, MLOCK,
 * caller memory); lab_arena_trim on an arena that may not trim gives back
 * nothing and counts trim_refused.
 * Every allocation returns a block aligned to its (real) order whose pages
 * are all not handed out in the model, zero-filled with LAB_GFP_ZERO; never
 * takes the zone below the request's floor (the watermark rule of labyrinth.h); reports
 * a step its flags allow (HIGHATOMIC only for high-order atomic requests,
 * EMERGENCY only for floors below min, ROOM_RESERVE only for HIGH,
 * RECOMMIT/RECLAIM/WAIT only for DIRECT_RECLAIM) and a failure reason from
 * the documented set; and agrees with the prediction made before it.
 *
 * ---- Predictions ------------------------------------------------------------
 * Before each allocation request the model says whether it must succeed or
 * must fail (with the exact reason where the arena's state fixes it), or
 * that it cannot know; the result must agree (see "predictions" below for
 * the rules and what a prediction allows for).  A process prints at exit
 * how many requests had a prediction: "predicted N of M ops".  The model
 * follows by itself the highatomic reserve block by block, the fault
 * injection decisions (lab_fault_set and LAB_FAIL_PAGE_ALLOC), and each
 * room's quota, batch and high: a refill must move exactly
 * min(batch, quota left, free - max(min, floor)) pages when the reclaimer
 * is not about, and an owner's free must refill the private reserve first,
 * then the stock, draining a batch above high (owner_free).  Where the free pages are (free lists per order, void,
 * rooms' stocks, reserves, rings) it reads from lab_stats and
 * lab_room_stats, whose sum check_all holds to its own count.
 *
 * Shrinkers (registered by OP_MISC) act only on the fuzzer's thread, inside
 * the direct reclaim of a blocking request: they free model blocks and may
 * allocate a page, which must be served without blocking or reclaim (as
 * MEMALLOC).  While one is registered, a blocking request is predicted only
 * when its first zone step must serve it.
 *
 * ---- Concurrency -------------------------------------------------------------
 * lab_arena_trim, blocking requests and trim_delay_ms start the background
 * reclaimer, which re-commits the void, puts deferred frees back and (with
 * trim_delay_ms) trims idle memory concurrently; rooms' stocks and rings are
 * taken only by direct reclaim, on the fuzzer's thread.  lab_stats is then a snapshot of pieces read at
 * different times, so the counting identities are retried for a while
 * before they count as violations; everything else is exact.
 *
 * Any violation prints what broke and calls __builtin_trap().
 */
#include "labyrinth.h"

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Allocations the library cannot make (an absurd room batch) must fail
 * with LAB_ENOMEM, not stop the fuzzer: malloc returns NULL above 1 GiB. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1:max_allocation_size_mb=1024:detect_leaks=1";
}

#define MAXP        4096u
#define MAX_FROOMS  12u
#define NGRAVE      64u
#define OP_BUDGET   1500u   /* allocations + frees per input, bursts included */

#define GFP_ALL 0x3ffu

/* Operations and their argument bytes (gfp: u16, its low 10 bits are used;
 * order byte: bit 7 set = bits 0-4 as is (may exceed max_order), else mod
 * max_order + 1; ctl: bit 0 plain API instead of the _r form, bits 1-3 all
 * set = the request may wait):
 *   0, 1  alloc            gfp, order, ctl
 *   2     free             u16 block index, method (bit 0: lab_room_free for
 *                          pages of a live room, else lab_free_pages)
 *   3     room create      reserve, batch, high, quota, selector (2 bits per
 *                          field: small / tiny / byte / huge; bit 6 quota on)
 *   4     room alloc       room, gfp, ctl
 *   5     room destroy     room
 *   6     misuse free      kind (mod 8: other order, interior, freed block,
 *                          any page, unaligned, foreign, above max_order,
 *                          the guard order), u16, byte (+ u16 if unaligned)
 *   7     misuse room free room, kind (0x30 set: a room page, u16 + byte;
 *                          else as op 6)
 *   8     lab_arena_trim
 *   9     lab_fault_set    probability, times (int8), interval, min_order,
 *                          flags (bit 7 off, bit 6 p=100, bit 5 times=-1,
 *                          bit 0 ignore_blocking)
 *   10    alloc burst      gfp, order, count - 1 (mod 64)
 *   11    free burst       count - 1 (mod 64), method
 *   12    misc             selector mod 6: 0 stats print (bit 2: JSON),
 *                          1 NULL arguments, 2 strerror, 3 accessors, 4-5 a
 *                          shrinker: register, or unregister if bit 3 is set
 *   13    room alloc burst room, gfp, count - 1 (mod 64)
 *   14    remote frees     count - 1 (mod 32): lab_free_pages of room pages
 *   15    bulk free        count - 1 (mod 16), order byte, per entry: kind
 *                          (mod 4: live block x2, bad address, NULL/repeat)
 *                          and a u16
 *   16    room bulk        room, gfp, count (mod 41) for lab_room_alloc_bulk,
 *                          count - 1 (mod 40) for lab_room_free_bulk, per
 *                          entry: kind (mod 8: the room's block x4, a repeat,
 *                          another room's block, bad address, NULL) and a u16
 */
enum {
    OP_ALLOC, OP_ALLOC2, OP_FREE, OP_ROOM_CREATE, OP_ROOM_ALLOC, OP_ROOM_DESTROY,
    OP_MISUSE_FREE, OP_MISUSE_ROOM_FREE, OP_TRIM, OP_FAULT, OP_BURST_ALLOC,
    OP_BURST_FREE, OP_MISC, OP_ROOM_BURST, OP_FREE_ROOM_REMOTE, OP_BULK_FREE, OP_ROOM_BULK, OP_COUNT
};

/* expectation of a free: a LAB_E* misuse code, or one of these */
#define EXP_VALID  (-1)   /* a correct free */
#define EXP_NONE   (-2)   /* ignored (NULL) */

struct block {
    uint32_t head;     /* first page */
    uint8_t  order;    /* the caller's order */
    uint8_t  real;     /* pages occupied: 2^real (guard blocks: order + 2) */
    uint32_t start;    /* first page occupied (guard blocks: head - 2^order) */
    int8_t   room;     /* index into M.rooms, -1 for arena blocks */
    uint32_t serial;
    uint16_t livepos;
};

struct froom {
    lab_room *r;
    bool      alive;
    size_t    quota, reserve;
    size_t    batch, high;  /* as lab_room_create settles them (high 0 = 4 * batch, at least batch) */
    size_t    stock_max;  /* high + batch: what the stock may hold (the owner's
                             next free pushes one page, then drains) */
    unsigned  out;     /* the model's pages of this room handed out */
    bool      drain_maybe;  /* direct reclaim may have asked the owner to drain */
};

static struct {
    lab_arena *a;
    char      *base;
    size_t     size;
    unsigned   npages, max_order, flags;
    bool       guard;
    size_t     wmin, wlow, whigh;
    void      *memory;           /* caller-supplied region, or NULL */

    uint64_t   used[MAXP / 64];  /* bit p: page p is handed out */
    uint16_t   owner[MAXP];      /* block slot + 1, 0 = not handed out */
    struct block blk[MAXP];
    uint16_t   live[MAXP];
    unsigned   nlive;
    uint16_t   slots[MAXP];
    unsigned   nslots;
    size_t     model_pages;
    uint32_t   serial;

    struct { uint32_t page; uint8_t order; } grave[NGRAVE];
    unsigned   ngrave, grave_next;

    struct froom rooms[MAX_FROOMS];
    unsigned   nrooms;

    bool       kswapd_maybe;     /* the background reclaimer may be running */
    bool       async_trim;       /* ... and may trim idle memory at any time */
    unsigned   waits_left;
    unsigned   budget;

    unsigned   nshrinkers;       /* registered (shrinker_ctx[0 .. n-1]) */
    bool       shrinker_ran;     /* a shrinker freed or allocated in this call */
    uint64_t   nested_injected;  /* failures injected into shrinkers' allocations */

    unsigned   mis_calls;        /* misuse handler calls (this input) */
    int        mis_err;
    int        mis_seq[64];      /* codes since mis_seq_start (lab_free_pages_bulk) */
    unsigned   mis_seq_start;
    const void *mis_addr;
    unsigned   op_index;
    int        op;
    bool       default_free;     /* the arena runs the default (not strict) hand-off */
    bool       counting;         /* requests of the input, not of the teardown */

    unsigned   ha[32];           /* highatomic reserve: blocks per order */
    int        trim_off;         /* enum lab_trim_off the arena must report */

    bool       f_on;             /* fault injection as configured (fault_model_set) */
    unsigned   f_prob, f_interval, f_min_order;
    bool       f_ignore_blocking;
    long       f_times;
    uint64_t   f_calls;          /* decisions made since it was configured */
} M;

/* In the default mode a bad free of a room block is found when the owner
 * takes it back, not at the call, so the harness, which expects each report
 * at its call, gives no bad page-aligned address inside the arena there;
 * the others (foreign, unaligned, NULL) are reported at the call in both
 * modes.  Correct frees of every kind run in both. */
static bool misuse_seen_later(const void *addr)
{
    const char *p = addr;
    return M.default_free && p >= M.base && p < M.base + M.size && !((uintptr_t)p & 4095);
}

static FILE *devnull;
static pthread_t fuzz_thread;

/* How often the model knew the outcome of a request before making it, over
 * every input this process ran: printed at exit (fuzz_report). */
static struct {
    unsigned long long arena, arena_known, room, room_known, succeed, fail;
} PRED;

static void count_prediction(bool room, int outcome)
{
    if (!M.counting)
        return;
    if (room)
        PRED.room++;
    else
        PRED.arena++;
    if (outcome < 0)
        return;
    if (room)
        PRED.room_known++;
    else
        PRED.arena_known++;
    if (outcome)
        PRED.succeed++;
    else
        PRED.fail++;
}

/* What the OS gave the arenas that asked for MLOCK or HUGEPAGES. */
static struct {
    unsigned long long mlock, mlocked, huge[4];
} OS_REFUSED;

static void fuzz_report(void)
{
    if (OS_REFUSED.mlock + OS_REFUSED.mlocked)
        fprintf(stderr, "fuzz_api: LAB_ARENA_MLOCK: %llu arenas locked, %llu refused by the OS (LAB_EMLOCK)\n",
                OS_REFUSED.mlocked, OS_REFUSED.mlock);
    if (OS_REFUSED.huge[LAB_HUGE_EXPLICIT] + OS_REFUSED.huge[LAB_HUGE_TRANSPARENT] + OS_REFUSED.huge[LAB_HUGE_REFUSED])
        fprintf(stderr, "fuzz_api: LAB_ARENA_HUGEPAGES: %llu explicit, %llu transparent, %llu refused by the OS\n",
                OS_REFUSED.huge[LAB_HUGE_EXPLICIT], OS_REFUSED.huge[LAB_HUGE_TRANSPARENT],
                OS_REFUSED.huge[LAB_HUGE_REFUSED]);
    unsigned long long ops = PRED.arena + PRED.room, known = PRED.arena_known + PRED.room_known;
    fprintf(stderr, "fuzz_api: predicted %llu of %llu ops (%.1f%%): %llu must succeed, %llu must fail; "
                    "arena %llu of %llu, rooms %llu of %llu\n", known, ops, ops ? 100.0 * (double)known / (double)ops : 0.0,
            PRED.succeed, PRED.fail, PRED.arena_known, PRED.arena, PRED.room_known, PRED.room);
}
/* ctx of the shrinkers: bit 0 says "allocate one page from inside reclaim" */
static const int shrinker_ctx[2] = { 0, 1 };
static char foreign_buf[3 * 4096] __attribute__((aligned(4096)));

/* ---- failing --------------------------------------------------------------- */
#define FAIL(...) fail(__LINE__, __VA_ARGS__)
static void fail(int line, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void fail(int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "\nfuzz_api: VIOLATION at fuzz_api.c:%d (op #%u, opcode %d, %u pages, max_order %u, flags 0x%x, "
                    "wmarks %zu/%zu/%zu): ", line, M.op_index, M.op, M.npages, M.max_order, M.flags,
            M.wmin, M.wlow, M.whigh);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (M.a)
        lab_stats_print(M.a, stderr, LAB_STATS_TEXT);
    fflush(stderr);
    __builtin_trap();
}
#define REQUIRE(c, ...) do { if (!(c)) FAIL(__VA_ARGS__); } while (0)

/* ---- input ------------------------------------------------------------------- */
struct in { const uint8_t *p; size_t n, i; };
static struct in IN;
static unsigned rd8(void) { return IN.i < IN.n ? IN.p[IN.i++] : 0; }
static unsigned rd16(void) { unsigned lo = rd8(); return lo | (rd8() << 8); }
static bool more(void) { return IN.i < IN.n; }

/* ---- hooks --------------------------------------------------------------------- */
static void on_misuse(void *ctx, int err, const void *addr, const char *msg)
{
    (void)ctx;
    if (msg == NULL || msg[0] == 0)
        FAIL("misuse report %d without a message", err);
    if (M.mis_calls - M.mis_seq_start < 64)
        M.mis_seq[M.mis_calls - M.mis_seq_start] = err;
    M.mis_calls++;
    M.mis_err = err;
    M.mis_addr = addr;
}

static void on_log(void *ctx, const char *msg, size_t len)
{
    (void)ctx;
    (void)msg;
    (void)len;
}

/* ---- the model ------------------------------------------------------------------ */
static inline bool page_used(unsigned p) { return (M.used[p >> 6] >> (p & 63)) & 1; }

/* Are pages [s, s + n) all not handed out?  s is aligned to n (a power of 2). */
static bool range_free(unsigned s, unsigned n)
{
    if (n >= 64) {
        for (unsigned w = s / 64; w < (s + n) / 64; w++)
            if (M.used[w])
                return false;
        return true;
    }
    uint64_t mask = ((1ull << n) - 1) << (s & 63);
    return (M.used[s >> 6] & mask) == 0;
}

static bool aligned_free_range_exists(unsigned real)
{
    unsigned n = 1u << real;
    for (unsigned s = 0; s + n <= M.npages; s += n)
        if (range_free(s, n))
            return true;
    return false;
}

static uint64_t stamp_of(uint32_t serial, unsigned page, unsigned which)
{
    return ((uint64_t)serial << 32) ^ ((uint64_t)page * 0x9e3779b97f4a7c15ull) ^ (which ? 0x5a5a5a5a00000000ull : 0x00000000a5a5a5a5ull);
}

static void stamp(const struct block *b)
{
    for (unsigned i = 0; i < (1u << b->order); i++) {
        uint64_t *pg = (uint64_t *)(M.base + ((size_t)(b->head + i) << 12));
        pg[0] = stamp_of(b->serial, i, 0);
        pg[511] = stamp_of(b->serial, i, 1);
    }
}

static void verify_stamp(const struct block *b)
{
    for (unsigned i = 0; i < (1u << b->order); i++) {
        const uint64_t *pg = (const uint64_t *)(M.base + ((size_t)(b->head + i) << 12));
        if (pg[0] != stamp_of(b->serial, i, 0) || pg[511] != stamp_of(b->serial, i, 1))
            FAIL("the contents of handed-out page %u (block at page %u, order %u) changed: %#llx %#llx",
                 b->head + i, b->head, b->order, (unsigned long long)pg[0], (unsigned long long)pg[511]);
    }
}

static unsigned block_add(uint32_t head, unsigned order, unsigned real, int room)
{
    REQUIRE(M.nslots > 0, "model out of slots");
    unsigned s = M.slots[--M.nslots];
    struct block *b = &M.blk[s];
    b->head = head;
    b->order = (uint8_t)order;
    b->real = (uint8_t)real;
    b->start = real != order ? head - (1u << order) : head;
    b->room = (int8_t)room;
    b->serial = ++M.serial;
    b->livepos = (uint16_t)M.nlive;
    M.live[M.nlive++] = (uint16_t)s;
    for (unsigned p = b->start; p < b->start + (1u << real); p++) {
        M.owner[p] = (uint16_t)(s + 1);
        M.used[p >> 6] |= 1ull << (p & 63);
    }
    M.model_pages += 1u << real;
    if (room >= 0)
        M.rooms[room].out++;
    stamp(b);
    return s;
}

static void block_remove(unsigned s)
{
    struct block *b = &M.blk[s];
    for (unsigned p = b->start; p < b->start + (1u << b->real); p++) {
        M.owner[p] = 0;
        M.used[p >> 6] &= ~(1ull << (p & 63));
    }
    M.model_pages -= 1u << b->real;
    if (b->room >= 0)
        M.rooms[b->room].out--;
    unsigned pos = b->livepos;
    M.live[pos] = M.live[--M.nlive];
    M.blk[M.live[pos]].livepos = (uint16_t)pos;
    M.slots[M.nslots++] = (uint16_t)s;
    M.grave[M.grave_next].page = b->head;
    M.grave[M.grave_next].order = b->order;
    M.grave_next = (M.grave_next + 1) % NGRAVE;
    if (M.ngrave < NGRAVE)
        M.ngrave++;
}

static unsigned live_rooms(void)
{
    unsigned n = 0;
    for (unsigned i = 0; i < M.nrooms; i++)
        n += M.rooms[i].alive;
    return n;
}

/* The floor of the watermark rule of labyrinth.h. */
static size_t doc_floor(unsigned gfp)
{
    size_t m = M.wmin;
    if (gfp & LAB_GFP_NOMEMALLOC)
        return m;
    if (gfp & LAB_GFP_HIGH) {
        m -= m / 2;
        if (!(gfp & LAB_GFP_DIRECT_RECLAIM))
            m -= m / 4;
    }
    if (gfp & LAB_GFP_MEMALLOC)
        m = 0;
    return m;
}

/* The lowest floor a blocking request may ever reach: NOFAIL (not undone by
 * NORETRY, not NOMEMALLOC) may go down to the HIGH share. */
static size_t lowest_floor(unsigned gfp)
{
    size_t f = doc_floor(gfp);
    bool nofail = (gfp & (LAB_GFP_NOFAIL | LAB_GFP_DIRECT_RECLAIM | LAB_GFP_NORETRY)) ==
                  (LAB_GFP_NOFAIL | LAB_GFP_DIRECT_RECLAIM);
    if (nofail && !(gfp & LAB_GFP_NOMEMALLOC) && f == M.wmin)
        f = M.wmin - M.wmin / 2;
    return f;
}

/* GUARD arenas guard blocks of order >= 1 for requests that may block only:
 * the guard pages take system calls (mprotect), which the others may not
 * make; and only where the guarded block, four times the size, can ever
 * fit above that floor (elsewhere the block comes unguarded). */
static unsigned real_order(unsigned order, unsigned gfp)
{
    bool guard = M.guard && order >= 1 && order + 2 <= M.max_order && (gfp & LAB_GFP_DIRECT_RECLAIM);
    size_t floor = lowest_floor(gfp);
    return guard && floor <= M.npages && ((size_t)1 << (order + 2)) <= M.npages - floor ? order + 2 : order;
}

static size_t ha_pages(void);
static void ha_sync(const lab_stats *st);

/* ---- the state checks ------------------------------------------------------------ */
static void stats(lab_stats *st)
{
    lab_stats_get(M.a, st);
}

/* The counting identities; false if they do not hold (yet). */
static bool counts_hold(const lab_stats *st, char *why, size_t whylen)
{
    size_t sum = 0;
    for (unsigned o = 0; o <= st->max_order && o < 32; o++)
        sum += st->free_blocks[o] << o;
    if (sum != st->free_pages) {
        snprintf(why, whylen, "free blocks per order add up to %zu pages, free_pages is %zu", sum, st->free_pages);
        return false;
    }
    size_t held = st->free_pages + st->room_pages + st->reserve_pages + st->deferred_pages + st->void_pages;
    if (held + M.model_pages != st->total_pages || st->allocated_pages != M.model_pages) {
        snprintf(why, whylen,
                 "pages do not add up: free %zu + rooms %zu + reserves %zu + deferred %zu + void %zu + handed out "
                 "(model) %zu != total %zu (stats say allocated %zu)",
                 st->free_pages, st->room_pages, st->reserve_pages, st->deferred_pages, st->void_pages,
                 M.model_pages, st->total_pages, st->allocated_pages);
        return false;
    }
    return true;
}

static void check_all(void)
{
    int err = lab_check(M.a);
    REQUIRE(err == 0, "lab_check() = %d (%s)", err, lab_strerror(err));

    lab_stats st;
    char why[512];
    for (unsigned t = 0;; t++) {
        stats(&st);
        if (counts_hold(&st, why, sizeof(why)))
            break;
        /* single threaded: the snapshot is exact */
        REQUIRE(M.kswapd_maybe && t < 2000, "%s", why);
        struct timespec ts = { 0, 20000 };
        nanosleep(&ts, NULL);
    }
    REQUIRE(st.total_pages == M.npages, "total_pages %zu", st.total_pages);
    REQUIRE(st.max_order == M.max_order, "max_order %u", st.max_order);
    REQUIRE(st.wmark_min == M.wmin && st.wmark_low == M.wlow && st.wmark_high == M.whigh, "watermarks moved");
    REQUIRE(st.misuse == M.mis_calls, "stats count %llu misuse, the handler saw %u",
            (unsigned long long)st.misuse, M.mis_calls);
    REQUIRE(st.nr_rooms == live_rooms(), "stats: %zu rooms, model %u", st.nr_rooms, live_rooms());
    REQUIRE(st.reserve_pages >= st.highatomic_pages, "reserve_pages < highatomic_pages");
    ha_sync(&st);
    REQUIRE(st.highatomic_pages == ha_pages(), "highatomic_pages %zu, the model's blocks add up to %zu",
            st.highatomic_pages, ha_pages());

    size_t stock = 0, reserve = 0;
    for (unsigned i = 0; i < M.nrooms; i++) {
        struct froom *fr = &M.rooms[i];
        if (!fr->alive)
            continue;
        lab_room_stats rs;
        lab_room_stats_get(fr->r, &rs);
        stock += rs.stock;
        reserve += rs.reserve;
        REQUIRE(rs.out >= fr->out, "room %u says %zu pages out, the model has %u", i, rs.out, fr->out);
        REQUIRE(rs.reserve <= fr->reserve, "room %u reserve %zu above its %zu", i, rs.reserve, fr->reserve);
        REQUIRE(rs.stock <= fr->stock_max, "room %u stock %zu above high + batch = %zu", i, rs.stock, fr->stock_max);
        if (fr->quota)
            REQUIRE(rs.stock + rs.reserve + rs.out <= fr->quota && fr->out <= fr->quota,
                    "room %u above its quota %zu: stock %zu reserve %zu out %zu (model out %u)", i, fr->quota,
                    rs.stock, rs.reserve, rs.out, fr->out);
    }
    REQUIRE(stock == st.room_pages, "room_pages %zu, rooms' stocks add up to %zu", st.room_pages, stock);
    REQUIRE(reserve + st.highatomic_pages == st.reserve_pages, "reserve_pages %zu != rooms' %zu + highatomic %zu",
            st.reserve_pages, reserve, st.highatomic_pages);
}

static void expect_misuse(unsigned before, int code, const char *what)
{
    if (code < 0) {
        REQUIRE(M.mis_calls == before, "%s: unexpected misuse report %d (%s)", what, M.mis_err,
                lab_strerror(M.mis_err));
        return;
    }
    REQUIRE(M.mis_calls == before + 1, "%s: expected one misuse report %d (%s), got %u", what, code,
            lab_strerror(code), M.mis_calls - before);
    REQUIRE(M.mis_err == code, "%s: expected misuse %d (%s), got %d (%s)", what, code, lab_strerror(code),
            M.mis_err, lab_strerror(M.mis_err));
}

/* ---- GFP ---------------------------------------------------------------------------- */
static unsigned tame_blocking(unsigned gfp, bool may_wait, bool nofail_proven)
{
    if (!(gfp & LAB_GFP_DIRECT_RECLAIM) || (gfp & LAB_GFP_NORETRY))
        return gfp;
    if ((gfp & LAB_GFP_NOFAIL) && !nofail_proven)
        return gfp | LAB_GFP_NORETRY;
    if ((gfp & LAB_GFP_NOFAIL) && nofail_proven)
        return gfp;
    if (may_wait && M.waits_left) {
        M.waits_left--;
        return gfp;
    }
    return gfp | LAB_GFP_NORETRY;
}

static bool arena_step_ok(int step, unsigned gfp, unsigned real)
{
    bool blocking = gfp & LAB_GFP_DIRECT_RECLAIM;
    switch (step) {
    case LAB_STEP_ZONE:
        return true;
    case LAB_STEP_EMERGENCY:
        return doc_floor(gfp) < M.wmin || ((gfp & LAB_GFP_NOFAIL) && blocking);
    case LAB_STEP_HIGHATOMIC:
        return (gfp & (LAB_GFP_HIGH | LAB_GFP_DIRECT_RECLAIM)) == LAB_GFP_HIGH && real > 0 &&
               !(gfp & LAB_GFP_NOMEMALLOC);
    case LAB_STEP_RECOMMIT:
    case LAB_STEP_RECLAIM:
    case LAB_STEP_WAIT:
        return blocking;
    default:
        return false;
    }
}

static bool room_step_ok(int step, unsigned gfp)
{
    switch (step) {
    case LAB_STEP_ROOM:
    case LAB_STEP_ROOM_REMOTE:
    case LAB_STEP_ZONE:
        return true;
    case LAB_STEP_ROOM_RESERVE:
        return (gfp & LAB_GFP_HIGH) && !(gfp & LAB_GFP_NOMEMALLOC);
    default:
        return arena_step_ok(step, gfp, 0);
    }
}

static bool reason_valid_arena(int reason)
{
    switch (reason) {
    case LAB_R_WATERMARK: case LAB_R_FRAGMENTED: case LAB_R_RESERVE_EMPTY: case LAB_R_WOULD_BLOCK:
    case LAB_R_ORDER: case LAB_R_INJECTED: case LAB_R_TIMEOUT:
        return true;
    default:
        return false;
    }
}

/* The page a request returned: inside the arena, aligned, every page of its
 * real extent not handed out. */
static uint32_t check_new_block(void *addr, unsigned order, unsigned real, const char *what)
{
    uintptr_t off = (uintptr_t)addr - (uintptr_t)M.base;
    REQUIRE(off < M.size && (off & 4095) == 0, "%s returned %p outside the arena or unaligned", what, addr);
    uint32_t head = (uint32_t)(off >> 12);
    /* a guarded block: the caller's pages are the second quarter of 2^real */
    uint32_t start = real != order ? head - (1u << order) : head;
    REQUIRE((head & ((1u << order) - 1)) == 0, "%s: block at page %u not aligned to order %u", what, head, order);
    REQUIRE((start & ((1u << real) - 1)) == 0, "%s: extent at page %u not aligned to order %u", what, start, real);
    REQUIRE(start + (1u << real) <= M.npages, "%s: block at page %u order %u runs past the end", what, start, real);
    for (unsigned p = start; p < start + (1u << real); p++)
        REQUIRE(!page_used(p), "%s: page %u of the new block (page %u, order %u) is already handed out (block at %u)",
                what, p, head, order, M.blk[M.owner[p] - 1].head);
    return head;
}

static void check_zeroed(uint32_t head, unsigned order)
{
    for (unsigned i = 0; i < (1u << order); i++) {
        const uint64_t *pg = (const uint64_t *)(M.base + ((size_t)(head + i) << 12));
        REQUIRE(pg[0] == 0 && pg[255] == 0 && pg[511] == 0, "LAB_GFP_ZERO page %u not zero", head + i);
    }
}

/* ---- fault injection, as the model knows it -----------------------------------
 * lab_fault_set (and LAB_FAIL_PAGE_ALLOC at creation) configure one decision
 * per eligible call of fault.c's fault_should_fail: the arena entry of a
 * request of order <= max_order, and a room refill.  The count of decisions
 * is deterministic, so with probability 100 the model knows which call
 * fails; with 1..99 it knows which calls may fail, and follows `times` from
 * lab_fault_injected. */
static int fault_decides(unsigned gfp, unsigned order, bool advance)
{
    if (!M.f_on || (gfp & LAB_GFP_NOFAIL) || order < M.f_min_order ||
        (M.f_ignore_blocking && (gfp & LAB_GFP_DIRECT_RECLAIM)))
        return 0;
    uint64_t n = M.f_calls + 1;
    if (advance)
        M.f_calls = n;
    if (n % M.f_interval != 0 || M.f_times == 0)
        return 0;
    return M.f_prob >= 100 ? 1 : -1;
}

/* After a call with a decision: `times` moves only when one was injected. */
static void fault_observe(bool injected)
{
    if (injected && M.f_times > 0)
        M.f_times--;
}

static void fault_model_set(unsigned prob, unsigned interval, long times, unsigned min_order, bool ignore_blocking)
{
    M.f_on = prob > 0 && times != 0;
    M.f_prob = prob;
    M.f_interval = interval ? interval : 1;
    M.f_times = times;
    M.f_min_order = min_order;
    M.f_ignore_blocking = ignore_blocking;
    M.f_calls = 0;
}

/* ---- the high-order atomic reserve, block by block (reserve.c) ---------------
 * A high-order atomic success from the free lists may set one block of its
 * order aside (the model sees highatomic_pages grow by it); a take splits the
 * smallest block of at least the order, keeping the rest; a blocking
 * request's slow path releases all of it (highatomic_pages drops to 0).  No
 * other thread touches it, so check_all compares the totals exactly. */
/* A blocking request's slow path releases the whole reserve, and a room's
 * blocking request walks the same path: when the library says it holds
 * none, neither does the model. */
static void ha_sync(const lab_stats *st)
{
    if (st->highatomic_pages == 0)
        memset(M.ha, 0, sizeof(M.ha));
}

static size_t ha_pages(void)
{
    size_t n = 0;
    for (unsigned o = 0; o <= M.max_order; o++)
        n += (size_t)M.ha[o] << o;
    return n;
}

static bool ha_has(unsigned order)
{
    for (unsigned o = order; o <= M.max_order; o++)
        if (M.ha[o])
            return true;
    return false;
}

static void ha_take(unsigned order)
{
    unsigned o = order;
    while (o <= M.max_order && !M.ha[o])
        o++;
    REQUIRE(o <= M.max_order, "a HIGHATOMIC success with no reserved block of order >= %u in the model", order);
    M.ha[o]--;
    while (o > order)
        M.ha[--o]++;
}

/* ---- predictions -----------------------------------------------------------------
 * Before each request the model says: it must succeed, it must fail (with
 * the reason when that is exact), or it cannot know (P_OPEN).  It takes the
 * location of the pages that are not handed out from lab_stats and
 * lab_room_stats (free lists per order, void, rooms' stocks, reserves and
 * rings: check_all holds their sum to the model's own count), its own
 * highatomic blocks and fault decisions, and the rules of labyrinth.h for
 * which of them a request's flags reach.
 *
 * "Must succeed" allows two failures that do not depend on the arena's
 * state: LAB_R_INJECTED where a decision with probability below 100 was
 * reached, and LAB_R_WOULD_BLOCK for a request that only tries the zone lock
 * while the background reclaimer may hold it.
 *
 * The reclaimer thread (once started) only ever moves pages from the void,
 * and deferred frees, to the free lists, and with trim_delay_ms trims free
 * pages above high into the void: it never takes rooms' pages (only direct
 * reclaim does) or the highatomic reserve.  So with it about, a prediction
 * holds if it holds whatever it does: the zone's free pages lie between
 * min(free, high) (trim) and free + void (re-commit), blocks can only merge
 * (never split) unless the void is empty, and rooms are exact. */
enum { P_OPEN = -1, P_FAIL = 0, P_SUCCEED = 1 };

struct expect {
    int  outcome;     /* P_* */
    int  reason;      /* P_FAIL: the exact reason, or -1 for any failure */
    bool busy_ok;     /* LAB_R_WOULD_BLOCK is allowed */
    bool inject_ok;   /* LAB_R_INJECTED is allowed (probability below 100) */
    int  decision;    /* the fault decision the call reaches: 1, 0, -1 unknown */
};

static bool wm_ok(size_t free, unsigned order, size_t floor)
{
    size_t need = (size_t)1 << order;
    return free >= need && free - need >= floor;
}

static bool block_at_least(const lab_stats *st, unsigned order)
{
    for (unsigned o = order; o <= M.max_order && o < 32; o++)
        if (st->free_blocks[o])
            return true;
    return false;
}

/* The zone's free pages at the call are at least this (trim keeps high). */
static size_t zone_free_at_least(const lab_stats *st)
{
    return M.async_trim && st->free_pages > M.whigh ? M.whigh : st->free_pages;
}

/* Can the zone step (3) serve order `r` above `floor`, whatever the
 * reclaimer does meanwhile?  1 yes, 0 no, -1 it depends on the reclaimer. */
static int zone_step(const lab_stats *st, unsigned r, size_t floor)
{
    if (!M.kswapd_maybe)
        return wm_ok(st->free_pages, r, floor) && block_at_least(st, r);
    bool now = wm_ok(st->free_pages, r, floor) && block_at_least(st, r);
    if (now && (!M.async_trim || (r == 0 && wm_ok(zone_free_at_least(st), 0, floor))))
        return 1;
    /* nothing to re-commit: the free pages can only shrink (trim) or stay */
    if (!now && st->void_pages == 0 && st->deferred_pages == 0)
        return 0;
    if (!wm_ok(st->free_pages + st->void_pages + st->deferred_pages, r, floor))
        return 0;
    return -1;
}

static int zone_reason(const lab_stats *st, unsigned r, size_t floor)
{
    if (!wm_ok(st->free_pages, r, floor))
        return floor < M.wmin ? LAB_R_RESERVE_EMPTY : LAB_R_WATERMARK;
    return LAB_R_FRAGMENTED;
}

/* Pages no arena request can ever reach: handed out, or in a live room's
 * private reserve. */
static size_t pages_out_of_reach(void)
{
    size_t n = M.model_pages;
    for (unsigned i = 0; i < M.nrooms; i++)
        if (M.rooms[i].alive) {
            lab_room_stats rs;
            lab_room_stats_get(M.rooms[i].r, &rs);
            n += rs.reserve;
        }
    return n;
}

/* What the slow path of a blocking order-0 request surely finds: the
 * highatomic reserve, released when reclaim did not help.  Not the void:
 * the reclaimer, woken by this very request below low, may hold void blocks
 * in flight (re-committing them, counted in void_pages but on no list) when
 * step 6 looks; and rooms' stocks are taken only where membarrier works. */
static bool slowpath_surely_serves_order0(const lab_stats *st, size_t floor)
{
    return !M.async_trim && wm_ok(st->free_pages + ha_pages(), 0, floor);
}

/* Nothing the slow path does can add a page: no void, no deferred frees, no
 * highatomic block, no room stock or ring to take, no shrinker. */
static bool slowpath_adds_nothing(const lab_stats *st)
{
    if (st->void_pages || st->deferred_pages || ha_pages() || st->room_pages || M.nshrinkers)
        return false;
    for (unsigned i = 0; i < M.nrooms; i++)
        if (M.rooms[i].alive) {
            lab_room_stats rs;
            lab_room_stats_get(M.rooms[i].r, &rs);
            if (rs.in_ring)
                return false;
        }
    return true;
}

static struct expect predict_arena(unsigned gfp, unsigned order, unsigned real, const lab_stats *st, bool advance)
{
    struct expect e = { P_OPEN, -1, false, false, 0 };
    bool blocking = gfp & LAB_GFP_DIRECT_RECLAIM;
    if (order > M.max_order) {
        e.outcome = P_FAIL;
        e.reason = LAB_R_ORDER;
        return e;
    }
    e.decision = fault_decides(gfp, order, advance);
    if (e.decision == 1) {
        e.outcome = P_FAIL;
        e.reason = LAB_R_INJECTED;
        return e;
    }
    e.inject_ok = e.decision < 0;
    e.busy_ok = !blocking && M.kswapd_maybe;
    size_t floor = doc_floor(gfp);
    bool ha_eligible = (gfp & (LAB_GFP_HIGH | LAB_GFP_DIRECT_RECLAIM)) == LAB_GFP_HIGH && real > 0 &&
                       !(gfp & LAB_GFP_NOMEMALLOC);
    int zone = zone_step(st, real, floor);
    if (zone == 1 || (ha_eligible && ha_has(real))) {
        e.outcome = P_SUCCEED;
        return e;
    }
    /* a shrinker frees the model's own blocks inside direct reclaim */
    if (blocking && M.nshrinkers)
        return e;
    /* more than the model leaves free, or no aligned range of the model
     * free: nothing can serve it */
    size_t out = pages_out_of_reach();
    if (M.npages - out < ((size_t)1 << real) + floor || !aligned_free_range_exists(real)) {
        e.outcome = P_FAIL;
        return e;
    }
    if (!blocking) {
        if (zone == 0) {
            e.outcome = P_FAIL;
            /* exact when the snapshot is: no reclaimer, or nothing it could change */
            if (!M.kswapd_maybe || (st->void_pages == 0 && st->deferred_pages == 0 && !M.async_trim))
                e.reason = zone_reason(st, real, floor);
        }
        return e;
    }
    if (real == 0 && slowpath_surely_serves_order0(st, floor)) {
        e.outcome = P_SUCCEED;
        return e;
    }
    if (zone == 0 && slowpath_adds_nothing(st) && !M.async_trim) {
        e.outcome = P_FAIL;
        e.reason = zone_reason(st, real, floor);
    }
    return e;
}

/* The room's walk (path.c, room_alloc_slow) for an order-0 request: stock,
 * remote frees, refill up to the quota, the private reserve (HIGH, not
 * NOMEMALLOC, even at the quota), the zone's emergency share (HIGH or
 * MEMALLOC, below the quota), and for blocking requests below the quota the
 * arena's slow path. */
static struct expect predict_room(const struct froom *fr, const lab_room_stats *rs, unsigned gfp, const lab_stats *st,
                                  bool advance)
{
    struct expect e = { P_OPEN, -1, false, false, 0 };
    bool blocking = gfp & LAB_GFP_DIRECT_RECLAIM;
    ha_sync(st);   /* ha_follow sees only arena requests */
    if (rs->stock || rs->in_ring) {
        e.outcome = P_SUCCEED;
        return e;
    }
    bool below_quota = !fr->quota || rs->reserve + rs->out < fr->quota;
    if (below_quota) {
        e.decision = fault_decides(gfp, 0, advance);
        if (e.decision == 1) {
            e.outcome = P_FAIL;
            e.reason = LAB_R_INJECTED;
            return e;
        }
    }
    e.inject_ok = e.decision < 0;
    e.busy_ok = M.kswapd_maybe && !blocking;
    size_t floor = doc_floor(gfp), refill_floor = floor > M.wmin ? floor : M.wmin;
    bool reserve = !(gfp & LAB_GFP_NOMEMALLOC) && (gfp & LAB_GFP_HIGH) && rs->reserve > 0;
    bool emergency = below_quota && !(gfp & LAB_GFP_NOMEMALLOC) && (gfp & (LAB_GFP_HIGH | LAB_GFP_MEMALLOC)) &&
                     floor < M.wmin;
    int refill = below_quota ? zone_step(st, 0, refill_floor) : 0;
    int emerg = emergency ? zone_step(st, 0, floor) : 0;
    if (reserve) {
        /* no lock on the way: a busy zone lock only sends it there sooner */
        e.outcome = P_SUCCEED;
        e.busy_ok = false;
        return e;
    }
    if (refill == 1) {
        e.outcome = P_SUCCEED;
        return e;
    }
    if (emerg == 1) {
        /* the emergency share only tries the lock; a blocking request that
         * finds it busy goes on to the slow path, which takes it */
        e.outcome = P_SUCCEED;
        e.busy_ok = !blocking && M.kswapd_maybe;
        return e;
    }
    if (!below_quota) {
        e.outcome = P_FAIL;
        e.reason = LAB_R_QUOTA;
        return e;
    }
    if (blocking && M.nshrinkers)
        return e;
    if (M.npages - pages_out_of_reach() < 1 + floor) {
        e.outcome = P_FAIL;
        return e;
    }
    if (!blocking) {
        if (refill == 0 && emerg == 0) {
            e.outcome = P_FAIL;
            if (!M.kswapd_maybe || (st->void_pages == 0 && st->deferred_pages == 0 && !M.async_trim))
                /* the emergency step is tried (and says so) whenever the flags ask for it */
                e.reason = (gfp & (LAB_GFP_HIGH | LAB_GFP_MEMALLOC)) && !(gfp & LAB_GFP_NOMEMALLOC)
                               ? LAB_R_RESERVE_EMPTY : LAB_R_WATERMARK;
        }
        return e;
    }
    if (slowpath_surely_serves_order0(st, floor)) {
        e.outcome = P_SUCCEED;
        return e;
    }
    if (refill == 0 && emerg == 0 && slowpath_adds_nothing(st) && !M.async_trim) {
        e.outcome = P_FAIL;
        e.reason = zone_reason(st, 0, floor);
    }
    return e;
}

/* The result against the prediction. */
static void check_expect(const struct expect *e, bool ok, bool plain, int reason, bool injected, bool waited,
                         const char *what)
{
    if (e->decision == 1)
        REQUIRE(injected, "%s: the model's fault decision %llu fails, nothing was injected", what,
                (unsigned long long)M.f_calls);
    if (e->decision == 0)
        REQUIRE(!injected, "%s: a failure was injected where the model has no decision to fail", what);
    if (e->outcome == P_SUCCEED && !ok) {
        if (injected && e->inject_ok)
            return;
        if (e->busy_ok && (plain || reason == LAB_R_WOULD_BLOCK))
            return;
        FAIL("%s must succeed (the model's reach), yet failed with reason %d", what, plain ? -1 : reason);
    }
    if (e->outcome == P_FAIL) {
        REQUIRE(!ok, "%s must fail (the model: nothing within its reach), yet succeeded", what);
        if (!plain && e->reason >= 0)
            REQUIRE(reason == e->reason || (reason == LAB_R_TIMEOUT && waited) ||
                        (reason == LAB_R_WOULD_BLOCK && e->busy_ok) ||
                        (reason == LAB_R_INJECTED && injected && e->inject_ok),
                    "%s failed with reason %d, the model expected %d", what, reason, e->reason);
    }
}

static unsigned pick_gfp(void)
{
    return rd16() & GFP_ALL;
}

static unsigned pick_order(unsigned b)
{
    if (b & 0x80)
        return b & 0x1f;          /* may be above max_order */
    return b % (M.max_order + 1);
}

/* ---- operations ---------------------------------------------------------------------- */
/* After an arena request: the highatomic reserve moved by a top-up (+2^real),
 * a take (-2^real, split from the smallest block) or a release (to 0). */
static void ha_follow(size_t before, size_t after, unsigned real, bool ok, int step, bool plain)
{
    size_t unit = (size_t)1 << real;
    if (after == before) {
        REQUIRE(plain || !ok || step != LAB_STEP_HIGHATOMIC, "a HIGHATOMIC success left the reserve at %zu pages", after);
        return;
    }
    if (after == 0) {
        memset(M.ha, 0, sizeof(M.ha));
        return;
    }
    REQUIRE(ok, "a failed request moved the highatomic reserve from %zu to %zu pages", before, after);
    if (after == before + unit) {
        REQUIRE(plain || step == LAB_STEP_ZONE || step == LAB_STEP_EMERGENCY, "a top-up after step %d", step);
        M.ha[real]++;
    } else if (after + unit == before) {
        REQUIRE(plain || step == LAB_STEP_HIGHATOMIC, "the reserve gave %zu pages to step %d", unit, step);
        ha_take(real);
    } else {
        FAIL("the highatomic reserve went from %zu to %zu pages for an order-%u block", before, after, real);
    }
}

/* A blocking request: it starts the reclaimer (below low), and its direct
 * reclaim may ask rooms' owners to drain. */
static void reclaim_may_run(void)
{
    M.kswapd_maybe = true;
    for (unsigned i = 0; i < M.nrooms; i++)
        M.rooms[i].drain_maybe = true;
}

static bool do_alloc(unsigned gfp, unsigned order, unsigned ctl)
{
    unsigned real = order <= M.max_order ? real_order(order, gfp) : order;
    lab_stats st;
    stats(&st);
    /* NOFAIL with DIRECT_RECLAIM only where success is certain (NOFAIL is
     * exempt from injection, and a blocking request never finds the lock
     * busy); NORETRY does not change the prediction */
    struct expect e = predict_arena(gfp, order, real, &st, false);
    gfp = tame_blocking(gfp, (ctl & 0x0e) == 0x0e, e.outcome == P_SUCCEED && !e.busy_ok && !e.inject_ok);
    /* a NOFAIL tamed with NORETRY loses its HIGH share, and with it, in a
     * GUARD arena, perhaps the room for a guarded block */
    if (order <= M.max_order)
        real = real_order(order, gfp);
    e = predict_arena(gfp, order, real, &st, true);
    count_prediction(false, e.outcome);
    bool blocking = gfp & LAB_GFP_DIRECT_RECLAIM, waited = blocking && !(gfp & LAB_GFP_NORETRY);
    bool plain = ctl & 1;
    if (blocking)
        reclaim_may_run();

    uint64_t inj0 = lab_fault_injected(M.a);
    unsigned mis0 = M.mis_calls;
    M.shrinker_ran = false;
    M.nested_injected = 0;
    lab_result res = { (void *)1, -1, -1 };
    if (plain)
        res.addr = lab_alloc_pages(M.a, gfp, order);
    else
        lab_alloc_pages_result(M.a, gfp, order, &res);
    bool injected = lab_fault_injected(M.a) - inj0 - M.nested_injected != 0;
    fault_observe(injected);
    expect_misuse(mis0, EXP_NONE, "allocation");
    char what[96];
    snprintf(what, sizeof(what), "an order-%u request (gfp %#x, real order %u)", order, gfp, real);
    check_expect(&e, res.addr != NULL, plain, res.reason, injected, waited, what);
    lab_stats after;
    stats(&after);
    if (order <= M.max_order)
        ha_follow(st.highatomic_pages, after.highatomic_pages, real, res.addr != NULL, res.step, plain);

    if (res.addr) {
        REQUIRE(order <= M.max_order, "order %u above max_order %u succeeded", order, M.max_order);
        uint32_t head = check_new_block(res.addr, order, real, "lab_alloc_pages");
        REQUIRE(!injected, "a request with an injected failure succeeded");
        if (!plain) {
            REQUIRE(res.reason == LAB_R_NONE, "success with reason %d", res.reason);
            REQUIRE(arena_step_ok(res.step, gfp, real), "step %d for gfp %#x order %u", res.step, gfp, order);
        }
        if (gfp & LAB_GFP_ZERO)
            check_zeroed(head, order);
        block_add(head, order, real, -1);
        /* (a shrinker's own allocation inside reclaim may go below it) */
        if (!plain && res.step != LAB_STEP_HIGHATOMIC && !M.async_trim && !M.shrinker_ran) {
            size_t floor = doc_floor(blocking && (gfp & LAB_GFP_NOFAIL) ? gfp | LAB_GFP_HIGH : gfp);
            REQUIRE(after.free_pages >= floor, "the request (gfp %#x, step %d) took the zone to %zu free pages, below its floor %zu",
                    gfp, res.step, after.free_pages, floor);
        }
        return true;
    }
    if (!plain) {
        REQUIRE(reason_valid_arena(res.reason), "failure reason %d", res.reason);
        REQUIRE(res.step == LAB_STEP_NONE, "failure with step %d", res.step);
    }
    if (order > M.max_order)
        return false;
    if (injected) {
        REQUIRE(plain || res.reason == LAB_R_INJECTED, "injected failure with reason %d", res.reason);
        return false;
    }
    REQUIRE(plain || res.reason != LAB_R_INJECTED, "reason INJECTED but nothing was injected");
    REQUIRE(plain || res.reason != LAB_R_WOULD_BLOCK || (M.kswapd_maybe && !blocking),
            "WOULD_BLOCK with no other thread about (gfp %#x)", gfp);
    REQUIRE(plain || res.reason != LAB_R_TIMEOUT || waited, "TIMEOUT for a request that may not wait");
    return false;
}

/* The owner's free (lab_room_free): the page refills the private reserve
 * up to its size, else goes on the stock; a stock above high gives a batch
 * back to the zone.  After direct reclaim found a room it could not take
 * from, the owner's next free instead drains the stock down to one batch
 * (drain_wanted): the model allows that until the next owner free.  Exact
 * with the reclaimer about too (it never touches rooms). */
static void owner_free(struct froom *fr, void *p)
{
    lab_room_stats before, after;
    lab_room_stats_get(fr->r, &before);
    lab_room_free(fr->r, p);
    lab_room_stats_get(fr->r, &after);
    size_t stock = before.stock, reserve = before.reserve;
    if (reserve < fr->reserve)
        reserve++;
    else
        stock++;
    size_t normal = stock > fr->high ? stock - (stock < fr->batch ? stock : fr->batch) : stock;
    size_t drained = stock > fr->batch ? fr->batch : stock;
    REQUIRE(after.reserve == reserve && (after.stock == normal || (fr->drain_maybe && after.stock == drained)),
            "an owner's free (room batch %zu, high %zu, reserve %zu): stock %zu -> %zu, reserve %zu -> %zu; the model "
            "expects stock %zu%s and reserve %zu", fr->batch, fr->high, fr->reserve, before.stock, after.stock,
            before.reserve, after.reserve, normal, fr->drain_maybe ? " (or the drain to one batch)" : "", reserve);
    fr->drain_maybe = false;
}

static void do_free_slot(unsigned s, unsigned method)
{
    struct block *b = &M.blk[s];
    verify_stamp(b);
    void *p = M.base + ((size_t)b->head << 12);
    unsigned mis0 = M.mis_calls;
    if (b->room >= 0 && M.rooms[b->room].alive && (method & 1))
        owner_free(&M.rooms[b->room], p);
    else
        lab_free_pages(M.a, p, b->order);
    expect_misuse(mis0, EXP_NONE, "a correct free");
    block_remove(s);
}

static bool do_room_alloc(unsigned ri, unsigned gfp, unsigned ctl)
{
    struct froom *fr = &M.rooms[ri];
    if (gfp & LAB_GFP_DIRECT_RECLAIM) {
        gfp &= ~(unsigned)LAB_GFP_NOFAIL;
        reclaim_may_run();
    }
    gfp = tame_blocking(gfp, (ctl & 0x0e) == 0x0e, false);
    bool blocking = gfp & LAB_GFP_DIRECT_RECLAIM, waited = blocking && !(gfp & LAB_GFP_NORETRY);
    bool plain = ctl & 1;
    unsigned mis0 = M.mis_calls;
    lab_result res = { (void *)1, -1, -1 };
    if (!fr->alive) {
        count_prediction(true, P_FAIL);
        if (plain)
            res.addr = lab_room_alloc(fr->r, gfp);
        else
            lab_room_alloc_result(fr->r, gfp, &res);
        expect_misuse(mis0, LAB_EROOMDEAD, "lab_room_alloc on a destroyed room");
        REQUIRE(res.addr == NULL, "a destroyed room handed out a page");
        REQUIRE(plain || res.reason == LAB_R_BADARG, "destroyed room: reason %d", res.reason);
        return false;
    }
    lab_room_stats rs;
    lab_room_stats_get(fr->r, &rs);
    lab_stats st;
    stats(&st);
    struct expect e = predict_room(fr, &rs, gfp, &st, true);
    count_prediction(true, e.outcome);
    uint64_t inj0 = lab_fault_injected(M.a);
    M.nested_injected = 0;
    if (plain)
        res.addr = lab_room_alloc(fr->r, gfp);
    else
        lab_room_alloc_result(fr->r, gfp, &res);
    bool injected = lab_fault_injected(M.a) - inj0 - M.nested_injected != 0;
    fault_observe(injected);
    expect_misuse(mis0, EXP_NONE, "lab_room_alloc");
    char what[96];
    snprintf(what, sizeof(what), "room %u's request (gfp %#x; stock %zu, ring %zu, reserve %zu, out %zu)", ri, gfp,
             rs.stock, rs.in_ring, rs.reserve, rs.out);
    check_expect(&e, res.addr != NULL, plain, res.reason, injected, waited, what);
    if (res.addr) {
        uint32_t head = check_new_block(res.addr, 0, 0, "lab_room_alloc");
        if (!plain) {
            REQUIRE(res.reason == LAB_R_NONE, "room success with reason %d", res.reason);
            REQUIRE(room_step_ok(res.step, gfp), "room step %d for gfp %#x", res.step, gfp);
        }
        if (gfp & LAB_GFP_ZERO)
            check_zeroed(head, 0);
        block_add(head, 0, 0, (int)ri);
        REQUIRE(!fr->quota || fr->out <= fr->quota, "room %u hands out %u pages, quota %zu", ri, fr->out, fr->quota);
        lab_stats after;
        stats(&after);
        if (!plain && (res.step == LAB_STEP_ZONE || res.step == LAB_STEP_EMERGENCY) && !M.async_trim)
            REQUIRE(after.free_pages >= doc_floor(gfp), "a room refill (gfp %#x) took the zone to %zu free pages, below its floor %zu",
                    gfp, after.free_pages, doc_floor(gfp));
        /* A refill (step 3 with nothing in stock or ring) moves one batch,
         * cut to the room's capacity high + batch, to its quota, and to the
         * zone's pages above max(min, the request's floor); the stock keeps
         * all but the page handed out.  Exact without the reclaimer. */
        if (!plain && res.step == LAB_STEP_ZONE && !M.kswapd_maybe && !rs.stock && !rs.in_ring) {
            size_t want = fr->batch, floor = doc_floor(gfp) > M.wmin ? doc_floor(gfp) : M.wmin;
            if (fr->quota && want > fr->quota - rs.reserve - rs.out)
                want = fr->quota - rs.reserve - rs.out;
            size_t got = st.free_pages - floor < want ? st.free_pages - floor : want;
            lab_room_stats ra;
            lab_room_stats_get(fr->r, &ra);
            REQUIRE(ra.stock == got - 1 && after.free_pages == st.free_pages - got,
                    "room %u's refill (batch %zu, high %zu, quota %zu, reserve %zu, out %zu; zone free %zu, floor %zu): "
                    "stock %zu and zone free %zu after, the model expects %zu and %zu", ri, fr->batch, fr->high,
                    fr->quota, rs.reserve, rs.out, st.free_pages, floor, ra.stock, after.free_pages, got - 1,
                    st.free_pages - got);
        }
        return true;
    }
    if (!plain) {
        REQUIRE(res.step == LAB_STEP_NONE, "room failure with step %d", res.step);
        switch (res.reason) {
        case LAB_R_WATERMARK: case LAB_R_RESERVE_EMPTY: case LAB_R_QUOTA: case LAB_R_FRAGMENTED:
            break;
        case LAB_R_WOULD_BLOCK:
            REQUIRE(M.kswapd_maybe && !blocking, "room WOULD_BLOCK with no other thread about");
            break;
        case LAB_R_INJECTED:
            REQUIRE(injected, "room reason INJECTED but nothing was injected");
            break;
        case LAB_R_TIMEOUT:
            REQUIRE(waited, "room TIMEOUT for a request that may not wait");
            break;
        default:
            FAIL("room failure reason %d", res.reason);
        }
    }
    return false;
}

/* What lab_free_pages(a, addr, order) must do, from the model. */
static int expect_free(const void *addr, unsigned order, int *slot)
{
    *slot = -1;
    if (addr == NULL)
        return EXP_NONE;
    uintptr_t off = (uintptr_t)addr - (uintptr_t)M.base;
    if (off >= M.size)
        return LAB_EFOREIGN;
    if (off & 4095)
        return LAB_EUNALIGNED;
    if (order > M.max_order)
        return LAB_EBADORDER;
    unsigned p = (unsigned)(off >> 12);
    if (!M.owner[p])
        return LAB_EDOUBLEFREE;
    struct block *b = &M.blk[M.owner[p] - 1];
    if (b->head != p) {
        return LAB_EINTERIOR;
    }
    if (b->order != order)
        return LAB_EWRONGORDER;
    *slot = M.owner[p] - 1;
    return EXP_VALID;
}

/* What lab_room_free(room ri, addr) must do. */
static int expect_room_free(unsigned ri, const void *addr, int *slot)
{
    *slot = -1;
    if (addr == NULL)
        return LAB_EFOREIGN;
    uintptr_t off = (uintptr_t)addr - (uintptr_t)M.base;
    if (off >= M.size)
        return LAB_EFOREIGN;
    if (off & 4095)
        return LAB_EUNALIGNED;
    unsigned p = (unsigned)(off >> 12);
    if (!M.owner[p])
        return LAB_EDOUBLEFREE;
    struct block *b = &M.blk[M.owner[p] - 1];
    if (b->head != p)
        return LAB_EINTERIOR;
    if (b->room != (int)ri)
        return LAB_ENOTROOMPAGE;
    if (!M.rooms[ri].alive)
        return LAB_EROOMDEAD;
    *slot = M.owner[p] - 1;
    return EXP_VALID;
}

/* An address (and an order) for a misuse, chosen by `kind`. */
static void *pick_bad_address(unsigned kind, unsigned *order)
{
    unsigned x = rd16(), y = rd8();
    struct block *b = M.nlive ? &M.blk[M.live[x % M.nlive]] : NULL;
    switch (kind % 8) {
    case 0:   /* head of a live block, another order */
        if (b) {
            unsigned d = 1 + y % 4;
            *order = (y & 0x80) && b->order >= d ? b->order - d : b->order + d;
            return M.base + ((size_t)b->head << 12);
        }
        /* fall through */
    case 1:   /* inside a live block (the guard half too) */
        if (b && b->real > 0) {
            *order = y % (M.max_order + 1);
            uint32_t p = b->start + x % (1u << b->real);
            if (p == b->head)
                p = b->head + 1 < b->start + (1u << b->real) ? b->head + 1 : b->start;
            return M.base + ((size_t)p << 12);
        }
        /* fall through */
    case 2:   /* a block freed earlier (a double free, unless re-handed out) */
        if (M.ngrave) {
            unsigned g = x % M.ngrave;
            *order = M.grave[g].order;
            return M.base + ((size_t)M.grave[g].page << 12);
        }
        /* fall through */
    case 3:   /* any page */
        *order = y % (M.max_order + 2);
        return M.base + ((size_t)(x % M.npages) << 12);
    case 4:   /* unaligned */
        *order = y % (M.max_order + 1);
        return M.base + ((size_t)(x % M.npages) << 12) + 1 + (rd16() % 4095);
    case 5:   /* foreign */
        *order = y % (M.max_order + 1);
        switch (x % 6) {
        case 0: return foreign_buf + 4096;
        case 1: return M.base - 4096 * (1 + y % 4);
        case 2: return M.base + M.size + 4096 * (y % 4);
        case 3: return (void *)(uintptr_t)4096;
        case 4: return M.base - 1;
        default: return NULL;
        }
    case 6:   /* order above max_order */
        *order = M.max_order + 1 + y % 40;
        return b ? M.base + ((size_t)b->head << 12) : M.base;
    default:  /* a live block with its real (guard) order */
        if (b) {
            *order = b->real != b->order ? b->real : b->order + 1;
            return M.base + ((size_t)b->head << 12);
        }
        *order = 0;
        return M.base;
    }
}

static void op_misuse_free(void)
{
    unsigned kind = rd8(), order = 0;
    void *addr = pick_bad_address(kind, &order);
    int slot, want = expect_free(addr, order, &slot);
    if (want == EXP_VALID) {
        do_free_slot((unsigned)slot, 0);
        return;
    }
    if (misuse_seen_later(addr))
        return;
    unsigned mis0 = M.mis_calls;
    lab_free_pages(M.a, addr, order);
    expect_misuse(mis0, want, "lab_free_pages misuse");
}

static void op_misuse_room_free(void)
{
    if (!M.nrooms) {
        rd8(); rd8(); rd16(); rd8();
        return;
    }
    unsigned ri = rd8() % M.nrooms;
    unsigned kind = rd8(), order = 0;
    void *addr;
    /* favour pages of this room (live or destroyed) and of other rooms */
    if ((kind & 0x30) == 0x30 && M.nlive) {
        unsigned x = rd16();
        rd8();
        struct block *b = NULL;
        for (unsigned i = 0; i < M.nlive; i++) {
            struct block *c = &M.blk[M.live[(x + i) % M.nlive]];
            if (c->room >= 0) {
                b = c;
                break;
            }
        }
        addr = b ? M.base + ((size_t)b->head << 12) : M.base;
    } else {
        addr = pick_bad_address(kind, &order);
    }
    int slot, want = expect_room_free(ri, addr, &slot);
    if (want == EXP_VALID) {
        do_free_slot((unsigned)slot, 1);
        return;
    }
    /* the default mode's blind spot: the owner cannot tell a block another
     * context already gave back (still in the ring) from one it holds */
    if (want == LAB_EDOUBLEFREE && M.default_free)
        return;
    /* a page of a destroyed room is reported, and (handed out in good
     * faith) goes to the zone */
    unsigned p = (unsigned)(((uintptr_t)addr - (uintptr_t)M.base) >> 12);
    if (want == LAB_EROOMDEAD)
        verify_stamp(&M.blk[M.owner[p] - 1]);
    unsigned mis0 = M.mis_calls;
    lab_room_free(M.rooms[ri].r, addr);
    expect_misuse(mis0, want, "lab_room_free misuse");
    if (want == LAB_EROOMDEAD)
        block_remove(M.owner[p] - 1u);
}

/* lab_free_pages_bulk: up to 16 entries, valid blocks, misuse, NULL and
 * repeats mixed.  The entries are claimed in order, so the model frees them
 * one by one and expects the misuse codes of the bad ones in that order. */
static void op_bulk_free(void)
{
    unsigned n = 1 + rd8() % 16, ob = rd8();
    unsigned order = (ob & 0x80) || !M.nlive ? pick_order(ob & 0x9f)
                                             : M.blk[M.live[ob % M.nlive]].order;
    void *pages[16];
    int want[16];
    unsigned nwant = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned e = rd8(), x = rd16();
        void *addr = NULL;
        switch (e % 4) {
        case 0:
        case 1:   /* a live block, of this order if there is one */
            if (M.nlive) {
                struct block *b = &M.blk[M.live[x % M.nlive]];
                for (unsigned j = 0; j < M.nlive && (e & 0x80); j++) {
                    struct block *c = &M.blk[M.live[(x + j) % M.nlive]];
                    if (c->order == order) {
                        b = c;
                        break;
                    }
                }
                addr = M.base + ((size_t)b->head << 12);
            }
            break;
        case 2: {
            unsigned ignored;
            addr = pick_bad_address(e >> 2, &ignored);
            break;
        }
        default:  /* NULL, or an earlier entry again */
            addr = i && (e & 4) ? pages[x % i] : NULL;
            break;
        }
        int slot, w = expect_free(addr, order, &slot);
        if (w >= 0 && misuse_seen_later(addr)) {
            addr = NULL;
            w = expect_free(addr, order, &slot);
        }
        pages[i] = addr;
        if (w == EXP_VALID) {
            verify_stamp(&M.blk[slot]);
            block_remove((unsigned)slot);
        } else if (w >= 0) {
            want[nwant++] = w;
        }
    }
    M.mis_seq_start = M.mis_calls;
    lab_free_pages_bulk(M.a, pages, n, order);
    REQUIRE(M.mis_calls - M.mis_seq_start == nwant, "lab_free_pages_bulk of %u pages (order %u): %u misuse reports, expected %u",
            n, order, M.mis_calls - M.mis_seq_start, nwant);
    for (unsigned i = 0; i < nwant; i++)
        REQUIRE(M.mis_seq[i] == want[i], "lab_free_pages_bulk: misuse report %u is %d (%s), expected %d (%s)", i,
                M.mis_seq[i], lab_strerror(M.mis_seq[i]), want[i], lab_strerror(want[i]));
}

/* A live block of room `ri` (want_room) or of any other room, found from
 * the live list's position x on; -1 when there is none. */
static int live_room_block(unsigned x, unsigned ri, bool want_room)
{
    for (unsigned j = 0; j < M.nlive; j++) {
        unsigned s = M.live[(x + j) % M.nlive];
        if (M.blk[s].room >= 0 && ((unsigned)M.blk[s].room == ri) == want_room)
            return (int)s;
    }
    return -1;
}

/* lab_room_alloc_bulk, then lab_room_free_bulk of up to 40 entries: the
 * room's blocks (those just placed among them), repeats of earlier entries
 * (double frees), other rooms' blocks, bad addresses and NULL, mixed.  The
 * bulk free is n calls of lab_room_free (NULL skipped), whose release
 * build pushes runs: the model frees the entries one by one and expects
 * the misuse codes of the bad ones in that order. */
static void op_room_bulk(void)
{
    unsigned ri = rd8(), g = rd8(), na = rd8() % 41, nf = 1 + rd8() % 40;
    if (!M.nrooms)
        return;
    ri %= M.nrooms;
    struct froom *fr = &M.rooms[ri];
    unsigned gfp = ((g & 1) ? LAB_GFP_ATOMIC : LAB_GFP_NOWAIT) | ((g & 2) ? LAB_GFP_ZERO : 0) | LAB_GFP_NOWARN;
    lab_room_stats rs;
    lab_room_stats_get(fr->r, &rs);
    /* each refill is a decision of fault injection, which the model counts
     * one call at a time: with it on, no more than the stock holds */
    if (M.f_on && na > rs.stock)
        na = (unsigned)rs.stock;
    if (na > M.budget)
        na = M.budget;
    M.budget -= na;
    void *got[40];
    unsigned mis0 = M.mis_calls;
    size_t k = lab_room_alloc_bulk(fr->r, gfp, got, na);
    expect_misuse(mis0, !fr->alive && na ? LAB_EROOMDEAD : EXP_NONE, "lab_room_alloc_bulk");
    REQUIRE(k <= na && (fr->alive || k == 0), "lab_room_alloc_bulk of %u placed %zu (room %s)", na, k,
            fr->alive ? "alive" : "destroyed");
    for (size_t i = 0; i < k; i++) {
        uint32_t head = check_new_block(got[i], 0, 0, "lab_room_alloc_bulk");
        if (gfp & LAB_GFP_ZERO)
            check_zeroed(head, 0);
        block_add(head, 0, 0, (int)ri);
    }
    REQUIRE(!fr->quota || fr->out <= fr->quota, "room %u hands out %u pages, quota %zu", ri, fr->out, fr->quota);

    void *pages[40];
    int want[40];
    unsigned nwant = 0;
    for (unsigned i = 0; i < nf; i++) {
        unsigned e = rd8(), x = rd16(), ignored;
        void *addr = NULL;
        bool repeat = false;
        int s = -1;
        switch (e % 8) {
        case 0: case 1: case 2: case 3:
            s = live_room_block(x, ri, true);
            break;
        case 4:
            repeat = i > 0;
            addr = repeat ? pages[x % i] : NULL;
            break;
        case 5:
            s = live_room_block(x, ri, false);
            break;
        case 6:
            addr = pick_bad_address(e >> 3, &ignored);
            break;
        default:
            break;
        }
        if (s >= 0)
            addr = M.base + ((size_t)M.blk[s].head << 12);
        int slot, w = addr ? expect_room_free(ri, addr, &slot) : EXP_NONE;
        /* the default mode's blind spot (op_misuse_room_free): a page freed
         * before this call may wait in a ring; one freed earlier in it may not */
        if (w == LAB_EDOUBLEFREE && M.default_free && !repeat) {
            addr = NULL;
            w = EXP_NONE;
        }
        pages[i] = addr;
        if (w == EXP_VALID || w == LAB_EROOMDEAD) {   /* either way the page leaves the caller */
            unsigned b = M.owner[((uintptr_t)addr - (uintptr_t)M.base) >> 12] - 1u;
            verify_stamp(&M.blk[b]);
            block_remove(b);
        }
        if (w >= 0)
            want[nwant++] = w;
    }
    M.mis_seq_start = M.mis_calls;
    lab_room_free_bulk(fr->r, pages, nf);
    REQUIRE(M.mis_calls - M.mis_seq_start == nwant, "lab_room_free_bulk of %u pages: %u misuse reports, expected %u", nf,
            M.mis_calls - M.mis_seq_start, nwant);
    for (unsigned i = 0; i < nwant; i++)
        REQUIRE(M.mis_seq[i] == want[i], "lab_room_free_bulk: misuse report %u is %d (%s), expected %d (%s)", i,
                M.mis_seq[i], lab_strerror(M.mis_seq[i]), want[i], lab_strerror(want[i]));
}

static size_t pick_size(unsigned sel, unsigned v, size_t small_mod)
{
    static const size_t huge[] = { SIZE_MAX, SIZE_MAX / 2, (size_t)1 << 62, ((size_t)1 << 62) + 1,
                                   SIZE_MAX / 4 + 1, (size_t)1 << 40, (size_t)1 << 31, (size_t)1 << 24 };
    switch (sel & 3) {
    case 0: return v % small_mod;
    case 1: return v % 8;
    case 2: return v;
    default: return huge[v % 8];
    }
}

static void op_room_create(void)
{
    unsigned r8 = rd8(), b8 = rd8(), h8 = rd8(), q8 = rd8(), sel = rd8();
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.reserve = pick_size(sel, r8, 16);
    rc.batch = pick_size(sel >> 2, b8, 64);
    rc.high = pick_size(sel >> 4, h8, 256);
    rc.quota = (sel & 0x40) ? pick_size(sel >> 6, q8, 64) : 0;
    rc.name = (sel & 0x80) ? "fuzz-room-with-a-rather-long-name-that-is-truncated" : NULL;
    /* about half the rooms take back every remote free at once; the others
     * keep recent ones in their lanes while the zone has plenty (no byte of
     * its own, so the corpus keeps its meaning) */
    rc.flags = ((r8 ^ b8 ^ h8) & 0x80) ? LAB_ROOM_TAKE_ALL : 0;
    if (M.nrooms >= MAX_FROOMS)
        return;

    lab_stats st;
    stats(&st);
    int want = -1;   /* -1: either 0 or ERESERVE (or ENOMEM for huge sizes) */
    bool huge = rc.batch > (1u << 20) || rc.high > (1u << 20);
    if (rc.batch == 0)
        want = LAB_EBATCH;
    else if (rc.quota && rc.quota < rc.reserve)
        want = LAB_EQUOTA;
    else if (rc.reserve > M.npages)
        want = LAB_ERESERVE;
    else if (!huge && (rc.reserve == 0 || (!M.async_trim && st.free_pages >= M.wmin + rc.reserve)))
        want = 0;   /* a reserve of 0 takes no page, whatever the zone holds */
    else if (!huge && st.free_pages + st.deferred_pages + st.void_pages < M.wmin + rc.reserve)
        want = LAB_ERESERVE;

    lab_room *r = (lab_room *)1;
    unsigned mis0 = M.mis_calls;
    int err = lab_room_create(M.a, &rc, &r);
    expect_misuse(mis0, EXP_NONE, "lab_room_create");
    if (want >= 0)
        REQUIRE(err == want, "lab_room_create(reserve %zu batch %zu high %zu quota %zu) = %d (%s), expected %d (%s)"
                " [free %zu min %zu]", rc.reserve, rc.batch, rc.high, rc.quota, err, lab_strerror(err), want,
                lab_strerror(want), st.free_pages, M.wmin);
    else
        REQUIRE(err == 0 || err == LAB_ERESERVE || (huge && err == LAB_ENOMEM),
                "lab_room_create(reserve %zu batch %zu high %zu quota %zu) = %d (%s)", rc.reserve, rc.batch,
                rc.high, rc.quota, err, lab_strerror(err));
    if (err) {
        REQUIRE(r == NULL, "a failed lab_room_create left *out set");
        return;
    }
    REQUIRE(r != NULL, "lab_room_create returned 0 and no room");
    struct froom *fr = &M.rooms[M.nrooms++];
    fr->r = r;
    fr->alive = true;
    fr->quota = rc.quota;
    fr->reserve = rc.reserve;
    size_t high = rc.high ? rc.high : 4 * rc.batch;   /* lab_room_config: 0 = 4 * batch, at least batch */
    fr->batch = rc.batch;
    fr->high = high < rc.batch ? rc.batch : high;
    fr->stock_max = fr->high + fr->batch;
    fr->out = 0;
    fr->drain_maybe = false;
    lab_room_stats rs;
    lab_room_stats_get(r, &rs);
    REQUIRE(rs.reserve == rc.reserve && rs.stock == 0 && rs.out == 0, "a new room: reserve %zu stock %zu out %zu",
            rs.reserve, rs.stock, rs.out);
}

static void op_room_destroy(void)
{
    unsigned x = rd8();
    if (!M.nrooms)
        return;
    struct froom *fr = &M.rooms[x % M.nrooms];
    unsigned mis0 = M.mis_calls;
    lab_room_destroy(fr->r);   /* a second destroy is ignored */
    expect_misuse(mis0, EXP_NONE, "lab_room_destroy");
    fr->alive = false;
}

static void op_trim(void)
{
    M.kswapd_maybe = true;
    lab_stats before;
    stats(&before);
    size_t bytes = lab_arena_trim(M.a);
    REQUIRE(bytes % 4096 == 0 && bytes <= M.size, "lab_arena_trim returned %zu", bytes);
    if (M.trim_off != LAB_TRIM_ON) {
        /* locked memory, or the caller's: nothing is decommitted, and it says why */
        lab_stats st;
        stats(&st);
        /* (the idle trimmer, with trim_delay_ms, counts its own refusals) */
        REQUIRE(bytes == 0 && st.trim_refused >= before.trim_refused + 1 && st.void_pages == 0,
                "lab_arena_trim on an arena that may not trim (trim_off %d): %zu bytes, void %zu", M.trim_off, bytes,
                st.void_pages);
    }
}

static void op_fault(void)
{
    unsigned p = rd8(), t = rd8(), iv = rd8(), mo = rd8(), fl = rd8();
    int err;
    if (fl & 0x80) {
        err = lab_fault_set(M.a, NULL);
        REQUIRE(err == 0, "lab_fault_set(NULL) = %d", err);
        M.f_on = false;
        return;
    }
    lab_fault_config fc = {
        .probability = (fl & 0x40) ? 100 : p % 128,
        .interval = iv % 8,
        .times = (fl & 0x20) ? -1 : (long)(int8_t)t,
        .min_order = mo % 8,
        .ignore_blocking = fl & 1,
    };
    err = lab_fault_set(M.a, &fc);
    int want = fc.probability > 100 || fc.times < -1 ? LAB_EINVAL : 0;
    REQUIRE(err == want, "lab_fault_set(probability %u, times %ld) = %d, expected %d", fc.probability, fc.times,
            err, want);
    if (err == 0)
        fault_model_set(fc.probability, fc.interval, fc.times, fc.min_order, fc.ignore_blocking);
    /* a refused configuration leaves the injection as it was */
}

/* ---- shrinkers ----------------------------------------------------------------------
 * Deterministic: they act only on the fuzzer's own thread (inside the direct
 * reclaim of a blocking request, step 7), and say 0 when kswapd asks. */
static size_t shrinker_count(void *ctx)
{
    (void)ctx;
    if (!pthread_equal(pthread_self(), fuzz_thread))
        return 0;
    size_t n = 0;
    for (unsigned i = 0; i < M.nlive; i++)
        if (M.blk[M.live[i]].room < 0)
            n += 1u << M.blk[M.live[i]].real;
    return n;
}

static size_t shrinker_scan(void *ctx, size_t nr)
{
    if (!pthread_equal(pthread_self(), fuzz_thread))
        return 0;
    size_t freed = 0;
    for (unsigned i = 0; i < M.nlive && freed < nr;) {
        unsigned s = M.live[i];
        if (M.blk[s].room >= 0) {
            i++;
            continue;
        }
        freed += 1u << M.blk[s].real;
        do_free_slot(s, 0);
        M.shrinker_ran = true;
    }
    if (*(const int *)ctx & 1) {
        /* An allocation from inside reclaim: served as MEMALLOC, never
         * blocking, never re-entering reclaim. */
        lab_result res;
        unsigned mis0 = M.mis_calls;
        uint64_t inj0 = lab_fault_injected(M.a);
        /* the fault decision sees the flags as reclaim makes them (path.c, gfp_in_context) */
        int decision = fault_decides((LAB_GFP_KERNEL | LAB_GFP_NOWARN | LAB_GFP_MEMALLOC) & ~(unsigned)LAB_GFP_DIRECT_RECLAIM,
                                     0, true);
        lab_alloc_pages_result(M.a, LAB_GFP_KERNEL | LAB_GFP_NOWARN, 0, &res);
        uint64_t nested = lab_fault_injected(M.a) - inj0;
        M.nested_injected += nested;
        fault_observe(nested != 0);
        REQUIRE(decision != 1 || nested, "an allocation inside reclaim: the model's fault decision fails, nothing was injected");
        REQUIRE(decision != 0 || !nested, "an allocation inside reclaim: a failure was injected where the model has none");
        expect_misuse(mis0, EXP_NONE, "an allocation inside reclaim");
        M.shrinker_ran = true;
        if (res.addr) {
            uint32_t head = check_new_block(res.addr, 0, 0, "an allocation inside reclaim");
            REQUIRE(res.step == LAB_STEP_ZONE || res.step == LAB_STEP_EMERGENCY,
                    "an allocation inside reclaim was served by step %d", res.step);
            block_add(head, 0, 0, -1);
        } else {
            REQUIRE(res.reason == LAB_R_FRAGMENTED || res.reason == LAB_R_RESERVE_EMPTY ||
                        res.reason == LAB_R_WOULD_BLOCK || res.reason == LAB_R_INJECTED,
                    "an allocation inside reclaim failed with reason %d", res.reason);
        }
    }
    return freed;
}

static void op_shrinker(unsigned sel)
{
    if (sel & 8) {
        if (!M.nshrinkers)
            return;
        lab_shrinker sh = { shrinker_count, shrinker_scan, (void *)&shrinker_ctx[--M.nshrinkers] };
        lab_shrinker_unregister(M.a, &sh);
        return;
    }
    if (M.nshrinkers >= 2)
        return;
    lab_shrinker sh = { shrinker_count, shrinker_scan, (void *)&shrinker_ctx[M.nshrinkers] };
    M.kswapd_maybe = true;   /* registration starts the reclaimer */
    int err = lab_shrinker_register(M.a, &sh);
    REQUIRE(err == 0, "lab_shrinker_register = %d", err);
    M.nshrinkers++;
}

static void op_misc(void)
{
    unsigned sel = rd8();
    switch (sel % 6) {
    case 4:
    case 5:
        op_shrinker(sel);
        break;
    case 0:
        REQUIRE(lab_stats_print(M.a, devnull, (sel & 4) ? LAB_STATS_JSON : LAB_STATS_TEXT) == 0, "lab_stats_print");
        break;
    case 1: {   /* NULL arguments are refused, not misuse */
        unsigned mis0 = M.mis_calls;
        lab_result res;
        lab_alloc_pages_result(NULL, LAB_GFP_ATOMIC, 0, &res);
        REQUIRE(res.addr == NULL && res.reason == LAB_R_BADARG, "lab_alloc_pages_result(NULL)");
        REQUIRE(lab_alloc_pages(NULL, LAB_GFP_ATOMIC, 0) == NULL, "lab_alloc_pages(NULL)");
        lab_free_pages(NULL, M.base, 0);
        lab_free_pages(M.a, NULL, 0);
        lab_free_pages(M.a, NULL, 99);
        lab_free_pages_bulk(NULL, (void *const *)&M.base, 1, 0);
        lab_free_pages_bulk(M.a, NULL, 5, 0);
        lab_free_pages_bulk(M.a, (void *const *)&M.base, 0, 0);
        REQUIRE(lab_check(NULL) == LAB_EINVAL, "lab_check(NULL)");
        lab_room_config rc;
        lab_room_config_init(&rc);
        lab_room *r = (lab_room *)1;
        REQUIRE(lab_room_create(NULL, &rc, &r) == LAB_EINVAL && r == NULL, "lab_room_create(NULL arena)");
        REQUIRE(lab_room_create(M.a, NULL, &r) == LAB_EINVAL, "lab_room_create(NULL cfg)");
        REQUIRE(lab_room_create(M.a, &rc, NULL) == LAB_EINVAL, "lab_room_create(NULL out)");
        lab_room_alloc_result(NULL, LAB_GFP_ATOMIC, &res);
        REQUIRE(res.addr == NULL && res.reason == LAB_R_BADARG, "lab_room_alloc_result(NULL)");
        lab_room_free(NULL, M.base);
        lab_room_destroy(NULL);
        REQUIRE(lab_arena_trim(NULL) == 0, "lab_arena_trim(NULL)");
        REQUIRE(lab_fault_set(NULL, NULL) == LAB_EINVAL, "lab_fault_set(NULL)");
        REQUIRE(lab_stats_print(NULL, devnull, 0) == -1, "lab_stats_print(NULL)");
        lab_stats st;
        lab_stats_get(NULL, &st);
        REQUIRE(st.total_pages == 0, "lab_stats_get(NULL)");
        lab_room_stats rs;
        lab_room_stats_get(NULL, &rs);
        expect_misuse(mis0, EXP_NONE, "NULL arguments");
        break;
    }
    case 2:
        for (int e = -1; e <= LAB_ERROR_COUNT; e++)
            REQUIRE(lab_strerror(e) != NULL && lab_strerror(e)[0], "lab_strerror(%d)", e);
        for (int r = -1; r <= LAB_R_COUNT; r++)
            REQUIRE(lab_strreason(r) != NULL && lab_strreason(r)[0], "lab_strreason(%d)", r);
        break;
    case 3:
        REQUIRE(lab_page_size(M.a) == 4096 && lab_arena_size(M.a) == M.size && lab_arena_base(M.a) == M.base &&
                    lab_arena_max_order(M.a) == M.max_order, "arena accessors");
        break;
    }
}

/* ---- configuration ------------------------------------------------------------------- */
static size_t isqrt(size_t x)
{
    size_t r = 0;
    while ((r + 1) * (r + 1) <= x)
        r++;
    return r;
}

/* The watermarks the arena must end up with (lab_arena_config in labyrinth.h, and zone.c for tiny arenas). */
static void expected_wmarks(size_t pages, size_t min, size_t low, size_t high, size_t out[3])
{
    if (min == 0 && low == 0 && high == 0) {
        size_t kib = pages * 4, min_kib = isqrt(kib * 16);
        if (min_kib < 128) min_kib = 128;
        if (min_kib > 262144) min_kib = 262144;
        min = min_kib / 4;
        if (min > pages / 4)
            min = pages / 4;
    }
    if (low == 0 && high == 0) {
        size_t d = min / 4 > pages / 1000 ? min / 4 : pages / 1000;
        low = min + d;
        high = min + 2 * d;
        if (high >= pages) {
            high = pages - 1;
            if (low > high) low = high;
            if (min > low) min = low;
        }
    }
    out[0] = min;
    out[1] = low;
    out[2] = high;
}

static void config_error_test(unsigned kind, size_t pages)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = pages * 4096;
    cfg.max_order = 10;
    cfg.wait_timeout_ms = 1;
    int want;
    bool null_cfg = false, null_out = false;
    switch (kind % 11) {
    case 0: cfg.size = 0; want = LAB_ESIZE; break;
    case 1: cfg.size += 1 + rd16() % 4095; want = LAB_ESIZEALIGN; break;
    case 2: cfg.max_order = 25 + rd8(); want = LAB_EORDER; break;
    case 3: cfg.flags = 1u << (10 + rd8() % 22); want = LAB_EFLAGS; break;
    case 4: cfg.memory = (void *)(uintptr_t)(0x10000 + 1 + rd16() % 4095); want = LAB_EMEMALIGN; break;
    case 5: cfg.wmark_min = pages + rd8(); want = LAB_EWMARK; break;
    case 6: cfg.wmark_min = 2 + rd8() % 8; cfg.wmark_low = cfg.wmark_min - 1; cfg.wmark_high = cfg.wmark_min;
            want = LAB_EWMARK; break;
    case 7: cfg.wmark_low = 2; cfg.wmark_high = 1; want = LAB_EWMARK; break;
    case 8: cfg.wmark_high = pages + rd8() % 4; want = LAB_EWMARK; break;
    case 9: if (rd8() & 1) null_cfg = true; else null_out = true; want = LAB_EINVAL; break;
    default: cfg.size = (size_t)UINT32_MAX * 4096; want = LAB_ESIZE; break;
    }
    lab_arena *a = (lab_arena *)1;
    int err = lab_arena_create(null_cfg ? NULL : &cfg, null_out ? NULL : &a);
    REQUIRE(err == want, "config error kind %u: lab_arena_create = %d (%s), expected %d (%s)", kind % 11, err,
            lab_strerror(err), want, lab_strerror(want));
    REQUIRE(null_out || a == NULL, "a failed lab_arena_create left *out set");
}

static bool setup(void)
{
    unsigned mode = rd8();
    size_t pages = 1 + rd16() % MAXP;
    unsigned max_order = rd8() % 13;
    unsigned fl = rd8();
    unsigned wb = rd8(), wk = wb % 4;
    M.default_free = (wb & 4) != 0;
    unsigned w0 = rd16(), w1 = rd16(), w2 = rd16();
    /* LAB_FAIL_PAGE_ALLOC: five bytes after the header when mode bit 2 is set */
    unsigned env_fault[5] = { 0 };
    bool env = (mode & 0xE0) != 0xE0 && (mode & 4);
    for (unsigned i = 0; env && i < 5; i++)
        env_fault[i] = rd8();
    if ((mode & 0xE0) == 0xE0) {
        config_error_test(mode & 0x1f, pages);
        return false;
    }
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = pages * 4096;
    cfg.max_order = max_order;
    cfg.wait_timeout_ms = 1;
    cfg.kswapd_poll_ms = (fl & 0x80) ? 1 : 60000;
    cfg.trim_delay_ms = (fl & 0x40) ? 1 : 0;
    cfg.name = "fuzz";
    /* Strict mode (every room free claimed by CAS, what debug builds always
     * do) unless the watermark byte's bit 2 asks for the default hand-off;
     * see misuse_seen_later for what the harness then leaves out.  The
     * default mode's later detection of room double frees is tested in
     * tests/test_handoff.c. */
    if (!M.default_free)
        cfg.flags |= LAB_ARENA_STRICT_FREE;
    if (fl & 1) cfg.flags |= LAB_ARENA_POISON;
    if (fl & 2) cfg.flags |= LAB_ARENA_GUARD;
    if ((fl & 4) && pages <= 1024) cfg.flags |= LAB_ARENA_PREFAULT;
    if (fl & 8) cfg.flags |= LAB_ARENA_MADV_FREE;
    if ((fl & 16) && pages <= 1024) cfg.flags |= LAB_ARENA_PROTECT_FREE;
    switch (wk) {
    case 0:
        break;
    case 1:
        cfg.wmark_min = w0 % pages;
        break;
    case 2: {
        size_t v[3] = { w0 % pages, w1 % pages, w2 % pages }, t;
        if (v[0] > v[1]) { t = v[0]; v[0] = v[1]; v[1] = t; }
        if (v[1] > v[2]) { t = v[1]; v[1] = v[2]; v[2] = t; }
        if (v[0] > v[1]) { t = v[0]; v[0] = v[1]; v[1] = t; }
        cfg.wmark_min = v[0];
        cfg.wmark_low = v[1];
        cfg.wmark_high = v[2];
        break;
    }
    default:
        cfg.wmark_min = cfg.wmark_low = cfg.wmark_high = w0 % pages;
        break;
    }
    if (fl & 32) {
        M.memory = mmap(NULL, cfg.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        REQUIRE(M.memory != MAP_FAILED, "mmap of %zu bytes", cfg.size);
        cfg.memory = M.memory;
    }
    if (mode & 1)
        cfg.flags |= LAB_ARENA_MLOCK;
    if (mode & 2)
        cfg.flags |= LAB_ARENA_HUGEPAGES;
    /* The variable is read by lab_arena_create only: set for this call, with
     * the model configured as fault.c parses it (a refused configuration
     * leaves injection off). */
    if (env) {
        char val[128];
        long times = (long)(int8_t)env_fault[2];
        snprintf(val, sizeof(val), "probability=%u,interval=%u,times=%ld,min_order=%u,ignore_blocking=%u",
                 env_fault[0] % 128, env_fault[1] % 8, times, env_fault[3] % 8, env_fault[4] & 1);
        setenv("LAB_FAIL_PAGE_ALLOC", val, 1);
        if (env_fault[0] % 128 <= 100 && times >= -1)
            fault_model_set(env_fault[0] % 128, env_fault[1] % 8, times, env_fault[3] % 8, env_fault[4] & 1);
    }

    lab_arena *a = NULL;
    int err = lab_arena_create(&cfg, &a);
    if (err == LAB_EMLOCK) {
        /* the OS refused to lock this much (RLIMIT_MEMLOCK without
         * CAP_IPC_LOCK): counted, and the input goes on without the lock */
        REQUIRE(a == NULL, "a refused lab_arena_create left *out set");
        OS_REFUSED.mlock++;
        cfg.flags &= ~(unsigned)LAB_ARENA_MLOCK;
        err = lab_arena_create(&cfg, &a);
    }
    unsetenv("LAB_FAIL_PAGE_ALLOC");
    REQUIRE(err == 0 && a, "lab_arena_create(%zu pages, max_order %u, flags %#x, wmarks %zu/%zu/%zu) = %d (%s)",
            pages, max_order, cfg.flags, cfg.wmark_min, cfg.wmark_low, cfg.wmark_high, err, lab_strerror(err));
    if (cfg.flags & LAB_ARENA_MLOCK)
        OS_REFUSED.mlocked++;
    M.a = a;
    M.base = lab_arena_base(a);
    M.size = cfg.size;
    M.npages = (unsigned)pages;
    M.flags = cfg.flags;
    M.guard = cfg.flags & LAB_ARENA_GUARD;
    /* the reclaimer runs from the start with trim_delay_ms, and trims idle
     * memory unless the arena may not trim (trim_off, checked below) */
    M.kswapd_maybe = cfg.trim_delay_ms != 0;
    M.async_trim = M.kswapd_maybe && !(cfg.flags & LAB_ARENA_MLOCK) && !cfg.memory;
    M.waits_left = 1;
    M.budget = OP_BUDGET;
    unsigned mo = max_order;
    while (mo > 0 && ((size_t)1 << mo) > pages)
        mo--;
    M.max_order = mo;
    lab_set_misuse_handler(a, on_misuse, NULL);
    lab_set_log_hook(a, on_log, NULL);

    size_t w[3];
    expected_wmarks(pages, cfg.wmark_min, cfg.wmark_low, cfg.wmark_high, w);
    M.wmin = w[0];
    M.wlow = w[1];
    M.whigh = w[2];
    REQUIRE(lab_arena_max_order(a) == M.max_order, "max_order %u, expected %u", lab_arena_max_order(a), M.max_order);
    REQUIRE(!cfg.memory || M.base == cfg.memory, "the arena does not use the supplied memory");
    lab_stats st;
    stats(&st);
    /* with trim_delay_ms the reclaimer may already have trimmed idle memory */
    REQUIRE(st.total_pages == pages && st.free_pages + st.void_pages == pages && (M.async_trim || !st.void_pages),
            "a new arena: total %zu free %zu void %zu", st.total_pages, st.free_pages, st.void_pages);
    REQUIRE(st.wmark_min == M.wmin && st.wmark_low == M.wlow && st.wmark_high == M.whigh,
            "watermarks %zu/%zu/%zu, expected %zu/%zu/%zu (cfg %zu/%zu/%zu)", st.wmark_min, st.wmark_low,
            st.wmark_high, M.wmin, M.wlow, M.whigh, cfg.wmark_min, cfg.wmark_low, cfg.wmark_high);
    if (cfg.flags & LAB_ARENA_HUGEPAGES) {
        REQUIRE(st.huge_mode == LAB_HUGE_EXPLICIT || st.huge_mode == LAB_HUGE_TRANSPARENT ||
                    st.huge_mode == LAB_HUGE_REFUSED, "LAB_ARENA_HUGEPAGES: huge_mode %d", st.huge_mode);
        OS_REFUSED.huge[st.huge_mode]++;
    } else {
        REQUIRE(st.huge_mode == LAB_HUGE_NONE, "huge_mode %d without LAB_ARENA_HUGEPAGES", st.huge_mode);
    }
    M.trim_off = (cfg.flags & LAB_ARENA_MLOCK) ? LAB_TRIM_MLOCKED : cfg.memory ? LAB_TRIM_CALLER_MEMORY : LAB_TRIM_ON;
    REQUIRE(st.trim_off == M.trim_off, "trim_off %d, expected %d", st.trim_off, M.trim_off);
    check_all();
    return true;
}

/* Everything back, rooms gone, the high-order atomic reserve released; then
 * free + void == total. */
static void teardown(void)
{
    M.op = -1;
    M.counting = false;
    REQUIRE(lab_fault_set(M.a, NULL) == 0, "lab_fault_set(NULL)");
    M.f_on = false;
    while (M.nshrinkers)   /* else the highatomic drain below could reclaim its own blocks forever */
        op_shrinker(8);
    unsigned k = 0;
    while (M.nlive)
        do_free_slot(M.live[M.nlive - 1], k++);
    for (unsigned i = 0; i < M.nrooms; i++) {
        lab_room_destroy(M.rooms[i].r);
        M.rooms[i].alive = false;
    }
    check_all();
    lab_stats st;
    stats(&st);
    if (st.highatomic_pages) {
        /* A blocking request whose fast path fails releases the reserve. */
        for (int o = (int)M.max_order; o >= 0 && st.highatomic_pages; o--) {
            while (do_alloc(LAB_GFP_DIRECT_RECLAIM | LAB_GFP_NORETRY | LAB_GFP_NOWARN, (unsigned)o, 0)) {
                stats(&st);
                if (!st.highatomic_pages)
                    break;
            }
            stats(&st);
        }
        REQUIRE(st.highatomic_pages == 0, "the high-order atomic reserve was not released (%zu pages)",
                st.highatomic_pages);
        while (M.nlive)
            do_free_slot(M.live[M.nlive - 1], 0);
    }
    check_all();
    for (unsigned t = 0;; t++) {
        stats(&st);
        if (st.free_pages + st.void_pages == st.total_pages && st.allocated_pages == 0 && st.room_pages == 0 &&
            st.reserve_pages == 0 && st.deferred_pages == 0)
            break;
        REQUIRE(M.kswapd_maybe && t < 2000,
                "at the end: free %zu + void %zu != total %zu (allocated %zu rooms %zu reserves %zu deferred %zu)",
                st.free_pages, st.void_pages, st.total_pages, st.allocated_pages, st.room_pages, st.reserve_pages,
                st.deferred_pages);
        struct timespec ts = { 0, 20000 };
        nanosleep(&ts, NULL);
    }
    REQUIRE(lab_check(M.a) == 0, "lab_check at the end");
    lab_arena_destroy(M.a);
    M.a = NULL;
    if (M.memory) {
        munmap(M.memory, M.size);
        M.memory = NULL;
    }
}

static void reset_model(void)
{
    memset(&M, 0, sizeof(M));
    for (unsigned i = 0; i < MAXP; i++)
        M.slots[i] = (uint16_t)(MAXP - 1 - i);
    M.nslots = MAXP;
    M.op = -1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    unsetenv("LAB_FAIL_PAGE_ALLOC");
    fuzz_thread = pthread_self();
    devnull = fopen("/dev/null", "w");
    atexit(fuzz_report);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    IN.p = data;
    IN.n = size;
    IN.i = 0;
    reset_model();
    if (!setup())
        return 0;
    M.counting = true;
    while (more() && M.budget) {
        M.op = (int)(rd8() % OP_COUNT);
        M.op_index++;
        switch (M.op) {
        case OP_ALLOC:
        case OP_ALLOC2: {
            unsigned gfp = pick_gfp(), ob = rd8(), ctl = rd8();
            M.budget--;
            do_alloc(gfp, pick_order(ob), ctl);
            break;
        }
        case OP_FREE: {
            unsigned x = rd16(), method = rd8();
            if (M.nlive) {
                M.budget--;
                do_free_slot(M.live[x % M.nlive], method);
            }
            break;
        }
        case OP_ROOM_CREATE:
            op_room_create();
            break;
        case OP_ROOM_ALLOC: {
            unsigned ri = rd8(), gfp = pick_gfp(), ctl = rd8();
            if (M.nrooms) {
                M.budget--;
                do_room_alloc(ri % M.nrooms, gfp, ctl);
            }
            break;
        }
        case OP_ROOM_DESTROY:
            op_room_destroy();
            break;
        case OP_MISUSE_FREE:
            op_misuse_free();
            break;
        case OP_MISUSE_ROOM_FREE:
            op_misuse_room_free();
            break;
        case OP_TRIM:
            op_trim();
            break;
        case OP_FAULT:
            op_fault();
            break;
        case OP_BURST_ALLOC: {
            unsigned gfp = pick_gfp(), ob = rd8(), n = 1 + rd8() % 64;
            unsigned order = pick_order(ob);
            for (unsigned i = 0; i < n && M.budget; i++) {
                M.budget--;
                if (!do_alloc(gfp, order, 0))
                    break;
            }
            break;
        }
        case OP_BURST_FREE: {
            unsigned n = 1 + rd8() % 64, method = rd8();
            for (unsigned i = 0; i < n && M.nlive && M.budget; i++) {
                M.budget--;
                do_free_slot(M.live[(method * 7 + i * 13) % M.nlive], method + i);
            }
            break;
        }
        case OP_MISC:
            op_misc();
            break;
        case OP_BULK_FREE:
            op_bulk_free();
            break;
        case OP_ROOM_BULK:
            op_room_bulk();
            break;
        case OP_ROOM_BURST: {
            unsigned ri = rd8(), gfp = pick_gfp(), n = 1 + rd8() % 64;
            if (!M.nrooms)
                break;
            for (unsigned i = 0; i < n && M.budget; i++) {
                M.budget--;
                if (!do_room_alloc(ri % M.nrooms, gfp, 0))
                    break;
            }
            break;
        }
        case OP_FREE_ROOM_REMOTE: {
            /* lab_free_pages of room pages: the remote path into the room */
            unsigned n = 1 + rd8() % 32;
            for (unsigned i = 0; i < M.nlive && n && M.budget;) {
                struct block *b = &M.blk[M.live[i]];
                if (b->room >= 0) {
                    M.budget--;
                    n--;
                    do_free_slot(M.live[i], 0);
                } else {
                    i++;
                }
            }
            break;
        }
        }
        check_all();
    }
    teardown();
    return 0;
}
