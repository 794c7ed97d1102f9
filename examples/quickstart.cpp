#include <convkit/convkit.hpp>
#include <cstdio>

int main() {
  convkit::array2d<float> image(480, 640), kernel(5, 5);
  image(240, 320) = 1.0f;  // a single bright pixel
  for (convkit::index_t i = 0; i < kernel.size(); ++i) kernel.data()[i] = 1.0f / 25;
  convkit::options opt;
  opt.mode = convkit::output::same;     // full, same or valid, as in SciPy
  opt.edge = convkit::border::reflect;  // zero, constant, replicate, reflect, symmetric, circular
  convkit::array2d<float> blurred = convkit::conv2d(image, kernel, opt);  // the backend is chosen for you
  std::printf("blurred(240, 320) = %.3f\n", blurred(240, 320));           // 0.040
  return blurred(240, 320) > 0.0399f && blurred(240, 320) < 0.0401f ? 0 : 1;
}
