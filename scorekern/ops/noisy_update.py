"""noisy_update, noisy_update_ and langevin_step: the fused affine noisy
update x' = a·x + b·score + c·z that every sampler step is made of (DESIGN
§1). Kernels: csrc/ops/noisy_update.cpp, csrc/cpu/noisy_update.cpp,
csrc/cuda/noisy_update.cu; arithmetic: csrc/scorekern/noisy_update.h."""

from __future__ import annotations

import math

import torch

from .. import _backend
from . import _twins
from ._checks import check_update, coefficient, coefs, row_view
from . import _library
from ._library import register_autograd
from ._stream import stream

__all__ = ["noisy_update", "noisy_update_", "langevin_step"]


def call_update(name: str, args: tuple, x, out, return_mean: bool):
    """Runs the compiled update op ``name`` (functional), or ``name``_out into
    ``out``: noisy_update, masked_update and snr_langevin_step alike."""
    if out is None:
        new, mean = getattr(_library.LIB, name)(*args, return_mean)
    else:
        mean = torch.empty(x.shape, dtype=x.dtype, device=x.device) if return_mean else None
        getattr(_library.LIB, name + "_out")(*args, out, mean)
        new = out
    return (new, mean) if return_mean else new


def noisy_update(x, score, a, b, c, *, noise=None, generator=None, row_ids=None, out=None, return_mean=False):
    """``a·x + b·score + c·z`` in one pass, ``z`` standard normal drawn in the kernel.

    ``a``, ``b``, ``c``: floats, 0-d tensors or ``[B]`` tensors (one value per
    row); ``c`` must be non-negative. ``noise``: use this tensor as ``z``
    instead of drawing it. ``row_ids``: pin each row's noise to an id (see
    :func:`randn_like`). ``out``: write the result there (``out=x`` updates in
    place). ``return_mean``: also return the mean ``a·x + b·score``, as
    ``(x_new, mean)``. Differentiable in ``x``, ``score``, ``noise`` and
    tensor coefficients.
    """
    row_ids = check_update(x, score, noise, row_ids, out)
    ca, cb, cc = coefficient(a, "a", x), coefficient(b, "b", x), coefficient(c, "c", x, nonnegative=True)
    if not _backend.uses_compiled(x.device):
        return _twins.reference().noisy_update(x, score, a, b, c, noise=noise, generator=generator, row_ids=row_ids, out=out,
                                 return_mean=return_mean)
    seed, offset = (0, 0) if noise is not None else stream(x, generator, capturable=True)
    return call_update("noisy_update", (x, score, *coefs(ca, cb, cc), noise, seed, offset, row_ids), x, out,
                       return_mean)


def noisy_update_(x, score, a, b, c, *, noise=None, generator=None, row_ids=None, return_mean=False):
    """In-place :func:`noisy_update`: ``x ← a·x + b·score + c·z``; returns ``x``."""
    return noisy_update(x, score, a, b, c, noise=noise, generator=generator, row_ids=row_ids, out=x,
                        return_mean=return_mean)


def langevin_step(x, score, step_size, *, noise=None, generator=None, row_ids=None, out=None, return_mean=False):
    """One step of the unadjusted Langevin algorithm, ``x + τ·score + √(2τ)·z``.

    ``step_size`` τ ≥ 0: a float, a 0-d tensor or a ``[B]`` tensor. Other
    arguments as in :func:`noisy_update`.
    """
    row_ids = check_update(x, score, noise, row_ids, out)
    values, scale = coefficient(step_size, "step_size", x, nonnegative=True)
    if not _backend.uses_compiled(x.device):
        return _twins.reference().langevin_step(x, score, step_size, noise=noise, generator=generator, row_ids=row_ids, out=out,
                                  return_mean=return_mean)
    if values is None:
        b, c = (None, scale), (None, math.sqrt(2.0 * scale))
    else:
        b, c = (values, 1.0), ((2.0 * values).sqrt(), 1.0)
    seed, offset = (0, 0) if noise is not None else stream(x, generator, capturable=True)
    return call_update("noisy_update", (x, score, *coefs((None, 1.0), b, c), noise, seed, offset, row_ids), x,
                       out, return_mean)


# Its meta kernel is the C++ one (csrc/ops/noisy_update.cpp). Autograd:
# ∂/∂x = a, ∂/∂score = b, ∂/∂noise = c, and for a coefficient tensor the row
# sums of x, score or z times the gradient; z is regenerated from the stream,
# never stored.

_X, _SCORE, _VALUES, _NOISE = 0, 1, 2, 5  # input positions of the differentiable arguments
_A, _B, _C = 0, 1, 2  # coefficient slots


def _setup(ctx, inputs, output):
    x, score, values, slots, scales, noise, seed, offset, row_ids, return_mean = inputs
    needs = {slot: v.requires_grad for v, slot in zip(values, slots)}
    ctx.slots, ctx.scales, ctx.stream, ctx.return_mean = list(slots), list(scales), (seed, offset), return_mean
    ctx.like = (x.shape, x.dtype, x.device)  # to regenerate z for c's gradient
    ctx.n_values = len(values)
    # x, score and the noise are kept only when a coefficient tensor needs a
    # gradient: that is the only use of them in the backward pass.
    ctx.save_for_backward(
        *values,
        x if needs.get(_A) else None,
        score if needs.get(_B) else None,
        noise if needs.get(_C) else None,
        row_ids if needs.get(_C) and noise is None else None,
    )


def _coef_grad(v, product):
    """The elementwise product reduced to the coefficient's shape ([B] or [1])."""
    if v.numel() == 1:
        return product.sum().reshape(v.shape)
    return product.reshape(v.shape[0], -1).sum(1)


def _backward(ctx, grad_out, grad_mean):
    saved = ctx.saved_tensors
    values, (x, score, noise, row_ids) = saved[:ctx.n_values], saved[ctx.n_values:]
    total = grad_out + grad_mean if ctx.return_mean else grad_out
    coef = list(ctx.scales)
    for v, slot in zip(values, ctx.slots):
        coef[slot] = row_view(v, total).to(total.dtype) * ctx.scales[slot]
    needs = ctx.needs_input_grad
    grad_x = total * coef[_A] if needs[_X] else None
    grad_score = total * coef[_B] if needs[_SCORE] else None
    grad_noise = grad_out * coef[_C] if needs[_NOISE] else None
    grad_values = []
    for v, slot, need in zip(values, ctx.slots, needs[_VALUES]):
        if not need:
            grad_values.append(None)
            continue
        if slot == _A:
            product = total * x
        elif slot == _B:
            product = total * score
        else:
            z = noise
            if z is None:  # regenerate the kernel's noise from the stream
                shape, dtype, device = ctx.like
                z = _library.LIB.randn(torch.empty(shape, dtype=dtype, device=device), *ctx.stream, row_ids)
            product = grad_out * z
        grad_values.append(_coef_grad(v, product.to(v.dtype)) * ctx.scales[slot])
    return (grad_x, grad_score, grad_values, None, None, grad_noise, None, None, None, None)


register_autograd("noisy_update", _backward, _setup)


# The twins.


def twin_noisy_update(x, score, a, b, c, *, noise=None, generator=None, row_ids=None, out=None, return_mean=False):
    if noise is None:
        noise = _twins.normal(x, generator, row_ids)
    a, b, c = (_twins.per_row(v, x) for v in (a, b, c))
    mean = a * x + b * score
    new = mean + c * noise
    return _twins.result(new, mean, out, return_mean)


def twin_noisy_update_(x, score, a, b, c, *, noise=None, generator=None, row_ids=None, return_mean=False):
    return twin_noisy_update(x, score, a, b, c, noise=noise, generator=generator, row_ids=row_ids, out=x,
                             return_mean=return_mean)


def twin_langevin_step(x, score, step_size, *, noise=None, generator=None, row_ids=None, out=None,
                       return_mean=False):
    # Unadjusted Langevin algorithm: x + τ·s + √(2τ)·z.
    if noise is None:
        noise = _twins.normal(x, generator, row_ids)
    tau = _twins.per_row(step_size, x)
    mean = x + tau * score
    scale = math.sqrt(2 * tau) if not isinstance(tau, torch.Tensor) else (2 * tau).sqrt()
    new = mean + scale * noise
    return _twins.result(new, mean, out, return_mean)


TWINS = {"noisy_update": twin_noisy_update, "noisy_update_": twin_noisy_update_, "langevin_step": twin_langevin_step}
