"""Noise under ``torch.distributed``: a stream per rank for training, and a
batch split across ranks that samples exactly what one process would.

scorekern's noise is a pure function of ``(seed, offset, row id, element)``
(DESIGN §2), so

- for **training**, give each rank its own generator, :func:`rank_generator`
  ``(seed)``: the ranks draw different noise (and different times ``t``), and
  a rank's draws are the same every run;
- for **sampling**, give every rank a generator with the *same* seed and its
  rows' ids in the whole batch, :func:`shard_row_ids`: row ``i`` of the batch
  gets the same noise on whichever rank it lands, so the ranks' samples put
  together are the samples of one process drawing the whole batch. This
  holds for every sampler whose step treats rows independently; the Langevin
  corrector's default ``norms="batch"`` sets its step from the whole batch's
  norms, so split sampling with it needs ``norms="row"``.

``rank`` and ``world_size`` default to those of the initialised default
process group (0 and 1 without one).
"""

from __future__ import annotations

import torch

__all__ = ["rank_generator", "shard_row_ids", "rank_and_world_size"]

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: spreads consecutive ranks over the seed space


def rank_and_world_size(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """The given values, else the default process group's, else (0, 1)."""
    dist = torch.distributed
    initialised = dist.is_available() and dist.is_initialized()
    if world_size is None:
        world_size = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    world_size, rank = int(world_size), int(rank)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
    return rank, world_size


def rank_generator(seed: int, *, rank: int | None = None, device="cpu") -> torch.Generator:
    """A generator on ``device`` whose seed is ``seed`` mixed with the rank:
    different on every rank, the same on every run. Rank 0's seed is ``seed``
    itself, so one process reproduces rank 0."""
    rank, _ = rank_and_world_size(rank, None if rank is None else rank + 1)
    if not isinstance(seed, int) or not 0 <= seed < 1 << 64:
        raise ValueError(f"seed must be an int in [0, 2**64), got {seed!r}")
    mixed = (seed + rank * _GOLDEN) & _MASK
    return torch.Generator(device=device).manual_seed(mixed)


def shard_row_ids(batch: int, *, rank: int | None = None, world_size: int | None = None, device="cpu") -> torch.Tensor:
    """This rank's rows of a batch of ``batch`` samples split in contiguous
    shares as ``torch.tensor_split`` splits it (the first ``batch % world``
    ranks get one more): their ids ``[start, start + n)`` as an int64 tensor,
    for ``row_ids=`` of the samplers and ops, and for the shape ``(n, ...)``
    of this rank's share."""
    rank, world_size = rank_and_world_size(rank, world_size)
    if batch < 0:
        raise ValueError(f"batch must be non-negative, got {batch}")
    base, extra = divmod(int(batch), world_size)
    start = rank * base + min(rank, extra)
    n = base + (1 if rank < extra else 0)
    return torch.arange(start, start + n, dtype=torch.int64, device=device)
