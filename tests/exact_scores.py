"""Scores known exactly at every time, for testing samplers by what they sample.

For data N(μ, Σ), every SDE here has the marginal x_t ~ N(m(t)μ, m(t)²Σ + s(t)²I)
(m the mean coefficient, s the marginal std). An isotropic Gaussian mixture
Σ_k w_k N(μ_k, τ_k²I) likewise stays a mixture: Σ_k w_k N(mμ_k, (m²τ_k² + s²)I).
"""

import torch


def gaussian_score(sde, mu, cov):
    mu, cov = torch.as_tensor(mu, dtype=torch.float64), torch.as_tensor(cov, dtype=torch.float64)
    eye = torch.eye(len(mu), dtype=torch.float64)

    def score(x, t):
        m, s = sde.mean_coef(t.double()), sde.std(t.double())
        c = m[:, None, None] ** 2 * cov + s[:, None, None] ** 2 * eye
        r = x.double() - m[:, None] * mu
        return -torch.linalg.solve(c, r.unsqueeze(-1)).squeeze(-1).to(x.dtype)

    return score


def mixture_score_at(x, means, weights, variances):
    """The score of Σ_k w_k N(μ_k, v_k I) at x ([B, d]); variances [B, K] or [K]."""
    x = x.double()
    d = x.shape[1]
    diff = x[:, None, :] - means[None]  # [B, K, d]
    v = variances if variances.dim() == 2 else variances[None]
    logp = torch.log(weights)[None] - 0.5 * (diff**2).sum(-1) / v - 0.5 * d * torch.log(v)
    r = torch.softmax(logp, dim=1)
    return -(r[..., None] * diff / v[..., None]).sum(1)


def mixture_score(sde, means, weights, std):
    """A time-dependent score for the SDE samplers: score_fn(x, t)."""
    means = torch.as_tensor(means, dtype=torch.float64)
    weights = torch.as_tensor(weights, dtype=torch.float64)
    std = torch.as_tensor(std, dtype=torch.float64).expand(len(weights))

    def score(x, t):
        m, s = sde.mean_coef(t.double()), sde.std(t.double())
        v = m[:, None] ** 2 * std[None] ** 2 + s[:, None] ** 2
        return mixture_score_at(x / m[:, None], means, weights, v / m[:, None] ** 2).div(m[:, None]).to(x.dtype)

    return score


def mixture_score_sigma(means, weights, std):
    """A noise-level score for annealed Langevin: score_fn(x, sigma) of the mixture convolved with N(0, σ²I)."""
    means = torch.as_tensor(means, dtype=torch.float64)
    weights = torch.as_tensor(weights, dtype=torch.float64)
    std = torch.as_tensor(std, dtype=torch.float64).expand(len(weights))

    def score(x, sigma):
        v = std[None] ** 2 + sigma.double()[:, None] ** 2
        return mixture_score_at(x, means, weights, v).to(x.dtype)

    return score


def nearest_component_fractions(x, means):
    d = torch.cdist(x.double(), torch.as_tensor(means, dtype=torch.float64))
    return torch.bincount(d.argmin(1), minlength=len(means)).double() / x.shape[0]
