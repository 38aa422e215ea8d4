"""Input checks shared by the layers: clear errors naming the argument."""
from __future__ import annotations

import torch

RESET_MODES = {"subtract": 0, "zero": 1, "none": 2}


def check_sequence(x, name: str, min_dim: int = 3, features: int | None = None,
                   check_values: bool = True) -> None:
    """Check a time-major sequence ``[T, B, ...]`` (values too, unless ``check_values=False``)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float32 or float64), got {x.dtype}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got {x.dtype}; "
                        "half precision is refused (cast with .float())")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must be time-major with shape [T, B, ...] "
                         f"({min_dim} or more dims), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has T = 0 time steps (shape {tuple(x.shape)}); need T >= 1")
    if features is not None and x.shape[-1] != features:
        raise ValueError(f"{name} must have {features} features in its last dim, "
                         f"got shape {tuple(x.shape)}")
    if check_values:
        check_finite(x, name)


def check_finite(x: torch.Tensor, name: str) -> None:
    """NaN/inf in ``x`` raise ``ValueError``.

    Under ``torch.compile`` the check is an in-graph assertion
    (``torch._assert_async``, a ``RuntimeError`` with the same message) so that
    it causes no graph break; meta tensors hold no data and are not checked.
    """
    if not x.numel() or x.device.type == "meta":
        return
    msg = f"{name} contains NaN or inf"
    if torch.compiler.is_compiling():
        torch._assert_async(torch.isfinite(x.detach()).all(), msg)
    elif not torch.isfinite(x.detach()).all():
        raise ValueError(msg)


def check_same_device(**tensors) -> None:
    devices = {k: t.device for k, t in tensors.items() if isinstance(t, torch.Tensor)}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{k} on {d}" for k, d in devices.items())
        raise ValueError(f"tensors must be on one device: {listing}")


def check_beta(beta) -> None:
    b = torch.as_tensor(beta).detach()
    if not b.is_floating_point() or not torch.isfinite(b).all() or (b < 0).any() or (b > 1).any():
        raise ValueError(f"beta must be in [0, 1], got {b.tolist() if b.numel() < 8 else b}")


def check_threshold(threshold) -> None:
    t = torch.as_tensor(threshold).detach()
    if not torch.isfinite(t).all():
        raise ValueError("threshold must be finite")


def check_reset(reset_mechanism: str) -> int:
    if reset_mechanism not in RESET_MODES:
        raise ValueError(f"reset_mechanism must be one of {tuple(RESET_MODES)}, got {reset_mechanism!r}")
    return RESET_MODES[reset_mechanism]


def per_feature(value: torch.Tensor, n: int, name: str, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or ``[n]`` parameter to a contiguous ``[n]`` vector."""
    v = value.to(dtype=like.dtype, device=like.device)
    if v.numel() == 1:
        return v.reshape(1).expand(n).contiguous()
    if v.numel() != n:
        raise ValueError(f"{name} must be a scalar or have {n} elements (one per neuron), "
                         f"got shape {tuple(value.shape)}")
    return v.reshape(n).contiguous()


def autocast_input(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Under autocast, bring a half-precision activation back to the layer's dtype.

    Sparse layers opt out of autocast (see :func:`snntorch_sparse.functional.sparse_lif`),
    so a float16/bfloat16 output of an earlier autocast layer is cast up here.
    Outside autocast half precision is refused by :func:`check_sequence`.
    """
    if (isinstance(x, torch.Tensor) and x.dtype in (torch.float16, torch.bfloat16)
            and x.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(x.device.type)):
        return x.to(like.dtype)
    return x
