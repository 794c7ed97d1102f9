// convkit_calibrate: measures this machine for algorithm::automatic and saves the profile where
// automatic finds it (profile_file.hpp: $CONVKIT_PROFILE, else the user's cache folder). A value
// measured implausible twice (a machine too busy to measure, or a model that does not fit it) is not
// saved: the profile's previous value stays, and the tool says which values it kept.
//
//   convkit_calibrate                 under a minute
//   convkit_calibrate --quick         a few seconds; fills in only what the profile lacks (its
//                                     timings are short, so a full calibration's values stay)
//   convkit_calibrate --threads N     the thread count measured besides 1 (default: all)
//   convkit_calibrate --output PATH   write there instead
//   convkit_calibrate --print         also print the profile's section
#include <convkit/calibrate.hpp>
#include <convkit/convkit.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

int main(int argc, char** argv) {
  convkit::calibration_options opt;
  std::string path = convkit::profile_path();
  bool print = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      opt.quick = true;
    } else if (a == "--print") {
      print = true;
    } else if (a == "--threads" && i + 1 < argc) {
      opt.threads = std::atoi(argv[++i]);
    } else if (a == "--output" && i + 1 < argc) {
      path = argv[++i];
    } else {
      std::fprintf(a == "--help" || a == "-h" ? stdout : stderr,
                   "usage: %s [--quick] [--threads N] [--output PATH] [--print]\n", argv[0]);
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  // im2col is measured with one GEMM per convkit thread, as a program that opts in runs it
  // (tuning::single_threaded_blas): this tool may make its own OpenBLAS single-threaded.
  {
    convkit::tuning blas;
    blas.single_threaded_blas = true;
    convkit::set_default_tuning(blas);
  }
  const auto start = std::chrono::steady_clock::now();
  opt.progress = [&](const std::string& step) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "[%5.1f s] %s\n", s, step.c_str());
  };
  try {
    std::fprintf(stderr, "convkit_calibrate: %s\n", convkit::machine_fingerprint().c_str());
    try {
      opt.previous = std::make_shared<const convkit::cost_profile>(convkit::read_profile(path));
    } catch (const convkit::error&) {  // no profile yet, or one that is not: the built-in constants
    }
    const convkit::calibration_result r = convkit::calibrate(opt);
    convkit::write_profile(r.profile, path, opt.quick ? convkit::profile_write::fill : convkit::profile_write::replace);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "convkit_calibrate: %zu constants measured in %.1f s, %s %s\n", r.profile.values().size(), s,
                 opt.quick ? "the ones it lacked written to" : "written to", path.c_str());
    if (!r.rejected.empty()) {
      std::fprintf(stderr,
                   "convkit_calibrate: %zu value(s) measured implausible twice (the machine too busy to measure, "
                   "or a model that does not fit it) are not saved; kept instead:\n",
                   r.rejected.size());
      for (const convkit::rejected_constant& x : r.rejected)
        std::fprintf(stderr, "  %s: measured %.4g and %.4g, kept %.4g (%s)\n", x.name.c_str(), x.first, x.second,
                     x.kept, x.kept_previous ? "the profile's previous value" : "built in");
    }
    if (print) std::fputs(convkit::profile_section(r.profile).c_str(), stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "convkit_calibrate: %s\n", e.what());
    return 1;
  }
  return 0;
}
