// CPU kernels of lif_scan and lif_scan_backward.
//
// Parallel over the B*N independent columns (at::parallel_for); each task
// walks its columns in blocks of kBlock so that the running state stays in
// L1 while every time step reads/writes one contiguous slice per block. The
// inner loops are branch-free and vectorise; -ffp-contract=off keeps every
// multiply and add a separate rounding, as in the reference, so the results
// are bit-identical to snntorch_sparse/ops/reference.py. The update itself is
// lif_row (row_kernels.h), shared with the fused kernels.
#include <ATen/Parallel.h>
#include <ATen/Dispatch.h>

#include <algorithm>

#include "../ops.h"
#include "row_kernels.h"

namespace snntorch_sparse {
namespace {

constexpr int64_t kBlock = 256;

// mem may be cur (lif_scan_, in place): each step reads its slice of cur in
// lif_row before the membrane is copied over it, so cur and mem are not
// restrict. spk may be null (lif_scan_): the spikes go to a scratch row.
template <typename T, int MODE>
void scan_block(const T* cur, const T* __restrict__ beta, const T* __restrict__ thr,
                T* spk, T* mem, int64_t Tn, int64_t BN, int64_t N,
                int64_t c0, int64_t len) {
  T u[kBlock], b[kBlock], th[kBlock], scratch[kBlock];
  for (int64_t i = 0; i < len; ++i) {
    const int64_t n = (c0 + i) % N;
    b[i] = beta[n];
    th[i] = thr[n];
    u[i] = T(0);
  }
  for (int64_t t = 0; t < Tn; ++t) {
    const T* I = cur + t * BN + c0;
    T* m = mem + t * BN + c0;
    T* s = spk != nullptr ? spk + t * BN + c0 : scratch;
    lif_row<T, MODE>(u, I, b, th, s, len);
    std::copy(u, u + len, m);
  }
}

// S: the spike mask's element type, T (float spikes) or uint8_t (bool).
// h may be g (lif_scan_backward_, in place): each entry is read before it is
// written, so g and h are not restrict.
template <typename T, typename S, bool ZERO>
void scan_backward_block(const T* g, const T* __restrict__ beta,
                         const S* __restrict__ spk, T* h, int64_t Tn,
                         int64_t BN, int64_t N, int64_t c0, int64_t len) {
  T acc[kBlock], b[kBlock];
  for (int64_t i = 0; i < len; ++i) {
    b[i] = beta[(c0 + i) % N];
    acc[i] = T(0);
  }
  for (int64_t t = Tn - 1; t >= 0; --t) {
    const T* gt = g + t * BN + c0;
    T* ht = h + t * BN + c0;
    const S* __restrict__ st = ZERO ? spk + t * BN + c0 : nullptr;
    for (int64_t i = 0; i < len; ++i) {
      // The reference masks only for t + 1 < T; at t = T - 1 acc is +0 and
      // +0 * {0, 1} = +0, so masking there too changes nothing.
      const T prev = ZERO ? acc[i] * static_cast<T>(st[i] == S(0)) : acc[i];
      const T a = b[i] * prev;
      const T v = gt[i] + a;
      acc[i] = v;
      ht[i] = v;
    }
  }
}

// Columns per parallel task: enough work to amortise the task overhead.
int64_t column_grain(int64_t Tn) {
  const int64_t per_col = std::max<int64_t>(Tn, 1);
  return std::max<int64_t>(kBlock, (int64_t{1} << 15) / per_col / kBlock * kBlock);
}

}  // namespace

namespace {

// mem (which may be current itself) and spk (undefined: not written) are
// contiguous [T, B, N].
void scan_into(const at::Tensor& current, const at::Tensor& beta, const at::Tensor& threshold,
               int64_t reset_mode, at::Tensor& spk, at::Tensor& mem) {
  const int64_t Tn = current.size(0), N = current.size(2), BN = current.size(1) * N;
  if (current.numel() == 0) return;
  AT_DISPATCH_FLOATING_TYPES(current.scalar_type(), "lif_scan_cpu", [&] {
    const scalar_t* cur = current.const_data_ptr<scalar_t>();
    const scalar_t* b = beta.const_data_ptr<scalar_t>();
    const scalar_t* th = threshold.const_data_ptr<scalar_t>();
    scalar_t* s = spk.defined() ? spk.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* m = mem.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, BN, column_grain(Tn), [&](int64_t begin, int64_t end) {
      for (int64_t c0 = begin; c0 < end; c0 += kBlock) {
        const int64_t len = std::min(kBlock, end - c0);
        switch (reset_mode) {
          case 0: scan_block<scalar_t, 0>(cur, b, th, s, m, Tn, BN, N, c0, len); break;
          case 1: scan_block<scalar_t, 1>(cur, b, th, s, m, Tn, BN, N, c0, len); break;
          default: scan_block<scalar_t, 2>(cur, b, th, s, m, Tn, BN, N, c0, len); break;
        }
      }
    });
  });
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> lif_scan_cpu(const at::Tensor& current_, const at::Tensor& beta_,
                                                const at::Tensor& threshold_, int64_t reset_mode) {
  check_scan_args("lif_scan", current_, beta_, reset_mode);
  check_threshold("lif_scan", current_, threshold_);
  const auto current = current_.contiguous();
  auto spk = at::empty_like(current, at::MemoryFormat::Contiguous);
  auto mem = at::empty_like(current, at::MemoryFormat::Contiguous);
  scan_into(current, beta_.contiguous(), threshold_.contiguous(), reset_mode, spk, mem);
  return {spk, mem};
}

void lif_scan_inplace_cpu(at::Tensor& current, const at::Tensor& beta_, const at::Tensor& threshold_,
                          int64_t reset_mode) {
  check_scan_args("lif_scan_", current, beta_, reset_mode);
  check_threshold("lif_scan_", current, threshold_);
  TORCH_CHECK(current.is_contiguous(), "lif_scan_: current must be contiguous (it is overwritten with the membrane)");
  at::Tensor no_spikes;
  scan_into(current, beta_.contiguous(), threshold_.contiguous(), reset_mode, no_spikes, current);
}

namespace {

// h (which may be grad itself) is contiguous [T, B, N].
void scan_backward_into(const at::Tensor& grad, const at::Tensor& beta, const at::Tensor& spk,
                        int64_t reset_mode, at::Tensor& h) {
  const bool zero = reset_mode == 1;
  const int64_t Tn = grad.size(0), N = grad.size(2), BN = grad.size(1) * N;
  if (grad.numel() == 0) return;
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "lif_scan_backward_cpu", [&] {
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const scalar_t* b = beta.const_data_ptr<scalar_t>();
    const bool same = zero && spk.scalar_type() == grad.scalar_type();
    const scalar_t* sf = same ? spk.const_data_ptr<scalar_t>() : nullptr;
    const uint8_t* sb = zero && !same
        ? reinterpret_cast<const uint8_t*>(spk.const_data_ptr<bool>()) : nullptr;
    scalar_t* out = h.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, BN, column_grain(Tn), [&](int64_t begin, int64_t end) {
      for (int64_t c0 = begin; c0 < end; c0 += kBlock) {
        const int64_t len = std::min(kBlock, end - c0);
        if (!zero)
          scan_backward_block<scalar_t, uint8_t, false>(g, b, nullptr, out, Tn, BN, N, c0, len);
        else if (same)
          scan_backward_block<scalar_t, scalar_t, true>(g, b, sf, out, Tn, BN, N, c0, len);
        else
          scan_backward_block<scalar_t, uint8_t, true>(g, b, sb, out, Tn, BN, N, c0, len);
      }
    });
  });
}

}  // namespace

at::Tensor lif_scan_backward_cpu(const at::Tensor& grad_, const at::Tensor& beta_,
                                 const std::optional<at::Tensor>& spk_, int64_t reset_mode) {
  check_scan_args("lif_scan_backward", grad_, beta_, reset_mode);
  const auto spk = backward_spikes("lif_scan_backward", grad_, spk_, reset_mode);
  const auto grad = grad_.contiguous();
  auto h = at::empty_like(grad, at::MemoryFormat::Contiguous);
  scan_backward_into(grad, beta_.contiguous(), spk, reset_mode, h);
  return h;
}

void lif_scan_backward_inplace_cpu(at::Tensor& grad, const at::Tensor& beta_,
                                   const std::optional<at::Tensor>& spk_, int64_t reset_mode) {
  check_scan_args("lif_scan_backward_", grad, beta_, reset_mode);
  TORCH_CHECK(grad.is_contiguous(), "lif_scan_backward_: grad must be contiguous (it is overwritten with h)");
  const auto spk = backward_spikes("lif_scan_backward_", grad, spk_, reset_mode);
  scan_backward_into(grad, beta_.contiguous(), spk, reset_mode, grad);
}

}  // namespace snntorch_sparse
