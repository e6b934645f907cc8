"""The tracers: drive ``sys.settrace`` and make one C call per event.

Levels: the frame that enters the tracer (the ``with`` block) is level 0,
functions it calls are level 1, and so on; a frame is traced when its level
is at most ``trace_depth``.  A generator or coroutine counts its level where
it is resumed.  mempulse's own frames are never traced.
"""
import os
import sys
import threading
import time

from mempulse import _result, _sysmon
from mempulse._core import ffi, from_c, lib, strerror
from mempulse import _samplers
from mempulse._samplers import ProcSampler, PsutilSampler

try:
    _INTEGER_TYPES = (int, long)  # noqa: F821 - Python 2
except NameError:
    _INTEGER_TYPES = (int,)

# Readings closer together than this are skipped (see csrc/tracer.c for why
# memory cannot move much faster; the README states the accuracy bound).
PERIOD_NS = 50000

_active = threading.local()


def _package_dir():
    return os.path.join(os.path.dirname(_package_dir.__code__.co_filename), "")


# Frames of code under this directory are mempulse's own, never recorded.
_PACKAGE_DIR = _package_dir()
_OWN = -1


def _driver_wanted():
    """"sys.monitoring" on 3.12+, else "sys.settrace"; MEMPULSE_DRIVER=settrace forces the latter."""
    if _sysmon.available() and os.environ.get("MEMPULSE_DRIVER", "") != "settrace":
        return "sys.monitoring"
    return "sys.settrace"


def check_arguments(callback, trace_depth):
    """Raise TypeError/ValueError for a bad callback or depth."""
    if not callable(callback):
        raise TypeError("callback must be callable, got %r" % (callback,))
    if isinstance(trace_depth, bool) or not isinstance(trace_depth, _INTEGER_TYPES):
        raise TypeError("trace_depth must be an int, got %r" % (trace_depth,))
    if trace_depth < 0:
        raise ValueError("trace_depth must be >= 0, got %r" % (trace_depth,))


def current_tracer():
    """The tracer tracing this thread, or None."""
    session = getattr(_active, "session", None)
    if session is None or session.ended:
        return None
    return session.owner


def _thread_run_code():
    run = threading.Thread.run
    return getattr(run, "__func__", run).__code__


_THREAD_RUN = _thread_run_code()


def _thread_trace_hook():
    getter = getattr(threading, "gettrace", None)  # Python 3.10+
    return getter() if getter is not None else getattr(threading, "_trace_hook", None)


class _Session(object):
    """One thread's share of a trace: its C tracer, frames and trace functions.

    The C tracer is only touched by its own thread while the trace runs; a
    session of another thread than the one that entered the tracer is also
    finished by that one on exit, so its events take ``lock``.
    """

    def __init__(self, owner, root, record_root):
        out = ffi.new("mp_tracer **")
        status = lib.mp_tracer_new(owner._meter.c, PERIOD_NS, out)
        if status != 0:
            raise MemoryError("mempulse: %s" % strerror(status))
        tracer = out[0]
        status = lib.mp_start(tracer)
        if status != 0:
            os_errno = lib.mp_error_errno(tracer)
            lib.mp_tracer_free(tracer)
            owner._raise_failure(status, os_errno)
        lib.mp_bind(tracer)  # this thread's events go to this tracer
        self.owner = owner
        self.tracer = tracer
        self.ended = False
        self.lock = threading.Lock()
        self.stack = [root]
        self.levels = [0]
        self.global_, self.local, self.local_own = self._trace_functions()
        if record_root:
            lib.mp_call(tracer, owner._code_id(root.f_code))

    def _trace_functions(self):
        # The hot path: closures over locals, one C call per event.
        stack = self.stack
        levels = self.levels
        push, pop = stack.append, stack.pop
        push_level, pop_level = levels.append, levels.pop
        depth = self.owner.trace_depth
        code_ids = self.owner._code_ids
        register = self.owner._code_id
        # The thread-bound entry points take one argument or none, so cffi
        # calls them without building an argument tuple (see mp_bind).
        mp_call, mp_line, mp_return = lib.mp_bound_call, lib.mp_bound_line, lib.mp_bound_return

        def local(frame, event, arg):
            if event == "line":
                mp_line(frame.f_lineno)
            elif event == "return":
                pop()
                pop_level()
                mp_return()
            return local

        def local_own(frame, event, arg):
            if event == "return":
                pop()
                pop_level()
            return local_own

        def global_(frame, event, arg):
            if frame.f_back is not stack[-1]:
                return None
            code = frame.f_code
            code_id = code_ids.get(code)
            if code_id is None:
                code_id = register(code)
            level = levels[-1]
            if code_id == _OWN:
                # mempulse's own frame (a decorator wrapper, say): not
                # recorded, and transparent, so what it calls keeps its level.
                push(frame)
                push_level(level)
                return local_own
            if level >= depth:
                return None
            push(frame)
            push_level(level + 1)
            mp_call(code_id)
            return local

        return global_, local, local_own

    def thread_functions(self):
        """Trace functions for a thread other than the entering one.

        They hold ``lock`` around each event, stop tracing the thread once
        the session has ended, and end the session when the thread's first
        traced frame returns.
        """
        lock, stack = self.lock, self.stack
        global_, local, local_own = self.global_, self.local, self.local_own

        def detach():
            sys.settrace(None)
            lib.mp_bind(ffi.NULL)
            if getattr(_active, "session", None) is self:
                _active.session = None
            return None

        def guarded(inner):
            def trace(frame, event, arg):
                with lock:
                    if self.ended:
                        return detach()
                    inner(frame, event, arg)
                    if len(stack) == 1:  # the thread's first frame returned
                        self.finish()
                        return detach()
                return trace

            return trace

        t_local, t_own = guarded(local), guarded(local_own)

        def t_global(frame, event, arg):
            with lock:
                if self.ended:
                    return detach()
                chosen = global_(frame, event, arg)
            if chosen is None:
                return None
            return t_local if chosen is local else t_own

        return t_global

    def finish(self):
        """Close open lines (caller holds ``lock`` where threads share it)."""
        if not self.ended:
            self.ended = True
            lib.mp_finish(self.tracer)

    def free(self):
        with self.lock:
            self.ended = True
            if self.tracer is not None:
                lib.mp_tracer_free(self.tracer)
                self.tracer = None
        # The trace functions refer to themselves (they return themselves),
        # so they live until a garbage collection; empty what they hold now
        # so frames are not kept alive.
        del self.stack[:]
        del self.levels[:]
        self.stack = self.levels = None
        self.global_ = self.local = self.local_own = None


class _Tracer(object):
    """Shared behaviour of :class:`cMemoryUsageTracer` and :class:`MemoryUsageTracer`."""

    def __init__(self, callback, trace_depth=1):
        check_arguments(callback, trace_depth)
        self.callback = callback
        self.trace_depth = trace_depth
        self._record_caller = True
        self._sampler = self._make_sampler() if trace_depth > 0 else None
        self._main = None

    def _make_sampler(self):
        raise NotImplementedError

    def __enter__(self):
        if self.trace_depth == 0:
            return self
        if current_tracer() is not None:
            raise RuntimeError(
                "a mempulse tracer is already active on this thread; "
                "nest by raising trace_depth of the outer one instead"
            )
        if self._main is not None:
            raise RuntimeError("this tracer is already in use")
        self._start(sys._getframe(1))
        return self

    def _start(self, frame):
        self._start_time = time.time()
        self._meter = _samplers.meter(self._sampler)  # process-wide, made on first use
        self._code_ids = {}
        self._names = []
        self._name_ids = {}
        self._lock = threading.Lock()
        self._closed = False
        self._threads = []
        self._thread_error = None
        try:
            main = _Session(self, frame, self._record_caller)
        except BaseException:
            self._meter = None
            raise
        self._main = main
        self._frame = frame
        _active.session = main
        self._monitor = None
        self.driver = _driver_wanted()
        if self.driver == "sys.monitoring":
            monitor = _sysmon.Monitor(self, _active, _OWN)
            try:
                started = monitor.start(main, frame, self._record_caller)
            except BaseException:
                self._stop()
                raise
            if started:
                self._monitor = monitor
            else:  # every tool id taken
                self.driver = "sys.settrace"
        if self._monitor is None:
            self._previous = sys.gettrace()
            self._previous_local = frame.f_trace
            self._previous_thread_hook = _thread_trace_hook()
            if self._record_caller:
                frame.f_trace = main.local
            threading.settrace(self._start_thread)
            sys.settrace(main.global_)

    def _thread_session(self, root):
        """A session for a thread started inside the trace, or None.

        Called by the thread itself, before its first traced frame; root is
        that frame's caller.
        """
        with self._lock:
            if self._closed:
                return None
            try:
                session = _Session(self, root, False)
            except Exception as e:  # reported on exit, never in the thread
                if self._thread_error is None:
                    self._thread_error = e
                return None
            self._threads.append(session)
        _active.session = session
        return session

    def _start_thread(self, frame, event, arg):
        """threading.settrace hook: the first event of a thread started inside."""
        session = self._thread_session(frame.f_back)
        if session is None:
            sys.settrace(None)
            return None
        trace = session.thread_functions()
        sys.settrace(trace)
        return trace(frame, event, arg)

    def _code_id(self, code):
        """Small int naming (filename, function); one per distinct pair."""
        with self._lock:
            if code.co_filename.startswith(_PACKAGE_DIR) or code is _THREAD_RUN:
                code_id = _OWN
            else:
                key = (code.co_filename, code.co_name)
                code_id = self._name_ids.get(key)
                if code_id is None:
                    code_id = self._name_ids[key] = len(self._names)
                    self._names.append(key)
            self._code_ids[code] = code_id
            return code_id

    def __exit__(self, exc_type, exc_value, tb):
        if self.trace_depth == 0:
            return False
        if self._main is None:
            raise RuntimeError("__exit__ without a matching __enter__")
        if self._monitor is not None:
            self._monitor.stop()
        else:
            sys.settrace(self._previous)
            self._frame.f_trace = self._previous_local
            # This frame was traced as mempulse's own; with a previous tracer
            # back in place its return event would still reach our function.
            sys._getframe().f_trace = None
            threading.settrace(self._previous_thread_hook)
        with self._lock:
            self._closed = True
        try:
            result = self._collect()
        finally:
            self._stop()
        self.callback(result)
        return False

    def _collect(self):
        main = self._main.tracer
        metadata = _result.run_metadata(
            self._sampler.name,
            self.trace_depth,
            self._start_time,
            peak="line" if lib.mp_peak_per_line(main) else "lifetime",
            driver=self.driver,
        )
        self._main.finish()
        for session in self._threads:
            with session.lock:
                session.finish()
                status = lib.mp_error(session.tracer) or lib.mp_merge(main, session.tracer)
            if status != 0:
                self._raise_failure(status, lib.mp_error_errno(session.tracer))
        status = lib.mp_error(main)
        if status != 0:
            self._raise_failure(status, lib.mp_error_errno(main))
        if self._thread_error is not None:
            raise self._thread_error
        count = lib.mp_count(main)
        records = ffi.new("mp_record[]", max(count, 1))
        count = lib.mp_records(main, records, count)
        names = self._names
        result = _result.TraceResult(metadata=metadata)
        for i in range(count):
            r = records[i]
            filename, function = names[r.code_id]
            result.append(
                _result.TraceRecord(
                    filename,
                    int(r.lineno),
                    function,
                    from_c(r.uss),
                    from_c(r.swap),
                    from_c(r.peak_rss),
                    int(r.hits),
                    int(r.increment),
                )
            )
        return result

    def _stop(self):
        """Release everything the trace held: C memory, files, frames, code objects."""
        _active.session = None
        lib.mp_bind(ffi.NULL)
        for session in [self._main] + self._threads:
            session.free()
        self._main = self._meter = self._threads = self._monitor = None
        self._frame = self._previous_local = self._previous = self._previous_thread_hook = None
        self._code_ids = self._name_ids = None

    def _raise_failure(self, status, os_errno):
        failure = self._meter.pending_exception()
        if failure is not None:
            raise failure
        message = "mempulse: tracing failed: %s" % strerror(status)
        if os_errno:
            raise OSError(os_errno, message)
        raise RuntimeError(message)


class cMemoryUsageTracer(_Tracer):
    """Line-by-line memory tracer reading Linux ``/proc`` from C.

    On leaving the ``with`` block, ``callback`` gets a list of
    :class:`mempulse.TraceRecord`, one per line executed, in order of first
    execution::

        import sys, mempulse
        report = lambda result: sys.stderr.write(mempulse.format_trace_result(result))
        with mempulse.cMemoryUsageTracer(report, trace_depth=1):
            data = [b"x" * 1024 for _ in range(1000)]

    ``trace_depth=0`` turns tracing off entirely (no callback, no cost).
    """

    def _make_sampler(self):
        return ProcSampler()


class MemoryUsageTracer(_Tracer):
    """Line-by-line memory tracer sampling with psutil (Linux, macOS, Windows).

    Same interface and results as :class:`cMemoryUsageTracer`; needs
    ``pip install mempulse[psutil]``::

        with mempulse.MemoryUsageTracer(print, trace_depth=2):
            work()
    """

    def _make_sampler(self):
        return PsutilSampler()


