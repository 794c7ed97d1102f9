// bench_mpi: convkit::mpi::plan's scaling, run under mpirun (bench/mpi_scaling.sh runs np = 1, 2):
//   strong  one image (default 4000 x 4000 float) split over the ranks
//   weak    a band of fixed height per rank (default 2000 x 4000 each)
// with a 15x15 kernel, Gaussian (the separable path) and random (dense), 'same', reflect border,
// --threads per rank (default 1). Per round every rank executes after a barrier and the slowest
// rank's time counts; the median and spread of --rounds rounds are printed, with the halo bytes
// each rank sends and receives per execute (measured by the plan: the rows it packs and unpacks).
//
//   mpirun -np 2 bench_mpi [--image 4000] [--band 2000] [--threads 1] [--rounds 9]
#include <convkit/convkit.hpp>
#include <convkit/distributed/mpi.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_common.hpp"

namespace {

using convkit::array2d;
using convkit::index_t;

struct result {
  double median = 0, fastest = 0, slowest = 0;
  long long sent = 0, received = 0;  // the largest over the ranks
};

result measure(MPI_Comm comm, index_t rows, index_t cols, const array2d<float>& kernel, int threads, int rounds) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const index_t first = rows * rank / size, count = rows * (rank + 1) / size - first;
  const array2d<float> band = convkit::bench::random_image(std::max<index_t>(count, 1), cols, unsigned(rank + 1));
  convkit::options o;
  o.mode = convkit::output::same;
  o.edge = convkit::border::reflect;
  o.threads = threads;
  convkit::mpi::plan<float> p(comm, count, cols, first, rows, kernel, o);
  array2d<float> out(std::max<index_t>(p.output_rows(), 1), p.output_cols());
  const convkit::view2d<const float> in = band.view().block(0, 0, count, cols);
  const convkit::view2d<float> to = out.view().block(0, 0, p.output_rows(), p.output_cols());
  std::vector<double> times;
  for (int r = -1; r < rounds; ++r) {  // one untimed round first
    MPI_Barrier(comm);
    const double t0 = MPI_Wtime();
    p.execute(in, to);
    double t = MPI_Wtime() - t0, slowest = 0;
    MPI_Allreduce(&t, &slowest, 1, MPI_DOUBLE, MPI_MAX, comm);
    if (r >= 0) times.push_back(slowest);
  }
  std::sort(times.begin(), times.end());
  result res{times[times.size() / 2], times.front(), times.back(), 0, 0};
  long long mine[2] = {p.halo_bytes_sent(), p.halo_bytes_received()}, most[2] = {0, 0};
  MPI_Allreduce(mine, most, 2, MPI_LONG_LONG, MPI_MAX, comm);
  res.sent = most[0];
  res.received = most[1];
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  index_t image = 4000, band = 2000;
  int threads = 1, rounds = 9;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--image")
      image = std::atol(argv[i + 1]);
    else if (a == "--band")
      band = std::atol(argv[i + 1]);
    else if (a == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (a == "--rounds")
      rounds = std::atoi(argv[i + 1]);
  }
  array2d<float> gauss(15, 15);
  for (index_t u = 0; u < 15; ++u)
    for (index_t v = 0; v < 15; ++v)
      gauss(u, v) = float(std::exp(-double((u - 7) * (u - 7) + (v - 7) * (v - 7)) / 18.0));
  const array2d<float> random = convkit::bench::random_image(15, 15, 2);
  if (rank == 0)
    std::printf(
        "bench_mpi: %d ranks x %d threads; 'same' float, reflect border, 15x15 kernel; median of %d rounds "
        "(slowest rank per round), ms\n%-7s %-9s %-13s %9s %19s %12s %12s\n",
        size, threads, rounds, "scaling", "kernel", "image", "median", "spread", "halo sent", "halo recv");
  for (const bool strong : {true, false})
    for (const array2d<float>* k : std::initializer_list<const array2d<float>*>{&gauss, &random}) {
      const index_t rows = strong ? image : band * size, cols = strong ? image : 2 * band;
      const result r = measure(MPI_COMM_WORLD, rows, cols, *k, threads, rounds);
      if (rank == 0) {
        char shape[32], spread[32];
        std::snprintf(shape, sizeof shape, "%tdx%td", rows, cols);
        std::snprintf(spread, sizeof spread, "%.2f..%.2f", r.fastest * 1e3, r.slowest * 1e3);
        std::printf("%-7s %-9s %-13s %9.2f %19s %10lld B %10lld B\n", strong ? "strong" : "weak",
                    k == &gauss ? "Gaussian" : "random", shape, r.median * 1e3, spread, r.sent, r.received);
      }
    }
  MPI_Finalize();
  return 0;
}
