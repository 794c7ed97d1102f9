// The direct backend's register-blocked micro-kernel, written once and compiled once per instruction
// set: direct_impl.hpp includes it through simd/per_isa.inl, inside namespace convkit::detail::direct_<isa> with
// CONVKIT_ISA_LEVEL set to 0 (portable C++), 1 (AVX2 + FMA) or 2 (AVX-512), under a
// `#pragma GCC target` that enables exactly that set, so users need no -march flags.
//
// A block computes R output rows x V vectors of output columns. Output rows of a block read
// overlapping input rows (row r with kernel row u reads input row r + u), so each input vector is
// loaded once and multiplied into every output row that needs it: per input row and kernel column,
// V loads and up to R broadcasts feed up to R*V FMAs, one weight broadcast at a time beside its V
// FMAs (R*V accumulators, V inputs and one weight fit the register file: 6 x 4 of AVX-512's 32,
// 6 x 2 of AVX2's 16). A block is never taller than the kernel (run() splits it), so its R + KH - 1
// input rows come in three runs: the first R - 1 feed rows [0, i] (ramp-up), the middle ones every
// row, the last R - 1 rows [j, R - 1] (ramp-down); each ramp row is a copy of the loop with its
// rows compiled in (2R - 1 copies per block height), so no branch or wasted FMA sits in the inner
// loop. Accumulators live in one array that is only ever indexed by constants (index_sequence
// folds), which lets the compiler keep all of them in registers.

#if CONVKIT_ISA_LEVEL == 2
template <class T>
struct simd;
template <>
struct simd<float> {
  using reg = __m512;
  static constexpr int lanes = 16, vecs = 4;
  static CONVKIT_ALWAYS_INLINE reg zero() { return _mm512_setzero_ps(); }
  static CONVKIT_ALWAYS_INLINE reg load(const float* p) { return _mm512_loadu_ps(p); }
  static CONVKIT_ALWAYS_INLINE reg load_n(const float* p, int n) {
    return _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1u), p);
  }
  static CONVKIT_ALWAYS_INLINE reg bcast(const float* p) { return _mm512_set1_ps(*p); }
  static CONVKIT_ALWAYS_INLINE reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static CONVKIT_ALWAYS_INLINE void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static CONVKIT_ALWAYS_INLINE void store_n(float* p, reg v, int n) {
    _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1u), v);
  }
  /// Lanes s.. of lo, then lanes ..s of hi: the vector s elements further along. (The zero-masked
  /// form with every lane kept: GCC's plain one starts from an undefined vector and warns.)
  template <int s>
  static CONVKIT_ALWAYS_INLINE reg shift(reg lo, reg hi) {
    return _mm512_castsi512_ps(
        _mm512_maskz_alignr_epi32(__mmask16(0xffff), _mm512_castps_si512(hi), _mm512_castps_si512(lo), s));
  }
};
template <>
struct simd<double> {
  using reg = __m512d;
  static constexpr int lanes = 8, vecs = 4;
  static CONVKIT_ALWAYS_INLINE reg zero() { return _mm512_setzero_pd(); }
  static CONVKIT_ALWAYS_INLINE reg load(const double* p) { return _mm512_loadu_pd(p); }
  static CONVKIT_ALWAYS_INLINE reg load_n(const double* p, int n) {
    return _mm512_maskz_loadu_pd(__mmask8((1u << n) - 1u), p);
  }
  static CONVKIT_ALWAYS_INLINE reg bcast(const double* p) { return _mm512_set1_pd(*p); }
  static CONVKIT_ALWAYS_INLINE reg fma(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
  static CONVKIT_ALWAYS_INLINE void store(double* p, reg v) { _mm512_storeu_pd(p, v); }
  static CONVKIT_ALWAYS_INLINE void store_n(double* p, reg v, int n) {
    _mm512_mask_storeu_pd(p, __mmask8((1u << n) - 1u), v);
  }
  template <int s>
  static CONVKIT_ALWAYS_INLINE reg shift(reg lo, reg hi) {
    return _mm512_castsi512_pd(
        _mm512_maskz_alignr_epi64(__mmask8(0xff), _mm512_castpd_si512(hi), _mm512_castpd_si512(lo), s));
  }
};
#elif CONVKIT_ISA_LEVEL == 1
template <class T>
struct simd;
template <>
struct simd<float> {
  using reg = __m256;
  static constexpr int lanes = 8, vecs = 2;
  static CONVKIT_ALWAYS_INLINE __m256i mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static CONVKIT_ALWAYS_INLINE reg zero() { return _mm256_setzero_ps(); }
  static CONVKIT_ALWAYS_INLINE reg load(const float* p) { return _mm256_loadu_ps(p); }
  static CONVKIT_ALWAYS_INLINE reg load_n(const float* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static CONVKIT_ALWAYS_INLINE reg bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static CONVKIT_ALWAYS_INLINE reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static CONVKIT_ALWAYS_INLINE void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static CONVKIT_ALWAYS_INLINE void store_n(float* p, reg v, int n) { _mm256_maskstore_ps(p, mask(n), v); }
};
template <>
struct simd<double> {
  using reg = __m256d;
  static constexpr int lanes = 4, vecs = 2;
  static CONVKIT_ALWAYS_INLINE __m256i mask(int n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static CONVKIT_ALWAYS_INLINE reg zero() { return _mm256_setzero_pd(); }
  static CONVKIT_ALWAYS_INLINE reg load(const double* p) { return _mm256_loadu_pd(p); }
  static CONVKIT_ALWAYS_INLINE reg load_n(const double* p, int n) { return _mm256_maskload_pd(p, mask(n)); }
  static CONVKIT_ALWAYS_INLINE reg bcast(const double* p) { return _mm256_broadcast_sd(p); }
  static CONVKIT_ALWAYS_INLINE reg fma(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  static CONVKIT_ALWAYS_INLINE void store(double* p, reg v) { _mm256_storeu_pd(p, v); }
  static CONVKIT_ALWAYS_INLINE void store_n(double* p, reg v, int n) { _mm256_maskstore_pd(p, mask(n), v); }
};
#else
template <class T>
struct simd {  // portable: one element per "register"; partial vectors never occur
  using reg = T;
  static constexpr int lanes = 1, vecs = 4;
  static CONVKIT_ALWAYS_INLINE reg zero() { return T(0); }
  static CONVKIT_ALWAYS_INLINE reg load(const T* p) { return *p; }
  static CONVKIT_ALWAYS_INLINE reg load_n(const T* p, int) { return *p; }
  static CONVKIT_ALWAYS_INLINE reg bcast(const T* p) { return *p; }
  static CONVKIT_ALWAYS_INLINE reg fma(reg a, reg b, reg c) { return a * b + c; }
  static CONVKIT_ALWAYS_INLINE void store(T* p, reg v) { *p = v; }
  static CONVKIT_ALWAYS_INLINE void store_n(T* p, reg v, int) { *p = v; }
};
#endif

template <class T, int R, int V, bool Partial>
struct block_kernel {
  using S = simd<T>;
  using reg = typename S::reg;
  static constexpr int L = S::lanes;

  struct state {
    reg acc[R][V];
  };

  template <int... J>
  static CONVKIT_ALWAYS_INLINE void load_row(reg (&x)[V], const T* p, int n_last, std::integer_sequence<int, J...>) {
    ((x[J] = ((Partial && J == V - 1) ? S::load_n(p + J * L, n_last) : S::load(p + J * L))), ...);
  }

  // acc[r][j] += w * x[j], j < V.
  template <int r, int... J>
  static CONVKIT_ALWAYS_INLINE void multiply(state& s, reg w, const reg (&x)[V], std::integer_sequence<int, J...>) {
    ((s.acc[r][J] = S::fma(w, x[J], s.acc[r][J])), ...);
  }

  // Every active row r in [LO, HI] with its weight k[-r * KW] (kernel row i - r of input row i).
  template <int LO, int HI, int... Rs>
  static CONVKIT_ALWAYS_INLINE void rows(state& s, const reg (&x)[V], const T* k, int KW,
                                         std::integer_sequence<int, Rs...>) {
    ((void)((Rs >= LO && Rs <= HI)
                ? (multiply<Rs>(s, S::bcast(k - index_t(Rs) * KW), x, std::make_integer_sequence<int, V>{}), 0)
                : 0),
     ...);
  }

  // One input row (at `in`) against kernel row (i - r) of every active output row r.
  template <int LO, int HI>
  static CONVKIT_ALWAYS_INLINE void pass(state& s, const T* in, const index_t* col_off, const T* k, index_t k_row_off,
                                         int KW, int n_last) {
    for (int v = 0; v < KW; ++v) {
      reg x[V];
      load_row(x, in + col_off[v], n_last, std::make_integer_sequence<int, V>{});
      rows<LO, HI>(s, x, k + k_row_off + v, KW, std::make_integer_sequence<int, R>{});
    }
  }

  // Input rows i = 0 .. R - 2, each feeding rows [0, i].
  template <int... I>
  static CONVKIT_ALWAYS_INLINE void ramp_up([[maybe_unused]] state& s, [[maybe_unused]] const direct_job<T>& job,
                                            [[maybe_unused]] const T* in, [[maybe_unused]] int n_last,
                                            std::integer_sequence<int, I...>) {
    (pass<0, I>(s, in + index_t(I) * job.in_step, job.col_off, job.k, index_t(I) * job.k_cols, job.k_cols, n_last),
     ...);
  }

  // Input rows i = KH + j - 1, j = 1 .. R - 1, each feeding rows [j, R - 1].
  template <int... J>
  static CONVKIT_ALWAYS_INLINE void ramp_down([[maybe_unused]] state& s, [[maybe_unused]] const direct_job<T>& job,
                                              [[maybe_unused]] const T* in, [[maybe_unused]] int n_last,
                                              std::integer_sequence<int, J...>) {
    (pass<J + 1, R - 1>(s, in + index_t(job.k_rows + J) * job.in_step, job.col_off, job.k,
                        index_t(job.k_rows + J) * job.k_cols, job.k_cols, n_last),
     ...);
  }

  template <int... I>
  static CONVKIT_ALWAYS_INLINE void store_all(const state& s, T* out, index_t out_step, int n_last,
                                              std::integer_sequence<int, I...>) {
    ((void)((Partial && I % V == V - 1)
                ? S::store_n(out + (I / V) * out_step + (I % V) * L, s.acc[I / V][I % V], n_last)
                : S::store(out + (I / V) * out_step + (I % V) * L, s.acc[I / V][I % V])),
     ...);
  }

  template <int... I>
  static CONVKIT_ALWAYS_INLINE void zero_all(state& s, std::integer_sequence<int, I...>) {
    ((s.acc[I / V][I % V] = S::zero()), ...);
  }

  // For job.accumulate: the accumulators start from the output's current values.
  template <int... I>
  static CONVKIT_ALWAYS_INLINE void load_all(state& s, const T* out, index_t out_step, int n_last,
                                             std::integer_sequence<int, I...>) {
    ((s.acc[I / V][I % V] = (Partial && I % V == V - 1) ? S::load_n(out + (I / V) * out_step + (I % V) * L, n_last)
                                                        : S::load(out + (I / V) * out_step + (I % V) * L)),
     ...);
  }

  static void run(const direct_job<T>& job, const T* in, T* out, int n_last) {
    state s;
    if (job.accumulate)
      load_all(s, out, job.out_step, n_last, std::make_integer_sequence<int, R * V>{});
    else
      zero_all(s, std::make_integer_sequence<int, R * V>{});
    const int KH = job.k_rows, KW = job.k_cols;  // KH >= R
    ramp_up(s, job, in, n_last, std::make_integer_sequence<int, R - 1>{});
    for (int i = R - 1; i < KH; ++i)
      pass<0, R - 1>(s, in + index_t(i) * job.in_step, job.col_off, job.k, index_t(i) * KW, KW, n_last);
    ramp_down(s, job, in, n_last, std::make_integer_sequence<int, R - 1>{});
    store_all(s, out, job.out_step, n_last, std::make_integer_sequence<int, R * V>{});
  }
};

template <class T, int R>
void run_rows(const direct_job<T>& job) {
  constexpr int V = simd<T>::vecs, L = simd<T>::lanes;
  index_t c = 0;
  for (; c + V * L <= job.out_cols; c += V * L) block_kernel<T, R, V, false>::run(job, job.in + c, job.out + c, L);
  // The last columns a vector at a time, masked (one copy of the kernel for all of them: compile
  // time, for a few percent of a plane's columns).
  for (; c < job.out_cols; c += L)
    block_kernel<T, R, 1, true>::run(job, job.in + c, job.out + c, int(std::min<index_t>(L, job.out_cols - c)));
}

template <class T, int R>
void run_up_to(const direct_job<T>& job) {
  if constexpr (R > 1) {
    if (job.rows < R) return run_up_to<T, R - 1>(job);
  }
  run_rows<T, R>(job);
}

/// Computes job.rows (1..direct_block_rows) output rows of a direct_job, in blocks no taller than
/// the kernel (block_kernel::run's ramps assume it).
template <class T>
void run(const direct_job<T>& job) {
  if (job.rows <= job.k_rows) return run_up_to<T, direct_block_rows>(job);
  direct_job<T> part = job;
  for (int r = 0; r < job.rows; r += job.k_rows) {
    part.in = job.in + index_t(r) * job.in_step;
    part.out = job.out + index_t(r) * job.out_step;
    part.rows = std::min(job.k_rows, job.rows - r);
    run_up_to<T, direct_block_rows>(part);
  }
}

#include "layer_kernel.inl"
#include "separable_kernel.inl"
