"""``mempulse.Profile``: the records of many traced calls, merged in C.

Every call (or ``with`` block) gets its own trace, as with ``@profile``;
when it ends, its C records are merged into the profile's accumulator
(``mp_merge``) instead of becoming a result: hits and increments add up,
peaks take the maximum, USS is the latest.  The calls share one table of
code ids, so memory grows with the number of distinct lines, never with
the number of calls.  Calls on several threads at once are each traced on
their own thread and merged under the profile's lock.
"""
import atexit
import functools
import sys
import threading
import time

from mempulse import _collect, _core, _engine, _filters, _own_call, _result, _tracer


def _ignore(result):
    pass


class Profile(object):
    """Line-by-line memory of every call of some functions, aggregated.

    ::

        prof = mempulse.Profile(depth=1, at_exit=True)   # table on stderr at exit

        @prof.trace
        def handle(request):
            ...

        with prof.trace():            # a block, recorded into the same profile
            warm_up()

        result = prof.result()        # a TraceResult of everything so far
        prof.report()                 # the table now (to callback/output/stderr)
        prof.reset()                  # start again from zero

    ``depth``, ``tracer``, ``include`` and ``exclude`` are those of the
    tracers.  Reports (:meth:`report`) go to ``callback(result)`` if given,
    else to ``output`` (a path, rewritten at each report: the table, or
    JSON when it ends in ``.json``; or an open text stream), else to
    stderr; ``at_exit=True`` reports at interpreter exit, ``every=N`` every
    N seconds from a daemon thread (each only when there were calls since
    the last report).  ``name`` titles the table.
    """

    def __init__(
        self,
        depth=1,
        tracer=None,
        include=None,
        exclude=None,
        callback=None,
        output=None,
        at_exit=False,
        every=None,
        name=None,
    ):
        code_filter = _tracer.check_arguments(callback or _ignore, depth, include, exclude)
        if every is not None and (isinstance(every, bool) or not isinstance(every, (int, float)) or every <= 0):
            raise ValueError("every must be a positive number of seconds, got %r" % (every,))
        if output is not None and not (hasattr(output, "write") or isinstance(output, _filters._TEXT_TYPES)):
            raise TypeError("output must be a path or a writable stream, got %r" % (output,))
        self.depth = depth
        self.name = name
        self.callback = callback
        self.output = output
        self._tracer_class = tracer
        if tracer is None and depth > 0:
            self._tracer_class = _own_call.default_tracer_class()
        self._lock = threading.Lock()
        self._code_filter = code_filter
        self._names = _engine.CodeNames(code_filter)
        self._c = None  # the C accumulator, made at the first merge
        self.calls = 0
        self._reported_calls = 0
        self._first_start = None
        self._info = {}
        self._stop = None
        if at_exit:
            atexit.register(self._report_if_new)
        if every is not None:
            self._start_timer(float(every))

    # -- tracing -----------------------------------------------------------------
    def trace(self, func=None):
        """``@prof.trace`` decorates a function; ``with prof.trace():`` traces a block.

        A decorated function's body is level 1 (as with ``@profile``); called
        while another mempulse tracer is active on the thread, it just runs.
        A block's own lines are level 0 (as with ``cMemoryUsageTracer``).
        """
        if func is None:
            return self._block_tracer()
        return self._wrap(func)

    def _block_tracer(self):
        tracer = (self._tracer_class or _tracer.cMemoryUsageTracer)(_ignore, self.depth)
        return self._attach(tracer)

    def _attach(self, tracer):
        tracer._names = self._names
        tracer._absorb = self._absorb
        return tracer

    def call_tracer(self, steps_in=False, steps_aside=False):
        """A tracer for one call from a mempulse frame, or None (then the call just runs).

        ``steps_in``: under a trace that steps aside (the command line's),
        trace the call on its own instead of leaving it to that trace.
        ``steps_aside``: a tracer the call enters runs on its own meanwhile.
        """
        if self.depth == 0:
            return None
        tracer = _own_call.tracer_for_call(_ignore, self.depth, self._tracer_class, steps_aside=steps_aside)
        if tracer is None:
            outer = _engine.active_trace()
            if not steps_in or outer is None or not outer.session.steps_aside:
                return None
            tracer = self._tracer_class(_ignore, self.depth)
            tracer._record_caller = False
        return self._attach(tracer)

    def _wrap(self, func, steps_in=False):
        check_traceable(func)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            t = self.call_tracer(steps_in)
            if t is None:
                return func(*args, **kwargs)
            with t:
                return func(*args, **kwargs)

        wrapper.profile = self
        return wrapper

    def _absorb(self, session, c_tracer):
        """One finished trace: add its C records to the accumulator."""
        lib, ffi = _core.lib, _core.ffi
        with self._lock:
            if self._c is None:
                out = ffi.new("mp_tracer **")
                status = lib.mp_tracer_new(session.meter.c, _engine.PERIOD_NS, out)
                if status != 0:
                    raise MemoryError("mempulse: %s" % _core.strerror(status))
                self._c = out[0]
            status = lib.mp_merge(self._c, c_tracer)
            if status != 0:
                raise session.failure(status, 0)
            self.calls += 1
            if self._first_start is None:
                self._first_start = session.start_time
            self._info["sampler"] = session.meter.name
            self._info["peak"] = "line" if session.meter.peak_per_line() else "lifetime"
            self._info["driver"] = session.driver
            dropped = int(lib.mp_dropped(c_tracer))
            if dropped:
                self._info["dropped_events"] = self._info.get("dropped_events", 0) + dropped

    # -- results -----------------------------------------------------------------
    def result(self):
        """Everything recorded so far, one :class:`TraceRecord` per line, as a TraceResult.

        ``metadata`` as for a trace, plus ``calls`` (traces merged) and
        ``aggregate: True``; ``start_time``/``duration`` span the first
        call to now.
        """
        with self._lock:
            info = dict(self._info)
            metadata = _result.run_metadata(
                info.pop("sampler", None) or _sampler_name(self._tracer_class),
                self.depth,
                self._first_start if self._first_start is not None else time.time(),
                aggregate=True,
                calls=self.calls,
                **info
            )
            if self.name is not None:
                metadata["name"] = self.name
            if self._c is None:
                return _result.TraceResult(metadata=metadata)
            return _collect.collect(self._c, self._names.names, metadata)[1]

    def reset(self):
        """Forget every record and the call count (the code id table is kept)."""
        with self._lock:
            self._free()
            self.calls = self._reported_calls = 0
            self._first_start = None
            self._info = {}

    def report(self):
        """Report now: ``callback(result)``, else the table (or JSON) to ``output``, else stderr."""
        result = self.result()
        with self._lock:
            self._reported_calls = result.metadata["calls"]
        if self.callback is not None:
            self.callback(result)
            return
        write_report(result, self.output, self.name)

    def _report_if_new(self):
        if self.calls != self._reported_calls:
            try:
                self.report()
            except Exception as e:  # at exit or in the timer thread: say it, never raise
                sys.stderr.write("mempulse: cannot report the profile: %s\n" % (e,))

    def _start_timer(self, seconds):
        stop = self._stop = threading.Event()

        def run():
            while not stop.wait(seconds):
                self._report_if_new()

        thread = threading.Thread(target=run, name="mempulse-profile-report")
        thread.daemon = True
        thread.start()

    def close(self):
        """Stop the periodic reports and free the accumulator (the profile keeps no records)."""
        if self._stop is not None:
            self._stop.set()
        with self._lock:
            self._free()

    def _free(self):
        c, self._c = self._c, None
        if c is not None:
            _core.lib.mp_tracer_free(c)

    def __del__(self):
        try:
            self._free()
        except Exception:  # interpreter shutdown
            pass


def _sampler_name(tracer_class):
    return "psutil" if tracer_class is _tracer.MemoryUsageTracer else "c"


def check_traceable(func):
    """TypeError for what a per-call trace cannot see (generators, coroutines)."""
    import inspect

    from mempulse._profile import _is_async

    if not callable(func):
        raise TypeError("profile() decorates a callable, got %r" % (func,))
    if inspect.isgeneratorfunction(func) or _is_async(func):
        # The call only creates the generator or coroutine; its body runs
        # later, outside the trace, so the table would be empty.
        raise TypeError(
            "profile() cannot trace %r: its body runs after the call returns; "
            "decorate the function that consumes it instead" % (func,)
        )


def title(result, name=None):
    """The line above an aggregated table: ``mempulse: NAME: N calls``."""
    calls = result.metadata.get("calls", 0)
    return "mempulse: %s%s call%s\n" % (
        "%s: " % name if name else "",
        "{:,}".format(calls),
        "" if calls == 1 else "s",
    )


def write_report(result, output=None, name=None):
    """The titled table (or JSON for a ``.json`` path) to ``output`` (path or stream; default stderr)."""
    from mempulse._export import dump_json
    from mempulse._report import format_trace_result

    if output is not None and not hasattr(output, "write"):
        if output.endswith(".json"):
            with open(output, "w") as fp:
                dump_json(result, fp)
            return
        with open(output, "w") as fp:
            fp.write(title(result, name) + format_trace_result(result))
        return
    stream = output if output is not None else sys.stderr
    stream.write(title(result, name) + format_trace_result(result))
    stream.flush()


__all__ = ["Profile", "OWN_CODE"]
OWN_CODE = _filters.OWN_CODE
