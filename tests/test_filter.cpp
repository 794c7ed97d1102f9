// convkit_filter (tools/convkit_filter.cpp) on raw files larger than the --memory it is given: the
// streamed result must be the in-memory conv2d's, bit for bit with the direct backend (and, where
// convkit::mpi is built, the same under mpirun -np 3); a short, missing or unreadable input fails
// with a message and leaves no output, not even a partial one.
#include <convkit/convkit.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "problems.hpp"

namespace convkit::testing {

namespace {

/// A folder of its own under the build tree's temporary directory.
std::string folder() {
  static const std::string dir = [] {
    std::string d = std::string(CONVKIT_TEST_TMP) + "/filter-" + std::to_string(::getpid());
    ::mkdir(CONVKIT_TEST_TMP, 0755);
    ::mkdir(d.c_str(), 0755);
    return d;
  }();
  return dir;
}

template <class T>
void write_raw(const std::string& path, view2d<const T> v) {
  std::ofstream f(path, std::ios::binary);
  for (index_t i = 0; i < v.rows(); ++i)
    f.write(reinterpret_cast<const char*>(v.row(i)), std::streamsize(v.cols() * index_t(sizeof(T))));
}

template <class T>
array2d<T> read_raw(const std::string& path, index_t rows, index_t cols) {
  array2d<T> a(rows, cols);
  std::ifstream f(path, std::ios::binary);
  f.read(reinterpret_cast<char*>(a.data()), std::streamsize(a.size() * index_t(sizeof(T))));
  REQUIRE(f.gcount() == std::streamsize(a.size() * index_t(sizeof(T))));
  return a;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

/// Runs convkit_filter (under mpirun with `ranks` > 0); its exit status, stderr in `messages`.
int filter(const std::string& arguments, std::string* messages = nullptr, int ranks = 0) {
  const std::string err = folder() + "/stderr.txt";
  std::string command = std::string("'") + CONVKIT_FILTER + "' " + arguments + " 2> '" + err + "'";
#if defined(CONVKIT_MPIEXEC)
  if (ranks > 0)
    command =
        "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
        "OMPI_MCA_mpi_yield_when_idle=1 '" +
        std::string(CONVKIT_MPIEXEC) + "' -np " + std::to_string(ranks) + " " + command;
#endif
  const int status = std::system(command.c_str());
  std::ifstream f(err);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (messages != nullptr) *messages = text;
  INFO(command << "\n" << text);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct filter_case {
  index_t rows, cols;
  output mode;
  border edge;
  int stride, dilation;
  bool correlate;
};

template <class T>
void check_streamed(const filter_case& c, index_t k_rows, index_t k_cols, int ranks, std::mt19937_64& rng) {
  const std::string dir = folder(), in = dir + "/in.raw", kernel = dir + "/kernel.txt", out = dir + "/out.raw";
  array2d<T> image(c.rows, c.cols), k(k_rows, k_cols);
  fill_random(image.view(), rng);
  fill_random(k.view(), rng);
  write_raw<T>(in, image);
  {
    std::ofstream f(kernel);
    f.precision(17);
    for (index_t i = 0; i < k_rows; ++i) {
      for (index_t j = 0; j < k_cols; ++j) f << double(k(i, j)) << (j + 1 < k_cols ? ", " : "\n");
    }
  }
  options o;
  o.mode = c.mode;
  o.edge = c.edge;
  o.edge_value = 0.5;
  o.stride_rows = o.stride_cols = c.stride;
  o.dilation_rows = o.dilation_cols = c.dilation;
  o.correlate = c.correlate;
  o.algo = algorithm::direct;
  static const char* modes[] = {"full", "same", "valid"};
  static const char* borders[] = {"zero", "constant", "replicate", "reflect", "symmetric", "circular"};
  // One process: a memory budget of a third of the file, so several bands. Under mpirun each rank
  // holds its band (about a third or half of the file) and its halo: the whole file's size.
  const index_t file_bytes = image.size() * index_t(sizeof(T));
  const index_t budget = ranks > 0 ? 2 * file_bytes : std::max<index_t>(file_bytes / 3, 64 * 1024);
  const std::string args = "--rows " + std::to_string(c.rows) + " --cols " + std::to_string(c.cols) + " --type " +
                           (sizeof(T) == 4 ? "float32" : "float64") + " --kernel '" + kernel + "' --mode " +
                           modes[int(c.mode)] + " --border " + borders[int(c.edge)] + " --value 0.5 --stride " +
                           std::to_string(c.stride) + " --dilation " + std::to_string(c.dilation) +
                           (c.correlate ? " --correlate" : "") + " --algorithm direct --quiet --memory " +
                           std::to_string(budget) + " '" + in + "' '" + out + "'";
  INFO(args << (ranks > 0 ? " under mpirun -np " + std::to_string(ranks) : std::string()));
  REQUIRE(filter(args, nullptr, ranks) == 0);
  const array2d<T> want = conv2d<T>(image, k, o);
  const array2d<T> got = read_raw<T>(out, want.rows(), want.cols());
  struct stat st {};
  ::stat(out.c_str(), &st);
  CHECK(index_t(st.st_size) == want.size() * index_t(sizeof(T)));
  CHECK(std::memcmp(got.data(), want.data(), std::size_t(want.size()) * sizeof(T)) == 0);
}

}  // namespace

TEST_CASE("convkit_filter streams a file larger than its memory budget: in-memory conv2d's bits", "[filter]") {
  std::mt19937_64 rng(run_seed() ^ 0xf11ULL);
  const filter_case cases[] = {
      {300, 257, output::same, border::reflect, 1, 1, false},
      {211, 190, output::full, border::constant, 1, 2, true},
      {256, 300, output::valid, border::zero, 2, 1, false},
      {199, 240, output::same, border::circular, 3, 1, true},
      {150, 333, output::same, border::symmetric, 1, 3, false},
      {240, 200, output::full, border::replicate, 2, 2, false},
  };
  for (const filter_case& c : cases) {
    check_streamed<float>(c, 7, 5, 0, rng);
    check_streamed<double>(c, 4, 9, 0, rng);
  }
  // A Gaussian (low-rank: the separable path) through the same bands.
  check_streamed<float>({400, 300, output::same, border::reflect, 1, 1, true}, 9, 9, 0, rng);
}

#if defined(CONVKIT_MPIEXEC)
TEST_CASE("convkit_filter under mpirun: each rank reads and writes its band with MPI-IO", "[filter][mpi]") {
  std::mt19937_64 rng(run_seed() ^ 0xf12ULL);
  check_streamed<float>({301, 257, output::same, border::circular, 1, 1, false}, 7, 5, 3, rng);
  check_streamed<double>({120, 90, output::full, border::reflect, 2, 1, true}, 5, 5, 2, rng);
}
#endif

TEST_CASE("convkit_filter: bad files and arguments fail clearly and leave no output", "[filter][errors]") {
  const std::string dir = folder(), in = dir + "/short.raw", kernel = dir + "/k.txt", out = dir + "/never.raw";
  {
    std::ofstream f(in, std::ios::binary);
    const std::vector<float> some(1000, 1.0f);
    f.write(reinterpret_cast<const char*>(some.data()), std::streamsize(some.size() * sizeof(float)));
    std::ofstream k(kernel);
    k << "1 2 1\n2 4 2\n1 2 1\n";
  }
  std::string messages;
  CHECK(filter("--rows 100 --cols 100 --kernel '" + kernel + "' '" + in + "' '" + out + "'", &messages) == 1);
  CHECK(messages.find("holds 4000 bytes") != std::string::npos);
  CHECK(filter("--rows 10 --cols 10 --kernel '" + kernel + "' '" + dir + "/missing.raw' '" + out + "'", &messages) ==
        1);
  CHECK(messages.find("missing.raw") != std::string::npos);
  CHECK(filter("--rows 10 --cols 100 --kernel '" + kernel + "' --memory 1K '" + in + "' '" + out + "'", &messages) ==
        1);
  CHECK(messages.find("--memory") != std::string::npos);
  CHECK(filter("--rows 10 --cols 100 --kernel '" + kernel + "' --border mirror '" + in + "' '" + out + "'",
               &messages) == 2);
  CHECK(messages.find("--border") != std::string::npos);
  CHECK(filter("--rows 10 --cols 100 --kernel '" + dir + "/none.txt' '" + in + "' '" + out + "'", &messages) == 1);
  CHECK(!exists(out));
  // No partial output left behind either.
  for (const char* name : {"never.raw.convkit-partial"}) {
    const std::string listing = dir + "/listing.txt";
    CHECK(std::system(("ls '" + dir + "' > '" + listing + "'").c_str()) == 0);
    std::ifstream l(listing);
    const std::string all((std::istreambuf_iterator<char>(l)), std::istreambuf_iterator<char>());
    CHECK(all.find(name) == std::string::npos);
  }
}

}  // namespace convkit::testing
