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


def loss_tol(dtype):
    """The losses' per-row sums of squares against a twin, in float32 (float64):
    relative error ~ √n·ulp."""
    return dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=2e-5, atol=1e-5)


def sums_tol(dtype):
    """Row sums in another order (the GPU's blocks, the CPU's tiles): float32
    (float64) rounding of Σ|terms|."""
    return dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=1e-6)


@pytest.fixture
def nvcc():
    path = shutil.which("nvcc")
    if path is None:
        pytest.skip("nvcc is not on PATH")
    return path


# ---------------------------------------------------------------------------
# The CUDA simulator (tests/cudasim): the `cuda_sim` tests' fixtures.

SIM_VARIANT = os.environ.get("CUDASIM_VARIANT", "race")
SIM_SEEDS = [int(s) for s in os.environ.get("CUDASIM_SEEDS", "1,2,3").split(",")]
SIM_SM_COUNT = 2  # few SMs: small tensors already fill multi-block grids


@pytest.fixture(scope="session")
def sim():
    """torch.ops.scorekern_sim: every op again, CPU tensors in, the CUDA kernels
    run by the simulator; scorekern's autograd formulas registered on it too.
    Built (cached under build/cudasim) and loaded once per session."""
    from cudasim import build as simbuild

    if simbuild.compiler() is None:
        pytest.skip("g++ is not on PATH: the CUDA simulator cannot be built")
    if not COMPILED:
        pytest.skip("scorekern._C is not built (the simulator's results are compared with it)")
    os.environ["CUDASIM_SM_COUNT"] = str(SIM_SM_COUNT)
    torch.ops.load_library(simbuild.build(SIM_VARIANT))
    import sys

    sys.modules["scorekern.ops._library"].register_autograd_on("scorekern_sim")
    return torch.ops.scorekern_sim


@pytest.fixture
def baseline():
    """The CPU kernels of the compiler's baseline instruction set, whose
    arithmetic (no fused multiply-adds) is the simulator's."""
    previous = scorekern._C.cpu_capability()
    assert scorekern._C.set_cpu_capability("baseline")
    yield
    scorekern._C.set_cpu_capability(previous)


@pytest.fixture(params=SIM_SEEDS, ids=lambda s: f"seed{s}")
def seed(request, sim):
    """A schedule seed of the simulator (the order of blocks, of threads
    between barriers, and of WMMA fragment elements)."""
    torch.ops.cudasim.configure(request.param, SIM_SM_COUNT)
    return request.param


@pytest.fixture
def cuda_kernels():
    """Skips without a CUDA GPU; fails where one is present but the build lacks CUDA kernels."""
    from scorekern import _backend

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    if "cuda" not in _backend.compiled_devices():
        pytest.fail("a GPU is present but scorekern._C was built without CUDA kernels")


@pytest.fixture(autouse=True)
def _compiled_backend():
    """Tests run the compiled path unless they choose otherwise."""
    if os.environ.get("SCOREKERN_BACKEND"):
        yield
        return
    with scorekern.use_backend("auto"):
        yield
