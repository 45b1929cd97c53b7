"""perturb and the fused DSM loss against their twins; the graph keeps no
noise tensor; the samples of the generic tests (tests/opinfo.py)."""

import math

import pytest
import torch
from torch.autograd.graph import saved_tensors_hooks

import scorekern
from scorekern import ops, reference

from conftest import DTYPES, SHAPES, TOL, devices, loss_tol, opmath, requires_compiled, sums_tol
from opinfo import BadInput, OpInfo, Sample, coefficient, data, describe, generator, op_tests, row_ids, rows_of, \
    shape_dtype_cases, view_for

pytestmark = requires_compiled


def _randn(shape, dtype, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


def _rows(shape):
    return 1 if len(shape) == 1 else shape[0]


def _scales(kind, shape, device):
    """(score_scale, noise_scale, weight) as floats or [B] tensors."""
    if kind == "float":
        return 0.7, 1.3, 2.0
    g = torch.Generator().manual_seed(3)
    rows = _rows(shape)
    p, q, w = (torch.rand(rows, generator=g, dtype=torch.float64) + 0.25 for _ in range(3))
    return p.to(device), (-q).to(device), w.to(device)


# ---------------------------------------------------------------------------
# perturb


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_perturb_is_mean_plus_std_noise(device, dtype, shape):
    x0 = _randn(shape, dtype, device)
    rows = _rows(shape)
    mean_coef = torch.rand(rows, dtype=torch.float64, device=device) + 0.5
    std = torch.rand(rows, dtype=torch.float64, device=device) + 0.1
    x_t, noise = ops.perturb(x0, mean_coef, std, generator=torch.Generator(device).manual_seed(5))
    assert isinstance(noise, ops.Noise) and noise.shape == x0.shape and noise.dtype == dtype
    z = noise.tensor(opmath(dtype))
    view = (-1,) + (1,) * (len(shape) - 1)
    want = (mean_coef.reshape(view) * x0.to(opmath(dtype)) + std.reshape(view) * z).to(dtype)
    assert x_t.dtype == dtype and x_t.shape == x0.shape
    torch.testing.assert_close(x_t, want, **TOL[dtype])
    # The handle's noise is the documented stream for its words.
    torch.testing.assert_close(noise.tensor(), ops.randn_like(x0, seed=noise.seed % 2**64, offset=noise.offset % 2**64))


def test_perturb_is_reproducible_and_row_ids_pin_noise():
    x0 = _randn((6, 9), torch.float32)
    a, na = ops.perturb(x0, 1.0, 0.5, generator=torch.Generator().manual_seed(1))
    b, nb = ops.perturb(x0, 1.0, 0.5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and (na.seed, na.offset) == (nb.seed, nb.offset)
    ids = torch.tensor([10, 11, 12, 13, 14, 15])
    g = torch.Generator().manual_seed(2)
    full, nfull = ops.perturb(x0, 1.0, 0.5, generator=g, row_ids=ids)
    g = torch.Generator().manual_seed(2)
    part, npart = ops.perturb(x0[3:], 1.0, 0.5, generator=g, row_ids=ids[3:])
    assert torch.equal(full[3:], part)
    assert torch.equal(nfull.tensor()[3:], npart.tensor())


def test_perturb_gradient_flows_to_x0_and_coefficients():
    x0 = _randn((4, 5), torch.float64).requires_grad_()
    m = (torch.rand(4, dtype=torch.float64) + 0.5).requires_grad_()
    s = (torch.rand(4, dtype=torch.float64) + 0.1).requires_grad_()

    def f(x0, m, s):
        return ops.perturb(x0, m, s, generator=torch.Generator().manual_seed(0))[0]

    assert torch.autograd.gradcheck(f, (x0, m, s))


# ---------------------------------------------------------------------------
# dsm_loss against the twin


def _dsm_both(score, noise_for_fused, z, p, q, w, **kw):
    """(fused loss, fused grad, twin loss, twin grad) on the same noise."""
    s1 = score.detach().clone().requires_grad_()
    s2 = score.detach().clone().requires_grad_()
    got = ops.dsm_loss(s1, noise_for_fused, p, q, weight=w, **kw)
    want = reference.dsm_loss(s2, z, p, q, weight=w, **kw)
    probe = torch.linspace(-1, 2, got.numel(), dtype=got.dtype, device=got.device).reshape(got.shape)
    (got * probe).sum().backward()
    (want * probe).sum().backward()
    return got, s1.grad, want, s2.grad


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["float", "rows"])
def test_dsm_regenerated_noise_matches_twin(device, dtype, shape, kind):
    x0 = _randn(shape, dtype, device, seed=1)
    _, noise = ops.perturb(x0, 1.0, 0.3, generator=torch.Generator(device).manual_seed(4))
    score = _randn(shape, dtype, device, seed=2)
    p, q, w = _scales(kind, shape, device)
    z = noise.tensor(opmath(dtype))  # the kernels' z, before any rounding to dtype
    got, grad, want, want_grad = _dsm_both(score, noise, z, p, q, w, reduction="none")
    assert got.dtype == opmath(dtype) and got.shape == (_rows(shape),)
    torch.testing.assert_close(got, want, **loss_tol(dtype))
    assert grad.dtype == dtype
    torch.testing.assert_close(grad, want_grad, **TOL[dtype])


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3, 7), (2, 1030), (64, 2), (9,)])
def test_dsm_noise_tensor_matches_twin(device, dtype, shape):
    score, z = _randn(shape, dtype, device, 1), _randn(shape, dtype, device, 2)
    p, q, w = _scales("rows", shape, device)
    got, grad, want, want_grad = _dsm_both(score, z, z, p, q, w, reduction="none")
    torch.testing.assert_close(got, want, **loss_tol(dtype))
    torch.testing.assert_close(grad, want_grad, **TOL[dtype])


@pytest.mark.parametrize("row_reduction", ["sum", "mean"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_dsm_reductions(row_reduction, reduction):
    score, z = _randn((7, 3, 5), torch.float32, seed=1), _randn((7, 3, 5), torch.float32, seed=2)
    sigma = torch.rand(7, dtype=torch.float64) + 0.1
    got, grad, want, want_grad = _dsm_both(score, z, z, sigma, 1.0, sigma**2, row_reduction=row_reduction,
                                           reduction=reduction)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(grad, want_grad)


def test_dsm_weight_tensor_gets_its_gradient():
    score, z = _randn((6, 4), torch.float64, seed=1), _randn((6, 4), torch.float64, seed=2)
    grads = []
    for fn in (ops.dsm_loss, reference.dsm_loss):
        w = (torch.rand(6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 1).requires_grad_()
        fn(score, z, 0.5, weight=w).backward()
        grads.append(w.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_dsm_keeps_no_noise_tensor():
    # perturb → score → loss: the graph saves the score (the model's output,
    # already alive) and per-row values, never a tensor of the noise's size.
    x0 = _randn((32, 3, 8, 8), torch.float32)
    weight = torch.randn(3, 8, 8, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with saved_tensors_hooks(pack, lambda t: t):
        x_t, noise = ops.perturb(x0, 0.9, 0.4)
        score = x_t * weight  # saves x_t: the model's input
        loss = ops.dsm_loss(score, noise, 0.4)
    big = [t for t in saved if t.numel() == x0.numel()]
    assert big, "the test saw no saved tensor at all"
    owners = {x_t.data_ptr(), score.data_ptr()}
    assert all(t.data_ptr() in owners for t in big), "a noise-sized tensor was saved"
    loss.backward()
    assert weight.grad is not None and torch.isfinite(weight.grad).all()


def test_dsm_gradcheck():
    score = _randn((3, 5), torch.float64).requires_grad_()
    z = _randn((3, 5), torch.float64, seed=1).requires_grad_()
    p = torch.rand(3, dtype=torch.float64) + 0.2
    w = (torch.rand(3, dtype=torch.float64) + 0.5).requires_grad_()
    x0 = _randn((3, 5), torch.float64, seed=2)
    _, noise = ops.perturb(x0, 1.0, 0.5, generator=torch.Generator().manual_seed(9))

    def regenerated(s, w):
        return ops.dsm_loss(s, noise, p, -0.8, weight=w, reduction="none")

    def explicit(s, z):
        return ops.dsm_loss(s, z, 0.6, p, row_reduction="mean", reduction="sum")

    assert torch.autograd.gradcheck(regenerated, (score, w))
    assert torch.autograd.gradgradcheck(regenerated, (score, w))
    assert torch.autograd.gradcheck(explicit, (score, z))
    assert torch.autograd.gradgradcheck(explicit, (score, z))


@pytest.mark.parametrize("device", devices())
def test_opcheck(device):
    score, z = _randn((4, 10), torch.float32, device), _randn((4, 10), torch.float32, device, 1)
    rows = torch.rand(4, device=device)
    ids = torch.arange(4, device=device) * 3
    for args in [
        (score, [], [], [0.5, 1.0], z, 0, 0, None),
        (score, [rows], [0], [1.0, -1.0], None, 7, 8, ids),
        (score.double().requires_grad_(), [], [], [0.5, 1.0], None, 7, 8, None),
        (score.requires_grad_(), [rows, rows], [0, 1], [1.0, 1.0], z.requires_grad_(), 0, 0, None),
    ]:
        torch.library.opcheck(torch.ops.scorekern.dsm_loss.default, args)


def test_dsm_empty():
    for shape in [(0, 4), (3, 0)]:
        score = torch.empty(shape)
        got = ops.dsm_loss(score, torch.empty(shape), 1.0, reduction="none")
        assert got.shape == (shape[0],)
        if shape[0]:
            assert torch.equal(got, torch.zeros(shape[0]))


# ---------------------------------------------------------------------------
# The twin path and mixed paths


def test_twin_path_handle_regenerates_its_own_noise():
    x0 = _randn((5, 6), torch.float32)
    score = _randn((5, 6), torch.float32, seed=1)
    with scorekern.use_backend("torch"):
        x_t, noise = ops.perturb(x0, 1.0, 0.5, generator=torch.Generator().manual_seed(0))
        assert not noise.compiled
        loss = ops.dsm_loss(score, noise, 0.5)
    z = noise.tensor()
    torch.testing.assert_close(x_t, x0 + 0.5 * z)
    torch.testing.assert_close(loss, reference.dsm_loss(score, z, 0.5))
    # The compiled path reads a twin-drawn handle's noise as a tensor.
    torch.testing.assert_close(ops.dsm_loss(score, noise, 0.5), loss)


def test_compiled_handle_under_the_twin_backend():
    x0 = _randn((5, 6), torch.float32)
    score = _randn((5, 6), torch.float32, seed=1)
    _, noise = ops.perturb(x0, 1.0, 0.5)
    fused = ops.dsm_loss(score, noise, 0.5)
    with scorekern.use_backend("torch"):
        twin = ops.dsm_loss(score, noise, 0.5)
    torch.testing.assert_close(fused, twin)


# ---------------------------------------------------------------------------
# Errors


def test_cpp_checks_guard_direct_calls():
    x = torch.randn(4, 6)
    with pytest.raises(RuntimeError, match="noise must have score's shape"):
        torch.ops.scorekern.dsm_loss(x, [], [], [1.0, 1.0], torch.randn(4, 5), 0, 0, None)
    with pytest.raises(RuntimeError, match="p must hold one value per row"):
        torch.ops.scorekern.dsm_loss(x, [torch.ones(3)], [0], [1.0, 1.0], None, 0, 0, None)


def test_torch_compile_traces_the_losses():
    score = _randn((8, 12), torch.float32).requires_grad_()
    z = _randn((8, 12), torch.float32, seed=1)
    sigma = torch.rand(8) + 0.1
    dsm = torch.compile(lambda s, z, sigma: ops.dsm_loss(s, z, sigma), fullgraph=True)
    got = dsm(score, z, sigma)
    want = ops.dsm_loss(score, z, sigma)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, score)[0], torch.autograd.grad(want, score)[0])


# ---------------------------------------------------------------------------
# The samples every generic test draws from (tests/opinfo.py)


def perturb_samples():
    out = []
    for i, (shape, dtype) in shape_dtype_cases():
        if i % 4 in (2, 3):  # float32 and float64 of every shape; 16-bit ones from dsm_loss's samples
            continue
        rows, kinds = rows_of(shape), [["float", "0d", "rows", "rows_broadcast"][(i // 2 + k) % 4] for k in range(2)]
        small = dtype == torch.float64 and 0 < math.prod(shape) <= 40

        def make(shape=shape, dtype=dtype, rows=rows, kinds=kinds, i=i, small=small):
            x0 = data(shape, dtype, i, view_for(i, shape))
            if small:
                x0.requires_grad_()
            kw = {"generator": generator(i)}
            if i % 3 == 0:
                kw["row_ids"] = row_ids(rows, i)
            return (x0, coefficient(kinds[0], rows, dtype, i, ndim=len(shape)),
                    coefficient(kinds[1], rows, dtype, i + 1, positive=True, ndim=len(shape))), kw

        out.append(Sample(make, describe(shape, dtype, "/".join(kinds)), dtype, twin=False,
                          grad=(0,) if small else (), opcheck=i in (0, 8)))
    return out


def dsm_loss_samples():
    out = []
    for i, (shape, dtype) in shape_dtype_cases():
        view, rows = view_for(i, shape), rows_of(shape)
        kinds = [["float", "0d", "rows", "rows_broadcast"][(i + k) % 4] for k in range(3)]
        regenerated = i % 2 == 0  # the Noise handle from perturb, or a noise tensor
        row_reduction, reduction = ["sum", "mean"][(i // 2) % 2], ["mean", "sum", "none"][(i // 4) % 3]
        small = dtype == torch.float64 and 0 < math.prod(shape) <= 40

        def make(shape=shape, dtype=dtype, view=view, rows=rows, kinds=kinds, i=i, regenerated=regenerated,
                 row_reduction=row_reduction, reduction=reduction, small=small):
            score = data(shape, dtype, i, view)
            if regenerated:
                kw = {"row_ids": row_ids(rows, i)} if i % 3 == 0 else {}
                _, noise = ops.perturb(data(shape, dtype, 200 + i), 1.0, 0.5, generator=generator(i), **kw)
            else:
                noise = data(shape, dtype, 100 + i, view)
            weight = coefficient(kinds[2], rows, dtype, 3 * i + 2, positive=True, ndim=len(shape))
            if small:
                score.requires_grad_()
                if not regenerated:
                    noise.requires_grad_()
            return (score, noise, coefficient(kinds[0], rows, dtype, 3 * i, ndim=len(shape)),
                    coefficient(kinds[1], rows, dtype, 3 * i + 1, ndim=len(shape))), dict(
                        weight=weight, row_reduction=row_reduction, reduction=reduction)

        grad = ((0,) if regenerated else (0, 1)) if small else ()
        out.append(Sample(make, describe(shape, dtype, view, "/".join(kinds), row_reduction, reduction,
                                         "regenerated" if regenerated else "noise tensor"),
                          dtype, grad=grad, sim_tol=sums_tol(dtype), opcheck=i in (0, 5, 13, 22)))
    return out


def perturb_bad_inputs():
    x = torch.randn(4, 6)
    return [BadInput(lambda: ((x.long(), 1.0, 0.5), {}), TypeError, "x0", "integer x0"),
            BadInput(lambda: ((x, 1.0, -0.5), {}), ValueError, "std", "negative std"),
            BadInput(lambda: ((x, torch.ones(3), 0.5), {}), ValueError, "mean_coef", "mean_coef of 3 rows"),
            BadInput(lambda: ((x, 1.0, 0.5), {"row_ids": torch.arange(3)}), ValueError, "row_ids", "3 row ids")]


def dsm_loss_bad_inputs():
    x = torch.randn(4, 6)
    _, noise = ops.perturb(x, 1.0, 0.5)

    def case(args, kwargs, error, match):
        return BadInput(lambda: (args, kwargs), error, match, match)

    return [case((torch.randn(4, 5), noise, 1.0), {}, ValueError, "shape"),
            case((x, x.numpy(), 1.0), {}, TypeError, "noise"),
            case((x, x.double(), 1.0), {}, TypeError, "noise"),
            case((x, noise, torch.ones(2)), {}, ValueError, "score_scale"),
            case((x, noise, 1.0), {"weight": torch.ones(5)}, ValueError, "weight"),
            case((x, noise, 1.0), {"weight": "2"}, TypeError, "weight"),
            case((x, noise, 1.0), {"row_reduction": "max"}, ValueError, "row_reduction"),
            case((x, noise, 1.0), {"reduction": "avg"}, ValueError, "reduction"),
            case((x, noise, torch.ones(4, requires_grad=True)), {}, RuntimeError, "score_scale")]


PERTURB = OpInfo("perturb", perturb_samples, data_args={0: "x0"}, bad_inputs=perturb_bad_inputs, differentiable=True)
DSM_LOSS = OpInfo("dsm_loss", dsm_loss_samples, data_args={0: "score", 1: "noise"}, bad_inputs=dsm_loss_bad_inputs,
                  twin_tol=lambda sample: loss_tol(sample.dtype), differentiable=True)
OP_INFOS = [PERTURB, DSM_LOSS]
globals().update(op_tests(PERTURB))
globals().update(op_tests(DSM_LOSS))
