"""Pages generated at Sphinx build time, into ``docs/_generated/`` (not tracked).

* ``_generated/api/*.rst`` -- one autodoc page per public module that imports
  (optional subpackages such as ``data`` and ``bloc`` are left out, with a
  message, when they do not import);
* ``_generated/benchmark_results.md`` -- tables and figures from
  ``benchmarks/results/*.json`` / ``*.png`` (a short note when there are none);
* ``_generated/examples/*.ipynb`` -- copies of ``examples/*.ipynb``, rendered
  as stored (no execution during the docs build).

Everything is rewritten on each build, and only when the content changed (so
Sphinx's incremental build stays incremental).
"""
from __future__ import annotations

import importlib
import json
import re
import pkgutil
import shutil
import sys
from pathlib import Path

# Core modules: always documented (a failed import here is a real error). Internal
# modules (the backends ``ops.*``, ``fused_cpu``, ``active_grad``) are not: the guide
# "Backends" describes them, and their functions are no API a user calls.
CORE = [
    "snntorch_sparse.surrogate",
    "snntorch_sparse.neurons",
    "snntorch_sparse.layers",
    "snntorch_sparse.functional",
    "snntorch_sparse.convert",
    "snntorch_sparse.memory",
    "snntorch_sparse.checkpoint",
    "snntorch_sparse.nir",
    "snntorch_sparse.state",
    "snntorch_sparse.synaptic",
    "snntorch_sparse.recurrent",
    "snntorch_sparse.rsynaptic",
    "snntorch_sparse.alpha",
    "snntorch_sparse.cost_model",
    "snntorch_sparse.spike_tensor",
]
INTERNAL = ["snntorch_sparse.ops", "snntorch_sparse.fused_cpu", "snntorch_sparse.active_grad"]
# Optional subpackages / tools: documented with their public submodules when they import.
OPTIONAL = ["snntorch_sparse.data", "snntorch_sparse.bloc", "snntorch_sparse.bench",
            "snntorch_sparse.demo"]

TITLES = {
    "snntorch_sparse.surrogate": "Sparse surrogate gradients",
    "snntorch_sparse.neurons": "Neurons",
    "snntorch_sparse.layers": "Fused layers",
    "snntorch_sparse.functional": "Functional interface (autograd)",
    "snntorch_sparse.convert": "Converting snnTorch models",
    "snntorch_sparse.memory": "Measuring training memory",
    "snntorch_sparse.spike_tensor": "Compact spike outputs",
    "snntorch_sparse.checkpoint": "Checkpoints between sparse and dense models",
    "snntorch_sparse.nir": "NIR export and import",
    "snntorch_sparse.data": "Datasets and spike encodings",
    "snntorch_sparse.bloc": "BlocTrain",
    "snntorch_sparse.bench": "Benchmark CLI",
    "snntorch_sparse.demo": "Demo CLI",
}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _note(msg: str) -> None:
    # Not a Sphinx warning on purpose: optional modules may be absent.
    print(f"[docs/_generate] {msg}", file=sys.stderr)


# --------------------------------------------------------------------------- API
def _public_submodules(pkg_name: str) -> list:
    pkg = importlib.import_module(pkg_name)
    if not hasattr(pkg, "__path__"):
        return []
    out = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        out.append(f"{pkg_name}.{info.name}")
    return sorted(out)


def _api_page(modname: str, top_level: dict) -> str:
    mod = importlib.import_module(modname)
    names = list(getattr(mod, "__all__", []))
    # Objects re-exported by the top-level package are documented there once.
    moved = [n for n in names if n in top_level and getattr(mod, n, None) is top_level[n]]
    title = f"``{modname}``"
    if modname in TITLES:
        title = f"{TITLES[modname]}: ``{modname}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {modname}", "   :members:"]
    if moved:
        lines.append(f"   :exclude-members: {', '.join(moved)}")
    lines.append("")
    if moved:
        refs = ", ".join(_ref(top_level[n], n) for n in moved)
        lines += ["", f"Also defined here and documented under :mod:`snntorch_sparse`: {refs}.", ""]
    return "\n".join(lines)


def _ref(obj, name: str) -> str:
    role = "class" if isinstance(obj, type) else ("mod" if type(obj).__name__ == "module" else "func")
    return f":{role}:`~snntorch_sparse.{name}`"


def generate_api(out: Path) -> list:
    import snntorch_sparse

    top_level = {n: getattr(snntorch_sparse, n) for n in snntorch_sparse.__all__
                 if not type(getattr(snntorch_sparse, n)).__name__ == "module"}
    modules = list(CORE)
    for name in OPTIONAL:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 -- optional: leave it out
            _note(f"API: leaving out {name} (import failed: {type(exc).__name__}: {exc})")
            continue
        modules.append(name)
        if getattr(importlib.import_module(name), "__all__", None):
            continue  # the package re-exports its API: one page, no duplicate targets
        for sub in _public_submodules(name):
            try:
                importlib.import_module(sub)
            except Exception as exc:  # noqa: BLE001
                _note(f"API: leaving out {sub} (import failed: {type(exc).__name__}: {exc})")
                continue
            modules.append(sub)
    api = out / "api"
    wanted = set()
    for i, modname in enumerate(modules):
        fname = f"{i:02d}_{modname.replace('.', '_')}.rst"
        wanted.add(fname)
        _write(api / fname, _api_page(modname, top_level))
    for stale in api.glob("*.rst"):
        if stale.name not in wanted:
            stale.unlink()
    return modules


# ------------------------------------------------------------------- benchmarks
def _fmt_ms(v):
    return "" if v is None else f"{1e3 * v:.2f}"


def _fmt_mib(v):
    return "" if v is None else f"{v / 2 ** 20:.1f}"


def _fmt_pct(v):
    return "" if v is None else f"{100 * v:.2f}%"


def _table(header, rows) -> list:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines + [""]


def _bench_section(path: Path, data: dict, rel_root: str) -> list:
    meta = data.get("meta", {}) if isinstance(data, dict) else {}
    results = data.get("results") if isinstance(data, dict) else data
    lines = [f"### `{path.name}`", ""]
    desc = ", ".join(f"{k}: {v}" for k, v in meta.items()
                     if isinstance(v, (str, int, float)) and k in
                     ("device", "device_name", "torch", "snntorch", "cpu", "threads", "date", "repeats"))
    if desc:
        lines += [desc, ""]
    rows, ratio_rows = [], []
    for r in results or []:
        cfg = r.get("config", {})
        name = cfg.get("name", "?")
        shape = f"{cfg.get('n_in', '?')}-{'-'.join(str(h) for h in cfg.get('hidden', []))}-{cfg.get('n_out', '?')}"
        for vname, v in r.get("variants", {}).items():
            rows.append([name, shape, cfg.get("T", ""), cfg.get("batch", ""), vname,
                         _fmt_ms(v.get("forward_s")), _fmt_ms(v.get("backward_s")),
                         _fmt_ms(v.get("step_s")), _fmt_mib(v.get("saved_bytes")),
                         _fmt_mib(v.get("peak_bytes")), _fmt_pct(v.get("activity"))])
        for key, v in r.get("ratios", {}).items():
            ratio_rows.append([name, key.replace("_vs_", " vs "),
                               f"{v.get('backward_speedup', float('nan')):.1f}x",
                               f"{v.get('step_speedup', float('nan')):.1f}x",
                               _fmt_pct(v.get("saved_memory_reduction")),
                               _fmt_pct(v.get("peak_memory_reduction"))])
    if rows:
        lines += _table(["config", "network", "T", "batch", "variant", "forward ms", "backward ms",
                         "step ms", "saved MiB", "peak MiB", "activity"], rows)
    if ratio_rows:
        lines += ["Speed-ups and memory saved, sparse variants against each baseline:", ""]
        lines += _table(["config", "comparison", "backward", "training step", "saved memory -",
                         "peak memory -"], ratio_rows)
    png = path.with_suffix(".png")
    if png.exists():
        lines += [f"![{path.stem}]({rel_root}/benchmarks/results/{png.name})", ""]
    return lines


def generate_benchmarks(root: Path, out: Path) -> None:
    res = root / "benchmarks" / "results"
    # Image paths are written relative to docs/benchmarks.md, which includes this file.
    rel_root = ".."
    lines = []
    jsons = sorted(res.glob("*.json")) if res.is_dir() else []
    for path in jsons:
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and "results" not in data:
                continue          # another tool's results file (tutorials, BlocTrain): its own page
            lines += _bench_section(path, data, rel_root)
        except Exception as exc:  # noqa: BLE001 -- a malformed file must not break the docs
            _note(f"benchmarks: could not read {path.name}: {exc}")
            lines += [f"### `{path.name}`", "", f"(could not be read: {type(exc).__name__})", ""]
    done = {p.with_suffix(".png").name for p in jsons}
    for png in sorted(res.glob("*.png")) if res.is_dir() else []:
        if png.name not in done:
            lines += [f"![{png.stem}]({rel_root}/benchmarks/results/{png.name})", ""]
    if not lines:
        lines = ["```{note}", "No measured results in `benchmarks/results/` in this checkout. Run",
                 "`make bench` (or `make bench-quick`) and rebuild the docs to see them here.", "```", ""]
    _write(out / "benchmark_results.md", "\n".join(lines))


# -------------------------------------------------------------- tutorial models
def tutorial_table(data: dict) -> list:
    """Markdown rows of ``python -m snntorch_sparse.tutorials``' summary (means over seeds)."""
    names = {"tutorial5": "tutorial 5 (own forward, FC 784-1000-10)",
             "tutorial6": "tutorial 6 (CSNN, nn.Sequential)",
             "tutorial7": "tutorial 7 (CSNN, tonic N-MNIST format)"}
    rows = []
    for key, s in data.get("summary", {}).items():
        rows.append([names.get(key, key), len(s["seeds"]), f"{100 * s['acc_dense']:.2f}%",
                     f"{100 * s['acc_sparse']:.2f}%", f"{s['acc_gap_points']:+.2f}",
                     f"{100 * s['hidden_activity']:.2f}%", f"{s['step_ms_dense']:.0f}",
                     f"{s['step_ms_sparse']:.0f}", f"{s['speedup']:.2f}x"])
    return _table(["model", "seeds", "accuracy dense", "accuracy sparsify", "gap (points)",
                   "hidden activity", "step ms dense", "step ms sparse", "step speed-up"], rows)


def generate_tutorials(root: Path, out: Path) -> None:
    path = root / "benchmarks" / "results" / "tutorials-cpu.json"
    if not path.exists():
        lines = ["```{note}", "No `benchmarks/results/tutorials-cpu.json` in this checkout: run",
                 "`python -m snntorch_sparse.tutorials`.", "```", ""]
    else:
        data = json.loads(path.read_text())
        lines = [f"Measured on {data.get('machine', '?')}, torch {data.get('torch', '?')}, "
                 f"snnTorch {data.get('snntorch', '?')}; `benchmarks/results/{path.name}`.", ""]
        lines += tutorial_table(data)
    _write(out / "tutorial_results.md", "\n".join(lines))


# ------------------------------------------------------- Synaptic / RLeaky results
def generate_more_neurons(root: Path, out: Path) -> None:
    """Tables of the recurrent / Synaptic benchmark and FSDD runs from their results files."""
    res = root / "benchmarks" / "results"
    lines = []
    path = res / "recurrent-cpu-1thread.json"
    if path.exists():
        rows = []
        for r in json.loads(path.read_text()):
            v = r["variants"]
            sn, fd, sp = v["snntorch"], v["fused_dense"], v["sparse"]
            rows.append(["RLeaky (all-to-all `V`)" if r["kind"] == "rleaky" else "Synaptic", _fmt_pct(r["activity"]),
                         f"{sn['backward_s']:.2f} / {fd['backward_s']:.2f} / {sp['backward_s']:.2f} s",
                         f"{sn['backward_s'] / sp['backward_s']:.1f}x", f"{fd['backward_s'] / sp['backward_s']:.1f}x",
                         f"{sn['step_s'] / sp['step_s']:.2f}x", f"{sn['forward_s']:.2f} / {sp['forward_s']:.2f} s",
                         f"{sn['saved_MiB']:.0f} / {sp['saved_MiB']:.0f} MiB "
                         f"({100 * sp['saved_MiB'] / sn['saved_MiB']:.1f}%)"])
        data = json.loads(path.read_text())
        first = data[0]
        how = (f"medians of {first.get('repeats', 3)} rounds after {first.get('warmup', 1)} warm-up"
               + (f"; {first['note']}" if first.get("note") else ""))
        lines += [f"`benchmarks/results/{path.name}` ({how}):", ""]
        lines += _table(["hidden layer", "activity", "backward: snnTorch / fused dense / sparse",
                         "backward vs snnTorch", "vs fused dense", "step vs snnTorch", "forward: snnTorch / sparse",
                         "saved for backward: snnTorch / sparse"], rows)
        for r in data:
            sj = r["variants"].get("spikingjelly")
            if sj is not None:
                sp = r["variants"]["sparse"]
                lines += ["", f"SpikingJelly 2.0's recurrent LIF (`LinearRecurrentContainer(LIFNode)`, multi-step, "
                          f"torch backend, dense surrogate) in the same run, {r['kind']}: backward "
                          f"{sj['backward_s']:.2f} s ({sj['backward_s'] / sp['backward_s']:.1f}x ours), step "
                          f"{sj['step_s']:.2f} s ({sj['step_s'] / sp['step_s']:.2f}x ours), saved for backward "
                          f"{sj['saved_MiB']:.0f} MiB. SpikingJelly's fast backends (CuPy, Triton) are GPU-only, so on CPU this is "
                          "its torch backend stepping the container in Python, not a tuned baseline. SpikingJelly "
                          "has no second-order (Synaptic) neuron."]
        for r in data:
            if r["kind"] != "rleaky":
                continue
            sn, sp = r["variants"]["snntorch"], r["variants"]["sparse"]
            bx, frac = sn["backward_s"] / sp["backward_s"], sp["saved_MiB"] / sn["saved_MiB"]
            lines += ["", f"Issue-24 targets for the recurrent layer in this run: backward at least 10x faster than "
                      f"snnTorch's -- {'met' if bx >= 10 else '**not met**'} ({bx:.1f}x); saved for backward at most "
                      f"15 % of snnTorch's -- {'met' if frac <= 0.15 else '**not met**'} ({100 * frac:.1f} %).", ""]
    for name, kind in (("fsdd-recurrent-cpu-full-10ep.json", "RLeaky"), ("fsdd-synaptic-cpu-full-10ep.json", "Synaptic")):
        path = res / name
        if not path.exists():
            continue
        f = json.loads(path.read_text())
        rows = [[str(r["seed"]), f"{100 * r['dense']['accuracy']:.1f}%", f"{100 * r['sparse']['accuracy']:.1f}%"]
                for r in f["runs"]]
        m = f["mean"]
        rows.append(["mean", f"**{100 * m['dense']['accuracy']:.1f}%**", f"**{100 * m['sparse']['accuracy']:.1f}%**"])
        lines += [f"FSDD with a {kind} hidden layer, {f['epochs']} epochs (`benchmarks/results/{name}`): activity "
                  f"{_fmt_pct(m['sparse'].get('activity'))}, backward per epoch {m['dense']['backward_s']:.2f} s vs "
                  f"{m['sparse']['backward_s']:.2f} s, epoch {m['dense']['epoch_s']:.1f} s vs {m['sparse']['epoch_s']:.1f} s, "
                  f"saved for backward {m['dense']['saved_bytes'] / 2**20:.1f} vs {m['sparse']['saved_bytes'] / 2**20:.1f} MiB.", ""]
        lines += _table(["seed", f"snnTorch {kind}", f"sparse {kind}"], rows)
    _write(out / "more_neurons_results.md", "\n".join(lines))


# ------------------------------------------------------------ GPU cost model
def measured_gpu_step(root: Path, config: str = "shd") -> dict:
    """Measured SHD step on the GPU: ``{variant: (forward ms, backward ms, step ms)}`` and the profiled kernel total.

    From ``benchmarks/results/nvidia-*.json`` (the newest H200 file first) and
    the profile of that run (``*-profile-shd-sparse_compiled.txt``).
    """
    res = root / "benchmarks" / "results"
    out = {}
    for path in sorted(res.glob("nvidia-h200*.json")) + sorted(res.glob("nvidia-*.json")):
        data = json.loads(path.read_text())
        for r in data.get("results", []):
            if r["config"]["name"] != config:
                continue
            for name in ("sparse_compiled", "sparse_bf16", "spikingjelly", "snntorch"):
                v = r["variants"].get(name)
                if v and name not in out:
                    out[name] = (1e3 * v["forward_s"], 1e3 * v["backward_s"], 1e3 * v["step_s"], path.name)
    for name in ("sparse_compiled", "sparse_bf16"):
        prof = res / f"nvidia-h200-profile-shd-{name}.txt"
        if prof.exists():
            m = re.search(r"Self CUDA time total:\s*([0-9.]+)(ms|us)", prof.read_text())
            if m:
                out[f"{name}_kernels_ms"] = float(m.group(1)) / (1 if m.group(2) == "ms" else 1e3)
    return out


def generate_costs(root: Path, out: Path) -> None:
    from snntorch_sparse import cost_model as cm

    lines = []
    measured = measured_gpu_step(root)
    for prec, variant in (("fp32", "sparse_compiled"), ("bf16", "sparse_bf16")):
        kernels = cm.network_kernels(cm.shd_network(), prec)
        model = sum(k.seconds(cm.H200) for k in kernels) * 1e3
        lines += [f"### {variant} ({'float32' if prec == 'fp32' else 'bfloat16 autocast'} GEMMs)", "",
                  cm.markdown_table(kernels), ""]
        if prec == "fp32":
            rows = ["| chunk budget | launches per step | kernels (ms) | host for the launches (ms) | "
                    "predicted step (ms) |", "|---|---|---|---|---|"]
            for mib in (4, 8, 16, 32):
                pred = cm.step_prediction(cm.network_kernels(cm.shd_network(), budget=mib << 20))
                t, n, step = pred["step"]
                hosts = sum(v[2] for p, v in pred.items() if p != "step")
                rows.append(f"| {mib} MiB{' (the default here)' if mib << 20 == cm.CHUNK_BUDGET else ''} | {n} | "
                            f"{t * 1e3:.2f} | {hosts * 1e3:.2f} | {step * 1e3:.2f} |")
            lines += ["The chunk budget trades launches for memory (the kernels' bytes and FLOPs do not "
                      "change):", "", *rows, ""]
        m = measured.get(variant)
        if m:
            kern = measured.get(f"{variant}_kernels_ms")
            lines += [f"Model: {model:.2f} ms of kernels per step. Last measured on the H200 "
                      f"(`benchmarks/results/{m[3]}`, a build before the time-chunked backward, the per-entry "
                      f"∂L/∂X and the dense-input GEMMs): step {m[2]:.2f} ms (forward {m[0]:.2f}, backward {m[1]:.2f})"
                      + (f", of which {kern:.2f} ms of GPU kernels in the profile" if kern else "")
                      + "; the rest is launch, synchronisation and Python time, which the model leaves out.", ""]
    lines += gpu_config_predictions(root)
    _write(out / "gpu_costs.md", "\n".join(lines))


def gpu_config_predictions(root: Path) -> list:
    """The model's step for every GPU benchmark config next to the last H200 measurements.

    Shapes and activities come from the committed results file (the activity the sparse
    variant had there); the predicted step is kernels and launches only.
    """
    from snntorch_sparse import cost_model as cm

    path = root / "benchmarks" / "results" / "nvidia-h200.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    rows = ["| config | activity | launches | kernels (ms) | predicted step (ms) | last measured: ours, "
            "SpikingJelly, snnTorch backward (ms) | predicted vs SpikingJelly measured | vs SpikingJelly modelled "
            "| predicted backward vs snnTorch measured |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in data["results"]:
        c, v = r["config"], r["variants"]
        ours, sj, st = v.get("sparse_compiled"), v.get("spikingjelly"), v.get("snntorch")
        if not (ours and sj and st and c.get("hidden")):
            continue
        net = cm.mlp_network(c["n_in"], tuple(c["hidden"]), c["n_out"], c["T"], c["batch"], c["density"],
                             ours["activity"], c.get("rate", 0.02))
        pred = cm.step_prediction(cm.network_kernels(net))
        t, n, step = pred["step"]
        bwd = max(pred["backward"][0], pred["backward"][2])
        rows.append(f"| {c['name']} | {100 * ours['activity']:.1f}% | {n} | {t * 1e3:.2f} | {step * 1e3:.2f} | "
                    f"{1e3 * ours['step_s']:.2f}, {1e3 * sj['step_s']:.2f}, {1e3 * st['backward_s']:.1f} | "
                    f"{step / sj['step_s']:.2f}x | {step / cm.spikingjelly_step(net):.2f}x | "
                    f"{st['backward_s'] / bwd:.0f}x |")
    return ["### Every benchmark config", "",
            "The model's step (kernels and launches, not the Python glue or the synchronisations) for each "
            f"config of the last H200 run (`benchmarks/results/{path.name}`; that run measured an earlier "
            "build, before the chunked path), next to what that run measured, and against SpikingJelly's "
            "step under the same model (its GEMMs at the same float32 rate plus its measured LIF node, "
            "`cost_model.spikingjelly_step`): the float32 GEMM rate measured at the 700 x 200 shape "
            "understates larger GEMMs (SpikingJelly measured below its model at hidden 1000), which "
            "the model-to-model ratio cancels.", "", *rows, ""]


# -------------------------------------------------------------------- notebooks
def copy_notebooks(root: Path, out: Path) -> None:
    dst = out / "examples"
    dst.mkdir(parents=True, exist_ok=True)
    names = set()
    for nb in sorted((root / "examples").glob("*.ipynb")):
        names.add(nb.name)
        target = dst / nb.name
        if not target.exists() or target.read_bytes() != nb.read_bytes():
            shutil.copyfile(nb, target)
    for stale in dst.glob("*.ipynb"):
        if stale.name not in names:
            stale.unlink()


def run(root: Path, docs: Path) -> None:
    out = docs / "_generated"
    out.mkdir(exist_ok=True)
    generate_api(out)
    generate_benchmarks(root, out)
    generate_tutorials(root, out)
    generate_costs(root, out)
    generate_more_neurons(root, out)
    copy_notebooks(root, out)
