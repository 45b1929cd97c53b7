"""scorekern.losses: value for value against transcriptions of the published
losses on the same draws, and training a linear score model on Gaussian data
to the analytic score."""

import pytest
import torch

from scorekern import losses, ops
from scorekern.sde import SubVPSDE, VESDE, VPSDE, ncsn_sigmas

from conftest import requires_compiled

pytestmark = requires_compiled


def _data(shape=(16, 3, 4, 4), seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


class Model(torch.nn.Module):
    """A small score model that uses its conditioning input."""

    def __init__(self, c=3):
        super().__init__()
        self.conv = torch.nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x, t):
        return self.conv(x) * (1 + t.float().reshape(-1, 1, 1, 1) / 10)


def _draw_noise(x0, g):
    """The noise perturb draws from g next."""
    seed, offset = ops.draw_seed_offset(g, x0.device)
    return ops.randn_like(x0, seed=seed, offset=offset)


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


# score_sde's losses.get_sde_loss_fn (continuous, Song et al. 2021), transcribed.
def _score_sde_loss(sde, model, batch, g, eps, likelihood_weighting, reduce_mean):
    reduce_op = torch.mean if reduce_mean else lambda *args, **kwargs: 0.5 * torch.sum(*args, **kwargs)
    t = torch.rand(batch.shape[0], generator=g) * (sde.T - eps) + eps
    z = _draw_noise(batch, g)
    mean, std = sde.marginal_prob(batch, t)
    perturbed_data = mean + std[:, None, None, None] * z
    score = model(perturbed_data, t)
    if not likelihood_weighting:
        losses_ = torch.square(score * std[:, None, None, None] + z)
        losses_ = reduce_op(losses_.reshape(losses_.shape[0], -1), dim=-1)
    else:
        g2 = sde.sde(torch.zeros_like(batch), t)[1] ** 2
        losses_ = torch.square(score + z / std[:, None, None, None])
        losses_ = reduce_op(losses_.reshape(losses_.shape[0], -1), dim=-1) * g2
    return torch.mean(losses_)


@pytest.mark.parametrize("sde", [VESDE(), VPSDE(), SubVPSDE()], ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("likelihood_weighting", [False, True])
@pytest.mark.parametrize("reduce_mean", [False, True])
def test_dsm_matches_score_sde(sde, likelihood_weighting, reduce_mean):
    x0 = _data()
    model = Model()
    got = losses.dsm(model, x0, sde, likelihood_weighting=likelihood_weighting, reduce_mean=reduce_mean,
                     generator=torch.Generator().manual_seed(7))
    got.backward()
    got_grads = _grads(model)
    model.zero_grad()
    want = _score_sde_loss(sde, model, x0, torch.Generator().manual_seed(7), 1e-5, likelihood_weighting, reduce_mean)
    want.backward()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for a, b in zip(got_grads, _grads(model)):
        # Parameter gradients sum many float32 terms in a different order:
        # an entry that nearly cancels is compared against the largest one.
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item())


# NCSNv2's losses.dsm.anneal_dsm_score_estimation, transcribed (σ given to the model).
def _ncsn_loss(model, samples, sigmas, g, anneal_power=2.0):
    labels = torch.randint(0, len(sigmas), (samples.shape[0],), generator=g)
    used_sigmas = sigmas[labels].view(samples.shape[0], *([1] * len(samples.shape[1:])))
    noise = _draw_noise(samples, g) * used_sigmas
    perturbed_samples = samples + noise
    target = -1 / (used_sigmas**2) * noise
    scores = model(perturbed_samples, used_sigmas.reshape(-1))
    target = target.view(target.shape[0], -1)
    scores = scores.view(scores.shape[0], -1)
    loss = 1 / 2.0 * ((scores - target) ** 2).sum(dim=-1) * used_sigmas.squeeze() ** anneal_power
    return loss.mean(dim=0)


@pytest.mark.parametrize("anneal_power", [2.0, 1.0])
def test_ncsn_matches_published(anneal_power):
    x0, sigmas, model = _data(), ncsn_sigmas(1.0, 0.01, 10), Model()
    got = losses.ncsn(model, x0, sigmas, anneal_power=anneal_power, generator=torch.Generator().manual_seed(3))
    want = _ncsn_loss(model, x0, sigmas, torch.Generator().manual_seed(3), anneal_power)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_ddpm_matches_published():
    x0, model = _data(), Model()
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    got = losses.ddpm(model, x0, betas, generator=torch.Generator().manual_seed(2))
    # Ho et al.'s simple loss: mean over the sample of (ε − ε̂)², then over the batch.
    g = torch.Generator().manual_seed(2)
    t = torch.randint(0, 1000, (x0.shape[0],), generator=g)
    a = torch.cumprod(1 - betas, 0)[t].float().reshape(-1, 1, 1, 1)
    z = _draw_noise(x0, g)
    eps = model(a.sqrt() * x0 + (1 - a).sqrt() * z, t)
    want = ((z - eps) ** 2).mean(dim=(1, 2, 3)).mean()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_loss_errors():
    x0 = _data()
    with pytest.raises(ValueError, match="batch"):
        losses.dsm(Model(), x0[0, 0, 0], VESDE())
    with pytest.raises(ValueError, match="eps"):
        losses.dsm(Model(), x0, VESDE(), eps=0.0)
    with pytest.raises(ValueError, match="sigmas"):
        losses.ncsn(Model(), x0, torch.ones(2, 2))
    with pytest.raises(ValueError, match="betas"):
        losses.ddpm(Model(), x0, torch.tensor([0.5, 1.5]))


# ---------------------------------------------------------------------------
# Training a linear score model s(x) = Wx + b on Gaussian data


MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)


def _gaussian_data(n=8192):
    g = torch.Generator().manual_seed(0)
    chol = torch.linalg.cholesky(COV)
    x = MU + torch.randn(n, 2, generator=g, dtype=torch.float64) @ chol.T
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / n  # the sample's own covariance: the empirical optimum
    return x, mean, cov


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(2, 2, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))

    def forward(self, x, t=None):
        return x @ self.w.T + self.b


def _train(loss_fn, steps, lr):
    model = Linear()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model).backward()
        opt.step()
        sched.step()
    return model


def _assert_score(model, mean, cov, tol):
    # The score of N(m, C) is −C⁻¹(x − m): W = −C⁻¹, b = C⁻¹m.
    prec = torch.linalg.inv(cov)
    torch.testing.assert_close(model.w.detach(), -prec, rtol=0, atol=tol)
    torch.testing.assert_close(model.b.detach(), prec @ mean, rtol=0, atol=tol)


def test_implicit_score_matching_trains_to_the_score():
    x, mean, cov = _gaussian_data()
    model = _train(lambda m: losses.implicit_score_matching(m, x), 400, 0.05)
    # A quadratic loss whose minimiser is the sample's own score: tight.
    _assert_score(model, mean, cov, 2e-3)


def test_sliced_score_matching_trains_to_the_score():
    x, mean, cov = _gaussian_data()
    g = torch.Generator().manual_seed(1)
    model = _train(lambda m: losses.sliced_score_matching(m, x, n_projections=4, variance_reduction=True,
                                                          generator=g), 400, 0.05)
    # Fresh projections each step: the gradient noise of vvᵀ over 32768 draws
    # (≈ 0.006 per entry), reduced further by the decaying step size.
    _assert_score(model, mean, cov, 0.03)


def test_ncsn_dsm_trains_to_the_perturbed_score():
    x, mean, cov = _gaussian_data()
    sigma = 0.3
    g = torch.Generator().manual_seed(2)
    model = _train(lambda m: losses.ncsn(m, x, torch.tensor([sigma], dtype=torch.float64), generator=g), 400, 0.05)
    # DSM's minimiser is the score of the data convolved with N(0, σ²I).
    _assert_score(model, mean, cov + sigma**2 * torch.eye(2, dtype=torch.float64), 0.03)
