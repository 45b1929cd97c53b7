"""The fused noisy update against its twin (the Langevin step: tests/test_langevin_step.py)."""

import math

import pytest
import torch

from scorekern import ops, reference

from conftest import DTYPES, SHAPES, TOL, devices, opmath, requires_compiled
from opinfo import (COEFFICIENT_KINDS, OpInfo, Sample, coefficient, data, describe, op_tests, rows_of,
                    shape_dtype_cases, update_kwargs, view_for)

pytestmark = requires_compiled


def _inputs(shape, dtype, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    x, s, z = (torch.randn(shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype) for _ in range(3))
    return x, s, z


def _rows(shape):
    return 1 if len(shape) == 1 else shape[0]


def _coefficients(kind, shape, device, seed=1):
    """(a, b, c) as floats, 0-d tensors, [B] tensors or [B, 1, ...] tensors."""
    g = torch.Generator().manual_seed(seed)
    rows = _rows(shape)
    if kind == "float":
        return 0.9, 0.05, 0.3
    if kind == "0d":
        return tuple(torch.tensor(v, device=device) for v in (1.1, -0.2, 0.4))
    vals = [torch.rand(rows, generator=g, dtype=torch.float64) + 0.5 for _ in range(3)]
    if kind == "rows":
        return tuple(v.to(device) for v in vals)
    return tuple(v.reshape(rows, *([1] * (len(shape) - 1))).to(device) for v in vals)  # "rows_broadcast"


def _twin_in_opmath(x, s, z, a, b, c, return_mean):
    """The twin on the same inputs, in the kernels' arithmetic dtype, rounded to x's dtype."""
    op = opmath(x.dtype)
    up = lambda v: v.to(op) if isinstance(v, torch.Tensor) else v  # noqa: E731
    res = reference.noisy_update(up(x), up(s), up(a), up(b), up(c), noise=up(z), return_mean=True)
    res = tuple(r.to(x.dtype) for r in res)
    return res if return_mean else res[0]


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["float", "0d", "rows", "rows_broadcast"])
def test_matches_twin_on_explicit_noise(device, dtype, shape, kind):
    x, s, z = _inputs(shape, dtype, device)
    a, b, c = _coefficients(kind, shape, device)
    got, got_mean = ops.noisy_update(x, s, a, b, c, noise=z, return_mean=True)
    want, want_mean = _twin_in_opmath(x, s, z, a, b, c, return_mean=True)
    assert got.dtype == dtype and got.shape == x.shape and got.is_contiguous()
    torch.testing.assert_close(got, want, **TOL[dtype])
    torch.testing.assert_close(got_mean, want_mean, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_error_at_most_twice_the_twins(dtype):
    # flash-attention's criterion: against a float64 reference, the fused
    # kernel's error is at most twice that of the same-dtype PyTorch twin.
    x, s, z = _inputs((64, 515), dtype)
    a, b, c = _coefficients("rows", (64, 515), "cpu")
    exact = reference.noisy_update(x.double(), s.double(), a, b, c, noise=z.double())
    fused = ops.noisy_update(x, s, a, b, c, noise=z).double()
    twin = reference.noisy_update(x, s, a.to(dtype), b.to(dtype), c.to(dtype), noise=z).double()
    assert (fused - exact).abs().max() <= 2 * (twin - exact).abs().max() + 1e-6


def test_half_rounding_is_to_nearest_even():
    # With b = c = 0 the kernel computes fl32(a·x) and rounds it once: the
    # result must equal PyTorch's own float32 → float16/bfloat16 conversion,
    # subnormals and overflow included.
    vals = torch.tensor([6.1e-5, 5.9e-8, 3e-8, 1e-3, 65504.0, 65519.0, 7e4, -2.5e-6, 0.1, 1 / 3])
    x = torch.cat([vals, -vals, torch.randn(997, generator=torch.Generator().manual_seed(0))])
    s = torch.zeros_like(x)
    for a in (1.0, 0.999, 1 / 3, 1.5):
        for dtype in (torch.float16, torch.bfloat16):
            xs = (x * 1e2 if dtype == torch.bfloat16 else x).to(dtype)
            got = ops.noisy_update(xs, s.to(dtype), a, 0.0, 0.0, noise=s.to(dtype))
            assert torch.equal(got, (xs.float() * a).to(dtype)), (dtype, a)


@pytest.mark.parametrize("dtype", DTYPES)
def test_generated_noise_is_the_stream(dtype):
    # The fused update draws z exactly as randn_like does for the same
    # generator state (in the arithmetic dtype, before any rounding).
    x, s, _ = _inputs((5, 1031), dtype)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    fused = ops.noisy_update(x, s, 1.0, 0.1, 0.5, generator=g1)
    z = ops.randn_like(x.to(opmath(dtype)), generator=g2)
    explicit = ops.noisy_update(x.to(opmath(dtype)), s.to(opmath(dtype)), 1.0, 0.1, 0.5, noise=z).to(dtype)
    if dtype in (torch.float32, torch.float64):
        assert torch.equal(fused, explicit)
    else:
        torch.testing.assert_close(fused, explicit, **TOL[dtype])


def test_generated_noise_moments():
    x = torch.randn(256, 4096, generator=torch.Generator().manual_seed(3))
    s = torch.randn(256, 4096, generator=torch.Generator().manual_seed(4))
    out = ops.noisy_update(x, s, 1.0, 0.25, 0.5)
    z = ((out - x - 0.25 * s) / 0.5).double()
    n = z.numel()
    assert abs(z.mean().item()) < 5 / n**0.5
    assert abs(z.var().item() - 1) < 5 * (2 / n) ** 0.5


def test_row_ids_make_rows_batch_invariant():
    x, s, _ = _inputs((6, 3, 5), torch.float32)
    ids = torch.tensor([10, 11, 12, 13, 14, 15])
    full = ops.noisy_update(x, s, 1.0, 0.1, 1.0, generator=torch.Generator().manual_seed(0), row_ids=ids)
    half = ops.noisy_update(x[3:], s[3:], 1.0, 0.1, 1.0, generator=torch.Generator().manual_seed(0), row_ids=ids[3:])
    assert torch.equal(full[3:], half)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_non_contiguous_inputs(dtype):
    base, sb, zb = _inputs((9, 14), dtype)
    views = {
        "transposed": lambda t: t.t(),
        "strided": lambda t: t[::2, ::3],
        "offset": lambda t: t.reshape(-1)[1:100],  # contiguous but starts at an odd element
    }
    for name, view in views.items():
        x, s, z = view(base), view(sb), view(zb)
        got = ops.noisy_update(x, s, 1.0, 0.3, 0.7, noise=z)
        want = _twin_in_opmath(x, s, z, 1.0, 0.3, 0.7, False)
        torch.testing.assert_close(got, want, **TOL[dtype], msg=name)
        # generated noise follows the logical element order, whatever the strides
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        assert torch.equal(ops.noisy_update(x, s, 1.0, 0.3, 0.7, generator=g1),
                           ops.noisy_update(x.contiguous(), s.contiguous(), 1.0, 0.3, 0.7, generator=g2))


def test_out_and_in_place():
    x, s, z = _inputs((7, 33), torch.float32)
    want, want_mean = ops.noisy_update(x, s, 0.9, 0.2, 0.4, noise=z, return_mean=True)
    out = torch.empty_like(x)
    res = ops.noisy_update(x, s, 0.9, 0.2, 0.4, noise=z, out=out)
    assert res is out and torch.equal(out, want)
    y = x.clone()
    res, mean = ops.noisy_update_(y, s, 0.9, 0.2, 0.4, noise=z, return_mean=True)
    assert res is y and torch.equal(y, want) and torch.equal(mean, want_mean)
    # in place on a strided tensor, and into a strided out
    big = torch.zeros(7, 66)
    big[:, ::2] = x
    ops.noisy_update_(big[:, ::2], s, 0.9, 0.2, 0.4, noise=z)
    assert torch.equal(big[:, ::2], want) and torch.equal(big[:, 1::2], torch.zeros(7, 33))
    out_t = torch.empty(33, 7).t()
    ops.noisy_update(x, s, 0.9, 0.2, 0.4, noise=z, out=out_t)
    assert torch.equal(out_t, want)
    # in place with generated noise equals the functional form for the same generator
    y = x.clone()
    ops.noisy_update_(y, s, 1.0, 0.1, 1.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(y, ops.noisy_update(x, s, 1.0, 0.1, 1.0, generator=torch.Generator().manual_seed(5)))


@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (0,)])
def test_empty(shape):
    x = torch.empty(shape)
    out, mean = ops.noisy_update(x, x.clone(), 1.0, 1.0, 1.0, return_mean=True)
    assert out.shape == shape and mean.shape == shape
    assert ops.langevin_step(x, x.clone(), 0.1).shape == shape
    assert ops.randn_like(x).shape == shape


# ---------------------------------------------------------------------------
# opcheck and gradcheck


def _bundle(*coefs):
    """The ops' coefficient bundle (values, slots, scales) of floats and tensors."""
    values, slots, scales = [], [], []
    for i, v in enumerate(coefs):
        if isinstance(v, torch.Tensor):
            values.append(v)
            slots.append(i)
        scales.append(1.0 if isinstance(v, torch.Tensor) else v)
    return values, slots, scales


def _op_args(x, s, z, coefs=(None, None, None), return_mean=True):
    return (x, s, *_bundle(*coefs), z, 123, 456, None, return_mean)


@pytest.mark.parametrize("device", devices())
def test_opcheck(device):
    x, s, z = _inputs((4, 10), torch.float32, device)
    rows = torch.rand(4, device=device)
    cases = [
        _op_args(x, s, z, (0.9, 0.1, 0.3)),
        _op_args(x, s, None, (0.9, 0.1, 0.3), return_mean=False),
        _op_args(x, s, None, (rows, rows + 1, rows * 2)),
        _op_args(x.double().requires_grad_(), s.double().requires_grad_(), None, (1.0, 0.5, 0.5)),
    ]
    for args in cases:
        torch.library.opcheck(torch.ops.scorekern.noisy_update.default, args)
    out, mean = torch.empty_like(x), torch.empty_like(x)
    torch.library.opcheck(torch.ops.scorekern.noisy_update_out.default,
                          _op_args(x, s, None, (0.9, 0.1, 0.3))[:-1] + (out, mean))
    torch.library.opcheck(torch.ops.scorekern.noisy_update_out.default,
                          _op_args(x, s, None, (0.9, 0.1, 0.3))[:-1] + (out, None))
    ids = torch.arange(4, device=device) * 7
    torch.library.opcheck(torch.ops.scorekern.randn.default, (x, 1, 2, ids))
    torch.library.opcheck(torch.ops.scorekern.rademacher.default, (x, 1, 2, None))
    counter = torch.randint(0, 2**32, (5, 4), dtype=torch.int64, device=device)
    torch.library.opcheck(torch.ops.scorekern.philox4x32.default, (counter, 77))


def test_gradcheck_explicit_noise():
    x, s, z = (t.requires_grad_() for t in _inputs((3, 5), torch.float64))
    a = torch.rand(3, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)

    def f(x, s, z, a, b):
        out, mean = ops.noisy_update(x, s, a, b, 0.7, noise=z, return_mean=True)
        return out, mean

    assert torch.autograd.gradcheck(f, (x, s, z, a, b))
    assert torch.autograd.gradgradcheck(f, (x, s, z, a, b))


def test_gradcheck_generated_noise():
    x, s, _ = (t.requires_grad_() for t in _inputs((4, 6), torch.float64))
    c = (torch.rand(4, dtype=torch.float64) + 0.1).requires_grad_()

    def f(x, s, c):  # a fixed generator state makes the noise a constant
        return ops.noisy_update(x, s, 0.8, 0.2, c, generator=torch.Generator().manual_seed(0))

    assert torch.autograd.gradcheck(f, (x, s, c))


def test_backward_matches_twin():
    x, s, z = _inputs((5, 8), torch.float32)
    a, b, c = _coefficients("rows", (5, 8), "cpu")
    a, b, c = (v.float().requires_grad_() for v in (a, b, c))
    grads = []
    for fn in (ops.noisy_update, reference.noisy_update):
        leaves = [t.clone().requires_grad_() for t in (x, s, z)] + [v.detach().clone().requires_grad_() for v in (a, b, c)]
        out, mean = fn(leaves[0], leaves[1], *leaves[3:], noise=leaves[2], return_mean=True)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward(retain_graph=True)
        mean.pow(2).sum().backward()
        grads.append([t.grad for t in leaves])
    for g_fused, g_twin in zip(*grads):
        torch.testing.assert_close(g_fused, g_twin, rtol=1e-5, atol=1e-5)


def test_torch_compile_traces_the_op():
    x, s, z = _inputs((4, 9), torch.float32)

    def step(x, s, z):
        return torch.ops.scorekern.noisy_update(x, s, [], [], [1.0, 0.1, 0.5], z, 0, 0, None, True)

    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    for got, want in zip(compiled(x, s, z), step(x, s, z)):
        assert torch.equal(got, want)

    def inplace(x, s):
        torch.ops.scorekern.noisy_update_out(x, s, [], [], [1.0, 0.1, 0.5], None, 3, 4, None, x, None)
        return x

    y = x.clone()
    torch.compile(inplace, backend="aot_eager", fullgraph=True)(y, s)
    assert torch.equal(y, step(x, s, ops.randn_like(x, seed=3, offset=4))[0])

    # The Python API traces in full when it draws no noise itself ...
    def api(x, s, z):
        return ops.noisy_update(x, s, 1.0, 0.1, 0.3, noise=z, return_mean=True)

    for got, want in zip(torch.compile(api, backend="aot_eager", fullgraph=True)(x, s, z), api(x, s, z)):
        assert torch.equal(got, want)

    # ... and with a generator it runs, breaking the graph to draw (seed, offset).
    def drawn(x, s):
        return ops.langevin_step(x, s, 0.1, generator=torch.Generator().manual_seed(2)) * 2

    assert torch.equal(torch.compile(drawn, backend="aot_eager")(x, s), drawn(x, s))


# ---------------------------------------------------------------------------
# errors


def test_errors_name_the_argument():
    x, s, z = _inputs((4, 3), torch.float32)
    cases = [
        (lambda: ops.noisy_update(x, s[:, :2], 1, 1, 1), ValueError, r"score must have x's shape \[4, 3\], got \[4, 2\]"),
        (lambda: ops.noisy_update(x, s.double(), 1, 1, 1), TypeError, "score must have x's dtype torch.float32"),
        (lambda: ops.noisy_update(x, s.to("meta"), 1, 1, 1), ValueError, "score must be on x's device cpu, got meta"),
        (lambda: ops.noisy_update(x.long(), s.long(), 1, 1, 1), TypeError, "x must be float32, float64, float16 or bfloat16"),
        (lambda: ops.noisy_update(x, s, 1, 1, 1, noise=z[:2]), ValueError, "noise must have x's shape"),
        (lambda: ops.noisy_update(x, s, torch.ones(3), 1, 1), ValueError, r"a must be a float, a 0-d tensor or a tensor of shape \[4\]"),
        (lambda: ops.noisy_update(x, s, 1, torch.ones(4, dtype=torch.int64), 1), TypeError, "b must be a float or a floating-point tensor"),
        (lambda: ops.noisy_update(x, s, 1, 1, -0.5), ValueError, "c must be non-negative, got -0.5"),
        (lambda: ops.noisy_update(x, s, 1, 1, torch.tensor([0.1, -0.1, 0.2, 0.3])), ValueError, "c must be non-negative"),
        (lambda: ops.noisy_update(x, s, True, 1, 1), TypeError, "a must be a float or a floating-point tensor, got bool"),
        (lambda: ops.noisy_update(x, s, "1", 1, 1), TypeError, "a must be a float, a 0-d tensor or a"),
        (lambda: ops.noisy_update(x, s, 1, 1, 1, out=torch.empty(4, 4)), ValueError, "out must have x's shape"),
        (lambda: ops.langevin_step(x, s, -0.1), ValueError, "step_size must be non-negative"),
        (lambda: ops.noisy_update(torch.tensor(1.0), torch.tensor(1.0), 1, 1, 1), ValueError, "x must have at least one dimension"),
        (lambda: ops.noisy_update(x, s, 1, 1, 1, row_ids=torch.arange(3)), ValueError, r"row_ids must have shape \[4\]"),
        (lambda: ops.noisy_update(x, s, 1, 1, 1, generator=3), TypeError, "generator must be a torch.Generator"),
    ]
    for fn, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            fn()


def test_out_forms_refuse_autograd():
    x, s, _ = _inputs((4, 3), torch.float32)
    x.requires_grad_()
    with pytest.raises(RuntimeError, match="do not support automatic differentiation"):
        ops.noisy_update(x, s, 1, 1, 1, out=torch.empty(4, 3))
    with torch.no_grad():
        ops.noisy_update(x, s, 1, 1, 1, out=torch.empty(4, 3))  # fine without grad


def test_cpp_checks_guard_direct_calls():
    x, s, _ = _inputs((4, 3), torch.float32)
    op = torch.ops.scorekern.noisy_update
    with pytest.raises(RuntimeError, match=r"score must have x's shape"):
        op(x, s[:2], *_bundle(1.0, 1.0, 1.0), None, 0, 0, None, False)
    with pytest.raises(RuntimeError, match=r"a must hold one value per row"):
        op(x, s, *_bundle(torch.ones(3), 1.0, 1.0), None, 0, 0, None, False)
    with pytest.raises(RuntimeError, match=r"a must be Float"):
        op(x, s, *_bundle(torch.ones(4, dtype=torch.float64), 1.0, 1.0), None, 0, 0, None, False)
    with pytest.raises(RuntimeError, match=r"row_ids must lie in \[0, 2\^32\)"):
        op(x, s, *_bundle(1.0, 1.0, 1.0), None, 0, 0, torch.tensor([0, 1, 2, -4]), False)
    with pytest.raises(RuntimeError, match="unsupported operation|overlap"):
        torch.ops.scorekern.noisy_update_out(x, s, *_bundle(1.0, 1.0, 1.0), None, 0, 0, None, s, None)
    with pytest.raises(RuntimeError, match="coefficient slot 3 is out of range"):
        op(x, s, [torch.ones(4)], [3], [1.0, 1.0, 1.0], None, 0, 0, None, False)
    with pytest.raises(RuntimeError, match="expected 3 coefficient scales, got 2"):
        op(x, s, [], [], [1.0, 1.0], None, 0, 0, None, False)


# ---------------------------------------------------------------------------
# The samples every generic test draws from (tests/opinfo.py)


def noisy_update_samples():
    out = []
    for i, (shape, dtype) in shape_dtype_cases():
        view, rows = view_for(i, shape), rows_of(shape)
        kinds = [COEFFICIENT_KINDS[(i + k) % 4] for k in range(3)]
        explicit = i % 3 != 2  # explicit noise, or drawn from a generator (with row ids every other time)
        placement = [None, "new", "strided", "inplace"][(i + i // 4) % 4]
        mean = i % 2 == 0
        small = dtype == torch.float64 and 0 < math.prod(shape) <= 40 and placement is None
        grad = (0, 1) + tuple(2 + k for k in range(3) if kinds[k] in ("rows", "0d")) if small else ()

        def make(shape=shape, dtype=dtype, view=view, rows=rows, kinds=kinds, i=i, explicit=explicit,
                 placement=placement, mean=mean, grad=grad):
            x, s = data(shape, dtype, i, view), data(shape, dtype, 50 + i, view)
            a = coefficient(kinds[0], rows, dtype, 3 * i, ndim=len(shape))
            b = coefficient(kinds[1], rows, dtype, 3 * i + 1, ndim=len(shape))
            c = 0.0 if i % 11 == 5 else coefficient(kinds[2], rows, dtype, 3 * i + 2, positive=True, ndim=len(shape))
            args = [x, s, a, b, c]
            for k in grad:
                args[k] = args[k].requires_grad_()
            return tuple(args), update_kwargs({"return_mean": mean}, x, i, view, explicit, placement, mean)

        out.append(Sample(make, describe(shape, dtype, view, "/".join(kinds), placement, "mean" if mean else "",
                                         "noise" if explicit else "drawn"),
                          dtype, twin=explicit, grad=grad, opcheck=i in (2, 4, 9, 16, 26)))
    return out


NOISY_UPDATE = OpInfo("noisy_update", noisy_update_samples, data_args={0: "x", 1: "score"}, differentiable=True)
globals().update(op_tests(NOISY_UPDATE))
OP_INFOS = [NOISY_UPDATE]
