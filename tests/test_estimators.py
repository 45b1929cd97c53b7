"""Hutchinson's estimator, the exact trace and the sliced score matching loss,
checked against exact values for a linear score s(x) = −Ax."""

import math

import pytest
import torch

from scorekern import estimators, losses, ops

from conftest import requires_compiled

pytestmark = requires_compiled

D = 5


def _matrix(seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(D, D, generator=g, dtype=torch.float64)
    return m @ m.T / D + torch.eye(D, dtype=torch.float64)  # symmetric positive definite


def _batch(n, seed=1):
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_probes_have_identity_second_moment():
    like = torch.empty(20000, D, dtype=torch.float64)
    for kind in estimators.PROBES:
        v = estimators.probes_like(like, kind, generator=torch.Generator().manual_seed(0))
        second = v.T @ v / v.shape[0]
        # Each entry is a mean of 20000 terms of variance ≤ 2 (Gaussian diagonal).
        torch.testing.assert_close(second, torch.eye(D, dtype=torch.float64), rtol=0, atol=5 * math.sqrt(2 / 20000))
    sphere = estimators.probes_like(like, "sphere", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sphere.norm(dim=1), torch.full((20000,), math.sqrt(D), dtype=torch.float64))
    rad = estimators.probes_like(like, "rademacher", generator=torch.Generator().manual_seed(0))
    assert set(rad.unique().tolist()) == {-1.0, 1.0}


def test_exact_trace():
    a = _matrix()
    x = _batch(7)
    torch.testing.assert_close(estimators.exact_trace(lambda x: -x @ a.T, x), torch.full((7,), -a.trace().item(),
                                                                                         dtype=torch.float64))
    w = torch.randn(D, D, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def fn(x):
        return torch.tanh(x @ w.T) * x

    want = torch.stack([torch.autograd.functional.jacobian(fn, r.unsqueeze(0)).squeeze().diagonal().sum()
                        for r in x])
    torch.testing.assert_close(estimators.divergence(fn, x, method="exact"), want)


@pytest.mark.parametrize("kind", ["rademacher", "gaussian", "sphere"])
def test_hutchinson_is_unbiased(kind):
    a = _matrix()
    n = 20000
    est = estimators.hutchinson_trace(lambda x: -x @ a.T, _batch(n), kind=kind,
                                      generator=torch.Generator().manual_seed(3))
    assert est.shape == (n,) and not est.requires_grad
    # Var(vᵀAv) for symmetric A: 2Σ_{i≠j}A_ij² (Rademacher), 2‖A‖_F² (Gaussian;
    # the sphere's is smaller). Tolerance: five standard errors of the mean.
    off = (a**2).sum() - (a.diagonal() ** 2).sum()
    var = 2 * off if kind == "rademacher" else 2 * (a**2).sum()
    assert abs(est.mean() + a.trace()) < 5 * math.sqrt(var / n)
    if kind == "rademacher":  # the empirical variance agrees with the formula
        assert abs(est.var() / var - 1) < 0.1


def test_hutchinson_with_given_probes_and_output():
    a = _matrix()
    x = _batch(6)
    probes = torch.randn(3, 6, D, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    out, est = estimators.hutchinson_trace(lambda x: -x @ a.T, x, probes=probes, return_output=True)
    want = -torch.einsum("kbi,ij,kbj->b", probes, a, probes) / 3
    torch.testing.assert_close(est, want)
    torch.testing.assert_close(out, -x @ a.T)


def test_hutchinson_create_graph_trains():
    w = torch.zeros(D, D, dtype=torch.float64, requires_grad=True)
    est = estimators.hutchinson_trace(lambda x: x @ w.T, _batch(4), n_probes=2, create_graph=True,
                                      generator=torch.Generator().manual_seed(0))
    est.sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["rademacher", "gaussian", "sphere"])
@pytest.mark.parametrize("variance_reduction", [False, True])
def test_sliced_loss_is_unbiased_for_implicit_score_matching(kind, variance_reduction):
    a = _matrix()
    n = 20000
    x = _batch(n)

    def model(x):
        return -x @ a.T

    exact = losses.implicit_score_matching(model, x)
    torch.testing.assert_close(exact, -a.trace() + 0.5 * (x @ a.T).pow(2).sum(1).mean())
    # The per-sample terms with the probes the loss draws (same generator seed).
    v = estimators.probes_like(x, kind, generator=torch.Generator().manual_seed(5))
    s = model(x)
    terms = ops.sliced_score_terms(s, -v @ a, v, variance_reduction=variance_reduction)
    got = losses.sliced_score_matching(model, x, kind=kind, variance_reduction=variance_reduction,
                                       generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, terms.mean())
    # Unbiased: within five standard errors, the variance estimated from the terms.
    assert abs(got - exact) < 5 * terms.std() / math.sqrt(n)


def test_sliced_projections_average():
    x = _batch(8)
    w = torch.randn(D, D, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lin = lambda x: x @ w.T  # noqa: E731
    got = losses.sliced_score_matching(lin, x, n_projections=4, generator=torch.Generator().manual_seed(1))
    x_rep = x.repeat(4, 1)
    v = estimators.probes_like(x_rep, "rademacher", generator=torch.Generator().manual_seed(1))
    terms = (v * (v @ w)).sum(1) + 0.5 * (v * lin(x_rep)).sum(1) ** 2
    torch.testing.assert_close(got, terms.mean())


def test_errors():
    x = _batch(4)
    with pytest.raises(ValueError, match="shape"):
        estimators.hutchinson_trace(lambda x: x[:, :2], x)
    with pytest.raises(ValueError, match="kind"):
        estimators.hutchinson_trace(lambda x: x, x, kind="uniform")
    with pytest.raises(ValueError, match="n_probes"):
        estimators.hutchinson_trace(lambda x: x, x, n_probes=0)
    with pytest.raises(ValueError, match="probes"):
        estimators.hutchinson_trace(lambda x: x, x, probes=torch.ones(2, 3, D, dtype=torch.float64))
    with pytest.raises(ValueError, match="method"):
        estimators.divergence(lambda x: x, x, method="approx")
    with pytest.raises(ValueError, match="n_projections"):
        losses.sliced_score_matching(lambda x: x, x, n_projections=0)
