/*
 * port.h - the bare x86-64 machine under the bare-metal port: ports,
 * the serial console, interrupts and the timer, the clock, physical memory
 * and the way out of qemu.  platform.c builds the core's contract on these;
 * the demo uses them directly.
 */
#ifndef LAB_BAREMETAL_MACHINE_H
#define LAB_BAREMETAL_MACHINE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../platform.h"   /* memset, memcpy, memmove */

/* ---- port I/O ------------------------------------------------------------ */
static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ __volatile__("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ __volatile__("outl %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ __volatile__("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}
static inline void irq_enable(void)  { __asm__ __volatile__("sti" ::: "memory"); }
static inline void irq_disable(void) { __asm__ __volatile__("cli" ::: "memory"); }
/* Disable interrupts and return the flags to give irq_restore, which
 * enables them again only if they were enabled: a section that must not be
 * interrupted, callable with interrupts either way. */
static inline uint64_t irq_save(void)
{
    uint64_t flags;
    __asm__ __volatile__("pushfq; popq %0; cli" : "=r"(flags) : : "memory");
    return flags;
}
static inline void irq_restore(uint64_t flags)
{
    if (flags & 0x200)   /* IF */
        irq_enable();
}
/* Nonzero while the processor halts in irq_enable_and_halt: a handler
 * tells an interrupt that woke an idle processor from one that stopped
 * running code. */
extern volatile unsigned cpu_halted;
/* Enable interrupts and halt as one step: `sti` takes effect after the next
 * instruction, so an interrupt that became pending before it wakes the
 * `hlt` instead of being taken in between and leaving us asleep. */
static inline void irq_enable_and_halt(void)
{
    cpu_halted = 1;
    __asm__ __volatile__("sti; hlt" ::: "memory");
    cpu_halted = 0;
}

/* ---- console (COM1) ------------------------------------------------------ */
void serial_init(void);
void serial_write(const char *s, size_t n);
/* printf's subset: %d %i %u %x %p %s %c %%, flags '-' and '0', a width, and
 * the l, ll and z length modifiers.  kprintf writes to the console;
 * kvsnprintf formats into buf (always terminated) and returns the length. */
size_t kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- leaving qemu (isa-debug-exit at port 0xf4) ---------------------------
 * qemu exits with (code << 1) | 1: MACHINE_EXIT_OK gives 33, FAIL 35. */
enum { MACHINE_EXIT_OK = 0x10, MACHINE_EXIT_FAIL = 0x11 };
void machine_exit(int code) __attribute__((noreturn));

/* ---- interrupts ---------------------------------------------------------- */
/* The stack frame boot.S builds: the registers it saved, the vector, the
 * error code (0 where the processor pushes none), then the processor's. */
struct irq_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;
};
#define IRQ_TIMER_VECTOR 32
/* Print the return addresses of the frame-pointer chain that starts at
 * rbp (__builtin_frame_address(0) for the caller's own). */
void backtrace_print(uintptr_t rbp);
/* Nonzero while an interrupt handler runs (handlers do not nest: the gates
 * clear IF). */
extern volatile unsigned irq_depth;

/* ---- timer and clock ----------------------------------------------------- */
/* Program PIT channel 0 for `hz` interrupts a second (the divisor rounds:
 * timer_hz() says the rate programmed) and call fn on each, in interrupt
 * context, after the tick count went up.  fn may be NULL. */
void timer_start(unsigned hz, void (*fn)(void));
void timer_stop(void);
/* Timer interrupts taken since timer_start. */
uint64_t timer_ticks(void);
/* The rate programmed, in millihertz (1193182 Hz / divisor); 0 when no
 * timer runs. */
uint64_t timer_mhz(void);
/* TSC ticks per second, measured against PIT channel 2 at boot. */
uint64_t tsc_hz(void);
/* Nanoseconds since boot from the TSC. */
uint64_t clock_ns(void);

/* ---- physical memory ------------------------------------------------------
 * The RAM the boot loader's memory map reports, less the kernel image,
 * managed as a list of free extents.  Any context (the table changes with
 * interrupts off). */
/* Zeroed memory of `bytes` (rounded up to 64) aligned to `align` (a power
 * of two, at least 64); NULL when no extent fits. */
void *phys_alloc(size_t bytes, size_t align);
/* Give back what phys_alloc returned, with the same size. */
void  phys_free(void *p, size_t bytes);
/* Bytes handed out and not given back; bytes of RAM managed in all. */
size_t phys_outstanding(void);
size_t phys_total(void);
/* The largest free extent, in bytes. */
size_t phys_largest_free(void);
/* phys_alloc and phys_free calls made in an interrupt handler. */
uint64_t phys_calls_in_interrupt(void);

/* ---- paging (paging.c) ------------------------------------------------------
 * Ranges plat_map hands out are on 4 KiB pages, whose present bit follows
 * two reasons for absence kept in bits the processor leaves to software. */
#define PAGING_DECOMMITTED (1ull << 9)
#define PAGING_PROTECTED   (1ull << 10)
/* Map the range with 4 KiB pages, taking page tables from a fixed pool.
 * False when the pool ran out or the range is above 4 GiB; the rest of the
 * range then stays on 2 MiB pages. */
bool paging_split(uintptr_t start, size_t bytes);
/* Bytes of the range that are on 4 KiB pages (the rest is on 2 MiB pages). */
size_t paging_small_bytes(uintptr_t start, size_t bytes);
/* Set or clear one reason for absence (PAGING_*) on every 4 KiB page of
 * the range; pages on 2 MiB pages are skipped.  Any context. */
void paging_set_absent(uintptr_t start, size_t bytes, uint64_t why, bool absent);
/* Bytes of the range that are mapped present. */
size_t paging_present_bytes(uintptr_t start, size_t bytes);
/* Why the page at `at` is absent, or NULL when it is present. */
const char *paging_why_absent(uintptr_t at);

/* ---- boot -------------------------------------------------------------------
 * boot.S calls boot_main, which the program defines, with the loader's
 * magic and information block; boot_main calls machine_init first (console,
 * IDT, PIC, RAM, clock) and ends with machine_exit. */
void boot_main(uint32_t magic, uint32_t info);
void machine_init(uint32_t magic, uint32_t info);
/* The boot loader's command line, "" when it gave none. */
const char *boot_cmdline(void);
void phys_init(uint32_t info);
void idt_init(void);

/* ---- counted by the contract's primitives (platform.c) -------------------- */
/* Times plat_spin_futile told an interrupt handler that the lock it found
 * taken was held by the code it interrupted: the core gave up at once
 * rather than spin. */
uint64_t spins_refused_in_interrupt(void);

#endif
