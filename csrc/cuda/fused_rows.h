// Per-column and per-row bodies of the fused CUDA Linear+LIF kernels
// (fused_kernels.cuh, launched by fused_launch.cu).
//
// Host-compilable like scan_columns.h: tests/test_cuda_emulated.py builds this
// header with the system C++ compiler and runs every body on the CPU, thread
// after thread, against the CPU kernels bit for bit.
//
// Sparse sets are CSR over the R = T*B rows of a [T, B, N] tensor (row
// r = t*B + b), int64 row pointers and int32 columns, exactly the CPU
// kernels' format (csrc/cpu/fused_lif.cpp), so the autograd function and the
// next layer read either device's sets the same way.
//
// Row bodies run on one warp per row. Their cross-lane step is a ballot: a
// `Lanes` policy gives it, DeviceLanes with __ballot_sync (each lane
// evaluates its own predicate), HostLanes by evaluating the 32 lanes one
// after another. Order-preserving compaction: lane l of a 32-column tile
// writes at (entries so far) + popc(ballot & lanes below l), so every row's
// entries come out in column order, as on the CPU.
#pragma once

#include "scan_columns.h"

namespace snntorch_sparse {
namespace cuda {

constexpr int kWarp = 32;

SNNTORCH_SPARSE_HD int popc32(unsigned m) {
#if defined(__CUDA_ARCH__)
  return __popc(m);
#else
  return __builtin_popcount(m);
#endif
}

// Mask of the lanes below `lane` (0 for lane 0).
SNNTORCH_SPARSE_HD unsigned lanes_below(int lane) { return lane == 0 ? 0u : (0xffffffffu >> (32 - lane)); }

struct HostLanes {
  template <class F>
  unsigned ballot(F f) const {
    unsigned m = 0;
    for (int l = 0; l < kWarp; ++l) m |= (f(l) ? 1u : 0u) << l;
    return m;
  }
  template <class F>
  void each(F f) const {
    for (int l = 0; l < kWarp; ++l) f(l);
  }
  void sync() const {}  // the lanes already ran one after another
  // Σ over the lanes of f(lane) in the device's shuffle-down tree order (lane
  // l adds lane l + off for off = 16, 8, 4, 2, 1); the result of lane 0.
  template <class F>
  auto reduce_sum(F f) const -> decltype(f(0)) {
    decltype(f(0)) v[kWarp];
    for (int l = 0; l < kWarp; ++l) v[l] = f(l);
    for (int off = kWarp / 2; off > 0; off >>= 1)
      for (int l = 0; l < off; ++l) v[l] = add_rn(v[l], v[l + off]);
    return v[0];
  }
};

#if defined(__CUDACC__)
struct DeviceLanes {
  template <class F>
  __device__ __forceinline__ unsigned ballot(F f) const {
    return __ballot_sync(0xffffffffu, f(static_cast<int>(threadIdx.x & 31)));
  }
  template <class F>
  __device__ __forceinline__ void each(F f) const {
    f(static_cast<int>(threadIdx.x & 31));
  }
  // the warp's earlier stores are visible to all its lanes after this
  __device__ __forceinline__ void sync() const { __syncwarp(); }
  // Σ over the lanes of f(lane), shuffle-down tree; valid on lane 0.
  template <class F>
  __device__ __forceinline__ auto reduce_sum(F f) const -> decltype(f(0)) {
    auto v = f(static_cast<int>(threadIdx.x & 31));
    for (int off = kWarp / 2; off > 0; off >>= 1) v = add_rn(v, __shfl_down_sync(0xffffffffu, v, off));
    return v;
  }
};
#endif

// ---- forward scan of column c (c = b*N + n): snnTorch Leaky's update in the
// order of lif_scan_column, writing U - θ into out (the spike buffer: the
// compaction pass turns it into spikes) and U into mem when given. With
// `spikes` the spike itself (U - θ > 0) is written instead of U - θ (no
// compaction pass follows). cur is only read. carry (may be nullptr: start
// from 0) holds the membrane before the first step on entry and after the
// last on return, so a sequence scanned in time chunks gives the same bits.
template <typename T, int MODE, int CHUNK = kScanChunk>
SNNTORCH_SPARSE_HD void lif_fused_scan_column(int64_t c, const T* cur, const T* beta, const T* thr, T* out, T* mem,
                                              bool spikes, int64_t Tn, int64_t BN, int64_t N, T* carry = nullptr) {
  const int64_t n = c % N;
  const T b = beta[n];
  const T th = thr[n];
  T u = carry != nullptr ? carry[c] : T(0);
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
        if (mem != nullptr) mem[t * BN + c] = u;
        const T sh = sub_rn(u, th);
        out[t * BN + c] = spikes ? (sh > T(0) ? T(1) : T(0)) : sh;
      }
    }
    SNNTORCH_SPARSE_UNROLL
    for (int k = 0; k < CHUNK; ++k) now[k] = next[k];
  }
  if (carry != nullptr) carry[c] = u;
}

template <typename T>
SNNTORCH_SPARSE_HD bool in_window(T sh, T w) { return sh > -w && sh < w; }

// ---- counts of one row of U - θ: entries in the window |U - θ| < win[n] and
// spikes (U - θ > 0). Every lane gets both totals.
template <typename T, class Lanes>
SNNTORCH_SPARSE_HD void count_shift_row(const Lanes& lanes, const T* sh, const T* win, int64_t N, int64_t* n_act,
                                        int64_t* n_spk) {
  int64_t a = 0, s = 0;
  for (int64_t base = 0; base < N; base += kWarp) {
    a += popc32(lanes.ballot([&](int l) { const int64_t i = base + l; return i < N && in_window(sh[i], win[i]); }));
    s += popc32(lanes.ballot([&](int l) { const int64_t i = base + l; return i < N && sh[i] > T(0); }));
  }
  *n_act = a;
  *n_spk = s;
}

// ---- one row of U - θ (in the spike buffer) -> the row's active entries
// (column, U - θ) from act_pos and spike columns from spk_pos, in column
// order; then the row becomes spikes in place. act_col / spk_col may be
// nullptr (set not wanted). Entries at or past act_cap / spk_cap (the lists'
// allocated lengths) are not written: the launcher sized the lists from a
// hint before the totals were known, and runs again with the exact totals
// when they exceed it.
template <typename T, class Lanes>
SNNTORCH_SPARSE_HD void compact_shift_row(const Lanes& lanes, T* row, const T* win, int64_t N, int64_t act_pos,
                                          int32_t* act_col, T* act_shift, int64_t spk_pos, int32_t* spk_col,
                                          int64_t act_cap, int64_t spk_cap) {
  for (int64_t base = 0; base < N; base += kWarp) {
    const unsigned ma = lanes.ballot([&](int l) { const int64_t i = base + l; return i < N && in_window(row[i], win[i]); });
    const unsigned ms = lanes.ballot([&](int l) { const int64_t i = base + l; return i < N && row[i] > T(0); });
    lanes.each([&](int l) {
      const int64_t i = base + l;
      if (i >= N) return;
      const T sh = row[i];
      if (act_col != nullptr && ((ma >> l) & 1u)) {
        const int64_t k = act_pos + popc32(ma & lanes_below(l));
        if (k < act_cap) {
          act_col[k] = static_cast<int32_t>(i);
          act_shift[k] = sh;
        }
      }
      if (spk_col != nullptr && ((ms >> l) & 1u)) {
        const int64_t k = spk_pos + popc32(ms & lanes_below(l));
        if (k < spk_cap) spk_col[k] = static_cast<int32_t>(i);
      }
      row[i] = ((ms >> l) & 1u) ? T(1) : T(0);
    });
    act_pos += popc32(ma);
    spk_pos += popc32(ms);
  }
}

// ---- dense_to_csr: non-zeros of one row of x.
template <typename T, class Lanes>
SNNTORCH_SPARSE_HD int64_t count_nonzero_row(const Lanes& lanes, const T* x, int64_t N) {
  int64_t q = 0;
  for (int64_t base = 0; base < N; base += kWarp)
    q += popc32(lanes.ballot([&](int l) { const int64_t i = base + l; return i < N && x[i] != T(0); }));
  return q;
}

template <typename T, class Lanes>
SNNTORCH_SPARSE_HD void compact_nonzero_row(const Lanes& lanes, const T* x, int64_t N, int64_t pos, int32_t* col,
                                            T* val) {
  for (int64_t base = 0; base < N; base += kWarp) {
    const unsigned m = lanes.ballot([&](int l) { const int64_t i = base + l; return i < N && x[i] != T(0); });
    lanes.each([&](int l) {
      if ((m >> l) & 1u) {
        const int64_t k = pos + popc32(m & lanes_below(l));
        col[k] = static_cast<int32_t>(base + l);
        val[k] = x[base + l];
      }
    });
    pos += popc32(m);
  }
}

// ---- row r of the adjoint's input h = ∂L/∂U + ∂L/∂S σ' (h holds the rows
// [r0, ...) of a time chunk): the row filled with d_mem's row (or zeros), then
// ∂L/∂S σ' added (or written, without d_mem) at the row's active entries.
// d_spk: one value per active entry (compact) or dense [R, N]; nullptr: no
// spike gradient, the fill only.
template <typename T, class Lanes>
SNNTORCH_SPARSE_HD void scatter_active_row(const Lanes& lanes, int64_t r, int64_t r0, const int64_t* rowptr,
                                           const int32_t* col, const T* sg, const T* d_spk, bool compact,
                                           const T* d_mem, T* h, int64_t N) {
  T* row = h + (r - r0) * N;
  for (int64_t base = 0; base < N; base += kWarp)
    lanes.each([&](int l) {
      const int64_t i = base + l;
      if (i < N) row[i] = d_mem != nullptr ? d_mem[r * N + i] : T(0);
    });
  if (d_spk == nullptr) return;
  lanes.sync();  // an entry's update must follow the fill another lane wrote there
  const int64_t k0 = rowptr[r], k1 = rowptr[r + 1];
  for (int64_t base = k0; base < k1; base += kWarp)
    lanes.each([&](int l) {
      const int64_t k = base + l;
      if (k >= k1) return;
      const int64_t i = col[k];
      const T g = mul_rn(compact ? d_spk[k] : d_spk[r * N + i], sg[k]);
      row[i] = d_mem != nullptr ? add_rn(row[i], g) : g;
    });
}

// ---- row pointers of a time chunk's rows [r0, r0 + n) from its counts
// (cnt[i], i < n, for row r0 + i): rowptr[r0 + 1 + i] = rowptr[r0] +
// Σ_{j <= i} cnt[j], for the active set and the spike set at once (either
// may be nullptr). One block: thread p of P owns the rows
// [p*n/P, (p+1)*n/P). Phase 1 sums its rows, the block scans the P sums
// (exclusive, in thread order), phase 2 writes its rows' pointers. The order
// of the additions is fixed, so the host replay gives the same integers.
SNNTORCH_SPARSE_HD void chunk_slice(int64_t n, int p, int P, int64_t* lo, int64_t* hi) {
  *lo = n * p / P;
  *hi = n * (p + 1) / P;
}

SNNTORCH_SPARSE_HD void chunk_rowptr_sum(int64_t n, int p, int P, const int64_t* cnt, int64_t* sum) {
  int64_t lo, hi;
  chunk_slice(n, p, P, &lo, &hi);
  int64_t s = 0;
  for (int64_t i = lo; i < hi; ++i) s += cnt[i];
  *sum = s;
}

SNNTORCH_SPARSE_HD void chunk_rowptr_write(int64_t n, int p, int P, const int64_t* cnt, int64_t start,
                                           int64_t* rowptr_from_r0) {
  int64_t lo, hi;
  chunk_slice(n, p, P, &lo, &hi);
  int64_t s = start;
  for (int64_t i = lo; i < hi; ++i) {
    s += cnt[i];
    rowptr_from_r0[1 + i] = s;
  }
}

// ---- rows [r0, r1) of a CSR set written densely into x ([r1 - r0, N]): the
// row zeroed, then value or 1 per entry (one pass, no separate fill). Row r of
// the chunk is one warp.
template <typename T, class Lanes>
SNNTORCH_SPARSE_HD void densify_row(const Lanes& lanes, int64_t r, int64_t r0, const int64_t* rowptr, const int32_t* col,
                                    const T* val, T* x, int64_t N) {
  const int64_t k0 = rowptr[r], k1 = rowptr[r + 1];
  T* row = x + (r - r0) * N;
  for (int64_t base = 0; base < N; base += kWarp)
    lanes.each([&](int l) {
      if (base + l < N) row[base + l] = T(0);
    });
  lanes.sync();  // an event's store must follow the zero another lane wrote there
  for (int64_t base = k0; base < k1; base += kWarp)
    lanes.each([&](int l) {
      const int64_t k = base + l;
      if (k < k1) row[col[k]] = val != nullptr ? val[k] : T(1);
    });
}

// ---- ∂L/∂X on the upstream active set, row r: for each entry j of that set
// in row r, dX[r, j] = Σ_n h[r, n] Wᵀ[j, n] (h: the time chunk's rows from
// r0, [., N]; wt: Wᵀ, [N_in, N]). One warp per row, the warp on one entry at a
// time: lane l sums n = l, l + 32, ... in order, then the lanes' sums meet in
// a shuffle-down tree (reduce_sum), so the sum's order is fixed. No dense
// [rows, N_in] product exists. compact: out[k] per entry k of the set; else
// out is the dense [R, N_in] input gradient.
template <typename T, class Lanes>
SNNTORCH_SPARSE_HD void dx_active_row(const Lanes& lanes, int64_t r, int64_t r0, const int64_t* rowptr,
                                      const int32_t* col, const T* h, const T* wt, int64_t N, bool compact, T* out,
                                      int64_t Ni) {
  const int64_t k0 = rowptr[r], k1 = rowptr[r + 1];
  const T* hr = h + (r - r0) * N;
  for (int64_t k = k0; k < k1; ++k) {
    const int64_t j = col[k];
    const T* w = wt + j * N;
    const T v = lanes.reduce_sum([&](int l) {
      T s = T(0);
      for (int64_t n = l; n < N; n += kWarp) s = add_rn(s, mul_rn(hr[n], w[n]));
      return s;
    });
    lanes.each([&](int l) {
      if (l == 0) out[compact ? k : r * Ni + j] = v;
    });
  }
}

// ---- ∂L/∂X on the upstream active set, row r, when most entries are asked
// for: read from p (rows [r0, ...) of the chunk's h W GEMM, [., N_in]).
// compact: out[k] per entry k of the set; else the dense [R, N_in] gradient.
template <typename T, class Lanes>
SNNTORCH_SPARSE_HD void gather_active_row(const Lanes& lanes, int64_t r, int64_t r0, const int64_t* rowptr,
                                          const int32_t* col, const T* p, bool compact, T* out, int64_t Ni) {
  const int64_t k0 = rowptr[r], k1 = rowptr[r + 1];
  const T* row = p + (r - r0) * Ni;
  for (int64_t base = k0; base < k1; base += kWarp)
    lanes.each([&](int l) {
      const int64_t k = base + l;
      if (k >= k1) return;
      const int64_t j = col[k];
      out[compact ? k : r * Ni + j] = row[j];
    });
}

}  // namespace cuda
}  // namespace snntorch_sparse
