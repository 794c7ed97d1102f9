#!/usr/bin/env bash
# convkit::mpi's strong and weak scaling on this machine (bench_mpi under mpirun with np = 1 and 2,
# one thread per rank, then np = 1 with two threads: the shared-memory alternative), from a build
# with benchmarks and convkit::mpi:
#   bash bench/mpi_scaling.sh [build folder, default build-bench] [bench_mpi arguments...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-bench}
shift || true
bin="$build/bench/bench_mpi"
[ -x "$bin" ] || { echo "bench/mpi_scaling.sh: $bin is missing (configure with MPI and benchmarks)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
for np in 1 2; do
  mpirun -np "$np" --bind-to none "$bin" --threads 1 "$@"
done
mpirun -np 1 --bind-to none "$bin" --threads 2 "$@"
