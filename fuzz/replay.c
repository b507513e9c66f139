/*
 * replay.c - runs fuzz_api.c's harness over files without libFuzzer, so
 * that every test tree (gcc, the sanitizers, coverage) replays the corpus:
 *   fuzz_replay DIR_OR_FILE...
 * Each input is run once, in name order; a violation in the model traps
 * (the harness's own check), which fails the test.  Prints how many inputs
 * ran, and at exit (the harness's report) for how many of their requests
 * the model knew the outcome beforehand.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    /* a private copy of exactly n bytes: ASan sees a read past the input */
    uint8_t *data = malloc(n ? n : 1);
    if (!data)
        return -1;
    memcpy(data, buf, n);
    fprintf(stderr, "replay %s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(data, n);
    free(data);
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    unsigned ran = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 2;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) != 0)
                return 2;
            ran++;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[i], &names, NULL, by_name);
        if (n < 0) {
            perror(argv[i]);
            return 2;
        }
        for (int k = 0; k < n; k++) {
            if (names[k]->d_name[0] != '.') {
                char path[4096];
                snprintf(path, sizeof(path), "%s/%s", argv[i], names[k]->d_name);
                if (run_file(path) != 0)
                    return 2;
                ran++;
            }
            free(names[k]);
        }
        free(names);
    }
    fprintf(stderr, "replayed %u inputs, no violation\n", ran);
    return ran ? 0 : 2;
}
