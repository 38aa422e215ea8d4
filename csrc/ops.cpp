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
  m.def("lif_scan_(Tensor(a!) current, Tensor beta, Tensor threshold, int reset_mode) -> ()");
  m.def("lif_scan_backward(Tensor grad, Tensor beta, Tensor? spk, int reset_mode) -> Tensor");
  m.def("lif_scan_backward_(Tensor(a!) grad, Tensor beta, Tensor? spk, int reset_mode) -> ()");
  m.def("sparse_weight_grad(Tensor h, Tensor x_index, Tensor? x_values, int in_features) -> Tensor");
  m.def("sparse_input_grad(Tensor h, Tensor weight, Tensor index) -> Tensor");
  m.def("dense_to_csr(Tensor x) -> (Tensor, Tensor, Tensor)");
  m.def("lif_fused_forward(Tensor? current, Tensor? x_rowptr, Tensor? x_col, Tensor? x_val, "
        "Tensor? weight, Tensor? bias, Tensor beta, Tensor threshold, int reset_mode, Tensor bth, "
        "bool event, int T, int B, Tensor(a!)? spk_out, Tensor(b!)? mem_out, bool need_spike_csr, bool need_active, "
        "Tensor? capacity=None, Tensor? x_dense=None) "
        "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("lif_fused_backward(Tensor act_rowptr, Tensor act_col, Tensor act_sg, Tensor? d_spk, "
        "Tensor? d_mem, Tensor beta, Tensor? spk, int reset_mode, Tensor? x_rowptr, Tensor? x_col, "
        "Tensor? x_val, Tensor? weight, Tensor? up_rowptr, Tensor? up_col, Tensor(a!)? dx_out, "
        "Tensor(b!)? h_out, int T, int B, int in_features, bool need_dw, bool need_db, "
        "bool d_spk_compact, bool dx_compact, Tensor? x_dense=None) -> (Tensor, Tensor)");
  m.def("csr_to_flat_(Tensor rowptr, Tensor col, int n_cols, Tensor(a!) out) -> ()");
}

TORCH_LIBRARY_IMPL(snntorch_sparse, CPU, m) {
  m.impl("lif_scan", &snntorch_sparse::lif_scan_cpu);
  m.impl("lif_scan_", &snntorch_sparse::lif_scan_inplace_cpu);
  m.impl("lif_scan_backward", &snntorch_sparse::lif_scan_backward_cpu);
  m.impl("lif_scan_backward_", &snntorch_sparse::lif_scan_backward_inplace_cpu);
  m.impl("sparse_weight_grad", &snntorch_sparse::sparse_weight_grad_cpu);
  m.impl("sparse_input_grad", &snntorch_sparse::sparse_input_grad_cpu);
  m.impl("dense_to_csr", &snntorch_sparse::dense_to_csr_cpu);
  m.impl("lif_fused_forward", &snntorch_sparse::lif_fused_forward_cpu);
  m.impl("lif_fused_backward", &snntorch_sparse::lif_fused_backward_cpu);
  m.impl("csr_to_flat_", &snntorch_sparse::csr_to_flat_cpu);
}
