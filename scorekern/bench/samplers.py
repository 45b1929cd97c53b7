"""Benchmark cases of a whole predictor–corrector run (reverse diffusion +
one Langevin corrector step, VP), the fused path against the twin path:
steps per second and the time outside the score function."""

from __future__ import annotations

import torch

from ..samplers import pc_sampler
from ..sde import VPSDE
from .harness import PathCase


def analytic_score(sde, mu: float = 0.5, std: float = 0.3):
    """The exact score of data N(μ, std²I) under the SDE: −(x − mμ)/(m²std² + s²)."""

    def score(x, t):
        m, s = sde.mean_coef(t), sde.std(t)
        var = (m**2 * std**2 + s**2).reshape(-1, *([1] * (x.dim() - 1)))
        return (m.reshape(var.shape) * mu - x) / var

    return score


def mlp_score(device, hidden=128):
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden),
                              torch.nn.SiLU(), torch.nn.Linear(hidden, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    net = net.to(device)

    def score(x, t):
        return net(torch.cat([x, t[:, None]], dim=1))

    return score


def cases(device: str, quick: bool) -> list[PathCase]:
    n = 50 if quick else 1000
    sizes = [(64, 3 * 32 * 32), (4096, 2)] if quick else [(256, 3 * 32 * 32), (65536, 2)]
    sde, warm = VPSDE(N=n), VPSDE(N=50)
    out = []
    for (name, make), shape in zip((("analytic", lambda: analytic_score(sde)), ("mlp", lambda: mlp_score(device))),
                                   sizes):
        def run(score, is_warm_up, shape=shape):
            pc_sampler(score, warm if is_warm_up else sde, shape, device=device, progress=False)

        out.append(PathCase(f"pc_sampler {name}", shape, n, run, make))
    return out
