// CUDA implementations of the recurrent/alpha neuron backward ops, behind the
// schemas that csrc/cpu/recurrent.cpp (rleaky_backward), csrc/cpu/rsynaptic.cpp
// (rsynaptic_backward) and csrc/cpu/alpha.cpp (alpha_backward) define: the
// dispatcher picks this file's kernels for CUDA tensors, the CPU ones otherwise.
//
// Each launches the torch-free body the CPU op shares (or, for RLeaky, whose
// arithmetic the CPU kernel reproduces bit for bit):
//   rleaky_backward    cuda::launch_rleaky_backward    one batch row per thread, 128 per block
//   rsynaptic_backward cuda::launch_rsynaptic_backward one batch row per thread, 128 per block
//   alpha_backward     cuda::launch_alpha_backward     one (row, neuron) column per thread, 256 per block
// (rows / columns are independent; thread r of block b runs row b*blockDim + r from
// T-1 down to 0, exactly the loop of the row/column function).
// tests/test_cuda_{rleaky,rsynaptic,alpha}_emulated.py replay that layout on the host.
//
// rleaky_backward's CPU op also sums dV, Σa and dW_in inside its row loop; here
// those come after the row kernel from a (which is then always materialised):
// dV and dW_in by the sparse_weight_grad op over the spike / input events (the
// same sums as the CPU op, in another order: equal to rounding, not bit-identical),
// Σa by at::sum. a and g are the body's, bit-identical to the CPU op.
//
// Status: compiled (tests/test_cuda_compile.py) and emulated on the host; not yet
// run on a GPU.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <string>
#include <vector>

#include "alpha_backward.cuh"
#include "rleaky_backward.cuh"
#include "rsynaptic_backward.cuh"

namespace snntorch_sparse {
namespace {

void check_launch(const char* op) {
  const cudaError_t err = cudaGetLastError();
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
}

void check_device(const char* op, const at::Tensor& like, const at::Tensor& x, const char* name) {
  TORCH_CHECK(x.device() == like.device(), op, ": ", name, " is on ", x.device(), ", expected ", like.device());
}

// Flat int64 indices row*n_cols + col of a CSR set (csr_to_flat_cuda's expression, no host sync).
at::Tensor csr_flat(const at::Tensor& rowptr, const at::Tensor& col, int64_t n_cols) {
  if (col.numel() == 0) return at::empty({0}, rowptr.options());
  const auto k = at::arange(col.numel(), rowptr.options());
  const auto rows = at::searchsorted(rowptr, k, /*out_int32=*/false, /*right=*/true).sub_(1);
  return rows.mul_(n_cols).add_(col.to(at::kLong));
}

// The CSR sets an op was given are well formed: host-side checks at once, the
// value checks (row pointers span the columns and never decrease, columns in
// range) as device flags read back together by verify() -- one host sync per
// op call, not two per set.
class CsrChecks {
 public:
  explicit CsrChecks(const char* op) : op_(op) {}

  void add(const char* what, const at::Tensor& rowptr, const at::Tensor& col, int64_t rows, int64_t ncols,
           at::ScalarType col_type) {
    TORCH_CHECK(rowptr.scalar_type() == at::kLong && col.scalar_type() == col_type, op_, ": ", what,
                "_rowptr must be int64 and ", what, "_col ", col_type == at::kInt ? "int32" : "int64");
    TORCH_CHECK(rowptr.numel() == rows + 1, op_, ": ", what, "_rowptr must have T*R+1 entries, got ",
                rowptr.numel());
    TORCH_CHECK(rowptr.device() == col.device(), op_, ": ", what, "_rowptr and ", what,
                "_col are on different devices");
    auto ok = rowptr.select(0, 0).eq(0).logical_and(rowptr.select(0, rows).eq(col.numel()));
    if (rows > 0) ok = ok.logical_and(rowptr.diff().ge(0).all());
    flags_.push_back(ok);
    messages_.push_back(std::string(what) + "_rowptr does not span " + what + "_col or decreases");
    if (col.numel() > 0) {
      flags_.push_back(col.ge(0).logical_and(col.lt(ncols)).all());
      messages_.push_back(std::string(what) + "_col out of range");
    }
  }

  void verify() const {  // the one host synchronisation
    if (flags_.empty()) return;
    const auto all = at::stack(flags_).cpu();
    const bool* ok = all.const_data_ptr<bool>();
    for (size_t i = 0; i < flags_.size(); ++i) TORCH_CHECK(ok[i], op_, ": ", messages_[i]);
  }

 private:
  const char* op_;
  std::vector<at::Tensor> flags_;
  std::vector<std::string> messages_;
};

at::Tensor sparse_weight_grad(const at::Tensor& h, const at::Tensor& x_index, const std::optional<at::Tensor>& vals,
                              int64_t in_features) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("snntorch_sparse::sparse_weight_grad", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                         int64_t)>();
  return op.call(h, x_index, vals, in_features);
}

// ------------------------------------------------------------- rleaky_backward

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rleaky_backward_cuda(
    const at::Tensor& act_rowptr, const at::Tensor& act_col, const at::Tensor& act_sg,
    const std::optional<at::Tensor>& d_spk, const std::optional<at::Tensor>& d_mem, const at::Tensor& beta,
    const std::optional<at::Tensor>& wt, const std::optional<at::Tensor>& v,
    const std::optional<at::Tensor>& spk_rowptr, const std::optional<at::Tensor>& spk_col,
    const std::optional<at::Tensor>& keep0, int64_t reset_mode, int64_t Tn, int64_t R, int64_t N,
    bool d_spk_compact, bool need_a, bool need_g, bool need_dv, bool need_db,
    const std::optional<at::Tensor>& x_rowptr, const std::optional<at::Tensor>& x_col,
    const std::optional<at::Tensor>& x_val, int64_t n_in) {
  const char* op = "rleaky_backward";
  TORCH_CHECK(act_sg.is_cuda(), op, ": act_sg must be a CUDA tensor");
  TORCH_CHECK(act_col.numel() == act_sg.numel(), op, ": act_col and act_sg differ in length");
  TORCH_CHECK(beta.numel() == N, op, ": beta must have N entries");
  TORCH_CHECK(wt.has_value() != v.has_value(), op, ": give exactly one of wt (all_to_all) and v");
  TORCH_CHECK(reset_mode >= 0 && reset_mode <= 2, op, ": reset_mode must be 0, 1 or 2");
  TORCH_CHECK(Tn >= 0 && R >= 0 && N >= 0, op, ": T, R and N must be >= 0");
  const bool has_spk = spk_rowptr.has_value() && spk_rowptr->defined();
  TORCH_CHECK(has_spk == (spk_col.has_value() && spk_col->defined()), op, ": give spk_rowptr and spk_col");
  TORCH_CHECK(reset_mode != 1 || has_spk, op, ": reset to zero needs the spikes");
  TORCH_CHECK(!need_dv || (wt.has_value() && has_spk), op, ": need_dv needs wt and the spikes");
  const c10::cuda::CUDAGuard guard(act_sg.device());
  const auto dtype = act_sg.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op, ": act_sg must be float32 or float64");
  const int64_t K = act_sg.numel();
  auto contig = [&](const std::optional<at::Tensor>& x, int64_t numel, const char* name) -> at::Tensor {
    if (!x.has_value() || !x->defined()) return at::Tensor();
    TORCH_CHECK(x->numel() == numel, op, ": ", name, " has ", x->numel(), " entries, expected ", numel);
    check_device(op, act_sg, *x, name);
    return x->contiguous();
  };
  at::Tensor ds = contig(d_spk, d_spk_compact ? K : Tn * R * N, "d_spk"), dm = contig(d_mem, Tn * R * N, "d_mem");
  at::Tensor w = contig(wt, N * N, "wt"), vv = contig(v, N, "v");
  at::Tensor k0 = contig(keep0, R * N, "keep0");
  for (const at::Tensor* x : {&ds, &dm, &w, &vv, &k0})
    TORCH_CHECK(!x->defined() || x->scalar_type() == dtype, op, ": dtypes must agree");
  check_device(op, act_sg, act_rowptr, "act_rowptr");
  check_device(op, act_sg, act_col, "act_col");
  check_device(op, act_sg, beta, "beta");
  TORCH_CHECK(beta.scalar_type() == dtype, op, ": dtypes must agree");
  at::Tensor rp = act_rowptr.contiguous(), sgc = act_sg.contiguous(), b = beta.contiguous();
  CsrChecks checks(op);
  checks.add("act", rp, act_col, Tn * R, N, at::kInt);
  at::Tensor sr, sc;
  if (has_spk) {
    check_device(op, act_sg, *spk_rowptr, "spk_rowptr");
    sr = spk_rowptr->contiguous();
    sc = spk_col->contiguous();
    checks.add("spk", sr, sc, Tn * R, N, at::kInt);
  }
  at::Tensor xr, xc, xv;
  const bool need_dw = x_rowptr.has_value() && x_rowptr->defined();
  if (need_dw) {
    TORCH_CHECK(x_col.has_value() && x_col->defined() && n_in >= 0, op, ": x_rowptr needs x_col, n_in");
    check_device(op, act_sg, *x_rowptr, "x_rowptr");
    xr = x_rowptr->contiguous();
    xc = x_col->contiguous();
    checks.add("x", xr, xc, Tn * R, n_in, at::kInt);
    if (x_val.has_value() && x_val->defined()) {
      TORCH_CHECK(x_val->numel() == xc.numel() && x_val->scalar_type() == dtype, op,
                  ": x_val must be [nnz] of the gradient's dtype");
      check_device(op, act_sg, *x_val, "x_val");
      xv = x_val->contiguous();
    }
  }
  checks.verify();
  at::Tensor cl = act_col.to(at::kLong).contiguous();  // the body indexes with int64
  auto opts = act_sg.options();
  at::Tensor dv = need_dv ? at::empty({N, N}, opts) : at::empty({0}, opts);
  at::Tensor db = need_db ? at::empty({N}, opts) : at::empty({0}, opts);
  at::Tensor dw = need_dw ? at::empty({N, n_in}, opts) : at::empty({0}, opts);
  if (Tn == 0 || R == 0 || N == 0) {
    dv.zero_(), db.zero_(), dw.zero_();
    return {need_a ? at::empty({Tn, R, N}, opts) : at::empty({0}, opts),
            need_g ? at::empty({K}, opts) : at::empty({0}, opts), dv, db, at::zeros({R, N}, opts), dw};
  }
  // The body reads the previous step's spikes as a dense bool [T, R, N] (reset to zero only).
  at::Tensor spk_dense;
  if (reset_mode == 1) {
    spk_dense = at::zeros({Tn * R * N}, opts.dtype(at::kBool));
    if (sc.numel() > 0) spk_dense.index_fill_(0, csr_flat(sr, sc, N), true);
  }
  at::Tensor a = at::empty({Tn, R, N}, opts);  // always: dV, Σa, dW_in and a[0] are read from it
  at::Tensor g = at::empty({K}, opts);
  at::Tensor scratch = at::empty({R * 2 * N}, opts);
  const auto stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(dtype, "rleaky_backward_cuda", [&] {
    cuda::launch_rleaky_backward<scalar_t>(
        rp.const_data_ptr<int64_t>(), cl.const_data_ptr<int64_t>(), sgc.const_data_ptr<scalar_t>(),
        ds.defined() ? ds.const_data_ptr<scalar_t>() : nullptr, d_spk_compact,
        dm.defined() ? dm.const_data_ptr<scalar_t>() : nullptr, b.const_data_ptr<scalar_t>(),
        w.defined() ? w.const_data_ptr<scalar_t>() : nullptr, vv.defined() ? vv.const_data_ptr<scalar_t>() : nullptr,
        spk_dense.defined() ? spk_dense.const_data_ptr<bool>() : nullptr,
        k0.defined() ? k0.const_data_ptr<scalar_t>() : nullptr, static_cast<int>(reset_mode), Tn, R, N,
        a.mutable_data_ptr<scalar_t>(), g.mutable_data_ptr<scalar_t>(), scratch.mutable_data_ptr<scalar_t>(),
        stream);
  });
  check_launch(op);
  const at::Tensor a2 = a.view({Tn * R, N});
  if (need_dv) {
    // dV = Σ_t a[t]ᵀ S[t-1]: spike event (row, j) of S[t-1] pairs with a's row + R; the events of
    // the last step pair with a zero row (no host sync to count them).
    at::Tensor h = at::zeros({Tn * R, N}, opts);
    if (Tn > 1) h.narrow(0, 0, (Tn - 1) * R).copy_(a2.narrow(0, R, (Tn - 1) * R));
    dv.copy_(sparse_weight_grad(h, csr_flat(sr, sc, N), std::nullopt, N));
  }
  if (need_db) db.copy_(a2.sum(0));
  if (need_dw) {
    dw.copy_(sparse_weight_grad(a2, csr_flat(xr, xc, n_in),
                                xv.defined() ? std::optional<at::Tensor>(xv) : std::optional<at::Tensor>(), n_in));
  }
  at::Tensor a0 = a.select(0, 0).clone();
  return {need_a ? a : at::empty({0}, opts), need_g ? g : at::empty({0}, opts), dv, db, a0, dw};
}

// ---------------------------------------------------------- rsynaptic_backward

std::tuple<at::Tensor, at::Tensor, at::Tensor> rsynaptic_backward_cuda(
    const at::Tensor& act_rowptr, const at::Tensor& act_col, const at::Tensor& act_sg,
    const std::optional<at::Tensor>& d_spk, const std::optional<at::Tensor>& d_syn,
    const std::optional<at::Tensor>& d_mem, const at::Tensor& alpha, const at::Tensor& beta,
    const std::optional<at::Tensor>& wt, const std::optional<at::Tensor>& v, const std::optional<at::Tensor>& spk,
    const std::optional<at::Tensor>& keep0, int64_t reset_mode, int64_t Tn, int64_t R, int64_t N, bool need_a) {
  const char* op = "rsynaptic_backward";
  TORCH_CHECK(act_sg.is_cuda(), op, ": act_sg must be a CUDA tensor");
  TORCH_CHECK(act_col.numel() == act_sg.numel(), op, ": act_col and act_sg differ in length");
  TORCH_CHECK(alpha.numel() == N && beta.numel() == N, op, ": alpha and beta must have N entries");
  TORCH_CHECK(wt.has_value() != v.has_value(), op, ": give exactly one of wt (all_to_all) and v");
  TORCH_CHECK(reset_mode >= 0 && reset_mode <= 2, op, ": reset_mode must be 0, 1 or 2");
  TORCH_CHECK(reset_mode != 1 || (spk.has_value() && spk->defined()), op, ": reset to zero needs the spikes");
  TORCH_CHECK(Tn >= 0 && R >= 0 && N >= 0, op, ": T, R and N must be >= 0");
  const c10::cuda::CUDAGuard guard(act_sg.device());
  const auto dtype = act_sg.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op, ": act_sg must be float32 or float64");
  auto contig = [&](const std::optional<at::Tensor>& x, int64_t numel, const char* name) -> at::Tensor {
    if (!x.has_value() || !x->defined()) return at::Tensor();
    TORCH_CHECK(x->numel() == numel, op, ": ", name, " has ", x->numel(), " entries, expected ", numel);
    check_device(op, act_sg, *x, name);
    return x->contiguous();
  };
  const int64_t total = Tn * R * N;
  at::Tensor ds = contig(d_spk, total, "d_spk"), dy = contig(d_syn, total, "d_syn"), dm = contig(d_mem, total, "d_mem");
  at::Tensor w = contig(wt, N * N, "wt"), vv = contig(v, N, "v"), s = contig(spk, total, "spk");
  at::Tensor k0 = contig(keep0, R * N, "keep0");
  check_device(op, act_sg, alpha, "alpha");
  check_device(op, act_sg, beta, "beta");
  check_device(op, act_sg, act_rowptr, "act_rowptr");
  at::Tensor al = alpha.contiguous(), b = beta.contiguous();
  for (const at::Tensor* x : {&ds, &dy, &dm, &w, &vv, &k0, &al, &b})
    TORCH_CHECK(!x->defined() || x->scalar_type() == dtype, op, ": dtypes must agree");
  TORCH_CHECK(!s.defined() || s.scalar_type() == at::kBool, op, ": spk must be bool");
  at::Tensor rp = act_rowptr.contiguous(), cl = act_col.contiguous(), sgc = act_sg.contiguous();
  CsrChecks checks(op);
  checks.add("act", rp, cl, Tn * R, N, at::kLong);
  checks.verify();
  at::Tensor a = need_a ? at::empty({Tn, R, N}, act_sg.options()) : at::empty({0}, act_sg.options());
  at::Tensor c = at::empty({Tn, R, N}, act_sg.options());
  at::Tensor g = at::empty({act_sg.numel()}, act_sg.options());
  if (total == 0) return {a, c, g};
  at::Tensor scratch = at::empty({R * 3 * N}, act_sg.options());
  const auto stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(dtype, "rsynaptic_backward_cuda", [&] {
    cuda::launch_rsynaptic_backward<scalar_t>(
        rp.const_data_ptr<int64_t>(), cl.const_data_ptr<int64_t>(), sgc.const_data_ptr<scalar_t>(),
        ds.defined() ? ds.const_data_ptr<scalar_t>() : nullptr, dy.defined() ? dy.const_data_ptr<scalar_t>() : nullptr,
        dm.defined() ? dm.const_data_ptr<scalar_t>() : nullptr, al.const_data_ptr<scalar_t>(),
        b.const_data_ptr<scalar_t>(), w.defined() ? w.const_data_ptr<scalar_t>() : nullptr,
        vv.defined() ? vv.const_data_ptr<scalar_t>() : nullptr, s.defined() ? s.const_data_ptr<bool>() : nullptr,
        k0.defined() ? k0.const_data_ptr<scalar_t>() : nullptr, static_cast<int>(reset_mode), Tn, R, N,
        need_a ? a.mutable_data_ptr<scalar_t>() : nullptr, c.mutable_data_ptr<scalar_t>(),
        g.mutable_data_ptr<scalar_t>(), scratch.mutable_data_ptr<scalar_t>(), stream);
  });
  check_launch(op);
  return {a, c, g};
}

// -------------------------------------------------------------- alpha_backward

std::tuple<at::Tensor, at::Tensor> alpha_backward_cuda(const at::Tensor& gu, const std::optional<at::Tensor>& d_e,
                                                       const std::optional<at::Tensor>& d_h, const at::Tensor& alpha,
                                                       const at::Tensor& beta, const at::Tensor& tau,
                                                       const at::Tensor& spk, const std::optional<at::Tensor>& r0,
                                                       int64_t reset_mode, int64_t Tn, int64_t R, int64_t N) {
  const char* op = "alpha_backward";
  TORCH_CHECK(gu.is_cuda(), op, ": gu must be a CUDA tensor");
  TORCH_CHECK(Tn >= 0 && R >= 0 && N >= 0, op, ": T, R and N must be >= 0");
  const int64_t total = Tn * R * N;
  TORCH_CHECK(gu.numel() == total, op, ": gu must have T*R*N entries");
  TORCH_CHECK(spk.numel() == total && spk.scalar_type() == at::kBool, op,
              ": spk must be a bool tensor of T*R*N entries");
  TORCH_CHECK(alpha.numel() == N && beta.numel() == N && tau.numel() == N, op,
              ": alpha, beta and tau must have N entries");
  TORCH_CHECK(reset_mode >= 0 && reset_mode <= 2, op, ": reset_mode must be 0, 1 or 2");
  const c10::cuda::CUDAGuard guard(gu.device());
  const auto dtype = gu.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op, ": gu must be float32 or float64");
  auto opt = [&](const std::optional<at::Tensor>& x, int64_t numel, const char* name) -> at::Tensor {
    if (!x.has_value() || !x->defined()) return at::Tensor();
    TORCH_CHECK(x->numel() == numel, op, ": ", name, " has ", x->numel(), " entries, expected ", numel);
    check_device(op, gu, *x, name);
    return x->contiguous();
  };
  at::Tensor de = opt(d_e, total, "d_e"), dh = opt(d_h, total, "d_h"), rr = opt(r0, R * N, "r0");
  check_device(op, gu, alpha, "alpha");
  check_device(op, gu, beta, "beta");
  check_device(op, gu, tau, "tau");
  check_device(op, gu, spk, "spk");
  at::Tensor g = gu.contiguous(), a = alpha.contiguous(), b = beta.contiguous(), ta = tau.contiguous();
  at::Tensor s = spk.contiguous();
  for (const at::Tensor* x : {&de, &dh, &rr, &a, &b, &ta})
    TORCH_CHECK(!x->defined() || x->scalar_type() == dtype, op, ": dtypes must agree");
  at::Tensor ue = at::empty({Tn, R, N}, gu.options()), uh = at::empty({Tn, R, N}, gu.options());
  if (total == 0) return {ue, uh};
  const auto stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(dtype, "alpha_backward_cuda", [&] {
    cuda::launch_alpha_backward<scalar_t>(
        g.const_data_ptr<scalar_t>(), de.defined() ? de.const_data_ptr<scalar_t>() : nullptr,
        dh.defined() ? dh.const_data_ptr<scalar_t>() : nullptr, a.const_data_ptr<scalar_t>(),
        b.const_data_ptr<scalar_t>(), ta.const_data_ptr<scalar_t>(), s.const_data_ptr<bool>(),
        rr.defined() ? rr.const_data_ptr<scalar_t>() : nullptr, static_cast<int>(reset_mode), Tn, R * N, N,
        ue.mutable_data_ptr<scalar_t>(), uh.mutable_data_ptr<scalar_t>(), stream);
  });
  check_launch(op);
  return {ue, uh};
}

}  // namespace
}  // namespace snntorch_sparse

TORCH_LIBRARY_IMPL(snntorch_sparse, CUDA, m) {
  m.impl("rleaky_backward", &snntorch_sparse::rleaky_backward_cuda);
  m.impl("rsynaptic_backward", &snntorch_sparse::rsynaptic_backward_cuda);
  m.impl("alpha_backward", &snntorch_sparse::alpha_backward_cuda);
}
