"""Per-line-event cost of the tracers on a tight loop, side by side in one process.

    python benchmarks/line_cost.py [--n 2000000] [--rounds 15]

Runs ``for i in range(n): s += i`` untraced, under a no-op ``sys.settrace``
tracer, under a no-op ``sys.monitoring`` LINE callback (3.12+), under
``cMemoryUsageTracer`` and (with psutil) ``MemoryUsageTracer``, interleaved
round by round in this one process, and prints the median ns added per
line event over the untraced loop of the same round, and mempulse's
ratio to each no-op floor.  Each iteration is two line events (the
``for`` line and the body).  The tools are run.py's (tools.py): a
mempulse tracer's time includes formatting its table.

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

import tools
import workloads
from summary import median


def timed(tool_name, n):
    """Seconds of one ``workloads.loop(n)`` under the tool (tools.py adapters)."""
    return tools.BY_NAME[tool_name].adapter(workloads.loop, (n,))[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000000, help="loop iterations (default 2,000,000)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    args = parser.parse_args()

    tracers = [("no-op settrace", "noop-settrace")]
    if hasattr(sys, "monitoring"):
        tracers.append(("no-op sys.monitoring", "noop-monitoring"))
    tracers.append(("cMemoryUsageTracer", "cMemoryUsageTracer"))
    try:
        import psutil  # noqa: F401

        tracers.append(("MemoryUsageTracer (psutil)", "MemoryUsageTracer"))
    except ImportError:
        print("psutil not installed: MemoryUsageTracer not measured")

    events = 2 * args.n
    added = dict((name, []) for name, _ in tracers)
    base = []
    for _ in range(args.rounds):
        untraced = timed("none", args.n)
        base.append(untraced)
        for name, tool_name in tracers:
            added[name].append((timed(tool_name, args.n) - untraced) / events * 1e9)

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
