// The cuFFT backend's shared suite (cufft_suite.hpp) against the real CUDA, cuFFT and cuBLAS
// libraries. Where no usable device is found it prints why on one line and exits with 77, which
// CTest reports as skipped (SKIP_RETURN_CODE), never as passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <convkit/convkit.hpp>

#include <cstdio>

namespace convkit::testing {
/// The real libraries need no set-up and allow no leak accounting. (Not trivial, so that the
/// compiler does not call a session that is only declared an unused variable.)
struct device_session {
  device_session() {}
  ~device_session() {}
};
}  // namespace convkit::testing

#include "cufft_suite.hpp"

int main(int argc, char* argv[]) {
  constexpr int skipped = 77;  // tests/CMakeLists.txt: SKIP_RETURN_CODE
  const std::string reason = convkit::cufft::unavailable_reason();
  if (!reason.empty()) {
    std::printf("SKIPPED test_cufft_device: %s\n", reason.c_str());
    return skipped;
  }
  return Catch::Session().run(argc, argv);
}
