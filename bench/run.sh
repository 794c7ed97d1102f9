#!/usr/bin/env bash
# convkit's main benchmark on a fresh Debian machine (as root; installs what is missing): builds the
# benchmarks in Release against every peer it installs (OpenCV, oneDNN) and runs convkit_seed in
# quick mode, which prints the summary table; before it, convkit_calibrate --quick measures this
# machine for algorithm::automatic (its profile goes to the user's cache folder, profile.hpp).
#   bash bench/run.sh            the summary (under 5 minutes on a 2-core machine, the build included);
#                                Google Benchmark's raw output goes to a log file it names
#   bash bench/run.sh --full     every row at 10000x10000, and the naive loop there run, not estimated
#   bash bench/run.sh --smoke    what CI runs: the same install, configure and build, every peer
#                                required, then a short slice of convkit_seed and bench_layers
# Other arguments go to Google Benchmark.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
smoke=0
if [ "${1:-}" = "--smoke" ]; then
  smoke=1
  shift
fi
# ocl-icd-opencl-dev: Debian's oneDNN CMake config requires the OpenCL headers. (Without them the
# configure still succeeds: every peer is probed first, and one that cannot be found is left out.)
bash "$root/cmake/install-deps.sh" libopencv-dev libdnnl-dev ocl-icd-opencl-dev
out=${CONVKIT_BUILD_ROOT:-$root/build-bench}
mkdir -p "$out"
log="$out/configure.log"
if ! cmake -S "$root" -B "$out" -DCMAKE_BUILD_TYPE=Release -DCONVKIT_BUILD_TESTS=OFF -DCONVKIT_BUILD_BENCHMARKS=ON \
  > "$log" 2>&1; then
  cat "$log" >&2
  echo "bench/run.sh: configuring failed; the output above is also in $log" >&2
  exit 1
fi
grep -h "benchmark peers" "$log" || true
if [ "$smoke" = 1 ]; then
  # Every peer this script installs must be found, so that a peer silently dropped fails here.
  grep "benchmark peers:" "$log" | grep "OpenCV yes" | grep -q "oneDNN yes" || {
    echo "bench/run.sh --smoke: a peer was not found (configure log: $log)" >&2
    exit 1
  }
  cmake --build "$out" -j "$(nproc)" --target convkit_calibrate convkit_seed bench_layers
  "$out/tools/convkit_calibrate" --quick --output "$out/smoke-profile.txt"
  CONVKIT_PROFILE="$out/smoke-profile.txt" \
  "$out/bench/convkit_seed" --benchmark_filter='seed/1000x1000/(direct|fft|automatic|opencv_filter2D)/threads:1/real_time$' \
    --benchmark_min_time=0.01 "$@" | tee "$out/smoke-seed.txt"
  "$out/bench/bench_layers" --benchmark_filter='512to512.*batch:1/threads:1' --benchmark_min_time=0.01 |
    tee "$out/smoke-layers.txt"
  for row in "convkit direct" "convkit automatic" "OpenCV filter2D" "algorithm::automatic against the fastest"; do
    grep -q "$row" "$out/smoke-seed.txt" || { echo "bench/run.sh --smoke: no '$row' row in the table" >&2; exit 1; }
  done
  grep -q "^onednn_nchw/" "$out/smoke-layers.txt" || { echo "bench/run.sh --smoke: no oneDNN row" >&2; exit 1; }
  exit 0
fi
cmake --build "$out" -j "$(nproc)" --target convkit_calibrate convkit_seed
# Measure this machine first (a few seconds), so that algorithm::automatic's row is chosen for it.
"$out/tools/convkit_calibrate" --quick
raw="$out/convkit_seed.log"
echo "bench/run.sh: timing the post's workloads (Google Benchmark's raw output: $raw)"
# Debian's libbenchmark is built without NDEBUG, so it warns "Library was built as DEBUG": that is
# Google Benchmark's own build, not convkit's (built here in Release); the warning goes to the log.
"$out/bench/convkit_seed" --benchmark_repetitions=3 --benchmark_min_time=0.1 \
  --benchmark_report_aggregates_only=true "$@" > "$raw" 2>&1 || {
  tail -n 20 "$raw" >&2
  echo "bench/run.sh: convkit_seed failed; its output is in $raw" >&2
  exit 1
}
sed -n '/^== convkit_seed summary ==/,$p' "$raw"
