"""One step of each sampler: the coefficients (a, b, c) of DESIGN §1's table
and the fused update they drive.

``step(sde, x, score, t, ..., *, noise=None, generator=None, row_ids=None)
-> (x, x_mean)`` with ``t`` a ``[B]`` tensor: the formulas of the published
reference (``score_sde``'s ``sampling.py``), value for value when given the
same noise. Each is one call to :func:`scorekern.ops.noisy_update` (or
:func:`scorekern.ops.snr_langevin_step` for the signal-to-noise corrector);
the SDE-specific parts are methods of the SDE classes (:mod:`scorekern.sde`).
:mod:`scorekern.samplers` loops over them, and exports them too.
"""

from __future__ import annotations

import math

import torch

from . import ops
from .sde import SDE, _as_time

__all__ = [
    "euler_maruyama_coefficients",
    "reverse_diffusion_coefficients",
    "ancestral_coefficients",
    "ou_reverse_coefficients",
    "corrector_alpha",
    "euler_maruyama_step",
    "reverse_diffusion_step",
    "ancestral_step",
    "ou_reverse_step",
    "langevin_corrector_step",
    "annealed_langevin_step",
]


# ---------------------------------------------------------------------------
# Coefficients (a, b, c) of each step, elementwise in t (any shape).


def euler_maruyama_coefficients(sde: SDE, t, dt=None, probability_flow: bool = False):
    """Reverse-time Euler–Maruyama (Song et al. 2021, eq. 6; dt < 0, default −1/N).

    x_mean = x + [f − k·g²·s]·dt and x = x_mean + g·√(−dt)·z, with f = φ(t)x
    and k = 1 (k = ½ and no noise for the probability-flow ODE, eq. 13)."""
    t = _as_time(t)
    dt = -1.0 / sde.N if dt is None else float(dt)
    if dt >= 0:
        raise ValueError(f"dt must be negative (time runs backwards), got {dt}")
    g = sde.diffusion(t)
    a = 1.0 + sde.drift_coef(t) * dt
    b = -(0.5 if probability_flow else 1.0) * g**2 * dt
    c = torch.zeros_like(g) if probability_flow else g * math.sqrt(-dt)
    return a, b, c


def reverse_diffusion_coefficients(sde: SDE, t, probability_flow: bool = False):
    """The reverse-diffusion predictor (Song et al. 2021, eq. 46–47): x_mean =
    x − f + k·G²·s, x = x_mean + G·z for the SDE's discrete step (f, G).

    VE: (1, σᵢ² − σᵢ₋₁², √(σᵢ² − σᵢ₋₁²)); VP: (2 − √(1 − βᵢ), βᵢ, √βᵢ);
    sub-VP has no discrete chain of its own and takes Euler–Maruyama's."""
    return sde.reverse_diffusion_coefficients(t, probability_flow)


def ancestral_coefficients(sde: SDE, t):
    """Ancestral sampling (Song et al. 2021, Appendix F): VE
    (1, σᵢ² − σᵢ₋₁², √(σᵢ₋₁²(σᵢ² − σᵢ₋₁²)/σᵢ²)); VP/DDPM (1/√(1 − βᵢ), βᵢ/√(1 − βᵢ), √βᵢ)."""
    return sde.ancestral_coefficients(t)


def ou_reverse_coefficients(sde: SDE | None, t, alpha=None):
    """The reverse kernel of the discrete OU chain x_{k+1} = αx_k + √(1 − α²)ε:
    (2 − α, 1 − α², √(1 − α²)). α defaults to √(1 − βᵢ) of a VP or sub-VP SDE."""
    if alpha is None:
        if sde is None:
            raise ValueError("ou_reverse_step needs alpha (or an SDE with a β schedule)")
        alpha = sde.ou_alpha(t)
    alpha = alpha if isinstance(alpha, torch.Tensor) else torch.as_tensor(float(alpha))
    if alpha.device.type == "cpu" and bool(((alpha <= 0) | (alpha > 1)).any()):  # no check on a GPU: no sync
        raise ValueError("alpha must lie in (0, 1]")
    return 2.0 - alpha, 1.0 - alpha**2, torch.sqrt(1.0 - alpha**2)


def corrector_alpha(sde: SDE, t):
    """The Langevin corrector's α: 1 for VE, αᵢ = 1 − βᵢ for VP and sub-VP."""
    return sde.corrector_alpha(t)


def _ald_step(sde: SDE, t, snr: float):
    """Annealed Langevin dynamics' step 2α(snr·std(t))² (score_sde's ALD corrector)."""
    t = _as_time(t)
    return 2.0 * corrector_alpha(sde, t) * (snr * sde.std(t)) ** 2


# ---------------------------------------------------------------------------
# One step each: (sde, x, score, t, ..., *, noise, generator, row_ids) -> (x, x_mean)


def _as_coefficient(v: torch.Tensor, x: torch.Tensor):
    """A coefficient for ops: [B] per row, or one value for all rows."""
    return v.to(device=x.device, dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)


def _step(x, score, a, b, c, noise, generator, row_ids):
    a, b, c = (_as_coefficient(v, x) if isinstance(v, torch.Tensor) else v for v in (a, b, c))
    return ops.noisy_update(x, score, a, b, c, noise=noise, generator=generator, row_ids=row_ids,
                            return_mean=True)


def euler_maruyama_step(sde, x, score, t, dt=None, *, probability_flow=False, noise=None, generator=None,
                        row_ids=None):
    """One reverse-time Euler–Maruyama step (dt < 0, default −1/N)."""
    a, b, c = euler_maruyama_coefficients(sde, t, dt, probability_flow)
    return _step(x, score, a, b, 0.0 if probability_flow else c, noise, generator, row_ids)


def reverse_diffusion_step(sde, x, score, t, *, probability_flow=False, noise=None, generator=None, row_ids=None):
    """One reverse-diffusion predictor step (sub-VP: Euler–Maruyama)."""
    a, b, c = reverse_diffusion_coefficients(sde, t, probability_flow)
    return _step(x, score, a, b, 0.0 if probability_flow else c, noise, generator, row_ids)


def ancestral_step(sde, x, score, t, *, noise=None, generator=None, row_ids=None):
    """One ancestral-sampling step (VE, VP/DDPM)."""
    return _step(x, score, *ancestral_coefficients(sde, t), noise, generator, row_ids)


def ou_reverse_step(sde, x, score, t, *, alpha=None, noise=None, generator=None, row_ids=None):
    """One step of the discrete OU reverse kernel, α given or √(1 − βᵢ) of a VP SDE."""
    return _step(x, score, *ou_reverse_coefficients(sde, t, alpha), noise, generator, row_ids)


def langevin_corrector_step(sde, x, score, t, snr, *, norms="batch", noise=None, generator=None, row_ids=None):
    """One Langevin corrector step with a signal-to-noise step size (α per SDE)."""
    alpha = _as_coefficient(corrector_alpha(sde, t), x)
    return ops.snr_langevin_step(x, score, snr, alpha=alpha, norms=norms, noise=noise, generator=generator,
                                 row_ids=row_ids, return_mean=True)


def annealed_langevin_step(sde, x, score, t, snr, *, noise=None, generator=None, row_ids=None):
    """One annealed-Langevin corrector step (score_sde's ALD): step 2α(snr·std(t))²."""
    step = _ald_step(sde, t, snr)
    return _step(x, score, torch.ones_like(step), step, torch.sqrt(2.0 * step), noise, generator, row_ids)
