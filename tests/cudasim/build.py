"""Builds the CUDA simulator's library: the project's CUDA kernels, launchers
and torch glue compiled by g++ against tests/cudasim (test code; never in the
wheel).

The library registers the ops a second time as ``torch.ops.scorekern_sim``
(the same schemas and CUDA glue, csrc/ops/*.cpp) with CPU
tensors running the simulated CUDA kernels, and ``torch.ops.cudasim`` (the
simulator's controls). Two variants:

- ``race``: the kernels instrumented with -fsanitize=thread, whose access
  hooks feed the simulator's shared-memory race checker (shared_memory.cpp; no
  ThreadSanitizer runtime is linked);
- ``asan``: the kernels and the simulator under AddressSanitizer and
  UBSan (alignment, bounds, ...): out-of-bounds accesses of global and
  shared memory, like ``compute-sanitizer --tool memcheck``. Load it in a
  process started with ``LD_PRELOAD`` of libasan (:func:`asan_preload`).

Objects are cached under build/cudasim (ninja, with header dependencies).
Run ``python tests/cudasim/build.py [race|asan]`` to build by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CSRC = os.path.join(ROOT, "csrc")
OUT = os.path.join(ROOT, "build", "cudasim")
VARIANTS = ("race", "asan")
LIBRARY = "libscorekern_cudasim.so"

# What the simulator's library is made of. Kernels: every CUDA source
# (rewritten). Host code: the shared pieces (csrc/*.cpp, but the build
# report) and every op's schemas, checks and CUDA glue (csrc/ops/*.cpp) as
# the real build compiles them, without the CPU kernels and with the
# simulator's device layer in place of torch's CUDA runtime
# (csrc/cuda/torch_device.cpp).
HOST_EXCLUDE = {"csrc/module.cpp"}

UBSAN = ("alignment,bool,bounds,builtin,enum,integer-divide-by-zero,nonnull-attribute,null,object-size,"
         "pointer-overflow,return,shift,signed-integer-overflow,unreachable,vla-bound")

SIM_ARCH = 90  # __CUDA_ARCH__ of the simulated device (the runtime reports the same by default)


def compiler() -> str | None:
    return shutil.which(os.environ.get("CXX") or "g++") or shutil.which("g++")


def kernel_sources() -> list[str]:
    cuda = os.path.join(CSRC, "cuda")
    return sorted(os.path.join("csrc/cuda", f) for f in os.listdir(cuda) if f.endswith(".cu"))


FAULTS = os.path.join(HERE, "faults.cu")  # the simulator's own test kernels
# The simulator's runtime (runtime.h names the parts), built per variant.
RUNTIME = ("runtime.cpp", "reports.cpp", "fibers.cpp", "collectives.cpp", "shared_memory.cpp", "runtime_api.cpp")


def host_sources() -> list[str]:
    found = []
    for sub in ("", "ops"):
        d = os.path.join(CSRC, sub)
        found += [os.path.join("csrc", sub, f) if sub else os.path.join("csrc", f) for f in os.listdir(d)
                  if f.endswith(".cpp")]
    return sorted(f for f in found if f not in HOST_EXCLUDE)


def _write_if_changed(path: str, text: str) -> None:
    if os.path.exists(path):
        with open(path) as f:
            if f.read() == text:
                return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def mirror_sources() -> str:
    """csrc mirrored under build/cudasim/src, the CUDA files rewritten
    (rewrite.py); returns the mirror's root."""
    sys.path.insert(0, HERE)
    try:
        import rewrite
    finally:
        sys.path.pop(0)
    dst_root = os.path.join(OUT, "src")
    for dirpath, _, files in os.walk(CSRC):
        for name in files:
            src = os.path.join(dirpath, name)
            rel = os.path.relpath(src, CSRC)
            with open(src) as f:
                text = f.read()
            if rel.startswith("cuda" + os.sep) and name.endswith((".cu", ".cuh")):
                text = rewrite.rewrite(text, src)
            elif name.endswith((".h", ".cuh")) and rewrite.needs_rewrite(text):
                raise rewrite.RewriteError(f"{rel}: launches, __global__ functions and __shared__ variables "
                                           "belong in csrc/cuda (only there does the simulator rewrite them)")
            _write_if_changed(os.path.join(dst_root, rel), text)
    with open(FAULTS) as f:
        _write_if_changed(os.path.join(dst_root, "cudasim_faults.cu"), rewrite.rewrite(f.read(), FAULTS))
    # A file since removed from csrc must not live on here (an include of it would still compile).
    for dirpath, _, files in os.walk(dst_root):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), dst_root)
            if rel != "cudasim_faults.cu" and not os.path.exists(os.path.join(CSRC, rel)):
                os.remove(os.path.join(dirpath, name))
    return dst_root


def _torch_flags():
    import torch
    from torch.utils import cpp_extension

    inc = [f"-isystem{p}" for p in cpp_extension.include_paths()]
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    libdir = os.path.join(os.path.dirname(torch.__file__), "lib")
    return inc + [f"-D_GLIBCXX_USE_CXX11_ABI={abi}"], [f"-L{libdir}", f"-Wl,-rpath,{libdir}", "-lc10", "-ltorch_cpu"]


def _ninja_file(variant: str, cxx: str, mirror: str) -> str:
    torch_cflags, torch_ldflags = _torch_flags()
    sim_inc = os.path.join(HERE, "include")
    common = ["-std=c++20", "-g", "-fPIC", "-fvisibility=hidden", "-fvisibility-inlines-hidden", "-Wall",
              "-Wno-unused-function", "-Wno-unknown-pragmas"]
    kernel = common + ["-O1", "-x", "c++", "-D__CUDACC__", f"-D__CUDA_ARCH__={SIM_ARCH * 10}", "-DCUDASIM",
                       f"-I{sim_inc}"]
    runtime = common + ["-O2", f"-I{HERE}"]
    host = common + ["-O1", f"-I{CSRC}", f"-I{sim_inc}", "-DSCOREKERN_WITH_CUDA", "-DSK_BUILD_CPU=0",
                     "-DSK_LIBRARY=scorekern_sim", "-DSK_CUDA_KEY=CPU"]
    host += torch_cflags
    link = ["-shared", "-Wl,-Bsymbolic", "-Wl,-z,defs"]
    if variant == "race":
        kernel += ["-fsanitize=thread", "--param=tsan-instrument-func-entry-exit=0", "-DCUDASIM_RACECHECK"]
        runtime += ["-DCUDASIM_RACECHECK"]
    else:
        asan = ["-fsanitize=address", "-fno-omit-frame-pointer", "-DCUDASIM_ASAN"]
        kernel += asan + [f"-fsanitize={UBSAN}", "-fno-sanitize-recover=all"]
        runtime += asan
        link += ["-fsanitize=address", f"-fsanitize={UBSAN}"]

    def q(args):
        return " ".join(a.replace(" ", "$ ").replace(":", "$:") for a in args)

    lines = [
        f"cxx = {cxx}",
        "rule cc\n  command = $cxx -MMD -MF $out.d $flags -c $in -o $out\n  depfile = $out.d\n  deps = gcc\n"
        "  description = CXX $out",
        "rule link\n  command = $cxx $in -o $out $ldflags\n  description = LINK $out",
    ]
    objects = []

    def obj(src, flags, where):
        o = os.path.join(OUT, where, os.path.basename(src) + ".o")
        lines.append(f"build {q([o])}: cc {q([src])}\n  flags = {q(flags)}")
        objects.append(o)

    for src in kernel_sources():
        obj(os.path.join(mirror, os.path.relpath(src, "csrc")), kernel, variant)
    obj(os.path.join(mirror, "cudasim_faults.cu"), kernel, variant)
    for name in RUNTIME:
        obj(os.path.join(HERE, name), runtime, variant)
    for src in host_sources():  # the same objects for both variants
        obj(os.path.join(ROOT, src), host, "host")
    obj(os.path.join(HERE, "torch_device.cpp"), host, "host")
    so = os.path.join(OUT, variant, LIBRARY)
    lines.append(f"build {q([so])}: link {q(objects)}\n  ldflags = {q(link + torch_ldflags)}")
    return "\n".join(lines) + "\n"


def build(variant: str = "race", verbose: bool = False) -> str:
    """Builds (or brings up to date) the variant's library; returns its path."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("g++ is not on PATH")
    ninja = shutil.which("ninja")
    if ninja is None:
        raise RuntimeError("ninja is not on PATH (pip install ninja)")
    mirror = mirror_sources()
    ninja_file = os.path.join(OUT, f"build.{variant}.ninja")
    _write_if_changed(ninja_file, _ninja_file(variant, cxx, mirror))
    cmd = [ninja, "-f", ninja_file] + (["-v"] if verbose else [])
    res = subprocess.run(cmd, cwd=OUT, capture_output=not verbose, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"building the CUDA simulator ({variant}) failed:\n{res.stdout}\n{res.stderr}")
    return os.path.join(OUT, variant, LIBRARY)


def asan_preload() -> str:
    """LD_PRELOAD for the asan variant: the AddressSanitizer runtime, and
    libstdc++ beside it (else ASan's interceptor of __cxa_throw finds no real
    one to call: C++ exceptions, torch's errors among them, abort)."""
    paths = []
    for lib in ("libasan.so", "libstdc++.so"):
        res = subprocess.run([compiler() or "g++", f"-print-file-name={lib}"], capture_output=True, text=True)
        path = res.stdout.strip()
        if not os.path.isabs(path):
            raise RuntimeError(f"cannot find {lib} (g++ -print-file-name={lib})")
        paths.append(os.path.realpath(path))
    return " ".join(paths)


if __name__ == "__main__":
    for v in sys.argv[1:] or ["race"]:
        print(build(v, verbose=True))
