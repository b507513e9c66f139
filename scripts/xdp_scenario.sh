#!/usr/bin/env bash
# The AF_XDP scenario on a veth pair between two network namespaces of its
# own: `labyrinth xdp` receives on one end (generic/SKB mode, queue 0),
# `labyrinth xdp-send` sends raw UDP frames from the other, bounded in
# packets and in time; the receiver is then stopped with SIGINT.  The
# namespaces (and with them the links and the XDP program) are deleted on
# every exit, interrupted or not.
#
#   xdp_scenario.sh test  TOOL [XDP_RX_EXAMPLE]   checks (CTest; 77 = skipped)
#   xdp_scenario.sh demo  TOOL                     one run with live output
#                   (XDP_SECONDS, XDP_PACKETS, XDP_ARGS: the receiver's options)
#   xdp_scenario.sh bench TOOL [ROUNDS]            Labyrinth vs the array stack
#
# Needs root.  Exit status 77 (skipped) when the machine refuses: not root,
# no network namespaces or veth, or the kernel refuses the AF_XDP socket (the
# receiver prints the kernel's reason).
set -uo pipefail

MODE=${1:-}
TOOL=${2:-}
[[ -n "$MODE" && -x "$TOOL" ]] || { echo "usage: $0 test|demo|bench TOOL [...]" >&2; exit 2; }
TOOL=$(readlink -f "$TOOL")

skip() { echo "SKIP: $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, a veth pair, AF_XDP)"
command -v ip >/dev/null || skip "no ip(8) (iproute2)"

NS_RX=labxdp-rx-$$
NS_TX=labxdp-tx-$$
WORK=$(mktemp -d)
RX_PID=
TX_PID=
RX_LOG=
cleanup() {
    [[ -n "$TX_PID" ]] && kill -KILL "$TX_PID" 2>/dev/null
    [[ -n "$RX_PID" ]] && kill -KILL "$RX_PID" 2>/dev/null
    ip netns del "$NS_RX" 2>/dev/null
    ip netns del "$NS_TX" 2>/dev/null
    rm -rf "$WORK"
}
# Interrupted: the receiver still stops as it always does (SIGINT), gives
# every frame back and reports; then the namespaces go.
interrupted() {
    echo "xdp_scenario: interrupted; stopping the receiver" >&2
    [[ -n "$TX_PID" ]] && kill -KILL "$TX_PID" 2>/dev/null
    if [[ -n "$RX_PID" ]]; then
        kill -INT "$RX_PID" 2>/dev/null
        local i
        for ((i = 0; i < 100; i++)); do
            kill -0 "$RX_PID" 2>/dev/null || break
            sleep 0.1
        done
        grep -v '^rx ' "$RX_LOG" >&2
    fi
    exit 130
}
trap cleanup EXIT
trap interrupted INT TERM

ip netns add "$NS_RX" 2>"$WORK/err" || skip "ip netns add: $(cat "$WORK/err")"
ip netns add "$NS_TX" 2>"$WORK/err" || skip "ip netns add: $(cat "$WORK/err")"
for ns in "$NS_RX" "$NS_TX"; do
    # no IPv6: its router and neighbour solicitations would reach the socket
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
done
ip link add vxr netns "$NS_RX" type veth peer name vxt netns "$NS_TX" 2>"$WORK/err" ||
    skip "veth pair: $(cat "$WORK/err")"
ip -n "$NS_RX" link set vxr up
ip -n "$NS_TX" link set vxt up

# CPUs for the receiver and the sender (empty: not pinned).  The bench pins
# them apart, so the sender (and the kernel's copy into the UMEM, which runs
# in its context on a veth) offers the same load to both pools.
RX_CPU=${XDP_RX_CPU:-}
TX_CPU=${XDP_TX_CPU:-}
RESULT=          # the receiver's RESULT line
SENT=            # the sender's line
# run_once NAME PACKETS SECONDS RECEIVER-ARGS...: one bounded run.  Returns
# the receiver's exit status (77: AF_XDP refused).
run_once() {
    local name=$1 packets=$2 seconds=$3
    shift 3
    local log="$WORK/$name.log"
    RX_LOG=$log
    ip netns exec "$NS_RX" ${RX_CPU:+taskset -c "$RX_CPU"} "$@" >"$log" 2>"$WORK/$name.err" &
    RX_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        grep -q "ready\|^SKIP" "$log" 2>/dev/null && break
        kill -0 "$RX_PID" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q ready "$log"; then
        kill -KILL "$RX_PID" 2>/dev/null
        wait "$RX_PID"
        local rc=$?
        grep -q "^SKIP" "$log" || rc=1
        RX_PID=
        cat "$log" "$WORK/$name.err" >&2
        return $rc
    fi
    # in the background: `wait` returns at once when a signal comes
    timeout $((${seconds%.*} + 10)) ip netns exec "$NS_TX" ${TX_CPU:+taskset -c "$TX_CPU"} "$TOOL" xdp-send --ifname vxt \
        --packets "$packets" --seconds "$seconds" >"$WORK/$name.sent" &
    TX_PID=$!
    wait "$TX_PID"
    TX_PID=
    SENT=$(cat "$WORK/$name.sent")
    sleep 0.3                       # let the last frames drain
    kill -INT "$RX_PID"
    local rc=0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$RX_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$RX_PID" 2>/dev/null; then
        echo "xdp_scenario: $name: the receiver did not stop on SIGINT" >&2
        kill -KILL "$RX_PID"
        rc=1
    fi
    wait "$RX_PID" || rc=$?
    RX_PID=
    RESULT=$(grep '^RESULT' "$log" || true)
    [[ "$MODE" == demo || $rc -ne 0 ]] && cat "$log" "$WORK/$name.err"
    return $rc
}

# field LINE KEY: the value of KEY=... in LINE
field() { sed -n "s/.*[ ]$2[= ]\([0-9.]*\).*/\1/p" <<<" $1" | head -n1; }

# check_run NAME: every packet sent is received or dropped where a counter
# says so, no frame lost, lab_check clean, no allocator system call.
check_run() {
    local name=$1 ok=0
    local sent veth recv dropped full lost chk sys
    sent=$(field "$SENT" sent); veth=$(field "$SENT" dropped_by_veth)
    recv=$(field "$RESULT" received); dropped=$(field "$RESULT" rx_dropped)
    full=$(field "$RESULT" rx_ring_full); lost=$(field "$RESULT" lost)
    chk=$(field "$RESULT" check); sys=$(field "$RESULT" alloc_syscalls)
    echo "$name: sent $sent (veth dropped $veth), received $recv, socket dropped $((dropped + full)) (fill ring empty or other $dropped, rx ring full $full), frames lost $lost, lab_check $chk, allocator (or its lock) syscalls on RX $sys"
    [[ -n "$recv" && "$recv" -gt 0 ]] || { echo "  FAIL: nothing received"; ok=1; }
    [[ "$lost" == 0 && "$chk" == 0 ]] || { echo "  FAIL: frames lost or lab_check"; ok=1; }
    if [[ $(field "$RESULT" stack) == 1 ]]; then
        echo "  (array stack: its mutex's futex calls are the baseline's own; not judged)"
    elif [[ $(field "$RESULT" debug) == 1 ]]; then
        echo "  (debug build: its periodic full checks make system calls; not judged)"
    elif [[ "$sys" != 0 ]]; then
        echo "  FAIL: the RX thread made system calls besides its kicks"
        ok=1
    fi
    if (( sent - veth != recv + dropped + full )); then
        echo "  FAIL: sent - veth drops ($((sent - veth))) != received + socket drops ($((recv + dropped + full)))"
        ok=1
    fi
    return $ok
}

case "$MODE" in
test)
    EXAMPLE=${3:-}
    fail=0
    run_once lab "200000" 3 "$TOOL" xdp --ifname vxr --workers 2 --background --quiet
    rc=$?
    [[ $rc -eq 77 ]] && exit 77
    [[ $rc -eq 0 ]] || { echo "labyrinth run failed ($rc)"; fail=1; }
    check_run "labyrinth, 2 workers, background job" || fail=1
    run_once stack "100000" 2 "$TOOL" xdp --ifname vxr --workers 1 --pool stack --quiet
    [[ $? -eq 0 ]] || { echo "array-stack run failed"; fail=1; }
    check_run "array stack, 1 worker" || fail=1
    if [[ -n "$EXAMPLE" ]]; then
        run_once example "50000" 2 "$(readlink -f "$EXAMPLE")" vxr 0 0 2
        rc=$?
        tail -n1 "$WORK/example.log"
        [[ $rc -eq 0 ]] || { echo "examples/xdp_rx failed ($rc)"; fail=1; }
    fi
    [[ $fail -eq 0 ]] && echo "xdp scenario: RAN and passed" || echo "xdp scenario: FAILED"
    exit $fail
    ;;
demo)
    # shellcheck disable=SC2086 # XDP_ARGS: receiver options, word-split on purpose
    run_once demo "${XDP_PACKETS:-3000000}" "${XDP_SECONDS:-10}" "$TOOL" xdp --ifname vxr ${XDP_ARGS:---workers 2 --background}
    rc=$?
    [[ $rc -eq 77 ]] && exit 77
    check_run demo || rc=1
    exit $rc
    ;;
bench)
    ROUNDS=${3:-3}
    read -r -a CPUS < <(taskset -pc $$ | sed 's/.*: //; s/,/ /g; s/-/ /')
    if [[ ${#CPUS[@]} -ge 2 ]]; then
        RX_CPU=${XDP_RX_CPU:-${CPUS[0]}}
        TX_CPU=${XDP_TX_CPU:-${CPUS[1]}}
    fi
    declare -A PPS FILLE SHORT SYS CPU
    for ((r = 1; r <= ROUNDS; r++)); do
        for w in 1 2; do
            for pool in stack labyrinth; do
                run_once "b$r$pool$w" 20000000 3 "$TOOL" xdp --ifname vxr --workers "$w" --pool "$pool" --quiet
                rc=$?
                [[ $rc -eq 77 ]] && exit 77
                [[ $rc -eq 0 ]] || { echo "xdp bench: $pool $w worker(s) failed" >&2; exit 1; }
                secs=$(field "$SENT" seconds)
                [[ -n "$secs" && -n "$(field "$RESULT" received)" ]] ||
                    { echo "xdp bench: $pool $w worker(s): no sender or receiver figures" >&2; exit 1; }
                CPU[$pool,$w,$r]=$(field "$RESULT" cpu_ns_per_pkt)
                PPS[$pool,$w,$r]=$(awk -v n="$(field "$RESULT" received)" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
                FILLE[$pool,$w,$r]=$(field "$RESULT" fill_ring_empty)
                SHORT[$pool,$w,$r]=$(field "$RESULT" frames_short)
                SYS[$pool,$w,$r]=$(field "$RESULT" alloc_syscalls)
            done
        done
    done
    echo "XDP receive (AF_XDP generic mode on a veth pair, 4 KiB frames; receiver on CPU ${RX_CPU:-any}, sender on CPU ${TX_CPU:-any};"
    echo "median of $ROUNDS rounds, [min..max])"
    printf "  %-8s %-10s %-24s %-20s %-20s %-20s %-22s %-12s %s\n" workers pool "received pps" "x array stack" \
        "CPU ns/packet" "x array stack" "fill-ring-empty" "alloc short" "RX syscalls"
    med() { sort -n | awk '{ v[NR] = $1 } END { printf "%s [%s..%s]", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
    for w in 1 2; do
        for pool in stack labyrinth; do
            p=$(for ((r = 1; r <= ROUNDS; r++)); do echo "${PPS[$pool,$w,$r]}"; done | med)
            x=$(for ((r = 1; r <= ROUNDS; r++)); do
                awk -v a="${PPS[$pool,$w,$r]}" -v b="${PPS[stack,$w,$r]}" 'BEGIN { printf "%.3f\n", a / b }'
            done | med)
            f=$(for ((r = 1; r <= ROUNDS; r++)); do echo "${FILLE[$pool,$w,$r]}"; done | med)
            s=$(for ((r = 1; r <= ROUNDS; r++)); do echo "${SHORT[$pool,$w,$r]}"; done | med)
            c=$(for ((r = 1; r <= ROUNDS; r++)); do echo "${SYS[$pool,$w,$r]}"; done | med)
            u=$(for ((r = 1; r <= ROUNDS; r++)); do echo "${CPU[$pool,$w,$r]}"; done | med)
            ux=$(for ((r = 1; r <= ROUNDS; r++)); do
                awk -v a="${CPU[$pool,$w,$r]}" -v b="${CPU[stack,$w,$r]}" 'BEGIN { printf "%.3f\n", a / b }'
            done | med)
            printf "  %-8s %-10s %-24s %-20s %-20s %-20s %-22s %-12s %s\n" "$w" "$pool" "$p" "$x" "$u" "$ux" "$f" "$s" "$c"
        done
    done
    echo "  (x array stack: the ratio within each round, then its median; CPU ns/packet: the receiver"
    echo "   process's CPU time (all threads) per received packet; fill-ring-empty: the kernel's"
    echo "   rx_fill_ring_empty_descs; alloc short: frames a refill asked for and did not get; RX syscalls:"
    echo "   the RX thread's system calls other than its socket kicks, counted by a seccomp filter: the"
    echo "   allocator's, or the stack's mutex (futex)).  Each round runs the pools back to back; the"
    echo "   sender sends for 3 s as fast as it can, the receiver's drops are the kernel's counters."
    ;;
*)
    echo "usage: $0 test|demo|bench TOOL [...]" >&2
    exit 2
    ;;
esac
