// image_files.cpp - PNG (libpng), JPEG (libjpeg-turbo), PGM/PPM and TIFF (libtiff) for convkit's tools.
// See image_files.hpp. CONVKIT_FILES_PNG, CONVKIT_FILES_JPEG and CONVKIT_FILES_TIFF say which
// libraries this build has (tools/CMakeLists.txt).
//
// libpng and libjpeg report errors by longjmp. Each decoding or encoding step that calls them is a
// function of its own that calls setjmp first and holds no object with a destructor, so a longjmp
// never skips one; what outlives a step (the codec's state, the image, row pointers) is made by its
// C++ caller, which turns a failed step into a file_error.
#include "image_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#if defined(CONVKIT_FILES_PNG)
#include <png.h>
#endif
#if defined(CONVKIT_FILES_JPEG)
#include <jpeglib.h>  // after <cstdio>: it needs FILE
// jpeglib.h before jerror.h
#include <jerror.h>
#endif
#if defined(CONVKIT_FILES_TIFF)
#include <tiffio.h>
#endif

namespace convkit::files {

const char* name(format f) noexcept {
  switch (f) {
    case format::png: return "PNG";
    case format::jpeg: return "JPEG";
    case format::pnm: return "PGM/PPM";
    case format::tiff: return "TIFF";
  }
  return "?";
}

bool available(format f) noexcept {
  switch (f) {
    case format::pnm: return true;
#if defined(CONVKIT_FILES_PNG)
    case format::png: return true;
#endif
#if defined(CONVKIT_FILES_JPEG)
    case format::jpeg: return true;
#endif
#if defined(CONVKIT_FILES_TIFF)
    case format::tiff: return true;
#endif
    default: return false;
  }
}

std::optional<format> format_of_extension(const std::string& path) {
  const auto slash = path.find_last_of('/');
  const auto dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return std::nullopt;
  std::string ext = path.substr(dot + 1);
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (ext == "png") return format::png;
  if (ext == "jpg" || ext == "jpeg") return format::jpeg;
  if (ext == "pgm" || ext == "ppm" || ext == "pnm") return format::pnm;
  if (ext == "tif" || ext == "tiff") return format::tiff;
  return std::nullopt;
}

const char* pixel_name(const any_image& img) noexcept {
  return std::visit([](const auto& i) { return pixel_name<typename std::decay_t<decltype(i)>::value_type>(); }, img);
}

namespace {

[[noreturn]] void fail(const std::string& path, format f, const std::string& what) {
  throw file_error(path + ": " + name(f) + ": " + what);
}

std::string library_of(format f) {
  switch (f) {
    case format::png: return "libpng (Debian: libpng-dev)";
    case format::jpeg: return "libjpeg (Debian: libjpeg-dev)";
    case format::tiff: return "libtiff (Debian: libtiff-dev)";
    default: return "?";
  }
}

[[noreturn]] void unavailable(const std::string& path, format f) {
  fail(path, f,
       std::string("this build of convkit's tools has no ") + name(f) + " support: " + library_of(f) +
           " was not found when it was configured");
}

/// An open regular file, its size known before anything is read.
class source {
 public:
  explicit source(std::string path) : path_(std::move(path)) {
    // O_NONBLOCK: opening a FIFO must not wait for a writer before it is refused.
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd_ < 0) throw file_error(path_ + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw file_error(path_ + ": cannot stat: " + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
      throw file_error(path_ + ": " + kind_of(st.st_mode) +
                       ", not a regular file: image files are read from regular files, whose size bounds what their "
                       "headers may claim");
    size_ = index_t(st.st_size);
    if (size_ == 0) throw file_error(path_ + ": empty file (0 bytes)");
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
  }
  ~source() {
    if (fd_ >= 0) ::close(fd_);
  }
  source(const source&) = delete;
  source& operator=(const source&) = delete;

  const std::string& path() const noexcept { return path_; }
  int fd() const noexcept { return fd_; }
  index_t size() const noexcept { return size_; }

 private:
  std::string path_;
  int fd_ = -1;
  index_t size_ = 0;
};

/// A FILE* of its own on a source's file, from its start; closed at the end.
class stdio_file {
 public:
  explicit stdio_file(const source& s) {
    const int fd = ::dup(s.fd());
    if (fd >= 0) f_ = ::fdopen(fd, "rb");
    if (f_ == nullptr) {
      if (fd >= 0) ::close(fd);
      throw file_error(s.path() + ": cannot read: " + std::strerror(errno));
    }
    std::rewind(f_);
  }
  ~stdio_file() {
    if (f_ != nullptr) std::fclose(f_);
  }
  stdio_file(const stdio_file&) = delete;
  stdio_file& operator=(const stdio_file&) = delete;
  FILE* get() const noexcept { return f_; }

 private:
  FILE* f_ = nullptr;
};

std::string dims(index_t cols, index_t rows) { return std::to_string(cols) + " x " + std::to_string(rows); }

/// Refuses, before anything is allocated, a header whose image is empty, has more than 4 channels,
/// decodes from more bytes than the file's size allows (`stream_bytes`: the bytes the codec must
/// produce; `ratio`: the most it produces per byte of file, 0 where no bound is known), or has more
/// pixels than limits.max_pixels.
void check_claim(const source& s, format f, index_t rows, index_t cols, index_t channels, double stream_bytes,
                 double ratio, const char* codec, const read_limits& limits) {
  if (rows < 1 || cols < 1) fail(s.path(), f, "the header claims an empty image (" + dims(cols, rows) + " pixels)");
  if (channels < 1 || channels > max_channels)
    fail(s.path(), f,
         "too many channels: " + std::to_string(channels) +
             " (convkit images have 1 to 4: gray, gray + alpha, RGB, RGBA)");
  if (ratio > 0 && stream_bytes > ratio * double(s.size())) {
    char need[64];
    std::snprintf(need, sizeof need, "%.0f", std::ceil(stream_bytes / ratio));
    fail(s.path(), f,
         "the header claims " + dims(cols, rows) + " pixels x " + std::to_string(channels) +
             " channels, which need a file of at least " + need + " bytes (" + codec + "); this one holds " +
             std::to_string(s.size()) + ": a lying header or a truncated file, refused before allocating");
  }
  if (double(rows) * double(cols) > double(limits.max_pixels))
    fail(s.path(), f,
         dims(cols, rows) + " pixels is more than the limit of " + std::to_string(limits.max_pixels) +
             " (read_limits::max_pixels), refused before allocating");
}

std::string hex_start(const unsigned char* b, std::size_t n) {
  std::string hex, text;
  for (std::size_t i = 0; i < n && i < 8; ++i) {
    char h[4];
    std::snprintf(h, sizeof h, "%02x ", b[i]);
    hex += h;
    text += (b[i] >= 32 && b[i] < 127) ? char(b[i]) : '.';
  }
  return hex + "'" + text + "'";
}

// --- PGM/PPM ----------------------------------------------------------------------------------------

/// The next header number of a PNM file (whitespace and # comments skipped before it).
index_t pnm_number(FILE* f, const std::string& path, const char* what) {
  int c = std::fgetc(f);
  for (;;) {
    if (c == '#') {
      while (c != '\n' && c != '\r' && c != EOF) c = std::fgetc(f);
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
      c = std::fgetc(f);
    } else {
      break;
    }
  }
  if (c == EOF) fail(path, format::pnm, std::string("truncated: the header ends before its ") + what);
  if (c < '0' || c > '9') fail(path, format::pnm, std::string("the header's ") + what + " is not a number");
  index_t v = 0;
  while (c >= '0' && c <= '9') {
    v = v * 10 + (c - '0');
    if (v > 0x7fffffff) fail(path, format::pnm, std::string("the header's ") + what + " is above 2^31 - 1");
    c = std::fgetc(f);
  }
  // One whitespace character ends a number (after maxval, exactly one, then the pixels).
  if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\v' && c != '\f')
    fail(path, format::pnm,
         c == EOF ? std::string("truncated: the file ends in its header")
                  : std::string("the header's ") + what + " is followed by '" + char(c) + "', not whitespace");
  return v;
}

template <class T>
image<T> pnm_pixels(const source& s, FILE* f, index_t rows, index_t cols, index_t channels, index_t maxval) {
  image<T> img(rows, cols, channels);
  const std::size_t n = std::size_t(img.size());
  if (std::fread(img.data(), sizeof(T), n, f) != n)
    fail(s.path(), format::pnm,
         std::ferror(f) ? std::string("read error: ") + std::strerror(errno)
                        : std::string("truncated: the file ends inside its pixels"));
  if constexpr (sizeof(T) == 2) {  // big-endian in the file
    for (std::size_t i = 0; i < n; ++i) {
      const auto* b = reinterpret_cast<const unsigned char*>(img.data() + i);
      img.data()[i] = T((b[0] << 8) | b[1]);
    }
  }
  if (maxval != 255 && maxval != 65535)
    for (std::size_t i = 0; i < n; ++i)
      if (index_t(img.data()[i]) > maxval)
        fail(s.path(), format::pnm,
             "sample " + std::to_string(img.data()[i]) + " at element " + std::to_string(i) + " is above maxval " +
                 std::to_string(maxval));
  return img;
}

any_image read_pnm(const source& s, const read_limits& limits) {
  const stdio_file file(s);
  FILE* f = file.get();
  const int p = std::fgetc(f), kind = std::fgetc(f);
  if (p != 'P' || kind < '1' || kind > '7') fail(s.path(), format::pnm, "not a PNM file");
  if (kind != '5' && kind != '6') {
    static const char* const names[] = {
        "P1 (plain bitmap)", "P2 (plain graymap)", "P3 (plain pixmap)", "P4 (binary bitmap)", "", "", "P7 (PAM)"};
    fail(s.path(), format::pnm,
         std::string(names[kind - '1']) + " is not supported: only binary P5 (PGM) and P6 (PPM) files are read");
  }
  const index_t channels = kind == '5' ? 1 : 3;
  const index_t cols = pnm_number(f, s.path(), "width");
  const index_t rows = pnm_number(f, s.path(), "height");
  const index_t maxval = pnm_number(f, s.path(), "maxval");
  if (maxval < 1 || maxval > 65535)
    fail(s.path(), format::pnm,
         "unsupported bit depth: maxval " + std::to_string(maxval) + " (PGM/PPM allow 1 to 65535)");
  const index_t sample = maxval < 256 ? 1 : 2;
  const index_t header = index_t(std::ftell(f));
  const double need = double(rows) * double(cols) * double(channels * sample);
  check_claim(s, format::pnm, rows, cols, channels, need, 1, "uncompressed: one byte per byte", limits);
  if (need > double(s.size() - header))
    fail(s.path(), format::pnm,
         "truncated: its " + dims(cols, rows) + " pixels x " + std::to_string(channels) + " channels of " +
             std::to_string(8 * sample) + " bits need " + std::to_string(index_t(need)) +
             " bytes after the header; the file holds " + std::to_string(s.size() - header) +
             " (refused before allocating)");
  if (sample == 1) return pnm_pixels<std::uint8_t>(s, f, rows, cols, channels, maxval);
  return pnm_pixels<std::uint16_t>(s, f, rows, cols, channels, maxval);
}

/// Writes to a temporary file beside `path`, renamed over it by commit(); removed otherwise.
class partial_output {
 public:
  partial_output(std::string path, format f)
      : path_(std::move(path)), temp_(path_ + ".convkit-partial." + std::to_string(::getpid())), format_(f) {}
  ~partial_output() {
    if (f_ != nullptr) std::fclose(f_);
    if (!committed_) std::remove(temp_.c_str());
  }
  partial_output(const partial_output&) = delete;
  partial_output& operator=(const partial_output&) = delete;

  const std::string& temp() const noexcept { return temp_; }
  FILE* open() {
    f_ = std::fopen(temp_.c_str(), "wb");
    if (f_ == nullptr) fail(path_, format_, std::string("cannot create ") + temp_ + ": " + std::strerror(errno));
    return f_;
  }
  /// Closes the FILE* (if open()ed) and renames the temporary file over the path.
  void commit() {
    if (f_ != nullptr) {
      const bool ok = std::fflush(f_) == 0 && !std::ferror(f_) && ::fsync(::fileno(f_)) == 0;
      const int err = errno;
      const bool closed = std::fclose(f_) == 0;
      f_ = nullptr;
      if (!ok || !closed) fail(path_, format_, std::string("cannot write: ") + std::strerror(ok ? errno : err));
    }
    if (std::rename(temp_.c_str(), path_.c_str()) != 0)
      fail(path_, format_, "cannot rename " + temp_ + " to it: " + std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string path_, temp_;
  format format_;
  FILE* f_ = nullptr;
  bool committed_ = false;
};

template <class T>
void write_pnm(const std::string& path, image_view<const T> img) {
  partial_output out(path, format::pnm);
  FILE* f = out.open();
  std::fprintf(f, "P%c\n%td %td\n%d\n", img.channels() == 1 ? '5' : '6', img.cols(), img.rows(),
               sizeof(T) == 1 ? 255 : 65535);
  std::vector<unsigned char> row(std::size_t(img.cols() * img.channels()) * sizeof(T));
  for (index_t r = 0; r < img.rows(); ++r) {
    const T* from = img.row(r);
    for (std::size_t i = 0; i < std::size_t(img.cols() * img.channels()); ++i) {
      if constexpr (sizeof(T) == 1) {
        row[i] = from[i];
      } else {
        row[2 * i] = static_cast<unsigned char>(from[i] >> 8);
        row[2 * i + 1] = static_cast<unsigned char>(from[i] & 0xff);
      }
    }
    if (std::fwrite(row.data(), 1, row.size(), f) != row.size())
      fail(path, format::pnm, std::string("cannot write: ") + std::strerror(errno));
  }
  out.commit();
}

// --- PNG --------------------------------------------------------------------------------------------
#if defined(CONVKIT_FILES_PNG)

struct png_state {
  png_structp png = nullptr;
  png_infop info = nullptr;
  FILE* f = nullptr;
  char message[512] = {};
  bool writing = false;
  ~png_state() {
    if (writing)
      png_destroy_write_struct(&png, info != nullptr ? &info : nullptr);
    else
      png_destroy_read_struct(&png, info != nullptr ? &info : nullptr, nullptr);
  }
};

void png_failed(png_structp png, png_const_charp message) {
  auto* s = static_cast<png_state*>(png_get_error_ptr(png));
  std::snprintf(s->message, sizeof s->message, "%s", message);
  png_longjmp(png, 1);
}
void png_warned(png_structp, png_const_charp) {}
void png_read_bytes(png_structp png, png_bytep data, size_t n) {
  auto* s = static_cast<png_state*>(png_get_io_ptr(png));
  if (std::fread(data, 1, n, s->f) != n)
    png_error(png, std::ferror(s->f) ? "read error" : "truncated: the file ends before its image data does");
}

bool png_header_step(png_state& s) {
  if (setjmp(png_jmpbuf(s.png))) return false;
  png_set_read_fn(s.png, &s, png_read_bytes);
  png_set_chunk_malloc_max(s.png, 8 << 20);  // an ancillary chunk (text, ICC profile) above 8 MiB is refused
  png_read_info(s.png, s.info);
  return true;
}

bool png_pixels_step(png_state& s, png_bytepp rows, png_size_t row_bytes) {
  if (setjmp(png_jmpbuf(s.png))) return false;
  const int color = png_get_color_type(s.png, s.info), depth = png_get_bit_depth(s.png, s.info);
  if (color == PNG_COLOR_TYPE_PALETTE) {
    png_set_palette_to_rgb(s.png);
    if (png_get_valid(s.png, s.info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(s.png);
  }
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(s.png);
  if (depth == 16) png_set_swap(s.png);  // PNG is big-endian
  png_set_interlace_handling(s.png);
  png_read_update_info(s.png, s.info);
  if (png_get_rowbytes(s.png, s.info) != row_bytes) png_error(s.png, "its rows decode to an unexpected size");
  png_read_image(s.png, rows);
  png_read_end(s.png, nullptr);  // the chunks after the pixels, to IEND: a file cut short is refused
  return true;
}

template <class T>
any_image png_decode(png_state& s, const std::string& path, index_t rows, index_t cols, index_t channels) {
  image<T> img(rows, cols, channels);
  std::vector<png_bytep> pointers(static_cast<std::size_t>(rows));
  for (index_t r = 0; r < rows; ++r) pointers[std::size_t(r)] = reinterpret_cast<png_bytep>(img.view().row(r));
  if (!png_pixels_step(s, pointers.data(), png_size_t(cols * channels) * sizeof(T))) fail(path, format::png, s.message);
  return img;
}

any_image read_png(const source& src, const read_limits& limits) {
  const stdio_file file(src);
  png_state s;
  s.f = file.get();
  s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, png_failed, png_warned);
  if (s.png == nullptr) fail(src.path(), format::png, "libpng could not start");
  s.info = png_create_info_struct(s.png);
  if (s.info == nullptr) fail(src.path(), format::png, "libpng could not start");
  if (!png_header_step(s)) fail(src.path(), format::png, s.message);
  const index_t cols = index_t(png_get_image_width(s.png, s.info)), rows = index_t(png_get_image_height(s.png, s.info));
  const int color = png_get_color_type(s.png, s.info), depth = png_get_bit_depth(s.png, s.info);
  index_t channels = 0;
  switch (color) {
    case PNG_COLOR_TYPE_GRAY: channels = 1; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: channels = 2; break;
    case PNG_COLOR_TYPE_RGB: channels = 3; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: channels = 4; break;
    case PNG_COLOR_TYPE_PALETTE: channels = png_get_valid(s.png, s.info, PNG_INFO_tRNS) ? 4 : 3; break;
    default: fail(src.path(), format::png, "unknown color type " + std::to_string(color));
  }
  // The zlib stream holds a filter byte and the packed samples of each row (an interlaced image up to
  // 7 filter bytes per row); Deflate produces at most 1032 bytes per byte of input.
  const double stream = double(rows) * (double(png_get_rowbytes(s.png, s.info)) + 1);
  check_claim(src, format::png, rows, cols, channels, stream, 1032, "zlib decodes at most 1032 bytes per byte", limits);
  if (depth == 16) return png_decode<std::uint16_t>(s, src.path(), rows, cols, channels);
  return png_decode<std::uint8_t>(s, src.path(), rows, cols, channels);
}

bool png_write_step(png_state& s, png_bytepp rows, png_uint_32 cols, png_uint_32 height, int depth, int color) {
  if (setjmp(png_jmpbuf(s.png))) return false;
  png_init_io(s.png, s.f);
  png_set_IHDR(s.png, s.info, cols, height, depth, color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(s.png, s.info);
  if (depth == 16) png_set_swap(s.png);
  png_write_image(s.png, rows);
  png_write_end(s.png, nullptr);
  return true;
}

template <class T>
void write_png(const std::string& path, image_view<const T> img) {
  partial_output out(path, format::png);
  png_state s;
  s.writing = true;
  s.f = out.open();
  s.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &s, png_failed, png_warned);
  if (s.png == nullptr) fail(path, format::png, "libpng could not start");
  s.info = png_create_info_struct(s.png);
  if (s.info == nullptr) fail(path, format::png, "libpng could not start");
  static const int colors[] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                               PNG_COLOR_TYPE_RGB_ALPHA};
  std::vector<png_bytep> rows(std::size_t(img.rows()));
  for (index_t r = 0; r < img.rows(); ++r)
    rows[std::size_t(r)] = reinterpret_cast<png_bytep>(const_cast<T*>(img.row(r)));  // libpng copies each row
  if (img.rows() > 0x7fffffff || img.cols() > 0x7fffffff)
    fail(path, format::png, "an image of " + dims(img.cols(), img.rows()) + " pixels is too large for PNG");
  if (!png_write_step(s, rows.data(), png_uint_32(img.cols()), png_uint_32(img.rows()), int(8 * sizeof(T)),
                      colors[img.channels() - 1]))
    fail(path, format::png, s.message);
  out.commit();
}
#endif

// --- JPEG -------------------------------------------------------------------------------------------
#if defined(CONVKIT_FILES_JPEG)

struct jpeg_messages {
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64] = {};
};

void jpeg_failed(j_common_ptr c) {
  auto* m = static_cast<jpeg_messages*>(c->client_data);
  (*c->err->format_message)(c, m->message);
  std::longjmp(m->jump, 1);
}
/// Warnings (level -1: corrupt data, a file ending early) are errors; trace messages are ignored.
void jpeg_emitted(j_common_ptr c, int level) {
  if (level >= 0) return;
  auto* m = static_cast<jpeg_messages*>(c->client_data);
  if (c->err->msg_code == JWRN_JPEG_EOF)
    std::snprintf(m->message, sizeof m->message, "truncated: the file ends before its image data does");
  else
    (*c->err->format_message)(c, m->message);
  std::longjmp(m->jump, 1);
}
void jpeg_quiet(j_common_ptr) {}

struct jpeg_reader : jpeg_messages {
  jpeg_decompress_struct cinfo{};
  jpeg_error_mgr err{};
  FILE* f = nullptr;
  ~jpeg_reader() { jpeg_destroy_decompress(&cinfo); }
};

bool jpeg_header_step(jpeg_reader& r) {
  if (setjmp(r.jump)) return false;
  r.cinfo.err = jpeg_std_error(&r.err);
  r.err.error_exit = jpeg_failed;
  r.err.emit_message = jpeg_emitted;
  r.err.output_message = jpeg_quiet;
  r.cinfo.client_data = static_cast<jpeg_messages*>(&r);
  jpeg_create_decompress(&r.cinfo);
  jpeg_stdio_src(&r.cinfo, r.f);
  jpeg_read_header(&r.cinfo, TRUE);
  return true;
}

bool jpeg_pixels_step(jpeg_reader& r, unsigned char* data, std::size_t stride) {
  if (setjmp(r.jump)) return false;
  jpeg_start_decompress(&r.cinfo);
  while (r.cinfo.output_scanline < r.cinfo.output_height) {
    JSAMPROW row = data + std::size_t(r.cinfo.output_scanline) * stride;
    jpeg_read_scanlines(&r.cinfo, &row, 1);
  }
  jpeg_finish_decompress(&r.cinfo);  // to the end of the file's image: a file cut short is refused
  return true;
}

any_image read_jpeg(const source& src, const read_limits& limits) {
  const stdio_file file(src);
  jpeg_reader r;
  r.f = file.get();
  if (!jpeg_header_step(r)) fail(src.path(), format::jpeg, r.message);
  jpeg_decompress_struct& c = r.cinfo;
  const index_t rows = index_t(c.image_height), cols = index_t(c.image_width);
  if (c.num_components == 4 || c.jpeg_color_space == JCS_CMYK || c.jpeg_color_space == JCS_YCCK)
    fail(src.path(), format::jpeg,
         "too many channels: 4 components (CMYK or YCCK); only gray and color (1 or 3 components) JPEGs are read");
  if (c.num_components != 1 && c.num_components != 3)
    fail(src.path(), format::jpeg,
         std::to_string(c.num_components) + " components: only gray and color (1 or 3 components) JPEGs are read");
  const index_t channels = c.num_components;
  c.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  // Huffman coding spends at least one bit on each 8x8 block of a component it codes (a DC code); the
  // component with the fewest blocks bounds what the file's bytes can hold. Arithmetic coding has no
  // such bound: only max_pixels then.
  double blocks = 0;
  for (int i = 0; i < c.num_components; ++i) {
    const double b = double(c.comp_info[i].width_in_blocks) * double(c.comp_info[i].height_in_blocks);
    blocks = i == 0 ? b : std::min(blocks, b);
  }
  check_claim(src, format::jpeg, rows, cols, channels, blocks / 8, c.arith_code ? 0 : 1,
              "Huffman coding spends at least one bit per 8x8 block", limits);
  // libjpeg's own buffers (a progressive file's coefficients: 2 bytes a sample) within what this
  // image needs, and a margin.
  c.mem->max_memory_to_use = long(
      std::min(double(1L << 62), 2 * double(rows + 32) * double(cols + 32) * double(channels) + double(64L << 20)));
  image<std::uint8_t> img(rows, cols, channels);
  if (!jpeg_pixels_step(r, img.data(), std::size_t(cols * channels))) fail(src.path(), format::jpeg, r.message);
  if (index_t(c.output_width) != cols || index_t(c.output_height) != rows || c.output_components != channels)
    fail(src.path(), format::jpeg, "decoded to an unexpected shape");
  return img;
}

struct jpeg_writer : jpeg_messages {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr err{};
  FILE* f = nullptr;
  ~jpeg_writer() { jpeg_destroy_compress(&cinfo); }
};

bool jpeg_write_step(jpeg_writer& w, const std::uint8_t* data, std::size_t stride, unsigned rows, unsigned cols,
                     int channels, int quality) {
  if (setjmp(w.jump)) return false;
  w.cinfo.err = jpeg_std_error(&w.err);
  w.err.error_exit = jpeg_failed;
  w.err.emit_message = jpeg_emitted;
  w.err.output_message = jpeg_quiet;
  w.cinfo.client_data = static_cast<jpeg_messages*>(&w);
  jpeg_create_compress(&w.cinfo);
  jpeg_stdio_dest(&w.cinfo, w.f);
  w.cinfo.image_width = cols;
  w.cinfo.image_height = rows;
  w.cinfo.input_components = channels;
  w.cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&w.cinfo);
  jpeg_set_quality(&w.cinfo, quality, TRUE);
  if (quality >= 90)  // no chroma subsampling (4:4:4)
    for (int i = 0; i < w.cinfo.num_components; ++i)
      w.cinfo.comp_info[i].h_samp_factor = w.cinfo.comp_info[i].v_samp_factor = 1;
  jpeg_start_compress(&w.cinfo, TRUE);
  while (w.cinfo.next_scanline < w.cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(data + std::size_t(w.cinfo.next_scanline) * stride);
    jpeg_write_scanlines(&w.cinfo, &row, 1);
  }
  jpeg_finish_compress(&w.cinfo);
  return true;
}

void write_jpeg(const std::string& path, image_view<const std::uint8_t> img, int quality) {
  if (img.rows() > 65500 || img.cols() > 65500)
    fail(path, format::jpeg, "an image of " + dims(img.cols(), img.rows()) + " pixels is too large for JPEG (65500)");
  partial_output out(path, format::jpeg);
  jpeg_writer w;
  w.f = out.open();
  if (!jpeg_write_step(w, img.data(), std::size_t(img.row_stride()), unsigned(img.rows()), unsigned(img.cols()),
                       int(img.channels()), quality))
    fail(path, format::jpeg, w.message);
  out.commit();
}
#endif

// --- TIFF -------------------------------------------------------------------------------------------
#if defined(CONVKIT_FILES_TIFF)

/// libtiff's messages go to the calling thread's collector (none: dropped) instead of stderr.
thread_local std::string* tiff_errors = nullptr;

void tiff_error(thandle_t, const char* module, const char* fmt, va_list ap) {
  if (tiff_errors == nullptr || !tiff_errors->empty()) return;  // the first error is the cause
  char text[512];
  std::vsnprintf(text, sizeof text, fmt, ap);
  *tiff_errors = (module != nullptr && *module != 0 ? std::string(module) + ": " : std::string()) + text;
}
void tiff_warning(thandle_t, const char*, const char*, va_list) {}

/// Routes libtiff's messages to tiff_errors while it lives (libtiff's handlers are process-wide).
class tiff_messages {
 public:
  tiff_messages() {
    static const bool installed = [] {
      TIFFSetErrorHandler(nullptr);
      TIFFSetWarningHandler(nullptr);
      TIFFSetErrorHandlerExt(tiff_error);
      TIFFSetWarningHandlerExt(tiff_warning);
      return true;
    }();
    (void)installed;
    previous_ = tiff_errors;
    tiff_errors = &text_;
  }
  ~tiff_messages() { tiff_errors = previous_; }
  tiff_messages(const tiff_messages&) = delete;
  tiff_messages& operator=(const tiff_messages&) = delete;
  /// The first error, or `otherwise`.
  std::string what(const std::string& otherwise) const { return text_.empty() ? otherwise : text_; }

 private:
  std::string text_;
  std::string* previous_ = nullptr;
};

class tiff_handle {
 public:
  explicit tiff_handle(TIFF* t) : t_(t) {}
  ~tiff_handle() {
    if (t_ != nullptr) TIFFClose(t_);
  }
  tiff_handle(const tiff_handle&) = delete;
  tiff_handle& operator=(const tiff_handle&) = delete;
  TIFF* get() const noexcept { return t_; }
  TIFF* release() noexcept { return std::exchange(t_, nullptr); }

 private:
  TIFF* t_;
};

const char* sample_format_name(int f) {
  switch (f) {
    case SAMPLEFORMAT_UINT: return "unsigned integer";
    case SAMPLEFORMAT_INT: return "signed integer";
    case SAMPLEFORMAT_IEEEFP: return "floating-point";
    case SAMPLEFORMAT_VOID: return "untyped";
    default: return "complex or unknown";
  }
}

const char* photometric_name(int p) {
  switch (p) {
    case PHOTOMETRIC_MINISWHITE: return "MinIsWhite (inverted gray)";
    case PHOTOMETRIC_PALETTE: return "palette";
    case PHOTOMETRIC_MASK: return "transparency mask";
    case PHOTOMETRIC_SEPARATED: return "separated (CMYK)";
    case PHOTOMETRIC_YCBCR: return "YCbCr";
    case PHOTOMETRIC_CIELAB: return "CIE L*a*b*";
    case PHOTOMETRIC_ICCLAB: return "ICC L*a*b*";
    case PHOTOMETRIC_ITULAB: return "ITU L*a*b*";
    case PHOTOMETRIC_LOGL: return "LogL";
    case PHOTOMETRIC_LOGLUV: return "LogLuv";
    default: return "unknown";
  }
}

/// The most bytes a codec produces per byte of file (0: no bound known).
double tiff_ratio(int compression, const char** what) {
  switch (compression) {
    case COMPRESSION_NONE: *what = "uncompressed: one byte per byte"; return 1;
    case COMPRESSION_PACKBITS: *what = "PackBits decodes at most 64 bytes per byte"; return 64;
    case COMPRESSION_LZW: *what = "LZW decodes at most 4096 bytes per byte"; return 4096;
    case COMPRESSION_ADOBE_DEFLATE:
    case COMPRESSION_DEFLATE: *what = "Deflate decodes at most 1032 bytes per byte"; return 1032;
    default: *what = ""; return 0;
  }
}

template <class T>
any_image tiff_decode(TIFF* t, const source& src, const tiff_messages& messages, index_t rows, index_t cols,
                      index_t channels) {
  image<T> img(rows, cols, channels);
  const std::size_t row_bytes = std::size_t(cols * channels) * sizeof(T);
  auto* data = reinterpret_cast<unsigned char*>(img.data());
  if (!TIFFIsTiled(t)) {
    if (std::uint64_t(TIFFScanlineSize64(t)) != row_bytes)
      fail(src.path(), format::tiff, messages.what("its rows decode to an unexpected size"));
    std::uint32_t per_strip = 0;
    TIFFGetFieldDefaulted(t, TIFFTAG_ROWSPERSTRIP, &per_strip);
    const index_t strip_rows = std::min<index_t>(rows, std::max<index_t>(1, index_t(per_strip)));
    const index_t strips = (rows + strip_rows - 1) / strip_rows;
    if (index_t(TIFFNumberOfStrips(t)) < strips)
      fail(src.path(), format::tiff,
           "it has " + std::to_string(TIFFNumberOfStrips(t)) + " strips; its rows need " + std::to_string(strips));
    for (index_t i = 0; i < strips; ++i) {
      const index_t r0 = i * strip_rows, n = std::min(strip_rows, rows - r0);
      const tmsize_t want = tmsize_t(std::size_t(n) * row_bytes);
      if (TIFFReadEncodedStrip(t, std::uint32_t(i), data + std::size_t(r0) * row_bytes, want) != want)
        fail(src.path(), format::tiff,
             "cannot decode strip " + std::to_string(i) + " of " + std::to_string(strips) + " (rows " +
                 std::to_string(r0) + " to " + std::to_string(r0 + n - 1) +
                 "): " + messages.what("it holds fewer bytes than its rows need (truncated?)"));
    }
    return img;
  }
  std::uint32_t tile_cols = 0, tile_rows = 0;
  TIFFGetField(t, TIFFTAG_TILEWIDTH, &tile_cols);
  TIFFGetField(t, TIFFTAG_TILELENGTH, &tile_rows);
  const std::uint64_t tile_bytes = std::uint64_t(TIFFTileSize64(t));
  if (tile_cols == 0 || tile_rows == 0 || tile_bytes != std::uint64_t(tile_cols) * tile_rows * channels * sizeof(T))
    fail(src.path(), format::tiff, messages.what("its tiles have an unexpected size"));
  if (double(tile_bytes) > std::max(double(64 << 20), 2.0 * double(rows) * double(row_bytes)))
    fail(src.path(), format::tiff,
         "its tiles of " + dims(tile_cols, tile_rows) + " pixels are far larger than its image: refused");
  std::vector<unsigned char> tile(tile_bytes);
  const std::size_t tile_row_bytes = std::size_t(tile_cols) * channels * sizeof(T);
  for (index_t y = 0; y < rows; y += tile_rows)
    for (index_t x = 0; x < cols; x += tile_cols) {
      const std::uint32_t which = TIFFComputeTile(t, std::uint32_t(x), std::uint32_t(y), 0, 0);
      if (TIFFReadEncodedTile(t, which, tile.data(), tmsize_t(tile_bytes)) != tmsize_t(tile_bytes))
        fail(src.path(), format::tiff,
             "cannot decode the tile at row " + std::to_string(y) + ", column " + std::to_string(x) + ": " +
                 messages.what("it holds fewer bytes than its pixels need (truncated?)"));
      const index_t h = std::min<index_t>(tile_rows, rows - y), w = std::min<index_t>(tile_cols, cols - x);
      for (index_t r = 0; r < h; ++r)
        std::memcpy(data + std::size_t(y + r) * row_bytes + std::size_t(x * channels) * sizeof(T),
                    tile.data() + std::size_t(r) * tile_row_bytes, std::size_t(w * channels) * sizeof(T));
    }
  return img;
}

any_image read_tiff(const source& src, const read_limits& limits) {
  const tiff_messages messages;
  const int fd = ::dup(src.fd());
  if (fd < 0) fail(src.path(), format::tiff, std::string("cannot read: ") + std::strerror(errno));
  ::lseek(fd, 0, SEEK_SET);
#if TIFFLIB_VERSION >= 20221213
  // libtiff's own allocations (strip offsets, a compressed strip) within the file's size and a margin.
  TIFFOpenOptions* options = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetMaxSingleMemAlloc(options, tmsize_t(src.size()) + (tmsize_t(64) << 20));
  TIFF* opened = TIFFFdOpenExt(fd, src.path().c_str(), "r", options);
  TIFFOpenOptionsFree(options);
#else
  TIFF* opened = TIFFFdOpen(fd, src.path().c_str(), "r");
#endif
  if (opened == nullptr) {
    ::close(fd);
    fail(src.path(), format::tiff, messages.what("libtiff cannot open it"));
  }
  const tiff_handle t(opened);
  std::uint32_t width = 0, height = 0;
  std::uint16_t samples = 1, bits = 1, sample_format = SAMPLEFORMAT_UINT, planar = PLANARCONFIG_CONTIG,
                compression = COMPRESSION_NONE, photometric = 0;
  if (!TIFFGetField(t.get(), TIFFTAG_IMAGEWIDTH, &width) || !TIFFGetField(t.get(), TIFFTAG_IMAGELENGTH, &height))
    fail(src.path(), format::tiff, messages.what("no image width or length"));
  TIFFGetFieldDefaulted(t.get(), TIFFTAG_SAMPLESPERPIXEL, &samples);
  TIFFGetFieldDefaulted(t.get(), TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted(t.get(), TIFFTAG_SAMPLEFORMAT, &sample_format);
  TIFFGetFieldDefaulted(t.get(), TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(t.get(), TIFFTAG_COMPRESSION, &compression);
  if (!TIFFGetField(t.get(), TIFFTAG_PHOTOMETRIC, &photometric))
    photometric = samples >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
  const index_t rows = index_t(height), cols = index_t(width), channels = samples;
  if (channels > max_channels)
    fail(src.path(), format::tiff,
         "too many channels: " + std::to_string(samples) +
             " samples per pixel (convkit images have 1 to 4: gray, gray + alpha, RGB, RGBA)");
  if (planar == PLANARCONFIG_SEPARATE && samples > 1)
    fail(src.path(), format::tiff, "planar (separate) samples: only contiguous (interleaved) TIFFs are read");
  if (photometric != PHOTOMETRIC_MINISBLACK && !(photometric == PHOTOMETRIC_RGB && samples >= 3))
    fail(src.path(), format::tiff,
         std::string("photometric interpretation ") +
             (photometric == PHOTOMETRIC_RGB ? "RGB with fewer than 3 samples" : photometric_name(photometric)) +
             ": only gray (MinIsBlack) and RGB TIFFs, with an alpha sample or not, are read");
  const bool unsigned_int = sample_format == SAMPLEFORMAT_UINT || sample_format == SAMPLEFORMAT_VOID;
  enum { u8, u16, i16, f32, f64, none } type = none;
  if (bits == 8 && unsigned_int) type = u8;
  if (bits == 16 && unsigned_int) type = u16;
  if (bits == 16 && sample_format == SAMPLEFORMAT_INT) type = i16;
  if (bits == 32 && sample_format == SAMPLEFORMAT_IEEEFP) type = f32;
  if (bits == 64 && sample_format == SAMPLEFORMAT_IEEEFP) type = f64;
  if (type == none)
    fail(src.path(), format::tiff,
         "unsupported bit depth: " + std::to_string(bits) + "-bit " + sample_format_name(sample_format) +
             " samples (8- and 16-bit unsigned, 16-bit signed, 32- and 64-bit floating-point ones are read)");
  if (!TIFFIsCODECConfigured(compression))
    fail(src.path(), format::tiff, "compression " + std::to_string(compression) + " is not one this libtiff decodes");
  const char* codec = "";
  const double ratio = tiff_ratio(compression, &codec);
  check_claim(src, format::tiff, rows, cols, channels, double(rows) * double(cols) * channels * (bits / 8), ratio,
              codec, limits);
  switch (type) {
    case u8: return tiff_decode<std::uint8_t>(t.get(), src, messages, rows, cols, channels);
    case u16: return tiff_decode<std::uint16_t>(t.get(), src, messages, rows, cols, channels);
    case i16: return tiff_decode<std::int16_t>(t.get(), src, messages, rows, cols, channels);
    case f32: return tiff_decode<float>(t.get(), src, messages, rows, cols, channels);
    default: return tiff_decode<double>(t.get(), src, messages, rows, cols, channels);
  }
}

template <class T>
void write_tiff(const std::string& path, image_view<const T> img) {
  if (img.rows() > 0xffffffffLL || img.cols() > 0xffffffffLL)
    fail(path, format::tiff, "an image of " + dims(img.cols(), img.rows()) + " pixels is too large for TIFF");
  const tiff_messages messages;
  partial_output out(path, format::tiff);
  const double bytes = double(img.rows()) * double(img.cols() * img.channels()) * sizeof(T);
  tiff_handle t(TIFFOpen(out.temp().c_str(), bytes > 3.5e9 ? "w8" : "w"));  // BigTIFF beyond 4 GB
  if (t.get() == nullptr) fail(path, format::tiff, messages.what("cannot create " + out.temp()));
  const bool floating = std::is_floating_point_v<T>;
  const int channels = int(img.channels());
  TIFFSetField(t.get(), TIFFTAG_IMAGEWIDTH, std::uint32_t(img.cols()));
  TIFFSetField(t.get(), TIFFTAG_IMAGELENGTH, std::uint32_t(img.rows()));
  TIFFSetField(t.get(), TIFFTAG_SAMPLESPERPIXEL, std::uint16_t(channels));
  TIFFSetField(t.get(), TIFFTAG_BITSPERSAMPLE, std::uint16_t(8 * sizeof(T)));
  TIFFSetField(t.get(), TIFFTAG_SAMPLEFORMAT,
               std::uint16_t(floating              ? SAMPLEFORMAT_IEEEFP
                             : std::is_signed_v<T> ? SAMPLEFORMAT_INT
                                                   : SAMPLEFORMAT_UINT));
  TIFFSetField(t.get(), TIFFTAG_PLANARCONFIG, std::uint16_t(PLANARCONFIG_CONTIG));
  TIFFSetField(t.get(), TIFFTAG_PHOTOMETRIC, std::uint16_t(channels >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK));
  if (channels == 2 || channels == 4) {
    const std::uint16_t alpha[] = {EXTRASAMPLE_UNASSALPHA};
    TIFFSetField(t.get(), TIFFTAG_EXTRASAMPLES, std::uint16_t(1), alpha);
  }
  if (TIFFIsCODECConfigured(COMPRESSION_ADOBE_DEFLATE)) {
    TIFFSetField(t.get(), TIFFTAG_COMPRESSION, std::uint16_t(COMPRESSION_ADOBE_DEFLATE));
    TIFFSetField(t.get(), TIFFTAG_PREDICTOR, std::uint16_t(floating ? PREDICTOR_FLOATINGPOINT : PREDICTOR_HORIZONTAL));
  } else {
    TIFFSetField(t.get(), TIFFTAG_COMPRESSION, std::uint16_t(COMPRESSION_NONE));
  }
  TIFFSetField(t.get(), TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(t.get(), 0));
  TIFFSetField(t.get(), TIFFTAG_SOFTWARE, "convkit");
  // libtiff's predictors rewrite the row they are given: each row goes through a copy.
  std::vector<T> row(std::size_t(img.cols() * img.channels()));
  for (index_t r = 0; r < img.rows(); ++r) {
    std::copy(img.row(r), img.row(r) + img.cols() * img.channels(), row.begin());
    if (TIFFWriteScanline(t.get(), row.data(), std::uint32_t(r), 0) < 0)
      fail(path, format::tiff, messages.what("cannot write row " + std::to_string(r)));
  }
  if (!TIFFFlush(t.get())) fail(path, format::tiff, messages.what("cannot write"));
  TIFFClose(t.release());
  if (!messages.what("").empty()) fail(path, format::tiff, messages.what(""));
  out.commit();
}
#endif

}  // namespace

any_image read_image(const std::string& path, const read_limits& limits) {
  if (limits.max_pixels < 1) throw file_error(path + ": read_limits::max_pixels must be >= 1");
  const source src(path);
  unsigned char start[16] = {};
  const ssize_t n = ::pread(src.fd(), start, sizeof start, 0);
  if (n < 0) throw file_error(path + ": cannot read: " + std::strerror(errno));
  const auto is = [&](const char* magic, std::size_t length) {
    return std::size_t(n) >= length && std::memcmp(start, magic, length) == 0;
  };
  std::optional<format> f;
  if (is("\x89PNG\r\n\x1a\n", 8))
    f = format::png;
  else if (is("\xff\xd8\xff", 3))
    f = format::jpeg;
  else if (is("II*\0", 4) || is("MM\0*", 4) || is("II+\0", 4) || is("MM\0+", 4))
    f = format::tiff;
  else if (n >= 2 && start[0] == 'P' && start[1] >= '1' && start[1] <= '7')
    f = format::pnm;
  if (!f) {
    const std::optional<format> named = format_of_extension(path);
    throw file_error(path + ": not an image file" +
                     (named ? std::string(" (named like a ") + name(*named) + " file)" : std::string()) +
                     ": it starts with no PNG, JPEG, PGM/PPM or TIFF signature (" + hex_start(start, std::size_t(n)) +
                     ")");
  }
  switch (*f) {
    case format::pnm: return read_pnm(src, limits);
#if defined(CONVKIT_FILES_PNG)
    case format::png: return read_png(src, limits);
#endif
#if defined(CONVKIT_FILES_JPEG)
    case format::jpeg: return read_jpeg(src, limits);
#endif
#if defined(CONVKIT_FILES_TIFF)
    case format::tiff: return read_tiff(src, limits);
#endif
    default: unavailable(path, *f);
  }
}

template <class T>
void check_writable(const std::string& path, index_t channels, const write_options& opt) {
  const std::optional<format> named = format_of_extension(path);
  if (!opt.as && !named)
    throw file_error(path + ": the name says no image format: name it .png, .jpg/.jpeg, .pgm/.ppm/.pnm or .tif/.tiff");
  const format f = opt.as ? *opt.as : *named;
  const bool from_extension = !opt.as;
  if (!available(f)) unavailable(path, f);
  if (channels < 1 || channels > max_channels)
    throw file_error(path + ": an image has 1 to 4 channels, not " + std::to_string(channels));
  const std::string what = std::string(pixel_name<T>()) + " pixels with " + std::to_string(channels) +
                           (channels == 1 ? " channel" : " channels");
  const auto refuse = [&](const std::string& why) { throw file_error(path + ": " + why); };
  const bool unsigned_int = std::is_same_v<T, std::uint8_t> || std::is_same_v<T, std::uint16_t>;
  switch (f) {
    case format::png:
      if (!unsigned_int) refuse("PNG holds 8- or 16-bit unsigned pixels, not " + what + " (a .tif holds every type)");
      break;
    case format::jpeg:
      if (!std::is_same_v<T, std::uint8_t> || (channels != 1 && channels != 3))
        refuse("JPEG holds 8-bit pixels with 1 or 3 channels, not " + what);
      if (opt.jpeg_quality < 1 || opt.jpeg_quality > 100)
        refuse("JPEG: the quality must be 1 to 100, got " + std::to_string(opt.jpeg_quality));
      break;
    case format::pnm: {
      if (!unsigned_int || (channels != 1 && channels != 3))
        refuse("PGM/PPM hold 8- or 16-bit pixels with 1 (PGM) or 3 (PPM) channels, not " + what);
      if (from_extension) {
        std::string ext = path.substr(path.size() - 3);
        for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
        if (ext == "pgm" && channels != 1)
          refuse("a .pgm holds 1 channel, not " + std::to_string(channels) + ": name it .ppm or .pnm");
        if (ext == "ppm" && channels != 3)
          refuse("a .ppm holds 3 channels, not " + std::to_string(channels) + ": name it .pgm or .pnm");
      }
      break;
    }
    case format::tiff: break;
  }
}

template <class T>
void write_image(const std::string& path, image_view<const T> img, const write_options& opt) {
  check_writable<T>(path, img.channels(), opt);
  const format f = opt.as ? *opt.as : *format_of_extension(path);
  if (img.empty()) fail(path, f, "the image is empty (" + dims(img.cols(), img.rows()) + " pixels)");
  if constexpr (std::is_same_v<T, std::uint8_t> || std::is_same_v<T, std::uint16_t>) {
    if (f == format::pnm) return write_pnm<T>(path, img);
#if defined(CONVKIT_FILES_PNG)
    if (f == format::png) return write_png<T>(path, img);
#endif
  }
#if defined(CONVKIT_FILES_JPEG)
  if constexpr (std::is_same_v<T, std::uint8_t>)
    if (f == format::jpeg) return write_jpeg(path, img, opt.jpeg_quality);
#endif
#if defined(CONVKIT_FILES_TIFF)
  if (f == format::tiff) return write_tiff<T>(path, img);
#endif
  fail(path, f, "cannot write this image");  // not reached: check_writable refused it
}

void write_image(const std::string& path, const any_image& img, const write_options& opt) {
  std::visit([&](const auto& i) { write_image(path, i, opt); }, img);
}

template void check_writable<std::uint8_t>(const std::string&, index_t, const write_options&);
template void check_writable<std::uint16_t>(const std::string&, index_t, const write_options&);
template void check_writable<std::int16_t>(const std::string&, index_t, const write_options&);
template void check_writable<float>(const std::string&, index_t, const write_options&);
template void check_writable<double>(const std::string&, index_t, const write_options&);
template void write_image<std::uint8_t>(const std::string&, image_view<const std::uint8_t>, const write_options&);
template void write_image<std::uint16_t>(const std::string&, image_view<const std::uint16_t>, const write_options&);
template void write_image<std::int16_t>(const std::string&, image_view<const std::int16_t>, const write_options&);
template void write_image<float>(const std::string&, image_view<const float>, const write_options&);
template void write_image<double>(const std::string&, image_view<const double>, const write_options&);

/// What a file that is no regular file is, for messages ("a pipe (FIFO)", "a directory", ...).
std::string kind_of(mode_t m) {
  if (S_ISFIFO(m)) return "a pipe (FIFO)";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

}  // namespace convkit::files
