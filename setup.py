"""The project is described in pyproject.toml; this file only adds the optional C core of
the rANS coder (entropy/_ransc.c -> codec.entropy._ransc).  ``optional=True``: where it
cannot be built (no C compiler), the install still succeeds and the numpy coder, which
writes the same bytes, serves instead."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("codec.entropy._ransc", ["entropy/_ransc.c"], optional=True,
                             extra_compile_args=["-O3"])])
