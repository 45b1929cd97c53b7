"""Inpainting: the fused masked update against its twin, and
samplers.inpaint on a correlated Gaussian with its exact score."""

import math

import pytest
import torch

import scorekern
from scorekern import ops, reference, samplers
from scorekern.sde import VESDE, VPSDE, SubVPSDE

from conftest import DTYPES, SHAPES, TOL, devices, opmath, requires_compiled
from exact_scores import gaussian_score

pytestmark = requires_compiled


def _inputs(shape, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, s, y, z1, z2 = (torch.randn(shape, generator=g).to(dtype=dtype, device=device) for _ in range(5))
    mask = (torch.rand(shape, generator=g) > 0.4).to(device)
    return x, s, y, mask, z1, z2


def _rows(shape):
    return 1 if len(shape) == 1 else shape[0]


def _coefs(shape, dtype, device, per_row):
    if not per_row:
        return 0.9, 0.2, 0.3, 0.8, 0.5
    g = torch.Generator().manual_seed(9)
    return tuple((torch.rand(_rows(shape), generator=g) + 0.1).to(dtype=opmath(dtype), device=device)
                 for _ in range(5))


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("per_row", [False, True])
def test_equals_the_twin_on_explicit_noise(device, dtype, shape, per_row):
    x, s, y, mask, z1, z2 = _inputs(shape, dtype, device)
    coefs = _coefs(shape, dtype, device, per_row)
    new, mean = ops.masked_update(x, s, y, mask, *coefs, noise=z2, observed_noise=z1, return_mean=True)
    up = lambda t: t.to(opmath(dtype))  # noqa: E731
    ref_new, ref_mean = reference.masked_update(up(x), up(s), up(y), up(mask), *coefs, noise=up(z2),
                                                observed_noise=up(z1), return_mean=True)
    torch.testing.assert_close(new, ref_new.to(dtype), **TOL[dtype])
    torch.testing.assert_close(mean, ref_mean.to(dtype), **TOL[dtype])
    assert new.dtype == dtype and new.shape == x.shape


@pytest.mark.parametrize("device", devices())
def test_stream_noise_is_the_documented_stream(device):
    """z₂ is the stream at the first offset drawn, z₁ at the second, as the
    twin reads them; the unobserved part equals noisy_update's."""
    shape = (6, 37)
    x, s, y, mask, _, _ = _inputs(shape, torch.float32, device)
    gen = lambda: torch.Generator(device=device).manual_seed(5)  # noqa: E731
    ids = torch.arange(6, device=device) * 3 + 1
    new = ops.masked_update(x, s, y, mask, 0.9, 0.2, 0.3, 0.8, 0.5, generator=gen(), row_ids=ids)
    g = gen()
    seed, off2 = ops.draw_seed_offset(g, x.device)
    _, off1 = ops.draw_seed_offset(g, x.device)
    z2 = ops.randn_like(x, seed=seed, offset=off2, row_ids=ids)
    z1 = ops.randn_like(x, seed=seed, offset=off1, row_ids=ids)
    expect = reference.masked_update(x, s, y, mask.float(), 0.9, 0.2, 0.3, 0.8, 0.5, noise=z2, observed_noise=z1)
    torch.testing.assert_close(new, expect, **TOL[torch.float32])
    plain = ops.noisy_update(x, s, 0.9, 0.2, 0.3, generator=gen(), row_ids=ids)
    torch.testing.assert_close(new[~mask], plain[~mask], rtol=0, atol=0)
    # z₁ and z₂ are different draws
    assert (z1 - z2).abs().min() > 0


@pytest.mark.parametrize("device", devices())
def test_batch_invariant_with_row_ids(device):
    x, s, y, mask, _, _ = _inputs((40, 9), torch.float32, device)
    ids = torch.arange(40, device=device) + 100
    whole = ops.masked_update(x, s, y, mask, 1.0, 0.1, 0.2, 0.7, 0.6,
                              generator=torch.Generator(device=device).manual_seed(3), row_ids=ids)
    part = ops.masked_update(x[10:25], s[10:25], y[10:25], mask[10:25], 1.0, 0.1, 0.2, 0.7, 0.6,
                             generator=torch.Generator(device=device).manual_seed(3), row_ids=ids[10:25])
    torch.testing.assert_close(part, whole[10:25], rtol=0, atol=0)


@pytest.mark.parametrize("device", devices())
def test_observed_entries_exact_when_noise_free(device):
    x, s, y, mask, _, _ = _inputs((8, 33), torch.float32, device)
    y = y * 1e3  # far from the update's values: a blend written as u + m·(o − u) would round
    new, mean = ops.masked_update(x, s, y, mask, 1.3, 0.7, 0.0, 1.0, 0.0, return_mean=True)
    assert torch.equal(new[mask], y[mask]) and torch.equal(mean[mask], y[mask])
    torch.testing.assert_close(new[~mask], (1.3 * x + 0.7 * s)[~mask])


@pytest.mark.parametrize("device", devices())
def test_broadcast_mask_and_y_in_place_and_out(device):
    x, s, _, _, z1, z2 = _inputs((4, 3, 5), torch.float32, device)
    y = torch.randn(1, 3, 5, device=device)
    mask = torch.tensor([1.0, 0.0, 1.0], device=device)[:, None].expand(3, 5)
    expect = reference.masked_update(x, s, y.expand_as(x), mask.expand_as(x), 1.0, 0.5, 0.1, 0.9, 0.2, noise=z2,
                                     observed_noise=z1)
    got = ops.masked_update(x, s, y, mask, 1.0, 0.5, 0.1, 0.9, 0.2, noise=z2, observed_noise=z1)
    torch.testing.assert_close(got, expect)
    inplace = x.clone()
    res = ops.masked_update(inplace, s, y, mask, 1.0, 0.5, 0.1, 0.9, 0.2, noise=z2, observed_noise=z1,
                            out=inplace)
    assert res.data_ptr() == inplace.data_ptr()
    torch.testing.assert_close(inplace, expect)
    strided = torch.empty(4, 5, 3, device=device).transpose(1, 2)
    ops.masked_update(x, s, y, mask, 1.0, 0.5, 0.1, 0.9, 0.2, noise=z2, observed_noise=z1, out=strided)
    torch.testing.assert_close(strided, expect)


def test_twin_backend_keeps_the_formula():
    x, s, y, mask, z1, z2 = _inputs((5, 6), torch.float64, "cpu")
    with scorekern.use_backend("torch"):
        twin = ops.masked_update(x, s, y, mask, 0.9, 0.2, 0.3, 0.8, 0.5, noise=z2, observed_noise=z1)
    fused = ops.masked_update(x, s, y, mask, 0.9, 0.2, 0.3, 0.8, 0.5, noise=z2, observed_noise=z1)
    torch.testing.assert_close(fused, twin, **TOL[torch.float64])


def test_clear_errors():
    x, s, y, mask, _, _ = _inputs((4, 6), torch.float32, "cpu")
    with pytest.raises(ValueError, match="mask"):
        ops.masked_update(x, s, y, torch.ones(5, 6), 1.0, 0.1, 0.1, 1.0, 0.1)
    with pytest.raises(TypeError, match="y"):
        ops.masked_update(x, s, y.int(), mask, 1.0, 0.1, 0.1, 1.0, 0.1)
    with pytest.raises(ValueError, match="sigma"):
        ops.masked_update(x, s, y, mask, 1.0, 0.1, 0.1, 1.0, -0.1)
    with pytest.raises(ValueError, match="mu"):
        ops.masked_update(x, s, y, mask, 1.0, 0.1, 0.1, torch.ones(3), 0.1)
    with pytest.raises(RuntimeError, match="not differentiable|differentiable"):
        ops.masked_update(x, s.requires_grad_(), y, mask, 1.0, 0.1, 0.1, 1.0, 0.1)


@pytest.mark.parametrize("device", devices())
def test_opcheck(device):
    x, s, y, mask, z1, z2 = _inputs((4, 10), torch.float32, device)
    mask = mask.float()
    rows = torch.rand(4, device=device)
    base = (x, s, y, mask, None, 0.9, rows, 1.0, None, 0.3, rows + 1, 1.0, None, 0.4)
    for noise, observed, ret in ((z2, z1, True), (None, None, False), (None, z1, True)):
        torch.library.opcheck(torch.ops.scorekern.masked_update.default,
                              base + (noise, observed, 11, 22, 33, None, ret))
    out, mean = torch.empty_like(x), torch.empty_like(x)
    torch.library.opcheck(torch.ops.scorekern.masked_update_out.default,
                          base + (None, None, 11, 22, 33, torch.arange(4, device=device), out, mean))


def test_torch_compile_fullgraph():
    x, s, y, mask, _, _ = _inputs((16, 12), torch.float32, "cpu")

    def step(x, s):
        return ops.masked_update(x, s, y, mask, 1.0, 0.3, 0.2, 0.9, 0.1, generator=None, noise=s, observed_noise=x)

    compiled = torch.compile(step, fullgraph=True)
    torch.testing.assert_close(compiled(x, s), step(x, s))


# ---------------------------------------------------------------------------
# samplers.inpaint on a correlated Gaussian: the exact conditional is known.

MU = torch.tensor([1.0, -0.5])
COV = torch.tensor([[1.0, 1.35], [1.35, 2.25]])  # correlation 0.9
Y1 = 2.0
COND_MEAN = float(MU[1] + COV[1, 0] / COV[0, 0] * (Y1 - MU[0]))  # 0.85
COND_VAR = float(COV[1, 1] - COV[1, 0] ** 2 / COV[0, 0])  # 0.4275


def _inpaint(sde, n, resample, **kw):
    y = torch.zeros(n, 2)
    y[:, 0] = Y1
    x = samplers.inpaint(gaussian_score(sde, MU, COV), sde, y, torch.tensor([True, False]), resample=resample,
                         generator=torch.Generator().manual_seed(0), progress=False, **kw)
    assert torch.equal(x[:, 0], y[:, 0])  # observed entries exactly y
    return x[:, 1]


@pytest.mark.slow
@pytest.mark.parametrize("sde", [VPSDE(N=100), VESDE(sigma_max=10.0, N=100)], ids=["vp", "ve"])
def test_resampling_gives_the_conditional_and_plain_replacement_does_not(sde):
    """8000 samples, so the standard error of the mean is 0.007 and of the
    variance 0.007. Measured (VP): plain replacement gives mean 0.24 and
    variance 0.96 (against 0.85 and 0.43); 20 resamplings per step 0.84 and
    0.42. Bounds: with resampling, mean within 0.04 and variance within 0.05
    (about 5 standard errors plus the 0.01 bias left by 100 steps);
    without, a mean error above 0.3."""
    resampled = _inpaint(sde, 8000, 20)
    assert abs(float(resampled.mean()) - COND_MEAN) < 0.04
    assert abs(float(resampled.var()) - COND_VAR) < 0.05
    plain = _inpaint(sde, 8000, 1)
    assert abs(float(plain.mean()) - COND_MEAN) > 0.3


def test_inpaint_sub_vp_corrector_trajectory_and_errors():
    sde = SubVPSDE(N=30)
    steps = []
    y = torch.randn(50, 2)
    x, traj = samplers.inpaint(gaussian_score(sde, MU, COV), sde, y, torch.tensor([True, False]), resample=2,
                               corrector="langevin", generator=torch.Generator().manual_seed(1), progress=False,
                               callback=lambda i, t, x, m: steps.append(i), return_steps=[0, -1])
    assert steps == list(range(30)) and sorted(traj) == [0, 29]
    assert torch.equal(x[:, 0], y[:, 0]) and torch.isfinite(x).all()
    # unknown entries given as NaN are ignored
    y_nan = y.clone()
    y_nan[:, 1] = float("nan")
    with_nan = samplers.inpaint(gaussian_score(sde, MU, COV), sde, y_nan, torch.tensor([True, False]), resample=2,
                                corrector="langevin", generator=torch.Generator().manual_seed(1), progress=False)
    assert torch.equal(with_nan, x)
    again = samplers.inpaint(gaussian_score(sde, MU, COV), sde, y, torch.tensor([True, False]), resample=2,
                             corrector="langevin", generator=torch.Generator().manual_seed(1), progress=False)
    assert torch.equal(again, x)
    with pytest.raises(ValueError, match="resample"):
        samplers.inpaint(gaussian_score(sde, MU, COV), sde, y, torch.tensor([True, False]), resample=0)
    with pytest.raises(ValueError, match="predictor"):
        samplers.inpaint(gaussian_score(sde, MU, COV), sde, y, torch.tensor([True, False]), predictor=None)
    with pytest.raises(ValueError, match="mask"):
        samplers.inpaint(gaussian_score(sde, MU, COV), sde, y, torch.ones(3))


def test_inpaint_twin_path_matches_in_distribution():
    """The twin path (use_backend("torch")) draws other noise; its samples
    have the same conditional mean within 5 standard errors of the difference."""
    sde = VPSDE(N=40)
    fused = _inpaint(sde, 4000, 4)
    with scorekern.use_backend("torch"):
        twin = _inpaint(sde, 4000, 4)
    se = math.sqrt(float(fused.var()) / 4000 + float(twin.var()) / 4000)
    assert abs(float(fused.mean()) - float(twin.mean())) < 5 * se
