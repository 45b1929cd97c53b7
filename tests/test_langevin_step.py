"""langevin_step, x + τ·score + √(2τ)·z (noisy_update's kernel with a = 1,
b = τ, c = √(2τ)), against its twin; it samples a Gaussian; the samples of
the generic tests (tests/opinfo.py)."""

import math

import pytest
import torch

from scorekern import ops, reference

from conftest import DTYPES, TOL, opmath, requires_compiled
from opinfo import OpInfo, Sample, coefficient, data, describe, generator, op_tests, rows_of, shape_dtype_cases

pytestmark = requires_compiled


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("step", ["float", "rows"])
def test_langevin_step(dtype, step):
    x, s, z = (data((6, 7, 3), dtype, seed) for seed in range(3))
    tau = 0.02 if step == "float" else torch.rand(6, generator=torch.Generator().manual_seed(2), dtype=torch.float64) / 10
    got, got_mean = ops.langevin_step(x, s, tau, noise=z, return_mean=True)
    op = opmath(dtype)
    t = tau if step == "float" else tau.to(op)
    want, want_mean = reference.langevin_step(x.to(op), s.to(op), t, noise=z.to(op), return_mean=True)
    torch.testing.assert_close(got, want.to(dtype), **TOL[dtype])
    torch.testing.assert_close(got_mean, want_mean.to(dtype), **TOL[dtype])
    # the same generator state gives the same step as noisy_update(1, τ, √(2τ))
    if step == "float":
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        assert torch.equal(ops.langevin_step(x, s, 0.02, generator=g1),
                           ops.noisy_update(x, s, 1.0, 0.02, math.sqrt(0.04), generator=g2))


def test_langevin_samples_a_gaussian():
    # ULA on N(μ, σ²) with step τ converges to N(μ, σ²/(1 − τ/(2σ²)));
    # check the mean and variance of many chains against that.
    mu, sigma, tau = 1.5, 0.7, 0.01
    x = torch.zeros(20000, 2, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    for _ in range(2000):
        x = ops.langevin_step(x, -(x - mu) / sigma**2, tau, generator=g)
    var = sigma**2 / (1 - tau / (2 * sigma**2))
    n = x.numel()
    assert abs(x.mean().item() - mu) < 5 * (var / n) ** 0.5
    assert abs(x.var().item() - var) < 5 * var * (2 / n) ** 0.5


# ---------------------------------------------------------------------------
# The samples every generic test draws from (tests/opinfo.py)


def langevin_step_samples():
    out = []
    for i, (shape, dtype) in shape_dtype_cases():
        if i % 3:
            continue  # a third of the shapes × dtypes: the kernel is noisy_update's
        rows, kind = rows_of(shape), ["float", "rows", "0d"][(i // 3) % 3]
        small = dtype == torch.float64 and 0 < math.prod(shape) <= 40

        def make(shape=shape, dtype=dtype, rows=rows, kind=kind, i=i, small=small):
            x, s = data(shape, dtype, i), data(shape, dtype, 60 + i)
            tau = coefficient(kind, rows, dtype, i, positive=True, ndim=len(shape))
            if small:
                x.requires_grad_()
            kw = {"noise": data(shape, dtype, 70 + i)} if i % 2 == 0 else {"generator": generator(i)}
            return (x, s, tau), kw

        out.append(Sample(make, describe(shape, dtype, kind, "noise" if i % 2 == 0 else "drawn"), dtype,
                          twin=i % 2 == 0, grad=(0,) if small else (), opcheck=i in (0, 3)))
    return out


LANGEVIN_STEP = OpInfo("langevin_step", langevin_step_samples, data_args={0: "x", 1: "score"}, differentiable=True)
OP_INFOS = [LANGEVIN_STEP]
globals().update(op_tests(LANGEVIN_STEP))
