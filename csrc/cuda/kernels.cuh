// CUDA kernel bodies of the snntorch_sparse ops. No torch types here: this
// header compiles with plain nvcc (tests/test_cuda_compile.py checks it for
// sm_80 and sm_90); csrc/cuda/ops_launch.cu wraps it for the dispatcher.
//
// Every launcher takes raw contiguous pointers and a stream, launches
// asynchronously (no host synchronisation) and returns cudaGetLastError().
// Arithmetic uses the explicitly rounded intrinsics (__fmul_rn, __dadd_rn,
// ...) so no multiply-add is ever contracted into an FMA: the forward scan is
// bit-identical to the reference (and to the CPU kernels).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "scan_columns.h"

namespace snntorch_sparse {
namespace cuda {

constexpr int kScanThreads = 256;

inline unsigned int blocks_for(int64_t n, int threads) {
  return static_cast<unsigned int>((n + threads - 1) / threads);
}

// Threads per scan block: a scan's speed is memory parallelism, and a narrow
// layer (a readout of 20 neurons x batch 256 is 5120 columns) in 256-thread
// blocks would occupy only 20 SMs; 64-thread blocks spread it over 4x more.
inline int scan_threads(int64_t BN) { return BN >= (int64_t{1} << 16) ? kScanThreads : 64; }

// ---- lif_scan: one thread per (b, n) column, loops over T
// (lif_scan_column, scan_columns.h). Consecutive threads own consecutive
// columns, so every load/store of a time step is coalesced; one launch for
// the whole sequence. lif_scan_ (in place) passes mem = cur and spk = nullptr
// (membrane only).
template <typename T, int MODE, int CHUNK>
__global__ void __launch_bounds__(kScanThreads)
lif_scan_kernel(const T* cur, const T* __restrict__ beta, const T* __restrict__ thr,
                T* __restrict__ spk, T* mem, int64_t Tn, int64_t BN, int64_t N) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= BN) return;
  lif_scan_column<T, MODE, CHUNK>(c, cur, beta, thr, spk, mem, Tn, BN, N);
}

template <typename T, int CHUNK>
void launch_lif_scan_chunked(const T* cur, const T* beta, const T* thr, T* spk, T* mem, int64_t Tn,
                             int64_t BN, int64_t N, int reset_mode, cudaStream_t stream) {
  const int threads = scan_threads(BN);
  const dim3 grid(blocks_for(BN, threads)), block(threads);
  switch (reset_mode) {
    case 0: lif_scan_kernel<T, 0, CHUNK><<<grid, block, 0, stream>>>(cur, beta, thr, spk, mem, Tn, BN, N); break;
    case 1: lif_scan_kernel<T, 1, CHUNK><<<grid, block, 0, stream>>>(cur, beta, thr, spk, mem, Tn, BN, N); break;
    default: lif_scan_kernel<T, 2, CHUNK><<<grid, block, 0, stream>>>(cur, beta, thr, spk, mem, Tn, BN, N); break;
  }
}

// chunk: time steps loaded per chunk, kScanChunk (default) or 1 (for A/B timing).
template <typename T>
cudaError_t launch_lif_scan(const T* cur, const T* beta, const T* thr, T* spk, T* mem, int64_t Tn,
                            int64_t BN, int64_t N, int reset_mode, int chunk, cudaStream_t stream) {
  if (Tn == 0 || BN == 0) return cudaSuccess;
  if (chunk == 1) launch_lif_scan_chunked<T, 1>(cur, beta, thr, spk, mem, Tn, BN, N, reset_mode, stream);
  else launch_lif_scan_chunked<T, kScanChunk>(cur, beta, thr, spk, mem, Tn, BN, N, reset_mode, stream);
  return cudaGetLastError();
}

// ---- lif_scan_backward: same layout, reverse time
// (lif_scan_backward_column). h may be g (lif_scan_backward_, in place).
template <typename T, typename S, bool ZERO, int CHUNK>
__global__ void __launch_bounds__(kScanThreads)
lif_scan_backward_kernel(const T* g, const T* __restrict__ beta,
                         const S* __restrict__ spk, T* h, int64_t Tn, int64_t BN,
                         int64_t N) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= BN) return;
  lif_scan_backward_column<T, S, ZERO, CHUNK>(c, g, beta, spk, h, Tn, BN, N);
}

template <typename T, typename S, int CHUNK>
void launch_lif_scan_backward_chunked(const T* g, const T* beta, const S* spk, T* h, int64_t Tn,
                                      int64_t BN, int64_t N, int reset_mode, cudaStream_t stream) {
  const int threads = scan_threads(BN);
  const dim3 grid(blocks_for(BN, threads)), block(threads);
  if (reset_mode == 1)
    lif_scan_backward_kernel<T, S, true, CHUNK><<<grid, block, 0, stream>>>(g, beta, spk, h, Tn, BN, N);
  else
    lif_scan_backward_kernel<T, S, false, CHUNK><<<grid, block, 0, stream>>>(g, beta, nullptr, h, Tn, BN, N);
}

// spk: nullptr unless reset_mode == 1; S is T or uint8_t (bool storage).
// chunk as for launch_lif_scan.
template <typename T, typename S>
cudaError_t launch_lif_scan_backward(const T* g, const T* beta, const S* spk, T* h, int64_t Tn,
                                     int64_t BN, int64_t N, int reset_mode, int chunk,
                                     cudaStream_t stream) {
  if (Tn == 0 || BN == 0) return cudaSuccess;
  if (chunk == 1) launch_lif_scan_backward_chunked<T, S, 1>(g, beta, spk, h, Tn, BN, N, reset_mode, stream);
  else launch_lif_scan_backward_chunked<T, S, kScanChunk>(g, beta, spk, h, Tn, BN, N, reset_mode, stream);
  return cudaGetLastError();
}

// ---- sparse_weight_grad, CSC form (non-zeros sorted by input column j,
// colptr[j]..colptr[j+1]): block (j, i-chunk), one thread per output row i,
// dWt[j, i] = sum_k x_k * h[r_k, i]. Reads of h rows are coalesced over i, the
// per-column index/value loads are warp-uniform broadcasts, every output is
// written once by one thread: no atomics, deterministic summation order.
constexpr int kWGradThreads = 128;

template <typename T>
__global__ void __launch_bounds__(kWGradThreads)
weight_grad_csc_kernel(const T* __restrict__ h, const int64_t* __restrict__ rows,
                       const T* __restrict__ vals, const int64_t* __restrict__ colptr,
                       T* __restrict__ dwt, int64_t No) {
  const int64_t j = blockIdx.x;
  const int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (i >= No) return;
  const int64_t k0 = colptr[j], k1 = colptr[j + 1];
  T acc = T(0);
  if (vals == nullptr) {
#pragma unroll 4
    for (int64_t k = k0; k < k1; ++k) acc = add_rn(acc, h[rows[k] * No + i]);
  } else {
#pragma unroll 4
    for (int64_t k = k0; k < k1; ++k) acc = add_rn(acc, mul_rn(vals[k], h[rows[k] * No + i]));
  }
  dwt[j * No + i] = acc;
}

// dwt is [Ni, No] (transposed dW); vals may be nullptr (all ones).
template <typename T>
cudaError_t launch_weight_grad_csc(const T* h, const int64_t* rows, const T* vals,
                                   const int64_t* colptr, T* dwt, int64_t No, int64_t Ni,
                                   cudaStream_t stream) {
  if (No == 0 || Ni == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned int>(Ni), blocks_for(No, kWGradThreads));
  weight_grad_csc_kernel<T><<<grid, kWGradThreads, 0, stream>>>(h, rows, vals, colptr, dwt, No);
  return cudaGetLastError();
}

// ---- sparse_input_grad: one warp per requested index k, lanes stride over
// N_out; both h[r, :] and Wt[j, :] (W transposed, [Ni, No]) are contiguous,
// so the loads are coalesced; warp-shuffle reduction, no atomics.
constexpr int kIGradThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kIGradThreads)
input_grad_kernel(const T* __restrict__ h, const T* __restrict__ wt,
                  const int64_t* __restrict__ index, T* __restrict__ out, int64_t K, int64_t No,
                  int64_t Ni) {
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (w >= K) return;  // uniform per warp: blockDim is a multiple of 32
  const int64_t v = index[w];
  const int64_t r = v / Ni, j = v - r * Ni;
  const T* __restrict__ hr = h + r * No;
  const T* __restrict__ wr = wt + j * No;
  T acc = T(0);
  for (int64_t i = lane; i < No; i += 32) acc = add_rn(acc, mul_rn(hr[i], wr[i]));
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) acc = add_rn(acc, __shfl_down_sync(0xffffffffu, acc, off));
  if (lane == 0) out[w] = acc;
}

template <typename T>
cudaError_t launch_input_grad(const T* h, const T* wt, const int64_t* index, T* out, int64_t K,
                              int64_t No, int64_t Ni, cudaStream_t stream) {
  if (K == 0) return cudaSuccess;
  const int64_t threads = K * 32;
  input_grad_kernel<T><<<blocks_for(threads, kIGradThreads), kIGradThreads, 0, stream>>>(
      h, wt, index, out, K, No, Ni);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace snntorch_sparse
