"""The SDEs against the published reference (score_sde's sde_lib), transcribed below."""

import math

import numpy as np
import pytest
import torch

from scorekern import sde as sdelib
from scorekern.sde import SubVPSDE, VESDE, VPSDE, ncsn_sigmas, score_from_noise_prediction

from conftest import requires_compiled


# --- the reference's formulas, as score_sde writes them (t a [B] tensor, x [B, C, H, W]) ---

def ref_ve(sigma_min, sigma_max, N):
    discrete_sigmas = torch.exp(torch.linspace(np.log(sigma_min), np.log(sigma_max), N))

    def sde(x, t):
        sigma = sigma_min * (sigma_max / sigma_min) ** t
        return torch.zeros_like(x), sigma * torch.sqrt(torch.tensor(2 * (np.log(sigma_max) - np.log(sigma_min))))

    def marginal_prob(x, t):
        return x, sigma_min * (sigma_max / sigma_min) ** t

    def discretize(x, t):
        timestep = (t * (N - 1) / 1).long()
        sigma = discrete_sigmas[timestep]
        adjacent = torch.where(timestep == 0, torch.zeros_like(t), discrete_sigmas[timestep - 1])
        return torch.zeros_like(x), torch.sqrt(sigma**2 - adjacent**2)

    def prior_logp(z):
        n = np.prod(z.shape[1:])
        return -n / 2.0 * np.log(2 * np.pi * sigma_max**2) - torch.sum(z**2, dim=(1, 2, 3)) / (2 * sigma_max**2)

    return sde, marginal_prob, discretize, prior_logp


def ref_vp(beta_0, beta_1, N, sub=False):
    discrete_betas = torch.linspace(beta_0 / N, beta_1 / N, N)
    alphas = 1.0 - discrete_betas

    def sde(x, t):
        beta_t = beta_0 + t * (beta_1 - beta_0)
        drift = -0.5 * beta_t[:, None, None, None] * x
        if sub:
            discount = 1.0 - torch.exp(-2 * beta_0 * t - (beta_1 - beta_0) * t**2)
            return drift, torch.sqrt(beta_t * discount)
        return drift, torch.sqrt(beta_t)

    def marginal_prob(x, t):
        log_mean_coeff = -0.25 * t**2 * (beta_1 - beta_0) - 0.5 * t * beta_0
        mean = torch.exp(log_mean_coeff[:, None, None, None]) * x
        std = 1 - torch.exp(2.0 * log_mean_coeff) if sub else torch.sqrt(1.0 - torch.exp(2.0 * log_mean_coeff))
        return mean, std

    def discretize(x, t):
        if sub:  # SDE.discretize: Euler–Maruyama
            dt = 1 / N
            drift, diffusion = sde(x, t)
            return drift * dt, diffusion * torch.sqrt(torch.tensor(dt))
        timestep = (t * (N - 1) / 1).long()
        beta = discrete_betas[timestep]
        alpha = alphas[timestep]
        return torch.sqrt(alpha)[:, None, None, None] * x - x, torch.sqrt(beta)

    def prior_logp(z):
        n = np.prod(z.shape[1:])
        return -n / 2.0 * np.log(2 * np.pi) - torch.sum(z**2, dim=(1, 2, 3)) / 2.0

    return sde, marginal_prob, discretize, prior_logp


CASES = [
    (VESDE(), ref_ve(0.01, 50.0, 1000)),
    (VESDE(0.1, 10.0, 37), ref_ve(0.1, 10.0, 37)),
    (VPSDE(), ref_vp(0.1, 20.0, 1000)),
    (VPSDE(0.05, 12.0, 50), ref_vp(0.05, 12.0, 50)),
    (SubVPSDE(), ref_vp(0.1, 20.0, 1000, sub=True)),
]


@pytest.mark.parametrize("ours,ref", CASES, ids=lambda v: repr(v) if isinstance(v, sdelib.SDE) else "")
def test_matches_the_reference(ours, ref):
    sde, marginal_prob, discretize, prior_logp = ref
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 4, 4, generator=g)
    t = torch.cat([torch.rand(4, generator=g), torch.tensor([0.0, 1.0])])  # includes both ends
    for got, want in zip(ours.sde(x, t), sde(x, t)):
        torch.testing.assert_close(got, want)
    for got, want in zip(ours.marginal_prob(x, t), marginal_prob(x, t)):
        torch.testing.assert_close(got, want)
    for got, want in zip(ours.discretize(x, t), discretize(x, t)):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(ours.prior_logp(x), prior_logp(x))
    assert torch.equal(ours.index(t), (t * (ours.N - 1)).long())


def test_schedules():
    vp = VPSDE(0.1, 20.0, 1000)
    torch.testing.assert_close(vp.alphas_cumprod, torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), 0))
    ve = VESDE(0.01, 50.0, 1000)
    assert ve.discrete_sigmas[0].item() == pytest.approx(0.01, rel=1e-5)
    assert ve.discrete_sigmas[-1].item() == pytest.approx(50.0, rel=1e-5)
    sigmas = ncsn_sigmas(1.0, 0.01, 10)
    assert sigmas[0].item() == pytest.approx(1.0) and sigmas[-1].item() == pytest.approx(0.01)
    assert torch.all(sigmas[1:] / sigmas[:-1] - sigmas[1] / sigmas[0] < 1e-6)


def test_marginals_match_simulation():
    # The forward SDE simulated finely from x0 has the stated marginal mean
    # and std (a check that drift, diffusion and marginals agree).
    g = torch.Generator().manual_seed(1)
    for s in (VPSDE(), SubVPSDE(), VESDE(0.01, 2.0)):
        x = torch.full((20000, 1), 1.5, dtype=torch.float64)
        n = 2000
        for k in range(n):
            t = torch.full((x.shape[0],), k / n, dtype=torch.float64)
            drift, diff = s.sde(x, t)
            x = x + drift / n + diff[:, None] * math.sqrt(1 / n) * torch.randn(x.shape, generator=g, dtype=torch.float64)
        t1 = torch.tensor([1.0], dtype=torch.float64)
        mean, std = s.marginal_prob(torch.tensor([[1.5]], dtype=torch.float64), t1)
        if isinstance(s, VESDE):  # VE's marginal std counts from σ(0) = σ_min, not 0
            std = torch.sqrt(std**2 - s.sigma_min**2)
        se = std.item() / math.sqrt(x.shape[0])
        assert abs(x.mean().item() - mean.item()) < 5 * se + 2e-3, type(s).__name__
        assert abs(x.std().item() - std.item()) < 5 * std.item() / math.sqrt(2 * x.shape[0]) + 2e-3, type(s).__name__


@requires_compiled
def test_prior_sampling_is_the_stream_and_pinned_by_row_ids():
    ve = VESDE()
    ids = torch.tensor([5, 9, 2])
    x = ve.prior_sampling((3, 4), generator=torch.Generator().manual_seed(0), row_ids=ids)
    y = ve.prior_sampling((2, 4), generator=torch.Generator().manual_seed(0), row_ids=ids[1:])
    assert torch.equal(x[1:], y)
    z = ve.prior_sampling((2000, 4), generator=torch.Generator().manual_seed(1))
    # N(0, σ_max² I): the std within five standard errors (σ/√(2n) each)
    assert abs(z.std().item() - 50.0) < 5 * 50.0 / math.sqrt(2 * z.numel())
    assert abs(z.mean().item()) < 5 * 50.0 / math.sqrt(z.numel())


def test_score_from_noise_prediction():
    vp = VPSDE()
    x, eps = torch.randn(4, 3), torch.randn(4, 3)
    t = torch.rand(4)
    score = score_from_noise_prediction(lambda x, t: eps, vp)(x, t)
    torch.testing.assert_close(score, -eps / vp.std(t)[:, None])


def test_bad_parameters():
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        VESDE(1.0, 0.5)
    with pytest.raises(ValueError, match="beta_min < beta_max"):
        VPSDE(2.0, 1.0)
    with pytest.raises(ValueError, match="N must be a positive int"):
        VPSDE(N=0)
    with pytest.raises(ValueError, match="beta_max / N must be below 1"):
        VPSDE(N=10)
    with pytest.raises(ValueError, match="sigma_begin > sigma_end > 0"):
        ncsn_sigmas(0.01, 1.0)
