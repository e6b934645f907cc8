"""Result records: what a tracer hands to its callback."""
import os
import platform
import time
from collections import namedtuple

#: One callsite's line-by-line figures; sizes are bytes, ``None`` where
#: unknown.  The first six fields are the original mempulse tuple, then
#: ``hits`` and ``increment`` (the sum over executions of the USS change);
#: after them, each defaulting to ``None`` so that eight-field construction
#: still works: ``max_increment`` (the largest USS increment of one
#: execution) and ``anon_increment``, ``file_increment``,
#: ``shmem_increment`` (sums over executions of the change in resident
#: anonymous, file-backed and shared memory; ``None`` where the platform
#: cannot tell)::
#:
#:     TraceRecord("app.py", 3, "load", 9293824, 0, 11366400, 1, 40050688)
TraceRecord = namedtuple(
    "TraceRecord",
    ["filename", "lineno", "function", "uss", "swap", "peak_rss", "hits", "increment",
     "max_increment", "anon_increment", "file_increment", "shmem_increment"],
)
# namedtuple's defaults= is 3.7+; this works from 2.7 on.
TraceRecord.__new__.__defaults__ = (None,) * 4

#: One reading of memory over time: ``time`` in seconds since the trace
#: started, ``rss`` and ``uss`` in bytes (``uss`` may be ``None``), and the
#: line running then (``filename``, ``lineno``; ``None`` when none was)::
#:
#:     peak = max(result.series, key=lambda p: p.rss)
MemoryPoint = namedtuple("MemoryPoint", ["time", "rss", "uss", "filename", "lineno"])


class TraceResult(list):
    """The records of one traced run, in order of first execution.

    A plain list of :class:`TraceRecord`, so it can be sliced, sorted and
    passed to :func:`mempulse.format_trace_result`::

        with mempulse.cMemoryUsageTracer(results.append):
            work()
        worst = max(results[0], key=lambda r: r.increment)

    ``metadata`` is a dict describing the run (see :func:`run_metadata`);
    a result built by hand has an empty one.  ``series`` is memory over
    time, a list of :class:`MemoryPoint` in time order (at most 4096
    whatever the length of the run; empty for a result built by hand)::

        top = max(result.series, key=lambda p: p.rss)
        print("peak %d bytes at %.3f s, line %s:%s" % (top.rss, top.time, top.filename, top.lineno))
    """

    __slots__ = ("_metadata", "_series")

    def __init__(self, records=(), metadata=None, series=None):
        list.__init__(self, records)
        self._metadata = {} if metadata is None else metadata
        self._series = [] if series is None else series

    # Both are built when first read (see Lazy): most results of a
    # service's blocks are never looked at that closely.
    @property
    def metadata(self):
        metadata = self._metadata
        if type(metadata) is Lazy:
            metadata = self._metadata = metadata.build()
        return metadata

    @metadata.setter
    def metadata(self, value):
        self._metadata = value

    @property
    def series(self):
        series = self._series
        if type(series) is Lazy:
            series = self._series = series.build()
        return series

    @series.setter
    def series(self, value):
        self._series = value

    def __reduce__(self):
        # list subclasses with __slots__ do not pickle or copy their slots
        # on Python 2 without help.
        return (self.__class__, (list(self), self.metadata, self.series))

    def to_dict(self):
        """The result as JSON-ready dicts and lists (see :mod:`mempulse._export`)::

            json.dumps(result.to_dict())
        """
        from mempulse._export import result_to_dict

        return result_to_dict(self)


class Lazy(tuple):
    """A value made when first read: ``Lazy((function, args)).build()`` gives
    ``function(*args)``.

    No closure: a result's callback may keep it for long (one per block).
    A tuple: made without running any Python code (two per block).
    """

    __slots__ = ()

    def build(self):
        return self[0](*self[1])


def run_metadata(sampler, depth, start_time, end_time=None, **extra):
    """Metadata of a run that started at ``start_time`` (``time.time()``) and ends now (or at ``end_time``).

    Keys: ``interpreter`` (e.g. ``"CPython 3.11.7"``), ``platform``,
    ``sampler`` (``"c"`` or ``"psutil"``), ``depth``, ``start_time`` (UTC,
    ISO 8601), ``duration`` (seconds), ``peak`` (what ``peak_rss`` means:
    ``"line"``, the highest RSS while the line ran, or ``"lifetime"``, the
    process's high-water mark so far; the tracer passes it), plus ``extra``
    (the tracer adds ``driver``: ``"sys.monitoring"`` or ``"sys.settrace"``).
    """
    interpreter, system = _machine()
    metadata = {
        "interpreter": interpreter,
        "platform": system,
        "sampler": sampler,
        "depth": depth,
        "start_time": _utc_iso(start_time),
        "duration": max((time.time() if end_time is None else end_time) - start_time, 0.0),
        "peak": "lifetime",
    }
    metadata.update(extra)
    return metadata



_MACHINE = []


def _machine():
    """(interpreter, platform) strings, computed once per process."""
    if not _MACHINE:
        interpreter = "%s %s" % (platform.python_implementation(), platform.python_version())
        uname = getattr(os, "uname", None)
        if uname is not None:
            # Not platform.platform(): on Python 2 it may run "uname -p" in
            # a subprocess, which a tracer's exit should not do.
            u = uname()
            system = "%s-%s-%s" % (u[0], u[2], u[4])
        else:
            system = platform.platform()
        _MACHINE[:] = [interpreter, system]
    return tuple(_MACHINE)


_SECOND = [(None, None)]  # (whole second, its ISO text up to the seconds), replaced whole


def _utc_iso(seconds):
    """``seconds`` since the epoch as UTC ISO 8601, e.g. ``2026-11-25T14:47:04.500000Z``.

    The text of the second is kept: a service's blocks end many times a
    second, and formatting a datetime is a tenth of a short block's cost.
    """
    whole = int(seconds // 1)
    micro = int(round((seconds - whole) * 1e6))
    if micro >= 1000000:
        whole, micro = whole + 1, micro - 1000000
    cached, text = _SECOND[0]
    if cached != whole:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _SECOND[0] = (whole, text)
    if micro:
        return "%s.%06dZ" % (text, micro)
    return text + "Z"
