"""The ``sys.settrace`` driver: trace functions that feed the engine.

Every Python version has it.  A thread's global trace function gets each
frame's "call" and hands it to :meth:`ThreadTrace.enter`; a followed frame
gets a local trace function whose "line" events go straight to C and whose
"return" goes to :meth:`ThreadTrace.leave`.  Threads started by traced
threads are picked up by one process-wide ``threading.settrace`` hook that
passes every other thread on to whatever hook was there before.

CPython drops a trace function that raises, so none of these may raise:
an unexpected failure is noted on the session and reported on exit.
"""
import sys
import threading
import warnings

from mempulse import _core, _engine

TRACED = _engine.TRACED


def _thread_hook_before_310():
    return getattr(threading, "_trace_hook", None)


#: threading's trace hook now (``threading.gettrace`` itself on 3.10+).
_thread_hook_now = getattr(threading, "gettrace", None) or _thread_hook_before_310


class Driver(object):
    """The settrace driver of one thread's trace."""

    name = "sys.settrace"

    def __init__(self, trace, guarded):
        self.trace = trace
        self.previous = None
        self.previous_local = None
        self.frame = None
        self.installed = False
        self.failed = None
        self.global_, self.local, self.local_own = _functions(trace, guarded)

    def install(self, frame, record_root):
        """Start tracing the calling thread; ``frame`` is the root."""
        self.previous = sys.gettrace()
        self.previous_local = frame.f_trace
        self.frame = frame
        if record_root:
            frame.f_trace = self.local
        self.installed = True
        _thread_hook_users(+1)
        # Last: every Python call after it, ours included, is an event.
        try:
            sys.settrace(self.global_)
        except Exception as e:
            self.failed = _engine.refused("sys.settrace()", e)

    def uninstall(self):
        """Stop tracing the calling thread; restore what was there before.

        Returns a warning text when the trace function had been replaced or
        dropped meanwhile (by code inside the block, or by CPython after an
        exception inside it), else None.
        """
        if not self.installed:
            return None
        self.installed = False
        current = sys.gettrace()
        try:
            sys.settrace(self.previous)
        except Exception:  # 3.13, event changes spent (_engine.refused): nothing more to do
            pass
        if self.frame is not None:
            self.frame.f_trace = self.previous_local
        # The __exit__ frame was followed as mempulse's own; its return must
        # not reach us through a restored tracer.
        sys._getframe(1).f_trace = None
        _thread_hook_users(-1)
        problem = self.failed
        if problem is None and current is not self.global_:
            if current is None:
                problem = (
                    "mempulse: tracing of this thread stopped before the block ended "
                    "(CPython drops a trace function when an exception, such as "
                    "RecursionError, is raised inside it); later lines are missing"
                )
            else:
                problem = (
                    "mempulse: sys.settrace() was changed inside the traced block "
                    "(to %r); mempulse restored the trace function that was set before "
                    "the block" % (current,)
                )
        self.previous = self.previous_local = self.frame = None
        return problem


def _functions(trace, guarded):
    """(global, local, local_own) trace functions for ``trace``'s thread.

    ``guarded``: take the trace's lock around each event and stop at the
    end of the session (threads other than the entering one).
    """
    session = trace.session
    functions = _plain_functions(trace, session)
    meter = session.meter
    if meter.name == "psutil" and meter.interrupts is not None:
        functions = _raising_interrupts(session, meter.interrupts, *functions)
    if guarded:
        functions = _guarded(trace, *functions)
    return functions


def _plain_functions(trace, session):
    # Apart from _raising_interrupts and _guarded, which most blocks need
    # not: every variable these functions share is a cell made per block.
    enter, enter_child, leave = trace.enter, trace.enter_child, trace.leave
    mp_line = _core.lib.mp_bound_line

    def local(frame, event, arg):
        try:
            if event == "line":
                mp_line(frame.f_lineno)
            elif event == "return":
                leave(frame)
        except Exception as e:
            # A line number C cannot hold (3.11 gives None past 2**31 - 1)
            # goes unrecorded, as under sys.monitoring; anything else is news.
            if event != "line" or not isinstance(e, (OverflowError, TypeError)):
                _note(session, e)
        return local

    def local_own(frame, event, arg):
        if event == "return":
            try:
                leave(frame)
            except Exception as e:
                _note(session, e)
        return local_own

    frames = trace.frames  # mutated in place while the trace runs
    # With a filter, recorded code below filtered frames may be traced (enter() walks up).
    filtered = session.code_names.code_filter is not None
    code_ids = session.code_ids

    def global_(frame, event, arg):
        if trace.done:
            return _remove_trace_function()
        parent = frame.f_back
        if (
            parent is not frames[-1]
            and frame.f_code is not _THREAD_START
            and frame is not trace.root
            and parent not in frames
            and frame not in frames
            and (not filtered or code_ids.get(id(frame.f_code), 0) < 0)
        ):
            return None  # the common case, a call far below the trace: enter() would say so
        try:
            kind = enter_child(frame, frame.f_code) if parent is frames[-1] else enter(frame)
        except Exception as e:
            _note(session, e)
            return None
        if kind is None:
            return None
        if kind == TRACED:
            return local
        if _HAVE_TRACE_LINES:
            # Transparent code (mempulse's, or filtered out) only needs its
            # return: no call per line.
            frame.f_trace_lines = False
        return local_own

    return global_, local, local_own


def _raising_interrupts(session, interrupts, global_, plain_local, local_own):
    """The functions, whose local one raises what interrupted a psutil reading."""

    def local(frame, event, arg):
        plain_local(frame, event, arg)
        if interrupts:
            # What interrupted psutil inside the reading (Ctrl-C, a
            # signal handler's exception) belongs to the traced code.
            session.interrupted = True  # it ends this thread's trace: no warning
            raise _engine.fresh(interrupts.pop(0))
        return local

    def chosen_global(frame, event, arg):
        chosen = global_(frame, event, arg)
        return local if chosen is plain_local else chosen

    return chosen_global, local, local_own


def _guarded(trace, global_, local, local_own):
    """The functions, each under the trace's lock and detaching at its end."""
    lock_of = trace  # its lock is replaced in a forked child

    def detach():
        _remove_trace_function()
        trace.deactivate()
        return None

    def guard(inner):
        def guarded_function(frame, event, arg):
            with lock_of.lock:
                if trace.done:
                    return detach()
                inner(frame, event, arg)
                if trace.done:  # the thread's run() returned
                    return detach()
            return guarded_function

        return guarded_function

    g_local, g_own = guard(local), guard(local_own)

    def g_global(frame, event, arg):
        with lock_of.lock:
            if trace.done:
                return detach()
            chosen = global_(frame, event, arg)
        if chosen is None:
            return None
        return g_local if chosen is local else g_own

    return g_global, g_local, g_own


_HAVE_TRACE_LINES = hasattr(sys._getframe(), "f_trace_lines")  # 3.7+
_THREAD_START = _engine.THREAD_START

# CPython 3.11 calls a "call" event's trace function through a pointer it
# read before creating the frame object.  A garbage collection there runs
# finalizers, whose own call events reach the same trace function; if that
# one removes itself (its trace ended), the pointer is left to freed memory
# and the outer call crashes the interpreter.  So a thread keeps the trace
# function it removed from inside an event alive, until it removes another
# or ends (tests/test_engine.py::test_trace_removed_inside_a_collection).
_removed = threading.local()


def _remove_trace_function():
    """sys.settrace(None), from inside a trace function; returns None."""
    current = sys.gettrace()
    if current is not None:
        _removed.function = current
    sys.settrace(None)
    return None


def _note(session, error):
    """Keep the first unexpected failure inside a trace function for exit.

    A RecursionError is raised again: swallowed, it would let the program
    recurse on past the limit, which CPython up to 3.10 ends with a fatal
    "Cannot recover from stack overflow".  Raised, it reaches the program as
    it would without mempulse, and CPython drops the trace function (the
    exit says so).
    """
    if _is_recursion_error(error):
        raise error
    if session.error is None:
        session.error = error


try:
    _RecursionError = RecursionError
except NameError:  # Python 2: a RuntimeError with this message
    _RecursionError = None


def _is_recursion_error(error):
    if _RecursionError is not None:
        return isinstance(error, _RecursionError)
    return isinstance(error, RuntimeError) and "maximum recursion depth" in str(error)


# ---- threads started inside a trace -----------------------------------------
_hook_lock = threading.Lock()
_hook_state = {"users": 0, "previous": None}


def _thread_hook_users(delta):
    state = _hook_state
    with _hook_lock:
        users = state["users"]
        if users == 0 and delta > 0:
            state["previous"] = _thread_hook_now()
            threading.settrace(_thread_hook)
        elif users == 1 and delta < 0:
            if _thread_hook_now() is _thread_hook:
                threading.settrace(state["previous"])
            state["previous"] = None
        state["users"] = users + delta if users + delta > 0 else 0


def _thread_hook(frame, event, arg):
    """First event of a new thread: trace it if a traced thread started it."""
    thread = threading.current_thread()
    for session in list(_engine._sessions):
        if session.driver != Driver.name:
            continue
        trace = session.adopt(thread, frame.f_back)
        if trace is None:
            continue
        with trace.lock:
            # Not done: not freed yet, so the teardown has not cleared the
            # session's tables that _functions reads (it waits for the lock).
            driver = None if trace.done else Driver(trace, guarded=True)
        if driver is None:  # the session ended meanwhile
            trace.deactivate()
            break
        sys.settrace(driver.global_)
        return driver.global_(frame, event, arg)
    previous = _hook_state["previous"]
    sys.settrace(previous)
    if previous is not None:
        return previous(frame, event, arg)
    return None


def after_fork_in_child():
    global _hook_lock
    _hook_lock = threading.Lock()


def warn(problem):
    """Say on exit what went wrong (RuntimeWarning, from the user's block)."""
    warnings.warn(problem, RuntimeWarning, stacklevel=3)
