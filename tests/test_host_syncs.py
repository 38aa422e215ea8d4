"""What in a training step would make the host wait for a GPU.

On CUDA, reading a tensor's value on the host (``item``, ``tolist``, ``bool``,
``float``, ``.cpu()``), building a device tensor from Python values
(``torch.tensor(..., device=...)``: a copy from pageable memory that
synchronises the stream) and ops whose output size depends on the data
(``nonzero``, boolean-mask indexing, ``repeat_interleave`` without
``output_size``, ...) stall the launch queue. This test runs a sparsified
snnTorch model (the package's defaults: adaptive window) on the CPU along the
branch CUDA takes for a dense first-layer input, and counts those calls at the
Python level: the one allowed is the first layer's NaN/inf check of its input,
read right after the op's own synchronisation. The ops' own device-to-host
reads (one per fused forward call) are in C++ and not seen here.
"""
import collections
import traceback
from unittest import mock

import snntorch as snn
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import snntorch_sparse as ss
from snntorch_sparse import fused_cpu

_READS = {"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy"}
_BUILDS = {"tensor", "as_tensor"}
# ops whose output size is data-dependent: on CUDA they read a count back to the host
_SIZED_BY_DATA = {"nonzero", "masked_select", "unique", "bincount", "argwhere", "nonzero_static"}


def _bool_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


class _HostWaits(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if (name in _READS or name in _SIZED_BY_DATA or (name in _BUILDS and kwargs.get("device") is not None)
                or (name == "__getitem__" and len(args) > 1 and _bool_index(args[1]))
                or (name == "repeat_interleave" and kwargs.get("output_size") is None
                    and len(args) > 1 and isinstance(args[1], torch.Tensor))):
            frame = traceback.extract_stack(limit=4)[-3]
            self.calls[f"{name} {frame.filename.rsplit('/', 1)[-1]}:{frame.name}"] += 1
        return func(*args, **kwargs)


def test_a_training_step_on_the_cuda_branch_reads_nothing_back_but_the_input_check():
    torch.manual_seed(0)
    net = ss.sparsify(nn.Sequential(
        nn.Linear(120, 64), snn.Leaky(beta=0.9, init_hidden=True),
        nn.Linear(64, 64), snn.Leaky(beta=0.9, init_hidden=True),
        nn.Linear(64, 10), snn.Leaky(beta=0.9, init_hidden=True, output=True)))
    x = (torch.rand(20, 8, 120) < 0.05).float()
    labels = torch.randint(0, 10, (8,))

    def step():
        spk, mem = net(x)
        nn.functional.cross_entropy(mem.sum(0), labels).backward()

    with mock.patch.object(fused_cpu, "_gemm_reads_dense_input", lambda x, cfg: not cfg.event_forward):
        step()
        step()  # warm: the lists' size hints exist
        with _HostWaits() as waits:
            step()
    allowed = {k: v for k, v in waits.calls.items() if k.startswith("__float__")}
    assert sum(allowed.values()) <= 1, waits.calls  # the first layer's input check
    assert not {k: v for k, v in waits.calls.items() if k not in allowed}, waits.calls
