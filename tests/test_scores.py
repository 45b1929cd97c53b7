"""The score functions built on mixture_score (scorekern.scores: KDE,
Gaussian mixture, ideal denoiser) and explicit score matching, against exact
scores."""

import pytest
import torch

import scorekern
from scorekern import losses, reference, samplers, scores
from scorekern.sde import VESDE, VPSDE, SubVPSDE, ncsn_sigmas

from conftest import requires_compiled
from exact_scores import nearest_component_fractions

pytestmark = requires_compiled


MEANS = torch.tensor([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]])
WEIGHTS = torch.tensor([0.5, 0.3, 0.2])


def _gmm_score_exact(x, means, weights, var):
    """Σ w N(μ, var) score, var a float or [B]: the float64 twin with log-weights."""
    h = torch.sqrt(torch.as_tensor(var, dtype=torch.float64))
    return reference.mixture_score(x.double(), means.double(), h if h.dim() else h.item(),
                                   log_weights=torch.log(weights.double()))


def test_kde_is_the_twin_at_its_bandwidth():
    data = torch.randn(500, 2, 2, dtype=torch.float64)
    x = torch.randn(30, 2, 2, dtype=torch.float64)
    got = scores.kde(data, 0.4)(x)
    want = reference.mixture_score(x.reshape(30, 4), data.reshape(500, 4), 0.4).reshape(x.shape)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("sde", [None, VESDE(), VPSDE(), SubVPSDE()], ids=["sigma", "ve", "vp", "subvp"])
def test_gmm_score_under_noise_and_sdes(sde):
    x = torch.randn(40, 2, dtype=torch.float64) * 3
    fn = scores.gmm(MEANS.double(), WEIGHTS, 0.5, sde=sde)
    level = torch.rand(40, dtype=torch.float64) * 0.9 + 0.05
    got = fn(x, level)
    if sde is None:
        want = _gmm_score_exact(x, MEANS, WEIGHTS, 0.25 + level**2)
    else:
        # p_t = Σ w N(α μ, α²·0.25 + σ²): the mixture with moved means, one row at a time
        alpha, sigma = sde.mean_coef(level), sde.std(level)
        want = torch.stack([
            _gmm_score_exact(x[i:i + 1], alpha[i] * MEANS.double(), WEIGHTS, (alpha[i] ** 2 * 0.25 + sigma[i] ** 2).item())[0]
            for i in range(40)])
    torch.testing.assert_close(got, want)


def test_ideal_denoiser_returns_the_training_points():
    # At small σ the ideal denoiser x + σ²·score is the nearest training point.
    data = torch.randn(50, 3, dtype=torch.float64)
    x = data[:20] + 0.002 * torch.randn(20, 3, dtype=torch.float64)
    sigma = 0.01  # the other points are hundreds of σ away: their weights underflow
    denoised = x + sigma**2 * scores.ideal_denoiser(data)(x, sigma)
    torch.testing.assert_close(denoised, data[:20], atol=1e-12, rtol=0)
    # at a larger σ it is the posterior mean of the training points
    x = torch.randn(20, 3, dtype=torch.float64)
    w = torch.softmax(-torch.cdist(x, data).square() / (2 * 0.7**2), 1)
    torch.testing.assert_close(x + 0.7**2 * scores.ideal_denoiser(data)(x, 0.7), w @ data)


def test_annealed_langevin_with_gmm_recovers_the_weights():
    m = 4000
    sigmas = ncsn_sigmas(10.0, 0.05, 20)
    g = torch.Generator().manual_seed(6)
    x0 = torch.rand(m, 2, generator=g) * 16 - 8
    x = samplers.annealed_langevin(scores.gmm(MEANS, WEIGHTS, 0.5), x0, sigmas, step_lr=5e-5, n_steps_each=100,
                                   generator=g, progress=False)
    frac = nearest_component_fractions(x, MEANS)
    se = torch.sqrt(WEIGHTS.double() * (1 - WEIGHTS.double()) / m)
    # five standard errors plus the sampler's own bias (as in test_samplers)
    assert torch.all((frac - WEIGHTS.double()).abs() < 5 * se + 0.04), frac


def test_explicit_score_matching_is_the_regression_on_the_kde_score():
    g = torch.Generator().manual_seed(1)
    data = torch.randn(300, 2, generator=g)
    x = data[:64] + 0.5 * torch.randn(64, 2, generator=g)
    model = torch.nn.Linear(2, 2)
    loss = losses.explicit_score_matching(model, x, data, 0.5)
    target = reference.mixture_score(x.double(), data.double(), 0.5)
    want = 0.5 * (model(x).double() - target).square().sum(1).mean()
    torch.testing.assert_close(loss.double(), want, rtol=1e-5, atol=1e-6)
    loss.backward()
    assert model.weight.grad is not None and torch.isfinite(model.weight.grad).all()


def test_explicit_score_matching_trains_a_linear_model_to_the_kde_score():
    # Data from N(0, I): the KDE at bandwidth h is close to N(0, (1 + h²)I),
    # whose score is −x/(1 + h²); a linear model fits it.
    g = torch.Generator().manual_seed(2)
    data = torch.randn(4000, 2, generator=g)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    h = 0.5
    for _ in range(300):
        idx = torch.randint(0, 4000, (256,), generator=g)
        x = data[idx] + h * torch.randn(256, 2, generator=g)
        opt.zero_grad()
        losses.explicit_score_matching(model, x, data, h).backward()
        opt.step()
    want = -torch.eye(2) / (1 + h * h)
    assert (model.weight.detach() - want).abs().max() < 0.06, model.weight
    assert model.bias.detach().abs().max() < 0.06


def test_gmm_on_the_twin_path_with_float32_data():
    x = torch.randn(30, 2) * 3
    fused = scores.gmm(MEANS, WEIGHTS, 0.5)(x, 0.3)
    with scorekern.use_backend("torch"):
        twin = scores.gmm(MEANS, WEIGHTS, 0.5)(x, 0.3)
    assert twin.dtype == torch.float32
    torch.testing.assert_close(fused, twin, rtol=1e-4, atol=1e-4)  # float32, summed in another order
