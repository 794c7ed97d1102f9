// The direct backend's layer micro-kernel, compiled with direct_kernel.inl (whose simd<T> it uses) once
// per instruction set. direct_layer.hpp has the layout it reads and why.
//
// A tile is KB output channels x P vectors of consecutive flat output positions (layer_job): per
// input channel and kernel tap, P vector loads of the prepared input and KB broadcast weights feed
// KB * P FMAs into accumulators that stay in registers for the whole channel sum. Accumulators live
// in one array indexed only by constants (index_sequence folds), so the compiler keeps them in
// registers (checked in the generated code: no spills with KB x P = 4 x 6 on AVX-512).

template <class T, int KB, int P>
struct layer_tile {
  using S = simd<T>;
  using reg = typename S::reg;
  static constexpr int L = S::lanes;

  struct state {
    reg acc[KB][P];
  };

  template <int... I>
  static CONVKIT_ALWAYS_INLINE void zero_all(state& s, std::integer_sequence<int, I...>) {
    ((s.acc[I / P][I % P] = S::zero()), ...);
  }

  template <int... J>
  static CONVKIT_ALWAYS_INLINE void load_inputs(reg (&x)[P], const T* p, std::integer_sequence<int, J...>) {
    ((x[J] = S::load(p + J * L)), ...);
  }

  template <int K, int... J>
  static CONVKIT_ALWAYS_INLINE void multiply_channel(state& s, reg w, const reg (&x)[P],
                                                     std::integer_sequence<int, J...>) {
    ((s.acc[K][J] = S::fma(w, x[J], s.acc[K][J])), ...);
  }

  template <int... K>
  static CONVKIT_ALWAYS_INLINE void multiply(state& s, const T* w, const reg (&x)[P],
                                             std::integer_sequence<int, K...>) {
    (multiply_channel<K>(s, S::bcast(w + K), x, std::make_integer_sequence<int, P>{}), ...);
  }

  template <int... I>
  static CONVKIT_ALWAYS_INLINE void store_all(const state& s, T* out, index_t out_step,
                                              std::integer_sequence<int, I...>) {
    (S::store(out + (I / P) * out_step + (I % P) * L, s.acc[I / P][I % P]), ...);
  }

  /// Positions q .. q + P * L of job's block into job.out at column `at`.
  static void run(const layer_job<T>& job, index_t q, index_t at) {
    state s;
    zero_all(s, std::make_integer_sequence<int, KB * P>{});
    const int taps = job.taps;
    const T* in = job.in + q;
    const T* w = job.weights;
    for (index_t c = 0; c < job.channels; ++c, in += job.channel_step) {
      for (int t = 0; t < taps; ++t, w += KB) {
        reg x[P];
        load_inputs(x, in + job.tap_off[t], std::make_integer_sequence<int, P>{});
        multiply(s, w, x, std::make_integer_sequence<int, KB>{});
      }
    }
    store_all(s, job.out + at, job.out_step, std::make_integer_sequence<int, KB * P>{});
  }
};

// Tiles of fewer vectors for the end of a range: P - 1 down to 1.
template <class T, int KB, int P>
CONVKIT_ALWAYS_INLINE void layer_tail(const layer_job<T>& job, index_t q, index_t at, int vectors) {
  if constexpr (P > 1) {
    if (vectors < P) return layer_tail<T, KB, P - 1>(job, q, at, vectors);
  }
  layer_tile<T, KB, P>::run(job, q, at);
}

/// Flat positions [q0, q1) of job's channel block (KB output channels, KB x P a tile), into job.out
/// from its column 0; rounded up to whole vectors.
template <class T, int KB, int P>
void layer_range(const layer_job<T>& job, index_t q0, index_t q1) {
  static_assert(P > 1, "a tile of one vector leaves no room for a shorter tail");
  constexpr int L = simd<T>::lanes;
  index_t q = q0;
  for (; q + (P - 1) * L < q1; q += P * L) layer_tile<T, KB, P>::run(job, q, q - q0);
  if (q < q1) layer_tail<T, KB, P - 1>(job, q, q - q0, int((q1 - q + L - 1) / L));
}

/// Flat positions [q0, q1) of one filter's results (`from`, position q0 first) into its output
/// plane, each plus `bias`: position q is output (q / wp, q % wp), kept where q % wp < cols (the
/// positions between rows are dropped).
template <class T>
void layer_store(const T* from, index_t q0, index_t q1, index_t wp, index_t cols, T* plane, index_t row_stride,
                 T bias) {
  using S = simd<T>;
  constexpr int L = S::lanes;
  const T one = T(1);
  const typename S::reg b = S::bcast(&bias), unit = S::bcast(&one);
  index_t row_start = q0 - q0 % wp;
  T* to = plane + (row_start / wp) * row_stride;
  for (; row_start < q1; row_start += wp, to += row_stride) {
    const index_t first = std::max(q0, row_start), end = std::min(q1, row_start + cols);
    const T* src = from + (first - q0);
    T* dst = to + (first - row_start);
    const index_t n = end - first;
    index_t x = 0;
    for (; x + L <= n; x += L) S::store(dst + x, S::fma(unit, S::load(src + x), b));  // 1 * y + bias: one rounding
    if (x < n) S::store_n(dst + x, S::fma(unit, S::load_n(src + x, int(n - x)), b), int(n - x));
  }
}

/// The depthwise kernel (depthwise_job): P output rows x one vector of columns at a time, read from
/// the image itself (no prepared copy) and written straight to the output plus the bias. With
/// stride S (1 or 2, both axes), input row a of a block feeds output row (a - u) / S for every
/// kernel row u that divides evenly (the layer tile's loads each feed one FMA where a group has one
/// filter); stride 2 loads two vectors and keeps every other element. Blocks that read beyond the
/// image (the first and last rows and columns) load only the elements inside it: masked loads,
/// whose other lanes' memory is not read.
template <class T, int KH, int P, int S>
struct depthwise_block {
  using V = simd<T>;
  using reg = typename V::reg;
  static constexpr int L = V::lanes;
  static constexpr int input_rows = S * (P - 1) + KH;

  template <int A, int U>
  static CONVKIT_ALWAYS_INLINE void feed_one(reg (&acc)[P], const reg (&w)[KH], reg x) {
    if constexpr (A - U >= 0 && (A - U) % S == 0 && (A - U) / S < P)
      acc[(A - U) / S] = V::fma(w[U], x, acc[(A - U) / S]);
  }

  template <int A, int... U>
  static CONVKIT_ALWAYS_INLINE void feed(reg (&acc)[P], const reg (&w)[KH], reg x, std::integer_sequence<int, U...>) {
    (feed_one<A, U>(acc, w, x), ...);
  }

  // The L outputs' elements of the row at p (S apart).
  static CONVKIT_ALWAYS_INLINE reg load(const T* p) {
    if constexpr (S == 1) {
      return V::load(p);
    } else {
      return V::evens(V::load(p), V::load(p + L));
    }
  }

  // Those of outputs [lo, hi) only (zeros in the other lanes; their memory is not read).
  static CONVKIT_ALWAYS_INLINE reg load_range(const T* p, int lo, int hi) {
    if constexpr (S == 1) {
      return V::load_range(p, lo, hi);
    } else {
      if (lo >= hi) return V::zero();
      const int first = 2 * lo, end = 2 * hi - 1;  // elements [first, end) of the 2L at p
      return V::evens(V::load_range(p, std::min(first, L), std::min(end, L)),
                      V::load_range(p + L, std::max(first - L, 0), std::max(end - L, 0)));
    }
  }

  template <int... A>
  static CONVKIT_ALWAYS_INLINE void rows(reg (&acc)[P], const reg (&w)[KH], const T* p, index_t stride,
                                         std::integer_sequence<int, A...>) {
    (feed<A>(acc, w, load(p + A * stride), std::make_integer_sequence<int, KH>{}), ...);
  }

  // Row A reads image row r0 + A where it exists, outputs [lo, hi) of the vector at column o.
  template <int... A>
  static CONVKIT_ALWAYS_INLINE void rows_at_edge(reg (&acc)[P], const reg (&w)[KH], const depthwise_job<T>& job,
                                                 index_t r0, index_t o, int lo, int hi,
                                                 std::integer_sequence<int, A...>) {
    (feed<A>(acc, w,
             r0 + A >= 0 && r0 + A < job.h ? load_range(job.image + (r0 + A) * job.row_stride + o, lo, hi) : V::zero(),
             std::make_integer_sequence<int, KH>{}),
     ...);
  }

  template <int... U>
  static CONVKIT_ALWAYS_INLINE void weights(reg (&w)[KH], const T* taps, int kw, int v,
                                            std::integer_sequence<int, U...>) {
    ((w[U] = V::bcast(taps + U * kw + v)), ...);
  }

  template <int... I>
  static CONVKIT_ALWAYS_INLINE void zero_all(reg (&acc)[P], std::integer_sequence<int, I...>) {
    ((acc[I] = V::zero()), ...);
  }

  template <int... I>
  static CONVKIT_ALWAYS_INLINE void store(const reg (&acc)[P], T* out, index_t out_stride, reg bias, int lanes,
                                          std::integer_sequence<int, I...>) {
    const T one = T(1);
    const reg unit = V::bcast(&one);  // 1 * sum + bias: one rounding, as an addition
    if (lanes == L) {
      (V::store(out + I * out_stride, V::fma(unit, acc[I], bias)), ...);
    } else {
      (V::store_n(out + I * out_stride, V::fma(unit, acc[I], bias), lanes), ...);
    }
  }

  /// Output rows [i, i + P), columns [j, j + lanes); `inside`: every load of the block lies in the image.
  static void run(const depthwise_job<T>& job, index_t i, index_t j, int lanes, bool inside, reg bias) {
    reg acc[P];
    zero_all(acc, std::make_integer_sequence<int, P>{});
    const index_t r0 = S * i - job.top;
    for (int v = 0; v < job.kw; ++v) {
      reg w[KH];
      weights(w, job.taps, job.kw, v, std::make_integer_sequence<int, KH>{});
      const index_t o = S * j + v * job.col_dilation - job.left;  // the first output's element
      if (inside) {
        rows(acc, w, job.image + r0 * job.row_stride + o, job.row_stride,
             std::make_integer_sequence<int, input_rows>{});
      } else {
        // Outputs l with 0 <= o + S l < w.
        const auto up = [](index_t x) { return x <= 0 ? index_t(0) : (x + S - 1) / S; };
        const index_t lo = std::min<index_t>(up(-o), L), hi = std::clamp<index_t>(up(job.w - o), lo, L);
        rows_at_edge(acc, w, job, r0, o, int(lo), int(hi), std::make_integer_sequence<int, input_rows>{});
      }
    }
    store(acc, job.out + i * job.out_stride + j, job.out_stride, bias, lanes, std::make_integer_sequence<int, P>{});
  }
};

/// A depthwise plane (depthwise_job; rows >= P: the last block overlaps the one before it).
template <class T, int KH, int P, int S>
void depthwise_plane(const depthwise_job<T>& job) {
  using V = simd<T>;
  constexpr int L = V::lanes;
  const typename V::reg bias = V::bcast(&job.bias);
  // A block's rows, across the plane (they stay in cache from one vector of columns to the next).
  for (index_t i0 = 0; i0 < job.rows; i0 += P) {
    const index_t i = std::min(i0, job.rows - P);
    const bool rows_inside = S * i - job.top >= 0 && S * i - job.top + S * (P - 1) + KH <= job.h;
    for (index_t j = 0; j < job.cols; j += L) {
      const int lanes = int(std::min<index_t>(L, job.cols - j));
      const bool cols_inside =
          S * j - job.left >= 0 && S * j - job.left + (job.kw - 1) * job.col_dilation + S * L <= job.w;
      depthwise_block<T, KH, P, S>::run(job, i, j, lanes, cols_inside && rows_inside, bias);
    }
  }
}
