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

namespace detail {
template <>
struct enum_table<choice_rule> {
  static constexpr const char* type = "convkit::choice_rule";
  static constexpr enum_entry<choice_rule> entries[] = {{choice_rule::estimate, "estimate"},
                                                        {choice_rule::measure, "measure"}};
};
template <>
struct enum_table<separable_use> {
  static constexpr const char* type = "convkit::separable_use";
  static constexpr enum_entry<separable_use> entries[] = {{separable_use::never, "never"},
                                                          {separable_use::when_cheaper, "when_cheaper"},
                                                          {separable_use::always, "always"}};
};
template <>
struct enum_table<fft_rigour> {
  static constexpr const char* type = "convkit::fft_rigour";
  static constexpr enum_entry<fft_rigour> entries[] = {
      {fft_rigour::estimate, "estimate"}, {fft_rigour::measure, "measure"}, {fft_rigour::patient, "patient"}};
};
template <>
struct enum_table<fft_tiling> {
  static constexpr const char* type = "convkit::fft_tiling";
  static constexpr enum_entry<fft_tiling> entries[] = {
      {fft_tiling::automatic, "automatic"}, {fft_tiling::never, "never"}, {fft_tiling::always, "always"}};
};
}  // namespace detail

/// The fft backend's settings.
struct fft_config {
  fft_rigour planning = fft_rigour::estimate;
  fft_tiling tiles = fft_tiling::automatic;
  /// > 0: force tiles of this many (dense, stride-1) output rows / cols each, at least the kernel's
  /// dilated span; for tests and benchmarks.
  index_t tile_rows = 0, tile_cols = 0;
  /// Workspace per thread that automatic tiling stays under: one tile buffer per thread plus the
  /// shared kernel spectrum, counted as two buffers. Layers: memory_cap * threads bounds all their
  /// buffers together (filter spectra, the sweep's input and output spectra, scratch). Where even
  /// the smallest tiles exceed it (a kernel thousands of elements wide), the fastest tiles within
  /// twice their workspace are taken.
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
  separable_use separable = separable_use::when_cheaper;
  double separable_tolerance = 0;  ///< 0: T's rounding level
  /// Null until a plan resolves it (prepared.hpp): the tuning's profile, else the active one.
  std::shared_ptr<const cost_profile> profile;
  /// The profile is the active one (a measured choice is saved with it).
  bool profile_is_active = false;
};

inline void check(const fft_config& c, const std::string& name) {
  check_enum(c.planning, name + ".planning");
  check_enum(c.tiles, name + ".tiles");
  if (c.tile_rows < 0 || c.tile_cols < 0) throw error(name + ": tile_rows and tile_cols must be >= 0");
  if (c.memory_cap < 1) throw error(name + ": memory_cap must be >= 1 byte");
}

inline void check(const gpu_fft_config& c, const std::string& name) {
  check_enum(c.tiles, name + ".tiles");
  if (c.tile_rows < 0 || c.tile_cols < 0) throw error(name + ": tile_rows and tile_cols must be >= 0");
  if (c.memory_cap < 0) throw error(name + ": memory_cap must be >= 0");
}

inline void check_workspace(index_t bytes, const std::string& name) {
  if (bytes < 1) throw error(name + " must be >= 1, got " + std::to_string(bytes));
}

/// Throws convkit::unavailable if this CPU cannot run `i`, convkit::error if `i` is no isa.
inline void check_instruction_set(cpu::isa i, const std::string& name) {
  check_enum(i, name);
  if (int(i) > int(cpu::best_instruction_set()))
    throw unavailable(name + ": this CPU does not support " + cpu::to_string(i));
}

inline void check_separable_tolerance(double t, const std::string& name) {
  if (!(t >= 0 && t < 1)) throw error(name + " must be in [0, 1), got " + std::to_string(t));
}

/// Every field of tuning, once: visit(name, the tuning's member, the settings' member, its check).
/// resolve(), default_tuning() and set_default_tuning() are loops over this list.
template <class Visit>
void for_each_tuning_field(Visit&& visit) {
  const auto any = [](const auto&, const std::string&) {};
  visit("fft", &tuning::fft, &settings::fft, [](const fft_config& c, const std::string& n) { check(c, n); });
  visit("gpu_fft", &tuning::gpu_fft, &settings::gpu_fft,
        [](const gpu_fft_config& c, const std::string& n) { check(c, n); });
  visit("im2col_workspace", &tuning::im2col_workspace, &settings::im2col_workspace, &check_workspace);
  visit("instruction_set", &tuning::instruction_set, &settings::instruction_set, &check_instruction_set);
  visit("single_threaded_blas", &tuning::single_threaded_blas, &settings::single_threaded_blas, any);
  visit("choice", &tuning::choice, &settings::choice, &check_enum<choice_rule>);
  visit("separable", &tuning::separable, &settings::separable, &check_enum<separable_use>);
  visit("separable_tolerance", &tuning::separable_tolerance, &settings::separable_tolerance,
        &check_separable_tolerance);
  visit("profile", &tuning::profile, &settings::profile, any);
}

/// A tuning field's value, if set: std::optional's, or a non-null profile.
template <class V>
const V* given(const std::optional<V>& field) noexcept {
  return field ? &*field : nullptr;
}
inline const std::shared_ptr<const cost_profile>* given(const std::shared_ptr<const cost_profile>& field) noexcept {
  return field ? &field : nullptr;
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
  for_each_tuning_field([&](const char* name, auto field, auto kept, auto check) {
    if (const auto* v = given(t.*field)) {
      check(*v, std::string("tuning.") + name);
      s.*kept = *v;
    }
  });
  return s;
}

}  // namespace detail

/// The process defaults, as a tuning with every field set.
inline tuning default_tuning() {
  const detail::settings s = detail::default_settings::get();
  tuning t;
  detail::for_each_tuning_field([&](const char*, auto field, auto kept, auto) { t.*field = s.*kept; });
  return t;
}

/// Replaces the process defaults with the fields `t` sets (the others stay) for plans and calls made
/// from now on (thread-safe). Throws convkit::error for an invalid field, naming it, and
/// convkit::unavailable for an instruction set this CPU lacks; then nothing changes.
inline void set_default_tuning(const tuning& t) {
  const detail::settings s = detail::resolve(t);  // validates
  detail::default_settings::update([&](detail::settings& d) {
    detail::for_each_tuning_field([&](const char*, auto field, auto kept, auto) {
      if (detail::given(t.*field)) d.*kept = s.*kept;
    });
  });
}

CONVKIT_NAMESPACE_END
