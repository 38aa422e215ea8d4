"""Profile one training step of the sparse model (torch.profiler table), e.g. on a GPU.

    python benchmarks/profile_step.py --config shd --variant sparse_compiled
"""
import argparse

import torch

from snntorch_sparse import bench

p = argparse.ArgumentParser()
p.add_argument("--config", default="quick_shd")
p.add_argument("--variant", default="sparse_compiled")
p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
args = p.parse_args()
dev = torch.device(args.device)
cfg = bench.PRESETS[args.config]
# the benchmark's own set-up, so the profiled step sees realistic activity
x, y, ref, compiled_ok = bench.calibrated_setup(cfg, dev)
net = bench.build_variant(args.variant, cfg, dev, compiled_ok).to(dev)
bench._copy_weights(ref, net)
for _ in range(3):
    out, hs = net(x)
    bench.loss_fn(out, y, hs, cfg).backward()
acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if dev.type == "cuda" else [])
with torch.profiler.profile(activities=acts) as prof:
    # labelled phases: their rows give the forward and backward totals
    with torch.profiler.record_function("phase:forward"):
        out, hs = net(x)
        loss = bench.loss_fn(out, y, hs, cfg)
    with torch.profiler.record_function("phase:backward"):
        loss.backward()
    if dev.type == "cuda":
        torch.cuda.synchronize()
key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
print(f"[{args.config}] {args.variant} on {dev}")
print(prof.key_averages().table(sort_by=key, row_limit=30))
