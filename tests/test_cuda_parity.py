"""The parity suite on an NVIDIA GPU: sparse layers (each backend) vs snnTorch dense BPTT on CUDA."""
import pytest
import torch

from test_parity import _compare

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")]


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("loss", ["spk", "mixed"])
def test_cuda_stack_parity(backend, dtype, reset, loss):
    _compare([40, 32, 24, 10], T=30, B=6, beta=0.875, threshold=1.0, bth=0.4, reset=reset, loss=loss,
             dtype=dtype, backend=backend, device="cuda")


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("learn", [(True, False), (False, True)])
def test_cuda_learnable(backend, learn):
    _compare([12, 10, 6], T=15, B=3, beta=0.875, threshold=1.0, bth=0.5, reset="subtract", loss="mixed",
             dtype=torch.float64, learn_beta=learn[0], learn_threshold=learn[1], backend=backend, device="cuda")


@pytest.mark.parametrize("backend", ["reference", "compiled"])
def test_cuda_large_realistic(backend):
    """Paper-sized layer widths, low activity, float32."""
    _compare([700, 200, 200, 20], T=50, B=16, beta=0.9, threshold=1.0, bth=0.2, reset="subtract",
             loss="mixed", dtype=torch.float32, backend=backend, density=0.02, device="cuda")
