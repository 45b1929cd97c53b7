"""sliced_score_terms: the per-row terms of sliced score matching (Song et
al. 2019), both row sums in one pass. Kernels: csrc/ops/sliced_score_terms.cpp,
csrc/cpu/sliced_score_terms.cpp, csrc/cuda/sliced_score_terms.cu; arithmetic:
csrc/scorekern/sliced_score_terms.h."""

from __future__ import annotations

from .. import _backend
from . import _twins
from ._checks import check_data, check_like, opmath, row_view, rows
from . import _library
from ._library import register_autograd

__all__ = ["sliced_score_terms"]


def sliced_score_terms(score, vjp, v, *, variance_reduction=False):
    """The per-row terms of sliced score matching (Song et al. 2019): both row sums in one pass.

    ``vᵀ·vjp + ½(vᵀscore)²``, or with ``variance_reduction`` ``vᵀ·vjp +
    ½‖score‖²``, for each row, where ``vjp = (∂score/∂x)ᵀv`` comes from one
    autograd pass (:func:`scorekern.losses.sliced_score_matching` does it).
    ``score``, ``vjp`` and ``v`` share shape, dtype and device. Returns a
    ``[B]`` tensor in float32 (float64 for float64 data), differentiable in
    all three; the backward scales ``v`` (and the score) per row.
    """
    check_data(score, "score")
    check_like(vjp, score, "vjp", "score")
    check_like(v, score, "v", "score")
    if not _backend.uses_compiled(score.device):
        return _twins.reference().sliced_score_terms(score, vjp, v, variance_reduction=variance_reduction)
    first, second = _library.LIB.sliced_score_terms(score, vjp, v, bool(variance_reduction))
    return first + 0.5 * second if variance_reduction else first + 0.5 * second.square()


# Its meta kernel is the C++ one. Autograd of the two sums: ∂Σv·u/∂u = v,
# ∂Σv·s/∂s = v, ∂Σs²/∂s = 2s, and for v, u and s.


def _setup(ctx, inputs, output):
    score, vjp, v, variance_reduction = inputs
    ctx.variance_reduction = variance_reduction
    ctx.save_for_backward(score, vjp, v)


def _backward(ctx, grad_first, grad_second):
    score, vjp, v = ctx.saved_tensors
    needs = ctx.needs_input_grad
    zeros = score.new_zeros(rows(score), dtype=opmath(score))
    g0 = row_view(zeros if grad_first is None else grad_first, score).to(score.dtype)
    g1 = row_view(zeros if grad_second is None else grad_second, score).to(score.dtype)
    if ctx.variance_reduction:
        grad_score = 2 * g1 * score if needs[0] else None
        grad_v = g0 * vjp if needs[2] else None
    else:
        grad_score = g1 * v if needs[0] else None
        grad_v = g0 * vjp + g1 * score if needs[2] else None
    grad_vjp = g0 * v if needs[1] else None
    return grad_score, grad_vjp, grad_v, None


register_autograd("sliced_score_terms", _backward, _setup)


# The twin.


def twin_sliced_score_terms(score, vjp, v, *, variance_reduction=False):
    # Song et al. 2019: vᵀ(∂s/∂x)v + ½(vᵀs)², or + ½‖s‖² with variance reduction.
    s, u, v = (_twins.row_matrix(t.to(opmath(score))) for t in (score, vjp, v))
    first = (v * u).sum(1)
    if variance_reduction:
        return first + 0.5 * (s * s).sum(1)
    return first + 0.5 * (v * s).sum(1) ** 2


TWINS = {"sliced_score_terms": twin_sliced_score_terms}
