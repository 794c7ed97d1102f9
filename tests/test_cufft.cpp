// The cuFFT backend end to end on the strict CPU stand-in (cuda_standin.hpp), in CI, without a GPU:
// the shared suite (cufft_suite.hpp: the problem grid, tiles, plan reuse, timing, errors) with leak
// and misuse checks after every test, plus what only the stand-in can observe: transfer counts,
// tiles forced by a small device, failure injection at every call, no device, and the plain C++
// pieces (tile planner, window and output copies) against their definitions.
#include "cuda_standin.hpp"

#include <convkit/convkit.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include "problems.hpp"

namespace convkit::testing {

/// Every test runs on the stand-in and ends with nothing leaked and nothing misused.
class device_session {
 public:
  device_session() = default;
  ~device_session() {
    cufft::release_cached();  // what conv2d calls kept for reuse belongs to this session's stand-in
    for (const std::string& v : standin::violations()) FAIL_CHECK("stand-in violation: " << v);
    const standin::counters& c = standin::stats();
    INFO("device allocs " << c.device_allocs << " frees " << c.device_frees << ", pinned " << c.pinned_allocs << "/"
                          << c.pinned_frees << ", streams " << c.streams_made << "/" << c.streams_destroyed
                          << ", events " << c.events_made << "/" << c.events_destroyed << ", cufft plans "
                          << c.fft_plans_made << "/" << c.fft_plans_destroyed << ", cublas " << c.blas_made << "/"
                          << c.blas_destroyed);
    CHECK(c.balanced());
  }
  device_session(const device_session&) = delete;
  device_session& operator=(const device_session&) = delete;

 private:
  standin::scope scope_;
};

}  // namespace convkit::testing

#include "cufft_suite.hpp"

namespace convkit::testing {
namespace {

/// Cases automatic may send to cufft: the FFT's normwise bound (under the accuracy contract automatic
/// never chooses cufft).
conv_case small_case(border edge = border::zero) {
  conv_case c = image_case(40, 30, 5, 4);
  c.accuracy = accuracy::normwise;
  c.mode = output::same;
  c.edge = edge;
  c.edge_value = 0.25;
  return c;
}

TEST_CASE("stand-in: device memory is closed to host code, and results exist only after synchronising", "[standin]") {
  device_session session;
  const detail::cuda_api& api = standin::api();
  detail::gpu_handle<void*> device = detail::device_alloc(api, 256);
  // A host read of device memory kills the process that tries it.
  const pid_t child = fork();
  if (child == 0) {
    std::signal(SIGSEGV, SIG_DFL);  // not Catch's handler: die of it
    volatile const float* p = static_cast<const float*>(device.get());
    const float x = *p;
    _exit(x == x ? 0 : 1);  // not reached
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGSEGV);

  // Queued work runs at synchronisation: before it, the destination still holds the stand-in's NaN.
  detail::gpu_handle<void*> up = detail::pinned_alloc(api, 256), down = detail::pinned_alloc(api, 256);
  cudaStream_t raw = nullptr;
  REQUIRE(api.stream_create_with_flags(&raw, cudaStreamNonBlocking) == cudaSuccess);
  detail::gpu_handle<cudaStream_t> stream(api, raw,
                                          [](const detail::cuda_api& a, cudaStream_t s) { a.stream_destroy(s); });
  static_cast<float*>(up.get())[0] = 1.5f;
  REQUIRE(api.memcpy_2d_async(device.get(), 4, up.get(), 4, 4, 1, cudaMemcpyHostToDevice, raw) == cudaSuccess);
  REQUIRE(api.memcpy_2d_async(down.get(), 4, device.get(), 4, 4, 1, cudaMemcpyDeviceToHost, raw) == cudaSuccess);
  static_cast<float*>(up.get())[0] = 2.5f;  // a pinned source rewritten before the copy ran: the copy sends 2.5
  CHECK(std::isnan(static_cast<const float*>(down.get())[0]));
  REQUIRE(api.stream_synchronize(raw) == cudaSuccess);
  CHECK(static_cast<const float*>(down.get())[0] == 2.5f);

  // Misuse that real CUDA would not (or not always) catch is refused and recorded.
  std::vector<float> pageable(4);
  CHECK(api.memcpy_2d_async(device.get(), 4, pageable.data(), 4, 4, 1, cudaMemcpyHostToDevice, raw) ==
        cudaErrorInvalidValue);
  CHECK(api.memcpy_2d_async(up.get(), 4, device.get(), 4, 4, 1, cudaMemcpyHostToDevice, raw) == cudaErrorInvalidValue);
  CHECK(api.memcpy_2d_async(device.get(), 4, up.get(), 4, 4, 1, cudaMemcpyHostToDevice, nullptr) ==
        cudaErrorInvalidResourceHandle);
  CHECK(standin::take_violations().size() == 3);
}

TEST_CASE("stand-in: plans are checked against the buffers and the exec function they run with", "[standin]") {
  device_session session;
  const detail::cuda_api& api = standin::api();
  cufftHandle h = 0;
  REQUIRE(api.fft_create(&h) == CUFFT_SUCCESS);
  detail::gpu_handle<cufftHandle> plan(api, h, [](const detail::cuda_api& a, cufftHandle q) { a.fft_destroy(q); });
  int n[2] = {8, 8};
  size_t work = 0;
  REQUIRE(api.fft_make_plan_many(h, 2, n, nullptr, 1, 0, nullptr, 1, 0, CUFFT_R2C, 1, &work) == CUFFT_SUCCESS);
  cudaStream_t raw = nullptr;
  REQUIRE(api.stream_create_with_flags(&raw, cudaStreamNonBlocking) == cudaSuccess);
  detail::gpu_handle<cudaStream_t> stream(api, raw,
                                          [](const detail::cuda_api& a, cudaStream_t s) { a.stream_destroy(s); });
  REQUIRE(api.fft_set_stream(h, raw) == CUFFT_SUCCESS);
  detail::gpu_handle<void*> real = detail::device_alloc(api, 64 * 4), small = detail::device_alloc(api, 8 * 5 * 8 - 8),
                            spectrum = detail::device_alloc(api, 8 * 5 * 8);
  auto* r = static_cast<cufftReal*>(real.get());
  CHECK(api.fft_exec_r2c(h, r, static_cast<cufftComplex*>(small.get())) == CUFFT_INVALID_VALUE);  // output too small
  CHECK(api.fft_exec_c2r(h, static_cast<cufftComplex*>(spectrum.get()), r) == CUFFT_INVALID_TYPE);
  CHECK(api.fft_exec_r2c(h, r, reinterpret_cast<cufftComplex*>(r)) == CUFFT_INVALID_VALUE);  // in place, unpadded
  CHECK(api.fft_exec_r2c(h, r, static_cast<cufftComplex*>(spectrum.get())) == CUFFT_SUCCESS);
  CHECK(standin::take_violations().size() == 3);
}

TEST_CASE("cufft transfers: two per plain convolution, none with device pointers, plan work done once",
          "[cufft][transfers]") {
  device_session session;
  const standin::counters& n = standin::stats();
  std::mt19937_64 rng(run_seed() + 701);
  for (border edge : {border::zero, border::reflect}) {
    const conv_case c = small_case(edge);
    array2d<float> in(c.rows, c.cols), k(c.k_rows, c.k_cols), out(c.rows, c.cols);
    fill_random(in.view(), rng);
    fill_random(k.view(), rng);
    const standin::counters made = n;
    cufft::plan<float> p(c.rows, c.cols, k, c.image_opt());
    REQUIRE(p.tiles() == 1);
    // At construction: the kernel, and for zero/constant borders the fill vector of device inputs.
    CHECK(n.copies_to_device - made.copies_to_device == (edge == border::zero ? 2 : 1));
    CHECK(n.copies_to_host == made.copies_to_host);
    CHECK(n.streams_made - made.streams_made == 1);
    const standin::counters before = n;
    const long long records = standin::calls_of("cudaEventRecord");
    for (int round = 1; round <= 3; ++round) {
      p.execute(in, out);
      CHECK(n.copies_to_device - before.copies_to_device == round);
      CHECK(n.copies_to_host - before.copies_to_host == round);
      CHECK(n.transforms - before.transforms == 2 * round);
      CHECK(n.products - before.products == round);
    }
    CHECK(standin::calls_of("cudaEventRecord") == records);  // no timing asked
    CHECK(n.device_allocs == before.device_allocs);
    CHECK(n.pinned_allocs == before.pinned_allocs);
    CHECK(n.fft_plans_made == before.fft_plans_made);
    {
      cufft::device_array<float> din(c.rows, c.cols), dout(c.rows, c.cols);
      din.upload(in);
      const standin::counters device_before = n;
      p.execute_device(din.view(), dout.view());
      CHECK(n.transfers() == device_before.transfers());
      CHECK(n.copies_on_device > device_before.copies_on_device);
      CHECK(n.device_allocs == device_before.device_allocs);
    }
    // Forced tiles: one transfer each way per tile, through two slots on two streams.
    cufft::config tiled;
    tiled.tile_rows = 16;
    tiled.tile_cols = 16;
    const long long streams1 = n.streams_made;
    cufft::plan<float> pt(c.rows, c.cols, k, with_gpu_fft(c.image_opt(), tiled));
    CHECK(pt.tiles() == 6);
    CHECK(n.streams_made - streams1 == 2);
    const standin::counters tiled_before = n;
    pt.execute(in, out);
    CHECK(n.copies_to_device - tiled_before.copies_to_device == 6);
    CHECK(n.copies_to_host - tiled_before.copies_to_host == 6);
  }
}

TEST_CASE("cufft on a device smaller than the image: tiles from cudaMemGetInfo, within its memory", "[cufft][tiles]") {
  const size_t limit = size_t(3) << 20;
  device_session session;
  standin::set_device_limit(limit);
  std::mt19937_64 rng(run_seed() + 702);
  conv_case c = image_case(700, 600, 15, 15);
  c.mode = output::same;
  c.edge = border::symmetric;
  {
    const cufft::plan<float> p(c.rows, c.cols, array2d<float>(15, 15), c.image_opt());
    CHECK(p.tiles() > 1);
    // The untiled transform alone would need more than the whole device.
    const detail::conv_problem g = problem_of<float>(c);
    CHECK(detail::fft::next_fast_size(g.rows.extent) * detail::fft::next_fast_size(g.cols.extent) * 4 * 3 >
          index_t(limit));
  }
  run_case<float>(c, rng, entry::plan_host);
  run_case<float>(c, rng, entry::conv2d);
  // Within the cap: 80% of the device (cudaMalloc itself refuses anything beyond the limit).
  CHECK(standin::stats().device_peak_bytes <= static_cast<long long>(limit / 5 * 4));
}

/// One plan made and run every way (timed, on host views and on device memory), with tiles on two
/// slots: every entry point the backend uses is called.
void every_call_once() {
  const conv_case c = small_case(border::constant);
  array2d<float> in(c.rows, c.cols), k(c.k_rows, c.k_cols), out(c.rows, c.cols);
  cufft::config tiled;
  tiled.tile_rows = 24;
  cufft::plan<float> p(c.rows, c.cols, k, with_gpu_fft(c.image_opt(), tiled));
  cufft::timing t;
  p.execute(in, out, &t);
  cufft::device_array<float> din(c.rows, c.cols), dout(c.rows, c.cols);
  din.upload(in);
  p.execute_device(din.view(), dout.view(), &t);
  cufft::plan<double> pd(c.rows, c.cols, array2d<double>(2, 3), c.image_opt());
  array2d<double> ind(c.rows, c.cols), outd(c.rows, c.cols);
  pd.execute(ind, outd);
  // A layer in each precision: its batched transforms and channel sums.
  layer_options lo;
  lo.algo = algorithm::cufft;
  lo.pad_rows = lo.pad_cols = 1;
  lo.groups = 2;
  const std::vector<float> bias{0.5f, -1.0f};
  layer_plan<float> lp({2, 4, 9, 7}, array4d<float>(2, 2, 3, 3), bias.data(), lo);
  array4d<float> lout(2, 2, 9, 7);
  lp.execute(array4d<float>(2, 4, 9, 7), lout);
  layer_options ld = lo;
  ld.groups = 1;
  (void)conv2d<double>(array4d<double>(1, 2, 6, 6), array4d<double>(3, 2, 2, 2), nullptr, ld);
  // A single plane through the layer front door: the single-plane engine, with its bias.
  (void)conv2d<float>(array4d<float>(1, 1, 9, 7), array4d<float>(1, 1, 3, 3), bias.data(), ld);
}

TEST_CASE("cufft failure injection: each failing call throws an error naming it, and nothing leaks",
          "[cufft][failures]") {
  std::map<std::string, long long> calls;
  {
    device_session session;
    every_call_once();
    calls = standin::calls();
  }
  for (const char* expected : {"cudaGetDeviceCount",
                               "cudaMemGetInfo",
                               "cudaMalloc",
                               "cudaMallocHost",
                               "cudaMemcpy2DAsync",
                               "cudaStreamCreateWithFlags",
                               "cudaStreamSynchronize",
                               "cudaEventCreate",
                               "cudaEventRecord",
                               "cudaEventElapsedTime",
                               "cufftCreate",
                               "cufftSetAutoAllocation",
                               "cufftMakePlanMany",
                               "cufftSetWorkArea",
                               "cufftSetStream",
                               "cufftExecR2C",
                               "cufftExecC2R",
                               "cufftExecD2Z",
                               "cufftExecZ2D",
                               "cublasCreate",
                               "cublasSetStream",
                               "cublasCdgmm",
                               "cublasZdgmm",
                               "cublasCgemmStridedBatched",
                               "cublasZgemmStridedBatched"})
    CHECK(calls.count(expected) == 1);
  long long injected = 0;
  for (const auto& [call, count] : calls) {
    for (long long nth = 1; nth <= count; ++nth) {
      INFO("call " << nth << " of " << count << " to " << call << " fails");
      device_session session;
      standin::fail_call(call, nth);
      bool thrown = false;
      try {
        every_call_once();
      } catch (const error& e) {
        thrown = true;
        CHECK_THAT(e.what(), Catch::Contains(call + " failed: "));
      } catch (const unavailable& e) {
        thrown = true;
        CHECK(call == "cudaGetDeviceCount");
        CHECK_THAT(e.what(), Catch::Contains("cudaGetDeviceCount returned cudaErrorInsufficientDriver"));
        CHECK_THAT(e.what(), Catch::Contains("no NVIDIA GPU driver found"));
      }
      CHECK(thrown);
      ++injected;
    }
  }
  CHECK(injected > 100);
}

/// The largest difference between `out` and the double reference of in (*) k under o.
template <class T>
double worst_error(const array2d<T>& in, const array2d<T>& k, const array2d<T>& out, const options& o) {
  const array2d<double> want = reference::conv2d<double>(in, k, o);
  double worst = 0;
  for (index_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs(double(out.data()[i]) - want.data()[i]));
  return worst;
}

TEST_CASE("cufft: a plan still works after a failed execute", "[cufft][failures]") {
  device_session session;
  std::mt19937_64 rng(run_seed() + 703);
  const conv_case c = small_case(border::circular);
  array2d<double> in(c.rows, c.cols), k(c.k_rows, c.k_cols), out(c.rows, c.cols);
  fill_random(in.view(), rng);
  fill_random(k.view(), rng);
  cufft::config tiled;
  tiled.tile_rows = 10;
  cufft::plan<double> p(c.rows, c.cols, k, with_gpu_fft(c.image_opt(), tiled));
  standin::fail_call("cufftExecZ2D", standin::calls_of("cufftExecZ2D") + 3);
  CHECK_THROWS_WITH(p.execute(in, out), Catch::Contains("cufftExecZ2D failed: CUFFT_EXEC_FAILED"));
  standin::clear_failures();
  p.execute(in, out);
  CHECK(worst_error(in, k, out, c.image_opt()) < 1e-12);
}

/// Workspaces of type W in the process-wide cache (cufft::default_cache()).
template <class W>
std::size_t cached() {
  return cufft::default_cache().count<W>();
}

/// No cuFFT plan, device or pinned buffer, stream or cuBLAS handle made since `before`.
void check_nothing_made_since(const standin::counters& before) {
  const standin::counters& n = standin::stats();
  CHECK(n.fft_plans_made == before.fft_plans_made);
  CHECK(n.device_allocs == before.device_allocs);
  CHECK(n.pinned_allocs == before.pinned_allocs);
  CHECK(n.streams_made == before.streams_made);
  CHECK(n.blas_made == before.blas_made);
}

TEST_CASE("cufft conv2d calls of one transform size reuse its plans and buffers, each with its own kernel",
          "[cufft][reuse]") {
  device_session session;
  const standin::counters& n = standin::stats();
  std::mt19937_64 rng(run_seed() + 704);
  conv_case c = small_case(border::zero);
  array2d<double> in(c.rows, c.cols), k1(c.k_rows, c.k_cols), k2(c.k_rows, c.k_cols), out(c.rows, c.cols);
  fill_random(in.view(), rng);
  fill_random(k1.view(), rng);
  fill_random(k2.view(), rng);
  options o = c.image_opt();
  o.algo = algorithm::cufft;
  conv2d<double>(in, k1, out, o);
  CHECK(worst_error(in, k1, out, o) < 1e-12);
  CHECK(cached<detail::cufft_workspace<double>>() == 1);
  const standin::counters first = n;
  // Another kernel, then another border with the same transform size: nothing new is made.
  conv2d<double>(in, k2, out, o);
  CHECK(worst_error(in, k2, out, o) < 1e-12);
  o.edge = border::constant;
  o.edge_value = -0.75;
  conv2d<double>(in, k1, out, o);
  CHECK(worst_error(in, k1, out, o) < 1e-12);
  check_nothing_made_since(first);
  CHECK(cached<detail::cufft_workspace<double>>() == 1);

  // Executors alive at once each own one; both are kept afterwards.
  {
    const plan<double> a(c.rows, c.cols, k1, o), b(c.rows, c.cols, k2, o);
    CHECK(cached<detail::cufft_workspace<double>>() == 0);
    CHECK(n.blas_made == first.blas_made + 1);
  }
  CHECK(cached<detail::cufft_workspace<double>>() == 2);

  // At most four sets per precision: more sizes release the oldest.
  for (index_t grow = 1; grow <= 4; ++grow) {
    const array2d<double> bigger(c.rows + 16 * grow, c.cols);
    (void)conv2d<double>(bigger, k1, o);
  }
  CHECK(cached<detail::cufft_workspace<double>>() == 4);
  CHECK(n.blas_destroyed == n.blas_made - 4);

  // A call that fails does not hand its workspace on; the next call of that size works.
  cufft::release_cached();
  CHECK(n.balanced());
  standin::fail_call("cufftExecZ2D", standin::calls_of("cufftExecZ2D") + 1);
  CHECK_THROWS_WITH(conv2d<double>(in, k2, out, o), Catch::Contains("cufftExecZ2D failed"));
  CHECK(cached<detail::cufft_workspace<double>>() == 0);
  conv2d<double>(in, k2, out, o);
  CHECK(worst_error(in, k2, out, o) < 1e-12);
}

/// A small grouped layer with bias (2 images, 4 channels, 6 filters, 2 groups).
conv_case small_layer() {
  conv_case c = layer_case(2, 4, 6, 12, 10, 3, 3, true);
  c.groups = 2;
  c.pad_rows = 1;
  return c;
}

TEST_CASE("cufft layer calls of one shape reuse their plans and buffers, each with its own weights",
          "[cufft][reuse][layers]") {
  device_session session;
  const standin::counters& n = standin::stats();
  std::mt19937_64 rng(run_seed() + 706);
  conv_case c = small_layer();
  run_case<float>(c, rng, entry::conv2d);
  CHECK(cached<detail::cufft_batch_workspace<float>>() == 1);
  const standin::counters first = n;
  // New weights, bias and input each time (check_case draws them): nothing new is made.
  run_case<float>(c, rng, entry::conv2d);
  run_case<float>(c, rng, entry::plan_host);
  check_nothing_made_since(first);
  CHECK(cached<detail::cufft_batch_workspace<float>>() == 1);
  // Another image count per pass is another workspace.
  c.n = 3;
  run_case<float>(c, rng, entry::conv2d);
  CHECK(cached<detail::cufft_batch_workspace<float>>() == 2);
  // A call that fails does not hand its workspace on; the next call of that shape makes a new one.
  layer_options o = c.layer_opt();
  o.algo = algorithm::cufft;
  standin::fail_call("cublasCgemmStridedBatched", standin::calls_of("cublasCgemmStridedBatched") + 1);
  CHECK_THROWS_WITH(conv2d<float>(array4d<float>(3, 4, 12, 10), array4d<float>(6, 2, 3, 3), nullptr, o),
                    Catch::Contains("cublasCgemmStridedBatched failed"));
  CHECK(cached<detail::cufft_batch_workspace<float>>() == 1);
  run_case<float>(c, rng, entry::conv2d);
  CHECK(cached<detail::cufft_batch_workspace<float>>() == 2);
}

/// Workspaces of every kind in `cache`.
std::size_t cached_in(const cufft::workspace_cache& cache) {
  return cache.count<detail::cufft_workspace<float>>() + cache.count<detail::cufft_workspace<double>>() +
         cache.count<detail::cufft_batch_workspace<float>>() + cache.count<detail::cufft_batch_workspace<double>>();
}

TEST_CASE("cufft workspace_cache in options::tune: one-shot calls and plans keep their workspaces there",
          "[cufft][reuse][cache]") {
  device_session session;
  const standin::counters& n = standin::stats();
  const detail::cuda_api& api = standin::api();
  std::mt19937_64 rng(run_seed() + 707);
  cufft::workspace_cache mine;  // destroyed before the session checks for leaks
  cufft::config cfg;
  cfg.cache = &mine;
  conv_case c = small_case(border::reflect);
  c.tune.gpu_fft = cfg;
  conv_case lc = small_layer();
  lc.tune.gpu_fft = cfg;

  // One-shot calls: single planes and layers hand their workspaces to the cache in their tuning.
  run_case<double>(c, rng, entry::conv2d);
  run_case<float>(lc, rng, entry::conv2d);
  CHECK(mine.count<detail::cufft_workspace<double>>() == 1);
  CHECK(mine.count<detail::cufft_batch_workspace<float>>() == 1);
  CHECK(cached_in(mine) == 2);
  CHECK(mine.device_bytes(api) > 0);
  CHECK(n.device_allocs > n.device_frees);  // held, by the cache
  // The process default cache has received nothing.
  CHECK(cached_in(cufft::default_cache()) == 0);
  CHECK(cufft::default_cache().device_bytes(api) == 0);

  // Second calls through the same cache: no new cuFFT plan, nor anything else.
  const standin::counters first = n;
  run_case<double>(c, rng, entry::conv2d);
  run_case<float>(lc, rng, entry::conv2d);
  check_nothing_made_since(first);
  CHECK(cached_in(mine) == 2);
  // convkit::plan and layer_plan take theirs from it too, and give them back when they end.
  {
    options o = c.image_opt();
    o.algo = algorithm::cufft;
    const plan<double> p(c.rows, c.cols, array2d<double>(c.k_rows, c.k_cols), o);
    layer_options lo = lc.layer_opt();
    lo.algo = algorithm::cufft;
    const std::vector<float> bias(std::size_t(lc.k), 0.5f);
    const shape4d w = lc.weights();
    const layer_plan<float> lp(lc.input(), array4d<float>(w.n, w.c, w.h, w.w), bias.data(), lo);
    check_nothing_made_since(first);
    CHECK(cached_in(mine) == 0);
  }
  CHECK(cached_in(mine) == 2);
  CHECK(cached_in(cufft::default_cache()) == 0);
  // A cufft::plan owns its workspace: none goes to the cache.
  { const cufft::plan<double> p(c.rows, c.cols, array2d<double>(c.k_rows, c.k_cols), c.image_opt()); }
  CHECK(cached_in(mine) == 2);

  // release() frees everything the cache holds.
  mine.release();
  CHECK(cached_in(mine) == 0);
  CHECK(mine.device_bytes(api) == 0);
  CHECK(n.balanced());
  // After it, a call plans anew (and keeps its workspace again).
  const long long plans = n.fft_plans_made;
  run_case<double>(c, rng, entry::conv2d);
  CHECK(n.fft_plans_made > plans);
  CHECK(mine.count<detail::cufft_workspace<double>>() == 1);
  CHECK(cached_in(cufft::default_cache()) == 0);
  // Releasing the process cache leaves this one alone.
  cufft::release_cached();
  CHECK(mine.count<detail::cufft_workspace<double>>() == 1);
  mine.release();
  CHECK(n.balanced());
}

TEST_CASE("cufft: a single plane through the layer front door runs on the single-plane engine", "[cufft][layers]") {
  device_session session;
  const standin::counters& n = standin::stats();
  std::mt19937_64 rng(run_seed() + 708);
  conv_case c = layer_case(1, 1, 1, 37, 29, 5, 3, true);
  c.pad_rows = 2;
  c.pad_cols = 1;
  c.stride_cols = 2;
  c.edge = border::reflect;
  const long long gemms =
      standin::calls_of("cublasCgemmStridedBatched") + standin::calls_of("cublasZgemmStridedBatched");
  const long long products = standin::calls_of("cublasCdgmm");
  run_case<float>(c, rng, entry::conv2d);
  CHECK(standin::calls_of("cublasCdgmm") - products == 1);  // one untiled spectrum product...
  run_case<double>(c, rng, entry::plan_host);
  CHECK(cached<detail::cufft_workspace<float>>() == 1);  // ...and the single-plane workspaces
  CHECK(cached<detail::cufft_workspace<double>>() == 1);
  CHECK(cached<detail::cufft_batch_workspace<float>>() == 0);
  CHECK(cached<detail::cufft_batch_workspace<double>>() == 0);
  // Its tiles follow the tuning, as for any single plane (a batch is never tiled).
  cufft::config tiled;
  tiled.tile_rows = 8;
  c.tune.gpu_fft = tiled;
  const standin::counters before = n;
  const long long tiled_products = standin::calls_of("cublasCdgmm");
  run_case<float>(c, rng, entry::conv2d);
  CHECK(n.copies_to_device - before.copies_to_device > 2);  // the kernel, then one per tile
  CHECK(standin::calls_of("cublasCdgmm") - tiled_products > 1);
  CHECK(standin::calls_of("cublasCgemmStridedBatched") + standin::calls_of("cublasZgemmStridedBatched") == gemms);
  // Two images of one channel are a batch: the batch executor's.
  conv_case batch = c;
  batch.n = 2;
  batch.tune.gpu_fft.reset();
  run_case<float>(batch, rng, entry::conv2d);
  CHECK(standin::calls_of("cublasCgemmStridedBatched") > gemms);
  CHECK(cached<detail::cufft_batch_workspace<float>>() == 1);
}

TEST_CASE("cufft::plan makes room in the cache whose memory its cap counted as free", "[cufft][reuse][cache]") {
  // A one-shot call keeps an untiled workspace; a plan of another size, which fits the device but
  // not beside it, must release the cache first (cufft_make_room), not fail in cudaMalloc.
  const size_t limit = size_t(6) << 20;
  device_session session;
  standin::set_device_limit(limit);
  const standin::counters& n = standin::stats();
  std::mt19937_64 rng(run_seed() + 709);
  cufft::config untiled;
  untiled.tiles = cufft::tiling::never;
  cufft::workspace_cache mine;
  for (cufft::workspace_cache* cache : {static_cast<cufft::workspace_cache*>(nullptr), &mine}) {
    cufft::workspace_cache& used = cache != nullptr ? *cache : cufft::default_cache();
    INFO((cache != nullptr ? "a user's cache" : "the process cache"));
    untiled.cache = cache;
    conv_case c = image_case(500, 500, 3, 3);
    c.mode = output::same;
    c.algo = algorithm::cufft;
    c.tune.gpu_fft = untiled;
    array2d<float> k(3, 3);
    fill_random(k.view(), rng);
    (void)conv2d(array2d<float>(512, 512), k, c.image_opt());
    REQUIRE(used.count<detail::cufft_workspace<float>>() == 1);
    REQUIRE(used.device_bytes(standin::api()) > 0);
    const index_t held = index_t(n.device_bytes);  // as cudaMalloc counts it (rounded allocations)
    const detail::conv_problem p = problem_of<float>(c);
    const detail::fft::tile_plan t = detail::cufft_tile_plan(p, 0);
    const index_t need = detail::cufft_device_bytes(t, 4, 1);
    REQUIRE(need <= index_t(limit) / 5 * 4);  // within the cap (80% of the device)...
    REQUIRE(held + need > index_t(limit));    // ...but not beside the cached workspace
    {
      const cufft::plan<float> made(c.rows, c.cols, k, c.image_opt());
      CHECK(made.tiles() == 1);
      CHECK(used.count<detail::cufft_workspace<float>>() == 0);
      CHECK(n.device_peak_bytes <= static_cast<long long>(limit));
    }
    run_case<float>(c, rng, entry::plan_host);  // such a plan computes as it should
  }
}

/// The cufft backend's cost estimate for p, with the built-in constants (an empty profile).
double cufft_cost_of(const detail::conv_problem& p) { return detail::cufft_cost(p, cost_profile{}); }

/// A dense 1-image, 8-channel layer of `size` x `size` with a `kernel` x `kernel` kernel, padded 1.
conv_case layer_on(index_t size, index_t kernel) {
  conv_case c = layer_case(1, 8, 8, size, size, kernel, kernel);
  c.accuracy = accuracy::normwise;
  c.pad_rows = c.pad_cols = 1;
  return c;
}

TEST_CASE("cufft without a device: unavailable with the runtime's reason, never chosen automatically",
          "[cufft][nodevice]") {
  device_session session;
  const conv_case c = small_case();
  const array2d<float> in(c.rows, c.cols), k(c.k_rows, c.k_cols);
  options big;
  big.mode = output::same;
  CHECK(cufft_cost_of(problem_of<float>(small_case())) < detail::never);
  CHECK(cufft_cost_of(problem_of<float>(layer_on(8, 3))) < detail::never);
  // The accuracy contract (automatic's default): cufft does not prove it, so it is never chosen,
  // and asking for it with cufft is refused.
  conv_case contract = small_case();
  contract.accuracy = accuracy::automatic;
  CHECK(cufft_cost_of(problem_of<float>(contract)) == detail::never);
  contract.algo = algorithm::cufft;
  contract.accuracy = accuracy::componentwise;
  CHECK_THROWS_WITH(conv2d(in, k, contract.image_opt()), Catch::Contains("accuracy::componentwise"));
  CHECK_THROWS_WITH(cufft::plan<float>(c.rows, c.cols, k, contract.image_opt()),
                    Catch::Contains("accuracy::componentwise"));
  for (cudaError_t status : {cudaErrorNoDevice, cudaErrorInsufficientDriver}) {
    standin::set_device_status(status);
    const std::string name = cudaGetErrorName(status);
    CHECK_FALSE(cufft::available());
    CHECK_THAT(cufft::unavailable_reason(), Catch::Contains(name));
    CHECK_THROWS_WITH(cufft::plan<float>(c.rows, c.cols, k, c.image_opt()),
                      Catch::Contains("algorithm::cufft: ") && Catch::Contains(name));
    options o = c.image_opt();
    o.algo = algorithm::cufft;
    CHECK_THROWS_AS(conv2d(in, k, o), unavailable);
    CHECK(cufft_cost_of(problem_of<float>(c)) == detail::never);
    CHECK(cufft_cost_of(problem_of<double>(c)) == detail::never);
    CHECK(automatic_choice(9000, 9000, 15, 15, big) != algorithm::cufft);
    o.algo = algorithm::automatic;
    CHECK(conv2d(in, k, o).rows() == c.rows);
    // Layers alike.
    layer_options lo;
    lo.algo = algorithm::cufft;
    CHECK_THROWS_WITH(layer_plan<float>({1, 2, 8, 8}, array4d<float>(2, 2, 3, 3), nullptr, lo),
                      Catch::Contains("algorithm::cufft: ") && Catch::Contains(name));
    // A single plane through the layer front door runs on the single-plane engine: alike.
    CHECK_THROWS_WITH(layer_plan<float>({1, 1, 8, 8}, array4d<float>(1, 1, 3, 3), nullptr, lo),
                      Catch::Contains("algorithm::cufft: ") && Catch::Contains(name));
    CHECK(cufft_cost_of(problem_of<float>(layer_on(8, 3))) == detail::never);
  }
}

/// A profile under which every CPU backend costs a second per call: automatic picks cufft wherever
/// it can serve the problem (its cost model has no profile constants).
std::shared_ptr<const cost_profile> slow_cpu_profile() {
  auto p = std::make_shared<cost_profile>();
  for (constant* c : {&p->direct.call_s, &p->im2col.call_s, &p->fft.call_s}) c->measure(1.0);
  return p;
}

/// True if `got` is NaN or infinite exactly where `want` is (counted in `nonfinite`), and within
/// `tolerance` of it elsewhere.
template <class T>
bool same_nonfinite_pattern(const T* got, const double* want, index_t n, double tolerance, index_t& nonfinite) {
  index_t wrong = 0;
  nonfinite = 0;
  for (index_t i = 0; i < n; ++i) {
    const bool bad = !std::isfinite(want[i]);
    nonfinite += bad;
    if (bad != !std::isfinite(double(got[i])) || (!bad && !(std::abs(double(got[i]) - want[i]) <= tolerance))) ++wrong;
  }
  return wrong == 0;
}

TEST_CASE(
    "cufft under automatic: a NaN or Inf in the input stays where it belongs (windows checked, a fallback computes)",
    "[cufft][nan]") {
  device_session session;
  const standin::counters& n = standin::stats();
  std::mt19937_64 rng(run_seed() + 710);
  // A single plane in tiles (several windows checked), through a plan and a one-shot call.
  options o;
  o.mode = output::same;
  o.edge = border::reflect;
  o.accuracy = accuracy::normwise;  // under the contract automatic never chooses cufft
  o.tune.profile = slow_cpu_profile();
  cufft::config tiled;
  tiled.tile_rows = 24;
  o.tune.gpu_fft = tiled;
  array2d<double> in(96, 80), k(7, 5), out(96, 80);
  fill_random(in.view(), rng);
  fill_random(k.view(), rng);
  plan<double> p(96, 80, k, o);
  REQUIRE(p.chosen() == algorithm::cufft);
  const long long transforms = n.transforms;
  p.execute(in, out);
  CHECK(n.transforms > transforms);  // computed on the (stand-in) GPU
  index_t nans = 0;
  CHECK(same_nonfinite_pattern(out.data(), reference::conv2d<double>(in, k, o).data(), out.size(), 1e-12, nans));
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    INFO("input holds " << bad);
    array2d<double> spoiled = in;
    spoiled(70, 40) = bad;  // in a later tile than the first
    const array2d<double> want = reference::conv2d<double>(spoiled, k, o);
    p.execute(spoiled, out);
    CHECK(same_nonfinite_pattern(out.data(), want.data(), out.size(), 1e-12, nans));
    CHECK(nans > 0);
    CHECK(nans < out.size() / 4);
    options one_shot = o;
    one_shot.tune.gpu_fft.reset();
    conv2d<double>(spoiled, k, out, one_shot);
    CHECK(same_nonfinite_pattern(out.data(), want.data(), out.size(), 1e-12, nans));
    CHECK(nans > 0);
  }
  // The plan still computes finite inputs on the GPU afterwards.
  const long long after = n.transforms;
  p.execute(in, out);
  CHECK(n.transforms > after);
  CHECK(same_nonfinite_pattern(out.data(), reference::conv2d<double>(in, k, o).data(), out.size(), 1e-12, nans));

  // A layer in passes of one image (the memory cap allows no more): the NaN is in the second.
  conv_case c = small_layer();
  c.n = 3;
  c.accuracy = accuracy::normwise;
  c.tune.profile = slow_cpu_profile();
  const detail::conv_problem g = problem_of<double>(c);
  cufft::config one_image;
  one_image.memory_cap = detail::cufft_batch_bytes(g, detail::cufft_batch_tiles(g).layout(), 8).bytes(1);
  c.tune.gpu_fft = one_image;
  array4d<double> input(c.n, c.c, c.rows, c.cols), weights(c.k, c.c / c.groups, c.k_rows, c.k_cols);
  fill_random(input.view(), rng);
  fill_random(weights.view(), rng);
  const std::vector<double> bias(std::size_t(c.k), 0.25);
  layer_plan<double> lp(c.input(), weights, bias.data(), c.layer_opt());
  REQUIRE(lp.chosen() == algorithm::cufft);
  const long long passes = standin::calls_of("cufftExecD2Z");
  array4d<double> lout = lp(input);
  CHECK(standin::calls_of("cufftExecD2Z") - passes == 3);
  CHECK(same_nonfinite_pattern(lout.data(),
                               reference::conv2d<double>(input, weights, bias.data(), c.layer_opt()).data(),
                               lout.size(), 1e-12, nans));
  input(1, 3, 5, 4) = std::numeric_limits<double>::quiet_NaN();
  lout = lp(input);
  CHECK(same_nonfinite_pattern(lout.data(),
                               reference::conv2d<double>(input, weights, bias.data(), c.layer_opt()).data(),
                               lout.size(), 1e-12, nans));
  CHECK(nans > 0);
  CHECK(nans < lout.size() / 3);  // image 1's group 1 only, near the NaN
  layer_options lo = c.layer_opt();
  lo.tune.gpu_fft.reset();
  lout = conv2d<double>(input, weights, bias.data(), lo);
  CHECK(same_nonfinite_pattern(lout.data(),
                               reference::conv2d<double>(input, weights, bias.data(), c.layer_opt()).data(),
                               lout.size(), 1e-12, nans));
  CHECK(nans > 0);
}

TEST_CASE("cufft layer cost: never for 1x1 kernels, non-finite weights or layers beyond the memory cap",
          "[cufft][layers]") {
  device_session session;
  CHECK(cufft_cost_of(problem_of<float>(layer_on(64, 3))) < detail::never);
  CHECK(cufft_cost_of(problem_of<float>(layer_on(64, 1))) == detail::never);
  detail::conv_problem nan = problem_of<float>(layer_on(64, 3));
  nan.finite = false;
  CHECK(cufft_cost_of(nan) == detail::never);
  // 16 MiB of device: a 64x64 layer fits in either precision (the cost counts the problem's), 512x512 not.
  standin::set_device_limit(size_t(16) << 20);
  CHECK(cufft_cost_of(problem_of<float>(layer_on(64, 3))) < detail::never);
  CHECK(cufft_cost_of(problem_of<double>(layer_on(64, 3))) < detail::never);
  CHECK(cufft_cost_of(problem_of<float>(layer_on(512, 3))) == detail::never);
  CHECK(cufft_cost_of(problem_of<double>(layer_on(512, 3))) == detail::never);
  // A memory cap in the problem's tuning. 1 KiB: not one image of the layer fits, nor a double
  // plane's smallest tiles (the cost counts the problem's precision: a float plane's 8x5 tiles fit,
  // and a plan is made with them); 512 bytes: not even those.
  cufft::config capped;
  capped.memory_cap = 1 << 10;
  conv_case capped_layer = layer_on(64, 3);
  capped_layer.tune.gpu_fft = capped;
  conv_case capped_image = small_case();
  capped_image.tune.gpu_fft = capped;
  CHECK(cufft_cost_of(problem_of<float>(capped_layer)) == detail::never);
  CHECK(cufft_cost_of(problem_of<double>(capped_image)) == detail::never);
  CHECK_THROWS_WITH(
      cufft::plan<double>(capped_image.rows, capped_image.cols, array2d<double>(5, 4), capped_image.image_opt()),
      Catch::Contains("memory cap"));
  CHECK(cufft_cost_of(problem_of<float>(capped_image)) < detail::never);
  CHECK(
      cufft::plan<float>(capped_image.rows, capped_image.cols, array2d<float>(5, 4), capped_image.image_opt()).tiles() >
      1);
  capped.memory_cap = 512;
  capped_image.tune.gpu_fft = capped;
  CHECK(cufft_cost_of(problem_of<float>(capped_image)) == detail::never);
  CHECK_THROWS_WITH(
      cufft::plan<float>(capped_image.rows, capped_image.cols, array2d<float>(5, 4), capped_image.image_opt()),
      Catch::Contains("memory cap"));
  // The same cap as the process default reaches problems whose tuning leaves gpu_fft unset, and
  // only those.
  {
    scoped_default_cufft_config scoped(capped);
    CHECK(cufft_cost_of(problem_of<float>(layer_on(64, 3))) == detail::never);
    CHECK(cufft_cost_of(problem_of<float>(small_case())) == detail::never);
    conv_case own = layer_on(64, 3);
    own.tune.gpu_fft = cufft::config{};
    CHECK(cufft_cost_of(problem_of<float>(own)) < detail::never);
    conv_case own_image = small_case();
    own_image.tune.gpu_fft = cufft::config{};
    CHECK(cufft_cost_of(problem_of<float>(own_image)) < detail::never);
  }
  CHECK(cufft_cost_of(problem_of<float>(layer_on(64, 3))) < detail::never);
  CHECK(cufft_cost_of(problem_of<float>(small_case())) < detail::never);
}

TEST_CASE("cufft tile planner: under fake memory caps, tiles cover every output exactly once", "[cufft][planner]") {
  std::vector<conv_case> cases = conv_grid(front_door::image, 32);
  for (const conv_case& c : tile_cases()) cases.push_back(c);
  conv_case wide = image_case(90, 1000, 15, 15);
  wide.stride_cols = 3;
  cases.push_back(wide);
  index_t checked = 0;
  for (conv_case c : cases) {
    c.tune.gpu_fft = cufft::config{};  // automatic tiling, under each cap below
    for (const detail::conv_problem& p : {problem_of<float>(c), problem_of<double>(c)})
      for (index_t cap : {index_t(2) << 10, index_t(20) << 10, index_t(200) << 10, index_t(1) << 30}) {
        const index_t element_bytes = p.element_bytes;
        INFO(c.describe() << ", " << element_bytes << "-byte reals, cap " << cap);
        const detail::fft::tile_plan t = detail::cufft_tile_plan(p, cap);
        const index_t slots = std::min<index_t>(2, t.tiles());
        if (detail::cufft_device_bytes(t, element_bytes, slots) > cap) continue;  // the plan throws instead
        ++checked;
        for (const detail::fft::axis_tiles* a : {&t.rows, &t.cols}) {
          const detail::axis_geometry& g = a == &t.rows ? p.rows : p.cols;
          // No result of a tile reads a wrapped-around element.
          if (!t.circular) CHECK(a->transform >= a->block + g.span - 1);
          // Never larger than one transform of the whole extended input, except the circular
          // shortcut, whose transforms are exactly image-sized (it may exceed a smaller extent).
          if (t.circular)
            CHECK(a->transform == g.in);
          else
            CHECK(a->transform <= detail::fft::next_fast_size(g.extent));
        }
        array2d<int> covered(p.rows.out, p.cols.out);
        for (index_t tr = 0; tr < t.rows.tiles; ++tr)
          for (index_t tc = 0; tc < t.cols.tiles; ++tc) {
            const detail::fft::tile_outputs rows = t.rows.outputs(tr), cols = t.cols.outputs(tc);
            CHECK(rows.local + (rows.count - 1) * t.rows.stride < std::max<index_t>(t.rows.results(tr), 1));
            CHECK(cols.local + (cols.count - 1) * t.cols.stride < std::max<index_t>(t.cols.results(tc), 1));
            for (index_t i = 0; i < rows.count; ++i)
              for (index_t j = 0; j < cols.count; ++j) ++covered(rows.first + i, cols.first + j);
          }
        index_t wrong = 0;
        for (index_t i = 0; i < covered.size(); ++i) wrong += covered.data()[i] != 1;
        CHECK(wrong == 0);
      }
  }
  CHECK(checked > 500);
}

TEST_CASE("cufft layer passes: the most images that fit, evened out, every image in exactly one pass",
          "[cufft][planner]") {
  index_t checked = 0;
  for (const conv_case& c : conv_grid(front_door::layer, 16)) {
    for (index_t n : {index_t(1), index_t(7), index_t(64)}) {
      conv_case x = c;
      x.n = n;
      const detail::conv_problem g = problem_of<float>(x);
      const detail::fft::spectrum_layout l = detail::cufft_batch_tiles(g).layout();
      for (index_t element_bytes : {index_t(4), index_t(8)}) {
        const detail::cufft_batch_memory m = detail::cufft_batch_bytes(g, l, element_bytes);
        for (index_t cap :
             {m.bytes(1) - 1, m.bytes(1), m.bytes(3), m.bytes(5) + m.per_image / 2, m.bytes(n), index_t(1) << 40}) {
          INFO(x.describe() << ", " << element_bytes << "-byte reals, cap " << cap);
          const index_t chunk = detail::cufft_batch_chunk(g, l, element_bytes, cap);
          index_t most = 0;  // by brute force: the most images whose buffers fit
          while (most < n && m.bytes(most + 1) <= cap) ++most;
          if (most == 0) {
            CHECK(chunk == 0);
            continue;
          }
          ++checked;
          CHECK(m.bytes(chunk) <= cap);
          const index_t passes = (n + most - 1) / most;
          CHECK((n + chunk - 1) / chunk == passes);  // no more passes than needed...
          CHECK(chunk * (passes - 1) < n);           // ...and the last one not empty
        }
      }
    }
  }
  CHECK(checked > 300);
  // cuFFT's int sizes bind before memory does: batch * plane elements stay within INT_MAX.
  conv_case wide = layer_on(256, 3);
  wide.n = 64;
  wide.c = wide.k = 1024;
  const detail::conv_problem g = problem_of<float>(wide);
  const detail::fft::spectrum_layout l = detail::cufft_batch_tiles(g).layout();
  CHECK(detail::cufft_batch_chunk(g, l, 4, index_t(1) << 50) == 0);  // the filters' 2^20 planes alone overflow
  wide.groups = 1024;                                                // depthwise: 1024 filter planes
  const detail::conv_problem gd = problem_of<float>(wide);
  const index_t chunk = detail::cufft_batch_chunk(gd, l, 4, index_t(1) << 50);
  CHECK(chunk >= 1);
  CHECK(chunk < wide.n);
  CHECK(double(chunk) * 1024 * double(std::max(l.real_count(), 2 * l.complex_count())) <= double(INT_MAX));
}

TEST_CASE("cufft layers on a device smaller than the batch: passes from cudaMemGetInfo, within its memory",
          "[cufft][layers]") {
  conv_case c = layer_case(5, 4, 6, 32, 32, 3, 3, true);
  c.pad_rows = c.pad_cols = 1;
  c.edge = border::reflect;
  c.groups = 2;
  const detail::conv_problem g = problem_of<float>(c);
  const detail::fft::spectrum_layout l = detail::cufft_batch_tiles(g).layout();
  const detail::cufft_batch_memory m = detail::cufft_batch_bytes(g, l, 4);
  // The cap is 80% of what is free: room for three images, not five.
  const size_t limit = size_t(m.bytes(3) + m.per_image / 2) * 5 / 4;
  device_session session;
  standin::set_device_limit(limit);
  const standin::counters& n = standin::stats();
  std::mt19937_64 rng(run_seed() + 705);
  for (int call = 1; call <= 2; ++call) {
    INFO("call " << call);
    const long long before = standin::calls_of("cufftExecR2C"), plans = n.fft_plans_made;
    run_case<float>(c, rng, entry::conv2d);
    // The filters' transform, then one per pass: 3 + 2 images.
    CHECK(standin::calls_of("cufftExecR2C") - before == 3);
    // The model covers what was allocated; the second call finds the first one's workspace (the
    // memory it holds counts as free) and plans the same passes.
    CHECK(n.device_peak_bytes <= m.bytes(3));
    if (call == 2) CHECK(n.fft_plans_made == plans);
  }
  // One image that does not fit: a clear error, not a failed allocation. (The device shrinks, so
  // first let go of what the calls above kept.)
  cufft::release_cached();
  standin::set_device_limit(size_t(m.bytes(1)) / 2);
  layer_options o = c.layer_opt();
  o.algo = algorithm::cufft;
  CHECK_THROWS_WITH(conv2d<float>(array4d<float>(1, 4, 32, 32), array4d<float>(6, 2, 3, 3), nullptr, o),
                    Catch::Contains("memory cap") && Catch::Contains("algorithm::fft tiles such layers"));
}

TEST_CASE("cufft device-side windows: the block copies rebuild convkit::extend exactly", "[cufft][layout]") {
  std::mt19937_64 rng(run_seed() + 704);
  using from = detail::block_copy::from;
  index_t checked = 0;
  for (border b :
       {border::zero, border::constant, border::replicate, border::reflect, border::symmetric, border::circular})
    for (index_t rows : {1, 2, 7})
      for (index_t cols : {1, 3, 8})
        for (index_t top : {-9, -2, 0, 3, 11})
          for (index_t left : {-5, 0, 1, 6})
            for (index_t win : {1, 4, 13}) {
              INFO(to_string(b) << " input " << rows << "x" << cols << " window " << win << "x" << win + 2 << " at "
                                << top << "," << left);
              array2d<double> in(rows, cols), want(win, win + 2), got(win, win + 2);
              fill_random(in.view(), rng);
              extend<double>(in, want, top, left, b, 0.75);
              std::fill_n(got.data(), got.size(), std::nan(""));
              const std::vector<double> fill(std::size_t(std::max(win, win + 2)), b == border::zero ? 0.0 : 0.75);
              detail::for_each_window_copy(rows, cols, top, left, win, win + 2, b, [&](const detail::block_copy& c) {
                CHECK((c.source != from::fill || c.rows == 1 || c.cols == 1));
                for (index_t i = 0; i < c.rows; ++i)
                  for (index_t j = 0; j < c.cols; ++j) {
                    const double v = c.source == from::input    ? in(c.src_row + i, c.src_col + j)
                                     : c.source == from::window ? got(c.src_row + i, c.src_col + j)
                                                                : fill[std::size_t(i + j)];
                    got(c.dst_row + i, c.dst_col + j) = v;
                  }
              });
              index_t wrong = 0;
              for (index_t i = 0; i < want.size(); ++i) wrong += !(got.data()[i] == want.data()[i]);
              CHECK(wrong == 0);
              ++checked;
            }
  CHECK(checked == 6 * 3 * 3 * 5 * 4 * 3);
}

TEST_CASE("cufft output copies place every (strided) result exactly once", "[cufft][layout]") {
  for (index_t stride_rows : {1, 2, 3})
    for (index_t stride_cols : {1, 2, 3})
      for (index_t count_rows : {1, 4, 9})
        for (index_t count_cols : {1, 5, 2}) {
          const detail::fft::tile_outputs rows{3, count_rows, 1}, cols{2, count_cols, 2};
          const index_t pitch = 40, out_pitch = 20;
          array2d<double> buffer(40, pitch), out(14, out_pitch);
          for (index_t i = 0; i < buffer.size(); ++i) buffer.data()[i] = double(i);
          std::fill_n(out.data(), out.size(), -1.0);
          detail::for_each_output_copy(rows, cols, stride_rows, stride_cols, pitch, out_pitch,
                                       [&](const detail::pitched_copy& c) {
                                         for (index_t r = 0; r < c.height; ++r)
                                           for (index_t e = 0; e < c.width; ++e) {
                                             double& dst = out.data()[c.dst_offset + r * c.dst_pitch + e];
                                             CHECK(dst == -1.0);  // written once
                                             dst = buffer.data()[c.src_offset + r * c.src_pitch + e];
                                           }
                                       });
          for (index_t r = 0; r < out.rows(); ++r)
            for (index_t c = 0; c < out_pitch; ++c) {
              const bool inside =
                  r >= rows.first && r < rows.first + count_rows && c >= cols.first && c < cols.first + count_cols;
              const double want = inside ? buffer(rows.local + (r - rows.first) * stride_rows,
                                                  cols.local + (c - cols.first) * stride_cols)
                                         : -1.0;
              CHECK(out(r, c) == want);
            }
        }
}

TEST_CASE("cufft errors name the call and the status", "[cufft][errors]") {
  device_session session;
  const conv_case c = small_case();
  const array2d<float> k(c.k_rows, c.k_cols);
  standin::fail_call("cudaMalloc", 1);
  CHECK_THROWS_WITH(cufft::plan<float>(c.rows, c.cols, k, c.image_opt()),
                    "cufft: cudaMalloc failed: cudaErrorMemoryAllocation (out of memory)");
  standin::clear_failures();
  standin::fail_call("cufftMakePlanMany", standin::calls_of("cufftMakePlanMany") + 2);
  CHECK_THROWS_WITH(cufft::plan<float>(c.rows, c.cols, k, c.image_opt()),
                    "cufft: cufftMakePlanMany failed: CUFFT_ALLOC_FAILED");
  standin::clear_failures();
  cufft::plan<float> p(c.rows, c.cols, k, c.image_opt());
  array2d<float> in(c.rows, c.cols), out(c.rows, c.cols);
  standin::fail_call("cublasCdgmm", standin::calls_of("cublasCdgmm") + 1);
  CHECK_THROWS_WITH(p.execute(in, out), "cufft: cublasCdgmm failed: CUBLAS_STATUS_EXECUTION_FAILED");
  CHECK(std::string(detail::cufft_status_name(CUFFT_NO_WORKSPACE)) == "CUFFT_NO_WORKSPACE");
}

}  // namespace
}  // namespace convkit::testing
