"""Counting the bytes autograd keeps for the backward pass.

:func:`saved_tensor_bytes` sees, with
:func:`torch.autograd.graph.saved_tensors_hooks`, every tensor packed for
backward inside its ``with`` block, and counts at the end of the block those
that a live autograd graph still holds, each underlying storage once. A
tensor saved by a graph node that is freed before the block ends is not
counted: e.g. snnTorch's ``Leaky`` runs its surrogate on the membrane to get
the reset term and then detaches it, so the tensors that call saved are
released during the forward. Pass the model(s) to leave out their parameters
and buffers (saved by reference, also through views such as ``weight.t()``):
what remains is the activation memory of training, on any device.
"""
from __future__ import annotations

import weakref
from contextlib import contextmanager

import torch

__all__ = ["saved_tensor_bytes", "SavedBytes", "cpu_allocation_timeline", "cpu_peak_bytes"]


class SavedBytes:
    """Result holder, filled when the ``with`` block ends: ``.bytes`` total,
    ``.count`` distinct storages held for backward at that point."""

    def __init__(self):
        self.bytes = 0
        self.count = 0


class _Packed:
    """What the graph stores instead of the tensor: alive exactly as long as
    the graph node that saved it, which a weak reference can observe."""

    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor


def _storage_key(t: torch.Tensor):
    return (t.untyped_storage().data_ptr(), t.device)


@contextmanager
def saved_tensor_bytes(*exclude):
    """``with saved_tensor_bytes(model) as c: loss = f(model(x))`` then ``c.bytes``.

    ``c.bytes`` is the size of the distinct storages that autograd holds for
    backward when the block ends (a held tensor keeps its storage alive, so
    two live storages never share an address).

    Args:
        exclude: modules (their parameters and buffers) or tensors whose
            storages are not counted.
    """
    counter = SavedBytes()
    skip = set()
    for item in exclude:
        tensors = list(item.parameters()) + list(item.buffers()) if isinstance(item, torch.nn.Module) else [item]
        for t in tensors:
            if t.device.type != "meta":
                skip.add(_storage_key(t))
    packed = []  # (weak reference to the _Packed, storage key, storage bytes)

    def pack(t):
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return t
        try:
            key, size = _storage_key(t), t.untyped_storage().nbytes()
        except (RuntimeError, NotImplementedError):  # e.g. sparse tensors: no single storage
            key, size = ("tensor", id(t)), t.numel() * t.element_size()
        if key in skip:
            return t
        box = _Packed(t)
        packed.append((weakref.ref(box), key, size))
        return box

    def unpack(box):
        return box.tensor if isinstance(box, _Packed) else box

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            yield counter
    finally:
        held = {key: size for ref, key, size in packed if ref() is not None}
        counter.bytes = sum(held.values())
        counter.count = len(held)


def cpu_allocation_timeline(fn):
    """Run ``fn()`` under the profiler's memory events: ``(allocations, ops)``.

    ``allocations`` lists ``(t_ns, nbytes, live)`` in time order: each CPU
    allocation (``nbytes > 0``) or free (``< 0``) by torch and the running
    total after it, relative to the start of the call (memory held before is
    not counted). ``ops`` lists ``(name, start_ns, end_ns)`` of the operators
    that ran, so an allocation can be traced to the op it happened in.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = prof.profiler.kineto_results.events()
    allocations, live = [], 0
    for e in sorted((e for e in events if e.name() == "[memory]"), key=lambda e: e.start_ns()):
        live += e.nbytes()
        allocations.append((e.start_ns(), e.nbytes(), live))
    ops = [(e.name(), e.start_ns(), e.end_ns()) for e in events if e.name() != "[memory]"]
    return allocations, ops


def cpu_peak_bytes(fn) -> int:
    """Highest number of CPU bytes allocated by torch while ``fn()`` runs.

    The running total of :func:`cpu_allocation_timeline`, maximised over
    time (0 if ``fn`` frees more than it allocates). The device-generic
    sparse path (what CUDA runs) allocates the same buffers on any device, so
    on CPU this tracks its GPU peak without a GPU.
    """
    allocations, _ = cpu_allocation_timeline(fn)
    return max([0] + [live for _, _, live in allocations])
