"""The SDEs of score-based generative modelling (Song et al. 2021).

``VESDE``, ``VPSDE`` and ``SubVPSDE`` follow the published reference
implementation (``score_sde``'s ``sde_lib``) value for value: the same
continuous coefficients, the same discrete schedules (σᵢ for VE; βᵢ, αᵢ,
ᾱᵢ for VP and sub-VP) and the same index ``i = floor(t·(N − 1)/T)`` into
them. Times ``t`` are tensors (``[B]``, one per sample, or any shape: every
coefficient is elementwise in ``t``); data ``x`` has the batch first.

All three SDEs have a linear drift ``f(x, t) = φ(t)·x`` (φ = 0 for VE,
−½β(t) for VP and sub-VP), which is what lets every sampler step be one
fused affine update (DESIGN §1).
"""

from __future__ import annotations

import math

import torch

from . import ops

__all__ = ["SDE", "VESDE", "VPSDE", "SubVPSDE", "ncsn_sigmas", "score_from_noise_prediction"]


def _rows_view(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-row tensor [B] broadcast against x [B, ...]."""
    return v.reshape(-1, *([1] * (x.dim() - 1)))


def _as_time(t, like: torch.Tensor | None = None) -> torch.Tensor:
    if isinstance(t, torch.Tensor):
        return t if t.dtype.is_floating_point else t.to(torch.float32)
    device = like.device if like is not None else None
    return torch.tensor(float(t), dtype=torch.float32, device=device)


class SDE:
    """The interface every SDE here implements; T = 1 and N discrete steps."""

    T = 1.0

    def __init__(self, N: int):
        if not isinstance(N, int) or isinstance(N, bool) or N < 1:
            raise ValueError(f"N must be a positive int, got {N!r}")
        self.N = N

    # --- continuous time -------------------------------------------------
    def drift_coef(self, t: torch.Tensor) -> torch.Tensor:
        """φ(t) with f(x, t) = φ(t)·x."""
        raise NotImplementedError

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        """g(t)."""
        raise NotImplementedError

    def mean_coef(self, t: torch.Tensor) -> torch.Tensor:
        """The marginal mean is mean_coef(t)·x₀."""
        raise NotImplementedError

    def std(self, t: torch.Tensor) -> torch.Tensor:
        """The marginal standard deviation at t."""
        raise NotImplementedError

    def sde(self, x: torch.Tensor, t: torch.Tensor):
        """(drift f(x, t), diffusion g(t)), t a [B] tensor."""
        t = _as_time(t, x)
        return _rows_view(self.drift_coef(t), x) * x, self.diffusion(t)

    def marginal_prob(self, x: torch.Tensor, t: torch.Tensor):
        """(mean, std) of p_t(x(t) | x(0) = x)."""
        t = _as_time(t, x)
        return _rows_view(self.mean_coef(t), x) * x, self.std(t)

    # --- the prior ---------------------------------------------------------
    prior_std = 1.0

    def prior_sampling(self, shape, *, generator=None, row_ids=None, device=None, dtype=torch.float32):
        """A sample of the prior p_T, drawn from scorekern's stream (so ``row_ids``
        pin each sample's prior noise to its id)."""
        like = torch.empty(shape, device=device, dtype=dtype)
        return ops.randn_like(like, generator=generator, row_ids=row_ids).mul_(self.prior_std)

    def prior_logp(self, z: torch.Tensor) -> torch.Tensor:
        """log p_T(z) per sample ([B]), summed over all but the first dimension."""
        n = z[0].numel()
        var = self.prior_std**2
        return -n / 2.0 * math.log(2 * math.pi * var) - z.reshape(z.shape[0], -1).pow(2).sum(1) / (2 * var)

    # --- the discrete schedule ---------------------------------------------
    def index(self, t: torch.Tensor) -> torch.Tensor:
        """The discrete step of t, as the reference computes it: floor(t·(N − 1)/T)."""
        return (_as_time(t) * (self.N - 1) / self.T).long()

    def discrete_step(self, t: torch.Tensor):
        """(φᵢ, Gᵢ) of one forward step x_{i+1} ≈ x_i + φᵢ·x_i + Gᵢ·z: Euler–Maruyama
        with Δt = 1/N (φ(t)Δt, g(t)√Δt) unless the SDE has its own discretisation."""
        t = _as_time(t)
        dt = 1.0 / self.N
        return self.drift_coef(t) * dt, self.diffusion(t) * math.sqrt(dt)

    def discretize(self, x: torch.Tensor, t: torch.Tensor):
        """(f, G) of one forward step: x_{i+1} ≈ x_i + f + G·z, f = φᵢ·x (discrete_step)."""
        phi, g = self.discrete_step(_as_time(t, x))
        return _rows_view(phi, x) * x, g

    # --- the formulas of the samplers' steps (DESIGN §1's table) -------------
    def reverse_diffusion_coefficients(self, t, probability_flow: bool = False):
        """(a, b, c) of the reverse-diffusion predictor (Song et al. 2021, eq.
        46–47): x_mean = x − f + k·G²·s, x = x_mean + G·z for the discrete step
        (f, G) = (φᵢ·x, Gᵢ), k = ½ (and no noise) for the probability-flow ODE."""
        phi, g = self.discrete_step(_as_time(t))
        k = 0.5 if probability_flow else 1.0
        c = torch.zeros_like(g) if probability_flow else g
        return 1.0 - phi, k * g**2, c

    def ancestral_coefficients(self, t):
        """(a, b, c) of ancestral sampling (Song et al. 2021, Appendix F)."""
        raise ValueError(f"ancestral sampling is defined for VESDE and VPSDE, not {type(self).__name__}")

    def corrector_alpha(self, t):
        """The Langevin corrector's α: 1, or αᵢ = 1 − βᵢ for SDEs with a β schedule."""
        return torch.ones_like(_as_time(t))

    def ou_alpha(self, t):
        """α of the discrete OU chain x_{k+1} = αx_k + √(1 − α²)ε that this SDE discretises."""
        raise ValueError("ou_reverse_step needs alpha for an SDE without a β schedule (VE)")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({params})"


class VESDE(SDE):
    """Variance exploding: σ(t) = σ_min(σ_max/σ_min)^t, g(t) = σ(t)√(2 ln(σ_max/σ_min)), no drift.

    Its discrete form is the SMLD/NCSN chain over σ₀ < … < σ_{N−1}
    (geometric), whose reverse steps use σᵢ² − σᵢ₋₁² (σ₋₁ = 0).
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, N: int = 1000):
        super().__init__(N)
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.discrete_sigmas = torch.exp(torch.linspace(math.log(sigma_min), math.log(sigma_max), N))
        self.prior_std = self.sigma_max

    def _params(self):
        return dict(sigma_min=self.sigma_min, sigma_max=self.sigma_max, N=self.N)

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def drift_coef(self, t):
        return torch.zeros_like(t)

    def diffusion(self, t):
        return self.sigma(t) * math.sqrt(2 * (math.log(self.sigma_max) - math.log(self.sigma_min)))

    def mean_coef(self, t):
        return torch.ones_like(t)

    def std(self, t):
        return self.sigma(t)

    def time_of_sigma(self, sigma):
        """The inverse of σ(t): t = ln(σ/σ_min)/ln(σ_max/σ_min), for a network
        trained on t and used at a noise level (annealed Langevin)."""
        sigma = torch.as_tensor(sigma)
        return torch.log(sigma / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)

    def sde(self, x, t):
        t = _as_time(t, x)
        return torch.zeros_like(x), self.diffusion(t)

    def marginal_prob(self, x, t):
        return x, self.std(_as_time(t, x))

    def discrete_sigma(self, t):
        """(σᵢ, σᵢ₋₁) at t's step, σ₋₁ = 0."""
        i = self.index(t)
        sigmas = self.discrete_sigmas.to(i.device)
        adjacent = torch.where(i == 0, torch.zeros_like(sigmas[i]), sigmas[(i - 1).clamp(min=0)])
        return sigmas[i], adjacent

    def discrete_step(self, t):
        """SMLD (NCSN) discretisation: φᵢ = 0, Gᵢ = √(σᵢ² − σᵢ₋₁²)."""
        sigma, adjacent = self.discrete_sigma(_as_time(t))
        return torch.zeros_like(sigma), torch.sqrt(sigma**2 - adjacent**2)

    def ancestral_coefficients(self, t):
        """VE: (1, σᵢ² − σᵢ₋₁², √(σᵢ₋₁²(σᵢ² − σᵢ₋₁²)/σᵢ²))."""
        sigma, adjacent = self.discrete_sigma(_as_time(t))
        g2 = sigma**2 - adjacent**2
        return torch.ones_like(g2), g2, torch.sqrt(adjacent**2 * g2 / sigma**2)


class VPSDE(SDE):
    """Variance preserving: β(t) = β₀ + t(β₁ − β₀), f = −½β(t)x, g = √β(t).

    Its discrete form is the DDPM chain with βᵢ = linspace(β₀/N, β₁/N, N),
    αᵢ = 1 − βᵢ and ᾱᵢ = ∏ αⱼ.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, N: int = 1000):
        super().__init__(N)
        if not 0 <= beta_min < beta_max:
            raise ValueError(f"need 0 <= beta_min < beta_max, got {beta_min}, {beta_max}")
        if beta_max / N >= 1:
            raise ValueError(
                f"beta_max / N must be below 1: the discrete βᵢ = linspace(β₀/N, β₁/N, N) are the DDPM "
                f"chain's noise variances; got beta_max={beta_max}, N={N}"
            )
        self.beta_0, self.beta_1 = float(beta_min), float(beta_max)
        self.discrete_betas = torch.linspace(beta_min / N, beta_max / N, N)
        self.alphas = 1.0 - self.discrete_betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.sqrt_alphas_cumprod = torch.sqrt(self.alphas_cumprod)
        self.sqrt_1m_alphas_cumprod = torch.sqrt(1.0 - self.alphas_cumprod)

    def _params(self):
        return dict(beta_min=self.beta_0, beta_max=self.beta_1, N=self.N)

    def beta(self, t):
        return self.beta_0 + t * (self.beta_1 - self.beta_0)

    def log_mean_coef(self, t):
        """m(t) = −¼t²(β₁ − β₀) − ½tβ₀: the marginal mean is e^m·x₀."""
        return -0.25 * t**2 * (self.beta_1 - self.beta_0) - 0.5 * t * self.beta_0

    def drift_coef(self, t):
        return -0.5 * self.beta(t)

    def diffusion(self, t):
        return torch.sqrt(self.beta(t))

    def mean_coef(self, t):
        return torch.exp(self.log_mean_coef(t))

    def std(self, t):
        return torch.sqrt(1.0 - torch.exp(2.0 * self.log_mean_coef(t)))

    def discrete_beta(self, t):
        """βᵢ at t's step."""
        i = self.index(t)
        return self.discrete_betas.to(i.device)[i]

    def discrete_alpha(self, t):
        """αᵢ = 1 − βᵢ at t's step (the Langevin corrector's α)."""
        i = self.index(t)
        return self.alphas.to(i.device)[i]

    def discrete_step(self, t):
        """DDPM discretisation: φᵢ = √αᵢ − 1, Gᵢ = √βᵢ."""
        t = _as_time(t)
        return torch.sqrt(self.discrete_alpha(t)) - 1.0, torch.sqrt(self.discrete_beta(t))

    def ancestral_coefficients(self, t):
        """VP/DDPM: (1/√(1 − βᵢ), βᵢ/√(1 − βᵢ), √βᵢ)."""
        beta = self.discrete_beta(_as_time(t))
        root = torch.sqrt(1.0 - beta)
        return 1.0 / root, beta / root, torch.sqrt(beta)

    def corrector_alpha(self, t):
        """αᵢ = 1 − βᵢ at t's step.

        (The published corrector looks αᵢ up on the SDE and fails for sub-VP,
        which has none there; here sub-VP shares VP's βᵢ.)"""
        return self.discrete_alpha(_as_time(t))

    def ou_alpha(self, t):
        """√(1 − βᵢ): the DDPM chain is the discrete OU chain with this α."""
        return torch.sqrt(1.0 - self.discrete_beta(_as_time(t)))


class SubVPSDE(VPSDE):
    """Sub-VP: the VP drift, g² = β(t)(1 − e^{−2β₀t − (β₁−β₀)t²}), and marginal
    std 1 − e^{2m} (below VP's √(1 − e^{2m})).

    Its discrete steps are Euler–Maruyama (as in the reference). The
    discrete βᵢ, αᵢ are VP's: they give the Langevin corrector its α, where
    the published code looks them up and fails (sub-VP has none there).
    """

    def diffusion(self, t):
        discount = 1.0 - torch.exp(-2 * self.beta_0 * t - (self.beta_1 - self.beta_0) * t**2)
        return torch.sqrt(self.beta(t) * discount)

    def std(self, t):
        return 1.0 - torch.exp(2.0 * self.log_mean_coef(t))

    def discrete_step(self, t):  # Euler–Maruyama, as the reference
        return SDE.discrete_step(self, t)

    def ancestral_coefficients(self, t):
        return SDE.ancestral_coefficients(self, t)


def ncsn_sigmas(sigma_begin: float = 1.0, sigma_end: float = 0.01, num_scales: int = 10) -> torch.Tensor:
    """NCSN's geometric noise levels, largest first: exp(linspace(ln σ_begin, ln σ_end, L))."""
    if not sigma_begin > sigma_end > 0:
        raise ValueError(f"need sigma_begin > sigma_end > 0, got {sigma_begin}, {sigma_end}")
    if num_scales < 1:
        raise ValueError(f"num_scales must be positive, got {num_scales}")
    return torch.exp(torch.linspace(math.log(sigma_begin), math.log(sigma_end), num_scales))


def score_from_noise_prediction(model, sde: SDE):
    """The score of a noise-prediction network ε̂(x, t): s(x, t) = −ε̂(x, t)/std(t)."""

    def score_fn(x, t):
        std = sde.std(_as_time(t, x))
        return -model(x, t) / _rows_view(std, x)

    return score_fn
