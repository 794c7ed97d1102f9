// convkit/profile_file.hpp - the profile file: where what automatic knows about this machine is kept
// between programs. A component: including this header (<convkit/convkit.hpp> does) makes the
// active profile (profile.hpp) this machine's section of the file, read on first use, and makes
// choice_rule::measure save its choices there. Without it convkit reads no file and no environment
// variable, and automatic uses the built-in constants or the profiles a program gives its plans.
//
//   profile file      plain text, one section per machine fingerprint, that a person can read and diff:
//                       [machine <fingerprint>]
//                       library <backend prefix> <version>
//                       <constant name> <value>            (cost_models.hpp names every constant)
//                       choice <problem key> <algorithm>
//                       end <number of entries>
//                     It lives at $CONVKIT_PROFILE if set, else $XDG_CACHE_HOME/convkit/profile.txt,
//                     else ~/.cache/convkit/profile.txt. convkit_calibrate (or calibrate() in
//                     calibrate.hpp, then write_profile) writes it. Writes merge with what the file
//                     holds (the new entries win; a quick calibration's only fill in what is
//                     missing), under a lock file, and replace it atomically (a temporary file,
//                     renamed), so two processes writing at once lose nothing.
//   fingerprint       CPU model, instruction set, hardware threads and convkit's version: a profile
//                     measured elsewhere is not used.
//   reading           a missing, unreadable, corrupt, truncated or foreign file gives the built-in
//                     constants and at most one notice (set_notice_handler), never an exception;
//                     values measured with another library version than this program has, and names
//                     this version does not know, are left out, with one notice.
// POSIX (Linux, macOS): files are locked with flock().
#pragma once

#include "version.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cpu.hpp"
#include "detail/backend.hpp"
#include "profile.hpp"
#include "types.hpp"

CONVKIT_NAMESPACE_BEGIN

/// This machine and build, as a profile's fingerprint: one line of key=value words.
inline std::string machine_fingerprint() {
  std::string model = "unknown";
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      model = colon == std::string::npos ? line : line.substr(colon + 1);
      model.erase(0, model.find_first_not_of(' '));
      std::replace(model.begin(), model.end(), ' ', '_');
      break;
    }
  return "cpu=" + model + " isa=" + detail::enum_name(cpu::best_instruction_set()) +
         " threads=" + std::to_string(std::max(1u, std::thread::hardware_concurrency())) +
         " convkit=" CONVKIT_VERSION_STRING;
}

/// Each backend's library in this program: prefix of its constants' names -> version.
inline std::map<std::string, std::string> program_libraries() {
  std::map<std::string, std::string> libraries;
  for (const detail::backend* b : detail::backend_table()) {
    if (b == nullptr || b->library == nullptr) continue;
    const std::string p = b->library();
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

/// The profile as its machine's section of a profile file.
inline std::string profile_section(const cost_profile& p) {
  std::ostringstream o;
  o.precision(17);
  o << "[machine " << p.fingerprint() << "]\n";
  for (const auto& [k, v] : p.libraries()) o << "library " << k << ' ' << v << '\n';
  const std::map<std::string, double> values = p.values();
  for (const auto& [k, v] : values) o << k << ' ' << v << '\n';
  for (const auto& [k, a] : p.choices()) o << "choice " << k << ' ' << to_string(a) << '\n';
  o << "end " << p.libraries().size() + values.size() + p.choices().size() << '\n';
  return o.str();
}

namespace detail {

/// One section of a profile file, parsed: its profile and the names in it that no constant has.
struct profile_section_read {
  cost_profile profile;
  std::vector<std::string> unknown;
  std::string text;  ///< the section's lines, header included
};

/// The sections of a profile file's text. Throws convkit::error naming `path` and the line for text
/// that is not a profile (corrupt) or a section without its end line (truncated).
inline std::vector<profile_section_read> parse_profile_file(const std::string& text, const std::string& path) {
  std::vector<profile_section_read> sections;
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
      sections.push_back({cost_profile(line.substr(9, line.size() - 10)), {}, line + "\n"});
      open = true;
      entries = 0;
      continue;
    }
    if (!open) fail("an entry outside a [machine ...] section");
    profile_section_read& s = sections.back();
    s.text += line + "\n";
    std::istringstream words(line);
    std::string first, second, third, extra;
    words >> first >> second >> third >> extra;
    if (first == "end") {
      if (second.empty() || !third.empty() || second.find_first_not_of("0123456789") != std::string::npos ||
          std::stoull(second) != entries)
        fail("an end line that does not count the section's entries (truncated?)");
      open = false;
      continue;
    }
    ++entries;
    if (first == "library") {
      if (third.empty() || !extra.empty()) fail("a library line is 'library <prefix> <version>'");
      s.profile.set_library(second, third);
    } else if (first == "choice") {
      if (third.empty() || !extra.empty()) fail("a choice line is 'choice <key> <algorithm>'");
      const std::optional<algorithm> a = enum_parse<algorithm>(third);
      if (!a || *a == algorithm::automatic) fail("unknown algorithm '" + third + "'");
      s.profile.set_choice(second, *a);
    } else {
      if (second.empty() || !third.empty()) fail("a value line is '<name> <number>'");
      char* end = nullptr;
      const double v = std::strtod(second.c_str(), &end);
      if (end == second.c_str() || *end != '\0' || !std::isfinite(v)) fail("'" + second + "' is not a finite number");
      try {
        s.profile.set_value(first, v);
      } catch (const error&) {
        s.unknown.push_back(first);
      }
    }
  }
  if (open) fail("the last section has no end line (truncated?)");
  return sections;
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

/// This machine's section of the profile file at `path` (found: whether there is one) without the
/// values of a backend whose library this program has in another version and without names this
/// version does not know, with one notice naming what was left out. Throws like read_profile().
inline cost_profile read_section(const std::string& path, const std::string& fingerprint, bool& found) {
  std::string text;
  found = false;
  if (!read_file(path, text)) throw error("profile '" + path + "' cannot be read: " + std::strerror(errno));
  for (profile_section_read& s : parse_profile_file(text, path)) {
    if (s.profile.fingerprint() != fingerprint) continue;
    found = true;
    cost_profile& p = s.profile;
    const std::map<std::string, std::string> here = program_libraries();
    std::string left_out;
    for (const auto& [prefix, version] : std::map<std::string, std::string>(p.libraries())) {
      const auto it = here.find(prefix);
      if (it == here.end() || it->second == version) continue;
      left_out += (left_out.empty() ? "" : ", ") + prefix + " (measured with " + version + ", here " + it->second + ")";
      p.drop_values(prefix);
    }
    if (!left_out.empty()) left_out = "values measured with another library version: " + left_out;
    if (!s.unknown.empty()) {
      left_out += std::string(left_out.empty() ? "" : "; ") + "names this version does not know:";
      for (const std::string& n : s.unknown) left_out += " " + n;
    }
    if (!left_out.empty())
      notify("convkit: profile '" + path + "': not used: " + left_out + " (run convkit_calibrate)");
    return p;
  }
  return cost_profile(fingerprint);
}

/// The active profile of a program that includes this component (profile.hpp).
inline cost_profile load_active_profile() {
  const std::string path = profile_path(), fingerprint = machine_fingerprint();
  if (::access(path.c_str(), F_OK) != 0) {
    notify("convkit: no cost profile at '" + path + "': automatic uses the built-in constants (run convkit_calibrate)");
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

}  // namespace detail

/// This machine's section of the profile file at `path`, or a profile of built-in constants with
/// this machine's fingerprint if the file has none, without the values of a backend whose library
/// this program has in another version than the section records and without names this version
/// does not know (one notice names them). Throws convkit::error naming the path for a file that
/// cannot be read or is not a profile (corrupt or truncated).
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
  std::vector<detail::profile_section_read> sections;
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
    if (s.profile.fingerprint() == p.fingerprint())
      mine = s.profile;
    else
      text += s.text;
  }
  mine.merge(p, how == profile_write::fill);
  text += profile_section(mine);
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
/// choice_rule::measure's choice, saved in this machine's section of the profile file.
inline void save_measured_choice(const std::string& key, algorithm chosen) {
  try {
    cost_profile entry(machine_fingerprint());
    entry.set_choice(key, chosen);
    write_profile(entry);
  } catch (const std::exception& e) {
    notify(std::string("convkit: a measured choice was not saved: ") + e.what());
  }
}

#if CONVKIT_BACKEND_IMPLEMENTATION  // in a program built against the compiled library, the library registers it
inline const bool profile_file_registered = register_profile_store({&load_active_profile, &save_measured_choice});
#endif
}  // namespace detail

CONVKIT_NAMESPACE_END
