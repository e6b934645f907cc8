"""Per-line-event cost of the tracers on a tight loop, side by side in one process.

    python benchmarks/line_cost.py [--n 2000000] [--rounds 15]

Runs ``for i in range(n): s += i`` untraced, under a no-op ``sys.settrace``
tracer, under a no-op ``sys.monitoring`` LINE callback (3.12+), under
``cMemoryUsageTracer`` and (with psutil) ``MemoryUsageTracer``, interleaved
round by round in this one process, and prints the median ns added per
line event over the untraced loop of the same round, and mempulse's
ratio to each no-op floor.  Each iteration is two line events (the
``for`` line and the body).

Why one process: on a shared machine the speed of a process moves by up
to 2x for seconds at a time, so the same loop timed in separate processes
(run.py's loop group) can differ by more than the tracer's cost; rounds
interleaved in one process see the same phases.  Not a test: CI never
runs it.
"""
from __future__ import print_function

import argparse
import os
import platform
import sys
import time

import mempulse


def loop(n):
    s = 0
    for i in range(n):
        s += i
    return s


def noop_local(frame, event, arg):
    return noop_local


def noop_global(frame, event, arg):
    return noop_local


class NoopTracer(object):
    """The floor for a settrace design: same frames traced, no work done."""

    def __init__(self, callback, depth):
        pass

    def __enter__(self):
        sys.settrace(noop_global)

    def __exit__(self, *exc):
        sys.settrace(None)


def noop_line(code, line):
    return None


class NoopMonitoring(object):
    """The floor for a sys.monitoring design: LINE on the loop's code only."""

    TOOL = 5

    def __init__(self, callback, depth):
        pass

    def __enter__(self):
        monitoring = sys.monitoring
        monitoring.use_tool_id(self.TOOL, "mempulse-bench-noop")
        monitoring.register_callback(self.TOOL, monitoring.events.LINE, noop_line)
        monitoring.set_local_events(self.TOOL, loop.__code__, monitoring.events.LINE)

    def __exit__(self, *exc):
        monitoring = sys.monitoring
        monitoring.set_local_events(self.TOOL, loop.__code__, 0)
        monitoring.register_callback(self.TOOL, monitoring.events.LINE, None)
        monitoring.free_tool_id(self.TOOL)


def timed(tracer_class, n):
    start = time.perf_counter() if hasattr(time, "perf_counter") else time.time()
    if tracer_class is None:
        loop(n)
    else:
        with tracer_class(lambda result: None, 1):
            loop(n)
    end = time.perf_counter() if hasattr(time, "perf_counter") else time.time()
    return end - start


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000000, help="loop iterations (default 2,000,000)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    args = parser.parse_args()

    tracers = [("no-op settrace", NoopTracer)]
    if hasattr(sys, "monitoring"):
        tracers.append(("no-op sys.monitoring", NoopMonitoring))
    tracers.append(("cMemoryUsageTracer", mempulse.cMemoryUsageTracer))
    try:
        import psutil  # noqa: F401

        tracers.append(("MemoryUsageTracer (psutil)", mempulse.MemoryUsageTracer))
    except ImportError:
        print("psutil not installed: MemoryUsageTracer not measured")

    events = 2 * args.n
    added = dict((name, []) for name, _ in tracers)
    base = []
    for _ in range(args.rounds):
        untraced = timed(None, args.n)
        base.append(untraced)
        for name, tracer_class in tracers:
            added[name].append((timed(tracer_class, args.n) - untraced) / events * 1e9)

    print("%s %s, %d line events per run, median of %d interleaved rounds, mempulse driver: %s"
          % (platform.python_implementation(), platform.python_version(), events, args.rounds,
             os.environ.get("MEMPULSE_DRIVER", "default")))
    print("| tracer | ns added per line event | overhead |")
    print("| --- | ---: | ---: |")
    print("| (untraced: %.1f ns per event) | - | - |" % (median(base) / events * 1e9))
    for name, _ in tracers:
        ns = median(added[name])
        print("| %s | %.0f | %+.0f%% |" % (name, ns, 100.0 * ns * 1e-9 * events / median(base)))
    ours = median(added["cMemoryUsageTracer"])
    for name, _ in tracers:
        if name.startswith("no-op"):
            print("cMemoryUsageTracer / %s: %.2fx" % (name, ours / median(added[name])))


if __name__ == "__main__":
    main()
