/* A program built against an installed Labyrinth (pkg-config or
 * find_package), to check that the installed header and libraries work. */
#include <labyrinth.h>

#include <stdio.h>

#define FAIL(...) do { fprintf(stderr, "consumer: " __VA_ARGS__); fputc('\n', stderr); return 1; } while (0)

int main(void)
{
    lab_arena_config cfg;
    lab_arena *a = NULL;
    void *p0, *p3;
    int err;

    lab_arena_config_init(&cfg);
    cfg.size = 4u << 20;  /* 4 MiB */
    cfg.name = "consumer";
    err = lab_arena_create(&cfg, &a);
    if (err != 0 || a == NULL)
        FAIL("lab_arena_create: %s", lab_strerror(err));

    p0 = lab_alloc_pages(a, LAB_GFP_KERNEL, 0);
    if (p0 == NULL)
        FAIL("order-0 allocation failed");
    p3 = lab_alloc_pages(a, LAB_GFP_KERNEL, 3);
    if (p3 == NULL)
        FAIL("order-3 allocation failed");
    if (((unsigned char *)p3 - (unsigned char *)lab_arena_base(a)) % (8 * LAB_PAGE_SIZE) != 0)
        FAIL("order-3 block not aligned to 8 pages");

    lab_free_pages(a, p3, 3);
    lab_free_pages(a, p0, 0);

    err = lab_check(a);
    if (err != 0)
        FAIL("lab_check: %s", lab_strerror(err));
    if (lab_stats_print(a, stdout, LAB_STATS_TEXT) != 0)
        FAIL("lab_stats_print failed");

    lab_arena_destroy(a);
    printf("consumer ok\n");
    return 0;
}
