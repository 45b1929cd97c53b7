"""Benchmark cases of snr_langevin_step: the score read twice (norms, then the
update), x once, x' written (16 bytes per float32 element)."""

from __future__ import annotations

from .. import ops, reference
from ._inputs import data, elementwise_shapes, rows, step_size
from .harness import Case, Provider


def _twin(x, s, alpha):
    return reference.snr_langevin_step(x, s, 0.16, alpha=alpha)


def cases(device: str, quick: bool) -> list[Case]:
    out = []
    for shape, per_row in elementwise_shapes(device, quick):
        x, s = data(shape, device, 2)
        dst = x.new_empty(shape)
        alpha = step_size(per_row, rows(shape), device)[0] if per_row else 1.0
        out.append(Case("snr_langevin_step", shape, {
            "fused": Provider(lambda: ops.snr_langevin_step(x, s, 0.16, alpha=alpha)),
            "fused out=": Provider(lambda: ops.snr_langevin_step(x, s, 0.16, alpha=alpha, out=dst)),
            "eager twin": Provider(_twin, (x, s, alpha)),
            "compiled twin": Provider(_twin, (x, s, alpha), compile=True),
        }, bytes_per_element=16, note="row" if per_row else "scalar", extra={"per_row": per_row}))
    return out
