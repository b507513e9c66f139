#!/usr/bin/env bash
# demo-baremetal.sh: build the bare-metal kernel (baremetal/Makefile: the
# core, the bare-metal port and baremetal/demo.c) into build-baremetal/ and
# boot it under qemu-system-x86_64 with TCG (no KVM needed).  Its report
# comes over the serial port to stdout and to demo.log in the build tree.
# The kernel leaves through isa-debug-exit, which makes qemu exit with
# (value << 1) | 1: 33 is the kernel's success, 35 its failure.  This script
# exits 0 only on 33; 1 on a failure, a timeout or a reset; 77 (skipped)
# when qemu or the compiler cannot be installed here.
#   LAB_BAREMETAL_DEBUG=1       the core's debug build (assertions, room
#                               ownership checks, poisoning, periodic
#                               lab_check) and an arena with
#                               LAB_ARENA_PROTECT_FREE, in build-baremetal-debug/
#   LAB_BAREMETAL_FAULT=NAME    make the kernel commit a fault and succeed
#                               only if it is caught: lose-page (a received
#                               page never freed: the end-of-run checks
#                               fail) or touch-void (a read of a page the
#                               core decommitted: a page fault)
#   LAB_BAREMETAL_TIMEOUT=120   seconds before qemu is stopped
#   LAB_BAREMETAL_MEMORY=64M    the machine's RAM (the arena takes most of it)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

if ! scripts/need.sh baremetal; then
    echo "demo-baremetal: skipped: qemu-system-x86_64 (Debian package qemu-system-x86)" \
         "or the compiler is missing and could not be installed" >&2
    exit 77
fi

out=build-baremetal
flags=()
if [[ ${LAB_BAREMETAL_DEBUG:-0} == 1 ]]; then
    out=build-baremetal-debug
    flags=(BM_CFLAGS=-DLAB_DEBUG=1)
fi
make -s -C baremetal OUT="../$out" "${flags[@]}" ||
    { echo "demo-baremetal: the kernel did not build" >&2; exit 1; }

kernel=$out/labyrinth-baremetal.elf
cmd=(qemu-system-x86_64 -accel tcg -m "${LAB_BAREMETAL_MEMORY:-64M}" -kernel "$kernel"
     -display none -monitor none -serial stdio -no-reboot
     -device isa-debug-exit,iobase=0xf4,iosize=0x04)
fault=${LAB_BAREMETAL_FAULT:-}
case $fault in
'') ;;
lose-page)  caught="FAIL: not every page came home" ;;
touch-void) caught="decommitted (plat_decommit)" ;;
*) echo "demo-baremetal: LAB_BAREMETAL_FAULT is lose-page or touch-void, not $fault" >&2; exit 1 ;;
esac
[[ -n $fault ]] && cmd+=(-append "$fault")
echo "demo-baremetal: ${cmd[*]}"
start=$(date +%s%N)
# stdin is not a terminal, so qemu leaves the terminal's modes alone.
timeout --kill-after=10 "${LAB_BAREMETAL_TIMEOUT:-120}" "${cmd[@]}" </dev/null |
    tee "$out/demo.log"
rc=${PIPESTATUS[0]}
ms=$(( ($(date +%s%N) - start) / 1000000 ))

if [[ -n $fault ]]; then
    if [[ $rc -eq 35 ]] && grep -qF "$caught" "$out/demo.log"; then
        echo "demo-baremetal: the $fault fault was caught (\"$caught\", qemu status 35)"
        exit 0
    fi
    echo "demo-baremetal: the $fault fault was not caught (qemu status $rc)" >&2
    exit 1
fi
case $rc in
33) echo "demo-baremetal: success (qemu status 33) in $((ms / 1000)).$(printf %03d $((ms % 1000))) s"; exit 0 ;;
35) echo "demo-baremetal: the kernel reported a failure (qemu status 35)" >&2 ;;
124|137) echo "demo-baremetal: timed out after ${LAB_BAREMETAL_TIMEOUT:-120} s" >&2 ;;
0)  echo "demo-baremetal: the machine reset without reporting (a triple fault?)" >&2 ;;
*)  echo "demo-baremetal: qemu exited with status $rc" >&2 ;;
esac
exit 1
