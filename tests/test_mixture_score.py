"""mixture_score and mixture_log_prob: the fused kernel against a float64
cdist–softmax–matmul twin, its gradient; the samples of the generic tests
(tests/opinfo.py). The score functions built on it: tests/test_scores.py."""

import math

import pytest
import torch
from torch.library import opcheck

import scorekern
from scorekern import ops, reference

from conftest import DTYPES, TOL, requires_compiled
from opinfo import BadInput, OpInfo, Sample, data, op_tests

pytestmark = requires_compiled

DIMS = [1, 2, 3, 64, 130]  # the exact form (d ≤ 8) and the expanded form with matrix products
CENTRES = [1, 37, 1037]    # one centre; sizes that are no multiple of any tile (8, 512)
# float32 against the float64 twin, relative to the largest entry: the
# expanded form's logits carry float32 rounding of x·μ/h².
TOL32 = {1: 2e-5, 2: 2e-5, 3: 2e-5, 64: 2e-4, 130: 2e-4}


def _inputs(d, n, m=45, *, seed=0, spread=1.5):
    g = torch.Generator().manual_seed(seed + 97 * d + n)
    x = torch.randn(m, d, generator=g, dtype=torch.float64) * spread
    centers = torch.randn(n, d, generator=g, dtype=torch.float64)
    log_weights = torch.randn(n, generator=g, dtype=torch.float64)
    per_query = torch.rand(m, generator=g, dtype=torch.float64) + 0.4
    return x, centers, log_weights, per_query


def _twin(x, centers, h, lw):
    return (reference.mixture_score(x, centers, h, log_weights=lw),
            reference.mixture_log_prob(x, centers, h, log_weights=lw))


def _close(got, want, rel):
    scale = want.abs().max().clamp_min(1e-30)
    err = ((got.double() - want).abs().max() / scale).item()
    assert err <= rel, f"relative error {err:.2e} > {rel:.0e}"


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("n", CENTRES)
@pytest.mark.parametrize("weighted", [False, True], ids=["equal", "log_weights"])
@pytest.mark.parametrize("bandwidth", [0.3, 2.0, "per_query"])
def test_score_and_log_prob_equal_the_float64_twin(d, n, weighted, bandwidth):
    x, centers, lw, per_query = _inputs(d, n)
    lw = lw if weighted else None
    h = per_query if bandwidth == "per_query" else bandwidth
    want_score, want_lp = _twin(x, centers, h, lw)
    for dtype, rel in ((torch.float64, 1e-10), (torch.float32, TOL32[d])):
        cast = (lambda t: t.to(dtype)) if dtype == torch.float32 else (lambda t: t)
        hh = cast(h) if torch.is_tensor(h) else h
        lwd = None if lw is None else cast(lw)
        score = ops.mixture_score(cast(x), cast(centers), hh, log_weights=lwd)
        lp = ops.mixture_log_prob(cast(x), cast(centers), hh, log_weights=lwd)
        assert score.dtype == dtype and score.shape == x.shape
        assert lp.shape == (x.shape[0],)
        _close(score, want_score, rel)
        _close(lp, want_lp, rel)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sixteen_bit_inputs_compute_in_float32(dtype):
    x, centers, lw, _ = _inputs(3, 300)
    x, centers = x.to(dtype), centers.to(dtype)
    want = reference.mixture_score(x.double(), centers.double(), 0.8, log_weights=lw)
    got = ops.mixture_score(x, centers, 0.8, log_weights=lw.float())
    assert got.dtype == dtype
    _close(got, want, 1e-2)


@pytest.mark.parametrize("d", [2, 64])
def test_leading_dimensions_and_per_query_bandwidth_shapes(d):
    x, centers, _, per_query = _inputs(d, 50, m=12)
    x3, h3 = x.reshape(3, 4, d), per_query.reshape(3, 4)
    got = ops.mixture_score(x3, centers, h3)
    assert got.shape == (3, 4, d)
    torch.testing.assert_close(got.reshape(12, d), ops.mixture_score(x, centers, per_query))
    torch.testing.assert_close(ops.mixture_log_prob(x3, centers, h3).reshape(12),
                               ops.mixture_log_prob(x, centers, per_query))


@pytest.mark.parametrize("d", [2, 64])
def test_far_queries_are_finite_and_exact(d):
    # Queries thousands of bandwidths from every centre: every weight
    # underflows unless the softmax is shifted; the score is then the pull
    # towards the nearest centres.
    x, centers, lw, _ = _inputs(d, 200, m=20)
    x = x + 1e3 * torch.randn(20, d, dtype=torch.float64).sign()
    for dtype, rel in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
        score = ops.mixture_score(x.to(dtype), centers.to(dtype), 0.05, log_weights=lw.to(dtype))
        lp = ops.mixture_log_prob(x.to(dtype), centers.to(dtype), 0.05, log_weights=lw.to(dtype))
        assert torch.isfinite(score).all() and torch.isfinite(lp).all()
        want_score, want_lp = _twin(x, centers, 0.05, lw)
        _close(score, want_score, rel)
        _close(lp, want_lp, rel)


def test_zero_weight_centres_are_ignored():
    x, centers, lw, _ = _inputs(2, 40)
    lw[::2] = -math.inf
    got = ops.mixture_score(x, centers, 0.5, log_weights=lw)
    want = reference.mixture_score(x, centers[1::2], 0.5, log_weights=lw[1::2])
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("d", [1, 2, 9, 64])
def test_gradcheck_in_float64(d):
    x, centers, lw, per_query = _inputs(d, 29, m=6)
    x.requires_grad_(True)
    h = per_query[:6]
    assert torch.autograd.gradcheck(lambda x: ops.mixture_score(x, centers, h, log_weights=lw), (x,))
    assert torch.autograd.gradcheck(lambda x: ops.mixture_log_prob(x, centers, 0.7, log_weights=lw), (x,))


@pytest.mark.parametrize("d", [2, 64, 130])
def test_float32_gradient_equals_the_twins(d):
    x, centers, lw, per_query = _inputs(d, 600, m=40)
    g = torch.randn(40, d, dtype=torch.float64)
    xd = x.clone().requires_grad_(True)
    (want,) = torch.autograd.grad(reference.mixture_score(xd, centers, per_query, log_weights=lw), xd, g)
    xf = x.float().requires_grad_(True)
    score = ops.mixture_score(xf, centers.float(), per_query.float(), log_weights=lw.float())
    (got,) = torch.autograd.grad(score, xf, g.float())
    _close(got, want, 5e-4 if d > 8 else 5e-5)
    # and the log-density's gradient is the score
    xf.grad = None
    ops.mixture_log_prob(xf, centers.float(), per_query.float(), log_weights=lw.float()).sum().backward()
    torch.testing.assert_close(xf.grad, score.detach())


def test_divergence_of_a_gmm_score_matches_its_closed_form():
    # tr J = (tr Cov_w(μ)/h² − d)/h², through Hutchinson-free exact traces.
    from scorekern import estimators
    x, centers, lw, _ = _inputs(3, 17, m=5)
    h = 0.9
    div = estimators.exact_trace(lambda x: ops.mixture_score(x, centers, h, log_weights=lw), x)
    w = torch.softmax(lw - torch.cdist(x, centers).square() / (2 * h * h), 1)
    mean = w @ centers
    var = (w @ centers.square()).sum(1) - mean.square().sum(1)
    torch.testing.assert_close(div, (var / h**2 - 3) / h**2)


@pytest.mark.parametrize("d", [2, 64])
def test_opcheck(d):
    x, centers, lw, per_query = _inputs(d, 70, m=9)
    x, centers, lw, per_query = x.float(), centers.float(), lw.float(), per_query.float()
    op = torch.ops.scorekern.mixture_score
    opcheck(op, (x, centers, [], [], [0.8], None, True))
    opcheck(op, (x.requires_grad_(True), centers, [per_query], [0], [1.0], lw, True))
    opcheck(op, (x.detach(), centers, [], [], [0.8], lw, False))
    score, lse = op(x.detach(), centers, [], [], [0.8], lw, True)
    opcheck(torch.ops.scorekern.mixture_score_backward,
            (torch.randn_like(x), x.detach(), centers, [], [], [0.8], lw, score, lse))


def test_compiles_fullgraph():
    x, centers, lw, _ = _inputs(2, 100)
    x, centers, lw = x.float(), centers.float(), lw.float()

    def f(x):
        return ops.mixture_score(x, centers, 0.6, log_weights=lw) * 2.0

    torch._dynamo.reset()
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(x)
    torch.testing.assert_close(got, f(x))


def test_huge_query_and_centre_counts_run_without_the_matrix():
    # M = N = 65536, d = 2: the twin's [M, N] float32 matrix alone is 16 GiB.
    g = torch.Generator().manual_seed(3)
    x = torch.randn(65536, 2, generator=g)
    centers = torch.randn(65536, 2, generator=g)
    score = ops.mixture_score(x, centers, 0.2)
    assert torch.isfinite(score).all()
    rows = torch.randint(0, 65536, (64,), generator=g)
    want = reference.mixture_score(x[rows].double(), centers.double(), 0.2)
    _close(score[rows], want, 2e-5)


def test_rows_do_not_depend_on_the_batch():
    x, centers, lw, _ = _inputs(64, 300, m=50)
    whole = ops.mixture_score(x.float(), centers.float(), 0.9, log_weights=lw.float())
    part = ops.mixture_score(x[17:20].float(), centers.float(), 0.9, log_weights=lw.float())
    torch.testing.assert_close(part, whole[17:20])


def test_clear_errors():
    x, centers, lw, _ = _inputs(2, 10)
    with pytest.raises(ValueError, match="centers must have shape"):
        ops.mixture_score(x, centers[:, :1], 1.0)
    with pytest.raises(ValueError, match="at least one centre"):
        ops.mixture_score(x, centers[:0], 1.0)
    with pytest.raises(TypeError, match="centers must have x's dtype"):
        ops.mixture_score(x, centers.float(), 1.0)
    with pytest.raises(ValueError, match="bandwidth must be positive"):
        ops.mixture_score(x, centers, 0.0)
    with pytest.raises(ValueError, match="bandwidth must be positive"):
        ops.mixture_score(x, centers, -torch.ones(x.shape[0], dtype=torch.float64))
    with pytest.raises(ValueError, match="bandwidth must be"):
        ops.mixture_score(x, centers, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="log_weights must have shape"):
        ops.mixture_score(x, centers, 1.0, log_weights=lw[:3])
    with pytest.raises(RuntimeError, match="differentiable with respect to x only"):
        ops.mixture_score(x, centers.clone().requires_grad_(True), 1.0)
    with pytest.raises(RuntimeError, match="centers must have shape"):
        torch.ops.scorekern.mixture_score(x, centers[:, :1], [], [], [1.0], None, True)


def test_twin_backend_gives_the_same_values():
    x, centers, lw, per_query = _inputs(64, 100)
    fused = ops.mixture_score(x, centers, per_query, log_weights=lw)
    with scorekern.use_backend("torch"):
        twin = ops.mixture_score(x, centers, per_query, log_weights=lw)
        twin_lp = ops.mixture_log_prob(x, centers, per_query, log_weights=lw)
    torch.testing.assert_close(fused, twin)
    torch.testing.assert_close(ops.mixture_log_prob(x, centers, per_query, log_weights=lw), twin_lp)


# ---------------------------------------------------------------------------
# The samples every generic test draws from (tests/opinfo.py)

# (M queries, N centres, d): the exact kernels for small d (one thread per
# query, tiles of 256 centres) and larger d (a warp per query, 1 to 16
# coordinates per lane), several blocks of queries; leading dimensions.
MIXTURE_SHAPES = [((1,), 1, 1), ((37,), 100, 2), ((300,), 257, 3), ((5,), 300, 8), ((37,), 100, 9), ((4, 5), 64, 33),
                  ((9,), 50, 64), ((17,), 40, 100), ((6,), 30, 300), ((3,), 20, 512), ((0,), 5, 3)]
# The tensor-core forward (16 ≤ d ≤ 128, with TF32 allowed): one block, the
# centres split over blocks (few queries), several blocks.
TENSOR_CORE_SHAPES = [((1,), 1, 16), ((64,), 700, 20), ((37,), 300, 64), ((200,), 100, 128), ((65,), 520, 32)]


def _exact_tol(dtype, d):
    """The exact kernels in another order (CPU tiles, GPU warps): float32
    rounding of x·μ/h² in the expanded form (d > 8), relative to max|score|."""
    rtol = TOL[dtype]["rtol"] if dtype in (torch.float16, torch.bfloat16) else 0  # rounded once more
    return dict(rtol=rtol, atol=1e-11 if dtype == torch.float64 else 3e-6 * max(1, d // 8))


def _twin_tol(sample):
    # Against the twin (cdist, softmax, matmul in float32 or float64).
    dtype, d = sample.dtype, sample.make()[0][0].shape[-1]
    if dtype == torch.float64:
        return dict(rtol=0, atol=1e-10, relative=True)
    rtol = TOL[dtype]["rtol"] if dtype in (torch.float16, torch.bfloat16) else 0
    return dict(rtol=rtol, atol=3e-4 if d > 8 else 5e-5, relative=True)


def mixture_samples(log_prob=False):
    out = []
    cases = [(shape, False) for shape in MIXTURE_SHAPES] + [(shape, True) for shape in TENSOR_CORE_SHAPES]
    i = -1
    for (lead, n, d), tf32 in cases:
        for dtype in DTYPES:
            i += 1
            if (dtype in (torch.float16, torch.bfloat16) and i % 2) or (tf32 and dtype == torch.float64):
                continue
            per_query, weighted = i % 2 == 0, i % 3 != 0
            small = dtype == torch.float64 and math.prod(lead) * d <= 40 and n <= 100 and math.prod(lead)

            def make(lead=lead, n=n, d=d, dtype=dtype, i=i, per_query=per_query, weighted=weighted, small=small):
                x = data((*lead, d), dtype, i)
                if small:
                    x.requires_grad_()
                centers = data((n, d), dtype, i + 1)
                if per_query:
                    g = torch.Generator().manual_seed(i)
                    bandwidth = (torch.rand(lead, generator=g, dtype=torch.float64) + 0.5).to(x.dtype)
                else:
                    bandwidth = 0.8 + 0.1 * (i % 5)
                kw = {"log_weights": data((n,), dtype, i + 2)} if weighted else {}
                return (x, centers, bandwidth), kw

            # 16-bit data takes the tensor cores whenever d allows (TF32 holds it exactly).
            # TF32 products against the exact CPU kernels: the model's bound at these sizes (scores; the
            # log-densities' logits alike), see test_cuda_sim.py::test_mixture_tensor_cores_differ_from_exact.
            tensor_cores = tf32 or (dtype in (torch.float16, torch.bfloat16) and 16 <= d <= 128)
            tc_atol = 1e-3 if log_prob else 4e-3
            sim_tol = dict(rtol=_exact_tol(dtype, d)["rtol"], atol=tc_atol) if tensor_cores else _exact_tol(dtype, d)
            desc = f"x={[*lead, d]},N={n},{str(dtype)[6:]}" + (",per_query" if per_query else "") + \
                (",weighted" if weighted else "") + (",tf32" if tf32 else "")
            out.append(Sample(make, desc, dtype, grad=(0,) if small else (), tf32=tf32, sim_tol=sim_tol,
                              opcheck=i in (0, 5, 26, 45)))
    return out


def _mixture_bad_inputs():
    x, centers = torch.randn(6, 3), torch.randn(10, 3)
    return [
        BadInput(lambda: ((x, centers[:, :2], 1.0), {}), ValueError, "centers must have shape", "centers shape"),
        BadInput(lambda: ((x, centers.double(), 1.0), {}), TypeError, "centers must have x's dtype", "centers dtype"),
        BadInput(lambda: ((x, centers[:0], 1.0), {}), ValueError, "at least one centre", "no centres"),
        BadInput(lambda: ((x, centers, float("nan")), {}), ValueError, "bandwidth", "nan bandwidth"),
        BadInput(lambda: ((x, centers, torch.ones(4)), {}), ValueError, "bandwidth", "bandwidth shape"),
        BadInput(lambda: ((x, centers, 1.0), {"log_weights": torch.ones(9)}), ValueError, "log_weights",
                 "log_weights shape"),
        BadInput(lambda: ((x, centers, 1.0), {"log_weights": torch.ones(10, dtype=torch.int64)}), TypeError,
                 "log_weights", "log_weights dtype"),
    ]


MIXTURE_SCORE = OpInfo("mixture_score", mixture_samples, data_args={0: "x"}, bad_inputs=_mixture_bad_inputs,
                       twin_tol=_twin_tol, differentiable=True)
MIXTURE_LOG_PROB = OpInfo("mixture_log_prob", lambda: mixture_samples(log_prob=True), data_args={0: "x"},
                          bad_inputs=_mixture_bad_inputs, twin_tol=_twin_tol, differentiable=True)
OP_INFOS = [MIXTURE_SCORE, MIXTURE_LOG_PROB]
globals().update(op_tests(MIXTURE_SCORE))
globals().update(op_tests(MIXTURE_LOG_PROB))
