// CUDA kernels of the fused Linear+LIF layer (torch-free; fused_launch.cu
// wraps them for the dispatcher). Bodies in fused_rows.h (host-emulated in
// tests/test_cuda_emulated.py); nvcc compile-checks this header for sm_80
// and sm_90 (tests/test_cuda_compile.py).
//
// Forward of one layer, per time chunk of whole steps (fused_launch.cu):
//   0. densify_kernel + a cuBLAS GEMM: the chunk's current I
//   1. lif_fused_scan_kernel   thread per (b, n) column: U, and U - θ written
//                              over the chunk's current (in place), the
//                              membrane carried from chunk to chunk
//   2. count_shift_kernel      warp per (t, b) row: active and spike counts
//   3. chunk_rowptr_kernel     one block: the chunk's CSR row pointers from
//                              the counts, continuing the previous chunk's
//   4. compact_shift_kernel    warp per row: active (column, U - θ) and spike
//                              columns in column order, into lists sized from
//                              a hint; the row becomes spikes
// One small device-to-host copy per call, after the last chunk: the two totals
// (and a second pass in the rare case they exceed the hint).
// Backward, per time chunk, last chunk first: scatter_active_kernel (the
// chunk's ∂L/∂U or zeros, plus g on the active set), the adjoint scan with the carry from the later chunk and the
// per-column sums for ∂L/∂b (lif_fused_backward_kernel), densify_kernel (the
// input events -> a dense chunk for the ∂L/∂W GEMM) and dx_active_kernel
// (∂L/∂X on the upstream active set: one dot of h's row with a row of Wᵀ per
// entry, no dense h W) -- or, when a tenth or more of the entries are asked
// for, the chunk's h W GEMM read by gather_active_kernel.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "fused_rows.h"
#include "kernels.cuh"

namespace snntorch_sparse {
namespace cuda {

constexpr int kRowThreads = 256;  // 8 warps: 8 rows per block

inline unsigned int row_blocks(int64_t rows) { return blocks_for(rows * kWarp, kRowThreads); }

__device__ __forceinline__ int64_t warp_index() {
  return (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
}

template <typename T, int MODE, int CHUNK>
__global__ void __launch_bounds__(kScanThreads)
lif_fused_scan_kernel(const T* cur, const T* __restrict__ beta, const T* __restrict__ thr, T* out,
                      T* __restrict__ mem, bool spikes, int64_t Tn, int64_t BN, int64_t N, T* __restrict__ carry) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= BN) return;
  lif_fused_scan_column<T, MODE, CHUNK>(c, cur, beta, thr, out, mem, spikes, Tn, BN, N, carry);
}

// out: U - θ (spikes = false, a compaction follows) or the spikes themselves;
// out may be cur (in place: each step is loaded before it is stored).
// carry: [BN] membrane carried between time chunks, or nullptr (start from 0).
template <typename T>
cudaError_t launch_lif_fused_scan(const T* cur, const T* beta, const T* thr, T* out, T* mem, bool spikes,
                                  int64_t Tn, int64_t BN, int64_t N, int reset_mode, cudaStream_t stream,
                                  T* carry = nullptr) {
  if (Tn == 0 || BN == 0) return cudaSuccess;
  const int threads = scan_threads(BN);
  const dim3 grid(blocks_for(BN, threads)), block(threads);
  switch (reset_mode) {
    case 0: lif_fused_scan_kernel<T, 0, kScanChunk><<<grid, block, 0, stream>>>(cur, beta, thr, out, mem, spikes, Tn, BN, N, carry); break;
    case 1: lif_fused_scan_kernel<T, 1, kScanChunk><<<grid, block, 0, stream>>>(cur, beta, thr, out, mem, spikes, Tn, BN, N, carry); break;
    default: lif_fused_scan_kernel<T, 2, kScanChunk><<<grid, block, 0, stream>>>(cur, beta, thr, out, mem, spikes, Tn, BN, N, carry); break;
  }
  return cudaGetLastError();
}

template <typename T, bool ZERO>
__global__ void __launch_bounds__(kScanThreads)
lif_fused_backward_kernel(T* h, const T* __restrict__ beta, const uint8_t* __restrict__ spk, T* __restrict__ hsum,
                          int64_t Tn, int64_t BN, int64_t N, T* __restrict__ carry, bool hsum_add) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= BN) return;
  lif_scan_backward_column<T, uint8_t, ZERO>(c, h, beta, spk, h, Tn, BN, N, hsum, carry, hsum_add);  // in place
}

// h: g on entry, the adjoint on return (in place), Tn steps of a time chunk;
// spk: bool spikes of the chunk for reset_mode 1, else nullptr; hsum: [B*N]
// Σ_t h (added to with hsum_add), or nullptr; carry: [B*N] h after the chunk
// on entry, h at its first step on return (nullptr: a single chunk).
template <typename T>
cudaError_t launch_lif_fused_backward_scan(T* h, const T* beta, const uint8_t* spk, T* hsum, int64_t Tn, int64_t BN,
                                           int64_t N, int reset_mode, cudaStream_t stream, T* carry = nullptr,
                                           bool hsum_add = false) {
  if (Tn == 0 || BN == 0) return cudaSuccess;
  const int threads = scan_threads(BN);
  const dim3 grid(blocks_for(BN, threads)), block(threads);
  if (reset_mode == 1)
    lif_fused_backward_kernel<T, true><<<grid, block, 0, stream>>>(h, beta, spk, hsum, Tn, BN, N, carry, hsum_add);
  else
    lif_fused_backward_kernel<T, false><<<grid, block, 0, stream>>>(h, beta, nullptr, hsum, Tn, BN, N, carry,
                                                                    hsum_add);
  return cudaGetLastError();
}

template <typename T>
__global__ void __launch_bounds__(kRowThreads)
count_shift_kernel(const T* __restrict__ sh, const T* __restrict__ win, int64_t R, int64_t N,
                   int64_t* __restrict__ act_cnt, int64_t* __restrict__ spk_cnt) {
  const int64_t r = warp_index();
  if (r >= R) return;  // uniform per warp
  int64_t a, s;
  count_shift_row<T>(DeviceLanes{}, sh + r * N, win, N, &a, &s);
  if ((threadIdx.x & 31) == 0) {
    act_cnt[r] = a;
    spk_cnt[r] = s;
  }
}

template <typename T>
cudaError_t launch_count_shift(const T* sh, const T* win, int64_t R, int64_t N, int64_t* act_cnt, int64_t* spk_cnt,
                               cudaStream_t stream) {
  if (R == 0) return cudaSuccess;
  count_shift_kernel<T><<<row_blocks(R), kRowThreads, 0, stream>>>(sh, win, R, N, act_cnt, spk_cnt);
  return cudaGetLastError();
}

// act_rowptr/spk_rowptr: the pointers of the R rows at sh (a time chunk's
// rows: the set's rowptr advanced to the chunk's first row); act_cap/spk_cap:
// the lists' lengths (entries past them are dropped, see compact_shift_row).
template <typename T>
__global__ void __launch_bounds__(kRowThreads)
compact_shift_kernel(T* __restrict__ sh, const T* __restrict__ win, int64_t R, int64_t N,
                     const int64_t* __restrict__ act_rowptr, int32_t* __restrict__ act_col, T* __restrict__ act_shift,
                     const int64_t* __restrict__ spk_rowptr, int32_t* __restrict__ spk_col, int64_t act_cap,
                     int64_t spk_cap) {
  const int64_t r = warp_index();
  if (r >= R) return;
  compact_shift_row<T>(DeviceLanes{}, sh + r * N, win, N, act_col != nullptr ? act_rowptr[r] : 0, act_col,
                       act_shift, spk_col != nullptr ? spk_rowptr[r] : 0, spk_col, act_cap, spk_cap);
}

template <typename T>
cudaError_t launch_compact_shift(T* sh, const T* win, int64_t R, int64_t N, const int64_t* act_rowptr,
                                 int32_t* act_col, T* act_shift, const int64_t* spk_rowptr, int32_t* spk_col,
                                 int64_t act_cap, int64_t spk_cap, cudaStream_t stream) {
  if (R == 0) return cudaSuccess;
  compact_shift_kernel<T><<<row_blocks(R), kRowThreads, 0, stream>>>(sh, win, R, N, act_rowptr, act_col, act_shift,
                                                                      spk_rowptr, spk_col, act_cap, spk_cap);
  return cudaGetLastError();
}

// Threads of chunk_rowptr_kernel's one block.
constexpr int kPrefixThreads = 1024;

// The chunk's row pointers for both sets (chunk_rowptr_sum/_write): act_rp /
// spk_rp point at the chunk's first row of the set's rowptr (entry 0 holds
// the pointer the chunk starts from); either may be nullptr.
__global__ void __launch_bounds__(kPrefixThreads)
chunk_rowptr_kernel(int64_t n, const int64_t* __restrict__ act_cnt, int64_t* act_rp,
                    const int64_t* __restrict__ spk_cnt, int64_t* spk_rp) {
  __shared__ int64_t sums[2][kPrefixThreads];
  const int p = static_cast<int>(threadIdx.x), P = static_cast<int>(blockDim.x);
  int64_t a = 0, s = 0;
  if (act_rp != nullptr) chunk_rowptr_sum(n, p, P, act_cnt, &a);
  if (spk_rp != nullptr) chunk_rowptr_sum(n, p, P, spk_cnt, &s);
  sums[0][p] = a;
  sums[1][p] = s;
  __syncthreads();
  // inclusive Hillis-Steele scan of the P slice sums (integers: the order is immaterial)
  for (int d = 1; d < P; d <<= 1) {
    const int64_t ua = p >= d ? sums[0][p - d] : 0, us = p >= d ? sums[1][p - d] : 0;
    __syncthreads();
    sums[0][p] += ua;
    sums[1][p] += us;
    __syncthreads();
  }
  if (act_rp != nullptr) chunk_rowptr_write(n, p, P, act_cnt, act_rp[0] + sums[0][p] - a, act_rp);
  if (spk_rp != nullptr) chunk_rowptr_write(n, p, P, spk_cnt, spk_rp[0] + sums[1][p] - s, spk_rp);
}

inline cudaError_t launch_chunk_rowptr(int64_t n, const int64_t* act_cnt, int64_t* act_rp, const int64_t* spk_cnt,
                                       int64_t* spk_rp, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  chunk_rowptr_kernel<<<1, kPrefixThreads, 0, stream>>>(n, act_cnt, act_rp, spk_cnt, spk_rp);
  return cudaGetLastError();
}

template <typename T>
__global__ void __launch_bounds__(kRowThreads)
count_nonzero_kernel(const T* __restrict__ x, int64_t R, int64_t N, int64_t* __restrict__ cnt) {
  const int64_t r = warp_index();
  if (r >= R) return;
  const int64_t q = count_nonzero_row<T>(DeviceLanes{}, x + r * N, N);
  if ((threadIdx.x & 31) == 0) cnt[r] = q;
}

template <typename T>
__global__ void __launch_bounds__(kRowThreads)
compact_nonzero_kernel(const T* __restrict__ x, int64_t R, int64_t N, const int64_t* __restrict__ rowptr,
                       int32_t* __restrict__ col, T* __restrict__ val) {
  const int64_t r = warp_index();
  if (r >= R) return;
  compact_nonzero_row<T>(DeviceLanes{}, x + r * N, N, rowptr[r], col, val);
}

template <typename T>
cudaError_t launch_count_nonzero(const T* x, int64_t R, int64_t N, int64_t* cnt, cudaStream_t stream) {
  if (R == 0) return cudaSuccess;
  count_nonzero_kernel<T><<<row_blocks(R), kRowThreads, 0, stream>>>(x, R, N, cnt);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_compact_nonzero(const T* x, int64_t R, int64_t N, const int64_t* rowptr, int32_t* col, T* val,
                                   cudaStream_t stream) {
  if (R == 0) return cudaSuccess;
  compact_nonzero_kernel<T><<<row_blocks(R), kRowThreads, 0, stream>>>(x, R, N, rowptr, col, val);
  return cudaGetLastError();
}

template <typename T>
__global__ void __launch_bounds__(kRowThreads)
scatter_active_kernel(int64_t r0, int64_t r1, const int64_t* __restrict__ rowptr, const int32_t* __restrict__ col,
                      const T* __restrict__ sg, const T* __restrict__ d_spk, bool compact, const T* __restrict__ d_mem,
                      T* __restrict__ h, int64_t N) {
  const int64_t r = r0 + warp_index();
  if (r >= r1) return;
  scatter_active_row<T>(DeviceLanes{}, r, r0, rowptr, col, sg, d_spk, compact, d_mem, h, N);
}

// Rows [r0, r1) of h = ∂L/∂U (d_mem, or 0) + ∂L/∂S σ' on the active set (d_spk, or nullptr:
// the fill only); h holds the chunk's rows (h[0] = row r0).
template <typename T>
cudaError_t launch_scatter_active(int64_t r0, int64_t r1, const int64_t* rowptr, const int32_t* col, const T* sg,
                                  const T* d_spk, bool compact, const T* d_mem, T* h, int64_t N, cudaStream_t stream) {
  if (r1 <= r0) return cudaSuccess;
  scatter_active_kernel<T><<<row_blocks(r1 - r0), kRowThreads, 0, stream>>>(r0, r1, rowptr, col, sg, d_spk, compact,
                                                                             d_mem, h, N);
  return cudaGetLastError();
}

template <typename T>
__global__ void __launch_bounds__(kRowThreads)
densify_kernel(int64_t r0, int64_t r1, const int64_t* __restrict__ rowptr, const int32_t* __restrict__ col,
               const T* __restrict__ val, T* __restrict__ x, int64_t N) {
  const int64_t r = r0 + warp_index();
  if (r >= r1) return;
  densify_row<T>(DeviceLanes{}, r, r0, rowptr, col, val, x, N);
}

template <typename T>
cudaError_t launch_densify(int64_t r0, int64_t r1, const int64_t* rowptr, const int32_t* col, const T* val, T* x,
                           int64_t N, cudaStream_t stream) {
  if (r1 <= r0) return cudaSuccess;
  densify_kernel<T><<<row_blocks(r1 - r0), kRowThreads, 0, stream>>>(r0, r1, rowptr, col, val, x, N);
  return cudaGetLastError();
}

template <typename T>
__global__ void __launch_bounds__(kRowThreads)
dx_active_kernel(int64_t r0, int64_t r1, const int64_t* __restrict__ rowptr, const int32_t* __restrict__ col,
                 const T* __restrict__ h, const T* __restrict__ wt, int64_t N, bool compact, T* __restrict__ out,
                 int64_t Ni) {
  const int64_t r = r0 + warp_index();
  if (r >= r1) return;  // uniform per warp: every lane takes part in the shuffles
  dx_active_row<T>(DeviceLanes{}, r, r0, rowptr, col, h, wt, N, compact, out, Ni);
}

// ∂L/∂X of rows [r0, r1) on the upstream active set from the chunk's h ([r1 - r0, N]) and Wᵀ.
template <typename T>
cudaError_t launch_dx_active(int64_t r0, int64_t r1, const int64_t* rowptr, const int32_t* col, const T* h,
                             const T* wt, int64_t N, bool compact, T* out, int64_t Ni, cudaStream_t stream) {
  if (r1 <= r0) return cudaSuccess;
  dx_active_kernel<T><<<row_blocks(r1 - r0), kRowThreads, 0, stream>>>(r0, r1, rowptr, col, h, wt, N, compact, out,
                                                                        Ni);
  return cudaGetLastError();
}

template <typename T>
__global__ void __launch_bounds__(kRowThreads)
gather_active_kernel(int64_t r0, int64_t r1, const int64_t* __restrict__ rowptr, const int32_t* __restrict__ col,
                     const T* __restrict__ p, bool compact, T* __restrict__ out, int64_t Ni) {
  const int64_t r = r0 + warp_index();
  if (r >= r1) return;
  gather_active_row<T>(DeviceLanes{}, r, r0, rowptr, col, p, compact, out, Ni);
}

// ∂L/∂X of rows [r0, r1) read from the chunk's h W (p, [r1 - r0, N_in]) on the upstream active set.
template <typename T>
cudaError_t launch_gather_active(int64_t r0, int64_t r1, const int64_t* rowptr, const int32_t* col, const T* p,
                                 bool compact, T* out, int64_t Ni, cudaStream_t stream) {
  if (r1 <= r0) return cudaSuccess;
  gather_active_kernel<T><<<row_blocks(r1 - r0), kRowThreads, 0, stream>>>(r0, r1, rowptr, col, p, compact, out, Ni);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace snntorch_sparse
