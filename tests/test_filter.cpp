// convkit_filter (tools/convkit_filter.cpp) on raw files larger than the --memory it is given: the
// streamed result must be the in-memory conv2d's, bit for bit with the direct backend (and, where
// convkit::mpi is built, the same under mpirun -np 3); a short, missing or unreadable input fails
// with a message and leaves no output, not even a partial one. On image files (PNG, JPEG, PGM/PPM,
// TIFF: tools/image_files.hpp) with the built kernels: the image call's pixels, bit for bit, the
// pixel type following the input's (--float: float32); the same file as input and output, a pipe, a
// format the output cannot hold, hostile inputs refused.
#include <convkit/convkit.hpp>
#include <convkit/kernels.hpp>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "image_files.hpp"
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

TEST_CASE("convkit_filter's peak memory stays within --memory plus the program's own", "[filter][memory]") {
  // A 64 MB file through 16 MB and 48 MB budgets: the peak resident memory of the process (the
  // kernel's maxrss, from wait4) is at most the budget plus kProgram, the program and its libraries
  // (FFTW, OpenBLAS, the image codecs; 18 MiB on Debian 12 for `--help` alone).
  constexpr long kProgram = 24L << 20;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  WARN("skipped: a sanitizer's shadow memory is no measure of the program's");
  return;
#endif
  const std::string dir = folder(), in = dir + "/big.raw", kernel = dir + "/k7.txt", out = dir + "/big.out";
  {
    std::ofstream f(in, std::ios::binary);
    const std::vector<char> row(4000 * 4, 0);
    for (int r = 0; r < 4000; ++r) f.write(row.data(), std::streamsize(row.size()));
    std::ofstream k(kernel);
    for (int r = 0; r < 7; ++r) k << "1 1 1 1 1 1 1\n";
  }
  for (long budget : {16L << 20, 48L << 20}) {
    const std::string memory = std::to_string(budget);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::execl(CONVKIT_FILTER, CONVKIT_FILTER, "--rows", "4000", "--cols", "4000", "--kernel", kernel.c_str(),
              "--memory", memory.c_str(), "--quiet", in.c_str(), out.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    int status = 0;
    struct rusage usage {};
    REQUIRE(::wait4(pid, &status, 0, &usage) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    const long peak = usage.ru_maxrss * 1024L;  // Linux reports KiB
    INFO("--memory " << memory << ": peak RSS " << peak << " bytes");
    CHECK(peak <= budget + kProgram);
  }
  std::remove(in.c_str());
  std::remove(out.c_str());
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

namespace {

namespace files = convkit::files;

/// The extension of the lossless 8/16-bit format this build has: PNG, else PGM/PPM (always).
std::string lossless(index_t channels) {
  if (files::available(files::format::png)) return ".png";
  return channels == 1 ? ".pgm" : ".ppm";
}

template <class P>
bool same_pixels(const image<P>& want, const files::any_image& got) {
  const auto* g = std::get_if<image<P>>(&got);
  if (g == nullptr || g->rows() != want.rows() || g->cols() != want.cols() || g->channels() != want.channels())
    return false;
  return std::memcmp(g->data(), want.data(), std::size_t(want.size()) * sizeof(P)) == 0;
}

/// Options as convkit_filter applies a built kernel with --algorithm direct.
options built(output mode = output::same, border edge = border::reflect) {
  options o;
  o.mode = mode;
  o.edge = edge;
  o.correlate = true;
  o.algo = algorithm::direct;
  return o;
}

/// convkit_filter `arguments` on `in` (written from `img`) into `out`: what conv2d computes.
template <class P>
void check_image(const image<P>& img, const std::string& in, const std::string& out, const std::string& arguments,
                 const image<P>& want) {
  files::write_image(in, img);
  std::string messages;
  REQUIRE(filter(arguments + " --algorithm direct --quiet '" + in + "' '" + out + "'", &messages) == 0);
  CHECK(messages.empty());
  CHECK(same_pixels(want, files::read_image(out)));
}

}  // namespace

TEST_CASE("convkit_filter --help prints its usage and exits 0", "[filter][images]") {
  const std::string text = folder() + "/help.txt";
  const int status = std::system(("'" + std::string(CONVKIT_FILTER) + "' --help > '" + text + "'").c_str());
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  std::ifstream f(text);
  const std::string help((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  for (const char* word : {"usage:", "--gaussian", "--sobel", "--box", "--kernel", "--rows", "--float", "PNG"})
    CHECK(help.find(word) != std::string::npos);
}

TEST_CASE("convkit_filter on image files: conv2d's pixels, the type following the input's", "[filter][images]") {
  std::mt19937_64 rng(run_seed() ^ 0xf13ULL);
  const std::string dir = folder();
  // Gaussian (SciPy's rule) on 8-bit RGB: the image call's output, bit for bit.
  image<std::uint8_t> rgb(61, 47, 3);
  fill_pixels(rgb.view(), rng);
  check_image(rgb, dir + "/rgb" + lossless(3), dir + "/blurred" + lossless(3), "--gaussian 2.5",
              conv2d(rgb, kernels::gaussian(2.5), built()));
  // OpenCV's Gaussian (--ksize) on 16-bit gray, another border.
  image<std::uint16_t> deep(40, 52, 1);
  fill_pixels(deep.view(), rng);
  check_image(deep, dir + "/deep" + lossless(1), dir + "/deep-out" + lossless(1),
              "--gaussian 1.2 --ksize 7 --border replicate",
              conv2d(deep, kernels::gaussian(1.2, 7), built(output::same, border::replicate)));
  // Sobel y on 8-bit gray: saturated, as cv::Sobel with an 8-bit destination.
  image<std::uint8_t> gray(33, 29, 1);
  fill_pixels(gray.view(), rng);
  check_image(gray, dir + "/gray.pgm", dir + "/sobel-y.pgm", "--sobel y", conv2d(gray, kernels::sobel(0, 1), built()));
  // A box in valid mode, PPM to PPM.
  check_image(rgb, dir + "/rgb.ppm", dir + "/box.ppm", "--box 3,5 --mode valid",
              conv2d(rgb, kernels::box(3, 5), built(output::valid)));
  // A kernel file, convolved (flipped) unless --correlate, as for raw files.
  {
    std::ofstream k(dir + "/k.txt");
    k << "1 2 0\n0 -1 3\n";
  }
  array2d<double> k(2, 3);
  const double taps[] = {1, 2, 0, 0, -1, 3};
  std::copy(taps, taps + 6, k.data());
  options flipped = built();
  flipped.correlate = false;
  check_image(gray, dir + "/gray.pgm", dir + "/file-kernel.pgm", "--kernel '" + dir + "/k.txt'",
              conv2d(gray, k, flipped));

  if (files::available(files::format::tiff)) {
    // --float: float32 TIFF, no rounding or saturation (a Sobel's negative side kept), exact.
    files::write_image(dir + "/gray.pgm", gray);
    REQUIRE(filter("--sobel x --float --algorithm direct --quiet '" + dir + "/gray.pgm' '" + dir + "/sx.tif'") == 0);
    image<float> want(gray.rows(), gray.cols(), 1);
    conv2d(gray, kernels::sobel(1, 0), want, built());
    CHECK(same_pixels(want, files::read_image(dir + "/sx.tif")));
    bool negative = false;
    for (index_t i = 0; i < want.size(); ++i) negative = negative || want.data()[i] < 0;
    CHECK(negative);
    // A float32 TIFF in, a float32 TIFF out; int16 likewise.
    image<float> floats(30, 20, 2);
    fill_pixels(floats.view(), rng);
    check_image(floats, dir + "/f.tif", dir + "/f-out.tiff", "--gaussian 1",
                conv2d(floats, kernels::gaussian(1.0), built()));
    image<std::int16_t> signed16(25, 26, 4);
    fill_pixels(signed16.view(), rng);
    check_image(signed16, dir + "/s.tif", dir + "/s-out.tif", "--box 2", conv2d(signed16, kernels::box(2, 2), built()));
  }
  if (files::available(files::format::jpeg)) {
    // A JPEG in: the pixels it decodes to, filtered.
    image<std::uint8_t> photo(64, 48, 3);
    for (index_t r = 0; r < 64; ++r)
      for (index_t c = 0; c < 48; ++c)
        for (index_t ch = 0; ch < 3; ++ch) photo(r, c, ch) = std::uint8_t((r * 3 + c * 2 + ch * 40) % 256);
    files::write_image(dir + "/photo.jpg", photo);
    const auto decoded = files::read_image_as<std::uint8_t>(dir + "/photo.jpg");
    REQUIRE(filter("--gaussian 2 --algorithm direct --quiet '" + dir + "/photo.jpg' '" + dir + "/photo.ppm'") == 0);
    CHECK(same_pixels(conv2d(decoded, kernels::gaussian(2.0), built()), files::read_image(dir + "/photo.ppm")));
  }
}

TEST_CASE("convkit_filter: a built kernel on a raw file streams as the file kernel does", "[filter]") {
  std::mt19937_64 rng(run_seed() ^ 0xf14ULL);
  const std::string dir = folder();
  array2d<float> img(230, 170);
  fill_random(img.view(), rng);
  write_raw<float>(dir + "/g.raw", img);
  REQUIRE(filter("--rows 230 --cols 170 --gaussian 3 --algorithm direct --quiet --memory 64K '" + dir + "/g.raw' '" +
                 dir + "/g-out.raw'") == 0);
  const array2d<double> k = kernels::gaussian(3.0);
  array2d<float> kf(k.rows(), k.cols());
  for (index_t i = 0; i < k.size(); ++i) kf.data()[i] = float(k.data()[i]);
  const array2d<float> want = conv2d<float>(img, kf, built());
  const array2d<float> got = read_raw<float>(dir + "/g-out.raw", want.rows(), want.cols());
  CHECK(std::memcmp(got.data(), want.data(), std::size_t(want.size()) * sizeof(float)) == 0);
}

TEST_CASE("convkit_filter on image files: bad files and arguments fail clearly, leaving no output",
          "[filter][images][errors]") {
  const std::string dir = folder(), in = dir + "/e-in.pgm";
  image<std::uint16_t> deep(20, 20, 1);
  files::write_image(in, deep);
  const std::string before = [&] {
    std::ifstream f(in, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }();
  std::string messages;
  // The same file, by its name or another (a hard link): refused, the input untouched.
  CHECK(filter("--box 3 '" + in + "' '" + in + "'", &messages) == 1);
  CHECK(messages.find("same file") != std::string::npos);
  const std::string link = dir + "/e-link.pgm";
  ::unlink(link.c_str());
  REQUIRE(::link(in.c_str(), link.c_str()) == 0);
  CHECK(filter("--box 3 '" + in + "' '" + link + "'", &messages) == 1);
  CHECK(messages.find("same file") != std::string::npos);
  CHECK(filter("--rows 20 --cols 10 --box 3 '" + in + "' '" + dir + "/./e-in.pgm'", &messages) == 1);
  CHECK(messages.find("same file") != std::string::npos);
  {
    std::ifstream f(in, std::ios::binary);
    CHECK(std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()) == before);
  }
  // A pipe: refused by name (without waiting for a writer), raw or image.
  const std::string fifo = dir + "/e-fifo";
  ::unlink(fifo.c_str());
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK(filter("--box 3 '" + fifo + "' '" + dir + "/e-out.png'", &messages) == 1);
  CHECK(messages.find("e-fifo is a pipe (FIFO), not a regular file") != std::string::npos);
  CHECK(filter("--rows 4 --cols 4 --box 3 '" + fifo + "' '" + dir + "/e-out.raw'", &messages) == 1);
  CHECK(messages.find("pipe") != std::string::npos);
  // Outputs a format cannot hold: refused before any work, no file left.
  CHECK(filter("--box 3 '" + in + "' '" + dir + "/e-out.bmp'", &messages) == 2);
  CHECK(messages.find("e-out.bmp") != std::string::npos);
  CHECK(filter("--box 3 --float '" + in + "' '" + dir + "/e-out.png'", &messages) == 2);
  CHECK(messages.find("--float") != std::string::npos);
  if (files::available(files::format::jpeg)) {
    CHECK(filter("--box 3 '" + in + "' '" + dir + "/e-out.jpg'", &messages) == 1);
    CHECK(messages.find("JPEG holds 8-bit pixels") != std::string::npos);
  }
  // Inputs that are not images, or lie.
  {
    std::ofstream t(dir + "/e-text.png");
    t << "not a picture\n";
    std::ofstream c(dir + "/e-cut.pgm", std::ios::binary);
    c << "P5\n100 100\n255\n" << std::string(50, 'x');
  }
  CHECK(filter("--box 3 '" + dir + "/e-text.png' '" + dir + "/e-out.pgm'", &messages) == 1);
  CHECK(messages.find("e-text.png: not an image file") != std::string::npos);
  CHECK(filter("--box 3 '" + dir + "/e-cut.pgm' '" + dir + "/e-out.pgm'", &messages) == 1);
  CHECK(messages.find("e-cut.pgm") != std::string::npos);
  CHECK(messages.find("truncated") != std::string::npos);
  CHECK(filter("--box 3 --max-pixels 100 '" + in + "' '" + dir + "/e-out.pgm'", &messages) == 1);
  CHECK(messages.find("max_pixels") != std::string::npos);
  // Kernel arguments.
  CHECK(filter("--gaussian 2 --box 3 '" + in + "' '" + dir + "/e-out.pgm'", &messages) == 2);
  CHECK(messages.find("one kernel") != std::string::npos);
  CHECK(filter("--sobel z '" + in + "' '" + dir + "/e-out.pgm'", &messages) == 2);
  CHECK(filter("--sobel x --ksize 4 '" + in + "' '" + dir + "/e-out.pgm'", &messages) == 2);
  CHECK(messages.find("--sobel") != std::string::npos);
  CHECK(filter("--gaussian 0 '" + in + "' '" + dir + "/e-out.pgm'", &messages) == 2);
  CHECK(filter("'" + in + "' '" + dir + "/e-out.pgm'", &messages) == 2);
  CHECK(messages.find("a kernel is required") != std::string::npos);
  for (const char* name : {"e-out.png", "e-out.bmp", "e-out.jpg", "e-out.pgm", "e-out.raw"}) {
    INFO(name);
    CHECK(!exists(dir + "/" + name));
  }
  const std::string listing = dir + "/listing.txt";
  CHECK(std::system(("ls '" + dir + "' > '" + listing + "'").c_str()) == 0);
  std::ifstream l(listing);
  const std::string all((std::istreambuf_iterator<char>(l)), std::istreambuf_iterator<char>());
  CHECK(all.find("convkit-partial") == std::string::npos);
}

}  // namespace convkit::testing
