// Threads: how many to use, and a fork-join loop over a range of work items.
#pragma once

#include <algorithm>
#include <exception>
#include <thread>
#include <vector>

#include "../types.hpp"

namespace convkit::detail {

/// options::threads resolved: 0 means every hardware thread; never less than 1.
inline int resolve_threads(int requested) noexcept {
  if (requested > 0) return requested;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

/// Calls body(begin, end) on `threads` contiguous, nearly equal slices of [0, n), the first on the
/// calling thread. The first exception thrown by any slice is rethrown after all have finished.
template <class Body>
void parallel_for(index n, int threads, Body&& body) {
  const index parts = std::clamp<index>(threads, 1, std::max<index>(n, 1));
  if (parts == 1) {
    body(index(0), n);
    return;
  }
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(parts));
  const auto slice = [&](index p) {
    try {
      body(n * p / parts, n * (p + 1) / parts);
    } catch (...) {
      errors[static_cast<std::size_t>(p)] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(parts - 1));
  for (index p = 1; p < parts; ++p) pool.emplace_back(slice, p);
  slice(0);
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace convkit::detail
