"""samplers.inpaint on a correlated Gaussian with its exact score (the
fused masked update itself: test_masked_update.py)."""

import math

import pytest
import torch

import scorekern
from scorekern import samplers
from scorekern.sde import VESDE, VPSDE, SubVPSDE

from conftest import requires_compiled
from exact_scores import gaussian_score

pytestmark = requires_compiled


# ---------------------------------------------------------------------------
# samplers.inpaint on a correlated Gaussian: the exact conditional is known.

MU = torch.tensor([1.0, -0.5])
COV = torch.tensor([[1.0, 1.35], [1.35, 2.25]])  # correlation 0.9
Y1 = 2.0
COND_MEAN = float(MU[1] + COV[1, 0] / COV[0, 0] * (Y1 - MU[0]))  # 0.85
COND_VAR = float(COV[1, 1] - COV[1, 0] ** 2 / COV[0, 0])  # 0.4275


def _inpaint(sde, n, resample, **kw):
    y = torch.zeros(n, 2)
    y[:, 0] = Y1
    x = samplers.inpaint(gaussian_score(sde, MU, COV), sde, y, torch.tensor([True, False]), resample=resample,
                         generator=torch.Generator().manual_seed(0), progress=False, **kw)
    assert torch.equal(x[:, 0], y[:, 0])  # observed entries exactly y
    return x[:, 1]


@pytest.mark.slow
@pytest.mark.parametrize("sde", [VPSDE(N=100), VESDE(sigma_max=10.0, N=100)], ids=["vp", "ve"])
def test_resampling_gives_the_conditional_and_plain_replacement_does_not(sde):
    """8000 samples, so the standard error of the mean is 0.007 and of the
    variance 0.007. Measured (VP): plain replacement gives mean 0.24 and
    variance 0.96 (against 0.85 and 0.43); 20 resamplings per step 0.84 and
    0.42. Bounds: with resampling, mean within 0.04 and variance within 0.05
    (about 5 standard errors plus the 0.01 bias left by 100 steps);
    without, a mean error above 0.3."""
    resampled = _inpaint(sde, 8000, 20)
    assert abs(float(resampled.mean()) - COND_MEAN) < 0.04
    assert abs(float(resampled.var()) - COND_VAR) < 0.05
    plain = _inpaint(sde, 8000, 1)
    assert abs(float(plain.mean()) - COND_MEAN) > 0.3


def test_inpaint_sub_vp_corrector_trajectory_and_errors():
    sde = SubVPSDE(N=30)
    steps = []
    y = torch.randn(50, 2)
    x, traj = samplers.inpaint(gaussian_score(sde, MU, COV), sde, y, torch.tensor([True, False]), resample=2,
                               corrector="langevin", generator=torch.Generator().manual_seed(1), progress=False,
                               callback=lambda i, t, x, m: steps.append(i), return_steps=[0, -1])
    assert steps == list(range(30)) and sorted(traj) == [0, 29]
    assert torch.equal(x[:, 0], y[:, 0]) and torch.isfinite(x).all()
    # unknown entries given as NaN are ignored
    y_nan = y.clone()
    y_nan[:, 1] = float("nan")
    with_nan = samplers.inpaint(gaussian_score(sde, MU, COV), sde, y_nan, torch.tensor([True, False]), resample=2,
                                corrector="langevin", generator=torch.Generator().manual_seed(1), progress=False)
    assert torch.equal(with_nan, x)
    again = samplers.inpaint(gaussian_score(sde, MU, COV), sde, y, torch.tensor([True, False]), resample=2,
                             corrector="langevin", generator=torch.Generator().manual_seed(1), progress=False)
    assert torch.equal(again, x)
    with pytest.raises(ValueError, match="resample"):
        samplers.inpaint(gaussian_score(sde, MU, COV), sde, y, torch.tensor([True, False]), resample=0)
    with pytest.raises(ValueError, match="predictor"):
        samplers.inpaint(gaussian_score(sde, MU, COV), sde, y, torch.tensor([True, False]), predictor=None)
    with pytest.raises(ValueError, match="mask"):
        samplers.inpaint(gaussian_score(sde, MU, COV), sde, y, torch.ones(3))


def test_inpaint_twin_path_matches_in_distribution():
    """The twin path (use_backend("torch")) draws other noise; its samples
    have the same conditional mean within 5 standard errors of the difference."""
    sde = VPSDE(N=40)
    fused = _inpaint(sde, 4000, 4)
    with scorekern.use_backend("torch"):
        twin = _inpaint(sde, 4000, 4)
    se = math.sqrt(float(fused.var()) / 4000 + float(twin.var()) / 4000)
    assert abs(float(fused.mean()) - float(twin.mean())) < 5 * se
