// Concurrent conv2d calls on different shapes from 8 threads, through every runnable backend and
// automatic; every result is checked. CI also runs this program under ThreadSanitizer.
#include <convkit/convkit.hpp>

#include <atomic>

#if defined(__unix__)
#include <sys/wait.h>
#include <unistd.h>
#endif
#include <thread>

#include "count_allocations.hpp"
#include "problems.hpp"

namespace convkit::testing {

TEST_CASE("8 threads convolve different shapes at once", "[threads]") {
  std::vector<algorithm> algos;
  for (algorithm a : {algorithm::automatic, algorithm::direct, algorithm::im2col, algorithm::fft, algorithm::cufft}) {
    options o;
    o.algo = a;
    try {
      plan<float>(4, 4, array2d<float>(2, 2), o);
      algos.push_back(a);
    } catch (const unavailable&) {
    }
  }
  const std::vector<conv_case> grid = conv_grid(front_door::image, 0);
  check_concurrently(grid.size(), 8, run_seed(), [&](std::size_t i, std::mt19937_64& rng) -> std::string {
    conv_case c = grid[i];
    c.algo = algos[i % algos.size()];
    c.threads = 1 + int(i % 2);  // some calls fork threads of their own
    const options o = c.image_opt();
    array2d<double> in(c.rows, c.cols), k(c.k_rows, c.k_cols);
    fill_random(in.view(), rng);
    fill_random(k.view(), rng);
    const array2d<double> got = conv2d(in, k, o);
    const array2d<double> want = reference::conv2d<double>(in, k, o);
    const array2d<double> mag = reference::conv2d<double>(in, k, o, true);
    for (index_t j = 0; j < got.size(); ++j)
      if (!(std::abs(got.data()[j] - want.data()[j]) <= 1e-9 * (mag.data()[j] + 1)))
        return c.describe() + " via " + to_string(c.algo);
    return {};
  });
}

}  // namespace convkit::testing

namespace convkit::testing {

TEST_CASE("a thread count beyond the hardware's allocates for the threads that run, and computes alike", "[threads]") {
  std::mt19937_64 rng(run_seed());
  const auto random = [&](index_t rows, index_t cols) {
    array2d<float> a(rows, cols);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (index_t i = 0; i < a.size(); ++i) a.data()[i] = u(rng);
    return a;
  };
  options o;
  o.mode = output::same;  // banded: each thread extends its band of rows into its own buffer
  o.algo = algorithm::direct;
  o.threads = 10000;
  {  // 3000 x 3000 * 64 x 64 once allocated a band for each of 9216 threads: 7.5 GB
    const array2d<float> kernel = random(64, 64);
    largest_allocation = 0;
    const plan<float> p(3000, 3000, kernel.view(), o);
    CHECK(largest_allocation.load() <= std::size_t(detail::hardware_threads()) * (std::size_t(2) << 20));
  }
  const array2d<float> image = random(300, 257), kernel = random(9, 9);
  const array2d<float> many = conv2d(image, kernel, o);
  o.threads = 1;
  const array2d<float> one = conv2d(image, kernel, o);
  CHECK(std::equal(many.data(), many.data() + many.size(), one.data()));
}

TEST_CASE("parallel_for covers its range exactly once, from any number of callers", "[threads]") {
  const auto cover = [](index_t n, int threads) {
    std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
    detail::parallel_for(n, threads, [&](index_t b, index_t e) {
      for (index_t i = b; i < e; ++i) ++hits[static_cast<std::size_t>(i)];
    });
    for (auto& h : hits)
      if (h.load() != 1) return false;
    return true;
  };
  for (index_t n : {0, 1, 2, 7, 100})
    for (int threads : {1, 2, 3, 8}) CHECK(cover(n, threads));
  std::atomic<int> ok{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 50; ++rep) ok += cover(64, 2) ? 1 : 0;
    });
  for (auto& c : callers) c.join();
  CHECK(ok == 200);
}

TEST_CASE("parallel_for rethrows the first exception after every slice finished", "[threads]") {
  std::atomic<int> finished{0};
  CHECK_THROWS_WITH(detail::parallel_for(4, 4,
                                         [&](index_t b, index_t) {
                                           ++finished;
                                           if (b >= 2) throw error("slice failed");
                                         }),
                    "slice failed");
  CHECK(finished == 4);
  std::atomic<int> calls{0};
  detail::parallel_for(10, 2, [&](index_t, index_t) { ++calls; });  // the pool still works afterwards
  CHECK(calls >= 1);
}

#if defined(__unix__)
TEST_CASE("a child made by fork() after the pool started still runs parallel loops", "[threads]") {
  detail::parallel_for(8, 2, [](index_t, index_t) {});  // the pool has started
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    alarm(10);  // a hang (waiting for workers the child does not have) ends in SIGALRM
    std::atomic<int> sum{0};
    detail::parallel_for(100, 2, [&](index_t b, index_t e) { sum += int(e - b); });
    _exit(sum == 100 ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
#endif

}  // namespace convkit::testing
