// The direct backend's layer path: a register tile of several output channels (filters) computed at
// once over every input channel of their group, so that each input vector loaded feeds a whole
// tile of filters and each weight a whole tile of positions (the layer micro-kernel,
// layer_kernel.inl; the per-plane path computes one filter-channel pair at a time and reloads its
// sums from memory for every channel).
//
// Layout. Each input plane is extended under the border rule (a zero border's pads are written once,
// by the plan: each call writes only the image's own elements) and, for strides above 1, split into
// phase planes (rows a * stride_rows + pr, columns b * stride_cols + pc: only the phases that some
// tap reads), each hp x wp, one channel after another channel_step elements apart. Output (i, j)
// is then the flat position q = i * wp + j of a phase plane, and tap (u, v) reads the element at
// q + tap_off[u * S + v] whatever the stride and dilation: every tap of every output is one offset
// from the output's own position, so a vector of consecutive positions is one unaligned load per
// tap. The positions j = out cols .. wp - 1 of each row are computed and dropped (the rule below
// keeps them under half). Weights are packed once, by the plan, per group and block of KB filters
// as [channel][tap][KB] (zeros for the filters a last block lacks), so that a tile's KB broadcasts
// read consecutive values.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "../padding.hpp"
#include "checked.hpp"
#include "direct_impl.hpp"
#include "problem.hpp"
#include "threads.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// Elements along axis a of a phase plane: the extended rows (columns) one stride phase holds.
inline index_t layer_phase_extent(const axis_geometry& a) noexcept { return (a.extent + a.stride - 1) / a.stride; }

/// About what a core's cache keeps at hand for the layer path: the prepared input of the images
/// computed together, or a group's packed weights, are kept within it.
inline constexpr double layer_cache_bytes = double(1 << 20);

/// Whether the direct backend computes problem p on its layer path: a batch (not one plane) dense
/// enough to extend whole, whose phase planes are at most about twice as wide as its output rows
/// (the positions between rows are computed and dropped).
inline bool direct_layer_applies(const conv_problem& p) noexcept {
  if (p.single_plane() || p.sparse()) return false;
  return layer_phase_extent(p.cols) <= 2 * p.cols.out + 16;
}

/// Whether the layer path computes p with the depthwise kernel (depthwise_plane), which reads the
/// image itself: one filter per channel, a zero border, rows undilated, at least depthwise_min_rows
/// output rows, and a kernel and stride depthwise_plane_for has (3 rows at strides 1 and 2, 5 at 1;
/// the same stride on both axes).
inline bool direct_depthwise_applies(const conv_problem& p) noexcept {
  return p.c_per_group() == 1 && p.k_per_group() == 1 && p.edge == border::zero && p.rows.stride == p.cols.stride &&
         p.rows.dilation == 1 && p.rows.out >= depthwise_min_rows &&
         depthwise_kernel_exists(p.rows.kernel, p.rows.stride);
}

/// Elements of T in a vector register of instruction set i.
template <class T>
constexpr index_t vector_lanes(cpu::isa i) noexcept {
  return i == cpu::isa::avx512 ? index_t(64 / sizeof(T)) : i == cpu::isa::avx2 ? index_t(32 / sizeof(T)) : 1;
}

/// The layer path of the direct executor for problems where direct_layer_applies.
template <class T>
class direct_layer {
 public:
  /// weights K x C/groups x R x S in correlation order; `threads` workers at most.
  direct_layer(const conv_problem& p, const T* weights, int threads)
      : p_(p),
        kernel_(layer_range_for<T>(p.tune.instruction_set, p.k_per_group())),
        store_(layer_store_for<T>(p.tune.instruction_set)),
        block_(layer_tile_of(p.tune.instruction_set, p.k_per_group()).channels),
        blocks_((p.k_per_group() + block_ - 1) / block_),
        threads_(threads) {
    const axis_geometry &gr = p.rows, &gc = p.cols;
    if (direct_depthwise_applies(p)) {  // no prepared input: the kernel reads the image
      depthwise_ = depthwise_plane_for<T>(p.tune.instruction_set, gr.kernel, gr.stride, gr.out);
      depthwise_taps_.assign(weights, weights + p.k * gr.kernel * gc.kernel);
      return;
    }
    const index_t lanes = vector_lanes<T>(p.tune.instruction_set);
    range_ = 2 * layer_tile_of(p.tune.instruction_set, p.k_per_group()).vectors * lanes;
    hp_ = layer_phase_extent(gr);
    wp_ = layer_phase_extent(gc);
    flat_ = checked_mul(gr.out, wp_, "layer output positions");
    // The phases that taps read, and where each tap reads within its channel.
    const auto phases_of = [](const axis_geometry& a) {
      std::vector<index_t> used;
      for (index_t u = 0; u < a.kernel; ++u) {
        const index_t ph = (u * a.dilation) % a.stride;
        if (std::find(used.begin(), used.end(), ph) == used.end()) used.push_back(ph);
      }
      return used;
    };
    row_phases_ = phases_of(gr);
    col_phases_ = phases_of(gc);
    for (index_t pr : row_phases_) row_image_.push_back(image_part(gr, pr, layer_phase_extent(gr)));
    for (index_t pc : col_phases_) col_image_.push_back(image_part(gc, pc, layer_phase_extent(gc)));
    const index_t plane = checked_mul(hp_, wp_, "layer phase plane");
    const index_t phase_count = index_t(row_phases_.size() * col_phases_.size());
    // Beyond its phase planes a channel keeps wp + a vector of slack: the last tile's dropped
    // positions read up to there (never a valid output's taps, which stay inside their phase plane).
    channel_step_ = checked_add(checked_mul(phase_count, plane, "layer phase planes"), wp_ + 64, "layer channel");
    channel_step_ = (channel_step_ + 15) / 16 * 16;
    const auto index_in = [](const std::vector<index_t>& v, index_t x) {
      return index_t(std::find(v.begin(), v.end(), x) - v.begin());
    };
    for (index_t u = 0; u < gr.kernel; ++u)
      for (index_t v = 0; v < gc.kernel; ++v) {
        const index_t er = u * gr.dilation, ec = v * gc.dilation;
        const index_t phase =
            index_in(row_phases_, er % gr.stride) * index_t(col_phases_.size()) + index_in(col_phases_, ec % gc.stride);
        tap_off_.push_back(phase * plane + (er / gr.stride) * wp_ + ec / gc.stride);
      }
    pack(weights);
    // Images are prepared and computed a few at a time, as many as keep their prepared input within
    // about a megabyte (at least one), so that it is still in cache when the micro-kernel reads it.
    const double image_bytes = double(p.c) * double(channel_step_) * double(sizeof(T));
    pass_images_ = std::clamp<index_t>(index_t(layer_cache_bytes / image_bytes), 1, p.n);
    input_ = array2d<T>(checked_mul(pass_images_, p.c, "input images * C"), channel_step_);
    std::fill(input_.data(), input_.data() + input_.size(), T(0));  // a zero border's pads, for good
    if ((gr.stride > 1 || gc.stride > 1) && p.edge != border::zero)
      ext_ = array2d<T>(threads_, checked_mul(gr.extent, gc.extent, "extended plane"));
    out_ = array2d<T>(threads_, checked_mul(block_, range_, "layer tile"));
  }

  /// out planes (n, k) for every image and filter; bias null or K values.
  void run(planes<const T> in, planes<T> out, const T* bias) {
    if (depthwise_ != nullptr) return run_depthwise(in, out, bias);
    for (index_t n0 = 0; n0 < p_.n; n0 += pass_images_) {
      const index_t images = std::min(pass_images_, p_.n - n0);
      prepare(in, n0, images);
      compute(out, bias, n0, images);
    }
  }

 private:
  void run_depthwise(planes<const T> in, planes<T> out, const T* bias) const {
    const conv_problem& g = p_;
    const index_t taps = g.rows.kernel * g.cols.kernel;
    parallel_chunks(g.n * g.c, threads_, [&](index_t, index_t p0, index_t p1) {
      for (index_t p = p0; p < p1; ++p) {
        const index_t n = p / g.c, ch = p % g.c;
        const view2d<const T> image = in.view(n, ch, g.rows.in, g.cols.in);
        const depthwise_job<T> job{image.data(),
                                   image.row_stride(),
                                   g.rows.in,
                                   g.cols.in,
                                   g.rows.pad_before,
                                   g.cols.pad_before,
                                   g.cols.dilation,
                                   int(g.cols.kernel),
                                   depthwise_taps_.data() + ch * taps,
                                   g.rows.out,
                                   g.cols.out,
                                   out.plane(n, ch),
                                   out.row_stride,
                                   bias != nullptr ? bias[ch] : T(0)};
        depthwise_(job);
      }
    });
  }

  // Output planes of images [n0, n0 + images), from their prepared input.
  void compute(planes<T> out, const T* bias, index_t n0, index_t images) {
    const conv_problem& g = p_;
    const index_t groups = g.groups, cg = g.c_per_group(), kg = g.k_per_group();
    const index_t blocks = blocks_, ranges = (flat_ + range_ - 1) / range_;
    const index_t taps = index_t(tap_off_.size());
    // Order of the work: the ranges of an image outermost and a range's filter blocks innermost, so
    // that a range's input stays in cache across its blocks; when a group's packed weights outgrow
    // the cache (deep layers on small planes), filter blocks outermost instead, so that a block's
    // weights stay in cache across the images and ranges.
    const bool blocks_outer = double(cg) * double(taps) * double(kg) * sizeof(T) > layer_cache_bytes;
    const index_t items = images * groups * blocks * ranges;
    parallel_chunks(items, threads_, [&](index_t slice, index_t i0, index_t i1) {
      T* const tile = out_.data() + slice * out_.cols();
      for (index_t item = i0; item < i1; ++item) {
        index_t n, grp, b, r;
        if (blocks_outer) {
          r = item % ranges;
          n = (item / ranges) % images;
          b = (item / (ranges * images)) % blocks;
          grp = item / (ranges * images * blocks);
        } else {
          b = item % blocks;
          r = (item / blocks) % ranges;
          grp = (item / (blocks * ranges)) % groups;
          n = item / (blocks * ranges * groups);
        }
        const layer_job<T> job{
            input_.data() + (n * g.c + grp * cg) * channel_step_,   channel_step_, cg,    tap_off_.data(), int(taps),
            weights_.data() + (grp * blocks + b) * weights_.cols(), tile,          range_};
        const index_t q0 = r * range_, q1 = std::min(flat_, q0 + range_);
        kernel_(job, q0, q1);
        const index_t first = grp * kg + b * block_, filters = std::min<index_t>(block_, kg - b * block_);
        for (index_t k = 0; k < filters; ++k)
          store_(tile + k * range_, q0, q1, wp_, g.cols.out, out.plane(n0 + n, first + k), out.row_stride,
                 bias != nullptr ? bias[first + k] : T(0));
      }
    });
  }

  // Weights K x C/groups x R x S into [group][block][channel][tap][KB].
  void pack(const T* weights) {
    const index_t cg = p_.c_per_group(), kg = p_.k_per_group(), taps = p_.rows.kernel * p_.cols.kernel;
    const index_t blocks = blocks_;
    weights_ = array2d<T>(checked_mul(p_.groups, blocks, "weight blocks"),
                          checked_mul(checked_mul(cg, taps, "weights C/groups * R * S"), block_, "weight block"));
    std::fill(weights_.data(), weights_.data() + weights_.size(), T(0));
    for (index_t grp = 0; grp < p_.groups; ++grp)
      for (index_t b = 0; b < blocks; ++b) {
        T* to = weights_.data() + (grp * blocks + b) * weights_.cols();
        for (index_t k = 0; k < std::min<index_t>(block_, kg - b * block_); ++k) {
          const T* from = weights + (grp * kg + b * block_ + k) * cg * taps;
          for (index_t c = 0; c < cg; ++c)
            for (index_t t = 0; t < taps; ++t) to[(c * taps + t) * block_ + k] = from[c * taps + t];
        }
      }
  }

  // The positions [lo, hi) of a phase plane's axis (phase `phase`, `length` positions) that read the
  // image: extended index x * stride + phase inside both the extent and the image.
  static std::pair<index_t, index_t> image_part(const axis_geometry& a, index_t phase, index_t length) noexcept {
    const auto up = [&](index_t x) { return x <= 0 ? index_t(0) : (x + a.stride - 1) / a.stride; };
    const index_t lo = std::min(up(a.pad_before - phase), length);
    return {lo, std::clamp(up(std::min(a.pad_before + a.in, a.extent) - phase), lo, length)};
  }

  // The input planes of images [n0, n0 + images) extended and split into their phase planes.
  void prepare(planes<const T> in, index_t n0, index_t images) {
    const conv_problem& g = p_;
    const axis_geometry &gr = g.rows, &gc = g.cols;
    const T fill = g.fill<T>();
    const bool strided = gr.stride > 1 || gc.stride > 1;
    parallel_chunks(images * g.c, threads_, [&](index_t slice, index_t p0, index_t p1) {
      for (index_t p = p0; p < p1; ++p) {
        const view2d<const T> src = in.view(n0 + p / g.c, p % g.c, gr.in, gc.in);
        T* const to = input_.data() + p * channel_step_;
        if (g.edge == border::zero) {  // only the image is written: the zeros around it were, once, by the constructor
          // Row by row of the image, each row into every column phase while it is in cache.
          const index_t plane = hp_ * wp_, col_phases = index_t(col_phases_.size());
          for (std::size_t i = 0; i < row_phases_.size(); ++i) {
            const index_t pr = row_phases_[i];
            const auto [a0, a1] = row_image_[i];
            for (index_t a = a0; a < a1; ++a) {
              const T* from = src.row(a * gr.stride + pr - gr.pad_before);  // column x of it: extended x + pad
              T* const rows = to + index_t(i) * col_phases * plane + a * wp_;
              for (index_t j = 0; j < col_phases; ++j) {
                const index_t pc = col_phases_[std::size_t(j)];
                const auto [b0, b1] = col_image_[std::size_t(j)];
                if (b1 <= b0) continue;  // a phase whose columns all lie beside the image
                T* row = rows + j * plane;
                const T* at = from + (b0 * gc.stride + pc - gc.pad_before);
                if (gc.stride == 1) {
                  std::copy(at, at + (b1 - b0), row + b0);
                } else {
                  for (index_t b = 0; b < b1 - b0; ++b) row[b0 + b] = at[b * gc.stride];
                }
              }
            }
          }
          continue;
        }
        if (!strided) {
          extend<T>(src, view2d<T>(to, gr.extent, gc.extent), gr.pad_before, gc.pad_before, g.edge, fill);
          continue;
        }
        const view2d<T> ext(ext_.data() + slice * ext_.cols(), gr.extent, gc.extent);
        extend<T>(src, ext, gr.pad_before, gc.pad_before, g.edge, fill);
        T* plane = to;
        for (index_t pr : row_phases_)
          for (index_t pc : col_phases_) {
            for (index_t a = 0; a < hp_; ++a, plane += wp_) {
              const index_t row = a * gr.stride + pr;
              if (row >= gr.extent) {
                std::fill(plane, plane + wp_, T(0));
                continue;
              }
              const T* from = ext.row(row);
              index_t b = 0;
              for (; b * gc.stride + pc < gc.extent; ++b) plane[b] = from[b * gc.stride + pc];
              std::fill(plane + b, plane + wp_, T(0));
            }
          }
      }
    });
  }

  conv_problem p_;
  layer_range_fn<T> kernel_;
  layer_store_fn<T> store_;
  depthwise_plane_fn<T> depthwise_ = nullptr;  // depthwise layers it suits, with their taps
  std::vector<T> depthwise_taps_;
  index_t block_;   // KB: filters per tile
  index_t blocks_;  // filter blocks per group
  int threads_;
  index_t range_ = 0;        // flat positions per work item
  index_t pass_images_ = 1;  // images prepared at a time
  index_t hp_ = 0, wp_ = 0, flat_ = 0, channel_step_ = 0;
  std::vector<index_t> row_phases_, col_phases_, tap_off_;
  std::vector<std::pair<index_t, index_t>> row_image_, col_image_;  // per phase: image_part
  array2d<T> weights_;                                              // one packed block per row
  array2d<T> input_;                                                // one prepared channel per row, pass_images_ images
  array2d<T> ext_;                                                  // strides: one extended plane per worker
  array2d<T> out_;                                                  // one tile of results per worker
};

}  // namespace detail
CONVKIT_NAMESPACE_END
