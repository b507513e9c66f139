/*
 * libc.c - memset, memcpy and memmove, the C library calls the core makes (and
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

static void copy_forward(void *d, const void *s, size_t n)
{
    __asm__ __volatile__("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
}

void *memcpy(void *restrict d, const void *restrict s, size_t n)
{
    copy_forward(d, s, n);
    return d;
}

/* Overlapping with the destination above the source: copy from the end,
 * with the direction flag set for the copy only. */
void *memmove(void *d, const void *s, size_t n)
{
    if ((uintptr_t)d <= (uintptr_t)s || (uintptr_t)d >= (uintptr_t)s + n)
    {
        copy_forward(d, s, n);   /* byte by byte upwards: safe when d < s */
        return d;
    }
    void *to = (char *)d + n - 1;
    const void *from = (const char *)s + n - 1;
    __asm__ __volatile__("std; rep movsb; cld" : "+D"(to), "+S"(from), "+c"(n) : : "memory");
    return d;
}
