"""Drop-in forms of other libraries' samplers on scorekern's fused kernels:
:mod:`scorekern.integrations.k_diffusion` (k-diffusion's σ-space samplers and
schedules). Each submodule is imported on its own; none is imported here, so
``import scorekern`` needs none of those libraries."""
