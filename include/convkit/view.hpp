// convkit/view.hpp - 2-D arrays: the non-owning view2d and the owning, 64-byte aligned array2d.
//
//   view2d<T>   a window on row-major memory: element (r, c) lives at data[r * row_stride + c].
//               row_stride >= cols lets a view address a sub-rectangle of a larger image.
//               view2d<const T> is the read-only form; a view2d<T> converts to it implicitly.
//   array2d<T>  owns rows * cols contiguous elements (row_stride == cols), zero-initialised and
//               aligned to 64 bytes (one cache line, one AVX-512 register). It converts implicitly
//               to view2d<T> and view2d<const T>, so it can be passed wherever a view is expected.
#pragma once

#include "version.hpp"

#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <type_traits>

#include "detail/checked.hpp"
#include "types.hpp"

CONVKIT_NAMESPACE_BEGIN

template <class T>
class view2d {
 public:
  using element_type = T;
  using value_type = std::remove_const_t<T>;

  view2d() = default;

  /// Throws convkit::error if rows or cols is negative, row_stride < cols (after -1 -> cols), data is
  /// null for a non-empty view, or the memory the view spans ((rows - 1) * row_stride + cols elements)
  /// does not fit in index_t bytes.
  view2d(T* data, index_t rows, index_t cols, index_t row_stride = -1)
      : data_(data), rows_(rows), cols_(cols), row_stride_(row_stride == -1 ? cols : row_stride) {
    if (rows < 0) throw error("view2d: rows must be >= 0, got " + std::to_string(rows));
    if (cols < 0) throw error("view2d: cols must be >= 0, got " + std::to_string(cols));
    if (row_stride_ < cols_)
      throw error("view2d: row_stride (" + std::to_string(row_stride_) + ") must be >= cols (" + std::to_string(cols_) +
                  ")");
    if (data_ == nullptr && rows_ > 0 && cols_ > 0) throw error("view2d: data is null for a non-empty view");
    if (rows_ > 0 && cols_ > 0) {
      const index_t span = detail::checked_add(detail::checked_mul(rows_ - 1, row_stride_, "view2d: rows * row_stride"),
                                               cols_, "view2d: rows * row_stride");
      detail::checked_mul(span, index_t(sizeof(T)), "view2d: the bytes of rows * row_stride");
    }
  }

  /// view2d<T> -> view2d<const T>.
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  view2d(const view2d<U>& other) noexcept  // NOLINT(google-explicit-constructor): by design
      : data_(other.data()), rows_(other.rows()), cols_(other.cols()), row_stride_(other.row_stride()) {}

  T* data() const noexcept { return data_; }
  index_t rows() const noexcept { return rows_; }
  index_t cols() const noexcept { return cols_; }
  index_t row_stride() const noexcept { return row_stride_; }
  shape2d shape() const noexcept { return {rows_, cols_}; }
  bool empty() const noexcept { return rows_ == 0 || cols_ == 0; }
  T* row(index_t r) const noexcept { return data_ + r * row_stride_; }
  T& operator()(index_t r, index_t c) const noexcept { return data_[r * row_stride_ + c]; }

  /// The sub-rectangle of `rows x cols` elements starting at (r0, c0). Throws if it does not fit.
  view2d block(index_t r0, index_t c0, index_t rows, index_t cols) const {
    if (r0 < 0 || c0 < 0 || rows < 0 || cols < 0 || r0 > rows_ || c0 > cols_ || rows > rows_ - r0 || cols > cols_ - c0)
      throw error("view2d::block: the block does not lie inside the view");
    return view2d(data_ + r0 * row_stride_ + c0, rows, cols, row_stride_);
  }

 private:
  T* data_ = nullptr;
  index_t rows_ = 0, cols_ = 0, row_stride_ = 0;
};

namespace detail {
inline constexpr std::align_val_t array_alignment{64};

// Aligned operator new/delete (not aligned_alloc), so that a program's replacement allocation
// functions see convkit's arrays too (the benchmarks count allocations that way).
struct aligned_free {
  void operator()(void* p) const noexcept { ::operator delete(p, array_alignment); }
};

/// 64-byte aligned, zero-initialised storage for n elements of T (n may be 0).
template <class T>
std::unique_ptr<T[], aligned_free> aligned_zeros(index_t n, const char* what) {
  static_assert(std::is_trivially_copyable_v<T>, "convkit arrays hold trivially copyable elements");
  if (n < 0) throw error(std::string(what) + ": negative size");
  if (n == 0) return nullptr;
  index_t bytes = checked_mul(n, static_cast<index_t>(sizeof(T)), what);
  bytes = checked_add(bytes, 63, what) / 64 * 64;
  // The non-throwing form: a failure is a null pointer here both in production and under
  // AddressSanitizer (whose throwing operator new aborts instead of throwing std::bad_alloc).
  void* p = ::operator new(static_cast<std::size_t>(bytes), array_alignment, std::nothrow);
  if (!p) throw error(std::string(what) + ": cannot allocate " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, static_cast<std::size_t>(bytes));
  return std::unique_ptr<T[], aligned_free>(static_cast<T*>(p));
}
}  // namespace detail

template <class T>
class array2d {
  static_assert(!std::is_const_v<T>, "array2d owns mutable elements; use view2d<const T> to share them");

 public:
  using value_type = T;

  array2d() = default;
  /// rows x cols zeros. Throws convkit::error on negative sizes or if rows * cols overflows.
  array2d(index_t rows, index_t cols)
      : data_(detail::aligned_zeros<T>(
            detail::checked_mul(check(rows, "rows"), check(cols, "cols"), "array2d: rows * cols"), "array2d")),
        rows_(rows),
        cols_(cols) {}

  array2d(array2d&&) noexcept = default;
  array2d& operator=(array2d&&) noexcept = default;
  array2d(const array2d& other) : array2d(other.rows_, other.cols_) {
    if (size() > 0) std::memcpy(data_.get(), other.data_.get(), sizeof(T) * static_cast<std::size_t>(size()));
  }
  array2d& operator=(const array2d& other) {
    if (this != &other) *this = array2d(other);
    return *this;
  }

  view2d<T> view() noexcept { return {data_.get(), rows_, cols_, cols_}; }
  view2d<const T> view() const noexcept { return {data_.get(), rows_, cols_, cols_}; }
  operator view2d<T>() noexcept { return view(); }              // NOLINT: by design
  operator view2d<const T>() const noexcept { return view(); }  // NOLINT: by design

  T* data() noexcept { return data_.get(); }
  const T* data() const noexcept { return data_.get(); }
  index_t rows() const noexcept { return rows_; }
  index_t cols() const noexcept { return cols_; }
  index_t size() const noexcept { return rows_ * cols_; }
  shape2d shape() const noexcept { return {rows_, cols_}; }
  T& operator()(index_t r, index_t c) noexcept { return data_[r * cols_ + c]; }
  const T& operator()(index_t r, index_t c) const noexcept { return data_[r * cols_ + c]; }

 private:
  static index_t check(index_t n, const char* name) {
    if (n < 0) throw error(std::string("array2d: ") + name + " must be >= 0, got " + std::to_string(n));
    return n;
  }
  std::unique_ptr<T[], detail::aligned_free> data_;
  index_t rows_ = 0, cols_ = 0;
};

namespace detail {
/// True for view2d<X> and array2d<X>: the things conv2d accepts as a 2-D argument.
template <class A>
struct is_2d : std::false_type {};
template <class X>
struct is_2d<view2d<X>> : std::true_type {
  using value_type = std::remove_const_t<X>;
};
template <class X>
struct is_2d<array2d<X>> : std::true_type {
  using value_type = X;
};
template <class A>
inline constexpr bool is_2d_v = is_2d<std::remove_cv_t<std::remove_reference_t<A>>>::value;
template <class A>
using value_type_2d = typename is_2d<std::remove_cv_t<std::remove_reference_t<A>>>::value_type;

/// Half-open address range [begin, end) that a view can touch; used to detect aliasing.
template <class T>
bool overlaps(view2d<const T> a, view2d<const T> b) noexcept {
  if (a.empty() || b.empty()) return false;
  const T* a0 = a.data();
  const T* a1 = a.data() + (a.rows() - 1) * a.row_stride() + a.cols();
  const T* b0 = b.data();
  const T* b1 = b.data() + (b.rows() - 1) * b.row_stride() + b.cols();
  return std::less<const T*>()(a0, b1) && std::less<const T*>()(b0, a1);
}
}  // namespace detail

CONVKIT_NAMESPACE_END
