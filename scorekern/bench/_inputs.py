"""Inputs the elementwise cases share: data and per-row coefficients."""

from __future__ import annotations

import math

import torch


def data(shape, device, count, seed=0, dtype=torch.float32):
    """`count` fresh normal tensors of `shape` on `device` (drawn on the CPU, reproducible)."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen, dtype=dtype).to(device) for _ in range(count)]


def step_size(per_row, rows, device):
    """A Langevin step τ (and √(2τ)): one per row, or one float for all."""
    if per_row:
        tau = torch.rand(rows, generator=torch.Generator().manual_seed(1)).mul_(0.01).add_(0.005).to(device)
        return tau, (2 * tau).sqrt()
    return 0.01, math.sqrt(0.02)


def elementwise_shapes(device: str, quick: bool) -> list[tuple[tuple, bool]]:
    """(shape, per-row coefficients) of the elementwise ops."""
    if quick:
        return [((1 << 20,), False), ((512, 2048), True)]
    out = [((1 << 24,), False), ((4096, 4096), True)]
    if device == "cuda":
        out.append(((1 << 26,), False))
    return out


def rows(shape) -> int:
    return 1 if len(shape) == 1 else shape[0]
