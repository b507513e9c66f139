/*
 * fault_sites.h - the places where the library can fail for a reason other
 * than the request, and the calls of fault.c (included by internal.h; the
 * inline checks that call into fault.c are fault.h).
 */
#ifndef LAB_FAULT_SITES_H
#define LAB_FAULT_SITES_H

/* fault.c: fault points.  Every place where the library can fail for a
 * reason other than the request itself -- a system call, a metadata
 * allocation, a thread start, a refill cut short, a zone lock found busy --
 * asks fault_point(site) first and, when it says so, behaves as if the OS
 * had refused.  Process-wide and off unless a test arms it (tests link the
 * static library and call the fault_points_* hooks below); when off it is
 * one relaxed load of a global.  Sites, and what an injected failure does: */
enum fault_site {
    FP_MMAP,         /* os_map, os_map_huge: the mapping fails (NULL) */
    FP_MLOCK,        /* os_mlock: refused with ENOMEM */
    FP_DECOMMIT,     /* os_decommit: the port refuses, the pages stay committed */
    FP_RECOMMIT,     /* os_recommit: the port cannot pre-commit, the pages are touched instead */
    FP_MPROTECT,     /* os_protect: the port refuses, protection unchanged */
    FP_FUTEX_WAIT,   /* os_wait: returns at once, as a spurious wake-up */
    FP_META_ALLOC,   /* meta_alloc: arena, room, stock, ring, lanes or reclaimer metadata: NULL */
    FP_THREAD_START, /* os_worker_start: the background reclaimer does not start */
    FP_REFILL_CUT,   /* a room refill of more than one block stops after its first (a partial refill) */
    FP_LOCK_BUSY,    /* zone_lock_atomic finds the lock busy: atomic requests fall
                        through, frees take the deferred list */
    FP_NR_SITES
};
LAB_HIDDEN extern _Atomic bool fault_points_armed;
LAB_HIDDEN bool fault_point_slow(enum fault_site site);
/* Test hooks: count the calls of every site from now on, and fail the
 * `nth` (1-based) call of `site` from now on (nth 0: fail none). */
LAB_HIDDEN void fault_points_arm(enum fault_site site, uint64_t nth);
LAB_HIDDEN void fault_points_disarm(void);
LAB_HIDDEN uint64_t fault_points_calls(enum fault_site site);
LAB_HIDDEN uint64_t fault_points_injected(void);
LAB_HIDDEN const char *fault_site_name(enum fault_site site);

/* Pause points: places inside a cross-thread protocol where a test parks
 * a thread, to reach an interleaving the scheduler produces once in a
 * blue moon (a preemption at one instruction).  Off unless a test sets the
 * hook; then one relaxed load, on slow paths only.  Sites: */
enum pause_site {
    PP_STEAL_RING,   /* reclaim's steal, between its read of a room's ring tail and its take */
    PP_RESERVE_BATCH, /* lab_room_create, between two batches of a reserve, the zone lock let go */
    PP_STATS_ROOMS,  /* lab_stats_get, between the rooms' counts and the arena's */
    PP_RESERVE_RECOMMIT, /* lab_room_create, its reserve re-committed, the zone lock not yet taken again */
    PP_RESERVE_TRIM_WAIT, /* lab_room_create, about to wait for a trim in flight */
    PP_TRIM_DECOMMIT, /* a trim, its blocks isolated (void_inflight), before it decommits them */
    PP_FREE_CLAIM,   /* free_claim (a free's slow path), before it looks at the block's descriptor */
    PP_NR_SITES
};
typedef void (*pause_fn)(enum pause_site site);
LAB_HIDDEN extern _Atomic pause_fn pause_hook;

LAB_HIDDEN void fault_init(struct lab_arena *a);
LAB_HIDDEN bool fault_should_fail_slow(struct lab_arena *a, lab_gfp_t gfp, unsigned order);

#endif
