"""Recurrent (RLeaky) and Synaptic SHD-shaped networks: snnTorch's loop vs our fused layers, CPU.

    python benchmarks/recurrent_bench.py [--T 500] [--batch 256] [--repeats 3] [--warmup 1] \
        [--kinds rleaky synaptic] [--note "..."] [--out results.json]

The committed ``benchmarks/results/recurrent-cpu-1thread.json`` comes from
``OMP_NUM_THREADS=1 python benchmarks/recurrent_bench.py --repeats 5 --note "..." --out
benchmarks/results/recurrent-cpu-1thread.json`` (each entry records its ``repeats``, ``warmup``
and ``note``, e.g. that the machine was shared with other jobs).

Network: 700 -> 200 (RLeaky all-to-all, or Synaptic) -> 20 (non-spiking Leaky readout,
logits = max over time of its membrane). Input: class-structured Bernoulli spikes at 2 %
(``snntorch_sparse.bench.class_spike_data``); hidden weights scaled so that the hidden layer
fires at about 2 % per step. Variants, interleaved round by round:

* ``snntorch``: ``nn.Linear`` + ``snn.RLeaky`` / ``snn.Synaptic`` stepped in Python, dense
  ``fast_sigmoid(slope=100)`` surrogate;
* ``fused_dense``: our fused layer with a window that holds every entry (the dense surrogate
  gradient, our forward and backward code);
* ``sparse``: our fused layer with the fixed window ``bth = 0.2`` (the sparse-gradient rule);
* ``spikingjelly`` (RLeaky only, when SpikingJelly 2.0 is installed: ``make bench-deps``):
  its recurrent LIF, ``nn.Linear`` + ``layer.LinearRecurrentContainer(neuron.LIFNode)`` (the
  recurrent linear maps ``[x[t]; s[t-1]]`` to the neuron's input, here with weight ``[I, V]``:
  the same input ``x[t] + V s[t-1] + b``), multi-step, torch backend, dense ``Sigmoid``
  surrogate, and a non-spiking ``LIFNode`` readout. SpikingJelly's soft reset subtracts the
  threshold before the leak (snnTorch's after), so its spikes differ slightly: a timing
  baseline, not a parity check. SpikingJelly has no second-order (Synaptic) neuron.

Timed per variant and round: the forward (the network's whole forward and the loss) and the
backward (``loss.backward()`` of the whole network: every layer's gradient), wall-clock.
Reported per variant: median forward / backward / whole-step seconds, the bytes autograd keeps
for the backward (``snntorch_sparse.memory.saved_tensor_bytes``, parameters excluded) and the
hidden layer's activity; ratios vs snnTorch and vs fused dense.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import snntorch as snn
import torch
import torch.nn.functional as F
from snntorch import surrogate
from torch import nn

from snntorch_sparse import SparseLinearLeaky, SparseLinearRLeaky, SparseLinearSynaptic
from snntorch_sparse.bench import BenchConfig, class_spike_data
from snntorch_sparse.memory import saved_tensor_bytes
from snntorch_sparse.surrogate import sparse_fast_sigmoid

BETA, ALPHA, SLOPE = 0.9, 0.8, 100.0


class DenseNet(nn.Module):
    def __init__(self, kind, n_in, n_hid, n_out):
        super().__init__()
        sg = surrogate.fast_sigmoid(slope=SLOPE)
        self.fc1, self.fc2 = nn.Linear(n_in, n_hid), nn.Linear(n_hid, n_out)
        self.kind = kind
        if kind == "rleaky":
            self.lif1 = snn.RLeaky(beta=BETA, linear_features=n_hid, spike_grad=sg)
        else:
            self.lif1 = snn.Synaptic(alpha=ALPHA, beta=BETA, spike_grad=sg)
        self.lif2 = snn.Leaky(beta=BETA, spike_grad=sg, reset_mechanism="none")

    def forward(self, x):
        m2 = self.lif2.reset_mem()
        if self.kind == "rleaky":
            s1, m1 = self.lif1.reset_mem()
        else:
            j1, m1 = self.lif1.reset_mem()
        out, hs = [], 0
        for t in range(x.shape[0]):
            if self.kind == "rleaky":
                s1, m1 = self.lif1(self.fc1(x[t]), s1, m1)
            else:
                s1, j1, m1 = self.lif1(self.fc1(x[t]), j1, m1)
            hs = hs + s1.sum()
            _, m2 = self.lif2(self.fc2(s1), m2)
            out.append(m2)
        return torch.stack(out), hs


class FusedNet(nn.Module):
    def __init__(self, kind, n_in, n_hid, n_out, bth):
        super().__init__()
        sg = sparse_fast_sigmoid(slope=SLOPE, bth=bth)
        if kind == "rleaky":
            self.l1 = SparseLinearRLeaky(n_in, n_hid, beta=BETA, spike_grad=sg)
        else:
            self.l1 = SparseLinearSynaptic(n_in, n_hid, alpha=ALPHA, beta=BETA, spike_grad=sg)
        self.l2 = SparseLinearLeaky(n_hid, n_out, beta=BETA, readout=True, event_forward=False)
        self.kind = kind

    def forward(self, x):
        s1 = self.l1(x)
        return self.l2(s1), s1.sum()


class JellyNet(nn.Module):
    """SpikingJelly 2.0's recurrent LIF network of the same shape (see the module docstring)."""

    def __init__(self, n_in, n_hid, n_out):
        super().__init__()
        from spikingjelly.activation_based import layer, neuron, surrogate as sj_surrogate
        tau = 1.0 / (1.0 - BETA)  # decay_input=False: H = (1 - 1/tau) V + X
        self.fc1, self.fc2 = nn.Linear(n_in, n_hid), nn.Linear(n_hid, n_out)
        self.rec = layer.LinearRecurrentContainer(
            neuron.LIFNode(tau=tau, decay_input=False, v_reset=None, surrogate_function=sj_surrogate.Sigmoid()),
            n_hid, n_hid, step_mode="m")
        self.out = neuron.LIFNode(tau=tau, decay_input=False, v_reset=None, v_threshold=1e9,
                                  step_mode="m", store_v_seq=True)

    def forward(self, x):
        from spikingjelly.activation_based import functional
        functional.reset_net(self)
        s1 = self.rec(self.fc1(x))
        self.out(self.fc2(s1))
        return self.out.v_seq, s1.sum()

    def copy_from(self, src: FusedNet):
        n = src.l1.fc.weight.shape[0]
        with torch.no_grad():
            self.fc1.weight.copy_(src.l1.fc.weight)
            self.fc1.bias.copy_(src.l1.fc.bias)
            self.fc2.weight.copy_(src.l2.fc.weight)
            self.fc2.bias.copy_(src.l2.fc.bias)
            self.rec.rc.weight.copy_(torch.cat([torch.eye(n), src.l1.recurrent.weight], dim=1))
            self.rec.rc.bias.copy_(src.l1.recurrent.bias)
        self.rec.rc.weight.requires_grad_(True)


def _jelly(kind):
    """SpikingJelly's network for ``kind``, or ``None`` (not installed, or no equivalent neuron)."""
    if kind != "rleaky":
        return None
    try:
        import spikingjelly.activation_based.layer  # noqa: F401
    except ImportError:
        return None
    return JellyNet(700, 200, 20)


def copy_weights(src: FusedNet, dst: DenseNet):
    with torch.no_grad():
        dst.fc1.weight.copy_(src.l1.fc.weight)
        dst.fc1.bias.copy_(src.l1.fc.bias)
        dst.fc2.weight.copy_(src.l2.fc.weight)
        dst.fc2.bias.copy_(src.l2.fc.bias)
        if src.kind == "rleaky":
            dst.lif1.recurrent.weight.copy_(src.l1.recurrent.weight)
            dst.lif1.recurrent.bias.copy_(src.l1.recurrent.bias)


def calibrate(net: FusedNet, x, rate=0.02):
    """Scale the hidden layer's input weights so that it fires at ``rate``."""
    with torch.no_grad():
        w0 = net.l1.fc.weight.clone()
        lo, hi = 0.01, 100.0
        for _ in range(14):
            gain = (lo * hi) ** 0.5
            net.l1.fc.weight.copy_(w0 * gain)
            r = net.l1(x[:, :32]).mean().item()
            lo, hi = (gain, hi) if r < rate else (lo, gain)
        return r


def loss_fn(out, labels):
    return F.cross_entropy(out.max(0).values, labels)


def one_step(net, x, labels):
    for p in net.parameters():
        p.grad = None
    t0 = time.perf_counter()
    out, _ = net(x)
    loss = loss_fn(out, labels)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, t2 - t0


def saved_bytes(net, x, labels):
    with saved_tensor_bytes(net) as c:
        out, _ = net(x)
        loss = loss_fn(out, labels)
    held = c.bytes
    loss.backward()
    return held


def run(kind, T, B, repeats, warmup, log=print, note=None):
    torch.manual_seed(0)
    cfg = BenchConfig("r", 700, (200,), 20, T, B, density=0.02)
    x, labels = class_spike_data(cfg, 20, torch.device("cpu"))
    sparse = FusedNet(kind, 700, 200, 20, bth=0.2)
    rate = calibrate(sparse, x)
    dense_fused = FusedNet(kind, 700, 200, 20, bth=1e9)
    dense_fused.load_state_dict(sparse.state_dict())
    ref = DenseNet(kind, 700, 200, 20)
    copy_weights(sparse, ref)
    nets = {"snntorch": ref, "fused_dense": dense_fused, "sparse": sparse}
    jelly = _jelly(kind)
    if jelly is not None:
        jelly.copy_from(sparse)
        nets["spikingjelly"] = jelly
    times = {k: [] for k in nets}
    for r in range(warmup + repeats):
        for k, net in nets.items():
            f, b, s = one_step(net, x, labels)
            if r >= warmup:
                times[k].append((f, b, s))
    res = {"kind": kind, "T": T, "batch": B, "hidden_rate": rate, "activity": sparse.l1.activity,
           "torch_threads": torch.get_num_threads(), "repeats": repeats, "warmup": warmup, "variants": {}}
    if note:
        res["note"] = note
    for k, net in nets.items():
        f, b, s = (statistics.median(v[i] for v in times[k]) for i in range(3))
        res["variants"][k] = {"forward_s": f, "backward_s": b, "step_s": s,
                              "saved_MiB": saved_bytes(net, x, labels) / 2 ** 20}
    v = res["variants"]
    for base in [b for b in ("snntorch", "fused_dense", "spikingjelly") if b in v]:
        res[f"vs_{base}"] = {"backward_x": v[base]["backward_s"] / v["sparse"]["backward_s"],
                             "step_x": v[base]["step_s"] / v["sparse"]["step_s"],
                             "saved_fraction": v["sparse"]["saved_MiB"] / v[base]["saved_MiB"]}
    log(json.dumps(res, indent=1))
    return res


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--T", type=int, default=500)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--kinds", nargs="+", default=["rleaky", "synaptic"])
    ap.add_argument("--out", default=None)
    ap.add_argument("--note", default=None, help="recorded with the results, e.g. that the machine was shared")
    args = ap.parse_args(argv)
    results = [run(k, args.T, args.batch, args.repeats, args.warmup, note=args.note) for k in args.kinds]
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
