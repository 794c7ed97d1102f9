// convkit/profile.hpp - what algorithm::automatic knows about this machine.
//
//   cost_profile      the measured constants of the backends' cost models (named values, e.g.
//                     "direct.avx512.threads1.k15 5.1e10": multiply-adds per second) and the choices
//                     choice_rule::measure has made (problem key -> algorithm), for one machine.
//                     An empty profile means every backend's built-in constants.
//   fingerprint       what makes two machines alike for the cost models: CPU model, instruction set,
//                     hardware threads and convkit's version. A profile measured elsewhere is not
//                     used.
//   libraries         each backend's library as it was measured (FFTW's version, the BLAS, the GPU):
//                     a program whose library differs ignores that backend's values, and keeps the
//                     others (a program built without a backend shares the profile too).
//   profile file      plain text, one section per fingerprint, that a person can read and diff:
//                       [machine <fingerprint>]
//                       library <backend prefix> <version>
//                       <name> <value>
//                       choice <problem key> <algorithm>
//                       end <number of entries>
//                     It lives at $CONVKIT_PROFILE if set, else $XDG_CACHE_HOME/convkit/profile.txt,
//                     else ~/.cache/convkit/profile.txt. convkit_calibrate (or calibrate() in
//                     calibrate.hpp) writes it. Writes merge with what the file holds (the new
//                     entries win; a quick calibration's only fill in what is missing), under a lock
//                     file, and replace it atomically (write a temporary file, then rename), so two
//                     processes writing at once lose nothing.
//   active profile    what automatic uses unless a plan's tuning names another: this machine's section
//                     of the profile file, read once, on first use, thread-safely. A missing,
//                     unreadable, corrupt, truncated or foreign file gives an empty profile and at
//                     most one notice through the notice handler (set_notice_handler; by default
//                     notices are dropped), never an exception.
// POSIX (Linux, macOS): files are locked with flock().
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cpu.hpp"
#include "types.hpp"
#include "version.hpp"

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

/// Measured cost-model constants and measured choices of one machine (see the top of this file).
class cost_profile {
 public:
  cost_profile() = default;
  explicit cost_profile(std::string fingerprint) : fingerprint_(std::move(fingerprint)) {}

  const std::string& fingerprint() const noexcept { return fingerprint_; }
  bool empty() const noexcept { return values_.empty() && choices_.empty(); }

  /// The value named `name`, if measured.
  std::optional<double> value(const std::string& name) const {
    const auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }
  /// Throws convkit::error unless `name` is a profile name ([a-z0-9_.]+) and `v` finite.
  void set_value(const std::string& name, double v) {
    check_name(name, "cost_profile::set_value: name");
    if (!std::isfinite(v)) throw error("cost_profile::set_value: value of '" + name + "' is not finite");
    values_[name] = v;
  }
  const std::map<std::string, double>& values() const noexcept { return values_; }

  /// The algorithm measured fastest for the problem with this key (detail::choice_key), if any.
  std::optional<algorithm> choice(const std::string& key) const {
    const auto it = choices_.find(key);
    if (it == choices_.end()) return std::nullopt;
    return it->second;
  }
  /// Throws convkit::error unless `key` is one word and `a` a backend's algorithm.
  void set_choice(const std::string& key, algorithm a) {
    check_name(key, "cost_profile::set_choice: key");
    if (a != algorithm::direct && a != algorithm::im2col && a != algorithm::fft && a != algorithm::cufft)
      throw error("cost_profile::set_choice: not a backend's algorithm");
    choices_[key] = a;
  }
  const std::map<std::string, algorithm>& choices() const noexcept { return choices_; }

  /// The library the values named "<prefix>.*" were measured with (e.g. "fft" -> "fftw-3.3.10").
  void set_library(const std::string& prefix, const std::string& version) {
    check_name(prefix, "cost_profile::set_library: prefix");
    check_name(version, "cost_profile::set_library: version");
    libraries_[prefix] = version;
  }
  const std::map<std::string, std::string>& libraries() const noexcept { return libraries_; }

  /// Removes every value named "<prefix>.*".
  void drop_values(const std::string& prefix) {
    for (auto it = values_.begin(); it != values_.end();)
      it = it->first.rfind(prefix + ".", 0) == 0 ? values_.erase(it) : std::next(it);
    libraries_.erase(prefix);
  }

  /// Adds `other`'s entries to this profile; where both have one, `other`'s wins (with fill_only,
  /// this profile's). Either way a backend whose library `other` records in another version than
  /// this profile loses its values here first: they were measured with a library no longer in use.
  void merge(const cost_profile& other, bool fill_only = false) {
    for (const auto& [prefix, version] : other.libraries_) {
      const auto mine = libraries_.find(prefix);
      if (mine != libraries_.end() && mine->second != version) drop_values(prefix);
    }
    for (const auto& [k, v] : other.values_)
      if (!fill_only || values_.count(k) == 0) values_[k] = v;
    for (const auto& [k, v] : other.choices_)
      if (!fill_only || choices_.count(k) == 0) choices_[k] = v;
    for (const auto& [k, v] : other.libraries_) libraries_[k] = v;
  }

  /// The section of a profile file that holds this profile.
  std::string section() const {
    std::ostringstream o;
    o.precision(17);
    o << "[machine " << fingerprint_ << "]\n";
    for (const auto& [k, v] : libraries_) o << "library " << k << ' ' << v << '\n';
    for (const auto& [k, v] : values_) o << k << ' ' << v << '\n';
    for (const auto& [k, a] : choices_) o << "choice " << k << ' ' << to_string(a) << '\n';
    o << "end " << libraries_.size() + values_.size() + choices_.size() << '\n';
    return o.str();
  }

 private:
  static void check_name(const std::string& name, const char* what) {
    bool ok = !name.empty() && name != "choice" && name != "end" && name != "library";
    for (char c : name) ok = ok && c > ' ' && c < 127 && c != '[' && c != ']';
    if (!ok) throw error(std::string(what) + " '" + name + "' must be one printable word");
  }

  std::string fingerprint_;
  std::map<std::string, double> values_;
  std::map<std::string, algorithm> choices_;
  std::map<std::string, std::string> libraries_;
};

namespace detail {

inline std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      std::string m = colon == std::string::npos ? line : line.substr(colon + 1);
      while (!m.empty() && m.front() == ' ') m.erase(m.begin());
      for (char& c : m)
        if (c == ' ') c = '_';
      return m;
    }
  return "unknown";
}

/// Each backend's library in this program, "<prefix>=<version>" (e.g. "fft=fftw-3.3.10"); filled
/// by the backends when they register (backend.hpp).
inline std::vector<std::string (*)()>& library_parts() {
  static std::vector<std::string (*)()> parts;
  return parts;
}

/// One parsed section of a profile file.
struct profile_section {
  std::string fingerprint, text;  ///< text: the section's lines, header included
};

/// The sections of a profile file's text. Throws convkit::error naming `path` and the line for text
/// that is not a profile (corrupt) or a section without its end line (truncated).
inline std::vector<profile_section> parse_profile_file(const std::string& text, const std::string& path) {
  std::vector<profile_section> sections;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  bool open = false;
  std::size_t entries = 0;
  const auto fail = [&](const std::string& why) {
    throw error("profile '" + path + "' line " + std::to_string(number) + ": " + why);
  };
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("[machine ", 0) == 0) {
      if (open) fail("a section without its end line (truncated?)");
      if (line.back() != ']') fail("a section header without ']'");
      sections.push_back({line.substr(9, line.size() - 10), line + "\n"});
      open = true;
      entries = 0;
      continue;
    }
    if (!open) fail("an entry outside a [machine ...] section");
    std::istringstream words(line);
    std::string first, second, third, extra;
    words >> first >> second >> third >> extra;
    if (first == "end") {
      if (second.empty() || !third.empty() || second.find_first_not_of("0123456789") != std::string::npos ||
          std::stoull(second) != entries)
        fail("an end line that does not count the section's entries (truncated?)");
      sections.back().text += line + "\n";
      open = false;
      continue;
    }
    if (first == "library") {
      if (third.empty() || !extra.empty()) fail("a library line is 'library <prefix> <version>'");
    } else if (first == "choice") {
      if (third.empty() || !extra.empty()) fail("a choice line is 'choice <key> <algorithm>'");
      if (third != "direct" && third != "im2col" && third != "fft" && third != "cufft")
        fail("unknown algorithm '" + third + "'");
    } else {
      if (second.empty() || !third.empty()) fail("a value line is '<name> <number>'");
      char* end = nullptr;
      const double v = std::strtod(second.c_str(), &end);
      if (end == second.c_str() || *end != '\0' || !std::isfinite(v)) fail("'" + second + "' is not a finite number");
    }
    ++entries;
    sections.back().text += line + "\n";
  }
  if (open) fail("the last section has no end line (truncated?)");
  return sections;
}

/// The profile of one section's text (already validated by parse_profile_file).
inline cost_profile profile_of(const profile_section& s) {
  cost_profile p(s.fingerprint);
  std::istringstream in(s.text);
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string first, second, third;
    words >> first >> second >> third;
    if (first == "end") break;
    if (first == "library") {
      p.set_library(second, third);
    } else if (first == "choice") {
      const algorithm a = third == "direct"   ? algorithm::direct
                          : third == "im2col" ? algorithm::im2col
                          : third == "fft"    ? algorithm::fft
                                              : algorithm::cufft;
      p.set_choice(second, a);
    } else {
      p.set_value(first, std::strtod(second.c_str(), nullptr));
    }
  }
  return p;
}

inline bool read_file(const std::string& path, std::string& text) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream o;
  o << f.rdbuf();
  text = o.str();
  return !f.bad();
}

/// Creates every missing folder of `path`'s parent; false if one cannot be made.
inline bool make_parent_folders(const std::string& path) {
  for (std::size_t at = path.find('/', 1); at != std::string::npos; at = path.find('/', at + 1)) {
    const std::string dir = path.substr(0, at);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  return true;
}

/// Holds an exclusive flock() on a file for its lifetime.
class file_lock {
 public:
  explicit file_lock(const std::string& path) : fd_(::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644)) {
    if (fd_ < 0) throw error("profile: cannot open the lock file '" + path + "': " + std::strerror(errno));
    while (::flock(fd_, LOCK_EX) != 0)
      if (errno != EINTR) {
        ::close(fd_);
        throw error("profile: cannot lock '" + path + "': " + std::strerror(errno));
      }
  }
  ~file_lock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
  file_lock(const file_lock&) = delete;
  file_lock& operator=(const file_lock&) = delete;

 private:
  int fd_;
};

}  // namespace detail

/// This machine and build, as a profile's fingerprint: one line of key=value words.
inline std::string machine_fingerprint() {
  std::string f = "cpu=" + detail::cpu_model() + " isa=" +
                  (cpu::best_instruction_set() == cpu::isa::avx512 ? "avx512"
                   : cpu::best_instruction_set() == cpu::isa::avx2 ? "avx2"
                                                                   : "portable") +
                  " threads=" + std::to_string(std::max(1u, std::thread::hardware_concurrency())) +
                  " convkit=" CONVKIT_VERSION_STRING;
  return f;
}

/// Each backend's library in this program: prefix of its profile values -> version.
inline std::map<std::string, std::string> program_libraries() {
  std::map<std::string, std::string> libraries;
  for (auto part : detail::library_parts()) {
    const std::string p = part();
    const auto eq = p.find('=');
    if (eq != std::string::npos) libraries[p.substr(0, eq)] = p.substr(eq + 1);
  }
  return libraries;
}

/// Where the profile file lives: $CONVKIT_PROFILE, else $XDG_CACHE_HOME/convkit/profile.txt, else
/// $HOME/.cache/convkit/profile.txt (else convkit-profile.txt in the working folder).
inline std::string profile_path() {
  if (const char* p = std::getenv("CONVKIT_PROFILE"); p != nullptr && *p != '\0') return p;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x == '/')
    return std::string(x) + "/convkit/profile.txt";
  if (const char* h = std::getenv("HOME"); h != nullptr && *h == '/')
    return std::string(h) + "/.cache/convkit/profile.txt";
  return "convkit-profile.txt";
}

namespace detail {
/// This machine's section of the profile file at `path` (found: whether there is one) without the
/// values of a backend whose library this program has in another version, with one notice naming
/// them. Throws like read_profile().
inline cost_profile read_section(const std::string& path, const std::string& fingerprint, bool& found) {
  std::string text;
  found = false;
  if (!read_file(path, text)) throw error("profile '" + path + "' cannot be read: " + std::strerror(errno));
  for (const auto& s : parse_profile_file(text, path)) {
    if (s.fingerprint != fingerprint) continue;
    found = true;
    cost_profile p = profile_of(s);
    const std::map<std::string, std::string> here = program_libraries();
    std::string stale;
    for (const auto& [prefix, version] : std::map<std::string, std::string>(p.libraries())) {
      const auto it = here.find(prefix);
      if (it == here.end() || it->second == version) continue;
      stale += (stale.empty() ? "" : ", ") + prefix + " (measured with " + version + ", here " + it->second + ")";
      p.drop_values(prefix);
    }
    if (!stale.empty())
      notify("convkit: profile '" + path + "': values measured with another library version are not used: " + stale +
             " (run convkit_calibrate)");
    return p;
  }
  return cost_profile(fingerprint);
}
}  // namespace detail

/// This machine's section of the profile file at `path`, or an empty profile with this machine's
/// fingerprint if the file has none, without the values of a backend whose library this program has
/// in another version than the section records (one notice names them). Throws convkit::error
/// naming the path for a file that cannot be read or is not a profile (corrupt or truncated).
inline cost_profile read_profile(const std::string& path, const std::string& fingerprint = machine_fingerprint()) {
  bool found;
  return detail::read_section(path, fingerprint, found);
}

/// How write_profile() treats the values the file already holds for this machine.
enum class profile_write {
  replace,  ///< the written profile's entries win (a full calibration, a measured choice)
  fill      ///< only entries the file lacks are added (a quick calibration: a full one's values stay)
};

/// Writes `p` as its machine's section of the profile file at `path` (creating its folders),
/// merged with what that section already holds (cost_profile::merge: p's entries win, or with
/// profile_write::fill the file's) and keeping every other machine's section, atomically (a
/// temporary file in the same folder, renamed over the file) while holding an exclusive lock on
/// `path` + ".lock". A file that is not a profile is replaced. Throws convkit::error naming the path
/// if it cannot be written.
inline void write_profile(const cost_profile& p, const std::string& path = profile_path(),
                          profile_write how = profile_write::replace) {
  if (!detail::make_parent_folders(path)) throw error("profile '" + path + "': cannot create its folder");
  detail::file_lock lock(path + ".lock");
  std::string old;
  std::vector<detail::profile_section> sections;
  if (detail::read_file(path, old)) {
    try {
      sections = detail::parse_profile_file(old, path);
    } catch (const error& e) {
      detail::notify(std::string("convkit: replacing a profile that could not be read: ") + e.what());
    }
  }
  cost_profile mine(p.fingerprint());
  std::string text =
      "# convkit cost profile: written by convkit_calibrate and choice_rule::measure, read by\n"
      "# algorithm::automatic. One section per machine; values are the cost models' constants.\n";
  for (const auto& s : sections) {
    if (s.fingerprint == p.fingerprint())
      mine = detail::profile_of(s);
    else
      text += s.text;
  }
  mine.merge(p, how == profile_write::fill);
  text += mine.section();
  static std::atomic<unsigned> counter{0};
  const std::string temp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  {
    std::ofstream f(temp, std::ios::binary | std::ios::trunc);
    f << text;
    f.flush();
    if (!f) {
      std::remove(temp.c_str());
      throw error("profile '" + path + "' cannot be written (" + temp + ")");
    }
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(temp.c_str());
    throw error("profile '" + path + "' cannot be replaced: " + why);
  }
}

namespace detail {
class active_profile_slot {
 public:
  static std::shared_ptr<const cost_profile> get() {
    std::lock_guard<std::mutex> lock(mutex());
    std::shared_ptr<const cost_profile>& p = value();
    if (!p) p = std::make_shared<const cost_profile>(load());
    return p;
  }
  static void set(std::shared_ptr<const cost_profile> p) {
    std::lock_guard<std::mutex> lock(mutex());
    value() = std::move(p);
  }

 private:
  static cost_profile load() {
    const std::string path = profile_path(), fingerprint = machine_fingerprint();
    if (::access(path.c_str(), F_OK) != 0) {
      notify("convkit: no cost profile at '" + path +
             "': automatic uses the built-in constants (run convkit_calibrate)");
      return cost_profile(fingerprint);
    }
    try {
      bool found;
      cost_profile p = read_section(path, fingerprint, found);
      if (!found) notify("convkit: the profile '" + path + "' has no section for this machine (" + fingerprint + ")");
      return p;
    } catch (const std::exception& e) {
      notify(std::string("convkit: ignoring the cost profile: ") + e.what());
      return cost_profile(fingerprint);
    }
  }
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

/// Replaces the active profile for plans made from now on; null: read the profile file again on
/// next use.
inline void set_active_profile(std::shared_ptr<const cost_profile> p) {
  detail::active_profile_slot::set(std::move(p));
}

CONVKIT_NAMESPACE_END
