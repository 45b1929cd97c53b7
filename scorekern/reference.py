"""Pure-PyTorch twins of every scorekern op, with the same signatures.

Each function here is written as the idiomatic PyTorch a user would write:
noise from ``torch.randn`` / ``torch.randint``, per-row coefficients
broadcast over a row. The compiled kernels are tested against these on the
same explicit noise, and they run when no compiled kernel is available (or
under ``scorekern.use_backend("torch")``). They do not check their arguments:
:mod:`scorekern.ops` does that before calling either path.

The twins draw different noise from the kernels (they do not implement the
Philox stream of DESIGN §2, except :func:`philox4x32`, which computes the raw
block function in integer tensor arithmetic).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "philox4x32",
    "randn_like",
    "rademacher_like",
    "noisy_update",
    "noisy_update_",
    "langevin_step",
    "snr_langevin_step",
    "perturb",
    "dsm_loss",
    "sliced_score_terms",
    "mixture_score",
    "mixture_log_prob",
]

_MASK32 = 0xFFFFFFFF
_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)


def _mulhilo(m: int, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # The 64-bit product m·c split through 16-bit halves of c, so that no
    # intermediate leaves int64.
    t = m * (c & 0xFFFF)
    u = m * (c >> 16)
    mid = (t >> 16) + u
    return mid >> 16, ((mid & 0xFFFF) << 16) | (t & 0xFFFF)


def philox4x32(counter: torch.Tensor, seed: int) -> torch.Tensor:
    """Philox4x32-10 of ``counter`` (int64 ``[..., 4]`` of 32-bit words) under the 64-bit key ``seed``."""
    c0, c1, c2, c3 = (counter[..., i].to(torch.int64) for i in range(4))
    seed &= (1 << 64) - 1
    k0, k1 = seed & _MASK32, seed >> 32
    for _ in range(10):
        hi0, lo0 = _mulhilo(_PHILOX_M[0], c0)
        hi1, lo1 = _mulhilo(_PHILOX_M[1], c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + _PHILOX_W[0]) & _MASK32, (k1 + _PHILOX_W[1]) & _MASK32
    return torch.stack([c0, c1, c2, c3], dim=-1)


def _rows(x: torch.Tensor) -> int:
    return 1 if x.dim() == 1 else x.shape[0]


def _generators(x, generator, seed, offset, row_ids):
    """One generator for the whole tensor, or one per row when ids are given.

    The twin keeps the meaning of the stream's arguments without its values:
    an explicit (seed, offset) always gives the same noise, and with row ids a
    row's noise depends only on its id.
    """
    if seed is None and row_ids is None:
        return generator
    if seed is None:
        device = generator.device if generator is not None else "cpu"
        base = int(torch.randint(0, 2**62, (), generator=generator, device=device))
    else:
        base = hash((int(seed), int(offset or 0))) & (2**62 - 1)
    if row_ids is None:
        return torch.Generator(device=x.device).manual_seed(base)
    return [
        torch.Generator(device=x.device).manual_seed(hash((base, int(i))) & (2**62 - 1))
        for i in row_ids.tolist()
    ]


def _draw(x, generator, seed, offset, row_ids, draw_one):
    gens = _generators(x, generator, seed, offset, row_ids)
    if not isinstance(gens, list):
        return draw_one(x.shape, gens)
    return torch.stack([draw_one(x.shape[1:], g) for g in gens]) if x.dim() > 1 else draw_one(x.shape, gens[0])


def randn_like(x, *, generator=None, seed=None, offset=None, row_ids=None):
    return _draw(
        x, generator, seed, offset, row_ids,
        lambda shape, g: torch.randn(shape, generator=g, dtype=x.dtype, device=x.device),
    )


def rademacher_like(x, *, generator=None, seed=None, offset=None, row_ids=None):
    def draw_one(shape, g):
        bits = torch.randint(0, 2, shape, generator=g, device=x.device)
        return (2 * bits - 1).to(x.dtype)

    return _draw(x, generator, seed, offset, row_ids, draw_one)


def _per_row(v, x):
    """A float, a 0-d tensor or a [B] (or [B, 1, ..., 1]) tensor, broadcast against x row by row."""
    if isinstance(v, torch.Tensor) and v.dim() >= 1:
        return v.reshape(-1, *([1] * (x.dim() - 1)))
    return v


def _result(new, mean, out, return_mean):
    if out is not None:
        out.copy_(new)
        new = out
    return (new, mean) if return_mean else new


def noisy_update(x, score, a, b, c, *, noise=None, generator=None, row_ids=None, out=None, return_mean=False):
    if noise is None:
        noise = randn_like(x, generator=generator, row_ids=row_ids)
    a, b, c = (_per_row(v, x) for v in (a, b, c))
    mean = a * x + b * score
    new = mean + c * noise
    return _result(new, mean, out, return_mean)


def noisy_update_(x, score, a, b, c, *, noise=None, generator=None, row_ids=None, return_mean=False):
    return noisy_update(x, score, a, b, c, noise=noise, generator=generator, row_ids=row_ids, out=x,
                        return_mean=return_mean)


def langevin_step(x, score, step_size, *, noise=None, generator=None, row_ids=None, out=None, return_mean=False):
    # Unadjusted Langevin algorithm: x + τ·s + √(2τ)·z.
    if noise is None:
        noise = randn_like(x, generator=generator, row_ids=row_ids)
    tau = _per_row(step_size, x)
    mean = x + tau * score
    scale = math.sqrt(2 * tau) if not isinstance(tau, torch.Tensor) else (2 * tau).sqrt()
    new = mean + scale * noise
    return _result(new, mean, out, return_mean)


def snr_langevin_step(x, score, snr, *, alpha=1.0, norms="batch", noise=None, generator=None,
                      row_ids=None, out=None, return_mean=False):
    # The Langevin corrector of score_sde (Song et al. 2021): the step is set
    # by a target signal-to-noise ratio between the score and the noise.
    if noise is None:
        noise = randn_like(x, generator=generator, row_ids=row_ids)
    rows = _rows(x)
    grad_norm = torch.norm(score.reshape(rows, -1), dim=-1)
    noise_norm = torch.norm(noise.reshape(rows, -1), dim=-1)
    if norms == "batch":
        grad_norm = grad_norm.mean()
        noise_norm = noise_norm.mean()
    if isinstance(alpha, torch.Tensor) and alpha.dim() > 0:
        alpha = alpha.reshape(-1)
    step_size = _per_row((snr * noise_norm / grad_norm) ** 2 * 2 * alpha, x)
    mean = x + step_size * score
    new = mean + torch.sqrt(step_size * 2) * noise
    return _result(new, mean, out, return_mean)


def masked_update(x, score, y, mask, a, b, c, mu, sigma, *, noise=None, observed_noise=None, generator=None,
                  row_ids=None, out=None, return_mean=False):
    # Inpainting (score_sde's inpaint_update_fn, RePaint): the observed part
    # takes the data noised to the step's time, the rest the update.
    if noise is None:
        noise = randn_like(x, generator=generator, row_ids=row_ids)
    if observed_noise is None:
        observed_noise = randn_like(x, generator=generator, row_ids=row_ids)
    a, b, c, mu, sigma = (_per_row(v, x) for v in (a, b, c, mu, sigma))
    kept = a * x + b * score
    data = mu * y
    mean = mask * data + (1 - mask) * kept
    new = mask * (data + sigma * observed_noise) + (1 - mask) * (kept + c * noise)
    return _result(new, mean, out, return_mean)


def _opmath(x):
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def perturb(x0, mean_coef, std, *, generator=None, row_ids=None, noise=None):
    # Returns the noise itself; scorekern.ops.perturb returns a handle to it.
    if noise is None:
        noise = randn_like(x0, generator=generator, row_ids=row_ids)
    x_t = _per_row(mean_coef, x0) * x0 + _per_row(std, x0) * noise
    return x_t, noise


def dsm_loss(score, noise, score_scale, noise_scale=1.0, *, weight=None, row_reduction="sum", reduction="mean"):
    # The DSM loss as score_sde and NCSN write it, computed in float32 (float64
    # for float64 scores): w/2 · ‖p·s + q·z‖² per row.
    dtype = _opmath(score)
    s, z = score.to(dtype), noise.to(dtype)
    p, q = (v.to(dtype) if isinstance(v, torch.Tensor) else v for v in (score_scale, noise_scale))
    # As a user writes it: no multiplication by a scale of one.
    ps = s if isinstance(p, float) and p == 1.0 else _per_row(p, s) * s
    residual = ps + (z if isinstance(q, float) and q == 1.0 else _per_row(q, s) * z)
    per_row = residual.square().reshape(_rows(score), -1)
    per_row = per_row.mean(1) if row_reduction == "mean" else per_row.sum(1)
    if isinstance(weight, torch.Tensor):
        per_row = per_row * (weight.reshape(()) if weight.numel() == 1 else weight.reshape(-1)).to(dtype)
    elif weight is not None:
        per_row = per_row * weight
    losses = per_row / 2
    if reduction == "mean":
        return losses.mean()
    return losses.sum() if reduction == "sum" else losses


def sliced_score_terms(score, vjp, v, *, variance_reduction=False):
    # Song et al. 2019: vᵀ(∂s/∂x)v + ½(vᵀs)², or + ½‖s‖² with variance reduction.
    rows = _rows(score)
    s, u, v = (t.to(_opmath(score)).reshape(rows, -1) for t in (score, vjp, v))
    first = (v * u).sum(1)
    if variance_reduction:
        return first + 0.5 * (s * s).sum(1)
    return first + 0.5 * (v * s).sum(1) ** 2


def _mixture_logits(x, centers, bandwidth, log_weights):
    """The [M, N] logits ℓ_j − ‖x − μ_j‖²/2h² and h² as [M, 1] (or a float)."""
    h2 = bandwidth.reshape(-1, 1).square() if torch.is_tensor(bandwidth) else bandwidth**2
    sq = torch.cdist(x, centers, compute_mode="donot_use_mm_for_euclid_dist").square()
    logits = -sq / (2 * h2)
    if log_weights is not None:
        logits = logits + log_weights
    return logits, h2


def mixture_score(x, centers, bandwidth, *, log_weights=None):
    """∇ log of an isotropic Gaussian mixture at x [M, d]: cdist, softmax, matmul ([M, N] in memory)."""
    logits, h2 = _mixture_logits(x, centers, bandwidth, log_weights)
    return (torch.softmax(logits, dim=1) @ centers - x) / h2


def mixture_log_prob(x, centers, bandwidth, *, log_weights=None):
    """log Σ_j w_j N(x; μ_j, h²I) with w = softmax(log_weights) (equal weights when None)."""
    logits, h2 = _mixture_logits(x, centers, bandwidth, log_weights)
    norm = math.log(centers.shape[0]) if log_weights is None else torch.logsumexp(log_weights, 0)
    log_h2 = torch.log(h2).reshape(-1) if torch.is_tensor(h2) else math.log(h2)
    return torch.logsumexp(logits, dim=1) - norm - 0.5 * x.shape[1] * (math.log(2 * math.pi) + log_h2)
