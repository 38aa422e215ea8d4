// Per-range weight-gradient copies (csrc/cpu/fused_lif.cpp, sparse_grad.cpp, recurrent.cpp).
//
// Each parallel range accumulates its own dW^T [Ni, N]; the result is
// dW[i, j] = sum over ranges of copy[j, i], added in range order so the
// result is deterministic for a given number of ranges. DwBlock fills a copy
// from a block of rows at a time, column by column.
#pragma once

#include <ATen/Parallel.h>

#include <cstdint>
#include <vector>

#include "row_kernels.h"

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

// dW^T rows of one block of rows (t from t_hi down to t_lo, b in [b0, b1)),
// grouped by input column: each event's h row index goes into its column's
// bucket (block order, so each column keeps the (t desc, b, k) order of the
// per-row scatter and the sums are bit-identical); a full bucket is added to
// its dW^T row at once, the rest after the block. Every dW^T row is thus read
// and written about once per block instead of once per event, in one pass
// over the block's events. h_blk holds h of the block's rows, row
// l = (t % slots) * (b1 - b0) + (b - b0), ld elements apart (slots >= the block's
// number of steps; the CSR's row of (t, b) is t * B + b).
template <typename T>
struct DwBlock {
  static constexpr int32_t kBucket = 16;  // events per column held before an early add
  std::vector<int32_t> count, ev_row;
  std::vector<T> ev_val;

  void flush(T* dwt, const T* h_blk, int64_t ld, int64_t slots, const int64_t* xr, const int32_t* xc,
             const T* xv, int64_t t_hi, int64_t t_lo, int64_t b0, int64_t b1, int64_t B, int64_t N, int64_t Ni,
             int64_t ldw) {
    if (static_cast<int64_t>(count.size()) != Ni) {
      count.assign(Ni, 0);
      ev_row.resize(Ni * kBucket);
      if (xv != nullptr) ev_val.resize(Ni * kBucket);
    }
    const int64_t nb = b1 - b0;
    for (int64_t t = t_hi; t >= t_lo; --t)
      for (int64_t b = b0; b < b1; ++b) {
        const int32_t l = static_cast<int32_t>((t % slots) * nb + (b - b0));
        for (int64_t k = xr[t * B + b]; k < xr[t * B + b + 1]; ++k) {
          const int32_t j = xc[k];
          int32_t q = count[j];
          if (q == kBucket) {
            add_bucket(dwt, h_blk, ld, xv, j, q, N, ldw);
            q = 0;
          }
          ev_row[static_cast<int64_t>(j) * kBucket + q] = l;
          if (xv != nullptr) ev_val[static_cast<int64_t>(j) * kBucket + q] = xv[k];
          count[j] = q + 1;
        }
      }
    for (int64_t j = 0; j < Ni; ++j)
      if (count[j] > 0) {
        add_bucket(dwt, h_blk, ld, xv, j, count[j], N, ldw);
        count[j] = 0;
      }
  }

 private:
  void add_bucket(T* dwt, const T* h_blk, int64_t ld, const T* xv, int64_t j, int64_t n, int64_t N,
                  int64_t ldw) {
    gather_add_rows<T>(dwt + j * ldw, h_blk, ev_row.data() + j * kBucket,
                       xv != nullptr ? ev_val.data() + j * kBucket : nullptr, n, N, ld);
  }
};

}  // namespace snntorch_sparse
