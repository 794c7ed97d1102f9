// convkit/image.hpp - images as people store them: interleaved channels of 8-bit, 16-bit or
// floating-point pixels.
//
//   pixel types     std::uint8_t, std::uint16_t, std::int16_t, float, double (is_pixel_v).
//   image_view<T>   a window on interleaved rows: element (r, c, ch) lives at
//                   data[r * row_stride + c * channels + ch], 1 to 4 channels (gray, gray + alpha,
//                   RGB, RGBA); row_stride >= cols * channels lets a view address a sub-rectangle
//                   of a larger image, or rows padded to an alignment. image_view<const T> is the
//                   read-only form; image_view<T> converts to it. A view2d<T> is a one-channel
//                   image_view<T>.
//   image<T>        owns rows x cols x channels zeroed, 64-byte aligned elements (row_stride ==
//                   cols * channels), and converts to image_view<T> and image_view<const T>.
// A planar image is a view2d per plane.
#pragma once

#include "version.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

#include "detail/checked.hpp"
#include "types.hpp"
#include "view.hpp"

CONVKIT_NAMESPACE_BEGIN

/// The element types convkit reads and writes as pixels.
template <class T>
inline constexpr bool is_pixel_v =
    std::is_same_v<T, std::uint8_t> || std::is_same_v<T, std::uint16_t> || std::is_same_v<T, std::int16_t> ||
    std::is_same_v<T, float> || std::is_same_v<T, double>;

/// The most channels an image has.
inline constexpr index_t max_channels = 4;

template <class T>
class image_view {
  static_assert(is_pixel_v<std::remove_const_t<T>>,
                "convkit::image_view: pixels are std::uint8_t, std::uint16_t, std::int16_t, float or double");

 public:
  using element_type = T;
  using value_type = std::remove_const_t<T>;

  image_view() = default;

  /// Throws convkit::error, naming the argument, if rows or cols is negative, channels is not 1..4,
  /// row_stride (-1: cols * channels) is below cols * channels, data is null for a non-empty view,
  /// or the memory the view spans does not fit in index_t bytes.
  image_view(T* data, index_t rows, index_t cols, index_t channels, index_t row_stride = -1)
      : data_(data), rows_(rows), cols_(cols), channels_(channels) {
    if (rows < 0) throw error("image_view: rows must be >= 0, got " + std::to_string(rows));
    if (cols < 0) throw error("image_view: cols must be >= 0, got " + std::to_string(cols));
    if (channels < 1 || channels > max_channels)
      throw error("image_view: channels must be 1 to 4, got " + std::to_string(channels));
    const index_t row = detail::checked_mul(cols, channels, "image_view: cols * channels");
    row_stride_ = row_stride == -1 ? row : row_stride;
    if (row_stride_ < row)
      throw error("image_view: row_stride (" + std::to_string(row_stride_) + ") must be >= cols * channels (" +
                  std::to_string(row) + ")");
    if (data_ == nullptr && rows_ > 0 && cols_ > 0) throw error("image_view: data is null for a non-empty view");
    if (rows_ > 0 && cols_ > 0) {
      const index_t span =
          detail::checked_add(detail::checked_mul(rows_ - 1, row_stride_, "image_view: rows * row_stride"), row,
                              "image_view: rows * row_stride");
      detail::checked_mul(span, index_t(sizeof(T)), "image_view: the bytes of rows * row_stride");
    }
  }

  /// A one-channel image of a 2-D view.
  image_view(view2d<T> v) noexcept  // NOLINT(google-explicit-constructor): a view2d is a gray image
      : data_(v.data()), rows_(v.rows()), cols_(v.cols()), channels_(1), row_stride_(v.row_stride()) {}

  /// image_view<T> -> image_view<const T>.
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  image_view(const image_view<U>& other) noexcept  // NOLINT(google-explicit-constructor): by design
      : data_(other.data()),
        rows_(other.rows()),
        cols_(other.cols()),
        channels_(other.channels()),
        row_stride_(other.row_stride()) {}

  T* data() const noexcept { return data_; }
  index_t rows() const noexcept { return rows_; }
  index_t cols() const noexcept { return cols_; }
  index_t channels() const noexcept { return channels_; }
  /// Elements (not pixels) from one row to the next.
  index_t row_stride() const noexcept { return row_stride_; }
  shape2d shape() const noexcept { return {rows_, cols_}; }
  bool empty() const noexcept { return rows_ == 0 || cols_ == 0; }
  T* row(index_t r) const noexcept { return data_ + r * row_stride_; }
  T& operator()(index_t r, index_t c, index_t ch) const noexcept { return data_[r * row_stride_ + c * channels_ + ch]; }

 private:
  T* data_ = nullptr;
  index_t rows_ = 0, cols_ = 0, channels_ = 1, row_stride_ = 0;
};

template <class T>
class image {
  static_assert(is_pixel_v<T>, "convkit::image: pixels are std::uint8_t, std::uint16_t, std::int16_t, float or double");

 public:
  using value_type = T;

  image() = default;
  /// rows x cols pixels of `channels` zeros each. Throws convkit::error for negative sizes, channels
  /// outside 1..4, or sizes whose product overflows.
  image(index_t rows, index_t cols, index_t channels = 1)
      : pixels_(rows, detail::checked_mul(cols, check_channels(channels), "image: cols * channels")),
        cols_(cols),
        channels_(channels) {}

  image_view<T> view() noexcept { return {pixels_.data(), rows(), cols_, channels_, cols_ * channels_}; }
  image_view<const T> view() const noexcept { return {pixels_.data(), rows(), cols_, channels_, cols_ * channels_}; }
  operator image_view<T>() noexcept { return view(); }              // NOLINT: by design
  operator image_view<const T>() const noexcept { return view(); }  // NOLINT: by design

  T* data() noexcept { return pixels_.data(); }
  const T* data() const noexcept { return pixels_.data(); }
  index_t rows() const noexcept { return pixels_.rows(); }
  index_t cols() const noexcept { return cols_; }
  index_t channels() const noexcept { return channels_; }
  /// Elements: rows * cols * channels.
  index_t size() const noexcept { return pixels_.size(); }
  shape2d shape() const noexcept { return {rows(), cols_}; }
  T& operator()(index_t r, index_t c, index_t ch) noexcept { return pixels_(r, c * channels_ + ch); }
  const T& operator()(index_t r, index_t c, index_t ch) const noexcept { return pixels_(r, c * channels_ + ch); }

 private:
  static index_t check_channels(index_t channels) {
    if (channels < 1 || channels > max_channels)
      throw error("image: channels must be 1 to 4, got " + std::to_string(channels));
    return channels;
  }
  array2d<T> pixels_;  // rows x (cols * channels)
  index_t cols_ = 0, channels_ = 1;
};

namespace detail {
/// Whether two images' elements can share memory (aliasing).
template <class A, class B>
bool overlaps(image_view<const A> a, image_view<const B> b) noexcept {
  if (a.empty() || b.empty()) return false;
  const auto* a0 = reinterpret_cast<const unsigned char*>(a.data());
  const auto* a1 = reinterpret_cast<const unsigned char*>(a.row(a.rows() - 1) + a.cols() * a.channels());
  const auto* b0 = reinterpret_cast<const unsigned char*>(b.data());
  const auto* b1 = reinterpret_cast<const unsigned char*>(b.row(b.rows() - 1) + b.cols() * b.channels());
  return std::less<const unsigned char*>()(a0, b1) && std::less<const unsigned char*>()(b0, a1);
}
}  // namespace detail

CONVKIT_NAMESPACE_END
