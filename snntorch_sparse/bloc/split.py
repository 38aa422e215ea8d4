"""Cutting an ``nn.Sequential`` SNN into blocks with heads and hard-class detectors."""
from __future__ import annotations

import warnings
from typing import Callable, FrozenSet, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .heads import TimeMean, has_temporal_structure, readout_factories
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
        self.readout = None  # the readout kind chosen by split ("rate", "leaky-max", ...)
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
          hcd: Optional[Callable[[int], nn.Module]] = None, readout: str = "auto") -> BlocNet:
    """Cut ``model`` before each index in ``boundaries`` and attach heads and HCDs.

    Args:
        model: an ``nn.Sequential`` of snnTorch layers (per-step neurons with
            ``init_hidden=True``) or multi-step layers.
        boundaries: strictly increasing indices in ``1 .. len(model) - 1``;
            ``[3, 5]`` gives blocks ``model[:3]``, ``model[3:5]``, ``model[5:]``.
        num_classes: number of classes ``C``.
        sample: one input batch ``[T, B, ...]``, used to size heads and HCDs.
        head: factory ``head(in_features, num_classes)`` used for every block
            (default: the ``readout`` kind's head), except that without it the last
            block keeps the model's own read-out when it ends in ``num_classes`` outputs:
            :class:`~snntorch_sparse.bloc.heads.TimeMean` of spikes, or of a
            membrane with ``readout="rate"``; the max (:class:`~snntorch_sparse.bloc.heads.TimeMax`)
            or last step (:class:`~snntorch_sparse.bloc.heads.TimeLast`) of a
            non-spiking read-out's membrane with the time-reading kinds.
        hcd: factory ``hcd(in_features)`` (default: the ``readout`` kind's HCD).
        readout: which heads and HCDs read the blocks (see :mod:`~snntorch_sparse.bloc.heads`):
            ``"rate"`` (linear map of firing rates), ``"leaky-max"`` / ``"leaky-last"``
            (non-spiking leaky read-out, max over time / last step), ``"recurrent"``
            (small Elman network), or ``"auto"`` (default): ``"leaky-max"`` when
            ``sample`` has temporal structure
            (:func:`~snntorch_sparse.bloc.heads.has_temporal_structure`: per-channel
            activity that varies over time well beyond chance, as in speech), else ``"rate"``.
            The kind chosen is ``net.readout``.

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
    if not isinstance(readout, str):
        raise TypeError(f"readout must be a string ('auto', 'rate', 'leaky-max', 'leaky-last', 'recurrent'), "
                        f"got {type(readout).__name__}")
    if readout == "auto":
        readout = "leaky-max" if has_temporal_structure(sample) else "rate"
    default_head, default_hcd, own = readout_factories(readout)
    custom_head = head is not None
    head = head or default_head
    hcd = hcd or default_hcd
    edges = [0, *bounds, len(model)]
    blocks = [model[a:b] for a, b in zip(edges[:-1], edges[1:])]
    heads, hcds = [], []
    x = sample
    for k, block in enumerate(blocks):
        x, feats = _out_features(block, x)
        last = k == len(blocks) - 1
        # heads and HCDs follow the blocks' output dtype and device
        own_readout = last and feats == num_classes and not custom_head
        if own_readout:
            # spikes are read as rates; a membrane (non-binary values) as the kind says
            spikes = bool(((x == 0) | (x == 1)).all())
            head_k = TimeMean() if spikes else own()
        else:
            head_k = head(feats, num_classes)
        heads.append(head_k.to(dtype=x.dtype, device=x.device))
        if not last:
            hcds.append(hcd(feats).to(dtype=x.dtype, device=x.device))
    net = BlocNet(blocks, heads, hcds, num_classes)
    net.readout = readout
    return net
