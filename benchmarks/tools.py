"""Tool adapters: run one workload call under one tool and time just that.

Each adapter is ``adapter(function, args) -> (seconds, note)``.  The clock
covers the tool's start, the workload, the tool's stop and the production of
its result (mempulse's callback formats the table; memory_profiler formats
its report; memray writes its capture file), nothing else: imports and
making the workload's resident memory happen before.  Only public APIs are used, so the
harness keeps working while the tools' internals change.

scalene cannot be started from inside a process: run.py starts
``python -m scalene run ... measure.py --- scalene ...`` and the ``scalene``
adapter here just times the call, with scalene profiling around it.
"""
import os
import sys
import tempfile
import time

clock = getattr(time, "perf_counter", time.time)

# Python 3.12+: the no-op sys.monitoring tool takes the first free id.
_MONITORING_IDS = (4, 3, 5, 0, 1, 2)


def untraced(function, args):
    start = clock()
    function(*args)
    return clock() - start, None


def noop_settrace(function, args):
    # The floor for a settrace tracer: a local trace function on the
    # workload's frame only, doing nothing.
    code = function.__code__

    def local(frame, event, arg):
        return local

    def global_(frame, event, arg):
        return local if frame.f_code is code else None

    start = clock()
    sys.settrace(global_)
    try:
        function(*args)
    finally:
        sys.settrace(None)
    return clock() - start, None


def noop_monitoring(function, args):
    # The floor for a sys.monitoring tracer (PEP 669, Python 3.12+): LINE
    # events enabled on the workload's code object only, callback doing nothing.
    monitoring = _monitoring()

    def on_line(code, line):
        return None

    start = clock()
    _run_with_line_callback(monitoring, function, args, on_line, "mempulse-bench-noop")
    return clock() - start, None


def _run_with_line_callback(monitoring, function, args, on_line, name):
    """function(*args) with on_line as the LINE callback on its code only."""
    tool = _free_tool_id(monitoring)
    code = function.__code__
    monitoring.use_tool_id(tool, name)
    monitoring.register_callback(tool, monitoring.events.LINE, on_line)
    monitoring.set_local_events(tool, code, monitoring.events.LINE)
    try:
        function(*args)
    finally:
        monitoring.set_local_events(tool, code, 0)
        monitoring.register_callback(tool, monitoring.events.LINE, None)
        monitoring.free_tool_id(tool)


def _monitoring():
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is None:
        raise NotApplicable("sys.monitoring needs Python 3.12+")
    return monitoring


def _free_tool_id(monitoring):
    for tool in _MONITORING_IDS:
        if monitoring.get_tool(tool) is None:
            return tool
    raise RuntimeError("no free sys.monitoring tool id")


def _mempulse(tracer_name):
    def adapter(function, args):
        import mempulse

        tracer_class = getattr(mempulse, tracer_name)
        tables = []

        def callback(result):
            tables.append(mempulse.format_trace_result(result))

        start = clock()
        with tracer_class(callback, 1):
            function(*args)
        seconds = clock() - start
        return seconds, "%d table lines" % tables[0].count("\n")

    return adapter


def memory_profiler(function, args):
    from memory_profiler import LineProfiler, show_results

    try:
        from io import StringIO
    except ImportError:  # Python 2
        from StringIO import StringIO
    report = StringIO()
    start = clock()
    profiler = LineProfiler()
    profiler(function)(*args)
    show_results(profiler, stream=report)
    return clock() - start, "%d report lines" % report.getvalue().count("\n")


def tracemalloc_(function, args):
    import tracemalloc

    start = clock()
    tracemalloc.start()
    try:
        function(*args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return clock() - start, "peak %d bytes traced" % peak


def memray_(function, args):
    import memray

    directory = tempfile.mkdtemp(prefix="mempulse-bench-")
    path = os.path.join(directory, "capture.bin")
    try:
        start = clock()
        with memray.Tracker(path):
            function(*args)
        seconds = clock() - start
        size = os.path.getsize(path)
    finally:
        if os.path.exists(path):
            os.remove(path)
        os.rmdir(directory)
    return seconds, "capture file %d bytes" % size


class NotApplicable(Exception):
    """The tool does not exist on this interpreter (not a failure)."""


class Tool(object):
    def __init__(self, name, label, adapter, package=None, line_events=True):
        self.name = name
        self.label = label
        self.adapter = adapter
        self.package = package  # the PyPI distribution it needs, if any
        # Whether its added time is spent per line event (the loop table's
        # "ns per line event" is meaningful for it).
        self.line_events = line_events


TOOLS = [
    Tool("none", "untraced", untraced),
    Tool("noop-settrace", "no-op settrace tracer", noop_settrace),
    Tool("noop-monitoring", "no-op sys.monitoring LINE callback", noop_monitoring),
    Tool("cMemoryUsageTracer", "mempulse cMemoryUsageTracer", _mempulse("cMemoryUsageTracer")),
    Tool("MemoryUsageTracer", "mempulse MemoryUsageTracer (psutil)", _mempulse("MemoryUsageTracer")),
    Tool("memory_profiler", "memory_profiler (LineProfiler)", memory_profiler, "memory_profiler"),
    Tool("tracemalloc", "tracemalloc", tracemalloc_, line_events=False),
    Tool("memray", "memray (Tracker)", memray_, "memray", line_events=False),
    Tool("scalene", "scalene (CLI)", untraced, "scalene", line_events=False),
]
BY_NAME = dict((t.name, t) for t in TOOLS)


def count_line_events(function, args):
    """Line events of the workload's own frame, by a counting settrace tracer."""
    code = function.__code__
    count = [0]

    def local(frame, event, arg):
        if event == "line":
            count[0] += 1
        return local

    def global_(frame, event, arg):
        return local if frame.f_code is code else None

    sys.settrace(global_)
    try:
        function(*args)
    finally:
        sys.settrace(None)
    return count[0]


def count_monitoring_events(function, args):
    """The same count by a sys.monitoring LINE callback (3.12+), or None."""
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is None:
        return None
    count = [0]

    def on_line(code, line):
        count[0] += 1

    _run_with_line_callback(monitoring, function, args, on_line, "mempulse-bench-count")
    return count[0]
