"""Peak memory of a training step on the device-generic path, measured on CPU.

The device-generic autograd function (``functional._SparseLIF``) is what CUDA
runs; its buffers are allocated the same way on any device, so the CPU
allocator's high-water mark (from the profiler's memory events) tracks its GPU
peak without a GPU. Before in-place scans and the sparse gradient hand-over it
held up to four ``[T, B, N]`` buffers at once (above snnTorch's own peak);
now at most about two.
"""
from unittest import mock

import torch

import snntorch_sparse.functional as functional
from snntorch_sparse import bench


def test_generic_path_peak_below_snntorch():
    cfg = bench.PRESETS["quick_shd"]  # 700-200-200-20, T=100, batch 64, calibrated activity
    x, labels, ref, compiled_ok = bench.calibrated_setup(cfg, torch.device("cpu"))
    peaks = {}
    for variant in ("snntorch", "sparse_compiled"):
        net = bench.build_variant(variant, cfg, torch.device("cpu"), compiled_ok)
        bench._copy_weights(ref, net)
        with mock.patch.object(functional, "_fused_usable", lambda *a, **k: False):
            peaks[variant] = bench.step_peak_bytes(net, x, labels, cfg)
    buffer = cfg.T * cfg.batch * cfg.hidden[0] * 4  # one float32 [T, B, N] tensor
    # measured: snnTorch 21.7 MiB (~4.4 buffers), generic sparse path 13.0 MiB (~2.7)
    assert peaks["sparse_compiled"] < 0.8 * peaks["snntorch"], peaks
    assert peaks["sparse_compiled"] < 3.5 * buffer, (peaks, buffer)


def test_fused_path_peak_holds_no_dense_hidden_spikes():
    """The fused op's step at the quick SHD shape: hidden spikes cross layers as events.

    At this small shape the CPU forward's fixed 4 MiB time-chunk buffers weigh
    in (at the full SHD shape the peak is 15% of snnTorch's:
    ``benchmarks/results/peak-memory-cpu.json``). Measured: snnTorch 21.7 MiB,
    fused 9.8 MiB (~1.9 buffers); dense float spike outputs would add two
    buffers while the second layer runs.
    """
    cfg = bench.PRESETS["quick_shd"]
    x, labels, ref, compiled_ok = bench.calibrated_setup(cfg, torch.device("cpu"))
    if not compiled_ok:
        import pytest
        pytest.skip("compiled CPU kernels not built")
    peaks = {}
    for variant in ("snntorch", "sparse_compiled"):
        net = bench.build_variant(variant, cfg, torch.device("cpu"), compiled_ok)
        bench._copy_weights(ref, net)
        peaks[variant] = bench.step_peak_bytes(net, x, labels, cfg)
    buffer = cfg.T * cfg.batch * cfg.hidden[0] * 4
    assert peaks["sparse_compiled"] < 0.55 * peaks["snntorch"], peaks
    assert peaks["sparse_compiled"] < 2.5 * buffer, (peaks, buffer)
