// convkit/distributed/mpi.hpp - one image too large for one machine, split in bands of rows over the
// ranks of an MPI communicator (component convkit::mpi; needs an MPI library, e.g. OpenMPI).
//
//   band          a contiguous run of rows of a global array: its first row and its rows
//   input bands   every rank of the communicator holds one band of the global image, in rank order,
//                 covering it: rank 0 from row 0, each next rank where the previous one ends; any
//                 heights, empty bands allowed; all ranks pass the same kernel and options
//   output bands  output row o is computed by the rank holding the input row at the centre of what
//                 it reads (o * stride_rows - padding + (span - 1) / 2, clamped to the image); so
//                 the output bands too are in rank order and, put together, are exactly the output
//                 of conv2d(global image, kernel, options)
//   halo          the input rows a rank's outputs read that another rank holds - beside its band, or
//                 where the border rule leads (circular wraps between the first and last rank,
//                 reflect and symmetric reach across bands thinner than the kernel): each is sent
//                 straight from the rank holding it, non-blocking, while the interior is computed
//
// Results: with the direct backend, bit-identical to a single-process conv2d of the whole image (the
// same taps in the same order; the low-rank path is chosen once for the whole image); with fft,
// within the FFT bound. Every mode, border, stride, dilation and backend. Images of pixels
// (image.hpp: 8/16-bit or floating, 1-4 interleaved channels) go through the same plan, their halo
// rows sent as pixels and each rank's outputs computed as the single-process image call computes
// them (pixel_bands.hpp, over the rank's output rows).
//
// Errors are collective: an argument that is wrong on any rank (a band out of order, another kernel
// or options, a view of the wrong shape) throws convkit::error on every rank, naming the rank and
// the argument, instead of leaving the others waiting. MPI must be initialised by the program (any
// thread level: convkit calls MPI from the calling thread only); plans must be destroyed before
// MPI_Finalize. Each plan duplicates the communicator, so its messages never meet the program's.
#pragma once

#include "../version.hpp"

#include <mpi.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "../convkit.hpp"  // a layer above the front doors: the umbrella, as a program includes it
#include "../detail/arguments.hpp"
#include "../detail/direct_cost.hpp"  // band_tuning (the compiled mode's umbrella leaves the backends out)
#include "../detail/pixel_bands.hpp"
#include "../detail/row_bands.hpp"

CONVKIT_NAMESPACE_BEGIN
namespace mpi {

/// Rows [first_row, first_row + rows.rows()) of a global array.
template <class T>
struct band {
  index_t first_row = 0;
  array2d<T> rows;
};

namespace detail {

using convkit::detail::band_runner;
using convkit::detail::row_band;

template <class T>
MPI_Datatype datatype() noexcept {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, unsigned char>);
  if constexpr (std::is_same_v<T, float>)
    return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, double>)
    return MPI_DOUBLE;
  else
    return MPI_BYTE;
}

/// FNV-1a over bytes: to check that every rank passed the same kernel and options.
inline std::uint64_t hash_bytes(const void* p, std::size_t n, std::uint64_t h = 1469598103934665603ull) noexcept {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

/// Throws on every rank if `message` is not empty on any: the first failing rank's message, named.
inline void agree(MPI_Comm comm, const std::string& message) {
  int failed = message.empty() ? 0 : 1, any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, comm);
  if (any == 0) return;
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  constexpr int width = 512;
  std::vector<char> mine(width, 0), all(std::size_t(width) * std::size_t(size), 0);
  std::strncpy(mine.data(), message.c_str(), width - 1);
  MPI_Allgather(mine.data(), width, MPI_CHAR, all.data(), width, MPI_CHAR, comm);
  for (int r = 0; r < size; ++r)
    if (all[std::size_t(r) * width] != 0)
      throw error("convkit::mpi: rank " + std::to_string(r) + ": " + std::string(all.data() + std::size_t(r) * width));
}

/// Messages of any size: split in pieces MPI's int counts can hold.
inline constexpr index_t max_message = index_t(1) << 30;

template <class T>
void post(bool send, T* data, index_t count, int peer, MPI_Comm comm, std::vector<MPI_Request>& requests) {
  const index_t piece = max_message / index_t(sizeof(T));
  for (index_t at = 0; at < count; at += piece) {
    const int n = int(std::min(piece, count - at));
    requests.emplace_back();
    if (send)
      MPI_Isend(data + at, n, datatype<T>(), peer, 0, comm, &requests.back());
    else
      MPI_Irecv(data + at, n, datatype<T>(), peer, 0, comm, &requests.back());
  }
}

}  // namespace detail

/// The distributed convolution of one image in bands, prepared once: the bands, who sends which rows
/// to whom, the local plans (interior and edges) and their buffers. execute() exchanges the halos
/// and computes this rank's output band; it is collective (every rank calls it).
template <class T>
class plan {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "convkit computes in float or double");

 public:
  /// Collective. This rank holds rows [first_row, first_row + local_rows) of a global_rows x cols
  /// image (see the file comment); `kernel` and `opt` must be the same on every rank.
  plan(MPI_Comm comm, index_t local_rows, index_t cols, index_t first_row, index_t global_rows, view2d<const T> kernel,
       const options& opt = {}) {
    std::string problem;
    try {
      if (local_rows < 0) throw error("local_rows must be >= 0, got " + std::to_string(local_rows));
      if (first_row < 0) throw error("first_row must be >= 0, got " + std::to_string(first_row));
      global_ = convkit::detail::image_problem<T>(global_rows, cols, kernel, opt, true);
    } catch (const error& e) {
      problem = e.what();
    }
    detail::agree(comm, problem);  // every rank has a valid problem, or every rank throws
    MPI_Comm_dup(comm, &comm_);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    try {
      exchange_bands(local_rows, cols, first_row, kernel, opt);
    } catch (...) {
      MPI_Comm_free(&comm_);
      throw;
    }
    options_ = opt;
    weights_ = convkit::detail::correlation_order(kernel, opt.correlate);
    const array2d<T>& weights = weights_;
    tune_ = convkit::detail::band_tuning(global_);
    try {
      plan_outputs();
      plan_messages();
      interior_ =
          detail::band_runner<T>(detail::row_band(global_, interior_first_, interior_last_), tune_, weights.data());
      top_ = detail::band_runner<T>(detail::row_band(global_, out_first_, interior_first_), tune_, weights.data());
      bottom_ = detail::band_runner<T>(detail::row_band(global_, interior_last_, out_last_), tune_, weights.data());
      // A contiguous interior is read in place; a sparse row axis gathers its rows (see row_bands.hpp).
      interior_in_place_ = !global_.rows.sparse();
      if (!interior_in_place_) interior_buffer_ = array2d<T>(index_t(interior_.band().sources().size()), cols);
      edge_buffer_ = array2d<T>(index_t(std::max(top_.band().sources().size(), bottom_.band().sources().size())), cols);
    } catch (const std::exception& e) {
      problem = e.what();
    }
    try {
      detail::agree(comm_, problem);
    } catch (...) {
      MPI_Comm_free(&comm_);
      throw;
    }
  }

  plan(const plan&) = delete;
  plan& operator=(const plan&) = delete;
  ~plan() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (comm_ != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm_);
  }

  /// This rank's output band: rows [first_output_row(), first_output_row() + output_rows()) of the
  /// global output, output_cols() wide (0 rows where the rank computes none).
  index_t first_output_row() const noexcept { return out_first_; }
  index_t output_rows() const noexcept { return out_last_ - out_first_; }
  index_t output_cols() const noexcept { return global_.cols.out; }
  /// The global output's shape.
  shape2d global_output_shape() const noexcept { return global_.out_plane(); }
  /// The backend computing this rank's interior (automatic if it has none).
  algorithm chosen() const noexcept { return interior_.chosen(); }
  /// Bytes this rank sends and receives per execute (halo rows).
  index_t halo_bytes_sent() const noexcept { return sent_rows_ * global_.cols.in * index_t(sizeof(T)); }
  index_t halo_bytes_received() const noexcept { return received_rows_ * global_.cols.in * index_t(sizeof(T)); }

  /// Collective. `local`: this rank's input band (local_rows x cols, as given to the plan); `out`:
  /// output_rows() x output_cols().
  void execute(view2d<const T> local, view2d<T> out) {
    std::string problem;
    if (local.rows() != local_rows_ || local.cols() != global_.cols.in)
      problem = "input band is " + std::to_string(local.rows()) + "x" + std::to_string(local.cols()) +
                ", the plan was made for " + std::to_string(local_rows_) + "x" + std::to_string(global_.cols.in);
    else if (out.rows() != output_rows() || out.cols() != output_cols())
      problem = "output band is " + std::to_string(out.rows()) + "x" + std::to_string(out.cols()) + ", expected " +
                std::to_string(output_rows()) + "x" + std::to_string(output_cols());
    detail::agree(comm_, problem);
    const index_t cols = global_.cols.in;
    // Halos: receives first, then the rows this rank sends, packed.
    requests_.clear();
    for (peer_rows& p : peers_)
      if (!p.receive.empty())
        detail::post(false, p.received.data(), index_t(p.receive.size()) * cols, p.rank, comm_, requests_);
    for (peer_rows& p : peers_) {
      if (p.send.empty()) continue;
      for (std::size_t i = 0; i < p.send.size(); ++i) {
        const T* row = local.row(p.send[i] - first_row_);
        std::copy(row, row + cols, p.sending.data() + index_t(i) * cols);
      }
      detail::post(true, p.sending.data(), index_t(p.send.size()) * cols, p.rank, comm_, requests_);
    }
    // The interior meanwhile: its rows are this rank's own, read in place.
    if (!interior_.band().empty()) {
      const index_t first = interior_.band().sources().front();
      if (interior_in_place_)
        interior_.run(local.block(first - first_row_, 0, index_t(interior_.band().sources().size()), cols),
                      out.block(interior_first_ - out_first_, 0, interior_last_ - interior_first_, out.cols()));
      else
        interior_.gather_and_run(
            [&](index_t g) { return local.row(g - first_row_); }, interior_buffer_.data(),
            out.block(interior_first_ - out_first_, 0, interior_last_ - interior_first_, out.cols()));
    }
    MPI_Waitall(int(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
    const auto row = [&](index_t g) -> const T* {
      if (g >= first_row_ && g < first_row_ + local_rows_) return local.row(g - first_row_);
      const auto [p, i] = received_row(g);
      return p.received.data() + i * cols;
    };
    top_.gather_and_run(row, edge_buffer_.data(), out.block(0, 0, interior_first_ - out_first_, out.cols()));
    bottom_.gather_and_run(row, edge_buffer_.data(),
                           out.block(interior_last_ - out_first_, 0, out_last_ - interior_last_, out.cols()));
  }

  /// Collective: this rank's output band, allocated.
  band<T> execute(view2d<const T> local) {
    band<T> b{out_first_, array2d<T>(output_rows(), output_cols())};
    execute(local, b.rows.view());
    return b;
  }

  /// Collective. An image of pixels (image.hpp), every channel filtered as conv2d's image call
  /// filters it, computed in T: `local` is this rank's band (local_rows x cols, as given to the
  /// plan, with 1 to 4 channels, the same pixel type and channels on every rank), `out` its output
  /// band (output_rows() x output_cols(), the same channels). The halo rows travel as pixels; this
  /// rank's outputs are computed once they have arrived. The first call of each channel count makes
  /// that path's executors and buffers.
  template <class P, class Q>
  void execute(image_view<const P> local, image_view<Q> out) {
    convkit::detail::check_image_types<P, T, Q>();
    std::string problem;
    try {
      convkit::detail::check_image_call<P, Q>(local, out, {local_rows_, global_.cols.in},
                                              {output_rows(), output_cols()});
    } catch (const error& e) {
      problem = e.what();
    }
    // Every rank must send and expect rows of the same pixels: the channels and the pixel type.
    const std::int64_t kind = local.channels() * 64 + std::int64_t(sizeof(P)) * 4 +
                              (std::is_floating_point_v<P> ? 2 : 0) + (std::is_signed_v<P> ? 1 : 0);
    std::int64_t lowest = kind, highest = kind;
    MPI_Allreduce(&kind, &lowest, 1, MPI_INT64_T, MPI_MIN, comm_);
    MPI_Allreduce(&kind, &highest, 1, MPI_INT64_T, MPI_MAX, comm_);
    if (problem.empty() && lowest != highest)
      problem = "the ranks' images differ in pixel type or channels (all ranks must pass the same)";
    // This channel count's bands, made before any message is posted: a rank that fails to make
    // them throws with every other rank, none left waiting.
    const bool exact = convkit::detail::computes_exactly<P, Q, T>(weights_, options_);
    std::unique_ptr<convkit::detail::pixel_bands<T>>& bands =
        pixels_[std::size_t((exact ? max_channels : 0) + local.channels() - 1)];
    if (problem.empty() && !bands) {
      try {
        convkit::detail::conv_problem p = global_;
        if (exact) convkit::detail::make_exact(p);
        bands = std::make_unique<convkit::detail::pixel_bands<T>>(p, weights_.data(), local.channels(), out_first_,
                                                                  out_last_);
      } catch (const std::exception& e) {
        problem = e.what();
      }
    }
    detail::agree(comm_, problem);
    const index_t row_bytes = global_.cols.in * local.channels() * index_t(sizeof(P));
    requests_.clear();
    for (peer_rows& p : peers_) {
      p.received_pixels.resize(std::max(p.received_pixels.size(), p.receive.size() * std::size_t(row_bytes)));
      if (!p.receive.empty())
        detail::post(false, p.received_pixels.data(), index_t(p.receive.size()) * row_bytes, p.rank, comm_, requests_);
    }
    for (peer_rows& p : peers_) {
      if (p.send.empty()) continue;
      p.sending_pixels.resize(std::max(p.sending_pixels.size(), p.send.size() * std::size_t(row_bytes)));
      for (std::size_t i = 0; i < p.send.size(); ++i) {
        const auto* row = reinterpret_cast<const unsigned char*>(local.row(p.send[i] - first_row_));
        std::copy(row, row + row_bytes, p.sending_pixels.data() + index_t(i) * row_bytes);
      }
      detail::post(true, p.sending_pixels.data(), index_t(p.send.size()) * row_bytes, p.rank, comm_, requests_);
    }
    MPI_Waitall(int(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
    const auto in_row = [&](index_t g) -> const P* {
      if (g >= first_row_ && g < first_row_ + local_rows_) return local.row(g - first_row_);
      const auto [p, i] = received_row(g);
      return reinterpret_cast<const P*>(p.received_pixels.data() + i * row_bytes);
    };
    bands->template run_rows<P, Q>(in_row, [&](index_t o) { return out.row(o - out_first_); });
  }

 private:
  struct peer_rows {
    int rank = 0;
    std::vector<index_t> send, receive;  // global rows, ascending
    array2d<T> sending, received;        // their values, row after row
    // The same rows of an image of pixels, as bytes (sized by the first image execute).
    std::vector<unsigned char> sending_pixels, received_pixels;
  };

  // Every rank's band and a fingerprint of its kernel and options, checked against this rank's.
  void exchange_bands(index_t local_rows, index_t cols, index_t first_row, view2d<const T> kernel, const options& opt) {
    const array2d<T> k = convkit::detail::correlation_order(kernel, opt.correlate);
    std::uint64_t h = detail::hash_bytes(k.data(), std::size_t(k.size()) * sizeof(T));
    const std::int64_t fields[] = {kernel.rows(),     kernel.cols(),     int(opt.mode),
                                   int(opt.edge),     opt.stride_rows,   opt.stride_cols,
                                   opt.dilation_rows, opt.dilation_cols, int(opt.algo)};
    h = detail::hash_bytes(fields, sizeof fields, h);
    h = detail::hash_bytes(&opt.edge_value, sizeof opt.edge_value, h);
    const std::int64_t mine[4] = {first_row, local_rows, cols, std::int64_t(h)};
    std::vector<std::int64_t> all(std::size_t(4 * size_));
    MPI_Allgather(mine, 4, MPI_INT64_T, all.data(), 4, MPI_INT64_T, comm_);
    first_rows_.resize(std::size_t(size_ + 1));
    std::string problem;
    index_t expected = 0;
    for (int r = 0; r < size_ && problem.empty(); ++r) {
      const std::int64_t* a = all.data() + 4 * r;
      const std::string who = "rank " + std::to_string(r);
      if (a[0] != expected)
        problem = who + "'s first_row is " + std::to_string(a[0]) + ", but the bands before it end at row " +
                  std::to_string(expected) + " (bands must be contiguous, in rank order, from row 0)";
      else if (a[2] != cols)
        problem = who + "'s image has " + std::to_string(a[2]) + " cols, this rank's " + std::to_string(cols);
      else if (std::uint64_t(a[3]) != h)
        problem = who + "'s kernel or options differ from this rank's (all ranks must pass the same)";
      first_rows_[std::size_t(r)] = a[0];
      expected = a[0] + a[1];
    }
    if (problem.empty() && expected != global_.rows.in)
      problem = "the bands cover rows 0.." + std::to_string(expected) + ", but global_rows is " +
                std::to_string(global_.rows.in);
    first_rows_[std::size_t(size_)] = global_.rows.in;
    detail::agree(comm_, problem);
    first_row_ = first_row;
    local_rows_ = local_rows;
  }

  // The rank holding global input row g (empty bands hold none).
  int owner_of(index_t g) const {
    return int(std::upper_bound(first_rows_.begin(), first_rows_.end() - 1, g) - first_rows_.begin()) - 1;
  }

  // Where global input row g, another rank's, arrives: its sender and its place among the rows
  // received from it.
  std::pair<const peer_rows&, index_t> received_row(index_t g) const {
    const peer_rows& p = peers_[std::size_t(owner_of(g))];
    return {p, index_t(std::lower_bound(p.receive.begin(), p.receive.end(), g) - p.receive.begin())};
  }

  // Output rows [first, last) of rank r: those whose centre row it holds.
  std::pair<index_t, index_t> outputs_of(int r) const {
    const convkit::detail::axis_geometry& a = global_.rows;
    const index_t begin = first_rows_[std::size_t(r)], end = first_rows_[std::size_t(r + 1)];
    if (begin == end) return {0, 0};
    // centre(o) = o * stride - pad_before + (span - 1) / 2, clamped to the image: the first o whose
    // centre reaches `row`.
    const auto first_reaching = [&](index_t row) -> index_t {
      if (row <= 0) return 0;
      const index_t num = row + a.pad_before - (a.span - 1) / 2;
      if (num <= 0) return 0;
      return std::min<index_t>(a.out, (num + a.stride - 1) / a.stride);
    };
    const index_t o0 = r == 0 ? 0 : first_reaching(begin);
    const index_t o1 = end >= global_.rows.in ? a.out : first_reaching(end);
    return {std::min(o0, o1), o1};
  }

  // This rank's outputs, and its interior: the outputs whose taps all read rows of its own band.
  void plan_outputs() {
    const convkit::detail::axis_geometry& a = global_.rows;
    std::tie(out_first_, out_last_) = outputs_of(rank_);
    interior_first_ = interior_last_ = out_first_;
    if (out_last_ > out_first_) {
      // o * stride - pad_before >= first_row and o * stride - pad_before + span <= first_row + local_rows
      const index_t lo = first_row_ + a.pad_before, hi = first_row_ + local_rows_ + a.pad_before - a.span;
      const index_t first = std::max(out_first_, (lo + a.stride - 1) / a.stride);
      const index_t last = hi < 0 ? 0 : std::min(out_last_, hi / a.stride + 1);
      if (first < last)
        interior_first_ = first, interior_last_ = last;
      else
        interior_first_ = interior_last_ = out_last_;
    }
  }

  // Which of its rows each rank sends to which: every rank works out every other's needs (the
  // bands are known to all), so no request travels.
  void plan_messages() {
    const index_t cols = global_.cols.in;
    peers_.resize(std::size_t(size_));
    for (int r = 0; r < size_; ++r) peers_[std::size_t(r)].rank = r;
    for (int r = 0; r < size_; ++r) {
      // The rows rank r's edges read that other ranks hold.
      const auto [o0, o1] = outputs_of(r);
      std::vector<index_t> needed;
      if (o1 > o0) {
        const index_t b0 = first_rows_[std::size_t(r)], b1 = first_rows_[std::size_t(r + 1)];
        const convkit::detail::axis_geometry& a = global_.rows;
        const index_t lo = b0 + a.pad_before, hi = b1 + a.pad_before - a.span;
        const index_t i0 = std::max(o0, (lo + a.stride - 1) / a.stride);
        const index_t i1 = hi < 0 ? 0 : std::min(o1, hi / a.stride + 1);
        const bool has_interior = i0 < i1;
        for (const auto& [e0, e1] :
             {std::pair<index_t, index_t>(o0, has_interior ? i0 : o1), {has_interior ? i1 : o1, o1}}) {
          const detail::row_band edge(global_, e0, e1);
          for (const index_t g : edge.sources())
            if (g >= 0 && (g < b0 || g >= b1)) needed.push_back(g);
        }
      }
      std::sort(needed.begin(), needed.end());
      needed.erase(std::unique(needed.begin(), needed.end()), needed.end());
      for (const index_t g : needed) {
        const int from = owner_of(g);
        if (r == rank_) peers_[std::size_t(from)].receive.push_back(g);
        if (from == rank_) peers_[std::size_t(r)].send.push_back(g);
      }
    }
    for (peer_rows& p : peers_) {
      p.sending = array2d<T>(index_t(p.send.size()), cols);
      p.received = array2d<T>(index_t(p.receive.size()), cols);
      sent_rows_ += index_t(p.send.size());
      received_rows_ += index_t(p.receive.size());
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  convkit::detail::conv_problem global_;
  convkit::detail::settings tune_;
  std::vector<index_t> first_rows_;  // per rank, and the image's end
  index_t first_row_ = 0, local_rows_ = 0;
  index_t out_first_ = 0, out_last_ = 0, interior_first_ = 0, interior_last_ = 0;
  std::vector<peer_rows> peers_;
  index_t sent_rows_ = 0, received_rows_ = 0;
  detail::band_runner<T> interior_, top_, bottom_;
  bool interior_in_place_ = true;
  array2d<T> interior_buffer_, edge_buffer_;
  std::vector<MPI_Request> requests_;
  options options_;
  array2d<T> weights_;  // in correlation order
  // Images of pixels: made by the first execute of each channel count, exact (integer pixels with
  // an integer-valued kernel) or not, as plan.hpp's.
  std::array<std::unique_ptr<convkit::detail::pixel_bands<T>>, 2 * max_channels> pixels_;
};

/// Collective: this rank's band of conv2d(global image, kernel, opt), where this rank holds rows
/// [first_row, first_row + local.rows()) of a global_rows x local.cols() image (see the file comment).
template <class T>
band<T> conv2d(MPI_Comm comm, view2d<const T> local, index_t first_row, index_t global_rows, view2d<const T> kernel,
               const options& opt = {}) {
  plan<T> p(comm, local.rows(), local.cols(), first_row, global_rows, kernel, opt);
  return p.execute(local);
}

}  // namespace mpi
CONVKIT_NAMESPACE_END
