# Helpers shared by every folder's CMakeLists.txt.
include(${doctest_DIR}/doctest.cmake)

# ddsplit_test(NAME LABEL SOURCES... LIBS ...) builds a doctest binary and registers it with CTest
# under the given label (unit, component or system).
# doctest's main() is compiled once for every test binary (it takes seconds to compile).
add_library(ddsplit_doctest_main OBJECT ${PROJECT_SOURCE_DIR}/tests/doctest_main.cpp)
target_link_libraries(ddsplit_doctest_main PUBLIC doctest::doctest)

function(ddsplit_test name label)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES} $<TARGET_OBJECTS:ddsplit_doctest_main>)
  target_link_libraries(${name} PRIVATE doctest::doctest ${T_LIBS})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS ${label} TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "DDSPLIT_BIN_DIR=${CMAKE_BINARY_DIR}/bin")
endfunction()

# Links the process-wide allocation counter into an executable (inert under sanitizers).
function(ddsplit_link_alloc_hook target)
  if(TARGET ddsplit_alloc_hook)
    target_link_libraries(${target} PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,ddsplit_alloc_hook>")
  endif()
endfunction()
