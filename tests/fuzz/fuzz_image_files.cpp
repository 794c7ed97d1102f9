// The image-file readers (tools/image_files.hpp) against any bytes: written to a file and read back
// with read_image, they must give an image the bytes could describe (1-4 channels, no more pixels
// than the limit, every element readable) or a files::file_error; never a crash, a sanitizer
// report, a hang, or an allocation beyond the limit.
//
// Built with clang's -fsanitize=fuzzer,address,undefined (CONVKIT_LIBFUZZER) it is a libFuzzer target
// (tests/fuzz/run.sh), with our reader instrumented (libpng, libjpeg and libtiff are the system's);
// built otherwise it has a main() that reads the seed files given as arguments, then mutations of
// them (cut short, bytes overwritten, runs of bytes repeated):
//   fuzz_image_files [--runs N] [--seed S] [files...]
#include <image_files.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <variant>

namespace {

// Where the bytes go: one file per process, in TMPDIR.
const std::string& scratch_path() {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/convkit_fuzz_image_" +
           std::to_string(::getpid());
  }();
  return path;
}

// Reads every element (so that a buffer shorter than the shape it claims fails under ASan) and
// checks the shape against the limit; aborts on a contradiction.
template <class T>
void check(const convkit::image<T>& img, convkit::index_t max_pixels) {
  if (img.channels() < 1 || img.channels() > 4 || img.rows() < 1 || img.cols() < 1 ||
      img.rows() * img.cols() > max_pixels) {
    std::fprintf(stderr, "fuzz_image_files: read an image of %lld x %lld x %lld\n", static_cast<long long>(img.rows()),
                 static_cast<long long>(img.cols()), static_cast<long long>(img.channels()));
    std::abort();
  }
  double sum = 0;
  const convkit::image_view<const T> v = img.view();
  for (convkit::index_t r = 0; r < v.rows(); ++r)
    for (convkit::index_t c = 0; c < v.cols(); ++c)
      for (convkit::index_t ch = 0; ch < v.channels(); ++ch) sum += double(v(r, c, ch));
  if (sum == 0.123456789) std::fprintf(stderr, " ");  // keeps the reads
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  {
    std::ofstream f(scratch_path(), std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  }
  convkit::files::read_limits limits;
  limits.max_pixels = convkit::index_t(1) << 22;
  try {
    const convkit::files::any_image img = convkit::files::read_image(scratch_path(), limits);
    std::visit([&](const auto& i) { check(i, limits.max_pixels); }, img);
  } catch (const convkit::files::file_error&) {
  }
  return 0;
}

#if !defined(CONVKIT_LIBFUZZER)
#include <iterator>
#include <random>
#include <vector>

int main(int argc, char** argv) {
  long runs = 2000;
  std::uint64_t seed = std::random_device{}();
  std::vector<std::vector<std::uint8_t>> seeds;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      runs = std::atol(argv[++i]);
    } else if (a == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::ifstream f(a, std::ios::binary);
      seeds.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
  }
  for (const auto& s : seeds) LLVMFuzzerTestOneInput(s.data(), s.size());
  std::mt19937_64 rng(seed);
  for (long r = 0; r < runs && !seeds.empty(); ++r) {
    std::vector<std::uint8_t> d = seeds[rng() % seeds.size()];
    const int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits && !d.empty(); ++e) {
      const std::size_t at = rng() % d.size();
      switch (rng() % 4) {
        case 0: d.resize(at); break;                                               // cut short
        case 1: d[at] = std::uint8_t(rng()); break;                                // one byte
        case 2: d[at] = std::uint8_t(d[at] ^ (1u << (rng() % 8))); break;          // one bit
        default: d.insert(d.begin() + std::ptrdiff_t(at), 1 + rng() % 64, d[at]);  // a run
      }
    }
    LLVMFuzzerTestOneInput(d.data(), d.size());
  }
  std::printf("fuzz_image_files: %zu seed files; %ld mutations from seed %llu\n", seeds.size(), runs,
              static_cast<unsigned long long>(seed));
  std::remove(scratch_path().c_str());
  return 0;
}
#endif
