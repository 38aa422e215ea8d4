r"""Bytes moved and FLOPs of every kernel of the fused layers' CUDA training step, and the times they imply.

The model counts, per layer and per kernel of ``csrc/cuda/fused_launch.cu``
(forward and backward), the bytes each pass reads and writes and the FLOPs of
each GEMM, from the layer's shape and its measured activity. A streaming pass
costs ``bytes / bandwidth``; a GEMM ``FLOPs / throughput`` in its precision.
Launch latency, synchronisation and Python time are *not* in the model: the
gap between the model and a measured step is that overhead.

The default machine figures are the H200 primitives measured at the SHD shape
(``../shared/gpu/README.md``, ``primitives-shd-shape.jsonl``): streaming
passes about 3.7 TB/s; a 128,000 x 700 by 700 x 200 GEMM 1.01 ms in float32
(35.5 TFLOP/s), 0.21 ms in TF32 (171 TFLOP/s), 0.25 ms in bfloat16
(143 TFLOP/s).

Notation: ``R = T·B`` rows, ``N`` neurons, ``N_in`` inputs, ``a`` the
fraction of (t, b, n) entries in the active window, ``s`` the output spike
rate, ``d`` the input's non-zero fraction, ``e`` bytes per element (4).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

__all__ = ["Machine", "H200", "LayerShape", "Kernel", "layer_kernels", "network_kernels", "markdown_table"]


@dataclass(frozen=True)
class Machine:
    """Throughputs the model divides by."""

    name: str
    bandwidth: float        # bytes / s of a streaming pass
    gemm_flops: dict        # precision -> FLOP / s of a large GEMM


H200 = Machine("H200", 3.7e12, {"fp32": 35.5e12, "tf32": 171e12, "bf16": 143e12})


@dataclass(frozen=True)
class LayerShape:
    """One fused layer of a training step (``first``: its input is the user's dense tensor)."""

    T: int
    B: int
    n_in: int
    n: int
    input_density: float
    activity: float
    spike_rate: float
    first: bool = False
    readout: bool = False
    upstream_activity: Optional[float] = None  # active fraction of the layer feeding this one (∂L/∂X)


@dataclass
class Kernel:
    layer: str
    phase: str
    kernel: str
    bytes: float
    flops: float
    precision: str = ""

    def seconds(self, machine: Machine) -> float:
        if self.flops:
            return self.flops / machine.gemm_flops[self.precision]
        return self.bytes / machine.bandwidth


def layer_kernels(name: str, L: LayerShape, precision: str = "fp32", e: int = 4) -> List[Kernel]:
    """The kernels of one layer's forward and backward with their bytes and FLOPs."""
    R, N, Ni = L.T * L.B, L.n, L.n_in
    RN, RNi = R * N, R * Ni
    gemm = 2.0 * R * N * Ni
    K = []
    if L.first and precision == "fp32":  # the input's events, for ∂L/∂W (dense_to_csr: count, then compact)
        K.append(Kernel(name, "forward", "dense_to_csr (count + compact)",
                        2 * RNi * e + L.input_density * RNi * (4 + e) + 16 * R, 0))
    if precision != "fp32":  # autocast: operands cast down, the current cast up (nn.Linear's recipe)
        K.append(Kernel(name, "forward", "cast X to " + precision, RNi * (e + 2), 0))
    if precision == "fp32":  # the GEMM reads time chunks of the input's events, densified
        K.append(Kernel(name, "forward", "densify input chunks", RNi * e + L.input_density * RNi * (4 + e), 0))
    K.append(Kernel(name, "forward", "current I = X Wᵀ + b (GEMM)", 0, gemm, precision))
    if precision != "fp32":
        K.append(Kernel(name, "forward", "cast I up to float32", RN * (2 + e), 0))
    if L.readout:
        K.append(Kernel(name, "forward", "lif_fused_scan (membrane out)", 3 * RN * e, 0))
    else:
        K.append(Kernel(name, "forward", "lif_fused_scan (I -> U - θ)", 2 * RN * e, 0))
        K.append(Kernel(name, "forward", "count_shift (row counts)", RN * e + 16 * R, 0))
        K.append(Kernel(name, "forward", "row pointers (two 1-D scans)", 4 * 8 * R, 0))
        K.append(Kernel(name, "forward", "compact_shift (sets + spikes)",
                        2 * RN * e + L.activity * RN * (4 + e) + L.spike_rate * RN * 4, 0))
        K.append(Kernel(name, "forward", "σ' on the active set", 4 * L.activity * RN * e, 0))
    # backward
    K.append(Kernel(name, "backward", "h = ∂L/∂U or 0 (fill / copy)", (2 if L.readout else 1) * RN * e, 0))
    if not L.readout:
        K.append(Kernel(name, "backward", "scatter_active (g = ∂L/∂S σ')", L.activity * RN * (4 + 4 * e) + 8 * R, 0))
    K.append(Kernel(name, "backward", "lif_fused_backward (adjoint scan + Σ_t h)", 2 * RN * e, 0))
    gemm_prec = precision
    if precision != "fp32":
        K.append(Kernel(name, "backward", "cast h to " + precision, RN * (e + 2), 0))
    if precision == "fp32":
        K.append(Kernel(name, "backward", "densify input chunks", RNi * e + L.input_density * RNi * (4 + e), 0))
    K.append(Kernel(name, "backward", "∂L/∂W = hᵀ X (GEMM)", 0, gemm, gemm_prec))
    if L.upstream_activity is not None:
        K.append(Kernel(name, "backward", "h W (GEMM, chunks)", 0, gemm, gemm_prec))
        if precision == "fp32":
            K.append(Kernel(name, "backward", "gather ∂L/∂X on the upstream active set",
                            L.upstream_activity * RNi * (4 + 2 * e), 0))
        else:  # autocast's linear backward: a dense ∂L/∂X, cast up
            K.append(Kernel(name, "backward", "cast ∂L/∂X up to float32", RNi * (2 + e), 0))
    return K


def network_kernels(layers: List[LayerShape], precision: str = "fp32") -> List[Kernel]:
    out = []
    for i, L in enumerate(layers):
        out += layer_kernels(f"layer {i + 1} ({L.n_in}->{L.n})", L, precision)
    return out


def shd_network(activity: float = 0.0625, spike_rate: float = 0.02, input_density: float = 0.02,
                T: int = 500, B: int = 256) -> List[LayerShape]:
    """The benchmark's SHD config: 700-200-200-20, readout last."""
    return [LayerShape(T, B, 700, 200, input_density, activity, spike_rate, first=True),
            LayerShape(T, B, 200, 200, spike_rate, activity, spike_rate, upstream_activity=activity),
            LayerShape(T, B, 200, 20, spike_rate, 1.0, 0.0, readout=True, upstream_activity=activity)]


def markdown_table(kernels: List[Kernel], machine: Machine = H200) -> str:
    """Markdown table: one row per kernel, then the totals per phase."""
    rows = ["| layer | phase | kernel | MB moved | GFLOP | time on " + machine.name + " (µs) |",
            "|---|---|---|---|---|---|"]
    totals = {}
    for k in kernels:
        t = k.seconds(machine)
        totals[k.phase] = totals.get(k.phase, 0.0) + t
        flops = f"{k.flops / 1e9:.1f} ({k.precision})" if k.flops else ""
        mb = f"{k.bytes / 1e6:.1f}" if k.bytes else ""
        rows.append(f"| {k.layer} | {k.phase} | {k.kernel} | {mb} | {flops} | {t * 1e6:.0f} |")
    for phase, t in totals.items():
        rows.append(f"| **total** | {phase} | | | | **{t * 1e6:.0f}** |")
    rows.append(f"| **total** | step | | | | **{sum(totals.values()) * 1e6:.0f}** |")
    return "\n".join(rows)
