// Sparse RSynaptic backward, one batch row (snntorch_sparse/rsynaptic.py).
//
// One code path for both devices: csrc/cpu/rsynaptic.cpp runs this row function
// under at::parallel_for (rows are independent: V mixes the neurons of one row
// only), and under nvcc rsynaptic_backward_kernel runs one row per thread.
// Torch-free and host-compilable like rleaky_backward.cuh (whose dot8 it uses),
// so tests/test_cuda_rsynaptic_emulated.py runs exactly this code on the CPU,
// row after row, against the PyTorch reference loop and the C++ kernel.
//
// Forward (snnTorch's RSynaptic, reset detached):
//   J[t] = (alpha*J[t-1] + I[t]) + rec(S[t-1])     U[t] = (beta*U[t-1] + J[t]) reset
// Per row, in reverse time, with a[t+1] (adjoint of the pre-reset membrane) in
// `pa` and c[t+1] (adjoint of J) in `pc`:
//   du[n]  = beta[n] * a[t+1][n] + d_mem[t][n]
//   for each active entry k of (t, row):     (CSR over the T*R rows)
//     ds   = d_spk[t][n] + dot(c[t+1], wt[n])     (all_to_all; c[t+1][n] * v[n] one-to-one)
//     g[k] = ds * sg[k];  du[n] += g[k]
//   du    *= (1 - R[t])                           (reset to zero)
//   a[t]   = du
//   c[t]   = (du + d_syn[t][n]) + alpha[n] * c[t+1][n]
// |A_t|·N multiply-adds per step for the recurrent term (never T·B·N²), O(N)
// elementwise per row and step besides. `scratch` holds 3·N values of this row.
// Status: the CPU kernel runs it; under nvcc rsynaptic_backward_cuda
// (csrc/cuda/neurons_launch.cu) launches it for CUDA tensors; compile-checked and
// its launch layout emulated on the host; not yet run on a GPU.
#pragma once

#include <cstdint>

#include "rleaky_backward.cuh"  // SNNTORCH_SPARSE_RHD, dot8

namespace snntorch_sparse {
namespace cuda {

// a may be nullptr (not wanted); c and g are always written.
template <typename T>
SNNTORCH_SPARSE_RHD void rsynaptic_backward_row(int64_t r, const int64_t* rowptr, const int64_t* col, const T* sg,
                                                const T* d_spk, const T* d_syn, const T* d_mem, const T* alpha,
                                                const T* beta, const T* wt, const T* v, const bool* spk,
                                                const T* keep0, int mode, int64_t Tn, int64_t R, int64_t N, T* a,
                                                T* c, T* g, T* scratch) {
  T* pa = scratch;
  T* pd = scratch + N;
  T* pc = scratch + 2 * N;
  for (int64_t n = 0; n < N; ++n) {
    pa[n] = T(0);
    pc[n] = T(0);
  }
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const int64_t base = (t * R + r) * N;
    for (int64_t n = 0; n < N; ++n) {
      T x = beta[n] * pa[n];
      if (d_mem != nullptr) x = x + d_mem[base + n];
      pd[n] = x;
    }
    const int64_t row = t * R + r;
    const bool has_next = t + 1 < Tn;
    for (int64_t k = rowptr[row]; k < rowptr[row + 1]; ++k) {
      const int64_t n = col[k];
      T ds = d_spk != nullptr ? d_spk[base + n] : T(0);
      if (has_next) {
        if (wt != nullptr) {
          ds = ds + dot8(pc, wt + n * N, N);
        } else {
          ds = ds + pc[n] * v[n];
        }
      }
      const T gk = ds * sg[k];
      g[k] = gk;
      pd[n] = pd[n] + gk;
    }
    if (mode == 1) {
      if (t > 0) {
        const bool* s = spk + ((t - 1) * R + r) * N;
        for (int64_t n = 0; n < N; ++n)
          if (s[n]) pd[n] = T(0);
      } else if (keep0 != nullptr) {
        for (int64_t n = 0; n < N; ++n) pd[n] = pd[n] * keep0[r * N + n];
      }
    }
    for (int64_t n = 0; n < N; ++n) {
      T y = pd[n];
      if (d_syn != nullptr) y = y + d_syn[base + n];
      y = y + alpha[n] * pc[n];
      if (a != nullptr) a[base + n] = pd[n];
      c[base + n] = y;
      pc[n] = y;
    }
    T* tmp = pa;
    pa = pd;
    pd = tmp;
  }
}

#if defined(__CUDACC__)
template <typename T>
__global__ void rsynaptic_backward_kernel(const int64_t* rowptr, const int64_t* col, const T* sg, const T* d_spk,
                                          const T* d_syn, const T* d_mem, const T* alpha, const T* beta, const T* wt,
                                          const T* v, const bool* spk, const T* keep0, int mode, int64_t Tn,
                                          int64_t R, int64_t N, T* a, T* c, T* g, T* scratch) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r < R)
    rsynaptic_backward_row<T>(r, rowptr, col, sg, d_spk, d_syn, d_mem, alpha, beta, wt, v, spk, keep0, mode, Tn, R,
                              N, a, c, g, scratch + r * 3 * N);
}

template <typename T>
inline void launch_rsynaptic_backward(const int64_t* rowptr, const int64_t* col, const T* sg, const T* d_spk,
                                      const T* d_syn, const T* d_mem, const T* alpha, const T* beta, const T* wt,
                                      const T* v, const bool* spk, const T* keep0, int mode, int64_t Tn, int64_t R,
                                      int64_t N, T* a, T* c, T* g, T* scratch, cudaStream_t stream) {
  const int threads = 128;
  const int blocks = static_cast<int>((R + threads - 1) / threads);
  if (blocks > 0)
    rsynaptic_backward_kernel<T><<<blocks, threads, 0, stream>>>(rowptr, col, sg, d_spk, d_syn, d_mem, alpha, beta,
                                                                 wt, v, spk, keep0, mode, Tn, R, N, a, c, g,
                                                                 scratch);
}
#endif

}  // namespace cuda
}  // namespace snntorch_sparse
