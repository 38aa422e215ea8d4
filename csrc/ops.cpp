// Op schemas of the snntorch_sparse library and their CPU implementations.
//
// The CUDA implementations register themselves in csrc/cuda/ops_launch.cu
// (compiled only when a CUDA toolchain and device are present). Fake (meta)
// implementations for torch.compile / opcheck live in
// snntorch_sparse/ops/compiled.py.
#include <torch/library.h>

#include "ops.h"

TORCH_LIBRARY(snntorch_sparse, m) {
  m.def("lif_scan(Tensor current, Tensor beta, Tensor threshold, int reset_mode) -> (Tensor, Tensor)");
  m.def("lif_scan_backward(Tensor grad, Tensor beta, Tensor? spk, int reset_mode) -> Tensor");
  m.def("sparse_weight_grad(Tensor h, Tensor x_index, Tensor? x_values, int in_features) -> Tensor");
  m.def("sparse_input_grad(Tensor h, Tensor weight, Tensor index) -> Tensor");
}

TORCH_LIBRARY_IMPL(snntorch_sparse, CPU, m) {
  m.impl("lif_scan", &snntorch_sparse::lif_scan_cpu);
  m.impl("lif_scan_backward", &snntorch_sparse::lif_scan_backward_cpu);
  m.impl("sparse_weight_grad", &snntorch_sparse::sparse_weight_grad_cpu);
  m.impl("sparse_input_grad", &snntorch_sparse::sparse_input_grad_cpu);
}
