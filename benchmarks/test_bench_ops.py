"""pytest-benchmark suite over the same case registry as ``python -m scorekern bench``.

Run with ``pytest benchmarks/`` (add ``--benchmark-json PATH`` to keep the
figures). It measures and asserts nothing; the tests live in ``tests/``.
"""

import math

import pytest
import torch

from scorekern import bench
from scorekern.bench.harness import Case, callable_of, sync

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
PROVIDERS = [(module, case, impl) for module, case in bench.cases(DEVICE, quick=False, samplers=False)
             if isinstance(case, Case) for impl in case.providers]


def _id(item):
    module, case, impl = item
    return f"{case.op} {list(case.shape)} {case.note} {impl}".replace(" ", "-")


@pytest.mark.parametrize("item", PROVIDERS, ids=[_id(p) for p in PROVIDERS])
def test_case(benchmark, item):
    module, case, impl = item
    fn, compile_s = callable_of(case.providers[impl], DEVICE)  # compiled outside the measurement
    nbytes = case.bytes_per_element.get(impl) if isinstance(case.bytes_per_element, dict) else case.bytes_per_element
    benchmark.extra_info.update(device=DEVICE, module=module, numel=math.prod(case.shape), bytes_per_element=nbytes,
                                flops=case.flops, compile_s=compile_s)
    benchmark(lambda: (fn(), sync(DEVICE)))


@pytest.mark.parametrize("shape", sorted({case.shape for _, case, _ in PROVIDERS if case.bytes_per_element}), ids=str)
def test_copy(benchmark, shape):
    src = torch.randn(math.prod(shape), device=DEVICE)
    dst = torch.empty_like(src)
    benchmark.extra_info.update(device=DEVICE, bytes_per_element=8, numel=src.numel())
    benchmark(lambda: (dst.copy_(src), sync(DEVICE)))
