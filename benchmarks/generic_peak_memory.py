"""Peak memory of one training step on the device-generic path (what CUDA runs), measured on CPU.

    python benchmarks/generic_peak_memory.py --configs shd

The device-generic autograd function allocates the same buffers on any
device, so the CPU allocator's high-water mark during one forward + backward
(:func:`snntorch_sparse.bench.step_peak_bytes`) tracks
its GPU peak without a GPU. Same data and calibrated weights as
``python -m snntorch_sparse.bench``; the fused CPU kernels are switched off.
"""
import argparse
from unittest import mock

import torch

import snntorch_sparse.functional as functional
from snntorch_sparse import bench

p = argparse.ArgumentParser()
p.add_argument("--configs", nargs="+", default=["shd"], choices=sorted(bench.PRESETS))
p.add_argument("--variants", nargs="+", default=["snntorch", "sparse_compiled"])
args = p.parse_args()
cpu = torch.device("cpu")
for name in args.configs:
    cfg = bench.PRESETS[name]
    x, labels, ref, compiled_ok = bench.calibrated_setup(cfg, cpu)
    for v in args.variants:
        net = bench.build_variant(v, cfg, cpu, compiled_ok)
        bench._copy_weights(ref, net)

        with mock.patch.object(functional, "_fused_usable", lambda *a, **k: False):
            peak = bench.step_peak_bytes(net, x, labels, cfg)
        print(f"{name:10s} {v:18s} peak {peak / 2**20:8.1f} MiB")
