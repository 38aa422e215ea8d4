// CUDA kernels of the fused Linear+LIF layer (torch-free; fused_launch.cu
// wraps them for the dispatcher). Bodies in fused_rows.h (host-emulated in
// tests/test_cuda_emulated.py); nvcc compile-checks this header for sm_80
// and sm_90 (tests/test_cuda_compile.py).
//
// Forward of one layer, given the current I (a cuBLAS GEMM):
//   1. lif_fused_scan_kernel   thread per (b, n) column: U, and U - θ into the
//                              spike buffer (one read of I, one write)
//   2. count_shift_kernel      warp per (t, b) row: active and spike counts
//   3. (cumsum of the counts on the device -> the CSR row pointers; one
//      small device-to-host copy of the two totals to size the column lists)
//   4. compact_shift_kernel    warp per row: active (column, U - θ) and spike
//                              columns in column order; the row becomes spikes
// Backward: scatter_active_kernel (g on the active set), the adjoint scan
// with the per-column sums for ∂L/∂b (lif_fused_backward_kernel), then per chunk of rows densify_kernel (input events -> a
// dense chunk for the ∂L/∂W GEMM) and gather_active_kernel (∂L/∂X of the
// upstream active set from the chunk's h W GEMM).
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
lif_fused_scan_kernel(const T* __restrict__ cur, const T* __restrict__ beta, const T* __restrict__ thr,
                      T* __restrict__ out, T* __restrict__ mem, bool spikes, int64_t Tn, int64_t BN, int64_t N,
                      T* __restrict__ carry) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= BN) return;
  lif_fused_scan_column<T, MODE, CHUNK>(c, cur, beta, thr, out, mem, spikes, Tn, BN, N, carry);
}

// out: U - θ (spikes = false, a compaction follows) or the spikes themselves.
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
                          int64_t Tn, int64_t BN, int64_t N) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= BN) return;
  lif_scan_backward_column<T, uint8_t, ZERO>(c, h, beta, spk, h, Tn, BN, N, hsum);  // in place
}

// h: g on entry, the adjoint on return (in place); spk: bool spikes for
// reset_mode 1, else nullptr; hsum: [B*N] Σ_t h, or nullptr.
template <typename T>
cudaError_t launch_lif_fused_backward_scan(T* h, const T* beta, const uint8_t* spk, T* hsum, int64_t Tn, int64_t BN,
                                           int64_t N, int reset_mode, cudaStream_t stream) {
  if (Tn == 0 || BN == 0) return cudaSuccess;
  const int threads = scan_threads(BN);
  const dim3 grid(blocks_for(BN, threads)), block(threads);
  if (reset_mode == 1) lif_fused_backward_kernel<T, true><<<grid, block, 0, stream>>>(h, beta, spk, hsum, Tn, BN, N);
  else lif_fused_backward_kernel<T, false><<<grid, block, 0, stream>>>(h, beta, nullptr, hsum, Tn, BN, N);
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

// act_rowptr/spk_rowptr: [R + 1] exclusive prefix sums of the counts.
template <typename T>
__global__ void __launch_bounds__(kRowThreads)
compact_shift_kernel(T* __restrict__ sh, const T* __restrict__ win, int64_t R, int64_t N,
                     const int64_t* __restrict__ act_rowptr, int32_t* __restrict__ act_col, T* __restrict__ act_shift,
                     const int64_t* __restrict__ spk_rowptr, int32_t* __restrict__ spk_col) {
  const int64_t r = warp_index();
  if (r >= R) return;
  compact_shift_row<T>(DeviceLanes{}, sh + r * N, win, N, act_col != nullptr ? act_rowptr[r] : 0, act_col,
                       act_shift, spk_col != nullptr ? spk_rowptr[r] : 0, spk_col);
}

template <typename T>
cudaError_t launch_compact_shift(T* sh, const T* win, int64_t R, int64_t N, const int64_t* act_rowptr,
                                 int32_t* act_col, T* act_shift, const int64_t* spk_rowptr, int32_t* spk_col,
                                 cudaStream_t stream) {
  if (R == 0) return cudaSuccess;
  compact_shift_kernel<T><<<row_blocks(R), kRowThreads, 0, stream>>>(sh, win, R, N, act_rowptr, act_col, act_shift,
                                                                      spk_rowptr, spk_col);
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
scatter_active_kernel(int64_t R, const int64_t* __restrict__ rowptr, const int32_t* __restrict__ col,
                      const T* __restrict__ sg, const T* __restrict__ d_spk, bool compact, bool add,
                      T* __restrict__ h, int64_t N) {
  const int64_t r = warp_index();
  if (r >= R) return;
  scatter_active_row<T>(DeviceLanes{}, r, rowptr, col, sg, d_spk, compact, add, h, N);
}

template <typename T>
cudaError_t launch_scatter_active(int64_t R, const int64_t* rowptr, const int32_t* col, const T* sg, const T* d_spk,
                                  bool compact, bool add, T* h, int64_t N, cudaStream_t stream) {
  if (R == 0) return cudaSuccess;
  scatter_active_kernel<T><<<row_blocks(R), kRowThreads, 0, stream>>>(R, rowptr, col, sg, d_spk, compact, add, h, N);
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
gather_active_kernel(int64_t r0, int64_t r1, const int64_t* __restrict__ rowptr, const int32_t* __restrict__ col,
                     const T* __restrict__ p, bool compact, T* __restrict__ out, int64_t Ni) {
  const int64_t r = r0 + warp_index();
  if (r >= r1) return;
  gather_active_row<T>(DeviceLanes{}, r, r0, rowptr, col, p, compact, out, Ni);
}

template <typename T>
cudaError_t launch_gather_active(int64_t r0, int64_t r1, const int64_t* rowptr, const int32_t* col, const T* p,
                                 bool compact, T* out, int64_t Ni, cudaStream_t stream) {
  if (r1 <= r0) return cudaSuccess;
  gather_active_kernel<T><<<row_blocks(r1 - r0), kRowThreads, 0, stream>>>(r0, r1, rowptr, col, p, compact, out, Ni);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace snntorch_sparse
