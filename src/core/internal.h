/*
 * internal.h - the shapes every layer shares: page descriptors, the zone,
 * rooms, the arena.  Nothing here is exported (hidden visibility).
 *
 * Layers, bottom up (docs/DESIGN.md section 1); a file calls only files
 * below it:
 *   ../platform/platform.h  the machine: memory, waiting, workers, clock
 *   fault.c     fault points and failure injection
 *   os.c        the platform as the core calls it, behind the fault points
 *   buddy.c     free lists, split and merge inside the zone
 *   zone.c      the zone lock, its deferred-free list, watermarks, waking
 *               the waiters for frees
 *   report.c    names of codes, misuse and failure reports, the deferred log
 *   reserve.c   the high-order atomic reserve
 *   void.c      decommitted free memory: trim and re-commit
 *   hooks.c     debug page hooks: poison, protection, guards, checkers
 *   handoff.c   a room's other side: the return ring, the owner's bracket,
 *               reclaim taking a room's stock
 *   check.c     lab_check
 *   reclaim.c   shrinkers, the background reclaimer, waiting for frees
 *   room.c      a room's life: creation, destruction, statistics
 *   stats.c     lab_stats
 *   path.c      the allocation path, arena and room (read this one first)
 *   free.c      the way back: every free
 *   arena.c     configuration, creation, destruction
 * owner.h and fault.h hold the inline halves of handoff.c and fault.c.
 */
#ifndef LAB_INTERNAL_H
#define LAB_INTERNAL_H

/* The core is freestanding: these four headers, <limits.h>, the public
 * header without its stdio part, and the platform contract are all it
 * includes. */
#ifndef LAB_FREESTANDING
#define LAB_FREESTANDING 1
#endif
#include "labyrinth.h"
#include "../platform/platform.h"
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LAB_HIDDEN __attribute__((visibility("hidden")))
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define NOINLINE    __attribute__((noinline))
#define ALWAYS_INLINE inline __attribute__((always_inline))

#define PAGE_SHIFT 12
#define NIL        UINT32_MAX          /* the end of every frame list */
#define MAX_ROOMS  4096u
#define MAX_SHRINKERS 32u
#define HOOK_SLOTS 8u          /* a hook may change this often while one call reads it */
#define LOG_SLOTS  8u          /* deferred reports held at once; more are counted */

#ifdef LAB_DEBUG
#define LAB_DEBUG_ON 1
#else
#define LAB_DEBUG_ON 0
#endif

/* Internal assertions: compiled in debug builds only; a failure names the
 * file and line and aborts (it means the allocator itself is wrong). */
#define lab_assert(c) do { if (LAB_DEBUG_ON && unlikely(!(c))) lab_assert_fail(#c, __FILE__, __LINE__); } while (0)
#define lab_log_str(s) do { const char *s_ = (s); size_t n_ = 0; while (s_[n_]) n_++; plat_log(s_, n_); } while (0)
static inline __attribute__((noreturn, cold)) void lab_assert_fail(const char *what, const char *file, int line)
{
    char num[12];
    int n = (int)sizeof(num);
    num[--n] = '\n';
    do {
        num[--n] = (char)('0' + line % 10);
        line /= 10;
    } while (line && n > 0);
    lab_log_str("labyrinth: internal assertion failed: ");
    lab_log_str(what);
    lab_log_str(" at ");
    lab_log_str(file);
    lab_log_str(":");
    plat_log(num + n, sizeof(num) - (size_t)n);
    plat_abort();
}

/* ---- page frames ------------------------------------------------------ */

/* A frame is in exactly one state (docs/DESIGN.md section 2).  TAIL is 0 so
 * that freshly mapped (zero) descriptors are already correct for the frames
 * inside a block: only block heads are ever written, which is what lets a
 * huge lazy arena leave its descriptor array untouched until used. */
enum page_state {
    PG_TAIL = 0,   /* inside a block whose head is elsewhere */
    PG_FREE,       /* head of a free block on the zone's free list `order` */
    PG_ALLOCATED,  /* head of a block handed to a caller */
    PG_ROOM,       /* in a room's stock */
    PG_RESERVE,    /* in a room's private reserve or the high-order atomic reserve */
    PG_VOID,       /* free and decommitted (head of a block) */
    PG_DEFERRED,   /* freed, on a lock-free list on its way back (zone or room) */
    PG_ISOLATED,   /* taken off every list while trim or re-commit makes its system
                      call without the zone lock (counted in void_inflight) */
    PG_NR_STATES
};

/* 12 bytes a frame, plus 2 in zone.room_of; Linux spends 64.  state and order are atomics because a
 * free from any context reads them before it owns the block (to tell a double
 * free from a wrong order), and claims the block with a CAS on state. */
struct page {
    uint32_t next;            /* free list, room reserve, deferred list */
    /* A free list's back link.  Off the doubly linked lists it is NIL
     * (list_del leaves it so), but for two marks that need no list: a
     * guarded block's head (LAB_ARENA_GUARD) holds GUARD_TAG | the order
     * the caller asked, and an ISOLATED block the OS refused to trim holds
     * VOID_REFUSED until the lock is taken again (void.c). */
    uint32_t prev;
    union {
        struct {
            /* state | order << 8, one atomic word so that a check of both
             * is one compare, and a claim (a CAS on the state) also proves
             * the order */
            _Atomic uint16_t so;
            /* a room block's head: its room's id, as zone.room_of has it.
             * The owner's free reads this copy, on the line it reads
             * anyway; a freer in another context reads room_of, away from
             * the lines owners write. */
            _Atomic uint16_t room;
        };
        /* Both halves at once: the owner's free and pop check state,
         * order and room with one compare (against page_tag).  An aligned
         * 32-bit load reads them in one access on every machine the core
         * builds for, and a load that meets a write to either half sees
         * one value or the other, so the compare fails exactly when the
         * two would.  The owner's allocation and free store the whole word
         * (pg_set_tag, tag_with_state), not `so` alone: a 32-bit load cannot
         * take its value from a pending 16-bit store, and waits for it to
         * reach the cache (an owner pair on Zen 4, the allocation's store:
         * 6.5 -> 3.8 ns; on Intel, the free's, once the pop read the tag:
         * 6.4 -> 4.4 ns). */
        _Atomic uint32_t tag;
    };
};
_Static_assert(sizeof(struct page) == 12, "page descriptors must stay 12 bytes");
_Static_assert(sizeof(_Atomic uint16_t) == 2 && offsetof(struct page, room) == offsetof(struct page, so) + 2 &&
               offsetof(struct page, tag) == offsetof(struct page, so), "tag covers so and room");

/* What `tag` reads for a block in `state` of `order` held by room `id`:
 * built through the same layout, so it holds on either byte order. */
static inline uint32_t page_tag(unsigned state, unsigned order, unsigned id)
{
    union { uint32_t word; struct { uint16_t so, room; } half; } t;
    t.half.so = (uint16_t)(order << 8 | state);
    t.half.room = (uint16_t)id;
    return t.word;
}

/* A tag no descriptor holds (no such state): a window's tag_pop. */
#define TAG_NONE page_tag(PG_NR_STATES, 0, 0)

/* `tag` with another state, its order and room kept: what a whole-word
 * store writes (see struct page). */
static inline uint32_t tag_with_state(uint32_t tag, unsigned state)
{
    return (tag & ~page_tag(0xffu, 0, 0)) | page_tag(state, 0, 0);
}
/* The same from a tag known to be ALLOCATED, to ROOM: one instruction. */
static inline uint32_t tag_allocated_to_room(uint32_t out)
{
    return out ^ (page_tag(PG_ALLOCATED, 0, 0) ^ page_tag(PG_ROOM, 0, 0));
}

static inline unsigned pg_so(const struct page *p) { return atomic_load_explicit(&((struct page *)p)->so, memory_order_relaxed); }
static inline unsigned pg_state(const struct page *p) { return pg_so(p) & 0xffu; }
static inline unsigned pg_order(const struct page *p) { return pg_so(p) >> 8; }
static inline bool pg_is(const struct page *p, unsigned state, unsigned order) { return pg_so(p) == (order << 8 | state); }
/* Only the block's holder writes these (the zone lock's holder, a room's
 * owner), or a freer that claimed it by pg_claim. */
/* Release stores (plain moves on x86, no fence anywhere): a room owner's
 * state changes are what lab_check's seqlock reader synchronizes with (see
 * room_enter). */
static inline void pg_set_state(struct page *p, unsigned s) { atomic_store_explicit(&p->so, (uint16_t)((pg_so(p) & 0xff00u) | s), memory_order_release); }
static inline void pg_set_order(struct page *p, unsigned o) { atomic_store_explicit(&p->so, (uint16_t)(o << 8 | (pg_so(p) & 0xffu)), memory_order_relaxed); }
static inline void pg_set(struct page *p, unsigned state, unsigned order) { atomic_store_explicit(&p->so, (uint16_t)(order << 8 | state), memory_order_release); }
/* Both halves in one store: where the room half already holds what `tag`
 * has (a block in its room's stock), or under the zone lock with room_of
 * written first (a refill: room_refill_from_zone). */
static inline void pg_set_tag(struct page *p, uint32_t tag) { atomic_store_explicit(&p->tag, tag, memory_order_release); }
/* from -> to with a CAS, whatever the order; false when the state was not
 * `from` (another context claimed it first, or it was never handed out).
 * Acquire for what the previous holder wrote; release because a claim is
 * also a state change lab_check's seqlock reader compares (room_enter). */
static inline bool pg_claim(struct page *p, unsigned from, unsigned to)
{
    uint16_t cur = atomic_load_explicit(&p->so, memory_order_relaxed);
    do {
        if ((cur & 0xffu) != from)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&p->so, &cur, (uint16_t)((cur & 0xff00u) | to),
                                                    memory_order_acq_rel, memory_order_relaxed));
    return true;
}
/* pg_claim of a block of `order` only: false also when the order differs.
 * *found: what the descriptor held (pg_so's form), to tell which. */
static inline bool pg_claim_order(struct page *p, unsigned order, unsigned from, unsigned to, unsigned *found)
{
    uint16_t cur = (uint16_t)(order << 8 | from);
    bool ok = atomic_compare_exchange_strong_explicit(&p->so, &cur, (uint16_t)(order << 8 | to), memory_order_acq_rel,
                                                      memory_order_relaxed);
    *found = cur;
    return ok;
}

/* Owner-written counters that other threads read: relaxed load + store, which
 * is a plain move (no read-modify-write), yet not a data race. */
static inline void ctr_inc(_Atomic uint64_t *c) { atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1, memory_order_relaxed); }
static inline void ctr_add_shared(_Atomic uint64_t *c, uint64_t n) { atomic_fetch_add_explicit(c, n, memory_order_relaxed); }
static inline uint64_t ctr_get(const _Atomic uint64_t *c) { return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed); }
/* An owner-only counter: a plain load and store (wraps: adding -1 subtracts). */
static inline void ctr_add_owner(_Atomic uint64_t *c, uint64_t n) { atomic_store_explicit(c, ctr_get(c) + n, memory_order_relaxed); }

/* A name into a fixed buffer, cut to fit and always terminated (the
 * buffer starts zeroed).  A name too long is cut at the start of a
 * character, not inside one: a name in UTF-8 stays UTF-8 (lab_stats_print's
 * JSON must be). */
static inline void name_copy(char *dst, size_t size, const char *src)
{
    size_t n = 0;
    while (n + 1 < size && src[n])
        n++;
    if (src[n])
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
            n--;
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
}

/* ---- the platform as the core calls it (os.c) ----------------------------
 * The primitives of platform.h that can fail, each behind its fault point;
 * the rest of platform.h is called directly. */
LAB_HIDDEN void *os_map(size_t bytes, bool prefault);
LAB_HIDDEN void *os_map_huge(size_t bytes, bool prefault, int *mode);
LAB_HIDDEN int   os_mlock(void *p, size_t bytes, char *why, size_t why_len);
LAB_HIDDEN bool  os_decommit(void *p, size_t bytes, bool lazy);   /* false: refused */
LAB_HIDDEN bool  os_recommit(void *p, size_t bytes);   /* false: touched instead */
LAB_HIDDEN void  os_touch(void *p, size_t bytes);   /* each page read and written back */
LAB_HIDDEN bool  os_protect(void *p, size_t bytes, bool accessible);
LAB_HIDDEN void  os_wait(_Atomic uint32_t *word, uint32_t expected, unsigned timeout_ms);
LAB_HIDDEN void *meta_alloc(size_t bytes);   /* zeroed, cache-line aligned */
LAB_HIDDEN void  meta_free(void *p, size_t bytes);
LAB_HIDDEN struct plat_worker *os_worker_start(void (*fn)(void *), void *arg);

/* ---- the zone lock ---------------------------------------------------- */
/* A futex word: ZLOCK_FREE, ZLOCK_HELD, or ZLOCK_SLEEPERS (held, and a
 * context that may block may be asleep on it).  Contexts that may block
 * sleep on it; atomic contexts only try, and never make a system call to
 * release it either (zone.c says who wakes the sleepers then). */
enum { ZLOCK_FREE, ZLOCK_HELD, ZLOCK_SLEEPERS };
typedef struct { _Atomic uint32_t locked; } zlock;
#define ZONE_DRAIN_BUDGET 64u   /* deferred blocks an atomic holder puts back per hold */
#define RESERVE_BATCH 256u      /* a room's reserve pages taken per hold, at its creation */
#define ZLOCK_SLEEP_MS 1u       /* a sleeper's slice: its wait past an atomic release */

/* ---- the zone --------------------------------------------------------- */
struct free_area {
    uint32_t head;
    size_t   nr_free;          /* blocks on the list */
};

enum { WMARK_MIN, WMARK_LOW, WMARK_HIGH, NR_WMARK };

/* Laid out by who writes what: the read-only part every free reads, the lock
 * word and deferred list every context writes, the lock-protected state, and
 * the waiters' words each on cache lines of their own, so no fast path pays
 * for another context's writes (false sharing). */
#define CACHELINE 64
struct zone {
    /* read-only after creation */
    struct page *pages;
    /* The owning room's id of each block head a room holds or handed out,
     * 0 for the zone's.  Apart from the descriptors because it changes only
     * when a block moves between the zone and a room: a remote free reads it
     * to find the room, and the line stays shared in every cache instead of
     * bouncing with the state byte the owner writes on each allocation. */
    _Atomic uint16_t *room_of;
    char     *base;
    uintptr_t bytes;           /* nr_pages << PAGE_SHIFT */
    uint32_t  nr_pages;
    unsigned  max_order;
    size_t    wmark[NR_WMARK];
    unsigned  trim_min_order;  /* huge-page arenas trim whole huge pages only */
    size_t    ha_cap;
    /* written by every context */
    _Alignas(CACHELINE) zlock lock;
    _Atomic(const void *) lock_owner; /* the holding thread's token, to spot
                                         a signal handler interrupting it */
    _Atomic uint32_t deferred; /* lock-free list of frees that found the lock busy */
    _Atomic size_t   deferred_pages;
    _Atomic uint32_t guard_pending; /* freed guarded blocks whose guards a context
                                       that may make system calls must lift */
    _Atomic(const void *) guard_flusher; /* the thread whose guard_flush is between its
                                            take of the list and its blocks' return */
    _Atomic bool lock_wake_owed; /* an atomic holder let go with sleepers it could not wake */
    /* protected by the lock */
    bool      held_may_block;  /* the holder took the lock with zone_lock: it may make
                                  system calls, and drains without a budget */
    unsigned  drain_budget;    /* deferred blocks this hold may still put back */
    uint32_t  deferred_taken;  /* taken off `deferred`, not yet put back (budget spent) */
    _Alignas(CACHELINE) uint32_t populated; /* frames below this are on the free lists;
                                  the rest is free and not yet listed (deferred init) */
    size_t    free_pages;      /* pages in free blocks, unpopulated included */
    bool      freed_in_hold;   /* a block came back while the lock was held */
    uint32_t  nonempty;        /* bit k: free list k is not empty */
    struct free_area area[LAB_MAX_ORDER_LIMIT + 1];
    /* the void: free blocks decommitted by trim (void.c), merged among
     * themselves, not counted in free_pages, re-committed by step 6 */
    struct free_area void_area[LAB_MAX_ORDER_LIMIT + 1];
    size_t    void_pages;
    size_t    void_inflight;   /* ISOLATED pages: being trimmed or re-committed */
    size_t    trim_hold;       /* free pages a trim leaves above its mark: room reserves
                                  being taken (lab_room_create re-commits them) */
    /* the high-order atomic reserve (reserve.c) */
    struct free_area ha_area[LAB_MAX_ORDER_LIMIT + 1];
    size_t    ha_pages;
    /* read outside the lock: reclaimer, stats, waiters (reclaim.c) */
    _Alignas(CACHELINE) _Atomic size_t free_pages_pub; /* free_pages as of the last unlock */
    _Atomic bool wake_owed;    /* a non-blocking holder could not wake waiters */
    _Atomic uint32_t free_seq;
    _Atomic uint32_t nr_waiters;
    uint64_t  ops_since_check; /* debug builds: full check every so often */
};

/* ---- rooms ------------------------------------------------------------ */
#define ROOM_ORDERS 4          /* a room serves orders 0..3, as Linux's pcp lists */

/* One stack of block heads per order, the owner's alone. */
struct room_stock {
    char    **addr;            /* the blocks, by address: what the fast paths hand
                                  out and take back, with no arithmetic */
    _Atomic size_t n;          /* relaxed load/store by the owner only */
    _Atomic size_t base;       /* the stock is [base, n): reclaim takes from the
                                  bottom by moving base (room_steal), the owner
                                  puts it back to 0 (room_compact) */
    uint32_t  high, batch;     /* drain `batch` above `high`; refill `batch`
                                  (batch at most RING_MAX and high 4x that:
                                  lab_room_create).  In 32 bits the stock
                                  stays 56 bytes with its three tags, the
                                  room's layout as measured (DESIGN.md) */
    uint32_t  tag_out;         /* page_tag of a block of this order the room handed
                                  out: the owner's free compares it */
    uint32_t  tag_in;          /* page_tag of a block in this stock: ROOM, or
                                  ALLOCATED while the stock is a window; a pop
                                  compares it, so a stale or foreign entry is
                                  refused (room_stock_refuse), never handed out */
    uint32_t  tag_pop;         /* what a pop turns into tag_out with a store:
                                  tag_in for the room's own array, TAG_NONE for
                                  a window, whose blocks are handed out already
                                  (the pop's first compare fails and its second,
                                  with tag_in, takes the block as it is) */
    uintptr_t span;            /* the arena's pages in blocks of this order, rounded
                                  up: the owner's free checks bounds and alignment
                                  with one compare (room_free_fast) */
};

/* The return ring's 64-bit slot: the frame, the order the freer gave, and a
 * lap sequence (bounded MPSC queue after Vyukov): a slot is free for
 * position p when its sequence is p, and holds p's entry when it is p + 1. */
#define RING_SEQ_SHIFT 35
#define RING_SEQ_MASK  ((1u << (64 - RING_SEQ_SHIFT)) - 1)
#define RING_TOMBSTONE NIL     /* a reserved position given up (room dead) */
#define RING_MAX       (1u << 24)

/* A lane of the return ring: a single-producer queue that one freeing
 * thread claims for good (handoff.c), so that its frees need no locked
 * instruction.  The freer's line, the line it publishes on, the owner's
 * line, then the slots (frame | order << 32). */
#define ROOM_LANES 4
#define LANE_SLOTS 8192
#define LANE_LINE  8      /* slots to a cache line: the freer publishes whole lines */
#define LANE_KEEP  4096   /* at most, entries left in a lane while the zone has plenty */
#define LANE_TAKE  64     /* the least a take-back from a lane above its keep takes */
#define TAKE_MAX   128    /* the most an allocation's own take-back (step 2) moves */
#define WINDOW_MIN 16     /* the fewest entries a window opens on (else a take-back) */
#define OUT_KEEP_CALLS 64 /* room_take_out calls on one look at the zone's count */
#define OUT_SLACK  256    /* how far below its keep room_take_out takes a lane, on one look at head */
#define LANES_GONE (1u << 31)
_Static_assert(ROOM_LANES < 31, "lanes_claimed's bits");
/* A lane entry is the block's address with its order in the low bits (a
 * block is page aligned): an order-0 entry is the address itself, so a run
 * of them can be an order-0 stock where it lies (the window: handoff.c). */
static inline char *lane_entry(char *base, uint32_t frame, unsigned order)
{
    return base + ((size_t)frame << PAGE_SHIFT) + order;
}
static inline unsigned lane_order(const char *e) { return (unsigned)((uintptr_t)e & 7); }
/* The entry's frame, or one at least nr (refused) when its address is not
 * a page of the nr from base: a torn or foreign value is never followed. */
static inline uint32_t lane_frame(const char *base, const char *e, uint32_t nr)
{
    uint64_t off = (uint64_t)((uintptr_t)e - (uintptr_t)base);
    return off >> PAGE_SHIFT < nr ? (uint32_t)(off >> PAGE_SHIFT) : nr;
}

struct room_lane {
    _Alignas(CACHELINE) _Atomic(const void *) owner;   /* the freer's thread area, or NULL */
    _Atomic uint32_t pen;      /* entries written (release): the freer's own position */
    _Atomic uint32_t pushing;  /* 1 while the freer is between its look at `dead` and
                                  publishing (destroy waits it out) */
    uint32_t  limit;           /* pen at which the lane is full, by the freer's last
                                  look at tail (tail + LANE_SLOTS; 0 before the first) */
    _Alignas(CACHELINE) _Atomic uint32_t head;   /* entries published, whole lines (release) */
    _Alignas(CACHELINE) _Atomic uint32_t tail;   /* entries taken back (release) */
    _Atomic uint32_t seen;     /* head at the owner's last look (room_take_out), never
                                  behind tail (lane_tail_set); relaxed */
    /* lane_entry()s, relaxed: ordered by pen, head and tail.  Pointers, so
     * that a window reads them as the stock's char * (the same type but
     * for the qualifier, as plain loads of aligned words) */
    _Alignas(CACHELINE) _Atomic(char *) slots[LANE_SLOTS];
};

/* What the core keeps in the platform's per-thread area: the PF_MEMALLOC
 * flag first (in_reclaim), the lane its last single free used (`hit`),
 * then the lanes this thread has claimed, by room.
 * A room's address is only compared here, never followed: the room may be
 * gone; its lane's owner field says whether the claim still holds.
 *
 * `hit` is the lane a single remote free used last, found without a look
 * at the room's lanes: the room's serial (unique to the room, across
 * arenas: a room at a reused address has another), then the lane.  The
 * lane is followed only once the serial matches the live room the free
 * found.  A signal handler may interrupt a fill or a read of it:
 * hit_busy keeps a handler from filling in the middle of the thread's
 * fill, and a read takes the serial before and after the lane
 * (lane.h).  A handler that leaves by siglongjmp in the middle of the
 * thread's fill leaves hit_busy set: the thread then never fills again
 * and its single frees take the whole way, slower but right. */
#define THREAD_LANES 3
struct thread_area {
    unsigned char memalloc;
    _Atomic unsigned char hit_busy;
    struct { _Atomic uint64_t serial; _Atomic(struct room_lane *) lane; } hit;
    struct { const struct lab_room *room; uint32_t lane; } lanes[THREAD_LANES];
};
_Static_assert(sizeof(struct thread_area) <= PLAT_THREAD_AREA, "the platform's per-thread area holds it");
static inline uint64_t ring_slot(uint32_t seq, unsigned order, uint32_t frame)
{
    return ((uint64_t)(seq & RING_SEQ_MASK) << RING_SEQ_SHIFT) | ((uint64_t)order << 32) | frame;
}

/* How far a slot's sequence is ahead of `want` (negative: behind), in the
 * sequence's own width. */
static inline int32_t ring_seq_diff(uint64_t slot, uint32_t want)
{
    uint32_t d = ((uint32_t)(slot >> RING_SEQ_SHIFT) - want) & RING_SEQ_MASK;
    return (int32_t)(d << (32 - (64 - RING_SEQ_SHIFT))) >> (32 - (64 - RING_SEQ_SHIFT));
}

struct lab_room {
    /* the owner's: written only by the owning context (others read some of
     * it with relaxed loads); what the fast paths need is here, first, so
     * they touch no line another context writes */
    struct room_stock stk[ROOM_ORDERS];
    struct page *pages;        /* the zone's, copied */
    _Atomic uint16_t *room_of; /* the zone's, copied */
    char     *base;            /* the zone's, copied */
    uintptr_t desc_bias;       /* pages - base / page size * 12: see room_desc */
    uint32_t  nr_pages;
    uint16_t  id;
    uint8_t   max_order;       /* orders 0..max_order are served */
    bool      page_hooks;      /* the arena's, copied */
    bool      strict;          /* frees claim the page with a CAS (debug, LAB_ARENA_STRICT_FREE) */
    bool      take_all;        /* LAB_ROOM_TAKE_ALL: step 2 leaves nothing in the lanes */
    lab_gfp_t gfp_or;          /* added to every request: LAB_GFP_NOWARN with LAB_ROOM_NOWARN */
    /* Odd while the owner is inside a slow-path allocation call (seq) or
     * free call (seq_free); the fast paths of release builds do not mark
     * their entry (room_steal needs only the slow paths' mark, lab_check
     * allows for one block in motion), debug builds mark every call.  A
     * slow-path call adds 2 and a fast free of order k 2^(k+1), so half of
     * each counts pages (with allocs_extra/frees_extra for what the slow
     * paths hand out beyond one page); the allocation fast path adds
     * nothing, and its pages are derived (see room_allocs). */
    _Atomic uint64_t seq, seq_free;
    /* The owner's free takes the fast path while the stock is below this:
     * high, or 0 when anything needs the slow path (page hooks or strict
     * mode in a release build, a reserve to refill, a drain asked for, a
     * destroyed room).  Debug builds run the hooks and the claim inside the
     * fast paths, so theirs are the paths release builds run.  Reclaim
     * may zero it (relaxed) when it asks for a drain. */
    _Atomic size_t free_limit;
    /* The owner's allocation takes the fast path while its stock holds
     * more than this: 0, or SIZE_MAX when page hooks are on (release
     * builds) or reclaim is taking the stock.  One compare with the count
     * the pop reads anyway is the whole gate. */
    _Atomic size_t alloc_floor;
    _Atomic uint32_t ring_tail; /* the consumer's position (relaxed: the owner's alone) */
    /* room_take_out's lane_keep, read again every OUT_KEEP_CALLS calls
     * (out_calls counts them): the zone's count it reads is on a line
     * every zone allocation writes */
    uint32_t  out_keep, out_calls;
    /* The window (handoff.c): a lane's run of order-0 entries that is the
     * order-0 stock where it lies, from win_at for win_len entries; NULL
     * when the stock is the room's own array.  The owner's; reclaim, stats
     * and lab_check read them (relaxed) to leave that run alone. */
    _Atomic(struct room_lane *) win;
    _Atomic uint32_t win_at, win_len;
    bool      window_ok;       /* release build, not strict, no page hooks, order 0 only */
    uint32_t  reserve_head;    /* the private reserve (order 0), linked through page.next */
    size_t    quota, reserve_target;
    _Atomic size_t nr_reserve;
    struct lab_arena *arena;
    _Atomic(const void *) owner; /* debug builds: the owning thread's token */
    struct {
        /* pages beyond one per call (orders above 0, bulk calls) or minus
         * one (a call that handed out or took back nothing): see room_allocs */
        _Atomic uint64_t allocs_extra, frees_extra;
        /* pages by which calls other than the fast paths changed the
         * stocks' counts (wrapping), and the slow-path free calls: what
         * room_allocs derives the fast paths' allocations from */
        _Atomic uint64_t n_moved, slow_frees;
        _Atomic uint64_t slow_allocs, frees_remote, refills, drains, reserve_allocs;   /* pages */
        _Atomic uint64_t by_step[LAB_STEP_COUNT];   /* slow-path successes; summed by stats */
        _Atomic uint64_t fail_by_reason[LAB_R_COUNT];
    } st;
    /* read by every context that frees the room's pages; written once or
     * rarely */
    _Alignas(CACHELINE) _Atomic uint64_t *ring;
    struct room_lane *lanes;   /* ROOM_LANES, or NULL (the platform has no membarrier) */
    _Atomic uint32_t lanes_claimed; /* bit k: lane k has a freer (set once per lane);
                                       LANES_GONE: destroyed, its lanes no longer counted */
    uint32_t  ring_mask;
    _Atomic bool dead;         /* written once, by destroy */
    uint64_t  serial;          /* unique to this room, never 0 (thread_area.hit) */
    _Atomic bool steal;        /* reclaim holds the owner's side (room_steal) */
    _Atomic uint32_t steal_seq; /* odd while it does: lab_check's view */
    _Atomic bool stock_moved;  /* reclaim moved a stock's base; the owner's next
                                  slow path moves the stock back down */
    _Atomic bool drain_wanted; /* reclaim asks the owner to give back surplus;
                                  written only when it is false */
    char      name[32];
    /* written by the contexts that free the room's pages */
    _Alignas(CACHELINE) _Atomic uint32_t ring_head;   /* positions reserved by producers */
    _Atomic uint64_t gone;     /* pages of the room freed to the zone (ring full, room
                                  dead, destroy) */
    _Atomic uint32_t flush_busy;  /* a dead room's ring is being emptied, or reclaim's steal takes it */
    struct lab_room *graveyard;   /* destroyed rooms whose id was reused (room.c frees them) */
    /* The order-0 stock's array (stk[0].addr), the owner's again: at a
     * fixed offset, the fast paths reach it without loading a pointer. */
    _Alignas(CACHELINE) char *addr0[];
};

static inline size_t rd(_Atomic size_t *v) { return atomic_load_explicit(v, memory_order_relaxed); }
/* Release: the stocks' counts and nr_reserve are data of the owner's seqlock
 * (room_enter below); a plain move on x86. */
static inline void wr(_Atomic size_t *v, size_t x) { atomic_store_explicit(v, x, memory_order_release); }
static inline uint32_t tail_get(struct lab_room *r) { return atomic_load_explicit(&r->ring_tail, memory_order_relaxed); }
static inline void tail_set(struct lab_room *r, uint32_t t) { atomic_store_explicit(&r->ring_tail, t, memory_order_relaxed); }

/* A stock's array; `order` a constant, order 0's is at a fixed offset. */
/* A pop's array: order 0's is addr0 or a lane's window (handoff.c). */
static inline char **stock_addr(struct lab_room *r, unsigned order)
{
    return r->stk[order].addr;
}
/* A push's: the window closes before any push (free_limit is 0 while it
 * is open), so order 0's is always addr0, at a fixed offset from the room:
 * no pointer to load. */
static inline char **stock_push_addr(struct lab_room *r, unsigned order)
{
    return order == 0 ? r->addr0 : r->stk[order].addr;
}

/* A block's descriptor from its (page-aligned) address: a shift, a
 * multiply by 3 (an address computation) and an add; desc_bias folds in
 * pages and base.  Shifting by two bits less than a page keeps the two low
 * bits of the quotient zero, so the x4 of a 12-byte descriptor is free: the
 * shift to the frame and the x12 would be two instructions. */
_Static_assert(sizeof(struct page) == 12, "desc_at multiplies by 12 as 4 x 3");
static inline struct page *desc_at(uintptr_t desc_bias, const void *addr)
{
    return (struct page *)(desc_bias + ((uintptr_t)addr >> (PAGE_SHIFT - 2)) * 3);
}
static inline struct page *room_desc(const struct lab_room *r, const void *addr)
{
    return desc_at(r->desc_bias, addr);
}

/* The blocks in a stock, as another context sees it: base and n are read
 * one after the other while they may move (a report can be off by a
 * moment's motion, never wrap). */
static inline size_t stock_len(struct room_stock *s)
{
    size_t b = rd(&s->base), n = rd(&s->n);
    return n > b ? n - b : 0;
}

/* A stock's count set by anything but the fast paths (whose changes are
 * what room_allocs derives), counted in n_moved. */
static inline void stock_n_set(struct lab_room *r, unsigned order, size_t n)
{
    struct room_stock *s = &r->stk[order];
    ctr_add_owner(&r->st.n_moved, ((uint64_t)n - rd(&s->n)) << order);
    wr(&s->n, n);
}

/* A block onto the owner's stock of its order. */
static inline void stock_push(struct lab_room *r, unsigned order, uint32_t frame)
{
    struct room_stock *s = &r->stk[order];
    size_t n = rd(&s->n);
    lab_assert(n < s->high + s->batch);
    struct page *p = &r->pages[frame];
    /* the whole word (struct page): the next pop reads it */
    pg_set_tag(p, tag_with_state(atomic_load_explicit(&p->tag, memory_order_relaxed), PG_ROOM));
    s->addr[n] = r->base + ((size_t)frame << PAGE_SHIFT);
    stock_n_set(r, order, n + 1);
}

/* Pages the room handed out: the slow paths count theirs (seq / 2 and
 * allocs_extra); the allocation fast path counts nothing (one store fewer
 * on the path a producer runs), so its pages are derived.  The stocks'
 * counts are what the fast frees pushed (seq_free / 2, less the slow
 * free calls), less what the fast allocations popped, plus n_moved.
 * Exact for the owner; another context may read it a moment off. */
static inline uint64_t room_allocs(struct lab_room *r)
{
    uint64_t pushed = atomic_load_explicit(&r->seq_free, memory_order_relaxed) / 2 - ctr_get(&r->st.slow_frees);
    uint64_t held = 0;
    for (unsigned o = 0; o <= r->max_order; o++)
        held += (uint64_t)atomic_load_explicit(&r->stk[o].n, memory_order_relaxed) << o;
    return atomic_load_explicit(&r->seq, memory_order_relaxed) / 2 + ctr_get(&r->st.allocs_extra) +
           (pushed + ctr_get(&r->st.n_moved) - held);
}
static inline uint64_t room_frees_owner(struct lab_room *r)
{
    return atomic_load_explicit(&r->seq_free, memory_order_relaxed) / 2 + ctr_get(&r->st.frees_extra);
}
static inline size_t room_out(struct lab_room *r)
{
    /* Another context's reads may catch a count and n_moved a moment
     * apart: never below 0. */
    uint64_t in = room_allocs(r), back = room_frees_owner(r) + ctr_get(&r->st.frees_remote) + ctr_get(&r->gone);
    return in > back ? (size_t)(in - back) : 0;
}

/* ---- the arena -------------------------------------------------------- */
struct fault_attr {
    _Atomic bool enabled;
    /* atomics: lab_fault_set may change them while other threads allocate */
    _Atomic unsigned probability;     /* percent, 0..100 */
    _Atomic unsigned interval;        /* fail every interval-th eligible call (1 = every) */
    _Atomic int64_t times;    /* failures left; -1 = unlimited */
    _Atomic unsigned min_order;
    _Atomic bool     ignore_blocking; /* requests that may block are exempt */
    _Atomic uint64_t calls;
    _Atomic uint64_t rng;
    _Atomic uint64_t injected;
};

struct lab_arena {
    struct zone zone;
    lab_arena_config cfg;
    bool      own_memory;
    int       huge_mode;          /* LAB_HUGE_* */
    bool      page_hooks;         /* any debug page hook is on (poison, protect, guard,
                                     ASan, valgrind): one predictable branch when off */
    bool      poison, protect_free, guard, valgrind;
    _Atomic bool protect_off;     /* an mprotect that opens memory was refused: the
                                     arena is open and protects nothing more (hooks.c) */
    bool      checker;            /* a memory checker watches (plat_checker) */
    size_t    desc_bytes;
    char      name[32];
    /* The log and misuse hooks: a function and its context are read
     * together from any context (a signal handler, too), so a change writes
     * a fresh slot and then publishes its index; a reader never sees the
     * function of one call with the context of another. */
    struct hook_pair { void (*fn)(void); void *ctx; } log_hooks[HOOK_SLOTS], misuse_hooks[HOOK_SLOTS];
    _Atomic uint32_t log_hook, misuse_hook;   /* index of the live slot; 0 = none set */
    _Atomic uint64_t log_window_start;  /* rate limit of failure reports */
    _Atomic uint32_t log_in_window;
    _Atomic uint64_t misuse_reported;   /* release default: one report per code */
    /* Reports from contexts that may not make a system call wait here for
     * one that may (report.c). */
    struct log_slot { _Atomic uint32_t state; uint32_t len; char text[496]; } log_slots[LOG_SLOTS];
    _Atomic uint32_t log_pending;
    _Atomic uint64_t log_dropped;
    /* rooms (room.c, handoff.c) */
    struct lab_room *_Atomic rooms[MAX_ROOMS];
    _Atomic uint32_t nr_rooms_made;   /* the highest id ever used */
    _Atomic uint32_t rooms_gen;       /* odd while a reused id's old counts move to the arena's (stats.c) */
    _Atomic uint32_t lanes_claimed;   /* lanes with a freer, in rooms not destroyed: they
                                         share what the zone lets lanes keep (lane_keep) */
    struct lab_room *graveyard;       /* destroyed rooms whose id was taken again */
    bool      strict_free;            /* LAB_ARENA_STRICT_FREE or a debug build */
    bool      lanes_ok;               /* plat_membarrier works: rooms get lanes (handoff.c) */
    bool      room_free_fast;         /* neither strict_free nor page_hooks, or a debug
                                         build (it claims and runs the hooks first):
                                         lab_free_pages hands room blocks to their ring
                                         at once */
    uint8_t   room_orders;            /* the orders a room block can have: 0..3, and
                                         none above the zone's max_order (a free of a
                                         greater order is EBADORDER, at once) */
    /* reclaim (reclaim.c) */
    void     *reclaim;                  /* struct reclaim_state, opaque here */
    struct fault_attr fault;
    /* counters (stats.c), updated with relaxed RMW off the fast paths; on
     * lines of their own, away from what the fast paths read */
    _Alignas(CACHELINE) struct {
        _Atomic uint64_t alloc_by_step[LAB_STEP_COUNT];
        _Atomic uint64_t fail_by_reason[LAB_R_COUNT];
        _Atomic uint64_t fail_by_class[LAB_CLASS_COUNT];
        _Atomic uint64_t frees, misuse, shrinker_runs, shrinker_pages, kswapd_wakes, kswapd_runs, waits;
        _Atomic uint64_t trimmed_pages, recommitted_pages, rooms_drained, trim_refused;
    } st;
    int       trim_off;           /* enum lab_trim_off: why trim must not decommit
                                     (last: the fields above keep their offsets) */
};

static inline struct zone *room_zone(struct lab_room *r) { return &r->arena->zone; }
static inline uint32_t frame_of(const struct zone *z, const void *addr) { return (uint32_t)(((const char *)addr - z->base) >> PAGE_SHIFT); }
static inline void *addr_of(const struct zone *z, uint32_t frame) { return z->base + ((size_t)frame << PAGE_SHIFT); }
/* An offset from the arena's base as an index in blocks of 2^order pages,
 * rotated: the offset's low bits land on top, so a block inside the arena
 * and aligned to its order has an index below blocks_in(), and anything
 * else (out of bounds, misaligned, below the base) lands far above.  One
 * compare then checks bounds and alignment (the owner's free, bulk frees). */
static inline uintptr_t block_index(uintptr_t off, unsigned order)
{
    const unsigned sh = PAGE_SHIFT + order;
    return off >> sh | off << (sizeof(off) * 8 - sh);
}
static inline uintptr_t blocks_in(uint32_t nr_pages, unsigned order)
{
    return ((uintptr_t)nr_pages + (1u << order) - 1) >> order;
}
/* Ask for the room_of entry of a page a bulk free will look up soon; the
 * _at form takes room_of and base as the caller holds them (in registers,
 * in a loop). */
static inline void room_of_prefetch_at(const _Atomic uint16_t *room_of, uintptr_t base, const void *page)
{
    __builtin_prefetch(&room_of[((uintptr_t)page - base) >> PAGE_SHIFT & 0xffffffffu]);
}
static inline void room_of_prefetch(const struct zone *z, const void *page)
{
    room_of_prefetch_at(z->room_of, (uintptr_t)z->base, page);
}
static inline uint32_t *magazine_of_frame(const struct zone *z, uint32_t frame) { return (uint32_t *)addr_of(z, frame); }

static inline unsigned pg_room(const struct zone *z, uint32_t frame)
{
    return atomic_load_explicit(&z->room_of[frame], memory_order_relaxed);
}
static inline void pg_set_room(struct zone *z, uint32_t frame, unsigned id)
{
    atomic_store_explicit(&z->pages[frame].room, (uint16_t)id, memory_order_relaxed);
    atomic_store_explicit(&z->room_of[frame], (uint16_t)id, memory_order_relaxed);
}
/* A block leaving its room outside the zone lock, after its state changed:
 * lab_check reads room_of with acquire and then the state. */
static inline void pg_leave_room(struct zone *z, uint32_t frame)
{
    atomic_store_explicit(&z->pages[frame].room, 0, memory_order_relaxed);
    atomic_store_explicit(&z->room_of[frame], 0, memory_order_release);
}

/* zone.c */
LAB_HIDDEN bool zone_trylock(struct zone *z);       /* atomic context: no wait, no syscall */
LAB_HIDDEN bool zone_lock_atomic(struct zone *z);   /* bounded: false = would block */
LAB_HIDDEN void zone_lock(struct zone *z);          /* may spin and sleep */
LAB_HIDDEN void zone_unlock(struct zone *z);        /* drains deferred frees first; wakes
                                                       sleepers only if taken by zone_lock */
LAB_HIDDEN void zone_unlock_nowake(struct zone *z); /* the same, never a system call */
LAB_HIDDEN void zone_service_owed_wakes(struct zone *z); /* blocking context: what atomic
                                                       holders left (wakes, deferred frees) */
LAB_HIDDEN bool zone_lock_held_here(const struct zone *z);
LAB_HIDDEN void zone_free_block(struct lab_arena *a, uint32_t frame, unsigned order);
/* How far below min a request may take (path.c reads it from the GFP
 * mask): not at all, HIGH's half, an atomic HIGH's further quarter, or
 * everything (MEMALLOC). */
enum zone_floor_kind { FLOOR_MIN, FLOOR_HIGH, FLOOR_ATOMIC, FLOOR_ALL };
LAB_HIDDEN size_t zone_floor(const struct zone *z, unsigned kind);
LAB_HIDDEN bool zone_watermark_ok(const struct zone *z, unsigned order, size_t floor);
LAB_HIDDEN void zone_init_watermarks(struct zone *z, const lab_arena_config *cfg);

/* buddy.c (zone lock held) */
LAB_HIDDEN uint32_t buddy_take(struct zone *z, unsigned order);
LAB_HIDDEN uint32_t buddy_take_run(struct zone *z, unsigned order, uint32_t n, uint32_t *got);
LAB_HIDDEN void     buddy_put(struct zone *z, uint32_t frame, unsigned order);
LAB_HIDDEN void     buddy_remove_free(struct zone *z, uint32_t frame, unsigned order);
LAB_HIDDEN void     buddy_split_free(struct zone *z, uint32_t frame, unsigned order);
LAB_HIDDEN void     buddy_unpopulated_blocks(const struct zone *z, size_t *blocks);
LAB_HIDDEN void     buddy_populate_all(struct zone *z);
LAB_HIDDEN void     void_put(struct zone *z, uint32_t frame, unsigned order);
LAB_HIDDEN uint32_t void_take(struct zone *z, unsigned min_order, unsigned *order);
LAB_HIDDEN void     list_push(struct zone *z, struct free_area *fa, uint32_t frame);
LAB_HIDDEN void     list_unlink(struct zone *z, struct free_area *fa, uint32_t frame);

/* void.c */
LAB_HIDDEN size_t void_recommit(struct lab_arena *a, size_t want_pages, unsigned min_order);
LAB_HIDDEN size_t trim_above(struct lab_arena *a, size_t keep_pages, bool split);

/* reserve.c (zone lock held) */
LAB_HIDDEN uint32_t highatomic_take(struct zone *z, unsigned order);
LAB_HIDDEN void     highatomic_top_up(struct zone *z, unsigned order);
LAB_HIDDEN size_t   highatomic_release(struct zone *z);

/* room.c, handoff.c, free.c */
LAB_HIDDEN bool   room_ring_push(struct lab_arena *a, struct lab_room *r, const uint32_t *frames, uint32_t n,
                                 unsigned order);
LAB_HIDDEN void   room_free_remote(struct lab_arena *a, struct lab_room *r, const uint32_t *frames, uint32_t n,
                                   unsigned order);
LAB_HIDDEN size_t room_take_remote(struct lab_room *r, bool all);
LAB_HIDDEN size_t room_take_out(struct lab_room *r, void **out, size_t n);
LAB_HIDDEN bool   room_window_open(struct lab_room *r);
LAB_HIDDEN bool   room_window_close(struct lab_room *r);
LAB_HIDDEN void   room_stock_refuse(struct lab_room *r, unsigned order);
LAB_HIDDEN void   room_hand_off(struct lab_arena *a, struct lab_room *r, uint32_t frame, unsigned order);
LAB_HIDDEN bool   room_lane_push_n(struct lab_room *r, const uint32_t *frames, uint32_t n, unsigned order);
LAB_HIDDEN void   lanes_flush_dead(struct lab_arena *a, struct lab_room *r);
LAB_HIDDEN void   lanes_close(struct lab_room *r);
LAB_HIDDEN size_t room_lane_entries(struct lab_room *r, size_t *pages);
LAB_HIDDEN void   room_stats_retire(struct lab_arena *a, struct lab_room *r);
LAB_HIDDEN size_t room_ring_pages(struct lab_room *r);
LAB_HIDDEN void   room_drain(struct lab_room *r, unsigned order, size_t n);
LAB_HIDDEN void   room_free_slow(struct lab_room *r, void *page, unsigned order);
LAB_HIDDEN void   ring_flush_dead(struct lab_arena *a, struct lab_room *r, bool wait);
LAB_HIDDEN bool   room_enter_checked(struct lab_room *r, _Atomic uint64_t *word, const char *op);
LAB_HIDDEN NOINLINE const char *room_owner_fault(struct lab_room *r);
LAB_HIDDEN void   room_update_free_limit(struct lab_room *r);
LAB_HIDDEN void   room_compact(struct lab_room *r);
LAB_HIDDEN void   reserve_push(struct lab_room *r, uint32_t frame);
LAB_HIDDEN void   room_give_up(struct lab_arena *a, struct lab_room *r, const uint32_t *frames, uint32_t n,
                               unsigned order);
LAB_HIDDEN void   rooms_destroy_all(struct lab_arena *a);
LAB_HIDDEN size_t rooms_drain_surplus(struct lab_arena *a);
static inline struct lab_room *room_by_id(struct lab_arena *a, unsigned id)
{
    return atomic_load_explicit(&a->rooms[id], memory_order_acquire);
}

/* reclaim.c */
LAB_HIDDEN int    reclaim_init(struct lab_arena *a);
LAB_HIDDEN void   reclaim_fini(struct lab_arena *a);
LAB_HIDDEN size_t reclaim_direct(struct lab_arena *a, size_t want, size_t min_scan);
LAB_HIDDEN void   reclaim_wake(struct lab_arena *a, bool may_syscall);
LAB_HIDDEN void   reclaim_wake_order(struct lab_arena *a, unsigned order, bool may_syscall);
LAB_HIDDEN void   kswapd_start(struct lab_arena *a);
LAB_HIDDEN bool   reclaim_wait_for_frees(struct lab_arena *a, uint64_t deadline_ns, uint32_t seen);
LAB_HIDDEN void   zone_note_free_locked(struct zone *z);
LAB_HIDDEN void   zone_note_free(struct zone *z, bool freed, bool may_syscall);
LAB_HIDDEN uint32_t reclaim_free_seq(struct lab_arena *a);
/* The calling thread is reclaiming (kswapd, or a shrinker's scan): its
 * PF_MEMALLOC, kept in the byte the platform gives each thread. */
static inline bool in_reclaim(void) { return *plat_thread_self() != 0; }
LAB_HIDDEN unsigned kswapd_sleep_ms(unsigned poll_ms, unsigned quiet_polls);

/* report.c, check.c */
LAB_HIDDEN void misuse(struct lab_arena *a, int err, const void *addr, uint32_t frame, const char *what);
LAB_HIDDEN int  zone_check_locked(struct lab_arena *a, bool report, bool may_map);
LAB_HIDDEN void debug_check_every_op(struct lab_arena *a, bool may_block);
LAB_HIDDEN void report_alloc_failure(struct lab_arena *a, lab_gfp_t gfp, unsigned order, int reason);
LAB_HIDDEN void log_flush(struct lab_arena *a);     /* may write: blocking contexts only */
LAB_HIDDEN void report_protect_off(struct lab_arena *a);
static inline bool log_flush_wanted(struct lab_arena *a)
{
    return atomic_load_explicit(&a->log_pending, memory_order_relaxed) != 0;
}
/* Work left by contexts that may not make system calls: reports to write,
 * guarded blocks to unprotect. */
static inline bool arena_flush_wanted(struct lab_arena *a)
{
    return log_flush_wanted(a) || atomic_load_explicit(&a->zone.guard_pending, memory_order_relaxed) != NIL;
}
/* async-signal-safe formatting for reports */
struct fmtbuf { char buf[512]; size_t len; };
LAB_HIDDEN void fmt_str(struct fmtbuf *b, const char *s);
LAB_HIDDEN void fmt_u64(struct fmtbuf *b, uint64_t v);
LAB_HIDDEN void fmt_hex(struct fmtbuf *b, uint64_t v);

/* hooks.c: page hooks, called on every hand-out and every free when on */
#define GUARD_TAG 0x47554100u   /* | order, in a guarded head's prev: an ALLOCATED block's
                                   prev is NIL otherwise (it left its list by list_del) */
#define VOID_REFUSED 0u         /* in an ISOLATED block's prev: the OS refused the trim */
LAB_HIDDEN void debug_hooks_init(struct lab_arena *a);
LAB_HIDDEN void debug_hooks_fini(struct lab_arena *a);
LAB_HIDDEN void page_hook_alloc(struct lab_arena *a, void *addr, unsigned order);
LAB_HIDDEN void page_hook_free(struct lab_arena *a, void *addr, unsigned order);
LAB_HIDDEN void page_hook_recommit(struct lab_arena *a, void *addr, size_t bytes);
LAB_HIDDEN unsigned free_classify_tail(const struct zone *z, uint32_t frame);
LAB_HIDDEN void guard_defer(struct lab_arena *a, uint32_t head);   /* any context */
LAB_HIDDEN void guard_flush(struct lab_arena *a);                  /* may make system calls */
LAB_HIDDEN bool frame_is_guarded_head(const struct zone *z, uint32_t frame);

static inline int gfp_class(lab_gfp_t gfp)
{
    if (gfp & LAB_GFP_DIRECT_RECLAIM)
        return LAB_CLASS_KERNEL;
    if (gfp & LAB_GFP_HIGH)
        return LAB_CLASS_ATOMIC;
    if (gfp & LAB_GFP_WAKE_RECLAIM)
        return LAB_CLASS_NOWAIT;
    return LAB_CLASS_OTHER;
}

#include "fault_sites.h"

#endif
