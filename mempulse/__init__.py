"""mempulse: line-by-line memory profiler with a plain-C core.

Wrap code in a tracer; on leaving the block the callback gets one record per
line with what that line did to the process's memory::

    import sys, mempulse

    def report(result):
        sys.stderr.write(mempulse.format_trace_result(result))

    with mempulse.cMemoryUsageTracer(report, trace_depth=1):
        blob = b"x" * (64 << 20)
        del blob

From a shell, ``python -m mempulse script.py`` (or ``mempulse script.py``)
runs a whole program under the tracer; results also go to JSON
(:func:`dump_json`, :func:`load_json`), CSV (:func:`dump_csv`) and pictures
(:func:`plot`).
"""
from mempulse._aggregate import Profile
from mempulse._export import dump_csv, dump_json, load_json
from mempulse._filters import OWN_CODE
from mempulse._plot import plot
from mempulse._profile import profile
from mempulse._report import format_trace_result
from mempulse._result import MemoryPoint, TraceRecord, TraceResult
from mempulse._tracer import MemoryUsageTracer, cMemoryUsageTracer

__version__ = "1.0.0"
#: The installed version (the same as ``__version__``); ``mempulse --version`` prints it.
version = __version__


def load_ipython_extension(ipython):
    """``%load_ext mempulse``: adds the ``%mempulse`` and ``%%mempulse`` magics.

    In IPython or Jupyter::

        %load_ext mempulse
        %mempulse data = [b"x" * 4096 for _ in range(10000)]
    """
    # Imported here: importing mempulse must not import IPython.
    from mempulse._ipython import load_ipython_extension as load

    load(ipython)


__all__ = [
    "MemoryPoint",
    "MemoryUsageTracer",
    "OWN_CODE",
    "Profile",
    "TraceRecord",
    "TraceResult",
    "cMemoryUsageTracer",
    "dump_csv",
    "dump_json",
    "format_trace_result",
    "load_ipython_extension",
    "load_json",
    "plot",
    "profile",
]
