"""``mempulse run [options] script.py [args ...]``, and its shorthand ``mempulse script.py``.

The program runs as ``__main__`` exactly as ``python script.py`` (or
``python appdir``, ``python app.pyz``, ``python -m module``) would run it:
its ``sys.argv``, ``sys.path[0]``, ``__file__``, output, exit status and
uncaught exceptions are the same; the reports are written when it ends,
however it ends (``os._exit()`` and Ctrl-C included), by the process that
started it only.

``run`` also saves the result (``-o FILE``, by default
``mempulse-<script>-<pid>.json`` here) for ``mempulse report``; the
shorthand keeps mempulse 1.0's meaning of ``-o`` (the table's file) and
saves only what ``--json`` asks for, so a bare ``mempulse script.py``
leaves no file behind.  Both print the table to stderr and write the other
views asked for (``--json``, ``--csv``, ``--html``, ``--plot``).
"""
import os
import sys

from mempulse import _bare, _filters, _own_call, _tracer, reporters
from mempulse._options import UsageError, parse_command_line
from mempulse._program import CannotRun, load_module, load_path
from mempulse.commands._common import check_writable, one_line, say, usage_error
from mempulse.commands.tracing import exit_status, raise_shown, trace_program


def choose_tracer(sampler):
    """The tracer class for --sampler (None: the C sampler where it works)."""
    if sampler is None:
        return _own_call.default_tracer_class()
    return _tracer.cMemoryUsageTracer if sampler == "c" else _tracer.MemoryUsageTracer


def default_result_name(options):
    """``mempulse-<script>-<pid>.json``: the program's name without its extension."""
    if options.module is not None:
        name = options.module
    else:
        name = os.path.basename(os.path.normpath(options.script)) or "program"
        stem, extension = os.path.splitext(name)
        name = stem if extension.lower() in (".py", ".pyw", ".pyz", ".pyc") and stem else name
    return "mempulse-%s-%d.json" % (name, os.getpid())


def outputs_of(options, shorthand):
    """``[(format, target, what)]``: every view to write, in the order written.

    ``target``: an absolute path, ``"-"`` (stdout) or a stream (the table's
    default, stderr); ``what`` names it in messages (for the saved result:
    its path as typed).  Raises UsageError for a path that cannot be written
    and ImportError for a view whose package is missing.
    """
    table = options.output if shorthand else options.table
    outputs = []
    if shorthand or not options.quiet or options.table is not None:
        outputs.append(("table", check_writable(table, "the table") or sys.stderr, "the table"))
    if not shorthand:
        saved = options.output or default_result_name(options)
        # Named as typed (or relative to here) when said after the run: the
        # program may have changed directory by then.
        outputs.append(("saved", check_writable(saved, "the result"), saved))
    for fmt, name, what in (("json", "json", "JSON"), ("csv", "csv", "CSV"), ("html", "html", "the HTML report"),
                            ("png", "plot", "the plot")):
        target = check_writable(getattr(options, name), what)
        if target is not None:
            reporters.check(fmt, target)
            outputs.append((fmt, target, what))
    return outputs


def write_reports(prog, options, outputs, result):
    """Write every view of ``result``; say in one line each one that fails (never raises)."""
    for fmt, target, what in outputs:
        try:
            reporters.write(
                result, "json" if fmt == "saved" else fmt, target,
                sort=options.sort, min_increment=options.min_increment, top=options.top,
            )
        except Exception as e:
            if hasattr(target, "write") or target == "-":
                stream = getattr(target, "name", "its stream") if target != "-" else "<stdout>"
                name = "%s to %s" % ("the result" if fmt == "saved" else what, stream)
            else:
                name = repr(target)
            say(prog, "cannot write %s: %s" % (name, one_line(e)))
            continue
        if fmt == "saved" and target != "-":
            say(prog, "result saved to %s (render it: mempulse report %s --format html)" % (what, what), kind="")


def _report(prog, options, outputs, outcome):
    """Write the reports of ``outcome``, or say in one line why there are none."""
    result = outcome.result
    if result is None:
        if outcome.error is not None:
            say(prog, "no report: tracing failed: %s" % (one_line(outcome.error),))
        return
    result.metadata["command"] = list(outcome.command)
    write_reports(prog, options, outputs, result)


def main(argv, prog="mempulse run", shorthand=False):
    """``mempulse run`` (or, with ``shorthand``, ``mempulse``); returns the exit status.

    When the program was interrupted by Ctrl-C, raises its KeyboardInterrupt
    again after the report (see :func:`mempulse.commands.tracing.raise_shown`).
    """
    try:
        options = parse_command_line(argv, prog, shorthand)
        if options.version:
            import mempulse

            sys.stdout.write("mempulse %s\n" % mempulse.__version__)
            return 0
        outputs = outputs_of(options, shorthand)
        tracer_class = choose_tracer(options.sampler)
        # Constructing it checks the sampler (psutil installed, /proc readable).
        tracer_class(lambda result: None, options.depth)
        if options.module is not None:
            program = load_module(options.module)
        else:
            program = load_path(options.script)
        program.argv.extend(options.args)
        code_filter = _filters.for_command_line(options, program)
    except (UsageError, CannotRun, ImportError, OSError, ValueError) as e:
        return usage_error(prog, e)
    except SyntaxError:
        exc_type, exc_value = sys.exc_info()[:2]
        sys.excepthook(exc_type, exc_value, None)
        return 1

    # A bare @profile in builtins; per-function mode traces no whole script (depth 0).
    bare = _bare.BareProfile(program, tracer_class, options.depth, code_filter)
    bare.install()
    outcome = trace_program(
        program, tracer_class, 0 if bare.planned else options.depth,
        at_os_exit=lambda o: _report(prog, options, outputs, bare.finish(o)), code_filter=code_filter,
    )
    bare.finish(outcome)
    try:
        if not outcome.ran and outcome.failure is None:
            return usage_error(prog, "cannot start tracing: %s" % one_line(outcome.error))
        status = exit_status(outcome.failure)
        if not outcome.in_child:
            _report(prog, options, outputs, outcome)
    finally:
        outcome.interrupts.uninstall()
    if outcome.failure is not None and issubclass(outcome.failure[0], KeyboardInterrupt):
        raise_shown(outcome.failure[1])
    if outcome.interrupts.interrupted:  # Ctrl-C after the program's last line
        sys.stderr.write("KeyboardInterrupt\n")
        raise_shown(KeyboardInterrupt())
    return status
