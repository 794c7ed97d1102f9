// The one shape calculation. Every convolution convkit computes is, per axis, a strided, dilated
// *valid correlation* of a padded, border-extended input:
//   out[o] = sum_j ext[o * stride + j * dilation] * k[j],   o in [0, out),
// where ext[e] = input[e - pad_before] continued beyond the input by the border rule, and k is the
// kernel in correlation order (a convolution reverses it first, once, at the front door). A layer's
// padding is given; a single image's output mode (full, same, valid) becomes the two paddings here.
#pragma once

#include "../version.hpp"

#include <optional>
#include <string>

#include "../types.hpp"
#include "checked.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// One axis of a convolution (see the top of this file).
struct axis_geometry {
  index_t in;      ///< input length
  index_t kernel;  ///< kernel length (taps)
  index_t span;    ///< dilated kernel extent, (kernel - 1) * dilation + 1
  int stride, dilation;
  index_t out;         ///< output length
  index_t pad_before;  ///< ext[0] is input[-pad_before]
  index_t extent;      ///< how much of the extended input is read, (out - 1) * stride + span

  index_t pad_after() const noexcept { return extent - pad_before - in; }  // may be negative
  bool reads_outside() const noexcept { return pad_before > 0 || pad_after() > 0; }
  /// Results of the stride-1 correlation that the strided output samples: (out - 1) * stride + 1.
  index_t dense() const noexcept { return (out - 1) * index_t(stride) + 1; }
  /// Most of the extended axis is never read: the outputs read at most out * kernel of its extent
  /// positions (a stride, dilation or padding far beyond the image). Such an axis is computed from
  /// what it reads (the direct backend's gather path), never extended or transformed whole.
  bool sparse() const noexcept { return double(extent) > 4.0 * double(out) * double(kernel) + 4096.0; }
};

/// The names an axis's errors use, as the front door's caller knows them.
struct axis_names {
  const char* axis;           ///< "rows" or "cols": stride_<axis>, dilation_<axis>, pad_<axis>
  const char* input;          ///< the input length, e.g. "input rows" or "input H"
  const char* kernel;         ///< the kernel length, e.g. "kernel rows" or "weights R"
  const char* input_symbol;   ///< the input length in formulas, e.g. "H"
  const char* kernel_symbol;  ///< the kernel length in formulas, e.g. "R"
  const char* pad;            ///< the padding in formulas, e.g. "2 * pad_rows"
};

/// What an axis is asked for.
struct axis_request {
  index_t in = 0, kernel = 0;
  int stride = 1, dilation = 1;
  /// Single images: the output mode, which sets the paddings. Layers: none, and the paddings below.
  std::optional<output> mode;
  index_t pad_before = 0, pad_after = 0;
  const axis_names* names = nullptr;
};

/// The paddings of output mode `mode` for a dilated kernel span `span` (SciPy's conventions: 'same'
/// crops the full result from (span - 1) / 2, also for even spans).
inline void mode_padding(output mode, index_t span, index_t& before, index_t& after) noexcept {
  switch (mode) {
    case output::full: before = after = span - 1; return;
    case output::same:
      after = (span - 1) / 2;
      before = span - 1 - after;
      return;
    case output::valid: before = after = 0; return;
  }
}

/// Validates one axis and computes it. Throws convkit::error naming the argument.
inline axis_geometry make_axis(const axis_request& r) {
  const axis_names& n = *r.names;
  const std::string a(n.axis);
  if (r.in <= 0) throw error(std::string(n.input) + " must be > 0, got " + std::to_string(r.in));
  if (r.kernel <= 0) throw error(std::string(n.kernel) + " must be > 0, got " + std::to_string(r.kernel));
  if (r.stride < 1) throw error("stride_" + a + " must be >= 1, got " + std::to_string(r.stride));
  if (r.dilation < 1) throw error("dilation_" + a + " must be >= 1, got " + std::to_string(r.dilation));
  if (!r.mode && (r.pad_before < 0 || r.pad_after < 0))
    throw error("pad_" + a + " must be >= 0, got " + std::to_string(r.pad_before < 0 ? r.pad_before : r.pad_after));
  const std::string span_what = std::string(n.kernel) + " with dilation_" + a;
  const index_t span = checked_add(checked_mul(r.kernel - 1, r.dilation, span_what.c_str()), 1, span_what.c_str());
  index_t before = r.pad_before, after = r.pad_after;
  if (r.mode) {
    check_enum(*r.mode, "mode");
    mode_padding(*r.mode, span, before, after);
  }
  const std::string padded_what = std::string(n.input) + " + " + n.pad;
  const index_t padded = checked_add(checked_add(r.in, before, padded_what.c_str()), after, padded_what.c_str());
  if (span > padded) {
    if (r.mode)
      throw error("output::valid is empty: the dilated " + std::string(n.kernel) + " (" + std::to_string(span) +
                  ") is larger than the " + n.input + " (" + std::to_string(r.in) + ")");
    throw error("empty output: the dilated kernel " + a + " (dilation_" + a + " * (" + n.kernel_symbol +
                " - 1) + 1 = " + std::to_string(span) + ") exceeds the padded input " + a + " (" + n.input_symbol +
                " + " + n.pad + " = " + std::to_string(padded) + ")");
  }
  axis_geometry g{};
  g.in = r.in;
  g.kernel = r.kernel;
  g.span = span;
  g.stride = r.stride;
  g.dilation = r.dilation;
  g.out = (padded - span) / r.stride + 1;
  g.pad_before = before;
  g.extent = (g.out - 1) * index_t(r.stride) + span;  // <= padded: cannot overflow
  return g;
}

}  // namespace detail
CONVKIT_NAMESPACE_END
