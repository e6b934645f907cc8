"""The original mempulse demo: trace a mixed workload line by line.

    python examples/benchmark.py            # C tracer, depth from MEMORY_TRACE_DEPTH (default 1)
    python examples/benchmark.py psutil     # the psutil tracer (--plot FILE.png: also draw it)

numpy is used when installed (as in the original demo); without it the
CPU-bound loop and the 800 MB array use the standard library instead.
"""
from __future__ import print_function

import gc
import os
import sys
import uuid

try:
    import numpy
except ImportError:
    numpy = None

import mempulse


def allocate_levels(n):
    return [bytearray(1 << 20) for _ in range(n)]


def cpu_bound():
    if numpy is not None:
        return float(numpy.sqrt(numpy.arange(2000000, dtype=numpy.float64)).sum())
    return float(sum(i ** 0.5 for i in range(2000000)))


def big_array_mean():
    if numpy is not None:
        return float(numpy.ones(100 * 1000 * 1000).mean())  # 800 MB of float64
    import array

    values = array.array("d", [1.0]) * (100 * 1000 * 1000)
    return sum(values) / len(values)


def workload():
    small = [1, 2, 3]
    large = list(range(1000000))
    larger = [str(i) for i in large]
    uuids = [str(uuid.uuid4()) for _ in range(300000)]
    del large, larger
    total = cpu_bound()
    mean = big_array_mean()
    gc.collect()
    levels = allocate_levels(10)
    return len(small) + len(uuids) + int(total > 0) + int(mean) + len(levels)


def report(result):
    sys.stderr.write(mempulse.format_trace_result(result))


def run_mempulse(tracer_class, callback=report):
    trace_depth = int(os.getenv("MEMORY_TRACE_DEPTH", "1"))  # `0` disables tracing
    with tracer_class(callback, trace_depth):
        return workload()


if __name__ == "__main__":
    import argparse

    # (Options parsed here, below the traced code, so that the line numbers
    # in the README's example output stay those of this file.)
    parser = argparse.ArgumentParser(description="Trace a mixed workload line by line.")
    parser.add_argument("sampler", nargs="?", choices=("c", "psutil"), default="c")
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw the result, e.g. --plot docs/example-plot.png (pip install mempulse[plot])",
    )
    options = parser.parse_args()

    def report_and_plot(result):
        report(result)
        mempulse.plot(result, options.plot, title="python examples/benchmark.py")

    run_mempulse(
        mempulse.MemoryUsageTracer if options.sampler == "psutil" else mempulse.cMemoryUsageTracer,
        report_and_plot if options.plot else report,
    )
