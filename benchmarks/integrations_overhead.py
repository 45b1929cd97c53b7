"""Sampler overhead outside the model (issue 18): k-diffusion's samplers
against scorekern.integrations.k_diffusion, and each diffusers scheduler's
step against its fused subclass, state [64, 3, 64, 64], float32, side by side
in one process, medians. Run from the repository root:
``python benchmarks/integrations_overhead.py`` (needs k-diffusion, diffusers)."""
import os, sys, time, warnings, statistics
warnings.simplefilter("ignore")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import torch
from integrations import k_sampling
from scorekern.integrations import k_diffusion as sk
k = k_sampling()
x = torch.randn(64, 3, 64, 64) * 10
sig = k.get_sigmas_karras(10, 0.02, 10.0)
model = lambda x, s: x  # cheapest possible denoiser: what is timed is the sampler
def t(fn, **kw):
    ts = []
    for _ in range(5):
        t0 = time.perf_counter(); fn(model, x, sig, disable=True, **kw); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)
for name in ["sample_euler", "sample_euler_ancestral", "sample_heun", "sample_dpm_2", "sample_dpm_2_ancestral",
             "sample_dpmpp_2s_ancestral", "sample_dpmpp_2m", "sample_dpmpp_2m_sde"]:
    kw = {}
    if name == "sample_dpmpp_2m_sde":
        kw_k = dict(noise_sampler=lambda s, sn: torch.randn_like(x))  # k-diffusion's default Brownian tree is far slower; compare like with like
    else:
        kw_k = {}
    a = t(getattr(k, name), **kw_k); b = t(getattr(sk, name), **kw)
    print(f"{name:28s} k-diffusion {a*1e3:8.1f} ms  scorekern {b*1e3:8.1f} ms  {a/b:5.2f}x")

# --- diffusers
import diffusers as D
from scorekern.integrations import diffusers as F
x0 = torch.randn(64, 3, 64, 64)
mo = torch.randn(64, 3, 64, 64)
B = dict(num_train_timesteps=1000)
cases = [("Euler", D.EulerDiscreteScheduler, F.FusedEulerDiscreteScheduler, {}),
         ("EulerAncestral", D.EulerAncestralDiscreteScheduler, F.FusedEulerAncestralDiscreteScheduler, {}),
         ("DPM++ 2M", D.DPMSolverMultistepScheduler, F.FusedDPMSolverMultistepScheduler, {}),
         ("SDE-DPM++ 2M", D.DPMSolverMultistepScheduler, F.FusedDPMSolverMultistepScheduler, dict(algorithm_type="sde-dpmsolver++"))]
def run(cls, cfg):
    s = cls(**B, **cfg); s.set_timesteps(10); x = x0
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for t in s.timesteps:
        s.is_scale_input_called = True
        x = s.step(mo, t, x, generator=g).prev_sample
    return time.perf_counter() - t0
for name, P, Fc, cfg in cases:
    a, b = [], []
    for _ in range(7):
        a.append(run(P, cfg)); b.append(run(Fc, cfg))
    a, b = statistics.median(a), statistics.median(b)
    print(f"{name:16s} parent {a*1e3/10:7.2f} ms/step  fused {b*1e3/10:7.2f} ms/step  {a/b:5.2f}x")
ve, fve = D.ScoreSdeVeScheduler(), F.FusedScoreSdeVeScheduler()
for nm, fn in (("VE pred", "step_pred"), ("VE correct", "step_correct")):
    a, b = [], []
    for _ in range(7):
        for s, acc in ((ve, a), (fve, b)):
            s.set_timesteps(10); s.set_sigmas(10); t0 = time.perf_counter()
            for t in s.timesteps:
                (s.step_pred(mo, t, x0) if fn == "step_pred" else s.step_correct(mo, x0))
            acc.append(time.perf_counter() - t0)
    a, b = statistics.median(a), statistics.median(b)
    print(f"{nm:16s} parent {a*1e3/10:7.2f} ms/step  fused {b*1e3/10:7.2f} ms/step  {a/b:5.2f}x")
