"""Benchmark cases of sliced_score_terms (plain), forward and backward to the
score and the vjp: the forward reads score, vjp and v; the backward reads v
(and the score) and writes the two gradients (28 bytes per float32 element)."""

from __future__ import annotations

import torch

from .. import ops, reference
from .dsm_loss import shapes
from .harness import Case, Provider


def _total(fn):
    def total(s, u, v):
        return fn(s, u, v).sum()

    return total


def cases(device: str, quick: bool) -> list[Case]:
    out = []
    for shape in shapes(quick):
        gen = torch.Generator().manual_seed(0)
        score, vjp = (torch.randn(shape, generator=gen).to(device).requires_grad_() for _ in range(2))
        v = torch.randn(shape, generator=gen).to(device)
        args, wrt = (score, vjp, v), (score, vjp)
        out.append(Case("sliced_score_terms fwd+bwd", shape, {
            "fused": Provider(_total(ops.sliced_score_terms), args, grad_of=wrt),
            "eager twin": Provider(_total(reference.sliced_score_terms), args, grad_of=wrt),
            "compiled twin": Provider(_total(reference.sliced_score_terms), args, grad_of=wrt, compile=True),
        }, bytes_per_element=28))
    return out
