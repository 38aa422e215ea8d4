// CUDA implementations of the fused Linear+LIF ops (lif_fused_forward,
// lif_fused_backward, dense_to_csr, csr_to_flat_): the same schemas and
// contracts as the CPU kernels (csrc/cpu/fused_lif.cpp), so one autograd
// function (snntorch_sparse/fused_cpu.py) serves both devices and the
// dispatcher picks the kernels. Kernels in fused_kernels.cuh.
//
// Both directions walk [T, B, N] in time chunks of whole steps, so no dense
// float [T, B, N] temporary exists: forward, the current I = X Wᵀ + b by
// cuBLAS over the chunk's input events densified, the scan with the membrane
// carried from chunk to chunk, and the chunk's rows compacted into the CSR
// lists at once; backward (last chunk first), h on the active set, the
// adjoint scan with its carry, the chunk's ∂L/∂W GEMM and ∂L/∂X on the
// upstream active set (a dot per entry, no dense h W). The chunk length is
// chosen from the sizes (fused_chunk_steps).
//
// Host synchronisation: one small device-to-host copy per forward call (the
// two totals, after the last chunk); the backward has none. GEMMs go through
// ATen (cuBLAS): TF32 follows torch.backends.cuda.matmul.allow_tf32, as for
// nn.Linear.
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>

#include "../ops.h"
#include "fused_kernels.cuh"

namespace snntorch_sparse {
namespace {

constexpr int64_t kChunkFloorBytes = int64_t{8} << 20;  // the chunk budget's floor (chunk_budget_bytes)

// Bytes of all dense chunk buffers of one fused op call together (forward:
// the densified input and the current; backward: the adjoint h and the
// densified input): max(8 MiB, a sixteenth of the layer's dense [T, B, N]
// float tensor). Smaller chunks lower the peak and cost launches. 8 MiB is
// the largest floor for which the CPU emulation of this launcher's memory
// (benchmarks/generic_peak_memory.py --path cuda-layout) keeps a whole SHD
// training step (700-200-200-20, T = 500, B = 256) within 15% of snnTorch's
// peak; the sixteenth keeps wide layers' chunks (hidden 1000: 32 MiB, 16
// chunks instead of 63) from being launch-bound while adding at most that
// sixteenth of one [T, B, N] tensor to the peak. cost_model.py counts the
// launches. SNNTORCH_SPARSE_CUDA_CHUNK_MIB=<MiB> fixes the budget instead
// (read once per process), for tuning on a given GPU.
int64_t chunk_budget_bytes(int64_t dense_bytes) {
  static const int64_t fixed = [] {
    int64_t mib = 0;
    if (const char* env = std::getenv("SNNTORCH_SPARSE_CUDA_CHUNK_MIB")) {
      const long long v = std::atoll(env);
      TORCH_CHECK(v >= 1, "SNNTORCH_SPARSE_CUDA_CHUNK_MIB must be a positive number of MiB, got '", env, "'");
      mib = v;
    }
    return mib << 20;
  }();
  if (fixed > 0) return fixed;
  return std::max<int64_t>(kChunkFloorBytes, dense_bytes / 16);
}

// Fraction of the upstream entries (of all R N_in) from which ∂L/∂X comes from the
// chunk's h W GEMM instead of one dot per active entry.
constexpr double kDxGemmFraction = 0.1;

// Time steps per chunk: T_c = max(1, min(T, budget / (B · width · elem))), width the
// buffers' elements per row together (0: no buffer, one chunk), the budget from the
// layer's N (chunk_budget_bytes).
int64_t fused_chunk_steps(int64_t T, int64_t B, int64_t N, int64_t width, int64_t elem) {
  if (width == 0 || B == 0) return std::max<int64_t>(T, 1);
  const int64_t step = B * width * elem;
  const int64_t budget = chunk_budget_bytes(T * B * N * elem);
  return std::max<int64_t>(1, std::min<int64_t>(std::max<int64_t>(T, 1), budget / step));
}

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
    bool need_active, const std::optional<at::Tensor>& capacity_, const std::optional<at::Tensor>& x_dense_) {
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
  // the output's shape, dtype and device: spk_out, or a [T, B, N] view of beta (no storage)
  const at::Tensor like = has_spk ? *spk_out_ : beta_.expand({T_, B_, beta_.numel()});
  check_scan_args(op, like, beta_, reset_mode);
  check_threshold(op, like, threshold_);
  const int64_t Tn = T_, B = B_, N = beta_.numel(), R = Tn * B;
  const auto dev = like.device();
  const auto fopts = beta_.options();
  const bool has_current = current_.has_value() && current_->defined();
  at::Tensor current, weight, bias, x_rowptr, x_col, x_val, x_dense;
  int64_t Ni = 0;
  if (has_current) {
    TORCH_CHECK(current_->sizes() == like.sizes() && current_->scalar_type() == like.scalar_type() &&
                    current_->device() == dev,
                op, ": current must be [T, B, N] = [", Tn, ", ", B, ", ", N, "] of the output's dtype, got ",
                current_->sizes());
    current = current_->contiguous();
  } else {  // I = X Wᵀ + b by cuBLAS over time chunks: of the dense input's rows, or of its events densified
    const bool has_csr = x_rowptr_.has_value() && x_rowptr_->defined() && x_col_.has_value() && x_col_->defined();
    TORCH_CHECK(weight_.has_value() && weight_->defined() && (has_csr || (x_dense_.has_value() && x_dense_->defined())),
                op, ": without current, weight and the input (its CSR x_rowptr, x_col, or x_dense) are required");
    TORCH_CHECK(weight_->dim() == 2 && weight_->size(0) == N && weight_->scalar_type() == like.scalar_type() &&
                    weight_->device() == dev,
                op, ": weight must be [N, N_in] with N = ", N, " of the output's dtype and device, got ",
                weight_->scalar_type(), " ", weight_->sizes());
    weight = *weight_;
    Ni = weight.size(1);
    if (!has_csr) x_dense = dense_input(op, x_dense_, R, Ni, like.scalar_type(), dev);
  }
  if (x_rowptr_.has_value() && x_rowptr_->defined() && !has_current) {
    x_rowptr = x_rowptr_->contiguous();
    x_col = x_col_->contiguous();
    check_rowptr(op, "x", x_rowptr, x_col, R, dev);
    if (x_val_.has_value() && x_val_->defined()) {
      TORCH_CHECK(x_val_->numel() == x_col.numel() && x_val_->scalar_type() == like.scalar_type(), op,
                  ": x_val must be [nnz] of the output's dtype");
      x_val = x_val_->contiguous();
    }
  }
  if (!has_current && bias_.has_value() && bias_->defined()) {
    TORCH_CHECK(bias_->numel() == N && bias_->scalar_type() == like.scalar_type() && bias_->device() == dev, op,
                ": bias must be [N] of the output's dtype, got ", bias_->sizes());
    bias = bias_->contiguous();
  }
  TORCH_CHECK(N < (int64_t{1} << 31), op, ": N must fit in int32");
  TORCH_CHECK(bth_.dim() == 1 && bth_.numel() == N && bth_.scalar_type() == like.scalar_type() &&
                  bth_.device() == dev,
              op, ": bth must be [N] window half-widths of the output's dtype and device, got ", bth_.scalar_type(),
              " ", bth_.sizes());
  const bool has_mem = mem_out_.has_value() && mem_out_->defined() && mem_out_->numel() > 0;
  if (has_mem)
    TORCH_CHECK(mem_out_->sizes() == like.sizes() && mem_out_->is_contiguous() &&
                    mem_out_->scalar_type() == like.scalar_type() && mem_out_->device() == dev,
                op, ": mem_out must be contiguous [T, B, N] of the output's dtype, got ", mem_out_->sizes());
  const bool sets = need_spike_csr || need_active;
  TORCH_CHECK(has_spk || sets, op, ": nothing to compute (no spk_out and no set asked for)");
  const auto [hint_act, hint_spk] = capacity_hint(op, capacity_);
  const c10::cuda::CUDAGuard guard(dev);
  const auto beta = beta_.contiguous();
  const auto thr = threshold_.contiguous();
  const auto win = bth_.contiguous();
  const auto stream = c10::cuda::getCurrentCUDAStream().stream();
  const auto lopt = fopts.dtype(at::kLong);
  const auto iopt = fopts.dtype(at::kInt);

  // Time chunks of whole steps; per chunk the dense buffers are the densified input
  // [rows, N_in] and the current [rows, N] (U - θ is written over it), or, with a given
  // current and no spk_out, a [rows, N] copy target for U - θ. The chunk length:
  // T_c = max(1, min(T, budget / (B · width · elem))) (fused_chunk_steps).
  const int64_t elem = static_cast<int64_t>(like.element_size());
  const int64_t width = has_current ? (has_spk ? 0 : N) : (x_dense.defined() ? 0 : Ni) + N;
  const int64_t Tc = fused_chunk_steps(Tn, B, N, width, elem);
  const int64_t rows_max = std::min(Tc, std::max<int64_t>(Tn, 1)) * B;
  at::Tensor xbuf, cbuf;
  if (!has_current && !x_dense.defined()) xbuf = at::empty({rows_max, Ni}, fopts);
  if (!has_current || !has_spk) cbuf = at::empty({rows_max, N}, fopts);
  at::Tensor cnt = sets ? at::empty({2, rows_max}, lopt) : at::Tensor();
  const auto wt = has_current ? at::Tensor() : weight.t();

  // One pass over the chunks; the column lists hold cap_act / cap_spk entries (fewer than the
  // totals: the entries past them are dropped and a second pass follows, see below).
  at::Tensor act_rowptr = at::empty({0}, lopt), act_col = at::empty({0}, iopt), act_shift = at::empty({0}, fopts);
  at::Tensor spk_rowptr = at::empty({0}, lopt), spk_col = at::empty({0}, iopt);
  auto run = [&](int64_t cap_act, int64_t cap_spk) {
    auto carry = at::zeros({B * N}, fopts);
    if (need_active) {
      act_rowptr = at::empty({R + 1}, lopt);
      act_rowptr.narrow(0, 0, 1).zero_();
      act_col = at::empty({cap_act}, iopt);
      act_shift = at::empty({cap_act}, fopts);
    }
    if (need_spike_csr) {
      spk_rowptr = at::empty({R + 1}, lopt);
      spk_rowptr.narrow(0, 0, 1).zero_();
      spk_col = at::empty({cap_spk}, iopt);
    }
    AT_DISPATCH_FLOATING_TYPES(like.scalar_type(), "lif_fused_forward_cuda", [&] {
      using T = scalar_t;
      T* spk_base = has_spk ? spk_out_->mutable_data_ptr<T>() : nullptr;
      T* mem_base = has_mem ? mem_out_->mutable_data_ptr<T>() : nullptr;
      for (int64_t t0 = 0; t0 < Tn; t0 += Tc) {
        const int64_t t1 = std::min(Tn, t0 + Tc), r0 = t0 * B, n = (t1 - t0) * B;
        const T* cur;
        if (has_current) {
          cur = current.const_data_ptr<T>() + r0 * N;
        } else {
          auto cc = cbuf.narrow(0, 0, n);
          at::Tensor xc;
          if (x_dense.defined()) {
            xc = x_dense.narrow(0, r0, n);  // the input's own rows
          } else {
            xc = xbuf.narrow(0, 0, n);
            check_launch(cuda::launch_densify<T>(r0, r0 + n, x_rowptr.const_data_ptr<int64_t>(),
                                                 x_col.const_data_ptr<int32_t>(),
                                                 x_val.defined() ? x_val.const_data_ptr<T>() : nullptr,
                                                 xc.mutable_data_ptr<T>(), Ni, stream),
                         op);
          }
          if (bias.defined()) at::addmm_out(cc, bias, xc, wt);
          else at::mm_out(cc, xc, wt);
          cur = cc.const_data_ptr<T>();
        }
        // U - θ (or the spikes themselves when no set is wanted): into spk_out's rows, else
        // over the chunk's buffer (in place over the current when it was computed here)
        T* out = has_spk ? spk_base + r0 * N : cbuf.mutable_data_ptr<T>();
        check_launch(cuda::launch_lif_fused_scan<T>(cur, beta.const_data_ptr<T>(), thr.const_data_ptr<T>(), out,
                                                    mem_base != nullptr ? mem_base + r0 * N : nullptr, !sets,
                                                    t1 - t0, B * N, N, static_cast<int>(reset_mode), stream,
                                                    carry.mutable_data_ptr<T>()),
                     op);
        if (!sets) continue;
        int64_t* act_cnt = cnt.mutable_data_ptr<int64_t>();
        int64_t* spk_cnt = act_cnt + rows_max;
        check_launch(cuda::launch_count_shift<T>(out, win.const_data_ptr<T>(), n, N, act_cnt, spk_cnt, stream), op);
        int64_t* act_rp = need_active ? act_rowptr.mutable_data_ptr<int64_t>() + r0 : nullptr;
        int64_t* spk_rp = need_spike_csr ? spk_rowptr.mutable_data_ptr<int64_t>() + r0 : nullptr;
        check_launch(cuda::launch_chunk_rowptr(n, act_cnt, act_rp, spk_cnt, spk_rp, stream), op);
        check_launch(cuda::launch_compact_shift<T>(out, win.const_data_ptr<T>(), n, N, act_rp,
                                                   need_active ? act_col.mutable_data_ptr<int32_t>() : nullptr,
                                                   need_active ? act_shift.mutable_data_ptr<T>() : nullptr, spk_rp,
                                                   need_spike_csr ? spk_col.mutable_data_ptr<int32_t>() : nullptr,
                                                   cap_act, cap_spk, stream),
                     op);
      }
    });
  };

  if (!sets) {
    run(0, 0);
    return {spk_rowptr, spk_col, act_rowptr, act_col, act_shift};
  }
  // The lists are sized before their totals exist (they are known only after the last chunk):
  // from the caller's hint (the layer's previous call), else a guess; the one host
  // synchronisation reads the totals, and when they exceed the sizes the pass runs again
  // with the exact totals (the counts do not depend on the sizes).
  const int64_t guess = std::max<int64_t>(1024, R * N / 8);
  const int64_t cap_act = need_active ? (hint_act >= 0 ? hint_act : guess) : 0;
  const int64_t cap_spk = need_spike_csr ? (hint_spk >= 0 ? hint_spk : guess / 2) : 0;
  run(cap_act, cap_spk);
  const auto zero = at::zeros({1}, lopt);
  const auto totals = at::cat({need_active ? act_rowptr.narrow(0, R, 1) : zero,
                               need_spike_csr ? spk_rowptr.narrow(0, R, 1) : zero})
                          .cpu();  // the one host synchronisation
  const int64_t n_act = totals.const_data_ptr<int64_t>()[0], n_spk = totals.const_data_ptr<int64_t>()[1];
  if (n_act > cap_act || n_spk > cap_spk) run(n_act, n_spk);
  if (need_active) {
    act_col = act_col.narrow(0, 0, n_act);
    act_shift = act_shift.narrow(0, 0, n_act);
  }
  if (need_spike_csr) spk_col = spk_col.narrow(0, 0, n_spk);
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
    bool need_db, bool d_spk_compact, bool dx_compact, const std::optional<at::Tensor>& x_dense_) {
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

  // Per time chunk of whole steps, the last first: h = ∂L/∂U (or 0) + ∂L/∂S σ' on the active
  // set, the adjoint scan in place with the carry from the later chunk (and Σ_t h for ∂L/∂b),
  // then ∂L/∂W += hᵀ X (cuBLAS) and ∂L/∂X on the upstream active set (one dot per entry).
  // h lives one chunk at a time unless the caller asks for all of it (h_out).
  const bool keep_h = h_out_.has_value() && h_out_->defined();
  if (keep_h)
    TORCH_CHECK(h_out_->numel() == R * N && h_out_->is_contiguous() && h_out_->scalar_type() == dtype &&
                    h_out_->device() == dev,
                op, ": h_out must be contiguous with T*B*N elements of dtype ", dtype);
  const bool has_mem = d_mem_.has_value() && d_mem_->defined() && d_mem_->numel() > 0;
  at::Tensor d_mem;
  if (has_mem) {
    TORCH_CHECK(d_mem_->numel() == R * N && d_mem_->scalar_type() == dtype && d_mem_->device() == dev, op,
                ": d_mem must have T*B*N = ", R * N, " elements of dtype ", dtype, " on ", dev);
    d_mem = d_mem_->reshape({R, N}).contiguous();
  }
  const bool has_spk_grad = d_spk_.has_value() && d_spk_->defined() && act_col.numel() > 0;
  at::Tensor d_spk;
  if (has_spk_grad) {
    d_spk = d_spk_->contiguous();
    TORCH_CHECK(d_spk.scalar_type() == dtype && d_spk.numel() == (d_spk_compact ? act_col.numel() : R * N) &&
                    d_spk.device() == dev,
                op, ": d_spk must have ", d_spk_compact ? act_col.numel() : R * N, " elements of dtype ", dtype);
  }
  at::Tensor spk;
  if (reset_mode == 1) {
    TORCH_CHECK(spk_.has_value() && spk_->defined() && spk_->numel() == R * N, op,
                ": spk [T, B, N] is required for reset_mode 1");
    spk = spikes_as_bool(*spk_);
  }
  at::Tensor dw = at::empty({0}, opts), db = at::empty({0}, opts);
  const auto beta = beta_.contiguous();
  const bool need_dx = up_rowptr_.has_value() && up_rowptr_->defined();
  TORCH_CHECK(!(need_dw || need_dx) ||
                  (weight_.has_value() && weight_->defined() && weight_->dim() == 2 && weight_->size(0) == N &&
                   weight_->size(1) == Ni && weight_->scalar_type() == dtype && weight_->device() == dev),
              op, ": weight must be [", N, ", ", Ni, "] of dtype ", dtype, " on ", dev);
  at::Tensor x_rowptr, x_col, x_val, x_dense, up_rowptr, up_col, dx_out;
  const bool has_csr = x_rowptr_.has_value() && x_col_.has_value() && x_rowptr_->defined() && x_col_->defined();
  if (need_dw && !has_csr) {  // the dense input's own rows feed the ∂L/∂W GEMMs
    TORCH_CHECK(x_dense_.has_value() && x_dense_->defined(), op, ": need_dw requires the input (its CSR or x_dense)");
    x_dense = dense_input(op, x_dense_, R, Ni, dtype, dev);
    dw = at::zeros({N, Ni}, opts);
  } else if (need_dw) {
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
  // ∂L/∂X: one dot of N per upstream active entry while they are few; from a tenth of all
  // entries on, the chunk's h W GEMM (cuBLAS) read at the entries is cheaper (Wᵀ rows come
  // from L2 at about twice HBM's bandwidth: a dot per entry moves ~4N bytes where the GEMM
  // spends 2N FLOPs per entry of all R N_in; cost_model.py)
  const bool dx_by_gemm = need_dx && static_cast<double>(up_col.numel()) > kDxGemmFraction * R * Ni;
  // T_c from the buffers of one chunk: h [rows, N] (unless h_out holds it), the densified
  // input [rows, N_in] for ∂L/∂W and h W [rows, N_in] when ∂L/∂X comes from the GEMM
  const int64_t width = (keep_h ? 0 : N) + (need_dw && !x_dense.defined() ? Ni : 0) + (dx_by_gemm ? Ni : 0);
  const int64_t Tc = fused_chunk_steps(T_, B, N, width, act_sg.element_size());
  const int64_t rows_max = std::min(Tc, std::max<int64_t>(T_, 1)) * B;
  const at::Tensor hbuf = keep_h ? at::Tensor() : at::empty({rows_max, N}, opts);
  const at::Tensor xbuf = need_dw && !x_dense.defined() ? at::empty({rows_max, Ni}, opts) : at::Tensor();
  const at::Tensor wt = need_dx && !dx_by_gemm ? weight_->t().contiguous() : at::Tensor();  // Wᵀ [N_in, N]
  const at::Tensor pbuf = dx_by_gemm ? at::empty({rows_max, Ni}, opts) : at::Tensor();
  const at::Tensor hsum = need_db ? at::zeros({B * N}, opts) : at::Tensor();
  const at::Tensor carry = at::zeros({B * N}, opts);
  const int64_t n_chunks = T_ > 0 ? (T_ + Tc - 1) / Tc : 0;
  AT_DISPATCH_FLOATING_TYPES(dtype, "lif_fused_backward_cuda", [&] {
    using T = scalar_t;
    for (int64_t k = n_chunks - 1; k >= 0; --k) {
      const int64_t t0 = k * Tc, t1 = std::min(T_, t0 + Tc), r0 = t0 * B, r1 = t1 * B, n = r1 - r0;
      const auto hc = keep_h ? h_out_->view({R, N}).narrow(0, r0, n) : hbuf.narrow(0, 0, n);
      T* hp = hc.mutable_data_ptr<T>();
      check_launch(cuda::launch_scatter_active<T>(r0, r1, act_rowptr.const_data_ptr<int64_t>(),
                                                  act_col.const_data_ptr<int32_t>(), act_sg.const_data_ptr<T>(),
                                                  has_spk_grad ? d_spk.const_data_ptr<T>() : nullptr, d_spk_compact,
                                                  has_mem ? d_mem.const_data_ptr<T>() : nullptr, hp, N, stream),
                   op);
      const uint8_t* sb =
          reset_mode == 1 ? reinterpret_cast<const uint8_t*>(spk.const_data_ptr<bool>()) + r0 * N : nullptr;
      check_launch(cuda::launch_lif_fused_backward_scan<T>(hp, beta.const_data_ptr<T>(), sb,
                                                           need_db ? hsum.mutable_data_ptr<T>() : nullptr, t1 - t0,
                                                           B * N, N, static_cast<int>(reset_mode), stream,
                                                           carry.mutable_data_ptr<T>(), /*hsum_add=*/true),
                   op);
      if (need_dw) {
        at::Tensor xc;
        if (x_dense.defined()) {
          xc = x_dense.narrow(0, r0, n);
        } else {
          xc = xbuf.narrow(0, 0, n);
          check_launch(cuda::launch_densify<T>(r0, r1, x_rowptr.const_data_ptr<int64_t>(),
                                               x_col.const_data_ptr<int32_t>(),
                                               x_val.defined() ? x_val.const_data_ptr<T>() : nullptr,
                                               xc.mutable_data_ptr<T>(), Ni, stream),
                       op);
        }
        dw.addmm_(hc.t(), xc);  // ∂L/∂W += hᵀ X over the chunk's rows (cuBLAS)
      }
      if (need_dx && !dx_by_gemm) {  // ∂L/∂X only on the upstream active set: Σ_n h[r, n] W[n, j] per entry
        check_launch(cuda::launch_dx_active<T>(r0, r1, up_rowptr.const_data_ptr<int64_t>(),
                                               up_col.const_data_ptr<int32_t>(), hc.const_data_ptr<T>(),
                                               wt.const_data_ptr<T>(), N, dx_compact, dx_out.mutable_data_ptr<T>(),
                                               Ni, stream),
                     op);
      } else if (need_dx) {
        auto pc = pbuf.narrow(0, 0, n);
        at::mm_out(pc, hc, *weight_);  // h W of the chunk (cuBLAS), read only on the upstream active set
        check_launch(cuda::launch_gather_active<T>(r0, r1, up_rowptr.const_data_ptr<int64_t>(),
                                                   up_col.const_data_ptr<int32_t>(), pc.const_data_ptr<T>(),
                                                   dx_compact, dx_out.mutable_data_ptr<T>(), Ni, stream),
                     op);
      }
    }
  });
  if (need_db) db = hsum.view({B, N}).sum(0);  // Σ over the batch of the scan's Σ over time
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
