"""`make demo`: dense snnTorch vs sparse training, side by side, on real data.

Trains the same 2-hidden-layer spiking network twice from the same initial
weights -- once as snnTorch's usual ``nn.Linear`` + ``snn.Leaky`` step loop with
its dense ``fast_sigmoid`` surrogate, once after :func:`snntorch_sparse.sparsify`
(fused layers, sparse backward) -- and prints test accuracy, epoch time,
backward time, activity and the memory saved for the backward.

Data: scikit-learn's bundled handwritten digits, latency-coded like F-MNIST in
the sparse-gradient paper, and, when present, the Free Spoken Digit Dataset
(3,000 recordings) through an SHD-style audio-to-spike front end.

    python -m snntorch_sparse.demo                  # digits (+ FSDD if found)
    python -m snntorch_sparse.demo --seeds 0 1 2    # mean over seeds
    python -m snntorch_sparse.demo --out benchmarks/results/demo-cpu.json   # the README's figures
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import snntorch as snn
import torch
import torch.nn.functional as F
from snntorch import surrogate as snn_surrogate
from snntorch import utils as snn_utils
from torch import nn
from tqdm.auto import tqdm

from .convert import sparsify
from .memory import saved_tensor_bytes
from .surrogate import sparse_fast_sigmoid

__all__ = ["DemoConfig", "dense_model", "train_compare", "main"]


@dataclass
class DemoConfig:
    """Network and training settings shared by the dense and the sparse run."""

    hidden: int = 128
    beta: float = 0.9
    slope: float = 100.0      # fast-sigmoid steepness (the sparse paper's k)
    bth: float = 0.2          # active window |U - θ| < bth
    weight_gain: float = 5.0  # init scale: puts membranes near threshold (see guide)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 5e-3


def dense_model(n_in: int, n_out: int, cfg: DemoConfig) -> nn.Sequential:
    """snnTorch's tutorial-style network: two spiking hidden layers and a leaky readout."""
    sg = snn_surrogate.fast_sigmoid(slope=cfg.slope)
    net = nn.Sequential(
        nn.Linear(n_in, cfg.hidden), snn.Leaky(beta=cfg.beta, spike_grad=sg, init_hidden=True),
        nn.Linear(cfg.hidden, cfg.hidden), snn.Leaky(beta=cfg.beta, spike_grad=sg, init_hidden=True),
        nn.Linear(cfg.hidden, n_out),
        snn.Leaky(beta=cfg.beta, spike_grad=sg, init_hidden=True, output=True, reset_mechanism="none"),
    )
    with torch.no_grad():
        for m in (net[0], net[2]):
            m.weight.mul_(cfg.weight_gain)
    return net


def run_dense(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """snnTorch's step loop; returns the readout membrane ``[T, B, C]``."""
    snn_utils.reset(net)
    mem_rec = []
    for t in range(x.shape[0]):
        _, mem = net(x[t])
        mem_rec.append(mem)
    return torch.stack(mem_rec)


def run_sparse(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The sparsified model takes the whole sequence in one call."""
    _, mem = net(x)
    return mem


def _logits(mem: torch.Tensor) -> torch.Tensor:
    return mem.max(0).values  # max over time of the readout membrane


def _activity(net) -> float | None:
    acts = [m.activity for m in net.modules() if hasattr(m, "activity") and m.activity is not None
            and getattr(m, "reset_mechanism", "") != "none"]
    return sum(acts) / len(acts) if acts else None


def _train(net, forward, train, test, cfg: DemoConfig, seed: int, desc: str) -> dict:
    xtr, ytr = train
    xte, yte = test
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    n_batches = (len(ytr) + cfg.batch_size - 1) // cfg.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * n_batches)
    gen = torch.Generator().manual_seed(seed)
    epoch_times, bwd_times, acts, losses = [], [], [], []
    for _ in tqdm(range(cfg.epochs), desc=desc, leave=False):
        t_epoch, t_bwd = time.perf_counter(), 0.0
        perm = torch.randperm(len(ytr), generator=gen)
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            loss = F.cross_entropy(_logits(forward(net, xtr[:, idx])), ytr[idx])
            opt.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            loss.backward()
            t_bwd += time.perf_counter() - t0
            opt.step()
            sched.step()
            losses.append(loss.item())
            a = _activity(net)
            if a is not None:
                acts.append(a)
        epoch_times.append(time.perf_counter() - t_epoch)
        bwd_times.append(t_bwd)
    with torch.no_grad():
        acc = sum((_logits(forward(net, xte[:, i:i + 256])).argmax(1) == yte[i:i + 256]).sum().item()
                  for i in range(0, len(yte), 256)) / len(yte)
    batch = xtr[:, :cfg.batch_size].clone()  # its own storage, like a DataLoader batch
    with saved_tensor_bytes(net) as saved:
        loss = F.cross_entropy(_logits(forward(net, batch)), ytr[:cfg.batch_size])
    del loss
    return {"accuracy": acc, "epoch_s": statistics.median(epoch_times),
            "backward_s": statistics.median(bwd_times), "saved_bytes": saved.bytes,
            "activity": statistics.mean(acts) if acts else None, "final_loss": statistics.mean(losses[-10:])}


def train_compare(train, test, n_out: int, cfg: DemoConfig, seed: int = 0, name: str = "") -> dict:
    """Train the dense snnTorch model and its sparsified twin from the same weights."""
    torch.manual_seed(seed)
    dense = dense_model(train[0].shape[-1], n_out, cfg)
    sparse = sparsify(dense, spike_grad=sparse_fast_sigmoid(slope=cfg.slope, bth=cfg.bth))
    res_dense = _train(dense, run_dense, train, test, cfg, seed, f"{name} dense  (seed {seed})")
    res_sparse = _train(sparse, run_sparse, train, test, cfg, seed, f"{name} sparse (seed {seed})")
    return {"dense": res_dense, "sparse": res_sparse}


def _print_table(name: str, runs: list) -> None:
    def mean(kind, key):
        vals = [r[kind][key] for r in runs if r[kind][key] is not None]
        return statistics.mean(vals) if vals else float("nan")

    print(f"\n== {name}: {len(runs)} seed(s) ==")
    print(f"{'':22s}{'snnTorch dense':>16s}{'sparse':>12s}{'ratio':>10s}")
    rows = [("test accuracy", "accuracy", lambda v: f"{100 * v:.2f}%"),
            ("epoch time", "epoch_s", lambda v: f"{v:.2f} s"),
            ("backward time/epoch", "backward_s", lambda v: f"{v:.3f} s"),
            ("saved for backward", "saved_bytes", lambda v: f"{v / 2**20:.2f} MiB")]
    for label, key, fmt in rows:
        d, s = mean("dense", key), mean("sparse", key)
        ratio = f"{d / s:.1f}x" if key != "accuracy" else f"{100 * (s - d):+.2f} pt"
        print(f"{label:22s}{fmt(d):>16s}{fmt(s):>12s}{ratio:>10s}")
    print(f"{'activity (sparse)':22s}{'100%':>16s}{100 * mean('sparse', 'activity'):>11.2f}%")
    saved = 1 - mean("sparse", "saved_bytes") / mean("dense", "saved_bytes")
    print(f"memory saved for backward: {100 * saved:.1f}%")
    if len(runs) > 1:
        print("per-seed accuracy dense:", [f"{100 * r['dense']['accuracy']:.2f}" for r in runs],
              "sparse:", [f"{100 * r['sparse']['accuracy']:.2f}" for r in runs])


def load_digits_spikes(num_steps: int = 25, seed: int = 0):
    """scikit-learn's 8x8 digits, latency-coded (one spike per pixel, brighter = earlier).

    Returns ``((x_train [T, N, 64], y_train), (x_test, y_test))``, a stratified 80/20 split.
    """
    try:
        from .data.digits import load_digits_spikes as _load  # the data package, when installed
        return _load(num_steps=num_steps, seed=seed)
    except ImportError:
        pass
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from snntorch import spikegen

    d = load_digits()
    x = torch.tensor(d.images.reshape(-1, 64) / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)

    def encode(v):
        return spikegen.latency(v, num_steps=num_steps, tau=5, threshold=0.01, normalize=True,
                                linear=True, clip=True)

    return (encode(xtr), ytr), (encode(xte), yte)


def load_fsdd_spikes():
    """The spoken digits through the SHD-style front end, or ``None`` if absent."""
    try:
        from .data.audio import fsdd_root, fsdd_spikes
    except ImportError:
        return None
    if fsdd_root() is None:
        return None
    return fsdd_spikes()


def main(argv=None) -> dict:

    p = argparse.ArgumentParser(prog="python -m snntorch_sparse.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, help="override epochs for every dataset")
    p.add_argument("--no-fsdd", action="store_true", help="skip the spoken digits")
    p.add_argument("--out", default=None, help="also write the runs to this JSON file")
    args = p.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        p.error(f"--epochs must be >= 1, got {args.epochs}")
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    out = {}
    t0 = time.perf_counter()

    cfg = DemoConfig(epochs=args.epochs or 30)
    train, test = load_digits_spikes()
    print(f"digits: {len(train[1])} train / {len(test[1])} test, T={train[0].shape[0]}, "
          f"{train[0].shape[-1]} inputs, input density {train[0].mean():.4f}")
    out["digits"] = [train_compare(train, test, 10, cfg, s, "digits") for s in args.seeds]
    _print_table("digits (latency-coded)", out["digits"])

    fsdd = None if args.no_fsdd else load_fsdd_spikes()
    if fsdd is not None:
        cfg_f = DemoConfig(epochs=args.epochs or 12, hidden=128)
        train, test = fsdd
        print(f"\nspoken digits (FSDD): {len(train[1])} train / {len(test[1])} test, T={train[0].shape[0]}, "
              f"{train[0].shape[-1]} channels, input density {train[0].mean():.4f}")
        out["fsdd"] = [train_compare(train, test, 10, cfg_f, s, "fsdd") for s in args.seeds]
        _print_table("spoken digits (FSDD, SHD-style encoding)", out["fsdd"])
    print(f"\ntotal demo time {time.perf_counter() - t0:.0f} s")
    if args.out:
        import json
        import platform
        env = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "torch": torch.__version__,
               "snntorch": snn.__version__, "seeds": args.seeds, "epochs": args.epochs}
        with open(args.out, "w") as f:
            json.dump({"environment": env, "runs": out}, f, indent=1)
        print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
