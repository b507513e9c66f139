# cmake -DREADME=<README.md> -DSOURCE=<basic.c> -P readme_matches.cmake
# The README shows examples/basic.c in its one ```c block; this keeps the
# two the same, so the README's example is the program the tests build and
# run.
cmake_minimum_required(VERSION 3.25)
file(READ "${README}" readme)
string(FIND "${readme}" "\n```c\n" begin)
if(begin EQUAL -1)
    message(FATAL_ERROR "${README}: no ```c block")
endif()
math(EXPR begin "${begin} + 6")
string(SUBSTRING "${readme}" ${begin} -1 rest)
string(FIND "${rest}" "\n```\n" end)
math(EXPR end "${end} + 1")
string(SUBSTRING "${rest}" 0 ${end} shown)
file(READ "${SOURCE}" source)
if(NOT shown STREQUAL source)
    message(FATAL_ERROR "the README's example differs from ${SOURCE}: copy the file into the README")
endif()
