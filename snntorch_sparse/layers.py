r"""Fused multi-step layers: Linear + LIF over a whole sequence.

.. math::

    I[t] &= X[t] W^\top + b \\
    U[t] &= \beta U[t-1] + I[t] - \theta\,H(U[t-1] - \theta) \\
    S[t] &= H(U[t] - \theta)

One GEMM computes ``I`` for all ``T·B`` rows, one scan computes ``U`` and
``S``; the backward touches only the active set :math:`|U - \theta| < B_{th}`
and the input's spikes (see :mod:`snntorch_sparse.functional`).
"""
from __future__ import annotations

import torch
from torch import nn

from ._buffers import BufferPool
from ._validation import (as_float_param, autocast_input, check_beta, check_features, check_reset, check_same_device,
                          check_sequence, check_threshold)
from .functional import LIFConfig, sparse_lif
from .neurons import resolve_surrogate

__all__ = ["SparseLinearLeaky"]


class SparseLinearLeaky(nn.Module):
    """``nn.Linear`` followed by ``snn.Leaky``, fused over time, with a sparse backward.

    Args:
        in_features, out_features: as ``nn.Linear``.
        beta: membrane decay in [0, 1]; scalar or one per output neuron.
        threshold: firing threshold ``θ``; scalar or one per output neuron.
        spike_grad: surrogate (``None``: :func:`~snntorch_sparse.surrogate.sparse_fast_sigmoid`;
            any snnTorch surrogate is sparsified).
        bth: half-width of the active window ``B_th``.
        bias: whether the linear map has a bias.
        learn_beta, learn_threshold, reset_mechanism: as ``snn.Leaky``.
        output: if ``True`` return ``(spk, mem)``; else ``spk``.
        readout: non-spiking readout (no reset, no spikes): returns the membrane
            ``[T, B, out]``, e.g. for max-over-time logits.
        backend: ``"auto"``, ``"reference"`` or ``"compiled"``.
        event_forward: compute ``X Wᵀ`` over the input's non-zeros only
            (~1/density less arithmetic) instead of one dense GEMM. ``None``
            (default, "auto"): on the fused CPU path whenever at most a quarter
            of the input is non-zero, elsewhere (CUDA, reference backend) the
            GEMM. ``True``/``False`` force it. It equals the GEMM up to float
            rounding, which can flip a spike sitting exactly on the threshold;
            ``False`` is bit-identical to snnTorch's per-step ``nn.Linear``
            wherever the BLAS rounds rows independently of their number.

    Shape:
        input ``[T, B, in_features]`` (spikes; graded values work too),
        output ``[T, B, out_features]``.

    Example::

        layer = SparseLinearLeaky(700, 200, beta=0.9, bth=0.2)
        spk = layer(x)          # x: [T, B, 700] spikes
        print(layer.activity)   # fraction of active (t, b, n) entries
    """

    multi_step = True

    def __init__(self, in_features: int, out_features: int, beta, threshold=1.0, spike_grad=None,
                 bth=None, bias: bool = True, learn_beta: bool = False, learn_threshold: bool = False,
                 reset_mechanism: str = "subtract", output: bool = False, readout: bool = False,
                 backend=None, event_forward=None, device=None, dtype=None):
        super().__init__()
        check_features(in_features, "in_features")
        check_features(out_features, "out_features")
        check_beta(beta)
        check_threshold(threshold)
        beta, threshold = as_float_param(beta), as_float_param(threshold)  # 1 -> 1.0, as snnTorch accepts
        self.reset_mode = check_reset("none" if readout else reset_mechanism)
        self.reset_mechanism = "none" if readout else reset_mechanism
        self.fc = nn.Linear(in_features, out_features, bias=bias, device=device, dtype=dtype)
        beta = torch.as_tensor(beta, dtype=self.fc.weight.dtype, device=device).clone()
        threshold = torch.as_tensor(threshold, dtype=self.fc.weight.dtype, device=device).clone()
        if learn_beta:
            self.beta = nn.Parameter(beta)
        else:
            self.register_buffer("beta", beta)
        if learn_threshold:
            self.threshold = nn.Parameter(threshold)
        else:
            self.register_buffer("threshold", threshold)
        self.surrogate = None if readout else resolve_surrogate(spike_grad, bth)
        self.output = output
        self.readout = readout
        self.backend = backend
        self.event_forward = event_forward
        self._stats: dict = {}
        # Large CPU work buffers (spikes, input gradient) reused across steps; see _buffers.
        self._pool = BufferPool()

    @property
    def in_features(self) -> int:
        return self.fc.in_features

    @property
    def out_features(self) -> int:
        return self.fc.out_features

    @property
    def weight(self) -> nn.Parameter:
        return self.fc.weight

    @property
    def bias(self):
        return self.fc.bias

    @property
    def bth(self):
        return None if self.surrogate is None else self.surrogate.bth

    @property
    def activity(self):
        """Fraction of (t, b, n) entries in the active window in the last forward."""
        s = self._stats
        return s["active"] / s["total"] if s.get("total") else None

    def forward(self, x: torch.Tensor):
        x = autocast_input(x, self.weight)
        check_same_device(x=x, weight=self.weight, beta=self.beta, threshold=self.threshold)
        check_sequence(x, "x", min_dim=3, features=self.in_features, check_values=False)
        if x.dtype != self.weight.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the layer's weight is {self.weight.dtype}")
        cfg = LIFConfig(surrogate=self.surrogate, reset_mode=self.reset_mode,
                        readout=self.readout, backend=self.backend,
                        event_forward=self.event_forward, need_mem=self.output or self.readout,
                        pool=self._pool)
        spk, mem = sparse_lif(x, self.weight, self.bias, self.beta, self.threshold, cfg)
        self._stats = cfg.stats
        if self.readout:
            return mem
        return (spk, mem) if self.output else spk

    def extra_repr(self) -> str:
        kind = "readout" if self.readout else f"spike_grad={self.surrogate!r}"
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"reset_mechanism={self.reset_mechanism!r}, {kind}")
