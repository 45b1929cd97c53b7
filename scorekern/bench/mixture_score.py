"""Benchmark cases of mixture_score (and mixture_log_prob) at M queries, N centres, d = 2 and 64,
float32, bandwidth 1: the fused tiled kernel against the naive twin (an [M, N]
matrix), torch.compile of it, and scaled_dot_product_attention with the
augmentation trick; time, GFLOP/s of the two products x·μ and Σ p·μ, and
peak memory. On a GPU also the fused kernel and the SDPA trick with TF32
allowed, and the TF32 matmul peak of the same run."""

from __future__ import annotations

import torch

from .. import ops, reference
from .harness import Case, Provider, float32_matmul_precision


def sdpa_mixture_score(x, centers, h):
    """The mixture score as attention: q = [x, 1], k = [μ, −‖μ‖²/2], v = [μ, 0],
    scale 1/h²: softmax(q·kᵀ/h²) = softmax(−‖x − μ‖²/2h²) (the ‖x‖² term cancels)."""
    m, d = x.shape
    ones = torch.ones(m, 1, dtype=x.dtype, device=x.device)
    q = torch.cat([x, ones], 1)[None, None]
    k = torch.cat([centers, -0.5 * centers.square().sum(1, keepdim=True)], 1)[None, None]
    v = torch.cat([centers, torch.zeros_like(centers[:, :1])], 1)[None, None]
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=1.0 / h**2)[0, 0, :, :d]
    return (out - x) / h**2


def _tf32():
    return float32_matmul_precision("high")


def cases(device: str, quick: bool) -> list[Case]:
    m, n = (512, 2048) if quick else (4096, 16384)
    out = []
    if device == "cuda":
        size = 4096 if quick else 8192
        a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
        out.append(Case("tf32 matmul peak", (size, size, size), {"torch.mm (TF32)": Provider(torch.mm, (a, b),
                                                                                            context=_tf32)},
                        flops=2.0 * size**3, baseline="torch.mm (TF32)"))
    for d in (2, 64):
        gen = torch.Generator(device=device).manual_seed(d)
        x = torch.randn(m, d, generator=gen, device=device)
        centers = torch.randn(n, d, generator=gen, device=device)
        providers = {
            "fused": Provider(ops.mixture_score, (x, centers, 1.0)),
            "naive twin": Provider(reference.mixture_score, (x, centers, 1.0)),
            "sdpa trick": Provider(sdpa_mixture_score, (x, centers, 1.0)),
        }
        if device == "cuda":
            providers["fused tf32"] = Provider(ops.mixture_score, (x, centers, 1.0), context=_tf32)
            providers["sdpa trick tf32"] = Provider(sdpa_mixture_score, (x, centers, 1.0), context=_tf32)
        providers["compiled twin"] = Provider(reference.mixture_score, (x, centers, 1.0), compile=True)
        out.append(Case("mixture_score", (m, n, d), providers, flops=4.0 * m * n * d, baseline="naive twin",
                        peak_memory=True))
        # The log-density: the same pass without the weighted sum of the centres (one product).
        out.append(Case("mixture_log_prob", (m, n, d), {
            "fused": Provider(ops.mixture_log_prob, (x, centers, 1.0)),
            "naive twin": Provider(reference.mixture_log_prob, (x, centers, 1.0)),
            "compiled twin": Provider(reference.mixture_log_prob, (x, centers, 1.0), compile=True),
        }, flops=2.0 * m * n * d, baseline="naive twin"))
    return out
