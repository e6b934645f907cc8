"""What a traced function's length adds to a block's fixed cost (3.12+).

Standalone: ``python benchmarks/instrument_cost.py [--n 2000]`` with mempulse
installed, on CPython 3.12+.  For handlers of 3, 50 and 200 lines (straight
assignments, every line runs once), prints in one process, interleaved:

- ``set+clear``: ``sys.monitoring.set_local_events`` on the handler's code
  and back to 0, microseconds per pair (what a block paid per traced
  function before 3.13's warm codes: CPython re-instruments the bytecode
  each way);
- ``untraced``: one call of the handler;
- ``block``: ``with cMemoryUsageTracer(cb, 1): handler(i)``, microseconds per
  block, results dropped, after 50 warm-up blocks (so the handler is warm
  on 3.13: the block sets no events on it).

The growth of ``block`` with the handler's length is then its line events
(one callback per line); on 3.12, whose codes are not kept warm, the
``set+clear`` column comes on top.
"""
import argparse
import sys
import time

import mempulse

LENGTHS = (3, 50, 200)


def make_handler(lines):
    body = "".join("    v%d = x + %d\n" % (i, i) for i in range(lines - 1))
    namespace = {}
    exec(compile("def handler(x):\n%s    return x\n" % body, "<handler %d>" % lines, "exec"), namespace)
    return namespace["handler"]


def per_call(function, n):
    best = None
    for _ in range(5):
        start = time.perf_counter()
        for i in range(n):
            function(i)
        took = (time.perf_counter() - start) / n * 1e6
        best = took if best is None else min(best, took)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is None:
        sys.exit("instrument_cost.py needs CPython 3.12+ (sys.monitoring)")
    events = monitoring.events
    tool = 5
    monitoring.use_tool_id(tool, "instrument_cost")
    monitoring.register_callback(tool, events.LINE, lambda code, line: None)
    wanted = events.LINE | events.PY_RETURN | events.PY_YIELD
    print("CPython %s, mempulse %s, microseconds (best of 5 runs of %d)" % (sys.version.split()[0], mempulse.__version__, args.n))
    print("%8s %10s %10s %10s" % ("lines", "set+clear", "untraced", "block"))
    results = []
    for lines in LENGTHS:
        handler = make_handler(lines)
        code = handler.__code__

        def toggle(_):
            monitoring.set_local_events(tool, code, wanted)
            monitoring.set_local_events(tool, code, 0)

        def block(i):
            with mempulse.cMemoryUsageTracer(results.append, 1):
                handler(i)
            del results[:]

        for i in range(50):
            block(i)
        print("%8d %10.1f %10.2f %10.1f" % (lines, per_call(toggle, args.n), per_call(handler, args.n), per_call(block, args.n)))
    monitoring.free_tool_id(tool)


if __name__ == "__main__":
    main()
