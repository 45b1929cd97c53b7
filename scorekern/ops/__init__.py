"""scorekern's fused ops: the Python face of ``torch.ops.scorekern``.

One module per op (its wrapper, then its autograd formula, then its
pure-PyTorch twin); what they share is in ``_checks`` (argument checks, rows,
coefficient bundles), ``_stream`` (the random stream's position and CUDA
graph capture), ``_library`` (the compiled library and autograd
registration) and ``_twins``. Every wrapper checks its arguments (errors
name the argument and what was expected), turns Python floats and ``[B]``
tensors into per-row coefficients, takes the random stream's ``(seed,
offset)`` from a ``torch.Generator``, and calls the compiled op, or its twin
when no compiled kernel serves the device (see :mod:`scorekern._backend`).

The random stream (DESIGN §2): noise is Philox4x32-10 keyed by a 64-bit
seed, with counter (column // 4, row id, offset). Without an explicit seed,
``seed`` and ``offset`` come from the generator (the default one of the
device when none is given), so ``torch.manual_seed`` makes results
reproducible.
"""

from __future__ import annotations

import importlib

from ._stream import draw_seed_offset

# The op modules, in the order of the docs: adding an op adds its name here.
OP_MODULES = ("philox4x32", "noise", "noisy_update", "snr_langevin_step", "masked_update",
              "multistep_update", "dsm_loss", "sliced_score_terms", "mixture_score")

__all__ = ["draw_seed_offset"]  # then every op module's public names
for _name in OP_MODULES:
    _module = importlib.import_module(f".{_name}", __name__)
    globals().update({n: getattr(_module, n) for n in _module.__all__})
    __all__ += _module.__all__
del _name, _module
