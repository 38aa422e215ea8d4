"""BlocTrain: block-wise training with local losses and hard-class selection.

For blocks ``k = 0, 1, ...``:

1. train block ``k`` and its head on the local loss ``loss_fn(head_k(block_k(z_k)), y)``,
   where ``z_k`` is the (frozen, cached) output of the blocks before ``k``, using
   only samples of the current hard classes :math:`H_k` (all classes for ``k = 0``);
2. freeze block ``k``; measure the head's per-class accuracy on the validation
   split; classes with accuracy ``>= easy_threshold`` leave the hard set:
   :math:`H_{k+1} = \\{c \\in H_k : \\mathrm{acc}_k(c) < \\tau_k\\}`, with
   :math:`\\tau_k` fixed (``easy_threshold=0.95``) or set from the distribution of
   the validation accuracies (``easy_threshold="auto"``: their ``easy_quantile``
   quantile over :math:`H_k`);
3. train HCD ``k`` to predict "label in :math:`H_{k+1}`" from block ``k``'s output.

Only one block's activations are kept for a backward pass at a time: training
memory is one block's, reported against end-to-end training of the whole network.
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

try:  # notebook progress bars need ipywidgets; without it tqdm.auto warns "IProgress not found" per bar
    import ipywidgets  # noqa: F401
    from tqdm.auto import tqdm
except ImportError:
    from tqdm import tqdm

from ..memory import saved_tensor_bytes
from .heads import LeakyReadout, logits_of
from .sequence import check_time_major
from .split import BlocNet

__all__ = ["BlocTrainer"]


def _check_labels(y: torch.Tensor, num_classes: int, name: str) -> torch.Tensor:
    """Class indices ``y [N]`` as int64 (what ``cross_entropy`` takes), or a clear error.

    Any integer dtype is accepted (int32 labels are common from numpy); bool and
    floating-point labels are refused rather than guessed at.
    """
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of class indices, got {type(y).__name__}")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex() or y.dim() != 1:
        raise TypeError(f"{name} must be a 1-D integer tensor of class indices (any integer dtype; "
                        f"not bool or float), got {y.dtype} {tuple(y.shape)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"{name} holds labels outside 0..{num_classes - 1} "
                         f"(min {int(y.min())}, max {int(y.max())})")
    return y.long()


def _check_split(data, num_classes: int, name: str):
    """``(x [T, N, ...], y [N])`` of ``fit``, checked; labels as int64."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{name} must be a pair (x [T, N, ...], y [N]), got {type(data).__name__}")
    x, y = data
    y = _check_labels(y, num_classes, f"{name} labels")
    check_time_major(x, f"{name} x", batch=len(y), batch_name=f"{name} labels")
    if not len(y):
        raise ValueError(f"{name} set is empty (x shape {tuple(x.shape)}); it needs at least one sample")
    return x, y


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _average_gradients(params) -> None:
    """Data-parallel training: average gradients over processes (what DDP does)."""
    if not _distributed():
        return
    world = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world


class BlocTrainer:
    """Train a :class:`BlocNet` block by block.

    Args:
        net: from :func:`~snntorch_sparse.bloc.split`.
        loss_fn: ``loss_fn(head_output, targets)``; default cross-entropy on logits
            (with a :class:`~snntorch_sparse.bloc.heads.LeakyReadout` head computed by
            its ``cross_entropy``, which keeps no copy of the head's input for
            backward; see :meth:`local_loss`).
            snnTorch losses (``snntorch.functional.ce_rate_loss()``) work with heads
            that return a ``[T, B, C]`` sequence.
        optimizer: factory ``optimizer(params)``; default Adam, lr 2e-3.
        epochs: epochs per block; ``hcd_epochs``: epochs per HCD.
        easy_threshold: per-class validation accuracy in [0, 1] at or above which a
            class is easy for the block, or ``"auto"``: per block, the ``easy_quantile``
            quantile of the validation accuracies of the block's hard classes,
            :math:`\\tau_k = Q_q(\\{\\mathrm{acc}_k(c) : c \\in H_k\\})`, so that the
            best-read ``1 - q`` of them become easy whatever the task's accuracy
            level (a fixed 0.95 marks almost nothing easy on spoken digits). The
            threshold used is ``history[k]["easy_threshold"]``.
            ``None`` (default): ``"auto"`` for a net whose heads read time
            (``net.readout`` other than ``"rate"``; chosen on spoken digits, see
            ``benchmarks/results/bloc_fsdd_sweep.json``), else 0.9.
        easy_quantile: ``q`` in [0, 1] of ``easy_threshold="auto"``.
        batch_size: mini-batch size (an int >= 1); ``device``: where to train.
        checkpoint_dir: save after every block (``bloc_k.pt``); ``fit(resume=...)`` continues.
        progress: show progress bars.
        seed: seed of the trainer's own shuffling generator (checkpointed with the
            weights, so a resumed run shuffles as the uninterrupted one would).

    With a head returning ``[B, C]`` logits, block ``k > 0`` trains on logits masked to
    its hard classes (``-1e9`` added to the others), so ``loss_fn`` must be a
    softmax-type loss there. Heads returning a ``[T, B, C]`` sequence are not masked:
    snnTorch's losses take spikes or membranes, where an additive mask would break
    MSE-type losses; those heads see only hard-class samples, and per-class accuracy
    and inference restrict their scores to the hard classes all the same.

    Distributed data-parallel training (``torchrun``, ``torch.distributed`` initialised):
    give every process its shard of the training set (equal sizes) and the whole
    validation set; gradients are averaged over processes after every backward, as
    ``DistributedDataParallel`` does, so all processes take the same easy/hard
    decisions and end with the same weights. Only rank 0 writes checkpoints.
    """

    def __init__(self, net: BlocNet, loss_fn: Optional[Callable] = None, optimizer: Optional[Callable] = None,
                 epochs: int = 10, hcd_epochs: int = 5, easy_threshold=None, batch_size: int = 64,
                 device=None, checkpoint_dir=None, progress: bool = True, seed: int = 0,
                 easy_quantile: float = 0.5):
        if not isinstance(net, BlocNet):
            raise TypeError(f"net must be a BlocNet (see bloc.split), got {type(net).__name__}")
        if easy_threshold is None:
            easy_threshold = "auto" if getattr(net, "readout", None) not in (None, "rate") else 0.9

        def unit(v):
            try:
                return not isinstance(v, (bool, str)) and 0.0 <= float(v) <= 1.0
            except (TypeError, ValueError):
                return False

        if not (easy_threshold == "auto" if isinstance(easy_threshold, str) else unit(easy_threshold)):
            raise ValueError(f"easy_threshold must be a number in [0, 1] or 'auto', got {easy_threshold!r}")
        if not unit(easy_quantile):
            raise ValueError(f"easy_quantile must be a number in [0, 1], got {easy_quantile!r}")
        for name, value, low in (("epochs", epochs, 1), ("hcd_epochs", hcd_epochs, 0), ("batch_size", batch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        self.net = net
        # with the default loss, LeakyReadout heads take the fused cross-entropy (LeakyReadout.cross_entropy)
        self._default_loss = loss_fn is None
        self.loss_fn = loss_fn or (lambda out, y: F.cross_entropy(logits_of(out), y))
        self.optimizer = optimizer or (lambda params: torch.optim.Adam(params, lr=2e-3))
        self.epochs, self.hcd_epochs = epochs, hcd_epochs
        self.easy_threshold = easy_threshold if easy_threshold == "auto" else float(easy_threshold)
        self.easy_quantile = float(easy_quantile)
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.progress = progress
        self.seed = seed
        self.history: list = []

    # ------------------------------------------------------------------ helpers
    def _batches(self, n: int, shuffle: bool, gen=None):
        order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
        for i in range(0, n, self.batch_size):
            yield order[i:i + self.batch_size]

    def _train_module(self, modules, forward, x, y, epochs, desc, gen):
        params = [p for m in modules for p in m.parameters() if p.requires_grad]
        if not params:
            # e.g. a block that is only a neuron, with the parameter-free TimeMean head
            warnings.warn(f"BlocTrain: nothing to train in {desc} (no trainable parameters); "
                          "it is used as it is", stacklevel=3)
            return
        opt = self.optimizer(params)
        for m in modules:
            m.train()
        for _ in tqdm(range(epochs), desc=desc, leave=False, disable=not self.progress):
            for idx in self._batches(len(y), True, gen):
                xb, yb = x[:, idx].to(self.device), y[idx].to(self.device)
                loss = forward(xb, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                _average_gradients(params)
                opt.step()

    @torch.no_grad()
    def _outputs(self, k, x):
        self.net.blocks[k].eval()
        return torch.cat([self.net.run_block(k, x[:, i:i + 256].to(self.device)).cpu()
                          for i in range(0, x.shape[1], 256)], 1)

    @torch.no_grad()
    def per_class_accuracy(self, k: int, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Accuracy of head ``k`` per class on block-``k`` outputs ``z`` (NaN: class absent)."""
        self.net.heads[k].eval()
        mask = self._class_mask(self.net.hard_classes[k])
        mask = 0.0 if mask is None else mask
        pred = torch.cat([(logits_of(self.net.heads[k](z[:, i:i + 256].to(self.device))) + mask).argmax(1).cpu()
                          for i in range(0, z.shape[1], 256)])
        acc = torch.full((self.net.num_classes,), float("nan"))
        for c in range(self.net.num_classes):
            m = y == c
            if m.any():
                acc[c] = (pred[m] == c).float().mean()
        return acc

    def local_loss(self, head: nn.Module, z: torch.Tensor, y: torch.Tensor, mask=None) -> torch.Tensor:
        """The loss of ``head`` on block outputs ``z``: ``loss_fn(head(z) + mask, y)``.

        ``mask`` (additive, ``[num_classes]``) applies to ``[B, C]`` logits only (see the
        class docstring). With the default loss (cross-entropy) a
        :class:`~snntorch_sparse.bloc.heads.LeakyReadout` head computes it with
        :meth:`~snntorch_sparse.bloc.heads.LeakyReadout.cross_entropy`: same value and
        gradients, but the head's weight gradient is formed in the forward and its
        input spikes are not kept for backward. Training and
        :meth:`training_memory` both go through here.
        """
        if self._default_loss and isinstance(head, LeakyReadout):
            return head.cross_entropy(z, y, mask)
        out = head(z)
        if mask is not None and out.dim() == 2:
            out = out + mask  # the head predicts the hard classes only
        return self.loss_fn(out, y)

    def _class_mask(self, hard: set):
        """Additive logit mask: 0 on hard classes, -1e9 elsewhere (``None`` if all are hard)."""
        if len(hard) == self.net.num_classes:
            return None
        mask = torch.full((self.net.num_classes,), -1e9, device=self.device)
        mask[sorted(hard)] = 0.0
        return mask

    def threshold_for(self, acc: torch.Tensor, hard: set) -> float:
        """The easy threshold :math:`\\tau_k` for per-class accuracies ``acc`` of the classes ``hard``.

        A fixed ``easy_threshold`` is returned as it is; with ``"auto"`` it is the
        ``easy_quantile`` quantile (linear interpolation) of the accuracies of the
        hard classes present in the validation split (1.0 when none is).
        """
        if self.easy_threshold != "auto":
            return self.easy_threshold
        vals = torch.tensor([float(acc[c]) for c in sorted(hard)], dtype=torch.float64)
        vals = vals[~vals.isnan()]
        if not len(vals):
            return 1.0
        return float(torch.quantile(vals, self.easy_quantile))

    def select_hard(self, acc: torch.Tensor, hard: set) -> set:
        """Classes of ``hard`` whose accuracy is below the threshold (absent classes stay hard)."""
        tau = self.threshold_for(acc, hard)
        return {c for c in hard if not (acc[c] >= tau)}

    @staticmethod
    def hcd_labels(y: torch.Tensor, hard: set) -> torch.Tensor:
        """1 where the label is a hard class, else 0."""
        return torch.tensor([int(c) in hard for c in y.tolist()], dtype=torch.long)

    # ------------------------------------------------------------------ training
    def fit(self, train, val, resume=None) -> list:
        """Train all blocks. ``train``/``val``: ``(x [T, N, ...], y [N])`` time-major tensors.

        ``fit`` trains a net once: every block is frozen after its turn, so a
        second call would skip them all and append a duplicate history. It
        therefore raises ``RuntimeError`` on a trainer that has already fitted;
        build a fresh net (:func:`~snntorch_sparse.bloc.split`) and trainer to
        train again. ``resume``: a checkpoint ``bloc_k.pt`` of ``checkpoint_dir``;
        blocks ``0..k-1``, the hard sets, the history and the shuffling generator
        are restored, so the resumed run ends as the uninterrupted one would.
        A block whose parameters were all frozen beforehand is not trained (its
        head is), with a warning.
        """
        if self.history and resume is None:
            raise RuntimeError(f"BlocTrainer.fit was already called: blocks 0..{self.history[-1]['block']} are "
                               "trained and frozen, so fitting again would skip them; build a fresh net with "
                               "bloc.split and a new BlocTrainer to train again, or pass resume=<checkpoint> "
                               "to continue an interrupted run")
        n_cls = self.net.num_classes
        xtr, ytr = _check_split(train, n_cls, "train")
        xva, yva = _check_split(val, n_cls, "val")
        gen = torch.Generator().manual_seed(self.seed)
        net = self.net.to(self.device)
        start, hard = 0, set(range(n_cls))
        if resume is not None:
            start, hard = self._load(resume, gen)
            for k in range(start):
                xtr, xva = self._outputs(k, xtr), self._outputs(k, xva)
        for k in range(start, len(net)):
            if not hard:
                warnings.warn(f"BlocTrain: every class is easy after block {k - 1}; blocks {k}.. are "
                              "skipped (early exit always happens before them)", stacklevel=2)
                break
            net.set_hard_classes(k, hard)
            keep = torch.tensor([int(c) in hard for c in ytr.tolist()])
            xk, yk = xtr[:, keep], ytr[keep]
            block, head = net.blocks[k], net.heads[k]
            block_params = list(block.parameters())
            if block_params and not any(p.requires_grad for p in block_params):
                warnings.warn(f"BlocTrain: block {k}'s parameters are all frozen (requires_grad=False); "
                              "only its head is trained", stacklevel=2)

            mask = self._class_mask(hard)

            def step(xb, yb, block=block, head=head, k=k, mask=mask):
                return self.local_loss(head, net.run_block(k, xb), yb, mask)

            self._train_module([block, head], step, xk, yk, self.epochs, f"block {k}", gen)
            for p in block.parameters():  # frozen from now on
                p.requires_grad_(False)
            ztr, zva = self._outputs(k, xtr), self._outputs(k, xva)
            acc = self.per_class_accuracy(k, zva, yva)
            new_hard = self.select_hard(acc, hard)
            record = {"block": k, "trained_on": int(keep.sum()), "hard_in": sorted(hard),
                      "easy_threshold": round(self.threshold_for(acc, hard), 4),
                      "per_class_acc": [round(float(a), 4) for a in acc], "hard_out": sorted(new_hard)}
            if k < len(net) - 1 and self.hcd_epochs:
                hcd = net.hcds[k]
                lab = self.hcd_labels(ytr, new_hard)
                sub = torch.tensor([int(c) in hard for c in ytr.tolist()])  # samples that reach block k

                def hcd_step(zb, lb, hcd=hcd):
                    if isinstance(hcd, LeakyReadout):
                        return hcd.cross_entropy(zb, lb)  # = F.cross_entropy(hcd(zb), lb)
                    return F.cross_entropy(hcd(zb), lb)

                self._train_module([hcd], hcd_step, ztr[:, sub], lab[sub], self.hcd_epochs, f"HCD {k}", gen)
            self.history.append(record)
            hard = new_hard
            xtr, xva = ztr, zva
            if self.checkpoint_dir and (not _distributed() or dist.get_rank() == 0):
                self._save(k + 1, hard, gen)
        return self.history

    def _save(self, done: int, hard: set, gen: torch.Generator) -> Path:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        path = self.checkpoint_dir / f"bloc_{done}.pt"
        torch.save({"state_dict": self.net.state_dict(), "done": done, "hard": sorted(hard),
                    "hard_classes": [sorted(h) for h in self.net.hard_classes], "history": self.history,
                    "generator": gen.get_state()}, path)
        return path

    def _load(self, path, gen: torch.Generator):
        ck = torch.load(path, weights_only=False)
        with warnings.catch_warnings():
            # checkpoints older than BlocNet.hard_mask: the hard sets come from "hard_classes" below
            warnings.filterwarnings("ignore", message="BlocNet state dict without 'hard_mask'")
            self.net.load_state_dict(ck["state_dict"])
        self.net.hard_classes = ck["hard_classes"]
        self.history = list(ck["history"])
        if "generator" in ck:
            gen.set_state(ck["generator"])
        else:
            warnings.warn(f"checkpoint {path} has no shuffling-generator state (older snntorch-sparse): "
                          "the resumed run shuffles differently from an uninterrupted one", stacklevel=3)
        for k in range(ck["done"]):
            for p in self.net.blocks[k].parameters():
                p.requires_grad_(False)
        return ck["done"], set(ck["hard"])

    # ------------------------------------------------------------------ memory
    def training_memory(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        """Bytes saved for backward by one training step, block-wise (max over blocks) vs end-to-end.

        End-to-end runs all blocks with autograd and the last head's loss; block-wise
        runs earlier blocks under ``no_grad`` and keeps block ``k``'s activations only.
        Both take their loss from :meth:`local_loss`, as training does.
        On CUDA the peak allocated memory of both is reported too.
        """
        net = self.net.to(self.device)
        # a batch of its own (a slice of a dataset tensor would keep the whole dataset "saved")
        y = _check_labels(y, net.num_classes, "y")
        check_time_major(x, "x", batch=len(y), batch_name="y")
        x, y = x.to(self.device).clone(), y.to(self.device).clone()
        flags = [p.requires_grad for p in net.parameters()]
        for p in net.parameters():
            p.requires_grad_(True)
        try:
            e2e = self._measure(lambda: self.local_loss(net.heads[-1], net(x), y))
            per_block = []
            for k in range(len(net)):
                with torch.no_grad():
                    z = x
                    for j in range(k):
                        z = net.run_block(j, z)
                per_block.append(self._measure(lambda: self.local_loss(net.heads[k], net.run_block(k, z), y)))
        finally:
            for p, f in zip(net.parameters(), flags):
                p.requires_grad_(f)
        res = {"end_to_end_saved_bytes": e2e["saved"], "blockwise_saved_bytes": max(b["saved"] for b in per_block),
               "per_block_saved_bytes": [b["saved"] for b in per_block]}
        res["saved_ratio"] = res["end_to_end_saved_bytes"] / max(res["blockwise_saved_bytes"], 1)
        if self.device.type == "cuda":
            res["end_to_end_peak_bytes"] = e2e["peak"]
            res["blockwise_peak_bytes"] = max(b["peak"] for b in per_block)
        return res

    def _measure(self, loss_fn) -> dict:
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        with saved_tensor_bytes(self.net) as c:
            loss = loss_fn()
        if loss.requires_grad:  # a block without parameters has nothing to train
            loss.backward()
        self.net.zero_grad(set_to_none=True)
        peak = (torch.cuda.max_memory_allocated() - base) if cuda else None
        return {"saved": c.bytes, "peak": peak}
