"""``@mempulse.profile``: trace every call of one function."""
import functools
import sys

from mempulse import _own_call, _tracer
from mempulse._report import format_trace_result


def _write_table(result):
    sys.stderr.write(format_trace_result(result))


def _is_async(func):
    import inspect  # here: importing mempulse does without it (its import is slow)

    check = getattr(inspect, "iscoroutinefunction", None)  # Python 3.5+
    asyncgen = getattr(inspect, "isasyncgenfunction", None)  # Python 3.6+
    return bool((check and check(func)) or (asyncgen and asyncgen(func)))


def _default_tracer_class():
    return _own_call.default_tracer_class()


def profile(func=None, depth=1, callback=None, tracer=None, aggregate=False, include=None, exclude=None):
    """Trace each call of the decorated function, line by line.

    Usable bare or with arguments; by default the table goes to stderr::

        @mempulse.profile
        def load():
            return [b"x" * 4096 for _ in range(10000)]

        @mempulse.profile(depth=2, callback=results.append)
        def build():
            return load()

        @mempulse.profile(aggregate=True)      # one table at exit, all calls merged
        def handle(request):
            ...

    The function's body is level 1, so ``depth=1`` records its own lines and
    ``depth=2`` the lines of what it calls too.  ``tracer`` picks the tracer
    class (default: :class:`cMemoryUsageTracer` where ``/proc`` is readable,
    else :class:`MemoryUsageTracer`); ``include``/``exclude`` filter the
    code recorded (see :class:`cMemoryUsageTracer`).  Called while another
    mempulse tracer is active on the thread, the function just runs (the
    outer trace sees it).

    ``aggregate=True``: the records of every call are merged (a
    :class:`mempulse.Profile`, reachable as ``handle.profile``) and reported
    once, at interpreter exit: to ``callback(result)`` if given, else as a
    table on stderr; ``handle.profile.result()`` gives them on demand.
    """
    if func is None:
        return lambda f: profile(
            f, depth=depth, callback=callback, tracer=tracer, aggregate=aggregate, include=include, exclude=exclude
        )
    from mempulse._aggregate import Profile, check_traceable

    check_traceable(func)
    if aggregate:
        name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
        prof = Profile(depth, tracer, include, exclude, callback=callback, at_exit=True, name=name)
        return prof.trace(func)
    report = callback if callback is not None else _write_table
    # Bad arguments fail at decoration time, not on the first call.
    code_filter = _tracer.check_arguments(report, depth, include, exclude)
    tracer_class = tracer
    if tracer_class is None and depth > 0:
        tracer_class = _own_call.default_tracer_class()

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        t = _own_call.tracer_for_call(report, depth, tracer_class) if depth else None
        if t is None:
            return func(*args, **kwargs)
        t._code_filter = code_filter
        with t:
            return func(*args, **kwargs)

    return wrapper
