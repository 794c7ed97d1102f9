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
  /// Lanes [lo, hi) of the vector at p, zeros elsewhere; the other lanes' memory is not read.
  static CONVKIT_ALWAYS_INLINE reg load_range(const float* p, int lo, int hi) {
    return _mm512_maskz_loadu_ps(__mmask16(((1u << hi) - 1u) & ~((1u << lo) - 1u)), p);
  }
  /// Lanes 0, 2, 4, ... of a, then of b: every other element of the 2L elements they hold.
  static CONVKIT_ALWAYS_INLINE reg evens(reg a, reg b) {
    return _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), b);
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
  static CONVKIT_ALWAYS_INLINE reg load_range(const double* p, int lo, int hi) {
    return _mm512_maskz_loadu_pd(__mmask8(((1u << hi) - 1u) & ~((1u << lo) - 1u)), p);
  }
  static CONVKIT_ALWAYS_INLINE reg evens(reg a, reg b) {
    return _mm512_permutex2var_pd(a, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), b);
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
  static CONVKIT_ALWAYS_INLINE reg load_range(const float* p, int lo, int hi) {
    return _mm256_maskload_ps(p, _mm256_andnot_si256(mask(lo), mask(hi)));
  }
  static CONVKIT_ALWAYS_INLINE reg evens(reg a, reg b) {  // a0 a2 b0 b2 | a4 a6 b4 b6, then the middle pairs swapped
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
  }
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
  static CONVKIT_ALWAYS_INLINE reg load_range(const double* p, int lo, int hi) {
    return _mm256_maskload_pd(p, _mm256_andnot_si256(mask(lo), mask(hi)));
  }
  static CONVKIT_ALWAYS_INLINE reg evens(reg a, reg b) {  // a0 b0 | a2 b2, then the middle ones swapped
    return _mm256_permute4x64_pd(_mm256_unpacklo_pd(a, b), 0xD8);
  }
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
  static CONVKIT_ALWAYS_INLINE reg load_range(const T* p, int lo, int hi) { return lo < hi ? *p : T(0); }
  static CONVKIT_ALWAYS_INLINE reg evens(reg a, reg) { return a; }
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

// Streams: a kernel of R = KH rows over m * R output rows, the input rows walked down in groups of
// R with the accumulators of one column tile (R x V) as a ring: output row o lives in slot o % R
// from its first input row (o) to its last (o + R - 1), so every input row feeds all R slots (slot
// s with kernel row (i - s) % R, a constant in each compiled phase i % R); each output row is
// stored as its last input row is done and its slot starts the row R further down. Only the first
// and last R - 1 input rows of the job sum products that no output keeps (block_kernel pays a ramp
// of that size in every block). A visit takes a few groups through one column tile, then leaves
// its R - 1 unfinished rows in the output rows they belong to for the next visit of that tile, so
// input rows are read left to right a few at a time, as block_kernel reads them: walking a whole
// column tile down first missed in cache far more (1000-column images, 7 x 7: 36% of the AVX-512
// peak against the blocks' 55%).

/// Vectors of columns in a stream tile of R rows, 0 where this instruction set does not stream R
/// rows of T. AVX2, 2 to 6 rows: 6 x 2 accumulators, 2 inputs and a weight in the 16 ymm registers;
/// there block_kernel's ramps cost most (one-thread A/B on the 2-vCPU Xeon, best of 15 runs, the
/// fraction of the AVX2 peak, 1000^2: float 'valid' 3 x 3 39 -> 41%, 5 x 5 60 -> 62%, 'same' 29 -> 32%,
/// 45 -> 51%; double 'valid' 38 -> 41%, 56 -> 60%, 'same' 26 -> 32%, 44 -> 49%). AVX-512 streams
/// measured no better than its 6 x 4 blocks at 1000^2 and 4000^2 (its ramps cost less beside 24
/// accumulators): it keeps the blocks.
template <class T>
constexpr int stream_vectors(int R) noexcept {
#if CONVKIT_ISA_LEVEL == 1
  return R >= 2 && R <= direct_stream_limit ? 2 : 0;
#else
  return 0 * R;
#endif
}

/// The tallest kernel this instruction set streams for T (0: none).
template <class T>
constexpr int stream_max_rows() noexcept {
  int rows = 0;
  for (int r = 2; r <= direct_stream_limit; ++r)
    if (stream_vectors<T>(r) > 0) rows = r;
  return rows;
}

template <class T, int R, int V>
struct stream_kernel {
  using B = block_kernel<T, R, V, false>;
  using S = typename B::S;
  using reg = typename B::reg;
  using state = typename B::state;
  static constexpr int L = S::lanes;

  // Every slot in phase P: slot s with kernel row (P - s) mod R, column at k.
  template <int P, int... Ss>
  static CONVKIT_ALWAYS_INLINE void slots(state& s, const reg (&x)[V], const T* k, int KW,
                                          std::integer_sequence<int, Ss...>) {
    (B::template multiply<Ss>(s, S::bcast(k + index_t((P - Ss + R) % R) * KW), x, std::make_integer_sequence<int, V>{}),
     ...);
  }

  // One input row (at `in`, phase P) into every slot.
  template <int P>
  static CONVKIT_ALWAYS_INLINE void phase(state& s, const T* in, const direct_job<T>& job) {
    const int KW = job.k_cols;
    for (int v = 0; v < KW; ++v) {
      reg x[V];
      B::load_row(x, in + job.col_off[v], L, std::make_integer_sequence<int, V>{});
      slots<P>(s, x, job.k + v, KW, std::make_integer_sequence<int, R>{});
    }
  }

  template <int Q, int... J>
  static CONVKIT_ALWAYS_INLINE void store(const state& s, T* row, std::integer_sequence<int, J...>) {
    (S::store(row + J * L, s.acc[Q][J]), ...);
  }
  // Slot Q starts the output row at `row`: from zero, or from its values with job.accumulate.
  template <int Q, int... J>
  static CONVKIT_ALWAYS_INLINE void start(state& s, const T* row, bool accumulate, std::integer_sequence<int, J...>) {
    if (accumulate)
      ((s.acc[Q][J] = S::load(row + J * L)), ...);
    else
      ((s.acc[Q][J] = S::zero()), ...);
  }
  template <int Q, int... J>
  static CONVKIT_ALWAYS_INLINE void resume(state& s, const T* row, std::integer_sequence<int, J...>) {
    ((s.acc[Q][J] = S::load(row + J * L)), ...);
  }

  // Input row g R + P (at in + P rows) into every slot, then output row g R + P - R + 1 (slot
  // (P + 1) % R) is stored and its slot starts row g R + P + 1 (`out` is output row g R). The first
  // group (g = 0) stores no row before row 0: its slots 1 .. R - 1 summed nothing that is kept
  // until they start rows 1 .. R - 1. The last call (g = m, `tail`) takes the R - 1 input rows past
  // the groups and starts nothing. Both sum products that no output keeps, the price of one copy
  // of the phases instead of two more with fewer slots (which cost a quarter of a header-only
  // build's compile time for 1-4% at 7 x 7).
  template <int P>
  static CONVKIT_ALWAYS_INLINE void step(state& s, const T* in, T* out, const direct_job<T>& job, bool first,
                                         bool tail) {
    if (tail && P == R - 1) return;
    phase<P>(s, in + index_t(P) * job.in_step, job);
    if (!first || P == R - 1)
      store<(P + 1) % R>(s, out + index_t(P + 1 - R) * job.out_step, std::make_integer_sequence<int, V>{});
    if (!tail && P + 1 < R)
      start<(P + 1) % R>(s, out + index_t(P + 1) * job.out_step, job.accumulate, std::make_integer_sequence<int, V>{});
  }
  template <int... P>
  static CONVKIT_ALWAYS_INLINE void group(state& s, const T* in, T* out, const direct_job<T>& job, bool first,
                                          bool tail, std::integer_sequence<int, P...>) {
    if (!tail) start<0>(s, out, job.accumulate, std::make_integer_sequence<int, V>{});
    (step<P>(s, in, out, job, first, tail), ...);
  }

  // Slots 1 .. R - 1 to or from output rows g R - R + s (`out` is output row g R).
  template <int... Q>
  static CONVKIT_ALWAYS_INLINE void park(const state& s, T* out, index_t out_step, std::integer_sequence<int, Q...>) {
    (store<Q + 1>(s, out + index_t(Q + 1 - R) * out_step, std::make_integer_sequence<int, V>{}), ...);
  }
  template <int... Q>
  static CONVKIT_ALWAYS_INLINE void unpark(state& s, const T* out, index_t out_step, std::integer_sequence<int, Q...>) {
    (resume<Q + 1>(s, out + index_t(Q + 1 - R) * out_step, std::make_integer_sequence<int, V>{}), ...);
  }

  // Groups [g0, g1) of the V * L columns at in / out (g1 <= groups = m): the first starting the
  // job (g0 == 0), the last ending it (g1 == groups), the others resuming and leaving their
  // unfinished rows in the output.
  static void visit(const direct_job<T>& job, const T* in, T* out, index_t g0, index_t g1, index_t groups) {
    state s;
    if (g0 == 0)
      B::zero_all(s, std::make_integer_sequence<int, R * V>{});  // the first group's unkept sums start from 0
    else
      unpark(s, out + g0 * R * job.out_step, job.out_step, std::make_integer_sequence<int, R - 1>{});
    // One copy of the phases: the last visit's tail is one more turn of the loop.
    const index_t end = g1 == groups ? g1 + 1 : g1;
    for (index_t g = g0; g < end; ++g)
      group(s, in + g * R * job.in_step, out + g * R * job.out_step, job, g == 0, g == groups,
            std::make_integer_sequence<int, R>{});
    if (g1 != groups) park(s, out + g1 * R * job.out_step, job.out_step, std::make_integer_sequence<int, R - 1>{});
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

// job's rows in blocks of direct_block_rows, none taller than the kernel (block_kernel::run's ramps
// assume it).
template <class T>
void run_blocks(const direct_job<T>& job) {
  const int height = std::min(direct_block_rows, job.k_rows);
  if (job.rows <= height) return run_up_to<T, direct_block_rows>(job);
  direct_job<T> part = job;
  for (int r = 0; r < job.rows; r += height) {
    part.in = job.in + index_t(r) * job.in_step;
    part.out = job.out + index_t(r) * job.out_step;
    part.rows = std::min(height, job.rows - r);
    run_up_to<T, direct_block_rows>(part);
  }
}

// The whole groups of R rows of job as streams, the columns short of a stream tile by blocks;
// returns the rows done.
template <class T, int R>
int run_streams(const direct_job<T>& job) {
  constexpr int V = stream_vectors<T>(R), W = V * simd<T>::lanes;
  const index_t groups = job.rows / R, per_visit = std::max(1, direct_stream_visit_rows / R);
  const index_t full = job.out_cols / W * W;
  for (index_t g = 0; g < groups; g += per_visit)
    for (index_t c = 0; c < full; c += W)
      stream_kernel<T, R, V>::visit(job, job.in + c, job.out + c, g, std::min(groups, g + per_visit), groups);
  if (const index_t c = full; c < job.out_cols) {
    direct_job<T> rest = job;
    rest.in += c;
    rest.out += c;
    rest.out_cols -= c;
    rest.rows = int(groups) * R;
    run_blocks(rest);
  }
  return int(groups) * R;
}

template <class T, int R = 2>
int run_streams_of(const direct_job<T>& job) {
  if constexpr (R <= direct_stream_limit) {
    if (job.k_rows != R) return run_streams_of<T, R + 1>(job);
    if constexpr (stream_vectors<T>(R) > 0) return run_streams<T, R>(job);
  }
  return 0;
}

/// Computes job.rows output rows of a direct_job: as streams where the kernel's rows have a stream
/// tile and the job holds two groups of them or more, the rest in blocks.
template <class T>
void run(const direct_job<T>& job) {
  const int done = job.rows >= 2 * job.k_rows ? run_streams_of(job) : 0;
  if (done == job.rows) return;
  direct_job<T> rest = job;
  rest.in += index_t(done) * job.in_step;
  rest.out += index_t(done) * job.out_step;
  rest.rows -= done;
  run_blocks(rest);
}

#include "layer_kernel.inl"
#include "separable_kernel.inl"
