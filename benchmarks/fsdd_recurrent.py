"""Spoken digits (FSDD) with a recurrent spiking network: snnTorch dense vs sparse, several seeds.

    python benchmarks/fsdd_recurrent.py [--seeds 0 1 2] [--epochs 12] [--kind rleaky|synaptic]
                                        [--out benchmarks/results/fsdd-recurrent.json]

Network (snnTorch's tutorial style, an ``nn.Sequential`` called once per time step):
``Linear(64, 128) -> RLeaky(linear_features=128)`` (or ``Synaptic``) ``-> Linear(128, 10) ->``
non-spiking ``Leaky`` readout, logits = max over time of its membrane; fast-sigmoid
surrogate (slope 100). The sparse twin is ``sparsify(net, spike_grad=sparse_fast_sigmoid(
slope=100, bth=0.2))``: a fused ``SparseLinearRLeaky`` (recurrent backward on the active set
only) and a fused readout, trained from the same initial weights with the same batches.
Data: ``snntorch_sparse.data.audio.fsdd_spikes`` (T = 100, 64 channels, delta encoding of a
mel spectrogram), the recordings in ``/work/shared/data/fsdd`` (``$FSDD_ROOT``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import snntorch as snn
import torch
from snntorch import surrogate as snn_surrogate
from torch import nn

from snntorch_sparse.convert import sparsify
from snntorch_sparse.demo import DemoConfig, _train, run_dense, run_sparse
from snntorch_sparse.data.audio import fsdd_spikes
from snntorch_sparse.surrogate import sparse_fast_sigmoid


def dense_model(n_in: int, n_out: int, cfg: DemoConfig, kind: str) -> nn.Sequential:
    sg = snn_surrogate.fast_sigmoid(slope=cfg.slope)
    if kind == "rleaky":
        hidden = snn.RLeaky(beta=cfg.beta, linear_features=cfg.hidden, spike_grad=sg, init_hidden=True)
    else:
        hidden = snn.Synaptic(alpha=0.8, beta=cfg.beta, spike_grad=sg, init_hidden=True)
    net = nn.Sequential(nn.Linear(n_in, cfg.hidden), hidden, nn.Linear(cfg.hidden, n_out),
                        snn.Leaky(beta=cfg.beta, spike_grad=sg, init_hidden=True, output=True,
                                  reset_mechanism="none"))
    with torch.no_grad():
        net[0].weight.mul_(cfg.weight_gain)
    return net


def compare(train, test, cfg: DemoConfig, seed: int, kind: str) -> dict:
    torch.manual_seed(seed)
    dense = dense_model(train[0].shape[-1], 10, cfg, kind)
    sparse = sparsify(dense, spike_grad=sparse_fast_sigmoid(slope=cfg.slope, bth=cfg.bth))
    out = {"seed": seed}
    for name, net, fwd in (("dense", dense, run_dense), ("sparse", sparse, run_sparse)):
        t0 = time.perf_counter()
        out[name] = _train(net, fwd, train, test, cfg, seed, f"{kind} {name} (seed {seed})")
        out[name]["wall_s"] = time.perf_counter() - t0
        print(f"seed {seed} {name:6s}: accuracy {100 * out[name]['accuracy']:.2f}%, "
              f"epoch {out[name]['epoch_s']:.2f} s, backward/epoch {out[name]['backward_s']:.2f} s, "
              f"saved {out[name]['saved_bytes'] / 2 ** 20:.2f} MiB, activity {out[name]['activity']}", flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--kind", default="rleaky", choices=["rleaky", "synaptic"])
    ap.add_argument("--max-train", type=int, default=None, help="use only this many training recordings")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    cfg = DemoConfig(epochs=args.epochs, hidden=args.hidden)
    train, test = fsdd_spikes()
    if args.max_train:
        g = torch.Generator().manual_seed(1234)
        keep = torch.randperm(len(train[1]), generator=g)[:args.max_train]
        train = (train[0][:, keep].contiguous(), train[1][keep])
    print(f"FSDD: {len(train[1])} train / {len(test[1])} test, T={train[0].shape[0]}, "
          f"{train[0].shape[-1]} channels, input density {train[0].mean():.4f}", flush=True)
    runs = [compare(train, test, cfg, s, args.kind) for s in args.seeds]
    summary = {k: {m: statistics.mean(r[k][m] for r in runs) for m in ("accuracy", "epoch_s", "backward_s",
                                                                         "saved_bytes")}
               for k in ("dense", "sparse")}
    summary["sparse"]["activity"] = statistics.mean(r["sparse"]["activity"] for r in runs)
    print(json.dumps(summary, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps({"kind": args.kind, "epochs": args.epochs, "hidden": args.hidden,
                                              "max_train": args.max_train, "runs": runs,
                                              "mean": summary}, indent=1))
    return runs


if __name__ == "__main__":
    main()
