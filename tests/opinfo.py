"""One source of inputs per op, in the spirit of PyTorch's OpInfo.

Each op's test file lists its samples once (an :class:`OpInfo` of the
public function in :mod:`scorekern.ops`) and gets, from :func:`op_tests`:
``test_<op>_twin`` (against its twin in :mod:`scorekern.reference` on the
same inputs and explicit noise, the twin computed in the kernels' arithmetic
dtype); ``test_<op>_opcheck`` (``torch.library.opcheck`` of every compiled
op the call reaches); ``test_<op>_gradcheck`` (float64, where the op is
differentiable); ``test_<op>_rejects_bad_input`` (each data argument as a
non-tensor, an integer tensor and a tensor of the wrong shape gives an error
that names it, as do the op's own bad inputs); ``test_<op>_simulated``
(marker ``cuda_sim``: the same call, forward and backward, with the
compiled library pointed at the CUDA simulator, against the CPU kernels
under several schedule seeds, bit for bit unless the sample states a
tolerance). A new op gets all of them by listing its samples.
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass, field
from typing import Callable

import pytest
import torch

from scorekern import ops, reference

from conftest import COMPILED, DTYPES, TOL


@dataclass
class Sample:
    """One call: ``make()`` builds fresh ``(args, kwargs)`` each time."""

    make: Callable[[], tuple[tuple, dict]]
    desc: str
    dtype: torch.dtype = torch.float32
    twin: bool = True  # deterministic (explicit noise, or none drawn): compare with the twin
    grad: tuple[int, ...] = ()  # positions of the tensor arguments to differentiate (float64)
    tf32: bool = False  # with TF32 matmuls allowed (the mixture's tensor cores)
    sim_tol: dict | None = None  # the simulator against the CPU: None is bit for bit; atol relative to max|CPU|
    opcheck: bool = False  # one of the samples opcheck runs

    def __repr__(self):
        return self.desc


@dataclass
class BadInput:
    """A call that must raise `error` with a message matching `match`."""

    make: Callable[[], tuple[tuple, dict]]
    error: type
    match: str
    desc: str


@dataclass
class OpInfo:
    name: str  # scorekern.ops.<name>
    samples: Callable[[], list[Sample]]
    data_args: dict = field(default_factory=dict)  # {position: name} of tensors checked like x
    bad_inputs: Callable[[], list[BadInput]] = list
    twin_tol: Callable[[Sample], dict] | None = None  # default: TOL of the dtype; relative=True: atol × max|twin|
    differentiable: bool = False  # then some samples must have `grad`

    @property
    def fn(self):
        return getattr(ops, self.name)

    @property
    def twin(self):
        return getattr(reference, self.name)


def tensors_of(result) -> list[torch.Tensor]:
    """The tensors a call returned (tuples flattened, noise handles materialised)."""
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, ops.Noise):
        return [result.tensor()]
    if isinstance(result, (tuple, list)):
        return [t for r in result for t in tensors_of(r)]
    return []


def _upcast(v):
    """16-bit tensors in the kernels' arithmetic dtype; a noise handle as the
    tensor the kernels draw (before any rounding to its dtype)."""
    if isinstance(v, ops.Noise):
        return v.tensor(opmath(v.dtype))
    if isinstance(v, torch.Tensor) and v.dtype in (torch.float16, torch.bfloat16):
        return v.float()
    return v


def _twin_call(info, args, kwargs):
    kw = {k: _upcast(v) for k, v in kwargs.items() if k != "out"}
    return info.twin(*(_upcast(a) for a in args), **kw)


class _Recorder:
    """Stands in for the compiled library and records every op called through it."""

    def __init__(self, lib):
        self._lib, self.calls = lib, []

    def __getattr__(self, name):
        packet = getattr(self._lib, name)

        def call(*args):
            self.calls.append((packet.default, args))
            return packet(*args)

        return call


@contextlib.contextmanager
def library_as(replacement):
    """scorekern's ops call `replacement` for their compiled library inside the block."""
    module = sys.modules["scorekern.ops._library"]
    real, module.LIB = module.LIB, replacement
    try:
        yield
    finally:
        module.LIB = real


def record_ops(fn, *args, **kwargs):
    """The (op overload, args) of every compiled op that fn(*args, **kwargs) calls."""
    recorder = _Recorder(torch.ops.scorekern)
    with library_as(recorder):
        fn(*args, **kwargs)
    return recorder.calls


def run_simulated(sim, fn, args, kwargs):
    """fn(*args, **kwargs) with scorekern's compiled library pointed at the simulator."""
    with library_as(sim):
        return fn(*args, **kwargs)


def _grads(result, tensors):
    outs = [t for t in tensors_of(result) if t.requires_grad]
    if not outs:
        return []
    total = sum((o.double() * (1.0 + torch.arange(o.numel(), dtype=torch.float64).reshape(o.shape) / 7)).sum()
                for o in outs)
    return list(torch.autograd.grad(total, tensors, allow_unused=True))


def _assert_close(got, want, tol):
    """assert_close with `tol`; with ``relative=True`` its atol is relative to
    max(1, the largest |want|). NaN matches NaN (a mean over no columns is
    NaN in both, as torch.mean's is)."""
    tol = dict(tol)
    if tol.pop("relative", False):
        scale = max(1.0, want.abs().max().item()) if want.numel() else 1.0
        tol["atol"] = tol.get("atol", 0.0) * scale
    torch.testing.assert_close(got, want, equal_nan=True, **tol)


def _tensor_data_sample(info, samples):
    """(args, kwargs) of the first non-empty sample whose data arguments are all tensors."""
    for sample in samples:
        args, kwargs = sample.make()
        data_args = [args[i] for i in info.data_args]
        if all(isinstance(a, torch.Tensor) and a.numel() for a in data_args):
            return args, kwargs
    raise ValueError(f"{info.name}: no sample passes every data argument as a non-empty tensor")


def op_tests(info: OpInfo) -> dict:
    """The generic tests of `info`, as module-level test functions."""
    samples = info.samples()
    name = info.name
    need_compiled = pytest.mark.skipif(not COMPILED, reason="scorekern._C is not built")

    twin_samples = [s for s in samples if s.twin]

    @need_compiled
    @pytest.mark.parametrize("sample", twin_samples, ids=repr)
    def test_twin(sample):
        args, kwargs = sample.make()
        got = tensors_of(info.fn(*args, **kwargs))
        args, kwargs = sample.make()
        want = tensors_of(_twin_call(info, args, kwargs))
        exact = not sample.dtype.is_floating_point
        tol = dict(rtol=0, atol=0) if exact else (info.twin_tol(sample) if info.twin_tol else TOL[sample.dtype])
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _assert_close(g, w.to(g.dtype), tol)

    opcheck_samples = [s for s in samples if s.opcheck] or samples[:2]

    @need_compiled
    @pytest.mark.parametrize("sample", opcheck_samples, ids=repr)
    def test_opcheck(sample):
        args, kwargs = sample.make()
        calls = record_ops(info.fn, *args, **kwargs)
        assert calls, f"{name} called no compiled op"
        for op, op_args in calls:
            torch.library.opcheck(op, op_args)

    grad_samples = [s for s in samples if s.grad]

    @need_compiled
    @pytest.mark.parametrize("sample", grad_samples, ids=repr)
    def test_gradcheck(sample):
        args, kwargs = sample.make()
        positions = list(sample.grad)
        inputs = [args[i].detach().double().requires_grad_() for i in positions]

        def call(*tensors):
            full, kw = sample.make()  # fresh generators: the same noise in every evaluation
            full = list(full)
            for i, t in zip(positions, tensors):
                full[i] = t
            return tuple(t for t in tensors_of(info.fn(*full, **kw)) if t.requires_grad)

        assert torch.autograd.gradcheck(call, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)

    bad = info.bad_inputs()

    @pytest.mark.parametrize("case", list(range(3 * len(info.data_args) - 1 + len(bad))) or [None])
    def test_rejects_bad_input(case):
        if case is None:
            pytest.skip(f"{name} lists no data arguments or bad inputs")
        mutations = []
        for k, (position, arg) in enumerate(info.data_args.items()):
            mutations += [(position, arg, lambda t: t.tolist(), TypeError),
                          (position, arg, lambda t: t.to(torch.int32), TypeError)]
            if k:  # the others must have the first's shape
                mutations.append((position, arg, lambda t: t[..., :1].contiguous() if t.shape[-1] > 1 else t.repeat(2),
                                  ValueError))
        if case < len(mutations):
            position, arg, mutate, error = mutations[case]
            args, kwargs = _tensor_data_sample(info, samples)
            args = list(args)
            args[position] = mutate(args[position])
            with pytest.raises(error, match=arg):
                info.fn(*args, **kwargs)
            return
        b = bad[case - len(mutations)]
        args, kwargs = b.make()
        with pytest.raises(b.error, match=b.match):
            info.fn(*args, **kwargs)

    @pytest.mark.cuda_sim
    @need_compiled
    @pytest.mark.parametrize("sample", samples, ids=repr)
    def test_simulated(sim, baseline, seed, sample):
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = sample.tf32
        launches = torch.ops.cudasim.stats()[0]
        try:
            args, kwargs = sample.make()
            differentiable = [args[i] for i in sample.grad]
            got = run_simulated(sim, info.fn, args, kwargs)
            got_tensors = run_simulated(sim, tensors_of, (got,), {})  # a noise handle's draw simulated too
            got_grads = run_simulated(sim, _grads, (got, differentiable), {}) if differentiable else []
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous
        first = next((a for a in args if isinstance(a, (torch.Tensor, ops.Noise))), None)
        if first is not None and math.prod(first.shape) and any(t.numel() for t in got_tensors):
            assert torch.ops.cudasim.stats()[0] > launches, "no simulated kernel ran"
        args, kwargs = sample.make()
        want = info.fn(*args, **kwargs)
        want_grads = _grads(want, [args[i] for i in sample.grad]) if sample.grad else []
        pairs = list(zip(got_tensors, tensors_of(want))) + list(zip(got_grads, want_grads))
        assert len(got_tensors) == len(tensors_of(want)) and pairs
        for g, w in pairs:
            assert g.dtype == w.dtype and g.shape == w.shape
            if sample.sim_tol is None:
                assert torch.equal(g, w) or torch.equal(g.isnan(), w.isnan()) and torch.equal(
                    g.nan_to_num(), w.nan_to_num()), f"max difference {(g.double() - w.double()).abs().max().item()}"
            else:
                _assert_close(g, w, dict(sample.sim_tol, relative=True))

    if info.differentiable and not grad_samples:
        raise ValueError(f"{name} is differentiable but none of its samples lists tensors to differentiate")
    if not info.differentiable and grad_samples:
        raise ValueError(f"{name} is not differentiable, but samples list tensors to differentiate")
    tests = {f"test_{name}_opcheck": test_opcheck, f"test_{name}_rejects_bad_input": test_rejects_bad_input,
             f"test_{name}_simulated": test_simulated}
    if twin_samples:
        tests[f"test_{name}_twin"] = test_twin
    if grad_samples:
        tests[f"test_{name}_gradcheck"] = test_gradcheck
    return tests


# ---------------------------------------------------------------------------
# What samples are made of

# Odd shapes (one element, rows of 2, sizes not divisible by 4, 1-D rows,
# rows longer than a CPU tile), and sizes for the CUDA paths: rows of more
# than one 4096-column chunk, grids that wrap around a 2-SM device (more than
# 2·16·256 groups of four, or rows summed one per thread), empty tensors.
SHAPES = [(1,), (7,), (2, 2), (3, 5), (4, 3, 3), (2, 1030), (5, 4), (1, 1), (64, 2), (3, 2049), (9, 4001),
          (2, 9000), (8200, 3), (0, 5), (4, 0)]
VIEWS = ["contiguous", "misaligned", "transposed", "sliced"]
# Generator seeds at the edges of the 64-bit range.
SEEDS = [0, 2**64 - 1, 0xDEADBEEF, 12345, 1 << 32]


def opmath(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def rows_of(shape):
    return 1 if len(shape) == 1 else shape[0]


def data(shape, dtype, seed, view="contiguous", scale=1.0):
    """A tensor of `shape` with fresh normal values, laid out as `view`."""
    g = torch.Generator().manual_seed(seed)
    n = 1
    for s in shape:
        n *= s
    if view == "misaligned":  # contiguous, starting one element into its storage
        return (torch.randn(n + 1, generator=g, dtype=torch.float64) * scale).to(dtype)[1:].view(shape)
    if view == "transposed" and len(shape) >= 2:
        t = (torch.randn(tuple(reversed(shape)), generator=g, dtype=torch.float64) * scale).to(dtype)
        return t.permute(*reversed(range(len(shape))))
    if view == "sliced" and len(shape) >= 2:
        wide = (torch.randn(*shape[:-1], 2 * shape[-1], generator=g, dtype=torch.float64) * scale).to(dtype)
        return wide[..., ::2]
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def coefficient(kind, rows, dtype, seed, positive=False, ndim=2):
    """A per-row coefficient as users pass it: a float, a 0-d tensor, [B] or [B, 1]
    (which a 1-D tensor, one row, cannot take: [B] then)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "float":
        return 0.3 + (seed % 7) / 10
    if kind == "0d":
        return torch.tensor(float(torch.rand((), generator=g)) + (0.2 if positive else -0.5))
    v = torch.rand(rows, generator=g, dtype=torch.float64) + (0.1 if positive else -0.4)
    return v.to(opmath(dtype)) if kind == "rows" or ndim < 2 else v.reshape(rows, 1).to(opmath(dtype))


COEFFICIENT_KINDS = ["float", "0d", "rows", "rows_broadcast"]


def row_ids(rows, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 1 << 32, (rows,), generator=g, dtype=torch.int64)
    if rows:
        ids[0] = (1 << 32) - 1
    return ids


def shape_dtype_cases():
    """(i, shape, dtype): every shape with every dtype; i picks the other options in turn."""
    return enumerate((shape, dtype) for shape in SHAPES for dtype in DTYPES)


def view_for(i, shape):
    v = VIEWS[i % len(VIEWS)]
    return v if len(shape) >= 2 or v in ("contiguous", "misaligned") else "contiguous"


def generator(i):
    return torch.Generator().manual_seed(SEEDS[i % len(SEEDS)])


def update_kwargs(kw, x, i, view, explicit, placement, mean):
    """kw with the noise of an update sample (an explicit tensor, or a
    generator and, every other time, row ids) and its out= (placement)."""
    if explicit:
        kw["noise"] = data(tuple(x.shape), x.dtype, 100 + i, view)
    else:
        kw["generator"] = generator(i)
        if i % 2:
            kw["row_ids"] = row_ids(rows_of(tuple(x.shape)), i)
    if placement:
        kw["out"] = outs(x, placement, mean)
    return kw


def outs(x, placement, mean):
    """The out= tensor for a placement ("new", "strided", "inplace"), and return_mean."""
    if placement == "inplace":
        return x
    if placement == "strided" and x.dim() >= 2:
        return torch.empty(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype)[..., ::2]
    return torch.empty(x.shape, dtype=x.dtype)


def describe(shape, dtype, *parts):
    return ",".join([str(list(shape)), str(dtype)[6:], *[p for p in parts if p]])
