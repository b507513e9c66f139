/*
 * demo.c - Labyrinth on a bare x86-64 machine, with a real interrupt.
 *
 * A 10 kHz timer interrupt plays a NIC: on every tick its handler takes a
 * burst of one to four pages from its own room with LAB_GFP_ATOMIC (the
 * interrupt is the room's owner) and queues them on a receive ring, as a
 * driver refills its receive descriptors.  The main loop is the network
 * stack and the rest of the kernel at once: it frees the received pages
 * with lab_free_pages (they travel back to the room through its return
 * ring), and meanwhile takes blocks of orders 0 to 5 with LAB_GFP_KERNEL:
 * every other one goes into a cache, the others are sent on a transmit
 * ring, and the interrupt frees them with lab_free_pages once the link has
 * sent them.  The cache is a shrinker: once the arena runs low, blocking
 * requests reclaim from it, and a request that still finds nothing (the
 * link is congested and the blocks in flight hold the arena) waits,
 * halting the processor until an interrupt has freed some.
 *
 * In the congested second the main loop also leaves the receive ring alone
 * until it has overflowed for a while: the interrupt drops packets, giving
 * their pages back to its room with lab_room_free, and its requests reach
 * into the zone's share below the min watermark.
 *
 * The interrupt must be seen to do its work where it matters: the run
 * fails unless the interrupt allocated pages and freed some (completions,
 * drops), and unless enough ticks landed while the main loop was inside a
 * library call, some of them with the zone lock held.
 *
 * Every page carries a stamp while it is out (the receive sequence number,
 * or the block's serial number at both ends of the block), checked when it
 * is freed: two owners of one page would overwrite each other's.
 *
 * At the end everything is given back, and the machine exits through
 * isa-debug-exit with success only if every page came home (the zone's
 * free pages and its void make its total, the room has nothing out, the
 * RAM the platform lent the allocator is all returned) and lab_check
 * passed.
 */
#include "labyrinth.h"
#include "port.h"
/* The zone's lock word only: the interrupt notes whether it landed while
 * the main loop held the lock. */
#include "internal.h"

#define TIMER_HZ       10000
#define RUN_SECONDS    3
#define RX_RING        4096u       /* receive ring slots, a power of two */
#define RX_BURST_MAX   4
#define CACHE_SLOTS    8192u       /* cache blocks, a power of two */
#define CACHE_ORDER_MAX 5
#define KERNEL_ALLOCS_PER_TICK 2   /* the main loop's pace when it has nothing to receive */
#define TX_RING        8192u       /* transmit ring slots, a power of two */
#define METADATA_MARGIN (2u << 20) /* RAM left to the allocator's own bookkeeping */
#define RX_STALL_DROPS 512u        /* congested second: packets dropped before the
                                      main loop drains the receive ring again */
/* The least the interrupt must have done for the run to pass: far below
 * what any run measured (baremetal/README.md), and above what a handler
 * that does nothing, or one that only ever lands on an idle halt, achieves
 * (zero).  Completions follow the main loop's pace, which a debug build's
 * handler on a loaded host slows to a few dozen blocks a run (56 in one):
 * one is enough to show the interrupt frees.  Ticks inside the library
 * fall as the host gets faster (the main loop halts more). */
#define MIN_ATOMIC_PAGES     1000u /* pages the interrupt allocated */
#define MIN_TX_COMPLETED     1u    /* blocks it freed with lab_free_pages */
#define MIN_TICKS_IN_LIBRARY 10u   /* ticks that stopped the main loop inside a call */

static lab_arena *arena;
static uint64_t failed;   /* checks that failed; the first few are printed */

static void fail(const char *what)
{
    if (failed++ < 8)
        kprintf("FAIL: %s\n", what);
}

/* ---- deliberate faults ----------------------------------------------------
 * The kernel's command line (qemu -append) may ask for one, to show that
 * the checks catch it (scripts/demo-baremetal.sh, LAB_BAREMETAL_FAULT):
 *   lose-page   the main loop forgets to free one received page
 *   touch-void  after the first trim, the main loop reads a page the core
 *               decommitted
 */
static bool lose_page, touch_void;

static bool cmdline_has(const char *word)
{
    for (const char *c = boot_cmdline(); *c; c++) {
        size_t i = 0;
        while (word[i] && c[i] == word[i])
            i++;
        if (!word[i])
            return true;
    }
    return false;
}

/* ---- the receive ring: the interrupt produces, the main loop consumes ----
 * One processor: the interrupt cannot run while the main loop is between
 * its load and its store, and vice versa only in the order the code says;
 * acquire and release keep the compiler from moving the slot accesses
 * across the index updates. */
static void *rx_slots[RX_RING];
static _Atomic uint32_t rx_head, rx_tail;   /* head: interrupt; tail: main loop */

static lab_room *rx_room;
static _Atomic bool rx_running;
static struct {
    uint64_t bursts, pages, not_given, seq, cycles;
    _Atomic uint64_t dropped;              /* the main loop waits for it to grow */
    /* Where the ticks landed: inside one of the main loop's library calls,
     * and of those with the zone lock held; the handler's time in the
     * latter. */
    uint64_t in_library, in_zone_lock, zone_lock_cycles;
} nic;                                      /* written by the interrupt only */

/* The main loop's calls into the library in progress (the shrinker's frees
 * run inside its allocations).  The signal fences keep the compiler from
 * moving the count across the call: the interrupt reads it. */
static volatile unsigned main_in_library;

static void library_enter(void)
{
    main_in_library++;
    atomic_signal_fence(memory_order_seq_cst);
}

static void library_leave(void)
{
    atomic_signal_fence(memory_order_seq_cst);
    main_in_library--;
}
static uint32_t nic_rng = 0x9e3779b9u;

static uint32_t xorshift(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void stamp_page(void *p, uint64_t v)
{
    uint64_t *w = p;
    w[0] = v;
    w[LAB_PAGE_SIZE / 8 - 1] = ~v;
}

static bool page_has_stamp(const void *p, uint64_t v)
{
    const uint64_t *w = p;
    return w[0] == v && w[LAB_PAGE_SIZE / 8 - 1] == ~v;
}

/* A block the main loop allocated, stamped at both ends. */
struct block { void *addr; unsigned order; uint64_t serial; };

static void stamp_block(const struct block *b)
{
    stamp_page(b->addr, b->serial);
    stamp_page((char *)b->addr + (LAB_PAGE_SIZE << b->order) - LAB_PAGE_SIZE, b->serial);
}

static bool block_has_stamp(const struct block *b)
{
    return page_has_stamp(b->addr, b->serial) &&
           page_has_stamp((char *)b->addr + (LAB_PAGE_SIZE << b->order) - LAB_PAGE_SIZE, b->serial);
}

/* ---- the transmit ring: the main loop produces, the interrupt completes ----
 * The main loop queues at most one block a tick.  The link's speed changes
 * each second (link_quarters: blocks per 4 ticks): in the first it keeps
 * up; in the second it is congested, the blocks in flight grow until they
 * hold most of the arena, and the main loop's blocking requests, with
 * nothing left to reclaim, wait halted for the interrupt's completions to
 * free some; in the third it sends twice as fast and the backlog drains. */
static const unsigned link_quarters[RUN_SECONDS] = { 4, 1, 8 };
static _Atomic unsigned link_speed = 4;     /* set by the main loop each second */
static struct block tx_slots[TX_RING];
static _Atomic uint32_t tx_head, tx_tail;   /* head: main loop; tail: interrupt */
static struct { uint64_t queued, completed, drained, pages_completed; } tx;
static unsigned link_credit;                /* interrupt: quarters of a block */

/* Interrupt context: free the blocks the link finished sending this tick. */
static void tx_complete(void)
{
    link_credit += atomic_load_explicit(&link_speed, memory_order_relaxed);
    uint32_t tail = atomic_load_explicit(&tx_tail, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&tx_head, memory_order_acquire);
    for (; link_credit >= 4 && tail != head; link_credit -= 4, tail++) {
        struct block *b = &tx_slots[tail % TX_RING];
        if (!block_has_stamp(b))
            fail("a block in flight lost its stamp: another owner wrote it");
        lab_free_pages(arena, b->addr, b->order);
        tx.completed++;
        tx.pages_completed += (size_t)1 << b->order;
    }
    if (tail == head && link_credit > 8)
        link_credit = 8;   /* an idle link saves up no more than two blocks */
    atomic_store_explicit(&tx_tail, tail, memory_order_release);
}

/* Main loop: queue a block for sending; false when the ring is full. */
static bool tx_queue(const struct block *b)
{
    uint32_t head = atomic_load_explicit(&tx_head, memory_order_relaxed);
    if (head - atomic_load_explicit(&tx_tail, memory_order_acquire) == TX_RING)
        return false;
    tx_slots[head % TX_RING] = *b;
    atomic_store_explicit(&tx_head, head + 1, memory_order_release);
    tx.queued++;
    return true;
}

/* The timer interrupt: interrupt context, owner of rx_room.  Receives a
 * burst, then completes a transmission. */
static void nic_interrupt(void)
{
    if (!atomic_load_explicit(&rx_running, memory_order_acquire))
        return;
    uint64_t t0 = rdtsc();
    /* A tick that woke a blocking request halted in plat_wait is inside a
     * library call too, but interrupted no library code. */
    bool in_library = main_in_library != 0 && !cpu_halted;
    bool zone_locked = atomic_load_explicit(&arena->zone.lock.locked, memory_order_relaxed) != ZLOCK_FREE;
    nic.in_library += in_library;
    nic.in_zone_lock += zone_locked;
    void *pages[RX_BURST_MAX];
    size_t want = 1 + xorshift(&nic_rng) % RX_BURST_MAX;
    size_t got = lab_room_alloc_bulk(rx_room, LAB_GFP_ATOMIC, pages, want);
    nic.bursts++;
    nic.pages += got;
    nic.not_given += want - got;
    uint32_t head = atomic_load_explicit(&rx_head, memory_order_relaxed);
    for (size_t i = 0; i < got; i++) {
        if (head - atomic_load_explicit(&rx_tail, memory_order_acquire) == RX_RING) {
            lab_room_free(rx_room, pages[i]);   /* ring full: the packet is dropped */
            atomic_fetch_add_explicit(&nic.dropped, 1, memory_order_relaxed);
            continue;
        }
        stamp_page(pages[i], nic.seq++);
        rx_slots[head++ % RX_RING] = pages[i];
    }
    atomic_store_explicit(&rx_head, head, memory_order_release);
    tx_complete();
    uint64_t cycles = rdtsc() - t0;
    nic.cycles += cycles;
    if (zone_locked)
        nic.zone_lock_cycles += cycles;
}

static struct { uint64_t freed, seq; } rx;   /* main loop */

/* Free every received page (main loop). */
static void rx_drain(void)
{
    uint32_t tail = atomic_load_explicit(&rx_tail, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&rx_head, memory_order_acquire);
    for (; tail != head; tail++) {
        void *p = rx_slots[tail % RX_RING];
        if (!page_has_stamp(p, rx.seq))
            fail("a received page lost its stamp: another owner wrote it");
        if (!(lose_page && rx.seq == 1000)) {
            library_enter();
            lab_free_pages(arena, p, 0);
            library_leave();
        }
        rx.seq++;
        rx.freed++;
        atomic_store_explicit(&rx_tail, tail + 1, memory_order_release);
    }
}

/* ---- the cache: blocks the main loop holds, given back on demand -------- */
static struct block cache[CACHE_SLOTS];
static uint64_t cache_head, cache_tail;     /* FIFO: the oldest block is at tail */
static size_t cache_pages;
static struct {
    uint64_t allocs[CACHE_ORDER_MAX + 1], failed, evicted, shrunk_pages, scans, serial;
} kernel;

/* Give the oldest block back; its number of pages. */
static size_t cache_free_oldest(void)
{
    struct block *b = &cache[cache_tail++ % CACHE_SLOTS];
    if (!block_has_stamp(b))
        fail("a cache block lost its stamp: another owner wrote it");
    library_enter();
    lab_free_pages(arena, b->addr, b->order);
    library_leave();
    cache_pages -= (size_t)1 << b->order;
    return (size_t)1 << b->order;
}

static void cache_insert(const struct block *b)
{
    if (cache_head - cache_tail == CACHE_SLOTS) {
        cache_free_oldest();
        kernel.evicted++;
    }
    cache[cache_head++ % CACHE_SLOTS] = *b;
    cache_pages += (size_t)1 << b->order;
}

/* The shrinker runs inside the main loop's own blocking requests, never
 * while cache_insert is half done. */
static size_t cache_count(void *ctx)
{
    (void)ctx;
    return cache_pages;
}

static size_t cache_scan(void *ctx, size_t nr_to_free)
{
    (void)ctx;
    size_t freed = 0;
    kernel.scans++;
    while (freed < nr_to_free && cache_tail != cache_head)
        freed += cache_free_oldest();
    kernel.shrunk_pages += freed;
    return freed;
}

static const lab_shrinker cache_shrinker = { cache_count, cache_scan, NULL };

static uint32_t main_rng = 0x2545f491u;

/* A block of order 0..5, each half as likely as the one below (order 5 as
 * 4), with LAB_GFP_KERNEL: it may reclaim from the cache and wait. */
static void kernel_alloc_one(void)
{
    uint32_t r = xorshift(&main_rng);
    unsigned order = (unsigned)__builtin_ctz((r & 0x1f) | 0x20);
    library_enter();
    void *p = lab_alloc_pages(arena, LAB_GFP_KERNEL, order);
    library_leave();
    if (!p) {
        kernel.failed++;
        return;
    }
    kernel.allocs[order]++;
    struct block b = { p, order, kernel.serial++ };
    stamp_block(&b);
    /* Every other block is sent; the rest, and what a full ring refuses,
     * is cached. */
    if (!(b.serial & 1) || !tx_queue(&b))
        cache_insert(&b);
}

/* ---- reports ------------------------------------------------------------- */

static void on_misuse(void *ctx, int err, const void *addr, const char *msg)
{
    (void)ctx;
    kprintf("labyrinth misuse: %s at %p: %s\n", lab_strerror(err), addr, msg);
    fail("misuse reported");
}

static void on_log(void *ctx, const char *msg, size_t len)
{
    (void)ctx;
    serial_write(msg, len);   /* the core's reports name the library and the arena */
}

static void print_rate(const char *label, uint64_t count, uint64_t ns)
{
    uint64_t milli = ns ? count * 1000000000000ull / ns : 0;   /* per second, x1000 */
    kprintf("%s%lu.%03lu/s\n", label, milli / 1000, milli % 1000);
}

static const char *const step_names[LAB_STEP_COUNT] = {
    "none", "room", "room remote", "zone", "room reserve", "emergency",
    "highatomic", "recommit", "reclaim", "wait",
};

static void print_arena_stats(void)
{
    lab_stats s;
    lab_stats_get(arena, &s);
    kprintf("arena: %zu pages, %zu free, %zu allocated, watermarks min %zu low %zu high %zu\n",
            s.total_pages, s.free_pages, s.allocated_pages, s.wmark_min, s.wmark_low, s.wmark_high);
    kprintf("  pages by step:");
    for (int i = 1; i < LAB_STEP_COUNT; i++)
        kprintf(" %s %lu%s", step_names[i], s.alloc_by_step[i], i + 1 < LAB_STEP_COUNT ? "," : "\n");
    kprintf("  failed:");
    int shown = 0;
    for (int i = 1; i < LAB_R_COUNT; i++)
        if (s.fail_by_reason[i])
            kprintf("%s %s %lu", shown++ ? "," : "", lab_strreason(i), s.fail_by_reason[i]);
    kprintf("%s (atomic %lu, kernel %lu)\n", shown ? "" : " none", s.fail_by_class[LAB_CLASS_ATOMIC],
            s.fail_by_class[LAB_CLASS_KERNEL]);
    kprintf("  frees %lu, misuse %lu, shrinker runs %lu giving %lu pages, waits %lu, "
            "pages drained from rooms %lu\n", s.frees, s.misuse, s.shrinker_runs,
            s.shrinker_pages, s.waits, s.rooms_drained_pages);
    kprintf("  trimmed %lu pages, recommitted %lu; committed %zu KiB, resident %zu KiB\n",
            s.trimmed_pages, s.recommitted_pages, s.committed_bytes >> 10, s.resident_bytes >> 10);
    kprintf("  free blocks by order:");
    for (unsigned o = 0; o <= s.max_order; o++)
        kprintf(" %zu", s.free_blocks[o]);
    kprintf("\n  metadata %zu bytes, rooms %zu, deferred %zu, void %zu\n",
            s.metadata_bytes, s.nr_rooms, s.deferred_pages, s.void_pages);
}

static void print_room_stats(const lab_room_stats *rs)
{
    kprintf("rx room: allocs %lu, frees by owner %lu, frees from others %lu, refills %lu, "
            "drains %lu, from reserve %lu\n", rs->allocs, rs->frees_owner, rs->frees_remote,
            rs->refills, rs->drains, rs->reserve_allocs);
    kprintf("  stock %zu, reserve %zu, out %zu, in ring %zu, failed:", rs->stock, rs->reserve,
            rs->out, rs->in_ring);
    int shown = 0;
    for (int i = 1; i < LAB_R_COUNT; i++)
        if (rs->fail_by_reason[i])
            kprintf("%s %s %lu", shown++ ? "," : "", lab_strreason(i), rs->fail_by_reason[i]);
    kprintf("%s\n", shown ? "" : " none");
}

/* ---- the run ------------------------------------------------------------- */

static int setup(void)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    size_t ram = phys_largest_free();
    cfg.size = ram > 2 * METADATA_MARGIN ? (ram - METADATA_MARGIN) & ~(size_t)((2u << 20) - 1) : 0;
    cfg.name = "baremetal";
#ifdef LAB_DEBUG
    /* Freed pages unmapped until handed out again: a use after free faults
     * at the instruction (page-table bits here, no system call). */
    cfg.flags |= LAB_ARENA_PROTECT_FREE;
#endif
    int err = lab_arena_create(&cfg, &arena);
    if (err) {
        kprintf("lab_arena_create (%zu bytes): %s\n", cfg.size, lab_strerror(err));
        return err;
    }
    lab_set_misuse_handler(arena, on_misuse, NULL);
    lab_set_log_hook(arena, on_log, NULL);
    lab_room_config rc;
    lab_room_config_init(&rc);
    rc.reserve = 64;
    rc.flags = LAB_ROOM_NOWARN;   /* a NIC running dry drops, it does not complain */
    rc.name = "rx";
    if ((err = lab_room_create(arena, &rc, &rx_room)) ||
        (err = lab_shrinker_register(arena, &cache_shrinker))) {
        kprintf("room or shrinker: %s\n", lab_strerror(err));
        return err;
    }
    kprintf("arena: %zu MiB of the %zu MiB of RAM the memory map reports, max order %u\n",
            cfg.size >> 20, phys_total() >> 20, lab_arena_max_order(arena));
    return 0;
}

/* One second of ticks against one second of TSC time: the rate delivered,
 * which a busy host may hold below the rate programmed. */
static void measure_timer(void)
{
    uint64_t t0 = clock_ns(), k0 = timer_ticks();
    while (clock_ns() - t0 < 1000000000ull)
        irq_enable_and_halt();
    uint64_t ns = clock_ns() - t0, k = timer_ticks() - k0;
    kprintf("timer: PIT channel 0 at %lu.%03lu Hz programmed; ", timer_mhz() / 1000, timer_mhz() % 1000);
    print_rate("delivered ", k, ns);
    /* Lost ticks are the host's doing (qemu merges the edges of a timer
     * whose interrupt the vCPU has not taken yet); only a timer that
     * hardly runs is this kernel's fault. */
    if (k < TIMER_HZ / 10)
        fail("the timer delivered less than a tenth of its rate");
    else if (k < TIMER_HZ * 9 / 10)
        kprintf("  (below the programmed rate: the host did not let qemu deliver every tick)\n");
}

/* As `echo 3 > drop_caches` and then a trim: the cache goes back, and the
 * free pages above the min watermark are decommitted, unmapped in the page
 * tables (a touch would fault).  The blocking requests that follow
 * re-commit them (the recommit step); atomic ones cannot, and live on what
 * stays committed and on the room's reserve meanwhile. */
static void drop_cache_and_trim(void)
{
    size_t pages = 0;
    while (cache_tail != cache_head)
        pages += cache_free_oldest();
    library_enter();
    size_t trimmed = lab_arena_trim(arena);
    library_leave();
    kprintf("  dropped the cache (%zu pages), lab_arena_trim decommitted %zu pages\n", pages,
            trimmed / LAB_PAGE_SIZE);
    if (touch_void) {
        char *base = lab_arena_base(arena);
        for (size_t off = 0; off < lab_arena_size(arena); off += LAB_PAGE_SIZE)
            if (paging_why_absent((uintptr_t)(base + off))) {
                kprintf("  touching the decommitted page at %p\n", base + off);
                (void)*(volatile char *)(base + off);
            }
        fail("no page was decommitted to touch");
    }
}

/* The run lasts RUN_SECONDS of TSC time, whatever number of ticks the
 * host lets qemu deliver in it. */
static void run(void)
{
    uint64_t t0 = clock_ns(), c0 = rdtsc(), start = timer_ticks(), halts = 0;
    uint64_t end = t0 + RUN_SECONDS * 1000000000ull, next_report = t0 + 1000000000ull;
    uint64_t tick_seen = start, allocs_this_tick = 0;
    /* The congested second starts with the receive ring left alone (the
     * stack is backlogged) until the interrupt has dropped RX_STALL_DROPS
     * packets: the ring fills whatever the host's speed, and the
     * interrupt's requests find the arena held by the ring and the link. */
    bool rx_stalled = false;
    uint64_t stall_start = 0, stall_ns = 0;
    atomic_store_explicit(&rx_running, true, memory_order_release);
    for (uint64_t now; (now = clock_ns()) < end;) {
        if (timer_ticks() != tick_seen) {
            tick_seen = timer_ticks();
            allocs_this_tick = 0;
        }
        if (rx_stalled && atomic_load_explicit(&nic.dropped, memory_order_relaxed) >= RX_STALL_DROPS) {
            rx_stalled = false;
            stall_ns = now - stall_start;
        }
        if (!rx_stalled)
            rx_drain();
        if (allocs_this_tick < KERNEL_ALLOCS_PER_TICK) {
            kernel_alloc_one();
            allocs_this_tick++;
        } else {
            /* Idle until the next interrupt, unless one came since the
             * checks (interrupts off between them and the halt). */
            irq_disable();
            if ((rx_stalled || atomic_load(&rx_head) == atomic_load(&rx_tail)) &&
                timer_ticks() == tick_seen) {
                irq_enable_and_halt();
                halts++;
            } else {
                irq_enable();
            }
        }
        if (now >= next_report) {
            next_report += 1000000000ull;
            kprintf("t=%lus: %lu interrupts, rx %lu pages (%lu not given, %lu dropped), "
                    "kernel allocations %lu (%lu failed), cache %zu pages, %u blocks in flight\n",
                    (now - t0) / 1000000000, timer_ticks() - start, nic.pages, nic.not_given,
                    atomic_load(&nic.dropped), kernel.serial, kernel.failed, cache_pages,
                    atomic_load(&tx_head) - atomic_load(&tx_tail));
            drop_cache_and_trim();
            unsigned second = (unsigned)((now - t0) / 1000000000);
            if (second < RUN_SECONDS)
                atomic_store(&link_speed, link_quarters[second]);
            if (second == 1) {
                rx_stalled = true;
                stall_start = clock_ns();
            }
        }
    }
    atomic_store_explicit(&rx_running, false, memory_order_release);
    uint64_t ns = clock_ns() - t0, cycles = rdtsc() - c0, ticks = timer_ticks() - start;
    rx_drain();

    kprintf("\nrun: %lu.%03lu s, %lu timer interrupts, ", ns / 1000000000, ns / 1000000 % 1000, ticks);
    print_rate("", ticks, ns);
    kprintf("interrupt context: %lu bursts, %lu pages allocated with LAB_GFP_ATOMIC, "
            "%lu more asked for and not given, %lu dropped (ring full)\n", nic.bursts, nic.pages,
            nic.not_given, atomic_load(&nic.dropped));
    if (rx_stalled)
        kprintf("  the receive ring was left alone to the end: only %lu packets dropped of the %u "
                "awaited\n", atomic_load(&nic.dropped), RX_STALL_DROPS);
    else
        kprintf("  the receive ring was left alone for %lu ms, until %u packets were dropped\n",
                stall_ns / 1000000, RX_STALL_DROPS);
    kprintf("  ticks that stopped the main loop inside a library call: %lu, of which with the "
            "zone lock held %lu (handler time in those: %lu ns on average)\n", nic.in_library,
            nic.in_zone_lock, nic.in_zone_lock ? nic.zone_lock_cycles * 1000000000 / tsc_hz() /
            nic.in_zone_lock : 0);
    kprintf("  the handler found the zone lock held and gave up at once %lu times "
            "(plat_spin_futile)\n", spins_refused_in_interrupt());
    print_rate("  pages per second allocated in interrupt context: ", nic.pages, ns);
    uint64_t basis_points = nic.cycles * 10000 / cycles;
    kprintf("  handler time: %lu ns per burst on average, %lu.%02lu%% of the processor\n",
            nic.bursts ? nic.cycles * 1000000000 / tsc_hz() / nic.bursts : 0,
            basis_points / 100, basis_points % 100);
    kprintf("main loop: %lu received pages freed with lab_free_pages, %lu idle halts\n",
            rx.freed, halts);
    kprintf("  LAB_GFP_KERNEL allocations by order:");
    for (unsigned o = 0; o <= CACHE_ORDER_MAX; o++)
        kprintf(" %u:%lu", o, kernel.allocs[o]);
    kprintf(", failed %lu\n  cache: %zu pages held, shrinker scans %lu gave back %lu pages, "
            "%lu blocks evicted for want of slots\n", kernel.failed, cache_pages, kernel.scans,
            kernel.shrunk_pages, kernel.evicted);
    kprintf("  transmitted: %lu blocks queued, %lu completed and freed in interrupt context "
            "(%lu pages), %u still in flight\n", tx.queued, tx.completed, tx.pages_completed,
            atomic_load(&tx_head) - atomic_load(&tx_tail));
}

/* Give everything back and check that it all came home. */
static void teardown(void)
{
    lab_shrinker_unregister(arena, &cache_shrinker);
    while (cache_tail != cache_head)
        cache_free_oldest();
    /* The link is down (the interrupt stopped with rx_running): what it had
     * not sent is freed here. */
    for (uint32_t t = atomic_load(&tx_tail); t != atomic_load(&tx_head); t++) {
        const struct block *b = &tx_slots[t % TX_RING];
        if (!block_has_stamp(b))
            fail("a block in flight lost its stamp: another owner wrote it");
        lab_free_pages(arena, b->addr, b->order);
        tx.drained++;
    }
    if (tx.queued != tx.completed + tx.drained)
        fail("blocks queued for sending != blocks completed and drained");
    uint64_t dropped = atomic_load(&nic.dropped);
    if (nic.pages != rx.freed + dropped)
        fail("pages allocated in the interrupt != pages freed");

    lab_room_stats rs;
    lab_room_stats_get(rx_room, &rs);
    print_room_stats(&rs);
    /* The interrupt did its work, and met the main loop inside the
     * library: a handler that returns at once, or that the main loop only
     * lets in while it is idle, passes every accounting check above. */
    if (nic.pages < MIN_ATOMIC_PAGES)
        fail("the interrupt allocated too few pages");
    if (tx.completed < MIN_TX_COMPLETED)
        fail("the interrupt completed too few transmissions");
    if (!dropped)
        fail("the receive ring never overflowed: no packet dropped");
    /* The drops are the room owner's only frees. */
    if (rs.frees_owner != dropped)
        fail("the room's frees by its owner are not the packets dropped");
    if (nic.in_library < MIN_TICKS_IN_LIBRARY)
        fail("too few ticks stopped the main loop inside a library call");
    if (!nic.in_zone_lock)
        fail("no tick landed with the zone lock held");
    /* out counts the pages on their way back in the return ring too. */
    if (rs.out != rs.in_ring)
        fail("the room has pages out that never came back");
    lab_room_destroy(rx_room);

    print_arena_stats();
    lab_stats s;
    lab_stats_get(arena, &s);
    if (s.free_pages + s.void_pages != s.total_pages || s.allocated_pages || s.room_pages ||
        s.deferred_pages)
        fail("not every page came home to the zone");
    else
        kprintf("every page came home: %zu free and %zu in the void (free, decommitted) of %zu\n",
                s.free_pages, s.void_pages, s.total_pages);
    if (s.misuse)
        fail("misuse reported");
    int check = lab_check(arena);
    kprintf("lab_check: %d (%s)\n", check, check ? lab_strerror(check) : "invariants hold");
    if (check)
        fail("lab_check");
    lab_arena_destroy(arena);
    if (phys_outstanding())
        fail("the allocator kept RAM after lab_arena_destroy");
    else
        kprintf("lab_arena_destroy gave back all the RAM it took\n");
    /* The contract lets the core map memory in blocking contexts only. */
    if (phys_calls_in_interrupt()) {
        kprintf("the core mapped or unmapped memory %lu times in interrupt context\n",
                phys_calls_in_interrupt());
        fail("the core mapped memory in interrupt context");
    }
}

void boot_main(uint32_t magic, uint32_t info)
{
    machine_init(magic, info);
    lose_page = cmdline_has("lose-page");
    touch_void = cmdline_has("touch-void");
    kprintf("labyrinth bare-metal demo: x86-64 long mode, TSC at %lu.%03lu MHz\n",
            tsc_hz() / 1000000, tsc_hz() / 1000 % 1000);
    if (setup()) {
        machine_exit(MACHINE_EXIT_FAIL);
    }
    timer_start(TIMER_HZ, nic_interrupt);
    measure_timer();
    run();
    teardown();
    timer_stop();
    if (failed)
        kprintf("demo-baremetal: FAIL (%lu failed checks)\n", failed);
    else
        kprintf("demo-baremetal: PASS\n");
    machine_exit(failed ? MACHINE_EXIT_FAIL : MACHINE_EXIT_OK);
}
