// The image-file module of the tools and examples (tools/image_files.hpp): every format's round trip
// (write, read, the same pixels, for each pixel type and channel count the format holds; JPEG within
// its loss), the variants a reader meets (palette, 1-bit and interlaced PNG, PNM comments and maxval,
// tiled TIFF), and hostile files: empty, not regular, not an image, truncated, lying headers (refused
// before allocating: a forked child with a small address-space limit proves it), too many channels,
// unsupported bit depths; each refusal names the file and what is wrong. Formats this build lacks are
// checked to be refused by name instead (CONVKIT_TEST_FORMATS: what CMake found).
#include "image_files.hpp"

#include <catch2/catch.hpp>

#include "count_allocations.hpp"
#include "problems.hpp"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <new>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#if defined(CONVKIT_TEST_PNG)
#include <png.h>
#endif
#if defined(CONVKIT_TEST_JPEG)
#include <jpeglib.h>
#endif
#if defined(CONVKIT_TEST_TIFF)
#include <tiffio.h>
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CONVKIT_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define CONVKIT_TEST_SANITIZED 1
#endif
#endif

namespace convkit::testing {
namespace {

using Catch::Matchers::Contains;
using files::any_image;
using files::file_error;
using files::format;

/// A folder of its own under the build tree's temporary directory.
std::string folder() {
  static const std::string dir = [] {
    std::string d = std::string(CONVKIT_TEST_TMP) + "/image-files-" + std::to_string(::getpid());
    ::mkdir(CONVKIT_TEST_TMP, 0755);
    ::mkdir(d.c_str(), 0755);
    return d;
  }();
  return dir;
}

std::string path(const std::string& name) { return folder() + "/" + name; }

bool built(format f) {
  const std::string formats = CONVKIT_TEST_FORMATS;  // e.g. "pnm,png,jpeg,tiff"
  static const char* const names[] = {"png", "jpeg", "pnm", "tiff"};
  return ("," + formats + ",").find(std::string(",") + names[int(f)] + ",") != std::string::npos;
}

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void spit(const std::string& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

/// What read_image throws for `p` ("(read)" if it reads it).
std::string refusal(const std::string& p, const files::read_limits& limits = {}) {
  try {
    (void)files::read_image(p, limits);
  } catch (const file_error& e) {
    return e.what();
  }
  return "(read)";
}

template <class T>
std::string write_refusal(const std::string& p, const image<T>& img, const files::write_options& opt = {}) {
  try {
    files::write_image(p, img, opt);
  } catch (const file_error& e) {
    return e.what();
  }
  return "(written)";
}

template <class T>
void fill(image<T>& img, std::mt19937_64& rng) {
  for (index_t i = 0; i < img.size(); ++i) {
    if constexpr (std::is_integral_v<T>)
      img.data()[i] =
          T(std::uniform_int_distribution<int>(std::numeric_limits<T>::lowest(), std::numeric_limits<T>::max())(rng));
    else
      img.data()[i] = T(std::uniform_real_distribution<double>(-1e6, 1e6)(rng));
  }
}

/// Smooth content with a little noise: what a photograph looks like to JPEG.
void fill_smooth(image<std::uint8_t>& img, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> noise(-4, 4);
  for (index_t r = 0; r < img.rows(); ++r)
    for (index_t c = 0; c < img.cols(); ++c)
      for (index_t ch = 0; ch < img.channels(); ++ch) {
        const double v = 128 + 90 * std::sin(0.11 * double(r) + 0.7 * double(ch)) * std::cos(0.07 * double(c));
        img(r, c, ch) = std::uint8_t(std::clamp(int(v) + noise(rng), 0, 255));
      }
}

template <class T>
bool same(const image<T>& a, const any_image& b) {
  const auto* p = std::get_if<image<T>>(&b);
  return p != nullptr && p->rows() == a.rows() && p->cols() == a.cols() && p->channels() == a.channels() &&
         std::memcmp(p->data(), a.data(), std::size_t(a.size()) * sizeof(T)) == 0;
}

const char* extension(format f) {
  switch (f) {
    case format::png: return ".png";
    case format::jpeg: return ".jpg";
    case format::pnm: return ".pnm";
    default: return ".tif";
  }
}

template <class T>
void round_trips(format f, std::initializer_list<index_t> channel_counts, std::mt19937_64& rng) {
  const shape2d shapes[] = {{1, 1}, {7, 13}, {64, 33}, {3, 200}};
  for (index_t channels : channel_counts)
    for (const shape2d& s : shapes) {
      image<T> img(s.rows, s.cols, channels);
      fill(img, rng);
      const std::string p = path(std::string("round") + extension(f));
      INFO(files::name(f) << " " << files::pixel_name<T>() << " " << s.rows << "x" << s.cols << " x" << channels);
      files::write_image(p, img);
      CHECK(same(img, files::read_image(p)));
      CHECK(!exists(p + ".convkit-partial." + std::to_string(::getpid())));
    }
}

/// A little-endian TIFF with its directory before its pixels, one strip, written byte by byte (so
/// that a cut in the pixels leaves the directory whole, and headers can lie).
std::string tiny_tiff(std::uint32_t cols, std::uint32_t rows, std::uint16_t samples, std::uint16_t bits,
                      std::uint16_t sample_format, std::uint16_t photometric, const std::string& pixels) {
  struct entry {
    std::uint16_t tag, type;
    std::vector<std::uint32_t> values;
  };
  const std::vector<std::uint32_t> per_sample_bits(samples, bits), per_sample_format(samples, sample_format);
  std::vector<entry> entries = {
      {256, 4, {cols}},    {257, 4, {rows}},           {258, 3, per_sample_bits},
      {259, 3, {1}},       {262, 3, {photometric}},    {273, 4, {0}},  // the strip's offset, filled in below
      {277, 3, {samples}}, {278, 4, {rows}},           {279, 4, {std::uint32_t(pixels.size())}},
      {284, 3, {1}},       {339, 3, per_sample_format}};
  if (samples == 2 || samples == 4) entries.push_back({338, 3, {2}});  // an alpha sample
  std::sort(entries.begin(), entries.end(), [](const entry& a, const entry& b) { return a.tag < b.tag; });
  const std::uint32_t ifd = 8, after_ifd = ifd + 2 + std::uint32_t(entries.size()) * 12 + 4;
  std::string out, extra;
  const auto put = [](std::string& s, std::uint32_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) s += char((v >> (8 * i)) & 0xff);
  };
  // Arrays that do not fit in an entry go after the directory, before the pixels.
  std::uint32_t extra_size = 0;
  for (const entry& e : entries) {
    const std::uint32_t size = std::uint32_t(e.values.size()) * (e.type == 3 ? 2 : 4);
    if (size > 4) extra_size += size;
  }
  const std::uint32_t pixels_at = after_ifd + extra_size;
  out += "II";
  put(out, 42, 2);
  put(out, ifd, 4);
  put(out, std::uint32_t(entries.size()), 2);
  for (entry& e : entries) {
    if (e.tag == 273) e.values = {pixels_at};
    const int width = e.type == 3 ? 2 : 4;
    put(out, e.tag, 2);
    put(out, e.type, 2);
    put(out, std::uint32_t(e.values.size()), 4);
    if (e.values.size() * std::size_t(width) <= 4) {
      std::string inline_values;
      for (std::uint32_t v : e.values) put(inline_values, v, width);
      inline_values.resize(4, '\0');
      out += inline_values;
    } else {
      put(out, after_ifd + std::uint32_t(extra.size()), 4);
      for (std::uint32_t v : e.values) put(extra, v, width);
    }
  }
  put(out, 0, 4);  // no next directory
  return out + extra + pixels;
}

std::uint32_t crc32(const std::string& bytes, std::size_t from, std::size_t n) {
  std::uint32_t c = 0xffffffffu;
  for (std::size_t i = from; i < from + n; ++i) {
    c ^= static_cast<unsigned char>(bytes[i]);
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
  }
  return c ^ 0xffffffffu;
}

void put_be32(std::string& s, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + std::size_t(i)] = char((v >> (24 - 8 * i)) & 0xff);
}

/// A PNG whose IHDR claims cols x rows (its CRC made right, so only the size lies).
std::string lying_png(const std::string& valid, std::uint32_t cols, std::uint32_t rows) {
  std::string s = valid;
  put_be32(s, 16, cols);
  put_be32(s, 20, rows);
  put_be32(s, 29, crc32(s, 12, 17));
  return s;
}

/// A JPEG whose SOF claims cols x rows.
std::string lying_jpeg(const std::string& valid, std::uint16_t cols, std::uint16_t rows) {
  std::string s = valid;
  for (std::size_t i = 2; i + 9 < s.size(); ++i)
    if (static_cast<unsigned char>(s[i]) == 0xff && (static_cast<unsigned char>(s[i + 1]) & 0xf0) == 0xc0 &&
        static_cast<unsigned char>(s[i + 1]) != 0xc4 && static_cast<unsigned char>(s[i + 1]) != 0xc8 &&
        static_cast<unsigned char>(s[i + 1]) != 0xcc) {
      s[i + 5] = char(rows >> 8), s[i + 6] = char(rows & 0xff);
      s[i + 7] = char(cols >> 8), s[i + 8] = char(cols & 0xff);
      return s;
    }
  FAIL("no SOF marker in the JPEG");
  return s;
}

/// Reads `p` in a forked child whose address space may grow by only 128 MiB (which the codec
/// libraries' own malloc()s count against too): 0 when the read is refused with a file_error
/// containing `expected`, 3 for std::bad_alloc, 4 for another exception (convkit's "cannot allocate"),
/// 5 when it read the file. -1 under sanitizers (their shadow memory needs more address space than
/// any such limit allows).
int read_in_small_address_space(const std::string& p, const std::string& expected) {
#if defined(CONVKIT_TEST_SANITIZED)
  (void)p, (void)expected;
  return -1;
#else
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child == 0) {
    long pages = 0;
    if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
      std::fclose(f);
    }
    const rlim_t limit = rlim_t(pages) * rlim_t(::sysconf(_SC_PAGESIZE)) + (rlim_t(128) << 20);
    const rlimit r{limit, limit};
    if (pages == 0 || ::setrlimit(RLIMIT_AS, &r) != 0) ::_exit(6);
    try {
      (void)files::read_image(p);
    } catch (const file_error& e) {
      ::_exit(std::string(e.what()).find(expected) != std::string::npos ? 0 : 7);
    } catch (const std::bad_alloc&) {
      ::_exit(3);
    } catch (...) {
      ::_exit(4);
    }
    ::_exit(5);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
#endif
}

/// `p` is refused, and nothing near its claimed size was asked of operator new (every build,
/// sanitized ones too: convkit's images come from operator new), nor of the address space.
void check_refused_before_allocating(const std::string& p, const std::string& expected) {
  largest_allocation = 0;
  CHECK_THAT(refusal(p), Contains(expected));
  CHECK(largest_allocation.load() < (std::size_t(16) << 20));
  const int r = read_in_small_address_space(p, expected);
  INFO(p << ": child status " << r << " (0 refused, 3 out of memory, 5 read)");
  if (r == -1) {
    WARN("sanitized build: the address-space check is left out");
    return;
  }
  CHECK(r == 0);
}

}  // namespace

TEST_CASE("image files: the formats this build has are the ones CMake found", "[files]") {
  for (format f : {format::png, format::jpeg, format::pnm, format::tiff}) {
    INFO(files::name(f));
    CHECK(files::available(f) == built(f));
  }
  CHECK(files::format_of_extension("a/b.PNG") == format::png);
  CHECK(files::format_of_extension("b.jpeg") == format::jpeg);
  CHECK(files::format_of_extension("b.JPG") == format::jpeg);
  CHECK(files::format_of_extension("b.pgm") == format::pnm);
  CHECK(files::format_of_extension("b.Tiff") == format::tiff);
  CHECK(!files::format_of_extension("b.raw"));
  CHECK(!files::format_of_extension("dir.png/b"));
}

TEST_CASE("image files: formats left out of the build are refused by name", "[files]") {
  for (format f : {format::png, format::jpeg, format::tiff}) {
    if (files::available(f)) continue;
    image<std::uint8_t> img(4, 4, 1);
    const std::string p = path(std::string("missing") + extension(f));
    CHECK_THAT(write_refusal(p, img), Contains(p) && Contains("no " + std::string(files::name(f)) + " support"));
    CHECK(!exists(p));
  }
}

TEST_CASE("image files: PGM/PPM round trips, 8- and 16-bit, gray and color", "[files][pnm]") {
  std::mt19937_64 rng(run_seed() ^ 0x9e3ULL);
  round_trips<std::uint8_t>(format::pnm, {1, 3}, rng);
  round_trips<std::uint16_t>(format::pnm, {1, 3}, rng);
  // The names .pgm and .ppm say the channels.
  image<std::uint8_t> gray(5, 6, 1), color(5, 6, 3);
  fill(gray, rng);
  fill(color, rng);
  files::write_image(path("g.pgm"), gray);
  files::write_image(path("c.ppm"), color);
  CHECK(same(gray, files::read_image(path("g.pgm"))));
  CHECK(same(color, files::read_image(path("c.ppm"))));
  CHECK(slurp(path("g.pgm")).substr(0, 2) == "P5");
  CHECK(slurp(path("c.ppm")).substr(0, 2) == "P6");
  CHECK_THAT(write_refusal(path("c.pgm"), color), Contains("c.pgm") && Contains(".ppm"));
  CHECK_THAT(write_refusal(path("g.ppm"), gray), Contains("g.ppm") && Contains("3 channels"));
  // Comments, other whitespace, a maxval other than 255 (values kept as stored), 16-bit big-endian.
  spit(path("comments.pgm"), std::string("P5 # a comment\n# another\n3\t2\r\n1023\n") +
                                 std::string("\x00\x01\x03\xff\x02\x00\x00\x00\x01\x00\x00\x07", 12));
  const auto img = files::read_image_as<std::uint16_t>(path("comments.pgm"));
  REQUIRE(img.rows() == 2);
  REQUIRE(img.cols() == 3);
  CHECK(img(0, 0, 0) == 1);
  CHECK(img(0, 1, 0) == 1023);
  CHECK(img(0, 2, 0) == 512);
  CHECK(img(1, 2, 0) == 7);
  // A sample above maxval is a lie.
  spit(path("above.pgm"), std::string("P5 2 1 100\n") + char(5) + char(101));
  CHECK_THAT(refusal(path("above.pgm")), Contains("above.pgm") && Contains("above maxval 100"));
  // read_image_as names the pixel type the file holds.
  CHECK_THROWS_WITH(files::read_image_as<float>(path("comments.pgm")), Contains("16-bit") && Contains("float32"));
}

TEST_CASE("image files: PNG round trips, 8- and 16-bit, 1 to 4 channels", "[files][png]") {
  if (!files::available(format::png)) return;
  std::mt19937_64 rng(run_seed() ^ 0x9e4ULL);
  round_trips<std::uint8_t>(format::png, {1, 2, 3, 4}, rng);
  round_trips<std::uint16_t>(format::png, {1, 2, 3, 4}, rng);
  // A window on a larger image (rows padded) writes its own pixels.
  image<std::uint8_t> big(20, 30, 3), window(5, 7, 3);
  fill(big, rng);
  for (index_t r = 0; r < 5; ++r)
    for (index_t c = 0; c < 7; ++c)
      for (index_t ch = 0; ch < 3; ++ch) window(r, c, ch) = big(r + 4, c + 9, ch);
  files::write_image<std::uint8_t>(path("window.png"),
                                   image_view<const std::uint8_t>(&big(4, 9, 0), 5, 7, 3, big.cols() * 3));
  CHECK(same(window, files::read_image(path("window.png"))));
}

#if defined(CONVKIT_TEST_PNG)
namespace {
/// A PNG written by libpng itself: palette, sub-8-bit gray, interlacing.
void libpng_file(const std::string& p, int cols, int rows, int depth, int color, int interlace,
                 const std::vector<std::vector<png_byte>>& rows_data, const std::vector<png_color>& palette = {},
                 const std::vector<png_byte>& alpha = {}) {
  std::FILE* f = std::fopen(p.c_str(), "wb");
  REQUIRE(f != nullptr);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  REQUIRE(setjmp(png_jmpbuf(png)) == 0);
  png_init_io(png, f);
  png_set_IHDR(png, info, png_uint_32(cols), png_uint_32(rows), depth, color, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) png_set_PLTE(png, info, palette.data(), int(palette.size()));
  if (!alpha.empty()) png_set_tRNS(png, info, alpha.data(), int(alpha.size()), nullptr);
  png_write_info(png, info);
  std::vector<png_bytep> pointers;
  for (const auto& r : rows_data) pointers.push_back(const_cast<png_bytep>(r.data()));
  png_write_image(png, pointers.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(f);
}
}  // namespace

TEST_CASE("image files: PNG palettes, 1-bit gray and interlacing are expanded", "[files][png]") {
  // 1-bit gray, 10 pixels a row: 0 -> 0, 1 -> 255.
  libpng_file(path("bits.png"), 10, 2, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, {{0xa5, 0xc0}, {0x00, 0x40}});
  const auto bits = files::read_image_as<std::uint8_t>(path("bits.png"));
  REQUIRE(bits.channels() == 1);
  const int want0[] = {1, 0, 1, 0, 0, 1, 0, 1, 1, 1};
  for (int c = 0; c < 10; ++c) CHECK(bits(0, c, 0) == want0[c] * 255);
  CHECK(bits(1, 9, 0) == 255);
  CHECK(bits(1, 8, 0) == 0);
  // A palette: RGB, or RGBA with a transparency table.
  const std::vector<png_color> palette = {{10, 20, 30}, {200, 100, 50}};
  libpng_file(path("palette.png"), 3, 1, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, {{1, 0, 1}}, palette);
  const auto rgb = files::read_image_as<std::uint8_t>(path("palette.png"));
  REQUIRE(rgb.channels() == 3);
  CHECK((rgb(0, 0, 0) == 200 && rgb(0, 0, 1) == 100 && rgb(0, 0, 2) == 50 && rgb(0, 1, 0) == 10));
  libpng_file(path("palette-alpha.png"), 3, 1, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, {{1, 0, 1}}, palette,
              {128});
  const auto rgba = files::read_image_as<std::uint8_t>(path("palette-alpha.png"));
  REQUIRE(rgba.channels() == 4);
  CHECK((rgba(0, 0, 3) == 255 && rgba(0, 1, 3) == 128));
  // Adam7 interlacing.
  std::vector<std::vector<png_byte>> rows(9, std::vector<png_byte>(11));
  for (int r = 0; r < 9; ++r)
    for (int c = 0; c < 11; ++c) rows[std::size_t(r)][std::size_t(c)] = png_byte(r * 11 + c);
  libpng_file(path("adam7.png"), 11, 9, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_ADAM7, rows);
  const auto adam7 = files::read_image_as<std::uint8_t>(path("adam7.png"));
  bool all = adam7.rows() == 9 && adam7.cols() == 11;
  for (int r = 0; r < 9 && all; ++r)
    for (int c = 0; c < 11; ++c) all = all && adam7(r, c, 0) == r * 11 + c;
  CHECK(all);
}
#endif

TEST_CASE("image files: TIFF round trips, every pixel type, 1 to 4 channels", "[files][tiff]") {
  if (!files::available(format::tiff)) return;
  std::mt19937_64 rng(run_seed() ^ 0x9e5ULL);
  round_trips<std::uint8_t>(format::tiff, {1, 2, 3, 4}, rng);
  round_trips<std::uint16_t>(format::tiff, {1, 2, 3, 4}, rng);
  round_trips<std::int16_t>(format::tiff, {1, 2, 3, 4}, rng);
  round_trips<float>(format::tiff, {1, 2, 3, 4}, rng);
  round_trips<double>(format::tiff, {1, 2, 3, 4}, rng);
  // Non-finite floats and negative zero keep their bits.
  image<float> special(1, 4, 1);
  special(0, 0, 0) = std::numeric_limits<float>::infinity();
  special(0, 1, 0) = -std::numeric_limits<float>::infinity();
  special(0, 2, 0) = std::numeric_limits<float>::quiet_NaN();
  special(0, 3, 0) = -0.0f;
  files::write_image(path("special.tiff"), special);
  CHECK(same(special, files::read_image(path("special.tiff"))));
  // A hand-made uncompressed big-endian-free file: the reader takes what it says.
  const std::string pixels = {1, 2, 3, 4, 5, 6};
  spit(path("tiny.tif"), tiny_tiff(3, 2, 1, 8, 1, 1, pixels));
  const auto tiny = files::read_image_as<std::uint8_t>(path("tiny.tif"));
  CHECK((tiny.rows() == 2 && tiny.cols() == 3 && tiny(1, 2, 0) == 6));
}

#if defined(CONVKIT_TEST_TIFF)
TEST_CASE("image files: tiled TIFF, and planar TIFF refused", "[files][tiff]") {
  std::mt19937_64 rng(run_seed() ^ 0x9e6ULL);
  image<std::uint16_t> img(40, 37, 3);
  fill(img, rng);
  {
    TIFF* t = TIFFOpen(path("tiled.tif").c_str(), "w");
    REQUIRE(t != nullptr);
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, 37u);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, 40u);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 3);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 16);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
    TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_LZW);
    TIFFSetField(t, TIFFTAG_TILEWIDTH, 16u);
    TIFFSetField(t, TIFFTAG_TILELENGTH, 32u);
    std::vector<std::uint16_t> tile(16 * 32 * 3);
    for (std::uint32_t y = 0; y < 40; y += 32)
      for (std::uint32_t x = 0; x < 37; x += 16) {
        std::fill(tile.begin(), tile.end(), 0);
        for (std::uint32_t r = 0; r < 32 && y + r < 40; ++r)
          for (std::uint32_t c = 0; c < 16 && x + c < 37; ++c)
            for (int ch = 0; ch < 3; ++ch) tile[(r * 16 + c) * 3 + std::uint32_t(ch)] = img(y + r, x + c, ch);
        REQUIRE(TIFFWriteTile(t, tile.data(), x, y, 0, 0) > 0);
      }
    TIFFClose(t);
  }
  CHECK(same(img, files::read_image(path("tiled.tif"))));
  {
    TIFF* t = TIFFOpen(path("planar.tif").c_str(), "w");
    REQUIRE(t != nullptr);
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, 4u);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, 2u);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 3);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_SEPARATE);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
    std::vector<std::uint8_t> row(4);
    for (std::uint16_t s = 0; s < 3; ++s)
      for (std::uint32_t r = 0; r < 2; ++r) REQUIRE(TIFFWriteScanline(t, row.data(), r, s) > 0);
    TIFFClose(t);
  }
  CHECK_THAT(refusal(path("planar.tif")), Contains("planar.tif") && Contains("planar (separate)"));
}
#endif

TEST_CASE("image files: JPEG round trips within its loss, gray and color", "[files][jpeg]") {
  if (!files::available(format::jpeg)) return;
  std::mt19937_64 rng(run_seed() ^ 0x9e7ULL);
  for (index_t channels : {1, 3})
    for (const shape2d& s : {shape2d{1, 1}, shape2d{17, 23}, shape2d{64, 80}}) {
      image<std::uint8_t> img(s.rows, s.cols, channels);
      fill_smooth(img, rng);
      INFO(s.rows << "x" << s.cols << " x" << channels);
      files::write_image(path("round.jpg"), img, {std::nullopt, 100});
      const auto back = files::read_image_as<std::uint8_t>(path("round.jpg"));
      REQUIRE((back.rows() == img.rows() && back.cols() == img.cols() && back.channels() == channels));
      int worst = 0;
      double sum = 0;
      for (index_t i = 0; i < img.size(); ++i) {
        const int d = std::abs(int(back.data()[i]) - int(img.data()[i]));
        worst = std::max(worst, d);
        sum += d;
      }
      // Quality 100 (all quantisers 1), 4:4:4: the DCT's and YCbCr's rounding only.
      CHECK(worst <= (channels == 1 ? 2 : 4));
      CHECK(sum / double(img.size()) < 1.0);
    }
  // Lower quality is smaller and still close.
  image<std::uint8_t> img(64, 64, 3);
  fill_smooth(img, rng);
  files::write_image(path("q100.jpg"), img, {std::nullopt, 100});
  files::write_image(path("q50.jpeg"), img, {std::nullopt, 50});
  CHECK(slurp(path("q50.jpeg")).size() < slurp(path("q100.jpg")).size());
  CHECK_THAT(write_refusal(path("q.jpg"), img, {std::nullopt, 0}), Contains("quality"));
}

#if defined(CONVKIT_TEST_JPEG)
TEST_CASE("image files: a CMYK JPEG (4 components) is refused", "[files][jpeg]") {
  std::FILE* f = std::fopen(path("cmyk.jpg").c_str(), "wb");
  REQUIRE(f != nullptr);
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, f);
  c.image_width = 8;
  c.image_height = 8;
  c.input_components = 4;
  c.in_color_space = JCS_CMYK;
  jpeg_set_defaults(&c);
  jpeg_start_compress(&c, TRUE);
  std::vector<JSAMPLE> row(8 * 4, 100);
  while (c.next_scanline < 8) {
    JSAMPROW p = row.data();
    jpeg_write_scanlines(&c, &p, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::fclose(f);
  CHECK_THAT(refusal(path("cmyk.jpg")), Contains("cmyk.jpg") && Contains("too many channels") && Contains("CMYK"));
}
#endif

TEST_CASE("image files: writes a format cannot hold are refused, and leave no file", "[files][errors]") {
  image<float> floats(4, 4, 1);
  image<std::uint16_t> deep(4, 4, 3);
  image<std::uint8_t> two(4, 4, 2), rgba(4, 4, 4);
  if (files::available(format::png)) {
    CHECK_THAT(write_refusal(path("f.png"), floats), Contains("f.png") && Contains("float32") && Contains(".tif"));
  }
  if (files::available(format::jpeg)) {
    CHECK_THAT(write_refusal(path("d.jpg"), deep), Contains("d.jpg") && Contains("16-bit"));
    CHECK_THAT(write_refusal(path("a.jpg"), rgba), Contains("a.jpg") && Contains("4 channels"));
  }
  CHECK_THAT(write_refusal(path("two.pnm"), two), Contains("two.pnm") && Contains("2 channels"));
  CHECK_THAT(write_refusal(path("f.pgm"), floats), Contains("f.pgm") && Contains("float32"));
  CHECK_THAT(write_refusal(path("x.bmp"), two), Contains("x.bmp") && Contains(".png"));
  CHECK_THAT(write_refusal(path("empty.pgm"), image<std::uint8_t>(0, 3, 1)), Contains("empty"));
  CHECK_THAT(write_refusal(path("no-such-dir/x.pgm"), image<std::uint8_t>(2, 2, 1)),
             Contains("no-such-dir/x.pgm") && Contains("cannot create"));
  for (const char* name : {"f.png", "d.jpg", "a.jpg", "two.pnm", "f.pgm", "x.bmp", "empty.pgm"})
    CHECK(!exists(path(name)));
  // An explicit format overrides the name.
  image<std::uint8_t> gray(3, 3, 1);
  files::write_image(path("as-pnm.dat"), gray, {format::pnm, 95});
  CHECK(same(gray, files::read_image(path("as-pnm.dat"))));
}

TEST_CASE("image files: empty, non-regular and non-image files are refused by name", "[files][errors]") {
  for (const char* name : {"empty.png", "empty.jpg", "empty.pgm", "empty.tif"}) {
    spit(path(name), "");
    CHECK_THAT(refusal(path(name)), Contains(path(name)) && Contains("empty file (0 bytes)"));
  }
  spit(path("text.png"), "hello, this is text\n");
  CHECK_THAT(refusal(path("text.png")),
             Contains("text.png") && Contains("not an image file") && Contains("named like a PNG") && Contains("hell"));
  CHECK_THAT(refusal(path("no-such.png")), Contains("no-such.png") && Contains("cannot open"));
  CHECK_THAT(refusal(folder()), Contains("a directory"));
  const std::string fifo = path("fifo.png");
  ::unlink(fifo.c_str());
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THAT(refusal(fifo), Contains(fifo) && Contains("a pipe (FIFO)"));  // and does not wait for a writer
  // PNM variants other than P5 and P6, by name.
  spit(path("ascii.pgm"), "P2 2 2 255 1 2 3 4\n");
  CHECK_THAT(refusal(path("ascii.pgm")), Contains("ascii.pgm") && Contains("P2 (plain graymap) is not supported"));
  spit(path("pam.pnm"), "P7\nWIDTH 2\n");
  CHECK_THAT(refusal(path("pam.pnm")), Contains("P7 (PAM)"));
  spit(path("deep.pgm"), "P5 2 2 70000\n");
  CHECK_THAT(refusal(path("deep.pgm")), Contains("deep.pgm") && Contains("unsupported bit depth: maxval 70000"));
  spit(path("zero.pgm"), "P5 0 2 255\n");
  CHECK_THAT(refusal(path("zero.pgm")), Contains("empty image"));
  spit(path("junk.pgm"), "P5 2 x 255\n");
  CHECK_THAT(refusal(path("junk.pgm")), Contains("height is not a number"));
}

TEST_CASE("image files: truncated files are refused, naming the file", "[files][errors]") {
  std::mt19937_64 rng(run_seed() ^ 0x9e8ULL);
  image<std::uint8_t> img(48, 40, 3);
  fill_smooth(img, rng);
  const auto cut = [&](const std::string& whole, const std::string& name, std::size_t keep) {
    spit(path(name), whole.substr(0, keep));
    return refusal(path(name));
  };
  // PGM/PPM: known before allocating, from the file's size.
  files::write_image(path("whole.ppm"), img);
  const std::string ppm = slurp(path("whole.ppm"));
  CHECK_THAT(cut(ppm, "cut.ppm", ppm.size() - 1), Contains("cut.ppm") && Contains("truncated"));
  CHECK_THAT(cut(ppm, "cut.ppm", 8), Contains("cut.ppm") && Contains("truncated"));
  if (files::available(format::png)) {
    files::write_image(path("whole.png"), img);
    const std::string png = slurp(path("whole.png"));
    for (std::size_t keep : {std::size_t(20), std::size_t(40), png.size() / 2, png.size() - 12, png.size() - 3}) {
      INFO("PNG cut to " << keep << " of " << png.size() << " bytes");
      const std::string why = cut(png, "cut.png", keep);
      CHECK_THAT(why, Contains(path("cut.png")) && Contains("PNG: "));
      if (keep > 40) CHECK_THAT(why, Contains("truncated"));
    }
    // A corrupted byte in the pixels: the CRC says so.
    std::string bad = png;
    bad[bad.size() / 2] = char(bad[bad.size() / 2] ^ 0x55);
    spit(path("crc.png"), bad);
    CHECK_THAT(refusal(path("crc.png")), Contains("crc.png") && Contains("PNG: "));
  }
  if (files::available(format::jpeg)) {
    files::write_image(path("whole.jpg"), img);
    const std::string jpg = slurp(path("whole.jpg"));
    for (std::size_t keep : {std::size_t(10), jpg.size() / 2, jpg.size() - 2}) {
      INFO("JPEG cut to " << keep << " of " << jpg.size() << " bytes");
      const std::string why = cut(jpg, "cut.jpg", keep);
      CHECK_THAT(why, Contains(path("cut.jpg")) && Contains("JPEG: "));
      if (keep > 1000) CHECK_THAT(why, Contains("truncated"));
    }
  }
  if (files::available(format::tiff)) {
    // The directory before the pixels, the pixels cut short.
    std::string pixels(std::size_t(img.size()), '\0');
    std::memcpy(&pixels[0], img.data(), pixels.size());
    const std::string tif = tiny_tiff(40, 48, 3, 8, 1, 2, pixels);
    spit(path("whole-tiny.tif"), tif);
    CHECK(same(img, files::read_image(path("whole-tiny.tif"))));
    CHECK_THAT(cut(tif, "cut.tif", tif.size() / 2), Contains("cut.tif") && Contains("truncated file"));
    CHECK_THAT(cut(tif, "cut.tif", tif.size() - 10), Contains("cut.tif") && Contains("TIFF: cannot decode strip 0"));
    // libtiff's own files keep their directory at the end: a cut loses it.
    files::write_image(path("whole.tif"), img);
    const std::string lib = slurp(path("whole.tif"));
    CHECK_THAT(cut(lib, "cut2.tif", lib.size() / 2), Contains("cut2.tif") && Contains("TIFF: "));
    CHECK_THAT(cut(lib, "cut3.tif", 6), Contains("cut3.tif") && Contains("TIFF: "));
  }
}

TEST_CASE("image files: lying headers are refused before the pixels are allocated", "[files][errors]") {
  std::mt19937_64 rng(run_seed() ^ 0x9e9ULL);
  // PGM: 100000 x 100000 and 16384 x 16384 (2^28 pixels: within max_pixels) with 100 bytes of pixels.
  spit(path("huge.pgm"), "P5\n100000 100000\n255\n" + std::string(100, 'x'));
  CHECK_THAT(refusal(path("huge.pgm")),
             Contains("huge.pgm") && Contains("100000 x 100000") && Contains("refused before allocating"));
  spit(path("big.ppm"), "P6\n16384 16384\n65535\n" + std::string(100, 'x'));
  CHECK_THAT(refusal(path("big.ppm")), Contains("big.ppm") && Contains("refused before allocating"));
  check_refused_before_allocating(path("big.ppm"), "refused before allocating");
  // max_pixels, for an honest file too.
  image<std::uint8_t> honest(100, 100, 1);
  files::write_image(path("honest.pgm"), honest);
  files::read_limits small;
  small.max_pixels = 5000;
  CHECK_THAT(refusal(path("honest.pgm"), small), Contains("honest.pgm") && Contains("max_pixels"));
  CHECK(refusal(path("honest.pgm")) == "(read)");

  if (files::available(format::png)) {
    image<std::uint16_t> tiny(8, 8, 4);
    fill(tiny, rng);
    files::write_image(path("tiny.png"), tiny);
    const std::string valid = slurp(path("tiny.png"));
    spit(path("huge.png"), lying_png(valid, 100000, 100000));
    CHECK_THAT(refusal(path("huge.png")), Contains("huge.png") && Contains("PNG: ") && Contains("100000 x 100000") &&
                                              Contains("refused before allocating"));
    spit(path("big.png"), lying_png(valid, 16384, 16384));  // 2 GiB of 16-bit RGBA
    CHECK_THAT(refusal(path("big.png")), Contains("big.png") && Contains("zlib"));
    check_refused_before_allocating(path("big.png"), "refused before allocating");
    spit(path("empty-dims.png"), lying_png(valid, 0, 10));
    CHECK_THAT(refusal(path("empty-dims.png")), Contains("empty-dims.png") && Contains("PNG: "));
  }
  if (files::available(format::jpeg)) {
    image<std::uint8_t> tiny(16, 16, 1);
    fill_smooth(tiny, rng);
    files::write_image(path("tiny.jpg"), tiny);
    const std::string valid = slurp(path("tiny.jpg"));
    spit(path("huge.jpg"), lying_jpeg(valid, 60000, 60000));
    CHECK_THAT(refusal(path("huge.jpg")), Contains("huge.jpg") && Contains("JPEG: ") && Contains("60000 x 60000") &&
                                              Contains("refused before allocating"));
    spit(path("big.jpg"), lying_jpeg(valid, 16384, 16384));  // 256 MiB of 8-bit gray
    CHECK_THAT(refusal(path("big.jpg")), Contains("big.jpg") && Contains("Huffman"));
    check_refused_before_allocating(path("big.jpg"), "refused before allocating");
  }
  if (files::available(format::tiff)) {
    spit(path("huge.tif"), tiny_tiff(100000, 100000, 1, 8, 1, 1, std::string(100, 'x')));
    CHECK_THAT(refusal(path("huge.tif")), Contains("huge.tif") && Contains("TIFF: ") && Contains("100000 x 100000") &&
                                              Contains("refused before allocating"));
    spit(path("big.tif"), tiny_tiff(16384, 16384, 4, 8, 1, 2, std::string(100, 'x')));  // 1 GiB of RGBA
    check_refused_before_allocating(path("big.tif"), "refused before allocating");
    // Too many channels, unsupported bit depths and kinds, by name.
    spit(path("five.tif"), tiny_tiff(2, 2, 5, 8, 1, 1, std::string(20, 'x')));
    CHECK_THAT(refusal(path("five.tif")), Contains("five.tif") && Contains("too many channels: 5"));
    spit(path("u32.tif"), tiny_tiff(2, 2, 1, 32, 1, 1, std::string(16, 'x')));
    CHECK_THAT(refusal(path("u32.tif")),
               Contains("u32.tif") && Contains("unsupported bit depth: 32-bit unsigned integer"));
    spit(path("i8.tif"), tiny_tiff(2, 2, 1, 8, 2, 1, std::string(4, 'x')));
    CHECK_THAT(refusal(path("i8.tif")), Contains("unsupported bit depth: 8-bit signed integer"));
    spit(path("bits.tif"), tiny_tiff(16, 2, 1, 1, 1, 1, std::string(4, 'x')));
    CHECK_THAT(refusal(path("bits.tif")), Contains("unsupported bit depth: 1-bit"));
    spit(path("cmyk.tif"), tiny_tiff(2, 2, 4, 8, 1, 5, std::string(16, 'x')));
    CHECK_THAT(refusal(path("cmyk.tif")), Contains("cmyk.tif") && Contains("separated (CMYK)"));
    spit(path("white.tif"), tiny_tiff(2, 2, 1, 8, 1, 0, std::string(4, 'x')));
    CHECK_THAT(refusal(path("white.tif")), Contains("MinIsWhite"));
  }
}

}  // namespace convkit::testing
