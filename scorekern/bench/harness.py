"""The one timing harness behind ``python -m scorekern bench`` and
``benchmarks/`` (the shape of Liger-Kernel's benchmark scripts): each op's
module in this package lists its cases, each case its providers (the fused
op, its eager twin from :mod:`scorekern.reference`, ``torch.compile`` of
that twin, ...), and the harness times them side by side in one process,
with the bandwidth of a plain tensor copy measured in the same run. It
measures; it asserts nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from .. import __version__, _backend


@dataclass
class Provider:
    """One way of computing a case: fn(*args), or the gradient of its result
    with respect to `grad_of` (a forward and backward pass); `compile` runs
    torch.compile(fn) instead (compile time reported apart); `context` wraps
    each call (e.g. TF32 allowed)."""

    fn: Callable
    args: tuple = ()
    grad_of: object = None
    compile: bool = False
    context: Callable | None = None


@dataclass
class Case:
    """What one benchmark row group measures: `op` on `shape`, every provider
    against `baseline`. GB/s come from `bytes_per_element` (the bytes an op
    must move per element in float32, per provider where they differ), or
    GFLOP/s from `flops`; `peak_memory` also records each provider's peak."""

    op: str
    shape: tuple
    providers: dict
    bytes_per_element: object = None  # int, or {provider: int}
    flops: float | None = None
    baseline: str = "eager twin"
    note: str = ""
    peak_memory: bool = False
    extra: dict = field(default_factory=dict)


@dataclass
class PathCase:
    """A whole run (a sampler, a likelihood) on the fused path against the
    twin path (``use_backend("torch")``): ``run(score, warm)`` with a fresh
    ``make_score()``; what matters is the time outside the score function."""

    name: str
    shape: tuple
    steps: int
    run: Callable
    make_score: Callable


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_ms(fn: Callable, device: str, repeat: int, warmup: int = 3) -> float:
    """Median wall time of fn in milliseconds (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    sync(device)
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
    """The bandwidth of dst.copy_(src) on numel float32 elements (8 bytes each moved)."""
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), device, repeat)
    return 8 * numel / ms / 1e6


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


def callable_of(provider: Provider, device: str):
    """(a zero-argument callable running the provider, compile seconds or None)."""
    fn, compile_s = provider.fn, None
    if provider.compile:
        fn = torch.compile(provider.fn, dynamic=False)

    def call():
        out = fn(*provider.args)
        return out if provider.grad_of is None else torch.autograd.grad(out, provider.grad_of)

    def run():
        if provider.context is None:
            return call()
        with provider.context():
            return call()
    if provider.compile:
        t0 = time.perf_counter()
        run()
        sync(device)
        compile_s = round(time.perf_counter() - t0, 2)
    return run, compile_s


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 while the profiler runs: its C++ side prints
    a line as it starts and stops, which would break the table."""
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


def peak_bytes(fn, device) -> int:
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


def measure(case: Case, device: str, repeat: int, copy: float | None, compile_baseline: bool) -> list[dict]:
    """One record per provider of `case`, with its speed-up over the baseline."""
    numel = 1
    for s in case.shape:
        numel *= s
    rows = []
    for name, provider in case.providers.items():
        if provider.compile and not compile_baseline:
            continue
        fn, compile_s = callable_of(provider, device)
        ms = time_ms(fn, device, repeat, warmup=1 if case.flops else 3)
        rec = dict(op=case.op, shape=list(case.shape), dtype="float32", impl=name, ms=round(ms, 4), **case.extra)
        nbytes = case.bytes_per_element
        if isinstance(nbytes, dict):
            nbytes = nbytes.get(name)
        if nbytes:
            gbps = nbytes * numel / ms / 1e6
            rec.update(bytes_per_element=nbytes, gbps=round(gbps, 2))
            if copy:
                rec.update(copy_gbps=round(copy, 2), fraction_of_copy=round(gbps / copy, 4))
        if case.flops:
            rec["gflops"] = round(case.flops / ms / 1e6, 1)
        if case.peak_memory:
            # The profiler does not see torch.compile's generated CPU code's allocations.
            rec["peak_bytes"] = None if provider.compile and device == "cpu" else peak_bytes(fn, device)
        if compile_s is not None:
            rec["compile_s"] = compile_s
        rows.append(rec)
    base = next((r["ms"] for r in rows if r["impl"] == case.baseline), None)
    for rec in rows:
        if base is not None:
            rec["speedup_vs_" + case.baseline.split()[-1]] = round(base / rec["ms"], 2)
    return rows


class TimedScore:
    """Wraps a score function and adds up the time spent in it."""

    def __init__(self, fn, device):
        self.fn, self.device, self.seconds, self.calls = fn, device, 0.0, 0

    def __call__(self, x, t):
        sync(self.device)
        t0 = time.perf_counter()
        out = self.fn(x, t)
        sync(self.device)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out


def time_paths(run: Callable, make_score: Callable, device, warm_up: bool = True) -> dict:
    """``run(score, warm)`` on the fused path and on the twin path
    (``use_backend("torch")``), side by side: a warm-up call (``warm=True``)
    unless ``warm_up`` is False, then the measured one with a fresh
    ``make_score()`` wrapped in :class:`TimedScore`. Returns
    ``{path: (seconds, timed score)}``."""
    from .. import use_backend

    out = {}
    for path in ("fused", "twin"):
        with use_backend("auto" if path == "fused" else "torch"):
            if warm_up:
                run(TimedScore(make_score(), device), True)
            score = TimedScore(make_score(), device)
            sync(device)
            t0 = time.perf_counter()
            run(score, False)
            sync(device)
            out[path] = (time.perf_counter() - t0, score)
    return out


def measure_paths(case: PathCase, device: str) -> list[dict]:
    """The fused and the twin path of a whole run: total and outside-the-score time."""
    rows = {}
    for path, (total, score) in time_paths(case.run, case.make_score, device).items():
        outside = total - score.seconds
        rows[path] = dict(case=case.name, shape=list(case.shape), steps=case.steps, path=path,
                          steps_per_s=round(case.steps / total, 2), total_s=round(total, 4),
                          score_s=round(score.seconds, 4), evals_per_s=round(score.calls / total, 1),
                          outside_ms_per_step=round(1e3 * outside / case.steps, 4))
    rows["fused"]["overhead_vs_twin"] = round(rows["twin"]["outside_ms_per_step"]
                                              / rows["fused"]["outside_ms_per_step"], 2)
    return list(rows.values())


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
