"""Count the ATen ops one training step dispatches (each is at least one kernel launch on a GPU).

    python benchmarks/step_ops.py                 # the CPU branch
    python benchmarks/step_ops.py --cuda-branch   # the branch CUDA takes for a dense first-layer input

A sparsified snnTorch-tutorial-style MLP (700-200-200-20, ``snn.Leaky(beta=0.9)``, the package's
defaults), T=50, B=32; the third step is counted under a ``TorchDispatchMode``. Views and empty
allocations launch nothing and are left out. Ops inside the package's C++ ops are not seen.
"""
import argparse
import collections
from unittest import mock

import snntorch as snn
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import snntorch_sparse as ss
from snntorch_sparse import fused_cpu

_NO_LAUNCH = {"view", "reshape", "_reshape_alias", "expand", "detach", "alias", "select", "slice", "t", "transpose",
              "unsqueeze", "squeeze", "as_strided", "permute", "lift_fresh", "_unsafe_view", "unbind", "split",
              "narrow", "empty", "empty_like", "new_empty"}


class _Count(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in _NO_LAUNCH:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cuda-branch", action="store_true", help="take the branch CUDA takes for a dense input")
    args = p.parse_args()
    torch.manual_seed(0)
    net = ss.sparsify(torch.nn.Sequential(
        torch.nn.Linear(700, 200), snn.Leaky(beta=0.9, init_hidden=True),
        torch.nn.Linear(200, 200), snn.Leaky(beta=0.9, init_hidden=True),
        torch.nn.Linear(200, 20), snn.Leaky(beta=0.9, init_hidden=True, output=True)))
    x = (torch.rand(50, 32, 700) < 0.02).float()
    labels = torch.zeros(32, dtype=torch.long)

    def step():
        spk, mem = net(x)
        torch.nn.functional.cross_entropy(mem.sum(0), labels).backward()

    branch = mock.patch.object(fused_cpu, "_gemm_reads_dense_input", lambda x, cfg: not cfg.event_forward) \
        if args.cuda_branch else mock.patch.object(fused_cpu, "__name__", fused_cpu.__name__)
    with branch:
        step()
        step()
        with _Count() as count:
            step()
    print(f"{sum(count.ops.values())} ops per training step")
    for name, n in count.ops.most_common():
        print(f"  {n:4d} {name}")


if __name__ == "__main__":
    main()
