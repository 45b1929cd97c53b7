import os
import shutil

import pytest
import torch

import scorekern
from scorekern import _backend

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]

# Tolerances against a float32 (float64 for float64 data) twin on the same
# inputs: the kernels compute in that precision and round once.
TOL = {
    torch.float32: dict(rtol=2e-5, atol=2e-5),
    torch.float64: dict(rtol=1e-12, atol=1e-12),
    torch.float16: dict(rtol=2e-3, atol=2e-3),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2),
}

# Shapes with odd row lengths: one element, a row of 2, sizes not divisible
# by 4, rows longer than a CPU tile (1024), short rows packed several per tile.
SHAPES = [(1,), (7,), (2, 2), (3, 5), (4, 3, 3), (2, 1030), (5, 4), (1, 1), (64, 2), (3, 2049)]

HAS_CUDA = torch.cuda.is_available()
COMPILED = _backend._C is not None

requires_compiled = pytest.mark.skipif(not COMPILED, reason="scorekern._C is not built")


def devices():
    out = ["cpu"]
    if HAS_CUDA:
        out.append(pytest.param("cuda", marks=pytest.mark.cuda))
    return out


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords and not HAS_CUDA:
            item.add_marker(skip)


def opmath(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


@pytest.fixture
def nvcc():
    path = shutil.which("nvcc")
    if path is None:
        pytest.skip("nvcc is not on PATH")
    return path


@pytest.fixture(autouse=True)
def _compiled_backend():
    """Tests run the compiled path unless they choose otherwise."""
    if os.environ.get("SCOREKERN_BACKEND"):
        yield
        return
    with scorekern.use_backend("auto"):
        yield
