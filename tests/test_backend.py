"""Backend choice (compiled kernels or twins), build information and the command line."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import scorekern
from scorekern import _backend, ops, reference

from conftest import COMPILED, requires_compiled


def _run(code, **env):
    """Run code in a fresh interpreter, with `env` on top of ours (minus SCOREKERN_BACKEND)."""
    full_env = {k: v for k, v in os.environ.items() if k != "SCOREKERN_BACKEND"}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, timeout=300)


def test_use_backend_torch_runs_the_twins(monkeypatch):
    calls = []
    real = reference.noisy_update

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(reference, "noisy_update", spy)
    x = torch.randn(3, 4)
    with scorekern.use_backend("torch"):
        ops.noisy_update(x, x, 1.0, 0.1, 0.2)
        assert _backend.requested() == "torch"
    assert calls == [1]
    ops.noisy_update(x, x, 1.0, 0.1, 0.2)
    assert calls == [1] if COMPILED else calls == [1, 1]


def test_both_backends_agree_on_explicit_noise():
    x, s, z = (torch.randn(5, 7, generator=torch.Generator().manual_seed(i)) for i in range(3))
    a = torch.rand(5)
    with scorekern.use_backend("torch"):
        twin = ops.noisy_update(x, s, a, 0.1, 0.3, noise=z)
        twin_snr = ops.snr_langevin_step(x, s, 0.2, noise=z)
    torch.testing.assert_close(ops.noisy_update(x, s, a, 0.1, 0.3, noise=z), twin)
    torch.testing.assert_close(ops.snr_langevin_step(x, s, 0.2, noise=z), twin_snr)


def test_twin_path_keeps_the_checks():
    x = torch.randn(3, 4)
    with scorekern.use_backend("torch"):
        with pytest.raises(ValueError, match="c must be non-negative"):
            ops.noisy_update(x, x, 1, 1, -1)
        with pytest.raises(ValueError, match=r"row_ids must have shape \[3\]"):
            ops.langevin_step(x, x, 0.1, row_ids=torch.arange(2))


def test_twin_randn_semantics():
    # The twin keeps the meaning of seed and row ids, though not the values.
    x = torch.empty(4, 6)
    ids = torch.tensor([3, 1, 4, 1])
    with scorekern.use_backend("torch"):
        assert torch.equal(ops.randn_like(x, seed=5, offset=1), ops.randn_like(x, seed=5, offset=1))
        a = ops.randn_like(x, seed=5, row_ids=ids)
        b = ops.randn_like(x[1:3], seed=5, row_ids=ids[1:3])
        assert torch.equal(a[1:3], b) and torch.equal(a[1], a[3])
        r = ops.rademacher_like(x, seed=2)
        assert set(r.unique().tolist()) <= {-1.0, 1.0}


def test_use_backend_rejects_unknown_names():
    with pytest.raises(ValueError, match="use_backend's name must be one of auto, compiled, torch"):
        with scorekern.use_backend("fast"):
            pass


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a build without CUDA")
@requires_compiled
def test_compiled_request_without_kernels_raises():
    if "cuda" in _backend.compiled_devices():
        pytest.skip("this build has CUDA kernels")
    with scorekern.use_backend("compiled"):
        with pytest.raises(RuntimeError, match="built without CUDA kernels"):
            _backend.uses_compiled(torch.device("cuda"))


def test_environment_variable_selects_the_twins():
    res = _run("""
        import torch, scorekern
        from scorekern import ops, reference
        called = []
        real = reference.langevin_step
        reference.langevin_step = lambda *a, **k: called.append(1) or real(*a, **k)
        ops.langevin_step(torch.randn(3), torch.randn(3), 0.1)
        print(scorekern.info()["requested_backend"], len(called))
    """, SCOREKERN_BACKEND="torch")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["torch", "1"]
    bad = _run("import torch, scorekern; scorekern.ops.randn_like(torch.empty(2))", SCOREKERN_BACKEND="gpu")
    assert bad.returncode != 0 and "SCOREKERN_BACKEND must be one of auto, compiled, torch; got 'gpu'" in bad.stderr


def test_missing_extension_warns_once_and_runs_the_twins():
    res = _run("""
        import sys, warnings
        sys.modules["scorekern._C"] = None  # as if built with SCOREKERN_NO_EXTENSION=1
        import torch, scorekern
        from scorekern import ops
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            x = torch.randn(4, 3)
            z = torch.randn(4, 3)
            out = ops.noisy_update(x, x, 1.0, 0.5, 2.0, noise=z)
            ops.langevin_step(x, x, 0.1)
            ops.randn_like(x)
        assert torch.allclose(out, 1.5 * x + 2.0 * z)
        msgs = [str(w.message) for w in caught if "scorekern" in str(w.message)]
        print(len(msgs), msgs[0] if msgs else "")
        print(scorekern.info()["devices"]["cpu"])
    """)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0].startswith("1 scorekern: the compiled extension scorekern._C is not available")
    assert "running the pure-PyTorch twins" in lines[0]
    assert lines[1].startswith("torch (the compiled extension")


@requires_compiled
def test_info_reports_the_build():
    report = scorekern.info()
    assert report["extension"] and "cpu" in report["compiled_backends"]
    assert report["built_with_torch"] == torch.__version__
    assert report["cpu_capability"] in report["cpu_capabilities"]
    assert "baseline" in report["cpu_capabilities"]
    assert report["devices"]["cpu"].startswith("compiled")
    if report["cuda_version"] is None:
        assert report["devices"]["cuda"].startswith("torch (scorekern._C was built without CUDA")


def test_command_line_info():
    res = subprocess.run([sys.executable, "-m", "scorekern", "info", "--json"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["version"] == scorekern.__version__
    res = subprocess.run([sys.executable, "-m", "scorekern", "info"], capture_output=True, text=True)
    assert res.returncode == 0 and "requested backend" in res.stdout


@requires_compiled
def test_cpu_capability_environment_variable():
    res = _run("import scorekern; print(scorekern.info()['cpu_capability'])", SCOREKERN_CPU_CAPABILITY="baseline")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "baseline"
    res = _run("import scorekern; print(scorekern.info()['cpu_capability'])", SCOREKERN_CPU_CAPABILITY="sse9")
    assert res.returncode == 0, res.stderr
    assert "SCOREKERN_CPU_CAPABILITY='sse9' is not available here" in res.stderr
