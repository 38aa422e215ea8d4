"""The JIT build's lock file and first-build line (snntorch_sparse.ops._build).

PyTorch's ``cpp_extension`` serialises builds with a ``lock`` file it waits on
without a limit; a killed build used to hang every later first use. Nothing
here compiles: the lock is handled before the compiler would run, and the
build itself is replaced by a stand-in where one is needed (the real build,
with a stale lock, is exercised in test_packaging.py).
"""
import os
import time
import warnings

import pytest
import torch
from torch.utils import cpp_extension

from snntorch_sparse.ops import _build, compiled

needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"),
                                reason="lock owners are checked through /proc (Linux)")


@pytest.fixture
def build_root(tmp_path, monkeypatch):
    """A private build directory, so the shared extension cache is not touched."""
    monkeypatch.setenv("SNNTORCH_SPARSE_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.delenv(_build.TIMEOUT_ENV, raising=False)
    return tmp_path / "build"


@pytest.fixture
def fresh_state(monkeypatch):
    """``compiled.available()`` as on a first call (restored afterwards)."""
    monkeypatch.setattr(compiled, "_state",
                        {"tried": False, "ok": False, "error": None, "warned": False})


def _lock_path():
    name = _build.library_name(_build.cuda_wanted())
    return os.path.join(_build.build_directory(name), "lock")


def _make_lock(path, age_s=0.0):
    """A lock file left behind (nobody holds it open), ``age_s`` seconds old."""
    with open(path, "w"):
        pass
    if age_s:
        t = time.time() - age_s
        os.utime(path, (t, t))


@pytest.fixture
def held_lock(tmp_path):
    """A lock file kept open by this process, like a build in progress."""
    path = str(tmp_path / "lock")
    fd = os.open(path, os.O_CREAT | os.O_EXCL)
    yield path
    os.close(fd)
    if os.path.exists(path):
        os.remove(path)


# ------------------------------------------------------------------ the timeout setting

@pytest.mark.parametrize("raw, expected", [("", 600.0), ("2.5", 2.5), (" 0 ", 0.0)])
def test_lock_timeout_reads_env(monkeypatch, raw, expected):
    monkeypatch.setenv(_build.TIMEOUT_ENV, raw)
    assert _build.lock_timeout() == expected


@pytest.mark.parametrize("raw", ["ten", "-1", "nan", "inf", "5s"])
def test_lock_timeout_rejects_bad_values(monkeypatch, raw):
    monkeypatch.setenv(_build.TIMEOUT_ENV, raw)
    with pytest.raises(_build.BuildConfigError, match=f"{_build.TIMEOUT_ENV} must be .*{raw!r}"):
        _build.lock_timeout()


def test_bad_timeout_is_an_error_not_a_fallback(build_root, fresh_state, monkeypatch):
    monkeypatch.setenv(_build.TIMEOUT_ENV, "soon")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning either
        with pytest.raises(_build.BuildConfigError, match=_build.TIMEOUT_ENV):
            compiled.available()


# ------------------------------------------------------------------ stale and live locks

@needs_proc
def test_lock_holder_seen_through_proc(held_lock, tmp_path):
    assert _build.lock_holder_alive(held_lock) is True
    left = str(tmp_path / "left")
    _make_lock(left)
    assert _build.lock_holder_alive(left) is False


@needs_proc
def test_lock_without_holder_is_removed(tmp_path):
    lock = str(tmp_path / "lock")
    _make_lock(lock)  # brand new, but its process is gone
    with pytest.warns(RuntimeWarning, match="removed the stale build lock .*no running process"):
        assert _build.wait_for_lock(lock, timeout=60) is True
    assert not os.path.exists(lock)


def test_old_lock_is_removed_when_owner_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(_build, "lock_holder_alive", lambda lock: None)  # e.g. no /proc
    lock = str(tmp_path / "lock")
    _make_lock(lock, age_s=_build.STALE_LOCK_SECONDS + 60)
    with pytest.warns(RuntimeWarning, match="removed the stale build lock .*min old"):
        assert _build.wait_for_lock(lock, timeout=60) is True
    assert not os.path.exists(lock)


@pytest.mark.timeout(30)
def test_recent_lock_of_unknown_owner_is_waited_on(tmp_path, monkeypatch):
    monkeypatch.setattr(_build, "lock_holder_alive", lambda lock: None)
    lock = str(tmp_path / "lock")
    _make_lock(lock, age_s=60)
    with pytest.raises(_build.BuildError, match="timed out after 0.3 s .*lock file"):
        _build.wait_for_lock(lock, timeout=0.3)
    assert os.path.exists(lock)  # not ours to remove


def test_wait_returns_when_the_lock_goes(tmp_path):
    assert _build.wait_for_lock(str(tmp_path / "lock"), timeout=0) is False


@needs_proc
@pytest.mark.timeout(30)
def test_held_lock_falls_back_within_the_timeout(build_root, fresh_state, monkeypatch):
    monkeypatch.setenv(_build.TIMEOUT_ENV, "1")
    lock = _lock_path()
    fd = os.open(lock, os.O_CREAT | os.O_EXCL)  # "another build", held for ever
    try:
        t0 = time.monotonic()
        with pytest.warns(RuntimeWarning, match=r"falling back .*If no other snntorch_sparse build "
                                                r"is running, delete .*lock"):
            assert compiled.available() is False
        assert time.monotonic() - t0 < 10
        assert lock in str(compiled.build_error())
        with pytest.raises(RuntimeError, match="timed out after 1 s"):
            compiled.available(strict=True)
    finally:
        os.close(fd)
        os.remove(lock)


@needs_proc
@pytest.mark.timeout(30)
def test_pytorch_lock_wait_is_bounded(held_lock, tmp_path):
    """A lock taken between our check and PyTorch's: its own wait is bounded too."""
    original = cpp_extension.FileBaton
    with _build._bounded_torch_lock_wait(timeout=0.3):
        baton = cpp_extension.FileBaton(held_lock)
        assert not baton.try_acquire()
        with pytest.raises(_build.BuildError, match="timed out"):
            baton.wait()
        left = str(tmp_path / "left")
        _make_lock(left)
        with pytest.warns(RuntimeWarning, match="removed the stale"):
            with pytest.raises(_build._StaleLockCleared):
                cpp_extension.FileBaton(left).wait()
    assert cpp_extension.FileBaton is original


# ------------------------------------------------------------------ stand-in builds

def _fake_torch_load(calls, lock_first=False):
    """A ``cpp_extension.load`` that 'builds' the files ninja would leave.

    With ``lock_first``, its first call finds a stale lock taken by another
    process just before (PyTorch waits on it), like a race lost to a build
    that was then killed.
    """
    def load(name, sources, extra_cflags, extra_include_paths, build_directory, **kw):
        calls.append(name)
        lock = os.path.join(build_directory, "lock")
        if lock_first and len(calls) == 1:
            _make_lock(lock)
        baton = cpp_extension.FileBaton(lock)
        if not baton.try_acquire():
            baton.wait()
            return
        try:
            with open(os.path.join(build_directory, name + cpp_extension.LIB_EXT), "wb"):
                pass
            with open(os.path.join(build_directory, "build.ninja"), "w") as f:
                f.write(" ".join([*sources, *extra_cflags, *extra_include_paths,
                                  os.path.dirname(torch.__file__)]))
        finally:
            baton.release()
    return load


def test_first_build_prints_one_line(build_root, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cpp_extension, "load", _fake_torch_load(calls))
    build_dir = _build.load()
    err = capsys.readouterr().err
    assert err.count("snntorch_sparse: building the C++") == 1
    assert f"cached in {build_dir}" in err and build_dir.startswith(str(build_root))
    _build.load()  # cached: silent
    assert capsys.readouterr().err == ""
    assert len(calls) == 2


def test_build_line_when_cache_holds_another_checkouts_build(build_root, monkeypatch, capsys):
    monkeypatch.setattr(cpp_extension, "load", _fake_torch_load([]))
    build_dir = _build.load()
    capsys.readouterr()
    recipe = os.path.join(build_dir, "build.ninja")
    with open(recipe) as f:
        text = f.read()
    with open(recipe, "w") as f:  # same name, sources elsewhere: ninja rebuilds
        f.write(text.replace(str(_build.csrc_dir()), "/elsewhere/csrc"))
    _build.load()
    assert "building the C++" in capsys.readouterr().err


@needs_proc
@pytest.mark.timeout(30)
def test_stale_lock_inside_pytorch_is_cleared_and_build_retried(build_root, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cpp_extension, "load", _fake_torch_load(calls, lock_first=True))
    with pytest.warns(RuntimeWarning, match="removed the stale build lock"):
        build_dir = _build.load()
    assert len(calls) == 2
    assert not os.path.exists(os.path.join(build_dir, "lock"))
    assert os.path.exists(os.path.join(build_dir, calls[0] + cpp_extension.LIB_EXT))
    assert cpp_extension.FileBaton.__module__ == "torch.utils.file_baton"


def test_stale_lock_before_build_is_cleared(build_root, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cpp_extension, "load", _fake_torch_load(calls))
    monkeypatch.setattr(_build, "lock_holder_alive", lambda lock: None)
    _make_lock(_lock_path(), age_s=_build.STALE_LOCK_SECONDS + 1)
    with pytest.warns(RuntimeWarning, match="removed the stale build lock"):
        _build.load()
    assert calls and "building the C++" in capsys.readouterr().err
