/*
 * print.c - lab_stats_print: the counters in text (buddyinfo-like) and JSON.
 * The one part of the library that needs stdio, so it sits on top of the
 * freestanding core, in the hosted layer.
 */
#include "../core/internal.h"

#include <stdio.h>

static const char *const huge_names[] = { "none", "explicit", "transparent", "refused" };
static const char *const trim_off_names[] = { "on", "caller memory (no LAB_ARENA_DECOMMIT_CALLER)", "locked (LAB_ARENA_MLOCK)",
                                              "huge pages over caller memory not 2 MiB aligned" };
static const char *const class_names[LAB_CLASS_COUNT] = { "atomic", "nowait", "kernel", "other" };
static const char *class_name(int c) { return class_names[c]; }

static int print_text(lab_arena *a, const lab_stats *s, FILE *f)
{
    fprintf(f, "Arena %s  pages %zu  free %zu  allocated %zu  rooms %zu (%zu pages, %llu drained by reclaim)  reserves %zu (highatomic %zu)  deferred %zu\n",
            a->name, s->total_pages, s->free_pages, s->allocated_pages, s->nr_rooms, s->room_pages,
            (unsigned long long)s->rooms_drained_pages, s->reserve_pages, s->highatomic_pages, s->deferred_pages);
    fprintf(f, "Watermarks min %zu low %zu high %zu\n", s->wmark_min, s->wmark_low, s->wmark_high);
    fprintf(f, "Memory committed %zu KiB  resident %zu KiB  void %zu pages (trimmed %llu, re-committed %llu)  metadata %zu KiB (%zu KiB resident)  huge pages %s\n",
            s->committed_bytes >> 10, s->resident_bytes >> 10, s->void_pages, (unsigned long long)s->trimmed_pages,
            (unsigned long long)s->recommitted_pages, s->metadata_bytes >> 10, s->metadata_resident_bytes >> 10,
            huge_names[s->huge_mode]);
    if (s->trim_off)
        fprintf(f, "Trim off: %s (%llu refused)\n", trim_off_names[s->trim_off], (unsigned long long)s->trim_refused);
    fprintf(f, "Node 0, zone %8s", a->name);
    for (unsigned o = 0; o <= s->max_order; o++)
        fprintf(f, " %6zu", s->free_blocks[o]);
    fputc('\n', f);
    fprintf(f, "Pages served by step:");
    for (int i = 1; i < LAB_STEP_COUNT; i++)
        fprintf(f, " %s=%llu", lab_strstep(i), (unsigned long long)s->alloc_by_step[i]);
    fprintf(f, "\nFailures by reason:");
    for (int i = 1; i < LAB_R_COUNT; i++)
        fprintf(f, " %s=%llu", lab_strreason(i), (unsigned long long)s->fail_by_reason[i]);
    fprintf(f, "\nFailures by class:");
    for (int i = 0; i < LAB_CLASS_COUNT; i++)
        fprintf(f, " %s=%llu", class_names[i], (unsigned long long)s->fail_by_class[i]);
    fprintf(f, "\nPages freed %llu  misuse %llu  shrinker runs %llu (%llu pages)  kswapd wakes %llu runs %llu  waits %llu\n",
            (unsigned long long)s->frees, (unsigned long long)s->misuse, (unsigned long long)s->shrinker_runs,
            (unsigned long long)s->shrinker_pages, (unsigned long long)s->kswapd_wakes,
            (unsigned long long)s->kswapd_runs, (unsigned long long)s->waits);
    return fflush(f) != 0 || ferror(f) ? -1 : 0;   /* a buffered write fails at the flush */
}

static void json_u64_array(FILE *f, const char *key, const uint64_t *v, int n, const char *(*name)(int))
{
    fprintf(f, ",\"%s\":{", key);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\"%s\":%llu", i ? "," : "", name(i), (unsigned long long)v[i]);
    fputc('}', f);
}

/* The length of the UTF-8 character at s (RFC 3629: no overlong form, no
 * surrogate, nothing above U+10FFFF), or 0 if s does not start one. */
static size_t utf8_char(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    for (size_t i = 1; i < n; i++, lo = 0x80, hi = 0xbf)
        if (s[i] < lo || s[i] > hi)
            return 0;
    return n;
}

/* The arena's name is the program's: a quote, a backslash or a control
 * character in it would end the string or break the object, and JSON is
 * UTF-8 (a byte that starts no character becomes U+FFFD). */
static void json_string(FILE *f, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    fputc('"', f);
    while (*s) {
        size_t n = utf8_char(s);
        if (n == 0)
            fputs("\\ufffd", f), n = 1;
        else if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if (*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fwrite(s, 1, n, f);
        s += n;
    }
    fputc('"', f);
}

static int print_json(lab_arena *a, const lab_stats *s, FILE *f)
{
    fputs("{\"arena\":", f);
    json_string(f, a->name);
    fprintf(f, ",\"total_pages\":%zu,\"free_pages\":%zu,\"allocated_pages\":%zu,"
               "\"room_pages\":%zu,\"reserve_pages\":%zu,\"highatomic_pages\":%zu,\"deferred_pages\":%zu,"
               "\"void_pages\":%zu,\"committed_bytes\":%zu,\"resident_bytes\":%zu,\"metadata_bytes\":%zu,"
               "\"metadata_resident_bytes\":%zu,\"huge_pages\":\"%s\","
               "\"rooms\":%zu,\"max_order\":%u,"
               "\"watermarks\":{\"min\":%zu,\"low\":%zu,\"high\":%zu},\"free_blocks\":[",
            s->total_pages, s->free_pages, s->allocated_pages, s->room_pages, s->reserve_pages,
            s->highatomic_pages, s->deferred_pages, s->void_pages, s->committed_bytes, s->resident_bytes, s->metadata_bytes,
            s->metadata_resident_bytes, huge_names[s->huge_mode], s->nr_rooms, s->max_order,
            s->wmark_min, s->wmark_low, s->wmark_high);
    for (unsigned o = 0; o <= s->max_order; o++)
        fprintf(f, "%s%zu", o ? "," : "", s->free_blocks[o]);
    fputc(']', f);
    json_u64_array(f, "alloc_by_step", s->alloc_by_step, LAB_STEP_COUNT, lab_strstep);
    json_u64_array(f, "fail_by_reason", s->fail_by_reason, LAB_R_COUNT, lab_strreason);
    json_u64_array(f, "fail_by_class", s->fail_by_class, LAB_CLASS_COUNT, class_name);
    fprintf(f, ",\"frees\":%llu,\"misuse\":%llu,\"shrinker_runs\":%llu,\"shrinker_pages\":%llu,"
               "\"kswapd_wakes\":%llu,\"kswapd_runs\":%llu,\"waits\":%llu,\"trimmed_pages\":%llu,"
               "\"recommitted_pages\":%llu,\"rooms_drained_pages\":%llu,\"trim_off\":\"%s\",\"trim_refused\":%llu}\n",
            (unsigned long long)s->frees, (unsigned long long)s->misuse, (unsigned long long)s->shrinker_runs,
            (unsigned long long)s->shrinker_pages, (unsigned long long)s->kswapd_wakes,
            (unsigned long long)s->kswapd_runs, (unsigned long long)s->waits,
            (unsigned long long)s->trimmed_pages, (unsigned long long)s->recommitted_pages,
            (unsigned long long)s->rooms_drained_pages, trim_off_names[s->trim_off],
            (unsigned long long)s->trim_refused);
    return fflush(f) != 0 || ferror(f) ? -1 : 0;   /* a buffered write fails at the flush */
}

/* LAB_API here, not only at the declaration: internal.h makes this file
 * freestanding, so the header's stdio part (the declaration) is not seen,
 * and the library hides every symbol not marked. */
LAB_API int lab_stats_print(lab_arena *a, FILE *f, int format)
{
    if (!a || !f)
        return -1;
    lab_stats s;
    lab_stats_get(a, &s);
    return format == LAB_STATS_JSON ? print_json(a, &s, f) : print_text(a, &s, f);
}
