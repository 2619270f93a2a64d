"""Build of the optional C speed-up (src/tokenspy/_speedups.c); everything else is in pyproject.toml.

``optional=True``: where no compiler is found the build warns and tokenspy runs in Python, with
the same results.
"""

import sys

from setuptools import Extension, setup

# -ffp-contract=off: the batch booking computes costs in C and must get Python's floats, so no
# fused multiply-add. -Os: the plain call's code runs once between two SDK calls, which evict it
# from the instruction cache, so its size counts more than its instruction count.
FLAGS = [] if sys.platform == "win32" else ["-ffp-contract=off", "-Os"]

setup(ext_modules=[Extension("tokenspy._speedups", ["src/tokenspy/_speedups.c"], optional=True,
                             extra_compile_args=FLAGS)])
