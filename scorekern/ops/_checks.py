"""Argument checks shared by every op's wrapper (the compiled and the twin
paths alike): errors name the argument and what was expected (DESIGN §4).

Conventions (DESIGN §1): a *row* is ``x[i]`` flattened; a 1-D tensor is one
row. Data may be float32, float64, float16 or bfloat16, with any strides;
arithmetic is in float32 (float64 for float64 data). Per-row coefficients
are Python floats, 0-d tensors or ``[B]`` (or ``[B, 1, …, 1]``) tensors; the
ops take them as one bundle, :func:`coefs`.
"""

from __future__ import annotations

import numbers

import torch

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def rows(x: torch.Tensor) -> int:
    """The number of rows of x (1 for a 1-D tensor)."""
    return 1 if x.dim() == 1 else x.shape[0]


def opmath(x: torch.Tensor) -> torch.dtype:
    """The arithmetic dtype of x's kernels."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def row_view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-row tensor ([B], or one value) broadcastable against ``like`` row by row."""
    if v.numel() == 1:
        return v.reshape(())
    return v.reshape(-1, *([1] * (like.dim() - 1))) if like.dim() > 1 else v


def check_data(x, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32, float64, float16 or bfloat16, got {x.dtype}")
    if x.dim() == 0:
        raise ValueError(f"{name} must have at least one dimension (a 1-D tensor is one row), got a 0-d tensor")


def check_like(t, x, name: str, like: str = "x") -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
    if t.device != x.device:
        raise ValueError(f"{name} must be on {like}'s device {x.device}, got {t.device}")
    if t.dtype != x.dtype:
        raise TypeError(f"{name} must have {like}'s dtype {x.dtype}, got {t.dtype}")
    if t.shape != x.shape:
        raise ValueError(f"{name} must have {like}'s shape {list(x.shape)}, got {list(t.shape)}")


def check_row_ids(row_ids, x):
    """Row ids as a contiguous int64 [B] tensor on x's device, or None."""
    if row_ids is None:
        return None
    if not isinstance(row_ids, torch.Tensor):
        raise TypeError(f"row_ids must be an integer tensor of shape [{rows(x)}], got {type(row_ids).__name__}")
    if row_ids.dtype.is_floating_point or row_ids.dtype.is_complex or row_ids.dtype == torch.bool:
        raise TypeError(f"row_ids must be an integer tensor, got {row_ids.dtype}")
    n = rows(x)
    if row_ids.shape != (n,):
        raise ValueError(f"row_ids must have shape [{n}] (one id per row), got {list(row_ids.shape)}")
    if row_ids.device != x.device:
        raise ValueError(f"row_ids must be on x's device {x.device}, got {row_ids.device}")
    if row_ids.device.type == "cpu" and n > 0:
        # On a GPU this check would need a host-device synchronisation; there
        # ids are taken modulo 2**32 instead (documented).
        low, high = int(row_ids.min()), int(row_ids.max())
        if low < 0 or high >= 1 << 32:
            raise ValueError(f"row_ids must lie in [0, 2**32), got values in [{low}, {high}]")
    return row_ids.to(torch.int64).contiguous()


def coefficient(value, name: str, x: torch.Tensor, *, nonnegative: bool = False):
    """A per-row coefficient as (values, scale): values a tensor of x's arithmetic
    dtype on x's device ([B], or [1] for all rows) or None, and a float scale."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a float or a floating-point tensor, got bool")
    if isinstance(value, numbers.Real):
        value = float(value)
        if nonnegative and value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
        return None, value
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a float, a 0-d tensor or a [B] tensor, got {type(value).__name__}")
    if not value.dtype.is_floating_point:
        raise TypeError(f"{name} must be a float or a floating-point tensor, got a {value.dtype} tensor")
    n = rows(x)
    # One value for all rows, or one per row as [B] or [B, 1, ..., 1] (the
    # shape users write to broadcast against x).
    fits = value.dim() <= max(x.dim(), 1)
    single = fits and value.numel() == 1
    per_row = fits and value.dim() >= 1 and value.shape[0] == n and value.numel() == n
    if not (single or per_row):
        raise ValueError(
            f"{name} must be a float, a 0-d tensor or a tensor of shape [{n}] (one value per row), "
            f"got shape {list(value.shape)}"
        )
    needs_grad = value.requires_grad and torch.is_grad_enabled()
    if single and value.device.type == "cpu" and not needs_grad:
        return coefficient(value.item(), name, x, nonnegative=nonnegative)  # no device sync
    if value.device != x.device and not (single and value.device.type == "cpu"):
        raise ValueError(f"{name} must be on x's device {x.device} (or a 0-d CPU tensor), got {value.device}")
    if nonnegative and value.device.type == "cpu" and bool((value < 0).any()):
        raise ValueError(f"{name} must be non-negative, got a negative entry")
    return value.reshape(-1).to(device=x.device, dtype=opmath(x)).contiguous(), 1.0


def coefs(*pairs) -> tuple[list, list, list]:
    """The ops' coefficient bundle (csrc/coefficients.h) of (values, scale)
    pairs: the tensors among them, the slot of each, and every scale."""
    values, slots, scales = [], [], []
    for i, (v, scale) in enumerate(pairs):
        if v is not None:
            values.append(v)
            slots.append(i)
        scales.append(scale)
    return values, slots, scales


def like_x(t, x, name):
    """y or mask as a tensor of x's shape and dtype: broadcast (and then
    copied by the kernel's glue) and converted as needed."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
    if t.device != x.device:
        raise ValueError(f"{name} must be on x's device {x.device}, got {t.device}")
    if t.dtype != x.dtype:
        if not (t.dtype.is_floating_point or t.dtype == torch.bool):
            raise TypeError(f"{name} must be a floating-point or bool tensor, got {t.dtype}")
        t = t.to(x.dtype)
    if t.shape != x.shape:
        try:
            t = t.expand(x.shape)
        except RuntimeError:
            raise ValueError(f"{name} of shape {list(t.shape)} does not broadcast to x's shape {list(x.shape)}") from None
    return t


def check_out(out, x, name: str = "out") -> None:
    check_like(out, x, name)
    if torch.is_grad_enabled() and (out.requires_grad or x.requires_grad):
        raise RuntimeError(
            f"scorekern: {name}= and in-place forms do not support automatic differentiation; "
            "use the functional form or wrap the call in torch.no_grad()"
        )


def check_no_grad(op: str, *tensors) -> None:
    if torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors):
        raise RuntimeError(
            f"scorekern.{op} is not differentiable; call it under torch.no_grad() "
            "(samplers do) or detach its inputs"
        )


def check_update(x, score, noise, row_ids, out):
    """The data arguments every update op shares; returns the row ids as int64."""
    check_data(x)
    check_like(score, x, "score")
    if noise is not None:
        check_like(noise, x, "noise")
    if out is not None:
        check_out(out, x)
    return check_row_ids(row_ids, x)
