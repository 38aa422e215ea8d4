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
    assert "| **total** | step |" in table and "∂L/∂W = hᵀ X (GEMM" in table


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


def test_the_chunk_rule_and_constants_are_the_launchers():
    """chunk_steps, the default budget and the ∂L/∂X switch are csrc/cuda/fused_launch.cu's."""
    import re
    src = (ROOT / "csrc" / "cuda" / "fused_launch.cu").read_text()
    assert int(re.search(r"kChunkFloorBytes = int64_t\{(\d+)\} << 20;", src).group(1)) << 20 == cm.CHUNK_BUDGET
    assert "std::max<int64_t>(kChunkFloorBytes, dense_bytes / 16)" in src
    assert cm.chunk_budget(500, 256, 200) == cm.CHUNK_BUDGET  # SHD: a sixteenth of 97.7 MiB is below the floor
    assert cm.chunk_budget(500, 256, 1000) == 500 * 256 * 1000 * 4 // 16  # hidden 1000: 30.5 MiB
    assert cm.chunk_budget(500, 256, 1000, fixed=4 << 20) == 4 << 20
    assert float(re.search(r"kDxGemmFraction = ([0-9.]+);", src).group(1)) == cm.DX_GEMM_FRACTION
    assert "budget / (B · width · elem)" in src
    assert "std::max<int64_t>(1024, R * N / 8)" in src and "guess / 2" in src  # first_call_lists
    assert cm.first_call_lists(8) == (1024, 512) and cm.first_call_lists(80000) == (10000, 5000)
    # SHD layer 1 forward: the current [rows, 200] is the only buffer (the dense input's rows are read)
    assert cm.chunk_steps(500, 256, 200) == (8 << 20) // (256 * 200 * 4)
    assert cm.chunk_steps(500, 256, 0) == 500 and cm.chunk_steps(3, 256, 10 ** 6) == 1
    assert cm.chunk_steps(500, 256, 200, budget=1 << 40) == 500


def test_smaller_chunks_cost_launches_not_kernel_time():
    shd = cm.shd_network()
    small = cm.step_prediction(cm.network_kernels(shd, budget=4 << 20))["step"]
    big = cm.step_prediction(cm.network_kernels(shd, budget=64 << 20))["step"]
    assert small[0] == pytest.approx(big[0])  # the same bytes and FLOPs
    assert small[1] > 3 * big[1]  # many more launches
    assert small[2] >= big[2]  # and never a faster step
