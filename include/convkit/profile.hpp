// convkit/profile.hpp - what algorithm::automatic knows about one machine, as a value.
//
//   cost_profile      the backends' cost models (cost_models.hpp: measured constants, else built-in
//                     ones) and the choices choice_rule::measure has made (problem key -> algorithm),
//                     with the machine's fingerprint and each backend's library as it was measured.
//                     A default profile holds only built-in constants.
//   fingerprint       what makes two machines alike for the cost models (profile_file.hpp makes it:
//                     CPU model, instruction set, hardware threads, convkit's version).
//   libraries         each backend's library as its constants were measured ("fft" -> FFTW's
//                     version): values measured with another library version are not used.
//   active profile    what automatic uses unless a plan's tuning names another. With the profile
//                     file component (<convkit/profile_file.hpp>, which <convkit/convkit.hpp>
//                     includes) it is this machine's section of the profile file, read once, on
//                     first use; without it, the built-in constants. Either way it is a value that a
//                     plan takes when it is made and keeps.
// Nothing here reads a file or the environment.
#pragma once

#include "version.hpp"

#include <atomic>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "cost_models.hpp"
#include "types.hpp"

CONVKIT_NAMESPACE_BEGIN

/// Receives notices: what a caller may want to know that is no error (e.g. a profile that could
/// not be used). Called at most once per event, from the thread that met it.
using notice_handler = void (*)(const std::string& message);

namespace detail {
inline std::atomic<notice_handler>& notice_slot() noexcept {
  static std::atomic<notice_handler> slot{nullptr};
  return slot;
}
inline void notify(const std::string& message) {
  if (notice_handler h = notice_slot().load()) h(message);
}
}  // namespace detail

/// Sets where notices go (null: dropped, the default) and returns the previous handler.
inline notice_handler set_notice_handler(notice_handler h) noexcept { return detail::notice_slot().exchange(h); }

/// The cost models' constants and the measured choices of one machine (see the top of this file).
class cost_profile {
 public:
  cost_profile() = default;
  explicit cost_profile(std::string fingerprint) : fingerprint_(std::move(fingerprint)) {}

  direct_costs direct;
  im2col_costs im2col;
  fft_costs fft;
  cufft_costs cufft;

  /// Calls visit(name, constant) for every constant of every backend, once, by its full name
  /// ("fft.transform_unit"); `self` is a cost_profile, const or not.
  template <class Self, class Visit>
  static void for_each_constant(Self& self, Visit&& visit) {
    const auto of = [&](auto& costs) {
      using costs_type = std::remove_const_t<std::remove_reference_t<decltype(costs)>>;
      costs_type::visit(
          costs, [&](const std::string& name, auto& c) { visit(std::string(costs_type::prefix) + "." + name, c); });
    };
    of(self.direct);
    of(self.im2col);
    of(self.fft);
    of(self.cufft);
  }

  const std::string& fingerprint() const noexcept { return fingerprint_; }
  /// Nothing measured and no choice made: the built-in constants.
  bool empty() const { return values().empty() && choices_.empty(); }

  /// The measured value of the constant named `name`, if any.
  std::optional<double> value(const std::string& name) const {
    std::optional<double> v;
    for_each_constant(*this, [&](const std::string& n, const constant& c) {
      if (n == name && c.measured()) v = c.value();
    });
    return v;
  }
  /// Records a measured value by name. Throws convkit::error for a name that is no constant's or a
  /// value that is not finite.
  void set_value(const std::string& name, double v) {
    if (!std::isfinite(v)) throw error("cost_profile::set_value: value of '" + name + "' is not finite");
    bool known = false;
    for_each_constant(*this, [&](const std::string& n, constant& c) {
      if (n == name) c.measure(v), known = true;
    });
    if (!known) throw error("cost_profile::set_value: name '" + name + "' is no cost-model constant");
  }
  /// Every measured constant, by name.
  std::map<std::string, double> values() const {
    std::map<std::string, double> m;
    for_each_constant(*this, [&](const std::string& n, const constant& c) {
      if (c.measured()) m[n] = c.value();
    });
    return m;
  }

  /// The algorithm measured fastest for the problem with this key (detail::choice_key), if any.
  std::optional<algorithm> choice(const std::string& key) const {
    const auto it = choices_.find(key);
    if (it == choices_.end()) return std::nullopt;
    return it->second;
  }
  /// Throws convkit::error unless `key` is one word and `a` a backend's algorithm.
  void set_choice(const std::string& key, algorithm a) {
    check_word(key, "cost_profile::set_choice: key");
    if (a == algorithm::automatic || !detail::enum_valid(a))
      throw error("cost_profile::set_choice: not a backend's algorithm");
    choices_[key] = a;
  }
  const std::map<std::string, algorithm>& choices() const noexcept { return choices_; }

  /// The library the constants named "<prefix>.*" were measured with (e.g. "fft" -> "fftw-3.3.10").
  void set_library(const std::string& prefix, const std::string& version) {
    check_word(prefix, "cost_profile::set_library: prefix");
    check_word(version, "cost_profile::set_library: version");
    libraries_[prefix] = version;
  }
  const std::map<std::string, std::string>& libraries() const noexcept { return libraries_; }

  /// Forgets every constant named "<prefix>.*" (back to its built-in value) and its library.
  void drop_values(const std::string& prefix) {
    for_each_constant(*this, [&](const std::string& n, constant& c) {
      if (n.rfind(prefix + ".", 0) == 0) c.forget();
    });
    libraries_.erase(prefix);
  }

  /// Adds `other`'s measured constants and choices to this profile; where both have one, `other`'s
  /// wins (with fill_only, this profile's). Either way a backend whose library `other` records in
  /// another version than this profile loses its values here first: they were measured with a
  /// library no longer in use.
  void merge(const cost_profile& other, bool fill_only = false) {
    for (const auto& [prefix, version] : other.libraries_) {
      const auto mine = libraries_.find(prefix);
      if (mine != libraries_.end() && mine->second != version) drop_values(prefix);
    }
    const std::map<std::string, double> theirs = other.values();
    for_each_constant(*this, [&](const std::string& n, constant& c) {
      const auto it = theirs.find(n);
      if (it != theirs.end() && (!fill_only || !c.measured())) c.measure(it->second);
    });
    for (const auto& [k, v] : other.choices_)
      if (!fill_only || choices_.count(k) == 0) choices_[k] = v;
    for (const auto& [k, v] : other.libraries_) libraries_[k] = v;
  }

  /// Throws convkit::error unless `word` is one printable word that is no keyword of the profile
  /// file (profile_file.hpp).
  static void check_word(const std::string& word, const char* what) {
    bool ok = !word.empty() && word != "choice" && word != "end" && word != "library";
    for (char c : word) ok = ok && c > ' ' && c < 127 && c != '[' && c != ']';
    if (!ok) throw error(std::string(what) + " '" + word + "' must be one printable word");
  }

 private:
  std::string fingerprint_;
  std::map<std::string, algorithm> choices_;
  std::map<std::string, std::string> libraries_;
};

namespace detail {

/// What a persistence component registers (profile_file.hpp does, when included): how the active
/// profile is read, and where a measured choice is kept. Without one, the active profile holds the
/// built-in constants and measured choices stay in memory.
struct profile_store {
  cost_profile (*load)() = nullptr;
  void (*save_choice)(const std::string& key, algorithm chosen) = nullptr;
};
#if !defined(CONVKIT_COMPILED)
inline profile_store& registered_profile_store() noexcept {
  static profile_store store;
  return store;
}
#else
profile_store& registered_profile_store() noexcept;  // the compiled library's (detail/compiled.hpp)
#endif
/// Called from the initialiser of an inline variable in the component's header.
inline bool register_profile_store(profile_store s) {
  registered_profile_store() = s;
  return true;
}

class active_profile_slot {
 public:
  static std::shared_ptr<const cost_profile> get() {
    std::lock_guard<std::mutex> lock(mutex());
    std::shared_ptr<const cost_profile>& p = value();
    if (!p) {
      const profile_store& store = registered_profile_store();
      p = std::make_shared<const cost_profile>(store.load != nullptr ? store.load() : cost_profile());
    }
    return p;
  }
  static void set(std::shared_ptr<const cost_profile> p) {
    std::lock_guard<std::mutex> lock(mutex());
    value() = std::move(p);
  }

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::shared_ptr<const cost_profile>& value() {
    static std::shared_ptr<const cost_profile> p;
    return p;
  }
};

}  // namespace detail

/// The profile automatic uses when a plan's tuning names none (see the top of this file).
inline std::shared_ptr<const cost_profile> active_profile() { return detail::active_profile_slot::get(); }

/// Replaces the active profile for plans made from now on; null: read it again (from the profile
/// file, where that component is included) on next use.
inline void set_active_profile(std::shared_ptr<const cost_profile> p) {
  detail::active_profile_slot::set(std::move(p));
}

CONVKIT_NAMESPACE_END
