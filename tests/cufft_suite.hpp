// The cuFFT backend's tests that run unchanged against the real CUDA libraries (test_cufft_device)
// and against the strict CPU stand-in (test_cufft): the shared problem grid through every entry
// point, tiles, plan reuse, timing and argument errors.
//
// The including file defines convkit::testing::device_session, which every test makes first and
// destroys last: the stand-in's installs the stand-in and checks afterwards that nothing leaked and
// nothing was misused; the real one does nothing.
#pragma once

#include <convkit/convkit.hpp>
#include <convkit/layer.hpp>

#include <memory>
#include <optional>

#include "fft_error.hpp"
#include "problems.hpp"

namespace convkit::testing {

/// Sets the process default of tuning::gpu_fft (cufft::set_config) for one scope and restores the
/// previous one after it: only for tests of the process default itself. Everything else puts its
/// configuration into the options' tuning (options::tune.gpu_fft), where it travels with the call or plan.
class scoped_default_cufft_config {
 public:
  explicit scoped_default_cufft_config(const cufft::config& c) : saved_(cufft::get_config()) { cufft::set_config(c); }
  ~scoped_default_cufft_config() { cufft::set_config(saved_); }
  scoped_default_cufft_config(const scoped_default_cufft_config&) = delete;
  scoped_default_cufft_config& operator=(const scoped_default_cufft_config&) = delete;

 private:
  cufft::config saved_;
};

/// `o` with the cufft configuration `cfg` in its tuning.
inline options with_gpu_fft(options o, const cufft::config& cfg) {
  o.tune.gpu_fft = cfg;
  return o;
}

/// The ways of calling the backend that every case runs through.
enum class entry { conv2d, plan_host, plan_device };

/// Case c (an image or a layer) through entry point `how`, checked against the reference. `cfg`, if
/// given, goes into the case's tuning (tuning::gpu_fft), which every entry point takes it from;
/// unset, they use the process default. Layers have conv2d and plan_host (a layer_plan).
template <class T>
void run_case(conv_case c, std::mt19937_64& rng, entry how, const std::optional<cufft::config>& cfg = std::nullopt) {
  if (cfg) c.tune.gpu_fft = *cfg;
  const auto image = [&](view2d<const T> in, view2d<const T> k, view2d<T> out, const options& o) {
    switch (how) {
      case entry::conv2d: {
        options oc = o;
        oc.algo = algorithm::cufft;
        conv2d<T>(in, k, out, oc);
        break;
      }
      case entry::plan_host: {
        cufft::plan<T> p(in.rows(), in.cols(), k, o);
        p.execute(in, out);
        break;
      }
      case entry::plan_device: {
        cufft::plan<T> p(in.rows(), in.cols(), k, o);
        // Whole rows of row_stride elements go to the device and back, so views with row_stride >
        // cols, the checker's NaN poison and its sentinels beyond each output row go along.
        const view2d<const T> in_rows(in.data(), in.rows(), in.row_stride());
        const view2d<T> out_rows(out.data(), out.rows(), out.row_stride());
        cufft::device_array<T> din(in.rows(), in.row_stride()), dout(out.rows(), out.row_stride());
        din.upload(in_rows);
        dout.upload(out_rows);
        p.execute_device(din.view().block(0, 0, in.rows(), in.cols()), dout.view().block(0, 0, out.rows(), out.cols()));
        dout.download(out_rows);
        break;
      }
    }
  };
  const auto layer = [how](view4d<const T> in, view4d<const T> w, const T* b, view4d<T> out, const layer_options& o) {
    REQUIRE(how != entry::plan_device);
    layer_options oc = o;
    oc.algo = algorithm::cufft;
    if (how == entry::conv2d) {
      conv2d<T>(in, w, b, out, oc);
    } else {
      layer_plan<T> p(in.shape(), w, b, oc);
      p.execute(in, out);
    }
  };
  check_case<T>(c, rng, overloaded{image, layer}, cufft_error(c));
}

/// Cases larger than the grid's, for tiles: every mode and border, strides and dilations.
inline std::vector<conv_case> tile_cases() {
  std::vector<conv_case> cases;
  int n = 0;
  for (output size : {output::full, output::same, output::valid})
    for (border edge :
         {border::zero, border::constant, border::replicate, border::reflect, border::symmetric, border::circular}) {
      conv_case c = image_case(61 + n % 5, 47 + 3 * (n % 4), 3 + n % 5, 2 + n % 6);
      c.view_pad = n % 2 ? 3 : 0;
      c.mode = size;
      c.edge = edge;
      c.edge_value = 0.5;
      c.correlate = n % 3 == 1;
      c.stride_rows = 1 + n % 2;
      c.stride_cols = 1 + (n / 2) % 3;
      c.dilation_rows = 1 + (n / 3) % 2;
      c.dilation_cols = 1 + n % 2;
      cases.push_back(c);
      ++n;
    }
  return cases;
}

TEST_CASE("cufft matches the reference over the problem grid through conv2d (float, double)", "[cufft][grid]") {
  device_session session;
  std::mt19937_64 rng(run_seed() + 601);
  for (const conv_case& c : conv_grid(front_door::image)) {
    run_case<float>(c, rng, entry::conv2d);
    run_case<double>(c, rng, entry::conv2d);
  }
}

TEST_CASE("cufft plans match the reference on host views and on device memory (float, double)", "[cufft][grid]") {
  device_session session;
  std::mt19937_64 rng(run_seed() + 602);
  for (const conv_case& c : conv_grid(front_door::image, 16)) {
    run_case<float>(c, rng, entry::plan_host);
    run_case<double>(c, rng, entry::plan_device);
  }
  for (const conv_case& c : conv_grid(front_door::image, 0)) {
    run_case<double>(c, rng, entry::plan_host);
    run_case<float>(c, rng, entry::plan_device);
  }
}

TEST_CASE("cufft tiles (forced, and from the memory cap) match the reference", "[cufft][tiles]") {
  device_session session;
  std::mt19937_64 rng(run_seed() + 603);
  cufft::config forced;
  forced.tile_rows = 13;
  forced.tile_cols = 9;
  for (const conv_case& c : tile_cases()) {
    run_case<float>(c, rng, entry::plan_host, forced);
    run_case<double>(c, rng, entry::plan_device, forced);
    run_case<float>(c, rng, entry::conv2d, forced);
  }
  // A cap below the untiled transform's memory makes automatic tiling cut the image.
  conv_case big = image_case(300, 257, 9, 7);
  big.mode = output::same;
  big.edge = border::reflect;
  cufft::config capped;
  capped.memory_cap = index_t(600) << 10;
  const array2d<float> k(big.k_rows, big.k_cols);
  const cufft::plan<float> untiled(big.rows, big.cols, k, big.image_opt());
  const cufft::plan<float> tiled(big.rows, big.cols, k, with_gpu_fft(big.image_opt(), capped));
  CHECK(tiled.tiles() > untiled.tiles());
  run_case<float>(big, rng, entry::plan_host, capped);
  run_case<float>(big, rng, entry::plan_device, capped);
  // A cap too small for even the smallest tiles is an error that says so.
  capped.memory_cap = 512;
  CHECK_THROWS_WITH(cufft::plan<float>(big.rows, big.cols, k, with_gpu_fft(big.image_opt(), capped)),
                    Catch::Contains("memory cap"));
  options one_shot = with_gpu_fft(big.image_opt(), capped);
  one_shot.algo = algorithm::cufft;
  CHECK_THROWS_WITH(conv2d(array2d<float>(big.rows, big.cols), k, one_shot), Catch::Contains("memory cap"));
}

TEST_CASE("a cufft plan is reusable: a second input's result does not depend on the first", "[cufft][plan]") {
  device_session session;
  std::mt19937_64 rng(run_seed() + 604);
  const conv_case c = tile_cases()[4];
  cufft::config forced;
  forced.tile_rows = 20;
  array2d<double> kernel(c.k_rows, c.k_cols);
  fill_random(kernel.view(), rng);
  cufft::plan<double> p(c.rows, c.cols, kernel, with_gpu_fft(c.image_opt(), forced));
  CHECK(p.tiles() > 1);
  const shape2d s = p.output_shape();
  for (int round = 0; round < 3; ++round) {
    array2d<double> in(c.rows, c.cols), got(s.rows, s.cols), got_device(s.rows, s.cols);
    fill_random(in.view(), rng);
    p.execute(in, got);
    cufft::device_array<double> din(c.rows, c.cols), dout(s.rows, s.cols);
    din.upload(in);
    p.execute_device(din.view(), dout.view());
    dout.download(got_device);
    const array2d<double> want = reference::conv2d<double>(in, kernel, c.image_opt());
    double worst = 0, worst_device = 0;
    for (index_t i = 0; i < want.size(); ++i) {
      worst = std::max(worst, std::abs(got.data()[i] - want.data()[i]));
      worst_device = std::max(worst_device, std::abs(got_device.data()[i] - want.data()[i]));
    }
    INFO("round " << round);
    CHECK(worst < 1e-12);
    CHECK(worst_device < 1e-12);
  }
}

TEST_CASE("cufft layers match the reference over the layer grid (float, double; conv2d and layer_plan)",
          "[cufft][layers]") {
  device_session session;
  std::mt19937_64 rng(run_seed() + 606);
  const std::vector<conv_case> grid = conv_grid(front_door::layer);
  for (std::size_t i = 0; i < grid.size(); ++i) {
    run_case<float>(grid[i], rng, i % 2 ? entry::conv2d : entry::plan_host);
    run_case<double>(grid[i], rng, i % 2 ? entry::plan_host : entry::conv2d);
  }
}

TEST_CASE("cufft timing: filled on request, transfers apart from compute", "[cufft][timing]") {
  device_session session;
  array2d<float> in(256, 256), k(15, 15), out(256, 256);
  std::mt19937_64 rng(run_seed() + 605);
  fill_random(in.view(), rng);
  fill_random(k.view(), rng);
  options o;
  o.mode = output::same;
  for (index_t tile_rows : {index_t(0), index_t(64)}) {
    cufft::config cfg;
    cfg.tile_rows = tile_rows;
    cufft::plan<float> p(256, 256, k, with_gpu_fft(o, cfg));
    cufft::timing t;
    t.tiles = -1;
    p.execute(in, out, &t);
    INFO("tiles " << p.tiles());
    CHECK(t.tiles == p.tiles());
    CHECK(t.host_to_device_ms >= 0);
    CHECK(t.device_to_host_ms >= 0);
    CHECK(t.compute_ms > 0);
    CHECK(t.host_ms > 0);
    CHECK(t.total_ms >= t.host_ms);
    cufft::device_array<float> din(256, 256), dout(256, 256);
    din.upload(in);
    cufft::timing td;
    p.execute_device(din.view(), dout.view(), &td);
    CHECK(td.host_to_device_ms == 0);
    CHECK(td.device_to_host_ms == 0);
    CHECK(td.host_ms == 0);
    CHECK(td.compute_ms > 0);
  }
}

TEST_CASE("cufft rejects bad arguments with convkit::error naming them", "[cufft][errors]") {
  device_session session;
  const array2d<float> k(3, 3), in(10, 12), wrong(11, 12);
  array2d<float> out(10, 12);
  options o;
  o.mode = output::same;
  cufft::plan<float> p(10, 12, k, o);
  CHECK_THROWS_WITH(p.execute(wrong, out), Catch::Contains("input is 11x12"));
  array2d<float> wrong_out(9, 12);
  CHECK_THROWS_WITH(p.execute(in, wrong_out), Catch::Contains("out is 9x12"));
  CHECK_THROWS_AS(cufft::plan<float>(10, 12, array2d<float>(), o), error);
  cufft::config bad;
  bad.memory_cap = -1;
  CHECK_THROWS_WITH(cufft::set_config(bad), Catch::Contains("memory_cap"));
  CHECK_THROWS_WITH(cufft::plan<float>(10, 12, k, with_gpu_fft(o, bad)),
                    Catch::Contains("tuning.gpu_fft") && Catch::Contains("memory_cap"));
  bad = {};
  bad.tile_rows = -2;
  CHECK_THROWS_WITH(cufft::set_config(bad), Catch::Contains("tile_rows"));
  options one_shot = with_gpu_fft(o, bad);
  one_shot.algo = algorithm::cufft;
  CHECK_THROWS_WITH(conv2d(in, k, one_shot), Catch::Contains("tuning.gpu_fft") && Catch::Contains("tile_rows"));
  bad = {};
  bad.tiles = static_cast<cufft::tiling>(7);
  CHECK_THROWS_WITH(cufft::plan<float>(10, 12, k, with_gpu_fft(o, bad)), Catch::Contains("tuning.gpu_fft.tiles"));
  CHECK(cufft::get_config().memory_cap == 0);  // the rejected configurations changed no default
  CHECK(cufft::get_config().tile_rows == 0);
  cufft::device_array<float> d(3, 4);
  CHECK_THROWS_WITH(d.upload(array2d<float>(4, 4)), Catch::Contains("device_array: host view is 4x4, expected 3x4"));
  CHECK_THROWS_WITH(p.execute_device(d.view(), d.view()), Catch::Contains("input is 3x4"));
}

TEST_CASE("cufft configuration: per plan in options::tune, else the process default when made", "[cufft][config]") {
  device_session session;
  std::mt19937_64 rng(run_seed() + 607);
  const conv_case c = tile_cases()[7];
  const options o = c.image_opt();
  array2d<double> kernel(c.k_rows, c.k_cols), in(c.rows, c.cols);
  fill_random(kernel.view(), rng);
  fill_random(in.view(), rng);
  cufft::config forced;
  forced.tile_rows = 11;
  forced.tile_cols = 13;
  const cufft::plan<double> untiled(c.rows, c.cols, kernel, o);  // the process default: automatic
  REQUIRE(untiled.tiles() == 1);
  const cufft::plan<double> own(c.rows, c.cols, kernel, with_gpu_fft(o, forced));
  REQUIRE(own.tiles() > 1);
  std::optional<cufft::plan<double>> by_default;
  {
    scoped_default_cufft_config scoped(forced);
    // Tuning that leaves gpu_fft unset takes the process default when the plan is made...
    by_default.emplace(c.rows, c.cols, kernel, o);
    CHECK(by_default->tiles() == own.tiles());
    CHECK(by_default->transform_shape() == own.transform_shape());
    // ...and a configuration in the tuning overrides it.
    const cufft::plan<double> explicit_default(c.rows, c.cols, kernel, with_gpu_fft(o, cufft::config{}));
    CHECK(explicit_default.tiles() == 1);
    // Every entry point, under the changed default.
    run_case<float>(c, rng, entry::conv2d);
    run_case<float>(c, rng, entry::plan_host);
    run_case<double>(c, rng, entry::plan_device);
  }
  CHECK(cufft::get_config().tile_rows == 0);
  // A plan keeps what it was made with, whatever the default becomes later.
  CHECK(by_default->tiles() == own.tiles());
  const shape2d s = own.output_shape();
  array2d<double> got(s.rows, s.cols);
  by_default->execute(in, got);
  const array2d<double> want = reference::conv2d<double>(in, kernel, o);
  double worst = 0;
  for (index_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs(got.data()[i] - want.data()[i]));
  CHECK(worst < 1e-12);
}

}  // namespace convkit::testing
