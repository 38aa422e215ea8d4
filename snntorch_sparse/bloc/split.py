"""Cutting an ``nn.Sequential`` SNN into blocks with heads and hard-class detectors."""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import torch
from torch import nn

from .heads import HardClassDetector, RateHead, TimeMean
from .sequence import run_sequence

__all__ = ["BlocNet", "split"]


class BlocNet(nn.Module):
    """Blocks of a spiking network, each with an auxiliary head and (but the last) an HCD.

    ``forward(x)`` chains the blocks and returns the last block's output: the
    original model's function. ``hard_classes[k]`` is the set of classes
    block ``k`` is trained on (all classes for block 0), filled by
    :class:`~snntorch_sparse.bloc.trainer.BlocTrainer`.
    """

    def __init__(self, blocks: Sequence[nn.Module], heads: Sequence[nn.Module], hcds: Sequence[nn.Module],
                 num_classes: int):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.heads = nn.ModuleList(heads)
        self.hcds = nn.ModuleList(hcds)
        self.num_classes = num_classes
        self.hard_classes: List[set] = [set(range(num_classes))] + [set() for _ in blocks[1:]]

    def __len__(self) -> int:
        return len(self.blocks)

    def run_block(self, k: int, x: torch.Tensor) -> torch.Tensor:
        return run_sequence(self.blocks[k], x)

    def forward_blocks(self, x: torch.Tensor) -> List[torch.Tensor]:
        outs = []
        for k in range(len(self.blocks)):
            x = self.run_block(k, x)
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_blocks(x)[-1]

    def overhead_parameters(self) -> dict:
        """Parameters of the blocks vs those added by heads and HCDs."""
        count = lambda ms: sum(p.numel() for m in ms for p in m.parameters())  # noqa: E731
        base, heads, hcds = count(self.blocks), count(self.heads), count(self.hcds)
        return {"blocks": base, "heads": heads, "hcds": hcds, "overhead": (heads + hcds) / max(base, 1)}


def _out_features(block: nn.Module, x: torch.Tensor) -> tuple:
    with torch.no_grad():
        out = run_sequence(block, x)
    return out, out[0, 0].numel()


def split(model: nn.Sequential, boundaries: Sequence[int], num_classes: int, sample: torch.Tensor,
          head: Optional[Callable[[int, int], nn.Module]] = None,
          hcd: Optional[Callable[[int], nn.Module]] = None) -> BlocNet:
    """Cut ``model`` before each index in ``boundaries`` and attach heads and HCDs.

    Args:
        model: an ``nn.Sequential`` of snnTorch layers (per-step neurons with
            ``init_hidden=True``) or multi-step layers.
        boundaries: strictly increasing indices in ``1 .. len(model) - 1``;
            ``[3, 5]`` gives blocks ``model[:3]``, ``model[3:5]``, ``model[5:]``.
        num_classes: number of classes ``C``.
        sample: one input batch ``[T, B, ...]``, used to size heads and HCDs.
        head: factory ``head(in_features, num_classes)`` used for every block.
            By default :class:`RateHead`, except that the last block keeps the
            model's own read-out (:class:`TimeMean`) when it ends in ``num_classes`` outputs.
        hcd: factory ``hcd(in_features)`` (default :class:`HardClassDetector`).

    The blocks share the model's modules (no copy): training them trains the model.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, got {type(model).__name__}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    bounds = list(boundaries)
    if any(not isinstance(b, int) for b in bounds):
        raise TypeError(f"boundaries must be ints, got {bounds}")
    if bounds != sorted(set(bounds)):
        raise ValueError(f"boundaries must be strictly increasing, got {bounds}")
    if bounds and (bounds[0] < 1 or bounds[-1] > len(model) - 1):
        raise ValueError(f"boundaries must lie in 1..{len(model) - 1} for a model of {len(model)} layers, "
                         f"got {bounds}")
    if not isinstance(sample, torch.Tensor) or sample.dim() < 3:
        raise ValueError("sample must be a time-major batch [T, B, ...] of the model's input")
    custom_head = head is not None
    head = head or RateHead
    hcd = hcd or HardClassDetector
    edges = [0, *bounds, len(model)]
    blocks = [model[a:b] for a, b in zip(edges[:-1], edges[1:])]
    heads, hcds = [], []
    x = sample
    for k, block in enumerate(blocks):
        x, feats = _out_features(block, x)
        last = k == len(blocks) - 1
        # heads and HCDs follow the blocks' output dtype and device
        own_readout = last and feats == num_classes and not custom_head
        heads.append((TimeMean() if own_readout else head(feats, num_classes))
                     .to(dtype=x.dtype, device=x.device))
        if not last:
            hcds.append(hcd(feats).to(dtype=x.dtype, device=x.device))
    return BlocNet(blocks, heads, hcds, num_classes)
