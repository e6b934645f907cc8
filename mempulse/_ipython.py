"""IPython/Jupyter magics: ``%mempulse stmt`` and ``%%mempulse``.

Load with ``%load_ext mempulse``; both print the line-by-line table of the
code they run (the statement or the cell body is level 1).
"""
import __future__
import itertools
import linecache
import re
import sys

from IPython.core.error import UsageError

from mempulse._own_call import tracer_for_call
from mempulse._report import format_trace_result

# Only these leading options are read; whatever follows is the code, so a
# statement may itself contain dashes.
_DEPTH = re.compile(r"\s*(?:-d|--depth)(?=[\s=\d]|$)\s*=?\s*(\S*)(.*)$", re.DOTALL)

_counter = itertools.count(1)

# __future__ statements of the session (Python 2's division, say) apply to
# the magic's code too, as they do to the cells.
_FUTURE_FLAGS = 0
for _name in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _name).compiler_flag


def _parse(line):
    """(depth, code) from the magic's line: ``[-d N | --depth N] [code]``."""
    match = _DEPTH.match(line)
    if match is None:
        return 1, line
    depth_text, code = match.groups()
    depth = int(depth_text) if depth_text.isdigit() else 0
    if depth < 1:
        raise UsageError("%%mempulse: -d needs a depth of 1 or more, got '%s'" % depth_text)
    return depth, code


def _register(source):
    """A name of its own for the code ("<mempulse-3>"), known to linecache.

    So tracebacks show the code's lines, and the table tells it from cells.
    """
    name = "<mempulse-%d>" % next(_counter)
    lines = [line + "\n" for line in source.splitlines()]
    linecache.cache[name] = (len(source), None, lines, name)  # mtime None: kept
    return name


def _compile(shell, source, name, mode):
    flags = getattr(shell.compile, "flags", 0) & _FUTURE_FLAGS
    return compile(source, name, mode, flags, True)


def _write_table(result):
    sys.stdout.write(format_trace_result(result))


def _run(shell, line, cell):
    depth, code = _parse(line)
    if cell is not None:
        if code.strip():
            raise UsageError("%%%%mempulse takes only -d N on its line, got '%s'" % code.strip())
        source, mode = cell, "exec"
    else:
        if not code.strip():
            raise UsageError("%mempulse needs a statement, e.g. %mempulse data = load()")
        source, mode = code.strip(), "eval"
    name = _register(source)
    try:
        # An expression's value is the line magic's result, as for %time.
        compiled = _compile(shell, source, name, mode)
    except SyntaxError:
        if mode != "eval":
            raise
        mode = "exec"
        compiled = _compile(shell, source, name, mode)
    tracer = tracer_for_call(_write_table, depth, steps_aside=True)
    if tracer is None:
        raise UsageError("%mempulse: a mempulse tracer is already active on this thread")
    # Looked up before tracing: they are properties, i.e. IPython's code.
    global_ns, local_ns = shell.user_global_ns, shell.user_ns
    # The user's code is called from this frame (mempulse's own, transparent
    # to the tracer), so its lines are level 1.
    with tracer:
        if mode == "eval":
            return eval(compiled, global_ns, local_ns)
        exec(compiled, global_ns, local_ns)
    return None


def load_ipython_extension(ipython):
    """Register ``%mempulse`` / ``%%mempulse`` on the IPython shell ``ipython``."""

    def mempulse(line, cell=None):
        """Trace memory line by line and print mempulse's table.

        %mempulse [-d N] statement
        %%mempulse [-d N]   (cell magic: traces the cell's body)

        The code runs in the user namespace; -d N also records the lines of
        the functions it calls, N-1 levels down (default 1: its own lines).
        Example::

            %mempulse data = [bytes(1000) for _ in range(100000)]
        """
        return _run(ipython, line, cell)

    ipython.register_magic_function(mempulse, magic_kind="line_cell", magic_name="mempulse")
