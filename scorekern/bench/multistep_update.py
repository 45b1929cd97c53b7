"""Benchmark cases of multistep_update: x, the score and the second score
read, x' written (16 bytes per float32 element); the DPM-Solver++ 2M SDE
step's shape of coefficients (noise drawn)."""

from __future__ import annotations

from .. import ops, reference
from ._inputs import data, elementwise_shapes, rows, step_size
from .harness import Case, Provider


def cases(device: str, quick: bool) -> list[Case]:
    out = []
    for shape, per_row in elementwise_shapes(device, quick):
        x, s, s2 = data(shape, device, 3)
        dst = x.new_empty(shape)
        tau, root = step_size(per_row, rows(shape), device)
        args = (x, s, s2, 0.9, tau, -0.05, root)
        out.append(Case("multistep_update", shape, {
            "fused": Provider(ops.multistep_update, args),
            "fused out=": Provider(lambda: ops.multistep_update(*args, out=dst)),
            "eager twin": Provider(reference.multistep_update, args),
            "compiled twin": Provider(reference.multistep_update, args, compile=True),
        }, bytes_per_element=16, note="row" if per_row else "scalar", extra={"per_row": per_row}))
    return out
