"""Benchmark cases of perturb (x_t = x0 + σ·z, the noise kept as a handle)
and dsm_loss: the σ²-weighted loss (score_scale = σ per
row), forward and backward as a training step runs them, returning the
score's gradient; on a GPU also the peak memory of a whole training step."""

from __future__ import annotations

import torch

from .. import ops, reference
from .harness import Case, Provider

# Float32 bytes per element: the forward reads, the backward reads and writes the gradient.
BYTES = {
    "fused regenerated": 12,  # the score twice, the gradient once
    "fused noise tensor": 20,  # the score and the noise twice, the gradient once
    "eager twin": 20,
    "compiled twin": 20,
}


def shapes(quick: bool) -> list[tuple]:
    return [(256, 3072), (4096, 2)] if quick else [(4096, 3072), (65536, 2)]


def _training_step(x0, weight, sigma, stored_noise: bool):
    """perturb → a one-layer score → the DSM loss → backward."""
    if stored_noise:
        z = torch.randn_like(x0)
        x_t = x0 + sigma.reshape(-1, *([1] * (x0.dim() - 1))) * z
        loss = reference.dsm_loss(x_t * weight, z, sigma)
    else:
        x_t, handle = ops.perturb(x0, 1.0, sigma)
        loss = ops.dsm_loss(x_t * weight, handle, sigma)
    return torch.autograd.grad(loss, weight)


def _twin_perturb(x0, mean_coef, std):
    return reference.perturb(x0, mean_coef, std)


def cases(device: str, quick: bool) -> list[Case]:
    out = []
    for shape in shapes(quick):
        gen = torch.Generator().manual_seed(1)
        x0 = torch.randn(shape, generator=gen).to(device)
        sigma = torch.rand(shape[0], generator=gen).add_(0.01).to(device)
        # perturb reads x0 and writes x_t (the noise stays a handle); the twin also writes z.
        out.append(Case("perturb", shape, {
            "fused": Provider(ops.perturb, (x0, 1.0, sigma)),
            "eager twin": Provider(_twin_perturb, (x0, 1.0, sigma)),
            "compiled twin": Provider(_twin_perturb, (x0, 1.0, sigma), compile=True),
        }, bytes_per_element={"fused": 8, "eager twin": 12, "compiled twin": 12}))
    for shape in shapes(quick):
        gen = torch.Generator().manual_seed(0)
        x0 = torch.randn(shape, generator=gen).to(device)
        score = torch.randn(shape, generator=gen).to(device).requires_grad_()
        sigma = torch.rand(shape[0], generator=gen).add_(0.01).to(device)
        _, handle = ops.perturb(x0, 1.0, sigma)
        z = handle.tensor()
        out.append(Case("dsm_loss fwd+bwd", shape, {
            "fused regenerated": Provider(ops.dsm_loss, (score, handle, sigma), grad_of=score),
            "fused noise tensor": Provider(ops.dsm_loss, (score, z, sigma), grad_of=score),
            "eager twin": Provider(reference.dsm_loss, (score, z, sigma), grad_of=score),
            "compiled twin": Provider(reference.dsm_loss, (score, z, sigma), grad_of=score, compile=True),
        }, bytes_per_element=BYTES))
        if device == "cuda":
            weight = torch.randn(shape[1:], generator=gen).to(device).requires_grad_()
            out.append(Case("dsm training step peak memory", shape, {
                "fused, regenerated noise": Provider(_training_step, (x0, weight, sigma, False)),
                "twin, stored noise": Provider(_training_step, (x0, weight, sigma, True)),
            }, baseline="twin, stored noise", peak_memory=True))
    return out
