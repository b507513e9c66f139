#!/usr/bin/env bash
# demo_options_test.sh LABYRINTH
#
# `labyrinth demo` refuses each bad option with status 2 and a line that
# names the option (a value it took as a number by its first digits, or as
# zero, ran a different demo than asked); the pause between interrupts
# takes whole seconds; a large arena's cache empties at the end at once.
set -euo pipefail
tool=${1:?usage: demo_options_test.sh LABYRINTH}
fail() { printf 'demo_options_test: FAIL: %s\n' "$*" >&2; exit 1; }

refused() {  # refused OPTION ARGS...: status 2, first line names OPTION
    local name=$1 out rc=0
    shift
    out=$("$tool" demo --quiet "$@" 2>&1) || rc=$?
    printf '[%s] status %d: %s\n' "$*" "$rc" "${out%%$'\n'*}"
    [[ $rc == 2 ]] || fail "demo $*: status $rc, not 2"
    [[ ${out%%$'\n'*} == "labyrinth demo: $name"* ]] || fail "demo $*: the first line does not name $name"
}

refused --burst --burst abc
refused --burst --burst 16abc
refused --burst --burst 0
refused --burst --burst 257
refused --burst --burst -1
refused --workers --workers 0
refused --workers --workers 65
refused --seconds --seconds abc
refused --seconds --seconds -5
refused --seconds --seconds 0
refused --arena-mib --arena-mib 0
refused --irq-gap-ns --irq-gap-ns -1
refused --bg-max-order --bg-max-order -1
refused --bg-max-order --bg-max-order 4294967295
refused --bg-max-order --bg-max-order 11 --arena-mib 16
refused --alloc --alloc foo
refused --bogus --bogus 1
refused --burst --burst
refused stray stray

# a pause of a second or more between interrupts is a pause
out=$("$tool" demo --quiet --seconds 0.3 --arena-mib 16 --irq-gap-ns 1000000000)
irqs=$(sed -n 's/^RX interrupts *\([0-9]*\).*/\1/p' <<<"$out")
printf 'irq gap 1 s over 0.3 s: %s interrupts\n' "$irqs"
[[ -n $irqs && $irqs -le 2 ]] || fail "--irq-gap-ns 1000000000: $irqs interrupts in 0.3 s"

# the header says the duration asked for, fractions included
grep -q ', 0.3 s$' <<<"$(head -1 <<<"$out")" || fail "the header does not say 0.3 s: $(head -1 <<<"$out")"
printf 'demo_options_test: ok\n'
