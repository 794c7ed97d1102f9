// algorithm::automatic: the profile file (round trip, two writers, files it must ignore), its lazy
// loading from many threads, the measured choice, non-finite data and borders, and that no profile
// can change a result beyond the chosen backend's error bound.
#include <convkit/calibrate.hpp>
#include <convkit/convkit.hpp>
#include <convkit/profile.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "fft_error.hpp"
#include "problems.hpp"

namespace convkit::testing {
namespace {

/// A profile file of this test's own, in the working folder, for one scope: CONVKIT_PROFILE points to
/// it, the active profile is read again from it, and both are restored afterwards. The name carries
/// the process id because CTest runs this program twice at once (test_automatic and
/// test_automatic_threads) in the same folder, and one process's cleanup must not remove the other's.
class scoped_profile_file {
 public:
  explicit scoped_profile_file(const std::string& name) : path_(std::to_string(::getpid()) + "." + name) {
    std::remove(path_.c_str());
    const char* old = std::getenv("CONVKIT_PROFILE");
    if (old != nullptr) saved_ = old, had_ = true;
    ::setenv("CONVKIT_PROFILE", path_.c_str(), 1);
    set_active_profile(nullptr);
  }
  ~scoped_profile_file() {
    if (had_)
      ::setenv("CONVKIT_PROFILE", saved_.c_str(), 1);
    else
      ::unsetenv("CONVKIT_PROFILE");
    set_active_profile(nullptr);
    std::remove(path_.c_str());
    std::remove((path_ + ".lock").c_str());
  }
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_, saved_;
  bool had_ = false;
};

std::vector<std::string>& notices() {
  static std::vector<std::string> n;
  return n;
}
void collect(const std::string& message) { notices().push_back(message); }

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

}  // namespace

TEST_CASE("profile: a written profile reads back the same, other machines' sections kept", "[automatic][profile]") {
  scoped_profile_file file("convkit_test_roundtrip.txt");
  cost_profile p(machine_fingerprint());
  p.set_value("direct.avx2.t1.k3", 1.25e10);
  p.set_value("fft.transform_unit", 3.0e-10);
  p.set_choice("f32/some/problem", algorithm::fft);
  cost_profile other("cpu=elsewhere isa=portable threads=64");
  other.set_value("direct.portable.t1.k3", 7.0);
  write_profile(other, file.path());
  write_profile(p, file.path());
  const cost_profile back = read_profile(file.path());
  CHECK(back.fingerprint() == p.fingerprint());
  CHECK(back.values() == p.values());
  CHECK(back.choices() == p.choices());
  CHECK(read_profile(file.path(), other.fingerprint()).values() == other.values());
  // A later write merges: entries it has win, the others stay.
  cost_profile more(machine_fingerprint());
  more.set_value("fft.transform_unit", 4.0e-10);
  more.set_value("im2col.lower_s", 2.0e-10);
  write_profile(more, file.path());
  const cost_profile merged = read_profile(file.path());
  CHECK(merged.value("fft.transform_unit") == 4.0e-10);
  CHECK(merged.value("direct.avx2.t1.k3") == 1.25e10);
  CHECK(merged.value("im2col.lower_s") == 2.0e-10);
  CHECK(merged.choice("f32/some/problem") == algorithm::fft);
  // Values keep every digit.
  cost_profile exact(machine_fingerprint());
  exact.set_value("x.y", 0.1 + 0.2);
  write_profile(exact, file.path());
  CHECK(read_profile(file.path()).value("x.y") == 0.1 + 0.2);
  CHECK_THROWS_AS(p.set_value("two words", 1.0), error);
  CHECK_THROWS_AS(p.set_value("a.b", std::numeric_limits<double>::infinity()), error);
}

TEST_CASE("profile: a quick calibration's write only fills in; another library version's values go",
          "[automatic][profile]") {
  scoped_profile_file file("convkit_test_fill.txt");
  cost_profile full(machine_fingerprint());
  full.set_library("zz", "lib-1");
  full.set_value("zz.rate", 1.0);
  full.set_value("zz.unit", 2.0);
  write_profile(full, file.path());
  cost_profile quick(machine_fingerprint());
  quick.set_library("zz", "lib-1");
  quick.set_value("zz.rate", 5.0);
  quick.set_value("zz.extra", 3.0);
  write_profile(quick, file.path(), profile_write::fill);
  cost_profile back = read_profile(file.path());
  CHECK(back.value("zz.rate") == 1.0);  // the full calibration's value stays
  CHECK(back.value("zz.unit") == 2.0);
  CHECK(back.value("zz.extra") == 3.0);  // what it lacked is filled in
  write_profile(quick, file.path());     // replace: the new value wins
  CHECK(read_profile(file.path()).value("zz.rate") == 5.0);
  // A write measured with another version of the library: the old version's values go, even when
  // only filling in.
  cost_profile upgraded(machine_fingerprint());
  upgraded.set_library("zz", "lib-2");
  upgraded.set_value("zz.extra", 4.0);
  write_profile(upgraded, file.path(), profile_write::fill);
  back = read_profile(file.path());
  CHECK(back.value("zz.extra") == 4.0);
  CHECK(!back.value("zz.rate"));
  CHECK(!back.value("zz.unit"));
  CHECK(back.libraries().at("zz") == "lib-2");
  // Reading: values measured with another version of a library this program has are not used (one
  // notice names them); a library the program lacks keeps its values for programs that have it.
  const std::map<std::string, std::string> here = program_libraries();
  if (here.empty()) return;  // a program without optional backends has no library to disagree with
  const std::string prefix = here.begin()->first;
  cost_profile stale(machine_fingerprint());
  stale.set_library(prefix, "another-version");
  stale.set_value(prefix + ".some_rate", 7.0);
  write_profile(stale, file.path());
  notices().clear();
  const notice_handler previous = set_notice_handler(&collect);
  back = read_profile(file.path());
  set_notice_handler(previous);
  CHECK(!back.value(prefix + ".some_rate"));
  CHECK(back.value("zz.extra") == 4.0);
  REQUIRE(notices().size() == 1);
  CHECK(notices()[0].find(prefix + " (measured with another-version") != std::string::npos);
}

TEST_CASE("profile: two processes writing at once lose nothing", "[automatic][profile]") {
  scoped_profile_file file("convkit_test_two_writers.txt");
  constexpr int writes = 40;
  const std::string fingerprint = machine_fingerprint();
  std::vector<pid_t> children;
  for (int who = 0; who < 2; ++who) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int failed = 0;
      for (int i = 0; i < writes; ++i) {
        cost_profile p(fingerprint);
        p.set_value("writer" + std::to_string(who) + ".entry" + std::to_string(i), double(i));
        try {
          write_profile(p, file.path());
        } catch (...) {
          ++failed;
        }
      }
      ::_exit(failed == 0 ? 0 : 1);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  const cost_profile p = read_profile(file.path());
  CHECK(p.values().size() == std::size_t(2 * writes));
  for (int who = 0; who < 2; ++who)
    for (int i = 0; i < writes; ++i)
      CHECK(p.value("writer" + std::to_string(who) + ".entry" + std::to_string(i)) == double(i));
}

TEST_CASE("profile: a missing, corrupt, truncated or foreign profile gives the built-in constants and one notice",
          "[automatic][profile]") {
  scoped_profile_file file("convkit_test_bad_profile.txt");
  const notice_handler previous = set_notice_handler(&collect);
  cost_profile good(machine_fingerprint());
  good.set_value("direct.avx2.t1.k3", 1e10);
  good.set_value("fft.transform_unit", 1e-10);
  const std::string section = good.section();
  const std::vector<std::pair<std::string, std::string>> bad{
      {"missing", ""},
      {"corrupt", section.substr(0, section.find('\n') + 1) + "fft.transform_unit not-a-number\nend 1\n"},
      {"truncated", section.substr(0, section.rfind("end"))},
      {"cut in a line", section.substr(0, section.find("fft.transform_unit") + 5)},
      {"foreign", "[machine cpu=elsewhere isa=portable threads=64]\nfft.transform_unit 1e-10\nend 1\n"},
      {"binary", std::string("\0\x01\x02[machine", 11)},
  };
  for (const auto& [what, text] : bad) {
    INFO(what);
    notices().clear();
    std::remove(file.path().c_str());
    if (what != "missing") write_text(file.path(), text);
    set_active_profile(nullptr);
    std::shared_ptr<const cost_profile> p;
    CHECK_NOTHROW(p = active_profile());
    CHECK(p->values().empty());
    CHECK(notices().size() == 1);
    active_profile();  // read once: no second notice
    CHECK(notices().size() == 1);
    // automatic still works on the built-in constants.
    CHECK_NOTHROW(conv2d(array2d<float>(32, 32), array2d<float>(3, 3)));
  }
  // The good profile is read without a notice.
  notices().clear();
  write_text(file.path(), section);
  set_active_profile(nullptr);
  CHECK(active_profile()->value("fft.transform_unit") == 1e-10);
  CHECK(notices().empty());
  set_notice_handler(previous);
}

TEST_CASE("profile: 8 threads making their first automatic plans at once read it once", "[automatic][threads]") {
  scoped_profile_file file("convkit_test_first_use.txt");
  cost_profile good(machine_fingerprint());
  good.set_value("direct.call_s", 1e-6);
  write_profile(good, file.path());
  set_active_profile(nullptr);
  std::vector<std::thread> threads;
  std::vector<const cost_profile*> seen(8);
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      const array2d<float> img(40 + t, 33), k(5, 5);
      options o;
      o.threads = 1;
      const array2d<float> out = conv2d(img, k, o);
      if (out.rows() != 44 + t) ++wrong;
      seen[std::size_t(t)] = active_profile().get();
    });
  for (auto& th : threads) th.join();
  CHECK(wrong == 0);
  for (const cost_profile* p : seen) CHECK(p == seen[0]);
  CHECK(seen[0]->value("direct.call_s") == 1e-6);
}

TEST_CASE("calibrate: measures constants for every backend, quickly, and automatic uses them",
          "[automatic][calibrate]") {
  scoped_profile_file file("convkit_test_calibrate.txt");
  calibration_options opt;
  opt.quick = true;
  int steps = 0;
  opt.progress = [&](const std::string&) { ++steps; };
  const cost_profile p = calibrate(opt);
  CHECK(steps >= 1);
  CHECK(p.fingerprint() == machine_fingerprint());
  CHECK(p.value("direct.call_s").has_value());
  for (const auto& [name, value] : p.values()) {
    INFO(name);
    CHECK(std::isfinite(value));
  }
  write_profile(p, file.path());
  set_active_profile(nullptr);
  CHECK(active_profile()->values() == p.values());
}

#if defined(CONVKIT_HAS_FFTW)
TEST_CASE("measure: the first call times the candidates and the slowed one loses", "[automatic][measure]") {
  scoped_profile_file file("convkit_test_measure.txt");
  // A shape whose two candidates are close: direct and fft at a medium kernel.
  array2d<float> img(300, 280), k(21, 21);
  std::mt19937_64 rng(run_seed() ^ 0x3ea);
  fill_random(img.view(), rng);
  fill_random(k.view(), rng);
  options o;
  o.mode = output::same;
  o.threads = 1;
  o.tune.choice = choice_rule::measure;
  for (algorithm slowed : {algorithm::direct, algorithm::fft}) {
    INFO("slowed: " << to_string(slowed));
    detail::choice_memory::instance().clear();
    detail::injected_slowdown() = {slowed, 1000.0};
    plan<float> p(img.rows(), img.cols(), k, o);
    detail::injected_slowdown() = {};
    CHECK(p.chosen() != slowed);
    // Remembered: the same problem again makes the same choice without timing (no slowdown now).
    CHECK(plan<float>(img.rows(), img.cols(), k, o).chosen() == p.chosen());
  }
  // The choice went to the profile file under the problem's key, with its algorithm.
  const cost_profile saved = read_profile(file.path());
  CHECK(saved.choices().size() >= 1);
  // One-shot calls measure on their own data, and the result is right.
  detail::choice_memory::instance().clear();
  const array2d<float> got = conv2d(img, k, o);
  const array2d<double> want = reference::conv2d<float>(img, k, o);
  double worst = 0;
  for (index_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got.data()[i] - want.data()[i]));
  CHECK(worst < 1e-3);
}
#endif

TEST_CASE("automatic: a non-finite or overflowing constant border never goes to an FFT backend", "[automatic][nan]") {
  for (double value : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                       -std::numeric_limits<double>::infinity(), 1e300}) {
    INFO("edge_value " << value);
    for (index_t k : {5, 41}) {  // 41: fft's size for finite data
      options o;
      o.mode = output::same;
      o.edge = border::constant;
      o.edge_value = value;
      const algorithm a = plan<float>(120, 120, array2d<float>(k, k), o).chosen();
      CHECK(a != algorithm::fft);
      CHECK(a != algorithm::cufft);
      // Interior outputs read no border: finite.
      array2d<float> img(120, 120), kernel(k, k);
      for (index_t i = 0; i < img.size(); ++i) img.data()[i] = 1.0f;
      for (index_t i = 0; i < kernel.size(); ++i) kernel.data()[i] = 1.0f / float(k * k);
      const array2d<float> out = conv2d(img, kernel, o);
      CHECK(std::isfinite(out(60, 60)));
    }
  }
}

TEST_CASE("automatic: an automatic plan keeps a NaN in its input local", "[automatic][nan]") {
  // The plan may pick an FFT backend for finite data; meeting a NaN, it computes the call with a
  // backend that keeps NaN where the definition puts it.
  array2d<float> img(96, 96), k(41, 41);
  std::mt19937_64 rng(run_seed() ^ 0x7a7);
  fill_random(img.view(), rng);
  fill_random(k.view(), rng);
  options o;
  o.threads = 1;
  plan<float> p(img.rows(), img.cols(), k, o);
  array2d<float> clean = p(img);
  img(50, 50) = std::numeric_limits<float>::quiet_NaN();
  const array2d<float> out = p(img);
  index_t wrong = 0;
  for (index_t r = 0; r < out.rows(); ++r)
    for (index_t c = 0; c < out.cols(); ++c) {
      const bool reads_nan = r >= 50 && r < 50 + 41 && c >= 50 && c < 50 + 41;
      wrong += std::isnan(out(r, c)) != reads_nan;
    }
  CHECK(wrong == 0);
  img(50, 50) = 0.0f;
  clean = p(img);  // and finite input goes back to the plan's own backend
  for (index_t i = 0; i < clean.size(); ++i) CHECK(std::isfinite(clean.data()[i]));
}

TEST_CASE("automatic: no profile changes a result beyond the chosen backend's error bound", "[automatic][profile]") {
  // Profiles that make each backend look far cheaper than it is: whatever automatic then picks must
  // still compute the function within that backend's bound.
  const std::string fingerprint = machine_fingerprint();
  std::vector<std::shared_ptr<const cost_profile>> profiles;
  for (double fft_scale : {1e-6, 1e6}) {
    auto p = std::make_shared<cost_profile>(fingerprint);
    p->set_value("fft.transform_unit", 3e-10 * fft_scale);
    p->set_value("fft.element_unit", 1e-9 * fft_scale);
    p->set_value("fft.batch_scale", 1.0 / fft_scale);
    p->set_value("im2col.gemm_macs_per_s", 1e20 * fft_scale);
    p->set_value("direct.call_s", 1e-6);
    profiles.push_back(p);
  }
  std::mt19937_64 rng(run_seed() ^ 0x9f1);
  for (const auto& profile : profiles)
    for (conv_case c : conv_grid(front_door::image, 16)) {
      c.algo = algorithm::automatic;
      c.tune.profile = profile;
      const algorithm chosen =
          plan<double>(c.rows, c.cols, array2d<double>(c.k_rows, c.k_cols), c.image_opt()).chosen();
      check_case<double>(c, rng, call_conv2d<double>{}, error_of<double>(chosen, c));
    }
}

}  // namespace convkit::testing
