"""Mixture scores (issue: empirical and analytic scores): the fused kernel
against a float64 cdist–softmax–matmul twin, its gradient, and the score
functions built on it (KDE, Gaussian mixture, ideal denoiser)."""

import math

import pytest
import torch
from torch.library import opcheck

import scorekern
from scorekern import losses, ops, reference, samplers, scores
from scorekern.sde import VESDE, VPSDE, SubVPSDE, ncsn_sigmas

from conftest import requires_compiled
from exact_scores import nearest_component_fractions

pytestmark = requires_compiled

DIMS = [1, 2, 3, 64, 130]  # the exact form (d ≤ 8) and the expanded form with matrix products
CENTRES = [1, 37, 1037]    # one centre; sizes that are no multiple of any tile (8, 512)
# float32 against the float64 twin, relative to the largest entry: the
# expanded form's logits carry float32 rounding of x·μ/h².
TOL32 = {1: 2e-5, 2: 2e-5, 3: 2e-5, 64: 2e-4, 130: 2e-4}


def _inputs(d, n, m=45, *, seed=0, spread=1.5):
    g = torch.Generator().manual_seed(seed + 97 * d + n)
    x = torch.randn(m, d, generator=g, dtype=torch.float64) * spread
    centers = torch.randn(n, d, generator=g, dtype=torch.float64)
    log_weights = torch.randn(n, generator=g, dtype=torch.float64)
    per_query = torch.rand(m, generator=g, dtype=torch.float64) + 0.4
    return x, centers, log_weights, per_query


def _twin(x, centers, h, lw):
    return (reference.mixture_score(x, centers, h, log_weights=lw),
            reference.mixture_log_prob(x, centers, h, log_weights=lw))


def _close(got, want, rel):
    scale = want.abs().max().clamp_min(1e-30)
    err = ((got.double() - want).abs().max() / scale).item()
    assert err <= rel, f"relative error {err:.2e} > {rel:.0e}"


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("n", CENTRES)
@pytest.mark.parametrize("weighted", [False, True], ids=["equal", "log_weights"])
@pytest.mark.parametrize("bandwidth", [0.3, 2.0, "per_query"])
def test_score_and_log_prob_equal_the_float64_twin(d, n, weighted, bandwidth):
    x, centers, lw, per_query = _inputs(d, n)
    lw = lw if weighted else None
    h = per_query if bandwidth == "per_query" else bandwidth
    want_score, want_lp = _twin(x, centers, h, lw)
    for dtype, rel in ((torch.float64, 1e-10), (torch.float32, TOL32[d])):
        cast = (lambda t: t.to(dtype)) if dtype == torch.float32 else (lambda t: t)
        hh = cast(h) if torch.is_tensor(h) else h
        lwd = None if lw is None else cast(lw)
        score = ops.mixture_score(cast(x), cast(centers), hh, log_weights=lwd)
        lp = ops.mixture_log_prob(cast(x), cast(centers), hh, log_weights=lwd)
        assert score.dtype == dtype and score.shape == x.shape
        assert lp.shape == (x.shape[0],)
        _close(score, want_score, rel)
        _close(lp, want_lp, rel)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sixteen_bit_inputs_compute_in_float32(dtype):
    x, centers, lw, _ = _inputs(3, 300)
    x, centers = x.to(dtype), centers.to(dtype)
    want = reference.mixture_score(x.double(), centers.double(), 0.8, log_weights=lw)
    got = ops.mixture_score(x, centers, 0.8, log_weights=lw.float())
    assert got.dtype == dtype
    _close(got, want, 1e-2)


@pytest.mark.parametrize("d", [2, 64])
def test_leading_dimensions_and_per_query_bandwidth_shapes(d):
    x, centers, _, per_query = _inputs(d, 50, m=12)
    x3, h3 = x.reshape(3, 4, d), per_query.reshape(3, 4)
    got = ops.mixture_score(x3, centers, h3)
    assert got.shape == (3, 4, d)
    torch.testing.assert_close(got.reshape(12, d), ops.mixture_score(x, centers, per_query))
    torch.testing.assert_close(ops.mixture_log_prob(x3, centers, h3).reshape(12),
                               ops.mixture_log_prob(x, centers, per_query))


@pytest.mark.parametrize("d", [2, 64])
def test_far_queries_are_finite_and_exact(d):
    # Queries thousands of bandwidths from every centre: every weight
    # underflows unless the softmax is shifted; the score is then the pull
    # towards the nearest centres.
    x, centers, lw, _ = _inputs(d, 200, m=20)
    x = x + 1e3 * torch.randn(20, d, dtype=torch.float64).sign()
    for dtype, rel in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
        score = ops.mixture_score(x.to(dtype), centers.to(dtype), 0.05, log_weights=lw.to(dtype))
        lp = ops.mixture_log_prob(x.to(dtype), centers.to(dtype), 0.05, log_weights=lw.to(dtype))
        assert torch.isfinite(score).all() and torch.isfinite(lp).all()
        want_score, want_lp = _twin(x, centers, 0.05, lw)
        _close(score, want_score, rel)
        _close(lp, want_lp, rel)


def test_zero_weight_centres_are_ignored():
    x, centers, lw, _ = _inputs(2, 40)
    lw[::2] = -math.inf
    got = ops.mixture_score(x, centers, 0.5, log_weights=lw)
    want = reference.mixture_score(x, centers[1::2], 0.5, log_weights=lw[1::2])
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("d", [1, 2, 9, 64])
def test_gradcheck_in_float64(d):
    x, centers, lw, per_query = _inputs(d, 29, m=6)
    x.requires_grad_(True)
    h = per_query[:6]
    assert torch.autograd.gradcheck(lambda x: ops.mixture_score(x, centers, h, log_weights=lw), (x,))
    assert torch.autograd.gradcheck(lambda x: ops.mixture_log_prob(x, centers, 0.7, log_weights=lw), (x,))


@pytest.mark.parametrize("d", [2, 64, 130])
def test_float32_gradient_equals_the_twins(d):
    x, centers, lw, per_query = _inputs(d, 600, m=40)
    g = torch.randn(40, d, dtype=torch.float64)
    xd = x.clone().requires_grad_(True)
    (want,) = torch.autograd.grad(reference.mixture_score(xd, centers, per_query, log_weights=lw), xd, g)
    xf = x.float().requires_grad_(True)
    score = ops.mixture_score(xf, centers.float(), per_query.float(), log_weights=lw.float())
    (got,) = torch.autograd.grad(score, xf, g.float())
    _close(got, want, 5e-4 if d > 8 else 5e-5)
    # and the log-density's gradient is the score
    xf.grad = None
    ops.mixture_log_prob(xf, centers.float(), per_query.float(), log_weights=lw.float()).sum().backward()
    torch.testing.assert_close(xf.grad, score.detach())


def test_divergence_of_a_gmm_score_matches_its_closed_form():
    # tr J = (tr Cov_w(μ)/h² − d)/h², through Hutchinson-free exact traces.
    from scorekern import estimators
    x, centers, lw, _ = _inputs(3, 17, m=5)
    h = 0.9
    div = estimators.exact_trace(lambda x: ops.mixture_score(x, centers, h, log_weights=lw), x)
    w = torch.softmax(lw - torch.cdist(x, centers).square() / (2 * h * h), 1)
    mean = w @ centers
    var = (w @ centers.square()).sum(1) - mean.square().sum(1)
    torch.testing.assert_close(div, (var / h**2 - 3) / h**2)


@pytest.mark.parametrize("d", [2, 64])
def test_opcheck(d):
    x, centers, lw, per_query = _inputs(d, 70, m=9)
    x, centers, lw, per_query = x.float(), centers.float(), lw.float(), per_query.float()
    op = torch.ops.scorekern.mixture_score
    opcheck(op, (x, centers, None, 0.8, None, True))
    opcheck(op, (x.requires_grad_(True), centers, per_query, 1.0, lw, True))
    opcheck(op, (x.detach(), centers, None, 0.8, lw, False))
    score, lse = op(x.detach(), centers, None, 0.8, lw, True)
    opcheck(torch.ops.scorekern.mixture_score_backward,
            (torch.randn_like(x), x.detach(), centers, None, 0.8, lw, score, lse))


def test_compiles_fullgraph():
    x, centers, lw, _ = _inputs(2, 100)
    x, centers, lw = x.float(), centers.float(), lw.float()

    def f(x):
        return ops.mixture_score(x, centers, 0.6, log_weights=lw) * 2.0

    torch._dynamo.reset()
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(x)
    torch.testing.assert_close(got, f(x))


def test_huge_query_and_centre_counts_run_without_the_matrix():
    # M = N = 65536, d = 2: the twin's [M, N] float32 matrix alone is 16 GiB.
    g = torch.Generator().manual_seed(3)
    x = torch.randn(65536, 2, generator=g)
    centers = torch.randn(65536, 2, generator=g)
    score = ops.mixture_score(x, centers, 0.2)
    assert torch.isfinite(score).all()
    rows = torch.randint(0, 65536, (64,), generator=g)
    want = reference.mixture_score(x[rows].double(), centers.double(), 0.2)
    _close(score[rows], want, 2e-5)


def test_rows_do_not_depend_on_the_batch():
    x, centers, lw, _ = _inputs(64, 300, m=50)
    whole = ops.mixture_score(x.float(), centers.float(), 0.9, log_weights=lw.float())
    part = ops.mixture_score(x[17:20].float(), centers.float(), 0.9, log_weights=lw.float())
    torch.testing.assert_close(part, whole[17:20])


def test_clear_errors():
    x, centers, lw, _ = _inputs(2, 10)
    with pytest.raises(ValueError, match="centers must have shape"):
        ops.mixture_score(x, centers[:, :1], 1.0)
    with pytest.raises(ValueError, match="at least one centre"):
        ops.mixture_score(x, centers[:0], 1.0)
    with pytest.raises(TypeError, match="centers must have x's dtype"):
        ops.mixture_score(x, centers.float(), 1.0)
    with pytest.raises(ValueError, match="bandwidth must be positive"):
        ops.mixture_score(x, centers, 0.0)
    with pytest.raises(ValueError, match="bandwidth must be positive"):
        ops.mixture_score(x, centers, -torch.ones(x.shape[0], dtype=torch.float64))
    with pytest.raises(ValueError, match="bandwidth must be"):
        ops.mixture_score(x, centers, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="log_weights must have shape"):
        ops.mixture_score(x, centers, 1.0, log_weights=lw[:3])
    with pytest.raises(RuntimeError, match="differentiable with respect to x only"):
        ops.mixture_score(x, centers.clone().requires_grad_(True), 1.0)
    with pytest.raises(RuntimeError, match="centers must have shape"):
        torch.ops.scorekern.mixture_score(x, centers[:, :1], None, 1.0, None, True)


def test_twin_backend_gives_the_same_values():
    x, centers, lw, per_query = _inputs(64, 100)
    fused = ops.mixture_score(x, centers, per_query, log_weights=lw)
    with scorekern.use_backend("torch"):
        twin = ops.mixture_score(x, centers, per_query, log_weights=lw)
        twin_lp = ops.mixture_log_prob(x, centers, per_query, log_weights=lw)
    torch.testing.assert_close(fused, twin)
    torch.testing.assert_close(ops.mixture_log_prob(x, centers, per_query, log_weights=lw), twin_lp)


# ---------------------------------------------------------------------------
# The score functions built on it

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
