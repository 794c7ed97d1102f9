// convkit_filter: convolves an image stored in a raw file (row-major float32 or float64, its size
// given on the command line) with a kernel, and writes the raw output: files larger than memory.
//
//   convkit_filter --rows 100000 --cols 100000 --kernel gauss.txt in.f32 out.f32
//       one process: streams bands of output rows through --memory (default 1G): each band's input
//       rows are read, convolved and written before the next, so the file may exceed the RAM
//   mpirun -np 8 convkit_filter --rows 100000 --cols 100000 --kernel gauss.txt in.f32 out.f32
//       several processes (a build with convkit::mpi): each rank reads its band of rows with MPI-IO,
//       the ranks exchange halos (convkit::mpi::plan) and each writes its band of the output
//
// Options: --type float32|float64 (default float32); --kernel FILE: text (one kernel row per line,
// numbers separated by spaces or commas), or raw values of --type with --kernel-shape KRxKC;
// --mode full|same|valid (default same); --border zero|constant|replicate|reflect|symmetric|circular
// (default reflect) and --value V for constant; --stride R[,C]; --dilation R[,C]; --correlate;
// --algorithm automatic|direct|fft|im2col|cufft; --threads N; --memory BYTES (K, M, G suffixes);
// --quiet (no progress on stderr).
// The output is written under a temporary name beside OUTPUT and renamed when complete: a failure
// leaves no partial OUTPUT. Exit status 0 on success, 1 on an error (its message on stderr), 2 on
// a usage error.
#include <convkit/convkit.hpp>
#include <convkit/detail/row_bands.hpp>
#if defined(CONVKIT_HAS_MPI)
#include <convkit/distributed/mpi.hpp>
#endif

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

using convkit::index_t;

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct arguments {
  index_t rows = 0, cols = 0, k_rows = 0, k_cols = 0;
  bool double_precision = false, quiet = false;
  std::string kernel_file, input, output;
  index_t memory = index_t(1) << 30;
  convkit::options opt;
};

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
    } else if (k == "--kernel")
      a.kernel_file = value();
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
  if (a.rows == 0 || a.cols == 0) throw usage_error("--rows and --cols are required");
  if (a.kernel_file.empty()) throw usage_error("--kernel is required");
  a.input = files[0];
  a.output = files[1];
  return a;
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

template <class T>
void run(const arguments& a, int ranks) {
  const convkit::array2d<T> kernel = read_kernel<T>(a);
#if defined(CONVKIT_HAS_MPI)
  if (ranks > 1) return distributed<T>(a, kernel, MPI_COMM_WORLD);
#endif
  (void)ranks;
  stream<T>(a, kernel);
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
    if (a.double_precision)
      run<double>(a, ranks);
    else
      run<float>(a, ranks);
  } catch (const usage_error& e) {
    if (rank == 0)
      std::fprintf(stderr,
                   "convkit_filter: %s\nusage: convkit_filter --rows R --cols C --kernel FILE [--kernel-shape KRxKC] "
                   "[--type float32|float64] [--mode full|same|valid] [--border NAME] [--value V] [--stride R[,C]] "
                   "[--dilation R[,C]] [--correlate] [--algorithm NAME] [--threads N] [--memory SIZE] [--quiet] "
                   "INPUT OUTPUT\n",
                   e.what());
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
