"""philox4x32: the raw Philox4x32-10 block function (Salmon et al. 2011), the
random stream's primitive (DESIGN §2). Kernels: csrc/ops/philox4x32.cpp."""

from __future__ import annotations

import torch

from .. import _backend
from . import _twins
from . import _library

from ._stream import as_int64, check_word

__all__ = ["philox4x32"]


def philox4x32(counter: torch.Tensor, seed: int) -> torch.Tensor:
    """The Philox4x32-10 block function: ``counter`` is int64 ``[..., 4]`` holding
    32-bit words, ``seed`` the 64-bit key (low word first); returns int64 ``[..., 4]``."""
    if not isinstance(counter, torch.Tensor) or counter.dtype != torch.int64:
        raise TypeError("counter must be an int64 tensor of shape [..., 4]")
    if counter.dim() == 0 or counter.shape[-1] != 4:
        raise ValueError(f"counter must have shape [..., 4], got {list(counter.shape)}")
    seed = check_word(seed, "seed")
    if counter.device.type == "cpu" and counter.numel() and (int(counter.min()) < 0 or int(counter.max()) >= 1 << 32):
        raise ValueError("counter words must lie in [0, 2**32)")
    if not _backend.uses_compiled(counter.device):
        return _twins.reference().philox4x32(counter, seed)
    return _library.LIB.philox4x32(counter, as_int64(seed))


# Not differentiable; its meta kernel is the C++ one. The twin:

_MASK32 = 0xFFFFFFFF
_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)


def _mulhilo(m: int, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # The 64-bit product m·c split through 16-bit halves of c, so that no
    # intermediate leaves int64.
    t = m * (c & 0xFFFF)
    u = m * (c >> 16)
    mid = (t >> 16) + u
    return mid >> 16, ((mid & 0xFFFF) << 16) | (t & 0xFFFF)


def twin_philox4x32(counter: torch.Tensor, seed: int) -> torch.Tensor:
    """Philox4x32-10 of ``counter`` (int64 ``[..., 4]`` of 32-bit words) under the 64-bit key ``seed``."""
    c0, c1, c2, c3 = (counter[..., i].to(torch.int64) for i in range(4))
    seed &= (1 << 64) - 1
    k0, k1 = seed & _MASK32, seed >> 32
    for _ in range(10):
        hi0, lo0 = _mulhilo(_PHILOX_M[0], c0)
        hi1, lo1 = _mulhilo(_PHILOX_M[1], c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + _PHILOX_W[0]) & _MASK32, (k1 + _PHILOX_W[1]) & _MASK32
    return torch.stack([c0, c1, c2, c3], dim=-1)


TWINS = {"philox4x32": twin_philox4x32}
