"""Guards on how the CPU kernels are built."""

import os
import platform
import shutil
import subprocess

import pytest
import torch

from scorekern import ops

from conftest import requires_compiled

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or not shutil.which("c++") or not shutil.which("nm"),
                    reason="needs an x86-64 C++ compiler and nm")
@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_instruction_set_builds_define_nothing_outside_their_namespace(tmp_path, isa):
    # Code built for AVX2 or AVX-512 must not leak an out-of-line inline
    # function (a weak symbol) that the linker could pick for the baseline
    # build: on an older CPU that would crash. Everything these files define
    # lives in scorekern::cpu::<isa>.
    obj = tmp_path / f"{isa}.o"
    flags = ["-O3", "-std=c++17", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=fast", "-fPIC"]
    res = subprocess.run(["c++", *flags, "-c", os.path.join(ROOT, "csrc", "cpu", f"kernels_{isa}.cpp"), "-o", str(obj)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    symbols = subprocess.run(["nm", "-C", "--defined-only", str(obj)], capture_output=True, text=True).stdout
    leaked = [line for line in symbols.splitlines()
              if line.split(" ", 2)[1] in "TtWwVvRrDdBb" and f"scorekern::cpu::{isa}::" not in line
              and not line.split(" ", 2)[2].startswith((".", "_GLOBAL"))]
    assert not leaked, "\n".join(leaked)


@requires_compiled
def test_nan_and_inf_propagate():
    # No -ffast-math: NaNs and infinities in the data come through.
    x = torch.tensor([float("nan"), float("inf"), 1.0, -float("inf"), 2.0])
    s = torch.tensor([0.0, 0.0, float("nan"), 0.0, 0.0])
    out = ops.noisy_update(x, s, 1.0, 0.5, 0.1, noise=torch.ones(5))
    assert out[0].isnan() and out[1] == float("inf") and out[2].isnan() and out[3] == -float("inf")
    assert out[4] == 2.1
