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

namespace snntorch_sparse {
namespace cuda {

__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }

constexpr int kScanThreads = 256;

inline unsigned int blocks_for(int64_t n, int threads) {
  return static_cast<unsigned int>((n + threads - 1) / threads);
}

// ---- lif_scan: one thread per (b, n) column, loops over T. Consecutive
// threads own consecutive columns, so every load/store of a time step is
// coalesced; one launch for the whole sequence. lif_scan_ (in place) passes
// mem = cur and spk = nullptr (membrane only), so cur and mem are not
// restrict: the next step's current is loaded explicitly before this step's
// store, which keeps that load off the dependency chain whatever the aliasing.
template <typename T, int MODE>
__global__ void __launch_bounds__(kScanThreads)
lif_scan_kernel(const T* cur, const T* __restrict__ beta, const T* __restrict__ thr,
                T* __restrict__ spk, T* mem, int64_t Tn, int64_t BN, int64_t N) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= BN) return;
  const int64_t n = c % N;
  const T b = beta[n];
  const T th = thr[n];
  T u = T(0);
  T I_next = Tn > 0 ? cur[c] : T(0);
  for (int64_t t = 0; t < Tn; ++t) {
    const int64_t o = t * BN + c;
    const T r = sub_rn(u, th) > T(0) ? T(1) : T(0);
    const T I = I_next;
    if (t + 1 < Tn) I_next = cur[o + BN];
    if (MODE == 0) {
      u = sub_rn(add_rn(mul_rn(b, u), I), mul_rn(r, th));
    } else if (MODE == 1) {
      u = add_rn(mul_rn(b, mul_rn(sub_rn(T(1), r), u)), I);
    } else {
      u = add_rn(mul_rn(b, u), I);
    }
    mem[o] = u;
    if (spk != nullptr) spk[o] = sub_rn(u, th) > T(0) ? T(1) : T(0);
  }
}

template <typename T>
cudaError_t launch_lif_scan(const T* cur, const T* beta, const T* thr, T* spk, T* mem, int64_t Tn,
                            int64_t BN, int64_t N, int reset_mode, cudaStream_t stream) {
  if (Tn == 0 || BN == 0) return cudaSuccess;
  const dim3 grid(blocks_for(BN, kScanThreads)), block(kScanThreads);
  switch (reset_mode) {
    case 0: lif_scan_kernel<T, 0><<<grid, block, 0, stream>>>(cur, beta, thr, spk, mem, Tn, BN, N); break;
    case 1: lif_scan_kernel<T, 1><<<grid, block, 0, stream>>>(cur, beta, thr, spk, mem, Tn, BN, N); break;
    default: lif_scan_kernel<T, 2><<<grid, block, 0, stream>>>(cur, beta, thr, spk, mem, Tn, BN, N); break;
  }
  return cudaGetLastError();
}

// ---- lif_scan_backward: same layout, reverse time. spk (reset_mode 1
// only) has element type S (T, or bool read as uint8_t), non-zero = spike.
// The reference masks only for t + 1 < T; at t = T - 1 acc is +0 and
// +0 * {0, 1} = +0, so the mask is applied at every step.
// h may be g (lif_scan_backward_, in place), so neither is restrict: the
// previous step's gradient is loaded explicitly before this step's store.
template <typename T, typename S, bool ZERO>
__global__ void __launch_bounds__(kScanThreads)
lif_scan_backward_kernel(const T* g, const T* __restrict__ beta,
                         const S* __restrict__ spk, T* h, int64_t Tn, int64_t BN,
                         int64_t N) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= BN) return;
  const T b = beta[c % N];
  T acc = T(0);
  T g_next = Tn > 0 ? g[(Tn - 1) * BN + c] : T(0);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const int64_t o = t * BN + c;
    const T gt = g_next;
    if (t > 0) g_next = g[o - BN];
    if (ZERO) acc = mul_rn(acc, spk[o] == S(0) ? T(1) : T(0));
    acc = add_rn(gt, mul_rn(b, acc));
    h[o] = acc;
  }
}

// spk: nullptr unless reset_mode == 1; S is T or uint8_t (bool storage).
template <typename T, typename S>
cudaError_t launch_lif_scan_backward(const T* g, const T* beta, const S* spk, T* h, int64_t Tn,
                                     int64_t BN, int64_t N, int reset_mode, cudaStream_t stream) {
  if (Tn == 0 || BN == 0) return cudaSuccess;
  const dim3 grid(blocks_for(BN, kScanThreads)), block(kScanThreads);
  if (reset_mode == 1)
    lif_scan_backward_kernel<T, S, true><<<grid, block, 0, stream>>>(g, beta, spk, h, Tn, BN, N);
  else
    lif_scan_backward_kernel<T, S, false><<<grid, block, 0, stream>>>(g, beta, nullptr, h, Tn, BN, N);
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
