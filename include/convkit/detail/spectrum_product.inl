// The frequency-domain multiply-accumulate of the fft backend's layers, written once and compiled
// once per instruction set: spectrum_product.hpp includes it through simd/per_isa.inl, inside namespace
// convkit::detail::<isa> with CONVKIT_ISA_LEVEL set to 0 (portable C++), 1 (AVX2 + FMA) or
// 2 (AVX-512), under a `#pragma GCC target` that enables exactly that set (as the direct backend's
// micro-kernel is built), so users need no -march flags.
//
// Spectra are interleaved complex numbers (re, im, re, im, ...), as FFTW's r2c writes them. For
// y = sum_c x_c * w_c the kernel keeps two accumulators per output vector:
//   a += x * w            lanes (xr wr, xi wi)
//   b += swap(x) * w      lanes (xi wr, xr wi)
// so that each term costs one load of w and two FMAs, and the swap of x is shared by every filter
// of a tile; at the end y = (a.re - a.im, b.re + b.im). A tile holds F filters x P (image, tile)
// pairs of one vector each in registers, accumulated over all input channels before it is stored,
// so that each loaded x serves F filters and each loaded w serves P pairs.

#if CONVKIT_ISA_LEVEL == 2
template <class T>
struct cvec;
template <>
struct cvec<float> {
  using reg = __m512;
  static constexpr int lanes = 16, max_filters = 4, max_pairs = 3;
  static CONVKIT_ALWAYS_INLINE reg zero() { return _mm512_setzero_ps(); }
  static CONVKIT_ALWAYS_INLINE reg load(const float* p) { return _mm512_loadu_ps(p); }
  static CONVKIT_ALWAYS_INLINE void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static CONVKIT_ALWAYS_INLINE reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static CONVKIT_ALWAYS_INLINE reg swap(reg x) { return _mm512_shuffle_ps(x, x, 0xB1); }
  static CONVKIT_ALWAYS_INLINE reg combine(reg a, reg b) {
    return _mm512_mask_blend_ps(__mmask16(0xAAAA), _mm512_sub_ps(a, swap(a)), _mm512_add_ps(b, swap(b)));
  }
};
template <>
struct cvec<double> {
  using reg = __m512d;
  static constexpr int lanes = 8, max_filters = 4, max_pairs = 3;
  static CONVKIT_ALWAYS_INLINE reg zero() { return _mm512_setzero_pd(); }
  static CONVKIT_ALWAYS_INLINE reg load(const double* p) { return _mm512_loadu_pd(p); }
  static CONVKIT_ALWAYS_INLINE void store(double* p, reg v) { _mm512_storeu_pd(p, v); }
  static CONVKIT_ALWAYS_INLINE reg fma(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
  static CONVKIT_ALWAYS_INLINE reg swap(reg x) { return _mm512_shuffle_pd(x, x, 0x55); }
  static CONVKIT_ALWAYS_INLINE reg combine(reg a, reg b) {
    return _mm512_mask_blend_pd(__mmask8(0xAA), _mm512_sub_pd(a, swap(a)), _mm512_add_pd(b, swap(b)));
  }
};
#elif CONVKIT_ISA_LEVEL == 1
template <class T>
struct cvec;
template <>
struct cvec<float> {
  using reg = __m256;
  static constexpr int lanes = 8, max_filters = 2, max_pairs = 2;
  static CONVKIT_ALWAYS_INLINE reg zero() { return _mm256_setzero_ps(); }
  static CONVKIT_ALWAYS_INLINE reg load(const float* p) { return _mm256_loadu_ps(p); }
  static CONVKIT_ALWAYS_INLINE void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static CONVKIT_ALWAYS_INLINE reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static CONVKIT_ALWAYS_INLINE reg swap(reg x) { return _mm256_permute_ps(x, 0xB1); }
  static CONVKIT_ALWAYS_INLINE reg combine(reg a, reg b) {
    return _mm256_blend_ps(_mm256_sub_ps(a, swap(a)), _mm256_add_ps(b, swap(b)), 0xAA);
  }
};
template <>
struct cvec<double> {
  using reg = __m256d;
  static constexpr int lanes = 4, max_filters = 2, max_pairs = 2;
  static CONVKIT_ALWAYS_INLINE reg zero() { return _mm256_setzero_pd(); }
  static CONVKIT_ALWAYS_INLINE reg load(const double* p) { return _mm256_loadu_pd(p); }
  static CONVKIT_ALWAYS_INLINE void store(double* p, reg v) { _mm256_storeu_pd(p, v); }
  static CONVKIT_ALWAYS_INLINE reg fma(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  static CONVKIT_ALWAYS_INLINE reg swap(reg x) { return _mm256_permute_pd(x, 0x5); }
  static CONVKIT_ALWAYS_INLINE reg combine(reg a, reg b) {
    return _mm256_blend_pd(_mm256_sub_pd(a, swap(a)), _mm256_add_pd(b, swap(b)), 0xA);
  }
};
#else
template <class T>
struct cvec {  // portable: one complex number (two lanes) per "register"
  struct reg {
    T re, im;
  };
  static constexpr int lanes = 2, max_filters = 2, max_pairs = 1;
  static CONVKIT_ALWAYS_INLINE reg zero() { return {T(0), T(0)}; }
  static CONVKIT_ALWAYS_INLINE reg load(const T* p) { return {p[0], p[1]}; }
  static CONVKIT_ALWAYS_INLINE void store(T* p, reg v) {
    p[0] = v.re;
    p[1] = v.im;
  }
  static CONVKIT_ALWAYS_INLINE reg fma(reg a, reg b, reg c) { return {a.re * b.re + c.re, a.im * b.im + c.im}; }
  static CONVKIT_ALWAYS_INLINE reg swap(reg x) { return {x.im, x.re}; }
  static CONVKIT_ALWAYS_INLINE reg combine(reg a, reg b) { return {a.re - a.im, b.re + b.im}; }
};
#endif

// A tile of F filters x P pairs, one vector of frequencies each; accumulator I is filter I / P,
// pair I % P. Per input channel: P loads (and swaps) of x, F loads of w, 2 F P FMAs.
template <class T, int F, int P>
struct product_tile {
  using S = cvec<T>;
  using reg = typename S::reg;

  template <int... I>
  static CONVKIT_ALWAYS_INLINE void zero(reg (&a)[F * P], reg (&b)[F * P], std::integer_sequence<int, I...>) {
    ((a[I] = S::zero(), b[I] = S::zero()), ...);
  }

  template <int... J>
  static CONVKIT_ALWAYS_INLINE void load_x(reg (&x)[P], reg (&xs)[P], const T* p, index_t pair_step,
                                           std::integer_sequence<int, J...>) {
    ((x[J] = S::load(p + J * pair_step), xs[J] = S::swap(x[J])), ...);
  }

  // Filter `K`'s w vector times every pair's x.
  template <int K, int... J>
  static CONVKIT_ALWAYS_INLINE void mac_filter(reg (&a)[F * P], reg (&b)[F * P], const reg (&x)[P], const reg (&xs)[P],
                                               const T* w, std::integer_sequence<int, J...>) {
    const reg wv = S::load(w);
    ((a[K * P + J] = S::fma(x[J], wv, a[K * P + J]), b[K * P + J] = S::fma(xs[J], wv, b[K * P + J])), ...);
  }
  template <int... K>
  static CONVKIT_ALWAYS_INLINE void mac(reg (&a)[F * P], reg (&b)[F * P], const reg (&x)[P], const reg (&xs)[P],
                                        const T* w, index_t filter_step, std::integer_sequence<int, K...>) {
    (mac_filter<K>(a, b, x, xs, w + K * filter_step, std::make_integer_sequence<int, P>{}), ...);
  }

  template <int... I>
  static CONVKIT_ALWAYS_INLINE void store(const reg (&a)[F * P], const reg (&b)[F * P], T* y, index_t filter_step,
                                          index_t pair_step, std::integer_sequence<int, I...>) {
    (S::store(y + (I / P) * filter_step + (I % P) * pair_step, S::combine(a[I], b[I])), ...);
  }

  /// The tile whose first filter's w, first pair's x and y are at w, x, y (one vector each).
  static void run(const spectrum_job<T>& job, const T* x, const T* w, T* y) {
    reg a[F * P], b[F * P];
    zero(a, b, std::make_integer_sequence<int, F * P>{});
    for (index_t c = 0; c < job.channels; ++c) {
      reg xv[P], xs[P];
      load_x(xv, xs, x + c * job.x_channel_step, job.x_pair_step, std::make_integer_sequence<int, P>{});
      mac(a, b, xv, xs, w + c * job.w_channel_step, job.w_filter_step, std::make_integer_sequence<int, F>{});
    }
    store(a, b, y, job.y_filter_step, job.y_pair_step, std::make_integer_sequence<int, F * P>{});
  }
};

template <class T>
using tile_fn = void (*)(const spectrum_job<T>&, const T*, const T*, T*);

// tiles<T>()[f - 1][p - 1] runs a tile of f filters and p pairs.
template <class T, int F, int... P>
constexpr std::array<tile_fn<T>, sizeof...(P)> tile_row(std::integer_sequence<int, P...>) {
  return {&product_tile<T, F, P + 1>::run...};
}
template <class T, int... F>
constexpr std::array<std::array<tile_fn<T>, cvec<T>::max_pairs>, sizeof...(F)> tile_table(
    std::integer_sequence<int, F...>) {
  return {tile_row<T, F + 1>(std::make_integer_sequence<int, cvec<T>::max_pairs>{})...};
}

/// y(p, k) = sum over job.channels of x(p, c) * w(k, c) for every pair and filter of the job (see
/// spectrum_job). One vector of frequencies at a time, so that its w for a block of filters and all
/// channels (max_filters * channels vectors) stays in L1 while every pair passes through.
template <class T>
void multiply_accumulate(const spectrum_job<T>& job) {
  constexpr int F = cvec<T>::max_filters, P = cvec<T>::max_pairs, L = cvec<T>::lanes;
  static constexpr auto tiles = tile_table<T>(std::make_integer_sequence<int, F>{});
  for (index_t i = 0; i < job.n; i += L)
    for (index_t p = 0; p < job.pairs; p += P) {
      const int q = static_cast<int>(std::min<index_t>(P, job.pairs - p));
      for (index_t k = 0; k < job.filters; k += F) {
        const int f = static_cast<int>(std::min<index_t>(F, job.filters - k));
        tiles[f - 1][q - 1](job, job.x + p * job.x_pair_step + i, job.w + k * job.w_filter_step + i,
                            job.y + p * job.y_pair_step + k * job.y_filter_step + i);
      }
    }
}
