/*
 * checker.c - plat_checker and plat_mark on Linux: AddressSanitizer when the
 * library is built with it, Valgrind's memcheck when the program runs under
 * it.  Each annotation is a few instructions, safe in a signal handler.
 */
#include "../platform.h"

#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define LAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LAB_ASAN 1
#endif
#endif
#if defined(LAB_ASAN) && defined(LAB_NO_ASAN_PAGE_HOOKS)
/* The ASan tree of the release fast paths: ASan watches the library's own
 * heap and stacks, and no hook takes the fast paths off (freed pages are
 * not poisoned). */
#undef LAB_ASAN
#endif
#ifdef LAB_ASAN
#include <sanitizer/asan_interface.h>
#endif
#ifdef LAB_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#endif

int plat_checker(void)
{
#ifdef LAB_HAVE_VALGRIND
    /* memcheck only: other tools (callgrind, helgrind) have no use for the
     * client requests, and they would add to the instruction counts.
     * LAB_VALGRIND_HOOKS=0: memcheck watches the library's own heap while
     * the release fast paths run (the hooks would take them off). */
    const char *preload = getenv("LD_PRELOAD"), *hooks = getenv("LAB_VALGRIND_HOOKS");
    if (RUNNING_ON_VALGRIND && preload && strstr(preload, "vgpreload_memcheck") && !(hooks && !strcmp(hooks, "0")))
        return PLAT_CHECKER_MEMCHECK;
#endif
#ifdef LAB_ASAN
    return PLAT_CHECKER_ASAN;
#else
    return PLAT_CHECKER_NONE;
#endif
}

void plat_mark(void *p, size_t bytes, int how)
{
    (void)p;
    (void)bytes;
    (void)how;
#ifdef LAB_HAVE_VALGRIND
    if (RUNNING_ON_VALGRIND) {
        switch (how) {
        case PLAT_MARK_ARENA: VALGRIND_MAKE_MEM_NOACCESS(p, bytes); break;
        case PLAT_MARK_ALLOC: VALGRIND_MALLOCLIKE_BLOCK(p, bytes, 0, 0); break;
        case PLAT_MARK_FREE:  VALGRIND_FREELIKE_BLOCK(p, 0); break;
        default: break;
        }
    }
#endif
#ifdef LAB_ASAN
    /* Only freed pages are poisoned: poisoning a whole new arena would
     * write size/8 bytes of shadow at once and undo the laziness of a
     * large arena.  At release the caller passes the part that may hold
     * poisoned pages. */
    switch (how) {
    case PLAT_MARK_ALLOC:
    case PLAT_MARK_RELEASE: ASAN_UNPOISON_MEMORY_REGION(p, bytes); break;
    case PLAT_MARK_FREE:    ASAN_POISON_MEMORY_REGION(p, bytes); break;
    default: break;
    }
#endif
}
