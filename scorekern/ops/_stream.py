"""The random stream's position (DESIGN §2): ``(seed, offset)`` from a
``torch.Generator``, explicit words, or, during CUDA graph capture, the marker
that has the kernels read the default CUDA generator's graph-safe state on
the device.

A CPU generator gives its initial seed and a fresh 63-bit offset drawn from
it; a CUDA generator gives its seed and its Philox offset, which is then
advanced, with no host–device synchronisation.
"""

from __future__ import annotations

import numbers
import threading

import torch

U64 = 1 << 64
# The offset passed to the CUDA kernels during graph capture: they then take
# the default CUDA generator's graph-safe state, read on the device at each
# replay (csrc/cuda/torch_device.cpp). Users cannot pass it as an offset.
CAPTURED_OFFSET = U64 - 1


def as_int64(word: int) -> int:
    """A 64-bit word as the int64 a schema's ``int`` carries (two's complement)."""
    return word - U64 if word >= (1 << 63) else word


def check_word(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int in [0, 2**64), got {type(value).__name__}")
    value = int(value)
    if not 0 <= value < U64:
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


def check_stream(generator, seed, offset) -> None:
    """Explicit words or a generator, not both; an offset needs its seed."""
    if seed is None and offset is None:
        return
    if generator is not None:
        raise ValueError("pass either generator or seed/offset, not both")
    if seed is None:
        raise ValueError("offset was given without seed; pass seed too")
    check_word(seed, "seed")
    if offset is not None and check_word(offset, "offset") == CAPTURED_OFFSET:
        raise ValueError("offset 2**64 - 1 is reserved (it marks noise drawn during CUDA graph capture)")


def stream(x, generator, seed=None, offset=None, capturable=False) -> tuple[int, int]:
    """(seed, offset) as schema ints: explicit ones (checked by check_stream
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
        return 0, as_int64(CAPTURED_OFFSET)
    if seed is None and offset is None:
        seed, offset = draw_seed_offset(generator, x.device)
    elif offset is None:
        offset = 0
    return as_int64(int(seed)), as_int64(int(offset))
