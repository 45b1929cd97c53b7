"""scorekern.integrations.diffusers against diffusers 0.42's own schedulers:
every fused scheduler's prev_sample equals its parent's over whole runs on
the same model outputs and the same noise, and a pipeline built offline (a
tiny UNet2DModel made in code) gives the parent's images with the fused
scheduler swapped in."""

import pytest
import torch

from integrations import diffusers as _diffusers, rel_err

D = _diffusers()
F = pytest.importorskip("scorekern.integrations.diffusers")

SHAPE = (3, 4, 6, 5)
TOL = 1e-5


def _model(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(SHAPE[1], SHAPE[1], generator=g) / SHAPE[1] ** 0.5

    def model(x, t):
        scale = 1.0 + float(t) / 1000.0
        return torch.tanh(torch.einsum("ij,bj...->bi...", w, x) * scale) + 0.1 * x
    return model


class Mirror:
    """The noise a parent step draws from ``generator``, drawn again from a
    twin generator and passed to the fused step as ``noise=``."""

    def __init__(self, seed):
        self.parent = torch.Generator().manual_seed(seed)
        self.fused = torch.Generator().manual_seed(seed)

    def draw(self, shape, dtype=torch.float32):
        return D.utils.torch_utils.randn_tensor(shape, generator=self.fused, dtype=dtype)


def _run(parent_cls, fused_cls, config, steps=8, step_kw=None, seed=0, noisy=True):
    """Both schedulers over a whole run: max relative error of prev_sample (and x0 where returned)."""
    step_kw = step_kw or {}
    parent, fused = parent_cls(**config), fused_cls.from_config(parent_cls(**config).config)
    public = lambda c: {k: v for k, v in c.items() if not k.startswith("_")}  # noqa: E731
    assert type(fused) is fused_cls and public(fused.config) == public(parent.config)
    assert torch.equal(fused.alphas_cumprod, parent.alphas_cumprod)
    for s in (parent, fused):
        s.set_timesteps(steps)
    assert torch.equal(parent.timesteps, fused.timesteps) and fused.init_noise_sigma == parent.init_noise_sigma
    assert fused.order == parent.order
    model, mirror = _model(), Mirror(seed + 1)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed)) * float(parent.init_noise_sigma)
    xp = xf = x
    worst = 0.0
    for t in parent.timesteps:
        inp_p, inp_f = parent.scale_model_input(xp, t), fused.scale_model_input(xf, t)
        assert torch.equal(inp_p, inp_f) or rel_err(inp_f, inp_p) <= TOL
        op, of = model(inp_p, t), model(inp_f, t)
        rp = parent.step(op, t, xp, generator=mirror.parent, **step_kw)
        kw = dict(step_kw)
        if noisy:
            kw["noise"] = mirror.draw(SHAPE, op.dtype)
        rf = fused.step(of, t, xf, **kw)
        assert type(rf) is type(rp)
        for name in ("prev_sample", "pred_original_sample"):
            if getattr(rp, name, None) is not None:
                assert getattr(rf, name).dtype == getattr(rp, name).dtype
                worst = max(worst, rel_err(getattr(rf, name), getattr(rp, name)))
        xp, xf = rp.prev_sample, rf.prev_sample
    assert fused.step_index == parent.step_index
    return worst, xf


BASE = dict(num_train_timesteps=600, beta_start=0.0002, beta_end=0.03, beta_schedule="linear")  # not the defaults


@pytest.mark.parametrize("config", [
    dict(prediction_type="epsilon"), dict(prediction_type="v_prediction"), dict(prediction_type="sample"),
    dict(prediction_type="epsilon", use_karras_sigmas=True), dict(prediction_type="epsilon", timestep_spacing="trailing")],
    ids=["eps", "v", "sample", "karras", "trailing"])
@pytest.mark.parametrize("churn", [0.0, 1.0], ids=["nochurn", "churn"])
def test_euler(config, churn):
    worst, _ = _run(D.EulerDiscreteScheduler, F.FusedEulerDiscreteScheduler, {**BASE, **config},
                    step_kw=dict(s_churn=churn, s_noise=1.1), noisy=churn > 0)
    assert worst <= TOL


@pytest.mark.parametrize("config", [dict(prediction_type="epsilon"), dict(prediction_type="v_prediction"),
                                    dict(prediction_type="epsilon", timestep_spacing="trailing")],
                         ids=["eps", "v", "trailing"])
def test_euler_ancestral(config):
    worst, _ = _run(D.EulerAncestralDiscreteScheduler, F.FusedEulerAncestralDiscreteScheduler, {**BASE, **config})
    assert worst <= TOL


@pytest.mark.parametrize("config", [
    dict(), dict(solver_order=1), dict(solver_type="heun"), dict(prediction_type="v_prediction"),
    dict(prediction_type="sample"), dict(final_sigmas_type="sigma_min"), dict(use_karras_sigmas=True),
    dict(thresholding=True, prediction_type="epsilon"), dict(lower_order_final=False, final_sigmas_type="sigma_min"),
    dict(algorithm_type="sde-dpmsolver++"), dict(algorithm_type="sde-dpmsolver++", solver_type="heun"),
    dict(algorithm_type="sde-dpmsolver++", solver_order=1)],
    ids=["2m", "order1", "heun", "v", "sample", "sigma_min", "karras", "threshold", "no_lower_final", "sde",
         "sde_heun", "sde_order1"])
def test_dpm_solver_multistep(config):
    sde = config.get("algorithm_type") == "sde-dpmsolver++"
    steps = 16 if config.get("lower_order_final") is False else 8
    worst, _ = _run(D.DPMSolverMultistepScheduler, F.FusedDPMSolverMultistepScheduler, {**BASE, **config},
                    steps=steps, noisy=sde)
    assert worst <= TOL


@pytest.mark.parametrize("solver_type", ["midpoint", "heun"])
def test_dpm_solver_sde_variance_noise(solver_type):
    """The SDE form with the parent's variance_noise: the same tensor to both."""
    config = {**BASE, "algorithm_type": "sde-dpmsolver++", "solver_type": solver_type}
    parent, fused = D.DPMSolverMultistepScheduler(**config), F.FusedDPMSolverMultistepScheduler(**config)
    for s in (parent, fused):
        s.set_timesteps(10)
    model, g = _model(), torch.Generator().manual_seed(4)
    xp = xf = torch.randn(SHAPE, generator=g)
    for t in parent.timesteps:
        z = torch.randn(SHAPE, generator=g)
        xp = parent.step(model(xp, t), t, xp, variance_noise=z).prev_sample
        xf = fused.step(model(xf, t), t, xf, variance_noise=z).prev_sample
        assert rel_err(xf, xp) <= TOL


def test_dpm_solver_refuses_what_it_does_not_fuse():
    for config in (dict(algorithm_type="dpmsolver", final_sigmas_type="sigma_min"),
                   dict(algorithm_type="sde-dpmsolver", final_sigmas_type="sigma_min"), dict(solver_order=3)):
        with pytest.raises(ValueError, match="FusedDPMSolverMultistepScheduler covers"):
            F.FusedDPMSolverMultistepScheduler(**BASE, **config)


def test_score_sde_ve():
    """Predictor and corrector over a run, with each step's parent noise injected."""
    parent, fused = D.ScoreSdeVeScheduler(), F.FusedScoreSdeVeScheduler()
    for s in (parent, fused):
        s.set_timesteps(6)
        s.set_sigmas(6)
    model, mirror = _model(), Mirror(9)
    xp = xf = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3)) * parent.init_noise_sigma
    for t in parent.timesteps:
        for _ in range(2):
            rp = parent.step_correct(model(xp, t), xp, generator=mirror.parent)
            rf = fused.step_correct(model(xf, t), xf, noise=mirror.draw(SHAPE))
            assert type(rf) is type(rp) and rel_err(rf.prev_sample, rp.prev_sample) <= TOL
            xp, xf = rp.prev_sample, rf.prev_sample
        rp = parent.step_pred(model(xp, t), t, xp, generator=mirror.parent)
        rf = fused.step_pred(model(xf, t), t, xf, noise=mirror.draw(SHAPE))
        assert type(rf) is type(rp)
        assert rel_err(rf.prev_sample, rp.prev_sample) <= TOL
        assert rel_err(rf.prev_sample_mean, rp.prev_sample_mean) <= TOL
        xp, xf = rp.prev_sample, rf.prev_sample
    assert not fused.step_pred(model(xf, 0.5), 0.5, xf, return_dict=False)[0].isnan().any()


def test_default_noise_is_the_stream_and_row_ids_batch_invariant():
    config = {**BASE, "prediction_type": "epsilon"}
    x = torch.randn(6, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    ids = torch.arange(100, 106)

    def run(rows, seed):
        s = F.FusedEulerAncestralDiscreteScheduler(**config)
        s.set_timesteps(5)
        y = x[rows] * s.init_noise_sigma
        model = _model()
        for t in s.timesteps:
            y = s.step(model(s.scale_model_input(y, t), t), t, y, generator=torch.Generator().manual_seed(seed),
                       row_ids=ids[rows]).prev_sample
        return y
    full = run(list(range(6)), 1)
    assert torch.equal(run([4, 2], 1), full[[4, 2]])
    assert rel_err(run(list(range(6)), 2), full) > 1e-3


def test_bad_noise():
    s = F.FusedEulerAncestralDiscreteScheduler(**BASE)
    s.set_timesteps(4)
    x = torch.randn(SHAPE)
    with pytest.raises(ValueError, match="noise must be a tensor of the sample's shape"):
        s.step(x, s.timesteps[0], x, noise=torch.randn(2, 2))
    with pytest.raises(ValueError, match="integer indices"):
        s.step(x, 3, x)


def _tiny_unet():
    torch.manual_seed(0)
    return D.UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                         down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                         norm_num_groups=4)


def _injecting(cls, methods):
    """A fused scheduler class whose steps take the pipeline's generator and draw
    the parent's noise from it, passed as ``noise=``: injected noise."""
    class Injecting(cls):
        pass
    for name, shape_dtype in methods.items():
        def step(self, model_output, *args, _name=name, _sd=shape_dtype, generator=None, **kw):
            sample = args[-1] if _name != "step_correct" else args[0]
            noise = D.utils.torch_utils.randn_tensor(sample.shape, generator=generator, dtype=_sd(sample))
            return getattr(cls, _name)(self, model_output, *args, noise=noise, **kw)
        setattr(Injecting, name, step)
    return Injecting


def test_pipeline_score_sde_ve():
    unet = _tiny_unet()
    out = {}
    for cls in (D.ScoreSdeVeScheduler,
                _injecting(F.FusedScoreSdeVeScheduler, {"step_pred": lambda s: s.dtype,
                                                        "step_correct": lambda s: torch.float32})):
        pipe = D.ScoreSdeVePipeline(unet=unet, scheduler=cls.from_config(D.ScoreSdeVeScheduler().config))
        pipe.set_progress_bar_config(disable=True)
        out[cls] = pipe(batch_size=2, num_inference_steps=4, generator=torch.Generator().manual_seed(5),
                        output_type="np").images
    (want, got) = out.values()
    assert want.shape == got.shape == (2, 8, 8, 3)
    assert abs(got - want).max() <= 1e-4


def test_pipeline_ddpm_with_dpm_solver():
    unet = _tiny_unet()
    out = {}
    base = D.DPMSolverMultistepScheduler(**BASE, algorithm_type="sde-dpmsolver++")
    for cls in (D.DPMSolverMultistepScheduler, _injecting(F.FusedDPMSolverMultistepScheduler,
                                                          {"step": lambda s: torch.float32})):
        pipe = D.DDPMPipeline(unet=unet, scheduler=cls.from_config(base.config))
        pipe.set_progress_bar_config(disable=True)
        out[cls] = pipe(batch_size=2, num_inference_steps=6, generator=torch.Generator().manual_seed(5),
                        output_type="np").images
    (want, got) = out.values()
    assert abs(got - want).max() <= 1e-4 and want.std() > 0
