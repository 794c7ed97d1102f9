// convkit_filter: convolves an image with a kernel. Two kinds of files:
//
// Image files (PNG, JPEG, PGM/PPM, TIFF: tools/image_files.hpp), filtered in memory by one process:
//   convkit_filter --gaussian 2.5 photo.jpg blurred.png
//   convkit_filter --sobel x --float photo.png gradient.tif
//       the pixel type follows INPUT's (8-bit, 16-bit, int16, float32, float64: integer outputs rounded
//       half to even and saturated, as convkit's image calls do), the format OUTPUT's extension;
//       --float writes float32 pixels instead (TIFF only: a Sobel's negative side kept)
//
// Raw files (row-major float32 or float64, the size given on the command line): files larger than memory.
//   convkit_filter --rows 100000 --cols 100000 --kernel gauss.txt in.f32 out.f32
//       one process: streams bands of output rows through --memory (default 1G): each band's input
//       rows are read, convolved and written before the next, so the file may exceed the RAM
//   mpirun -np 8 convkit_filter --rows 100000 --cols 100000 --kernel gauss.txt in.f32 out.f32
//       several processes (a build with convkit::mpi): each rank reads its band of rows with MPI-IO,
//       the ranks exchange halos (convkit::mpi::plan) and each writes its band of the output
//
// The kernel, one of: --kernel FILE: text (one kernel row per line, numbers separated by spaces or
// commas), or raw values of --type with --kernel-shape KRxKC; --gaussian SIGMA (SciPy's gaussian_filter
// kernel; with --ksize N, OpenCV's getGaussianKernel(N, SIGMA)); --sobel x|y (OpenCV's first
// derivative, --ksize 1..31, default 3); --box N[,M] (normalised, cv::blur). The built kernels are
// applied as OpenCV applies them (correlation: --sobel x is positive where brightness rises to the right).
// Options: --type float32|float64 (raw files; default float32); --mode full|same|valid (default same);
// --border zero|constant|replicate|reflect|symmetric|circular (default reflect) and --value V for
// constant; --stride R[,C]; --dilation R[,C]; --correlate (--kernel FILE); --algorithm
// automatic|direct|fft|im2col|cufft; --threads N; --memory BYTES (raw files; K, M, G suffixes);
// --float, --quality Q (JPEG output, default 95), --max-pixels N (image files; default 2^28);
// --quiet (no progress on stderr); --help (usage on stdout, exit status 0).
// INPUT must be a regular file (not a pipe), and not OUTPUT itself (compared by device and inode).
// The output is written under a temporary name beside OUTPUT and renamed when complete: a failure
// leaves no partial OUTPUT. Exit status 0 on success, 1 on an error (its message on stderr), 2 on
// a usage error.
#include <convkit/convkit.hpp>
#include <convkit/detail/direct_cost.hpp>  // band_tuning (the compiled mode's umbrella leaves the backends out)
#include <convkit/detail/row_bands.hpp>
#include <convkit/kernels.hpp>
#if defined(CONVKIT_HAS_MPI)
#include <convkit/distributed/mpi.hpp>
#endif

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "image_files.hpp"

namespace {

using convkit::index_t;

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Where the kernel comes from: a file, or one of convkit's builders (kernels.hpp).
enum class kernel_source { none, file, gaussian, sobel, box };

struct arguments {
  index_t rows = 0, cols = 0, k_rows = 0, k_cols = 0;
  bool double_precision = false, quiet = false, help = false;
  std::string kernel_file, input, output;
  index_t memory = index_t(1) << 30;
  convkit::options opt;
  kernel_source kernel_from = kernel_source::none;
  double sigma = 0;
  index_t ksize = 0;  // 0: the builder's default
  int sobel_dx = 0, sobel_dy = 0;
  index_t box_rows = 0, box_cols = 0;
  // Image files.
  bool float_output = false;
  int quality = 95;
  index_t max_pixels = index_t(1) << 28;
  /// Raw files (--rows and --cols given) or image files.
  bool raw() const { return rows > 0 || cols > 0; }
};

const char* const synopsis =
    "usage: convkit_filter [--gaussian SIGMA | --sobel x|y | --box N[,M] | --kernel FILE] [options] INPUT OUTPUT\n"
    "       (image files: PNG, JPEG, PGM/PPM, TIFF; raw float files with --rows R --cols C; --help for more)\n";

const char* const help_text =
    "usage: convkit_filter KERNEL [options] INPUT OUTPUT\n"
    "\n"
    "Image files (PNG, JPEG, PGM/PPM, TIFF), filtered in memory by one process:\n"
    "  convkit_filter --gaussian 2.5 photo.jpg blurred.png\n"
    "  The pixel type follows INPUT's (8-bit, 16-bit, int16, float32, float64; integer outputs rounded\n"
    "  half to even and saturated), the format OUTPUT's extension (.png .jpg .jpeg .pgm .ppm .pnm .tif .tiff).\n"
    "Raw files (row-major float32/float64), streamed through --memory, or over the ranks of mpirun:\n"
    "  convkit_filter --rows R --cols C --kernel FILE in.f32 out.f32\n"
    "\n"
    "KERNEL, one of:\n"
    "  --kernel FILE         text, one kernel row per line; or raw values of --type with --kernel-shape KRxKC\n"
    "  --gaussian SIGMA      SciPy's gaussian_filter kernel (radius int(4 SIGMA + 0.5));\n"
    "                        with --ksize N, OpenCV's getGaussianKernel(N, SIGMA)\n"
    "  --sobel x|y           OpenCV's Sobel first derivative along x (across columns) or y (down rows);\n"
    "                        --ksize 1, 3, ..., 31 (default 3)\n"
    "  --box N[,M]           the normalised N x M box (cv::blur)\n"
    "  The built kernels are applied as OpenCV applies them (correlation): --sobel x is positive where\n"
    "  brightness rises to the right; integer outputs saturate, so use --float to keep its negative side.\n"
    "\n"
    "Options:\n"
    "  --mode full|same|valid      output size (default same)\n"
    "  --border NAME               zero, constant, replicate, reflect (default), symmetric or circular\n"
    "  --value V                   the constant border's value\n"
    "  --stride R[,C]              --dilation R[,C]: as in convkit::options\n"
    "  --correlate                 apply a --kernel FILE without flipping it\n"
    "  --algorithm NAME            automatic (default), direct, fft, im2col or cufft\n"
    "  --threads N                 --quiet: no progress on stderr\n"
    "Image files:\n"
    "  --float                     write float32 pixels (OUTPUT .tif/.tiff): no rounding or saturation\n"
    "  --quality Q                 JPEG output quality, 1 to 100 (default 95)\n"
    "  --max-pixels N              refuse larger images (default 268435456 = 2^28)\n"
    "Raw files:\n"
    "  --rows R --cols C           the image's size (required)\n"
    "  --type float32|float64      the values (default float32)\n"
    "  --memory SIZE               the budget of a streamed run, K/M/G suffixes (default 1G)\n"
    "\n"
    "INPUT must be a regular file, and not OUTPUT itself. OUTPUT is written under a temporary name and\n"
    "renamed when complete. Exit status: 0 done, 1 error, 2 usage error.\n";

index_t parse_size(const std::string& s, const char* what) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  double scale = 1;
  const std::string unit = end != nullptr ? std::string(end) : "";
  if (unit == "K" || unit == "k")
    scale = 1024.0;
  else if (unit == "M" || unit == "m")
    scale = 1024.0 * 1024;
  else if (unit == "G" || unit == "g")
    scale = 1024.0 * 1024 * 1024;
  else if (!unit.empty())
    throw usage_error(std::string(what) + ": '" + s + "' is not a size (e.g. 512M, 2G)");
  if (!(v > 0) || v * scale > 9e18) throw usage_error(std::string(what) + ": '" + s + "' is not a positive size");
  return index_t(v * scale);
}

index_t parse_count(const std::string& s, const char* what) {
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (end == s.c_str() || *end != 0 || v <= 0)
    throw usage_error(std::string(what) + " must be a positive integer, got '" + s + "'");
  return index_t(v);
}

double parse_number(const std::string& s, const char* what) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != 0 || !std::isfinite(v))
    throw usage_error(std::string(what) + " must be a number, got '" + s + "'");
  return v;
}

void parse_pair(const std::string& s, int& a, int& b, const char* what) {
  const auto comma = s.find(',');
  a = int(parse_count(s.substr(0, comma), what));
  b = comma == std::string::npos ? a : int(parse_count(s.substr(comma + 1), what));
}

/// The enumerator of E named `s` (convkit's names: types.hpp).
template <class E>
E parse_enum(const std::string& s, const char* what) {
  if (const std::optional<E> e = convkit::detail::enum_parse<E>(s)) return *e;
  std::string all;
  for (const auto& entry : convkit::detail::enum_table<E>::entries)
    all += std::string(all.empty() ? "" : ", ") + entry.name;
  throw usage_error(std::string(what) + " must be one of " + all + ", got '" + s + "'");
}

arguments parse(int argc, char** argv) {
  arguments a;
  a.opt.mode = convkit::output::same;
  a.opt.edge = convkit::border::reflect;
  std::vector<std::string> files;
  const auto kernel_from = [&](kernel_source source, const std::string& option) {
    if (a.kernel_from != kernel_source::none)
      throw usage_error(option + ": give one kernel (--kernel, --gaussian, --sobel or --box)");
    a.kernel_from = source;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw usage_error(k + " needs a value");
      return argv[++i];
    };
    using convkit::border;
    using convkit::output;
    if (k == "--rows")
      a.rows = parse_count(value(), "--rows");
    else if (k == "--cols")
      a.cols = parse_count(value(), "--cols");
    else if (k == "--type") {
      const std::string v = value();
      if (v != "float32" && v != "float64")
        throw usage_error("--type must be one of float32, float64, got '" + v + "'");
      a.double_precision = v == "float64";
    } else if (k == "--help" || k == "-h") {
      a.help = true;
      return a;
    } else if (k == "--kernel") {
      kernel_from(kernel_source::file, k);
      a.kernel_file = value();
    } else if (k == "--gaussian") {
      kernel_from(kernel_source::gaussian, k);
      a.sigma = parse_number(value(), "--gaussian");
    } else if (k == "--sobel") {
      kernel_from(kernel_source::sobel, k);
      const std::string v = value();
      if (v != "x" && v != "y") throw usage_error("--sobel must be x or y, got '" + v + "'");
      a.sobel_dx = v == "x";
      a.sobel_dy = v == "y";
    } else if (k == "--box") {
      kernel_from(kernel_source::box, k);
      int r = 0, c = 0;
      parse_pair(value(), r, c, "--box");
      a.box_rows = r;
      a.box_cols = c;
    } else if (k == "--ksize")
      a.ksize = parse_count(value(), "--ksize");
    else if (k == "--float")
      a.float_output = true;
    else if (k == "--quality") {
      a.quality = int(std::min<index_t>(1000, parse_count(value(), "--quality")));
      if (a.quality > 100) throw usage_error("--quality must be 1 to 100");
    } else if (k == "--max-pixels")
      a.max_pixels = parse_count(value(), "--max-pixels");
    else if (k == "--kernel-shape") {
      const std::string v = value();
      const auto x = v.find('x');
      if (x == std::string::npos) throw usage_error("--kernel-shape must be KRxKC, got '" + v + "'");
      a.k_rows = parse_count(v.substr(0, x), "--kernel-shape rows");
      a.k_cols = parse_count(v.substr(x + 1), "--kernel-shape cols");
    } else if (k == "--mode")
      a.opt.mode = parse_enum<output>(value(), "--mode");
    else if (k == "--border")
      a.opt.edge = parse_enum<border>(value(), "--border");
    else if (k == "--value")
      a.opt.edge_value = std::strtod(value().c_str(), nullptr);
    else if (k == "--stride")
      parse_pair(value(), a.opt.stride_rows, a.opt.stride_cols, "--stride");
    else if (k == "--dilation")
      parse_pair(value(), a.opt.dilation_rows, a.opt.dilation_cols, "--dilation");
    else if (k == "--correlate")
      a.opt.correlate = true;
    else if (k == "--algorithm")
      a.opt.algo = parse_enum<convkit::algorithm>(value(), "--algorithm");
    else if (k == "--threads")
      a.opt.threads = int(parse_count(value(), "--threads"));
    else if (k == "--memory")
      a.memory = parse_size(value(), "--memory");
    else if (k == "--quiet")
      a.quiet = true;
    else if (!k.empty() && k[0] == '-')
      throw usage_error("unknown option " + k);
    else
      files.push_back(k);
  }
  if (files.size() != 2) throw usage_error("give an INPUT and an OUTPUT file");
  if (a.raw() && (a.rows == 0 || a.cols == 0))
    throw usage_error("--rows and --cols go together (a raw file); an image file needs neither");
  if (a.kernel_from == kernel_source::none)
    throw usage_error("a kernel is required: --kernel FILE, --gaussian SIGMA, --sobel x|y or --box N");
  if (a.kernel_from != kernel_source::file) {
    if (a.k_rows > 0) throw usage_error("--kernel-shape goes with --kernel FILE");
    if (a.opt.correlate)
      throw usage_error("--correlate goes with --kernel FILE: the built kernels are applied as OpenCV applies them");
    a.opt.correlate = true;  // kernels.hpp's kernels are in correlation order
  }
  if (a.ksize > 0 && a.kernel_from != kernel_source::gaussian && a.kernel_from != kernel_source::sobel)
    throw usage_error("--ksize goes with --gaussian or --sobel");
  if (a.raw() && a.float_output) throw usage_error("--float is for image files: a raw file's values are --type");
  a.input = files[0];
  a.output = files[1];
  return a;
}

/// The kernel a builder option names (kernels.hpp), in double; its errors are usage errors.
convkit::array2d<double> built_kernel(const arguments& a) {
  namespace k = convkit::kernels;
  try {
    switch (a.kernel_from) {
      case kernel_source::gaussian: return a.ksize > 0 ? k::gaussian(a.sigma, a.ksize) : k::gaussian(a.sigma);
      case kernel_source::sobel: return k::sobel(a.sobel_dx, a.sobel_dy, a.ksize > 0 ? a.ksize : 3);
      case kernel_source::box: return k::box(a.box_rows, a.box_cols);
      default: break;
    }
  } catch (const convkit::error& e) {
    const char* option = a.kernel_from == kernel_source::gaussian ? "--gaussian"
                         : a.kernel_from == kernel_source::sobel  ? "--sobel"
                                                                  : "--box";
    throw usage_error(std::string(option) + ": " + e.what());
  }
  throw usage_error("no kernel");
}

/// The kernel: text (rows of numbers) or raw values of T with --kernel-shape.
template <class T>
convkit::array2d<T> read_kernel(const arguments& a) {
  std::ifstream f(a.kernel_file, std::ios::binary);
  if (!f) throw failure("cannot read the kernel file " + a.kernel_file + ": " + std::strerror(errno));
  if (a.k_rows > 0) {
    convkit::array2d<T> k(a.k_rows, a.k_cols);
    f.read(reinterpret_cast<char*>(k.data()), std::streamsize(k.size() * index_t(sizeof(T))));
    if (f.gcount() != std::streamsize(k.size() * index_t(sizeof(T))))
      throw failure("the kernel file " + a.kernel_file + " is shorter than " + std::to_string(a.k_rows) + "x" +
                    std::to_string(a.k_cols) + " values");
    return k;
  }
  std::vector<std::vector<double>> rows;
  std::string line;
  while (std::getline(f, line)) {
    for (char& c : line)
      if (c == ',') c = ' ';
    std::istringstream s(line);
    std::vector<double> row;
    double v;
    while (s >> v) row.push_back(v);
    if (!s.eof()) throw failure("the kernel file " + a.kernel_file + " has something other than numbers: " + line);
    if (!row.empty()) rows.push_back(row);
  }
  if (rows.empty()) throw failure("the kernel file " + a.kernel_file + " holds no numbers");
  for (const auto& r : rows)
    if (r.size() != rows[0].size()) throw failure("the kernel file " + a.kernel_file + "'s rows differ in length");
  convkit::array2d<T> k(index_t(rows.size()), index_t(rows[0].size()));
  for (index_t i = 0; i < k.rows(); ++i)
    for (index_t j = 0; j < k.cols(); ++j) k(i, j) = T(rows[std::size_t(i)][std::size_t(j)]);
  return k;
}

/// A file opened for positioned reads or writes; closed (and, for an unfinished output, removed) at
/// the end.
class file {
 public:
  file(const std::string& path, bool write) : path_(path) {
    fd_ = write ? ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644) : ::open(path.c_str(), O_RDONLY);
    if (fd_ < 0) throw failure("cannot open " + path + ": " + std::strerror(errno));
  }
  ~file() {
    if (fd_ >= 0) ::close(fd_);
  }
  file(const file&) = delete;
  file& operator=(const file&) = delete;
  index_t size() const {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw failure("cannot stat " + path_ + ": " + std::strerror(errno));
    return index_t(st.st_size);
  }
  void read(void* to, index_t bytes, index_t at) const {
    auto* p = static_cast<char*>(to);
    while (bytes > 0) {
      const ssize_t n = ::pread(fd_, p, std::size_t(std::min<index_t>(bytes, index_t(1) << 30)), off_t(at));
      if (n <= 0)
        throw failure("cannot read " + path_ + " at byte " + std::to_string(at) +
                      (n == 0 ? ": the file ends" : std::string(": ") + std::strerror(errno)));
      p += n, at += n, bytes -= n;
    }
  }
  void write(const void* from, index_t bytes, index_t at) const {
    const auto* p = static_cast<const char*>(from);
    while (bytes > 0) {
      const ssize_t n = ::pwrite(fd_, p, std::size_t(std::min<index_t>(bytes, index_t(1) << 30)), off_t(at));
      if (n <= 0) throw failure("cannot write " + path_ + ": " + std::strerror(errno));
      p += n, at += n, bytes -= n;
    }
  }
  void sync() const {
    if (::fsync(fd_) != 0) throw failure("cannot write " + path_ + ": " + std::strerror(errno));
  }

 private:
  std::string path_;
  int fd_ = -1;
};

/// The output's temporary name beside it: renamed over OUTPUT only when complete.
std::string temporary_name(const std::string& output) {
  return output + ".convkit-partial." + std::to_string(::getpid());
}

/// Removes a file when it goes out of scope, unless keep() was called.
class removed_unless_kept {
 public:
  explicit removed_unless_kept(std::string path) : path_(std::move(path)) {}
  ~removed_unless_kept() {
    if (!kept_) std::remove(path_.c_str());
  }
  removed_unless_kept(const removed_unless_kept&) = delete;
  removed_unless_kept& operator=(const removed_unless_kept&) = delete;
  void keep() { kept_ = true; }

 private:
  std::string path_;
  bool kept_ = false;
};

class progress {
 public:
  progress(bool quiet, index_t total) : quiet_(quiet), total_(total) {}
  void done(index_t rows) {
    const auto now = std::chrono::steady_clock::now();
    if (quiet_ || (rows < total_ && now - last_ < std::chrono::seconds(1))) return;
    last_ = now;
    const double s = std::chrono::duration<double>(now - start_).count();
    std::fprintf(stderr, "convkit_filter: %td of %td output rows (%.1f%%), %.1f s\n", rows, total_,
                 100.0 * double(rows) / double(total_), s);
  }

 private:
  bool quiet_;
  index_t total_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_ = start_;
};

/// One process: bands of output rows, each computed from the input rows it reads, within --memory.
template <class T>
void stream(const arguments& a, const convkit::array2d<T>& kernel) {
  namespace d = convkit::detail;
  const d::conv_problem global = d::image_problem<T>(a.rows, a.cols, kernel, a.opt, true);
  const index_t bytes = index_t(sizeof(T)), out_rows = global.rows.out, out_cols = global.cols.out;
  const file in(a.input, false);
  if (in.size() != a.rows * a.cols * bytes)
    throw failure(a.input + " holds " + std::to_string(in.size()) + " bytes; a " + std::to_string(a.rows) + "x" +
                  std::to_string(a.cols) + " " + (bytes == 4 ? "float32" : "float64") + " image needs " +
                  std::to_string(a.rows * a.cols * bytes));
  // Rows per band: its input rows and output rows within half the budget (the rest for the backend's
  // own workspace: FFT tiles, band copies).
  const d::axis_geometry& r = global.rows;
  const index_t per_output = (r.sparse() ? r.kernel : r.stride) * a.cols * bytes + out_cols * bytes;
  const index_t fixed = (r.sparse() ? 0 : r.span) * a.cols * bytes;
  const index_t band = std::min(out_rows, (a.memory / 2 - fixed) / per_output);
  if (a.memory / 2 <= fixed || band < 1)
    throw failure("--memory " + std::to_string(a.memory) + " bytes is too small: one band of output rows needs " +
                  std::to_string(2 * (fixed + per_output)) + " bytes for this image and kernel");
  const std::string partial = temporary_name(a.output);
  removed_unless_kept cleanup(partial);
  {
    const file out(partial, true);
    progress shown(a.quiet, out_rows);
    const d::settings tune = d::band_tuning(global);
    const convkit::array2d<T> weights = d::correlation_order(kernel.view(), a.opt.correlate);
    std::vector<T> input, output;
    for (index_t o0 = 0; o0 < out_rows; o0 += band) {
      const index_t o1 = std::min(out_rows, o0 + band);
      d::band_runner<T> runner(d::row_band(global, o0, o1), tune, weights.data());
      const std::vector<index_t>& sources = runner.band().sources();
      input.resize(sources.size() * std::size_t(a.cols));
      output.resize(std::size_t((o1 - o0) * out_cols));
      // Runs of consecutive rows in one read each; border rows read where the border rule leads.
      for (std::size_t i = 0; i < sources.size();) {
        T* to = input.data() + i * std::size_t(a.cols);
        if (sources[i] < 0) {
          std::fill(to, to + a.cols, global.fill<T>());
          ++i;
          continue;
        }
        std::size_t j = i + 1;
        while (j < sources.size() && sources[j] == sources[j - 1] + 1) ++j;
        in.read(to, index_t(j - i) * a.cols * bytes, sources[i] * a.cols * bytes);
        i = j;
      }
      runner.run(convkit::view2d<const T>(input.data(), index_t(sources.size()), a.cols),
                 convkit::view2d<T>(output.data(), o1 - o0, out_cols));
      out.write(output.data(), (o1 - o0) * out_cols * bytes, o0 * out_cols * bytes);
      shown.done(o1);
    }
    out.sync();
  }
  if (std::rename(partial.c_str(), a.output.c_str()) != 0)
    throw failure("cannot rename " + partial + " to " + a.output + ": " + std::strerror(errno));
  cleanup.keep();
}

#if defined(CONVKIT_HAS_MPI)
/// Throws on every rank if `message` is not empty on any (convkit::mpi's rule).
void agree(MPI_Comm comm, const std::string& message) { convkit::mpi::detail::agree(comm, message); }

/// Runs `step` on every rank; an exception on any rank is thrown on all.
template <class Step>
void collectively(MPI_Comm comm, Step&& step) {
  std::string problem;
  try {
    step();
  } catch (const std::exception& e) {
    problem = e.what();
  }
  agree(comm, problem);
}

/// MPI-IO of `bytes` at `at`, collective, in pieces MPI's int counts hold (every rank calls as
/// many times as the rank with the most pieces).
void transfer(MPI_Comm comm, MPI_File f, bool write, void* data, index_t bytes, index_t at, const std::string& path) {
  const index_t piece = index_t(1) << 30;
  long long pieces = (bytes + piece - 1) / piece, most = 0;
  MPI_Allreduce(&pieces, &most, 1, MPI_LONG_LONG, MPI_MAX, comm);
  auto* p = static_cast<char*>(data);
  std::string problem;
  for (long long i = 0; i < most; ++i) {
    const index_t off = index_t(i) * piece, n = std::max<index_t>(0, std::min(piece, bytes - off));
    MPI_Status status;
    const int rc = write ? MPI_File_write_at_all(f, MPI_Offset(at + off), p + off, int(n), MPI_BYTE, &status)
                         : MPI_File_read_at_all(f, MPI_Offset(at + off), p + off, int(n), MPI_BYTE, &status);
    int done = 0;
    MPI_Get_count(&status, MPI_BYTE, &done);
    if ((rc != MPI_SUCCESS || done != int(n)) && problem.empty())
      problem = std::string("cannot ") + (write ? "write " : "read ") + path + " at byte " + std::to_string(at + off);
  }
  agree(comm, problem);
}

/// Several processes: rank r holds input rows [rows r / N, rows (r + 1) / N), read and written with MPI-IO.
template <class T>
void distributed(const arguments& a, const convkit::array2d<T>& kernel, MPI_Comm comm) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const index_t bytes = index_t(sizeof(T)), first = a.rows * rank / size, count = a.rows * (rank + 1) / size - first;
  std::unique_ptr<convkit::mpi::plan<T>> plan;
  collectively(comm, [&] {
    const convkit::shape2d out = convkit::output_shape(a.rows, a.cols, kernel.rows(), kernel.cols(), a.opt);
    const index_t need = (count + 2 * kernel.rows()) * a.cols * bytes + (count + kernel.rows()) * out.cols * bytes;
    if (need > a.memory)
      throw failure("--memory " + std::to_string(a.memory) + " bytes is too small for this rank's band (" +
                    std::to_string(need) + " bytes): run more ranks, or raise --memory");
  });
  plan = std::make_unique<convkit::mpi::plan<T>>(comm, count, a.cols, first, a.rows, kernel.view(), a.opt);
  MPI_File in;
  if (MPI_File_open(comm, a.input.c_str(), MPI_MODE_RDONLY, MPI_INFO_NULL, &in) != MPI_SUCCESS)
    throw failure("cannot open " + a.input);
  MPI_Offset size_in = 0;
  MPI_File_get_size(in, &size_in);
  try {
    collectively(comm, [&] {
      if (index_t(size_in) != a.rows * a.cols * bytes)
        throw failure(a.input + " holds " + std::to_string(size_in) + " bytes; a " + std::to_string(a.rows) + "x" +
                      std::to_string(a.cols) + " image of this type needs " + std::to_string(a.rows * a.cols * bytes));
    });
  } catch (...) {
    MPI_File_close(&in);
    throw;
  }
  convkit::array2d<T> band(count, a.cols);
  transfer(comm, in, false, band.data(), band.size() * bytes, first * a.cols * bytes, a.input);
  MPI_File_close(&in);
  const convkit::mpi::band<T> out = plan->execute(band.view());
  // One temporary name for all ranks: rank 0's.
  std::string partial = temporary_name(a.output);
  int length = int(partial.size());
  MPI_Bcast(&length, 1, MPI_INT, 0, comm);
  partial.resize(std::size_t(length));
  MPI_Bcast(&partial[0], length, MPI_CHAR, 0, comm);
  MPI_File f;
  if (MPI_File_open(comm, partial.c_str(), MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &f) != MPI_SUCCESS)
    throw failure("cannot create " + partial);
  try {
    transfer(comm, f, true, const_cast<T*>(out.rows.data()), out.rows.size() * bytes,
             out.first_row * plan->output_cols() * bytes, partial);
    MPI_File_sync(f);
  } catch (...) {
    MPI_File_close(&f);
    if (rank == 0) std::remove(partial.c_str());
    throw;
  }
  MPI_File_close(&f);
  MPI_Barrier(comm);
  collectively(comm, [&] {
    if (rank == 0 && std::rename(partial.c_str(), a.output.c_str()) != 0) {
      std::remove(partial.c_str());
      throw failure("cannot rename " + partial + " to " + a.output + ": " + std::strerror(errno));
    }
  });
}
#endif

/// A raw file's kernel: the kernel file's, or a builder's in T.
template <class T>
convkit::array2d<T> raw_kernel(const arguments& a) {
  if (a.kernel_from == kernel_source::file) return read_kernel<T>(a);
  const convkit::array2d<double> k = built_kernel(a);
  convkit::array2d<T> t(k.rows(), k.cols());
  for (index_t i = 0; i < k.size(); ++i) t.data()[i] = T(k.data()[i]);
  return t;
}

template <class T>
void run(const arguments& a, int ranks) {
  const convkit::array2d<T> kernel = raw_kernel<T>(a);
#if defined(CONVKIT_HAS_MPI)
  if (ranks > 1) return distributed<T>(a, kernel, MPI_COMM_WORLD);
#endif
  (void)ranks;
  stream<T>(a, kernel);
}

/// An image file's kernel, in double: a builder's, or the kernel file's (raw values of --type).
convkit::array2d<double> image_kernel(const arguments& a) {
  if (a.kernel_from != kernel_source::file) return built_kernel(a);
  if (a.k_rows > 0 && !a.double_precision) {
    const convkit::array2d<float> k = read_kernel<float>(a);
    convkit::array2d<double> d(k.rows(), k.cols());
    for (index_t i = 0; i < k.size(); ++i) d.data()[i] = k.data()[i];
    return d;
  }
  return read_kernel<double>(a);
}

/// An image file (PNG, JPEG, PGM/PPM, TIFF) filtered in memory: convkit's image calls on its pixels.
void filter_image(const arguments& a, int ranks) {
  namespace files = convkit::files;
  if (ranks > 1)
    throw failure(
        "image files are filtered by one process: run convkit_filter without mpirun (its ranks share "
        "raw files, given with --rows and --cols)");
  const std::optional<files::format> to = files::format_of_extension(a.output);
  if (!to)
    throw usage_error("OUTPUT " + a.output +
                      ": its extension names no image format (.png, .jpg, .jpeg, .pgm, .ppm, .pnm, .tif, .tiff); a "
                      "raw float file needs --rows and --cols");
  if (a.float_output && *to != files::format::tiff)
    throw usage_error("--float writes float32 pixels, which only TIFF holds: name OUTPUT .tif or .tiff");
  if (!files::available(*to))
    throw failure(a.output + ": this build of convkit_filter has no " + files::name(*to) +
                  " support (its library was not found when it was built)");
  const convkit::array2d<double> kernel = image_kernel(a);
  files::write_options write;
  write.jpeg_quality = a.quality;
  files::read_limits limits;
  limits.max_pixels = a.max_pixels;
  const auto start = std::chrono::steady_clock::now();
  files::any_image input;
  try {
    input = files::read_image(a.input, limits);
  } catch (const files::file_error& e) {
    std::string what = e.what();
    if (what.find("not an image file") != std::string::npos) what += "; a raw float file needs --rows and --cols";
    throw failure(what);
  }
  std::visit(
      [&](const auto& img) {
        using P = typename std::decay_t<decltype(img)>::value_type;
        if (a.float_output) {
          files::check_writable<float>(a.output, img.channels(), write);  // before the work, not after
          const convkit::shape2d s = convkit::output_shape(img.rows(), img.cols(), kernel.rows(), kernel.cols(), a.opt);
          convkit::image<float> out(s.rows, s.cols, img.channels());
          convkit::conv2d(img, kernel, out, a.opt);
          files::write_image(a.output, out, write);
        } else {
          files::check_writable<P>(a.output, img.channels(), write);
          files::write_image(a.output, convkit::conv2d(img, kernel, a.opt), write);
        }
        if (!a.quiet)
          std::fprintf(stderr, "convkit_filter: %s (%td x %td pixels, %td channel%s, %s) -> %s (%s%s), %.2f s\n",
                       a.input.c_str(), img.cols(), img.rows(), img.channels(), img.channels() == 1 ? "" : "s",
                       files::pixel_name<P>(), a.output.c_str(), files::name(*to), a.float_output ? ", float32" : "",
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      },
      input);
}

/// INPUT is a regular file (not a pipe: its size is checked, its rows read where they lie), and OUTPUT
/// is not INPUT itself under any name (same device and inode: a link, another path, the same path).
void check_paths(const arguments& a) {
  struct stat in {};
  if (::stat(a.input.c_str(), &in) != 0) throw failure("cannot open " + a.input + ": " + std::strerror(errno));
  if (!S_ISREG(in.st_mode))
    throw failure("INPUT " + a.input + " is " + convkit::files::kind_of(in.st_mode) +
                  ", not a regular file: convkit_filter reads regular files only");
  struct stat out {};
  if (::stat(a.output.c_str(), &out) == 0 && out.st_dev == in.st_dev && out.st_ino == in.st_ino)
    throw failure("INPUT " + a.input + " and OUTPUT " + a.output + " are the same file (device " +
                  std::to_string(in.st_dev) + ", inode " + std::to_string(in.st_ino) +
                  "): write the output to another file");
}

}  // namespace

int main(int argc, char** argv) {
  int rank = 0, ranks = 1;
#if defined(CONVKIT_HAS_MPI)
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
#endif
  int status = 0;
  try {
    const arguments a = parse(argc, argv);
    if (a.help) {
      if (rank == 0) std::fputs(help_text, stdout);
    } else {
      check_paths(a);
      if (!a.raw())
        filter_image(a, ranks);
      else if (a.double_precision)
        run<double>(a, ranks);
      else
        run<float>(a, ranks);
    }
  } catch (const usage_error& e) {
    if (rank == 0) std::fprintf(stderr, "convkit_filter: %s\n%s", e.what(), synopsis);
    status = 2;
  } catch (const std::exception& e) {
    if (rank == 0) std::fprintf(stderr, "convkit_filter: %s\n", e.what());
    status = 1;
  }
#if defined(CONVKIT_HAS_MPI)
  if (status != 0 && ranks > 1) MPI_Abort(MPI_COMM_WORLD, status);
  MPI_Finalize();
#endif
  return status;
}
