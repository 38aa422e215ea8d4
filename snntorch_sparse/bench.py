"""Side-by-side training benchmark: snnTorch dense vs fused dense vs sparse.

Usage::

    python -m snntorch_sparse.bench                 # CUDA: paper configs + sweeps; CPU: quick_shd, shd, fsdd_shd
    python -m snntorch_sparse.bench --quick         # small preset for a 2-core CPU
    python -m snntorch_sparse.bench --configs shd --repeats 7

For each configuration every variant trains the *same* network (same weights)
on the *same* input batch, in one process:

* ``snntorch``        -- ``nn.Linear`` + ``snn.Leaky`` called per time step
  (snnTorch's usual loop, its dense ``fast_sigmoid`` surrogate);
* ``fused_dense``     -- our fused layer with sparsity switched off (window
  ``bth = inf``: every entry active, same kernels): separates the gain from
  fusion from the gain from sparsity;
* ``sparse_reference``, ``sparse_compiled`` -- the sparse layer on the
  pure-PyTorch and the compiled backend (dense GEMM forward, bit-exact);
* ``sparse_event``    -- compiled backend plus the event-driven forward;
* ``sparse_bf16``     -- ``sparse_compiled`` under ``torch.autocast(bfloat16)``:
  the GEMMs in bfloat16 as ``nn.Linear`` runs them, the neurons in float32
  (compared with ``sparse_compiled`` too);
* ``spikingjelly``    -- SpikingJelly's multi-step LIF, when installed.

Activity is made realistic first: the weight scale is calibrated to a target
hidden firing rate and the sparse model trains a few steps (with a
spike-count regulariser) on class-structured spike data before timing; the
trained weights are then copied into every variant. The ``fsdd_shd`` config
does the same on real recordings instead (256 spoken digits at the SHD
config's shape, :func:`fsdd_batch`).

Reported per variant: forward, backward and whole training-step time (median
of ``--repeats`` after ``--warmup``; the variants take their steps round by
round, interleaved, so that ratios compare steps taken under the same machine
conditions; CUDA timed with events after synchronisation), peak memory (CUDA: max allocated during a step above the
memory held before it; any device: bytes saved for backward, counted with
``torch.autograd.graph.saved_tensors_hooks``), and activity (fraction of
hidden (t, b, n) entries in the active window). Results go to
``benchmarks/results/<device>.json`` and ``.png``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Optional
from pathlib import Path

import snntorch as snn
import torch
import torch.nn.functional as F
from snntorch import surrogate as snn_surrogate
from torch import nn

from .layers import SparseLinearLeaky
from .memory import cpu_peak_bytes, saved_tensor_bytes
from .surrogate import sparse_fast_sigmoid

__all__ = ["BenchConfig", "PRESETS", "default_configs", "run_config", "step_peak_bytes", "main"]


@dataclass
class BenchConfig:
    """One benchmarked network: ``n_in -> hidden... -> n_out``, ``T`` steps, ``batch``."""

    name: str
    n_in: int
    hidden: tuple
    n_out: int
    T: int
    batch: int
    density: float = 0.02         # input spikes per (t, b, channel)
    beta: float = 0.9
    slope: float = 100.0
    bth: float = 0.2
    readout: bool = True          # non-spiking readout, logits = max over time
    rate: float = 0.02            # target hidden firing rate for calibration
    calib_steps: int = 10
    data: str = "synthetic"        # or "fsdd": real spoken digits, SHD-style encoding (fsdd_batch)
    variants: tuple = ("snntorch", "fused_dense", "sparse_reference", "sparse_compiled", "sparse_event",
                       "sparse_bf16", "spikingjelly")


def _paper(name, n_in, T, density):
    return BenchConfig(name, n_in, (200, 200), 20 if name == "shd" else 10, T, 256, density=density)


PRESETS = {
    # The sparse-gradient paper's settings (2 hidden layers of 200, batch 256).
    "fmnist": _paper("fmnist", 784, 100, 0.005),
    "nmnist": _paper("nmnist", 2312, 300, 0.01),
    "shd": _paper("shd", 700, 500, 0.02),
    # Open Neuromorphic SNN-library benchmark: one Linear(n, n) + LIF, batch 16, T = 500.
    "on512": BenchConfig("on512", 512, (), 512, 500, 16, density=0.1, readout=False),
    "on16384": BenchConfig("on16384", 16384, (), 16384, 500, 16, density=0.1, readout=False,
                           variants=("snntorch", "fused_dense", "sparse_compiled", "sparse_event")),
    # Small, for a 2-core CPU.
    "quick_shd": BenchConfig("quick_shd", 700, (200, 200), 20, 100, 64, density=0.02),
}
for _h in (100, 200, 500, 1000):
    PRESETS[f"shd_h{_h}"] = BenchConfig(f"shd_h{_h}", 700, (_h, _h), 20, 500, 256, density=0.02)
# The SHD config's shape on real recordings (the offline stand-in for SHD): 256 spoken
# digits, 350 mel bands x up/down = 700 inputs, 1 ms steps, ~2 % input density.
PRESETS["fsdd_shd"] = BenchConfig("fsdd_shd", 700, (200, 200), 10, 500, 256, data="fsdd")


# ----------------------------------------------------------------------------- models

class SnnTorchNet(nn.Module):
    """snnTorch's usual formulation: Linear + Leaky layers, a Python loop over time."""

    def __init__(self, cfg: BenchConfig, spike_grad):
        super().__init__()
        sizes = [cfg.n_in, *cfg.hidden, cfg.n_out]
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        n_spiking = len(sizes) - 1 - (1 if cfg.readout else 0)
        self.lifs = nn.ModuleList(snn.Leaky(beta=cfg.beta, spike_grad=spike_grad) for _ in range(n_spiking))
        if cfg.readout:
            self.lifs.append(snn.Leaky(beta=cfg.beta, spike_grad=spike_grad, reset_mechanism="none"))
        self.readout = cfg.readout

    def forward(self, x):
        mems = [lif.reset_mem() for lif in self.lifs]
        out, hidden_spikes = [], 0
        for t in range(x.shape[0]):
            h = x[t]
            for k, (fc, lif) in enumerate(zip(self.fcs, self.lifs)):
                spk, mems[k] = lif(fc(h), mems[k])
                if k < len(self.lifs) - 1:
                    hidden_spikes = hidden_spikes + spk.sum()
                h = spk
            out.append(mems[-1] if self.readout else spk)
        return torch.stack(out), hidden_spikes


class FusedNet(nn.Module):
    """The same network from :class:`SparseLinearLeaky` layers."""

    def __init__(self, cfg: BenchConfig, bth: float, backend: str, event_forward: bool = False):
        super().__init__()
        sizes = [cfg.n_in, *cfg.hidden, cfg.n_out]
        sg = sparse_fast_sigmoid(slope=cfg.slope, bth=bth)
        layers = []
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = k == len(sizes) - 2
            layers.append(SparseLinearLeaky(a, b, beta=cfg.beta, spike_grad=sg, backend=backend,
                                            readout=cfg.readout and last, event_forward=event_forward))
        self.layers = nn.ModuleList(layers)
        self.readout = cfg.readout

    def forward(self, x):
        hidden_spikes = 0
        for k, layer in enumerate(self.layers):
            x = layer(x)
            if k < len(self.layers) - 1:
                hidden_spikes = hidden_spikes + x.sum()
        return x, hidden_spikes

    def activity(self):
        spiking = [l for l in self.layers if not l.readout]
        acts = [l.activity for l in spiking if l.activity is not None]
        return sum(acts) / len(acts) if acts else None


class AutocastNet(nn.Module):
    """``net`` run under ``torch.autocast`` (bfloat16 GEMMs, neurons in float32): the mixed-precision variant."""

    def __init__(self, net: nn.Module, dtype=torch.bfloat16):
        super().__init__()
        self.net, self.dtype = net, dtype

    def forward(self, x):
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self.net(x)

    def activity(self):
        return self.net.activity()


class JellyNet(nn.Module):
    """SpikingJelly's multi-step LIF (torch backend on CPU, cupy/triton on GPU)."""

    def __init__(self, cfg: BenchConfig, device):
        super().__init__()
        from spikingjelly.activation_based import layer as sj_layer, neuron as sj_neuron, surrogate as sj_sg
        sizes = [cfg.n_in, *cfg.hidden, cfg.n_out]
        mods = []
        backend = "cupy" if device.type == "cuda" else "torch"
        for a, b in zip(sizes[:-1], sizes[1:]):
            mods.append(sj_layer.Linear(a, b, step_mode="m"))
            kw = dict(tau=1.0 / (1.0 - cfg.beta), decay_input=False, v_threshold=1.0, v_reset=None,
                      surrogate_function=sj_sg.Sigmoid(), detach_reset=True, step_mode="m")
            try:
                mods.append(sj_neuron.LIFNode(backend=backend, **kw))
            except Exception:  # older/newer API without a backend argument
                mods.append(sj_neuron.LIFNode(**kw))
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        from spikingjelly.activation_based import functional as sj_functional
        sj_functional.reset_net(self.net)
        return self.net(x), 0


# ----------------------------------------------------------------------------- data

def class_spike_data(cfg: BenchConfig, n_classes: int, device, seed: int = 0):
    """Class-structured Bernoulli spike rasters ``[T, B, n_in]`` and labels.

    Each class has its own smooth rate template over (time, channel) with mean
    ``cfg.density``, so a network can learn it and activity evolves as in training.
    """
    g = torch.Generator().manual_seed(seed)
    n_cls = max(n_classes, 1)
    t = torch.linspace(0, 1, cfg.T)[:, None]
    centers = torch.rand(n_cls, cfg.n_in, generator=g)
    widths = 0.1 + 0.2 * torch.rand(n_cls, cfg.n_in, generator=g)
    templates = torch.exp(-((t[None] - centers[:, None]) / widths[:, None]) ** 2)  # [C, T, n_in]
    templates = templates / templates.mean((1, 2), keepdim=True) * cfg.density
    labels = torch.randint(0, n_cls, (cfg.batch,), generator=g)
    probs = templates[labels].transpose(0, 1).clamp(max=1.0)  # [T, B, n_in]
    x = (torch.rand(probs.shape, generator=g) < probs).float()
    return x.to(device), labels.to(device)


def fsdd_batch(cfg: BenchConfig, device, cache_dir=None):
    """One batch of real spoken digits (FSDD training split) at the config's shape.

    ``cfg.batch`` recordings taken round-robin over the digits, encoded by
    :class:`~snntorch_sparse.data.audio.FSDD` into ``cfg.n_in / 2`` mel bands
    (up and down spikes), one step per 1 ms (hop 8 samples at 8 kHz, 128 ms
    window), ``delta = 0.5``: about 2 % of the entries are spikes, as in SHD.
    Returns ``x [T, B, n_in]`` and the digit labels. ``cache_dir`` is
    :class:`~snntorch_sparse.data.audio.FSDD`'s (encoded once, then cached).
    """
    from .data.audio import FSDD, fsdd_root

    if cfg.n_in % 2 or cfg.n_out != 10:
        raise ValueError(f"config {cfg.name!r}: FSDD data needs an even n_in (up/down bands) and n_out=10, "
                         f"got n_in={cfg.n_in}, n_out={cfg.n_out}")
    if fsdd_root() is None:
        raise RuntimeError(f"config {cfg.name!r} needs the FSDD recordings: set SNNTORCH_SPARSE_FSDD to the "
                           "folder holding recordings/*.wav (see snntorch_sparse.data.audio)")
    ds = FSDD(train=True, num_steps=cfg.T, channels=cfg.n_in // 2, delta=0.5, hop=8, nfft=1024,
              max_files=cfg.batch, cache_dir=cache_dir)
    if len(ds) < cfg.batch:
        raise ValueError(f"config {cfg.name!r}: batch {cfg.batch} is larger than the {len(ds)} FSDD training "
                         "recordings")
    return ds.data.transpose(0, 1).contiguous().to(device), ds.targets.to(device)


def loss_fn(out, labels, hidden_spikes, cfg: BenchConfig, reg: float = 0.0):
    if cfg.readout:
        loss = F.cross_entropy(out.max(0).values, labels)
    else:
        loss = out.sum() / out.shape[1]
    if reg and torch.is_tensor(hidden_spikes):
        loss = loss + reg * hidden_spikes / (out.shape[0] * out.shape[1])
    return loss


def calibrate(net: FusedNet, x, labels, cfg: BenchConfig) -> None:
    """Scale hidden weights to the target firing rate, then train a few steps."""
    with torch.no_grad():
        h = x
        for layer in net.layers:
            if layer.readout:
                break
            lo, hi = 0.01, 100.0
            w0 = layer.fc.weight.clone()
            for _ in range(20):  # bisection on log gain
                gain = math.sqrt(lo * hi)
                layer.fc.weight.copy_(w0 * gain)
                rate = layer(h).mean().item()
                lo, hi = (gain, hi) if rate < cfg.rate else (lo, gain)
            h = layer(h)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(cfg.calib_steps):
        opt.zero_grad(set_to_none=True)
        out, hs = net(x)
        loss_fn(out, labels, hs, cfg, reg=1e-3).backward()
        opt.step()


# ----------------------------------------------------------------------------- timing

class _Timer:
    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def now(self):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def elapsed(self, a, b):
        if self.cuda:
            torch.cuda.synchronize()
            return a.elapsed_time(b) / 1e3
        return b - a


def _timed_step(net: nn.Module, opt, x, labels, cfg: BenchConfig, timer: _Timer):
    """One training step; returns (forward, backward, whole step) seconds."""
    opt.zero_grad(set_to_none=True)
    if timer.cuda:
        torch.cuda.synchronize()
    t0 = timer.now()
    out, hs = net(x)
    loss = loss_fn(out, labels, hs, cfg)
    t1 = timer.now()
    loss.backward()
    t2 = timer.now()
    opt.step()
    t3 = timer.now()
    return timer.elapsed(t0, t1), timer.elapsed(t1, t2), timer.elapsed(t0, t3)


def time_interleaved(nets: dict, x, labels, cfg: BenchConfig, repeats: int, warmup: int) -> dict:
    """Time every variant's training step, round by round.

    Each round runs one step of every variant (the starting variant rotates
    between rounds), so a ratio between two variants compares steps taken
    under the same machine conditions -- on a shared VM the speed drifts
    between minutes by more than the effects measured. Per variant: medians
    over ``repeats`` rounds after ``warmup`` rounds.
    """
    device = x.device
    timer = _Timer(device)
    names = list(nets)
    opts = {n: torch.optim.Adam(nets[n].parameters(), lr=1e-4) for n in names}
    times = {n: ([], [], []) for n in names}
    for i in range(warmup + repeats):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            fwd, bwd, step = _timed_step(nets[name], opts[name], x, labels, cfg, timer)
            if i >= warmup:
                for lst, v in zip(times[name], (fwd, bwd, step)):
                    lst.append(v)
    out = {}
    for name in names:
        fwd, bwd, step = times[name]
        out[name] = {"forward_s": statistics.median(fwd), "backward_s": statistics.median(bwd),
                     "step_s": statistics.median(step), "repeats": repeats,
                     # every timed step, in round order: the spread behind each median
                     "forward_runs_s": fwd, "backward_runs_s": bwd, "step_runs_s": step}
        out[name].update(measure_memory(nets[name], opts[name], x, labels, cfg))
    return out


def time_training(net: nn.Module, x, labels, cfg: BenchConfig, repeats: int, warmup: int) -> dict:
    """Time one variant alone (see :func:`time_interleaved`)."""
    return time_interleaved({"net": net}, x, labels, cfg, repeats, warmup)["net"]


def measure_memory(net: nn.Module, opt, x, labels, cfg: BenchConfig) -> dict:
    """Bytes saved for backward (any device) and CUDA peak above the resting state."""
    res = {}
    opt.zero_grad(set_to_none=True)
    with saved_tensor_bytes(net) as counter:
        out, hs = net(x)
        loss = loss_fn(out, labels, hs, cfg)
    res["saved_bytes"] = counter.bytes
    loss.backward()
    del out, hs, loss
    if x.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out, hs = net(x)
        loss_fn(out, labels, hs, cfg).backward()
        opt.step()
        torch.cuda.synchronize()
        res["peak_bytes"] = torch.cuda.max_memory_allocated() - base
        del out, hs
    return res


# ----------------------------------------------------------------------------- driver

def step_peak_bytes(net: nn.Module, x, labels, cfg: BenchConfig, measure=cpu_peak_bytes):
    """CPU peak bytes of one forward + backward (:func:`~snntorch_sparse.memory.cpu_peak_bytes`), after a warm-up step.

    ``measure`` runs the step: e.g. :func:`~snntorch_sparse.memory.cpu_allocation_timeline`
    gives the allocations behind that peak instead.
    """
    def step():
        out, hs = net(x)
        loss = loss_fn(out, labels, hs, cfg)
        del out, hs
        loss.backward()

    step()
    net.zero_grad(set_to_none=True)
    result = measure(step)
    net.zero_grad(set_to_none=True)
    return result


def _copy_weights(src: FusedNet, dst: nn.Module) -> None:
    if isinstance(dst, AutocastNet):
        dst = dst.net
    with torch.no_grad():
        if isinstance(dst, SnnTorchNet):
            for layer, fc in zip(src.layers, dst.fcs):
                fc.weight.copy_(layer.fc.weight)
                fc.bias.copy_(layer.fc.bias)
        elif isinstance(dst, FusedNet):
            dst.load_state_dict(src.state_dict())
        elif isinstance(dst, JellyNet):
            lins = [m for m in dst.net if isinstance(m, nn.Linear)]
            for layer, lin in zip(src.layers, lins):
                lin.weight.copy_(layer.fc.weight)
                lin.bias.copy_(layer.fc.bias)


def _compiled_ok(device) -> bool:
    try:
        from .ops import compiled
        return compiled.available()
    except Exception:
        return False


def build_variant(name: str, cfg: BenchConfig, device, compiled_ok: bool):
    if name == "snntorch":
        return SnnTorchNet(cfg, snn_surrogate.fast_sigmoid(slope=cfg.slope))
    if name == "fused_dense":
        return FusedNet(cfg, bth=1e30, backend="compiled" if compiled_ok else "reference")
    if name == "sparse_reference":
        return FusedNet(cfg, bth=cfg.bth, backend="reference")
    if name == "sparse_bf16":
        return AutocastNet(FusedNet(cfg, bth=cfg.bth, backend="compiled")) if compiled_ok else None
    if name in ("sparse_compiled", "sparse_event"):
        if not compiled_ok:
            return None
        return FusedNet(cfg, bth=cfg.bth, backend="compiled", event_forward=name == "sparse_event")
    if name == "spikingjelly":
        try:
            return JellyNet(cfg, device)
        except ImportError:
            return None
    raise ValueError(f"unknown variant {name!r}")


def calibrated_setup(cfg: BenchConfig, device):
    """The benchmark's data and reference network: ``(x, labels, ref, compiled_ok)``.

    ``ref`` is a fused network calibrated to the target firing rate and trained a
    few steps (:func:`calibrate`); variants copy its weights, so every variant and
    the profiler (``benchmarks/profile_step.py``) see the same realistic activity.
    """
    torch.manual_seed(0)
    n_classes = cfg.n_out if cfg.readout else 1
    if cfg.data == "fsdd":
        x, labels = fsdd_batch(cfg, device)
    elif cfg.data == "synthetic":
        x, labels = class_spike_data(cfg, n_classes, device)
    else:
        raise ValueError(f"config {cfg.name!r}: data must be 'synthetic' or 'fsdd', got {cfg.data!r}")
    compiled_ok = _compiled_ok(device)
    ref = FusedNet(cfg, bth=cfg.bth, backend="compiled" if compiled_ok else "reference").to(device)
    calibrate(ref, x, labels, cfg)
    return x, labels, ref, compiled_ok


def run_config(cfg: BenchConfig, device, repeats: int, warmup: int, log=print) -> dict:
    x, labels, ref, compiled_ok = calibrated_setup(cfg, device)
    with torch.no_grad():
        ref(x)
    result = {"config": asdict(cfg), "input_density": x.mean().item(), "activity": ref.activity(),
              "variants": {}}
    log(f"[{cfg.name}] n_in={cfg.n_in} hidden={cfg.hidden} T={cfg.T} B={cfg.batch} "
        f"input density={result['input_density']:.4f} activity={result['activity']}")
    nets = {}
    for name in cfg.variants:
        net = build_variant(name, cfg, device, compiled_ok)
        if net is None:
            log(f"  {name:17s} skipped (not available)")
            continue
        nets[name] = net.to(device)
        _copy_weights(ref, nets[name])
    try:
        timed = time_interleaved(nets, x, labels, cfg, repeats, warmup)
    except torch.cuda.OutOfMemoryError if device.type == "cuda" else MemoryError as e:
        # one variant at a time, so the others still get measured
        log(f"  interleaved timing out of memory ({e}); timing the variants one by one")
        timed = {}
        for name, net in nets.items():
            try:
                timed[name] = time_training(net, x, labels, cfg, repeats, warmup)
            except torch.cuda.OutOfMemoryError if device.type == "cuda" else MemoryError as e2:
                log(f"  {name:17s} out of memory: {e2}")
            if device.type == "cuda":
                torch.cuda.empty_cache()
    for name, res in timed.items():
        if isinstance(nets[name], (FusedNet, AutocastNet)):
            res["activity"] = nets[name].activity()
        result["variants"][name] = res
        log(f"  {name:17s} fwd {res['forward_s'] * 1e3:9.2f} ms  bwd {res['backward_s'] * 1e3:9.2f} ms  "
            f"step {res['step_s'] * 1e3:9.2f} ms  saved {res['saved_bytes'] / 2**20:9.1f} MiB"
            + (f"  peak {res['peak_bytes'] / 2**20:9.1f} MiB" if "peak_bytes" in res else "")
            + f"  (bwd range {min(res['backward_runs_s']) * 1e3:.1f}-{max(res['backward_runs_s']) * 1e3:.1f} ms)")
    del nets
    if device.type == "cuda":
        torch.cuda.empty_cache()
    result["ratios"] = ratios(result["variants"])
    return result


def ratios(variants: dict) -> dict:
    """Speed-ups and memory saved of each sparse variant against each baseline."""
    out = {}
    for base in ("snntorch", "fused_dense", "spikingjelly", "sparse_compiled"):
        if base not in variants:
            continue
        b = variants[base]
        for name, v in variants.items():
            if name == base or not name.startswith("sparse"):
                continue
            if base == "sparse_compiled" and name != "sparse_bf16":
                continue  # against our own float32 step: the mixed-precision variant only
            r = {"backward_speedup": b["backward_s"] / v["backward_s"],
                 "step_speedup": b["step_s"] / v["step_s"],
                 "forward_speedup": b["forward_s"] / v["forward_s"],
                 "saved_memory_reduction": 1 - v["saved_bytes"] / max(b["saved_bytes"], 1)}
            if "peak_bytes" in v and "peak_bytes" in b:
                r["peak_memory_reduction"] = 1 - v["peak_bytes"] / max(b["peak_bytes"], 1)
            out[f"{name}_vs_{base}"] = r
    return out


def device_slug(device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"cpu-{os.cpu_count()}cores"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def print_table(results: list, log=print) -> None:
    log("\nconfig        variant            fwd ms     bwd ms    step ms   saved MiB  activity")
    for r in results:
        for name, v in r["variants"].items():
            act = v.get("activity")
            log(f"{r['config']['name']:13s} {name:17s} {v['forward_s'] * 1e3:9.2f} {v['backward_s'] * 1e3:10.2f} "
                f"{v['step_s'] * 1e3:10.2f} {v['saved_bytes'] / 2**20:11.1f}  {'' if act is None else f'{act:.4f}'}")
    log("\nratios (backward x, step x, saved-memory reduction)")
    for r in results:
        for key, v in r["ratios"].items():
            extra = f", peak-memory reduction {v['peak_memory_reduction']:.1%}" if "peak_memory_reduction" in v else ""
            log(f"{r['config']['name']:13s} {key:38s} bwd {v['backward_speedup']:8.1f}x  step {v['step_speedup']:7.1f}x  "
                f"saved-mem -{v['saved_memory_reduction']:.1%}{extra}")


def plot(results: list, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    names = sorted({n for r in results for n in r["variants"]})
    width = 0.8 / max(len(names), 1)
    for ax, key, title in ((axes[0], "backward_s", "backward time"), (axes[1], "step_s", "training step")):
        for i, n in enumerate(names):
            xs = [j + i * width for j, r in enumerate(results) if n in r["variants"]]
            ys = [r["variants"][n][key] * 1e3 for r in results if n in r["variants"]]
            ax.bar(xs, ys, width, label=n)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(results))])
        ax.set_xticklabels([r["config"]["name"] for r in results], rotation=30)
        ax.set_yscale("log")
        ax.set_ylabel("ms (median)")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def default_configs(device) -> list:
    """Configs run without ``--configs``: the paper's and the sweeps on CUDA; on CPU the quick
    preset and SHD, plus SHD's shape on real recordings (``fsdd_shd``) when the FSDD is present."""
    if torch.device(device).type == "cuda":
        return ["fmnist", "nmnist", "shd", "shd_h100", "shd_h500", "shd_h1000", "on512", "on16384"]
    from .data.audio import fsdd_root

    return ["quick_shd", "shd"] + (["fsdd_shd"] if fsdd_root() is not None else [])


def _source_commit() -> Optional[str]:
    """The package's git commit (short hash, ``+dirty`` with local changes), or ``None`` outside a checkout."""
    import subprocess
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def main(argv=None) -> list:
    p = argparse.ArgumentParser(prog="python -m snntorch_sparse.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="*", help=f"presets to run (default depends on device); choices: {sorted(PRESETS)}")
    p.add_argument("--quick", action="store_true", help="small preset for a 2-core CPU")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--variants", nargs="*", help="restrict to these variants")
    p.add_argument("--batch", type=int, help="override the batch size")
    p.add_argument("--T", type=int, help="override the number of time steps")
    p.add_argument("--out", default="benchmarks/results", help="folder for JSON and plot")
    p.add_argument("--tag", default="", help="suffix for the results file name")
    args = p.parse_args(argv)
    for name in ("repeats", "batch", "T"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    all_variants = sorted({v for c in PRESETS.values() for v in c.variants})
    if args.variants is not None:
        bad = [v for v in args.variants if v not in all_variants]
        if bad or not args.variants:
            p.error(f"unknown variants {bad}; choose from {all_variants}" if bad else
                    f"--variants needs at least one name; choose from {all_variants}")
    device = torch.device(args.device)
    if args.quick:
        names = args.configs or ["quick_shd"]
    elif args.configs:
        names = args.configs
    else:
        names = default_configs(device)
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        p.error(f"unknown configs {unknown}; choose from {sorted(PRESETS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = device_slug(device) + (f"-{args.tag}" if args.tag else "")
    meta = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "snntorch": snn.__version__, "python": sys.version.split()[0],
            "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    commit = _source_commit()
    if commit:
        meta["commit"] = commit  # which build was measured
    results = []
    for n in names:
        cfg = PRESETS[n]
        if args.variants:
            chosen = tuple(v for v in cfg.variants if v in args.variants)
            if not chosen:
                p.error(f"none of --variants {args.variants} is run by config {n!r} (it runs {list(cfg.variants)})")
            cfg = BenchConfig(**{**asdict(cfg), "variants": chosen})
        if args.batch is not None or args.T is not None:
            cfg = BenchConfig(**{**asdict(cfg), "batch": args.batch if args.batch is not None else cfg.batch,
                                 "T": args.T if args.T is not None else cfg.T})
        results.append(run_config(cfg, device, args.repeats, args.warmup))
        # after every config: a run that dies later (e.g. out of memory) keeps what it measured
        (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print_table(results)
    plot(results, out / f"{stem}.png")
    print(f"\nwrote {out / (stem + '.json')} and .png")
    return results


if __name__ == "__main__":
    main()
