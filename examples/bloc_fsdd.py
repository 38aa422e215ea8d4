"""BlocTrain on spoken digits (FSDD as spike rasters): block-wise vs end-to-end training.

The task of issue 22: the Free Spoken Digit Dataset encoded by the package's
own front end (:func:`snntorch_sparse.data.audio.fsdd_spikes`: 64 channels,
T = 100 steps of 10 ms), a 6-layer snnTorch network 64-128x5-10 (Linear +
``snn.Leaky`` pairs, weight gains x5 on the first layer and x2.5 deeper, a
non-spiking leaky read-out) converted with :func:`~snntorch_sparse.sparsify`,
cut into 3 blocks with ``bloc.split(net, [2, 4], 10)``.

For every seed it trains

* **end to end**: the whole network on the read-out's max-over-time membrane
  (cross-entropy), ``--epochs`` epochs of Adam;
* **BlocTrain**: the same initial network, ``--epochs`` epochs per block with the
  same optimiser, heads/HCDs/easy threshold as chosen (defaults: ``readout="auto"``,
  which picks the time-reading leaky read-out on this input, and ``easy_threshold="auto"``),

and reports test accuracy (early exit and all blocks), exit fractions, synaptic
operations (early exit vs all blocks) and the bytes saved for backward
(block-wise vs end to end, for the sparse network and its snnTorch dense twin).
The validation split (20 % of the official training recordings, by a fixed
permutation) decides the easy classes; ``--sweep`` evaluates alternatives on it
(never on the test split) to choose defaults.

    python examples/bloc_fsdd.py --quick                      # ~1 min: 1 seed, few epochs, data slice
    python examples/bloc_fsdd.py --out benchmarks/results/bloc_fsdd.json   # 3 seeds, 15 epochs
    python examples/bloc_fsdd.py --sweep --out benchmarks/results/bloc_fsdd_sweep.json
    python examples/bloc_fsdd.py --splits --out benchmarks/results/bloc_fsdd_splits.json
    python examples/bloc_fsdd.py --tables-from benchmarks/results/bloc_fsdd.json   # docs table only

Needs the FSDD recordings (``../shared/data/fsdd`` beside the repository, or
``$SNNTORCH_SPARSE_FSDD``).
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import snntorch as snn
import torch
import torch.nn.functional as F
from torch import nn

from snntorch_sparse import bloc, desparsify, sparsify, SparseLinearLeaky
from snntorch_sparse.data.audio import fsdd_root, fsdd_spikes

ROOT = Path(__file__).resolve().parents[1]


def build_model(seed: int, channels: int = 64, hidden: int = 128, layers: int = 6, classes: int = 10) -> nn.Sequential:
    """The issue's network: snnTorch ``Linear + Leaky`` pairs, gains x5 / x2.5, sparsified; leaky read-out."""
    torch.manual_seed(seed)
    mods = []
    sizes = [channels] + [hidden] * (layers - 1)
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        fc = nn.Linear(a, b)
        with torch.no_grad():
            fc.weight.mul_(5.0 if i == 0 else 2.5)
        mods += [fc, snn.Leaky(beta=0.9, init_hidden=True)]
    # the end-to-end read-out: a non-spiking leaky membrane, logits = max over time
    mods.append(SparseLinearLeaky(hidden, classes, beta=0.9, readout=True))
    return sparsify(nn.Sequential(*mods))


def load(quick: bool, seed: int = 0):
    """``(train, val, test)`` time-major splits; val: 20 % of the training recordings."""
    (x, y), (xte, yte) = fsdd_spikes(max_files=600 if quick else None)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    nv = len(y) // 5
    return ((x[:, perm[nv:]], y[perm[nv:]]), (x[:, perm[:nv]], y[perm[:nv]]), (xte, yte))


def optimiser(lr):
    return lambda params: torch.optim.Adam(params, lr=lr)


def train_end_to_end(model, train, epochs, lr, batch, seed):
    """Every layer trained through the read-out's max-over-time membrane (cross-entropy)."""
    x, y = train
    opt = optimiser(lr)(model.parameters())
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), batch):
            b = perm[i:i + batch]
            loss = F.cross_entropy(bloc.run_sequence(model, x[:, b]).max(0).values, y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model


@torch.no_grad()
def accuracy_end_to_end(model, data):
    x, y = data
    model.eval()
    pred = torch.cat([bloc.run_sequence(model, x[:, i:i + 256]).max(0).values.argmax(1)
                      for i in range(0, x.shape[1], 256)])
    return float((pred == y).float().mean())


def run_seed(seed, data, args, readout="auto", easy_threshold="auto", easy_quantile=0.5, exit_thresholds=(0.5,),
             evaluate_on="test", e2e=True, memory=True):
    train, val, test = data
    ev = test if evaluate_on == "test" else val
    res = {"seed": seed}
    t0 = time.perf_counter()
    if e2e:
        model = train_end_to_end(build_model(seed), train, args.epochs, args.lr, args.batch, seed)
        res["end_to_end"] = accuracy_end_to_end(model, ev)
        res["end_to_end_seconds"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    net = bloc.split(build_model(seed), [2, 4], 10, sample=train[0][:, :32], readout=readout)
    trainer = bloc.BlocTrainer(net, epochs=args.epochs, hcd_epochs=args.hcd_epochs, easy_threshold=easy_threshold,
                               easy_quantile=easy_quantile, optimizer=optimiser(args.lr), batch_size=args.batch,
                               progress=False, seed=seed)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = trainer.fit(train, val)
    res["bloc_seconds"] = round(time.perf_counter() - t0, 1)
    res["readout"] = net.readout
    res["history"] = [{k: h[k] for k in ("block", "trained_on", "easy_threshold", "hard_out", "per_class_acc")}
                      for h in history]
    res["reports"] = {}
    for thr in exit_thresholds:
        rep = bloc.report(net, *ev, exit_threshold=thr)
        res["reports"][str(thr)] = {k: rep[k] for k in ("accuracy_early_exit", "accuracy_all_blocks", "exit_fraction",
                                                        "synops_ratio", "macs_ratio", "synops_early_exit",
                                                        "synops_all_blocks")}
        res["reports"][str(thr)]["parameter_overhead"] = rep["parameters"]["overhead"]
    if memory:
        xm, ym = train[0][:, :64], train[1][:64]
        res["saved_ratio_sparse"] = trainer.training_memory(xm, ym)["saved_ratio"]
        dense = bloc.split(desparsify(build_model(seed)), [4, 8], 10, sample=train[0][:, :32], readout=readout)
        res["saved_ratio_dense"] = bloc.BlocTrainer(dense, progress=False).training_memory(xm, ym)["saved_ratio"]
    return res


def split_memory(train, readout="auto"):
    """Saved-for-backward ratio (end to end / heaviest block) of every cut into 3 blocks, initial weights.

    The sparse network (its 6 layers, cuts ``[a, b]``) and its snnTorch dense twin
    (``desparsify``: Linear and Leaky apart, cuts ``[2a, 2b]``), on 64 training recordings.
    """
    import itertools

    xm, ym = train[0][:, :64], train[1][:64]
    rows = []
    n = len(build_model(0))
    for a, b in itertools.combinations(range(1, n), 2):
        net = bloc.split(build_model(0), [a, b], 10, sample=train[0][:, :32], readout=readout)
        sparse = bloc.BlocTrainer(net, progress=False).training_memory(xm, ym)
        dense = bloc.split(desparsify(build_model(0)), [2 * a, 2 * b], 10, sample=train[0][:, :32], readout=readout)
        dense = bloc.BlocTrainer(dense, progress=False).training_memory(xm, ym)
        rows.append({"boundaries": [a, b], "readout": net.readout, "saved_ratio_sparse": sparse["saved_ratio"],
                     "per_block_saved_bytes_sparse": sparse["per_block_saved_bytes"],
                     "end_to_end_saved_bytes_sparse": sparse["end_to_end_saved_bytes"],
                     "saved_ratio_dense": dense["saved_ratio"]})
    return rows


def splits_table(data: dict) -> str:
    """The cut measurement as a Markdown table."""
    lines = [f"Bytes saved for backward, end to end / heaviest block, for every cut of the 6-layer network into "
             f"3 blocks (initial weights, seed 0, 64 training recordings, read-out `{data['rows'][0]['readout']}`); "
             f"commit `{data['environment']['commit']}`.", "",
             "| boundaries | sparse network | per block, sparse (KiB) | snnTorch dense twin |", "|---|---|---|---|"]
    for r in data["rows"]:
        lines.append(f"| `{r['boundaries']}` | {r['saved_ratio_sparse']:.2f}x | "
                     f"{' / '.join(f'{v / 1024:.0f}' for v in r['per_block_saved_bytes_sparse'])} | "
                     f"{r['saved_ratio_dense']:.2f}x |")
    return "\n".join(lines) + "\n"


def summary(results, exit_threshold=0.5):
    key = str(exit_threshold)
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    rows = [r["reports"][key] for r in results]
    out = {
        "end_to_end": [r.get("end_to_end") for r in results],
        "early_exit": [x["accuracy_early_exit"] for x in rows],
        "all_blocks": [x["accuracy_all_blocks"] for x in rows],
        "exit_fraction": [x["exit_fraction"] for x in rows],
        "synops_ratio": [x["synops_ratio"] for x in rows],
        "saved_ratio_sparse": [r.get("saved_ratio_sparse") for r in results],
        "saved_ratio_dense": [r.get("saved_ratio_dense") for r in results],
    }
    means = {k: mean(v) for k, v in out.items() if v and v[0] is not None and k != "exit_fraction"}
    means["exit_fraction"] = [mean([e[k] for e in out["exit_fraction"]]) for k in range(len(out["exit_fraction"][0]))]
    out["mean"] = means
    if "end_to_end" in means:
        out["targets"] = {
            "early_exit_within_2_points_of_end_to_end": means["early_exit"] >= means["end_to_end"] - 0.02,
            "synops_ratio_at_least_1.5": means["synops_ratio"] >= 1.5,
            "early_exit_loses_at_most_1_point_vs_all_blocks": means["early_exit"] >= means["all_blocks"] - 0.01,
            "saved_ratio_at_least_2.5_sparse_network": means["saved_ratio_sparse"] >= 2.5,
            "saved_ratio_at_least_2.5_snntorch_dense_twin": means["saved_ratio_dense"] >= 2.5,
        }
    return out


def markdown_table(data: dict) -> str:
    """The results file as a Markdown table (what the docs include), one row per seed and the mean."""
    cfg, summ = data["config"], data["summary"]
    key = str(cfg["exit_threshold"])
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    lines = [f"FSDD spoken digits, 6-layer network in 3 blocks, {cfg['epochs']} epochs per block and end to end, "
             f"Adam lr {cfg['lr']}, read-out `{data['seeds'][0]['readout']}` (temporal structure of the input "
             f"R = {cfg['temporal_structure']}), easy threshold "
             f"`{cfg['easy_threshold']}` (quantile {cfg['easy_quantile']}), HCD exit threshold {cfg['exit_threshold']}; "
             f"test split (300 recordings); commit `{data['environment']['commit']}`.", "",
             "| seed | end to end | BlocTrain early exit | all blocks | exits per block | synaptic ops, all blocks / early exit "
             "| saved for backward, end to end / block-wise (sparse) | (snnTorch dense twin) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in data["seeds"]:
        rep = r["reports"][key]
        lines.append(f"| {r['seed']} | {pct(r['end_to_end'])} | {pct(rep['accuracy_early_exit'])} | "
                     f"{pct(rep['accuracy_all_blocks'])} | {' / '.join(pct(f) for f in rep['exit_fraction'])} | "
                     f"{rep['synops_ratio']:.2f}x | {r['saved_ratio_sparse']:.2f}x | {r['saved_ratio_dense']:.2f}x |")
    m = summ["mean"]
    lines.append(f"| mean | {pct(m['end_to_end'])} | {pct(m['early_exit'])} | {pct(m['all_blocks'])} | "
                 f"{' / '.join(pct(f) for f in m['exit_fraction'])} | {m['synops_ratio']:.2f}x | "
                 f"{m['saved_ratio_sparse']:.2f}x | {m['saved_ratio_dense']:.2f}x |")
    lines += ["", "Targets (means over seeds): " + "; ".join(
        f"{name.replace('_', ' ')}: {'met' if ok else 'NOT met'}" for name, ok in summ["targets"].items()) + "."]
    return "\n".join(lines) + "\n"


def sweep_table(data: dict) -> str:
    """The validation sweep as a Markdown table: means over its seeds per setting."""
    groups = {}
    for r in data["runs"]:
        for thr, rep in r["reports"].items():
            key = (r["readout"], str(r["easy_threshold"]), r["easy_quantile"], thr)
            groups.setdefault(key, []).append(rep)
    seeds = sorted({r["seed"] for r in data["runs"]})
    lines = [f"Validation split (540 recordings never used for training), means over seeds {seeds}; "
             f"{data['config']['epochs']} epochs per block; commit `{data['environment']['commit']}`.", "",
             "| read-out | easy threshold | HCD exit threshold | early exit | all blocks | exits per block "
             "| synaptic ops, all blocks / early exit |", "|---|---|---|---|---|---|---|"]
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    for (readout, easy, q, thr), reps in groups.items():
        rule = f"auto, q = {q}" if easy == "auto" else easy
        exits = [mean([r["exit_fraction"][k] for r in reps]) for k in range(len(reps[0]["exit_fraction"]))]
        lines.append(f"| `{readout}` | {rule} | {thr} | {100 * mean([r['accuracy_early_exit'] for r in reps]):.1f}% | "
                     f"{100 * mean([r['accuracy_all_blocks'] for r in reps]):.1f}% | "
                     f"{' / '.join(f'{100 * e:.0f}%' for e in exits)} | "
                     f"{mean([r['synops_ratio'] for r in reps]):.2f}x |")
    return "\n".join(lines) + "\n"


def environment():
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = ""
    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.machine(), "commit": commit}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 seed, 3 epochs, 600 training recordings (a smoke run)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--hcd-epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--readout", default="auto")
    p.add_argument("--easy-threshold", default="auto", help="'auto' or a number in [0, 1]")
    p.add_argument("--easy-quantile", type=float, default=0.5)
    p.add_argument("--exit-threshold", type=float, default=0.5)
    p.add_argument("--sweep", action="store_true",
                   help="choose defaults on the validation split: read-outs, easy quantiles, exit thresholds")
    p.add_argument("--splits", action="store_true",
                   help="no training: the saved-for-backward ratio of every cut into 3 blocks (initial weights)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="results JSON")
    p.add_argument("--tables-from", type=Path, metavar="JSON",
                   help="no training: recompute the summary and the Markdown table (.txt) of a results file")
    args = p.parse_args(argv)
    if args.tables_from:
        data = json.loads(args.tables_from.read_text())
        if "runs" in data:
            table = sweep_table(data)
        elif "rows" in data:
            table = splits_table(data)
        else:
            data["summary"] = summary(data["seeds"], data["config"]["exit_threshold"])
            args.tables_from.write_text(json.dumps(data, indent=1) + "\n")
            table = markdown_table(data)
        args.tables_from.with_suffix(".txt").write_text(table)
        print(table)
        return data
    torch.set_num_threads(args.threads)
    if fsdd_root() is None:
        print("FSDD not found: set SNNTORCH_SPARSE_FSDD or put it in ../shared/data/fsdd", file=sys.stderr)
        return None
    if args.quick:
        args.seeds, args.epochs, args.hcd_epochs = args.seeds[:1], 3, 2
    easy = args.easy_threshold if args.easy_threshold == "auto" else float(args.easy_threshold)
    data = load(args.quick)
    print(f"FSDD: train {tuple(data[0][0].shape)}, val {tuple(data[1][0].shape)}, test {tuple(data[2][0].shape)}; "
          f"temporal structure R = {bloc.temporal_structure(data[0][0][:, :32]):.2f}", flush=True)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config["temporal_structure"] = round(bloc.temporal_structure(data[0][0][:, :32]), 2)
    if args.splits:
        out = {"config": config, "environment": environment(), "rows": split_memory(data[0], args.readout)}
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(out, indent=1) + "\n")
            args.out.with_suffix(".txt").write_text(splits_table(out))
        print(splits_table(out))
        return out
    if args.sweep:
        out = {"config": config, "environment": environment(), "evaluated_on": "validation", "runs": []}
        grid = [(r, e, q) for r in ("rate", "leaky-max", "leaky-last", "recurrent") for e, q in
                (((0.95, 0.5),) + tuple(("auto", q) for q in (0.3, 0.5, 0.7)))]
        for seed in args.seeds:
            for readout, e, q in grid:
                if readout != "leaky-max" and (e, q) != ("auto", 0.5):
                    continue  # read-outs compared at one rule; rules compared with the default read-out
                r = run_seed(seed, data, args, readout, e, q, exit_thresholds=(0.5, 0.7, 0.9),
                             evaluate_on="val", e2e=False, memory=False)
                r.update(readout=readout, easy_threshold=e, easy_quantile=q)
                out["runs"].append(r)
                rep = r["reports"]["0.5"]
                print(f"seed {seed} {readout:10s} easy {e} q {q}: val early exit {rep['accuracy_early_exit']:.4f} "
                      f"all {rep['accuracy_all_blocks']:.4f} synops x{rep['synops_ratio']:.2f} "
                      f"exits {[round(f, 2) for f in rep['exit_fraction']]} ({r['bloc_seconds']} s)", flush=True)
                if args.out:
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(out, indent=1) + "\n")
        if args.out:
            args.out.with_suffix(".txt").write_text(sweep_table(out))
        print(sweep_table(out))
        return out
    results = []
    for seed in args.seeds:
        r = run_seed(seed, data, args, args.readout, easy, args.easy_quantile, exit_thresholds=(args.exit_threshold,))
        results.append(r)
        rep = r["reports"][str(args.exit_threshold)]
        print(f"seed {seed}: end-to-end {r['end_to_end']:.4f} ({r['end_to_end_seconds']} s); BlocTrain "
              f"[{r['readout']}] early exit {rep['accuracy_early_exit']:.4f}, all blocks "
              f"{rep['accuracy_all_blocks']:.4f}, exits {[round(f, 3) for f in rep['exit_fraction']]}, "
              f"synops x{rep['synops_ratio']:.2f}, saved-for-backward x{r['saved_ratio_sparse']:.2f} "
              f"(dense twin x{r['saved_ratio_dense']:.2f}) ({r['bloc_seconds']} s)", flush=True)
    out = {"config": config, "environment": environment(), "seeds": results,
           "summary": summary(results, args.exit_threshold)}
    print(json.dumps(out["summary"]["mean"], indent=1))
    if "targets" in out["summary"]:
        print(json.dumps(out["summary"]["targets"], indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n")
        # the table the docs include, generated from the same results
        args.out.with_suffix(".txt").write_text(markdown_table(out))
    return out


if __name__ == "__main__":
    main()
