// The cufft backend's cost model: which transform and tiles it runs a problem with, and how long
// that takes. The GPU constants are estimates from published figures (an H100-class transform rate,
// PCIe transfers), not measurements: no GPU has run this code yet.
#pragma once

#include "../version.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "backend.hpp"
#include "cuda_api.hpp"
#include "cufft_layout.hpp"
#include "cufft_pool.hpp"
#include "fft_sizes.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// Per real element of a tile: an H100-class transform rate, and the host-side pass plus PCIe
/// transfer that every host element costs (estimated; a calibration scales them by cufft_costs::scale,
/// the measured time of a 2048 x 2048 tile against this model, where a GPU exists).
inline constexpr fft::fft_cost_model cufft_cost_model{5e-13, 2e-9, 4.0, 0.0};

/// Seconds per complex multiply-add of a batch's channel sums on the GPU (8 flops at ~20 TFLOP/s in
/// cuBLAS's batched GEMM; estimated).
inline constexpr double cufft_batch_cmac_seconds = 4e-13;

/// Set-up that the first call of a transform size pays (context, cuFFT plans, pinned buffers): about
/// 50 ms (estimated), left out for plans (conv_problem::amortised).
inline constexpr double cufft_setup_seconds = 0.05;

/// The tile plan of a single plane under `cap` bytes of device memory (see cufft_device_bytes: the
/// shared planner counts two buffers per worker, a cuFFT plan with two slots takes five).
inline fft::tile_plan cufft_tile_plan(const conv_problem& p, index_t cap) {
  const gpu_fft_config& c = p.tune.gpu_fft;
  return fft::plan_tiles(p.rows, p.cols, p.edge, p.element_bytes, 1, {c.tiles, c.tile_rows, c.tile_cols},
                         cufft_cost_model, cap / 5 * 2);
}

/// The transform of a batch on cuFFT: untiled (or the circular shortcut), the whole padded plane.
inline fft::tile_plan cufft_batch_tiles(const conv_problem& p) {
  return fft::plan_tiles(p.rows, p.cols, p.edge, p.element_bytes, 1, {fft_tiling::never, 0, 0}, cufft_cost_model, 0);
}

/// Cost model: never without a device, under the accuracy contract (types.hpp), for data holding NaN or Inf, or when
/// the smallest tiles (a single plane) or one image (a batch) exceed the memory cap (cufft_memory_cap). Otherwise, a
/// single plane: the tile plan's estimate with the GPU constants; a batch (never for 1x1 kernels: a transform would
/// only scale each channel, which im2col's GEMM does directly): the N (C + K) plane transforms and the channel sums,
/// plus, unless a plan pays them once, the K C/groups filter transforms. Plus, unless amortised, cufft_setup_seconds,
/// so that only calls large enough to amortise it go to the GPU.
inline double cufft_cost(const conv_problem& p, const cost_profile& profile) {
  if (!p.finite || p.sparse() || p.componentwise) return never;
  const cuda_api& api = active_cuda_api();
  if (!cuda_unavailable_reason(api).empty()) return never;
  index_t cap = 0;
  try {
    cap = cufft_memory_cap(api, p.tune.gpu_fft);
  } catch (const error&) {  // cudaMemGetInfo failed: a device in that state is not one to choose
    return never;
  }
  const double setup = p.amortised ? 0.0 : cufft_setup_seconds;
  const double scale = profile.cufft.scale;
  if (p.single_plane()) {
    const fft::tile_plan t = cufft_tile_plan(p, cap);
    if (cufft_device_bytes(t, p.element_bytes, std::min<index_t>(2, t.tiles())) > cap) return never;
    return setup + t.seconds * scale;
  }
  if (p.rows.kernel * p.cols.kernel == 1) return never;
  const fft::tile_plan t = cufft_batch_tiles(p);
  if (cufft_batch_chunk(p, t.layout(), p.element_bytes, cap) == 0) return never;
  const double filter_planes = p.amortised ? 0.0 : double(p.k) * double(p.c_per_group());
  const double planes = double(p.n) * double(p.c + p.k) + filter_planes;
  const double cmacs = double(p.n) * double(p.k) * double(p.c_per_group()) * double(t.layout().complex_count());
  return setup + (planes * fft::tile_seconds(t.rows.transform, t.cols.transform, cufft_cost_model) +
                  cmacs * cufft_batch_cmac_seconds) *
                     scale;
}

/// The GPU the profile's cufft.* values were measured on: its name, or none.
inline std::string cufft_library() {
  const cuda_api& api = active_cuda_api();
  if (!cuda_unavailable_reason(api).empty()) return "cufft=none";
  int device = 0;
  char name[256] = {};
  if (api.get_device(&device) != cudaSuccess || api.get_device_name(device, name, int(sizeof name)) != cudaSuccess)
    return "cufft=unknown";
  std::string n = name;
  for (char& ch : n)
    if (ch == ' ') ch = '_';
  return "cufft=" + n;
}

}  // namespace detail
CONVKIT_NAMESPACE_END
