// acc = base + sum_k W^T[col[k]] (+ x_k scaling): the event-driven current of one row.
//
// The natural loop (acc[i] += w[i] for each event) is bound by store-to-load
// forwarding on acc: each event reloads what the previous one stored. Here the
// row is cut into tiles that stay in vector registers while every event of
// the row is added, so each event costs only its loads of W^T. The sum per
// element is the same ((base + w_1) + w_2) + ... as the natural loop, in the
// same order, so results are identical.
#pragma once

#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace snntorch_sparse {

template <typename T, bool VALS>
inline void row_sum_generic(T* __restrict__ acc, const T* __restrict__ base, const T* __restrict__ wt,
                            const int32_t* __restrict__ col, const T* __restrict__ val, int64_t k0,
                            int64_t k1, int64_t N, int64_t i0) {
  for (int64_t i = i0; i < N; ++i) acc[i] = base != nullptr ? base[i] : T(0);
  for (int64_t k = k0; k < k1; ++k) {
    const T* __restrict__ w = wt + static_cast<int64_t>(col[k]) * N;
    if (VALS) {
      const T x = val[k];
      for (int64_t i = i0; i < N; ++i) acc[i] += x * w[i];
    } else {
      for (int64_t i = i0; i < N; ++i) acc[i] += w[i];
    }
  }
}

#if defined(__AVX2__)
// 8 registers of 8 floats per tile.
template <bool VALS>
inline int64_t row_sum_avx2(float* __restrict__ acc, const float* __restrict__ base,
                            const float* __restrict__ wt, const int32_t* __restrict__ col,
                            const float* __restrict__ val, int64_t k0, int64_t k1, int64_t N) {
  constexpr int64_t W = 8, R = 8, TILE = W * R;
  int64_t i0 = 0;
  for (; i0 + TILE <= N; i0 += TILE) {
    __m256 a[R];
    for (int r = 0; r < R; ++r)
      a[r] = base != nullptr ? _mm256_loadu_ps(base + i0 + W * r) : _mm256_setzero_ps();
    for (int64_t k = k0; k < k1; ++k) {
      const float* w = wt + static_cast<int64_t>(col[k]) * N + i0;
      if (VALS) {
        const __m256 x = _mm256_set1_ps(val[k]);
        for (int r = 0; r < R; ++r) a[r] = _mm256_add_ps(a[r], _mm256_mul_ps(x, _mm256_loadu_ps(w + W * r)));
      } else {
        for (int r = 0; r < R; ++r) a[r] = _mm256_add_ps(a[r], _mm256_loadu_ps(w + W * r));
      }
    }
    for (int r = 0; r < R; ++r) _mm256_storeu_ps(acc + i0 + W * r, a[r]);
  }
  for (; i0 + W <= N; i0 += W) {
    __m256 a = base != nullptr ? _mm256_loadu_ps(base + i0) : _mm256_setzero_ps();
    for (int64_t k = k0; k < k1; ++k) {
      const float* w = wt + static_cast<int64_t>(col[k]) * N + i0;
      a = VALS ? _mm256_add_ps(a, _mm256_mul_ps(_mm256_set1_ps(val[k]), _mm256_loadu_ps(w)))
               : _mm256_add_ps(a, _mm256_loadu_ps(w));
    }
    _mm256_storeu_ps(acc + i0, a);
  }
  return i0;
}

// 8 registers of 4 doubles per tile.
template <bool VALS>
inline int64_t row_sum_avx2(double* __restrict__ acc, const double* __restrict__ base,
                            const double* __restrict__ wt, const int32_t* __restrict__ col,
                            const double* __restrict__ val, int64_t k0, int64_t k1, int64_t N) {
  constexpr int64_t W = 4, R = 8, TILE = W * R;
  int64_t i0 = 0;
  for (; i0 + TILE <= N; i0 += TILE) {
    __m256d a[R];
    for (int r = 0; r < R; ++r)
      a[r] = base != nullptr ? _mm256_loadu_pd(base + i0 + W * r) : _mm256_setzero_pd();
    for (int64_t k = k0; k < k1; ++k) {
      const double* w = wt + static_cast<int64_t>(col[k]) * N + i0;
      if (VALS) {
        const __m256d x = _mm256_set1_pd(val[k]);
        for (int r = 0; r < R; ++r) a[r] = _mm256_add_pd(a[r], _mm256_mul_pd(x, _mm256_loadu_pd(w + W * r)));
      } else {
        for (int r = 0; r < R; ++r) a[r] = _mm256_add_pd(a[r], _mm256_loadu_pd(w + W * r));
      }
    }
    for (int r = 0; r < R; ++r) _mm256_storeu_pd(acc + i0 + W * r, a[r]);
  }
  return i0;
}
#endif

// acc[0:N] = (base or 0) + sum over events k in [k0, k1) of val_k * W^T[col_k] (val = 1 if null).
template <typename T>
inline void row_sum(T* __restrict__ acc, const T* __restrict__ base, const T* __restrict__ wt,
                    const int32_t* __restrict__ col, const T* __restrict__ val, int64_t k0, int64_t k1,
                    int64_t N) {
  int64_t i0 = 0;
#if defined(__AVX2__)
  i0 = val != nullptr ? row_sum_avx2<true>(acc, base, wt, col, val, k0, k1, N)
                      : row_sum_avx2<false>(acc, base, wt, col, val, k0, k1, N);
#endif
  if (i0 < N) {
    if (val != nullptr) row_sum_generic<T, true>(acc, base, wt, col, val, k0, k1, N, i0);
    else row_sum_generic<T, false>(acc, base, wt, col, val, k0, k1, N, i0);
  }
}

}  // namespace snntorch_sparse

// ---------------------------------------------------------------------------
// Row helpers of the fused kernels: compaction, dot product, scatter-add.
namespace snntorch_sparse {

// out[q] = i for every i with x[i] != 0 (vals[q] = x[i] when vals is given); returns q.
template <typename T>
inline int64_t compact_nonzero(const T* __restrict__ x, int32_t* __restrict__ out, T* __restrict__ vals,
                               int64_t N) {
  int64_t q = 0, i = 0;
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    const __m256 zero = _mm256_setzero_ps();
    for (; i + 8 <= N; i += 8) {
      unsigned m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(reinterpret_cast<const float*>(x) + i),
                                                    zero, _CMP_NEQ_UQ));
      while (m) {
        const int l = __builtin_ctz(m);
        m &= m - 1;
        out[q] = static_cast<int32_t>(i + l);
        if (vals) vals[q] = x[i + l];
        ++q;
      }
    }
  } else {
    const __m256d zero = _mm256_setzero_pd();
    for (; i + 4 <= N; i += 4) {
      unsigned m = _mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(reinterpret_cast<const double*>(x) + i),
                                                    zero, _CMP_NEQ_UQ));
      while (m) {
        const int l = __builtin_ctz(m);
        m &= m - 1;
        out[q] = static_cast<int32_t>(i + l);
        if (vals) vals[q] = x[i + l];
        ++q;
      }
    }
  }
#endif
  for (; i < N; ++i) {  // branch-free
    out[q] = static_cast<int32_t>(i);
    if (vals) vals[q] = x[i];
    q += x[i] != T(0);
  }
  return q;
}

// Active entries lo < u[i] - th[i] < hi: out[q] = i, shift[q] = u[i] - th[i]; returns q.
template <typename T>
inline int64_t compact_window(const T* __restrict__ u, const T* __restrict__ th, T lo, T hi,
                              int32_t* __restrict__ out, T* __restrict__ shift, int64_t N) {
  int64_t q = 0, i = 0;
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    for (; i + 8 <= N; i += 8) {
      const __m256 sh = _mm256_sub_ps(_mm256_loadu_ps(reinterpret_cast<const float*>(u) + i),
                                      _mm256_loadu_ps(reinterpret_cast<const float*>(th) + i));
      unsigned m = _mm256_movemask_ps(_mm256_and_ps(_mm256_cmp_ps(sh, vlo, _CMP_GT_OQ),
                                                    _mm256_cmp_ps(sh, vhi, _CMP_LT_OQ)));
      while (m) {
        const int l = __builtin_ctz(m);
        m &= m - 1;
        out[q] = static_cast<int32_t>(i + l);
        shift[q] = u[i + l] - th[i + l];
        ++q;
      }
    }
  } else {
    const __m256d vlo = _mm256_set1_pd(lo), vhi = _mm256_set1_pd(hi);
    for (; i + 4 <= N; i += 4) {
      const __m256d sh = _mm256_sub_pd(_mm256_loadu_pd(reinterpret_cast<const double*>(u) + i),
                                       _mm256_loadu_pd(reinterpret_cast<const double*>(th) + i));
      unsigned m = _mm256_movemask_pd(_mm256_and_pd(_mm256_cmp_pd(sh, vlo, _CMP_GT_OQ),
                                                    _mm256_cmp_pd(sh, vhi, _CMP_LT_OQ)));
      while (m) {
        const int l = __builtin_ctz(m);
        m &= m - 1;
        out[q] = static_cast<int32_t>(i + l);
        shift[q] = u[i + l] - th[i + l];
        ++q;
      }
    }
  }
#endif
  for (; i < N; ++i) {
    const T sh = u[i] - th[i];
    out[q] = static_cast<int32_t>(i);
    shift[q] = sh;
    q += (sh > lo) & (sh < hi);
  }
  return q;
}

// <a, b> in a fixed order: float32 under AVX2 with 4 x 8 partial sums, otherwise 8.
template <typename T>
inline T dot_row(const T* __restrict__ a, const T* __restrict__ b, int64_t n) {
  int64_t i = 0;
  T head = T(0);
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const float* fa = reinterpret_cast<const float*>(a);
    const float* fb = reinterpret_cast<const float*>(b);
    for (; i + 32 <= n; i += 32) {
      s0 = _mm256_add_ps(s0, _mm256_mul_ps(_mm256_loadu_ps(fa + i), _mm256_loadu_ps(fb + i)));
      s1 = _mm256_add_ps(s1, _mm256_mul_ps(_mm256_loadu_ps(fa + i + 8), _mm256_loadu_ps(fb + i + 8)));
      s2 = _mm256_add_ps(s2, _mm256_mul_ps(_mm256_loadu_ps(fa + i + 16), _mm256_loadu_ps(fb + i + 16)));
      s3 = _mm256_add_ps(s3, _mm256_mul_ps(_mm256_loadu_ps(fa + i + 24), _mm256_loadu_ps(fb + i + 24)));
    }
    for (; i + 8 <= n; i += 8)
      s0 = _mm256_add_ps(s0, _mm256_mul_ps(_mm256_loadu_ps(fa + i), _mm256_loadu_ps(fb + i)));
    const __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    head = static_cast<T>(_mm_cvtss_f32(h));
  }
#endif
  T s[8] = {T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0)};
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) s[l] += a[i + l] * b[i + l];
  for (int l = 0; i < n; ++i, ++l) s[l] += a[i] * b[i];
  return head + (((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])));
}

// dst_k[0:N] += (val_k or 1) * src[0:N] for every event k (dst_k = base + col_k * N):
// src is held in registers tile by tile while the events' rows are updated.
template <typename T>
inline void scatter_add_rows(T* __restrict__ base, const T* __restrict__ src, const int32_t* __restrict__ col,
                             const T* __restrict__ val, int64_t k0, int64_t k1, int64_t N) {
  int64_t i0 = 0;
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    constexpr int64_t W = 8, R = 8, TILE = W * R;
    for (; i0 + TILE <= N; i0 += TILE) {
      __m256 a[R];
      for (int r = 0; r < R; ++r) a[r] = _mm256_loadu_ps(reinterpret_cast<const float*>(src) + i0 + W * r);
      for (int64_t k = k0; k < k1; ++k) {
        float* d = reinterpret_cast<float*>(base) + static_cast<int64_t>(col[k]) * N + i0;
        if (val) {
          const __m256 x = _mm256_set1_ps(static_cast<float>(val[k]));
          for (int r = 0; r < R; ++r)
            _mm256_storeu_ps(d + W * r, _mm256_add_ps(_mm256_loadu_ps(d + W * r), _mm256_mul_ps(x, a[r])));
        } else {
          for (int r = 0; r < R; ++r) _mm256_storeu_ps(d + W * r, _mm256_add_ps(_mm256_loadu_ps(d + W * r), a[r]));
        }
      }
    }
  }
#endif
  if (i0 < N) {
    for (int64_t k = k0; k < k1; ++k) {
      T* __restrict__ d = base + static_cast<int64_t>(col[k]) * N;
      if (val) {
        const T x = val[k];
        for (int64_t i = i0; i < N; ++i) d[i] += x * src[i];
      } else {
        for (int64_t i = i0; i < N; ++i) d[i] += src[i];
      }
    }
  }
}

}  // namespace snntorch_sparse

// ---------------------------------------------------------------------------
// AVX-512 versions with the whole row held in registers (N <= 16 * NV floats):
// one row's h (or current) stays in up to 16 zmm registers while every event
// or active entry of the row is processed. Used when built with -mavx512f.
#if defined(__AVX512F__)
#include <immintrin.h>
namespace snntorch_sparse {
namespace avx512 {

template <int NV>
inline void load_row(const float* p, int64_t N, __m512* a) {
  for (int v = 0; v < NV; ++v) {
    const int64_t left = N - 16 * v;
    const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
    a[v] = _mm512_maskz_loadu_ps(m, p + 16 * v);
  }
}

template <int NV>
inline void store_row(float* p, int64_t N, const __m512* a) {
  for (int v = 0; v < NV; ++v) {
    const int64_t left = N - 16 * v;
    const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
    _mm512_mask_storeu_ps(p + 16 * v, m, a[v]);
  }
}

// out[k] = <h, W^T[col_k]> for the row's entries k in [k0, k1).
template <int NV>
inline void dots(const float* h, const float* wt, const int32_t* col, int64_t k0, int64_t k1, int64_t N,
                 float* out) {
  __m512 a[NV];
  load_row<NV>(h, N, a);
  for (int64_t k = k0; k < k1; ++k) {
    const float* w = wt + static_cast<int64_t>(col[k]) * N;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    for (int v = 0; v < NV; ++v) {
      const int64_t left = N - 16 * v;
      const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
      const __m512 p = _mm512_mul_ps(a[v], _mm512_maskz_loadu_ps(m, w + 16 * v));
      if (v % 2 == 0) s0 = _mm512_add_ps(s0, p);
      else s1 = _mm512_add_ps(s1, p);
    }
    out[k] = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
  }
}

// dst_k += (val_k or 1) * h for the rows dst_k = base + col_k * N of the row's events.
template <int NV>
inline void scatter(float* base, const float* h, const int32_t* col, const float* val, int64_t k0, int64_t k1,
                    int64_t N) {
  __m512 a[NV];
  load_row<NV>(h, N, a);
  for (int64_t k = k0; k < k1; ++k) {
    float* d = base + static_cast<int64_t>(col[k]) * N;
    const __m512 x = _mm512_set1_ps(val ? val[k] : 1.0f);
    for (int v = 0; v < NV; ++v) {
      const int64_t left = N - 16 * v;
      const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
      const __m512 add = val ? _mm512_mul_ps(x, a[v]) : a[v];
      _mm512_mask_storeu_ps(d + 16 * v, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, d + 16 * v), add));
    }
  }
}

// acc = base + sum_k (val_k or 1) * W^T[col_k], in event order.
template <int NV>
inline void event_sum(float* acc, const float* base, const float* wt, const int32_t* col, const float* val,
                      int64_t k0, int64_t k1, int64_t N) {
  __m512 a[NV];
  if (base) load_row<NV>(base, N, a);
  else for (int v = 0; v < NV; ++v) a[v] = _mm512_setzero_ps();
  for (int64_t k = k0; k < k1; ++k) {
    const float* w = wt + static_cast<int64_t>(col[k]) * N;
    const __m512 x = _mm512_set1_ps(val ? val[k] : 1.0f);
    for (int v = 0; v < NV; ++v) {
      const int64_t left = N - 16 * v;
      const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
      const __m512 wv = _mm512_maskz_loadu_ps(m, w + 16 * v);
      a[v] = _mm512_add_ps(a[v], val ? _mm512_mul_ps(x, wv) : wv);
    }
  }
  store_row<NV>(acc, N, a);
}

// Dispatch on the number of registers a row needs; false: N too large (> 256).
#define SNNTORCH_SPARSE_NV_SWITCH(N, CALL)                                     \
  switch ((N + 15) / 16) {                                                     \
    case 1: CALL(1); return true; case 2: CALL(2); return true;               \
    case 3: CALL(3); return true; case 4: CALL(4); return true;               \
    case 5: CALL(5); return true; case 6: CALL(6); return true;               \
    case 7: CALL(7); return true; case 8: CALL(8); return true;               \
    case 9: CALL(9); return true; case 10: CALL(10); return true;             \
    case 11: CALL(11); return true; case 12: CALL(12); return true;           \
    case 13: CALL(13); return true; case 14: CALL(14); return true;           \
    case 15: CALL(15); return true; case 16: CALL(16); return true;           \
    default: return false;                                                     \
  }

inline bool dots_any(const float* h, const float* wt, const int32_t* col, int64_t k0, int64_t k1, int64_t N,
                     float* out) {
#define CALL(NV) dots<NV>(h, wt, col, k0, k1, N, out)
  SNNTORCH_SPARSE_NV_SWITCH(N, CALL)
#undef CALL
}

inline bool scatter_any(float* base, const float* h, const int32_t* col, const float* val, int64_t k0,
                        int64_t k1, int64_t N) {
#define CALL(NV) scatter<NV>(base, h, col, val, k0, k1, N)
  SNNTORCH_SPARSE_NV_SWITCH(N, CALL)
#undef CALL
}

inline bool event_sum_any(float* acc, const float* base, const float* wt, const int32_t* col, const float* val,
                          int64_t k0, int64_t k1, int64_t N) {
#define CALL(NV) event_sum<NV>(acc, base, wt, col, val, k0, k1, N)
  SNNTORCH_SPARSE_NV_SWITCH(N, CALL)
#undef CALL
}

}  // namespace avx512
}  // namespace snntorch_sparse
#endif

// Register-resident fast paths: true when they handled the row (float32 with
// AVX-512 and N <= 256), false when the caller must use the portable helpers.
namespace snntorch_sparse {
template <typename T>
inline bool fast_event_sum(T*, const T*, const T*, const int32_t*, const T*, int64_t, int64_t, int64_t) {
  return false;
}
template <typename T>
inline bool fast_scatter(T*, const T*, const int32_t*, const T*, int64_t, int64_t, int64_t) {
  return false;
}
template <typename T>
inline bool fast_dots(const T*, const T*, const int32_t*, int64_t, int64_t, int64_t, T*) {
  return false;
}
#if defined(__AVX512F__)
template <>
inline bool fast_event_sum<float>(float* acc, const float* base, const float* wt, const int32_t* col,
                                  const float* val, int64_t k0, int64_t k1, int64_t N) {
  return avx512::event_sum_any(acc, base, wt, col, val, k0, k1, N);
}
template <>
inline bool fast_dots<float>(const float* h, const float* wt, const int32_t* col, int64_t k0, int64_t k1,
                             int64_t N, float* out) {
  return avx512::dots_any(h, wt, col, k0, k1, N, out);
}
#endif
}  // namespace snntorch_sparse
