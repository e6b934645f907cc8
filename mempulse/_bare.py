"""Bare ``@profile`` under the command line, as memory_profiler and kernprof run it.

``mempulse script.py`` puts a ``profile`` decorator into builtins for the
program's run (and takes it out afterwards), so a script written for
memory_profiler or line_profiler runs unchanged, without importing
anything.  The run is *per function* when the program applies it:

- the main script is scanned before it runs (its syntax tree, when its
  source can be read): a function decorated with a bare ``profile`` that
  the module does not define or import itself means per-function mode from
  the start, and the whole script is not traced at all;
- otherwise the whole script is traced as usual, and the first application
  of the builtin (in a module the scan cannot see) switches the run to
  per-function mode: the decorated functions are traced on their own from
  then on, and the whole-script table is dropped at the end.

In per-function mode each decorated function's calls go into one
:class:`mempulse.Profile` (depth counted from the function's body,
``--depth`` and the code filters apply), and at the end of the run the
report is one table per function, aggregated over all its calls; the
saved result (``--json``, ``--csv``) holds every function's rows, with
``metadata["functions"]`` naming each function, its calls and its rows.
"""
import ast
import sys

from mempulse._result import TraceResult

_BUILTINS = sys.modules["__builtin__" if sys.version_info[0] == 2 else "builtins"]
_MISSING = object()


def source_of(program):
    """The program's source text, or None where it cannot be read."""
    module = program.module
    loader = getattr(module, "__loader__", None)
    spec = getattr(module, "__spec__", None)
    name = spec.name if spec is not None else "__main__"
    try:
        source = loader.get_source(name) if loader is not None else None
    except Exception:
        source = None
    if source is None:
        try:
            with open(program.code.co_filename, "rb") as f:
                source = f.read()
        except (IOError, OSError):
            return None
    return source


def decorates_with_bare_profile(source):
    """True when ``source`` decorates something with a ``profile`` it does not bind itself."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, TypeError):
        return False
    decorated = False
    for node in ast.walk(tree):
        for decorator in getattr(node, "decorator_list", ()):
            if isinstance(decorator, ast.Call):
                decorator = decorator.func
            if isinstance(decorator, ast.Name) and decorator.id == "profile":
                decorated = True
    return decorated and not _binds_profile(tree)


def _binds_profile(tree):
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((alias.asname or alias.name.split(".")[0]) == "profile" for alias in node.names):
                return True
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == "profile":
            return True
        elif isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == "profile" for t in node.targets):
                return True
    return False


class BareProfile(object):
    """The ``profile`` builtin of one command-line run."""

    def __init__(self, program, tracer_class, depth, code_filter):
        self.tracer_class = tracer_class
        self.depth = depth
        self.code_filter = code_filter
        source = source_of(program)
        #: Per-function mode from the start: the whole script is not traced.
        self.planned = source is not None and decorates_with_bare_profile(source)
        self.used = False  # the builtin was applied
        self.profiles = []
        self.previous = _MISSING

    @property
    def per_function(self):
        return self.planned or self.used

    def install(self):
        self.previous = getattr(_BUILTINS, "profile", _MISSING)
        _BUILTINS.profile = self

    def uninstall(self):
        if getattr(_BUILTINS, "profile", None) is self:
            if self.previous is _MISSING:
                del _BUILTINS.profile
            else:
                _BUILTINS.profile = self.previous
        self.previous = _MISSING

    def __call__(self, func=None, **ignored):
        """``@profile`` or ``@profile(...)`` (memory_profiler's arguments are ignored)."""
        if func is None:
            return lambda f: self(f)
        from mempulse._aggregate import Profile

        self.used = True
        name = getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))
        module = getattr(func, "__module__", None)
        if module and module != "__main__":
            name = "%s.%s" % (module, name)
        prof = Profile(self.depth, self.tracer_class, name=name)
        prof._names.code_filter = self.code_filter
        self.profiles.append(prof)
        return prof._wrap(func, steps_in=True)

    def finish(self, outcome):
        """Take the builtin out; in per-function mode, make the run's result the functions'.

        Returns ``outcome``.
        """
        self.uninstall()
        if not self.per_function or outcome.in_child:
            return outcome
        merged = None
        functions = []
        for prof in self.profiles:
            result = prof.result()
            if not result.metadata["calls"]:
                continue
            if merged is None:
                merged = TraceResult(metadata=result.metadata)
            merged.extend(result)
            functions.append({"name": prof.name, "calls": result.metadata["calls"], "rows": len(result)})
            prof.close()
        if merged is None:
            merged = TraceResult(metadata={"depth": self.depth})
        for key in ("name", "calls"):
            merged.metadata.pop(key, None)
        merged.metadata["functions"] = functions
        outcome.results[:] = [merged]
        return outcome


def table_text(result, format_rows):
    """The report's text: one titled table per function of a per-function run, else one.

    ``format_rows(part)`` formats one result (the command line's sorting and
    row selection apply to each table).
    """
    from mempulse._aggregate import title

    functions = result.metadata.get("functions")
    if functions is None:
        return format_rows(result)
    if not functions:
        return "mempulse: no function decorated with @profile was called\n"
    parts = []
    start = 0
    for function in functions:
        part = TraceResult(result[start:start + function["rows"]], result.metadata)
        start += function["rows"]
        part.metadata = dict(result.metadata, calls=function["calls"])
        parts.append(title(part, function["name"]) + format_rows(part))
    return "\n".join(parts)
