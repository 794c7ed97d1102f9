// Every backend in this program computes the same function: the shared problem grid, float and
// double, through conv2d and through a reused plan, against the double-precision reference.
#include <convkit/convkit.hpp>

#include "fft_error.hpp"
#include "problems.hpp"

namespace convkit::testing {

namespace {

/// Backends registered in this program that can run here (cufft without a device cannot).
std::vector<algorithm> runnable_backends() {
  std::vector<algorithm> out;
  for (algorithm a : {algorithm::direct, algorithm::im2col, algorithm::fft, algorithm::cufft}) {
    options o;
    o.algo = a;
    try {
      plan<float>(4, 4, array2d<float>(2, 2), o);
      out.push_back(a);
    } catch (const unavailable& e) {
      WARN("not tested here: " << e.what());
    }
  }
  return out;
}

template <class T>
void run_grid(algorithm a) {
  std::mt19937_64 rng(run_seed() ^ (std::uint64_t(a) << 40) ^ sizeof(T));
  for (conv_case c : conv_grid(front_door::image)) {
    c.algo = a;
    check_case<T>(c, rng, call_conv2d<T>{}, error_of<T>(a, c));
  }
}

/// A plan executed on one input and then on another: the second result must not depend on the first
/// (stale workspace, tiles or spectra would show up as a mismatch against the reference).
template <class T>
void run_plan_reuse(algorithm a) {
  std::mt19937_64 rng(run_seed() + 17 * std::uint64_t(a));
  const std::vector<conv_case> grid = conv_grid(front_door::image, 8);
  for (std::size_t i = 0; i < grid.size(); i += 7) {
    conv_case c = grid[i];
    c.algo = a;
    check_case<T>(
        c, rng,
        [&](view2d<const T> in, view2d<const T> k, view2d<T> out, const options& o) {
          plan<T> p(in.rows(), in.cols(), k, o);
          CHECK(p.chosen() == a);
          array2d<T> other(in.rows(), in.cols()), scratch(out.rows(), out.cols());
          fill_random(other.view(), rng);
          p.execute(other, scratch);  // a first input, whose traces must not reach the second result
          p.execute(in, out);
        },
        error_of<T>(a, c));
  }
}

}  // namespace

TEST_CASE("every backend matches the reference over the problem grid (float)", "[backends]") {
  for (algorithm a : runnable_backends()) {
    INFO("algorithm::" << to_string(a));
    run_grid<float>(a);
  }
}

TEST_CASE("every backend matches the reference over the problem grid (double)", "[backends]") {
  for (algorithm a : runnable_backends()) {
    INFO("algorithm::" << to_string(a));
    run_grid<double>(a);
  }
}

TEST_CASE("plans are reusable on every backend", "[backends][plan]") {
  for (algorithm a : runnable_backends()) {
    INFO("algorithm::" << to_string(a));
    run_plan_reuse<float>(a);
    run_plan_reuse<double>(a);
  }
}

TEST_CASE("automatic picks a runnable backend and matches the reference", "[backends][automatic]") {
  run_grid<float>(algorithm::automatic);
  run_grid<double>(algorithm::automatic);
}

TEST_CASE("direct: every instruction set this CPU has matches the reference", "[backends][direct]") {
  const direct::isa best = direct::best_instruction_set();
  for (int i = 0; i <= int(best); ++i) {
    const auto isa = static_cast<direct::isa>(i);
    INFO("instruction set " << direct::to_string(isa));
    direct::force_instruction_set(isa);
    run_grid<float>(algorithm::direct);
    run_grid<double>(algorithm::direct);
  }
  direct::force_instruction_set(best);
  if (best != direct::isa::avx512) CHECK_THROWS_AS(direct::force_instruction_set(direct::isa::avx512), unavailable);
}

TEST_CASE("direct: large blocks, long rows and thread splits match the reference", "[backends][direct]") {
  // The grid's images are small; these exercise full register blocks, column tails and row bands.
  std::mt19937_64 rng(run_seed() + 99);
  for (int threads : {1, 2, 3}) {
    for (index_t k : {1, 3, 8, 15}) {
      conv_case c = image_case(67 + k, 131 + 3 * k, k, k + 1);
      c.view_pad = 3;
      c.mode = k % 2 ? output::valid : output::same;
      c.edge = border::reflect;
      c.correlate = k % 3 == 0;
      c.threads = threads;
      c.algo = algorithm::direct;
      INFO("threads " << threads);
      check_case<float>(c, rng, call_conv2d<float>{}, direct_error(c));
      check_case<double>(c, rng, call_conv2d<double>{}, direct_error(c));
    }
  }
}

TEST_CASE("non-finite values: direct and im2col keep NaN local, automatic avoids spreading it", "[backends][nan]") {
  array2d<double> img(40, 40), k(3, 3);
  for (index_t i = 0; i < img.size(); ++i) img.data()[i] = 1;
  for (index_t i = 0; i < k.size(); ++i) k.data()[i] = 1;
  img(20, 20) = std::numeric_limits<double>::quiet_NaN();
  options o;
  o.mode = output::same;
  std::vector<algorithm> local{algorithm::automatic};
  for (algorithm a : runnable_backends())
    if (a == algorithm::direct || a == algorithm::im2col) local.push_back(a);
  for (algorithm a : local) {
    INFO("algorithm::" << to_string(a));
    o.algo = a;
    const array2d<double> out = conv2d(img, k, o);
    index_t nans = 0;
    for (index_t i = 0; i < out.size(); ++i) nans += std::isnan(out.data()[i]) ? 1 : 0;
    CHECK(nans == 9);  // exactly the outputs whose taps reach the NaN
    CHECK(out(0, 0) == 4);
  }
}

}  // namespace convkit::testing
