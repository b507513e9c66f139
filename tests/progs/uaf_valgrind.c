/*
 * uaf_valgrind.c - deliberately buggy: a use after free of a Labyrinth page
 * and a leaked page.  Run under valgrind (memcheck) by the
 * valgrind_reports_use_after_free_and_leak test, which passes only when
 * memcheck reports both: the library describes its pages to memcheck with
 * client requests (MALLOCLIKE/FREELIKE blocks) when it runs under valgrind.
 * Not meant to be run on its own.
 */
#include <stdio.h>
#include <string.h>

#include "labyrinth.h"

/* Kept out of main's frame and registers, so that no stale copy of the
 * pointer makes the leaked page look reachable. */
static __attribute__((noinline)) void leak_one_page(lab_arena *a)
{
    char *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    if (p)
        memset(p, 0x11, LAB_PAGE_SIZE);
    /* never freed, and the pointer dies here */
}

/* Global, so the arena itself stays reachable: the only leak is the page. */
static lab_arena *arena;

int main(void)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 1u << 20;
    cfg.name = "uaf";
    if (lab_arena_create(&cfg, &arena) != 0) {
        fprintf(stderr, "uaf_valgrind: lab_arena_create failed\n");
        return 2;
    }
    lab_arena *a = arena;
    /* frame 0 stays allocated: the arena's base pointer then points at a
     * block other than the leaked one */
    char *keep = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    volatile char *p = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    if (!keep || !p)
        return 2;
    p[0] = 1;
    lab_free_pages(a, (void *)p, 0);
    p[100] = 42;                     /* BUG: write to a freed page */
    char c = p[200];                 /* BUG: read of a freed page */
    leak_one_page(a);                /* BUG: a page that is never freed */
    lab_free_pages(a, keep, 0);
    fprintf(stderr, "uaf_valgrind: done (%d)\n", c);
    /* the arena stays alive: its pages are still mapped when memcheck
     * looks for pointers to the leaked block at exit */
    return 0;
}
