"""Result records: what a tracer hands to its callback."""
from collections import namedtuple

#: One callsite's line-by-line figures.  The first six fields are the
#: original mempulse tuple; sizes are bytes, ``None`` where unknown.
TraceRecord = namedtuple(
    "TraceRecord",
    ["filename", "lineno", "function", "uss", "swap", "peak_rss", "hits", "increment"],
)


class TraceResult(list):
    """The records of one traced run, in order of first execution.

    A plain list of :class:`TraceRecord`, so it can be sliced, sorted and
    passed to :func:`mempulse.format_trace_result`::

        with mempulse.cMemoryUsageTracer(results.append):
            work()
        worst = max(results[0], key=lambda r: r.increment)
    """

    __slots__ = ()
