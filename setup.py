"""Builds akida_rt's one C extension, akida_rt.native._kernels (docs/architecture.md, "Native
kernels"); everything else about the package is in pyproject.toml."""

from pathlib import Path

import numpy
from setuptools import Extension, setup

SRC = Path("akida_rt/csrc")

setup(
    ext_modules=[
        Extension(
            "akida_rt.native._kernels",
            sources=[str(p) for p in sorted(SRC.glob("*.c"))],
            depends=[str(SRC / "kernels.h")],
            include_dirs=[numpy.get_include()],
            # no fused multiply-add: the kernels must round as numpy's separate steps do
            extra_compile_args=["-O3", "-std=c11", "-ffp-contract=off", "-fno-strict-aliasing"],
        )
    ]
)
