/*
 * labyrinth.h - a page allocator for code that cannot wait.
 *
 * Labyrinth hands out blocks of 2^order contiguous pages from an arena (one
 * zone of page frames managed by a buddy allocator), with the Linux mm
 * vocabulary: orders, min/low/high watermarks, GFP flags that say what a
 * request may do to get its pages (dip into reserves, wake or run reclaim,
 * sleep), shrinkers, and per-context "rooms" that serve blocks of orders 0
 * to 3 with
 * no lock and no atomic read-modify-write.
 *
 * This header is the contract: every call is documented where it is
 * declared, and the man pages (labyrinth(7) for the model, one page per call
 * or family in section 3) say the same at more length, with examples.  How
 * the library meets the contract is in docs/DESIGN.md.
 *
 * Contexts.  A context is anything that runs allocator code: a thread, or a
 * signal handler (user space's interrupt).  Async-signal-safe, callable from
 * a handler that interrupted any allocator call on the same thread:
 *   lab_alloc_pages, lab_alloc_pages_result
 *                                        with a GFP that lacks
 *                                        LAB_GFP_DIRECT_RECLAIM (ATOMIC, NOWAIT)
 *   lab_free_pages, lab_free_pages_bulk
 *   lab_room_alloc, lab_room_alloc_result, lab_room_alloc_pages,
 *   lab_room_alloc_bulk                  in the context that owns the room,
 *                                        with a GFP that lacks DIRECT_RECLAIM
 *   lab_room_free, lab_room_free_pages, lab_room_free_bulk
 *                                        in the context that owns the room
 *   lab_room_stats_get, lab_strerror, lab_strreason, lab_strstep, lab_page_size,
 *   lab_arena_max_order, lab_arena_base, lab_arena_size, lab_fault_injected
 * Every other call may take a blocking lock, allocate with malloc or make
 * system calls, and is not: in particular lab_arena_create and _destroy,
 * lab_room_create and _destroy, lab_check, lab_stats_get and _print,
 * lab_arena_trim, lab_arena_flush, the shrinker and fault-injection set-up,
 * and allocations that may block (LAB_GFP_KERNEL).  All calls are
 * thread-safe unless their comment says otherwise (a room has one owner).
 * A handler that interrupted an allocator call must return to it: leaving
 * the handler with siglongjmp (or a C++ exception) abandons the call halfway
 * (a remote free's slot claimed but never published, a room marked busy, a
 * lock held) and is not supported; later calls may then wait for ever.
 */
#ifndef LABYRINTH_H
#define LABYRINTH_H

#include <stddef.h>
#include <stdint.h>
/* Freestanding code (a kernel, the library's own core) defines
 * LAB_FREESTANDING: everything but lab_stats_print, which needs stdio. */
#ifndef LAB_FREESTANDING
#include <stdio.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define LAB_API __attribute__((visibility("default")))
#else
#define LAB_API
#endif

#define LAB_VERSION_MAJOR 0
#define LAB_VERSION_MINOR 1
#define LAB_VERSION_PATCH 0

/* ------------------------------------------------------------------------
 * GFP flags: what a request may do to get its pages.
 *
 * As in Linux's gfp_types.h, a request is described by modifiers, and the
 * usual combinations have names.  The allocation path (docs/DESIGN.md
 * section 3) consults them at every step.  The floor a request may take the
 * zone's free pages down to is the min watermark m, reduced by HIGH to
 * m - m/2, by HIGH without DIRECT_RECLAIM by a further quarter of that, and
 * to 0 by MEMALLOC; NOMEMALLOC keeps m.  An order-k request is served from
 * the zone only if free - 2^k >= floor.
 * ---------------------------------------------------------------------- */
typedef unsigned int lab_gfp_t;

/* May use part of the emergency reserve below the min watermark (half of it;
 * an atomic request, HIGH without DIRECT_RECLAIM, a further quarter). */
#define LAB_GFP_HIGH            (1u << 0)
/* May block: run shrinkers, re-commit memory from the OS, wait for frees.
 * Never set this in a signal handler or with a lock held that frees need. */
#define LAB_GFP_DIRECT_RECLAIM  (1u << 1)
/* May wake the background reclaimer when free pages fall below `low`.
 * From a non-blocking request the wake is a flag the reclaimer polls, so it
 * costs no system call. */
#define LAB_GFP_WAKE_RECLAIM    (1u << 2)
/* Zero the pages before returning them. */
#define LAB_GFP_ZERO            (1u << 3)
/* Do not report a failure through the log hook. */
#define LAB_GFP_NOWARN          (1u << 4)
/* With DIRECT_RECLAIM: one reclaim pass, then fail without waiting. */
#define LAB_GFP_NORETRY         (1u << 5)
/* With DIRECT_RECLAIM: several reclaim passes and a bounded wait, then fail. */
#define LAB_GFP_RETRY_MAYFAIL   (1u << 6)
/* With DIRECT_RECLAIM: never return NULL; wait as long as it takes.  May use
 * the HIGH share of the emergency reserve, as Linux grants __GFP_NOFAIL.
 * NORETRY overrides it (one pass, then NULL): Linux calls the pair a bug.
 * An order above the arena's (or, from a room, the room's) max_order can
 * never be served, nor can a block larger than the arena's pages above the
 * lowest watermark the request may reach (at max_order in a small arena):
 * with NOFAIL either is misuse (LAB_EBADORDER to the misuse handler; debug
 * builds abort), and the call returns NULL with LAB_R_ORDER.  A blocking
 * request without NOFAIL fails at once with LAB_R_ORDER too, rather than
 * waiting for a block that cannot come. */
#define LAB_GFP_NOFAIL          (1u << 7)
/* May take every free page, ignoring watermarks (for the code that frees
 * memory, as PF_MEMALLOC in Linux). */
#define LAB_GFP_MEMALLOC        (1u << 8)
/* Never use any reserve; overrides MEMALLOC and HIGH. */
#define LAB_GFP_NOMEMALLOC      (1u << 9)

/* Interrupt context: never blocks, never makes a system call, may dip
 * deepest into the reserve.  Allowed to fail. */
#define LAB_GFP_ATOMIC  (LAB_GFP_HIGH | LAB_GFP_WAKE_RECLAIM)
/* Never blocks, uses no reserve.  Allowed to fail. */
#define LAB_GFP_NOWAIT  (LAB_GFP_WAKE_RECLAIM)
/* Ordinary context: may reclaim and sleep.  Waiting for the arena's lock it
 * sleeps (a futex), so a SCHED_FIFO thread never keeps the CPU from a
 * lower-priority holder.  A holder in atomic context cannot make the wake:
 * the sleeper then finds the lock free within 1 ms, or sooner when a
 * blocking holder or the background reclaimer makes the wake. */
#define LAB_GFP_KERNEL  (LAB_GFP_DIRECT_RECLAIM | LAB_GFP_WAKE_RECLAIM)

/* ------------------------------------------------------------------------
 * Error codes (returned by calls that return int, and passed to the misuse
 * handler).  0 is success; lab_strerror() names every code.
 * ---------------------------------------------------------------------- */
enum lab_error {
    LAB_OK = 0,
    /* configuration */
    LAB_EINVAL,          /* a required pointer argument is NULL */
    LAB_ESIZE,           /* arena size is 0 or too large (more than 2^32-2 pages) */
    LAB_ESIZEALIGN,      /* arena size is not a multiple of the page size */
    LAB_EORDER,          /* max_order out of range (above LAB_MAX_ORDER_LIMIT) */
    LAB_EMEMALIGN,       /* cfg.memory is not page aligned */
    LAB_EWMARK,          /* watermarks out of order: need min <= low <= high < pages */
    LAB_EFLAGS,          /* unknown arena or room flag */
    LAB_EMAP,            /* the OS refused to map the arena or its metadata */
    LAB_EMLOCK,          /* the OS refused to lock the arena (memlock limit) */
    LAB_ENOMEM,          /* no memory for the allocator's own bookkeeping */
    LAB_EBATCH,          /* room batch is 0 */
    LAB_ERESERVE,        /* room reserve cannot be taken (larger than the free pages, the void's included) */
    LAB_EQUOTA,          /* room quota smaller than its reserve, or (max_order >= 1) than the
                            reserve and a block of max_order; a NOFAIL request the quota
                            can never serve */
    LAB_EBUSY,           /* a table is full (rooms, shrinkers), or a shrinker registered from a shrinker */
    LAB_ENOTFOUND,       /* not returned by this version (the codes keep their values) */
    /* misuse: reported through the misuse handler */
    LAB_EDOUBLEFREE,     /* the block is already free */
    LAB_EWRONGORDER,     /* freed with an order other than the one allocated */
    LAB_EINTERIOR,       /* the pointer is inside a block, not at its head */
    LAB_EUNALIGNED,      /* the pointer is not page aligned */
    LAB_EFOREIGN,        /* the pointer is not in this arena */
    LAB_EBADORDER,       /* order above max_order, or a block that can never be served */
    LAB_EROOMDEAD,       /* the room was destroyed */
    LAB_ENOTOWNER,       /* room used by a context that does not own it (debug builds) */
    LAB_ENOTROOMPAGE,    /* lab_room_free of a page that this room did not hand out */
    LAB_EPOISON,         /* a free page was written (use after free), found on allocation */
    /* lab_check: which invariant of docs/DESIGN.md section 4 broke */
    LAB_ECHECK_STATE,    /* 1: a block head in no valid state or with an order above
                            max_order, a TAIL frame in no block, a room block
                            that names no room or a zone block that names one,
                            or a written descriptor past the populated range */
    LAB_ECHECK_ALIGN,    /* 2: a block not aligned to its order, past the end, or
                            with a frame other than its head that is not TAIL */
    LAB_ECHECK_BUDDY,    /* 3: two free (or two void) buddies of one order that
                            should have merged */
    LAB_ECHECK_COUNT,    /* 4: a list or a page count differs from its counter, a
                            broken or looping list, or a room's stock above
                            high + batch */
    LAB_ECHECK_WMARK,    /* 5: watermarks out of order, or a reserve above its cap */
    LAB_ERROR_COUNT
};

/* A short, specific description of an error code ("double free", ...); an
 * unknown code gets a generic text.  Never NULL; async-signal-safe.
 * lab_strerror names an enum lab_error (what a call returns or the misuse
 * handler is given); lab_strreason names an enum lab_reason (why an
 * allocation failed), as strsignal follows strerror.  The two enums are
 * separate because a failed allocation is not an error of the caller's:
 * see lab_result. */
LAB_API const char *lab_strerror(int err);

/* ------------------------------------------------------------------------
 * Failure reasons of an allocation (what the result form reports and the
 * stats count).
 * ---------------------------------------------------------------------- */
enum lab_reason {
    LAB_R_NONE = 0,        /* success */
    LAB_R_WATERMARK,       /* free pages would fall below the request's floor */
    LAB_R_FRAGMENTED,      /* enough free pages, but no free block of the order */
    LAB_R_RESERVE_EMPTY,   /* allowed into the reserves, and they are empty too */
    LAB_R_WOULD_BLOCK,     /* the zone lock was busy and the request may not wait */
    LAB_R_ORDER,           /* order above the arena's or room's max_order, or a block that
                              can never fit above the request's watermark */
    LAB_R_QUOTA,           /* the room's quota is reached */
    LAB_R_INJECTED,        /* fault injection */
    LAB_R_TIMEOUT,         /* a blocking request waited wait_timeout_ms for frees */
    LAB_R_BADARG,          /* NULL arena or room, a destroyed room, or (debug builds) a
                              room used by a context not its owner: not counted in
                              fail_by_reason (counted as misuse, LAB_EROOMDEAD or
                              LAB_ENOTOWNER; a NULL one nowhere) */
    LAB_R_COUNT
};
/* The name of a reason ("below watermark", ...); never NULL.
 * Async-signal-safe. */
LAB_API const char *lab_strreason(int reason);

/* The step of the allocation path that served a request (docs/DESIGN.md
 * section 3); the stats count the pages each step handed out. */
enum lab_step {
    LAB_STEP_NONE = 0,
    LAB_STEP_ROOM,          /* 1: the room's local stock */
    LAB_STEP_ROOM_REMOTE,   /* 2: remote frees taken back into the room */
    LAB_STEP_ZONE,          /* 3: the zone above the min watermark */
    LAB_STEP_ROOM_RESERVE,  /* 4: the room's private reserve */
    LAB_STEP_EMERGENCY,     /* 4: the zone below min (HIGH, ATOMIC, MEMALLOC) */
    LAB_STEP_HIGHATOMIC,    /* 4: blocks kept for high-order atomic requests */
    LAB_STEP_RECOMMIT,      /* 6: memory re-committed from the OS */
    LAB_STEP_RECLAIM,       /* 7: after running shrinkers */
    LAB_STEP_WAIT,          /* 8: after waiting for frees */
    LAB_STEP_COUNT
};
/* The name of a step ("room", "room_remote", "zone", ...; "none" for
 * LAB_STEP_NONE), as lab_stats_print and its JSON use it; never NULL, an
 * unknown value gets a generic text.  Async-signal-safe. */
LAB_API const char *lab_strstep(int step);

/* What the result-carrying calls (lab_alloc_pages_result,
 * lab_room_alloc_result) write: the block, or NULL and the reason, so a
 * failed atomic allocation says why without a second call. */
typedef struct lab_result {
    void    *addr;    /* the block, or NULL */
    int      reason;  /* enum lab_reason: LAB_R_NONE on success */
    int      step;    /* enum lab_step that served it, LAB_STEP_NONE on failure */
} lab_result;

/* ------------------------------------------------------------------------
 * Arena
 * ---------------------------------------------------------------------- */
#define LAB_PAGE_SIZE          4096u
#define LAB_MAX_ORDER_DEFAULT  10u
#define LAB_MAX_ORDER_LIMIT    24u

/* Arena flags. */
#define LAB_ARENA_PREFAULT   (1u << 0)  /* commit and touch every page (and all
                                           metadata) at creation, and each room's
                                           arrays (stocks, ring, lanes) at the
                                           room's: no page fault later */
#define LAB_ARENA_MLOCK      (1u << 1)  /* lock the arena in memory (implies PREFAULT);
                                           a refusal returns LAB_EMLOCK and says on
                                           stderr the limit and the size needed.
                                           Rooms' arrays are committed, not locked
                                           (mlockall locks a process whole) */
#define LAB_ARENA_HUGEPAGES  (1u << 2)  /* back with explicit huge pages (MAP_HUGETLB),
                                           else transparent ones; lab_stats.huge_mode
                                           says which.  Trim then gives back whole
                                           2 MiB pages only */
#define LAB_ARENA_MADV_FREE  (1u << 3)  /* trim with MADV_FREE instead of MADV_DONTNEED */
#define LAB_ARENA_POISON     (1u << 4)  /* fill freed pages with 0x6b and check them on
                                           allocation (always on in debug builds) */
#define LAB_ARENA_PROTECT_FREE (1u << 5) /* make freed pages PROT_NONE until handed out
                                           again: a touch of a freed page faults at the
                                           instruction.  Slow (system calls on every
                                           free and allocation); for debugging only.
                                           The one exception to "an atomic request
                                           makes no system call": with this flag,
                                           every allocation and free makes one */
#define LAB_ARENA_GUARD      (1u << 6)  /* an inaccessible guard page before and after
                                           every block of order >= 1 that has room
                                           (order + 2 <= max_order), for requests that
                                           may block: it costs a block of four times
                                           the size and two mprotect calls, so
                                           ATOMIC and NOWAIT requests get unguarded
                                           blocks, and a freed guarded block rejoins
                                           the free lists at lab_arena_flush;
                                           debugging only.  With either flag, if
                                           the OS refuses to open protected pages
                                           (a process at vm.max_map_count: each
                                           protected run is a mapping), the whole
                                           arena is opened, nothing is protected
                                           from then on, and the log says so once */
#define LAB_ARENA_STRICT_FREE (1u << 7) /* every free of a room block claims it with a
                                           compare-and-swap on its descriptor, as zone
                                           blocks always are, so every double free and
                                           every race between two frees of one block is
                                           caught.  Without it (the default, for speed)
                                           a free from another context writes nothing
                                           shared but a slot of the room's ring, and the
                                           owner finds a double free when it takes the
                                           block back, except when it had taken back and
                                           handed out the block again in between (see
                                           lab_room_create), or when it hands remote
                                           frees out unread: a bulk allocation with its
                                           stock empty, and any allocation of a room of
                                           order 0 whose stock is a run of a lane (see
                                           lab_room_alloc).  Always on in debug builds */
#define LAB_ARENA_DECOMMIT_CALLER (1u << 8) /* with cfg.memory: trim and the idle trimmer
                                           may decommit (madvise) the caller's memory.
                                           Without it they never do (see "Caller-provided
                                           memory" below) */
#define LAB_ARENA_EXACT_WMARKS (1u << 9) /* take wmark_min, wmark_low and wmark_high as
                                           given, zeros included: nothing is derived, so
                                           all three 0 means no emergency floor and no
                                           background reclaim threshold */

/* Why trim gives nothing back (lab_stats.trim_off). */
enum lab_trim_off {
    LAB_TRIM_ON = 0,            /* trim and the idle trimmer may decommit */
    LAB_TRIM_CALLER_MEMORY,     /* cfg.memory without LAB_ARENA_DECOMMIT_CALLER */
    LAB_TRIM_MLOCKED,           /* LAB_ARENA_MLOCK: locked on purpose, and the OS
                                   refuses to decommit locked memory anyway */
    LAB_TRIM_HUGE_UNALIGNED     /* huge pages over caller memory whose start is not
                                   2 MiB aligned: each 2 MiB block straddles two
                                   huge pages, which a trim would split */
};

/* What backs an arena with LAB_ARENA_HUGEPAGES (lab_stats.huge_mode). */
enum lab_huge_mode { LAB_HUGE_NONE, LAB_HUGE_EXPLICIT, LAB_HUGE_TRANSPARENT, LAB_HUGE_REFUSED };

typedef struct lab_arena lab_arena;

typedef struct lab_arena_config {
    size_t   size;        /* bytes of page frames (a multiple of the page size) */
    unsigned max_order;   /* largest block is 2^max_order pages; default 10.  An
                             arena too small for it uses the largest order that
                             fits (lab_arena_max_order tells which). */
    void    *memory;      /* caller-supplied page-aligned region of `size` bytes,
                             or NULL to map one; a supplied region is never unmapped
                             (its contract: "Caller-provided memory" below) */
    /* Watermarks, in pages (Linux's min/low/high).  Free pages below `min` are
     * the emergency floor: only HIGH, ATOMIC and MEMALLOC requests reach into
     * it.  Below `low` a request wakes the background reclaimer, which works
     * until `high`; the idle trimmer keeps `high` committed.  Unless
     * LAB_ARENA_EXACT_WMARKS is set, a zero means "derive":
     *   all three 0      derived from the size as Linux does: min_free_kbytes
     *                    = sqrt(16 * KiB) clamped to [128 KiB, 256 MiB] (and to
     *                    a quarter of the arena), low = min + d, high = min + 2d
     *                    with d = max(min / 4, pages / 1000);
     *   low and high 0   min as given, low and high derived from it as above;
     *   otherwise        all three as given (min 0: no emergency floor).
     * With LAB_ARENA_EXACT_WMARKS every value, 0 included, is taken as given. */
    size_t   wmark_min, wmark_low, wmark_high;
    unsigned wait_timeout_ms;  /* how long a blocking request waits for frees; default 1000 */
    unsigned flags;       /* LAB_ARENA_*; 0 = lazy */
    unsigned kswapd_poll_ms;   /* how often the background reclaimer looks for a wake
                             raised by a non-blocking request (and for wakes that
                             atomic contexts left to it); default 2.  It polls 16
                             times less often only while free pages stay still,
                             a whole low..high band above high */
    unsigned trim_delay_ms;   /* the background reclaimer decommits free memory above
                             `high` once it has stayed idle this long; 0 = never.
                             Caller memory: only with LAB_ARENA_DECOMMIT_CALLER */
    const char *name;     /* for stats and reports; may be NULL */
} lab_arena_config;

/* Caller-provided memory (cfg.memory): an AF_XDP UMEM, a shared mapping, memory
 * a device or another process also sees.  The contract:
 *   alignment  the start must be page (4096-byte) aligned, else LAB_EMEMALIGN;
 *              blocks are aligned to their size relative to that start.
 *   size       cfg.size bytes, a multiple of 4096; every byte is a page frame
 *              (the page descriptors live in memory the arena maps itself).
 *   writes     the allocator writes caller memory only
 *                - into pages handed out with LAB_GFP_ZERO (zeros, as asked);
 *                - at creation with LAB_ARENA_PREFAULT or LAB_ARENA_MLOCK: each
 *                  page is read and its first byte written back unchanged.
 *              It keeps no metadata in pages, free or not (a freed page holds
 *              what was last written to it), and never poisons caller memory
 *              (LAB_ARENA_POISON and debug builds poison only memory the
 *              arena mapped).
 *   decommit   never, unless LAB_ARENA_DECOMMIT_CALLER is set: lab_arena_trim
 *              returns 0 and the idle trimmer does nothing, and lab_stats
 *              says why (trim_off, trim_refused).  A decommitted page of a
 *              registered UMEM would silently stop being the page the kernel
 *              writes.
 *   other      the region is never unmapped; LAB_ARENA_HUGEPAGES madvises it
 *              MADV_HUGEPAGE, LAB_ARENA_MLOCK locks it (and leaves it locked
 *              at lab_arena_destroy, since locks do not nest and the caller
 *              may have locked it too; a refused create leaves it as
 *              it was), LAB_ARENA_PROTECT_FREE and
 *              LAB_ARENA_GUARD change its protection (debugging only).
 * An arena whose every page is meant for one purpose (a UMEM's frames) also
 * wants LAB_ARENA_EXACT_WMARKS with all watermarks 0, so atomic requests can
 * reach every frame. */

/* Fill *cfg with defaults (size 0: the caller must set it).  NULL is ignored. */
LAB_API void lab_arena_config_init(lab_arena_config *cfg);
/* Create an arena.  Returns 0 and sets *out, or a LAB_E* code (and leaves
 * *out NULL): the configuration errors above, LAB_EMAP, LAB_EMLOCK or
 * LAB_ENOMEM.  Not async-signal-safe. */
LAB_API int  lab_arena_create(const lab_arena_config *cfg, lab_arena **out);
/* Destroy an arena: stops its reclaimer, unmaps what it mapped.  Every room
 * must be destroyed first or is destroyed here; pages still handed out die
 * with it.  No other call on the arena or its rooms may run or follow.
 * NULL is ignored.  Not async-signal-safe. */
LAB_API void lab_arena_destroy(lab_arena *a);
/* The page size: 4096.  Async-signal-safe. */
LAB_API size_t lab_page_size(const lab_arena *a);
/* The largest order this arena serves.  Async-signal-safe. */
LAB_API unsigned lab_arena_max_order(const lab_arena *a);
/* The first byte of the arena's page frames, and their total size in bytes.
 * Async-signal-safe. */
LAB_API void  *lab_arena_base(const lab_arena *a);
LAB_API size_t lab_arena_size(const lab_arena *a);
/* Decommit free memory, keeping committed at most what the reserves need
 * (the min watermark's worth); returns the bytes given back.  The memory
 * goes to "the void": only blocking requests and the background reclaimer
 * re-commit it, so atomic requests never fault on it.  May block; not
 * async-signal-safe.  It takes the zone lock for at most 64 blocks at a time
 * (atomic requests that meet it busy fail with LAB_R_WOULD_BLOCK rather
 * than wait), and makes its system calls without it.  It does nothing,
 * returns 0, counts lab_stats.trim_refused and says why in
 * lab_stats.trim_off on a LAB_ARENA_MLOCK arena, over caller memory
 * without LAB_ARENA_DECOMMIT_CALLER, and over caller memory in huge pages
 * whose start is not 2 MiB aligned; it returns 0 too when the background
 * reclaimer cannot be started (the system refused the thread). */
LAB_API size_t lab_arena_trim(lab_arena *a);

/* ------------------------------------------------------------------------
 * Pages
 * ---------------------------------------------------------------------- */
/* Allocate 2^order contiguous pages aligned to 2^order pages from the
 * arena's start.  NULL on failure (a NULL arena, an order above
 * lab_arena_max_order, or no pages within what gfp allows).  With
 * LAB_GFP_ATOMIC or LAB_GFP_NOWAIT it never blocks, makes no system call
 * (with LAB_ARENA_PROTECT_FREE aside) and is async-signal-safe; with
 * LAB_GFP_KERNEL it may reclaim and sleep. */
LAB_API void *lab_alloc_pages(lab_arena *a, lab_gfp_t gfp, unsigned order);
/* The same, writing the block, or NULL and the reason for the failure, and
 * the step that served it into *res (which must not be NULL). */
LAB_API void  lab_alloc_pages_result(lab_arena *a, lab_gfp_t gfp, unsigned order, lab_result *res);
/* Free a block from any context (async-signal-safe: no wait, no system
 * call; a free that finds the arena locked leaves the block for the lock's
 * holder, which puts back at most 64 such blocks per hold in atomic
 * context, leaving the rest to the next), with the order it was
 * allocated with.  A page a room handed out goes back to that room (to the
 * zone if the room was destroyed).  NULL is ignored, as in Linux's
 * free_pages(0) (unlike lab_room_free, for which NULL is misuse).
 * Misuse (double free, wrong order, interior, unaligned or foreign pointer,
 * order above max) calls the misuse handler and changes nothing. */
LAB_API void  lab_free_pages(lab_arena *a, void *addr, unsigned order);

/* Free n blocks of one order, as n calls of lab_free_pages would, from any
 * context.  Consecutive pages of one room go back to it as one run (up to
 * 64 pages): appended to this thread's lane of the room with one
 * publication, or to the room's return ring with one reservation, instead
 * of one per page: a consumer that frees another thread's packets in
 * batches (say 32) makes the hand-off cheaper.  Async-signal-safe. */
LAB_API void  lab_free_pages_bulk(lab_arena *a, void *const *pages, size_t n, unsigned order);

/* The first byte of the page that contains addr, or NULL when addr is not
 * inside the arena.  For addresses that point into a page rather than at it:
 * a received AF_XDP descriptor's address carries the headroom offset, and
 * lab_free_pages(a, lab_page_of(a, data), 0) gives the frame back.
 * Arithmetic only: reads no page state; async-signal-safe. */
LAB_API void *lab_page_of(const lab_arena *a, const void *addr);

/* ------------------------------------------------------------------------
 * Errors and misuse
 * ---------------------------------------------------------------------- */
/* Called once per misuse with its code, the address and a message naming the
 * frame and the fault.  May be called in a signal handler: it runs in the
 * context that made the bad call, from any thread, so it must be
 * async-signal-safe and thread-safe itself. */
typedef void (*lab_misuse_fn)(void *ctx, int err, const void *addr, const char *msg);
/* Replace the misuse handler (NULL restores the default: debug builds abort
 * with the message; release builds report each error code once, on stderr,
 * written later by a context that may make system calls, see
 * lab_arena_flush).  Safe to call while other threads use the arena. */
LAB_API void lab_set_misuse_handler(lab_arena *a, lab_misuse_fn fn, void *ctx);
/* Failure reports ("page allocation failure: order:3, mode:0x..., reason:
 * ...", then the zone's free blocks per order) go to this hook, at most 10
 * per 5 seconds per arena, for failed requests without LAB_GFP_NOWARN.  The
 * hook runs in the failing request's context, a signal handler included.
 * The default (NULL restores it) writes to stderr with write(2): at once for
 * a request that may block, and for one that may not (ATOMIC, NOWAIT) it
 * keeps the report (up to 6, then counts the rest: 2 of the 8 slots are
 * kept for misuse reports) for a context that may
 * make system calls, see lab_arena_flush, so an atomic request never makes
 * one.  Safe to call while other threads use the arena. */
typedef void (*lab_log_fn)(void *ctx, const char *msg, size_t len);
LAB_API void lab_set_log_hook(lab_arena *a, lab_log_fn fn, void *ctx);

/* Do what contexts that may not make system calls left undone: write the
 * reports they deferred, and lift the guard pages of guarded blocks they
 * freed (LAB_ARENA_GUARD) so those blocks rejoin the free lists.  Blocking
 * requests, the background reclaimer, lab_stats_get, lab_check and
 * lab_arena_destroy call it too.  Not async-signal-safe. */
LAB_API void lab_arena_flush(lab_arena *a);

/* Verify the invariants of docs/DESIGN.md section 4 (numbered there as the
 * LAB_ECHECK_* codes are above).  0 when they hold, else the code of the
 * first that broke (and a line on stderr naming the frame); LAB_EINVAL for a
 * NULL arena.  Thread-safe: it takes the zone lock and skips a room whose
 * owner is inside an operation (release builds: also one whose stock is
 * off by exactly one block, what an owner's allocation or free in flight
 * leaves half moved), so it is exact when no room is in use concurrently
 * (but for that one block in release builds).  Not async-signal-safe (it waits for the zone lock).  O(pages). */
LAB_API int  lab_check(lab_arena *a);

/* ------------------------------------------------------------------------
 * Rooms: exclusive per-context stocks of blocks of orders 0..3
 *
 * A room is owned by exactly one context: the thread, or the signal handler,
 * that calls lab_room_alloc* and lab_room_free* on it.  The owner's calls
 * take no lock and make no atomic read-modify-write; they are not
 * re-entrant: a signal handler that interrupts the owner must not use the
 * same room (debug builds report LAB_ENOTOWNER; release builds do not detect
 * it, and it corrupts the room).  Give each handler its own room, like a
 * per-IRQ pool.  A process-directed signal may run its handler
 * on any thread, and several at once: then give each thread its own room
 * and have the handler look up the room of the thread it runs on (a
 * thread-local pointer), never one shared room; examples/signal_rooms.c
 * shows the pattern.  The owning context may change only with the
 * program's own synchronisation in between (the old owner is done, and the
 * new one has seen that, as when a structure passes between threads
 * through a lock), and the new owner then says so with lab_room_set_owner:
 * debug builds check every owner-only call against the owner.
 *
 * A room's reserve is taken from the zone at creation and held apart: no
 * other room, GFP flag or reclaim can reach it, so a room with reserve R
 * serves R atomic allocations even when every other page has been taken.
 *
 * Any other context gives a room's blocks back with lab_free_pages or
 * lab_free_pages_bulk (async-signal-safe): they travel through the room's
 * return ring, a bounded lock-free queue whose one reader is the owner.  A
 * freer writes only a ring slot; the owner takes returned blocks back
 * when its stock runs dry.  The first four threads that free a room's
 * blocks each get a lane of the ring of their own (8192 slots), where a
 * free, or a bulk free's run, is plain stores, no locked instruction;
 * others, and a full lane, use the shared part.  While the zone has plenty,
 * a lane keeps its freer's most recent blocks (LAB_ROOM_TAKE_ALL says
 * why).  When the ring is full, or the room is dead, blocks go to the zone
 * instead.
 *
 * Async-signal-safe: lab_room_alloc, lab_room_alloc_result,
 * lab_room_alloc_pages and lab_room_alloc_bulk with a non-blocking gfp, lab_room_free,
 * lab_room_free_pages, lab_room_free_bulk, lab_room_stats_get (from any
 * context).  Not async-signal-safe: lab_room_create,
 * lab_room_destroy.
 * ---------------------------------------------------------------------- */
typedef struct lab_room lab_room;
#define LAB_ROOM_MAX_ORDER 3u
typedef struct lab_room_config {
    size_t reserve;     /* order-0 pages guaranteed to this room, taken at creation,
                           isolated from every other room, flag and reclaim: ATOMIC
                           requests (HIGH, not NOMEMALLOC) get them when the zone
                           has nothing left for them.  0 = none */
    size_t batch;       /* order-0 pages moved per refill or drain; default 32 (an
                           order-k stock moves batch >> k blocks, at least 1).  0 is
                           refused (LAB_EBATCH); so are batch, high and ring above
                           2^24 (LAB_ENOMEM: the arrays' sizes would overflow) */
    size_t high;        /* a stock above this many pages is drained by a batch;
                           0 = 4 * batch; a value below batch is raised to batch */
    size_t quota;       /* most pages the room may hold plus hand out, the reserve
                           included; 0 = no limit.  With max_order >= 1 at least the
                           reserve plus 2^max_order (the reserve serves order 0 only).
                           A quota equal to the reserve serves other requests only
                           with pages lent from the reserve: while it is full, a
                           NOFAIL request without the right to it is misuse */
    unsigned max_order; /* the room serves orders 0..max_order (at most
                           LAB_ROOM_MAX_ORDER, and the arena's); default 0 */
    size_t ring;        /* return ring slots (rounded up to a power of two, at least
                           2 * (high + batch)); 0 = 1024.  Blocks freed by other
                           contexts beyond what it holds go to the zone.  An
                           allocation that finds its stock dry takes back at most
                           128 of the blocks waiting (and at most high); the
                           allocations after it take the rest */
    unsigned flags;     /* LAB_ROOM_*; 0 = none */
    const char *name;   /* for stats; may be NULL */
} lab_room_config;
/* Failures are expected (a receive path running near empty): the room's
 * failed requests are counted in lab_room_stats but never reported, as if
 * every request carried LAB_GFP_NOWARN. */
#define LAB_ROOM_NOWARN (1u << 0)
/* Take back every block other contexts freed as soon as the stock runs dry
 * (at most 128 an allocation).  By default, while the zone has plenty of
 * free pages, each freeing thread's lane keeps its most recent frees (a
 * take-back leaves up to 4096 blocks; all the arena's lanes share half of
 * the zone's free pages above its high watermark) and the owner takes back
 * only the older ones, and only whole cache lines of the lane: the pages
 * and lines it reads then left the freer's caches long ago, which in the
 * project's hand-off benchmark moves 1.2 to 1.8 times the pages per second
 * between two cores.  The room meanwhile holds that many more pages; below
 * the high watermark, or when the zone cannot serve it, the owner takes
 * everything back, so no allocation fails while pages wait in a lane.
 * This flag trades that throughput for the smallest footprint and a
 * take-back that sees every free at once. */
#define LAB_ROOM_TAKE_ALL (1u << 1)
/* Fill *cfg with the defaults (no reserve, batch 32, high 128, no quota,
 * order 0). */
LAB_API void  lab_room_config_init(lab_room_config *cfg);
/* Create a room: takes its reserve from the zone (above the min watermark),
 * re-committing from the void (lab_arena_trim) what the free pages lack.
 * 0, or LAB_EINVAL (NULL argument), LAB_EBATCH, LAB_EQUOTA (quota below
 * reserve, or, max_order 1 or more, below reserve + 2^max_order pages), LAB_ERESERVE (not that many free pages above min, the void's
 * included), LAB_EORDER
 * (max_order too large), LAB_EFLAGS (an unknown LAB_ROOM_* flag), LAB_EBUSY (4095 rooms alive, or destroyed with
 * blocks still out), LAB_ENOMEM.  Any thread; not async-signal-safe. */
LAB_API int   lab_room_create(lab_arena *a, const lab_room_config *cfg, lab_room **out);
/* Destroy a room: its stock, reserve and ring go back to the zone.  Call it
 * from the owner, or from any thread once the owner has stopped using the
 * room; never while the owner is inside a room call.  Blocks the room handed
 * out stay valid: give them back later with lab_free_pages (they go to the
 * zone), or with lab_room_free (reported as LAB_EROOMDEAD, and the block
 * still goes to the zone).  Every later room call is refused with
 * LAB_EROOMDEAD.  The id is reused once no block of the room is out.  NULL
 * and a second destroy are ignored.  Not async-signal-safe. */
LAB_API void  lab_room_destroy(lab_room *r);
/* Make the calling thread the room's owner, for a room handed over from
 * another thread (a worker taking a queue over): call it from the new
 * owner, after the program's own synchronisation with the old owner's
 * last room call.  A room's first user becomes its owner without it.
 * Debug builds check each owner-only call against the owner (LAB_ENOTOWNER
 * otherwise, an abort by default); release builds record the owner and
 * check nothing.  0, or LAB_EINVAL (NULL), LAB_EROOMDEAD (destroyed),
 * LAB_EBUSY (debug builds: a room call is in progress, so the old owner
 * is not done).  Not for a signal handler: a handler's room is the
 * handler's from the start. */
LAB_API int   lab_room_set_owner(lab_room *r);
/* Allocate one order-0 page, owner only.  Step 1 (a pop off the stock) costs
 * a few nanoseconds; when the stock is empty the request walks on: blocks
 * other contexts returned, a batch refill from the zone, the room's reserve
 * and the zone's emergency share (HIGH, MEMALLOC), and, for requests that
 * may block, re-commit, reclaim and waiting.  NULL on failure.  In a room
 * of order 0 (max_order 0), in a release build without
 * LAB_ARENA_STRICT_FREE, the pages other contexts returned are handed out
 * where they lie, unread, a run of up to 128 of one context's at a time:
 * a page another context freed twice is then handed out twice (see
 * LAB_ARENA_STRICT_FREE). */
LAB_API void *lab_room_alloc(lab_room *r, lab_gfp_t gfp);
/* The same, writing the page, or NULL and the reason (LAB_R_BADARG for a
 * NULL or destroyed room), and the step that served it into *res (not
 * NULL). */
LAB_API void  lab_room_alloc_result(lab_room *r, lab_gfp_t gfp, lab_result *res);
/* Allocate a block of 2^order pages, order <= the room's max_order (above
 * it: NULL, reason LAB_R_ORDER; with LAB_GFP_NOFAIL also misuse,
 * LAB_EBADORDER), owner only. */
LAB_API void *lab_room_alloc_pages(lab_room *r, lab_gfp_t gfp, unsigned order);
/* Place up to n order-0 pages in pages[] and return how many, owner only:
 * whole runs off the stock, the rest of the walk only when it runs dry.
 * Then pages other threads freed, beyond what their lanes keep, come first,
 * handed out as they come back without passing through the stock: a page
 * they freed twice is caught there only by LAB_ARENA_STRICT_FREE (and in
 * debug builds, which are strict), and is otherwise handed out twice.  It
 * stops at the first step that fails and returns what it placed (0 when
 * none, with the reason counted in lab_room_stats), as Linux's
 * alloc_pages_bulk.  As there, only the first page may block on memory:
 * LAB_GFP_NOFAIL, re-commit, direct reclaim and waiting for frees apply to
 * it alone, and the pages after it are taken from what the room, its
 * lanes, the zone (above the request's watermark; its lock may be waited
 * for) and the reserves the flags allow hold now.  Those the call placed
 * count against the room's quota and the arena's pages, and only its
 * caller can give them back: a call that runs the arena short returns at
 * once with what it placed, and the caller calls again for more. */
LAB_API size_t lab_room_alloc_bulk(lab_room *r, lab_gfp_t gfp, void **pages, size_t n);
/* Give an order-0 page back to the room, owner only.  The page must come
 * from this room (else LAB_ENOTROOMPAGE: other pages go back with
 * lab_free_pages).  Unlike lab_free_pages, NULL is misuse (LAB_EFOREIGN):
 * a room call always names a page.  Misuse is reported and changes nothing;
 * a free to a destroyed room is reported (LAB_EROOMDEAD) and its page goes
 * to the zone.  A NULL room is ignored. */
LAB_API void  lab_room_free(lab_room *r, void *page);
/* Give a block of 2^order pages back to the room, owner only. */
LAB_API void  lab_room_free_pages(lab_room *r, void *page, unsigned order);
/* Give n order-0 pages back, as n calls of lab_room_free (NULL entries are
 * skipped), owner only. */
LAB_API void  lab_room_free_bulk(lab_room *r, void *const *pages, size_t n);

/* ------------------------------------------------------------------------
 * Reclaim
 * ---------------------------------------------------------------------- */
typedef struct lab_shrinker {
    size_t (*count)(void *ctx);                   /* pages it could give back now */
    size_t (*scan)(void *ctx, size_t nr_to_free); /* gives back up to nr with
                                                     lab_free_pages; returns how many */
    void *ctx;
} lab_shrinker;
/* Register a shrinker (the struct is copied; unregister with the same
 * pointer or an equal struct).  0, LAB_EINVAL (NULL, or either callback NULL) or
 * LAB_EBUSY (32 registered, or called from a shrinker's scan() or count(),
 * where it would wait for the pass it is in).  Shrinkers run in blocking requests' direct
 * reclaim and in the background reclaimer's thread (the library's one
 * thread, named lab-reclaim, which blocks every signal but the synchronous
 * faults: SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS), with no allocator lock
 * held: scan() may free with lab_free_pages, and an allocation it makes
 * may take every page (as MEMALLOC) but never reclaims or waits.  Not
 * async-signal-safe. */
LAB_API int  lab_shrinker_register(lab_arena *a, const lab_shrinker *s);
/* Unregister; when it returns, the shrinker is not running and will not run
 * (it waits for a pass in progress, so never call it from scan() or count()).
 * Not async-signal-safe. */
LAB_API void lab_shrinker_unregister(lab_arena *a, const lab_shrinker *s);

/* ------------------------------------------------------------------------
 * Fault injection (as Linux's fail_page_alloc)
 *
 * Off by default and then free: one predictable branch per request.  Also
 * set, for every arena a program creates, by the environment variable
 *   LAB_FAIL_PAGE_ALLOC="probability=10,interval=1,times=-1,min_order=0,ignore_blocking=0"
 * so any program's failure paths can be exercised without recompiling (keys
 * left out default to probability 100, interval 1, times -1; a malformed
 * value turns nothing on and is reported on stderr; an empty or unset
 * variable turns nothing on).
 * Injected failures have reason LAB_R_INJECTED.  Room fast paths (stock and
 * remote frees) are not decision points; their refills are, while none of
 * the room's blocks is on its way back to it.
 * ---------------------------------------------------------------------- */
typedef struct lab_fault_config {
    unsigned probability;     /* percent of eligible requests that fail, 0..100 */
    unsigned interval;        /* only every interval-th eligible request may fail (0 or 1: each) */
    long     times;           /* failures left to inject; -1 = no limit */
    unsigned min_order;       /* only requests of at least this order are eligible */
    int      ignore_blocking; /* requests that may block (DIRECT_RECLAIM) are exempt */
} lab_fault_config;
/* Turn injection on with *fc (copied), or off with NULL.  0, or LAB_EINVAL
 * for a NULL arena, probability above 100 or times below -1.  May be called
 * while other threads allocate; not async-signal-safe. */
LAB_API int lab_fault_set(lab_arena *a, const lab_fault_config *fc);
/* How many failures have been injected so far.  Async-signal-safe. */
LAB_API uint64_t lab_fault_injected(const lab_arena *a);

/* ------------------------------------------------------------------------
 * Stats
 * ---------------------------------------------------------------------- */
#define LAB_STATS_TEXT 0
#define LAB_STATS_JSON 1

/* GFP classes the stats count failures by. */
/* A request's class in the statistics, by its first flag in this order:
 * DIRECT_RECLAIM is KERNEL, then HIGH is ATOMIC, then WAKE_RECLAIM is
 * NOWAIT; a request with none of the three is OTHER. */
enum lab_gfp_class { LAB_CLASS_ATOMIC, LAB_CLASS_NOWAIT, LAB_CLASS_KERNEL, LAB_CLASS_OTHER, LAB_CLASS_COUNT };

typedef struct lab_stats {
    size_t total_pages, free_pages;
    size_t free_blocks[32];   /* free blocks per order, like /proc/buddyinfo */
    unsigned max_order;
    size_t wmark_min, wmark_low, wmark_high;
    size_t allocated_pages;   /* handed out by the zone (including pages rooms handed out) */
    size_t room_pages;        /* held in rooms' stocks */
    size_t reserve_pages;     /* held in room reserves and the high-order atomic reserve */
    size_t highatomic_pages;  /* of which in the high-order atomic reserve */
    size_t deferred_pages;    /* frees in flight on lock-free lists */
    size_t void_pages;        /* free and decommitted (trimmed), not in free_pages */
    size_t committed_bytes;   /* page frames the arena has put to use and not trimmed
                                 (memory the OS backs once touched): all but the
                                 never-used tail of a lazy arena and the void */
    size_t resident_bytes;    /* of the page frames, by mincore */
    size_t metadata_bytes;    /* page descriptors mapped (14 bytes per page) */
    size_t metadata_resident_bytes;
    int    huge_mode;         /* enum lab_huge_mode */
    size_t nr_rooms;
    uint64_t alloc_by_step[LAB_STEP_COUNT];   /* pages handed out, by the step that
                                                 served them (as Linux's pgalloc counts) */
    uint64_t fail_by_reason[LAB_R_COUNT];     /* failed requests, by reason */
    uint64_t fail_by_class[LAB_CLASS_COUNT];  /* failed requests, by GFP class */
    uint64_t frees;           /* pages freed, to the zone and to rooms (a room's
                                 page freed by another context once the room
                                 takes it back, as lab_room_stats.frees_remote) */
    uint64_t misuse, shrinker_runs, shrinker_pages, kswapd_wakes, kswapd_runs, waits;
    uint64_t trimmed_pages, recommitted_pages;
    uint64_t rooms_drained_pages;   /* taken by direct reclaim from the stocks and rings
                                       of rooms not inside a call (idle ones too), as
                                       Linux's drain_all_pages; each stock keeps its
                                       most recent block */
    int      trim_off;        /* enum lab_trim_off: LAB_TRIM_ON, or why trim gives nothing back */
    uint64_t trim_refused;    /* lab_arena_trim calls and idle trims refused for trim_off */
} lab_stats;
/* Fill *out with a snapshot of the arena's stats, the rooms' counters summed
 * in.  The zone's figures are read under the zone lock and agree with each
 * other; the counters are relaxed, exact when the arena is quiet.  Measures
 * residency with mincore(2): O(pages / 4096).  A NULL out is ignored; a
 * NULL arena gives zeros.  Not async-signal-safe. */
LAB_API void lab_stats_get(lab_arena *a, lab_stats *out);
/* Write the stats to f: LAB_STATS_TEXT is buddyinfo-like, LAB_STATS_JSON one
 * object (any other value gives the text).  Returns 0, or -1 on a write
 * error or a NULL argument.  Not async-signal-safe (stdio). */
#ifndef LAB_FREESTANDING
LAB_API int  lab_stats_print(lab_arena *a, FILE *f, int format);
#endif

typedef struct lab_room_stats {
    uint64_t allocs, frees_owner, frees_remote, reserve_allocs;  /* pages */
    uint64_t refills, drains;    /* batches between the stock and the zone: a refill,
                                    a drain above high, a run of blocks taken back
                                    into a full stock */
    uint64_t fail_by_reason[LAB_R_COUNT];
    size_t stock, reserve, out;  /* pages in stock, in the private reserve, handed out
                                    (including those on their way back in the ring) */
    size_t in_ring;              /* blocks freed by other contexts, not yet taken back
                                    (the shared ring and the freers' lanes) */
} lab_room_stats;
/* Fill *out with the room's counters (zeros for a NULL room).  Any thread
 * may call it; the figures are relaxed reads, exact when the room is quiet.
 * Async-signal-safe: it only reads. */
LAB_API void lab_room_stats_get(lab_room *r, lab_room_stats *out);

/* ------------------------------------------------------------------------
 * Deprecated names, kept for 0.2 and removed after it.
 *
 * A `_r` suffix tells a C programmer "re-entrant" (strtok_r), which the
 * result-carrying calls are no more than the others, so they were renamed;
 * and the name of a reason now follows lab_strerror.  The old names still
 * link and behave as the new ones; using them draws a compiler warning.
 * ---------------------------------------------------------------------- */
#if defined(__GNUC__)
#define LAB_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#define LAB_DEPRECATED(msg)
#endif
/* lab_alloc_pages_result under its 0.1 name. */
LAB_API void lab_alloc_pages_r(lab_arena *a, lab_gfp_t gfp, unsigned order, lab_result *res)
    LAB_DEPRECATED("renamed lab_alloc_pages_result");
/* lab_room_alloc_result under its 0.1 name. */
LAB_API void lab_room_alloc_r(lab_room *r, lab_gfp_t gfp, lab_result *res)
    LAB_DEPRECATED("renamed lab_room_alloc_result");
/* lab_strreason under its 0.1 name. */
LAB_API const char *lab_reason_str(int reason) LAB_DEPRECATED("renamed lab_strreason");

#ifdef __cplusplus
}
#endif
#endif /* LABYRINTH_H */
