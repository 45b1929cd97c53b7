"""diffusers schedulers whose ``step`` runs scorekern's fused kernels.

Each class subclasses the diffusers scheduler of the same name without
``Fused`` (diffusers 0.42) and keeps everything but the step's arithmetic:
config, ``from_config``, ``set_timesteps``, ``scale_model_input``,
``init_noise_sigma``, ``order``, the output classes and ``return_dict``. A
pipeline takes one with ``pipe.scheduler = FusedX.from_config(pipe.scheduler.config)``.

``step`` (``step_pred`` / ``step_correct``) takes, besides the parent's
arguments, keyword-only ``noise=`` (a tensor used as the step's noise instead
of drawing it, so that a step can be compared with its parent's) and
``row_ids=`` (pin each sample's noise to an id: batch-invariant samples). By
default the noise is scorekern's random stream, drawn in the kernel from
``generator`` (a ``torch.Generator`` on the sample's device, or ``None`` for
the default one); a list of generators, one per sample, is honoured the
parent's way: the noise is drawn with diffusers' ``randn_tensor`` from them.
Like the parents, the steps upcast to float32 and return the model output's
dtype. Configurations a fused class does not cover are refused when it is
made (``ValueError``), never run on another path.
"""

from __future__ import annotations

import functools
import math

import torch
from diffusers import (DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,
                       ScoreSdeVeScheduler)
from diffusers.schedulers.scheduling_dpmsolver_multistep import SchedulerOutput
from diffusers.schedulers.scheduling_euler_ancestral_discrete import EulerAncestralDiscreteSchedulerOutput
from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteSchedulerOutput
from diffusers.schedulers.scheduling_sde_ve import SdeVeOutput
from diffusers.utils import logging
from diffusers.utils.torch_utils import randn_tensor

from .. import ops
from ._common import affine

__all__ = ["FusedEulerDiscreteScheduler", "FusedEulerAncestralDiscreteScheduler", "FusedDPMSolverMultistepScheduler",
           "FusedScoreSdeVeScheduler"]

logger = logging.get_logger(__name__)


def _noise(like, noise, generator, row_ids):
    """The keyword arguments for a step's noise, shaped and typed like ``like``."""
    if noise is not None:
        if not isinstance(noise, torch.Tensor) or noise.shape != like.shape:
            got = list(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
            raise ValueError(f"noise must be a tensor of the sample's shape {list(like.shape)}, got {got}")
        return {"noise": noise.to(dtype=like.dtype, device=like.device)}
    if isinstance(generator, list):
        return {"noise": randn_tensor(like.shape, generator=generator, device=like.device, dtype=like.dtype)}
    return {"generator": generator, "row_ids": row_ids}


def _euler_checks(scheduler, timestep, name):
    """The parents' checks before a step, and their step index."""
    if isinstance(timestep, (int, torch.IntTensor, torch.LongTensor)):
        raise ValueError(
            f"Passing integer indices (e.g. from `enumerate(timesteps)`) as timesteps to `{name}.step()` is not "
            "supported. Make sure to pass one of the `scheduler.timesteps` as a timestep.")
    if not scheduler.is_scale_input_called:
        logger.warning("The `scale_model_input` function should be called before `step` to ensure correct denoising. "
                       "See `StableDiffusionPipeline` for a usage example.")
    if scheduler.step_index is None:
        scheduler._init_step_index(timestep)


def _x0_coefs(prediction_type, sigma_eps, sigma):
    """x0 = a·sample + b·model_output for the k-diffusion-style (Euler) schedulers, or None
    when x0 is the model output; ``sigma_eps`` is the σ of the epsilon form (σ̂ with churn)."""
    if prediction_type in ("original_sample", "sample"):
        return None
    if prediction_type == "epsilon":
        return 1.0, -sigma_eps
    if prediction_type == "v_prediction":
        return 1.0 / (sigma ** 2 + 1), -sigma / (sigma ** 2 + 1) ** 0.5
    raise ValueError(f"prediction_type given as {prediction_type} must be one of `epsilon`, or `v_prediction`")


def _euler_to(sample, x0, sigma, sigma_to, c=0.0, noise=None):
    """sample + (sample − x0)/σ·(σ_to − σ) + c·z, one launch."""
    dt = sigma_to - sigma
    return affine(sample, x0, 1.0 + dt / sigma, -dt / sigma, c, noise)


class FusedEulerDiscreteScheduler(EulerDiscreteScheduler):
    """``EulerDiscreteScheduler`` with a fused ``step``: x0 in one launch and the
    Euler step (and the churn, where ``s_churn`` applies) in one each."""

    def step(self, model_output, timestep, sample, s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0,
             generator=None, return_dict=True, *, noise=None, row_ids=None):
        _euler_checks(self, timestep, "EulerDiscreteScheduler")
        sample = sample.to(torch.float32)
        out = model_output.to(torch.float32)
        sigma, sigma_next = float(self.sigmas[self.step_index]), float(self.sigmas[self.step_index + 1])
        gamma = min(s_churn / (len(self.sigmas) - 1), 2 ** 0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
        sigma_hat = sigma * (gamma + 1)
        if gamma > 0:
            c = s_noise * math.sqrt(sigma_hat ** 2 - sigma ** 2)
            sample = affine(sample, sample, 1.0, 0.0, c, _noise(sample, noise, generator, row_ids))
        coefs = _x0_coefs(self.config.prediction_type, sigma_hat, sigma)
        x0 = model_output if coefs is None else affine(sample, out, *coefs)
        prev = _euler_to(sample, x0.to(torch.float32), sigma_hat, sigma_next).to(model_output.dtype)
        self._step_index += 1
        if not return_dict:
            return prev, x0
        return EulerDiscreteSchedulerOutput(prev_sample=prev, pred_original_sample=x0)


class FusedEulerAncestralDiscreteScheduler(EulerAncestralDiscreteScheduler):
    """``EulerAncestralDiscreteScheduler`` with a fused ``step``: x0 in one
    launch, the ancestral step with its noise in another."""

    def step(self, model_output, timestep, sample, generator=None, return_dict=True, *, noise=None, row_ids=None):
        if self.config.prediction_type == "sample":
            raise NotImplementedError("prediction_type not implemented yet: sample")
        _euler_checks(self, timestep, "EulerDiscreteScheduler")
        sigma, sigma_to = float(self.sigmas[self.step_index]), float(self.sigmas[self.step_index + 1])
        sample = sample.to(torch.float32)
        x0 = affine(sample, model_output.to(torch.float32), *_x0_coefs(self.config.prediction_type, sigma, sigma))
        sigma_up = (sigma_to ** 2 * (sigma ** 2 - sigma_to ** 2) / sigma ** 2) ** 0.5
        sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
        kw = _noise(sample, noise, generator, row_ids) if (sigma_up > 0 or noise is not None) else None
        prev = _euler_to(sample, x0, sigma, sigma_down, sigma_up if kw else 0.0, kw).to(model_output.dtype)
        self._step_index += 1
        if not return_dict:
            return prev, x0
        return EulerAncestralDiscreteSchedulerOutput(prev_sample=prev, pred_original_sample=x0)


class FusedDPMSolverMultistepScheduler(DPMSolverMultistepScheduler):
    """``DPMSolverMultistepScheduler`` with a fused ``step`` for
    ``algorithm_type`` ``"dpmsolver++"`` and ``"sde-dpmsolver++"``, ``solver_order``
    1 or 2: the data prediction in one launch (the parent's when thresholding
    or a learned variance is configured), the first- or second-order update
    with its noise in one more."""

    _ALGORITHMS = ("dpmsolver++", "sde-dpmsolver++")

    @functools.wraps(DPMSolverMultistepScheduler.__init__)  # from_config reads the parent's signature
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.config.algorithm_type not in self._ALGORITHMS or self.config.solver_order not in (1, 2):
            raise ValueError(
                "FusedDPMSolverMultistepScheduler covers algorithm_type 'dpmsolver++' and 'sde-dpmsolver++' with "
                f"solver_order 1 or 2, got {self.config.algorithm_type!r} and {self.config.solver_order}; "
                "use DPMSolverMultistepScheduler for the others")

    def _alpha_sigma(self, index):
        """(α, σ, λ = log α − log σ) at a step as float64 scalars."""
        s = self.sigmas[index].double()
        alpha, sigma = self._sigma_to_alpha_sigma_t(s)
        return float(alpha), float(sigma), float(torch.log(alpha) - torch.log(sigma))

    def convert_model_output(self, model_output, *args, sample=None, **kwargs):
        fused = (not args and not kwargs and sample is not None and sample.dtype == model_output.dtype
                 and not self.config.thresholding and self.config.variance_type not in ("learned", "learned_range")
                 and self.config.prediction_type in ("epsilon", "v_prediction", "flow_prediction"))
        if not fused:
            return super().convert_model_output(model_output, *args, sample=sample, **kwargs)
        alpha, sigma, _ = self._alpha_sigma(self.step_index)
        if self.config.prediction_type == "epsilon":
            return affine(sample, model_output, 1.0 / alpha, -sigma / alpha)
        if self.config.prediction_type == "v_prediction":
            return affine(sample, model_output, alpha, -sigma)
        return affine(sample, model_output, 1.0, -float(self.sigmas[self.step_index]))

    def step(self, model_output, timestep, sample, generator=None, variance_noise=None, return_dict=True, *,
             noise=None, row_ids=None):
        if self.num_inference_steps is None:
            raise ValueError(
                "Number of inference steps is 'None', you need to run 'set_timesteps' after creating the scheduler")
        if self.step_index is None:
            self._init_step_index(timestep)
        n = len(self.timesteps)
        lower_order_final = self.step_index == n - 1 and (
            self.config.euler_at_final or (self.config.lower_order_final and n < 15)
            or self.config.final_sigmas_type == "zero")
        model_output = self.convert_model_output(model_output, sample=sample)
        for i in range(self.config.solver_order - 1):
            self.model_outputs[i] = self.model_outputs[i + 1]
        self.model_outputs[-1] = model_output
        sample = sample.to(torch.float32)

        alpha_t, sigma_t, lambda_t = self._alpha_sigma(self.step_index + 1)
        _, sigma_s0, lambda_s0 = self._alpha_sigma(self.step_index)
        h = lambda_t - lambda_s0
        sde = self.config.algorithm_type == "sde-dpmsolver++"
        if sde:  # x_t = (σ_t/σ_s e^−h)·x + α_t(1 − e^−2h)·D + σ_t √(1 − e^−2h)·z
            a, b = sigma_t / sigma_s0 * math.exp(-h), -alpha_t * math.expm1(-2.0 * h)
            c = sigma_t * math.sqrt(-math.expm1(-2.0 * h))
            kw = _noise(sample, noise if noise is not None else variance_noise, generator, row_ids)
        else:  # x_t = (σ_t/σ_s)·x − α_t(e^−h − 1)·D
            a, b, c, kw = sigma_t / sigma_s0, -alpha_t * math.expm1(-h), 0.0, None
        m0 = model_output.to(torch.float32)
        if self.config.solver_order == 1 or self.lower_order_nums < 1 or lower_order_final:
            prev = affine(sample, m0, a, b, c, kw)
        else:  # D1 = (m0 − m1)/r0 with the midpoint or Heun weight
            _, _, lambda_s1 = self._alpha_sigma(self.step_index - 1)
            r0 = (lambda_s0 - lambda_s1) / h
            if self.config.solver_type == "midpoint":
                k = 0.5 * b / r0
            elif sde:
                k = alpha_t * (-math.expm1(-2.0 * h) / (-2.0 * h) + 1.0) / r0
            else:
                k = alpha_t * (math.expm1(-h) / h + 1.0) / r0
            prev = affine(sample, m0, a, b + k, c, kw, y2=self.model_outputs[-2].to(torch.float32), b2=-k)
        if self.lower_order_nums < self.config.solver_order:
            self.lower_order_nums += 1
        prev = prev.to(model_output.dtype)
        self._step_index += 1
        if not return_dict:
            return (prev,)
        return SchedulerOutput(prev_sample=prev)


class FusedScoreSdeVeScheduler(ScoreSdeVeScheduler):
    """``ScoreSdeVeScheduler`` with a fused predictor (``step_pred``: the reverse
    diffusion step and its mean in one launch) and corrector (``step_correct``:
    :func:`scorekern.ops.snr_langevin_step`, the step size from the batch's
    norms, z regenerated in the second pass)."""

    def _check(self):
        if self.timesteps is None:
            raise ValueError("`self.timesteps` is not set, you need to run 'set_timesteps' after creating the scheduler")

    def step_pred(self, model_output, timestep, sample, generator=None, return_dict=True, *, noise=None,
                  row_ids=None):
        self._check()
        t = timestep * torch.ones(sample.shape[0], device=sample.device)
        index = (t * (len(self.timesteps) - 1)).long().to(self.discrete_sigmas.device)
        sigma = self.discrete_sigmas[index].to(sample.device)
        adjacent = self.get_adjacent_sigma(index, t).to(sample.device)
        g = ((sigma ** 2 - adjacent ** 2) ** 0.5).to(sample.dtype)
        # x − (−g²·score) + g·z: the drift enters with a minus because dt < 0
        prev, mean = ops.noisy_update(sample, model_output, 1.0, g ** 2, g, return_mean=True,
                                      **_noise(sample, noise, generator, row_ids))
        if not return_dict:
            return prev, mean
        return SdeVeOutput(prev_sample=prev, prev_sample_mean=mean)

    def step_correct(self, model_output, sample, generator=None, return_dict=True, *, noise=None, row_ids=None):
        self._check()
        prev = ops.snr_langevin_step(sample, model_output, float(self.config.snr), norms="batch",
                                     **_noise(sample, noise, generator, row_ids))
        if not return_dict:
            return (prev,)
        return SchedulerOutput(prev_sample=prev)
