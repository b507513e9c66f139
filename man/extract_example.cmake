# cmake -DPAGE=<page> -DOUT=<file.c> -P extract_example.cmake
# Writes the program in the first literal display (.Bd -literal ... .Ed) of
# the page's EXAMPLES section to OUT, with the roff escapes the pages use
# (\e for a backslash, \& for nothing) undone.  A page without one is an
# error: every page of section 3 shows a program that compiles and runs.
cmake_minimum_required(VERSION 3.25)

# Sets `var` to the text after the first `marker` in it; fails naming `what`.
function(skip_past var marker what)
    string(FIND "${${var}}" "${marker}" at)
    if(at EQUAL -1)
        message(FATAL_ERROR "${PAGE}: ${what}")
    endif()
    string(LENGTH "${marker}" len)
    math(EXPR at "${at} + ${len}")
    string(SUBSTRING "${${var}}" ${at} -1 rest)
    set(${var} "${rest}" PARENT_SCOPE)
endfunction()

file(READ "${PAGE}" text)
skip_past(text "\n.Sh EXAMPLES" "no EXAMPLES section")
skip_past(text "\n.Bd -literal\n" "no .Bd -literal display in EXAMPLES")
set(code "${text}")
skip_past(text "\n.Ed\n" "the EXAMPLES display has no .Ed")
string(LENGTH "${code}" all)
string(LENGTH "${text}" after)
math(EXPR keep "${all} - ${after} - 4")
string(SUBSTRING "${code}" 0 ${keep} code)
string(REPLACE "\\e" "\\" code "${code}")
string(REPLACE "\\&" "" code "${code}")
get_filename_component(name "${PAGE}" NAME)
file(WRITE "${OUT}" "/* extracted from man/${name} */\n${code}")
