// Per-row building blocks of the CPU kernels (csrc/cpu/lif_scan.cpp, fused_lif.cpp).
//
// * lif_row: one time step of the LIF recurrence, in reference.lif_scan's order
//   (the one definition of it: every CPU kernel that scans calls this).
// * row_sum: the event-driven current of one row, acc = base + sum_k W^T[col_k].
// * compact_nonzero / compact_window: CSR columns of one row.
// * dot_row / dot_rows: input-gradient dot products.
// * scatter_add_rows: weight-gradient rows += h, event by event (narrow layers).
// * gather_add_rows: one weight-gradient row += all its events' h rows.
//
// float32 gets hand-written AVX2 paths (and AVX-512 dot products) when the
// library is built with those flags; float64 and other builds use the portable
// loops. Every path sums in a fixed order, so results are deterministic.
#pragma once

#include <cstdint>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace snntorch_sparse {

// One time step of the LIF recurrence for one row: u (state), I (current),
// be/th (per-element beta and threshold) -> u updated, s = spikes. Every
// multiply and add rounds separately (built with -ffp-contract=off).
template <typename T, int MODE>
inline void lif_row(T* __restrict__ u, const T* __restrict__ I, const T* __restrict__ be,
                    const T* __restrict__ th, T* __restrict__ s, int64_t N) {
  for (int64_t i = 0; i < N; ++i) {
    T v = u[i];
    const T rst = static_cast<T>(v - th[i] > T(0));
    if (MODE == 0) {
      const T a = be[i] * v;
      const T c = a + I[i];
      const T d = rst * th[i];
      v = c - d;
    } else if (MODE == 1) {
      const T keep = T(1) - rst;
      const T k = keep * v;
      const T a = be[i] * k;
      v = a + I[i];
    } else {
      const T a = be[i] * v;
      v = a + I[i];
    }
    u[i] = v;
    s[i] = static_cast<T>(v - th[i] > T(0));
  }
}

// acc[0:N] = (base or 0) + sum over events k in [k0, k1) of (val_k or 1) * W^T[col_k].
//
// The natural loop (acc[i] += w[i] per event) is bound by store-to-load
// forwarding on acc; the AVX2 path keeps 64-float tiles of acc in registers
// while every event of the row is added. Same per-element order either way.
template <typename T>
inline void row_sum(T* __restrict__ acc, const T* __restrict__ base, const T* __restrict__ wt,
                    const int32_t* __restrict__ col, const T* __restrict__ val, int64_t k0, int64_t k1,
                    int64_t N) {
  int64_t i0 = 0;
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    constexpr int64_t W = 8, R = 8;
    const float* fb = reinterpret_cast<const float*>(base);
    const float* fw = reinterpret_cast<const float*>(wt);
    const float* fv = reinterpret_cast<const float*>(val);
    float* fa = reinterpret_cast<float*>(acc);
    for (; i0 + W * R <= N; i0 += W * R) {
      __m256 a[R];
      for (int r = 0; r < R; ++r) a[r] = fb ? _mm256_loadu_ps(fb + i0 + W * r) : _mm256_setzero_ps();
      for (int64_t k = k0; k < k1; ++k) {
        const float* w = fw + static_cast<int64_t>(col[k]) * N + i0;
        const __m256 x = _mm256_set1_ps(fv ? fv[k] : 1.0f);
        for (int r = 0; r < R; ++r) {
          const __m256 wv = _mm256_loadu_ps(w + W * r);
          a[r] = _mm256_add_ps(a[r], fv ? _mm256_mul_ps(x, wv) : wv);
        }
      }
      for (int r = 0; r < R; ++r) _mm256_storeu_ps(fa + i0 + W * r, a[r]);
    }
  }
#endif
  for (int64_t i = i0; i < N; ++i) acc[i] = base != nullptr ? base[i] : T(0);
  if (i0 == N) return;
  for (int64_t k = k0; k < k1; ++k) {
    const T* __restrict__ w = wt + static_cast<int64_t>(col[k]) * N;
    const T x = val ? val[k] : T(1);
    for (int64_t i = i0; i < N; ++i) acc[i] += val ? x * w[i] : w[i];
  }
}

// Columns i of one row where PRED(i) holds, written to out (and value(i) to vals
// when given); the AVX2 path tests 8 floats at a time and walks only the set bits.
// compact_nonzero: x[i] != 0.   compact_window: -win[i] < u[i] - th[i] < win[i], value u - th.
template <typename T>
inline int64_t compact_nonzero(const T* __restrict__ x, int32_t* __restrict__ out, T* __restrict__ vals,
                               int64_t N) {
  int64_t q = 0, i = 0;
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    const __m256 zero = _mm256_setzero_ps();
    for (; i + 8 <= N; i += 8) {
      unsigned m = _mm256_movemask_ps(
          _mm256_cmp_ps(_mm256_loadu_ps(reinterpret_cast<const float*>(x) + i), zero, _CMP_NEQ_UQ));
      for (; m; m &= m - 1) {
        const int64_t j = i + __builtin_ctz(m);
        out[q] = static_cast<int32_t>(j);
        if (vals) vals[q] = x[j];
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

template <typename T>
inline int64_t compact_window(const T* __restrict__ u, const T* __restrict__ th, const T* __restrict__ win,
                              int32_t* __restrict__ out, T* __restrict__ shift, int64_t N) {
  int64_t q = 0, i = 0;
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (; i + 8 <= N; i += 8) {
      const __m256 sh = _mm256_sub_ps(_mm256_loadu_ps(reinterpret_cast<const float*>(u) + i),
                                      _mm256_loadu_ps(reinterpret_cast<const float*>(th) + i));
      const __m256 vhi = _mm256_loadu_ps(reinterpret_cast<const float*>(win) + i);
      const __m256 vlo = _mm256_xor_ps(vhi, sign);
      unsigned m = _mm256_movemask_ps(
          _mm256_and_ps(_mm256_cmp_ps(sh, vlo, _CMP_GT_OQ), _mm256_cmp_ps(sh, vhi, _CMP_LT_OQ)));
      for (; m; m &= m - 1) {
        const int64_t j = i + __builtin_ctz(m);
        out[q] = static_cast<int32_t>(j);
        shift[q] = u[j] - th[j];
        ++q;
      }
    }
  }
#endif
  for (; i < N; ++i) {
    const T sh = u[i] - th[i];
    out[q] = static_cast<int32_t>(i);
    shift[q] = sh;
    q += (sh > -win[i]) & (sh < win[i]);
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

#if defined(__AVX512F__)
// Lanes of vector v (16 floats each) that lie inside a row of N floats.
inline __mmask16 tail_mask(int64_t N, int v) {
  const int64_t left = N - 16 * int64_t(v);
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
}

// CASE(NV) for NV = 1..16: the switch cases of the AVX-512 kernels templated on
// the number of zmm registers a row takes (rows of up to 256 floats).
#define SNNTORCH_SPARSE_NV_CASES(CASE)                                                       \
  CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8) CASE(9) CASE(10) CASE(11) \
  CASE(12) CASE(13) CASE(14) CASE(15) CASE(16)
#endif

#if defined(__AVX512F__)
// out[k] = <h, W^T[col_k]> for k in [k0, k1), with h (N <= 16 * NV floats) held
// in NV zmm registers across all the row's entries; two entries at a time
// (their reductions share the shuffles), fused multiply-adds. The partial sums
// are in a fixed order, so the result is deterministic.
template <int NV>
inline void dot_rows_avx512(const float* h, const float* wt, const int32_t* col, int64_t k0, int64_t k1,
                                int64_t N, int64_t ld, float* out) {
  __m512 a[NV];
  for (int v = 0; v < NV; ++v) a[v] = _mm512_maskz_loadu_ps(tail_mask(N, v), h + 16 * v);
  int64_t k = k0;
  for (; k + 2 <= k1; k += 2) {
    const float* w0 = wt + static_cast<int64_t>(col[k]) * ld;
    const float* w1 = wt + static_cast<int64_t>(col[k + 1]) * ld;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), u0 = s0, u1 = s0;
    for (int v = 0; v < NV; ++v) {
      const __mmask16 m = tail_mask(N, v);
      if (v % 2 == 0) {
        s0 = _mm512_fmadd_ps(a[v], _mm512_maskz_loadu_ps(m, w0 + 16 * v), s0);
        u0 = _mm512_fmadd_ps(a[v], _mm512_maskz_loadu_ps(m, w1 + 16 * v), u0);
      } else {
        s1 = _mm512_fmadd_ps(a[v], _mm512_maskz_loadu_ps(m, w0 + 16 * v), s1);
        u1 = _mm512_fmadd_ps(a[v], _mm512_maskz_loadu_ps(m, w1 + 16 * v), u1);
      }
    }
    const __m512 s = _mm512_add_ps(s0, s1), u = _mm512_add_ps(u0, u1);
    // reduce both: low/high 256-bit halves of s and u side by side
    const __m512 lo = _mm512_shuffle_f32x4(s, u, 0x44), hi = _mm512_shuffle_f32x4(s, u, 0xEE);
    const __m512 p = _mm512_add_ps(lo, hi);  // 128-bit lanes [s, s, u, u]
    const __m256 q = _mm256_add_ps(_mm512_castps512_ps256(_mm512_shuffle_f32x4(p, p, 0x08)),
                                   _mm512_castps512_ps256(_mm512_shuffle_f32x4(p, p, 0x0D)));
    // q = [4 partial sums of s | 4 of u]
    __m128 qs = _mm256_castps256_ps128(q), qu = _mm256_extractf128_ps(q, 1);
    __m128 r = _mm_hadd_ps(qs, qu);  // s01 s23 u01 u23
    r = _mm_hadd_ps(r, r);           // s u s u
    out[k] = _mm_cvtss_f32(r);
    out[k + 1] = _mm_cvtss_f32(_mm_shuffle_ps(r, r, 1));
  }
  for (; k < k1; ++k) {
    const float* w = wt + static_cast<int64_t>(col[k]) * ld;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    for (int v = 0; v < NV; ++v) {
      if (v % 2 == 0) s0 = _mm512_fmadd_ps(a[v], _mm512_maskz_loadu_ps(tail_mask(N, v), w + 16 * v), s0);
      else s1 = _mm512_fmadd_ps(a[v], _mm512_maskz_loadu_ps(tail_mask(N, v), w + 16 * v), s1);
    }
    out[k] = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
  }
}
#endif

#if defined(__AVX512F__)
// dot_rows_avx512 for rows longer than 256 floats: h is streamed rather than held in
// registers, two entries at a time so each h vector is loaded once for both, two
// partial sums per entry (even / odd vectors), masked tail; fixed order, deterministic.
inline void dot_rows_avx512_long(const float* h, const float* wt, const int32_t* col, int64_t k0,
                                 int64_t k1, int64_t N, int64_t ld, float* out) {
  const int64_t full = N / 16;
  const __mmask16 tail = tail_mask(N, static_cast<int>(full));  // 0 when 16 | N
  int64_t k = k0;
  for (; k + 2 <= k1; k += 2) {
    const float* w0 = wt + static_cast<int64_t>(col[k]) * ld;
    const float* w1 = wt + static_cast<int64_t>(col[k + 1]) * ld;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, u0 = s0, u1 = s0;
    int64_t v = 0;
    for (; v + 2 <= full; v += 2) {
      const __m512 a0 = _mm512_loadu_ps(h + 16 * v), a1 = _mm512_loadu_ps(h + 16 * v + 16);
      s0 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(w0 + 16 * v), s0);
      u0 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(w1 + 16 * v), u0);
      s1 = _mm512_fmadd_ps(a1, _mm512_loadu_ps(w0 + 16 * v + 16), s1);
      u1 = _mm512_fmadd_ps(a1, _mm512_loadu_ps(w1 + 16 * v + 16), u1);
    }
    if (v < full) {
      const __m512 a0 = _mm512_loadu_ps(h + 16 * v);
      s0 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(w0 + 16 * v), s0);
      u0 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(w1 + 16 * v), u0);
      ++v;
    }
    if (tail) {
      const __m512 a1 = _mm512_maskz_loadu_ps(tail, h + 16 * v);
      s1 = _mm512_fmadd_ps(a1, _mm512_maskz_loadu_ps(tail, w0 + 16 * v), s1);
      u1 = _mm512_fmadd_ps(a1, _mm512_maskz_loadu_ps(tail, w1 + 16 * v), u1);
    }
    out[k] = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    out[k + 1] = _mm512_reduce_add_ps(_mm512_add_ps(u0, u1));
  }
  for (; k < k1; ++k) {
    const float* w = wt + static_cast<int64_t>(col[k]) * ld;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    int64_t v = 0;
    for (; v + 2 <= full; v += 2) {
      s0 = _mm512_fmadd_ps(_mm512_loadu_ps(h + 16 * v), _mm512_loadu_ps(w + 16 * v), s0);
      s1 = _mm512_fmadd_ps(_mm512_loadu_ps(h + 16 * v + 16), _mm512_loadu_ps(w + 16 * v + 16), s1);
    }
    if (v < full) {
      s0 = _mm512_fmadd_ps(_mm512_loadu_ps(h + 16 * v), _mm512_loadu_ps(w + 16 * v), s0);
      ++v;
    }
    if (tail) s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, h + 16 * v), _mm512_maskz_loadu_ps(tail, w + 16 * v), s1);
    out[k] = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
  }
}
#endif

// out[k] = <h, W^T[col_k]> for the row's entries k in [k0, k1) (W^T rows ld apart).
template <typename T>
inline void dot_rows(const T* h, const T* wt, const int32_t* col, int64_t k0, int64_t k1, int64_t N, int64_t ld,
                     T* out) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4) {
    const float* fh = reinterpret_cast<const float*>(h);
    const float* fw = reinterpret_cast<const float*>(wt);
    float* fo = reinterpret_cast<float*>(out);
    switch ((N + 15) / 16) {
#define SNNTORCH_SPARSE_NV(NV) \
  case NV: dot_rows_avx512<NV>(fh, fw, col, k0, k1, N, ld, fo); return;
      SNNTORCH_SPARSE_NV_CASES(SNNTORCH_SPARSE_NV)
#undef SNNTORCH_SPARSE_NV
      default:
        if (N > 0) {
          dot_rows_avx512_long(fh, fw, col, k0, k1, N, ld, fo);
          return;
        }
        break;
    }
  }
#endif
  for (int64_t k = k0; k < k1; ++k) out[k] = dot_row<T>(h, wt + static_cast<int64_t>(col[k]) * ld, N);
}

#if defined(__AVX512F__)
// scatter_add_rows for N <= 16 * NV floats: src held in NV zmm registers (the
// last one masked), one pass over each event's row. When the destination rows
// are padded to whole vectors (ld >= 16 * NV) the last vector is loaded and
// stored whole: src is zero past N, so the padding lanes only get + 0, and
// a full store forwards to the next event's load of the same row where a
// masked one does not.
template <int NV>
inline void scatter_add_rows_avx512(float* base, const float* src, const int32_t* col, const float* val,
                                    int64_t k0, int64_t k1, int64_t N, int64_t ld) {
  const __mmask16 last = tail_mask(N, NV - 1);  // only the last vector is partial
  const __mmask16 io = ld >= 16 * NV ? __mmask16(0xFFFF) : last;
  __m512 a[NV];
  for (int v = 0; v < NV - 1; ++v) a[v] = _mm512_loadu_ps(src + 16 * v);
  a[NV - 1] = _mm512_maskz_loadu_ps(last, src + 16 * (NV - 1));
  for (int64_t k = k0; k < k1; ++k) {
    float* d = base + static_cast<int64_t>(col[k]) * ld;
    const __m512 x = _mm512_set1_ps(val != nullptr ? val[k] : 1.0f);
    for (int v = 0; v < NV - 1; ++v) {
      const __m512 y = val != nullptr ? _mm512_mul_ps(x, a[v]) : a[v];
      _mm512_storeu_ps(d + 16 * v, _mm512_add_ps(_mm512_loadu_ps(d + 16 * v), y));
    }
    const __m512 y = val != nullptr ? _mm512_mul_ps(x, a[NV - 1]) : a[NV - 1];
    float* dl = d + 16 * (NV - 1);
    if (io == __mmask16(0xFFFF))
      _mm512_storeu_ps(dl, _mm512_add_ps(_mm512_loadu_ps(dl), y));
    else
      _mm512_mask_storeu_ps(dl, io, _mm512_add_ps(_mm512_maskz_loadu_ps(io, dl), y));
  }
}

#endif

// dst_k[0:N] += (val_k or 1) * src[0:N] for every event k (dst_k = base + col_k * ld,
// ld >= N; rows padded to whole cache lines when ld is a multiple of 64 bytes):
// src is held in registers while the events' rows are updated: the whole row
// (up to 256 floats) under AVX-512, else tile by tile under AVX2.
template <typename T>
inline void scatter_add_rows(T* __restrict__ base, const T* __restrict__ src, const int32_t* __restrict__ col,
                             const T* __restrict__ val, int64_t k0, int64_t k1, int64_t N, int64_t ld) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4) {
    float* fb = reinterpret_cast<float*>(base);
    const float* fs = reinterpret_cast<const float*>(src);
    const float* fv = reinterpret_cast<const float*>(val);
    switch ((N + 15) / 16) {
#define SNNTORCH_SPARSE_NV(NV) \
  case NV: scatter_add_rows_avx512<NV>(fb, fs, col, fv, k0, k1, N, ld); return;
      SNNTORCH_SPARSE_NV_CASES(SNNTORCH_SPARSE_NV)
#undef SNNTORCH_SPARSE_NV
      default: break;  // N > 256 or N == 0: the AVX2 tiles below
    }
  }
#endif
  int64_t i0 = 0;
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    constexpr int64_t W = 8, R = 8;
    const float* fv = reinterpret_cast<const float*>(val);
    for (; i0 + W * R <= N; i0 += W * R) {
      __m256 a[R];
      for (int r = 0; r < R; ++r) a[r] = _mm256_loadu_ps(reinterpret_cast<const float*>(src) + i0 + W * r);
      for (int64_t k = k0; k < k1; ++k) {
        float* d = reinterpret_cast<float*>(base) + static_cast<int64_t>(col[k]) * ld + i0;
        const __m256 x = _mm256_set1_ps(fv ? fv[k] : 1.0f);
        for (int r = 0; r < R; ++r)
          _mm256_storeu_ps(d + W * r, _mm256_add_ps(_mm256_loadu_ps(d + W * r), fv ? _mm256_mul_ps(x, a[r]) : a[r]));
      }
    }
    // the rest 8 (then 4) at a time, event by event (small layers, e.g. a 20-class readout)
    for (; i0 + 8 <= N; i0 += 8) {
      const __m256 a = _mm256_loadu_ps(reinterpret_cast<const float*>(src) + i0);
      for (int64_t k = k0; k < k1; ++k) {
        float* d = reinterpret_cast<float*>(base) + static_cast<int64_t>(col[k]) * ld + i0;
        _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), fv ? _mm256_mul_ps(_mm256_set1_ps(fv[k]), a) : a));
      }
    }
    if (i0 + 4 <= N) {
      const __m128 a = _mm_loadu_ps(reinterpret_cast<const float*>(src) + i0);
      for (int64_t k = k0; k < k1; ++k) {
        float* d = reinterpret_cast<float*>(base) + static_cast<int64_t>(col[k]) * ld + i0;
        _mm_storeu_ps(d, _mm_add_ps(_mm_loadu_ps(d), fv ? _mm_mul_ps(_mm_set1_ps(fv[k]), a) : a));
      }
      i0 += 4;
    }
  }
#endif
  if (i0 == N) return;
  for (int64_t k = k0; k < k1; ++k) {
    T* __restrict__ d = base + static_cast<int64_t>(col[k]) * ld;
    const T x = val ? val[k] : T(1);
    for (int64_t i = i0; i < N; ++i) d[i] += val ? x * src[i] : src[i];
  }
}

// dst[0:N] += (val_e or 1) * src[row_e][0:N] for e in [0, n) in that order (src
// rows ld apart): the weight-gradient update of one input column from all its
// events in a block of rows. Per element the same sums in the same order as
// scatter_add_rows over those events, but dst is read and written once.
template <typename T, int R>
inline void gather_add_tile(T* __restrict__ dst, const T* __restrict__ src, const int32_t* __restrict__ row,
                            const T* __restrict__ val, int64_t n, int64_t ld, int64_t i0) {
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    float* fd = reinterpret_cast<float*>(dst) + i0;
    const float* fs = reinterpret_cast<const float*>(src) + i0;
    const float* fv = reinterpret_cast<const float*>(val);
    __m256 a[R];
    for (int r = 0; r < R; ++r) a[r] = _mm256_loadu_ps(fd + 8 * r);
    for (int64_t e = 0; e < n; ++e) {
      const float* h = fs + static_cast<int64_t>(row[e]) * ld;
      if (fv != nullptr) {
        const __m256 x = _mm256_set1_ps(fv[e]);
        for (int r = 0; r < R; ++r) a[r] = _mm256_add_ps(a[r], _mm256_mul_ps(x, _mm256_loadu_ps(h + 8 * r)));
      } else {
        for (int r = 0; r < R; ++r) a[r] = _mm256_add_ps(a[r], _mm256_loadu_ps(h + 8 * r));
      }
    }
    for (int r = 0; r < R; ++r) _mm256_storeu_ps(fd + 8 * r, a[r]);
    return;
  }
#endif
  (void)dst, (void)src, (void)row, (void)val, (void)n, (void)ld, (void)i0;
}

template <typename T>
inline void gather_add_rows(T* __restrict__ dst, const T* __restrict__ src, const int32_t* __restrict__ row,
                            const T* __restrict__ val, int64_t n, int64_t N, int64_t ld) {
  int64_t i0 = 0;
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    // Tiles of at most 8 ymm accumulators (more spill: 16 ymm registers without
    // AVX-512VL, and wider tiles measured slower even with it), balanced so
    // the last pass is not a sliver.
    constexpr int64_t max_r = 8;
    const int64_t vecs = N / 8, passes = (vecs + max_r - 1) / max_r;
    for (int64_t p = 0; p < passes; ++p) {
      const int64_t r = vecs * (p + 1) / passes - vecs * p / passes;
      switch (r) {
#define SNNTORCH_SPARSE_TILE(R) \
  case R: gather_add_tile<T, R>(dst, src, row, val, n, ld, i0); break;
        SNNTORCH_SPARSE_TILE(1) SNNTORCH_SPARSE_TILE(2) SNNTORCH_SPARSE_TILE(3) SNNTORCH_SPARSE_TILE(4)
        SNNTORCH_SPARSE_TILE(5) SNNTORCH_SPARSE_TILE(6) SNNTORCH_SPARSE_TILE(7) SNNTORCH_SPARSE_TILE(8)
#undef SNNTORCH_SPARSE_TILE
        default: break;
      }
      i0 += 8 * r;
    }
  }
#endif
  for (int64_t i = i0; i < N; ++i) {
    T s = dst[i];
    for (int64_t e = 0; e < n; ++e) {
      const T h = src[static_cast<int64_t>(row[e]) * ld + i];
      s += val ? val[e] * h : h;
    }
    dst[i] = s;
  }
}

}  // namespace snntorch_sparse
