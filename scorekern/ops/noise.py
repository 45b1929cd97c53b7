"""randn_like and rademacher_like: noise from the documented stream (DESIGN
§2). Kernels: csrc/ops/noise.cpp, csrc/cpu/noise.cpp, csrc/cuda/noise.cu."""

from __future__ import annotations

import torch

from .. import _backend
from . import _twins
from ._checks import check_data, check_row_ids
from . import _library

from ._stream import check_stream, stream

__all__ = ["randn_like", "rademacher_like"]


def _noise_like(name, twin, x, generator, seed, offset, row_ids):
    check_data(x)
    row_ids = check_row_ids(row_ids, x)
    check_stream(generator, seed, offset)
    if not _backend.uses_compiled(x.device):
        return getattr(_twins.reference(), twin)(x, generator=generator, seed=seed, offset=offset, row_ids=row_ids)
    seed, offset = stream(x, generator, seed, offset, capturable=True)
    # Only x's shape, dtype and device matter: the noise never depends on its values.
    return getattr(_library.LIB, name)(x.detach(), seed, offset, row_ids)


def randn_like(x, *, generator=None, seed=None, offset=None, row_ids=None):
    """Standard normal noise shaped like ``x``, from the documented stream.

    With ``seed`` (and ``offset``, default 0) the result is exactly the stream
    of DESIGN §2 for those words; otherwise they are drawn from ``generator``.
    ``row_ids`` (int, ``[B]``, each in ``[0, 2**32)``) pin each row's noise to
    its id: a row's noise does not depend on the batch it is in.
    """
    return _noise_like("randn", "randn_like", x, generator, seed, offset, row_ids)


def rademacher_like(x, *, generator=None, seed=None, offset=None, row_ids=None):
    """Rademacher (±1) noise shaped like ``x``: +1 where the stream word's low bit is set."""
    return _noise_like("rademacher", "rademacher_like", x, generator, seed, offset, row_ids)


# Not differentiable; their meta kernels are the C++ ones. The twins:


def twin_randn_like(x, *, generator=None, seed=None, offset=None, row_ids=None):
    return _twins.normal(x, generator=generator, row_ids=row_ids, seed=seed, offset=offset)


def twin_rademacher_like(x, *, generator=None, seed=None, offset=None, row_ids=None):
    def draw_one(shape, g):
        bits = torch.randint(0, 2, shape, generator=g, device=x.device)
        return (2 * bits - 1).to(x.dtype)

    return _twins.draw(x, generator, seed, offset, row_ids, draw_one)


TWINS = {"randn_like": twin_randn_like, "rademacher_like": twin_rademacher_like}
