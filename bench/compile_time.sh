#!/usr/bin/env bash
# What one file that includes convkit costs to compile: examples/quickstart.cpp with the definitions
# each CMake target gives it, header-only and in the compiled mode (CONVKIT_COMPILED: the file only;
# the library, src/compiled.cpp, is compiled once per build). User CPU seconds and the compiler's
# peak memory, the median of RUNS runs (default 3), at -O2.
#   bash bench/compile_time.sh            [CXX=clang++] [RUNS=5] [FLAGS="-O2 -march=native"]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cxx=${CXX:-g++}
runs=${RUNS:-3}
flags=${FLAGS:--O2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# measure <label> <definitions...>: prints the median user time and memory over the runs.
measure() {
  local label=$1
  shift
  local times=() mems=()
  for ((i = 0; i < runs; ++i)); do
    /usr/bin/time -f "%U %M" -o "$work/t" "$cxx" -std=c++17 $flags -I"$root/include" "$@" \
      -c "$root/examples/quickstart.cpp" -o "$work/q.o"
    read -r t m < "$work/t"
    times+=("$t")
    mems+=("$m")
  done
  local t m
  t=$(printf '%s\n' "${times[@]}" | sort -g | sed -n "$(((runs + 1) / 2))p")
  m=$(printf '%s\n' "${mems[@]}" | sort -g | sed -n "$(((runs + 1) / 2))p")
  printf '%-40s %7.2f s  %5d MB   (runs: %s)\n' "$label" "$t" "$((m / 1024))" "${times[*]}"
}

fftw_blas=(-DCONVKIT_HAS_FFTW -DCONVKIT_HAS_BLAS)
cuda=()
[[ -d /usr/local/cuda/include ]] && cuda=(-DCONVKIT_HAS_CUFFT -isystem /usr/local/cuda/include)
echo "examples/quickstart.cpp, $cxx $($cxx -dumpversion) -std=c++17 $flags -c, median of $runs; $(nproc) CPUs: $(lscpu | sed -n 's/^Model name: *//p')"
for mode in header-only compiled; do
  extra=()
  [[ $mode == compiled ]] && extra=(-DCONVKIT_COMPILED)
  measure "$mode, core" "${extra[@]}"
  measure "$mode, core + fftw + blas" "${extra[@]}" "${fftw_blas[@]}"
  if ((${#cuda[@]})); then measure "$mode, core + fftw + blas + cufft" "${extra[@]}" "${fftw_blas[@]}" "${cuda[@]}"; fi
done
