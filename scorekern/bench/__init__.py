"""The benchmark behind ``python -m scorekern bench`` and ``benchmarks/``.

One harness (:mod:`.harness`), and one module per op listing its cases
(``cases(device, quick)``, Liger-Kernel's shape): the fused op, its eager
twin from :mod:`scorekern.reference` and ``torch.compile`` of that twin,
side by side in one process, with the copy bandwidth of the same run; whole
samplers and likelihoods as the fused against the twin path. It measures;
it asserts nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os

import torch

from ..ops import OP_MODULES
from .harness import (Case, PathCase, Provider, TimedScore, copy_gbps, environment, float32_matmul_precision,
                      measure, measure_paths, time_ms, time_paths)

# The case modules: one per op that has cases, then the whole runs.
MODULES = tuple(m for m in OP_MODULES if importlib.util.find_spec(f"{__name__}.{m}")) + ("samplers", "likelihood")
# Older names of groups of modules, still accepted by --ops.
ALIASES = {"losses": ("dsm_loss", "sliced_score_terms"), "mixture": ("mixture_score",)}

__all__ = ["MODULES", "Case", "PathCase", "Provider", "TimedScore", "cases", "main", "run", "time_ms",
           "time_paths", "float32_matmul_precision", "copy_gbps", "environment"]


def selected(only=None, samplers: bool = True) -> list[str]:
    """The case modules that `only` (module names, op names or ALIASES) selects."""
    if not only:
        return [m for m in MODULES if samplers or m != "samplers"]
    names = set()
    for name in only:
        if name in ALIASES:
            names.update(ALIASES[name])
        elif name in MODULES:
            names.add(name)
        else:
            owners = [m for m in MODULES if name in {c.op.split()[0] for c in _module(m).cases("cpu", True)
                                                     if isinstance(c, Case)}]
            if not owners:
                raise ValueError(f"unknown op {name!r}; known: {', '.join(MODULES + tuple(ALIASES))}")
            names.update(owners)
    return [m for m in MODULES if m in names]


def _module(name):
    return importlib.import_module(f"{__name__}.{name}")


def cases(device: str, quick: bool, only=None, samplers: bool = True) -> list:
    """Every case of the selected modules, as (module name, case)."""
    return [(m, case) for m in selected(only, samplers) for case in _module(m).cases(device, quick)]


def _log_case(log, rows, case):
    for rec in rows:
        speed = next((v for k, v in rec.items() if k.startswith("speedup_vs_")), 1.0)
        rate = (f"{rec['gbps']:8.1f} {rec.get('fraction_of_copy', 0):8.2f}" if "gbps" in rec
                else f"{rec.get('gflops', 0):8.1f} {'':>8}")
        peak = "" if "peak_bytes" not in rec else (
            "  peak n/a" if rec["peak_bytes"] is None else f"  peak {rec['peak_bytes'] / 2**20:.1f} MiB")
        compile_note = f" (compile {rec['compile_s']} s)" if "compile_s" in rec else ""
        label = f"{case.op} {case.note}".strip()
        log(f"{label:<30} {str(list(case.shape)):<18} {rec['impl']:<24} {rec['ms']:10.3f} {rate} {speed:8.2f}"
            f"{peak}{compile_note}")


def run(device: str | None = None, quick: bool = False, ops=None, compile_baseline: bool = True,
        samplers: bool = True, log=print) -> dict:
    """Measures the selected cases; returns {"meta": ..., "records": [...]}."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise SystemExit(f"scorekern bench: --device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("scorekern bench: --device cuda, but torch sees no CUDA device")
    repeat = 3 if quick else (20 if device == "cuda" else 9)
    compile_baseline = compile_baseline and not quick
    meta = environment(device)
    log(f"scorekern {meta['scorekern']} bench on {meta['device']} | torch {meta['torch']} | "
        f"{meta['threads']} threads | CPU kernels {meta['cpu_capability']} | {meta['date']}")
    log(f"{'case':<30} {'shape':<18} {'impl':<24} {'ms':>10} {'GB/s':>8} {'of copy':>8} {'x base':>8}"
        "   (GFLOP/s for the mixture; x base: over the eager or naive twin)")
    records, copies = [], {}
    for module, case in cases(device, quick, ops, samplers):
        if isinstance(case, PathCase):
            rows = measure_paths(case, device)
            for rec in rows:
                log(f"{case.name:<30} {str(list(case.shape)):<18} {rec['path'] + ' path':<24} "
                    f"{rec['total_s'] * 1e3:10.1f} {'':>8} {'':>8} {rec.get('overhead_vs_twin', 1.0):8.2f}"
                    f"   outside the score {rec['outside_ms_per_step']:.3f} ms/step")
        else:
            copy = None
            if case.bytes_per_element:
                numel = math.prod(case.shape)
                if numel not in copies:
                    copies[numel] = copy_gbps(numel, device, repeat)
                    log(f"{'copy':<30} {str(list(case.shape)):<18} {'dst.copy_(src)':<24} "
                        f"{8 * numel / copies[numel] / 1e6:10.3f} {copies[numel]:8.1f} {1:8.2f}")
                copy = copies[numel]
            rows = measure(case, device, repeat, copy, compile_baseline)
            _log_case(log, rows, case)
        for rec in rows:
            rec["module"] = module
        records += rows
    return {"meta": meta, "records": records}


def main(device=None, quick=False, json_path=None, ops=None, compile_baseline=True, samplers=True) -> dict:
    result = run(device=device, quick=quick, ops=ops, compile_baseline=compile_baseline, samplers=samplers)
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {json_path}")
    return result
