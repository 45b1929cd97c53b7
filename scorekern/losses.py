"""Training losses of score-based models, on the fused DSM loss and sliced terms.

Each loss draws its noise from scorekern's random stream (``generator``, or
the default one), perturbs the data with :func:`scorekern.ops.perturb` and
scores it with :func:`scorekern.ops.dsm_loss`, whose kernels regenerate the
noise instead of keeping it. ``model`` is the user's network; each loss says
how it is called.

- :func:`dsm`: continuous-time DSM of score SDE (Song et al. 2021), VE, VP
  and sub-VP, with or without likelihood weighting.
- :func:`ncsn`: NCSN's annealed DSM, one random noise level per sample (Song
  & Ermon 2019, 2020).
- :func:`ddpm`: DDPM's noise-prediction loss (Ho et al. 2020).
- :func:`sliced_score_matching`: sliced score matching (Song et al. 2019).
- :func:`implicit_score_matching`: exact score matching (Hyvärinen 2005), for
  small dimensions.
- :func:`explicit_score_matching`: regression on the score of a kernel
  density estimate (Vincent 2011), on the fused mixture kernel.

Each returns the batch mean of its per-sample losses, as the published code
does; the values match it for the same noise.
"""

from __future__ import annotations

import torch

from . import estimators, ops
from .ops._checks import opmath
from .sde import SDE

__all__ = [
    "dsm",
    "ncsn",
    "ddpm",
    "sliced_score_matching",
    "implicit_score_matching",
    "explicit_score_matching",
]


def _check_batch(x0):
    if not isinstance(x0, torch.Tensor) or not x0.dtype.is_floating_point or x0.dim() < 1:
        raise TypeError("x0 must be a floating-point tensor [B, ...]")
    if x0.dim() == 1:
        raise ValueError("x0 must have a batch dimension: [B, ...], got a 1-D tensor")


def _rand(n, x0, generator):
    return torch.rand(n, device=x0.device, generator=generator)


def dsm(model, x0, sde: SDE, *, eps=1e-5, likelihood_weighting=False, reduce_mean=False, generator=None,
        row_ids=None):
    """Continuous-time DSM (score_sde's ``get_sde_loss_fn``), ``model(x_t, t) → score``.

    ``t ~ U(eps, T)`` per sample; ``x_t = μ(t)·x0 + σ(t)·z``; per sample
    ``‖σ·s + z‖²`` (or with ``likelihood_weighting`` ``g(t)²·‖s + z/σ‖²``),
    halved and summed over the sample, or with ``reduce_mean`` averaged (not
    halved), as the reference does; then the batch mean. A noise-prediction
    network is turned into a score by :func:`scorekern.sde.score_from_noise_prediction`.
    """
    _check_batch(x0)
    if not 0 < eps < sde.T:
        raise ValueError(f"eps must lie in (0, {sde.T}), got {eps}")
    t = _rand(x0.shape[0], x0, generator) * (sde.T - eps) + eps
    std = sde.std(t)
    x_t, noise = ops.perturb(x0, sde.mean_coef(t), std, generator=generator, row_ids=row_ids)
    score = model(x_t, t)
    # The reference halves a summed loss and does not halve a mean.
    row_reduction, weight = ("mean", 2.0) if reduce_mean else ("sum", 1.0)
    if not likelihood_weighting:
        return ops.dsm_loss(score, noise, std, 1.0, weight=weight, row_reduction=row_reduction)
    g2 = sde.diffusion(t) ** 2
    return ops.dsm_loss(score, noise, 1.0, 1.0 / std, weight=weight * g2, row_reduction=row_reduction)


def ncsn(model, x0, sigmas, *, labels=None, anneal_power=2.0, generator=None, row_ids=None):
    """NCSN's annealed DSM (``anneal_dsm_score_estimation``), ``model(x_t, σ) → score``.

    A noise level ``σ = sigmas[label]`` per sample (``labels`` drawn uniformly
    unless given); ``x_t = x0 + σz``; per sample ``½‖s + z/σ‖²·σ^anneal_power``;
    the batch mean. The model gets the per-sample σ (``[B]``), as
    :func:`scorekern.samplers.annealed_langevin` calls it; a network that
    takes the level's index can look it up in ``sigmas``.
    """
    _check_batch(x0)
    sigmas = torch.as_tensor(sigmas, device=x0.device)
    if sigmas.dim() != 1 or sigmas.numel() == 0:
        raise ValueError("sigmas must be a non-empty 1-D tensor of noise levels")
    if labels is None:
        labels = torch.randint(0, sigmas.numel(), (x0.shape[0],), device=x0.device, generator=generator)
    sigma = sigmas[labels].to(opmath(x0))
    x_t, noise = ops.perturb(x0, 1.0, sigma, generator=generator, row_ids=row_ids)
    score = model(x_t, sigma)
    return ops.dsm_loss(score, noise, 1.0, 1.0 / sigma, weight=sigma**anneal_power)


def ddpm(model, x0, betas, *, generator=None, row_ids=None):
    """DDPM's simple loss, ``model(x_t, t) → ε̂`` with integer steps ``t``.

    ``t`` uniform in ``[0, T)``; ``x_t = √ᾱₜ·x0 + √(1 − ᾱₜ)·z``; per sample
    the mean of ``(z − ε̂)²`` over the sample; the batch mean.
    """
    _check_batch(x0)
    betas = torch.as_tensor(betas, dtype=torch.float64)
    if betas.dim() != 1 or betas.numel() == 0:
        raise ValueError("betas must be a non-empty 1-D tensor with entries in (0, 1)")
    if betas.device.type == "cpu" and bool(((betas <= 0) | (betas >= 1)).any()):  # no device sync
        raise ValueError("betas must be a non-empty 1-D tensor with entries in (0, 1)")
    alphas_bar = torch.cumprod(1.0 - betas.to(x0.device), 0)
    t = torch.randint(0, betas.numel(), (x0.shape[0],), device=x0.device, generator=generator)
    a = alphas_bar[t].to(opmath(x0))
    x_t, noise = ops.perturb(x0, a.sqrt(), (1.0 - a).sqrt(), generator=generator, row_ids=row_ids)
    eps = model(x_t, t)
    return ops.dsm_loss(eps, noise, 1.0, -1.0, weight=2.0, row_reduction="mean")


def sliced_score_matching(model, x, n_projections=1, kind="rademacher", variance_reduction=False, *,
                          generator=None):
    """Sliced score matching (Song et al. 2019), ``model(x) → score``.

    Per sample and projection ``v``: ``vᵀ(∂s/∂x)v + ½(vᵀs)²`` (or ``+ ½‖s‖²``
    with ``variance_reduction``), from one extra autograd pass
    (``create_graph=True``), averaged over ``n_projections`` and the batch.

    The projections are scaled so that ``E[vvᵀ] = I`` (``kind``:
    ``"rademacher"``, ``"gaussian"``, or ``"sphere"``, uniform on the sphere
    of radius √d), which makes the loss an unbiased estimate of the implicit
    score matching loss ``tr(∂s/∂x) + ½‖s‖²`` (:func:`implicit_score_matching`)
    up to a constant. The published plain variant normalises Gaussian
    projections to unit norm instead, which gives that loss divided by the
    dimension d (its minimiser is the same); multiply by d to compare.
    """
    _check_batch(x)
    if not isinstance(n_projections, int) or n_projections < 1:
        raise ValueError(f"n_projections must be a positive int, got {n_projections!r}")
    batch = x.shape[0]
    x_rep = x.detach().repeat(n_projections, *([1] * (x.dim() - 1))).requires_grad_(True)
    v = estimators.probes_like(x_rep, kind, generator=generator)
    with torch.enable_grad():
        score = model(x_rep)
        if not isinstance(score, torch.Tensor) or score.shape != x_rep.shape:
            raise ValueError(f"model(x) must return a tensor of x's shape {list(x_rep.shape)}")
        (vjp,) = torch.autograd.grad(score, x_rep, v.to(score.dtype), create_graph=True)
    terms = ops.sliced_score_terms(score, vjp, v.to(score.dtype), variance_reduction=variance_reduction)
    return terms.reshape(n_projections, batch).mean(0).mean()


def implicit_score_matching(model, x):
    """Exact implicit score matching (Hyvärinen 2005), ``model(x) → score``:
    the batch mean of ``tr(∂s/∂x) + ½‖s‖²``, one backward pass per dimension."""
    _check_batch(x)
    score, trace = estimators.exact_trace(model, x.detach(), create_graph=True, return_output=True)
    return (trace + 0.5 * score.reshape(x.shape[0], -1).pow(2).sum(1)).mean()


def explicit_score_matching(model, x, data, bandwidth):
    """Explicit score matching against a Gaussian kernel density estimate
    (Vincent 2011): the batch mean of ``½‖model(x) − ∇log q_h(x)‖²``, with
    q_h the KDE of ``data`` [N, ...] with bandwidth h, computed by the fused
    mixture kernel without an [B, N] matrix. ``x`` [B, ...] are the points
    to fit at (typically data perturbed by N(0, h²I)); ``model(x)`` returns
    x's shape. Its minimiser is the KDE's score; the loss differs from DSM's
    at the same h by a constant (Vincent 2011)."""
    _check_batch(x)
    flat_data = data.reshape(data.shape[0], -1) if data.dim() > 1 else data.reshape(-1, 1)
    with torch.no_grad():
        target = ops.mixture_score(x.reshape(x.shape[0], -1), flat_data.to(x.dtype), bandwidth)
    score = model(x)
    if score.shape != x.shape:
        raise ValueError(f"model(x) must have x's shape {list(x.shape)}, got {list(score.shape)}")
    # ½‖s − target‖² per row: the fused DSM loss with the target as its noise tensor.
    return ops.dsm_loss(score, target.reshape(x.shape), 1.0, -1.0)
