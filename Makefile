# Thin wrapper around CMake.  `make` builds build/; `make test` builds and
# tests five trees (release, debug, ASan+UBSan with the debug hooks, ASan+UBSan
# on the release fast paths, TSan).  Each target first
# checks for the tools it needs (scripts/need.sh) and installs what is missing
# with scripts/deps.sh when it can, so a fresh Debian machine needs only make.
#   make test LAB_TEST_BUILDS="build"        # only some trees
#   make install                             # into the prefix build/ was configured
#                                            # with (CMAKE_INSTALL_PREFIX, /usr/local)
#   make install PREFIX=/opt/labyrinth       # into another prefix
#   (as root without DESTDIR, make install then runs ldconfig)
#   make uninstall                           # removes what the last make install
#                                            # wrote (build/install_manifest.txt)
#   make test JOBS=2                         # parallel jobs; default: nproc
# `make test-aarch64` cross-builds for aarch64 and runs the release tests
# under qemu-user (scripts/test-aarch64.sh says what it leaves out).
# `make demo-baremetal` boots the core on a bare x86-64 machine under qemu.
SHELL := /bin/bash

JOBS            ?= $(shell nproc 2>/dev/null || echo 2)
LAB_TEST_BUILDS ?= build build-debug build-asan build-asan-fast build-tsan

CMAKE_FLAGS_build       := -DCMAKE_BUILD_TYPE=RelWithDebInfo
CMAKE_FLAGS_build-debug := -DCMAKE_BUILD_TYPE=Debug -DLAB_DEBUG=ON

.PHONY: all debug test test-aarch64 demo demo-xdp demo-baremetal bench install uninstall clean coverage mutate mutate-quick

all:
	@scripts/need.sh build
	@[ -f build/CMakeCache.txt ] || cmake -S . -B build $(CMAKE_FLAGS_build)
	cmake --build build -j$(JOBS)

debug:
	@scripts/need.sh build
	@[ -f build-debug/CMakeCache.txt ] || cmake -S . -B build-debug $(CMAKE_FLAGS_build-debug)
	cmake --build build-debug -j$(JOBS)

test:
	@scripts/need.sh test
	@LAB_TEST_BUILDS="$(LAB_TEST_BUILDS)" JOBS="$(JOBS)" scripts/test.sh

test-aarch64:
	@scripts/need.sh aarch64
	@JOBS="$(JOBS)" scripts/test-aarch64.sh

demo: all
	build/tools/labyrinth demo

# AF_XDP on a veth pair in network namespaces of its own (root): live
# receive with two workers and a background job pressing on the arena.
demo-xdp: all
	scripts/xdp_scenario.sh demo build/tools/labyrinth

# A bare-metal x86-64 kernel under qemu-system-x86_64 (TCG): a 10 kHz timer
# interrupt allocates from its own room, the main loop frees and reclaims;
# exits 0 only if every page came home (baremetal/README.md).
demo-baremetal:
	@scripts/demo-baremetal.sh

# The XDP scenario (Labyrinth against the array stack, 1 and 2 workers)
# follows the allocator benchmarks; it says why when it cannot run here.
XDP_ROUNDS ?= 3
bench: all
	build/bench/labyrinth-bench
	@echo; echo "scripts/xdp_scenario.sh bench build/tools/labyrinth $(XDP_ROUNDS)"; \
	scripts/xdp_scenario.sh bench build/tools/labyrinth $(XDP_ROUNDS) || \
	    echo "make bench: the XDP scenario did not run (status $$?; 77 = skipped, reason above)"

# --prefix only for a PREFIX given on the command line: a plain `make install`
# keeps the prefix build/ was configured with, and a PREFIX that happens to be
# in the environment (other build systems export one) does not move it.
# As root into the real tree (not a DESTDIR staging), ldconfig: without it
# the dynamic loader's cache does not know the new library, and programs
# linked to it do not start until something runs ldconfig.
LDCONFIG = $(if $(DESTDIR),,$(if $(filter 0,$(shell id -u)),ldconfig))
install: all
	cmake --install build $(if $(filter command line,$(origin PREFIX)),--prefix "$(PREFIX)")
	$(LDCONFIG)

# Removes the files the last install from build/ listed, under DESTDIR when
# one is given (as it must be to undo a staged install).
uninstall:
	DESTDIR="$(DESTDIR)" scripts/uninstall.sh build/install_manifest.txt
	$(LDCONFIG)

clean:
	rm -rf build build-*

# Line and branch coverage of src/ by the tests (gcovr), two instrumented
# trees merged; fails below LAB_COVERAGE_MIN percent of lines (default 95).
coverage:
	@JOBS="$(JOBS)" scripts/coverage.sh

# Mutation testing (scripts/mutate.py): MUTATE_SAMPLE mutants of src/ drawn
# with MUTATE_SEED, each built as the release tree and run against the unit
# tests.  mutate-quick is the small fixed sample CI runs.
MUTATE_SAMPLE ?= 60
MUTATE_SEED   ?= 1
mutate:
	scripts/mutate.py --sample $(MUTATE_SAMPLE) --seed $(MUTATE_SEED) --jobs $(JOBS)
mutate-quick:
	scripts/mutate.py --sample 12 --seed 17 --jobs $(JOBS) --min-score 60

# The libFuzzer harness fuzz/fuzz_api.c (clang): builds build-fuzz/fuzz_api and
# fuzzes for FUZZ_SECONDS on a copy of the seed corpus fuzz/corpus.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)
