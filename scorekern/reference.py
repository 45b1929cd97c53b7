"""Pure-PyTorch twins of every scorekern op, with the same signatures.

Each twin is written as the idiomatic PyTorch a user would write: noise from
``torch.randn`` / ``torch.randint``, per-row coefficients broadcast over a
row. The compiled kernels are tested against these on the same explicit
noise, and they run when no compiled kernel is available (or under
``scorekern.use_backend("torch")``). They do not check their arguments:
:mod:`scorekern.ops` does that before calling either path.

Each twin sits in its op's module (``scorekern/ops/<op>.py``, after the op
and its autograd); this module gathers them. The twins draw different noise
from the kernels (they do not implement the Philox stream of DESIGN §2,
except :func:`philox4x32`, which computes the raw block function in integer
tensor arithmetic).
"""

import importlib as _importlib

from .ops import OP_MODULES as _OP_MODULES

__all__ = []
for _name in _OP_MODULES:
    _twins = _importlib.import_module(f".ops.{_name}", __package__).TWINS
    globals().update(_twins)
    __all__ += list(_twins)
del _name, _twins
