// One convolution layer of a CNN (ResNet-50's conv2_x 3x3: 64 -> 64 channels on 56x56, padding 1),
// on a batch of 4 images, through every backend in this build, checked against each other and
// against the float64 layer reference. Semantics are torch.nn.functional.conv2d's: NCHW,
// cross-correlation, weights [K, C/groups, R, S], bias [K].
#include <convkit/convkit.hpp>
#include <convkit/reference.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

int main() {
  using convkit::index_t;
  const index_t batch = 4, channels = 64, filters = 64, size = 56, r = 3;
  convkit::array4d<float> input(batch, channels, size, size), weights(filters, channels, r, r);
  std::vector<float> bias(static_cast<std::size_t>(filters));
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (index_t i = 0; i < input.size(); ++i) input.data()[i] = normal(rng);
  const float he = std::sqrt(2.0f / float(channels * r * r));  // He initialisation, as a trained layer would be scaled
  for (index_t i = 0; i < weights.size(); ++i) weights.data()[i] = he * normal(rng);
  for (float& b : bias) b = 0.1f * normal(rng);

  convkit::layer_options opt;
  opt.pad_rows = opt.pad_cols = 1;  // "same" padding for a 3x3 kernel
  const convkit::array4d<double> want =
      convkit::reference::conv2d<float>(input.view(), weights.view(), bias.data(), opt);

  bool ok = true;
  for (convkit::algorithm a : {convkit::algorithm::automatic, convkit::algorithm::direct, convkit::algorithm::im2col,
                               convkit::algorithm::fft, convkit::algorithm::cufft}) {
    opt.algo = a;
    try {
      convkit::layer_plan<float> layer(input.shape(), weights, bias.data(), opt);
      convkit::array4d<float> out = layer(input);  // first call: warm-up
      const auto t0 = std::chrono::steady_clock::now();
      layer.execute(input, out);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      double worst = 0, scale = 0;
      for (index_t i = 0; i < out.size(); ++i) {
        worst = std::fmax(worst, std::fabs(out.data()[i] - want.data()[i]));
        scale = std::fmax(scale, std::fabs(want.data()[i]));
      }
      const double flops = 2.0 * double(batch * filters * channels * r * r * size * size);
      std::printf("%-9s -> %-7s %7.2f ms %6.1f GFLOP/s   largest error %.1e (relative to max |out| %.1f)\n",
                  convkit::to_string(a), convkit::to_string(layer.chosen()), ms, flops / ms / 1e6, worst / scale,
                  scale);
      ok = ok && worst / scale < 1e-5;
    } catch (const convkit::unavailable& e) {
      std::printf("%-9s    not available here: %s\n", convkit::to_string(a), e.what());
    }
  }
  std::printf("%s\n", ok ? "every backend agrees with the reference" : "A BACKEND DISAGREES");
  return ok ? 0 : 1;
}
