r"""Auxiliary classifier heads and hard-class detectors (HCDs).

Contract: a head maps a block's output spikes ``[T, B, ...]`` to class logits
``[B, C]`` (or to a sequence ``[T, B, C]``, e.g. for snnTorch's rate losses;
predictions then use the sum over time). The defaults read out the firing
rate :math:`r = \frac{1}{T}\sum_t S[t]` of every output neuron:

.. math:: \text{logits} = W r + b

An HCD has the same form with two outputs, ``[easy, hard]``.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["RateHead", "HardClassDetector", "TimeMean", "logits_of"]


class RateHead(nn.Module):
    """Linear read-out of time-averaged firing rates (flattened)."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        return self.fc(spikes.mean(0).flatten(1))


class HardClassDetector(RateHead):
    """2-way classifier on firing rates: output ``[B, 2]`` logits of (easy, hard)."""

    def __init__(self, in_features: int):
        super().__init__(in_features, 2)


class TimeMean(nn.Module):
    """Parameter-free head for a block that already ends in a class layer: mean over time."""

    def forward(self, out: torch.Tensor) -> torch.Tensor:
        return out.mean(0).flatten(1)


def logits_of(head_out: torch.Tensor) -> torch.Tensor:
    """Class scores ``[B, C]`` from a head's output (summing a ``[T, B, C]`` sequence)."""
    return head_out.sum(0) if head_out.dim() == 3 else head_out
