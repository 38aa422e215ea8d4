"""Training-step time of an own-forward snnTorch model, dense vs ``sparsify``, fed spikes that change every step.

The tutorial-5 network (784-1000-10, beta 0.95, T=25, batch 128) with its own
``forward`` looping over time, but fed a rate-coded input ``x[t]`` (10% density)
at each step instead of tutorial 5's static image: the converted model then
cannot reuse ``fc1``'s output across steps (:mod:`snntorch_sparse.reuse`), and
the per-step cost of the sparse neuron (its adaptive window) shows. Medians of
repeated steps (the first round dropped), the variants interleaved round by
round. ``--reference`` adds the converted model with its neurons on the
PyTorch path (``backend="reference"``: no per-step C++ kernels), ``--bth``
a fixed window::

    python benchmarks/own_forward_speed.py [--repeats 8] [--reference] [--bth 0.2]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
import statistics
import time

import snntorch as snn
import torch
import torch.nn.functional as F
from torch import nn

import snntorch_sparse as sps


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(784, 1000), snn.Leaky(beta=0.95)
        self.fc2, self.lif2 = nn.Linear(1000, 10), snn.Leaky(beta=0.95)

    def forward(self, x):
        mem1, mem2, out = self.lif1.init_leaky(), self.lif2.init_leaky(), []
        for step in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(x[step]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(mem2)
        return torch.stack(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--reference", action="store_true", help="also time the sparse model on the PyTorch path")
    p.add_argument("--bth", type=float, default=None, help="a fixed window (default: the adaptive one)")
    p.add_argument("--out", help="also write the medians and every timed step to this JSON file")
    args = p.parse_args(argv)
    if args.repeats < 2:
        p.error(f"--repeats must be >= 2, got {args.repeats}")
    torch.manual_seed(0)
    dense = Net()
    nets = {"dense": dense, "sparse": sps.sparsify(dense, bth=args.bth)}
    if args.reference:
        nets["sparse (PyTorch path)"] = ref = sps.sparsify(dense, bth=args.bth)
        for m in ref.modules():
            if isinstance(m, sps.SparseLeaky):
                m.backend = "reference"
    x = (torch.rand(25, 128, 784) < 0.1).float()
    y = torch.randint(0, 10, (128,))
    times = {k: [] for k in nets}
    for _ in range(args.repeats):
        for kind, net in nets.items():
            t0 = time.perf_counter()
            mem = net(x)
            sum(F.cross_entropy(mem[t], y) for t in range(x.shape[0])).backward()
            times[kind].append(time.perf_counter() - t0)
    med = {k: statistics.median(v[1:]) for k, v in times.items()}
    d = med["dense"]
    window = "adaptive window" if args.bth is None else f"bth={args.bth}"
    print(f"own-forward model, spikes changing every step ({window}, {torch.get_num_threads()} threads): "
          f"dense {1e3 * d:.0f} ms, " + ", ".join(f"{k} {1e3 * v:.0f} ms ({d / v:.2f}x dense speed)"
                                                for k, v in med.items() if k != "dense"))
    if args.out:
        import json
        import platform

        Path(args.out).write_text(json.dumps({
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "threads": torch.get_num_threads(),
            "torch": torch.__version__, "window": window, "repeats": args.repeats,
            "median_step_s": med, "speedup": {k: d / v for k, v in med.items() if k != "dense"},
            "steps_s": times}, indent=1))


if __name__ == "__main__":
    main()
