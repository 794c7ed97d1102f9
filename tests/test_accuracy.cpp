// The accuracy contract (types.hpp, accuracy): automatic, and fft asked for the contract, keep every
// output within contract_multiple * gamma_m * (|x| * |k|) at it on fields of wide dynamic range
// (stars on a faint sky, a bright edge beside a dark region, alternating magnitudes), for every
// mode and border, strides, dilations and tiles, float and double, one and two threads; fft with
// its normwise bound breaks the contract on the same fields (so these checks can fail); normwise
// reproduces fft's results; layers keep the contract by not transforming.
#include <convkit/backends/fftw.hpp>
#include <convkit/convkit.hpp>
#include <convkit/layer.hpp>

#include "count_allocations.hpp"
#include "problems.hpp"

namespace convkit::testing {
namespace {

enum class field { stars, edge, alternating };
const char* name(field f) { return f == field::stars ? "stars" : f == field::edge ? "edge" : "alternating"; }

/// Bright values: 1e6 in float, 1e12 in double, over a sky of ~1e-3 (stars, edge); or squares of
/// 48 x 48 values of 1e6 and 1e-6 alternating, with random signs.
template <class T>
struct field_fill {
  field f;
  void operator()(view2d<T> v, std::mt19937_64& rng) const {
    const double bright = sizeof(T) == 4 ? 1e6 : 1e12;
    std::uniform_real_distribution<double> jitter(0.5, 1.5);
    std::bernoulli_distribution star(1.0 / 300), sign(0.5);
    for (index_t r = 0; r < v.rows(); ++r)
      for (index_t c = 0; c < v.cols(); ++c) {
        double x = 1e-3;
        if (f == field::stars && star(rng)) x = bright;
        if (f == field::edge && c < v.cols() / 2) x = bright;
        if (f == field::alternating) x = ((r / 48 + c / 48) % 2 ? 1e6 : 1e-6) * (sign(rng) ? 1 : -1);
        v(r, c) = T(x * jitter(rng));
      }
  }
};

/// Kernels of one sign (PSFs, blurs) or both.
struct kernel_fill {
  bool signed_values;
  template <class T>
  void operator()(view2d<T> v, std::mt19937_64& rng) const {
    std::uniform_real_distribution<double> d(signed_values ? -1.0 : 0.05, 1.0);
    for (index_t r = 0; r < v.rows(); ++r)
      for (index_t c = 0; c < v.cols(); ++c) v(r, c) = T(d(rng));
  }
};

/// Single images on fft under the contract: every mode and border; automatic, forced and no tiles.
std::vector<conv_case> contract_cases() {
  std::vector<conv_case> cases;
  int i = 0;
  for (output mode : {output::full, output::same, output::valid})
    for (border edge :
         {border::zero, border::constant, border::replicate, border::reflect, border::symmetric, border::circular})
      for (fft_tiling tiles : {fft_tiling::automatic, fft_tiling::always, fft_tiling::never}) {
        conv_case c = image_case(61 + 7 * (i % 3), 83 - 5 * (i % 4), 9 + 2 * (i % 3), 11 - 2 * (i % 2));
        c.mode = mode;
        c.edge = edge;
        c.edge_value = 2.5e-3;
        c.correlate = i % 2 == 1;
        c.stride_rows = 1 + i % 2;
        c.stride_cols = 1 + (i / 3) % 2;
        c.dilation_rows = 1 + (i / 5) % 2;
        c.threads = 1 + i % 2;
        c.algo = algorithm::fft;
        c.accuracy = accuracy::componentwise;
        c.tune.fft = fftw::config{};
        c.tune.fft->tiles = tiles;  // never: one transform, or the circular shortcut
        if (tiles == fft_tiling::always) {
          c.tune.fft->tile_rows = 17;
          c.tune.fft->tile_cols = 23;
        }
        cases.push_back(c);
        ++i;
      }
  return cases;
}

/// The largest error of one fft call relative to the contract's bound at each output.
template <class T>
double worst_of_contract(const conv_case& c, field f, bool signed_kernel, std::mt19937_64& rng) {
  array2d<T> in(c.rows, c.cols), k(c.k_rows, c.k_cols);
  field_fill<T>{f}(in.view(), rng);
  kernel_fill{signed_kernel}(k.view(), rng);
  const options o = c.image_opt();
  const array2d<T> got = conv2d(in, k, o);
  const array2d<double> want = reference::conv2d<T>(in, k, o), mag = reference::conv2d<T>(in, k, o, true);
  const double allowed = std::numeric_limits<T>::epsilon() * contract_error<T>(c).local;
  double worst = 0;
  for (index_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::abs(double(got.data()[i]) - want.data()[i]) / (allowed * mag.data()[i] + 1e-300));
  return worst;
}

template <class T>
void check_contract_cases() {
  std::mt19937_64 rng(run_seed() ^ 0xacc ^ sizeof(T));
  for (const conv_case& c : contract_cases())
    for (field f : {field::stars, field::edge, field::alternating})
      for (bool signed_kernel : {false, true}) {
        INFO(name(f) << (signed_kernel ? ", kernel of both signs" : ", kernel of one sign"));
        check_case<T>(c, rng, call_conv2d<T>{}, contract_error<T>(c), kernel_fill{signed_kernel}, field_fill<T>{f});
      }
}

}  // namespace

TEST_CASE("contract: fft keeps it at every output on wide-dynamic-range fields", "[accuracy]") {
  check_contract_cases<float>();
  check_contract_cases<double>();
}

TEST_CASE("contract: fft's normwise bound breaks it on the same fields", "[accuracy]") {
  std::mt19937_64 rng(run_seed() ^ 0xbad);
  conv_case c = image_case(120, 110, 15, 13);
  c.mode = output::same;
  c.algo = algorithm::fft;
  for (field f : {field::stars, field::edge, field::alternating}) {
    INFO(name(f));
    c.accuracy = accuracy::automatic;  // a backend named: normwise
    CHECK(worst_of_contract<float>(c, f, false, rng) > 1.0);
    CHECK(worst_of_contract<double>(c, f, true, rng) > 1.0);
    c.accuracy = accuracy::componentwise;
    CHECK(worst_of_contract<float>(c, f, false, rng) <= 1.0);
    CHECK(worst_of_contract<double>(c, f, true, rng) <= 1.0);
  }
}

TEST_CASE("contract: automatic keeps it where it takes the fft", "[accuracy]") {
  std::mt19937_64 rng(run_seed() ^ 0xa7);
  for (output mode : {output::same, output::full})
    for (field f : {field::stars, field::edge, field::alternating}) {
      INFO(name(f) << ", " << to_string(mode));
      conv_case c = image_case(400, 380, 41, 41);
      c.mode = mode;
      c.threads = 2;
      array2d<float> k(c.k_rows, c.k_cols);
      kernel_fill{false}(k.view(), rng);
      plan<float> p(c.rows, c.cols, k, c.image_opt());
      CHECK(p.chosen() == algorithm::fft);  // else this test would not test the transform
      CHECK(worst_of_contract<float>(c, f, false, rng) <= 1.0);
    }
}

TEST_CASE("contract: normwise reproduces fft's results", "[accuracy]") {
  std::mt19937_64 rng(run_seed() ^ 0x0f);
  array2d<float> in(400, 380), k(41, 41);
  field_fill<float>{field::stars}(in.view(), rng);
  kernel_fill{false}(k.view(), rng);
  options fast;
  fast.accuracy = accuracy::normwise;
  plan<float> automatic(in.rows(), in.cols(), k, fast);
  REQUIRE(automatic.chosen() == algorithm::fft);
  options named;
  named.algo = algorithm::fft;  // accuracy::automatic: normwise for a backend asked for by name
  const array2d<float> a = automatic(in), b = conv2d(in, k, named);
  named.accuracy = accuracy::normwise;
  const array2d<float> c = conv2d(in, k, named);
  CHECK(std::equal(a.data(), a.data() + a.size(), b.data()));
  CHECK(std::equal(a.data(), a.data() + a.size(), c.data()));
}

TEST_CASE("contract: an fft plan under it allocates nothing per execute", "[accuracy][plans]") {
  std::mt19937_64 rng(run_seed() ^ 0x5a);
  for (field f : {field::stars, field::edge, field::alternating})
    for (int threads : {1, 2}) {
      INFO(name(f) << ", " << threads << " threads");
      array2d<float> in(300, 280), k(21, 21), out(300, 280);
      field_fill<float>{f}(in.view(), rng);
      kernel_fill{f == field::alternating}(k.view(), rng);
      options o;
      o.mode = output::same;
      o.algo = algorithm::fft;
      o.accuracy = accuracy::componentwise;
      o.threads = threads;
      o.tune.fft = fftw::config{};
      o.tune.fft->tile_rows = o.tune.fft->tile_cols = 60;
      plan<float> p(in.rows(), in.cols(), k, o);
      CHECK(allocations_per_three_runs([&] { p.execute(in, out); }) == 0);
    }
}

TEST_CASE("contract: layers keep it; fft asked for it on a layer is refused", "[accuracy][layers]") {
  std::mt19937_64 rng(run_seed() ^ 0x1a);
  conv_case c = layer_case(2, 3, 4, 40, 36, 9, 9);
  c.bias = true;
  for (field f : {field::stars, field::edge, field::alternating}) {
    INFO(name(f));
    check_case<float>(c, rng, call_conv2d<float>{}, contract_error<float>(c), kernel_fill{true}, field_fill<float>{f});
  }
  layer_options o;
  o.algo = algorithm::fft;
  o.accuracy = accuracy::componentwise;
  const array4d<float> x(1, 2, 20, 20), w(2, 2, 5, 5);
  REQUIRE_THROWS_WITH(conv2d<float>(x, w, nullptr, o),
                      Catch::Contains("accuracy::componentwise") && Catch::Contains("layers"));
}

}  // namespace convkit::testing
