"""The mixture kernels on a CUDA GPU (marked `cuda`; skipped without one):
the exact kernels against the CPU, the TF32 tensor-core forward against a
float64 model of TF32 arithmetic, 16-bit data, the coordinate limit."""

import pytest
import torch

from scorekern import ops

from conftest import COMPILED

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not COMPILED, reason="scorekern._C is not built"),
              pytest.mark.usefixtures("cuda_kernels")]


@pytest.mark.parametrize("d", [2, 7, 64, 130])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mixture_score_equals_the_cpu(d, dtype):
    """The exact form: torch's default float32 matmul precision ("highest")
    keeps the CUDA kernel off TF32."""
    assert torch.get_float32_matmul_precision() == "highest"
    g = torch.Generator().manual_seed(d)
    x = torch.randn(300, d, generator=g, dtype=dtype) * 2
    centers = torch.randn(1037, d, generator=g, dtype=dtype)
    lw = torch.randn(1037, generator=g, dtype=dtype)
    h = torch.rand(300, generator=g, dtype=dtype) + 0.4
    grad = torch.randn(300, d, generator=g, dtype=dtype)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    results = []
    for device in ("cpu", "cuda"):
        xd = x.to(device).requires_grad_(True)
        score = ops.mixture_score(xd, centers.to(device), h.to(device), log_weights=lw.to(device))
        (gx,) = torch.autograd.grad(score, xd, grad.to(device))
        lp = ops.mixture_log_prob(x.to(device), centers.to(device), h.to(device), log_weights=lw.to(device))
        results.append([t.detach().cpu() for t in (score, gx, lp)])
    for cpu, cuda in zip(*results):
        torch.testing.assert_close(cuda, cpu, **tol)


def _tf32(t):
    """float32 values rounded to TF32 as cvt.rna.tf32.f32 rounds them (to
    nearest, ties away from zero): 10 mantissa bits."""
    bits = t.float().contiguous().view(torch.int32)
    return ((bits + 0x1000) & -0x2000).view(torch.float32)


def _tensor_core_model(x, centers, h, lw):
    """In float64, what the tensor-core kernel computes: x·μ from TF32 inputs,
    ‖μ‖²/2 and ‖x‖² exact, Σ p μ from TF32 weights and centres. Returns the
    score and lse; a float32 simulation of the kernel's tiles, online softmax
    and split merge stayed within 2e-4 of the score's scale and 4e-7 of
    1 + |lse| of this (checked on the CPU while writing the kernel)."""
    xt, ct = _tf32(x).double(), _tf32(centers).double()
    x64, c64, h2 = x.double(), centers.double(), h.double()[:, None] ** 2
    logit = lw.double() + (xt @ ct.T - 0.5 * c64.square().sum(1)) / h2
    lse = torch.logsumexp(logit, 1) - 0.5 * x64.square().sum(1) / h2[:, 0]
    p = torch.exp(logit - logit.amax(1, keepdim=True))
    mean = (_tf32(p.float()).double() @ ct) / p.sum(1, keepdim=True)
    return (mean - x64) / h2, lse


# (d, M, N): d padded to 16, 32, 64 and 128; N = 1, N not a multiple of the
# 64-centre tile; M small against N, so that the centres are split over
# blocks and merged (64 × 16384), and M not a multiple of the 64-query block.
TC_CASES = [(16, 200, 1), (24, 100, 300), (64, 300, 1037), (64, 64, 16384), (100, 130, 777), (128, 70, 5000)]


@pytest.mark.parametrize("d, M, N", TC_CASES)
def test_mixture_tensor_cores_follow_the_tf32_model(d, M, N):
    if torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("TF32 tensor cores need sm_80 or newer")
    from scorekern.bench.harness import float32_matmul_precision

    g = torch.Generator().manual_seed(d * N)
    x = torch.randn(M, d, generator=g)
    x[:5] *= 100  # far queries
    centers = torch.randn(N, d, generator=g) * 1.5 + 0.5
    lw = torch.randn(N, generator=g)
    h = torch.rand(M, generator=g) + 0.5
    args = [t.cuda() for t in (x, centers, h)]
    with float32_matmul_precision("high"):
        score = ops.mixture_score(*args, log_weights=lw.cuda()).cpu()
        lp = ops.mixture_log_prob(*args, log_weights=lw.cuda()).cpu()
    with float32_matmul_precision("highest"):
        exact_score = ops.mixture_score(*args, log_weights=lw.cuda()).cpu()
        exact_lp = ops.mixture_log_prob(*args, log_weights=lw.cuda()).cpu()
    assert not torch.equal(score, exact_score), "the TF32 path did not run"
    model_score, model_lse = _tensor_core_model(x, centers, h, lw)
    scale = model_score.abs().amax(1, keepdim=True)
    err = (score.double() - model_score).abs()
    assert (err <= 2e-3 * scale).all(), f"largest error {(err / scale).max():.3g} of the score's scale"
    # The log-density is lse less constants that both paths share.
    exact_lse = torch.logsumexp(lw.double() - 0.5 * torch.cdist(x.double(), centers.double()).square()
                                / h.double()[:, None] ** 2, 1)
    expected = exact_lp.double() + (model_lse - exact_lse)
    assert ((lp.double() - expected).abs() <= 1e-4 * (1 + expected.abs())).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_mixture_16_bit_data_takes_tensor_cores_exactly(dtype):
    """TF32 holds 16-bit data exactly, so 16-bit queries and centres take the
    tensor cores whatever the matmul precision; only the weights are rounded."""
    if torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("TF32 tensor cores need sm_80 or newer")
    g = torch.Generator().manual_seed(5)
    x = torch.randn(300, 64, generator=g).to(dtype)
    centers = torch.randn(1037, 64, generator=g).to(dtype)
    h = torch.full((300,), 1.5)
    score = ops.mixture_score(x.cuda(), centers.cuda(), 1.5).float().cpu()
    model_score, _ = _tensor_core_model(x.float(), centers.float(), h, torch.zeros(1037))
    err = (score.double() - model_score).abs()
    ulp = 2.0 ** (-8 if dtype == torch.bfloat16 else -11)
    assert (err <= (2e-3 + 2 * ulp) * model_score.abs().amax(1, keepdim=True)).all()


def test_mixture_score_on_cuda_rejects_too_many_coordinates():
    x = torch.randn(3, 600, device="cuda")
    with pytest.raises(RuntimeError, match="at most 512 coordinates"):
        ops.mixture_score(x, torch.randn(5, 600, device="cuda"), 1.0)
