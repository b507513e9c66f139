# static_link_check.cmake - build a program against a static library with
# the compiler alone (as a user's build would), then run it.
#   cmake -DCC=<compiler> -DLIB=<liblabyrinth.a> -DINCLUDE=<dir> -DSRC=<prog.c>
#         -DOUT=<program> -P static_link_check.cmake
# The link must succeed and the program exit 0 printing "consumer ok".
foreach(var CC LIB INCLUDE SRC OUT)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "static_link_check.cmake: -D${var}=... is required")
    endif()
endforeach()
execute_process(
    COMMAND ${CC} -std=c11 -Wall -Wextra -Werror -I${INCLUDE} -o ${OUT} ${SRC} ${LIB} -pthread
    RESULT_VARIABLE rc
    ERROR_VARIABLE  err)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${SRC} does not link against ${LIB}:\n${err}")
endif()
execute_process(COMMAND ${OUT} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL 0 OR NOT out MATCHES "consumer ok")
    message(FATAL_ERROR "${OUT} exited with ${rc}")
endif()
