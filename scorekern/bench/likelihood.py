"""Benchmark cases of likelihood.log_likelihood (rk4, one Rademacher probe)
of data under the exact score of N(0.5, 0.3²I) (VP): the fused path against
the twin path."""

from __future__ import annotations

import torch

from .. import likelihood
from ..sde import VPSDE
from .harness import PathCase
from .samplers import analytic_score


def cases(device: str, quick: bool) -> list[PathCase]:
    sde = VPSDE()
    sizes = [((512, 2), 5), ((16, 3 * 32 * 32), 5)] if quick else [((4096, 2), 100), ((256, 3 * 32 * 32), 100)]
    out = []
    for shape, n_steps in sizes:
        x = (0.5 + 0.3 * torch.randn(shape, generator=torch.Generator().manual_seed(0))).to(device)

        def run(score, is_warm_up, x=x, n_steps=n_steps):
            likelihood.log_likelihood(score, sde, x, n_steps=2 if is_warm_up else n_steps,
                                      generator=torch.Generator(device=device).manual_seed(0))

        out.append(PathCase("log_likelihood rk4 rademacher", shape, n_steps, run, lambda: analytic_score(sde)))
    return out
