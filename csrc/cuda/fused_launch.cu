// CUDA implementations of the fused Linear+LIF ops (lif_fused_forward,
// lif_fused_backward, dense_to_csr, csr_to_flat_): the same schemas and
// contracts as the CPU kernels (csrc/cpu/fused_lif.cpp), so one autograd
// function (snntorch_sparse/fused_cpu.py) serves both devices and the
// dispatcher picks the kernels. Kernels in fused_kernels.cuh.
//
// Host synchronisation: one small device-to-host copy per op that returns
// sets (the totals that size the column lists); the backward has none.
// Without a given current the forward computes I = X Wᵀ + b itself, by
// cuBLAS over time chunks of the input's events densified (at most
// kChunkBytes each of input and current), the membrane carried from chunk
// to chunk: no dense [T, B, N] current lives through the call.
// GEMMs go through ATen (cuBLAS): TF32 follows
// torch.backends.cuda.matmul.allow_tf32, as for nn.Linear.
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "../ops.h"
#include "fused_kernels.cuh"

namespace snntorch_sparse {
namespace {

// Rows of the backward's dense chunks ([rows, N_in] input events and h W):
// at most kChunkBytes each, whole time steps when B rows fit (see
// backward_chunk_rows). 32 MiB keeps each GEMM large enough to run near
// cuBLAS's peak at the SHD shape (256 rows x 500 steps x 700 inputs = 358 MB
// dense would otherwise be alive at once).
constexpr int64_t kChunkBytes = int64_t{32} << 20;

// [R + 1] row pointers: 0 then the running sum of the per-row counts. A 1-D
// scan (CUB's device scan; a [2, R] scan along the rows ran 0.22 ms at
// R = 128,000 on an H200).
at::Tensor exclusive_rowptr(const at::Tensor& cnt) {
  const int64_t R = cnt.numel();
  auto rowptr = at::empty({R + 1}, cnt.options());
  rowptr.narrow(0, 0, 1).zero_();
  if (R > 0) {
    auto ends = rowptr.narrow(0, 1, R);
    at::cumsum_out(ends, cnt, 0);
  }
  return rowptr;
}

void check_launch(cudaError_t err, const char* op) {
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
}

int64_t backward_chunk_rows(int64_t R, int64_t B, int64_t width, int64_t elem) {
  const int64_t fit = std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(1, width * elem));
  if (fit >= R) return std::max<int64_t>(R, 1);
  return fit >= B ? fit / B * B : fit;  // whole time steps when possible
}

void check_rowptr(const char* op, const char* name, const at::Tensor& rowptr, const at::Tensor& col, int64_t rows,
                  const at::Device& dev) {
  TORCH_CHECK(rowptr.dim() == 1 && rowptr.scalar_type() == at::kLong && rowptr.numel() == rows + 1, op, ": ", name,
              "_rowptr must be int64 [", rows + 1, "], got ", rowptr.scalar_type(), " ", rowptr.sizes());
  TORCH_CHECK(col.dim() == 1 && col.scalar_type() == at::kInt, op, ": ", name, "_col must be a 1-D int32 tensor, got ",
              col.scalar_type(), " ", col.sizes());
  TORCH_CHECK(rowptr.device() == dev && col.device() == dev, op, ": ", name, " CSR must be on ", dev);
}

// ---------------------------------------------------------------- dense_to_csr

std::tuple<at::Tensor, at::Tensor, at::Tensor> dense_to_csr_cuda(const at::Tensor& x_) {
  TORCH_CHECK(x_.dim() == 2, "dense_to_csr: x must be [R, N], got ", x_.sizes());
  TORCH_CHECK(x_.size(1) < (int64_t{1} << 31), "dense_to_csr: N must fit in int32, got ", x_.size(1));
  TORCH_CHECK(x_.scalar_type() == at::kFloat || x_.scalar_type() == at::kDouble,
              "dense_to_csr: only float32 and float64 are supported, got ", x_.scalar_type());
  const c10::cuda::CUDAGuard guard(x_.device());
  const auto x = x_.contiguous();
  const int64_t R = x.size(0), N = x.size(1);
  const auto stream = c10::cuda::getCurrentCUDAStream().stream();
  auto cnt = at::empty({R}, x.options().dtype(at::kLong));
  at::Tensor rowptr, col, val;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dense_to_csr_cuda", [&] {
    check_launch(cuda::launch_count_nonzero<scalar_t>(x.const_data_ptr<scalar_t>(), R, N,
                                                      cnt.mutable_data_ptr<int64_t>(), stream),
                 "dense_to_csr");
    rowptr = exclusive_rowptr(cnt);
    const int64_t nnz = R > 0 ? rowptr[R].item<int64_t>() : 0;
    col = at::empty({nnz}, x.options().dtype(at::kInt));
    val = at::empty({nnz}, x.options());
    if (nnz > 0)
      check_launch(cuda::launch_compact_nonzero<scalar_t>(x.const_data_ptr<scalar_t>(), R, N,
                                                          rowptr.const_data_ptr<int64_t>(),
                                                          col.mutable_data_ptr<int32_t>(),
                                                          val.mutable_data_ptr<scalar_t>(), stream),
                   "dense_to_csr");
  });
  return {rowptr, col, val};
}

// ---------------------------------------------------------------- csr_to_flat_

void csr_to_flat_cuda(const at::Tensor& rowptr, const at::Tensor& col, int64_t n_cols, at::Tensor& out) {
  TORCH_CHECK(out.numel() == col.numel() && out.scalar_type() == at::kLong, "csr_to_flat_: out must be int64 [nnz]");
  if (col.numel() == 0) return;
  // row of entry k: the last r with rowptr[r] <= k
  const auto k = at::arange(col.numel(), rowptr.options());
  const auto rows = at::searchsorted(rowptr, k, /*out_int32=*/false, /*right=*/true).sub_(1);
  out.copy_(rows.mul_(n_cols).add_(col));
}

// ---------------------------------------------------------- lif_fused_forward

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lif_fused_forward_cuda(
    const std::optional<at::Tensor>& current_, const std::optional<at::Tensor>& x_rowptr_,
    const std::optional<at::Tensor>& x_col_, const std::optional<at::Tensor>& x_val_,
    const std::optional<at::Tensor>& weight_, const std::optional<at::Tensor>& bias_, const at::Tensor& beta_,
    const at::Tensor& threshold_, int64_t reset_mode, const at::Tensor& bth_, bool event, int64_t T_, int64_t B_,
    const std::optional<at::Tensor>& spk_out_, const std::optional<at::Tensor>& mem_out_, bool need_spike_csr,
    bool need_active) {
  const char* op = "lif_fused_forward";
  TORCH_CHECK(T_ >= 0 && B_ >= 0, op, ": T and B must be >= 0, got ", T_, ", ", B_);
  TORCH_CHECK(beta_.dim() == 1, op, ": beta must be [N], got ", beta_.sizes());
  const bool has_spk = spk_out_.has_value() && spk_out_->defined();
  if (has_spk)
    TORCH_CHECK(spk_out_->dim() == 3 && spk_out_->is_contiguous() && spk_out_->size(0) == T_ &&
                    spk_out_->size(1) == B_ && spk_out_->size(2) == beta_.numel(),
                op, ": spk_out must be a contiguous [T, B, N] = [", T_, ", ", B_, ", ", beta_.numel(),
                "] tensor, got ", spk_out_->sizes());
  TORCH_CHECK(has_spk || need_spike_csr, op, ": without spk_out the spikes must be returned as CSR (need_spike_csr)");
  TORCH_CHECK(!event || (current_.has_value() && current_->defined()), op,
              ": no event-driven current on CUDA (cuBLAS over time chunks is used without a current)");
  // Without spk_out the [T, B, N] buffer that holds U - θ before compaction is this call's
  // scratch, freed on return (the spikes leave as CSR only).
  const at::Tensor spk_out = has_spk ? *spk_out_ : at::empty({T_, B_, beta_.numel()}, beta_.options());
  check_scan_args(op, spk_out, beta_, reset_mode);
  check_threshold(op, spk_out, threshold_);
  const int64_t Tn = spk_out.size(0), B = spk_out.size(1), N = spk_out.size(2), R = Tn * B;
  const auto dev = spk_out.device();
  const bool has_current = current_.has_value() && current_->defined();
  at::Tensor current, weight, bias, x_rowptr, x_col, x_val;
  int64_t Ni = 0;
  if (has_current) {
    TORCH_CHECK(current_->sizes() == spk_out.sizes() && current_->scalar_type() == spk_out.scalar_type() &&
                    current_->device() == dev,
                op, ": current must be [T, B, N] like spk_out, got ", current_->sizes());
    current = current_->contiguous();
  } else {  // I = X Wᵀ + b by cuBLAS over time chunks of the input's events, densified
    TORCH_CHECK(weight_.has_value() && weight_->defined() && x_rowptr_.has_value() && x_rowptr_->defined() &&
                    x_col_.has_value() && x_col_->defined(),
                op, ": without current, weight and the input CSR (x_rowptr, x_col) are required");
    TORCH_CHECK(weight_->dim() == 2 && weight_->size(0) == N && weight_->scalar_type() == spk_out.scalar_type() &&
                    weight_->device() == dev,
                op, ": weight must be [N, N_in] with N = ", N, " of the output's dtype and device, got ",
                weight_->scalar_type(), " ", weight_->sizes());
    weight = *weight_;
    Ni = weight.size(1);
    x_rowptr = x_rowptr_->contiguous();
    x_col = x_col_->contiguous();
    check_rowptr(op, "x", x_rowptr, x_col, R, dev);
    if (x_val_.has_value() && x_val_->defined()) {
      TORCH_CHECK(x_val_->numel() == x_col.numel() && x_val_->scalar_type() == spk_out.scalar_type(), op,
                  ": x_val must be [nnz] of the output's dtype");
      x_val = x_val_->contiguous();
    }
    if (bias_.has_value() && bias_->defined()) {
      TORCH_CHECK(bias_->numel() == N && bias_->scalar_type() == spk_out.scalar_type() && bias_->device() == dev,
                  op, ": bias must be [N] of the output's dtype, got ", bias_->sizes());
      bias = bias_->contiguous();
    }
  }
  TORCH_CHECK(N < (int64_t{1} << 31), op, ": N must fit in int32");
  TORCH_CHECK(bth_.dim() == 1 && bth_.numel() == N && bth_.scalar_type() == spk_out.scalar_type() &&
                  bth_.device() == spk_out.device(),
              op, ": bth must be [N] window half-widths of the output's dtype and device, got ", bth_.scalar_type(),
              " ", bth_.sizes());
  const bool has_mem = mem_out_.has_value() && mem_out_->defined() && mem_out_->numel() > 0;
  if (has_mem)
    TORCH_CHECK(mem_out_->sizes() == spk_out.sizes() && mem_out_->is_contiguous() &&
                    mem_out_->scalar_type() == spk_out.scalar_type() && mem_out_->device() == spk_out.device(),
                op, ": mem_out must be contiguous like spk_out, got ", mem_out_->sizes());
  const c10::cuda::CUDAGuard guard(spk_out.device());
  const auto beta = beta_.contiguous();
  const auto thr = threshold_.contiguous();
  const auto win = bth_.contiguous();
  const auto stream = c10::cuda::getCurrentCUDAStream().stream();
  const auto lopt = spk_out.options().dtype(at::kLong);
  const auto iopt = spk_out.options().dtype(at::kInt);
  const bool sets = need_spike_csr || need_active;
  at::Tensor spk_rowptr = at::empty({0}, lopt), spk_col = at::empty({0}, iopt);
  at::Tensor act_rowptr = at::empty({0}, lopt), act_col = at::empty({0}, iopt);
  at::Tensor act_shift = at::empty({0}, spk_out.options());
  AT_DISPATCH_FLOATING_TYPES(spk_out.scalar_type(), "lif_fused_forward_cuda", [&] {
    using T = scalar_t;
    T* out = spk_out.mutable_data_ptr<T>();
    T* mem = has_mem ? mem_out_->mutable_data_ptr<T>() : nullptr;
    if (has_current) {
      check_launch(cuda::launch_lif_fused_scan<T>(current.const_data_ptr<T>(), beta.const_data_ptr<T>(),
                                                  thr.const_data_ptr<T>(), out, mem, !sets, Tn, B * N, N,
                                                  static_cast<int>(reset_mode), stream),
                   op);
    } else {
      // Time chunks of whole steps, each at most kChunkBytes of densified input and of
      // current: the dense [T, B, N] current never exists; the membrane is carried.
      const int64_t step_bytes = B * std::max(Ni, N) * static_cast<int64_t>(sizeof(T));
      const int64_t Tc = std::max<int64_t>(1, std::min<int64_t>(Tn, kChunkBytes / std::max<int64_t>(1, step_bytes)));
      auto xbuf = at::empty({Tc * B, Ni}, spk_out.options());
      auto cbuf = at::empty({Tc * B, N}, spk_out.options());
      auto carry = at::zeros({B * N}, spk_out.options());
      const auto wt = weight.t();
      for (int64_t t0 = 0; t0 < Tn; t0 += Tc) {
        const int64_t t1 = std::min(Tn, t0 + Tc), r0 = t0 * B, r1 = t1 * B;
        auto xc = xbuf.narrow(0, 0, r1 - r0);
        auto cc = cbuf.narrow(0, 0, r1 - r0);
        xc.zero_();
        check_launch(cuda::launch_densify<T>(r0, r1, x_rowptr.const_data_ptr<int64_t>(),
                                             x_col.const_data_ptr<int32_t>(),
                                             x_val.defined() ? x_val.const_data_ptr<T>() : nullptr,
                                             xc.mutable_data_ptr<T>(), Ni, stream),
                     op);
        if (bias.defined()) at::addmm_out(cc, bias, xc, wt);
        else at::mm_out(cc, xc, wt);
        check_launch(cuda::launch_lif_fused_scan<T>(cc.const_data_ptr<T>(), beta.const_data_ptr<T>(),
                                                    thr.const_data_ptr<T>(), out + r0 * N,
                                                    mem != nullptr ? mem + r0 * N : nullptr, !sets, t1 - t0,
                                                    B * N, N, static_cast<int>(reset_mode), stream,
                                                    carry.mutable_data_ptr<T>()),
                     op);
      }
    }
    if (!sets) return;
    // the spike buffer holds U - θ until compact_shift turns it into spikes
    auto act_cnt = at::empty({R}, lopt), spk_cnt = at::empty({R}, lopt);
    check_launch(cuda::launch_count_shift<T>(out, win.const_data_ptr<T>(), R, N, act_cnt.mutable_data_ptr<int64_t>(),
                                             spk_cnt.mutable_data_ptr<int64_t>(), stream),
                 op);
    auto a_rp = exclusive_rowptr(act_cnt), s_rp = exclusive_rowptr(spk_cnt);
    const auto totals = at::stack({a_rp[R], s_rp[R]}).cpu();  // the one host synchronisation
    const int64_t n_act = totals[0].item<int64_t>(), n_spk = totals[1].item<int64_t>();
    if (need_active) {
      act_rowptr = a_rp;
      act_col = at::empty({n_act}, iopt);
      act_shift = at::empty({n_act}, spk_out.options());
    }
    if (need_spike_csr) {
      spk_rowptr = s_rp;
      spk_col = at::empty({n_spk}, iopt);
    }
    check_launch(cuda::launch_compact_shift<T>(
                     out, win.const_data_ptr<T>(), R, N, a_rp.const_data_ptr<int64_t>(),
                     need_active ? act_col.mutable_data_ptr<int32_t>() : nullptr,
                     need_active ? act_shift.mutable_data_ptr<T>() : nullptr, s_rp.const_data_ptr<int64_t>(),
                     need_spike_csr ? spk_col.mutable_data_ptr<int32_t>() : nullptr, stream),
                 op);
  });
  return {spk_rowptr, spk_col, act_rowptr, act_col, act_shift};
}

// ---------------------------------------------------------- lif_fused_backward

std::tuple<at::Tensor, at::Tensor> lif_fused_backward_cuda(
    const at::Tensor& act_rowptr_, const at::Tensor& act_col_, const at::Tensor& act_sg_,
    const std::optional<at::Tensor>& d_spk_, const std::optional<at::Tensor>& d_mem_, const at::Tensor& beta_,
    const std::optional<at::Tensor>& spk_, int64_t reset_mode, const std::optional<at::Tensor>& x_rowptr_,
    const std::optional<at::Tensor>& x_col_, const std::optional<at::Tensor>& x_val_,
    const std::optional<at::Tensor>& weight_, const std::optional<at::Tensor>& up_rowptr_,
    const std::optional<at::Tensor>& up_col_, const std::optional<at::Tensor>& dx_out_,
    const std::optional<at::Tensor>& h_out_, int64_t T_, int64_t B_, int64_t in_features, bool need_dw,
    bool need_db, bool d_spk_compact, bool dx_compact) {
  const char* op = "lif_fused_backward";
  const auto dtype = act_sg_.scalar_type();
  const auto dev = act_sg_.device();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op, ": only float32 and float64, got ", dtype);
  TORCH_CHECK(T_ >= 0 && B_ >= 0, op, ": T and B must be >= 0");
  TORCH_CHECK(beta_.dim() == 1 && beta_.scalar_type() == dtype && beta_.device() == dev, op,
              ": beta must be [N] of dtype ", dtype, " on ", dev);
  TORCH_CHECK(reset_mode >= 0 && reset_mode <= 2, op, ": reset_mode must be 0, 1 or 2, got ", reset_mode);
  const c10::cuda::CUDAGuard guard(dev);
  const int64_t B = B_, N = beta_.numel(), R = T_ * B, Ni = in_features;
  const auto act_rowptr = act_rowptr_.contiguous();
  const auto act_col = act_col_.contiguous();
  const auto act_sg = act_sg_.contiguous();
  check_rowptr(op, "act", act_rowptr, act_col, R, dev);
  TORCH_CHECK(act_sg.numel() == act_col.numel(), op, ": act_sg must be [K] like act_col");
  const auto opts = act_sg.options();
  const auto stream = c10::cuda::getCurrentCUDAStream().stream();

  // h = ∂L/∂U (or 0) + ∂L/∂S σ' on the active set, then the adjoint scan in place
  at::Tensor h;
  if (h_out_.has_value() && h_out_->defined()) {
    TORCH_CHECK(h_out_->numel() == R * N && h_out_->is_contiguous() && h_out_->scalar_type() == dtype &&
                    h_out_->device() == dev,
                op, ": h_out must be contiguous with T*B*N elements of dtype ", dtype);
    h = h_out_->view({R * N});
  } else {
    h = at::empty({R * N}, opts);
  }
  const bool has_mem = d_mem_.has_value() && d_mem_->defined() && d_mem_->numel() > 0;
  if (has_mem) {
    TORCH_CHECK(d_mem_->numel() == R * N && d_mem_->scalar_type() == dtype, op, ": d_mem must have T*B*N = ", R * N,
                " elements of dtype ", dtype);
    h.copy_(d_mem_->reshape({R * N}));
  } else {
    h.zero_();
  }
  const bool has_spk_grad = d_spk_.has_value() && d_spk_->defined() && act_col.numel() > 0;
  at::Tensor d_spk;
  if (has_spk_grad) {
    d_spk = d_spk_->contiguous();
    TORCH_CHECK(d_spk.scalar_type() == dtype && d_spk.numel() == (d_spk_compact ? act_col.numel() : R * N), op,
                ": d_spk must have ", d_spk_compact ? act_col.numel() : R * N, " elements of dtype ", dtype);
  }
  at::Tensor spk;
  if (reset_mode == 1) {
    TORCH_CHECK(spk_.has_value() && spk_->defined() && spk_->numel() == R * N, op,
                ": spk [T, B, N] is required for reset_mode 1");
    spk = spikes_as_bool(*spk_);
  }
  at::Tensor dw = at::empty({0}, opts), db = at::empty({0}, opts);
  const auto beta = beta_.contiguous();
  const auto hsum = need_db ? at::empty({B * N}, opts) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(dtype, "lif_fused_backward_cuda", [&] {
    using T = scalar_t;
    T* hp = h.mutable_data_ptr<T>();
    if (has_spk_grad)
      check_launch(cuda::launch_scatter_active<T>(R, act_rowptr.const_data_ptr<int64_t>(),
                                                  act_col.const_data_ptr<int32_t>(), act_sg.const_data_ptr<T>(),
                                                  d_spk.const_data_ptr<T>(), d_spk_compact, has_mem, hp, N, stream),
                   op);
    const uint8_t* sb = reset_mode == 1 ? reinterpret_cast<const uint8_t*>(spk.const_data_ptr<bool>()) : nullptr;
    check_launch(cuda::launch_lif_fused_backward_scan<T>(hp, beta.const_data_ptr<T>(), sb,
                                                         need_db ? hsum.mutable_data_ptr<T>() : nullptr, T_, B * N, N,
                                                         static_cast<int>(reset_mode), stream),
                 op);
  });
  const auto h2 = h.view({R, N});
  if (need_db) db = hsum.view({B, N}).sum(0);  // Σ over the batch of the scan's Σ over time

  const bool need_dx = up_rowptr_.has_value() && up_rowptr_->defined();
  if (!need_dw && !need_dx) return {dw, db};
  TORCH_CHECK(weight_.has_value() && weight_->defined() && weight_->dim() == 2 && weight_->size(0) == N &&
                  weight_->size(1) == Ni && weight_->scalar_type() == dtype && weight_->device() == dev,
              op, ": weight must be [", N, ", ", Ni, "] of dtype ", dtype, " on ", dev);
  at::Tensor x_rowptr, x_col, x_val, up_rowptr, up_col, dx_out;
  if (need_dw) {
    TORCH_CHECK(x_rowptr_.has_value() && x_col_.has_value() && x_rowptr_->defined() && x_col_->defined(), op,
                ": need_dw requires the input CSR");
    x_rowptr = x_rowptr_->contiguous();
    x_col = x_col_->contiguous();
    check_rowptr(op, "x", x_rowptr, x_col, R, dev);
    if (x_val_.has_value() && x_val_->defined()) {
      TORCH_CHECK(x_val_->numel() == x_col.numel() && x_val_->scalar_type() == dtype, op,
                  ": x_val must be [nnz] of dtype ", dtype);
      x_val = x_val_->contiguous();
    }
    dw = at::zeros({N, Ni}, opts);
  }
  if (need_dx) {
    TORCH_CHECK(up_col_.has_value() && up_col_->defined() && dx_out_.has_value() && dx_out_->defined(), op,
                ": the upstream active set needs up_col and dx_out");
    up_rowptr = up_rowptr_->contiguous();
    up_col = up_col_->contiguous();
    check_rowptr(op, "up", up_rowptr, up_col, R, dev);
    dx_out = *dx_out_;
    TORCH_CHECK(dx_out.is_contiguous() && dx_out.scalar_type() == dtype &&
                    dx_out.numel() == (dx_compact ? up_col.numel() : R * Ni),
                op, ": dx_out must be contiguous with ", dx_compact ? up_col.numel() : R * Ni, " elements of dtype ",
                dtype);
  }
  const auto& w = *weight_;
  const int64_t rows = backward_chunk_rows(R, B, Ni, act_sg.element_size());
  at::Tensor xbuf = need_dw ? at::empty({std::min(rows, R) * Ni}, opts) : at::Tensor();
  at::Tensor pbuf = need_dx ? at::empty({std::min(rows, R) * Ni}, opts) : at::Tensor();
  for (int64_t r0 = 0; r0 < R; r0 += rows) {
    const int64_t r1 = std::min(R, r0 + rows), n = r1 - r0;
    const auto hc = h2.narrow(0, r0, n);
    AT_DISPATCH_FLOATING_TYPES(dtype, "lif_fused_backward_cuda_chunk", [&] {
      using T = scalar_t;
      if (need_dw) {
        auto xc = xbuf.narrow(0, 0, n * Ni).view({n, Ni});
        xc.zero_();
        check_launch(cuda::launch_densify<T>(r0, r1, x_rowptr.const_data_ptr<int64_t>(),
                                             x_col.const_data_ptr<int32_t>(),
                                             x_val.defined() ? x_val.const_data_ptr<T>() : nullptr,
                                             xc.mutable_data_ptr<T>(), Ni, stream),
                     op);
        dw.addmm_(hc.t(), xc);  // ∂L/∂W += hᵀ X over the chunk's rows (cuBLAS)
      }
      if (need_dx) {
        auto pc = pbuf.narrow(0, 0, n * Ni).view({n, Ni});
        at::mm_out(pc, hc, w);  // h W of the chunk (cuBLAS), read only on the upstream active set
        check_launch(cuda::launch_gather_active<T>(r0, r1, up_rowptr.const_data_ptr<int64_t>(),
                                                   up_col.const_data_ptr<int32_t>(), pc.const_data_ptr<T>(),
                                                   dx_compact, dx_out.mutable_data_ptr<T>(), Ni, stream),
                     op);
      }
    });
  }
  return {dw, db};
}

}  // namespace
}  // namespace snntorch_sparse

TORCH_LIBRARY_IMPL(snntorch_sparse, CUDA, m) {
  m.impl("dense_to_csr", &snntorch_sparse::dense_to_csr_cuda);
  m.impl("csr_to_flat_", &snntorch_sparse::csr_to_flat_cuda);
  m.impl("lif_fused_forward", &snntorch_sparse::lif_fused_forward_cuda);
  m.impl("lif_fused_backward", &snntorch_sparse::lif_fused_backward_cuda);
}
