"""The public tracers: enter a session, exit with a result for the callback.

Levels: the frame that enters the tracer (the ``with`` block) is level 0,
functions it calls are level 1, and so on; a frame is traced when its level
is at most ``trace_depth``.  The rules live in ``_engine.py``; the drivers
(``_settrace.py``, ``_sysmon.py``) feed it events.
"""
import os
import sys
import threading
import time

from mempulse import _collect, _core, _engine, _filters, _result, _samplers, _settrace, _sysmon

try:
    _INTEGER_TYPES = (int, long)  # noqa: F821 - Python 2
except NameError:
    _INTEGER_TYPES = (int,)

PERIOD_NS = _engine.PERIOD_NS
_HAVE_AT_FORK = _engine._HAVE_AT_FORK  # else a forked child finds out by its pid
_PACKAGE_DIR = _engine.PACKAGE_DIR

# A tracer between the start of __enter__ and its session existing.
_STARTING = object()
# Guards every tracer's _session while __enter__ claims it (a tracer entered
# from two threads at once: the second one is refused).
_state_lock = threading.Lock()


class _NoDriver(object):
    def uninstall(self):
        return None


_NO_DRIVER = _NoDriver()


# The driver MEMPULSE_DRIVER chose, read when the first trace starts: a
# lookup of a missing variable raises and catches KeyError twice, a tenth
# of a small block's cost.
_driver_setting = []


_SYSMON, _SETTRACE = _sysmon.Driver.name, _settrace.Driver.name


def _driver_wanted():
    """"sys.monitoring" on 3.12+, else "sys.settrace"; MEMPULSE_DRIVER=settrace forces the latter."""
    if not _driver_setting:
        forced = os.environ.get("MEMPULSE_DRIVER", "") == "settrace"
        _driver_setting.append(_SETTRACE if forced or not _sysmon.available() else _SYSMON)
    return _driver_setting[0]


def check_arguments(callback, trace_depth, include=None, exclude=None):
    """Raise TypeError/ValueError for a bad callback, depth or filter; returns the filter.

    The filter is a :class:`mempulse._filters.CodeFilter`, or None without
    ``include``/``exclude``.
    """
    if not callable(callback):
        raise TypeError("callback must be callable, got %r" % (callback,))
    if isinstance(trace_depth, bool) or not isinstance(trace_depth, _INTEGER_TYPES):
        raise TypeError("trace_depth must be an int, got %r" % (trace_depth,))
    if trace_depth < 0:
        raise ValueError("trace_depth must be >= 0, got %r" % (trace_depth,))
    return _filters.make_filter(include, exclude)


def current_tracer():
    """The tracer tracing this thread, or None."""
    trace = _engine.active_trace()
    if trace is None or trace.session.ended:
        return None
    return trace.session.tracer


class _Tracer(object):
    """Shared behaviour of :class:`cMemoryUsageTracer` and :class:`MemoryUsageTracer`."""

    # Until set otherwise: what most tracers keep.
    driver = None  # the driver of the last trace: "sys.monitoring" or "sys.settrace"
    _record_caller = True  # False: the entering frame is mempulse's own
    _steps_aside = False  # True: a user tracer may nest inside (own-call traces)
    # Code ids shared with other traces whose records are merged (Profile),
    # and what to do instead of building a result (see mempulse._aggregate).
    _names = None
    _absorb = None
    _session = None

    def __init__(self, callback, trace_depth=1, include=None, exclude=None):
        if (
            include is None
            and exclude is None
            and type(trace_depth) in _INTEGER_TYPES
            and trace_depth >= 0
            and callable(callback)
        ):
            code_filter = None  # valid as it is: the checks below would say nothing
        else:
            code_filter = check_arguments(callback, trace_depth, include, exclude)
        self.callback = callback
        self.trace_depth = trace_depth
        self._code_filter = code_filter
        # Checks only: no compiled core, no file kept open, no reading.
        self._sampler = self._make_sampler() if trace_depth > 0 else None

    def _make_sampler(self):
        raise NotImplementedError

    # -- entering ------------------------------------------------------------
    def __enter__(self):
        if self.trace_depth == 0:
            return self
        with _state_lock:
            if self._session is not None:
                raise RuntimeError("this tracer is already in use")
            self._session = _STARTING
        try:
            self._start(sys._getframe(1))
        except BaseException:
            session, self._session = self._session, None
            if session is not None and session is not _STARTING:
                self._teardown(session)  # interrupted right after starting
            raise
        return self

    def _start(self, frame):
        outer = _engine.active_trace() if _engine._active.trace is not None else None
        if (
            outer is not None
            and outer.session.main is outer
            and outer.root is frame
            and not _inside_with_body(frame.f_code, outer.session.entered_at, frame.f_lasti)
        ):
            # A trace entered in this frame is still active, yet the frame
            # runs outside its with statement's body: that one's __exit__
            # never ran (an interrupt as it was called).
            _abandon(outer.session)
            outer = _engine.active_trace()
        if outer is not None and (self._steps_aside or not outer.session.steps_aside):
            raise RuntimeError(
                "a mempulse tracer is already active on this thread; "
                "nest by raising trace_depth of the outer one instead"
            )
        sampler = self._sampler
        meter = sampler.meter or _samplers.meter(sampler)  # loads the core on first use
        names = self._names
        if names is None:
            if self._code_filter is not None:
                names = _engine.CodeNames(self._code_filter)
            else:
                names = _engine.shared_names[0]
                if names is None or names.full:
                    names = _engine.shared_code_names()
        session = _engine.Session(self, meter, self.trace_depth, self._steps_aside, names)
        session.driver_object = _NO_DRIVER
        session.entered_at = frame.f_lasti
        session.start_time = time.time()
        trace = None
        driver = None
        try:
            trace = _engine.ThreadTrace(session, frame, self._record_caller)
            session.main = trace
            trace.outer = outer
            if outer is not None:
                wanted = outer.session.driver
            else:
                wanted = _driver_setting[0] if _driver_setting else _driver_wanted()
            if wanted == _SYSMON:
                driver = _sysmon.Driver(trace)
                if not driver.claim():
                    driver = None  # every tool id taken
            session.driver = _SYSMON if driver is not None else _SETTRACE
            _engine.register(session)
            trace.begin()
            if driver is None:
                driver = _settrace.Driver(trace, guarded=False)
            session.driver_object = driver
            # Last: from here on each Python call is an event.
            driver.install(frame, self._record_caller)
            self.driver = session.driver
            self._session = session
        except BaseException:
            # Ended first: whatever an interrupt leaves of the rest is dropped.
            session.ended = True
            try:
                if driver is not None:
                    driver.uninstall()
            finally:
                try:
                    if trace is not None:
                        trace.deactivate()
                        trace.free()
                finally:
                    _engine.unregister(session)
            raise

    # -- exiting -------------------------------------------------------------
    def __exit__(self, exc_type, exc_value, tb):
        if self.trace_depth == 0:
            return False
        # Until the driver is uninstalled, each Python call made here is an
        # event (this frame itself is never followed: see the end of the
        # file), so nothing is called before it but C.
        session = self._session
        if session is None or session is _STARTING:
            raise RuntimeError("__exit__ without a matching __enter__")
        if session.forked or (not _HAVE_AT_FORK and session.pid != os.getpid()):
            # A forked child: the trace is the parent's; nothing to report here.
            self._session = None
            session.tracer = None
            return False
        problem = None
        try:
            problem = session.driver_object.uninstall()
            session.driver_object = _NO_DRIVER  # uninstalled: the teardown need not
            session.end()
            c_tracer = self._merged(session)
            if self._absorb is not None:
                # Merged into an aggregate in C: no result of its own.
                result = _result.TraceResult()
                self._check(session, _core.lib.mp_error(c_tracer), _core.lib.mp_error_errno(c_tracer))
                self._absorb(session, c_tracer)
            else:
                head, result = _collect.collect(c_tracer, session.names)
                self._check(session, head[_collect.STATUS], head[_collect.ERRNO])
                # The dict is made when first read.
                result.metadata = _result.Lazy(
                    (_metadata, (session.meter.name, self.trace_depth, session.start_time, time.time(), session.driver, head))
                )
        finally:
            self._teardown(session)
        if problem and (session.interrupted or exc_type is not None and issubclass(exc_type, KeyboardInterrupt)):
            problem = None  # the interrupt itself stopped tracing on its way out
        warnings = session.warnings
        if problem:
            warnings = [problem] + list(warnings)
        for text in warnings:
            result.metadata.setdefault("warnings", []).append(text)
            _settrace.warn(text)
        if self._absorb is None:
            self.callback(result)
        interrupts = session.meter.interrupts
        if interrupts:
            # Caught inside the last readings (psutil), after the last line.
            raise _engine.fresh(interrupts.pop(0))
        return False

    def _merged(self, session):
        """The session's main C tracer, finished, with every thread's merged
        in; raises the threads' failures."""
        main = session.main
        with main.lock:
            main._finish()
        if not session.threads:
            return main.c
        lib = _core.lib
        for trace in session.threads:
            with trace.lock:
                trace._finish()
                status = lib.mp_error(trace.c) or lib.mp_merge(main.c, trace.c)
            if status != 0:
                raise session.failure(status, lib.mp_error_errno(trace.c))
        return main.c

    @staticmethod
    def _check(session, status, os_errno):
        """Raise the main C tracer's failure (``status``) or the sampler's;
        note an internal error that was ignored."""
        if status != 0:
            raise session.failure(status, os_errno)
        if session.meter.failed is not None:
            raise session.meter.pending_exception()
        if session.error is not None:
            session.warn(
                "mempulse: an internal error was ignored while tracing (%s: %s); "
                "some lines may be missing" % (type(session.error).__name__, session.error)
            )

    def _teardown(self, session):
        """Release everything the trace held: C memory, frames, code objects.

        Each step runs even if an interrupt cuts the one before short; what
        an interrupt leaves behind is ended, so ``active_trace`` drops it.
        """
        session.ended = True
        self._session = None
        try:
            driver = session.driver_object
            if driver is not _NO_DRIVER:
                driver.uninstall()
                session.driver_object = _NO_DRIVER
        finally:
            try:
                if session.children:
                    session.end()
            finally:
                try:
                    if session.main is not None:
                        session.main.release()
                    for trace in session.threads:
                        trace.free()
                finally:
                    _engine.unregister(session)
                    # No cycles left (session, traces, drivers' closures,
                    # frames' f_trace): refcounting frees them now, with
                    # every frame and object of the block, instead of a
                    # later garbage collection.
                    session.tracer = session.main = None
                    session.threads = ()
                    session.code_ids = session.codes = session.code_names = None


def _inside_with_body(code, entered_at, offset):
    """Is ``offset`` inside the body of the with statement entered at ``entered_at``?

    True when it cannot tell (then a second tracer is refused as nesting).
    """
    try:
        import dis

        if not hasattr(dis, "Bytecode"):  # Python 2.7: SETUP_WITH's relative target
            raw = bytearray(code.co_code)
            if dis.opname[raw[entered_at]] != "SETUP_WITH":
                return True
            end = entered_at + 3 + (raw[entered_at + 1] | raw[entered_at + 2] << 8)
            return entered_at < offset < end
        bytecode = dis.Bytecode(code)
        entries = getattr(bytecode, "exception_entries", None)
        if entries is None:  # up to 3.10: SETUP_WITH names where its body ends
            for instruction in bytecode:
                if instruction.offset == entered_at and instruction.opname == "SETUP_WITH":
                    return entered_at < offset < instruction.argval
            return True
        # 3.11+: the body is protected by entries handled by the with's cleanup.
        if not [i for i in bytecode if i.offset == entered_at and i.opname == "BEFORE_WITH"]:
            return True
        first = min((e for e in entries if e.start > entered_at), key=lambda e: e.start)
        end = max(e.end for e in entries if e.target == first.target)
        return first.start <= offset < end
    except Exception:
        return True


def _abandon(session):
    """Drop a session whose block was left without its __exit__; say so."""
    tracer = session.tracer
    if tracer is not None:
        tracer._teardown(session)
    _settrace.warn(
        "mempulse: a trace entered in this frame never exited (an interrupt as "
        "its __exit__ was called); it was discarded without a result"
    )


def _metadata(sampler, depth, start_time, end_time, driver, head):
    """A trace's metadata: the run's (see run_metadata), then what the core
    says (``head``, see _collect.collect): USS anchor age, the peak before the
    trace, lost events."""
    metadata = _result.run_metadata(
        sampler,
        depth,
        start_time,
        end_time=end_time,
        peak="line" if head[_collect.PEAK_PER_LINE] else "lifetime",
        driver=driver,
    )
    metadata["uss_age"] = max(head[_collect.USS_AGE], 0) / 1e9  # seconds
    metadata["lifetime_peak_before"] = _core.from_c(head[_collect.PEAK_BEFORE])
    if head[_collect.DROPPED]:
        metadata["dropped_events"] = int(head[_collect.DROPPED])
    return metadata


_engine.ignore(_Tracer.__exit__)


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

    ``include``/``exclude`` (a glob or a list of globs, by file path or by
    module name; see :mod:`mempulse._filters`) choose the code recorded;
    code left out is transparent (no rows, no level), so depth counts the
    functions you chose::

        with mempulse.cMemoryUsageTracer(report, 2, include=mempulse.OWN_CODE):
            work()      # your code's lines only, not the standard library's or packages'
    """

    def _make_sampler(self):
        return _samplers.ProcSampler.for_tracer()


class MemoryUsageTracer(_Tracer):
    """Line-by-line memory tracer sampling with psutil (Linux, macOS, Windows).

    Same interface and results as :class:`cMemoryUsageTracer`; needs psutil
    (``pip install psutil``)::

        with mempulse.MemoryUsageTracer(print, trace_depth=2):
            work()
    """

    def _make_sampler(self):
        return _samplers.PsutilSampler()

