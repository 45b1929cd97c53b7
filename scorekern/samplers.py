"""Samplers for score-based models, each step one fused affine update.

Every predictor and corrector step is ``x' = a·x + b·s + c·z`` for
coefficients that depend only on the time (DESIGN §1, the table of
``(a, b, c)``), so each step computes its coefficients and makes one call to
:func:`scorekern.ops.noisy_update` (or :func:`scorekern.ops.snr_langevin_step`
for the signal-to-noise corrector, whose step depends on the data).

Two layers:

- one step each (:mod:`scorekern.steps`, exported here too),
  ``step(sde, x, score, t, ..., *, noise=None, generator=None, row_ids=None)
  -> (x, x_mean)`` with ``t`` a ``[B]`` tensor: the formulas of the
  published reference (``score_sde``'s ``sampling.py``), value for value
  when given the same noise;
- complete samplers over a user's ``score_fn(x, t)`` (this module). The time
  grid and every step's coefficients are computed once, on the CPU, before
  the loop, so a step launches nothing but the score function and one fused
  kernel (two passes for the signal-to-noise corrector), and nothing in the
  loop waits for the device.

Noise comes from scorekern's stream: ``generator`` makes a run reproducible,
``row_ids`` pin each sample's noise (the prior draw included) to its id, so
a batch split across processes samples what one process sampling the whole
batch would, as long as no step couples the samples: the Langevin
corrector's default ``norms="batch"`` (the published rule) sets one step
size from the whole batch's norms; ``norms="row"`` keeps samples apart.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from tqdm.auto import tqdm

from . import ops
from .ops._checks import like_x
from .sde import SDE
from . import steps
from .steps import _ald_step, ancestral_coefficients, corrector_alpha, euler_maruyama_coefficients, \
    ou_reverse_coefficients, reverse_diffusion_coefficients, reverse_diffusion_step

# One step of each sampler (scorekern.steps), exported here too.
globals().update({name: getattr(steps, name) for name in steps.__all__})
__all__ = steps.__all__ + ["langevin", "annealed_langevin", "euler_maruyama", "pc_sampler", "ode_sampler",
                           "ancestral", "inpaint", "PREDICTORS", "CORRECTORS"]


# ---------------------------------------------------------------------------
# Complete samplers


def _predictor_table(name, sde: SDE, ts: torch.Tensor, probability_flow: bool):
    """Per-step (a, b, c) as Python floats, from the CPU time grid."""
    if name == "euler_maruyama":
        coefs = euler_maruyama_coefficients(sde, ts, -1.0 / sde.N, probability_flow)
    elif name == "reverse_diffusion":
        coefs = reverse_diffusion_coefficients(sde, ts, probability_flow)
    elif name == "ancestral":
        coefs = ancestral_coefficients(sde, ts)
    elif name == "ou_reverse":
        coefs = ou_reverse_coefficients(sde, ts)
    else:
        raise ValueError(f"predictor must be one of {', '.join(map(repr, PREDICTORS))} or None, got {name!r}")
    return [tuple(row) for row in torch.stack(coefs, 1).tolist()]


PREDICTORS = ("euler_maruyama", "reverse_diffusion", "ancestral", "ou_reverse")
CORRECTORS = ("langevin", "ald")


class _Loop:
    """The bookkeeping every sampler shares: progress bar, callback, trajectory."""

    def __init__(self, n, desc, progress, callback, return_steps):
        self.steps = tqdm(range(n), desc=desc, disable=not progress, leave=False)
        self.callback = callback
        self.keep = None if return_steps is None else {int(i) % n if n else int(i) for i in return_steps}
        self.trajectory = {}

    def after(self, i, t, x, x_mean):
        if self.callback is not None:
            self.callback(i, t, x, x_mean)
        if self.keep is not None and i in self.keep:
            self.trajectory[i] = x.clone()

    def result(self, x):
        return x if self.keep is None else (x, self.trajectory)


def _check_score_fn(score_fn):
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")


def _init(sde, shape, x_init, generator, row_ids, device, dtype):
    if x_init is not None:
        return x_init.clone()
    return sde.prior_sampling(tuple(shape), generator=generator, row_ids=row_ids, device=device, dtype=dtype)


def _check_pc(sde, corrector, eps, n_corrector_steps):
    if corrector is not None and corrector not in CORRECTORS:
        raise ValueError(f"corrector must be one of {', '.join(map(repr, CORRECTORS))} or None, got {corrector!r}")
    if not 0 <= eps < sde.T:
        raise ValueError(f"eps must lie in [0, T), got {eps}")
    if n_corrector_steps < 0:
        raise ValueError(f"n_corrector_steps must be non-negative, got {n_corrector_steps}")


def _corrector_step(name, sde, ts, snr, norms, generator, row_ids):
    """The corrector's step at grid index i, ``step(i, x, score, return_mean)``
    writing into x (its coefficients computed once, on the CPU), or None."""
    if name == "langevin":
        alphas = corrector_alpha(sde, ts).tolist()
        return lambda i, x, score, return_mean: ops.snr_langevin_step(
            x, score, snr, alpha=alphas[i], norms=norms, generator=generator, row_ids=row_ids, out=x,
            return_mean=return_mean)
    if name == "ald":
        steps = _ald_step(sde, ts, snr).tolist()
        return lambda i, x, score, return_mean: ops.noisy_update(
            x, score, 1.0, steps[i], math.sqrt(2.0 * steps[i]), generator=generator, row_ids=row_ids, out=x,
            return_mean=return_mean)
    return None


@torch.no_grad()
def pc_sampler(score_fn: Callable, sde: SDE, shape, *, predictor="reverse_diffusion", corrector="langevin",
               snr: float = 0.16, n_corrector_steps: int = 1, norms: str = "batch", eps: float = 1e-3,
               denoise: bool = True, probability_flow: bool = False, generator=None, row_ids=None,
               device=None, dtype=torch.float32, x_init=None, progress: bool = True,
               callback: Callable | None = None, return_steps: Iterable[int] | None = None):
    """Predictor–corrector sampling (Song et al. 2021, Algorithm 1 with the
    reference's defaults): from the prior at T to ``eps`` over N steps, at each
    time the corrector (``"langevin"`` or ``"ald"``, or None) then the
    predictor (``"reverse_diffusion"``, ``"euler_maruyama"``, ``"ancestral"``,
    ``"ou_reverse"``, or None). ``score_fn(x, t)`` gets ``t`` as a ``[B]``
    tensor. Returns the last mean (``denoise=True``) or sample; with
    ``return_steps``, also ``{step: x}`` after those steps.

    On CUDA the whole run can be captured in a CUDA graph when ``score_fn``
    can (``generator=None``: noise from the default CUDA generator's
    graph-safe state, fresh at each replay and equal to an eager run's from
    the same state).
    """
    _check_score_fn(score_fn)
    _check_pc(sde, corrector, eps, n_corrector_steps)
    device = torch.device(device) if device is not None else (x_init.device if x_init is not None else torch.device("cpu"))
    x = _init(sde, shape, x_init, generator, row_ids, device, dtype)
    batch = x.shape[0]
    ts = torch.linspace(sde.T, eps, sde.N)  # the reference's grid, in float32 on the CPU
    table = _predictor_table(predictor, sde, ts, probability_flow) if predictor is not None else None
    correct = _corrector_step(corrector, sde, ts, snr, norms, generator, row_ids)
    # The same grid made on the device (no host-to-device copy, which CUDA graph capture forbids).
    t_dev = torch.linspace(sde.T, eps, sde.N, device=device).to(x.dtype)
    loop = _Loop(sde.N, "pc_sampler", progress, callback, return_steps)
    x_mean = x
    last = sde.N - 1
    for i in loop.steps:
        vec_t = t_dev[i].expand(batch)
        want_mean = callback is not None or i == last
        for _ in range(n_corrector_steps if correct else 0):
            res = correct(i, x, score_fn(x, vec_t), want_mean)
            x, x_mean = res if want_mean else (res, x)
        if table is not None:
            a, b, c = table[i]
            res = ops.noisy_update(x, score_fn(x, vec_t), a, b, c, generator=generator, row_ids=row_ids, out=x,
                                   return_mean=want_mean)
            x, x_mean = res if want_mean else (res, x)
        loop.after(i, float(ts[i]), x, x_mean)
    return loop.result(x_mean if denoise else x)


def euler_maruyama(score_fn, sde, shape, *, eps=1e-3, probability_flow=False, denoise=True, **kwargs):
    """Reverse-time Euler–Maruyama sampling: :func:`pc_sampler` with that predictor and no corrector."""
    return pc_sampler(score_fn, sde, shape, predictor="euler_maruyama", corrector=None, eps=eps,
                      probability_flow=probability_flow, denoise=denoise, **kwargs)


def ancestral(score_fn, sde, shape, *, eps=1e-3, denoise=True, **kwargs):
    """Ancestral sampling (VE, VP/DDPM): :func:`pc_sampler` with that predictor and no corrector."""
    return pc_sampler(score_fn, sde, shape, predictor="ancestral", corrector=None, eps=eps, denoise=denoise,
                      **kwargs)


@torch.no_grad()
def ode_sampler(score_fn: Callable, sde: SDE, shape, *, method: str = "euler", n_steps: int | None = None,
                eps: float = 1e-3, denoise: bool = False, generator=None, row_ids=None, device=None,
                dtype=torch.float32, x_init=None, progress: bool = True, callback=None, return_steps=None):
    """Sampling along the probability-flow ODE dx/dt = f − ½g²·s (Song et al.
    2021, eq. 13) from T to ``eps`` in ``n_steps`` (default N) steps of
    ``method`` ``"euler"`` or ``"heun"`` (two score evaluations a step).
    Noise is drawn only for the prior (and the optional final denoising
    step, a reverse-diffusion step's mean)."""
    _check_score_fn(score_fn)
    if method not in ("euler", "heun"):
        raise ValueError(f"method must be 'euler' or 'heun', got {method!r}")
    n_steps = sde.N if n_steps is None else int(n_steps)
    if n_steps < 1:
        raise ValueError(f"n_steps must be positive, got {n_steps}")
    device = torch.device(device) if device is not None else (x_init.device if x_init is not None else torch.device("cpu"))
    x = _init(sde, shape, x_init, generator, row_ids, device, dtype)
    batch = x.shape[0]
    ts = torch.linspace(sde.T, eps, n_steps + 1, dtype=torch.float64)
    h = (ts[1:] - ts[:-1]).tolist()
    phi = sde.drift_coef(ts).tolist()
    g2 = (sde.diffusion(ts) ** 2).tolist()
    t_dev = ts.to(device=device, dtype=x.dtype)
    loop = _Loop(n_steps, "ode_sampler", progress, callback, return_steps)
    for i in loop.steps:
        s1 = score_fn(x, t_dev[i].expand(batch))
        # Euler: x + h·(φx − ½g²s), no noise (c = 0 skips drawing it).
        x_euler = ops.noisy_update(x, s1, 1.0 + phi[i] * h[i], -0.5 * g2[i] * h[i], 0.0)
        if method == "heun":
            s2 = score_fn(x_euler, t_dev[i + 1].expand(batch))
            # x + h/2·(d1 + d2) = ½x + (½ + hφ'/2)·x_euler − (h g'²/4)·s2
            x = ops.noisy_update(x_euler, s2, 0.5 + 0.5 * h[i] * phi[i + 1], -0.25 * g2[i + 1] * h[i], 0.0).add_(x, alpha=0.5)
        else:
            x = x_euler
        loop.after(i, float(ts[i + 1]), x, x)
    if denoise:
        vec_t = torch.full((batch,), float(ts[-1]), device=device, dtype=torch.float32)
        _, x = reverse_diffusion_step(sde, x, score_fn(x, vec_t.to(x.dtype)), vec_t, generator=generator,
                                      row_ids=row_ids)
    return loop.result(x)


@torch.no_grad()
def langevin(score_fn: Callable, x: torch.Tensor, step_size: float, n_steps: int, *, generator=None,
             row_ids=None, progress: bool = True, callback=None, return_steps=None):
    """The unadjusted Langevin algorithm: n_steps of x ← x + τ·s(x) + √(2τ)·z.
    ``score_fn(x)`` is the score of the (fixed) target density."""
    _check_score_fn(score_fn)
    if n_steps < 0:
        raise ValueError(f"n_steps must be non-negative, got {n_steps}")
    x = x.clone()
    loop = _Loop(n_steps, "langevin", progress, callback, return_steps)
    for i in loop.steps:
        ops.langevin_step(x, score_fn(x), step_size, generator=generator, row_ids=row_ids, out=x)
        loop.after(i, None, x, x)
    return loop.result(x)


@torch.no_grad()
def annealed_langevin(score_fn: Callable, x: torch.Tensor, sigmas, *, step_lr: float = 2e-5,
                      n_steps_each: int = 100, denoise: bool = True, generator=None, row_ids=None,
                      progress: bool = True, callback=None, return_steps=None):
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1): for each
    noise level σᵢ (largest first), ``n_steps_each`` Langevin steps of size
    αᵢ = step_lr·σᵢ²/σ_L²; then, with ``denoise``, x + σ_L²·s(x, σ_L)
    (Song & Ermon 2020). ``score_fn(x, sigma)`` gets σ as a ``[B]`` tensor.
    Steps are numbered over all levels (level i, step j is i·n_steps_each + j).
    """
    _check_score_fn(score_fn)
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1).tolist()
    if not sigmas or min(sigmas) <= 0:
        raise ValueError("sigmas must be a non-empty sequence of positive noise levels")
    if step_lr <= 0 or n_steps_each < 1:
        raise ValueError(f"need step_lr > 0 and n_steps_each >= 1, got {step_lr}, {n_steps_each}")
    x = x.clone()
    batch = x.shape[0]
    levels = torch.tensor(sigmas, device=x.device, dtype=x.dtype)
    loop = _Loop(len(sigmas) * n_steps_each, "annealed_langevin", progress, callback, return_steps)
    for k in loop.steps:
        i = k // n_steps_each
        step = step_lr * (sigmas[i] / sigmas[-1]) ** 2
        ops.langevin_step(x, score_fn(x, levels[i].expand(batch)), step, generator=generator, row_ids=row_ids, out=x)
        loop.after(k, sigmas[i], x, x)
    if denoise:
        x = ops.noisy_update(x, score_fn(x, levels[-1].expand(batch)), 1.0, sigmas[-1] ** 2, 0.0)
    return loop.result(x)


@torch.no_grad()
def inpaint(score_fn: Callable, sde: SDE, y: torch.Tensor, mask, *, resample: int = 1,
            predictor="reverse_diffusion", corrector=None, snr: float = 0.16, n_corrector_steps: int = 1,
            norms: str = "batch", eps: float = 1e-3, generator=None, row_ids=None, progress: bool = True,
            callback: Callable | None = None, return_steps: Iterable[int] | None = None):
    """Conditional sampling by replacement (score_sde's inpainter), with
    RePaint's resampling (Lugmayr et al. 2022).

    ``y`` holds the observations (its shape is the samples' shape; the
    unobserved entries' values are ignored, NaN included), ``mask`` (bool or float,
    broadcast to ``y``) is 1 where observed. From the prior at T to ``eps``
    over N steps: at each time the corrector (optional; after each of its
    steps the observed entries are replaced by ``y`` noised to the time, as
    the reference does), then the predictor's update fused with the
    replacement of the observed entries by ``y`` noised to the next time,
    ``μ(t')·y + σ(t')·z`` (:func:`scorekern.ops.masked_update`, one kernel;
    the reference noises to the current time). With ``resample = r >
    1`` each step is made r times: after each but the last, the whole sample
    is noised back to the step's time by the forward SDE's transition,
    ``x ← (μ(t)/μ(t'))·x + √(σ(t)² − (μ(t)/μ(t'))²σ(t')²)·z``, so that the
    unobserved part is harmonised with the observations (one fused kernel).
    The last step's "next time" is the data itself (μ = 1, σ = 0), and the
    result is that step's mean: the observed entries equal ``y`` exactly.
    Other arguments as in :func:`pc_sampler`; ``callback`` and
    ``return_steps`` count the N steps (after their last repetition).
    """
    _check_score_fn(score_fn)
    if not isinstance(y, torch.Tensor) or not y.dtype.is_floating_point or y.dim() < 1:
        raise TypeError("y must be a floating-point tensor [B, ...]")
    if isinstance(resample, bool) or not isinstance(resample, int) or resample < 1:
        raise ValueError(f"resample must be a positive int, got {resample!r}")
    if predictor is None:
        raise ValueError("inpaint needs a predictor: the replacement is fused into its update")
    _check_pc(sde, corrector, eps, n_corrector_steps)
    mask = like_x(mask, y, "mask").contiguous()
    # Unobserved entries may hold anything (NaN for "unknown"): zero them, as
    # the kernel multiplies them by 0 and 0·NaN is NaN.
    y = torch.where(mask != 0, y, torch.zeros((), dtype=y.dtype, device=y.device)).contiguous()
    x = sde.prior_sampling(tuple(y.shape), generator=generator, row_ids=row_ids, device=y.device, dtype=y.dtype)
    batch = x.shape[0]
    ts = torch.linspace(sde.T, eps, sde.N)
    table = _predictor_table(predictor, sde, ts, False)
    # The observed part's marginal at the next time, and the jump back to this one.
    t64 = ts.double()
    mu_now, std_now = sde.mean_coef(t64), sde.std(t64)
    mu_next = torch.cat([mu_now[1:], torch.ones(1, dtype=torch.float64)])
    std_next = torch.cat([std_now[1:], torch.zeros(1, dtype=torch.float64)])
    back_a = mu_now / mu_next
    back_c = (std_now**2 - back_a**2 * std_next**2).clamp_min(0).sqrt()
    mu_now, std_now, mu_next, std_next, back_a, back_c = (
        v.tolist() for v in (mu_now, std_now, mu_next, std_next, back_a, back_c))
    correct = _corrector_step(corrector, sde, ts, snr, norms, generator, row_ids)
    t_dev = ts.to(device=y.device, dtype=y.dtype)
    loop = _Loop(sde.N, "inpaint", progress, callback, return_steps)
    x_mean = x
    for i in loop.steps:
        vec_t = t_dev[i].expand(batch)
        a, b, c = table[i]
        for u in range(resample):
            for _ in range(n_corrector_steps if correct else 0):
                correct(i, x, score_fn(x, vec_t), False)
                # As the reference: the observed part replaced by y noised to this time (a = 1, b = c = 0).
                ops.masked_update(x, y, y, mask, 1.0, 0.0, 0.0, mu_now[i], std_now[i], generator=generator,
                                  row_ids=row_ids, out=x)
            last = u == resample - 1
            res = ops.masked_update(x, score_fn(x, vec_t), y, mask, a, b, c, mu_next[i], std_next[i],
                                    generator=generator, row_ids=row_ids, out=x, return_mean=last)
            if not last:
                ops.noisy_update(x, y, back_a[i], 0.0, back_c[i], generator=generator, row_ids=row_ids, out=x)
        x, x_mean = res
        loop.after(i, float(ts[i]), x, x_mean)
    return loop.result(x_mean)
