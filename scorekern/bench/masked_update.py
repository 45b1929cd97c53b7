"""Benchmark cases of masked_update: x, the score, y and the mask read, x'
written (20 bytes per float32 element)."""

from __future__ import annotations

import torch

from .. import ops, reference
from ._inputs import data, elementwise_shapes, rows, step_size
from .harness import Case, Provider


def cases(device: str, quick: bool) -> list[Case]:
    out = []
    for shape, per_row in elementwise_shapes(device, quick):
        x, s, y = data(shape, device, 3)
        mask = (torch.rand(shape, generator=torch.Generator().manual_seed(2)) > 0.5).to(device=device,
                                                                                        dtype=x.dtype)
        dst = x.new_empty(shape)
        tau, root = step_size(per_row, rows(shape), device)
        args = (x, s, y, mask, 1.0, tau, root, 0.9, 0.3)
        out.append(Case("masked_update", shape, {
            "fused": Provider(ops.masked_update, args),
            "fused out=": Provider(lambda: ops.masked_update(*args, out=dst)),
            "eager twin": Provider(reference.masked_update, args),
            "compiled twin": Provider(reference.masked_update, args, compile=True),
        }, bytes_per_element=20, note="row" if per_row else "scalar", extra={"per_row": per_row}))
    return out
