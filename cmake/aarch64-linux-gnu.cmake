# Cross-compile for aarch64 Linux with Debian's gcc-aarch64-linux-gnu and
# libc6-dev-arm64-cross, and run the target's programs (the tests, through
# ctest) under qemu-user:
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#   cmake --build build-aarch64 -j2 && (cd build-aarch64 && ctest)
# `make test-aarch64` does this (scripts/test-aarch64.sh).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(LAB_CROSS_TRIPLE aarch64-linux-gnu)
set(LAB_CROSS_SYSROOT /usr/${LAB_CROSS_TRIPLE})   # where libc6-dev-arm64-cross puts it
set(CMAKE_C_COMPILER ${LAB_CROSS_TRIPLE}-gcc)

# Libraries and headers come from the target's tree only (a host library
# must never satisfy a find_*); programs (bash, valgrind, ...) from the host.
set(CMAKE_FIND_ROOT_PATH ${LAB_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest runs every test executable through this.  -L: the target's dynamic
# loader and libc.
find_program(LAB_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(LAB_QEMU_AARCH64)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${LAB_QEMU_AARCH64} -L ${LAB_CROSS_SYSROOT})
endif()
