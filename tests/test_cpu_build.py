"""Guards on how the CPU kernels are built."""

import os
import platform
import re
import shutil
import subprocess

import pytest
import torch

from scorekern import ops

from conftest import requires_compiled

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _kernel_files():
    cpu = os.path.join(ROOT, "csrc", "cpu")
    return sorted(f for f in os.listdir(cpu)
                  if f.endswith(".cpp") and '"for_each_isa.h"' in open(os.path.join(cpu, f)).read())


def _functions_using_wide_registers(obj):
    """{demangled function name: whether its code touches ymm/zmm registers} of an object file."""
    dump = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", str(obj)], capture_output=True,
                          text=True).stdout
    found, name = {}, None
    for line in dump.splitlines():
        match = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if match:
            name = match.group(1)
            found.setdefault(name, False)
        elif name is not None and re.search(r"%[yz]mm\d", line):
            found[name] = True
    return found


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or not shutil.which("c++")
                    or not shutil.which("objdump"), reason="needs an x86-64 C++ compiler and objdump")
@pytest.mark.parametrize("source", _kernel_files())
def test_wide_instructions_stay_in_their_instruction_set_namespace(tmp_path, source):
    # Each CPU kernel file compiles its loops once per instruction set
    # (csrc/cpu/for_each_isa.h). Code built for AVX2 or AVX-512 must live in
    # scorekern::cpu::avx2 / ::avx512 (or be named after their types): an
    # out-of-line inline function elsewhere (a weak symbol) could be picked by
    # the linker for the baseline build, or called unconditionally, and crash
    # an older CPU. Every function whose code touches a ymm or zmm register
    # is checked.
    from torch.utils import cpp_extension

    obj = tmp_path / "kernel.o"
    flags = ["-O3", "-std=c++17", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=fast", "-fPIC",
             "-I", os.path.join(ROOT, "csrc")] + [f"-isystem{d}" for d in cpp_extension.include_paths()]
    res = subprocess.run(["c++", *flags, "-c", os.path.join(ROOT, "csrc", "cpu", source), "-o", str(obj)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    functions = _functions_using_wide_registers(obj)
    wide = [f for f, uses in functions.items() if uses]
    assert wide, "no function uses AVX registers: the per-instruction-set passes did not compile"
    leaked = [f for f in wide if "::avx2::" not in f and "::avx512::" not in f]
    assert not leaked, "\n".join(leaked)


@requires_compiled
def test_nan_and_inf_propagate():
    # No -ffast-math: NaNs and infinities in the data come through.
    x = torch.tensor([float("nan"), float("inf"), 1.0, -float("inf"), 2.0])
    s = torch.tensor([0.0, 0.0, float("nan"), 0.0, 0.0])
    out = ops.noisy_update(x, s, 1.0, 0.5, 0.1, noise=torch.ones(5))
    assert out[0].isnan() and out[1] == float("inf") and out[2].isnan() and out[3] == -float("inf")
    assert out[4] == 2.1
