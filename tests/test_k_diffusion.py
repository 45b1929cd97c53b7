"""scorekern.integrations.k_diffusion against k-diffusion 0.1.1's own
samplers and schedules: the same model, the same noise (a shared noise
sampler, or the global generator for the churn of Euler, Heun and DPM-2),
trajectories within 1e-5 (float32) and 1e-12 (float64) relative error."""

import pytest
import torch

from scorekern import ops
from scorekern.integrations import k_diffusion as sk

from integrations import ToyDenoiser, k_sampling, rel_err, seeded_noise

TRAJ_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
SHAPE = (5, 3, 6, 7)

# name: (takes a noise_sampler in k-diffusion, draws noise by default, extra kwargs)
SAMPLERS = {
    "sample_euler": dict(churn=True),
    "sample_euler_ancestral": dict(noise=True),
    "sample_heun": dict(churn=True),
    "sample_dpm_2": dict(churn=True),
    "sample_dpm_2_ancestral": dict(noise=True),
    "sample_dpmpp_2s_ancestral": dict(noise=True),
    "sample_dpmpp_2m": dict(),
    "sample_dpmpp_2m_sde": dict(noise=True),
}


def _sigmas(dtype, n=12):
    return k_sampling().get_sigmas_karras(n, 0.02, 40.0).to(dtype)


def _start(dtype, seed=0, shape=SHAPE):
    g = torch.Generator().manual_seed(seed)
    return 40.0 * torch.randn(shape, generator=g, dtype=dtype)


def _run(fn, x, sigmas, model, **kw):
    """The sampler's result and its trajectory (the callback's x and denoised)."""
    seen = []
    out = fn(model, x, sigmas, callback=lambda d: seen.append((d["x"].clone(), d["denoised"].clone())), disable=True,
             **kw)
    return out, seen


def _both(name, dtype, seed=1, **kw):
    """Runs k-diffusion's and scorekern's sampler ``name`` on one model and one noise stream."""
    k = k_sampling()
    x = _start(dtype)
    sigmas = _sigmas(dtype)
    spec = SAMPLERS[name]
    results = []
    for fn in (getattr(k, name), getattr(sk, name)):
        model = ToyDenoiser(SHAPE[1], dtype)
        args = dict(kw)
        if spec.get("churn"):
            # k-diffusion draws torch.randn_like(x) every step (used where γ > 0: every step with s_tmin = 0);
            # scorekern takes that as a noise sampler
            args.update(s_churn=args.get("s_churn", 1.0))
            if fn is getattr(sk, name):
                args["noise_sampler"] = lambda s, sn, x=x: torch.randn_like(x)
            torch.manual_seed(seed)
        elif spec.get("noise"):
            args["noise_sampler"] = seeded_noise(x, seed)
        results.append(_run(fn, x, sigmas, model, **args) + (model.calls,))
    return results


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sampler_matches_k_diffusion(name, dtype):
    (want, want_traj, want_calls), (got, got_traj, got_calls) = _both(name, dtype)
    assert got_calls == want_calls
    assert len(got_traj) == len(want_traj) == len(_sigmas(dtype)) - 1
    tol = TRAJ_TOL[dtype]
    for (gx, gd), (wx, wd) in zip(got_traj, want_traj):
        assert gx.dtype == wx.dtype and rel_err(gx, wx) <= tol and rel_err(gd, wd) <= tol
    assert got.dtype == want.dtype and rel_err(got, want) <= tol
    assert not torch.equal(got, _start(dtype))


@pytest.mark.parametrize("kw", [dict(eta=0.5, s_noise=0.8), dict(eta=0.0)], ids=["eta0.5", "eta0"])
@pytest.mark.parametrize("name", [n for n, s in SAMPLERS.items() if s.get("noise")])
def test_eta_and_s_noise(name, kw):
    (want, _, _), (got, _, _) = _both(name, torch.float64, **kw)
    assert rel_err(got, want) <= 1e-12


@pytest.mark.parametrize("kw", [dict(s_churn=0.5, s_noise=1.3), dict(s_churn=20.0, s_tmin=0.5, s_tmax=10.0),
                                dict(s_churn=0.0)], ids=["churn0.5", "window", "nochurn"])
@pytest.mark.parametrize("name", [n for n, s in SAMPLERS.items() if s.get("churn")])
def test_churn(name, kw):
    if "s_tmin" in kw:  # k-diffusion draws noise every step, scorekern only where γ > 0: compare a fixed draw
        x = _start(torch.float64)
        z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        orig = torch.randn_like
        try:
            torch.randn_like = lambda t, **k: z.clone()
            want = getattr(k_sampling(), name)(ToyDenoiser(SHAPE[1], torch.float64), x, _sigmas(torch.float64),
                                               disable=True, **kw)
            got = getattr(sk, name)(ToyDenoiser(SHAPE[1], torch.float64), x, _sigmas(torch.float64), disable=True,
                                    noise_sampler=lambda s, sn: z.clone(), **kw)
        finally:
            torch.randn_like = orig
    else:
        (want, _, _), (got, _, _) = _both(name, torch.float64, **kw)
    assert rel_err(got, want) <= 1e-12


@pytest.mark.parametrize("solver_type", ["midpoint", "heun"])
def test_dpmpp_2m_sde_solver_types(solver_type):
    (want, _, _), (got, _, _) = _both("sample_dpmpp_2m_sde", torch.float64, solver_type=solver_type, eta=0.7)
    assert rel_err(got, want) <= 1e-12
    with pytest.raises(ValueError, match="solver_type"):
        sk.sample_dpmpp_2m_sde(ToyDenoiser(3), _start(torch.float32), _sigmas(torch.float32), solver_type="rk4")


def test_extra_args_and_callback():
    k = k_sampling()
    x, sigmas = _start(torch.float32), _sigmas(torch.float32)
    seen = {}
    for lib in (k, sk):
        got = []
        out = lib.sample_heun(ToyDenoiser(3), x, sigmas, extra_args={"scale": 0.4}, callback=got.append, disable=True)
        seen[lib] = (out, got)
    (want, wcb), (out, gcb) = seen[k], seen[sk]
    assert rel_err(out, want) <= 1e-5
    assert [sorted(d) for d in gcb] == [sorted(d) for d in wcb] == [["denoised", "i", "sigma", "sigma_hat", "x"]] * (len(sigmas) - 1)
    for g, w in zip(gcb, wcb):
        assert g["i"] == w["i"] and torch.equal(g["sigma"], w["sigma"]) and torch.equal(g["sigma_hat"], w["sigma_hat"])


@pytest.mark.parametrize("schedule, args", [
    ("get_sigmas_karras", (10, 0.002, 80.0)), ("get_sigmas_karras", (7, 0.1, 10.0, 3.0)),
    ("get_sigmas_exponential", (10, 0.002, 80.0)), ("get_sigmas_polyexponential", (9, 0.01, 50.0, 2.0)),
    ("get_sigmas_vp", (10,)), ("get_sigmas_vp", (6, 10.0, 0.2, 1e-2))])
def test_schedules_equal(schedule, args):
    want, got = getattr(k_sampling(), schedule)(*args), getattr(sk, schedule)(*args)
    assert got.dtype == want.dtype and torch.equal(got, want)


def test_helpers_equal():
    k = k_sampling()
    x, d = torch.randn(4, 3, 2), torch.randn(4, 3, 2)
    sigma = torch.rand(4) + 0.1
    assert torch.equal(sk.to_d(x, sigma, d), k.to_d(x, sigma, d))
    for a, b, eta in [(10.0, 5.0, 1.0), (3.0, 0.0, 1.0), (2.0, 1.5, 0.3), (2.0, 1.5, 0.0)]:
        assert sk.get_ancestral_step(a, b, eta) == k.get_ancestral_step(a, b, eta)
    ta, tb = torch.tensor(4.0), torch.tensor(1.0)
    assert all(torch.equal(torch.as_tensor(g), torch.as_tensor(w))
               for g, w in zip(sk.get_ancestral_step(ta, tb), k.get_ancestral_step(ta, tb)))
    assert torch.equal(sk.append_zero(sigma), k.append_zero(sigma))


def _stream_noise(x, seed, row_ids=None):
    """scorekern's stream as a noise sampler: what the samplers draw by default."""
    g = torch.Generator().manual_seed(seed)
    return lambda s, sn: ops.randn_like(x, generator=g, row_ids=row_ids)


@pytest.mark.parametrize("name", [n for n, s in SAMPLERS.items() if s.get("noise")])
def test_default_noise_is_the_stream(name):
    """With generator=, the noise is the stream drawn in the kernel: the same as
    passing the stream's randn_like as the noise sampler, and reproducible."""
    x, sigmas = _start(torch.float32), _sigmas(torch.float32)
    fn = getattr(sk, name)
    a = fn(ToyDenoiser(3), x, sigmas, disable=True, generator=torch.Generator().manual_seed(7))
    b = fn(ToyDenoiser(3), x, sigmas, disable=True, generator=torch.Generator().manual_seed(7))
    c = fn(ToyDenoiser(3), x, sigmas, disable=True, noise_sampler=_stream_noise(x, 7))
    d = fn(ToyDenoiser(3), x, sigmas, disable=True, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert rel_err(a, c) <= 1e-6
    assert rel_err(a, d) > 1e-3


@pytest.mark.parametrize("name", [n for n, s in SAMPLERS.items() if s.get("noise")] + ["sample_euler"])
def test_row_ids_batch_invariant(name):
    """A sample's result depends on its row id, not on the batch it is drawn in."""
    x, sigmas = _start(torch.float32, shape=(6, 3, 4, 5)), _sigmas(torch.float32)
    fn = getattr(sk, name)
    kw = dict(s_churn=1.0) if name == "sample_euler" else {}
    ids = torch.tensor([10, 11, 12, 13, 14, 15])
    full = fn(ToyDenoiser(3), x, sigmas, disable=True, generator=torch.Generator().manual_seed(2), row_ids=ids, **kw)
    pick = [4, 1]
    part = fn(ToyDenoiser(3), x[pick], sigmas, disable=True, generator=torch.Generator().manual_seed(2),
              row_ids=ids[pick], **kw)
    assert torch.equal(part, full[pick])


def test_one_fused_launch_per_step(monkeypatch):
    """After each model call, the step is one op call (noisy_update or multistep_update)."""
    calls = []
    for op in ("noisy_update", "multistep_update"):
        real = getattr(ops, op)
        monkeypatch.setattr(ops, op, lambda *a, _real=real, _op=op, **k: calls.append(_op) or _real(*a, **k))
    x, sigmas = _start(torch.float32), _sigmas(torch.float32)
    for name in SAMPLERS:
        calls.clear()
        model = ToyDenoiser(3)
        getattr(sk, name)(model, x, sigmas, disable=True)
        last = name == "sample_dpmpp_2m_sde"  # its step to σ = 0 is the denoised estimate itself: no arithmetic
        assert len(calls) == model.calls - last, name


def test_bad_input():
    x, sigmas = _start(torch.float32), _sigmas(torch.float32)
    with pytest.raises(TypeError, match="model must return"):
        sk.sample_euler(lambda x, s: x[:1], x, sigmas, disable=True)
    with pytest.raises(TypeError, match="model must return"):
        sk.sample_dpmpp_2m(lambda x, s: x.double(), x, sigmas, disable=True)
    with pytest.raises(TypeError, match="x must be a tensor"):
        sk.sample_euler_ancestral(ToyDenoiser(3), x.tolist(), sigmas, disable=True)
    with pytest.raises(ValueError, match="s_noise"):
        sk.sample_euler_ancestral(ToyDenoiser(3), x, sigmas, s_noise=-1.0, disable=True)
    with pytest.raises(ValueError, match="sigmas"):
        sk.sample_euler(ToyDenoiser(3), x, sigmas[None], disable=True)
    with pytest.raises(ValueError, match="row_ids"):
        sk.sample_euler_ancestral(ToyDenoiser(3), x, sigmas, row_ids=torch.arange(3), disable=True)


def test_disable_prints_nothing(capsys):
    sk.sample_euler(ToyDenoiser(3), _start(torch.float32), _sigmas(torch.float32, 4), disable=True)
    assert capsys.readouterr().err == ""
    sk.sample_euler(ToyDenoiser(3), _start(torch.float32), _sigmas(torch.float32, 4), disable=False)
    assert "4/4" in capsys.readouterr().err


def test_importing_scorekern_needs_no_integration():
    """``import scorekern`` loads neither the integrations nor the libraries they wrap."""
    import subprocess
    import sys
    code = ("import sys, scorekern; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('k_diffusion', 'diffusers', 'torchsde') or m.startswith('scorekern.integrations')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert all(callable(getattr(sk, n)) for n in sk.__all__)
