// CPU kernel of the sparse RLeaky backward (snntorch_sparse/recurrent.py).
//
// Registered with its own TORCH_LIBRARY_FRAGMENT so that csrc/ops.cpp is left
// alone. Rows (batch entries) are independent: the recurrent weights mix the
// neurons of one row only, so at::parallel_for runs over rows and each task
// walks its rows in reverse time with the adjoint a[t+1] (one row, N values)
// in L1:
//
//   du[n]  = beta[n] * a[t+1][n] + d_mem[t][n]
//   for each active entry k = (t, row, n):             (CSR over the T*R rows)
//     ds   = d_spk[t][n] + dot(a[t+1], V[:, n])       (all_to_all; v[n]*a[t+1][n] one-to-one)
//     g[k] = ds * sg[k];  du[n] += g[k]
//   du     *= (1 - R[t])                              (reset to zero only)
//   a[t]   = du
//
// Cost per step and row: N multiply-adds plus N per active entry: |A|·N in all
// for the recurrent term, never the dense T·B·N².
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/types.h>

#include <vector>

namespace snntorch_sparse {
namespace {

// dot(x, y) with 8 partial sums (lanes i mod 8), added pairwise at the end: vectorises under
// -ffp-contract=off; the CUDA body (csrc/cuda/rleaky_backward.cuh) sums in the same order.
template <typename T>
inline T dot8(const T* x, const T* y, int64_t n) {
  T p[8] = {T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0)};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) p[j] += x[i + j] * y[i + j];
  for (int j = 0; i < n; ++i, ++j) p[j] += x[i] * y[i];
  return ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
}

template <typename T>
void rleaky_backward_kernel(const int64_t* rowptr, const int64_t* col, const T* sg, const T* d_spk,
                            const T* d_mem, const T* beta, const T* wt, const T* v, const bool* spk,
                            const T* keep0, int64_t mode, int64_t Tn, int64_t R, int64_t N, T* a, T* g) {
  at::parallel_for(0, R, 1, [&](int64_t r0, int64_t r1) {
    std::vector<T> carry(N), du(N);
    for (int64_t r = r0; r < r1; ++r) {
      std::fill(carry.begin(), carry.end(), T(0));
      for (int64_t t = Tn - 1; t >= 0; --t) {
        const int64_t base = (t * R + r) * N;
        for (int64_t n = 0; n < N; ++n) {
          T x = beta[n] * carry[n];
          if (d_mem != nullptr) x = x + d_mem[base + n];
          du[n] = x;
        }
        const int64_t row = t * R + r;
        const bool has_next = t + 1 < Tn;
        for (int64_t k = rowptr[row]; k < rowptr[row + 1]; ++k) {
          const int64_t n = col[k];
          T ds = d_spk != nullptr ? d_spk[base + n] : T(0);
          if (has_next) {
            if (wt != nullptr) {
              const T* w = wt + n * N;
              ds = ds + dot8(carry.data(), w, N);
            } else {
              ds = ds + carry[n] * v[n];
            }
          }
          const T gk = ds * sg[k];
          g[k] = gk;
          du[n] = du[n] + gk;
        }
        if (mode == 1) {
          if (t > 0) {
            const bool* s = spk + ((t - 1) * R + r) * N;
            for (int64_t n = 0; n < N; ++n)
              if (s[n]) du[n] = T(0);
          } else if (keep0 != nullptr) {
            for (int64_t n = 0; n < N; ++n) du[n] = du[n] * keep0[r * N + n];
          }
        }
        std::copy(du.begin(), du.end(), a + base);
        std::swap(carry, du);
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> rleaky_backward_cpu(
    const at::Tensor& act_rowptr, const at::Tensor& act_col, const at::Tensor& act_sg,
    const std::optional<at::Tensor>& d_spk, const std::optional<at::Tensor>& d_mem, const at::Tensor& beta,
    const std::optional<at::Tensor>& wt, const std::optional<at::Tensor>& v, const std::optional<at::Tensor>& spk,
    const std::optional<at::Tensor>& keep0, int64_t reset_mode, int64_t Tn, int64_t R, int64_t N) {
  TORCH_CHECK(act_rowptr.scalar_type() == at::kLong && act_col.scalar_type() == at::kLong,
              "rleaky_backward: act_rowptr / act_col must be int64");
  TORCH_CHECK(act_rowptr.numel() == Tn * R + 1, "rleaky_backward: act_rowptr must have T*R+1 entries");
  TORCH_CHECK(act_col.numel() == act_sg.numel(), "rleaky_backward: act_col and act_sg differ in length");
  TORCH_CHECK(beta.numel() == N, "rleaky_backward: beta must have N entries");
  TORCH_CHECK(wt.has_value() != v.has_value(), "rleaky_backward: give exactly one of wt (all_to_all) and v");
  TORCH_CHECK(reset_mode != 1 || spk.has_value(), "rleaky_backward: reset to zero needs the spikes");
  const auto dtype = act_sg.scalar_type();
  auto contig = [&](const std::optional<at::Tensor>& x, int64_t numel, const char* name) -> at::Tensor {
    if (!x.has_value() || !x->defined()) return at::Tensor();
    TORCH_CHECK(x->numel() == numel, "rleaky_backward: ", name, " has ", x->numel(), " entries, expected ", numel);
    return x->contiguous();
  };
  at::Tensor ds = contig(d_spk, Tn * R * N, "d_spk"), dm = contig(d_mem, Tn * R * N, "d_mem");
  at::Tensor w = contig(wt, N * N, "wt"), vv = contig(v, N, "v"), s = contig(spk, Tn * R * N, "spk");
  at::Tensor k0 = contig(keep0, R * N, "keep0");
  for (const at::Tensor* x : {&ds, &dm, &w, &vv, &k0})
    TORCH_CHECK(!x->defined() || x->scalar_type() == dtype, "rleaky_backward: dtypes must agree");
  TORCH_CHECK(!s.defined() || s.scalar_type() == at::kBool, "rleaky_backward: spk must be bool");
  at::Tensor rp = act_rowptr.contiguous(), cl = act_col.contiguous(), sgc = act_sg.contiguous();
  at::Tensor b = beta.contiguous();
  if (cl.numel()) {
    TORCH_CHECK(cl.min().item<int64_t>() >= 0 && cl.max().item<int64_t>() < N, "rleaky_backward: act_col out of range");
  }
  at::Tensor a = at::empty({Tn, R, N}, act_sg.options());
  at::Tensor g = at::empty({act_sg.numel()}, act_sg.options());
  AT_DISPATCH_FLOATING_TYPES(dtype, "rleaky_backward", [&] {
    rleaky_backward_kernel<scalar_t>(
        rp.data_ptr<int64_t>(), cl.data_ptr<int64_t>(), sgc.data_ptr<scalar_t>(),
        ds.defined() ? ds.data_ptr<scalar_t>() : nullptr, dm.defined() ? dm.data_ptr<scalar_t>() : nullptr,
        b.data_ptr<scalar_t>(), w.defined() ? w.data_ptr<scalar_t>() : nullptr,
        vv.defined() ? vv.data_ptr<scalar_t>() : nullptr, s.defined() ? s.data_ptr<bool>() : nullptr,
        k0.defined() ? k0.data_ptr<scalar_t>() : nullptr, reset_mode, Tn, R, N, a.data_ptr<scalar_t>(),
        g.data_ptr<scalar_t>());
  });
  return {a, g};
}

}  // namespace
}  // namespace snntorch_sparse

TORCH_LIBRARY_FRAGMENT(snntorch_sparse, m) {
  m.def("rleaky_backward(Tensor act_rowptr, Tensor act_col, Tensor act_sg, Tensor? d_spk, Tensor? d_mem, "
        "Tensor beta, Tensor? wt, Tensor? v, Tensor? spk, Tensor? keep0, int reset_mode, int T, int R, int N) "
        "-> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(snntorch_sparse, CPU, m) {
  m.impl("rleaky_backward", &snntorch_sparse::rleaky_backward_cpu);
}
