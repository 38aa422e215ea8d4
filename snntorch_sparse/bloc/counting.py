r"""Counting synaptic operations and MACs of linear and convolutional layers.

For a layer with fan-out :math:`F` (``out_features`` for a linear layer,
``out_channels · k_h · k_w / (s_h · s_w)`` for a convolution) an input with
:math:`\mathrm{nnz}` non-zero entries costs :math:`\mathrm{nnz} \cdot F`
synaptic operations (an event-driven accelerator touches only spiking inputs),
while a dense implementation costs :math:`\mathrm{numel} \cdot F` MACs.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["OpCounter", "count_ops"]


def _fan_out(m: nn.Module) -> float:
    from ..layers import SparseLinearLeaky

    if isinstance(m, (nn.Linear, SparseLinearLeaky)):
        return float(m.out_features)
    if isinstance(m, nn.Conv2d):
        kh, kw = m.kernel_size
        sh, sw = m.stride
        return m.out_channels * kh * kw / (sh * sw)
    return 0.0


class OpCounter:
    """Totals of synaptic operations and MACs seen by the hooks."""

    def __init__(self):
        self.synops = 0.0
        self.macs = 0.0


@contextmanager
def count_ops(*modules: nn.Module):
    """``with count_ops(net) as c: net(x)``: ``c.synops``, ``c.macs`` summed over calls."""
    from ..layers import SparseLinearLeaky

    counter = OpCounter()
    handles = []
    seen = set()

    def hook(m, inputs, _out):
        x = inputs[0]
        f = _fan_out(m)
        counter.synops += float((x != 0).sum()) * f
        counter.macs += float(x.numel()) * f

    for root in modules:
        for m in root.modules():
            if id(m) in seen or not isinstance(m, (nn.Linear, nn.Conv2d, SparseLinearLeaky)):
                continue
            seen.add(id(m))
            handles.append(m.register_forward_hook(hook))
    try:
        yield counter
    finally:
        for h in handles:
            h.remove()
