# valgrind_check.cmake - run one program under memcheck and judge its report.
#   cmake -DVALGRIND=<valgrind> -DPROG=<program> -DEXPECT=errors|clean -P valgrind_check.cmake
# EXPECT=errors (tests/progs/uaf_valgrind.c): memcheck must exit with the
#   error exit code and report an invalid write and read of a freed page and
#   exactly one leaked page ("definitely lost: 4,096 bytes in 1 blocks").
# EXPECT=clean (tests/progs/clean_valgrind.c): exit 0, "ERROR SUMMARY: 0
#   errors", and no leak.
foreach(var VALGRIND PROG EXPECT)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "valgrind_check.cmake: -D${var}=... is required")
    endif()
endforeach()

execute_process(
    COMMAND ${VALGRIND} --error-exitcode=42 --leak-check=full ${PROG}
    RESULT_VARIABLE rc
    OUTPUT_VARIABLE out
    ERROR_VARIABLE  err)
message("${out}${err}")
message("valgrind exit code: ${rc}")

set(problems "")
macro(expect_match regex what)
    if(NOT err MATCHES "${regex}")
        string(APPEND problems "\n  memcheck did not report ${what} (no match for '${regex}')")
    endif()
endmacro()

if(EXPECT STREQUAL "errors")
    if(NOT rc EQUAL 42)
        string(APPEND problems "\n  expected valgrind's error exit code 42, got '${rc}'")
    endif()
    expect_match("Invalid write of size [0-9]+" "the write to a freed page")
    expect_match("Invalid read of size [0-9]+" "the read of a freed page")
    expect_match("inside a block of size 4,096 free'd" "that the address is in a freed Labyrinth page")
    expect_match("definitely lost: 4,096 bytes in 1 blocks" "exactly the one leaked page as definitely lost")
elseif(EXPECT STREQUAL "clean")
    if(NOT rc EQUAL 0)
        string(APPEND problems "\n  expected exit code 0, got '${rc}'")
    endif()
    expect_match("ERROR SUMMARY: 0 errors" "0 errors")
    if(err MATCHES "definitely lost: [1-9]" OR err MATCHES "Invalid (read|write)")
        string(APPEND problems "\n  memcheck reported an error or a leak in the clean program")
    endif()
else()
    message(FATAL_ERROR "valgrind_check.cmake: EXPECT must be 'errors' or 'clean' (got '${EXPECT}')")
endif()

if(problems)
    message(FATAL_ERROR "valgrind_check: ${PROG}:${problems}")
endif()
message("valgrind_check: ${PROG}: as expected (${EXPECT})")
