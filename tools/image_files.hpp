// image_files.hpp - image files for convkit's tools, examples and tests: PNG, JPEG, PGM/PPM and TIFF
// read into and written from convkit::image<T>. Not part of the library, which stays header-only with
// no file format: this is the static library convkit_image_files (tools/CMakeLists.txt), built from
// image_files.cpp, the one translation unit that sees libpng, libjpeg(-turbo) and libtiff. A format
// whose library was not found when the build was configured is left out: available() says so, and
// reading or writing it throws file_error saying which library is missing.
//
//   format   pixels read and written (the pixel type follows the file)      channels
//   PNG      std::uint8_t (bit depths 1, 2, 4 expanded to 8), std::uint16_t   1-4 (a palette is
//                                                                             expanded to RGB or RGBA)
//   JPEG     std::uint8_t (written lossy: quality 1-100, 4:4:4 from 90)       1 or 3 (CMYK refused)
//   PGM/PPM  P5/P6, std::uint8_t (maxval < 256), std::uint16_t (big-endian);  1 (P5) or 3 (P6)
//            values as stored: maxval 1023 gives 0..1023, not rescaled
//   TIFF     std::uint8_t, std::uint16_t, std::int16_t, float, double,         1-4 (gray, gray + alpha,
//            contiguous (interleaved) samples, strips or tiles, any codec     RGB, RGBA)
//            libtiff decodes; written Deflate-compressed with a predictor. Planar
//            (separate) samples, palette, MinIsWhite, YCbCr, CMYK and Lab TIFFs are refused by name
//
// Reading never trusts the file: a file that is empty, not regular (a pipe, a directory), truncated,
// or whose header lies is refused with a file_error naming the file, the format and what is wrong,
// before the pixels are allocated wherever the header alone shows the lie:
//   - the pixel count is bounded by what the file's size can decode to: exactly for PGM/PPM and
//     uncompressed TIFF; 1032 bytes per byte for PNG's and TIFF's Deflate (its largest ratio), 4096
//     for TIFF's LZW, 64 for PackBits; one bit per 8x8 block for Huffman-coded JPEG (its smallest);
//   - and by read_limits::max_pixels (default 2^28 = 16384 x 16384), whatever the format, which is
//     the only bound for codecs with no such ratio (arithmetic-coded JPEG, TIFF's ZSTD, LZMA, JPEG).
// libpng's, libjpeg's and libtiff's own allocations are capped as well (chunk sizes, memory limits).
// A file cut short after its header is refused when the decoder reaches its end (no partial image is
// returned); a JPEG's corrupt-data warnings are errors.
//
// Writing takes the format from the path's extension (.png, .jpg/.jpeg, .pgm/.ppm/.pnm, .tif/.tiff,
// any case) unless write_options::as says, refuses a pixel type or channel count the format cannot
// hold (a float image as PNG, 4 channels as JPEG), and writes a temporary file beside the path,
// renamed over it only when complete: a failure leaves no partial file.
//
// Calls from several threads at once are safe: each has its own codec state. libtiff's message
// handlers are process-wide: the first TIFF call replaces them, once, by handlers that route each
// thread's messages to its own call (and no longer print libtiff's messages on stderr).
#pragma once

#include <convkit/image.hpp>

#include <sys/types.h>
#include <cstdint>
#include <optional>
#include <stdexcept>

#include <string>
#include <type_traits>
#include <variant>

namespace convkit::files {

enum class format { png, jpeg, pnm, tiff };

/// "PNG", "JPEG", "PGM/PPM", "TIFF".
const char* name(format f) noexcept;

/// Whether this build reads and writes `f` (PGM/PPM always; the others where their library was found).
bool available(format f) noexcept;

/// The format a path's extension names, if any (.png, .jpg, .jpeg, .pgm, .ppm, .pnm, .tif, .tiff; any case).
std::optional<format> format_of_extension(const std::string& path);

/// What reading or writing an image file throws: "<path>: <format>: <what is wrong>".
struct file_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// An image of whichever pixel type its file holds.
using any_image =
    std::variant<image<std::uint8_t>, image<std::uint16_t>, image<std::int16_t>, image<float>, image<double>>;

/// "8-bit", "16-bit", "int16", "float32", "float64".
template <class T>
constexpr const char* pixel_name() noexcept {
  if constexpr (std::is_same_v<T, std::uint8_t>) return "8-bit";
  if constexpr (std::is_same_v<T, std::uint16_t>) return "16-bit";
  if constexpr (std::is_same_v<T, std::int16_t>) return "int16";
  if constexpr (std::is_same_v<T, float>) return "float32";
  if constexpr (std::is_same_v<T, double>) return "float64";
  return "?";
}
const char* pixel_name(const any_image& img) noexcept;

struct read_limits {
  /// The most pixels (rows x cols) an image file may hold, whatever its size; refused before allocating.
  index_t max_pixels = index_t(1) << 28;
};

/// The image in the file at `path`, its format found from its first bytes (not its name). Throws
/// file_error (see the top of this file).
any_image read_image(const std::string& path, const read_limits& limits = {});

/// read_image(), requiring pixels of type T (file_error naming the file's pixel type otherwise).
template <class T>
image<T> read_image_as(const std::string& path, const read_limits& limits = {}) {
  any_image img = read_image(path, limits);
  if (auto* p = std::get_if<image<T>>(&img)) return std::move(*p);
  throw file_error(path + ": holds " + pixel_name(img) + " pixels, not " + pixel_name<T>());
}

struct write_options {
  std::optional<format> as;  ///< the format; by default the path's extension's
  int jpeg_quality = 95;     ///< 1..100
};

/// Throws the file_error write_image() would for an image of T with `channels` (a format that cannot
/// hold it, an extension naming none), so that a caller can refuse before computing the image.
template <class T>
void check_writable(const std::string& path, index_t channels, const write_options& opt = {});

/// Writes `img` to `path` (see the top of this file). T: std::uint8_t, std::uint16_t, std::int16_t,
/// float or double. Throws file_error.
template <class T>
void write_image(const std::string& path, image_view<const T> img, const write_options& opt = {});
template <class T>
void write_image(const std::string& path, const image<T>& img, const write_options& opt = {}) {
  write_image<T>(path, img.view(), opt);
}
void write_image(const std::string& path, const any_image& img, const write_options& opt = {});

extern template void check_writable<std::uint8_t>(const std::string&, index_t, const write_options&);
extern template void check_writable<std::uint16_t>(const std::string&, index_t, const write_options&);
extern template void check_writable<std::int16_t>(const std::string&, index_t, const write_options&);
extern template void check_writable<float>(const std::string&, index_t, const write_options&);
extern template void check_writable<double>(const std::string&, index_t, const write_options&);
extern template void write_image<std::uint8_t>(const std::string&, image_view<const std::uint8_t>,
                                               const write_options&);
extern template void write_image<std::uint16_t>(const std::string&, image_view<const std::uint16_t>,
                                                const write_options&);
extern template void write_image<std::int16_t>(const std::string&, image_view<const std::int16_t>,
                                               const write_options&);
extern template void write_image<float>(const std::string&, image_view<const float>, const write_options&);
extern template void write_image<double>(const std::string&, image_view<const double>, const write_options&);

/// What a file of mode `m` that is no regular file is, for messages ("a pipe (FIFO)", "a directory").
std::string kind_of(mode_t m);

}  // namespace convkit::files
