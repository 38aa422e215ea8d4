// CPU kernels of sparse_weight_grad and sparse_input_grad.
//
// sparse_weight_grad: for layers whose dWᵀ fits in a per-thread copy, the
// non-zeros are walked in order (rows of h streamed once) -- see below.
// Otherwise: a stable counting sort of the non-zeros by input column
// j (O(nnz + N_in), serial) turns X into CSC form; the columns are then
// independent, so at::parallel_for over j needs no atomics and each column's
// sum runs in a fixed order (deterministic whatever the thread count).
// Per column, dW[:, j] = sum_k x_k * h[r_k, :] is an axpy over contiguous
// rows of h (vectorises), accumulated in a local buffer and stored once.
//
// sparse_input_grad: out[k] = <h[r_k, :], W[:, j_k]>. W is transposed once
// (N_out*N_in copy) so both operands are contiguous rows; parallel over k.
#include <ATen/Parallel.h>
#include <ATen/Dispatch.h>

#include <vector>

#include "../ops.h"
#include "dw_copies.h"

namespace snntorch_sparse {
namespace {

template <typename T>
void column_sum(const T* __restrict__ h, const int64_t* __restrict__ order,
                const int64_t* __restrict__ rows, const T* __restrict__ vals, int64_t k0,
                int64_t k1, int64_t No, T* __restrict__ acc) {
  for (int64_t i = 0; i < No; ++i) acc[i] = T(0);
  for (int64_t p = k0; p < k1; ++p) {
    const int64_t k = order[p];
    const T* __restrict__ hr = h + rows[k] * No;
    if (vals == nullptr) {
      for (int64_t i = 0; i < No; ++i) acc[i] += hr[i];
    } else {
      const T x = vals[k];
      for (int64_t i = 0; i < No; ++i) acc[i] += x * hr[i];
    }
  }
}

// Dot product with 8 independent partial sums: breaks the add dependency
// chain and lets the compiler vectorise without reassociating (no -ffast-math).
template <typename T>
T dot(const T* __restrict__ a, const T* __restrict__ b, int64_t n) {
  T s[8] = {T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0)};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) s[l] += a[i + l] * b[i + l];
  for (int l = 0; i < n; ++i, ++l) s[l] += a[i] * b[i];
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

}  // namespace

at::Tensor sparse_weight_grad_cpu(const at::Tensor& h_, const at::Tensor& x_index_,
                                  const std::optional<at::Tensor>& x_values_, int64_t in_features) {
  check_rows_args("sparse_weight_grad", h_, x_index_);
  TORCH_CHECK(in_features >= 0, "sparse_weight_grad: in_features must be >= 0, got ", in_features);
  const bool has_vals = x_values_.has_value() && x_values_->defined();
  if (has_vals) {
    TORCH_CHECK(x_values_->dim() == 1 && x_values_->numel() == x_index_.numel(),
                "sparse_weight_grad: x_values must be [nnz] like x_index, got ",
                x_values_->sizes());
    TORCH_CHECK(x_values_->scalar_type() == h_.scalar_type(), "sparse_weight_grad: x_values dtype ",
                x_values_->scalar_type(), " differs from h's ", h_.scalar_type());
  }
  const auto h = h_.contiguous();
  const auto x_index = x_index_.contiguous();
  const at::Tensor x_values = has_vals ? x_values_->contiguous() : at::Tensor();
  const int64_t R = h.size(0), No = h.size(1), Ni = in_features, nnz = x_index.numel();
  auto dw = at::empty({No, Ni}, h.options());
  if (No == 0 || Ni == 0) {
    TORCH_CHECK(nnz == 0 || No == 0, "sparse_weight_grad: index out of range for in_features 0");
    return dw.zero_();
  }

  const int64_t* idx = x_index.const_data_ptr<int64_t>();
  const int64_t limit = R * Ni;
  // Row-streaming path: the non-zeros come (nearly) sorted by row, so walking them
  // in order streams h once while each task adds rows of h into its own dWᵀ copy
  // (small: N_in·N_out) -- no gather of h, no sort. Copies are summed at the end
  // in task order (deterministic for a given thread count).
  const int64_t tasks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), nnz / 4096 + 1));
  const int64_t copy_bytes = tasks * Ni * No * static_cast<int64_t>(h.element_size());
  if (copy_bytes <= (int64_t{64} << 20)) {
    for (int64_t k = 0; k < nnz; ++k) {
      TORCH_CHECK(idx[k] >= 0 && idx[k] < limit, "sparse_weight_grad: flat index ", idx[k],
                  " out of range for [", R, ", ", Ni, "]");
    }
    AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "sparse_weight_grad_cpu_rows", [&] {
      const scalar_t* hp = h.const_data_ptr<scalar_t>();
      const scalar_t* vp = has_vals ? x_values.const_data_ptr<scalar_t>() : nullptr;
      std::vector<std::vector<scalar_t>> copies(tasks);
      const int64_t per = (nnz + tasks - 1) / tasks;
      at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          auto& buf = copies[t];
          buf.assign(Ni * No, scalar_t(0));
          const int64_t k1 = std::min(nnz, (t + 1) * per);
          for (int64_t k = t * per; k < k1; ++k) {
            const int64_t r = idx[k] / Ni, j = idx[k] - r * Ni;
            const scalar_t* __restrict__ hr = hp + r * No;
            scalar_t* __restrict__ dst = buf.data() + j * No;
            if (vp == nullptr) {
              for (int64_t i = 0; i < No; ++i) dst[i] += hr[i];
            } else {
              const scalar_t xv = vp[k];
              for (int64_t i = 0; i < No; ++i) dst[i] += xv * hr[i];
            }
          }
        }
      });
      merge_transposed_copies<scalar_t>(copies, No, Ni, dw.mutable_data_ptr<scalar_t>());
    });
    return dw;
  }

  // Large layers (per-task copies too big): stable counting sort by column,
  // colptr[j]..colptr[j+1] indexes `order`; columns are then independent.
  std::vector<int64_t> rows(nnz), cols(nnz), colptr(Ni + 1, 0), order(nnz);
  for (int64_t k = 0; k < nnz; ++k) {
    const int64_t v = idx[k];
    TORCH_CHECK(v >= 0 && v < limit, "sparse_weight_grad: flat index ", v,
                " out of range for [", R, ", ", Ni, "]");
    rows[k] = v / Ni;
    cols[k] = v - rows[k] * Ni;
    ++colptr[cols[k] + 1];
  }
  for (int64_t j = 0; j < Ni; ++j) colptr[j + 1] += colptr[j];
  {
    std::vector<int64_t> pos(colptr.begin(), colptr.end() - 1);
    for (int64_t k = 0; k < nnz; ++k) order[pos[cols[k]]++] = k;
  }

  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "sparse_weight_grad_cpu", [&] {
    const scalar_t* hp = h.const_data_ptr<scalar_t>();
    const scalar_t* vp = has_vals ? x_values.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* out = dw.mutable_data_ptr<scalar_t>();
    // Grain: about 64k multiply-adds per task (or a few columns when empty).
    const int64_t grain = std::max<int64_t>(1, std::min<int64_t>(
        Ni, (int64_t{1} << 16) / std::max<int64_t>(1, No * std::max<int64_t>(1, nnz / Ni))));
    at::parallel_for(0, Ni, grain, [&](int64_t j0, int64_t j1) {
      std::vector<scalar_t> acc(No);
      for (int64_t j = j0; j < j1; ++j) {
        column_sum<scalar_t>(hp, order.data(), rows.data(), vp, colptr[j], colptr[j + 1], No,
                             acc.data());
        for (int64_t i = 0; i < No; ++i) out[i * Ni + j] = acc[i];
      }
    });
  });
  return dw;
}

at::Tensor sparse_input_grad_cpu(const at::Tensor& h_, const at::Tensor& weight_,
                                 const at::Tensor& index_) {
  check_rows_args("sparse_input_grad", h_, index_);
  TORCH_CHECK(weight_.dim() == 2 && weight_.size(0) == h_.size(1),
              "sparse_input_grad: weight must be [N_out, N_in] with N_out = ", h_.size(1),
              ", got ", weight_.sizes());
  TORCH_CHECK(weight_.scalar_type() == h_.scalar_type(), "sparse_input_grad: weight dtype ",
              weight_.scalar_type(), " differs from h's ", h_.scalar_type());
  const auto h = h_.contiguous();
  const auto index = index_.contiguous();
  const int64_t R = h.size(0), No = h.size(1), Ni = weight_.size(1), K = index.numel();
  auto out = at::empty({K}, h.options());
  if (K == 0) return out;
  const auto wt = weight_.t().contiguous();  // [N_in, N_out]
  const int64_t limit = R * Ni;
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "sparse_input_grad_cpu", [&] {
    const scalar_t* hp = h.const_data_ptr<scalar_t>();
    const scalar_t* wp = wt.const_data_ptr<scalar_t>();
    const int64_t* ip = index.const_data_ptr<int64_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(16, (int64_t{1} << 15) / std::max<int64_t>(No, 1));
    at::parallel_for(0, K, grain, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t v = ip[k];
        TORCH_CHECK(v >= 0 && v < limit, "sparse_input_grad: flat index ", v,
                    " out of range for [", R, ", ", Ni, "]");
        const int64_t r = v / Ni, j = v - r * Ni;
        op[k] = dot<scalar_t>(hp + r * No, wp + j * No, No);
      }
    });
  });
  return out;
}

}  // namespace snntorch_sparse
