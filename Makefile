# Thin wrapper around CMake.  `make` builds build/; `make test` builds and
# tests five trees (release, debug, ASan+UBSan with the debug hooks, ASan+UBSan
# on the release fast paths, TSan).  Each target first
# checks for the tools it needs (scripts/need.sh) and installs what is missing
# with scripts/deps.sh when it can, so a fresh Debian machine needs only make.
#   make test LAB_TEST_BUILDS="build"        # only some trees
#   make install PREFIX=/opt/labyrinth
#   make test JOBS=2                         # parallel jobs; default: nproc
# `make test-aarch64` cross-builds for aarch64 and runs the release tests
# under qemu-user (scripts/test-aarch64.sh says what it leaves out).
SHELL := /bin/bash

JOBS            ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX          ?= /usr/local
LAB_TEST_BUILDS ?= build build-debug build-asan build-asan-fast build-tsan

CMAKE_FLAGS_build       := -DCMAKE_BUILD_TYPE=RelWithDebInfo
CMAKE_FLAGS_build-debug := -DCMAKE_BUILD_TYPE=Debug -DLAB_DEBUG=ON

.PHONY: all debug test test-aarch64 demo bench install clean

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

bench: all
	build/bench/labyrinth-bench

install: all
	cmake --install build --prefix $(PREFIX)

clean:
	rm -rf build build-*

# The libFuzzer harness fuzz/fuzz_api.c (clang): builds build-fuzz/fuzz_api and
# fuzzes for FUZZ_SECONDS on a copy of the seed corpus fuzz/corpus.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)
