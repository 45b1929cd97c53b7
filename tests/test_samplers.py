"""Samplers: each step against the published formulas, each sampler by what it samples."""

import math

import numpy as np
import pytest
import torch

import scorekern
from scorekern import samplers
from scorekern.sde import SubVPSDE, VESDE, VPSDE, ncsn_sigmas

from conftest import requires_compiled
from exact_scores import gaussian_score, mixture_score, mixture_score_sigma, nearest_component_fractions

pytestmark = requires_compiled

BACKENDS = ["compiled", "torch"]


# --- score_sde's sampling.py update functions, transcribed (x [B, C, H, W], t [B]) ---

def ref_euler_maruyama(sde, x, t, score, z, probability_flow=False):
    dt = -1.0 / sde.N
    drift, diffusion = sde.sde(x, t)
    drift = drift - diffusion[:, None, None, None] ** 2 * score * (0.5 if probability_flow else 1.0)
    diffusion = torch.zeros_like(diffusion) if probability_flow else diffusion
    x_mean = x + drift * dt
    return x_mean + diffusion[:, None, None, None] * np.sqrt(-dt) * z, x_mean


def ref_reverse_diffusion(sde, x, t, score, z, probability_flow=False):
    f, G = sde.discretize(x, t)
    rev_f = f - G[:, None, None, None] ** 2 * score * (0.5 if probability_flow else 1.0)
    rev_G = torch.zeros_like(G) if probability_flow else G
    x_mean = x - rev_f
    return x_mean + rev_G[:, None, None, None] * z, x_mean


def ref_ancestral(sde, x, t, score, z):
    timestep = (t * (sde.N - 1) / sde.T).long()
    if isinstance(sde, VESDE):
        sigma = sde.discrete_sigmas[timestep]
        adjacent_sigma = torch.where(timestep == 0, torch.zeros_like(t), sde.discrete_sigmas[timestep - 1])
        x_mean = x + score * (sigma**2 - adjacent_sigma**2)[:, None, None, None]
        std = torch.sqrt((adjacent_sigma**2 * (sigma**2 - adjacent_sigma**2)) / (sigma**2))
        return x_mean + std[:, None, None, None] * z, x_mean
    beta = sde.discrete_betas[timestep]
    x_mean = (x + beta[:, None, None, None] * score) / torch.sqrt(1.0 - beta)[:, None, None, None]
    return x_mean + torch.sqrt(beta)[:, None, None, None] * z, x_mean


def ref_alpha(sde, t):
    # The reference reads sde.alphas for VP and sub-VP (where sub-VP has none
    # and fails); ours shares VP's, which is what this uses.
    if isinstance(sde, VPSDE):
        return sde.alphas[(t * (sde.N - 1) / sde.T).long()]
    return torch.ones_like(t)


def ref_langevin_corrector(sde, x, t, score, z, snr):
    alpha = ref_alpha(sde, t)
    grad_norm = torch.norm(score.reshape(score.shape[0], -1), dim=-1).mean()
    noise_norm = torch.norm(z.reshape(z.shape[0], -1), dim=-1).mean()
    step_size = (snr * noise_norm / grad_norm) ** 2 * 2 * alpha
    x_mean = x + step_size[:, None, None, None] * score
    return x_mean + torch.sqrt(step_size * 2)[:, None, None, None] * z, x_mean


def ref_ald(sde, x, t, score, z, snr):
    alpha = ref_alpha(sde, t)
    std = sde.marginal_prob(x, t)[1]
    step_size = (snr * std) ** 2 * 2 * alpha
    x_mean = x + step_size[:, None, None, None] * score
    return x_mean + z * torch.sqrt(step_size * 2)[:, None, None, None], x_mean


SDES = [VESDE(), VPSDE(), SubVPSDE()]
IDS = ["VE", "VP", "subVP"]


def _state(seed=0):
    g = torch.Generator().manual_seed(seed)
    x, score, z = (torch.randn(5, 3, 4, 4, generator=g) for _ in range(3))
    t = torch.rand(5, generator=g) * 0.998 + 1e-3
    t[0] = 1.0  # the first step of a sampler
    t[1] = 1e-3  # near the last
    return x, score, z, t


def _check(got, want, rtol=2e-6, atol=2e-6):
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=rtol, atol=atol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sde", SDES, ids=IDS)
@pytest.mark.parametrize("pf", [False, True])
def test_predictors_match_the_reference(backend, sde, pf):
    x, score, z, t = _state()
    with scorekern.use_backend(backend):
        _check(samplers.euler_maruyama_step(sde, x, score, t, probability_flow=pf, noise=z),
               ref_euler_maruyama(sde, x, t, score, z, pf))
        _check(samplers.reverse_diffusion_step(sde, x, score, t, probability_flow=pf, noise=z),
               ref_reverse_diffusion(sde, x, t, score, z, pf), rtol=1e-5, atol=1e-5)
        if not pf and not isinstance(sde, SubVPSDE):
            _check(samplers.ancestral_step(sde, x, score, t, noise=z), ref_ancestral(sde, x, t, score, z))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_correctors_match_the_reference(backend, sde):
    x, score, z, t = _state(1)
    with scorekern.use_backend(backend):
        _check(samplers.langevin_corrector_step(sde, x, score, t, 0.16, noise=z),
               ref_langevin_corrector(sde, x, t, score, z, 0.16), rtol=1e-5, atol=1e-5)
        _check(samplers.annealed_langevin_step(sde, x, score, t, 0.16, noise=z), ref_ald(sde, x, t, score, z, 0.16))


@pytest.mark.parametrize("backend", BACKENDS)
def test_ou_reverse_step(backend):
    x, score, z, t = _state(2)
    vp = VPSDE()
    with scorekern.use_backend(backend):
        # with VP's α = √(1 − βᵢ) the OU reverse kernel is VP's reverse-diffusion step
        _check(samplers.ou_reverse_step(vp, x, score, t, noise=z), ref_reverse_diffusion(vp, x, t, score, z))
        alpha = 0.9
        got = samplers.ou_reverse_step(None, x, score, t, alpha=alpha, noise=z)
        mean = (2 - alpha) * x + (1 - alpha**2) * score
        _check(got, (mean + math.sqrt(1 - alpha**2) * z, mean))


def test_step_coefficients_are_the_design_table():
    t = torch.tensor([0.3, 0.7])
    ve, vp, sub = VESDE(), VPSDE(), SubVPSDE()
    dt = 1 / 1000
    # Euler–Maruyama: VE (1, g²Δt, g√Δt); VP (1 + βΔt/2, g²Δt, g√Δt)
    a, b, c = samplers.euler_maruyama_coefficients(vp, t)
    beta = vp.beta(t)
    torch.testing.assert_close(a, 1 + beta * dt / 2)
    torch.testing.assert_close(b, beta * dt)
    torch.testing.assert_close(c, torch.sqrt(beta * dt))
    a, b, c = samplers.euler_maruyama_coefficients(ve, t, probability_flow=True)
    torch.testing.assert_close(b, 0.5 * ve.diffusion(t) ** 2 * dt)
    assert torch.equal(c, torch.zeros(2)) and torch.equal(a, torch.ones(2))
    # sub-VP's reverse diffusion falls back to Euler–Maruyama
    for u, v in zip(samplers.reverse_diffusion_coefficients(sub, t), samplers.euler_maruyama_coefficients(sub, t)):
        torch.testing.assert_close(u, v)
    # ancestral VP: (1/√(1−β), β/√(1−β), √β)
    beta = vp.discrete_beta(t)
    for u, v in zip(samplers.ancestral_coefficients(vp, t), (1 / torch.sqrt(1 - beta), beta / torch.sqrt(1 - beta), beta.sqrt())):
        torch.testing.assert_close(u, v)


# --- complete samplers, tested by what they sample ---------------------------

MU = torch.tensor([1.0, -2.0])
COV = torch.tensor([[1.0, 0.6], [0.6, 0.5]])
M = 4000  # samples per test


def _moments_ok(x, slack):
    """Mean and covariance within five standard errors plus a stated
    discretisation slack (the samplers are exact only as steps → 0)."""
    x = x.double()
    mean, cov = x.mean(0), torch.cov(x.T)
    se_mean = torch.sqrt(torch.diag(COV.double()) / x.shape[0])
    assert torch.all((mean - MU).abs() < 5 * se_mean + slack), (mean, cov)
    # var of a sample covariance entry: (Σ_ij² + Σ_ii Σ_jj)/n
    c = COV.double()
    se_cov = torch.sqrt((c**2 + torch.outer(torch.diag(c), torch.diag(c))) / x.shape[0])
    assert torch.all((cov - c).abs() < 5 * se_cov + slack), (mean, cov)


@pytest.mark.parametrize("sde", [VESDE(N=500), VPSDE(N=500), SubVPSDE(N=500)], ids=IDS)
@pytest.mark.parametrize("predictor,corrector", [("reverse_diffusion", "langevin"), ("euler_maruyama", None),
                                                 ("ancestral", None), ("reverse_diffusion", "ald"),
                                                 ("ou_reverse", None)])
def test_pc_sampler_samples_a_gaussian(sde, predictor, corrector):
    if predictor == "ancestral" and isinstance(sde, SubVPSDE):
        pytest.skip("ancestral sampling has no sub-VP form")
    if predictor == "ou_reverse" and not isinstance(sde, VPSDE) or predictor == "ou_reverse" and isinstance(sde, SubVPSDE):
        pytest.skip("the OU reverse kernel takes its α from VP's discrete chain")
    x = samplers.pc_sampler(gaussian_score(sde, MU, COV), sde, (M, 2), predictor=predictor, corrector=corrector,
                            generator=torch.Generator().manual_seed(0), progress=False)
    assert x.shape == (M, 2) and x.dtype == torch.float32
    _moments_ok(x, slack=0.06)


@pytest.mark.parametrize("sde", [VESDE(N=400), VPSDE(N=400), SubVPSDE(N=400)], ids=IDS)
@pytest.mark.parametrize("method", ["euler", "heun"])
def test_ode_sampler_samples_a_gaussian(sde, method):
    x = samplers.ode_sampler(gaussian_score(sde, MU, COV), sde, (M, 2), method=method, n_steps=200 if method == "heun" else 400,
                             generator=torch.Generator().manual_seed(1), progress=False)
    _moments_ok(x, slack=0.06)


def test_euler_maruyama_and_ancestral_helpers():
    sde = VPSDE(N=300)
    score = gaussian_score(sde, MU, COV)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    x = samplers.euler_maruyama(score, sde, (M, 2), generator=g(), progress=False)
    y = samplers.pc_sampler(score, sde, (M, 2), predictor="euler_maruyama", corrector=None, generator=g(), progress=False)
    assert torch.equal(x, y)
    _moments_ok(samplers.ancestral(score, sde, (M, 2), generator=g(), progress=False), slack=0.08)


def test_float64_sampling():
    sde = VPSDE(N=300)
    x = samplers.pc_sampler(gaussian_score(sde, MU, COV), sde, (M, 2), dtype=torch.float64,
                            generator=torch.Generator().manual_seed(4), progress=False)
    assert x.dtype == torch.float64
    _moments_ok(x, slack=0.08)


MEANS = torch.tensor([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]])
WEIGHTS = torch.tensor([0.5, 0.3, 0.2])


def _weights_ok(x, slack):
    frac = nearest_component_fractions(x, MEANS)
    se = torch.sqrt(WEIGHTS.double() * (1 - WEIGHTS.double()) / x.shape[0])
    assert torch.all((frac - WEIGHTS.double()).abs() < 5 * se + slack), frac


@pytest.mark.parametrize("sde", [VESDE(sigma_max=20.0, N=500), VPSDE(N=500), SubVPSDE(N=500)], ids=IDS)
def test_pc_sampler_recovers_mixture_weights(sde):
    score = mixture_score(sde, MEANS, WEIGHTS, 0.5)
    x = samplers.pc_sampler(score, sde, (M, 2), generator=torch.Generator().manual_seed(5), progress=False)
    _weights_ok(x, slack=0.03)
    # and each component's spread: within-component std 0.5
    nearest = torch.cdist(x.double(), MEANS.double()).argmin(1)
    for k in range(3):
        spread = (x[nearest == k] - MEANS[k]).std().item()
        assert abs(spread - 0.5) < 0.06, (k, spread)


def test_annealed_langevin_recovers_mixture_weights():
    # NCSN's sampler with its step rule αᵢ = step_lr·σᵢ²/σ_L² over geometric σ.
    sigmas = ncsn_sigmas(10.0, 0.05, 20)
    g = torch.Generator().manual_seed(6)
    x0 = torch.rand(M, 2, generator=g) * 16 - 8
    x = samplers.annealed_langevin(mixture_score_sigma(MEANS, WEIGHTS, 0.5), x0, sigmas, step_lr=5e-5,
                                   n_steps_each=100, generator=g, progress=False)
    _weights_ok(x, slack=0.04)


def test_langevin_samples_a_gaussian():
    prec = torch.linalg.inv(COV)
    x0 = torch.zeros(M, 2)
    x = samplers.langevin(lambda x: -(x - MU) @ prec, x0, 0.01, 2000, generator=torch.Generator().manual_seed(7),
                          progress=False)
    assert torch.equal(x0, torch.zeros(M, 2)), "the input must not be changed"
    _moments_ok(x, slack=0.03)  # ULA's bias at τ = 0.01 is of order τ


def test_twin_path_samples_too():
    sde = VPSDE(N=300)
    with scorekern.use_backend("torch"):
        x = samplers.pc_sampler(gaussian_score(sde, MU, COV), sde, (M, 2), generator=torch.Generator().manual_seed(8),
                                progress=False)
    _moments_ok(x, slack=0.08)


# --- reproducibility, row ids, callbacks, trajectories, errors ---------------

def test_reproducible_and_batch_invariant_with_row_ids():
    sde = VESDE(N=100)
    score = gaussian_score(sde, MU, COV)
    ids = torch.arange(100, 108)

    def run(rows, **kw):
        return samplers.pc_sampler(score, sde, (len(rows), 2), row_ids=ids[rows], generator=torch.Generator().manual_seed(9),
                                   progress=False, **kw)

    full = run(list(range(8)))
    assert torch.equal(full, run(list(range(8))))
    # a sample's path depends on its id only: sampled in part of the batch, the same
    # (the batch-norm corrector couples rows, so use per-row norms for this)
    full = run(list(range(8)), norms="row")
    part = run([5, 2], norms="row")
    torch.testing.assert_close(part, full[[5, 2]], rtol=1e-5, atol=1e-5)


def test_callback_and_trajectory():
    sde = VPSDE(N=50)
    seen = []
    x, traj = samplers.pc_sampler(gaussian_score(sde, MU, COV), sde, (16, 2), progress=False,
                                  callback=lambda i, t, x, m: seen.append((i, t, x.shape, m.shape)),
                                  return_steps=[0, 25, -1], generator=torch.Generator().manual_seed(0))
    assert [s[0] for s in seen] == list(range(50))
    assert seen[0][1] == pytest.approx(1.0) and seen[-1][1] == pytest.approx(1e-3)
    assert sorted(traj) == [0, 25, 49] and torch.equal(traj[49], x) is False  # x is the denoised mean
    assert all(v.shape == (16, 2) for v in traj.values())


def test_progress_bar(capsys):
    sde = VPSDE(N=50)
    samplers.pc_sampler(gaussian_score(sde, MU, COV), sde, (4, 2), progress=True)
    assert "pc_sampler" in capsys.readouterr().err


def test_sampler_errors():
    sde = VPSDE(N=50)
    score = gaussian_score(sde, MU, COV)
    with pytest.raises(ValueError, match="predictor must be one of"):
        samplers.pc_sampler(score, sde, (4, 2), predictor="heun", progress=False)
    with pytest.raises(ValueError, match="corrector must be one of"):
        samplers.pc_sampler(score, sde, (4, 2), corrector="hmc", progress=False)
    with pytest.raises(ValueError, match="eps must lie in"):
        samplers.pc_sampler(score, sde, (4, 2), eps=1.5, progress=False)
    with pytest.raises(ValueError, match="ancestral sampling is defined for VESDE and VPSDE"):
        samplers.ancestral(score, SubVPSDE(N=50), (4, 2), progress=False)
    with pytest.raises(ValueError, match="ou_reverse_step needs alpha"):
        samplers.ou_reverse_step(VESDE(), torch.zeros(2, 2), torch.zeros(2, 2), torch.ones(2))
    with pytest.raises(ValueError, match=r"alpha must lie in \(0, 1\]"):
        samplers.ou_reverse_step(None, torch.zeros(2, 2), torch.zeros(2, 2), torch.ones(2), alpha=1.5)
    with pytest.raises(ValueError, match="method must be 'euler' or 'heun'"):
        samplers.ode_sampler(score, sde, (4, 2), method="rk4", progress=False)
    with pytest.raises(TypeError, match="score_fn must be callable"):
        samplers.pc_sampler(None, sde, (4, 2), progress=False)
    with pytest.raises(ValueError, match="dt must be negative"):
        samplers.euler_maruyama_coefficients(sde, torch.ones(2), dt=0.1)
