// algorithm::automatic: the profile file (round trip, two writers, files it must ignore), its lazy
// loading from many threads, the measured choice, non-finite data and borders, and that no profile
// can change a result beyond the chosen backend's error bound.
#include <convkit/calibrate.hpp>
#include <convkit/convkit.hpp>
#include <convkit/profile.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
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

/// For its scope, one backend's executors take `factor` times as long as they would: each execute
/// runs the real executor, then waits (factor - 1) times what that took. Its row in the backend table
/// is replaced by a copy whose factories wrap the real ones.
class slowed_backend {
 public:
  slowed_backend(algorithm a, double factor)
      : slot_(detail::backend_table()[std::size_t(a)]), original_(slot_), real_(*slot_) {
    real() = &real_;
    slowdown() = factor;
    slowed_ = real_;
    slowed_.make_float = &make<float>;
    slowed_.make_double = &make<double>;
    slot_ = &slowed_;
  }
  ~slowed_backend() { slot_ = original_; }
  slowed_backend(const slowed_backend&) = delete;
  slowed_backend& operator=(const slowed_backend&) = delete;

 private:
  template <class T>
  struct slow_executor final : detail::executor<T> {
    std::unique_ptr<detail::executor<T>> inner;
    void execute(detail::planes<const T> in, detail::planes<T> out) override {
      using clock = std::chrono::steady_clock;
      const auto t0 = clock::now();
      inner->execute(in, out);
      const auto until = t0 + (clock::now() - t0) * slowdown();
      while (clock::now() < until) {
      }
    }
  };
  template <class T>
  static std::unique_ptr<detail::executor<T>> make(const detail::conv_problem& p, const T* w, const T* b) {
    auto e = std::make_unique<slow_executor<T>>();
    e->inner = real()->template factory<T>()(p, w, b);
    return e;
  }
  static const detail::backend*& real() {
    static const detail::backend* r = nullptr;
    return r;
  }
  static double& slowdown() {
    static double f = 1;
    return f;
  }

  const detail::backend*& slot_;
  const detail::backend* original_;
  detail::backend real_, slowed_;
};

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

}  // namespace

TEST_CASE("profile: a written profile reads back the same, other machines' sections kept", "[automatic][profile]") {
  scoped_profile_file file("convkit_test_roundtrip.txt");
  cost_profile p(machine_fingerprint());
  p.direct.of(cpu::isa::avx2).one_thread[1].measure(1.25e10);
  p.fft.transform_unit.measure(3.0e-10);
  p.set_choice("f32/some/problem", algorithm::fft);
  CHECK(p.value("direct.avx2.t1.k3") == 1.25e10);  // the same constant by its name
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
  more.fft.transform_unit.measure(4.0e-10);
  more.im2col.lower_s.measure(2.0e-10);
  write_profile(more, file.path());
  const cost_profile merged = read_profile(file.path());
  CHECK(merged.value("fft.transform_unit") == 4.0e-10);
  CHECK(merged.value("direct.avx2.t1.k3") == 1.25e10);
  CHECK(merged.value("im2col.lower_s") == 2.0e-10);
  CHECK(merged.choice("f32/some/problem") == algorithm::fft);
  // Values keep every digit.
  cost_profile exact(machine_fingerprint());
  exact.fft.element_unit.measure(0.1 + 0.2);
  write_profile(exact, file.path());
  CHECK(read_profile(file.path()).fft.element_unit == 0.1 + 0.2);
  CHECK_THROWS_AS(p.set_value("two words", 1.0), error);
  CHECK_THROWS_AS(p.set_value("fft.no_such_constant", 1.0), error);
  CHECK_THROWS_AS(p.set_value("fft.call_s", std::numeric_limits<double>::infinity()), error);
}

TEST_CASE("profile: every constant has one name, a built-in value in its range, and survives the file",
          "[automatic][profile]") {
  scoped_profile_file file("convkit_test_every_constant.txt");
  cost_profile p(machine_fingerprint());
  std::map<std::string, int> names;
  double next = 1.0;
  cost_profile::for_each_constant(p, [&](const std::string& name, constant& c) {
    INFO(name);
    ++names[name];
    CHECK(!c.measured());
    CHECK(c.value() == c.builtin());
    CHECK((c.builtin() == 0 || (c.builtin() >= c.low() && c.builtin() <= c.high())));
    c.measure(next += 0.125);  // a distinct value each
  });
  for (const auto& [name, count] : names) {
    INFO(name);
    CHECK(count == 1);
  }
  CHECK(p.values().size() == names.size());
  write_profile(p, file.path());
  const cost_profile back = read_profile(file.path());
  CHECK(back.values() == p.values());
  // An unknown name in the file (an older version's) is left out, with one notice; the rest is read.
  std::string text = profile_section(p);
  text.insert(text.find('\n') + 1, "fft.tile.128 1e-9\n");
  text.replace(text.rfind("end ") + 4, std::string::npos, std::to_string(names.size() + 1) + "\n");
  write_text(file.path(), text);
  notices().clear();
  const notice_handler previous = set_notice_handler(&collect);
  CHECK(read_profile(file.path()).values() == p.values());
  set_notice_handler(previous);
  REQUIRE(notices().size() == 1);
  CHECK(notices()[0].find("fft.tile.128") != std::string::npos);
}

TEST_CASE("profile: a quick calibration's write only fills in; another library version's values go",
          "[automatic][profile]") {
  scoped_profile_file file("convkit_test_fill.txt");
  // "direct" has no library in this program, so the versions below are the profile's own affair.
  cost_profile full(machine_fingerprint());
  full.set_library("direct", "lib-1");
  full.direct.call_s.measure(1.0);
  full.direct.threads.measure(2.0);
  write_profile(full, file.path());
  cost_profile quick(machine_fingerprint());
  quick.set_library("direct", "lib-1");
  quick.direct.call_s.measure(5.0);
  quick.direct.of(cpu::isa::avx2).layer_scale.measure(3.0);
  write_profile(quick, file.path(), profile_write::fill);
  cost_profile back = read_profile(file.path());
  CHECK(back.direct.call_s == 1.0);  // the full calibration's value stays
  CHECK(back.direct.threads == 2.0);
  CHECK(back.direct.of(cpu::isa::avx2).layer_scale == 3.0);  // what it lacked is filled in
  write_profile(quick, file.path());                         // replace: the new value wins
  CHECK(read_profile(file.path()).direct.call_s == 5.0);
  // A write measured with another version of the library: the old version's values go, even when
  // only filling in.
  cost_profile upgraded(machine_fingerprint());
  upgraded.set_library("direct", "lib-2");
  upgraded.direct.of(cpu::isa::avx2).layer_scale.measure(4.0);
  write_profile(upgraded, file.path(), profile_write::fill);
  back = read_profile(file.path());
  CHECK(back.direct.of(cpu::isa::avx2).layer_scale == 4.0);
  CHECK(!back.direct.call_s.measured());
  CHECK(!back.direct.threads.measured());
  CHECK(back.libraries().at("direct") == "lib-2");
  // Reading: values measured with another version of a library this program has are not used (one
  // notice names them); a library the program lacks keeps its values for programs that have it.
  const std::map<std::string, std::string> here = program_libraries();
  if (here.empty()) return;  // a program without optional backends has no library to disagree with
  const std::string prefix = here.begin()->first;
  cost_profile stale(machine_fingerprint());
  stale.set_library(prefix, "another-version");
  std::string stale_name;  // the first constant of that backend
  cost_profile::for_each_constant(stale, [&](const std::string& name, constant& c) {
    if (stale_name.empty() && name.rfind(prefix + ".", 0) == 0) c.measure(0.5), stale_name = name;
  });
  REQUIRE(!stale_name.empty());
  write_profile(stale, file.path());
  notices().clear();
  const notice_handler previous = set_notice_handler(&collect);
  back = read_profile(file.path());
  set_notice_handler(previous);
  CHECK(!back.value(stale_name));
  CHECK(back.direct.of(cpu::isa::avx2).layer_scale == 4.0);
  REQUIRE(notices().size() == 1);
  CHECK(notices()[0].find(prefix + " (measured with another-version") != std::string::npos);
}

TEST_CASE("profile: two processes writing at once lose nothing", "[automatic][profile]") {
  scoped_profile_file file("convkit_test_two_writers.txt");
  constexpr int writes = 40;
  const std::string fingerprint = machine_fingerprint();
  std::vector<std::string> names;  // writer w's i-th value goes to names[w * writes + i]
  const cost_profile all;
  cost_profile::for_each_constant(all, [&](const std::string& name, const constant&) { names.push_back(name); });
  REQUIRE(names.size() >= std::size_t(2 * writes));
  std::vector<pid_t> children;
  for (int who = 0; who < 2; ++who) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int failed = 0;
      for (int i = 0; i < writes; ++i) {
        cost_profile p(fingerprint);
        p.set_value(names[std::size_t(who * writes + i)], double(i + 1));
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
    for (int i = 0; i < writes; ++i) CHECK(p.value(names[std::size_t(who * writes + i)]) == double(i + 1));
}

TEST_CASE("profile: a missing, corrupt, truncated or foreign profile gives the built-in constants and one notice",
          "[automatic][profile]") {
  scoped_profile_file file("convkit_test_bad_profile.txt");
  const notice_handler previous = set_notice_handler(&collect);
  cost_profile good(machine_fingerprint());
  good.set_value("direct.avx2.t1.k3", 1e10);
  good.set_value("fft.transform_unit", 1e-10);
  const std::string section = profile_section(good);
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
  good.direct.call_s.measure(1e-6);
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
  CHECK(seen[0]->direct.call_s.measured());
  CHECK(seen[0]->direct.call_s == 1e-6);
}

TEST_CASE("calibrate: measures constants for every backend, quickly, and automatic uses them",
          "[automatic][calibrate]") {
  scoped_profile_file file("convkit_test_calibrate.txt");
  calibration_options opt;
  opt.quick = true;
  int steps = 0;
  opt.progress = [&](const std::string&) { ++steps; };
  const calibration_result r = calibrate(opt);
  const cost_profile& p = r.profile;
  CHECK(steps >= 1);
  CHECK(p.fingerprint() == machine_fingerprint());
  CHECK(p.value("direct.call_s").has_value());
  // Every backend's calibration is registered (calibrate.hpp includes them) and ran.
  const auto measured_any = [&](const std::string& prefix) {
    const std::map<std::string, double> values = p.values();
    return std::any_of(values.begin(), values.end(), [&](const auto& v) { return v.first.rfind(prefix, 0) == 0; });
  };
  CHECK(measured_any("direct."));
#if defined(CONVKIT_HAS_FFTW)
  CHECK(measured_any("fft."));
#endif
#if defined(CONVKIT_HAS_BLAS)
  CHECK(measured_any("im2col."));
#endif
  for (const auto& [name, value] : p.values()) {
    INFO(name);
    CHECK(std::isfinite(value));
  }
  cost_profile::for_each_constant(p, [&](const std::string& name, const constant& c) {
    INFO(name << " = " << c.value());
    CHECK(c.plausible());
  });
  write_profile(p, file.path());
  set_active_profile(nullptr);
  CHECK(active_profile()->values() == p.values());
}

TEST_CASE("calibrate: an implausible value is measured again, then the previous or built-in one kept",
          "[automatic][calibrate]") {
  // A direct model whose two-thread rate comes out 20x below its one-thread rate (as a calibration on
  // a busy machine measured), and a scale far outside its range.
  const auto measured = [](double all_threads, double grouped) {
    direct_costs m;
    m.threads.measure(2);
    direct_costs::isa_rates& r = m.of(cpu::isa::avx2);
    r.one_thread[3].measure(4e10);
    r.all_threads[3].measure(all_threads);
    r.grouped_layer_scale.measure(grouped);
    return m;
  };
  const direct_costs sane = measured(7e10, 1.3), busy = measured(2e9, 0.005);
  CHECK(detail::implausible(sane, &detail::direct_broken_rules) ==
        std::vector<bool>(detail::constants_of(sane).size()));
  direct_costs previous;
  previous.of(cpu::isa::avx2).all_threads[3].measure(6e10);
  {  // implausible, then plausible: the second measurement is kept, nothing reported
    detail::calibration c(true, 2, {});
    int runs = 0;
    const direct_costs m = detail::measure_plausibly(
        c, previous, [&] { return ++runs == 1 ? busy : sane; }, &detail::direct_broken_rules);
    CHECK(runs == 2);
    CHECK(m.of(cpu::isa::avx2).all_threads[3] == 7e10);
    CHECK(m.of(cpu::isa::avx2).grouped_layer_scale == 1.3);
    CHECK(c.rejected().empty());
  }
  {  // implausible twice: the previous value where there is one, else the built-in one; both reported
    detail::calibration c(true, 2, {});
    const direct_costs m = detail::measure_plausibly(
        c, previous, [&] { return busy; }, &detail::direct_broken_rules);
    CHECK(m.of(cpu::isa::avx2).all_threads[3] == 6e10);
    CHECK(m.of(cpu::isa::avx2).all_threads[3].measured());
    CHECK(!m.of(cpu::isa::avx2).grouped_layer_scale.measured());
    CHECK(m.of(cpu::isa::avx2).one_thread[3] == 4e10);  // plausible: kept as measured
    REQUIRE(c.rejected().size() == 2);
    std::map<std::string, rejected_constant> r;
    for (const rejected_constant& x : c.rejected()) r[x.name] = x;
    CHECK(r.at("direct.avx2.tn.k7").kept_previous);
    CHECK(r.at("direct.avx2.tn.k7").first == 2e9);
    CHECK(!r.at("direct.avx2.grouped_layer_scale").kept_previous);
    CHECK(r.at("direct.avx2.grouped_layer_scale").kept == 1.0);
  }
  {  // each constant plausible in one run, the two together not: the pair's rule is kept all the same
    const auto rates = [&](double one, double all) {
      direct_costs m = sane;
      m.of(cpu::isa::avx2).one_thread[3].measure(one);
      m.of(cpu::isa::avx2).all_threads[3].measure(all);
      return m;
    };
    // First run: one thread's rate 1e12 is far above the built-in one (implausible), all threads'
    // 1.5e12 agrees with it; second run: 4e10 and 7e10. Merged: 4e10 and 1.5e12.
    const direct_costs wild = rates(1e12, 1.5e12), calm = rates(4e10, 7e10);
    REQUIRE(detail::implausible(wild, &detail::direct_broken_rules) !=
            std::vector<bool>(detail::constants_of(wild).size()));
    detail::calibration c(true, 2, {});
    int runs = 0;
    const direct_costs m = detail::measure_plausibly(
        c, previous, [&] { return ++runs == 1 ? wild : calm; }, &detail::direct_broken_rules);
    CHECK(runs == 2);
    CHECK(m.of(cpu::isa::avx2).one_thread[3] == 4e10);
    CHECK(!m.of(cpu::isa::avx2).all_threads[3].measured());
    CHECK(detail::implausible(m, &detail::direct_broken_rules) == std::vector<bool>(detail::constants_of(m).size()));
    REQUIRE(c.rejected().size() == 1);
    CHECK(c.rejected()[0].name == "direct.avx2.tn.k7");
  }
}

TEST_CASE("calibrate: under a deliberate load on every core, only plausible values come back",
          "[automatic][calibrate]") {
  std::atomic<bool> stop{false};
  std::vector<std::thread> load;
  for (unsigned i = 0; i < std::max(2u, std::thread::hardware_concurrency()); ++i)
    load.emplace_back([&] {
      volatile double x = 1;
      while (!stop.load(std::memory_order_relaxed)) x = x * 1.0000001 + 1e-9;
    });
  calibration_options opt;
  opt.quick = true;
  const calibration_result r = calibrate(opt);
  stop = true;
  for (auto& t : load) t.join();
  std::ostringstream rejected;
  for (const rejected_constant& x : r.rejected)
    rejected << x.name << ": measured " << x.first << " and " << x.second << ", kept " << x.kept << "\n";
  INFO(rejected.str());
  const auto check_all = [](const auto& costs, auto rules) {
    const std::vector<bool> bad = detail::implausible(costs, rules);
    std::size_t i = 0;
    std::decay_t<decltype(costs)>::visit(costs, [&](const std::string& name, const constant& c) {
      INFO(name << " = " << c.value());
      CHECK(!bad[i++]);
    });
  };
  check_all(r.profile.direct, &detail::direct_broken_rules);
  cost_profile::for_each_constant(r.profile, [&](const std::string& name, const constant& c) {
    INFO(name << " = " << c.value());
    CHECK(c.plausible());
  });
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
    algorithm chosen;
    {
      const slowed_backend slow(slowed, 30.0);
      chosen = plan<float>(img.rows(), img.cols(), k, o).chosen();
    }
    CHECK(chosen != slowed);
    // Remembered: the same problem again makes the same choice without timing (no slowdown now).
    CHECK(plan<float>(img.rows(), img.cols(), k, o).chosen() == chosen);
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
  // backend that keeps NaN where the definition puts it. So must a plan whose choice was measured
  // (on synthetic data: the plan has none of its own), here remembered as the FFT. Normwise: under
  // the accuracy contract the FFT recomputes a window that met a NaN by itself.
  array2d<float> k(41, 41);
  std::mt19937_64 rng(run_seed() ^ 0x7a7);
  fill_random(k.view(), rng);
  std::vector<choice_rule> rules = {choice_rule::estimate};
#if defined(CONVKIT_HAS_FFTW)
  rules.push_back(choice_rule::measure);
#endif
  for (const choice_rule rule : rules) {
    INFO("choice rule " << int(rule));
    array2d<float> img(96, 96);
    fill_random(img.view(), rng);
    options o;
    o.threads = 1;
    o.tune.choice = rule;
    o.accuracy = accuracy::normwise;
    detail::choice_memory::instance().clear();
    if (rule == choice_rule::measure)
      detail::choice_memory::instance().remember_measured(
          detail::choice_fields_of(detail::image_problem<float>(img.rows(), img.cols(), k, o, true)), algorithm::fft);
    plan<float> p(img.rows(), img.cols(), k, o);
    if (rule == choice_rule::measure) CHECK(p.chosen() == algorithm::fft);
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
  detail::choice_memory::instance().clear();
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
