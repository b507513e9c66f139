/* A program linked statically to the installed liblabyrinth.a that has
 * names of its own the library also uses inside (functions and data): the
 * archive must keep its internal names to itself, or this program does not
 * link ("multiple definition of `list_push'"), and each side must reach its
 * own. */
#include <labyrinth.h>

#include <stdio.h>

/* the program's own, named as the library's internal functions and data */
int pause_hook;
int list_push(int x) { return x + 1; }
int zone_lock(int x) { return x + 2; }
int os_map(int x) { return x + 3; }
int log_flush(int x) { return x + 4; }
const char *misuse(void) { return "the program's misuse"; }

static int reported;
static void on_misuse(void *ctx, int err, const void *addr, const char *msg)
{
    (void)ctx, (void)addr, (void)msg;
    reported = err;
}

#define FAIL(...) do { fprintf(stderr, "defines_internal_names: " __VA_ARGS__); fputc('\n', stderr); return 1; } while (0)

int main(void)
{
    lab_arena_config cfg;
    lab_arena *a = NULL;
    void *p;
    int err;

    lab_arena_config_init(&cfg);
    cfg.size = 4u << 20;
    err = lab_arena_create(&cfg, &a);
    if (err != 0)
        FAIL("lab_arena_create: %s", lab_strerror(err));
    p = lab_alloc_pages(a, LAB_GFP_KERNEL, 2);
    if (p == NULL)
        FAIL("order-2 allocation failed");
    lab_free_pages(a, p, 2);
    /* a foreign pointer: the library's own misuse path must report it */
    lab_set_misuse_handler(a, on_misuse, NULL);
    lab_free_pages(a, &reported, 0);
    if (reported == 0)
        FAIL("the library's misuse report did not reach the handler");
    err = lab_check(a);
    if (err != 0)
        FAIL("lab_check: %s", lab_strerror(err));
    lab_arena_destroy(a);

    pause_hook = 5;
    if (list_push(0) + zone_lock(0) + os_map(0) + log_flush(0) + pause_hook != 15)
        FAIL("the program's own functions were not called");
    printf("%s\nconsumer ok\n", misuse());
    return 0;
}
