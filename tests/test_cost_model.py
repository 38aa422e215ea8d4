"""The GPU cost model (``snntorch_sparse.cost_model``) and its docs table."""
import sys
from pathlib import Path

import pytest

from snntorch_sparse import cost_model as cm

ROOT = Path(__file__).resolve().parent.parent


def test_the_model_reproduces_the_measured_h200_primitives():
    # ../shared/gpu/README.md: the 128,000 x 700 by 700 x 200 GEMM took 1.01 ms (fp32), 0.25 ms (bf16);
    # one elementwise pass over three [500, 256, 200] float tensors 0.08 ms
    L = cm.LayerShape(500, 256, 700, 200, 0.02, 0.06, 0.02, first=True)
    gemm = [k for k in cm.layer_kernels("l1", L) if k.flops][0]
    assert gemm.seconds(cm.H200) == pytest.approx(1.01e-3, rel=0.02)
    gemm16 = [k for k in cm.layer_kernels("l1", L, "bf16") if k.flops][0]
    assert gemm16.seconds(cm.H200) == pytest.approx(0.25e-3, rel=0.02)
    three = cm.Kernel("x", "forward", "pass", 3 * 500 * 256 * 200 * 4, 0)
    assert three.seconds(cm.H200) == pytest.approx(0.08e-3, rel=0.1)


def test_costs_grow_with_activity_and_the_bf16_step_is_cheaper():
    lo = sum(k.seconds(cm.H200) for k in cm.network_kernels(cm.shd_network(activity=0.01)))
    hi = sum(k.seconds(cm.H200) for k in cm.network_kernels(cm.shd_network(activity=0.5)))
    bf = sum(k.seconds(cm.H200) for k in cm.network_kernels(cm.shd_network(activity=0.01), "bf16"))
    assert lo < hi and bf < lo
    table = cm.markdown_table(cm.network_kernels(cm.shd_network()))
    assert "| **total** | step |" in table and "∂L/∂W = hᵀ X (GEMM)" in table


def test_docs_page_states_model_and_measurement(tmp_path):
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import _generate
    finally:
        sys.path.pop(0)
    _generate.generate_costs(ROOT, tmp_path)
    text = (tmp_path / "gpu_costs.md").read_text()
    assert "### sparse_compiled" in text and "### sparse_bf16" in text
    measured = _generate.measured_gpu_step(ROOT)
    if "sparse_compiled" in measured:  # a committed GPU results file
        assert f"step {measured['sparse_compiled'][2]:.2f} ms" in text
