#  drover_add_test (NAME source.c [TIMEOUT seconds] [LIBS ...])
#
#  Builds one Criterion suite and registers it with CTest. A sanitizer
#  report fails the test even when the suite itself exits 0 (a leak found
#  in a forked Criterion test does not change the exit code).
pkg_check_modules (CRITERION REQUIRED IMPORTED_TARGET criterion)

function (drover_add_test name source)
    cmake_parse_arguments (ARG "" "TIMEOUT" "LIBS" ${ARGN})
    if (NOT ARG_TIMEOUT)
        set (ARG_TIMEOUT 120)
    endif ()
    add_executable (${name} ${source} ${CMAKE_CURRENT_SOURCE_DIR}/drv_testutil.c)
    target_link_libraries (${name} PRIVATE drover_static PkgConfig::CRITERION ${ARG_LIBS})
    target_include_directories (${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
    target_compile_definitions (${name} PRIVATE
        DROVER_BIN_DIR="${CMAKE_BINARY_DIR}" DROVER_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
        DROVER_TEST_CFLAGS="$<IF:$<BOOL:${DROVER_SANITIZE}>,-fsanitize=address$<COMMA>undefined,>")
    add_dependencies (${name} drover-broker drover-worker drover)
    add_test (NAME ${name} COMMAND ${name} --jobs 2 --timeout ${ARG_TIMEOUT})
    set_tests_properties (${name} PROPERTIES
        TIMEOUT ${ARG_TIMEOUT}
        FAIL_REGULAR_EXPRESSION "ERROR: [A-Za-z]+Sanitizer|runtime error:|Tested: [0-9]+ \\| Passing: [0-9]+ \\| Failing: [1-9]"
        ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:malloc_context_size=2;LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp:print_suppressions=0;UBSAN_OPTIONS=print_stacktrace=1")
endfunction ()
