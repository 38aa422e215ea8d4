"""Pure-PyTorch reference implementation of the four primitive ops.

Every backend (this one, the compiled C++ CPU one and the CUDA one) implements
the same four functions with the same signatures and the same floating-point
order of operations, so results agree bit for bit in the forward and to
rounding in the reductions of the backward.

Notation (see ``docs/guide/math``): ``T`` time steps, ``B`` rows (batch, with
any extra non-feature dimensions folded in), ``N`` features.

* :func:`lif_scan` -- the LIF membrane recurrence of :class:`snntorch.Leaky`
  (``reset_delay=True``, reset detached)::

      R[t] = H(U[t-1] - θ)                      (U[-1] = 0)
      U[t] = β·U[t-1] + I[t] - R[t]·θ           reset_mode 0, "subtract"
      U[t] = β·((1 - R[t])·U[t-1]) + I[t]       reset_mode 1, "zero"
      U[t] = β·U[t-1] + I[t]                    reset_mode 2, "none"
      S[t] = H(U[t] - θ)

* :func:`lif_scan_backward` -- the adjoint recurrence ``h = ∂L/∂U`` given the
  per-step gradient ``g[t]`` reaching ``U[t]`` directly (through the surrogate
  and, if the membrane is an output, through it)::

      h[T-1] = g[T-1]
      h[t]   = g[t] + β·h[t+1]                  reset_mode 0 and 2
      h[t]   = g[t] + β·(1 - S[t])·h[t+1]       reset_mode 1

  ``h`` is also ``∂L/∂I`` since ``∂U[t]/∂I[t] = 1``.

* :func:`sparse_weight_grad` -- ``∂L/∂W = hᵀ X`` for a sparse input ``X``
  given as flat indices of its non-zeros (and their values, ``None`` meaning
  all ones: binary spikes)::

      dW[:, j] += x_k · h[r, :]      for every non-zero k at (r, j)

* :func:`sparse_input_grad` -- ``∂L/∂X = h W`` evaluated only at the given
  flat indices (the upstream layer's active set)::

      out[k] = Σ_i h[r, i] · W[i, j]  for every requested k at (r, j)
"""
from __future__ import annotations

import warnings
from typing import Optional, Tuple

import torch

__all__ = ["lif_scan", "lif_scan_", "lif_scan_backward", "lif_scan_backward_", "sparse_weight_grad",
           "sparse_input_grad"]

RESET_SUBTRACT, RESET_ZERO, RESET_NONE = 0, 1, 2

# Non-zeros handled per chunk in the gather-based kernels below: bounds the
# temporary [chunk, N] buffer to a few tens of MB whatever the layer size.
_CHUNK = 1 << 16
# sparse_input_grad switches to a dense GEMM above 1/_DENSE_FRACTION requested entries.
_DENSE_FRACTION = 32


def lif_scan(current: torch.Tensor, beta: torch.Tensor, threshold: torch.Tensor,
             reset_mode: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Run the LIF recurrence over time.

    Args:
        current: ``[T, B, N]`` input current ``I``.
        beta: ``[N]`` decay, already clamped to [0, 1].
        threshold: ``[N]`` firing threshold ``θ``.
        reset_mode: 0 subtract, 1 zero, 2 none.

    Returns:
        ``(spk, mem)``, both ``[T, B, N]`` of ``current``'s dtype.
    """
    T = current.shape[0]
    spk = torch.empty_like(current)
    mem = torch.empty_like(current)
    u = torch.zeros_like(current[0])
    for t in range(T):
        # Same expression order as snntorch.Leaky so results agree bit for bit.
        reset = (u - threshold > 0).to(current.dtype)
        if reset_mode == RESET_SUBTRACT:
            u = (beta * u + current[t]) - reset * threshold
        elif reset_mode == RESET_ZERO:
            u = beta * ((1 - reset) * u) + current[t]
        else:
            u = beta * u + current[t]
        mem[t] = u
        spk[t] = (u - threshold > 0).to(current.dtype)
    return spk, mem


def lif_scan_(current: torch.Tensor, beta: torch.Tensor, threshold: torch.Tensor,
              reset_mode: int) -> torch.Tensor:
    """The membrane of :func:`lif_scan`, written over ``current`` (returned).

    The spikes are not stored: they are ``(mem - threshold > 0)``, bit for bit
    (the scan compares the same rounded difference). The compiled kernels need
    no ``[T, B, N]`` buffer besides ``current`` (each step reads its current
    before storing the membrane in its place), two fewer than :func:`lif_scan`.
    """
    current.copy_(lif_scan(current, beta, threshold, reset_mode)[1])
    return current


def lif_scan_backward(grad: torch.Tensor, beta: torch.Tensor, spk: Optional[torch.Tensor],
                      reset_mode: int) -> torch.Tensor:
    """Adjoint of :func:`lif_scan`: ``h = ∂L/∂U = ∂L/∂I``.

    Args:
        grad: ``[T, B, N]`` gradient ``g`` reaching each ``U[t]`` directly.
        beta: ``[N]`` decay (clamped).
        spk: ``[T, B, N]`` forward spikes (any dtype, non-zero = spike);
            needed only for ``reset_mode == 1``, may be ``None`` otherwise.
        reset_mode: 0 subtract, 1 zero, 2 none.

    Returns:
        ``h``, ``[T, B, N]``.
    """
    T = grad.shape[0]
    h = torch.empty_like(grad)
    acc = torch.zeros_like(grad[0])
    for t in range(T - 1, -1, -1):
        if reset_mode == RESET_ZERO and t + 1 < T:
            acc = acc * (spk[t] == 0).to(grad.dtype)
        acc = grad[t] + beta * acc
        h[t] = acc
    return h


def lif_scan_backward_(grad: torch.Tensor, beta: torch.Tensor, spk: Optional[torch.Tensor],
                       reset_mode: int) -> torch.Tensor:
    """:func:`lif_scan_backward` written over ``grad`` (returned).

    The compiled kernels need no second ``[T, B, N]`` buffer (each entry of
    ``grad`` is read before ``h`` is stored in its place).
    """
    grad.copy_(lif_scan_backward(grad, beta, spk, reset_mode))
    return grad


def sparse_weight_grad(h: torch.Tensor, x_index: torch.Tensor, x_values: Optional[torch.Tensor],
                       in_features: int) -> torch.Tensor:
    """``dW = hᵀ X`` for sparse ``X``.

    Args:
        h: ``[R, N_out]`` gradient w.r.t. the layer's pre-activation.
        x_index: ``[nnz]`` int64 flat indices ``r·N_in + j`` of ``X``'s non-zeros.
        x_values: ``[nnz]`` their values, or ``None`` for all ones.
        in_features: ``N_in``.

    Returns:
        ``dW``, ``[N_out, N_in]``.
    """
    # Xᵀ as a CSR matrix [N_in, R] (rows sorted by input feature), then one
    # sparse-dense product: cost nnz(X)·N_out, no [nnz, N_out] temporary.
    n_rows = h.shape[0]
    rows = torch.div(x_index, in_features, rounding_mode="floor")
    cols = x_index - rows * in_features
    order = torch.argsort(cols * n_rows + rows)
    values = torch.ones(x_index.numel(), dtype=h.dtype, device=h.device) if x_values is None else x_values
    crow = torch.zeros(in_features + 1, dtype=torch.long, device=h.device)
    crow[1:] = torch.bincount(cols, minlength=in_features).cumsum(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        xt = torch.sparse_csr_tensor(crow, rows[order], values[order], (in_features, n_rows))
        return (xt @ h).t().contiguous()


def sparse_input_grad(h: torch.Tensor, weight: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``(h W)`` at the requested flat indices only.

    Args:
        h: ``[R, N_out]``.
        weight: ``[N_out, N_in]``.
        index: ``[k]`` int64 flat indices ``r·N_in + j`` into ``[R, N_in]``.

    Returns:
        ``[k]`` values of ``h W`` at those indices.
    """
    n_in = weight.shape[1]
    if index.numel() * _DENSE_FRACTION > h.shape[0] * n_in:
        # Many entries requested: one GEMM beats gathering rows of h and W.
        return (h @ weight).view(-1).index_select(0, index)
    out = torch.empty(index.numel(), dtype=h.dtype, device=h.device)
    wt = weight.t()
    for s in range(0, index.numel(), _CHUNK):
        idx = index[s:s + _CHUNK]
        rows = torch.div(idx, n_in, rounding_mode="floor")
        cols = idx - rows * n_in
        out[s:s + _CHUNK] = (h.index_select(0, rows) * wt.index_select(0, cols)).sum(1)
    return out
