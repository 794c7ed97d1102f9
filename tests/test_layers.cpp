// Convolution layers (layer.hpp): every backend in this program that computes layers, over the shared
// layer grid, float and double, through conv2d and a reused layer_plan, against the double reference;
// every argument error and its message; view4d/array4d; no allocation per execute; im2col's
// workspace bound and tiles.
#include <convkit/convkit.hpp>
#include <convkit/layer.hpp>

#include <set>

#include "count_allocations.hpp"
#include "fft_error.hpp"
#include "problems.hpp"

namespace convkit::testing {

namespace {

/// Backends registered in this program that compute layers and can run here.
std::vector<algorithm> layer_backends() {
  std::vector<algorithm> out;
  for (algorithm a : {algorithm::direct, algorithm::im2col, algorithm::fft, algorithm::cufft}) {
    layer_options o;
    o.algo = a;
    try {
      layer_plan<float>({1, 1, 4, 4}, array4d<float>(1, 1, 2, 2), nullptr, o);
      out.push_back(a);
    } catch (const unavailable& e) {
      WARN("layers not tested here: " << e.what());
    }
  }
  return out;
}

template <class T>
void run_layer_grid(algorithm a) {
  std::mt19937_64 rng(run_seed() ^ (std::uint64_t(a) << 40) ^ (sizeof(T) << 8) ^ 0x1a7e5ULL);
  for (conv_case c : conv_grid(front_door::layer)) {
    c.algo = a;
    c.threads = 1 + int(c.n % 2);
    check_case<T>(c, rng, call_conv2d<T>{}, error_of<T>(a, c));
  }
}

/// A layer_plan made once and executed on a second batch: its result must match a fresh call.
template <class T>
void run_layer_plan_reuse(algorithm a) {
  std::mt19937_64 rng(run_seed() + 31 * std::uint64_t(a) + sizeof(T));
  const std::vector<conv_case> grid = conv_grid(front_door::layer, 8);
  for (std::size_t i = 0; i < grid.size(); i += 5) {
    conv_case c = grid[i];
    c.algo = a;
    std::unique_ptr<layer_plan<T>> p;
    std::vector<T> bias_copy;
    array4d<T> weights_copy;
    const auto through_plan = [&](view4d<const T> in, view4d<const T> w, const T* b, view4d<T> out,
                                  const layer_options& o) {
      p = std::make_unique<layer_plan<T>>(in.shape(), w, b, o);
      weights_copy = array4d<T>(w.n(), w.c(), w.h(), w.w());
      std::copy(w.data(), w.data() + w.size(), weights_copy.data());
      if (b != nullptr) bias_copy.assign(b, b + w.n());
      p->execute(in, out);
    };
    check_case<T>(c, rng, through_plan, error_of<T>(a, c));
    CHECK(p->chosen() == a);
    array4d<T> second(c.n, c.c, c.rows, c.cols);
    fill_random(second.view(), rng);
    const T* b = c.bias ? bias_copy.data() : nullptr;
    const array4d<T> got = (*p)(second);
    const array4d<T> want = conv2d(second, weights_copy, b, c.layer_opt());
    INFO(c.describe());
    CHECK(std::equal(got.data(), got.data() + got.size(), want.data()));
  }
}

template <class E>
std::string message_of(E&& call) {
  try {
    call();
  } catch (const error& e) {
    return e.what();
  }
  return "(no convkit::error thrown)";
}

}  // namespace

TEST_CASE("every layer backend matches the reference over the layer grid (float)", "[layers]") {
  for (algorithm a : layer_backends()) {
    INFO("algorithm " << to_string(a));
    run_layer_grid<float>(a);
  }
}

TEST_CASE("every layer backend matches the reference over the layer grid (double)", "[layers]") {
  for (algorithm a : layer_backends()) {
    INFO("algorithm " << to_string(a));
    run_layer_grid<double>(a);
  }
}

TEST_CASE("direct's layer path: partial filter blocks, long planes, strides, groups, depthwise, every instruction set",
          "[layers][direct]") {
  // The grid's layers are small; these fill several register tiles of filters (13 and 7 filters
  // leave partial blocks on every instruction set; 4 take AVX-512's narrower tile), several position
  // ranges with tails, and split the work over threads. Every tile of each instruction set is reached.
  std::mt19937_64 rng(run_seed() + 2028);
  const cpu::isa best = cpu::best_instruction_set();
  for (int i = 0; i <= int(best); ++i) {
    std::set<int> tiles;
    for (int m = 0; m < 6; ++m) {
      conv_case c = layer_case(1 + m % 2, 10 + m,
                               m % 2    ? 13
                               : m == 2 ? 4
                                        : 7,
                               37 + 5 * m, 29 + 3 * m, 1 + (2 * m) % 5, 1 + (3 * m + 2) % 7, m % 3 == 0);
      if (m == 4) c.groups = 2, c.c = 12, c.k = 14;
      if (m == 5) c.groups = int(c.c), c.k = c.c;  // depthwise: the tile of one filter
      c.stride_rows = 1 + m % 3;
      c.stride_cols = 1 + (m / 2) % 2;
      c.dilation_rows = 1 + (m / 3) % 2;
      c.dilation_cols = 1 + m % 2;
      c.pad_rows = m % 3;
      c.pad_cols = (m + 1) % 3;
      c.edge = m % 2 ? border::reflect : border::zero;
      c.algo = algorithm::direct;
      c.threads = 1 + m % 3;
      c.tune.instruction_set = cpu::isa(i);
      INFO("instruction set " << cpu::to_string(cpu::isa(i)) << ", " << c.describe());
      REQUIRE(detail::direct_layer_applies(problem_of<float>(c)));
      tiles.insert(detail::layer_tile_of(cpu::isa(i), c.k / c.groups).channels);
      check_case<float>(c, rng, call_conv2d<float>{}, error_of<float>(algorithm::direct, c));
      check_case<double>(c, rng, call_conv2d<double>{}, error_of<double>(algorithm::direct, c));
    }
    CHECK(tiles.size() == (cpu::isa(i) == cpu::isa::avx512 ? 3u : 2u));  // AVX-512: 8 and 4 filters; depthwise
  }
}

TEST_CASE(
    "direct's depthwise kernel: 3 and 5 rows, strides 1 and 2, planes narrower and wider than a vector, pads "
    "beyond the kernel, every instruction set",
    "[layers][direct]") {
  // The depthwise kernel reads the image itself and masks what lies outside it: blocks at every edge,
  // pads that leave whole rows and vectors of columns outside the image, column dilation, the last
  // block of rows overlapping the one before it (rows not a multiple of the block), blocks of 8 and
  // of 4 rows, partial vectors, stride 2 (two vectors loaded, every other element kept).
  std::mt19937_64 rng(run_seed() + 2030);
  const cpu::isa best = cpu::best_instruction_set();
  for (int i = 0; i <= int(best); ++i) {
    for (int m = 0; m < 8; ++m) {
      const index_t kr = m % 2 ? 5 : 3, ks = 1 + (m * 3) % 5;
      const index_t channels = 2 + (m * 5) % 7, w = m < 2 ? 1 + m * 5 : 9 + 11 * m;
      const index_t h = m == 1 || m == 4 ? 5 + m / 2 : 9 + 3 * m;  // 5 and 7 output rows: blocks of 4
      conv_case c = layer_case(1 + m % 3, channels, channels, h, w, kr, ks, m % 4 != 1);
      c.groups = int(channels);
      c.pad_rows = m % 4 == 3 ? 6 : int(kr / 2);
      c.pad_cols = m % 3 == 2 ? 19 : m % 3;
      c.dilation_cols = 1 + m % 3;
      c.stride_rows = c.stride_cols = m % 2 == 0 && m > 0 ? 2 : 1;  // 3 rows, stride 2: MobileNet's
      c.algo = algorithm::direct;
      c.threads = 1 + m % 2;
      c.tune.instruction_set = cpu::isa(i);
      INFO("instruction set " << cpu::to_string(cpu::isa(i)) << ", " << c.describe());
      REQUIRE(detail::direct_layer_applies(problem_of<float>(c)));
      REQUIRE(detail::direct_depthwise_applies(problem_of<float>(c)));
      check_case<float>(c, rng, call_conv2d<float>{}, error_of<float>(algorithm::direct, c));
      check_case<double>(c, rng, call_conv2d<double>{}, error_of<double>(algorithm::direct, c));
    }
  }
}

TEST_CASE(
    "direct's plane path: a bias and channel sums added to the output, every kernel height, every instruction set",
    "[layers][direct]") {
  // Planes the layer path leaves to the per-plane micro-kernel: a single plane with a bias, and
  // channels whose column dilation makes the layer path's planes far wider than the output. Both add
  // to the output's values (the bias, the earlier channels), in blocks and in streams (direct_kernel.inl;
  // 46 and more output rows give jobs of whole groups of the kernel's rows and a job with a
  // remainder row), for kernels of 1 to 8 rows.
  std::mt19937_64 rng(run_seed() + 2029);
  const cpu::isa best = cpu::best_instruction_set();
  for (int i = 0; i <= int(best); ++i) {
    for (index_t kr = 1; kr <= 8; ++kr) {
      const bool single = kr % 2 == 1;
      conv_case c = layer_case(1, single ? 1 : 3, single ? 1 : 2, 45 + kr + 5 * kr, single ? 70 : 100, kr,
                               single ? 2 + kr % 3 : 3, true);
      if (!single) c.dilation_cols = 40;
      c.pad_rows = int(kr / 2);
      c.edge = kr % 4 == 1 ? border::reflect : border::zero;
      c.algo = algorithm::direct;
      c.threads = 1 + int(kr % 2);
      c.tune.instruction_set = cpu::isa(i);
      INFO("instruction set " << cpu::to_string(cpu::isa(i)) << ", " << c.describe());
      REQUIRE(!detail::direct_layer_applies(problem_of<float>(c)));
      check_case<float>(c, rng, call_conv2d<float>{}, error_of<float>(algorithm::direct, c));
      check_case<double>(c, rng, call_conv2d<double>{}, error_of<double>(algorithm::direct, c));
    }
  }
}

TEST_CASE("a layer_plan is reusable and matches conv2d", "[layers]") {
  for (algorithm a : layer_backends()) {
    INFO("algorithm " << to_string(a));
    run_layer_plan_reuse<float>(a);
    run_layer_plan_reuse<double>(a);
  }
}

TEST_CASE("automatic picks a layer backend and matches the reference", "[layers]") {
  std::mt19937_64 rng(run_seed() + 99);
  for (conv_case c : conv_grid(front_door::layer, 0)) {
    c.algo = algorithm::automatic;
    check_case<float>(c, rng, call_conv2d<float>{}, direct_error(c));
  }
}

TEST_CASE("layer_plan::execute allocates nothing", "[layers][plans]") {
  std::mt19937_64 rng(run_seed() ^ 0xa110c);
  for (algorithm a : layer_backends())
    for (int threads : {1, 2})
      for (int shape = 0; shape < 3; ++shape) {
        // direct: column phases extended by the border rule; a zero border's phases written in place;
        // the depthwise kernel
        INFO(to_string(a) << ", " << threads << " threads, shape " << shape);
        layer_options o;
        o.algo = a;
        o.threads = threads;
        o.pad_rows = o.pad_cols = 1;
        o.stride_cols = shape == 2 ? 1 : 2;
        o.edge = shape == 0 ? border::reflect : border::zero;
        o.groups = shape == 2 ? 8 : 1;
        array4d<float> in(3, 8, 40, 40), w(8, shape == 2 ? 1 : 8, 3, 3);
        fill_random(in.view(), rng);
        fill_random(w.view(), rng);
        const std::vector<float> bias(8, 0.5f);
        layer_plan<float> p(in.shape(), w, bias.data(), o);
        const shape4d s = p.output_shape();
        array4d<float> out(s.n, s.c, s.h, s.w);
        CHECK(allocations_per_three_runs([&] { p.execute(in, out); }) == 0);
      }
}

TEST_CASE("automatic's choice for layers follows the cost models", "[layers]") {
  // A ResNet-50 3x3 layer: direct's layer path and im2col's GEMM are close (which one wins depends
  // on the machine), so the plan must take the one the models rank cheapest; a depthwise layer: one
  // filter per group, a matrix-vector product for im2col, so direct.
  conv_case c = layer_case(1, 64, 64, 56, 56, 3, 3);
  c.pad_rows = c.pad_cols = 1;
  c.threads = 1;
  detail::conv_problem p = problem_of<float>(c);
  detail::resolve_profile(p);
  const layer_plan<float> dense({1, 64, 56, 56}, array4d<float>(64, 64, 3, 3), nullptr, c.layer_opt());
  CHECK(dense.chosen() == detail::cheapest_backend(p, *p.tune.profile).algo);
  CHECK(detail::direct_layer_applies(p));
  layer_options depthwise = c.layer_opt();
  depthwise.groups = 64;
  const layer_plan<float> dw({1, 64, 56, 56}, array4d<float>(64, 1, 3, 3), nullptr, depthwise);
  CHECK(dw.chosen() == algorithm::direct);
}

TEST_CASE("layer output shape follows PyTorch's formula", "[layers]") {
  layer_options o;
  CHECK(layer_output_shape({2, 3, 224, 224}, {64, 3, 7, 7}, [] {
          layer_options x;
          x.stride_rows = x.stride_cols = 2;
          x.pad_rows = x.pad_cols = 3;
          return x;
        }()) == shape4d{2, 64, 112, 112});
  CHECK(layer_output_shape({1, 4, 5, 5}, {6, 2, 3, 3}, [] {
          layer_options x;
          x.groups = 2;
          return x;
        }()) == shape4d{1, 6, 3, 3});
  o.pad_rows = 1;
  o.dilation_rows = 2;
  o.stride_rows = 3;
  // OH = (10 + 2 - 2 * (4 - 1) - 1) / 3 + 1 = 2, OW = 9 - 2 + 1 = 8
  CHECK(layer_output_shape({1, 1, 10, 9}, {1, 1, 4, 2}, o) == shape4d{1, 1, 2, 8});
  // A hand-computed case: 1 image, 1 channel 2x2 [[1, 2], [3, 4]], one 1x1 filter of 2, bias 1, zero padding 1.
  array4d<double> in(1, 1, 2, 2), w(1, 1, 1, 1);
  in(0, 0, 0, 0) = 1;
  in(0, 0, 0, 1) = 2;
  in(0, 0, 1, 0) = 3;
  in(0, 0, 1, 1) = 4;
  w(0, 0, 0, 0) = 2;
  const double bias = 1;
  layer_options p;
  p.pad_rows = p.pad_cols = 1;
  for (algorithm a : layer_backends()) {
    p.algo = a;
    const array4d<double> out = conv2d(in, w, &bias, p);
    REQUIRE(out.shape() == shape4d{1, 1, 4, 4});
    const double want[4][4] = {{1, 1, 1, 1}, {1, 3, 5, 1}, {1, 7, 9, 1}, {1, 1, 1, 1}};
    for (index_t i = 0; i < 4; ++i)
      for (index_t j = 0; j < 4; ++j) CHECK(out(0, 0, i, j) == want[i][j]);
  }
}

TEST_CASE("layer argument errors name the argument", "[layers][errors]") {
  array4d<float> in(2, 4, 8, 8), w(6, 2, 3, 3), out(2, 6, 6, 6);
  float bias[6] = {};
  layer_options g2;
  g2.groups = 2;
  const auto call = [&](view4d<const float> i, view4d<const float> k, const float* b, view4d<float> o,
                        const layer_options& opt) { return message_of([&] { conv2d<float>(i, k, b, o, opt); }); };
  // The good call works.
  CHECK_NOTHROW(conv2d(in, w, bias, out, g2));

  layer_options g3 = g2;
  g3.groups = 3;
  CHECK_THAT(call(in, w, bias, out, g3), Catch::Contains("input C (4) is not divisible by groups (3)"));
  array4d<float> w5(5, 2, 3, 3);
  CHECK_THAT(call(in, w5, bias, out, g2), Catch::Contains("weights K (5) is not divisible by groups (2)"));
  array4d<float> w_bad_c(6, 3, 3, 3);
  CHECK_THAT(call(in, w_bad_c, bias, out, g2), Catch::Contains("weights have 3 channels, expected input C / groups"));
  array4d<float> out_bad(2, 6, 6, 5);
  CHECK_THAT(call(in, w, bias, out_bad, g2),
             Catch::Contains("out is [2, 6, 6, 5], expected [N, K, OH, OW] = [2, 6, 6, 6]"));
  layer_options neg = g2;
  neg.pad_cols = -1;
  CHECK_THAT(call(in, w, bias, out, neg), Catch::Contains("pad_cols must be >= 0, got -1"));
  layer_options empty = g2;
  empty.dilation_rows = 4;  // span 9 > 8
  CHECK_THAT(call(in, w, bias, out, empty), Catch::Contains("empty output: the dilated kernel rows"));
  CHECK_THAT(call(in, w, bias, out, empty), Catch::Contains("padded input rows (H + 2 * pad_rows = 8)"));
  layer_options zero_groups;
  zero_groups.groups = 0;
  CHECK_THAT(call(in, w, bias, out, zero_groups), Catch::Contains("groups must be >= 1, got 0"));
  layer_options stride = g2;
  stride.stride_cols = 0;
  CHECK_THAT(call(in, w, bias, out, stride), Catch::Contains("stride_cols must be >= 1, got 0"));
  layer_options constant = g2;
  constant.edge = border::constant;
  CHECK_THAT(call(in, w, bias, out, constant), Catch::Contains("edge: border::constant"));
  layer_options threads = g2;
  threads.threads = -2;
  CHECK_THAT(call(in, w, bias, out, threads), Catch::Contains("threads must be >= 0, got -2"));
  CHECK_THAT(call(in, array4d<float>(6, 2, 0, 3), bias, out, g2), Catch::Contains("weights R must be > 0, got 0"));
  CHECK_THAT(call(array4d<float>(0, 4, 8, 8), w, bias, out, g2), Catch::Contains("input N must be > 0, got 0"));

  // Aliasing: out may not overlap the input, the weights or the bias.
  array4d<float> big(1, 1, 1, in.size() + out.size());
  const view4d<float> in_alias(big.data(), 2, 4, 8, 8), out_alias(big.data() + 10, 2, 6, 6, 6);
  CHECK_THAT(call(in_alias, w, bias, out_alias, g2), Catch::Contains("out aliases input"));
  array4d<float> wo(1, 1, 1, w.size() + out.size());
  const view4d<float> w_alias(wo.data() + out.size() - 1, 6, 2, 3, 3), out_over_w(wo.data(), 2, 6, 6, 6);
  CHECK_THAT(call(in, w_alias, bias, out_over_w, g2), Catch::Contains("out aliases weights"));
  CHECK_THAT(call(in, w, out.data() + 5, out, g2), Catch::Contains("out aliases bias"));

  // Bias of the wrong length, through the overloads that take its length.
  CHECK_NOTHROW(conv2d<float>(in, w, bias, 6, out, g2));
  CHECK_THAT(message_of([&] { conv2d<float>(in, w, bias, 5, out, g2); }),
             Catch::Contains("bias has 5 values, expected 6"));
  CHECK_THAT(message_of([&] { (void)conv2d<float>(in, w, bias, 7, g2); }),
             Catch::Contains("bias has 7 values, expected 6"));
  CHECK_THAT(message_of([&] { (void)conv2d<float>(in, w, nullptr, 6, g2); }), Catch::Contains("bias is null"));

  // Plans check the input and output of every execute.
  layer_plan<float> p(in.shape(), w, bias, g2);
  array4d<float> in_bad(2, 4, 8, 7);
  CHECK_THAT(message_of([&] { p.execute(in_bad, out); }),
             Catch::Contains("input is [2, 4, 8, 7], expected [2, 4, 8, 8]"));
  CHECK_THAT(message_of([&] { p.execute(in, out_bad); }), Catch::Contains("out is [2, 6, 6, 5]"));

  // An algorithm this program lacks, or one that does not compute layers, is unavailable.
  for (algorithm a : {algorithm::direct, algorithm::im2col, algorithm::fft, algorithm::cufft}) {
    const std::vector<algorithm> have = layer_backends();
    if (std::find(have.begin(), have.end(), a) != have.end()) continue;
    layer_options o = g2;
    o.algo = a;
    CHECK_THROWS_AS(conv2d(in, w, bias, out, o), unavailable);
  }
}

TEST_CASE("view4d and array4d", "[layers][views]") {
  array4d<double> a(2, 3, 4, 5);
  CHECK(a.shape() == shape4d{2, 3, 4, 5});
  CHECK(a.size() == 120);
  CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % 64 == 0);
  for (index_t i = 0; i < a.size(); ++i) CHECK(a.data()[i] == 0.0);
  a(1, 2, 3, 4) = 7;
  CHECK(a.data()[((1 * 3 + 2) * 4 + 3) * 5 + 4] == 7);
  const view4d<double> v = a;
  const view4d<const double> cv = v;  // const conversion
  CHECK(cv(1, 2, 3, 4) == 7);
  CHECK(cv.plane(1, 2)(3, 4) == 7);
  CHECK(cv.plane(1, 2).rows() == 4);
  const array4d<double> copy = a;
  CHECK(copy(1, 2, 3, 4) == 7);
  CHECK_THAT(message_of([] { array4d<float>(2, -1, 3, 3); }), Catch::Contains("array4d: c must be >= 0, got -1"));
  CHECK_THAT(message_of([] { view4d<float>(nullptr, 1, 1, 1, 1); }), Catch::Contains("view4d: data is null"));
  const index_t huge = index_t(1) << 32;
  CHECK_THAT(message_of([&] { array4d<float>(huge, huge, 2, 2); }), Catch::Contains("overflows"));
  CHECK_NOTHROW(view4d<float>(nullptr, 0, 3, 3, 3));
}

#if defined(CONVKIT_HAS_BLAS)
TEST_CASE("im2col keeps its workspace under the bound by tiling", "[layers][im2col]") {
  // 10000 x 10000 * 15 x 15 valid correlation: untiled, the column matrix is 225 * 9986^2 floats (~90 GB).
  conv_case c = image_case(10000, 10000, 15, 15);
  c.mode = output::valid;
  c.correlate = true;
  const detail::conv_problem g = problem_of<float>(c);
  const detail::im2col_shape s{g.rows, g.cols, 1, 1, 1, false};
  const index_t bound = detail::settings{}.im2col_workspace;
  const detail::im2col_tiling t =
      detail::plan_im2col_tiles(s, 1, bound / index_t(sizeof(float)), bound / index_t(sizeof(float)), 1);
  CHECK(t.workspace_elems() * index_t(sizeof(float)) <= bound);
  CHECK(t.tiles > 1);
  // Making the plan allocates the tiled workspace only (a 90 GB request would throw bad_alloc).
  c.algo = algorithm::im2col;
  c.threads = 2;
  CHECK_NOTHROW(plan<float>(10000, 10000, array2d<float>(15, 15), c.image_opt()));

  // A small bound forces many tiles, row pieces included; the results still match the reference.
  c.tune.im2col_workspace = 16 << 10;
  std::mt19937_64 rng(run_seed() + 5);
  c.rows = 40;
  c.cols = 300;
  c.view_pad = 3;
  c.edge = border::reflect;
  for (output size : {output::valid, output::same, output::full}) {
    c.mode = size;
    check_case<float>(c, rng, call_conv2d<float>{}, direct_error(c));
  }
  const detail::conv_problem small = problem_of<float>(c);
  const detail::im2col_tiling pieces = detail::plan_im2col_tiles({small.rows, small.cols, 1, 1, 1, false}, 1,
                                                                 (16 << 10) / 4 / 2, detail::im2col_cache_bytes / 4, 2);
  CHECK(pieces.rows_per_tile == 0);  // one output row's columns (225 x 314 floats) exceed 8 KiB: pieces of rows
  CHECK(pieces.tiles > small.rows.out);
  // Layers too: a layer whose column matrix is ~1 MB, under a 64 KiB bound.
  conv_case lc = layer_case(2, 8, 6, 30, 30, 3, 3, true);
  lc.pad_rows = lc.pad_cols = 1;
  lc.groups = 2;
  lc.algo = algorithm::im2col;
  lc.threads = 2;
  lc.tune.im2col_workspace = 64 << 10;
  check_case<float>(lc, rng, call_conv2d<float>{}, direct_error(lc));
  CHECK_THROWS_AS(im2col::set_workspace_limit(0), error);
  lc.tune.im2col_workspace = 0;
  CHECK_THROWS_WITH(layer_output_shape(lc.input(), lc.weights(), lc.layer_opt()),
                    Catch::Contains("tuning.im2col_workspace"));
}

TEST_CASE("im2col tiles: several images, runs of rows, pieces of rows, and the 1x1 shortcut", "[layers][im2col]") {
  const auto tiling = [](const conv_case& c, index_t budget_bytes, int threads) {
    const detail::conv_problem g = problem_of<float>(c);
    return detail::plan_im2col_tiles({g.rows, g.cols, g.c_per_group(), g.k_per_group(), g.groups, true}, g.n,
                                     budget_bytes / 4, detail::im2col_cache_bytes / 4, threads);
  };
  conv_case small = layer_case(3, 4, 4, 6, 6, 3, 3, true);  // 36 outputs per image: whole images share a tile
  small.pad_rows = small.pad_cols = 1;
  conv_case wide = small;  // 40 x 40 outputs of depth 36: runs of rows
  wide.n = 1;
  wide.rows = wide.cols = 40;
  conv_case pointwise = layer_case(2, 8, 4, 40, 40, 1, 1);  // 1x1, stride 1, unpadded: no lowering
  conv_case deep = layer_case(1, 4, 64, 5, 5, 3, 3, true);  // 25 outputs, 64 filters: threads split the filters
  deep.pad_rows = deep.pad_cols = 1;
  deep.groups = 2;
  const detail::im2col_tiling t_small = tiling(small, detail::settings{}.im2col_workspace, 1);
  CHECK(t_small.images_per_tile == 3);
  CHECK(t_small.output_elems > 0);
  CHECK(tiling(small, detail::settings{}.im2col_workspace, 3).images_per_tile == 1);  // one image per thread
  const detail::im2col_tiling t_wide = tiling(wide, detail::settings{}.im2col_workspace, 2);
  CHECK(t_wide.images_per_tile == 1);
  CHECK(t_wide.rows_per_tile > 0);
  CHECK(t_wide.tiles >= 2);
  CHECK(tiling(wide, 4 << 10, 1).rows_per_tile == 0);  // 4 KiB: less than one row of columns
  const detail::im2col_tiling t_point = tiling(pointwise, detail::settings{}.im2col_workspace, 2);
  CHECK_FALSE(t_point.lowers);
  CHECK(t_point.column_elems == 0);
  CHECK(tiling(deep, detail::settings{}.im2col_workspace, 1).filter_blocks == 1);
  CHECK(tiling(deep, detail::settings{}.im2col_workspace, 2).filter_blocks == 2);
  CHECK(tiling(deep, detail::settings{}.im2col_workspace, 3).filter_blocks ==
        2);  // 32 filters per group: 2 blocks of 16
  // Each of them (and the pieces) computes the layer correctly.
  std::mt19937_64 rng(run_seed() + 6);
  for (conv_case c : {small, wide, pointwise, deep})
    for (int threads : {1, 2, 3}) {
      c.algo = algorithm::im2col;
      c.threads = threads;
      check_case<float>(c, rng, call_conv2d<float>{}, direct_error(c));
    }
  im2col::set_workspace_limit(4 << 10);
  wide.algo = algorithm::im2col;
  check_case<float>(wide, rng, call_conv2d<float>{}, direct_error(wide));
  im2col::set_workspace_limit(detail::settings{}.im2col_workspace);
}
#endif

}  // namespace convkit::testing
