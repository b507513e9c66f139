# cmake -DMAN=<man> -DPAGES="<p1>;<p2>..." -P check_render.cmake
# Renders each page as man(1) would (man --warnings -l, groff underneath)
# and fails on any warning, or on an empty rendering.
cmake_minimum_required(VERSION 3.25)
foreach(page IN LISTS PAGES)
    execute_process(COMMAND ${MAN} --warnings -E UTF-8 -l "${page}"
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0 OR NOT err STREQUAL "" OR out STREQUAL "")
        message(FATAL_ERROR "man -l ${page}: status ${rc}\n${err}")
    endif()
endforeach()
message(STATUS "man -l renders every page without a warning")
