"""The benchmark CLI runs end to end on a tiny configuration and measures what it says."""
import json

import pytest
import torch

from snntorch_sparse import bench
from snntorch_sparse.memory import saved_tensor_bytes


def test_saved_tensor_bytes_hand_computed():
    lin = torch.nn.Linear(10, 4)
    x = torch.randn(3, 10, requires_grad=True)
    with saved_tensor_bytes(lin) as c:
        y = torch.relu(lin(x))  # Linear saves its input x (3·10 floats); relu saves its output (3·4)
    assert c.bytes == (3 * 10 + 3 * 4) * 4
    with saved_tensor_bytes() as c_all:  # without exclusion weight.t() counts too
        torch.relu(lin(x))
    assert c_all.bytes == c.bytes + 10 * 4 * 4
    del y



def test_saved_tensor_bytes_counts_only_what_a_live_graph_holds():
    """Tensors saved by graph nodes freed inside the block are not held for backward."""
    w = torch.ones(256, requires_grad=True)
    x = torch.rand(256)
    with saved_tensor_bytes(w) as c:
        for _ in range(5):  # each graph is dropped at once: nothing stays saved
            (w * torch.rand(256)).sum().item()
        loss = (w * x).sum()  # keeps x
    assert (c.bytes, c.count) == (256 * 4, 1)
    kept = []
    with saved_tensor_bytes(w) as c:
        for _ in range(5):
            kept.append((w * torch.rand(256)).sum())
    assert (c.bytes, c.count) == (5 * 256 * 4, 5)
    loss.backward()  # the saved tensors unpack to the originals
    assert torch.equal(w.grad, x)


def test_saved_tensor_bytes_snntorch_leaky_step():
    """snnTorch's Leaky runs its surrogate twice per step, once for the spike and once
    for the reset term, which it detaches: only the spike's saved membrane shift
    ([4, 8] floats, plus at most a scalar) stays held for backward."""
    import snntorch as snn
    lif = snn.Leaky(beta=0.9)
    cur = torch.randn(4, 8, requires_grad=True)
    mem = torch.randn(4, 8, requires_grad=True)
    packed = []

    def pack(t):
        packed.append(t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        lif(cur, mem)
    assert packed.count(4 * 8 * 4) == 2  # both surrogate calls saved a [4, 8] tensor
    with saved_tensor_bytes(lif) as c:
        spk, mem2 = lif(cur, mem)
    assert c.bytes in (4 * 8 * 4, 4 * 8 * 4 + 4)
    (spk.sum() + mem2.sum()).backward()


def test_tiny_run_writes_results(tmp_path):
    cfg = bench.BenchConfig("tiny", 40, (24,), 5, 12, 8, density=0.1, calib_steps=2,
                            variants=("snntorch", "fused_dense", "sparse_reference", "sparse_compiled"))
    res = bench.run_config(cfg, torch.device("cpu"), repeats=2, warmup=1, log=lambda *a: None)
    assert set(res["variants"]) >= {"snntorch", "fused_dense", "sparse_reference"}
    for v in res["variants"].values():
        assert v["forward_s"] > 0 and v["backward_s"] > 0 and v["step_s"] >= v["backward_s"]
    sparse, dense = res["variants"]["sparse_reference"], res["variants"]["snntorch"]
    assert sparse["saved_bytes"] < dense["saved_bytes"]
    assert 0 < res["activity"] < 1
    assert "sparse_reference_vs_snntorch" in res["ratios"]


def test_cli_quick_json(tmp_path, monkeypatch):
    monkeypatch.setitem(bench.PRESETS, "quick_shd",
                        bench.BenchConfig("quick_shd", 30, (16,), 4, 10, 4, calib_steps=1,
                                          variants=("snntorch", "sparse_reference")))
    bench.main(["--quick", "--repeats", "1", "--warmup", "0", "--out", str(tmp_path), "--tag", "t"])
    files = list(tmp_path.glob("*-t.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert data["results"][0]["config"]["name"] == "quick_shd"
    assert "torch" in data["meta"]


def test_cli_keeps_finished_configs_when_a_later_one_fails(tmp_path, monkeypatch):
    """The JSON is rewritten after every config, so a run killed later keeps what it measured."""
    real_run = bench.run_config

    def run(cfg, *args):
        if cfg.name == "on512":
            raise MemoryError("out of memory")
        return real_run(cfg, *args)

    monkeypatch.setattr(bench, "run_config", run)
    monkeypatch.setitem(bench.PRESETS, "quick_shd",
                        bench.BenchConfig("quick_shd", 30, (16,), 4, 10, 4, calib_steps=1,
                                          variants=("snntorch", "sparse_reference")))
    with pytest.raises(MemoryError):
        bench.main(["--configs", "quick_shd", "on512", "--repeats", "1", "--warmup", "0",
                    "--out", str(tmp_path), "--tag", "t"])
    data = json.loads(next(tmp_path.glob("*-t.json")).read_text())
    assert [r["config"]["name"] for r in data["results"]] == ["quick_shd"]


def test_variants_are_timed_round_by_round(monkeypatch):
    """Every variant takes warmup + repeats steps, one per round, the first of a round rotating."""
    order = []
    real_step = bench._timed_step

    def spy(net, *args):
        order.append(net.tag)
        return real_step(net, *args)

    monkeypatch.setattr(bench, "_timed_step", spy)
    cfg = bench.BenchConfig("tiny", 40, (24,), 5, 12, 8, density=0.1, calib_steps=1)
    x, labels = bench.class_spike_data(cfg, cfg.n_out, torch.device("cpu"))
    nets = {}
    for tag in ("a", "b", "c"):
        nets[tag] = bench.FusedNet(cfg, bth=cfg.bth, backend="reference")
        nets[tag].tag = tag
    res = bench.time_interleaved(nets, x, labels, cfg, repeats=2, warmup=1)
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(r["repeats"] == 2 and r["backward_s"] > 0 and r["saved_bytes"] > 0 for r in res.values())
    assert all(len(r["backward_runs_s"]) == 2 and min(r["backward_runs_s"]) <= r["backward_s"] <= max(r["backward_runs_s"])
               for r in res.values())


def test_profile_step_script_profiles_a_calibrated_step(monkeypatch, capsys):
    """benchmarks/profile_step.py runs under the benchmark's set-up and labels both phases."""
    import runpy
    import sys
    from pathlib import Path

    calls = []
    real_setup = bench.calibrated_setup
    monkeypatch.setattr(bench, "calibrated_setup", lambda *a: calls.append(a) or real_setup(*a))
    monkeypatch.setitem(bench.PRESETS, "quick_shd",
                        bench.BenchConfig("quick_shd", 30, (16,), 4, 10, 4, calib_steps=1))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "profile_step.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--config", "quick_shd", "--variant", "sparse_reference",
                                      "--device", "cpu"])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert len(calls) == 1
    assert "[quick_shd] sparse_reference on cpu" in out
    assert "phase:forward" in out and "phase:backward" in out


def test_generic_peak_timeline_lists_the_step(monkeypatch, capsys):
    """benchmarks/generic_peak_memory.py --timeline: the listed allocations add up to the peak it reports."""
    import re
    import runpy
    import sys
    from pathlib import Path

    monkeypatch.setitem(bench.PRESETS, "quick_shd",
                        bench.BenchConfig("quick_shd", 30, (64, 64), 4, 100, 32, calib_steps=1))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "generic_peak_memory.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--configs", "quick_shd", "--variants", "sparse_compiled",
                                      "--timeline", "--min-mib", "0.1", "--path", "generic"])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    peak = float(re.search(r"sparse_compiled\s+peak\s+([0-9.]+) MiB", out).group(1))
    rows = re.findall(r"^\s+(peak)?\s+([+-][0-9.]+) MiB ->\s+([0-9.]+) MiB", out, re.M)
    assert rows and peak > 0
    assert [float(r[2]) for r in rows if r[0]] == [peak]  # the marked row is the maximum
    assert max(float(r[2]) for r in rows) == peak
    assert "_SparseLIFBackward" in out  # the step's backward is in the listing


@pytest.mark.parametrize("argv, message", [
    (["--variants", "foo"], "unknown variants ['foo']"),
    (["--variants", "sparse_event", "typo"], "unknown variants ['typo']"),
    (["--variants"], "--variants needs at least one name"),
    (["--configs", "on16384", "--variants", "sparse_reference"], "none of --variants"),
    (["--repeats", "0"], "--repeats must be >= 1"),
    (["--batch", "0"], "--batch must be >= 1"),
    (["--T", "-3"], "--T must be >= 1"),
    (["--warmup", "-1"], "--warmup must be >= 0"),
])
def test_cli_rejects_bad_arguments(argv, message, capsys, tmp_path):
    """Bad arguments stop before any run with a message naming the argument."""
    with pytest.raises(SystemExit) as exc:
        bench.main(argv + ["--out", str(tmp_path)])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_fsdd_config_errors():
    with pytest.raises(ValueError, match="even n_in"):
        bench.fsdd_batch(bench.BenchConfig("odd", 701, (8,), 10, 5, 4, data="fsdd"), torch.device("cpu"))
    cfg = bench.BenchConfig("bad", 16, (8,), 10, 5, 4, data="mnist", calib_steps=0)
    with pytest.raises(ValueError, match="data must be"):
        bench.calibrated_setup(cfg, torch.device("cpu"))


@pytest.mark.skipif(__import__("snntorch_sparse.data.audio", fromlist=["fsdd_root"]).fsdd_root() is None,
                    reason="FSDD not present")
def test_fsdd_batch_real_recordings(tmp_path):
    """The fsdd_shd preset's data: real digits, every class, SHD-like density."""
    assert bench.PRESETS["fsdd_shd"].data == "fsdd" and bench.PRESETS["fsdd_shd"].n_in == 700
    cfg = bench.BenchConfig("fsdd_small", 120, (8,), 10, 200, 20, data="fsdd")
    x, y = bench.fsdd_batch(cfg, torch.device("cpu"), cache_dir=tmp_path)
    assert x.shape == (200, 20, 120) and x.dtype == torch.float32
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert torch.bincount(y, minlength=10).tolist() == [2] * 10
    assert 0.003 < x.mean().item() < 0.1


def test_default_configs_add_real_digits_when_present(monkeypatch, tmp_path):
    import snntorch_sparse.data.audio as audio
    monkeypatch.setattr(audio, "fsdd_root", lambda: None)
    assert bench.default_configs("cpu") == ["quick_shd", "shd"]
    monkeypatch.setattr(audio, "fsdd_root", lambda: tmp_path)
    assert bench.default_configs("cpu") == ["quick_shd", "shd", "fsdd_shd"]
    assert "fsdd_shd" not in bench.default_configs("cuda") and "on16384" in bench.default_configs("cuda")
    assert all(n in bench.PRESETS for n in bench.default_configs("cuda"))
