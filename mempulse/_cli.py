"""``python -m mempulse script.py``: run a program under the tracer, report its lines.

The program runs as ``__main__`` exactly as ``python script.py`` (or
``python appdir``, ``python app.pyz``, ``python -m module``) would run it:
its ``sys.argv``, ``sys.path[0]``, ``__file__``, output, exit status and
uncaught exceptions are the same; the report is written when it ends,
however it ends (``os._exit()`` and Ctrl-C included), by the process that
started it only.  The options are in :mod:`mempulse._options`, finding the
program in :mod:`mempulse._program`.
"""
import os
import sys
import threading

from mempulse import _bare, _filters, _own_call, _tracer
from mempulse._export import dump_csv, dump_json
from mempulse._interrupts import Interrupts
from mempulse._options import UsageError, parse_command_line
from mempulse._program import CannotRun, load_module, load_path, set_path0
from mempulse._report import format_trace_result
from mempulse._result import TraceResult


def choose_tracer(sampler):
    """The tracer class for --sampler (None: the C sampler where it works)."""
    if sampler is None:
        return _own_call.default_tracer_class()
    return _tracer.cMemoryUsageTracer if sampler == "c" else _tracer.MemoryUsageTracer


def _check_writable(path, what):
    if path is None or path == "-":
        return path
    path = os.path.abspath(path)  # the program may chdir
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise UsageError("cannot write %s to %r: no such directory" % (what, path))
    # An existing file (/dev/stdout, say) may be writable in a directory that is not.
    target = path if os.path.exists(path) else directory
    if os.path.isdir(path) or not os.access(target, os.W_OK):
        raise UsageError("cannot write %s to %r" % (what, path))
    return path


# ---- running -------------------------------------------------------------------------


class Outcome(object):
    """How a traced run ended.

    ``ran``: the trace started and the program with it; ``failure``: the
    program's own exception as ``sys.exc_info()``, None if it returned;
    ``error``: mempulse's own exception (a tracer that failed), kept out
    of the program's way; ``result``: the trace's result, None without one;
    ``interrupts``: the run's SIGINT handler (see :mod:`mempulse._interrupts`),
    still installed: the caller uninstalls it when done.
    """

    def __init__(self, command):
        self.command = list(command)
        self.pid = os.getpid()
        self.results = []
        self.ran = False
        self.failure = None
        self.error = None
        self.interrupts = Interrupts()

    @property
    def result(self):
        return self.results[0] if self.results else None

    @property
    def in_child(self):
        """True in a process the program forked: only the starting one reports."""
        return os.getpid() != self.pid


# Replaced __main__ modules stay referenced: on Python 2, freeing a module
# empties its globals, and the one replaced may be running mempulse's caller.
_replaced_mains = []


def trace_program(program, tracer_class, depth, at_os_exit=None, code_filter=None):
    """Run ``program`` as __main__ under a tracer; returns its :class:`Outcome`.

    ``sys.argv``, ``sys.path[0]`` and ``sys.modules["__main__"]`` become the
    program's and stay so, as with ``python script.py``: atexit handlers and
    threads still running after the program see what they would see
    without mempulse.  While it runs, ``os._exit()`` called by the program
    in this process and thread ends the trace and calls
    ``at_os_exit(outcome)`` before exiting (the report would be lost).
    ``code_filter``: which code is recorded (see :mod:`mempulse._filters`).
    """
    outcome = Outcome(program.argv)
    # The program's own tracers step aside this one while they run.
    tracer = _own_call.tracer_for_call(outcome.results.append, depth, tracer_class, steps_aside=True)
    if tracer is None:  # run from inside a trace (a test of the CLI, say): refused on entry
        tracer = tracer_class(outcome.results.append, depth)
    tracer._code_filter = code_filter
    sys.argv[:] = program.argv
    set_path0(program.path0)
    _replaced_mains.append(sys.modules.get("__main__"))
    sys.modules["__main__"] = program.module
    restore_os_exit = _hook_os_exit(outcome, tracer, at_os_exit)
    interrupts = outcome.interrupts
    interrupts.running = True
    interrupts.install(sys._getframe())
    try:
        with tracer:
            outcome.ran = True
            try:
                # The tracer's caller (this frame) is mempulse's own: not
                # recorded and not a level, so the program's module-level
                # lines are level 1 (exec's frame has this one as its parent).
                exec(program.code, program.module.__dict__)
            except BaseException:
                outcome.failure = sys.exc_info()
            interrupts.running = False
    except BaseException:
        # The tracer's own: in __enter__ (nothing ran) or __exit__.  Ctrl-C
        # there is still the user's interrupt of the program.
        if isinstance(sys.exc_info()[1], KeyboardInterrupt) and outcome.failure is None:
            outcome.failure = sys.exc_info()
        else:
            outcome.error = sys.exc_info()[1]
    finally:
        interrupts.running = False
        restore_os_exit()
    return outcome


def _hook_os_exit(outcome, tracer, at_os_exit):
    """Make os._exit() report first; returns the function that undoes it."""
    real_exit = os._exit
    thread = threading.current_thread()

    def _exit(status):
        os._exit = real_exit
        try:
            if outcome.in_child:
                pass  # a forked child (multiprocessing's too) exits as it would
            elif threading.current_thread() is not thread:
                # The trace's state belongs to the thread running it; ending
                # it from here could race with that thread.
                sys.stderr.write("mempulse: os._exit() outside the program's main thread: no report\n")
                sys.stderr.flush()
            else:
                try:
                    tracer.__exit__(None, None, None)
                except BaseException as e:
                    outcome.error = e
                if at_os_exit is not None:
                    at_os_exit(outcome)
        finally:  # whatever happened above, the program asked to exit now
            real_exit(status)

    def restore():
        if os._exit is _exit:
            os._exit = real_exit

    os._exit = _exit
    return restore


# ---- reporting -----------------------------------------------------------------------


def select_rows(result, sort, min_increment):
    """The table's rows: filtered by |increment| >= min_increment, then sorted."""
    rows = [r for r in result if abs(r.increment or 0) >= min_increment]
    if sort == "increment":
        rows.sort(key=lambda r: -(r.increment or 0))
    elif sort == "peak":
        rows.sort(key=lambda r: -(r.peak_rss if r.peak_rss is not None else -1))
    return TraceResult(rows, result.metadata)


def _open_write(path, csv=False):
    if sys.version_info[0] == 2:
        return open(path, "wb" if csv else "w")
    if csv:
        return open(path, "w", newline="", encoding="utf-8")
    return open(path, "w")


def write_reports(options, result):
    """Write the table and the files asked for; returns the error messages.

    Never raises: a report that cannot be written is one message.
    """
    try:
        table = _bare.table_text(result, lambda part: format_trace_result(select_rows(part, options.sort, options.min_increment)))
    except Exception as e:
        return ["cannot format the table: %s" % (e,)]
    outputs = [
        (options.output, lambda fp: fp.write(table), False),
        (options.json, lambda fp: dump_json(result, fp), False),
        (options.csv, lambda fp: dump_csv(result, fp), True),
    ]
    if options.output is None:
        outputs[0] = (sys.stderr, outputs[0][1], False)
    errors = []
    for target, write, is_csv in outputs:
        if target is None:
            continue
        if target == "-":
            target = sys.stdout
        try:
            if hasattr(target, "write"):
                write(target)
                target.flush()
            else:
                with _open_write(target, is_csv) as fp:
                    write(fp)
        except Exception as e:
            name = "the table to %s" % getattr(target, "name", "its stream") if hasattr(target, "write") else repr(target)
            errors.append("cannot write %s: %s" % (name, e))
    if options.plot is not None:
        from mempulse._plot import plot

        try:
            plot(result, options.plot)
        except Exception as e:
            errors.append("cannot write %r: %s" % (options.plot, e))
    return errors


def _report(prog, options, outcome):
    """Write the reports of ``outcome``, or say in one line why there are none."""
    result = outcome.result
    if result is None:
        if outcome.error is not None:
            _say(prog, "no report: tracing failed: %s" % (_one_line(outcome.error),))
        return
    result.metadata["command"] = list(outcome.command)
    for message in write_reports(options, result):
        _say(prog, message)


def _own(tb):
    return tb.tb_frame.f_code.co_filename.startswith(_tracer._PACKAGE_DIR)


def _strip_own_frames(tb):
    """The traceback from the program's first frame on, as Python would show it."""
    while tb is not None and _own(tb):
        tb = tb.tb_next
    return tb


def _cut_own_tail(tb):
    """Whether ``tb`` ends in mempulse's frames; cut them off where possible (3.7+).

    An interrupt is raised in the SIGINT handler of mempulse._interrupts,
    whose frame Python's own handler would not have.
    """
    last_program, entry, tail = tb, tb, False
    while entry is not None:
        if _own(entry):
            tail = True
        else:
            last_program, tail = entry, False
        entry = entry.tb_next
    if tail and sys.version_info >= (3, 7):
        last_program.tb_next = None
        return False
    return tail


def _print_without_own_tail(exc_type, exc_value, tb):
    import traceback

    entries = traceback.extract_tb(tb)
    while entries and entries[-1][0].startswith(_tracer._PACKAGE_DIR):
        entries.pop()
    text = ["Traceback (most recent call last):\n"] + traceback.format_list(entries)
    sys.stderr.write("".join(text + traceback.format_exception_only(exc_type, exc_value)))


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
    own_tail = tb is not None and issubclass(exc_type, KeyboardInterrupt) and _cut_own_tail(tb)
    if hasattr(exc_value, "with_traceback"):
        # Python 3's default hook prints the exception's own __traceback__.
        exc_value = exc_value.with_traceback(tb)
    if own_tail and sys.excepthook is sys.__excepthook__:
        _print_without_own_tail(exc_type, exc_value, tb)
        return 1
    try:
        sys.excepthook(exc_type, exc_value, tb)
    except Exception:
        # As the interpreter does when the program's hook fails.
        sys.stderr.write("Error in sys.excepthook:\n")
        sys.__excepthook__(*sys.exc_info())
        sys.stderr.write("\nOriginal exception was:\n")
        sys.__excepthook__(exc_type, exc_value, tb)
    return 1


def _raise_shown(exc_value):
    """Re-raise the program's KeyboardInterrupt, its traceback already printed.

    The interpreter then ends as it ends any program interrupted by Ctrl-C
    (CPython 3.8+ kills itself with SIGINT after finalizing, older ones exit
    with status 1), so the program's callers see the same thing.  The hook
    it calls to print the exception is silenced for this one call.
    """
    previous = sys.excepthook

    def excepthook(exc_type, value, tb):
        sys.excepthook = previous
        if value is not exc_value:
            previous(exc_type, value, tb)

    sys.excepthook = excepthook
    raise exc_value


def main(argv=None, prog="mempulse"):
    """Entry point of ``mempulse`` and ``python -m mempulse``; returns the exit status.

    When the program was interrupted by Ctrl-C, raises its KeyboardInterrupt
    again after the report (see :func:`_raise_shown`).
    """
    if argv is None:
        argv = sys.argv[1:]
    try:
        options = parse_command_line(argv, prog)
        if options.version:
            import mempulse

            sys.stdout.write("mempulse %s\n" % mempulse.__version__)
            return 0
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
            program = load_path(options.script)
        program.argv.extend(options.args)
        code_filter = _filters.for_command_line(options, program)
    except (UsageError, CannotRun, ImportError, OSError, ValueError) as e:
        return _usage_error(prog, e)
    except SyntaxError:
        exc_type, exc_value = sys.exc_info()[:2]
        sys.excepthook(exc_type, exc_value, None)
        return 1

    # A bare @profile in builtins; per-function mode traces no whole script (depth 0).
    bare = _bare.BareProfile(program, tracer_class, options.depth, code_filter)
    bare.install()
    outcome = trace_program(
        program, tracer_class, 0 if bare.planned else options.depth,
        at_os_exit=lambda o: _report(prog, options, bare.finish(o)), code_filter=code_filter,
    )
    bare.finish(outcome)
    try:
        if not outcome.ran and outcome.failure is None:
            return _usage_error(prog, "cannot start tracing: %s" % _one_line(outcome.error))
        status = _exit_status(outcome.failure)
        if not outcome.in_child:
            _report(prog, options, outcome)
    finally:
        outcome.interrupts.uninstall()
    if outcome.failure is not None and issubclass(outcome.failure[0], KeyboardInterrupt):
        _raise_shown(outcome.failure[1])
    if outcome.interrupts.interrupted:  # Ctrl-C after the program's last line
        sys.stderr.write("KeyboardInterrupt\n")
        _raise_shown(KeyboardInterrupt())
    return status


def _one_line(error):
    message = str(error).strip().replace("\n", " ")
    return message or type(error).__name__


def _say(prog, message):
    try:
        sys.stderr.write("%s: error: %s\n" % (prog, message))
        sys.stderr.flush()
    except Exception:
        pass  # stderr itself is gone: nowhere left to say it


def _usage_error(prog, error):
    _say(prog, _one_line(error))
    return 2
