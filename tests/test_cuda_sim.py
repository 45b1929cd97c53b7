"""The CUDA simulator (tests/cudasim) itself, and what the per-op tests cannot show.

g++ compiles csrc/cuda as it is (launches and __shared__ declarations
rewritten, tests/cudasim/rewrite.py) together with the real glue; the result
registers every op again as ``torch.ops.scorekern_sim``, CPU tensors in,
simulated CUDA kernels inside. Each op's samples run through it in that
op's ``test_<op>_simulated`` (tests/opinfo.py), against the CPU kernels: bit
for bit where the arithmetic is the same (the stream, the updates), within
stated tolerances where the order of a sum or the tensor cores' TF32 differ.
The simulated device has 2 SMs, so that small tensors already fill
multi-block grids and wrap around their grid-stride loops; every comparison
runs under several schedule seeds (the order of blocks, of threads between
barriers, of WMMA elements).

Here: the samples reach every ``__global__`` kernel; the tensor-core
selection by architecture; CUDA graph capture; whole samplers and losses;
faults the simulator must report and correct code it must pass; the
AddressSanitizer build in a child process.

Variants (CUDASIM_VARIANT): ``race`` (default: shared-memory race checking,
uninitialised reads, out-of-bounds shared accesses) and ``asan``
(AddressSanitizer and UBSan; run in a child process by
test_kernels_under_address_sanitizer). Marked ``cuda_sim``: ``python -m
pytest -m cuda_sim`` runs exactly these and every ``test_<op>_simulated``.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys

import pytest
import torch

from scorekern import reference

from conftest import COMPILED, SIM_SEEDS, SIM_SM_COUNT, SIM_VARIANT, TOL
from cudasim import build as simbuild
from opinfo import _grads, run_simulated, tensors_of

pytestmark = [pytest.mark.cuda_sim, pytest.mark.skipif(not COMPILED, reason="scorekern._C is not built")]

TESTS = os.path.dirname(os.path.abspath(__file__))


def op_infos():
    """Every OpInfo of the op test files (tests/test_*.py that list OP_INFOS)."""
    infos = []
    for name in sorted(os.listdir(TESTS)):
        if name.startswith("test_") and name.endswith(".py") and re.search(
                r"^OP_INFOS = ", open(os.path.join(TESTS, name)).read(), re.M):
            infos += importlib.import_module(name[:-3]).OP_INFOS
    return infos


def _kernels_in(path):
    from cudasim import rewrite

    toks = [t for t in rewrite.tokenize(open(path).read()) if t.kind not in ("ws", "comment")]
    names = set()
    for i, t in enumerate(toks):
        if t.text == "__global__":
            j = i + 1
            while not (toks[j].kind == "id" and toks[j + 1].text == "(" and toks[j].text != "__launch_bounds__"):
                j += 1
            names.add(toks[j].text)
    return names


def test_every_kernel_runs_in_the_samples(sim):
    """Each __global__ function in csrc/cuda runs for some op sample, forward
    or backward (a new kernel needs samples that reach it)."""
    infos = op_infos()
    assert len(infos) >= 10
    for info in infos:
        for sample in info.samples():
            torch.backends.cuda.matmul.allow_tf32 = sample.tf32
            try:
                args, kwargs = sample.make()
                got = run_simulated(sim, info.fn, args, kwargs)
                run_simulated(sim, tensors_of, (got,), {})
                if sample.grad:
                    run_simulated(sim, _grads, (got, [args[i] for i in sample.grad]), {})
            finally:
                torch.backends.cuda.matmul.allow_tf32 = False
    ran = {m.group(1) for k in torch.ops.cudasim.kernels_run() for m in [re.search(r"(\w+)\(", k)] if m}
    cuda = os.path.join(simbuild.CSRC, "cuda")
    kernels = set().union(*(_kernels_in(os.path.join(cuda, f)) for f in os.listdir(cuda)
                            if f.endswith((".cu", ".cuh"))))
    assert len(kernels) >= 13
    assert kernels <= ran, f"never run in the simulator: {sorted(kernels - ran)}"


def test_samples_fill_many_blocks_and_wrap_the_grid(sim):
    # With 2 SMs the launchers cap a grid at 32 blocks of 256 threads: a
    # [9, 4001] update has 9009 groups of four, so the grid-stride loop wraps.
    before = torch.ops.cudasim.stats()
    x = torch.randn(9, 4001)
    sim.noisy_update(x, x, [], [], [1.0, 0.1, 0.2], None, 1, 2, None, False)
    after = torch.ops.cudasim.stats()
    assert after[0] == before[0] + 1
    assert after[1] - before[1] == 32 and after[2] - before[2] == 32 * 256
    assert 9 * 1001 > 32 * 256


def test_mixture_tensor_cores_differ_from_exact(sim):
    # The TF32 path runs (its result is not the exact kernel's) and stays
    # within its model's bound of the float64 twin.
    g = torch.Generator().manual_seed(0)
    x, c = torch.randn(64, 64, generator=g), torch.randn(700, 64, generator=g)
    exact, lse_exact = sim.mixture_score(x, c, [], [], [4.0], None, True)
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        tf32, lse_tf32 = sim.mixture_score(x, c, [], [], [4.0], None, True)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
    assert not torch.equal(tf32, exact)
    want = reference.mixture_score(x.double(), c.double(), 4.0)
    scale = want.abs().max().item()
    assert (exact.double() - want).abs().max().item() < 1e-5 * scale
    assert (tf32.double() - want).abs().max().item() < 4e-3 * scale
    lp = reference.mixture_log_prob(x.double(), c.double(), 4.0)
    assert (lse_tf32.double() - lse_exact.double()).abs().max().item() < 1e-3 * (1 + lp.abs().max().item())


@pytest.mark.parametrize("arch, tensor_cores_at", [(90, (16, 64, 128)), (80, (16, 64, 128)), (86, (16, 64)),
                                                 (75, ())])
def test_mixture_takes_tensor_cores_where_the_device_allows(sim, arch, tensor_cores_at):
    # sm_80+ only, and only where the tile fits the block's shared memory
    # (d = 128 needs 117 KiB: not on sm_86's 99 KiB).
    torch.ops.cudasim.configure(SIM_SEEDS[0], SIM_SM_COUNT, arch)
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        for d in (16, 64, 128):
            g = torch.Generator().manual_seed(d)
            x, c = torch.randn(20, d, generator=g), torch.randn(90, d, generator=g)
            tf32, _ = sim.mixture_score(x, c, [], [], [3.0], None, True)
            torch.backends.cuda.matmul.allow_tf32 = False
            exact, _ = sim.mixture_score(x, c, [], [], [3.0], None, True)
            torch.backends.cuda.matmul.allow_tf32 = True
            assert torch.equal(tf32, exact) == (d not in tensor_cores_at), d
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.ops.cudasim.configure(SIM_SEEDS[0], SIM_SM_COUNT, 90)


# ---------------------------------------------------------------------------
# CUDA graph capture: the seed and base offset read through device pointers


MASKED_COEFS = [1.0, 0.1, 0.5, 1.0, 0.2]  # a, b, c, and the observed part's mean and std coefficients


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_captured_noise_reads_the_generator_state_at_launch(sim, baseline, dtype):
    captured = -1  # the capture marker (2**64 - 1)
    x = torch.randn(5, 1031).to(dtype)
    s = torch.randn(5, 1031).to(dtype)
    seed, base = torch.tensor([0x1234_5678_9ABC], dtype=torch.int64), torch.tensor([1000], dtype=torch.int64)
    torch.ops.cudasim.begin_capture(seed, base)
    try:
        z1 = sim.randn(x, 0, captured, None)
        u1, m1 = sim.noisy_update(x, s, [], [], [1.0, 0.1, 0.5], None, 0, captured, None, True)
        # A "replay" after the generator moved on: the same launch reads the new state.
        seed.fill_(77)
        base.fill_(4000)
        z2 = sim.randn(x, 0, captured, None)
        y, mask = torch.randn_like(x), (torch.rand(x.shape) > 0.5).to(dtype)
        w, _ = sim.masked_update(x, s, y, mask, [], [], MASKED_COEFS, None, None, 0, captured, captured, None, False)
        c, _ = sim.snr_langevin_step(x, s, 0.16, [], [], [1.0], True, None, 0, captured, None, False)
        used = torch.ops.cudasim.end_capture()
    finally:
        try:
            torch.ops.cudasim.end_capture()
        except RuntimeError:
            pass
    assert used == 6 * 4  # each draw advances the graph's offset by 4, as philox_cuda_state(4)
    R = torch.ops.scorekern
    S0 = 0x1234_5678_9ABC
    assert torch.equal(z1, R.randn(x, S0, 1000, None))
    assert torch.equal(u1, R.noisy_update(x, s, [], [], [1.0, 0.1, 0.5], None, S0, 1004, None, True)[0])
    assert torch.equal(z2, R.randn(x, 77, 4008, None))
    want_w, _ = R.masked_update(x, s, y, mask, [], [], MASKED_COEFS, None, None, 77, 4012, 4016, None, False)
    assert torch.equal(w, want_w)
    want_c, _ = R.snr_langevin_step(x, s, 0.16, [], [], [1.0], True, None, 77, 4020, None, False)
    torch.testing.assert_close(c, want_c, **TOL[dtype])
    with pytest.raises(RuntimeError, match="no capture is underway"):
        sim.randn(x, 0, captured, None)


# ---------------------------------------------------------------------------
# Whole samplers and losses through the simulated kernels


def _pc_sample():
    from scorekern import samplers
    from scorekern.sde import VPSDE

    # N(0, I) data: under the VP SDE the score is -x at every time.
    return samplers.pc_sampler(lambda x, t: -x, VPSDE(N=50), (8, 3, 11), snr=0.16, progress=False,
                               generator=torch.Generator().manual_seed(3))


def _dsm_loss():
    from scorekern import losses
    from scorekern.sde import VESDE

    x0 = torch.randn(16, 3, 9, generator=torch.Generator().manual_seed(0))
    model = lambda x, t: -x / (1 + t[:, None, None])  # noqa: E731
    return losses.dsm(model, x0, VESDE(), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("run", [_pc_sample, _dsm_loss], ids=["pc_sampler", "losses.dsm"])
def test_python_layer_through_the_simulator_equals_the_cpu(baseline, run, sim):
    with torch.no_grad():
        want = run()
    launches = torch.ops.cudasim.stats()[0]
    with torch.no_grad():
        got = run_simulated(sim, run, (), {})
    assert torch.ops.cudasim.stats()[0] > launches  # it ran the simulated kernels
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# The simulator itself: faults it must report, and correct code it must pass


FAULTS = {
    "race": r"shared-memory race \((read after write|write after read)\) on __shared__ s .*faults.cu",
    # a lane reads what the same lane of the other warp wrote: __syncwarp orders neither
    "syncwarp_warps": r"shared-memory race [\s\S]*\[warp ([01]) lane (\d+)\][\s\S]*\[warp (?!\1)[01] lane \2\]",
    "uninitialised": r"read of uninitialised shared memory .*__shared__ s",
    "out_of_bounds": r"out-of-bounds shared-memory read of 4 bytes at s\+160",
    "divergent_barrier": r"(__syncthreads at faults.cu:\d+ is reached after|a thread exits while).*every thread of "
                         r"the block must reach it",
    "exit_before_barrier": r"(__syncthreads at faults.cu:\d+ is reached after|a thread exits while).*every thread",
    "half_warp_shuffle": r"(exits while lanes of its warp wait for it at __shfl_xor_sync|names lane \d+, which has "
                         r"exited)",
    "split_shuffle": r"divergent warp collective: lane \d+ reaches __shfl_down_sync .* at faults.cu:\d+ while lanes "
                     r"of its warp wait at __shfl_down_sync .* at faults.cu:\d+",
    "outside_mask": r"reads lane 20, which is not in the mask 0x0000ffff",
    "deadlock": r"deadlock: no thread of the block can go on\n    5 thread\(s\) from thread \(0,0,0\).*wait at "
                r"__shfl_xor_sync \(mask 0xffffffff\).*\n    1 thread\(s\) from thread \(5,0,0\).*wait at __syncthreads",
    "too_many_threads": r"invalid launch configuration: a block of \(1025,1,1\) threads",
    "zero_grid": r"invalid launch configuration: a grid of \(0,1,1\) blocks",
    "launch_bounds": r"a block of 256 threads exceeds the kernel's __launch_bounds__\(128\)",
    "dynamic_shared_over_48k": r"65536 bytes of dynamic shared memory needs cudaFuncSetAttribute",
    "fragment_misaligned": r"wmma::load_matrix_sync: the pointer 0x[0-9a-f]+ is not 256-bit \(32-byte\) aligned",
}
RACE_ONLY = {"race", "syncwarp_warps", "uninitialised", "out_of_bounds"}  # the race build's checker


def _fault_case(name):
    out = torch.zeros(4096)
    torch.ops.cudasim.fault_case(name, out, torch.arange(512, dtype=torch.float32))
    return out


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_simulator_reports_the_fault(sim, seed, name):
    if SIM_VARIANT != "race" and name in RACE_ONLY:
        pytest.skip("found by the race-checking build's access hooks (in the asan build, by AddressSanitizer)")
    with pytest.raises(RuntimeError, match=FAULTS[name]) as info:
        _fault_case(name)
    message = str(info.value)
    assert message.startswith("cudasim: ") and "launched at faults.cu:" in message
    # The simulator recovers: the next launch runs.
    assert torch.equal(_fault_case("barrier")[:64], torch.arange(1, 65, dtype=torch.float32) % 64)


def test_simulator_passes_correct_code(sim, seed):
    out = _fault_case("barrier")
    assert torch.equal(out[:64], torch.arange(1, 65, dtype=torch.float32) % 64)
    out = _fault_case("syncwarp_lanes")
    assert torch.equal(out[:64], torch.arange(64, dtype=torch.float32).view(-1, 2).flip(1).reshape(-1))
    out = _fault_case("warp_sum")[:192].view(64, 3)
    lane = torch.arange(64) % 32
    assert torch.all(out[:, 0] == 496)  # Σ 0..31 on every lane
    seg = lane % 8  # width 8: up reads 3 lanes back within the segment, down 3 ahead
    tid = torch.arange(64, dtype=torch.float32)
    assert torch.equal(out[:, 1], torch.where(seg >= 3, tid - 3, tid))
    assert torch.equal(out[:, 2], torch.where(seg + 3 < 8, tid + 3, tid))
    assert torch.all(_fault_case("dynamic_shared")[:64] == 2)
    assert torch.all(_fault_case("dynamic_shared_attribute")[:64] == 2)


def test_wmma_fragments_are_scrambled_by_seed(sim):
    tile = torch.arange(512, dtype=torch.float32)
    layouts = []
    for s in (1, 2):
        torch.ops.cudasim.configure(s, SIM_SM_COUNT)
        frag = _fault_case("fragment")[:128]
        assert torch.equal(frag.sort().values, tile[:128])  # every element of the 16×8 tile, once
        assert not torch.equal(frag, tile[:128])  # not in the row-major order code might assume
        layouts.append(frag)
    assert not torch.equal(*layouts)
    torch.ops.cudasim.configure(SIM_SEEDS[0], SIM_SM_COUNT)


def test_shared_memory_is_poisoned_at_every_block(sim):
    # A kernel that reads shared memory before writing it is reported (race
    # build); in every build the memory holds NaN patterns, not zeros.
    if SIM_VARIANT == "race":
        with pytest.raises(RuntimeError, match="uninitialised"):
            _fault_case("uninitialised")
    else:
        assert torch.isnan(_fault_case("uninitialised")[0])


# ---------------------------------------------------------------------------
# The sanitizer build, in a child process


@pytest.mark.slow
@pytest.mark.skipif(SIM_VARIANT != "race", reason="run from the race variant's session")
def test_kernels_under_address_sanitizer(sim, tmp_path):
    """Every cuda_sim test (each op's samples, the tests above) under
    AddressSanitizer and UBSan (exact-size buffers: torch's CPU allocator
    under ASan), one schedule seed."""
    simbuild.build("asan")
    env = dict(os.environ, CUDASIM_VARIANT="asan", CUDASIM_SEEDS="5", LD_PRELOAD=simbuild.asan_preload(),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:halt_on_error=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", TESTS, "-m", "cuda_sim",
           "-k", "not address_sanitizer"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=os.path.dirname(TESTS))
    tail = (res.stdout + res.stderr)[-6000:]
    assert res.returncode == 0, tail
    assert "ERROR: AddressSanitizer" not in tail and "runtime error" not in tail, tail
    passed = re.search(r"(\d+) passed", res.stdout)
    assert passed and int(passed.group(1)) > 500, tail  # every op sample once, and the tests here


@pytest.mark.slow
@pytest.mark.skipif(SIM_VARIANT != "race", reason="run from the race variant's session")
@pytest.mark.parametrize("case", ["global", "shared"])
def test_address_sanitizer_catches_out_of_bounds(sim, case):
    """memcheck's stand-in: a kernel writing past a tensor, or reading past a
    __shared__ array, stops with AddressSanitizer's report."""
    code = f"""
import torch
torch.ops.load_library({simbuild.build('asan')!r})
out = torch.zeros(4096)
if {case!r} == "shared":
    torch.ops.cudasim.fault_case("out_of_bounds", out, torch.zeros(512))
else:
    torch.ops.cudasim.fault_case("global_out_of_bounds", out, torch.zeros(512))
"""
    env = dict(os.environ, LD_PRELOAD=simbuild.asan_preload(), ASAN_OPTIONS="detect_leaks=0")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode != 0
    # Past a shared array, UBSan's bounds check (it knows the array's type) speaks first.
    found = ("AddressSanitizer: heap-buffer-overflow" in res.stderr
             or re.search(r"runtime error: index \d+ out of bounds for type 'float \[32\]'", res.stderr))
    assert found, res.stderr[-3000:]
