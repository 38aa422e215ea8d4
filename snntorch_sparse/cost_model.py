r"""Bytes moved and FLOPs of every kernel of the fused layers' CUDA training step, and the times they imply.

The model counts, per layer and per kernel of ``csrc/cuda/fused_launch.cu``
(forward and backward), the bytes each pass reads and writes and the FLOPs of
each GEMM, from the layer's shape and its measured activity. A streaming pass
costs ``bytes / bandwidth``; a GEMM ``FLOPs / throughput`` in its precision.
It also counts the launches (each per-chunk kernel runs once per time
chunk, the chunk length from the same rule as the launcher) and charges each
:data:`HOST_LAUNCH_S` of host time, an assumed figure: a phase takes the
larger of its kernel time and its launches' host time. The one
synchronisation per layer and the Python glue around the ops are not in
the model.

Reads of ``Wᵀ`` rows by the ∂L/∂X dots hit L2 (the matrix is a few MB at
most); they are charged at an assumed 7 TB/s of L2 bandwidth, which puts the
break-even with the ``h W`` GEMM near a tenth of the entries, the launcher's
switch (``kDxGemmFraction``).

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

__all__ = ["Machine", "H200", "LayerShape", "Kernel", "CHUNK_BUDGET", "HOST_LAUNCH_S", "chunk_budget", "chunk_steps", "first_call_lists",
           "layer_kernels", "network_kernels", "step_prediction", "mlp_network", "shd_network", "spikingjelly_step",
           "markdown_table"]


@dataclass(frozen=True)
class Machine:
    """Throughputs the model divides by."""

    name: str
    bandwidth: float        # bytes / s of a streaming pass
    gemm_flops: dict        # precision -> FLOP / s of a large GEMM
    l2_bandwidth: float = 7e12  # bytes / s of reads that hit L2 (an assumption, not measured here)


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
    launches: int = 1       # launches per step (time chunks)
    l2_bytes: float = 0.0   # reads of a small operand that stays in L2 (Wᵀ rows of the ∂L/∂X dots)

    def seconds(self, machine: Machine) -> float:
        if self.flops:
            return self.flops / machine.gemm_flops[self.precision]
        return self.bytes / machine.bandwidth + self.l2_bytes / machine.l2_bandwidth


# Floor of one fused op call's dense chunk buffers on CUDA (csrc/cuda/fused_launch.cu,
# chunk_budget_bytes: max(floor, a sixteenth of the layer's [T, B, N] float tensor);
# SNNTORCH_SPARSE_CUDA_CHUNK_MIB fixes it there).
CHUNK_BUDGET = 8 << 20

# Host time per kernel launch. An ASSUMPTION, not a measurement of this project: a CUDA
# launch plus ATen's dispatch from C++ costs a few microseconds on a server CPU; 5 µs is
# used. The model's host column is launches times this.
HOST_LAUNCH_S = 5e-6

# ∂L/∂X from the chunk's h W GEMM above this upstream active fraction (kDxGemmFraction).
DX_GEMM_FRACTION = 0.1


def first_call_lists(entries: int) -> tuple:
    """The CUDA forward's list lengths ``(active, spikes)`` without a hint (a layer's first call,
    ``lif_fused_forward_cuda``): an eighth of the ``T·B·N`` entries active (at least 1024), half
    as many spikes."""
    guess = max(1024, entries // 8)
    return guess, guess // 2


def chunk_budget(T: int, B: int, N: int, e: int = 4, fixed: Optional[int] = None) -> int:
    """The chunk budget of a layer of ``N`` outputs (``chunk_budget_bytes``): ``fixed`` when
    given (``SNNTORCH_SPARSE_CUDA_CHUNK_MIB``), else max(:data:`CHUNK_BUDGET`, T·B·N·e / 16)."""
    return fixed if fixed else max(CHUNK_BUDGET, T * B * N * e // 16)


def chunk_steps(T: int, B: int, width: int, e: int = 4, budget: int = CHUNK_BUDGET) -> int:
    """Time steps per chunk, the rule of ``fused_chunk_steps`` in ``csrc/cuda/fused_launch.cu``:
    ``T_c = max(1, min(T, budget / (B · width · e)))``, ``width`` the elements per row of all
    of the call's chunk buffers together (0: no buffer, one chunk)."""
    if width == 0 or B == 0:
        return max(T, 1)
    return max(1, min(max(T, 1), budget // (B * width * e)))


def _chunks(T: int, steps: int) -> int:
    return -(-T // steps) if T else 0


def layer_kernels(name: str, L: LayerShape, precision: str = "fp32", e: int = 4,
                  budget: Optional[int] = None) -> List[Kernel]:
    """The kernels of one layer's forward and backward with their bytes, FLOPs and launches.

    fp32 follows ``csrc/cuda/fused_launch.cu``: time chunks of ``chunk_steps``
    steps both ways. A first layer reads the user's dense input rows directly
    (no event list); a hidden layer densifies its input's events per chunk.
    bf16 follows the autocast recipe (``nn.Linear``'s GEMM over the whole
    sequence, the neuron on the float32 current it returns).
    """
    R, N, Ni = L.T * L.B, L.n, L.n_in
    RN, RNi = R * N, R * Ni
    gemm = 2.0 * R * N * Ni
    dense_in = L.first
    K = []
    budget = chunk_budget(L.T, L.B, N, e, budget)
    if precision == "fp32":
        fwd_width = N + (0 if dense_in else Ni)
        cf = _chunks(L.T, chunk_steps(L.T, L.B, fwd_width, e, budget))
        bwd_width = N + (0 if dense_in else Ni) + (Ni if (L.upstream_activity or 0) > DX_GEMM_FRACTION else 0)
        cb = _chunks(L.T, chunk_steps(L.T, L.B, bwd_width, e, budget))
    else:
        cf = cb = 1
    if precision != "fp32":  # autocast: operands cast down, the current cast up (nn.Linear's recipe)
        K.append(Kernel(name, "forward", "cast X to " + precision, RNi * (e + 2), 0))
    if precision == "fp32" and not dense_in:  # the GEMM reads time chunks of the input's events, densified
        K.append(Kernel(name, "forward", "densify input chunks (zero + events)",
                        RNi * e + L.input_density * RNi * 4 + 8 * R, 0, launches=cf))
    K.append(Kernel(name, "forward", "current I = X Wᵀ + b (GEMM" + (", per chunk)" if cf > 1 else ")"), 0, gemm,
                    precision, launches=cf))
    if precision != "fp32":
        K.append(Kernel(name, "forward", "cast I up to float32", RN * (2 + e), 0))
    if L.readout:
        K.append(Kernel(name, "forward", "lif_fused_scan (I -> U - θ, membrane out)", 3 * RN * e, 0, launches=cf))
    else:
        K.append(Kernel(name, "forward", "lif_fused_scan (I -> U - θ in place)", 2 * RN * e, 0, launches=cf))
    # the spike list is built for the readout too (its spikes leave as their events)
    K.append(Kernel(name, "forward", "count_shift (row counts)", RN * e + 16 * R, 0, launches=cf))
    K.append(Kernel(name, "forward", "chunk row pointers (one block)", 32 * R, 0, launches=cf))
    act = 0.0 if L.readout else L.activity
    K.append(Kernel(name, "forward", "compact_shift (sets + spikes)",
                    2 * RN * e + act * RN * (4 + e) + L.spike_rate * RN * 4, 0, launches=cf))
    K.append(Kernel(name, "forward", "totals to the host (the one sync)", 16, 0, launches=1))
    if not L.readout:
        K.append(Kernel(name, "forward", "σ' on the active set", 4 * act * RN * e, 0,
                        launches=5 * max(1, -(-int(act * RN) // (1 << 18)))))
    # backward
    K.append(Kernel(name, "backward", "h fill (∂L/∂U or 0) + g on the active set",
                    (2 if L.readout else 1) * RN * e + act * RN * (4 + 4 * e) + 8 * R, 0, launches=cb))
    K.append(Kernel(name, "backward", "lif_fused_backward (adjoint scan + Σ_t h, carried)", 2 * RN * e, 0,
                    launches=cb))
    gemm_prec = precision
    if precision != "fp32":
        K.append(Kernel(name, "backward", "cast h to " + precision, RN * (e + 2), 0))
    if precision == "fp32" and not dense_in:
        K.append(Kernel(name, "backward", "densify input chunks (zero + events)",
                        RNi * e + L.input_density * RNi * 4 + 8 * R, 0, launches=cb))
    K.append(Kernel(name, "backward", "∂L/∂W = hᵀ X (GEMM" + (", per chunk)" if cb > 1 else ")"), 0, gemm, gemm_prec,
                    launches=cb))
    if L.upstream_activity is not None:
        if precision == "fp32" and L.upstream_activity <= DX_GEMM_FRACTION:
            # one dot of N per upstream active entry: h's row from HBM once per row, the entry's
            # Wᵀ row from L2 (Wᵀ is N·N_in·e bytes, L2-resident at these sizes)
            entries = L.upstream_activity * RNi
            K.append(Kernel(name, "backward", "∂L/∂X on the upstream active set (a dot per entry)",
                            entries * (4 + e) + RN * e, 0, launches=cb, l2_bytes=entries * N * e))
        elif precision == "fp32":  # most entries asked for: the chunk's h W GEMM, read at the entries
            K.append(Kernel(name, "backward", "h W (GEMM, per chunk)", 0, gemm, gemm_prec, launches=cb))
            K.append(Kernel(name, "backward", "gather ∂L/∂X on the upstream active set",
                            L.upstream_activity * RNi * (4 + 2 * e), 0, launches=cb))
        else:  # autocast's linear backward: a dense ∂L/∂X, cast up
            K.append(Kernel(name, "backward", "h W (GEMM)", 0, gemm, gemm_prec))
            K.append(Kernel(name, "backward", "cast ∂L/∂X up to float32", RNi * (2 + e), 0))
    return K


def network_kernels(layers: List[LayerShape], precision: str = "fp32", budget: Optional[int] = None) -> List[Kernel]:
    """Every layer's kernels; ``budget``: a fixed chunk budget (else the launcher's rule)."""
    out = []
    for i, L in enumerate(layers):
        out += layer_kernels(f"layer {i + 1} ({L.n_in}->{L.n})", L, precision, budget=budget)
    return out


def step_prediction(kernels: List[Kernel], machine: Machine = H200) -> dict:
    """``{phase: (kernel s, launches, host s)}`` plus ``"step"``: a phase takes the larger
    of its kernels' time and its launches' host time (the GPU and the host overlap, except
    at the one synchronisation per layer, which the model does not charge)."""
    out = {}
    for k in kernels:
        t, n, _ = out.get(k.phase, (0.0, 0, 0.0))
        out[k.phase] = (t + k.seconds(machine), n + k.launches, 0.0)
    out = {p: (t, n, n * HOST_LAUNCH_S) for p, (t, n, _) in out.items()}
    out["step"] = (sum(v[0] for v in out.values()), sum(v[1] for v in out.values()),
                   sum(max(v[0], v[2]) for v in out.values()))
    return out


def mlp_network(n_in: int, hidden, n_out: int, T: int, B: int, input_density: float, activity: float,
                spike_rate: float = 0.02) -> List[LayerShape]:
    """A benchmark network: fused layers ``n_in -> hidden... -> n_out``, the first fed the dense
    input, the last a read-out; every hidden layer at ``activity`` and ``spike_rate``."""
    sizes = [n_in, *hidden]
    out = [LayerShape(T, B, a, b, input_density if i == 0 else spike_rate, activity, spike_rate, first=i == 0,
                      upstream_activity=None if i == 0 else activity)
           for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    out.append(LayerShape(T, B, sizes[-1], n_out, spike_rate, 1.0, 0.0, readout=True,
                          upstream_activity=activity if hidden else None))
    return out


def shd_network(activity: float = 0.0625, spike_rate: float = 0.02, input_density: float = 0.02,
                T: int = 500, B: int = 256) -> List[LayerShape]:
    """The benchmark's SHD config: 700-200-200-20, readout last."""
    return mlp_network(700, (200, 200), 20, T, B, input_density, activity, spike_rate)


# SpikingJelly 2.0's multi-step LIF node, forward + backward, on [500, 256, 200] float32 on the
# H200 (../shared/gpu/README.md, primitives-shd-shape.jsonl): 1.29 ms; it streams, so it scales
# with T·B·N.
SJ_LIF_S_PER_ENTRY = 1.2879e-3 / (500 * 256 * 200)


def spikingjelly_step(layers: List[LayerShape], machine: Machine = H200) -> float:
    """SpikingJelly 2.0's dense step under the same machine figures: per layer ``nn.Linear``'s
    GEMMs (forward, ∂L/∂W, and ∂L/∂X except for the first layer) in float32 plus its LIF node
    forward and backward, scaled from the measured one. Lets the ratio compare model with model."""
    t = 0.0
    for L in layers:
        gemm = 2.0 * L.T * L.B * L.n * L.n_in / machine.gemm_flops["fp32"]
        t += gemm * (2 if L.first else 3) + SJ_LIF_S_PER_ENTRY * L.T * L.B * L.n
    return t


def markdown_table(kernels: List[Kernel], machine: Machine = H200) -> str:
    """Markdown table: one row per kernel, then the totals per phase (kernels, launches,
    and the host time the launches imply at :data:`HOST_LAUNCH_S`)."""
    rows = ["| layer | phase | kernel | MB moved | GFLOP | launches | time on " + machine.name + " (µs) |",
            "|---|---|---|---|---|---|---|"]
    for k in kernels:
        t = k.seconds(machine)
        flops = f"{k.flops / 1e9:.1f} ({k.precision})" if k.flops else ""
        mb = f"{k.bytes / 1e6:.1f}" if k.bytes else ""
        rows.append(f"| {k.layer} | {k.phase} | {k.kernel} | {mb} | {flops} | {k.launches} | {t * 1e6:.0f} |")
    pred = step_prediction(kernels, machine)
    for phase, (t, n, host) in pred.items():
        if phase == "step":
            continue
        rows.append(f"| **total** | {phase} | | | | {n} (host ≈ {host * 1e6:.0f} µs) | **{t * 1e6:.0f}** |")
    t, n, step = pred["step"]
    rows.append(f"| **total** | step | | | | {n} | **{t * 1e6:.0f}** kernels; "
                f"**{step * 1e6:.0f}** with the host's launches |")
    return "\n".join(rows)
