"""The throughput harness behind ``python -m scorekern bench`` and ``benchmarks/``.

Each op is timed, side by side in one process, as the fused op (functional,
and writing into ``out=``), its eager twin from :mod:`scorekern.reference`
and ``torch.compile`` of that twin (compile time reported apart), with the
bandwidth of a plain tensor copy measured in the same run. GB/s count the
bytes an op must move per element (stated per op); the fraction of copy
bandwidth compares that with ``dst.copy_(src)``. It measures; it asserts
nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch

from . import __version__, _backend, ops, reference


@dataclass
class Case:
    op: str
    shape: tuple
    per_row: bool
    bytes_per_element: int  # what the op must read and write (float32)
    impls: dict  # name -> zero-argument callable


def _coefficient(per_row, rows, device, gen):
    if per_row:
        return torch.rand(rows, generator=gen, device="cpu").mul_(0.01).add_(0.005).to(device)
    return 0.01


def make_case(op: str, shape: tuple, per_row: bool, device: str, dtype=torch.float32) -> Case:
    """Inputs on `device` and the callables of every implementation of `op`."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen, dtype=dtype).to(device)
    s = torch.randn(shape, generator=gen, dtype=dtype).to(device)
    out = torch.empty_like(x)
    rows = 1 if len(shape) == 1 else shape[0]
    tau = _coefficient(per_row, rows, device, gen)
    sqrt2tau = math.sqrt(2 * tau) if not isinstance(tau, torch.Tensor) else (2 * tau).sqrt()

    if op == "langevin_step":
        nbytes = 12  # read x and the score, write x'
        fused = lambda: ops.langevin_step(x, s, tau)  # noqa: E731
        fused_out = lambda: ops.langevin_step(x, s, tau, out=out)  # noqa: E731
        twin, args = reference.langevin_step, (x, s, tau)
    elif op == "noisy_update":
        nbytes = 12
        fused = lambda: ops.noisy_update(x, s, 1.0, tau, sqrt2tau)  # noqa: E731
        fused_out = lambda: ops.noisy_update(x, s, 1.0, tau, sqrt2tau, out=out)  # noqa: E731
        twin, args = reference.noisy_update, (x, s, 1.0, tau, sqrt2tau)
    elif op == "snr_langevin_step":
        nbytes = 16  # the score twice (norms, then the update), x once, x' once
        alpha = tau if per_row else 1.0
        fused = lambda: ops.snr_langevin_step(x, s, 0.16, alpha=alpha)  # noqa: E731
        fused_out = lambda: ops.snr_langevin_step(x, s, 0.16, alpha=alpha, out=out)  # noqa: E731
        twin, args = (lambda x, s: reference.snr_langevin_step(x, s, 0.16, alpha=alpha)), (x, s)
    elif op == "masked_update":
        nbytes = 20  # read x, the score, y and the mask, write x'
        y = torch.randn(shape, generator=gen, dtype=dtype).to(device)
        mask = (torch.rand(shape, generator=gen) > 0.5).to(device=device, dtype=dtype)
        coefs = (1.0, tau, sqrt2tau, 0.9, 0.3)
        fused = lambda: ops.masked_update(x, s, y, mask, *coefs)  # noqa: E731
        fused_out = lambda: ops.masked_update(x, s, y, mask, *coefs, out=out)  # noqa: E731
        twin, args = reference.masked_update, (x, s, y, mask, *coefs)
    elif op == "randn_like":
        nbytes = 4  # write the noise
        fused = lambda: ops.randn_like(x)  # noqa: E731
        fused_out = None
        twin, args = reference.randn_like, (x,)
    else:
        raise ValueError(f"unknown op {op!r}; known: {', '.join(OPS)}")
    impls = {"fused": fused}
    if fused_out is not None:
        impls["fused out="] = fused_out
    impls["eager twin"] = lambda: twin(*args)
    impls["compiled twin"] = (twin, args)  # compiled lazily: see run()
    return Case(op, tuple(shape), per_row, nbytes, impls)


OPS = ("langevin_step", "noisy_update", "snr_langevin_step", "masked_update", "randn_like")


def shapes(device: str, quick: bool) -> list[tuple[tuple, bool]]:
    """(shape, per-row coefficients) to measure."""
    if quick:
        return [((1 << 20,), False), ((512, 2048), True)]
    out = [((1 << 24,), False), ((4096, 4096), True)]
    if device == "cuda":
        out.append(((1 << 26,), False))
    return out


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_ms(fn: Callable, device: str, repeat: int, warmup: int = 3) -> float:
    """Median wall time of fn in milliseconds (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def copy_gbps(numel: int, device: str, repeat: int) -> float:
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), device, repeat)
    return 8 * numel / ms / 1e6


def environment(device: str) -> dict:
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "scorekern": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device_type": device,
        "threads": torch.get_num_threads(),
        "cpu": _cpu_model(),
        "cpu_capability": _backend.cpu_capability(),
        "backend": _backend.requested(),
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        meta.update(device=props.name, cuda=torch.version.cuda, driver=_driver_version(),
                    sm_count=props.multi_processor_count)
    else:
        meta["device"] = meta["cpu"]
    return meta


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} logical cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _driver_version() -> str | None:
    try:
        res = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return res.stdout.strip().splitlines()[0] if res.returncode == 0 else None
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None


def run(device: str | None = None, quick: bool = False, ops_filter=None, compile_baseline: bool = True,
        log=print) -> dict:
    """Measure every op; returns {"meta": ..., "records": [...]}."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise SystemExit(f"scorekern bench: --device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("scorekern bench: --device cuda, but torch sees no CUDA device")
    repeat = 3 if quick else (20 if device == "cuda" else 9)
    compile_baseline = compile_baseline and not quick
    names = [op for op in OPS if not ops_filter or op in ops_filter]
    unknown = set(ops_filter or ()) - set(OPS) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown ops {sorted(unknown)}; known: {', '.join(OPS + GROUPS)}")
    meta = environment(device)
    log(f"scorekern {__version__} bench on {meta['device']} | torch {meta['torch']} | "
        f"{meta['threads']} threads | CPU kernels {meta['cpu_capability']} | {meta['date']}")
    log(f"{'op':<18} {'shape':<14} {'coef':<6} {'impl':<14} {'ms':>9} {'GB/s':>8} {'of copy':>8} {'x eager':>8}")
    records = []
    for shape, per_row in shapes(device, quick):
        numel = math.prod(shape)
        copy = copy_gbps(numel, device, repeat)
        log(f"{'copy':<18} {str(list(shape)):<14} {'':<6} {'dst.copy_(src)':<14} "
            f"{8 * numel / copy / 1e6:9.3f} {copy:8.1f} {1:8.2f}")
        for op in names:
            case = make_case(op, shape, per_row, device)
            rows = []
            for impl, fn in case.impls.items():
                extra = {}
                if impl == "compiled twin":
                    if not compile_baseline:
                        continue
                    twin, args = fn
                    compiled = torch.compile(twin, dynamic=False)
                    t0 = time.perf_counter()
                    compiled(*args)
                    _sync(device)
                    extra["compile_s"] = round(time.perf_counter() - t0, 2)
                    fn = lambda compiled=compiled, args=args: compiled(*args)  # noqa: E731
                ms = time_ms(fn, device, repeat)
                gbps = case.bytes_per_element * numel / ms / 1e6
                rows.append(dict(op=op, shape=list(shape), per_row=per_row, dtype="float32", impl=impl,
                                 ms=round(ms, 4), bytes_per_element=case.bytes_per_element, gbps=round(gbps, 2),
                                 copy_gbps=round(copy, 2), fraction_of_copy=round(gbps / copy, 4), **extra))
            eager_ms = next(r["ms"] for r in rows if r["impl"] == "eager twin")
            for rec in rows:
                rec["speedup_vs_eager"] = round(eager_ms / rec["ms"], 2)
                note = f" (compile {rec['compile_s']} s)" if "compile_s" in rec else ""
                log(f"{op:<18} {str(list(shape)):<14} {'row' if per_row else 'scalar':<6} {rec['impl']:<14} "
                    f"{rec['ms']:9.3f} {rec['gbps']:8.1f} {rec['fraction_of_copy']:8.2f} "
                    f"{rec['speedup_vs_eager']:8.2f}{note}")
            records += rows
    return {"meta": meta, "records": records}


# ---------------------------------------------------------------------------
# The DSM loss: forward and backward, as a training step runs them.

DSM_BYTES = {  # float32 bytes per element: forward reads, backward reads and writes the gradient
    "fused regenerated": 12,  # the score twice, the gradient once
    "fused noise tensor": 20,  # the score and the noise twice, the gradient once
    "eager twin": 20,
    "compiled twin": 20,
}
# sliced_score_terms: the forward reads score, vjp and v; the backward reads
# v (and the score) and writes the gradients of score and vjp.
SLICED_BYTES = 12 + 16


def dsm_shapes(quick: bool) -> list[tuple]:
    return [(256, 3072), (4096, 2)] if quick else [(4096, 3072), (65536, 2)]


def _grad_of(loss_fn, inputs, args):
    return lambda: torch.autograd.grad(loss_fn(*args), inputs)


def dsm_case(shape: tuple, device: str, dtype=torch.float32) -> dict:
    """name → zero-argument callable running the σ²-weighted DSM loss
    (score_scale = σ per row) forward and backward, returning the gradient;
    the compiled twin as (twin, args, inputs) to compile lazily."""
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(shape, generator=gen, dtype=dtype).to(device)
    score = torch.randn(shape, generator=gen, dtype=dtype).to(device).requires_grad_()
    sigma = torch.rand(shape[0], generator=gen).add_(0.01).to(device)
    _, handle = ops.perturb(x0, 1.0, sigma)
    z = handle.tensor()
    return {
        "fused regenerated": _grad_of(ops.dsm_loss, score, (score, handle, sigma)),
        "fused noise tensor": _grad_of(ops.dsm_loss, score, (score, z, sigma)),
        "eager twin": _grad_of(reference.dsm_loss, score, (score, z, sigma)),
        "compiled twin": (reference.dsm_loss, (score, z, sigma), score),
    }


def sliced_case(shape: tuple, device: str, dtype=torch.float32) -> dict:
    """sliced_score_terms (plain) forward and backward to the score and the vjp."""
    gen = torch.Generator().manual_seed(0)
    score, vjp = (torch.randn(shape, generator=gen, dtype=dtype).to(device).requires_grad_() for _ in range(2))
    v = torch.randn(shape, generator=gen, dtype=dtype).to(device)

    def total(fn):
        return lambda s, u, v: fn(s, u, v).sum()

    return {
        "fused": _grad_of(total(ops.sliced_score_terms), (score, vjp), (score, vjp, v)),
        "eager twin": _grad_of(total(reference.sliced_score_terms), (score, vjp), (score, vjp, v)),
        "compiled twin": (total(reference.sliced_score_terms), (score, vjp, v), (score, vjp)),
    }


def _peak_training_memory(shape, device, stored_noise: bool) -> int:
    """Peak CUDA memory (bytes) of perturb → a one-layer score → DSM loss → backward."""
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(shape, generator=gen).to(device)
    weight = torch.randn(shape[1:], generator=gen).to(device).requires_grad_()
    sigma = torch.rand(shape[0], generator=gen).add_(0.01).to(device)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    if stored_noise:
        z = torch.randn_like(x0)
        x_t = x0 + sigma.reshape(-1, *([1] * (x0.dim() - 1))) * z
        loss = reference.dsm_loss(x_t * weight, z, sigma)
    else:
        x_t, handle = ops.perturb(x0, 1.0, sigma)
        loss = ops.dsm_loss(x_t * weight, handle, sigma)
    loss.backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def run_losses(device: str | None = None, quick: bool = False, compile_baseline: bool = True, log=print) -> list[dict]:
    """Forward + backward per shape of the DSM loss (fused with regenerated
    noise, fused with a noise tensor, the eager twin and torch.compile of the
    twin) and of the sliced score matching terms."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    repeat = 3 if quick else (20 if device == "cuda" else 9)
    compile_baseline = compile_baseline and not quick
    log(f"{'fwd+bwd':<18} {'shape':<14} {'impl':<19} {'ms':>9} {'GB/s':>8} {'of copy':>8} {'x eager':>8}")
    records = []
    for shape in dsm_shapes(quick):
        numel = math.prod(shape)
        copy = copy_gbps(numel, device, repeat)
        for op, case, nbytes in (("dsm_loss", dsm_case(shape, device), DSM_BYTES),
                                 ("sliced_score_terms", sliced_case(shape, device), None)):
            rows = []
            for impl, fn in case.items():
                extra = {}
                if impl == "compiled twin":
                    if not compile_baseline:
                        continue
                    twin, args, inputs = fn
                    compiled = torch.compile(twin, dynamic=False)
                    t0 = time.perf_counter()
                    torch.autograd.grad(compiled(*args), inputs)
                    _sync(device)
                    extra["compile_s"] = round(time.perf_counter() - t0, 2)
                    fn = _grad_of(compiled, inputs, args)
                ms = time_ms(fn, device, repeat)
                per_element = nbytes[impl] if nbytes else SLICED_BYTES
                gbps = per_element * numel / ms / 1e6
                rows.append(dict(op=op + " fwd+bwd", shape=list(shape), dtype="float32", impl=impl, ms=round(ms, 4),
                                 bytes_per_element=per_element, gbps=round(gbps, 2), copy_gbps=round(copy, 2),
                                 fraction_of_copy=round(gbps / copy, 4), **extra))
            eager_ms = next(r["ms"] for r in rows if r["impl"] == "eager twin")
            for rec in rows:
                rec["speedup_vs_eager"] = round(eager_ms / rec["ms"], 2)
                note = f" (compile {rec['compile_s']} s)" if "compile_s" in rec else ""
                log(f"{op:<18} {str(list(shape)):<14} {rec['impl']:<19} {rec['ms']:9.3f} "
                    f"{rec['gbps']:8.1f} {rec['fraction_of_copy']:8.2f} {rec['speedup_vs_eager']:8.2f}{note}")
            records += rows
        if device == "cuda":
            for stored in (False, True):
                peak = _peak_training_memory(shape, device, stored)
                impl = "twin, stored noise" if stored else "fused, regenerated noise"
                log(f"{'  peak memory':<18} {str(list(shape)):<14} {impl:<28} {peak / 2**20:9.1f} MiB")
                records.append(dict(op="dsm training step peak memory", shape=list(shape), impl=impl, peak_bytes=peak))
    return records


# ---------------------------------------------------------------------------
# Mixture scores: the fused tiled kernel against the naive twin (an [M, N]
# matrix), torch.compile of it, and scaled_dot_product_attention with the
# augmentation trick.


def sdpa_mixture_score(x, centers, h):
    """The mixture score as attention: q = [x, 1], k = [μ, −‖μ‖²/2], v = [μ, 0],
    scale 1/h²: softmax(q·kᵀ/h²) = softmax(−‖x − μ‖²/2h²) (the ‖x‖² term cancels)."""
    m, d = x.shape
    ones = torch.ones(m, 1, dtype=x.dtype, device=x.device)
    q = torch.cat([x, ones], 1)[None, None]
    k = torch.cat([centers, -0.5 * centers.square().sum(1, keepdim=True)], 1)[None, None]
    v = torch.cat([centers, torch.zeros_like(centers[:, :1])], 1)[None, None]
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=1.0 / h**2)[0, 0, :, :d]
    return (out - x) / h**2


def _naive_mixture_score(x, centers, h):
    """The naive twin as users write it: cdist, softmax, matmul."""
    w = torch.softmax(-torch.cdist(x, centers).square() / (2 * h * h), dim=1)
    return (w @ centers - x) / (h * h)


@contextlib.contextmanager
def float32_matmul_precision(precision: str):
    """torch.set_float32_matmul_precision for the duration of a block; "high"
    lets float32 matmuls, and scorekern's mixture kernel, use TF32 tensor cores."""
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


def _in_tf32(fn):
    def run():
        with float32_matmul_precision("high"):
            return fn()

    return run


def tf32_peak_gflops(repeat: int = 10, n: int = 8192) -> float:
    """What this GPU's TF32 tensor cores do on a large square float32 matmul
    (GFLOP/s): the peak the mixture kernel is measured against."""
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    ms = time_ms(_in_tf32(lambda: a @ b), "cuda", repeat)
    return 2.0 * n**3 / ms / 1e6


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 while the profiler runs: its C++ side prints
    a line as it starts and stops, which would break the table. (Python
    exceptions still reach the caller; they are printed after it.)"""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _peak_bytes(fn, device) -> int:
    """Peak memory allocated while fn runs, above what was allocated before:
    torch.cuda's counter on a GPU, the profiler's allocation events on the CPU."""
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.events() if e.cpu_memory_usage), key=lambda e: e.time_range.start)
    level = peak = 0
    for e in events:
        level += e.cpu_memory_usage
        peak = max(peak, level)
    return peak


def run_mixture(device: str | None = None, quick: bool = False, compile_baseline: bool = True,
                log=print) -> list[dict]:
    """mixture_score at M = 4096 queries, N = 16384 centres, d = 2 and 64,
    float32, bandwidth 1: time and peak memory of each implementation. On a
    GPU also the fused kernel and the SDPA trick with TF32 allowed, and the
    TF32 matmul peak of the same run (a record of its own); the TF32 rows
    carry their fraction of it."""
    from . import ops

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    repeat = 2 if quick else (20 if device == "cuda" else 5)
    m, n = (512, 2048) if quick else (4096, 16384)
    compile_baseline = compile_baseline and not quick
    records = []
    peak_gflops = None
    if device == "cuda":
        size = 4096 if quick else 8192
        peak_gflops = round(tf32_peak_gflops(repeat=3 if quick else 10, n=size), 1)
        records.append(dict(op="tf32 matmul peak", shape=[size] * 3, dtype="float32", impl="torch.mm (TF32)",
                            gflops=peak_gflops))
        log(f"TF32 matmul peak (torch.mm, float32 with TF32 allowed): {peak_gflops / 1e3:.1f} TFLOP/s")
    log(f"{'mixture_score':<18} {'M, N, d':<18} {'impl':<16} {'ms':>9} {'GFLOP/s':>8} {'peak MiB':>9} {'x naive':>8}")
    for d in (2, 64):
        gen = torch.Generator(device=device).manual_seed(d)
        x = torch.randn(m, d, generator=gen, device=device)
        centers = torch.randn(n, d, generator=gen, device=device)
        h = 1.0
        impls = {
            "fused": lambda: ops.mixture_score(x, centers, h),
            "naive twin": lambda: _naive_mixture_score(x, centers, h),
            "sdpa trick": lambda: sdpa_mixture_score(x, centers, h),
        }
        if device == "cuda":
            impls["fused tf32"] = _in_tf32(impls["fused"])
            impls["sdpa trick tf32"] = _in_tf32(impls["sdpa trick"])
        if compile_baseline:
            impls["compiled twin"] = torch.compile(lambda: _naive_mixture_score(x, centers, h))
        rows = []
        for impl, fn in impls.items():
            extra = {}
            if impl == "compiled twin":
                t0 = time.perf_counter()
                fn()
                _sync(device)
                extra["compile_s"] = round(time.perf_counter() - t0, 2)
            ms = time_ms(fn, device, repeat, warmup=1)
            # The profiler does not see the allocations of torch.compile's
            # generated CPU code, so its peak is reported on the GPU only.
            peak = None if impl == "compiled twin" and device == "cpu" else _peak_bytes(fn, device)
            flops = 4.0 * m * n * d  # the two products x·μ and Σ p·μ
            if impl.endswith("tf32"):
                extra["fraction_of_tf32_peak"] = round(flops / ms / 1e6 / peak_gflops, 3)
            rows.append(dict(op="mixture_score", shape=[m, n, d], dtype="float32", impl=impl, ms=round(ms, 3),
                             gflops=round(flops / ms / 1e6, 1), peak_bytes=peak, **extra))
        naive = next(r["ms"] for r in rows if r["impl"] == "naive twin")
        for rec in rows:
            rec["speedup_vs_naive"] = round(naive / rec["ms"], 2)
            peak = "n/a" if rec["peak_bytes"] is None else f"{rec['peak_bytes'] / 2**20:.1f}"
            log(f"{'mixture_score':<18} {str([m, n, d]):<18} {rec['impl']:<16} {rec['ms']:9.2f} {rec['gflops']:8.1f} "
                f"{peak:>9} {rec['speedup_vs_naive']:8.2f}")
        records += rows
    return records


# ---------------------------------------------------------------------------
# Samplers: a whole predictor–corrector run, fused against the twin path.


class _TimedScore:
    """Wraps a score function and adds up the time spent in it."""

    def __init__(self, fn, device):
        self.fn, self.device, self.seconds, self.calls = fn, device, 0.0, 0

    def __call__(self, x, t):
        _sync(self.device)
        t0 = time.perf_counter()
        out = self.fn(x, t)
        _sync(self.device)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out


def time_paths(run: Callable, make_score: Callable, device, warm_up: bool = True) -> dict:
    """``run(score, warm)`` on the fused path and on the twin path
    (``use_backend("torch")``), side by side: a warm-up call (``warm=True``)
    unless ``warm_up`` is False, then the measured one with a fresh
    ``make_score()`` wrapped in :class:`_TimedScore`. Returns
    ``{path: (seconds, timed score)}``."""
    from . import use_backend

    out = {}
    for path in ("fused", "twin"):
        with use_backend("auto" if path == "fused" else "torch"):
            if warm_up:
                run(_TimedScore(make_score(), device), True)
            score = _TimedScore(make_score(), device)
            _sync(device)
            t0 = time.perf_counter()
            run(score, False)
            _sync(device)
            out[path] = (time.perf_counter() - t0, score)
    return out


def _analytic_score(sde, mu: float = 0.5, std: float = 0.3):
    """The exact score of data N(μ, std²I) under the SDE: −(x − mμ)/(m²std² + s²)."""

    def score(x, t):
        m, s = sde.mean_coef(t), sde.std(t)
        var = (m**2 * std**2 + s**2).reshape(-1, *([1] * (x.dim() - 1)))
        return (m.reshape(var.shape) * mu - x) / var

    return score


def _mlp_score(device, hidden=128):
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden),
                              torch.nn.SiLU(), torch.nn.Linear(hidden, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    net = net.to(device)

    def score(x, t):
        return net(torch.cat([x, t[:, None]], dim=1))

    return score


def sampler_cases(device: str, quick: bool):
    """(name, shape, score factory, N) of the sampler benchmark."""
    n = 50 if quick else 1000
    if quick:
        return [("analytic", (64, 3 * 32 * 32), _analytic_score, n), ("mlp", (4096, 2), lambda s: _mlp_score(device), n)]
    return [("analytic", (256, 3 * 32 * 32), _analytic_score, n), ("mlp", (65536, 2), lambda s: _mlp_score(device), n)]


def run_samplers(device: str | None = None, quick: bool = False, log=print) -> list[dict]:
    """A full PC sampler (reverse diffusion + one Langevin corrector step, VP)
    per case: steps per second and the time outside the score function."""
    from .samplers import pc_sampler
    from .sde import VPSDE

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    log(f"{'sampler case':<28} {'path':<9} {'steps/s':>8} {'total s':>8} {'score s':>8} {'outside ms/step':>16} {'x less':>7}")
    records = []
    for name, shape, make_score, n in sampler_cases(device, quick):
        sde, warm = VPSDE(N=n), VPSDE(N=50)

        def sample(score, is_warm_up, shape=shape):
            pc_sampler(score, warm if is_warm_up else sde, shape, device=device, progress=False)

        rows = {}
        for path, (total, score) in time_paths(sample, lambda: make_score(sde), device).items():
            outside = total - score.seconds
            rows[path] = dict(case=f"pc_sampler {name}", shape=list(shape), steps=n, path=path,
                              steps_per_s=round(n / total, 2), total_s=round(total, 3),
                              score_s=round(score.seconds, 3), outside_ms_per_step=round(1e3 * outside / n, 4))
        ratio = rows["twin"]["outside_ms_per_step"] / rows["fused"]["outside_ms_per_step"]
        rows["fused"]["overhead_vs_twin"] = round(ratio, 2)
        for path, rec in rows.items():
            log(f"{name + ' ' + str(list(shape)):<28} {path:<9} {rec['steps_per_s']:8.1f} {rec['total_s']:8.2f} "
                f"{rec['score_s']:8.2f} {rec['outside_ms_per_step']:16.3f} {rec.get('overhead_vs_twin', 1.0):7.2f}")
            records.append(rec)
    return records


# ---------------------------------------------------------------------------
# Log-likelihoods through the probability-flow ODE, fused against the twin path.


def likelihood_cases(quick: bool):
    """(shape, fixed rk4 steps) of the likelihood benchmark."""
    if quick:
        return [((512, 2), 5), ((16, 3 * 32 * 32), 5)]
    return [((4096, 2), 100), ((256, 3 * 32 * 32), 100)]


def run_likelihood(device: str | None = None, quick: bool = False, log=print) -> list[dict]:
    """``likelihood.log_likelihood`` (rk4, one Rademacher probe) of data under
    the exact score of N(0.5, 0.3²I) (VP): seconds per call and score
    evaluations per second, the fused path against the twin path."""
    from . import likelihood
    from .sde import VPSDE

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    sde = VPSDE()
    log(f"{'log_likelihood':<26} {'path':<6} {'s/call':>8} {'evals/s':>9} {'score s':>8} {'outside s':>10} {'x less':>7}")
    records = []
    for shape, n_steps in likelihood_cases(quick):
        x = (0.5 + 0.3 * torch.randn(shape, generator=torch.Generator().manual_seed(0))).to(device)

        def evaluate(score, is_warm_up, x=x, n_steps=n_steps):
            likelihood.log_likelihood(score, sde, x, n_steps=2 if is_warm_up else n_steps,
                                      generator=torch.Generator(device=device).manual_seed(0))

        rows = {}
        for path, (total, score) in time_paths(evaluate, lambda: _analytic_score(sde), device).items():
            rows[path] = dict(case="log_likelihood rk4 rademacher", shape=list(shape), steps=n_steps, path=path,
                              s_per_call=round(total, 4), evals_per_s=round(score.calls / total, 1),
                              score_s=round(score.seconds, 4), outside_s=round(total - score.seconds, 4))
        rows["fused"]["outside_vs_twin"] = round(rows["twin"]["outside_s"] / rows["fused"]["outside_s"], 2)
        for path, rec in rows.items():
            log(f"{str(list(shape)) + f' x{n_steps} steps':<26} {path:<6} {rec['s_per_call']:8.3f} "
                f"{rec['evals_per_s']:9.1f} {rec['score_s']:8.3f} {rec['outside_s']:10.3f} "
                f"{rec.get('outside_vs_twin', 1.0):7.2f}")
            records.append(rec)
    return records


GROUPS = ("losses", "mixture", "likelihood")


def main(device=None, quick=False, json_path=None, ops=None, compile_baseline=True, samplers=True) -> dict:
    result = run(device=device, quick=quick, ops_filter=ops, compile_baseline=compile_baseline)
    if not ops or "losses" in ops:
        result["losses"] = run_losses(device=device, quick=quick, compile_baseline=compile_baseline)
    if not ops or "mixture" in ops:
        result["mixture"] = run_mixture(device=device, quick=quick, compile_baseline=compile_baseline)
    if not ops or "likelihood" in ops:
        result["likelihood"] = run_likelihood(device=device, quick=quick)
    if samplers and not ops:
        result["samplers"] = run_samplers(device=device, quick=quick)
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {json_path}")
    return result
