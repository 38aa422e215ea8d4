// CUDA implementations of the snntorch_sparse ops: argument checks, output
// allocation and the dispatch to the torch-free kernels of kernels.cuh.
// Everything runs on the current stream with no host synchronisation.
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cstdlib>
#include <limits>
#include <string>

#include "../ops.h"
#include "kernels.cuh"

namespace snntorch_sparse {
namespace {

void check_launch(cudaError_t err, const char* op) {
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
}

void check_same_device(const char* op, const at::Tensor& a, const at::Tensor& b, const char* name) {
  TORCH_CHECK(a.device() == b.device(), op, ": ", name, " is on ", b.device(), ", expected ",
              a.device());
}

// Time steps per load chunk of the scans: cuda::kScanChunk, or 1 (one load
// ahead, the scans' form before chunking) when SNNTORCH_SPARSE_CUDA_SCAN_CHUNK=1,
// so that one GPU run can time both. Read once per process.
int scan_chunk() {
  static const int chunk = [] {
    const char* v = std::getenv("SNNTORCH_SPARSE_CUDA_SCAN_CHUNK");
    const std::string s = v != nullptr ? v : "";
    TORCH_CHECK(s.empty() || s == "1" || s == std::to_string(cuda::kScanChunk),
                "SNNTORCH_SPARSE_CUDA_SCAN_CHUNK must be 1 or ", cuda::kScanChunk, ", got '", s, "'");
    return s == "1" ? 1 : cuda::kScanChunk;
  }();
  return chunk;
}

// mem (which may be current itself) and spk (undefined: not written) are
// contiguous [T, B, N].
void scan_into(const char* op, const at::Tensor& current, const at::Tensor& beta_,
               const at::Tensor& threshold_, int64_t reset_mode, at::Tensor& spk, at::Tensor& mem) {
  const auto beta = beta_.contiguous();
  const auto threshold = threshold_.contiguous();
  const int64_t Tn = current.size(0), N = current.size(2), BN = current.size(1) * N;
  if (current.numel() == 0) return;
  const auto stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(current.scalar_type(), "lif_scan_cuda", [&] {
    check_launch(cuda::launch_lif_scan<scalar_t>(
                     current.const_data_ptr<scalar_t>(), beta.const_data_ptr<scalar_t>(),
                     threshold.const_data_ptr<scalar_t>(),
                     spk.defined() ? spk.mutable_data_ptr<scalar_t>() : nullptr,
                     mem.mutable_data_ptr<scalar_t>(), Tn, BN, N, static_cast<int>(reset_mode),
                     scan_chunk(), stream),
                 op);
  });
}

std::tuple<at::Tensor, at::Tensor> lif_scan_cuda(const at::Tensor& current_, const at::Tensor& beta_,
                                                 const at::Tensor& threshold_, int64_t reset_mode) {
  check_scan_args("lif_scan", current_, beta_, reset_mode);
  check_threshold("lif_scan", current_, threshold_);
  const c10::cuda::CUDAGuard guard(current_.device());
  const auto current = current_.contiguous();
  auto spk = at::empty_like(current, at::MemoryFormat::Contiguous);
  auto mem = at::empty_like(current, at::MemoryFormat::Contiguous);
  scan_into("lif_scan", current, beta_, threshold_, reset_mode, spk, mem);
  return {spk, mem};
}

void lif_scan_inplace_cuda(at::Tensor& current, const at::Tensor& beta_, const at::Tensor& threshold_,
                           int64_t reset_mode) {
  check_scan_args("lif_scan_", current, beta_, reset_mode);
  check_threshold("lif_scan_", current, threshold_);
  TORCH_CHECK(current.is_contiguous(), "lif_scan_: current must be contiguous (it is overwritten with the membrane)");
  const c10::cuda::CUDAGuard guard(current.device());
  at::Tensor no_spikes;
  scan_into("lif_scan_", current, beta_, threshold_, reset_mode, no_spikes, current);
}

// h (which may be grad itself) is contiguous [T, B, N].
void scan_backward_into(const char* op, const at::Tensor& grad, const at::Tensor& beta_,
                        const at::Tensor& spk, int64_t reset_mode, at::Tensor& h) {
  const bool zero = reset_mode == 1;
  const auto beta = beta_.contiguous();
  const int64_t Tn = grad.size(0), N = grad.size(2), BN = grad.size(1) * N;
  if (grad.numel() == 0) return;
  const auto stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "lif_scan_backward_cuda", [&] {
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const scalar_t* b = beta.const_data_ptr<scalar_t>();
    scalar_t* out = h.mutable_data_ptr<scalar_t>();
    const int mode = static_cast<int>(reset_mode);
    cudaError_t err;
    if (zero && spk.scalar_type() == grad.scalar_type()) {
      err = cuda::launch_lif_scan_backward<scalar_t, scalar_t>(
          g, b, spk.const_data_ptr<scalar_t>(), out, Tn, BN, N, mode, scan_chunk(), stream);
    } else {
      const uint8_t* sb =
          zero ? reinterpret_cast<const uint8_t*>(spk.const_data_ptr<bool>()) : nullptr;
      err = cuda::launch_lif_scan_backward<scalar_t, uint8_t>(g, b, sb, out, Tn, BN, N, mode,
                                                              scan_chunk(), stream);
    }
    check_launch(err, op);
  });
}

at::Tensor lif_scan_backward_cuda(const at::Tensor& grad_, const at::Tensor& beta_,
                                  const std::optional<at::Tensor>& spk_, int64_t reset_mode) {
  check_scan_args("lif_scan_backward", grad_, beta_, reset_mode);
  const c10::cuda::CUDAGuard guard(grad_.device());
  const auto spk = backward_spikes("lif_scan_backward", grad_, spk_, reset_mode);
  const auto grad = grad_.contiguous();
  auto h = at::empty_like(grad, at::MemoryFormat::Contiguous);
  scan_backward_into("lif_scan_backward", grad, beta_, spk, reset_mode, h);
  return h;
}

void lif_scan_backward_inplace_cuda(at::Tensor& grad, const at::Tensor& beta_,
                                    const std::optional<at::Tensor>& spk_, int64_t reset_mode) {
  check_scan_args("lif_scan_backward_", grad, beta_, reset_mode);
  TORCH_CHECK(grad.is_contiguous(), "lif_scan_backward_: grad must be contiguous (it is overwritten with h)");
  const c10::cuda::CUDAGuard guard(grad.device());
  const auto spk = backward_spikes("lif_scan_backward_", grad, spk_, reset_mode);
  scan_backward_into("lif_scan_backward_", grad, beta_, spk, reset_mode, grad);
}

// Sort the non-zeros by column (stable, on the device, int32 keys), build the column
// pointers with searchsorted (no host sync), then one CSC kernel.
at::Tensor sparse_weight_grad_cuda(const at::Tensor& h_, const at::Tensor& x_index_,
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
    check_same_device("sparse_weight_grad", h_, *x_values_, "x_values");
  }
  const c10::cuda::CUDAGuard guard(h_.device());
  const auto h = h_.contiguous();
  const int64_t No = h.size(1), Ni = in_features;
  if (No == 0 || Ni == 0) return at::zeros({No, Ni}, h.options());
  TORCH_CHECK(Ni <= std::numeric_limits<int32_t>::max(), "sparse_weight_grad: in_features must fit in int32, got ", Ni);
  const auto x_index = x_index_.contiguous();
  // int32 sort keys: the radix sort makes half the passes of an int64 sort
  const auto cols = x_index.remainder(Ni).to(at::kInt);
  const auto sorted = at::sort(cols, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  const auto& scols = std::get<0>(sorted);
  const auto& perm = std::get<1>(sorted);
  const auto rows = x_index.index_select(0, perm).div(Ni, "floor").contiguous();
  const at::Tensor vals = has_vals ? x_values_->index_select(0, perm).contiguous() : at::Tensor();
  const auto colptr = at::searchsorted(scols, at::arange(Ni + 1, scols.options())).contiguous();
  auto dwt = at::empty({Ni, No}, h.options());
  const auto stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "sparse_weight_grad_cuda", [&] {
    check_launch(cuda::launch_weight_grad_csc<scalar_t>(
                     h.const_data_ptr<scalar_t>(), rows.const_data_ptr<int64_t>(),
                     has_vals ? vals.const_data_ptr<scalar_t>() : nullptr,
                     colptr.const_data_ptr<int64_t>(), dwt.mutable_data_ptr<scalar_t>(), No, Ni,
                     stream),
                 "sparse_weight_grad");
  });
  return dwt.t().contiguous();
}

at::Tensor sparse_input_grad_cuda(const at::Tensor& h_, const at::Tensor& weight_,
                                  const at::Tensor& index_) {
  check_rows_args("sparse_input_grad", h_, index_);
  TORCH_CHECK(weight_.dim() == 2 && weight_.size(0) == h_.size(1),
              "sparse_input_grad: weight must be [N_out, N_in] with N_out = ", h_.size(1),
              ", got ", weight_.sizes());
  TORCH_CHECK(weight_.scalar_type() == h_.scalar_type(), "sparse_input_grad: weight dtype ",
              weight_.scalar_type(), " differs from h's ", h_.scalar_type());
  check_same_device("sparse_input_grad", h_, weight_, "weight");
  const c10::cuda::CUDAGuard guard(h_.device());
  const auto h = h_.contiguous();
  const auto index = index_.contiguous();
  const int64_t No = h.size(1), Ni = weight_.size(1), K = index.numel();
  auto out = at::empty({K}, h.options());
  if (K == 0) return out;
  TORCH_CHECK(Ni > 0, "sparse_input_grad: indices given for a weight with 0 input features");
  const auto wt = weight_.t().contiguous();  // [N_in, N_out]: contiguous rows per input j
  const auto stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "sparse_input_grad_cuda", [&] {
    check_launch(cuda::launch_input_grad<scalar_t>(
                     h.const_data_ptr<scalar_t>(), wt.const_data_ptr<scalar_t>(),
                     index.const_data_ptr<int64_t>(), out.mutable_data_ptr<scalar_t>(), K, No, Ni,
                     stream),
                 "sparse_input_grad");
  });
  return out;
}

}  // namespace
}  // namespace snntorch_sparse

TORCH_LIBRARY_IMPL(snntorch_sparse, CUDA, m) {
  m.impl("lif_scan", &snntorch_sparse::lif_scan_cuda);
  m.impl("lif_scan_", &snntorch_sparse::lif_scan_inplace_cuda);
  m.impl("lif_scan_backward", &snntorch_sparse::lif_scan_backward_cuda);
  m.impl("lif_scan_backward_", &snntorch_sparse::lif_scan_backward_inplace_cuda);
  m.impl("sparse_weight_grad", &snntorch_sparse::sparse_weight_grad_cuda);
  m.impl("sparse_input_grad", &snntorch_sparse::sparse_input_grad_cuda);
}
