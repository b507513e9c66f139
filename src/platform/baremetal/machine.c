/*
 * machine.c - interrupts, the timer and the clock of a bare x86-64 PC.
 *
 * The IDT has a gate for every exception (0-31) and for the sixteen legacy
 * IRQs (32-47), all interrupt gates: a handler runs with interrupts off and
 * is never nested.  An exception is fatal: its report (vector, error code,
 * RIP, CR2 for a page fault, the registers and a frame-pointer backtrace)
 * goes to the console and qemu exits with the failure status, so a fault in
 * the allocator under test can never look like a pass.
 *
 * The timer is PIT channel 0 in rate-generator mode behind the 8259 PIC
 * (remapped to vectors 32-47, everything but IRQ 0 masked).  The clock is
 * the TSC, whose rate is measured at boot against PIT channel 2 counting
 * down a known interval: under qemu's TCG the TSC runs at the host's rate,
 * which the guest cannot otherwise know.
 */
#include "port.h"

#define PIT_HZ       1193182u
#define PIC1_CMD     0x20
#define PIC1_DATA    0x21
#define PIC2_CMD     0xa0
#define PIC2_DATA    0xa1
#define PIC_EOI      0x20

/* ---- IDT ------------------------------------------------------------------ */

struct idt_gate {
    uint16_t offset_low, selector;
    uint8_t  ist, type;
    uint16_t offset_mid;
    uint32_t offset_high, zero;
};
_Static_assert(sizeof(struct idt_gate) == 16, "an IDT gate is 16 bytes");

static struct idt_gate idt[48] __attribute__((aligned(16)));
extern char isr_stubs[];    /* boot.S: one 16-byte stub per vector */

void idt_init(void)
{
    for (unsigned v = 0; v < 48; v++) {
        uint64_t at = (uint64_t)(uintptr_t)(isr_stubs + 16 * v);
        idt[v] = (struct idt_gate){
            .offset_low = (uint16_t)at,
            .selector = 0x08,
            .type = 0x8e,   /* present, ring 0, 64-bit interrupt gate */
            .offset_mid = (uint16_t)(at >> 16),
            .offset_high = (uint32_t)(at >> 32),
        };
    }
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } idtr = { sizeof idt - 1, (uint64_t)(uintptr_t)idt };
    __asm__ __volatile__("lidt %0" : : "m"(idtr));
}

/* ---- exceptions ------------------------------------------------------------ */

static const char *const exception_names[32] = {
    "divide error", "debug", "NMI", "breakpoint", "overflow", "bound range",
    "invalid opcode", "device not available", "double fault", "coprocessor overrun",
    "invalid TSS", "segment not present", "stack fault", "general protection",
    "page fault", "reserved", "x87 floating point", "alignment check",
    "machine check", "SIMD floating point", "virtualization", "control protection",
};


static void report_exception(const struct irq_frame *f)
{
    const char *name = exception_names[f->vector];
    uint64_t cr2;
    __asm__ __volatile__("mov %%cr2, %0" : "=r"(cr2));
    kprintf("\nFATAL: exception %lu (%s), error code 0x%lx, at RIP 0x%lx%s\n",
            f->vector, name ? name : "reserved", f->error, f->rip,
            irq_depth > 1 ? " in an interrupt handler" : "");
    if (f->vector == 14) {
        const char *why = paging_why_absent((uintptr_t)cr2);
        kprintf("  page fault address (CR2) 0x%lx: %s of a %s page%s%s\n", cr2,
                f->error & 2 ? "write" : "read",
                f->error & 1 ? "protected" : "not-present", why ? ", " : "", why ? why : "");
    }
    kprintf("  rax %016lx rbx %016lx rcx %016lx rdx %016lx\n", f->rax, f->rbx, f->rcx, f->rdx);
    kprintf("  rsi %016lx rdi %016lx rbp %016lx rsp %016lx\n", f->rsi, f->rdi, f->rbp, f->rsp);
    kprintf("  r8  %016lx r9  %016lx r10 %016lx r11 %016lx\n", f->r8, f->r9, f->r10, f->r11);
    kprintf("  r12 %016lx r13 %016lx r14 %016lx r15 %016lx\n", f->r12, f->r13, f->r14, f->r15);
    kprintf("  RIP 0x%lx, called from", f->rip);
    backtrace_print((uintptr_t)f->rbp);
}

/* ---- PIC and PIT ------------------------------------------------------------ */

static void pic_init(void)
{
    outb(PIC1_CMD, 0x11);     /* ICW1: edge, cascade, ICW4 follows */
    outb(PIC2_CMD, 0x11);
    outb(PIC1_DATA, 32);      /* ICW2: vectors 32-39 and 40-47 */
    outb(PIC2_DATA, 40);
    outb(PIC1_DATA, 4);       /* ICW3: the slave on IRQ 2 */
    outb(PIC2_DATA, 2);
    outb(PIC1_DATA, 0x01);    /* ICW4: 8086 mode */
    outb(PIC2_DATA, 0x01);
    outb(PIC1_DATA, 0xff);    /* everything masked until timer_start */
    outb(PIC2_DATA, 0xff);
}

static volatile uint64_t ticks;
static uint32_t timer_divisor;
static void (*timer_fn)(void);

void timer_start(unsigned hz, void (*fn)(void))
{
    uint32_t div = (PIT_HZ + hz / 2) / hz;
    if (div < 1)
        div = 1;
    if (div > 65535)
        div = 65535;
    irq_disable();
    timer_divisor = div;
    timer_fn = fn;
    ticks = 0;
    outb(0x43, 0x34);         /* channel 0, low then high byte, mode 2 */
    outb(0x40, (uint8_t)div);
    outb(0x40, (uint8_t)(div >> 8));
    outb(PIC1_DATA, 0xfe);    /* IRQ 0 only */
    irq_enable();
}

void timer_stop(void)
{
    irq_disable();
    outb(PIC1_DATA, 0xff);
    timer_fn = NULL;
    timer_divisor = 0;   /* timer_mhz() 0: waits stop relying on ticks */
    irq_enable();
}

uint64_t timer_ticks(void) { return ticks; }

uint64_t timer_mhz(void)
{
    return timer_divisor ? (uint64_t)PIT_HZ * 1000 / timer_divisor : 0;
}

/* Called by boot.S's stubs with the frame they built. */
void irq_dispatch(struct irq_frame *f);
void irq_dispatch(struct irq_frame *f)
{
    irq_depth++;
    if (f->vector < 32) {
        report_exception(f);
        machine_exit(MACHINE_EXIT_FAIL);
    }
    if (f->vector == IRQ_TIMER_VECTOR) {
        ticks++;
        void (*fn)(void) = timer_fn;
        if (fn)
            fn();
        outb(PIC1_CMD, PIC_EOI);
    } else if (f->vector != 32 + 7 && f->vector != 32 + 15) {
        /* Masked lines only raise the PIC's spurious 7 and 15, which take
         * no EOI; anything else is acknowledged and ignored. */
        if (f->vector >= 40)
            outb(PIC2_CMD, PIC_EOI);
        outb(PIC1_CMD, PIC_EOI);
    }
    irq_depth--;
}

/* ---- clock ------------------------------------------------------------------- */

static uint64_t tsc_rate, tsc_boot;
static uint64_t ns_per_tsc_q32;   /* nanoseconds per TSC tick, 32.32 fixed point */

/* PIT channel 2 counts down from 0xffff at 1193182 Hz, on its own (gate
 * high, speaker disconnected, interrupts off).  A sample latches the count
 * between two TSC reads; under TCG a port access may wait for qemu's
 * global lock for milliseconds on a busy host, so each sample is taken a
 * few times and the one whose two TSC reads are closest kept.  The rate is
 * the TSC delta over the count delta of two samples some 50 ms apart;
 * an interval in which the counter reached zero is measured again. */
struct pit_sample { uint64_t tsc, bracket; uint16_t count; };

static struct pit_sample pit2_sample(void)
{
    struct pit_sample best = { 0, UINT64_MAX, 0 };
    for (int i = 0; i < 5; i++) {
        uint64_t a = rdtsc();
        outb(0x43, 0x80);                    /* latch channel 2 */
        uint64_t b = rdtsc();
        uint16_t count = inb(0x42);
        count |= (uint16_t)(inb(0x42) << 8);
        if (b - a < best.bracket)
            best = (struct pit_sample){ a + (b - a) / 2, b - a, count };
    }
    return best;
}

static uint64_t tsc_measure(void)
{
    for (;;) {
        outb(0x61, (uint8_t)((inb(0x61) & ~0x02) | 0x01));
        outb(0x43, 0xb0);                    /* channel 2, low then high byte, mode 0 */
        outb(0x42, 0xff);
        outb(0x42, 0xff);
        struct pit_sample start = pit2_sample(), end;
        do
            end = pit2_sample();
        while (end.count > 6000 && !(inb(0x61) & 0x20));
        if (!(inb(0x61) & 0x20) && start.count > end.count)
            return (end.tsc - start.tsc) * PIT_HZ / (uint64_t)(start.count - end.count);
    }
}

static void clock_init(void)
{
    /* The median of three resists one interval a busy host distorted. */
    uint64_t r[3];
    for (int i = 0; i < 3; i++)
        r[i] = tsc_measure();
    uint64_t lo = r[0] < r[1] ? r[0] : r[1], hi = r[0] < r[1] ? r[1] : r[0];
    tsc_rate = r[2] < lo ? lo : r[2] > hi ? hi : r[2];
    ns_per_tsc_q32 = (1000000000ull << 32) / tsc_rate;
    tsc_boot = rdtsc();
}

uint64_t tsc_hz(void) { return tsc_rate; }

uint64_t clock_ns(void)
{
    /* A 64x64 multiply into 128 bits: no division (a libgcc call) on the
     * path every context reads. */
    unsigned __int128 d = rdtsc() - tsc_boot;
    return (uint64_t)((d * ns_per_tsc_q32) >> 32);
}

/* ---- boot ------------------------------------------------------------------- */

static char cmdline[256];

const char *boot_cmdline(void) { return cmdline; }

/* Multiboot's information block: flags bit 2 says there is a command line
 * (qemu's -append, after the kernel's file name). */
static void cmdline_save(uint32_t info)
{
    const uint32_t *mbi = (const uint32_t *)(uintptr_t)info;
    if (!(mbi[0] & (1u << 2)) || !mbi[4])
        return;
    const char *from = (const char *)(uintptr_t)mbi[4];
    for (size_t i = 0; i + 1 < sizeof cmdline && from[i]; i++)
        cmdline[i] = from[i];
}

void machine_init(uint32_t magic, uint32_t info)
{
    serial_init();
    if (magic != 0x2BADB002) {
        kprintf("boot: not started by a multiboot loader (magic 0x%x)\n", magic);
        machine_exit(MACHINE_EXIT_FAIL);
    }
    cmdline_save(info);   /* before phys_init: the RAM it lies in is handed out */
    idt_init();
    pic_init();
    phys_init(info);
    clock_init();
}
