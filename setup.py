"""Build the Cython kernels of advisor-core.

Set ADVISOR_CORE_DEBUG=1 to compile with bounds and wraparound checks (the test build).
"""

import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("ADVISOR_CORE_DEBUG", "") not in ("", "0")

KERNELS = ["_linalg", "_lstsq", "_random", "_kernels"]

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "embedsignature": True,
}

if os.name == "nt":
    compile_args = ["/O2"]
else:
    compile_args = ["-O3"] if not DEBUG else ["-O1", "-g"]

extensions = [
    Extension(
        f"advisor_core.{name}",
        [f"src/advisor_core/{name}.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
    )
    for name in KERNELS
]
# The exporters' text-format writer (no numpy: the cost/QoE exporter processes never load it).
extensions.append(
    Extension("exporters._render", ["src/exporters/_render.pyx"], extra_compile_args=compile_args)
)

setup(ext_modules=cythonize(extensions, compiler_directives=directives, quiet=True))
