// Built into the consumer projects: the installed headers' version is the package's (passed in by
// CMake as CONVKIT_EXPECTED_VERSION, from convkitConfigVersion.cmake or the convkit project), and
// CONVKIT_VERSION agrees with its three parts.
#include <convkit/version.hpp>

namespace {
constexpr bool same(const char* a, const char* b) { return *a == *b && (*a == '\0' || same(a + 1, b + 1)); }
}  // namespace

static_assert(same(CONVKIT_VERSION_STRING, CONVKIT_EXPECTED_VERSION),
              "<convkit/version.hpp> and the CMake package disagree on the version");
static_assert(CONVKIT_VERSION == CONVKIT_VERSION_MAJOR * 10000 + CONVKIT_VERSION_MINOR * 100 + CONVKIT_VERSION_PATCH,
              "CONVKIT_VERSION is not MAJOR * 10000 + MINOR * 100 + PATCH");
#if CONVKIT_VERSION < 200
#error "CONVKIT_VERSION is usable in #if, and this consumer needs convkit 0.2 or later"
#endif
