"""Jacobian traces: Hutchinson's estimator and the exact trace (DESIGN §1).

For a function ``fn`` that maps a batch ``x`` ``[B, ...]`` to an output of
the same shape row by row (a score, an ODE drift), ``tr(∂fn(x)ᵢ/∂xᵢ)`` per
row ``i``. Hutchinson's estimator ``E[vᵀJv]`` needs one vector–Jacobian
product per probe ``v``; the exact trace one backward pass per dimension.
Probes come from scorekern's random stream (reproducible under
``torch.manual_seed``, or a ``generator``).
"""

from __future__ import annotations

import math

import torch

from . import ops

__all__ = ["PROBES", "probes_like", "hutchinson_trace", "exact_trace", "divergence"]

PROBES = ("rademacher", "gaussian", "sphere")


def probes_like(x, kind="rademacher", *, generator=None, row_ids=None):
    """A probe per row with ``E[vvᵀ] = I``: Rademacher signs, standard normals, or
    (``"sphere"``) uniform on the sphere of radius √d, d the row size."""
    if kind not in PROBES:
        raise ValueError(f"kind must be one of {', '.join(PROBES)}; got {kind!r}")
    if kind == "rademacher":
        return ops.rademacher_like(x, generator=generator, row_ids=row_ids)
    v = ops.randn_like(x, generator=generator, row_ids=row_ids)
    if kind == "sphere":
        rows = 1 if x.dim() == 1 else x.shape[0]
        flat = v.reshape(rows, -1)
        norm = flat.norm(dim=1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
        v = (flat * (math.sqrt(flat.shape[1]) / norm)).reshape(x.shape)
    return v


def _rows(x):
    return 1 if x.dim() == 1 else x.shape[0]


def _row_dot(a, b):
    rows = _rows(a)
    return torch.linalg.vecdot(a.reshape(rows, -1), b.reshape(rows, -1))


def _input(x):
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
        raise TypeError("x must be a floating-point tensor")
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension (a 1-D tensor is one row)")
    return x if x.requires_grad else x.detach().requires_grad_(True)


def _output(fn, x):
    out = fn(x)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"fn(x) must return a tensor of x's shape {list(x.shape)}, got {got}")
    return out


def _check_probes(probes, x):
    if probes.dim() == x.dim():
        probes = probes.unsqueeze(0)
    if probes.shape[1:] != x.shape or probes.dtype != x.dtype or probes.device != x.device:
        raise ValueError(f"probes must be shaped [n_probes, *x.shape] or like x ({list(x.shape)}, {x.dtype}, "
                         f"{x.device}); got {list(probes.shape)}, {probes.dtype}, {probes.device}")
    return probes


def hutchinson_trace(fn, x, n_probes=1, kind="rademacher", *, probes=None, generator=None, create_graph=False,
                     return_output=False):
    """Hutchinson's estimate of ``tr(∂fn/∂x)`` per row, a ``[B]`` tensor.

    The mean of ``vᵀ(∂fn/∂x)ᵀv`` over ``n_probes`` probes of ``kind``
    (:func:`probes_like`), or over the given ``probes`` (``[n, *x.shape]``
    or shaped like ``x``, e.g. drawn once and reused along an ODE).
    ``create_graph=True`` keeps the graph for training through the estimate.
    ``return_output=True`` returns ``(fn(x), trace)``.
    """
    if probes is None and (not isinstance(n_probes, int) or n_probes < 1):
        raise ValueError(f"n_probes must be a positive int, got {n_probes!r}")
    with torch.enable_grad():
        xg = _input(x)
        out = _output(fn, xg)
        if probes is None:
            probes = [probes_like(xg, kind, generator=generator) for _ in range(n_probes)]
        else:
            probes = list(_check_probes(probes, xg))
        total = None
        for k, v in enumerate(probes):
            keep = create_graph or k + 1 < len(probes)
            (vjp,) = torch.autograd.grad(out, xg, v, retain_graph=keep, create_graph=create_graph)
            term = _row_dot(v, vjp)
            total = term if total is None else total + term
    trace = total / len(probes)
    return (out, trace) if return_output else trace


def exact_trace(fn, x, *, create_graph=False, return_output=False):
    """``tr(∂fn/∂x)`` per row, exactly: one backward pass per dimension of a row."""
    with torch.enable_grad():
        xg = _input(x)
        out = _output(fn, xg)
        rows = _rows(xg)
        flat = out.reshape(rows, -1)
        d = flat.shape[1]
        trace = torch.zeros(rows, dtype=out.dtype, device=out.device)
        for i in range(d):
            keep = create_graph or i + 1 < d
            (grad,) = torch.autograd.grad(flat[:, i].sum(), xg, retain_graph=keep, create_graph=create_graph)
            trace = trace + grad.reshape(rows, -1)[:, i]
    return (out, trace) if return_output else trace


def divergence(fn, x, *, method="hutchinson", n_probes=1, kind="rademacher", probes=None, generator=None,
               create_graph=False, return_output=False):
    """The divergence ``∇·fn(x)`` per row: Hutchinson's estimate or (``method="exact"``) the exact trace."""
    if method == "exact":
        return exact_trace(fn, x, create_graph=create_graph, return_output=return_output)
    if method != "hutchinson":
        raise ValueError(f"method must be 'hutchinson' or 'exact', got {method!r}")
    return hutchinson_trace(fn, x, n_probes, kind, probes=probes, generator=generator, create_graph=create_graph,
                            return_output=return_output)
