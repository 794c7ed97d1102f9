#!/usr/bin/env bash
# convkit's main benchmark on a fresh Debian machine (as root; installs what is missing): builds
# everything in Release and runs convkit_seed in quick mode, which prints the summary table.
# Pass --full to run the naive loop at 10000x10000 instead of estimating it; other arguments go to
# Google Benchmark.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/cmake/install-deps.sh" libopencv-dev libdnnl-dev
out=${CONVKIT_BUILD_ROOT:-$root/build-bench}
cmake -S "$root" -B "$out" -DCMAKE_BUILD_TYPE=Release -DCONVKIT_BUILD_TESTS=OFF > /dev/null
cmake --build "$out" -j "$(nproc)" --target convkit_seed
"$out/bench/convkit_seed" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true "$@"
