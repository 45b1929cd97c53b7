"""Score functions with closed forms, on the fused mixture kernel.

Each returns a callable that plugs into :mod:`scorekern.samplers`:

- :func:`kde`: the score of a Gaussian kernel density estimate,
  ``score_fn(x)`` (for :func:`scorekern.samplers.langevin`).
- :func:`gmm`: the score of an isotropic Gaussian mixture convolved with
  N(0, σ²I), ``score_fn(x, sigma)`` (for annealed Langevin), or, given an
  ``sde``, of its marginal at time t, ``score_fn(x, t)`` (for the SDE
  samplers).
- :func:`ideal_denoiser`: the exact score of a finite training set convolved
  with N(0, σ²I) (``score_fn(x, sigma)``) or diffused by an SDE to time t
  (``score_fn(x, t)``): what a perfectly trained model would learn, which
  reproduces the training set.

``x`` is ``[B, ...]``: a sample is a row flattened, as everywhere in
scorekern. ``sigma`` and ``t`` are floats or ``[B]`` tensors.

Under an SDE with x_t = α(t)·x₀ + σ(t)·z, a component N(μ, s²I) becomes
N(αμ, (α²s² + σ²)I), whose score at x is (1/α)·score of N(μ, (s² + σ²/α²)I)
at x/α: the centres stay as given and only the queries and bandwidths move.
"""

from __future__ import annotations

import math

import torch

from . import ops
from .sde import SDE

__all__ = ["kde", "gmm", "ideal_denoiser"]


def _flat(x, centers):
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        raise TypeError("x must be a [B, ...] tensor")
    flat = x.reshape(x.shape[0], -1) if x.dim() > 1 else x.reshape(1, -1)
    if flat.shape[1] != centers.shape[1]:
        raise ValueError(f"x's samples have {flat.shape[1]} entries, the centres {centers.shape[1]}")
    return flat


def _per_row(v, x):
    """A float, 0-d or [B] tensor as a float or a [B] tensor on x's device, in x's arithmetic dtype."""
    if isinstance(v, torch.Tensor):
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        v = v.to(device=x.device, dtype=dtype)
        return v.reshape(-1) if v.numel() > 1 else v.reshape(())
    return float(v)


def _centers(data, name):
    if not isinstance(data, torch.Tensor) or data.dim() < 1:
        raise TypeError(f"{name} must be an [N, ...] tensor")
    return data.reshape(data.shape[0], -1) if data.dim() > 1 else data.reshape(-1, 1)


def _mixture_fn(centers, log_weights, base_var, sde):
    """score_fn(x, level): level is σ (no sde) or t; base_var the components' own variance."""

    def score_fn(x, level=0.0):
        flat = _flat(x, centers)
        if sde is None:
            alpha, sigma = 1.0, _per_row(level, flat)
        else:
            t = level if isinstance(level, torch.Tensor) else torch.tensor(float(level))
            t = t.to(device=flat.device, dtype=torch.float64 if flat.dtype == torch.float64 else torch.float32)
            t = t.expand(flat.shape[0]) if t.numel() == 1 else t.reshape(-1)
            alpha, sigma = sde.mean_coef(t), sde.std(t)
        if isinstance(sigma, torch.Tensor) or isinstance(alpha, torch.Tensor):
            h = torch.sqrt(base_var + (torch.as_tensor(sigma) / alpha) ** 2)
            h = h.to(device=flat.device)
        else:
            h = math.sqrt(base_var + (sigma / alpha) ** 2)
        if isinstance(h, float) and h <= 0:
            raise ValueError("the bandwidth is zero: give a positive sigma (or std) or a time t > 0")
        if isinstance(alpha, torch.Tensor):
            a = alpha.to(flat.dtype).reshape(-1, 1)
            score = ops.mixture_score(flat / a, centers.to(flat.dtype), h, log_weights=log_weights) / a
        else:
            score = ops.mixture_score(flat, centers.to(flat.dtype), h, log_weights=log_weights)
        return score.reshape(x.shape)

    return score_fn


def kde(data, bandwidth: float):
    """The score of the Gaussian kernel density estimate of ``data`` [N, ...]
    with bandwidth h: ``score_fn(x)`` = ∇ log (1/N) Σⱼ N(x; dataⱼ, h²I)."""
    centers = _centers(data, "data")
    bandwidth = float(bandwidth)
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")

    def score_fn(x):
        flat = _flat(x, centers)
        return ops.mixture_score(flat, centers.to(flat.dtype), bandwidth).reshape(x.shape)

    return score_fn


def gmm(means, weights=None, std: float = 1.0, *, sde: SDE | None = None):
    """The score of Σⱼ wⱼ N(meansⱼ, std²I) convolved with N(0, σ²I): the
    bandwidth is √(std² + σ²). ``weights`` [N] are normalised (equal when
    None). Without ``sde``: ``score_fn(x, sigma=0)``; with it: ``score_fn(x,
    t)``, the score of the mixture diffused by the SDE to time t."""
    centers = _centers(means, "means")
    log_weights = None
    if weights is not None:
        weights = torch.as_tensor(weights, device=centers.device).double()  # normalised in float64
        if weights.shape != (centers.shape[0],) or bool((weights < 0).any()) or not bool(weights.sum() > 0):
            raise ValueError(f"weights must be {centers.shape[0]} non-negative numbers, not all zero")
        log_weights = torch.log(weights / weights.sum())
    std = float(std)
    if std < 0:
        raise ValueError(f"std must be non-negative, got {std}")
    return _mixture_fn(centers, log_weights, std * std, sde)


def ideal_denoiser(data, *, sde: SDE | None = None):
    """The exact score of the empirical distribution of ``data`` [N, ...]
    convolved with N(0, σ²I) (``score_fn(x, sigma)``), or diffused by ``sde``
    to time t (``score_fn(x, t)``). Its denoiser x + σ²·score is the
    posterior mean of the training points: sampling with it reproduces them."""
    return _mixture_fn(_centers(data, "data"), None, 0.0, sde)
