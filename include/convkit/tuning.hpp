// convkit/tuning.hpp - how the backends run a convolution: settings that travel with each call or
// plan, and the process-wide defaults they fall back to.
//
//   tuning          a member of options and layer_options. Each field left unset takes the process
//                   default at the moment a plan (or a one-shot conv2d) is made; the plan keeps what
//                   it was made with, whatever the defaults become later.
//   fft_config      the fft backend's transform planning, tiling and workspace bound (fftw::config)
//   gpu_fft_config  the cufft backend's tiling and device-memory bound (cufft::config)
//   defaults        set_default_tuning() changes them for plans made afterwards; the backends' own
//                   setters (fftw::set_config, cufft::set_config, im2col::set_workspace_limit,
//                   direct::force_instruction_set) change one field each.
//
// Nothing here changes state outside convkit. The one setting that does, making OpenBLAS
// single-threaded for the whole process, is off unless tuning::single_threaded_blas asks for it.
#pragma once

#include "version.hpp"

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cpu.hpp"
#include "types.hpp"

CONVKIT_NAMESPACE_BEGIN

namespace detail {
class cufft_cache;
}
namespace cufft {
/// What the cufft backend keeps between calls for reuse (backends/cufft.hpp).
using workspace_cache = detail::cufft_cache;
}  // namespace cufft
class cost_profile;  // profile.hpp

/// How algorithm::automatic decides.
enum class choice_rule {
  estimate,  ///< the backends' cost models (with the profile's measured constants): no extra work
  measure    ///< the first call of a problem times the candidates (cuDNN's "find", FFTW's MEASURE) and
             ///< remembers the fastest per problem, in memory and in the profile file
};

/// When the direct backend runs a low-rank kernel (a Gaussian, box, Sobel; a LoG or a difference of
/// Gaussians as two terms) as pairs of 1-D passes (separable.hpp).
enum class separable_use {
  never,         ///< always the dense micro-kernel
  when_cheaper,  ///< where the cost model says the passes are faster (default)
  always         ///< whenever the kernel is low-rank (a single image or a depthwise layer)
};

/// How hard an FFT library looks for a fast algorithm when it plans a transform size it has no
/// wisdom for.
enum class fft_rigour {
  estimate,  ///< heuristics only: planning takes microseconds (default)
  measure,   ///< times candidate algorithms: seconds per new size, often 10-30% faster transforms
  patient    ///< times many more: minutes per new size
};

/// Whether an FFT backend cuts images into overlap-save tiles.
enum class fft_tiling {
  automatic,  ///< the cheapest transform size under the memory cap (default)
  never,      ///< one transform of the whole extended image (or the circular shortcut)
  always      ///< at least two tiles where the output allows it (tests, benchmarks)
};

/// The fft backend's settings.
struct fft_config {
  fft_rigour planning = fft_rigour::estimate;
  fft_tiling tiles = fft_tiling::automatic;
  /// > 0: force tiles of this many (dense, stride-1) output rows / cols each, at least the kernel's
  /// dilated span; for tests and benchmarks.
  index_t tile_rows = 0, tile_cols = 0;
  /// Workspace per thread that automatic tiling stays under: one tile buffer per thread plus the
  /// shared kernel spectrum, counted as two buffers. Layers: memory_cap * threads bounds all their
  /// buffers together (filter spectra, the sweep's input and output spectra, scratch).
  index_t memory_cap = index_t(64) << 20;
};

/// The cufft backend's settings.
struct gpu_fft_config {
  fft_tiling tiles = fft_tiling::automatic;
  /// > 0: force tiles of this many (dense, stride-1) output rows / cols each, at least the kernel's
  /// dilated span; for tests and benchmarks.
  index_t tile_rows = 0, tile_cols = 0;
  /// Device memory a plan may take, in bytes; 0: 80% of what the device reports free when the plan
  /// is made. Automatic tiling picks the cheapest tiles whose buffers fit under it.
  index_t memory_cap = 0;
  /// Where one-shot calls and convkit plans take GPU workspaces from and give them back to; null:
  /// the process-wide cache (cufft::release_cached()). It must outlive the calls and plans using it.
  cufft::workspace_cache* cache = nullptr;
};

/// Per-call and per-plan settings; an unset field means "the process default" (see the top).
struct tuning {
  std::optional<fft_config> fft;
  std::optional<gpu_fft_config> gpu_fft;
  /// Bound of the im2col backend's workspace (column matrices, extended windows, GEMM outputs), all
  /// threads together, in bytes (default 64 MiB). It cannot go below one output position's column
  /// and window per thread: smaller bounds use that.
  std::optional<index_t> im2col_workspace;
  /// The instruction set of the CPU kernels (at most cpu::best_instruction_set()).
  std::optional<cpu::isa> instruction_set;
  /// im2col with OpenBLAS: convkit's threads each run a GEMM, so OpenBLAS's own threads must be
  /// off. true: convkit calls openblas_set_num_threads(1), which is process-wide. false (the
  /// default): convkit changes nothing; while OpenBLAS runs more than one thread, im2col runs its
  /// tiles on one convkit thread and lets OpenBLAS thread each GEMM.
  std::optional<bool> single_threaded_blas;
  /// How automatic decides (default: estimate).
  std::optional<choice_rule> choice;
  /// When the direct backend runs a low-rank kernel as pairs of 1-D passes (default: when_cheaper).
  std::optional<separable_use> separable;
  /// How far a kernel may be from its low-rank approximation, relative (Frobenius), to be run as one:
  /// 0 (the default) is T's rounding level, which changes nothing a rounding would not. Above that is
  /// an opt-in to an approximation: each output then differs from the exact one by at most
  /// separable_tolerance * ||kernel||_F * ||the input window it reads||_2, beyond the rounding.
  std::optional<double> separable_tolerance;
  /// The cost constants automatic estimates with (profile.hpp); unset: the active profile, read from
  /// the profile file on first use.
  std::shared_ptr<const cost_profile> profile;
};

namespace detail {

/// A tuning with every field decided: what a plan keeps and its backends read.
struct settings {
  fft_config fft;
  gpu_fft_config gpu_fft;
  index_t im2col_workspace = index_t(64) << 20;
  cpu::isa instruction_set = cpu::best_instruction_set();
  bool single_threaded_blas = false;
  choice_rule choice = choice_rule::estimate;
  std::shared_ptr<const cost_profile> profile;  ///< null: the active profile
  separable_use separable = separable_use::when_cheaper;
  double separable_tolerance = 0;  ///< 0: T's rounding level
};

inline void check(const fft_config& c, const char* name) {
  const std::string n(name);
  if (c.planning != fft_rigour::estimate && c.planning != fft_rigour::measure && c.planning != fft_rigour::patient)
    throw error(n + ".planning: not a convkit::fft_rigour (value " + std::to_string(int(c.planning)) + ")");
  if (c.tiles != fft_tiling::automatic && c.tiles != fft_tiling::never && c.tiles != fft_tiling::always)
    throw error(n + ".tiles: not a convkit::fft_tiling (value " + std::to_string(int(c.tiles)) + ")");
  if (c.tile_rows < 0 || c.tile_cols < 0) throw error(n + ": tile_rows and tile_cols must be >= 0");
  if (c.memory_cap < 1) throw error(n + ": memory_cap must be >= 1 byte");
}

inline void check(const gpu_fft_config& c, const char* name) {
  const std::string n(name);
  if (c.tiles != fft_tiling::automatic && c.tiles != fft_tiling::never && c.tiles != fft_tiling::always)
    throw error(n + ".tiles: not a convkit::fft_tiling (value " + std::to_string(int(c.tiles)) + ")");
  if (c.tile_rows < 0 || c.tile_cols < 0) throw error(n + ": tile_rows and tile_cols must be >= 0");
  if (c.memory_cap < 0) throw error(n + ": memory_cap must be >= 0");
}

inline void check_workspace(index_t bytes, const char* name) {
  if (bytes < 1) throw error(std::string(name) + " must be >= 1, got " + std::to_string(bytes));
}

/// Throws convkit::unavailable if this CPU cannot run `i`, convkit::error if `i` is no isa.
inline void check_instruction_set(cpu::isa i, const char* name) {
  if (i != cpu::isa::portable && i != cpu::isa::avx2 && i != cpu::isa::avx512)
    throw error(std::string(name) + ": not a convkit::cpu::isa (value " + std::to_string(int(i)) + ")");
  if (int(i) > int(cpu::best_instruction_set()))
    throw unavailable(std::string(name) + ": this CPU does not support " + cpu::to_string(i));
}

/// The process defaults, behind one lock.
class default_settings {
 public:
  static settings get() {
    std::lock_guard<std::mutex> lock(mutex());
    return value();
  }
  /// Applies `change(settings&)` to the defaults (validated by the caller).
  template <class Change>
  static void update(Change&& change) {
    std::lock_guard<std::mutex> lock(mutex());
    change(value());
  }

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static settings& value() {
    static settings s;
    return s;
  }
};

/// `t` completed from the process defaults, each field validated (errors name "tuning.<field>").
inline settings resolve(const tuning& t) {
  settings s = default_settings::get();
  if (t.fft) {
    check(*t.fft, "tuning.fft");
    s.fft = *t.fft;
  }
  if (t.gpu_fft) {
    check(*t.gpu_fft, "tuning.gpu_fft");
    s.gpu_fft = *t.gpu_fft;
  }
  if (t.im2col_workspace) {
    check_workspace(*t.im2col_workspace, "tuning.im2col_workspace");
    s.im2col_workspace = *t.im2col_workspace;
  }
  if (t.instruction_set) {
    check_instruction_set(*t.instruction_set, "tuning.instruction_set");
    s.instruction_set = *t.instruction_set;
  }
  if (t.single_threaded_blas) s.single_threaded_blas = *t.single_threaded_blas;
  if (t.choice) {
    if (*t.choice != choice_rule::estimate && *t.choice != choice_rule::measure)
      throw error("tuning.choice: not a convkit::choice_rule (value " + std::to_string(int(*t.choice)) + ")");
    s.choice = *t.choice;
  }
  if (t.profile) s.profile = t.profile;
  if (t.separable) {
    if (*t.separable != separable_use::never && *t.separable != separable_use::when_cheaper &&
        *t.separable != separable_use::always)
      throw error("tuning.separable: not a convkit::separable_use (value " + std::to_string(int(*t.separable)) + ")");
    s.separable = *t.separable;
  }
  if (t.separable_tolerance) {
    if (!(*t.separable_tolerance >= 0 && *t.separable_tolerance < 1))
      throw error("tuning.separable_tolerance must be in [0, 1), got " + std::to_string(*t.separable_tolerance));
    s.separable_tolerance = *t.separable_tolerance;
  }
  return s;
}

}  // namespace detail

/// The process defaults, as a tuning with every field set.
inline tuning default_tuning() {
  const detail::settings s = detail::default_settings::get();
  tuning t;
  t.fft = s.fft;
  t.gpu_fft = s.gpu_fft;
  t.im2col_workspace = s.im2col_workspace;
  t.instruction_set = s.instruction_set;
  t.single_threaded_blas = s.single_threaded_blas;
  t.choice = s.choice;
  t.profile = s.profile;
  t.separable = s.separable;
  t.separable_tolerance = s.separable_tolerance;
  return t;
}

/// Replaces the process defaults with the fields `t` sets (the others stay) for plans and calls made
/// from now on (thread-safe). Throws convkit::error for an invalid field, naming it, and
/// convkit::unavailable for an instruction set this CPU lacks; then nothing changes.
inline void set_default_tuning(const tuning& t) {
  const detail::settings s = detail::resolve(t);  // validates
  detail::default_settings::update([&](detail::settings& d) {
    if (t.fft) d.fft = s.fft;
    if (t.gpu_fft) d.gpu_fft = s.gpu_fft;
    if (t.im2col_workspace) d.im2col_workspace = s.im2col_workspace;
    if (t.instruction_set) d.instruction_set = s.instruction_set;
    if (t.single_threaded_blas) d.single_threaded_blas = s.single_threaded_blas;
    if (t.choice) d.choice = s.choice;
    if (t.profile) d.profile = s.profile;
    if (t.separable) d.separable = s.separable;
    if (t.separable_tolerance) d.separable_tolerance = s.separable_tolerance;
  });
}

CONVKIT_NAMESPACE_END
