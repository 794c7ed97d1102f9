// The fft backend (FFTW): accuracy on the shared grid with a transform-sized error bound, a large
// dynamic range, tiles (forced small ones too), plan reuse and the plan cache, no allocation per
// execute, concurrent calls, wisdom, and what NaN and Inf do; then the same for layers (groups,
// depthwise, tiles, sweeps, every instruction set's product kernel) and automatic's layer choice.
#include <convkit/backends/fftw.hpp>
#include <convkit/convkit.hpp>
#include <convkit/layer.hpp>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>

#include "count_allocations.hpp"
#include "fft_error.hpp"
#include "problems.hpp"

namespace convkit::testing {
namespace {

/// Cases (images or layers) on the fft backend with settings `cfg` (each call's options carry them).
template <class T>
void run_cases(const std::vector<conv_case>& cases, std::uint64_t salt, const fftw::config& cfg = {}) {
  std::mt19937_64 rng(run_seed() ^ salt ^ (sizeof(T) << 4));
  for (conv_case c : cases) {
    c.algo = algorithm::fft;
    c.tune.fft = cfg;
    check_case<T>(c, rng, call_conv2d<T>{}, fft_error<T>(c));
  }
}

/// The shared grid's single images on the fft backend with settings `cfg`.
template <class T>
void run_grid(std::uint64_t salt, const fftw::config& cfg = {}) {
  run_cases<T>(conv_grid(front_door::image), salt, cfg);
}

/// Log-uniform values in [lo, hi].
template <class T>
void fill_log_uniform(view2d<T> v, double lo, double hi, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> d(std::log(lo), std::log(hi));
  for (index_t r = 0; r < v.rows(); ++r)
    for (index_t c = 0; c < v.cols(); ++c) v(r, c) = static_cast<T>(std::exp(d(rng)));
}

/// Errors of one large-dynamic-range convolution: the largest |got - want| / |want|, the relative
/// L2 error ||got - want|| / ||want||, and the largest |got - want| relative to the per-element
/// transform bound (must be <= 1).
struct range_errors {
  double relative = 0, l2 = 0, of_bound = 0;
};

template <class T>
range_errors dynamic_range_case(index_t n, index_t k, const fftw::config& cfg, std::mt19937_64& rng) {
  array2d<T> in(n, n), kernel(k, k);
  fill_log_uniform(in.view(), 1e-3, 1e3, rng);
  fill_log_uniform(kernel.view(), 0.5, 1.0, rng);
  conv_case c = image_case(n, n, k, k);
  c.algo = algorithm::fft;
  c.tune.fft = cfg;
  const options o = c.image_opt();
  const array2d<T> got = conv2d(in, kernel, o);
  const array2d<double> want = reference::conv2d<T>(in, kernel, o);
  double in2 = 0, k2 = 0;  // zero border, full output: the extended input's norm is the input's
  for (index_t i = 0; i < in.size(); ++i) in2 += double(in.data()[i]) * double(in.data()[i]);
  for (index_t i = 0; i < kernel.size(); ++i) k2 += double(kernel.data()[i]) * double(kernel.data()[i]);
  const double bound = std::numeric_limits<T>::epsilon() * fft_error<T>(c).global * std::sqrt(in2 * k2);
  range_errors e;
  double err2 = 0, want2 = 0;
  for (index_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(double(got.data()[i]) - want.data()[i]);
    e.relative = std::max(e.relative, err / std::abs(want.data()[i]));
    e.of_bound = std::max(e.of_bound, err / bound);
    err2 += err * err;
    want2 += want.data()[i] * want.data()[i];
  }
  e.l2 = std::sqrt(err2 / want2);
  return e;
}

}  // namespace

TEST_CASE("fft matches the reference over the problem grid", "[fft]") {
  run_grid<float>(1);
  run_grid<double>(1);
}

TEST_CASE("fft: forced small tiles match the reference for every mode, border, stride and dilation", "[fft][tiles]") {
  for (index_t tile : {1, 2, 3, 5}) {
    INFO("tiles of " << tile << "x" << tile + 1 << " results");
    fftw::config cfg;
    cfg.tile_rows = tile;
    cfg.tile_cols = tile + 1;
    run_grid<float>(10 + std::uint64_t(tile), cfg);
    run_grid<double>(10 + std::uint64_t(tile), cfg);
  }
  fftw::config cfg;
  cfg.tiles = fftw::tiling::always;
  run_grid<float>(20, cfg);
  run_grid<double>(20, cfg);
}

TEST_CASE("fft: untiled transforms are linear, not circular", "[fft][tiles]") {
  fftw::config cfg;
  cfg.tiles = fftw::tiling::never;
  run_grid<float>(30, cfg);
  for (conv_case c : conv_grid(front_door::image, 0)) {
    if (c.edge != border::zero || c.mode == output::valid) continue;
    INFO(c.describe());
    c.tune.fft = cfg;
    const detail::conv_problem g = problem_of<float>(c);
    const detail::fft::tile_plan t = fftw_tiles_of(g);
    CHECK(t.tiles() == 1);
    CHECK(t.rows.transform >= g.rows.extent);  // the whole extended input that strides read
    CHECK(t.cols.transform >= g.cols.extent);
    if (c.stride_rows == 1) CHECK(t.rows.transform >= c.rows + (c.k_rows - 1) * c.dilation_rows);
    if (c.stride_cols == 1) CHECK(t.cols.transform >= c.cols + (c.k_cols - 1) * c.dilation_cols);
    CHECK(detail::fft::is_fast_size(t.rows.transform));
    CHECK(detail::fft::is_fast_size(t.cols.transform));
  }
}

TEST_CASE("fft: border::circular with output::same uses image-sized transforms where cheaper", "[fft][tiles]") {
  std::mt19937_64 rng(run_seed() ^ 0xc1c);
  int shortcut = 0;
  for (index_t n : {24, 30, 64}) {
    for (int stride : {1, 2}) {
      conv_case c = image_case(n, n + 6, 5, 4);
      c.mode = output::same;
      c.edge = border::circular;
      c.stride_rows = stride;
      c.dilation_cols = 2;
      c.correlate = stride == 2;
      c.algo = algorithm::fft;
      const detail::fft::tile_plan t = fftw_tiles_of(problem_of<double>(c));
      shortcut += t.circular;
      if (t.circular) CHECK(t.rows.transform == c.rows);
      check_case<double>(c, rng, call_conv2d<double>{}, fft_error<double>(c));
    }
  }
  CHECK(shortcut > 0);
}

TEST_CASE("fft: tiles cover every output exactly once", "[fft][tiles]") {
  std::vector<conv_case> cases = conv_grid(front_door::image, 32);
  for (index_t big : {300, 1000}) {  // automatic tiling of larger images under small memory caps
    conv_case c = image_case(big, big + 17, 15, 9);
    cases.push_back(c);
    c.stride_rows = 3;
    c.dilation_cols = 2;
    cases.push_back(c);
  }
  for (const conv_case& c : cases) {
    const detail::conv_problem p = problem_of<float>(c);
    for (index_t tile : {0, 1, 4, 7}) {
      for (index_t cap : {index_t(64) << 20, index_t(64) << 10}) {
        const detail::fft::tiling_request req{fft_tiling::automatic, tile, tile == 0 ? 0 : tile + 2};
        const detail::fft::tile_plan t =
            detail::fft::plan_tiles(p.rows, p.cols, c.edge, 4, 2, req, detail::fftw_model(*active_profile()), cap);
        INFO(c.describe() << ", forced tile " << tile << ", cap " << cap);
        const shape2d s = p.out_plane();
        array2d<int> hits(s.rows, s.cols);
        index_t wrapped = 0;  // results kept from the part of a tile that wrap-around reaches
        for (index_t tr = 0; tr < t.rows.tiles; ++tr)
          for (index_t tc = 0; tc < t.cols.tiles; ++tc) {
            const detail::fft::tile_outputs r = t.rows.outputs(tr), col = t.cols.outputs(tc);
            if (r.count > 0) wrapped += r.local + (r.count - 1) * t.rows.stride >= t.rows.results(tr);
            if (col.count > 0) wrapped += col.local + (col.count - 1) * t.cols.stride >= t.cols.results(tc);
            if (!t.circular) {
              wrapped += t.rows.results(tr) + p.rows.span - 1 > t.rows.transform;
              wrapped += t.cols.results(tc) + p.cols.span - 1 > t.cols.transform;
            }
            for (index_t i = 0; i < r.count; ++i)
              for (index_t j = 0; j < col.count; ++j) ++hits(r.first + i, col.first + j);
          }
        CHECK(wrapped == 0);
        index_t wrong = 0;
        for (index_t i = 0; i < hits.size(); ++i) wrong += hits.data()[i] != 1;
        CHECK(wrong == 0);
        if (tile == 0 && cap == (index_t(64) << 10) && t.tiles() > 1) CHECK(t.buffer_bytes(4) * 2 <= cap);
      }
    }
  }
}

TEST_CASE("fft: the tiled workspace stays under the cap at 10000x10000 * 15x15", "[fft][tiles]") {
  const conv_case c = image_case(10000, 10000, 15, 15);
  for (int threads : {1, 2, 8}) {
    detail::conv_problem p = problem_of<float>(c);
    p.threads = threads;
    p.tune.fft = fftw::config{};
    const detail::fft::tile_plan t = detail::fftw_tile_plan(p, *active_profile());
    INFO(threads << " threads: transform " << t.rows.transform << "x" << t.cols.transform << ", " << t.tiles()
                 << " tiles");
    CHECK(t.tiles() > 1);
    CHECK(t.workspace_bytes(sizeof(float), threads) <= (index_t(64) << 20) * threads);
  }
}

TEST_CASE("fft: where no tile fits the memory cap, the fastest tiles within twice the smallest workspace",
          "[fft][tiles]") {
  // A 7 x 4 kernel dilated by 1020 columns: every tile is at least 3,061 columns wide, and under a
  // 217 KB cap none fits. Tiles of the kernel's span would hold a few outputs each, 1,285 of them.
  namespace fft = detail::fft;
  conv_case c = image_case(14, 14, 7, 4);
  c.stride_rows = c.stride_cols = 2;
  c.dilation_rows = 4;
  c.dilation_cols = 1020;
  c.algo = algorithm::fft;
  fftw::config capped;
  capped.memory_cap = 217 << 10;
  c.tune.fft = capped;
  const detail::conv_problem p = problem_of<float>(c);
  const auto span_sized = [&](const detail::axis_geometry& g) {
    const index_t n =
        fft::tile_lengths(g.span, fft::next_fast_size(g.extent), detail::fftw_model(*active_profile())).front();
    return fft::plan_detail::overlap_save_axis(g, n, n - g.span + 1);
  };
  const fft::tile_plan smallest{span_sized(p.rows), span_sized(p.cols), false, 0.0};
  const fft::tile_plan t = detail::fftw_tile_plan(p, *active_profile());
  INFO("transform " << t.rows.transform << "x" << t.cols.transform << ", " << t.tiles() << " tiles; span-sized "
                    << smallest.rows.transform << "x" << smallest.cols.transform << ", " << smallest.tiles());
  REQUIRE(smallest.buffer_bytes(sizeof(float)) * 2 > capped.memory_cap);
  CHECK(t.buffer_bytes(sizeof(float)) <= 2 * smallest.buffer_bytes(sizeof(float)));
  CHECK(t.tiles() * 10 < smallest.tiles());
  std::mt19937_64 rng(run_seed() ^ 0x5a);
  check_case<float>(c, rng, call_conv2d<float>{}, fft_error<float>(c));
}

TEST_CASE("fft: a large dynamic range (1e-3..1e3) stays within the transform bound", "[fft][accuracy]") {
  std::mt19937_64 rng(run_seed() ^ 0xd7);
  fftw::config tiled;
  tiled.tiles = fftw::tiling::always;
  for (const fftw::config& cfg : {fftw::config{}, tiled}) {
    const range_errors f = dynamic_range_case<float>(256, 15, cfg, rng);
    const range_errors d = dynamic_range_case<double>(256, 15, cfg, rng);
    std::printf(
        "fft, 256x256 * 15x15 full, values 1e-3..1e3, %s: relative L2 error float %.2g, double %.2g; "
        "worst element relative error float %.2g, double %.2g (%.2f and %.2f of the per-element bound)\n",
        cfg.tiles == fftw::tiling::always ? "tiled" : "automatic", f.l2, d.l2, f.relative, d.relative, f.of_bound,
        d.of_bound);
    CHECK(f.of_bound <= 1.0);
    CHECK(d.of_bound <= 1.0);
    // The bound in L2 form: relative L2 error <= c * eps * log2(transform size).
    const conv_case c = image_case(256, 256, 15, 15);
    CHECK(f.l2 <= std::numeric_limits<float>::epsilon() * fft_error<float>(c).global);
    CHECK(d.l2 <= std::numeric_limits<double>::epsilon() * fft_error<double>(c).global);
  }
}

TEST_CASE("fft: a second conv2d of the same shape makes no new FFTW plan", "[fft][plans]") {
  std::mt19937_64 rng(run_seed() ^ 0x9a);
  for (int threads : {1, 2}) {
    array2d<float> in(131 + threads, 77), k(6, 5);
    fill_random(in.view(), rng);
    fill_random(k.view(), rng);
    options o;
    o.algo = algorithm::fft;
    o.threads = threads;
    conv2d(in, k, o);
    const long long made = detail::fftw_plans_made();
    fill_random(in.view(), rng);  // other data, same shape
    conv2d(in, k, o);
    plan<float> reused(in.rows(), in.cols(), k, o);  // plans share the cache too
    CHECK(detail::fftw_plans_made() == made);
  }
  // The cache's key: transform size, precision, threads and planner flags.
  const detail::fft::spectrum_layout size{150, 98};
  const auto f1 = detail::fftw_cached_plans<float>(size, 1, FFTW_ESTIMATE);
  CHECK(detail::fftw_cached_plans<float>(size, 1, FFTW_ESTIMATE) == f1);
  CHECK(detail::fftw_cached_plans<float>(size, 2, FFTW_ESTIMATE) != f1);
  CHECK(detail::fftw_cached_plans<float>({150, 99}, 1, FFTW_ESTIMATE) != f1);
  const long long made = detail::fftw_plans_made();
  detail::fftw_cached_plans<double>(size, 1, FFTW_ESTIMATE);
  CHECK(detail::fftw_plans_made() == made + 2);  // double precision: a new r2c and c2r
}

TEST_CASE("fft: plan<T>::execute allocates nothing", "[fft][plans]") {
  std::mt19937_64 rng(run_seed() ^ 0xa1);
  fftw::config tiled;
  tiled.tile_rows = 20;
  tiled.tile_cols = 30;
  for (const fftw::config& cfg : {fftw::config{}, tiled})
    for (int threads : {1, 2}) {
      INFO(threads << " threads, " << (cfg.tile_rows > 0 ? "tiled" : "untiled"));
      options o;
      o.algo = algorithm::fft;
      o.tune.fft = cfg;
      o.threads = threads;
      o.edge = border::reflect;
      o.mode = output::same;
      array2d<float> in(600, 500), k(7, 7), out(600, 500);  // large enough to use both threads
      fill_random(in.view(), rng);
      fill_random(k.view(), rng);
      plan<float> p(600, 500, k, o);
      CHECK(allocations_per_three_runs([&] { p.execute(in, out); }) == 0);
      const array2d<double> want = reference::conv2d<float>(in, k, o);
      double worst = 0;
      for (index_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::abs(out.data()[i] - want.data()[i]));
      CHECK(worst < 1e-4);
    }
}

TEST_CASE("fft: 8 threads convolve different shapes at once", "[fft][threads]") {
  const std::vector<conv_case> grid = conv_grid(front_door::image, 16);
  check_concurrently(grid.size(), 8, run_seed(), [&](std::size_t i, std::mt19937_64& rng) -> std::string {
    conv_case c = grid[i];
    c.algo = algorithm::fft;
    c.threads = 1 + int(i % 3);
    c.rows += index_t(i % 8);  // the same case's shape differs per thread
    array2d<double> in(c.rows, c.cols), k(c.k_rows, c.k_cols);
    fill_random(in.view(), rng);
    fill_random(k.view(), rng);
    const array2d<double> got = conv2d(in, k, c.image_opt());
    const array2d<double> want = reference::conv2d<double>(in, k, c.image_opt());
    double in2 = 0, k2 = 0;
    const detail::conv_problem g = problem_of<double>(c);
    array2d<double> ext(g.rows.extent, g.cols.extent);
    extend<double>(in, ext.view(), g.rows.pad_before, g.cols.pad_before, c.edge, c.edge_value);
    for (index_t j = 0; j < ext.size(); ++j) in2 += ext.data()[j] * ext.data()[j];
    for (index_t j = 0; j < k.size(); ++j) k2 += k.data()[j] * k.data()[j];
    const double bound = std::numeric_limits<double>::epsilon() * fft_error<double>(c).global * std::sqrt(in2 * k2);
    for (index_t j = 0; j < got.size(); ++j)
      if (!(std::abs(got.data()[j] - want.data()[j]) <= bound)) return c.describe();
    return {};
  });
}

TEST_CASE("fft: wisdom survives an export / forget / import round trip", "[fft][wisdom]") {
  const std::string path = "convkit_test_fftw.wisdom";
  const detail::fft::spectrum_layout float_size{36, 40}, double_size{42, 50};
  constexpr unsigned from_wisdom = FFTW_MEASURE | FFTW_WISDOM_ONLY;
  detail::fftw_cached_plans<float>(float_size, 1, FFTW_MEASURE);
  detail::fftw_cached_plans<double>(double_size, 1, FFTW_MEASURE);
  fftw::export_wisdom(path);
  fftw::forget_wisdom();
  CHECK_THROWS_AS(detail::fftw_cached_plans<float>(float_size, 1, from_wisdom), error);
  CHECK_THROWS_AS(detail::fftw_cached_plans<double>(double_size, 1, from_wisdom), error);
  fftw::import_wisdom(path);
  CHECK(detail::fftw_cached_plans<float>(float_size, 1, from_wisdom) != nullptr);
  CHECK(detail::fftw_cached_plans<double>(double_size, 1, from_wisdom) != nullptr);
  std::remove(path.c_str());

  CHECK_THROWS_WITH(fftw::import_wisdom("/nonexistent/convkit.wisdom"), Catch::Contains("/nonexistent/convkit.wisdom"));
  CHECK_THROWS_AS(fftw::export_wisdom("/nonexistent/dir/convkit.wisdom"), error);
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    std::fputs("(fftw-3.3.10 fftwf_wisdom #x0 garbage", f);
    std::fclose(f);
  }
  CHECK_THROWS_AS(fftw::import_wisdom(path), error);
  std::remove(path.c_str());
}

TEST_CASE("fft: settings travel with each call and plan; fftw::set_config only sets the default", "[fft][config]") {
  fftw::config cfg;
  cfg.planning = fftw::rigour::measure;
  cfg.tile_rows = 16;
  cfg.tile_cols = 16;
  std::mt19937_64 rng(run_seed() ^ 0x3e);
  conv_case c = image_case(40, 50, 3, 3);
  c.algo = algorithm::fft;
  c.tune.fft = cfg;                                             // this call's settings
  CHECK(fftw_tiles_of(problem_of<float>(c)).tiles() == 3 * 4);  // 42 x 52 dense full results
  check_case<float>(c, rng, call_conv2d<float>{}, fft_error<float>(c));
  CHECK(fftw::get_config().planning == fftw::rigour::estimate);  // the default is untouched

  // The default applies to plans made after it is set, and a plan keeps what it was made with.
  conv_case d = c;
  d.tune.fft.reset();
  const index_t automatic_tiles = fftw_tiles_of(problem_of<float>(d)).tiles();
  REQUIRE(automatic_tiles > 1);
  fftw::config untiled;
  untiled.tiles = fftw::tiling::never;
  const fftw::config saved = fftw::get_config();
  fftw::set_config(untiled);
  CHECK(fftw_tiles_of(problem_of<float>(d)).tiles() == 1);
  array2d<float> in(40, 50), k(3, 3), first(42, 52), second(42, 52);
  fill_random(in.view(), rng);
  fill_random(k.view(), rng);
  plan<float> made_with_default(40, 50, k, d.image_opt());
  made_with_default.execute(in, first);
  fftw::set_config(saved);
  CHECK(fftw_tiles_of(problem_of<float>(d)).tiles() == automatic_tiles);
  made_with_default.execute(in, second);  // still one untiled transform: the same numbers
  CHECK(std::memcmp(first.data(), second.data(), sizeof(float) * std::size_t(first.size())) == 0);

  fftw::config bad;
  bad.tile_rows = -1;
  CHECK_THROWS_WITH(fftw::set_config(bad), Catch::Contains("tile_rows"));
  c.tune.fft = bad;
  CHECK_THROWS_WITH(plan<float>(40, 50, k, c.image_opt()),
                    Catch::Contains("tuning.fft") && Catch::Contains("tile_rows"));
  bad = {};
  bad.memory_cap = 0;
  CHECK_THROWS_WITH(fftw::set_config(bad), Catch::Contains("memory_cap"));
  bad = {};
  bad.tiles = static_cast<fftw::tiling>(9);
  CHECK_THROWS_WITH(fftw::set_config(bad), Catch::Contains("tiles"));
  bad = {};
  bad.planning = static_cast<fftw::rigour>(-1);
  CHECK_THROWS_WITH(fftw::set_config(bad), Catch::Contains("planning"));
  CHECK(fftw::get_config().tiles == fftw::tiling::automatic);  // refused settings change nothing
}

TEST_CASE("fft: NaN and Inf", "[fft][nan]") {
  // Data with NaN or Inf: the cost rule refuses them, so automatic never picks fft.
  detail::conv_problem p = problem_of<float>(image_case(64, 64, 61, 61));
  CHECK(detail::fftw_cost(p, *active_profile()) < detail::never);
  p.finite = false;
  CHECK(detail::fftw_cost(p, *active_profile()) == detail::never);
  REQUIRE(automatic_choice(64, 64, 61, 61, {}) == algorithm::fft);  // finite data of this shape go to fft

  array2d<float> in(64, 64), k(61, 61);
  std::mt19937_64 rng(run_seed() ^ 0x4a4);
  fill_random(in.view(), rng);
  fill_random(k.view(), rng);
  in(0, 0) = std::numeric_limits<float>::quiet_NaN();
  // automatic: only the outputs whose taps read element (0, 0) are NaN, as the definition says.
  const array2d<float> automatic = conv2d(in, k);
  index_t nan_automatic = 0;
  for (index_t r = 0; r < automatic.rows(); ++r)
    for (index_t c = 0; c < automatic.cols(); ++c) {
      const bool reads_nan = r < 61 && c < 61;
      nan_automatic += std::isnan(automatic(r, c));
      CHECK(std::isnan(automatic(r, c)) == reads_nan);
    }
  CHECK(nan_automatic == 61 * 61);

  // fft asked for explicitly, untiled: one NaN or Inf in the input turns every output into NaN.
  options o;
  o.algo = algorithm::fft;
  o.tune.fft = fftw::config{};
  o.tune.fft->tiles = fftw::tiling::never;
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    in(0, 0) = bad;
    const array2d<float> smeared = conv2d(in, k, o);
    index_t nan_fft = 0;
    for (index_t i = 0; i < smeared.size(); ++i) nan_fft += std::isnan(smeared.data()[i]);
    CHECK(nan_fft == smeared.size());
  }
}

/// A profile under which fft looks far cheaper than every other backend, so that automatic picks it.
std::shared_ptr<const cost_profile> fft_looks_cheap() {
  auto p = std::make_shared<cost_profile>(machine_fingerprint());
  p->fft.transform_unit.measure(3e-16);
  p->fft.element_unit.measure(1e-15);
  p->fft.batch_scale.measure(1e6);
  return p;
}

/// Outputs equal bit for bit, NaN matching NaN.
template <class T>
index_t differing(const T* a, const T* b, index_t n) {
  index_t d = 0;
  for (index_t i = 0; i < n; ++i) d += !(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])));
  return d;
}

template <class T>
void check_fallback_on_every_tile() {
  // Small forced tiles (about 30 of them) and bad values in one tile at a time, at its corners and
  // inside, and in the last element: wherever the transform meets them, the call is computed by
  // direct, bit for bit as a direct plan computes it.
  using limits = std::numeric_limits<T>;
  options o;
  o.mode = output::same;
  o.edge = border::reflect;
  o.threads = 2;
  o.accuracy = accuracy::normwise;  // the contract would keep a 7x7 kernel off the transform
  o.tune.profile = fft_looks_cheap();
  o.tune.fft = fftw::config{};
  o.tune.fft->tiles = fftw::tiling::always;
  o.tune.fft->tile_rows = o.tune.fft->tile_cols = 20;
  array2d<T> in(101, 93), k(7, 7);
  std::mt19937_64 rng(run_seed() ^ 0x4a6 ^ sizeof(T));
  fill_random(in.view(), rng);
  fill_random(k.view(), rng);
  plan<T> automatic(in.rows(), in.cols(), k, o);
  REQUIRE(automatic.chosen() == algorithm::fft);
  options d = o;
  d.algo = algorithm::direct;
  plan<T> direct(in.rows(), in.cols(), k, d);
  array2d<T> got(in.rows(), in.cols()), want(in.rows(), in.cols());
  const std::pair<index_t, index_t> places[] = {{0, 0}, {19, 19}, {20, 40}, {55, 61}, {100, 0}, {100, 92}};
  for (const auto& [r, c] : places)
    for (const T bad : {limits::quiet_NaN(), limits::infinity(), -limits::infinity()}) {
      INFO("at " << r << ", " << c << ": " << bad);
      const T kept = in(r, c);
      in(r, c) = bad;
      automatic.execute(in, got);
      direct.execute(in, want);
      CHECK(differing(got.data(), want.data(), got.size()) == 0);
      in(r, c) = kept;
    }
  // +Inf and -Inf in one tile (their sum is NaN), and finite values whose transform overflows.
  in(30, 30) = limits::infinity();
  in(31, 33) = -limits::infinity();
  automatic.execute(in, got);
  direct.execute(in, want);
  CHECK(differing(got.data(), want.data(), got.size()) == 0);
  for (index_t i = 0; i < in.size(); ++i) in.data()[i] = limits::max() / T(4);
  automatic.execute(in, got);
  direct.execute(in, want);
  CHECK(differing(got.data(), want.data(), got.size()) == 0);
  // Finite data again: the plan's own fft, within its bound of the direct result.
  fill_random(in.view(), rng);
  automatic.execute(in, got);
  direct.execute(in, want);
  for (index_t i = 0; i < got.size(); ++i) CHECK(std::isfinite(got.data()[i]));
}

TEST_CASE("fft: an automatic plan on fft that meets NaN or Inf in any tile computes the call with direct",
          "[fft][nan]") {
  check_fallback_on_every_tile<float>();
  check_fallback_on_every_tile<double>();
}

// --- Layers -----------------------------------------------------------------------------------------

namespace {

/// Groups, depthwise and wide channel counts beyond the shared grid's, on every border.
std::vector<conv_case> grouped_layers() {
  std::vector<conv_case> cases;
  for (border edge : {border::zero, border::reflect, border::replicate, border::circular, border::symmetric}) {
    conv_case grouped = layer_case(2, 24, 12, 30, 27, 5, 5, true);  // 3 groups of 8 channels and 4 filters
    grouped.groups = 3;
    grouped.stride_rows = 2;
    grouped.dilation_cols = 2;
    grouped.pad_rows = 3;
    grouped.pad_cols = 1;
    grouped.edge = edge;
    cases.push_back(grouped);
    conv_case depthwise = layer_case(3, 16, 16, 20, 18, 7, 7);  // "same" padding: circular can skip padding
    depthwise.groups = 16;
    depthwise.pad_rows = depthwise.pad_cols = 3;
    depthwise.edge = edge;
    cases.push_back(depthwise);
    conv_case multiplier = layer_case(1, 6, 18, 17, 17, 3, 4, true);  // depthwise with 3 filters per channel
    multiplier.groups = 6;
    multiplier.stride_cols = 3;
    multiplier.pad_rows = multiplier.pad_cols = 2;
    multiplier.edge = edge;
    cases.push_back(multiplier);
    conv_case dense = layer_case(1, 40, 9, 12, 16, 3, 3, true);  // many channels summed in the frequency domain
    dense.pad_rows = dense.pad_cols = 1;
    dense.edge = edge;
    cases.push_back(dense);
  }
  return cases;
}

bool fft_computes_layers() {
  layer_options o;
  o.algo = algorithm::fft;
  return layer_plan<float>({2, 3, 4, 4}, array4d<float>(2, 3, 2, 2), nullptr, o).chosen() == algorithm::fft;
}

}  // namespace

TEST_CASE("fft layers: groups, depthwise and wide channel counts match the reference", "[fft][layers]") {
  REQUIRE(fft_computes_layers());
  run_cases<float>(grouped_layers(), 1);
  run_cases<double>(grouped_layers(), 1);
  // border::circular with "same" padding takes the image-sized transform (no padding at all).
  const conv_case depthwise = grouped_layers()[3 * 4 + 1];
  REQUIRE(depthwise.edge == border::circular);
  CHECK(fftw_tiles_of(problem_of<float>(depthwise)).circular);
}

TEST_CASE("fft layers: forced tiles, untiled transforms and several sweeps match the reference",
          "[fft][layers][tiles]") {
  const std::vector<conv_case> grid = conv_grid(front_door::layer, 32);
  const auto run_with = [&](const fftw::config& cfg, std::uint64_t salt) {
    run_cases<float>(grid, salt, cfg);
    run_cases<double>(grid, salt, cfg);
    run_cases<float>(grouped_layers(), salt, cfg);
  };
  for (index_t tile : {1, 2, 4}) {
    INFO("tiles of " << tile << "x" << tile + 1 << " results");
    fftw::config cfg;
    cfg.tile_rows = tile;
    cfg.tile_cols = tile + 1;
    run_with(cfg, 40 + std::uint64_t(tile));
  }
  fftw::config always;
  always.tiles = fftw::tiling::always;
  run_with(always, 50);
  fftw::config never;
  never.tiles = fftw::tiling::never;
  run_with(never, 51);
  // A workspace cap of a few KiB leaves room for one (image, tile) pair per sweep.
  fftw::config tight;
  tight.memory_cap = 4 << 10;
  run_with(tight, 52);
  conv_case c = grouped_layers()[0];
  c.algo = algorithm::fft;
  c.threads = 1;
  c.tune.fft = tight;
  const detail::fftw_batch_layout l = detail::fftw_batch_plan(problem_of<float>(c), *active_profile());
  CHECK(l.sweep < l.pairs);
}

TEST_CASE("fft layers: every instruction set's product kernel matches the reference", "[fft][layers]") {
  const cpu::isa best = cpu::best_instruction_set();
  for (cpu::isa i : {cpu::isa::portable, cpu::isa::avx2, cpu::isa::avx512}) {
    if (static_cast<int>(i) > static_cast<int>(best)) continue;
    INFO(cpu::to_string(i));
    const auto with_isa = [i](std::vector<conv_case> cases) {
      for (conv_case& c : cases) c.tune.instruction_set = i;
      return cases;
    };
    run_cases<float>(with_isa(conv_grid(front_door::layer, 16)), 60 + std::uint64_t(i));
    run_cases<double>(with_isa(conv_grid(front_door::layer, 16)), 60 + std::uint64_t(i));
    run_cases<float>(with_isa(grouped_layers()), 60 + std::uint64_t(i));
    run_cases<double>(with_isa(grouped_layers()), 60 + std::uint64_t(i));
  }
}

TEST_CASE("fft layers: layer_plan::execute allocates nothing", "[fft][layers][plans]") {
  std::mt19937_64 rng(run_seed() ^ 0xa2);
  fftw::config tiled;
  tiled.tile_rows = 6;
  tiled.tile_cols = 9;
  fftw::config sweeps;  // one (image, tile) pair per sweep
  sweeps.memory_cap = 4 << 10;
  for (const fftw::config& cfg : {fftw::config{}, tiled, sweeps})
    for (int threads : {1, 2}) {
      INFO(threads << " threads, tile_rows " << cfg.tile_rows << ", memory_cap " << cfg.memory_cap);
      layer_options o;
      o.algo = algorithm::fft;
      o.tune.fft = cfg;
      o.threads = threads;
      o.groups = 2;
      o.pad_rows = o.pad_cols = 2;
      o.stride_cols = 2;
      o.edge = border::reflect;
      array4d<float> in(3, 8, 40, 36), w(6, 4, 5, 5);
      fill_random(in.view(), rng);
      fill_random(w.view(), rng);
      const std::vector<float> bias(6, 0.25f);
      layer_plan<float> p(in.shape(), w, bias.data(), o);
      REQUIRE(p.chosen() == algorithm::fft);
      const shape4d s = p.output_shape();
      array4d<float> out(s.n, s.c, s.h, s.w);
      CHECK(allocations_per_three_runs([&] { p.execute(in, out); }) == 0);
      const array4d<double> want = reference::conv2d<float>(in, w, bias.data(), o);
      double worst = 0;
      for (index_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::abs(out.data()[i] - want.data()[i]));
      CHECK(worst < 1e-4);
    }
}

TEST_CASE("fft layers: a second conv2d of the same shape makes no new FFTW plan", "[fft][layers][plans]") {
  std::mt19937_64 rng(run_seed() ^ 0x9b);
  layer_options o;
  o.algo = algorithm::fft;
  o.pad_rows = o.pad_cols = 1;
  array4d<double> in(2, 3, 23, 29), w(4, 3, 3, 3);
  fill_random(in.view(), rng);
  fill_random(w.view(), rng);
  conv2d(in, w, nullptr, o);
  const long long made = detail::fftw_plans_made();
  fill_random(in.view(), rng);
  conv2d(in, w, nullptr, o);
  layer_plan<double> reused(in.shape(), w, nullptr, o);
  CHECK(detail::fftw_plans_made() == made);
}

TEST_CASE("fft layers: automatic's choice", "[fft][layers][dispatch]") {
  // The built-in constants' choices, whatever profile this machine has (a calibrated one may make
  // other, measured choices).
  struct builtin_constants {
    builtin_constants() { set_active_profile(std::make_shared<const cost_profile>(machine_fingerprint())); }
    ~builtin_constants() { set_active_profile(nullptr); }
  } builtin;
  const auto automatic = [](shape4d in, shape4d w, int pad, int groups = 1, int stride = 1) {
    layer_options o;
    o.accuracy = accuracy::normwise;  // under the contract automatic never transforms a layer
    o.pad_rows = o.pad_cols = pad;
    o.groups = groups;
    o.stride_rows = o.stride_cols = stride;
    o.threads = 1;
    return layer_plan<float>(in, array4d<float>(w.n, w.c, w.h, w.w), nullptr, o).chosen();
  };
  // Large kernels over many channels: the transforms are shared by K * C/groups products, so fft wins.
  CHECK(automatic({1, 32, 64, 64}, {32, 32, 11, 11}, 5) == algorithm::fft);
  CHECK(automatic({8, 64, 56, 56}, {64, 64, 7, 7}, 3) == algorithm::fft);
  // 1x1 kernels: nothing for a transform to save.
  CHECK(automatic({1, 256, 56, 56}, {64, 256, 1, 1}, 0) != algorithm::fft);
  CHECK(automatic({8, 64, 14, 14}, {256, 64, 1, 1}, 0) != algorithm::fft);
  // Small planes and strides, and depthwise layers: the transforms cost more than the products save.
  CHECK(automatic({1, 512, 7, 7}, {512, 512, 3, 3}, 1) != algorithm::fft);
  CHECK(automatic({1, 3, 224, 224}, {64, 3, 7, 7}, 3, 1, 2) != algorithm::fft);
  CHECK(automatic({1, 64, 56, 56}, {64, 1, 3, 3}, 1, 64) != algorithm::fft);
  // The shared grid's layers (planes up to 20x20, channels up to 8) never go to fft.
  for (conv_case c : conv_grid(front_door::layer, 64)) {
    INFO(c.describe());
    c.algo = algorithm::automatic;
    c.accuracy = accuracy::normwise;
    c.threads = 1 + int(c.n % 2);
    const shape4d w = c.weights();
    CHECK(layer_plan<float>(c.input(), array4d<float>(w.n, w.c, w.h, w.w), nullptr, c.layer_opt()).chosen() !=
          algorithm::fft);
  }
  // Layers whose buffers would outgrow the workspace bound even in the smallest tiles: never
  // chosen, yet computed when asked for.
  fftw::config tiny;
  tiny.memory_cap = 16 << 10;
  conv_case wide = layer_case(1, 16, 16, 16, 16, 3, 3);
  wide.pad_rows = wide.pad_cols = 1;
  wide.tune.fft = tiny;
  CHECK(detail::fftw_cost(problem_of<float>(wide), *active_profile()) == detail::never);
  std::mt19937_64 rng(run_seed() ^ 0xb0);
  wide.algo = algorithm::fft;
  check_case<float>(wide, rng, call_conv2d<float>{}, fft_error<float>(wide));
}

TEST_CASE("automatic: plans leave out what they pay once, so they take fft where one-shot calls do not",
          "[fft][dispatch]") {
  // The kernel's (or filters') spectrum is made per conv2d call but once per plan.
  conv_case c = image_case(256, 256, 15, 15);
  c.mode = output::same;
  c.threads = 1;
  c.accuracy = accuracy::normwise;
  detail::conv_problem once = problem_of<float>(c), amortised = once;
  amortised.amortised = true;
  CHECK(detail::fftw_cost(amortised, *active_profile()) < detail::fftw_cost(once, *active_profile()));
  conv_case layer = layer_case(2, 16, 16, 32, 32, 5, 5);
  layer.accuracy = accuracy::normwise;  // under the contract automatic never transforms a layer
  detail::conv_problem layer_once = problem_of<float>(layer), layer_amortised = layer_once;
  layer_amortised.amortised = true;
  CHECK(detail::fftw_cost(layer_amortised, *active_profile()) < detail::fftw_cost(layer_once, *active_profile()));
  // Somewhere between the kernel sizes where direct wins either way and those where fft does, a
  // plan already takes fft while a one-shot call still takes another backend.
  index_t differing = 0;
  for (index_t k = 3; k <= 63; k += 2) {
    const algorithm one_shot = automatic_choice(c.rows, c.cols, k, k, c.image_opt());
    const algorithm planned = plan<float>(c.rows, c.cols, array2d<float>(k, k), c.image_opt()).chosen();
    if (one_shot != planned) {
      INFO("kernel " << k);
      CHECK(planned == algorithm::fft);
      ++differing;
    }
  }
  CHECK(differing >= 1);
}

TEST_CASE("fft layers: NaN and Inf keep automatic away", "[fft][layers][nan]") {
  conv_case big = layer_case(1, 32, 32, 64, 64, 11, 11);
  big.pad_rows = big.pad_cols = 5;
  big.threads = 1;
  big.accuracy = accuracy::normwise;  // under the contract automatic never transforms a layer
  detail::conv_problem p = problem_of<float>(big);
  const layer_options same = big.layer_opt();
  CHECK(detail::fftw_cost(p, *active_profile()) < detail::never);
  p.finite = false;
  CHECK(detail::fftw_cost(p, *active_profile()) == detail::never);

  std::mt19937_64 rng(run_seed() ^ 0x4a5);
  array4d<float> in(1, 32, 64, 64), w(32, 32, 11, 11);
  fill_random(in.view(), rng);
  fill_random(w.view(), rng);
  REQUIRE(layer_plan<float>(in.shape(), w, nullptr, same).chosen() == algorithm::fft);  // finite: fft

  // A NaN in the weights: a plan made with them does not choose fft.
  w(3, 5, 2, 2) = std::numeric_limits<float>::quiet_NaN();
  CHECK(layer_plan<float>(in.shape(), w, nullptr, same).chosen() != algorithm::fft);
  fill_random(w.view(), rng);

  // A NaN or Inf in the input of a one-shot conv2d: automatic keeps it where the definition puts
  // it, in the outputs whose taps read it (rows and columns within 5 of it, in every filter).
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    in(0, 7, 30, 40) = bad;
    const array4d<float> automatic = conv2d(in, w, nullptr, same);
    index_t wrong = 0;
    for (index_t k = 0; k < 32; ++k)
      for (index_t i = 0; i < 64; ++i)
        for (index_t j = 0; j < 64; ++j) {
          const bool reads_bad = std::abs(i - 30) <= 5 && std::abs(j - 40) <= 5;
          wrong += !std::isfinite(automatic(0, k, i, j)) != reads_bad;
        }
    CHECK(wrong == 0);
    // fft asked for explicitly, untiled: every output plane turns NaN.
    layer_options o = same;
    o.algo = algorithm::fft;
    o.tune.fft = fftw::config{};
    o.tune.fft->tiles = fftw::tiling::never;
    const array4d<float> smeared = conv2d(in, w, nullptr, o);
    index_t nan_fft = 0;
    for (index_t i = 0; i < smeared.size(); ++i) nan_fft += std::isnan(smeared.data()[i]);
    CHECK(nan_fft == smeared.size());
    in(0, 7, 30, 40) = 0.5f;
  }
}

TEST_CASE("fft layers: an automatic plan on fft that meets NaN or Inf computes the call with direct",
          "[fft][layers][nan]") {
  layer_options o;
  o.pad_rows = o.pad_cols = 2;
  o.threads = 2;
  o.accuracy = accuracy::normwise;  // under the contract automatic never transforms a layer
  o.tune.profile = fft_looks_cheap();
  std::mt19937_64 rng(run_seed() ^ 0x4a7);
  array4d<float> in(3, 4, 23, 19), w(5, 4, 5, 5), got(3, 5, 23, 19), want(3, 5, 23, 19);
  fill_random(in.view(), rng);
  fill_random(w.view(), rng);
  layer_plan<float> automatic(in.shape(), w, nullptr, o);
  REQUIRE(automatic.chosen() == algorithm::fft);
  layer_options d = o;
  d.algo = algorithm::direct;
  layer_plan<float> direct(in.shape(), w, nullptr, d);
  for (const index_t image : {0, 2})
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
      INFO("image " << image << ": " << bad);
      in(image, 3, 22, 0) = bad;
      automatic.execute(in, got);
      direct.execute(in, want);
      CHECK(differing(got.data(), want.data(), got.size()) == 0);
      in(image, 3, 22, 0) = 0.25f;
    }
}

}  // namespace convkit::testing
