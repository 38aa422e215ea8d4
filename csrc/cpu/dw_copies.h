// Merging per-range weight-gradient copies (csrc/cpu/fused_lif.cpp, sparse_grad.cpp).
//
// Each parallel range accumulates its own dW^T [Ni, N]; the result is
// dW[i, j] = sum over ranges of copy[j, i], added in range order so the
// result is deterministic for a given number of ranges.
#pragma once

#include <ATen/Parallel.h>

#include <cstdint>
#include <vector>

namespace snntorch_sparse {

// copies[c] points at copy c, its rows ld >= N elements apart.
template <typename T>
inline void merge_transposed_copies(const std::vector<const T*>& copies, int64_t N, int64_t Ni, int64_t ld,
                                    T* out) {
  const int64_t n_copies = static_cast<int64_t>(copies.size());
  at::parallel_for(0, Ni, 16, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j)
      for (int64_t i = 0; i < N; ++i) {
        T s = copies[0][j * ld + i];
        for (int64_t c = 1; c < n_copies; ++c) s += copies[c][j * ld + i];
        out[i * Ni + j] = s;
      }
  });
}

template <typename T>
inline void merge_transposed_copies(const std::vector<std::vector<T>>& copies, int64_t N, int64_t Ni, T* out) {
  std::vector<const T*> ptrs;
  for (const auto& c : copies) ptrs.push_back(c.data());
  merge_transposed_copies<T>(ptrs, N, Ni, N, out);
}

}  // namespace snntorch_sparse
