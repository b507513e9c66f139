/*
 * libc.c - memset and memcpy, the two C library calls the core makes (and
 * the compiler emits for structure copies and zeroing).
 *
 * `rep stosb` and `rep movsb` rather than loops: a loop here could be
 * recognised by the compiler as the very call it implements, and under
 * qemu's TCG a string instruction runs as one helper call instead of
 * thousands of translated iterations.  Both are safe in interrupt context:
 * the direction flag is clear everywhere (boot.S clears it at entry and in
 * every interrupt stub).
 */
#include "../platform.h"

void *memset(void *s, int c, size_t n)
{
    void *d = s;
    __asm__ __volatile__("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return s;
}

void *memcpy(void *restrict d, const void *restrict s, size_t n)
{
    void *to = d;
    __asm__ __volatile__("rep movsb" : "+D"(to), "+S"(s), "+c"(n) : : "memory");
    return d;
}
