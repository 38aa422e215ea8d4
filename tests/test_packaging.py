"""A normal (non-editable) install carries the kernel sources and builds them.

The sdist and the wheel are built from a copy of the package's files (PEP 517
hooks of setuptools, no network), the wheel is installed into a fresh virtual
environment in a temporary directory, and a process there -- the repository
neither beside it nor on ``sys.path`` -- must import that copy and build and
load the compiled CPU backend. torch and the other dependencies come from
this environment's site-packages through a ``.pth`` file (no download); that
does not run the nested ``.pth`` files, so this environment's editable install
of snntorch_sparse stays invisible there, which the test checks.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import time
import venv
import zipfile
from pathlib import Path

import pytest

from snntorch_sparse.ops import _build

ROOT = Path(__file__).resolve().parents[1]
# What a build needs from the repository (the sdist holds the same).
PROJECT_FILES = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md"]
PROJECT_DIRS = ["snntorch_sparse", "csrc"]
KERNEL_SUFFIXES = (".cpp", ".h", ".cu", ".cuh")


def _kernel_sources():
    """The repository's ``csrc/`` files, relative to it."""
    return {p.relative_to(ROOT / "csrc").as_posix() for p in (ROOT / "csrc").rglob("*")
            if p.is_file() and p.suffix in KERNEL_SUFFIXES}


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _build_hook(hook, src_dir, out_dir):
    """Run setuptools' PEP 517 ``hook`` in ``src_dir``; the path of the file it wrote."""
    code = f"from setuptools import build_meta as b; print(b.{hook}({str(out_dir)!r}))"
    proc = _run([sys.executable, "-c", code], cwd=src_dir)
    return Path(out_dir) / proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """(sdist, wheel): the sdist from a copy of the sources, the wheel from the sdist, as pip does."""
    tmp = tmp_path_factory.mktemp("dists")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.o")
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, src / name)
    for name in PROJECT_DIRS:
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    sdist = _build_hook("build_sdist", src, tmp / "dist")
    with tarfile.open(sdist) as tar:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp / "unpacked", **safe)
    (unpacked,) = (tmp / "unpacked").iterdir()
    wheel = _build_hook("build_wheel", unpacked, tmp / "dist")
    return sdist, wheel


def test_sdist_carries_the_kernel_sources(dists):
    sdist, _ = dists
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    shipped = {n[len("csrc/"):] for n in names if n.startswith("csrc/") and n.endswith(KERNEL_SUFFIXES)}
    assert shipped == _kernel_sources()
    assert {"setup.py", "MANIFEST.in"} <= names


def test_wheel_carries_the_kernel_sources(dists):
    _, wheel = dists
    prefix = "snntorch_sparse/csrc/"
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n[len(prefix):] for n in zf.namelist() if n.startswith(prefix)}
    assert shipped == _kernel_sources()
    assert {"ops.cpp", "cpu/lif_scan.cpp", "cuda/ops_launch.cu", "cuda/kernels.cuh"} <= shipped


def _dependency_dirs():
    """This environment's site-packages (where torch, snnTorch, numpy are), never the repo."""
    dirs = []
    for d in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
              *(str(Path(__import__(m).__file__).resolve().parents[1]) for m in ("torch", "snntorch"))):
        if d not in dirs and Path(d).resolve() != ROOT:
            dirs.append(d)
    return dirs


def _fresh_venv(where, wheel):
    """A new virtual environment with ``wheel`` installed and the dependencies on a ``.pth``."""
    venv.EnvBuilder(with_pip=False).create(where)
    python = where / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
                .stdout.strip())
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
          "--no-index", str(wheel)])
    (site / "_project_dependencies.pth").write_text("\n".join(_dependency_dirs()) + "\n")
    return python, site


CHILD = textwrap.dedent("""
    import json, sys
    import torch, snntorch_sparse
    from snntorch_sparse.ops import _build, compiled, reference
    ok = compiled.available(strict=True)
    cur = torch.randn(6, 2, 5, dtype=torch.float64) * 2
    beta, thr = torch.full((5,), 0.8, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    same = all(torch.equal(a, b) for a, b in zip(compiled.lif_scan(cur, beta, thr, 1),
                                                 reference.lif_scan(cur, beta, thr, 1)))
    print(json.dumps({"package": snntorch_sparse.__file__, "csrc": str(_build.csrc_dir()),
                      "available": ok, "same": same, "path": sys.path}))
""")


@pytest.mark.timeout(600)
def test_installed_wheel_builds_and_loads_the_kernels(dists, tmp_path):
    """The wheel alone is enough: a fresh venv builds the CPU kernels (clearing a stale lock)."""
    _, wheel = dists
    python, site = _fresh_venv(tmp_path / "venv", wheel)
    build_root = tmp_path / "build"
    # A lock left by a killed build (nobody holds it, 20 min old): cleared, not waited on.
    lock_dir = build_root / _build.library_name(with_cuda=False)
    lock_dir.mkdir(parents=True)
    (lock_dir / "lock").touch()
    old = time.time() - 20 * 60
    os.utime(lock_dir / "lock", (old, old))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(SNNTORCH_SPARSE_BUILD_DIR=str(build_root), SNNTORCH_SPARSE_NO_CUDA="1",
               PATH=os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")]))
    env.pop("SNNTORCH_SPARSE_BUILD_TIMEOUT", None)
    run = [str(python), "-I", "-c", CHILD]

    first = _run(run, cwd=tmp_path, env=env, timeout=540)
    out = json.loads(first.stdout.strip().splitlines()[-1])
    assert Path(out["package"]).resolve().is_relative_to(site.resolve()), out["package"]
    assert Path(out["csrc"]).resolve() == (site / "snntorch_sparse" / "csrc").resolve()
    assert not any(p and Path(p).resolve() == ROOT for p in out["path"])
    assert out["available"] and out["same"]
    assert "removed the stale build lock" in first.stderr
    assert first.stderr.count("snntorch_sparse: building the C++ kernels") == 1
    assert f"cached in {lock_dir}" in first.stderr
    assert not (lock_dir / "lock").exists()

    second = _run(run, cwd=tmp_path, env=env, timeout=120)  # cached: loads silently
    assert json.loads(second.stdout.strip().splitlines()[-1])["available"]
    assert "building" not in second.stderr and "lock" not in second.stderr
