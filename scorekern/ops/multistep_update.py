"""multistep_update: the noisy update with a second score term,
x' = a·x + b·score + b2·score2 + c·z, in one pass: the step of a sampler that
combines two model outputs (Heun's correction and DPM-Solver-2 with the
denoised estimates at both ends of the step, DPM-Solver++ 2M and its SDE
form with this step's and the last step's). Kernels:
csrc/ops/multistep_update.cpp, csrc/cpu/multistep_update.cpp,
csrc/cuda/multistep_update.cu; arithmetic: csrc/scorekern/multistep_update.h."""

from __future__ import annotations

from .. import _backend
from . import _twins
from ._checks import check_like, check_no_grad, check_update, coefficient, coefs
from ._stream import stream
from .noisy_update import call_update

__all__ = ["multistep_update"]


def multistep_update(x, score, score2, a, b, b2, c, *, noise=None, generator=None, row_ids=None, out=None,
                     return_mean=False):
    """``a·x + b·score + b2·score2 + c·z`` in one pass, ``z`` standard normal drawn in the kernel.

    :func:`noisy_update` with a second score (or denoiser output) term.
    ``score2`` has ``x``'s shape, dtype and device. ``a``, ``b``, ``b2``,
    ``c``: floats, 0-d or ``[B]`` tensors (``c`` ≥ 0); ``c = 0`` draws no
    noise. ``noise``, ``generator``, ``row_ids``, ``out`` and
    ``return_mean`` as in :func:`noisy_update` (the mean is
    ``a·x + b·score + b2·score2``). Not differentiable (a sampler step).
    """
    row_ids = check_update(x, score, noise, row_ids, out)
    check_like(score2, x, "score2")
    bundle = (coefficient(a, "a", x), coefficient(b, "b", x), coefficient(b2, "b2", x),
              coefficient(c, "c", x, nonnegative=True))
    check_no_grad("multistep_update", x, score, score2, noise, *(v for v, _ in bundle))
    if not _backend.uses_compiled(x.device):
        return _twins.reference().multistep_update(x, score, score2, a, b, b2, c, noise=noise, generator=generator,
                                                   row_ids=row_ids, out=out, return_mean=return_mean)
    seed, offset = (0, 0) if noise is not None else stream(x, generator, capturable=True)
    args = (x, score, score2, *coefs(*bundle), noise, seed, offset, row_ids)
    return call_update("multistep_update", args, x, out, return_mean)


# Not differentiable (it says so above); its meta kernel is the C++ one. The twin:


def twin_multistep_update(x, score, score2, a, b, b2, c, *, noise=None, generator=None, row_ids=None, out=None,
                          return_mean=False):
    if noise is None:
        noise = _twins.normal(x, generator, row_ids)
    a, b, b2, c = (_twins.per_row(v, x) for v in (a, b, b2, c))
    mean = a * x + b * score + b2 * score2
    new = mean + c * noise
    return _twins.result(new, mean, out, return_mean)


TWINS = {"multistep_update": twin_multistep_update}
