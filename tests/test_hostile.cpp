// Hostile input: every class of bad argument an adversarial probe found is refused with a
// convkit::error naming it; legal extreme arguments compute the right answer in time and memory that
// follow what the output reads (CTest's timeout catches a hang); moved-from plans refuse to run.
// (tests/fuzz/ keeps looking for more; its corpus replays what it found.)
#include <convkit/convkit.hpp>
#include <convkit/reference.hpp>

#include <climits>
#include <limits>
#include <string>

#include "problems.hpp"

namespace convkit::testing {
namespace {

using Catch::Matchers::Contains;

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not a convkit::error: ") + e.what();
  }
  return "no exception";
}

/// conv2d through every backend that accepts the problem, compared with the reference.
template <class T>
void check_extreme(conv_case c) {
  std::mt19937_64 rng(run_seed() ^ 0xe87);
  for (algorithm a : {algorithm::automatic, algorithm::direct}) {
    c.algo = a;
    check_case<T>(c, rng, call_conv2d<T>{}, direct_error(c));
  }
}

/// fft, im2col and cufft refuse a sparse problem by name, pointing to algorithm::direct.
void check_transforms_refuse(index_t rows, index_t cols, index_t k_rows, index_t k_cols, options o) {
  for (algorithm a : {algorithm::fft, algorithm::im2col, algorithm::cufft}) {
    o.algo = a;
    try {
      plan<float>(rows, cols, array2d<float>(k_rows, k_cols), o);
      FAIL_CHECK("algorithm::" << to_string(a) << " accepted a sparse problem");
    } catch (const error& e) {
      CHECK_THAT(e.what(), Contains("algorithm::direct"));
    } catch (const unavailable&) {
      // not in this build
    }
  }
}

}  // namespace

TEST_CASE("enum values outside their enumerators are refused, naming the argument", "[errors]") {
  const array2d<float> img(8, 9), k(3, 3);
  for (int bad : {-1, 6, 77}) {
    options o;
    o.edge = static_cast<border>(bad);
    CHECK_THAT(message_of([&] { conv2d(img, k, o); }), Contains("edge") && Contains("convkit::border"));
    CHECK_THAT(message_of([&] { plan<float>(8, 9, k, o); }), Contains("edge"));
    layer_options l;
    l.edge = static_cast<border>(bad);
    CHECK_THAT(message_of([&] { conv2d(array4d<float>(1, 1, 8, 8), array4d<float>(1, 1, 3, 3), nullptr, l); }),
               Contains("edge"));
    CHECK_THAT(message_of([&] { extend<float>(img, array2d<float>(4, 4).view(), 1, 1, static_cast<border>(bad)); }),
               Contains("border"));
  }
  for (int bad : {-1, 3, 5}) {
    options o;
    o.mode = static_cast<output>(bad);
    CHECK_THAT(message_of([&] { conv2d(img, k, o); }), Contains("mode"));
    CHECK_THAT(message_of([&] { (void)output_shape(8, 9, 3, 3, o); }), Contains("mode"));
    CHECK_THAT(message_of([&] { (void)automatic_choice(8, 9, 3, 3, o); }), Contains("mode"));
    CHECK_THAT(message_of([&] { plan<float>(8, 9, k, o); }), Contains("mode"));
  }
  for (int bad : {-1, 5, 77}) {
    options o;
    o.algo = static_cast<algorithm>(bad);
    CHECK_THAT(message_of([&] { conv2d(img, k, o); }), Contains("algo"));
  }
  options o;
  o.tune.fft = fft_config{};
  o.tune.fft->tiles = static_cast<fft_tiling>(9);
  CHECK_THAT(message_of([&] { plan<float>(8, 9, k, o); }), Contains("tuning.fft.tiles"));
  o.tune.fft = fft_config{};
  o.tune.fft->planning = static_cast<fft_rigour>(-2);
  CHECK_THAT(message_of([&] { plan<float>(8, 9, k, o); }), Contains("tuning.fft.planning"));
  o.tune = {};
  o.tune.instruction_set = static_cast<cpu::isa>(42);
  CHECK_THAT(message_of([&] { plan<float>(8, 9, k, o); }), Contains("tuning.instruction_set"));
  o.tune = {};
  o.tune.choice = static_cast<choice_rule>(3);
  CHECK_THAT(message_of([&] { plan<float>(8, 9, k, o); }), Contains("tuning.choice"));
  o.tune = {};
  o.tune.im2col_workspace = -5;
  CHECK_THAT(message_of([&] { plan<float>(8, 9, k, o); }), Contains("tuning.im2col_workspace"));
}

TEST_CASE("views whose extent overflows, and blocks whose offsets overflow, are refused", "[errors]") {
  float buf[64] = {};
  const index_t max = std::numeric_limits<index_t>::max();
  CHECK_THAT(message_of([&] { view2d<float>(buf, max / 2, 4, max / 2); }), Contains("overflows"));
  CHECK_THAT(message_of([&] { view2d<float>(buf, 3, max / 8, max / 8); }), Contains("overflows"));  // in bytes
  CHECK_THAT(message_of([&] { view4d<float>(buf, max / 4, 1, 1, 2); }), Contains("overflows"));
  const view2d<float> v(buf, 8, 8);
  CHECK_THAT(message_of([&] { (void)v.block(max, 0, max, 1); }), Contains("does not lie inside"));
  CHECK_THAT(message_of([&] { (void)v.block(2, 2, max - 1, 2); }), Contains("does not lie inside"));
  CHECK_THAT(message_of([&] { (void)v.block(9, 0, 0, 0); }), Contains("does not lie inside"));
  CHECK(v.block(8, 8, 0, 0).empty());
  CHECK_THAT(message_of([&] { extend<float>(v, array2d<float>(2, 2).view(), max, 0, border::zero); }),
             Contains("out of range"));
}

TEST_CASE("huge but legal strides, dilations and paddings compute exactly what the output reads", "[errors][extreme]") {
  for (border edge :
       {border::zero, border::constant, border::replicate, border::reflect, border::symmetric, border::circular}) {
    INFO(to_string(edge));
    conv_case c = image_case(7, 9, 2, 3);
    c.edge = edge;
    c.edge_value = 0.5;
    c.mode = output::same;
    c.dilation_rows = c.dilation_cols = INT_MAX;  // every tap but one far outside the image
    check_extreme<float>(c);
    c.mode = output::full;
    c.dilation_rows = 1 << 30;
    c.dilation_cols = 3;
    c.stride_rows = 1 << 29;  // a full output 2^30 long, read every 2^29
    check_extreme<double>(c);
    c = image_case(7, 9, 2, 3);
    c.edge = edge;
    c.mode = output::full;
    c.stride_rows = c.stride_cols = INT_MAX;  // one output
    check_extreme<float>(c);
  }
  // Layers: padding 2^30 with stride 2^30 reads a handful of positions.
  std::mt19937_64 rng(run_seed() ^ 0x1a6);
  conv_case l = layer_case(2, 3, 4, 5, 6, 3, 3, true);
  l.pad_rows = l.pad_cols = 1 << 30;
  l.stride_rows = l.stride_cols = 1 << 30;
  for (border edge : {border::zero, border::reflect, border::replicate, border::circular, border::symmetric}) {
    l.edge = edge;
    for (algorithm a : {algorithm::automatic, algorithm::direct}) {
      l.algo = a;
      check_case<float>(l, rng, call_conv2d<float>{}, direct_error(l));
    }
  }
  // The transforming backends refuse such problems instead of allocating the extended input.
  options o;
  o.mode = output::same;
  o.dilation_rows = INT_MAX;
  check_transforms_refuse(7, 9, 2, 2, o);
}

TEST_CASE("a plane mostly unread though each axis is within its slack is computed from what it reads", "[errors]") {
  // 13 x 13 * 4 x 4, 'full', dilated by 1000: 3001 x 6013 extended positions for 1 x 3013 outputs.
  conv_case c = image_case(13, 13, 4, 4);
  c.view_pad = 2;
  c.mode = output::full;
  c.dilation_rows = c.dilation_cols = 1000;
  c.stride_rows = 1 << 30;
  check_transforms_refuse(13, 13, 4, 4, c.image_opt());
  check_extreme<float>(c);
  check_extreme<double>(c);
}

TEST_CASE("an output too large for memory is refused naming the sizes, not by std::bad_alloc", "[errors]") {
  const index_t huge = std::numeric_limits<index_t>::max() / 4;
  CHECK_THAT(message_of([&] { (void)output_shape(3, 3, huge, 1, options{}); }), Contains("overflows"));
  // Legal shapes whose arrays cannot be allocated: convkit::error naming the bytes.
  CHECK_THAT(message_of([&] { array2d<double>(index_t(1) << 28, index_t(1) << 28); }), Contains("cannot allocate"));
}

TEST_CASE("a moved-from plan or layer_plan refuses to run", "[errors]") {
  const array2d<float> img(8, 8), k(3, 3);
  plan<float> p(8, 8, k);
  plan<float> q(std::move(p));
  array2d<float> out(10, 10);
  CHECK_THAT(message_of([&] { p.execute(img, out); }), Contains("plan is empty"));
  CHECK_NOTHROW(q.execute(img, out));
  layer_plan<float> lp({1, 2, 6, 6}, array4d<float>(3, 2, 3, 3), nullptr);
  layer_plan<float> lq = std::move(lp);
  array4d<float> lout(1, 3, 4, 4);
  CHECK_THAT(message_of([&] { lp.execute(array4d<float>(1, 2, 6, 6), lout); }), Contains("plan is empty"));
  CHECK_NOTHROW(lq.execute(array4d<float>(1, 2, 6, 6), lout));
}

}  // namespace convkit::testing
