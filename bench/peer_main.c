/*
 * peer_main.c - main() of every bench-peer-<name> executable.
 *
 * Runs one round of the workloads the driver asks for (its command line is
 * struct bench_params, see bench_params_to_argv) against the one backend
 * linked in, and prints one line per number:
 *   INFO version <v>
 *   RESULT <metric> <value>      RESULTSTR <metric> <text>
 *   UNAVAILABLE <reason>         (the peer could not start; exit status 3)
 */
#include "bench.h"

#include <stdlib.h>
#include <unistd.h>

extern const struct backend peer_backend;

int main(int argc, char **argv)
{
    struct bench_params bp;
    bench_params_default(&bp);
    if (bench_params_parse(&bp, argc, argv) != 0) {
        printf("UNAVAILABLE bad arguments\n");
        return 2;
    }
    alarm(300);   /* a hung peer must not hang the driver */
    char why[256] = "";
    if (peer_backend.init(why, sizeof(why)) != 0) {
        printf("UNAVAILABLE %s\n", why[0] ? why : "initialisation failed");
        fflush(stdout);
        return 3;
    }
    char ver[64];
    peer_backend.version(ver, sizeof(ver));
    printf("INFO version %s\n", ver);
    fflush(stdout);
    if (bp.tsc_per_ns <= 0)
        bp.tsc_per_ns = tsc_calibrate(60);
    peer_backend.run(&bp, &stdout_sink);
    printf("DONE\n");
    fflush(stdout);
    /* _exit: nothing to clean up, and no allocator or EAL teardown to time */
    _exit(0);
}
