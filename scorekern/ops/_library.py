"""The compiled library that scorekern's ops call, and its autograd formulas.

``LIB`` is the namespace of the compiled ops (``torch.ops.scorekern``). The
op modules call through it, so that the CUDA simulator's tests can point it
at ``torch.ops.scorekern_sim`` (the same ops on simulated CUDA kernels) and
run scorekern's Python layer, autograd included, on them.

Each op module registers its backward with :func:`register_autograd` (beside
the wrapper it belongs to); the fake kernels are the C++ meta kernels, which
share each op's checks and shapes (csrc/ops/<op>.cpp).
"""

from __future__ import annotations

import torch

from .. import _backend

LIB = torch.ops.scorekern
_AUTOGRAD: list[tuple[str, object, object]] = []


def no_grad_for(values: list):
    """What a backward returns for a list input that gets no gradient: an
    empty list stays a list (torch's custom-op autograd matches the inputs'
    structure, and an empty list is a list of tensors), else None."""
    return [] if len(values) == 0 else None


def register_autograd(name: str, backward, setup_context) -> None:
    """``torch.library.register_autograd`` for the compiled op ``name``, where it exists."""
    _AUTOGRAD.append((name, backward, setup_context))
    if _backend._C is not None:
        torch.library.register_autograd(f"scorekern::{name}", backward, setup_context=setup_context)


def register_autograd_on(namespace: str) -> None:
    """Registers every op's backward again on the ops of ``namespace`` (the simulator's)."""
    for name, backward, setup_context in _AUTOGRAD:
        torch.library.register_autograd(f"{namespace}::{name}", backward, setup_context=setup_context)
