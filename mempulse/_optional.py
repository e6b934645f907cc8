"""Importing an optional dependency (psutil, matplotlib) with an install hint.

The hint replaces only "this package is not installed".  Any other failure
of its import is the real problem and propagates unchanged: PyPy with
psutil >= 7.1 fails with ``undefined symbol: PyErr_FormatV``, a package's
missing compiled submodule names that submodule, an import interrupted on
2.7 leaves a half-initialised package behind.
"""
import importlib

try:
    _NOT_FOUND = ModuleNotFoundError
except NameError:  # before Python 3.6
    _NOT_FOUND = None


def not_installed(error, name):
    """True when ``error`` (an ImportError) says that top-level package ``name`` is absent."""
    top = name.split(".")[0]
    if _NOT_FOUND is not None:
        # 3.6+: only "not found" counts, and only for the package itself: a
        # broken package fails with ImportError, or with ModuleNotFoundError
        # naming its own submodule ("cannot import name" names the package
        # but is a plain ImportError).
        return isinstance(error, _NOT_FOUND) and getattr(error, "name", None) in (top, name)
    return str(error) in ("No module named " + top, "No module named " + name,
                          "No module named '%s'" % top, "No module named '%s'" % name)


def import_optional(name, hint):
    """Import and return module ``name``; if it is not installed, raise
    ``ImportError(hint)``, e.g. ``"MemoryUsageTracer needs psutil: pip install psutil"``.
    Other import errors propagate as they are."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        if not not_installed(e, name):
            raise
        error = ImportError(hint)
    # Raised outside the except block, so Python 3 shows no "During handling
    # of the above exception" chain: the hint is the whole story.
    raise error
