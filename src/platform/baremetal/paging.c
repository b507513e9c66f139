/*
 * paging.c - 4 KiB page tables under the memory the allocator maps, so that
 * decommit and protect are real: the page is unmapped, and a touch faults.
 *
 * boot.S maps the first 4 GiB with 2 MiB pages.  A range that plat_map
 * hands out is split here into 4 KiB pages (a page table per 2 MiB, from a
 * pool in .bss), still identity-mapped.  Two of the bits the processor
 * leaves to software say why a page is absent: DECOMMITTED (plat_decommit)
 * and PROTECTED (plat_protect).  A page is present when neither is set, so
 * the core may protect a decommitted page or the reverse and each undo
 * restores only its own half.  Nothing is copied or zeroed: the frame stays
 * where it is, and a recommitted page reads its old contents, which the
 * contract allows.  A touch of an absent page is a page fault, reported
 * with its address (machine.c) and fatal: the allocator touching memory it
 * gave back is caught at the instruction.
 *
 * Splitting happens in plat_map, with interrupts off while it takes a
 * table from the pool; the bit flips take no lock and allocate nothing, so
 * they are safe in any context on one processor (each changes whole 8-byte
 * entries).
 */
#include "port.h"

#define PTE_PRESENT     (1ull << 0)
#define PTE_WRITABLE    (1ull << 1)
#define PDE_LARGE       (1ull << 7)
#define PTE_ADDR        0x000ffffffffff000ull
#define LARGE_PAGE      (2ull << 20)
#define MAPPED_TOP      0x100000000ull

/* Page tables for 512 MiB of split memory: 1 MiB of .bss. */
#define PT_POOL 256
static uint64_t pt_pool[PT_POOL][512] __attribute__((aligned(4096)));
static unsigned pt_used;

extern uint64_t boot_pd[4 * 512];   /* boot.S: 2048 entries of 2 MiB */

static void tlb_flush_all(void)
{
    uint64_t cr3;
    __asm__ __volatile__("mov %%cr3, %0; mov %0, %%cr3" : "=r"(cr3) : : "memory");
}

static void tlb_flush_page(uintptr_t at)
{
    __asm__ __volatile__("invlpg (%0)" : : "r"(at) : "memory");
}

/* The 4 KiB entry that maps `at`, or NULL when `at` is on a 2 MiB page or
 * above what boot.S maps. */
static uint64_t *pte_of(uintptr_t at)
{
    if (at >= MAPPED_TOP)
        return NULL;
    uint64_t pde = boot_pd[at / LARGE_PAGE];
    if (pde & PDE_LARGE)
        return NULL;
    uint64_t *pt = (uint64_t *)(uintptr_t)(pde & PTE_ADDR);
    return &pt[(at / 4096) % 512];
}

bool paging_split(uintptr_t start, size_t bytes)
{
    if (start + bytes > MAPPED_TOP)
        return false;
    /* Interrupts off: the pool and the directory change together. */
    uint64_t flags = irq_save();
    bool changed = false, split = true;
    for (uintptr_t at = start & ~(LARGE_PAGE - 1); at < start + bytes; at += LARGE_PAGE) {
        uint64_t *pde = &boot_pd[at / LARGE_PAGE];
        if (!(*pde & PDE_LARGE))
            continue;
        if (pt_used == PT_POOL) {
            split = false;
            break;
        }
        uint64_t *pt = pt_pool[pt_used++];
        for (unsigned i = 0; i < 512; i++)
            pt[i] = (at + 4096 * (uint64_t)i) | PTE_PRESENT | PTE_WRITABLE;
        *pde = (uint64_t)(uintptr_t)pt | PTE_PRESENT | PTE_WRITABLE;
        changed = true;
    }
    if (changed)
        tlb_flush_all();
    irq_restore(flags);
    return split;
}

size_t paging_small_bytes(uintptr_t start, size_t bytes)
{
    size_t small = 0;
    for (uintptr_t at = start; at < start + bytes; at += 4096)
        if (pte_of(at))
            small += 4096;
    return small;
}

void paging_set_absent(uintptr_t start, size_t bytes, uint64_t why, bool absent)
{
    for (uintptr_t at = start; at < start + bytes; at += 4096) {
        uint64_t *pte = pte_of(at);
        if (!pte)
            continue;   /* on a 2 MiB page: always present */
        uint64_t v = *pte;
        v = absent ? v | why : v & ~why;
        if (v & (PAGING_DECOMMITTED | PAGING_PROTECTED))
            v &= ~PTE_PRESENT;
        else
            v |= PTE_PRESENT;
        if (v != *pte) {
            *pte = v;
            tlb_flush_page(at);
        }
    }
}

size_t paging_present_bytes(uintptr_t start, size_t bytes)
{
    size_t present = 0;
    for (uintptr_t at = start; at < start + bytes; at += 4096) {
        const uint64_t *pte = pte_of(at);
        if (!pte || (*pte & PTE_PRESENT))
            present += 4096;
    }
    return present;
}

const char *paging_why_absent(uintptr_t at)
{
    const uint64_t *pte = pte_of(at);
    if (!pte || (*pte & PTE_PRESENT))
        return NULL;
    return (*pte & PAGING_DECOMMITTED) ? "decommitted (plat_decommit)" : "protected (plat_protect)";
}
