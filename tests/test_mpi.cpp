// convkit::mpi (distributed/mpi.hpp), run by CTest under mpirun with 1, 2, 3 and 4 ranks: every
// rank holds a band of one image, bands uneven or empty, over the shared problem grid (every mode,
// border, stride and dilation, float and double). The bands of the result, gathered, must equal a
// single-process conv2d bit for bit with the direct backend, and match the float64 reference within
// each backend's bound with the others. Errors must reach every rank.
#define CATCH_CONFIG_RUNNER
#include <convkit/convkit.hpp>
#include <convkit/distributed/mpi.hpp>

#include <cstdlib>
#include <cstring>

#include "fft_error.hpp"
#include "problems.hpp"

namespace convkit::testing {

namespace {

int rank_of_world() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int ranks() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

/// First rows of `ranks()` bands of an image of `rows` rows (and its end): uneven, with empty bands,
/// from the generator (the same on every rank).
std::vector<index_t> split(index_t rows, std::mt19937_64& rng, int style) {
  const int n = ranks();
  std::vector<index_t> first(std::size_t(n + 1), 0);
  if (style == 0) {  // as even as it goes
    for (int r = 0; r <= n; ++r) first[std::size_t(r)] = rows * r / n;
  } else if (style == 1) {  // everything on the last rank: the others empty
    for (int r = 0; r < n; ++r) first[std::size_t(r)] = 0;
  } else {  // random cuts (repeats make empty bands)
    for (int r = 1; r < n; ++r) first[std::size_t(r)] = std::uniform_int_distribution<index_t>(0, rows)(rng);
    std::sort(first.begin() + 1, first.begin() + n);
  }
  first[std::size_t(n)] = rows;
  return first;
}

/// Every rank's output band, gathered in rank order into `out` (global output shape).
template <class T>
void gather(const mpi::band<T>& mine, view2d<T> out) {
  const int n = ranks();
  const int count = int(mine.rows.size());
  std::vector<int> counts(static_cast<std::size_t>(n)), offsets(static_cast<std::size_t>(n), 0);
  MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD);
  for (int r = 1; r < n; ++r) offsets[std::size_t(r)] = offsets[std::size_t(r - 1)] + counts[std::size_t(r - 1)];
  std::vector<T> all(std::size_t(offsets.back() + counts.back()));
  MPI_Allgatherv(mine.rows.data(), count, mpi::detail::datatype<T>(), all.data(), counts.data(), offsets.data(),
                 mpi::detail::datatype<T>(), MPI_COMM_WORLD);
  REQUIRE(index_t(all.size()) == out.rows() * out.cols());
  for (index_t i = 0; i < out.rows(); ++i)
    for (index_t j = 0; j < out.cols(); ++j) out(i, j) = all[std::size_t(i * out.cols() + j)];
}

/// conv2d of `in` computed in bands over the ranks, gathered into `out`.
template <class T>
void distributed(view2d<const T> in, view2d<const T> k, view2d<T> out, const options& o,
                 const std::vector<index_t>& first) {
  const int r = rank_of_world();
  const index_t f = first[std::size_t(r)], rows = first[std::size_t(r + 1)] - f;
  const mpi::band<T> b = mpi::conv2d<T>(MPI_COMM_WORLD, in.block(f, 0, rows, in.cols()), f, in.rows(), k, o);
  CHECK(b.rows.cols() == out.cols());
  gather(b, out);
}

template <class T>
void run_grid(algorithm a) {
  std::mt19937_64 rng(run_seed() ^ 0x3a1ULL ^ (std::uint64_t(a) << 12) ^ sizeof(T));
  int style = 0;
  for (conv_case c : conv_grid(front_door::image, 32)) {
    c.algo = a;
    const std::vector<index_t> first = split(c.rows, rng, style++ % 3);
    check_case<T>(
        c, rng,
        [&](view2d<const T> in, view2d<const T> k, view2d<T> out, const options& o) {
          distributed(in, k, out, o, first);
          if (a != algorithm::direct) return;
          // The direct backend: the same bits as one process.
          const array2d<T> single = conv2d<T>(in, k, o);
          index_t differ = 0;
          for (index_t i = 0; i < out.rows(); ++i)
            for (index_t j = 0; j < out.cols(); ++j)
              differ += std::memcmp(&out(i, j), &single(i, j), sizeof(T)) != 0 ? 1 : 0;
          CHECK(differ == 0);
        },
        error_of<T>(a, c));
  }
}

}  // namespace

TEST_CASE("mpi: bands over the ranks give single-process conv2d's bits (direct)", "[mpi]") {
  run_grid<float>(algorithm::direct);
  run_grid<double>(algorithm::direct);
}

TEST_CASE("mpi: every backend through bands matches the reference", "[mpi]") {
  run_grid<float>(algorithm::automatic);
#if defined(CONVKIT_HAS_FFTW)
  run_grid<float>(algorithm::fft);
  run_grid<double>(algorithm::fft);
#endif
}

TEST_CASE("mpi: low-rank kernels, wide images and a plan reused", "[mpi]") {
  std::mt19937_64 rng(run_seed() ^ 0x9e1ULL);
  array2d<float> image(101, 300), other(101, 300), gauss(9, 9);
  fill_random(image.view(), rng);
  fill_random(other.view(), rng);
  for (index_t u = 0; u < 9; ++u)
    for (index_t v = 0; v < 9; ++v) gauss(u, v) = float(std::exp(-double((u - 4) * (u - 4) + (v - 4) * (v - 4)) / 8.0));
  for (border edge : {border::reflect, border::circular, border::constant}) {
    options o;
    o.mode = output::same;
    o.edge = edge;
    o.edge_value = 0.25;
    o.algo = algorithm::direct;
    const std::vector<index_t> first = split(101, rng, 2);
    const int r = rank_of_world();
    const index_t f = first[std::size_t(r)], rows = first[std::size_t(r + 1)] - f;
    mpi::plan<float> p(MPI_COMM_WORLD, rows, 300, f, 101, gauss, o);
    for (const array2d<float>* in : {&image, &other}) {
      array2d<float> out(101, 300);
      gather(p.execute(in->view().block(f, 0, rows, 300)), out.view());
      const array2d<float> single = conv2d<float>(*in, gauss, o);
      CHECK(std::memcmp(out.data(), single.data(), sizeof(float) * std::size_t(out.size())) == 0);
    }
  }
}

namespace {

/// An image of pixels filtered in bands over the ranks (a plan, executed twice), gathered row by
/// row, and compared bit for bit with the single-process image call.
template <class P, class Q>
void check_image_bands(index_t rows, index_t cols, index_t channels, view2d<const float> kernel, const options& o,
                       int style, std::mt19937_64& rng) {
  INFO(rows << "x" << cols << "x" << channels << " * " << kernel.rows() << "x" << kernel.cols() << " "
            << to_string(o.mode) << " " << to_string(o.edge) << " stride " << o.stride_rows << " " << to_string(o.algo)
            << " split " << style);
  image<P> whole(rows, cols, channels);
  fill_pixels(whole.view(), rng);
  const std::vector<index_t> first = split(rows, rng, style);
  const int r = rank_of_world();
  const index_t f = first[std::size_t(r)], local_rows = first[std::size_t(r + 1)] - f;
  mpi::plan<float> p(MPI_COMM_WORLD, local_rows, cols, f, rows, kernel, o);
  image<Q> single(p.global_output_shape().rows, p.global_output_shape().cols, channels);
  conv2d<P, float, Q>(whole, kernel, single, o);
  const image_view<const P> local(whole.data() + f * cols * channels, local_rows, cols, channels, cols * channels);
  image<Q> mine(p.output_rows(), p.output_cols(), channels);
  for (int i = 0; i < 2; ++i) {
    std::fill(mine.data(), mine.data() + mine.size(), Q(77));
    p.execute(local, mine.view());
  }
  // Every rank's rows, in rank order, as bytes.
  const int count = int(mine.size() * index_t(sizeof(Q)));
  const std::size_t n = std::size_t(ranks());
  std::vector<int> counts(n), offsets(n, 0);
  MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD);
  for (int k = 1; k < ranks(); ++k) offsets[std::size_t(k)] = offsets[std::size_t(k - 1)] + counts[std::size_t(k - 1)];
  std::vector<unsigned char> all(std::size_t(offsets.back() + counts.back()));
  MPI_Allgatherv(mine.data(), count, MPI_BYTE, all.data(), counts.data(), offsets.data(), MPI_BYTE, MPI_COMM_WORLD);
  REQUIRE(all.size() == std::size_t(single.size()) * sizeof(Q));
  CHECK(std::memcmp(all.data(), single.data(), all.size()) == 0);
}

}  // namespace

TEST_CASE("mpi: images of pixels through bands give the single-process image call's pixels", "[mpi][pixels]") {
  std::mt19937_64 rng(run_seed() ^ 0x91dULL);
  array2d<float> dense(5, 4), integer(3, 3);
  fill_random(dense.view(), rng);
  for (index_t i = 0; i < integer.size(); ++i) integer.data()[i] = float(int(i % 5) - 2);  // an exact call
  int style = 0;
  for (border edge : {border::reflect, border::zero, border::circular, border::constant}) {
    for (output mode : {output::same, output::full, output::valid}) {
      options o;
      o.mode = mode;
      o.edge = edge;
      o.edge_value = 3;
      o.algo = algorithm::direct;
      o.stride_rows = mode == output::full ? 2 : 1;
      check_image_bands<std::uint8_t, std::uint8_t>(61, 37, 3, dense, o, style++ % 3, rng);
      check_image_bands<std::uint16_t, float>(45, 23, 1, dense, o, style++ % 3, rng);
      check_image_bands<float, std::uint8_t>(30, 19, 4, dense, o, style++ % 3, rng);
      o.algo = algorithm::automatic;
      check_image_bands<std::uint8_t, std::int16_t>(53, 29, 2, integer, o, style++ % 3, rng);
    }
  }
}

TEST_CASE("mpi: halo traffic is the rows the kernel reaches across", "[mpi]") {
  const index_t rows = 40 * ranks(), cols = 64;
  array2d<double> kernel(5, 3);
  options o;
  o.mode = output::same;
  o.edge = border::zero;
  const int r = rank_of_world();
  mpi::plan<double> p(MPI_COMM_WORLD, 40, cols, 40 * r, rows, kernel, o);
  // 'same' with 5 rows: 2 rows from each neighbour, none beyond the image's edges.
  const index_t neighbours = (r > 0 ? 1 : 0) + (r + 1 < ranks() ? 1 : 0);
  CHECK(p.halo_bytes_received() == neighbours * 2 * cols * index_t(sizeof(double)));
  CHECK(p.halo_bytes_sent() == p.halo_bytes_received());
  o.edge = border::circular;  // the first and last rank exchange too
  mpi::plan<double> c(MPI_COMM_WORLD, 40, cols, 40 * r, rows, kernel, o);
  CHECK(c.halo_bytes_received() == (ranks() > 1 ? 4 : 0) * cols * index_t(sizeof(double)));
}

TEST_CASE("mpi: a bad argument on one rank throws on every rank", "[mpi][errors]") {
  const int r = rank_of_world(), n = ranks();
  array2d<float> kernel(3, 3), band(10, 20), out(10, 20);
  options o;
  o.mode = output::same;
  // Bands out of order (only where there are two ranks or more), or not covering the image.
  CHECK_THROWS_WITH(mpi::plan<float>(MPI_COMM_WORLD, 10, 20, 10 * r + (r == n - 1 ? 1 : 0), 10 * n + 1, kernel, o),
                    Catch::Contains("rank"));
  CHECK_THROWS_WITH(mpi::plan<float>(MPI_COMM_WORLD, 10, 20, 10 * r, 10 * n + 5, kernel, o),
                    Catch::Contains("global_rows"));
  // Another kernel on the last rank.
  array2d<float> mine(3, 3);
  if (r == n - 1) mine(1, 1) = 1;
  if (n > 1)
    CHECK_THROWS_WITH(mpi::plan<float>(MPI_COMM_WORLD, 10, 20, 10 * r, 10 * n, mine, o), Catch::Contains("kernel"));
  // A bad option everywhere, and a wrong view on one rank at execute.
  options bad = o;
  bad.stride_rows = 0;
  CHECK_THROWS_WITH(mpi::plan<float>(MPI_COMM_WORLD, 10, 20, 10 * r, 10 * n, kernel, bad), Catch::Contains("stride"));
  mpi::plan<float> p(MPI_COMM_WORLD, 10, 20, 10 * r, 10 * n, kernel, o);
  array2d<float> wrong(r == 0 ? 9 : 10, 20);
  CHECK_THROWS_WITH(p.execute(wrong.view(), out.view().block(0, 0, p.output_rows(), 20)), Catch::Contains("rank 0"));
  CHECK_NOTHROW(p.execute(band.view(), out.view().block(0, 0, p.output_rows(), 20)));
  // Images: another channel count on one rank, and a wrong output shape on one rank.
  image<std::uint8_t> pixels(10, 20, 3), other(10, 20, r == n - 1 ? 1 : 3), result(p.output_rows(), 20, 3);
  image<std::uint8_t> gray_result(p.output_rows(), 20, other.channels());
  const auto filter = [&](const image<std::uint8_t>& in, image<std::uint8_t>& to) {
    p.execute<std::uint8_t, std::uint8_t>(in, to.view());
  };
  if (n > 1) CHECK_THROWS_WITH(filter(other, gray_result), Catch::Contains("channels"));
  image<std::uint8_t> short_result(p.output_rows() - (r == 0 ? 1 : 0), 20, 3);
  CHECK_THROWS_WITH(filter(pixels, short_result), Catch::Contains("rank 0"));
  CHECK_NOTHROW(filter(pixels, result));
}

}  // namespace convkit::testing

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  // One seed for every rank: rank 0's (or CONVKIT_TEST_SEED's), so that all ranks hold the same image.
  unsigned long long seed = 0;
  if (convkit::testing::rank_of_world() == 0) seed = convkit::testing::run_seed();
  MPI_Bcast(&seed, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
  setenv("CONVKIT_TEST_SEED", std::to_string(seed).c_str(), 1);
  const int failed = Catch::Session().run(argc, argv);
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any;
}
