"""Cutting an ``nn.Sequential`` SNN into blocks with heads and hard-class detectors."""
from __future__ import annotations

import warnings
from typing import Callable, FrozenSet, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .heads import HardClassDetector, RateHead, TimeMean
from .sequence import check_time_major, run_sequence

__all__ = ["BlocNet", "split"]


class BlocNet(nn.Module):
    """Blocks of a spiking network, each with an auxiliary head and (but the last) an HCD.

    ``forward(x)`` chains the blocks and returns the last block's output: the
    original model's function. ``hard_classes[k]`` is the set of classes
    block ``k`` is trained on (all classes for block 0), filled by
    :class:`~snntorch_sparse.bloc.trainer.BlocTrainer`; early-exit inference
    combines the heads through it.

    The hard sets are stored in the persistent buffer ``hard_mask`` (bool
    ``[n_blocks, num_classes]``), so that ``state_dict()`` / ``load_state_dict()``
    carry the routing with the weights: a trained net saved as a state dict and
    loaded into a fresh :func:`split` predicts exactly as before.
    ``hard_classes`` is a read-only view of that mask (a tuple of frozensets);
    assign a whole list (``net.hard_classes = [...]``) or call
    :meth:`set_hard_classes` to change it.
    """

    def __init__(self, blocks: Sequence[nn.Module], heads: Sequence[nn.Module], hcds: Sequence[nn.Module],
                 num_classes: int):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.heads = nn.ModuleList(heads)
        self.hcds = nn.ModuleList(hcds)
        self.num_classes = num_classes
        mask = torch.zeros(len(self.blocks), num_classes, dtype=torch.bool)
        mask[0] = True
        self.register_buffer("hard_mask", mask)

    @property
    def hard_classes(self) -> Tuple[FrozenSet[int], ...]:
        """Hard classes per block (read-only view of the ``hard_mask`` buffer)."""
        rows = self.hard_mask.cpu().tolist()
        return tuple(frozenset(c for c, hard in enumerate(row) if hard) for row in rows)

    @hard_classes.setter
    def hard_classes(self, sets: Sequence[Iterable[int]]) -> None:
        sets = list(sets)
        if len(sets) != len(self.blocks):
            raise ValueError(f"hard_classes needs one set per block ({len(self.blocks)}), got {len(sets)}")
        for k, classes in enumerate(sets):
            self.set_hard_classes(k, classes)

    def set_hard_classes(self, k: int, classes: Iterable[int]) -> None:
        """Set the hard classes of block ``k`` (class indices in ``0 .. num_classes - 1``)."""
        classes = sorted(int(c) for c in classes)
        if classes and (classes[0] < 0 or classes[-1] >= self.num_classes):
            raise ValueError(f"hard classes must lie in 0..{self.num_classes - 1}, got {classes}")
        row = torch.zeros(self.num_classes, dtype=torch.bool, device=self.hard_mask.device)
        row[classes] = True
        self.hard_mask[k] = row

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # state dicts saved before the routing became part of the state have no
        # hard_mask: load their weights and say that the hard sets were not restored
        key = prefix + "hard_mask"
        if key not in state_dict:
            warnings.warn("BlocNet state dict without 'hard_mask' (saved by an older snntorch-sparse): "
                          "weights loaded, hard_classes NOT restored; set net.hard_classes from the "
                          "trainer checkpoint's 'hard_classes' before predicting", UserWarning, stacklevel=2)
            state_dict = {**state_dict, key: self.hard_mask}
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

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
    """Output and per-sample feature count of ``block`` on ``x``, without side effects.

    Shape inference must not touch the model: in train mode the sample would
    update BatchNorm running statistics (and draw dropout masks), so the block
    runs in eval mode under ``no_grad`` and every module's mode is restored.
    """
    modes = [(m, m.training) for m in block.modules()]
    block.eval()
    try:
        with torch.no_grad():
            out = run_sequence(block, x)
    finally:
        for m, training in modes:
            m.train(training)
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
    if isinstance(boundaries, (int, torch.Tensor)) or not isinstance(boundaries, Iterable):
        raise TypeError(f"boundaries must be a sequence of layer indices, e.g. [{boundaries!r}] for one cut, "
                        f"got {type(boundaries).__name__} {boundaries!r}")
    bounds = list(boundaries)
    if any(isinstance(b, bool) or not isinstance(b, int) for b in bounds):
        raise TypeError(f"boundaries must be ints, got {bounds}")
    if bounds != sorted(set(bounds)):
        raise ValueError(f"boundaries must be strictly increasing, got {bounds}")
    if bounds and (bounds[0] < 1 or bounds[-1] > len(model) - 1):
        raise ValueError(f"boundaries must lie in 1..{len(model) - 1} for a model of {len(model)} layers, "
                         f"got {bounds}")
    check_time_major(sample, "sample")
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
