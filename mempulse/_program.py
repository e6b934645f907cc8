"""What ``mempulse`` runs: the program ``python ARG`` or ``python -m NAME`` would run.

Each loader returns a :class:`Program`: the code object, a fresh
``__main__`` module to run it in, ``sys.argv`` and ``sys.path[0]``, all as
the interpreter itself would set them.  Nothing of the program runs here
(``-m`` imports the parent packages, as ``python -m`` does): the CLI runs
the code in its own frame, which the tracer never counts as a level, so the
program's module-level lines are level 1.  Where runpy would run the code,
its frames would be levels.
"""
import os
import sys
import types

_PY2 = sys.version_info[0] == 2


class CannotRun(Exception):
    """The program cannot be found or read: nothing was run."""


class Program(object):
    """What to run: a code object, the __main__ module to run it in, argv, path[0]."""

    def __init__(self, code, module, argv, path0):
        self.code, self.module, self.argv, self.path0 = code, module, argv, path0


def _new_main(attributes):
    main = types.ModuleType("__main__")
    main.__dict__.update(attributes)
    main.__builtins__ = sys.modules["__builtin__" if _PY2 else "builtins"]
    return main


def set_path0(path0):
    """Make ``path0`` the first entry of ``sys.path``, as the interpreter does."""
    if sys.path:
        sys.path[0] = path0
    else:
        sys.path.insert(0, path0)


def load_path(path):
    """The program of ``python path``: a script, or a directory or zip file with ``__main__.py``."""
    if os.path.isdir(path) or _is_zip(path):
        return load_main_of(path)
    return load_script(path)


def _is_zip(path):
    import zipimport

    try:
        zipimport.zipimporter(path)
        return True
    except (ImportError, OSError, IOError):  # ZipImportError is an ImportError
        return False


def load_script(path):
    """The program of ``python script.py``."""
    try:
        with open(path, "rb") as f:
            source = f.read()
    except (IOError, OSError) as e:
        raise CannotRun("cannot run %r: %s" % (path, e.strerror or e))
    # compile() honours a coding declaration in bytes and, with
    # dont_inherit, none of this module's __future__ flags.  A SyntaxError
    # is the program's own error: reported as Python would, exit status 1.
    # Python 3.9+ gives __main__ an absolute __file__ and code filename
    # (argv[0] stays as typed).
    filename = os.path.abspath(path) if sys.version_info >= (3, 9) else path
    code = compile(source, filename, "exec", 0, True)
    attributes = {"__name__": "__main__", "__file__": filename, "__package__": None}
    if not _PY2:
        from importlib.machinery import SourceFileLoader

        # As Python 3 sets them for a script (linecache and inspect use the loader).
        attributes.update(
            __spec__=None, __cached__=None, __loader__=SourceFileLoader("__main__", filename)
        )
    return Program(code, _new_main(attributes), [path], os.path.dirname(os.path.realpath(path)))


def load_main_of(path):
    """The program of ``python appdir`` or ``python app.pyz``: its ``__main__`` module.

    As the interpreter does it: ``path`` becomes ``sys.path[0]`` (absolute
    from Python 3.9 on and on PyPy, as typed before), ``__main__`` is looked
    up there only, and ``sys.argv[0]`` is ``path`` as typed.
    """
    if hasattr(sys, "pypy_version_info"):
        path0 = os.path.abspath(path)  # PyPy normalizes it ("./appdir/" -> ".../appdir")
    elif sys.version_info >= (3, 9):
        path0 = os.path.join(os.getcwd(), path)  # CPython does not
    else:
        path0 = path
    try:
        code, attributes = (_main_code_py2 if _PY2 else _main_code_py3)(path0)
    except ImportError as e:
        raise CannotRun("cannot run %r: %s" % (path, e))
    if code is None:
        raise CannotRun("cannot run %r: can't find '__main__' module in %r" % (path, path0))
    return Program(code, _new_main(attributes), [path], path0)


def _main_code_py3(path0):
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("__main__", [path0])
    if spec is None or spec.loader is None:
        return None, None
    return spec.loader.get_code("__main__"), _spec_attributes(spec)


def _main_code_py2(path0):
    import pkgutil

    importer = pkgutil.get_importer(path0)
    loader = importer.find_module("__main__") if importer is not None else None
    if loader is None:
        return None, None
    code = loader.get_code("__main__")
    get_filename = getattr(loader, "get_filename", None) or getattr(loader, "_get_filename", None)
    filename = get_filename("__main__") if get_filename is not None else code.co_filename
    attributes = {"__name__": "__main__", "__file__": filename, "__package__": "", "__loader__": loader}
    return code, attributes


def _spec_attributes(spec):
    return {
        "__name__": "__main__",
        "__file__": spec.origin,
        "__cached__": spec.cached,
        "__package__": spec.parent,
        "__loader__": spec.loader,
        "__spec__": spec,
    }


def load_module(name):
    """The program of ``python -m name``, found without running it.

    Looking the module up imports its parent packages, as ``python -m``
    does; the module itself is not run.
    """
    # python -m puts the current directory first ('' up to 3.6, absolute
    # later), before looking the module up.
    path0 = os.getcwd() if sys.version_info >= (3, 7) else ""
    set_path0(path0)
    try:
        code, attributes = (_module_code_py2 if _PY2 else _module_code_py3)(name)
    except ImportError as e:
        raise CannotRun("cannot run module %r: %s" % (name, e))
    return Program(code, _new_main(attributes), [attributes["__file__"]], path0)


_NOT_RUNNABLE = "No module named %s.__main__; %r is a package and cannot be directly executed"


def _module_code_py3(name):
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ImportError("No module named %r" % name)
    if spec.submodule_search_locations is not None:  # a package: run its __main__
        spec = importlib.util.find_spec(name + ".__main__")
        if spec is None:
            raise ImportError(_NOT_RUNNABLE % (name, name))
    code = spec.loader.get_code(spec.name) if spec.loader is not None else None
    if code is None:
        raise ImportError("no code object available for %s" % spec.name)
    return code, _spec_attributes(spec)


def _module_code_py2(name):
    import pkgutil

    loader = pkgutil.get_loader(name)
    if loader is None:
        raise ImportError("No module named %s" % name)
    if loader.is_package(name):
        name += ".__main__"
        loader = pkgutil.get_loader(name)
        if loader is None:
            raise ImportError(_NOT_RUNNABLE % (name[: -len(".__main__")], name[: -len(".__main__")]))
    code = loader.get_code(name)
    if code is None:
        raise ImportError("no code object available for %s" % name)
    attributes = {
        "__name__": "__main__",
        "__file__": os.path.abspath(loader.get_filename(name)),  # as python -m gives it
        "__package__": name.rpartition(".")[0],
        "__loader__": loader,
    }
    return code, attributes
