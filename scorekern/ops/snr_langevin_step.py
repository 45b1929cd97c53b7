"""snr_langevin_step: the Langevin corrector with a signal-to-noise step
(Song et al. 2021, Algorithms 4–5), two passes with z regenerated. Kernels:
csrc/ops/snr_langevin_step.cpp, csrc/cpu/snr_langevin_step.cpp,
csrc/cuda/snr_langevin_step.cu; arithmetic: csrc/scorekern/snr_langevin_step.h."""

from __future__ import annotations

import math
import numbers

import torch

from .. import _backend
from . import _twins
from ._checks import check_no_grad, check_update, coefficient, coefs
from ._stream import stream
from .noisy_update import call_update

__all__ = ["snr_langevin_step"]

_NORMS = ("batch", "row")


def snr_langevin_step(x, score, snr, *, alpha=1.0, norms="batch", noise=None, generator=None, row_ids=None,
                      out=None, return_mean=False):
    """The Langevin corrector with a signal-to-noise step (Song et al. 2021).

    ``ε = 2α(snr·‖z‖/‖score‖)²`` from per-row L2 norms, then
    ``x + ε·score + √(2ε)·z``. ``norms="batch"`` averages the row norms over
    the batch so that one ε serves every row, as the published reference
    does; ``norms="row"`` gives each row its own ε. ``alpha`` (1 for VE,
    ``1 − βᵢ`` for VP) is a float, a 0-d tensor or a ``[B]`` tensor. Fused as
    two passes over the data with ``z`` regenerated, never stored. Not
    differentiable.
    """
    row_ids = check_update(x, score, noise, row_ids, out)
    if isinstance(snr, torch.Tensor):
        if snr.numel() != 1 or snr.device.type != "cpu":
            raise ValueError("snr must be a float (or a one-element CPU tensor)")
        snr = snr.item()
    if isinstance(snr, bool) or not isinstance(snr, numbers.Real):
        raise TypeError(f"snr must be a float, got {type(snr).__name__}")
    if not 0 <= snr < math.inf:
        raise ValueError(f"snr must be non-negative and finite, got {snr}")
    alpha_values, alpha_scale = coefficient(alpha, "alpha", x, nonnegative=True)
    if norms not in _NORMS:
        raise ValueError(f"norms must be 'batch' or 'row', got {norms!r}")
    check_no_grad("snr_langevin_step", x, score, noise, alpha_values)
    if not _backend.uses_compiled(x.device):
        return _twins.reference().snr_langevin_step(x, score, float(snr), alpha=alpha, norms=norms, noise=noise,
                                      generator=generator, row_ids=row_ids, out=out, return_mean=return_mean)
    seed, offset = (0, 0) if noise is not None else stream(x, generator, capturable=True)
    args = (x, score, float(snr), *coefs((alpha_values, alpha_scale)), norms == "batch", noise, seed, offset, row_ids)
    return call_update("snr_langevin_step", args, x, out, return_mean)


# Not differentiable (it says so above); its meta kernel is the C++ one. The twin:


def twin_snr_langevin_step(x, score, snr, *, alpha=1.0, norms="batch", noise=None, generator=None, row_ids=None,
                           out=None, return_mean=False):
    # The Langevin corrector of score_sde (Song et al. 2021): the step is set
    # by a target signal-to-noise ratio between the score and the noise.
    if noise is None:
        noise = _twins.normal(x, generator, row_ids)
    grad_norm = torch.norm(_twins.row_matrix(score), dim=-1)
    noise_norm = torch.norm(_twins.row_matrix(noise), dim=-1)
    if norms == "batch":
        grad_norm = grad_norm.mean()
        noise_norm = noise_norm.mean()
    if isinstance(alpha, torch.Tensor) and alpha.dim() > 0:
        alpha = alpha.reshape(-1)
    step_size = _twins.per_row((snr * noise_norm / grad_norm) ** 2 * 2 * alpha, x)
    mean = x + step_size * score
    new = mean + torch.sqrt(step_size * 2) * noise
    return _twins.result(new, mean, out, return_mean)


TWINS = {"snr_langevin_step": twin_snr_langevin_step}
