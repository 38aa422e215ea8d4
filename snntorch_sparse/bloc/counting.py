r"""Counting synaptic operations and MACs of linear and convolutional layers.

A dense implementation costs one MAC per (output, connected input) pair; an
event-driven accelerator touches only the synapses of spiking (non-zero)
inputs, one synaptic operation each:

* linear layer (``nn.Linear``, :class:`~snntorch_sparse.layers.SparseLinearLeaky`):
  :math:`\mathrm{nnz} \cdot F_\text{out}` synaptic operations and
  :math:`\mathrm{numel} \cdot F_\text{out}` MACs;
* convolution (``nn.Conv1d``, ``nn.Conv2d``, ``nn.Conv3d``, any ``groups``, stride,
  padding or dilation): an output connects to :math:`C_\text{in} / g \cdot \prod k`
  inputs (:math:`g` groups, kernel volume :math:`\prod k`), so the MACs are
  :math:`\mathrm{numel}(\text{output}) \cdot C_\text{in} / g \cdot \prod k`; the
  synaptic operations are the connections that start at a non-zero input,
  counted exactly (an input spike reaches :math:`C_\text{out} / g \cdot \prod k`
  outputs inside the feature map, fewer at its borders and with strides).

Transposed convolutions are not counted.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["OpCounter", "count_ops"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _counted_types() -> tuple:
    from ..layers import SparseLinearLeaky

    return (nn.Linear, SparseLinearLeaky, *_CONVS)


@torch.no_grad()
def _ops(m: nn.Module, x: torch.Tensor, out) -> tuple:
    """``(synops, macs)`` of one call of ``m`` on input ``x`` giving ``out``."""
    if isinstance(m, _CONVS):
        kernel_volume = m.weight[0, 0].numel()
        out = out[0] if isinstance(out, tuple) else out
        macs = float(out.numel()) * (m.in_channels // m.groups) * kernel_volume
        # every output sums its receptive field: the same convolution of the
        # non-zero indicator with an all-ones kernel counts, per output, the
        # connections that carry a spike (float64: exact for any realistic count)
        nz = (x != 0).to(torch.float64)
        synops = float(m._conv_forward(nz, torch.ones_like(m.weight, dtype=torch.float64), None).sum())
        return synops, macs
    f = float(m.out_features)
    return float((x != 0).sum()) * f, float(x.numel()) * f


class OpCounter:
    """Totals of synaptic operations and MACs seen by the hooks."""

    def __init__(self):
        self.synops = 0.0
        self.macs = 0.0


@contextmanager
def count_ops(*modules: nn.Module):
    """``with count_ops(net) as c: net(x)``: ``c.synops``, ``c.macs`` summed over calls."""
    counter = OpCounter()
    handles = []
    seen = set()
    types = _counted_types()

    def hook(m, inputs, out):
        synops, macs = _ops(m, inputs[0], out)
        counter.synops += synops
        counter.macs += macs

    for root in modules:
        for m in root.modules():
            if id(m) in seen or not isinstance(m, types):
                continue
            seen.add(id(m))
            handles.append(m.register_forward_hook(hook))
    try:
        yield counter
    finally:
        for h in handles:
            h.remove()
