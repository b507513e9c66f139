# lab_header_calls(<header> <out-var>): the calls a header declares with
# LAB_API (LAB_API ... lab_name(...)), each once.  Used by the scripts that
# hold the man pages and the shared library to the header.
function(lab_header_calls header out)
    file(READ "${header}" text)
    string(REGEX MATCHALL "LAB_API[^;(]*[ *](lab_[a-z0-9_]+)\\(" decls "${text}")
    set(names "")
    foreach(d IN LISTS decls)
        string(REGEX REPLACE ".*[ *](lab_[a-z0-9_]+)\\($" "\\1" name "${d}")
        list(APPEND names ${name})
    endforeach()
    list(REMOVE_DUPLICATES names)
    set(${out} ${names} PARENT_SCOPE)
endfunction()
