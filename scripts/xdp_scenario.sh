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
[[ $("$TOOL" xdp 2>&1) == *"without libxdp"* ]] && skip "$TOOL was built without libxdp (install libxdp-dev libbpf-dev)"
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
SEND_PPS=        # the sender's pace (empty: as fast as it can)
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
        --packets "$packets" --seconds "$seconds" ${SEND_PPS:+--pps "$SEND_PPS"} >"$WORK/$name.sent" &
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
    PACED=${XDP_PACED_PPS:-50000}
    read -r -a CPUS < <(taskset -pc $$ | sed 's/.*: //; s/,/ /g; s/-/ /')
    if [[ ${#CPUS[@]} -ge 2 ]]; then
        RX_CPU=${XDP_RX_CPU:-${CPUS[0]}}
        TX_CPU=${XDP_TX_CPU:-${CPUS[1]}}
    fi
    # V[metric,pass,pool,workers,round]; pass "max": the sender as fast as it
    # can; pass "paced": at $PACED packets per second, the same load for both
    declare -A V
    for ((r = 1; r <= ROUNDS; r++)); do
        for w in 1 2; do
            for pass in max paced; do
                [[ $pass == paced ]] && SEND_PPS=$PACED || SEND_PPS=
                for pool in stack labyrinth; do
                    run_once "b$r$pass$pool$w" 20000000 3 "$TOOL" xdp --ifname vxr --workers "$w" --pool "$pool" --quiet
                    rc=$?
                    [[ $rc -eq 77 ]] && exit 77
                    [[ $rc -eq 0 ]] || { echo "xdp bench: $pool $w worker(s) failed" >&2; exit 1; }
                    secs=$(field "$SENT" seconds)
                    recv=$(field "$RESULT" received)
                    [[ -n "$secs" && -n "$recv" ]] ||
                        { echo "xdp bench: $pool $w worker(s): no sender or receiver figures" >&2; exit 1; }
                    k="$pass,$pool,$w,$r"
                    V[pps,$k]=$(awk -v n="$recv" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
                    V[cpu,$k]=$(field "$RESULT" cpu_ns_per_pkt)
                    V[fill,$k]=$(field "$RESULT" fill_ring_empty)
                    V[short,$k]=$(field "$RESULT" frames_short)
                    V[sys,$k]=$(field "$RESULT" alloc_syscalls)
                    V[refill,$k]=$(field "$RESULT" refill_p50_ns)
                    V[drop,$k]=$(($(field "$SENT" sent) - recv))
                done
            done
        done
    done
    SEND_PPS=
    med() { sort -n | awk '{ v[NR] = $1 } END { printf "%s [%s..%s]", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
    # col METRIC PASS POOL W: median and range over the rounds
    col() { for ((r = 1; r <= ROUNDS; r++)); do echo "${V[$1,$2,$3,$4,$r]}"; done | med; }
    # ratio METRIC PASS POOL W: POOL / stack within each round, median and range
    ratio() {
        for ((r = 1; r <= ROUNDS; r++)); do
            awk -v a="${V[$1,$2,$3,$4,$r]}" -v b="${V[$1,$2,stack,$4,$r]}" 'BEGIN { printf "%.3f\n", a / b }'
        done | med
    }
    echo "XDP receive: AF_XDP generic mode on a veth pair, 4 KiB frames, receiver on CPU ${RX_CPU:-any},"
    echo "sender on CPU ${TX_CPU:-any}; median of $ROUNDS rounds [min..max]; x stack: the ratio within each round"
    echo
    echo "  the sender as fast as it can, 3 s"
    printf "  %-8s %-10s %-26s %-22s %-24s %-12s %-12s %s\n" workers pool "received pps" "x stack" "fill-ring-empty" \
        "alloc short" "RX syscalls" "refill p50 ns"
    for w in 1 2; do
        for pool in stack labyrinth; do
            printf "  %-8s %-10s %-26s %-22s %-24s %-12s %-12s %s\n" "$w" "$pool" "$(col pps max $pool $w)" \
                "$(ratio pps max $pool $w)" "$(col fill max $pool $w)" "$(col short max $pool $w)" \
                "$(col sys max $pool $w)" "$(col refill max $pool $w)"
        done
    done
    echo
    echo "  the sender paced at $PACED packets/s, 3 s: the same load for both pools"
    printf "  %-8s %-10s %-26s %-22s %-22s %s\n" workers pool "CPU ns/packet" "x stack" "not received" "fill-ring-empty"
    for w in 1 2; do
        for pool in stack labyrinth; do
            printf "  %-8s %-10s %-26s %-22s %-22s %s\n" "$w" "$pool" "$(col cpu paced $pool $w)" \
                "$(ratio cpu paced $pool $w)" "$(col drop paced $pool $w)" "$(col fill paced $pool $w)"
        done
    done
    echo
    echo "  received pps: received / the sender's seconds; fill-ring-empty: the kernel's"
    echo "  rx_fill_ring_empty_descs; alloc short: fill-ring slots a refill asked the allocator for and"
    echo "  did not get; RX syscalls: the RX thread's system calls other than its socket kicks, counted"
    echo "  by a seccomp filter (the allocator's, or the stack mutex's futex); CPU ns/packet: the"
    echo "  receiver process's CPU time, all threads, per received packet; not received: sent - received;"
    echo "  refill p50: one bulk call of up to 64 frames on the RX thread, timed with the TSC."
    ;;
*)
    echo "usage: $0 test|demo|bench TOOL [...]" >&2
    exit 2
    ;;
esac
