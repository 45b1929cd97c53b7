"""What the pure-PyTorch twins share (each twin sits in its op's module,
after the op; :mod:`scorekern.reference` gathers them).

The twins are the idiomatic PyTorch a user would write: noise from
``torch.randn`` / ``torch.randint``, per-row coefficients broadcast over a
row. They do not check their arguments (the wrappers do that before calling
either path), and they draw different noise from the kernels: they do not
implement the Philox stream of DESIGN §2 (except the philox4x32 twin, which
computes the block function in integer tensor arithmetic).
"""

from __future__ import annotations

import torch

from ._checks import rows


def reference():
    """:mod:`scorekern.reference`, through which the wrappers reach the twins
    (so that what runs is always what that module holds)."""
    from .. import reference as module

    return module


def per_row(v, x):
    """A float, a 0-d tensor or a [B] (or [B, 1, ..., 1]) tensor, broadcast against x row by row."""
    if isinstance(v, torch.Tensor) and v.dim() >= 1:
        return v.reshape(-1, *([1] * (x.dim() - 1)))
    return v


def row_matrix(t):
    """t as [rows, row size] (a 1-D tensor is one row; empty tensors stay empty)."""
    return t.reshape(1, -1) if t.dim() == 1 else t.flatten(1)


def result(new, mean, out, return_mean):
    """The twin's result as the op returns it: into ``out`` when given, with the mean when asked."""
    if out is not None:
        out.copy_(new)
        new = out
    return (new, mean) if return_mean else new


def _generators(x, generator, seed, offset, row_ids):
    """One generator for the whole tensor, or one per row when ids are given.

    The twin keeps the meaning of the stream's arguments without its values:
    an explicit (seed, offset) always gives the same noise, and with row ids a
    row's noise depends only on its id.
    """
    if seed is None and row_ids is None:
        return generator
    if seed is None:
        device = generator.device if generator is not None else "cpu"
        base = int(torch.randint(0, 2**62, (), generator=generator, device=device))
    else:
        base = hash((int(seed), int(offset or 0))) & (2**62 - 1)
    if row_ids is None:
        return torch.Generator(device=x.device).manual_seed(base)
    return [
        torch.Generator(device=x.device).manual_seed(hash((base, int(i))) & (2**62 - 1))
        for i in row_ids.tolist()
    ]


def draw(x, generator, seed, offset, row_ids, draw_one):
    """Noise shaped like x from draw_one(shape, generator), per row with row ids."""
    gens = _generators(x, generator, seed, offset, row_ids)
    if not isinstance(gens, list):
        return draw_one(x.shape, gens)
    return torch.stack([draw_one(x.shape[1:], g) for g in gens]) if x.dim() > 1 else draw_one(x.shape, gens[0])


def normal(x, generator=None, row_ids=None, seed=None, offset=None):
    """The twins' standard normal noise shaped like x."""
    return draw(x, generator, seed, offset, row_ids,
                lambda shape, g: torch.randn(shape, generator=g, dtype=x.dtype, device=x.device))


__all__ = ["reference", "per_row", "row_matrix", "result", "draw", "normal", "rows"]
