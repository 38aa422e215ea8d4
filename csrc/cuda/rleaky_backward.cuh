// CUDA kernel body of the sparse RLeaky backward (snntorch_sparse/recurrent.py;
// the CPU kernel is csrc/cpu/recurrent.cpp, same arithmetic).
//
// Torch-free and host-compilable, like scan_columns.h: under nvcc the row
// function is __host__ __device__ and rleaky_backward_kernel runs one row
// (batch entry) per thread; under a plain C++ compiler it is an ordinary
// inline function, so tests/test_cuda_rleaky_emulated.py runs exactly this code
// on the CPU, row after row, against the C++ kernel and the PyTorch reference.
// Rows are independent (V mixes the neurons of one row only); nothing here
// depends on threads running together.
//
// Per row, in reverse time, with the adjoint a[t+1] of the row in `carry`:
//   du[n]  = beta[n] * carry[n] + d_mem[t][n]
//   for each active entry k of (t, row):   (CSR over the T*R rows)
//     ds   = d_spk[t][n] + dot(carry, wt[n])   (all_to_all; carry[n] * v[n] one-to-one;
//                                               d_spk[k] when d_spk_compact: one value per active entry)
//     g[k] = ds * sg[k];  du[n] += g[k]
//   du    *= (1 - R[t])                         (reset to zero)
//   a[t]   = du;  carry = du
// |A_t|·N multiply-adds per step for the recurrent term. `scratch` holds 2·N
// values per row (carry, du); on the device it is global memory (L1/L2 cached).
// Status: launched by rleaky_backward_cuda (csrc/cuda/neurons_launch.cu, the
// CUDA kernel of the rleaky_backward op); compile-checked and its launch layout
// emulated on the host; not yet run on a GPU.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SNNTORCH_SPARSE_RHD __host__ __device__ __forceinline__
#else
#define SNNTORCH_SPARSE_RHD inline
#endif

namespace snntorch_sparse {
namespace cuda {

// dot(x, y) with 8 partial sums (lanes i mod 8), added pairwise: the CPU kernel's order.
template <typename T>
SNNTORCH_SPARSE_RHD T dot8(const T* x, const T* y, int64_t n) {
  T p[8] = {T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0)};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) p[j] += x[i + j] * y[i + j];
  for (int j = 0; i < n; ++i, ++j) p[j] += x[i] * y[i];
  return ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
}

template <typename T>
SNNTORCH_SPARSE_RHD void rleaky_backward_row(int64_t r, const int64_t* rowptr, const int64_t* col, const T* sg,
                                             const T* d_spk, bool d_spk_compact, const T* d_mem, const T* beta,
                                             const T* wt, const T* v, const bool* spk, const T* keep0, int mode,
                                             int64_t Tn, int64_t R, int64_t N, T* a, T* g, T* scratch) {
  T* carry = scratch + r * 2 * N;
  T* du = carry + N;
  for (int64_t n = 0; n < N; ++n) carry[n] = T(0);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const int64_t base = (t * R + r) * N;
    for (int64_t n = 0; n < N; ++n) {
      T x = beta[n] * carry[n];
      if (d_mem != nullptr) x = x + d_mem[base + n];
      du[n] = x;
    }
    const int64_t row = t * R + r;
    const bool has_next = t + 1 < Tn;
    for (int64_t k = rowptr[row]; k < rowptr[row + 1]; ++k) {
      const int64_t n = col[k];
      T ds = d_spk == nullptr ? T(0) : d_spk_compact ? d_spk[k] : d_spk[base + n];
      if (has_next) {
        if (wt != nullptr) {
          const T* w = wt + n * N;
          ds = ds + dot8(carry, w, N);
        } else {
          ds = ds + carry[n] * v[n];
        }
      }
      const T gk = ds * sg[k];
      g[k] = gk;
      du[n] = du[n] + gk;
    }
    if (mode == 1) {
      if (t > 0) {
        const bool* s = spk + ((t - 1) * R + r) * N;
        for (int64_t n = 0; n < N; ++n)
          if (s[n]) du[n] = T(0);
      } else if (keep0 != nullptr) {
        for (int64_t n = 0; n < N; ++n) du[n] = du[n] * keep0[r * N + n];
      }
    }
    for (int64_t n = 0; n < N; ++n) {
      a[base + n] = du[n];
      carry[n] = du[n];
    }
  }
}

#if defined(__CUDACC__)
template <typename T>
__global__ void rleaky_backward_kernel(const int64_t* rowptr, const int64_t* col, const T* sg, const T* d_spk,
                                       bool d_spk_compact, const T* d_mem, const T* beta, const T* wt, const T* v,
                                       const bool* spk, const T* keep0, int mode, int64_t Tn, int64_t R, int64_t N,
                                       T* a, T* g, T* scratch) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r < R)
    rleaky_backward_row<T>(r, rowptr, col, sg, d_spk, d_spk_compact, d_mem, beta, wt, v, spk, keep0, mode, Tn, R, N,
                           a, g, scratch);
}

template <typename T>
inline void launch_rleaky_backward(const int64_t* rowptr, const int64_t* col, const T* sg, const T* d_spk,
                                   bool d_spk_compact, const T* d_mem, const T* beta, const T* wt, const T* v,
                                   const bool* spk, const T* keep0, int mode, int64_t Tn, int64_t R, int64_t N, T* a,
                                   T* g, T* scratch, cudaStream_t stream) {
  const int threads = 128;
  const int blocks = static_cast<int>((R + threads - 1) / threads);
  if (blocks > 0)
    rleaky_backward_kernel<T><<<blocks, threads, 0, stream>>>(rowptr, col, sg, d_spk, d_spk_compact, d_mem, beta,
                                                              wt, v, spk, keep0, mode, Tn, R, N, a, g, scratch);
}
#endif

}  // namespace cuda
}  // namespace snntorch_sparse
