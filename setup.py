"""Build of the optional C speed-up (src/tokenspy/_speedups.c); everything else is in pyproject.toml.

``optional=True``: where no compiler is found the build warns and tokenspy runs in Python, with
the same results.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("tokenspy._speedups", ["src/tokenspy/_speedups.c"], optional=True)])
