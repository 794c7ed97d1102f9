// Built against the installed package by tests/consumer_test.cmake: a 3x3 box blur, checked.
#include <convkit/convkit.hpp>

#include <cstdio>

#if defined(CONVKIT_EXPECT_COMPILED) && !defined(CONVKIT_COMPILED)
#error "linked convkit::compiled, which should define CONVKIT_COMPILED"
#endif

int main() {
  convkit::array2d<float> image(5, 5), box(3, 3);
  image(2, 2) = 9.0f;
  for (convkit::index_t i = 0; i < box.size(); ++i) box.data()[i] = 1.0f / 9.0f;
  convkit::options opt;
  opt.mode = convkit::output::same;
  const convkit::array2d<float> blurred = convkit::conv2d(image, box, opt);
  const bool ok = blurred(1, 1) > 0.999f && blurred(1, 1) < 1.001f && blurred(0, 0) == 0.0f;
  std::printf("consumer: blurred(1,1) = %g (%s)\n", double(blurred(1, 1)), ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
