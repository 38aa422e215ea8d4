"""Measured figures of the README and the docs, computed from ``benchmarks/results/*.json``.

Nothing measured is typed by hand: the README's "Measured" table is written by

    python docs/_figures.py --write      # rewrites the table between the README's markers

and ``tests/test_figures.py`` fails when the README's table differs from what
the committed results files give (re-run this after committing new results).
The docs use the same numbers as MyST substitutions (``{{ name }}``, see
:func:`substitutions`; ``docs/conf.py`` sets them), so a page cannot quote a
figure its results file does not hold.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BEGIN, END = "<!-- measured:begin (python docs/_figures.py --write) -->", "<!-- measured:end -->"

MIB = 2 ** 20


def _load(name: str, root: Path = ROOT):
    path = root / "benchmarks" / "results" / name
    return json.loads(path.read_text()) if path.exists() else None


def _config(data: dict, name: str) -> dict:
    for r in data["results"]:
        if r["config"].get("name") == name:
            return r
    raise KeyError(f"no config {name!r} in the results file")


def _x(v: float) -> str:
    return f"{v:.1f}x"


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%" if v < 0.01 else f"{100 * v:.1f}%"


def _ms(v: float) -> str:
    return f"{1e3 * v:.1f} ms"


def _bench_cells(r: dict, sparse: str = "sparse_event") -> dict:
    """Figures of one config of a bench results file: ours (``sparse``) vs the baselines."""
    v, ratios = r["variants"], r.get("ratios", {})
    out = {"activity": _pct(v[sparse]["activity"]), "ours_backward": _ms(v[sparse]["backward_s"])}
    for base in ("snntorch", "fused_dense", "spikingjelly"):
        q = ratios.get(f"{sparse}_vs_{base}")
        if q is None:
            continue
        out[f"{base}_backward"] = _ms(v[base]["backward_s"])
        out[f"vs_{base}_backward"] = _x(q["backward_speedup"])
        out[f"vs_{base}_step"] = _x(q["step_speedup"])
        out[f"vs_{base}_saved"] = f"-{_pct(q['saved_memory_reduction'])}"
        if "peak_memory_reduction" in q:
            out[f"vs_{base}_peak"] = f"{-100 * q['peak_memory_reduction']:+.0f}%"
        out[f"{base}_saved_mib"] = f"{v[base]['saved_bytes'] / MIB:.0f}"
    out["ours_saved_mib"] = f"{v[sparse]['saved_bytes'] / MIB:.1f}"
    return out


def substitutions(root: Path = ROOT) -> dict:
    """``{name: text}`` of every figure the docs quote (MyST substitutions)."""
    subs = {}
    h1000 = _load("cpu-2cores-h1000.json", root)
    if h1000:
        r = _config(h1000, "shd_h1000")
        subs["h1000_snntorch_saved"] = f"{r['variants']['snntorch']['saved_bytes'] / MIB:.0f} MiB"
        subs["h1000_ours_saved"] = f"{r['variants']['sparse_event']['saved_bytes'] / MIB:.0f} MiB"
    sys.path.insert(0, str(root))
    from snntorch_sparse import cost_model

    subs["h200_bandwidth"] = f"{cost_model.H200.bandwidth / 1e12:.1f} TB/s"
    subs["h200_fp32"] = f"{cost_model.H200.gemm_flops['fp32'] / 1e12:.1f} TFLOP/s"
    subs["h200_bf16"] = f"{cost_model.H200.gemm_flops['bf16'] / 1e12:.0f} TFLOP/s"
    shd = cost_model.shd_network()
    subs["cost_activity"] = f"{100 * shd[0].activity:.2f}%"
    subs["host_launch_us"] = f"{cost_model.HOST_LAUNCH_S * 1e6:.0f} µs"
    subs["cost_spike_rate"] = f"{100 * shd[0].spike_rate:.0f}%"
    peak = _load("peak-memory-cpu.json", root)
    if peak:
        shd = peak["peak_bytes"].get("shd", {})
        for key, name in (("snntorch", "snntorch"), ("sparse_compiled:fused", "fused"),
                          ("sparse_compiled:generic", "generic")):
            if key in shd:
                subs[f"peak_cpu_shd_{name}"] = f"{shd[key] / MIB:.0f} MiB"
        if "snntorch" in shd and "sparse_compiled:fused" in shd:
            subs["peak_cpu_shd_fused_fraction"] = f"{100 * shd['sparse_compiled:fused'] / shd['snntorch']:.1f}%"
        if "snntorch" in shd and "sparse_compiled:cuda-layout" in shd:
            lay = shd["sparse_compiled:cuda-layout"]
            subs["peak_cuda_layout_shd"] = f"{lay / MIB:.1f} MiB"
            subs["peak_cuda_layout_shd_fraction"] = f"{100 * lay / shd['snntorch']:.1f}%"
            sweep = [(int(k.rsplit("-", 1)[1][:-3]), v) for k, v in shd.items()
                     if k.startswith("sparse_compiled:cuda-layout-") and k.endswith("mib")]
            subs["peak_cuda_layout_sweep"] = ", ".join(
                f"{v / MIB:.1f} MiB ({100 * v / shd['snntorch']:.1f}%)" for _, v in sorted(sweep))
    own = _load("own-forward-cpu.json", root)
    if own:
        subs["own_forward_speedup"] = f"{own['speedup']['sparse']:.2f}x"
    cpu = _load("cpu-2cores.json", root)
    if cpu:
        subs.update({f"cpu_shd_{k}": v for k, v in _bench_cells(_config(cpu, "shd")).items()})
        for cfg, tag in (("shd", "shd"), ("fsdd_shd", "fsdd")):
            try:
                r = _config(cpu, cfg)
            except KeyError:
                continue
            for name, key in (("snntorch", "snntorch"), ("ours", "sparse_event"), ("spikingjelly", "spikingjelly")):
                runs = r["variants"].get(key, {}).get("backward_runs_s")
                if runs:  # the backward of each timed round, in ms
                    subs[f"cpu_{tag}_{name}_rounds"] = ", ".join(f"{1e3 * v:.0f}" for v in runs) + " ms"
    return subs


def _row(what: str, command: str, result: str) -> str:
    return f"| {what} | {command} | {result} |"


def measured_rows(root: Path = ROOT) -> list:
    """The README's "Measured" table, row by row, from the committed results files."""
    sys.path.insert(0, str(root))
    from snntorch_sparse import tutorials

    rows = ["| what | command | result |", "|---|---|---|",
            _row("gradients vs snnTorch dense BPTT (same clamped surrogate)", "`make test` (`tests/test_parity.py`)",
                 "asserted by the tests: float64 relative error < 1e-10; float32 < 1e-5 with the GEMM forward "
                 "(`event_forward=False`), < 1e-4 with the default event forward (it sums each input current "
                 "event by event, in another order than snnTorch's GEMM); spikes identical")]
    tut = _load("tutorials-cpu.json", root)
    if tut:
        rows.append(tutorials.readme_row(tut))
    own = _load("own-forward-cpu.json", root)
    if own:
        rows.append(_row("own-forward model fed spikes that change every step (tutorial-5 net 784-1000-10, T=25, "
                         f"B=128, 10% input), `sparsify(net)` defaults ({own['machine']}, {own['threads']} threads)",
                         "`python benchmarks/own_forward_speed.py --repeats 12 --out "
                         "benchmarks/results/own-forward-cpu.json`",
                         f"training step {own['speedup']['sparse']:.2f}x dense snnTorch's speed (medians of "
                         f"{own['repeats'] - 1} steps: dense {1e3 * own['median_step_s']['dense']:.0f} ms, sparse "
                         f"{1e3 * own['median_step_s']['sparse']:.0f} ms, on a machine shared with other jobs) "
                         "(`own-forward-cpu.json`)"))
    rec = _load("recurrent-cpu-1thread.json", root)
    if rec:
        parts = []
        for r in rec:
            v = r["variants"]
            sn, fd, sp = v["snntorch"], v["fused_dense"], v["sparse"]
            parts.append(f"{'RLeaky' if r['kind'] == 'rleaky' else 'Synaptic'} (activity {_pct(r['activity'])}): "
                         f"backward {_x(sn['backward_s'] / sp['backward_s'])} vs snnTorch, "
                         f"{_x(fd['backward_s'] / sp['backward_s'])} vs our fused dense, step "
                         f"{_x(sn['step_s'] / sp['step_s'])}, saved for backward "
                         f"{_pct(sp['saved_MiB'] / sn['saved_MiB'])} of snnTorch's"
                         + (f", backward {_x(v['spikingjelly']['backward_s'] / sp['backward_s'])} vs "
                            "SpikingJelly's recurrent LIF (its CPU torch backend)" if "spikingjelly" in v else ""))
        note = f" ({rec[0]['note']})" if rec[0].get("note") else ""
        rows.append(_row("recurrent / Synaptic SHD shape (700-200r-20, T=500, B=256), CPU, 1 thread",
                         "`OMP_NUM_THREADS=1 python benchmarks/recurrent_bench.py --T 500 --batch 256 "
                         f"--repeats {rec[0].get('repeats', 3)} --warmup {rec[0].get('warmup', 1)}`",
                         "; ".join(parts) + f"{note} (`recurrent-cpu-1thread.json`)"))
    for name, label in (("fsdd-recurrent-cpu-full-10ep.json", "recurrent network (RLeaky)"),
                        ("fsdd-synaptic-cpu-full-10ep.json", "Synaptic hidden layer")):
        f = _load(name, root)
        if f:
            m = f["mean"]
            per = " / ".join(f"{100 * r['dense']['accuracy']:.1f}" for r in f["runs"])
            per_s = " / ".join(f"{100 * r['sparse']['accuracy']:.1f}" for r in f["runs"])
            rows.append(_row(f"FSDD spoken digits, {label}, {len(f['runs'])} seeds, {f['epochs']} epochs, CPU",
                             "`python benchmarks/fsdd_recurrent.py --epochs 10"
                             + (" --kind synaptic`" if f["kind"] == "synaptic" else "`"),
                             f"snnTorch {100 * m['dense']['accuracy']:.1f}% vs sparse "
                             f"{100 * m['sparse']['accuracy']:.1f}% (per seed {per} vs {per_s}), backward per epoch "
                             f"{_x(m['dense']['backward_s'] / m['sparse']['backward_s'])} faster (`{name}`)"))
    demo = _load("demo-cpu.json", root)
    if demo:
        rows.append(_demo_row(demo))
    cpu = _load("cpu-2cores.json", root)
    if cpu:
        env = cpu["meta"]
        parts = []
        for name, label in (("shd", "synthetic SHD-like input"), ("fsdd_shd", "real spoken digits (`fsdd_shd`)")):
            try:
                r = _config(cpu, name)
            except KeyError:
                continue
            c = _bench_cells(r)
            parts.append(f"{label}, activity {c['activity']}: our backward {c['ours_backward']} vs snnTorch's "
                         f"{c['snntorch_backward']} = {c['vs_snntorch_backward']}, training step "
                         f"{c['vs_snntorch_step']}, saved for backward {c['vs_snntorch_saved']} "
                         f"({c['ours_saved_mib']} vs {c['snntorch_saved_mib']} MiB); vs our fused dense layers: "
                         f"backward {c['vs_fused_dense_backward']}; vs SpikingJelly: backward "
                         f"{c['vs_spikingjelly_backward']}")
            if name == "shd":
                gemm = r["variants"]["sparse_compiled"]["step_s"] / r["variants"]["sparse_event"]["step_s"]
                parts[-1] += f"; the default event forward makes the step {_x(gemm)} faster than the GEMM forward"
        cfg = _config(cpu, "shd")["config"]
        rows.append(_row(f"CPU ({env.get('threads')} cores), SHD config ({cfg['n_in']}-"
                         f"{'-'.join(map(str, cfg['hidden']))}-{cfg['n_out']}, T={cfg['T']}, B={cfg['batch']})",
                         "`python -m snntorch_sparse.bench --configs shd fsdd_shd --repeats 9 --warmup 2`",
                         "; ".join(parts) + f" (`cpu-2cores.json`, {env.get('date', '?')[:10]}; earlier runs and "
                         "their spread: `benchmarks/results/cpu-2cores-log.txt`)"))
    sweep, h1000 = _load("cpu-2cores-sweep.json", root), _load("cpu-2cores-h1000.json", root)
    if sweep:
        labels = {"fmnist": "F-MNIST-like", "nmnist": "N-MNIST-like", "on512": "Open Neuromorphic n=512",
                  "shd_h100": "SHD hidden 100", "shd_h500": "SHD hidden 500", "shd_h1000": "SHD hidden 1000"}
        parts, sj = [], []
        results = sweep["results"] + (h1000["results"] if h1000 else [])
        for r in results:
            c = _bench_cells(r)
            name = r["config"]["name"]
            parts.append(f"{labels.get(name, name)} (activity {c['activity']}): {c['vs_snntorch_backward']} / "
                         f"{c['vs_snntorch_step']} / {c['vs_snntorch_saved']}")
            if "vs_spikingjelly_backward" in c:
                sj.append(r["ratios"]["sparse_event_vs_spikingjelly"]["backward_speedup"])
        text = "vs snnTorch, backward / step / saved for backward: " + "; ".join(parts)
        if sj:
            text += f"; vs SpikingJelly 2.0, backward {min(sj):.1f}-{max(sj):.1f}x"
        rows.append(_row("CPU (2 cores), hidden-size sweep and paper configs",
                         "`--tag sweep`, `--tag h1000` (see `docs/benchmarks.md`)",
                         text + " (`cpu-2cores-sweep.json`, `cpu-2cores-h1000.json`)"))
    gpu = _load("nvidia-h200.json", root)
    if gpu:
        rows.append(_gpu_row(gpu))
    return rows


def _gpu_row(gpu: dict) -> str:
    """The H200 row: the fused CUDA path at the SHD config, float32 and bfloat16 autocast."""
    r = _config(gpu, "shd")
    v, q = r["variants"], r["ratios"]
    c = _bench_cells(r, "sparse_compiled")
    step = lambda name: f"{1e3 * v[name]['step_s']:.2f} ms"  # noqa: E731
    text = (f"vs snnTorch: backward {c['vs_snntorch_backward']}, step {c['vs_snntorch_step']}, saved for backward "
            f"{c['vs_snntorch_saved']}, peak CUDA memory {c['vs_snntorch_peak']}; training step "
            f"{step('sparse_compiled')} (float32)")
    if "sparse_bf16" in v:
        text += (f", {step('sparse_bf16')} under bfloat16 autocast "
                 f"({_x(q['sparse_bf16_vs_sparse_compiled']['step_speedup'])} our float32 step)")
    if "spikingjelly" in v:
        text += f"; SpikingJelly 2.0's step {step('spikingjelly')}"
    build = f", build {gpu['meta']['commit']}" if gpu["meta"].get("commit") else ""
    text += (f" (`nvidia-h200.json`, {gpu['meta'].get('date', '?')[:10]}{build}; other configs in "
             "`docs/benchmarks.md`)")
    return _row(f"{gpu['meta'].get('device', 'GPU')}, SHD config (activity {c['activity']})",
                "`bash benchmarks/run_gpu.sh`", text)


def _demo_row(demo: dict) -> str:
    env = demo["environment"]
    parts = []
    for key, label in (("digits", "digits"), ("fsdd", "FSDD")):
        runs = demo["runs"].get(key)
        if not runs:
            continue
        mean = lambda kind, k: sum(r[kind][k] for r in runs) / len(runs)  # noqa: E731
        parts.append(f"{label}: accuracy {100 * mean('dense', 'accuracy'):.2f}% (snnTorch) vs "
                     f"{100 * mean('sparse', 'accuracy'):.2f}% (sparse), epoch "
                     f"{_x(mean('dense', 'epoch_s') / mean('sparse', 'epoch_s'))} faster, backward "
                     f"{_x(mean('dense', 'backward_s') / mean('sparse', 'backward_s'))} faster, "
                     f"{100 * (1 - mean('sparse', 'saved_bytes') / mean('dense', 'saved_bytes')):.1f}% less saved "
                     f"for backward")
    seeds = len(env.get("seeds", [0]))
    return _row(f"`make demo` ({env.get('machine', '?')}, {seeds} seed{'s' if seeds > 1 else ''})",
                "`python -m snntorch_sparse.demo --out benchmarks/results/demo-cpu.json`",
                "; ".join(parts) + " (`demo-cpu.json`)")


def measured_table(root: Path = ROOT) -> str:
    return "\n".join([BEGIN, *measured_rows(root), END])


def readme_table(readme: str) -> str:
    """The README's current table, markers included (``""`` when the markers are missing)."""
    if BEGIN not in readme or END not in readme:
        return ""
    return readme[readme.index(BEGIN):readme.index(END) + len(END)]


def write_readme(root: Path = ROOT) -> bool:
    path = root / "README.md"
    text = path.read_text()
    old = readme_table(text)
    if not old:
        raise SystemExit(f"README.md lacks the markers {BEGIN!r} ... {END!r}")
    new = text.replace(old, measured_table(root))
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        print("README.md " + ("updated" if write_readme() else "already up to date"))
    else:
        print(measured_table())
