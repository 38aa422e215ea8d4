r"""One time step of snnTorch's ``Leaky`` as a single autograd node, with the sparse surrogate.

snnTorch's per-step ``Leaky`` builds its update from about ten tensor ops, each
an autograd node. :class:`LeakyStep` computes the same numbers, in the same
order (so the membrane and spikes are bit-identical), as one node:

.. math::

    R &= H(U_{prev} - \theta) \quad\text{(detached)} \\
    U &= \begin{cases}
        (\beta U_{prev} + I) - R\,\theta & \text{subtract} \\
        \beta\,((1 - R)\,U_{prev}) + I & \text{zero} \\
        \beta U_{prev} + I & \text{none}\end{cases} \qquad S = H(U - \theta)

Backward, with the window :math:`B` and gain :math:`c` of this call (``bth``
and 1 for a fixed window; per neuron, the quantile of :math:`|U - \theta|` over
the batch and :func:`~snntorch_sparse.surrogate.mass_gain` for an adaptive one,
taken here from the saved :math:`U - \theta`):

.. math::

    g_S &= \frac{\partial L}{\partial S}\,c\,\sigma'(U - \theta)\,\mathbb{1}[|U - \theta| < B], \qquad
    g = g_S + \frac{\partial L}{\partial U} \\
    \frac{\partial L}{\partial I} &= g, \qquad
    \frac{\partial L}{\partial U_{prev}} = \beta\,g\,(1 - R)^{[\text{zero}]}, \qquad
    \frac{\partial L}{\partial \beta} = \textstyle\sum g\,U'_{prev}\,\mathbb{1}[0 \le \beta \le 1], \\
    \frac{\partial L}{\partial \theta} &= -\textstyle\sum g_S - \sum g\,R^{[\text{subtract}]}

where :math:`U'_{prev}` is :math:`(1 - R)\,U_{prev}` for reset-to-zero, else
:math:`U_{prev}`; sums reduce over broadcast dimensions. These are exactly the
gradients snnTorch's autograd computes for the same clamped surrogate.

With the compiled backend (the default where it builds) a step on contiguous
float32/float64 CPU tensors, with ``beta`` and ``threshold`` scalar or one value
per neuron, runs its forward and the :math:`g` of its backward as two C++
kernels (:mod:`snntorch_sparse._step_kernels`): the forward and, for a fixed
window, :math:`g` are bit-identical to the PyTorch operations below; for the
adaptive window :math:`B_n` is bit-identical too (a selection) and the gain's
two sums run in row order, so :math:`c_n` may differ from PyTorch's ``sum`` in
its last bit (the :math:`c_n` used is the one recorded, ``last_gain``). A
learnable threshold takes the PyTorch path in the backward (it needs
:math:`g_S` apart).
"""
from __future__ import annotations

import torch

from . import _step_kernels
from .surrogate import windowed_derivative

__all__ = ["LeakyStep", "leaky_step"]


class LeakyStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input_, mem, beta, threshold, surrogate, reset_mode: int, backend=None):
        dtype = input_.dtype
        beta_c = beta.clamp(0, 1)
        kernels = _step_kernels.usable(backend, input_)
        # the backward reads R for reset-to-zero and for a learnable threshold only
        need_reset = reset_mode == 1 or (reset_mode == 0 and ctx.needs_input_grad[3])
        done = _step_kernels.forward(input_, mem, beta_c, threshold, reset_mode, need_reset) if kernels else None
        if done is not None:
            spk, new, reset, prev = done
            prev = mem if prev is None else prev
            shift = None      # recomputed in the backward as new - threshold: the same bits, one buffer less
        else:
            reset = (mem - threshold) > 0
            reset_f = reset.to(dtype)
            prev = mem
            if reset_mode == 0:
                new = (beta_c * mem + input_) - reset_f * threshold
            elif reset_mode == 1:
                prev = (1 - reset_f) * mem
                new = beta_c * prev + input_
            else:
                new = beta_c * mem + input_
            shift = new - threshold
            spk = (shift > 0).to(dtype)
        ctx.save_for_backward(new if shift is None else shift, reset if reset_mode != 2 else None,
                              prev if ctx.needs_input_grad[2] else None, beta,
                              threshold if shift is None else None)
        ctx.from_new = shift is None
        ctx.surrogate, ctx.reset_mode, ctx.kernels, ctx.backend = surrogate, reset_mode, kernels, backend
        ctx.shapes = (input_.shape, mem.shape, beta.shape, threshold.shape)
        ctx.set_materialize_grads(False)
        return spk, new

    @staticmethod
    def backward(ctx, d_spk, d_mem):
        shift, reset, prev, beta, threshold = ctx.saved_tensors
        sg, mode = ctx.surrogate, ctx.reset_mode
        in_shape, mem_shape, beta_shape, thr_shape = ctx.shapes
        g_spk = g = None
        if d_spk is not None and ctx.kernels and not ctx.needs_input_grad[3]:
            # d_mem + g_spk in one pass (U - θ from the saved new membrane when the forward ran the kernel)
            g = _step_kernels.windowed_grad(sg, shift, d_spk, d_mem, threshold if ctx.from_new else None)
        if g is None:
            if ctx.from_new and d_spk is not None:
                shift = shift - threshold       # the forward's subtraction: the same U - θ
            if d_spk is not None:
                g_spk = d_spk * windowed_derivative(sg, shift)
            if g_spk is None and d_mem is None:
                return None, None, None, None, None, None, None
            g = g_spk if d_mem is None else (d_mem if g_spk is None else d_mem + g_spk)
        d_input = d_prev = d_beta = d_thr = None
        if ctx.needs_input_grad[0]:
            d_input = g.sum_to_size(in_shape) if g.shape != in_shape else g
        if ctx.needs_input_grad[1]:
            d_prev = beta.clamp(0, 1) * g
            if mode == 1:
                d_prev = d_prev * (1 - reset.to(g.dtype))
            d_prev = d_prev.sum_to_size(mem_shape) if d_prev.shape != mem_shape else d_prev
        if ctx.needs_input_grad[2]:
            inside = ((beta >= 0) & (beta <= 1)).to(g.dtype)
            d_beta = (g * prev).sum_to_size(beta_shape) * inside
        if ctx.needs_input_grad[3]:
            d_thr = torch.zeros_like(g) if g_spk is None else -g_spk
            if mode == 0:
                d_thr = d_thr - g * reset.to(g.dtype)
            d_thr = d_thr.sum_to_size(thr_shape)
        return d_input, d_prev, d_beta, d_thr, None, None, None


def leaky_step(input_, mem, beta, threshold, surrogate, reset_mode: int, backend=None):
    """``(spk, mem)`` of one step; see :class:`LeakyStep` (``backend``: as the layers', ``None`` the default)."""
    return LeakyStep.apply(input_, mem, beta, threshold, surrogate, reset_mode, backend)
