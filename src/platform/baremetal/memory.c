/*
 * memory.c - the machine's RAM, from the boot loader's memory map.
 *
 * The multiboot memory map lists the RAM; everything of it from 1 MiB up
 * to 4 GiB (what boot.S maps), less the kernel image, becomes a table of
 * free extents, sorted by address.  An allocation is a first fit that
 * splits an extent; a free puts the range back and merges it with its
 * neighbours, so the arena's frames and descriptors and the core's metadata
 * all come from the same RAM and all go back to it: at the end the bytes
 * outstanding must be zero again.
 *
 * The contract calls these from blocking contexts only, and the core keeps
 * to it: the periodic check of its debug builds maps scratch memory only
 * when it runs inside a blocking request, and leaves out the sums that
 * need it anywhere else (a free, an atomic request).  So no handler calls
 * in here today.  The table is still changed with interrupts off (one
 * processor), and the zeroing done after, with them back on: a handler
 * that did call in would find the table whole rather than corrupt it, and
 * such calls are counted (phys_calls_in_interrupt) so that a program can
 * catch the breach of the contract.
 */
#include "port.h"

#define MEMORY_TOP   0x100000000ull   /* boot.S maps the first 4 GiB */
#define MAX_EXTENTS  128
#define GRAIN        64

struct extent { uintptr_t start, end; };

static struct extent free_extents[MAX_EXTENTS];
static unsigned nr_extents;
static size_t bytes_total, bytes_out;

static uintptr_t align_up(uintptr_t v, uintptr_t a) { return (v + a - 1) & ~(a - 1); }

static void fatal(const char *what, uintptr_t at, size_t bytes)
{
    kprintf("FATAL: physical memory: %s (0x%lx, %zu bytes), called from", what,
            (unsigned long)at, bytes);
    backtrace_print((uintptr_t)__builtin_frame_address(0));
    machine_exit(MACHINE_EXIT_FAIL);
}

static uint64_t calls_in_interrupt;

static uint64_t table_lock(void)
{
    uint64_t flags = irq_save();
    if (irq_depth)
        calls_in_interrupt++;
    return flags;
}

uint64_t phys_calls_in_interrupt(void) { return calls_in_interrupt; }

/* Make room at index i (shifting the rest up).  False when the table is
 * full. */
static bool extent_open_slot(unsigned i)
{
    if (nr_extents == MAX_EXTENTS)
        return false;
    for (unsigned j = nr_extents; j > i; j--)
        free_extents[j] = free_extents[j - 1];
    nr_extents++;
    return true;
}

static void extent_close_slot(unsigned i)
{
    nr_extents--;
    for (unsigned j = i; j < nr_extents; j++)
        free_extents[j] = free_extents[j + 1];
}

/* Insert [start, end) into the sorted table, merging with its neighbours.
 * False when it overlaps a free extent (a double free) or the table is
 * full. */
static bool extent_insert(uintptr_t start, uintptr_t end)
{
    unsigned i = 0;
    while (i < nr_extents && free_extents[i].start < start)
        i++;
    if ((i > 0 && free_extents[i - 1].end > start) ||
        (i < nr_extents && free_extents[i].start < end))
        return false;
    bool joins_prev = i > 0 && free_extents[i - 1].end == start;
    bool joins_next = i < nr_extents && free_extents[i].start == end;
    if (joins_prev && joins_next) {
        free_extents[i - 1].end = free_extents[i].end;
        extent_close_slot(i);
    } else if (joins_prev) {
        free_extents[i - 1].end = end;
    } else if (joins_next) {
        free_extents[i].start = start;
    } else {
        if (!extent_open_slot(i))
            return false;
        free_extents[i] = (struct extent){ start, end };
    }
    return true;
}

/* Multiboot v1: the information block's flags say which fields are valid;
 * bit 6 is the memory map, a list of (size, base, length, type) records
 * whose size field does not count itself. */
struct __attribute__((packed)) mb_info {
    uint32_t flags, mem_lower, mem_upper, boot_device, cmdline;
    uint32_t mods_count, mods_addr, syms[4];
    uint32_t mmap_length, mmap_addr;
};
struct __attribute__((packed)) mb_mmap_entry {
    uint32_t size;
    uint64_t base, length;
    uint32_t type;
};

void phys_init(uint32_t info)
{
    extern char __kernel_start[], __kernel_end[];
    const struct mb_info *mbi = (const struct mb_info *)(uintptr_t)info;
    if (!(mbi->flags & (1u << 6)))
        fatal("the boot loader gave no memory map", info, 0);
    uintptr_t image_start = (uintptr_t)__kernel_start;
    uintptr_t image_end = align_up((uintptr_t)__kernel_end, 4096);
    uintptr_t at = mbi->mmap_addr, end = at + mbi->mmap_length;
    /* The loader's own structures may sit in RAM the map calls free; they
     * are read here once and never again, so later allocations may reuse
     * them. */
    while (at < end) {
        const struct mb_mmap_entry *e = (const struct mb_mmap_entry *)at;
        at += e->size + 4;
        if (e->type != 1)
            continue;
        uint64_t lo = e->base, hi = e->base + e->length;
        if (lo < 0x100000)
            lo = 0x100000;
        if (hi > MEMORY_TOP)
            hi = MEMORY_TOP;
        lo = align_up(lo, 4096);
        hi &= ~4095ull;
        /* The kernel image splits the range around it. */
        uint64_t pieces[2][2] = { { lo, hi < image_start ? hi : image_start },
                                  { lo > image_end ? lo : image_end, hi } };
        for (int p = 0; p < 2; p++) {
            if (pieces[p][0] >= pieces[p][1])
                continue;
            if (!extent_insert(pieces[p][0], pieces[p][1]))
                fatal("memory map with overlapping or too many ranges", pieces[p][0], 0);
            bytes_total += pieces[p][1] - pieces[p][0];
        }
    }
    if (!bytes_total)
        fatal("no RAM above the kernel", image_end, 0);
}

void *phys_alloc(size_t bytes, size_t align)
{
    bytes = align_up(bytes ? bytes : 1, GRAIN);
    if (align < GRAIN)
        align = GRAIN;
    uint64_t flags = table_lock();
    for (unsigned i = 0; i < nr_extents; i++) {
        struct extent *e = &free_extents[i];
        uintptr_t at = align_up(e->start, align);
        if (at < e->start || at + bytes > e->end || at + bytes < at)
            continue;
        if (at == e->start) {
            e->start += bytes;
            if (e->start == e->end)
                extent_close_slot(i);
        } else if (at + bytes == e->end) {
            e->end = at;
        } else {
            /* A hole in the middle: the extent becomes two. */
            if (!extent_open_slot(i + 1))
                break;
            free_extents[i + 1] = (struct extent){ at + bytes, free_extents[i].end };
            free_extents[i].end = at;
        }
        bytes_out += bytes;
        irq_restore(flags);
        return memset((void *)at, 0, bytes);
    }
    irq_restore(flags);
    return NULL;
}

void phys_free(void *p, size_t bytes)
{
    if (!p)
        return;
    bytes = align_up(bytes ? bytes : 1, GRAIN);
    uintptr_t at = (uintptr_t)p;
    uint64_t flags = table_lock();
    if (bytes > bytes_out || !extent_insert(at, at + bytes))
        fatal("free of memory that is free already, or extent table full", at, bytes);
    bytes_out -= bytes;
    irq_restore(flags);
}

size_t phys_outstanding(void) { return bytes_out; }
size_t phys_total(void) { return bytes_total; }

size_t phys_largest_free(void)
{
    size_t best = 0;
    for (unsigned i = 0; i < nr_extents; i++)
        if (free_extents[i].end - free_extents[i].start > best)
            best = free_extents[i].end - free_extents[i].start;
    return best;
}
