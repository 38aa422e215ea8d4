"""Input checks shared by the layers: clear errors naming the argument."""
from __future__ import annotations

import math

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
    elif not torch.isfinite(x.detach().sum()):
        # one reduction pass: NaN/inf make the sum non-finite; only then (or on an
        # overflow of large finite values) the exact elementwise check decides
        if not torch.isfinite(x.detach()).all():
            raise ValueError(msg)


def check_same_device(**tensors) -> None:
    devices = {k: t.device for k, t in tensors.items() if isinstance(t, torch.Tensor)}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{k} on {d}" for k, d in devices.items())
        raise ValueError(f"tensors must be on one device: {listing}")


def _real_tensor(value, name: str) -> torch.Tensor:
    """``value`` as a real floating tensor; int/bool values (valid in snnTorch) become the default float dtype."""
    try:
        t = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a number or a tensor, got {type(value).__name__}") from None
    if t.is_complex():
        raise TypeError(f"{name} must be real, got {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t


def as_float_param(value):
    """An int/bool-valued ``beta``/``threshold`` (``1``, ``torch.tensor(1)``) as a default-dtype float.

    snnTorch stores such values as int64 tensors; the sparse layers keep them as
    floats (the membrane arithmetic is float anyway, and a learnable parameter
    must be floating point). Floats and float tensors are returned as they are.
    """
    if isinstance(value, bool) or isinstance(value, int):
        return float(value)
    if isinstance(value, torch.Tensor) and not value.is_floating_point() and not value.is_complex():
        return value.to(torch.get_default_dtype())
    return value


def check_beta(beta) -> None:
    b = _real_tensor(beta, "beta")
    if b.device.type == "meta":  # a meta model (e.g. model.to("meta")): no values to check
        return
    if not torch.isfinite(b).all() or (b < 0).any() or (b > 1).any():
        raise ValueError(f"beta must be in [0, 1], got {b.tolist() if b.numel() < 8 else b}")


def check_unit(value, name: str) -> None:
    """``value`` (a decay such as ``alpha``) must be finite and in [0, 1]."""
    t = torch.as_tensor(value)
    if not t.is_floating_point() and t.dtype not in (torch.int64, torch.int32, torch.bool):
        raise TypeError(f"{name} must be a real number or tensor, got dtype {t.dtype}")
    if t.device.type == "meta":
        return
    t = t.double()
    if not torch.isfinite(t).all() or (t < 0).any() or (t > 1).any():
        raise ValueError(f"{name} must be in [0, 1], got {t.tolist() if t.numel() < 8 else t}")


def check_threshold(threshold) -> None:
    t = _real_tensor(threshold, "threshold")
    if t.device.type != "meta" and not torch.isfinite(t).all():
        raise ValueError(f"threshold must be finite, got {t.tolist() if t.numel() < 8 else t}")


def check_features(n, name: str) -> None:
    """A layer size: an int >= 1."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be a positive int, got {n!r}")


def check_call_tensors(x, weight, bias) -> None:
    """Shapes, dtypes and devices of a :func:`~snntorch_sparse.functional.sparse_lif` call."""
    if weight is None:
        if bias is not None:
            raise ValueError("bias given without weight: a neuron-only call (weight=None) takes no bias")
        check_sequence(x, "x", min_dim=2, check_values=False)
        if x.dim() > 2 and not math.prod(x.shape[2:]):
            raise ValueError(f"x has no features (shape {tuple(x.shape)}); need at least one neuron")
        return
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ValueError("weight must be a 2-D [N_out, N_in] tensor, got "
                         + (f"shape {tuple(weight.shape)}" if isinstance(weight, torch.Tensor)
                            else type(weight).__name__))
    n_out, n_in = weight.shape
    if not n_out or not n_in:
        raise ValueError(f"weight has shape {tuple(weight.shape)}: need N_out >= 1 and N_in >= 1")
    check_sequence(x, "x", min_dim=3, features=n_in, check_values=False)
    if x.dtype != weight.dtype:
        raise TypeError(f"x has dtype {x.dtype} but weight is {weight.dtype}; they must match")
    check_same_device(x=x, weight=weight, bias=bias)
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (n_out,):
            raise ValueError(f"bias must be None or a [{n_out}] tensor (N_out of weight), got "
                             + (f"shape {tuple(bias.shape)}" if isinstance(bias, torch.Tensor)
                                else type(bias).__name__))
        if bias.dtype != weight.dtype:
            raise TypeError(f"bias has dtype {bias.dtype} but weight is {weight.dtype}; they must match")


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


BACKEND_NAMES = ("auto", "reference", "compiled")  # = snntorch_sparse.ops.BACKENDS


def check_backend(backend) -> None:
    """``backend=``: ``None`` (the package default) or a backend name; checked when a layer is built."""
    if backend is not None and (not isinstance(backend, str) or backend not in BACKEND_NAMES):
        raise ValueError(f"backend must be None or one of {BACKEND_NAMES}, got {backend!r}")


def check_event_forward(event_forward) -> None:
    """``event_forward=``: ``None`` (auto), ``True`` or ``False`` -- nothing else (``0``, ``"yes"``)."""
    if event_forward is not None and event_forward is not True and event_forward is not False:
        raise ValueError(f"event_forward must be None (auto), True or False, got {event_forward!r}")


def check_param_shape(value, name: str, feature_shape) -> None:
    """``beta`` / ``threshold`` of a multi-step layer: a scalar or one value per neuron.

    It must have one value per neuron and broadcast against one time step's
    features ``feature_shape`` without changing them (``[N]`` or ``[1, N]`` for
    ``[N]`` features, ``[C, H, W]`` for ``[C, H, W]``). A ``[3, 1]`` value for 3
    neurons has one value per neuron, but snnTorch (and the dense twin that
    ``desparsify`` builds) would broadcast it over the batch: refused.
    """
    if not isinstance(value, torch.Tensor) or value.numel() == 1:
        return
    feature_shape = tuple(feature_shape)
    shape = list(value.shape)
    while len(shape) > len(feature_shape) and shape[0] == 1:  # [1, N]: no batch broadcasting
        shape.pop(0)
    try:
        ok = tuple(torch.broadcast_shapes(tuple(shape), feature_shape)) == feature_shape
    except RuntimeError:
        ok = False
    if not ok or value.numel() != math.prod(feature_shape):
        raise ValueError(
            f"{name} has shape {tuple(value.shape)}, but the neurons have shape {list(feature_shape)}: "
            f"it must be a scalar or hold one value per neuron in the neurons' shape (e.g. "
            f"{list(feature_shape)}); a shape such as [N, 1] would broadcast over the batch in snnTorch "
            f"(and in the dense twin that desparsify builds). Reshape it, e.g. {name}.reshape({list(feature_shape)})")
