"""Builds scorekern and its extension scorekern._C.

The CPU kernels are always built. The CUDA kernels are built when the
installed torch has CUDA and nvcc is found, or when SCOREKERN_FORCE_CUDA=1;
TORCH_CUDA_ARCH_LIST is honoured (default "8.0;9.0+PTX").
SCOREKERN_NO_EXTENSION=1 installs the pure-Python package, which runs the
PyTorch twins. Build with `pip install --no-build-isolation -e .` so that
the installed torch is used.
"""

import glob
import os
import shutil
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCHS = "8.0;9.0+PTX"


def flag(name):
    return os.environ.get(name, "0").lower() in ("1", "true", "yes", "on")


def extension_modules():
    if flag("SCOREKERN_NO_EXTENSION"):
        return [], {}
    import torch
    from torch.utils import cpp_extension

    nvcc = cpp_extension.CUDA_HOME and shutil.which(os.path.join(cpp_extension.CUDA_HOME, "bin", "nvcc"))
    with_cuda = flag("SCOREKERN_FORCE_CUDA") or (torch.version.cuda is not None and bool(nvcc))

    # Shared pieces (csrc/*.cpp), each op's schema, checks and glue
    # (csrc/ops/), its CPU kernel (csrc/cpu/) and, with CUDA, its CUDA kernel.
    sources = [f for sub in ("", "ops/", "cpu/") for f in sorted(glob.glob(f"csrc/{sub}*.cpp"))]
    cxx = [
        "-O3",
        "-fno-math-errno",  # sqrt and friends inline and vectorise
        "-fno-trapping-math",  # float selects if-convert (no -ffast-math: NaNs stay NaNs)
        "-ffp-contract=fast",  # fused multiply-adds where the target has them, as nvcc does
    ]
    link = []
    if torch.backends.openmp.is_available() and sys.platform.startswith("linux"):
        cxx.append("-fopenmp")  # at::parallel_for is OpenMP in torch's CPU builds
        link.append("-fopenmp")

    archs = None
    if with_cuda:
        archs = os.environ.get("TORCH_CUDA_ARCH_LIST") or DEFAULT_ARCHS
        os.environ["TORCH_CUDA_ARCH_LIST"] = archs
        sources += sorted(glob.glob("csrc/cuda/*.cu")) + sorted(glob.glob("csrc/cuda/*.cpp"))

    generated = os.path.join(ROOT, "build", "generated")
    os.makedirs(generated, exist_ok=True)
    info = {
        "SCOREKERN_BUILD_CUDA": "1" if with_cuda else "0",
        "SCOREKERN_BUILD_CUDA_VERSION": '"%s"' % (torch.version.cuda or ""),
        "SCOREKERN_BUILD_CUDA_ARCHS": '"%s"' % (archs or ""),
        "SCOREKERN_BUILD_TORCH_VERSION": '"%s"' % torch.__version__,
        "SCOREKERN_BUILD_COMPILER": '"%s"' % (os.environ.get("CXX") or "c++"),
    }
    header = "".join("#define %s %s\n" % kv for kv in info.items())
    path = os.path.join(generated, "scorekern_build_info.h")
    if not os.path.exists(path) or open(path).read() != "#pragma once\n" + header:
        with open(path, "w") as f:
            f.write("#pragma once\n" + header)

    kind = cpp_extension.CUDAExtension if with_cuda else cpp_extension.CppExtension
    ext = kind(
        "scorekern._C",
        sources,
        include_dirs=[os.path.join(ROOT, "csrc"), generated],
        extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "-lineinfo"]},
        extra_link_args=link,
        define_macros=[("SCOREKERN_WITH_CUDA", "1")] if with_cuda else [],
    )
    build_ext = cpp_extension.BuildExtension.with_options(use_ninja=True)
    return [ext], {"build_ext": build_ext}


ext_modules, cmdclass = extension_modules()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
