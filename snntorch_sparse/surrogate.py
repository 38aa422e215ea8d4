r"""Sparse surrogate gradients.

A sparse surrogate keeps snnTorch's spike function in the forward pass,
:math:`S = H(U - \theta)`, and clamps its surrogate derivative to a window
around the threshold:

.. math::

    \frac{\partial S}{\partial U} \approx \sigma'(U - \theta)\,
        \mathbb{1}\left[\,|U - \theta| < B_{th}\right]

Only *active* neurons (inside the window) carry gradient. With the window the
gradient of dense BPTT and of the sparse backward of
:class:`~snntorch_sparse.SparseLinearLeaky` are the same number, so these
functions double as the ground truth for the fused layers and plug into any
snnTorch neuron::

    import snntorch as snn
    from snntorch_sparse.surrogate import sparse_fast_sigmoid
    lif = snn.Leaky(beta=0.9, spike_grad=sparse_fast_sigmoid(slope=25, bth=0.5))
"""
from __future__ import annotations

import math
from typing import Callable

import torch

__all__ = [
    "SparseSurrogate",
    "sparse_fast_sigmoid",
    "sparse_atan",
    "sparse_sigmoid",
    "sparsify_surrogate",
    "DEFAULT_SLOPE",
    "DEFAULT_BTH",
]

#: Default steepness of :func:`sparse_fast_sigmoid` (the reference paper's k = 100).
DEFAULT_SLOPE = 100.0
#: Default half-width of the active window, in membrane units (0.2 θ for θ = 1).
DEFAULT_BTH = 0.2


class _SparseSpike(torch.autograd.Function):
    """Heaviside forward, windowed surrogate backward."""

    @staticmethod
    def forward(ctx, mem_shift, surrogate):
        ctx.save_for_backward(mem_shift)
        ctx.surrogate = surrogate
        return (mem_shift > 0).to(mem_shift.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (mem_shift,) = ctx.saved_tensors
        return grad_output * ctx.surrogate.grad(mem_shift), None


class SparseSurrogate:
    r"""A surrogate derivative :math:`\sigma'` restricted to :math:`|x| < B_{th}`.

    Instances are snnTorch ``spike_grad`` callables: ``spk = sg(mem - threshold)``.

    Args:
        derivative: function ``x -> σ'(x)`` (elementwise, unmasked).
        bth: half-width :math:`B_{th} > 0` of the active window.
        name: short name used in ``repr``.
    """

    def __init__(self, derivative: Callable[[torch.Tensor], torch.Tensor], bth: float, name: str):
        bth = float(bth)
        if not bth > 0 or not math.isfinite(bth):
            raise ValueError(f"bth must be a finite number > 0, got {bth}")
        self.derivative = derivative
        self.bth = bth
        self.name = name

    def __call__(self, mem_shift: torch.Tensor) -> torch.Tensor:
        return _SparseSpike.apply(mem_shift, self)

    def active(self, mem_shift: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the active window :math:`|x| < B_{th}`."""
        return mem_shift.abs() < self.bth

    def grad(self, mem_shift: torch.Tensor) -> torch.Tensor:
        """Windowed derivative :math:`\\sigma'(x)\\,[|x| < B_{th}]` (dense)."""
        d = self.derivative(mem_shift)
        return torch.where(self.active(mem_shift), d, torch.zeros_like(d))

    def __repr__(self) -> str:
        return f"{self.name}(bth={self.bth})"


def sparse_fast_sigmoid(slope: float = DEFAULT_SLOPE, bth: float = DEFAULT_BTH) -> SparseSurrogate:
    r"""Sparse form of :func:`snntorch.surrogate.fast_sigmoid`.

    .. math:: \sigma'(x) = \frac{1}{(k|x| + 1)^2}\;\mathbb{1}[|x| < B_{th}]

    Args:
        slope: steepness :math:`k` (snnTorch's default is 25; the sparse-gradient
            paper used 100).
        bth: half-width of the active window :math:`B_{th}`.
    """
    slope = _positive("slope", slope)

    def derivative(x):
        return 1.0 / (slope * x.abs() + 1.0) ** 2

    sg = SparseSurrogate(derivative, bth, "sparse_fast_sigmoid")
    sg.slope = slope
    return sg


def sparse_atan(alpha: float = 2.0, bth: float = DEFAULT_BTH) -> SparseSurrogate:
    r"""Sparse form of :func:`snntorch.surrogate.atan` (snnTorch's default surrogate).

    .. math:: \sigma'(x) = \frac{\alpha/2}{1 + (\tfrac{\pi}{2}\alpha x)^2}\;\mathbb{1}[|x| < B_{th}]
    """
    alpha = _positive("alpha", alpha)

    def derivative(x):
        return (alpha / 2) / (1 + (math.pi / 2 * alpha * x) ** 2)

    sg = SparseSurrogate(derivative, bth, "sparse_atan")
    sg.alpha = alpha
    return sg


def sparse_sigmoid(slope: float = 25.0, bth: float = DEFAULT_BTH) -> SparseSurrogate:
    r"""Sparse form of :func:`snntorch.surrogate.sigmoid`.

    .. math:: \sigma'(x) = \frac{k e^{-kx}}{(e^{-kx} + 1)^2}\;\mathbb{1}[|x| < B_{th}]
    """
    slope = _positive("slope", slope)

    def derivative(x):
        e = torch.exp(-slope * x)
        return slope * e / (e + 1) ** 2

    sg = SparseSurrogate(derivative, bth, "sparse_sigmoid")
    sg.slope = slope
    return sg


def sparsify_surrogate(spike_grad: Callable[[torch.Tensor], torch.Tensor],
                       bth: float = DEFAULT_BTH) -> SparseSurrogate:
    """Turn any snnTorch ``spike_grad`` (e.g. ``surrogate.triangular()``) into a sparse one.

    The derivative is taken from ``spike_grad``'s own backward by autograd, so
    every snnTorch surrogate (and any user-written one) works unchanged.
    """
    if isinstance(spike_grad, SparseSurrogate):
        return SparseSurrogate(spike_grad.derivative, bth, spike_grad.name)
    if not callable(spike_grad):
        raise TypeError(f"spike_grad must be callable, got {type(spike_grad).__name__}")

    def derivative(x):
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            (d,) = torch.autograd.grad(spike_grad(xr).sum(), xr)
        return d

    name = getattr(spike_grad, "__name__", None) or type(spike_grad).__name__
    return SparseSurrogate(derivative, bth, f"sparse[{name}]")


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value
