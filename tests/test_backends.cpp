// Every backend in this program computes the same function: the shared problem grid, float and
// double, through conv2d and through a reused plan, against the double-precision reference.
#include <convkit/convkit.hpp>

#include "fft_error.hpp"
#include "problems.hpp"

namespace convkit::testing {

namespace {

/// The error each algorithm may make (see error_model in problems.hpp, fft_error.hpp).
template <class T>
error_model model_for([[maybe_unused]] algorithm a, const problem_case& c) {
#if defined(CONVKIT_HAS_FFTW)
  if (a == algorithm::fft) return fft_error<T>(c);
#endif
#if defined(CONVKIT_HAS_CUFFT)
  if (a == algorithm::cufft) return cufft_error(c);
#endif
  return direct_error(c);
}

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
  const auto model = [a](const problem_case& c) { return model_for<T>(a, c); };
  for (problem_case c : problem_grid()) {
    c.opt.algo = a;
    check_case<T>(
        c, rng,
        [](view2d<const T> in, view2d<const T> k, view2d<T> out, const options& o) { conv2d<T>(in, k, out, o); },
        model);
  }
}

/// A plan executed on one input and then on another: the second result must not depend on the first
/// (stale workspace, tiles or spectra would show up as a mismatch against the reference).
template <class T>
void run_plan_reuse(algorithm a) {
  std::mt19937_64 rng(run_seed() + 17 * std::uint64_t(a));
  const auto model = [a](const problem_case& c) { return model_for<T>(a, c); };
  const std::vector<problem_case> grid = problem_grid(8);
  for (std::size_t i = 0; i < grid.size(); i += 7) {
    problem_case c = grid[i];
    c.opt.algo = a;
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
        model);
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
  const auto model = [](const problem_case& c) { return direct_error(c); };
  for (int threads : {1, 2, 3}) {
    for (index_t k : {1, 3, 8, 15}) {
      problem_case c{};
      c.rows = 67 + k;
      c.cols = 131 + 3 * k;
      c.k_rows = k;
      c.k_cols = k + 1;
      c.pad = 3;
      c.opt.mode = k % 2 ? output::valid : output::same;
      c.opt.edge = border::reflect;
      c.opt.correlate = k % 3 == 0;
      c.opt.threads = threads;
      c.opt.algo = algorithm::direct;
      INFO("threads " << threads);
      check_case<float>(
          c, rng,
          [](view2d<const float> in, view2d<const float> kk, view2d<float> out, const options& o) {
            conv2d<float>(in, kk, out, o);
          },
          model);
      check_case<double>(
          c, rng,
          [](view2d<const double> in, view2d<const double> kk, view2d<double> out, const options& o) {
            conv2d<double>(in, kk, out, o);
          },
          model);
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
