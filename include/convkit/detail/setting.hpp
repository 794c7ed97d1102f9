// A process-wide setting that any thread may read or replace: the backends' config structs
// (fftw::config, cufft::config) are each one of these.
#pragma once

#include "../version.hpp"

#include <mutex>

CONVKIT_NAMESPACE_BEGIN
namespace detail {

template <class Value>
class setting {
 public:
  /// The one instance for Value in this program.
  static setting& instance() {
    static setting s;
    return s;
  }
  Value get() const {
    std::lock_guard<std::mutex> lock(m_);
    return value_;
  }
  void set(const Value& v) {
    std::lock_guard<std::mutex> lock(m_);
    value_ = v;
  }

 private:
  mutable std::mutex m_;
  Value value_{};
};

}  // namespace detail
CONVKIT_NAMESPACE_END
