"""Benchmark cases of philox4x32: the raw block function on int64 counters
[N, 4] (reads and writes 32 bytes per block). A check of the stream more than
a sampling op: its twin is integer tensor arithmetic, ten rounds of it."""

from __future__ import annotations

import torch

from .. import ops, reference
from .harness import Case, Provider


def cases(device: str, quick: bool) -> list[Case]:
    blocks = 1 << (16 if quick else 20)
    gen = torch.Generator().manual_seed(0)
    counter = torch.randint(0, 1 << 32, (blocks, 4), generator=gen, dtype=torch.int64).to(device)
    seed = 0x1234_5678_9ABC_DEF0
    # bytes_per_element counts one of the 4·N words: 8 read and 8 written.
    return [Case("philox4x32", (blocks, 4), {
        "fused": Provider(ops.philox4x32, (counter, seed)),
        "eager twin": Provider(reference.philox4x32, (counter, seed)),
        "compiled twin": Provider(reference.philox4x32, (counter, seed), compile=True),
    }, bytes_per_element=16)]
