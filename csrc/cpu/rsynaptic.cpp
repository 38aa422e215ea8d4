// CPU kernel of the sparse RSynaptic backward (snntorch_sparse/rsynaptic.py).
//
// The arithmetic is csrc/cuda/rsynaptic_backward.cuh's row function (one code
// path for CPU and CUDA); here at::parallel_for runs it over batch rows, each
// task with its own 3·N scratch. Registered with its own TORCH_LIBRARY_FRAGMENT.
// Cost: |A|·N multiply-adds for the recurrent term plus O(T·B·N) elementwise.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/types.h>

#include <vector>

#include "cuda/rsynaptic_backward.cuh"

namespace snntorch_sparse {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> rsynaptic_backward_cpu(
    const at::Tensor& act_rowptr, const at::Tensor& act_col, const at::Tensor& act_sg,
    const std::optional<at::Tensor>& d_spk, const std::optional<at::Tensor>& d_syn,
    const std::optional<at::Tensor>& d_mem, const at::Tensor& alpha, const at::Tensor& beta,
    const std::optional<at::Tensor>& wt, const std::optional<at::Tensor>& v, const std::optional<at::Tensor>& spk,
    const std::optional<at::Tensor>& keep0, int64_t reset_mode, int64_t Tn, int64_t R, int64_t N, bool need_a) {
  TORCH_CHECK(act_rowptr.scalar_type() == at::kLong && act_col.scalar_type() == at::kLong,
              "rsynaptic_backward: act_rowptr / act_col must be int64");
  TORCH_CHECK(act_rowptr.numel() == Tn * R + 1, "rsynaptic_backward: act_rowptr must have T*R+1 entries");
  TORCH_CHECK(act_col.numel() == act_sg.numel(), "rsynaptic_backward: act_col and act_sg differ in length");
  TORCH_CHECK(alpha.numel() == N && beta.numel() == N, "rsynaptic_backward: alpha and beta must have N entries");
  TORCH_CHECK(wt.has_value() != v.has_value(), "rsynaptic_backward: give exactly one of wt (all_to_all) and v");
  TORCH_CHECK(reset_mode != 1 || spk.has_value(), "rsynaptic_backward: reset to zero needs the spikes");
  const auto dtype = act_sg.scalar_type();
  auto contig = [&](const std::optional<at::Tensor>& x, int64_t numel, const char* name) -> at::Tensor {
    if (!x.has_value() || !x->defined()) return at::Tensor();
    TORCH_CHECK(x->numel() == numel, "rsynaptic_backward: ", name, " has ", x->numel(), " entries, expected ",
                numel);
    return x->contiguous();
  };
  const int64_t total = Tn * R * N;
  at::Tensor ds = contig(d_spk, total, "d_spk"), dy = contig(d_syn, total, "d_syn"), dm = contig(d_mem, total, "d_mem");
  at::Tensor w = contig(wt, N * N, "wt"), vv = contig(v, N, "v"), s = contig(spk, total, "spk");
  at::Tensor k0 = contig(keep0, R * N, "keep0");
  at::Tensor al = alpha.contiguous(), b = beta.contiguous();
  for (const at::Tensor* x : {&ds, &dy, &dm, &w, &vv, &k0, &al, &b})
    TORCH_CHECK(!x->defined() || x->scalar_type() == dtype, "rsynaptic_backward: dtypes must agree");
  TORCH_CHECK(!s.defined() || s.scalar_type() == at::kBool, "rsynaptic_backward: spk must be bool");
  at::Tensor rp = act_rowptr.contiguous(), cl = act_col.contiguous(), sgc = act_sg.contiguous();
  if (cl.numel()) {
    TORCH_CHECK(cl.min().item<int64_t>() >= 0 && cl.max().item<int64_t>() < N,
                "rsynaptic_backward: act_col out of range");
  }
  at::Tensor a = need_a ? at::empty({Tn, R, N}, act_sg.options()) : at::empty({0}, act_sg.options());
  at::Tensor c = at::empty({Tn, R, N}, act_sg.options());
  at::Tensor g = at::empty({act_sg.numel()}, act_sg.options());
  AT_DISPATCH_FLOATING_TYPES(dtype, "rsynaptic_backward", [&] {
    const scalar_t* p_ds = ds.defined() ? ds.data_ptr<scalar_t>() : nullptr;
    const scalar_t* p_dy = dy.defined() ? dy.data_ptr<scalar_t>() : nullptr;
    const scalar_t* p_dm = dm.defined() ? dm.data_ptr<scalar_t>() : nullptr;
    const scalar_t* p_w = w.defined() ? w.data_ptr<scalar_t>() : nullptr;
    const scalar_t* p_v = vv.defined() ? vv.data_ptr<scalar_t>() : nullptr;
    const bool* p_s = s.defined() ? s.data_ptr<bool>() : nullptr;
    const scalar_t* p_k0 = k0.defined() ? k0.data_ptr<scalar_t>() : nullptr;
    scalar_t* p_a = need_a ? a.data_ptr<scalar_t>() : nullptr;
    const int64_t* p_rp = rp.data_ptr<int64_t>();
    const int64_t* p_cl = cl.data_ptr<int64_t>();
    const scalar_t* p_sg = sgc.data_ptr<scalar_t>();
    const scalar_t* p_al = al.data_ptr<scalar_t>();
    const scalar_t* p_b = b.data_ptr<scalar_t>();
    scalar_t* p_c = c.data_ptr<scalar_t>();
    scalar_t* p_g = g.data_ptr<scalar_t>();
    at::parallel_for(0, R, 1, [&](int64_t r0, int64_t r1) {
      std::vector<scalar_t> scratch(3 * N);
      for (int64_t r = r0; r < r1; ++r)
        cuda::rsynaptic_backward_row<scalar_t>(r, p_rp, p_cl, p_sg, p_ds, p_dy, p_dm, p_al, p_b, p_w, p_v, p_s,
                                               p_k0, static_cast<int>(reset_mode), Tn, R, N, p_a, p_c, p_g,
                                               scratch.data());
    });
  });
  return {a, c, g};
}

}  // namespace
}  // namespace snntorch_sparse

TORCH_LIBRARY_FRAGMENT(snntorch_sparse, m) {
  m.def("rsynaptic_backward(Tensor act_rowptr, Tensor act_col, Tensor act_sg, Tensor? d_spk, Tensor? d_syn, "
        "Tensor? d_mem, Tensor alpha, Tensor beta, Tensor? wt, Tensor? v, Tensor? spk, Tensor? keep0, "
        "int reset_mode, int T, int R, int N, bool need_a) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(snntorch_sparse, CPU, m) {
  m.impl("rsynaptic_backward", &snntorch_sparse::rsynaptic_backward_cpu);
}
