"""mixture_score and mixture_log_prob: the score and log-density of an
isotropic Gaussian mixture (a kernel density estimate, the ideal denoiser, a
GMM; DESIGN §1, last paragraph), tiled over the centres with an online
softmax. Kernels: csrc/ops/mixture_score.cpp, csrc/cpu/mixture_score*.cpp,
csrc/cuda/mixture_score*.cu; arithmetic: csrc/scorekern/mixture_score.h."""

from __future__ import annotations

import math

import torch

from .. import _backend
from . import _twins
from ._checks import check_data, coefficient, coefs
from ._checks import opmath as opmath_of
from . import _library
from ._library import register_autograd

__all__ = ["mixture_score", "mixture_log_prob"]


def _check_mixture(x, centers, bandwidth, log_weights):
    """Checks the arguments; returns (x as [M, d], bandwidth as (values, scale))."""
    check_data(x, "x")
    if not isinstance(centers, torch.Tensor):
        raise TypeError(f"centers must be a tensor, got {type(centers).__name__}")
    if centers.dim() != 2 or centers.shape[1] != x.shape[-1]:
        raise ValueError(f"centers must have shape [N, {x.shape[-1]}] (x's last dimension), got {list(centers.shape)}")
    if centers.shape[0] == 0:
        raise ValueError("centers must hold at least one centre")
    if centers.dtype != x.dtype:
        raise TypeError(f"centers must have x's dtype {x.dtype}, got {centers.dtype}")
    if centers.device != x.device:
        raise ValueError(f"centers must be on x's device {x.device}, got {centers.device}")
    if log_weights is not None:
        if not isinstance(log_weights, torch.Tensor) or not log_weights.dtype.is_floating_point:
            raise TypeError("log_weights must be a floating-point tensor of shape [N]")
        if log_weights.shape != (centers.shape[0],):
            raise ValueError(f"log_weights must have shape [{centers.shape[0]}] (one per centre), "
                             f"got {list(log_weights.shape)}")
        if log_weights.device != x.device:
            raise ValueError(f"log_weights must be on x's device {x.device}, got {log_weights.device}")
    for name, t in (("centers", centers), ("bandwidth", bandwidth), ("log_weights", log_weights)):
        if isinstance(t, torch.Tensor) and t.requires_grad and torch.is_grad_enabled():
            raise RuntimeError(f"scorekern.mixture_score is differentiable with respect to x only; "
                               f"detach {name} (or compute its gradient with scorekern.reference)")
    flat = x.reshape(-1, x.shape[-1])
    if isinstance(bandwidth, torch.Tensor) and bandwidth.numel() > 1:
        if bandwidth.shape != x.shape[:-1] and bandwidth.shape != (flat.shape[0],):
            raise ValueError(f"bandwidth must be a float, a 0-d tensor or one value per query "
                             f"(shape {list(x.shape[:-1])}), got shape {list(bandwidth.shape)}")
        bandwidth = bandwidth.reshape(-1)
    values, scale = coefficient(bandwidth, "bandwidth", flat)
    if values is None and not scale > 0:
        raise ValueError(f"bandwidth must be positive, got {scale}")
    if values is not None and values.device.type == "cpu" and not bool((values > 0).all()):
        raise ValueError("bandwidth must be positive, got a non-positive entry")
    return flat, values, scale


def _mixture_bandwidth(values, scale):
    return scale if values is None else values * scale


def mixture_score(x, centers, bandwidth, *, log_weights=None):
    """The score of an isotropic Gaussian mixture, ``∇ₓ log Σⱼ wⱼ N(x; μⱼ, h²I)``.

    ``Σⱼ softmaxⱼ(ℓⱼ − ‖x − μⱼ‖²/2h²)(μⱼ − x)/h²`` for queries ``x``
    ``[..., d]`` and ``centers`` ``[N, d]``: the score of a Gaussian kernel
    density estimate with bandwidth ``h``, of a training set convolved with
    N(0, h²I) (the ideal denoiser), or of a mixture with log-weights ``ℓ``
    (unnormalised; equal weights when None). ``bandwidth`` is a float, a 0-d
    tensor or one value per query. Tiled over the centres with an online
    softmax: memory O((M + N)·d) whatever M·N, finite however far ``x`` is.
    Differentiable with respect to ``x`` (the Jacobian is
    ``(Cov_w(μ)/h² − I)/h²``), not with respect to the centres, bandwidth or
    weights. Returns x's shape and dtype.

    On CUDA (sm_80+), for 16 ≤ d ≤ 128, the forward uses TF32 tensor cores
    where torch lets float32 matmuls use them
    (``torch.set_float32_matmul_precision("high")``) and always for 16-bit
    data; logits are then off by up to about ``2⁻¹⁰·Σₖ|xₖμₖ|/h²``. By
    torch's default ("highest") it is exact float32.
    """
    flat, values, scale = _check_mixture(x, centers, bandwidth, log_weights)
    if not _backend.uses_compiled(x.device):
        lw = None if log_weights is None else log_weights.to(x.dtype)
        return _twins.reference().mixture_score(flat, centers, _mixture_bandwidth(values, scale),
                                  log_weights=lw).reshape(x.shape)
    score, _ = _library.LIB.mixture_score(flat, centers, *coefs((values, scale)), log_weights, True)
    return score.reshape(x.shape)


def mixture_log_prob(x, centers, bandwidth, *, log_weights=None):
    """``log Σⱼ wⱼ N(x; μⱼ, h²I)`` per query, normalising constant included.

    The weights are ``softmax(log_weights)`` (equal when None); arguments as
    :func:`mixture_score`. Returns ``x.shape[:-1]`` in float32 (float64 for
    float64 data); differentiable with respect to ``x`` (its gradient is the
    score).
    """
    flat, values, scale = _check_mixture(x, centers, bandwidth, log_weights)
    h = _mixture_bandwidth(values, scale)
    if not _backend.uses_compiled(x.device):
        lw = None if log_weights is None else log_weights.to(x.dtype)
        out = _twins.reference().mixture_log_prob(flat, centers, h, log_weights=lw)
        return out.reshape(x.shape[:-1])
    with_score = torch.is_grad_enabled() and x.requires_grad
    _, lse = _library.LIB.mixture_score(flat, centers, *coefs((values, scale)), log_weights, with_score)
    opmath = opmath_of(x)
    if log_weights is None:
        norm = math.log(centers.shape[0])
    else:
        norm = torch.logsumexp(log_weights.to(opmath), 0)
    log_h2 = torch.log(h.to(opmath)) * 2 if torch.is_tensor(h) else 2 * math.log(h)
    out = lse - norm - 0.5 * flat.shape[1] * (math.log(2 * math.pi) + log_h2)
    return out.reshape(x.shape[:-1])


# Its meta kernels are the C++ ones. Autograd: x's gradient is the score's
# Jacobian applied to grad_score (a second pass over the centres with the
# saved lse, mixture_score_backward), plus grad_lse · score (the gradient of
# the log-sum-exp is the score).


def _setup(ctx, inputs, output):
    x, centers, values, slots, scales, log_weights, with_score = inputs
    score, lse = output
    ctx.set_materialize_grads(False)  # an unused output's gradient stays None: no pass for it
    ctx.bandwidth = (list(slots), list(scales))
    ctx.with_score = with_score
    ctx.save_for_backward(x, centers, log_weights, score, lse, *values)


def _backward(ctx, grad_score, grad_lse):
    x, centers, log_weights, score, lse, *values = ctx.saved_tensors
    if not ctx.with_score:
        raise RuntimeError("scorekern: mixture_score was called with with_score=False; its backward needs the score")
    grad = None
    if grad_score is not None:
        slots, scales = ctx.bandwidth
        grad = _library.LIB.mixture_score_backward(grad_score.contiguous(), x, centers, list(values), slots, scales,
                                          log_weights, score, lse)
    if grad_lse is not None:
        term = grad_lse.unsqueeze(1).to(score.dtype) * score
        grad = term if grad is None else grad + term
    return grad, None, None, None, None, None, None


register_autograd("mixture_score", _backward, _setup)


# The twins.


def _mixture_logits(x, centers, bandwidth, log_weights):
    """The [M, N] logits ℓ_j − ‖x − μ_j‖²/2h² and h² as [M, 1] (or a float)."""
    h2 = bandwidth.reshape(-1, 1).square() if torch.is_tensor(bandwidth) else bandwidth**2
    sq = torch.cdist(x, centers, compute_mode="donot_use_mm_for_euclid_dist").square()
    logits = -sq / (2 * h2)
    if log_weights is not None:
        logits = logits + log_weights
    return logits, h2


def twin_mixture_score(x, centers, bandwidth, *, log_weights=None):
    """∇ log of an isotropic Gaussian mixture at x [..., d]: cdist, softmax, matmul ([M, N] in memory)."""
    flat = x.reshape(-1, x.shape[-1])
    logits, h2 = _mixture_logits(flat, centers, bandwidth, log_weights)
    return ((torch.softmax(logits, dim=1) @ centers - flat) / h2).reshape(x.shape)


def twin_mixture_log_prob(x, centers, bandwidth, *, log_weights=None):
    """log Σ_j w_j N(x; μ_j, h²I) at x [..., d] with w = softmax(log_weights) (equal weights when None)."""
    flat = x.reshape(-1, x.shape[-1])
    logits, h2 = _mixture_logits(flat, centers, bandwidth, log_weights)
    norm = math.log(centers.shape[0]) if log_weights is None else torch.logsumexp(log_weights, 0)
    log_h2 = torch.log(h2).reshape(-1) if torch.is_tensor(h2) else math.log(h2)
    out = torch.logsumexp(logits, dim=1) - norm - 0.5 * flat.shape[1] * (math.log(2 * math.pi) + log_h2)
    return out.reshape(x.shape[:-1])


TWINS = {"mixture_score": twin_mixture_score, "mixture_log_prob": twin_mixture_log_prob}
