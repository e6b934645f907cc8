"""Running the program as ``__main__`` under a tracer, and ending as Python would.

:func:`trace_program` runs it and returns its :class:`Outcome`;
:func:`exit_status` prints what the interpreter would print for how it
ended and gives the status it would exit with; :func:`raise_shown` ends
mempulse as an interrupted program ends.  Finding the program is
:mod:`mempulse._program`'s, Ctrl-C during the trace :mod:`mempulse._interrupts`'.
"""
import os
import sys
import threading

from mempulse import _own_call, _tracer
from mempulse._interrupts import Interrupts
from mempulse._program import set_path0


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


def exit_status(failure):
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


def raise_shown(exc_value):
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
