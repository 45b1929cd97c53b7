"""The main job: ``python -m scorekern demo``.

Trains a small score network on a 2-D Gaussian mixture made in code (no
download) with the fused DSM loss, samples it with the fused
predictor–corrector sampler and with annealed Langevin dynamics, and reports

- sample quality against the true distribution: the energy distance of the
  samples to fresh data, next to the energy distance between two fresh data
  sets of the same size (what a perfect sampler would get), and the mixture
  weights recovered (each sample assigned to its most likely component);
- the speed of the fused path against the pure-PyTorch twin path
  (``scorekern.use_backend("torch")``), the same network and the same seeds;
- a PNG (``scorekern-demo.png`` in the working directory) of data against
  samples and the learned score field, when matplotlib is installed.

One network serves both samplers: trained under a VE SDE, it is conditioned
on the noise level σ(t), so annealed Langevin dynamics uses it at its own σ.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from . import losses, samplers
from .bench.harness import time_paths
from .sde import VESDE, ncsn_sigmas

__all__ = ["mixture", "ScoreMLP", "train", "energy_distance", "recovered_weights", "run"]


@dataclass(frozen=True)
class Mixture:
    """An isotropic 2-D Gaussian mixture: component means, weights, one std."""

    means: torch.Tensor
    weights: torch.Tensor
    std: float

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return self.means[k] + self.std * torch.randn(n, 2, generator=generator)

    def log_resp(self, x: torch.Tensor) -> torch.Tensor:
        """``[n, K]`` log posterior responsibilities of the components."""
        d2 = torch.cdist(x.double(), self.means.double()).square()
        logits = self.weights.double().log() - d2 / (2 * self.std**2)
        return logits.log_softmax(dim=1)


def mixture() -> Mixture:
    """The demo's data: six components on a circle of radius 4, unequal
    weights (0.30 down to 0.05), std 0.35."""
    angles = torch.arange(6, dtype=torch.float64) * (2 * math.pi / 6)
    means = 4.0 * torch.stack([angles.cos(), angles.sin()], dim=1)
    weights = torch.tensor([0.30, 0.20, 0.15, 0.15, 0.15, 0.05], dtype=torch.float64)
    return Mixture(means.float(), weights.float(), 0.35)


class ScoreMLP(nn.Module):
    """s(x, t) = net([x·c_in(σ), Fourier(log σ)]) / σ, with σ = sde.std(t):
    inputs scaled to unit variance (c_in = 1/√(σ_data² + σ²)) and the output
    divided by σ as score_sde does for VE models."""

    def __init__(self, sde: VESDE, hidden: int = 128, n_freq: int = 8, sigma_data: float = 3.0, seed: int = 0):
        super().__init__()
        self.sde = sde
        self.sigma_data = sigma_data
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", torch.randn(n_freq, generator=gen) * 2.0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = nn.Sequential(
                nn.Linear(2 + 2 * n_freq, hidden), nn.SiLU(),
                nn.Linear(hidden, hidden), nn.SiLU(),
                nn.Linear(hidden, hidden), nn.SiLU(),
                nn.Linear(hidden, 2),
            )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        sigma = self.sde.std(t).to(x.dtype)[:, None]
        phase = sigma.log() * self.freqs[None, :]
        h = torch.cat([x / (self.sigma_data**2 + sigma**2).sqrt(), phase.sin(), phase.cos()], dim=1)
        return self.net(h) / sigma

    def at_sigma(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The same network addressed by noise level (for annealed Langevin)."""
        return self(x, self.sde.time_of_sigma(sigma))


def train(model: ScoreMLP, data: Mixture, *, steps: int, batch: int = 512, lr: float = 2e-3, ema: float = 0.999,
          seed: int = 0, device="cpu", progress: bool = True) -> list[float]:
    """Adam on the fused continuous-time DSM loss (:func:`scorekern.losses.dsm`),
    the weights then replaced by their exponential moving average (decay
    ``ema``, as score_sde keeps); returns the loss every step."""
    from tqdm.auto import tqdm

    data_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=device).manual_seed(seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=lr / 20)
    params = [p for p in model.parameters() if p.requires_grad]
    averaged = [p.detach().clone() for p in params]
    history = []
    bar = tqdm(range(steps), desc="training", disable=not progress, leave=False)
    for _ in bar:
        x0 = data.sample(batch, data_gen).to(device)
        loss = losses.dsm(model, x0, model.sde, generator=noise_gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            torch._foreach_lerp_(averaged, params, 1.0 - ema)
        history.append(loss.item())
        if len(history) % 50 == 0:
            bar.set_postfix(loss=f"{sum(history[-50:]) / 50:.3f}")
    with torch.no_grad():
        torch._foreach_copy_(params, averaged)
    return history


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """2·E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ (Székely & Rizzo), in float64; zero
    exactly when the distributions agree."""
    x, y = x.double(), y.double()
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


def recovered_weights(x: torch.Tensor, data: Mixture) -> torch.Tensor:
    """The fraction of samples whose most likely component is each component."""
    k = data.log_resp(x.cpu()).argmax(dim=1)
    return torch.bincount(k, minlength=len(data.weights)).double() / len(x)


def _sample_both(model, sde, n, device, seed, progress):
    """PC sampler (reverse diffusion + Langevin corrector) and annealed Langevin."""
    gen = torch.Generator(device=device).manual_seed(seed)
    pc = samplers.pc_sampler(model, sde, (n, 2), snr=0.16, generator=gen, device=device, progress=progress)
    sigmas = ncsn_sigmas(sde.sigma_max, sde.sigma_min, 20).to(device)
    x0 = sde.prior_sampling((n, 2), generator=gen, device=device)
    ald = samplers.annealed_langevin(model.at_sigma, x0, sigmas, step_lr=2e-5, n_steps_each=sde.N // 20,
                                     generator=gen, progress=progress)
    return pc, ald


def _speed(model, sde, n, device, seed):
    """One PC sampler run per path, same network and seed: steps/s and the
    time outside the network."""
    def sample(score, _):
        gen = torch.Generator(device=device).manual_seed(seed)
        samplers.pc_sampler(score, sde, (n, 2), generator=gen, device=device, progress=False)

    return {path: dict(total_s=total, steps_per_s=sde.N / total, outside_ms=1e3 * (total - score.seconds) / sde.N)
            for path, (total, score) in time_paths(sample, lambda: model, device, warm_up=False).items()}


def _plot(path, data_x, pc, ald, model, data: Mixture, device):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  no figure: matplotlib is not installed (pip install matplotlib, or pip install scorekern[demo])")
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 5), sharex=True, sharey=True)
    lim = 6.5
    g = torch.linspace(-lim, lim, 25)
    grid = torch.stack(torch.meshgrid(g, g, indexing="xy"), dim=-1).reshape(-1, 2)
    sigma = 0.5
    with torch.no_grad():
        s = model.at_sigma(grid.to(device), torch.full((len(grid),), sigma, device=device)).cpu()
    s = s / s.norm(dim=1, keepdim=True).clamp_min(1e-12) * s.norm(dim=1, keepdim=True).clamp_max(8.0) / 8.0
    panels = [(data_x, "data", "tab:gray"), (pc, "PC sampler (fused)", "tab:blue"),
              (ald, "annealed Langevin (fused)", "tab:orange")]
    for ax, (pts, title, colour) in zip(axes, panels):
        pts = pts.cpu()
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, color=colour)
        ax.set_title(title)
        ax.set_aspect("equal")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    axes[0].quiver(grid[:, 0], grid[:, 1], s[:, 0], s[:, 1], color="tab:red", alpha=0.7, scale=25,
                   label=f"learned score at σ = {sigma}")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[0].scatter(data.means[:, 0], data.means[:, 1], marker="x", color="k")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run(*, steps: int = 12000, n_samples: int = 2000, sampler_steps: int = 1000, device=None, seed: int = 0,
        out: str | None = "scorekern-demo.png", progress: bool = True, log=print) -> dict:
    """The whole demo; returns what it printed as a dict. ``steps`` training
    steps; ``sampler_steps`` the PC sampler's N (annealed Langevin takes as
    many: 20 levels of N/20 steps)."""
    if steps < 1 or n_samples < 2 or sampler_steps < 20:
        raise ValueError(f"need steps >= 1, n_samples >= 2 and sampler_steps >= 20; got {steps}, {n_samples}, "
                         f"{sampler_steps}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    data = mixture()
    sde = VESDE(sigma_min=0.01, sigma_max=10.0, N=sampler_steps)
    model = ScoreMLP(sde, seed=seed).to(device)
    log(f"scorekern demo on {device}: a 2-D mixture of {len(data.weights)} Gaussians, "
        f"weights {[round(w, 2) for w in data.weights.tolist()]}")

    t0 = time.perf_counter()
    history = train(model, data, steps=steps, seed=seed, device=device, progress=progress)
    train_s = time.perf_counter() - t0
    tail = history[-100:]
    log(f"trained {steps} steps of the fused DSM loss (VE SDE, batch 512) in {train_s:.1f} s; "
        f"final loss {sum(tail) / max(len(tail), 1):.3f}")

    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    t0 = time.perf_counter()
    pc, ald = _sample_both(model, sde, n_samples, device, seed + 2, progress)
    sample_s = time.perf_counter() - t0

    ref_gen = torch.Generator().manual_seed(seed + 3)
    fresh, fresh2 = data.sample(n_samples, ref_gen), data.sample(n_samples, ref_gen)
    floor = energy_distance(fresh, fresh2)
    report = dict(device=str(device), steps=steps, n_samples=n_samples, train_s=train_s, sample_s=sample_s,
                  final_loss=sum(tail) / max(len(tail), 1), energy_distance_floor=floor,
                  true_weights=data.weights.tolist())
    log(f"sampled {n_samples} points with each sampler ({sde.N} steps) in {sample_s:.1f} s")
    log(f"  {'sampler':<20} {'energy distance':>16} {'(data vs data)':>15}   weights recovered (max error)")
    for name, x in (("pc_sampler", pc), ("annealed_langevin", ald)):
        x = x.cpu()
        ok = torch.isfinite(x).all().item()
        ed = energy_distance(x, fresh) if ok else float("nan")
        w = recovered_weights(x, data) if ok else torch.full_like(data.weights, float("nan"), dtype=torch.float64)
        err = float((w - data.weights.double()).abs().max())
        report[name] = dict(energy_distance=ed, weights=w.tolist(), max_weight_error=err, finite=ok)
        log(f"  {name:<20} {ed:16.4f} {floor:15.4f}   {[round(v, 3) for v in w.tolist()]} ({err:.3f})")

    speed = _speed(model, sde, n_samples, device, seed + 4)
    report["speed"] = speed
    ratio = speed["twin"]["outside_ms"] / speed["fused"]["outside_ms"]
    log(f"PC sampler, {sde.N} steps on [{n_samples}, 2]: fused {speed['fused']['steps_per_s']:.0f} steps/s, "
        f"twin {speed['twin']['steps_per_s']:.0f} steps/s; outside the network "
        f"{speed['fused']['outside_ms']:.3f} vs {speed['twin']['outside_ms']:.3f} ms/step ({ratio:.1f}x less)")

    if out:
        written = _plot(out, fresh, pc, ald, model, data, device)
        report["figure"] = written
        if written:
            log(f"wrote {written}")
    return report
