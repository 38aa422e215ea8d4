"""Where the device-generic path's step peak comes from: its large allocations in order, on CPU.

    python benchmarks/generic_peak_timeline.py --configs shd

One training step of the ``sparse_compiled`` variant on the device-generic
path (what CUDA runs; the fused CPU kernels switched off, as in
``generic_peak_memory.py``) under the profiler's memory events. Prints the
peak, the ops running at that moment, and every allocation or free larger
than ``--min-mib`` with the running total after it and the innermost op it
happened in, so a change aimed at the GPU peak can be checked here first.
The profiler's own bookkeeping makes the peak a few MiB higher than
``generic_peak_memory.py`` reports.
"""
import argparse
from unittest import mock

import torch
from torch.profiler import ProfilerActivity, profile

import snntorch_sparse.functional as functional
from snntorch_sparse import bench

p = argparse.ArgumentParser()
p.add_argument("--configs", nargs="+", default=["shd"], choices=sorted(bench.PRESETS))
p.add_argument("--variant", default="sparse_compiled")
p.add_argument("--min-mib", type=float, default=8.0, help="list allocations and frees above this size")
args = p.parse_args()
cpu = torch.device("cpu")
for name in args.configs:
    cfg = bench.PRESETS[name]
    x, labels, ref, compiled_ok = bench.calibrated_setup(cfg, cpu)
    net = bench.build_variant(args.variant, cfg, cpu, compiled_ok)
    bench._copy_weights(ref, net)

    def step():
        out, hs = net(x)
        bench.loss_fn(out, labels, hs, cfg).backward()

    with mock.patch.object(functional, "_fused_usable", lambda *a, **k: False):
        step()  # warm-up: buffers and caches as in a training loop
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
    events = prof.profiler.kineto_results.events()
    mem = sorted((e for e in events if e.name() == "[memory]"), key=lambda e: e.start_ns())
    ops = [e for e in events if e.name() != "[memory]"]

    def innermost(t):
        around = [o for o in ops if o.start_ns() <= t <= o.end_ns()]
        return min(around, key=lambda o: o.end_ns() - o.start_ns()).name() if around else "?"

    live = peak = t_peak = 0
    timeline = []
    for e in mem:
        live += e.nbytes()
        timeline.append((e.start_ns(), e.nbytes(), live))
        if live > peak:
            peak, t_peak = live, e.start_ns()
    print(f"[{name}] {args.variant}: step peak {peak / 2**20:.1f} MiB; running at the peak: "
          + " > ".join(o.name() for o in sorted((o for o in ops if o.start_ns() <= t_peak <= o.end_ns()),
                                                key=lambda o: o.start_ns())))
    for t, n, after in timeline:
        if abs(n) >= args.min_mib * 2**20 or t == t_peak:
            print(f"  {'peak' if t == t_peak else '    '} {n / 2**20:+8.1f} MiB -> {after / 2**20:7.1f} MiB  "
                  f"{innermost(t)}")
