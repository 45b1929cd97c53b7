"""masked_update: inpainting's step in one pass (Lugmayr et al. 2022;
score_sde's inpainter). Kernels: csrc/ops/masked_update.cpp,
csrc/cpu/masked_update.cpp, csrc/cuda/masked_update.cu; arithmetic:
csrc/scorekern/masked_update.h."""

from __future__ import annotations

from .. import _backend
from . import _twins
from ._checks import check_like, check_no_grad, check_update, coefficient, coefs, like_x
from ._stream import stream
from .noisy_update import call_update

__all__ = ["masked_update"]


def masked_update(x, score, y, mask, a, b, c, mu, sigma, *, noise=None, observed_noise=None, generator=None,
                  row_ids=None, out=None, return_mean=False):
    """Inpainting's step in one pass (Lugmayr et al. 2022; score_sde's inpainter):

    ``mask·(μ·y + σ·z₁) + (1 − mask)·(a·x + b·score + c·z₂)``: the observed
    entries (``mask`` 1) take the observation ``y`` noised to the step's time,
    the others the sampler's update. ``mean`` (``return_mean=True``) is the
    same without noise, ``mask·μ·y + (1 − mask)·(a·x + b·score)``; with
    ``mask`` 1 and ``μ = 1`` it holds ``y`` exactly. ``y`` and ``mask``
    (bool or float, values in [0, 1]) broadcast to ``x``'s shape; ``a``,
    ``b``, ``c``, ``mu``, ``sigma`` are floats, 0-d or ``[B]`` tensors (``c``,
    ``sigma`` ≥ 0). ``z₂`` is drawn (or taken from ``noise``) first, then
    ``z₁`` (or ``observed_noise``), with the same ``row_ids``. Entries of
    ``y`` where ``mask`` is 0 are multiplied by 0, so they must be finite
    (:func:`scorekern.samplers.inpaint` zeroes them). Not differentiable (a
    sampler step).
    """
    row_ids = check_update(x, score, noise, row_ids, out)
    y, mask = like_x(y, x, "y"), like_x(mask, x, "mask")
    if observed_noise is not None:
        check_like(observed_noise, x, "observed_noise")
    bundle = (coefficient(a, "a", x), coefficient(b, "b", x), coefficient(c, "c", x, nonnegative=True),
              coefficient(mu, "mu", x), coefficient(sigma, "sigma", x, nonnegative=True))
    check_no_grad("masked_update", x, score, y, mask, noise, observed_noise, *(v for v, _ in bundle))
    if not _backend.uses_compiled(x.device):
        return _twins.reference().masked_update(x, score, y, mask, a, b, c, mu, sigma, noise=noise,
                                  observed_noise=observed_noise, generator=generator, row_ids=row_ids, out=out,
                                  return_mean=return_mean)
    seed = offset = observed_offset = 0
    if noise is None:
        seed, offset = stream(x, generator, capturable=True)
    if observed_noise is None:
        seed, observed_offset = stream(x, generator, capturable=True)
    args = (x, score, y, mask, *coefs(*bundle), noise, observed_noise, seed, offset, observed_offset, row_ids)
    return call_update("masked_update", args, x, out, return_mean)


# Not differentiable (it says so above); its meta kernel is the C++ one. The twin:


def twin_masked_update(x, score, y, mask, a, b, c, mu, sigma, *, noise=None, observed_noise=None, generator=None,
                       row_ids=None, out=None, return_mean=False):
    # Inpainting (score_sde's inpaint_update_fn, RePaint): the observed part
    # takes the data noised to the step's time, the rest the update.
    if noise is None:
        noise = _twins.normal(x, generator, row_ids)
    if observed_noise is None:
        observed_noise = _twins.normal(x, generator, row_ids)
    a, b, c, mu, sigma = (_twins.per_row(v, x) for v in (a, b, c, mu, sigma))
    mask = mask.to(x.dtype)  # a bool mask as 0 and 1
    kept = a * x + b * score
    data = mu * y
    mean = mask * data + (1 - mask) * kept
    new = mask * (data + sigma * observed_noise) + (1 - mask) * (kept + c * noise)
    return _twins.result(new, mean, out, return_mean)


TWINS = {"masked_update": twin_masked_update}
