"""Which path runs: the compiled kernels or the pure-PyTorch twins.

The compiled path needs the extension ``scorekern._C`` with kernels for the
tensor's device. ``SCOREKERN_BACKEND`` (``auto``, ``compiled`` or ``torch``)
and :func:`use_backend` choose; under ``auto`` a device without compiled
kernels runs the twins in :mod:`scorekern.reference`, and a warning says so
once per device type.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import os
import threading
import warnings

import torch

try:
    from . import _C  # loading it registers torch.ops.scorekern
except ImportError as exc:
    _C = None
    if importlib.util.find_spec(f"{__package__}._C") is None:
        _LOAD_ERROR: str | None = "it was not built: installed with SCOREKERN_NO_EXTENSION=1, or not compiled"
    else:  # built, but it does not load (say, against another torch)
        _LOAD_ERROR = f"{type(exc).__name__}: {exc}"
else:
    _LOAD_ERROR = None

BACKENDS = ("auto", "compiled", "torch")

_cpu_request = os.environ.get("SCOREKERN_CPU_CAPABILITY")
if _C is not None and _cpu_request and _cpu_request != _C.cpu_capability():
    warnings.warn(
        f"scorekern: SCOREKERN_CPU_CAPABILITY={_cpu_request!r} is not available here (this CPU and build "
        f"support {_C.build_info()['cpu_capabilities']}); using {_C.cpu_capability()}",
        RuntimeWarning,
        stacklevel=2,
    )

_override: contextvars.ContextVar[str | None] = contextvars.ContextVar("scorekern_backend", default=None)
_warned: set[str] = set()
_warn_lock = threading.Lock()


def _check_name(name: str, source: str) -> str:
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise ValueError(f"{source} must be one of {', '.join(BACKENDS)}; got {name!r}")
    return name.lower()


def requested() -> str:
    """The backend asked for: use_backend's, else SCOREKERN_BACKEND's, else ``auto``."""
    name = _override.get()
    if name is not None:
        return name
    return _check_name(os.environ.get("SCOREKERN_BACKEND") or "auto", "SCOREKERN_BACKEND")


@contextlib.contextmanager
def use_backend(name: str):
    """Run scorekern ops on ``name`` (``"torch"``, ``"compiled"`` or ``"auto"``) inside the block.

    ``use_backend("torch")`` runs the pure-PyTorch twins, for comparison or debugging;
    ``use_backend("compiled")`` raises where no compiled kernel exists instead of
    falling back. The choice is per thread and per asyncio task.
    """
    token = _override.set(_check_name(name, "use_backend's name"))
    try:
        yield
    finally:
        _override.reset(token)


@functools.lru_cache(maxsize=None)
def _build_info() -> dict | None:
    return None if _C is None else _C.build_info()


def build_info() -> dict | None:
    info = _build_info()
    return None if info is None else dict(info)


@functools.lru_cache(maxsize=None)
def compiled_devices() -> tuple[str, ...]:
    info = _build_info()
    if info is None:
        return ()
    return ("cpu", "cuda") if info["cuda"] else ("cpu",)


def _missing_reason(device_type: str) -> str:
    if _C is None:
        return f"the compiled extension scorekern._C is not available ({_LOAD_ERROR})"
    if device_type == "cuda":
        return "scorekern._C was built without CUDA kernels"
    return f"scorekern has no compiled kernels for {device_type} tensors"


@torch.compiler.assume_constant_result
def uses_compiled(device: torch.device) -> bool:
    """Whether an op on ``device`` runs the compiled kernels (and warn once if it cannot).

    Under ``torch.compile`` this is read once, when the function is traced: a
    later change of backend does not retrace it.
    """
    name = requested()
    if name == "torch":
        return False
    if device.type in compiled_devices():
        return True
    reason = _missing_reason(device.type)
    if name == "compiled":
        raise RuntimeError(f"scorekern: compiled kernels were requested, but {reason}")
    with _warn_lock:
        first = device.type not in _warned
        _warned.add(device.type)
    if first:
        warnings.warn(
            f"scorekern: {reason}; running the pure-PyTorch twins (scorekern.reference) "
            f"on {device.type}. This warning is shown once.",
            RuntimeWarning,
            stacklevel=3,
        )
    return False


def cpu_capability() -> str | None:
    """The instruction set of the CPU kernels in use (``avx512``, ``avx2``, ``baseline``)."""
    return None if _C is None else _C.cpu_capability()


def _device_report(device_type: str) -> str:
    name = requested()
    if name == "torch":
        return "torch (SCOREKERN_BACKEND or use_backend asks for the twins)"
    if device_type in compiled_devices():
        if device_type == "cpu":
            return f"compiled ({cpu_capability()} kernels)"
        if not torch.cuda.is_available():
            return "compiled, but no CUDA device is visible"
        return f"compiled ({torch.cuda.get_device_name()})"
    return f"torch ({_missing_reason(device_type)})"


def info() -> dict:
    """How scorekern was built and which backend each device will use."""
    from . import __version__

    build = build_info()
    return {
        "version": __version__,
        "extension": _C is not None,
        "extension_error": _LOAD_ERROR,
        "compiled_backends": list(compiled_devices()),
        "cuda_version": build["cuda_version"] if build else None,
        "cuda_archs": build["cuda_archs"] if build else None,
        "built_with_torch": build["torch_version"] if build else None,
        "cpu_capability": cpu_capability(),
        "cpu_capabilities": build["cpu_capabilities"].split(",") if build else [],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "requested_backend": requested(),
        "devices": {"cpu": _device_report("cpu"), "cuda": _device_report("cuda")},
    }
