// The compiled library (CMake option CONVKIT_COMPILED, target convkit::compiled): every template
// detail/compiled.hpp declares extern, instantiated once, with every backend of this build
// registered in the one backend table its programs share.
// (the umbrella header includes each backend whose CONVKIT_HAS_* macro its target defines)
#include <convkit/convkit.hpp>

#if !defined(CONVKIT_COMPILED) || !defined(CONVKIT_COMPILING_LIBRARY)
#error "src/compiled.cpp is convkit::compiled's source: CMake defines CONVKIT_COMPILED and CONVKIT_COMPILING_LIBRARY"
#endif

CONVKIT_NAMESPACE_BEGIN
namespace detail {

backend_array& backend_table() noexcept {
  static backend_array table{};
  return table;
}

profile_store& registered_profile_store() noexcept {
  static profile_store store;
  return store;
}

template class prepared<float>;
template class prepared<double>;
template conv_problem image_problem<float>(index_t, index_t, view2d<const float>, const options&, bool);
template conv_problem image_problem<double>(index_t, index_t, view2d<const double>, const options&, bool);
template conv_problem layer_problem<float>(shape4d, view4d<const float>, const float*, const layer_options&, bool);
template conv_problem layer_problem<double>(shape4d, view4d<const double>, const double*, const layer_options&, bool);

}  // namespace detail
CONVKIT_NAMESPACE_END
