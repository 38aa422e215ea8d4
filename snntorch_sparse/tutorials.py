"""snnTorch's tutorial 5, 6 and 7 models: dense snnTorch vs ``sparsify`` with the package defaults.

Each model is written as snnTorch's tutorial writes it, at snnTorch's default
initialisation, and trained twice from the same initial weights with the
tutorial's optimiser and loss: once as the tutorial's own dense loop, once after
:func:`snntorch_sparse.sparsify` with no arguments. The two runs go batch by
batch in lockstep (a dense step, then a sparse step), so both see the same
machine load, and each step is timed (forward, backward and optimiser step).

Data (real, bundled, offline):

* tutorial 5 (own-forward fully connected, 784-1000-10): scikit-learn's digits
  upscaled to 28x28, flattened and fed as a static input at every step, as
  the tutorial feeds MNIST;
* tutorial 6 (convolutional CSNN, ``nn.Sequential``): the same images,
  rate-coded over ``T`` steps (``snntorch.spikegen.rate``);
* tutorial 7 (convolutional, N-MNIST through tonic): the digits written as
  N-MNIST event files (:mod:`snntorch_sparse.data.nmnist_like`), read, denoised
  and binned into frames by tonic.

    python -m snntorch_sparse.tutorials                    # all three, 3 seeds, writes the results file
    python -m snntorch_sparse.tutorials --quick            # a small run (CI's notebooks use the same code)
    python -m snntorch_sparse.tutorials --tutorials tutorial5 --update   # re-measure one, keep the others
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import snntorch as snn
import snntorch.functional as SF
import torch
import torch.nn.functional as F
from snntorch import spikegen, surrogate, utils
from torch import nn

from .convert import sparsify

__all__ = ["TUTORIALS", "tutorial5_net", "tutorial6_net", "tutorial7_net", "digits_images", "load_data",
           "compare", "summarize", "readme_row", "main"]

TUTORIALS = ("tutorial5", "tutorial6", "tutorial7")
RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "tutorials-cpu.json"


# ----------------------------------------------------------------------------- models, as the tutorials write them
def tutorial5_net(num_inputs: int = 28 * 28, num_hidden: int = 1000, num_outputs: int = 10,
                  beta: float = 0.95, num_steps: int = 25) -> nn.Module:
    """Tutorial 5's ``Net``: its own ``forward`` loops over time, feeding ``x`` at every step."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(num_inputs, num_hidden)
            self.lif1 = snn.Leaky(beta=beta)
            self.fc2 = nn.Linear(num_hidden, num_outputs)
            self.lif2 = snn.Leaky(beta=beta)

        def forward(self, x):
            mem1 = self.lif1.init_leaky()
            mem2 = self.lif2.init_leaky()
            spk2_rec, mem2_rec = [], []
            for step in range(num_steps):
                cur1 = self.fc1(x)
                spk1, mem1 = self.lif1(cur1, mem1)
                cur2 = self.fc2(spk1)
                spk2, mem2 = self.lif2(cur2, mem2)
                spk2_rec.append(spk2)
                mem2_rec.append(mem2)
            return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)

    return Net()


def tutorial6_net(beta: float = 0.5) -> nn.Sequential:
    """Tutorial 6's convolutional SNN (``fast_sigmoid(slope=25)``, ``beta=0.5``)."""
    spike_grad = surrogate.fast_sigmoid(slope=25)
    return nn.Sequential(nn.Conv2d(1, 12, 5), nn.MaxPool2d(2),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                         nn.Conv2d(12, 64, 5), nn.MaxPool2d(2),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                         nn.Flatten(),
                         nn.Linear(64 * 4 * 4, 10),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True, output=True))


def tutorial7_net(beta: float = 0.5) -> nn.Sequential:
    """Tutorial 7's convolutional SNN for N-MNIST (``atan``, ``beta=0.5``)."""
    spike_grad = surrogate.atan()
    return nn.Sequential(nn.Conv2d(2, 12, 5), nn.MaxPool2d(2),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                         nn.Conv2d(12, 32, 5), nn.MaxPool2d(2),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                         nn.Flatten(),
                         nn.Linear(32 * 5 * 5, 10),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True, output=True))


# ----------------------------------------------------------------------------- data
def digits_images(size: int = 28, seed: int = 0, test_size: float = 0.2, limit: int | None = None):
    """scikit-learn's 8x8 digits upscaled (bilinear) to ``size`` x ``size`` in [0, 1]:
    ``((x_train [N, 1, size, size], y_train), (x_test, y_test))``, a stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    y = torch.tensor(d.target)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    if limit is not None:
        xtr, ytr, xte, yte = xtr[:limit], ytr[:limit], xte[:max(limit // 4, 10)], yte[:max(limit // 4, 10)]
    return (xtr, ytr), (xte, yte)


def load_data(name: str, num_steps: int, quick: bool, cache_dir=None):
    """``((x_train, y_train), (x_test, y_test))`` for one tutorial; time-major where the model wants it."""
    limit = 320 if quick else None
    if name == "tutorial5":
        (xtr, ytr), (xte, yte) = digits_images(limit=limit)
        return (xtr.flatten(1), ytr), (xte.flatten(1), yte)          # static [N, 784]
    if name == "tutorial6":
        (xtr, ytr), (xte, yte) = digits_images(limit=limit)
        with torch.random.fork_rng():
            torch.manual_seed(1234)
            return (spikegen.rate(xtr, num_steps=num_steps), ytr), (spikegen.rate(xte, num_steps=num_steps), yte)
    if name == "tutorial7":
        from .data.nmnist_like import nmnist_like_frames
        root = Path(cache_dir or Path.home() / ".cache" / "snntorch_sparse") / "nmnist_like"
        return nmnist_like_frames(root, n_per_class=12 if quick else 120, num_steps=num_steps)
    raise ValueError(f"name must be one of {TUTORIALS}, got {name!r}")


# ----------------------------------------------------------------------------- one step of each loop
SPEC = {
    # name: (model factory, optimiser lr, loss kind, epochs, batch size, num_steps)
    "tutorial5": (tutorial5_net, 5e-4, "ce_mem_sum", 3, 128, 25),
    "tutorial6": (tutorial6_net, 1e-2, "ce_rate", 3, 128, 25),
    "tutorial7": (tutorial7_net, 2e-2, "mse_count", 3, 64, 25),
}


def _run(name: str, net: nn.Module, x: torch.Tensor, dense: bool):
    """Spike and membrane records ``[T, B, 10]`` the way each tutorial's loop computes them."""
    if name == "tutorial5":
        return net(x)                         # its own forward loops over time, dense or sparse
    if not dense:
        return net(x)                         # a converted nn.Sequential takes the whole sequence
    utils.reset(net)                          # the tutorials' loop
    spk_rec, mem_rec = [], []
    for step in range(x.shape[0]):
        spk_out, mem_out = net(x[step])
        spk_rec.append(spk_out)
        mem_rec.append(mem_out)
    return torch.stack(spk_rec), torch.stack(mem_rec)


def _loss(kind: str, spk, mem, y):
    if kind == "ce_mem_sum":                  # tutorial 5: CE of the membrane at every step, summed
        return sum(F.cross_entropy(mem[t], y) for t in range(mem.shape[0]))
    if kind == "ce_rate":                     # tutorial 6
        return SF.ce_rate_loss()(spk, y)
    return SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)(spk, y)   # tutorial 7


def _accuracy(name, net, x, y, dense: bool, batch: int = 256) -> float:
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            xb = x[i:i + batch] if name == "tutorial5" else x[:, i:i + batch]
            spk, mem = _run(name, net, xb, dense)
            correct += int((spk.sum(0).argmax(1) == y[i:i + batch]).sum())
    return correct / len(y)


def _hidden_activity(net) -> float | None:
    layers = [m for m in net.modules() if hasattr(m, "activity")][:-1]   # the last one is the output layer
    acts = [m.activity for m in layers if m.activity is not None]
    return sum(acts) / len(acts) if acts else None


def compare(name: str, seed: int = 0, quick: bool = False, data=None, epochs: int | None = None,
            log=print) -> dict:
    """Train one tutorial model dense and sparse in lockstep; accuracy, activity and step times."""
    factory, lr, loss_kind, n_epochs, batch, T = SPEC[name]
    epochs = (1 if quick else n_epochs) if epochs is None else epochs
    (xtr, ytr), (xte, yte) = data if data is not None else load_data(name, T, quick)
    torch.manual_seed(seed)
    dense = factory()
    sparse = sparsify(dense)                  # the package's defaults, nothing else
    opt_d = torch.optim.Adam(dense.parameters(), lr=lr, betas=(0.9, 0.999))
    opt_s = torch.optim.Adam(sparse.parameters(), lr=lr, betas=(0.9, 0.999))
    g = torch.Generator().manual_seed(seed)
    times = {"dense": [], "sparse": []}
    activity, losses = [], {"dense": [], "sparse": []}
    for epoch in range(epochs):
        order = torch.randperm(len(ytr), generator=g)
        for i in range(0, len(order) - batch + 1 if len(order) >= batch else 1, batch):
            idx = order[i:i + batch]
            xb = xtr[idx] if name == "tutorial5" else xtr[:, idx]
            yb = ytr[idx]
            for kind, net, opt in (("dense", dense, opt_d), ("sparse", sparse, opt_s)):
                t0 = time.perf_counter()
                spk, mem = _run(name, net, xb, kind == "dense")
                loss = _loss(loss_kind, spk, mem, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                times[kind].append(time.perf_counter() - t0)
                losses[kind].append(loss.item())
            a = _hidden_activity(sparse)
            if a is not None:
                activity.append(a)
        log(f"{name} seed {seed} epoch {epoch + 1}: loss dense {losses['dense'][-1]:.3f} "
            f"sparse {losses['sparse'][-1]:.3f}, sparse hidden activity {activity[-1] if activity else 0:.3%}")
    warm = slice(1, None) if len(times["dense"]) > 2 else slice(None)   # the first step builds kernels
    med = {k: statistics.median(v[warm]) for k, v in times.items()}
    return {
        "tutorial": name, "seed": seed, "epochs": epochs, "batch": batch, "num_steps": T,
        "train_samples": int(len(ytr)), "test_samples": int(len(yte)), "steps": len(times["dense"]),
        "acc_dense": _accuracy(name, dense, xte, yte, True),
        "acc_sparse": _accuracy(name, sparse, xte, yte, False),
        "hidden_activity": statistics.mean(activity) if activity else None,
        "step_ms_dense": 1e3 * med["dense"], "step_ms_sparse": 1e3 * med["sparse"],
        "speedup": med["dense"] / med["sparse"],
    }


def summarize(runs: list) -> dict:
    """Means over seeds per tutorial."""
    out = {}
    for name in TUTORIALS:
        rs = [r for r in runs if r["tutorial"] == name]
        if not rs:
            continue
        mean = lambda k: statistics.mean(r[k] for r in rs)  # noqa: E731
        out[name] = {"seeds": [r["seed"] for r in rs], "acc_dense": mean("acc_dense"),
                     "acc_sparse": mean("acc_sparse"), "acc_gap_points": 100 * (mean("acc_dense") - mean("acc_sparse")),
                     "hidden_activity": mean("hidden_activity"), "step_ms_dense": mean("step_ms_dense"),
                     "step_ms_sparse": mean("step_ms_sparse"), "speedup": mean("speedup")}
    return out


def readme_row(result: dict) -> str:
    """The README's table row for a results file (``tests/test_tutorials.py`` checks the README holds it)."""
    cells = []
    for name, s in result["summary"].items():
        cells.append(f"{name.replace('tutorial', 'tutorial ')}: {100 * s['acc_dense']:.1f}% dense vs "
                     f"{100 * s['acc_sparse']:.1f}% sparse, activity {100 * s['hidden_activity']:.1f}%, "
                     f"step {s['speedup']:.2f}x")
    seeds = len(next(iter(result["summary"].values()))["seeds"]) if result["summary"] else 0
    return (f"| snnTorch's tutorial models at default init, `sparsify(net)` with no arguments "
            f"(CPU, {seeds} seeds) | `python -m snntorch_sparse.tutorials` | " + "; ".join(cells) + " |")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tutorials", nargs="+", default=list(TUTORIALS), choices=TUTORIALS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=None, help="override each tutorial's epochs")
    p.add_argument("--quick", action="store_true", help="small data, one epoch")
    p.add_argument("--out", default=None, help=f"results JSON (default {RESULTS.name} unless --quick)")
    p.add_argument("--update", action="store_true",
                   help="replace only these tutorials' runs in the existing results file, keep the others")
    args = p.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        p.error(f"--epochs must be >= 1, got {args.epochs}")
    runs = []
    for name in args.tutorials:
        data = load_data(name, SPEC[name][5], args.quick)
        for seed in args.seeds:
            r = compare(name, seed, args.quick, data=data, epochs=args.epochs)
            print(json.dumps(r))
            runs.append(r)
    out = args.out or (None if args.quick else str(RESULTS))
    if args.update and out and Path(out).exists():
        kept = [r for r in json.loads(Path(out).read_text())["runs"] if r["tutorial"] not in args.tutorials]
        runs = kept + runs
    summary = summarize(runs)
    print(f"{'model':<10} {'acc dense':>9} {'acc sparse':>10} {'gap (pt)':>8} {'activity':>9} "
          f"{'step dense':>10} {'step sparse':>11} {'speed-up':>8}")
    for name, s in summary.items():
        print(f"{name:<10} {s['acc_dense']:>9.2%} {s['acc_sparse']:>10.2%} {s['acc_gap_points']:>8.2f} "
              f"{s['hidden_activity']:>9.2%} {s['step_ms_dense']:>8.1f}ms {s['step_ms_sparse']:>9.1f}ms "
              f"{s['speedup']:>7.2f}x")
    result = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "torch": torch.__version__,
              "snntorch": snn.__version__, "quick": args.quick, "runs": runs, "summary": summary}
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
