"""``python -m mempulse script.py``: run a program under the tracer, report its lines.

The program runs as ``__main__`` exactly as ``python script.py`` (or
``python -m module``) would run it: its ``sys.argv``, ``sys.path[0]``,
``__file__``, exit status and uncaught exceptions are the same; the report
is written when it ends, however it ends.
"""
import argparse
import os
import sys
import types

from mempulse import _tracer
from mempulse._export import dump_csv, dump_json
from mempulse._report import format_trace_result
from mempulse._result import TraceResult
from mempulse._sizes import parse_size

USAGE = "%(prog)s [options] script.py [args ...]\n       %(prog)s [options] -m module [args ...]"

DESCRIPTION = """\
Run a Python program under mempulse's line-by-line memory tracer and print,
for each line it executed, what that line did to the process's memory.
The program runs as __main__ with its own arguments; its output, exit status
and exceptions are unchanged, and the report is written when it ends,
whether it returns, calls sys.exit() or raises.
"""

EPILOG = """\
examples:
  %(prog)s app.py --input data.csv        trace app.py's module-level lines
  %(prog)s --depth 2 --sort increment app.py
  %(prog)s --min-increment 1MiB -o report.txt --json run.json app.py
  %(prog)s -m http.server 8000            like python -m http.server 8000

sizes: a number with an optional unit, any case: K, M, G, T, KiB, MiB, GiB,
TiB are powers of 1024; KB, MB, GB, TB powers of 1000; B or none: bytes.
Exit status: the program's own; 2 for bad mempulse options, a missing
script or module (nothing is run then).
"""

# Options that take a value; the first argument that is neither one of
# these nor an option's value is the script, and the rest are its own.
_VALUED = (
    "--depth", "--sampler", "--sort", "--min-increment", "--json", "--csv", "--plot", "--output", "-o", "-m"
)


class UsageError(Exception):
    """Bad command line: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def build_parser(prog):
    parser = _Parser(
        prog=prog,
        usage=USAGE,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "script",
        nargs="?",
        help="the program to run, as with python script.py; its arguments follow it",
    )
    parser.add_argument("args", nargs="*", help="the program's own arguments (sys.argv[1:])")
    parser.add_argument(
        "-m",
        dest="module",
        metavar="module",
        help="run a module as python -m does, e.g. -m json.tool data.json; "
        "a package runs its __main__",
    )
    parser.add_argument(
        "--depth",
        type=_positive_int,
        default=1,
        metavar="N",
        help="levels to trace: 1 (default) records the program's module-level "
        "lines, 2 also the lines of the functions they call, and so on; "
        "e.g. --depth 3",
    )
    parser.add_argument(
        "--sampler",
        choices=("c", "psutil"),
        help="where memory readings come from: c reads Linux /proc from C "
        "(the default where it works), psutil is portable (pip install "
        "mempulse[psutil]); e.g. --sampler psutil",
    )
    parser.add_argument(
        "--sort",
        choices=("order", "increment", "peak"),
        default="order",
        help="row order of the table: order of first execution (default), "
        "increment (largest growth first) or peak (highest peak RSS first); "
        "e.g. --sort increment",
    )
    parser.add_argument(
        "--min-increment",
        type=_size,
        default=0,
        metavar="SIZE",
        help="show only lines whose increment is at least SIZE either way "
        "(growth or release) in the table; e.g. --min-increment 512K, 10MB, 1GiB",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the table to FILE instead of stderr ('-' for stdout); e.g. -o report.txt",
    )
    parser.add_argument(
        "--json",
        metavar="FILE",
        help="also write every line and the run's metadata as JSON (read it back "
        "with mempulse.load_json); e.g. --json run.json",
    )
    parser.add_argument(
        "--csv",
        metavar="FILE",
        help="also write every line as CSV, one row per line with the run's "
        "metadata in each; e.g. --csv run.csv",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="also draw increments and peaks per line to an image (needs "
        "pip install mempulse[plot]); e.g. --plot memory.png",
    )
    return parser


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer, got %r" % (text,))
    return value


def _size(text):
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def split_command_line(argv):
    """(mempulse's options, script or None, module or None, the program's arguments)."""
    options = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return options, _at(argv, i + 1), None, argv[i + 2:]
        if arg == "-m" or (arg.startswith("-m") and not arg.startswith("--")):
            module = arg[2:] or _at(argv, i + 1)
            if module is None:
                raise UsageError("argument -m: expected a module name")
            return options, None, module, argv[i + (1 if arg[2:] else 2):]
        if not arg.startswith("-") or arg == "-":
            return options, arg, None, argv[i + 1:]
        options.append(arg)
        if _takes_value(arg) and i + 1 < len(argv):
            options.append(argv[i + 1])
            i += 1
        i += 1
    return options, None, None, []


def _at(argv, i):
    return argv[i] if i < len(argv) else None


def _takes_value(arg):
    if "=" in arg:
        return False
    if arg.startswith("--"):
        # argparse accepts unique prefixes (--dep 2): resolve them the same way.
        matches = [o for o in _VALUED if o.startswith(arg) and o.startswith("--")]
        return arg in _VALUED or len(matches) == 1
    return arg in ("-o",)  # -oFILE carries its value


def parse_command_line(argv, prog="mempulse"):
    """The parsed options; raises UsageError (exit 2) for bad ones."""
    parser = build_parser(prog)
    options, script, module, args = split_command_line(argv)
    namespace = parser.parse_args(options)
    namespace.script, namespace.module, namespace.args = script, module, args
    if script is None and module is None:
        raise UsageError("no script given: %s" % USAGE.split("\n")[0].replace("%(prog)s", prog))
    return namespace


# ---- the program ---------------------------------------------------------------


class _Program(object):
    """What to run: a code object, the __main__ module to run it in, argv, path[0]."""

    def __init__(self, code, module, argv, path0):
        self.code, self.module, self.argv, self.path0 = code, module, argv, path0


def _new_main(attributes):
    main = types.ModuleType("__main__")
    main.__dict__.update(attributes)
    main.__builtins__ = sys.modules["builtins" if sys.version_info[0] > 2 else "__builtin__"]
    return main


def load_script(path):
    """The program of ``python path``; UsageError if it cannot be read."""
    try:
        with open(path, "rb") as f:
            source = f.read()
    except (IOError, OSError) as e:
        raise UsageError("cannot run %r: %s" % (path, e.strerror or e))
    # compile() honours a coding declaration in bytes and, with
    # dont_inherit, none of this module's __future__ flags.  A SyntaxError
    # is the program's own error: reported as Python would, exit status 1.
    # Python 3.9+ gives __main__ an absolute __file__ and code filename
    # (argv[0] stays as typed).
    filename = os.path.abspath(path) if sys.version_info >= (3, 9) else path
    code = compile(source, filename, "exec", 0, True)
    attributes = {"__name__": "__main__", "__file__": filename, "__package__": None}
    if sys.version_info[0] > 2:
        from importlib.machinery import SourceFileLoader

        # As Python 3 sets them for a script (linecache and inspect use the loader).
        attributes.update(
            __spec__=None, __cached__=None, __loader__=SourceFileLoader("__main__", filename)
        )
    main = _new_main(attributes)
    return _Program(code, main, [path], os.path.dirname(os.path.realpath(path)))


def load_module(name):
    """The program of ``python -m name``, found without running it.

    runpy would run the module through its own functions, whose frames
    would count as levels between mempulse and the module; instead the
    module's code object is looked up here (which imports its parent
    packages, as ``python -m`` does) and run in mempulse's own frame.
    """
    # python -m puts the current directory first ('' up to 3.6, absolute
    # later), before looking the module up.
    path0 = os.getcwd() if sys.version_info >= (3, 7) else ""
    _set_path0(path0)
    try:
        if sys.version_info[0] > 2:
            code, attributes = _module_code_py3(name)
        else:
            code, attributes = _module_code_py2(name)
    except ImportError as e:
        raise UsageError("cannot run module %r: %s" % (name, e))
    return _Program(code, _new_main(attributes), [attributes["__file__"]], path0)


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
    attributes = {
        "__name__": "__main__",
        "__file__": spec.origin,
        "__cached__": spec.cached,
        "__package__": spec.parent,
        "__loader__": spec.loader,
        "__spec__": spec,
    }
    return code, attributes


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


# ---- running and reporting -------------------------------------------------------


def choose_tracer(sampler):
    """The tracer class for --sampler (None: the C sampler where it works)."""
    from mempulse._profile import _default_tracer_class

    if sampler is None:
        return _default_tracer_class()
    return _tracer.cMemoryUsageTracer if sampler == "c" else _tracer.MemoryUsageTracer


def _check_writable(path, what):
    if path is None or path == "-":
        return path
    path = os.path.abspath(path)  # the program may chdir
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise UsageError("cannot write %s to %r: no such directory" % (what, path))
    if os.path.isdir(path) or not os.access(directory, os.W_OK):
        raise UsageError("cannot write %s to %r" % (what, path))
    return path


def _set_path0(path0):
    if sys.path:
        sys.path[0] = path0
    else:
        sys.path.insert(0, path0)


# Replaced __main__ modules stay referenced: on Python 2, freeing a module
# empties its globals, and the one replaced may be running mempulse's caller.
_replaced_mains = []


def trace_program(program, tracer_class, depth):
    """Run ``program`` as __main__ under a tracer; returns (result, exc_info or None).

    ``sys.argv``, ``sys.path[0]`` and ``sys.modules["__main__"]`` become the
    program's and stay so, as with ``python script.py``: atexit handlers and
    threads still running after the program see what they would see
    without mempulse.
    """
    results = []
    tracer = tracer_class(results.append, depth)
    tracer._record_caller = False
    sys.argv[:] = program.argv
    _set_path0(program.path0)
    _replaced_mains.append(sys.modules.get("__main__"))
    sys.modules["__main__"] = program.module
    failure = None
    try:
        with tracer:
            # The tracer's caller (this frame) is mempulse's own: not
            # recorded and not a level, so the program's module-level lines
            # are level 1 (exec's frame has this one as its parent).
            exec(program.code, program.module.__dict__)
    except BaseException:
        failure = sys.exc_info()
    if not results:  # the tracer itself failed (its exception is the failure)
        raise failure[1]
    result = results[0]
    result.metadata["command"] = list(program.argv)
    return result, failure


def select_rows(result, sort, min_increment):
    """The table's rows: filtered by |increment| >= min_increment, then sorted."""
    rows = [r for r in result if abs(r.increment or 0) >= min_increment]
    if sort == "increment":
        rows.sort(key=lambda r: -(r.increment or 0))
    elif sort == "peak":
        rows.sort(key=lambda r: -(r.peak_rss if r.peak_rss is not None else -1))
    return TraceResult(rows, result.metadata)


def _open_write(path, csv=False):
    if csv:
        if sys.version_info[0] == 2:
            return open(path, "wb")
        return open(path, "w", newline="")
    return open(path, "w")


def write_reports(options, result):
    """Write the table and the files asked for; returns the error messages."""
    errors = []
    table = format_trace_result(select_rows(result, options.sort, options.min_increment))
    outputs = [
        (options.output, lambda fp: fp.write(table), False),
        (options.json, lambda fp: dump_json(result, fp), False),
        (options.csv, lambda fp: dump_csv(result, fp), True),
    ]
    if options.output is None:
        sys.stderr.write(table)
        sys.stderr.flush()
    for path, write, is_csv in outputs:
        if path is None:
            continue
        try:
            if path == "-":
                write(sys.stdout)
                sys.stdout.flush()
            else:
                with _open_write(path, is_csv) as fp:
                    write(fp)
        except (IOError, OSError) as e:
            errors.append("cannot write %r: %s" % (path, e))
    if options.plot is not None:
        from mempulse._plot import plot

        try:
            plot(result, options.plot)
        except (ImportError, IOError, OSError, ValueError) as e:
            errors.append("cannot write %r: %s" % (options.plot, e))
    return errors


def _strip_own_frames(tb):
    """The traceback from the program's first frame on, as Python would show it."""
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_tracer._PACKAGE_DIR):
        tb = tb.tb_next
    return tb


def _exit_status(failure):
    """The status Python would exit with after ``failure``, printing what it prints."""
    if failure is None:
        return 0
    exc_type, exc_value, tb = failure
    if issubclass(exc_type, SystemExit):
        # What the interpreter does with it, done here so that the message
        # comes before the report, as a traceback does.
        code = exc_value.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        sys.stderr.write("%s\n" % (code,))
        return 1
    tb = _strip_own_frames(tb)
    if hasattr(exc_value, "with_traceback"):
        # Python 3's default hook prints the exception's own __traceback__.
        exc_value = exc_value.with_traceback(tb)
    sys.excepthook(exc_type, exc_value, tb)
    return 130 if issubclass(exc_type, KeyboardInterrupt) else 1


def main(argv=None, prog="mempulse"):
    """Entry point of ``mempulse`` and ``python -m mempulse``; returns the exit status."""
    if argv is None:
        argv = sys.argv[1:]
    try:
        options = parse_command_line(argv, prog)
        for name, what in (("output", "the table"), ("json", "JSON"), ("csv", "CSV"), ("plot", "the plot")):
            setattr(options, name, _check_writable(getattr(options, name), what))
        if options.plot is not None:
            from mempulse._plot import check_plot_path

            check_plot_path(options.plot)
        tracer_class = choose_tracer(options.sampler)
        # Constructing it checks the sampler (psutil installed, /proc readable).
        tracer_class(lambda result: None, options.depth)
        if options.module is not None:
            program = load_module(options.module)
        else:
            program = load_script(options.script)
        program.argv.extend(options.args)
    except UsageError as e:
        return _usage_error(prog, e)
    except (ImportError, OSError, ValueError) as e:
        return _usage_error(prog, e)
    except SyntaxError:
        exc_type, exc_value = sys.exc_info()[:2]
        sys.excepthook(exc_type, exc_value, None)
        return 1

    result, failure = trace_program(program, tracer_class, options.depth)
    status = _exit_status(failure)
    errors = write_reports(options, result)
    for message in errors:
        sys.stderr.write("%s: error: %s\n" % (prog, message))
    return 1 if errors and status == 0 else status


def _usage_error(prog, error):
    message = str(error).strip().replace("\n", " ")
    sys.stderr.write("%s: error: %s\n" % (prog, message))
    return 2
