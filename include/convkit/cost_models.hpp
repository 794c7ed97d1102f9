// convkit/cost_models.hpp - what algorithm::automatic knows about a machine, as values.
//
//   constant        one constant of a cost model: its built-in value (where it came from is written
//                   beside it), the range a measurement of it must fall in to be believed, and the
//                   value measured on this machine, if any.
//   direct_costs    the direct backend's model (detail/direct_cost.hpp): micro-kernel rates per
//                   instruction set, kernel size and thread count; the batch paths' scales.
//   im2col_costs    the im2col backend's (backends/im2col.hpp): GEMM rate, lowering cost.
//   fft_costs       the fft backend's (detail/fftw_cost.hpp): transform time per element and log2 N,
//                   cache spill, threading, the batch path's scales.
//   cufft_costs     the cufft backend's (detail/cufft_cost.hpp): one scale on published estimates.
//   names           every constant has one name, "<backend>.<constant>" (direct's per instruction
//                   set and kernel: "direct.avx512.t1.k15" is AVX-512, one thread, 15 x 15 taps;
//                   "direct.avx512.tn.k15" the same on direct.threads threads). Each struct's
//                   visit() lists its constants once; cost_profile's for_each_constant() lists them
//                   all: the profile file, plausibility checks and merging read that one list.
// Each backend's calibration measures its struct (detail/calibration.hpp); a measurement outside a
// constant's plausible range is repeated, then dropped in favour of the value before it.
#pragma once

#include "version.hpp"

#include <array>
#include <cstddef>
#include <string>
#include <type_traits>

#include "cpu.hpp"
#include "types.hpp"

CONVKIT_NAMESPACE_BEGIN

/// One cost-model constant (see the top of this file). Reads as its value: `costs.call_s * 2`.
class constant {
 public:
  /// Built-in value `builtin`; measurements are plausible within [low, high].
  constexpr constant(double builtin, double low, double high) noexcept
      : value_(builtin), builtin_(builtin), low_(low), high_(high) {}

  constexpr operator double() const noexcept { return value_; }  // NOLINT: a constant reads as its value
  constexpr double value() const noexcept { return value_; }
  constexpr double builtin() const noexcept { return builtin_; }
  constexpr double low() const noexcept { return low_; }
  constexpr double high() const noexcept { return high_; }
  /// Measured on this machine (else the built-in value).
  constexpr bool measured() const noexcept { return measured_; }
  /// Within [low, high] (a constant never measured is).
  constexpr bool plausible() const noexcept { return !measured_ || (value_ >= low_ && value_ <= high_); }

  /// Records a measured value (plausible or not: see plausible()).
  constexpr void measure(double v) noexcept {
    value_ = v;
    measured_ = true;
  }
  /// Back to the built-in value.
  constexpr void forget() noexcept {
    value_ = builtin_;
    measured_ = false;
  }

 private:
  double value_, builtin_, low_, high_;
  bool measured_ = false;
};

/// The direct backend's constants. Rates are multiply-adds per second of a single plane; a rate of
/// 0 is one not measured, for which the model uses the instruction set's lanes x 2 FMA units x the
/// clock x 0.75 x taps / (taps + 30) (fitted on the AVX-512 Xeon this project first ran on, within
/// 10% for 3x3..31x31).
struct direct_costs {
  /// The k x k kernels whose rates a calibration measures.
  static constexpr int kernel_sizes[] = {1, 3, 5, 7, 9, 15, 21, 31};
  static constexpr std::size_t kernel_count = std::size(kernel_sizes);

  /// One instruction set's rates and scales.
  struct isa_rates {
    /// A 'same' k x k plane on one thread, and on `threads` threads, per kernel_sizes.
    std::array<constant, kernel_count> one_thread = rates(), all_threads = rates();
    /// The separable path's 1-D passes (a 15 x 15 Gaussian on 1000 x 1000); built in: a quarter of
    /// the instruction set's peak.
    constant separable_one_thread{0, 1e7, 1e14}, separable_all_threads{0, 1e7, 1e14};
    /// The layer path against its model with scale 1: on dense layers (a 16 -> 16 3x3 layer,
    /// 56 x 56), grouped ones (64 -> 64 in 16 groups of 4, 32 x 32; layer_scale where not measured)
    /// and depthwise ones (256 channels, 14 x 14).
    constant layer_scale{1, 0.05, 20}, grouped_layer_scale{1, 0.05, 20}, depthwise_layer_scale{1, 0.05, 20};

   private:
    static constexpr std::array<constant, kernel_count> rates() {
      return {constant{0, 1e7, 1e14}, constant{0, 1e7, 1e14}, constant{0, 1e7, 1e14}, constant{0, 1e7, 1e14},
              constant{0, 1e7, 1e14}, constant{0, 1e7, 1e14}, constant{0, 1e7, 1e14}, constant{0, 1e7, 1e14}};
    }
  };

  /// Seconds of a call besides its multiply-adds (a 16 x 16 image, 3 x 3 kernel).
  constant call_s{1e-6, 1e-8, 1e-3};
  /// The thread count of the *_all_threads rates.
  constant threads{1, 1, 1 << 16};
  /// Indexed by cpu::isa.
  std::array<isa_rates, 3> isa;

  const isa_rates& of(cpu::isa i) const noexcept { return isa[std::size_t(i)]; }
  isa_rates& of(cpu::isa i) noexcept { return isa[std::size_t(i)]; }

  static constexpr const char* prefix = "direct";
  /// Calls visit(name, constant) for every constant of `self` (a direct_costs, const or not), once.
  template <class Self, class Visit>
  static void visit(Self& self, Visit&& visit) {
    visit("call_s", self.call_s);
    visit("threads", self.threads);
    for (const auto& entry : detail::enum_table<cpu::isa>::entries) {
      auto& r = self.of(entry.value);
      const std::string isa = std::string(entry.name) + ".";
      for (std::size_t k = 0; k < kernel_count; ++k) {
        const std::string taps = ".k" + std::to_string(kernel_sizes[k]);
        visit(isa + "t1" + taps, r.one_thread[k]);
        visit(isa + "tn" + taps, r.all_threads[k]);
      }
      visit(isa + "separable.t1", r.separable_one_thread);
      visit(isa + "separable.tn", r.separable_all_threads);
      visit(isa + "layer_scale", r.layer_scale);
      visit(isa + "grouped_layer_scale", r.grouped_layer_scale);
      visit(isa + "depthwise_layer_scale", r.depthwise_layer_scale);
    }
  }
};

/// The im2col backend's constants; built in: fitted to bench_layers on the AVX-512 Xeon this
/// project first ran on.
struct im2col_costs {
  /// Multiply-adds per second of a GEMM on one thread (a 1x1 64 -> 64 layer, 56 x 56), before the
  /// m / (m + 12) factor for m > 1 filters per group.
  constant gemm_macs_per_s{65e9, 1e8, 1e14};
  /// The same of a GEMM with one row (one filter per group: a single image, a depthwise layer), a
  /// memory-bound matrix-vector product (a 512 x 512 image, 5 x 5 kernel). Built in: 65e9 / 13, the
  /// formula's value at m = 1 (measured 2.6-4.4e9 on the Xeon this project runs on now).
  constant vector_macs_per_s{5e9, 1e8, 1e13};
  /// Seconds per column-matrix element lowered (a 128 -> 128 3x3 layer, 28 x 28): what that layer
  /// takes beyond its GEMM at the 1x1 layer's rate. Where its deep GEMM runs faster than the 1x1
  /// one, that difference is no lowering cost (a Xeon measured 0 here): a tenth of the built-in
  /// value is the least believed.
  constant lower_s{0.3e-9, 0.03e-9, 1e-7};
  /// Seconds of a call besides its GEMMs (16 x 16, 3 x 3), and of each GEMM call (a depthwise layer).
  constant call_s{3e-6, 1e-8, 1e-3}, gemm_call_s{1e-6, 0, 1e-3};
  /// Layers of a few channels per group against the model (64 -> 64 in 16 groups of 4, 32 x 32).
  constant grouped_scale{1, 0.05, 20};

  static constexpr const char* prefix = "im2col";
  template <class Self, class Visit>
  static void visit(Self& self, Visit&& visit) {
    visit("gemm_macs_per_s", self.gemm_macs_per_s);
    visit("vector_macs_per_s", self.vector_macs_per_s);
    visit("lower_s", self.lower_s);
    visit("call_s", self.call_s);
    visit("gemm_call_s", self.gemm_call_s);
    visit("grouped_scale", self.grouped_scale);
  }
};

/// The fft backend's constants. Built in: fitted on a 2-core AVX-512 Xeon with 2 MiB of L2 per core
/// (FFTW 3.3.10, FFTW_ESTIMATE plans), square power-of-two lengths 16..2048, one core.
struct fft_costs {
  /// Seconds per element per log2 N of a tile (fill, r2c, product, c2r, copy-out), per element, and
  /// per tile, fitted on transforms that fit in L2.
  constant transform_unit{0.31e-9, 1e-12, 1e-8}, element_unit{0.4e-9, 0, 1e-7}, tile_unit{0, 0, 1e-3};
  /// Odd lengths' time per element and log2 N against even ones' (3^5, 3 x 5^3).
  constant odd_length_factor{2.0, 1, 10};
  /// Seconds per element per doubling of the working set beyond cache_bytes (1024, 2048).
  constant cache_unit{1.4e-9, 0, 1e-7};
  /// The L2 cache per core in bytes; 0: what the operating system reports.
  constant cache_bytes{0, 1 << 14, double(index_t(1) << 32)};
  /// What each extra thread adds: to one transform on FFTW's threads (1024 x 1024), and to tiles on
  /// convkit's (16 tiles of 256 x 256). 1: perfectly.
  constant threaded_efficiency{0.6, 0.2, 1}, tiled_efficiency{1.0, 0.2, 1};
  /// A whole image as the planner tiles it (2000 x 2000 * 21 x 21) against the formula.
  constant image_scale{1, 0.25, 4};
  /// Batches: the model's transforms and its channel sums against two layers where each dominates.
  constant batch_scale{1, 0.1, 10}, product_scale{1, 0.1, 10};
  /// Seconds of a call besides its tiles.
  constant call_s{1e-5, 0, 1e-3};

  static constexpr const char* prefix = "fft";
  template <class Self, class Visit>
  static void visit(Self& self, Visit&& visit) {
    visit("transform_unit", self.transform_unit);
    visit("element_unit", self.element_unit);
    visit("tile_unit", self.tile_unit);
    visit("odd_length_factor", self.odd_length_factor);
    visit("cache_unit", self.cache_unit);
    visit("cache_bytes", self.cache_bytes);
    visit("threaded_efficiency", self.threaded_efficiency);
    visit("tiled_efficiency", self.tiled_efficiency);
    visit("image_scale", self.image_scale);
    visit("batch_scale", self.batch_scale);
    visit("product_scale", self.product_scale);
    visit("call_s", self.call_s);
  }
};

/// The cufft backend's constant: its model's estimates (published H100-class figures) against one
/// measured 2048 x 2048 tile, transfers included, where a GPU exists.
struct cufft_costs {
  constant scale{1, 1e-3, 1e3};

  static constexpr const char* prefix = "cufft";
  template <class Self, class Visit>
  static void visit(Self& self, Visit&& visit) {
    visit("scale", self.scale);
  }
};

CONVKIT_NAMESPACE_END
