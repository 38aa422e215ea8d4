"""Peak memory of one training step, measured on CPU with the allocator's high-water mark.

    python benchmarks/generic_peak_memory.py --configs shd
    python benchmarks/generic_peak_memory.py --configs shd --variants sparse_compiled --timeline
    python benchmarks/generic_peak_memory.py --configs shd --path generic

``--path fused`` (default) measures the fused op both CPU and CUDA run
(:mod:`snntorch_sparse.fused_cpu`; on CUDA its forward adds two 32 MiB
time-chunk buffers, its backward ``h`` and two 32 MiB row-chunk buffers);
``--path generic`` the device-generic autograd function of
:mod:`snntorch_sparse.functional`, which allocates the same buffers on any
device (the reference backend's path, and CUDA's before the fused CUDA
kernels). Peak of one forward + backward
(:func:`snntorch_sparse.bench.step_peak_bytes`), same data and calibrated
weights as ``python -m snntorch_sparse.bench``.

``--timeline`` also lists where that peak comes from: every allocation or
free of at least ``--min-mib`` (and the one at the peak) with the running
total after it and the innermost op it happened in
(:func:`snntorch_sparse.memory.cpu_allocation_timeline`), so a change aimed at
the GPU peak can be checked here first.
"""
import argparse
import contextlib
import json
import os
from pathlib import Path
from unittest import mock

import torch

import snntorch_sparse.functional as functional
from snntorch_sparse import bench
from snntorch_sparse.memory import cpu_allocation_timeline


def print_timeline(allocations, ops, peak, min_mib):
    t_peak = next((t for t, _, live in allocations if live == peak), None)

    def innermost(t):
        around = [(end - start, name) for name, start, end in ops if start <= t <= end]
        return min(around)[1] if around else "?"

    print("  running at the peak: " + " > ".join(
        name for name, start, end in sorted(ops, key=lambda o: o[1]) if start <= t_peak <= end))
    for t, n, live in allocations:
        if abs(n) >= min_mib * 2**20 or t == t_peak:
            print(f"  {'peak' if t == t_peak else '    '} {n / 2**20:+8.1f} MiB -> {live / 2**20:7.1f} MiB  "
                  f"{innermost(t)}")


p = argparse.ArgumentParser()
p.add_argument("--configs", nargs="+", default=["shd"], choices=sorted(bench.PRESETS))
p.add_argument("--variants", nargs="+", default=["snntorch", "sparse_compiled"])
p.add_argument("--timeline", action="store_true", help="list the step's large allocations in order")
p.add_argument("--min-mib", type=float, default=8.0, help="with --timeline: list allocations and frees above this")
p.add_argument("--path", choices=["fused", "generic"], default="fused",
               help="the fused op (CPU and CUDA) or the device-generic autograd function")
p.add_argument("--out", help="write the peaks to this JSON file (adds to its other paths' entries)")
args = p.parse_args()
cpu = torch.device("cpu")
peaks = {}
for name in args.configs:
    cfg = bench.PRESETS[name]
    x, labels, ref, compiled_ok = bench.calibrated_setup(cfg, cpu)
    for v in args.variants:
        net = bench.build_variant(v, cfg, cpu, compiled_ok)
        bench._copy_weights(ref, net)

        patch = mock.patch.object(functional, "_fused_usable", lambda *a, **k: False) if args.path == "generic" \
            else contextlib.nullcontext()
        with patch:
            allocations, ops = bench.step_peak_bytes(net, x, labels, cfg, measure=cpu_allocation_timeline)
        peak = max([0] + [live for _, _, live in allocations])
        print(f"{name:10s} {v:18s} peak {peak / 2**20:8.1f} MiB")
        peaks.setdefault(name, {})[v if v == "snntorch" else f"{v}:{args.path}"] = peak
        if args.timeline:
            print_timeline(allocations, ops, peak, args.min_mib)
if args.out:
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {"peak_bytes": {}}
    data["reuse_buffers"] = os.environ.get("SNNTORCH_SPARSE_REUSE_BUFFERS", "1")
    data["torch"] = torch.__version__
    for cfg_name, entries in peaks.items():
        data["peak_bytes"].setdefault(cfg_name, {}).update(entries)
    out.write_text(json.dumps(data, indent=1))
