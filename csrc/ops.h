// Shared declarations and argument checks for the snntorch_sparse ops.
//
// The four ops (see snntorch_sparse/ops/reference.py for the exact contract):
//   lif_scan(current[T,B,N], beta[N], threshold[N], reset_mode) -> (spk, mem)
//   lif_scan_(current[T,B,N], ...) -> ()  the membrane only, written over current
//   lif_scan_backward(grad[T,B,N], beta[N], spk?[T,B,N], reset_mode) -> h
//   lif_scan_backward_(grad[T,B,N], ...) -> ()  h written over grad
//   sparse_weight_grad(h[R,No], x_index[nnz], x_values?[nnz], in_features) -> dW[No,Ni]
//   sparse_input_grad(h[R,No], weight[No,Ni], index[k]) -> out[k]
// and the fused Linear+LIF forward/backward over CSR sets (dense_to_csr,
// lif_fused_forward, lif_fused_backward, csr_to_flat_), see
// csrc/cpu/fused_lif.cpp, csrc/cuda/fused_launch.cu and snntorch_sparse/ops/fused.py.
#pragma once

#include <utility>

#include <ATen/ATen.h>

#include <optional>
#include <tuple>

namespace snntorch_sparse {

// ---- CPU kernels (csrc/cpu/) ------------------------------------------------
std::tuple<at::Tensor, at::Tensor> lif_scan_cpu(const at::Tensor& current, const at::Tensor& beta,
                                                const at::Tensor& threshold, int64_t reset_mode);
void lif_scan_inplace_cpu(at::Tensor& current, const at::Tensor& beta, const at::Tensor& threshold,
                          int64_t reset_mode);
at::Tensor lif_scan_backward_cpu(const at::Tensor& grad, const at::Tensor& beta,
                                 const std::optional<at::Tensor>& spk, int64_t reset_mode);
void lif_scan_backward_inplace_cpu(at::Tensor& grad, const at::Tensor& beta, const std::optional<at::Tensor>& spk,
                                   int64_t reset_mode);
at::Tensor sparse_weight_grad_cpu(const at::Tensor& h, const at::Tensor& x_index,
                                  const std::optional<at::Tensor>& x_values, int64_t in_features);
at::Tensor sparse_input_grad_cpu(const at::Tensor& h, const at::Tensor& weight,
                                 const at::Tensor& index);

// Fused Linear+LIF kernels (csrc/cpu/fused_lif.cpp); CSR over the T*B rows.
std::tuple<at::Tensor, at::Tensor, at::Tensor> dense_to_csr_cpu(const at::Tensor& x);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lif_fused_forward_cpu(
    const std::optional<at::Tensor>& current, const std::optional<at::Tensor>& x_rowptr,
    const std::optional<at::Tensor>& x_col, const std::optional<at::Tensor>& x_val,
    const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias,
    const at::Tensor& beta, const at::Tensor& threshold, int64_t reset_mode, const at::Tensor& bth,
    bool event, int64_t T, int64_t B, const std::optional<at::Tensor>& spk_out, const std::optional<at::Tensor>& mem_out,
    bool need_spike_csr, bool need_active, const std::optional<at::Tensor>& capacity,
    const std::optional<at::Tensor>& x_dense);
std::tuple<at::Tensor, at::Tensor> lif_fused_backward_cpu(
    const at::Tensor& act_rowptr, const at::Tensor& act_col, const at::Tensor& act_sg,
    const std::optional<at::Tensor>& d_spk, const std::optional<at::Tensor>& d_mem,
    const at::Tensor& beta, const std::optional<at::Tensor>& spk, int64_t reset_mode,
    const std::optional<at::Tensor>& x_rowptr, const std::optional<at::Tensor>& x_col,
    const std::optional<at::Tensor>& x_val, const std::optional<at::Tensor>& weight,
    const std::optional<at::Tensor>& up_rowptr, const std::optional<at::Tensor>& up_col,
    const std::optional<at::Tensor>& dx_out, const std::optional<at::Tensor>& h_out,
    int64_t T, int64_t B, int64_t in_features, bool need_dw, bool need_db, bool d_spk_compact,
    bool dx_compact, const std::optional<at::Tensor>& x_dense);
void csr_to_flat_cpu(const at::Tensor& rowptr, const at::Tensor& col, int64_t n_cols, at::Tensor& out);

// ---- argument checks shared by the CPU and CUDA implementations ------------
inline void check_scan_args(const char* op, const at::Tensor& x, const at::Tensor& beta,
                            int64_t reset_mode) {
  TORCH_CHECK(x.dim() == 3, op, ": expected a [T, B, N] tensor, got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op,
              ": only float32 and float64 are supported, got ", x.scalar_type());
  TORCH_CHECK(beta.dim() == 1 && beta.numel() == x.size(2), op, ": beta must be [N] with N = ",
              x.size(2), ", got ", beta.sizes());
  TORCH_CHECK(beta.scalar_type() == x.scalar_type(), op, ": beta dtype ", beta.scalar_type(),
              " differs from the input's ", x.scalar_type());
  TORCH_CHECK(beta.device() == x.device(), op, ": beta is on ", beta.device(),
              ", the input on ", x.device());
  TORCH_CHECK(reset_mode >= 0 && reset_mode <= 2, op,
              ": reset_mode must be 0 (subtract), 1 (zero) or 2 (none), got ", reset_mode);
}

// lif_fused_forward's capacity hint: CPU int64 [2] (active, spikes), the column lists'
// lengths to allocate before their totals are known (CUDA; the CPU grows its lists).
// Returns the hint, or {-1, -1} without one.
inline std::pair<int64_t, int64_t> capacity_hint(const char* op, const std::optional<at::Tensor>& capacity) {
  if (!capacity.has_value() || !capacity->defined()) return {-1, -1};
  TORCH_CHECK(capacity->device().is_cpu() && capacity->scalar_type() == at::kLong && capacity->numel() == 2, op,
              ": capacity must be a CPU int64 tensor [2] (active, spikes), got ", capacity->scalar_type(), " ",
              capacity->sizes(), " on ", capacity->device());
  const auto c = capacity->contiguous();
  const int64_t a = c.const_data_ptr<int64_t>()[0], s = c.const_data_ptr<int64_t>()[1];
  TORCH_CHECK(a >= 0 && s >= 0, op, ": capacity must be >= 0, got [", a, ", ", s, "]");
  return {a, s};
}

// The fused ops' dense input (x_dense, instead of the input's CSR): [R, N_in] of the
// layer's dtype and device. Returns it contiguous, or an undefined tensor without one.
inline at::Tensor dense_input(const char* op, const std::optional<at::Tensor>& x_dense, int64_t R, int64_t Ni,
                              at::ScalarType dtype, const at::Device& dev) {
  if (!x_dense.has_value() || !x_dense->defined()) return at::Tensor();
  TORCH_CHECK(x_dense->dim() == 2 && x_dense->size(0) == R && x_dense->size(1) == Ni, op,
              ": x_dense must be the [T*B, N_in] = [", R, ", ", Ni, "] input, got ", x_dense->sizes());
  TORCH_CHECK(x_dense->scalar_type() == dtype && x_dense->device() == dev, op, ": x_dense must be ", dtype, " on ",
              dev, ", got ", x_dense->scalar_type(), " on ", x_dense->device());
  return x_dense->contiguous();
}

inline void check_threshold(const char* op, const at::Tensor& x, const at::Tensor& threshold) {
  TORCH_CHECK(threshold.dim() == 1 && threshold.numel() == x.size(2) &&
                  threshold.scalar_type() == x.scalar_type(),
              op, ": threshold must be [N] of the input's dtype, got ", threshold.scalar_type(), " ",
              threshold.sizes());
  TORCH_CHECK(threshold.device() == x.device(), op, ": threshold is on ", threshold.device(),
              ", the input on ", x.device());
}

inline void check_rows_args(const char* op, const at::Tensor& h, const at::Tensor& index) {
  TORCH_CHECK(h.dim() == 2, op, ": h must be [R, N_out], got ", h.sizes());
  TORCH_CHECK(h.scalar_type() == at::kFloat || h.scalar_type() == at::kDouble, op,
              ": only float32 and float64 are supported, got ", h.scalar_type());
  TORCH_CHECK(index.dim() == 1 && index.scalar_type() == at::kLong, op,
              ": indices must be a 1-D int64 tensor, got ", index.scalar_type(), " ",
              index.sizes());
  TORCH_CHECK(index.device() == h.device(), op, ": indices are on ", index.device(),
              ", h on ", h.device());
}

// Spikes may come as bool, uint8 or floating point: non-zero means a spike.
inline at::Tensor spikes_as_bool(const at::Tensor& spk) {
  return (spk.scalar_type() == at::kBool ? spk : spk.ne(0)).contiguous();
}

// The forward spikes lif_scan_backward(_) reads (reset_mode 1 only; undefined
// otherwise): spikes of the gradient's dtype as they are, others as bool.
inline at::Tensor backward_spikes(const char* op, const at::Tensor& grad, const std::optional<at::Tensor>& spk,
                                  int64_t reset_mode) {
  if (reset_mode != 1) return at::Tensor();
  TORCH_CHECK(spk.has_value() && spk->defined(), op, ": spk is required for reset_mode 1 (zero)");
  TORCH_CHECK(spk->sizes() == grad.sizes(), op, ": spk has shape ", spk->sizes(), ", grad ", grad.sizes());
  TORCH_CHECK(spk->device() == grad.device(), op, ": spk is on ", spk->device(), ", grad on ", grad.device());
  return spk->scalar_type() == grad.scalar_type() ? spk->contiguous() : spikes_as_bool(*spk);
}

}  // namespace snntorch_sparse
