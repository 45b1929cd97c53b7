"""The real k-diffusion and diffusers for the integration tests, and the
cheap models they sample with.

k-diffusion's package ``__init__`` imports its training code (torchvision,
scikit-image, wandb, ...), which the tests do not need: ``k_sampling()``
loads ``k_diffusion/sampling.py`` (and ``layers.py`` for ``Denoiser``) from
their files under a stub package whose ``utils`` holds only what those
modules use. Without the packages the tests skip, unless
``SCOREKERN_REQUIRE_INTEGRATIONS=1`` (set by ``.ci/run``) makes that a failure.
"""

import functools
import importlib.util
import os
import sys
import types

import pytest
import torch

K_DIFFUSION_VERSION = "0.1.1.post1"
DIFFUSERS_VERSION = "0.42.1"


def _missing(what):
    if os.environ.get("SCOREKERN_REQUIRE_INTEGRATIONS") == "1":
        pytest.fail(f"{what} is not installed (SCOREKERN_REQUIRE_INTEGRATIONS=1)")
    pytest.skip(f"{what} is not installed")


def _append_dims(x, target_dims):
    dims = target_dims - x.ndim
    if dims < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * dims]


@functools.lru_cache(maxsize=None)
def _load_k_diffusion():
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = spec.submodule_search_locations[0]
    name = "_scorekern_test_k_diffusion"
    pkg = types.ModuleType(name)
    pkg.__path__ = [root]
    utils = types.ModuleType(name + ".utils")
    utils.append_dims = _append_dims
    pkg.utils = utils
    sys.modules[name], sys.modules[name + ".utils"] = pkg, utils
    # layers.py imports dctorch and einops, which Denoiser.loss (scales=1) does not use: stubs while it loads
    stubs = {m: types.ModuleType(m) for m in ("dctorch", "dctorch.functional", "einops") if m not in sys.modules}
    if "einops" in stubs:
        stubs["einops"].rearrange = stubs["einops"].repeat = None
    if "dctorch" in stubs:
        stubs["dctorch"].functional = stubs.get("dctorch.functional", types.ModuleType("dctorch.functional"))
    loaded = {}
    for mod in ("sampling", "layers"):
        s = importlib.util.spec_from_file_location(f"{name}.{mod}", os.path.join(root, f"{mod}.py"))
        m = importlib.util.module_from_spec(s)
        sys.modules[s.name] = m
        if mod == "layers":
            sys.modules.update(stubs)
        try:
            s.loader.exec_module(m)
        finally:
            for stub in stubs:
                sys.modules.pop(stub, None)
        setattr(pkg, mod, m)
        loaded[mod] = m
    return loaded


def k_sampling():
    """k-diffusion's ``sampling`` module (the installed package's file)."""
    loaded = _load_k_diffusion()
    if loaded is None:
        _missing(f"k-diffusion=={K_DIFFUSION_VERSION}")
    return loaded["sampling"]


def k_layers():
    """k-diffusion's ``layers`` module, for ``Denoiser``."""
    k_sampling()
    return _load_k_diffusion()["layers"]


def diffusers():
    try:
        import diffusers as d
    except ImportError:
        _missing(f"diffusers=={DIFFUSERS_VERSION}")
    return d


class ToyDenoiser:
    """A cheap, smooth, nonlinear denoiser ``D(x, σ)`` of k-diffusion's form,
    acting on each sample alone (so that row ids can be checked): a channel
    mix through tanh, blended in by σ like Karras et al.'s preconditioning."""

    def __init__(self, channels, dtype=torch.float32, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.w = (torch.randn(channels, channels, generator=g, dtype=torch.float64) / channels ** 0.5).to(dtype)
        self.bias = (0.3 * torch.randn(channels, generator=g, dtype=torch.float64)).to(dtype)
        self.calls = 0

    def __call__(self, x, sigma, **extra):
        self.calls += 1
        s = _append_dims(sigma.to(x.dtype), x.ndim)
        mixed = torch.einsum("ij,bj...->bi...", self.w, x) + _append_dims(self.bias, x.ndim - 1)
        scale = extra.get("scale", 1.0)
        return x / (1 + s ** 2) + scale * s / (1 + s ** 2) ** 0.5 * torch.tanh(mixed)


def seeded_noise(x, seed):
    """A noise sampler ``(σ, σ') → z`` from a private generator: the same
    sequence for both libraries when each gets a fresh one with one seed."""
    g = torch.Generator().manual_seed(seed)
    return lambda sigma, sigma_next: torch.randn(x.shape, generator=g, dtype=x.dtype)


def rel_err(got, want):
    """‖got − want‖ / ‖want‖ in float64."""
    got, want = got.double(), want.double()
    return float((got - want).norm() / want.norm().clamp_min(1e-300))
