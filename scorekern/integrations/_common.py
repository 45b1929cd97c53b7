"""What the integrations share: the fused affine steps and their noise."""

from __future__ import annotations

import threading

import torch

from .. import ops

_QUIET: dict = {}
_LOCK = threading.Lock()


def quiet(x: torch.Tensor) -> torch.Generator:
    """A private generator on ``x``'s device for steps that draw no noise
    (``c = 0``), so that they leave the caller's generator untouched."""
    key = str(x.device)
    with _LOCK:
        if key not in _QUIET:
            _QUIET[key] = torch.Generator(device=x.device)
        return _QUIET[key]


def affine(x, y, a, b, c=0.0, noise=None, y2=None, b2=0.0):
    """``a·x + b·y (+ b2·y2) + c·z`` in one fused launch. ``noise``: the
    keyword arguments for ``z`` (``noise=`` or ``generator=``/``row_ids=``);
    ``None`` when ``c = 0``."""
    if noise is None and c != 0:
        raise ValueError("scorekern.integrations: a step with noise (c != 0) needs its noise arguments")
    kw = {"generator": quiet(x)} if noise is None else noise
    if y2 is None:
        return ops.noisy_update(x, y, a, b, c, **kw)
    return ops.multistep_update(x, y, y2, a, b, b2, c, **kw)
