"""Exact log-likelihoods through the probability-flow ODE (Song et al. 2021, §4.3).

Along ``dx/dt = v(x, t) = f(t)·x − ½g(t)²·s(x, t)`` the log-density changes as
``d log pₜ(x(t))/dt = −∇·v``, so

    log p_eps(x) = log p_T(x(T)) + ∫_eps^T ∇·v(x(t), t) dt,

with ``x(T)`` the end of the ODE started at ``x`` and ``p_T`` taken as the
SDE's prior. The divergence is ``f(t)·D − ½g(t)²·∇·s`` (D the size of a row,
the drift being linear in x for VE, VP and sub-VP), and ``∇·s`` comes from
Hutchinson's estimator with probes drawn once per call (as the reference
does) or exactly (one backward pass per dimension, for small D). The drift
``v`` is one fused update per evaluation.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from . import estimators, ops
from .sde import SDE

__all__ = ["log_likelihood", "bits_per_dim", "time_grid", "METHODS", "TRACES"]

METHODS = ("rk4", "heun", "rk45")
TRACES = ("rademacher", "gaussian", "exact")


def _acc_dtype(x):
    return torch.promote_types(x.dtype, torch.float32)


class _Dynamics:
    """The ODE's right-hand side for (x, log-density change), and a count of evaluations."""

    def __init__(self, score_fn, sde: SDE, x, trace, probes):
        self.score_fn, self.sde, self.trace, self.probes = score_fn, sde, trace, probes
        self.rows = x.shape[0]
        self.dim = x[0].numel()
        self.evaluations = 0

    def __call__(self, x, t: float):
        self.evaluations += 1
        vec_t = torch.full((self.rows,), t, dtype=x.dtype, device=x.device)
        fn = lambda z: self.score_fn(z, vec_t)  # noqa: E731
        if self.trace == "exact":
            score, div_s = estimators.exact_trace(fn, x, return_output=True)
        else:
            score, div_s = estimators.hutchinson_trace(fn, x, probes=self.probes, return_output=True)
        tt = torch.tensor([t], dtype=torch.float64)
        phi = float(self.sde.drift_coef(tt))
        g2 = float(self.sde.diffusion(tt) ** 2)
        v = ops.noisy_update(x, score.detach().to(x.dtype), phi, -0.5 * g2, 0.0)
        div_v = phi * self.dim - 0.5 * g2 * div_s.detach().to(_acc_dtype(x))
        return v, div_v


def time_grid(sde: SDE, eps: float, n_steps: int) -> torch.Tensor:
    """The fixed-step methods' times from eps to T: uniform in
    ``u(t) = t/T + ln σ(t)/ln(σ(T)/σ(eps))`` (both terms normalised), so the
    steps are short where either the time or the noise level moves fast. Near
    eps a VP or sub-VP σ(t) grows like √t and the ODE is stiff for sharp
    densities; a grid uniform in t alone spends its steps where nothing
    happens (for VE, ln σ is linear in t and the grid is uniform)."""
    fine = torch.linspace(eps, sde.T, 20001, dtype=torch.float64)
    log_sigma = sde.std(fine).log()
    u = (fine - eps) / (sde.T - eps) + (log_sigma - log_sigma[0]) / (log_sigma[-1] - log_sigma[0])
    targets = torch.linspace(0, float(u[-1]), n_steps + 1, dtype=torch.float64)
    idx = torch.searchsorted(u, targets).clamp(1, len(u) - 1)
    lo, hi = u[idx - 1], u[idx]
    w = ((targets - lo) / (hi - lo)).clamp(0, 1)
    ts = fine[idx - 1] + w * (fine[idx] - fine[idx - 1])
    ts[0], ts[-1] = eps, sde.T
    return ts


def _fixed_steps(f: _Dynamics, x, ts, method):
    delta = torch.zeros(x.shape[0], dtype=_acc_dtype(x), device=x.device)
    for t0, t1 in zip(ts[:-1], ts[1:]):
        h = t1 - t0
        k1, d1 = f(x, t0)
        if method == "heun":
            k2, d2 = f(x + h * k1, t1)
            x = x + (0.5 * h) * (k1 + k2)
            delta = delta + (0.5 * h) * (d1 + d2)
            continue
        k2, d2 = f(x + (0.5 * h) * k1, t0 + 0.5 * h)
        k3, d3 = f(x + (0.5 * h) * k2, t0 + 0.5 * h)
        k4, d4 = f(x + h * k3, t1)
        x = x + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
        delta = delta + (h / 6) * (d1 + 2 * d2 + 2 * d3 + d4)
    return x, delta


def _adaptive(f: _Dynamics, x, t0, t1, rtol, atol):
    try:
        from scipy import integrate
    except ImportError:
        raise ImportError("method='rk45' needs SciPy (pip install scipy); or use method='rk4'") from None
    import numpy as np

    shape, rows, dtype, device = x.shape, x.shape[0], x.dtype, x.device

    def rhs(t, state):
        z = torch.from_numpy(state[:-rows]).reshape(shape).to(device=device, dtype=dtype)
        v, div_v = f(z, float(t))
        return np.concatenate([v.detach().double().cpu().reshape(-1).numpy(),
                               div_v.double().cpu().numpy()])

    start = np.concatenate([x.detach().double().cpu().reshape(-1).numpy(), np.zeros(rows)])
    sol = integrate.solve_ivp(rhs, (t0, t1), start, rtol=rtol, atol=atol, method="RK45")
    if not sol.success:
        raise RuntimeError(f"rk45 did not reach T: {sol.message}")
    end = torch.from_numpy(sol.y[:, -1])
    z = end[:-rows].reshape(shape).to(device=device, dtype=dtype)
    return z, end[-rows:].to(device=device, dtype=_acc_dtype(x))


def log_likelihood(score_fn: Callable, sde: SDE, x: torch.Tensor, *, trace: str = "rademacher",
                   n_probes: int = 1, method: str = "rk4", n_steps: int = 100, eps: float = 1e-5,
                   rtol: float = 1e-5, atol: float = 1e-5, generator=None, return_latent: bool = False):
    """``log p(x)`` in nats per row (a ``[B]`` tensor) of the model whose score is
    ``score_fn(x, t)``, through the probability-flow ODE from ``eps`` to T.

    ``trace``: ``"rademacher"`` or ``"gaussian"`` (Hutchinson, ``n_probes``
    probes drawn once per call from ``generator``; unbiased) or ``"exact"``.
    ``method``: ``"rk4"`` or ``"heun"`` (``n_steps`` fixed steps, in torch on
    x's device) or ``"rk45"`` (SciPy's adaptive Runge–Kutta with ``rtol`` and
    ``atol``, 1e-5 as in the reference; the state makes a round trip through
    the host at every evaluation). ``return_latent=True`` also returns x(T).
    Accumulates in x's dtype (float32 at least); pass float64 data for
    tighter values.
    """
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point or x.dim() < 2:
        raise TypeError("x must be a floating-point tensor [B, ...] with a batch dimension")
    if trace not in TRACES:
        raise ValueError(f"trace must be one of {', '.join(TRACES)}; got {trace!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if not 0 < eps < sde.T:
        raise ValueError(f"eps must lie in (0, T), got {eps}")
    if method != "rk45" and (isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1):
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
    if trace != "exact" and (isinstance(n_probes, bool) or not isinstance(n_probes, int) or n_probes < 1):
        raise ValueError(f"n_probes must be a positive int, got {n_probes!r}")
    x = x.detach()
    probes = None
    if trace != "exact":
        probes = torch.stack([estimators.probes_like(x, trace, generator=generator) for _ in range(n_probes)])
    f = _Dynamics(score_fn, sde, x, trace, probes)
    with torch.no_grad():
        if method == "rk45":
            z, delta = _adaptive(f, x, eps, sde.T, rtol, atol)
        else:
            ts = time_grid(sde, eps, n_steps).tolist()
            z, delta = _fixed_steps(f, x, ts, method)
        logp = sde.prior_logp(z).to(delta.dtype) + delta
    return (logp, z) if return_latent else logp


def bits_per_dim(score_fn: Callable, sde: SDE, x: torch.Tensor, *, n_bins: int = 256, centered: bool = False,
                 dequantize: bool = True, generator=None, **kwargs):
    """Bits per dimension of discrete data (images): a ``[B]`` tensor.

    ``x`` holds values ``k/(n_bins − 1)`` in [0, 1] (as ``ToTensor`` gives for
    8-bit images). With ``dequantize`` (the default) each value becomes
    ``(k + u)/n_bins``, u ~ U(0, 1) from ``generator``, so the result is an
    upper bound on the discrete model's bits per dimension (uniform
    dequantisation); without it the continuous density is evaluated at the
    grid points themselves, as the published reference does, which can give
    negative values (yang-song/score_sde#24). The model sees the data in [0,
    1], or with ``centered`` in [−1, 1]; the change of variables to bins of
    width one is added: ``bpd = −log p/(D ln 2) − log2(scale) + log2(n_bins)``
    (scale 2 when centered, else 1). Other arguments go to
    :func:`log_likelihood`.
    """
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point or x.dim() < 2:
        raise TypeError("x must be a floating-point tensor [B, ...] of values in [0, 1]")
    if n_bins < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins}")
    if bool(((x < 0) | (x > 1)).any()):
        raise ValueError("x must hold values in [0, 1] (k/(n_bins - 1) for k = 0, ..., n_bins - 1)")
    if dequantize:
        k = torch.round(x * (n_bins - 1))
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = (k + u) / n_bins
    scale = 2.0 if centered else 1.0
    model_x = x * 2 - 1 if centered else x
    logp = log_likelihood(score_fn, sde, model_x, generator=generator, **kwargs)
    dim = x[0].numel()
    return -logp / (dim * math.log(2)) - math.log2(scale) + math.log2(n_bins)
