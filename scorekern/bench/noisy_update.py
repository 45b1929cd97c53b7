"""Benchmark cases of noisy_update and langevin_step: read x and the score,
write x' (12 bytes per float32 element)."""

from __future__ import annotations

from .. import ops, reference
from ._inputs import data, elementwise_shapes, rows, step_size
from .harness import Case, Provider


def cases(device: str, quick: bool) -> list[Case]:
    out = []
    for shape, per_row in elementwise_shapes(device, quick):
        x, s = data(shape, device, 2)
        dst = x.new_empty(shape)
        tau, root = step_size(per_row, rows(shape), device)
        note = "row" if per_row else "scalar"
        out.append(Case("langevin_step", shape, {
            "fused": Provider(ops.langevin_step, (x, s, tau)),
            "fused out=": Provider(lambda: ops.langevin_step(x, s, tau, out=dst)),
            "eager twin": Provider(reference.langevin_step, (x, s, tau)),
            "compiled twin": Provider(reference.langevin_step, (x, s, tau), compile=True),
        }, bytes_per_element=12, note=note, extra={"per_row": per_row}))
        out.append(Case("noisy_update", shape, {
            "fused": Provider(ops.noisy_update, (x, s, 1.0, tau, root)),
            "fused out=": Provider(lambda: ops.noisy_update(x, s, 1.0, tau, root, out=dst)),
            "eager twin": Provider(reference.noisy_update, (x, s, 1.0, tau, root)),
            "compiled twin": Provider(reference.noisy_update, (x, s, 1.0, tau, root), compile=True),
        }, bytes_per_element=12, note=note, extra={"per_row": per_row}))
    return out
