"""Peak memory of one training step, measured on CPU with the allocator's high-water mark.

    python benchmarks/generic_peak_memory.py --configs shd
    python benchmarks/generic_peak_memory.py --configs shd --variants sparse_compiled --timeline
    python benchmarks/generic_peak_memory.py --configs shd --path generic
    python benchmarks/generic_peak_memory.py --configs shd --variants sparse_compiled --path cuda-layout --chunk-mib 8

``--path fused`` (default) measures the fused op both CPU and CUDA run
(:mod:`snntorch_sparse.fused_cpu`) with the CPU kernels' own buffers;
``--path generic`` the device-generic autograd function of
:mod:`snntorch_sparse.functional`, which allocates the same buffers on any
device (the reference backend's path, and CUDA's before the fused CUDA
kernels). Peak of one forward + backward
(:func:`snntorch_sparse.bench.step_peak_bytes`), same data and calibrated
weights as ``python -m snntorch_sparse.bench``.

``--path cuda-layout`` is a CPU emulation of the CUDA op's memory: the step
runs the CPU kernels, but each fused op call also holds, for its duration,
the buffers ``csrc/cuda/fused_launch.cu`` allocates (the time-chunk buffers
sized by the same rule, :func:`snntorch_sparse.cost_model.chunk_steps`, the
row counts, carries, ``Wᵀ``), its column lists live in storage of the length
the CUDA launcher allocates (the layer's hint, or the first call's guess), and
a dense input is saved as itself (CUDA's GEMMs read its rows; no event list).
It predicts the GPU's peak from measured CPU allocations; it is not a GPU
measurement.

``--timeline`` also lists where that peak comes from: every allocation or
free of at least ``--min-mib`` (and the one at the peak) with the running
total after it and the innermost op it happened in
(:func:`snntorch_sparse.memory.cpu_allocation_timeline`), so a change aimed at
the GPU peak can be checked here first.
"""
import argparse
import contextlib
import json
import os
from pathlib import Path
from unittest import mock

import torch

import snntorch_sparse.functional as functional
from snntorch_sparse import bench
from snntorch_sparse.memory import cpu_allocation_timeline


def print_timeline(allocations, ops, peak, min_mib):
    t_peak = next((t for t, _, live in allocations if live == peak), None)

    def innermost(t):
        around = [(end - start, name) for name, start, end in ops if start <= t <= end]
        return min(around)[1] if around else "?"

    print("  running at the peak: " + " > ".join(
        name for name, start, end in sorted(ops, key=lambda o: o[1]) if start <= t_peak <= end))
    for t, n, live in allocations:
        if abs(n) >= min_mib * 2**20 or t == t_peak:
            print(f"  {'peak' if t == t_peak else '    '} {n / 2**20:+8.1f} MiB -> {live / 2**20:7.1f} MiB  "
                  f"{innermost(t)}")


@contextlib.contextmanager
def cuda_layout(chunk_mib):
    """The fused op with the CUDA launcher's allocations (see the module docstring)."""
    from snntorch_sparse import cost_model, fused_cpu
    from snntorch_sparse.ops import fused

    fixed = (chunk_mib << 20) if chunk_mib else None
    real_fwd, real_bwd = fused.lif_fused_forward, fused.lif_fused_backward

    def rehome(t, length):  # the list in storage of the launcher's length, narrowed
        buf = torch.empty(max(length, t.numel()), dtype=t.dtype)
        buf[:t.numel()].copy_(t)
        return buf[:t.numel()]

    def forward(current, x_csr, weight, bias, beta, threshold, reset_mode, bth, spk_out, mem_out, need_spike_csr,
                need_active, shape=None, event=None, capacity=None, x_dense=None):
        T, B = shape if spk_out is None else spk_out.shape[:2]
        n, e = beta.numel(), beta.element_size()
        n_in = 0 if weight is None else weight.shape[1]
        dense_rows = current is not None or x_dense is not None
        width = (0 if spk_out is not None else n) if current is not None else (0 if dense_rows else n_in) + n
        budget = cost_model.chunk_budget(T, B, n, e, fixed)
        rows = min(cost_model.chunk_steps(T, B, width, e, budget), max(T, 1)) * B
        held = [torch.empty(rows * width * e, dtype=torch.uint8), torch.empty(2 * rows, dtype=torch.long),
                torch.empty(B * n, dtype=beta.dtype)]  # chunk buffers, row counts, membrane carry
        out = list(real_fwd(current, x_csr, weight, bias, beta, threshold, reset_mode, bth, spk_out, mem_out,
                            need_spike_csr, need_active, shape=shape, event=True if x_dense is None else event,
                            capacity=capacity, x_dense=x_dense))
        del held
        cap_a, cap_s = capacity if capacity is not None else cost_model.first_call_lists(T * B * n)
        if need_active and out[3].numel() <= cap_a:
            out[3], out[4] = rehome(out[3], cap_a), rehome(out[4], cap_a)
        if need_spike_csr and out[1].numel() <= cap_s:
            out[1] = rehome(out[1], cap_s)
        return tuple(out)

    def backward(act, act_sg, d_spk, d_mem, beta, spk, reset_mode, x_csr, weight, up_csr, dx_out, h_out, T, B,
                 in_features, need_dw, need_db, d_spk_compact=False, dx_compact=False, x_dense=None):
        n, e = beta.numel(), act_sg.element_size()
        dx_gemm = up_csr is not None and up_csr[1].numel() > cost_model.DX_GEMM_FRACTION * T * B * in_features
        width = (0 if h_out is not None else n) + (in_features if need_dw and x_dense is None else 0) + \
            (in_features if dx_gemm else 0)
        budget = cost_model.chunk_budget(T, B, n, e, fixed)
        rows = min(cost_model.chunk_steps(T, B, width, e, budget), max(T, 1)) * B
        held = [torch.empty(rows * width * e, dtype=torch.uint8), torch.empty(2 * B * n, dtype=act_sg.dtype)]
        if up_csr is not None and not dx_gemm:
            held.append(torch.empty(in_features * n, dtype=act_sg.dtype))  # Wᵀ
        out = real_bwd(act, act_sg, d_spk, d_mem, beta, spk, reset_mode, x_csr, weight, up_csr, dx_out, h_out, T, B,
                       in_features, need_dw, need_db, d_spk_compact=d_spk_compact, dx_compact=dx_compact,
                       x_dense=x_dense)
        del held
        return out

    with mock.patch.object(fused, "lif_fused_forward", forward), \
            mock.patch.object(fused, "lif_fused_backward", backward), \
            mock.patch.object(fused_cpu, "_gemm_reads_dense_input", lambda x, cfg: not cfg.event_forward):
        yield


p = argparse.ArgumentParser()
p.add_argument("--configs", nargs="+", default=["shd"], choices=sorted(bench.PRESETS))
p.add_argument("--variants", nargs="+", default=["snntorch", "sparse_compiled"])
p.add_argument("--timeline", action="store_true", help="list the step's large allocations in order")
p.add_argument("--min-mib", type=float, default=8.0, help="with --timeline: list allocations and frees above this")
p.add_argument("--path", choices=["fused", "generic", "cuda-layout"], default="fused",
               help="the fused op (CPU and CUDA), the device-generic autograd function, or the fused op "
                    "with the CUDA launcher's buffers emulated")
p.add_argument("--chunk-mib", type=int, default=None,
               help="with --path cuda-layout: a fixed CUDA chunk budget (SNNTORCH_SPARSE_CUDA_CHUNK_MIB; "
                    "default: the launcher's rule)")
p.add_argument("--out", help="write the peaks to this JSON file (adds to its other paths' entries)")
args = p.parse_args()
cpu = torch.device("cpu")
peaks = {}
for name in args.configs:
    cfg = bench.PRESETS[name]
    x, labels, ref, compiled_ok = bench.calibrated_setup(cfg, cpu)
    for v in args.variants:
        net = bench.build_variant(v, cfg, cpu, compiled_ok)
        bench._copy_weights(ref, net)

        if args.path == "generic":
            patch = mock.patch.object(functional, "_fused_usable", lambda *a, **k: False)
        elif args.path == "cuda-layout":
            patch = cuda_layout(args.chunk_mib)
        else:
            patch = contextlib.nullcontext()
        with patch:
            allocations, ops = bench.step_peak_bytes(net, x, labels, cfg, measure=cpu_allocation_timeline)
        peak = max([0] + [live for _, _, live in allocations])
        print(f"{name:10s} {v:18s} peak {peak / 2**20:8.1f} MiB")
        key = v if v == "snntorch" else f"{v}:{args.path}"
        if args.path == "cuda-layout" and args.chunk_mib:
            key += f"-{args.chunk_mib}mib"
        peaks.setdefault(name, {})[key] = peak
        if args.timeline:
            print_timeline(allocations, ops, peak, args.min_mib)
if args.out:
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {"peak_bytes": {}}
    data["reuse_buffers"] = os.environ.get("SNNTORCH_SPARSE_REUSE_BUFFERS", "1")
    data["torch"] = torch.__version__
    for cfg_name, entries in peaks.items():
        data["peak_bytes"].setdefault(cfg_name, {}).update(entries)
    out.write_text(json.dumps(data, indent=1))
