"""scorekern: fused C++/CUDA kernels for score-based generative modelling.

``scorekern.ops`` holds the fused ops (each with a pure-PyTorch twin in
``scorekern.reference``); ``scorekern.use_backend("torch")`` runs the twins;
``scorekern.info()`` reports how the library was built.
"""

__version__ = "0.1.0"

from ._backend import info, use_backend  # noqa: E402
from . import ops, reference  # noqa: E402

__all__ = ["info", "use_backend", "ops", "reference", "__version__"]
