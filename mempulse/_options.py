"""The ``mempulse`` command line: its options, help text and how argv is split.

Three parsers: ``mempulse [options] script`` (the shorthand), ``mempulse
run`` and ``mempulse report FILE``.  For the first two, everything up to
the script (or ``-m module``) is mempulse's; the script and whatever
follows it belong to the program, even when they look like mempulse's
options.  Options are grouped by what they are about (``_add_*_options``);
a new group is one more function called from :func:`build_parser`.
"""
import argparse

from mempulse._sizes import parse_size

USAGE = "%(prog)s [options] script.py|appdir|app.pyz [args ...]\n       %(prog)s [options] -m module [args ...]"
RUN_USAGE = (
    "%(prog)s [options] script.py|appdir|app.pyz [args ...]\n       %(prog)s [options] -m module [args ...]"
)
REPORT_USAGE = "%(prog)s [options] FILE"

DESCRIPTION = """\
Run a Python program under mempulse's line-by-line memory tracer and print,
for each line it executed, what that line did to the process's memory.
The program runs as __main__ with its own arguments, as python runs it (a
script, a directory or zip file with a __main__.py, or -m module); its
output, exit status and exceptions are unchanged, and the report is written
when it ends, whether it returns, calls sys.exit() or os._exit(), raises or
is interrupted by Ctrl-C.

commands:
  %(prog)s run [options] script.py ...   the same, and save the result to a
                                         file to render later (-o FILE)
  %(prog)s report FILE [--format F]      render a saved result: table, html,
                                         json, csv or png
  (a script named run or report: %(prog)s run report, or %(prog)s ./report)
"""

RUN_DESCRIPTION = """\
Run a Python program under mempulse's line-by-line memory tracer, as
'mempulse script.py' does, and also save the result (the JSON of --json) to
a file that 'mempulse report FILE' renders later in any format: by default
mempulse-<script>-<pid>.json in the current directory (-o FILE to choose).
The table is printed to stderr as usual (--table FILE, or -q for none).
"""

REPORT_DESCRIPTION = """\
Render a result saved by 'mempulse run' (or --json, or mempulse.dump_json):
the table, an annotated-source HTML page, JSON, CSV or a picture.  The
format is --format, else guessed from -o's extension, else the table.
Source files are read now, from where the run found them.
"""

EPILOG = """\
examples:
  %(prog)s app.py --input data.csv        trace app.py's module-level lines
  %(prog)s --depth 2 --sort increment app.py
  %(prog)s --min-increment 1MiB -o report.txt --json run.json app.py
  %(prog)s --html report.html app.py      the annotated-source page as well
  %(prog)s -m http.server 8000            like python -m http.server 8000
  %(prog)s app.pyz                        a zipapp, like python app.pyz
  %(prog)s run -o app.json app.py         save the result, then:
  %(prog)s report app.json --format html -o app.html

sizes: a number with an optional unit, any case: K, M, G, T, KiB, MiB, GiB,
TiB are powers of 1024; KB, MB, GB, TB powers of 1000; B or none: bytes.

exit status: the program's own, also when a report cannot be written (that
is said in one line on stderr); Ctrl-C ends mempulse as it ends python
(after the report); 2 for bad mempulse options, a missing script or module,
or a sampler that cannot start (nothing is run then).  Only the process
that started the program reports: a forked child runs and exits as it would
without mempulse.
"""

RUN_EPILOG = """\
examples:
  %(prog)s app.py --input data.csv        saves mempulse-app-<pid>.json
  %(prog)s -o app.json --html app.html app.py
  %(prog)s -q -o app.json -m mypackage    no table, the result only
  %(prog)s report                         runs a script named report

sizes, exit status: as for mempulse (mempulse --help).
"""

REPORT_EPILOG = """\
examples:
  %(prog)s app.json                       the table, on stdout
  %(prog)s app.json --format html         app.html beside app.json
  %(prog)s app.json -o app.html           the format from the extension
  %(prog)s app.json --format png -o app.png
  %(prog)s app.json --sort increment --top 10 --min-increment 1MiB

exit status: 0; 2 for bad options or a FILE that is not a mempulse result
(not JSON, another format or version, truncated), or a format that needs a
missing package (html: pip install mempulse[html]; png: pip install
matplotlib).
"""

#: The formats of ``mempulse report --format``.
FORMATS = ("table", "html", "json", "csv", "png")

# Options that take a value; the first argument that is neither one of
# these nor an option's value is the script, and the rest are its own.
# Options added to build_run_parser must be added here too.
_VALUED = (
    "--depth", "--sampler", "--sort", "--min-increment", "--top", "--json", "--csv", "--plot",
    "--html", "--table", "--output", "-o", "-m", "--include", "--exclude",
)


class UsageError(Exception):
    """Bad command line: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _new_parser(prog, usage, description, epilog):
    return _Parser(
        prog=prog,
        usage=usage,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser(prog, shorthand=True):
    """The parser of ``mempulse [options] script`` (``shorthand``) or ``mempulse run``.

    They differ in one option only: in the shorthand ``-o`` is the table's
    file (as in mempulse 1.0), in ``run`` it is the saved result's.
    """
    if shorthand:
        parser = _new_parser(prog, USAGE, DESCRIPTION, EPILOG)
    else:
        parser = _new_parser(prog, RUN_USAGE, RUN_DESCRIPTION, RUN_EPILOG)
    _add_program_arguments(parser)
    _add_tracing_options(parser)
    # A new group of options is one more _add_*_options function called
    # here; valued ones go in _VALUED too.
    _add_filter_options(parser)
    _add_table_options(parser)
    _add_output_options(parser, shorthand)
    return parser


def _add_program_arguments(parser):
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


def _add_tracing_options(parser):
    """What is traced and how it is measured."""
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


def _add_table_options(parser):
    """--sort, --min-increment, --top: the rows of the table (and the HTML's top lists)."""
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
        "--top",
        type=_positive_int,
        metavar="N",
        help="show only the first N rows of the table (after --sort), and N "
        "lines in the HTML summary's top lists (default 10); e.g. --top 20",
    )


def _add_output_options(parser, shorthand):
    """Where the reports go."""
    if shorthand:
        parser.add_argument(
            "-o",
            "--output",
            metavar="FILE",
            help="write the table to FILE instead of stderr ('-' for stdout); e.g. -o report.txt",
        )
    else:
        parser.add_argument(
            "-o",
            "--output",
            metavar="FILE",
            help="save the result (JSON, for mempulse report) to FILE; default "
            "mempulse-<script>-<pid>.json here; e.g. -o run.json",
        )
        parser.add_argument(
            "--table",
            metavar="FILE",
            help="write the table to FILE instead of stderr ('-' for stdout); e.g. --table report.txt",
        )
        parser.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            help="no table on stderr (the result is still saved; errors are still said)",
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
        "--html",
        metavar="FILE",
        help="also write the annotated-source HTML report (needs pip install "
        "mempulse[html]); e.g. --html report.html",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="also draw increments and peaks per line, and memory over time, "
        "to an image (needs pip install matplotlib); e.g. --plot memory.png",
    )


def build_report_parser(prog):
    """The parser of ``mempulse report FILE``."""
    parser = _new_parser(prog, REPORT_USAGE, REPORT_DESCRIPTION, REPORT_EPILOG)
    parser.add_argument(
        "file", metavar="FILE", nargs="?", help="a saved result (mempulse run -o FILE, or --json FILE)"
    )
    parser.add_argument(
        "-f",
        "--format",
        choices=FORMATS,
        help="table (default), html (annotated source; pip install mempulse[html]), "
        "json, csv, or png (a picture; .svg, .pdf by -o's extension; pip install "
        "matplotlib); e.g. --format html",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="where to write it ('-' for stdout); default stdout, or for html and png "
        "FILE with its extension replaced; e.g. -o report.html",
    )
    _add_table_options(parser)
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


def parse_command_line(argv, prog="mempulse", shorthand=True):
    """The parsed options of ``mempulse`` (``shorthand``) or ``mempulse run``;
    raises UsageError (exit 2) for bad ones.

    ``--version`` needs no script: ``version`` is then True.
    """
    parser = build_parser(prog, shorthand)
    options, script, module, args = split_command_line(argv)
    namespace = parser.parse_args(options)
    namespace.script, namespace.module, namespace.args = script, module, args
    if script is None and module is None and not namespace.version:
        raise UsageError("no script given: %s" % USAGE.split("\n")[0].replace("%(prog)s", prog))
    return namespace


def parse_report_command_line(argv, prog="mempulse report"):
    """The parsed options of ``mempulse report``; raises UsageError for bad ones."""
    options = build_report_parser(prog).parse_args(argv)
    if options.file is None:  # said the same way by every Python's argparse
        raise UsageError("no FILE given: %s" % REPORT_USAGE.replace("%(prog)s", prog))
    return options


def _add_filter_options(parser):
    """Which code is recorded (:mod:`mempulse._filters`)."""
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

