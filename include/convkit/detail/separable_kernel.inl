// The direct backend's two 1-D passes for low-rank kernels (separable.hpp). Included at the end of
// direct_kernel.inl, so that it is compiled once per instruction set with the micro-kernel's
// simd<T> (one AVX-512, AVX2 or scalar register type, S::vecs registers of outputs per row).
//
//   column pass   the vertical 1-D correlation, read straight from input rows (or a row of border
//                 values); four output rows at once where they read consecutive rows, so that each
//                 input vector loaded feeds up to four multiply-adds
//   row pass      the horizontal 1-D correlation of one column pass result; per tap, one broadcast
//                 weight and S::vecs loads feed S::vecs independent multiply-add chains
//
// The loops over registers are unrolled (CONVKIT_UNROLL) so that the register arrays stay in
// registers at -O2 as well.

#if CONVKIT_ISA_LEVEL == 2
// Taps v0 + s (s < L) of V vectors of outputs: even taps from V + 1 vectors loaded once and
// shifted in registers (AVX-512's valign), odd taps by unaligned loads. Loads alone cross cache
// lines 15 times in 16, shifts alone queue behind the multiply-adds on the shared port; half and
// half measured ~25% faster than either (Zen 4).
template <class T, int V, int... s>
CONVKIT_ALWAYS_INLINE void shifted_taps(typename simd<T>::reg (&a)[V], const typename simd<T>::reg (&x)[V + 1],
                                        const T* in, const T* w, int taps, std::integer_sequence<int, s...>) {
  using S = simd<T>;
  const auto tap = [&](auto shift) {  // inlined: no vector arguments or results cross it
    constexpr int k = decltype(shift)::value;
    if (k >= taps) return false;
    const typename S::reg wk = S::bcast(w + k);
    CONVKIT_UNROLL
    for (int i = 0; i < V; ++i)
      a[i] = S::fma(wk, (k % 2 == 1) ? S::load(in + k + i * S::lanes) : S::template shift<k>(x[i], x[i + 1]), a[i]);
    return true;
  };
  (void)(tap(std::integral_constant<int, s>{}) && ...);
}
#endif

/// out[j] (+)= sum over v < taps of w[v] * in[j * step + v * spacing], j < n; `accumulate` adds to out.
/// With step and spacing 1, `in` must be readable for simd<T>::lanes elements past the last tap.
template <class T>
void row_pass(const T* in, index_t step, const T* w, int taps, index_t spacing, T* out, index_t n, bool accumulate) {
  using S = simd<T>;
  using reg = typename S::reg;
  constexpr int L = S::lanes, V = S::vecs;
  index_t j = 0;
#if CONVKIT_ISA_LEVEL == 2
  if (step == 1 && spacing == 1) {
    for (; j + V * L <= n; j += V * L) {
      reg a[V];
      CONVKIT_UNROLL
      for (int x = 0; x < V; ++x) a[x] = accumulate ? S::load(out + j + x * L) : S::zero();
      for (int v0 = 0; v0 < taps; v0 += L) {
        reg x[V + 1];
        CONVKIT_UNROLL
        for (int i = 0; i <= V; ++i) x[i] = S::load(in + j + v0 + i * L);
        shifted_taps<T, V>(a, x, in + j + v0, w + v0, taps - v0, std::make_integer_sequence<int, L>{});
      }
      CONVKIT_UNROLL
      for (int x = 0; x < V; ++x) S::store(out + j + x * L, a[x]);
    }
  }
#endif
  if (step == 1 && L > 1) {
    for (; j + V * L <= n; j += V * L) {
      reg a[V];
      CONVKIT_UNROLL
      for (int x = 0; x < V; ++x) a[x] = accumulate ? S::load(out + j + x * L) : S::zero();
      for (int v = 0; v < taps; ++v) {
        const reg wv = S::bcast(w + v);
        const T* p = in + j + v * spacing;
        CONVKIT_UNROLL
        for (int x = 0; x < V; ++x) a[x] = S::fma(wv, S::load(p + x * L), a[x]);
      }
      CONVKIT_UNROLL
      for (int x = 0; x < V; ++x) S::store(out + j + x * L, a[x]);
    }
    for (; j < n; j += L) {
      const int m = n - j < L ? int(n - j) : L;
      reg a = accumulate ? S::load_n(out + j, m) : S::zero();
      for (int v = 0; v < taps; ++v) a = S::fma(S::bcast(w + v), S::load_n(in + j + v * spacing, m), a);
      S::store_n(out + j, a, m);
    }
    return;
  }
  for (; j < n; ++j) {
    T acc = accumulate ? out[j] : T(0);
    for (int v = 0; v < taps; ++v) acc += w[v] * in[j * step + v * spacing];
    out[j] = acc;
  }
}

// Output columns [at, at + W * L) of Q rows (the last vector only m wide when `masked`). Plain
// templates, not lambdas: GCC gives lambdas no target attributes.
template <int Q, int W, bool masked, class T>
CONVKIT_ALWAYS_INLINE void column_block(const T* const* rows, const T* w, int taps, T* const* out, index_t at, int m) {
  using S = simd<T>;
  using reg = typename S::reg;
  constexpr int L = S::lanes;
  reg a[Q][W];
  CONVKIT_UNROLL
  for (int q = 0; q < Q; ++q) CONVKIT_UNROLL
  for (int x = 0; x < W; ++x) a[q][x] = S::zero();
  // Input row e feeds output q with tap e - q: every q in the middle, some at the two ends.
  for (int e = 0; e < taps + Q - 1; ++e) {
    reg in[W];
    CONVKIT_UNROLL
    for (int x = 0; x < W; ++x) in[x] = masked ? S::load_n(rows[e] + at + x * L, m) : S::load(rows[e] + at + x * L);
#if defined(__GNUC__) || defined(__clang__)
    // The rows no earlier group read come from memory: ask for them 1 KiB ahead (measured: ~15% of
    // the path's time on a 4000 x 4000 image, which the hardware prefetcher leaves to stall).
    if (Q > 1 && e >= taps - 1 && !masked)
      for (int x = 0; x < W * L; x += 64 / int(sizeof(T))) __builtin_prefetch(rows[e] + at + x + 1024 / sizeof(T));
#endif
    if (e >= Q - 1 && e < taps) {
      CONVKIT_UNROLL
      for (int q = 0; q < Q; ++q) {
        const reg wq = S::bcast(w + e - q);
        CONVKIT_UNROLL
        for (int x = 0; x < W; ++x) a[q][x] = S::fma(wq, in[x], a[q][x]);
      }
    } else {
      CONVKIT_UNROLL
      for (int q = 0; q < Q; ++q) {
        if (e - q < 0 || e - q >= taps) continue;
        const reg wq = S::bcast(w + e - q);
        CONVKIT_UNROLL
        for (int x = 0; x < W; ++x) a[q][x] = S::fma(wq, in[x], a[q][x]);
      }
    }
  }
  CONVKIT_UNROLL
  for (int q = 0; q < Q; ++q) CONVKIT_UNROLL
  for (int x = 0; x < W; ++x) {
    if (masked)
      S::store_n(out[q] + at + x * L, a[q][x], m);
    else
      S::store(out[q] + at + x * L, a[q][x]);
  }
}

/// out[q][j] = sum over u < taps of w[u] * rows[q + u][j], j < n, for q < Q: Q output rows of a
/// vertical pass, each input row loaded once for all of them. Q = 1 reads any list of rows (any
/// stride and dilation); Q = 4 needs the four outputs' rows to be consecutive (stride and dilation 1).
template <int Q, class T>
void column_pass_rows(const T* const* rows, const T* w, int taps, T* const* out, index_t n) {
  constexpr int L = simd<T>::lanes,
                V = Q <= 4 ? simd<T>::vecs : (simd<T>::vecs * 4 / Q > 0 ? simd<T>::vecs * 4 / Q : 1);
  index_t j = 0;
  for (; j + V * L <= n; j += V * L) column_block<Q, V, false>(rows, w, taps, out, j, L);
  for (; j + L <= n; j += L) column_block<Q, 1, false>(rows, w, taps, out, j, L);
  if (j < n) column_block<Q, 1, true>(rows, w, taps, out, j, int(n - j));
}
