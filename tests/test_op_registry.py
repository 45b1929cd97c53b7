"""Every op has its parts: each schema in csrc/ops/*.cpp is reached by some
OpInfo sample (forward or backward), and each public op of scorekern.ops has
an OpInfo (its generic tests), a twin in scorekern.reference and a
benchmark case. A new op that forgets one of them fails here."""

import os
import re

import pytest
import torch

from scorekern import bench, ops, reference

from conftest import requires_compiled
from opinfo import _grads, _Recorder, library_as
from test_cuda_sim import op_infos

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Public names of scorekern.ops that are not ops of their own.
NOT_OPS = {
    "Noise": "the handle perturb returns (tested with perturb and dsm_loss)",
    "draw_seed_offset": "the generator's (seed, offset) draw every op makes (tests/test_stream.py)",
    "noisy_update_": "noisy_update with out=x (the 'inplace' placement of noisy_update's samples)",
}


def _schemas():
    names = set()
    for f in os.listdir(os.path.join(ROOT, "csrc", "ops")):
        if f.endswith(".cpp"):
            text = open(os.path.join(ROOT, "csrc", "ops", f)).read()
            names.update(re.findall(r'm\.def\(\s*"(\w+)\(', text))
    return names


@requires_compiled
def test_every_schema_is_reached_by_the_samples():
    schemas = _schemas()
    assert {"noisy_update", "noisy_update_out", "mixture_score_backward", "philox4x32"} <= schemas
    recorder = _Recorder(torch.ops.scorekern)
    with library_as(recorder):
        for info in op_infos():
            for sample in info.samples():
                args, kwargs = sample.make()
                got = info.fn(*args, **kwargs)
                if sample.grad:
                    _grads(got, [args[i] for i in sample.grad])
    reached = {op.name().split("::")[1].split(".")[0] for op, _ in recorder.calls}
    assert schemas <= reached, f"no sample reaches {sorted(schemas - reached)}"


@pytest.mark.parametrize("name", sorted(set(ops.__all__) - set(NOT_OPS)))
def test_every_op_has_an_opinfo_a_twin_and_a_benchmark(name):
    assert name in {info.name for info in op_infos()}, f"{name} has no OpInfo in tests/test_*.py"
    assert callable(getattr(reference, name, None)), f"{name} has no twin in scorekern.reference"
    benched = {c.op.split()[0] for _, c in bench.cases("cpu", True, samplers=False) if isinstance(c, bench.Case)}
    assert name in benched, f"{name} has no benchmark case in scorekern/bench"


def test_the_not_ops_exist():
    assert set(NOT_OPS) <= set(ops.__all__)
