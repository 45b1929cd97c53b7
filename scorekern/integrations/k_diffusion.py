"""k-diffusion's σ-space samplers and noise schedules on scorekern's fused kernels.

The functions have k-diffusion's names, signatures and behaviour
(``k_diffusion.sampling``, version 0.1.1): ``model(x, sigma, **extra_args)``
returns the denoised estimate, ``callback`` receives k-diffusion's dict
(``x``, ``i``, ``sigma``, ``sigma_hat``, ``denoised``), ``disable`` turns the
tqdm bar off, and ``s_churn``, ``s_tmin``, ``s_tmax``, ``s_noise``, ``eta``
mean what they mean there. Each step's arithmetic after a model call is one
fused kernel launch (:func:`scorekern.ops.noisy_update` or
:func:`scorekern.ops.multistep_update`), with the step's coefficients worked
out in float64 from the σ schedule.

Noise: by default it comes from scorekern's random stream, drawn inside the
kernels, so ``generator=`` and ``row_ids=`` (keyword arguments k-diffusion
does not have) give reproducible, batch-invariant samples that are the same
on CPU and GPU. A ``noise_sampler(sigma, sigma_next)`` passed in overrides
it and is called exactly where k-diffusion calls its own; the samplers that
take none in k-diffusion (``sample_euler``, ``sample_heun``,
``sample_dpm_2``, which draw ``torch.randn_like(x)`` for ``s_churn``) take
one here too. ``sample_dpmpp_2m_sde``'s default noise is the stream's
independent normals per step, not k-diffusion's Brownian tree (pass
``k_diffusion.sampling.BrownianTreeNoiseSampler`` to get that).

Differences a user can see: a model output of another dtype than ``x`` is an
error (k-diffusion would promote ``x``); ``s_noise`` must be ≥ 0; every
sampler runs under ``torch.no_grad`` (k-diffusion leaves ``sample_euler`` and
``sample_dpmpp_2s_ancestral`` undecorated).
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import trange

from .. import ops
from ._common import affine

__all__ = [
    "append_zero", "get_sigmas_karras", "get_sigmas_exponential", "get_sigmas_polyexponential", "get_sigmas_vp",
    "to_d", "get_ancestral_step", "sample_euler", "sample_euler_ancestral", "sample_heun", "sample_dpm_2",
    "sample_dpm_2_ancestral", "sample_dpmpp_2s_ancestral", "sample_dpmpp_2m", "sample_dpmpp_2m_sde",
]


# ---------------------------------------------------------------------------
# Schedules and helpers: k-diffusion's formulas, so that the σ values are
# bit for bit the ones k-diffusion's samplers get.


def append_zero(x):
    """``x`` with a zero appended (the schedules end at σ = 0)."""
    return torch.cat([x, x.new_zeros([1])])


def get_sigmas_karras(n, sigma_min, sigma_max, rho=7.0, device="cpu"):
    """The noise schedule of Karras et al. (2022): ``n`` σ's evenly spaced in σ^(1/ρ), then 0."""
    ramp = torch.linspace(0, 1, n)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return append_zero((hi + ramp * (lo - hi)) ** rho).to(device)


def get_sigmas_exponential(n, sigma_min, sigma_max, device="cpu"):
    """``n`` σ's evenly spaced in log σ, then 0."""
    return append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, device=device).exp())


def get_sigmas_polyexponential(n, sigma_min, sigma_max, rho=1.0, device="cpu"):
    """``n`` σ's whose log is a polynomial (degree ``rho``) in the step, then 0."""
    ramp = torch.linspace(1, 0, n, device=device) ** rho
    return append_zero(torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)))


def get_sigmas_vp(n, beta_d=19.9, beta_min=0.1, eps_s=1e-3, device="cpu"):
    """The σ's of the continuous VP SDE at ``n`` times from 1 to ``eps_s``, then 0."""
    t = torch.linspace(1, eps_s, n, device=device)
    return append_zero(torch.sqrt(torch.exp(beta_d * t ** 2 / 2 + beta_min * t) - 1))


def _append_dims(v, ndim):
    return v[(...,) + (None,) * (ndim - v.ndim)] if isinstance(v, torch.Tensor) else v


def to_d(x, sigma, denoised):
    """The Karras ODE derivative ``(x − denoised)/σ`` from a denoiser output."""
    return (x - denoised) / _append_dims(sigma, x.ndim)


def get_ancestral_step(sigma_from, sigma_to, eta=1.0):
    """``(sigma_down, sigma_up)`` of an ancestral step from ``sigma_from`` to
    ``sigma_to``: the noise level to step down to, and the noise to add."""
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
    return sigma_down, sigma_up


# ---------------------------------------------------------------------------
# What the samplers share.


class _Run:
    """One sampler run: the model call, the noise and the fused steps."""

    def __init__(self, model, x, sigmas, extra_args, noise_sampler, generator, row_ids, s_noise=1.0):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a tensor, got {type(x).__name__}")
        if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1 or not sigmas.is_floating_point():
            got = f"{sigmas.dtype} {list(sigmas.shape)}" if isinstance(sigmas, torch.Tensor) else type(sigmas).__name__
            raise ValueError(f"sigmas must be a 1-D floating-point tensor of noise levels, got {got}")
        if s_noise < 0:
            raise ValueError(f"s_noise must be non-negative, got {s_noise}")
        self.model, self.extra_args = model, {} if extra_args is None else extra_args
        self.sampler, self.generator, self.row_ids = noise_sampler, generator, row_ids
        self.s_in = x.new_ones([x.shape[0]])

    def denoise(self, x, sigma):
        """The model's denoised estimate at the 0-d tensor ``sigma``, as k-diffusion calls it."""
        out = self.model(x, sigma * self.s_in, **self.extra_args)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape or out.dtype != x.dtype:
            got = f"{out.dtype} {list(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
            raise TypeError(f"model must return a tensor of x's shape and dtype ({x.dtype} {list(x.shape)}), got {got}")
        return out

    def noise(self, x, sigma, sigma_next):
        """Keyword arguments for a step's noise: the noise sampler's draw, or the stream."""
        if self.sampler is None:
            return {"generator": self.generator, "row_ids": self.row_ids}
        return {"noise": self.sampler(sigma, sigma_next).to(dtype=x.dtype, device=x.device)}

    def step(self, x, denoised, a, b, c=0.0, noise=None):
        """``a·x + b·denoised + c·z``: one fused launch (no noise drawn for c = 0)."""
        return affine(x, denoised, a, b, c, noise)

    def step2(self, x, denoised, denoised2, a, b, b2, c=0.0, noise=None):
        """``a·x + b·denoised + b2·denoised2 + c·z``: one fused launch."""
        return affine(x, denoised, a, b, c, noise, y2=denoised2, b2=b2)

    def churned(self, x, sigmas, i, callback, s_churn, s_tmin, s_tmax, s_noise):
        """Step i's start in the churn samplers: ``(x̂, σ̂, denoised)``, reported to ``callback``."""
        x, sigma_hat = self.churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise)
        denoised = self.denoise(x, sigma_hat)
        _report(callback, x, i, sigmas[i], sigma_hat, denoised)
        return x, sigma_hat, denoised

    def ancestral(self, x, sigmas, i, eta, callback, values=None):
        """Step i's start in the ancestral samplers: ``(denoised, σ_down, σ_up)``,
        reported to ``callback``; σ_down, σ_up from ``values`` (default ``sigmas``)."""
        values = sigmas if values is None else values
        denoised = self.denoise(x, sigmas[i])
        down, up = get_ancestral_step(values[i], values[i + 1], eta=eta)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        return denoised, down, up

    def churn(self, x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise):
        """Karras et al.'s churn: ``(x̂, σ̂)`` with x̂ = x + s_noise·√(σ̂² − σ²)·z."""
        sigma = float(sigmas[i])
        gamma = min(s_churn / (len(sigmas) - 1), 2 ** 0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
        sigma_hat = sigmas[i] * (gamma + 1)
        if gamma > 0:
            c = s_noise * math.sqrt(float(sigma_hat) ** 2 - sigma ** 2)
            x = ops.noisy_update(x, x, 1.0, 0.0, c, **self.noise(x, sigmas[i], sigmas[i + 1]))
        return x, sigma_hat


def _report(callback, x, i, sigma, sigma_hat, denoised):
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})


def _euler_coefs(sigma, sigma_next):
    """x + (x − D)/σ·(σ' − σ) = (σ'/σ)·x + ((σ − σ')/σ)·D."""
    return sigma_next / sigma, (sigma - sigma_next) / sigma


# ---------------------------------------------------------------------------
# The samplers.


@torch.no_grad()
def sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None, s_churn=0.0, s_tmin=0.0,
                 s_tmax=float("inf"), s_noise=1.0, *, noise_sampler=None, generator=None, row_ids=None):
    """Euler steps (Karras et al. 2022, Algorithm 2 with Euler steps)."""
    run = _Run(model, x, sigmas, extra_args, noise_sampler, generator, row_ids, s_noise)
    for i in trange(len(sigmas) - 1, disable=disable):
        x, sigma_hat, denoised = run.churned(x, sigmas, i, callback, s_churn, s_tmin, s_tmax, s_noise)
        x = run.step(x, denoised, *_euler_coefs(float(sigma_hat), float(sigmas[i + 1])))
    return x


@torch.no_grad()
def sample_euler_ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0,
                           noise_sampler=None, *, generator=None, row_ids=None):
    """Ancestral sampling with Euler steps."""
    run = _Run(model, x, sigmas, extra_args, noise_sampler, generator, row_ids, s_noise)
    sig = sigmas.tolist()
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised, down, up = run.ancestral(x, sigmas, i, eta, callback, sig)
        noise = run.noise(x, sigmas[i], sigmas[i + 1]) if sig[i + 1] > 0 else None
        x = run.step(x, denoised, *_euler_coefs(sig[i], down), s_noise * up, noise)
    return x


@torch.no_grad()
def sample_heun(model, x, sigmas, extra_args=None, callback=None, disable=None, s_churn=0.0, s_tmin=0.0,
                s_tmax=float("inf"), s_noise=1.0, *, noise_sampler=None, generator=None, row_ids=None):
    """Heun steps (Karras et al. 2022, Algorithm 2); an Euler step to σ = 0."""
    run = _Run(model, x, sigmas, extra_args, noise_sampler, generator, row_ids, s_noise)
    for i in trange(len(sigmas) - 1, disable=disable):
        x, sigma_hat, denoised = run.churned(x, sigmas, i, callback, s_churn, s_tmin, s_tmax, s_noise)
        s, s_next = float(sigma_hat), float(sigmas[i + 1])
        if s_next == 0:
            x = run.step(x, denoised, *_euler_coefs(s, s_next))
            continue
        x_2 = run.step(x, denoised, *_euler_coefs(s, s_next))
        denoised_2 = run.denoise(x_2, sigmas[i + 1])
        # x + dt/2·(d + d₂), d = (x − D)/σ, d₂ = (x₂ − D₂)/σ', with x₂ written out in x and D.
        x = run.step2(x, denoised, denoised_2, s_next / s, (s - s_next) * (2 * s_next - s) / (2 * s * s_next),
                      (s - s_next) / (2 * s_next))
    return x


def _dpm_2_step(run, x, denoised, sigma, sigma_to, c=0.0, noise=None):
    """DPM-Solver-2 from the 0-d tensor ``sigma`` to ``sigma_to``: a half step to
    the geometric midpoint, the model there, the whole step from its slope."""
    sigma_mid = sigma.log().lerp(sigma_to.log(), 0.5).exp()
    s, s_mid, s_to = float(sigma), float(sigma_mid), float(sigma_to)
    x_2 = run.step(x, denoised, *_euler_coefs(s, s_mid))
    denoised_2 = run.denoise(x_2, sigma_mid)
    dt = s_to - s  # x + dt·(x₂ − D₂)/σ_mid, with x₂ written out in x and D
    return run.step2(x, denoised, denoised_2, s_to / s, dt * (s - s_mid) / (s_mid * s), -dt / s_mid, c, noise)


@torch.no_grad()
def sample_dpm_2(model, x, sigmas, extra_args=None, callback=None, disable=None, s_churn=0.0, s_tmin=0.0,
                 s_tmax=float("inf"), s_noise=1.0, *, noise_sampler=None, generator=None, row_ids=None):
    """A sampler inspired by DPM-Solver-2 and Karras et al. (2022), Algorithm 2."""
    run = _Run(model, x, sigmas, extra_args, noise_sampler, generator, row_ids, s_noise)
    for i in trange(len(sigmas) - 1, disable=disable):
        x, sigma_hat, denoised = run.churned(x, sigmas, i, callback, s_churn, s_tmin, s_tmax, s_noise)
        if float(sigmas[i + 1]) == 0:
            x = run.step(x, denoised, *_euler_coefs(float(sigma_hat), 0.0))
        else:
            x = _dpm_2_step(run, x, denoised, sigma_hat, sigmas[i + 1])
    return x


@torch.no_grad()
def sample_dpm_2_ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0,
                           noise_sampler=None, *, generator=None, row_ids=None):
    """Ancestral sampling with DPM-Solver second-order steps."""
    run = _Run(model, x, sigmas, extra_args, noise_sampler, generator, row_ids, s_noise)
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised, down, up = run.ancestral(x, sigmas, i, eta, callback)
        if float(down) == 0:
            x = run.step(x, denoised, *_euler_coefs(float(sigmas[i]), 0.0))
        else:
            x = _dpm_2_step(run, x, denoised, sigmas[i], down, s_noise * float(up),
                            run.noise(x, sigmas[i], sigmas[i + 1]))
    return x


@torch.no_grad()
def sample_dpmpp_2s_ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0,
                              noise_sampler=None, *, generator=None, row_ids=None):
    """Ancestral sampling with DPM-Solver++(2S) second-order steps."""
    run = _Run(model, x, sigmas, extra_args, noise_sampler, generator, row_ids, s_noise)
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised, down, up = run.ancestral(x, sigmas, i, eta, callback)
        noise = run.noise(x, sigmas[i], sigmas[i + 1]) if float(sigmas[i + 1]) > 0 else None
        c = s_noise * float(up)
        if float(down) == 0:
            x = run.step(x, denoised, *_euler_coefs(float(sigmas[i]), 0.0), c, noise)
            continue
        # In t = −log σ: a half step to s = t + h/2 (DPM-Solver++ first order), the model there.
        t, t_next = sigmas[i].log().neg(), down.log().neg()
        sigma_s = (t + 0.5 * (t_next - t)).neg().exp()
        h = float(t_next - t)
        x_2 = run.step(x, denoised, math.exp(-0.5 * h), -math.expm1(-0.5 * h))
        denoised_2 = run.denoise(x_2, sigma_s)
        x = run.step(x, denoised_2, math.exp(-h), -math.expm1(-h), c, noise)
    return x


@torch.no_grad()
def sample_dpmpp_2m(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """DPM-Solver++(2M): second order from this step's and the last step's denoised estimates."""
    run = _Run(model, x, sigmas, extra_args, None, None, None)
    sig = sigmas.tolist()
    old_denoised = None
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = run.denoise(x, sigmas[i])
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sig[i + 1] == 0:
            x = run.step(x, denoised, 0.0, 1.0)  # σ' = 0: the denoised estimate itself
        else:
            h = math.log(sig[i]) - math.log(sig[i + 1])  # t' − t in t = −log σ
            a, phi = sig[i + 1] / sig[i], -math.expm1(-h)
            if old_denoised is None:
                x = run.step(x, denoised, a, phi)
            else:
                r = (math.log(sig[i - 1]) - math.log(sig[i])) / h
                x = run.step2(x, denoised, old_denoised, a, phi * (1 + 1 / (2 * r)), -phi / (2 * r))
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0,
                        noise_sampler=None, solver_type="midpoint", *, generator=None, row_ids=None):
    """DPM-Solver++(2M) SDE; ``solver_type`` ``'midpoint'`` or ``'heun'``."""
    if solver_type not in {"heun", "midpoint"}:
        raise ValueError("solver_type must be 'heun' or 'midpoint'")
    run = _Run(model, x, sigmas, extra_args, noise_sampler, generator, row_ids, s_noise)
    sig = sigmas.tolist()
    old_denoised = h_last = None
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = run.denoise(x, sigmas[i])
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sig[i + 1] == 0:
            x = denoised  # the denoising step
        else:
            h = math.log(sig[i]) - math.log(sig[i + 1])
            eta_h = eta * h
            a, phi = sig[i + 1] / sig[i] * math.exp(-eta_h), -math.expm1(-h - eta_h)
            noise, c = None, 0.0
            if eta:
                noise = run.noise(x, sigmas[i], sigmas[i + 1])
                c = sig[i + 1] * math.sqrt(-math.expm1(-2 * eta_h)) * s_noise
            if old_denoised is None:
                x = run.step(x, denoised, a, phi, c, noise)
            else:
                r = h_last / h
                k = 0.5 * phi / r if solver_type == "midpoint" else (phi / (-h - eta_h) + 1) / r
                x = run.step2(x, denoised, old_denoised, a, phi + k, -k, c, noise)
            h_last = h
        old_denoised = denoised
    return x
