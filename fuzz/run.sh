#!/usr/bin/env bash
# Build the libFuzzer harness fuzz/fuzz_api.c against the sources and run it.
#   fuzz/run.sh [seconds]          default 60
#
# Two builds of the library share the time (half each) and one corpus:
#   debug    clang -fsanitize=fuzzer,address,undefined -DLAB_DEBUG=1: ASan,
#            internal assertions, a lab_check every few operations, poisoning
#            on every arena (the harness always sets a misuse handler, so
#            misuse does not abort)
#   release  clang -fsanitize=fuzzer,undefined, no LAB_DEBUG: the owner fast
#            paths of rooms, which LAB_DEBUG compiles out and ASan's page hooks
#            bypass, are only fuzzed here
# FUZZ_BUILDS="debug" (or "release") runs one build only, with all the time.
#
# The committed seeds (fuzz/corpus) are copied to build-fuzz/corpus, which the
# runs grow; the seeds themselves are never written.  Crashes are saved under
# build-fuzz/artifacts/.  Exits non-zero when the fuzzer finds a crash.
# Reproduce one: build-fuzz/fuzz_api_debug build-fuzz/artifacts/crash-<sha1>
# (or fuzz_api_release, whichever found it: see the message at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TO_RUN="${1:-60}"
BUILDS="${FUZZ_BUILDS:-debug release}"
OUT=build-fuzz
CC="${CC_FUZZ:-clang}"
mkdir -p "$OUT/corpus" "$OUT/artifacts"

# -fno-sanitize-recover: a UBSan report is a crash libFuzzer sees, not a line
# on stderr.  The ignorelist keeps the byte-by-byte poison check and the
# mincore count out of the coverage hooks (see the file).
COMMON=(-g -O1 -fno-sanitize-recover=undefined -fsanitize-coverage-ignorelist=fuzz/coverage-ignore.txt
        -Iinclude -Isrc/core -D_GNU_SOURCE)
for b in $BUILDS; do
    case $b in
    debug)   flags=(-fsanitize=fuzzer,address,undefined -DLAB_DEBUG=1) ;;
    release) flags=(-fsanitize=fuzzer,undefined) ;;
    *) echo "fuzz/run.sh: unknown build '$b' (debug, release)" >&2; exit 2 ;;
    esac
    "$CC" "${COMMON[@]}" "${flags[@]}" src/core/*.c src/platform/linux/*.c src/hosted/*.c fuzz/fuzz_api.c -lpthread -o "$OUT/fuzz_api_$b"
done

cp -n fuzz/corpus/* "$OUT/corpus/" 2>/dev/null || true

nbuilds=$(wc -w <<<"$BUILDS")
share=$(( SECONDS_TO_RUN / nbuilds ))
[ "$share" -ge 1 ] || share=1
total_execs=0
summary=""
for b in $BUILDS; do
    LOG="$OUT/fuzz-$b.log"
    echo "fuzz: $b build, ${share}s"
    set +e
    "$OUT/fuzz_api_$b" "$OUT/corpus" \
        -max_len=4096 -max_total_time="$share" -timeout=30 \
        -print_final_stats=1 -artifact_prefix="$OUT/artifacts/" \
        ${FUZZ_FLAGS:-} 2>&1 | tee "$LOG" |
        { grep -v -e '^#[0-9]*.*\(NEW\|REDUCE\|pulse\)' -e '^"' -e 'failed to allocate 0x' -e 'dictionary. ######' || true; }
    rc=${PIPESTATUS[0]}
    set -e

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOG" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$LOG" | tail -1)
    last=$(grep -E '^#[0-9]+.* cov: ' "$LOG" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    line="fuzz: $b: ${execs:-?} executions (${speed:-?}/s) in ${share}s, cov: ${cov:-?} ft: ${ft:-?}"
    pred=$(grep '^fuzz_api: predicted' "$LOG" | tail -1 || true)
    [ -z "$pred" ] || line+=$'\n'"  ${pred#fuzz_api: }"
    echo "$line"
    summary+="$line"$'\n'
    total_execs=$(( total_execs + ${execs:-0} ))
    if [ "$rc" -ne 0 ]; then
        echo "fuzz: the $b build found a crash (exit $rc); see $LOG and $OUT/artifacts/;" \
             "reproduce with $OUT/fuzz_api_$b $OUT/artifacts/<file>" >&2
        exit "$rc"
    fi
done
printf '%s' "$summary"
echo "fuzz: $total_execs executions in total, corpus $(ls "$OUT/corpus" | wc -l) inputs"
