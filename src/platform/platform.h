/*
 * platform.h - the contract between the core and the machine under it.
 *
 * The core (src/core/) calls nothing but what this header declares.  A port
 * implements every function here once, in one directory: linux/ is the
 * hosted implementation (mmap, futex, pthreads), baremetal/ runs on a bare
 * x86-64 machine with no OS at all.  Nothing here may call back into the
 * core.
 *
 * Contexts.  "Any context" means a thread, a signal handler that
 * interrupted any code (the allocator included), or an interrupt handler:
 * such a primitive takes no lock, allocates nothing, makes no call that can
 * block, and leaves errno as it found it.  "Blocking context" means a thread
 * that may sleep; the core calls these only for requests whose GFP flags
 * allow blocking, and from its own reclaimer.
 *
 * Failure.  Where a primitive can fail it says how; the core reacts to every
 * failure (a failed commit fails the request, a refused decommit keeps the
 * pages, a worker that cannot start leaves reclaim to the requesters).
 *
 * Besides these, the core uses memset, memcpy and memmove, with their C
 * meanings: compilers emit calls to them for structure copies even in
 * freestanding code, so every port provides them.
 */
#ifndef LAB_PLATFORM_H
#define LAB_PLATFORM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLAT_HIDDEN __attribute__((visibility("hidden")))

void *memset(void *s, int c, size_t n);
void *memcpy(void *restrict d, const void *restrict s, size_t n);
void *memmove(void *d, const void *s, size_t n);

/* ---- memory: reserve, commit, decommit, protect ---------------------------
 * Addresses and sizes are multiples of 4096 unless stated. */

/* Reserve and commit `bytes` of zeroed, readable and writable memory, page
 * aligned.  The port may commit lazily (the OS fills pages on first touch);
 * with `prefault` it commits everything before returning.  NULL when the
 * memory is not there.  Blocking context. */
PLAT_HIDDEN void *plat_map(size_t bytes, bool prefault);

/* As plat_map, backed by 2 MiB pages where the port has them.  *mode is set
 * to LAB_HUGE_EXPLICIT, LAB_HUGE_TRANSPARENT or LAB_HUGE_REFUSED (the
 * memory is there, on small pages).  NULL when no memory.  Blocking. */
PLAT_HIDDEN void *plat_map_huge(size_t bytes, bool prefault, int *mode);

/* Ask that memory the caller supplied be backed by huge pages: returns one
 * of the three modes above.  Blocking. */
PLAT_HIDDEN int plat_advise_huge(void *p, size_t bytes);

/* Give back what plat_map or plat_map_huge returned (whole, same size).
 * NULL is ignored.  Blocking. */
PLAT_HIDDEN void plat_unmap(void *p, size_t bytes);

/* Lock the range in memory (no page fault will ever be taken there).
 * Returns 0, or an errno value; `why` receives a short human explanation of
 * a failure (for instance the limit that refused it), NUL-terminated, at
 * most `why_len` bytes.  Blocking. */
PLAT_HIDDEN int plat_mlock(void *p, size_t bytes, char *why, size_t why_len);

/* Decommit: the contents may be lost and the memory returned to the
 * machine; the range stays reserved, and reads as zero or as the old
 * contents after plat_recommit.  The core touches a decommitted range only
 * after plat_recommit, so a port may make any other touch fault.  `lazy` lets the port reclaim the memory only when
 * it is short of it.  False when the port refused (the pages stay
 * committed and the core keeps them).  Blocking. */
PLAT_HIDDEN bool plat_decommit(void *p, size_t bytes, bool lazy);

/* Commit a range plat_decommit gave back, so that no page fault follows.
 * False when the port could not pre-commit it (the memory is still usable;
 * its first touch commits it).  Blocking. */
PLAT_HIDDEN bool plat_recommit(void *p, size_t bytes);

/* Make a range inaccessible (false) or readable and writable (true); any
 * access to an inaccessible range traps.  False when the port cannot.
 * Any context (an exception the header documents: it is a system call on
 * Linux, made only for arenas created with LAB_ARENA_PROTECT_FREE or from
 * blocking contexts). */
PLAT_HIDDEN bool plat_protect(void *p, size_t bytes, bool accessible);

/* Bytes of the range that are committed right now (statistics only).
 * Blocking. */
PLAT_HIDDEN size_t plat_resident(const void *p, size_t bytes);

/* Memory checkers (ASan, Valgrind's memcheck).  plat_checker says which
 * one watches this program: PLAT_CHECKER_NONE, _ASAN or _MEMCHECK (the core
 * then turns its page hooks on, and leaves its own poisoning to memcheck,
 * which tracks every byte better than a pattern).  plat_mark tells the
 * checker what the core just did with a range of an arena:
 *   PLAT_MARK_ARENA    a new arena: nothing in it is handed out yet
 *   PLAT_MARK_ALLOC    a block handed to a caller: addressable, undefined
 *   PLAT_MARK_FREE     a block given back: no access until handed out again
 *   PLAT_MARK_RELEASE  the arena's memory is about to be given back: forget it
 * Any context; a no-op where no checker watches. */
enum { PLAT_CHECKER_NONE, PLAT_CHECKER_ASAN, PLAT_CHECKER_MEMCHECK };
enum { PLAT_MARK_ARENA, PLAT_MARK_ALLOC, PLAT_MARK_FREE, PLAT_MARK_RELEASE };
PLAT_HIDDEN int  plat_checker(void);
PLAT_HIDDEN void plat_mark(void *p, size_t bytes, int how);

/* ---- memory for metadata -------------------------------------------------
 * Zeroed, aligned to 64 bytes; NULL when there is none.  Freed with
 * plat_meta_free and the same size.  Blocking context. */
PLAT_HIDDEN void *plat_meta_alloc(size_t bytes);
PLAT_HIDDEN void  plat_meta_free(void *p, size_t bytes);

/* ---- waiter: a futex-like word ---------------------------------------------
 * plat_wait returns when *word is no longer `expected`, when woken, after
 * about timeout_ms, or spuriously; the caller re-checks.  Blocking context.
 * The wakes release waiters on that word; they may be called from any
 * context that may make a system call (the core never calls them from an
 * atomic request). */
PLAT_HIDDEN void plat_wait(_Atomic uint32_t *word, uint32_t expected, unsigned timeout_ms);
PLAT_HIDDEN void plat_wake_one(_Atomic uint32_t *word);
PLAT_HIDDEN void plat_wake_all(_Atomic uint32_t *word);

/* Sleep about `ms`, giving the processor to others.  Blocking context. */
PLAT_HIDDEN void plat_sleep_ms(unsigned ms);

/* A full memory barrier on every processor that runs a thread of this
 * program, so that a context which ordered its stores with a compiler fence
 * only is still ordered against the caller.  False where the port cannot
 * (then the core does without what needs it).  Blocking context. */
PLAT_HIDDEN bool plat_membarrier(void);

/* ---- threads ------------------------------------------------------------- */

/* PLAT_THREAD_AREA bytes that belong to the calling thread, 8-byte
 * aligned, zero when the thread starts.  Its address tells threads apart (a
 * signal handler gets its thread's area); the core keeps in it the thread's
 * PF_MEMALLOC flag, the lane its last single free used, and the lanes of
 * rooms' return rings it has claimed.  A port where interrupt handlers run
 * on their own stack gives them an area of their own.  Any context: no
 * allocation on first use. */
#define PLAT_THREAD_AREA 128
PLAT_HIDDEN unsigned char *plat_thread_self(void);
/* A port with initial-exec thread-local storage (Linux) names the area
 * itself, and the library's own objects (built with PLAT_TLS_AREA) read it
 * inline: the lane push on every remote free then needs no call, and no
 * stack frame.  The function stays, for every other caller. */
#ifdef PLAT_TLS_AREA
extern _Thread_local unsigned char plat_thread_area[PLAT_THREAD_AREA] PLAT_HIDDEN;
#define plat_thread_self() ((unsigned char *)plat_thread_area)
#endif

/* Whether spinning for a lock that another context holds is futile here:
 * true where no other context can run before the caller returns.  On bare
 * metal that is an interrupt handler (one processor, interrupts off): the
 * holder is the code it interrupted.  On Linux never: the holder is another
 * thread, which runs on another processor or when the spinner is
 * preempted, or the thread a signal handler interrupted, which the core
 * recognises by its area (plat_thread_self).  Any context. */
PLAT_HIDDEN bool plat_spin_futile(void);
/* The Linux port's own objects (built with PLAT_LINUX) see its answer as a
 * constant, so that the spin loops that ask compile as if they did not. */
#ifdef PLAT_LINUX
#define plat_spin_futile() false
#endif

/* Background worker: run fn(arg) on a context of its own that may block.
 * Returns a handle, or NULL when the port has no such context or could not
 * start one (the core then does its background work in requesters).
 * plat_worker_join waits for fn to return and releases the handle.
 * Blocking context. */
struct plat_worker;
PLAT_HIDDEN struct plat_worker *plat_worker_start(void (*fn)(void *), void *arg);
PLAT_HIDDEN void plat_worker_join(struct plat_worker *w);
/* Whether the port has workers at all (a NULL from plat_worker_start is
 * then a refusal, not the port's design).  Any context. */
PLAT_HIDDEN bool plat_workers(void);

/* ---- time ------------------------------------------------------------------
 * Monotonic nanoseconds since an arbitrary origin.  Any context, but it may
 * be a system call (Linux: a clock source the vDSO cannot read), so the
 * atomic paths use the coarse one: a few milliseconds' resolution, read
 * without one wherever the vDSO exists. */
PLAT_HIDDEN uint64_t plat_now_ns(void);
PLAT_HIDDEN uint64_t plat_now_coarse_ns(void);

/* ---- optional services ---------------------------------------------------
 * The log sink writes a whole message, or drops it; never partially blocks
 * the caller for long.  The core calls it only from contexts that may make
 * a system call.  A port with no sink drops everything. */
PLAT_HIDDEN void plat_log(const char *s, size_t n);

/* The value of a configuration variable, or NULL (always NULL where the
 * port has no environment).  Blocking context: the core reads it once. */
PLAT_HIDDEN const char *plat_getenv(const char *name);

/* Stop the program after a fault report (debug builds, internal assertion
 * failures).  Any context. */
PLAT_HIDDEN void plat_abort(void) __attribute__((noreturn));

/* ---- owner_add ----------------------------------------------------------
 * Add v to a word that one context writes and others only read (a room's
 * sequence words), as a release store of the old value plus v.  Not an
 * atomic read-modify-write: the caller must be the word's only writer.
 * x86-64 does it in one instruction, an add to memory with no lock prefix,
 * where C11 gets a load, an add and a store (GCC folds neither an atomic
 * nor a volatile word into the add); every x86 store is a release store,
 * so the asm needs only its memory clobber, the compiler's barrier.
 * ThreadSanitizer cannot see inside an asm: it is told of the release
 * (a reader's acquire load of the word then orders what came before), and
 * runs the same instruction.  Elsewhere the C11 load and release store.
 * Any context. */
#if defined(__SANITIZE_THREAD__)
#define PLAT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PLAT_TSAN 1
#endif
#endif
#if defined(PLAT_TSAN) && defined(__x86_64__)
#include <sanitizer/tsan_interface.h>
#endif
static inline void plat_owner_add(_Atomic uint64_t *w, uint64_t v)
{
#if defined(__x86_64__)
#if defined(PLAT_TSAN)
    __tsan_release((void *)w);
#endif
    __asm__ __volatile__("addq %1, %0" : "+m"(*(uint64_t *)w) : "er"(v) : "memory");
#else
    atomic_store_explicit(w, atomic_load_explicit(w, memory_order_relaxed) + v, memory_order_release);
#endif
}

/* ---- cpu_relax ----------------------------------------------------------
 * The body of a spin-wait loop, per architecture rather than per port: a
 * short delay that leaves the core to its sibling and keeps the loop from
 * hammering the lock's line, and a compiler barrier (as Linux's
 * cpu_relax).  aarch64 uses isb, not yield: yield is a hint that cores
 * without SMT (nearly all) drop as a nop, while isb stalls the front end
 * for a few tens of cycles, close to x86's pause.  Elsewhere only the
 * compiler barrier: correct, merely busier.  Any context. */
static inline void plat_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
    atomic_signal_fence(memory_order_seq_cst);
#elif defined(__aarch64__)
    __asm__ __volatile__("isb sy" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

#endif
