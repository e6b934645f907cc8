"""Which code a trace records: ``include``/``exclude`` globs by path or module.

A pattern with a path separator, or ending in ``.py``, is matched against
the code's absolute file name (a relative one is taken from the current
directory unless it starts with a wildcard; a plain directory means
everything under it); any other pattern
is matched against the module name (``__name__`` of the code's globals),
and ``pkg`` also matches ``pkg.sub``.  ``OWN_CODE`` (``"<own>"``) stands
for the program's own code: everything outside the standard library and
site-packages (``<frozen ...>`` code is the standard library's).

Rule, decided once per code object by the engine: code matching an
exclude pattern is not recorded; otherwise, if there are include patterns,
only code matching one of them is.  Code that is not recorded is
transparent, as mempulse's own frames are: its lines are not recorded and
it takes no level, so what it calls keeps its caller's level::

    # only this package's lines, at any library depth between them
    mempulse.cMemoryUsageTracer(report, 2, include=["myapp"], exclude=["myapp.vendor"])
"""
import fnmatch
import os
import sys

#: Include/exclude pattern standing for "the program's own code".
OWN_CODE = "<own>"

try:
    _TEXT_TYPES = (str, unicode)  # noqa: F821 - Python 2
except NameError:
    _TEXT_TYPES = (str,)

_GLOB_CHARS = "*?["


def patterns_of(value, name):
    """``value`` (None, a string, or a list/tuple of strings) as a tuple of patterns.

    Raises TypeError for another type and ValueError for an empty pattern.
    """
    if value is None:
        return ()
    if isinstance(value, _TEXT_TYPES):
        value = [value]
    elif not isinstance(value, (list, tuple)):
        raise TypeError(
            "%s must be a glob string or a list of them, e.g. ['myapp.*', 'src/'], got %r"
            % (name, value)
        )
    for pattern in value:
        if not isinstance(pattern, _TEXT_TYPES):
            raise TypeError("%s patterns must be strings, got %r" % (name, pattern))
        if not pattern.strip():
            raise ValueError("%s patterns cannot be empty, got %r" % (name, pattern))
    return tuple(value)


def make_filter(include=None, exclude=None):
    """A :class:`CodeFilter`, or None when every code is recorded (no patterns)."""
    include = patterns_of(include, "include")
    exclude = patterns_of(exclude, "exclude")
    if not include and not exclude:
        return None
    return CodeFilter(include, exclude)


class _Pattern(object):
    def __init__(self, text):
        self.text = text
        self.own = text == OWN_CODE
        self.is_path = not self.own and (os.sep in text or "/" in text or text.endswith(".py"))
        if self.is_path:
            path = os.path.expanduser(text)
            if path[:1] not in _GLOB_CHARS:  # "*/vendor/*" stays as it is
                path = os.path.abspath(path)
            path = os.path.normcase(path)
            if not any(c in text for c in _GLOB_CHARS) and os.path.isdir(path):
                path = os.path.join(path, "*")  # a directory: everything under it
            self.glob = path

    def matches(self, filename, module):
        if self.own:
            return not is_library(filename)
        if self.is_path:
            return filename is not None and fnmatch.fnmatchcase(filename, self.glob)
        return module is not None and (
            fnmatch.fnmatchcase(module, self.text) or fnmatch.fnmatchcase(module, self.text + ".*")
        )


class CodeFilter(object):
    """Decides, for one code object, whether its lines are recorded."""

    def __init__(self, include, exclude):
        self.include = [_Pattern(p) for p in include]
        self.exclude = [_Pattern(p) for p in exclude]

    def records(self, code, module):
        """True when ``code`` (run with globals named ``module``) is recorded."""
        filename = _normalized(code.co_filename)
        if any(p.matches(filename, module) for p in self.exclude):
            return False
        return not self.include or any(p.matches(filename, module) for p in self.include)


def _normalized(filename):
    if filename.startswith("<"):
        return filename  # <frozen ...>, <string>: no file
    return os.path.normcase(os.path.abspath(filename))


# ---- the standard library and site-packages -------------------------------------


_library_dirs = []


def library_dirs():
    """Directories holding the standard library and installed packages (computed once)."""
    if not _library_dirs:
        _library_dirs.extend(_find_library_dirs())
    return _library_dirs


def _find_library_dirs():
    found = set()
    add = found.add
    for module in (os, fnmatch):  # the stdlib's directory, however it was installed
        add(os.path.dirname(module.__file__))
    try:
        import sysconfig

        for key in ("stdlib", "platstdlib", "purelib", "platlib"):
            path = sysconfig.get_paths().get(key)
            if path:
                add(path)
    except Exception:  # a broken sysconfig: the rest still works
        pass
    try:
        import site

        # Missing from old virtualenvs' site.py (Python 2).
        for path in getattr(site, "getsitepackages", lambda: [])():
            add(path)
        user = getattr(site, "getusersitepackages", None)
        if user is not None:
            add(user())
    except Exception:
        pass
    prefixes = set(
        getattr(sys, name, None) for name in ("prefix", "exec_prefix", "base_prefix", "base_exec_prefix", "real_prefix")
    )
    for prefix in prefixes:
        if prefix:
            for sub in ("lib", "lib64", "Lib", "lib_pypy", "lib-python"):
                add(os.path.join(prefix, sub))
    # sys.path entries that are package directories (dist-packages on Debian).
    for path in sys.path:
        if path and os.path.basename(os.path.normpath(path)) in ("site-packages", "dist-packages"):
            add(path)
    dirs = set()
    for path in found:
        for variant in (os.path.abspath(path), os.path.realpath(path)):
            dirs.add(os.path.join(os.path.normcase(variant), ""))
    return sorted(dirs)


def is_library(filename):
    """True for code of the standard library or of an installed package.

    ``filename`` is normalized (see :func:`_normalized`).  Frozen modules
    (``<frozen importlib._bootstrap>``, PyPy's ``<builtin>/...``) are the standard library's; other
    names in angle brackets (``<string>``, notebook cells) are not.
    """
    if filename.startswith("<"):
        # PyPy names its frozen and built-in modules "<builtin>/...".
        return filename.startswith(("<frozen ", "<builtin>"))
    dirs = library_dirs()
    if any(filename.startswith(d) for d in dirs):
        return True
    real = os.path.normcase(os.path.realpath(filename))
    return real != filename and any(real.startswith(d) for d in dirs)


def for_command_line(options, program):
    """The filter of a ``mempulse`` run: the program's own code unless ``--all-code``.

    ``--include`` adds to it (with ``--all-code``: restricts to it); the
    program's main file is always its own, even when installed (``-m``).
    Raises ValueError for an empty pattern.
    """
    include = list(options.include or [])
    if not options.all_code:
        include = [OWN_CODE, program.code.co_filename] + include
    return make_filter(include, options.exclude)
