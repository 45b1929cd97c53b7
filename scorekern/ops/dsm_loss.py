"""perturb and dsm_loss: denoising score matching (Vincent 2011) with the
noise regenerated from the stream instead of stored. Kernels:
csrc/ops/dsm_loss.cpp, csrc/cpu/dsm_loss.cpp, csrc/cuda/dsm_loss.cu;
arithmetic: csrc/scorekern/dsm_loss.h. perturb is a noisy_update."""

from __future__ import annotations

import numbers

import torch

from .. import _backend
from . import _twins
from ._checks import check_data, check_like, check_row_ids, coefficient, coefs, opmath, rows
from . import _library
from ._library import register_autograd
from ._stream import stream

__all__ = ["Noise", "perturb", "dsm_loss"]


class Noise:
    """Standard normal noise that the kernels regenerate instead of storing.

    :func:`perturb` returns one: the random stream's words ``(seed, offset)``,
    the per-row ``row_ids`` and the ``shape``, ``dtype`` and ``device`` of
    the noise, a few bytes instead of a tensor the size of the batch.
    :func:`dsm_loss` regenerates the same ``z`` in its forward and backward
    kernels. :meth:`tensor` materialises it, for code that needs ``z`` itself.
    ``seed`` and ``offset`` are held as the ops' int64 words (two's
    complement of the 64-bit values).
    """

    __slots__ = ("seed", "offset", "row_ids", "shape", "dtype", "device", "compiled")

    def __init__(self, seed: int, offset: int, row_ids, shape, dtype, device, compiled: bool):
        self.seed, self.offset, self.row_ids = seed, offset, row_ids
        self.shape, self.dtype, self.device = torch.Size(shape), dtype, torch.device(device)
        self.compiled = compiled  # drawn from the kernels' stream, or from the twins'

    def tensor(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The noise as a tensor (of ``dtype``, default the perturbed data's)."""
        like = torch.empty((), dtype=dtype or self.dtype, device=self.device).expand(self.shape)
        if self.compiled:
            return _library.LIB.randn(like, self.seed, self.offset, self.row_ids)
        return _twins.reference().randn_like(like, seed=self.seed, offset=self.offset, row_ids=self.row_ids)

    def __repr__(self) -> str:
        ids = "" if self.row_ids is None else ", row_ids=[...]"
        return (f"Noise(shape={list(self.shape)}, dtype={self.dtype}, device={self.device}, "
                f"seed={self.seed}, offset={self.offset}{ids})")


def perturb(x0, mean_coef, std, *, generator=None, row_ids=None):
    """Perturb data with Gaussian noise: ``(x_t, noise)`` with ``x_t = mean_coef·x0 + std·z``.

    ``mean_coef`` and ``std`` (≥ 0) are floats, 0-d tensors or ``[B]``
    tensors. ``noise`` is a :class:`Noise` handle, not a tensor: hand it to
    :func:`dsm_loss`, which regenerates ``z`` in its kernels, or call
    ``noise.tensor()``. ``row_ids`` pin each sample's noise to an id (see
    :func:`randn_like`). Differentiable in ``x0`` and tensor coefficients.
    """
    check_data(x0, "x0")
    row_ids = check_row_ids(row_ids, x0)
    a = coefficient(mean_coef, "mean_coef", x0)
    c = coefficient(std, "std", x0, nonnegative=True)
    seed, offset = stream(x0, generator)
    compiled = _backend.uses_compiled(x0.device)
    noise = Noise(seed, offset, row_ids, x0.shape, x0.dtype, x0.device, compiled)
    if not compiled:
        x_t, _ = _twins.reference().perturb(x0, mean_coef, std, noise=noise.tensor())
        return x_t, noise
    # The fused update with b = 0: x0 stands in for the unused score.
    x_t, _ = _library.LIB.noisy_update(x0, x0, *coefs(a, (None, 0.0), c), None, seed, offset, row_ids, False)
    return x_t, noise


_ROW_REDUCTIONS = ("sum", "mean")
_REDUCTIONS = ("mean", "sum", "none")


def _reduce_rows(per_row, weight, cols, row_reduction, reduction):
    """w/2 · Σ (or the mean over a row), then the reduction over rows."""
    if row_reduction == "mean":
        per_row = per_row / cols
    half_weight = 0.5 if weight is None else _row_weight(weight, per_row) * 0.5
    losses = per_row * half_weight
    if reduction == "mean":
        return losses.mean()
    return losses.sum() if reduction == "sum" else losses


def _row_weight(weight, per_row):
    if isinstance(weight, torch.Tensor):
        weight = weight.reshape(()) if weight.numel() == 1 else weight.reshape(-1)
        return weight.to(per_row.dtype)
    return float(weight)


def _check_weight(weight, score):
    if weight is None:
        return
    if isinstance(weight, bool) or not isinstance(weight, (numbers.Real, torch.Tensor)):
        raise TypeError(f"weight must be a float, a 0-d tensor or a [B] tensor, got {type(weight).__name__}")
    if not isinstance(weight, torch.Tensor):
        return
    n = rows(score)
    if not weight.dtype.is_floating_point:
        raise TypeError(f"weight must be a floating-point tensor, got {weight.dtype}")
    single = weight.numel() == 1
    if not (single or (weight.dim() >= 1 and weight.shape[0] == n and weight.numel() == n)):
        raise ValueError(f"weight must be a float, a 0-d tensor or a tensor of shape [{n}], "
                         f"got shape {list(weight.shape)}")
    if weight.device != score.device and not (single and weight.device.type == "cpu"):
        raise ValueError(f"weight must be on score's device {score.device}, got {weight.device}")


def _check_noise(noise, score):
    if isinstance(noise, Noise):
        if noise.shape != score.shape:
            raise ValueError(f"noise was drawn for shape {list(noise.shape)}, but score has shape "
                             f"{list(score.shape)}")
        if noise.device != score.device:
            raise ValueError(f"noise was drawn on {noise.device}, but score is on {score.device}")
        return
    if not isinstance(noise, torch.Tensor):
        raise TypeError(f"noise must be a scorekern.ops.Noise (from perturb) or a tensor, got {type(noise).__name__}")
    check_like(noise, score, "noise", "score")


def dsm_loss(score, noise, score_scale, noise_scale=1.0, *, weight=None, row_reduction="sum", reduction="mean"):
    """The denoising score matching loss (Vincent 2011), fused with its backward.

    Per row, ``weight/2 · ‖score_scale·score + noise_scale·z‖²`` (the sum over
    the row, or with ``row_reduction="mean"`` its mean), then ``reduction``
    over rows: ``"mean"``, ``"sum"`` or ``"none"`` (a ``[B]`` tensor).
    ``noise``: the :class:`Noise` handle from :func:`perturb`, whose ``z`` the
    forward and backward kernels regenerate (no noise tensor is kept), or a
    tensor ``z`` of the score's shape. ``score_scale``, ``noise_scale`` and
    ``weight``: floats, 0-d or ``[B]`` tensors. With ``score_scale=σ`` it is
    the σ²-weighted loss of NCSN and score SDE; with ``score_scale=1``,
    ``noise_scale=1/σ``, ``weight=g²`` the likelihood weighting.

    Differentiable in ``score`` (and a ``weight`` tensor, and a noise tensor).
    The result is float32 for float32 and 16-bit scores (float64 for
    float64), as under autocast; the score's gradient has the score's dtype.
    """
    check_data(score, "score")
    _check_noise(noise, score)
    p = coefficient(score_scale, "score_scale", score)
    q = coefficient(noise_scale, "noise_scale", score)
    if torch.is_grad_enabled() and any(v is not None and v.requires_grad for v, _ in (p, q)):
        raise RuntimeError("dsm_loss is differentiable in score, weight and a noise tensor, not in score_scale "
                           "or noise_scale; detach them")
    _check_weight(weight, score)
    if row_reduction not in _ROW_REDUCTIONS:
        raise ValueError(f"row_reduction must be 'sum' or 'mean', got {row_reduction!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not _backend.uses_compiled(score.device) or (isinstance(noise, Noise) and not noise.compiled):
        z = noise.tensor(score.dtype) if isinstance(noise, Noise) else noise
        if not _backend.uses_compiled(score.device):
            return _twins.reference().dsm_loss(score, z, score_scale, noise_scale, weight=weight, row_reduction=row_reduction,
                                 reduction=reduction)
        noise = z  # drawn by the twins' stream: the kernels read it as a tensor
    if isinstance(noise, Noise):
        source = (None, noise.seed, noise.offset, noise.row_ids)
    else:
        source = (noise, 0, 0, None)
    per_row = _library.LIB.dsm_loss(score, *coefs(p, q), *source)
    cols = score.numel() // max(rows(score), 1)
    return _reduce_rows(per_row, weight, cols, row_reduction, reduction)


# The meta kernel of the row sums is the C++ one (csrc/ops/dsm_loss.cpp).
# Autograd: ∂/∂s Σ(p·s + q·z)² = 2p(p·s + q·z), a noisy update of the score
# with a = 2gp², c = 2gpq and the same z (regenerated); for a noise tensor
# ∂/∂z = 2q(p·s + q·z), with a = 2gpq, c = 2gq². Nothing of the noise's size
# is saved: the backward kernel regenerates z.

_SCORE, _NOISE = 0, 4  # input positions


def _setup(ctx, inputs, output):
    score, values, slots, scales, noise, seed, offset, row_ids = inputs
    ctx.slots, ctx.scales, ctx.stream = list(slots), list(scales), (seed, offset)
    # The score is the model's own output, already alive; the noise is kept
    # only when the caller passed it as a tensor.
    ctx.save_for_backward(score, noise, row_ids, *values)


def _backward(ctx, grad):
    score, noise, row_ids, *values = ctx.saved_tensors
    g = 2.0 * grad.reshape(-1).contiguous()
    pq = list(ctx.scales)
    for v, slot in zip(values, ctx.slots):
        pq[slot] = v * ctx.scales[slot]
    p, q = pq
    needs = ctx.needs_input_grad

    def update(a, c):
        a, c = (a * g).contiguous(), (c * g).contiguous()
        new, _ = _library.LIB.noisy_update(score, score, [a, c], [0, 2], [1.0, 0.0, 1.0], noise, *ctx.stream,
                                           row_ids, False)
        return new

    grad_score = update(p * p, p * q) if needs[_SCORE] else None
    grad_noise = update(p * q, q * q) if needs[_NOISE] else None
    return grad_score, None, None, None, grad_noise, None, None, None


register_autograd("dsm_loss", _backward, _setup)


# The twins.


def twin_perturb(x0, mean_coef, std, *, generator=None, row_ids=None, noise=None):
    # Returns the noise itself; scorekern.ops.perturb returns a handle to it.
    if noise is None:
        noise = _twins.normal(x0, generator, row_ids)
    x_t = _twins.per_row(mean_coef, x0) * x0 + _twins.per_row(std, x0) * noise
    return x_t, noise


def twin_dsm_loss(score, noise, score_scale, noise_scale=1.0, *, weight=None, row_reduction="sum",
                  reduction="mean"):
    # The DSM loss as score_sde and NCSN write it, computed in float32 (float64
    # for float64 scores): w/2 · ‖p·s + q·z‖² per row.
    dtype = opmath(score)
    s, z = score.to(dtype), noise.to(dtype)
    p, q = (v.to(dtype) if isinstance(v, torch.Tensor) else v for v in (score_scale, noise_scale))
    # As a user writes it: no multiplication by a scale of one.
    ps = s if isinstance(p, float) and p == 1.0 else _twins.per_row(p, s) * s
    residual = ps + (z if isinstance(q, float) and q == 1.0 else _twins.per_row(q, s) * z)
    per_row = _twins.row_matrix(residual.square())
    per_row = per_row.mean(1) if row_reduction == "mean" else per_row.sum(1)
    if isinstance(weight, torch.Tensor):
        per_row = per_row * (weight.reshape(()) if weight.numel() == 1 else weight.reshape(-1)).to(dtype)
    elif weight is not None:
        per_row = per_row * weight
    losses = per_row / 2
    if reduction == "mean":
        return losses.mean()
    return losses.sum() if reduction == "sum" else losses


TWINS = {"perturb": twin_perturb, "dsm_loss": twin_dsm_loss}
