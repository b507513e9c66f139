/*
 * platform.c - the core's contract (platform.h) on a bare x86-64 machine:
 * one processor, no OS, no threads, interrupts.
 *
 * What each primitive becomes here:
 *   memory      plat_map and plat_meta_alloc carve the RAM of the boot
 *               loader's memory map (memory.c); every byte goes back on
 *               unmap and meta_free.  RAM is always there: nothing is
 *               committed lazily and mlock has nothing to do.  Decommit
 *               and protect unmap the pages in the page tables (paging.c),
 *               so a touch of a page the core gave back faults at the
 *               instruction; recommit maps them back.  There is no memory
 *               checker to tell.
 *   waiting     plat_wait halts the processor (`sti; hlt`) until an
 *               interrupt has changed the word or the timeout, counted in
 *               timer ticks, has passed.  Only an interrupt can change
 *               anything while the one context that may block is halted,
 *               so the wakes have nothing to do.
 *   threads     none: the worker cannot start, and reclaim runs in the
 *               requests that may block.  The "thread" byte is one for the
 *               main context and one for interrupt handlers: as Linux
 *               ignores PF_MEMALLOC in interrupt context, a timer interrupt
 *               that lands inside a shrinker does not inherit its rights.
 *               A handler that finds a lock taken gives up at once
 *               (plat_spin_futile): the holder is the code it interrupted.
 *   time        the TSC, calibrated at boot.
 *   the rest    the log is the serial console, there is no environment,
 *               and abort leaves qemu with the failure status.
 */
#include "../../../include/labyrinth.h"
#include "../platform.h"
#include "port.h"

/* ---- memory ---------------------------------------------------------------- */

#define HUGE_PAGE (2u << 20)

static size_t page_round(size_t bytes) { return (bytes + 4095) & ~(size_t)4095; }

/* Split into 4 KiB pages so that decommit and protect can unmap single
 * pages; when the page-table pool is exhausted the range stays on 2 MiB
 * pages and they refuse. */
void *plat_map(size_t bytes, bool prefault)
{
    (void)prefault;   /* RAM: there is nothing to fault in */
    void *p = phys_alloc(bytes, 4096);
    if (p)
        paging_split((uintptr_t)p, page_round(bytes));
    return p;
}

/* Memory on 2 MiB pages only, as boot.S mapped it: an explicit mapping in
 * Linux's terms. */
int plat_advise_huge(void *p, size_t bytes)
{
    return paging_small_bytes((uintptr_t)p, page_round(bytes)) ? LAB_HUGE_REFUSED : LAB_HUGE_EXPLICIT;
}

/* Left on the 2 MiB pages boot.S made, unless an earlier plat_map split
 * them; decommit and protect then refuse, as they must not split it. */
void *plat_map_huge(size_t bytes, bool prefault, int *mode)
{
    void *p = phys_alloc(bytes, HUGE_PAGE);
    if (!p) {
        *mode = LAB_HUGE_REFUSED;
        return plat_map(bytes, prefault);
    }
    *mode = plat_advise_huge(p, bytes);
    return p;
}

/* Whatever the core left decommitted or protected is mapped again first:
 * the next owner of the RAM (phys_alloc zeroes it) must be able to touch
 * it. */
void plat_unmap(void *p, size_t bytes)
{
    if (!p)
        return;
    paging_set_absent((uintptr_t)p, page_round(bytes), PAGING_DECOMMITTED | PAGING_PROTECTED, false);
    phys_free(p, bytes);
}

int plat_mlock(void *p, size_t bytes, char *why, size_t why_len)
{
    (void)p, (void)bytes, (void)why, (void)why_len;
    return 0;   /* nothing is ever paged out */
}

/* Unmapped, not given to anyone: there is no one else on this machine.
 * What it buys is a check.  The contract is looser: it keeps a decommitted
 * range mapped (a touch commits it again, as on Linux).  Here a touch
 * faults until plat_recommit or plat_protect(true), the two ways the core
 * brings memory back from the void; any other touch is the core touching
 * memory it means to be idle, which is what the void exists to avoid for
 * atomic requests. */
bool plat_decommit(void *p, size_t bytes, bool lazy)
{
    (void)lazy;
    if (paging_small_bytes((uintptr_t)p, bytes) != bytes)
        return false;
    paging_set_absent((uintptr_t)p, bytes, PAGING_DECOMMITTED, true);
    return true;
}

bool plat_recommit(void *p, size_t bytes)
{
    paging_set_absent((uintptr_t)p, bytes, PAGING_DECOMMITTED, false);
    return true;
}

/* Making a range accessible also re-commits it: the contract keeps a
 * decommitted range mapped, so on Linux the first touch after mprotect
 * commits the page, and the core relies on that (with
 * LAB_ARENA_PROTECT_FREE it unprotects blocks it took back from the void
 * without re-committing them). */
bool plat_protect(void *p, size_t bytes, bool accessible)
{
    if (paging_small_bytes((uintptr_t)p, bytes) != bytes)
        return false;
    if (accessible)
        paging_set_absent((uintptr_t)p, bytes, PAGING_PROTECTED | PAGING_DECOMMITTED, false);
    else
        paging_set_absent((uintptr_t)p, bytes, PAGING_PROTECTED, true);
    return true;
}

size_t plat_resident(const void *p, size_t bytes)
{
    return paging_present_bytes((uintptr_t)p, page_round(bytes));
}

/* No memory checker runs on bare metal. */
int plat_checker(void) { return PLAT_CHECKER_NONE; }

void plat_mark(void *p, size_t bytes, int how)
{
    (void)p, (void)bytes, (void)how;
}

void *plat_meta_alloc(size_t bytes) { return phys_alloc(bytes, 64); }
void  plat_meta_free(void *p, size_t bytes) { phys_free(p, bytes); }

/* ---- waiting ---------------------------------------------------------------- */

static uint64_t ticks_for_ms(unsigned ms)
{
    uint64_t t = ((uint64_t)ms * timer_mhz() + 999999) / 1000000;
    return t ? t : 1;
}

static void refuse_interrupt_context(const char *call)
{
    if (irq_depth) {
        /* A halt with interrupts off never wakes: say so instead. */
        kprintf("FATAL: %s called in an interrupt handler, from", call);
        backtrace_print((uintptr_t)__builtin_frame_address(0));
        machine_exit(MACHINE_EXIT_FAIL);
    }
}

/* The word is checked with interrupts off and the halt entered with `sti;
 * hlt`, so an interrupt that changes the word between the check and the
 * halt wakes it rather than being missed.  With no timer running (before
 * the demo starts it, after it stops it) a halt could last forever, so the
 * wait polls the clock instead. */
void plat_wait(_Atomic uint32_t *word, uint32_t expected, unsigned timeout_ms)
{
    refuse_interrupt_context("plat_wait");
    if (!timer_mhz()) {
        uint64_t until = clock_ns() + (uint64_t)timeout_ms * 1000000;
        while (atomic_load_explicit(word, memory_order_acquire) == expected && clock_ns() < until)
            plat_cpu_relax();
        return;
    }
    uint64_t until = timer_ticks() + ticks_for_ms(timeout_ms);
    uint64_t flags = irq_save();
    while (atomic_load_explicit(word, memory_order_acquire) == expected && timer_ticks() < until) {
        irq_enable_and_halt();
        irq_disable();
    }
    irq_restore(flags);
}

/* The one context that waits is the one running; an interrupt that changes
 * a word has woken it by interrupting its halt. */
void plat_wake_one(_Atomic uint32_t *word) { (void)word; }
void plat_wake_all(_Atomic uint32_t *word) { (void)word; }

void plat_sleep_ms(unsigned ms)
{
    _Atomic uint32_t never_changes = 0;
    plat_wait(&never_changes, 0, ms);
}


/* One processor: it sees its own stores in order, whichever context (main
 * or interrupt) made them. */
bool plat_membarrier(void)
{
    atomic_thread_fence(memory_order_seq_cst);
    return true;
}

/* ---- threads ----------------------------------------------------------------- */

unsigned char *plat_thread_self(void)
{
    static unsigned char main_context[PLAT_THREAD_AREA] __attribute__((aligned(64)));
    static unsigned char interrupt_context[PLAT_THREAD_AREA] __attribute__((aligned(64)));
    return irq_depth ? interrupt_context : main_context;
}

/* An interrupt handler runs with interrupts off on the only processor:
 * whoever holds a lock it finds taken is the code it interrupted, which
 * cannot run until the handler returns.  Counted, so that a program can
 * tell how often its handler met a lock held and gave up at once. */
static uint64_t futile_spins;

bool plat_spin_futile(void)
{
    if (!irq_depth)
        return false;
    futile_spins++;
    return true;
}

uint64_t spins_refused_in_interrupt(void) { return futile_spins; }

struct plat_worker *plat_worker_start(void (*fn)(void *), void *arg)
{
    (void)fn, (void)arg;
    return NULL;
}

void plat_worker_join(struct plat_worker *w) { (void)w; }
bool plat_workers(void) { return false; }   /* background work runs in requesters */

/* ---- time, log, environment, abort ---------------------------------------------- */

uint64_t plat_now_ns(void) { return clock_ns(); }
uint64_t plat_now_coarse_ns(void) { return clock_ns(); }

void plat_log(const char *s, size_t n) { serial_write(s, n); }

const char *plat_getenv(const char *name)
{
    (void)name;
    return NULL;
}

void plat_abort(void)
{
    kprintf("FATAL: the allocator stopped the machine (plat_abort), from");
    backtrace_print((uintptr_t)__builtin_frame_address(0));
    machine_exit(MACHINE_EXIT_FAIL);
}
