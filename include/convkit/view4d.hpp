// convkit/view4d.hpp - 4-D arrays for convolution layers: the non-owning view4d and the owning array4d.
//
//   NCHW        the layout of every 4-D array in convkit: element (n, c, h, w) lives at
//               data[((n * C + c) * H + h) * W + w], contiguous, W fastest. For a layer's input
//               n is the image in the batch, c the channel, h and w the row and column; for its
//               weights [K, C/groups, R, S] the first index is the filter (output channel) and
//               the last two the kernel's rows and columns.
//   plane       the H x W image at fixed (n, c): plane(n, c) is a view2d of it.
//   view4d<T>   a window on such memory; view4d<const T> is the read-only form, and a view4d<T>
//               converts to it implicitly.
//   array4d<T>  owns n * c * h * w elements, zero-initialised and aligned to 64 bytes; it converts
//               implicitly to view4d<T> and view4d<const T>.
#pragma once

#include "version.hpp"

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>

#include "detail/checked.hpp"
#include "types.hpp"
#include "view.hpp"

CONVKIT_NAMESPACE_BEGIN

/// The four extents of an NCHW array.
struct shape4d {
  index_t n, c, h, w;
  friend bool operator==(shape4d a, shape4d b) { return a.n == b.n && a.c == b.c && a.h == b.h && a.w == b.w; }
  friend bool operator!=(shape4d a, shape4d b) { return !(a == b); }
};

inline std::string to_string(shape4d s) {
  return "[" + std::to_string(s.n) + ", " + std::to_string(s.c) + ", " + std::to_string(s.h) + ", " +
         std::to_string(s.w) + "]";
}

namespace detail {
/// n * c * h * w, or convkit::error naming `what` if an extent is negative or the product overflows.
inline index_t checked_size4(shape4d s, const char* what) {
  const index_t e[4] = {s.n, s.c, s.h, s.w};
  const char* names[4] = {"n", "c", "h", "w"};
  for (int i = 0; i < 4; ++i)
    if (e[i] < 0) throw error(std::string(what) + ": " + names[i] + " must be >= 0, got " + std::to_string(e[i]));
  index_t size = 1;
  for (int i = 0; i < 4; ++i)  // the message is built only on overflow: views are made in hot paths
    if (__builtin_mul_overflow(size, e[i], &size))
      throw error(std::string(what) + ": n * c * h * w: size overflows convkit::index_t");
  return size;
}
}  // namespace detail

template <class T>
class view4d {
 public:
  using element_type = T;
  using value_type = std::remove_const_t<T>;

  view4d() = default;

  /// Throws convkit::error if an extent is negative, the size overflows, or data is null for a
  /// non-empty view.
  view4d(T* data, index_t n, index_t c, index_t h, index_t w) : data_(data), shape_{n, c, h, w} {
    size_ = detail::checked_size4(shape_, "view4d");
    detail::checked_mul(size_, index_t(sizeof(T)), "view4d: the bytes of n * c * h * w");
    if (data_ == nullptr && size_ > 0) throw error("view4d: data is null for a non-empty view");
  }

  /// view4d<T> -> view4d<const T>.
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  view4d(const view4d<U>& other) noexcept  // NOLINT(google-explicit-constructor): by design
      : data_(other.data()), shape_(other.shape()), size_(other.size()) {}

  T* data() const noexcept { return data_; }
  index_t n() const noexcept { return shape_.n; }
  index_t c() const noexcept { return shape_.c; }
  index_t h() const noexcept { return shape_.h; }
  index_t w() const noexcept { return shape_.w; }
  shape4d shape() const noexcept { return shape_; }
  index_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  T& operator()(index_t n, index_t c, index_t h, index_t w) const noexcept {
    return data_[((n * shape_.c + c) * shape_.h + h) * shape_.w + w];
  }
  /// The H x W plane of image n, channel c.
  view2d<T> plane(index_t n, index_t c) const noexcept {
    return view2d<T>(data_ + (n * shape_.c + c) * shape_.h * shape_.w, shape_.h, shape_.w);
  }

 private:
  T* data_ = nullptr;
  shape4d shape_{0, 0, 0, 0};
  index_t size_ = 0;
};

template <class T>
class array4d {
  static_assert(!std::is_const_v<T>, "array4d owns mutable elements; use view4d<const T> to share them");

 public:
  using value_type = T;

  array4d() = default;
  /// n x c x h x w zeros. Throws convkit::error on negative extents or if their product overflows.
  array4d(index_t n, index_t c, index_t h, index_t w)
      : data_(detail::aligned_zeros<T>(detail::checked_size4({n, c, h, w}, "array4d"), "array4d")),
        shape_{n, c, h, w} {}

  array4d(array4d&&) noexcept = default;
  array4d& operator=(array4d&&) noexcept = default;
  array4d(const array4d& other) : array4d(other.n(), other.c(), other.h(), other.w()) {
    if (size() > 0) std::memcpy(data_.get(), other.data_.get(), sizeof(T) * static_cast<std::size_t>(size()));
  }
  array4d& operator=(const array4d& other) {
    if (this != &other) *this = array4d(other);
    return *this;
  }

  view4d<T> view() noexcept { return {data_.get(), shape_.n, shape_.c, shape_.h, shape_.w}; }
  view4d<const T> view() const noexcept { return {data_.get(), shape_.n, shape_.c, shape_.h, shape_.w}; }
  operator view4d<T>() noexcept { return view(); }              // NOLINT: by design
  operator view4d<const T>() const noexcept { return view(); }  // NOLINT: by design

  T* data() noexcept { return data_.get(); }
  const T* data() const noexcept { return data_.get(); }
  index_t n() const noexcept { return shape_.n; }
  index_t c() const noexcept { return shape_.c; }
  index_t h() const noexcept { return shape_.h; }
  index_t w() const noexcept { return shape_.w; }
  shape4d shape() const noexcept { return shape_; }
  index_t size() const noexcept { return shape_.n * shape_.c * shape_.h * shape_.w; }
  T& operator()(index_t n, index_t c, index_t h, index_t w) noexcept {
    return data_[((n * shape_.c + c) * shape_.h + h) * shape_.w + w];
  }
  const T& operator()(index_t n, index_t c, index_t h, index_t w) const noexcept {
    return data_[((n * shape_.c + c) * shape_.h + h) * shape_.w + w];
  }

 private:
  std::unique_ptr<T[], detail::aligned_free> data_;
  shape4d shape_{0, 0, 0, 0};
};

namespace detail {
/// True for view4d<X> and array4d<X>: the things the layer conv2d accepts as a 4-D argument.
template <class A>
struct is_4d : std::false_type {};
template <class X>
struct is_4d<view4d<X>> : std::true_type {
  using value_type = std::remove_const_t<X>;
};
template <class X>
struct is_4d<array4d<X>> : std::true_type {
  using value_type = X;
};
template <class A>
inline constexpr bool is_4d_v = is_4d<std::remove_cv_t<std::remove_reference_t<A>>>::value;
template <class A>
using value_type_4d = typename is_4d<std::remove_cv_t<std::remove_reference_t<A>>>::value_type;

/// Whether the address ranges [a, a + na) and [b, b + nb) share an element (empty ranges share none).
template <class T>
bool overlaps(const T* a, index_t na, const T* b, index_t nb) noexcept {
  if (na <= 0 || nb <= 0) return false;
  return std::less<const T*>()(a, b + nb) && std::less<const T*>()(b, a + na);
}
}  // namespace detail

CONVKIT_NAMESPACE_END
