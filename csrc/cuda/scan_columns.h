// Per-column bodies of the CUDA scan kernels (kernels.cuh): one (b, n) column
// of a contiguous [T, B, N] tensor walked through time by one thread.
//
// Host-compilable on purpose: under nvcc the functions are __host__ __device__
// and the kernels call them; under a plain C++ compiler they are ordinary
// inline functions, so tests/test_cuda_emulated.py runs exactly this code on
// the CPU (one column after another) and compares it bit for bit with the
// reference scans. Nothing here may depend on threads running together.
//
// Time is walked in chunks of kScanChunk steps, double-buffered: the loads of
// the next chunk are issued before the current chunk's arithmetic and stores,
// so kScanChunk loads per thread are in flight while it computes. With one
// load in flight (the loop's natural form) every step waits a full memory
// latency; an H100 backward with almost nothing active (T = 500) took 1.1 ms,
// which this explains (not profiled per kernel). The arithmetic and its order
// are unchanged by the chunking.
//
// In-place use (lif_scan_: mem = cur; lif_scan_backward_: h = g) is safe: a
// thread reads only its own column, every step's input is loaded before that
// step's output is stored, and a chunk's loads never touch a step already
// stored. So cur/mem and g/h are not declared restrict.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SNNTORCH_SPARSE_HD __host__ __device__ __forceinline__
#define SNNTORCH_SPARSE_UNROLL _Pragma("unroll")
#else
#define SNNTORCH_SPARSE_HD inline
#define SNNTORCH_SPARSE_UNROLL
#endif

namespace snntorch_sparse {
namespace cuda {

// Explicitly rounded arithmetic: on the device no multiply-add may be
// contracted into an FMA (bit-identity with the reference); host builds of
// this header use -ffp-contract=off for the same reason.
#if defined(__CUDA_ARCH__)
#define SNNTORCH_SPARSE_RN(NAME, T, INTRINSIC, OP) \
  SNNTORCH_SPARSE_HD T NAME(T a, T b) { return INTRINSIC(a, b); }
#else
#define SNNTORCH_SPARSE_RN(NAME, T, INTRINSIC, OP) \
  SNNTORCH_SPARSE_HD T NAME(T a, T b) { return a OP b; }
#endif
SNNTORCH_SPARSE_RN(mul_rn, float, __fmul_rn, *)
SNNTORCH_SPARSE_RN(mul_rn, double, __dmul_rn, *)
SNNTORCH_SPARSE_RN(add_rn, float, __fadd_rn, +)
SNNTORCH_SPARSE_RN(add_rn, double, __dadd_rn, +)
SNNTORCH_SPARSE_RN(sub_rn, float, __fsub_rn, -)
SNNTORCH_SPARSE_RN(sub_rn, double, __dsub_rn, -)
#undef SNNTORCH_SPARSE_RN

// Time steps per chunk (loads in flight per thread). The kernels are also
// instantiated with a chunk of 1 -- the loop's natural form, one load ahead --
// so a GPU run can time both (SNNTORCH_SPARSE_CUDA_SCAN_CHUNK=1).
constexpr int kScanChunk = 16;

// dst[k] = src[t(k) * BN + c] for t(k) = t0 + step * k inside [0, Tn), else 0.
template <int CHUNK, typename V>
SNNTORCH_SPARSE_HD void load_chunk(V (&dst)[CHUNK], const V* src, int64_t t0, int step, int64_t Tn,
                                   int64_t BN, int64_t c) {
  SNNTORCH_SPARSE_UNROLL
  for (int k = 0; k < CHUNK; ++k) {
    const int64_t t = t0 + static_cast<int64_t>(step) * k;
    dst[k] = (t >= 0 && t < Tn) ? src[t * BN + c] : V(0);
  }
}

// Forward LIF scan of column c (c = b * N + n), snnTorch Leaky's order (see
// ops/reference.py lif_scan). MODE 0 subtract, 1 zero, 2 none. spk may be
// nullptr (membrane only); mem may be cur.
template <typename T, int MODE, int CHUNK = kScanChunk>
SNNTORCH_SPARSE_HD void lif_scan_column(int64_t c, const T* cur, const T* beta, const T* thr, T* spk, T* mem,
                                        int64_t Tn, int64_t BN, int64_t N) {
  const int64_t n = c % N;
  const T b = beta[n];
  const T th = thr[n];
  T u = T(0);
  T now[CHUNK], next[CHUNK];
  load_chunk<CHUNK>(now, cur, 0, 1, Tn, BN, c);
  for (int64_t t0 = 0; t0 < Tn; t0 += CHUNK) {
    load_chunk<CHUNK>(next, cur, t0 + CHUNK, 1, Tn, BN, c);
    SNNTORCH_SPARSE_UNROLL
    for (int k = 0; k < CHUNK; ++k) {
      const int64_t t = t0 + k;
      if (t < Tn) {
        const T r = sub_rn(u, th) > T(0) ? T(1) : T(0);
        if (MODE == 0) {
          u = sub_rn(add_rn(mul_rn(b, u), now[k]), mul_rn(r, th));
        } else if (MODE == 1) {
          u = add_rn(mul_rn(b, mul_rn(sub_rn(T(1), r), u)), now[k]);
        } else {
          u = add_rn(mul_rn(b, u), now[k]);
        }
        mem[t * BN + c] = u;
        if (spk != nullptr) spk[t * BN + c] = sub_rn(u, th) > T(0) ? T(1) : T(0);
      }
    }
    SNNTORCH_SPARSE_UNROLL
    for (int k = 0; k < CHUNK; ++k) now[k] = next[k];
  }
}

// Adjoint scan of column c, reverse time: h[t] = g[t] + beta * h[t+1], with
// h[t+1] masked by the spike S[t] when ZERO (reset to zero). spk has element
// type S (T, or bool read as uint8_t), non-zero = spike; nullptr unless ZERO.
// The reference masks only for t + 1 < T; at t = T - 1 acc is +0 and
// +0 * {0, 1} = +0, so masking every step gives the same bits. h may be g.
// hsum (may be nullptr) receives Σ_t h[t] of the column (∂L/∂b before the
// sum over the batch; the fused backward asks for it).
//
// Time chunks (the fused backward walks [T, B, N] in chunks of whole steps,
// last chunk first): carry ([BN], or nullptr to start from h[T] = 0) holds
// h[t1] of the chunk after this one on entry and h[t0] of this one on return;
// hsum_add adds this chunk's Σ_t h to hsum[c] instead of overwriting it. The
// arithmetic and its order are those of one scan over all steps, so the
// chunked result is bit-identical (tests/test_cuda_fused_emulated.py).
template <typename T, typename S, bool ZERO, int CHUNK = kScanChunk>
SNNTORCH_SPARSE_HD void lif_scan_backward_column(int64_t c, const T* g, const T* beta, const S* spk, T* h,
                                                 int64_t Tn, int64_t BN, int64_t N, T* hsum = nullptr,
                                                 T* carry = nullptr, bool hsum_add = false) {
  const T b = beta[c % N];
  T acc = carry != nullptr ? carry[c] : T(0);
  T total = (hsum != nullptr && hsum_add) ? hsum[c] : T(0);
  T g_now[CHUNK], g_next[CHUNK];
  S s_now[CHUNK], s_next[CHUNK];
  load_chunk<CHUNK>(g_now, g, Tn - 1, -1, Tn, BN, c);
  if (ZERO) load_chunk<CHUNK>(s_now, spk, Tn - 1, -1, Tn, BN, c);
  for (int64_t t_hi = Tn - 1; t_hi >= 0; t_hi -= CHUNK) {
    load_chunk<CHUNK>(g_next, g, t_hi - CHUNK, -1, Tn, BN, c);
    if (ZERO) load_chunk<CHUNK>(s_next, spk, t_hi - CHUNK, -1, Tn, BN, c);
    SNNTORCH_SPARSE_UNROLL
    for (int k = 0; k < CHUNK; ++k) {
      const int64_t t = t_hi - k;
      if (t >= 0) {
        if (ZERO) acc = mul_rn(acc, s_now[k] == S(0) ? T(1) : T(0));
        acc = add_rn(g_now[k], mul_rn(b, acc));
        h[t * BN + c] = acc;
        if (hsum != nullptr) total = add_rn(total, acc);
      }
    }
    SNNTORCH_SPARSE_UNROLL
    for (int k = 0; k < CHUNK; ++k) {
      g_now[k] = g_next[k];
      if (ZERO) s_now[k] = s_next[k];
    }
  }
  if (hsum != nullptr) hsum[c] = total;
  if (carry != nullptr) carry[c] = acc;
}

}  // namespace cuda
}  // namespace snntorch_sparse
