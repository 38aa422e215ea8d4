r"""One weight gradient per call for an ``nn.Linear`` that a model's own time loop calls at every step.

An own-forward model calls its ``nn.Linear`` once per time step. Autograd then
computes ``∂L/∂W`` once per step and adds each into ``weight.grad``: ``T``
GEMMs plus ``T - 1`` passes over a weight-sized tensor. Within one call of a
model converted by :func:`~snntorch_sparse.sparsify` (the scope of
:mod:`snntorch_sparse.reuse`) the layer's weight enters the steps through one
proxy node instead, and each step's backward adds its product straight into one
buffer (``addmm_``, no separate pass); the proxy hands the sum to ``weight``
once:

.. math::

    \frac{\partial L}{\partial W} = \sum_t h_t^\top x_t, \qquad h_t = \frac{\partial L}{\partial y_t}

The forward is ``F.linear`` itself (bit-identical outputs); ``∂L/∂x`` and
``∂L/∂b`` are the per-step ones; ``∂L/∂W`` equals autograd's up to float
summation order. A backward that builds a graph (``create_graph=True``) returns
each step's product through the proxy instead (differentiable), and a backward
pass that does not reach the weight leaves nothing behind for the next one (the
buffer is tied to the engine's current graph task). Used on CPU, outside
autocast and ``torch.compile``, for dense (strided) inputs; otherwise the
layer's own forward runs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["usable", "linear"]

_task_id = getattr(torch._C, "_current_graph_task_id", None)


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:                       # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def usable(module, x) -> bool:
    """The per-call accumulation applies to this call of ``module`` (an ``nn.Linear``) on ``x``."""
    w = module.weight
    return (_task_id is not None and torch.is_grad_enabled() and w.requires_grad and w.device.type == "cpu"
            and isinstance(x, torch.Tensor) and x.layout == torch.strided and x.device.type == "cpu"
            and x.dim() >= 1 and x.dtype == w.dtype and not _cpu_autocast() and not torch.compiler.is_compiling())


class _Buffer:
    """The running ``Σ_t h_tᵀ x_t`` of one layer in one call, and the graph task it belongs to."""

    __slots__ = ("grad", "task")

    def __init__(self):
        self.grad = None
        self.task = None

    def add(self, h2: torch.Tensor, x2: torch.Tensor) -> None:
        task = _task_id()
        if self.task != task:           # left over from a backward pass that did not reach the weight
            self.grad, self.task = None, task
        if self.grad is None:
            self.grad = h2.t().mm(x2)
        else:
            self.grad.addmm_(h2.t(), x2)

    def take(self):
        grad = self.grad if self.task == _task_id() else None
        self.grad = self.task = None
        return grad


class _WeightProxy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight, buf):
        ctx.buf = buf
        ctx.set_materialize_grads(False)
        return weight.view_as(weight)

    @staticmethod
    def backward(ctx, grad):
        total = ctx.buf.take()
        if grad is not None:
            total = grad if total is None else total + grad
        return total, None


class _AccumulatingLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight_proxy, bias, buf):
        ctx.save_for_backward(x, weight_proxy)
        ctx.buf = buf
        ctx.set_materialize_grads(False)
        return F.linear(x, weight_proxy, bias)

    @staticmethod
    def backward(ctx, h):
        if h is None:
            return None, None, None, None
        x, w = ctx.saved_tensors
        dx = dw = db = None
        h2 = h.reshape(-1, h.shape[-1])
        if ctx.needs_input_grad[0]:
            dx = h.matmul(w.to(h.dtype))
        if ctx.needs_input_grad[2]:
            db = h2.sum(0)
        if ctx.needs_input_grad[1]:
            x2 = x.reshape(-1, x.shape[-1]).to(h.dtype)
            if torch.is_grad_enabled():     # create_graph: a plain, differentiable product per step
                dw = h2.t().mm(x2)
            else:
                ctx.buf.add(h2, x2)
        return dx, dw, db, None


def linear(module, x, proxies: dict):
    """``module(x)`` (an ``nn.Linear``) with the weight gradient summed per call; ``proxies``: the call's cache."""
    w = module.weight
    key = id(module)
    hit = proxies.get(key)
    if hit is None or hit[0] is not w or hit[1] != w._version:
        buf = _Buffer()
        hit = (w, w._version, _WeightProxy.apply(w, buf), buf)
        proxies[key] = hit
    return _AccumulatingLinear.apply(x, hit[2], module.bias, hit[3])
