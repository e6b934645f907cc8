"""The ``mempulse`` command line: its options, help text and how argv is split.

Everything up to the script (or ``-m module``) is mempulse's; the script
and whatever follows it belong to the program, even when they look like
mempulse's options.
"""
import argparse

from mempulse._sizes import parse_size

USAGE = "%(prog)s [options] script.py|appdir|app.pyz [args ...]\n       %(prog)s [options] -m module [args ...]"

DESCRIPTION = """\
Run a Python program under mempulse's line-by-line memory tracer and print,
for each line it executed, what that line did to the process's memory.
The program runs as __main__ with its own arguments, as python runs it (a
script, a directory or zip file with a __main__.py, or -m module); its
output, exit status and exceptions are unchanged, and the report is written
when it ends, whether it returns, calls sys.exit() or os._exit(), raises or
is interrupted by Ctrl-C.
"""

EPILOG = """\
examples:
  %(prog)s app.py --input data.csv        trace app.py's module-level lines
  %(prog)s --depth 2 --sort increment app.py
  %(prog)s --min-increment 1MiB -o report.txt --json run.json app.py
  %(prog)s -m http.server 8000            like python -m http.server 8000
  %(prog)s app.pyz                        a zipapp, like python app.pyz

sizes: a number with an optional unit, any case: K, M, G, T, KiB, MiB, GiB,
TiB are powers of 1024; KB, MB, GB, TB powers of 1000; B or none: bytes.

exit status: the program's own, also when a report cannot be written (that
is said in one line on stderr); Ctrl-C ends mempulse as it ends python
(after the report); 2 for bad mempulse options, a missing script or module,
or a sampler that cannot start (nothing is run then).  Only the process
that started the program reports: a forked child runs and exits as it would
without mempulse.
"""

# Options that take a value; the first argument that is neither one of
# these nor an option's value is the script, and the rest are its own.
_VALUED = (
    "--depth", "--sampler", "--sort", "--min-increment", "--json", "--csv", "--plot", "--output", "-o", "-m",
    "--include", "--exclude",
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
        help="the program to run, as with python script.py (or a directory or "
        "zip file with a __main__.py); its arguments follow it",
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
        "--version",
        action="store_true",
        help="print mempulse's version (mempulse X.Y.Z) and exit",
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
        "psutil); e.g. --sampler psutil",
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
        "pip install matplotlib); e.g. --plot memory.png",
    )
    # -- which code is recorded (mempulse._filters) --
    parser.add_argument(
        "--include",
        action="append",
        metavar="GLOB",
        help="also record code matching GLOB: a module name (requests, myapp.*; "
        "a package includes its submodules) or a file path (src/, */vendor/*.py); "
        "repeatable.  By default only the program's own code is recorded (not "
        "the standard library or installed packages); e.g. --include requests",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        metavar="GLOB",
        help="never record code matching GLOB (same forms as --include); "
        "repeatable; e.g. --exclude myapp.vendor",
    )
    parser.add_argument(
        "--all-code",
        action="store_true",
        help="record the standard library and installed packages too (then "
        "--include, if given, records only what it matches)",
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
    """The parsed options; raises UsageError (exit 2) for bad ones.

    ``--version`` needs no script: ``version`` is then True.
    """
    parser = build_parser(prog)
    options, script, module, args = split_command_line(argv)
    namespace = parser.parse_args(options)
    namespace.script, namespace.module, namespace.args = script, module, args
    if script is None and module is None and not namespace.version:
        raise UsageError("no script given: %s" % USAGE.split("\n")[0].replace("%(prog)s", prog))
    return namespace
