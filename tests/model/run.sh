#!/usr/bin/env bash
# Model-check the allocator's lock-free protocols with spin.  Every model
# must verify with no error (assertions and invalid end states: no block
# lost or duplicated, no context stuck), and every mutant (a model with a
# key step removed, or with the reordering the memory orders forbid) must
# fail, which shows that the model can see the defect it is there for.
#   tests/model/run.sh            all models
# Exit 77 (skipped) when spin is not installed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if ! command -v spin >/dev/null 2>&1; then
    echo "SKIP: spin is not installed (Debian package spin; scripts/deps.sh installs it)"
    exit 77
fi
CC=${CC:-cc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

# verify MODEL EXPECT [spin -D options]; EXPECT is pass or fail
verify() {
    local model=$1 expect=$2
    shift 2
    local what="$model${*:+ $*}"
    rm -f "$work"/pan "$work"/pan.*
    if ! (cd "$work" && spin "$@" -a "$here/$model" >spin.log 2>&1 && "$CC" -O2 -DSAFETY -o pan pan.c >cc.log 2>&1); then
        echo "FAIL  $what: spin or the compiler failed"
        cat "$work"/spin.log "$work"/cc.log 2>/dev/null | head -20
        failed=1
        return
    fi
    local out errors states
    out=$(cd "$work" && timeout 300 ./pan -n 2>&1)
    errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' <<<"$out" | head -1)
    states=$(sed -n 's/^ *\([0-9][0-9.e+]*\) states, stored.*/\1/p' <<<"$out" | head -1)
    if [[ $expect == pass ]] && grep -q 'Search not completed' <<<"$out"; then
        echo "FAIL  $what: the search did not complete (memory or depth limit)"
        failed=1
    elif [[ -z $errors ]]; then
        echo "FAIL  $what: no verdict from pan"
        echo "$out" | tail -20
        failed=1
    elif [[ $expect == pass && $errors == 0 ]]; then
        echo "ok    $what: verified, $states states"
    elif [[ $expect == fail && $errors != 0 ]]; then
        echo "ok    $what: the mutant fails as it must ($(grep -m1 -E 'assertion violated|invalid end state' <<<"$out" | sed 's/^pan:[0-9]*: //'))"
    else
        echo "FAIL  $what: expected to $expect, pan reports $errors error(s)"
        echo "$out" | grep -E 'assertion violated|invalid end state' | head -3
        failed=1
    fi
}

verify deferred_unlock.pml pass
verify deferred_unlock.pml fail -DNO_RECHECK
verify deferred_unlock.pml fail -DNO_LOOK
verify deferred_unlock.pml fail -DREORDER

verify remote_destroy.pml pass
verify remote_destroy.pml fail -DNO_DEAD_CHECK
verify remote_destroy.pml fail -DREORDER
verify remote_destroy.pml fail -DDESTROY_GIVES_UP
verify remote_destroy.pml fail -DSTEAL_NO_FLAG
verify remote_destroy.pml fail -DSTEAL_NO_SKIP
verify remote_destroy.pml fail -DSTEAL_TAIL_UNHELD

verify lane_destroy.pml pass
verify lane_destroy.pml fail -DNO_WAIT
verify lane_destroy.pml fail -DNO_DEAD_CHECK
verify lane_destroy.pml fail -DREORDER

verify return_ring.pml pass
verify return_ring.pml fail -DNO_SEQ_CHECK
verify return_ring.pml fail -DBULK_FIRST_ONLY
verify return_ring.pml fail -DFREE_BEFORE_READ
verify return_ring.pml fail -DHANDLER_WAITS

verify room_steal.pml pass
verify room_steal.pml fail -DTAKE_TOP
verify room_steal.pml fail -DWRITE_N
verify room_steal.pml fail -DNO_COMPACT
verify room_steal.pml fail -DCOMPACT_WHILE_STEAL
verify room_steal.pml fail -DNO_SEQ_CHECK
verify room_steal.pml fail -DNO_GATE_RECHECK
verify room_steal.pml fail -DUNSIGNED_TOP

exit $failed
