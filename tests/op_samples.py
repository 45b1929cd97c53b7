"""Sample inputs for every compiled op, in the spirit of PyTorch's OpInfo:
one place that lists, per op, the argument tuples of ``torch.ops.scorekern.<op>``
worth running — odd shapes (one element, rows of 2, sizes not divisible by 4,
rows longer than a tile or a CUDA chunk, empty tensors), 1-D rows, every
dtype, contiguous, misaligned (storage offset one element), transposed and
sliced views, scalar, single-value and per-row coefficients, noise from the
stream (seeds, offsets and row ids at the edges of their ranges) or from a
tensor, ``return_mean``, ``out=`` (strided and in place).

Every sample builds fresh inputs from a fixed seed each time ``make()`` is
called, so two implementations can be run on equal but separate tensors.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

import torch

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]

# Odd shapes, as the op tests use (conftest.SHAPES), and sizes for the CUDA
# paths: rows of more than one 4096-column chunk, a grid that wraps around a
# 2-SM device (more than 2·16·256 groups of four, or rows summed one per
# thread), empty tensors.
SHAPES = [(1,), (7,), (2, 2), (3, 5), (4, 3, 3), (2, 1030), (5, 4), (1, 1), (64, 2), (3, 2049), (9, 4001),
          (2, 9000), (8200, 3), (0, 5), (4, 0)]
VIEWS = ["contiguous", "misaligned", "transposed", "sliced"]

# Stream positions: seeds and offsets at the edges of their 64-bit ranges
# (as the schema's int64 words), row ids up to 2**32 - 1. Offset -1 (2**64 - 1)
# is the graph-capture marker, so the largest offset here is 2**64 - 2.
STREAMS = [(0, 0), (-1, 5), (0xDEADBEEF, (1 << 63) - 1), (12345, -2), (1, 1 << 32)]


def opmath(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


@dataclass
class Sample:
    op: str
    make: Callable[[], tuple]  # fresh arguments of torch.ops.scorekern.<op>
    desc: str
    outputs: tuple[int, ...] = ()  # positions of the arguments an _out op writes
    dtype: torch.dtype = torch.float32
    meta: dict = field(default_factory=dict)

    def __repr__(self):
        return f"{self.op}[{self.desc}]"


def _rows(shape):
    return 1 if len(shape) == 1 else shape[0]


def data(shape, dtype, seed, view="contiguous", scale=1.0):
    """A tensor of `shape` with fresh normal values, laid out as `view`."""
    g = torch.Generator().manual_seed(seed)
    n = 1
    for s in shape:
        n *= s
    if view == "misaligned":  # contiguous, starting one element into its storage
        flat = (torch.randn(n + 1, generator=g, dtype=torch.float64) * scale).to(dtype)
        return flat[1:].view(shape)
    if view == "transposed" and len(shape) >= 2:
        t = (torch.randn(tuple(reversed(shape)), generator=g, dtype=torch.float64) * scale).to(dtype)
        return t.permute(*reversed(range(len(shape))))
    if view == "sliced" and len(shape) >= 2:
        wide = (torch.randn(*shape[:-1], 2 * shape[-1], generator=g, dtype=torch.float64) * scale).to(dtype)
        return wide[..., ::2]
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def coef(kind, rows, dtype, seed, positive=False):
    """(values, scale) of a per-row coefficient: a float, one value, or one per row."""
    g = torch.Generator().manual_seed(seed)
    op = opmath(dtype)
    if kind == "scalar":
        return None, 0.3 + (seed % 7) / 10
    if kind == "single":
        v = torch.rand(1, generator=g, dtype=torch.float64) + (0.2 if positive else -0.5)
        return v.to(op), 1.5
    v = torch.rand(rows, generator=g, dtype=torch.float64) + (0.1 if positive else -0.4)
    return v.to(op), 0.5


COEF_KINDS = ["scalar", "single", "rows"]


def row_ids(rows, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 1 << 32, (rows,), generator=g, dtype=torch.int64)
    if rows:
        ids[0] = (1 << 32) - 1
    return ids


def _cases():
    """(i, shape, dtype): every shape with every dtype; i picks the other options in turn."""
    return enumerate(itertools.product(SHAPES, DTYPES))


def _view_for(i, shape):
    v = VIEWS[i % len(VIEWS)]
    return v if len(shape) >= 2 or v in ("contiguous", "misaligned") else "contiguous"


def _noise_args(i, shape, dtype, view):
    """(noise tensor or None, seed, offset, row ids or None) for sample i."""
    if i % 5 == 4:
        return data(shape, dtype, 100 + i, view), 0, 0, None
    seed, offset = STREAMS[i % len(STREAMS)]
    ids = row_ids(_rows(shape), i) if i % 3 == 1 else None
    return None, seed, offset, ids


def _update_samples(op):
    out_form = op.endswith("_out")
    for i, (shape, dtype) in _cases():
        view = _view_for(i, shape)
        rows = _rows(shape)
        kinds = (COEF_KINDS[i % 3], COEF_KINDS[(i + 1) % 3], COEF_KINDS[(i + 2) % 3])
        placement = ["new", "strided", "inplace"][i % 3] if out_form else None
        mean = i % 2 == 0

        def make(shape=shape, dtype=dtype, view=view, rows=rows, kinds=kinds, i=i, placement=placement, mean=mean):
            x, s = data(shape, dtype, i, view), data(shape, dtype, 50 + i, view)
            a = coef(kinds[0], rows, dtype, 3 * i)
            b = coef(kinds[1], rows, dtype, 3 * i + 1)
            c = coef(kinds[2], rows, dtype, 3 * i + 2, positive=True)
            if i % 11 == 5:
                c = (None, 0.0)  # an ODE step: no noise drawn
            noise, seed, offset, ids = _noise_args(i, shape, dtype, view)
            args = (x, s, *a, *b, *c, noise, seed, offset, ids)
            if not out_form:
                return args + (mean,)
            return args + _outs(x, placement, mean)

        desc = f"{list(shape)},{str(dtype)[6:]},{view},{'/'.join(kinds)}" + (f",{placement}" if out_form else "") + (
            ",mean" if mean else "")
        yield Sample(op, make, desc, outputs=(12, 13) if out_form else (), dtype=dtype)


def _outs(x, placement, mean):
    """out (x itself, a new tensor, or a strided one) and mean_out."""
    if placement == "inplace":
        out = x
    elif placement == "strided" and x.dim() >= 2:
        out = torch.empty(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype)[..., ::2]
    else:
        out = torch.empty(x.shape, dtype=x.dtype)
    mean_out = torch.empty(x.shape, dtype=x.dtype) if mean else None
    return out, mean_out


def _masked_samples(op):
    out_form = op.endswith("_out")
    for i, (shape, dtype) in _cases():
        if i % 2:
            continue  # half the shapes × dtypes: it is the same walk as the update
        view = _view_for(i, shape)
        rows = _rows(shape)
        placement = ["new", "strided", "inplace"][i % 3] if out_form else None
        mean = i % 4 == 0

        def make(shape=shape, dtype=dtype, view=view, rows=rows, i=i, placement=placement, mean=mean):
            x, s, y = data(shape, dtype, i, view), data(shape, dtype, 50 + i, view), data(shape, dtype, 70 + i)
            g = torch.Generator().manual_seed(i)
            mask = (torch.rand(shape, generator=g) > 0.4).to(dtype)
            a, b = coef(COEF_KINDS[i % 3], rows, dtype, i), coef("scalar", rows, dtype, i + 1)
            c = coef(COEF_KINDS[(i + 1) % 3], rows, dtype, i + 2, positive=True)
            mu = coef(COEF_KINDS[(i + 2) % 3], rows, dtype, i + 3)
            sigma = coef("rows", rows, dtype, i + 4, positive=True)
            noise, seed, offset, ids = _noise_args(i, shape, dtype, view)
            observed = data(shape, dtype, 90 + i) if i % 3 == 0 else None
            args = (x, s, y, mask, *a, *b, *c, *mu, *sigma, noise, observed, seed, offset, offset ^ 2, ids)
            if not out_form:
                return args + (mean,)
            return args + _outs(x, placement, mean)

        desc = f"{list(shape)},{str(dtype)[6:]},{view}" + (f",{placement}" if out_form else "") + (
            ",mean" if mean else "")
        yield Sample(op, make, desc, outputs=(20, 21) if out_form else (), dtype=dtype)


def _snr_samples(op):
    out_form = op.endswith("_out")
    for i, (shape, dtype) in _cases():
        view = _view_for(i, shape)
        rows = _rows(shape)
        placement = ["new", "strided", "inplace"][i % 3] if out_form else None
        mean = i % 2 == 1
        batch = i % 4 < 2

        def make(shape=shape, dtype=dtype, view=view, rows=rows, i=i, placement=placement, mean=mean, batch=batch):
            x, s = data(shape, dtype, i, view), data(shape, dtype, 50 + i, view)
            alpha = coef(COEF_KINDS[i % 3], rows, dtype, i, positive=True)
            noise, seed, offset, ids = _noise_args(i, shape, dtype, view)
            args = (x, s, 0.16, *alpha, batch, noise, seed, offset, ids)
            if not out_form:
                return args + (mean,)
            return args + _outs(x, placement, mean)

        desc = f"{list(shape)},{str(dtype)[6:]},{view},{'batch' if batch else 'row'}" + (
            f",{placement}" if out_form else "") + (",mean" if mean else "")
        yield Sample(op, make, desc, outputs=(10, 11) if out_form else (), dtype=dtype)


def _noise_samples(op):
    for i, (shape, dtype) in _cases():
        view = _view_for(i, shape)
        seed, offset = STREAMS[i % len(STREAMS)]
        with_ids = i % 2 == 0

        def make(shape=shape, dtype=dtype, view=view, seed=seed, offset=offset, i=i, with_ids=with_ids):
            ids = row_ids(_rows(shape), i) if with_ids else None
            return (data(shape, dtype, i, view), seed, offset, ids)

        yield Sample(op, make, f"{list(shape)},{str(dtype)[6:]},{view},seed={seed},offset={offset}"
                     + (",ids" if with_ids else ""), dtype=dtype)


def _philox_samples(op):
    for n, seed in [(1, 0), (5, -1), (4099, 0xA4093822299F31D0 - (1 << 64)), (0, 3)]:
        def make(n=n, seed=seed):
            g = torch.Generator().manual_seed(n)
            return (torch.randint(0, 1 << 32, (n, 4), generator=g, dtype=torch.int64), seed)

        yield Sample(op, make, f"n={n},seed={seed}", dtype=torch.int64)


def _dsm_samples(op):
    for i, (shape, dtype) in _cases():
        view = _view_for(i, shape)
        rows = _rows(shape)

        def make(shape=shape, dtype=dtype, view=view, rows=rows, i=i):
            s = data(shape, dtype, i, view)
            p = coef(COEF_KINDS[i % 3], rows, dtype, i)
            q = coef(COEF_KINDS[(i + 1) % 3], rows, dtype, i + 1)
            noise, seed, offset, ids = _noise_args(i, shape, dtype, view)
            return (s, *p, *q, noise, seed, offset, ids)

        yield Sample(op, make, f"{list(shape)},{str(dtype)[6:]},{view}", dtype=dtype)


def _sliced_samples(op):
    for i, (shape, dtype) in _cases():
        view = _view_for(i, shape)
        vr = i % 2 == 0

        def make(shape=shape, dtype=dtype, view=view, i=i, vr=vr):
            return (data(shape, dtype, i, view), data(shape, dtype, i + 1, view), data(shape, dtype, i + 2), vr)

        yield Sample(op, make, f"{list(shape)},{str(dtype)[6:]},{view}" + (",vr" if vr else ""), dtype=dtype)


# Mixture shapes (M queries, N centres, d): the exact kernels for small d
# (one thread per query, tiles of 256 centres) and larger d (a warp per
# query, 1 to 16 coordinates per lane), several blocks of queries.
MIXTURE_SHAPES = [(1, 1, 1), (37, 100, 2), (300, 257, 3), (5, 300, 8), (37, 100, 9), (20, 64, 33), (9, 50, 64),
                  (17, 40, 100), (6, 30, 300), (3, 20, 512)]
# The tensor-core forward (16 ≤ d ≤ 128, with TF32 allowed): one block, with
# the centres split over blocks (few queries), several blocks.
MIXTURE_TC_SHAPES = [(1, 1, 16), (64, 700, 20), (37, 300, 64), (200, 100, 128), (65, 520, 32)]


def _mixture_args(M, N, d, dtype, i, per_query, weighted):
    x = data((M, d), dtype, i)
    centers = data((N, d), dtype, i + 1)
    if per_query:
        g = torch.Generator().manual_seed(i)
        bw = (torch.rand(M, generator=g, dtype=torch.float64) + 0.5).to(opmath(dtype))
        bandwidth = (bw, 1.2)
    else:
        bandwidth = (None, 0.8 + 0.1 * (i % 5))
    lw = data((N,), dtype, i + 2) if weighted else None
    return x, centers, *bandwidth, lw


def _mixture_samples(op, shapes, tensor_cores):
    for i, ((M, N, d), dtype) in enumerate(itertools.product(shapes, DTYPES)):
        if dtype in (torch.float16, torch.bfloat16) and i % 2:
            continue
        per_query, weighted = i % 2 == 0, i % 3 != 0

        def make(M=M, N=N, d=d, dtype=dtype, i=i, per_query=per_query, weighted=weighted):
            args = _mixture_args(M, N, d, dtype, i, per_query, weighted)
            if op == "mixture_score":
                return args + (True,)
            score, lse = torch.ops.scorekern.mixture_score(*args, True)
            return (data((M, d), dtype, i + 3), *args, score, lse)

        # 16-bit data takes the tensor cores whenever d allows (TF32 holds it exactly).
        tc = op == "mixture_score" and (tensor_cores or (dtype in (torch.float16, torch.bfloat16) and 16 <= d <= 128))
        yield Sample(op, make, f"M={M},N={N},d={d},{str(dtype)[6:]}" + (",per_query" if per_query else "")
                     + (",weighted" if weighted else ""), dtype=dtype, meta={"tensor_cores": tc, "d": d})


def sample_inputs(op: str):
    """The samples of compiled op `op` (a name of torch.ops.scorekern)."""
    if op in ("noisy_update", "noisy_update_out"):
        return list(_update_samples(op))
    if op in ("masked_update", "masked_update_out"):
        return list(_masked_samples(op))
    if op in ("snr_langevin_step", "snr_langevin_step_out"):
        return list(_snr_samples(op))
    if op in ("randn", "rademacher"):
        return list(_noise_samples(op))
    if op == "philox4x32":
        return list(_philox_samples(op))
    if op == "dsm_row_sums":
        return list(_dsm_samples(op))
    if op == "sliced_row_sums":
        return list(_sliced_samples(op))
    if op in ("mixture_score", "mixture_score_backward"):
        samples = list(_mixture_samples(op, MIXTURE_SHAPES, False))
        if op == "mixture_score":
            samples += [s for s in _mixture_samples(op, MIXTURE_TC_SHAPES, True) if s.dtype != torch.float64]
        return samples
    raise KeyError(f"no samples for op {op!r}")


OPS = ["philox4x32", "randn", "rademacher", "noisy_update", "noisy_update_out", "masked_update", "masked_update_out",
       "snr_langevin_step", "snr_langevin_step_out", "dsm_row_sums", "sliced_row_sums", "mixture_score",
       "mixture_score_backward"]
