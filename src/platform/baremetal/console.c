/*
 * console.c - COM1 and a small printf, the only output the machine has;
 * backtraces for the fatal reports; the interrupt depth every layer of the
 * port reads (machine.c's interrupt entry counts it).
 *
 * The formatter writes into a caller's buffer and keeps no state, so an
 * interrupt handler (the exception report) may use it while the code it
 * interrupted is inside it.  Output goes straight to the UART, polling its
 * transmit-empty bit: under qemu the bit is always set, so a line costs
 * one port write per byte.
 */
#include "port.h"

#define COM1 0x3f8

volatile unsigned irq_depth;
volatile unsigned cpu_halted;

void serial_init(void)
{
    outb(COM1 + 1, 0x00);   /* no UART interrupts: we poll */
    outb(COM1 + 3, 0x80);   /* divisor latch */
    outb(COM1 + 0, 0x01);   /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);   /* 8N1 */
    outb(COM1 + 2, 0xc7);   /* FIFO on, cleared */
    outb(COM1 + 4, 0x03);   /* DTR, RTS */
}

void serial_write(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (!(inb(COM1 + 5) & 0x20))
            ;
        outb(COM1, (uint8_t)s[i]);
    }
}

void machine_exit(int code)
{
    outl(0xf4, (uint32_t)code);
    /* Not under qemu (or no isa-debug-exit device): stop here. */
    for (;;) {
        irq_disable();
        __asm__ __volatile__("hlt");
    }
}

/* ---- formatter ----------------------------------------------------------- */

struct out {
    char  *buf;
    size_t size, len;   /* len counts what would have been written */
};

static void out_char(struct out *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

static void out_padded(struct out *o, const char *s, size_t n, int width, bool left, char pad)
{
    size_t fill = width > 0 && (size_t)width > n ? (size_t)width - n : 0;
    if (!left && pad == '0' && n > 0 && s[0] == '-') {
        out_char(o, '-');   /* zero padding goes after the sign */
        s++, n--;
    }
    if (!left)
        while (fill--)
            out_char(o, pad);
    while (n--)
        out_char(o, *s++);
    if (left)
        while (fill--)
            out_char(o, ' ');
}

/* Digits of v in base 10 or 16, at the end of a 24-byte buffer. */
static size_t digits_of(uint64_t v, unsigned base, bool negative, char *end)
{
    char *p = end;
    do {
        *--p = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (negative)
        *--p = '-';
    return (size_t)(end - p);
}

size_t kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out o = { buf, size, 0 };
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            out_char(&o, *fmt);
            continue;
        }
        bool left = false;
        char pad = ' ';
        int width = 0, longs = 0;
        for (fmt++; *fmt == '-' || *fmt == '0'; fmt++) {
            if (*fmt == '-')
                left = true;
            else
                pad = '0';
        }
        for (; *fmt >= '0' && *fmt <= '9'; fmt++)
            width = width * 10 + (*fmt - '0');
        for (; *fmt == 'l' || *fmt == 'z'; fmt++)
            longs = *fmt == 'z' ? 2 : longs + 1;
        char num[24];
        char *end = num + sizeof num;
        uint64_t u;
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
            u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
            size_t n = digits_of(u, 10, v < 0, end);
            out_padded(&o, end - n, n, width, left, pad);
            break;
        }
        case 'u':
        case 'x': {
            u = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            size_t n = digits_of(u, *fmt == 'x' ? 16 : 10, false, end);
            out_padded(&o, end - n, n, width, left, pad);
            break;
        }
        case 'p': {
            u = (uintptr_t)va_arg(ap, void *);
            size_t n = digits_of(u, 16, false, end);
            out_padded(&o, "0x", 2, 0, false, ' ');
            out_padded(&o, end - n, n, width, left, pad);
            break;
        }
        case 's': {
            const char *s = va_arg(ap, const char *);
            size_t n = 0;
            if (!s)
                s = "(null)";
            while (s[n])
                n++;
            out_padded(&o, s, n, width, left, ' ');
            break;
        }
        case 'c':
            num[0] = (char)va_arg(ap, int);
            out_padded(&o, num, 1, width, left, ' ');
            break;
        case '%':
            out_char(&o, '%');
            break;
        default:    /* an unknown conversion is shown, not skipped */
            out_char(&o, '%');
            if (!*fmt)
                goto done;
            out_char(&o, *fmt);
            break;
        }
    }
done:
    if (size)
        buf[o.len < size ? o.len : size - 1] = '\0';
    return o.len;
}

void kprintf(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    size_t n = kvsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    serial_write(line, n < sizeof line ? n : sizeof line - 1);
}

static uintptr_t kernel_end(void)
{
    extern char __kernel_end[];
    return (uintptr_t)__kernel_end;
}

/* Everything is built with frame pointers: walk them while they stay
 * inside the kernel image (the stack is in .bss), for `addr2line -e
 * labyrinth-baremetal64.elf`. */
void backtrace_print(uintptr_t rbp)
{
    const uint64_t *fp = (const uint64_t *)rbp;
    for (int depth = 0; depth < 16; depth++) {
        uintptr_t at = (uintptr_t)fp;
        if (at < 0x100000 || at + 16 > kernel_end() || (at & 7))
            break;
        kprintf(" 0x%lx", fp[1]);
        fp = (const uint64_t *)(uintptr_t)fp[0];
    }
    kprintf("\n");
}
