"""masked_update, inpainting's fused step, against its twin; its stream,
batch invariance, exact observed entries, broadcasting and out=; the samples
of the generic tests (tests/opinfo.py)."""

import pytest
import torch

import scorekern
from scorekern import ops, reference

from conftest import DTYPES, SHAPES, TOL, devices, opmath, requires_compiled
from opinfo import OpInfo, Sample, shape_dtype_cases, coefficient, data, describe, generator, op_tests, outs, row_ids, \
    rows_of, view_for

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
    base = (x, s, y, mask, [rows, rows + 1], [1, 3], [0.9, 1.0, 0.3, 1.0, 0.4])
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
# The samples every generic test draws from (tests/opinfo.py)


def masked_update_samples():
    out = []
    for i, (shape, dtype) in shape_dtype_cases():
        if i % 2:
            continue  # half the shapes × dtypes: the walk is noisy_update's
        view, rows = view_for(i, shape), rows_of(shape)
        kinds = [["float", "0d", "rows", "rows_broadcast"][(i // 2 + k) % 4] for k in range(5)]
        explicit = i % 3 != 2
        placement = [None, "new", "strided", "inplace"][(i // 2) % 4]
        mean, bool_mask = i % 4 == 0, i % 8 == 2

        def make(shape=shape, dtype=dtype, view=view, rows=rows, kinds=kinds, i=i, explicit=explicit,
                 placement=placement, mean=mean, bool_mask=bool_mask):
            x, s, y = data(shape, dtype, i, view), data(shape, dtype, 50 + i, view), data(shape, dtype, 70 + i)
            mask = torch.rand(shape, generator=torch.Generator().manual_seed(i)) > 0.4
            mask = mask if bool_mask else mask.to(dtype)
            coefs = [coefficient(kinds[k], rows, dtype, 5 * i + k, positive=k in (2, 4), ndim=len(shape))
                     for k in range(5)]
            kw = {"return_mean": mean}
            if explicit:
                kw.update(noise=data(shape, dtype, 90 + i, view), observed_noise=data(shape, dtype, 110 + i))
            else:
                kw["generator"] = generator(i)
                if i % 4 == 2:
                    kw["row_ids"] = row_ids(rows, i)
            if placement:
                kw["out"] = outs(x, placement, mean)
            return (x, s, y, mask, *coefs), kw

        out.append(Sample(make, describe(shape, dtype, view, "/".join(kinds), placement, "mean" if mean else "",
                                         "bool mask" if bool_mask else "", "noise" if explicit else "drawn"),
                          dtype, twin=explicit, opcheck=i in (0, 10, 26)))
    return out


MASKED_UPDATE = OpInfo("masked_update", masked_update_samples, data_args={0: "x", 1: "score"})
OP_INFOS = [MASKED_UPDATE]
globals().update(op_tests(MASKED_UPDATE))
