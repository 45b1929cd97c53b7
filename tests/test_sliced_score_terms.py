"""The fused sliced score matching terms against their twin; the samples of
the generic tests (tests/opinfo.py)."""

import math

import pytest
import torch

from scorekern import ops, reference

from conftest import DTYPES, SHAPES, TOL, devices, loss_tol, opmath, requires_compiled, sums_tol
from opinfo import BadInput, OpInfo, Sample, data, describe, op_tests, rows_of, shape_dtype_cases, view_for

pytestmark = requires_compiled


# ---------------------------------------------------------------------------
# sliced_score_terms


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("variance_reduction", [False, True])
def test_sliced_terms_match_twin(device, dtype, shape, variance_reduction):
    tensors = [data(shape, dtype, k).to(device) for k in range(3)]
    results = []
    for fn in (ops.sliced_score_terms, reference.sliced_score_terms):
        leaves = [t.clone().requires_grad_() for t in tensors]
        out = fn(*leaves, variance_reduction=variance_reduction)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=device)).sum().backward()
        results.append((out, [t.grad for t in leaves]))
    (got, got_grads), (want, want_grads) = results
    assert got.dtype == opmath(dtype) and got.shape == (rows_of(shape),)
    torch.testing.assert_close(got, want, **loss_tol(dtype))
    for g, w in zip(got_grads, want_grads):
        assert g.dtype == dtype
        torch.testing.assert_close(g, w, **TOL[dtype])


def test_sliced_gradcheck():
    leaves = [data((3, 7), torch.float64, k).requires_grad_() for k in range(3)]
    for vr in (False, True):
        def f(s, u, v, vr=vr):
            return ops.sliced_score_terms(s, u, v, variance_reduction=vr)

        assert torch.autograd.gradcheck(f, leaves)
        assert torch.autograd.gradgradcheck(f, leaves)


@pytest.mark.parametrize("device", devices())
def test_opcheck(device):
    score, z = data((4, 10), torch.float32, 0).to(device), data((4, 10), torch.float32, 1).to(device)
    v = data((4, 10), torch.float32, 2).to(device)
    for vr in (False, True):
        torch.library.opcheck(torch.ops.scorekern.sliced_score_terms.default, (score, z, v, vr))
        torch.library.opcheck(torch.ops.scorekern.sliced_score_terms.default,
                              (score.double().requires_grad_(), z.double().requires_grad_(), v.double(), vr))


def test_cpp_checks_guard_direct_calls():
    x = torch.randn(4, 6)
    with pytest.raises(RuntimeError, match="v must have score's dtype"):
        torch.ops.scorekern.sliced_score_terms(x, x, x.double(), False)


def test_torch_compile_traces_the_op():
    score = data((8, 12), torch.float32, 0).requires_grad_()
    z = data((8, 12), torch.float32, 1)
    sliced = torch.compile(lambda s, u, v: ops.sliced_score_terms(s, u, v), fullgraph=True)
    torch.testing.assert_close(sliced(score, z, z), ops.sliced_score_terms(score, z, z))


# ---------------------------------------------------------------------------
# The samples every generic test draws from (tests/opinfo.py)


def sliced_score_terms_samples():
    out = []
    for i, (shape, dtype) in shape_dtype_cases():
        view = view_for(i, shape)
        vr = i % 2 == 0
        small = dtype == torch.float64 and 0 < math.prod(shape) <= 40

        def make(shape=shape, dtype=dtype, view=view, i=i, vr=vr, small=small):
            tensors = [data(shape, dtype, i + k, view if k < 2 else "contiguous") for k in range(3)]
            if small:
                for t in tensors:
                    t.requires_grad_()
            return tuple(tensors), {"variance_reduction": vr}

        out.append(Sample(make, describe(shape, dtype, view, "vr" if vr else ""), dtype,
                          grad=(0, 1, 2) if small else (), sim_tol=sums_tol(dtype), opcheck=i in (0, 5)))
    return out


X = torch.randn(4, 6)
SLICED_SCORE_TERMS = OpInfo("sliced_score_terms", sliced_score_terms_samples,
                            data_args={0: "score", 1: "vjp", 2: "v"}, twin_tol=lambda s: loss_tol(s.dtype),
                            differentiable=True, bad_inputs=lambda: [
                                BadInput(lambda: ((X, X, X[:2]), {}), ValueError, "v", "v of 2 rows"),
                                BadInput(lambda: ((X, X.half(), X), {}), TypeError, "vjp", "float16 vjp")])
OP_INFOS = [SLICED_SCORE_TERMS]
globals().update(op_tests(SLICED_SCORE_TERMS))
