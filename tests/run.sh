#!/usr/bin/env bash
# convkit's whole test suite on a fresh Debian machine (as root; installs what is missing):
#   0. every C++ file formatted as .clang-format says;
#   1. Release build of everything (every backend; the CUDA backend is compiled and linked, its
#      device tests report "skipped" without a GPU; convkit::mpi's tests under mpirun with 1 to 4
#      ranks, convkit_filter's on files larger than its memory budget), all tests, examples, every public header
#      compiled alone, and the packaging tests (ctest label "packaging": consumer projects using
#      the installed package, the build tree and add_subdirectory; find_package COMPONENTS cases);
#   2. the tests again under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. the concurrency tests under ThreadSanitizer;
#   4. the core alone (no FFTW, BLAS or CUDA), as a user without them builds it (the packaging
#      tests again: the components it lacks must fail find_package clearly);
#   5. the fuzz targets under libFuzzer (clang, ASan + UBSan) for a bounded time (tests/fuzz/run.sh);
#   6. the README's main command, bench/run.sh, in its quick CI form (--smoke): it installs the
#      benchmark peers, configures, builds against every one of them and runs a short slice.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/cmake/install-deps.sh"
jobs=${CONVKIT_JOBS:-$(nproc)}
out=${CONVKIT_BUILD_ROOT:-$root/build-ci}
# The CUDA backend is asked for explicitly wherever the toolkit is installed, so that a broken GPU
# build fails here instead of being silently left out.
# In CI (CI=true) it is always asked for; elsewhere, wherever a toolkit is installed.
cuda=OFF
if [ -n "${CI:-}" ] || [ -x /usr/local/cuda/bin/nvcc ] || command -v nvcc > /dev/null; then cuda=ON; fi
backends=(-DCONVKIT_WITH_FFTW=ON -DCONVKIT_WITH_BLAS=ON -DCONVKIT_WITH_CUDA=$cuda -DCONVKIT_WITH_MPI=ON)

step() { printf '\n==== %s (%s) ====\n' "$*" "$(date +%T)"; }

step "Formatting: every C++ file as .clang-format says"
(cd "$root" && git ls-files -- '*.hpp' '*.cpp' '*.inl' | xargs clang-format --dry-run -Werror)

step "Release: build and test everything (the compiled mode, convkit::compiled, too)"
cmake -S "$root" -B "$out/release" -DCMAKE_BUILD_TYPE=Release -DCONVKIT_COMPILED=ON "${backends[@]}" > /dev/null
cmake --build "$out/release" -j "$jobs"
ctest --test-dir "$out/release" --output-on-failure -j "$jobs"

step "AddressSanitizer + UndefinedBehaviorSanitizer"
san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# -O1 -g1 (line tables): the sanitizers' reports keep file and line, and the build takes 2.5x less
# time than -O2 -g (measured on test_layers.cpp: 75 s against 191 s on this project's 2-core machine).
sanitized=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG")
# The sanitizer builds compile the library once (convkit::compiled) and link the tests, examples and
# tools that use only the public API against it: a file that instantiates every backend takes about
# 60 s under ASan, 2-10 s against the library (the Release build above keeps every program header-only).
sanitized+=(-DCONVKIT_COMPILED=ON -DCONVKIT_PROGRAMS_COMPILED=ON)
cmake -S "$root" -B "$out/asan" "${sanitized[@]}" "${backends[@]}" \
  -DCONVKIT_BUILD_BENCHMARKS=OFF -DCMAKE_CXX_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" > /dev/null
cmake --build "$out/asan" -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir "$out/asan" --output-on-failure -j "$jobs" -LE packaging -E '^test_(mpi|filter)'  # consumer projects, headers: no sanitizer in them
# The programs that start MPI run without LeakSanitizer: OpenMPI keeps what it allocates until the
# process ends, partly in components it has unloaded (no module for a suppression to name).
ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir "$out/asan" --output-on-failure -R '^test_(mpi|filter)'


step "ThreadSanitizer: concurrency tests"
tsan="-fsanitize=thread"
cmake -S "$root" -B "$out/tsan" "${sanitized[@]}" "${backends[@]}" \
  -DCONVKIT_BUILD_BENCHMARKS=OFF -DCONVKIT_BUILD_EXAMPLES=OFF -DCMAKE_CXX_FLAGS="$tsan" -DCMAKE_EXE_LINKER_FLAGS="$tsan" > /dev/null
cmake --build "$out/tsan" -j "$jobs" --target test_threads test_fftw test_automatic
TSAN_OPTIONS="halt_on_error=1" ctest --test-dir "$out/tsan" --output-on-failure -R '^test_(threads|fftw|automatic_threads)$'

step "Core only: every optional backend off"
cmake -S "$root" -B "$out/core" -DCMAKE_BUILD_TYPE=Release -DCONVKIT_WITH_FFTW=OFF -DCONVKIT_WITH_BLAS=OFF \
  -DCONVKIT_WITH_CUDA=OFF -DCONVKIT_WITH_MPI=OFF -DCONVKIT_BUILD_BENCHMARKS=OFF -DCONVKIT_COMPILED=ON > /dev/null
cmake --build "$out/core" -j "$jobs"
ctest --test-dir "$out/core" --output-on-failure -j "$jobs"

step "Fuzzing: libFuzzer for ${CONVKIT_FUZZ_SECONDS:-150} s"
CONVKIT_BUILD_ROOT="$out" bash "$root/tests/fuzz/run.sh" "${CONVKIT_FUZZ_SECONDS:-150}" "${CONVKIT_FUZZ_IMAGE_SECONDS:-60}"

step "The README's main command: bash bench/run.sh --smoke"
CONVKIT_BUILD_ROOT="$out/bench" bash "$root/bench/run.sh" --smoke
