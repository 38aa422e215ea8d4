// CPU kernel of the Alpha-neuron backward (snntorch_sparse/alpha.py).
//
// The arithmetic is csrc/cuda/alpha_backward.cuh's column function (one code
// path for CPU and CUDA); at::parallel_for runs it over the R*N independent
// (row, neuron) columns. Registered with its own TORCH_LIBRARY_FRAGMENT.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/types.h>

#include "cuda/alpha_backward.cuh"

namespace snntorch_sparse {
namespace {

std::tuple<at::Tensor, at::Tensor> alpha_backward_cpu(const at::Tensor& gu, const std::optional<at::Tensor>& d_e,
                                                      const std::optional<at::Tensor>& d_h, const at::Tensor& alpha,
                                                      const at::Tensor& beta, const at::Tensor& tau,
                                                      const at::Tensor& spk, const std::optional<at::Tensor>& r0,
                                                      int64_t reset_mode, int64_t Tn, int64_t R, int64_t N) {
  const int64_t total = Tn * R * N;
  TORCH_CHECK(gu.numel() == total, "alpha_backward: gu must have T*R*N entries");
  TORCH_CHECK(spk.numel() == total && spk.scalar_type() == at::kBool,
              "alpha_backward: spk must be a bool tensor of T*R*N entries");
  TORCH_CHECK(alpha.numel() == N && beta.numel() == N && tau.numel() == N,
              "alpha_backward: alpha, beta and tau must have N entries");
  TORCH_CHECK(reset_mode >= 0 && reset_mode <= 2, "alpha_backward: reset_mode must be 0, 1 or 2");
  const auto dtype = gu.scalar_type();
  auto opt = [&](const std::optional<at::Tensor>& x, int64_t numel, const char* name) -> at::Tensor {
    if (!x.has_value() || !x->defined()) return at::Tensor();
    TORCH_CHECK(x->numel() == numel, "alpha_backward: ", name, " has ", x->numel(), " entries, expected ", numel);
    return x->contiguous();
  };
  at::Tensor de = opt(d_e, total, "d_e"), dh = opt(d_h, total, "d_h"), rr = opt(r0, R * N, "r0");
  at::Tensor g = gu.contiguous(), a = alpha.contiguous(), b = beta.contiguous(), ta = tau.contiguous();
  at::Tensor s = spk.contiguous();
  for (const at::Tensor* x : {&de, &dh, &rr, &a, &b, &ta})
    TORCH_CHECK(!x->defined() || x->scalar_type() == dtype, "alpha_backward: dtypes must agree");
  at::Tensor ue = at::empty({Tn, R, N}, gu.options()), uh = at::empty({Tn, R, N}, gu.options());
  AT_DISPATCH_FLOATING_TYPES(dtype, "alpha_backward", [&] {
    const scalar_t* p_de = de.defined() ? de.data_ptr<scalar_t>() : nullptr;
    const scalar_t* p_dh = dh.defined() ? dh.data_ptr<scalar_t>() : nullptr;
    const scalar_t* p_r0 = rr.defined() ? rr.data_ptr<scalar_t>() : nullptr;
    const scalar_t* p_g = g.data_ptr<scalar_t>();
    const scalar_t* p_a = a.data_ptr<scalar_t>();
    const scalar_t* p_b = b.data_ptr<scalar_t>();
    const scalar_t* p_t = ta.data_ptr<scalar_t>();
    const bool* p_s = s.data_ptr<bool>();
    scalar_t* p_ue = ue.data_ptr<scalar_t>();
    scalar_t* p_uh = uh.data_ptr<scalar_t>();
    at::parallel_for(0, R * N, 256, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c)
        cuda::alpha_backward_column<scalar_t>(c, p_g, p_de, p_dh, p_a, p_b, p_t, p_s, p_r0,
                                              static_cast<int>(reset_mode), Tn, R * N, N, p_ue, p_uh);
    });
  });
  return {ue, uh};
}

}  // namespace
}  // namespace snntorch_sparse

TORCH_LIBRARY_FRAGMENT(snntorch_sparse, m) {
  m.def("alpha_backward(Tensor gu, Tensor? d_e, Tensor? d_h, Tensor alpha, Tensor beta, Tensor tau, Tensor spk, "
        "Tensor? r0, int reset_mode, int T, int R, int N) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(snntorch_sparse, CPU, m) {
  m.impl("alpha_backward", &snntorch_sparse::alpha_backward_cpu);
}
