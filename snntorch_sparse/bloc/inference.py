"""Early-exit inference and its report (accuracy, exits, synaptic operations).

A sample leaves after block ``k`` when HCD ``k`` says its class is easy (its
probability of "easy", the softmax of its two logits, is at least
``exit_threshold``, 0.5 by default: the HCD's argmax) *and*,
if ``confidence`` is given, the combined posterior of heads ``0..k`` has a top
probability of at least ``confidence`` (the confidence test can only keep a
sample longer, never make it leave earlier); the last block always exits. Only
the remaining samples run the next block.
"""
from __future__ import annotations

from typing import Optional

import torch

from .counting import count_ops
from .heads import logits_of
from .sequence import check_time_major
from .split import BlocNet

__all__ = ["predict", "report", "combine"]


@torch.no_grad()
def predict(net: BlocNet, x: torch.Tensor, confidence: Optional[float] = None, exit_threshold: float = 0.5):
    """Early-exit predictions for ``x [T, B, ...]``: ``(pred [B], exit_block [B])``.

    ``exit_threshold`` in [0, 1]: a sample may leave after block ``k`` when HCD
    ``k`` gives "easy" a probability of at least this (higher: fewer, safer exits).
    """
    check_time_major(x, "x")
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence must be in [0, 1], got {confidence}")
    _check_unit(exit_threshold, "exit_threshold")
    net.eval()
    hard = net.hard_classes
    B = x.shape[1]
    pred = torch.full((B,), -1, dtype=torch.long, device=x.device)
    exit_block = torch.full((B,), -1, dtype=torch.long, device=x.device)
    alive = torch.arange(B, device=x.device)
    z, prob = x, None
    for k in range(len(net)):
        z = net.run_block(k, z)
        prob = combine(prob, logits_of(net.heads[k](z)), hard[k], net.num_classes)
        if k == len(net) - 1:
            leave = torch.ones(len(alive), dtype=torch.bool, device=x.device)
        else:
            h = net.hcds[k](z)  # logits of (easy, hard)
            # 0.5: the argmax, exactly (ties leave)
            leave = (h.argmax(1) == 0) if exit_threshold == 0.5 else (h.softmax(1)[:, 0] >= exit_threshold)
            if confidence is not None:
                leave &= prob.max(1).values >= confidence
        pred[alive[leave]] = prob[leave].argmax(1)
        exit_block[alive[leave]] = k
        alive, z, prob = alive[~leave], z[:, ~leave], prob[~leave]
        if not len(alive):
            break
    return pred, exit_block


def _check_unit(v, name: str) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {v!r}")


def combine(prob: Optional[torch.Tensor], logits: torch.Tensor, hard: set, num_classes: int) -> torch.Tensor:
    r"""Hierarchical class posterior after one more head.

    Head ``k`` was trained on the hard classes :math:`H_k` only, so it models
    :math:`p(c \mid x, c \in H_k)`; the mass the earlier heads gave to
    :math:`H_k` is redistributed by it:
    :math:`p_k(c) = p_{k-1}(H_k)\, q_k(c)` for :math:`c \in H_k`, :math:`p_{k-1}(c)` otherwise.
    """
    if prob is None or len(hard) == num_classes:
        return logits.softmax(1)
    idx = torch.tensor(sorted(hard), device=logits.device, dtype=torch.long)
    q = logits.index_select(1, idx).softmax(1)
    prob = prob.clone()
    mass = prob.index_select(1, idx).sum(1, keepdim=True)
    prob[:, idx] = mass * q
    return prob


def _all_blocks(net: BlocNet, x: torch.Tensor) -> torch.Tensor:
    """Every block for every sample; prediction from all heads combined (no early exit)."""
    prob, hard = None, net.hard_classes
    for k in range(len(net)):
        x = net.run_block(k, x)
        prob = combine(prob, logits_of(net.heads[k](x)), hard[k], net.num_classes)
    return prob.argmax(1)


@torch.no_grad()
def report(net: BlocNet, x: torch.Tensor, y: torch.Tensor, confidence: Optional[float] = None,
           batch_size: int = 256, exit_threshold: float = 0.5) -> dict:
    """Accuracy (early exit vs all blocks), exit fractions, synaptic ops and MACs per inference.

    "All blocks" runs every block on every sample and combines all heads
    (:func:`combine`); synaptic operations count the blocks only there and
    blocks, heads and HCDs for early exit.

    Args:
        net: a trained :class:`~snntorch_sparse.bloc.BlocNet`.
        x, y: test inputs ``[T, B, ...]`` and their ``B`` labels.
        confidence, exit_threshold: as :func:`predict`.
        batch_size: samples per forward.

    Returns:
        A dict with the keys

        * ``accuracy_early_exit``: test accuracy with early exit (:func:`predict`);
        * ``accuracy_all_blocks``: test accuracy running every block (:func:`combine`);
        * ``exit_fraction``: list, per block, of the fraction of samples that leave there;
        * ``synops_early_exit``, ``synops_all_blocks``: synaptic operations (spike
          events times fan-out) per sample, and ``synops_ratio`` (all blocks / early exit);
        * ``macs_early_exit``, ``macs_all_blocks``, ``macs_ratio``: the same for
          multiply-accumulates of dense (non-spiking) inputs;
        * ``parameters``: :meth:`~snntorch_sparse.bloc.BlocNet.overhead_parameters`,
          ``{"blocks", "heads", "hcds", "overhead"}`` (parameter counts; ``overhead`` is
          (heads + HCDs) / blocks).
    """
    check_time_major(x, "x")
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != x.shape[1]:
        raise ValueError(f"y must be a 1-D tensor of x.shape[1] = {x.shape[1]} labels, got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    if not x.shape[1]:
        raise ValueError(f"x holds no samples (shape {tuple(x.shape)}); report needs B >= 1")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    net.eval()
    n = x.shape[1]
    correct_ee = correct_all = 0
    exits = torch.zeros(len(net))
    with count_ops(net) as ee:
        preds = []
        for i in range(0, n, batch_size):
            p, e = predict(net, x[:, i:i + batch_size], confidence, exit_threshold)
            preds.append(p.cpu())
            exits += torch.bincount(e.cpu(), minlength=len(net)).float()
    pred_ee = torch.cat(preds)
    with count_ops(*net.blocks) as full:
        pred_all = torch.cat([_all_blocks(net, x[:, i:i + batch_size]).cpu() for i in range(0, n, batch_size)])
    correct_ee = (pred_ee == y.cpu()).float().mean().item()
    correct_all = (pred_all == y.cpu()).float().mean().item()
    return {"accuracy_early_exit": correct_ee, "accuracy_all_blocks": correct_all,
            "exit_fraction": (exits / n).tolist(),
            "synops_early_exit": ee.synops / n, "synops_all_blocks": full.synops / n,
            "synops_ratio": full.synops / max(ee.synops, 1.0),
            "macs_early_exit": ee.macs / n, "macs_all_blocks": full.macs / n,
            "macs_ratio": full.macs / max(ee.macs, 1.0),
            "parameters": net.overhead_parameters()}
