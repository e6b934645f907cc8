"""Load the compiled C core (csrc/) through cffi's out-of-line ABI mode.

``_ffi.py`` is generated at build time by ``build_ffi.py`` from
``csrc/mempulse.h``; ``libmempulse.so`` is the compiled core.  ABI mode
(``dlopen``) is what lets one compiled file serve CPython 2.7, every
CPython 3 and PyPy.
"""
import os

from mempulse._ffi import ffi

LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libmempulse.so")
lib = ffi.dlopen(LIBRARY)

#: What the C core uses for "the platform cannot give this value".
NONE = -(1 << 63)


def from_c(value):
    """A C byte count as Python: ``None`` where the core had no value."""
    return None if value == NONE else int(value)


def to_c(value):
    """A Python byte count (or ``None``) as the C core's int64."""
    return NONE if value is None else int(value)


def strerror(status):
    """The C core's message for a status code, as a native str."""
    text = ffi.string(lib.mp_strerror(status))
    return text if isinstance(text, str) else text.decode("ascii")
