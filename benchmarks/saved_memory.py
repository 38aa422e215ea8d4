"""Bytes saved for backward per variant, without timing (deterministic; any device).

    python benchmarks/saved_memory.py --configs quick_shd shd --out benchmarks/results/cpu-saved-memory.json

Same data, calibrated weights and counter (:func:`snntorch_sparse.memory.saved_tensor_bytes`)
as ``python -m snntorch_sparse.bench``; one forward per variant, no repeats needed.
"""
import argparse
import json

import torch

from snntorch_sparse import bench

p = argparse.ArgumentParser()
p.add_argument("--configs", nargs="+", default=["quick_shd", "shd"], choices=sorted(bench.PRESETS))
p.add_argument("--variants", nargs="+", default=["snntorch", "fused_dense", "sparse_compiled", "sparse_event",
                                                 "spikingjelly"])
p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
p.add_argument("--out", help="JSON file to write")
args = p.parse_args()
dev = torch.device(args.device)
results = []
for name in args.configs:
    cfg = bench.PRESETS[name]
    x, labels, ref, compiled_ok = bench.calibrated_setup(cfg, dev)
    row = {"config": name, "activity": ref.activity(), "saved_bytes": {}}
    for v in args.variants:
        if v not in cfg.variants:
            continue
        net = bench.build_variant(v, cfg, dev, compiled_ok)
        if net is None:
            continue
        net = net.to(dev)
        bench._copy_weights(ref, net)
        opt = torch.optim.SGD(net.parameters(), lr=0.0)
        row["saved_bytes"][v] = bench.measure_memory(net, opt, x, labels, cfg)["saved_bytes"]
        del net, opt
    base = row["saved_bytes"].get("snntorch")
    print(f"[{name}] activity {row['activity']:.4f}")
    for v, b in row["saved_bytes"].items():
        red = f"  {1 - b / base:7.1%} vs snntorch" if base and v != "snntorch" else ""
        print(f"  {v:16s} {b / 2**20:9.1f} MiB{red}")
    results.append(row)
if args.out:
    with open(args.out, "w") as f:
        json.dump({"device": str(dev), "torch": torch.__version__, "results": results}, f, indent=1)
