"""Bad input gets a clear error naming the argument."""
import math

import pytest
import torch

from snntorch_sparse import SparseLeaky, SparseLinearLeaky


@pytest.fixture
def layer():
    return SparseLinearLeaky(5, 3, beta=0.9)


def test_wrong_rank(layer):
    with pytest.raises(ValueError, match=r"x must be time-major .*\[T, B"):
        layer(torch.zeros(4, 5))


def test_wrong_features(layer):
    with pytest.raises(ValueError, match="5 features"):
        layer(torch.zeros(4, 2, 6))


def test_integer_dtype(layer):
    with pytest.raises(TypeError, match="floating-point"):
        layer(torch.zeros(4, 2, 5, dtype=torch.int64))


def test_half_refused(layer):
    with pytest.raises(TypeError, match="float32 or float64"):
        layer(torch.zeros(4, 2, 5, dtype=torch.float16))


def test_dtype_mismatch(layer):
    with pytest.raises(TypeError, match="dtype"):
        layer(torch.zeros(4, 2, 5, dtype=torch.float64))


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_inf(layer, bad):
    x = torch.zeros(4, 2, 5)
    x[1, 1, 1] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        layer(x)


def test_t_zero(layer):
    with pytest.raises(ValueError, match="T = 0"):
        layer(torch.zeros(0, 2, 5))


@pytest.mark.parametrize("beta", [-0.1, 1.5, math.nan])
def test_beta_range(beta):
    with pytest.raises(ValueError, match="beta"):
        SparseLinearLeaky(5, 3, beta=beta)
    with pytest.raises(ValueError, match="beta"):
        SparseLeaky(beta=beta)


@pytest.mark.parametrize("bth", [0, -1.0])
def test_bth_positive(bth):
    with pytest.raises(ValueError, match="bth"):
        SparseLinearLeaky(5, 3, beta=0.9, bth=bth)


def test_reset_mechanism():
    with pytest.raises(ValueError, match="reset_mechanism"):
        SparseLinearLeaky(5, 3, beta=0.9, reset_mechanism="sometimes")


def test_per_neuron_beta_size():
    with pytest.raises(ValueError, match=r"beta has shape \(2,\), but the neurons have shape \[3\]"):
        SparseLinearLeaky(5, 3, beta=torch.tensor([0.9, 0.8]))  # refused when built


def test_per_neuron_beta_works():
    layer = SparseLinearLeaky(5, 3, beta=torch.tensor([0.9, 0.8, 0.5]), learn_beta=True)
    spk = layer((torch.rand(6, 2, 5) < 0.5).float())
    spk.sum().backward()
    assert layer.beta.grad.shape == (3,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_mismatched_devices(layer):
    with pytest.raises(ValueError, match="one device"):
        layer(torch.zeros(4, 2, 5, device="cuda"))


def test_mismatched_devices_meta(layer):
    with pytest.raises(ValueError, match="one device"):
        layer(torch.zeros(4, 2, 5, device="meta"))
