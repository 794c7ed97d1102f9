#!/usr/bin/env bash
# Builds the fuzz targets as libFuzzer targets with clang (ASan + UBSan) and fuzzes each for a bounded
# time: fuzz_conv2d (the library's calls) and fuzz_image_files (the tools' image-file readers).
#   bash tests/fuzz/run.sh [seconds [image seconds]]   default 120 and 60; CI runs it; a nightly run: 3600
# Each starts from its seed corpus (tests/fuzz/corpus, written by make_corpus.py; tests/fuzz/image_corpus)
# and keeps what it finds in $CONVKIT_BUILD_ROOT/fuzz/corpus (image_corpus). A finding stops the run
# with the input that caused it (crash-*, in the build folder): add it to the seed corpus so that
# every build replays it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-120}
image_seconds=${2:-60}
out=${CONVKIT_BUILD_ROOT:-$root/build-ci}/fuzz
command -v clang++ > /dev/null || { echo "tests/fuzz/run.sh: clang++ is needed for libFuzzer" >&2; exit 1; }
cmake -S "$root" -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DCONVKIT_FUZZ=ON \
  -DCONVKIT_WITH_CUDA=OFF -DCONVKIT_BUILD_BENCHMARKS=OFF -DCONVKIT_BUILD_EXAMPLES=OFF -DCONVKIT_BUILD_TOOLS=OFF \
  > "$out.configure.log" 2>&1 || { cat "$out.configure.log" >&2; exit 1; }
cmake --build "$out" -j "${CONVKIT_JOBS:-$(nproc)}" --target fuzz_conv2d fuzz_image_files
mkdir -p "$out/corpus"
cd "$out"
CONVKIT_PROFILE="$out/no-profile.txt" ./tests/fuzz_conv2d -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 \
  -print_final_stats=1 "$out/corpus" "$root/tests/fuzz/corpus"
mkdir -p "$out/image_corpus"
./tests/fuzz_image_files -max_total_time="$image_seconds" -timeout=30 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
  -print_final_stats=1 "$out/image_corpus" "$root/tests/fuzz/image_corpus"
