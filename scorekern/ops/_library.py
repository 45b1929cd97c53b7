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


def _autograd_kernel(op, backward, setup_context):
    """The Autograd kernel of ``op``: what ``torch.library.register_autograd``
    installs, less its pytree round trips for a ``Tensor[]`` argument (about
    40 µs a differentiable call). The ops' one tensor list, the coefficient
    bundle, is spread into the Function's inputs and gathered back for
    ``setup_context`` and ``backward``, which see the op's arguments as the
    schema has them (``ctx.needs_input_grad`` holding a list for the bundle).
    A backward returns None (or a list of Nones) for what gets no gradient."""
    lists = [i for i, a in enumerate(op._schema.arguments) if torch._library.utils.is_tensorlist_like_type(a.type)]
    if len(lists) > 1:
        raise AssertionError(f"{op}: more than one Tensor[] argument")
    k = lists[0] if lists else None
    tensor_args = [isinstance(a.type, (torch.TensorType, torch.OptionalType)) or i == k
                   for i, a in enumerate(op._schema.arguments)]

    def gather(flat, n):
        return flat if k is None else (*flat[:k], list(flat[k:k + n]), *flat[k + n:])

    def forward(ctx, keyset, n, *flat):
        args = gather(flat, n)
        with torch._C._AutoDispatchBelowAutograd():
            output = op.redispatch(keyset & torch._C._after_autograd_keyset, *args)
        setup_context(ctx, args, output)
        ctx.scorekern_n = n
        return output

    def backward_(ctx, *grads):
        n, needs = ctx.scorekern_n, ctx.needs_input_grad
        try:
            ctx.needs_input_grad = gather(needs[2:], n)
            result = backward(ctx, *grads)
        finally:
            ctx.needs_input_grad = needs
        flat = [None, None]
        for i, (g, is_tensor) in enumerate(zip(result, tensor_args)):
            if i == k:
                flat.extend(g if g else [None] * n)
            else:
                flat.append(g if is_tensor else None)
        return tuple(flat)

    function = type(f"{op._opname}Backward", (torch.autograd.Function,),
                    {"forward": staticmethod(forward), "backward": staticmethod(backward_)})

    def kernel(keyset, *args):
        if torch.is_grad_enabled() and torch._C._any_requires_grad(*args):
            n = 0 if k is None else len(args[k])
            flat = args if k is None else (*args[:k], *args[k], *args[k + 1:])
            return function.apply(keyset, n, *flat)
        with torch._C._AutoDispatchBelowAutograd():
            return op.redispatch(keyset & torch._C._after_autograd_keyset, *args)

    return kernel


_LIBRARIES: dict[str, torch.library.Library] = {}


def _register(namespace: str, name: str, backward, setup_context) -> None:
    op = getattr(getattr(torch.ops, namespace), name).default
    if namespace not in _LIBRARIES:
        _LIBRARIES[namespace] = torch.library.Library(namespace, "IMPL")
    _LIBRARIES[namespace].impl(name, _autograd_kernel(op, backward, setup_context), "Autograd", with_keyset=True)


def register_autograd(name: str, backward, setup_context) -> None:
    """The autograd formula of the compiled op ``name``, where it exists."""
    _AUTOGRAD.append((name, backward, setup_context))
    if _backend._C is not None:
        _register("scorekern", name, backward, setup_context)


def register_autograd_on(namespace: str) -> None:
    """Registers every op's backward again on the ops of ``namespace`` (the simulator's)."""
    for name, backward, setup_context in _AUTOGRAD:
        _register(namespace, name, backward, setup_context)
