"""pytest-benchmark suite over the same harness as ``python -m scorekern bench``.

Run with ``pytest benchmarks/`` (add ``--benchmark-json PATH`` to keep the
figures). It measures and asserts nothing; the tests live in ``tests/``.
"""

import math

import pytest
import torch

from scorekern import bench, ops

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CASES = [(op, shape, per_row) for shape, per_row in bench.shapes(DEVICE, quick=False) for op in bench.OPS]
IMPLS = ["fused", "fused out=", "eager twin", "compiled twin"]


def _sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op,shape,per_row", CASES, ids=lambda v: str(v))
def test_op(benchmark, op, shape, per_row, impl):
    case = bench.make_case(op, shape, per_row, DEVICE)
    if impl not in case.impls:
        pytest.skip(f"{op} has no {impl} form")
    fn = case.impls[impl]
    if impl == "compiled twin":
        twin, args = fn
        compiled = torch.compile(twin, dynamic=False)
        compiled(*args)  # compile outside the measurement
        fn = lambda: compiled(*args)  # noqa: E731
    numel = math.prod(shape)
    benchmark.extra_info.update(device=DEVICE, bytes_per_element=case.bytes_per_element, numel=numel)
    benchmark(lambda: (fn(), _sync()))


LOSS_CASES = [("dsm_loss", impl) for impl in bench.DSM_BYTES] + [
    ("sliced_score_terms", impl) for impl in ("fused", "eager twin", "compiled twin")]


@pytest.mark.parametrize("op,impl", LOSS_CASES, ids=str)
@pytest.mark.parametrize("shape", bench.dsm_shapes(quick=False), ids=str)
def test_loss_forward_backward(benchmark, shape, op, impl):
    make = bench.dsm_case if op == "dsm_loss" else bench.sliced_case
    fn = make(shape, DEVICE)[impl]
    if impl == "compiled twin":
        twin, args, inputs = fn
        compiled = torch.compile(twin, dynamic=False)
        torch.autograd.grad(compiled(*args), inputs)  # compile outside the measurement
        fn = lambda: torch.autograd.grad(compiled(*args), inputs)  # noqa: E731
    benchmark.extra_info.update(device=DEVICE, numel=math.prod(shape))
    benchmark(lambda: (fn(), _sync()))


@pytest.mark.parametrize("shape", sorted({shape for _, shape, _ in CASES}), ids=str)
def test_copy(benchmark, shape):
    src = torch.randn(shape, device=DEVICE)
    dst = torch.empty_like(src)
    benchmark.extra_info.update(device=DEVICE, bytes_per_element=8, numel=src.numel())
    benchmark(lambda: (dst.copy_(src), _sync()))


MIXTURE_IMPLS = {
    "fused": lambda x, c, h: ops.mixture_score(x, c, h),
    "naive twin": bench._naive_mixture_score,
    "sdpa trick": bench.sdpa_mixture_score,
}


@pytest.mark.parametrize("impl", sorted(MIXTURE_IMPLS))
@pytest.mark.parametrize("d", [2, 64])
def test_mixture_score(benchmark, d, impl):
    gen = torch.Generator(device=DEVICE).manual_seed(d)
    x = torch.randn(4096, d, generator=gen, device=DEVICE)
    centers = torch.randn(16384, d, generator=gen, device=DEVICE)
    fn = MIXTURE_IMPLS[impl]
    benchmark.extra_info.update(device=DEVICE, flops=4 * 4096 * 16384 * d)
    benchmark(lambda: (fn(x, centers, 1.0), _sync()))
