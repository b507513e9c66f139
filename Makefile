# Thin wrapper around CMake.  `make` builds build/; `make test` builds and
# tests four trees (release, debug, ASan+UBSan, TSan).
#   make test LAB_TEST_BUILDS="build"        # only some trees
#   make install PREFIX=/opt/labyrinth
SHELL := /bin/bash

JOBS            ?= 2
PREFIX          ?= /usr/local
LAB_TEST_BUILDS ?= build build-debug build-asan build-tsan

CMAKE_FLAGS_build       := -DCMAKE_BUILD_TYPE=RelWithDebInfo
CMAKE_FLAGS_build-debug := -DCMAKE_BUILD_TYPE=Debug -DLAB_DEBUG=ON

.PHONY: all debug test demo bench install clean

all:
	@[ -f build/CMakeCache.txt ] || cmake -S . -B build $(CMAKE_FLAGS_build)
	cmake --build build -j$(JOBS)

debug:
	@[ -f build-debug/CMakeCache.txt ] || cmake -S . -B build-debug $(CMAKE_FLAGS_build-debug)
	cmake --build build-debug -j$(JOBS)

test:
	@LAB_TEST_BUILDS="$(LAB_TEST_BUILDS)" JOBS="$(JOBS)" scripts/test.sh

demo: all
	@[ -x build/tools/labyrinth ] || { echo "make demo: build/tools/labyrinth was not built (no tools/labyrinth.c?)" >&2; exit 1; }
	build/tools/labyrinth demo

bench: all
	@if [ -x build/bench/labyrinth-bench ]; then \
	    echo "build/bench/labyrinth-bench"; build/bench/labyrinth-bench; \
	else \
	    echo "make bench: build/bench/labyrinth-bench was not built (no bench/CMakeLists.txt yet?)"; \
	fi

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
