"""``mempulse report FILE [--format table|html|json|csv|png] [-o OUT]``: render a saved result.

FILE is what ``mempulse run`` saves (the JSON of ``--json`` and
:func:`mempulse.dump_json`).  A file that is not such a result, a format
whose package is missing or an output that cannot be written is one line
on stderr and exit status 2, before anything is written.
"""
import errno
import os
import sys

from mempulse import reporters
from mempulse._export import load_json
from mempulse._options import UsageError, parse_report_command_line
from mempulse.commands._common import check_writable, one_line, say, usage_error

#: Where html and png go without -o: FILE with this extension instead of its own.
_DEFAULT_EXTENSION = {"html": ".html", "png": ".png"}


def load_result(path):
    """The result saved in ``path``; UsageError saying why it cannot be read."""
    try:
        with open(path, "rb") as fp:
            return load_json(fp)
    except (IOError, OSError) as e:
        raise UsageError("cannot read %r: %s" % (path, getattr(e, "strerror", None) or e))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        hint = ""
        if os.path.isfile("report"):
            hint = " (to run the script named report: mempulse run report ...)"
        raise UsageError("cannot read %r: %s%s" % (path, one_line(e), hint))


def choose_output(options):
    """``(format, target)``: --format, else -o's extension, else the table; stdout by default."""
    fmt = options.format or reporters.guess_format(options.output) or "table"
    target = options.output
    if target is None:
        extension = _DEFAULT_EXTENSION.get(fmt)
        if extension is None:
            return fmt, "-"
        stem = os.path.splitext(options.file)[0]
        target = stem + extension if stem + extension != options.file else options.file + extension
    return fmt, target


def main(argv, prog="mempulse report"):
    """``mempulse report``; returns the exit status (0, 1 if writing failed, 2 for bad input)."""
    try:
        options = parse_report_command_line(argv, prog)
        fmt, target = choose_output(options)
        target = check_writable(target, "the %s report" % fmt)
        reporters.check(fmt, target)
        result = load_result(options.file)
    except (UsageError, ImportError, ValueError) as e:
        return usage_error(prog, e)
    try:
        reporters.write(result, fmt, target, sort=options.sort, min_increment=options.min_increment,
                        top=options.top)
    except Exception as e:
        if target == "-" and getattr(e, "errno", None) == errno.EPIPE:
            # The reader went away (| head): end quietly, as the docs of
            # signal advise, with stdout pointed where a late flush cannot fail.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        say(prog, "cannot write %s: %s" % ("stdout" if target == "-" else repr(target), one_line(e)))
        return 1
    if options.output is None and target != "-":
        say(prog, "wrote %s" % (os.path.relpath(target),), kind="")
    return 0
