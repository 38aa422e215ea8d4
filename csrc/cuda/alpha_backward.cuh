// Alpha-neuron backward, one (row, neuron) column (snntorch_sparse/alpha.py).
//
// One code path for both devices: csrc/cpu/alpha.cpp runs this column function
// under at::parallel_for, and under nvcc alpha_backward_kernel runs one column
// per thread (consecutive threads, consecutive neurons: coalesced). Torch-free
// and host-compilable, so tests/test_cuda_alpha_emulated.py runs exactly this
// code on the CPU against the PyTorch reference loop and the C++ kernel.
//
// snnTorch's Alpha has no membrane recurrence: U[t] = tau*(E'[t] + H'[t]) with
// E'[t] = alpha*E[t-1] + I[t], H'[t] = beta*H[t-1] - I[t], and a detached reset
// R[t] = H(U[t-1] - theta) editing E, H, U (see alpha.py). Columns are
// independent. In reverse time, with gU[t] = dL/dU[t] (the sparse surrogate term
// on the active set plus any external membrane gradient, computed by the caller)
// and eE, eH the adjoints of E[t], H[t] from later steps:
//   eEp = eE + dE[t];  eHp = eH + dH[t];  tg = tau*gU[t];  r = R[t]
//   subtract: uE = tg + eEp;          uH = tg + eHp*(1 - r)
//   zero:     uE = (tg + eEp)*(1-r);  uH = (tg + eHp)*(1 - r)
//   none:     uE = tg + eEp;          uH = tg + eHp
//   eE = alpha*uE;  eH = beta*uH (+ gU[t]*r, subtract: U[t] += H[t-1]*R[t])
// uE[t], uH[t] are the adjoints of E'[t], H'[t]: dL/dI[t] = uE - uH. O(T) per
// column, O(T*B*N) in all; the sparsity is in gU (built from the active set).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SNNTORCH_SPARSE_AHD __host__ __device__ __forceinline__
#else
#define SNNTORCH_SPARSE_AHD inline
#endif

namespace snntorch_sparse {
namespace cuda {

// R[t] of column `col`: spk[t-1] for t > 0, r0[col] (or 0) for t = 0.
template <typename T>
SNNTORCH_SPARSE_AHD void alpha_backward_column(int64_t col, const T* gu, const T* d_e, const T* d_h,
                                               const T* alpha, const T* beta, const T* tau, const bool* spk,
                                               const T* r0, int mode, int64_t Tn, int64_t RN, int64_t N, T* ue,
                                               T* uh) {
  const int64_t n = col % N;
  const T a = alpha[n], b = beta[n], ta = tau[n];
  T eE = T(0), eH = T(0);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const int64_t i = t * RN + col;
    T eEp = eE, eHp = eH;
    if (d_e != nullptr) eEp = eEp + d_e[i];
    if (d_h != nullptr) eHp = eHp + d_h[i];
    T r = T(0);
    if (t > 0) {
      r = spk[i - RN] ? T(1) : T(0);
    } else if (r0 != nullptr) {
      r = r0[col];
    }
    const T g = gu[i];
    const T tg = ta * g;
    T x, y;
    if (mode == 1) {
      x = (tg + eEp) * (T(1) - r);
      y = (tg + eHp) * (T(1) - r);
    } else if (mode == 0) {
      x = tg + eEp;
      y = tg + eHp * (T(1) - r);
    } else {
      x = tg + eEp;
      y = tg + eHp;
    }
    ue[i] = x;
    uh[i] = y;
    eE = a * x;
    eH = b * y;
    if (mode == 0) eH = eH + g * r;
  }
}

#if defined(__CUDACC__)
template <typename T>
__global__ void alpha_backward_kernel(const T* gu, const T* d_e, const T* d_h, const T* alpha, const T* beta,
                                      const T* tau, const bool* spk, const T* r0, int mode, int64_t Tn, int64_t RN,
                                      int64_t N, T* ue, T* uh) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col < RN) alpha_backward_column<T>(col, gu, d_e, d_h, alpha, beta, tau, spk, r0, mode, Tn, RN, N, ue, uh);
}

template <typename T>
inline void launch_alpha_backward(const T* gu, const T* d_e, const T* d_h, const T* alpha, const T* beta,
                                  const T* tau, const bool* spk, const T* r0, int mode, int64_t Tn, int64_t RN,
                                  int64_t N, T* ue, T* uh, cudaStream_t stream) {
  const int threads = 256;
  const int blocks = static_cast<int>((RN + threads - 1) / threads);
  if (blocks > 0)
    alpha_backward_kernel<T><<<blocks, threads, 0, stream>>>(gu, d_e, d_h, alpha, beta, tau, spk, r0, mode, Tn, RN,
                                                             N, ue, uh);
}
#endif

}  // namespace cuda
}  // namespace snntorch_sparse
