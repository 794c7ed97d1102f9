#!/usr/bin/env bash
# Builds fuzz_conv2d as a libFuzzer target with clang (ASan + UBSan) and fuzzes for a bounded time.
#   bash tests/fuzz/run.sh [seconds]      default 120; CI runs it; a nightly run is e.g. 3600
# Starts from the seed corpus (tests/fuzz/corpus, written by make_corpus.py) and keeps what it
# finds in $CONVKIT_BUILD_ROOT/fuzz/corpus. A finding stops the run with the input that caused it
# (crash-*, in the build folder): add it to tests/fuzz/corpus so that every build replays it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-120}
out=${CONVKIT_BUILD_ROOT:-$root/build-ci}/fuzz
command -v clang++ > /dev/null || { echo "tests/fuzz/run.sh: clang++ is needed for libFuzzer" >&2; exit 1; }
cmake -S "$root" -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DCONVKIT_FUZZ=ON \
  -DCONVKIT_WITH_CUDA=OFF -DCONVKIT_BUILD_BENCHMARKS=OFF -DCONVKIT_BUILD_EXAMPLES=OFF -DCONVKIT_BUILD_TOOLS=OFF \
  > "$out.configure.log" 2>&1 || { cat "$out.configure.log" >&2; exit 1; }
cmake --build "$out" -j "${CONVKIT_JOBS:-$(nproc)}" --target fuzz_conv2d
mkdir -p "$out/corpus"
cd "$out"
CONVKIT_PROFILE="$out/no-profile.txt" ./tests/fuzz_conv2d -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 \
  -print_final_stats=1 "$out/corpus" "$root/tests/fuzz/corpus"
