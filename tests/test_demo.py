"""The main job, ``python -m scorekern demo``: it runs end to end, and with
its default model it learns the mixture."""

import importlib.util
import math
import struct
import sys

import pytest
import torch

from scorekern import demo
from scorekern.__main__ import main


def test_energy_distance_separates_distributions():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(800, 2, generator=gen), torch.randn(800, 2, generator=gen)
    shifted = y + torch.tensor([0.5, 0.0])
    same, different = demo.energy_distance(x, y), demo.energy_distance(x, shifted)
    assert 0 <= same < 0.02
    # For two Gaussians a shift of 0.5 gives an energy distance near 0.14.
    assert 0.08 < different < 0.25


def test_recovered_weights_of_true_samples():
    data = demo.mixture()
    x = data.sample(20000, torch.Generator().manual_seed(1))
    w = demo.recovered_weights(x, data)
    assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-12)
    # Components 4 apart with std 0.35 hardly overlap: 5 standard errors.
    se = (data.weights.double() * (1 - data.weights.double()) / len(x)).sqrt()
    assert ((w - data.weights.double()).abs() <= 5 * se + 1e-3).all(), w


def test_demo_cli_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    report_path = tmp_path / "report.json"
    assert main(["demo", "--steps", "40", "--samples", "200", "--sampler-steps", "40", "--no-progress",
                 "--json", str(report_path)]) == 0
    out = capsys.readouterr().out
    assert "pc_sampler" in out and "annealed_langevin" in out and "steps/s" in out
    import json

    report = json.loads(report_path.read_text())
    for name in ("pc_sampler", "annealed_langevin"):
        assert report[name]["finite"]
        assert math.isfinite(report[name]["energy_distance"])
        assert math.isclose(sum(report[name]["weights"]), 1.0, rel_tol=1e-9)
    assert report["speed"]["fused"]["steps_per_s"] > 0 and report["speed"]["twin"]["steps_per_s"] > 0
    if importlib.util.find_spec("matplotlib") is None:
        assert report["figure"] is None
    else:
        png = (tmp_path / "scorekern-demo.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])
        assert width > 500 and height > 200


def test_demo_without_matplotlib_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    report = demo.run(steps=5, n_samples=50, sampler_steps=20, out=str(tmp_path / "f.png"), progress=False)
    assert report["figure"] is None
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert not (tmp_path / "f.png").exists()


def test_demo_rejects_bad_sizes():
    with pytest.raises(ValueError, match="steps"):
        demo.run(steps=0)
    with pytest.raises(ValueError, match="sampler_steps"):
        demo.run(sampler_steps=5)


@pytest.mark.slow
def test_demo_learns_the_mixture():
    """A shortened default (4000 training steps, 300 sampler steps): both
    samplers' samples are close to the data and recover the weights.
    Measured here: energy distances 0.014 (PC) and 0.010 (ALD), weight
    errors 0.008 and 0.030. Bounds: energy distance under 0.03 (data against
    data of the same size gives 0.002; true samples without the 0.05
    component give 0.022; samples spread 1.2x too wide give 0.17) and
    weights within 0.06."""
    report = demo.run(steps=4000, n_samples=2000, sampler_steps=300, out=None, progress=False, log=lambda *a: None)
    for name in ("pc_sampler", "annealed_langevin"):
        assert report[name]["energy_distance"] < 0.03, report[name]
        assert report[name]["max_weight_error"] < 0.06, report[name]
