// convkit/backends/fftw.hpp - algorithm::fft: convolution through FFTW3's real transforms, with
// overlap-save tiles so that time grows as N log K and the workspace stays bounded. CMake target
// convkit::fftw (FFTW is GPL: see the README's licence note).
//
// Contract (detail/fft_sizes.hpp has the maths): linear, never circular, convolution; a NaN or Inf
// anywhere in a tile's window or the kernel spreads over that tile's outputs, so
// algorithm::automatic never picks fft for data holding one. FFTW's planner is not thread-safe:
// every FFTW call except execute runs under one mutex, and plans are cached per transform size.
// Settings travel in options::tune.fft (tuning.hpp); fftw::set_config changes their default.
#pragma once

#include "../version.hpp"

#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

#include "../detail/backend.hpp"
#if CONVKIT_BACKEND_IMPLEMENTATION  // the executors: not in a program built against the compiled library
#include "../detail/fftw_batch.hpp"
#include "../detail/fftw_cost.hpp"
#include "../detail/fftw_image.hpp"
#endif
#include "../detail/fftw_traits.hpp"
#include "../tuning.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace fftw {

using config = fft_config;
using rigour = fft_rigour;
using tiling = fft_tiling;

/// Sets the process default of tuning::fft for plans and calls made from now on (thread-safe).
/// Throws convkit::error for a negative tile size or a memory_cap < 1.
inline void set_config(const config& c) {
  convkit::detail::check(c, "fftw::config");
  tuning t;
  t.fft = c;
  set_default_tuning(t);
}

/// The process default of tuning::fft (thread-safe).
inline config get_config() { return convkit::detail::default_settings::get().fft; }

/// Writes FFTW's accumulated wisdom (both precisions) to the file `path`.
/// Throws convkit::error naming the path if it cannot be written.
inline void export_wisdom(const std::string& path) {
  std::string text;
  const auto put = [](char c, void* sink) { static_cast<std::string*>(sink)->push_back(c); };
  {
    std::lock_guard<std::mutex> lock(convkit::detail::fftw_mutex());
    convkit::detail::fftw_traits<double>::export_wisdom(put, &text);
    convkit::detail::fftw_traits<float>::export_wisdom(put, &text);
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) throw error("fftw::export_wisdom: cannot write path '" + path + "'");
}

/// Adds the wisdom in the file `path` (as written by export_wisdom, or by fftw-wisdom / fftwf-wisdom)
/// to FFTW's. Throws convkit::error naming the path if it cannot be read or holds no valid wisdom.
inline void import_wisdom(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream buffer;
  buffer << f.rdbuf();
  if (!f) throw error("fftw::import_wisdom: cannot read path '" + path + "'");
  const std::string text = buffer.str();
  // The file holds one s-expression per precision, each starting "(fftw-<version> fftw[f]_wisdom".
  bool any = false;
  std::lock_guard<std::mutex> lock(convkit::detail::fftw_mutex());
  for (std::size_t at = text.find("(fftw-"); at != std::string::npos;) {
    const std::size_t next = text.find("(fftw-", at + 1);
    const std::string block = text.substr(at, next == std::string::npos ? std::string::npos : next - at);
    const std::string header = block.substr(0, block.find('\n'));
    bool ok = false;
    if (header.find(convkit::detail::fftw_traits<float>::wisdom_tag) != std::string::npos)
      ok = convkit::detail::fftw_traits<float>::import_wisdom(block.c_str()) != 0;
    else if (header.find(convkit::detail::fftw_traits<double>::wisdom_tag) != std::string::npos)
      ok = convkit::detail::fftw_traits<double>::import_wisdom(block.c_str()) != 0;
    if (!ok) throw error("fftw::import_wisdom: path '" + path + "' holds invalid wisdom");
    any = true;
    at = next;
  }
  if (!any) throw error("fftw::import_wisdom: path '" + path + "' holds no FFTW wisdom");
}

/// Forgets all accumulated wisdom (plans already made stay valid).
inline void forget_wisdom() {
  std::lock_guard<std::mutex> lock(convkit::detail::fftw_mutex());
  convkit::detail::fftw_traits<double>::forget_wisdom();
  convkit::detail::fftw_traits<float>::forget_wisdom();
}

}  // namespace fftw
CONVKIT_NAMESPACE_END

#if CONVKIT_BACKEND_IMPLEMENTATION
CONVKIT_NAMESPACE_BEGIN
namespace detail {

template <class T>
std::unique_ptr<executor<T>> make_fftw(const conv_problem& p, const T* weights, const T* bias) {
  refuse_sparse(p.sparse(), "fft");
  if (p.single_plane()) return std::make_unique<fftw_image_executor<T>>(p, weights, bias);
  refuse_componentwise(p.componentwise, "fft", "for layers (only for single images)");
  return std::make_unique<fftw_batch_executor<T>>(p, weights, bias);
}

/// FFTW's version, the library the profile's fft.* values were measured with.
inline std::string fftw_library() {
  std::string v = fftw_version;  // "fftw-3.3.10-sse2-avx"
  for (char& ch : v)
    if (ch == ' ') ch = '-';
  return "fft=" + v;
}

inline const backend fftw_backend{algorithm::fft, &fftw_cost, &make_fftw<float>, &make_fftw<double>, &fftw_library};
inline const bool fftw_registered = register_backend(fftw_backend);

}  // namespace detail
CONVKIT_NAMESPACE_END
#endif  // CONVKIT_BACKEND_IMPLEMENTATION
