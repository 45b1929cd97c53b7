"""scorekern's fused ops: the Python face of ``torch.ops.scorekern``.

Every function here checks its arguments (errors name the argument and what
was expected), turns Python floats and ``[B]`` tensors into per-row
coefficients, takes the random stream's ``(seed, offset)`` from a
``torch.Generator``, and calls the compiled op, or its twin in
:mod:`scorekern.reference` when no compiled kernel serves the device
(see :mod:`scorekern._backend`).

Conventions (DESIGN §1, §4): a *row* is ``x[i]`` flattened; a 1-D tensor is
one row. Data may be float32, float64, float16 or bfloat16, with any strides;
arithmetic is in float32 (float64 for float64 data) and results have the
input's dtype and are contiguous. Per-row coefficients are Python floats,
0-d tensors or ``[B]`` tensors.

The random stream (DESIGN §2): noise is Philox4x32-10 keyed by a 64-bit
seed, with counter (column // 4, row id, offset). Without an explicit seed,
``seed`` and ``offset`` come from the generator (the default one of the
device when none is given), so ``torch.manual_seed`` makes results
reproducible: a CPU generator gives its initial seed and a fresh 63-bit
offset drawn from it; a CUDA generator gives its seed and its Philox offset,
which is then advanced, with no host–device synchronisation.
"""

from __future__ import annotations

import math
import numbers
import threading

import torch

from . import _backend, reference

__all__ = [
    "philox4x32",
    "randn_like",
    "rademacher_like",
    "noisy_update",
    "noisy_update_",
    "langevin_step",
    "snr_langevin_step",
    "masked_update",
    "Noise",
    "perturb",
    "dsm_loss",
    "sliced_score_terms",
    "mixture_score",
    "mixture_log_prob",
    "draw_seed_offset",
]

_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_U64 = 1 << 64
# The offset passed to the CUDA kernels during graph capture: they then take
# the default CUDA generator's graph-safe state, read on the device at each
# replay (csrc/cuda/glue.cpp). Users cannot pass it as an explicit offset.
_CAPTURED_OFFSET = _U64 - 1


# ---------------------------------------------------------------------------
# The random stream's position


def _as_int64(word: int) -> int:
    """A 64-bit word as the int64 a schema's ``int`` carries (two's complement)."""
    return word - _U64 if word >= (1 << 63) else word


def _check_word(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int in [0, 2**64), got {type(value).__name__}")
    value = int(value)
    if not 0 <= value < _U64:
        raise ValueError(f"{name} must lie in [0, 2**64), got {value}")
    return value


def draw_seed_offset(generator: torch.Generator | None, device: torch.device) -> tuple[int, int]:
    """The ``(seed, offset)`` of one call's noise, drawn from ``generator``.

    ``generator`` defaults to the default generator of ``device``'s type. The
    returned words are plain Python ints in ``[0, 2**64)``.
    """
    device = torch.device(device)
    if generator is None:
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            generator = torch.cuda.default_generators[index]
        elif device.type == "cpu":
            generator = torch.default_generator
        else:
            raise RuntimeError(f"scorekern has no random stream for {device.type} tensors")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise ValueError(
            f"generator is on {generator.device.type} but the tensor is on {device.type}; "
            "pass a generator of the tensor's device"
        )
    seed = generator.initial_seed()
    if generator.device.type == "cuda":
        if torch.cuda.is_current_stream_capturing():
            # The offset read here would be baked into the graph and every
            # replay would repeat the same noise (DESIGN §2).
            raise RuntimeError(
                "scorekern: this op cannot draw noise from a generator during CUDA graph capture "
                "(each replay would repeat the captured noise); pass `noise=` or explicit seeds. "
                "The update ops, the samplers built on them and randn_like/rademacher_like can, "
                "from the default CUDA generator"
            )
        offset = generator.get_offset()
        generator.set_offset(offset + 4)  # PyTorch's Philox offsets advance in fours
    else:
        offset = int(_offset_buffer().random_(generator=generator))
    return seed, offset


_local = threading.local()


def _offset_buffer() -> torch.Tensor:
    """A 0-d int64 CPU tensor per thread to draw offsets into (no allocation per call)."""
    buf = getattr(_local, "offset", None)
    if buf is None:
        buf = _local.offset = torch.empty((), dtype=torch.int64)
    return buf


def _check_stream(generator, seed, offset) -> None:
    """Explicit words or a generator, not both; an offset needs its seed."""
    if seed is None and offset is None:
        return
    if generator is not None:
        raise ValueError("pass either generator or seed/offset, not both")
    if seed is None:
        raise ValueError("offset was given without seed; pass seed too")
    _check_word(seed, "seed")
    if offset is not None and _check_word(offset, "offset") == _CAPTURED_OFFSET:
        raise ValueError("offset 2**64 - 1 is reserved (it marks noise drawn during CUDA graph capture)")


def _stream(x, generator, seed=None, offset=None, capturable=False) -> tuple[int, int]:
    """(seed, offset) as schema ints: explicit ones (checked by _check_stream
    beforehand), or drawn from the generator. With ``capturable``, during CUDA
    graph capture, the marker that has the kernel take the default CUDA
    generator's graph-safe state (each replay draws fresh noise, the same as
    an eager run from the same generator state would)."""
    if seed is None and offset is None and capturable and x.is_cuda and torch.cuda.is_current_stream_capturing():
        index = x.device.index if x.device.index is not None else torch.cuda.current_device()
        if generator is not None and generator is not torch.cuda.default_generators[index]:
            raise RuntimeError(
                "scorekern: during CUDA graph capture noise is drawn from the default CUDA generator "
                "only (generator=None): a custom generator's offsets would be baked into the graph"
            )
        return 0, _as_int64(_CAPTURED_OFFSET)
    if seed is None and offset is None:
        seed, offset = draw_seed_offset(generator, x.device)
    elif offset is None:
        offset = 0
    return _as_int64(int(seed)), _as_int64(int(offset))


# ---------------------------------------------------------------------------
# Argument checks, shared by the compiled and the twin paths


def _rows(x: torch.Tensor) -> int:
    return 1 if x.dim() == 1 else x.shape[0]


def _check_data(x, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32, float64, float16 or bfloat16, got {x.dtype}")
    if x.dim() == 0:
        raise ValueError(f"{name} must have at least one dimension (a 1-D tensor is one row), got a 0-d tensor")


def _check_like(t, x, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
    if t.device != x.device:
        raise ValueError(f"{name} must be on x's device {x.device}, got {t.device}")
    if t.dtype != x.dtype:
        raise TypeError(f"{name} must have x's dtype {x.dtype}, got {t.dtype}")
    if t.shape != x.shape:
        raise ValueError(f"{name} must have x's shape {list(x.shape)}, got {list(t.shape)}")


def _check_row_ids(row_ids, x):
    """Row ids as a contiguous int64 [B] tensor on x's device, or None."""
    if row_ids is None:
        return None
    if not isinstance(row_ids, torch.Tensor):
        raise TypeError(f"row_ids must be an integer tensor of shape [{_rows(x)}], got {type(row_ids).__name__}")
    if row_ids.dtype.is_floating_point or row_ids.dtype.is_complex or row_ids.dtype == torch.bool:
        raise TypeError(f"row_ids must be an integer tensor, got {row_ids.dtype}")
    rows = _rows(x)
    if row_ids.shape != (rows,):
        raise ValueError(f"row_ids must have shape [{rows}] (one id per row), got {list(row_ids.shape)}")
    if row_ids.device != x.device:
        raise ValueError(f"row_ids must be on x's device {x.device}, got {row_ids.device}")
    if row_ids.device.type == "cpu" and rows > 0:
        # On a GPU this check would need a host-device synchronisation; there
        # ids are taken modulo 2**32 instead (documented).
        low, high = int(row_ids.min()), int(row_ids.max())
        if low < 0 or high >= 1 << 32:
            raise ValueError(f"row_ids must lie in [0, 2**32), got values in [{low}, {high}]")
    return row_ids.to(torch.int64).contiguous()


def _opmath(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _coefficient(value, name: str, x: torch.Tensor, *, nonnegative: bool = False):
    """A per-row coefficient as (values, scale): values a tensor of x's arithmetic
    dtype on x's device ([B], or [1] for all rows) or None, and a float scale."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a float or a floating-point tensor, got bool")
    if isinstance(value, numbers.Real):
        value = float(value)
        if nonnegative and value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
        return None, value
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a float, a 0-d tensor or a [B] tensor, got {type(value).__name__}")
    if not value.dtype.is_floating_point:
        raise TypeError(f"{name} must be a float or a floating-point tensor, got a {value.dtype} tensor")
    rows = _rows(x)
    # One value for all rows, or one per row as [B] or [B, 1, ..., 1] (the
    # shape users write to broadcast against x).
    fits = value.dim() <= max(x.dim(), 1)
    single = fits and value.numel() == 1
    per_row = fits and value.dim() >= 1 and value.shape[0] == rows and value.numel() == rows
    if not (single or per_row):
        raise ValueError(
            f"{name} must be a float, a 0-d tensor or a tensor of shape [{rows}] (one value per row), "
            f"got shape {list(value.shape)}"
        )
    needs_grad = value.requires_grad and torch.is_grad_enabled()
    if single and value.device.type == "cpu" and not needs_grad:
        return _coefficient(value.item(), name, x, nonnegative=nonnegative)  # no device sync
    if value.device != x.device and not (single and value.device.type == "cpu"):
        raise ValueError(f"{name} must be on x's device {x.device} (or a 0-d CPU tensor), got {value.device}")
    if nonnegative and value.device.type == "cpu" and bool((value < 0).any()):
        raise ValueError(f"{name} must be non-negative, got a negative entry")
    return value.reshape(-1).to(device=x.device, dtype=_opmath(x)).contiguous(), 1.0


def _check_out(out, x, name: str = "out") -> None:
    _check_like(out, x, name)
    if torch.is_grad_enabled() and (out.requires_grad or x.requires_grad):
        raise RuntimeError(
            f"scorekern: {name}= and in-place forms do not support automatic differentiation; "
            "use the functional form or wrap the call in torch.no_grad()"
        )


def _check_no_grad(op: str, *tensors) -> None:
    if torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors):
        raise RuntimeError(
            f"scorekern.{op} is not differentiable; call it under torch.no_grad() "
            "(samplers do) or detach its inputs"
        )


# ---------------------------------------------------------------------------
# The random stream


def philox4x32(counter: torch.Tensor, seed: int) -> torch.Tensor:
    """The Philox4x32-10 block function: ``counter`` is int64 ``[..., 4]`` holding
    32-bit words, ``seed`` the 64-bit key (low word first); returns int64 ``[..., 4]``."""
    if not isinstance(counter, torch.Tensor) or counter.dtype != torch.int64:
        raise TypeError("counter must be an int64 tensor of shape [..., 4]")
    if counter.dim() == 0 or counter.shape[-1] != 4:
        raise ValueError(f"counter must have shape [..., 4], got {list(counter.shape)}")
    seed = _check_word(seed, "seed")
    if counter.device.type == "cpu" and counter.numel() and (int(counter.min()) < 0 or int(counter.max()) >= 1 << 32):
        raise ValueError("counter words must lie in [0, 2**32)")
    if not _backend.uses_compiled(counter.device):
        return reference.philox4x32(counter, seed)
    return torch.ops.scorekern.philox4x32(counter, _as_int64(seed))


def _noise_like(name, twin, x, generator, seed, offset, row_ids):
    _check_data(x)
    row_ids = _check_row_ids(row_ids, x)
    _check_stream(generator, seed, offset)
    if not _backend.uses_compiled(x.device):
        return twin(x, generator=generator, seed=seed, offset=offset, row_ids=row_ids)
    seed, offset = _stream(x, generator, seed, offset, capturable=True)
    # Only x's shape, dtype and device matter: the noise never depends on its values.
    return getattr(torch.ops.scorekern, name)(x.detach(), seed, offset, row_ids)


def randn_like(x, *, generator=None, seed=None, offset=None, row_ids=None):
    """Standard normal noise shaped like ``x``, from the documented stream.

    With ``seed`` (and ``offset``, default 0) the result is exactly the stream
    of DESIGN §2 for those words; otherwise they are drawn from ``generator``.
    ``row_ids`` (int, ``[B]``, each in ``[0, 2**32)``) pin each row's noise to
    its id: a row's noise does not depend on the batch it is in.
    """
    return _noise_like("randn", reference.randn_like, x, generator, seed, offset, row_ids)


def rademacher_like(x, *, generator=None, seed=None, offset=None, row_ids=None):
    """Rademacher (±1) noise shaped like ``x``: +1 where the stream word's low bit is set."""
    return _noise_like("rademacher", reference.rademacher_like, x, generator, seed, offset, row_ids)


# ---------------------------------------------------------------------------
# The fused noisy update


def _check_update(x, score, noise, row_ids, out):
    """The data arguments every update shares; returns the row ids as int64."""
    _check_data(x)
    _check_like(score, x, "score")
    if noise is not None:
        _check_like(noise, x, "noise")
    if out is not None:
        _check_out(out, x)
    return _check_row_ids(row_ids, x)


def _call(name: str, args: tuple, x, out, return_mean: bool):
    """Run torch.ops.scorekern.<name> (functional) or <name>_out (into out)."""
    if out is None:
        new, mean = getattr(torch.ops.scorekern, name)(*args, return_mean)
    else:
        mean = torch.empty(x.shape, dtype=x.dtype, device=x.device) if return_mean else None
        getattr(torch.ops.scorekern, name + "_out")(*args, out, mean)
        new = out
    return (new, mean) if return_mean else new


def _fused_update(x, score, coefs, noise, generator, row_ids, out, return_mean):
    seed, offset = (0, 0) if noise is not None else _stream(x, generator, capturable=True)
    flat = tuple(item for pair in coefs for item in pair)
    return _call("noisy_update", (x, score, *flat, noise, seed, offset, row_ids), x, out, return_mean)


def noisy_update(x, score, a, b, c, *, noise=None, generator=None, row_ids=None, out=None, return_mean=False):
    """``a·x + b·score + c·z`` in one pass, ``z`` standard normal drawn in the kernel.

    ``a``, ``b``, ``c``: floats, 0-d tensors or ``[B]`` tensors (one value per
    row); ``c`` must be non-negative. ``noise``: use this tensor as ``z``
    instead of drawing it. ``row_ids``: pin each row's noise to an id (see
    :func:`randn_like`). ``out``: write the result there (``out=x`` updates in
    place). ``return_mean``: also return the mean ``a·x + b·score``, as
    ``(x_new, mean)``. Differentiable in ``x``, ``score``, ``noise`` and
    tensor coefficients.
    """
    row_ids = _check_update(x, score, noise, row_ids, out)
    coefs = (_coefficient(a, "a", x), _coefficient(b, "b", x), _coefficient(c, "c", x, nonnegative=True))
    if not _backend.uses_compiled(x.device):
        return reference.noisy_update(x, score, a, b, c, noise=noise, generator=generator, row_ids=row_ids,
                                      out=out, return_mean=return_mean)
    return _fused_update(x, score, coefs, noise, generator, row_ids, out, return_mean)


def noisy_update_(x, score, a, b, c, *, noise=None, generator=None, row_ids=None, return_mean=False):
    """In-place :func:`noisy_update`: ``x ← a·x + b·score + c·z``; returns ``x``."""
    return noisy_update(x, score, a, b, c, noise=noise, generator=generator, row_ids=row_ids, out=x,
                        return_mean=return_mean)


def langevin_step(x, score, step_size, *, noise=None, generator=None, row_ids=None, out=None, return_mean=False):
    """One step of the unadjusted Langevin algorithm, ``x + τ·score + √(2τ)·z``.

    ``step_size`` τ ≥ 0: a float, a 0-d tensor or a ``[B]`` tensor. Other
    arguments as in :func:`noisy_update`.
    """
    row_ids = _check_update(x, score, noise, row_ids, out)
    values, scale = _coefficient(step_size, "step_size", x, nonnegative=True)
    if not _backend.uses_compiled(x.device):
        return reference.langevin_step(x, score, step_size, noise=noise, generator=generator, row_ids=row_ids,
                                       out=out, return_mean=return_mean)
    if values is None:
        coefs = ((None, 1.0), (None, scale), (None, math.sqrt(2.0 * scale)))
    else:
        coefs = ((None, 1.0), (values, 1.0), ((2.0 * values).sqrt(), 1.0))
    return _fused_update(x, score, coefs, noise, generator, row_ids, out, return_mean)


_NORMS = ("batch", "row")


def snr_langevin_step(x, score, snr, *, alpha=1.0, norms="batch", noise=None, generator=None, row_ids=None,
                      out=None, return_mean=False):
    """The Langevin corrector with a signal-to-noise step (Song et al. 2021).

    ``ε = 2α(snr·‖z‖/‖score‖)²`` from per-row L2 norms, then
    ``x + ε·score + √(2ε)·z``. ``norms="batch"`` averages the row norms over
    the batch so that one ε serves every row, as the published reference
    does; ``norms="row"`` gives each row its own ε. ``alpha`` (1 for VE,
    ``1 − βᵢ`` for VP) is a float, a 0-d tensor or a ``[B]`` tensor. Fused as
    two passes over the data with ``z`` regenerated, never stored. Not
    differentiable.
    """
    row_ids = _check_update(x, score, noise, row_ids, out)
    if isinstance(snr, torch.Tensor):
        if snr.numel() != 1 or snr.device.type != "cpu":
            raise ValueError("snr must be a float (or a one-element CPU tensor)")
        snr = snr.item()
    if isinstance(snr, bool) or not isinstance(snr, numbers.Real):
        raise TypeError(f"snr must be a float, got {type(snr).__name__}")
    if snr < 0:
        raise ValueError(f"snr must be non-negative, got {snr}")
    alpha_values, alpha_scale = _coefficient(alpha, "alpha", x, nonnegative=True)
    if norms not in _NORMS:
        raise ValueError(f"norms must be 'batch' or 'row', got {norms!r}")
    _check_no_grad("snr_langevin_step", x, score, noise, alpha_values)
    if not _backend.uses_compiled(x.device):
        return reference.snr_langevin_step(x, score, float(snr), alpha=alpha, norms=norms, noise=noise,
                                           generator=generator, row_ids=row_ids, out=out, return_mean=return_mean)
    seed, offset = (0, 0) if noise is not None else _stream(x, generator, capturable=True)
    args = (x, score, float(snr), alpha_values, alpha_scale, norms == "batch", noise, seed, offset, row_ids)
    return _call("snr_langevin_step", args, x, out, return_mean)


def _like_x(t, x, name):
    """y or mask as a tensor of x's shape and dtype: broadcast (and then
    copied by the kernel's glue) and converted as needed."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
    if t.device != x.device:
        raise ValueError(f"{name} must be on x's device {x.device}, got {t.device}")
    if t.dtype != x.dtype:
        if not (t.dtype.is_floating_point or t.dtype == torch.bool):
            raise TypeError(f"{name} must be a floating-point or bool tensor, got {t.dtype}")
        t = t.to(x.dtype)
    if t.shape != x.shape:
        try:
            t = t.expand(x.shape)
        except RuntimeError:
            raise ValueError(f"{name} of shape {list(t.shape)} does not broadcast to x's shape {list(x.shape)}") from None
    return t


def masked_update(x, score, y, mask, a, b, c, mu, sigma, *, noise=None, observed_noise=None, generator=None,
                  row_ids=None, out=None, return_mean=False):
    """Inpainting's step in one pass (Lugmayr et al. 2022; score_sde's inpainter):

    ``mask·(μ·y + σ·z₁) + (1 − mask)·(a·x + b·score + c·z₂)``: the observed
    entries (``mask`` 1) take the observation ``y`` noised to the step's time,
    the others the sampler's update. ``mean`` (``return_mean=True``) is the
    same without noise, ``mask·μ·y + (1 − mask)·(a·x + b·score)``; with
    ``mask`` 1 and ``μ = 1`` it holds ``y`` exactly. ``y`` and ``mask``
    (bool or float, values in [0, 1]) broadcast to ``x``'s shape; ``a``,
    ``b``, ``c``, ``mu``, ``sigma`` are floats, 0-d or ``[B]`` tensors (``c``,
    ``sigma`` ≥ 0). ``z₂`` is drawn (or taken from ``noise``) first, then
    ``z₁`` (or ``observed_noise``), with the same ``row_ids``. Entries of
    ``y`` where ``mask`` is 0 are multiplied by 0, so they must be finite
    (:func:`scorekern.samplers.inpaint` zeroes them). Not differentiable (a
    sampler step).
    """
    row_ids = _check_update(x, score, noise, row_ids, out)
    y, mask = _like_x(y, x, "y"), _like_x(mask, x, "mask")
    if observed_noise is not None:
        _check_like(observed_noise, x, "observed_noise")
    coefs = (_coefficient(a, "a", x), _coefficient(b, "b", x), _coefficient(c, "c", x, nonnegative=True),
             _coefficient(mu, "mu", x), _coefficient(sigma, "sigma", x, nonnegative=True))
    _check_no_grad("masked_update", x, score, y, mask, noise, observed_noise, *(v for v, _ in coefs))
    if not _backend.uses_compiled(x.device):
        return reference.masked_update(x, score, y, mask, a, b, c, mu, sigma, noise=noise,
                                       observed_noise=observed_noise, generator=generator, row_ids=row_ids,
                                       out=out, return_mean=return_mean)
    seed = offset = observed_offset = 0
    if noise is None:
        seed, offset = _stream(x, generator, capturable=True)
    if observed_noise is None:
        seed, observed_offset = _stream(x, generator, capturable=True)
    flat = tuple(item for pair in coefs for item in pair)
    args = (x, score, y, mask, *flat, noise, observed_noise, seed, offset, observed_offset, row_ids)
    return _call("masked_update", args, x, out, return_mean)


# ---------------------------------------------------------------------------
# Training losses: perturbation and denoising score matching with the noise
# regenerated from the stream, and the sums of sliced score matching.


class Noise:
    """Standard normal noise that the kernels regenerate instead of storing.

    :func:`perturb` returns one: the random stream's words ``(seed, offset)``,
    the per-row ``row_ids`` and the ``shape``, ``dtype`` and ``device`` of
    the noise, a few bytes instead of a tensor the size of the batch.
    :func:`dsm_loss` regenerates the same ``z`` in its forward and backward
    kernels. :meth:`tensor` materialises it, for code that needs ``z`` itself.
    ``seed`` and ``offset`` are held as the ops' int64 words (two's
    complement of the 64-bit values).
    """

    __slots__ = ("seed", "offset", "row_ids", "shape", "dtype", "device", "compiled")

    def __init__(self, seed: int, offset: int, row_ids, shape, dtype, device, compiled: bool):
        self.seed, self.offset, self.row_ids = seed, offset, row_ids
        self.shape, self.dtype, self.device = torch.Size(shape), dtype, torch.device(device)
        self.compiled = compiled  # drawn from the kernels' stream, or from the twins'

    def tensor(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The noise as a tensor (of ``dtype``, default the perturbed data's)."""
        like = torch.empty((), dtype=dtype or self.dtype, device=self.device).expand(self.shape)
        if self.compiled:
            return torch.ops.scorekern.randn(like, self.seed, self.offset, self.row_ids)
        return reference.randn_like(like, seed=self.seed, offset=self.offset, row_ids=self.row_ids)

    def __repr__(self) -> str:
        ids = "" if self.row_ids is None else ", row_ids=[...]"
        return (f"Noise(shape={list(self.shape)}, dtype={self.dtype}, device={self.device}, "
                f"seed={self.seed}, offset={self.offset}{ids})")


def perturb(x0, mean_coef, std, *, generator=None, row_ids=None):
    """Perturb data with Gaussian noise: ``(x_t, noise)`` with ``x_t = mean_coef·x0 + std·z``.

    ``mean_coef`` and ``std`` (≥ 0) are floats, 0-d tensors or ``[B]``
    tensors. ``noise`` is a :class:`Noise` handle, not a tensor: hand it to
    :func:`dsm_loss`, which regenerates ``z`` in its kernels, or call
    ``noise.tensor()``. ``row_ids`` pin each sample's noise to an id (see
    :func:`randn_like`). Differentiable in ``x0`` and tensor coefficients.
    """
    _check_data(x0, "x0")
    row_ids = _check_row_ids(row_ids, x0)
    a_values, a_scale = _coefficient(mean_coef, "mean_coef", x0)
    c_values, c_scale = _coefficient(std, "std", x0, nonnegative=True)
    seed, offset = _stream(x0, generator)
    compiled = _backend.uses_compiled(x0.device)
    noise = Noise(seed, offset, row_ids, x0.shape, x0.dtype, x0.device, compiled)
    if not compiled:
        x_t, _ = reference.perturb(x0, mean_coef, std, noise=noise.tensor())
        return x_t, noise
    # The fused update with b = 0: x0 stands in for the unused score.
    x_t, _ = torch.ops.scorekern.noisy_update(x0, x0, a_values, a_scale, None, 0.0, c_values, c_scale, None,
                                              seed, offset, row_ids, False)
    return x_t, noise


_ROW_REDUCTIONS = ("sum", "mean")
_REDUCTIONS = ("mean", "sum", "none")


def _reduce_rows(per_row, weight, cols, row_reduction, reduction):
    """w/2 · Σ (or the mean over a row), then the reduction over rows."""
    if row_reduction == "mean":
        per_row = per_row / cols
    half_weight = 0.5 if weight is None else _row_weight(weight, per_row) * 0.5
    losses = per_row * half_weight
    if reduction == "mean":
        return losses.mean()
    return losses.sum() if reduction == "sum" else losses


def _row_weight(weight, per_row):
    if isinstance(weight, torch.Tensor):
        weight = weight.reshape(()) if weight.numel() == 1 else weight.reshape(-1)
        return weight.to(per_row.dtype)
    return float(weight)


def _check_weight(weight, score):
    if weight is None:
        return
    if isinstance(weight, bool) or not isinstance(weight, (numbers.Real, torch.Tensor)):
        raise TypeError(f"weight must be a float, a 0-d tensor or a [B] tensor, got {type(weight).__name__}")
    if not isinstance(weight, torch.Tensor):
        return
    rows = _rows(score)
    if not weight.dtype.is_floating_point:
        raise TypeError(f"weight must be a floating-point tensor, got {weight.dtype}")
    single = weight.numel() == 1
    if not (single or (weight.dim() >= 1 and weight.shape[0] == rows and weight.numel() == rows)):
        raise ValueError(f"weight must be a float, a 0-d tensor or a tensor of shape [{rows}], "
                         f"got shape {list(weight.shape)}")
    if weight.device != score.device and not (single and weight.device.type == "cpu"):
        raise ValueError(f"weight must be on score's device {score.device}, got {weight.device}")


def _check_dsm_noise(noise, score):
    if isinstance(noise, Noise):
        if noise.shape != score.shape:
            raise ValueError(f"noise was drawn for shape {list(noise.shape)}, but score has shape "
                             f"{list(score.shape)}")
        if noise.device != score.device:
            raise ValueError(f"noise was drawn on {noise.device}, but score is on {score.device}")
        return
    if not isinstance(noise, torch.Tensor):
        raise TypeError(f"noise must be a scorekern.ops.Noise (from perturb) or a tensor, got {type(noise).__name__}")
    _check_like(noise, score, "noise")


def dsm_loss(score, noise, score_scale, noise_scale=1.0, *, weight=None, row_reduction="sum", reduction="mean"):
    """The denoising score matching loss (Vincent 2011), fused with its backward.

    Per row, ``weight/2 · ‖score_scale·score + noise_scale·z‖²`` (the sum over
    the row, or with ``row_reduction="mean"`` its mean), then ``reduction``
    over rows: ``"mean"``, ``"sum"`` or ``"none"`` (a ``[B]`` tensor).
    ``noise``: the :class:`Noise` handle from :func:`perturb`, whose ``z`` the
    forward and backward kernels regenerate (no noise tensor is kept), or a
    tensor ``z`` of the score's shape. ``score_scale``, ``noise_scale`` and
    ``weight``: floats, 0-d or ``[B]`` tensors. With ``score_scale=σ`` it is
    the σ²-weighted loss of NCSN and score SDE; with ``score_scale=1``,
    ``noise_scale=1/σ``, ``weight=g²`` the likelihood weighting.

    Differentiable in ``score`` (and a ``weight`` tensor, and a noise tensor).
    The result is float32 for float32 and 16-bit scores (float64 for
    float64), as under autocast; the score's gradient has the score's dtype.
    """
    _check_data(score, "score")
    _check_dsm_noise(noise, score)
    p_values, p_scale = _coefficient(score_scale, "score_scale", score)
    q_values, q_scale = _coefficient(noise_scale, "noise_scale", score)
    if torch.is_grad_enabled() and any(v is not None and v.requires_grad for v in (p_values, q_values)):
        raise RuntimeError("dsm_loss is differentiable in score, weight and a noise tensor, not in score_scale "
                           "or noise_scale; detach them")
    _check_weight(weight, score)
    if row_reduction not in _ROW_REDUCTIONS:
        raise ValueError(f"row_reduction must be 'sum' or 'mean', got {row_reduction!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not _backend.uses_compiled(score.device) or (isinstance(noise, Noise) and not noise.compiled):
        z = noise.tensor(score.dtype) if isinstance(noise, Noise) else noise
        if not _backend.uses_compiled(score.device):
            return reference.dsm_loss(score, z, score_scale, noise_scale, weight=weight,
                                      row_reduction=row_reduction, reduction=reduction)
        noise = z  # drawn by the twins' stream: the kernels read it as a tensor
    if isinstance(noise, Noise):
        args = (None, noise.seed, noise.offset, noise.row_ids)
    else:
        args = (noise, 0, 0, None)
    per_row = torch.ops.scorekern.dsm_row_sums(score, p_values, p_scale, q_values, q_scale, *args)
    cols = score.numel() // max(_rows(score), 1)
    return _reduce_rows(per_row, weight, cols, row_reduction, reduction)


def sliced_score_terms(score, vjp, v, *, variance_reduction=False):
    """The per-row terms of sliced score matching (Song et al. 2019): both row sums in one pass.

    ``vᵀ·vjp + ½(vᵀscore)²``, or with ``variance_reduction`` ``vᵀ·vjp +
    ½‖score‖²``, for each row, where ``vjp = (∂score/∂x)ᵀv`` comes from one
    autograd pass (:func:`scorekern.losses.sliced_score_matching` does it).
    ``score``, ``vjp`` and ``v`` share shape, dtype and device. Returns a
    ``[B]`` tensor in float32 (float64 for float64 data), differentiable in
    all three; the backward scales ``v`` (and the score) per row.
    """
    _check_data(score, "score")
    _check_like(vjp, score, "vjp")
    _check_like(v, score, "v")
    if not _backend.uses_compiled(score.device):
        return reference.sliced_score_terms(score, vjp, v, variance_reduction=variance_reduction)
    first, second = torch.ops.scorekern.sliced_row_sums(score, vjp, v, bool(variance_reduction))
    return first + 0.5 * second if variance_reduction else first + 0.5 * second.square()


# ---------------------------------------------------------------------------
# Mixture scores (DESIGN §1, last paragraph)


def _check_mixture(x, centers, bandwidth, log_weights):
    """Checks the arguments; returns (x as [M, d], bandwidth as (values, scale))."""
    _check_data(x, "x")
    if not isinstance(centers, torch.Tensor):
        raise TypeError(f"centers must be a tensor, got {type(centers).__name__}")
    if centers.dim() != 2 or centers.shape[1] != x.shape[-1]:
        raise ValueError(f"centers must have shape [N, {x.shape[-1]}] (x's last dimension), got {list(centers.shape)}")
    if centers.shape[0] == 0:
        raise ValueError("centers must hold at least one centre")
    if centers.dtype != x.dtype:
        raise TypeError(f"centers must have x's dtype {x.dtype}, got {centers.dtype}")
    if centers.device != x.device:
        raise ValueError(f"centers must be on x's device {x.device}, got {centers.device}")
    if log_weights is not None:
        if not isinstance(log_weights, torch.Tensor) or not log_weights.dtype.is_floating_point:
            raise TypeError("log_weights must be a floating-point tensor of shape [N]")
        if log_weights.shape != (centers.shape[0],):
            raise ValueError(f"log_weights must have shape [{centers.shape[0]}] (one per centre), "
                             f"got {list(log_weights.shape)}")
        if log_weights.device != x.device:
            raise ValueError(f"log_weights must be on x's device {x.device}, got {log_weights.device}")
    for name, t in (("centers", centers), ("bandwidth", bandwidth), ("log_weights", log_weights)):
        if isinstance(t, torch.Tensor) and t.requires_grad and torch.is_grad_enabled():
            raise RuntimeError(f"scorekern.mixture_score is differentiable with respect to x only; "
                               f"detach {name} (or compute its gradient with scorekern.reference)")
    flat = x.reshape(-1, x.shape[-1])
    if isinstance(bandwidth, torch.Tensor) and bandwidth.numel() > 1:
        if bandwidth.shape != x.shape[:-1] and bandwidth.shape != (flat.shape[0],):
            raise ValueError(f"bandwidth must be a float, a 0-d tensor or one value per query "
                             f"(shape {list(x.shape[:-1])}), got shape {list(bandwidth.shape)}")
        bandwidth = bandwidth.reshape(-1)
    values, scale = _coefficient(bandwidth, "bandwidth", flat)
    if values is None and not scale > 0:
        raise ValueError(f"bandwidth must be positive, got {scale}")
    if values is not None and values.device.type == "cpu" and not bool((values > 0).all()):
        raise ValueError("bandwidth must be positive, got a non-positive entry")
    return flat, values, scale


def _mixture_bandwidth(values, scale):
    return scale if values is None else values * scale


def mixture_score(x, centers, bandwidth, *, log_weights=None):
    """The score of an isotropic Gaussian mixture, ``∇ₓ log Σⱼ wⱼ N(x; μⱼ, h²I)``.

    ``Σⱼ softmaxⱼ(ℓⱼ − ‖x − μⱼ‖²/2h²)(μⱼ − x)/h²`` for queries ``x``
    ``[..., d]`` and ``centers`` ``[N, d]``: the score of a Gaussian kernel
    density estimate with bandwidth ``h``, of a training set convolved with
    N(0, h²I) (the ideal denoiser), or of a mixture with log-weights ``ℓ``
    (unnormalised; equal weights when None). ``bandwidth`` is a float, a 0-d
    tensor or one value per query. Tiled over the centres with an online
    softmax: memory O((M + N)·d) whatever M·N, finite however far ``x`` is.
    Differentiable with respect to ``x`` (the Jacobian is
    ``(Cov_w(μ)/h² − I)/h²``), not with respect to the centres, bandwidth or
    weights. Returns x's shape and dtype.

    On CUDA (sm_80+), for 16 ≤ d ≤ 128, the forward uses TF32 tensor cores
    where torch lets float32 matmuls use them
    (``torch.set_float32_matmul_precision("high")``) and always for 16-bit
    data; logits are then off by up to about ``2⁻¹⁰·Σₖ|xₖμₖ|/h²``. By
    torch's default ("highest") it is exact float32.
    """
    flat, values, scale = _check_mixture(x, centers, bandwidth, log_weights)
    if not _backend.uses_compiled(x.device):
        lw = None if log_weights is None else log_weights.to(x.dtype)
        return reference.mixture_score(flat, centers, _mixture_bandwidth(values, scale),
                                       log_weights=lw).reshape(x.shape)
    score, _ = torch.ops.scorekern.mixture_score(flat, centers, values, scale, log_weights, True)
    return score.reshape(x.shape)


def mixture_log_prob(x, centers, bandwidth, *, log_weights=None):
    """``log Σⱼ wⱼ N(x; μⱼ, h²I)`` per query, normalising constant included.

    The weights are ``softmax(log_weights)`` (equal when None); arguments as
    :func:`mixture_score`. Returns ``x.shape[:-1]`` in float32 (float64 for
    float64 data); differentiable with respect to ``x`` (its gradient is the
    score).
    """
    flat, values, scale = _check_mixture(x, centers, bandwidth, log_weights)
    h = _mixture_bandwidth(values, scale)
    if not _backend.uses_compiled(x.device):
        lw = None if log_weights is None else log_weights.to(x.dtype)
        out = reference.mixture_log_prob(flat, centers, h, log_weights=lw)
        return out.reshape(x.shape[:-1])
    with_score = torch.is_grad_enabled() and x.requires_grad
    _, lse = torch.ops.scorekern.mixture_score(flat, centers, values, scale, log_weights, with_score)
    opmath = _opmath(x)
    if log_weights is None:
        norm = math.log(centers.shape[0])
    else:
        norm = torch.logsumexp(log_weights.to(opmath), 0)
    log_h2 = torch.log(h.to(opmath)) * 2 if torch.is_tensor(h) else 2 * math.log(h)
    out = lse - norm - 0.5 * flat.shape[1] * (math.log(2 * math.pi) + log_h2)
    return out.reshape(x.shape[:-1])


# ---------------------------------------------------------------------------
# Fake kernels and autograd (DESIGN §3). Registered only when the compiled
# library defined the ops.


def _update_outputs(x, return_mean):
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    mean = torch.empty(x.shape, dtype=x.dtype, device=x.device) if return_mean else x.new_empty(0)
    return out, mean


def _register() -> None:
    lib = torch.library

    @lib.register_fake("scorekern::philox4x32")
    def _(counter, seed):
        return torch.empty(counter.shape, dtype=torch.int64, device=counter.device)

    @lib.register_fake("scorekern::randn")
    def _(like, seed, offset, row_ids):
        return torch.empty(like.shape, dtype=like.dtype, device=like.device)

    @lib.register_fake("scorekern::rademacher")
    def _(like, seed, offset, row_ids):
        return torch.empty(like.shape, dtype=like.dtype, device=like.device)

    @lib.register_fake("scorekern::noisy_update")
    def _(x, score, a, a_scale, b, b_scale, c, c_scale, noise, seed, offset, row_ids, return_mean):
        return _update_outputs(x, return_mean)

    @lib.register_fake("scorekern::noisy_update_out")
    def _(x, score, a, a_scale, b, b_scale, c, c_scale, noise, seed, offset, row_ids, out, mean_out):
        return None

    @lib.register_fake("scorekern::snr_langevin_step")
    def _(x, score, snr, alpha, alpha_scale, batch_norms, noise, seed, offset, row_ids, return_mean):
        return _update_outputs(x, return_mean)

    @lib.register_fake("scorekern::snr_langevin_step_out")
    def _(x, score, snr, alpha, alpha_scale, batch_norms, noise, seed, offset, row_ids, out, mean_out):
        return None

    @lib.register_fake("scorekern::masked_update")
    def _(x, score, y, mask, a, a_scale, b, b_scale, c, c_scale, mu, mu_scale, sigma, sigma_scale, noise,
          observed_noise, seed, offset, observed_offset, row_ids, return_mean):
        return _update_outputs(x, return_mean)

    @lib.register_fake("scorekern::masked_update_out")
    def _(x, score, y, mask, a, a_scale, b, b_scale, c, c_scale, mu, mu_scale, sigma, sigma_scale, noise,
          observed_noise, seed, offset, observed_offset, row_ids, out, mean_out):
        return None

    @lib.register_fake("scorekern::dsm_row_sums")
    def _(score, p, p_scale, q, q_scale, noise, seed, offset, row_ids):
        return score.new_empty((_rows(score),), dtype=_opmath(score))

    @lib.register_fake("scorekern::sliced_row_sums")
    def _(score, vjp, v, variance_reduction):
        rows = _rows(score)
        return score.new_empty((rows,), dtype=_opmath(score)), score.new_empty((rows,), dtype=_opmath(score))

    @lib.register_fake("scorekern::mixture_score")
    def _(x, centers, bandwidth, bandwidth_scale, log_weights, with_score):
        score = torch.empty(x.shape, dtype=x.dtype, device=x.device) if with_score else x.new_empty(0)
        return score, x.new_empty(x.shape[0], dtype=_opmath(x))

    @lib.register_fake("scorekern::mixture_score_backward")
    def _(grad, x, centers, bandwidth, bandwidth_scale, log_weights, score, lse):
        return torch.empty(x.shape, dtype=x.dtype, device=x.device)

    lib.register_autograd("scorekern::noisy_update", _noisy_update_backward, setup_context=_noisy_update_setup)
    lib.register_autograd("scorekern::dsm_row_sums", _dsm_backward, setup_context=_dsm_setup)
    lib.register_autograd("scorekern::sliced_row_sums", _sliced_backward, setup_context=_sliced_setup)
    lib.register_autograd("scorekern::mixture_score", _mixture_backward, setup_context=_mixture_setup)


def _noisy_update_setup(ctx, inputs, output):
    x, score, a, a_scale, b, b_scale, c, c_scale, noise, seed, offset, row_ids, return_mean = inputs
    ctx.scales = (a_scale, b_scale, c_scale)
    ctx.stream = (seed, offset)
    ctx.return_mean = return_mean
    ctx.has_coef = (a is not None, b is not None, c is not None)
    # x, score and the noise are kept only when a coefficient tensor needs a
    # gradient: that is the only use of them in the backward pass.
    grads = ctx.needs_input_grad
    ctx.save_for_backward(
        a, b, c,
        x if grads[2] else None,
        score if grads[4] else None,
        noise if grads[6] else None,
        row_ids if grads[6] and noise is None else None,
    )
    ctx.like = (x.shape, x.dtype, x.device)  # to regenerate z for c's gradient


def _row_view(v, g):
    """A coefficient tensor ([B] or [1]) broadcastable against g row by row."""
    if v.numel() != 1 and g.dim() > 1:
        return v.reshape(-1, *([1] * (g.dim() - 1)))
    return v.reshape(()) if v.numel() == 1 else v


def _coef_grad(v, product):
    """Reduce the elementwise product to the coefficient's shape ([B] or [1])."""
    if v.numel() == 1:
        return product.sum().reshape(v.shape)
    return product.reshape(v.shape[0], -1).sum(1)


def _noisy_update_backward(ctx, grad_out, grad_mean):
    a, b, c, x, score, noise, row_ids = ctx.saved_tensors
    a_scale, b_scale, c_scale = ctx.scales
    total = grad_out + grad_mean if ctx.return_mean else grad_out

    def coef(v, scale):
        return scale if v is None else _row_view(v, total).to(total.dtype) * scale

    ca, cb, cc = coef(a, a_scale), coef(b, b_scale), coef(c, c_scale)
    grads = ctx.needs_input_grad
    grad_x = total * ca if grads[0] else None
    grad_score = total * cb if grads[1] else None
    grad_noise = grad_out * cc if grads[8] else None
    grad_a = grad_b = grad_c = None
    if grads[2]:
        grad_a = _coef_grad(a, (total * x).to(a.dtype)) * a_scale
    if grads[4]:
        grad_b = _coef_grad(b, (total * score).to(b.dtype)) * b_scale
    if grads[6]:
        z = noise
        if z is None:  # regenerate the kernel's noise from the stream
            seed, offset = ctx.stream
            shape, dtype, device = ctx.like
            z = torch.ops.scorekern.randn(torch.empty(shape, dtype=dtype, device=device), seed, offset, row_ids)
        grad_c = _coef_grad(c, (grad_out * z).to(c.dtype)) * c_scale
    return grad_x, grad_score, grad_a, None, grad_b, None, grad_c, None, grad_noise, None, None, None, None


def _dsm_setup(ctx, inputs, output):
    score, p, p_scale, q, q_scale, noise, seed, offset, row_ids = inputs
    ctx.scales = (p_scale, q_scale)
    ctx.stream = (seed, offset)
    # The score is the model's own output, already alive; the noise is kept
    # only when the caller passed it as a tensor. Nothing of the noise's
    # size is made here: the backward kernel regenerates z.
    ctx.save_for_backward(score, p, q, noise, row_ids)


def _dsm_coef(values, scale):
    return scale if values is None else values * scale


def _dsm_backward(ctx, grad):
    """∂/∂s Σ(p·s + q·z)² = 2p(p·s + q·z): a noisy update of the score with
    a = 2gp², c = 2gpq and the same z (regenerated), and for a noise tensor
    ∂/∂z = 2q(p·s + q·z), with a = 2gpq, c = 2gq²."""
    score, p, q, noise, row_ids = ctx.saved_tensors
    seed, offset = ctx.stream
    g = 2.0 * grad.reshape(-1).contiguous()
    p, q = _dsm_coef(p, ctx.scales[0]), _dsm_coef(q, ctx.scales[1])
    grads = ctx.needs_input_grad

    def update(a, c):
        a, c = (a * g).contiguous(), (c * g).contiguous()
        new, _ = torch.ops.scorekern.noisy_update(score, score, a, 1.0, None, 0.0, c, 1.0, noise, seed, offset,
                                                  row_ids, False)
        return new

    grad_score = update(p * p, p * q) if grads[0] else None
    grad_noise = update(p * q, q * q) if grads[5] else None
    return grad_score, None, None, None, None, grad_noise, None, None, None


def _sliced_setup(ctx, inputs, output):
    score, vjp, v, variance_reduction = inputs
    ctx.variance_reduction = variance_reduction
    ctx.save_for_backward(score, vjp, v)


def _sliced_backward(ctx, grad_first, grad_second):
    """The sums' gradients: ∂Σv·u/∂u = v, ∂Σv·s/∂s = v, ∂Σs²/∂s = 2s, and for v, u and s."""
    score, vjp, v = ctx.saved_tensors
    grads = ctx.needs_input_grad
    zeros = score.new_zeros(_rows(score), dtype=_opmath(score))
    grad_first = zeros if grad_first is None else grad_first
    grad_second = zeros if grad_second is None else grad_second
    g0 = _row_view(grad_first, score).to(score.dtype)
    g1 = _row_view(grad_second, score).to(score.dtype)
    if ctx.variance_reduction:
        grad_score = 2 * g1 * score if grads[0] else None
        grad_v = g0 * vjp if grads[2] else None
    else:
        grad_score = g1 * v if grads[0] else None
        grad_v = g0 * vjp + g1 * score if grads[2] else None
    grad_vjp = g0 * v if grads[1] else None
    return grad_score, grad_vjp, grad_v, None


def _mixture_setup(ctx, inputs, output):
    x, centers, bandwidth, bandwidth_scale, log_weights, with_score = inputs
    score, lse = output
    ctx.set_materialize_grads(False)  # an unused output's gradient stays None: no pass for it
    ctx.bandwidth_scale = bandwidth_scale
    ctx.with_score = with_score
    ctx.save_for_backward(x, centers, bandwidth, log_weights, score, lse)


def _mixture_backward(ctx, grad_score, grad_lse):
    """x's gradient: the score's Jacobian applied to grad_score (a second
    pass over the centres with the saved lse), plus grad_lse · score (the
    gradient of the log-sum-exp is the score)."""
    x, centers, bandwidth, log_weights, score, lse = ctx.saved_tensors
    if not ctx.with_score:
        raise RuntimeError("scorekern: mixture_score was called with with_score=False; its backward needs the score")
    grad = None
    if grad_score is not None:
        grad = torch.ops.scorekern.mixture_score_backward(grad_score.contiguous(), x, centers, bandwidth,
                                                          ctx.bandwidth_scale, log_weights, score, lse)
    if grad_lse is not None:
        term = grad_lse.unsqueeze(1).to(score.dtype) * score
        grad = term if grad is None else grad + term
    return grad, None, None, None, None, None


if _backend._C is not None:
    _register()
