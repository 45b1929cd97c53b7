"""Benchmark cases of randn_like and rademacher_like: the noise written (4
bytes per float32 element)."""

from __future__ import annotations

from .. import ops, reference
from ._inputs import data, elementwise_shapes
from .harness import Case, Provider


def cases(device: str, quick: bool) -> list[Case]:
    out = []
    for name in ("randn_like", "rademacher_like"):
        fused, twin = getattr(ops, name), getattr(reference, name)
        for shape, per_row in elementwise_shapes(device, quick):
            if name == "rademacher_like" and per_row:
                continue  # the same walk as randn_like's; one shape shows the draw
            (x,) = data(shape, device, 1)
            out.append(Case(name, shape, {
                "fused": Provider(fused, (x,)),
                "eager twin": Provider(twin, (x,)),
                "compiled twin": Provider(twin, (x,), compile=True),
            }, bytes_per_element=4, note="row" if per_row else "scalar", extra={"per_row": per_row}))
    return out
