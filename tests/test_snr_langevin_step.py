"""The signal-to-noise Langevin corrector against its twin (the score_sde corrector)."""

import pytest
import torch

from scorekern import ops, reference

from conftest import DTYPES, TOL, devices, opmath, requires_compiled
from opinfo import (BadInput, OpInfo, Sample, coefficient, data, describe, op_tests, rows_of, shape_dtype_cases,
                    update_kwargs, view_for)

pytestmark = requires_compiled

SHAPES = [(7,), (3, 5), (4, 3, 3), (2, 1030), (64, 2), (3, 2049), (1, 1)]


def _inputs(shape, dtype, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype) for _ in range(3))


def _alpha(kind, rows, device):
    if kind == "float":
        return 0.97
    if kind == "0d":
        return torch.tensor(0.9, device=device)
    return torch.rand(rows, generator=torch.Generator().manual_seed(5), dtype=torch.float64).to(device) + 0.5


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("norms", ["batch", "row"])
@pytest.mark.parametrize("alpha", ["float", "0d", "rows"])
def test_matches_twin_on_explicit_noise(device, dtype, shape, norms, alpha):
    x, s, z = _inputs(shape, dtype, device)
    rows = 1 if len(shape) == 1 else shape[0]
    al = _alpha(alpha, rows, device)
    got, got_mean = ops.snr_langevin_step(x, s, 0.16, alpha=al, norms=norms, noise=z, return_mean=True)
    op = opmath(dtype)
    al_op = al.to(op) if isinstance(al, torch.Tensor) else al
    want, want_mean = reference.snr_langevin_step(x.to(op), s.to(op), 0.16, alpha=al_op, norms=norms,
                                                  noise=z.to(op), return_mean=True)
    torch.testing.assert_close(got, want.to(dtype), **TOL[dtype])
    torch.testing.assert_close(got_mean, want_mean.to(dtype), **TOL[dtype])


def test_step_formula_by_hand():
    # ε = 2α(r·mean‖z‖/mean‖s‖)² for the batch; one row at a time for "row".
    x, s, z = _inputs((3, 50), torch.float64)
    r, alpha = 0.2, 0.8
    eps_batch = 2 * alpha * (r * z.norm(dim=1).mean() / s.norm(dim=1).mean()) ** 2
    out = ops.snr_langevin_step(x, s, r, alpha=alpha, noise=z)
    torch.testing.assert_close(out, x + eps_batch * s + (2 * eps_batch).sqrt() * z, rtol=1e-12, atol=1e-12)
    eps_row = (2 * alpha * (r * z.norm(dim=1) / s.norm(dim=1)) ** 2)[:, None]
    out = ops.snr_langevin_step(x, s, r, alpha=alpha, norms="row", noise=z)
    torch.testing.assert_close(out, x + eps_row * s + (2 * eps_row).sqrt() * z, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("norms", ["batch", "row"])
def test_regenerated_noise_equals_stored_noise(dtype, norms):
    # Pass one reduces ‖z‖ with z never stored, pass two regenerates it: the
    # result equals the corrector given that same z as a tensor.
    x, s, _ = _inputs((6, 1500), dtype)
    fused = ops.snr_langevin_step(x, s, 0.16, norms=norms, generator=torch.Generator().manual_seed(1))
    z = ops.randn_like(x, generator=torch.Generator().manual_seed(1))
    explicit = ops.snr_langevin_step(x, s, 0.16, norms=norms, noise=z)
    torch.testing.assert_close(fused, explicit, rtol=1e-6 if dtype == torch.float32 else 1e-13, atol=1e-6)


def test_row_ids_with_row_norms_are_batch_invariant():
    x, s, _ = _inputs((6, 40), torch.float32)
    ids = torch.arange(100, 106)
    full = ops.snr_langevin_step(x, s, 0.1, norms="row", row_ids=ids, generator=torch.Generator().manual_seed(2))
    part = ops.snr_langevin_step(x[2:], s[2:], 0.1, norms="row", row_ids=ids[2:], generator=torch.Generator().manual_seed(2))
    assert torch.equal(full[2:], part)


def test_out_and_in_place():
    x, s, z = _inputs((5, 21), torch.float32)
    want, want_mean = ops.snr_langevin_step(x, s, 0.16, noise=z, return_mean=True)
    y = x.clone()
    res, mean = ops.snr_langevin_step(y, s, 0.16, noise=z, out=y, return_mean=True)
    assert res is y and torch.equal(y, want) and torch.equal(mean, want_mean)


@pytest.mark.parametrize("device", devices())
def test_opcheck(device):
    x, s, z = _inputs((4, 10), torch.float32, device)
    alpha = torch.rand(4, device=device) + 0.5
    for args in [
        (x, s, 0.16, [], [], [1.0], True, z, 0, 0, None, True),
        (x, s, 0.16, [alpha], [0], [1.0], False, None, 5, 6, None, False),
        (x, s, 0.16, [], [], [0.5], True, None, 5, 6, torch.arange(4, device=device), True),
    ]:
        torch.library.opcheck(torch.ops.scorekern.snr_langevin_step.default, args)
    torch.library.opcheck(torch.ops.scorekern.snr_langevin_step_out.default,
                          (x, s, 0.16, [], [], [1.0], True, None, 5, 6, None, torch.empty_like(x), None))


def test_errors():
    x, s, _ = _inputs((4, 3), torch.float32)
    with pytest.raises(ValueError, match="norms must be 'batch' or 'row', got 'max'"):
        ops.snr_langevin_step(x, s, 0.1, norms="max")
    with pytest.raises(ValueError, match="snr must be non-negative"):
        ops.snr_langevin_step(x, s, -0.1)
    with pytest.raises(ValueError, match="alpha must be non-negative"):
        ops.snr_langevin_step(x, s, 0.1, alpha=-1.0)
    with pytest.raises(ValueError, match=r"alpha must be a float, a 0-d tensor or a tensor of shape \[4\]"):
        ops.snr_langevin_step(x, s, 0.1, alpha=torch.ones(2))
    with pytest.raises(RuntimeError, match="snr_langevin_step is not differentiable"):
        ops.snr_langevin_step(x.requires_grad_(), s, 0.1)


# ---------------------------------------------------------------------------
# The samples every generic test draws from (tests/opinfo.py)


def _sim_tol(dtype):
    # The norms are sums in another order on the GPU: the step sizes differ by rounding.
    return TOL[dtype]


def snr_langevin_step_samples():
    out = []
    for i, (shape, dtype) in shape_dtype_cases():
        view, rows = view_for(i, shape), rows_of(shape)
        kind = ["float", "0d", "rows", "rows_broadcast"][i % 4]
        explicit = i % 3 != 2
        placement = [None, "new", "strided", "inplace"][(i + i // 4) % 4]
        mean, norms = i % 2 == 1, ["batch", "row"][(i // 2) % 2]

        def make(shape=shape, dtype=dtype, view=view, rows=rows, kind=kind, i=i, explicit=explicit,
                 placement=placement, mean=mean, norms=norms):
            x, s = data(shape, dtype, i, view), data(shape, dtype, 50 + i, view)
            kw = {"alpha": coefficient(kind, rows, dtype, i, positive=True, ndim=len(shape)), "norms": norms,
                  "return_mean": mean}
            return (x, s, 0.16), update_kwargs(kw, x, i, view, explicit, placement, mean)

        out.append(Sample(make, describe(shape, dtype, view, kind, norms, placement, "mean" if mean else "",
                                         "noise" if explicit else "drawn"),
                          dtype, twin=explicit, sim_tol=_sim_tol(dtype), opcheck=i in (0, 9, 14)))
    return out


SNR_LANGEVIN_STEP = OpInfo("snr_langevin_step", snr_langevin_step_samples, data_args={0: "x", 1: "score"},
                           bad_inputs=lambda: [
                               BadInput(lambda: ((torch.randn(4, 3), torch.randn(4, 3), float("nan")), {}), ValueError,
                                        "snr must be", "NaN snr"),
                               BadInput(lambda: ((torch.randn(4, 3), torch.randn(4, 3), 0.1), {"norms": "max"}),
                                        ValueError, "norms must be", "norms"),
                           ])
OP_INFOS = [SNR_LANGEVIN_STEP]
globals().update(op_tests(SNR_LANGEVIN_STEP))
