# Helpers for the consumer tests' scripts (cmake -P): run a command and fail with its output, and
# configure a consumer project with the compiler and generator of the convkit build under test.
# Consumers are built without a build type (no optimisation): they check packaging, not speed.

# run_checked(<what> <command> [args...]): runs the command; a non-zero exit fails with its output.
function(run_checked what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}")
  endif()
endfunction()

# consumer_configure(<source> <build> <rc-var> <output-var> [cmake arguments...]): configures
# <source> into a fresh <build>; returns cmake's exit status and its output (stdout and stderr).
function(consumer_configure source build rc_var out_var)
  file(REMOVE_RECURSE "${build}")
  set(common)
  if(GENERATOR)
    list(APPEND common -G "${GENERATOR}")
  endif()
  if(CXX)
    list(APPEND common "-DCMAKE_CXX_COMPILER=${CXX}")
  endif()
  execute_process(COMMAND "${CMAKE_COMMAND}" -S "${source}" -B "${build}" ${common} ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  set(${rc_var} ${rc} PARENT_SCOPE)
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()
