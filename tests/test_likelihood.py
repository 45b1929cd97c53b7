"""Log-likelihoods through the probability-flow ODE, against the exact
Gaussian log-density, and bits per dimension."""

import math

import pytest
import torch

import scorekern
from scorekern import likelihood
from scorekern.sde import VESDE, VPSDE, SubVPSDE

from exact_scores import gaussian_score

MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.6], [0.6, 2.0]], dtype=torch.float64)
SDES = [VPSDE(), SubVPSDE(), VESDE(sigma_max=20.0)]
IDS = ["vp", "subvp", "ve"]


def _marginal(sde, t):
    t = torch.tensor([t], dtype=torch.float64)
    m, s = sde.mean_coef(t), sde.std(t)
    return torch.distributions.MultivariateNormal(m * MU, m**2 * COV + s**2 * torch.eye(2, dtype=torch.float64))


def _data(n, seed=0):
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return MU + z @ torch.linalg.cholesky(COV).T


@pytest.mark.parametrize("sde", SDES, ids=IDS)
@pytest.mark.parametrize("method, n_steps, tol", [("rk4", 100, 1e-5), ("heun", 100, 5e-3), ("rk45", 1, 1e-3)])
def test_exact_trace_gives_the_gaussian_log_density(sde, method, n_steps, tol):
    """With the exact score and trace, log_likelihood is log p_eps(x) up to
    (a) the prior mismatch at T, log p_T(z) − prior_logp(z), which the test
    adds back from the returned latent z (measured: up to 0.02 nats for VP,
    0.17 for VE with σ_max = 20), and (b) the integration error. Measured
    integration errors (max over 500 points, float64, on time_grid): rk4 with
    100 steps 5e-8 (VP) to 7e-6 (VE); Heun with 100 steps 5e-4 (VP) to 3e-2
    (VE); rk45 up to 2e-4. Bounds: tol per method (Heun's for VE at 0.05)."""
    x = _data(200)
    exact = _marginal(sde, 1e-5).log_prob(x)
    ll, z = likelihood.log_likelihood(gaussian_score(sde, MU, COV), sde, x, trace="exact", method=method,
                                      n_steps=n_steps, return_latent=True)
    assert ll.shape == (200,) and ll.dtype == torch.float64
    mismatch = _marginal(sde, 1.0).log_prob(z) - sde.prior_logp(z)
    if method == "heun" and isinstance(sde, VESDE):
        tol = 0.05
    torch.testing.assert_close(ll + mismatch, exact, rtol=0, atol=tol)
    # The raw value is off by the prior mismatch only: small for VP at T = 1.
    if isinstance(sde, VPSDE):
        assert float((ll - exact).abs().max()) < 0.05


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased_around_the_exact_trace(kind):
    """100 calls, each with its own probes: the mean of each point's estimate
    is within 4.5 standard errors of the exact-trace value (the largest of 30
    standard normals rarely exceeds 3.5); and different generators give
    different estimates."""
    sde = VPSDE()
    x = _data(30, seed=1)
    score = gaussian_score(sde, MU, COV)
    exact = likelihood.log_likelihood(score, sde, x, trace="exact", n_steps=20)
    runs = torch.stack([likelihood.log_likelihood(score, sde, x, trace=kind, n_steps=20,
                                                  generator=torch.Generator().manual_seed(k)) for k in range(100)])
    se = runs.std(0) / 10
    assert (se > 0).all()
    assert float(((runs.mean(0) - exact) / se).abs().max()) < 4.5
    # More probes per call: a smaller spread.
    many = torch.stack([likelihood.log_likelihood(score, sde, x, trace=kind, n_probes=8, n_steps=20,
                                                  generator=torch.Generator().manual_seed(k)) for k in range(20)])
    assert float(many.std(0).mean()) < 0.6 * float(runs.std(0).mean())


def test_reproducible_and_twin_path_agree_with_exact_trace():
    sde = VPSDE()
    x = _data(50).float()
    score = gaussian_score(sde, MU, COV)
    a = likelihood.log_likelihood(score, sde, x, generator=torch.Generator().manual_seed(3), n_steps=30)
    b = likelihood.log_likelihood(score, sde, x, generator=torch.Generator().manual_seed(3), n_steps=30)
    assert torch.equal(a, b) and a.dtype == torch.float32
    fused = likelihood.log_likelihood(score, sde, x, trace="exact", n_steps=30)
    with scorekern.use_backend("torch"):
        twin = likelihood.log_likelihood(score, sde, x, trace="exact", n_steps=30)
    torch.testing.assert_close(fused, twin, rtol=1e-5, atol=1e-4)


def test_image_shaped_data():
    """[B, C, H, W] rows: an isotropic Gaussian N(0.5, 0.3²I) over 48 dimensions."""
    sde = VPSDE()
    shape = (6, 3, 4, 4)
    x = 0.5 + 0.3 * torch.randn(shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def score(z, t):
        m, s = sde.mean_coef(t)[:, None, None, None], sde.std(t)[:, None, None, None]
        return (m * 0.5 - z) / (m**2 * 0.09 + s**2)

    t = torch.tensor([1e-5], dtype=torch.float64)
    m, s = sde.mean_coef(t), sde.std(t)
    var = m**2 * 0.09 + s**2
    exact = torch.distributions.Normal(m * 0.5, var.sqrt()).log_prob(x).sum((1, 2, 3))
    ll, z = likelihood.log_likelihood(score, sde, x, trace="exact", n_steps=50, return_latent=True)
    m1, s1 = sde.mean_coef(torch.ones(1, dtype=torch.float64)), sde.std(torch.ones(1, dtype=torch.float64))
    mismatch = torch.distributions.Normal(m1 * 0.5, (m1**2 * 0.09 + s1**2).sqrt()).log_prob(z).sum((1, 2, 3)) \
        - sde.prior_logp(z)
    # 50 rk4 steps: measured integration error 8e-5 nats over 48 dimensions
    torch.testing.assert_close(ll + mismatch, exact, rtol=0, atol=5e-4)


def test_bits_per_dim_dequantised_and_the_reference_form():
    """8-bit data and a model sharper than a bin, N(centre, 0.0005²) per
    dimension (0.0011 with the VP noise at eps, a quarter of a bin of
    1/256): evaluated at the grid points themselves, as the published
    reference does, the density exceeds 256 and bits per dimension go
    negative (score_sde#24, measured -0.48); with uniform dequantisation the
    average over the noise is the bound E_u[-log2 p] > 0 (0.25 bits here
    in expectation) and each value equals the closed form for its u."""
    sde = VPSDE()
    std = 0.0005
    k = torch.randint(0, 256, (40, 3), generator=torch.Generator().manual_seed(0))
    x = k.double() / 255

    def score_at(centre):
        def score(z, t):
            m, s = sde.mean_coef(t)[:, None], sde.std(t)[:, None]
            return (m * centre - z) / (m**2 * std**2 + s**2)
        return score

    raw = likelihood.bits_per_dim(score_at(x), sde, x, dequantize=False, trace="exact", n_steps=100)
    assert (raw < -0.4).all()
    centre = (k.double() + 0.5) / 256
    deq = likelihood.bits_per_dim(score_at(centre), sde, x, trace="exact", n_steps=100,
                                  generator=torch.Generator().manual_seed(1))
    assert float(deq.mean()) > 0.1
    # the closed form for the same u (a generator with the same seed)
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.tensor([1e-5], dtype=torch.float64)
    m, s = sde.mean_coef(t), sde.std(t)
    logp = torch.distributions.Normal(m * centre, (m**2 * std**2 + s**2).sqrt()).log_prob((k + u) / 256).sum(1)
    expect = -logp / (3 * math.log(2)) + 8
    # Up to the prior mismatch at T (about 0.02 nats a row, 0.01 bits per
    # dimension here; measured difference at most 0.007) and the integration
    # error (rk4 on time_grid agrees with rk45 to 2e-4 bits on this stiff case).
    torch.testing.assert_close(deq, expect, rtol=0, atol=0.02)
    # centred data: the model sees 2x − 1 and one bit per dimension comes off for the scale
    centred = likelihood.bits_per_dim(score_at(2 * centre - 1), sde, x, centered=True, trace="exact", n_steps=100,
                                      generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(centred).all()


def test_clear_errors():
    sde = VPSDE()
    x = _data(4)
    score = gaussian_score(sde, MU, COV)
    with pytest.raises(ValueError, match="trace"):
        likelihood.log_likelihood(score, sde, x, trace="hutch")
    with pytest.raises(ValueError, match="method"):
        likelihood.log_likelihood(score, sde, x, method="euler")
    with pytest.raises(ValueError, match="eps"):
        likelihood.log_likelihood(score, sde, x, eps=0.0)
    with pytest.raises(ValueError, match="n_steps"):
        likelihood.log_likelihood(score, sde, x, n_steps=0)
    with pytest.raises(TypeError, match="batch"):
        likelihood.log_likelihood(score, sde, x[0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        likelihood.bits_per_dim(score, sde, x)
