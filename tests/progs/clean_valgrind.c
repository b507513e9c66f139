/*
 * clean_valgrind.c - correct use of Labyrinth pages (every order up to 4,
 * rooms, zeroed pages, trim and re-commit): memcheck must report no error
 * and no leak.  Run by the valgrind_clean_program_reports_no_errors test.
 */
#include <stdio.h>
#include <string.h>

#include "labyrinth.h"

int main(void)
{
    lab_arena_config cfg;
    lab_arena_config_init(&cfg);
    cfg.size = 2u << 20;
    cfg.name = "clean";
    lab_arena *a = NULL;
    if (lab_arena_create(&cfg, &a) != 0) {
        fprintf(stderr, "clean_valgrind: lab_arena_create failed\n");
        return 2;
    }
    void *blocks[5];
    for (unsigned o = 0; o < 5; o++) {
        blocks[o] = lab_alloc_pages(a, LAB_GFP_KERNEL, o);
        if (!blocks[o])
            return 2;
        memset(blocks[o], (int)o, (size_t)LAB_PAGE_SIZE << o);
    }
    unsigned char *z = lab_alloc_pages(a, LAB_GFP_KERNEL | LAB_GFP_ZERO, 0);
    if (!z || z[LAB_PAGE_SIZE - 1] != 0)   /* reads zeroed (defined) memory */
        return 2;
    lab_free_pages(a, z, 0);
    for (unsigned o = 0; o < 5; o++)
        lab_free_pages(a, blocks[o], o);

    lab_room_config rc;
    lab_room_config_init(&rc);
    lab_room *r = NULL;
    if (lab_room_create(a, &rc, &r) != 0)
        return 2;
    char *pg[64];
    for (int i = 0; i < 64; i++) {
        pg[i] = lab_room_alloc(r, LAB_GFP_KERNEL);
        if (!pg[i])
            return 2;
        pg[i][0] = (char)i;
    }
    int sum = 0;
    for (int i = 0; i < 64; i++) {
        sum += pg[i][0];
        lab_room_free(r, pg[i]);
    }
    /* the hand-off (single and bulk frees through the ring, taken back),
     * bulk allocation and a room of order 2, as users run them */
    for (int round = 0; round < 4; round++) {
        size_t n = lab_room_alloc_bulk(r, LAB_GFP_ATOMIC, (void **)pg, 64);
        if (n != 64)
            return 2;
        for (int i = 0; i < 64; i++)
            pg[i][1] = (char)i;
        for (int i = 0; i < 32; i++)
            lab_free_pages(a, pg[i], 0);
        lab_free_pages_bulk(a, (void *const *)(pg + 32), 32, 0);
    }
    lab_room_config rc2;
    lab_room_config_init(&rc2);
    rc2.max_order = 2;
    lab_room *r2 = NULL;
    if (lab_room_create(a, &rc2, &r2) != 0)
        return 2;
    for (int i = 0; i < 16; i++) {
        char *b = lab_room_alloc_pages(r2, LAB_GFP_ATOMIC, 2);
        if (!b)
            return 2;
        memset(b, i, (size_t)LAB_PAGE_SIZE << 2);
        sum += b[(LAB_PAGE_SIZE << 2) - 1];
        lab_room_free_pages(r2, b, 2);
    }
    lab_room_destroy(r2);
    lab_room_destroy(r);

    lab_arena_trim(a);
    char *again = lab_alloc_pages(a, LAB_GFP_KERNEL, 4);
    if (!again)
        return 2;
    memset(again, 7, (size_t)LAB_PAGE_SIZE << 4);
    lab_free_pages(a, again, 4);
    if (lab_check(a) != 0)
        return 2;
    lab_arena_destroy(a);
    fprintf(stderr, "clean_valgrind: done (%d)\n", sum);
    return 0;
}
