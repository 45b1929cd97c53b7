"""multistep_update, the noisy update with a second score term, against its
twin; its stream (noisy_update's), batch invariance, in place and out=, clear
errors; the samples of the generic tests (tests/opinfo.py)."""

import pytest
import torch

import scorekern
from scorekern import ops, reference

from conftest import DTYPES, SHAPES, TOL, devices, opmath, requires_compiled
from opinfo import OpInfo, BadInput, Sample, shape_dtype_cases, coefficient, data, describe, op_tests, rows_of, \
    update_kwargs, view_for

pytestmark = requires_compiled


def _inputs(shape, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(shape, generator=g).to(dtype=dtype, device=device) for _ in range(4))


def _coefs(shape, dtype, device, per_row):
    if not per_row:
        return 0.9, 0.2, -0.4, 0.3
    g = torch.Generator().manual_seed(9)
    n = 1 if len(shape) == 1 else shape[0]
    return tuple((torch.rand(n, generator=g) - 0.3).to(dtype=opmath(dtype), device=device) for _ in range(3)) + (
        (torch.rand(n, generator=g) + 0.1).to(dtype=opmath(dtype), device=device),)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("per_row", [False, True])
def test_equals_the_twin_on_explicit_noise(device, dtype, shape, per_row):
    x, s, s2, z = _inputs(shape, dtype, device)
    coefs = _coefs(shape, dtype, device, per_row)
    new, mean = ops.multistep_update(x, s, s2, *coefs, noise=z, return_mean=True)
    up = lambda t: t.to(opmath(dtype))  # noqa: E731
    ref_new, ref_mean = reference.multistep_update(up(x), up(s), up(s2), *coefs, noise=up(z), return_mean=True)
    torch.testing.assert_close(new, ref_new.to(dtype), **TOL[dtype])
    torch.testing.assert_close(mean, ref_mean.to(dtype), **TOL[dtype])
    assert new.dtype == dtype and new.shape == x.shape


@pytest.mark.parametrize("device", devices())
def test_stream_noise_is_noisy_updates(device):
    """The noise drawn is the stream at the generator's offset, as
    noisy_update draws it: with b2 = 0 the two ops agree bit for bit."""
    x, s, s2, _ = _inputs((6, 37), torch.float32, device)
    gen = lambda: torch.Generator(device=device).manual_seed(5)  # noqa: E731
    ids = torch.arange(6, device=device) * 3 + 1
    got = ops.multistep_update(x, s, s2, 0.9, 0.2, 0.0, 0.3, generator=gen(), row_ids=ids)
    plain = ops.noisy_update(x, s, 0.9, 0.2, 0.3, generator=gen(), row_ids=ids)
    torch.testing.assert_close(got, plain, rtol=0, atol=0)
    g = gen()
    seed, offset = ops.draw_seed_offset(g, x.device)
    z = ops.randn_like(x, seed=seed, offset=offset, row_ids=ids)
    drawn = ops.multistep_update(x, s, s2, 0.9, 0.2, -0.7, 0.3, generator=gen(), row_ids=ids)
    torch.testing.assert_close(drawn, reference.multistep_update(x, s, s2, 0.9, 0.2, -0.7, 0.3, noise=z),
                               **TOL[torch.float32])


@pytest.mark.parametrize("device", devices())
def test_batch_invariant_with_row_ids(device):
    x, s, s2, _ = _inputs((40, 9), torch.float32, device)
    ids = torch.arange(40, device=device) + 100
    whole = ops.multistep_update(x, s, s2, 1.0, 0.1, 0.3, 0.2,
                                 generator=torch.Generator(device=device).manual_seed(3), row_ids=ids)
    part = ops.multistep_update(x[10:25], s[10:25], s2[10:25], 1.0, 0.1, 0.3, 0.2,
                                generator=torch.Generator(device=device).manual_seed(3), row_ids=ids[10:25])
    torch.testing.assert_close(part, whole[10:25], rtol=0, atol=0)


@pytest.mark.parametrize("device", devices())
def test_in_place_and_strided_out(device):
    x, s, s2, z = _inputs((4, 3, 5), torch.float32, device)
    expect = reference.multistep_update(x, s, s2, 0.8, 0.5, -0.25, 0.1, noise=z)
    inplace = x.clone()
    res = ops.multistep_update(inplace, s, s2, 0.8, 0.5, -0.25, 0.1, noise=z, out=inplace)
    assert res.data_ptr() == inplace.data_ptr()
    torch.testing.assert_close(inplace, expect)
    strided = torch.empty(4, 5, 3, device=device).transpose(1, 2)
    ops.multistep_update(x, s, s2, 0.8, 0.5, -0.25, 0.1, noise=z, out=strided)
    torch.testing.assert_close(strided, expect)


def test_twin_backend_keeps_the_formula():
    x, s, s2, z = _inputs((5, 6), torch.float64, "cpu")
    with scorekern.use_backend("torch"):
        twin = ops.multistep_update(x, s, s2, 0.9, 0.2, 0.4, 0.3, noise=z)
    fused = ops.multistep_update(x, s, s2, 0.9, 0.2, 0.4, 0.3, noise=z)
    torch.testing.assert_close(fused, twin, **TOL[torch.float64])


def test_torch_compile_fullgraph():
    x, s, s2, _ = _inputs((16, 12), torch.float32, "cpu")

    def step(x, s):
        return ops.multistep_update(x, s, s2, 1.0, 0.3, -0.2, 0.1, noise=s)

    compiled = torch.compile(step, fullgraph=True)
    torch.testing.assert_close(compiled(x, s), step(x, s))


# ---------------------------------------------------------------------------
# The samples every generic test draws from (tests/opinfo.py)


def multistep_update_samples():
    out = []
    for i, (shape, dtype) in shape_dtype_cases():
        view, rows = view_for(i, shape), rows_of(shape)
        kinds = [["float", "0d", "rows", "rows_broadcast"][(i + k) % 4] for k in range(4)]
        explicit = i % 3 != 2
        placement = [None, "new", "strided", "inplace"][(i + i // 4) % 4]
        mean = i % 2 == 0

        def make(shape=shape, dtype=dtype, view=view, rows=rows, kinds=kinds, i=i, explicit=explicit,
                 placement=placement, mean=mean):
            x, s, s2 = data(shape, dtype, i, view), data(shape, dtype, 50 + i, view), data(shape, dtype, 70 + i)
            coefs = [coefficient(kinds[k], rows, dtype, 4 * i + k, positive=k == 3, ndim=len(shape))
                     for k in range(4)]
            if i % 11 == 5:
                coefs[3] = 0.0  # an ODE step: no noise drawn
            return (x, s, s2, *coefs), update_kwargs({"return_mean": mean}, x, i, view, explicit, placement, mean)

        out.append(Sample(make, describe(shape, dtype, view, "/".join(kinds), placement, "mean" if mean else "",
                                         "noise" if explicit else "drawn"),
                          dtype, twin=explicit, opcheck=i in (0, 7, 14, 26)))
    return out


def multistep_update_bad_inputs():
    x, s, s2, _ = _inputs((4, 6), torch.float32, "cpu")
    return [
        BadInput(lambda: ((x, s, s2[:2], 1.0, 0.1, 0.1, 0.1), {}), ValueError, "score2", "score2 of another shape"),
        BadInput(lambda: ((x, s, s2.double(), 1.0, 0.1, 0.1, 0.1), {}), TypeError, "score2", "score2 float64"),
        BadInput(lambda: ((x, s, s2.tolist(), 1.0, 0.1, 0.1, 0.1), {}), TypeError, "score2", "score2 a list"),
        BadInput(lambda: ((x, s, s2, 1.0, 0.1, torch.ones(3), 0.1), {}), ValueError, "b2", "b2 of 3 rows"),
        BadInput(lambda: ((x, s, s2, 1.0, 0.1, 0.1, -0.1), {}), ValueError, "c", "negative c"),
        BadInput(lambda: ((x, s.clone().requires_grad_(), s2, 1.0, 0.1, 0.1, 0.1), {}), RuntimeError,
                 "not differentiable", "a score needing a gradient"),
    ]


MULTISTEP_UPDATE = OpInfo("multistep_update", multistep_update_samples, data_args={0: "x", 1: "score", 2: "score2"},
                          bad_inputs=multistep_update_bad_inputs)
OP_INFOS = [MULTISTEP_UPDATE]
globals().update(op_tests(MULTISTEP_UPDATE))
